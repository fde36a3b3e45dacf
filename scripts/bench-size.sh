#!/usr/bin/env bash
# Size benchmark: how the full load's time grows with the size of one big table, and a table
# of few rows whose bytes are all out of line (TOAST). For each data set it builds the source
# on a throwaway local server and times the tools against a second one, side by side (same
# servers, same data, the order changing each round); prints seconds, seconds per GB of the
# source database, peak RSS and the ratio pgmove / best peer, and writes the table as markdown
# to bench-out/size.md (raw runs: bench-out/size.tsv). Flat cost means the seconds per GB stay
# the same as the size grows, and peak RSS stays bounded.
#
#   bash scripts/bench-size.sh                        # scales 17, 50, 167 + 100 MB TOAST: ~20 min on 2 cores
#   SCALES="17" TOAST_MB=100 bash scripts/bench-size.sh   # quicker
#   SCALES="333" TOAST_MB=0 bash scripts/bench-size.sh    # the 5 GB table (~25 GB of disk in all)
#
# Settings (environment):
#   SCALES="17 50 167"  pgbench scales, one data set each: pgbench_accounts (scale 1 = 100,000
#                       rows, ~13 MB of heap) plus pgbench's three small tables; 17 ≈ 250 MB,
#                       50 ≈ 750 MB, 167 ≈ 2.5 GB, 333 ≈ 5 GB of database
#   TOAST_MB=100        a data set of one table `docs` of TOAST_MB MB in rows of 100 kB each
#                       (1,024 rows for 100 MB; bodies of hex digits, which pglz cannot
#                       compress, so nearly every byte is in the TOAST table); 0 = none
#   ROUNDS=1            timed runs per tool and data set; the table shows the median
#   JOBS=$(nproc)       parallel table and index jobs, for every tool that has them
#   SPLIT=100MB         split tables larger than this (pgcopydb-split and pgmove)
#   TOOLS=pg_dump-dir,pgcopydb,pgmove   comma list, a subset of: pg_dump-dir,pgcopydb,
#                       pgcopydb-split,pgmove (the commands are those of bench-full-load.sh)
#   PGMOVE_BIN=PATH     use this pgmove binary instead of building target/release/pgmove
#
# After each run the target's row counts and index count must equal the source's, or the run
# counts as failed. Peak RSS is that of the largest single client process (GNU time), never the
# servers'. Exit status: 0 when every run succeeded, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

SCALES=${SCALES:-17 50 167}
TOAST_MB=${TOAST_MB:-100}
ROUNDS=${ROUNDS:-1}
JOBS=${JOBS:-$(nproc)}
SPLIT=${SPLIT:-100MB}
ALL_TOOLS=pg_dump-dir,pgcopydb,pgcopydb-split,pgmove
TOOLS=${TOOLS:-pg_dump-dir,pgcopydb,pgmove}

