// SPDX-License-Identifier: MIT
/*
 * http: a real server on an ephemeral loopback port, libcurl as the client,
 * all in this process: routes, /metrics (and promtool), auth, bodies, errors,
 * the listen policy, the events API and its SSE stream, the token file.
 */
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "heal/eventlog.h"
#include "heal/http.h"
#include "heal/metrics.h"

#define TOKEN "test-token-0123456789abcdef"

static struct http *srv;
static struct eventlog *events;
static struct metrics *reg;
static struct metrics_family *fam_failures, *fam_duration;
static int post_calls;

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* -- the owner's hooks ------------------------------------------------------------------------- */

static void get_status(void *ctx, const char *path, const struct http_req *rq, struct http_reply *r)
{
	r->json = strdup("{\"status\":\"ok\",\"mode\":\"auto\"}");
}

static void get_empty(void *ctx, const char *path, const struct http_req *rq, struct http_reply *r)
{
	r->status = 204;
	r->json = strdup("{\"dropped\":true}"); /* 204 has no body: dropped */
}

static void get_traces(void *ctx, const char *path, const struct http_req *rq, struct http_reply *r)
{
	const char *limit = http__arg(rq, "limit");
	cJSON *doc;

	if (!strcmp(path, "/api/v1/traces/missing")) {
		http__reply_error(r, 404, "no trace %s", "missing");
		return;
	}
	doc = cJSON_CreateObject();
	cJSON_AddStringToObject(doc, "path", path);
	cJSON_AddStringToObject(doc, "route", ctx);
	if (limit)
		cJSON_AddStringToObject(doc, "limit", limit);
	http__reply_cjson(r, 200, doc);
}

static void post_echo(void *ctx, const char *path, const cJSON *body, const struct http_req *rq,
		      struct http_reply *r)
{
	cJSON *doc = cJSON_CreateObject();

	__atomic_add_fetch(&post_calls, 1, __ATOMIC_RELAXED);
	cJSON_AddStringToObject(doc, "path", path);
	cJSON_AddItemToObject(doc, "body", cJSON_Duplicate(body, 1));
	http__reply_cjson(r, 202, doc);
}

static int asset(void *ctx, const char *path, struct http_asset *out)
{
	static const char index_html[] = "<!doctype html><title>heal</title>";
	static const char app_js[] = "console.log('heal');";

	if (!strcmp(path, "/")) {
		*out = (struct http_asset){index_html, sizeof(index_html) - 1,
					   "text/html; charset=utf-8"};
		return 0;
	}
	if (!strcmp(path, "/app.js")) {
		*out = (struct http_asset){app_js, sizeof(app_js) - 1, "text/javascript"};
		return 0;
	}
	return -1;
}

static const struct http_route routes[] = {
    {.prefix = "/api/v1/status", .get = get_status},
    {.prefix = "/api/v1/traces", .get = get_traces, .post = post_echo, .ctx = "traces"},
    {.prefix = "/api/v1/traces/special", .get = get_traces, .ctx = "special"},
    {.prefix = "/api/v1/pause", .post = post_echo},
    {.prefix = "/api/v1/empty", .get = get_empty},
};

static struct http *start(struct http_opts *o)
{
	char err[256];
	struct http *h;

	o->listen = o->listen ? o->listen : "127.0.0.1:0";
	o->token = o->token ? o->token : TOKEN;
	h = http__new(o, err, sizeof(err));
	if (!h)
		fail_msg("http__new: %s", err);
	assert_true(http__port(h) > 0);
	return h;
}

/* -- a libcurl client -------------------------------------------------------------------------- */

struct resp {
	long status;
	char *body, *hdrs;
	size_t len, hlen;
};

static size_t on_body(char *p, size_t sz, size_t n, void *ctx)
{
	struct resp *r = ctx;
	char *b = realloc(r->body, r->len + sz * n + 1);

	assert_non_null(b);
	memcpy(b + r->len, p, sz * n);
	r->len += sz * n;
	b[r->len] = '\0';
	r->body = b;
	return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ctx)
{
	struct resp *r = ctx;
	char *b = realloc(r->hdrs, r->hlen + sz * n + 1);

	assert_non_null(b);
	memcpy(b + r->hlen, p, sz * n);
	r->hlen += sz * n;
	b[r->hlen] = '\0';
	r->hdrs = b;
	return sz * n;
}

static void resp_free(struct resp *r)
{
	free(r->body);
	free(r->hdrs);
	memset(r, 0, sizeof(*r));
}

/* A header's value in r (case-insensitive name), copied into out; NULL when absent. */
static const char *resp_header(const struct resp *r, const char *name, char *out, size_t len)
{
	const char *p = r->hdrs;
	size_t n = strlen(name);

	while (p && *p) {
		const char *eol = strstr(p, "\r\n");

		if (!eol)
			break;
		if (!strncasecmp(p, name, n) && p[n] == ':') {
			const char *v = p + n + 1;

			while (*v == ' ')
				v++;
			snprintf(out, len, "%.*s", (int)(eol - v), v);
			return out;
		}
		p = eol + 2;
	}
	return NULL;
}

static CURL *easy(unsigned short port, const char *path)
{
	CURL *c = curl_easy_init();
	char url[512];

	assert_non_null(c);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
	return c;
}

/*
 * One request. hdrs: NULL-terminated extra header lines. body: sent with
 * its length (POST), or NULL. Returns the status; *out keeps the reply
 * (may be NULL).
 */
