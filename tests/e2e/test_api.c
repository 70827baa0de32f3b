// SPDX-License-Identifier: MIT
/*
 * End to end: the operators' surface of a running heald — /metrics (checked
 * by promtool and scraped by a real Prometheus), the JSON API, its auth, and
 * the live event stream — around a real heal of the demo shop.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shopenv.h"

#define BROKEN_SCHEMA "{\"required\": [\"order_id\", \"reason\", \"rma_code\"]}\n"
#define A_RETURN "{\"order_id\": \"ord-7\", \"reason\": \"damaged\"}"

static int api_port;

/* curl: body into *out; returns the HTTP status (or -1). */
static int curl(const char *method, const char *path, const char *token, const char *body,
		const char *extra_header, char **out)
{
	char url[256], auth[256], code[16];
	char *argv[20];
	char *raw = NULL, *nl;
	int n = 0, status = -1;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", api_port, path);
	argv[n++] = "/usr/bin/curl";
	argv[n++] = "-s";
	argv[n++] = "-m";
	argv[n++] = "5";
	argv[n++] = "-X";
	argv[n++] = (char *)method;
	argv[n++] = "-w";
	argv[n++] = "\n%{http_code}";
	if (token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		argv[n++] = "-H";
		argv[n++] = auth;
	}
	if (extra_header) {
		argv[n++] = "-H";
		argv[n++] = (char *)extra_header;
	}
	if (body) {
		argv[n++] = "--data-binary";
		argv[n++] = (char *)body;
	}
	argv[n++] = url;
	argv[n] = NULL;
	h_run(argv, &raw);
	if (raw && (nl = strrchr(raw, '\n'))) {
		snprintf(code, sizeof(code), "%s", nl + 1);
		status = atoi(code);
		*nl = 0;
	}
	if (out)
		*out = raw;
	else
		free(raw);
	return status;
}

/* The shop under heald with its API on a free port; more: extra top-level keys, each with a comma. */
static bool api_shop(struct shop *s, const char *more)
{
	char top[512];
	struct shop_opts o = { .top = top };

	api_port = h_free_port();
	snprintf(top, sizeof(top), "\"listen\": \"127.0.0.1:%d\", %s", api_port, more ? more : "");
	return shop_start_opts(s, &o);
}

static char *token_of(struct shop *s)
{
	char path[PATH_MAX + 32], *t, *nl;
	struct stat st;

	snprintf(path, sizeof(path), "%s/state/api.token", s->h.dir);
	if (stat(path, &st) || (st.st_mode & 077))
		return NULL;
	t = h_read(path, NULL);
	if (t && (nl = strchr(t, '\n')))
		*nl = 0;
	return t;
}

/* The value of one series in a metrics text, or -1. */
static double metric(const char *text, const char *series)
{
	const char *p = text;
	size_t n = strlen(series);

	while (p && (p = strstr(p, series))) {
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return atof(p + n + 1);
		p += n;
	}
	return -1;
}

static void break_and_heal(struct shop *s, char *trace, size_t len)
{
	char schema[PATH_MAX + 64];
	cJSON *end;

	shop_path(schema, sizeof(schema), s, "returns-schema.json");
	h_write(schema, BROKEN_SCHEMA);
	h_http(s->port, "POST", "/returns", A_RETURN);
	end = shop_wait_outcome(s, "API_FAILURE", trace, len);
	ASSERT_OK_PTR(end, "the heal ended");
}

