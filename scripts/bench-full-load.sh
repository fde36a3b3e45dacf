#!/usr/bin/env bash
# Full-load benchmark: pgmove against pg_dump/pg_restore, pgcopydb and pglogical's initial
# sync, on the same two throwaway local servers (both with pglogical in
# shared_preload_libraries) and the same data, several rounds each; prints medians and the ratio
# pgmove/best peer, and writes the table as markdown to bench-out/full-load.md.
#
#   bash scripts/bench-full-load.sh                       # pgbench scale 50, 3 rounds: ~7 min on 2 cores, plus the first build
#   SCALE=5 ROUNDS=1 bash scripts/bench-full-load.sh      # quick check
#
# Settings (environment):
#   SCALE=50            pgbench scale of the source (50 = 5M pgbench_accounts rows, ~750 MB)
#   WIDE_ROWS=300000    rows in each of the 3 wide tables (20 mixed-type columns; 0 = none)
#   ROUNDS=3            timed runs per tool; the table shows the median, min and max
#   JOBS=$(nproc)       parallel table jobs and index jobs, for every tool that has them
#   SPLIT=100MB         split tables larger than this (pgcopydb-split and pgmove)
#   TOOLS=all           comma list, a subset of: pg_dump-pipe,pg_dump-dir,pgcopydb,pgcopydb-split,
#                       pglogical,pgmove,pgmove-pglogical
#   PGMOVE_STRATEGY=copy-cdc   the plan's strategy for the pgmove run (copy-cdc or dump-restore)
#
# pglogical is timed, as one script: the source's pre-data schema restored on the target
# (pg_dump --section=pre-data | psql), a provider node on the source (tables with a key in set
# `default`, the others in `default_insert_only`), a subscriber node and
# pglogical.create_subscription(synchronize_structure := false, synchronize_data := true), a
# wait (polled every 200 ms) until the subscription replicates and its sync and every table's
# are ready, then the post-data schema (indexes, constraints) restored the same way.
# pgmove-pglogical is `pgmove apply --yes` of the same plan with strategy pglogical (it returns
# once every table is synced, post-data restored and the subscription replicating).
#   PGMOVE_BIN=PATH     use this pgmove binary instead of building target/release/pgmove
#
# Each run starts from an empty target database and a checkpointed, idle pair of servers; the
# tools run in a different order each round. After each run the target's row counts (every
# table), indexes and constraints must equal the source's, or that run counts as failed.
# Peak RSS is that of the largest single client process (GNU time), never the servers'.
# Exit status: 0 when every run succeeded, 1 otherwise (the table is printed either way).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

SCALE=${SCALE:-50}
WIDE_ROWS=${WIDE_ROWS:-300000}
ROUNDS=${ROUNDS:-3}
JOBS=${JOBS:-$(nproc)}
SPLIT=${SPLIT:-100MB}
PGMOVE_STRATEGY=${PGMOVE_STRATEGY:-copy-cdc}
ALL_TOOLS=pg_dump-pipe,pg_dump-dir,pgcopydb,pgcopydb-split,pglogical,pgmove,pgmove-pglogical
TOOLS=${TOOLS:-all}
[[ $TOOLS == all ]] && TOOLS=$ALL_TOOLS

