// SPDX-License-Identifier: MIT
/*
 * End to end: the rest of the healing loop on the demo shop. A crash after a
 * bad config, an fd leak, a full disk, a fix that never holds (the circuit
 * breaker), heald killed mid-heal, guardrails, the LLM falling back, and
 * healctl reading the journal. Each subtest checks what a person would: the
 * trace's steps in order, the files' bytes, the processes, HTTP statuses.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shopenv.h"
#include "../lib/llm_mock.c"

#define WAIT_MS SHOP_WAIT_MS
#define ORDER "{\"item\": \"sku-1\", \"qty\": 1}"
#define A_RETURN "{\"order_id\": \"ord-7\", \"reason\": \"damaged\"}"
/* the seed's bad deploy: every return now needs a field no return has */
#define BROKEN_SCHEMA                                                                       \
	"{\"required\": [\"order_id\", \"reason\", \"rma_code\"], \"reason_max_len\": 200,"  \
	" \"allowed_reasons\": [\"damaged\", \"wrong_item\", \"not_needed\"]}\n"

static const char *heal_steps =
	"RCA_READY PATCH_REQUESTED PATCH_READY PATCH_APPLIED RELOAD_DONE VERIFY_PASS HEALED";

static const char *type_of(const cJSON *ev)
{
	return cJSON_GetStringValue(cJSON_GetObjectItem(ev, "type"));
}

/* The first event of type in trace (NULL when none). */
static cJSON *trace_event(struct h_heald *h, const char *trace, const char *type)
{
	size_t i;

	for (i = 0; i < h->n_events; i++) {
		const char *id = shop_trace_of(h->events[i]);

		if (id && !strcmp(id, trace) && type_of(h->events[i]) &&
		    !strcmp(type_of(h->events[i]), type))
			return h->events[i];
	}
	return NULL;
}

/* The n-th (0-based) event of type in trace. */
static cJSON *trace_event_n(struct h_heald *h, const char *trace, const char *type, int n)
{
	size_t i;

	for (i = 0; i < h->n_events; i++) {
		const char *id = shop_trace_of(h->events[i]);

		if (id && !strcmp(id, trace) && type_of(h->events[i]) &&
		    !strcmp(type_of(h->events[i]), type) && n-- == 0)
			return h->events[i];
	}
	return NULL;
}

/* Wait for the first trace opened after the first `skip` RCA_READY events to end. */
static cJSON *wait_trace_end(struct shop *s, int skip, char *trace, size_t tlen)
{
	long waited = 0;
	size_t i;

	trace[0] = 0;
	while (waited < WAIT_MS) {
		int seen = 0;

		for (i = 0; i < s->h.n_events && !trace[0]; i++)
			if (type_of(s->h.events[i]) && !strcmp(type_of(s->h.events[i]), "RCA_READY") &&
			    seen++ == skip)
				snprintf(trace, tlen, "%s", shop_trace_of(s->h.events[i]));
		for (i = 0; trace[0] && i < s->h.n_events; i++) {
			const char *t = type_of(s->h.events[i]), *id = shop_trace_of(s->h.events[i]);

			if (id && !strcmp(id, trace) && t &&
			    (!strcmp(t, "HEALED") || !strcmp(t, "HEAL_FAILED") || !strcmp(t, "ESCALATED")))
				return s->h.events[i];
		}
		h_heald_drain(&s->h, 100);
		waited += 100;
	}
	return NULL;
}

/* Replace the first `from` in the file with `to`; the old content is returned (malloc'd). */
static char *edit_file(const char *path, const char *from, const char *to)
{
	char *old = h_read(path, NULL), *at, *neu;

	if (!old || !(at = strstr(old, from)))
		return old;
	neu = malloc(strlen(old) - strlen(from) + strlen(to) + 1);
	if (!neu)
		return old;
	sprintf(neu, "%.*s%s%s", (int)(at - old), old, to, at + strlen(from));
	h_write(path, neu);
	free(neu);
	return old;
}

static bool alive(pid_t pid)
{
	char path[64], exe[PATH_MAX];

	/* a zombie has no exe: dead for our purposes */
	snprintf(path, sizeof(path), "/proc/%d/exe", pid);
	return pid > 0 && readlink(path, exe, sizeof(exe)) > 0;
}

/* Soft "Max open files" of pid from /proc/PID/limits, -1 when unreadable. */
static long soft_nofile(pid_t pid)
{
	char path[64], *lim, *line;
	long v = -1;

	snprintf(path, sizeof(path), "/proc/%d/limits", pid);
	lim = h_read(path, NULL);
	line = lim ? strstr(lim, "Max open files") : NULL;
	if (line)
		v = strtol(line + strlen("Max open files"), NULL, 10);
	free(lim);
	return v;
}

