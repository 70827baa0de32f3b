// SPDX-License-Identifier: MIT
/* snapshot: byte-exact round trips, dedupe, last known good, pruning, limits, reopen. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "heal/snapshot.h"
#include "heal/util.h"

struct fixture {
	char root[64];	 /* temp dir */
	char store[128]; /* root/snapshots */
	char file[128];	 /* root/etc/app.json: the watched file */
	struct snapshots *s;
};

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(p);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	char etc[128];

	if (!f)
		return -1;
	snprintf(f->root, sizeof(f->root), "/tmp/heal-test-snapshot-XXXXXX");
	if (!mkdtemp(f->root) ||
	    snprintf(f->store, sizeof(f->store), "%s/snapshots", f->root) >=
		(int)sizeof(f->store) ||
	    snprintf(f->file, sizeof(f->file), "%s/etc/app.json", f->root) >=
		(int)sizeof(f->file) ||
	    snprintf(etc, sizeof(etc), "%s/etc", f->root) >= (int)sizeof(etc) || mkdir(etc, 0755) ||
	    snapshot__open(f->store, 0, &f->s)) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	snapshot__close(f->s);
	nftw(f->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void put(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void put_str(const char *path, const char *s)
{
	put(path, s, strlen(s), 0644);
}

static void take(struct fixture *f, const char *reason, int want_stored)
{
	int stored = -1;

	assert_int_equal(snapshot__take(f->s, f->file, reason, &stored), 0);
	assert_int_equal(stored, want_stored);
}

static void assert_latest_str(struct fixture *f, const char *want)
{
	char *c;
	size_t len;

	assert_int_equal(snapshot__latest(f->s, f->file, &c, &len, NULL, NULL, NULL), 0);
	assert_int_equal(len, strlen(want));
	assert_string_equal(c, want);
	free(c);
}

struct listing {
	int n;
	long long time_us[16];
	char hash[16][17];
	size_t size[16];
	char reason[16][SNAPSHOT_REASON_MAX + 1];
};

static int list_cb(void *ctx, long long time_us, const char *hash, size_t size, const char *reason)
{
	struct listing *l = ctx;

	assert_true(l->n < 16);
	l->time_us[l->n] = time_us;
	snprintf(l->hash[l->n], sizeof(l->hash[0]), "%s", hash);
	l->size[l->n] = size;
	snprintf(l->reason[l->n], sizeof(l->reason[0]), "%s", reason);
	l->n++;
	return 0;
}

/* Regular files in the per-path directory of f->file whose name ends in suffix. */
static int count_stored(struct fixture *f, const char *suffix)
{
	struct dirent *de, *sub;
	DIR *d, *pd;
	char p[PATH_MAX];
	int n = 0;

	d = opendir(f->store);
	assert_non_null(d);
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		assert_true(snprintf(p, sizeof(p), "%s/%s", f->store, de->d_name) < (int)sizeof(p));
		pd = opendir(p);
		assert_non_null(pd);
		while ((sub = readdir(pd))) {
			size_t l = strlen(sub->d_name), sl = strlen(suffix);

			if (l > sl && strcmp(sub->d_name + l - sl, suffix) == 0)
				n++;
		}
		closedir(pd);
	}
	closedir(d);
	return n;
}

static void test_round_trip_binary(void **state)
{
	struct fixture *f = *state;
	unsigned char data[4096 + 7];
	char *c;
	size_t len, i;
	mode_t mode;
	uid_t uid;
	gid_t gid;

	for (i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 131 + (i >> 8)); /* every byte value, NULs included */
	data[0] = 0;
	data[sizeof(data) - 1] = 0;
	put(f->file, data, sizeof(data), 0640);
	take(f, "before patch", 1);
	assert_int_equal(snapshot__latest(f->s, f->file, &c, &len, &mode, &uid, &gid), 0);
	assert_int_equal(len, sizeof(data));
	assert_memory_equal(c, data, sizeof(data));
	assert_int_equal(c[len], 0); /* NUL after the bytes */
	assert_int_equal(mode, 0640);
	assert_int_equal(uid, getuid());
	assert_int_equal(gid, getgid());
	free(c);

	/* an empty file is a version too */
	put(f->file, "", 0, 0600);
	take(f, NULL, 1);
	assert_int_equal(snapshot__latest(f->s, f->file, &c, &len, &mode, NULL, NULL), 0);
	assert_int_equal(len, 0);
	assert_int_equal(mode, 0600);
	free(c);
	assert_int_equal(count_stored(f, ".z"), 2);
}

static void test_dedupe(void **state)
{
	struct fixture *f = *state;
	struct listing l = {0};

	put_str(f->file, "{\"a\":1}");
	take(f, "one", 1);
	take(f, "same again", 0);
	put_str(f->file, "{\"a\":2}");
	take(f, "two", 1);
	put_str(f->file, "{\"a\":1}");
	take(f, "back to one", 1); /* differs from the newest: recorded, object shared */
	take(f, "no change", 0);
	assert_int_equal(snapshot__list(f->s, f->file, list_cb, &l), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.reason[0], "back to one");
	assert_string_equal(l.reason[1], "two");
	assert_string_equal(l.reason[2], "one");
	assert_string_equal(l.hash[0], l.hash[2]);
	assert_string_not_equal(l.hash[0], l.hash[1]);
	assert_int_equal(strlen(l.hash[0]), 16);
	assert_int_equal(l.size[0], 7);
	assert_true(l.time_us[0] >= l.time_us[1] && l.time_us[1] >= l.time_us[2]);
	assert_true(l.time_us[2] > 1600000000000000ll);
	assert_int_equal(count_stored(f, ".z"), 2);
	/* stored=NULL is allowed */
	assert_int_equal(snapshot__take(f->s, f->file, "x", NULL), 0);
}

static void test_latest_other_than(void **state)
{
	struct fixture *f = *state;
	char *c;
	size_t len;

	put_str(f->file, "good");
	take(f, "a", 1);
	/* only version == current: nothing else to go back to */
	assert_int_equal(snapshot__latest_other_than(f->s, f->file, "good", 4, &c, &len), -ENOENT);
	assert_null(c);
	put_str(f->file, "better");
	take(f, "b", 1);
	assert_int_equal(snapshot__latest_other_than(f->s, f->file, "better", 6, &c, &len), 0);
	assert_int_equal(len, 4);
	assert_string_equal(c, "good");
	free(c);
	assert_int_equal(snapshot__latest_other_than(f->s, f->file, "good", 4, &c, &len), 0);
	assert_string_equal(c, "better");
	free(c);
	/* a person broke it after the last snapshot: the newest version is the answer */
	assert_int_equal(snapshot__latest_other_than(f->s, f->file, "broken", 6, &c, &len), 0);
	assert_string_equal(c, "better");
	free(c);
	/* same bytes, different length: differs */
	assert_int_equal(snapshot__latest_other_than(f->s, f->file, "better\0", 7, &c, &len), 0);
	assert_string_equal(c, "better");
	free(c);
	/* the file is gone: any version will do */
	assert_int_equal(snapshot__latest_other_than(f->s, f->file, NULL, 0, &c, &len), 0);
	assert_string_equal(c, "better");
	free(c);
}

static void test_prune(void **state)
{
	struct fixture *f = *state;
	struct listing l = {0};
	char buf[32];
	int i;

	snapshot__close(f->s);
	assert_int_equal(snapshot__open(f->store, 3, &f->s), 0);
	for (i = 1; i <= 6; i++) {
		snprintf(buf, sizeof(buf), "version %d", i);
		put_str(f->file, buf);
		take(f, buf, 1);
	}
	assert_int_equal(snapshot__list(f->s, f->file, list_cb, &l), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.reason[0], "version 6");
	assert_string_equal(l.reason[2], "version 4");
	assert_int_equal(count_stored(f, ".z"), 3);
	assert_int_equal(count_stored(f, ".tmp"), 0);
	assert_latest_str(f, "version 6");

	/* a smaller keep on reopen applies at the next take */
	snapshot__close(f->s);
	assert_int_equal(snapshot__open(f->store, 2, &f->s), 0);
	put_str(f->file, "version 7");
	take(f, "version 7", 1);
	memset(&l, 0, sizeof(l));
	assert_int_equal(snapshot__list(f->s, f->file, list_cb, &l), 0);
	assert_int_equal(l.n, 2);
	assert_int_equal(count_stored(f, ".z"), 2);
}

static void test_metadata(void **state)
{
	struct fixture *f = *state;
	uid_t uid;
	gid_t gid;
	mode_t mode;
	size_t len;
	char *c;

	put_str(f->file, "one");
	assert_int_equal(chmod(f->file, 04750), 0);
	take(f, NULL, 1);
	assert_int_equal(snapshot__latest(f->s, f->file, &c, &len, &mode, &uid, &gid), 0);
	assert_int_equal(mode, 04750); /* permission bits with setuid, no file type */
	free(c);
	if (geteuid() != 0) {
		print_message("not root: uid/gid other than ours not tested\n");
		return;
	}
	put_str(f->file, "two");
	assert_int_equal(chown(f->file, 1234, 5678), 0);
	take(f, NULL, 1);
	assert_int_equal(snapshot__latest(f->s, f->file, &c, &len, &mode, &uid, &gid), 0);
	assert_int_equal(uid, 1234);
	assert_int_equal(gid, 5678);
	assert_int_equal(mode, 0644);
	free(c);
}

static void test_errors(void **state)
{
	struct fixture *f = *state;
	struct listing l = {0};
	char *c = (char *)1, p[PATH_MAX];
	size_t len;
	int stored = 7, fd;

	/* nothing there */
	assert_int_equal(snapshot__take(f->s, f->file, "r", &stored), -ENOENT);
	assert_int_equal(stored, 0);
	assert_int_equal(snapshot__latest(f->s, f->file, &c, &len, NULL, NULL, NULL), -ENOENT);
	assert_null(c);
	assert_int_equal(snapshot__list(f->s, f->file, list_cb, &l), 0);
	assert_int_equal(l.n, 0);
	assert_int_equal(snapshot__take(f->s, "", "r", NULL), -EINVAL);
	/* not a regular file */
	assert_int_equal(snapshot__take(f->s, f->root, "r", NULL), -EINVAL);

	/* size limit: exactly the limit is fine, one byte more is not */
	fd = open(f->file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, SNAPSHOT_MAX_FILE + 1), 0);
	assert_int_equal(snapshot__take(f->s, f->file, "big", &stored), -EFBIG);
	assert_int_equal(stored, 0);
	assert_int_equal(ftruncate(fd, SNAPSHOT_MAX_FILE), 0);
	close(fd);
	take(f, "at the limit", 1);
	assert_int_equal(snapshot__latest(f->s, f->file, &c, &len, NULL, NULL, NULL), 0);
	assert_int_equal(len, SNAPSHOT_MAX_FILE);
	assert_int_equal(c[0], 0);
	assert_int_equal(c[len - 1], 0);
	free(c);

	/* a damaged object is reported, not returned */
	put_str(f->file, "precious");
	take(f, "r", 1);
	assert_true(snprintf(p, sizeof(p), "%s/%%2Ftmp%%2F%s%%2Fetc%%2Fapp.json", f->store,
			     f->root + 5) < (int)sizeof(p));
	{
		char obj[PATH_MAX + 64];
		struct dirent *de;
		DIR *d = opendir(p);
		int damaged = 0;

		assert_non_null(d);
		while ((de = readdir(d))) {
			if (strstr(de->d_name, "-8.z")) { /* the 8-byte version */
				assert_true(snprintf(obj, sizeof(obj), "%s/%s", p, de->d_name) <
					    (int)sizeof(obj));
				fd = open(obj, O_WRONLY);
				assert_true(fd >= 0);
				assert_int_equal(pwrite(fd, "\xff\xff\xff\xff", 4, 4), 4);
				close(fd);
				damaged = 1;
			}
		}
		closedir(d);
		assert_true(damaged);
	}
	assert_int_equal(snapshot__latest(f->s, f->file, &c, &len, NULL, NULL, NULL), -EBADMSG);
	assert_null(c);
}

