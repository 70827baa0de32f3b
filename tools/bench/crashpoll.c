// SPDX-License-Identifier: MIT
/*
 * crashpoll: time from a crash (or a cold start) to the first HTTP 200, for the
 * time-to-heal benchmark (tools/bench/heal.sh). A shell loop around curl costs a
 * fork and an exec per try and cannot poll every 5 ms; this polls from one process.
 *
 *   crashpoll kill PID PORT [POLL_MS]      kill -SEGV PID, wait for it to exit (a
 *                                          pidfd: a thread of the dying process can
 *                                          still answer a request), then GET /health
 *                                          on 127.0.0.1:PORT every POLL_MS (default 5)
 *                                          until a 200
 *   crashpoll exec PORT [POLL_MS] -- ARGV  fork and exec ARGV, poll the same way,
 *                                          then SIGTERM and reap it
 *
 * Each try is a new connection: connect, "GET /health HTTP/1.0", read the status
 * line (1 s timeout). Prints one line:
 *   "ms=<start to first 200, CLOCK_MONOTONIC> tries=<n> start_us=<CLOCK_REALTIME at the kill or
 *   fork, microseconds since the epoch> exit_ms=<kill to the exit of PID; 0 for exec>"
 * start_us lets the caller line the kill up with heald's event timestamps (also CLOCK_REALTIME).
 * Gives up after 30 s (exit 1).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GIVE_UP_MS 30000

static double mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static long long real_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* One GET /health on 127.0.0.1:port: 1 on a 200, 0 otherwise. */
static int health_ok(int port)
{
	static const char req[] = "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
	struct timeval tv = { .tv_sec = 1 };
	char buf[16];
	size_t got = 0;
	ssize_t n;
	int fd, ok = 0;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) || write(fd, req, sizeof(req) - 1) != (ssize_t)(sizeof(req) - 1))
		goto out;
	while (got < 12 && (n = read(fd, buf + got, 12 - got)) > 0)
		got += (size_t)n;
	ok = got == 12 && !memcmp(buf, "HTTP/1.", 7) && !memcmp(buf + 8, " 200", 4);
out:
	close(fd);
	return ok;
}

/* Poll from t0 every poll_ms until a 200; prints the line, returns the exit code. */
static int poll_until_ok(int port, double poll_ms, double t0, long long start_us, double exit_ms)
{
	struct timespec next;
	long tries = 0;
	double now;

	clock_gettime(CLOCK_MONOTONIC, &next);
	for (;;) {
		tries++;
		if (health_ok(port)) {
			now = mono_ms();
			printf("ms=%.1f tries=%ld start_us=%lld exit_ms=%.2f\n", now - t0, tries, start_us, exit_ms);
			return 0;
		}
		if (mono_ms() - t0 > GIVE_UP_MS) {
			fprintf(stderr, "crashpoll: no 200 from 127.0.0.1:%d within %d ms\n", port, GIVE_UP_MS);
			return 1;
		}
		next.tv_nsec += (long)(poll_ms * 1e6);
		while (next.tv_nsec >= 1000000000L) {
			next.tv_nsec -= 1000000000L;
			next.tv_sec++;
		}
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
			;
	}
}

static int usage(const char *me)
{
	fprintf(stderr, "usage: %s kill PID PORT [POLL_MS]\n       %s exec PORT [POLL_MS] -- ARGV...\n", me, me);
	return 2;
}

int main(int argc, char **argv)
{
	double poll_ms = 5, t0, exit_ms;
	long long start_us;
	int port, i, rc, status, pidfd;
	struct pollfd pfd;
	pid_t pid;

	if (argc >= 4 && !strcmp(argv[1], "kill")) {
		pid = (pid_t)atoi(argv[2]);
		port = atoi(argv[3]);
		if (argc >= 5)
			poll_ms = atof(argv[4]);
		if (pid <= 1 || port <= 0 || poll_ms <= 0)
			return usage(argv[0]);
		pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
		if (pidfd < 0) {
			perror("crashpoll: pidfd_open");
			return 1;
		}
		start_us = real_us();
		t0 = mono_ms();
		if (kill(pid, SIGSEGV)) {
			perror("crashpoll: kill");
			return 1;
		}
		pfd = (struct pollfd){ .fd = pidfd, .events = POLLIN };
		if (poll(&pfd, 1, GIVE_UP_MS) != 1) {
			fprintf(stderr, "crashpoll: pid %d did not exit\n", (int)pid);
			return 1;
		}
		exit_ms = mono_ms() - t0;
		close(pidfd);
		return poll_until_ok(port, poll_ms, t0, start_us, exit_ms);
	}
	if (argc >= 5 && !strcmp(argv[1], "exec")) {
		port = atoi(argv[2]);
		for (i = 3; i < argc && strcmp(argv[i], "--"); i++)
			poll_ms = atof(argv[i]);
		if (port <= 0 || poll_ms <= 0 || i + 1 >= argc)
			return usage(argv[0]);
		start_us = real_us();
		t0 = mono_ms();
		pid = fork();
		if (pid < 0) {
			perror("crashpoll: fork");
			return 1;
		}
		if (pid == 0) {
			execv(argv[i + 1], argv + i + 1);
			perror("crashpoll: exec");
			_exit(127);
		}
		rc = poll_until_ok(port, poll_ms, t0, start_us, 0);
		kill(pid, SIGTERM);
		waitpid(pid, &status, 0);
		return rc;
	}
	return usage(argv[0]);
}
