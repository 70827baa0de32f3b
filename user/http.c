// SPDX-License-Identifier: MIT
/*
 * http: libmicrohttpd in thread-per-connection mode. A connection's thread
 * runs its hooks and, for an SSE stream, blocks in the content reader on
 * the eventlog's condition variable (in slices of STREAM_SLICE_MS, so a
 * client that went away is noticed and its stream slot freed). Shutdown
 * sets `stopping`, wakes the eventlog, lets the streams send their last
 * chunk, and MHD_stop_daemon joins the threads. Nothing here touches
 * heald's main-loop state.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "heal/eventlog.h"
#include "heal/http.h"
#include "heal/log.h"
#include "heal/metrics.h"
#include "heal/util.h"

#define DEFAULT_MAX_BODY     (64u << 10)
#define DEFAULT_STREAMS	     32
#define DEFAULT_HEARTBEAT_MS 15000
#define DEFAULT_IDLE_S	     30
#define EVENTS_LIMIT_DEFAULT 100
#define EVENTS_LIMIT_MAX     1000
#define STREAM_BATCH	     64	 /* events fetched per eventlog__since on a stream */
#define STREAM_SLICE_MS	     500 /* longest wait before checking whether the peer left */
#define DISCARD_MAX	     (8u << 20)
#define STOP_GRACE_MS	     2000 /* http__free waits this long for streams to end cleanly */
#define TOKEN_FILE_MAX	     4096
#define TOKEN_MIN	     16

struct route {
	char *prefix;
	size_t len;
	http_get_fn get;
	http_post_fn post;
	void *ctx;
};

struct http {
	struct MHD_Daemon *d;
	int listen_fd;
	unsigned short port;
	int stopping; /* __atomic; also the eventlog wait's cancel flag */
	char *token;
	size_t token_len;
	size_t max_body;
	unsigned max_streams, heartbeat_ms;
	int check_host;
	char hostname[256]; /* this machine's name, also accepted as Host on loopback */
	struct route *routes;
	size_t n_routes;
	struct eventlog *events;
	struct metrics *metrics;
	http_asset_fn asset;
	void *asset_ctx;
	pthread_mutex_t lock;	/* streams */
	pthread_cond_t drained; /* CLOCK_MONOTONIC; signalled as streams end */
	unsigned streams;
	unsigned long long requests, client_errors, server_errors, streams_refused, events_streamed;
};

enum endpoint { EP_NONE, EP_METRICS, EP_EVENTS, EP_STREAM, EP_ROUTE, EP_ASSET };

enum { M_GET = 1, M_HEAD = 2, M_POST = 4 };

struct http_req {
	struct http *h;
	struct MHD_Connection *c;
	const char *path;
	enum endpoint ep;
	const struct route *route;
	int method; /* M_*, 0 for any other */
	char *body;
	size_t len, cap, discarded;
	int too_big;
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void count(unsigned long long *c)
{
	__atomic_add_fetch(c, 1, __ATOMIC_RELAXED);
}

/* Decimal uint64, digits only. 0 or -EINVAL. */
static int parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!s || !*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

/* A malloc'd copy of cJSON's text (hooks and the server free bodies with free()). */
static char *print_json(const cJSON *doc)
{
	char *s = cJSON_PrintUnformatted(doc), *copy;

	if (!s)
		return NULL;
	copy = strdup(s);
	cJSON_free(s);
	return copy;
}

/* -- responses --------------------------------------------------------------------------------- */

/* Queue body (malloc'd, freed here whatever happens) with status and headers (name/value pairs,
 * NULL-ended). */
static enum MHD_Result send_body(struct http_req *rq, unsigned status, const char *ctype,
				 char *body, size_t len, const char *const *hdrs)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
				rq->ep == EP_ASSET ? "no-cache" : "no-store");
	for (; hdrs && hdrs[0]; hdrs += 2)
		MHD_add_response_header(resp, hdrs[0], hdrs[1]);
	ret = MHD_queue_response(rq->c, status, resp);
	MHD_destroy_response(resp);
	count(&rq->h->requests);
	if (status >= 500)
		count(&rq->h->server_errors);
	else if (status >= 400)
		count(&rq->h->client_errors);
	return ret;
}

static enum MHD_Result send_json(struct http_req *rq, unsigned status, char *json,
				 const char *const *hdrs)
{
	if (!json)
		return MHD_NO;
	return send_body(rq, status, "application/json", json, strlen(json), hdrs);
}

static char *error_json(unsigned status, const char *msg)
{
	cJSON *doc = cJSON_CreateObject();
	char *s = NULL;

	if (doc && cJSON_AddStringToObject(doc, "error", msg) &&
	    cJSON_AddNumberToObject(doc, "status", (double)status))
		s = print_json(doc);
	cJSON_Delete(doc);
	return s;
}

