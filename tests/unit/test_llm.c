// SPDX-License-Identifier: MIT
/* llm: both wire formats, retries and budgets, redaction and key handling, against a local mock. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "heal/llm.h"

/*
 * The Makefile links only harness.o from tests/lib, so the mock server is
 * compiled into this test as part of its translation unit.
 */
#include "../lib/llm_mock.c"

#define KEY_ENV "HEAL_TEST_LLM_KEY"
#define KEY	"sk-ant-api03-TESTKEY0123456789abcdefABCDEF"

static struct llm_mock *mock;
static char tmpdir[] = "/tmp/heal-test-llm-XXXXXX";

static int setup_group(void **state)
{
	static const char *const proxies[] = {"http_proxy",  "HTTP_PROXY", "https_proxy",
					      "HTTPS_PROXY", "all_proxy",  "ALL_PROXY"};
	size_t i;

	(void)state;
	/* the mock is on loopback: a proxy from the environment must not get in between */
	for (i = 0; i < sizeof(proxies) / sizeof(proxies[0]); i++)
		unsetenv(proxies[i]);
	setenv(KEY_ENV, KEY, 1);
	unsetenv("HEAL_TEST_LLM_UNSET");
	if (!mkdtemp(tmpdir))
		return -1;
	mock = llm_mock__start();
	return mock ? 0 : -1;
}

static int teardown_group(void **state)
{
	char path[64];

	(void)state;
	llm_mock__stop(mock);
	snprintf(path, sizeof(path), "%s/key", tmpdir);
	unlink(path);
	rmdir(tmpdir);
	return 0;
}

static int reset(void **state)
{
	(void)state;
	llm_mock__reset(mock);
	return 0;
}

static struct llm_config config(enum llm_provider p)
{
	struct llm_config c = {
	    .provider = p,
	    .base_url = (char *)llm_mock__url(mock),
	    .model = p == LLM_ANTHROPIC ? "claude-test" : "gpt-test",
	    .api_key_env = KEY_ENV,
	    .timeout_ms = 5000,
	    .max_retries = 2,
	    .max_tokens = 321,
	    .backoff_ms = 20,
	};

	return c;
}

static struct llm_client *client(const struct llm_config *c)
{
	char err[256];
	struct llm_client *cl = llm__new(c, err, sizeof(err));

	if (!cl)
		fail_msg("llm__new: %s", err);
	return cl;
}

/* The recorded body of request i, parsed. */
static cJSON *body_of(size_t i)
{
	const struct llm_mock_request *r = llm_mock__request(mock, i);
	cJSON *j;

	assert_non_null(r);
	j = cJSON_Parse(r->body);
	assert_non_null(j);
	return j;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);

	assert_true(cJSON_IsString(j));
	return j->valuestring;
}

#define assert_contains(hay, needle)                                                               \
	do {                                                                                       \
		const char *_h = (hay), *_n = (needle);                                            \
		if (!_h || !strstr(_h, _n))                                                        \
			fail_msg("\"%s\" does not contain \"%s\"", _h ? _h : "(null)", _n);        \
	} while (0)

static void test_anthropic_ok(void **state)
{
	struct llm_config c = config(LLM_ANTHROPIC);
	struct llm_client *cl = client(&c);
	struct llm_mock_reply r = {.kind = LLM_MOCK_OK,
				   .text = "The config file ",
				   .text2 = "is missing.",
				   .request_id = "req_011abc"};
	const struct llm_mock_request *req;
	struct llm_result res;
	const cJSON *msgs, *m0;
	cJSON *b;

	(void)state;
	llm_mock__push(mock, &r);
	assert_int_equal(llm__complete(cl, "You are heal.", "Why did nginx fail?", 0, &res), 0);
	assert_int_equal(res.ok, 1);
	assert_string_equal(res.text, "The config file is missing.");
	assert_string_equal(res.request_id, "req_011abc");
	assert_int_equal(res.http_status, 200);
	assert_int_equal(res.attempts, 1);
	assert_int_equal(res.truncated, 0);
	assert_string_equal(res.error, "");

	assert_int_equal(llm_mock__n_requests(mock), 1);
	req = llm_mock__request(mock, 0);
	assert_string_equal(req->method, "POST");
	assert_string_equal(req->path, "/v1/messages");
	assert_string_equal(llm_mock__header(req, "x-api-key"), KEY);
	assert_string_equal(llm_mock__header(req, "anthropic-version"), "2023-06-01");
	assert_string_equal(llm_mock__header(req, "content-type"), "application/json");
	assert_null(llm_mock__header(req, "authorization"));

	b = body_of(0);
	assert_string_equal(jstr(b, "model"), "claude-test");
	assert_string_equal(jstr(b, "system"), "You are heal.");
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(b, "max_tokens")->valueint, 321);
	msgs = cJSON_GetObjectItemCaseSensitive(b, "messages");
	assert_int_equal(cJSON_GetArraySize(msgs), 1);
	m0 = cJSON_GetArrayItem(msgs, 0);
	assert_string_equal(jstr(m0, "role"), "user");
	assert_string_equal(jstr(m0, "content"), "Why did nginx fail?");
	cJSON_Delete(b);
	llm_result__free(&res);
	llm__free(cl);
}

