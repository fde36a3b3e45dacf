#!/usr/bin/env bash
# Cutover benchmark: the write outage of a switchover under a pgbench writer, pgmove (copy-cdc,
# `cutover.verify: checksums`) beside a native publication/subscription switchover scripted
# the way pg_easy_replicate does it, on the same two throwaway local servers, several rounds
# each; prints medians, the ratio pgmove / native, pgmove's outage parts, and writes the
# tables as markdown to bench-out/cutover.md.
#
#   bash scripts/bench-cutover.sh                        # scale 50, 3 rounds
#   SCALE=2 ROUNDS=1 bash scripts/bench-cutover.sh       # quick check (a few minutes)
#
# Settings (environment):
#   SCALE=50          pgbench scale of the source (50 = 5M pgbench_accounts rows)
#   ROUNDS=3          switchovers per tool; the table shows the median, min and max
#   WRITER_TPS=200    the pgbench writer's rate (pgbench -R, 2 clients, TPC-B-like); 0: unlimited
#   WARMUP=10         seconds the writer runs while replicating before the switchover starts
#   PGMOVE_BIN=PATH   use this pgmove binary instead of building target/release/pgmove
#
# Each round, for each tool (in a different order each round): an empty target, the tool's
# full load and replication, the writer started, WARMUP seconds, then the switchover:
#   pgmove:  `pgmove cutover --yes --format json` while `pgmove apply` streams. The outage is
#            the report's write_outage_secs (from the fence to live); its parts come from the
#            same report: final catch-up, the verification inside the outage (the re-check of
#            what apply touched since the last re-check round began), the rest (fence,
#            sessions, sequences, large objects, records); the verification ahead of the fence
#            and its re-check rounds (their number, seconds and keys are shown) run before it,
#            outside the outage.
#   native:  publication FOR ALL TABLES, schema by pg_dump --schema-only, a subscription
#            (copy_data) until every table is ready; then the timed switchover as
#            pg_easy_replicate's switchover does it: writes stopped (the same fence as pgmove's:
#            ALTER DATABASE ... SET default_transaction_read_only = on and the writer's
#            sessions terminated), the lag waited out (a marker row written on the source after
#            the fence is visible on the target, polled every 20 ms: at least as prompt as
#            pg_easy_replicate's lag polling), sequences set on the target from the source
#            (setval), the subscription dropped. No data verification (pg_easy_replicate has
#            none): the outage is measured from the fence until the subscription is dropped.
# After each round the pgbench tables' balance sums and pgbench_history's row count must equal
# the source's, or the run counts as MISMATCH. Exit status: 0 when every run succeeded.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

SCALE=${SCALE:-50}
ROUNDS=${ROUNDS:-3}
WRITER_TPS=${WRITER_TPS:-200}
WARMUP=${WARMUP:-10}
die() { echo "error: $*" >&2; exit 2; }
[[ $SCALE =~ ^[1-9][0-9]*$ ]] || die "SCALE must be a positive integer (got '$SCALE')"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer (got '$ROUNDS')"
[[ $WRITER_TPS =~ ^[0-9]+$ ]] || die "WRITER_TPS must be a non-negative integer (got '$WRITER_TPS')"
[[ $WARMUP =~ ^[0-9]+$ ]] || die "WARMUP must be a non-negative integer (got '$WARMUP')"

PGMOVE_BENCH=1 bash scripts/install-deps.sh
source scripts/lib/cluster.sh
source scripts/lib/bench.sh

pgmove=${PGMOVE_BIN:-$root/target/release/pgmove}
if [[ -z ${PGMOVE_BIN:-} ]]; then
  echo "==> building pgmove (cargo build --release --locked)"
  mkdir -p bench-out
  cargo build --release --locked 2>bench-out/pgmove-build.log \
    || { tail -n 20 bench-out/pgmove-build.log >&2; die "cargo build --release failed"; }