/* A bad deploy sets an unknown discount plugin: the next order crashes the shop. */
static void test_null_crash(void)
{
	char cfg[PATH_MAX + 64], trace[64], steps[1024], *good = NULL, *now;
	struct shop s;
	pid_t before, after;
	cJSON *end, *ev;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(shop_start(&s, NULL, NULL, false), "shop up under heald"))
		goto out;
	shop_path(cfg, sizeof(cfg), &s, "shop.json");
	good = edit_file(cfg, "\"discount_plugin\": \"none\"", "\"discount_plugin\": \"summer-sale\"");
	before = shop_pid(&s);
	ASSERT_GE(before, 1, "the shop runs");
	ASSERT_TRUE(shop_reload(&s, "discount_plugin=summer-sale"), "the shop took the bad config");
	ASSERT_EQ(h_http(s.port, "POST", "/orders", ORDER), -1, "the order kills the shop");
	end = shop_wait_outcome(&s, "CRASH", trace, sizeof(trace));
	if (ASSERT_OK_PTR(end, "the heal ended")) {
		ASSERT_STREQ(type_of(end), "HEALED", "outcome");
		ev = h_heald_wait(&s.h, "CRASH", NULL, 10);
		ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(ev, "key")),
			     "shop:CRASH:SIGSEGV:shop_apply_discount", "crash signature");
		ASSERT_EQ(h_num(ev, "pid"), before, "the shop is what crashed");
		shop_trace_steps(&s.h, trace, steps, sizeof(steps));
		ASSERT_STREQ(steps, heal_steps, "steps in order");
		ev = trace_event(&s.h, trace, "RCA_READY");
		ASSERT_STREQ(h_str(ev, "playbook"), "restore_known_good", "playbook");
		ASSERT_TRUE(h_str(ev, "cause") && strstr(h_str(ev, "cause"), "shop.json"),
			    "the cause names the changed file");
		ev = trace_event(&s.h, trace, "PATCH_READY");
		ASSERT_TRUE(h_str(ev, "diff") && strstr(h_str(ev, "diff"), "summer-sale") &&
			    strstr(h_str(ev, "diff"), "\"none\""), "the diff undoes summer-sale");
		ev = trace_event(&s.h, trace, "RELOAD_DONE");
		ASSERT_STREQ(h_str(ev, "how"), "restart", "the dead shop was started again");
		ASSERT_EQ(h_heald_count(&s.h, "TARGET_RESTARTED"), 0,
			  "the heal started it after its fix, not supervision");
	}
	now = h_read(cfg, NULL);
	ASSERT_STREQ(now, good, "shop.json is back, byte for byte");
	free(now);
	after = shop_pid(&s);
	ASSERT_GE(after, 1, "a shop runs again");
	ASSERT_TRUE(after != before, "a new process");
	ASSERT_EQ(h_http(s.port, "POST", "/orders", ORDER), 201, "orders go through");
out:
	free(good);
	shop_stop(&s);
}

/* The audit log leaks a descriptor per request until openat fails with EMFILE. */
static void test_fd_leak(void)
{
	char cfg[PATH_MAX + 64], trace[64], steps[1024];
	struct shop s;
	int i, status = 200;
	pid_t pid;
	cJSON *end, *ev;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(shop_start(&s, NULL, NULL, false), "shop up under heald"))
		goto out;
	shop_path(cfg, sizeof(cfg), &s, "shop.json");
	free(edit_file(cfg, "\"audit_log\": false", "\"audit_log\": true"));
	pid = shop_pid(&s);
	ASSERT_EQ(soft_nofile(pid), 64, "the shop starts with 64 descriptors");
	ASSERT_TRUE(shop_reload(&s, "audit_log=true"), "the shop took the leaky config");
	for (i = 0; i < 120 && status == 200; i++)
		status = h_http(s.port, "GET", "/catalog", NULL);
	ASSERT_EQ(status, 500, "a request fails once the descriptors are gone");
	ASSERT_LE(i, 64, "within 64 requests");
	end = shop_wait_outcome(&s, "SYSCALL_FAILURE", trace, sizeof(trace));
	if (ASSERT_OK_PTR(end, "the heal ended")) {
		ASSERT_STREQ(type_of(end), "HEALED", "outcome");
		ev = h_heald_wait(&s.h, "SYSCALL_FAILURE", NULL, 10);
		ASSERT_STREQ(h_str(ev, "syscall"), "openat", "syscall");
		ASSERT_STREQ(h_str(ev, "errno"), "EMFILE", "errno");
		/* out of descriptors is one signature, whatever file the process was opening */
		ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(ev, "key")),
			     "shop:SYSCALL_FAILURE:openat:EMFILE", "signature");
		ASSERT_EQ(h_num(ev, "pid"), pid, "the shop ran out");
		shop_trace_steps(&s.h, trace, steps, sizeof(steps));
		/* a live prlimit has nothing to reload: RELOAD_DONE says how "none" */
		ASSERT_STREQ(steps, "RCA_READY PATCH_REQUESTED PATCH_READY PATCH_APPLIED RELOAD_DONE VERIFY_PASS HEALED",
			     "steps in order");
		ev = trace_event(&s.h, trace, "RCA_READY");
		ASSERT_STREQ(h_str(ev, "playbook"), "raise_nofile", "playbook");
		ev = trace_event(&s.h, trace, "PATCH_APPLIED");
		ASSERT_EQ(h_num(ev, "pid"), pid, "on the live shop");
		ASSERT_EQ(h_num(ev, "old_limit"), 64, "old limit");
		ASSERT_GE(h_num(ev, "new_limit"), 1024, "new limit");
	}
	ASSERT_EQ(shop_pid(&s), pid, "the same process: not restarted");
	ASSERT_GE(soft_nofile(pid), 1024, "/proc/PID/limits: Max open files raised");
	ASSERT_EQ(h_http(s.port, "GET", "/catalog", NULL), 200, "requests succeed again");
	ASSERT_EQ(h_http(s.port, "POST", "/orders", ORDER), 201, "orders too");
out:
	shop_stop(&s);
}