static long req(struct http *h, const char *method, const char *path, const char *const *hdrs,
		const char *body, struct resp *out)
{
	struct resp r = {0};
	struct curl_slist *sl = NULL;
	CURL *c = easy(http__port(h), path);
	CURLcode rc;
	long status;

	for (; hdrs && *hdrs; hdrs++)
		sl = curl_slist_append(sl, *hdrs);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, sl);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
	if (!strcmp(method, "HEAD"))
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else if (strcmp(method, "GET") && strcmp(method, "POST"))
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (!strcmp(method, "POST")) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)(body ? strlen(body) : 0));
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
	}
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK)
		fail_msg("%s %s: %s", method, path, curl_easy_strerror(rc));
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
	curl_easy_cleanup(c);
	curl_slist_free_all(sl);
	status = r.status;
	if (out)
		*out = r;
	else
		resp_free(&r);
	return status;
}

/* An error reply: JSON {"error": "...", "status": N} matching the HTTP status, error containing
 * needle. */
static void assert_json_error(const struct resp *r, long status, const char *needle)
{
	cJSON *doc = cJSON_Parse(r->body ? r->body : "");
	const cJSON *e, *s;
	char ct[128];

	assert_int_equal(r->status, status);
	assert_non_null(resp_header(r, "Content-Type", ct, sizeof(ct)));
	assert_string_equal(ct, "application/json");
	assert_non_null(doc);
	e = cJSON_GetObjectItem(doc, "error");
	s = cJSON_GetObjectItem(doc, "status");
	assert_true(cJSON_IsString(e));
	assert_true(cJSON_IsNumber(s));
	assert_int_equal(s->valueint, status);
	if (needle && !strstr(e->valuestring, needle))
		fail_msg("error \"%s\" lacks \"%s\"", e->valuestring, needle);
	cJSON_Delete(doc);
}

/* -- group setup ------------------------------------------------------------------------------- */

static int setup_group(void **state)
{
	static const char *const target_type[] = {"target", "type", NULL};
	const struct metrics_desc df = {.name = "heal_failures_total",
					.help = "Failures detected, by target and type.",
					.type = METRICS_COUNTER,
					.labels = target_type};
	const struct metrics_desc dd = {.name = "heal_heal_duration_seconds",
					.help = "Seconds from detection to outcome.",
					.type = METRICS_HISTOGRAM};
	struct http_opts o = {.routes = routes,
			      .n_routes = sizeof(routes) / sizeof(routes[0]),
			      .asset = asset,
			      .heartbeat_ms = 150};
	char err[256];

	/* the client must talk to this server, whatever the environment says */
	unsetenv("http_proxy");
	unsetenv("HTTP_PROXY");
	unsetenv("all_proxy");
	unsetenv("ALL_PROXY");
	if (curl_global_init(CURL_GLOBAL_DEFAULT))
		return -1;
	events = eventlog__new(64, 0);
	reg = metrics__new();
	if (!events || !reg || metrics__register(reg, &df, &fam_failures) ||
	    metrics__register(reg, &dd, &fam_duration) || metrics__register_process(reg))
		return -1;
	metrics__counter_inc(fam_failures, (const char *const[]){"shop", "SYSCALL_FAILURE"});
	metrics__observe(fam_duration, NULL, 3.2);
	o.events = events;
	o.metrics = reg;
	o.listen = "127.0.0.1:0";
	o.token = TOKEN;
	srv = http__new(&o, err, sizeof(err));
	if (!srv) {
		fprintf(stderr, "http__new: %s\n", err);
		return -1;
	}
	return 0;
}

static int teardown_group(void **state)
{
	http__free(srv);
	eventlog__free(events);
	metrics__free(reg);
	curl_global_cleanup();
	return 0;
}

/* -- routes, assets, errors -------------------------------------------------------------------- */

static void test_get_routes(void **state)
{
	struct resp r;
	char ct[128];
	cJSON *doc;

	assert_int_equal(req(srv, "GET", "/api/v1/status", NULL, NULL, &r), 200);
	assert_string_equal(resp_header(&r, "Content-Type", ct, sizeof(ct)), "application/json");
	assert_string_equal(resp_header(&r, "Cache-Control", ct, sizeof(ct)), "no-store");
	assert_string_equal(r.body, "{\"status\":\"ok\",\"mode\":\"auto\"}");
	resp_free(&r);

	/* prefix routes see the whole path and the decoded query */
	assert_int_equal(req(srv, "GET", "/api/v1/traces/tr-7?limit=5%30", NULL, NULL, &r), 200);
	doc = cJSON_Parse(r.body);
	assert_non_null(doc);
	assert_string_equal(cJSON_GetObjectItem(doc, "path")->valuestring, "/api/v1/traces/tr-7");
	assert_string_equal(cJSON_GetObjectItem(doc, "route")->valuestring, "traces");
	assert_string_equal(cJSON_GetObjectItem(doc, "limit")->valuestring, "50");
	cJSON_Delete(doc);
	resp_free(&r);
	/* the longest prefix wins */
	assert_int_equal(req(srv, "GET", "/api/v1/traces/special/x", NULL, NULL, &r), 200);
	assert_non_null(strstr(r.body, "\"route\":\"special\""));
	resp_free(&r);
	/* a prefix matches at a '/' boundary only */
	assert_int_equal(req(srv, "GET", "/api/v1/tracesX", NULL, NULL, &r), 404);
	assert_json_error(&r, 404, "/api/v1/tracesX");
	resp_free(&r);
	/* a hook's own error */
	assert_int_equal(req(srv, "GET", "/api/v1/traces/missing", NULL, NULL, &r), 404);
	assert_json_error(&r, 404, "no trace missing");
	resp_free(&r);
	/* 204: no body at all */
	assert_int_equal(req(srv, "GET", "/api/v1/empty", NULL, NULL, &r), 204);
	assert_null(r.body);
	resp_free(&r);
	/* HEAD: headers, no body */
	assert_int_equal(req(srv, "HEAD", "/api/v1/status", NULL, NULL, &r), 200);
	assert_null(r.body);
	resp_free(&r);

	/* static assets */
	assert_int_equal(req(srv, "GET", "/", NULL, NULL, &r), 200);
	assert_string_equal(resp_header(&r, "Content-Type", ct, sizeof(ct)),
			    "text/html; charset=utf-8");
	assert_string_equal(r.body, "<!doctype html><title>heal</title>");
	resp_free(&r);
	assert_int_equal(req(srv, "GET", "/app.js", NULL, NULL, &r), 200);
	assert_string_equal(resp_header(&r, "Content-Type", ct, sizeof(ct)), "text/javascript");
	resp_free(&r);
	assert_int_equal(req(srv, "GET", "/nope.css", NULL, NULL, &r), 404);
	assert_json_error(&r, 404, "/nope.css");
	resp_free(&r);
}

