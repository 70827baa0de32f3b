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
#include <unistd.h>

#include <cjson/cJSON.h>

#include "heal/config.h"
#include "heal/journal.h"

#define TRACES_MAX 4096

static const char usage[] =
	"Usage: healctl [--state-dir DIR | --config FILE] [--json] COMMAND\n"
	"\n"
	"Commands:\n"
	"  traces [--limit N]   heals, newest last: id, target, outcome, playbook, duration\n"
	"  show TRACE           every step of one heal, with its diff\n"
	"  approve TRACE        let a heal that waits for approval go on\n"
	"  reject TRACE         refuse it (it ends as HEAL_FAILED)\n"
	"\n"
	"The state directory defaults to the config's state_dir (--config, default\n"
	"/etc/heal/heal.json), else /var/lib/heal.\n";

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
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *state_dir = NULL, *config = "/etc/heal/heal.json", *cmd, *arg;
	struct heal_config *cfg = NULL;
	int json = 0, limit = 0, c, rc;
	char sd[4096];

	while ((c = getopt_long(argc, argv, "s:c:jl:h", opts, NULL)) != -1) {
		switch (c) {
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
	if (!state_dir) {
		snprintf(sd, sizeof(sd), "%s", HEAL_DEFAULT_STATE_DIR);
		if (config__load(config, false, &cfg, NULL) == 0 && cfg->state_dir)
			snprintf(sd, sizeof(sd), "%s", cfg->state_dir);
		config__free(cfg);
		state_dir = sd;
	}
	/* getopt moved the command and its arguments to the end, in their order */
	cmd = argv[optind++];
	arg = optind < argc ? argv[optind] : NULL;
	if (strcmp(cmd, "traces") == 0)
		rc = cmd_traces(state_dir, limit, json);
	else if (strcmp(cmd, "show") == 0 && arg)
		rc = cmd_show(state_dir, arg, json);
	else if ((strcmp(cmd, "approve") == 0 || strcmp(cmd, "reject") == 0) && arg)
		rc = cmd_decide(state_dir, arg, cmd);
	else {
		fputs(usage, stderr);
		rc = 2;
	}
	return rc;
}
