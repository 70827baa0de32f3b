// SPDX-License-Identifier: MIT
/*
 * LLM client over libcurl: one easy handle per call (calls run on worker
 * threads, concurrently), a total time budget across retries, the provider's
 * error type and message in the one-line error. What leaves the host is
 * redacted twice: the prompt strings, then the encoded request body.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "heal/llm.h"
#include "heal/redact.h"
#include "heal/util.h"

#ifndef HEAL_VERSION
#define HEAL_VERSION "0"
#endif

#define ANTHROPIC_VERSION  "2023-06-01"
#define BACKOFF_CAP_MS	   8000
#define CONNECT_TIMEOUT_MS 10000
#define MIN_ATTEMPT_MS	   100 /* less budget than this left is none */

struct llm_client {
	struct llm_config cfg;
	char *url; /* the endpoint */
	char *key; /* NULL: send no credentials */
};

/* ---- config ------------------------------------------------------------------------ */

static const char *const config_keys[] = {
    "provider",	  "base_url",	 "model",      "api_key_env", "api_key_file",
    "timeout_ms", "max_retries", "max_tokens", "backoff_ms",  NULL,
};

struct perr {
	const char *at;
	char *field;
	size_t flen;
	char *reason;
	size_t rlen;
};

__attribute__((format(printf, 3, 4))) static int problem(struct perr *p, const char *key,
							 const char *fmt, ...)
{
	va_list ap;

	if (p->field && p->flen)
		snprintf(p->field, p->flen, "%s%s%s", p->at, key ? "." : "", key ? key : "");
	if (p->reason && p->rlen) {
		va_start(ap, fmt);
		vsnprintf(p->reason, p->rlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* A non-empty string member copied to *out; absent leaves *out alone. */
static int get_string(struct perr *p, const cJSON *obj, const char *key, char **out)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!j)
		return 0;
	if (!cJSON_IsString(j))
		return problem(p, key, "expected a string, got %s", util__json_type_name(j));
	if (!j->valuestring[0])
		return problem(p, key, "must not be empty");
	free(*out);
	*out = strdup(j->valuestring);
	return *out ? 0 : -ENOMEM;
}

static int get_uint(struct perr *p, const cJSON *obj, const char *key, unsigned min, unsigned max,
		    unsigned *out)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
	double d;

	if (!j)
		return 0;
	if (!cJSON_IsNumber(j))
		return problem(p, key, "expected an integer, got %s", util__json_type_name(j));
	d = j->valuedouble;
	if (d < min)
		return problem(p, key, "must be at least %u, got %g", min, d);
	if (d > max)
		return problem(p, key, "must be at most %u, got %g", max, d);
	if (d != (double)(unsigned)d)
		return problem(p, key, "expected an integer, got %g", d);
	*out = (unsigned)d;
	return 0;
}

static bool valid_env_name(const char *s)
{
	if (!isalpha((unsigned char)*s) && *s != '_')
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return false;
	return true;
}

/* http(s)://host[:port][/path], no credentials, query or fragment; trailing '/' dropped. */
static int check_base_url(struct perr *p, char *url)
{
	const char *rest;
	size_t len, auth;

	if (strncmp(url, "https://", 8) == 0)
		rest = url + 8;
	else if (strncmp(url, "http://", 7) == 0)
		rest = url + 7;
	else
		return problem(p, "base_url", "must start with https:// or http://, got \"%s\"",
			       url);
	auth = strcspn(rest, "/?#");
	if (auth == 0)
		return problem(p, "base_url", "has no host: \"%s\"", url);
	if (memchr(rest, '@', auth))
		return problem(p, "base_url",
			       "must not hold credentials; use api_key_env or api_key_file");
	if (strpbrk(rest, "?# \t\r\n"))
		return problem(p, "base_url", "must not have a query, a fragment or spaces");
	len = strlen(url);
	while (len > 0 && url[len - 1] == '/')
		url[--len] = '\0';
	return 0;
}

