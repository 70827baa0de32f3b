// SPDX-License-Identifier: MIT
/* journal: append/read round trip, sync, rotation to gzip, pruning, crash leftovers. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "heal/journal.h"
#include "heal/util.h"

/* fdatasync as seen by journal.o: counted, and made to fail on demand. */
static int fdatasync_calls;
static int fdatasync_fail;

int fdatasync(int fd)
{
	fdatasync_calls++;
	if (fdatasync_fail) {
		errno = EIO;
		return -1;
	}
	return (int)syscall(SYS_fdatasync, fd);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(p);
}

static int setup(void **state)
{
	char *dir = strdup("/tmp/heal-test-journal-XXXXXX");

	if (!dir || !mkdtemp(dir))
		return -1;
	*state = dir;
	return 0;
}

static int teardown(void **state)
{
	nftw(*state, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(*state);
	return 0;
}

/* state dir + "/journal", the layout heald uses */
static void jdir(void **state, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/journal", (char *)*state);

	assert_true(n > 0 && (size_t)n < len);
}

static void path_in(const char *dir, const char *name, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);

	assert_true(n > 0 && (size_t)n < len);
}

struct lines {
	char **v;
	size_t n;
	int stop_after; /* 0: never */
	int stop_ret;
};

static int collect(const char *line, void *ctx)
{
	struct lines *l = ctx;

	char **nv = realloc(l->v, (l->n + 1) * sizeof(*l->v));

	assert_non_null(nv);
	l->v = nv;
	l->v[l->n] = strdup(line);
	assert_non_null(l->v[l->n]);
	l->n++;
	if (l->stop_after && (int)l->n == l->stop_after)
		return l->stop_ret;
	return 0;
}

