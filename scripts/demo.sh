#!/usr/bin/env bash
# The demo: two throwaway local PostgreSQL servers, a sample shop database (several schemas,
# a 2-level partitioned table, PostGIS columns, every awkward type), and a real migration
# with pgmove: plan, dry run, an online move while a writer runs (full load, change capture,
# cutover report, cutover, verify, cleanup), then an offline dump-restore. Everything is
# removed at the end.
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
echo "==> a writer on the source (pgbench, until the cutover fences it)"
cat >"$work/writer.sql" <<'SQL'
\set c random(1, 200)
INSERT INTO sales.orders (customer_id, amount) VALUES (:c, 12.50);
UPDATE sales.customers SET email = 'writer' || :c || '@example.com' WHERE id = :c;
UPDATE public.every_type SET n_free = n_free + 1 WHERE id = 2;
SQL
"$PG_BIN/pgbench" -n -h 127.0.0.1 -p "$SRC_PORT" -U postgres -c 2 -T 600 -R 200 -f "$work/writer.sql" shop >"$work/pgbench.log" 2>&1 &
bench_pid=$!
echo "==> pgmove apply (copy-cdc) in the background: full load, then change capture"
"$pgmove" apply "$work/online.yaml" --yes >"$work/apply.log" 2>&1 &
apply_pid=$!

echo "==> waiting for change capture to catch up"
for _ in $(seq 1 900); do
  goal=$(psql_on "$SRC_PORT" shop -Atc "SELECT pg_current_wal_insert_lsn()")
  sleep 0.2
  caught=$(psql_on "$DST_PORT" shop -Atc "SELECT coalesce((SELECT applied_lsn >= '$goal' FROM pgmove.progress WHERE plan_name = 'demo-online'), false)" 2>/dev/null || echo f)
  [[ "$caught" == t ]] && break
  kill -0 "$apply_pid" 2>/dev/null || { cat "$work/apply.log"; echo "apply stopped early" >&2; exit 1; }
done
kill -0 "$bench_pid" 2>/dev/null || { cat "$work/pgbench.log"; echo "the writer stopped early" >&2; exit 1; }
echo "==> pgmove status (the writer is still running)"
"$pgmove" status "$work/online.yaml"

echo "==> pgmove cutover --dry-run: the report to read before cutting over"
"$pgmove" cutover "$work/online.yaml" --dry-run
echo "==> pgmove cutover: fence the source, final catch-up, sequences, verify"
"$pgmove" cutover "$work/online.yaml" --yes
wait "$bench_pid" 2>/dev/null || true
grep -E "^number of transactions actually processed" "$work/pgbench.log" | sed 's/^/    pgbench (until fenced): /' || true
wait "$apply_pid"
tail -n 1 "$work/apply.log" | sed 's/^/    apply: /'
echo "==> the source refuses writes now:"
psql_on "$SRC_PORT" shop -c "INSERT INTO sales.orders (customer_id, amount) VALUES (1, 1)" 2>&1 | sed 's/^/    /' || true
echo "==> pgmove verify (copy-cdc target, after the writes)"
"$pgmove" verify "$work/online.yaml"
echo "==> pgmove cleanup (slot, publication, DDL trigger, pgmove schema)"
"$pgmove" cleanup "$work/online.yaml"

echo "==> pgmove apply (dump-restore) into shop_offline"
"$pgmove" apply "$work/offline.yaml" --yes
echo "==> pgmove verify (dump-restore target)"
"$pgmove" verify "$work/offline.yaml"
echo "==> done: both targets are identical to the source"
