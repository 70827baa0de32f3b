#!/bin/sh
# SPDX-License-Identifier: MIT
# Event-pipeline benchmark (issue 5, item 4). Two parts, their variants
# interleaved over ROUNDS rounds:
#  - storm: tools/bench/storm (PROCS processes making failing openat calls as
#    fast as they can for STORM_S seconds) alone, under heald with the default
#    samples_per_sec (10) and under heald with HIGH_SPS. Checks heald's exact
#    in-kernel counts against the generator's own; reports samples delivered,
#    suppressed and dropped, and heald's CPU and memory.
#  - latency: tools/bench/latency times LAT_N failing calls, LAT_US apart, from
#    the call to the line on heald's stdout; the same through bpftrace, and a
#    pipe echo through cat (the floor of the measurement).
# Prints markdown tables and, with --update FILE, replaces the block between
# the bench:pipeline markers in FILE.
#
# env: ROUNDS (3), STORM_S (4), PROCS (CPUs), HIGH_SPS (100000), LAT_N (2000),
#      LAT_US (1000), BPFTRACE; and lib.sh's.
# needs root (BPF).
set -eu
. tools/bench/lib.sh

ROUNDS=${ROUNDS:-3}
STORM_S=${STORM_S:-4}
PROCS=${PROCS:-$(nproc)}
HIGH_SPS=${HIGH_SPS:-100000}
LAT_N=${LAT_N:-2000}
LAT_US=${LAT_US:-1000}
BPFTRACE=${BPFTRACE:-bpftrace}

bench_init pipeline "$@"
bench_need "$HEALD" "$BENCH/storm" "$BENCH/latency" "$BPFTRACE" curl cat

DETECT='"detect": {"syscalls": [{"syscall": ["openat", "connect"], "errno": ["ENOENT", "ECONNREFUSED"]}], "crashes": true, "exits": true}'
# $1 file, $2 samples_per_sec, $3 listen, $4 target name, $5 comm
heald_cfg() {
	cat > "$1" <<JSON
{"listen": "$3", "state_dir": "$T/state", "mode": "observe", "samples_per_sec": $2, "targets": [
 {"name": "$4", "match": {"comm": "$5"}, $DETECT}]}
JSON
}
heald_cfg "$T/storm-s10.json" 10 127.0.0.1:0 storm storm
heald_cfg "$T/storm-shigh.json" "$HIGH_SPS" 127.0.0.1:0 storm storm
heald_cfg "$T/lat.json" 100000 127.0.0.1:0 lat latency

now_ns() { date +%s%N; }

# CPU time of every thread of PID in ns (schedstat: finer than clock ticks)
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'; }

fail() {
	echo "bench pipeline: $*" >&2
	exit 1
}

# metric NAME{LABELS} from heald's /metrics on port $PORT (0 when absent)
metric() {
	curl -s --max-time 2 "http://127.0.0.1:$PORT/metrics" |
		awk -v m="$1" 'index($0, m " ") == 1 { v = $NF } END { print v + 0 }'
}

# wait for a background helper that ends by itself, then forget it
bg_wait() {
	wait "$1" || true
	bench_stop "$1"
}

# $1 variant: the generator alone
storm_none() {
	rm -f "$T/hold"
	"$BENCH/storm" "$STORM_S" "$PROCS" > "$T/storm.out"
	bench_record none.rate "$(awk '/^stormed/ { print $4 }' "$T/storm.out")"
}

