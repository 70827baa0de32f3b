#!/bin/sh
# SPDX-License-Identifier: MIT
# uprobe-cost benchmark (issue 5, item 2): tools/bench/uploop calls
# bench_lookup() N times (one call in 1000 fails); timed under four variants,
# interleaved, ROUNDS rounds:
#   a  nothing attached
#   b  the floor: an empty uretprobe on bench_lookup (tools/bench/floor + uempty.bpf.c)
#   c  heald: an API rule on bench_lookup, "ret < 0", capturing argument 1 as a string
#   d  bpftrace: uretprobe on bench_lookup counting returns < 0
# env: ROUNDS (5), N (20000 calls), CPU (1); and lib.sh's.
set -eu
. tools/bench/lib.sh

ROUNDS=${ROUNDS:-5}
N=${N:-20000}
CPU=${CPU:-1}
BPFTRACE=${BPFTRACE:-bpftrace}

bench_init uprobe "$@"
bench_need "$HEALD" "$BENCH/uploop" "$BENCH/floor" "$BENCH/uempty.bpf.o" "$BPFTRACE" taskset bpftool jq

# the probes attach by path: one absolute path for every variant
UPLOOP=$(cd "$(dirname "$BENCH/uploop")" && pwd)/uploop
LOOP="taskset -c $CPU $UPLOOP"
cat > "$T/heald.json" <<JSON
{"listen": "", "state_dir": "$T/state", "mode": "observe", "targets": [
 {"name": "uploop", "match": {"comm": "uploop"}, "detect": {"crashes": true, "exits": true,
  "api": [{"binary": "$UPLOOP", "symbol": "bench_lookup", "fail_when": "ret < 0",
           "capture_arg": {"index": 1, "type": "string"}}]}}]}
JSON

run_a() { $LOOP "$N"; }

run_b() {
	bench_bg "$BENCH/floor" "$BENCH/uempty.bpf.o" "$UPLOOP" bench_lookup > "$T/floor.out" 2>&1
	wait_for "$T/floor.out" attached
	$LOOP "$N"
	bench_stop "$BG_PID"
}

run_c() {
	heald_start "$T/heald.json"
	$LOOP "$N"
	bench_stop "$HEALD_PID"
	# sanity: heald saw a failing call, with its captured argument
	grep -q '"type":"API_FAILURE".*xfail/missing-item' "$T/heald.out" ||
		{ echo "bench uprobe: heald reported no failing bench_lookup" >&2; tail "$T/heald.err" >&2; exit 1; }
}

run_d() {
	bench_traced "uretprobe:$UPLOOP:bench_lookup /pid == @PID@ && (int32)retval < 0/ { @fails = count(); }" $LOOP "$N"
}

bench_rounds "a b c d"

bench_stats | awk -v rounds="$ROUNDS" -v n="$N" -v elapsed="$(bench_elapsed)" \
    -v machine="$(bench_machine)" -v when="$(date -u +%Y-%m-%dT%H:%MZ)" '
{ med[$1] = $2; mn[$1] = $3; mx[$1] = $4 }
END {
	name["a"] = "(a) nothing attached"
	name["b"] = "(b) floor: empty uretprobe"
	name["c"] = "(c) heald: API rule, ret < 0, argument 1 captured as a string"
	name["d"] = "(d) bpftrace: uretprobe, count returns < 0"
	split("a b c d", ord, " ")
	printf "Run %s on %s; uploop pinned to one CPU; %d rounds, variants interleaved; " \
		"%d calls per run; %d s for all rounds.\n\n", when, machine, rounds, n, elapsed
	print "| variant | median ns/call | min | max | added vs (a), ns |"
	print "|---|---:|---:|---:|---:|"
	for (i = 1; i <= 4; i++) { v = ord[i]
		printf "| %s | %.1f | %.1f | %.1f | %s |\n", name[v], med[v], mn[v], mx[v], (v == "a" ? "-" : sprintf("%+.1f", med[v] - med["a"])) }
	fl = med["b"] - med["a"]; hc = med["c"] - med["a"]; bt = med["d"] - med["a"]
	print ""
	print "| ratio (of medians minus (a)) | this run | goal |"
	print "|---|---:|---:|"
	printf "| heald (c) added / floor (b) added | %s | <= 1.1x |\n", (fl > 0 ? sprintf("%.2fx", hc / fl) : "n/a")
	printf "| heald (c) added / bpftrace (d) added | %s | - |\n", (bt > 0 ? sprintf("%.2fx", hc / bt) : "n/a")
}' > "$T/table.md"
bench_update "$T/table.md"