/* Rotated logs fill the data disk: the order's write fails with ENOSPC. */
static void test_disk_full(void)
{
	char trace[64], steps[1024], path[PATH_MAX + 64], chunk[65536];
	struct shop s;
	struct statvfs vfs;
	glob_t gl;
	cJSON *end, *ev;
	int n, fd;
	bool full = false;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(shop_start(&s, NULL, NULL, true), "shop up under heald"))
		goto out;
	memset(chunk, 'x', sizeof(chunk));
	for (n = 1; n <= 64 && !full; n++) {
		snprintf(path, sizeof(path), "%s/orders.log.%d", s.data, n);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			break;
		/* 128 KiB a file, the last one cut short by the full disk */
		for (int k = 0; k < 2; k++)
			if (write(fd, chunk, sizeof(chunk)) < (ssize_t)sizeof(chunk)) {
				full = true;
				break;
			}
		close(fd);
	}
	/* a short write can leave a partial page: fill it byte by byte */
	fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	while (fd >= 0 && write(fd, chunk, 1) == 1)
		;
	if (fd >= 0)
		close(fd);
	ASSERT_TRUE(full, "the disk filled up");
	ASSERT_EQ(statvfs(s.data, &vfs), 0, "statvfs");
	ASSERT_LE(vfs.f_bavail * vfs.f_bsize, 4095, "less than 4 KiB free");
	ASSERT_EQ(h_http(s.port, "POST", "/orders", ORDER), 507, "the order cannot be written");
	end = shop_wait_outcome(&s, "SYSCALL_FAILURE", trace, sizeof(trace));
	if (ASSERT_OK_PTR(end, "the heal ended")) {
		ASSERT_STREQ(type_of(end), "HEALED", "outcome");
		ev = h_heald_wait(&s.h, "SYSCALL_FAILURE", NULL, 10);
		ASSERT_STREQ(h_str(ev, "syscall"), "write", "syscall");
		ASSERT_STREQ(h_str(ev, "errno"), "ENOSPC", "errno");
		shop_trace_steps(&s.h, trace, steps, sizeof(steps));
		/* the shop retries its writes itself: nothing to reload */
		ASSERT_STREQ(steps, "RCA_READY PATCH_REQUESTED PATCH_READY PATCH_APPLIED RELOAD_DONE VERIFY_PASS HEALED",
			     "steps in order");
		ev = trace_event(&s.h, trace, "RCA_READY");
		ASSERT_STREQ(h_str(ev, "playbook"), "cleanup", "playbook");
		ev = trace_event(&s.h, trace, "PATCH_APPLIED");
		ASSERT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(ev, "payload"), "removed")),
			  n - 1, "every rotated log removed");
		ASSERT_GE(h_num(ev, "freed_bytes"), 900 * 1024, "the space came back");
	}
	snprintf(path, sizeof(path), "%s/orders.log.*", s.data);
	ASSERT_EQ(glob(path, 0, NULL, &gl), GLOB_NOMATCH, "no rotated log is left");
	globfree(&gl);
	snprintf(path, sizeof(path), "%s/orders.log", s.data);
	ASSERT_EQ(access(path, F_OK), 0, "the live orders log is kept");
	ASSERT_EQ(h_http(s.port, "POST", "/orders", ORDER), 201, "orders go through");
out:
	shop_stop(&s);
}

/* A fix that never verifies, twice: the breaker opens and later failures are left to a person. */
static void test_breaker(void)
{
	char cfg[PATH_MAX + 64], schema[PATH_MAX + 64], trace[64], steps[1024], *good = NULL, *now;
	struct shop_opts o = {
		.limits = "{\"breaker_failures\": 2, \"backoff_ms\": 100, \"breaker_reset_ms\": 1000}",
		/* only shop.json may change (it is intact): nothing to restore; the operator's
		 * playbook changes the wrong thing, and the check never passes */
		.shop_extra = "\"guardrails\": {\"allow\": [\"@ETC@/shop.json\"]},"
			      " \"playbooks\": [{\"name\": \"wrong-knob\", \"match\": {\"type\": \"API_FAILURE\"},"
			      " \"action\": \"json_set\", \"confidence\": 0.9, \"risk\": 0.1, \"params\": {"
			      "\"file\": \"@ETC@/shop.json\", \"pointer\": \"/orders/discount_plugin\","
			      " \"value\": \"ten-percent\"}}],",
		.verify = "{\"command\": [\"false\"], \"tries\": 1, \"window_ms\": 300}",
	};
	const char *fail_steps = "RCA_READY PATCH_REQUESTED PATCH_READY PATCH_APPLIED RELOAD_DONE "
				 "VERIFY_FAIL RELOAD_DONE ROLLBACK_DONE ";
	char want[512];
	struct shop s;
	cJSON *end, *ev;
	int i, rca, fails;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(shop_start_opts(&s, &o), "shop up under heald"))
		goto out;
	shop_path(cfg, sizeof(cfg), &s, "shop.json");
	shop_path(schema, sizeof(schema), &s, "returns-schema.json");
	good = h_read(cfg, NULL);
	h_write(schema, BROKEN_SCHEMA);

	ASSERT_EQ(h_http(s.port, "POST", "/returns", A_RETURN), 500, "returns fail");
	end = wait_trace_end(&s, 0, trace, sizeof(trace));
	if (ASSERT_OK_PTR(end, "first heal ended")) {
		ASSERT_STREQ(type_of(end), "HEAL_FAILED", "the first failed heal");
		shop_trace_steps(&s.h, trace, steps, sizeof(steps));
		snprintf(want, sizeof(want), "%sHEAL_FAILED", fail_steps);
		ASSERT_STREQ(steps, want, "tried, failed verify, rolled back");
		ASSERT_TRUE(h_str(end, "reason") && strstr(h_str(end, "reason"), "verify"), "reason");
		/* a rule edit changes the one value, not the file's layout */
		ev = trace_event(&s.h, trace, "PATCH_READY");
		ASSERT_EQ(h_num(ev, "lines"), 2, "the json_set diff changes one line");
		ASSERT_TRUE(h_str(ev, "diff") &&
			    strstr(h_str(ev, "diff"), "\n-  \"orders\": { \"discount_plugin\": \"none\","
						      " \"audit_log\": false },\n") &&
			    strstr(h_str(ev, "diff"), "\n+  \"orders\": { \"discount_plugin\": \"ten-percent\","
						      " \"audit_log\": false },\n"),
			    "the diff shows that line");
	}
	now = h_read(cfg, NULL);
	ASSERT_STREQ(now, good, "shop.json rolled back byte for byte");
	free(now);

	h_heald_drain(&s.h, 300); /* past the backoff */
	ASSERT_EQ(h_http(s.port, "POST", "/returns", A_RETURN), 500, "returns still fail");
	end = wait_trace_end(&s, 1, trace, sizeof(trace));
	if (ASSERT_OK_PTR(end, "second heal ended")) {
		ASSERT_STREQ(type_of(end), "ESCALATED", "the breaker opens after 2 failed heals");
		shop_trace_steps(&s.h, trace, steps, sizeof(steps));
		snprintf(want, sizeof(want), "%sESCALATED", fail_steps);
		ASSERT_STREQ(steps, want, "tried again, then escalated");
	}
	now = h_read(cfg, NULL);
	ASSERT_STREQ(now, good, "shop.json rolled back again");
	free(now);

	/* the breaker is open: the failure is still reported, but nobody heals it, for as long
	 * as it keeps failing (twice breaker_reset_ms here) */
	rca = h_heald_count(&s.h, "RCA_READY");
	fails = h_heald_count(&s.h, "API_FAILURE");
	for (i = 0; i < 4; i++) {
		ASSERT_EQ(h_http(s.port, "POST", "/returns", A_RETURN), 500, "returns still fail");
		h_heald_drain(&s.h, 500);
	}
	ASSERT_GE(h_heald_count(&s.h, "API_FAILURE"), fails + 4, "the failures are still reported");
	ASSERT_EQ(h_heald_count(&s.h, "RCA_READY"), rca, "no new heal while the breaker is open");
	ASSERT_EQ(h_heald_count(&s.h, "PATCH_APPLIED"), 2, "nothing else was changed");
	for (ev = NULL, i = (int)s.h.n_events - 1; i >= 0 && !ev; i--)
		if (!strcmp(type_of(s.h.events[i]) ?: "", "API_FAILURE"))
			ev = s.h.events[i];
	ASSERT_TRUE(ev && cJSON_IsNull(cJSON_GetObjectItem(ev, "trace_id")), "in no trace");
	/* quiet for longer than breaker_reset_ms: the breaker closes, the next failure is healed */
	h_heald_drain(&s.h, 1300);
	ASSERT_EQ(h_http(s.port, "POST", "/returns", A_RETURN), 500, "returns still fail");
	end = wait_trace_end(&s, rca, trace, sizeof(trace));
	if (ASSERT_OK_PTR(end, "a heal after the healthy period"))
		ASSERT_STREQ(type_of(end), "HEAL_FAILED", "tried again (and failed again)");
