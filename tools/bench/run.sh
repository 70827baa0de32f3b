#!/bin/sh
# SPDX-License-Identifier: MIT
# Syscall-cost benchmark (issue 5, item 1): tools/bench/sysloop timed under six
# variants, interleaved, ROUNDS rounds; prints a markdown table and, with
# --update FILE, replaces the block between the bench:syscall markers in FILE.
#
# env: ROUNDS (5), N (300000 iterations, 3 syscalls each), N_STRACE (N/100),
#      CPU (1: the CPU sysloop is pinned to), BIN (.output/obj/bin),
#      BENCH (.output/bench), HEALD, BPFTRACE, STRACE.
# needs root (BPF, ptrace).
set -eu

ROUNDS=${ROUNDS:-5}
N=${N:-300000}
N_STRACE=${N_STRACE:-$((N / 100))}
CPU=${CPU:-1}
BIN=${BIN:-.output/obj/bin}
BENCH=${BENCH:-.output/bench}
HEALD=${HEALD:-$BIN/heald}
BPFTRACE=${BPFTRACE:-bpftrace}
STRACE=${STRACE:-strace}
UPDATE=
[ "${1:-}" = "--update" ] && UPDATE=$2

[ "$(id -u)" = 0 ] || { echo "bench: needs root" >&2; exit 1; }
for f in "$HEALD" "$BENCH/sysloop" "$BENCH/floor" "$BENCH/empty.bpf.o"; do
	[ -e "$f" ] || { echo "bench: missing $f (make bench builds it)" >&2; exit 1; }
done
command -v "$BPFTRACE" >/dev/null || { echo "bench: no $BPFTRACE" >&2; exit 1; }
command -v "$STRACE" >/dev/null || { echo "bench: no $STRACE" >&2; exit 1; }

T=$(mktemp -d /tmp/heal-bench.XXXXXX)
HELPER=
cleanup() {
	[ -n "$HELPER" ] && kill "$HELPER" 2>/dev/null && wait "$HELPER" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT INT TERM

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

# wait_for FILE TEXT: until FILE holds TEXT (10 s at most)
wait_for() {
	i=0
	while ! grep -q "$2" "$1" 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 1000 ] && { echo "bench: timed out waiting for '$2' in $1" >&2; cat "$1" >&2; exit 1; }
		sleep 0.01
	done
}

stop_helper() {
	kill "$HELPER"
	wait "$HELPER" 2>/dev/null || true
	HELPER=
}

run_a() { $LOOP "$N"; }

run_b() {
	"$BENCH/floor" "$BENCH/empty.bpf.o" > "$T/floor.out" 2>&1 &
	HELPER=$!
	wait_for "$T/floor.out" attached
	$LOOP "$N"
	stop_helper
}

heald_run() {
	"$HEALD" --config "$1" --watch -v > "$T/heald.out" 2> "$T/heald.err" &
	HELPER=$!
	wait_for "$T/heald.err" ' watching '
	$LOOP "$N"
	stop_helper
}
run_c() {
	heald_run "$T/watch-loop.json"
	# sanity: heald did see the loop's failures
	grep -q '"syscall":"openat","errno":"ENOENT"' "$T/heald.out" ||
		{ echo "bench: heald reported no failure of sysloop" >&2; exit 1; }
}
run_d() { heald_run "$T/watch-other.json"; }

run_e() {
	rm -f "$T/go"
	$LOOP "$N" --wait-file "$T/go" > "$T/loop.out" &
	lp=$!
	# openat=257, connect=42 on x86_64; ENOENT=2, ECONNREFUSED=111
	"$BPFTRACE" -e "tracepoint:raw_syscalls:sys_exit /pid == $lp && (args->id == 257 || args->id == 42) && (args->ret == -2 || args->ret == -111)/ { @[args->id, -args->ret] = count(); }" \
		> "$T/bpftrace.out" 2>&1 &
	HELPER=$!
	wait_for "$T/bpftrace.out" Attaching
	touch "$T/go"
	wait "$lp"
	stop_helper
	cat "$T/loop.out"
}

run_f() {
	$STRACE -f -e trace=openat,close -o /dev/null $LOOP "$N_STRACE"
}

VARIANTS="a b c d e f"
: > "$T/results"
start=$(date +%s)
r=1
while [ $r -le "$ROUNDS" ]; do
	# rotate the order each round so no variant always runs first
	order=$(echo $VARIANTS | tr ' ' '\n' | awk -v r=$r '{ v[NR] = $0 } END { for (i = 0; i < NR; i++) print v[(i + r - 1) % NR + 1] }')
	for v in $order; do
		ns=$(run_$v | tail -1)
		echo "$v $ns" >> "$T/results"
		printf '  round %d %s %s ns\n' "$r" "$v" "$ns" >&2
	done
	r=$((r + 1))
done
elapsed=$(($(date +%s) - start))

awk -v rounds="$ROUNDS" -v n="$N" -v ns="$N_STRACE" -v elapsed="$elapsed" -v kernel="$(uname -r)" \
    -v cpus="$(nproc)" -v model="$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')" \
    -v when="$(date -u +%Y-%m-%dT%H:%MZ)" '
function median(v, k,   i, j, t, a) {
	for (i = 1; i <= k; i++) a[i] = v[i]
	for (i = 2; i <= k; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
	return (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
}
{ k = ++cnt[$1]; val[$1, k] = $2 + 0
  if (!($1 in mn) || $2 + 0 < mn[$1]) mn[$1] = $2 + 0
  if (!($1 in mx) || $2 + 0 > mx[$1]) mx[$1] = $2 + 0 }
END {
	name["a"] = "(a) nothing attached"
	name["b"] = "(b) floor: empty BPF program on raw_tp/sys_exit"
	name["c"] = "(c) heald watching the loop (openat/connect ENOENT/ECONNREFUSED, crashes, exits)"
	name["d"] = "(d) heald watching another process only"
	name["e"] = "(e) bpftrace, same syscall detection (tracepoint:raw_syscalls:sys_exit)"
	name["f"] = "(f) strace -f -e trace=openat,close"
	split("a b c d e f", ord, " ")
	for (i = 1; i <= 6; i++) { v = ord[i]; for (k = 1; k <= cnt[v]; k++) t[k] = val[v, k]; med[v] = median(t, cnt[v]) }
	printf "Run %s on Linux %s, %d CPUs (%s); sysloop pinned to one CPU; %d rounds, variants interleaved; " \
		"%d iterations x 3 syscalls per run (strace: %d); %d s for all rounds.\n\n", when, kernel, cpus, model, rounds, n, ns, elapsed
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
}' "$T/results" > "$T/table.md"

cat "$T/table.md"
if [ -n "$UPDATE" ] && ! grep -q "<!-- bench:syscall:begin -->" "$UPDATE" 2>/dev/null; then
	echo "bench: $UPDATE has no bench:syscall markers; not updated" >&2
elif [ -n "$UPDATE" ]; then
	awk -v table="$T/table.md" '
		/<!-- bench:syscall:end -->/ { while ((getline l < table) > 0) print l; skip = 0 }
		!skip { print }
		/<!-- bench:syscall:begin -->/ { skip = 1 }' "$UPDATE" > "$T/update" && cat "$T/update" > "$UPDATE"
	echo "bench: updated $UPDATE" >&2
fi
