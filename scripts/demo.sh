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
echo "==> pgmove apply (copy-cdc) in the background, while pgbench writes to the source"
"$pgmove" apply "$work/online.yaml" --yes >"$work/apply.log" 2>&1 &
apply_pid=$!
cat >"$work/writer.sql" <<'SQL'
\set c random(1, 200)
INSERT INTO sales.orders (customer_id, amount) VALUES (:c, 12.50);
UPDATE sales.customers SET email = 'writer' || :c || '@example.com' WHERE id = :c;
UPDATE public.every_type SET n_free = n_free + 1 WHERE id = 2;
SQL
"$PG_BIN/pgbench" -n -h 127.0.0.1 -p "$SRC_PORT" -U postgres -c 2 -T 6 -f "$work/writer.sql" shop >"$work/pgbench.log" 2>&1 \
  || { cat "$work/pgbench.log"; exit 1; }
grep -E "^(number of transactions actually processed|tps)" "$work/pgbench.log" | sed 's/^/    pgbench: /' || true

echo "==> waiting for change capture to catch up"
goal=$(psql_on "$SRC_PORT" shop -Atc "SELECT pg_current_wal_lsn()")
for _ in $(seq 1 600); do
  caught=$(psql_on "$DST_PORT" shop -Atc "SELECT coalesce((SELECT applied_lsn >= '$goal' FROM pgmove.progress WHERE plan_name = 'demo-online'), false)" 2>/dev/null || echo f)
  [[ "$caught" == t ]] && break
  kill -0 "$apply_pid" 2>/dev/null || { cat "$work/apply.log"; echo "apply stopped early" >&2; exit 1; }
  sleep 0.2
done
echo "==> pgmove status"
"$pgmove" status "$work/online.yaml"

echo "==> cutting over by hand (the cutover command comes next): stop apply, copy sequences"
kill -TERM "$apply_pid"
wait "$apply_pid"
tail -n 1 "$work/apply.log" | sed 's/^/    /'
psql_on "$SRC_PORT" shop -Atc "SELECT format('SELECT setval(%L, %s, %s);', format('%I.%I', schemaname, sequencename), coalesce(last_value, 1), (last_value IS NOT NULL)::text) FROM pg_sequences" \
  | psql_on "$DST_PORT" shop -q >/dev/null
echo "==> pgmove verify (copy-cdc target, after the writes)"
"$pgmove" verify "$work/online.yaml"

echo "==> pgmove apply (dump-restore) into shop_offline"
"$pgmove" apply "$work/offline.yaml" --yes
echo "==> pgmove verify (dump-restore target)"
"$pgmove" verify "$work/offline.yaml"
echo "==> done: both targets are identical to the source"
