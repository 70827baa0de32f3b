// SPDX-License-Identifier: MIT
/*
 * End to end: the healing loop on the demo shop. Each subtest breaks the
 * shop the way a bad deploy would, and checks what heald did about it: the
 * trace's steps in order, the files' bytes, the processes.
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shopenv.h"

#define WAIT_MS SHOP_WAIT_MS

static const char *heal_steps =
	"RCA_READY PATCH_REQUESTED PATCH_READY PATCH_APPLIED RELOAD_DONE VERIFY_PASS HEALED";

/* The seed's scenario: a schema change makes every return fail; restore the last good schema. */
static void test_returns_schema(void)
{
	char schema[PATH_MAX + 64], trace[64], steps[1024], *good, *now;
	struct shop s;
	cJSON *end, *ev;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(shop_start(&s, NULL, NULL, false), "shop up under heald"))
		goto out;
	shop_path(schema, sizeof(schema), &s, "returns-schema.json");
	good = h_read(schema, NULL);
	h_write(schema, "{\"required\": [\"order_id\", \"reason\", \"rma_code\"], \"reason_max_len\": 200,"
			" \"allowed_reasons\": [\"damaged\", \"wrong_item\", \"not_needed\"]}\n");
	ASSERT_EQ(h_http(s.port, "POST", "/returns", "{\"order_id\": \"ord-7\", \"reason\": \"damaged\"}"),
		  500, "broken schema: the return fails");
	end = shop_wait_outcome(&s, "API_FAILURE", trace, sizeof(trace));
	if (ASSERT_OK_PTR(end, "the heal ended")) {
		ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(end, "type")), "HEALED", "outcome");
		shop_trace_steps(&s.h, trace, steps, sizeof(steps));
		ASSERT_STREQ(steps, heal_steps, "steps in order");
		ev = h_heald_wait(&s.h, "API_FAILURE", NULL, 10);
		ASSERT_STREQ(h_str(ev, "arg"), "ord-7", "the order id was captured");
		ev = h_heald_wait(&s.h, "PATCH_READY", NULL, 10);
		ASSERT_TRUE(h_str(ev, "diff") && strstr(h_str(ev, "diff"), "-  \"required\"") == NULL &&
			    strstr(h_str(ev, "diff"), "rma_code"), "the diff removes rma_code");
		ev = h_heald_wait(&s.h, "RCA_READY", NULL, 10);
		ASSERT_STREQ(h_str(ev, "playbook"), "restore_known_good", "playbook");
		ASSERT_GE(h_num(ev, "confidence"), 0.5, "confidence");
	}
	now = h_read(schema, NULL);
	ASSERT_STREQ(now, good, "the schema is back, byte for byte");
	free(now);
	free(good);
	ASSERT_EQ(h_http(s.port, "POST", "/returns", "{\"order_id\": \"ord-8\", \"reason\": \"damaged\"}"),
		  200, "returns work again");
out:
	shop_stop(&s);
}

/* A missing config include: restore the file from its known-good version. */
static void test_missing_include(void)
{
	char catalog[PATH_MAX + 64], trace[64], steps[1024], *good, *now;
	struct shop s;
	cJSON *end;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(shop_start(&s, NULL, NULL, false), "shop up under heald"))
		goto out;
	shop_path(catalog, sizeof(catalog), &s, "catalog.json");
	good = h_read(catalog, NULL);
	unlink(catalog);
	ASSERT_EQ(h_http(s.port, "GET", "/catalog", NULL), 500, "catalog missing: 500");
	end = shop_wait_outcome(&s, "SYSCALL_FAILURE", trace, sizeof(trace));
	if (ASSERT_OK_PTR(end, "the heal ended")) {
		ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(end, "type")), "HEALED", "outcome");
		shop_trace_steps(&s.h, trace, steps, sizeof(steps));
		ASSERT_STREQ(steps, heal_steps, "steps in order");
	}
	now = h_read(catalog, NULL);
	ASSERT_STREQ(now, good, "the catalog is back, byte for byte");
	free(now);
	free(good);
	ASSERT_EQ(h_http(s.port, "GET", "/catalog", NULL), 200, "catalog served again");
