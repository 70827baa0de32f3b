// SPDX-License-Identifier: MIT
/* metrics: exposition text, escaping, histograms, validation, cardinality bound, collectors,
 * promtool. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "heal/metrics.h"

#define L(...) ((const char *const[]){__VA_ARGS__})

static const char *const no_labels[] = {NULL};

/*
 * Run `promtool check metrics` on text: 1 when it passes, 0 when it fails
 * (its complaints printed), -1 when promtool is not installed.
 */
static int promtool_check(const char *text)
{
	char path[] = "/tmp/heal-test-metrics-XXXXXX", cmd[256];
	FILE *fp;
	int fd, st;

	if (system("command -v promtool >/dev/null 2>&1") != 0)
		return -1;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	fp = fdopen(fd, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
	st = system(cmd);
	unlink(path);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void assert_promtool(const char *text)
{
	int ok = promtool_check(text);

	if (ok < 0) {
		printf("# skipped promtool check: promtool not installed (apt-get install "
		       "prometheus)\n");
		return;
	}
	if (!ok)
		printf("%s", text);
	assert_int_equal(ok, 1);
}

static void test_render_exact(void **state)
{
	static const double b[] = {0.5, 1, 2.5};
	const struct metrics_desc dc = {.name = "heal_failures_total",
					.help = "Failures detected.",
					.type = METRICS_COUNTER,
					.labels = L("target", "type", NULL)};
	const struct metrics_desc dg = {
	    .name = "heal_open_traces", .help = "Open traces.", .type = METRICS_GAUGE};
	const struct metrics_desc dh = {.name = "heal_duration_seconds",
					.help = "Heal duration.",
					.type = METRICS_HISTOGRAM,
					.labels = L("outcome", NULL),
					.buckets = b,
					.n_buckets = 3};
	struct metrics_family *c, *g, *h;
	struct metrics *m = metrics__new();
	char *text;

	assert_non_null(m);
	assert_int_equal(metrics__register(m, &dc, &c), 0);
	assert_int_equal(metrics__register(m, &dg, &g), 0);
	assert_int_equal(metrics__register(m, &dh, &h), 0);
	metrics__counter_inc(c, L("shop", "CRASH"));
	metrics__counter_add(c, L("shop", "CRASH"), 2);
	metrics__counter_inc(c, L("nginx", "EXIT"));
	metrics__counter_add(c, L("nginx", "EXIT"), -5); /* ignored */
	metrics__gauge_set(g, NULL, 3);
	metrics__gauge_add(g, no_labels, -1.5);
	metrics__observe(h, L("healed"), 0.5); /* le is inclusive */
	metrics__observe(h, L("healed"), 2);
	metrics__observe(h, L("healed"), 100);
	metrics__observe(h, L("healed"), NAN); /* ignored */
	/* wrong type: ignored */
	metrics__observe(c, L("shop", "CRASH"), 1);
	metrics__gauge_set(c, L("shop", "CRASH"), 100);

	text = metrics__render(m);
	assert_non_null(text);
	assert_string_equal(
	    text,
	    "# HELP heal_duration_seconds Heal duration.\n"
	    "# TYPE heal_duration_seconds histogram\n"
	    "heal_duration_seconds_bucket{outcome=\"healed\",le=\"0.5\"} 1\n"
	    "heal_duration_seconds_bucket{outcome=\"healed\",le=\"1\"} 1\n"
	    "heal_duration_seconds_bucket{outcome=\"healed\",le=\"2.5\"} 2\n"
	    "heal_duration_seconds_bucket{outcome=\"healed\",le=\"+Inf\"} 3\n"
	    "heal_duration_seconds_sum{outcome=\"healed\"} 102.5\n"
	    "heal_duration_seconds_count{outcome=\"healed\"} 3\n"
	    "# HELP heal_failures_total Failures detected.\n"
	    "# TYPE heal_failures_total counter\n"
	    "heal_failures_total{target=\"shop\",type=\"CRASH\"} 3\n"
	    "heal_failures_total{target=\"nginx\",type=\"EXIT\"} 1\n"
	    "# HELP heal_metrics_series_overflow_total Updates folded into a family's \"other\" "
	    "series because it reached its series limit.\n"
	    "# TYPE heal_metrics_series_overflow_total counter\n"
	    "heal_metrics_series_overflow_total{family=\"heal_duration_seconds\"} 0\n"
	    "heal_metrics_series_overflow_total{family=\"heal_failures_total\"} 0\n"
	    "# HELP heal_open_traces Open traces.\n"
	    "# TYPE heal_open_traces gauge\n"
	    "heal_open_traces 1.5\n");
	assert_promtool(text);
	free(text);
	metrics__free(m);
	metrics__free(NULL);
}

static void test_escaping_and_values(void **state)
{
	const struct metrics_desc d = {.name = "heal_things",
				       .help = "Help with a \\ backslash\nand a newline.",
				       .type = METRICS_GAUGE,
				       .labels = L("v", NULL)};
	struct metrics_family *f;
	struct metrics *m = metrics__new();
	char *text, big[300];

	assert_non_null(m);
	assert_int_equal(metrics__register(m, &d, &f), 0);
	metrics__gauge_set(f, L("a\"b\\c\nd"), 1);
	metrics__gauge_set(f, L(NULL), 0.1); /* NULL is "" */
	metrics__gauge_set(f, L("bad\xff\xfeutf8 \xc3\xa9"),
			   INFINITY); /* invalid bytes become '?' */
	metrics__gauge_set(f, L("neg"), -INFINITY);
	metrics__gauge_set(f, L("tiny"), 1e-300);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	metrics__gauge_set(f, L(big), 7); /* cut to METRICS_LABEL_VALUE_MAX */
	metrics__gauge_add(f, L(big), 1); /* and found again */
	text = metrics__render(m);
	assert_non_null(text);
	assert_non_null(
	    strstr(text, "# HELP heal_things Help with a \\\\ backslash\\nand a newline.\n"));
	assert_non_null(strstr(text, "heal_things{v=\"a\\\"b\\\\c\\nd\"} 1\n"));
	assert_non_null(strstr(text, "heal_things{v=\"\"} 0.1\n"));
	assert_non_null(strstr(text, "heal_things{v=\"bad??utf8 \xc3\xa9\"} +Inf\n"));
	assert_non_null(strstr(text, "heal_things{v=\"neg\"} -Inf\n"));
	assert_non_null(strstr(text, "heal_things{v=\"tiny\"} 1e-300\n"));
	memset(big + METRICS_LABEL_VALUE_MAX, 0, sizeof(big) - METRICS_LABEL_VALUE_MAX);
	{
		char want[400];

		snprintf(want, sizeof(want), "heal_things{v=\"%s\"} 8\n", big);
		assert_non_null(strstr(text, want));
	}
	assert_promtool(text);
	free(text);
	metrics__free(m);
}

static void test_validation(void **state)
{
	static const double unsorted[] = {1, 0.5};
	static const double inf[] = {1, INFINITY};
	struct metrics *m = metrics__new();
	struct metrics_family *f;
	struct metrics_desc d;

#define BAD(...)                                                                                   \
	do {                                                                                       \
		d = (struct metrics_desc){__VA_ARGS__};                                            \
		assert_int_equal(metrics__register(m, &d, &f), -EINVAL);                           \
	} while (0)
	assert_non_null(m);
	BAD(.name = "9lives_total", .help = "h", .type = METRICS_COUNTER);
	BAD(.name = "a-b_total", .help = "h", .type = METRICS_COUNTER);
	BAD(.name = "", .help = "h", .type = METRICS_GAUGE);
	BAD(.name = NULL, .help = "h", .type = METRICS_GAUGE);
	BAD(.name = "heal_x_total", .help = "", .type = METRICS_COUNTER);
	BAD(.name = "heal_x_total", .help = NULL, .type = METRICS_COUNTER);
	BAD(.name = "heal_x", .help = "a counter without _total", .type = METRICS_COUNTER);
	BAD(.name = "heal_x_total", .help = "a gauge with _total", .type = METRICS_GAUGE);
	BAD(.name = "heal_x_count", .help = "h", .type = METRICS_GAUGE);
	BAD(.name = "heal_x_sum", .help = "h", .type = METRICS_HISTOGRAM);
	BAD(.name = "heal_x", .help = "h", .type = (enum metrics_type)7);
	BAD(.name = "heal_x", .help = "h", .type = METRICS_GAUGE, .labels = L("__reserved", NULL));
	BAD(.name = "heal_x", .help = "h", .type = METRICS_GAUGE, .labels = L("a:b", NULL));
	BAD(.name = "heal_x", .help = "h", .type = METRICS_GAUGE, .labels = L("a", "a", NULL));
	BAD(.name = "heal_x", .help = "h", .type = METRICS_GAUGE,
	    .labels = L("a", "b", "c", "d", "e", "f", "g", "h", "i", NULL));
	BAD(.name = "heal_x", .help = "h", .type = METRICS_HISTOGRAM, .labels = L("le", NULL));
	BAD(.name = "heal_x", .help = "h", .type = METRICS_HISTOGRAM, .buckets = unsorted,
	    .n_buckets = 2);
	BAD(.name = "heal_x", .help = "h", .type = METRICS_HISTOGRAM, .buckets = inf,
	    .n_buckets = 2);
	BAD(.name = "heal_x", .help = "h", .type = METRICS_HISTOGRAM, .buckets = inf,
	    .n_buckets = 0);
#undef BAD
	d = (struct metrics_desc){
	    .name = "heal:x", .help = "h", .type = METRICS_GAUGE, .labels = L("le", NULL)};
	assert_int_equal(metrics__register(m, &d, &f), 0);
	assert_int_equal(metrics__register(m, &d, &f), -EEXIST);
	d.name = "heal_metrics_series_overflow_total";
	d.type = METRICS_COUNTER;
	assert_int_equal(metrics__register(m, &d, &f), -EEXIST);
	assert_int_equal(metrics__register(NULL, &d, &f), -EINVAL);
	/* NULL families are ignored */
	metrics__counter_inc(NULL, NULL);
	metrics__observe(NULL, NULL, 1);
	assert_int_equal(metrics__overflowed(NULL), 0);
	metrics__free(m);
}

static void test_default_buckets(void **state)
{
	const struct metrics_desc d = {.name = "heal_heal_duration_seconds",
				       .help = "Time from detection to outcome.",
				       .type = METRICS_HISTOGRAM,
				       .labels = L("outcome", "playbook", NULL)};
	struct metrics *m = metrics__new();
	struct metrics_family *f;
	char *text;

	assert_non_null(m);
	assert_int_equal(metrics__register(m, &d, &f), 0);
	/* no series yet: left out (but for its overflow count) */
	text = metrics__render(m);
	assert_non_null(text);
	assert_null(strstr(text, "# TYPE heal_heal_duration_seconds"));
	assert_non_null(strstr(text, "{family=\"heal_heal_duration_seconds\"} 0\n"));
	free(text);
	metrics__observe(f, L("healed", "json_set"), 0.05);
	metrics__observe(f, L("healed", "json_set"), 45);
	metrics__observe(f, L("healed", "json_set"), 1000);
	text = metrics__render(m);
	assert_non_null(text);
	assert_non_null(strstr(text, "{outcome=\"healed\",playbook=\"json_set\",le=\"0.1\"} 1\n"));
	assert_non_null(strstr(text, "{outcome=\"healed\",playbook=\"json_set\",le=\"0.25\"} 1\n"));
	assert_non_null(strstr(text, "{outcome=\"healed\",playbook=\"json_set\",le=\"30\"} 1\n"));
	assert_non_null(strstr(text, "{outcome=\"healed\",playbook=\"json_set\",le=\"60\"} 2\n"));
	assert_non_null(strstr(text, "{outcome=\"healed\",playbook=\"json_set\",le=\"120\"} 2\n"));
	assert_non_null(strstr(text, "{outcome=\"healed\",playbook=\"json_set\",le=\"+Inf\"} 3\n"));
	assert_non_null(strstr(
	    text,
	    "heal_heal_duration_seconds_sum{outcome=\"healed\",playbook=\"json_set\"} 1045.05\n"));
	assert_promtool(text);
	free(text);
	metrics__free(m);
}

static void test_cardinality_bound(void **state)
{
	const struct metrics_desc d = {.name = "heal_syscall_failures_total",
				       .help = "In-kernel failure counts.",
				       .type = METRICS_COUNTER,
				       .labels = L("target", "errno", NULL),
				       .max_series = 3};
	const struct metrics_desc dh = {.name = "heal_rca_seconds",
					.help = "RCA time.",
					.type = METRICS_HISTOGRAM,
					.labels = L("outcome", NULL),
					.max_series = 1};
	struct metrics *m = metrics__new();
	struct metrics_family *f, *h;
	char pid[16], *text, *p;
	int i, lines = 0;

	assert_non_null(m);
	assert_int_equal(metrics__register(m, &d, &f), 0);
	assert_int_equal(metrics__register(m, &dh, &h), 0);
	for (i = 0; i < 1000; i++) {
		snprintf(pid, sizeof(pid), "%d",
			 i); /* what a careless caller might put in a label */
		metrics__counter_inc(f, L(pid, "ENOENT"));
	}
	/* known series still update */
	metrics__counter_inc(f, L("0", "ENOENT"));
	metrics__observe(h, L("ok"), 1);
	metrics__observe(h, L("timeout"), 1);
	metrics__observe(h, L("error"), 1);
	assert_int_equal(metrics__overflowed(f), 997);
	assert_int_equal(metrics__overflowed(h), 2);
	text = metrics__render(m);
	assert_non_null(text);
	for (p = text; (p = strstr(p, "\nheal_syscall_failures_total{")); p++)
		lines++;
	assert_int_equal(lines, 4); /* 3 series + other */
	assert_non_null(
	    strstr(text, "heal_syscall_failures_total{target=\"0\",errno=\"ENOENT\"} 2\n"));
	assert_non_null(
	    strstr(text, "heal_syscall_failures_total{target=\"other\",errno=\"other\"} 997\n"));
	assert_non_null(strstr(text, "heal_rca_seconds_count{outcome=\"other\"} 2\n"));
	assert_non_null(strstr(
	    text,
	    "heal_metrics_series_overflow_total{family=\"heal_syscall_failures_total\"} 997\n"));
	assert_non_null(
	    strstr(text, "heal_metrics_series_overflow_total{family=\"heal_rca_seconds\"} 2\n"));
	assert_promtool(text);
	free(text);
	metrics__free(m);
}

/* A real series whose values are all "other" is the overflow series: no duplicate label sets. */
static void test_other_not_duplicated(void **state)
{
	const struct metrics_desc d = {.name = "heal_x_total",
				       .help = "h",
				       .type = METRICS_COUNTER,
				       .labels = L("target", NULL),
				       .max_series = 2};
	struct metrics *m = metrics__new();
	struct metrics_family *f;
	char *text, *p;
	int n = 0;

	assert_non_null(m);
	assert_int_equal(metrics__register(m, &d, &f), 0);
	metrics__counter_inc(f, L("other"));
	metrics__counter_inc(f, L("a"));
	metrics__counter_inc(f, L("b"));
	metrics__counter_inc(f, L("c"));
	text = metrics__render(m);
	assert_non_null(text);
	for (p = text; (p = strstr(p, "heal_x_total{target=\"other\"}")); p++)
		n++;
	assert_int_equal(n, 1);
	assert_non_null(strstr(text, "heal_x_total{target=\"other\"} 3\n"));
	assert_promtool(text);
	free(text);
	metrics__free(m);
}

struct coll_ctx {
	struct metrics_family *up;
	int calls;
};

static void refresh(struct metrics *m, void *ctx)
{
	struct coll_ctx *c = ctx;

	c->calls++;
	metrics__gauge_set(c->up, NULL, c->calls);
}

static void test_collectors_and_process(void **state)
{
	const struct metrics_desc d = {
	    .name = "heal_up", .help = "heald is running.", .type = METRICS_GAUGE};
	struct metrics *m = metrics__new();
	struct coll_ctx c = {0};
	char *text;
	int i;

	assert_non_null(m);
	assert_int_equal(metrics__register(m, &d, &c.up), 0);
	assert_int_equal(metrics__add_collector(m, refresh, &c), 0);
	assert_int_equal(metrics__add_collector(m, NULL, &c), -EINVAL);
	for (i = 0; i < 6; i++)
		assert_int_equal(metrics__add_collector(m, refresh, &c), 0);
	assert_int_equal(metrics__register_process(m), 0); /* the 8th collector */
	assert_int_equal(metrics__register_process(m), -EEXIST);
	assert_int_equal(metrics__add_collector(m, refresh, &c), -ENOSPC);
	text = metrics__render(m);
	assert_non_null(text);
	assert_int_equal(c.calls, 7);
	assert_non_null(strstr(text, "heal_up 7\n"));
	assert_non_null(strstr(text, "# TYPE process_cpu_seconds_total counter\n"));
	assert_non_null(strstr(text, "\nprocess_resident_memory_bytes "));
	assert_non_null(strstr(text, "\nprocess_virtual_memory_bytes "));
	assert_non_null(strstr(text, "\nprocess_open_fds "));
	assert_non_null(strstr(text, "\nprocess_max_fds "));
	assert_non_null(strstr(text, "\nprocess_start_time_seconds 1"));
	assert_null(strstr(text, "process_resident_memory_bytes 0\n"));
	assert_promtool(text);
	free(text);
	metrics__free(m);
}

/* -- updates from threads while another renders ------------------------------------------------ */

struct hammer {
	struct metrics_family *c, *h;
	int id;
};

static void *hammer_main(void *p)
{
	struct hammer *hm = p;
	char t[16];
	int i;

	snprintf(t, sizeof(t), "t%d", hm->id);
	for (i = 0; i < 20000; i++) {
		metrics__counter_inc(hm->c, L(t));
		metrics__observe(hm->h, L(t), (double)(i % 200));
	}
	return NULL;
}

static void test_threads(void **state)
{
	const struct metrics_desc dc = {
	    .name = "heal_c_total", .help = "h", .type = METRICS_COUNTER, .labels = L("t", NULL)};
	const struct metrics_desc dh = {.name = "heal_h_seconds",
					.help = "h",
					.type = METRICS_HISTOGRAM,
					.labels = L("t", NULL)};
	struct metrics *m = metrics__new();
	struct metrics_family *fc, *fh;
	struct hammer hm[3];
	pthread_t th[3];
	char *text;
	int i;

	assert_non_null(m);
	assert_int_equal(metrics__register(m, &dc, &fc), 0);
	assert_int_equal(metrics__register(m, &dh, &fh), 0);
	for (i = 0; i < 3; i++) {
		hm[i] = (struct hammer){.c = fc, .h = fh, .id = i};
		assert_int_equal(pthread_create(&th[i], NULL, hammer_main, &hm[i]), 0);
	}
	for (i = 0; i < 50; i++)
		free(metrics__render(m));
	for (i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	text = metrics__render(m);
	assert_non_null(text);
	assert_non_null(strstr(text, "heal_c_total{t=\"t0\"} 20000\n"));
	assert_non_null(strstr(text, "heal_c_total{t=\"t2\"} 20000\n"));
	assert_non_null(strstr(text, "heal_h_seconds_count{t=\"t1\"} 20000\n"));
	assert_non_null(strstr(text, "heal_h_seconds_bucket{t=\"t1\",le=\"+Inf\"} 20000\n"));
	free(text);
	metrics__free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_render_exact),
	    cmocka_unit_test(test_escaping_and_values),
	    cmocka_unit_test(test_validation),
	    cmocka_unit_test(test_default_buckets),
	    cmocka_unit_test(test_cardinality_bound),
	    cmocka_unit_test(test_other_not_duplicated),
	    cmocka_unit_test(test_collectors_and_process),
	    cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
