// SPDX-License-Identifier: MIT
/*
 * healctl: look at heald's heals from the shell. Reads the journal in the
 * state directory (works with no heald running); approve/reject leave a
 * request in STATE_DIR/control that heald picks up within a tick.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <limits.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "heal/config.h"
#include "heal/journal.h"
#include "heal/store_pg.h"

#define TRACES_MAX 4096

static const char usage[] =
	"Usage: healctl [--state-dir DIR | --config FILE] [--url URL] [--json] COMMAND\n"
	"\n"
	"Commands (the journal: work with no heald running):\n"
	"  traces [--limit N]   heals, newest last: id, target, outcome, playbook, duration\n"
	"  --postgres URL traces [--all-hosts]\n"
	"                       the fleet view: heals from the PostgreSQL store (this host's,\n"
	"                       or every host's)\n"
	"  show TRACE           every step of one heal, with its diff\n"
	"Commands (a running heald, over its HTTP API):\n"
	"  status               mode, paused, heals so far\n"
	"  targets              what heald watches\n"
	"  follow               every event as it happens (Ctrl-C stops)\n"
	"  approve TRACE        let a heal that waits for approval go on\n"
	"  reject TRACE         refuse it (it ends as HEAL_FAILED)\n"
	"  rollback TRACE       undo a finished heal's changes\n"
	"  pause | resume       stop / start healing (failures are still detected)\n"
	"  mode auto|approve|dry-run|observe\n"
	"\n"
	"The state directory defaults to the config's state_dir (--config, default\n"
	"/etc/heal/heal.json), else /var/lib/heal; the API's token is read from it.\n"
	"--url defaults to http://<the config's listen, else 127.0.0.1:7433>.\n";

struct trace_row {
	char id[64];
	char key[512];
	char target[64];
	char last[32];
	char playbook[64];
	double duration_ms;
	char started[40];
	int steps;
};

struct ctx {
	struct trace_row *rows;
	size_t n;
	const char *want; /* show: this trace only */
	cJSON *steps;     /* show: the events */
};

static struct trace_row *row(struct ctx *c, const char *id)
{
	size_t i;

	for (i = c->n; i-- > 0;)
		if (strcmp(c->rows[i].id, id) == 0)
			return &c->rows[i];
	if (c->n >= TRACES_MAX) {
		memmove(c->rows, c->rows + 1, (TRACES_MAX - 1) * sizeof(*c->rows));
		c->n--;
	}
	memset(&c->rows[c->n], 0, sizeof(c->rows[0]));
	snprintf(c->rows[c->n].id, sizeof(c->rows[0].id), "%s", id);
	return &c->rows[c->n++];
}

static int on_line(const char *line, void *arg)
{
	struct ctx *c = arg;
	cJSON *o = cJSON_Parse(line);
	const char *type, *id, *s;
	const cJSON *p;
	struct trace_row *r;

	if (!o)
		return 0;
	id = cJSON_GetStringValue(cJSON_GetObjectItem(o, "trace_id"));
	type = cJSON_GetStringValue(cJSON_GetObjectItem(o, "type"));
	if (!id || !type) {
		cJSON_Delete(o);
		return 0;
	}
	if (c->want) {
		if (strcmp(c->want, id) == 0)
			cJSON_AddItemToArray(c->steps, o);
		else
			cJSON_Delete(o);
		return 0;
	}
	r = row(c, id);
	p = cJSON_GetObjectItem(o, "payload");
	if (!r->steps) {
		snprintf(r->key, sizeof(r->key), "%s", cJSON_GetStringValue(cJSON_GetObjectItem(o, "key")) ?: "");
		snprintf(r->started, sizeof(r->started), "%s",
			 cJSON_GetStringValue(cJSON_GetObjectItem(o, "timestamp")) ?: "");
	}
	r->steps++;
	snprintf(r->last, sizeof(r->last), "%s", type);
	if ((s = cJSON_GetStringValue(cJSON_GetObjectItem(p, "target"))))
		snprintf(r->target, sizeof(r->target), "%s", s);
	if ((s = cJSON_GetStringValue(cJSON_GetObjectItem(p, "playbook"))))
		snprintf(r->playbook, sizeof(r->playbook), "%s", s);
	if (cJSON_IsNumber(cJSON_GetObjectItem(p, "elapsed_ms")))
		r->duration_ms = cJSON_GetObjectItem(p, "elapsed_ms")->valuedouble;
	cJSON_Delete(o);
	return 0;
}