out:
	shop_stop(&s);
}

/* Payments down: connect() refused to a configured dependency; restart it. */
static void test_payments_down(void)
{
	char trace[64], steps[1024];
	struct shop s;
	cJSON *end, *ev;
	int i;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(shop_start(&s, NULL, NULL, false), "shop up under heald"))
		goto out;
	ev = h_heald_wait(&s.h, "NONE", NULL, 10);
	(void)ev;
	/* stop payments the way an outage would: it is heald's child, find it by its port */
	{
		char cmd[256];

		snprintf(cmd, sizeof(cmd), "pkill -TERM -f '[p]ayments --port %d'", s.pay_port);
		ASSERT_EQ(system(cmd), 0, "payments stopped");
	}
	for (i = 0; i < 50 && h_http(s.pay_port, "GET", "/health", NULL) == 200; i++)
		usleep(50000);
	ASSERT_EQ(h_http(s.port, "POST", "/orders", "{\"item\": \"sku-1\", \"qty\": 1}"), 502,
		  "orders fail while payments is down");
	end = shop_wait_outcome(&s, "SYSCALL_FAILURE", trace, sizeof(trace));
	if (ASSERT_OK_PTR(end, "the heal ended")) {
		ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(end, "type")), "HEALED", "outcome");
		ASSERT_STREQ(h_str(end, "playbook"), "restart_dependency", "playbook");
		shop_trace_steps(&s.h, trace, steps, sizeof(steps));
		ASSERT_STREQ(steps, heal_steps, "steps in order");
	}
	ASSERT_EQ(h_http(s.pay_port, "GET", "/health", NULL), 200, "payments is back");
	ASSERT_EQ(h_http(s.port, "POST", "/orders", "{\"item\": \"sku-2\", \"qty\": 1}"), 201,
		  "orders go through");
out:
	shop_stop(&s);
}

/* A fix that does not hold: the operator's playbook is tried first, fails verify, and is rolled back. */
static void test_rollback(void)
{
	char schema[PATH_MAX + 64], trace[64], steps[2048], pb[2048], *broken, *now, *good;
	struct shop s;
	cJSON *end;

	if (!h_need_bpf())
		return;
	snprintf(pb, sizeof(pb),
		 "\"playbooks\": [{\"name\": \"wrong-fix\", \"match\": {\"type\": \"API_FAILURE\"},"
		 " \"action\": \"json_set\", \"confidence\": 0.99, \"risk\": 0.1, \"params\": {"
		 "\"file\": \"@ETC@/returns-schema.json\", \"pointer\": \"/reason_max_len\", \"value\": 1}}],");
	if (!ASSERT_TRUE(shop_start(&s, NULL, pb, false), "shop up under heald"))
		goto out;
	shop_path(schema, sizeof(schema), &s, "returns-schema.json");
	good = h_read(schema, NULL);
	broken = "{\"required\": [\"order_id\", \"reason\", \"rma_code\"], \"reason_max_len\": 200,"
		 " \"allowed_reasons\": [\"damaged\", \"wrong_item\", \"not_needed\"]}\n";
	h_write(schema, broken);
	ASSERT_EQ(h_http(s.port, "POST", "/returns", "{\"order_id\": \"ord-9\", \"reason\": \"damaged\"}"),
		  500, "broken schema: the return fails");
	end = shop_wait_outcome(&s, "API_FAILURE", trace, sizeof(trace));
	if (ASSERT_OK_PTR(end, "the heal ended")) {
		ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(end, "type")), "HEALED", "outcome");
		shop_trace_steps(&s.h, trace, steps, sizeof(steps));
		ASSERT_STREQ(steps,
			     "RCA_READY PATCH_REQUESTED PATCH_READY PATCH_APPLIED RELOAD_DONE VERIFY_FAIL "
			     "RELOAD_DONE ROLLBACK_DONE PATCH_REQUESTED PATCH_READY PATCH_APPLIED RELOAD_DONE "
			     "VERIFY_PASS HEALED",
			     "wrong fix verified, failed, rolled back; the next playbook healed");
	}
	now = h_read(schema, NULL);
	ASSERT_STREQ(now, good, "the schema ends at its known good bytes");
	free(now);
	free(good);
