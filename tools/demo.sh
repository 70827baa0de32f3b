#!/bin/sh
# make demo: start heald on the failure generator's cases and show every event as it happens.
set -eu
BIN=${1:-.output/obj/bin}
BIN=$(cd "$BIN" && pwd)
FAILGEN="$BIN/failgen"

if [ "$(id -u)" -ne 0 ]; then
	echo "demo: heald loads BPF programs: run 'sudo make demo'" >&2
	exit 1
fi
mountpoint -q /sys/kernel/tracing 2>/dev/null || mount -t tracefs nodev /sys/kernel/tracing

dir=$(mktemp -d /tmp/heal-demo.XXXXXX)
trap 'kill "$heald" 2>/dev/null || true; rm -rf "$dir"' EXIT INT TERM

# One target per failure, each started by heald a little apart so the output reads in order.
cat > "$dir/heal.json" <<JSON
{
  "state_dir": "$dir/state",
  "samples_per_sec": 3,
  "mode": "observe",
  "targets": [
    { "name": "config-reader", "exec": ["$FAILGEN", "--delay-ms", "500", "missing-file", "--path", "/etc/shop/missing.json"],
      "detect": { "syscalls": [ { "syscall": ["openat"], "errno": ["ENOENT"] } ] } },
    { "name": "payments-client", "exec": ["$FAILGEN", "--delay-ms", "1000", "refused-connect"],
      "detect": { "syscalls": [ { "syscall": "connect", "errno": "ECONNREFUSED" } ] } },
    { "name": "fd-leaker", "exec": ["$FAILGEN", "--delay-ms", "1500", "emfile"],
      "detect": { "syscalls": [ { "syscall": "*", "errno": "EMFILE" } ] } },
    { "name": "spooler", "exec": ["$FAILGEN", "--delay-ms", "2000", "enospc"],
      "detect": { "syscalls": [ { "syscall": "write", "errno": "ENOSPC" } ] } },
    { "name": "orders", "exec": ["$FAILGEN", "--delay-ms", "2500", "segfault"],
      "detect": { "crashes": true, "exits": true } },
    { "name": "returns", "exec": ["$FAILGEN", "--delay-ms", "3000", "abort"],
      "detect": { "crashes": true } },
    { "name": "batch", "exec": ["$FAILGEN", "--delay-ms", "3500", "exit3"],
      "detect": { "exits": true } },
    { "name": "hog", "exec": ["$FAILGEN", "--delay-ms", "4000", "oom"],
      "detect": { "oom": true } },
    { "name": "shop-api", "exec": ["$FAILGEN", "--delay-ms", "4500", "api", "--arg", "/returns/1001"],
      "detect": { "api": [ { "binary": "$FAILGEN", "symbol": "failgen_handle_request",
                             "fail_when": "ret >= 500", "capture_arg": { "index": 2, "type": "string" } } ] } },
    { "name": "storm", "exec": ["$FAILGEN", "--delay-ms", "5000", "storm", "--count", "1000000"],
      "detect": { "syscalls": [ { "syscall": "openat", "errno": "ENOENT" } ] } }
  ]
}
JSON

echo "== heal demo: heald watches 10 programs, each about to fail in its own way"
echo "   config: $dir/heal.json"
"$BIN/heald" --check-config "$dir/heal.json"
echo "   config checked: OK"
echo

"$BIN/heald" --config "$dir/heal.json" --watch > "$dir/events.jsonl" 2> "$dir/heald.log" &
heald=$!

# Show each event as a one-line summary, then its payload.
tail -n +1 -f "$dir/events.jsonl" 2>/dev/null | jq --unbuffered -r '
  def stack: [.payload.stack[]? | select(.func) | "\(.func)\(if .file then " (\(.file):\(.line))" else "" end)"][0:4] | join(" <- ");
  "\(.timestamp[11:23])  \(.type | . + " " * (16 - length))  \(.key)\n" +
  (if .type == "SYSCALL_FAILURE" then "                  \(.payload.syscall) -> \(.payload.errno) \(.payload.path // .payload.addr // ("fd " + (.payload.fd|tostring)))  count=\(.payload.count)"
   elif .type == "CRASH" then "                  \(.payload.signal) at \(.payload.fault_addr): \(stack)"
   elif .type == "EXIT_FAILURE" then "                  exit_code=\(.payload.exit_code) signal=\(.payload.signal // "-")"
   elif .type == "OOM_KILL" then "                  pid \(.payload.pid) killed with anon_rss=\(.payload.anon_rss_kb) kB"
   elif .type == "API_FAILURE" then "                  \(.payload.symbol // .payload.usdt) returned \(.payload.ret) for \(.payload.arg)"
   elif .type == "SYSCALL_COUNTS" then "                  exact in-kernel counts: \([.payload.counts[] | "\(.syscall)/\(.errno)=\(.count)"] | join(", "))"
   elif .type == "EVENTS_DROPPED" then "                  \(.payload.dropped) records did not fit the ring buffer"
   else "" end)' &
printer=$!

sleep 9
kill -TERM "$heald"
wait "$heald" || true
sleep 0.3
kill "$printer" 2>/dev/null || true
echo
echo "== summary: events by type"
jq -r '.type' "$dir/events.jsonl" | sort | uniq -c | awk '{ printf "   %-16s %s\n", $2, $1 }'
echo "   (every event as JSON: rerun with 'heald --config FILE --watch')"
