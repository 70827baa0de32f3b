// SPDX-License-Identifier: MIT
/*
 * End to end: supervision. The demo shop's main process is killed with
 * SIGSEGV while no heal can bring it back (mode observe, the rate limit
 * spent, a heal waiting for a person): heald restarts it itself after the
 * backoff, says so with TARGET_RESTARTED and counts it; a heal that does
 * restart it is not raced, even when it takes longer than the backoff;
 * "restart": "never" leaves it down.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shopenv.h"
#include "../lib/llm_mock.c"

#define WAIT_MS 5000

static int api_port;

/* The nth (1-based) TARGET_RESTARTED event, waiting up to ms for it; NULL if it did not come. */
static cJSON *nth_restart(struct shop *s, int n, int ms)
{
	long deadline = h_now_ms() + ms;
	size_t i;
	int seen = 0;

	while (h_heald_count(&s->h, "TARGET_RESTARTED") < n && h_now_ms() < deadline)
		h_heald_drain(&s->h, 20);
	for (i = 0; i < s->h.n_events; i++) {
		const char *type =
		    cJSON_GetStringValue(cJSON_GetObjectItem(s->h.events[i], "type"));

		if (type && !strcmp(type, "TARGET_RESTARTED") && ++seen == n)
			return s->h.events[i];
	}
	return NULL;
}

/* The shop under heald with its API on a free port; top: more top-level keys, each with a comma. */
static bool start(struct shop *s, const char *top, const char *shop_extra, const char *limits)
{
	char all[1024];
	struct shop_opts o = {.top = all, .shop_extra = shop_extra, .limits = limits};

	api_port = h_free_port();
	snprintf(all, sizeof(all), "\"listen\": \"127.0.0.1:%d\", %s", api_port, top);
	return shop_start_opts(s, &o);
}

/* The value of heal_target_restarts_total for target, or -1. */
static double restarts_metric(const char *target)
{
	char url[128], series[128], *out = NULL, *p;
	char *argv[] = {"/usr/bin/curl", "-s", "-m", "5", url, NULL};
	double v = -1;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", api_port);
	snprintf(series, sizeof(series), "\nheal_target_restarts_total{target=\"%s\"} ", target);
	if (h_run(argv, &out) == 0 && out && (p = strstr(out, series)))
		v = atof(p + strlen(series));
	free(out);
	return v;
}

/* Kill the shop the way a bug would; its pid, 0 when none ran. */
static pid_t segv_shop(struct shop *s)
{
	pid_t pid = shop_pid(s);

	if (pid > 0)
		kill(pid, SIGSEGV);
	return pid;
}

/* mode observe: nothing heals, supervision restarts it after the backoff, doubling to the cap. */
static void test_observe(void)
{
	struct shop s;
	pid_t first, second;
	long t0;
	cJSON *ev;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(start(&s, "\"mode\": \"observe\",",
			       "\"restart\": {\"backoff_ms\": 400, \"max_backoff_ms\": 600},",
			       NULL),
			 "shop up under heald"))
		goto out;
	t0 = h_now_ms();
	first = segv_shop(&s);
	ASSERT_GE(first, 1, "the shop ran");
	ev = nth_restart(&s, 1, WAIT_MS);
	if (ASSERT_OK_PTR(ev, "TARGET_RESTARTED")) {
		ASSERT_GE(h_now_ms() - t0, 400, "not before the backoff");
		ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(ev, "key")),
			     "shop:TARGET_RESTARTED", "key");
		ASSERT_TRUE(cJSON_IsNull(cJSON_GetObjectItem(ev, "trace_id")), "no heal involved");
		ASSERT_STREQ(h_str(ev, "target"), "shop", "target");
		ASSERT_EQ(h_num(ev, "previous_pid"), first, "previous_pid: the one killed");
		ASSERT_STREQ(h_str(ev, "signal"), "SIGSEGV", "signal");
		ASSERT_EQ(h_num(ev, "attempt"), 1, "attempt");
		ASSERT_EQ(h_num(ev, "backoff_ms"), 400, "backoff_ms");
		ASSERT_GE(h_num(ev, "down_ms"), 400, "down_ms");
		ASSERT_TRUE(shop_wait_up(&s), "the shop answers again");
		ASSERT_EQ(h_num(ev, "pid"), shop_pid(&s), "pid: the shop that runs now");
		ASSERT_EQ(h_http(s.port, "GET", "/catalog", NULL), 200, "it serves");
	}
	/* symbolizing the stack may take longer than the backoff on a busy host */
	ev = h_heald_wait(&s.h, "CRASH", NULL, WAIT_MS);
	if (ASSERT_OK_PTR(ev, "the crash was seen"))
		ASSERT_TRUE(cJSON_IsNull(cJSON_GetObjectItem(ev, "trace_id")),
			    "observe: not healed");

	/* dead again soon after: the backoff doubles, up to max_backoff_ms */
	second = segv_shop(&s);
	ASSERT_GE(second, 1, "the restarted shop ran");
	ev = nth_restart(&s, 2, WAIT_MS);
	if (ASSERT_OK_PTR(ev, "second TARGET_RESTARTED")) {
		ASSERT_EQ(h_num(ev, "previous_pid"), second, "previous_pid");
		ASSERT_EQ(h_num(ev, "attempt"), 2, "attempt 2");
		ASSERT_EQ(h_num(ev, "backoff_ms"), 600, "400 doubled, capped at 600");
		ASSERT_TRUE(shop_wait_up(&s), "the shop answers again");
	}
	ASSERT_EQ(restarts_metric("shop"), 2, "heal_target_restarts_total{target=\"shop\"}");
	ASSERT_EQ(restarts_metric("payments"), 0, "payments: from 0");