out:
	shop_stop(&s);
}

/* dry-run: diagnose and plan, change nothing. */
static void test_dry_run(void)
{
	char schema[PATH_MAX + 64], trace[64], steps[1024], *now;
	const char *broken = "{\"required\": [\"order_id\", \"reason\", \"rma_code\"]}\n";
	struct shop s;
	cJSON *end;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(shop_start(&s, "\"mode\": \"dry-run\",", NULL, false), "shop up under heald"))
		goto out;
	shop_path(schema, sizeof(schema), &s, "returns-schema.json");
	h_write(schema, broken);
	h_http(s.port, "POST", "/returns", "{\"order_id\": \"ord-1\", \"reason\": \"damaged\"}");
	end = shop_wait_outcome(&s, "API_FAILURE", trace, sizeof(trace));
	if (ASSERT_OK_PTR(end, "the heal ended")) {
		ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(end, "type")), "DRY_RUN", "outcome");
		shop_trace_steps(&s.h, trace, steps, sizeof(steps));
		ASSERT_STREQ(steps, "RCA_READY PATCH_REQUESTED PATCH_READY DRY_RUN", "planned only");
	}
	now = h_read(schema, NULL);
	ASSERT_STREQ(now, broken, "dry-run changed nothing");
	free(now);
out:
	shop_stop(&s);
}

/* approve mode: a plan riskier than approve_above waits for a person. */
static void test_approve(void)
{
	char schema[PATH_MAX + 64], trace[64], steps[1024], *good, *now, *out = NULL;
	struct shop s;
	cJSON *end;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(shop_start(&s, "\"mode\": \"approve\", \"approve_above\": 0.1,", NULL, false),
			 "shop up under heald"))
		goto done;
	shop_path(schema, sizeof(schema), &s, "returns-schema.json");
	good = h_read(schema, NULL);
	h_write(schema, "{\"required\": [\"order_id\", \"reason\", \"rma_code\"]}\n");
	h_http(s.port, "POST", "/returns", "{\"order_id\": \"ord-1\", \"reason\": \"damaged\"}");
	end = shop_wait_outcome(&s, "API_FAILURE", trace, sizeof(trace));
	if (!ASSERT_OK_PTR(end, "the heal waits"))
		goto free_good;
	ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(end, "type")), "APPROVAL_REQUIRED", "waits");
	h_heald_drain(&s.h, 1500);
	now = h_read(schema, NULL);
	ASSERT_TRUE(now && strstr(now, "rma_code"), "nothing changed while waiting");
	free(now);
	{
		char sd[PATH_MAX + 16];
		char *argv[] = { (char *)h_bin("healctl"), "--state-dir", sd, "approve", trace, NULL };

		snprintf(sd, sizeof(sd), "%s/state", s.h.dir);
		ASSERT_EQ(h_run(argv, &out), 0, "healctl approve");
		free(out);
	}
	h_heald_wait(&s.h, "HEALED", NULL, WAIT_MS);
	shop_trace_steps(&s.h, trace, steps, sizeof(steps));
	ASSERT_STREQ(steps,
		     "RCA_READY PATCH_REQUESTED PATCH_READY APPROVAL_REQUIRED APPROVED PATCH_APPLIED "
		     "RELOAD_DONE VERIFY_PASS HEALED",
		     "approved, then healed");
	now = h_read(schema, NULL);
	ASSERT_STREQ(now, good, "healed after approval");
	free(now);
free_good:
	free(good);
done:
	shop_stop(&s);
}

int main(void)
{
	h_subtest("returns_schema_restored", test_returns_schema);
	h_subtest("missing_include_restored", test_missing_include);
	h_subtest("payments_down_restarted", test_payments_down);
	h_subtest("wrong_fix_rolled_back", test_rollback);
	h_subtest("dry_run_changes_nothing", test_dry_run);
	h_subtest("approve_mode_waits", test_approve);
	return h_summary("test_heal");
}
