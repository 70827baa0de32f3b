#!/bin/bash
# SPDX-License-Identifier: MIT
# make demo: heald sees unmodified programs fail, then heals a small e-commerce shop
# that gets broken seven ways, one after the other, and shows every step as it happens.
#
#   bash tools/demo.sh [BIN]     as root; BIN: where heald, failgen, shop, payments are
#                                (default .output/obj/bin)
#
# Part 1, detection (~2.5 s): heald in "observe" mode on four failgen cases: an abort, an
#   exit 3, an OOM kill, a storm of 300,000 failing syscalls, sampled and counted exactly.
# Part 2, healing: tools/shop and its payments service, both supervised by
#   `heald --config heal.json --watch` (the shop's config files allowlisted, its data dir a
#   1 MiB tmpfs). Each scenario switches a failure on from the outside, sends the request
#   a customer would, and prints heald's events as they come: the failure, RCA_READY,
#   PATCH_READY with the diff and the guardrail verdicts, PATCH_APPLIED, RELOAD_DONE,
#   VERIFY_PASS/FAIL, ROLLBACK_DONE, HEALED, each with the ms since the failure. The next
#   scenario starts once every heal the last one opened has ended. The scenarios:
#   returns-schema, missing-include, payments-down, null-crash, disk-full, fd-leak (the
#   tools/shop --scenarios), and wrong-fix: an operator playbook that ranks first, whose
#   change does not help: VERIFY_FAIL, ROLLBACK_DONE, then the next playbook heals.
#   The whole demo takes about 20 s; healctl then lists the heals from the journal.
# Ends with a summary table and exits 0 only when every scenario ended HEALED (after a
# rollback or not) and heald stopped cleanly: CI can run it.
#
# Everything lives in a temp dir that is removed at the end, Ctrl-C included (heald gets
# SIGTERM and stops the shop; the tmpfs is unmounted). DEMO_KEEP=1 keeps the dir (the
# journal: healctl --state-dir DIR/state traces). Colour only when stdout is a terminal
# and NO_COLOR is unset. The events are formatted by tools/demo-events.jq.
#
# For tools/bench/heal.sh (both unset by default; `make demo` sets neither):
#   DEMO_DETECT=0     skip part 1 (detection); the summary and the exit code are then the shop's
#   DEMO_SUMMARY=FILE write one line per shop scenario to FILE, tab-separated: name, outcome (as
#                     in the summary table), when it was broken (us since the epoch), the trace
#                     ids of its heals (space-separated); and heald's events of part 2 (one JSON
#                     object a line, as --watch prints them) to FILE.events

# `sh tools/demo.sh` works too: this line is all a POSIX shell reads of the file.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi

set -u
export LC_NUMERIC=C

BIN=$(cd "${1:-.output/obj/bin}" 2>/dev/null && pwd) || { echo "demo: no ${1:-.output/obj/bin}: run 'make' first" >&2; exit 1; }
TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
T=$EPOCHREALTIME
T_START=${T/[.,]/}

# ---- output -------------------------------------------------------------------------------

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ] && [ "${TERM:-dumb}" != dumb ]; then COLOR=1; else COLOR=0; fi
case "$(locale charmap 2>/dev/null)" in UTF-8 | utf8) UTF8=1 ;; *) UTF8=0 ;; esac
if [ "$COLOR" = 1 ]; then
	B=$'\e[1m' D=$'\e[2m' R=$'\e[31m' G=$'\e[32m' Y=$'\e[33m' N=$'\e[0m'
else
	B='' D='' R='' G='' Y='' N=''
fi
if [ "$UTF8" = 1 ]; then ARROW='→' RULE='━'; else ARROW='->' RULE='='; fi

now() { T=$EPOCHREALTIME; NOW=${T/[.,]/}; }   # microseconds since the epoch, no fork
secs() { printf '%d.%d s' $(($1 / 1000000)) $(($1 % 1000000 / 100000)); } # microseconds -> "12.3 s"
line() { printf '%s\n' "$*"; }
note() { printf '    %-10s %s\n' "$1" "$2"; }
heading() { # title [what]
	local r
	printf -v r '%*s' 78 ''
	printf '\n%s%s%s%s\n%s%s%s\n' "$B" "$1" "$N" "${2:+   $2}" "$D" "${r// /$RULE}" "$N"
}
die() {
	printf '%sdemo: %s%s\n' "$R" "$*" "$N" >&2
	exit 1
}