static void test_unknown_path_404(void **state)
{
	struct http_opts o = {0};
	struct resp r;
	struct http *bare;

	assert_int_equal(req(srv, "GET", "/api/v1/nope", NULL, NULL, &r), 404);
	assert_json_error(&r, 404, "no such endpoint: /api/v1/nope");
	resp_free(&r);
	assert_int_equal(req(srv, "PUT", "/api/v2/x", NULL, NULL, &r), 404);
	assert_json_error(&r, 404, NULL);
	resp_free(&r);
	/* a server without assets, metrics or events: 404 for all of those */
	bare = start(&o);
	assert_int_equal(req(bare, "GET", "/", NULL, NULL, NULL), 404);
	assert_int_equal(req(bare, "GET", "/metrics", NULL, NULL, NULL), 404);
	assert_int_equal(req(bare, "GET", "/api/v1/events", NULL, NULL, NULL), 404);
	assert_int_equal(req(bare, "GET", "/api/v1/events/stream", NULL, NULL, NULL), 404);
	http__free(bare);
}

static void test_wrong_method_405(void **state)
{
	struct resp r;
	char allow[64];

	assert_int_equal(req(srv, "DELETE", "/api/v1/status", NULL, NULL, &r), 405);
	assert_json_error(&r, 405, "DELETE");
	assert_string_equal(resp_header(&r, "Allow", allow, sizeof(allow)), "GET, HEAD");
	resp_free(&r);
	/* a route with only a post hook */
	assert_int_equal(req(srv, "GET", "/api/v1/pause", NULL, NULL, &r), 405);
	assert_string_equal(resp_header(&r, "Allow", allow, sizeof(allow)), "POST");
	resp_free(&r);
	/* both */
	assert_int_equal(req(srv, "PUT", "/api/v1/traces/tr-1", NULL, NULL, &r), 405);
	assert_string_equal(resp_header(&r, "Allow", allow, sizeof(allow)), "GET, HEAD, POST");
	resp_free(&r);
	/* built-in read-only endpoints and assets */
	assert_int_equal(req(srv, "POST", "/metrics", NULL, "{}", &r), 405);
	assert_json_error(&r, 405, NULL);
	resp_free(&r);
	assert_int_equal(req(srv, "POST", "/api/v1/events", NULL, "{}", NULL), 405);
	assert_int_equal(req(srv, "HEAD", "/api/v1/events/stream", NULL, NULL, NULL), 405);
	assert_int_equal(req(srv, "POST", "/", NULL, "{}", NULL), 405);
}

/* -- /metrics ---------------------------------------------------------------------------------- */

static void test_metrics_endpoint(void **state)
{
	char path[] = "/tmp/heal-test-http-metrics-XXXXXX", cmd[256], ct[128];
	struct resp r;
	FILE *fp;
	int fd, st;

	assert_int_equal(req(srv, "GET", "/metrics", NULL, NULL, &r), 200);
	assert_string_equal(resp_header(&r, "Content-Type", ct, sizeof(ct)),
			    "text/plain; version=0.0.4; charset=utf-8");
	assert_non_null(
	    strstr(r.body, "# TYPE heal_failures_total counter\n"
			   "heal_failures_total{target=\"shop\",type=\"SYSCALL_FAILURE\"} 1\n"));
	assert_non_null(strstr(r.body, "heal_heal_duration_seconds_bucket{le=\"2.5\"} 0\n"
				       "heal_heal_duration_seconds_bucket{le=\"5\"} 1\n"));
	assert_non_null(strstr(r.body, "heal_heal_duration_seconds_count 1\n"));
	assert_non_null(strstr(r.body, "\nprocess_resident_memory_bytes "));
	/* families sorted */
	assert_true(strstr(r.body, "# HELP heal_failures_total") <
		    strstr(r.body, "# HELP heal_heal_duration_seconds"));
	assert_true(strstr(r.body, "# HELP heal_heal_duration_seconds") <
		    strstr(r.body, "# HELP process_cpu"));

	if (system("command -v promtool >/dev/null 2>&1") != 0) {
		printf("# skipped promtool check: promtool not installed (apt-get install "
		       "prometheus)\n");
	} else {
		fd = mkstemp(path);
		assert_true(fd >= 0);
		fp = fdopen(fd, "w");
		assert_non_null(fp);
		fputs(r.body, fp);
		fclose(fp);
		snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
		st = system(cmd);
		unlink(path);
		if (!WIFEXITED(st) || WEXITSTATUS(st))
			fail_msg("promtool check metrics failed on:\n%s", r.body);
	}
	resp_free(&r);
}

/* -- POST: auth, bodies ------------------------------------------------------------------------ */

