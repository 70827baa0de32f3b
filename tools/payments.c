// SPDX-License-Identifier: MIT
/*
 * payments: the process the demo shop charges orders through. Stopping it is the
 * shop's payments-down scenario (connect(2) = -1 ECONNREFUSED, POST /orders 502);
 * restarting it is the heal.
 *
 *   payments --port N        (default 8081; 0: any free port)
 *
 * Binds 127.0.0.1 only, prints "payments: listening on 127.0.0.1:PORT" once ready,
 * logs one line per request to stderr, exits 0 on SIGTERM/SIGINT. Requests are
 * served by libmicrohttpd's single polling thread; the main thread reads a signalfd.
 *
 *   GET  /health   200 {"ok":true}
 *   POST /charge   {"order_id":"ord-1","amount_cents":1250} -> 200 {"charge_id":"ch-1",
 *                  "order_id":"ord-1","amount_cents":1250}; 400 not JSON, 422 bad fields
 *   Bodies over 64 KiB get 413; errors are {"error": "...", "status": N}.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/sdt.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <cjson/cJSON.h>
#include <microhttpd.h>

#define MAX_BODY	     (64 * 1024)
#define MAX_AMOUNT_CENTS     100000000L
#define MAX_ID_LEN	     64
#define MAX_CONNECTIONS	     32
#define CONNECTION_TIMEOUT_S 30
#define MSG_LEN		     256

/* heald may put a uprobe here: returns the HTTP status of a charge. */
int payments_handle_charge(const char *order_id, long amount_cents);

#ifdef __clang__
#define PAYMENTS_PROBE_FN __attribute__((noinline, used, disable_tail_calls))
#else
#define PAYMENTS_PROBE_FN __attribute__((noinline, noipa, used))
#endif

struct request {
	char *body;
	size_t len;
	size_t cap;
	bool too_large;
	bool answered;
	struct timespec start;
};

static struct {
	unsigned long charges;
	cJSON *json; /* reply body; NULL: {"error": msg} */
	char msg[MSG_LEN];
} pay;

static void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int reply_error(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void log_msg(const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "payments: %s\n", line);
}

static void reply_reset(void)
{
	cJSON_Delete(pay.json);
	pay.json = NULL;
	pay.msg[0] = '\0';
}

static int reply_error(int status, const char *fmt, ...)
{
	va_list ap;

	cJSON_Delete(pay.json);
	pay.json = NULL;
	va_start(ap, fmt);
	vsnprintf(pay.msg, sizeof(pay.msg), fmt, ap);
	va_end(ap);
	return status;
}

static int reply_json(int status, cJSON *json)
{
	if (!json)
		return reply_error(500, "out of memory");
	cJSON_Delete(pay.json);
	pay.json = json;
	return status;
}

static double elapsed_ms(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) * 1e3 +
	       (double)(now.tv_nsec - start->tv_nsec) / 1e6;
}

