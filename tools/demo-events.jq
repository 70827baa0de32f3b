# SPDX-License-Identifier: MIT
# tools/demo-events.jq: turns the JSON lines of `heald --watch` into what `make demo` prints.
#
#   tail -f events.jsonl | jq -n -r --unbuffered -f tools/demo-events.jq \
#       --arg phase heal|detect --arg color 0|1 --arg utf8 0|1 --arg root DIR --arg bin BIN
#
# For every event it writes one control line for tools/demo.sh, tab separated:
#   #@  type  trace_id|-  timestamp_us  playbook|-  playbooks_tried|-  repeats  target|-  key|-
# then the lines to print (none for a repeat of a failure whose heal is still open).
# phase "detect": one line per event (time of day, type, target, what failed).
# phase "heal": each heal step with the time since its failure (ms), the RCA, the diff
# and the guardrail verdicts, the outcome. "@DETECTED@" in a failure's line is replaced
# by demo.sh with the time since the scenario switched the failure on.
# $root and $bin are cut from paths so they read etc/shop.json, shop.

def c($code): if $color == "1" then "\u001b[\($code)m" + . + "\u001b[0m" else . end;
def red: c("31");
def green: c("32");
def yellow: c("33");
def blue: c("34");
def magenta: c("35");
def cyan: c("36");
def dim: c("2");
def bold: c("1");
def sym($u; $a): if $utf8 == "1" then $u else $a end;
def yes: sym("✓"; "ok");
def no: sym("✗"; "NO");
def failed: sym("✗"; "(failed)");
def arrow: sym("→"; "->");
def larrow: sym("←"; "<-");
def dot: sym("·"; "-");
def spaces($n): if $n > 0 then " " * $n else "" end;
def lpad($n): tostring | spaces($n - length) + .;
def rpad($n): tostring | . + spaces($n - length);
def short: tostring | split($root + "/") | join("") | split($bin + "/") | join("");
# 0.75 -> "0.75", 0.3 -> "0.30"
def f2: (. * 100 | round) as $n
	| "\($n / 100 | floor).\($n % 100 | tostring | if length < 2 then "0" + . else . end)";
# "2026-11-25T01:28:15.768521Z" -> microseconds since the epoch
def ts_us: (.[0:19] + "Z" | fromdateiso8601) * 1000000 + (.[20:26] | tonumber);
def is_failure: . as $t | any(("SYSCALL_FAILURE", "API_FAILURE", "CRASH", "EXIT_FAILURE", "OOM_KILL"); . == $t);
def is_end: . as $t | any(("HEALED", "HEAL_FAILED", "ESCALATED", "DRY_RUN"); . == $t);
def signame: {"1": "SIGHUP", "2": "SIGINT", "9": "SIGKILL", "10": "SIGUSR1", "12": "SIGUSR2",
	      "15": "SIGTERM"}[tostring] // "signal \(.)";
def plural($n; $one; $many): "\($n) " + (if $n == 1 then $one else $many end);
def plural($n; $word): plural($n; $word; $word + "s");

def tcolor($t):
	if ($t | is_failure) then red | bold
	elif $t == "RCA_READY" then cyan
	elif $t == "PATCH_REQUESTED" or $t == "PATCH_READY" then blue
	elif $t == "PATCH_APPLIED" or $t == "RELOAD_DONE" or $t == "APPROVED" then yellow
	elif $t == "VERIFY_PASS" then green
	elif $t == "HEALED" then green | bold
	elif $t == "VERIFY_FAIL" or $t == "PATCH_BLOCKED" or $t == "REJECTED" then red
	elif $t == "ROLLBACK_DONE" then magenta | bold
	elif $t == "HEAL_FAILED" or $t == "ESCALATED" then red | bold
	elif $t == "APPROVAL_REQUIRED" or $t == "DRY_RUN" then yellow | bold
	else . end;

