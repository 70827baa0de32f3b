// SPDX-License-Identifier: MIT
/*
 * latency: detection latency of a failing syscall, for the event-pipeline
 * benchmark. Runs CMD (heald --watch, or a tracer) with its stdout on a pipe,
 * makes N failing calls openat("/nonexistent-heal-lat/SEQ") one at a time,
 * INTERVAL_US apart, and times each from CLOCK_MONOTONIC right before the
 * call to the moment a reader thread gets the line naming SEQ from CMD's
 * stdout. The process is named "latency" (its comm): CMD is told to watch that.
 *
 * Before the timed calls it repeats a warm-up call (".../w") every 10 ms until
 * CMD reports one, so CMD's start-up is not timed. With --echo the calls are
 * replaced by writing the path as a line to CMD's stdin (CMD is cat): the
 * floor of this measurement, one pipe hop and two wake-ups.
 *
 * usage: latency [--echo] N INTERVAL_US -- CMD [ARG...]
 * prints a summary on stderr and, on stdout, one line in microseconds:
 *   N RECEIVED P50 P90 P99 MAX
 * exits 1 when CMD never reported the warm-up call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PREFIX		"/nonexistent-heal-lat/"
#define WARM_TIMEOUT_NS (20ll * 1000000000ll)
#define TAIL_NS		(2ll * 1000000000ll) /* after the last call: wait this long for stragglers */

static long long n_calls;
static long long *sent_ns, *recv_ns;
static int warm, received; /* written by the reader, read with __atomic */

static long long now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000000000ll + t.tv_nsec;
}

static void on_line(const char *line, long long t)
{
	const char *p = strstr(line, PREFIX);
	char *end;
	long long seq;

	if (!p)
		return;
	p += strlen(PREFIX);
	if (*p == 'w') {
		__atomic_store_n(&warm, 1, __ATOMIC_RELEASE);
		return;
	}
	seq = strtoll(p, &end, 10);
	if (end == p || seq < 0 || seq >= n_calls || recv_ns[seq])
		return;
	recv_ns[seq] = t;
	__atomic_add_fetch(&received, 1, __ATOMIC_RELEASE);
}

/* Lines from CMD's stdout, each stamped when the read() that completed it returned. */
static void *reader(void *arg)
{
	int fd = *(int *)arg;
	static char buf[1 << 16];
	size_t have = 0;
	ssize_t n;

	while ((n = read(fd, buf + have, sizeof(buf) - 1 - have)) > 0) {
		long long t = now_ns();
		char *s = buf, *nl;

		have += (size_t)n;
		buf[have] = 0;
		while ((nl = memchr(s, '\n', have - (size_t)(s - buf)))) {
			*nl = 0;
			on_line(s, t);
			s = nl + 1;
		}
		have -= (size_t)(s - buf);
		memmove(buf, s, have);
		if (have == sizeof(buf) - 1) /* a line longer than the buffer: drop it */
			have = 0;
	}
	return NULL;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return (x > y) - (x < y);
}

/* nearest rank */
static double pct_us(const long long *v, int n, double p)
{
	int k = (int)(p / 100.0 * n + 0.999999);

	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return (double)v[k - 1] / 1000.0;
}

