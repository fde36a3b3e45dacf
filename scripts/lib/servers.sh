# shellcheck shell=bash disable=SC2034  # pgmove, pgmove_build, conf and the URIs are read by the scripts that source this
# The part of the benchmark scripts' setup they share: the pgmove binary to time, and a pair of
# throwaway servers reset between runs. Source this file after scripts/lib/cluster.sh.

# bench_build_pgmove ROOT: sets `pgmove` (PGMOVE_BIN, or ROOT/target/release/pgmove built by
# `cargo build --release --locked`, its log in bench-out/pgmove-build.log) and `pgmove_build`
# (ok or failed: a failed build is reported and left to the caller, which records pgmove's
# runs as failed or stops).
bench_build_pgmove() {
  local root=$1
  pgmove=${PGMOVE_BIN:-$root/target/release/pgmove}
  pgmove_build=ok
  if [[ -z ${PGMOVE_BIN:-} ]]; then
    echo "==> building pgmove (cargo build --release --locked; a few minutes the first time)"
    mkdir -p bench-out
    if ! cargo build --release --locked 2>bench-out/pgmove-build.log; then
      pgmove_build=failed
      echo "error: cargo build --release --locked failed. Last lines of bench-out/pgmove-build.log:" >&2
      tail -n 20 bench-out/pgmove-build.log | sed 's/^/  | /' >&2
    fi
  fi
  if [[ $pgmove_build == ok && ! -x $pgmove ]]; then
    echo "error: PGMOVE_BIN=$pgmove is not an executable" >&2
    exit 2
  fi
}

# bench_pgmove_version ROOT: pgmove's version and commit ("+local changes" when src differs
# from it), for the results' header.
bench_pgmove_version() {
  local root=$1 v commit
  v=$("$pgmove" --version 2>/dev/null | awk '{ print $2 }')
  commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || true)
  if [[ -n $commit && -z ${PGMOVE_BIN:-} ]]; then
    git -C "$root" diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || commit+="+local changes"
    v+=" ($commit)"
  fi
  echo "$v"
}

# pglogical's objects in a database: its subscriptions (which drop their slots on the
# provider), its node, the extension.
BENCH_DROP_PGLOGICAL_SQL="SET client_min_messages = warning;
DO \$\$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pglogical') THEN
    PERFORM pglogical.drop_subscription(sub_name, true) FROM pglogical.subscription;
    PERFORM pglogical.drop_node(n.node_name, true) FROM pglogical.local_node l JOIN pglogical.node n ON n.node_id = l.node_id;
  END IF;
END \$\$;
DROP EXTENSION IF EXISTS pglogical CASCADE;"

# bench_reset_servers DB: an empty database DB on the target (cluster DST), no leftover
# replication artifacts on the source (cluster SRC: slots, pgmove's and pgcopydb's
# publications, event triggers and schemas, pglogical's node), no replication origins on the
# target, both servers checkpointed.
bench_reset_servers() {
  local db=$1 left
  if [[ $(psql_on "$DST_PORT" postgres -At -c "SELECT count(*) FROM pg_database WHERE datname = '$db'") == 1 ]]; then
    psql_on "$DST_PORT" "$db" -At -c "$BENCH_DROP_PGLOGICAL_SQL" >/dev/null
  fi
  # A walsender may take a moment to notice its client is gone.
  for _ in $(seq 1 50); do
    [[ $(psql_on "$SRC_PORT" "$db" -At -c "SELECT count(*) FROM pg_replication_slots WHERE active") == 0 ]] && break
    sleep 0.1
  done
  left=$(psql_on "$SRC_PORT" "$db" -At <<'SQL'
SELECT string_agg(slot_name, ' ') FROM pg_replication_slots WHERE NOT active;
SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active;
SQL
)
  [[ -n $left ]] && echo "    note: dropped replication slot(s) left on the source: $left"
  psql_on "$SRC_PORT" "$db" -At >/dev/null <<'SQL'
SET client_min_messages = warning;
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT pubname FROM pg_publication WHERE pubname LIKE 'pgmove%' OR pubname LIKE 'pgcopydb%' LOOP
    EXECUTE format('DROP PUBLICATION %I', r.pubname);
  END LOOP;
  FOR r IN SELECT evtname FROM pg_event_trigger WHERE evtname LIKE 'pgmove%' LOOP
    EXECUTE format('DROP EVENT TRIGGER %I', r.evtname);
  END LOOP;
END $$;
DROP SCHEMA IF EXISTS pgmove CASCADE;
DROP SCHEMA IF EXISTS pgcopydb CASCADE;
SQL
  psql_on "$SRC_PORT" "$db" -At -c "$BENCH_DROP_PGLOGICAL_SQL" >/dev/null
  # With pglogical preloaded, recreate_db restarts the target without it for the drop.
  recreate_db DST "$db"
  psql_on "$DST_PORT" postgres -At >/dev/null <<SQL
SELECT pg_replication_origin_drop(roname) FROM pg_replication_origin
 WHERE roname LIKE 'pgmove%' OR roname LIKE 'pgcopydb%' OR roname LIKE 'pgl\_%';
SQL
  psql_on "$SRC_PORT" postgres -c CHECKPOINT >/dev/null
  psql_on "$DST_PORT" postgres -c CHECKPOINT >/dev/null
  sync
}

# The bulk-load settings bench-full-load.sh and bench-size.sh give both servers.
BENCH_BULK_CONF=(
  "shared_buffers = '1GB'"
  "max_wal_size = '8GB'"
  "checkpoint_timeout = '30min'"
  "synchronous_commit = off"
  "maintenance_work_mem = '512MB'"
  "max_parallel_maintenance_workers = 2"
  "work_mem = '64MB'"
)

# bench_start_servers SETTING...: a scratch directory `work` (removed on exit, with both
# servers stopped), then the source (SRC) and target (DST) servers with the same settings
# (kept in `conf` for the results' header), the database name DB=bench and its URIs SRC_URI
# and DST_URI (the database itself is the caller's to create).
bench_start_servers() {
  conf=("$@")
  work=$(mktemp -d /tmp/pgmove-bench-XXXXXX)
  trap bench_cleanup EXIT
  trap 'echo "interrupted" >&2; exit 130' INT TERM
  echo "==> starting two throwaway servers"
  start_cluster SRC "$@"
  start_cluster DST "$@"
  echo "    source on 127.0.0.1:$SRC_PORT, target on 127.0.0.1:$DST_PORT"
  DB=bench
  SRC_URI="postgres://postgres@127.0.0.1:$SRC_PORT/$DB?sslmode=disable"
  DST_URI="postgres://postgres@127.0.0.1:$DST_PORT/$DB?sslmode=disable"
  export PGCONNECT_TIMEOUT=10
}

# shellcheck disable=SC2317  # called by the trap
bench_cleanup() {
  stop_clusters
  rm -rf "$work"
}
