#!/bin/sh
# SPDX-License-Identifier: MIT
# A real server (issue 5, item 3): nginx (the Debian package) serving a 1 KiB
# static file to wrk on loopback, requests per second under three variants,
# interleaved, ROUNDS rounds; prints a markdown table and, with --update FILE,
# replaces the block between the bench:nginx markers in FILE.
#
# env: ROUNDS (9), DURATION (3: seconds of each measured wrk run), WARMUP (1:
#      seconds of the discarded wrk run before it), CONNS (32), THREADS (1),
#      NGINX_CPU (1), WRK_CPU (0), NGINX (/usr/sbin/nginx), WRK (wrk); and
#      lib.sh's.
# needs root (BPF).
set -eu
. tools/bench/lib.sh

ROUNDS=${ROUNDS:-9}
DURATION=${DURATION:-3}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
NGINX_CPU=${NGINX_CPU:-1}
WRK_CPU=${WRK_CPU:-0}
NGINX=${NGINX:-/usr/sbin/nginx}
WRK=${WRK:-wrk}

bench_init nginx "$@"
bench_need "$HEALD" "$BENCH/floor" "$BENCH/empty.bpf.o" "$NGINX" "$WRK" taskset curl

# BPF run-time statistics add two clock reads to every program run, the
# floor's included; say so in the table when someone left them on.
STATS=
if [ "$(cat /proc/sys/kernel/bpf_stats_enabled 2>/dev/null || echo 0)" != 0 ]; then
	echo "bench nginx: kernel.bpf_stats_enabled is on: (b) and (c) pay for it" >&2
	STATS=" kernel.bpf_stats_enabled was on."
fi

free_port
URL="http://127.0.0.1:$PORT"

# The worker runs as www-data (Debian's default user) and must reach the
# document root inside $T, which mktemp made 0700.
chmod 0711 "$T"
mkdir -p "$T/www" "$T/tmp"
head -c 1024 /dev/zero | tr '\0' 'x' > "$T/www/index.html"
chmod 0644 "$T/www/index.html"
chmod 0755 "$T/www"

# master_process on and one worker: how nginx runs in production (a root
# master that forks unprivileged workers), so variant (c) also shows that a
# worker forked after the match inherits the watch; one worker because this
# host has 2 CPUs: nginx gets one (NGINX_CPU), wrk the other (WRK_CPU), so
# the two do not fight over a CPU. daemon off keeps the master our child.
# Every path nginx writes (pid, lock, error log, temp dirs) is inside $T;
# access_log off: a log write per request would measure the disk, not heald.
# sendfile and tcp_nopush on and the keep-alive settings left at nginx's
# defaults, as in Debian's own nginx.conf.
cat > "$T/nginx.conf" <<CONF
daemon off;
master_process on;
worker_processes 1;
user www-data;
pid $T/nginx.pid;
lock_file $T/nginx.lock;
error_log $T/error.log warn;
events { worker_connections 1024; }
http {
	default_type text/html;
	access_log off;
	sendfile on;
	tcp_nopush on;
	client_body_temp_path $T/tmp/body;
	proxy_temp_path $T/tmp/proxy;
	fastcgi_temp_path $T/tmp/fastcgi;
	uwsgi_temp_path $T/tmp/uwsgi;
	scgi_temp_path $T/tmp/scgi;
	server {
		listen 127.0.0.1:$PORT;
		root $T/www;
	}
}
CONF
"$NGINX" -t -q -p "$T" -c "$T/nginx.conf" -e "$T/error.log" ||
	{ echo "bench nginx: nginx -t rejected $T/nginx.conf" >&2; exit 1; }

# What an operator would watch on a static web server:
# - openat ENOENT/EACCES: a missing or unreadable document root, include or
#   certificate; EMFILE/ENFILE: out of file descriptors;
# - accept4 EMFILE/ENFILE/ENOBUFS/ENOMEM: new connections are being dropped;
# - connect ECONNREFUSED/ETIMEDOUT: an upstream is down (no proxy here, but a
#   typical rule, and rules cost whether they fire or not);
# - writev/sendfile EPIPE/ECONNRESET: clients hanging up mid-response;
# - write/pwrite64 ENOSPC/EDQUOT: the log or temp disk is full;
# plus crashes and exits. Under wrk every syscall nginx makes succeeds
# (recvfrom, openat, newfstatat, writev, sendfile, close and two setsockopt
# per request; bpftrace counted them), so none of these rules fires until the
# sanity check below asks for a missing file.
cat > "$T/heald.json" <<JSON
{"listen": "", "state_dir": "$T/state", "mode": "observe", "targets": [
 {"name": "nginx", "match": {"exe": "$NGINX"}, "detect": {"syscalls": [
  {"syscall": "openat", "errno": ["ENOENT", "EACCES", "EMFILE", "ENFILE"]},
  {"syscall": "accept4", "errno": ["EMFILE", "ENFILE", "ENOBUFS", "ENOMEM"]},
  {"syscall": "connect", "errno": ["ECONNREFUSED", "ETIMEDOUT"]},
  {"syscall": ["writev", "sendfile"], "errno": ["EPIPE", "ECONNRESET"]},
  {"syscall": ["write", "pwrite64"], "errno": ["ENOSPC", "EDQUOT"]}],
  "crashes": true, "exits": true}}]}