int llm_config__parse(const struct cJSON *obj, const char *at, struct llm_config *out, char *field,
		      size_t flen, char *reason, size_t rlen)
{
	struct perr p = {at ? at : "llm", field, flen, reason, rlen};
	const cJSON *m, *prov;
	const char *const *k;
	int err = 0;

	if (field && flen)
		field[0] = '\0';
	if (reason && rlen)
		reason[0] = '\0';
	if (!out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->timeout_ms = 30000;
	out->max_retries = 2;
	out->max_tokens = 1024;
	out->backoff_ms = 500;
	if (!cJSON_IsObject(obj))
		return problem(&p, NULL, "expected an object, got %s",
			       obj ? util__json_type_name(obj) : "nothing");

	cJSON_ArrayForEach(m, obj)
	{
		const cJSON *o;

		if (strcmp(m->string, "api_key") == 0 || strcmp(m->string, "key") == 0) {
			err =
			    problem(&p, m->string,
				    "API keys do not belong in the config; name their source with "
				    "api_key_env or api_key_file");
			goto cleanup;
		}
		for (k = config_keys; *k && strcmp(*k, m->string); k++)
			;
		if (!*k) {
			err = problem(&p, m->string, "unknown key \"%s\"", m->string);
			goto cleanup;
		}
		for (o = obj->child; o != m; o = o->next) {
			if (strcmp(o->string, m->string) == 0) {
				err = problem(&p, m->string, "duplicate key \"%s\"", m->string);
				goto cleanup;
			}
		}
	}

	prov = cJSON_GetObjectItemCaseSensitive(obj, "provider");
	if (!prov) {
		err = problem(&p, "provider", "required key is missing");
		goto cleanup;
	}
	if (!cJSON_IsString(prov)) {
		err = problem(&p, "provider", "expected a string, got %s", util__json_type_name(prov));
		goto cleanup;
	}
	if (strcmp(prov->valuestring, "anthropic") == 0) {
		out->provider = LLM_ANTHROPIC;
	} else if (strcmp(prov->valuestring, "openai") == 0) {
		out->provider = LLM_OPENAI;
	} else {
		err = problem(&p, "provider", "must be \"anthropic\" or \"openai\", got \"%s\"",
			      prov->valuestring);
		goto cleanup;
	}

	if ((err = get_string(&p, obj, "model", &out->model)) ||
	    (err = get_string(&p, obj, "base_url", &out->base_url)) ||
	    (err = get_string(&p, obj, "api_key_env", &out->api_key_env)) ||
	    (err = get_string(&p, obj, "api_key_file", &out->api_key_file)) ||
	    (err = get_uint(&p, obj, "timeout_ms", 100, 600000, &out->timeout_ms)) ||
	    (err = get_uint(&p, obj, "max_retries", 0, 10, &out->max_retries)) ||
	    (err = get_uint(&p, obj, "max_tokens", 1, 1000000, &out->max_tokens)) ||
	    (err = get_uint(&p, obj, "backoff_ms", 1, 60000, &out->backoff_ms)))
		goto cleanup;

	if (!out->model) {
		err = problem(&p, "model", "required key is missing");
		goto cleanup;
	}
	if (!out->base_url) {
		out->base_url = strdup(out->provider == LLM_ANTHROPIC ? "https://api.anthropic.com"
								      : "https://api.openai.com");
		if (!out->base_url) {
			err = -ENOMEM;
			goto cleanup;
		}
	}
	if ((err = check_base_url(&p, out->base_url)))
		goto cleanup;
	if (out->api_key_env && out->api_key_file) {
		err = problem(&p, "api_key_file", "set only one of api_key_env and api_key_file");
		goto cleanup;
	}
	if (out->api_key_env && !valid_env_name(out->api_key_env)) {
		err = problem(&p, "api_key_env", "\"%s\" is not an environment variable name",
			      out->api_key_env);
		goto cleanup;
	}
	if (out->api_key_file && out->api_key_file[0] != '/') {
		err = problem(&p, "api_key_file", "must be an absolute path, got \"%s\"",
			      out->api_key_file);
		goto cleanup;
	}
	if (out->provider == LLM_ANTHROPIC && !out->api_key_env && !out->api_key_file) {
		err = problem(&p, "api_key_env", "anthropic needs api_key_env or api_key_file");
		goto cleanup;
	}
	return 0;

cleanup:
	llm_config__free(out);
	return err;
}

void llm_config__free(struct llm_config *c)
{
	if (!c)
		return;
	free(c->base_url);
	free(c->model);
	free(c->api_key_env);
	free(c->api_key_file);
	c->base_url = c->model = c->api_key_env = c->api_key_file = NULL;
}

const char *llm__provider_name(enum llm_provider p)
{
	return p == LLM_ANTHROPIC ? "anthropic" : "openai";
}

/* ---- client ------------------------------------------------------------------------ */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* Trimmed, one printable line: what can go in an HTTP header. */
static int clean_key(char *key, const char *what, char *err, size_t errlen)
{
	size_t len = strlen(key), i = 0;

	while (len > 0 && isspace((unsigned char)key[len - 1]))
		key[--len] = '\0';
	while (isspace((unsigned char)key[i]))
		i++;
	memmove(key, key + i, len - i + 1);
	if (!key[0]) {
		snprintf(err, errlen, "%s is empty", what);
		return -EINVAL;
	}
	for (i = 0; key[i]; i++) {
		if ((unsigned char)key[i] <= 0x20 || (unsigned char)key[i] >= 0x7f) {
			snprintf(err, errlen, "%s holds more than one printable word", what);
			return -EINVAL;
		}
	}
	return 0;
}

static int load_key_file(const char *path, char **key, char *err, size_t errlen)
{
	char what[PATH_MAX + 16];
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	ssize_t r;
	int fd, ret;

	snprintf(what, sizeof(what), "key file %s", path);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot open %s: %s", what, strerror(-ret));
		return ret;
	}
	if (fstat(fd, &st)) {
		ret = -errno;
		snprintf(err, errlen, "cannot stat %s: %s", what, strerror(-ret));
		goto cleanup;
	}
	ret = -EPERM;
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s is not a regular file", what);
		goto cleanup;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen,
			 "%s has mode %04o: group and others must have no access (chmod 600)", what,
			 (unsigned)(st.st_mode & 07777));
		goto cleanup;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		snprintf(err, errlen, "%s is owned by uid %u, neither this user nor root", what,
			 (unsigned)st.st_uid);
		goto cleanup;
	}
	if (st.st_size > LLM_KEY_FILE_MAX) {
		ret = -EFBIG;
		snprintf(err, errlen, "%s is larger than %d bytes", what, LLM_KEY_FILE_MAX);
		goto cleanup;
	}
	buf = calloc(1, LLM_KEY_FILE_MAX + 1);
	if (!buf) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto cleanup;
	}
	while (len < LLM_KEY_FILE_MAX && (r = read(fd, buf + len, LLM_KEY_FILE_MAX - len)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			snprintf(err, errlen, "cannot read %s: %s", what, strerror(-ret));
			goto cleanup;
		}
		len += (size_t)r;
	}
	if ((ret = clean_key(buf, what, err, errlen)))
		goto cleanup;
	*key = buf;
	buf = NULL;
	ret = 0;