static void test_metrics_and_api(void)
{
	char trace[64], path[256], *out = NULL;
	struct shop s;
	cJSON *o, *arr, *it, *row = NULL;
	int st;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(api_shop(&s, NULL), "shop up under heald"))
		goto out;
	break_and_heal(&s, trace, sizeof(trace));
	h_heald_drain(&s.h, 1200); /* the API refreshes its snapshot every second */

	ASSERT_EQ(curl("GET", "/metrics", NULL, NULL, NULL, &out), 200, "GET /metrics");
	if (out) {
		ASSERT_EQ(metric(out, "heal_up"), 1, "heal_up");
		ASSERT_EQ(metric(out, "heal_heals_total{outcome=\"HEALED\",playbook=\"restore_known_good\"}"), 1,
			  "one heal by restore_known_good");
		ASSERT_EQ(metric(out, "heal_failures_total{target=\"shop\",type=\"API_FAILURE\"}"), 1,
			  "one API failure");
		ASSERT_EQ(metric(out, "heal_heal_duration_seconds_count{outcome=\"HEALED\"}"), 1,
			  "heal duration observed");
		ASSERT_EQ(metric(out, "heal_open_traces"), 0, "no heal open");
		ASSERT_TRUE(strstr(out, "heal_build_info{") != NULL, "build info");
		ASSERT_TRUE(strstr(out, "process_resident_memory_bytes") != NULL, "heald's own memory");
		ASSERT_TRUE(strstr(out, "pid=") == NULL && strstr(out, "path=") == NULL,
			    "no pids or paths in labels");
		if (access("/usr/bin/promtool", X_OK) == 0) {
			char file[PATH_MAX + 16], *pout = NULL;
			char *argv[] = { "/bin/sh", "-c", file, NULL };

			snprintf(file, sizeof(file), "promtool check metrics < %s/metrics.txt", s.h.dir);
			{
				char mpath[PATH_MAX + 16];

				snprintf(mpath, sizeof(mpath), "%s/metrics.txt", s.h.dir);
				h_write(mpath, out);
			}
			st = h_run(argv, &pout);
			if (!ASSERT_EQ(st, 0, "promtool check metrics passes"))
				fprintf(stderr, "%s\n", pout);
			free(pout);
		} else {
			fprintf(stderr, "  (promtool not installed: the lint check is skipped)\n");
		}
	}
	free(out);

	ASSERT_EQ(curl("GET", "/api/v1/status", NULL, NULL, NULL, &out), 200, "GET status");
	o = out ? cJSON_Parse(out) : NULL;
	ASSERT_EQ(cJSON_GetNumberValue(cJSON_GetObjectItem(o, "healed")), 1, "status: healed");
	ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(o, "mode")), "auto", "status: mode");
	cJSON_Delete(o);
	free(out);

	ASSERT_EQ(curl("GET", "/api/v1/traces?limit=10&target=shop", NULL, NULL, NULL, &out), 200,
		  "GET traces");
	o = out ? cJSON_Parse(out) : NULL;
	arr = cJSON_GetObjectItem(o, "traces");
	cJSON_ArrayForEach(it, arr)
		if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(it, "trace_id")) ?: "", trace))
			row = it;
	if (ASSERT_OK_PTR(row, "the heal is listed"))
		ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(row, "state")), "HEALED", "its state");
	cJSON_Delete(o);
	free(out);

	snprintf(path, sizeof(path), "/api/v1/traces/%s", trace);
	ASSERT_EQ(curl("GET", path, NULL, NULL, NULL, &out), 200, "GET one trace");
	o = out ? cJSON_Parse(out) : NULL;
	ASSERT_GE(cJSON_GetArraySize(cJSON_GetObjectItem(o, "events")), 8, "its events");
	ASSERT_TRUE(cJSON_GetStringValue(cJSON_GetObjectItem(o, "diff")) &&
		    strstr(cJSON_GetStringValue(cJSON_GetObjectItem(o, "diff")), "rma_code"), "its diff");
	cJSON_Delete(o);
	free(out);
	ASSERT_EQ(curl("GET", "/api/v1/traces/tr-nope", NULL, NULL, NULL, NULL), 404, "unknown trace: 404");
	ASSERT_EQ(curl("GET", "/api/v1/traces?limit=0", NULL, NULL, NULL, NULL), 400, "bad limit: 400");
out:
	shop_stop(&s);
}

/* Changes need the token; approve mode is driven through the API. */
static void test_auth_and_approve(void)
{
	char schema[PATH_MAX + 64], path[256], trace[64], *token = NULL, *good = NULL, *now;
	struct shop s;
	cJSON *end;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(api_shop(&s, "\"mode\": \"approve\", \"approve_above\": 0.1,"), "shop up under heald"))
		goto out;
	token = token_of(&s);
	if (!ASSERT_OK_PTR(token, "a 0600 api.token in the state dir"))
		goto out;
	shop_path(schema, sizeof(schema), &s, "returns-schema.json");
	good = h_read(schema, NULL);
	h_write(schema, BROKEN_SCHEMA);
	h_http(s.port, "POST", "/returns", A_RETURN);
	end = shop_wait_outcome(&s, "API_FAILURE", trace, sizeof(trace));
	if (!ASSERT_OK_PTR(end, "waiting") ||
	    !ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(end, "type")), "APPROVAL_REQUIRED", "waits"))
		goto out;
	snprintf(path, sizeof(path), "/api/v1/traces/%s/approve", trace);
	ASSERT_EQ(curl("POST", path, NULL, "{}", NULL, NULL), 401, "no token: 401");
	ASSERT_EQ(curl("POST", path, "not-the-token-at-all", "{}", NULL, NULL), 403, "wrong token: 403");
	ASSERT_EQ(curl("POST", path, token, "{\"x\": ", NULL, NULL), 400, "malformed JSON: 400");
	{
		size_t big = 70 * 1024;
		char *body = malloc(big + 16);

		memset(body, ' ', big);
		memcpy(body, "{\"pad\": \"", 9);
		strcpy(body + big - 3, "\"}");
		ASSERT_EQ(curl("POST", path, token, body, NULL, NULL), 413, "oversized body: 413");
		free(body);
	}
	now = h_read(schema, NULL);
	ASSERT_TRUE(now && strstr(now, "rma_code"), "nothing changed without a good token");
	free(now);
	ASSERT_EQ(curl("POST", path, token, "{}", NULL, NULL), 202, "right token: accepted");
	ASSERT_OK_PTR(h_heald_wait(&s.h, "HEALED", NULL, SHOP_WAIT_MS), "healed after approval");
	now = h_read(schema, NULL);
	ASSERT_STREQ(now, good, "the schema is restored");
	free(now);
