// SPDX-License-Identifier: MIT
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "heal/api.h"
#include "heal/dashboard.h"
#include "heal/eventlog.h"
#include "heal/http.h"
#include "heal/log.h"
#include "heal/metrics.h"
#include "heal/names.h"
#include "heal/util.h"
#include "revision.h"

#define TRACES_KEPT 512
#define ACTIONS_MAX 64
#define COUNT_KEYS 512
#define TRACE_EVENTS_MAX 512

struct trace_row {
	char id[HEAL_TRACE_ID_LEN];
	char key[HEAL_KEY_LEN];
	char target[64];
	char state[32];
	char playbook[64];
	char started[40];
	double elapsed_ms;
	int steps;
};

enum action_kind { ACT_APPROVE = 1, ACT_REJECT, ACT_ROLLBACK, ACT_PAUSE, ACT_RESUME, ACT_MODE,
		   ACT_TRIGGER };

struct action {
	enum action_kind kind;
	char id[HEAL_TRACE_ID_LEN];
	enum heal_mode mode;
	const struct heal_target *target; /* ACT_TRIGGER */
	const struct heal_trigger *trigger;
};

struct count_key {
	uint32_t target_id, nr, err;
	uint64_t exited; /* counts of processes that ended (their kernel entries are gone) */
	uint64_t live;   /* this tick's sum over running processes */
	uint64_t shown;  /* the highest total exported: a counter never goes back */
};

struct api {
	const struct heal_config *cfg;
	struct healer *healer;
	struct probe *probe;
	struct bus *bus;
	struct worker *worker;
	struct metrics *m;
	struct eventlog *el;
	struct http *http;
	int efd;
	long long started;
	pthread_mutex_t lock; /* guards everything below */
	char *status_json;
	struct trace_row rows[TRACES_KEPT];
	int n_rows, next_row;
	struct action actions[ACTIONS_MAX];
	int n_actions;
	/* main loop only */
	struct count_key counts[COUNT_KEYS];
	int n_counts;
	struct metrics_family *f_up, *f_build, *f_failures, *f_syscalls, *f_drops, *f_heals,
		*f_duration, *f_rca, *f_rca_dur, *f_llm, *f_kstats, *f_refused, *f_llm_dur, *f_blocks, *f_rollbacks, *f_open, *f_steps;
	struct metrics_family *f_restarts;
};

static const char *pstr(const struct heal_event *ev, const char *k)
{
	return cJSON_GetStringValue(cJSON_GetObjectItem(ev->payload, k));
}