static void lines_free(struct lines *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* The i-th test line: a JSON object of roughly 100 bytes. */
static void make_line(char *buf, size_t len, int i)
{
	snprintf(buf, len,
		 "{\"seq\":%d,\"type\":\"HEAL_STEP\",\"trace_id\":\"tr-%06d\",\"pad\":\"%040d\"}",
		 i, i, i);
}

static void append_lines(struct journal *j, int from, int to)
{
	char line[256];
	int i;

	for (i = from; i < to; i++) {
		make_line(line, sizeof(line), i);
		assert_int_equal(journal__append(j, line, i % 7 == 0), 0);
	}
}

/* read gives exactly lines [from, to) in order, nothing skipped */
static void assert_reads(const char *dir, int from, int to)
{
	struct lines l = {0};
	unsigned skipped = 99;
	char want[256];
	int i;

	assert_int_equal(journal__read(dir, collect, &l, &skipped), 0);
	assert_int_equal(skipped, 0);
	assert_int_equal(l.n, to - from);
	for (i = from; i < to; i++) {
		make_line(want, sizeof(want), i);
		assert_string_equal(l.v[i - from], want);
	}
	lines_free(&l);
}

static size_t count_glob(const char *dir, const char *pattern)
{
	char pat[PATH_MAX];
	glob_t g;
	size_t n;

	path_in(dir, pattern, pat, sizeof(pat));
	if (glob(pat, 0, NULL, &g))
		return 0;
	n = g.gl_pathc;
	globfree(&g);
	return n;
}

static void test_round_trip(void **state)
{
	struct journal_stats st;
	struct journal *j;
	char dir[PATH_MAX], p[PATH_MAX];
	struct stat sb;

	jdir(state, dir, sizeof(dir));
	assert_int_equal(journal__open(dir, NULL, &j), 0);
	assert_int_equal(stat(dir, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);
	path_in(dir, "current.jsonl", p, sizeof(p));
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);

	append_lines(j, 0, 100);
	journal__stats(j, &st);
	assert_int_equal(st.lines, 100);
	assert_int_equal(st.rotations, 0);
	/* readable while the writer is open */
	assert_reads(dir, 0, 100);
	journal__close(j);
	journal__close(NULL);
	assert_reads(dir, 0, 100);

	/* reopening appends after what is there */
	assert_int_equal(journal__open(dir, NULL, &j), 0);
	append_lines(j, 100, 120);
	journal__close(j);
	assert_reads(dir, 0, 120);
}

static void test_bad_lines_refused(void **state)
{
	struct journal *j;
	char dir[PATH_MAX], *big;

	jdir(state, dir, sizeof(dir));
	assert_int_equal(journal__open(dir, NULL, &j), 0);
	assert_int_equal(journal__append(j, "", 0), -EINVAL);
	assert_int_equal(journal__append(j, "{\"a\":1}\n{\"b\":2}", 0), -EINVAL);
	assert_int_equal(journal__append(j, NULL, 0), -EINVAL);
	big = malloc(JOURNAL_LINE_MAX + 2);
	assert_non_null(big);
	memset(big, 'x', JOURNAL_LINE_MAX + 1);
	big[JOURNAL_LINE_MAX + 1] = 0;
	assert_int_equal(journal__append(j, big, 0), -EMSGSIZE);
	free(big);
	journal__close(j);
	assert_reads(dir, 0, 0);
}

static void test_sync_flag(void **state)
{
	struct journal *j;
	char dir[PATH_MAX], p[PATH_MAX], *text;
	size_t len;

	jdir(state, dir, sizeof(dir));
	assert_int_equal(journal__open(dir, NULL, &j), 0);
	fdatasync_calls = 0;
	assert_int_equal(journal__append(j, "{\"n\":1}", 0), 0);
	assert_int_equal(fdatasync_calls, 0); /* no sync unless asked */
	assert_int_equal(journal__append(j, "{\"n\":2}", 1), 0);
	assert_int_equal(fdatasync_calls, 1);
	/* a failed sync is reported, the line stays written */
	fdatasync_fail = 1;
	assert_int_equal(journal__append(j, "{\"n\":3}", 1), -EIO);
	assert_int_equal(journal__append(j, "{\"n\":4}", 0), 0);
	fdatasync_fail = 0;
	/* each line is in the file, whole, as soon as append returns */
	path_in(dir, "current.jsonl", p, sizeof(p));
	assert_int_equal(util__read_file(p, 4096, &text, &len), 0);
	assert_string_equal(text, "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n{\"n\":4}\n");
	free(text);
	journal__close(j);
}

static void test_single_writer(void **state)
{
	struct journal *j, *j2 = (void *)1;
	char dir[PATH_MAX];

	jdir(state, dir, sizeof(dir));
	assert_int_equal(journal__open(dir, NULL, &j), 0);
	assert_int_equal(journal__open(dir, NULL, &j2), -EBUSY);
	assert_null(j2);
	journal__close(j);
	assert_int_equal(journal__open(dir, NULL, &j2), 0);
	journal__close(j2);
}

/* All of a command's standard output. */
static char *run_output(const char *cmd, size_t *len)
{
	size_t n = 0, cap = 1 << 16, r;
	char *buf = malloc(cap + 1), *nb;
	FILE *f = popen(cmd, "r");

	assert_non_null(buf);
	assert_non_null(f);
	while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
		n += r;
		if (n == cap) {
			cap *= 2;
			nb = realloc(buf, cap + 1);
			assert_non_null(nb);
			buf = nb;
		}
	}
	assert_int_equal(pclose(f), 0);
	buf[n] = 0;
	*len = n;
	return buf;
}

