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

#include "harness.h"

#define WAIT_MS 20000

struct shop {
	struct h_heald h;
	char dir[PATH_MAX];
	char etc[PATH_MAX + 8];
	char data[PATH_MAX + 8];
	int port, pay_port;
	bool started;
	bool tmpfs;
};

static void path_in(char *out, size_t len, const struct shop *s, const char *name)
{
	snprintf(out, len, "%s/%s", s->etc, name);
}

static bool copy_file(const char *from, const char *to)
{
	char *c = h_read(from, NULL);
	bool ok = c && h_write(to, c);

	free(c);
	return ok;
}

/*
 * Lay out a shop in a fresh directory and start heald on it. top: extra
 * top-level config keys (with a trailing comma) ; shop_extra: extra keys of the
 * shop target (with a trailing comma).
 */
static bool shop_start(struct shop *s, const char *top, const char *shop_extra, bool small_disk)
{
	char cfg[16384], p[PATH_MAX + 64], shopjson[2048], extra[4096] = "";
	const char *at;
	int i;

	memset(s, 0, sizeof(*s));
	snprintf(s->dir, sizeof(s->dir), "%s", h_tmpdir());
	snprintf(s->etc, sizeof(s->etc), "%s/etc", s->dir);
	snprintf(s->data, sizeof(s->data), "%s/data", s->dir);
	mkdir(s->etc, 0755);
	mkdir(s->data, 0755);
	if (small_disk) {
		if (mount("tmpfs", s->data, "tmpfs", 0, "size=1m")) {
			h_skip("cannot mount a small tmpfs for the disk-full case");
			return false;
		}
		s->tmpfs = true;
	}
	/* "@ETC@" in shop_extra: the shop's config directory */
	if (shop_extra && (at = strstr(shop_extra, "@ETC@")))
		snprintf(extra, sizeof(extra), "%.*s%s%s", (int)(at - shop_extra), shop_extra, s->etc,
			 at + 5);
	else if (shop_extra)
		snprintf(extra, sizeof(extra), "%s", shop_extra);
	s->port = h_free_port();
	s->pay_port = h_free_port();
	while (s->pay_port == s->port)
		s->pay_port = h_free_port();
	path_in(p, sizeof(p), s, "catalog.json");
	copy_file("tools/shop/catalog.json", p);
	path_in(p, sizeof(p), s, "returns-schema.json");
	copy_file("tools/shop/returns-schema.json", p);
	snprintf(shopjson, sizeof(shopjson),
		 "{\n  \"port\": %d,\n  \"payments\": \"127.0.0.1:%d\",\n  \"data_dir\": \"%s\",\n"
		 "  \"includes\": { \"catalog\": \"catalog.json\", \"returns_schema\": \"returns-schema.json\" },\n"
		 "  \"orders\": { \"discount_plugin\": \"none\", \"audit_log\": false },\n"
		 "  \"limits\": { \"max_open_files\": 64 }\n}\n",
		 s->port, s->pay_port, s->data);
	path_in(p, sizeof(p), s, "shop.json");
	h_write(p, shopjson);

	snprintf(cfg, sizeof(cfg),
		 "{\"state_dir\": \"@STATE@\", %s"
		 " \"guardrails\": {\"allow\": [\"%s/*.json\"], \"max_lines\": 40},"
		 " \"limits\": {\"backoff_ms\": 200},"
		 " \"targets\": ["
		 "{\"name\": \"payments\", \"exec\": [\"%s\", \"--port\", \"%d\"],"
		 " \"ready\": {\"tcp\": \"127.0.0.1:%d\"}, \"detect\": {\"exits\": false}},"
		 "{\"name\": \"shop\", \"exec\": [\"%s\", \"--config\", \"%s/shop.json\"], %s"
		 " \"ready\": {\"tcp\": \"127.0.0.1:%d\"}, \"reload\": {\"signal\": \"HUP\"},"
		 " \"detect\": {\"syscalls\": [{\"syscall\": [\"openat\", \"connect\", \"write\"],"
		 "   \"errno\": [\"ENOENT\", \"ECONNREFUSED\", \"EMFILE\", \"ENOSPC\"]}],"
		 "   \"crashes\": true, \"api\": [{\"binary\": \"%s\", \"symbol\": \"shop_handle_return\","
		 "   \"fail_when\": \"ret >= 500\", \"capture_arg\": {\"index\": 1, \"type\": \"string\"}}]},"
		 " \"dependencies\": [{\"target\": \"payments\", \"addr\": \"127.0.0.1:%d\"}],"
		 " \"cleanup\": [\"%s/orders.log.*\"],"
		 " \"verify\": {\"command\": [\"%s/tools/shop-verify.sh\", \"%d\"], \"tries\": 10,"
		 "   \"interval_ms\": 200, \"window_ms\": 1000}}]}",
		 top ? top : "", s->etc, h_bin("payments"), s->pay_port, s->pay_port, h_bin("shop"),
		 s->etc, extra, s->port, h_bin("shop"), s->pay_port, s->data,
		 getcwd(p, sizeof(p)) ? p : ".", s->port);
	if (!h_heald_start(&s->h, cfg))
		return false;
	s->started = true;
	for (i = 0; i < 100; i++) {
		if (h_http(s->port, "GET", "/health", NULL) == 200)
			return true;
		usleep(50000);
	}
	return false;
}

static void shop_stop(struct shop *s)
{
	if (s->started)
		ASSERT_EQ(h_heald_stop(&s->h), 0, "heald exits 0");
	h_heald_free(&s->h);
	if (s->tmpfs)
		umount2(s->data, MNT_DETACH);
}

