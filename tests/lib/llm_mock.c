// SPDX-License-Identifier: MIT
/*
 * The LLM mock endpoint (see llm_mock.h). One thread per connection, so a
 * delayed reply does not hold up the next request; stop wakes delayed replies.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "llm_mock.h"

#define MOCK_BODY_MAX (16u << 20)

struct script_entry {
	struct llm_mock_reply r; /* strings owned */
};

struct llm_mock {
	struct MHD_Daemon *d;
	char url[64];
	pthread_mutex_t lock;
	pthread_cond_t wake; /* stop wakes delayed replies */
	bool stopping;
	struct script_entry *script;
	size_t n_script, next_script, cap_script;
	struct llm_mock_request **reqs;
	size_t n_reqs, cap_reqs;
	unsigned seq;
};

/* What MHD keeps per request: the record being filled (NULL once filed). */
struct conn_state {
	struct llm_mock_request *req;
	bool oversize;
};

static long mock_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void request_free(struct llm_mock_request *r)
{
	size_t i;

	if (!r)
		return;
	for (i = 0; i < r->n_headers; i++) {
		free(r->names[i]);
		free(r->values[i]);
	}
	free(r->names);
	free(r->values);
	free(r->body);
	free(r);
}

static void reply_free(struct llm_mock_reply *r)
{
	free((char *)r->text);
	free((char *)r->text2);
	free((char *)r->error_type);
	free((char *)r->request_id);
}

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
				      const char *value)
{
	struct llm_mock_request *r = cls;
	char **n, **v;

	n = realloc(r->names, (r->n_headers + 1) * sizeof(*n));
	if (!n)
		return MHD_NO;
	r->names = n;
	v = realloc(r->values, (r->n_headers + 1) * sizeof(*v));
	if (!v)
		return MHD_NO;
	r->values = v;
	r->names[r->n_headers] = strdup(key);
	r->values[r->n_headers] = strdup(value ? value : "");
	r->n_headers++;
	return MHD_YES;
}

static bool is_anthropic(const char *path)
{
	size_t n = strlen(path);

	return n >= 9 && strcmp(path + n - 9, "/messages") == 0;
}

/* The reply body in the wire format of the request's path. */
static char *render(const struct llm_mock_request *req, const struct llm_mock_reply *r,
		    const char *request_id)
{
	bool anthropic = is_anthropic(req->path);
	cJSON *in = cJSON_Parse(req->body), *o = cJSON_CreateObject(), *a, *b, *e;
	const cJSON *model = cJSON_GetObjectItemCaseSensitive(in, "model");
	const char *m = cJSON_IsString(model) ? model->valuestring : "mock";
	char *s;

	if (r->kind == LLM_MOCK_ERROR) {
		e = cJSON_CreateObject();
		if (anthropic) {
			cJSON_AddStringToObject(o, "type", "error");
			cJSON_AddItemToObject(o, "error", e);
			cJSON_AddStringToObject(e, "type",
						r->error_type ? r->error_type : "api_error");
			cJSON_AddStringToObject(e, "message", r->text ? r->text : "");
			cJSON_AddStringToObject(o, "request_id", request_id);
		} else {
			cJSON_AddItemToObject(o, "error", e);
			cJSON_AddStringToObject(e, "message", r->text ? r->text : "");
			cJSON_AddStringToObject(e, "type",
						r->error_type ? r->error_type : "api_error");
			cJSON_AddNullToObject(e, "param");
			cJSON_AddNullToObject(e, "code");
		}
	} else if (anthropic) {
		cJSON_AddStringToObject(o, "id", "msg_mock");
		cJSON_AddStringToObject(o, "type", "message");
		cJSON_AddStringToObject(o, "role", "assistant");
		cJSON_AddStringToObject(o, "model", m);
		a = cJSON_AddArrayToObject(o, "content");
		cJSON_AddItemToArray(a, b = cJSON_CreateObject());
		cJSON_AddStringToObject(b, "type", "text");
		cJSON_AddStringToObject(b, "text", r->text ? r->text : "");
		if (r->text2) {
			cJSON_AddItemToArray(a, b = cJSON_CreateObject());
			cJSON_AddStringToObject(b, "type", "tool_use");
			cJSON_AddStringToObject(b, "id", "toolu_mock");
			cJSON_AddStringToObject(b, "name", "noop");
			cJSON_AddItemToObject(b, "input", cJSON_CreateObject());
			cJSON_AddItemToArray(a, b = cJSON_CreateObject());
			cJSON_AddStringToObject(b, "type", "text");
			cJSON_AddStringToObject(b, "text", r->text2);
		}
		cJSON_AddStringToObject(o, "stop_reason", "end_turn");
		cJSON_AddNullToObject(o, "stop_sequence");
		b = cJSON_AddObjectToObject(o, "usage");
		cJSON_AddNumberToObject(b, "input_tokens", 10);
		cJSON_AddNumberToObject(b, "output_tokens", 5);
	} else {
		cJSON_AddStringToObject(o, "id", "chatcmpl-mock");
		cJSON_AddStringToObject(o, "object", "chat.completion");
		cJSON_AddNumberToObject(o, "created", 0);
		cJSON_AddStringToObject(o, "model", m);
		a = cJSON_AddArrayToObject(o, "choices");
		cJSON_AddItemToArray(a, b = cJSON_CreateObject());
		cJSON_AddNumberToObject(b, "index", 0);
		e = cJSON_AddObjectToObject(b, "message");
		cJSON_AddStringToObject(e, "role", "assistant");
		cJSON_AddStringToObject(e, "content", r->text ? r->text : "");
		cJSON_AddStringToObject(b, "finish_reason", "stop");
		b = cJSON_AddObjectToObject(o, "usage");
		cJSON_AddNumberToObject(b, "prompt_tokens", 10);
		cJSON_AddNumberToObject(b, "completion_tokens", 5);
	}
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	cJSON_Delete(in);
	return s;
}