fi
[[ -x $pgmove ]] || die "$pgmove is not an executable"

work=$(mktemp -d /tmp/pgmove-bench-cutover-XXXXXX)
bg_pids=()
# shellcheck disable=SC2317  # called by the trap
cleanup() {
  local p
  for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  stop_clusters
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

conf=(
  "shared_buffers = '1GB'"
  "max_wal_size = '8GB'"
  "checkpoint_timeout = '30min'"
  "synchronous_commit = off"
  "maintenance_work_mem = '512MB'"
  "work_mem = '64MB'"
)
echo "==> starting two throwaway servers"
start_cluster SRC "${conf[@]}"
start_cluster DST "${conf[@]}"
DB=bench
export PGCONNECT_TIMEOUT=10

echo "==> building the source: pgbench scale $SCALE"
psql_on "$SRC_PORT" postgres -c "CREATE DATABASE $DB"
"$PG_BIN/pgbench" -i -q -s "$SCALE" -h 127.0.0.1 -p "$SRC_PORT" -U postgres "$DB" \
  >"$work/pgbench-init.log" 2>&1 || { cat "$work/pgbench-init.log" >&2; exit 1; }
psql_on "$SRC_PORT" "$DB" -c "CREATE TABLE bench_marker (id serial PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())" \
  -c "VACUUM ANALYZE" -c "CHECKPOINT"

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
cdc:
  tables_without_key: insert-only
cutover:
  verify: checksums
  max_lag: 1s
YAML

check_sql="SELECT concat_ws(' ',
  'abalance=' || (SELECT sum(abalance) FROM pgbench_accounts),
  'tbalance=' || (SELECT sum(tbalance) FROM pgbench_tellers),
  'bbalance=' || (SELECT sum(bbalance) FROM pgbench_branches),
  'history=' || (SELECT count(*) FROM pgbench_history))"

# The source writable again, without subscription, slot, publication or pgmove state; an empty
# target database.
reset_servers() {
  psql_on "$SRC_PORT" postgres -c "ALTER DATABASE $DB RESET default_transaction_read_only" >/dev/null
  if [[ $(psql_on "$DST_PORT" postgres -At -c "SELECT count(*) FROM pg_database WHERE datname = '$DB'") == 1 ]]; then
    psql_on "$DST_PORT" "$DB" -At >/dev/null <<'SQL'
SET client_min_messages = warning;
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT subname FROM pg_subscription LOOP
    EXECUTE format('ALTER SUBSCRIPTION %I DISABLE', r.subname);
    EXECUTE format('ALTER SUBSCRIPTION %I SET (slot_name = NONE)', r.subname);
    EXECUTE format('DROP SUBSCRIPTION %I', r.subname);
  END LOOP;
END $$;
SQL
  fi
  psql_on "$SRC_PORT" "$DB" -At -c "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE active" >/dev/null
  sleep 0.5
  psql_on "$SRC_PORT" "$DB" -At >/dev/null <<'SQL'
SET client_min_messages = warning;
SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active;
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
SQL
  recreate_db DST "$DB"
  psql_on "$SRC_PORT" postgres -c CHECKPOINT >/dev/null
  psql_on "$DST_PORT" postgres -c CHECKPOINT >/dev/null
}

writer_pid=
start_writer() {
  local rate=()
  ((WRITER_TPS > 0)) && rate=(-R "$WRITER_TPS")
  "$PG_BIN/pgbench" -n -c 2 -j 2 "${rate[@]}" -T 36000 -h 127.0.0.1 -p "$SRC_PORT" -U postgres "$DB" \
    >"$1" 2>&1 &
  writer_pid=$!
  bg_pids+=("$writer_pid")
}
stop_writer() {
  [[ -n $writer_pid ]] && { kill "$writer_pid" 2>/dev/null || true; wait "$writer_pid" 2>/dev/null || true; }
  writer_pid=
}

