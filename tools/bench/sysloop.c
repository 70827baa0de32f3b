// SPDX-License-Identifier: MIT
/*
 * sysloop: a syscall-heavy loop for the syscall-cost benchmark.
 * Each iteration makes three syscalls: getppid (succeeds), openat of a
 * missing file (fails ENOENT) and close(-1) (fails EBADF). Prints the
 * wall time per syscall in ns, measured with CLOCK_MONOTONIC around the
 * timed loop (a short untimed warm-up runs first).
 *
 * usage: sysloop ITERATIONS [--wait-file PATH]
 *   --wait-file: spin (sleeping 1 ms) until PATH exists before the warm-up,
 *   so a tracer that attaches by pid can attach first.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MISSING "/nonexistent-heal-bench/missing"

static inline void one_round(void)
{
	syscall(SYS_getppid);
	syscall(SYS_openat, AT_FDCWD, MISSING, O_RDONLY);
	syscall(SYS_close, -1);
}

int main(int argc, char **argv)
{
	struct timespec t0, t1;
	long n, i;
	double ns;

	if (argc < 2 || (n = atol(argv[1])) <= 0) {
		fprintf(stderr, "usage: %s ITERATIONS [--wait-file PATH]\n", argv[0]);
		return 2;
	}
	if (argc >= 4 && !strcmp(argv[2], "--wait-file"))
		while (access(argv[3], F_OK))
			usleep(1000);
	for (i = 0; i < n / 10 + 1; i++)
		one_round();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < n; i++)
		one_round();
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
	printf("%.1f\n", ns / (3.0 * (double)n));
	return 0;
}
