# shellcheck shell=bash disable=SC2034  # BENCH_* are read by the scripts that source this
# Helpers for benchmark scripts: timing with peak RSS, machine description, results table.
# Source this file (after scripts/lib/cluster.sh, whose PG_BIN it uses).
#
# Results are kept in a TSV file, one line per timed run:
#   tool <TAB> round <TAB> seconds <TAB> peak_rss_kb (or -) <TAB> ok|failed|mismatch

# bench_need_time: makes sure /usr/bin/time (GNU time, for -v and peak RSS) is there; installs
# the Debian package `time` when running as root, else says RSS will be unknown.
BENCH_TIME_BIN=
bench_need_time() {
  if [[ ! -x /usr/bin/time ]] && [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "    installing the Debian package 'time' (GNU time, for peak RSS)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends time >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends time >/dev/null 2>&1; } \
      || true
  fi
  if [[ -x /usr/bin/time ]] && /usr/bin/time -v true >/dev/null 2>&1; then
    BENCH_TIME_BIN=/usr/bin/time
  else
    echo "note: GNU time (/usr/bin/time, Debian package 'time') is missing: wall clock only, peak RSS unknown" >&2
  fi
}

# bench_timed LOG -- CMD...: runs CMD with stdout and stderr to LOG; sets BENCH_SECONDS (wall
# clock), BENCH_RSS_KB (peak RSS of the largest single process CMD ran, or "-") and BENCH_RC.
# Never fails itself, whatever CMD does.
bench_timed() {
  local log=$1; shift
  [[ ${1:-} == -- ]] && shift
  local tfile="$log.time" t0 t1
  BENCH_RC=0
  t0=$(date +%s.%N)
  if [[ -n $BENCH_TIME_BIN ]]; then
    "$BENCH_TIME_BIN" -v -o "$tfile" "$@" >"$log" 2>&1 || BENCH_RC=$?
  else
    "$@" >"$log" 2>&1 || BENCH_RC=$?
  fi
  t1=$(date +%s.%N)
  BENCH_SECONDS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  BENCH_RSS_KB=-
  if [[ -n $BENCH_TIME_BIN && -s $tfile ]]; then
    BENCH_RSS_KB=$(awk -F': *' '/Maximum resident set size/ { print $2 }' "$tfile")
    [[ -n $BENCH_RSS_KB ]] || BENCH_RSS_KB=-
    # GNU time reports a nonzero exit of CMD as "Command exited with non-zero status N".
  fi
}

# bench_machine_lines PORT: the machine and server, one "key: value" per line.
bench_machine_lines() {
  local port=$1 mem cpu
  mem=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
  cpu=$(lscpu 2>/dev/null | awk -F': *' '/^Model name/ { print $2; exit }')
  echo "cpus: $(nproc)${cpu:+ ($cpu)}"
  echo "memory: $mem"
  echo "kernel: $(uname -r)"
  echo "postgresql: $(psql_on "$port" postgres -At -c 'SHOW server_version')"
}

# bench_report RESULTS_TSV TOOLS_CSV BASELINE_TOOL OUT_MD HEADER_FILE
# Prints the results table (text) and writes it, after the header lines, as markdown to OUT_MD.
# "best peer" is the fastest median among the tools other than BASELINE_TOOL and its variants
# (BASELINE_TOOL-*, e.g. pgmove-pglogical).
bench_report() {
  python3 - "$@" <<'PY'
import statistics, sys

results, tools_csv, subject, out_md, header_file = sys.argv[1:6]
tools = [t for t in tools_csv.split(",") if t]
runs = {t: [] for t in tools}
with open(results) as f:
    for line in f:
        parts = line.rstrip("\n").split("\t")
        if len(parts) != 5 or parts[0] not in runs:
            continue
        tool, rnd, secs, rss, status = parts
        runs[tool].append((float(secs), None if rss == "-" else int(rss), status))

rows = {}
for t in tools:
    ok = [r for r in runs[t] if r[2] == "ok"]
    times = [r[0] for r in ok]
    rss = [r[1] for r in ok if r[1] is not None]
    rows[t] = {
        "n": len(runs[t]),
        "ok": len(ok),
        "median": statistics.median(times) if times else None,
        "min": min(times) if times else None,
        "max": max(times) if times else None,
        "rss": max(rss) / 1024 if rss else None,
        "failed": sorted({r[2] for r in runs[t] if r[2] != "ok"}),
    }

# The subject's variants (pgmove-pglogical for pgmove) are no peers either.
mine = lambda t: t == subject or t.startswith(subject + "-")
peers = [t for t in tools if not mine(t) and rows[t]["median"] is not None]
best = min(peers, key=lambda t: rows[t]["median"]) if peers else None

def fmt(v, spec="{:.1f}"):
    return "-" if v is None else spec.format(v)

head = ["tool", "rounds ok", "median s", "min s", "max s", "peak RSS MB", "ratio"]
table = []
for t in tools:
    r = rows[t]
    if r["median"] is not None and best is not None:
        label = f"{t}/best peer" if mine(t) else "vs best peer"
        ratio = "{:.2f}".format(r["median"] / rows[best]["median"])
        ratio = f"{ratio} ({label})" if mine(t) else ratio
    else:
        ratio = "-"
    ok = f'{r["ok"]}/{r["n"]}'
    if r["failed"]:
        ok += " (" + ",".join(r["failed"]) + ")"
    table.append([t, ok, fmt(r["median"]), fmt(r["min"]), fmt(r["max"]), fmt(r["rss"], "{:.0f}"), ratio])

with open(header_file) as f:
    header = [l.rstrip("\n") for l in f if l.strip()]

widths = [max(len(str(x)) for x in col) for col in zip(head, *table)]
line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
print(line(head))
print(line(["-" * w for w in widths]))
for row in table:
    print(line(row))
if best:
    print(f"best peer: {best} ({rows[best]['median']:.1f} s median)")

with open(out_md, "w") as f:
    for h in header:
        f.write(f"- {h}\n")
    f.write("\n| " + " | ".join(head) + " |\n")
    f.write("|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|\n")
    for row in table:
        f.write("| " + " | ".join(str(c) for c in row) + " |\n")
    if best:
        f.write(f"\nBest peer: {best} ({rows[best]['median']:.1f} s median).\n")
PY
}