static int read_journal(const char *state_dir, struct ctx *c)
{
	char dir[4096 + 16];
	int e;

	snprintf(dir, sizeof(dir), "%s/journal", state_dir);
	e = journal__read(dir, on_line, c, NULL);
	if (e == -ENOENT) {
		fprintf(stderr, "healctl: no journal in %s (has heald run with this state_dir?)\n", state_dir);
		return 1;
	}
	if (e < 0) {
		fprintf(stderr, "healctl: cannot read %s: %s\n", dir, strerror(-e));
		return 1;
	}
	return 0;
}

static int cmd_traces(const char *state_dir, int limit, int json)
{
	struct ctx c = { 0 };
	size_t i, from;
	int rc;

	c.rows = calloc(TRACES_MAX, sizeof(*c.rows));
	if (!c.rows)
		return 1;
	rc = read_journal(state_dir, &c);
	if (rc)
		goto out;
	from = limit > 0 && c.n > (size_t)limit ? c.n - (size_t)limit : 0;
	if (json) {
		cJSON *arr = cJSON_CreateArray();
		char *s;

		for (i = from; i < c.n; i++) {
			cJSON *o = cJSON_CreateObject();

			cJSON_AddStringToObject(o, "trace_id", c.rows[i].id);
			cJSON_AddStringToObject(o, "key", c.rows[i].key);
			cJSON_AddStringToObject(o, "target", c.rows[i].target);
			cJSON_AddStringToObject(o, "state", c.rows[i].last);
			cJSON_AddStringToObject(o, "playbook", c.rows[i].playbook);
			cJSON_AddNumberToObject(o, "duration_ms", c.rows[i].duration_ms);
			cJSON_AddStringToObject(o, "started", c.rows[i].started);
			cJSON_AddNumberToObject(o, "steps", c.rows[i].steps);
			cJSON_AddItemToArray(arr, o);
		}
		s = cJSON_Print(arr);
		puts(s ? s : "[]");
		free(s);
		cJSON_Delete(arr);
		goto out;
	}
	printf("%-28s %-16s %-18s %-20s %9s  %s\n", "TRACE", "TARGET", "STATE", "PLAYBOOK", "SECONDS",
	       "SIGNATURE");
	for (i = from; i < c.n; i++)
		printf("%-28s %-16s %-18s %-20s %9.1f  %s\n", c.rows[i].id, c.rows[i].target,
		       c.rows[i].last, c.rows[i].playbook[0] ? c.rows[i].playbook : "-",
		       c.rows[i].duration_ms / 1000.0, c.rows[i].key);
out:
	free(c.rows);
	return rc;
}

/* The fleet view from the PostgreSQL store. */
static int cmd_pg_traces(const char *url, int all_hosts, int limit, int json)
{
	cJSON *arr = NULL;
	const cJSON *it;
	char err[256];
	int e = store_pg__query_traces(url, all_hosts, NULL, limit, &arr, err, sizeof(err));

	if (e) {
		fprintf(stderr, "healctl: %s\n", err);
		return 1;
	}
	if (json) {
		char *s = cJSON_Print(arr);

		puts(s ? s : "[]");
		free(s);
	} else {
		printf("%-20s %-28s %-16s %-18s %-20s %s\n", "HOST", "TRACE", "TARGET", "STATE", "PLAYBOOK",
		       "SIGNATURE");
		cJSON_ArrayForEach(it, arr)
			printf("%-20s %-28s %-16s %-18s %-20s %s\n",
			       cJSON_GetStringValue(cJSON_GetObjectItem(it, "host")) ?: "",
			       cJSON_GetStringValue(cJSON_GetObjectItem(it, "trace_id")) ?: "",
			       cJSON_GetStringValue(cJSON_GetObjectItem(it, "target")) ?: "",
			       cJSON_GetStringValue(cJSON_GetObjectItem(it, "state")) ?: "",
			       cJSON_GetStringValue(cJSON_GetObjectItem(it, "playbook")) ?: "-",
			       cJSON_GetStringValue(cJSON_GetObjectItem(it, "key")) ?: "");
	}
	cJSON_Delete(arr);
	return 0;
}

