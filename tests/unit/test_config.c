// SPDX-License-Identifier: MIT
/* config: parsing heal.json, every documented problem, and the typed view it builds. */
#ifndef _GNU_SOURCE /* pkg-config --cflags may already define it */
#endif
#include <errno.h>
#include <fcntl.h>
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
#include <cmocka.h>

#include "heal/config.h"
#include "heal/names.h"

static struct heal_config *cfg;
static struct heal_config_errors errs;
static char self_exe[PATH_MAX];

/*
 * stapsdt notes as <sys/sdt.h> would emit them (the header is not installed
 * here): heal_test:probe1 without arguments, heal_test:two_args with two.
 */
#if __SIZEOF_POINTER__ == 8
#define SDT_ADDR ".8byte"
#else
#define SDT_ADDR ".4byte"
#endif
__attribute__((used, noinline)) static void usdt_site(void)
{
	__asm__ __volatile__("990: nop\n"
			     ".pushsection .note.stapsdt,\"\",\"note\"\n"
			     ".balign 4\n"
			     ".4byte 992f-991f, 994f-993f, 3\n"
			     "991: .asciz \"stapsdt\"\n"
			     "992: .balign 4\n"
			     "993: " SDT_ADDR " 990b\n" SDT_ADDR " 0\n" SDT_ADDR " 0\n"
			     ".asciz \"heal_test\"\n"
			     ".asciz \"probe1\"\n"
			     ".asciz \"\"\n"
			     "994: .balign 4\n"
			     ".popsection\n"
			     "995: nop\n"
			     ".pushsection .note.stapsdt,\"\",\"note\"\n"
			     ".balign 4\n"
			     ".4byte 997f-996f, 999f-998f, 3\n"
			     "996: .asciz \"stapsdt\"\n"
			     "997: .balign 4\n"
			     "998: " SDT_ADDR " 995b\n" SDT_ADDR " 0\n" SDT_ADDR " 0\n"
			     ".asciz \"heal_test\"\n"
			     ".asciz \"two_args\"\n"
			     ".asciz \"-4@%edi 8@%rsi\"\n"
			     "999: .balign 4\n"
			     ".popsection\n");
}

static void reset(void)
{
	config__free(cfg);
	cfg = NULL;
	config_errors__free(&errs);
}

static int teardown(void **state)
{
	reset();
	return 0;
}

