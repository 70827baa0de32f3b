#!/bin/sh
# SPDX-License-Identifier: MIT
# Time to heal (issue 5, item 5), in two parts; prints markdown tables and, with
# --update FILE, replaces the block between the bench:heal markers in FILE.
#
# 1. The demo's seven shop scenarios (tools/demo.sh with DEMO_DETECT=0 and
#    DEMO_SUMMARY), ROUNDS runs. Per scenario, from heald's own events: failure
#    (the kernel timestamp of the event that opened the heal) -> HEALED; the
#    verify part of it (the step_ms of every VERIFY_PASS/VERIFY_FAIL: the verify
#    command, then the recurrence window); and the rest ("work"). Against the
#    seed's 8-12 s.
# 2. Crash -> serving again: the shop (the demo's shop.json, no payments) under
#    heald (an exec target: crash, no config change -> the restart playbook) and
#    under supervisord (autorestart=true, startsecs=1), each started anew every
#    round and crashed twice (the first crash after heald's start, then one more
#    once the first heal ended); and started with no supervisor (the floor: the
#    shop's own start). tools/bench/crashpoll sends SIGSEGV, waits for the exit,
#    and times the kill -> the first HTTP 200 from GET /health, polling every
#    POLL_MS. CRASH_ROUNDS rounds, the three variants interleaved; a demo run
#    goes before each round while there are demo rounds left.
#
# env: ROUNDS (3: demo runs), CRASH_ROUNDS (5), POLL_MS (5), SETTLE (1.2: seconds
#      the shop runs before the kill; over supervisord's startsecs=1), SUPERVISORD
#      (supervisord); and lib.sh's (the demo takes heald, healctl, shop, payments
#      and failgen from BIN, not HEALD).
# needs root (BPF, tmpfs), bash, jq, curl.
set -eu
. tools/bench/lib.sh

ROUNDS=${ROUNDS:-3}
CRASH_ROUNDS=${CRASH_ROUNDS:-5}
POLL_MS=${POLL_MS:-5}
SETTLE=${SETTLE:-1.2}
SUPERVISORD=${SUPERVISORD:-supervisord}
SEED_LO=8000
SEED_HI=12000

bench_init heal "$@"
bench_need "$HEALD" "$BIN/shop" "$BIN/payments" "$BIN/healctl" "$BIN/failgen" "$BENCH/crashpoll" \
	"$SUPERVISORD" bash jq curl
BIN=$(cd "$BIN" && pwd) # heald and supervisord get absolute paths

# RFC 3339 with microseconds -> microseconds since the epoch (fits a double exactly)
JQ_US='def us: (.timestamp | capture("^(?<s>[^.]+)\\.(?<f>[0-9]+)Z$")) as $c
	| (($c.s + "Z") | fromdateiso8601) * 1000000 + ($c.f + "000000" | .[0:6] | tonumber);'

# ---- 1. the demo's scenarios ----------------------------------------------------------------