JSON
"$HEALD" --check-config "$T/heald.json" ||
	{ echo "bench nginx: heald rejected $T/heald.json" >&2; exit 1; }

# nginx_start: the master pinned to NGINX_CPU (the worker inherits it), in the
# foreground, until it serves the file
nginx_start() {
	rm -f "$T/nginx.pid"
	bench_bg taskset -c "$NGINX_CPU" "$NGINX" -p "$T" -c "$T/nginx.conf" -e "$T/error.log"
	NGINX_PID=$BG_PID
	_i=0
	while [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/index.html" || true)" != 200 ]; do
		_i=$((_i + 1))
		if [ $_i -gt 500 ] || ! kill -0 "$NGINX_PID" 2>/dev/null; then
			echo "bench nginx: nginx did not serve $URL/index.html" >&2
			tail -20 "$T/error.log" >&2
			exit 1
		fi
		sleep 0.01
	done
}

# nginx_stop: SIGTERM to the master, which stops the worker and exits
nginx_stop() {
	bench_stop "$NGINX_PID"
}

# bench_wrk: a discarded warm-up run, then the measured one; prints requests/s
# and the share of the run the worker spent on a CPU (/proc/PID/schedstat), in
# percent: near 100 means nginx, not wrk, is the bottleneck, so requests/s
# measures what each request costs nginx
bench_wrk() {
	worker=$(pgrep -P "$NGINX_PID")
	case $worker in
	'' | *[!0-9]*) echo "bench nginx: not exactly one worker under master $NGINX_PID: $worker" >&2; exit 1 ;;
	esac
	taskset -c "$WRK_CPU" "$WRK" -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" "$URL/index.html" > /dev/null
	cpu0=$(cut -d' ' -f1 "/proc/$worker/schedstat")
	taskset -c "$WRK_CPU" "$WRK" -t"$THREADS" -c"$CONNS" -d"${DURATION}s" "$URL/index.html" > "$T/wrk.out"
	cpu1=$(cut -d' ' -f1 "/proc/$worker/schedstat")
	if grep -q 'Non-2xx' "$T/wrk.out"; then
		echo "bench nginx: nginx answered wrk with errors:" >&2
		cat "$T/wrk.out" >&2
		exit 1
	fi
	awk -v cpu=$((cpu1 - cpu0)) '
		/ requests in / { n = $1 }
		/^Requests\/sec:/ { rps = $2 }
		END { if (!n || !rps) exit 1; printf "%s %.1f\n", rps, cpu / n * rps / 1e7 }' "$T/wrk.out" || {
		echo "bench nginx: no request count or Requests/sec in wrk's output:" >&2
		cat "$T/wrk.out" >&2
		exit 1
	}
}

run_a() {
	nginx_start
	bench_wrk
	nginx_stop
}

run_b() {
	bench_bg "$BENCH/floor" "$BENCH/empty.bpf.o" > "$T/floor.out" 2>&1
	FLOOR_PID=$BG_PID
	wait_for "$T/floor.out" attached
	nginx_start
	bench_wrk
	nginx_stop
	bench_stop "$FLOOR_PID"
}

# heald first, then nginx: the master joins at exec (its inode matches), the
# worker at fork, both in the kernel, with no wait for the /proc rescan.
run_c() {
	heald_start "$T/heald.json"
	nginx_start
	bench_wrk
	# sanity: heald really watched the worker (which serves the request)
	missing="missing-$$-$(date +%s%N)"
	code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/$missing" || true)
	[ "$code" = 404 ] || { echo "bench nginx: /$missing answered $code, not 404" >&2; exit 1; }
	_i=0
	until grep -q "\"syscall\":\"openat\",\"errno\":\"ENOENT\".*\"path\":\"$T/www/$missing\"" "$T/heald.out"; do
		_i=$((_i + 1))
		if [ $_i -gt 500 ]; then
			echo "bench nginx: heald did not report nginx's openat ENOENT of $T/www/$missing" >&2
			tail -5 "$T/heald.out" "$T/heald.err" >&2
			exit 1
		fi
		sleep 0.01
	done
	pid=$(grep "\"path\":\"$T/www/$missing\"" "$T/heald.out" | sed -n 's/.*"pid":\([0-9]*\).*/\1/p' | head -1)
	if [ -z "$pid" ] || [ "$pid" = "$NGINX_PID" ]; then
		echo "bench nginx: heald's ENOENT of /$missing names pid '$pid', not the worker" >&2
		exit 1
	fi
	nginx_stop
	bench_stop "$HEALD_PID"
}