static void test_rotation_gzip(void **state)
{
	struct journal_opts o = {.rotate_bytes = 4096, .keep_files = 1000};
	struct journal_stats st;
	struct journal *j;
	char dir[PATH_MAX], cmd[PATH_MAX + 64], want[256], *out, *cur, *all;
	size_t len, curlen, off = 0, ngz;
	int i;

	jdir(state, dir, sizeof(dir));
	assert_int_equal(journal__open(dir, &o, &j), 0);
	append_lines(j, 0, 1000); /* ~100 KB: ~25 rotations */
	journal__stats(j, &st);
	journal__close(j);

	ngz = count_glob(dir, "journal-*.jsonl.gz");
	assert_true(ngz >= 20);
	assert_int_equal(st.rotations, ngz);
	assert_int_equal(st.rotate_failures, 0);
	assert_int_equal(count_glob(dir, "journal-*.jsonl"), 0); /* no plain leftovers */
	assert_int_equal(count_glob(dir, "*.tmp"), 0);

	/* zcat of the rotated files, oldest first (names sort), then current.jsonl: every line
	 * once, in order */
	assert_true(snprintf(cmd, sizeof(cmd), "zcat %s/journal-*.jsonl.gz", dir) <
		    (int)sizeof(cmd));
	out = run_output(cmd, &len);
	path_in(dir, "current.jsonl", cmd, sizeof(cmd));
	assert_int_equal(util__read_file(cmd, 1 << 20, &cur, &curlen), 0);
	assert_true(curlen <= 4096 + 256);
	all = realloc(out, len + curlen + 1);
	assert_non_null(all);
	out = all;
	memcpy(out + len, cur, curlen + 1);
	len += curlen;
	free(cur);
	for (i = 0; i < 1000; i++) {
		make_line(want, sizeof(want), i);
		assert_true(off + strlen(want) < len);
		assert_memory_equal(out + off, want, strlen(want));
		off += strlen(want);
		assert_int_equal(out[off], '\n');
		off++;
	}
	assert_int_equal(off, len);
	free(out);
	/* each rotated file is about rotate_bytes of text */
	assert_true(snprintf(cmd, sizeof(cmd), "zcat %s/journal-00000001.jsonl.gz | wc -c", dir) <
		    (int)sizeof(cmd));
	out = run_output(cmd, &len);
	assert_true(atoi(out) > 4096 && atoi(out) <= 4096 + 256);
	free(out);

	assert_reads(dir, 0, 1000);
}

static void test_keep_files(void **state)
{
	struct journal_opts o = {.rotate_bytes = 4096, .keep_files = 3};
	struct lines l = {0};
	struct journal *j;
	char dir[PATH_MAX], want[256];
	unsigned skipped;
	size_t i, first;

	jdir(state, dir, sizeof(dir));
	assert_int_equal(journal__open(dir, &o, &j), 0);
	append_lines(j, 0, 1000);
	journal__close(j);
	assert_int_equal(count_glob(dir, "journal-*.jsonl.gz"), 3);

	/* the oldest went; what is left is the newest lines, contiguous, in order */
	assert_int_equal(journal__read(dir, collect, &l, &skipped), 0);
	assert_int_equal(skipped, 0);
	assert_true(l.n > 3 * 4096 / 120 && l.n < 1000);
	first = 1000 - l.n;
	for (i = 0; i < l.n; i++) {
		make_line(want, sizeof(want), (int)(first + i));
		assert_string_equal(l.v[i], want);
	}
	lines_free(&l);

	/* numbering goes on after a reopen, keep still holds */
	assert_int_equal(journal__open(dir, &o, &j), 0);
	append_lines(j, 1000, 1100);
	journal__close(j);
	assert_int_equal(count_glob(dir, "journal-*.jsonl.gz"), 3);
	assert_int_equal(count_glob(dir, "journal-00000001.jsonl.gz"), 0);
	assert_int_equal(journal__read(dir, collect, &l, &skipped), 0);
	make_line(want, sizeof(want), 1099);
	assert_string_equal(l.v[l.n - 1], want);
	lines_free(&l);
}