static int cmd_show(const char *state_dir, const char *id, int json)
{
	struct ctx c = { .want = id, .steps = cJSON_CreateArray() };
	const cJSON *ev;
	int rc;

	rc = read_journal(state_dir, &c);
	if (rc)
		goto out;
	if (!cJSON_GetArraySize(c.steps)) {
		fprintf(stderr, "healctl: no trace %s in the journal\n", id);
		rc = 1;
		goto out;
	}
	if (json) {
		char *s = cJSON_Print(c.steps);

		puts(s ? s : "[]");
		free(s);
		goto out;
	}
	cJSON_ArrayForEach(ev, c.steps) {
		const cJSON *p = cJSON_GetObjectItem(ev, "payload");
		const char *ts = cJSON_GetStringValue(cJSON_GetObjectItem(ev, "timestamp"));
		const char *fields[] = { "cause", "playbook", "action", "reason", "rule", "how", "output", NULL };
		const cJSON *v;
		int i;

		printf("%s  %-18s", ts ? ts + 11 : "", cJSON_GetStringValue(cJSON_GetObjectItem(ev, "type")));
		if ((v = cJSON_GetObjectItem(p, "confidence")) && cJSON_IsNumber(v))
			printf(" confidence=%.2f", v->valuedouble);
		if ((v = cJSON_GetObjectItem(p, "risk")) && cJSON_IsNumber(v))
			printf(" risk=%.2f", v->valuedouble);
		if ((v = cJSON_GetObjectItem(p, "step_ms")) && cJSON_IsNumber(v))
			printf(" (+%.0f ms)", v->valuedouble);
		putchar('\n');
		for (i = 0; fields[i]; i++)
			if ((v = cJSON_GetObjectItem(p, fields[i])) && cJSON_IsString(v) && v->valuestring[0])
				printf("      %s: %s\n", fields[i], v->valuestring);
		if ((v = cJSON_GetObjectItem(p, "diff")) && cJSON_IsString(v))
			printf("%s", v->valuestring);
	}
out:
	cJSON_Delete(c.steps);
	return rc;
}

/* ---- the HTTP API -------------------------------------------------------------------- */

struct buf {
	char *p;
	size_t n;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *ctx)
{
	struct buf *b = ctx;
	size_t len = size * nmemb;
	char *np;

	if (b->n + len > (8u << 20))
		return 0;
	np = realloc(b->p, b->n + len + 1);
	if (!np)
		return 0;
	b->p = np;
	memcpy(b->p + b->n, data, len);
	b->n += len;
	b->p[b->n] = 0;
	return len;
}

static size_t on_stream(char *data, size_t size, size_t nmemb, void *ctx)
{
	size_t len = size * nmemb, i, start = 0;
	int json = *(int *)ctx;

	/* SSE: print the data lines (the events' JSON); pretty one-liners for people */
	for (i = 0; i < len; i++) {
		if (data[i] != '\n')
			continue;
		if (i - start > 6 && strncmp(data + start, "data: ", 6) == 0) {
			if (json) {
				fwrite(data + start + 6, 1, i - start - 6, stdout);
				putchar('\n');
			} else {
				char *line = strndup(data + start + 6, i - start - 6);
				cJSON *o = line ? cJSON_Parse(line) : NULL;
				const char *ts = cJSON_GetStringValue(cJSON_GetObjectItem(o, "timestamp"));

				printf("%s  %-16s %s%s%s\n", ts ? ts + 11 : "",
				       cJSON_GetStringValue(cJSON_GetObjectItem(o, "type")) ?: "?",
				       cJSON_GetStringValue(cJSON_GetObjectItem(o, "key")) ?: "",
				       cJSON_GetStringValue(cJSON_GetObjectItem(o, "trace_id")) ? "  " : "",
				       cJSON_GetStringValue(cJSON_GetObjectItem(o, "trace_id")) ?: "");
				cJSON_Delete(o);
				free(line);
			}
			fflush(stdout);
		}
		start = i + 1;
	}
	return len;
}

/* One request to heald; returns the HTTP status, or -1 (message printed) when heald did not answer. */
static long api_call(const char *url, const char *method, const char *path, const char *token,
		     const char *body, struct buf *out, int stream, int json)
{
	char full[1024], auth[256];
	struct curl_slist *hdr = NULL;
	long status = -1;
	CURLcode rc;
	CURL *c = curl_easy_init();

	if (!c)
		return -1;
	snprintf(full, sizeof(full), "%s%s", url, path);
	curl_easy_setopt(c, CURLOPT_URL, full);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
	if (!stream)
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
	if (token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		hdr = curl_slist_append(hdr, auth);
	}
	if (body) {
		hdr = curl_slist_append(hdr, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (stream) {
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_stream);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &json);
	} else {
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	}
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	else if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_OPERATION_TIMEDOUT)
		fprintf(stderr, "healctl: heald is not running, or not listening on %s (%s)\n", url,
			curl_easy_strerror(rc));
	else
		fprintf(stderr, "healctl: %s: %s\n", full, curl_easy_strerror(rc));
	curl_slist_free_all(hdr);
	curl_easy_cleanup(c);
	return status;
}

