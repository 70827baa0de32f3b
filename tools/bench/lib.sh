# SPDX-License-Identifier: MIT
# Shared by the benchmark sections (tools/bench/*.sh); sourced, not run.
# Each section: bench_init NAME, runs its variants interleaved over ROUNDS
# rounds, records "variant value" lines, then prints a markdown table and
# with --update FILE replaces the block between <!-- bench:NAME:begin/end -->.
#
# env every section honours: ROUNDS, BIN (.output/obj/bin), BENCH
# (.output/bench), HEALD ($BIN/heald).

. tools/free-port.sh # free_port: PORT = a free TCP port

BIN=${BIN:-.output/obj/bin}
BENCH=${BENCH:-.output/bench}
HEALD=${HEALD:-$BIN/heald}
BENCH_HELPERS=

# bench_init NAME "$@": root check, a temp dir $T, cleanup of helpers on exit,
# and UPDATE set from --update FILE.
bench_init() {
	BENCH_NAME=$1
	shift
	UPDATE=
	[ "${1:-}" = "--update" ] && UPDATE=$2
	[ "$(id -u)" = 0 ] || { echo "bench $BENCH_NAME: needs root" >&2; exit 1; }
	T=$(mktemp -d "/tmp/heal-bench-$BENCH_NAME.XXXXXX")
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
	: > "$T/results"
	BENCH_START=$(date +%s)
}

bench_cleanup() {
	for p in $BENCH_HELPERS; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	rm -rf "$T"
}

