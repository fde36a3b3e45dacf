#!/usr/bin/env bash
# The whole version matrix on real servers: every cross-version test, the ones CI runs
# (12 -> 15, 15 -> 18, the value tests) and the pairs CI leaves out for time (marked
# `#[ignore = "version matrix: ..."]`). Installs what is missing first, like scripts/test.sh.
# Extra arguments go to the test binary (e.g. `--test-threads=1`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
exec cargo test --locked --test it -- --include-ignored versions:: version_values:: "$@"