static double pnum(const struct heal_event *ev, const char *k, double dflt)
{
	const cJSON *v = cJSON_GetObjectItem(ev->payload, k);

	return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static bool is_failure(const char *t)
{
	return !strcmp(t, "SYSCALL_FAILURE") || !strcmp(t, "API_FAILURE") || !strcmp(t, "CRASH") ||
	       !strcmp(t, "EXIT_FAILURE") || !strcmp(t, "OOM_KILL");
}

/* ---- metrics ----------------------------------------------------------------------- */

static int reg(struct api *a, const char *name, const char *help, enum metrics_type type,
	       const char *const *labels, unsigned max_series, struct metrics_family **out)
{
	struct metrics_desc d = { .name = name, .help = help, .type = type, .labels = labels,
				  .max_series = max_series };

	return metrics__register(a->m, &d, out);
}

static int register_metrics(struct api *a)
{
	static const char *const build[] = { "version", "revision", NULL };
	static const char *const target_type[] = { "target", "type", NULL };
	static const char *const sc[] = { "target", "syscall", "errno", NULL };
	static const char *const type[] = { "type", NULL };
	static const char *const outcome_pb[] = { "outcome", "playbook", NULL };
	static const char *const outcome[] = { "outcome", NULL };
	static const char *const source[] = { "source", NULL };
	static const char *const rule[] = { "rule", NULL };
	static const char *const step[] = { "step", NULL };
	static const char *const reason_l[] = { "reason", NULL };
	static const char *const target_l[] = { "target", NULL };
	size_t i;
	int e;

	if ((e = reg(a, "heal_up", "1 while heald runs", METRICS_GAUGE, NULL, 0, &a->f_up)) ||
	    (e = reg(a, "heal_build_info", "heald's version and git revision", METRICS_GAUGE, build, 1,
		     &a->f_build)) ||
	    (e = reg(a, "heal_failures_total", "Failures detected, by target and event type",
		     METRICS_COUNTER, target_type, 256, &a->f_failures)) ||
	    (e = reg(a, "heal_syscall_failures_total",
		     "Failed syscalls counted in the kernel (exact), by target, syscall and errno",
		     METRICS_COUNTER, sc, 256, &a->f_syscalls)) ||
	    (e = reg(a, "heal_events_dropped_total",
		     "Ring buffer records that did not fit, by record type", METRICS_COUNTER, type, 16,
		     &a->f_drops)) ||
	    (e = reg(a, "heal_heals_total", "Finished heals by outcome and playbook", METRICS_COUNTER,
		     outcome_pb, 128, &a->f_heals)) ||
	    (e = reg(a, "heal_heal_duration_seconds", "Time from a failure to its heal's end",
		     METRICS_HISTOGRAM, outcome, 8, &a->f_duration)) ||
	    (e = reg(a, "heal_rca_total", "Root cause analyses by source", METRICS_COUNTER, source, 8,
		     &a->f_rca)) ||
	    (e = reg(a, "heal_rca_duration_seconds", "Time from a failure to its root cause analysis",
		     METRICS_HISTOGRAM, source, 8, &a->f_rca_dur)) ||
	    (e = reg(a, "heal_llm_calls_total", "LLM calls by outcome", METRICS_COUNTER, outcome, 4,
		     &a->f_llm)) ||
	    (e = reg(a, "heal_llm_call_duration_seconds", "LLM call time, retries included",
		     METRICS_HISTOGRAM, outcome, 4, &a->f_llm_dur)) ||
	    (e = reg(a, "heal_guardrail_blocks_total", "Patches blocked, by the rule that blocked them",
		     METRICS_COUNTER, rule, 16, &a->f_blocks)) ||
	    (e = reg(a, "heal_rollbacks_total", "Changes rolled back", METRICS_COUNTER, NULL, 0,
		     &a->f_rollbacks)) ||
	    (e = reg(a, "heal_heal_steps_total", "Heal steps, by step", METRICS_COUNTER, step, 32,
		     &a->f_steps)) ||
	    (e = reg(a, "heal_open_traces", "Heals in progress", METRICS_GAUGE, NULL, 0, &a->f_open)) ||
	    (e = reg(a, "heal_kernel_failures_not_sampled_total",
		     "Failures counted in the kernel but not sent, by why", METRICS_COUNTER, reason_l, 8,
		     &a->f_kstats)) ||
	    (e = reg(a, "heal_worker_refused_total", "Slow jobs refused because the worker queue was full",
		     METRICS_COUNTER, NULL, 0, &a->f_refused)) ||
	    (e = reg(a, "heal_target_restarts_total",
		     "Supervised targets restarted by supervision (no heal brought them back)",
		     METRICS_COUNTER, target_l, HEAL_TARGET_MAX, &a->f_restarts)))
		return e;
	/* every supervised target from 0, so rate() sees the first restart */
	for (i = 0; i < a->cfg->n_targets; i++)
		if (a->cfg->targets[i].exec)
			metrics__counter_add(a->f_restarts,
					     (const char *const[]){ a->cfg->targets[i].name }, 0);
	metrics__gauge_set(a->f_up, NULL, 1);
	metrics__gauge_set(a->f_build, (const char *const[]){ HEAL_VERSION, HEAL_GIT_REV }, 1);
	return metrics__register_process(a->m);
}

static struct count_key *count_slot(struct api *a, uint32_t target_id, uint32_t nr, uint32_t err)
{
	int i;

	for (i = 0; i < a->n_counts; i++)
		if (a->counts[i].target_id == target_id && a->counts[i].nr == nr && a->counts[i].err == err)
			return &a->counts[i];
	if (a->n_counts == COUNT_KEYS)
		return NULL;
	a->counts[a->n_counts] = (struct count_key){ .target_id = target_id, .nr = nr, .err = err };
	return &a->counts[a->n_counts++];
}

static void add_live(void *ctx, uint32_t target_id, uint32_t nr, uint32_t err, uint64_t count)
{
	struct count_key *k = count_slot(ctx, target_id, nr, err);

	if (k)
		k->live += count;
}

/* exact counts = processes that ended (from SYSCALL_COUNTS) + processes still running (the map) */
static void refresh_syscall_counts(struct api *a)
{
	int i;

	for (i = 0; i < a->n_counts; i++)
		a->counts[i].live = 0;
	if (a->probe)
		probe__live_counts(a->probe, add_live, a);
	for (i = 0; i < a->n_counts; i++) {
		const struct count_key *k = &a->counts[i];
		const struct heal_target *t = config__target_by_id(a->cfg, k->target_id);
		const char *sc = names__syscall_name((int)k->nr), *en = names__errno_name((int)k->err);
		char scb[16], enb[16];

		if (!sc)
			snprintf(scb, sizeof(scb), "%u", k->nr), sc = scb;
		if (!en)
			snprintf(enb, sizeof(enb), "%u", k->err), en = enb;
		/* A live read can miss counts on their way from a CPU's cache into
		 * the table, and see them next time; Prometheus reads any dip as a reset. */
		if (k->exited + k->live > k->shown)
			a->counts[i].shown = k->exited + k->live;
		metrics__counter_set(a->f_syscalls, (const char *const[]){ t ? t->name : "?", sc, en },
				     (double)k->shown);
	}
}

static void add_exited(struct api *a, const struct heal_event *ev)
{
	const struct heal_target *t = config__target_by_name(a->cfg, pstr(ev, "target") ?: "");
	const cJSON *counts = cJSON_GetObjectItem(ev->payload, "counts"), *c;

	if (!t)
		return;
	cJSON_ArrayForEach(c, counts) {
		int nr = names__syscall_nr(cJSON_GetStringValue(cJSON_GetObjectItem(c, "syscall")) ?: "");
		int err = names__errno_nr(cJSON_GetStringValue(cJSON_GetObjectItem(c, "errno")) ?: "");
		struct count_key *k;

		if (nr < 0 || err < 0)
			continue;
		k = count_slot(a, t->id, (uint32_t)nr, (uint32_t)err);
		if (k)
			k->exited += (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(c, "count"));
	}
}

/* ---- events ------------------------------------------------------------------------- */

static struct trace_row *row_for(struct api *a, const char *id)
{
	int i;

	for (i = 0; i < a->n_rows; i++)
		if (strcmp(a->rows[i].id, id) == 0)
			return &a->rows[i];
	/* a ring: the oldest trace makes room */
	i = a->next_row;
	a->next_row = (a->next_row + 1) % TRACES_KEPT;
	if (a->n_rows < TRACES_KEPT)
		a->n_rows++;
	memset(&a->rows[i], 0, sizeof(a->rows[i]));
	snprintf(a->rows[i].id, sizeof(a->rows[i].id), "%s", id);
	return &a->rows[i];
}

void api__on_event(struct heal_event *ev, void *ctx)
{
	struct api *a = ctx;
	const char *t = ev->type, *pb;
	const char *line = event__json(ev);

	if (line)
		eventlog__append(a->el, line);
	if (is_failure(t))
		metrics__counter_inc(a->f_failures, (const char *const[]){ pstr(ev, "target") ?: "?", t });
	else if (!strcmp(t, "SYSCALL_COUNTS"))
		add_exited(a, ev);
	else if (!strcmp(t, "TARGET_RESTARTED"))
		metrics__counter_inc(a->f_restarts, (const char *const[]){ pstr(ev, "target") ?: "?" });
	if (!ev->trace_id[0])
		return;
	pb = pstr(ev, "playbook");
	if (!is_failure(t))
		metrics__counter_inc(a->f_steps, (const char *const[]){ t });
	if (!strcmp(t, "HEALED") || !strcmp(t, "HEAL_FAILED") || !strcmp(t, "ESCALATED") ||
	    !strcmp(t, "DRY_RUN")) {
		const cJSON *tried = cJSON_GetObjectItem(ev->payload, "tried");
		const char *last = NULL;
		const cJSON *it;

		cJSON_ArrayForEach(it, tried)
			if (cJSON_IsString(it))
				last = it->valuestring;
		metrics__counter_inc(a->f_heals, (const char *const[]){ t, pb ?: last ?: "none" });
		metrics__observe(a->f_duration, (const char *const[]){ t },
				 pnum(ev, "duration_ms", pnum(ev, "elapsed_ms", 0)) / 1000.0);
	} else if (!strcmp(t, "RCA_READY")) {
		metrics__counter_inc(a->f_rca, (const char *const[]){ pstr(ev, "source") ?: "playbooks" });
		metrics__observe(a->f_rca_dur, (const char *const[]){ pstr(ev, "source") ?: "playbooks" },
				 pnum(ev, "elapsed_ms", 0) / 1000.0);
	} else if (!strcmp(t, "PATCH_BLOCKED")) {
		metrics__counter_inc(a->f_blocks, (const char *const[]){ pstr(ev, "rule") ?: "?" });
	} else if (!strcmp(t, "ROLLBACK_DONE")) {
		metrics__counter_inc(a->f_rollbacks, NULL);
	}
	if (cJSON_GetObjectItem(ev->payload, "llm_ok")) {
		const char *o = cJSON_IsTrue(cJSON_GetObjectItem(ev->payload, "llm_ok")) ? "ok" : "error";

		metrics__counter_inc(a->f_llm, (const char *const[]){ o });
		metrics__observe(a->f_llm_dur, (const char *const[]){ o }, pnum(ev, "llm_ms", 0) / 1000.0);
	}
	pthread_mutex_lock(&a->lock);
	{
		struct trace_row *r = row_for(a, ev->trace_id);
		char when[48];

		if (!r->steps) {
			snprintf(r->key, sizeof(r->key), "%s", ev->key);
			event__format_time(ev->ts_us, when, sizeof(when));
			snprintf(r->started, sizeof(r->started), "%s", when);
		}
		r->steps++;
		if (!is_failure(t) || !r->state[0])
			snprintf(r->state, sizeof(r->state), "%s", is_failure(t) ? "DETECTED" : t);
		if (pstr(ev, "target"))
			snprintf(r->target, sizeof(r->target), "%s", pstr(ev, "target"));
		if (pb)
			snprintf(r->playbook, sizeof(r->playbook), "%s", pb);
		r->elapsed_ms = pnum(ev, "elapsed_ms", r->elapsed_ms);
	}
	pthread_mutex_unlock(&a->lock);
}

void api__tick(struct api *a)
{
	struct healer_stats st;
	uint64_t drops[HEAL_REC_MAX] = { 0 };
	static const char *const rec[HEAL_REC_MAX] = { "", "syscall", "crash", "exit", "oom", "api", "proc" };
	cJSON *o;
	char *s;
	int i;

	healer__stats(a->healer, &st);
	metrics__gauge_set(a->f_open, NULL, st.open_traces);
	if (a->probe && probe__read_drops(a->probe, drops) == 0)
		for (i = 1; i < HEAL_REC_MAX; i++)
			metrics__counter_set(a->f_drops, (const char *const[]){ rec[i] }, (double)drops[i]);
	refresh_syscall_counts(a);
	{
		uint64_t st_k[HEAL_STAT_MAX] = { 0 };

		if (a->probe && probe__read_stats(a->probe, st_k) == 0) {
			metrics__counter_set(a->f_kstats, (const char *const[]){ "count_table_full" },
					     (double)st_k[HEAL_STAT_COUNT_TABLE_FULL]);
			metrics__counter_set(a->f_kstats, (const char *const[]){ "rate_limited" },
					     (double)st_k[HEAL_STAT_SAMPLES_SUPPRESSED]);
			metrics__counter_set(a->f_kstats, (const char *const[]){ "below_threshold" },
					     (double)st_k[HEAL_STAT_BELOW_THRESHOLD]);
			metrics__counter_set(a->f_kstats, (const char *const[]){ "watch_table_full" },
					     (double)st_k[HEAL_STAT_WATCH_TABLE_FULL]);
		}
		metrics__counter_set(a->f_refused, NULL, (double)worker__refused(a->worker));
	}

	o = cJSON_CreateObject();
	if (!o)
		return;
	cJSON_AddStringToObject(o, "version", HEAL_VERSION);
	cJSON_AddStringToObject(o, "revision", HEAL_GIT_REV);
	cJSON_AddStringToObject(o, "mode", config__mode_name(healer__mode(a->healer)));
	cJSON_AddStringToObject(o, "state_dir", a->cfg->state_dir);
	cJSON_AddBoolToObject(o, "paused", healer__paused(a->healer));
	cJSON_AddNumberToObject(o, "uptime_s", (double)(time(NULL) - a->started));
	cJSON_AddNumberToObject(o, "targets", (double)a->cfg->n_targets);
	cJSON_AddNumberToObject(o, "open_traces", st.open_traces);
	cJSON_AddNumberToObject(o, "healed", (double)st.healed);
	cJSON_AddNumberToObject(o, "failed", (double)st.failed);
	cJSON_AddNumberToObject(o, "escalated", (double)st.escalated);
	cJSON_AddNumberToObject(o, "blocked", (double)st.blocked);
	cJSON_AddNumberToObject(o, "rolled_back", (double)st.rolled_back);
	cJSON_AddNumberToObject(o, "suppressed", (double)st.suppressed);
	cJSON_AddNumberToObject(o, "last_event_id", (double)eventlog__last_id(a->el));
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!s)
		return;
	pthread_mutex_lock(&a->lock);
	free(a->status_json);
	a->status_json = s;
	pthread_mutex_unlock(&a->lock);
}