/* Parse a config written with ' for " so the cases stay readable. */
static int parse(bool check_files, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int parse(bool check_files, const char *fmt, ...)
{
	char *json = NULL;
	va_list ap;
	int n, err;

	reset();
	va_start(ap, fmt);
	n = vasprintf(&json, fmt, ap);
	va_end(ap);
	assert_true(n >= 0);
	for (char *p = json; *p; p++) {
		if (*p == '\'')
			*p = '"';
	}
	err = config__parse(json, "test.json", check_files, &cfg, &errs);
	free(json);
	if (err == 0)
		assert_non_null(cfg);
	else
		assert_null(cfg);
	return err;
}

static void dump_problems(void)
{
	print_error("%zu problem(s):\n", errs.n);
	for (size_t i = 0; i < errs.n; i++)
		print_error("  [%zu] %s: %s\n", i, errs.v[i].field, errs.v[i].reason);
}

static void check_ok(int err, const char *file, int line)
{
	if (err == 0 && errs.n == 0)
		return;
	print_error("config__parse = %d, want 0\n", err);
	dump_problems();
	_fail(file, line);
}

static void check_problem(size_t at, const char *field, const char *reason, const char *file,
			  int line)
{
	for (size_t i = 0; i < errs.n; i++) {
		if (at != SIZE_MAX && i != at)
			continue;
		if (strcmp(errs.v[i].field, field) == 0 && strcmp(errs.v[i].reason, reason) == 0)
			return;
	}
	print_error("missing problem%s: %s: %s\n", at != SIZE_MAX ? " at that position" : "", field,
		    reason);
	dump_problems();
	_fail(file, line);
}

static void check_count(size_t n, const char *file, int line)
{
	if (errs.n == n)
		return;
	print_error("%zu problem(s), want %zu\n", errs.n, n);
	dump_problems();
	_fail(file, line);
}

#define assert_parse_ok(err) check_ok((err), __FILE__, __LINE__)
/* The problem is reported (somewhere in the list). */
#define assert_problem(field, reason) check_problem(SIZE_MAX, field, reason, __FILE__, __LINE__)
/* The problem is the i-th one reported. */
#define assert_problem_at(i, field, reason) check_problem(i, field, reason, __FILE__, __LINE__)
#define assert_problems(n) check_count(n, __FILE__, __LINE__)
/* Exactly one problem, this one. */
#define assert_only_problem(field, reason)                           \
	do {                                                         \
		check_count(1, __FILE__, __LINE__);                  \
		check_problem(0, field, reason, __FILE__, __LINE__); \
	} while (0)

/* One target around a detect block. */
#define WITH_DETECT(detect) \
	"{'targets': [{'name': 'a', 'exec': ['/bin/sh'], 'detect': " detect "}]}"
/* One target around an api rule. */
#define WITH_API(rule) WITH_DETECT("{'api': [" rule "]}")

/* ---- valid configs ---------------------------------------------------------- */

static void test_full_example(void **state)
{
	const struct heal_target *t;
	const struct heal_syscall_rule *r;
	const struct heal_api_rule *a;

	assert_parse_ok(parse(
		false,
		"{"
		" 'state_dir': '/var/lib/heal',"
		" 'targets': ["
		"  {"
		"   'name': 'shop',"
		"   'exec': ['/usr/local/bin/shop', '--config', '/etc/shop/shop.json'],"
		"   'cwd': '/', 'env': {'K': 'V', 'EMPTY': ''}, 'user': 'nobody',"
		"   'detect': {"
		"    'syscalls': [ { 'syscall': ['openat', 'connect'], 'errno': ['ENOENT', 'ECONNREFUSED'],"
		"                    'threshold': 5, 'window_ms': 1000 } ],"
		"    'crashes': true, 'exits': true, 'oom': true,"
		"    'api': [ { 'binary': '/usr/local/bin/shop', 'symbol': 'handle_return',"
		"               'fail_when': 'ret >= 500',"
		"               'capture_arg': { 'index': 1, 'type': 'string' } },"
		"             { 'binary': '/usr/local/bin/shop',"
		"               'usdt': {'provider': 'shop', 'name': 'request_failed'},"
		"               'fail_when': 'arg1 >= 500', 'capture_arg': {'index': 2, 'type': 'string'} } ]"
		"   }"
		"  },"
		"  { 'name': 'nginx', 'match': { 'exe': '/usr/sbin/nginx' },"
		"    'detect': { 'crashes': true, 'exits': true } }"
		" ]"
		"}"));

	assert_string_equal(cfg->path, "test.json");
	assert_string_equal(cfg->state_dir, "/var/lib/heal");
	assert_int_equal(cfg->n_targets, 2);

	t = &cfg->targets[0];
	assert_string_equal(t->name, "shop");
	assert_int_equal(t->id, 1);
	assert_int_equal(t->n_exec, 3);
	assert_string_equal(t->exec[0], "/usr/local/bin/shop");
	assert_string_equal(t->exec[1], "--config");
	assert_string_equal(t->exec[2], "/etc/shop/shop.json");
	assert_null(t->exec[3]);
	assert_string_equal(t->exec_path, "/usr/local/bin/shop");
	assert_string_equal(t->cwd, "/");
	assert_int_equal(t->n_env, 2);
	assert_string_equal(t->env[0], "K=V");
	assert_string_equal(t->env[1], "EMPTY=");
	assert_null(t->env[2]);
	assert_string_equal(t->user, "nobody");
	assert_false(t->has_match);
	assert_true(t->crashes);
	assert_true(t->exits);
	assert_true(t->oom);
	assert_int_equal(t->detect, HEAL_DETECT_SYSCALLS | HEAL_DETECT_CRASHES | HEAL_DETECT_EXITS |
					    HEAL_DETECT_OOM | HEAL_DETECT_API);

	assert_int_equal(t->n_syscall_rules, 1);
	r = &t->syscall_rules[0];
	assert_false(r->any_syscall);
	assert_int_equal(r->n_syscalls, 2);
	assert_int_equal(r->syscalls[0], names__syscall_nr("openat"));
	assert_int_equal(r->syscalls[1], names__syscall_nr("connect"));
	assert_false(r->any_errno);
	assert_int_equal(r->n_errnos, 2);
	assert_int_equal(r->errnos[0], ENOENT);
	assert_int_equal(r->errnos[1], ECONNREFUSED);
	assert_int_equal(r->threshold, 5);
	assert_int_equal(r->window_ms, 1000);

	assert_int_equal(t->n_api, 2);
	a = &t->api[0];
	assert_int_equal(a->id, 0);
	assert_int_equal(a->target_id, 1);
	assert_string_equal(a->binary, "/usr/local/bin/shop");
	assert_string_equal(a->symbol, "handle_return");
	assert_null(a->usdt_provider);
	assert_null(a->usdt_name);
	assert_int_equal(a->fail_when.op, HEAL_OP_GE);
	assert_int_equal(a->fail_when.arg, 0);
	assert_int_equal(a->fail_when.value, 500);
	assert_int_equal(a->ret_bits, 32);
	assert_int_equal(a->capture_kind, HEAL_ARG_STRING);
	assert_int_equal(a->capture_index, 1);

	a = &t->api[1];
	assert_int_equal(a->id, 1);
	assert_null(a->symbol);
	assert_string_equal(a->usdt_provider, "shop");
	assert_string_equal(a->usdt_name, "request_failed");
	assert_int_equal(a->fail_when.op, HEAL_OP_GE);
	assert_int_equal(a->fail_when.arg, 1);
	assert_int_equal(a->fail_when.value, 500);
	assert_int_equal(a->capture_kind, HEAL_ARG_STRING);
	assert_int_equal(a->capture_index, 2);

	t = &cfg->targets[1];
	assert_string_equal(t->name, "nginx");
	assert_int_equal(t->id, 2);
	assert_null(t->exec);
	assert_int_equal(t->n_exec, 0);
	assert_null(t->exec_path);
	assert_true(t->has_match);
	assert_string_equal(t->match.exe, "/usr/sbin/nginx");
	assert_null(t->match.comm);
	assert_null(t->match.pid_file);
	assert_null(t->match.cgroup);
	assert_int_equal(t->detect, HEAL_DETECT_CRASHES | HEAL_DETECT_EXITS);
	assert_int_equal(t->n_syscall_rules, 0);
	assert_int_equal(t->n_api, 0);
}

static void test_lookups(void **state)
{
	const struct heal_target *t = NULL;
	const struct heal_api_rule *a;

	assert_parse_ok(parse(
		false, "{'targets': ["
		       " {'name': 'a', 'exec': ['/bin/sh'], 'detect': {'api': ["
		       "   {'binary': '/bin/sh', 'symbol': 'f', 'fail_when': 'ret < 0'}]}},"
		       " {'name': 'b', 'match': {'comm': 'b'}, 'detect': {'api': ["
		       "   {'binary': '/bin/sh', 'symbol': 'g', 'fail_when': 'ret < 0'},"
		       "   {'binary': '/bin/sh', 'symbol': 'h', 'fail_when': 'ret < 0'}]}}]}"));
	assert_ptr_equal(config__target_by_id(cfg, 1), &cfg->targets[0]);
	assert_ptr_equal(config__target_by_id(cfg, 2), &cfg->targets[1]);
	assert_null(config__target_by_id(cfg, 0));
	assert_null(config__target_by_id(cfg, 3));
	assert_ptr_equal(config__target_by_name(cfg, "b"), &cfg->targets[1]);
	assert_null(config__target_by_name(cfg, "c"));

	/* Rule ids run across targets in file order: they key the api_specs map. */
	a = config__api_rule_by_id(cfg, 2, &t);
	assert_non_null(a);
	assert_string_equal(a->symbol, "h");
	assert_ptr_equal(t, &cfg->targets[1]);
	assert_int_equal(a->target_id, 2);
	a = config__api_rule_by_id(cfg, 0, NULL);
	assert_non_null(a);
	assert_string_equal(a->symbol, "f");
	assert_null(config__api_rule_by_id(cfg, 3, NULL));
}

static void test_defaults(void **state)
{
	const struct heal_target *t;
	const struct heal_syscall_rule *r;

	assert_parse_ok(parse(false, "{'targets': [{'name': 'a', 'exec': ['/bin/sh']}]}"));
	assert_string_equal(cfg->state_dir, HEAL_DEFAULT_STATE_DIR);
	assert_int_equal(cfg->samples_per_sec, 10);
	assert_int_equal(cfg->ringbuf_kb, 1024);
	assert_int_equal(cfg->rescan_ms, 2000);
	t = &cfg->targets[0];
	assert_int_equal(t->n_exec, 1);
	assert_null(t->exec[1]);
	assert_null(t->cwd);
	assert_null(t->env);
	assert_int_equal(t->n_env, 0);
	assert_null(t->user);
	/* Without a detect block a target is watched for crashes and exits. */
	assert_true(t->crashes);
	assert_true(t->exits);
	assert_false(t->oom);
	assert_int_equal(t->detect, HEAL_DETECT_CRASHES | HEAL_DETECT_EXITS);

	/* An explicit, empty detect block watches nothing. */
	assert_parse_ok(parse(false, WITH_DETECT("{}")));
	assert_int_equal(cfg->targets[0].detect, 0);
	assert_false(cfg->targets[0].crashes);

	assert_parse_ok(parse(false, WITH_DETECT("{'syscalls': [{'syscall': 'openat'}]}")));
	r = &cfg->targets[0].syscall_rules[0];
	assert_int_equal(r->threshold, 1);
	assert_int_equal(r->window_ms, 0);
	assert_true(r->any_errno);
	assert_int_equal(r->n_errnos, 0);

	assert_parse_ok(parse(
		false, WITH_API("{'binary': '/bin/sh', 'symbol': 'f', 'fail_when': 'ret < 0'}")));
	assert_int_equal(cfg->targets[0].api[0].ret_bits, 32);
	assert_int_equal(cfg->targets[0].api[0].capture_kind, HEAL_ARG_NONE);
	assert_int_equal(cfg->targets[0].api[0].capture_index, 0);

	/* No targets is a valid, if idle, agent. */
	assert_parse_ok(parse(false, "{'targets': []}"));
	assert_int_equal(cfg->n_targets, 0);
}

static void test_top_level_settings(void **state)
{
	assert_parse_ok(parse(false,
			      "{'state_dir': '/tmp/h', 'samples_per_sec': 100000, 'ringbuf_kb': 64,"
			      " 'rescan_ms': 100, 'targets': []}"));
	assert_string_equal(cfg->state_dir, "/tmp/h");
	assert_int_equal(cfg->samples_per_sec, 100000);
	assert_int_equal(cfg->ringbuf_kb, 64);
	assert_int_equal(cfg->rescan_ms, 100);

	assert_parse_ok(parse(false,
			      "{'samples_per_sec': 1, 'ringbuf_kb': 262144, 'rescan_ms': 3600000,"
			      " 'targets': []}"));
	assert_int_equal(cfg->samples_per_sec, 1);
	assert_int_equal(cfg->ringbuf_kb, 262144);
	assert_int_equal(cfg->rescan_ms, 3600000);
}

static void test_top_level_errors(void **state)
{
	assert_int_equal(parse(false, "{'samples_per_sec': 0, 'targets': []}"), -EINVAL);
	assert_only_problem("samples_per_sec", "must be at least 1, got 0");
	assert_int_equal(parse(false, "{'samples_per_sec': 100001, 'targets': []}"), -EINVAL);
	assert_only_problem("samples_per_sec", "must be at most 100000, got 100001");
	assert_int_equal(parse(false, "{'ringbuf_kb': 100, 'targets': []}"), -EINVAL);
	assert_only_problem("ringbuf_kb", "must be a power of two, got 100");
	assert_int_equal(parse(false, "{'ringbuf_kb': 32, 'targets': []}"), -EINVAL);
	assert_only_problem("ringbuf_kb", "must be at least 64, got 32");
	assert_int_equal(parse(false, "{'ringbuf_kb': 524288, 'targets': []}"), -EINVAL);
	assert_only_problem("ringbuf_kb", "must be at most 262144, got 524288");
	assert_int_equal(parse(false, "{'rescan_ms': 99, 'targets': []}"), -EINVAL);
	assert_only_problem("rescan_ms", "must be at least 100, got 99");
	assert_int_equal(parse(false, "{'rescan_ms': '2s', 'targets': []}"), -EINVAL);
	assert_only_problem("rescan_ms", "expected an integer, got a string");
	assert_int_equal(parse(false, "{'state_dir': 'heal', 'targets': []}"), -EINVAL);
	assert_only_problem("state_dir", "must be an absolute path, got \"heal\"");
	assert_int_equal(parse(false, "{'state_dir': 5, 'targets': []}"), -EINVAL);
	assert_only_problem("state_dir", "expected a string, got a number");
	assert_int_equal(parse(false, "{}"), -EINVAL);
	assert_only_problem("targets", "required key is missing");
	assert_int_equal(parse(false, "{'targets': {}}"), -EINVAL);
	assert_only_problem("targets", "expected an array, got an object");
	assert_int_equal(parse(false, "[]"), -EINVAL);
	assert_only_problem("(json)", "expected an object at the top level, got an array");
}

static void test_unknown_keys(void **state)
{
	assert_int_equal(parse(false, "{'stat_dir': '/x', 'targets': []}"), -EINVAL);
	assert_only_problem("stat_dir", "unknown key \"stat_dir\"");

	assert_int_equal(
		parse(false, "{'targets': [{'name': 'a', 'exec': ['/bin/sh'], 'nme': 1}]}"),
		-EINVAL);
	assert_only_problem("targets[0].nme", "unknown key \"nme\"");

	assert_int_equal(parse(false, WITH_DETECT("{'crashs': true}")), -EINVAL);
	assert_only_problem("targets[0].detect.crashs", "unknown key \"crashs\"");

	assert_int_equal(
		parse(false, WITH_DETECT("{'syscalls': [{'syscall': '*', 'errnos': 'ENOENT'}]}")),
		-EINVAL);
	assert_only_problem("targets[0].detect.syscalls[0].errnos", "unknown key \"errnos\"");

	assert_int_equal(
		parse(false, WITH_API("{'binary': '/bin/sh', 'symbol': 'f', 'fail_when': 'ret < 0',"
				      " 'capture_arg': {'index': 1, 'type': 'int', 'len': 5}}")),
		-EINVAL);
	assert_only_problem("targets[0].detect.api[0].capture_arg.len", "unknown key \"len\"");

	assert_int_equal(
		parse(false, WITH_API("{'binary': '/bin/sh', 'usdt': {'provider': 'p', 'name': 'n',"
				      " 'semaphore': true}}")),
		-EINVAL);
	assert_only_problem("targets[0].detect.api[0].usdt.semaphore", "unknown key \"semaphore\"");

	assert_int_equal(
		parse(false, "{'targets': [{'name': 'a', 'match': {'exe': '/bin/sh', 'uid': 0}}]}"),
		-EINVAL);
	assert_only_problem("targets[0].match.uid", "unknown key \"uid\"");
}

static void test_duplicate_key(void **state)
{
	assert_int_equal(
		parse(false, "{'targets': [{'name': 'a', 'name': 'b', 'exec': ['/bin/sh']}]}"),
		-EINVAL);
	assert_only_problem("targets[0].name", "duplicate key \"name\"");
}

static void test_wrong_types(void **state)
{
	assert_int_equal(parse(false, WITH_DETECT("{'crashes': 'yes'}")), -EINVAL);
	assert_only_problem("targets[0].detect.crashes", "expected a boolean, got a string");
	assert_int_equal(parse(false, WITH_DETECT("{'oom': null}")), -EINVAL);
	assert_only_problem("targets[0].detect.oom", "expected a boolean, got null");
	assert_int_equal(parse(false, WITH_DETECT("{'exits': 1}")), -EINVAL);
	assert_only_problem("targets[0].detect.exits", "expected a boolean, got a number");

	assert_int_equal(parse(false, WITH_DETECT("{'syscalls': [{'syscall': '*', 'threshold': '5',"
						  " 'window_ms': 10}]}")),
			 -EINVAL);
	assert_only_problem("targets[0].detect.syscalls[0].threshold",
			    "expected an integer, got a string");
	assert_int_equal(parse(false, WITH_DETECT("{'syscalls': [{'syscall': '*', 'threshold': 1.5,"
						  " 'window_ms': 10}]}")),
			 -EINVAL);
	assert_only_problem("targets[0].detect.syscalls[0].threshold",
			    "expected an integer, got 1.5");
	assert_int_equal(
		parse(false, WITH_DETECT("{'syscalls': [{'syscall': '*', 'window_ms': -1}]}")),
		-EINVAL);
	assert_only_problem("targets[0].detect.syscalls[0].window_ms",
			    "must be at least 0, got -1");

	assert_int_equal(parse(false, "{'targets': [5]}"), -EINVAL);
	assert_only_problem("targets[0]", "expected an object, got a number");
	assert_int_equal(parse(false, "{'targets': [{'name': 5, 'exec': ['/bin/sh']}]}"), -EINVAL);
	assert_only_problem("targets[0].name", "expected a string, got a number");
	assert_int_equal(parse(false, "{'targets': [{'name': 'a', 'exec': '/bin/sh'}]}"), -EINVAL);
	assert_only_problem("targets[0].exec", "expected an array, got a string");
	assert_int_equal(parse(false, "{'targets': [{'name': 'a', 'exec': ['/bin/sh', 5]}]}"),
			 -EINVAL);
	assert_only_problem("targets[0].exec[1]", "expected a string, got a number");
	assert_int_equal(
		parse(false, "{'targets': [{'name': 'a', 'exec': ['/bin/sh'], 'env': {'K': 1}}]}"),
		-EINVAL);
	assert_only_problem("targets[0].env.K", "expected a string, got a number");
	assert_int_equal(
		parse(false, "{'targets': [{'name': 'a', 'exec': ['/bin/sh'], 'env': ['K=V']}]}"),
		-EINVAL);
	assert_only_problem("targets[0].env", "expected an object, got an array");
	assert_int_equal(parse(false, WITH_DETECT("[]")), -EINVAL);
	assert_only_problem("targets[0].detect", "expected an object, got an array");
	assert_int_equal(parse(false, WITH_DETECT("{'syscalls': {}}")), -EINVAL);
	assert_only_problem("targets[0].detect.syscalls", "expected an array, got an object");
	assert_int_equal(parse(false, WITH_DETECT("{'syscalls': ['openat']}")), -EINVAL);
	assert_only_problem("targets[0].detect.syscalls[0]", "expected an object, got a string");
	assert_int_equal(parse(false, WITH_DETECT("{'api': 'x'}")), -EINVAL);
	assert_only_problem("targets[0].detect.api", "expected an array, got a string");
	assert_int_equal(parse(false, WITH_API("{'binary': '/bin/sh', 'usdt': 'p:n'}")), -EINVAL);
	assert_only_problem("targets[0].detect.api[0].usdt", "expected an object, got a string");
	assert_int_equal(
		parse(false, WITH_API("{'binary': '/bin/sh', 'symbol': 'f', 'fail_when': 500}")),
		-EINVAL);
	assert_only_problem("targets[0].detect.api[0].fail_when",
			    "expected a string, got a number");
	assert_int_equal(
		parse(false, WITH_API("{'binary': '/bin/sh', 'symbol': 'f', 'fail_when': 'ret < 0',"
				      " 'capture_arg': 1}")),
		-EINVAL);
	assert_only_problem("targets[0].detect.api[0].capture_arg",
			    "expected an object, got a number");
}

/* ---- syscall rules ---------------------------------------------------------- */

static void test_unknown_names(void **state)
{
	assert_int_equal(parse(false, WITH_DETECT("{'syscalls': [{'syscall': 'opnat'}]}")),
			 -EINVAL);
	assert_only_problem("targets[0].detect.syscalls[0].syscall", "unknown syscall \"opnat\"");

	assert_int_equal(
		parse(false, WITH_DETECT("{'syscalls': [{'syscall': ['openat', 'opnat']}]}")),
		-EINVAL);
	assert_only_problem("targets[0].detect.syscalls[0].syscall[1]",
			    "unknown syscall \"opnat\"");

	assert_int_equal(
		parse(false,
		      WITH_DETECT(
			      "{'syscalls': [{'syscall': 'openat'},"
			      " {'syscall': 'connect', 'errno': ['ECONNREFUSED', 'ENOENTT']}]}")),
		-EINVAL);
	assert_only_problem("targets[0].detect.syscalls[1].errno[1]", "unknown errno \"ENOENTT\"");

	assert_int_equal(parse(false, WITH_DETECT("{'syscalls': [{'errno': 'ENOENTT'}]}")),
			 -EINVAL);
	assert_only_problem("targets[0].detect.syscalls[0].errno", "unknown errno \"ENOENTT\"");

	assert_int_equal(parse(false, WITH_DETECT("{'syscalls': [{'syscall': []}]}")), -EINVAL);
	assert_only_problem("targets[0].detect.syscalls[0].syscall", "must not be empty");

	assert_int_equal(parse(false, WITH_DETECT("{'syscalls': [{'errno': 2}]}")), -EINVAL);
	assert_only_problem("targets[0].detect.syscalls[0].errno",
			    "expected a string or an array of strings, got a number");

	assert_int_equal(parse(false, WITH_DETECT("{'syscalls': [{'errno': [2]}]}")), -EINVAL);
	assert_only_problem("targets[0].detect.syscalls[0].errno[0]",
			    "expected a string, got a number");
}

static void test_wildcards(void **state)
{
	const struct heal_syscall_rule *r;

	assert_parse_ok(
		parse(false, WITH_DETECT("{'syscalls': [{'syscall': '*', 'errno': 'EMFILE'}]}")));
	r = &cfg->targets[0].syscall_rules[0];
	assert_true(r->any_syscall);
	assert_int_equal(r->n_syscalls, 0);
	assert_false(r->any_errno);
	assert_int_equal(r->n_errnos, 1);
	assert_int_equal(r->errnos[0], EMFILE);

	/* "*" in a list swallows the rest. */
	assert_parse_ok(parse(
		false,
		WITH_DETECT("{'syscalls': [{'syscall': 'openat', 'errno': ['ENOENT', '*']}]}")));
	r = &cfg->targets[0].syscall_rules[0];
	assert_false(r->any_syscall);
	assert_int_equal(r->n_syscalls, 1);
	assert_true(r->any_errno);
	assert_int_equal(r->n_errnos, 0);

	/* A missing errno means any errno; a missing syscall means any syscall. */
	assert_parse_ok(parse(false, WITH_DETECT("{'syscalls': [{'errno': 'ENOSPC'}]}")));
	r = &cfg->targets[0].syscall_rules[0];
	assert_true(r->any_syscall);
	assert_false(r->any_errno);
	assert_int_equal(r->errnos[0], ENOSPC);

	/* ...but a rule must say something. */
	assert_int_equal(parse(false, WITH_DETECT("{'syscalls': [{'threshold': 1}]}")), -EINVAL);
	assert_only_problem("targets[0].detect.syscalls[0]",
			    "needs \"syscall\" or \"errno\" (use \"*\" for any)");

	/* Repeats collapse; aliases resolve to the canonical number. */
	assert_parse_ok(parse(false, WITH_DETECT("{'syscalls': [{'syscall': ['openat', 'openat'],"
						 " 'errno': ['EAGAIN', 'EWOULDBLOCK']}]}")));
	r = &cfg->targets[0].syscall_rules[0];
	assert_int_equal(r->n_syscalls, 1);
	assert_int_equal(r->n_errnos, 1);
	assert_int_equal(r->errnos[0], EAGAIN);
}

static void test_threshold_window(void **state)
{
	assert_parse_ok(parse(
		false,
		WITH_DETECT("{'syscalls': [{'syscall': '*', 'threshold': 1, 'window_ms': 0}]}")));
	assert_int_equal(
		parse(false, WITH_DETECT("{'syscalls': [{'syscall': '*', 'threshold': 0}]}")),
		-EINVAL);
	assert_only_problem("targets[0].detect.syscalls[0].threshold", "must be at least 1, got 0");
	assert_int_equal(
		parse(false, WITH_DETECT("{'syscalls': [{'syscall': '*', 'threshold': 5}]}")),
		-EINVAL);
	assert_only_problem("targets[0].detect.syscalls[0].window_ms",
			    "required key is missing: \"threshold\" 5 needs a window");
	assert_int_equal(
		parse(false,
		      WITH_DETECT(
			      "{'syscalls': [{'syscall': '*', 'threshold': 5, 'window_ms': 0}]}")),
		-EINVAL);
	assert_only_problem("targets[0].detect.syscalls[0].window_ms",
			    "must be above 0 when \"threshold\" is above 1");
	assert_int_equal(
		parse(false, WITH_DETECT("{'syscalls': [{'syscall': '*', 'threshold': 4294967296,"
					 " 'window_ms': 1}]}")),
		-EINVAL);
	assert_only_problem("targets[0].detect.syscalls[0].threshold",
			    "must be at most 4294967295, got 4294967296");
}

/* ---- targets ---------------------------------------------------------------- */

static void test_exec_and_match(void **state)
{
	assert_int_equal(
		parse(false,
		      "{'targets': [{'name': 'a', 'exec': ['/bin/sh'], 'match': {'comm': 'sh'}}]}"),
		-EINVAL);
	assert_only_problem("targets[0]", "has both \"exec\" and \"match\"; use one");

	assert_int_equal(parse(false, "{'targets': [{'name': 'a'}]}"), -EINVAL);
	assert_only_problem("targets[0]", "needs one of \"exec\" (run it) or \"match\" (watch it)");

	assert_int_equal(parse(false,
			       "{'targets': [{'name': 'a', 'match': {'comm': 'sh'}, 'cwd': '/',"
			       " 'env': {}, 'user': 'root'}]}"),
			 -EINVAL);
	assert_problems(3);
	assert_problem_at(0, "targets[0].cwd", "only allowed with \"exec\"");
	assert_problem_at(1, "targets[0].env", "only allowed with \"exec\"");
	assert_problem_at(2, "targets[0].user", "only allowed with \"exec\"");

	assert_int_equal(parse(false, "{'targets': [{'name': 'a', 'exec': []}]}"), -EINVAL);
	assert_only_problem("targets[0].exec",
			    "must not be empty: the first element is the program to run");
	assert_int_equal(parse(false, "{'targets': [{'name': 'a', 'exec': ['./shop']}]}"), -EINVAL);
	assert_only_problem("targets[0].exec[0]",
			    "must be an absolute path or a command found in PATH, got \"./shop\"");
	assert_int_equal(parse(false, "{'targets': [{'name': 'a', 'exec': ['']}]}"), -EINVAL);
	assert_only_problem("targets[0].exec[0]", "must not be empty");
	assert_int_equal(
		parse(false, "{'targets': [{'name': 'a', 'exec': ['/bin/sh'], 'cwd': 'tmp'}]}"),
		-EINVAL);
	assert_only_problem("targets[0].cwd", "must be an absolute path, got \"tmp\"");
}

/* "restart": supervision's policy and backoff for exec targets. */
static void test_restart(void **state)
{
	assert_int_equal(parse(false, "{'targets': [{'name': 'a', 'exec': ['/bin/sh']}]}"), 0);
	assert_int_equal(cfg->targets[0].restart.policy, HEAL_RESTART_ALWAYS);
	assert_int_equal(cfg->targets[0].restart.backoff_ms, 1000);
	assert_int_equal(cfg->targets[0].restart.max_backoff_ms, 30000);

	assert_int_equal(
	    parse(false, "{'targets': [{'name': 'a', 'exec': ['/bin/sh'], 'restart': 'never'}]}"),
	    0);
	assert_int_equal(cfg->targets[0].restart.policy, HEAL_RESTART_NEVER);

	assert_int_equal(
	    parse(false, "{'targets': [{'name': 'a', 'exec': ['/bin/sh'], 'restart':"
			 " {'policy': 'always', 'backoff_ms': 200, 'max_backoff_ms': 5000}}]}"),
	    0);
	assert_int_equal(cfg->targets[0].restart.policy, HEAL_RESTART_ALWAYS);
	assert_int_equal(cfg->targets[0].restart.backoff_ms, 200);
	assert_int_equal(cfg->targets[0].restart.max_backoff_ms, 5000);

	/* a first wait longer than the default cap raises the cap */
	assert_int_equal(parse(false, "{'targets': [{'name': 'a', 'exec': ['/bin/sh'],"
				      " 'restart': {'backoff_ms': 60000}}]}"),
			 0);
	assert_int_equal(cfg->targets[0].restart.max_backoff_ms, 60000);

	assert_int_equal(
	    parse(false,
		  "{'targets': [{'name': 'a', 'exec': ['/bin/sh'], 'restart': 'sometimes'}]}"),
	    -EINVAL);
	assert_only_problem("targets[0].restart",
			    "expected \"always\" or \"never\", got \"sometimes\"");
	assert_int_equal(
	    parse(false, "{'targets': [{'name': 'a', 'exec': ['/bin/sh'], 'restart': true}]}"),
	    -EINVAL);
	assert_only_problem("targets[0].restart",
			    "expected \"always\", \"never\" or an object, got a boolean");
	assert_int_equal(parse(false,
			       "{'targets': [{'name': 'a', 'exec': ['/bin/sh'], 'restart':"
			       " {'backoff_ms': 2000, 'max_backoff_ms': 1000, 'tries': 3}}]}"),
			 -EINVAL);
	assert_problems(2);
	assert_problem_at(0, "targets[0].restart.tries", "unknown key \"tries\"");
	assert_problem_at(1, "targets[0].restart.max_backoff_ms",
			  "must be at least backoff_ms (2000), got 1000");
	assert_int_equal(parse(false, "{'targets': [{'name': 'a', 'exec': ['/bin/sh'],"
				      " 'restart': {'policy': 'no'}}]}"),
			 -EINVAL);
	assert_only_problem("targets[0].restart.policy",
			    "expected \"always\" or \"never\", got \"no\"");
	assert_int_equal(
	    parse(false,
		  "{'targets': [{'name': 'a', 'match': {'comm': 'sh'}, 'restart': 'never'}]}"),
	    -EINVAL);
	assert_only_problem("targets[0].restart", "only allowed with \"exec\"");
}

static void test_exec_path_lookup(void **state)
{
	const char *old = getenv("PATH");
	char *saved = old ? strdup(old) : NULL;
	const char *p;

	/* Relative PATH entries are skipped: the result must not depend on heald's cwd. */
	setenv("PATH", ".:relative:/bin", 1);
	assert_parse_ok(parse(false, "{'targets': [{'name': 'a', 'exec': ['sh', '-c', 'true']}]}"));
	assert_string_equal(cfg->targets[0].exec_path, "/bin/sh");
	/* argv[0] stays what the user wrote. */
	assert_string_equal(cfg->targets[0].exec[0], "sh");

	setenv("PATH", "/usr/bin:/bin", 1);
	assert_parse_ok(parse(true, "{'targets': [{'name': 'a', 'exec': ['sh']}]}"));
	p = cfg->targets[0].exec_path;
	assert_true(p[0] == '/' && strlen(p) > 3 && strcmp(p + strlen(p) - 3, "/sh") == 0);

	assert_int_equal(
		parse(true, "{'targets': [{'name': 'a', 'exec': ['no-such-command-xyz']}]}"),
		-EINVAL);
	assert_only_problem("targets[0].exec[0]",
			    "command \"no-such-command-xyz\" not found in PATH");
	/* Without file checks the name is kept for the supervisor to resolve later. */
	assert_parse_ok(
		parse(false, "{'targets': [{'name': 'a', 'exec': ['no-such-command-xyz']}]}"));
	assert_string_equal(cfg->targets[0].exec_path, "no-such-command-xyz");

	if (saved)
		setenv("PATH", saved, 1);
	else
		unsetenv("PATH");
	free(saved);
}

static void test_target_names(void **state)
{
	assert_int_equal(parse(false, "{'targets': [{'exec': ['/bin/sh']}]}"), -EINVAL);
	assert_only_problem("targets[0].name", "required key is missing");
	assert_int_equal(parse(false, "{'targets': [{'name': '', 'exec': ['/bin/sh']}]}"), -EINVAL);
	assert_only_problem("targets[0].name", "must not be empty");
	assert_int_equal(parse(false, "{'targets': [{'name': 'my shop', 'exec': ['/bin/sh']}]}"),
			 -EINVAL);
	assert_only_problem("targets[0].name",
			    "bad name \"my shop\": use letters, digits, '_', '.', '-'");
	assert_int_equal(parse(false, "{'targets': [{'name': '0123456789abcdef0123456789abcdefX',"
				      " 'exec': ['/bin/sh']}]}"),
			 -EINVAL);
	assert_only_problem("targets[0].name", "must be at most 32 characters, got 33");
	assert_parse_ok(parse(false, "{'targets': [{'name': 'Shop_v1.2-blue0123456789abcdef01',"
				     " 'exec': ['/bin/sh']}]}"));

	assert_int_equal(parse(false, "{'targets': [{'name': 'a', 'exec': ['/bin/sh']},"
				      " {'name': 'b', 'exec': ['/bin/sh']},"
				      " {'name': 'a', 'match': {'comm': 'a'}}]}"),
			 -EINVAL);
	assert_only_problem("targets[2].name", "duplicate name \"a\" (also targets[0])");
}

static void test_match(void **state)
{
	const struct heal_match *m;

	assert_parse_ok(parse(false,
			      "{'targets': [{'name': 'a', 'match': {'exe': '/usr/sbin/nginx',"
			      " 'comm': 'nginx', 'pid_file': '/run/nginx.pid',"
			      " 'cgroup': 'system.slice/nginx.service'}}]}"));
	m = &cfg->targets[0].match;
	assert_true(cfg->targets[0].has_match);
	assert_string_equal(m->exe, "/usr/sbin/nginx");
	assert_string_equal(m->comm, "nginx");
	assert_string_equal(m->pid_file, "/run/nginx.pid");
	assert_string_equal(m->cgroup, "system.slice/nginx.service");

	assert_int_equal(parse(false, "{'targets': [{'name': 'a', 'match': {}}]}"), -EINVAL);
	assert_only_problem("targets[0].match",
			    "needs at least one of \"exe\", \"comm\", \"pid_file\", \"cgroup\"");
	/* 15 characters fit the kernel's comm, 16 do not. */
	assert_parse_ok(
		parse(false, "{'targets': [{'name': 'a', 'match': {'comm': '0123456789abcde'}}]}"));
	assert_int_equal(
		parse(false, "{'targets': [{'name': 'a', 'match': {'comm': '0123456789abcdef'}}]}"),
		-EINVAL);
	assert_only_problem("targets[0].match.comm",
			    "must be at most 15 characters (the kernel truncates comm), got 16");
	assert_int_equal(parse(false, "{'targets': [{'name': 'a', 'match': {'exe': 'nginx'}}]}"),
			 -EINVAL);
	assert_only_problem("targets[0].match.exe", "must be an absolute path, got \"nginx\"");
	assert_int_equal(
		parse(false, "{'targets': [{'name': 'a', 'match': {'pid_file': 'x.pid'}}]}"),
		-EINVAL);
	assert_only_problem("targets[0].match.pid_file", "must be an absolute path, got \"x.pid\"");
}

static void test_env(void **state)
{
	assert_int_equal(
		parse(false,
		      "{'targets': [{'name': 'a', 'exec': ['/bin/sh'], 'env': {'A=B': 'x', '': 'y',"
		      " 'OK': 'z'}}]}"),
		-EINVAL);
	assert_problems(2);
	assert_problem_at(0, "targets[0].env.A=B", "bad variable name \"A=B\"");
	assert_problem_at(1, "targets[0].env.", "bad variable name \"\"");

	assert_int_equal(
		parse(false,
		      "{'targets': [{'name': 'a', 'exec': ['/bin/sh'], 'env': {'K': '1', 'K': '2'}}]}"),
		-EINVAL);
	assert_only_problem("targets[0].env.K", "duplicate key \"K\"");
}

static void test_env_limit(void **state)
{
	char *json = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&json, &len);

	assert_non_null(f);
	fputs("{'targets': [{'name': 'a', 'exec': ['/bin/sh'], 'env': {", f);
	for (int i = 0; i <= 1024; i++)
		fprintf(f, "%s'V%d': 'x'", i ? ", " : "", i);
	fputs("}}]}", f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(parse(false, "%s", json), -EINVAL);
	assert_only_problem("targets[0].env", "too many variables: 1025, the limit is 1024");
	free(json);
}

/* A file of nonsense yields a bounded list, and says so. */
static void test_problem_cap(void **state)
{
	char *json = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&json, &len);

	assert_non_null(f);
	fputs("{'targets': []", f);
	for (int i = 0; i < 500; i++)
		fprintf(f, ", 'junk%d': %d", i, i);
	fputs("}", f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(parse(false, "%s", json), -EINVAL);
	assert_problems(201);
	assert_problem_at(0, "junk0", "unknown key \"junk0\"");
	assert_problem_at(199, "junk199", "unknown key \"junk199\"");
	assert_problem_at(200, "", "too many problems; only the first 200 are listed");
	free(json);
}

static void test_detect_flags(void **state)
{
	static const struct {
		const char *detect;
		uint32_t flags;
	} cases[] = {
		{ "{'syscalls': [{'syscall': '*'}]}", HEAL_DETECT_SYSCALLS },
		{ "{'syscalls': []}", 0 },
		{ "{'crashes': true}", HEAL_DETECT_CRASHES },
		{ "{'crashes': false, 'exits': true}", HEAL_DETECT_EXITS },
		{ "{'oom': true}", HEAL_DETECT_OOM },
		{ "{'api': [{'binary': '/bin/sh', 'usdt': {'provider': 'p', 'name': 'n'}}]}",
		  HEAL_DETECT_API },
		{ "{'api': []}", 0 },
		{ "{'syscalls': [{'errno': 'EMFILE'}], 'oom': true, 'exits': true}",
		  HEAL_DETECT_SYSCALLS | HEAL_DETECT_OOM | HEAL_DETECT_EXITS },
	};
	char json[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(json, sizeof(json), WITH_DETECT("%s"), cases[i].detect);
		assert_parse_ok(parse(false, "%s", json));
		if (cfg->targets[0].detect != cases[i].flags)
			fail_msg("%s: detect 0x%x, want 0x%x", cases[i].detect,
				 cfg->targets[0].detect, cases[i].flags);
	}
}

/* ---- api rules -------------------------------------------------------------- */

static void test_api_predicates(void **state)
{
	const struct heal_api_rule *a;

	assert_int_equal(
		parse(false,
		      WITH_API("{'binary': '/bin/sh', 'symbol': 'f', 'fail_when': 'ret >> 5'}")),
		-EINVAL);
	assert_only_problem("targets[0].detect.api[0].fail_when",
			    "bad predicate \"ret >> 5\": expected one of >= > <= < == !=");

	assert_int_equal(parse(false, WITH_API("{'binary': '/bin/sh', 'symbol': 'f'}")), -EINVAL);
	assert_only_problem(
		"targets[0].detect.api[0].fail_when",
		"required key is missing: \"symbol\" rules need a predicate such as \"ret < 0\"");

	assert_int_equal(
		parse(false,
		      WITH_API("{'binary': '/bin/sh', 'symbol': 'f', 'fail_when': 'arg1 != 0'}")),
		-EINVAL);
	assert_only_problem("targets[0].detect.api[0].fail_when",
			    "bad predicate \"arg1 != 0\": \"symbol\" rules can only test ret");

	assert_int_equal(
		parse(false,
		      WITH_API("{'binary': '/bin/sh', 'usdt': {'provider': 'p', 'name': 'n'},"
			       " 'fail_when': 'ret < 0'}")),
		-EINVAL);
	assert_only_problem(
		"targets[0].detect.api[0].fail_when",
		"bad predicate \"ret < 0\": USDT rules test an argument (arg1..arg12), not ret");

	/* USDT without a predicate fires on every hit. */
	assert_parse_ok(parse(
		false, WITH_API("{'binary': '/bin/sh', 'usdt': {'provider': 'p', 'name': 'n'}}")));
	a = &cfg->targets[0].api[0];
	assert_int_equal(a->fail_when.op, HEAL_OP_NONE);
	assert_true(predicate__eval(&a->fail_when, 0));

	assert_parse_ok(parse(
		false, WITH_API("{'binary': '/bin/sh', 'usdt': {'provider': 'p', 'name': 'n'},"
				" 'fail_when': 'arg12 == -1'}")));
	a = &cfg->targets[0].api[0];
	assert_int_equal(a->fail_when.arg, 12);
	assert_int_equal(a->fail_when.value, -1);

	/* An int return cannot hold the value: the comparison would be constant. */
	assert_int_equal(
		parse(false,
		      WITH_API(
			      "{'binary': '/bin/sh', 'symbol': 'f', 'fail_when': 'ret == 0x100000000'}")),
		-EINVAL);
	assert_only_problem(
		"targets[0].detect.api[0].fail_when",
		"bad predicate \"ret == 0x100000000\": 4294967296 does not fit an int return value;"
		" set \"ret_type\": \"long\"");
	assert_parse_ok(parse(
		false,
		WITH_API("{'binary': '/bin/sh', 'symbol': 'f', 'fail_when': 'ret == 0x100000000',"
			 " 'ret_type': 'long'}")));
	assert_int_equal(cfg->targets[0].api[0].ret_bits, 64);
	assert_parse_ok(parse(
		false,
		WITH_API("{'binary': '/bin/sh', 'symbol': 'f', 'fail_when': 'ret < -2147483648',"
			 " 'ret_type': 'int'}")));
	assert_int_equal(cfg->targets[0].api[0].ret_bits, 32);
}

static void test_api_shape(void **state)
{
	assert_int_equal(
		parse(false,
		      WITH_API("{'binary': '/bin/sh', 'symbol': 'f', 'usdt': {'provider': 'p',"
			       " 'name': 'n'}, 'fail_when': 'arg1 > 0'}")),
		-EINVAL);
	assert_only_problem("targets[0].detect.api[0]",
			    "has both \"symbol\" and \"usdt\"; use one");
	assert_int_equal(parse(false, WITH_API("{'binary': '/bin/sh', 'fail_when': 'ret < 0'}")),
			 -EINVAL);
	assert_only_problem("targets[0].detect.api[0]", "needs one of \"symbol\" or \"usdt\"");
	assert_int_equal(parse(false, WITH_API("{'symbol': 'f', 'fail_when': 'ret < 0'}")),
			 -EINVAL);
	assert_only_problem("targets[0].detect.api[0].binary", "required key is missing");
	assert_int_equal(
		parse(false, WITH_API("{'binary': 'shop', 'symbol': 'f', 'fail_when': 'ret < 0'}")),
		-EINVAL);
	assert_only_problem("targets[0].detect.api[0].binary",
			    "must be an absolute path, got \"shop\"");
	assert_int_equal(parse(false, WITH_API("{'binary': '/bin/sh', 'usdt': {'provider': 'p'}}")),
			 -EINVAL);
	assert_only_problem("targets[0].detect.api[0].usdt.name", "required key is missing");
	assert_int_equal(
		parse(false,
		      WITH_API("{'binary': '/bin/sh', 'symbol': '', 'fail_when': 'ret < 0'}")),
		-EINVAL);
	assert_only_problem("targets[0].detect.api[0].symbol", "must not be empty");

	assert_int_equal(
		parse(false, WITH_API("{'binary': '/bin/sh', 'symbol': 'f', 'fail_when': 'ret < 0',"
				      " 'ret_type': 'short'}")),
		-EINVAL);
	assert_only_problem("targets[0].detect.api[0].ret_type",
			    "expected \"int\" or \"long\", got \"short\"");
	assert_int_equal(
		parse(false,
		      WITH_API("{'binary': '/bin/sh', 'usdt': {'provider': 'p', 'name': 'n'},"
			       " 'ret_type': 'long'}")),
		-EINVAL);
	assert_only_problem("targets[0].detect.api[0].ret_type",
			    "only for \"symbol\" rules: a USDT probe has no return value");
}

static void test_api_capture(void **state)
{
	const struct heal_api_rule *a;

	assert_parse_ok(
		parse(false, WITH_API("{'binary': '/bin/sh', 'symbol': 'f', 'fail_when': 'ret < 0',"
				      " 'capture_arg': {'index': 6, 'type': 'int'}}")));
	a = &cfg->targets[0].api[0];
	assert_int_equal(a->capture_kind, HEAL_ARG_INT);
	assert_int_equal(a->capture_index, 6);

	assert_int_equal(
		parse(false, WITH_API("{'binary': '/bin/sh', 'symbol': 'f', 'fail_when': 'ret < 0',"
				      " 'capture_arg': {'index': 7, 'type': 'int'}}")),
		-EINVAL);
	assert_only_problem("targets[0].detect.api[0].capture_arg.index",
			    "must be at most 6 for \"symbol\" rules, got 7");
	assert_int_equal(
		parse(false, WITH_API("{'binary': '/bin/sh', 'symbol': 'f', 'fail_when': 'ret < 0',"
				      " 'capture_arg': {'index': 0, 'type': 'int'}}")),
		-EINVAL);
	assert_only_problem("targets[0].detect.api[0].capture_arg.index",
			    "must be at least 1, got 0");

	assert_parse_ok(parse(
		false, WITH_API("{'binary': '/bin/sh', 'usdt': {'provider': 'p', 'name': 'n'},"
				" 'capture_arg': {'index': 12, 'type': 'string'}}")));
	assert_int_equal(cfg->targets[0].api[0].capture_index, 12);
	assert_int_equal(
		parse(false,
		      WITH_API("{'binary': '/bin/sh', 'usdt': {'provider': 'p', 'name': 'n'},"
			       " 'capture_arg': {'index': 13, 'type': 'string'}}")),
		-EINVAL);
	assert_only_problem("targets[0].detect.api[0].capture_arg.index",
			    "must be at most 12 for USDT rules, got 13");

	assert_int_equal(
		parse(false, WITH_API("{'binary': '/bin/sh', 'symbol': 'f', 'fail_when': 'ret < 0',"
				      " 'capture_arg': {'index': 1, 'type': 'str'}}")),
		-EINVAL);
	assert_only_problem("targets[0].detect.api[0].capture_arg.type",
			    "expected \"int\" or \"string\", got \"str\"");
	assert_int_equal(
		parse(false, WITH_API("{'binary': '/bin/sh', 'symbol': 'f', 'fail_when': 'ret < 0',"
				      " 'capture_arg': {'index': 1}}")),
		-EINVAL);
	assert_only_problem("targets[0].detect.api[0].capture_arg.type", "required key is missing");
}

static void test_limits(void **state)
{
	char *json = NULL;
	size_t len = 0;
	FILE *f;

	/* HEAL_TARGET_MAX + 1 targets. */
	f = open_memstream(&json, &len);
	assert_non_null(f);
	fputs("{'targets': [", f);
	for (int i = 0; i <= HEAL_TARGET_MAX; i++)
		fprintf(f, "%s{'name': 't%d', 'match': {'comm': 'c'}}", i ? ", " : "", i);
	fputs("]}", f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(parse(false, "%s", json), -EINVAL);
	assert_only_problem("targets", "too many targets: 65, the limit is 64");
	free(json);

	/* HEAL_API_MAX + 1 api rules over two targets: the first rule past the limit is named. */
	json = NULL;
	f = open_memstream(&json, &len);
	assert_non_null(f);
	fputs("{'targets': [{'name': 'a', 'match': {'comm': 'a'}, 'detect': {'api': [", f);
	for (int i = 0; i < HEAL_API_MAX / 2; i++)
		fprintf(f, "%s{'binary': '/bin/sh', 'usdt': {'provider': 'p', 'name': 'n%d'}}",
			i ? ", " : "", i);
	fputs("]}}, {'name': 'b', 'match': {'comm': 'b'}, 'detect': {'api': [", f);
	for (int i = 0; i <= HEAL_API_MAX / 2; i++)
		fprintf(f, "%s{'binary': '/bin/sh', 'usdt': {'provider': 'p', 'name': 'n%d'}}",
			i ? ", " : "", i);
	fputs("]}}]}", f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(parse(false, "%s", json), -EINVAL);
	assert_only_problem("targets[1].detect.api[32]",
			    "too many api rules: the limit is 64 across all targets");
	free(json);
}

/* ---- files ------------------------------------------------------------------ */

static void test_check_files_binaries(void **state)
{
	char tmpfile[] = "/tmp/heal-test-config-XXXXXX";
	int fd;

	assert_int_equal(parse(true, "{'targets': [{'name': 'a', 'exec': ['/nope/shop']}]}"),
			 -EINVAL);
	assert_only_problem("targets[0].exec[0]", "binary \"/nope/shop\" does not exist");
	/* The same config is fine when files are not checked. */
	assert_parse_ok(parse(false, "{'targets': [{'name': 'a', 'exec': ['/nope/shop']}]}"));

	assert_int_equal(parse(true, "{'targets': [{'name': 'a', 'exec': ['/tmp']}]}"), -EINVAL);
	assert_only_problem("targets[0].exec[0]", "binary \"/tmp\" is not a regular file");

	fd = mkstemp(tmpfile);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(chmod(tmpfile, 0644), 0);
	assert_int_equal(parse(true, "{'targets': [{'name': 'a', 'exec': ['%s']}]}", tmpfile),
			 -EINVAL);
	if (errs.n == 1) {
		char want[128];

		snprintf(want, sizeof(want), "binary \"%s\" is not executable", tmpfile);
		assert_only_problem("targets[0].exec[0]", want);
	}
	unlink(tmpfile);

	assert_int_equal(
		parse(true, "{'targets': [{'name': 'a', 'match': {'exe': '/nope/nginx'}}]}"),
		-EINVAL);
	assert_only_problem("targets[0].match.exe", "binary \"/nope/nginx\" does not exist");
	assert_parse_ok(parse(true, "{'targets': [{'name': 'a', 'match': {'exe': '/bin/sh'}}]}"));

	assert_int_equal(
		parse(true,
		      "{'targets': [{'name': 'a', 'exec': ['/bin/sh'], 'cwd': '/nope/dir'}]}"),
		-EINVAL);
	assert_only_problem("targets[0].cwd", "directory \"/nope/dir\" does not exist");

	assert_int_equal(
		parse(true,
		      "{'targets': [{'name': 'a', 'exec': ['/bin/sh'], 'user': 'no_such_user_xyz'}]}"),
		-EINVAL);
	assert_only_problem("targets[0].user", "unknown user \"no_such_user_xyz\"");
	assert_parse_ok(
		parse(true, "{'targets': [{'name': 'a', 'exec': ['/bin/sh'], 'user': 'root'}]}"));
	assert_parse_ok(
		parse(true, "{'targets': [{'name': 'a', 'exec': ['/bin/sh'], 'user': '65534'}]}"));

	assert_int_equal(
		parse(true,
		      WITH_API("{'binary': '/nope/shop', 'symbol': 'f', 'fail_when': 'ret < 0'}")),
		-EINVAL);
	assert_only_problem("targets[0].detect.api[0].binary",
			    "binary \"/nope/shop\" does not exist");
	assert_int_equal(
		parse(true,
		      WITH_API("{'binary': '/etc/passwd', 'symbol': 'f', 'fail_when': 'ret < 0'}")),
		-EINVAL);
	assert_only_problem("targets[0].detect.api[0].symbol",
			    "binary \"/etc/passwd\" is not an ELF file");
}

static void test_check_files_symbols(void **state)
{
	char want[PATH_MAX + 64];

	assert_parse_ok(
		parse(true, WITH_API("{'binary': '%s', 'symbol': 'main', 'fail_when': 'ret != 0'}"),
		      self_exe));

	assert_int_equal(parse(true,
			       WITH_API("{'binary': '%s', 'symbol': 'no_such_symbol_xyz',"
					" 'fail_when': 'ret != 0'}"),
			       self_exe),
			 -EINVAL);
	snprintf(want, sizeof(want), "symbol \"no_such_symbol_xyz\" not found in %s", self_exe);
	assert_only_problem("targets[0].detect.api[0].symbol", want);

	/* An import is in .dynsym but its code is not in this file: no uprobe there. */
	assert_int_equal(parse(true,
			       WITH_API("{'binary': '%s', 'symbol': 'cJSON_ParseWithOpts',"
					" 'fail_when': 'ret != 0'}"),
			       self_exe),
			 -EINVAL);
	snprintf(want, sizeof(want), "symbol \"cJSON_ParseWithOpts\" not found in %s", self_exe);
	assert_only_problem("targets[0].detect.api[0].symbol", want);

	/* A data object is not a function. */
	assert_int_equal(parse(true,
			       WITH_API("{'binary': '%s', 'symbol': 'self_exe',"
					" 'fail_when': 'ret != 0'}"),
			       self_exe),
			 -EINVAL);
}

static void test_check_files_usdt(void **state)
{
	char want[PATH_MAX + 64];

	usdt_site();
	assert_parse_ok(parse(
		true,
		WITH_API("{'binary': '%s', 'usdt': {'provider': 'heal_test', 'name': 'probe1'}}"),
		self_exe));
	assert_int_equal(
		parse(true,
		      WITH_API(
			      "{'binary': '%s', 'usdt': {'provider': 'heal_test', 'name': 'probe2'}}"),
		      self_exe),
		-EINVAL);
	snprintf(want, sizeof(want), "USDT probe heal_test:probe2 not found in %s", self_exe);
	assert_only_problem("targets[0].detect.api[0].usdt", want);

	assert_int_equal(
		parse(true,
		      WITH_API(
			      "{'binary': '/bin/sh', 'usdt': {'provider': 'shop', 'name': 'request_failed'}}")),
		-EINVAL);
	assert_only_problem("targets[0].detect.api[0].usdt",
			    "USDT probe shop:request_failed not found in /bin/sh");

	/* Arguments named by the predicate and the capture must exist in the note. */
	assert_parse_ok(parse(
		true,
		WITH_API(
			"{'binary': '%s', 'usdt': {'provider': 'heal_test', 'name': 'two_args'},"
			" 'fail_when': 'arg2 >= 500', 'capture_arg': {'index': 1, 'type': 'int'}}"),
		self_exe));
	assert_int_equal(
		parse(true,
		      WITH_API(
			      "{'binary': '%s', 'usdt': {'provider': 'heal_test', 'name': 'two_args'},"
			      " 'fail_when': 'arg3 >= 500', 'capture_arg': {'index': 3, 'type': 'string'}}"),
		      self_exe),
		-EINVAL);
	assert_problems(2);
	assert_problem_at(
		0, "targets[0].detect.api[0].fail_when",
		"bad predicate \"arg3 >= 500\": USDT probe heal_test:two_args has 2 argument(s)");
	assert_problem_at(
		1, "targets[0].detect.api[0].capture_arg.index",
		"argument 3 asked for, but USDT probe heal_test:two_args has 2 argument(s)");
	assert_int_equal(
		parse(true,
		      WITH_API(
			      "{'binary': '%s', 'usdt': {'provider': 'heal_test', 'name': 'probe1'},"
			      " 'fail_when': 'arg1 != 0'}"),
		      self_exe),
		-EINVAL);
	assert_only_problem(
		"targets[0].detect.api[0].fail_when",
		"bad predicate \"arg1 != 0\": USDT probe heal_test:probe1 has 0 argument(s)");
}

/* ---- whole-file behaviour --------------------------------------------------- */

static void test_multiple_errors(void **state)
{
	assert_int_equal(
		parse(false,
		      "{"
		      " 'stat_dir': '/x',"
		      " 'targets': ["
		      "  {'name': 'shop', 'exec': ['/bin/sh'], 'detect': {"
		      "   'crashs': true,"
		      "   'syscalls': [{'syscall': ['openat', 'connect']},"
		      "                {'syscall': 'opnat', 'errno': ['ENOENT', 'ENOENTT']}],"
		      "   'api': [{'binary': '/bin/sh', 'symbol': 'handle_return', 'fail_when': 'ret >> 5'}]}},"
		      "  {'name': 'shop', 'match': {'exe': '/usr/sbin/nginx'}, 'detect': {'exits': 'yes'}}"
		      " ]"
		      "}"),
		-EINVAL);
	assert_problems(7);
	assert_problem_at(0, "stat_dir", "unknown key \"stat_dir\"");
	assert_problem_at(1, "targets[0].detect.crashs", "unknown key \"crashs\"");
	assert_problem_at(2, "targets[0].detect.syscalls[1].syscall", "unknown syscall \"opnat\"");
	assert_problem_at(3, "targets[0].detect.syscalls[1].errno[1]", "unknown errno \"ENOENTT\"");
	assert_problem_at(4, "targets[0].detect.api[0].fail_when",
			  "bad predicate \"ret >> 5\": expected one of >= > <= < == !=");
	assert_problem_at(5, "targets[1].name", "duplicate name \"shop\" (also targets[0])");
	assert_problem_at(6, "targets[1].detect.exits", "expected a boolean, got a string");
}

static void test_json_syntax(void **state)
{
	const char *why;

	assert_int_equal(parse(false, "{\n  'targets': [\n    {'name': 'a',, }\n  ]\n}"), -EINVAL);
	assert_problems(1);
	assert_string_equal(errs.v[0].field, "(json)");
	why = errs.v[0].reason;
	if (strncmp(why, "invalid JSON at line 3, column ", 31) != 0)
		fail_msg("reason \"%s\" does not point at line 3", why);

	assert_int_equal(parse(false, "%s", ""), -EINVAL);
	assert_only_problem("(json)", "invalid JSON at line 1, column 1: unexpected end of input");
	assert_int_equal(parse(false, "{'targets': []"), -EINVAL);
	assert_problems(1);
	assert_string_equal(errs.v[0].field, "(json)");
	assert_int_equal(parse(false, "{'targets': []} x"), -EINVAL);
	assert_only_problem("(json)", "invalid JSON at line 1, column 17, near \"x\"");
}

static void test_load(void **state)
{
	char path[] = "/tmp/heal-test-config-XXXXXX";
	static const char json[] = "{\"targets\": [{\"name\": \"a\", \"exec\": [\"/bin/sh\"]}]}";
	int fd;

	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, json, sizeof(json) - 1), (ssize_t)(sizeof(json) - 1));
	close(fd);

	reset();
	assert_int_equal(config__load(path, true, &cfg, &errs), 0);
	assert_string_equal(cfg->path, path);
	assert_string_equal(cfg->targets[0].name, "a");
	config__free(cfg);
	cfg = NULL;

	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "{\"targets\": 1}", 14), 14);
	close(fd);
	assert_int_equal(config__load(path, false, &cfg, &errs), -EINVAL);
	assert_null(cfg);
	assert_only_problem("targets", "expected an array, got a number");
	unlink(path);

	reset();
	assert_int_equal(config__load("/nope/heal.json", false, &cfg, &errs), -ENOENT);
	assert_int_equal(errs.n, 0);
	assert_int_equal(config__load("/tmp", false, &cfg, &errs), -EISDIR);
	assert_null(cfg);
}

