// SPDX-License-Identifier: MIT
/*
 * storm: a storm of failing syscalls for the event-pipeline benchmark.
 * Forks PROCS processes (default: one per CPU); each calls
 * openat(AT_FDCWD, "/nonexistent-heal-storm/missing") as fast as it can for
 * SECONDS seconds and counts its calls and the ones that failed ENOENT, so
 * the in-kernel counts heald reports can be checked against them exactly.
 *
 * Output, once every child has finished its storm (they are still alive):
 *   child PID CALLS ENOENT SECONDS     one line per child
 *   stormed CALLS ENOENT RATE           totals; RATE = sum of ENOENT/s per child
 * then, when every child has exited:
 *   exited
 *
 * usage: storm SECONDS [PROCS] [--hold-file PATH]
 *   --hold-file: after the storm the children wait (sleeping 1 ms) until PATH
 *   exists before they exit, so their counts can be read while they live.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MISSING	  "/nonexistent-heal-storm/missing"
#define MAX_PROCS 64
#define BATCH	  256 /* calls between two clock reads */

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void child(double seconds, const char *hold, int out)
{
	unsigned long long calls = 0, enoent = 0;
	double t0 = now_s(), t1;
	char line[128];
	int i, n;

	do {
		for (i = 0; i < BATCH; i++) {
			long r = syscall(SYS_openat, AT_FDCWD, MISSING, O_RDONLY);

			calls++;
			if (r == -1 && errno == ENOENT)
				enoent++;
			else if (r >= 0)
				close((int)r);
		}
		t1 = now_s();
	} while (t1 - t0 < seconds);
	n = snprintf(line, sizeof(line), "child %d %llu %llu %.6f\n", (int)getpid(), calls, enoent,
		     t1 - t0);
	/* one short write: lines of different children do not interleave */
	if (write(out, line, (size_t)n) != n)
		_exit(1);
	close(out);
	if (hold)
		while (access(hold, F_OK))
			usleep(1000);
	_exit(0);
}

int main(int argc, char **argv)
{
	unsigned long long calls = 0, enoent = 0, c, e;
	const char *hold = NULL;
	double seconds, secs, rate = 0;
	pid_t pids[MAX_PROCS], parent = getpid();
	int procs, i, fd[2], status, pid, rc = 0;
	char buf[4096];
	size_t have = 0;
	ssize_t n;
	FILE *in;

	if (argc < 2 || (seconds = atof(argv[1])) <= 0) {
		fprintf(stderr, "usage: %s SECONDS [PROCS] [--hold-file PATH]\n", argv[0]);
		return 2;
	}
	procs = (int)sysconf(_SC_NPROCESSORS_ONLN);
	i = 2;
	if (argc > i && argv[i][0] != '-')
		procs = atoi(argv[i++]);
	if (argc > i + 1 && !strcmp(argv[i], "--hold-file"))
		hold = argv[i + 1];
	if (procs < 1 || procs > MAX_PROCS) {
		fprintf(stderr, "storm: PROCS must be 1..%d\n", MAX_PROCS);
		return 2;
	}
	if (pipe(fd)) {
		perror("storm: pipe");
		return 1;
	}
	for (i = 0; i < procs; i++) {
		pids[i] = fork();
		if (pids[i] < 0) {
			perror("storm: fork");
			while (i--)
				kill(pids[i], SIGKILL);
			return 1;
		}
		if (pids[i] == 0) {
			/* a child waiting on the hold file must not outlive us */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(1);
			close(fd[0]);
			child(seconds, hold, fd[1]);
		}
	}
	close(fd[1]);
	/* every child's line, then EOF when all have closed the pipe */
	while (have < sizeof(buf) - 1 && (n = read(fd[0], buf + have, sizeof(buf) - 1 - have)) > 0)
		have += (size_t)n;
	buf[have] = 0;
	close(fd[0]);
	in = fmemopen(buf, have + 1, "r");
	while (in && fscanf(in, "child %d %llu %llu %lf\n", &pid, &c, &e, &secs) == 4) {
		printf("child %d %llu %llu %.6f\n", pid, c, e, secs);
		calls += c;
		enoent += e;
		rate += secs > 0 ? (double)e / secs : 0;
	}
	if (in)
		fclose(in);
	printf("stormed %llu %llu %.0f\n", calls, enoent, rate);
	fflush(stdout);
	for (i = 0; i < procs; i++)
		if (waitpid(pids[i], &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
			rc = 1;
	printf("exited\n");
	return rc;
}