static void test_reopen_and_layout(void **state)
{
	struct fixture *f = *state;
	struct listing l = {0};
	char p[PATH_MAX], *idx, *line, *save;
	size_t len;
	int lines = 0;

	put_str(f->file, "v1");
	take(f, "first", 1);
	put_str(f->file, "v2");
	take(f, "second", 1);
	snapshot__close(f->s);
	snapshot__close(NULL);
	assert_int_equal(snapshot__open(f->store, 0, &f->s), 0);
	assert_latest_str(f, "v2");
	assert_int_equal(snapshot__list(f->s, f->file, list_cb, &l), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.reason[1], "first");
	take(f, "unchanged", 0);

	/* the per-path directory is the escaped path; the index is JSON lines */
	assert_true(snprintf(p, sizeof(p), "%s/%%2Ftmp%%2F%s%%2Fetc%%2Fapp.json/index.jsonl",
			     f->store, f->root + 5) < (int)sizeof(p));
	assert_int_equal(util__read_file(p, 1 << 16, &idx, &len), 0);
	for (line = strtok_r(idx, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		cJSON *o = cJSON_Parse(line);

		assert_non_null(o);
		assert_true(cJSON_IsNumber(cJSON_GetObjectItem(o, "time_us")));
		assert_true(cJSON_IsString(cJSON_GetObjectItem(o, "hash")));
		assert_int_equal(cJSON_GetObjectItem(o, "size")->valueint, 2);
		assert_int_equal(cJSON_GetObjectItem(o, "mode")->valueint, 0644);
		assert_true(cJSON_IsNumber(cJSON_GetObjectItem(o, "uid")));
		assert_true(cJSON_IsNumber(cJSON_GetObjectItem(o, "gid")));
		assert_true(cJSON_IsString(cJSON_GetObjectItem(o, "reason")));
		cJSON_Delete(o);
		lines++;
	}
	assert_int_equal(lines, 2);
	free(idx);
	/* stored objects are zlib streams of the content */
	assert_int_equal(count_stored(f, ".z"), 2);
}

static void test_long_path_and_reason(void **state)
{
	struct fixture *f = *state;
	struct listing l = {0};
	char dir[PATH_MAX], file[PATH_MAX], reason[600];
	size_t i, n;

	/* a path whose escape does not fit one directory name */
	n = (size_t)snprintf(dir, sizeof(dir), "%s", f->root);
	for (i = 0; i < 6; i++)
		n += (size_t)snprintf(dir + n, sizeof(dir) - n, "/%s",
				      "a-rather-long-directory-name-here");
	assert_int_equal(util__mkdir_p(dir, 0755), 0);
	assert_true(snprintf(file, sizeof(file), "%s/x.conf", dir) < (int)sizeof(file));
	put_str(file, "long");
	/* a reason over the limit, in two-byte characters: cut whole */
	for (i = 0; i + 2 < sizeof(reason); i += 2)
		memcpy(reason + i, "\xc3\xa9", 2);
	reason[i] = 0;
	assert_int_equal(snapshot__take(f->s, file, reason, NULL), 0);
	assert_int_equal(snapshot__list(f->s, file, list_cb, &l), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(strlen(l.reason[0]), SNAPSHOT_REASON_MAX);
	assert_memory_equal(l.reason[0], reason, SNAPSHOT_REASON_MAX);
	{
		char *c;
		size_t len;

		assert_int_equal(snapshot__latest(f->s, file, &c, &len, NULL, NULL, NULL), 0);
		assert_string_equal(c, "long");
		free(c);
	}
	/* an odd cut point backs up to the character boundary */
	reason[SNAPSHOT_REASON_MAX + 1] = 0;
	memmove(reason + 1, reason, SNAPSHOT_REASON_MAX + 1);
	reason[0] = 'x';
	put_str(file, "longer");
	assert_int_equal(snapshot__take(f->s, file, reason, NULL), 0);
	memset(&l, 0, sizeof(l));
	assert_int_equal(snapshot__list(f->s, file, list_cb, &l), 0);
	assert_int_equal(strlen(l.reason[0]), SNAPSHOT_REASON_MAX - 1);
	/* it does not collide with the short path */
	put_str(f->file, "short");
	take(f, "s", 1);
	assert_latest_str(f, "short");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_round_trip_binary, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dedupe, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_latest_other_than, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_metadata, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reopen_and_layout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_long_path_and_reason, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