bench_need() {
	for f in "$@"; do
		case $f in
		*/*) [ -e "$f" ] || { echo "bench $BENCH_NAME: missing $f (make bench builds it)" >&2; exit 1; } ;;
		*) command -v "$f" >/dev/null || { echo "bench $BENCH_NAME: no $f (make bench installs it)" >&2; exit 1; } ;;
		esac
	done
}

# bench_bg CMD...: run in the background, killed at exit; pid in BG_PID
bench_bg() {
	"$@" &
	BG_PID=$!
	BENCH_HELPERS="$BENCH_HELPERS $BG_PID"
}

# bench_stop PID [SIGNAL=TERM]: signal and reap
bench_stop() {
	kill -"${2:-TERM}" "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	BENCH_HELPERS=$(echo "$BENCH_HELPERS" | tr ' ' '\n' | grep -vx "$1" | tr '\n' ' ')
}

# wait_for FILE TEXT [SECONDS=10]: until FILE holds TEXT
wait_for() {
	_i=0
	_max=$((${3:-10} * 100))
	while ! grep -q "$2" "$1" 2>/dev/null; do
		_i=$((_i + 1))
		if [ $_i -gt $_max ]; then
			echo "bench $BENCH_NAME: timed out waiting for '$2' in $1" >&2
			tail -20 "$1" >&2
			exit 1
		fi
		sleep 0.01
	done
}

# wait_attached PID [SECONDS=10]: until PID holds an attached BPF perf event
# (tracepoint, uprobe): bpftrace prints "Attaching" before it has attached
wait_attached() {
	_i=0
	while [ "$(bpftool perf show -j 2>/dev/null | jq --argjson p "$1" '[.[] | select(.pid == $p)] | length')" = 0 ]; do
		_i=$((_i + 1))
		if [ $_i -gt $((${2:-10} * 100)) ]; then
			echo "bench $BENCH_NAME: pid $1 attached nothing in ${2:-10} s" >&2
			exit 1
		fi
		sleep 0.01
	done
}

# bench_traced PROGRAM CMD...: CMD's last line of output, CMD run under the
# bpftrace PROGRAM (@PID@ in it names CMD's pid). CMD takes --wait-file and
# starts its timed work once bpftrace has really attached.
bench_traced() {
	_prog=$1
	shift
	rm -f "$T/go"
	"$@" --wait-file "$T/go" > "$T/traced.out" &
	_lp=$!
	bench_bg "${BPFTRACE:-bpftrace}" -e "$(echo "$_prog" | sed "s/@PID@/$_lp/g")" > "$T/bpftrace.out" 2>&1
	wait_attached "$BG_PID"
	touch "$T/go"
	wait "$_lp"
	bench_stop "$BG_PID" INT
	tail -1 "$T/traced.out"
}

# heald_start CONFIG: heald --watch -v in the background until it is watching;
# its stdout in $T/heald.out, stderr in $T/heald.err; pid in HEALD_PID
heald_start() {
	bench_bg "$HEALD" --config "$1" --watch -v > "$T/heald.out" 2> "$T/heald.err"
	HEALD_PID=$BG_PID
	wait_for "$T/heald.err" ' watching '
}

# bench_order "a b c" ROUND: the variants rotated by ROUND, one per line
bench_order() {
	echo "$1" | tr ' ' '\n' | awk -v r="$2" '{ v[NR] = $0 } END { for (i = 0; i < NR; i++) print v[(i + r - 1) % NR + 1] }'
}

# bench_rounds "a b c": ROUNDS rounds of run_a, run_b... (order rotated each
# round), each recording the last line it prints
bench_rounds() {
	_r=1
	while [ $_r -le "$ROUNDS" ]; do
		for _v in $(bench_order "$1" $_r); do
			# in this shell, not a subshell: a failed check stops the run (and its cleanup runs)
			run_$_v > "$T/run.out"
			bench_record "$_v" "$(tail -1 "$T/run.out")"
		done
		_r=$((_r + 1))
	done
}

# bench_record VARIANT VALUE: VALUE must be a number
bench_record() {
	case $2 in
	'' | *[!0-9.eE+-]*) echo "bench $BENCH_NAME: variant $1 gave '$2', not a number" >&2; exit 1 ;;
	esac
	echo "$1 $2" >> "$T/results"
	printf '  %s %s %s\n' "$BENCH_NAME" "$1" "$2" >&2
}

# bench_stats [FILE=$T/results]: "variant median min max n" per variant, in
# order of first appearance
bench_stats() {
	awk '
	function median(v, k,   i, j, t, a) {
		for (i = 1; i <= k; i++) a[i] = v[i]
		for (i = 2; i <= k; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
		return (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
	}
	{ if (!($1 in cnt)) ord[++nv] = $1
	  k = ++cnt[$1]; val[$1, k] = $2 + 0
	  if (k == 1 || $2 + 0 < mn[$1]) mn[$1] = $2 + 0
	  if (k == 1 || $2 + 0 > mx[$1]) mx[$1] = $2 + 0 }
	END {
		for (i = 1; i <= nv; i++) { v = ord[i]; for (k = 1; k <= cnt[v]; k++) t[k] = val[v, k]
			printf "%s %s %s %s %d\n", v, median(t, cnt[v]), mn[v], mx[v], cnt[v] }
	}' "${1:-$T/results}"
}

# bench_machine: "Linux 6.x, 2 CPUs (model)"
bench_machine() {
	printf 'Linux %s, %s CPUs (%s)' "$(uname -r)" "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
}

bench_elapsed() {
	echo $(($(date +%s) - BENCH_START))
}

# bench_update TABLE: print TABLE; with --update FILE replace the section's block
bench_update() {
	cat "$1"
	[ -n "$UPDATE" ] || return 0
	if ! grep -q "<!-- bench:$BENCH_NAME:begin -->" "$UPDATE" 2>/dev/null; then
		echo "bench $BENCH_NAME: $UPDATE has no bench:$BENCH_NAME markers; not updated" >&2
		return 0
	fi
	awk -v table="$1" -v name="$BENCH_NAME" '
		$0 == "<!-- bench:" name ":end -->" { while ((getline l < table) > 0) print l; skip = 0 }
		!skip { print }
		$0 == "<!-- bench:" name ":begin -->" { skip = 1 }' "$UPDATE" > "$T/update" && cat "$T/update" > "$UPDATE"
	echo "bench $BENCH_NAME: updated $UPDATE" >&2
}

# proc_cpu_ticks PID: utime+stime of PID in clock ticks
proc_cpu_ticks() {
	awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

# proc_rss_kb PID: resident set size in KiB (VmRSS); proc_hwm_kb: its peak
proc_rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
proc_hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