cleanup:
	if (buf) {
		explicit_bzero(buf, LLM_KEY_FILE_MAX);
		free(buf);
	}
	close(fd);
	return ret;
}

/* Host of an http(s) URL is loopback (keys may go there in clear text). */
static bool loopback_host(const char *url)
{
	const char *h = strstr(url, "://");
	size_t n;

	h = h ? h + 3 : url;
	if (*h == '[')
		return strncmp(h, "[::1]", 5) == 0;
	n = strcspn(h, ":/");
	return (n == 9 && strncasecmp(h, "localhost", 9) == 0) || strncmp(h, "127.", 4) == 0;
}

static char *endpoint(const struct llm_config *c)
{
	const char *path = c->provider == LLM_ANTHROPIC ? "/messages" : "/chat/completions";
	size_t len = strlen(c->base_url);
	bool has_v1 = len >= 3 && strcmp(c->base_url + len - 3, "/v1") == 0;
	char *url;

	if (asprintf(&url, "%s%s%s", c->base_url, has_v1 ? "" : "/v1", path) < 0)
		return NULL;
	return url;
}

static char *dup_or_null(const char *s, bool *oom)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*oom = true;
	return d;
}

struct llm_client *llm__new(const struct llm_config *cfg, char *err, size_t errlen)
{
	char scratch[256] = ""; /* reasons nobody asked for */
	struct llm_client *c;
	bool oom = false;
	int ret;

