#!/usr/bin/env bash
# Change-capture benchmark: how fast a backlog of pgbench transactions is caught up by pgmove,
# by native logical replication (publication/subscription) and by pglogical (a subscription of
# its own, driven by its SQL functions), optionally by pgcopydb follow, on the same two
# throwaway local servers (both with pglogical in shared_preload_libraries), several rounds each; prints medians and the ratio
# native seconds / tool seconds (higher is faster), and writes the table as markdown to
# bench-out/cdc.md.
#
#   bash scripts/bench-cdc.sh                                   # scale 10, 50,000 transactions, 3 rounds
#   SCALE=2 TXNS=5000 ROUNDS=1 bash scripts/bench-cdc.sh        # quick check (about 2 minutes)
#   WORKLOAD=rowwise bash scripts/bench-cdc.sh                  # the row-by-row shapes (below)
#
# Settings (environment):
#   WORKLOAD=pgbench    pgbench: pgbench's built-in TPC-B-like transactions (keyed updates, inserts).
#                       rowwise: the shapes that cannot be grouped by key, each transaction
#                       1. an update of a REPLICA IDENTITY FULL table without a key (rw_full,
#                          5,000 rows, every row twice: the update changes both copies; a
#                          non-unique index on id, as such tables usually have), 2. a
#                          primary-key update (rw_key, 100,000 rows: id moved by 10^9),
#                          3. an update of a wide row that leaves its 8 kB TOASTed column
#                          unchanged (rw_wide, 2,000 rows), 4. a pgbench_history insert (the
#                          marker the watcher counts). pglogical and pgcopydb are not run on it
#                          (pglogical replicates no update of a table without a key index).
#   SCALE=10            pgbench scale of the source (10 = 1M pgbench_accounts rows)
#   TXNS=50000          backlog: pgbench transactions (built-in TPC-B-like script: 3 updates and
#                       1 insert each), run by 2 clients while nothing consumes the slot
#   ROUNDS=3            timed runs per tool; the table shows the median, min and max
#   TOOLS=pgmove,native,pglogical
#                       comma list, a subset of: pgmove,native,pglogical,pgcopydb,stream (all = the five).
#                       stream is no replication tool but the ceiling for all of them:
#                       pg_recvlogical streams the backlog from a pgoutput slot into /dev/null,
#                       so its rate is what the source's walsender decodes and sends, with no
#                       apply at all (TOOLS=pgmove,native,stream to see how close each gets).
#                       pgcopydb is not run by default: Debian's pgcopydb 0.10 follow breaks on
#                       this backlog ("BUG: logical message xid ... is different from the current
#                       transaction xid" once the stream crosses a WAL segment with interleaved
#                       transactions, then waits forever); its row then says "not run"
#   CATCHUP_TIMEOUT=1800  seconds a catch-up may take before the run counts as failed
#   STALL_TIMEOUT=120   a catch-up whose target gains no pgbench_history row for this long is
#                       stopped and counts as stalled
#   PGMOVE_BIN=PATH     use this pgmove binary instead of building target/release/pgmove
#
# Each run, for each tool: an empty target database, a full load (not timed), then the tool is
# stopped, the backlog is written on the source, and the goal is the source's
# pg_current_wal_lsn() after it. Timed: from restarting the tool until
#   pgmove:   `pgmove apply --exit-when-caught-up` exits (and pgmove.progress.applied_lsn >= goal)
#   native:   ALTER SUBSCRIPTION ... ENABLE until the slot's confirmed_flush_lsn >= goal (polled
#             every 100 ms); ENABLE comes at least wal_retrieve_retry_interval + 1 s after
#             CREATE SUBSCRIPTION (untimed wait, for small backlogs), or the launcher would hold
#             the apply worker back for up to 5 s
#   pglogical: provider node on the source (pgbench's keyed tables in set `default`,
#             pgbench_history, which has no key, in `default_insert_only`), subscriber node and
#             pglogical.create_subscription(synchronize_data := true) on a schema-only target,
#             pglogical.alter_subscription_disable once every table is synced (untimed), then
#             timed: pglogical.alter_subscription_enable(immediate := true) until the
#             subscription's slot's confirmed_flush_lsn >= goal (polled every 100 ms)
#   pgcopydb: `pgcopydb follow --resume --not-consistent --endpos goal` exits
#   stream:   `pg_recvlogical --start -E goal -f /dev/null` (pgoutput, publication FOR ALL
#             TABLES) exits; its target is not checked (nothing is applied)
# Also recorded for every tool, from the same start and polled every 100 ms: when a replication
# slot on the source is first in use (the tool streams: before that, process start, plan
# checks, connections, or the subscription launcher's start-up), and when the backlog's last
# transaction is visible on the target (pgbench_history reaches the source's row count). The
# difference, "apply s", compares the apply engines without their start-up costs.
# After each run the pgbench tables' balance sums and pgbench_history's row count must equal the
# source's, or the run counts as MISMATCH. The tools run in a different order each round.
# Exit status: 0 when every run succeeded, 1 otherwise (the tables are printed either way).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

SCALE=${SCALE:-10}
WORKLOAD=${WORKLOAD:-pgbench}
if [[ $WORKLOAD == rowwise ]]; then TXNS=${TXNS:-20000}; else TXNS=${TXNS:-50000}; fi
ROUNDS=${ROUNDS:-3}
CATCHUP_TIMEOUT=${CATCHUP_TIMEOUT:-1800}
STALL_TIMEOUT=${STALL_TIMEOUT:-120}
ALL_TOOLS=pgmove,native,pglogical,pgcopydb,stream
case $WORKLOAD in
  pgbench) TOOLS=${TOOLS:-pgmove,native,pglogical} out=cdc ;;
  rowwise) TOOLS=${TOOLS:-pgmove,native} out=cdc-rowwise ;;
  *) echo "error: WORKLOAD must be pgbench or rowwise (got '$WORKLOAD')" >&2; exit 2 ;;
esac
[[ $TOOLS == all ]] && TOOLS=$ALL_TOOLS