/* ---- HTTP hooks (HTTP threads: only what the lock guards, and the immutable config) ---- */

static void get_status(void *ctx, const char *path, const struct http_req *rq, struct http_reply *r)
{
	struct api *a = ctx;

	pthread_mutex_lock(&a->lock);
	r->json = a->status_json ? strdup(a->status_json) : NULL;
	pthread_mutex_unlock(&a->lock);
	if (!r->json)
		http__reply_error(r, 503, "status not ready yet");
}

static void get_targets(void *ctx, const char *path, const struct http_req *rq, struct http_reply *r)
{
	struct api *a = ctx;
	cJSON *arr = cJSON_CreateArray();
	size_t i;

	for (i = 0; arr && i < a->cfg->n_targets; i++) {
		const struct heal_target *t = &a->cfg->targets[i];
		cJSON *o = cJSON_CreateObject(), *d;

		cJSON_AddStringToObject(o, "name", t->name);
		cJSON_AddStringToObject(o, "kind", t->exec ? "exec" : "match");
		d = cJSON_AddObjectToObject(o, "detect");
		cJSON_AddBoolToObject(d, "syscalls", (t->detect & HEAL_DETECT_SYSCALLS) != 0);
		cJSON_AddBoolToObject(d, "crashes", t->crashes);
		cJSON_AddBoolToObject(d, "exits", t->exits);
		cJSON_AddBoolToObject(d, "oom", t->oom);
		cJSON_AddNumberToObject(d, "api", (double)t->n_api);
		cJSON_AddNumberToObject(o, "playbooks", (double)t->n_playbooks);
		cJSON_AddItemToArray(arr, o);
	}
	http__reply_cjson(r, 200, arr);
}

