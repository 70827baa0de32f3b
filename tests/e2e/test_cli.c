// SPDX-License-Identifier: MIT
/* heald's command line: --check-config errors as documented, --version, --help, missing privileges. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* Each bad config and the exact line heald must print for it ("@F" is the config path). */
static const struct bad_config {
	const char *name;
	const char *json;
	const char *line;
} bad_configs[] = {
	{ "unknown_key", "{\"targets\": [], \"colour\": 1}", "@F: colour: unknown key \"colour\"" },
	{ "wrong_type", "{\"targets\": [{\"name\": \"a\", \"match\": {\"comm\": \"a\"}, \"detect\": {\"crashes\": \"yes\"}}]}",
	  "@F: targets[0].detect.crashes: expected a boolean, got a string" },
	{ "unknown_syscall",
	  "{\"targets\": [{\"name\": \"a\", \"match\": {\"comm\": \"a\"}, \"detect\": {\"syscalls\": [{\"syscall\": \"opnat\"}]}}]}",
	  "@F: targets[0].detect.syscalls[0].syscall: unknown syscall \"opnat\"" },
	{ "unknown_errno",
	  "{\"targets\": [{\"name\": \"a\", \"match\": {\"comm\": \"a\"}, \"detect\": {\"syscalls\": [{\"errno\": [\"ENOENT\", \"ENOPE\"]}]}}]}",
	  "@F: targets[0].detect.syscalls[0].errno[1]: unknown errno \"ENOPE\"" },
	{ "missing_binary", "{\"targets\": [{\"name\": \"a\", \"exec\": [\"/nonexistent/shop\"]}]}",
	  "@F: targets[0].exec[0]: binary \"/nonexistent/shop\" does not exist" },
	{ "missing_symbol",
	  "{\"targets\": [{\"name\": \"a\", \"exec\": [\"@FAILGEN@\"], \"detect\": {\"api\": [{\"binary\": \"@FAILGEN@\","
	  " \"symbol\": \"handle_retrn\", \"fail_when\": \"ret >= 500\"}]}}]}",
	  "@F: targets[0].detect.api[0].symbol: symbol \"handle_retrn\" not found in @FAILGEN@" },
	{ "bad_predicate",
	  "{\"targets\": [{\"name\": \"a\", \"exec\": [\"@FAILGEN@\"], \"detect\": {\"api\": [{\"binary\": \"@FAILGEN@\","
	  " \"symbol\": \"failgen_handle_request\", \"fail_when\": \"ret => 500\"}]}}]}",
	  "@F: targets[0].detect.api[0].fail_when: bad predicate \"ret => 500\": expected one of >= > <= < == !=" },
	{ "missing_usdt",
	  "{\"targets\": [{\"name\": \"a\", \"exec\": [\"@FAILGEN@\"], \"detect\": {\"api\": [{\"binary\": \"@FAILGEN@\","
	  " \"usdt\": {\"provider\": \"failgen\", \"name\": \"nope\"}}]}}]}",
	  NULL /* checked by prefix below */ },
	{ "exec_and_match", "{\"targets\": [{\"name\": \"a\", \"exec\": [\"@FAILGEN@\"], \"match\": {\"comm\": \"a\"}}]}",
	  NULL },
	{ "bad_json", "{\"targets\": [", "@F: (json): invalid JSON at line 1, column 14: unexpected end of input" },
};

static char *subst(const char *s, const char *from, const char *to)
{
	size_t fl = strlen(from), tl = strlen(to);
	char *out = malloc(strlen(s) * (tl + 1) + 1), *o = out;

	while (*s) {
		if (strncmp(s, from, fl) == 0) {
			memcpy(o, to, tl);
			o += tl;
			s += fl;
		} else {
			*o++ = *s++;
		}
	}
	*o = 0;
	return out;
}

static int check(const char *json, char **out)
{
	char path[PATH_MAX + 32];
	char *body = subst(json, "@FAILGEN@", h_bin("failgen"));
	char *argv[] = { (char *)h_bin("heald"), "--check-config", path, NULL };
	FILE *f;

	snprintf(path, sizeof(path), "%s/heal.json", h_tmpdir());
	f = fopen(path, "w");
	fputs(body, f);
	fclose(f);
	free(body);
	return h_run(argv, out);
}

static void test_bad_configs(void)
{
	size_t i;

	for (i = 0; i < sizeof(bad_configs) / sizeof(bad_configs[0]); i++) {
		const struct bad_config *b = &bad_configs[i];
		char *out = NULL, *want, *want2;
		int st = check(b->json, &out);

		ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 2, b->name);
		if (b->line) {
			/* the path printed is the one checked: take it from the first line */
			char *colon = strchr(out, ':');
			char checked[PATH_MAX + 32];

			snprintf(checked, sizeof(checked), "%.*s", colon ? (int)(colon - out) : 0, out);
			want = subst(b->line, "@FAILGEN@", h_bin("failgen"));
			want2 = subst(want, "@F", checked);
			if (!ASSERT_TRUE(strstr(out, want2) != NULL, b->name))
				fprintf(stderr, "  got:  %s  want: %s\n", out, want2);
			free(want);
			free(want2);
		} else {
			ASSERT_TRUE(strlen(out) > 0, b->name);
		}
		free(out);
	}
}