die() { echo "error: $*" >&2; exit 2; }
[[ $SCALE =~ ^[1-9][0-9]*$ ]] || die "SCALE must be a positive integer (got '$SCALE')"
[[ $TXNS =~ ^[1-9][0-9]*$ && $TXNS -ge 2 ]] || die "TXNS must be an integer >= 2 (got '$TXNS')"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer (got '$ROUNDS')"
[[ $CATCHUP_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "CATCHUP_TIMEOUT must be a positive integer (got '$CATCHUP_TIMEOUT')"
[[ $STALL_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "STALL_TIMEOUT must be a positive integer (got '$STALL_TIMEOUT')"
tools=()
IFS=, read -r -a _req <<<"$TOOLS"
for t in "${_req[@]}"; do
  t=${t// /}
  [[ -z $t ]] && continue
  [[ ",$ALL_TOOLS," == *",$t,"* ]] || die "unknown tool '$t' in TOOLS (known: $ALL_TOOLS)"
  tools+=("$t")
done
((${#tools[@]})) || die "TOOLS selects no tool"
if [[ $WORKLOAD == rowwise ]]; then
  for t in "${tools[@]}"; do
    [[ $t == pglogical || $t == pgcopydb ]] \
      && die "WORKLOAD=rowwise runs pgmove, native and stream only ($t is not run: pglogical replicates no update of a table without a key index; pgcopydb follow breaks on long backlogs)"
  done
fi
wants() { [[ " ${tools[*]} " == *" $1 "* ]]; }

PGMOVE_BENCH=1 bash scripts/install-deps.sh
source scripts/lib/cluster.sh
source scripts/lib/bench.sh
bench_need_time

pgmove=${PGMOVE_BIN:-$root/target/release/pgmove}
pgmove_build=ok
if wants pgmove && [[ -z ${PGMOVE_BIN:-} ]]; then
  echo "==> building pgmove (cargo build --release --locked; a few minutes the first time)"
  mkdir -p bench-out
  if ! cargo build --release --locked 2>bench-out/pgmove-build.log; then
    pgmove_build=failed
    echo "error: cargo build --release --locked failed; pgmove is recorded as failed. Last lines of bench-out/pgmove-build.log:" >&2
    tail -n 20 bench-out/pgmove-build.log | sed 's/^/  | /' >&2
  fi
fi
if wants pgmove && [[ $pgmove_build == ok && ! -x $pgmove ]]; then
  die "PGMOVE_BIN=$pgmove is not an executable"
fi

# pgcopydb 0.x streams with the wal2json plugin (Debian package postgresql-$PG_MAJOR-wal2json).
pgcopydb_skip=
if wants pgcopydb; then
  if ! command -v pgcopydb >/dev/null 2>&1; then
    pgcopydb_skip="pgcopydb is not installed"
  elif [[ ! -e /usr/lib/postgresql/$PG_MAJOR/lib/wal2json.so ]]; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
      echo "    installing the Debian package postgresql-$PG_MAJOR-wal2json (pgcopydb follow needs it)" >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "postgresql-$PG_MAJOR-wal2json" >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "postgresql-$PG_MAJOR-wal2json" >/dev/null 2>&1; } \
        || true
    fi
    [[ -e /usr/lib/postgresql/$PG_MAJOR/lib/wal2json.so ]] \
      || pgcopydb_skip="the wal2json plugin is missing (Debian package postgresql-$PG_MAJOR-wal2json)"
  fi
  [[ -n $pgcopydb_skip ]] && echo "note: pgcopydb is not run: $pgcopydb_skip" >&2
fi

work=$(mktemp -d /tmp/pgmove-bench-cdc-XXXXXX)
bg_pids=()
timed_pidfile=
# shellcheck disable=SC2317  # called by the trap
cleanup() {
  local p
  for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  # The timed command's timeout runs in its own process group: stop it (and so the tool).
  [[ -n $timed_pidfile && -s $timed_pidfile ]] && kill -TERM "$(cat "$timed_pidfile")" 2>/dev/null
  stop_clusters
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

# The same settings as scripts/bench-full-load.sh, on both servers. pglogical is preloaded on
# both whatever TOOLS says (the same servers for every tool), with room for its workers.
[[ -e /usr/lib/postgresql/$PG_MAJOR/lib/pglogical.so ]] \
  || die "pglogical is not installed (Debian package postgresql-$PG_MAJOR-pglogical; scripts/install-deps.sh installs it as root)"
conf=(
  "shared_preload_libraries = 'pglogical'"
  "max_worker_processes = 16"
  "shared_buffers = '1GB'"
  "max_wal_size = '8GB'"
  "checkpoint_timeout = '30min'"
  "synchronous_commit = off"
  "maintenance_work_mem = '512MB'"
  "max_parallel_maintenance_workers = 2"
  "work_mem = '64MB'"
)
echo "==> starting two throwaway servers"
start_cluster SRC "${conf[@]}"
start_cluster DST "${conf[@]}"
echo "    source on 127.0.0.1:$SRC_PORT, target on 127.0.0.1:$DST_PORT"
DB=bench
SRC_URI="postgres://postgres@127.0.0.1:$SRC_PORT/$DB?sslmode=disable"
DST_URI="postgres://postgres@127.0.0.1:$DST_PORT/$DB?sslmode=disable"
export PGCONNECT_TIMEOUT=10

echo "==> building the source: pgbench scale $SCALE"
psql_on "$SRC_PORT" postgres -c "CREATE DATABASE $DB"
"$PG_BIN/pgbench" -i -q -s "$SCALE" -h 127.0.0.1 -p "$SRC_PORT" -U postgres "$DB" \
  >"$work/pgbench-init.log" 2>&1 || { cat "$work/pgbench-init.log" >&2; exit 1; }
if [[ $WORKLOAD == rowwise ]]; then
  echo "    rowwise tables: rw_full (REPLICA IDENTITY FULL, no key), rw_key, rw_wide (8 kB TOASTed doc)"
  psql_on "$SRC_PORT" "$DB" -q <<'SQL'
CREATE TABLE rw_full (id int NOT NULL, grp int NOT NULL, qty numeric NOT NULL, note text);
ALTER TABLE rw_full REPLICA IDENTITY FULL;
INSERT INTO rw_full SELECT i % 2500 + 1, i % 7, 0, 'note ' || (i % 2500) FROM generate_series(0, 4999) i;
CREATE INDEX rw_full_id ON rw_full (id);
CREATE TABLE rw_key (id bigint PRIMARY KEY, payload text NOT NULL);
INSERT INTO rw_key SELECT i, md5(i::text) FROM generate_series(1, 100000) i;
CREATE TABLE rw_wide (id int PRIMARY KEY, counter int NOT NULL, doc text NOT NULL);
INSERT INTO rw_wide SELECT i, 0, (SELECT string_agg(md5(i::text || '.' || j), '') FROM generate_series(1, 256) j)
  FROM generate_series(1, 2000) i;
SQL
fi
psql_on "$SRC_PORT" "$DB" -c "VACUUM ANALYZE" -c "CHECKPOINT"
src_size=$(psql_on "$SRC_PORT" "$DB" -At -c "SELECT pg_size_pretty(pg_database_size('$DB'))")
echo "    source: $src_size"

pgcopydb_version=$(pgcopydb --version 2>/dev/null | awk '/^pgcopydb version/ { print $3; exit }')
pgmove_version=-
if wants pgmove && [[ $pgmove_build == ok ]]; then
  pgmove_version=$("$pgmove" --version 2>/dev/null | awk '{ print $2 }')
  commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || true)
  if [[ -n $commit && -z ${PGMOVE_BIN:-} ]]; then
    git -C "$root" diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || commit+="+local changes"
    pgmove_version+=" ($commit)"
  fi
fi

# The pgmove plan: copy-cdc; pgbench_history has no key and pgbench only inserts into it.
plan="$work/bench.yaml"
cat >"$plan" <<YAML
version: 1
name: bench
source:
  dsn: postgres://postgres@127.0.0.1:$SRC_PORT/$DB
  sslmode: disable
target:
  dsn: postgres://postgres@127.0.0.1:$DST_PORT/$DB
  sslmode: disable
strategy: copy-cdc
downtime: 1h
jobs: $(nproc)
index_jobs: $(nproc)
cdc:
  tables_without_key: insert-only
YAML

# The data every target must have after catch-up (the source's, after the backlog).
check_sql="SELECT concat_ws(' ',
  'abalance=' || (SELECT sum(abalance) FROM pgbench_accounts),
  'tbalance=' || (SELECT sum(tbalance) FROM pgbench_tellers),
  'bbalance=' || (SELECT sum(bbalance) FROM pgbench_branches),
  'history=' || (SELECT count(*) FROM pgbench_history)"
# rowwise: every row of its tables, exactly (the wide rows by their doc's md5).
[[ $WORKLOAD == rowwise ]] && check_sql+=",
  (SELECT 'full=' || md5(string_agg(r::text, ',' ORDER BY r::text)) FROM rw_full r),
  (SELECT 'key=' || md5(string_agg(r::text, ',' ORDER BY r.id)) FROM rw_key r),
  (SELECT 'wide=' || md5(string_agg(id || ':' || counter || ':' || md5(doc), ',' ORDER BY id)) FROM rw_wide)"
check_sql+=")"
# The rowwise transaction (see WORKLOAD); pgbench_history's row is the watcher's marker.
rowwise_script="$work/rowwise.sql"
cat >"$rowwise_script" <<'SQL'
\set f random(1, 2500)
\set k random(1, 100000)
\set w random(1, 2000)
BEGIN;
UPDATE rw_full SET qty = qty + 1, grp = grp + 1 WHERE id = :f;
UPDATE rw_key SET id = id + 1000000000 WHERE id = :k;
UPDATE rw_wide SET counter = counter + 1 WHERE id = :w;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (0, 0, 0, 0, CURRENT_TIMESTAMP);
END;
SQL
# Rows the source's user tables have had inserted, updated or deleted so far.
changes_sql="SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables WHERE schemaname = 'public'"

# pglogical's objects in a database: its subscriptions (which drop their slots on the
# provider), its node, the extension.
drop_pglogical_sql="SET client_min_messages = warning;
DO \$\$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pglogical') THEN
    PERFORM pglogical.drop_subscription(sub_name, true) FROM pglogical.subscription;
    PERFORM pglogical.drop_node(n.node_name, true) FROM pglogical.local_node l JOIN pglogical.node n ON n.node_id = l.node_id;
  END IF;
END \$\$;
DROP EXTENSION IF EXISTS pglogical CASCADE;"

# Nothing left from an earlier run: no subscription, slot, publication, pglogical node or set,
# pgmove or pgcopydb state, replication origin; an empty target database; both servers
# checkpointed.
reset_servers() {
  local left
  if [[ $(psql_on "$DST_PORT" postgres -At -c "SELECT count(*) FROM pg_database WHERE datname = '$DB'") == 1 ]]; then
    psql_on "$DST_PORT" "$DB" -At -c "$drop_pglogical_sql" >/dev/null
    psql_on "$DST_PORT" "$DB" -At >/dev/null <<'SQL'
SET client_min_messages = warning;
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT subname FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()) LOOP
    EXECUTE format('ALTER SUBSCRIPTION %I DISABLE', r.subname);
    EXECUTE format('ALTER SUBSCRIPTION %I SET (slot_name = NONE)', r.subname);
    EXECUTE format('DROP SUBSCRIPTION %I', r.subname);
  END LOOP;
END $$;
SQL
  fi
  # A walsender may take a moment to notice its client is gone.
  for _ in $(seq 1 100); do
    [[ $(psql_on "$SRC_PORT" "$DB" -At -c "SELECT count(*) FROM pg_replication_slots WHERE active") == 0 ]] && break
    sleep 0.1
  done
  psql_on "$SRC_PORT" "$DB" -At -c "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE active" >/dev/null
  sleep 0.2
  left=$(psql_on "$SRC_PORT" "$DB" -At <<'SQL'
SELECT string_agg(slot_name, ' ') FROM pg_replication_slots;
SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active;
SQL
)
  [[ -n $left ]] && echo "    (dropped replication slot(s) left on the source: $left)"
  psql_on "$SRC_PORT" "$DB" -At -c "$drop_pglogical_sql" >/dev/null
  psql_on "$SRC_PORT" "$DB" -At >/dev/null <<'SQL'
SET client_min_messages = warning;
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT pubname FROM pg_publication LOOP
    EXECUTE format('DROP PUBLICATION %I', r.pubname);
  END LOOP;
  FOR r IN SELECT evtname FROM pg_event_trigger WHERE evtname LIKE 'pgmove%' LOOP
    EXECUTE format('DROP EVENT TRIGGER %I', r.evtname);
  END LOOP;
END $$;
DROP SCHEMA IF EXISTS pgmove CASCADE;
DROP SCHEMA IF EXISTS pgcopydb CASCADE;
SELECT pg_replication_origin_drop(roname) FROM pg_replication_origin;
VACUUM ANALYZE;
SQL
  # An empty target database (a restart of the target without pglogical for the drop: see
  # recreate_db), no replication origin left.
  recreate_db DST "$DB"
  psql_on "$DST_PORT" postgres -At -c "SELECT pg_replication_origin_drop(roname) FROM pg_replication_origin" >/dev/null
  psql_on "$SRC_PORT" postgres -c CHECKPOINT
  psql_on "$DST_PORT" postgres -c CHECKPOINT
  sync
}

# wait_until SECONDS SQL_PORT SQL_DB SQL: polls every 100 ms until SQL returns 't'.
wait_until() {
  local limit=$1 port=$2 db=$3 sql=$4 end
  end=$((SECONDS + limit))
  while ((SECONDS < end)); do
    [[ $(psql_on "$port" "$db" -At -c "$sql" 2>/dev/null || true) == t ]] && return 0
    sleep 0.1
  done
  return 1
}

# The backlog: TXNS pgbench transactions on the source. Sets start_lsn, goal, backlog_txns,
# backlog_changes (rows changed, from the source's statistics), src_check, src_history.
make_backlog() {
  local log=$1 before after
  start_lsn=$(psql_on "$SRC_PORT" "$DB" -At -c "SELECT pg_current_wal_lsn()")
  before=$(psql_on "$SRC_PORT" "$DB" -At -c "$changes_sql")
  local script=()
  [[ $WORKLOAD == rowwise ]] && script=(-f "$rowwise_script")
  "$PG_BIN/pgbench" -n "${script[@]}" -c 2 -j 2 -t $((TXNS / 2)) -h 127.0.0.1 -p "$SRC_PORT" -U postgres "$DB" >"$log" 2>&1 \
    || { cat "$log" >&2; return 1; }
  goal=$(psql_on "$SRC_PORT" "$DB" -At -c "SELECT pg_current_wal_lsn()")
  backlog_txns=$(awk -F': *' '/^number of transactions actually processed/ { split($2, a, "/"); print a[1] }' "$log")
  # The pgbench backends flush their statistics as they exit: wait for all 4 changes per
  # transaction to show (3 updates and 1 insert; rowwise: at least 2 FULL row updates, the
  # wide row's and the insert), 5 s at most.
  for _ in $(seq 1 50); do
    after=$(psql_on "$SRC_PORT" "$DB" -At -c "$changes_sql")
    ((after - before >= 4 * backlog_txns)) && break
    sleep 0.1
  done
  backlog_changes=$((after - before))
  backlog_wal=$(psql_on "$SRC_PORT" "$DB" -At -c "SELECT pg_wal_lsn_diff('$goal', '$start_lsn')::bigint")
  src_check=$(psql_on "$SRC_PORT" "$DB" -At -c "$check_sql")
  src_history=$(psql_on "$SRC_PORT" "$DB" -At -c "SELECT count(*) FROM pgbench_history")
}

# watch_start DIR: in the background, polls every 100 ms from now on and writes the time
#   DIR/active   when a replication slot on the source is first in use (the tool streams),
#   DIR/visible  when the target's pgbench_history has the source's row count (the backlog's last
#                transaction is visible on the target);
# and when the target's row count has not moved for STALL_TIMEOUT seconds, writes DIR/stalled
# and sends SIGTERM to the process whose id is in DIR/timed.pid (the timed command's timeout).
# Sets watch_pid.
watch_start() {
  local wdir=$1
  (
    end=$((SECONDS + CATCHUP_TIMEOUT)) last=-1 moved=$SECONDS
    while ((SECONDS < end)); do
      if [[ ! -e $wdir/active ]] \
        && [[ $(psql_on "$SRC_PORT" "$DB" -At -c "SELECT count(*) > 0 FROM pg_replication_slots WHERE active" 2>/dev/null || true) == t ]]; then
        date +%s.%N >"$wdir/active"
      fi
      rows=$(psql_on "$DST_PORT" "$DB" -At -c "SELECT count(*) FROM pgbench_history" 2>/dev/null || echo -1)
      if ((rows >= src_history)); then
        date +%s.%N >"$wdir/visible"
        [[ -e $wdir/active ]] || cp "$wdir/visible" "$wdir/active"
        exit 0
      fi
      if ((rows != last)); then
        last=$rows moved=$SECONDS
      elif ((SECONDS - moved > STALL_TIMEOUT)); then
        echo "no new row on the target for $STALL_TIMEOUT s" >"$wdir/stalled"
        [[ -s $wdir/timed.pid ]] && kill -TERM "$(cat "$wdir/timed.pid")" 2>/dev/null
        exit 0
      fi
      sleep 0.1
    done
  ) &
  watch_pid=$!
  bg_pids+=("$watch_pid")
}
# watch_stop T0 DIR: stops the watcher; sets active_s and visible_s (seconds from T0, or -)
# and stalled (empty or why).
watch_stop() {
  local t0=$1 wdir=$2
  # One more poll or two, in case the tool finished between two of them.
  for _ in $(seq 1 10); do
    [[ -s $wdir/visible ]] && break
    kill -0 "$watch_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill "$watch_pid" 2>/dev/null || true
  wait "$watch_pid" 2>/dev/null || true
  active_s=- visible_s=- stalled=
  [[ -s $wdir/active ]] && active_s=$(awk -v a="$t0" -v b="$(cat "$wdir/active")" 'BEGIN { printf "%.2f", b - a }')
  [[ -s $wdir/visible ]] && visible_s=$(awk -v a="$t0" -v b="$(cat "$wdir/visible")" 'BEGIN { printf "%.2f", b - a }')
  [[ -s $wdir/stalled ]] && stalled=$(cat "$wdir/stalled")
  return 0
}
# log_prepend LOG FILE TITLE: puts FILE, under TITLE, before the timed command's output in LOG.
log_prepend() {
  local log=$1 file=$2 title=$3
  {
    echo "--- $title"
    cat "$file"
    echo "--- timed catch-up"
    cat "$log"
  } >"$log.tmp"
  mv "$log.tmp" "$log"
}
# timed DIR CMD...: runs CMD under timeout CATCHUP_TIMEOUT, writing the timeout process's id to
# DIR/timed.pid for the watcher (exec keeps the id).
timed() {
  local wdir=$1; shift
  timed_pidfile=$wdir/timed.pid
  # shellcheck disable=SC2016  # $$ and "$@" belong to the inner bash
  bench_timed "$log" -- bash -c 'echo $$ >"$1/timed.pid"; shift; exec timeout "$@"' _ "$wdir" "$CATCHUP_TIMEOUT" "$@"
  timed_pidfile=
}

# Each tool's run: full load, stop, backlog, timed catch-up. Each sets BENCH_SECONDS,
# BENCH_RSS_KB, run_status (ok or why not), applied_changes, active_s and visible_s.
run_pgmove() {
  local r=$1 dir=$2 log=$3 pid ph before after applied
  "$pgmove" apply "$plan" --yes >"$dir/load.log" 2>&1 &
  pid=$!
  bg_pids+=("$pid")
  ph=
  for _ in $(seq 1 $((CATCHUP_TIMEOUT * 5))); do
    ph=$(psql_on "$DST_PORT" "$DB" -At -c "SELECT phase FROM pgmove.runs WHERE plan_name = 'bench'" 2>/dev/null || true)
    # After the full load the phase is `loaded`, then (pgmove apply going on to change
    # capture) `replicating`.
    [[ $ph == loaded || $ph == replicating || $ph == failed ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if [[ $ph != loaded && $ph != replicating ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    cp "$dir/load.log" "$log"
    run_status=load-failed
    return
  fi
  # SIGTERM only once change capture runs (its signal handler is installed by then), 30 s at most.
  for _ in $(seq 1 150); do
    grep -q "change capture started" "$dir/load.log" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait "$pid"; then
    cp "$dir/load.log" "$log"
    run_status=stop-failed
    return
  fi
  make_backlog "$dir/pgbench.log" || { run_status=pgbench-failed; return; }
  before=$(psql_on "$DST_PORT" "$DB" -At -c "SELECT coalesce((SELECT changes FROM pgmove.progress WHERE plan_name = 'bench'), 0)")
  watch_start "$dir"
  local t0
  t0=$(date +%s.%N)
  timed "$dir" "$pgmove" apply "$plan" --yes --exit-when-caught-up
  watch_stop "$t0" "$dir"
  log_prepend "$log" "$dir/load.log" "full load (not timed)"
  if [[ -n $stalled ]]; then run_status=stalled; return; fi
  if ((BENCH_RC == 124)); then run_status=timeout; return; fi
  if ((BENCH_RC != 0)); then run_status=failed; return; fi
  after=$(psql_on "$DST_PORT" "$DB" -At -c "SELECT changes FROM pgmove.progress WHERE plan_name = 'bench'")
  applied_changes=$((after - before))
  applied=$(psql_on "$DST_PORT" "$DB" -At -c "SELECT applied_lsn >= '$goal' FROM pgmove.progress WHERE plan_name = 'bench'")
  [[ $applied == t ]] || { run_status=behind-goal; return; }
  run_status=ok
}

run_native() {
  local r=$1 dir=$2 log=$3 t0 t1
  {
    "$PG_BIN/pg_dump" --schema-only -d "$SRC_URI" | psql_on "$DST_PORT" "$DB" >/dev/null
    psql_on "$SRC_PORT" "$DB" -c "CREATE PUBLICATION bench_pub FOR ALL TABLES"
    psql_on "$DST_PORT" "$DB" -c "CREATE SUBSCRIPTION bench_sub CONNECTION 'host=127.0.0.1 port=$SRC_PORT dbname=$DB user=postgres' PUBLICATION bench_pub WITH (copy_data = true)"
  } >"$log" 2>&1 || { run_status=setup-failed; return; }
  # The launcher starts the apply worker at most once per wal_retrieve_retry_interval, and a
  # wake-up sooner than that waits a whole interval more.
  local launched retry_ms
  launched=$(date +%s.%N)
  retry_ms=$(psql_on "$DST_PORT" "$DB" -At -c "SELECT setting FROM pg_settings WHERE name = 'wal_retrieve_retry_interval'")
  if ! wait_until "$CATCHUP_TIMEOUT" "$DST_PORT" "$DB" \
    "SELECT count(*) > 0 AND bool_and(srsubstate = 'r') FROM pg_subscription_rel"; then
    run_status=initial-sync-timeout
    return
  fi
  psql_on "$DST_PORT" "$DB" -c "ALTER SUBSCRIPTION bench_sub DISABLE" >>"$log" 2>&1 || { run_status=disable-failed; return; }
  # Nothing may consume the slot while the backlog is written.
  wait_until 60 "$SRC_PORT" "$DB" \
    "SELECT NOT active FROM pg_replication_slots WHERE slot_name = 'bench_sub'" || { run_status=disable-failed; return; }
  make_backlog "$dir/pgbench.log" || { run_status=pgbench-failed; return; }
  # So that ENABLE restarts the worker at once, as it does after a longer backlog: not timed.
  sleep "$(awk -v l="$launched" -v r="$retry_ms" -v now="$(date +%s.%N)" 'BEGIN { w = l + r / 1000 + 1 - now; printf "%.2f", (w > 0 ? w : 0) }')"
  watch_start "$dir"
  t0=$(date +%s.%N)
  BENCH_RC=0
  psql_on "$DST_PORT" "$DB" -c "ALTER SUBSCRIPTION bench_sub ENABLE" >>"$log" 2>&1 || BENCH_RC=$?
  local end=$((SECONDS + CATCHUP_TIMEOUT))
  while ((BENCH_RC == 0)); do
    [[ $(psql_on "$SRC_PORT" "$DB" -At -c "SELECT coalesce((SELECT confirmed_flush_lsn >= '$goal' FROM pg_replication_slots WHERE slot_name = 'bench_sub'), false)") == t ]] && break
    [[ -s $dir/stalled ]] && break
    ((SECONDS < end)) || BENCH_RC=124
    sleep 0.1
  done
  t1=$(date +%s.%N)
  BENCH_SECONDS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  BENCH_RSS_KB=-
  watch_stop "$t0" "$dir"
  {
    psql_on "$DST_PORT" "$DB" -c "DROP SUBSCRIPTION bench_sub"
    psql_on "$SRC_PORT" "$DB" -c "DROP PUBLICATION bench_pub"
  } >>"$log" 2>&1 || true
  if [[ -n $stalled ]]; then run_status=stalled; return; fi
  if ((BENCH_RC == 124)); then run_status=timeout; return; fi
  if ((BENCH_RC != 0)); then run_status=failed; return; fi
  applied_changes=$backlog_changes
  run_status=ok
}

run_pglogical() {
  local r=$1 dir=$2 log=$3 t0 t1 slot
  local src_dsn="host=127.0.0.1 port=$SRC_PORT dbname=$DB user=postgres"
  local dst_dsn="host=127.0.0.1 port=$DST_PORT dbname=$DB user=postgres"
  {
    "$PG_BIN/pg_dump" --schema-only -d "$SRC_URI" | psql_on "$DST_PORT" "$DB" >/dev/null
    psql_on "$SRC_PORT" "$DB" <<SQL
CREATE EXTENSION IF NOT EXISTS pglogical;
SELECT pglogical.create_node(node_name := 'bench_provider', dsn := '$src_dsn');
SELECT pglogical.replication_set_add_table('default', t)
  FROM unnest(ARRAY['pgbench_accounts', 'pgbench_branches', 'pgbench_tellers']::regclass[]) AS t;
SELECT pglogical.replication_set_add_table('default_insert_only', 'pgbench_history');
SQL
    psql_on "$DST_PORT" "$DB" <<SQL
CREATE EXTENSION IF NOT EXISTS pglogical;
SELECT pglogical.create_node(node_name := 'bench_subscriber', dsn := '$dst_dsn');
SELECT pglogical.create_subscription(subscription_name := 'bench_sub', provider_dsn := '$src_dsn',
  replication_sets := ARRAY['default', 'default_insert_only'], synchronize_structure := false,
  synchronize_data := true, forward_origins := '{}');
SQL
  } >"$log" 2>&1 || { run_status=setup-failed; return; }
  # The initial sync: the subscription replicating and its sync (and every table's) ready.
  if ! wait_until "$CATCHUP_TIMEOUT" "$DST_PORT" "$DB" \
    "SELECT (SELECT status = 'replicating' FROM pglogical.show_subscription_status('bench_sub'))
        AND (SELECT count(*) > 0 AND bool_and(sync_status = 'r') FROM pglogical.local_sync_status)"; then
    psql_on "$DST_PORT" "$DB" -c "SELECT * FROM pglogical.show_subscription_status('bench_sub')" -c "SELECT * FROM pglogical.local_sync_status" >>"$log" 2>&1 || true
    run_status=initial-sync-timeout
    return
  fi
  slot=$(psql_on "$DST_PORT" "$DB" -At -c "SELECT slot_name FROM pglogical.show_subscription_status('bench_sub')")
  psql_on "$DST_PORT" "$DB" -c "SELECT pglogical.alter_subscription_disable('bench_sub', true)" >>"$log" 2>&1 || { run_status=disable-failed; return; }
  # Nothing may consume the slot while the backlog is written.
  wait_until 60 "$SRC_PORT" "$DB" \
    "SELECT NOT active FROM pg_replication_slots WHERE slot_name = '$slot'" || { run_status=disable-failed; return; }
  make_backlog "$dir/pgbench.log" || { run_status=pgbench-failed; return; }
  watch_start "$dir"
  t0=$(date +%s.%N)
  BENCH_RC=0
  psql_on "$DST_PORT" "$DB" -c "SELECT pglogical.alter_subscription_enable('bench_sub', true)" >>"$log" 2>&1 || BENCH_RC=$?
  local end=$((SECONDS + CATCHUP_TIMEOUT))
  while ((BENCH_RC == 0)); do
    [[ $(psql_on "$SRC_PORT" "$DB" -At -c "SELECT coalesce((SELECT confirmed_flush_lsn >= '$goal' FROM pg_replication_slots WHERE slot_name = '$slot'), false)") == t ]] && break
    [[ -s $dir/stalled ]] && break
    ((SECONDS < end)) || BENCH_RC=124
    sleep 0.1
  done
  t1=$(date +%s.%N)
  BENCH_SECONDS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  BENCH_RSS_KB=-
  watch_stop "$t0" "$dir"
  psql_on "$DST_PORT" "$DB" -c "SELECT pglogical.drop_subscription('bench_sub')" >>"$log" 2>&1 || true
  if [[ -n $stalled ]]; then run_status=stalled; return; fi
  if ((BENCH_RC == 124)); then run_status=timeout; return; fi
  if ((BENCH_RC != 0)); then run_status=failed; return; fi
  applied_changes=$backlog_changes
  run_status=ok
}

run_pgcopydb() {
  local r=$1 dir=$2 log=$3 t0
  {
    echo "--- pgcopydb clone (not timed)"
    pgcopydb clone --source "$SRC_URI" --target "$DST_URI" --dir "$dir/clone" --table-jobs "$(nproc)" --index-jobs "$(nproc)"
    # The source is idle: the slot's LSN is where the clone left the target.
    echo "--- pgcopydb stream setup (not timed)"
    pgcopydb stream setup --source "$SRC_URI" --target "$DST_URI" --dir "$dir/stream"
    pgcopydb stream sentinel set apply --source "$SRC_URI"
  } >"$dir/setup.log" 2>&1 || { cp "$dir/setup.log" "$log"; run_status=setup-failed; return; }
  make_backlog "$dir/pgbench.log" || { run_status=pgbench-failed; return; }
  watch_start "$dir"
  t0=$(date +%s.%N)
  timed "$dir" pgcopydb follow --source "$SRC_URI" --target "$DST_URI" \
    --dir "$dir/stream" --resume --not-consistent --endpos "$goal"
  watch_stop "$t0" "$dir"
  log_prepend "$log" "$dir/setup.log" "clone and stream setup (not timed)"
  pgcopydb stream cleanup --source "$SRC_URI" --target "$DST_URI" --dir "$dir/stream" >>"$log" 2>&1 || true
  if [[ -n $stalled ]]; then run_status=stalled; return; fi
  if ((BENCH_RC == 124)); then run_status=timeout; return; fi
  if ((BENCH_RC != 0)); then run_status=failed; return; fi
  applied_changes=$backlog_changes
  run_status=ok
}

run_stream() {
  local r=$1 dir=$2 log=$3 t0
  {
    psql_on "$SRC_PORT" "$DB" -c "CREATE PUBLICATION bench_stream_pub FOR ALL TABLES"
    psql_on "$SRC_PORT" "$DB" -c "SELECT pg_create_logical_replication_slot('bench_stream', 'pgoutput')"
  } >"$dir/setup.log" 2>&1 || { cp "$dir/setup.log" "$log"; run_status=setup-failed; return; }
  make_backlog "$dir/pgbench.log" || { run_status=pgbench-failed; return; }
  t0=$(date +%s.%N)
  timed "$dir" "$PG_BIN/pg_recvlogical" -h 127.0.0.1 -p "$SRC_PORT" -U postgres -d "$DB" \
    -S bench_stream --start -o proto_version=1 -o publication_names=bench_stream_pub \
    -E "$goal" --no-loop -f /dev/null
  log_prepend "$log" "$dir/setup.log" "publication and slot (not timed)"
  if ((BENCH_RC == 124)); then run_status=timeout; return; fi
  if ((BENCH_RC != 0)); then run_status=failed; return; fi
  applied_changes=$backlog_changes
  run_status=ok
}

mkdir -p bench-out
results="$work/results.tsv"
: >"$results"
any_failed=0
n=${#tools[@]}
for ((r = 1; r <= ROUNDS; r++)); do
  echo "==> round $r/$ROUNDS"
  for ((k = 0; k < n; k++)); do
    tool=${tools[$(((k + r - 1) % n))]}
    dir="$work/run-$r-$tool"
    mkdir -p "$dir"
    log="bench-out/$out-$tool-round$r.log"
    if [[ $tool == pgmove && $pgmove_build != ok ]]; then
      printf '%s\t%s\t0\t-\tbuild-failed\t0\t0\t-\t-\t0\n' "$tool" "$r" >>"$results"
      printf '    %-9s failed: pgmove did not build (bench-out/pgmove-build.log)\n' "$tool"
      any_failed=1
      continue
    fi
    if [[ $tool == pgcopydb && -n $pgcopydb_skip ]]; then
      printf '%s\t%s\t0\t-\tnot-run\t0\t0\t-\t-\t0\n' "$tool" "$r" >>"$results"
      continue
    fi
    reset_servers
    run_status=failed BENCH_SECONDS=0 BENCH_RSS_KB=- applied_changes=0 visible_s=- active_s=- stalled=
    backlog_txns=0 backlog_wal=0 backlog_changes=0 src_check=
    case $tool in
      pgmove) run_pgmove "$r" "$dir" "$log" ;;
      native) run_native "$r" "$dir" "$log" ;;
      pglogical) run_pglogical "$r" "$dir" "$log" ;;
      pgcopydb) run_pgcopydb "$r" "$dir" "$log" ;;
      stream) run_stream "$r" "$dir" "$log" ;;
    esac
    status=$run_status
    if [[ $status == ok ]]; then
      dst_check=$(psql_on "$DST_PORT" "$DB" -At -c "$check_sql" 2>&1 || true)
      [[ $tool == stream ]] && dst_check=$src_check   # applies nothing: nothing to check
      if [[ $dst_check != "$src_check" ]]; then
        status=mismatch
        printf '    %-9s MISMATCH: the target differs from the source after catch-up (%s s)\n' "$tool" "$BENCH_SECONDS"
        echo "      source: $src_check"
        echo "      target: $dst_check"
      else
        rate=$(awk -v c="$applied_changes" -v s="$BENCH_SECONDS" 'BEGIN { printf "%.0f", (s > 0 ? c / s : 0) }')
        printf '    %-9s %8s s   %s changes (%s/s); streaming from %s s, last transaction visible at %s s; backlog %s transactions, %s WAL\n' \
          "$tool" "$BENCH_SECONDS" "$applied_changes" "$rate" "$active_s" "$visible_s" "$backlog_txns" \
          "$(numfmt --to=iec-i --suffix=B "$backlog_wal")"
        if [[ $applied_changes != "$backlog_changes" ]]; then
          echo "      note: the tool counted $applied_changes changes, the source's statistics $backlog_changes"
        fi
      fi
    else
      printf '    %-9s FAILED (%s) after %s s; last lines of %s:\n' "$tool" "$status" "$BENCH_SECONDS" "$log"
      tail -n 15 "$log" | sed 's/^/      | /'
    fi
    [[ $status == ok ]] || any_failed=1
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$r" "$BENCH_SECONDS" "$BENCH_RSS_KB" "$status" \
      "$applied_changes" "$backlog_txns" "$active_s" "$visible_s" "$backlog_wal" >>"$results"
    rm -rf "$dir"
    bg_pids=()   # all waited for
  done
done
reset_servers >/dev/null

# Tools not asked for still get a row, saying why.
report_tools=("${tools[@]}")
if ! wants pgcopydb && [[ $WORKLOAD == pgbench ]]; then
  report_tools+=(pgcopydb)
  for ((r = 1; r <= ROUNDS; r++)); do printf 'pgcopydb\t%s\t0\t-\tnot-run\t0\t0\t-\t-\t0\n' "$r" >>"$results"; done
fi

header="$work/header.txt"
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  bench_machine_lines "$SRC_PORT"
  echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); other work on the machine makes the numbers noisy"
  echo "data: pgbench scale $SCALE, source database $src_size"
  if [[ $WORKLOAD == rowwise ]]; then
    echo "workload: rowwise: per transaction an update of rw_full (REPLICA IDENTITY FULL, no key, 5,000 rows each twice, non-unique index on id: 2 rows), a primary-key update of rw_key (100,000 rows), an update of rw_wide (2,000 rows) leaving its 8 kB TOASTed doc unchanged, a pgbench_history insert"
    echo "backlog: \`pgbench -n -f rowwise.sql -c 2 -j 2 -t $((TXNS / 2))\`, written while nothing consumed the slot; goal = the source's pg_current_wal_lsn() after it"
  else
    echo "backlog: \`pgbench -n -c 2 -j 2 -t $((TXNS / 2))\` (built-in TPC-B-like script: 3 updates + 1 insert per transaction), written while nothing consumed the slot; goal = the source's pg_current_wal_lsn() after it"
  fi
  echo "runs: $ROUNDS rounds per tool, in a different order each round; both servers local; each run checked: balance sums and pgbench_history count equal on source and target$([[ $WORKLOAD == rowwise ]] && echo ", and every row of rw_full, rw_key and rw_wide")"
  settings=$(printf '%s, ' "${conf[@]}")
  echo "server settings (both): ${settings%, }, wal_level = logical"
  echo "pgmove: full load, SIGTERM, backlog, then timed: \`pgmove apply --yes --exit-when-caught-up\` from its start (process start, plan checks, connections included) until it exits with pgmove.progress.applied_lsn >= goal (pgmove $pgmove_version)"
  echo "native: \`CREATE PUBLICATION ... FOR ALL TABLES\`, \`CREATE SUBSCRIPTION ... WITH (copy_data = true)\` on a schema-only target, DISABLE after the initial sync, backlog, then timed: from \`ALTER SUBSCRIPTION ... ENABLE\` until the slot's confirmed_flush_lsn >= goal (the subscriber reports its flush position about once a second when idle); ENABLE waits, untimed, until wal_retrieve_retry_interval + 1 s after CREATE SUBSCRIPTION, else the launcher would hold the worker back up to 5 s"
  if wants pglogical; then
    echo "pglogical: provider node on the source (pgbench's keyed tables in set default, pgbench_history in default_insert_only), subscriber node and \`pglogical.create_subscription(synchronize_data := true)\` on a schema-only target, \`alter_subscription_disable\` after the initial sync, backlog, then timed: from \`pglogical.alter_subscription_enable(immediate := true)\` until the subscription's slot's confirmed_flush_lsn >= goal (pglogical $(psql_on "$SRC_PORT" postgres -At -c "SELECT default_version FROM pg_available_extensions WHERE name = 'pglogical'"))"
  fi
  if [[ $WORKLOAD == rowwise ]]; then
    :
  elif ! wants pgcopydb; then
    echo "pgcopydb: not run (not in TOOLS): Debian's pgcopydb ${pgcopydb_version:-0.10} follow breaks on this backlog (\"BUG: logical message xid ... is different from the current transaction xid\" once the wal2json stream crosses a WAL segment with interleaved transactions, then it waits forever); TOOLS=all runs it anyway"
  elif [[ -n $pgcopydb_skip ]]; then
    echo "pgcopydb: not run: $pgcopydb_skip"
  else
    echo "pgcopydb: \`pgcopydb clone\`, then \`stream setup\` (wal2json slot) and \`stream sentinel set apply\`, backlog, then timed: \`pgcopydb follow --resume --not-consistent --endpos GOAL\` until it exits (pgcopydb ${pgcopydb_version:-?}); stopped as stalled after $STALL_TIMEOUT s without a new target row"
  fi
  if wants stream; then
    echo "stream (no apply, the ceiling): a pgoutput slot and \`CREATE PUBLICATION ... FOR ALL TABLES\` made before the backlog, then timed: \`pg_recvlogical --start -o proto_version=1 -E GOAL -f /dev/null\` until it exits: what the source's walsender decodes and sends per second"
  fi
  echo "start s: from the same start until a replication slot on the source is in use; visible s: until the backlog's last transaction is visible on the target (its pgbench_history row count reaches the source's); apply s = visible - start: the apply engine alone (polled every 100 ms, so +-0.1 s)"
} >"$header"

echo
echo "==> results"
sed 's/^/    /' "$header"
echo
python3 - "$results" "$(IFS=,; echo "${report_tools[*]}")" "bench-out/$out.md" "$header" <<'PY' | sed 's/^/    /'
import statistics, sys

results, tools_csv, out_md, header_file = sys.argv[1:5]
tools = [t for t in tools_csv.split(",") if t]
runs = {t: [] for t in tools}
num = lambda x: None if x == "-" else float(x)
with open(results) as f:
    for line in f:
        p = line.rstrip("\n").split("\t")
        if len(p) != 10 or p[0] not in runs:
            continue
        runs[p[0]].append({
            "secs": float(p[2]), "rss": None if p[3] == "-" else int(p[3]), "status": p[4],
            "changes": int(p[5]), "txns": int(p[6]), "active": num(p[7]), "visible": num(p[8]),
            "wal": int(p[9]),
        })

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None

rows = {}
for t in tools:
    ok = [r for r in runs[t] if r["status"] == "ok"]
    secs = [r["secs"] for r in ok]
    for r in ok:
        if r["active"] is not None and r["visible"] is not None:
            r["apply"] = max(r["visible"] - r["active"], 0.01)
        else:
            r["apply"] = None
    rows[t] = {
        "n": len(runs[t]), "ok": len(ok),
        "median": med(secs), "min": min(secs) if secs else None, "max": max(secs) if secs else None,
        "cps": med([r["changes"] / r["secs"] for r in ok if r["secs"] > 0]),
        "tps": med([r["txns"] / r["secs"] for r in ok if r["secs"] > 0]),
        "start": med([r["active"] for r in ok]),
        "visible": med([r["visible"] for r in ok]),
        "apply": med([r["apply"] for r in ok]),
        "apply_cps": med([r["changes"] / r["apply"] for r in ok if r["apply"]]),
        "rss": max([r["rss"] for r in ok if r["rss"] is not None], default=None),
        "failed": sorted({r["status"] for r in runs[t] if r["status"] != "ok"}),
    }
native = rows.get("native")

def fmt(v, spec="{:.2f}"):
    return "-" if v is None else spec.format(v)

def ratio(t, key):
    a, b = (native or {}).get(key), rows[t][key]
    return "{:.2f}".format(a / b) if a and b else "-"

head = ["tool", "rounds ok", "catch-up s (median)", "min s", "max s", "changes/s", "transactions/s",
        "native s / tool s", "start s", "apply s", "apply changes/s", "native / tool (apply)",
        "peak RSS MB"]
table = []
for t in tools:
    r = rows[t]
    ok = f'{r["ok"]}/{r["n"]}'
    if r["failed"] == ["not-run"]:
        ok = "not run"
    elif r["failed"]:
        ok += " (" + ",".join(r["failed"]) + ")"
    table.append([t, ok, fmt(r["median"]), fmt(r["min"]), fmt(r["max"]), fmt(r["cps"], "{:,.0f}"),
                  fmt(r["tps"], "{:,.0f}"), ratio(t, "median"), fmt(r["start"]), fmt(r["apply"]),
                  fmt(r["apply_cps"], "{:,.0f}"), ratio(t, "apply"),
                  fmt(r["rss"] / 1024 if r["rss"] else None, "{:.0f}")])

done = [r for t in tools for r in runs[t] if r["txns"] > 0]
backlog = None
if done:
    txns = sorted({r["txns"] for r in done})
    changes = sorted({r["changes"] for r in done if r["status"] == "ok"})
    wal = [r["wal"] for r in done]
    mib = lambda b: f"{b / 1048576:.1f} MiB"
    backlog = (f"backlog per run: {'/'.join(str(x) for x in txns)} transactions"
               + (f", {'/'.join(str(x) for x in changes)} row changes" if changes else "")
               + f", {mib(statistics.median(wal))} of WAL from the start LSN to the goal"
               f" (median; min {mib(min(wal))}, max {mib(max(wal))}; the first writes after a checkpoint include full-page images)")

with open(header_file) as f:
    header = [l.rstrip("\n") for l in f if l.strip()]

widths = [max(len(str(x)) for x in col) for col in zip(head, *table)]
line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
if backlog:
    print(backlog)
print(line(head))
print(line(["-" * w for w in widths]))
for row in table:
    print(line(row))

with open(out_md, "w") as f:
    for h in header:
        f.write(f"- {h}\n")
    if backlog:
        f.write(f"- {backlog}\n")
    f.write("\n| " + " | ".join(head) + " |\n")
    f.write("|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|\n")
    for row in table:
        f.write("| " + " | ".join(str(c) for c in row) + " |\n")
    f.write("\nchanges/s and transactions/s are medians of the per-run rates over the catch-up seconds; "
            "apply changes/s over the apply seconds. Ratios above 1 mean faster than native logical "
            "replication (the goal for pgmove is 1.5).\n")
PY
cp "$results" "bench-out/$out.tsv"
echo
echo "markdown: bench-out/$out.md; raw runs: bench-out/$out.tsv; logs: bench-out/$out-*.log"
exit "$any_failed"