static cJSON *row_json(const struct trace_row *row)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "trace_id", row->id);
	cJSON_AddStringToObject(o, "key", row->key);
	cJSON_AddStringToObject(o, "target", row->target);
	cJSON_AddStringToObject(o, "state", row->state);
	cJSON_AddStringToObject(o, "playbook", row->playbook);
	cJSON_AddStringToObject(o, "started", row->started);
	cJSON_AddNumberToObject(o, "elapsed_ms", row->elapsed_ms);
	cJSON_AddNumberToObject(o, "steps", row->steps);
	return o;
}

struct trace_events {
	const char *id;
	cJSON *arr;
	int n;
};

static int collect(uint64_t id, const char *line, size_t len, void *ctx)
{
	struct trace_events *te = ctx;
	cJSON *ev;
	const char *tid;

	(void)len;
	if (te->n >= TRACE_EVENTS_MAX || !strstr(line, te->id))
		return 0;
	ev = cJSON_Parse(line);
	tid = cJSON_GetStringValue(cJSON_GetObjectItem(ev, "trace_id"));
	if (tid && strcmp(tid, te->id) == 0) {
		cJSON_AddNumberToObject(ev, "id", (double)id);
		cJSON_AddItemToArray(te->arr, ev);
		te->n++;
	} else {
		cJSON_Delete(ev);
	}
	return 0;
}