static void sleep_until(long long t)
{
	struct timespec ts = {.tv_sec = t / 1000000000ll, .tv_nsec = t % 1000000000ll};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

int main(int argc, char **argv)
{
	int echo = 0, out[2], in[2] = {-1, -1}, status, i, got;
	long long interval_ns, start, deadline, *lat;
	char(*paths)[64], warm_path[] = PREFIX "w";
	pthread_t th;
	pid_t child;

	if (argc > 1 && !strcmp(argv[1], "--echo")) {
		echo = 1;
		argv++;
		argc--;
	}
	if (argc < 5 || strcmp(argv[3], "--") || (n_calls = atoll(argv[1])) <= 0 ||
	    (interval_ns = atoll(argv[2]) * 1000ll) <= 0) {
		fprintf(stderr, "usage: latency [--echo] N INTERVAL_US -- CMD [ARG...]\n");
		return 2;
	}
	sent_ns = calloc((size_t)n_calls, sizeof(*sent_ns));
	recv_ns = calloc((size_t)n_calls, sizeof(*recv_ns));
	lat = calloc((size_t)n_calls, sizeof(*lat));
	paths = calloc((size_t)n_calls, sizeof(*paths));
	if (!sent_ns || !recv_ns || !lat || !paths || pipe2(out, O_CLOEXEC) ||
	    (echo && pipe2(in, O_CLOEXEC))) {
		perror("latency");
		return 1;
	}
	for (i = 0; i < n_calls; i++)
		snprintf(paths[i], sizeof(paths[i]), PREFIX "%d", i);
	child = fork();
	if (child < 0) {
		perror("latency: fork");
		return 1;
	}
	if (child == 0) {
		/* CMD goes when we go, even if we are killed */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (dup2(out[1], 1) < 0 || (echo && dup2(in[0], 0) < 0))
			_exit(127);
		execvp(argv[4], argv + 4);
		fprintf(stderr, "latency: cannot run %s: %s\n", argv[4], strerror(errno));
		_exit(127);
	}
	close(out[1]);
	if (echo)
		close(in[0]);
	if (pthread_create(&th, NULL, reader, &out[0])) {
		fprintf(stderr, "latency: cannot start the reader\n");
		kill(child, SIGTERM);
		return 1;
	}

	/* warm-up: until CMD reports a call, so its start-up is not in the numbers */
	start = now_ns();
	while (!__atomic_load_n(&warm, __ATOMIC_ACQUIRE)) {
		if (now_ns() - start > WARM_TIMEOUT_NS ||
		    waitpid(child, &status, WNOHANG) == child) {
			fprintf(stderr, "latency: %s reported no failing call within %lld s\n",
				argv[4], WARM_TIMEOUT_NS / 1000000000ll);
			kill(child, SIGTERM);
			return 1;
		}
		if (echo) {
			if (write(in[1], PREFIX "w\n", sizeof(PREFIX "w\n") - 1) < 0)
				break;
		} else {
			syscall(SYS_openat, AT_FDCWD, warm_path, O_RDONLY);
		}
		usleep(10000);
	}
	usleep(100000); /* let the other warm-up reports go by */

	start = now_ns() + interval_ns;
	for (i = 0; i < n_calls; i++) {
		sleep_until(start + i * interval_ns);
		if (echo) {
			char line[80];
			int len = snprintf(line, sizeof(line), "%s\n", paths[i]);

			sent_ns[i] = now_ns();
			if (write(in[1], line, (size_t)len) != len)
				break;
		} else {
			sent_ns[i] = now_ns();
			syscall(SYS_openat, AT_FDCWD, paths[i], O_RDONLY);
		}
	}
	deadline = now_ns() + TAIL_NS;
	while (__atomic_load_n(&received, __ATOMIC_ACQUIRE) < n_calls && now_ns() < deadline)
		usleep(1000);

	kill(child, SIGTERM);
	if (echo)
		close(in[1]);
	waitpid(child, &status, 0);
	pthread_join(th, NULL);
	close(out[0]);

	for (i = 0, got = 0; i < n_calls; i++)
		if (recv_ns[i] && sent_ns[i])
			lat[got++] = recv_ns[i] - sent_ns[i];
	if (!got) {
		fprintf(stderr, "latency: none of %lld calls was reported\n", n_calls);
		return 1;
	}
	qsort(lat, (size_t)got, sizeof(*lat), cmp_ll);
	fprintf(stderr,
		"latency: %lld calls, %d reported, %lld lost; us: p50 %.1f p90 %.1f p99 %.1f max "
		"%.1f\n",
		n_calls, got, n_calls - got, pct_us(lat, got, 50), pct_us(lat, got, 90),
		pct_us(lat, got, 99), (double)lat[got - 1] / 1000.0);
	printf("%lld %d %.1f %.1f %.1f %.1f\n", n_calls, got, pct_us(lat, got, 50),
	       pct_us(lat, got, 90), pct_us(lat, got, 99), (double)lat[got - 1] / 1000.0);
	return 0;
}