# What failed, in one line (crashes: the first $frames functions of the stack).
def failure_text($frames):
	.payload as $p
	| if .type == "SYSCALL_FAILURE" then
		"\($p.syscall)() = -1 \($p.errno)"
		+ (($p.path // $p.addr // (if $p.fd != null then "fd \($p.fd)" else null end)) as $on
		   | if $on then "  " + ($on | short) else "" end)
	elif .type == "API_FAILURE" then
		"\($p.symbol // $p.usdt)() returned \($p.ret)"
		+ (if $p.arg != null then " for \"\($p.arg)\"" else "" end)
	elif .type == "CRASH" then
		"\($p.signal) at \($p.fault_addr) in "
		+ ([$p.stack[]? | select(.func)] as $f
		   | ([$f[0] | .func + (if .file then " (\(.file):\(.line))" else "" end)]
		      + [$f[1:$frames][] | .func]) | join(" \(larrow) "))
	elif .type == "EXIT_FAILURE" then
		if $p.signal then "killed by \($p.signal)" + (if $p.core_dumped then " (core dumped)" else "" end)
		else "exit code \($p.exit_code)" end
	elif .type == "OOM_KILL" then
		"pid \($p.pid) killed by the OOM killer (anon rss \($p.anon_rss_kb) kB)"
	elif .type == "SYSCALL_COUNTS" then
		"exact in-kernel counts at exit: " + ([$p.counts[]? | "\(.syscall)/\(.errno) = \(.count)"] | join(", "))
	elif .type == "TARGET_RESTARTED" then
		"supervision restarted it (attempt \($p.attempt), down \($p.down_ms) ms, pid \($p.previous_pid) -> \($p.pid))"
	elif .type == "EVENTS_DROPPED" then
		"\($p.dropped) records did not fit the ring buffer"
	else "" end;

def diff_lines:
	(.payload.diff // "") | rtrimstr("\n") | select(length > 0) | split("\n")
	| (if length > 40 then .[0:18] + ["... \(length - 36) more lines ..."] + .[-18:] else . end)
	| map(if startswith("+++") or startswith("---") then short | bold
		elif startswith("+") then green
		elif startswith("-") then red
		elif startswith("@@") then cyan
		else . end
	      | "  " + .);

# A heal step's details: the first line goes next to the type, the rest under it.
def step_lines:
	.payload as $p | .type as $t
	| if $t == "RCA_READY" then
		["cause: \($p.cause | short)",
		 "confidence \($p.confidence | f2) \(dot) risk \(($p.risk // 0) | f2) \(dot) playbook "
		 + ($p.playbook // "none" | bold)]
		+ (if ($p.plans | length) > 1
		   then ["ranked: " + ([$p.plans[] | "\(.playbook) \(.confidence | f2)"] | join(", "))]
		   else [] end)
	elif $t == "PATCH_REQUESTED" then
		[(if $p.playbook == $p.action then $p.playbook else "\($p.playbook) (action \($p.action))" end)
		 + (if ($p.attempt // 1) > 1 then ", attempt \($p.attempt)" else "" end)]
	elif $t == "PATCH_READY" then
		[if $p.files then
			"\($p.action): \(plural($p.files | length; "file")), \(plural($p.lines; "line")) changed"
		 elif $p.action == "cleanup" then "cleanup: remove the files matching the target's cleanup globs"
		 elif $p.action == "raise_nofile" then "raise_nofile: raise RLIMIT_NOFILE of the live process"
		 else "\($p.action): no file to change" end]
		+ [diff_lines[]]
		+ (if $p.guardrails then
			["guardrails " + ([$p.guardrails[] | if .ok then "\(yes | green) \(.rule)" else "\(no | red) \(.rule)" end]
					  | join("  "))]
			+ [$p.guardrails[] | select(.ok | not) | "  \(.rule): \(.reason)" | red]
		   else [] end)
	elif $t == "PATCH_BLOCKED" then
		["blocked by \($p.rule): \($p.reason // "" | short)"]
	elif $t == "APPROVAL_REQUIRED" then
		["risk \($p.risk | f2) > approve_above \($p.approve_above | f2): \($p.how)"]
	elif $t == "APPROVED" or $t == "REJECTED" then
		["by \($p.by)"]
	elif $t == "PATCH_APPLIED" then
		[if $p.action == "raise_nofile" then "RLIMIT_NOFILE of pid \($p.pid): \($p.old_limit) \(arrow) \($p.new_limit)"
		 elif $p.restarting then "restarting \($p.restarting)"
		 elif $p.removed then "removed \($p.removed | map(short) | join(", ")) (\($p.freed_bytes / 1024 | round) KiB freed)"
		 elif $p.backup_id then "written atomically, backup \($p.backup_id)"
		 else $p.action end]
	elif $t == "RELOAD_DONE" then
		[if $p.how == "signal" then "\($p.signal | signame) to \(plural($p.processes; "process"; "processes"))"
		 elif $p.how == "restart" then
			"restarted" + (if $p.ready == true then ", ready" elif $p.ready == false then ", NOT ready" else "" end)
			+ (if $p.pid then " (pid \($p.pid))" else "" end) + (if $p.error then ": \($p.error)" else "" end)
		 elif $p.how == "command" then "reload command exited \($p.exit_code)"
		 else "nothing to reload" end]
	elif $t == "VERIFY_PASS" then
		[(if $p.command then "verify command passed" else "no verify command" end)
		 + ", no recurrence within \($p.window_ms) ms"]
	elif $t == "VERIFY_FAIL" then
		[$p.reason // "" | rtrimstr("\n") | gsub("\n"; " / ")]
	elif $t == "ROLLBACK_DONE" then
		[if $p.restored then "backup \($p.backup_id // "") restored, reloaded" else "nothing to undo" end]
	elif $t == "HEALED" then
		["in \($p.duration_ms) ms" + (if ($p.repeats // 0) > 0
			then ", \(plural($p.repeats; "repeat")) of the failure counted, not healed twice" else "" end)]
	elif $t == "HEAL_FAILED" or $t == "ESCALATED" or $t == "DRY_RUN" then
		["\($p.reason // "" | short)", "tried: \(($p.tried // []) | join(", "))"]
	else [] end;

# The playbooks a finished heal tried, failed ones marked: "a ✗ → b".
def tried:
	(.payload.tried // []) as $t
	| if ($t | length) == 0 then "-"
	  elif .type == "HEALED" then ($t[0:-1] | map("\(.) \(failed)")) + [$t[-1]] | join(" \(arrow) ")
	  else $t | map("\(.) \(failed)") | join(" \(arrow) ") end;

def control($ts):
	["#@", .type, (.trace_id // "-"), ($ts | floor), (.payload.playbook // "-"),
	 (if (.type | is_end) then tried else "-" end), (.payload.repeats // 0),
	 (.payload.target // "-"), (if .key == "" then "-" else .key // "-" end)] | map(tostring) | @tsv;

def heal_row($ms; $lines):
	((if $ms == null then "" else "+\($ms) ms" end) | lpad(11)) + "  " + (.type as $t | $t | rpad(16) | tcolor($t))
	+ "  " + ($lines[0] // ""),
	($lines[1:][] | spaces(31) + .);

foreach inputs as $e ({tr: {}, keys: {}};
	($e.timestamp | ts_us) as $ts
	| .ts = $ts | .show = true | .first = false
	| if $e.trace_id == null then .
	  elif ($e.type | is_failure) then
		if .tr[$e.trace_id] then .show = false
		else .tr[$e.trace_id] = {t0: $ts} | .first = true end
	  elif .tr[$e.trace_id] == null then
		.tr[$e.trace_id] = {t0: ($ts - ($e.payload.elapsed_ms // 0) * 1000)}
	  else . end
	| if $e.trace_id == null and $phase == "heal" then
		# a failure no heal was opened for (backoff, breaker): once per signature
		.show = (.keys[$e.key] == null and ($e.type | is_failure)) | .keys[$e.key] = true
	  else . end;
	. as $s
	| $e
	| control($s.ts),
	  (select($s.show)
	   | if $phase == "detect" then
		"  \(.timestamp[11:23])  \(.type as $t | $t | rpad(16) | tcolor($t))  \(.payload.target // "-" | rpad(9))  \(failure_text(5) | short)"
	     elif .trace_id == null then
		heal_row(null; ["\(failure_text(3) | short)  (no heal opened: backoff or breaker)" | dim])
	     elif (.type | is_failure) then
		heal_row(0; ["\(failure_text(3) | short)  @DETECTED@"])
	     else
		heal_row((($s.ts - $s.tr[.trace_id].t0) / 1000 | floor); step_lines)
	     end))