static void get_traces(void *ctx, const char *path, const struct http_req *rq, struct http_reply *r)
{
	struct api *a = ctx;
	const char *id = path + strlen("/api/v1/traces"), *lim = http__arg(rq, "limit");
	const char *want_target = http__arg(rq, "target"), *want_state = http__arg(rq, "state");
	long limit = lim ? strtol(lim, NULL, 10) : 50, offset = 0;
	cJSON *arr, *o;
	int i, k, shown = 0, matched = 0;

	if (http__arg(rq, "offset"))
		offset = strtol(http__arg(rq, "offset"), NULL, 10);
	if (limit <= 0 || limit > TRACES_KEPT || offset < 0) {
		http__reply_error(r, 400, "limit must be 1..%d and offset >= 0", TRACES_KEPT);
		return;
	}
	if (*id == '/' && id[1]) {
		struct trace_events te = { .id = id + 1, .arr = cJSON_CreateArray() };

		o = NULL;
		pthread_mutex_lock(&a->lock);
		for (i = 0; i < a->n_rows; i++)
			if (strcmp(a->rows[i].id, id + 1) == 0)
				o = row_json(&a->rows[i]);
		pthread_mutex_unlock(&a->lock);
		if (!o) {
			cJSON_Delete(te.arr);
			http__reply_error(r, 404, "no trace %s", id + 1);
			return;
		}
		eventlog__since(a->el, 0, 0, collect, &te, NULL);
		cJSON_AddItemToObject(o, "events", te.arr);
		/* the diff of the last patch that was ready, for people */
		{
			const cJSON *ev;

			cJSON_ArrayForEach(ev, te.arr) {
				const cJSON *d = cJSON_GetObjectItem(cJSON_GetObjectItem(ev, "payload"), "diff");

				if (cJSON_IsString(d)) {
					cJSON_DeleteItemFromObject(o, "diff");
					cJSON_AddStringToObject(o, "diff", d->valuestring);
				}
			}
		}
		http__reply_cjson(r, 200, o);
		return;
	}
	arr = cJSON_CreateArray();
	pthread_mutex_lock(&a->lock);
	/* newest first */
	for (k = 0; k < a->n_rows && shown < limit; k++) {
		const struct trace_row *row;

		i = (a->next_row - 1 - k + 2 * TRACES_KEPT) % TRACES_KEPT;
		row = &a->rows[i];
		if ((want_target && strcmp(want_target, row->target)) ||
		    (want_state && strcmp(want_state, row->state)))
			continue;
		if (matched++ < offset)
			continue;
		cJSON_AddItemToArray(arr, row_json(row));
		shown++;
	}
	pthread_mutex_unlock(&a->lock);
	o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "traces", arr);
	cJSON_AddNumberToObject(o, "limit", (double)limit);
	cJSON_AddNumberToObject(o, "offset", (double)offset);
	http__reply_cjson(r, 200, o);
}