out:
	shop_stop(&s);
}

/*
 * The first crash is healed (the heal's restart brings the shop back, supervision stays out);
 * the second hits heals_per_hour: not healed, and supervision restarts it.
 */
static void test_rate_limited(void)
{
	char trace[64];
	struct shop s;
	cJSON *end, *ev;
	pid_t pid;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(start(&s, "", "\"restart\": {\"backoff_ms\": 300},",
			       "{\"backoff_ms\": 200, \"heals_per_hour\": 1}"),
			 "shop up under heald"))
		goto out;
	ASSERT_GE(segv_shop(&s), 1, "the shop ran");
	end = shop_wait_outcome(&s, "CRASH", trace, sizeof(trace));
	if (ASSERT_OK_PTR(end, "the heal ended")) {
		ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(end, "type")), "HEALED",
			     "healed");
		ASSERT_STREQ(h_str(end, "playbook"), "restart", "by a restart");
	}
	ASSERT_EQ(h_heald_count(&s.h, "TARGET_RESTARTED"), 0,
		  "the heal restarted it, not supervision");

	pid = segv_shop(&s);
	ASSERT_GE(pid, 1, "the healed shop ran");
	ev = nth_restart(&s, 1, WAIT_MS);
	if (ASSERT_OK_PTR(ev, "TARGET_RESTARTED after the rate limit")) {
		ASSERT_EQ(h_num(ev, "previous_pid"), pid, "previous_pid");
		ASSERT_STREQ(h_str(ev, "signal"), "SIGSEGV", "signal");
		/* the healed crash a moment before counts: this is a second quick death */
		ASSERT_EQ(h_num(ev, "attempt"), 2, "attempt");
		ASSERT_EQ(h_num(ev, "backoff_ms"), 600, "backoff_ms doubled");
		ASSERT_TRUE(shop_wait_up(&s), "the shop answers again");
		ASSERT_EQ(h_http(s.port, "GET", "/catalog", NULL), 200, "it serves");
	}
	ASSERT_EQ(h_heald_count(&s.h, "RCA_READY"), 1, "the second crash was not healed");
	ASSERT_EQ(restarts_metric("shop"), 1, "heal_target_restarts_total{target=\"shop\"}");
out:
	shop_stop(&s);
}