	if (err && errlen)
		err[0] = '\0';
	else
		err = NULL;
	if (!cfg || !cfg->model || !cfg->base_url) {
		if (err)
			snprintf(err, errlen, "incomplete llm config");
		errno = EINVAL;
		return NULL;
	}
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK) {
		if (err)
			snprintf(err, errlen, "libcurl: %s", curl_easy_strerror(curl_init_rc));
		errno = EIO;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		goto nomem;
	c->cfg = *cfg;
	c->cfg.base_url = dup_or_null(cfg->base_url, &oom);
	c->cfg.model = dup_or_null(cfg->model, &oom);
	c->cfg.api_key_env = dup_or_null(cfg->api_key_env, &oom);
	c->cfg.api_key_file = dup_or_null(cfg->api_key_file, &oom);
	c->url = endpoint(cfg);
	if (oom || !c->url)
		goto nomem;

	if (cfg->api_key_env) {
		const char *v = getenv(cfg->api_key_env);
		char what[96];

		if (!v || !*v) {
			if (err)
				snprintf(err, errlen, "environment variable %s is not set",
					 cfg->api_key_env);
			errno = ENOKEY;
			goto fail;
		}
		c->key = strdup(v);
		if (!c->key)
			goto nomem;
		snprintf(what, sizeof(what), "environment variable %s", cfg->api_key_env);
		if ((ret = clean_key(c->key, what, err ? err : scratch,
				     err ? errlen : sizeof(scratch)))) {
			errno = -ret;
			goto fail;
		}
	} else if (cfg->api_key_file) {
		ret = load_key_file(cfg->api_key_file, &c->key, err ? err : scratch,
				    err ? errlen : sizeof(scratch));
		if (ret) {
			errno = -ret;
			goto fail;
		}
	}
	if (c->key && strncmp(cfg->base_url, "http://", 7) == 0 && !loopback_host(cfg->base_url)) {
		if (err)
			snprintf(err, errlen,
				 "refusing to send the API key over plain http to %s; use https",
				 cfg->base_url);
		errno = EPERM;
		goto fail;
	}
	return c;

nomem:
	if (err)
		snprintf(err, errlen, "out of memory");
	errno = ENOMEM;
fail:
	ret = errno;
	llm__free(c);
	errno = ret;
	return NULL;
}

void llm__free(struct llm_client *c)
{
	if (!c)
		return;
	wipe_free(c->key);
	free(c->url);
	llm_config__free(&c->cfg);
	free(c);
}

void llm_result__free(struct llm_result *r)
{
	if (!r)
		return;
	free(r->text);
	r->text = NULL;
}

/* ---- one call ------------------------------------------------------------------------ */

struct xfer {
	struct util_sb body;
	bool too_big;
	char request_id[128];
	long retry_after_ms; /* -1: none */
};

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR)
		;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	size_t n = size * nmemb;

	if (x->body.len + n > LLM_ANSWER_MAX) {
		x->too_big = true;
		return 0; /* CURLE_WRITE_ERROR ends the transfer */
	}
	util__sb_putn(&x->body, ptr, n);
	return x->body.err ? 0 : n;
}