static void test_openai_ok(void **state)
{
	struct llm_config c = config(LLM_OPENAI);
	struct llm_client *cl = client(&c);
	const struct llm_mock_request *req;
	struct llm_result res;
	const cJSON *msgs;
	cJSON *b;

	(void)state;
	llm_mock__ok(mock, "Restart it.");
	assert_int_equal(llm__complete(cl, "You are heal.", "What now?", 0, &res), 0);
	assert_string_equal(res.text, "Restart it.");
	assert_string_equal(res.request_id, "req_mock_1");
	req = llm_mock__request(mock, 0);
	assert_string_equal(req->path, "/v1/chat/completions");
	assert_string_equal(llm_mock__header(req, "authorization"), "Bearer " KEY);
	assert_null(llm_mock__header(req, "x-api-key"));
	assert_null(llm_mock__header(req, "anthropic-version"));

	b = body_of(0);
	assert_string_equal(jstr(b, "model"), "gpt-test");
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(b, "max_tokens")->valueint, 321);
	msgs = cJSON_GetObjectItemCaseSensitive(b, "messages");
	assert_int_equal(cJSON_GetArraySize(msgs), 2);
	assert_string_equal(jstr(cJSON_GetArrayItem(msgs, 0), "role"), "system");
	assert_string_equal(jstr(cJSON_GetArrayItem(msgs, 0), "content"), "You are heal.");
	assert_string_equal(jstr(cJSON_GetArrayItem(msgs, 1), "role"), "user");
	assert_string_equal(jstr(cJSON_GetArrayItem(msgs, 1), "content"), "What now?");
	assert_null(cJSON_GetObjectItemCaseSensitive(b, "system"));
	cJSON_Delete(b);
	llm_result__free(&res);
	llm__free(cl);
}

/* llama.cpp / Ollama: no key, a base URL that already ends in /v1. */
static void test_openai_local_no_key(void **state)
{
	struct llm_config c = config(LLM_OPENAI);
	struct llm_client *cl;
	struct llm_result res;
	char base[96];

	(void)state;
	snprintf(base, sizeof(base), "%s/v1", llm_mock__url(mock));
	c.base_url = base;
	c.api_key_env = NULL;
	cl = client(&c);
	llm_mock__ok(mock, "ok");
	assert_int_equal(llm__complete(cl, NULL, "hi", 0, &res), 0);
	assert_string_equal(llm_mock__request(mock, 0)->path, "/v1/chat/completions");
	assert_null(llm_mock__header(llm_mock__request(mock, 0), "authorization"));
	llm_result__free(&res);
	llm__free(cl);
}

static void test_morph_apply(void **state)
{
	struct llm_config c = config(LLM_OPENAI);
	const char *merged = "int main(void)\n{\n\treturn 1;\n}\n";
	struct llm_client *cl;
	struct llm_result res;
	const cJSON *msgs;
	cJSON *b;

	(void)state;
	c.model = "morph-v3-fast";
	cl = client(&c);
	llm_mock__ok(mock, merged);
	assert_int_equal(llm__morph_apply(cl, "Return 1 instead of 0",
					  "int main(void)\n{\n\treturn 0;\n}\n",
					  "// ... existing code ...\n\treturn 1;\n", 0, &res),
			 0);
	assert_string_equal(res.text, merged);
	b = body_of(0);
	assert_string_equal(jstr(b, "model"), "morph-v3-fast");
	msgs = cJSON_GetObjectItemCaseSensitive(b, "messages");
	assert_int_equal(cJSON_GetArraySize(msgs), 1);
	assert_string_equal(jstr(cJSON_GetArrayItem(msgs, 0), "role"), "user");
	assert_string_equal(jstr(cJSON_GetArrayItem(msgs, 0), "content"),
			    "<instruction>Return 1 instead of 0</instruction>\n"
			    "<code>int main(void)\n{\n\treturn 0;\n}\n</code>\n"
			    "<update>// ... existing code ...\n\treturn 1;\n</update>");
	cJSON_Delete(b);
	llm_result__free(&res);
	llm__free(cl);
}

