// SPDX-License-Identifier: MIT
/*
 * shop: the demo e-commerce service heald watches and heals.
 *
 *   shop --config DIR/shop.json [--check]      serve (or only validate the config)
 *   shop --scenarios                           print the failure scenarios below
 *
 * Requests are served one at a time by libmicrohttpd's single polling thread (epoll);
 * the main thread only reads a signalfd (SIGHUP: reload shop.json; SIGTERM/SIGINT:
 * exit 0) and swaps the config under a lock.
 * Binds 127.0.0.1 only; prints "shop: listening on 127.0.0.1:PORT" once ready and
 * one line per request to stderr.
 *
 * Files (relative paths are relative to the directory of shop.json):
 *   shop.json            {"port": 8080, "payments": "127.0.0.1:8081", "data_dir": "data",
 *                          "includes": {"catalog": "catalog.json",
 *                                       "returns_schema": "returns-schema.json"},
 *                          "orders": {"discount_plugin": "none", "audit_log": false},
 *                          "limits": {"max_open_files": 64}}
 *                        read at start and on SIGHUP; a reload that fails to parse or
 *                        validate keeps the previous config. Include files are not
 *                        checked at reload: they are read on every request.
 *                        port and limits.max_open_files (setrlimit) apply at start only.
 *   catalog.json         {"currency": "EUR",
 *                          "items": [{"id": "sku-1", "name": "Coffee mug", "price": 12.5}]}
 *   returns-schema.json  {"required": ["order_id", "reason"], "reason_max_len": 200,
 *                          "allowed_reasons": ["damaged", "wrong_item", "not_needed"]}
 *   DATA_DIR/orders.log  one JSON object per line: {"id","item","qty","amount_cents",
 *                          "discount_cents","status":"pending"} then {"id","status":"paid",
 *                          "charge_id"} or {"id","status":"payment_failed","error"}
 *   DATA_DIR/audit.log   with orders.audit_log: one line per request but /health
 *
 * Endpoints (every body is JSON; errors are {"error": "...", "status": N}):
 *   GET  /health     200 {"ok":true}
 *   GET  /catalog    200 the catalog, re-read from its file on every request
 *   POST /orders     {"item":"sku-1","qty":1} -> 201 the order; 400 bad JSON, 422 bad
 *                    item/qty, 502/504 payments, 507 disk full, 500 other failures
 *   GET  /orders/ID  200 the order (merged from orders.log) or 404
 *   POST /returns    {"order_id":"...","reason":"damaged"} -> 200; 400 bad JSON,
 *                    422 fails the schema, 500 the schema itself rejects every return
 *   Bodies over 64 KiB get 413; unknown paths 404, wrong methods 405.
 *
 * Failure scenarios. Each is switched on from the outside by changing state heald
 * can repair (a file, a dead dependency, an rlimit, a full disk); tools/shopctl.sh
 * on|off SCENARIO switches them. The same table is printed by --scenarios.
 *
 *   returns-schema   add "rma_code" to "required" in returns-schema.json (no reload:
 *                    the schema is read on every return). A return has no such field,
 *                    so shop_handle_return() returns 500 for every valid return.
 *                    Healed by restoring the previous schema (or dropping the key).
 *   missing-include  point includes.catalog at a missing file and SIGHUP, or delete
 *                    or rename catalog.json. GET /catalog and POST /orders:
 *                    openat(CATALOG) = -1 ENOENT, shop_handle_catalog() returns 500.
 *                    Healed by restoring the file or the last known good shop.json.
 *   null-crash       set orders.discount_plugin to an unregistered name ("summer-sale")
 *                    and SIGHUP (or restart). The next POST /orders calls
 *                    shop_apply_discount(NULL, ...): SIGSEGV at address 0x8 in
 *                    shop_apply_discount <- shop_handle_order <- shop_handle_request.
 *                    Healed by restoring the last known good shop.json and restarting.
 *   fd-leak          set orders.audit_log to true and SIGHUP. Every request but /health
 *                    opens DATA_DIR/audit.log and never closes it; with
 *                    limits.max_open_files 64 (setrlimit at start) openat() fails
 *                    with EMFILE after ~55-58 requests and every request but /health
 *                    returns 500. Healed by raising RLIMIT_NOFILE of the live process
 *                    (prlimit --pid PID --nofile=N:N) or restarting; audit_log false
 *                    (and SIGHUP) stops further leaks.
 *   payments-down    stop the payments process. POST /orders: connect(PAYMENTS) = -1
 *                    ECONNREFUSED, shop_handle_order() returns 502. Healed by
 *                    restarting payments.
 *   disk-full        fill DATA_DIR (a small filesystem) with rotated logs
 *                    orders.log.1..N: tools/shopctl.sh fill-disk DATA_DIR. POST
 *                    /orders: write(orders.log) = -1 ENOSPC, shop_handle_order()
 *                    returns 507. Healed by removing DATA_DIR/orders.log.*.
 */
#include <errno.h>
#include <fcntl.h>
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
#include <sys/resource.h>
#include <sys/sdt.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <cjson/cJSON.h>
#include <microhttpd.h>

#define MAX_BODY	     (64 * 1024)   /* request bodies above this get 413 */
#define MAX_FILE	     (1024 * 1024) /* largest config/include file read */
#define MAX_QTY		     100
#define MAX_ID_LEN	     64
#define MAX_NOTE_LEN	     1000
#define MAX_CONNECTIONS	     16
#define CONNECTION_TIMEOUT_S 30
#define PAYMENTS_TIMEOUT_MS  2000
#define PAYMENTS_REPLY_MAX   8192
#define MSG_LEN		     512
#define MIN_OPEN_FILES	     16

struct discount_plugin {
	const char *name;
	long (*apply)(long amount_cents, int qty);
};

/* Functions heald attaches uprobes to or expects in stacks: global, never inlined or cloned. */
int shop_handle_request(const char *method, const char *path, const char *body, size_t body_len);
int shop_handle_catalog(void);
int shop_handle_order(const char *item, int qty);
int shop_handle_get_order(const char *order_id);
int shop_handle_return(const char *order_id, const char *body);
long shop_apply_discount(const struct discount_plugin *plugin, long amount_cents, int qty);

/* Under ASan (make SAN=1), leave SIGSEGV to the kernel: null-crash must die by the signal. */
const char *__asan_default_options(void);