out:
	free(token);
	free(good);
	shop_stop(&s);
}

/* The SSE stream delivers a heal's steps in order and resumes after Last-Event-ID. */
static void test_event_stream(void)
{
	char trace[64], url[128], file[PATH_MAX + 16], lastid[64], *text, *p;
	const char *want[] = { "\"type\":\"API_FAILURE\"", "\"type\":\"RCA_READY\"", "\"type\":\"PATCH_READY\"",
			       "\"type\":\"PATCH_APPLIED\"", "\"type\":\"RELOAD_DONE\"",
			       "\"type\":\"VERIFY_PASS\"", "\"type\":\"HEALED\"" };
	struct shop s;
	pid_t pid;
	size_t i;
	long first_id = -1;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(api_shop(&s, NULL), "shop up under heald"))
		goto out;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/v1/events/stream", api_port);
	snprintf(file, sizeof(file), "%s/stream.txt", s.h.dir);
	pid = fork();
	if (pid == 0) {
		if (!freopen(file, "w", stdout))
			_exit(126);
		execl("/usr/bin/curl", "curl", "-s", "-N", "-m", "8", url, (char *)NULL);
		_exit(127);
	}
	usleep(300000);
	break_and_heal(&s, trace, sizeof(trace));
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	text = h_read(file, NULL);
	p = text;
	for (i = 0; p && i < sizeof(want) / sizeof(want[0]); i++) {
		p = strstr(p, want[i]);
		ASSERT_OK_PTR(p, want[i]);
	}
	/* resume: after the first event's id, the first event is not sent again */
	if (text && (p = strstr(text, "id: ")))
		first_id = atol(p + 4);
	free(text);
	if (!ASSERT_GE(first_id, 1, "events carry ids"))
		goto out;
	snprintf(lastid, sizeof(lastid), "Last-Event-ID: %ld", first_id);
	pid = fork();
	if (pid == 0) {
		if (!freopen(file, "w", stdout))
			_exit(126);
		execl("/usr/bin/curl", "curl", "-s", "-N", "-m", "1", "-H", lastid, url, (char *)NULL);
		_exit(127);
	}
	waitpid(pid, NULL, 0);
	text = h_read(file, NULL);
	ASSERT_TRUE(text && !strstr(text, want[0]) && strstr(text, "\"type\":\"HEALED\""),
		    "resumed after Last-Event-ID: the later steps only");
	{
		char idline[32];

		snprintf(idline, sizeof(idline), "id: %ld\n", first_id + 1);
		ASSERT_TRUE(text && strstr(text, idline), "starting right after it");
	}
	free(text);
out:
	shop_stop(&s);
}

