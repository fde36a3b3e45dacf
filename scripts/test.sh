#!/usr/bin/env bash
# Installs what is missing, then runs the whole test suite against real PostgreSQL servers
# that the tests start themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
exec cargo test --locked --all-targets "$@"
