#!/bin/sh
# SPDX-License-Identifier: MIT
# Syscall-cost benchmark (issue 5, item 1): tools/bench/sysloop timed under six
# variants, interleaved, ROUNDS rounds; prints a markdown table and, with
# --update FILE, replaces the block between the bench:syscall markers in FILE.
#
# env: ROUNDS (5), N (300000 iterations, 3 syscalls each), N_STRACE (N/100),
#      CPU (1: the CPU sysloop is pinned to), BPFTRACE, STRACE; and lib.sh's.
# needs root (BPF, ptrace).
set -eu
. tools/bench/lib.sh

ROUNDS=${ROUNDS:-5}
N=${N:-300000}
N_STRACE=${N_STRACE:-$((N / 100))}
CPU=${CPU:-1}
BPFTRACE=${BPFTRACE:-bpftrace}
STRACE=${STRACE:-strace}

bench_init syscall "$@"
bench_need "$HEALD" "$BENCH/sysloop" "$BENCH/floor" "$BENCH/empty.bpf.o" "$BPFTRACE" "$STRACE" taskset bpftool jq

LOOP="taskset -c $CPU $BENCH/sysloop"
DETECT='"detect": {"syscalls": [{"syscall": ["openat", "connect"], "errno": ["ENOENT", "ECONNREFUSED"]}], "crashes": true, "exits": true}'
cat > "$T/watch-loop.json" <<JSON
{"listen": "", "state_dir": "$T/state-c", "mode": "observe", "targets": [
 {"name": "sysloop", "match": {"comm": "sysloop"}, $DETECT}]}
JSON
cat > "$T/watch-other.json" <<JSON
{"listen": "", "state_dir": "$T/state-d", "mode": "observe", "targets": [
 {"name": "other", "exec": ["/bin/sleep", "3600"], $DETECT}]}
JSON

run_a() { $LOOP "$N"; }

run_b() {
	bench_bg "$BENCH/floor" "$BENCH/empty.bpf.o" > "$T/floor.out" 2>&1
	wait_for "$T/floor.out" attached
	$LOOP "$N"
	bench_stop "$BG_PID"
}

heald_run() {
	heald_start "$1"
	$LOOP "$N"
	bench_stop "$HEALD_PID"
}
run_c() {
	heald_run "$T/watch-loop.json"
	# sanity: heald did see the loop's failures
	grep -q '"syscall":"openat","errno":"ENOENT"' "$T/heald.out" ||
		{ echo "bench syscall: heald reported no failure of sysloop" >&2; exit 1; }
}
run_d() { heald_run "$T/watch-other.json"; }

# openat=257, connect=42 on x86_64; ENOENT=2, ECONNREFUSED=111
run_e() {
	bench_traced 'tracepoint:raw_syscalls:sys_exit /pid == @PID@ && (args->id == 257 || args->id == 42) && (args->ret == -2 || args->ret == -111)/ { @[args->id, -args->ret] = count(); }' \
		$LOOP "$N"
}

run_f() {
	$STRACE -f -e trace=openat,close -o /dev/null $LOOP "$N_STRACE"
}

bench_rounds "a b c d e f"

bench_stats | awk -v rounds="$ROUNDS" -v n="$N" -v ns="$N_STRACE" -v elapsed="$(bench_elapsed)" \
    -v machine="$(bench_machine)" -v when="$(date -u +%Y-%m-%dT%H:%MZ)" '
{ med[$1] = $2; mn[$1] = $3; mx[$1] = $4 }
END {
	name["a"] = "(a) nothing attached"
	name["b"] = "(b) floor: empty BPF program on heald'"'"'s hook (sys_exit)"
	name["c"] = "(c) heald watching the loop (openat/connect ENOENT/ECONNREFUSED, crashes, exits)"
	name["d"] = "(d) heald watching another process only"
	name["e"] = "(e) bpftrace, same syscall detection (tracepoint:raw_syscalls:sys_exit)"
	name["f"] = "(f) strace -f -e trace=openat,close"
	split("a b c d e f", ord, " ")
	printf "Run %s on %s; sysloop pinned to one CPU; %d rounds, variants interleaved; " \
		"%d iterations x 3 syscalls per run (strace: %d); %d s for all rounds.\n\n", when, machine, rounds, n, ns, elapsed
	print "| variant | median ns/syscall | min | max | added vs (a), ns |"
	print "|---|---:|---:|---:|---:|"
	for (i = 1; i <= 6; i++) { v = ord[i]
		printf "| %s | %.1f | %.1f | %.1f | %s |\n", name[v], med[v], mn[v], mx[v], (v == "a" ? "-" : sprintf("%+.1f", med[v] - med["a"])) }
	fl = med["b"] - med["a"]; hc = med["c"] - med["a"]; bt = med["e"] - med["a"]
	print ""
	print "| ratio (of medians minus (a)) | this run | goal |"
	print "|---|---:|---:|"
	printf "| heald (c) added / floor (b) added | %s | <= 1.1x |\n", (fl > 0 ? sprintf("%.2fx", hc / fl) : "n/a (floor added <= 0)")
	printf "| heald (c) added / bpftrace (e) added | %s | <= 0.5x |\n", (bt > 0 ? sprintf("%.2fx", hc / bt) : "n/a")
	printf "| heald unwatched (d) added / floor (b) added | %s | - |\n", (fl > 0 ? sprintf("%.2fx", (med["d"] - med["a"]) / fl) : "n/a")
}' > "$T/table.md"
bench_update "$T/table.md"
