#!/bin/bash
# SPDX-License-Identifier: MIT
# The dashboard test: the demo shop under a real heald (--listen on a free port), the
# dashboard driven in headless Chromium (tests/ui/dashboard.mjs, playwright-core), the
# shop's returns schema broken while the page watches, by the page's own "Trigger failure"
# control (the shop target's trigger "returns-schema": tools/shopctl.sh, with the token from
# STATE_DIR/api.token); the page must show the live heal's steps, its cause and its diff
# with +/- colouring. Saves a screenshot and prints its path. A heald without triggers
# (GET /api/v1/triggers 404) gets the schema broken by the test instead.
#
#   bash tests/ui/run.sh [BIN]      as root (heald loads BPF); BIN default .output/obj/bin
#
# Needs /usr/bin/chromium (apt: chromium) and tests/ui/node_modules/playwright-core
# (npm ci --prefix tests/ui). Exit 0 pass, 1 fail, 77 skipped (something missing).
# UI_SHOT=PATH: where the screenshot goes (default .output/ui/dashboard.png).
# UI_KEEP=1 keeps the temp dir.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -u

UI=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$UI/../.." && pwd)
TOOLS=$ROOT/tools
BIN=$(cd "${1:-$ROOT/.output/obj/bin}" 2>/dev/null && pwd) || { echo "ui: no ${1:-.output/obj/bin}: run 'make' first" >&2; exit 1; }
SHOT=${UI_SHOT:-$ROOT/.output/ui/dashboard.png}

skip() { echo "ui: SKIP: $*" >&2; echo "test_ui: 0 passed, 0 failed, 1 skipped"; exit 77; }
die() { echo "ui: FAIL: $*" >&2; echo "test_ui: 0 passed, 1 failed, 0 skipped"; exit 1; }

[ "$(id -u)" -eq 0 ] || skip "heald loads BPF programs: run as root"
[ -x /usr/bin/chromium ] || skip "/usr/bin/chromium is missing (apt-get install chromium)"
command -v node >/dev/null 2>&1 || skip "node is missing"
[ -d "$UI/node_modules/playwright-core" ] || skip "playwright-core is missing (npm ci --prefix tests/ui)"
command -v jq >/dev/null 2>&1 || skip "jq is missing"
command -v curl >/dev/null 2>&1 || skip "curl is missing"
for t in heald shop payments; do [ -x "$BIN/$t" ] || die "$BIN/$t is missing: run 'make' first"; done

dir=$(mktemp -d /tmp/heal-ui.XXXXXX) || die "cannot create a temp dir"
chmod 755 "$dir"
heald=''
cleanup() {
	local i
	if [ -n "$heald" ] && kill -0 "$heald" 2>/dev/null; then
		kill -TERM "$heald"
		for ((i = 0; i < 100; i++)); do kill -0 "$heald" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$heald" 2>/dev/null && kill -KILL "$heald"
	fi
	[ -z "$heald" ] || wait "$heald" 2>/dev/null
	if [ "${UI_KEEP:-0}" = 1 ]; then echo "ui: kept $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

. "$TOOLS/free-port.sh" # free_port: PORT = a free TCP port
free_port; SHOP_PORT=$PORT
free_port; PAY_PORT=$PORT
free_port; API_PORT=$PORT
ETC=$dir/etc DATA=$dir/data
mkdir -p "$ETC" "$DATA"
jq --argjson port "$SHOP_PORT" --arg pay "127.0.0.1:$PAY_PORT" --arg data "$DATA" \
	'.port = $port | .payments = $pay | .data_dir = $data' "$TOOLS/shop/shop.json" >"$ETC/shop.json" &&
	jq . "$TOOLS/shop/returns-schema.json" >"$ETC/returns-schema.json" &&
	cp "$TOOLS/shop/catalog.json" "$ETC/catalog.json" || die "cannot lay out the shop in $ETC"
cat >"$dir/heal.json" <<JSON
{
  "state_dir": "$dir/state",
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
        "syscalls": [ { "syscall": ["openat", "connect"], "errno": ["ENOENT", "ECONNREFUSED"] } ],
        "crashes": true,
        "api": [ { "binary": "$BIN/shop", "symbol": "shop_handle_return", "fail_when": "ret >= 500",
                   "capture_arg": { "index": 1, "type": "string" } } ]
      },
      "dependencies": [ { "target": "payments", "addr": "127.0.0.1:$PAY_PORT" } ],
      "verify": { "command": ["$TOOLS/shop-verify.sh", "$SHOP_PORT"], "tries": 10, "interval_ms": 200, "window_ms": 1000 },
      "triggers": [
        { "name": "returns-schema", "description": "a schema change makes every return fail",
          "command": ["$TOOLS/shopctl.sh", "on", "returns-schema", "$ETC/shop.json"] }
      ]
    }
  ]
}
JSON
if ! "$BIN/heald" --check-config "$dir/heal.json" >"$dir/check.log" 2>&1; then
	# a heald from before triggers: without them (the test then breaks the schema itself)
	if grep -q 'unknown key "triggers"' "$dir/check.log" &&
		jq 'del(.targets[].triggers)' "$dir/heal.json" >"$dir/heal.json.new" &&
		mv -f "$dir/heal.json.new" "$dir/heal.json" && "$BIN/heald" --check-config "$dir/heal.json"; then
		echo "ui: this heald has no triggers: the test breaks the schema itself" >&2
	else
		cat "$dir/check.log" >&2
		die "heal.json does not validate"
	fi
fi
setsid "$BIN/heald" --config "$dir/heal.json" --listen "127.0.0.1:$API_PORT" --watch \
	>"$dir/events.jsonl" 2>"$dir/heald.log" </dev/null &
heald=$!
ok=''
for ((i = 0; i < 200; i++)); do
	kill -0 "$heald" 2>/dev/null || { tail -n 20 "$dir/heald.log" >&2; die "heald stopped"; }
	if [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$SHOP_PORT/health")" = 200 ] &&
		[ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$API_PORT/api/v1/status")" = 200 ]; then
		ok=1
		break
	fi
	sleep 0.05
done
[ -n "$ok" ] || { tail -n 20 "$dir/heald.log" >&2; die "the shop or heald's API did not come up"; }

mkdir -p "$(dirname "$SHOT")"
# The page breaks the shop itself once it is connected (its trigger control, or UI_BREAK
# when heald offers no triggers), so the heal is seen live.
UI_URL="http://127.0.0.1:$API_PORT/" UI_SHOT="$SHOT" UI_SHOP="http://127.0.0.1:$SHOP_PORT" \
	UI_TOKEN_FILE="$dir/state/api.token" \
	UI_BREAK="sh $TOOLS/shopctl.sh on returns-schema $ETC/shop.json" \
	node "$UI/dashboard.mjs"
rc=$?
if [ $rc -ne 0 ]; then
	echo "ui: heald's last log lines:" >&2
	tail -n 15 "$dir/heald.log" >&2
	echo "test_ui: 0 passed, 1 failed, 0 skipped"
	exit 1
fi
echo "test_ui: 1 passed, 0 failed, 0 skipped"