/* noipa: no inlining, cloning or return-value propagation into callers (GCC only). */
#ifdef __clang__
#define SHOP_PROBE_FN __attribute__((noinline, used, disable_tail_calls))
#else
#define SHOP_PROBE_FN __attribute__((noinline, noipa, used))
#endif

struct scenario {
	const char *name;
	const char *switch_on;
	const char *fails;
	const char *healed_by;
};

static const struct scenario scenarios[] = {
    {"returns-schema",
     "add \"rma_code\" to \"required\" in returns-schema.json (read on every return, no reload)",
     "POST /returns: shop_handle_return() returns 500 for every valid return",
     "restore the previous returns-schema.json (or remove \"rma_code\" from \"required\")"},
    {"missing-include",
     "set includes.catalog in shop.json to a missing file + SIGHUP, or delete/rename catalog.json",
     "GET /catalog, POST /orders: openat(CATALOG) = -1 ENOENT; shop_handle_catalog() returns 500",
     "restore the catalog file, or the last known good shop.json + SIGHUP"},
    {"null-crash",
     "set orders.discount_plugin in shop.json to an unregistered name (\"summer-sale\") + SIGHUP",
     "POST /orders: SIGSEGV (addr 0x8) in shop_apply_discount <- shop_handle_order; the shop dies",
     "restore the last known good shop.json and restart the shop"},
    {"fd-leak",
     "set orders.audit_log in shop.json to true + SIGHUP (limits.max_open_files 64, applied at "
     "start)",
     "after ~55-58 requests: openat() = -1 EMFILE; every request but /health returns 500",
     "raise RLIMIT_NOFILE of the live shop (prlimit --pid PID --nofile=4096:4096) or restart it"},
    {"payments-down", "stop the payments process",
     "POST /orders: connect(PAYMENTS) = -1 ECONNREFUSED; shop_handle_order() returns 502",
     "restart payments"},
    {"disk-full",
     "fill DATA_DIR (a small filesystem) with rotated logs: tools/shopctl.sh fill-disk DATA_DIR",
     "POST /orders: write(DATA_DIR/orders.log) = -1 ENOSPC; shop_handle_order() returns 507",
     "remove (or compress) DATA_DIR/orders.log.*"},
};

struct config {
	int port;	     /* 0: any free port */
	long max_open_files; /* 0: leave RLIMIT_NOFILE alone */
	bool audit_log;
	struct sockaddr_in payments;
	char payments_str[64];
	char discount_plugin[64];
	char data_dir[PATH_MAX];
	char catalog_path[PATH_MAX];
	char schema_path[PATH_MAX];
};

/* What a handler answers: the status it returns plus a body or an error message. */
struct reply {
	cJSON *json; /* NULL: {"error": msg} */
	char msg[MSG_LEN];
};

/* Per-request state kept by libmicrohttpd between calls of on_request(). */
struct request {
	char *body;
	size_t len;
	size_t cap;
	bool too_large;
	bool answered;
	struct timespec start;
};

static struct {
	pthread_mutex_t lock; /* cfg: swapped by reload(), used by requests */
	struct config *cfg;
	char config_path[PATH_MAX]; /* absolute */
	char config_dir[PATH_MAX];
	unsigned int seq;
	struct reply reply;
} shop;