static enum MHD_Result send_error(struct http_req *rq, unsigned status, const char *const *hdrs,
				  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static enum MHD_Result send_error(struct http_req *rq, unsigned status, const char *const *hdrs,
				  const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return send_json(rq, status, error_json(status, msg), hdrs);
}

/* Send what a hook filled in. */
static enum MHD_Result send_reply(struct http_req *rq, struct http_reply *r)
{
	unsigned status = r->status >= 100 && r->status <= 599 ? (unsigned)r->status : 500;

	if (status == 204 || status == 304) {
		free(r->json);
		return send_body(rq, status, "application/json", NULL, 0, NULL);
	}
	if (r->json)
		return send_json(rq, status, r->json, NULL);
	if (status >= 400)
		return send_error(rq, status, NULL, "%s",
				  r->error[0] ? r->error : "request failed");
	return send_json(rq, status, strdup("{}"), NULL);
}

/* -- hook helpers ------------------------------------------------------------------------------ */

const char *http__arg(const struct http_req *rq, const char *name)
{
	return rq && name ? MHD_lookup_connection_value(rq->c, MHD_GET_ARGUMENT_KIND, name) : NULL;
}

const char *http__header(const struct http_req *rq, const char *name)
{
	return rq && name ? MHD_lookup_connection_value(rq->c, MHD_HEADER_KIND, name) : NULL;
}

void http__reply_error(struct http_reply *r, int status, const char *fmt, ...)
{
	va_list ap;

	if (!r)
		return;
	r->status = status;
	free(r->json);
	r->json = NULL;
	va_start(ap, fmt);
	vsnprintf(r->error, sizeof(r->error), fmt, ap);
	va_end(ap);
}

int http__reply_cjson(struct http_reply *r, int status, struct cJSON *doc)
{
	char *s = doc ? print_json(doc) : NULL;

	cJSON_Delete(doc);
	if (!r) {
		free(s);
		return -EINVAL;
	}
	free(r->json);
	r->json = s;
	r->status = s ? status : 500;
	if (!s) {
		snprintf(r->error, sizeof(r->error), "out of memory");
		return -ENOMEM;
	}
	return 0;
}

/* -- routing ----------------------------------------------------------------------------------- */

static int method_of(const char *m)
{
	if (!strcmp(m, MHD_HTTP_METHOD_GET))
		return M_GET;
	if (!strcmp(m, MHD_HTTP_METHOD_HEAD))
		return M_HEAD;
	if (!strcmp(m, MHD_HTTP_METHOD_POST))
		return M_POST;
	return 0;
}

static int prefix_match(const struct route *r, const char *path)
{
	return !strncmp(path, r->prefix, r->len) &&
	       (path[r->len] == '\0' || path[r->len] == '/' || r->prefix[r->len - 1] == '/');
}

static enum endpoint resolve(struct http *h, const char *path, const struct route **route)
{
	const struct route *best = NULL;
	size_t i;

	*route = NULL;
	if (!strcmp(path, "/metrics"))
		return h->metrics ? EP_METRICS : EP_NONE;
	if (!strcmp(path, "/api/v1/events"))
		return h->events ? EP_EVENTS : EP_NONE;
	if (!strcmp(path, "/api/v1/events/stream"))
		return h->events ? EP_STREAM : EP_NONE;
	for (i = 0; i < h->n_routes; i++)
		if (prefix_match(&h->routes[i], path) && (!best || h->routes[i].len > best->len))
			best = &h->routes[i];
	if (best) {
		*route = best;
		return EP_ROUTE;
	}
	if (!strncmp(path, "/api/", 5) || !strcmp(path, "/api") || !h->asset)
		return EP_NONE;
	return EP_ASSET;
}

static int allowed(const struct http_req *rq)
{
	switch (rq->ep) {
	case EP_STREAM:
		return M_GET;
	case EP_ROUTE:
		return (rq->route->get ? M_GET | M_HEAD : 0) | (rq->route->post ? M_POST : 0);
	default:
		return M_GET | M_HEAD;
	}
}

static void allow_header(int mask, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s", mask & M_GET ? "GET" : "", mask & M_HEAD ? ", HEAD" : "",
		 mask & M_POST ? (mask & M_GET ? ", POST" : "POST") : "");
}

/*
 * Is the Host header a loopback name or this machine's own name? (Debian
 * maps the hostname to 127.0.1.1.) No Host at all, as HTTP/1.0 may send,
 * is fine.
 */