/* The types of the trace's events, in order, joined by spaces. */
static void trace_steps(struct h_heald *h, const char *trace_id, char *out, size_t len)
{
	size_t i, used = 0;

	out[0] = 0;
	for (i = 0; i < h->n_events; i++) {
		const cJSON *id = cJSON_GetObjectItem(h->events[i], "trace_id");
		const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(h->events[i], "type"));

		if (!cJSON_IsString(id) || strcmp(id->valuestring, trace_id) || !type)
			continue;
		/* the failure and its repeats carry the trace id too; the steps are the rest */
		if (!strcmp(type, "SYSCALL_FAILURE") || !strcmp(type, "API_FAILURE") ||
		    !strcmp(type, "CRASH") || !strcmp(type, "EXIT_FAILURE") || !strcmp(type, "OOM_KILL"))
			continue;
		used += (size_t)snprintf(out + used, used < len ? len - used : 0, "%s%s", used ? " " : "", type);
	}
}

static const char *trace_of(const cJSON *ev)
{
	return cJSON_GetStringValue(cJSON_GetObjectItem(ev, "trace_id"));
}

/* Wait for the trace of the first event of type to end; returns its terminal event. */
static cJSON *wait_outcome(struct shop *s, const char *failure_type, char *trace, size_t tlen)
{
	cJSON *ev = h_heald_wait(&s->h, failure_type, NULL, WAIT_MS);
	long waited = 0;
	size_t i;

	trace[0] = 0;
	if (!ev || !trace_of(ev))
		return NULL;
	snprintf(trace, tlen, "%s", trace_of(ev));
	while (waited < 40000) {
		for (i = 0; i < s->h.n_events; i++) {
			const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(s->h.events[i], "type"));
			const char *id = trace_of(s->h.events[i]);

			if (id && strcmp(id, trace) == 0 && type &&
			    (!strcmp(type, "HEALED") || !strcmp(type, "HEAL_FAILED") ||
			     !strcmp(type, "ESCALATED") || !strcmp(type, "DRY_RUN") ||
			     !strcmp(type, "APPROVAL_REQUIRED")))
				return s->h.events[i];
		}
		h_heald_drain(&s->h, 100);
		waited += 100;
	}
	return NULL;
}

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
	path_in(schema, sizeof(schema), &s, "returns-schema.json");
	good = h_read(schema, NULL);
	h_write(schema, "{\"required\": [\"order_id\", \"reason\", \"rma_code\"], \"reason_max_len\": 200,"
			" \"allowed_reasons\": [\"damaged\", \"wrong_item\", \"not_needed\"]}\n");
	ASSERT_EQ(h_http(s.port, "POST", "/returns", "{\"order_id\": \"ord-7\", \"reason\": \"damaged\"}"),
		  500, "broken schema: the return fails");
	end = wait_outcome(&s, "API_FAILURE", trace, sizeof(trace));
	if (ASSERT_OK_PTR(end, "the heal ended")) {
		ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(end, "type")), "HEALED", "outcome");
		trace_steps(&s.h, trace, steps, sizeof(steps));
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
	path_in(catalog, sizeof(catalog), &s, "catalog.json");
	good = h_read(catalog, NULL);
	unlink(catalog);
	ASSERT_EQ(h_http(s.port, "GET", "/catalog", NULL), 500, "catalog missing: 500");
	end = wait_outcome(&s, "SYSCALL_FAILURE", trace, sizeof(trace));
	if (ASSERT_OK_PTR(end, "the heal ended")) {
		ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(end, "type")), "HEALED", "outcome");
		trace_steps(&s.h, trace, steps, sizeof(steps));
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
	end = wait_outcome(&s, "SYSCALL_FAILURE", trace, sizeof(trace));
	if (ASSERT_OK_PTR(end, "the heal ended")) {
		ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(end, "type")), "HEALED", "outcome");
		ASSERT_STREQ(h_str(end, "playbook"), "restart_dependency", "playbook");
		trace_steps(&s.h, trace, steps, sizeof(steps));
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
	path_in(schema, sizeof(schema), &s, "returns-schema.json");
	good = h_read(schema, NULL);
	broken = "{\"required\": [\"order_id\", \"reason\", \"rma_code\"], \"reason_max_len\": 200,"
		 " \"allowed_reasons\": [\"damaged\", \"wrong_item\", \"not_needed\"]}\n";
	h_write(schema, broken);
	ASSERT_EQ(h_http(s.port, "POST", "/returns", "{\"order_id\": \"ord-9\", \"reason\": \"damaged\"}"),
		  500, "broken schema: the return fails");
	end = wait_outcome(&s, "API_FAILURE", trace, sizeof(trace));
	if (ASSERT_OK_PTR(end, "the heal ended")) {
		ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(end, "type")), "HEALED", "outcome");
		trace_steps(&s.h, trace, steps, sizeof(steps));
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
	path_in(schema, sizeof(schema), &s, "returns-schema.json");
	h_write(schema, broken);
	h_http(s.port, "POST", "/returns", "{\"order_id\": \"ord-1\", \"reason\": \"damaged\"}");
	end = wait_outcome(&s, "API_FAILURE", trace, sizeof(trace));
	if (ASSERT_OK_PTR(end, "the heal ended")) {
		ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(end, "type")), "DRY_RUN", "outcome");
		trace_steps(&s.h, trace, steps, sizeof(steps));
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
	path_in(schema, sizeof(schema), &s, "returns-schema.json");
	good = h_read(schema, NULL);
	h_write(schema, "{\"required\": [\"order_id\", \"reason\", \"rma_code\"]}\n");
	h_http(s.port, "POST", "/returns", "{\"order_id\": \"ord-1\", \"reason\": \"damaged\"}");
	end = wait_outcome(&s, "API_FAILURE", trace, sizeof(trace));
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
	trace_steps(&s.h, trace, steps, sizeof(steps));
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