# wait_until SECONDS PORT DB SQL: polls every 20 ms until SQL returns 't'.
wait_until() {
  local limit=$1 port=$2 db=$3 sql=$4 end
  end=$((SECONDS + limit))
  while ((SECONDS < end)); do
    [[ $(psql_on "$port" "$db" -At -c "$sql" 2>/dev/null || true) == t ]] && return 0
    sleep 0.02
  done
  return 1
}

results="$work/results.tsv"
parts="$work/parts.tsv"
: >"$results"
: >"$parts"

# Each sets outage (seconds) and run_status.
run_pgmove() {
  local r=$1 dir=$2 pid json
  "$pgmove" apply "$plan" --yes >"$dir/apply.log" 2>&1 &
  pid=$!
  bg_pids+=("$pid")
  # Replicating, and caught up once.
  if ! wait_until 3600 "$DST_PORT" "$DB" "SELECT phase = 'replicating' FROM pgmove.runs WHERE plan_name = 'bench'"; then
    run_status=load-failed; kill "$pid" 2>/dev/null || true; return
  fi
  start_writer "$dir/writer.log"
  sleep "$WARMUP"
  json="$dir/cutover.json"
  if ! "$pgmove" cutover "$plan" --yes --format json >"$json" 2>"$dir/cutover.log"; then
    run_status=failed
  else
    run_status=ok
  fi
  stop_writer
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  outage=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("write_outage_secs") or "")' "$json" 2>/dev/null || true)
  [[ -n $outage ]] || { run_status=failed; outage=0; }
  python3 - "$json" "$r" >>"$parts" <<'PY' || true
import json, sys
j = json.load(open(sys.argv[1]))
o = j.get("write_outage_secs") or 0
c = j.get("final_catch_up_secs") or 0
v = j.get("verify_secs") or 0
re = j.get("recheck") or {}
rounds = re.get("rounds") or []
print("\t".join(str(x) for x in [sys.argv[2], o, c, v, max(o - c - v, 0), j.get("pre_verify_secs") or 0,
      re.get("keys", 0), re.get("chunks", 0), re.get("whole_tables", 0), j.get("verify_identical"),
      len(rounds), sum(r.get("secs", 0) for r in rounds), "/".join(str(r.get("keys", 0)) for r in rounds) or "-"]))
PY
}