# ---- the host ------------------------------------------------------------------------------

[ "$(id -u)" -eq 0 ] || die "heald loads BPF programs: run 'sudo make demo'"
for t in heald healctl failgen shop payments; do
	[ -x "$BIN/$t" ] || die "$BIN/$t is missing: run 'make' first"
done
command -v jq >/dev/null 2>&1 || die "jq is missing: run 'make deps'"
command -v curl >/dev/null 2>&1 || die "curl is missing: run 'make deps'"
mountpoint -q /sys/kernel/tracing 2>/dev/null || mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true

dir=$(mktemp -d /tmp/heal-demo.XXXXXX) || die "cannot create a temp dir"
chmod 755 "$dir"
heald='' reader='' cleaned='' heald_rc=0

stop_heald() {
	local i
	[ -n "$heald" ] || return 0
	if kill -0 "$heald" 2>/dev/null; then
		kill -TERM "$heald" 2>/dev/null
		for ((i = 0; i < 100; i++)); do
			kill -0 "$heald" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$heald" 2>/dev/null; then
			line "${R}demo: heald did not stop 10 s after SIGTERM: SIGKILL${N}"
			kill -KILL "$heald" 2>/dev/null
		fi
	fi
	wait "$heald" 2>/dev/null
	heald_rc=$?
	heald=
	if [ -n "$reader" ]; then
		exec 3<&-
		wait "$reader" 2>/dev/null
		reader=
	fi
}

cleanup() {
	[ -z "$cleaned" ] || return 0
	cleaned=1
	trap '' INT TERM HUP # a second Ctrl-C must not cut the clean-up short
	stop_heald
	if mountpoint -q "$dir/data" 2>/dev/null; then
		umount "$dir/data" 2>/dev/null || umount -l "$dir/data"
	fi
	if [ "${DEMO_KEEP:-0}" = 1 ]; then
		line "${D}kept $dir (healctl --state-dir $dir/state traces)${N}"
	else
		rm -rf "$dir"
	fi
}
interrupted() {
	printf '\n%sdemo: interrupted: stopping heald and cleaning up%s\n' "$Y" "$N"
	cleanup
	exit 130
}
trap cleanup EXIT
trap interrupted INT TERM HUP

. "$TOOLS/free-port.sh" # free_port: PORT = a free TCP port

# Start heald on $1 with --watch into $dir/events.jsonl, and the formatter (phase $2) on fd 3.
start_heald() {
	: >"$dir/events.jsonl"
	# its own session: a Ctrl-C reaches only this script, which stops heald with SIGTERM
	setsid "$BIN/heald" --config "$1" --watch >"$dir/events.jsonl" 2>"$dir/heald.log" </dev/null &
	heald=$!
	exec 3< <(tail -s 0.1 -n +1 -f --pid="$heald" "$dir/events.jsonl" 2>/dev/null |
		jq -n -r --unbuffered --arg phase "$2" --arg color "$COLOR" --arg utf8 "$UTF8" \
			--arg root "$dir" --arg bin "$BIN" -f "$TOOLS/demo-events.jq")
	reader=$!
	pending=
}

heald_failed() {
	line "${R}demo: heald stopped; its log:${N}"
	tail -n 20 "$dir/heald.log" | sed 's/^/    /'
	exit 1
}

# ---- reading events ---------------------------------------------------------------------------

# Per heal (trace id): first failure (us), end type and time, playbooks tried, rolled back.
declare -A T_T0 T_END T_ENDTS T_TRIED T_ROLLED SEEN
S_TRACES='' S_OPEN=0 S_ON=0 S_DET='' det_note='' pending=''