die() { echo "error: $*" >&2; exit 2; }
[[ $SCALE =~ ^[1-9][0-9]*$ ]] || die "SCALE must be a positive integer (got '$SCALE')"
[[ $WIDE_ROWS =~ ^[0-9]+$ ]] || die "WIDE_ROWS must be an integer (got '$WIDE_ROWS')"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer (got '$ROUNDS')"
[[ $JOBS =~ ^[1-9][0-9]*$ ]] || die "JOBS must be a positive integer (got '$JOBS')"
[[ $SPLIT =~ ^[0-9]+(\.[0-9]+)?\ ?(kB|MB|GB|TB)$ ]] || die "SPLIT must be a size like 100MB or 1GB (got '$SPLIT')"
tools=()
IFS=, read -r -a _req <<<"$TOOLS"
for t in "${_req[@]}"; do
  t=${t// /}
  [[ -z $t ]] && continue
  [[ ",$ALL_TOOLS," == *",$t,"* ]] || die "unknown tool '$t' in TOOLS (known: $ALL_TOOLS)"
  tools+=("$t")
done
((${#tools[@]})) || die "TOOLS selects no tool"
wants() { [[ " ${tools[*]} " == *" $1 "* ]]; }

PGMOVE_BENCH=1 bash scripts/install-deps.sh
source scripts/lib/cluster.sh
source scripts/lib/bench.sh
source scripts/lib/servers.sh
bench_need_time

wants_pgmove() { wants pgmove || wants pgmove-pglogical; }
pgmove_build=ok
if wants_pgmove; then bench_build_pgmove "$root"; fi

# Both servers get the same settings, tuned for a bulk load; every tool runs against them.
# pglogical is preloaded on both whatever TOOLS says, with room for its workers.
[[ -e /usr/lib/postgresql/$PG_MAJOR/lib/pglogical.so ]] \
  || die "pglogical is not installed (Debian package postgresql-$PG_MAJOR-pglogical; scripts/install-deps.sh installs it as root)"
bench_start_servers "shared_preload_libraries = 'pglogical'" "max_worker_processes = 16" "${BENCH_BULK_CONF[@]}"

echo "==> building the source: pgbench scale $SCALE and 3 wide tables of $WIDE_ROWS rows"
psql_on "$SRC_PORT" postgres -c "CREATE DATABASE $DB"
"$PG_BIN/pgbench" -i -q -s "$SCALE" --foreign-keys -h 127.0.0.1 -p "$SRC_PORT" -U postgres "$DB" \
  >"$work/pgbench-init.log" 2>&1 || { cat "$work/pgbench-init.log" >&2; exit 1; }
tables=(pgbench_accounts pgbench_branches pgbench_tellers pgbench_history)
if ((WIDE_ROWS > 0)); then
  for i in 1 2 3; do
    tables+=("wide_$i")
    psql_on "$SRC_PORT" "$DB" <<SQL
CREATE TABLE wide_$i (
  id          bigint PRIMARY KEY,
  created_at  timestamptz NOT NULL,
  updated_at  timestamptz,
  day         date,
  customer    text NOT NULL,
  email       text,
  status      varchar(16),
  code        char(8),
  amount      numeric(12,2),
  tax         numeric,
  quantity    integer,
  small       smallint,
  weight      double precision,
  ratio       real,
  active      boolean,
  ref         uuid,
  tags        text[],
  attrs       jsonb,
  payload     bytea,
  note        text
);
INSERT INTO wide_$i
SELECT g,
       timestamptz '2024-01-01' + g * interval '17 seconds',
       CASE WHEN g % 3 = 0 THEN NULL ELSE timestamptz '2024-06-01' + g * interval '5 seconds' END,
       date '2020-01-01' + (g % 2000),
       'customer ' || (g * $i % 100003),
       'user' || g || '@example.com',
       (ARRAY['new','paid','shipped','returned'])[1 + g % 4],
       to_hex(g::bigint * 7919 + $i),
       round((g % 100000) / 7.0, 2),
       (g % 1000) / 3.0,
       g % 500,
       (g % 32000)::smallint,
       sqrt(g) * $i,
       (g % 97) / 13.0,
       g % 5 <> 0,
       md5(g::text || '$i')::uuid,
       ARRAY['t' || g % 10, 'tag' || g % 77, 'x' || $i],
       jsonb_build_object('id', g, 'name', md5(g::text), 'n', g % 1000, 'ok', g % 2 = 0,
                          'list', jsonb_build_array(g, g % 7, 'v' || g % 13)),
       decode(md5(g::text) || md5((g + $i)::text), 'hex'),
       CASE WHEN g % 4 = 0 THEN NULL ELSE md5((g * $i)::text) END
FROM generate_series(1, $WIDE_ROWS) AS g;
CREATE INDEX wide_${i}_created_at ON wide_$i (created_at);
CREATE INDEX wide_${i}_customer ON wide_$i (customer);
SQL
  done
fi
psql_on "$SRC_PORT" "$DB" -c "VACUUM ANALYZE" -c "CHECKPOINT"

# What every target must have after a run: row counts of every table, index and constraint counts.
shape_sql="SELECT concat_ws(' ',"
for t in "${tables[@]}"; do shape_sql+=" '$t=' || (SELECT count(*) FROM public.$t),"; done
shape_sql+=" 'indexes=' || (SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'),"
shape_sql+=" 'constraints=' || (SELECT count(*) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = 'public'))"
src_shape=$(psql_on "$SRC_PORT" "$DB" -At -c "$shape_sql")
src_size=$(psql_on "$SRC_PORT" "$DB" -At -c "SELECT pg_size_pretty(pg_database_size('$DB'))")
sizes=$(psql_on "$SRC_PORT" "$DB" -At -c "SELECT string_agg(relname || ' ' || pg_size_pretty(pg_total_relation_size(oid)), ', ' ORDER BY pg_total_relation_size(oid) DESC) FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace AND pg_total_relation_size(oid) > 1048576")
echo "    source: $src_size ($sizes)"
echo "    $src_shape"

pgcopydb_version=$(pgcopydb --version 2>/dev/null | awk '/^pgcopydb version/ { print $3; exit }')
pgmove_version=-
if wants_pgmove && [[ $pgmove_build == ok ]]; then pgmove_version=$(bench_pgmove_version "$root"); fi

# The pgmove plan. The full load is what is timed: copy-cdc's apply runs with
# --stop-after-load (change capture, which keeps apply running until stopped, is measured by
# scripts/bench-cdc.sh).
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
strategy: $PGMOVE_STRATEGY
downtime: 1h
jobs: $JOBS
index_jobs: $JOBS
split_tables_larger_than: $SPLIT
YAML
if [[ $PGMOVE_STRATEGY != dump-restore ]]; then
  cat >>"$plan" <<YAML
cdc:
  tables_without_key: insert-only   # pgbench_history has no key; pgbench only inserts into it
YAML
fi

# The same plan with strategy pglogical, for pgmove-pglogical.
plan_pglogical="$work/bench-pglogical.yaml"
sed -e "s/^strategy: .*/strategy: pglogical/" "$plan" >"$plan_pglogical"
grep -q '^cdc:' "$plan_pglogical" || printf 'cdc:\n  tables_without_key: insert-only   # pgbench_history has no key\n' >>"$plan_pglogical"

# pglogical's initial sync, as one script (see the top of this file): $1 source URI, $2 target
# URI, $3 source DSN as the target server reaches it, $4 target DSN, $5 psql.
pglogical_sync="$work/pglogical-sync.sh"
cat >"$pglogical_sync" <<'SH'
set -euo pipefail
src=$1 dst=$2 src_dsn=$3 dst_dsn=$4 bin=$5
q() { "$bin/psql" -X -q -v ON_ERROR_STOP=1 -d "$@"; }
"$bin/pg_dump" --schema-only --section=pre-data -d "$src" | q "$dst" >/dev/null
q "$src" -v dsn="$src_dsn" <<'SQL'
CREATE EXTENSION IF NOT EXISTS pglogical;
SELECT pglogical.create_node(node_name := 'bench_provider', dsn := :'dsn');
-- pglogical refuses a table without a primary key or replica identity index in a set that
-- replicates updates and deletes: those go to its insert-only set.
SELECT count(pglogical.replication_set_add_table(
         CASE WHEN EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND (i.indisprimary OR i.indisreplident))
              THEN 'default' ELSE 'default_insert_only' END, c.oid))
  FROM pg_class c WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace;
SQL
q "$dst" -v dsn="$dst_dsn" -v provider="$src_dsn" <<'SQL'
CREATE EXTENSION IF NOT EXISTS pglogical;
SELECT pglogical.create_node(node_name := 'bench_subscriber', dsn := :'dsn');
SELECT pglogical.create_subscription(subscription_name := 'bench_sub', provider_dsn := :'provider',
  replication_sets := ARRAY['default', 'default_insert_only'], synchronize_structure := false,
  synchronize_data := true, forward_origins := '{}');
SQL
ready="SELECT (SELECT status FROM pglogical.show_subscription_status('bench_sub')) || ' '
  || coalesce((SELECT string_agg(DISTINCT sync_status::text, ',') FROM pglogical.local_sync_status), '-')"
while :; do
  state=$(q "$dst" -At -c "$ready")
  [[ $state == "replicating r" ]] && break
  if [[ $state == down* ]]; then
    echo "the subscription is down: $state" >&2
    q "$dst" -c "SELECT * FROM pglogical.show_subscription_status('bench_sub')" >&2
    exit 1
  fi
  sleep 0.2
done
"$bin/pg_dump" --schema-only --section=post-data -d "$src" | q "$dst" >/dev/null
SH

reset_servers() { bench_reset_servers "$DB"; }

# The command each tool runs, into the array `cmd` (stdout and stderr go to the run's log).
# shellcheck disable=SC2016  # the bash -c scripts take their values as "$1"...
tool_cmd() {
  local tool=$1 dir=$2
  case $tool in
    pg_dump-pipe)
      cmd=(bash -c 'set -o pipefail; "$1/pg_dump" -Fc -d "$2" | "$1/pg_restore" -d "$3"'
        _ "$PG_BIN" "$SRC_URI" "$DST_URI")
      ;;
    pg_dump-dir)
      cmd=(bash -c '"$1/pg_dump" -Fd -j "$4" -f "$5" -d "$2" && "$1/pg_restore" -j "$4" -d "$3" "$5"'
        _ "$PG_BIN" "$SRC_URI" "$DST_URI" "$JOBS" "$dir/dump")
      ;;
    pgcopydb)
      cmd=(pgcopydb clone --source "$SRC_URI" --target "$DST_URI" --dir "$dir/pgcopydb"
        --table-jobs "$JOBS" --index-jobs "$JOBS")
      ;;
    pgcopydb-split)
      cmd=(pgcopydb clone --source "$SRC_URI" --target "$DST_URI" --dir "$dir/pgcopydb"
        --table-jobs "$JOBS" --index-jobs "$JOBS" --split-tables-larger-than "$SPLIT")
      ;;
    pglogical)
      cmd=(bash "$pglogical_sync" "$SRC_URI" "$DST_URI"
        "host=127.0.0.1 port=$SRC_PORT dbname=$DB user=postgres"
        "host=127.0.0.1 port=$DST_PORT dbname=$DB user=postgres" "$PG_BIN")
      ;;
    pgmove)
      cmd=("$pgmove" apply "$plan" --yes --dump-dir "$dir/pgmove-dump")
      if [[ "$PGMOVE_STRATEGY" == copy-cdc ]]; then cmd+=(--stop-after-load); fi
      ;;
    pgmove-pglogical)
      cmd=("$pgmove" apply "$plan_pglogical" --yes --dump-dir "$dir/pgmove-dump")
      ;;
  esac
}