die() { echo "error: $*" >&2; exit 2; }
for s in $SCALES; do [[ $s =~ ^[1-9][0-9]*$ ]] || die "SCALES must be positive integers (got '$s')"; done
[[ $TOAST_MB =~ ^[0-9]+$ ]] || die "TOAST_MB must be an integer (got '$TOAST_MB')"
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
sets=()
for s in $SCALES; do sets+=("scale-$s"); done
((TOAST_MB > 0)) && sets+=("toast-$TOAST_MB")
((${#sets[@]})) || die "SCALES and TOAST_MB select no data set"

PGMOVE_BENCH=1 bash scripts/install-deps.sh
source scripts/lib/cluster.sh
source scripts/lib/bench.sh
source scripts/lib/servers.sh
bench_need_time
pgmove_build=ok
if wants pgmove; then bench_build_pgmove "$root"; fi

# bench-full-load.sh's bulk-load settings, without pglogical.
bench_start_servers "${BENCH_BULK_CONF[@]}"
psql_on "$SRC_PORT" postgres -c "CREATE DATABASE $DB"

plan="$work/size.yaml"
cat >"$plan" <<YAML
version: 1
name: size
source:
  dsn: postgres://postgres@127.0.0.1:$SRC_PORT/$DB
  sslmode: disable
target:
  dsn: postgres://postgres@127.0.0.1:$DST_PORT/$DB
  sslmode: disable
strategy: copy-cdc
downtime: 1h
jobs: $JOBS
index_jobs: $JOBS
split_tables_larger_than: $SPLIT
cdc:
  tables_without_key: insert-only   # pgbench_history has no key; pgbench only inserts into it
YAML

# The source of data set $1 (scale-N or toast-MB), in a fresh database.
build_source() {
  local set=$1
  recreate_db SRC "$DB"
  case $set in
    scale-*)
      "$PG_BIN/pgbench" -i -q -s "${set#scale-}" -h 127.0.0.1 -p "$SRC_PORT" -U postgres "$DB" \
        >"$work/pgbench-init.log" 2>&1 || { cat "$work/pgbench-init.log" >&2; exit 1; }
      ;;
    toast-*)
      psql_on "$SRC_PORT" "$DB" >/dev/null <<SQL
CREATE TABLE docs (id bigint PRIMARY KEY, title text NOT NULL, body text NOT NULL);
INSERT INTO docs
SELECT d, 'document ' || d,
       (SELECT string_agg(md5(d || ':' || i), '') FROM generate_series(1, 3200) AS i)
  FROM generate_series(1, ${set#toast-} * 1024 * 1024 / 102400) AS d;
SQL
      ;;
  esac
  psql_on "$SRC_PORT" "$DB" -c "VACUUM ANALYZE" -c "CHECKPOINT"
}

# What a loaded target must have: each table's row count and the index count.
shape_sql="SELECT string_agg(relname || '=' || (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM public.%I', relname), false, true, '')))[1]::text, ' ' ORDER BY relname)
  || ' indexes=' || (SELECT count(*) FROM pg_indexes WHERE schemaname = 'public')
  FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"

# The command each tool runs, into the array `cmd`.
# shellcheck disable=SC2016  # the bash -c script takes its values as "$1"...
tool_cmd() {
  local tool=$1 dir=$2
  case $tool in
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
    pgmove)
      cmd=("$pgmove" apply "$plan" --yes --stop-after-load --dump-dir "$dir/pgmove-dump")
      ;;
  esac
}

mkdir -p bench-out
results="$work/results.tsv"
: >"$results"
any_failed=0
n=${#tools[@]}
for set in "${sets[@]}"; do
  echo "==> data set $set: building the source"
  build_source "$set"
  src_shape=$(psql_on "$SRC_PORT" "$DB" -At -c "$shape_sql")
  src_bytes=$(psql_on "$SRC_PORT" "$DB" -At -c "SELECT pg_database_size('$DB')")
  echo "    source: $((src_bytes / 1048576)) MB; $src_shape"
  for ((r = 1; r <= ROUNDS; r++)); do
    for ((k = 0; k < n; k++)); do
      tool=${tools[$(((k + r - 1) % n))]}
      dir="$work/run"
      rm -rf "$dir" && mkdir -p "$dir"
      log="bench-out/size-$set-$tool-round$r.log"
      if [[ $tool == pgmove && $pgmove_build != ok ]]; then
        printf '%s\t%s\t%s\t%s\t0\t-\tbuild-failed\n' "$set" "$src_bytes" "$tool" "$r" >>"$results"
        any_failed=1
        continue
      fi
      bench_reset_servers "$DB"
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
          printf '    %-15s MISMATCH after %s s: source %s, target %s\n' "$tool" "$BENCH_SECONDS" "$src_shape" "$dst_shape"
        else
          rss=-
          [[ $BENCH_RSS_KB != - ]] && rss="$((BENCH_RSS_KB / 1024)) MB"
          printf '    %-15s %8s s   %6.1f s/GB   peak RSS %s\n' "$tool" "$BENCH_SECONDS" \
            "$(awk -v s="$BENCH_SECONDS" -v b="$src_bytes" 'BEGIN { print s * 1073741824 / b }')" "$rss"
        fi
      fi
      [[ $status == ok ]] || any_failed=1
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$set" "$src_bytes" "$tool" "$r" "$BENCH_SECONDS" "$BENCH_RSS_KB" "$status" >>"$results"
      rm -rf "$dir"
    done
  done
done
bench_reset_servers "$DB" >/dev/null

header="$work/header.txt"
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  bench_machine_lines "$SRC_PORT"
  wants pgmove && [[ $pgmove_build == ok ]] && echo "pgmove: $(bench_pgmove_version "$root")"
  wants pgcopydb || wants pgcopydb-split && echo "pgcopydb: $(pgcopydb --version 2>/dev/null | awk '/^pgcopydb version/ { print $3; exit }')"
  echo "data sets: scale-N = pgbench -i -s N (pgbench_accounts and three small tables); toast-M = one table of M MB in rows of 100 kB"
  echo "runs: $ROUNDS per tool and data set, JOBS=$JOBS, SPLIT=$SPLIT; both servers local"
  settings=$(printf '%s, ' "${conf[@]}")
  echo "server settings (both): ${settings%, }, wal_level = logical"
  echo "tools: pg_dump-dir = pg_dump -Fd -j $JOBS, then pg_restore -j $JOBS; pgcopydb = pgcopydb clone --table-jobs $JOBS --index-jobs $JOBS (pgcopydb-split: --split-tables-larger-than $SPLIT); pgmove = pgmove apply --yes --stop-after-load (copy-cdc, jobs $JOBS, index_jobs $JOBS, split_tables_larger_than $SPLIT)"
} >"$header"

python3 - "$results" "$header" bench-out/size.md "${tools[*]}" <<'PY'
import statistics, sys
results, header_file, out_md, tools = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split()
runs, sizes, order = {}, {}, []
with open(results) as f:
    for line in f:
        s, size, tool, _r, secs, rss, status = line.rstrip("\n").split("\t")
        if s not in order:
            order.append(s)
        sizes[s] = int(size)
        runs.setdefault((s, tool), []).append((float(secs), None if rss == "-" else int(rss), status))
head = ["data set", "MB", "tool", "median s", "s/GB", "peak RSS MB", "ratio"]
table = []
for s in order:
    med = {}
    for t in tools:
        ok = [r for r in runs.get((s, t), []) if r[2] == "ok"]
        if ok:
            med[t] = (statistics.median(r[0] for r in ok), max((r[1] for r in ok if r[1] is not None), default=None))
    peers = [t for t in med if t != "pgmove"]
    best = min(peers, key=lambda t: med[t][0]) if peers else None
    for t in tools:
        if t not in med:
            table.append([s, str(sizes[s] // 1048576), t, "failed", "-", "-", "-"])
            continue
        secs, rss = med[t]
        ratio = "-"
        if best:
            ratio = "{:.2f}".format(secs / med[best][0]) + (f" (/{best})" if t == "pgmove" else "")
        table.append([s, str(sizes[s] // 1048576), t, f"{secs:.1f}", f"{secs * 1073741824 / sizes[s]:.1f}",
                      "-" if rss is None else str(rss // 1024), ratio])
with open(header_file) as f:
    header = [l.rstrip("\n") for l in f if l.strip()]
widths = [max(len(c) for c in col) for col in zip(head, *table)]
line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
print()
print("==> results")
for h in header:
    print("    " + h)
print()
print("    " + line(head))
for row in table:
    print("    " + line(row))
with open(out_md, "w") as f:
    for h in header:
        f.write(f"- {h}\n")
    f.write("\n| " + " | ".join(head) + " |\n")
    f.write("|---|---:|---|---:|---:|---:|---:|\n")
    for row in table:
        f.write("| " + " | ".join(row) + " |\n")
PY
cp "$results" bench-out/size.tsv
echo
echo "markdown table: bench-out/size.md; raw runs: bench-out/size.tsv; logs: bench-out/size-*.log"
exit "$any_failed"