VARIANTS="a b c"
r=1
while [ $r -le "$ROUNDS" ]; do
	for v in $(bench_order "$VARIANTS" $r); do
		# in this shell, not in $(...): a failed sanity check must stop the run
		run_$v > "$T/value"
		read -r rps busy < "$T/value"
		bench_record "$v" "$rps"
		bench_record "${v}busy" "$busy"
	done
	r=$((r + 1))
done

# The goal's difference once more, per round ((b - c) / a of that round's
# runs), and its median: load that comes and goes between rounds moves it
# less than the medians of each variant (on this VM, by about 1 pp where the
# medians moved by up to 9 pp).
paired=$(awk '
$1 ~ /^[abc]$/ { k = ++n[$1]; val[$1, k] = $2 }
END {
	for (k = 1; k <= n["a"]; k++) d[k] = 100 * (val["b", k] - val["c", k]) / val["a", k]
	for (i = 2; i <= n["a"]; i++) { t = d[i]; for (j = i - 1; j >= 1 && d[j] > t; j--) d[j + 1] = d[j]; d[j + 1] = t }
	k = n["a"]
	printf "%+.2f", (k % 2) ? d[(k + 1) / 2] : (d[k / 2] + d[k / 2 + 1]) / 2
}' "$T/results")

bench_stats | awk -v paired="$paired" -v stats="$STATS" -v rounds="$ROUNDS" -v dur="$DURATION" -v warm="$WARMUP" \
    -v conns="$CONNS" -v threads="$THREADS" -v ncpu="$NGINX_CPU" -v wcpu="$WRK_CPU" \
    -v elapsed="$(bench_elapsed)" -v version="$("$NGINX" -v 2>&1 | sed 's/.*: //')" \
    -v machine="$(bench_machine)" -v when="$(date -u +%Y-%m-%dT%H:%MZ)" '
{ med[$1] = $2; mn[$1] = $3; mx[$1] = $4 }
END {
	name["a"] = "(a) nothing attached"
	name["b"] = "(b) floor: empty BPF program on heald'"'"'s hook (sys_exit)"
	name["c"] = "(c) heald watching nginx (syscall rules, crashes, exits)"
	split("a b c", ord, " ")
	printf "Run %s on %s; %s, 1 worker, pinned to CPU %s; wrk -t%d -c%d pinned to CPU %s, " \
		"1 KiB static file over keep-alive on 127.0.0.1; %d rounds, variants interleaved; " \
		"%d s per run after a %d s warm-up; %d s for all rounds.%s\n\n", \
		when, machine, version, ncpu, threads, conns, wcpu, rounds, dur, warm, elapsed, stats
	print "| variant | median requests/s | min | max | loss vs (a) | worker busy (median) |"
	print "|---|---:|---:|---:|---:|---:|"
	for (i = 1; i <= 3; i++) { v = ord[i]
		loss[v] = 100 * (med["a"] - med[v]) / med["a"]
		printf "| %s | %.0f | %.0f | %.0f | %s | %.0f %% |\n", name[v], med[v], mn[v], mx[v],
			(v == "a" ? "-" : sprintf("%.2f %%", loss[v])), med[v "busy"] }
	if (med["abusy"] < 90 || med["bbusy"] < 90 || med["cbusy"] < 90)
		print "\nThe worker was on a CPU less than 90 % of the time in a median run: something " \
			"other than nginx (wrk, or other load on the machine) limited the rate, so the losses " \
			"above are not nginx'"'"'s alone."
	print ""
	print "| heald (c) loss minus floor (b) loss | this run | goal |"
	print "|---|---:|---:|"
	printf "| requests/s, of the medians | %+.2f pp | <= 1 pp |\n", loss["c"] - loss["b"]
	printf "| requests/s, median of the per-round differences | %s pp | <= 1 pp |\n", paired
}' > "$T/table.md"
bench_update "$T/table.md"