run_native() {
  local dir=$2 t0 t1 marker seqs
  "$PG_BIN/pg_dump" --schema-only -h 127.0.0.1 -p "$SRC_PORT" -U postgres "$DB" \
    | psql_on "$DST_PORT" "$DB" >/dev/null 2>"$dir/schema.log"
  psql_on "$SRC_PORT" "$DB" -c "CREATE PUBLICATION bench_pub FOR ALL TABLES" >/dev/null
  psql_on "$DST_PORT" "$DB" -c "CREATE SUBSCRIPTION bench_sub CONNECTION 'host=127.0.0.1 port=$SRC_PORT user=postgres dbname=$DB' PUBLICATION bench_pub" >/dev/null
  if ! wait_until 3600 "$DST_PORT" "$DB" "SELECT count(*) > 0 AND bool_and(srsubstate = 'r') FROM pg_subscription_rel"; then
    run_status=load-failed; return
  fi
  start_writer "$dir/writer.log"
  sleep "$WARMUP"
  t0=$(date +%s.%N)
  # Writes stopped: the database read-only, the writer's sessions ended.
  psql_on "$SRC_PORT" "$DB" -At >/dev/null <<SQL
ALTER DATABASE $DB SET default_transaction_read_only = on;
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend';
SQL
  for _ in $(seq 1 500); do
    [[ $(psql_on "$SRC_PORT" "$DB" -At -c "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'") == 0 ]] && break
    sleep 0.02
  done
  # The lag waited out: a marker written after the fence is on the target.
  marker=$(psql_on "$SRC_PORT" "$DB" -At -c "SET default_transaction_read_only = off" -c "INSERT INTO bench_marker DEFAULT VALUES RETURNING id")
  if ! wait_until 600 "$DST_PORT" "$DB" "SELECT EXISTS (SELECT 1 FROM bench_marker WHERE id = $marker)"; then
    run_status=failed; outage=0; stop_writer; return
  fi
  # Sequences, then the subscription dropped.
  seqs=$(psql_on "$SRC_PORT" "$DB" -At -c "SELECT string_agg(format('SELECT setval(%L, %s, %s);', schemaname || '.' || sequencename, coalesce(last_value, 1), last_value IS NOT NULL), ' ') FROM pg_sequences")
  psql_on "$DST_PORT" "$DB" -At -c "$seqs" -c "DROP SUBSCRIPTION bench_sub" >/dev/null
  t1=$(date +%s.%N)
  outage=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  run_status=ok
  stop_writer
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
tools=(pgmove native)
for r in $(seq 1 "$ROUNDS"); do
  order=("${tools[@]}")
  ((r % 2 == 0)) && order=(native pgmove)
  for t in "${order[@]}"; do
    echo "==> round $r: $t"
    dir="$work/$t-$r"
    mkdir -p "$dir"
    reset_servers
    outage=0
    run_status=failed
    "run_$t" "$r" "$dir" 2>>"$dir/errors.log" || run_status=failed
    if [[ $run_status == ok ]]; then
      src_check=$(psql_on "$SRC_PORT" "$DB" -At -c "$check_sql")
      dst_check=$(psql_on "$DST_PORT" "$DB" -At -c "$check_sql")
      [[ $src_check == "$dst_check" ]] || { run_status=mismatch; echo "    MISMATCH: source $src_check, target $dst_check"; }
    else
      echo "    $t: $run_status (logs in $dir)"; tail -n 5 "$dir"/*.log 2>/dev/null | sed 's/^/    | /' || true
    fi
    echo "    $t: outage ${outage}s ($run_status)"
    printf '%s\t%s\t%s\t-\t%s\n' "$t" "$r" "$outage" "$run_status" >>"$results"
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

mkdir -p bench-out
header="$work/header.txt"
{
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'): pgbench scale $SCALE, writer 2 clients at ${WRITER_TPS} tps (0: unlimited), $ROUNDS round(s), warm-up ${WARMUP}s"
  echo "load average before/after: $load_before / $load_after"
  bench_machine_lines "$SRC_PORT"
  echo "pgmove: $("$pgmove" --version 2>/dev/null | awk '{ print $2 }') ($(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
  echo "outage = seconds writes were refused (median); ratio = pgmove / native (lower is better)"
} >"$header"
status=0
grep -qv $'\tok$' "$results" && status=1
bench_report "$results" pgmove,native pgmove bench-out/cutover.md "$header" | sed 's/best peer/native/g'
sed -i 's/best peer/native/g; s/Best peer/Native/g' bench-out/cutover.md
python3 - "$parts" >>bench-out/cutover.md <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
if rows:
    med = lambda i: statistics.median(float(r[i]) for r in rows)
    print("\npgmove's outage, its parts (medians of %d round(s)):\n" % len(rows))
    print("| outage s | final catch-up s | verify inside the outage s | rest s | verify ahead of the fence s (outside) | re-check rounds before the fence | their s (outside) | keys re-checked inside | chunks re-checked | tables whole | identical |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    print("| %.2f | %.2f | %.2f | %.2f | %.2f | %d | %.2f | %d | %d | %d | %s |" % (med(1), med(2), med(3), med(4), med(5),
          med(10), med(11), med(6), med(7), med(8), ",".join(sorted({r[9] for r in rows}))))
    print("\nkeys compared per round before the fence, per run: " + "; ".join(r[12] for r in rows))
PY
echo
sed -n '/pgmove.s outage/,$p' bench-out/cutover.md
echo "written: bench-out/cutover.md"
exit $status