static void test_rate_limited_retry_after(void **state)
{
	struct llm_config c = config(LLM_ANTHROPIC);
	struct llm_client *cl = client(&c);
	struct llm_result res;

	(void)state;
	llm_mock__rate_limited(mock, 1);
	llm_mock__ok(mock, "fine");
	assert_int_equal(llm__complete(cl, NULL, "hi", 5000, &res), 0);
	assert_string_equal(res.text, "fine");
	assert_int_equal(res.attempts, 2);
	assert_true(res.duration_ms >= 1000);
	assert_int_equal(llm_mock__n_requests(mock), 2);
	assert_true(llm_mock__request(mock, 1)->at_ms - llm_mock__request(mock, 0)->at_ms >= 1000);
	llm_result__free(&res);
	llm__free(cl);
}

/* A retry-after longer than the budget left: fail now rather than sleep the budget away. */
static void test_retry_after_beyond_budget(void **state)
{
	struct llm_config c = config(LLM_ANTHROPIC);
	struct llm_client *cl = client(&c);
	struct llm_result res;

	(void)state;
	llm_mock__rate_limited(mock, 30);
	llm_mock__ok(mock, "never asked");
	assert_int_equal(llm__complete(cl, NULL, "hi", 2000, &res), -EIO);
	assert_int_equal(res.ok, 0);
	assert_int_equal(res.attempts, 1);
	assert_int_equal(res.http_status, 429);
	assert_true(res.duration_ms < 1000);
	assert_contains(res.error, "HTTP 429 rate_limit_error");
	assert_contains(res.error, "budget");
	assert_null(res.text);
	llm_result__free(&res);
	llm__free(cl);
}

static void test_overloaded_then_ok(void **state)
{
	struct llm_config c = config(LLM_ANTHROPIC);
	struct llm_client *cl = client(&c);
	struct llm_result res;

	(void)state;
	llm_mock__overloaded(mock);
	llm_mock__ok(mock, "second time lucky");
	assert_int_equal(llm__complete(cl, NULL, "hi", 0, &res), 0);
	assert_string_equal(res.text, "second time lucky");
	assert_int_equal(res.attempts, 2);
	assert_int_equal(res.http_status, 200);
	llm_result__free(&res);
	llm__free(cl);
}

static void test_server_error_gives_up(void **state)
{
	struct llm_config c = config(LLM_OPENAI);
	struct llm_client *cl = client(&c);
	struct llm_result res;
	int i;

	(void)state;
	for (i = 0; i < 4; i++)
		llm_mock__error(mock, 500, "server_error", "The server had an error");
	assert_int_equal(llm__complete(cl, NULL, "hi", 0, &res), -EIO);
	assert_int_equal(res.ok, 0);
	assert_int_equal(res.attempts, 3); /* 1 + max_retries */
	assert_int_equal(llm_mock__n_requests(mock), 3);
	assert_int_equal(res.http_status, 500);
	assert_string_equal(
	    res.error, "HTTP 500 server_error: The server had an error (gave up after 3 attempts)");
	llm_result__free(&res);
	llm__free(cl);
}