/* Wait ms, or less when the mock stops. */
static void mock_delay(struct llm_mock *m, unsigned ms)
{
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&m->lock);
	while (!m->stopping && pthread_cond_timedwait(&m->wake, &m->lock, &until) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&m->lock);
}

/* File req (the mock owns it from then on). */
static bool file_request(struct llm_mock *m, struct llm_mock_request *req)
{
	struct llm_mock_request **v;
	bool ok = true;

	pthread_mutex_lock(&m->lock);
	if (m->n_reqs == m->cap_reqs) {
		size_t cap = m->cap_reqs ? m->cap_reqs * 2 : 16;

		v = realloc(m->reqs, cap * sizeof(*v));
		if (v) {
			m->reqs = v;
			m->cap_reqs = cap;
		}
		ok = v != NULL;
	}
	if (ok)
		m->reqs[m->n_reqs++] = req;
	pthread_mutex_unlock(&m->lock);
	return ok;
}

/*
 * Take the next scripted reply, render it, file the request, wait if asked,
 * answer. Nothing shared is touched after the wait: a test may reset the
 * mock while a delayed reply sleeps.
 */
static enum MHD_Result answer(struct llm_mock *m, struct MHD_Connection *conn,
			      struct conn_state *st)
{
	struct llm_mock_request *req = st->req;
	struct llm_mock_reply r = {.kind = LLM_MOCK_ERROR, .status = 500};
	const char *rid_header = is_anthropic(req->path) ? "request-id" : "x-request-id";
	struct MHD_Response *resp;
	char rid[64], ra[16], *body;
	enum MHD_Result ret;
	unsigned delay_ms = 0, retry_after_s = 0;
	int status = 500;

	pthread_mutex_lock(&m->lock);
	snprintf(rid, sizeof(rid), "req_mock_%u", ++m->seq);
	if (st->oversize) {
		status = 413;
		r.status = 413;
		r.error_type = "request_too_large";
		r.text = "mock: request body over the limit";
		body = render(req, &r, rid);
	} else if (m->next_script < m->n_script) {
		r = m->script[m->next_script++].r;
		if (r.request_id)
			snprintf(rid, sizeof(rid), "%s", r.request_id);
		status = r.status ? r.status : 200;
		delay_ms = r.delay_ms;
		retry_after_s = r.retry_after_s;
		body =
		    r.kind == LLM_MOCK_RAW ? xstrdup(r.text ? r.text : "") : render(req, &r, rid);
	} else {
		r.error_type = "api_error";
		r.text = "mock: the script is empty";
		body = render(req, &r, rid);
	}
	pthread_mutex_unlock(&m->lock);

	if (!body || !file_request(m, req)) {
		free(body);
		return MHD_NO;
	}
	st->req = NULL;
	if (delay_ms)
		mock_delay(m, delay_ms);
	resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "content-type", "application/json");
	MHD_add_response_header(resp, rid_header, rid);
	if (retry_after_s) {
		snprintf(ra, sizeof(ra), "%u", retry_after_s);
		MHD_add_response_header(resp, "retry-after", ra);
	}
	ret = MHD_queue_response(conn, (unsigned)status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct llm_mock *m = cls;
	struct conn_state *st = *con_cls;
	struct llm_mock_request *req;
	char *b;

	if (!st) {
		st = calloc(1, sizeof(*st));
		if (!st || !(st->req = calloc(1, sizeof(*st->req)))) {
			free(st);
			return MHD_NO;
		}
		snprintf(st->req->method, sizeof(st->req->method), "%s", method);
		snprintf(st->req->path, sizeof(st->req->path), "%s", url);
		MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_header, st->req);
		*con_cls = st;
		return MHD_YES;
	}
	req = st->req;
	if (*upload_data_size) {
		if (req->body_len + *upload_data_size > MOCK_BODY_MAX) {
			st->oversize = true;
		} else {
			b = realloc(req->body, req->body_len + *upload_data_size + 1);
			if (!b)
				return MHD_NO;
			memcpy(b + req->body_len, upload_data, *upload_data_size);
			req->body = b;
			req->body_len += *upload_data_size;
			req->body[req->body_len] = '\0';
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (!req->body && !(req->body = calloc(1, 1)))
		return MHD_NO;
	req->at_ms = mock_now_ms();
	return answer(m, conn, st);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct conn_state *st = *con_cls;

	if (!st)
		return;
	request_free(st->req); /* NULL once filed */
	free(st);
	*con_cls = NULL;
}

struct llm_mock *llm_mock__start(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
	const union MHD_DaemonInfo *info;
	pthread_condattr_t ca;
	struct llm_mock *m;

	m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	pthread_mutex_init(&m->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m->wake, &ca);
	pthread_condattr_destroy(&ca);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	m->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
				NULL, NULL, on_request, m, MHD_OPTION_SOCK_ADDR, &sin,
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, m,
				MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
	if (!m->d)
		goto fail;
	info = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_BIND_PORT);
	if (!info || !info->port)
		goto fail;
	snprintf(m->url, sizeof(m->url), "http://127.0.0.1:%u", (unsigned)info->port);
	return m;
fail:
	llm_mock__stop(m);
	return NULL;
}