/* The header value of line if it is header name; trimmed copy into out. */
static bool header_value(const char *line, size_t len, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name), b, e;

	if (len <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
		return false;
	for (b = nl + 1; b < len && isblank((unsigned char)line[b]); b++)
		;
	for (e = len; e > b && isspace((unsigned char)line[e - 1]); e--)
		;
	if (e - b >= outlen)
		e = b + outlen - 1;
	memcpy(out, line + b, e - b);
	out[e - b] = '\0';
	return true;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	size_t n = size * nmemb;
	char v[128];

	if (n >= 5 && strncmp(ptr, "HTTP/", 5) == 0) {
		/* a new response (after a 100 Continue, say): forget the last one's headers */
		x->request_id[0] = '\0';
		x->retry_after_ms = -1;
	} else if (header_value(ptr, n, "request-id", v, sizeof(v)) ||
		   header_value(ptr, n, "x-request-id", v, sizeof(v))) {
		snprintf(x->request_id, sizeof(x->request_id), "%s", v);
	} else if (header_value(ptr, n, "retry-after", v, sizeof(v))) {
		char *end;
		double secs = strtod(v, &end);

		if (end != v && *end == '\0' && secs >= 0 && secs < 86400) {
			x->retry_after_ms = (long)(secs * 1000);
		} else {
			time_t t = curl_getdate(v, NULL); /* an HTTP-date */

			if (t > 0)
				x->retry_after_ms =
				    t > time(NULL) ? (long)(t - time(NULL)) * 1000 : 0;
		}
	}
	return n;
}

/* Printable, one line, at most max bytes: provider text made fit for an error line. */
static void one_line(char *s, size_t max)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			s[i] = ' ';
	if (i > max)
		s[max] = '\0';
}

static const char *json_str(const cJSON *obj, const char *key)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsString(j) ? j->valuestring : NULL;
}

/*
 * "HTTP 529 overloaded_error: Overloaded" from either provider's error shape:
 * {"type":"error","error":{"type","message"}} or {"error":{"message","type","code"}}
 * or {"error":"..."} (Ollama); the status alone when the body says nothing.
 */
static void describe_http_error(long status, const struct xfer *x, char *out, size_t outlen)
{
	cJSON *j = x->body.p ? cJSON_ParseWithLength(x->body.p, x->body.len) : NULL;
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
	const char *type = NULL, *msg = NULL;
	char line[200], *red;

	if (cJSON_IsObject(e)) {
		type = json_str(e, "type");
		if (!type)
			type = json_str(e, "code");
		msg = json_str(e, "message");
	} else if (cJSON_IsString(e)) {
		msg = e->valuestring;
	}
	if (!type && !msg && !j && x->body.p && x->body.len)
		msg = x->body.p; /* a proxy's HTML or text */
	snprintf(line, sizeof(line), "HTTP %ld%s%s%s%s", status, type ? " " : "", type ? type : "",
		 msg ? ": " : "", msg ? msg : "");
	one_line(line, sizeof(line) - 1);
	/* a 401 may quote part of the key */
	red = redact__text(line, NULL);
	snprintf(out, outlen, "%s", red ? red : line);
	free(red);
	cJSON_Delete(j);
}

static int append(char **dst, size_t *len, const char *s)
{
	size_t n = strlen(s);
	char *p = realloc(*dst, *len + n + 1);

	if (!p)
		return -ENOMEM;
	memcpy(p + *len, s, n + 1);
	*dst = p;
	*len += n;
	return 0;
}