out:
	free(good);
	shop_stop(&s);
}

/* Kill the process whose argv is exactly "sleep <arg>" (the verify command heald left behind). */
static void kill_sleep(const char *arg)
{
	struct dirent *de;
	DIR *d = opendir("/proc");

	while (d && (de = readdir(d))) {
		char path[64], *cmd;
		size_t len = 0;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
		cmd = h_read(path, &len);
		if (cmd && len == strlen("sleep") + strlen(arg) + 2 && !strcmp(cmd, "sleep") &&
		    !strcmp(cmd + 6, arg))
			kill(atoi(de->d_name), SIGKILL);
		free(cmd);
	}
	if (d)
		closedir(d);
}

/* heald dies by SIGKILL between the patch and the verdict: the next heald rolls it back. */
static void test_sigkill_mid_heal(void)
{
	struct shop_opts o = {
		.shop_extra = "\"playbooks\": [{\"name\": \"slow-fix\", \"match\": {\"type\": \"API_FAILURE\"},"
			      " \"action\": \"json_set\", \"confidence\": 0.99, \"risk\": 0.1, \"params\": {"
			      "\"file\": \"@ETC@/returns-schema.json\", \"pointer\": \"/reason_max_len\","
			      " \"value\": 1}}],",
		/* the verdict takes long: heald dies before it */
		.verify = "{\"command\": [\"sleep\", \"29.7\"], \"tries\": 1, \"timeout_ms\": 60000,"
			  " \"window_ms\": 1000}",
	};
	char schema[PATH_MAX + 64], trace[64] = "", *now;
	struct shop s;
	pid_t old_shop = 0, old_pay = 0, new_shop;
	cJSON *ev;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(shop_start_opts(&s, &o), "shop up under heald"))
		goto out;
	shop_path(schema, sizeof(schema), &s, "returns-schema.json");
	h_write(schema, BROKEN_SCHEMA);
	ASSERT_EQ(h_http(s.port, "POST", "/returns", A_RETURN), 500, "returns fail");
	ev = h_heald_wait(&s.h, "RELOAD_DONE", NULL, WAIT_MS);
	if (!ASSERT_OK_PTR(ev, "the patch is applied and reloaded"))
		goto out;
	snprintf(trace, sizeof(trace), "%s", shop_trace_of(ev) ?: "");
	ev = trace_event(&s.h, trace, "PATCH_APPLIED");
	ASSERT_OK_PTR(ev, "PATCH_APPLIED");
	ASSERT_STREQ(h_str(trace_event(&s.h, trace, "RCA_READY"), "playbook"), "slow-fix", "playbook");
	now = h_read(schema, NULL);
	ASSERT_TRUE(now && strcmp(now, BROKEN_SCHEMA) && strstr(now, "\"reason_max_len\": 1,"),
		    "the file is patched");
	free(now);
	old_shop = shop_pid(&s);
	old_pay = shop_payments_pid(&s);

	h_heald_kill(&s.h);
	ASSERT_EQ(h_heald_count(&s.h, "VERIFY_PASS") + h_heald_count(&s.h, "VERIFY_FAIL"), 0,
		  "killed before the verdict");
	ASSERT_TRUE(alive(old_shop), "the old shop outlives heald");

	if (!ASSERT_TRUE(h_heald_restart(&s.h), "heald starts again on the same state dir"))
		goto out;
	ev = h_heald_wait(&s.h, "HEAL_FAILED", NULL, WAIT_MS);
	if (ASSERT_OK_PTR(ev, "the cut-off heal is closed")) {
		ASSERT_STREQ(shop_trace_of(ev), trace, "same trace");
		ASSERT_TRUE(h_str(ev, "reason") && strstr(h_str(ev, "reason"), "rolled back"), "reason");
	}
	ev = trace_event(&s.h, trace, "ROLLBACK_DONE");
	if (ASSERT_OK_PTR(ev, "rolled back on start")) {
		const cJSON *rec = cJSON_GetObjectItem(cJSON_GetObjectItem(ev, "payload"), "recovered");

		ASSERT_TRUE(cJSON_IsTrue(rec), "payload.recovered");
		ASSERT_EQ(h_num(ev, "restored"), 1, "one backup restored");
	}
	now = h_read(schema, NULL);
	ASSERT_STREQ(now, BROKEN_SCHEMA, "exactly the bytes before the patch");
	free(now);
	ASSERT_TRUE(shop_wait_up(&s), "a shop answers");
	new_shop = shop_pid(&s);
	ASSERT_FALSE(alive(old_shop), "the previous heald's shop was stopped");
	ASSERT_FALSE(alive(old_pay), "and its payments");
	ASSERT_TRUE(shop_payments_pid(&s) > 0 && shop_payments_pid(&s) != old_pay, "a new payments runs");
	ASSERT_TRUE(new_shop > 0 && new_shop != old_shop, "the new heald supervises a new shop");
	{
		char path[PATH_MAX + 64], *log;

		snprintf(path, sizeof(path), "%s/state/shop.log", s.h.dir);
		log = h_read(path, NULL);
		ASSERT_TRUE(log && !strstr(log, "cannot listen"), "no port collision");
		free(log);
	}
	/* the journal tells the same story once heald is gone */
	ASSERT_EQ(h_heald_stop(&s.h), 0, "heald exits 0");
	s.started = false;
	{
		char sd[PATH_MAX + 16], *out = NULL;
		char *argv[] = { (char *)h_bin("healctl"), "--state-dir", sd, "--json", "show", trace, NULL };
		cJSON *steps, *it;
		bool rolled = false, failed = false;

		snprintf(sd, sizeof(sd), "%s/state", s.h.dir);
		ASSERT_EQ(h_run(argv, &out), 0, "healctl show TRACE");
		steps = out ? cJSON_Parse(out) : NULL;
		cJSON_ArrayForEach(it, steps) {
			const cJSON *p = cJSON_GetObjectItem(it, "payload");

			if (!strcmp(type_of(it) ?: "", "ROLLBACK_DONE") &&
			    cJSON_IsTrue(cJSON_GetObjectItem(p, "recovered")))
				rolled = true;
			if (!strcmp(type_of(it) ?: "", "HEAL_FAILED"))
				failed = true;
		}
		ASSERT_TRUE(rolled, "the journal has ROLLBACK_DONE, recovered");
		ASSERT_TRUE(failed, "and HEAL_FAILED");
		ASSERT_TRUE(cJSON_GetArraySize(steps) > 0 &&
			    !strcmp(type_of(cJSON_GetArrayItem(steps, cJSON_GetArraySize(steps) - 1)) ?: "",
				    "HEAL_FAILED"), "HEAL_FAILED is the trace's last word");
		cJSON_Delete(steps);
		free(out);
	}