static void test_bad_request_not_retried(void **state)
{
	struct llm_config c = config(LLM_ANTHROPIC);
	struct llm_client *cl = client(&c);
	struct llm_result res;

	(void)state;
	llm_mock__error(mock, 400, "invalid_request_error", "max_tokens: Field required");
	llm_mock__ok(mock, "must not be reached");
	assert_int_equal(llm__complete(cl, NULL, "hi", 0, &res), -EIO);
	assert_int_equal(res.attempts, 1);
	assert_int_equal(llm_mock__n_requests(mock), 1);
	assert_string_equal(res.error,
			    "HTTP 400 invalid_request_error: max_tokens: Field required");
	assert_string_equal(res.request_id, "req_mock_1");
	llm_result__free(&res);

	llm_mock__reset(mock);
	llm_mock__error(mock, 401, "authentication_error", "invalid x-api-key");
	assert_int_equal(llm__complete(cl, NULL, "hi", 0, &res), -EIO);
	assert_int_equal(res.attempts, 1);
	assert_contains(res.error, "HTTP 401 authentication_error");
	llm_result__free(&res);
	llm__free(cl);
}

static void test_timeout_within_budget(void **state)
{
	struct llm_config c = config(LLM_ANTHROPIC);
	struct llm_client *cl = client(&c);
	struct llm_result res;

	(void)state;
	llm_mock__slow(mock, 3000, "too late");
	assert_int_equal(llm__complete(cl, NULL, "hi", 400, &res), -ETIMEDOUT);
	assert_int_equal(res.ok, 0);
	assert_int_equal(res.attempts, 1);
	assert_true(res.duration_ms >= 390);
	assert_true(res.duration_ms < 400 + 250);
	assert_true(strncmp(res.error, "timed out after ", 16) == 0);
	llm_result__free(&res);
	llm__free(cl);

	/* the config's timeout_ms caps a larger budget */
	c.timeout_ms = 300;
	cl = client(&c);
	llm_mock__slow(mock, 3000, "too late");
	assert_int_equal(llm__complete(cl, NULL, "hi", 60000, &res), -ETIMEDOUT);
	assert_true(res.duration_ms >= 290);
	assert_true(res.duration_ms < 300 + 250);
	llm_result__free(&res);

	/* a budget running out after a failed attempt names both */
	llm_mock__overloaded(mock);
	llm_mock__slow(mock, 3000, "too late");
	assert_int_equal(llm__complete(cl, NULL, "hi", 0, &res), -ETIMEDOUT);
	assert_int_equal(res.attempts, 2);
	assert_contains(res.error, "before: HTTP 529 overloaded_error: Overloaded");
	llm_result__free(&res);
	llm__free(cl);
}

static void test_bad_answers(void **state)
{
	struct llm_config c = config(LLM_ANTHROPIC), co = config(LLM_OPENAI);
	struct llm_client *cl = client(&c), *clo = client(&co);
	struct llm_result res;
	char *big;

	(void)state;
	llm_mock__raw(mock, 200,
		      "{\"id\":\"msg_1\",\"content\":[{\"type\":\"text\",\"text\":\"hal");
	assert_int_equal(llm__complete(cl, NULL, "hi", 0, &res), -EBADMSG);
	assert_int_equal(res.attempts, 1);
	assert_contains(res.error, "not valid JSON");
	llm_result__free(&res);

	llm_mock__raw(mock, 200, "{\"content\":[{\"type\":\"tool_use\",\"id\":\"t\"}]}");
	assert_int_equal(llm__complete(cl, NULL, "hi", 0, &res), -EBADMSG);
	assert_contains(res.error, "answer has no text");
	llm_result__free(&res);

	llm_mock__raw(mock, 200,
		      "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":null}}]}");
	assert_int_equal(llm__complete(clo, NULL, "hi", 0, &res), -EBADMSG);
	assert_contains(res.error, "answer has no text");
	llm_result__free(&res);

	/* a success that is not what was asked: the client hands it on, the caller judges */
	llm_mock__ok(mock, "I am sorry, I cannot help with that.");
	assert_int_equal(llm__complete(cl, NULL, "Give me a JSON plan", 0, &res), 0);
	assert_string_equal(res.text, "I am sorry, I cannot help with that.");
	llm_result__free(&res);

	/* stop_reason max_tokens is reported */
	llm_mock__raw(
	    mock, 200,
	    "{\"content\":[{\"type\":\"text\",\"text\":\"cut\"}],\"stop_reason\":\"max_tokens\"}");
	assert_int_equal(llm__complete(cl, NULL, "hi", 0, &res), 0);
	assert_int_equal(res.truncated, 1);
	llm_result__free(&res);

	big = malloc(LLM_ANSWER_MAX + 2);
	assert_non_null(big);
	memset(big, 'x', LLM_ANSWER_MAX + 1);
	big[LLM_ANSWER_MAX + 1] = '\0';
	llm_mock__raw(mock, 200, big);
	free(big);
	assert_int_equal(llm__complete(cl, NULL, "hi", 0, &res), -EMSGSIZE);
	assert_contains(res.error, "larger than");
	llm_result__free(&res);
	llm__free(cl);
	llm__free(clo);
}