static void test_auth(void **state)
{
	struct resp r;
	char v[128];
	int before = __atomic_load_n(&post_calls, __ATOMIC_RELAXED);

	/* no token */
	assert_int_equal(req(srv, "POST", "/api/v1/pause", NULL, "{}", &r), 401);
	assert_json_error(&r, 401, "Authorization: Bearer");
	assert_string_equal(resp_header(&r, "WWW-Authenticate", v, sizeof(v)),
			    "Bearer realm=\"heald\"");
	resp_free(&r);
	assert_int_equal(req(srv, "POST", "/api/v1/pause",
			     (const char *[]){"Authorization: Basic dXNlcjpwdw==", NULL}, "{}",
			     NULL),
			 401);
	assert_int_equal(req(srv, "POST", "/api/v1/pause",
			     (const char *[]){"Authorization: Bearer", NULL}, "{}", NULL),
			 401);
	/* wrong tokens: a different one, a prefix, a longer one */
	assert_int_equal(req(srv, "POST", "/api/v1/pause",
			     (const char *[]){"Authorization: Bearer nope", NULL}, "{}", &r),
			 403);
	assert_json_error(&r, 403, "wrong token");
	resp_free(&r);
	assert_int_equal(req(srv, "POST", "/api/v1/pause",
			     (const char *[]){"Authorization: Bearer test-token", NULL}, "{}",
			     NULL),
			 403);
	assert_int_equal(req(srv, "POST", "/api/v1/pause",
			     (const char *[]){"Authorization: Bearer " TOKEN "x", NULL}, "{}",
			     NULL),
			 403);
	/* no hook ran so far */
	assert_int_equal(__atomic_load_n(&post_calls, __ATOMIC_RELAXED), before);
	/* the right one (scheme case-insensitive) */
	assert_int_equal(req(srv, "POST", "/api/v1/pause",
			     (const char *[]){"Authorization: bearer " TOKEN, NULL},
			     "{\"why\":\"test\"}", &r),
			 202);
	assert_string_equal(r.body, "{\"path\":\"/api/v1/pause\",\"body\":{\"why\":\"test\"}}");
	resp_free(&r);
	assert_int_equal(__atomic_load_n(&post_calls, __ATOMIC_RELAXED), before + 1);
	/* reading needs no token */
	assert_int_equal(req(srv, "GET", "/api/v1/status", NULL, NULL, NULL), 200);
}

static void test_malformed_json(void **state)
{
	static const char *const auth[] = {"Authorization: Bearer " TOKEN, NULL};
	static const char *const bad[] = {"{bad", "[1,2]", "\"str\"", "{} {}", "{\"a\":1", "nul"};
	struct resp r;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(req(srv, "POST", "/api/v1/traces/tr-1/approve", auth, bad[i], &r),
				 400);
		assert_json_error(&r, 400, "not a JSON object");
		resp_free(&r);
	}
	/* an empty body is {}, whitespace around an object is fine */
	assert_int_equal(req(srv, "POST", "/api/v1/traces/tr-1/approve", auth, "", &r), 202);
	assert_string_equal(r.body, "{\"path\":\"/api/v1/traces/tr-1/approve\",\"body\":{}}");
	resp_free(&r);
	assert_int_equal(
	    req(srv, "POST", "/api/v1/traces/tr-1/approve", auth, " \n{\"a\":[1,2]}\n ", &r), 202);
	assert_string_equal(r.body,
			    "{\"path\":\"/api/v1/traces/tr-1/approve\",\"body\":{\"a\":[1,2]}}");
	resp_free(&r);
}

struct chunked {
	size_t left;
};

static size_t read_chunked(char *buf, size_t sz, size_t n, void *ctx)
{
	struct chunked *c = ctx;
	size_t k = sz * n < c->left ? sz * n : c->left;

	memset(buf, ' ', k);
	c->left -= k;
	return k;
}

static void test_oversized_body(void **state)
{
	static const char *const auth[] = {"Authorization: Bearer " TOKEN, NULL};
	static const char *const auth_no_expect[] = {"Authorization: Bearer " TOKEN,
						     "Expect:", NULL};
	size_t max = 64u << 10;
	char *body = malloc(max + 2);
	struct chunked ch = {.left = 200000};
	struct curl_slist *sl = NULL;
	struct resp r = {0};
	CURL *c;

	assert_non_null(body);
	/* exactly the limit passes: {"p":"xxx..."} of 64 KiB */
	memset(body, 'x', max);
	memcpy(body, "{\"p\":\"", 6);
	memcpy(body + max - 2, "\"}", 3);
	assert_int_equal(strlen(body), max);
	assert_int_equal(req(srv, "POST", "/api/v1/pause", auth, body, NULL), 202);
	/* one byte more: 413, refused on its Content-Length (curl waits for 100 Continue) */
	memcpy(body + max - 2, "x\"}", 4);
	assert_int_equal(req(srv, "POST", "/api/v1/pause", auth, body, &r), 413);
	assert_json_error(&r, 413, "larger than 65536 bytes");
	resp_free(&r);
	/* without Expect the body is on its way: read and dropped, and the 413 still arrives */
	assert_int_equal(req(srv, "POST", "/api/v1/pause", auth_no_expect, body, &r), 413);
	assert_json_error(&r, 413, NULL);
	resp_free(&r);
	/* the size is no secret to those without the token: 401 first */
	assert_int_equal(req(srv, "POST", "/api/v1/pause", NULL, body, NULL), 401);
	free(body);

	/* chunked, no length announced: counted as it comes */
	c = easy(http__port(srv), "/api/v1/pause");
	sl = curl_slist_append(sl, auth[0]);
	sl = curl_slist_append(sl, "Transfer-Encoding: chunked");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, sl);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_READFUNCTION, read_chunked);
	curl_easy_setopt(c, CURLOPT_READDATA, &ch);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
	assert_json_error(&r, 413, NULL);
	resp_free(&r);
	curl_easy_cleanup(c);
	curl_slist_free_all(sl);
}