/* A real Prometheus scrapes heald; its query API returns the heal. */
static void test_prometheus_scrape(void)
{
	char dir[PATH_MAX], cfg[PATH_MAX + 32], yml[512], listen[64], data[PATH_MAX + 32], trace[64];
	char url[256], *out = NULL;
	struct shop s;
	pid_t prom = -1;
	int pport, i;
	bool seen = false;

	if (!h_need_bpf())
		return;
	if (access("/usr/bin/prometheus", X_OK)) {
		h_skip("prometheus is not installed (make deps installs it)");
		return;
	}
	if (!ASSERT_TRUE(api_shop(&s, NULL), "shop up under heald"))
		goto out;
	snprintf(dir, sizeof(dir), "%s", s.h.dir);
	snprintf(cfg, sizeof(cfg), "%s/prometheus.yml", dir);
	snprintf(data, sizeof(data), "%s/prom-data", dir);
	snprintf(yml, sizeof(yml),
		 "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: heald\n"
		 "    static_configs:\n      - targets: ['127.0.0.1:%d']\n", api_port);
	h_write(cfg, yml);
	pport = h_free_port();
	snprintf(listen, sizeof(listen), "--web.listen-address=127.0.0.1:%d", pport);
	prom = fork();
	if (prom == 0) {
		char c1[PATH_MAX + 64], c2[PATH_MAX + 64];

		snprintf(c1, sizeof(c1), "--config.file=%s", cfg);
		snprintf(c2, sizeof(c2), "--storage.tsdb.path=%s", data);
		if (!freopen("/dev/null", "w", stdout))
			_exit(126);
		if (!freopen("/dev/null", "w", stderr))
			_exit(126);
		execl("/usr/bin/prometheus", "prometheus", c1, c2, listen, (char *)NULL);
		_exit(127);
	}
	break_and_heal(&s, trace, sizeof(trace));
	snprintf(url, sizeof(url),
		 "http://127.0.0.1:%d/api/v1/query?query=heal_heals_total%%7Boutcome%%3D%%22HEALED%%22%%7D",
		 pport);
	for (i = 0; i < 60 && !seen; i++) {
		char *argv[] = { "/usr/bin/curl", "-s", "-m", "2", url, NULL };

		free(out);
		out = NULL;
		h_run(argv, &out);
		seen = out && strstr(out, "\"playbook\":\"restore_known_good\"") && strstr(out, "\"1\"]");
		if (!seen)
			usleep(250000);
	}
	if (!ASSERT_TRUE(seen, "Prometheus has heal_heals_total{outcome=HEALED} = 1"))
		fprintf(stderr, "  last answer: %s\n", out ? out : "(none)");
out:
	free(out);
	if (prom > 0) {
		kill(prom, SIGTERM);
		waitpid(prom, NULL, 0);
	}
	shop_stop(&s);
}

static int healctl(struct shop *s, char **out, const char *a1, const char *a2)
{
	char url[64], sd[PATH_MAX + 16];
	char *argv[] = { (char *)h_bin("healctl"), "--url", url, "--state-dir", sd, (char *)a1, (char *)a2,
			 NULL };
	int st;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d", api_port);
	snprintf(sd, sizeof(sd), "%s/state", s->h.dir);
	st = h_run(argv, out);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* healctl drives a running heald: status, pause/resume, mode, rollback of a finished heal. */
static void test_controls(void)
{
	char schema[PATH_MAX + 64], trace[64], *out = NULL, *good = NULL, *now;
	struct shop s;
	cJSON *end;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(api_shop(&s, NULL), "shop up under heald"))
		goto done;
	ASSERT_EQ(healctl(&s, &out, "status", NULL), 0, "healctl status");
	ASSERT_TRUE(out && strstr(out, "mode") && strstr(out, "auto"), "status shows the mode");
	free(out);
	ASSERT_EQ(healctl(&s, &out, "targets", NULL), 0, "healctl targets");
	ASSERT_TRUE(out && strstr(out, "shop") && strstr(out, "payments"), "targets listed");
	free(out);

	/* paused: the failure is seen, nothing is healed */
	ASSERT_EQ(healctl(&s, &out, "pause", NULL), 0, "healctl pause");
	free(out);
	h_heald_drain(&s.h, 300);
	shop_path(schema, sizeof(schema), &s, "returns-schema.json");
	good = h_read(schema, NULL);
	h_write(schema, BROKEN_SCHEMA);
	h_http(s.port, "POST", "/returns", A_RETURN);
	ASSERT_OK_PTR(h_heald_wait(&s.h, "API_FAILURE", NULL, SHOP_WAIT_MS), "the failure is seen");
	h_heald_drain(&s.h, 1000);
	ASSERT_EQ(h_heald_count(&s.h, "RCA_READY"), 0, "paused: no heal started");
	ASSERT_EQ(healctl(&s, &out, "status", NULL), 0, "status while paused");
	ASSERT_TRUE(out && strstr(out, "paused") && strstr(out, "yes"), "status says paused");
	free(out);

	/* resumed, in dry-run: planned, not changed */
	ASSERT_EQ(healctl(&s, &out, "mode", "dry-run"), 0, "healctl mode dry-run");
	free(out);
	ASSERT_EQ(healctl(&s, &out, "resume", NULL), 0, "healctl resume");
	free(out);
	h_heald_drain(&s.h, 400);
	h_http(s.port, "POST", "/returns", A_RETURN);
	ASSERT_OK_PTR(h_heald_wait(&s.h, "DRY_RUN", NULL, SHOP_WAIT_MS), "dry-run after the mode change");
	now = h_read(schema, NULL);
	ASSERT_STREQ(now, BROKEN_SCHEMA, "dry-run changed nothing");
	free(now);

	/* auto again: healed; then a person rolls the heal back */
	ASSERT_EQ(healctl(&s, &out, "mode", "auto"), 0, "healctl mode auto");
	free(out);
	ASSERT_EQ(healctl(&s, &out, "mode", "sideways"), 1, "an unknown mode is refused");
	free(out);
	h_heald_drain(&s.h, 400);
	h_http(s.port, "POST", "/returns", A_RETURN);
	end = h_heald_wait(&s.h, "HEALED", NULL, SHOP_WAIT_MS);
	if (!ASSERT_OK_PTR(end, "healed"))
		goto done;
	snprintf(trace, sizeof(trace), "%s", shop_trace_of(end));
	now = h_read(schema, NULL);
	ASSERT_STREQ(now, good, "healed: the schema is restored");
	free(now);
	h_heald_drain(&s.h, 1200);
	ASSERT_EQ(healctl(&s, &out, "rollback", trace), 0, "healctl rollback TRACE");
	free(out);
	ASSERT_OK_PTR(h_heald_wait(&s.h, "ROLLBACK_DONE", NULL, SHOP_WAIT_MS), "rolled back");
	now = h_read(schema, NULL);
	ASSERT_STREQ(now, BROKEN_SCHEMA, "the rollback brought back the bytes from before the heal");
	free(now);
	ASSERT_EQ(healctl(&s, &out, "rollback", "tr-nope"), 1, "an unknown trace is an error");
	free(out);
	out = NULL;
done:
	free(good);
	shop_stop(&s);
}