out:
	kill_sleep("29.7");
	/* whatever outlived a failed run: no heald supervises it any more */
	if (old_shop > 0 && alive(old_shop))
		kill(old_shop, SIGKILL);
	if (old_pay > 0 && alive(old_pay))
		kill(old_pay, SIGKILL);
	shop_stop(&s);
}

/* Guardrails block a change outside the allowlist (directly or through a symlink) or adding a secret. */
static void test_guardrails(void)
{
	struct shop_opts o = {
		.shop_extra =
			"\"playbooks\": ["
			"{\"name\": \"outside\", \"match\": {\"type\": \"API_FAILURE\"}, \"action\": \"json_set\","
			" \"confidence\": 0.95, \"params\": {\"file\": \"@DIR@/outside.json\", \"pointer\": \"/a\","
			" \"value\": 2}},"
			"{\"name\": \"via-link\", \"match\": {\"type\": \"API_FAILURE\"}, \"action\": \"json_set\","
			" \"confidence\": 0.94, \"params\": {\"file\": \"@ETC@/link.json\", \"pointer\": \"/a\","
			" \"value\": 3}},"
			"{\"name\": \"leaky\", \"match\": {\"type\": \"API_FAILURE\"}, \"action\": \"json_set\","
			" \"confidence\": 0.93, \"params\": {\"file\": \"@ETC@/returns-schema.json\","
			" \"pointer\": \"/password\", \"value\": \"hunter2hunter2\"}}],",
	};
	const char *outside_json = "{\"a\": 1}\n";
	char schema[PATH_MAX + 64], outside[PATH_MAX + 64], link[PATH_MAX + 64], trace[64], steps[2048];
	char *good = NULL, *now;
	struct shop s;
	cJSON *end, *ev;
	static const struct {
		const char *playbook, *rule;
	} blocked[] = { { "outside", "allowlist" }, { "via-link", "allowlist" }, { "leaky", "secrets" } };
	size_t i;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(shop_start_opts(&s, &o), "shop up under heald"))
		goto out;
	snprintf(outside, sizeof(outside), "%s/outside.json", s.dir);
	h_write(outside, outside_json);
	shop_path(link, sizeof(link), &s, "link.json");
	ASSERT_EQ(symlink(outside, link), 0, "etc/link.json -> ../outside.json");
	shop_path(schema, sizeof(schema), &s, "returns-schema.json");
	good = h_read(schema, NULL);
	h_write(schema, BROKEN_SCHEMA);
	ASSERT_EQ(h_http(s.port, "POST", "/returns", A_RETURN), 500, "returns fail");
	end = shop_wait_outcome(&s, "API_FAILURE", trace, sizeof(trace));
	if (ASSERT_OK_PTR(end, "the heal ended")) {
		ASSERT_STREQ(type_of(end), "HEALED", "outcome");
		shop_trace_steps(&s.h, trace, steps, sizeof(steps));
		ASSERT_STREQ(steps,
			     "RCA_READY PATCH_REQUESTED PATCH_BLOCKED PATCH_REQUESTED PATCH_BLOCKED "
			     "PATCH_REQUESTED PATCH_BLOCKED PATCH_REQUESTED PATCH_READY PATCH_APPLIED "
			     "RELOAD_DONE VERIFY_PASS HEALED",
			     "three blocked, then restore_known_good healed");
		for (i = 0; i < sizeof(blocked) / sizeof(blocked[0]); i++) {
			ev = trace_event_n(&s.h, trace, "PATCH_BLOCKED", (int)i);
			ASSERT_STREQ(h_str(ev, "playbook"), blocked[i].playbook, "blocked playbook");
			ASSERT_STREQ(h_str(ev, "rule"), blocked[i].rule, "the rule that blocked it");
			ASSERT_TRUE(h_str(ev, "reason") && h_str(ev, "reason")[0], "with a reason");
		}
		ev = trace_event_n(&s.h, trace, "PATCH_BLOCKED", 1);
		ASSERT_TRUE(h_str(ev, "reason") && strstr(h_str(ev, "reason"), "outside.json"),
			    "the symlink is resolved before the allowlist check");
		ASSERT_STREQ(h_str(trace_event(&s.h, trace, "PATCH_APPLIED"), "playbook"),
			     "restore_known_good", "the next playbook healed");
	}
	now = h_read(outside, NULL);
	ASSERT_STREQ(now, outside_json, "the file outside the allowlist is untouched");
	free(now);
	now = h_read(schema, NULL);
	ASSERT_TRUE(now && !strstr(now, "hunter2"), "no secret was written");
	ASSERT_STREQ(now, good, "the schema is back, byte for byte");
	free(now);
	ASSERT_EQ(h_http(s.port, "POST", "/returns", A_RETURN), 200, "returns work again");