static void test_null_safety(void **state)
{
	struct heal_config *c = (struct heal_config *)0x1;

	config__free(NULL);
	config_errors__free(NULL);
	assert_null(config__target_by_id(NULL, 1));
	assert_null(config__target_by_name(NULL, "a"));
	assert_null(config__api_rule_by_id(NULL, 0, NULL));
	assert_int_equal(config__parse(NULL, NULL, false, &c, NULL), -EINVAL);
	assert_null(c);
	/* Without an error list problems are still counted. */
	assert_int_equal(config__parse("{\"targets\": 1}", NULL, false, &c, NULL), -EINVAL);
	assert_null(c);
	assert_int_equal(config__parse("{\"targets\": []}", NULL, false, &c, NULL), 0);
	assert_non_null(c);
	assert_null(c->path);
	config__free(c);
}

static int setup_group(void **state)
{
	ssize_t n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);

	if (n < 0)
		return -1;
	self_exe[n] = '\0';
	return 0;
}

#define T(f) cmocka_unit_test_teardown(f, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_full_example),
		T(test_lookups),
		T(test_defaults),
		T(test_top_level_settings),
		T(test_top_level_errors),
		T(test_unknown_keys),
		T(test_duplicate_key),
		T(test_wrong_types),
		T(test_unknown_names),
		T(test_wildcards),
		T(test_threshold_window),
		T(test_exec_and_match),
		T(test_restart),
		T(test_exec_path_lookup),
		T(test_target_names),
		T(test_match),
		T(test_env),
		T(test_env_limit),
		T(test_problem_cap),
		T(test_detect_flags),
		T(test_api_predicates),
		T(test_api_shape),
		T(test_api_capture),
		T(test_limits),
		T(test_check_files_binaries),
		T(test_check_files_symbols),
		T(test_check_files_usdt),
		T(test_multiple_errors),
		T(test_json_syntax),
		T(test_load),
		T(test_null_safety),
	};

	return cmocka_run_group_tests(tests, setup_group, NULL);
}