/* A heal slower than the backoff (its LLM takes 1.5 s) brings the shop back itself: no race. */
static void test_slow_heal_wins(void)
{
	char top[512], trace[64], steps[1024];
	struct llm_mock *m;
	struct shop s;
	cJSON *end;
	int i;

	if (!h_need_bpf())
		return;
	m = llm_mock__start();
	if (!ASSERT_OK_PTR(m, "LLM mock up"))
		return;
	setenv("HEAL_TEST_KEY", "sk-ant-test-KEY0123456789abcdefXYZ", 1); /* heald inherits it */
	snprintf(top, sizeof(top),
		 "\"llm\": {\"provider\": \"anthropic\", \"base_url\": \"%s\", \"model\": \"m\","
		 " \"api_key_env\": \"HEAL_TEST_KEY\", \"timeout_ms\": 5000, \"max_retries\": 0},",
		 llm_mock__url(m));
	/* a crash with no change to undo: the playbooks are not sure (restart, 0.5), the LLM is
	 * asked */
	llm_mock__slow(m, 1500, "I cannot tell.");
	if (!ASSERT_TRUE(start(&s, top, "\"restart\": {\"backoff_ms\": 200},", NULL),
			 "shop up under heald"))
		goto out;
	ASSERT_GE(segv_shop(&s), 1, "the shop ran");
	for (i = 0; i < 100 && h_http(s.port, "GET", "/health", NULL) != -1; i++)
		usleep(10000);
	/* well past the 200 ms backoff, still before the LLM answers */
	for (i = 0; i < 20 && h_http(s.port, "GET", "/health", NULL) == -1; i++)
		h_heald_drain(&s.h, 50);
	ASSERT_EQ(i, 20, "down for the second the heal thinks: supervision waits for it");
	end = shop_wait_outcome(&s, "CRASH", trace, sizeof(trace));
	if (ASSERT_OK_PTR(end, "the heal ended")) {
		ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(end, "type")), "HEALED",
			     "healed");
		ASSERT_STREQ(h_str(end, "playbook"), "restart", "by its restart");
		ASSERT_GE(h_num(end, "duration_ms"), 1500, "after the LLM's answer");
		shop_trace_steps(&s.h, trace, steps, sizeof(steps));
		ASSERT_STREQ(steps,
			     "RCA_READY PATCH_REQUESTED PATCH_READY PATCH_APPLIED RELOAD_DONE "
			     "VERIFY_PASS HEALED",
			     "steps");
	}
	ASSERT_EQ(h_heald_count(&s.h, "TARGET_RESTARTED"), 0, "supervision stayed out");
	ASSERT_EQ(h_http(s.port, "GET", "/catalog", NULL), 200, "it serves");
out:
	shop_stop(&s);
	llm_mock__stop(m);
	unsetenv("HEAL_TEST_KEY");
}

/* A heal waiting for a person does not keep the target down meanwhile. */
static void test_approval_wait(void)
{
	char trace[64];
	struct shop s;
	cJSON *end, *ev;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(start(&s, "\"mode\": \"approve\", \"approve_above\": 0.1,",
			       "\"restart\": {\"backoff_ms\": 300},", NULL),
			 "shop up under heald"))
		goto out;
	ASSERT_GE(segv_shop(&s), 1, "the shop ran");
	end = shop_wait_outcome(&s, "CRASH", trace, sizeof(trace));
	if (ASSERT_OK_PTR(end, "the heal waits"))
		ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(end, "type")),
			     "APPROVAL_REQUIRED", "waits for approval");
	ev = nth_restart(&s, 1, WAIT_MS);
	ASSERT_OK_PTR(ev, "TARGET_RESTARTED while the heal waits");
	ASSERT_TRUE(shop_wait_up(&s), "the shop answers again");
out:
	shop_stop(&s);
}

/* "restart": "never": a one-shot job stays down. */
static void test_never(void)
{
	struct shop s;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(start(&s, "\"mode\": \"observe\",", "\"restart\": \"never\",", NULL),
			 "shop up under heald"))
		goto out;
	ASSERT_GE(segv_shop(&s), 1, "the shop ran");
	ASSERT_OK_PTR(h_heald_wait(&s.h, "CRASH", NULL, WAIT_MS), "the crash was seen");
	h_heald_drain(&s.h, 1600); /* past the default backoff, and a tick */
	ASSERT_EQ(h_heald_count(&s.h, "TARGET_RESTARTED"), 0, "no TARGET_RESTARTED");
	ASSERT_EQ(shop_pid(&s), 0, "no shop runs");
	ASSERT_EQ(h_http(s.port, "GET", "/health", NULL), -1, "nothing answers");
	ASSERT_EQ(restarts_metric("shop"), 0, "heal_target_restarts_total{target=\"shop\"}");
out:
	shop_stop(&s);
}

int main(void)
{
	h_subtest("observe_restarts_after_backoff", test_observe);
	h_subtest("rate_limited_crash_restarted", test_rate_limited);
	h_subtest("slow_heal_not_raced", test_slow_heal_wins);
	h_subtest("approval_wait_restarted", test_approval_wait);
	h_subtest("never_stays_down", test_never);
	return h_summary("test_supervise");
}