out:
	free(good);
	shop_stop(&s);
}

#define LLM_KEY "sk-ant-test-KEY0123456789abcdefXYZ"
#define LLM_SECRET "sk-ant-REALSECRET0123456789abcdefGHIJ"

/* One heal with an LLM playbook ranked first whose answer is unusable; the rules take over. */
static void llm_round(struct llm_mock *m, size_t want_requests, const char *want_reason)
{
	char top[1024], schema[PATH_MAX + 64], trace[64], steps[2048], *good = NULL, *now;
	struct shop_opts o = {
		.top = top,
		.shop_extra = "\"playbooks\": [{\"name\": \"ask-llm\", \"match\": {\"type\": \"API_FAILURE\"},"
			      " \"action\": \"llm_patch\", \"confidence\": 0.99, \"risk\": 0.2,"
			      " \"params\": {\"file\": \"@ETC@/returns-schema.json\"}}],",
	};
	struct shop s;
	cJSON *end, *ev;
	size_t i;

	snprintf(top, sizeof(top),
		 "\"llm\": {\"provider\": \"anthropic\", \"base_url\": \"%s\", \"model\": \"m\","
		 " \"api_key_env\": \"HEAL_TEST_KEY\", \"timeout_ms\": 3000, \"max_retries\": 1,"
		 " \"backoff_ms\": 50},",
		 llm_mock__url(m));
	if (!ASSERT_TRUE(shop_start_opts(&s, &o), "shop up under heald"))
		goto out;
	shop_path(schema, sizeof(schema), &s, "returns-schema.json");
	good = h_read(schema, NULL);
	/* the bad deploy also carries a token: it must never reach the LLM */
	h_write(schema, "{\"required\": [\"order_id\", \"reason\", \"rma_code\"], \"reason_max_len\": 200,"
			" \"api_token\": \"" LLM_SECRET "\"}\n");
	ASSERT_EQ(h_http(s.port, "POST", "/returns", A_RETURN), 500, "returns fail");
	end = shop_wait_outcome(&s, "API_FAILURE", trace, sizeof(trace));
	if (ASSERT_OK_PTR(end, "the heal ended")) {
		ASSERT_STREQ(type_of(end), "HEALED", "outcome");
		shop_trace_steps(&s.h, trace, steps, sizeof(steps));
		ASSERT_STREQ(steps,
			     "RCA_READY PATCH_REQUESTED PATCH_BLOCKED PATCH_REQUESTED PATCH_READY "
			     "PATCH_APPLIED RELOAD_DONE VERIFY_PASS HEALED",
			     "the LLM patch failed, restore_known_good healed");
		ev = trace_event(&s.h, trace, "PATCH_BLOCKED");
		ASSERT_STREQ(h_str(ev, "playbook"), "ask-llm", "the LLM playbook went first");
		ASSERT_STREQ(h_str(ev, "rule"), "build", "rule");
		ASSERT_TRUE(h_str(ev, "reason") && strstr(h_str(ev, "reason"), "LLM") &&
			    strstr(h_str(ev, "reason"), want_reason), "the reason names the LLM failure");
		ASSERT_STREQ(h_str(trace_event(&s.h, trace, "PATCH_APPLIED"), "playbook"),
			     "restore_known_good", "fallback playbook");
	}
	now = h_read(schema, NULL);
	ASSERT_STREQ(now, good, "the schema is back, byte for byte");
	free(now);
	ASSERT_EQ(llm_mock__n_requests(m), want_requests, "requests the LLM got");
	for (i = 0; i < llm_mock__n_requests(m); i++) {
		const struct llm_mock_request *r = llm_mock__request(m, i);

		if (!r)
			break;
		ASSERT_STREQ(r->path, "/v1/messages", "Messages API");
		ASSERT_STREQ(llm_mock__header(r, "x-api-key"), LLM_KEY, "x-api-key from the environment");
		ASSERT_STREQ(llm_mock__header(r, "anthropic-version"), "2023-06-01", "anthropic-version");
		ASSERT_TRUE(strstr(r->body, "rma_code") != NULL, "the file is in the prompt");
		ASSERT_TRUE(strstr(r->body, "[REDACTED]") != NULL, "the token is redacted");
		ASSERT_TRUE(strstr(r->body, "REALSECRET") == NULL, "the secret never leaves the host");
	}
out:
	free(good);
	shop_stop(&s);
}

static void test_llm_fallback(void)
{
	struct llm_mock *m;

	if (!h_need_bpf())
		return;
	m = llm_mock__start();
	if (!ASSERT_OK_PTR(m, "LLM mock up"))
		return;
	setenv("HEAL_TEST_KEY", LLM_KEY, 1); /* heald inherits it */
	/* overloaded, then an answer cut off mid-JSON: no more retries */
	llm_mock__overloaded(m);
	llm_mock__raw(m, 200, "{\"id\": \"msg_1\", \"type\": \"message\", \"content\": [{\"type\": \"te");
	llm_round(m, 2, "");
	/* a well-formed answer that is not a file */
	llm_mock__reset(m);
	llm_mock__ok(m, "Have you tried turning it off and on again?");
	llm_round(m, 1, "no <file> block");
	llm_mock__stop(m);
	unsetenv("HEAL_TEST_KEY");
}