/* -- listening --------------------------------------------------------------------------------- */

static void test_listen_policy(void **state)
{
	static const char *const bad[] = {"127.0.0.1",	  "127.0.0.1:",	    "127.0.0.1:99999",
					  "127.0.0.1:8x", "example.com:80", "::1:80",
					  "[::1]80",	  "[::1",	    "1.2.3:80"};
	struct http_opts o = {.token = TOKEN};
	char err[256], listen_s[64];
	struct http *h;
	size_t i;

	/* not loopback: refused, and the error says how to allow it */
	o.listen = "0.0.0.0:0";
	assert_null(http__new(&o, err, sizeof(err)));
	assert_non_null(strstr(err, "0.0.0.0:0 is not a loopback address"));
	assert_non_null(strstr(err, "allow_public"));
	o.listen = ":0";
	assert_null(http__new(&o, err, sizeof(err)));
	assert_non_null(strstr(err, "allow_public"));
	o.listen = "[::]:0";
	assert_null(http__new(&o, err, sizeof(err)));
	assert_non_null(strstr(err, "allow_public"));
	o.listen = "192.0.2.1:8080";
	assert_null(http__new(&o, err, sizeof(err)));
	assert_non_null(strstr(err, "allow_public"));
	/* ... unless asked for */
	o.listen = "0.0.0.0:0";
	o.allow_public = 1;
	h = http__new(&o, err, sizeof(err));
	if (!h)
		fail_msg("allow_public: %s", err);
	http__free(h);
	o.allow_public = 0;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o.listen = bad[i];
		assert_null(http__new(&o, err, sizeof(err)));
		if (!strstr(err, "expected IPV4:PORT"))
			fail_msg("%s: %s", bad[i], err);
	}
	/* loopback names */
	o.listen = "localhost:0";
	h = http__new(&o, err, sizeof(err));
	if (!h)
		fail_msg("localhost: %s", err);
	http__free(h);
	o.listen = "[::1]:0";
	h = http__new(&o, err, sizeof(err));
	if (h) {
		/* served over IPv6 (this server has no routes: a JSON 404 is its answer) */
		CURL *c = curl_easy_init();
		struct resp r = {0};
		char url[64];

		snprintf(url, sizeof(url), "http://[::1]:%u/api/v1/status", http__port(h));
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
		curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
		assert_int_equal(curl_easy_perform(c), CURLE_OK);
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
		curl_easy_cleanup(c);
		assert_json_error(&r, 404, "/api/v1/status");
		resp_free(&r);
		http__free(h);
	} else {
		printf("# skipped [::1]: %s\n", err);
	}
	/* the port taken */
	snprintf(listen_s, sizeof(listen_s), "127.0.0.1:%u", http__port(srv));
	o.listen = listen_s;
	assert_null(http__new(&o, err, sizeof(err)));
	assert_non_null(strstr(err, "Address already in use"));
	/* a token is required */
	o.listen = "127.0.0.1:0";
	o.token = "";
	assert_null(http__new(&o, err, sizeof(err)));
	assert_non_null(strstr(err, "token"));
	o.token = "two words";
	assert_null(http__new(&o, err, sizeof(err)));
	assert_null(http__new(NULL, err, sizeof(err)));
}

static void test_host_guard(void **state)
{
	struct http_opts o = {
	    .listen = "0.0.0.0:0", .allow_public = 1, .routes = routes, .n_routes = 1};
	char name[256] = "", host[300];
	struct http *pub;
	struct resp r;

	/* a page on another origin, DNS-rebound to 127.0.0.1, cannot read the API */
	assert_int_equal(req(srv, "GET", "/api/v1/status",
			     (const char *[]){"Host: evil.example:80", NULL}, NULL, &r),
			 403);
	assert_json_error(&r, 403, "evil.example");
	resp_free(&r);
	assert_int_equal(req(srv, "GET", "/api/v1/status",
			     (const char *[]){"Host: localhost:7433", NULL}, NULL, NULL),
			 200);
	assert_int_equal(req(srv, "GET", "/api/v1/status",
			     (const char *[]){"Host: [::1]:7433", NULL}, NULL, NULL),
			 200);
	assert_int_equal(req(srv, "GET", "/api/v1/status",
			     (const char *[]){"Host: 127.1.2.3", NULL}, NULL, NULL),
			 200);
	/* this machine's own name */
	assert_int_equal(gethostname(name, sizeof(name) - 1), 0);
	snprintf(host, sizeof(host), "Host: %s:7433", name);
	assert_int_equal(
	    req(srv, "GET", "/api/v1/status", (const char *[]){host, NULL}, NULL, NULL), 200);
	/* a public server serves any name */
	pub = start(&o);
	assert_int_equal(req(pub, "GET", "/api/v1/status",
			     (const char *[]){"Host: heal.example.com", NULL}, NULL, NULL),
			 200);
	http__free(pub);
}

/* -- /api/v1/events ---------------------------------------------------------------------------- */

static cJSON *get_events(struct http *h, const char *query)
{
	char path[128];
	struct resp r;
	cJSON *doc;

	snprintf(path, sizeof(path), "/api/v1/events%s", query);
	assert_int_equal(req(h, "GET", path, NULL, NULL, &r), 200);
	doc = cJSON_Parse(r.body);
	if (!doc)
		fail_msg("not JSON: %s", r.body);
	resp_free(&r);
	return doc;
}