/* Hand an action to the main loop; false when the queue is full. */
static bool queue_action(struct api *a, enum action_kind kind, const char *id, enum heal_mode mode)
{
	uint64_t one = 1;

	pthread_mutex_lock(&a->lock);
	if (a->n_actions == ACTIONS_MAX) {
		pthread_mutex_unlock(&a->lock);
		return false;
	}
	a->actions[a->n_actions].kind = kind;
	a->actions[a->n_actions].mode = mode;
	snprintf(a->actions[a->n_actions].id, sizeof(a->actions[0].id), "%s", id ? id : "");
	a->n_actions++;
	pthread_mutex_unlock(&a->lock);
	if (write(a->efd, &one, sizeof(one)) < 0)
		log_warn("api: cannot wake the main loop: %s", strerror(errno));
	return true;
}

static void queued(struct http_reply *r)
{
	r->status = 202;
	r->json = strdup("{\"queued\": true}");
}

static bool known_trace(struct api *a, const char *id)
{
	bool hit = false;
	int i;

	pthread_mutex_lock(&a->lock);
	for (i = 0; i < a->n_rows && !hit; i++)
		hit = strcmp(a->rows[i].id, id) == 0;
	pthread_mutex_unlock(&a->lock);
	return hit;
}

/* POST /api/v1/traces/ID/approve|reject|rollback: queued for the main loop */
static void post_trace(void *ctx, const char *path, const struct cJSON *body, const struct http_req *rq,
		       struct http_reply *r)
{
	struct api *a = ctx;
	const char *rest = path + strlen("/api/v1/traces/"), *slash;
	enum action_kind kind;
	char id[HEAL_TRACE_ID_LEN];

	if (strncmp(path, "/api/v1/traces/", 15) || !(slash = strchr(rest, '/'))) {
		http__reply_error(r, 404, "POST /api/v1/traces/ID/approve, /reject or /rollback");
		return;
	}
	if (!strcmp(slash, "/approve"))
		kind = ACT_APPROVE;
	else if (!strcmp(slash, "/reject"))
		kind = ACT_REJECT;
	else if (!strcmp(slash, "/rollback"))
		kind = ACT_ROLLBACK;
	else {
		http__reply_error(r, 404, "unknown action %s", slash + 1);
		return;
	}
	if ((size_t)(slash - rest) >= sizeof(id) || slash == rest) {
		http__reply_error(r, 400, "bad trace id");
		return;
	}
	snprintf(id, sizeof(id), "%.*s", (int)(slash - rest), rest);
	if (!known_trace(a, id)) {
		http__reply_error(r, 404, "no trace %s", id);
		return;
	}
	if (!queue_action(a, kind, id, 0)) {
		http__reply_error(r, 503, "too many actions waiting");
		return;
	}
	queued(r);
}

static void post_pause(void *ctx, const char *path, const struct cJSON *body, const struct http_req *rq,
		       struct http_reply *r)
{
	if (!queue_action(ctx, strcmp(path, "/api/v1/pause") ? ACT_RESUME : ACT_PAUSE, NULL, 0))
		http__reply_error(r, 503, "too many actions waiting");
	else
		queued(r);
}

static void post_mode(void *ctx, const char *path, const struct cJSON *body, const struct http_req *rq,
		      struct http_reply *r)
{
	const char *m = cJSON_GetStringValue(cJSON_GetObjectItem(body, "mode"));
	enum heal_mode mode;