static void test_secrets_never_sent(void **state)
{
	struct llm_config c = config(LLM_ANTHROPIC);
	struct llm_client *cl = client(&c);
	const char *sk = "sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe";
	const struct llm_mock_request *req;
	struct llm_result res;
	char user[512];
	cJSON *b;

	(void)state;
	snprintf(user, sizeof(user),
		 "db.ini:\npassword=hunter2\nANTHROPIC_API_KEY=%s\nerror: connect refused", sk);
	llm_mock__ok(mock, "ok");
	assert_int_equal(
	    llm__complete(cl, "Authorization: Bearer abcdefghijklmnop0123", user, 0, &res), 0);
	req = llm_mock__request(mock, 0);
	assert_null(strstr(req->body, "hunter2"));
	assert_null(strstr(req->body, sk));
	assert_null(strstr(req->body, "Zx9Yw8"));
	assert_null(strstr(req->body, "abcdefghijklmnop0123"));
	assert_non_null(strstr(req->body, "password=[REDACTED]"));
	assert_non_null(strstr(req->body, "error: connect refused"));
	assert_true(res.redacted >= 3);
	b = body_of(0); /* still valid JSON */
	cJSON_Delete(b);
	llm_result__free(&res);
	llm__free(cl);
}

static void test_key_sources(void **state)
{
	struct llm_config c = config(LLM_ANTHROPIC);
	struct llm_client *cl;
	struct llm_result res;
	char path[64], err[256];
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "%s/key", tmpdir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "sk-ant-from-file-0123456789\n", 28), 28);
	close(fd);
	assert_int_equal(chmod(path, 0644), 0);
	c.api_key_env = NULL;
	c.api_key_file = path;
	cl = llm__new(&c, err, sizeof(err));
	assert_null(cl);
	assert_contains(err, path);
	assert_contains(err, "0644");
	assert_contains(err, "chmod 600");

	assert_int_equal(chmod(path, 0600), 0);
	cl = client(&c);
	llm_mock__ok(mock, "ok");
	assert_int_equal(llm__complete(cl, NULL, "hi", 0, &res), 0);
	assert_string_equal(llm_mock__header(llm_mock__request(mock, 0), "x-api-key"),
			    "sk-ant-from-file-0123456789");
	llm_result__free(&res);
	llm__free(cl);

	c.api_key_file = NULL;
	c.api_key_env = "HEAL_TEST_LLM_UNSET";
	assert_null(llm__new(&c, err, sizeof(err)));
	assert_string_equal(err, "environment variable HEAL_TEST_LLM_UNSET is not set");

	/* keys go in clear text only to loopback */
	c.api_key_env = KEY_ENV;
	c.base_url = "http://llm.example.com";
	assert_null(llm__new(&c, err, sizeof(err)));
	assert_contains(err, "plain http");
}

/* A port nobody listens on: transport errors are retried, then named. */
static void test_unreachable(void **state)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);
	struct llm_config c = config(LLM_OPENAI);
	struct llm_client *cl;
	struct llm_result res;
	char base[64];
	int s;

	(void)state;
	s = socket(AF_INET, SOCK_STREAM, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&sin, &len), 0);
	close(s);
	snprintf(base, sizeof(base), "http://127.0.0.1:%u", ntohs(sin.sin_port));
	c.base_url = base;
	cl = client(&c);
	assert_int_equal(llm__complete(cl, NULL, "hi", 0, &res), -EIO);
	assert_int_equal(res.attempts, 3);
	assert_int_equal(res.http_status, 0);
	assert_contains(res.error, "cannot reach http://127.0.0.1:");
	llm_result__free(&res);
	llm__free(cl);
}

struct worker {
	struct llm_client *cl;
	int ret;
	char text[32];
};