static void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int reply_error(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* -- small helpers ----------------------------------------------------------------- */

static void log_msg(const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "shop: %s\n", line);
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Joins DIR and a config-relative PATH (kept when absolute); -ENAMETOOLONG if too long. */
static int path_join(char *out, size_t outlen, const char *dir, const char *path)
{
	int n;

	if (path[0] == '/')
		n = snprintf(out, outlen, "%s", path);
	else
		n = snprintf(out, outlen, "%s/%s", dir, path);
	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

/* Reads a whole file of at most MAX_FILE bytes into a NUL-terminated malloc'd buffer. */
static int read_file(const char *path, char **out, size_t *lenp)
{
	size_t len = 0, cap = 4096;
	char *buf = NULL, *tmp;
	int fd, err = 0;
	ssize_t n;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf = malloc(cap);
	if (!buf) {
		err = -ENOMEM;
		goto cleanup;
	}
	for (;;) {
		if (cap - len < 2) {
			if (cap >= MAX_FILE) {
				err = -EFBIG;
				goto cleanup;
			}
			tmp = realloc(buf, cap * 2);
			if (!tmp) {
				err = -ENOMEM;
				goto cleanup;
			}
			buf = tmp;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			goto cleanup;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*out = buf;
	buf = NULL;
	if (lenp)
		*lenp = len;
cleanup:
	free(buf);
	close(fd);
	return err;
}

/* Reads and parses a JSON file; on failure err says what went wrong with which file. */
static int load_json(const char *path, cJSON **out, char *err, size_t errlen)
{
	char *text = NULL;
	size_t len = 0;
	cJSON *json;
	int rc;

	rc = read_file(path, &text, &len);
	if (rc) {
		set_err(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	json = cJSON_ParseWithLength(text, len);
	if (!json) {
		const char *at = cJSON_GetErrorPtr();
		long off = at && at >= text && at <= text + len ? (long)(at - text) : -1;

		set_err(err, errlen, "%s: invalid JSON near byte %ld", path, off);
		free(text);
		return -EBADMSG;
	}
	free(text);
	*out = json;
	return 0;
}

/* Appends one line; a short write is undone so the file never holds half a line. */
static int append_line(int fd, const char *line, size_t len)
{
	struct stat st;
	off_t start = fstat(fd, &st) ? -1 : st.st_size;
	size_t off = 0;
	ssize_t n;
	int err;

	while (off < len) {
		n = write(fd, line + off, len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			if (off && start >= 0 && ftruncate(fd, start))
				log_msg("cannot undo a partial line: %s", strerror(errno));
			return err;
		}
		off += (size_t)n;
	}
	return 0;
}

static int append_json_line(int fd, const cJSON *obj)
{
	char *text = cJSON_PrintUnformatted(obj);
	size_t len;
	int err;

	if (!text)
		return -ENOMEM;
	len = strlen(text);
	text[len] = '\n'; /* over the NUL: the write is bounded by len + 1 */
	err = append_line(fd, text, len + 1);
	free(text);
	return err;
}

static double elapsed_ms(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) * 1e3 +
	       (double)(now.tv_nsec - start->tv_nsec) / 1e6;
}

static bool valid_id(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > MAX_ID_LEN)
		return false;
	for (i = 0; i < n; i++) {
		char ch = s[i];

		if (!(ch >= 'a' && ch <= 'z') && !(ch >= 'A' && ch <= 'Z') &&
		    !(ch >= '0' && ch <= '9') && ch != '-' && ch != '_')
			return false;
	}
	return true;
}

/* -- replies ------------------------------------------------------------------------- */

static void reply_reset(void)
{
	cJSON_Delete(shop.reply.json);
	shop.reply.json = NULL;
	shop.reply.msg[0] = '\0';
}

/* Sets the error message of the current reply and returns STATUS for the handler to return. */
static int reply_error(int status, const char *fmt, ...)
{
	va_list ap;

	cJSON_Delete(shop.reply.json);
	shop.reply.json = NULL;
	va_start(ap, fmt);
	vsnprintf(shop.reply.msg, sizeof(shop.reply.msg), fmt, ap);
	va_end(ap);
	return status;
}

/* Takes ownership of JSON as the body of the current reply (500 when it is NULL: out of memory). */
static int reply_json(int status, cJSON *json)
{
	if (!json)
		return reply_error(500, "out of memory");
	cJSON_Delete(shop.reply.json);
	shop.reply.json = json;
	return status;
}

/* -- config ------------------------------------------------------------------------- */

static int cfg_string(const cJSON *obj, const char *where, const char *key, bool required,
		      const char **out, char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!v) {
		if (!required)
			return 0;
		set_err(err, errlen, "%s%s: missing", where, key);
		return -EINVAL;
	}
	if (!cJSON_IsString(v) || !v->valuestring[0]) {
		set_err(err, errlen, "%s%s: must be a non-empty string", where, key);
		return -EINVAL;
	}
	*out = v->valuestring;
	return 0;
}

static int cfg_int(const cJSON *obj, const char *where, const char *key, bool required, long min,
		   long max, long *out, char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!v) {
		if (!required)
			return 0;
		set_err(err, errlen, "%s%s: missing", where, key);
		return -EINVAL;
	}
	if (!cJSON_IsNumber(v) || v->valuedouble < (double)min || v->valuedouble > (double)max ||
	    v->valuedouble != (double)(long)v->valuedouble) {
		set_err(err, errlen, "%s%s: must be an integer in %ld..%ld", where, key, min, max);
		return -EINVAL;
	}
	*out = (long)v->valuedouble;
	return 0;
}

static int cfg_object(const cJSON *obj, const char *key, bool required, const cJSON **out,
		      char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	*out = NULL;
	if (!v) {
		if (!required)
			return 0;
		set_err(err, errlen, "%s: missing", key);
		return -EINVAL;
	}
	if (!cJSON_IsObject(v)) {
		set_err(err, errlen, "%s: must be an object", key);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/* "IPv4:PORT" to a socket address. */
static int parse_addr(const char *s, struct sockaddr_in *sa)
{
	const char *colon = strrchr(s, ':');
	char host[INET_ADDRSTRLEN];
	char *end;
	long port;

	if (!colon || colon == s || (size_t)(colon - s) >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || port < 1 || port > 65535)
		return -EINVAL;
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
		return -EINVAL;
	return 0;
}

/*
 * Loads and validates shop.json (types and ranges only: include files are read per
 * request and the discount plugin is looked up per order). Returns 0 or -errno.
 */
static int config_load(const char *path, const char *dir, struct config **out, char *err,
		       size_t errlen)
{
	const cJSON *includes, *orders, *limits, *v;
	const char *s, *data_dir, *catalog, *schema;
	struct config *c;
	cJSON *root = NULL;
	long port = 0;
	int rc;

	c = calloc(1, sizeof(*c));
	if (!c) {
		set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rc = load_json(path, &root, err, errlen);
	if (rc)
		goto cleanup;
	rc = -EINVAL;
	if (!cJSON_IsObject(root)) {
		set_err(err, errlen, "not a JSON object");
		goto cleanup;
	}
	if (cfg_int(root, "", "port", true, 0, 65535, &port, err, errlen) ||
	    cfg_string(root, "", "payments", true, &s, err, errlen))
		goto cleanup;
	c->port = (int)port;
	if (parse_addr(s, &c->payments)) {
		set_err(err, errlen, "payments: \"%s\" is not IPV4:PORT", s);
		goto cleanup;
	}
	snprintf(c->payments_str, sizeof(c->payments_str), "%s", s);
	if (cfg_string(root, "", "data_dir", true, &data_dir, err, errlen) ||
	    cfg_object(root, "includes", true, &includes, err, errlen) ||
	    cfg_string(includes, "includes.", "catalog", true, &catalog, err, errlen) ||
	    cfg_string(includes, "includes.", "returns_schema", true, &schema, err, errlen) ||
	    cfg_object(root, "orders", false, &orders, err, errlen) ||
	    cfg_object(root, "limits", false, &limits, err, errlen))
		goto cleanup;
	if (path_join(c->data_dir, sizeof(c->data_dir), dir, data_dir) ||
	    path_join(c->catalog_path, sizeof(c->catalog_path), dir, catalog) ||
	    path_join(c->schema_path, sizeof(c->schema_path), dir, schema)) {
		set_err(err, errlen, "a path is too long");
		goto cleanup;
	}
	s = "none";
	if (orders) {
		if (cfg_string(orders, "orders.", "discount_plugin", false, &s, err, errlen))
			goto cleanup;
		v = cJSON_GetObjectItemCaseSensitive(orders, "audit_log");
		if (v && !cJSON_IsBool(v)) {
			set_err(err, errlen, "orders.audit_log: must be true or false");
			goto cleanup;
		}
		c->audit_log = cJSON_IsTrue(v);
	}
	if (strlen(s) >= sizeof(c->discount_plugin)) {
		set_err(err, errlen, "orders.discount_plugin: longer than %zu bytes",
			sizeof(c->discount_plugin) - 1);
		goto cleanup;
	}
	snprintf(c->discount_plugin, sizeof(c->discount_plugin), "%s", s);
	if (limits && cfg_int(limits, "limits.", "max_open_files", false, MIN_OPEN_FILES, 1 << 20,
			      &c->max_open_files, err, errlen))
		goto cleanup;
	*out = c;
	c = NULL;
	rc = 0;
cleanup:
	if (rc == -EINVAL) {
		char field[MSG_LEN];

		snprintf(field, sizeof(field), "%s", err);
		set_err(err, errlen, "%s: %s", path, field);
	}
	cJSON_Delete(root);
	free(c);
	return rc;
}

/* Sets the soft RLIMIT_NOFILE to limits.max_open_files (raising the hard limit if it must). */
static int apply_limits(const struct config *c)
{
	struct rlimit rl;

	if (!c->max_open_files)
		return 0;
	if (getrlimit(RLIMIT_NOFILE, &rl))
		return -errno;
	rl.rlim_cur = (rlim_t)c->max_open_files;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < rl.rlim_cur)
		rl.rlim_max = rl.rlim_cur;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		return -errno;
	return 0;
}

static void ensure_dir(const char *dir)
{
	if (mkdir(dir, 0755) && errno != EEXIST)
		log_msg("cannot create data_dir %s: %s", dir, strerror(errno));
}

static void config_print(const struct config *c)
{
	printf("config=%s\nport=%d\npayments=%s\ndata_dir=%s\ncatalog=%s\nreturns_schema=%s\n"
	       "discount_plugin=%s\naudit_log=%s\nmax_open_files=%ld\n",
	       shop.config_path, c->port, c->payments_str, c->data_dir, c->catalog_path,
	       c->schema_path, c->discount_plugin, c->audit_log ? "true" : "false",
	       c->max_open_files);
}

/* SIGHUP. Under the request lock: cJSON keeps its parse error position in a global. */
static void reload(void)
{
	struct config *c = NULL;
	char err[MSG_LEN];

	pthread_mutex_lock(&shop.lock);
	if (config_load(shop.config_path, shop.config_dir, &c, err, sizeof(err))) {
		pthread_mutex_unlock(&shop.lock);
		log_msg("reload of %s failed, keeping the previous config: %s", shop.config_path,
			err);
		return;
	}
	if (c->port != shop.cfg->port)
		log_msg("reload: port changes apply at restart only, still serving the old port");
	if (c->max_open_files != shop.cfg->max_open_files)
		log_msg("reload: limits.max_open_files applies at restart only");
	ensure_dir(c->data_dir);
	free(shop.cfg);
	shop.cfg = c;
	pthread_mutex_unlock(&shop.lock);
	log_msg("reloaded %s (discount_plugin=%s audit_log=%s)", shop.config_path,
		c->discount_plugin, c->audit_log ? "true" : "false");
}

/* -- discounts ------------------------------------------------------------------------ */

static long discount_none(long amount_cents, int qty)
{
	(void)amount_cents;
	(void)qty;
	return 0;
}

static long discount_ten_percent(long amount_cents, int qty)
{
	(void)qty;
	return amount_cents / 10;
}

static long discount_bulk(long amount_cents, int qty)
{
	return qty >= 5 ? amount_cents * 15 / 100 : 0;
}

static const struct discount_plugin discount_plugins[] = {
    {"none", discount_none},
    {"ten-percent", discount_ten_percent},
    {"bulk", discount_bulk},
};

/* NULL when no plugin of that name is registered. */
static const struct discount_plugin *discount_lookup(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(discount_plugins) / sizeof(discount_plugins[0]); i++)
		if (!strcmp(discount_plugins[i].name, name))
			return &discount_plugins[i];
	return NULL;
}

/*
 * Returns the discount in cents the plugin grants on AMOUNT_CENTS.
 * null-crash: an unregistered plugin name gives PLUGIN == NULL, which nobody checks:
 * the load of plugin->apply faults at address 0x8. no_sanitize("null") keeps that a
 * real SIGSEGV in sanitizer builds (make SAN=1) instead of a UBSan report.
 */
SHOP_PROBE_FN __attribute__((no_sanitize("null"))) long
shop_apply_discount(const struct discount_plugin *plugin, long amount_cents, int qty)
{
	long off = plugin->apply(amount_cents, qty);

	if (off < 0)
		off = 0;
	if (off > amount_cents)
		off = amount_cents;
	return off;
}

__attribute__((used)) const char *__asan_default_options(void)
{
	return "handle_segv=0";
}

/* -- payments client ----------------------------------------------------------------- */

static int send_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len) {
		n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Charges AMOUNT_CENTS through POST http://PAYMENTS/charge over a plain blocking
 * socket. Returns 0 with the charge id, or -errno: the connect(2) error, -ETIMEDOUT,
 * -EPROTO (payments said no) or -EBADMSG (unreadable answer).
 */
static int payments_charge(const struct config *c, const char *order_id, long amount_cents,
			   char *charge_id, size_t idlen, char *err, size_t errlen)
{
	struct timeval tv = {PAYMENTS_TIMEOUT_MS / 1000, (PAYMENTS_TIMEOUT_MS % 1000) * 1000};
	char req[512], body[160], *resp = NULL, *p;
	const cJSON *id;
	cJSON *json = NULL;
	size_t len = 0;
	int fd, rc, status, n;
	ssize_t got;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		set_err(err, errlen, "payments: socket: %s", strerror(-rc));
		return rc;
	}
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (const struct sockaddr *)&c->payments, sizeof(c->payments))) {
		rc = errno == EINPROGRESS ? -ETIMEDOUT : -errno;
		set_err(err, errlen, "payments: connect %s: %s", c->payments_str, strerror(-rc));
		goto cleanup;
	}
	snprintf(body, sizeof(body), "{\"order_id\":\"%s\",\"amount_cents\":%ld}", order_id,
		 amount_cents);
	n = snprintf(req, sizeof(req),
		     "POST /charge HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
		     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
		     c->payments_str, strlen(body), body);
	rc = send_all(fd, req, (size_t)n);
	if (rc) {
		set_err(err, errlen, "payments: send: %s", strerror(-rc));
		goto cleanup;
	}
	resp = malloc(PAYMENTS_REPLY_MAX + 1);
	if (!resp) {
		rc = -ENOMEM;
		set_err(err, errlen, "out of memory");
		goto cleanup;
	}
	while (len < PAYMENTS_REPLY_MAX) {
		got = recv(fd, resp + len, PAYMENTS_REPLY_MAX - len, 0);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			rc = errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
			set_err(err, errlen, "payments: recv: %s", strerror(-rc));
			goto cleanup;
		}
		if (got == 0)
			break;
		len += (size_t)got;
	}
	resp[len] = '\0';
	rc = -EBADMSG;
	if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1) {
		set_err(err, errlen, "payments: not an HTTP answer");
		goto cleanup;
	}
	p = strstr(resp, "\r\n\r\n");
	if (status != 200) {
		rc = -EPROTO;
		set_err(err, errlen, "payments: charge answered %d%s%.200s", status, p ? ": " : "",
			p ? p + 4 : "");
		goto cleanup;
	}
	json = p ? cJSON_Parse(p + 4) : NULL;
	id = cJSON_GetObjectItemCaseSensitive(json, "charge_id");
	if (!cJSON_IsString(id)) {
		set_err(err, errlen, "payments: answer has no charge_id");
		goto cleanup;
	}
	snprintf(charge_id, idlen, "%s", id->valuestring);
	rc = 0;