void llm_mock__reset(struct llm_mock *m)
{
	size_t i;

	pthread_mutex_lock(&m->lock);
	for (i = 0; i < m->n_script; i++)
		reply_free(&m->script[i].r);
	m->n_script = m->next_script = 0;
	for (i = 0; i < m->n_reqs; i++)
		request_free(m->reqs[i]);
	m->n_reqs = 0;
	m->seq = 0;
	pthread_mutex_unlock(&m->lock);
}

void llm_mock__stop(struct llm_mock *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	m->stopping = true;
	pthread_cond_broadcast(&m->wake);
	pthread_mutex_unlock(&m->lock);
	if (m->d)
		MHD_stop_daemon(m->d);
	llm_mock__reset(m);
	free(m->script);
	free(m->reqs);
	pthread_cond_destroy(&m->wake);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

const char *llm_mock__url(const struct llm_mock *m)
{
	return m->url;
}

void llm_mock__push(struct llm_mock *m, const struct llm_mock_reply *r)
{
	struct script_entry *v;
	struct llm_mock_reply c = *r;

	c.text = xstrdup(r->text);
	c.text2 = xstrdup(r->text2);
	c.error_type = xstrdup(r->error_type);
	c.request_id = xstrdup(r->request_id);
	pthread_mutex_lock(&m->lock);
	if (m->n_script == m->cap_script) {
		size_t cap = m->cap_script ? m->cap_script * 2 : 16;

		v = realloc(m->script, cap * sizeof(*v));
		if (!v) {
			pthread_mutex_unlock(&m->lock);
			reply_free(&c);
			return;
		}
		m->script = v;
		m->cap_script = cap;
	}
	m->script[m->n_script++].r = c;
	pthread_mutex_unlock(&m->lock);
}

void llm_mock__ok(struct llm_mock *m, const char *text)
{
	struct llm_mock_reply r = {.kind = LLM_MOCK_OK, .text = text};

	llm_mock__push(m, &r);
}

void llm_mock__error(struct llm_mock *m, int status, const char *type, const char *message)
{
	struct llm_mock_reply r = {
	    .kind = LLM_MOCK_ERROR, .status = status, .error_type = type, .text = message};

	llm_mock__push(m, &r);
}

void llm_mock__rate_limited(struct llm_mock *m, unsigned retry_after_s)
{
	struct llm_mock_reply r = {
	    .kind = LLM_MOCK_ERROR,
	    .status = 429,
	    .error_type = "rate_limit_error",
	    .text = "Number of request tokens has exceeded your per-minute rate limit",
	    .retry_after_s = retry_after_s};

	llm_mock__push(m, &r);
}

void llm_mock__overloaded(struct llm_mock *m)
{
	llm_mock__error(m, 529, "overloaded_error", "Overloaded");
}

void llm_mock__slow(struct llm_mock *m, unsigned delay_ms, const char *text)
{
	struct llm_mock_reply r = {.kind = LLM_MOCK_OK, .text = text, .delay_ms = delay_ms};

	llm_mock__push(m, &r);
}

void llm_mock__raw(struct llm_mock *m, int status, const char *body)
{
	struct llm_mock_reply r = {.kind = LLM_MOCK_RAW, .status = status, .text = body};

	llm_mock__push(m, &r);
}

size_t llm_mock__n_requests(struct llm_mock *m)
{
	size_t n;

	pthread_mutex_lock(&m->lock);
	n = m->n_reqs;
	pthread_mutex_unlock(&m->lock);
	return n;
}

const struct llm_mock_request *llm_mock__request(struct llm_mock *m, size_t i)
{
	const struct llm_mock_request *r;

	pthread_mutex_lock(&m->lock);
	r = i < m->n_reqs ? m->reqs[i] : NULL;
	pthread_mutex_unlock(&m->lock);
	return r;
}

const char *llm_mock__header(const struct llm_mock_request *r, const char *name)
{
	size_t i;

	for (i = 0; r && i < r->n_headers; i++)
		if (strcasecmp(r->names[i], name) == 0)
			return r->values[i];
	return NULL;
}