static int num(const cJSON *doc, const char *name)
{
	const cJSON *n = cJSON_GetObjectItem(doc, name);

	assert_true(cJSON_IsNumber(n));
	return n->valueint;
}

static void test_events_json(void **state)
{
	struct eventlog *el = eventlog__new(4, 0);
	struct http_opts o = {.events = el};
	struct http *h;
	const cJSON *evs;
	char line[64];
	cJSON *doc;
	int i;

	assert_non_null(el);
	h = start(&o);
	doc = get_events(h, "");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "events")), 0);
	assert_int_equal(num(doc, "last_id"), 0);
	assert_int_equal(num(doc, "next"), 0);
	cJSON_Delete(doc);
	for (i = 1; i <= 6; i++) {
		snprintf(line, sizeof(line), "{\"type\":\"HEAL_STEP\",\"n\":%d}", i);
		assert_int_equal(eventlog__append(el, line), i);
	}
	/* from the start: 1 and 2 were evicted, and that is said */
	doc = get_events(h, "?since=0");
	evs = cJSON_GetObjectItem(doc, "events");
	assert_int_equal(cJSON_GetArraySize(evs), 4);
	assert_int_equal(num(cJSON_GetArrayItem(evs, 0), "id"), 3);
	assert_int_equal(num(cJSON_GetObjectItem(cJSON_GetArrayItem(evs, 0), "event"), "n"), 3);
	assert_int_equal(num(cJSON_GetArrayItem(evs, 3), "id"), 6);
	assert_int_equal(num(doc, "missed"), 2);
	assert_int_equal(num(doc, "first_id"), 3);
	assert_int_equal(num(doc, "last_id"), 6);
	assert_int_equal(num(doc, "next"), 6);
	assert_null(cJSON_GetObjectItem(doc, "reset"));
	cJSON_Delete(doc);
	/* paging */
	doc = get_events(h, "?since=4&limit=1");
	evs = cJSON_GetObjectItem(doc, "events");
	assert_int_equal(cJSON_GetArraySize(evs), 1);
	assert_int_equal(num(cJSON_GetArrayItem(evs, 0), "id"), 5);
	assert_int_equal(num(doc, "next"), 5);
	assert_int_equal(num(doc, "missed"), 0);
	cJSON_Delete(doc);
	doc = get_events(h, "?since=6");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "events")), 0);
	assert_int_equal(num(doc, "next"), 6);
	cJSON_Delete(doc);
	/* a cursor from an earlier run */
	doc = get_events(h, "?since=1000");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(doc, "reset")));
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "events")), 4);
	cJSON_Delete(doc);
	/* bad arguments */
	assert_int_equal(req(h, "GET", "/api/v1/events?since=abc", NULL, NULL, NULL), 400);
	assert_int_equal(req(h, "GET", "/api/v1/events?since=-1", NULL, NULL, NULL), 400);
	assert_int_equal(
	    req(h, "GET", "/api/v1/events?since=99999999999999999999999", NULL, NULL, NULL), 400);
	assert_int_equal(req(h, "GET", "/api/v1/events?limit=0", NULL, NULL, NULL), 400);
	assert_int_equal(req(h, "GET", "/api/v1/events?limit=1001", NULL, NULL, NULL), 400);
	http__free(h);
	eventlog__free(el);
}

/* -- SSE --------------------------------------------------------------------------------------- */

/* A stream client on curl's multi interface, driven from the test's own thread. */
struct sse {
	CURLM *multi;
	CURL *easy;
	struct curl_slist *hdrs;
	struct resp r;
	int done;
	CURLcode result;
};

static void sse_open(struct sse *s, struct http *h, const char *path, const char *last_event_id)
{
	char hdr[64];

	memset(s, 0, sizeof(*s));
	s->multi = curl_multi_init();
	s->easy = easy(http__port(h), path);
	curl_easy_setopt(s->easy, CURLOPT_TIMEOUT_MS, 0L);
	if (last_event_id) {
		snprintf(hdr, sizeof(hdr), "Last-Event-ID: %s", last_event_id);
		s->hdrs = curl_slist_append(s->hdrs, hdr);
	}
	curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->hdrs);
	curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, &s->r);
	curl_easy_setopt(s->easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(s->easy, CURLOPT_HEADERDATA, &s->r);
	curl_multi_add_handle(s->multi, s->easy);
}

/* Drive the transfer until the body holds needle (1), it ended (needle NULL: 1, else 0) or timeout
 * (0). */
static int sse_pump(struct sse *s, const char *needle, int timeout_ms)
{
	long long end = mono_ms() + timeout_ms;

	for (;;) {
		CURLMsg *msg;
		int running, left;

		if (needle && s->r.body && strstr(s->r.body, needle))
			return 1;
		if (s->done)
			return !needle;
		if (mono_ms() > end)
			return 0;
		curl_multi_perform(s->multi, &running);
		while ((msg = curl_multi_info_read(s->multi, &left)))
			if (msg->msg == CURLMSG_DONE) {
				s->done = 1;
				s->result = msg->data.result;
			}
		curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &s->r.status);
		if (!s->done)
			curl_multi_poll(s->multi, NULL, 0, 20, NULL);
	}
}

static void sse_close(struct sse *s)
{
	curl_multi_remove_handle(s->multi, s->easy);
	curl_easy_cleanup(s->easy);
	curl_multi_cleanup(s->multi);
	curl_slist_free_all(s->hdrs);
	resp_free(&s->r);
}

struct sse_event {
	char id[24], event[24], data[128];
};