cleanup:
	cJSON_Delete(json);
	free(resp);
	close(fd);
	return rc;
}

/* HTTP status for a failed charge: the upstream's fault (502/504) or ours (500). */
static int charge_status(int err)
{
	switch (-err) {
	case ETIMEDOUT:
		return 504;
	case ECONNREFUSED:
	case ECONNRESET:
	case ECONNABORTED:
	case EPIPE:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case EPROTO:
	case EBADMSG:
		return 502;
	default:
		return 500;
	}
}

/* -- handlers ------------------------------------------------------------------------- */

/* Loads the catalog include; on failure the reply is set and the HTTP status returned. */
static int catalog_load(const struct config *c, cJSON **out)
{
	char err[MSG_LEN];
	cJSON *cat = NULL;
	int rc;

	rc = load_json(c->catalog_path, &cat, err, sizeof(err));
	if (rc)
		return reply_error(500, "catalog: %s", err);
	if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(cat, "items"))) {
		cJSON_Delete(cat);
		return reply_error(500, "catalog: %s: no \"items\" array", c->catalog_path);
	}
	*out = cat;
	return 0;
}

/* GET /catalog: the catalog include, read on every request. */
SHOP_PROBE_FN
int shop_handle_catalog(void)
{
	cJSON *cat = NULL;
	int status;

	status = catalog_load(shop.cfg, &cat);
	if (status)
		return status;
	return reply_json(200, cat);
}