on_control() { # $type $tid $ts $tried $target of read_one
	case "$type" in
	SYSCALL_FAILURE | API_FAILURE | CRASH | EXIT_FAILURE | OOM_KILL)
		SEEN[$target:$type]=1
		[ "$tid" != - ] || return 0
		if [ -z "${T_T0[$tid]:-}" ]; then
			T_T0[$tid]=$ts
			S_TRACES="$S_TRACES $tid"
			S_OPEN=$((S_OPEN + 1))
			[ -n "$S_DET" ] || S_DET=$ts
			det_note="${D}(detected $(((ts - S_ON) / 1000)) ms after the break)${N}"
		fi
		;;
	*)
		SEEN[$target:$type]=1
		[ "$tid" != - ] || return 0
		if [ -z "${T_T0[$tid]:-}" ]; then # a step of a heal whose failure was not seen
			T_T0[$tid]=$ts
			S_TRACES="$S_TRACES $tid"
			S_OPEN=$((S_OPEN + 1))
			[ -n "$S_DET" ] || S_DET=$ts
		fi
		case "$type" in
		ROLLBACK_DONE) T_ROLLED[$tid]=1 ;;
		HEALED | HEAL_FAILED | ESCALATED | DRY_RUN)
			if [ -z "${T_END[$tid]:-}" ]; then
				T_END[$tid]=$type
				T_ENDTS[$tid]=$ts
				T_TRIED[$tid]=$tried
				S_OPEN=$((S_OPEN - 1))
			fi
			;;
		esac
		;;
	esac
}

# Read and handle one line of the formatter within $1 s: 0 done, 1 nothing came, 2 it ended.
read_one() {
	local part type tid ts tried target rc
	IFS= read -r -t "$1" part <&3
	rc=$?
	if [ $rc -eq 0 ]; then
		part=$pending$part
		pending=
		case "$part" in
		"#@"$'\t'*)
			IFS=$'\t' read -r _ type tid ts _ tried _ target _ <<<"$part"
			on_control
			;;
		*)
			printf '%s\n' "${part//@DETECTED@/$det_note}"
			;;
		esac
		return 0
	fi
	[ $rc -gt 128 ] || return 2
	pending=$pending$part # a timeout keeps what was read of a line
	return 1
}

# Print what is there now.
drain() { while read_one 0.05; do :; done; }

# ---- part 1: detection -----------------------------------------------------------------------

detect_part() {
	local FAILGEN=$BIN/failgen t0 deadline
	heading "1. Detection" "heald watches four unmodified programs fail, from the kernel (mode \"observe\")"
	cat >"$dir/observe.json" <<JSON
{
  "state_dir": "$dir/observe-state",
  "listen": "",
  "samples_per_sec": 3,
  "mode": "observe",
  "targets": [
    { "name": "returns", "exec": ["$FAILGEN", "abort"], "restart": "never", "detect": { "crashes": true } },
    { "name": "batch", "exec": ["$FAILGEN", "--delay-ms", "200", "exit3"], "restart": "never", "detect": { "exits": true } },
    { "name": "hog", "exec": ["$FAILGEN", "--delay-ms", "400", "oom"], "restart": "never", "detect": { "oom": true } },
    { "name": "storm", "exec": ["$FAILGEN", "--delay-ms", "600", "storm", "--count", "300000"], "restart": "never",
      "detect": { "syscalls": [ { "syscall": "openat", "errno": "ENOENT" } ] } }
  ]
}
JSON
	"$BIN/heald" --check-config "$dir/observe.json" || die "observe.json does not validate"
	note returns "calls abort() in a request handler"
	note batch "exits with code 3"
	note hog "allocates in a 32 MiB memory cgroup until the OOM killer steps in"
	note storm "fails openat() 300,000 times: 3 samples a second are sent, the count is exact"
	line ""
	now
	t0=$NOW
	deadline=$((NOW + 10000000))
	start_heald "$dir/observe.json" detect
	while [ -z "${SEEN[returns:CRASH]:-}" ] || [ -z "${SEEN[batch:EXIT_FAILURE]:-}" ] ||
		[ -z "${SEEN[hog:OOM_KILL]:-}" ] || [ -z "${SEEN[storm:SYSCALL_COUNTS]:-}" ]; do
		read_one 0.2
		[ $? -ne 2 ] || heald_failed
		now
		if [ "$NOW" -gt "$deadline" ]; then
			line "    ${R}not every failure was seen within 10 s${N}"
			DETECT_OK=0
			break
		fi
	done
	drain
	stop_heald
	[ "$heald_rc" -eq 0 ] || { line "    ${R}heald exited $heald_rc${N}"; DETECT_OK=0; }
	now
	DETECT_US=$((NOW - t0))
}