/* Text of a 2xx answer: content[].text (type "text") or choices[0].message.content. */
static int parse_answer(const struct llm_client *c, const struct xfer *x, struct llm_result *out)
{
	cJSON *j = x->body.p ? cJSON_ParseWithLength(x->body.p, x->body.len) : NULL;
	const cJSON *blocks = NULL, *b;
	char *text = NULL;
	size_t len = 0;
	int err = -EBADMSG;

	if (!cJSON_IsObject(j)) {
		snprintf(out->error, sizeof(out->error), "HTTP %ld: answer is not valid JSON",
			 out->http_status);
		goto cleanup;
	}
	if (c->cfg.provider == LLM_ANTHROPIC) {
		const char *stop = json_str(j, "stop_reason");

		blocks = cJSON_GetObjectItemCaseSensitive(j, "content");
		out->truncated = stop && strcmp(stop, "max_tokens") == 0;
	} else {
		const cJSON *ch =
		    cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
		const cJSON *msg = cJSON_GetObjectItemCaseSensitive(ch, "message");
		const char *fin = json_str(ch, "finish_reason");

		blocks = cJSON_GetObjectItemCaseSensitive(msg, "content");
		out->truncated = fin && strcmp(fin, "length") == 0;
		if (cJSON_IsString(blocks) && append(&text, &len, blocks->valuestring)) {
			err = -ENOMEM;
			goto cleanup;
		}
	}
	/* content as an array of blocks: both providers can answer that way */
	if (!cJSON_IsArray(blocks))
		blocks = NULL;
	cJSON_ArrayForEach(b, blocks)
	{
		const char *type = json_str(b, "type"), *t = json_str(b, "text");

		if (type && t && strcmp(type, "text") == 0 && append(&text, &len, t)) {
			err = -ENOMEM;
			goto cleanup;
		}
	}
	if (!text || !text[0]) {
		snprintf(out->error, sizeof(out->error), "HTTP %ld: answer has no text",
			 out->http_status);
		goto cleanup;
	}
	out->text = text;
	text = NULL;
	err = 0;
cleanup:
	if (err == -ENOMEM)
		snprintf(out->error, sizeof(out->error), "out of memory");
	free(text);
	cJSON_Delete(j);
	return err;
}

static char *build_body(const struct llm_client *c, const char *system, const char *user)
{
	cJSON *root = cJSON_CreateObject(), *msgs = NULL, *m;
	bool ok = root != NULL;
	char *s = NULL;

	ok = ok && cJSON_AddStringToObject(root, "model", c->cfg.model);
	if (c->cfg.provider == LLM_ANTHROPIC) {
		ok = ok && cJSON_AddNumberToObject(root, "max_tokens", c->cfg.max_tokens);
		if (system && *system)
			ok = ok && cJSON_AddStringToObject(root, "system", system);
		ok = ok && (msgs = cJSON_AddArrayToObject(root, "messages"));
	} else {
		ok = ok && (msgs = cJSON_AddArrayToObject(root, "messages"));
		if (ok && system && *system) {
			ok = (m = cJSON_CreateObject()) && cJSON_AddItemToArray(msgs, m) &&
			     cJSON_AddStringToObject(m, "role", "system") &&
			     cJSON_AddStringToObject(m, "content", system);
		}
	}
	ok = ok && (m = cJSON_CreateObject()) && cJSON_AddItemToArray(msgs, m) &&
	     cJSON_AddStringToObject(m, "role", "user") &&
	     cJSON_AddStringToObject(m, "content", user);
	if (c->cfg.provider == LLM_OPENAI)
		ok = ok && cJSON_AddNumberToObject(root, "max_tokens", c->cfg.max_tokens);
	if (ok)
		s = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	return s;
}

/* Redacted prompt strings in a body that is itself redacted again; NULL with out->error set. */
static char *safe_body(const struct llm_client *c, const char *system, const char *user,
		       struct llm_result *out, int *err)
{
	char *rs = NULL, *ru = NULL, *body = NULL, *safe = NULL;
	size_t n1 = 0, n2 = 0, n3 = 0;
	cJSON *check;

	*err = -ENOMEM;
	if ((system && !(rs = redact__text(system, &n1))) || !(ru = redact__text(user, &n2)) ||
	    !(body = build_body(c, rs, ru)) || !(safe = redact__text(body, &n3))) {
		snprintf(out->error, sizeof(out->error), "out of memory");
		goto cleanup;
	}
	if (n3) {
		/* the second pass found more: send it only if it still is the same JSON shape */
		check = cJSON_Parse(safe);
		if (!cJSON_IsObject(check) ||
		    !cJSON_GetObjectItemCaseSensitive(check, "messages")) {
			snprintf(out->error, sizeof(out->error),
				 "request not sent: redacting its body broke the JSON");
			*err = -EINVAL;
			free(safe);
			safe = NULL;
		}
		cJSON_Delete(check);
	}
	out->redacted = (unsigned)(n1 + n2 + n3);
cleanup:
	free(rs);
	free(ru);
	free(body);
	return safe;
}

