// SPDX-License-Identifier: MIT
/* patch: unified diffs, atomic apply with backups, byte-exact restore. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "heal/patch.h"

/* ---- helpers ---- */

struct tree {
	char root[64];
	char etc[96];	  /* the files a patch touches */
	char backups[96]; /* patch__apply's backup_dir */
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static int tree_setup(void **state)
{
	struct tree *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	snprintf(t->root, sizeof(t->root), "/tmp/heal-test-patch-XXXXXX");
	assert_non_null(mkdtemp(t->root));
	snprintf(t->etc, sizeof(t->etc), "%s/etc", t->root);
	snprintf(t->backups, sizeof(t->backups), "%s/backups", t->root);
	assert_int_equal(mkdir(t->etc, 0755), 0);
	*state = t;
	return 0;
}

static int tree_teardown(void **state)
{
	struct tree *t = *state;

	nftw(t->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(t);
	return 0;
}

static void put(const char *path, const char *s, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, s, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void path_in(char *out, size_t n, const char *dir, const char *name)
{
	assert_true(snprintf(out, n, "%s/%s", dir, name) < (int)n);
}

/* Assert path holds exactly len bytes of want. */
static void assert_content(const char *path, const char *want, size_t len)
{
	char *got = NULL;
	size_t glen = 0;

	assert_int_equal(patch__read_file(path, 1 << 20, &got, &glen), 0);
	assert_int_equal(glen, len);
	assert_memory_equal(got, want, len);
	free(got);
}

static size_t count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	return n;
}

/* No ".<name>.heal-*" temp file left in dir. */
static void assert_no_temp(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strstr(de->d_name, ".heal-"))
			fail_msg("temp file %s left in %s", de->d_name, dir);
	closedir(d);
}

static char *diff1(const char *path, const char *old, int old_exists, const char *new_)
{
	struct patch_file f = {.path = (char *)path,
			       .old_content = (char *)old,
			       .old_len = old ? strlen(old) : 0,
			       .old_exists = old_exists,
			       .new_content = (char *)new_,
			       .new_len = new_ ? strlen(new_) : 0};
	struct patch p = {&f, 1};
	char *d = patch__diff(&p);

	assert_non_null(d);
	return d;
}

static void assert_diff(const char *old, int old_exists, const char *new_, const char *want)
{
	char *d = diff1("f.txt", old, old_exists, new_);

	assert_string_equal(d, want);
	free(d);
}

/* ---- diff ---- */

static void test_diff_change(void **state)
{
	assert_diff("a\nb\nc\n", 1, "a\nB\nc\n",
		    "--- f.txt\n+++ f.txt\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n");
}

static void test_diff_add_and_remove(void **state)
{
	assert_diff("1\n2\n3\n4\n5\n", 1, "1\n2\nnew\n3\n4\n5\n",
		    "--- f.txt\n+++ f.txt\n@@ -1,5 +1,6 @@\n 1\n 2\n+new\n 3\n 4\n 5\n");
	assert_diff("1\n2\n3\n4\n5\n6\n7\n8\n", 1, "1\n2\n3\n4\n6\n7\n8\n",
		    "--- f.txt\n+++ f.txt\n@@ -2,7 +2,6 @@\n 2\n 3\n 4\n-5\n 6\n 7\n 8\n");
	/* a single line of context each side is written without ",1" */
	assert_diff("a\nb\n", 1, "a\n", "--- f.txt\n+++ f.txt\n@@ -1,2 +1 @@\n a\n-b\n");
}

static void test_diff_no_trailing_newline(void **state)
{
	assert_diff(
	    "a\nb", 1, "a\nb\n",
	    "--- f.txt\n+++ f.txt\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n");
	assert_diff(
	    "a\nb\n", 1, "a\nc",
	    "--- f.txt\n+++ f.txt\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n\\ No newline at end of file\n");
}

static void test_diff_new_file(void **state)
{
	assert_diff(NULL, 0, "x\ny\n", "--- /dev/null\n+++ f.txt\n@@ -0,0 +1,2 @@\n+x\n+y\n");
}

static void test_diff_deleted_content(void **state)
{
	assert_diff("x\ny\n", 1, "", "--- f.txt\n+++ f.txt\n@@ -1,2 +0,0 @@\n-x\n-y\n");
	assert_diff("x\ny\n", 1, NULL, "--- f.txt\n+++ f.txt\n@@ -1,2 +0,0 @@\n-x\n-y\n");
}

static void test_diff_unchanged_is_empty(void **state)
{
	struct patch_file f = {.path = "f",
			       .old_content = "a\n",
			       .old_len = 2,
			       .old_exists = 1,
			       .new_content = "a\n",
			       .new_len = 2};
	struct patch p = {&f, 1};

	assert_diff("same\n", 1, "same\n", "");
	assert_int_equal(patch__changed_lines(&p), 0);
}

static void test_diff_hunks_split_and_merge(void **state)
{
	char old[256] = "", far[256] = "", near[256] = "";
	char *d, *hunk;

	for (int i = 1; i <= 20; i++) {
		snprintf(old + strlen(old), sizeof(old) - strlen(old), "%d\n", i);
		snprintf(far + strlen(far), sizeof(far) - strlen(far),
			 i == 2 || i == 18 ? "x%d\n" : "%d\n", i);
		snprintf(near + strlen(near), sizeof(near) - strlen(near),
			 i == 2 || i == 9 ? "x%d\n" : "%d\n", i);
	}
	/* 15 unchanged lines apart: two hunks */
	d = diff1("f", old, 1, far);
	assert_non_null(strstr(d, "@@ -1,5 +1,5 @@\n 1\n-2\n+x2\n 3\n 4\n 5\n"));
	assert_non_null(strstr(d, "@@ -15,6 +15,6 @@\n 15\n 16\n 17\n-18\n+x18\n 19\n 20\n"));
	free(d);
	/* 6 apart: the contexts touch, one hunk */
	d = diff1("f", old, 1, near);
	hunk = strstr(d, "@@ -1,12 +1,12 @@\n");
	assert_non_null(hunk);
	assert_null(strstr(hunk + 2, "\n@@"));
	free(d);
}

static void test_diff_counts(void **state)
{
	struct patch_file f[2] = {
	    {.path = "a",
	     .old_content = "1\n2\n3\n",
	     .old_len = 6,
	     .old_exists = 1,
	     .new_content = "1\nx\n3\n4\n",
	     .new_len = 8},
	    {.path = "b", .new_content = "n\n", .new_len = 2},
	};
	struct patch p = {f, 2};
	size_t added = 0, removed = 0;

	assert_int_equal(patch__line_stats(&p, &added, &removed), 0);
	assert_int_equal(added, 3);
	assert_int_equal(removed, 1);
	assert_int_equal(patch__changed_lines(&p), 4);
}

static void test_diff_too_big(void **state)
{
	size_t n = (PATCH_MAX_LINES + 1) * 2;
	char *big = malloc(n);
	struct patch_file f = {.path = "big", .new_content = big, .new_len = n};
	struct patch p = {&f, 1};

	assert_non_null(big);
	for (size_t i = 0; i < n; i += 2)
		big[i] = 'a', big[i + 1] = '\n';
	errno = 0;
	assert_null(patch__diff(&p));
	assert_int_equal(errno, E2BIG);
	assert_int_equal(patch__changed_lines(&p), SIZE_MAX);
	assert_int_equal(patch__line_stats(&p, NULL, NULL), -E2BIG);
	free(big);
}

static int run_quiet(const char *cmd)
{
	int rc = system(cmd);

	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* What patch__diff writes, `patch -p0` applies: the result equals the new contents. */
static void test_diff_applies_with_patch(void **state)
{
	struct tree *t = *state;
	static const char *const olds[] = {"a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\n", "keep\nno newline",
					   NULL, "x\n"};
	static const char *const news[] = {"a\nB\nc\nd\ne\nf\ng\nh\nI\nj\nk\nl\n",
					   "keep\nno newline\n", "fresh\nfile", ""};
	static const char *const names[] = {"one.txt", "two.txt", "three.txt", "four.txt"};
	struct patch_file f[4];
	struct patch p = {f, 4};
	char cwd[PATH_MAX], path[PATH_MAX], cmd[PATH_MAX];
	char *d;

	if (run_quiet("command -v patch >/dev/null 2>&1")) {
		skip(); /* GNU patch not installed: the exact-output tests above still ran */
		return;
	}
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(t->etc), 0);
	for (int i = 0; i < 4; i++) {
		f[i] = (struct patch_file){.path = (char *)names[i],
					   .old_content = (char *)olds[i],
					   .old_len = olds[i] ? strlen(olds[i]) : 0,
					   .old_exists = olds[i] != NULL,
					   .new_content = (char *)news[i],
					   .new_len = strlen(news[i])};
		if (olds[i])
			put(names[i], olds[i], strlen(olds[i]), 0644);
	}
	d = patch__diff(&p);
	assert_non_null(d);
	put("change.diff", d, strlen(d), 0644);
	snprintf(cmd, sizeof(cmd), "patch -p0 --batch --silent < change.diff >/dev/null 2>&1");
	assert_int_equal(run_quiet(cmd), 0);
	for (int i = 0; i < 4; i++) {
		path_in(path, sizeof(path), t->etc, names[i]);
		assert_content(path, news[i], strlen(news[i]));
	}
	free(d);
	assert_int_equal(chdir(cwd), 0);
}

/* ---- apply / restore ---- */

static uid_t nobody_uid(gid_t *gid)
{
	struct passwd *pw = getpwnam("nobody");

	*gid = pw ? pw->pw_gid : 65534;
	return pw ? pw->pw_uid : 65534;
}

static void test_apply_restore_exact(void **state)
{
	struct tree *t = *state;
	static const char old[] =
	    "{\n  \"pool\": 4,\n  \"bin\": \"\x01\x02\"\n}"; /* no final newline */
	static const char new_[] = "{\n  \"pool\": 16,\n  \"bin\": \"\x01\x02\"\n}\n";
	char conf[PATH_MAX], added[PATH_MAX], id[PATCH_BACKUP_ID_LEN], err[512],
	    manifest[PATH_MAX * 2];
	struct patch_file f[2] = {0};
	struct patch p = {f, 2};
	uid_t uid = getuid();
	gid_t gid = getgid();
	struct stat st;

	path_in(conf, sizeof(conf), t->etc, "shop.json");
	path_in(added, sizeof(added), t->etc, "extra.conf");
	put(conf, old, sizeof(old) - 1, 0640);
	if (geteuid() == 0) {
		uid = nobody_uid(&gid);
		assert_int_equal(chown(conf, uid, gid), 0);
	}
	f[0] = (struct patch_file){.path = conf,
				   .old_content = (char *)old,
				   .old_len = sizeof(old) - 1,
				   .old_exists = 1,
				   .new_content = (char *)new_,
				   .new_len = sizeof(new_) - 1};
	f[1] = (struct patch_file){.path = added, .new_content = "k = v\n", .new_len = 6};

	assert_int_equal(patch__apply(&p, t->backups, id, sizeof(id), err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_int_equal(strlen(id), PATCH_BACKUP_ID_LEN - 1);
	assert_content(conf, new_, sizeof(new_) - 1);
	assert_content(added, "k = v\n", 6);
	assert_int_equal(stat(conf, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(st.st_uid, uid);
	assert_int_equal(st.st_gid, gid);
	/* a new file: 0644, owned like its directory */
	assert_int_equal(stat(added, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(st.st_uid, getuid());
	snprintf(manifest, sizeof(manifest), "%s/%s/manifest.json", t->backups, id);
	assert_int_equal(access(manifest, R_OK), 0);
	assert_no_temp(t->etc);

	assert_int_equal(patch__restore(t->backups, id, err, sizeof(err)), 0);
	assert_content(conf, old, sizeof(old) - 1);
	assert_int_equal(stat(conf, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(st.st_uid, uid);
	assert_int_equal(st.st_gid, gid);
	assert_int_equal(access(added, F_OK), -1); /* the patch created it: restore removes it */
	assert_no_temp(t->etc);
	/* restoring twice is harmless */
	assert_int_equal(patch__restore(t->backups, id, err, sizeof(err)), 0);
	assert_content(conf, old, sizeof(old) - 1);
}

static void test_apply_failure_restores_first(void **state)
{
	struct tree *t = *state;
	char a[PATH_MAX], b[PATH_MAX], id[PATCH_BACKUP_ID_LEN] = "x", err[512];
	struct patch_file f[2] = {0};
	struct patch p = {f, 2};
	struct rlimit old_lim, lim;
	char *big = malloc(64 * 1024);
	int ret;

	assert_non_null(big);
	memset(big, 'z', 64 * 1024);
	path_in(a, sizeof(a), t->etc, "a.conf");
	path_in(b, sizeof(b), t->etc, "b.conf");
	put(a, "a=1\n", 4, 0600);
	put(b, "b=1\n", 4, 0644);
	f[0] = (struct patch_file){.path = a,
				   .old_content = "a=1\n",
				   .old_len = 4,
				   .old_exists = 1,
				   .new_content = "a=2\n",
				   .new_len = 4};
	f[1] = (struct patch_file){.path = b,
				   .old_content = "b=1\n",
				   .old_len = 4,
				   .old_exists = 1,
				   .new_content = big,
				   .new_len = 64 * 1024};
	/* writing the second file fails (EFBIG) after the first was replaced */
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old_lim), 0);
	lim = old_lim;
	lim.rlim_cur = 16 * 1024;
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	ret = patch__apply(&p, t->backups, id, sizeof(id), err, sizeof(err));
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old_lim), 0);
	signal(SIGXFSZ, SIG_DFL);

	assert_int_equal(ret, -EFBIG);
	assert_non_null(strstr(err, b));
	assert_non_null(strstr(err, "restored"));
	assert_string_equal(id, "");
	assert_content(a, "a=1\n", 4);
	assert_content(b, "b=1\n", 4);
	assert_no_temp(t->etc);
	assert_int_equal(count_entries(t->backups), 0); /* nothing changed, nothing kept */
	free(big);
}

/* The new content goes to a temp file in the target's directory, renamed over it. */
static void test_apply_atomic_same_dir(void **state)
{
	struct tree *t = *state;
	char path[PATH_MAX], id[PATCH_BACKUP_ID_LEN], err[256], tmpname[NAME_MAX + 1] = "";
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	struct patch_file f = {0};
	struct patch p = {&f, 1};
	int in, created = 0, moved_from = 0, moved_to = 0;
	ssize_t n;

	path_in(path, sizeof(path), t->etc, "a.txt");
	put(path, "old\n", 4, 0644);
	f = (struct patch_file){.path = path,
				.old_content = "old\n",
				.old_len = 4,
				.old_exists = 1,
				.new_content = "new\n",
				.new_len = 4};
	in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	assert_true(in >= 0);
	assert_true(inotify_add_watch(in, t->etc, IN_CREATE | IN_MOVED_FROM | IN_MOVED_TO) >= 0);
	assert_int_equal(patch__apply(&p, t->backups, id, sizeof(id), err, sizeof(err)), 0);
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		for (char *q = buf; q < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)q;

			if (ev->mask & IN_CREATE) {
				created++;
				snprintf(tmpname, sizeof(tmpname), "%s", ev->name);
			}
			if (ev->mask & IN_MOVED_FROM && strcmp(ev->name, tmpname) == 0)
				moved_from++;
			if (ev->mask & IN_MOVED_TO && strcmp(ev->name, "a.txt") == 0)
				moved_to++;
			q += sizeof(*ev) + ev->len;
		}
	}
	close(in);
	assert_int_equal(created, 1);
	assert_int_equal(strncmp(tmpname, ".a.txt.heal-", 12), 0);
	assert_int_equal(moved_from, 1);
	assert_int_equal(moved_to, 1);
	assert_no_temp(t->etc);
	assert_int_equal(count_entries(t->etc), 1);
	assert_content(path, "new\n", 4);
}

static void test_apply_refuses_stale_and_symlink(void **state)
{
	struct tree *t = *state;
	char path[PATH_MAX], link[PATH_MAX], id[PATCH_BACKUP_ID_LEN], err[512];
	struct patch_file f = {0};
	struct patch p = {&f, 1};

	path_in(path, sizeof(path), t->etc, "a.txt");
	path_in(link, sizeof(link), t->etc, "link.txt");
	put(path, "changed meanwhile\n", 18, 0644);
	f = (struct patch_file){.path = path,
				.old_content = "old\n",
				.old_len = 4,
				.old_exists = 1,
				.new_content = "new\n",
				.new_len = 4};
	assert_int_equal(patch__apply(&p, t->backups, id, sizeof(id), err, sizeof(err)), -ESTALE);
	assert_non_null(strstr(err, "changed since the patch was made"));
	assert_content(path, "changed meanwhile\n", 18);

	f.old_exists = 0, f.old_content = NULL, f.old_len = 0;
	assert_int_equal(patch__apply(&p, t->backups, id, sizeof(id), err, sizeof(err)), -EEXIST);

	assert_int_equal(symlink(path, link), 0);
	f = (struct patch_file){.path = link,
				.old_content = "changed meanwhile\n",
				.old_len = 18,
				.old_exists = 1,
				.new_content = "new\n",
				.new_len = 4};
	assert_int_equal(patch__apply(&p, t->backups, id, sizeof(id), err, sizeof(err)), -ELOOP);
	assert_non_null(strstr(err, "symlink"));
	assert_content(path, "changed meanwhile\n", 18);
	assert_int_equal(count_entries(t->backups), 0);
}

static void test_restore_rejects_bad_ids(void **state)
{
	struct tree *t = *state;
	char err[256];

	assert_int_equal(patch__restore(t->backups, "../etc", err, sizeof(err)), -EINVAL);
	assert_int_equal(patch__restore(t->backups, "..", err, sizeof(err)), -EINVAL);
	assert_int_equal(patch__restore(t->backups, "", err, sizeof(err)), -EINVAL);
	assert_int_equal(patch__restore(t->backups, "20000101T000000Z-nothere", err, sizeof(err)),
			 -ENOENT);
}

static void test_read_file(void **state)
{
	struct tree *t = *state;
	char path[PATH_MAX], *s = NULL;
	size_t len = 0;

	path_in(path, sizeof(path), t->etc, "r.txt");
	put(path, "12345", 5, 0600);
	assert_int_equal(patch__read_file(path, 5, &s, &len), 0);
	assert_int_equal(len, 5);
	assert_string_equal(s, "12345");
	free(s);
	assert_int_equal(patch__read_file(path, 4, &s, &len), -EFBIG);
	assert_null(s);
	assert_int_equal(patch__read_file(t->etc, 100, &s, &len), -EISDIR);
	path_in(path, sizeof(path), t->etc, "missing");
	assert_int_equal(patch__read_file(path, 100, &s, &len), -ENOENT);
}

static void test_free_accepts_null(void **state)
{
	struct patch p = {calloc(1, sizeof(struct patch_file)), 1};

	p.files[0].path = strdup("x");
	p.files[0].new_content = strdup("y");
	patch__free(&p);
	assert_null(p.files);
	assert_int_equal(p.n, 0);
	patch__free(&p);
	patch__free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_diff_change),
	    cmocka_unit_test(test_diff_add_and_remove),
	    cmocka_unit_test(test_diff_no_trailing_newline),
	    cmocka_unit_test(test_diff_new_file),
	    cmocka_unit_test(test_diff_deleted_content),
	    cmocka_unit_test(test_diff_unchanged_is_empty),
	    cmocka_unit_test(test_diff_hunks_split_and_merge),
	    cmocka_unit_test(test_diff_counts),
	    cmocka_unit_test(test_diff_too_big),
	    cmocka_unit_test_setup_teardown(test_diff_applies_with_patch, tree_setup,
					    tree_teardown),
	    cmocka_unit_test_setup_teardown(test_apply_restore_exact, tree_setup, tree_teardown),
	    cmocka_unit_test_setup_teardown(test_apply_failure_restores_first, tree_setup,
					    tree_teardown),
	    cmocka_unit_test_setup_teardown(test_apply_atomic_same_dir, tree_setup, tree_teardown),
	    cmocka_unit_test_setup_teardown(test_apply_refuses_stale_and_symlink, tree_setup,
					    tree_teardown),
	    cmocka_unit_test_setup_teardown(test_restore_rejects_bad_ids, tree_setup,
					    tree_teardown),
	    cmocka_unit_test_setup_teardown(test_read_file, tree_setup, tree_teardown),
	    cmocka_unit_test(test_free_accepts_null),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