static void append_raw(const char *dir, const char *name, const void *data, size_t len)
{
	char p[PATH_MAX];
	int fd;

	path_in(dir, name, p, sizeof(p));
	fd = open(p, O_WRONLY | O_APPEND | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void test_torn_last_line(void **state)
{
	struct journal *j;
	char dir[PATH_MAX], p[PATH_MAX], want[256], *text;
	size_t len;

	jdir(state, dir, sizeof(dir));
	assert_int_equal(journal__open(dir, NULL, &j), 0);
	append_lines(j, 0, 3);
	journal__close(j);
	/* heald died in the middle of a write */
	append_raw(dir, "current.jsonl", "{\"seq\":3,\"type\":\"HE", 19);
	assert_reads(dir, 0, 3);

	/* the next heald drops the fragment, so the next line is not glued to it */
	assert_int_equal(journal__open(dir, NULL, &j), 0);
	append_lines(j, 3, 5);
	journal__close(j);
	assert_reads(dir, 0, 5);
	path_in(dir, "current.jsonl", p, sizeof(p));
	assert_int_equal(util__read_file(p, 1 << 16, &text, &len), 0);
	assert_null(strstr(text, "\"HE{"));
	make_line(want, sizeof(want), 4);
	assert_int_equal(text[len - 1], '\n');
	assert_memory_equal(text + len - strlen(want) - 1, want, strlen(want));
	free(text);

	/* a file that is nothing but a fragment */
	path_in(dir, "current.jsonl", p, sizeof(p));
	assert_int_equal(truncate(p, 0), 0);
	append_raw(dir, "current.jsonl", "{\"a\":", 5);
	assert_int_equal(journal__open(dir, NULL, &j), 0);
	assert_int_equal(journal__append(j, "{\"a\":1}", 1), 0);
	journal__close(j);
	assert_int_equal(util__read_file(p, 1 << 16, &text, &len), 0);
	assert_string_equal(text, "{\"a\":1}\n");
	free(text);
}

static void test_garbage_counted(void **state)
{
	static const char nul_line[] = "{\"a\":\"x\0y\"}\n";
	struct lines l = {0};
	struct journal *j;
	char dir[PATH_MAX], *big;
	unsigned skipped = 0;

	jdir(state, dir, sizeof(dir));
	assert_int_equal(journal__open(dir, NULL, &j), 0);
	assert_int_equal(journal__append(j, "{\"n\":1}", 0), 0);
	journal__close(j);
	append_raw(dir, "current.jsonl", "not json\n", 9);
	append_raw(dir, "current.jsonl", "[1,2]\n", 6);			  /* JSON, not an object */
	append_raw(dir, "current.jsonl", "{\"a\":1} tail\n", 13);	  /* trailing bytes */
	append_raw(dir, "current.jsonl", nul_line, sizeof(nul_line) - 1); /* NUL inside */
	append_raw(dir, "current.jsonl", "\n", 1);
	big = malloc(JOURNAL_LINE_MAX + 100);
	assert_non_null(big);
	memset(big, ' ', JOURNAL_LINE_MAX + 99);
	big[0] = '{';
	big[JOURNAL_LINE_MAX + 98] = '}';
	big[JOURNAL_LINE_MAX + 99] = '\n';
	append_raw(dir, "current.jsonl", big, JOURNAL_LINE_MAX + 100); /* too long */
	free(big);
	append_raw(dir, "current.jsonl", "{\"n\":2}\n", 8);
	assert_int_equal(journal__read(dir, collect, &l, &skipped), 0);
	assert_int_equal(skipped, 6);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.v[0], "{\"n\":1}");
	assert_string_equal(l.v[1], "{\"n\":2}");
	lines_free(&l);
	/* skipped may be NULL */
	assert_int_equal(journal__read(dir, collect, &l, NULL), 0);
	assert_int_equal(l.n, 2);
	lines_free(&l);
}

static void test_empty_and_missing(void **state)
{
	struct lines l = {0};
	struct journal *j;
	char dir[PATH_MAX];
	unsigned skipped = 42;

	jdir(state, dir, sizeof(dir));
	assert_int_equal(journal__read(dir, collect, &l, &skipped), -ENOENT);
	/* an empty directory: nothing, no error */
	assert_int_equal(journal__read(*state, collect, &l, &skipped), 0);
	assert_int_equal(l.n, 0);
	assert_int_equal(skipped, 0);
	/* a fresh journal */
	assert_int_equal(journal__open(dir, NULL, &j), 0);
	assert_int_equal(journal__read(dir, collect, &l, &skipped), 0);
	assert_int_equal(l.n, 0);
	journal__close(j);
}

static void test_callback_stops(void **state)
{
	struct lines l = {.stop_after = 2, .stop_ret = 7};
	struct journal_opts o = {.rotate_bytes = 4096};
	struct journal *j;
	char dir[PATH_MAX];

	jdir(state, dir, sizeof(dir));
	assert_int_equal(journal__open(dir, &o, &j), 0);
	append_lines(j, 0, 100);
	journal__close(j);
	assert_int_equal(journal__read(dir, collect, &l, NULL), 7);
	assert_int_equal(l.n, 2);
	lines_free(&l);
}

/* Every state a crash can leave a rotation in reads each line once, and open repairs it. */
static void test_rotation_cut_by_crash(void **state)
{
	struct journal_opts o = {.rotate_bytes = 4096, .keep_files = 100};
	struct journal *j;
	char dir[PATH_MAX], a[PATH_MAX], b[PATH_MAX], cmd[3 * PATH_MAX];

	jdir(state, dir, sizeof(dir));
	assert_int_equal(journal__open(dir, &o, &j), 0);
	append_lines(j, 0, 100);
	journal__close(j);
	assert_int_equal(count_glob(dir, "journal-*.jsonl.gz"), 2);

	/* crash after step 1: journal-00000003.jsonl is still current.jsonl */
	path_in(dir, "current.jsonl", a, sizeof(a));
	path_in(dir, "journal-00000003.jsonl", b, sizeof(b));
	assert_int_equal(link(a, b), 0);
	append_raw(dir, "current.jsonl.tmp", "", 0);
	assert_reads(dir, 0, 100);
	assert_int_equal(journal__open(dir, &o, &j), 0);
	journal__close(j);
	assert_int_equal(access(b, F_OK), -1);
	assert_int_equal(count_glob(dir, "*.tmp"), 0);
	assert_reads(dir, 0, 100);

	/* crash after step 2: the old file is journal-00000003.jsonl, gzip not done */
	assert_int_equal(rename(a, b), 0);
	append_raw(dir, "current.jsonl", "", 0);
	append_raw(dir, "journal-00000003.jsonl.gz.tmp", "\x1f\x8b partial", 10);
	assert_reads(dir, 0, 100);
	assert_int_equal(journal__open(dir, &o, &j), 0);
	append_lines(j, 100, 110);
	journal__close(j);
	assert_int_equal(access(b, F_OK), -1);
	assert_int_equal(count_glob(dir, "journal-00000003.jsonl.gz"), 1);
	assert_int_equal(count_glob(dir, "*.tmp"), 0);
	assert_reads(dir, 0, 110);

	/* crash after step 3: current.jsonl swapped, the .gz renamed, the plain file still there */
	path_in(dir, "journal-00000004.jsonl", b, sizeof(b));
	assert_int_equal(link(a, b), 0);
	assert_true(snprintf(cmd, sizeof(cmd), "gzip -c %s > %s.gz", b, b) < (int)sizeof(cmd));
	assert_int_equal(system(cmd), 0);
	assert_int_equal(unlink(a), 0);
	append_raw(dir, "current.jsonl", "", 0);
	assert_reads(dir, 0, 110);
	assert_int_equal(journal__open(dir, &o, &j), 0);
	append_lines(j, 110, 112);
	journal__close(j);
	assert_int_equal(access(b, F_OK), -1);
	assert_int_equal(count_glob(dir, "journal-00000004.jsonl.gz"), 1);
	assert_reads(dir, 0, 112);
}

static void test_corrupt_gzip_counted(void **state)
{
	struct journal_opts o = {.rotate_bytes = 4096, .keep_files = 100};
	struct lines l = {0};
	struct journal *j;
	char dir[PATH_MAX], p[PATH_MAX];
	unsigned skipped;
	struct stat sb;

	jdir(state, dir, sizeof(dir));
	assert_int_equal(journal__open(dir, &o, &j), 0);
	append_lines(j, 0, 100);
	journal__close(j);
	/* cut the newest .gz in half */
	path_in(dir, "journal-00000002.jsonl.gz", p, sizeof(p));
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(truncate(p, sb.st_size / 2), 0);
	assert_int_equal(journal__read(dir, collect, &l, &skipped), 0);
	assert_true(skipped >= 1);
	assert_true(l.n > 40 && l.n < 100);
	assert_string_equal(l.v[0], "{\"seq\":0,\"type\":\"HEAL_STEP\",\"trace_id\":\"tr-000000\","
				    "\"pad\":\"0000000000000000000000000000000000000000\"}");
	lines_free(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_lines_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sync_flag, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_single_writer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rotation_gzip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_keep_files, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_torn_last_line, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_garbage_counted, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_empty_and_missing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_callback_stops, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rotation_cut_by_crash, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_corrupt_gzip_counted, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