declare -A legend=(
  [pg_dump-pipe]="\`pg_dump -Fc | pg_restore\` (one stream, default compression)"
  [pg_dump-dir]="\`pg_dump -Fd -j $JOBS\` to a local directory, then \`pg_restore -j $JOBS\` (both timed)"
  [pgcopydb]="\`pgcopydb clone --table-jobs $JOBS --index-jobs $JOBS\` (pgcopydb ${pgcopydb_version:-?})"
  [pgcopydb-split]="the same with \`--split-tables-larger-than $SPLIT\`"
  [pglogical]="pre-data schema, provider and subscriber nodes, \`pglogical.create_subscription(synchronize_data := true)\` until every table is ready, post-data schema (pglogical $(psql_on "$SRC_PORT" postgres -At -c "SELECT default_version FROM pg_available_extensions WHERE name = 'pglogical'"); peak RSS is the client's, the copy runs in the servers)"
  [pgmove]="\`pgmove apply --yes\` (copy-cdc: \`--stop-after-load\`), strategy $PGMOVE_STRATEGY, jobs $JOBS, index_jobs $JOBS, split_tables_larger_than $SPLIT (pgmove $pgmove_version)"
  [pgmove-pglogical]="\`pgmove apply --yes\`, strategy pglogical (returns once synced, post-data restored, replicating) (pgmove $pgmove_version)"
)

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
    log="bench-out/full-load-$tool-round$r.log"
    if [[ $tool == pgmove* && $pgmove_build != ok ]]; then
      printf '%s\t%s\t0\t-\tbuild-failed\n' "$tool" "$r" >>"$results"
      printf '    %-15s failed: pgmove did not build (bench-out/pgmove-build.log)\n' "$tool"
      any_failed=1
      continue
    fi
    reset_servers
    tool_cmd "$tool" "$dir"
    bench_timed "$log" -- "${cmd[@]}"
    status=ok
    if ((BENCH_RC != 0)); then
      status=failed
      printf '    %-15s FAILED (exit %s) after %s s; last lines of %s:\n' "$tool" "$BENCH_RC" "$BENCH_SECONDS" "$log"
      tail -n 15 "$log" | sed 's/^/      | /'
    else
      dst_shape=$(psql_on "$DST_PORT" "$DB" -At -c "$shape_sql" 2>&1 || true)
      if [[ $dst_shape != "$src_shape" ]]; then
        status=mismatch
        printf '    %-15s MISMATCH: the target differs from the source after %s s\n' "$tool" "$BENCH_SECONDS"
        echo "      source: $src_shape"
        echo "      target: $dst_shape"
      else
        rss=-
        [[ $BENCH_RSS_KB != - ]] && rss="$((BENCH_RSS_KB / 1024)) MB"
        printf '    %-15s %8s s   peak RSS %s\n' "$tool" "$BENCH_SECONDS" "$rss"
      fi
    fi
    [[ $status == ok ]] || any_failed=1
    printf '%s\t%s\t%s\t%s\t%s\n' "$tool" "$r" "$BENCH_SECONDS" "$BENCH_RSS_KB" "$status" >>"$results"
    rm -rf "$dir"
  done
done
reset_servers >/dev/null

header="$work/header.txt"
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  bench_machine_lines "$SRC_PORT"
  echo "data: pgbench scale $SCALE (--foreign-keys) + 3 wide tables x $WIDE_ROWS rows; source database $src_size"
  echo "runs: $ROUNDS rounds per tool, JOBS=$JOBS, SPLIT=$SPLIT; both servers local"
  settings=$(printf '%s, ' "${conf[@]}")
  echo "server settings (both): ${settings%, }, wal_level = logical"
  for t in "${tools[@]}"; do echo "$t: ${legend[$t]}"; done
} >"$header"

echo
echo "==> results"
sed 's/^/    /' "$header"
echo
bench_report "$results" "$(IFS=,; echo "${tools[*]}")" pgmove bench-out/full-load.md "$header" | sed 's/^/    /'
cp "$results" bench-out/full-load.tsv
echo
echo "markdown table: bench-out/full-load.md; raw runs: bench-out/full-load.tsv; logs: bench-out/full-load-*.log"
exit "$any_failed"