/* Parse the blocks received so far (comments and retry-only blocks skipped). */
static int sse_parse(const struct sse *s, struct sse_event *ev, int max)
{
	const char *p = s->r.body;
	int n = 0;

	while (p && *p && n < max) {
		const char *end = strstr(p, "\n\n");
		struct sse_event e;
		int any = 0;

		if (!end)
			break;
		memset(&e, 0, sizeof(e));
		while (p < end) {
			const char *eol = memchr(p, '\n', (size_t)(end - p + 1));
			int len = (int)(eol - p);

			if (!strncmp(p, "id: ", 4))
				snprintf(e.id, sizeof(e.id), "%.*s", len - 4, p + 4), any = 1;
			else if (!strncmp(p, "event: ", 7))
				snprintf(e.event, sizeof(e.event), "%.*s", len - 7, p + 7), any = 1;
			else if (!strncmp(p, "data: ", 6))
				snprintf(e.data, sizeof(e.data), "%.*s", len - 6, p + 6), any = 1;
			p = eol + 1;
		}
		p = end + 2;
		if (any)
			ev[n++] = e;
	}
	return n;
}

static void test_sse_stream(void **state)
{
	struct sse_event ev[16];
	struct sse s;
	char ct[64], want[64], id2[24];
	uint64_t base = eventlog__last_id(events);
	int n;

	/* subscribe: the stream opens at once (retry:), with no history */
	eventlog__append(events, "{\"type\":\"before\"}");
	sse_open(&s, srv, "/api/v1/events/stream", NULL);
	assert_true(sse_pump(&s, "retry: 2000\n\n", 2000));
	assert_int_equal(s.r.status, 200);
	assert_string_equal(resp_header(&s.r, "Content-Type", ct, sizeof(ct)), "text/event-stream");
	/* three events arrive in order, with their ids */
	assert_int_equal(eventlog__append(events, "{\"type\":\"DETECTED\",\"n\":1}"), base + 2);
	assert_int_equal(eventlog__append(events, "{\"type\":\"RCA_READY\",\"n\":2}"), base + 3);
	assert_int_equal(eventlog__append(events, "{\"type\":\"HEALED\",\"n\":3}"), base + 4);
	snprintf(want, sizeof(want), "id: %llu\ndata: {\"type\":\"HEALED\",\"n\":3}\n\n",
		 (unsigned long long)base + 4);
	assert_true(sse_pump(&s, want, 2000));
	n = sse_parse(&s, ev, 16);
	assert_int_equal(n, 3);
	snprintf(want, sizeof(want), "%llu", (unsigned long long)base + 2);
	assert_string_equal(ev[0].id, want);
	assert_string_equal(ev[0].data, "{\"type\":\"DETECTED\",\"n\":1}");
	assert_string_equal(ev[1].data, "{\"type\":\"RCA_READY\",\"n\":2}");
	assert_string_equal(ev[2].data, "{\"type\":\"HEALED\",\"n\":3}");
	assert_string_equal(ev[0].event, "");
	snprintf(id2, sizeof(id2), "%s", ev[1].id);
	sse_close(&s);

	/* reconnect after the second: only the third, then what comes next */
	sse_open(&s, srv, "/api/v1/events/stream?since=1", id2); /* Last-Event-ID wins over since */
	assert_true(sse_pump(&s, "HEALED", 2000));
	eventlog__append(events, "{\"type\":\"LATER\"}");
	assert_true(sse_pump(&s, "LATER", 2000));
	n = sse_parse(&s, ev, 16);
	assert_int_equal(n, 2);
	assert_string_equal(ev[0].data, "{\"type\":\"HEALED\",\"n\":3}");
	snprintf(want, sizeof(want), "%llu", (unsigned long long)base + 4);
	assert_string_equal(ev[0].id, want);
	assert_string_equal(ev[1].data, "{\"type\":\"LATER\"}");
	sse_close(&s);

	/* ?since= alone */
	snprintf(want, sizeof(want), "/api/v1/events/stream?since=%llu",
		 (unsigned long long)base + 3);
	sse_open(&s, srv, want, NULL);
	assert_true(sse_pump(&s, "LATER", 2000));
	assert_int_equal(sse_parse(&s, ev, 16), 2);
	assert_string_equal(ev[0].data, "{\"type\":\"HEALED\",\"n\":3}");
	sse_close(&s);

	/* a Last-Event-ID from an earlier run of heald: told, then everything held */
	sse_open(&s, srv, "/api/v1/events/stream", "999999");
	assert_true(sse_pump(&s, "LATER", 2000));
	n = sse_parse(&s, ev, 16);
	assert_string_equal(ev[0].event, "reset");
	assert_string_equal(ev[1].id, "1");
	sse_close(&s);

	/* a bad cursor */
	sse_open(&s, srv, "/api/v1/events/stream", "abc");
	assert_true(sse_pump(&s, NULL, 2000));
	assert_int_equal(s.r.status, 400);
	sse_close(&s);
}

