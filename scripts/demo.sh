#!/usr/bin/env bash
# The demo: two throwaway local PostgreSQL servers, a sample shop database (several schemas,
# a 2-level partitioned table, PostGIS columns, every awkward type), and a real migration
# with pgmove: plan, dry run, apply, verify. Everything is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bash scripts/install-deps.sh
source scripts/lib/cluster.sh

echo "==> building pgmove"
cargo build --quiet --locked
pgmove="$root/target/debug/pgmove"

work=$(mktemp -d /tmp/pgmove-demo-XXXXXX)
cleanup() { stop_clusters; rm -rf "$work"; }
trap cleanup EXIT

echo "==> starting two throwaway servers"
start_cluster SRC
start_cluster DST
echo "    source on 127.0.0.1:$SRC_PORT, target on 127.0.0.1:$DST_PORT"

echo "==> loading the sample database into the source"
psql_on "$SRC_PORT" postgres -c "CREATE DATABASE shop" >/dev/null
psql_on "$DST_PORT" postgres -c "CREATE DATABASE shop" >/dev/null
psql_on "$SRC_PORT" shop -f tests/fixtures/many_types.sql >/dev/null
psql_on "$SRC_PORT" shop -At -c "SELECT count(*) || ' tables, ' || pg_size_pretty(pg_database_size('shop')) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog','information_schema')" | sed 's/^/    /'

psql_on "$DST_PORT" postgres -c "CREATE DATABASE shop_offline" >/dev/null

# Two plans: the built-in copy-cdc full load (snapshot-consistent parallel COPY) into "shop",
# and the offline dump-restore into "shop_offline".
cat >"$work/online.yaml" <<YAML
version: 1
name: demo-online
source:
  dsn: postgres://postgres@127.0.0.1:$SRC_PORT/shop
  sslmode: disable
target:
  dsn: postgres://postgres@127.0.0.1:$DST_PORT/shop
  sslmode: disable
strategy: copy-cdc
jobs: 2
split_tables_larger_than: 1MB
cdc:
  tables_without_key: insert-only
YAML
cat >"$work/offline.yaml" <<YAML
version: 1
name: demo-offline
source:
  dsn: postgres://postgres@127.0.0.1:$SRC_PORT/shop
  sslmode: disable
target:
  dsn: postgres://postgres@127.0.0.1:$DST_PORT/shop_offline
  sslmode: disable
strategy: dump-restore
downtime: 10m
jobs: 2
YAML

echo "==> pgmove plan (copy-cdc)"
"$pgmove" plan "$work/online.yaml"
echo "==> pgmove apply --dry-run (first lines)"
"$pgmove" apply "$work/online.yaml" --dry-run | grep -E "CREATE_REPLICATION_SLOT|COPY " | head -n 6
echo "    ..."
echo "==> pgmove apply (copy-cdc)"
"$pgmove" apply "$work/online.yaml" --yes
echo "==> pgmove status"
"$pgmove" status "$work/online.yaml"
echo "==> pgmove verify (copy-cdc target)"
"$pgmove" verify "$work/online.yaml"

echo "==> pgmove apply (dump-restore) into shop_offline"
"$pgmove" apply "$work/offline.yaml" --yes
echo "==> pgmove verify (dump-restore target)"
"$pgmove" verify "$work/offline.yaml"
echo "==> done: both targets are identical to the source"