	if (!m) {
		http__reply_error(r, 400, "expected {\"mode\": \"auto|approve|dry-run|observe\"}");
		return;
	}
	if (!strcmp(m, "auto"))
		mode = HEAL_MODE_AUTO;
	else if (!strcmp(m, "approve"))
		mode = HEAL_MODE_APPROVE;
	else if (!strcmp(m, "dry-run"))
		mode = HEAL_MODE_DRY_RUN;
	else if (!strcmp(m, "observe"))
		mode = HEAL_MODE_OBSERVE;
	else {
		http__reply_error(r, 400, "unknown mode \"%s\": use auto, approve, dry-run or observe", m);
		return;
	}
	if (!queue_action(ctx, ACT_MODE, NULL, mode))
		http__reply_error(r, 503, "too many actions waiting");
	else
		queued(r);
}

static const struct heal_trigger *find_trigger(const struct heal_config *cfg, const char *target,
					       const char *name, const struct heal_target **t)
{
	size_t i;

	*t = config__target_by_name(cfg, target ? target : "");
	for (i = 0; *t && name && i < (*t)->n_triggers; i++)
		if ((*t)->triggers[i].name && strcmp((*t)->triggers[i].name, name) == 0)
			return &(*t)->triggers[i];
	return NULL;
}

/* GET /api/v1/triggers: what a person may break on purpose (the config is immutable: no lock). */
static void get_triggers(void *ctx, const char *path, const struct http_req *rq, struct http_reply *r)
{
	struct api *a = ctx;
	cJSON *arr = cJSON_CreateArray();
	size_t i, k;

	for (i = 0; arr && i < a->cfg->n_targets; i++) {
		const struct heal_target *t = &a->cfg->targets[i];

		for (k = 0; k < t->n_triggers; k++) {
			cJSON *o = cJSON_CreateObject();

			cJSON_AddStringToObject(o, "target", t->name);
			cJSON_AddStringToObject(o, "name", t->triggers[k].name);
			cJSON_AddStringToObject(o, "description",
						t->triggers[k].description ? t->triggers[k].description : "");
			cJSON_AddItemToArray(arr, o);
		}
	}
	http__reply_cjson(r, 200, arr);
}

static void post_trigger(void *ctx, const char *path, const struct cJSON *body, const struct http_req *rq,
			 struct http_reply *r)
{
	struct api *a = ctx;
	const char *target = cJSON_GetStringValue(cJSON_GetObjectItem(body, "target"));
	const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(body, "name"));
	const struct heal_target *t;
	const struct heal_trigger *tg = find_trigger(a->cfg, target, name, &t);
	uint64_t one = 1;

	if (!target || !name) {
		http__reply_error(r, 400, "expected {\"target\": ..., \"name\": ...}");
		return;
	}
	if (!tg) {
		http__reply_error(r, 404, "no trigger %s of target %s", name, target);
		return;
	}
	pthread_mutex_lock(&a->lock);
	if (a->n_actions == ACTIONS_MAX) {
		pthread_mutex_unlock(&a->lock);
		http__reply_error(r, 503, "too many actions waiting");
		return;
	}
	a->actions[a->n_actions] = (struct action){ .kind = ACT_TRIGGER, .target = t, .trigger = tg };
	a->n_actions++;
	pthread_mutex_unlock(&a->lock);
	if (write(a->efd, &one, sizeof(one)) < 0)
		log_warn("api: cannot wake the main loop: %s", strerror(errno));
	queued(r);
}

struct trigger_job {
	struct api *a;
	const struct heal_target *t;
	const struct heal_trigger *tg;
	int status;
	char output[1024];
};

static void trigger_run(void *arg)
{
	struct trigger_job *j = arg;

	j->status = util__run(j->tg->command, 30000, j->output, sizeof(j->output));
}

static void trigger_done(void *arg)
{
	struct trigger_job *j = arg;
	struct heal_event *ev = event__new("TRIGGERED");

	if (ev) {
		snprintf(ev->key, sizeof(ev->key), "%s:TRIGGERED:%s", j->t->name, j->tg->name);
		ev->ui_hint = "control";
		cJSON_AddStringToObject(ev->payload, "target", j->t->name);
		cJSON_AddStringToObject(ev->payload, "name", j->tg->name);
		cJSON_AddNumberToObject(ev->payload, "exit_code",
					j->status >= 0 && WIFEXITED(j->status) ? WEXITSTATUS(j->status) : -1);
		cJSON_AddStringToObject(ev->payload, "output", j->output);
		bus__publish(j->a->bus, ev);
	}
	free(j);
}

int api__fd(const struct api *a)
{
	return a->efd;
}