static void test_sse_gap_heartbeat_and_stop(void **state)
{
	struct eventlog *el = eventlog__new(4, 0);
	struct http_opts o = {.events = el, .heartbeat_ms = 100};
	struct sse_event ev[16];
	struct http_stats st;
	struct http *h;
	struct sse s;
	char line[64];
	long long t0;
	int i, n;

	assert_non_null(el);
	h = start(&o);
	for (i = 1; i <= 10; i++) {
		snprintf(line, sizeof(line), "{\"n\":%d}", i);
		eventlog__append(el, line);
	}
	/* from the start of a ring that evicted 1..6: a gap notice, then 7..10 */
	sse_open(&s, h, "/api/v1/events/stream?since=0", NULL);
	assert_true(sse_pump(&s, "{\"n\":10}", 2000));
	n = sse_parse(&s, ev, 16);
	assert_int_equal(n, 5);
	assert_string_equal(ev[0].event, "gap");
	assert_string_equal(ev[0].data, "{\"missed\":6,\"first_id\":7}");
	assert_string_equal(ev[0].id, "");
	assert_string_equal(ev[1].id, "7");
	assert_string_equal(ev[4].id, "10");
	/* quiet: heartbeats */
	assert_true(sse_pump(&s, ": heartbeat\n\n", 2000));
	http__stats(h, &st);
	assert_int_equal(st.streams, 1);
	assert_int_equal(st.events_streamed, 4);
	/* stopping the server ends the stream cleanly (a complete chunked body), and promptly */
	t0 = mono_ms();
	http__free(h);
	assert_true(mono_ms() - t0 < 1000);
	assert_true(sse_pump(&s, NULL, 2000));
	assert_int_equal(s.result, CURLE_OK);
	sse_close(&s);
	eventlog__free(el);
}

static void test_sse_stream_limit(void **state)
{
	struct eventlog *el = eventlog__new(8, 0);
	struct http_opts o = {.events = el, .max_streams = 2};
	struct http_stats st;
	struct sse a, b, c;
	struct http *h;
	char v[16];
	long long end;

	assert_non_null(el);
	h = start(&o);
	sse_open(&a, h, "/api/v1/events/stream", NULL);
	sse_open(&b, h, "/api/v1/events/stream", NULL);
	assert_true(sse_pump(&a, "retry:", 2000));
	assert_true(sse_pump(&b, "retry:", 2000));
	/* the third is refused with 503, a JSON error and Retry-After */
	sse_open(&c, h, "/api/v1/events/stream", NULL);
	assert_true(sse_pump(&c, NULL, 2000));
	assert_json_error(&c.r, 503, "too many event streams");
	assert_string_equal(resp_header(&c.r, "Retry-After", v, sizeof(v)), "5");
	sse_close(&c);
	http__stats(h, &st);
	assert_int_equal(st.streams_refused, 1);
	/* a client that goes away frees its slot (noticed within half a second) */
	sse_close(&a);
	end = mono_ms() + 3000;
	do {
		sleep_ms(20);
		http__stats(h, &st);
	} while (st.streams != 1 && mono_ms() < end);
	assert_int_equal(st.streams, 1);
	sse_open(&c, h, "/api/v1/events/stream", NULL);
	assert_true(sse_pump(&c, "retry:", 2000));
	assert_int_equal(c.r.status, 200);
	eventlog__append(el, "{\"to\":\"both\"}");
	assert_true(sse_pump(&b, "{\"to\":\"both\"}", 2000));
	assert_true(sse_pump(&c, "{\"to\":\"both\"}", 2000));
	sse_close(&c);
	sse_close(&b);
	http__free(h);
	eventlog__free(el);
}

/* -- the token file ---------------------------------------------------------------------------- */

static void test_token_file(void **state)
{
	char dir[] = "/tmp/heal-test-http-XXXXXX", path[PATH_MAX], tok[HTTP_TOKEN_LEN],
	     again[HTTP_TOKEN_LEN];
	char small[10], raw[128];
	struct stat sb;
	size_t i;
	int fd;
	ssize_t n;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/api.token", dir);
	/* created: 64 hex characters, 0600, a newline after */
	assert_int_equal(http__load_or_create_token(dir, tok, sizeof(tok)), 0);
	assert_int_equal(strlen(tok), 64);
	for (i = 0; i < 64; i++)
		assert_non_null(strchr("0123456789abcdef", tok[i]));
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	fd = open(path, O_RDONLY);
	n = read(fd, raw, sizeof(raw));
	close(fd);
	assert_int_equal(n, 65);
	assert_int_equal(raw[64], '\n');
	/* read back, unchanged */
	assert_int_equal(http__load_or_create_token(dir, again, sizeof(again)), 0);
	assert_string_equal(tok, again);
	assert_int_equal(http__load_or_create_token(dir, small, sizeof(small)), -ENOSPC);
	/* readable by others: refused */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(http__load_or_create_token(dir, again, sizeof(again)), -EPERM);
	/* a weak token */
	assert_int_equal(chmod(path, 0600), 0);
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "short\n", 6), 6);
	close(fd);
	assert_int_equal(http__load_or_create_token(dir, again, sizeof(again)), -EINVAL);
	/* an operator's own token, with a trailing newline */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "my-own-token-0123456789\n\n", 25), 25);
	close(fd);
	assert_int_equal(http__load_or_create_token(dir, again, sizeof(again)), 0);
	assert_string_equal(again, "my-own-token-0123456789");
	/* a symlink is not followed */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(symlink("/etc/hostname", path), 0);
	assert_int_equal(http__load_or_create_token(dir, again, sizeof(again)), -ELOOP);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
	/* no state dir */
	assert_int_equal(http__load_or_create_token(dir, again, sizeof(again)), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_get_routes),
	    cmocka_unit_test(test_unknown_path_404),
	    cmocka_unit_test(test_wrong_method_405),
	    cmocka_unit_test(test_metrics_endpoint),
	    cmocka_unit_test(test_auth),
	    cmocka_unit_test(test_malformed_json),
	    cmocka_unit_test(test_oversized_body),
	    cmocka_unit_test(test_listen_policy),
	    cmocka_unit_test(test_host_guard),
	    cmocka_unit_test(test_events_json),
	    cmocka_unit_test(test_sse_stream),
	    cmocka_unit_test(test_sse_gap_heartbeat_and_stop),
	    cmocka_unit_test(test_sse_stream_limit),
	    cmocka_unit_test(test_token_file),
	};

	return cmocka_run_group_tests(tests, setup_group, teardown_group);
}