/* Backoff before retry number n (1-based): base * 2^(n-1), capped, "equal jitter". */
static long backoff_ms(const struct llm_client *c, unsigned n, unsigned *seed)
{
	long cap = c->cfg.backoff_ms > BACKOFF_CAP_MS ? (long)c->cfg.backoff_ms : BACKOFF_CAP_MS;
	long d = c->cfg.backoff_ms;

	while (--n && d < cap)
		d *= 2;
	if (d > cap)
		d = cap;
	return d / 2 + rand_r(seed) % (d / 2 + 1);
}

static bool add_header(struct curl_slist **list, const char *line)
{
	struct curl_slist *t = curl_slist_append(*list, line);

	if (!t)
		return false;
	*list = t;
	return true;
}

static struct curl_slist *build_headers(const struct llm_client *c)
{
	struct curl_slist *h = NULL;
	char *auth = NULL;
	bool ok;

	if (c->key && asprintf(&auth,
			       c->cfg.provider == LLM_ANTHROPIC ? "x-api-key: %s"
								: "Authorization: Bearer %s",
			       c->key) < 0)
		return NULL;
	ok = add_header(&h, "content-type: application/json") &&
	     add_header(&h, "accept: application/json") &&
	     (c->cfg.provider != LLM_ANTHROPIC ||
	      add_header(&h, "anthropic-version: " ANTHROPIC_VERSION)) &&
	     (!auth || add_header(&h, auth)) &&
	     add_header(&h, "Expect:"); /* no 100-continue round trip for large prompts */
	wipe_free(auth);
	if (!ok) {
		curl_slist_free_all(h);
		return NULL;
	}
	return h;
}

/* Transport errors worth another attempt (not a bad URL or a certificate that will stay bad). */
static bool transient(CURLcode rc)
{
	switch (rc) {
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CIPHER:
	case CURLE_LOGIN_DENIED:
		return false;
	default:
		return true;
	}
}

/* "timed out after N ms", keeping what went wrong before when there was an earlier attempt. */
static void timed_out(struct llm_result *out, long elapsed)
{
	char before[sizeof(out->error)];

	snprintf(before, sizeof(before), "%s", out->error);
	if (before[0])
		snprintf(out->error, sizeof(out->error), "timed out after %ld ms; before: %.200s",
			 elapsed, before);
	else
		snprintf(out->error, sizeof(out->error), "timed out after %ld ms", elapsed);
}

int llm__complete(struct llm_client *c, const char *system, const char *user, unsigned budget_ms,
		  struct llm_result *out)
{
	struct curl_slist *headers = NULL;
	struct xfer x = {0};
	char curl_err[CURL_ERROR_SIZE];
	long t0 = now_ms(), budget, remaining, delay;
	unsigned seed = (unsigned)t0 ^ (unsigned)(uintptr_t)&x;
	char *body = NULL;
	CURL *h = NULL;
	int err = -EINVAL;

	if (!out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (!c || !user) {
		snprintf(out->error, sizeof(out->error), "no client or no prompt");
		return -EINVAL;
	}
	/* the operator's timeout_ms caps whatever the caller asks for */
	budget = budget_ms && budget_ms < c->cfg.timeout_ms ? budget_ms : c->cfg.timeout_ms;

	body = safe_body(c, system, user, out, &err);
	if (!body)
		goto cleanup;
	err = -ENOMEM;
	headers = build_headers(c);
	h = curl_easy_init();
	if (!headers || !h) {
		snprintf(out->error, sizeof(out->error), "out of memory");
		goto cleanup;
	}
	curl_easy_setopt(h, CURLOPT_URL, c->url);
	curl_easy_setopt(h, CURLOPT_POST, 1L);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "heald/" HEAL_VERSION);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for DNS timeouts */
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif

