#!/bin/sh
# SPDX-License-Identifier: MIT
# Idle cost (issue 5, item 6): what heald costs while it watches 10 targets and
# nothing fails, against supervisord supervising the same 10 programs; ROUNDS
# rounds, the two variants interleaved; prints a markdown table and, with
# --update FILE, replaces the block between the bench:idle markers in FILE.
#
# The 10 programs: tools/shop on 10 loopback ports (the demo's shop.json, no
# payments), started by the supervisor. heald: 10 exec targets with the demo's
# syscall rules, crashes and exits, ready checks, mode auto, its HTTP API on
# loopback (the default: API, dashboard and /metrics on). supervisord: the Debian
# package, nodaemon, a unix socket for supervisorctl, autorestart=true.
# After SETTLE seconds, IDLE_SECONDS of measurement, from /proc: CPU time (the
# sum over the supervisor's threads of /proc/PID/task/*/schedstat, ns), times
# its threads were scheduled in (same file: the wakeups), RSS, its anonymous
# part and peak RSS (VmRSS, RssAnon, VmHWM), threads; for heald also the run time of its BPF programs
# (kernel.bpf_stats_enabled on during the window, off again after; the time is
# paid by the tasks the programs run in, not by heald) and the kernel memory
# of its maps and programs (memlock in /proc/PID/fdinfo).
#
# env: ROUNDS (3), IDLE_SECONDS (20), SETTLE (3), N_TARGETS (10), BPF_STATS (1;
#      0 leaves kernel.bpf_stats_enabled alone), SUPERVISORD (supervisord); and
#      lib.sh's.
# needs root (BPF).
set -eu
. tools/bench/lib.sh

ROUNDS=${ROUNDS:-3}
IDLE_SECONDS=${IDLE_SECONDS:-20}
SETTLE=${SETTLE:-3}
N_TARGETS=${N_TARGETS:-10}
BPF_STATS=${BPF_STATS:-1}
SUPERVISORD=${SUPERVISORD:-supervisord}

bench_init idle "$@"
bench_need "$HEALD" "$BIN/shop" "$SUPERVISORD" jq curl
BIN=$(cd "$BIN" && pwd) # heald and supervisord get absolute paths

STATS_WAS=$(cat /proc/sys/kernel/bpf_stats_enabled)
idle_cleanup() {
	echo "$STATS_WAS" > /proc/sys/kernel/bpf_stats_enabled
	bench_cleanup
}
trap idle_cleanup EXIT


# the shops: etc/shop-N.json, data-N; PORTS the list
SHOP=$T/shop
mkdir -p "$SHOP/etc"
cp tools/shop/catalog.json "$SHOP/etc/catalog.json"
jq . tools/shop/returns-schema.json > "$SHOP/etc/returns-schema.json"
free_port
PAY=$PORT
PORTS=
i=1
while [ $i -le "$N_TARGETS" ]; do
	free_port
	PORTS="$PORTS $PORT"
	mkdir -p "$SHOP/data-$i"
	jq --argjson port "$PORT" --arg pay "127.0.0.1:$PAY" --arg data "$SHOP/data-$i" \
		'.port = $port | .payments = $pay | .data_dir = $data' tools/shop/shop.json > "$SHOP/etc/shop-$i.json"
	i=$((i + 1))
done

# the configs
free_port
API=$PORT
{
	printf '{"state_dir": "%s", "listen": "127.0.0.1:%s", "mode": "auto",\n' "$T/heald-state" "$API"
	printf ' "guardrails": { "allow": ["%s/etc/*.json"], "max_lines": 40 },\n "targets": [\n' "$SHOP"
	i=1
	for p in $PORTS; do
		[ $i -eq 1 ] || printf ',\n'
		printf '  { "name": "shop-%d", "exec": ["%s", "--config", "%s"], "ready": { "tcp": "127.0.0.1:%s" },\n' \
			$i "$BIN/shop" "$SHOP/etc/shop-$i.json" "$p"
		printf '    "reload": { "signal": "HUP" },\n'
		printf '    "detect": { "syscalls": [ { "syscall": ["openat", "connect", "write"], "errno": ["ENOENT", "ECONNREFUSED", "EMFILE", "ENOSPC"] } ],\n'
		printf '                "crashes": true, "exits": true } }'
		i=$((i + 1))
	done
	printf '\n ] }\n'
} > "$T/heald.json"
"$HEALD" --check-config "$T/heald.json" || { echo "bench idle: $T/heald.json does not validate" >&2; exit 1; }

