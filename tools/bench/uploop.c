// SPDX-License-Identifier: MIT
/*
 * uploop: a function called in a loop, for the uprobe-cost benchmark.
 * bench_lookup() is what a probe attaches to: it takes a string and returns
 * an int, and fails (-1) for one call in FAIL_EVERY, the shape of an API a
 * rule watches ("ret < 0", capture argument 1 as a string). Prints the wall
 * time per call in ns (CLOCK_MONOTONIC around the timed loop, after a short
 * untimed warm-up).
 *
 * usage: uploop ITERATIONS [--wait-file PATH]
 *   --wait-file: sleep until PATH exists before the warm-up, so a tracer
 *   that attaches by pid can attach first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FAIL_EVERY 1000

/* noinline and used: the symbol must stay a real call for the probe. */
__attribute__((noinline, used)) int bench_lookup(const char *key, long i)
{
	__asm__ volatile("" ::: "memory");
	return key[0] == 'x' ? -1 : (int)(i & 0xff);
}

int main(int argc, char **argv)
{
	static const char *const keys[] = { "sku-1234/catalog", "xfail/missing-item" };
	struct timespec t0, t1;
	long n, i, sink = 0;
	double ns;

	if (argc < 2 || (n = atol(argv[1])) <= 0) {
		fprintf(stderr, "usage: %s ITERATIONS [--wait-file PATH]\n", argv[0]);
		return 2;
	}
	if (argc >= 4 && !strcmp(argv[2], "--wait-file"))
		while (access(argv[3], F_OK))
			usleep(1000);
	for (i = 0; i < n / 10 + 1; i++)
		sink += bench_lookup(keys[i % FAIL_EVERY == 0], i);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < n; i++)
		sink += bench_lookup(keys[i % FAIL_EVERY == 0], i);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
	printf("%.1f\n", ns / (double)n);
	return sink == 42 ? 1 : 0; /* keep the calls */
}