static int host_ok(const struct http *h, const char *host)
{
	char name[256];
	struct in_addr a4;
	const char *end;
	size_t n;

	if (!host)
		return 1;
	if (host[0] == '[') {
		end = strchr(host, ']');
		if (!end)
			return 0;
		host++;
	} else {
		end = strchr(host, ':');
		if (!end)
			end = host + strlen(host);
	}
	n = (size_t)(end - host);
	if (!n || n >= sizeof(name))
		return 0;
	memcpy(name, host, n);
	name[n] = '\0';
	if (name[n - 1] == '.')
		name[n - 1] = '\0';
	if (!strcasecmp(name, "localhost") || !strcmp(name, "::1") ||
	    (h->hostname[0] && !strcasecmp(name, h->hostname)))
		return 1;
	return inet_pton(AF_INET, name, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

/* Constant-time in the secret: every byte of the expected token is looked at, whatever was sent. */
static int token_equal(const struct http *h, const char *got, size_t len)
{
	volatile unsigned char diff = len != h->token_len;
	size_t i;

	for (i = 0; i < h->token_len; i++)
		diff |= (unsigned char)h->token[i] ^ (unsigned char)(i < len ? got[i] : 0);
	return diff == 0;
}

/* 0 when authorized, else 401 (no usable Bearer credentials) or 403 (wrong token). */
static unsigned check_auth(const struct http_req *rq)
{
	const char *v = http__header(rq, MHD_HTTP_HEADER_AUTHORIZATION);
	size_t len;

	if (!v)
		return 401;
	while (*v == ' ')
		v++;
	if (strncasecmp(v, "Bearer", 6) || (v[6] != ' ' && v[6] != '\t'))
		return 401;
	for (v += 6; *v == ' ' || *v == '\t'; v++)
		;
	len = strlen(v);
	while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
		len--;
	if (!len)
		return 401;
	return token_equal(rq->h, v, len) ? 0 : 403;
}

/* -- /metrics and /api/v1/events --------------------------------------------------------------- */

static enum MHD_Result serve_metrics(struct http_req *rq)
{
	char *text = metrics__render(rq->h->metrics);

	if (!text)
		return send_error(rq, 500, NULL, "out of memory rendering metrics");
	return send_body(rq, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text),
			 NULL);
}

struct events_ctx {
	struct util_sb b;
	uint64_t last;
	size_t n;
};

static int add_event(uint64_t id, const char *line, size_t len, void *p)
{
	struct events_ctx *e = p;

	util__sb_printf(&e->b, "%s{\"id\":%llu,\"event\":", e->n++ ? "," : "",
			(unsigned long long)id);
	util__sb_putn(&e->b, line, len);
	util__sb_puts(&e->b, "}");
	e->last = id;
	return 0;
}

static enum MHD_Result serve_events(struct http_req *rq)
{
	const char *since_s = http__arg(rq, "since"), *limit_s = http__arg(rq, "limit");
	struct events_ctx e = {0};
	struct eventlog_span span;
	uint64_t since = 0, limit = EVENTS_LIMIT_DEFAULT;
	int reset = 0, n;

	if (since_s && parse_u64(since_s, &since))
		return send_error(rq, 400, NULL, "since: not an event id: \"%.64s\"", since_s);
	if (limit_s && (parse_u64(limit_s, &limit) || limit < 1 || limit > EVENTS_LIMIT_MAX))
		return send_error(rq, 400, NULL, "limit: not a number from 1 to %d: \"%.64s\"",
				  EVENTS_LIMIT_MAX, limit_s);
	/* a cursor beyond the newest id comes from an earlier run of heald: start over */
	if (since > eventlog__last_id(rq->h->events)) {
		since = 0;
		reset = 1;
	}
	e.last = since;
	util__sb_puts(&e.b, "{\"events\":[");
	n = eventlog__since(rq->h->events, since, (size_t)limit, add_event, &e, &span);
	if (n < 0) {
		free(e.b.p);
		return send_error(rq, 500, NULL, "cannot read events: %s", strerror(-n));
	}
	util__sb_printf(&e.b,
			"],\"first_id\":%llu,\"last_id\":%llu,\"missed\":%llu,\"next\":%llu%s}",
			(unsigned long long)span.first_id, (unsigned long long)span.last_id,
			(unsigned long long)span.missed, (unsigned long long)e.last,
			reset ? ",\"reset\":true" : "");
	if (e.b.err) {
		free(e.b.p);
		return send_error(rq, 500, NULL, "out of memory");
	}
	return send_json(rq, 200, e.b.p, NULL);
}

/* -- /api/v1/events/stream --------------------------------------------------------------------- */

struct stream {
	struct http *h;
	struct MHD_Connection *c;
	uint64_t cursor; /* id of the last event sent */
	int reset; /* send "event: reset" first: the client's cursor was from an earlier run */
	uint64_t reset_last; /* the newest id then */
	int started;
	struct util_sb out;
	size_t off;
	long long last_ms; /* last write, for the heartbeat */
};

static int add_sse(uint64_t id, const char *line, size_t len, void *p)
{
	struct stream *st = p;

	util__sb_printf(&st->out, "id: %llu\ndata: ", (unsigned long long)id);
	util__sb_putn(&st->out, line, len);
	util__sb_puts(&st->out, "\n\n");
	st->cursor = id;
	count(&st->h->events_streamed);
	return 0;
}

/* Did the client close its end? (An SSE client sends nothing after its request.) */
static int peer_gone(struct stream *st)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(st->c, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct pollfd p;

	if (!ci)
		return 0;
	p = (struct pollfd){.fd = ci->connect_fd, .events = POLLIN | POLLRDHUP};
	return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* Events since the cursor into st->out, a gap notice first when some were evicted unsent. */
static int stream_fill(struct stream *st)
{
	struct eventlog_span span;
	int n = eventlog__since(st->h->events, st->cursor, STREAM_BATCH, add_sse, st, &span);

	if (n > 0 && span.missed && !st->out.err) {
		char gap[128];
		int g = snprintf(
		    gap, sizeof(gap), "event: gap\ndata: {\"missed\":%llu,\"first_id\":%llu}\n\n",
		    (unsigned long long)span.missed, (unsigned long long)span.first_id);
		size_t len = st->out.len;

		util__sb_putn(&st->out, gap, (size_t)g); /* grow, then move in front */
		if (!st->out.err) {
			memmove(st->out.p + g, st->out.p, len);
			memcpy(st->out.p, gap, (size_t)g);
		}
	}
	return n;
}

/*
 * MHD's content reader, on the connection's own thread: blocks until it has
 * something to send (events, the heartbeat), the server stops or the client
 * left. Never returns 0, which in this threading mode would spin.
 */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream *st = cls;
	struct http *h = st->h;

	for (;;) {
		long long now, idle;
		int wait;

		if (st->off < st->out.len) {
			size_t n = st->out.len - st->off < max ? st->out.len - st->off : max;

			memcpy(buf, st->out.p + st->off, n);
			st->off += n;
			return (ssize_t)n;
		}
		st->out.len = st->off = 0;
		if (st->out.err)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		if (__atomic_load_n(&h->stopping, __ATOMIC_ACQUIRE))
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (!st->started) {
			/* something at once, so the client sees the stream open */
			st->started = 1;
			util__sb_puts(&st->out, "retry: 2000\n\n");
			if (st->reset)
				util__sb_printf(&st->out,
						"event: reset\ndata: {\"last_id\":%llu}\n\n",
						(unsigned long long)st->reset_last);
			st->last_ms = now_ms();
			continue;
		}
		if (stream_fill(st) > 0) {
			st->last_ms = now_ms();
			continue;
		}
		now = now_ms();
		idle = now - st->last_ms;
		if (idle >= h->heartbeat_ms) {
			util__sb_puts(&st->out, ": heartbeat\n\n");
			st->last_ms = now;
			continue;
		}
		if (peer_gone(st))
			return MHD_CONTENT_READER_END_WITH_ERROR;
		wait = (int)(h->heartbeat_ms - idle);
		eventlog__wait(h->events, st->cursor,
			       wait < STREAM_SLICE_MS ? wait : STREAM_SLICE_MS, &h->stopping);
	}
}

static void stream_free(void *cls)
{
	struct stream *st = cls;

	pthread_mutex_lock(&st->h->lock);
	st->h->streams--;
	pthread_cond_broadcast(&st->h->drained);
	pthread_mutex_unlock(&st->h->lock);
	free(st->out.p);
	free(st);
}

static enum MHD_Result serve_stream(struct http_req *rq)
{
	static const char *const busy_hdrs[] = {"Retry-After", "5", NULL};
	const char *last = http__header(rq, "Last-Event-ID"), *since_s = http__arg(rq, "since");
	struct http *h = rq->h;
	struct MHD_Response *resp;
	struct stream *st;
	uint64_t cursor, newest = eventlog__last_id(h->events);
	enum MHD_Result ret;
	int full;

	/* Last-Event-ID is what a reconnecting EventSource sends: it wins over the URL's since */
	if (last && *last) {
		if (parse_u64(last, &cursor))
			return send_error(rq, 400, NULL,
					  "Last-Event-ID: not an event id: \"%.64s\"", last);
	} else if (since_s) {
		if (parse_u64(since_s, &cursor))
			return send_error(rq, 400, NULL, "since: not an event id: \"%.64s\"",
					  since_s);
	} else {
		cursor = newest;
	}
	pthread_mutex_lock(&h->lock);
	full = h->streams >= h->max_streams;
	if (!full)
		h->streams++;
	pthread_mutex_unlock(&h->lock);
	if (full) {
		count(&h->streams_refused);
		return send_error(rq, 503, busy_hdrs, "too many event streams (%u): retry later",
				  h->max_streams);
	}
	st = calloc(1, sizeof(*st));
	/* from here stream_free, run when MHD is done with the response, gives the slot back */
	resp = st ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, st,
						      stream_free)
		  : NULL;
	if (!resp) {
		free(st);
		pthread_mutex_lock(&h->lock);
		h->streams--;
		pthread_mutex_unlock(&h->lock);
		return send_error(rq, 500, NULL, "out of memory");
	}
	st->h = h;
	st->c = rq->c;
	st->cursor = cursor;
	if (cursor > newest) {
		/* a cursor from an earlier run of heald: say so, then send all we have */
		st->cursor = 0;
		st->reset = 1;
		st->reset_last = newest;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	ret = MHD_queue_response(rq->c, 200, resp);
	MHD_destroy_response(resp);
	count(&h->requests);
	return ret;
}

/* -- hooks ------------------------------------------------------------------------------------- */

static enum MHD_Result serve_asset(struct http_req *rq)
{
	struct http_asset a = {0};
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (rq->h->asset(rq->h->asset_ctx, rq->path, &a) || (!a.data && a.len))
		return send_error(rq, 404, NULL, "no such page: %.200s", rq->path);
	/* the bytes outlive the server: no copy */
	resp = MHD_create_response_from_buffer(a.len, (void *)a.data, MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				a.content_type ? a.content_type : "application/octet-stream");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	ret = MHD_queue_response(rq->c, 200, resp);
	MHD_destroy_response(resp);
	count(&rq->h->requests);
	return ret;
}

static enum MHD_Result serve_get_route(struct http_req *rq)
{
	struct http_reply r = {.status = 200};

	rq->route->get(rq->route->ctx, rq->path, rq, &r);
	return send_reply(rq, &r);
}

/* A whole POST body is in: parse it, call the hook. */
static enum MHD_Result serve_post(struct http_req *rq)
{
	struct http_reply r = {.status = 200};
	const char *end = NULL;
	cJSON *body;
	size_t i;

	if (rq->too_big)
		return send_error(rq, 413, NULL, "body larger than %zu bytes", rq->h->max_body);
	for (i = 0; i < rq->len && isspace((unsigned char)rq->body[i]); i++)
		;
	if (i == rq->len) {
		body = cJSON_CreateObject();
		if (!body)
			return send_error(rq, 500, NULL, "out of memory");
	} else {
		body = cJSON_ParseWithLengthOpts(rq->body, rq->len, &end, 0);
		if (body)
			for (; end < rq->body + rq->len && isspace((unsigned char)*end); end++)
				;
		if (!body || end != rq->body + rq->len || !cJSON_IsObject(body)) {
			cJSON_Delete(body);
			return send_error(rq, 400, NULL, "body is not a JSON object");
		}
	}
	rq->route->post(rq->route->ctx, rq->path, body, rq, &r);
	cJSON_Delete(body);
	return send_reply(rq, &r);
}

/* -- MHD callbacks ----------------------------------------------------------------------------- */

/* Headers are in: refuse what can be refused now, or dispatch a GET. */
static enum MHD_Result first_call(struct http_req *rq, const char *method)
{
	static const char *const www_auth[] = {"WWW-Authenticate", "Bearer realm=\"heald\"", NULL};
	const char *host = http__header(rq, MHD_HTTP_HEADER_HOST), *cl;
	struct http *h = rq->h;
	char allow[32];
	unsigned auth;
	uint64_t len;

	if (h->check_host && !host_ok(h, host))
		return send_error(
		    rq, 403, NULL,
		    "Host \"%.100s\" refused: this loopback server answers loopback names only",
		    host);
	rq->ep = resolve(h, rq->path, &rq->route);
	if (rq->ep == EP_NONE)
		return send_error(rq, 404, NULL, "no such endpoint: %.200s", rq->path);
	if (!(rq->method & allowed(rq))) {
		const char *hdrs[] = {"Allow", allow, NULL};

		allow_header(allowed(rq), allow, sizeof(allow));
		return send_error(rq, 405, hdrs, "method %.16s not allowed on %.200s (allowed: %s)",
				  method, rq->path, allow);
	}
	if (rq->method != M_POST) {
		switch (rq->ep) {
		case EP_METRICS:
			return serve_metrics(rq);
		case EP_EVENTS:
			return serve_events(rq);
		case EP_STREAM:
			return serve_stream(rq);
		case EP_ROUTE:
			return serve_get_route(rq);
		default:
			return serve_asset(rq);
		}
	}
	auth = check_auth(rq);
	if (auth == 401)
		return send_error(rq, 401, www_auth,
				  "missing \"Authorization: Bearer <token>\" (the token is in "
				  "the state directory's " HTTP_TOKEN_FILE ")");
	if (auth == 403)
		return send_error(rq, 403, NULL, "wrong token");
	/*
	 * A declared oversize body: refuse now when the client waits for "100
	 * Continue" (it sends nothing more) or the body is huge. Otherwise the
	 * body may already be on its way: read and drop it, then answer 413 —
	 * closing on unread data would reset the connection and lose the answer.
	 */
	cl = http__header(rq, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl && !parse_u64(cl, &len) && len > h->max_body &&
	    (http__header(rq, MHD_HTTP_HEADER_EXPECT) || len > DISCARD_MAX))
		return send_error(rq, 413, NULL, "body larger than %zu bytes", h->max_body);
	return MHD_YES; /* read the body */
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_size, void **con_cls)
{
	struct http_req *rq = *con_cls;
	struct http *h = cls;

	if (!rq) {
		rq = calloc(1, sizeof(*rq));
		if (!rq)
			return MHD_NO;
		rq->h = h;
		rq->c = c;
		rq->path = url;
		rq->method = method_of(method);
		*con_cls = rq;
		return first_call(rq, method);
	}
	if (*upload_size) {
		size_t n = *upload_size;

		*upload_size = 0;
		if (!rq->too_big && rq->len + n > h->max_body) {
			rq->too_big = 1;
			free(rq->body);
			rq->body = NULL;
			rq->len = rq->cap = 0;
		}
		if (rq->too_big) {
			/* drop the rest so the 413 reaches the client; give up on a flood */
			rq->discarded += n;
			return rq->discarded > DISCARD_MAX ? MHD_NO : MHD_YES;
		}
		if (rq->len + n > rq->cap) {
			size_t cap = rq->cap ? rq->cap : 4096;
			char *p;

			while (cap < rq->len + n)
				cap *= 2;
			if (cap > h->max_body)
				cap = h->max_body;
			p = realloc(rq->body, cap);
			if (!p)
				return MHD_NO;
			rq->body = p;
			rq->cap = cap;
		}
		memcpy(rq->body + rq->len, upload_data, n);
		rq->len += n;
		return MHD_YES;
	}
	return serve_post(rq);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct http_req *rq = *con_cls;

	if (!rq)
		return;
	free(rq->body);
	free(rq);
	*con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = '\0';
	log_debug("http: %s", msg);
}

/* -- listening --------------------------------------------------------------------------------- */

/* "127.0.0.1:80", "[::1]:80", "localhost:80", ":80" (all interfaces). 0 or -EINVAL with err set. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *sl, char *err,
			size_t errlen)
{
	char host[64];
	const char *colon, *hs = s;
	uint64_t port;
	size_t n;

	memset(ss, 0, sizeof(*ss));
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || rb[1] != ':')
			goto bad;
		hs = s + 1;
		n = (size_t)(rb - hs);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || memchr(s, ':', (size_t)(colon - s)))
			goto bad;
		n = (size_t)(colon - s);
	}
	if (n >= sizeof(host) || parse_u64(colon + 1, &port) || port > 65535)
		goto bad;
	memcpy(host, hs, n);
	host[n] = '\0';
	if (!n)
		snprintf(host, sizeof(host), "0.0.0.0");
	else if (!strcasecmp(host, "localhost"))
		snprintf(host, sizeof(host), "127.0.0.1");
	if (s[0] != '[') {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;

		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
			goto bad;
		*sl = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
			goto bad;
		*sl = sizeof(*in6);
	}
	return 0;
bad:
	snprintf(err, errlen, "listen \"%s\": expected IPV4:PORT, [IPV6]:PORT or localhost:PORT",
		 s);
	return -EINVAL;
}

static int is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	{
		const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(a) ||
		       (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
}

static int listen_on(const struct sockaddr_storage *ss, socklen_t sl, unsigned short *port)
{
	int fd, one = 1, err;
	struct sockaddr_storage got;
	socklen_t gl = sizeof(got);

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)ss, sl) || listen(fd, 64) ||
	    getsockname(fd, (struct sockaddr *)&got, &gl)) {
		err = -errno;
		close(fd);
		return err;
	}
	*port = ntohs(got.ss_family == AF_INET ? ((struct sockaddr_in *)&got)->sin_port
					       : ((struct sockaddr_in6 *)&got)->sin6_port);
	return fd;
}

/* -- lifecycle --------------------------------------------------------------------------------- */

struct http *http__new(const struct http_opts *o, char *err, size_t errlen)
{
	const char *listen_s = o && o->listen ? o->listen : HTTP_DEFAULT_LISTEN;
	struct sockaddr_storage ss;
	unsigned max_conn, idle;
	pthread_condattr_t ca;
	struct http *h = NULL;
	socklen_t sl;
	size_t i;
	int fd = -1;

	if (!err || !errlen)
		return NULL;
	err[0] = '\0';
	if (!o) {
		snprintf(err, errlen, "no options");
		return NULL;
	}
	if (!o->token || !*o->token || strlen(o->token) > 1024 || strpbrk(o->token, " \t\r\n")) {
		snprintf(err, errlen, "an API token is required (one word, up to 1024 characters)");
		return NULL;
	}
	if (parse_listen(listen_s, &ss, &sl, err, errlen))
		return NULL;
	if (!is_loopback(&ss) && !o->allow_public) {
		snprintf(err, errlen,
			 "listen %s is not a loopback address: anyone who reaches it could read "
			 "the API; "
			 "set allow_public to serve other hosts",
			 listen_s);
		return NULL;
	}
	for (i = 0; i < o->n_routes; i++) {
		const struct http_route *r = &o->routes[i];

		if (!r->prefix || r->prefix[0] != '/' || (!r->get && !r->post)) {
			snprintf(err, errlen,
				 "route %zu: a prefix starting with '/' and a get or post hook are "
				 "needed",
				 i);
			return NULL;
		}
	}

	h = calloc(1, sizeof(*h));
	if (!h)
		goto oom;
	h->listen_fd = -1;
	pthread_mutex_init(&h->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->drained, &ca);
	pthread_condattr_destroy(&ca);
	h->token = strdup(o->token);
	if (!h->token)
		goto oom;
	h->token_len = strlen(h->token);
	h->max_body = o->max_body ? o->max_body : DEFAULT_MAX_BODY;
	h->max_streams = o->max_streams ? o->max_streams : DEFAULT_STREAMS;
	idle = o->idle_timeout_s ? o->idle_timeout_s : DEFAULT_IDLE_S;
	h->heartbeat_ms = o->heartbeat_ms ? o->heartbeat_ms : DEFAULT_HEARTBEAT_MS;
	/* MHD's idle timeout must not cut a quiet stream between heartbeats */
	if (h->heartbeat_ms > idle * 1000u / 2)
		h->heartbeat_ms = idle * 1000u / 2;
	max_conn = o->max_connections ? o->max_connections : h->max_streams + 32;
	h->check_host = is_loopback(&ss) && !o->allow_public;
	if (gethostname(h->hostname, sizeof(h->hostname) - 1))
		h->hostname[0] = '\0';
	h->events = o->events;
	h->metrics = o->metrics;
	h->asset = o->asset;
	h->asset_ctx = o->asset_ctx;
	if (o->n_routes) {
		h->routes = calloc(o->n_routes, sizeof(*h->routes));
		if (!h->routes)
			goto oom;
		for (i = 0; i < o->n_routes; i++) {
			struct route *r = &h->routes[i];

			r->prefix = strdup(o->routes[i].prefix);
			if (!r->prefix)
				goto oom;
			h->n_routes = i + 1;
			r->len = strlen(r->prefix);
			r->get = o->routes[i].get;
			r->post = o->routes[i].post;
			r->ctx = o->routes[i].ctx;
		}
	}

	fd = listen_on(&ss, sl, &h->port);
	if (fd < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", listen_s, strerror(-fd));
		goto fail;
	}
	h->listen_fd = fd;
	h->d = MHD_start_daemon(
	    MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
		MHD_USE_ITC | MHD_USE_ERROR_LOG | (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
	    0, NULL, NULL, on_request, h, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_NOTIFY_COMPLETED,
	    on_completed, h, MHD_OPTION_CONNECTION_LIMIT, max_conn, MHD_OPTION_CONNECTION_TIMEOUT,
	    idle, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h, MHD_OPTION_END);
	if (!h->d) {
		snprintf(err, errlen,
			 "cannot start the HTTP server on %s (libmicrohttpd refused; -vv says why)",
			 listen_s);
		goto fail;
	}
	return h;
oom:
	snprintf(err, errlen, "out of memory");
fail:
	http__free(h);
	return NULL;
}

void http__free(struct http *h)
{
	size_t i;

	if (!h)
		return;
	if (h->d) {
		struct timespec deadline;

		/* streams see stopping at their next check; the wake makes that now */
		MHD_quiesce_daemon(h->d);
		__atomic_store_n(&h->stopping, 1, __ATOMIC_RELEASE);
		eventlog__wake(h->events);
		/*
		 * Let them send their last chunk before MHD_stop_daemon cuts every
		 * connection; a client that stopped reading gets cut after STOP_GRACE_MS.
		 */
		clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_sec += STOP_GRACE_MS / 1000;
		pthread_mutex_lock(&h->lock);
		while (h->streams && !pthread_cond_timedwait(&h->drained, &h->lock, &deadline))
			;
		pthread_mutex_unlock(&h->lock);
		MHD_stop_daemon(h->d);
	}
	/* MHD was handed the socket but leaves closing it to us after a quiesce */
	if (h->listen_fd >= 0)
		close(h->listen_fd);
	for (i = 0; i < h->n_routes; i++)
		free(h->routes[i].prefix);
	free(h->routes);
	free(h->token);
	pthread_cond_destroy(&h->drained);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

unsigned short http__port(const struct http *h)
{
	return h ? h->port : 0;
}

void http__stats(struct http *h, struct http_stats *st)
{
	if (!st)
		return;
	memset(st, 0, sizeof(*st));
	if (!h)
		return;
	st->requests = __atomic_load_n(&h->requests, __ATOMIC_RELAXED);
	st->client_errors = __atomic_load_n(&h->client_errors, __ATOMIC_RELAXED);
	st->server_errors = __atomic_load_n(&h->server_errors, __ATOMIC_RELAXED);
	st->streams_refused = __atomic_load_n(&h->streams_refused, __ATOMIC_RELAXED);
	st->events_streamed = __atomic_load_n(&h->events_streamed, __ATOMIC_RELAXED);
	pthread_mutex_lock(&h->lock);
	st->streams = h->streams;
	pthread_mutex_unlock(&h->lock);
}

/* -- the token --------------------------------------------------------------------------------- */

static int read_token(const char *path, char *out, size_t len)
{
	char buf[TOKEN_FILE_MAX + 1];
	struct stat sb;
	ssize_t n;
	size_t got = 0, i;
	int fd, err = 0;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &sb)) {
		err = -errno;
		goto out;
	}
	if (!S_ISREG(sb.st_mode) || sb.st_size > TOKEN_FILE_MAX) {
		err = -EINVAL;
		goto out;
	}
	/* like ssh with its keys: a secret others can read is no secret */
	if (sb.st_mode & 077) {
		err = -EPERM;
		goto out;
	}
	while (got < TOKEN_FILE_MAX && (n = read(fd, buf + got, TOKEN_FILE_MAX - got)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			goto out;
		}
		got += (size_t)n;
	}
	while (got && isspace((unsigned char)buf[got - 1]))
		got--;
	buf[got] = '\0';
	for (i = 0; i < got; i++)
		if (buf[i] < '!' || buf[i] > '~')
			break;
	if (i < got || got < TOKEN_MIN)
		err = -EINVAL;
	else if (got + 1 > len)
		err = -ENOSPC;
	else
		memcpy(out, buf, got + 1);
out:
	close(fd);
	return err;
}

int http__load_or_create_token(const char *state_dir, char *out, size_t len)
{
	unsigned char raw[32];
	char path[PATH_MAX], tmp[PATH_MAX], hex[HTTP_TOKEN_LEN + 1];
	size_t got = 0, i;
	int fd, err;

	if (!state_dir || !out || !len)
		return -EINVAL;
	if (snprintf(path, sizeof(path), "%s/" HTTP_TOKEN_FILE, state_dir) >= (int)sizeof(path) ||
	    snprintf(tmp, sizeof(tmp), "%s/." HTTP_TOKEN_FILE ".XXXXXX", state_dir) >=
		(int)sizeof(tmp))
		return -ENAMETOOLONG;
	err = read_token(path, out, len);
	if (err != -ENOENT)
		return err;

	while (got < sizeof(raw)) {
		ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	for (i = 0; i < sizeof(raw); i++)
		snprintf(hex + 2 * i, 3, "%02x", raw[i]);
	hex[64] = '\n';
	hex[65] = '\0';
	explicit_bzero(raw, sizeof(raw));

	/* whole or absent: a temp file linked into place (link fails if one appeared) */
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, 0600) || write(fd, hex, 65) != 65 || fsync(fd)) {
		err = errno ? -errno : -EIO;
		close(fd);
		unlink(tmp);
		return err;
	}
	close(fd);
	err = link(tmp, path) ? -errno : 0;
	unlink(tmp);
	explicit_bzero(hex, sizeof(hex));
	if (err && err != -EEXIST)
		return err;
	fd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	return read_token(path, out, len);
}