static int open_orders_log(const struct config *c, char *path, size_t pathlen)
{
	int fd;

	if (path_join(path, pathlen, c->data_dir, "orders.log"))
		return -ENAMETOOLONG;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	return fd < 0 ? -errno : fd;
}

/* Appends {"id": ORDER_ID, "status": STATUS, KEY: VALUE} to the orders log. */
static int log_order_status(int fd, const char *order_id, const char *status, const char *key,
			    const char *value)
{
	cJSON *rec = cJSON_CreateObject();
	int err = -ENOMEM;

	if (rec && cJSON_AddStringToObject(rec, "id", order_id) &&
	    cJSON_AddStringToObject(rec, "status", status) &&
	    cJSON_AddStringToObject(rec, key, value))
		err = append_json_line(fd, rec);
	cJSON_Delete(rec);
	return err;
}

static int write_status(int status, int err, const char *what, const char *path)
{
	return reply_error(err == -ENOSPC || err == -EDQUOT ? 507 : status, "%s %s: %s", what, path,
			   strerror(-err));
}

/* POST /orders: prices ITEM from the catalog, logs the order, charges it. Returns the status. */
SHOP_PROBE_FN
int shop_handle_order(const char *item, int qty)
{
	const struct config *c = shop.cfg;
	const cJSON *items, *it, *id, *price = NULL, *name = NULL;
	char path[PATH_MAX], order_id[MAX_ID_LEN + 1], charge_id[MAX_ID_LEN + 1], err[MSG_LEN];
	long unit_cents, amount, discount;
	cJSON *cat = NULL, *rec = NULL;
	int fd = -1, rc, status;
	struct timespec now;

	if (!item[0])
		return reply_error(422, "item: must be a catalog id");
	if (qty < 1 || qty > MAX_QTY)
		return reply_error(422, "qty: must be an integer in 1..%d", MAX_QTY);
	status = catalog_load(c, &cat);
	if (status)
		return status;
	items = cJSON_GetObjectItemCaseSensitive(cat, "items");
	for (it = items ? items->child : NULL; it; it = it->next) {
		id = cJSON_GetObjectItemCaseSensitive(it, "id");
		if (cJSON_IsString(id) && !strcmp(id->valuestring, item)) {
			price = cJSON_GetObjectItemCaseSensitive(it, "price");
			name = cJSON_GetObjectItemCaseSensitive(it, "name");
			break;
		}
	}
	if (!price) {
		status = reply_error(422, "item: no \"%.64s\" in the catalog", item);
		goto cleanup;
	}
	if (!cJSON_IsNumber(price) || price->valuedouble < 0 || price->valuedouble > 1e7) {
		status = reply_error(500, "catalog: %s: bad price for %s", c->catalog_path, item);
		goto cleanup;
	}
	unit_cents = (long)(price->valuedouble * 100.0 + 0.5);
	amount = unit_cents * qty;
	discount = shop_apply_discount(discount_lookup(c->discount_plugin), amount, qty);
	amount -= discount;

	clock_gettime(CLOCK_REALTIME, &now);
	snprintf(order_id, sizeof(order_id), "ord-%lld-%u",
		 (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000, ++shop.seq);
	rec = cJSON_CreateObject();
	if (!rec || !cJSON_AddStringToObject(rec, "id", order_id) ||
	    !cJSON_AddStringToObject(rec, "item", item) ||
	    !cJSON_AddNumberToObject(rec, "qty", qty) ||
	    !cJSON_AddStringToObject(rec, "name",
				     cJSON_IsString(name) ? name->valuestring : item) ||
	    !cJSON_AddNumberToObject(rec, "amount_cents", (double)amount) ||
	    !cJSON_AddNumberToObject(rec, "discount_cents", (double)discount) ||
	    !cJSON_AddNumberToObject(rec, "ts", (double)now.tv_sec) ||
	    !cJSON_AddStringToObject(rec, "status", "pending")) {
		status = reply_error(500, "out of memory");
		goto cleanup;
	}

	/* Log the order before charging it: a disk-full shop must not take money. */
	fd = open_orders_log(c, path, sizeof(path));
	if (fd < 0) {
		status = write_status(500, fd, "open", path);
		goto cleanup;
	}
	rc = append_json_line(fd, rec);
	if (rc) {
		status = write_status(500, rc, "write", path);
		goto cleanup;
	}

	rc = payments_charge(c, order_id, amount, charge_id, sizeof(charge_id), err, sizeof(err));
	if (rc) {
		status = reply_error(charge_status(rc), "%s", err);
		rc = log_order_status(fd, order_id, "payment_failed", "error", err);
		if (rc)
			log_msg("order %s: write %s: %s", order_id, path, strerror(-rc));
		goto cleanup;
	}
	rc = log_order_status(fd, order_id, "paid", "charge_id", charge_id);
	if (rc) {
		status = write_status(500, rc, "write", path);
		goto cleanup;
	}
	cJSON_DeleteItemFromObjectCaseSensitive(rec, "status");
	if (!cJSON_AddStringToObject(rec, "status", "paid") ||
	    !cJSON_AddStringToObject(rec, "charge_id", charge_id)) {
		status = reply_error(500, "out of memory");
		goto cleanup;
	}
	status = reply_json(201, rec);
	rec = NULL;
cleanup:
	if (fd >= 0)
		close(fd);
	cJSON_Delete(rec);
	cJSON_Delete(cat);
	return status;
}

/* Copies every field of one orders.log record into OUT (later records win). */
static void merge_record(cJSON *out, const cJSON *line)
{
	const cJSON *field;

	for (field = line ? line->child : NULL; field; field = field->next) {
		cJSON *copy = cJSON_Duplicate(field, true);

		if (!copy)
			continue;
		if (cJSON_GetObjectItemCaseSensitive(out, field->string))
			cJSON_ReplaceItemInObjectCaseSensitive(out, field->string, copy);
		else
			cJSON_AddItemToObject(out, field->string, copy);
	}
}

/* GET /orders/ID: the order as recorded in orders.log. */
SHOP_PROBE_FN
int shop_handle_get_order(const char *order_id)
{
	char path[PATH_MAX], *line = NULL;
	cJSON *order = NULL;
	size_t cap = 0;
	FILE *f;
	int status;

	if (!valid_id(order_id))
		return reply_error(404, "no order \"%.64s\"", order_id);
	if (path_join(path, sizeof(path), shop.cfg->data_dir, "orders.log"))
		return reply_error(500, "data_dir: path too long");
	f = fopen(path, "re");
	if (!f) {
		if (errno == ENOENT)
			return reply_error(404, "no order \"%s\"", order_id);
		return reply_error(500, "open %s: %s", path, strerror(errno));
	}
	while (getline(&line, &cap, f) > 0) {
		const cJSON *id;
		cJSON *rec;

		if (!strstr(line, order_id))
			continue;
		rec = cJSON_Parse(line);
		id = cJSON_GetObjectItemCaseSensitive(rec, "id");
		if (cJSON_IsString(id) && !strcmp(id->valuestring, order_id)) {
			if (!order)
				order = cJSON_CreateObject();
			if (order)
				merge_record(order, rec);
		}
		cJSON_Delete(rec);
	}
	if (ferror(f)) {
		cJSON_Delete(order);
		status = reply_error(500, "read %s: %s", path, strerror(errno));
	} else if (!order) {
		status = reply_error(404, "no order \"%s\"", order_id);
	} else {
		status = reply_json(200, order);
	}
	free(line);
	fclose(f);
	return status;
}

/* The fields a return has; a schema that requires any other field rejects every return. */
static const char *const return_fields[] = {"order_id", "reason", "note"};

static bool is_return_field(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(return_fields) / sizeof(return_fields[0]); i++)
		if (!strcmp(return_fields[i], name))
			return true;
	return false;
}