	for (;;) {
		bool retry = false;
		CURLcode rc;

		remaining = budget - (now_ms() - t0);
		if (remaining <= 0) {
			timed_out(out, now_ms() - t0);
			err = -ETIMEDOUT;
			break;
		}
		free(x.body.p);
		memset(&x, 0, sizeof(x));
		x.retry_after_ms = -1;
		curl_err[0] = '\0';
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, remaining);
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
				 remaining < CONNECT_TIMEOUT_MS ? remaining : CONNECT_TIMEOUT_MS);
		rc = curl_easy_perform(h);
		out->attempts++;
		out->http_status = 0;
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->http_status);
		if (x.request_id[0])
			memcpy(out->request_id, x.request_id, sizeof(out->request_id));

		/* curl's clock and ours differ by a few ms: near the end of the budget is the end
		 */
		if (rc == CURLE_OPERATION_TIMEDOUT && budget - (now_ms() - t0) < MIN_ATTEMPT_MS) {
			timed_out(out, now_ms() - t0);
			err = -ETIMEDOUT;
			break;
		} else if (x.too_big) {
			snprintf(out->error, sizeof(out->error), "answer is larger than %u bytes",
				 LLM_ANSWER_MAX);
			err = -EMSGSIZE;
			break;
		} else if (x.body.err) {
			snprintf(out->error, sizeof(out->error), "out of memory");
			err = -ENOMEM;
			break;
		} else if (rc != CURLE_OK) {
			snprintf(out->error, sizeof(out->error), "cannot reach %s: %s", c->url,
				 curl_err[0] ? curl_err : curl_easy_strerror(rc));
			one_line(out->error, sizeof(out->error) - 1);
			err = rc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO;
			retry = transient(rc);
		} else if (out->http_status >= 200 && out->http_status < 300) {
			err = parse_answer(c, &x, out);
			out->ok = err == 0;
			break;
		} else {
			describe_http_error(out->http_status, &x, out->error, sizeof(out->error));
			err = -EIO;
			retry = out->http_status == 429 ||
				(out->http_status >= 500 && out->http_status <= 599);
		}
		if (!retry)
			break;

		if (out->attempts > c->cfg.max_retries) {
			size_t l = strlen(out->error);

			snprintf(out->error + l, sizeof(out->error) - l,
				 " (gave up after %u attempts)", out->attempts);
			break;
		}
		delay =
		    x.retry_after_ms >= 0 ? x.retry_after_ms : backoff_ms(c, out->attempts, &seed);
		remaining = budget - (now_ms() - t0);
		if (delay + MIN_ATTEMPT_MS > remaining) {
			/* waiting would use up the budget: fail now, the caller has a fallback */
			size_t l = strlen(out->error);

			snprintf(out->error + l, sizeof(out->error) - l,
				 " (no retry: waiting %ld ms would exceed the %ld ms budget)",
				 delay, budget);
			break;
		}
		sleep_ms(delay);
	}

cleanup:
	out->duration_ms = now_ms() - t0;
	if (!out->ok && !out->error[0])
		snprintf(out->error, sizeof(out->error), "failed: %s", strerror(-err));
	if (h)
		curl_easy_cleanup(h);
	curl_slist_free_all(headers);
	free(x.body.p);
	free(body);
	return out->ok ? 0 : err;
}

int llm__morph_apply(struct llm_client *c, const char *instruction, const char *code,
		     const char *update, unsigned budget_ms, struct llm_result *out)
{
	char *user = NULL;
	int err;

	if (!out)
		return -EINVAL;
	if (!instruction || !code || !update) {
		memset(out, 0, sizeof(*out));
		snprintf(out->error, sizeof(out->error),
			 "apply needs instruction, code and update");
		return -EINVAL;
	}
	if (asprintf(&user, "<instruction>%s</instruction>\n<code>%s</code>\n<update>%s</update>",
		     instruction, code, update) < 0) {
		memset(out, 0, sizeof(*out));
		snprintf(out->error, sizeof(out->error), "out of memory");
		return -ENOMEM;
	}
	err = llm__complete(c, NULL, user, budget_ms, out);
	free(user);
	return err;
}