static char *read_token(const char *state_dir)
{
	char path[4096 + 32], buf[256];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/api.token", state_dir);
	f = fopen(path, "r");
	if (!f)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		n--;
	buf[n] = 0;
	return strdup(buf);
}

/* GET or POST path; prints the answer (JSON, or a table for people) and returns the exit code. */
static int cmd_api(const char *url, const char *state_dir, const char *method, const char *path,
		   const char *body, int json)
{
	char *token = strcmp(method, "POST") == 0 ? read_token(state_dir) : NULL;
	struct buf out = { 0 };
	long status;
	int rc = 0;

	if (!strcmp(method, "POST") && !token) {
		fprintf(stderr, "healctl: no token in %s/api.token (run as root, or pass --state-dir)\n",
			state_dir);
		return 1;
	}
	status = api_call(url, method, path, token, body, &out, 0, json);
	free(token);
	if (status < 0)
		return 1;
	if (status == 401 || status == 403) {
		fprintf(stderr, "healctl: heald refused the token (%ld): is %s the state dir of the heald at %s?\n",
			status, state_dir, url);
		rc = 1;
	} else if (status >= 400) {
		cJSON *e = out.p ? cJSON_Parse(out.p) : NULL;

		fprintf(stderr, "healctl: %s\n", cJSON_GetStringValue(cJSON_GetObjectItem(e, "error")) ?: "error");
		cJSON_Delete(e);
		rc = 1;
	} else if (json || strcmp(method, "GET")) {
		puts(out.p ? out.p : "{}");
	} else {
		cJSON *o = cJSON_Parse(out.p ? out.p : ""), *it;

		if (cJSON_IsArray(o)) {
			printf("%-20s %-6s %-9s %-8s %-6s %-4s %s\n", "TARGET", "KIND", "SYSCALLS", "CRASHES",
			       "EXITS", "OOM", "API RULES");
			cJSON_ArrayForEach(it, o) {
				const cJSON *d = cJSON_GetObjectItem(it, "detect");

				printf("%-20s %-6s %-9s %-8s %-6s %-4s %d\n",
				       cJSON_GetStringValue(cJSON_GetObjectItem(it, "name")),
				       cJSON_GetStringValue(cJSON_GetObjectItem(it, "kind")),
				       cJSON_IsTrue(cJSON_GetObjectItem(d, "syscalls")) ? "yes" : "-",
				       cJSON_IsTrue(cJSON_GetObjectItem(d, "crashes")) ? "yes" : "-",
				       cJSON_IsTrue(cJSON_GetObjectItem(d, "exits")) ? "yes" : "-",
				       cJSON_IsTrue(cJSON_GetObjectItem(d, "oom")) ? "yes" : "-",
				       (int)cJSON_GetNumberValue(cJSON_GetObjectItem(d, "api")));
			}
		} else {
			cJSON_ArrayForEach(it, o) {
				if (cJSON_IsString(it))
					printf("%-14s %s\n", it->string, it->valuestring);
				else if (cJSON_IsBool(it))
					printf("%-14s %s\n", it->string, cJSON_IsTrue(it) ? "yes" : "no");
				else if (cJSON_IsNumber(it))
					printf("%-14s %.0f\n", it->string, it->valuedouble);
			}
		}
		cJSON_Delete(o);
	}
	free(out.p);
	return rc;
}

/* Whether the heald answering at url is the one whose state dir this is (quietly). */
static int same_heald(const char *url, const char *state_dir)
{
	struct buf out = { 0 };
	char full[1024];
	long status = 0;
	cJSON *o;
	int same = 0;
	CURL *c = curl_easy_init();

	if (!c)
		return 0;
	snprintf(full, sizeof(full), "%s/api/v1/status", url);
	curl_easy_setopt(c, CURLOPT_URL, full);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	o = status == 200 && out.p ? cJSON_Parse(out.p) : NULL;
	{
		const char *sd = cJSON_GetStringValue(cJSON_GetObjectItem(o, "state_dir"));
		char a[4096], b[4096];

		same = sd && realpath(sd, a) && realpath(state_dir, b) && strcmp(a, b) == 0;
	}
	cJSON_Delete(o);
	free(out.p);
	return same;
}