# demo_round R: one run of the demo's shop part; records SCENARIO:total/verify/window/work
demo_round() {
	sum=$T/demo-$1.tsv
	if ! DEMO_DETECT=0 DEMO_SUMMARY=$sum NO_COLOR=1 bash tools/demo.sh "$BIN" > "$T/demo-$1.log" 2>&1; then
		echo "bench heal: the demo did not heal every scenario (round $1); its end:" >&2
		tail -25 "$T/demo-$1.log" >&2
		exit 1
	fi
	[ "$(wc -l < "$sum")" -eq 7 ] || { echo "bench heal: $sum: expected 7 scenarios" >&2; cat "$sum" >&2; exit 1; }
	tab=$(printf '\t')
	while IFS=$tab read -r name outcome _ tids; do
		case $outcome in
		HEALED | "ROLLED BACK, then HEALED") ;;
		*) echo "bench heal: $name: $outcome (round $1)" >&2; exit 1 ;;
		esac
		# the heal that ended last decides; the failure is the earliest event of any of them
		line=$(jq -rs --arg tids "$tids" "$JQ_US"'
			($tids | split(" ")) as $ids
			| [.[] | select(.trace_id as $t | $t != null and ($ids | any(. == $t)))] as $ev
			| ($ev | map(us) | min) as $t0
			| ($ev | map(select(.type == "HEALED")) | sort_by(us) | last) as $h
			| if $h == null then "none" else
				($ev | map(select(.trace_id == $h.trace_id))) as $tr
				| [ (($h | us) - $t0) / 1000,
				    ($tr | map(select(.type == "VERIFY_PASS" or .type == "VERIFY_FAIL") | .payload.step_ms) | add),
				    ($tr | map(select(.type == "VERIFY_PASS") | .payload.window_ms) | add),
				    ($h.payload.tried | join(",")) ] | map(tostring) | join(" ")
			  end' "$sum.events")
		set -- "$1" $line
		[ "$2" != none ] && [ $# -eq 5 ] ||
			{ echo "bench heal: $name: no HEALED event for $tids (round $1)" >&2; exit 1; }
		bench_record "$name:total" "$2"
		bench_record "$name:verify" "$3"
		bench_record "$name:window" "$4"
		bench_record "$name:work" "$(echo "$2 $3" | awk '{ printf "%.1f", $1 - $2 }')"
		echo "$name $5" >> "$T/playbooks"
	done < "$sum"
}

# ---- 2. crash -> serving again ----------------------------------------------------------------


SHOP=$T/shop
mkdir -p "$SHOP/etc" "$SHOP/data"
cp tools/shop/catalog.json "$SHOP/etc/catalog.json"
jq . tools/shop/returns-schema.json > "$SHOP/etc/returns-schema.json"

# shop_config: a new port in SHOP_PORT and shop.json with it (payments: nothing listens there;
# /health does not need it)
shop_config() {
	free_port
	SHOP_PORT=$PORT
	free_port
	jq --argjson port "$SHOP_PORT" --arg pay "127.0.0.1:$PORT" --arg data "$SHOP/data" \
		'.port = $port | .payments = $pay | .data_dir = $data' tools/shop/shop.json > "$SHOP/etc/shop.json"
}

# wait_serving: until GET /health answers 200 (10 s)
wait_serving() {
	i=0
	until [ "$(curl -s -o /dev/null -m 1 -w '%{http_code}' "http://127.0.0.1:$SHOP_PORT/health" 2>/dev/null)" = 200 ]; do
		i=$((i + 1))
		[ $i -le 500 ] || { echo "bench heal: the shop did not answer on 127.0.0.1:$SHOP_PORT ($1)" >&2; exit 1; }
		sleep 0.02
	done
}

# shop_child PARENT: the pid of PARENT's child running the shop
shop_child() {
	for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
		[ "$(readlink "/proc/$c/exe" 2>/dev/null)" = "$(readlink -f "$BIN/shop")" ] && { echo "$c"; return 0; }
	done
	echo "bench heal: no shop under pid $1" >&2
	exit 1
}

# crash PID: crashpoll kills it, prints "ms start_us exit_ms"
crash() {
	out=$("$BENCH/crashpoll" kill "$1" "$SHOP_PORT" "$POLL_MS") ||
		{ echo "bench heal: the shop did not serve again after the crash ($2)" >&2; exit 1; }
	echo "$out" | sed 's/ms=\([0-9.]*\) .*start_us=\([0-9]*\) exit_ms=\([0-9.]*\)/\1 \2 \3/'
}

crash_heald() {
	shop_config
	free_port
	cat > "$T/crash.json" <<JSON
{"state_dir": "$T/crash-state-$1", "listen": "127.0.0.1:$PORT", "mode": "auto",
 "guardrails": { "allow": ["$SHOP/etc/*.json"], "max_lines": 40 }, "limits": { "backoff_ms": 200 },
 "targets": [
  { "name": "shop", "exec": ["$BIN/shop", "--config", "$SHOP/etc/shop.json"],
    "ready": { "tcp": "127.0.0.1:$SHOP_PORT" }, "reload": { "signal": "HUP" },
    "detect": {
      "syscalls": [ { "syscall": ["openat", "connect", "write"], "errno": ["ENOENT", "ECONNREFUSED", "EMFILE", "ENOSPC"] } ],
      "crashes": true,
      "api": [ { "binary": "$BIN/shop", "symbol": "shop_handle_return", "fail_when": "ret >= 500",
                 "capture_arg": { "index": 1, "type": "string" } } ] },
    "verify": { "window_ms": 1000 } } ] }
JSON
	heald_start "$T/crash.json"
	wait_serving heald
	for k in first again; do
		sleep "$SETTLE"
		pid=$(shop_child "$HEALD_PID")
		out=$(crash "$pid" heald)
		set -- $out
		bench_record "crash:heald-$k" "$1"
		bench_record exit "$3"
		n=$(if [ $k = first ]; then echo 1; else echo 2; fi)
		i=0
		until [ "$(grep -c '"type":"HEALED"\|"type":"HEAL_FAILED"\|"type":"ESCALATED"' "$T/heald.out")" -ge $n ]; do
			i=$((i + 1))
			[ $i -le 1500 ] || { echo "bench heal: heald did not end its heal of the crash in 15 s" >&2; exit 1; }
			sleep 0.01
		done
		new=$(shop_child "$HEALD_PID")
		[ "$new" != "$pid" ] || { echo "bench heal: heald: the shop pid did not change" >&2; exit 1; }
		# heald's view, from its events after the kill, in ms after it
		steps=$(jq -rs --argjson k "$2" "$JQ_US"'
			map(select(us >= $k)) as $ev
			| def at(t): ($ev | map(select(.type == t)) | first) as $e | if $e then (($e | us) - $k) / 1000 else "none" end;
			[at("CRASH"), at("RCA_READY"), at("RELOAD_DONE"), at("HEALED"),
			 ($ev | map(select(.type == "CRASH")) | first | .payload.signal // "none"),
			 ($ev | map(select(.type == "RCA_READY")) | first | .payload.playbook // "none")] | map(tostring) | join(" ")' "$T/heald.out")
		set -- $steps
		[ "$5" = SIGSEGV ] || { echo "bench heal: heald reported no SIGSEGV crash of the shop" >&2; exit 1; }
		[ "$4" != none ] ||
			{ echo "bench heal: heald's heal of the crash did not end HEALED" >&2; grep '"type":"HEAL\|ESCALATED' "$T/heald.out" >&2; exit 1; }
		bench_record "heald-$k:crash" "$1"
		bench_record "heald-$k:rca" "$2"
		bench_record "heald-$k:reload" "$3"
		bench_record "heald-$k:healed" "$4"
		echo "$6" >> "$T/crash-playbooks"
	done
	bench_stop "$HEALD_PID"
}

crash_supervisord() {
	shop_config
	sv=$T/sv-$1
	mkdir -p "$sv"
	cat > "$sv/supervisord.conf" <<CONF
[unix_http_server]
file=$sv/supervisor.sock
chmod=0700

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://$sv/supervisor.sock

[supervisord]
nodaemon=true
logfile=$sv/supervisord.log
pidfile=$sv/supervisord.pid
childlogdir=$sv
loglevel=info

[program:shop]
command=$BIN/shop --config $SHOP/etc/shop.json
autostart=true
autorestart=true
startsecs=1
startretries=3
stopsignal=TERM
stdout_logfile=$sv/shop.out
stderr_logfile=$sv/shop.err
CONF
	bench_bg "$SUPERVISORD" -c "$sv/supervisord.conf" > "$sv/stdout" 2>&1
	svpid=$BG_PID
	wait_serving supervisord
	for k in first again; do
		sleep "$SETTLE"
		pid=$(shop_child "$svpid")
		out=$(crash "$pid" supervisord)
		set -- $out
		bench_record "crash:supervisord-$k" "$1"
		bench_record exit "$3"
		new=$(shop_child "$svpid")
		[ "$new" != "$pid" ] || { echo "bench heal: supervisord: the shop pid did not change" >&2; exit 1; }
		[ "$(grep -c "exited: shop (terminated by SIGSEGV" "$sv/supervisord.log")" -ge "$(if [ $k = first ]; then echo 1; else echo 2; fi)" ] ||
			{ echo "bench heal: supervisord did not log the crash" >&2; cat "$sv/supervisord.log" >&2; exit 1; }
	done
	bench_stop "$svpid"
}

crash_cold() {
	shop_config
	out=$("$BENCH/crashpoll" exec "$SHOP_PORT" "$POLL_MS" -- "$BIN/shop" --config "$SHOP/etc/shop.json" 2>"$T/cold.err") ||
		{ echo "bench heal: the shop did not start" >&2; cat "$T/cold.err" >&2; exit 1; }
	bench_record crash:cold "$(echo "$out" | sed 's/ms=\([0-9.]*\) .*/\1/')"
}

# ---- the rounds ---------------------------------------------------------------------------------

: > "$T/playbooks"
: > "$T/crash-playbooks"
r=1
while [ $r -le "$ROUNDS" ] || [ $r -le "$CRASH_ROUNDS" ]; do
	[ $r -gt "$ROUNDS" ] || demo_round $r
	if [ $r -le "$CRASH_ROUNDS" ]; then
		for v in $(bench_order "heald supervisord cold" $r); do
			"crash_$v" $r
		done
	fi
	r=$((r + 1))
done

# ---- the tables ----------------------------------------------------------------------------------

bench_stats > "$T/stats"
sort -u "$T/playbooks" > "$T/pb"
awk -v rounds="$ROUNDS" -v crounds="$CRASH_ROUNDS" -v poll="$POLL_MS" -v elapsed="$(bench_elapsed)" \
    -v machine="$(bench_machine)" -v when="$(date -u +%Y-%m-%dT%H:%MZ)" -v lo="$SEED_LO" -v hi="$SEED_HI" \
    -v svver="$("$SUPERVISORD" --version)" -v cpb="$(sort -u "$T/crash-playbooks" | tr '\n' ' ' | sed 's/ $//')" '
FILENAME == ARGV[1] { pb[$1] = $2; next }
{ med[$1] = $2; mn[$1] = $3; mx[$1] = $4; n[$1] = $5 }
function ms(x) { x = sprintf("%.0f", x); return x == "-0" ? "0" : x }
function mmm(v) { return sprintf("%.1f | %.1f | %.1f", med[v], mn[v], mx[v]) }
END {
	printf "Run %s on %s; %d demo runs (7 scenarios each) and %d crash rounds, the crash variants interleaved; " \
		"shop polled every %s ms; %d s for all rounds.\n\n", when, machine, rounds, crounds, poll, elapsed
	print "| scenario | playbooks tried | failure -> HEALED, ms: median | min | max | verify, ms: median | work, ms: median | min | max | seed 8-12 s / median |"
	print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	split("returns-schema missing-include payments-down null-crash disk-full fd-leak wrong-fix", sc, " ")
	for (i = 1; i <= 7; i++) { c = sc[i]
		p = pb[c]; gsub(",", " -> ", p)
		printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %.1f-%.1fx |\n", c, p,
			ms(med[c ":total"]), ms(mn[c ":total"]), ms(mx[c ":total"]), ms(med[c ":verify"]),
			ms(med[c ":work"]), ms(mn[c ":work"]), ms(mx[c ":work"]), lo / (med[c ":total"] + 0 ? med[c ":total"] : 1), hi / (med[c ":total"] + 0 ? med[c ":total"] : 1) }
	print ""
	print "failure: the kernel'"'"'s timestamp of the event that opened the heal; verify: the step_ms of its " \
		"VERIFY_FAIL/VERIFY_PASS events (tools/shop-verify.sh, then a " ms(med["returns-schema:window"]) \
		" ms recurrence window, per plan tried); work: the rest (detection, RCA, patch, guardrails, reload)."
	print ""
	print "| crash (kill -SEGV) -> first HTTP 200, ms | 1st crash: median | min | max | 2nd crash: median | min | max |"
	print "|---|---:|---:|---:|---:|---:|---:|"
	printf "| (a) heald, exec target (playbook: %s) | %s | %s |\n", cpb, mmm("crash:heald-first"), mmm("crash:heald-again")
	printf "| (b) supervisord %s, autorestart=true, startsecs=1 | %s | %s |\n", svver, mmm("crash:supervisord-first"), mmm("crash:supervisord-again")
	printf "| (c) no supervisor: fork+exec -> first 200 (the shop'"'"'s own start) | %s | - | - | - |\n", mmm("crash:cold")
	printf "\nThe killed shop had exited %s ms after the kill (median; min %s, max %s); polling starts then.\n", \
		sprintf("%.2f", med["exit"]), sprintf("%.2f", mn["exit"]), sprintf("%.2f", mx["exit"])
	printf "\nsupervisord (b) / heald (a), medians: %.1fx (1st crash), %.1fx (2nd crash); heald (a) minus the shop'"'"'s own start (c): %.1f ms, %.1f ms.\n\n", \
		med["crash:supervisord-first"] / med["crash:heald-first"], med["crash:supervisord-again"] / med["crash:heald-again"], \
		med["crash:heald-first"] - med["crash:cold"], med["crash:heald-again"] - med["crash:cold"]
	print "| heald (a), its events, ms after the kill | 1st crash: median | min | max | 2nd crash: median | min | max |"
	print "|---|---:|---:|---:|---:|---:|---:|"
	printf "| CRASH SIGSEGV (the kernel'"'"'s timestamp) | %s | %s |\n", mmm("heald-first:crash"), mmm("heald-again:crash")
	printf "| RCA_READY (heald has the event, symbolized, and a plan) | %s | %s |\n", mmm("heald-first:rca"), mmm("heald-again:rca")
	printf "| RELOAD_DONE (restarted, heald saw its port accept) | %s | %s |\n", mmm("heald-first:reload"), mmm("heald-again:reload")
	printf "| HEALED (after the 1 s recurrence window) | %s | %s |\n", mmm("heald-first:healed"), mmm("heald-again:healed")
	printf "\nheald reported every crash and ended every heal HEALED (%d of %d crashes).\n", n["heald-first:healed"] + n["heald-again:healed"], 2 * crounds
}' "$T/pb" "$T/stats" > "$T/table.md"
bench_update "$T/table.md"
