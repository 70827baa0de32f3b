/* SPDX-License-Identifier: MIT */
/*
 * http: heald's HTTP server (libmicrohttpd), loopback by default.
 *
 *   GET  /metrics                 the metrics registry, text/plain; version=0.0.4
 *   GET  /api/v1/events           ?since=ID&limit=N (default 100, at most 1000):
 *                                 {"events":[{"id":N,"event":{...}},...],"first_id","last_id",
 *                                  "missed","next"[,"reset":true]}
 *   GET  /api/v1/events/stream    server-sent events: "id: N" + "data: <line>" per event;
 *                                 resumes after Last-Event-ID (or ?since=ID), else starts
 *                                 with the next event; "event: gap" (data {"missed","first_id"})
 *                                 when events were evicted before they could be sent,
 *                                 "event: reset" when the cursor is from an earlier run;
 *                                 a ": heartbeat" comment every heartbeat_ms
 *   GET  <route prefix>...        the owner's read-only JSON hooks
 *   POST <route prefix>...        the owner's actions: Authorization: Bearer <token> required
 *   GET  /... (anything else)     the owner's static assets (default 404)
 *
 * Reading is open; every POST needs the token (401 without, 403 when wrong;
 * compared in constant time). Bodies are JSON objects of at most max_body
 * bytes (413 past it; 400 when not a JSON object; empty means {}). Errors
 * are {"error": "...", "status": N}: 400, 401, 403, 404, 405 (with Allow),
 * 413, 503 (too many streams, with Retry-After). On a loopback listener,
 * requests whose Host is neither a loopback name nor this machine's name
 * are refused with 403: a DNS rebinding guard, so a web page cannot read
 * the API through a browser on this host.
 *
 * Threading: libmicrohttpd runs one thread per connection (bounded by
 * max_connections, of which at most max_streams are SSE streams). Every
 * hook below (assets included) runs on such a connection thread, several
 * at once, never on heald's main loop, and must not touch main-loop state:
 * read-only hooks answer from a snapshot the main loop publishes under a
 * lock (or from thread-safe modules such as eventlog and metrics); POST
 * hooks queue the action to the main loop (a locked queue plus an eventfd
 * the loop polls) and either reply 202 at once or wait, with a timeout, for
 * the loop's answer. A hook may block its own connection, never the others;
 * http__free waits for every connection thread, so no hook may wait
 * without a timeout (and the loop should fail pending waits before it).
 */
#ifndef HEAL_HTTP_H
#define HEAL_HTTP_H

#include <stddef.h>
#include <stdint.h>

struct cJSON;
struct eventlog;
struct metrics;

struct http;
/* The request a hook is serving; valid during the call only. */
struct http_req;

/* A suggested default: loopback, a port no common exporter uses (not 9090, 9100, 9464). */
#define HTTP_DEFAULT_LISTEN "127.0.0.1:7433"
#define HTTP_TOKEN_FILE	    "api.token"
/* 32 random bytes as hex, plus the NUL. */
#define HTTP_TOKEN_LEN (64 + 1)

/* What a hook answers. The server fills status = 200 before the call. */
struct http_reply {
	int status;	 /* HTTP status */
	char *json;	 /* malloc'd JSON, sent as is and freed by the server; NULL with 2xx: {} */
	char error[256]; /* status >= 400 and no json: sent as {"error": error, "status": N} */
};

/* A read-only hook: GET (and HEAD) on its prefix. path is the decoded URL path, no query. */
typedef void (*http_get_fn)(void *ctx, const char *path, const struct http_req *rq,
			    struct http_reply *r);
/* An action: POST on its prefix, authorized; body is the parsed JSON object (the server's). */
typedef void (*http_post_fn)(void *ctx, const char *path, const struct cJSON *body,
			     const struct http_req *rq, struct http_reply *r);

/*
 * A route matches its prefix exactly or followed by '/' ("/api/v1/traces"
 * serves "/api/v1/traces/tr-1", not "/api/v1/tracesX"); the longest match
 * wins. A method without a hook gets 405.
 */