/*
 * No playbook is confident (the broken schema was already there when heald
 * started, so nothing "changed"): the LLM is asked for the cause, its answer
 * becomes the first plan, and that plan heals under the same guardrails.
 */
static void test_llm_rca_heals(void)
{
	char top[1024], schema[PATH_MAX + 64], trace[64], steps[2048], answer[4096], *good, *now, *esc;
	struct shop_opts o = { .top = top };
	struct llm_mock *m;
	struct shop s;
	cJSON *end, *ev, *str;

	if (!h_need_bpf())
		return;
	m = llm_mock__start();
	if (!ASSERT_OK_PTR(m, "LLM mock up"))
		return;
	setenv("HEAL_TEST_KEY", LLM_KEY, 1);
	snprintf(top, sizeof(top),
		 "\"llm\": {\"provider\": \"anthropic\", \"base_url\": \"%s\", \"model\": \"m\","
		 " \"api_key_env\": \"HEAL_TEST_KEY\", \"timeout_ms\": 3000, \"max_retries\": 1},",
		 llm_mock__url(m));
	if (!ASSERT_TRUE(shop_start_opts(&s, &o), "shop up under heald"))
		goto out;
	shop_path(schema, sizeof(schema), &s, "returns-schema.json");
	good = h_read(schema, NULL);
	/* broken while heald is down: at its next start the broken file is the newest snapshot */
	ASSERT_EQ(h_heald_stop(&s.h), 0, "heald stops");
	h_write(schema, BROKEN_SCHEMA);
	ASSERT_TRUE(h_heald_restart(&s.h), "heald starts again");
	ASSERT_TRUE(shop_wait_up(&s), "shop up again");
	/* the model's answer: the cause and the whole fixed file, as the system prompt asks */
	str = cJSON_CreateString(good);
	esc = cJSON_PrintUnformatted(str);
	snprintf(answer, sizeof(answer),
		 "{\"cause\": \"the schema requires rma_code, which no client sends\", \"confidence\": 0.7,"
		 " \"risk\": 0.2, \"file\": \"%s\", \"content\": %s}", schema, esc);
	free(esc);
	cJSON_Delete(str);
	llm_mock__ok(m, answer);
	ASSERT_EQ(h_http(s.port, "POST", "/returns", A_RETURN), 500, "returns fail");
	end = shop_wait_outcome(&s, "API_FAILURE", trace, sizeof(trace));
	if (ASSERT_OK_PTR(end, "the heal ended")) {
		ASSERT_STREQ(type_of(end), "HEALED", "outcome");
		shop_trace_steps(&s.h, trace, steps, sizeof(steps));
		ASSERT_STREQ(steps, "RCA_READY PATCH_REQUESTED PATCH_READY PATCH_APPLIED RELOAD_DONE "
				    "VERIFY_PASS HEALED", "steps");
		ev = trace_event(&s.h, trace, "RCA_READY");
		ASSERT_STREQ(h_str(ev, "source"), "llm", "the cause came from the LLM");
		ASSERT_STREQ(h_str(ev, "cause"), "the schema requires rma_code, which no client sends", "cause");
		ASSERT_STREQ(h_str(ev, "playbook"), "llm_rca", "plan");
		ASSERT_EQ(llm_mock__n_requests(m), 1, "one call");
	}
	now = h_read(schema, NULL);
	ASSERT_STREQ(now, good, "the LLM's file is in place");
	free(now);
	free(good);
out:
	shop_stop(&s);
	llm_mock__stop(m);
	unsetenv("HEAL_TEST_KEY");
}

/*
 * A small service in C whose "deploy" rebuilds it and re-execs its path (not
 * /proc/self/exe: that is the old, replaced file): the code heal must rebuild.
 */
static const char app_good[] =
	"#include <signal.h>\n#include <stdio.h>\n#include <string.h>\n#include <unistd.h>\n"
	"static volatile sig_atomic_t again;\n"
	"static void on_usr1(int s) { (void)s; again = 1; }\n"
	"int main(int argc, char **argv)\n{\n"
	"\tif (argc > 1 && !strcmp(argv[1], \"--version\")) { puts(\"v1\"); return 0; }\n"
	"\tsignal(SIGUSR1, on_usr1);\n"
	"\tfor (;;) { pause(); if (again) execv(argv[0], argv); }\n}\n";
static const char app_bad[] =
	"#include <stdio.h>\n#include <string.h>\n"
	"int main(int argc, char **argv)\n{\n"
	"\tif (argc > 1 && !strcmp(argv[1], \"--version\")) { puts(\"v2\"); return 0; }\n"
	"\treturn *(volatile int *)0; /* the bad deploy: crashes at start */\n}\n";

