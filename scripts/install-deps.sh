#!/usr/bin/env bash
# Installs what pgmove's tests, demo and benchmarks need on Debian, if missing.
# Idempotent, and quiet when everything is already there.
set -euo pipefail

PG_MAJOR=${PG_MAJOR:-15}
packages=(
  "postgresql-$PG_MAJOR"
  "postgresql-client-$PG_MAJOR"
  "postgresql-contrib"
  "postgresql-$PG_MAJOR-pglogical"
  "postgresql-$PG_MAJOR-postgis-3"
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
if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo is not installed; install the Rust toolchain (rustup)" >&2
  exit 1
fi