# ---- part 2: the shop ------------------------------------------------------------------------

free_port
SHOP_PORT=$PORT
free_port
PAY_PORT=$PORT
free_port
WRONG_PORT=$PORT
free_port
API_PORT=$PORT
ETC=$dir/etc
DATA=$dir/data

# The pid of heald's child whose argv is "$@" (from /proc: no procps needed).
child_pid() {
	local f p kids=() all=() args
	for f in /proc/"$heald"/task/*/children; do
		[ -r "$f" ] || continue
		read -r -a kids <"$f"
		all+=("${kids[@]}")
	done
	if [ ${#all[@]} -eq 0 ]; then # no /proc/PID/task/TID/children: every process
		all=(/proc/[0-9]*)
		all=("${all[@]#/proc/}")
	fi
	for p in "${all[@]}"; do
		mapfile -d '' -t args <"/proc/$p/cmdline" 2>/dev/null || continue
		[ "${args[*]}" = "$*" ] || continue
		echo "$p"
		return 0
	done
	return 1
}
shop_pid() { child_pid "$BIN/shop" --config "$ETC/shop.json"; }
payments_pid() { child_pid "$BIN/payments" --port "$PAY_PORT"; }

# One request; CODE gets the HTTP status (000: no answer).
http() {
	local a=(-s -o /dev/null -m 5 -w '%{http_code}' -X "$1")
	[ $# -lt 3 ] || a+=(-H 'Content-Type: application/json' -d "$3")
	CODE=$(curl "${a[@]}" "http://127.0.0.1:$SHOP_PORT$2" 2>/dev/null)
	[ -n "$CODE" ] || CODE=000
}
status() {
	case "$1" in
	2??) printf '%s%s%s' "$G" "$1" "$N" ;;
	000) printf '%sno answer%s' "$R" "$N" ;;
	*) printf '%s%s%s' "$R" "$1" "$N" ;;
	esac
}
# customer OK MAX PAUSE METHOD PATH [BODY]: the same request until it does not answer OK.
customer() {
	local ok=$1 max=$2 pause=$3 i=0 req
	shift 3
	while [ "$i" -lt "$max" ]; do
		i=$((i + 1))
		http "$@"
		[ "$CODE" = "$ok" ] || break
		[ "$pause" = 0 ] || sleep "$pause"
	done
	req="$1 $2${3:+ $3}"
	if [ "$i" -eq 1 ]; then
		note customer "$req $ARROW $(status "$CODE")"
	elif [ "$CODE" = "$ok" ]; then
		note customer "$req, $i times $ARROW $(status "$ok") every time"
	else
		note customer "$req, $i times $ARROW $(status "$ok") x$((i - 1)), then $(status "$CODE")"
	fi
}
shopctl() {
	local out
	out=$(sh "$TOOLS/shopctl.sh" "$@" 2>&1) || line "    ${R}shopctl $*: $out${N}"
	[ -z "$out" ] || note "" "${D}$out${N}"
}
ORDER='{"item":"sku-1","qty":1}'
RETURN='{"order_id":"ord-1001","reason":"damaged"}'

# The scenarios: break_NAME switches the failure on, traffic_NAME is the customer.
break_returns_schema() {
	note break "tools/shopctl.sh on returns-schema: \"rma_code\" joins \"required\" in etc/returns-schema.json"
	shopctl on returns-schema "$ETC/shop.json"
}
traffic_returns_schema() { customer 200 1 0 POST /returns "$RETURN"; }

break_missing_include() {
	note break "rm etc/catalog.json (shop.json includes it; read on every request)"
	rm -f "$ETC/catalog.json"
}
traffic_missing_include() { customer 200 1 0 GET /catalog; }

break_payments_down() {
	local pid i
	pid=$(payments_pid) || { line "    ${R}payments is not running${N}"; return; }
	note break "tools/shopctl.sh on payments-down: SIGTERM to payments (pid $pid)"
	shopctl on payments-down "$ETC/shop.json" "$pid"
	for ((i = 0; i < 40; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
}
traffic_payments_down() { customer 201 1 0 POST /orders "$ORDER"; }

break_null_crash() {
	note break "tools/shopctl.sh on null-crash: orders.discount_plugin = \"summer-sale\" (not registered) + SIGHUP"
	shopctl on null-crash "$ETC/shop.json" "$(shop_pid)"
}
traffic_null_crash() { customer 201 40 0.05 POST /orders "$ORDER"; }

break_disk_full() {
	note break "tools/shopctl.sh on disk-full: rotated orders.log.N files fill data/ (a 1 MiB tmpfs)"
	shopctl on disk-full "$ETC/shop.json"
}
traffic_disk_full() { customer 201 1 0 POST /orders "$ORDER"; }

break_fd_leak() {
	note break "tools/shopctl.sh on fd-leak: orders.audit_log = true + SIGHUP: one fd leaked per request, limit 64"
	shopctl on fd-leak "$ETC/shop.json" "$(shop_pid)"
}
traffic_fd_leak() { customer 200 120 0 GET /catalog; }

break_wrong_fix() {
	note break "a deploy sets \"payments\": \"127.0.0.1:$WRONG_PORT\" in etc/shop.json (nothing listens there) + SIGHUP"
	note "" "${D}no dependency lives at that address: heald's restart_dependency does not apply, the operator's"
	note "" "playbooks do, payments-retry first (its change cannot help), then restore-shop-config${N}"
	jq --arg a "127.0.0.1:$WRONG_PORT" '.payments = $a' "$ETC/shop.json" >"$ETC/shop.json.new" &&
		mv -f "$ETC/shop.json.new" "$ETC/shop.json"
	kill -HUP "$(shop_pid)"
}
traffic_wrong_fix() { customer 201 40 0.05 POST /orders "$ORDER"; }

SCENARIOS=(
	"returns-schema|the seed's scenario: a schema change makes every return fail"
	"missing-include|a config file the shop includes disappears"
	"payments-down|the payments service the shop depends on goes down"
	"null-crash|a config change sends orders into a NULL dereference"
	"disk-full|the data disk fills up"
	"fd-leak|a config change makes the shop leak file descriptors"
	"wrong-fix|a fix that does not hold: verified, failed, rolled back, then the next playbook"
)
ROWS=()
ALL_HEALED=1

# Wait for the heals the scenario opens to end (and 300 ms more for late ones).
wait_heals() {
	local deadline settle='' rc
	now
	deadline=$((NOW + 30000000))
	while :; do
		read_one 0.1
		rc=$?
		[ $rc -ne 2 ] || heald_failed
		now
		if [ -n "$S_TRACES" ] && [ "$S_OPEN" -le 0 ]; then
			[ -n "$settle" ] || settle=$((NOW + 300000))
			[ "$NOW" -lt "$settle" ] || return 0
		else
			settle=
		fi
		if [ -z "$S_TRACES" ] && [ "$NOW" -gt $((S_ON + 10000000)) ]; then
			line "    ${R}no failure seen 10 s after the break${N}"
			return 1
		fi
		if [ "$NOW" -gt "$deadline" ]; then
			line "    ${R}a heal did not end within 30 s${N}"
			return 1
		fi
		kill -0 "$heald" 2>/dev/null || heald_failed
	done
}

run_scenario() { # index, "name|what"
	local name=${2%%|*} what=${2#*|} fn tid traces outcome='' pbs='' det=- healed=- last=0 rolled='' bad=''
	fn=${name//-/_}
	heading "2.$1  $name" "$what"
	drain
	S_TRACES='' S_OPEN=0 S_DET='' det_note=''
	"break_$fn"
	now
	S_ON=$NOW # the failure is on: detection is timed from here
	"traffic_$fn"
	line ""
	wait_heals
	for tid in $S_TRACES; do
		case "${T_END[$tid]:-}" in
		HEALED) ;;
		"") bad="${bad:+$bad, }NOT FINISHED" ;;
		*) bad="${bad:+$bad, }${T_END[$tid]}" ;;
		esac
		[ -z "${T_ROLLED[$tid]:-}" ] || rolled=1
		[ -z "${T_ENDTS[$tid]:-}" ] || [ "${T_ENDTS[$tid]}" -le "$last" ] || last=${T_ENDTS[$tid]}
		case ", $pbs, " in *", ${T_TRIED[$tid]:--}, "*) ;; *) pbs="${pbs:+$pbs, }${T_TRIED[$tid]:--}" ;; esac
	done
	if [ -z "$S_TRACES" ]; then
		outcome="NOT DETECTED"
	elif [ -n "$bad" ]; then
		outcome=$bad
	elif [ -n "$rolled" ]; then
		outcome="ROLLED BACK, then HEALED"
	else
		outcome=HEALED
	fi
	read -r -a traces <<<"$S_TRACES"
	[ ${#traces[@]} -le 1 ] || outcome="$outcome (${#traces[@]} heals)"
	[ -z "$S_DET" ] || det="$(((S_DET - S_ON) / 1000)) ms"
	[ -z "$S_DET" ] || [ "$last" -eq 0 ] || [ -n "$bad" ] || healed="$(((last - S_DET) / 1000)) ms"
	case "$outcome" in HEALED* | "ROLLED BACK, then HEALED"*) ;; *) ALL_HEALED=0 ;; esac
	ROWS+=("$name|$det|$healed|$outcome|$pbs")
	[ -z "${DEMO_SUMMARY:-}" ] ||
		printf '%s\t%s\t%s\t%s\n' "$name" "$outcome" "$S_ON" "${S_TRACES# }" >>"$DEMO_SUMMARY"
}

shop_part() {
	local i t0
	now
	t0=$NOW
	heading "2. Healing" "the demo shop under heald, broken seven ways, one after the other"
	mkdir -p "$ETC" "$DATA"
	mount -t tmpfs -o size=1m,mode=0755 heal-demo-data "$DATA" || die "cannot mount a tmpfs on $DATA"
	# the shop's files, formatted the way tools/shopctl.sh writes them so diffs show only the change
	if ! jq --argjson port "$SHOP_PORT" --arg pay "127.0.0.1:$PAY_PORT" --arg data "$DATA" \
		'.port = $port | .payments = $pay | .data_dir = $data' "$TOOLS/shop/shop.json" >"$ETC/shop.json" ||
		! jq . "$TOOLS/shop/returns-schema.json" >"$ETC/returns-schema.json" ||
		! cp "$TOOLS/shop/catalog.json" "$ETC/catalog.json"; then
		die "cannot lay out the shop in $ETC"
	fi
	cat >"$dir/heal.json" <<JSON
{
  "state_dir": "$dir/state",
  "listen": "127.0.0.1:$API_PORT",
  "mode": "auto",
  "guardrails": { "allow": ["$ETC/*.json"], "max_lines": 40 },
  "limits": { "backoff_ms": 200 },
  "targets": [
    { "name": "payments", "exec": ["$BIN/payments", "--port", "$PAY_PORT"],
      "ready": { "tcp": "127.0.0.1:$PAY_PORT" }, "detect": { "exits": false } },
    { "name": "shop", "exec": ["$BIN/shop", "--config", "$ETC/shop.json"],
      "ready": { "tcp": "127.0.0.1:$SHOP_PORT" },
      "reload": { "signal": "HUP" },
      "detect": {
        "syscalls": [ { "syscall": ["openat", "connect", "write"], "errno": ["ENOENT", "ECONNREFUSED", "EMFILE", "ENOSPC"] } ],
        "crashes": true,
        "api": [ { "binary": "$BIN/shop", "symbol": "shop_handle_return", "fail_when": "ret >= 500",
                   "capture_arg": { "index": 1, "type": "string" } } ]
      },
      "dependencies": [ { "target": "payments", "addr": "127.0.0.1:$PAY_PORT" } ],
      "cleanup": ["$DATA/orders.log.*"],
      "playbooks": [
        { "name": "payments-retry", "match": { "type": "SYSCALL_FAILURE", "syscall": "connect", "errno": "ECONNREFUSED" },
          "action": "json_set", "confidence": 0.7, "risk": 0.1,
          "params": { "file": "$ETC/shop.json", "pointer": "/orders/payment_retries", "value": 3 } },
        { "name": "restore-shop-config", "match": { "type": "SYSCALL_FAILURE", "syscall": "connect", "errno": "ECONNREFUSED" },
          "action": "restore_known_good", "confidence": 0.6, "risk": 0.3,
          "params": { "file": "$ETC/shop.json" } }
      ],
      "verify": { "command": ["$TOOLS/shop-verify.sh", "$SHOP_PORT"], "tries": 10, "interval_ms": 200, "window_ms": 1000 }
    }
  ]
}
JSON
	"$BIN/heald" --check-config "$dir/heal.json" || die "heal.json does not validate"
	line "    heal.json: payments and shop supervised; shop: syscalls, crashes, a uprobe on shop_handle_return"
	line "    (fail when ret >= 500); reload SIGHUP; verify tools/shop-verify.sh (catalog, order, return) + 1 s"
	line "    without recurrence; guardrails allow etc/*.json, max 40 lines; two operator playbooks for refused"
	line "    connections: payments-retry (json_set, confidence 0.70), restore-shop-config (0.60)"
	start_heald "$dir/heal.json" heal
	for ((i = 0; i < 200; i++)); do
		http GET /health
		[ "$CODE" != 200 ] || break
		kill -0 "$heald" 2>/dev/null || heald_failed
		sleep 0.05
	done
	[ "$CODE" = 200 ] || die "the shop did not come up on 127.0.0.1:$SHOP_PORT"
	note "" "shop on 127.0.0.1:$SHOP_PORT (pid $(shop_pid)), payments on 127.0.0.1:$PAY_PORT (pid $(payments_pid))"
	note "" "dashboard and API on http://127.0.0.1:$API_PORT/ (metrics at /metrics) while the demo runs"
	for ((i = 0; i < ${#SCENARIOS[@]}; i++)); do
		run_scenario $((i + 1)) "${SCENARIOS[$i]}"
	done
	drain
	stop_heald
	[ "$heald_rc" -eq 0 ] || { line "    ${R}heald exited $heald_rc after SIGTERM${N}"; ALL_HEALED=0; }
	[ -z "${DEMO_SUMMARY:-}" ] || cp "$dir/events.jsonl" "$DEMO_SUMMARY.events"
	now
	HEAL_US=$((NOW - t0))
	heading "The journal" "heald stopped (SIGTERM); healctl reads the journal in the state dir"
	line "    \$ healctl --state-dir $dir/state traces"
	"$BIN/healctl" --state-dir "$dir/state" traces 2>&1 | sed "s|$dir/||g; s/^/    /"
}

# ---- main ------------------------------------------------------------------------------------

DETECT_OK=1
DETECT_US=0
HEAL_US=0
line "${B}heal demo${N}: $("$BIN/heald" --version 2>/dev/null | head -n 1), temp dir $dir"
[ -z "${DEMO_SUMMARY:-}" ] || : >"$DEMO_SUMMARY" || die "cannot write $DEMO_SUMMARY"
if [ "${DEMO_DETECT:-1}" != 0 ]; then detect_part; fi
shop_part

heading "Summary"
printf '    %s%-16s %15s %14s   %-26s %s%s\n' "$B" scenario "detected after" "healed after" outcome playbook "$N"
for r in "${ROWS[@]}"; do
	IFS='|' read -r name det healed outcome pbs <<<"$r"
	case "$outcome" in
	HEALED*) oc=$G ;;
	ROLLED*) oc=$Y ;;
	*) oc=$R ;;
	esac
	printf '    %-16s %15s %14s   %s%-26s%s %s\n' "$name" "$det" "$healed" "$oc" "$outcome" "$N" "$pbs"
done
now
line ""
line "    ${D}detected after: failure switched on $ARROW failure event (the customer's requests included: fd-leak"
line "    needs ~55 to run out of descriptors); healed after: failure event $ARROW HEALED${N}"
line ""
line "    total $(secs $((NOW - T_START))) (detection $(secs "$DETECT_US"), healing $(secs "$HEAL_US"))"
if [ "$ALL_HEALED" = 1 ] && [ "$DETECT_OK" = 1 ]; then
	line "    ${G}every scenario healed${N}"
	exit 0
fi
line "    ${R}not every scenario healed${N}"
exit 1