static void test_code_patch_rebuilds(void)
{
	char dir[PATH_MAX], src[PATH_MAX + 16], bin[PATH_MAX + 16], cfg[8192], trace[64], steps[1024];
	char cmd[3 * PATH_MAX], *now;
	struct h_heald h;
	cJSON *end, *ev;
	pid_t pid = 0;
	int i;

	if (!h_need_bpf())
		return;
	snprintf(dir, sizeof(dir), "%s", h_tmpdir());
	snprintf(src, sizeof(src), "%s/app.c", dir);
	snprintf(bin, sizeof(bin), "%s/app", dir);
	h_write(src, app_good);
	snprintf(cmd, sizeof(cmd), "cc -o %s %s", bin, src);
	if (!ASSERT_EQ(system(cmd), 0, "the app builds"))
		return;
	snprintf(cfg, sizeof(cfg),
		 "{\"state_dir\": \"@STATE@\", \"guardrails\": {\"allow\": [\"%s/*.c\"], \"max_lines\": 40},"
		 " \"targets\": [{\"name\": \"app\", \"exec\": [\"%s\"],"
		 " \"build\": [\"cc\", \"-o\", \"%s\", \"%s\"],"
		 " \"detect\": {\"crashes\": true},"
		 " \"verify\": {\"command\": [\"sh\", \"-c\", \"%s --version | grep -qx v1\"], \"tries\": 3,"
		 "   \"interval_ms\": 100, \"window_ms\": 1000}}]}",
		 dir, bin, bin, src, bin);
	if (!ASSERT_TRUE(h_heald_start(&h, cfg), "heald starts"))
		goto out;
	/* the bad deploy: new code, rebuilt, hot-reloaded; it crashes */
	h_write(src, app_bad);
	ASSERT_EQ(system(cmd), 0, "the bad version builds");
	snprintf(cmd, sizeof(cmd), "pkill -USR1 -x app");
	for (i = 0; i < 50 && system(cmd) != 0; i++)
		usleep(50000);
	ev = h_heald_wait(&h, "CRASH", NULL, WAIT_MS);
	if (!ASSERT_OK_PTR(ev, "the new code crashed"))
		goto out;
	snprintf(trace, sizeof(trace), "%s", shop_trace_of(ev) ?: "");
	end = h_heald_wait(&h, "HEALED", NULL, WAIT_MS);
	if (ASSERT_OK_PTR(end, "healed")) {
		shop_trace_steps(&h, trace, steps, sizeof(steps));
		ASSERT_STREQ(steps, "RCA_READY PATCH_REQUESTED PATCH_READY PATCH_APPLIED RELOAD_DONE "
				    "VERIFY_PASS HEALED", "steps");
		ev = h_heald_wait(&h, "PATCH_READY", NULL, 10);
		ASSERT_TRUE(h_str(ev, "diff") && strstr(h_str(ev, "diff"), "app.c"), "the diff is of app.c");
		ev = h_heald_wait(&h, "RELOAD_DONE", NULL, 10);
		ASSERT_STREQ(h_str(ev, "how"), "restart", "rebuilt and restarted");
	}
	now = h_read(src, NULL);
	ASSERT_STREQ(now, app_good, "the code is back");
	free(now);
	{
		char *argv[] = { bin, "--version", NULL }, *out = NULL;

		h_run(argv, &out);
		ASSERT_STREQ(out, "v1\n", "the binary was rebuilt from it");
		free(out);
	}
	(void)pid;
out:
	ASSERT_EQ(h_heald_stop(&h), 0, "heald exits 0");
	h_heald_free(&h);
}

/* After a heal, with heald gone, healctl reads the trace back from the journal. */
static void test_healctl(void)
{
	char schema[PATH_MAX + 64], sd[PATH_MAX + 16], trace[64], *out = NULL;
	struct shop s;
	cJSON *end, *arr = NULL, *it, *row = NULL;
	const char *steps[] = { "RCA_READY", "PATCH_REQUESTED", "PATCH_READY", "PATCH_APPLIED",
				"RELOAD_DONE", "VERIFY_PASS", "HEALED" };
	const char *at;
	size_t i;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(shop_start(&s, NULL, NULL, false), "shop up under heald"))
		goto out;
	shop_path(schema, sizeof(schema), &s, "returns-schema.json");
	h_write(schema, BROKEN_SCHEMA);
	h_http(s.port, "POST", "/returns", A_RETURN);
	end = shop_wait_outcome(&s, "API_FAILURE", trace, sizeof(trace));
	if (!ASSERT_OK_PTR(end, "the heal ended") || !ASSERT_STREQ(type_of(end), "HEALED", "outcome"))
		goto out;
	ASSERT_EQ(h_heald_stop(&s.h), 0, "heald exits 0");
	s.started = false;
	snprintf(sd, sizeof(sd), "%s/state", s.h.dir);
	{
		char *argv[] = { (char *)h_bin("healctl"), "--state-dir", sd, "traces", "--json", NULL };

		ASSERT_EQ(h_run(argv, &out), 0, "healctl traces --json");
	}
	arr = out ? cJSON_Parse(out) : NULL;
	ASSERT_TRUE(cJSON_IsArray(arr), "a JSON array");
	cJSON_ArrayForEach(it, arr)
		if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(it, "trace_id")) ?: "", trace))
			row = it;
	if (ASSERT_OK_PTR(row, "the trace is listed")) {
		ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(row, "state")), "HEALED", "state");
		ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(row, "target")), "shop", "target");
		ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(row, "key")),
			     "shop:API_FAILURE:shop_handle_return", "signature");
	}
	cJSON_Delete(arr);
	free(out);
	out = NULL;
	{
		char *argv[] = { (char *)h_bin("healctl"), "--state-dir", sd, "show", trace, NULL };

		ASSERT_EQ(h_run(argv, &out), 0, "healctl show TRACE");
	}
	/* every step, in order, then the diff that removed rma_code */
	for (i = 0, at = out; at && i < sizeof(steps) / sizeof(steps[0]); i++) {
		at = strstr(at, steps[i]);
		ASSERT_OK_PTR(at, steps[i]);
	}
	ASSERT_TRUE(out && strstr(out, "restore_known_good"), "the playbook is shown");
	ASSERT_TRUE(out && strstr(out, "--- ") && strstr(out, "+++ ") && strstr(out, "@@"),
		    "the diff is shown");
	ASSERT_TRUE(out && strstr(out, "rma_code"), "the diff shows what changed");
	free(out);
	out = NULL;
	{
		char *argv[] = { (char *)h_bin("healctl"), "--state-dir", sd, "show", "tr-nope", NULL };

		ASSERT_TRUE(h_run(argv, &out) != 0, "an unknown trace is an error");
	}
out:
	free(out);
	shop_stop(&s);
}

int main(void)
{
	h_subtest("null_crash_restored", test_null_crash);
	h_subtest("fd_leak_raise_nofile", test_fd_leak);
	h_subtest("disk_full_cleanup", test_disk_full);
	h_subtest("breaker_escalates", test_breaker);
	h_subtest("sigkill_mid_heal_rolled_back", test_sigkill_mid_heal);
	h_subtest("guardrail_blocks_recorded", test_guardrails);
	h_subtest("code_patch_rebuilds", test_code_patch_rebuilds);
	h_subtest("llm_rca_heals", test_llm_rca_heals);
	h_subtest("llm_fallback", test_llm_fallback);
	h_subtest("healctl_reads_journal", test_healctl);
	return h_summary("test_heal2");
}