static int cmd_decide(const char *state_dir, const char *id, const char *what)
{
	char path[4096 + 128];
	int fd;

	if (strchr(id, '/') || id[0] == '.') {
		fprintf(stderr, "healctl: bad trace id %s\n", id);
		return 2;
	}
	snprintf(path, sizeof(path), "%s/control/%s.%s", state_dir, id, what);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "healctl: cannot write %s: %s%s\n", path, strerror(errno),
			errno == EACCES ? " (run as root)" : "");
		return 1;
	}
	close(fd);
	printf("%s requested for %s; heald acts on it within a second\n", what, id);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, 's' },
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "limit", required_argument, NULL, 'l' },
		{ "url", required_argument, NULL, 'u' },
		{ "postgres", required_argument, NULL, 'P' },
		{ "all-hosts", no_argument, NULL, 'A' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *state_dir = NULL, *config = "/etc/heal/heal.json", *cmd, *arg, *url = NULL;
	char urlbuf[512] = "http://127.0.0.1:7433", path[512];
	struct heal_config *cfg = NULL;
	int json = 0, limit = 0, c, rc, all_hosts = 0;
	const char *pg = NULL;
	char sd[4096];

	while ((c = getopt_long(argc, argv, "s:c:jl:u:h", opts, NULL)) != -1) {
		switch (c) {
		case 'u':
			url = optarg;
			break;
		case 'P':
			pg = optarg;
			break;
		case 'A':
			all_hosts = 1;
			break;
		case 's':
			state_dir = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'l':
			limit = atoi(optarg);
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		fputs(usage, stderr);
		return 2;
	}
	if (config__load(config, false, &cfg, NULL) == 0) {
		if (!state_dir && cfg->state_dir)
			snprintf(sd, sizeof(sd), "%s", cfg->state_dir), state_dir = sd;
		if (cfg->listen && cfg->listen[0])
			snprintf(urlbuf, sizeof(urlbuf), "http://%s", cfg->listen);
	}
	config__free(cfg);
	if (!state_dir)
		state_dir = HEAL_DEFAULT_STATE_DIR;
	if (!url)
		url = urlbuf;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	/* getopt moved the command and its arguments to the end, in their order */
	cmd = argv[optind++];
	arg = optind < argc ? argv[optind] : NULL;
	if (strcmp(cmd, "traces") == 0 && pg)
		rc = cmd_pg_traces(pg, all_hosts, limit, json);
	else if (strcmp(cmd, "traces") == 0)
		rc = cmd_traces(state_dir, limit, json);
	else if (strcmp(cmd, "show") == 0 && arg)
		rc = cmd_show(state_dir, arg, json);
	else if ((strcmp(cmd, "approve") == 0 || strcmp(cmd, "reject") == 0) && arg) {
		/* the API of the heald that owns this state dir; else the control directory it reads */
		snprintf(path, sizeof(path), "/api/v1/traces/%s/%s", arg, cmd);
		rc = same_heald(url, state_dir) ? cmd_api(url, state_dir, "POST", path, "{}", json) :
						  cmd_decide(state_dir, arg, cmd);
	} else if (strcmp(cmd, "rollback") == 0 && arg) {
		snprintf(path, sizeof(path), "/api/v1/traces/%s/rollback", arg);
		rc = cmd_api(url, state_dir, "POST", path, "{}", json);
	} else if (strcmp(cmd, "status") == 0)
		rc = cmd_api(url, state_dir, "GET", "/api/v1/status", NULL, json);
	else if (strcmp(cmd, "targets") == 0)
		rc = cmd_api(url, state_dir, "GET", "/api/v1/targets", NULL, json);
	else if (strcmp(cmd, "pause") == 0 || strcmp(cmd, "resume") == 0) {
		snprintf(path, sizeof(path), "/api/v1/%s", cmd);
		rc = cmd_api(url, state_dir, "POST", path, "{}", json);
	} else if (strcmp(cmd, "mode") == 0 && arg) {
		char body[128];

		snprintf(body, sizeof(body), "{\"mode\": \"%s\"}", arg);
		rc = cmd_api(url, state_dir, "POST", "/api/v1/mode", body, json);
	} else if (strcmp(cmd, "follow") == 0)
		rc = api_call(url, "GET", "/api/v1/events/stream", NULL, NULL, NULL, 1, json) < 0;
	else {
		fputs(usage, stderr);
		rc = 2;
	}
	return rc;
}