/* Whether some return can pass SCHEMA at all; err says why not. */
static int schema_check(const cJSON *schema, char *err, size_t errlen)
{
	const cJSON *req, *max, *allowed, *v;

	if (!cJSON_IsObject(schema)) {
		set_err(err, errlen, "not a JSON object");
		return -EINVAL;
	}
	req = cJSON_GetObjectItemCaseSensitive(schema, "required");
	if (req && !cJSON_IsArray(req)) {
		set_err(err, errlen, "\"required\" must be an array of field names");
		return -EINVAL;
	}
	for (v = req ? req->child : NULL; v; v = v->next) {
		if (!cJSON_IsString(v)) {
			set_err(err, errlen, "\"required\" must be an array of field names");
			return -EINVAL;
		}
		if (!is_return_field(v->valuestring)) {
			set_err(err, errlen,
				"required field \"%.64s\" is not a field of a return (order_id, "
				"reason, note)",
				v->valuestring);
			return -EINVAL;
		}
	}
	max = cJSON_GetObjectItemCaseSensitive(schema, "reason_max_len");
	if (max && (!cJSON_IsNumber(max) || max->valuedouble < 1)) {
		set_err(err, errlen, "\"reason_max_len\" must be a number >= 1");
		return -EINVAL;
	}
	allowed = cJSON_GetObjectItemCaseSensitive(schema, "allowed_reasons");
	if (allowed && (!cJSON_IsArray(allowed) || !cJSON_GetArraySize(allowed))) {
		set_err(err, errlen, "\"allowed_reasons\" must be a non-empty array");
		return -EINVAL;
	}
	return 0;
}