struct http_route {
	const char *prefix; /* starts with '/'; copied */
	http_get_fn get;    /* may be NULL */
	http_post_fn post;  /* may be NULL */
	void *ctx;
};

/* A static asset; data must outlive the server (embedded in the binary). */
struct http_asset {
	const void *data;
	size_t len;
	const char *content_type; /* NULL: application/octet-stream */
};
/* Fill *out for path ("/" included) and return 0, or nonzero for 404. */
typedef int (*http_asset_fn)(void *ctx, const char *path, struct http_asset *out);

struct http_opts {
	/* "127.0.0.1:PORT", "[::1]:PORT", "localhost:PORT"; port 0 picks one; NULL: the default */
	const char *listen;
	int allow_public;	  /* needed to listen on anything but loopback (0.0.0.0 included) */
	const char *token;	  /* required: POSTs must send "Authorization: Bearer <token>" */
	size_t max_body;	  /* 0: 64 KiB */
	unsigned max_streams;	  /* concurrent SSE streams; 0: 32; more get 503 */
	unsigned max_connections; /* 0: max_streams + 32; more are refused at accept */
	unsigned heartbeat_ms;	  /* SSE heartbeat comment; 0: 15000 */
	unsigned idle_timeout_s;  /* idle keep-alive connections closed after; 0: 30 */
	const struct http_route *routes;
	size_t n_routes;
	struct eventlog *events; /* NULL: no /api/v1/events* (404) */
	struct metrics *metrics; /* NULL: no /metrics (404) */
	http_asset_fn asset;	 /* NULL: every other GET is 404 */
	void *asset_ctx;
};

struct http_stats {
	unsigned long long requests;	    /* responses queued */
	unsigned long long client_errors;   /* 4xx */
	unsigned long long server_errors;   /* 5xx */
	unsigned long long streams_refused; /* 503: max_streams reached */
	unsigned long long events_streamed; /* events sent on SSE streams */
	unsigned streams;		    /* SSE streams open now */
};

/*
 * Bind o->listen and start serving (threads started here). NULL on failure
 * with one sentence in err (a non-loopback address without allow_public, a
 * bad address, no token, the port in use...). The eventlog and metrics must
 * outlive the server.
 */
struct http *http__new(const struct http_opts *o, char *err, size_t errlen);
/*
 * Stop: refuse new connections, end every SSE stream cleanly at an event
 * boundary (waiting up to 2 s for their last chunk to go out; a client that
 * stopped reading is cut), wait for every connection thread, free. Call it
 * from the owner's thread, never from a hook. Accepts NULL.
 */
void http__free(struct http *h);
/* The bound port (useful with port 0). */
unsigned short http__port(const struct http *h);
void http__stats(struct http *h, struct http_stats *st);

/*
 * Read STATE_DIR/api.token into out (a visible-ASCII string, trailing
 * whitespace dropped, at least 16 characters), or create it: 0600, 32 bytes
 * from getrandom(2) as hex, written to a temp file and linked into place (a
 * concurrent creator wins, its token is read). 0, -EPERM (the file is
 * readable or writable by group or others), -EINVAL (not a usable token),
 * -ENOSPC (len too small; HTTP_TOKEN_LEN fits a created one) or -errno.
 * state_dir must exist.
 */
int http__load_or_create_token(const char *state_dir, char *out, size_t len);

/* Hook helpers. A query argument (decoded) or request header, NULL when absent. */
const char *http__arg(const struct http_req *rq, const char *name);
const char *http__header(const struct http_req *rq, const char *name);
/* Set an error reply: status and a printf-style message. */
void http__reply_error(struct http_reply *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Set a JSON reply from doc (printed unformatted, then deleted). 0 or -ENOMEM (then a 500). */
int http__reply_cjson(struct http_reply *r, int status, struct cJSON *doc);

#endif /* HEAL_HTTP_H */