static void test_missing_usdt_and_both(void)
{
	char *out = NULL;

	check(bad_configs[7].json, &out);
	ASSERT_TRUE(strstr(out, "targets[0].detect.api[0].usdt") != NULL, "missing USDT names its field");
	ASSERT_TRUE(strstr(out, "failgen:nope") != NULL, "missing USDT names the probe");
	free(out);
	check(bad_configs[8].json, &out);
	ASSERT_TRUE(strstr(out, "targets[0]") != NULL, "exec with match is refused");
	free(out);
}

static void test_every_problem_reported(void)
{
	char *out = NULL;
	int st, lines = 0;
	const char *p;

	st = check("{\"colour\": 1, \"targets\": [{\"name\": \"a\", \"match\": {\"comm\": \"a\"},"
		   " \"detect\": {\"crashs\": true, \"syscalls\": [{\"syscall\": \"opnat\", \"errno\": \"ENOPE\"}]}}]}",
		   &out);
	ASSERT_EQ(WEXITSTATUS(st), 2, "exit 2");
	for (p = out; *p; p++)
		lines += *p == '\n';
	ASSERT_EQ(lines, 4, "one line per problem, all of them");
	free(out);
}

static void test_valid_config_silent(void)
{
	char *out = NULL;
	int st;

	st = check("{\"state_dir\": \"/var/lib/heal\", \"targets\": [{\"name\": \"shop\", \"exec\": [\"@FAILGEN@\", \"ok\"],"
		   " \"detect\": {\"syscalls\": [{\"syscall\": [\"openat\", \"connect\"], \"errno\": [\"ENOENT\", \"ECONNREFUSED\"]}],"
		   " \"crashes\": true, \"exits\": true, \"oom\": true, \"api\": [{\"binary\": \"@FAILGEN@\","
		   " \"symbol\": \"failgen_handle_request\", \"fail_when\": \"ret >= 500\","
		   " \"capture_arg\": {\"index\": 2, \"type\": \"string\"}}]}},"
		   " {\"name\": \"nginx\", \"match\": {\"comm\": \"nginx\"}, \"detect\": {\"crashes\": true, \"exits\": true}}]}",
		   &out);
	ASSERT_EQ(st, 0, "valid config: exit 0");
	ASSERT_STREQ(out, "", "valid config: nothing printed");
	free(out);
}

static void test_version_help(void)
{
	char *argv_v[] = { (char *)h_bin("heald"), "--version", NULL };
	char *argv_h[] = { (char *)h_bin("heald"), "--help", NULL };
	char *argv_bad[] = { (char *)h_bin("heald"), "--frobnicate", NULL };
	char *out = NULL;

	ASSERT_EQ(h_run(argv_v, &out), 0, "--version exits 0");
	ASSERT_TRUE(strncmp(out, "heald ", 6) == 0, "--version names heald");
	free(out);
	ASSERT_EQ(h_run(argv_h, &out), 0, "--help exits 0");
	ASSERT_TRUE(strstr(out, "--check-config") && strstr(out, "--watch") && strstr(out, "Examples:"),
		    "--help lists flags and examples");
	free(out);
	ASSERT_EQ(WEXITSTATUS(h_run(argv_bad, &out)), 2, "unknown flag exits 2");
	free(out);
}

static void test_not_root(void)
{
	char cfg[PATH_MAX + 32];
	char *argv[] = { "/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
			 (char *)h_bin("heald"), "--config", cfg, NULL };
	char *out = NULL;
	FILE *f;
	int st;

	if (geteuid() != 0 || access("/usr/bin/setpriv", X_OK)) {
		h_skip("needs root and setpriv to drop to nobody");
		return;
	}
	/* outside the 0700 test directory, so nobody can read it */
	snprintf(cfg, sizeof(cfg), "/tmp/heal-test-nobody-%d.json", (int)getpid());
	f = fopen(cfg, "w");
	fputs("{\"state_dir\": \"/tmp\", \"targets\": [{\"name\": \"a\", \"match\": {\"comm\": \"a\"}}]}", f);
	fclose(f);
	chmod(cfg, 0644);
	st = h_run(argv, &out);
	unlink(cfg);
	ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) != 0, "fails as nobody");
	ASSERT_TRUE(strstr(out, "heald must run as root") != NULL, "says root is needed");
	free(out);
}

int main(void)
{
	h_subtest("check_config_each_error", test_bad_configs);
	h_subtest("check_config_usdt_and_exec_match", test_missing_usdt_and_both);
	h_subtest("check_config_every_problem", test_every_problem_reported);
	h_subtest("check_config_valid_silent", test_valid_config_silent);
	h_subtest("version_help_usage", test_version_help);
	h_subtest("not_root_says_so", test_not_root);
	return h_summary("test_cli");
}