void api__dispatch(struct api *a)
{
	struct action todo[ACTIONS_MAX];
	uint64_t n;
	int i, count;

	if (read(a->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&a->lock);
	count = a->n_actions;
	memcpy(todo, a->actions, (size_t)count * sizeof(todo[0]));
	a->n_actions = 0;
	pthread_mutex_unlock(&a->lock);
	for (i = 0; i < count; i++) {
		int e = 0;

		switch (todo[i].kind) {
		case ACT_APPROVE:
		case ACT_REJECT:
			e = healer__decide(a->healer, todo[i].id, todo[i].kind == ACT_APPROVE, "api");
			if (e)
				log_warn("api: %s %s: %s", todo[i].kind == ACT_APPROVE ? "approve" : "reject",
					 todo[i].id, e == -ENOENT ? "no such open trace" : "not waiting for approval");
			break;
		case ACT_ROLLBACK:
			e = healer__rollback(a->healer, todo[i].id);
			if (e)
				log_warn("api: rollback %s: %s", todo[i].id,
					 e == -EBUSY ? "still healing" : e == -ENOENT ? "nothing to roll back" :
					 strerror(-e));
			break;
		case ACT_PAUSE:
		case ACT_RESUME:
			healer__pause(a->healer, todo[i].kind == ACT_PAUSE);
			log_warn("healing %s through the API", todo[i].kind == ACT_PAUSE ? "paused" : "resumed");
			break;
		case ACT_MODE:
			healer__set_mode(a->healer, todo[i].mode);
			log_warn("mode set to %s through the API", config__mode_name(todo[i].mode));
			break;
		case ACT_TRIGGER: {
			struct trigger_job *j = calloc(1, sizeof(*j));

			log_warn("trigger %s of %s through the API", todo[i].trigger->name, todo[i].target->name);
			if (!j)
				break;
			*j = (struct trigger_job){ .a = a, .t = todo[i].target, .tg = todo[i].trigger };
			/* a command: off the loop */
			if (worker__submit(a->worker, trigger_run, trigger_done, j))
				free(j);
			break;
		}
		}
	}
	api__tick(a); /* the status reflects it at once */
}

unsigned short api__port(const struct api *a)
{
	return http__port(a->http);
}

struct api *api__new(const struct heal_config *cfg, const char *listen, struct healer *healer,
		     struct probe *probe, struct bus *bus, struct worker *worker, char *err,
		     size_t errlen)
{
	struct api *a = calloc(1, sizeof(*a));
	char token[HTTP_TOKEN_LEN];
	struct http_route routes[] = {
		{ .prefix = "/api/v1/status", .get = get_status, .ctx = a },
		{ .prefix = "/api/v1/targets", .get = get_targets, .ctx = a },
		{ .prefix = "/api/v1/traces", .get = get_traces, .post = post_trace, .ctx = a },
		{ .prefix = "/api/v1/pause", .post = post_pause, .ctx = a },
		{ .prefix = "/api/v1/resume", .post = post_pause, .ctx = a },
		{ .prefix = "/api/v1/mode", .post = post_mode, .ctx = a },
		{ .prefix = "/api/v1/triggers", .get = get_triggers, .ctx = a },
		{ .prefix = "/api/v1/trigger", .post = post_trigger, .ctx = a },
	};
	struct http_opts o = { .listen = listen, .token = token, .routes = routes,
			       .n_routes = sizeof(routes) / sizeof(routes[0]) };
	int e;

	if (!a) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	a->cfg = cfg;
	a->healer = healer;
	a->probe = probe;
	a->bus = bus;
	a->worker = worker;
	a->started = time(NULL);
	a->efd = -1;
	pthread_mutex_init(&a->lock, NULL);
	a->m = metrics__new();
	a->el = eventlog__new(0, 0);
	a->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!a->m || !a->el || a->efd < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if ((e = register_metrics(a))) {
		snprintf(err, errlen, "cannot register metrics: %s", strerror(-e));
		goto fail;
	}
	e = http__load_or_create_token(cfg->state_dir, token, sizeof(token));
	if (e) {
		snprintf(err, errlen, "cannot use %s/%s: %s%s", cfg->state_dir, HTTP_TOKEN_FILE,
			 strerror(-e), e == -EPERM ? " (chmod 600 it)" : "");
		goto fail;
	}
	o.events = a->el;
	o.metrics = a->m;
	o.asset = dashboard__asset; /* the dashboard at / */
	a->http = http__new(&o, err, errlen);
	if (!a->http)
		goto fail;
	api__tick(a);
	return a;
fail:
	api__free(a);
	return NULL;
}

void api__free(struct api *a)
{
	if (!a)
		return;
	/* the server first: its threads read everything below */
	http__free(a->http);
	eventlog__free(a->el);
	metrics__free(a->m);
	if (a->efd >= 0)
		close(a->efd);
	free(a->status_json);
	pthread_mutex_destroy(&a->lock);
	free(a);
}