/* Whether return REQ passes SCHEMA (already checked); err says why not. */
static int return_validate(const cJSON *schema, const cJSON *req, char *err, size_t errlen)
{
	const cJSON *fields = cJSON_GetObjectItemCaseSensitive(schema, "required");
	const cJSON *max = cJSON_GetObjectItemCaseSensitive(schema, "reason_max_len");
	const cJSON *allowed = cJSON_GetObjectItemCaseSensitive(schema, "allowed_reasons");
	const cJSON *v, *a;
	size_t i;

	for (i = 0; i < sizeof(return_fields) / sizeof(return_fields[0]); i++) {
		v = cJSON_GetObjectItemCaseSensitive(req, return_fields[i]);
		if (v && !cJSON_IsString(v)) {
			set_err(err, errlen, "\"%s\" must be a string", return_fields[i]);
			return -EINVAL;
		}
	}
	for (v = fields ? fields->child : NULL; v; v = v->next) {
		const cJSON *f = cJSON_GetObjectItemCaseSensitive(req, v->valuestring);

		if (!cJSON_IsString(f) || !f->valuestring[0]) {
			set_err(err, errlen, "missing required field \"%s\"", v->valuestring);
			return -EINVAL;
		}
	}
	v = cJSON_GetObjectItemCaseSensitive(req, "order_id");
	if (v && !valid_id(v->valuestring)) {
		set_err(err, errlen, "order_id: 1..%d of [A-Za-z0-9_-]", MAX_ID_LEN);
		return -EINVAL;
	}
	v = cJSON_GetObjectItemCaseSensitive(req, "note");
	if (v && strlen(v->valuestring) > MAX_NOTE_LEN) {
		set_err(err, errlen, "note: longer than %d bytes", MAX_NOTE_LEN);
		return -EINVAL;
	}
	v = cJSON_GetObjectItemCaseSensitive(req, "reason");
	if (!v)
		return 0;
	if (max && (double)strlen(v->valuestring) > max->valuedouble) {
		set_err(err, errlen, "reason: longer than %d bytes", (int)max->valuedouble);
		return -EINVAL;
	}
	if (allowed) {
		for (a = allowed->child; a; a = a->next)
			if (cJSON_IsString(a) && !strcmp(a->valuestring, v->valuestring))
				return 0;
		set_err(err, errlen, "reason: \"%.64s\" is not an allowed reason", v->valuestring);
		return -EINVAL;
	}
	return 0;
}

/*
 * POST /returns: validates BODY against the returns schema (read on every request).
 * ORDER_ID is the body's order_id ("" when it has none). Returns 200, 400 (not JSON),
 * 422 (fails the schema) or 500 (the schema is unreadable or rejects every return).
 */