mkdir -p "$T/sv"
{
	cat <<CONF
[unix_http_server]
file=$T/sv/supervisor.sock
chmod=0700

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://$T/sv/supervisor.sock

[supervisord]
nodaemon=true
logfile=$T/sv/supervisord.log
pidfile=$T/sv/supervisord.pid
childlogdir=$T/sv
loglevel=info
CONF
	i=1
	for p in $PORTS; do
		cat <<CONF

[program:shop-$i]
command=$BIN/shop --config $SHOP/etc/shop-$i.json
autorestart=true
startsecs=1
stdout_logfile=$T/sv/shop-$i.out
stderr_logfile=$T/sv/shop-$i.err
CONF
		i=$((i + 1))
	done
} > "$T/sv/supervisord.conf"

# every shop answers GET /health, and PARENT has N_TARGETS shop children
wait_shops() {
	for p in $PORTS; do
		i=0
		until [ "$(curl -s -o /dev/null -m 1 -w '%{http_code}' "http://127.0.0.1:$p/health" 2>/dev/null)" = 200 ]; do
			i=$((i + 1))
			[ $i -le 500 ] || { echo "bench idle: no shop on 127.0.0.1:$p ($2)" >&2; exit 1; }
			sleep 0.02
		done
	done
	n=0
	for c in $(cat /proc/"$1"/task/*/children); do
		[ "$(readlink "/proc/$c/exe")" = "$(readlink -f "$BIN/shop")" ] && n=$((n + 1))
	done
	[ $n -eq "$N_TARGETS" ] || { echo "bench idle: $2 runs $n shops, not $N_TARGETS" >&2; exit 1; }
}

# sched PID: "ns_on_cpu times_scheduled_in", summed over its threads
sched() { cat /proc/"$1"/task/*/schedstat | awk '{ ns += $1; n += $3 } END { printf "%.0f %d\n", ns, n }'; }

# bpf PID: "run_time_ns run_cnt memlock_bytes" of the BPF programs and maps PID holds (each id once)
bpf() {
	for f in /proc/"$1"/fdinfo/*; do cat "$f" 2>/dev/null; echo; done | awk '
		/^prog_id:/ { prog = $2 } /^map_id:/ { map = $2 } /^run_time_ns:/ { rt = $2 } /^run_cnt:/ { rc = $2 }
		/^memlock:/ { ml = $2 } /^link_id:/ { link = 1 }
		/^$/ { if (!link && prog != "" && !(prog in P)) { P[prog] = 1; tr += rt; tc += rc; tm += ml }
		       if (!link && map != "" && !(map in M)) { M[map] = 1; tm += ml }
		       prog = map = rt = rc = ml = ""; link = 0 }
		END { printf "%.0f %.0f %.0f\n", tr, tc, tm }'
}

# measure VARIANT PID: the window; records VARIANT:cpu/wakeups/rss/hwm/threads (and bpf_* for heald)
measure() {
	sleep "$SETTLE"
	[ "$1" != heald ] || [ "$BPF_STATS" != 1 ] || echo 1 > /proc/sys/kernel/bpf_stats_enabled
	set -- "$1" "$2" $(sched "$2") $(bpf "$2") "$(date +%s%N)"
	sleep "$IDLE_SECONDS"
	set -- "$@" $(sched "$2") $(bpf "$2") "$(date +%s%N)"
	[ "$1" != heald ] || [ "$BPF_STATS" != 1 ] || echo "$STATS_WAS" > /proc/sys/kernel/bpf_stats_enabled
	# $3 $4 ns, switches; $5 $6 $7 bpf; $8 wall ns; then the same at the end in $9..$14
	wall=$(( ${14} - $8 ))
	bench_record "$1:cpu" "$(awk -v a="$3" -v b="$9" -v w="$wall" 'BEGIN { printf "%.3f", (b - a) / w * 100 }')"
	bench_record "$1:wakeups" "$(awk -v a="$4" -v b="${10}" -v w="$wall" 'BEGIN { printf "%.2f", (b - a) / w * 1e9 }')"
	bench_record "$1:rss" "$(proc_rss_kb "$2")"
	bench_record "$1:hwm" "$(proc_hwm_kb "$2")"
	bench_record "$1:anon" "$(awk '/^RssAnon:/ { print $2 }' "/proc/$2/status")"
	bench_record "$1:threads" "$(awk '/^Threads:/ { print $2 }' "/proc/$2/status")"
	if [ "$1" = heald ]; then
		bench_record heald:memlock "${13}"
		if [ "$BPF_STATS" = 1 ]; then
			bench_record heald:bpf_us "$(awk -v a="$5" -v b="${11}" -v w="$wall" 'BEGIN { printf "%.2f", (b - a) / w * 1e6 }')"
			bench_record heald:bpf_runs "$(awk -v a="$6" -v b="${12}" -v w="$wall" 'BEGIN { printf "%.0f", (b - a) / w * 1e9 }')"
			bench_record heald:bpf_ns "$(awk -v a="$5" -v b="${11}" -v c="$6" -v d="${12}" 'BEGIN { printf "%.1f", (d > c) ? (b - a) / (d - c) : 0 }')"
		fi
	fi
}

run_heald() {
	heald_start "$T/heald.json"
	wait_shops "$HEALD_PID" heald
	: > "$T/heald.out.before"
	cp "$T/heald.out" "$T/heald.out.before"
	measure heald "$HEALD_PID"
	# sanity: nothing failed, and heald watched every shop
	if ! cmp -s "$T/heald.out" "$T/heald.out.before"; then
		echo "bench idle: heald reported events while idle:" >&2
		diff "$T/heald.out.before" "$T/heald.out" | head -5 >&2
		exit 1
	fi
	n=$(grep -c 'started target shop-' "$T/heald.err" || true)
	[ "$n" -eq "$N_TARGETS" ] || { echo "bench idle: heald started $n targets, not $N_TARGETS" >&2; exit 1; }
	bench_stop "$HEALD_PID"
}

run_supervisord() {
	bench_bg "$SUPERVISORD" -c "$T/sv/supervisord.conf" > "$T/sv/stdout" 2>&1
	svpid=$BG_PID
	wait_shops "$svpid" supervisord
	measure supervisord "$svpid"
	n=$(grep -c 'entered RUNNING state' "$T/sv/supervisord.log" || true)
	bench_stop "$svpid"
	[ "$n" -ge "$N_TARGETS" ] || { echo "bench idle: supervisord has $n programs RUNNING, not $N_TARGETS" >&2; exit 1; }
	: > "$T/sv/supervisord.log"
}

r=1
while [ $r -le "$ROUNDS" ]; do
	for v in $(bench_order "heald supervisord" $r); do
		"run_$v"
	done
	r=$((r + 1))
done

bench_stats | awk -v rounds="$ROUNDS" -v secs="$IDLE_SECONDS" -v settle="$SETTLE" -v nt="$N_TARGETS" \
    -v elapsed="$(bench_elapsed)" -v machine="$(bench_machine)" -v when="$(date -u +%Y-%m-%dT%H:%MZ)" \
    -v svver="$("$SUPERVISORD" --version)" -v hver="$("$HEALD" --version 2>/dev/null | head -n 1)" '
{ med[$1] = $2; mn[$1] = $3; mx[$1] = $4 }
function row(what, v, fmt, div) {
	printf "| %s | " fmt " | " fmt " | " fmt, what, med[v] / div, mn[v] / div, mx[v] / div
}
END {
	printf "Run %s on %s; %d rounds, variants interleaved; %d shops supervised, nothing failing; " \
		"%d s measured after %d s settling; %d s for all rounds.\n\n", when, machine, rounds, nt, secs, settle, elapsed
	print "| | heald: median | min | max | supervisord: median | min | max |"
	print "|---|---:|---:|---:|---:|---:|---:|"
	split("cpu wakeups rss anon hwm threads", m, " ")
	name["cpu"] = "CPU, % of one core"; fmt["cpu"] = "%.3f"; div["cpu"] = 1
	name["wakeups"] = "wakeups/s (threads scheduled in)"; fmt["wakeups"] = "%.1f"; div["wakeups"] = 1
	name["rss"] = "RSS, MiB"; fmt["rss"] = "%.1f"; div["rss"] = 1024
	name["anon"] = "of it anonymous (RssAnon; the rest is mapped files), MiB"; fmt["anon"] = "%.1f"; div["anon"] = 1024
	name["hwm"] = "peak RSS (VmHWM), MiB"; fmt["hwm"] = "%.1f"; div["hwm"] = 1024
	name["threads"] = "threads"; fmt["threads"] = "%d"; div["threads"] = 1
	for (i = 1; i <= 6; i++) { k = m[i]
		row(name[k], "heald:" k, fmt[k], div[k])
		printf " | " fmt[k] " | " fmt[k] " | " fmt[k] " |\n", med["supervisord:" k] / div[k], mn["supervisord:" k] / div[k], mx["supervisord:" k] / div[k] }
	row("BPF maps and programs (memlock), MiB", "heald:memlock", "%.1f", 1048576); print " | - | - | - |"
	if ("heald:bpf_us" in med) {
		row("BPF programs: run time, us per s (paid by the tasks they run in)", "heald:bpf_us", "%.1f", 1); print " | - | - | - |"
		row("BPF programs: runs per s (every syscall on the host, and more)", "heald:bpf_runs", "%.0f", 1); print " | - | - | - |"
		row("BPF programs: ns per run", "heald:bpf_ns", "%.1f", 1); print " | - | - | - |"
	}
	print ""
	print "| goal (the event pipeline'"'"'s, applied to idle) | heald, median | goal |"
	print "|---|---:|---:|"
	printf "| CPU | %.3f %% | <= 5 %% |\n", med["heald:cpu"]
	printf "| RSS | %.1f MiB | <= 32 MB (30.5 MiB) |\n", med["heald:rss"] / 1024
	printf "\nheald: %s; supervisord %s.\n", hver, svver
}' > "$T/table.md"
bench_update "$T/table.md"