/* POST /charge: accepts any well-formed charge. Returns the HTTP status. */
PAYMENTS_PROBE_FN
int payments_handle_charge(const char *order_id, long amount_cents)
{
	struct timespec now;
	char id[48];
	cJSON *out;

	if (!order_id[0] || strlen(order_id) > MAX_ID_LEN)
		return reply_error(422, "order_id: 1..%d bytes", MAX_ID_LEN);
	if (amount_cents < 0 || amount_cents > MAX_AMOUNT_CENTS)
		return reply_error(422, "amount_cents: must be an integer in 0..%ld",
				   MAX_AMOUNT_CENTS);
	clock_gettime(CLOCK_REALTIME, &now);
	snprintf(id, sizeof(id), "ch-%lld-%lu",
		 (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000, ++pay.charges);
	out = cJSON_CreateObject();
	if (out && (!cJSON_AddStringToObject(out, "charge_id", id) ||
		    !cJSON_AddStringToObject(out, "order_id", order_id) ||
		    !cJSON_AddNumberToObject(out, "amount_cents", (double)amount_cents))) {
		cJSON_Delete(out);
		out = NULL;
	}
	return reply_json(200, out);
}

static int handle_request(const char *method, const char *path, const char *body, size_t len)
{
	const cJSON *id, *amount;
	cJSON *json;
	long cents;
	int status;

	if (!strcmp(path, "/health")) {
		if (strcmp(method, "GET"))
			return reply_error(405, "use GET");
		return reply_json(200, cJSON_Parse("{\"ok\":true}"));
	}
	if (strcmp(path, "/charge"))
		return reply_error(404, "no endpoint %s", path);
	if (strcmp(method, "POST"))
		return reply_error(405, "use POST");
	json = cJSON_ParseWithLength(body ? body : "", len);
	if (!cJSON_IsObject(json)) {
		cJSON_Delete(json);
		return reply_error(400, "body: not a JSON object");
	}
	id = cJSON_GetObjectItemCaseSensitive(json, "order_id");
	amount = cJSON_GetObjectItemCaseSensitive(json, "amount_cents");
	cents = cJSON_IsNumber(amount) && amount->valuedouble >= 0 &&
			amount->valuedouble <= (double)MAX_AMOUNT_CENTS &&
			amount->valuedouble == (double)(long)amount->valuedouble
		    ? (long)amount->valuedouble
		    : -1;
	status = payments_handle_charge(cJSON_IsString(id) ? id->valuestring : "", cents);
	cJSON_Delete(json);
	return status;
}

/* One access-log line; control bytes from the URL or the body are replaced so it stays one line. */
static void log_request(const char *method, const char *url, int status, double ms, const char *msg)
{
	char line[1024];
	int i, n;

	n = snprintf(line, sizeof(line), "%s %s %d %.1fms%s%s", method, url, status, ms,
		     msg[0] ? " " : "", msg);
	if (n < 0)
		return;
	for (i = 0; i < n && i < (int)sizeof(line) - 1; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			line[i] = '?';
	fprintf(stderr, "payments: %s\n", line);
}

static enum MHD_Result respond(struct MHD_Connection *conn, struct request *r, const char *method,
			       const char *url, int status)
{
	static const char oom[] = "{\"error\":\"out of memory\"}\n";
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char *text = NULL, *nl;
	size_t len;

	if (!pay.json && status >= 300) {
		cJSON *e = cJSON_CreateObject();

		if (e && cJSON_AddStringToObject(e, "error", pay.msg[0] ? pay.msg : "error") &&
		    cJSON_AddNumberToObject(e, "status", status))
			pay.json = e;
		else
			cJSON_Delete(e);
	}
	if (pay.json)
		text = cJSON_PrintUnformatted(pay.json);
	if (text) {
		len = strlen(text);
		nl = realloc(text, len + 2);
		if (nl) {
			text = nl;
			text[len++] = '\n';
			text[len] = '\0';
		}
		resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
		if (!resp)
			free(text);
	} else {
		resp = MHD_create_response_from_buffer(sizeof(oom) - 1, (void *)oom,
						       MHD_RESPMEM_PERSISTENT);
	}
	if (!resp) {
		reply_reset();
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	ret = MHD_queue_response(conn, (unsigned int)status, resp);
	MHD_destroy_response(resp);
	r->answered = true;

	log_request(method, url, status, elapsed_ms(&r->start), pay.msg);
	DTRACE_PROBE3(payments, request_done, status, method, url);
	reply_reset();
	return ret;
}

/* Only libmicrohttpd's one thread runs on_request(). */
static bool thread_named;

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct request *r = *con_cls;

	(void)cls;
	(void)version;
	if (!thread_named) {
		/* libmicrohttpd calls its thread "MHD-single": heald's events carry the thread's
		 * comm. */
		pthread_setname_np(pthread_self(), "payments");
		thread_named = true;
	}
	if (!r) {
		const char *cl;

		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		clock_gettime(CLOCK_MONOTONIC, &r->start);
		*con_cls = r;
		cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						 MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > MAX_BODY) {
			r->too_large = true;
			return respond(conn, r, method, url,
				       reply_error(413, "body larger than %d bytes", MAX_BODY));
		}
		return MHD_YES;
	}
	if (*upload_size) {
		if (!r->too_large && !r->answered) {
			if (r->len + *upload_size > MAX_BODY) {
				r->too_large = true;
				free(r->body);
				r->body = NULL;
				r->len = r->cap = 0;
			} else {
				if (r->len + *upload_size + 1 > r->cap) {
					size_t cap = r->len + *upload_size + 1;
					char *b;

					cap = cap < 1024 ? 1024 : cap * 2;
					if (cap > MAX_BODY + 1)
						cap = MAX_BODY + 1;
					b = realloc(r->body, cap);
					if (!b)
						return MHD_NO;
					r->body = b;
					r->cap = cap;
				}
				memcpy(r->body + r->len, upload, *upload_size);
				r->len += *upload_size;
				r->body[r->len] = '\0';
			}
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->answered)
		return MHD_YES;
	if (r->too_large)
		return respond(conn, r, method, url,
			       reply_error(413, "body larger than %d bytes", MAX_BODY));
	reply_reset();
	return respond(conn, r, method, url, handle_request(method, url, r->body, r->len));
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct request *r = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (r) {
		free(r->body);
		free(r);
		*con_cls = NULL;
	}
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = '\0';
	fprintf(stderr, "payments: libmicrohttpd: %s\n", line);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: payments [--port N]   (default 8081; 0: any free port)\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"port", required_argument, NULL, 'p'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const union MHD_DaemonInfo *info;
	struct MHD_Daemon *d = NULL;
	struct sockaddr_in sin;
	long port = 8081;
	sigset_t mask;
	char *end;
	int opt, sfd = -1, exit_code = 1;

	while ((opt = getopt_long(argc, argv, "p:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'p':
			errno = 0;
			port = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || port < 0 || port > 65535) {
				log_msg("--port: \"%s\" is not a port number", optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	signal(SIGPIPE, SIG_IGN);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) || (sfd = signalfd(-1, &mask, SFD_CLOEXEC)) < 0) {
		log_msg("signalfd: %s", strerror(errno));
		goto cleanup;
	}
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	d = MHD_start_daemon(
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG, (uint16_t)port,
	    NULL, NULL, on_request, NULL, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin, MHD_OPTION_NOTIFY_COMPLETED,
	    on_completed, NULL, MHD_OPTION_CONNECTION_LIMIT, (unsigned int)MAX_CONNECTIONS,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)CONNECTION_TIMEOUT_S, MHD_OPTION_END);
	if (!d) {
		log_msg("cannot listen on 127.0.0.1:%ld", port);
		goto cleanup;
	}
	info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	log_msg("listening on 127.0.0.1:%u", info ? info->port : (unsigned int)port);

	for (;;) {
		struct signalfd_siginfo si;
		ssize_t n = read(sfd, &si, sizeof(si));

		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(si)) {
			log_msg("signalfd: %s", n < 0 ? strerror(errno) : "short read");
			goto cleanup;
		}
		if (si.ssi_signo == SIGHUP)
			continue; /* nothing to reload */
		log_msg("%s: stopping", strsignal((int)si.ssi_signo));
		break;
	}
	exit_code = 0;
cleanup:
	if (d)
		MHD_stop_daemon(d);
	if (sfd >= 0)
		close(sfd);
	reply_reset();
	return exit_code;
}