SHOP_PROBE_FN
int shop_handle_return(const char *order_id, const char *body)
{
	const cJSON *reason;
	cJSON *req = NULL, *schema = NULL, *out;
	char err[MSG_LEN], return_id[MAX_ID_LEN + 1];
	struct timespec now;
	int status;

	req = cJSON_Parse(body);
	if (!cJSON_IsObject(req)) {
		status = reply_error(400, "body: not a JSON object");
		goto cleanup;
	}
	if (load_json(shop.cfg->schema_path, &schema, err, sizeof(err))) {
		status = reply_error(500, "returns schema: %s", err);
		goto cleanup;
	}
	if (schema_check(schema, err, sizeof(err))) {
		status = reply_error(500, "returns schema %s rejects every return: %s",
				     shop.cfg->schema_path, err);
		goto cleanup;
	}
	if (return_validate(schema, req, err, sizeof(err))) {
		status = reply_error(422, "%s", err);
		goto cleanup;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	snprintf(return_id, sizeof(return_id), "ret-%lld-%u",
		 (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000, ++shop.seq);
	reason = cJSON_GetObjectItemCaseSensitive(req, "reason");
	out = cJSON_CreateObject();
	if (out && (!cJSON_AddStringToObject(out, "return_id", return_id) ||
		    !cJSON_AddStringToObject(out, "order_id", order_id) ||
		    !cJSON_AddStringToObject(out, "reason",
					     cJSON_IsString(reason) ? reason->valuestring : "") ||
		    !cJSON_AddStringToObject(out, "status", "accepted"))) {
		cJSON_Delete(out);
		out = NULL;
	}
	status = reply_json(200, out);
cleanup:
	cJSON_Delete(schema);
	cJSON_Delete(req);
	return status;
}

/*
 * orders.audit_log: appends one line per request to DATA_DIR/audit.log.
 * fd-leak: the descriptor is never closed (the bug this scenario is about).
 */
static int audit_request(const struct config *c, const char *method, const char *path, char *err,
			 size_t errlen)
{
	char file[PATH_MAX], line[PATH_MAX + 64];
	struct timespec now;
	int fd, n, rc;

	if (path_join(file, sizeof(file), c->data_dir, "audit.log")) {
		set_err(err, errlen, "data_dir: path too long");
		return -ENAMETOOLONG;
	}
	fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		set_err(err, errlen, "open %s: %s", file, strerror(-rc));
		return rc;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	n = snprintf(line, sizeof(line), "%lld %s %.200s\n", (long long)now.tv_sec, method, path);
	rc = append_line(fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
	if (rc)
		set_err(err, errlen, "write %s: %s", file, strerror(-rc));
	return rc;
}

/* Routes one complete request; the reply is left in shop.reply. Returns the HTTP status. */
SHOP_PROBE_FN
int shop_handle_request(const char *method, const char *path, const char *body, size_t body_len)
{
	bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
	char err[MSG_LEN];
	cJSON *json;
	int status;

	if (!strcmp(path, "/health")) {
		if (!get)
			return reply_error(405, "use GET");
		return reply_json(200, cJSON_Parse("{\"ok\":true}"));
	}
	if (shop.cfg->audit_log && audit_request(shop.cfg, method, path, err, sizeof(err)))
		return reply_error(500, "audit log: %s", err);
	if (!strcmp(path, "/catalog")) {
		if (!get)
			return reply_error(405, "use GET");
		return shop_handle_catalog();
	}
	if (!strncmp(path, "/orders/", 8)) {
		if (!get)
			return reply_error(405, "use GET");
		return shop_handle_get_order(path + 8);
	}
	if (!strcmp(path, "/orders")) {
		const cJSON *item, *qty;
		int n = 1;

		if (!post)
			return reply_error(405, "use POST");
		json = cJSON_ParseWithLength(body ? body : "", body_len);
		if (!cJSON_IsObject(json)) {
			cJSON_Delete(json);
			return reply_error(400, "body: not a JSON object");
		}
		item = cJSON_GetObjectItemCaseSensitive(json, "item");
		qty = cJSON_GetObjectItemCaseSensitive(json, "qty");
		if (qty)
			n = cJSON_IsNumber(qty) && qty->valuedouble >= 1 &&
				    qty->valuedouble <= MAX_QTY &&
				    qty->valuedouble == (double)(int)qty->valuedouble
				? (int)qty->valuedouble
				: -1;
		status = shop_handle_order(cJSON_IsString(item) ? item->valuestring : "", n);
		cJSON_Delete(json);
		return status;
	}
	if (!strcmp(path, "/returns")) {
		const cJSON *id;

		if (!post)
			return reply_error(405, "use POST");
		json = cJSON_ParseWithLength(body ? body : "", body_len);
		id = cJSON_GetObjectItemCaseSensitive(json, "order_id");
		status =
		    shop_handle_return(cJSON_IsString(id) ? id->valuestring : "", body ? body : "");
		cJSON_Delete(json);
		return status;
	}
	return reply_error(404, "no endpoint %s", path);
}

/* -- HTTP plumbing ------------------------------------------------------------------ */

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
	fprintf(stderr, "shop: %s\n", line);
}

static enum MHD_Result respond(struct MHD_Connection *conn, struct request *r, const char *method,
			       const char *url, int status)
{
	static const char oom[] = "{\"error\":\"out of memory\"}\n";
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char *text = NULL, *nl;
	size_t len;

	if (!shop.reply.json && status >= 300) {
		cJSON *e = cJSON_CreateObject();

		if (e &&
		    cJSON_AddStringToObject(e, "error",
					    shop.reply.msg[0] ? shop.reply.msg : "error") &&
		    cJSON_AddNumberToObject(e, "status", status))
			shop.reply.json = e;
		else
			cJSON_Delete(e);
	}
	if (shop.reply.json)
		text = cJSON_PrintUnformatted(shop.reply.json);
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

	log_request(method, url, status, elapsed_ms(&r->start), shop.reply.msg);
	DTRACE_PROBE3(shop, request_done, status, method, url);
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
	int status;

	(void)cls;
	(void)version;
	if (!thread_named) {
		/* libmicrohttpd calls its thread "MHD-single": heald's events carry the thread's
		 * comm. */
		pthread_setname_np(pthread_self(), "shop");
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
	pthread_mutex_lock(&shop.lock);
	status = shop_handle_request(method, url, r->body, r->len);
	pthread_mutex_unlock(&shop.lock);
	return respond(conn, r, method, url, status);
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
	fprintf(stderr, "shop: libmicrohttpd: %s\n", line);
}

/* -- main ------------------------------------------------------------------------------ */

static void print_scenarios(void)
{
	size_t i;

	printf("%-16s | %-s | %s | %s\n", "name", "switch on", "fails", "healed by");
	for (i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
		printf("%-16s | %s | %s | %s\n", scenarios[i].name, scenarios[i].switch_on,
		       scenarios[i].fails, scenarios[i].healed_by);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: shop --config FILE [--check]   serve (or only validate FILE and print "
		   "it resolved)\n"
		   "       shop --scenarios                print the failure scenarios\n");
}

/* Absolute form of PATH and its directory. */
static int resolve_config_path(const char *path)
{
	char cwd[PATH_MAX], *slash;

	if (path[0] == '/') {
		if (snprintf(shop.config_path, sizeof(shop.config_path), "%s", path) >=
		    (int)sizeof(shop.config_path))
			return -ENAMETOOLONG;
	} else {
		if (!getcwd(cwd, sizeof(cwd)))
			return -errno;
		if (path_join(shop.config_path, sizeof(shop.config_path), cwd, path))
			return -ENAMETOOLONG;
	}
	snprintf(shop.config_dir, sizeof(shop.config_dir), "%s", shop.config_path);
	slash = strrchr(shop.config_dir, '/');
	if (slash == shop.config_dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"check", no_argument, NULL, 'k'},
	    {"scenarios", no_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *config = NULL;
	bool check = false;
	struct MHD_Daemon *d = NULL;
	const union MHD_DaemonInfo *info;
	struct sockaddr_in sin;
	char err[MSG_LEN];
	sigset_t mask;
	int opt, rc, sfd = -1, exit_code = 1;

	while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config = optarg;
			break;
		case 'k':
			check = true;
			break;
		case 's':
			print_scenarios();
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!config || optind != argc) {
		usage(stderr);
		return 2;
	}
	rc = resolve_config_path(config);
	if (rc) {
		log_msg("%s: %s", config, strerror(-rc));
		return 1;
	}
	rc = config_load(shop.config_path, shop.config_dir, &shop.cfg, err, sizeof(err));
	if (rc) {
		log_msg("bad config: %s", err);
		return 1;
	}
	pthread_mutex_init(&shop.lock, NULL);
	if (check) {
		config_print(shop.cfg);
		free(shop.cfg);
		return 0;
	}
	rc = apply_limits(shop.cfg);
	if (rc) {
		log_msg("limits.max_open_files %ld: setrlimit: %s", shop.cfg->max_open_files,
			strerror(-rc));
		goto cleanup;
	}
	ensure_dir(shop.cfg->data_dir);
	log_msg(
	    "config %s: payments=%s data_dir=%s discount_plugin=%s audit_log=%s max_open_files=%ld",
	    shop.config_path, shop.cfg->payments_str, shop.cfg->data_dir, shop.cfg->discount_plugin,
	    shop.cfg->audit_log ? "true" : "false", shop.cfg->max_open_files);

	/* Blocked before libmicrohttpd starts its thread, so only the signalfd sees them. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	signal(SIGPIPE, SIG_IGN);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) || (sfd = signalfd(-1, &mask, SFD_CLOEXEC)) < 0) {
		log_msg("signalfd: %s", strerror(errno));
		goto cleanup;
	}

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)shop.cfg->port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG,
			     (uint16_t)shop.cfg->port, NULL, NULL, on_request, NULL,
			     MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_SOCK_ADDR,
			     (struct sockaddr *)&sin, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
			     NULL, MHD_OPTION_CONNECTION_LIMIT, (unsigned int)MAX_CONNECTIONS,
			     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)CONNECTION_TIMEOUT_S,
			     MHD_OPTION_END);
	if (!d) {
		log_msg("cannot listen on 127.0.0.1:%d", shop.cfg->port);
		goto cleanup;
	}
	info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	log_msg("listening on 127.0.0.1:%u", info ? info->port : (unsigned int)shop.cfg->port);

	for (;;) {
		struct signalfd_siginfo si;
		ssize_t n = read(sfd, &si, sizeof(si));

		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(si)) {
			log_msg("signalfd: %s", n < 0 ? strerror(errno) : "short read");
			goto cleanup;
		}
		if (si.ssi_signo != SIGHUP) {
			log_msg("%s: stopping", strsignal((int)si.ssi_signo));
			break;
		}
		reload();
	}
	exit_code = 0;
cleanup:
	if (d)
		MHD_stop_daemon(d);
	if (sfd >= 0)
		close(sfd);
	reply_reset();
	free(shop.cfg);
	return exit_code;
}