static void *call(void *arg)
{
	struct worker *w = arg;
	struct llm_result res;

	w->ret = llm__complete(w->cl, NULL, "hi", 0, &res);
	if (res.text)
		snprintf(w->text, sizeof(w->text), "%s", res.text);
	llm_result__free(&res);
	return NULL;
}

/* One client, several worker threads at once. */
static void test_concurrent(void **state)
{
	struct llm_config c = config(LLM_ANTHROPIC);
	struct worker w[4];
	pthread_t t[4];
	int i;

	(void)state;
	c.max_retries = 0;
	for (i = 0; i < 4; i++)
		llm_mock__ok(mock, "same");
	w[0].cl = client(&c);
	for (i = 0; i < 4; i++) {
		w[i].cl = w[0].cl;
		w[i].text[0] = '\0';
		assert_int_equal(pthread_create(&t[i], NULL, call, &w[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].ret, 0);
		assert_string_equal(w[i].text, "same");
	}
	assert_int_equal(llm_mock__n_requests(mock), 4);
	llm__free(w[0].cl);
}

struct parse_case {
	const char *json;
	const char *field;
	const char *reason; /* substring */
};

static void test_config_errors(void **state)
{
	static const struct parse_case cases[] = {
	    {"[]", "llm", "expected an object, got an array"},
	    {"{\"model\":\"m\",\"api_key_env\":\"K\"}", "llm.provider", "required key is missing"},
	    {"{\"provider\":\"google\",\"model\":\"m\"}", "llm.provider",
	     "\"anthropic\" or \"openai\""},
	    {"{\"provider\":1,\"model\":\"m\"}", "llm.provider", "expected a string, got a number"},
	    {"{\"provider\":\"openai\"}", "llm.model", "required key is missing"},
	    {"{\"provider\":\"openai\",\"model\":\"\"}", "llm.model", "must not be empty"},
	    {"{\"provider\":\"openai\",\"model\":\"m\",\"modle\":\"x\"}", "llm.modle",
	     "unknown key \"modle\""},
	    {"{\"provider\":\"openai\",\"model\":\"m\",\"model\":\"n\"}", "llm.model",
	     "duplicate key"},
	    {"{\"provider\":\"openai\",\"model\":\"m\",\"api_key\":\"sk-x\"}", "llm.api_key",
	     "do not belong in the config"},
	    {"{\"provider\":\"anthropic\",\"model\":\"m\"}", "llm.api_key_env",
	     "anthropic needs api_key_env or api_key_file"},
	    {"{\"provider\":\"openai\",\"model\":\"m\",\"api_key_env\":\"K\",\"api_key_file\":\"/"
	     "k\"}",
	     "llm.api_key_file", "only one"},
	    {"{\"provider\":\"openai\",\"model\":\"m\",\"api_key_env\":\"1-K\"}", "llm.api_key_env",
	     "not an environment variable name"},
	    {"{\"provider\":\"openai\",\"model\":\"m\",\"api_key_file\":\"key\"}",
	     "llm.api_key_file", "absolute path"},
	    {"{\"provider\":\"openai\",\"model\":\"m\",\"base_url\":\"ftp://x\"}", "llm.base_url",
	     "https:// or http://"},
	    {"{\"provider\":\"openai\",\"model\":\"m\",\"base_url\":\"https://u:p@x\"}",
	     "llm.base_url", "credentials"},
	    {"{\"provider\":\"openai\",\"model\":\"m\",\"timeout_ms\":\"5s\"}", "llm.timeout_ms",
	     "expected an integer, got a string"},
	    {"{\"provider\":\"openai\",\"model\":\"m\",\"timeout_ms\":10}", "llm.timeout_ms",
	     "at least 100"},
	    {"{\"provider\":\"openai\",\"model\":\"m\",\"max_retries\":11}", "llm.max_retries",
	     "at most 10"},
	    {"{\"provider\":\"openai\",\"model\":\"m\",\"max_tokens\":1.5}", "llm.max_tokens",
	     "expected an integer"},
	    {"{\"provider\":\"openai\",\"model\":\"m\",\"backoff_ms\":0}", "llm.backoff_ms",
	     "at least 1"},
	};
	struct llm_config c;
	char field[64], reason[160];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cJSON *j = cJSON_Parse(cases[i].json);

		assert_non_null(j);
		if (llm_config__parse(j, NULL, &c, field, sizeof(field), reason, sizeof(reason)) !=
		    -EINVAL)
			fail_msg("accepted %s", cases[i].json);
		if (strcmp(field, cases[i].field) || !strstr(reason, cases[i].reason))
			fail_msg("%s: got %s: %s, expected %s: ...%s...", cases[i].json, field,
				 reason, cases[i].field, cases[i].reason);
		assert_null(c.model); /* freed on error */
		cJSON_Delete(j);
	}
	assert_int_equal(
	    llm_config__parse(NULL, "llm.apply", &c, field, sizeof(field), reason, sizeof(reason)),
	    -EINVAL);
	assert_string_equal(field, "llm.apply");
}