# $1 variant (s10, shigh): the generator under heald
storm_heald() {
	v=$1
	rm -rf "$T/state" "$T/hold"
	heald_start "$T/storm-$v.json"
	PORT=$(sed -n 's/.*HTTP API and \/metrics on .*(port \([0-9]*\)).*/\1/p' "$T/heald.err" | head -1)
	[ -n "$PORT" ] || fail "heald did not say which port its /metrics is on"
	c0=$(cpu_ns "$HEALD_PID")
	t0=$(now_ns)
	bench_bg "$BENCH/storm" "$STORM_S" "$PROCS" --hold-file "$T/hold" > "$T/storm.out"
	sp=$BG_PID
	wait_for "$T/storm.out" '^stormed' $((STORM_S + 20))
	c1=$(cpu_ns "$HEALD_PID")
	t1=$(now_ns)
	rss=$(proc_rss_kb "$HEALD_PID")
	want=$(awk '/^stormed/ { print $3 }' "$T/storm.out")
	rate=$(awk '/^stormed/ { print $4 }' "$T/storm.out")

	# exact: heald's count (live processes: the kernel's map, read once a second) = the generator's
	i=0
	while :; do
		got=$(metric 'heal_syscall_failures_total{target="storm",syscall="openat",errno="ENOENT"}')
		[ "$got" = "$want" ] && break
		i=$((i + 1))
		[ $i -lt 50 ] || fail "$v: heal_syscall_failures_total is $got, the generator counted $want failures"
		sleep 0.1
	done
	dropped=$(metric 'heal_events_dropped_total{type="syscall"}')
	supp=$(metric 'heal_kernel_failures_not_sampled_total{reason="rate_limited"}')

	# the processes end: one SYSCALL_COUNTS each, with the same exact count
	touch "$T/hold"
	bg_wait "$sp"
	for c in $(awk '/^child/ { print $2 "=" $4 }' "$T/storm.out"); do
		pid=${c%=*}
		n=${c#*=}
		wait_for "$T/heald.out" "\"type\":\"SYSCALL_COUNTS\".*\"pid\":$pid," 10
		total=$(grep "\"type\":\"SYSCALL_COUNTS\".*\"pid\":$pid," "$T/heald.out" | sed -n 's/.*"total":\([0-9]*\).*/\1/p')
		[ "$total" = "$n" ] || fail "$v: SYSCALL_COUNTS for pid $pid says $total, the generator counted $n"
	done
	# heald's work for the storm includes what it drains after it: wait until it is idle
	# (under 1 ms of CPU in 200 ms) before the second reading
	c2=$(cpu_ns "$HEALD_PID")
	i=0
	while [ $i -lt 25 ]; do
		sleep 0.2
		c3=$(cpu_ns "$HEALD_PID")
		d=$((c3 - c2))
		c2=$c3
		[ $d -lt 1000000 ] && break
		i=$((i + 1))
	done
	hwm=$(proc_hwm_kb "$HEALD_PID")
	bench_stop "$HEALD_PID"

	deliv=$(grep -c '"type":"SYSCALL_FAILURE"' "$T/heald.out" || true)
	ev_dropped=$(grep '"type":"EVENTS_DROPPED"' "$T/heald.out" | sed -n 's/.*"dropped":\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
	# every counted failure was delivered, suppressed by the rate limit or dropped for lack of room
	[ $((deliv + supp + dropped)) = "$want" ] ||
		fail "$v: $deliv delivered + $supp rate-limited + $dropped dropped != $want counted"
	[ "$ev_dropped" = "$dropped" ] ||
		echo "bench pipeline: $v: EVENTS_DROPPED events add up to $ev_dropped, heal_events_dropped_total is $dropped" >&2

	bench_record "$v.rate" "$rate"
	bench_record "$v.count" "$want"
	bench_record "$v.deliv" "$deliv"
	bench_record "$v.supp" "$supp"
	bench_record "$v.drop" "$dropped"
	bench_record "$v.cpu" "$(awk -v c=$((c1 - c0)) -v t=$((t1 - t0)) 'BEGIN { printf "%.3f", 100 * c / t }')"
	bench_record "$v.cpuall" "$(awk -v c=$((c2 - c0)) -v t=$((t1 - t0)) 'BEGIN { printf "%.3f", 100 * c / t }')"
	bench_record "$v.cpu1m" "$(awk -v c=$((c2 - c0)) -v t=$((t1 - t0)) -v r="$rate" 'BEGIN { printf "%.3f", 100 * c / t * 1e6 / r }')"
	bench_record "$v.usper" "$(awk -v c=$((c2 - c0)) -v n="$deliv" 'BEGIN { printf "%.2f", n ? c / 1000 / n : 0 }')"
	bench_record "$v.rss" "$rss"
	bench_record "$v.hwm" "$hwm"
}

# $1 variant, then latency's arguments
lat_run() {
	v=$1
	shift
	rm -rf "$T/state"
	"$BENCH/latency" "$@" > "$T/lat.out" 2> "$T/lat.err" ||
		{ tail -5 "$T/lat.err" >&2; fail "$v: the latency run failed"; }
	read -r n got p50 p90 p99 max < "$T/lat.out"
	[ "$got" -gt 0 ] || fail "$v: no call was reported"
	bench_record "$v.p50" "$p50"
	bench_record "$v.p90" "$p90"
	bench_record "$v.p99" "$p99"
	bench_record "$v.max" "$max"
	bench_record "$v.lost" $((n - got))
}

run_none() { storm_none; }
run_s10() { storm_heald s10; }
run_shigh() { storm_heald shigh; }
run_lheald() { lat_run lheald "$LAT_N" "$LAT_US" -- "$HEALD" --config "$T/lat.json" --watch -v; }
run_lbpftrace() {
	# the same detection, at sys_exit of openat with the path, printed per event
	lat_run lbpftrace "$LAT_N" "$LAT_US" -- "$BPFTRACE" -B line -e '
		tracepoint:syscalls:sys_enter_openat /comm == "latency"/ { @p[tid] = args->filename; }
		tracepoint:syscalls:sys_exit_openat /@p[tid]/ {
			if (args->ret == -2) { printf("%s\n", str(@p[tid])); }
			delete(@p[tid]);
		}'
}
run_lecho() { lat_run lecho --echo "$LAT_N" "$LAT_US" -- cat; }

VARIANTS="none s10 shigh lheald lbpftrace lecho"
r=1
while [ $r -le "$ROUNDS" ]; do
	for v in $(bench_order "$VARIANTS" $r); do
		run_$v
	done
	r=$((r + 1))
done

bench_stats | awk -v rounds="$ROUNDS" -v procs="$PROCS" -v secs="$STORM_S" -v high="$HIGH_SPS" \
    -v latn="$LAT_N" -v latus="$LAT_US" -v elapsed="$(bench_elapsed)" \
    -v machine="$(bench_machine)" -v when="$(date -u +%Y-%m-%dT%H:%MZ)" '
{ med[$1] = $2; mn[$1] = $3; mx[$1] = $4 }
function mib(k) { return k / 1024 }
function cell(k, fmt) { return sprintf(fmt " (" fmt "-" fmt ")", med[k], mn[k], mx[k]) }
function mcell(k) { return sprintf("%.1f (%.1f-%.1f)", mib(med[k]), mib(mn[k]), mib(mx[k])) }
function ms(us) { return sprintf("%.2f ms", us / 1000) }
END {
	printf "Run %s on %s; storm: %d processes x %d s of openat -> ENOENT, heald in observe mode matching them by comm; " \
		"latency: %d calls %d us apart; %d rounds, variants interleaved; %d s for all rounds.\n\n", \
		when, machine, procs, secs, latn, latus, rounds, elapsed
	print "Storm. Cells: median (min-max) over the rounds. Counts are per run (all processes together)."
	print ""
	printf "| | (a) no agent | (b) heald, samples_per_sec 10 (default) | (c) heald, samples_per_sec %d |\n", high
	print "|---|---:|---:|---:|"
	printf "| failures/s (generator) | %s | %s | %s |\n", cell("none.rate", "%.0f"), cell("s10.rate", "%.0f"), cell("shigh.rate", "%.0f")
	printf "| failures/s vs (a) | - | %.2fx | %.2fx |\n", med["s10.rate"] / med["none.rate"], med["shigh.rate"] / med["none.rate"]
	printf "| time added per failure, in the failing process, ns | - | %+.0f | %+.0f |\n", 1e9 * procs * (1 / med["s10.rate"] - 1 / med["none.rate"]), 1e9 * procs * (1 / med["shigh.rate"] - 1 / med["none.rate"])
	printf "| in-kernel count = generator count | - | exact, %d of %d runs | exact, %d of %d runs |\n", rounds, rounds, rounds, rounds
	printf "| failures counted | - | %s | %s |\n", cell("s10.count", "%.0f"), cell("shigh.count", "%.0f")
	printf "| samples delivered (SYSCALL_FAILURE events on stdout) | - | %s | %s |\n", cell("s10.deliv", "%.0f"), cell("shigh.deliv", "%.0f")
	printf "| samples delivered per s | - | %.0f | %.0f |\n", med["s10.deliv"] / secs, med["shigh.deliv"] / secs
	printf "| suppressed by the rate limit | - | %s | %s |\n", cell("s10.supp", "%.0f"), cell("shigh.supp", "%.0f")
	printf "| dropped, ring buffer full | - | %s | %s |\n", cell("s10.drop", "%.0f"), cell("shigh.drop", "%.0f")
	printf "| heald CPU during the storm, %% of one core | - | %s | %s |\n", cell("s10.cpu", "%.2f"), cell("shigh.cpu", "%.2f")
	printf "| heald CPU until idle after the storm, per s of storm, %% of one core | - | %s | %s |\n", cell("s10.cpuall", "%.2f"), cell("shigh.cpuall", "%.2f")
	printf "| the same scaled to 1 M failures/s (x 1e6 / failures/s), %% | - | %s | %s |\n", cell("s10.cpu1m", "%.2f"), cell("shigh.cpu1m", "%.2f")
	printf "| heald CPU per delivered sample (until idle), us | - | - (idle cost dominates) | %s |\n", cell("shigh.usper", "%.1f")
	printf "| heald VmRSS right after the storm, MiB | - | %s | %s |\n", mcell("s10.rss"), mcell("shigh.rss")
	printf "| heald VmHWM (peak) at the end, MiB | - | %s | %s |\n", mcell("s10.hwm"), mcell("shigh.hwm")
	print ""
	print "Detection latency, from CLOCK_MONOTONIC before the call to the line read from the tool'"'"'s stdout (a pipe). Cells: median (min-max) over the rounds of each run'"'"'s percentile, in us."
	print ""
	print "| variant | p50 | p90 | p99 | max | events lost |"
	print "|---|---:|---:|---:|---:|---:|"
	split("lheald lbpftrace lecho", ord, " ")
	name["lheald"] = "(d) heald --watch, samples_per_sec 100000"
	name["lbpftrace"] = "(e) bpftrace, sys_exit_openat printing the path (-B line)"
	name["lecho"] = "(f) floor: the path written to cat, echoed back"
	for (i = 1; i <= 3; i++) { v = ord[i]
		printf "| %s | %s | %s | %s | %s | %s |\n", name[v], cell(v ".p50", "%.0f"), cell(v ".p90", "%.0f"), cell(v ".p99", "%.0f"), cell(v ".max", "%.0f"), cell(v ".lost", "%d") }
	print ""
	hwm = mx["s10.hwm"] > mx["shigh.hwm"] ? mx["s10.hwm"] : mx["shigh.hwm"]
	print "| goal | this run | goal | |"
	print "|---|---:|---:|---|"
	p99 = med["lheald.p99"]
	printf "| heald detection latency p99 (median of rounds) | %s | <= 1 ms | %s |\n", ms(p99), p99 <= 1000 ? sprintf("met (%.0f%% of the goal)", p99 / 10) : sprintf("missed by %s (%.1fx)", ms(p99 - 1000), p99 / 1000)
	for (i = 0; i < 2; i++) { v = i ? "shigh" : "s10"; c = med[v ".cpu1m"]
		printf "| heald CPU at 1 M failures/s, %s (%.2f %% of a core at %.0f failures/s, scaled) | %.2f %% | <= 5 %% | %s |\n", \
			i ? "samples_per_sec " high : "default sampling", med[v ".cpuall"], med[v ".rate"], c, \
			c <= 5 ? sprintf("met (%.0f%% of the goal)", c * 20) : sprintf("missed by %.2f points (%.1fx)", c - 5, c / 5) }
	printf "| heald RSS, highest VmHWM of any run | %.1f MiB | <= 32 MiB | %s |\n", mib(hwm), hwm <= 32768 ? "met" : sprintf("missed by %.1f MiB", mib(hwm - 32768))
}' > "$T/table.md"
bench_update "$T/table.md"