/* A person breaks the shop on purpose through the API (the dashboard's trigger); heald heals it. */
static void test_trigger(void)
{
	char top[512], extra[1024], cwd[PATH_MAX], *token = NULL, *out = NULL;
	struct shop_opts o = { .top = top, .shop_extra = extra };
	struct shop s;
	cJSON *arr, *ev;

	if (!h_need_bpf())
		return;
	api_port = h_free_port();
	snprintf(top, sizeof(top), "\"listen\": \"127.0.0.1:%d\",", api_port);
	snprintf(extra, sizeof(extra),
		 "\"triggers\": [{\"name\": \"returns-schema\", \"description\": \"a schema change\","
		 " \"command\": [\"%s/tools/shopctl.sh\", \"on\", \"returns-schema\", \"@ETC@/shop.json\"]}],",
		 getcwd(cwd, sizeof(cwd)) ? cwd : ".");
	if (!ASSERT_TRUE(shop_start_opts(&s, &o), "shop up under heald"))
		goto out;
	token = token_of(&s);
	ASSERT_EQ(curl("GET", "/api/v1/triggers", NULL, NULL, NULL, &out), 200, "GET triggers");
	arr = out ? cJSON_Parse(out) : NULL;
	ASSERT_EQ(cJSON_GetArraySize(arr), 1, "one trigger listed");
	ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "name")),
		     "returns-schema", "its name");
	cJSON_Delete(arr);
	free(out);
	out = NULL;
	ASSERT_EQ(curl("POST", "/api/v1/trigger", NULL, "{\"target\": \"shop\", \"name\": \"returns-schema\"}",
		       NULL, NULL), 401, "no token: 401");
	ASSERT_EQ(curl("POST", "/api/v1/trigger", token, "{\"target\": \"shop\", \"name\": \"nope\"}", NULL,
		       NULL), 404, "unknown trigger: 404");
	ASSERT_EQ(curl("POST", "/api/v1/trigger", token,
		       "{\"target\": \"shop\", \"name\": \"returns-schema\"}", NULL, NULL), 202, "triggered");
	ev = h_heald_wait(&s.h, "TRIGGERED", NULL, SHOP_WAIT_MS);
	if (ASSERT_OK_PTR(ev, "TRIGGERED event"))
		ASSERT_EQ(h_num(ev, "exit_code"), 0, "the trigger's command succeeded");
	h_http(s.port, "POST", "/returns", A_RETURN);
	ASSERT_OK_PTR(h_heald_wait(&s.h, "HEALED", NULL, SHOP_WAIT_MS), "and heald healed it");
out:
	free(token);
	shop_stop(&s);
}

int main(void)
{
	h_subtest("trigger_from_the_api", test_trigger);
	h_subtest("healctl_controls", test_controls);
	h_subtest("metrics_and_api", test_metrics_and_api);
	h_subtest("auth_and_approve", test_auth_and_approve);
	h_subtest("event_stream", test_event_stream);
	h_subtest("prometheus_scrape", test_prometheus_scrape);
	return h_summary("test_api");
}