static void test_config_ok(void **state)
{
	struct llm_config c;
	char field[64], reason[160];
	cJSON *j;

	(void)state;
	j = cJSON_Parse(
	    "{\"provider\":\"anthropic\",\"model\":\"claude-x\",\"api_key_env\":\"K\"}");
	assert_int_equal(
	    llm_config__parse(j, NULL, &c, field, sizeof(field), reason, sizeof(reason)), 0);
	assert_int_equal(c.provider, LLM_ANTHROPIC);
	assert_string_equal(c.base_url, "https://api.anthropic.com");
	assert_string_equal(c.model, "claude-x");
	assert_string_equal(c.api_key_env, "K");
	assert_null(c.api_key_file);
	assert_int_equal(c.timeout_ms, 30000);
	assert_int_equal(c.max_retries, 2);
	assert_int_equal(c.max_tokens, 1024);
	assert_int_equal(c.backoff_ms, 500);
	assert_string_equal(field, "");
	llm_config__free(&c);
	cJSON_Delete(j);

	j = cJSON_Parse("{\"provider\":\"openai\",\"model\":\"morph-v3-large\","
			"\"base_url\":\"https://api.morphllm.com/v1/\",\"api_key_file\":\"/etc/"
			"heal/morph.key\","
			"\"timeout_ms\":8000,\"max_retries\":0,\"max_tokens\":8192}");
	assert_int_equal(
	    llm_config__parse(j, "llm.apply", &c, field, sizeof(field), reason, sizeof(reason)), 0);
	assert_int_equal(c.provider, LLM_OPENAI);
	assert_string_equal(c.base_url, "https://api.morphllm.com/v1");
	assert_string_equal(c.api_key_file, "/etc/heal/morph.key");
	assert_int_equal(c.timeout_ms, 8000);
	assert_int_equal(c.max_retries, 0);
	assert_int_equal(c.max_tokens, 8192);
	assert_string_equal(llm__provider_name(c.provider), "openai");
	llm_config__free(&c);
	llm_config__free(&c); /* twice is harmless */
	llm_config__free(NULL);
	cJSON_Delete(j);

	/* fields are reported under the path given */
	j = cJSON_Parse("{\"provider\":\"openai\"}");
	assert_int_equal(
	    llm_config__parse(j, "llm.apply", &c, field, sizeof(field), reason, sizeof(reason)),
	    -EINVAL);
	assert_string_equal(field, "llm.apply.model");
	cJSON_Delete(j);
}

static void test_null_safety(void **state)
{
	struct llm_result res;

	(void)state;
	llm__free(NULL);
	llm_result__free(NULL);
	assert_int_equal(llm__complete(NULL, NULL, "hi", 0, &res), -EINVAL);
	assert_int_equal(res.ok, 0);
	assert_true(res.error[0] != '\0');
	assert_null(llm__new(NULL, NULL, 0));
}

#define T(f) cmocka_unit_test_setup(f, reset)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_anthropic_ok),
	    T(test_openai_ok),
	    T(test_openai_local_no_key),
	    T(test_morph_apply),
	    T(test_rate_limited_retry_after),
	    T(test_retry_after_beyond_budget),
	    T(test_overloaded_then_ok),
	    T(test_server_error_gives_up),
	    T(test_bad_request_not_retried),
	    T(test_timeout_within_budget),
	    T(test_bad_answers),
	    T(test_secrets_never_sent),
	    T(test_key_sources),
	    T(test_unreachable),
	    T(test_concurrent),
	    T(test_config_errors),
	    T(test_config_ok),
	    T(test_null_safety),
	};

	return cmocka_run_group_tests(tests, setup_group, teardown_group);
}
