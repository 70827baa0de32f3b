// SPDX-License-Identifier: MIT
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <glob.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <cjson/cJSON.h>

#include "heal/guard.h"
#include "heal/healer.h"
#include "heal/journal.h"
#include "heal/llm.h"
#include "heal/llm_rca.h"
#include "heal/log.h"
#include "heal/names.h"
#include "heal/patch.h"
#include "heal/rca.h"
#include "heal/redact.h"
#include "heal/snapshot.h"
#include "heal/util.h"

#define OUTPUT_MAX 1024      /* command output kept in an event */
#define FILE_MAX (1u << 20)  /* files heald patches */
#define TRACKED_FILES 256    /* allowlisted files snapshotted */
#define SIG_MAX 1024         /* signatures remembered for backoff and breaker */
#define OUTCOME_MAX 4096
#define VERDICTS_MAX 16
#define LLM_RCA_BELOW 0.6   /* below this confidence the playbooks ask the LLM (when configured) */
#define LLM_BUDGET_MS 20000

enum tstate {
	T_PLANNING,
	T_BUILDING,
	T_AWAIT_APPROVAL,
	T_APPLYING,
	T_RELOADING,
	T_VERIFYING,
	T_WINDOW,
	T_ROLLING_BACK,
	T_DONE,
};

struct trace {
	char id[HEAL_TRACE_ID_LEN];
	char key[HEAL_KEY_LEN];
	char type[32];
	const struct heal_target *t;
	cJSON *failure; /* payload of the failure that opened it */
	enum tstate st;
	long long started_ms, step_ms, watch_from_ms, window_end_ms;
	unsigned repeats;
	bool recurred;
	bool busy;       /* a worker job or a restart is in flight */
	bool rolling_back; /* the reload in progress follows a rollback */
	bool built;        /* the target's build command ran for the files now in place */
	bool dead;       /* finished while busy: free when the job returns */
	bool holding;	 /* supervision waits for this heal to bring its target back */
	struct rca_plan plans[RCA_MAX_PLANS];
	int n_plans, cur;
	char tried[RCA_MAX_PLANS][64];
	int n_tried;
	/* the attempt in progress */
	struct patch patch;
	char backup_dir[PATH_MAX];
	char backup_id[PATCH_BACKUP_ID_LEN + 8];
	bool applied_files;
	pid_t nofile_pid;
	struct rlimit old_nofile;
	bool nofile_set;
	char fail_reason[256];
	char *llm_content; /* the LLM's proposed file (plan "llm_rca"), owned */
	char failure_type[32];
	struct trace *next;
};

struct sig_state {
	char key[HEAL_KEY_LEN];
	unsigned failures;      /* consecutive failed heals */
	long long next_ms;      /* backoff: no new heal before */
	bool escalated;
	long long escalated_ms;
	long long hour_start_ms;
	unsigned heals_this_hour;
};

struct outcome {
	char key[HEAL_KEY_LEN];
	char playbook[64];
	unsigned ok, failed;
};

#define CLOSED_KEPT 256 /* finished heals a person can still roll back */

struct closed_trace {
	char id[HEAL_TRACE_ID_LEN];
	char key[HEAL_KEY_LEN];
	uint32_t target_id;
};

struct healer {
	const struct heal_config *cfg;
	enum heal_mode mode; /* starts as the config's; the API can change it */
	bool paused;         /* no new heal starts; failures are counted */
	struct closed_trace closed[CLOSED_KEPT];
	int n_closed, next_closed;
	struct bus *bus;
	struct worker *worker;
	struct targets *targets;
	struct snapshots *snaps;
	struct llm_client *llm;
	char backups[PATH_MAX];
	char control[PATH_MAX];
	struct trace *traces;
	unsigned n_open;
	unsigned long long seq;
	struct sig_state *sigs;
	size_t n_sigs;
	struct outcome *outcomes;
	size_t n_outcomes;
	long long hour_start_ms;
	unsigned heals_this_hour;
	struct healer_stats stats;
	char tracked[TRACKED_FILES][PATH_MAX]; /* allowlisted files with known-good versions */
	int n_tracked;
};

/* ---- small helpers ---------------------------------------------------------- */

static const char *pstr(const cJSON *payload, const char *k)
{
	return cJSON_GetStringValue(cJSON_GetObjectItem(payload, k));
}

static struct guard_rules rules_for(const struct heal_config *cfg, const struct heal_target *t)
{
	const struct heal_guardrails *g = config__guardrails(cfg, t);
	struct guard_rules r = {
		.allow = g->allow,
		.n_allow = g->n_allow,
		.max_lines = g->max_lines,
		.max_files = g->max_files,
		.deny = g->deny,
		.n_deny = g->n_deny,
		.validate = g->validate,
		.build = t->build,
		.command_timeout_ms = 10000,
	};

	return r;
}

static bool is_failure_type(const char *type)
{
	return strcmp(type, "SYSCALL_FAILURE") == 0 || strcmp(type, "API_FAILURE") == 0 ||
	       strcmp(type, "CRASH") == 0 || strcmp(type, "EXIT_FAILURE") == 0 ||
	       strcmp(type, "OOM_KILL") == 0;
}

/* The failure ended a process: a heal of it brings a supervised target back itself. */
static bool is_death_type(const char *type)
{
	return strcmp(type, "CRASH") == 0 || strcmp(type, "EXIT_FAILURE") == 0 ||
	       strcmp(type, "OOM_KILL") == 0;
}

/* Hold supervision off tr's target (its reload starts a stopped target), or let it go. */
static void hold(struct healer *h, struct trace *tr, bool on)
{
	if (tr->holding == on)
		return;
	tr->holding = on;
	if (on)
		targets__hold(h->targets, tr->t->id);
	else
		targets__release(h->targets, tr->t->id);
}

static struct sig_state *sig_get(struct healer *h, const char *key)
{
	size_t i, oldest = 0;

	for (i = 0; i < h->n_sigs; i++)
		if (strcmp(h->sigs[i].key, key) == 0)
			return &h->sigs[i];
	if (h->n_sigs < SIG_MAX) {
		i = h->n_sigs++;
	} else {
		/* forget the signature that has been quiet longest */
		for (i = 1; i < SIG_MAX; i++)
			if (h->sigs[i].next_ms < h->sigs[oldest].next_ms)
				oldest = i;
		i = oldest;
	}
	memset(&h->sigs[i], 0, sizeof(h->sigs[i]));
	snprintf(h->sigs[i].key, sizeof(h->sigs[i].key), "%s", key);
	return &h->sigs[i];
}

static struct outcome *outcome_get(struct healer *h, const char *key, const char *playbook)
{
	size_t i;

	for (i = 0; i < h->n_outcomes; i++)
		if (strcmp(h->outcomes[i].key, key) == 0 &&
		    strcmp(h->outcomes[i].playbook, playbook) == 0)
			return &h->outcomes[i];
	if (h->n_outcomes >= OUTCOME_MAX)
		return NULL;
	i = h->n_outcomes++;
	memset(&h->outcomes[i], 0, sizeof(h->outcomes[i]));
	snprintf(h->outcomes[i].key, sizeof(h->outcomes[i].key), "%s", key);
	snprintf(h->outcomes[i].playbook, sizeof(h->outcomes[i].playbook), "%s", playbook);
	return &h->outcomes[i];
}

static void remember(struct healer *h, const char *key, const char *playbook, bool ok)
{
	struct outcome *o = outcome_get(h, key, playbook);

	if (o) {
		if (ok)
			o->ok++;
		else
			o->failed++;
	}
}

/* A step event of trace tr, with the fields every step carries. */
static struct heal_event *step(struct healer *h, struct trace *tr, const char *type, const char *hint)
{
	struct heal_event *ev = event__new(type);
	long long now = util__now_ms();

	if (!ev)
		return NULL;
	snprintf(ev->key, sizeof(ev->key), "%s", tr->key);
	snprintf(ev->trace_id, sizeof(ev->trace_id), "%s", tr->id);
	ev->ui_hint = hint;
	cJSON_AddStringToObject(ev->payload, "target", tr->t->name);
	if (tr->cur < tr->n_plans)
		cJSON_AddStringToObject(ev->payload, "playbook", tr->plans[tr->cur].playbook);
	cJSON_AddNumberToObject(ev->payload, "elapsed_ms", (double)(now - tr->started_ms));
	cJSON_AddNumberToObject(ev->payload, "step_ms", (double)(now - tr->step_ms));
	cJSON_AddStringToObject(ev->payload, "mode", config__mode_name(h->mode));
	tr->step_ms = now;
	return ev;
}

static void publish(struct healer *h, struct heal_event *ev)
{
	if (ev)
		bus__publish(h->bus, ev);
}

static void add_output(cJSON *o, const char *key, const char *out)
{
	char buf[OUTPUT_MAX + 1];

	snprintf(buf, sizeof(buf), "%s", out ? out : "");
	cJSON_AddStringToObject(o, key, buf);
}

static void trace_free(struct trace *tr)
{
	free(tr->llm_content);
	cJSON_Delete(tr->failure);
	patch__free(&tr->patch);
	free(tr);
}

static void trace_unlink(struct healer *h, struct trace *tr)
{
	struct trace **pp;

	for (pp = &h->traces; *pp; pp = &(*pp)->next) {
		if (*pp == tr) {
			*pp = tr->next;
			h->n_open--;
			break;
		}
	}
	if (tr->busy)
		tr->dead = true; /* the job in flight frees it */
	else
		trace_free(tr);
}

static struct trace *trace_by_key(struct healer *h, const char *key)
{
	struct trace *tr;

	for (tr = h->traces; tr; tr = tr->next)
		if (strcmp(tr->key, key) == 0)
			return tr;
	return NULL;
}

static struct trace *trace_by_id(struct healer *h, const char *id)
{
	struct trace *tr;

	for (tr = h->traces; tr; tr = tr->next)
		if (strcmp(tr->id, id) == 0)
			return tr;
	return NULL;
}

/* ---- known-good files ----------------------------------------------------- */

static bool path_allowed(const struct heal_guardrails *g, const char *path)
{
	char real[PATH_MAX], dir[PATH_MAX], *slash;
	size_t i;

	/* resolve the directory (the file itself may be missing) before matching */
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash)
		return false;
	*slash = 0;
	if (!realpath(dir[0] ? dir : "/", real))
		return false;
	snprintf(dir, sizeof(dir), "%s/%s", strcmp(real, "/") ? real : "", slash + 1);
	for (i = 0; i < g->n_allow; i++)
		if (fnmatch(g->allow[i], dir, 0) == 0)
			return true;
	return false;
}

static void track(struct healer *h, const char *path)
{
	int i;

	for (i = 0; i < h->n_tracked; i++)
		if (strcmp(h->tracked[i], path) == 0)
			return;
	if (h->n_tracked < TRACKED_FILES)
		snprintf(h->tracked[h->n_tracked++], PATH_MAX, "%s", path);
}

/* Expand every allowlist glob into the files that exist now. */
static void find_tracked(struct healer *h)
{
	const struct heal_config *cfg = h->cfg;
	size_t i, k, t;

	for (t = 0; t <= cfg->n_targets; t++) {
		const struct heal_guardrails *g =
			t < cfg->n_targets ? config__guardrails(cfg, &cfg->targets[t]) : &cfg->guardrails;

		for (i = 0; i < g->n_allow; i++) {
			glob_t gl;

			if (glob(g->allow[i], GLOB_NOSORT, NULL, &gl))
				continue;
			for (k = 0; k < gl.gl_pathc; k++) {
				struct stat st;

				if (stat(gl.gl_pathv[k], &st) == 0 && S_ISREG(st.st_mode) &&
				    st.st_size <= (off_t)SNAPSHOT_MAX_FILE)
					track(h, gl.gl_pathv[k]);
			}
			globfree(&gl);
		}
	}
}

struct snap_job {
	struct healer *h;
	char reason[64];
	int stored;
};

static void snap_run(void *arg)
{
	struct snap_job *j = arg;
	int i, stored;

	for (i = 0; i < j->h->n_tracked; i++)
		if (snapshot__take(j->h->snaps, j->h->tracked[i], j->reason, &stored) == 0)
			j->stored += stored;
}

static void snap_done(void *arg)
{
	struct snap_job *j = arg;

	log_debug("known-good snapshots (%s): %d new", j->reason, j->stored);
	free(j);
}

static void snapshot_all(struct healer *h, const char *reason)
{
	struct snap_job *j = calloc(1, sizeof(*j));

	if (!j)
		return;
	j->h = h;
	snprintf(j->reason, sizeof(j->reason), "%s", reason);
	if (worker__submit(h->worker, snap_run, snap_done, j))
		free(j);
}

/* rca env: allowlisted files of t whose content is not their last known good one. */
static int changed_files(void *ctx, const struct heal_target *t, char out[][PATH_MAX], int max)
{
	struct healer *h = ctx;
	const struct heal_guardrails *g = config__guardrails(h->cfg, t);
	int i, n = 0;

	/* runs on the main loop but reads only small config files (bounded by TRACKED_FILES) */
	for (i = 0; i < h->n_tracked && n < max; i++) {
		char *cur = NULL, *good = NULL;
		size_t clen = 0, glen = 0;
		int e;

		if (!path_allowed(g, h->tracked[i]))
			continue;
		if (snapshot__latest(h->snaps, h->tracked[i], &good, &glen, NULL, NULL, NULL))
			continue;
		e = patch__read_file(h->tracked[i], FILE_MAX, &cur, &clen);
		if (e == -ENOENT || (e == 0 && (clen != glen || memcmp(cur, good, clen))))
			snprintf(out[n++], PATH_MAX, "%s", h->tracked[i]);
		free(cur);
		free(good);
	}
	return n;
}

static bool allowed_cb(void *ctx, const struct heal_target *t, const char *path)
{
	struct healer *h = ctx;

	return path_allowed(config__guardrails(h->cfg, t), path);
}

static void history_cb(void *ctx, const char *key, const char *playbook, unsigned *ok,
		       unsigned *failed)
{
	struct healer *h = ctx;
	size_t i;

	for (i = 0; i < h->n_outcomes; i++) {
		if (strcmp(h->outcomes[i].key, key) == 0 &&
		    strcmp(h->outcomes[i].playbook, playbook) == 0) {
			*ok = h->outcomes[i].ok;
			*failed = h->outcomes[i].failed;
			return;
		}
	}
}

/* ---- worker jobs ---------------------------------------------------------------- */

enum job_kind { JOB_BUILD, JOB_APPLY, JOB_RELOAD, JOB_READY, JOB_VERIFY, JOB_RESTORE, JOB_LLM_RCA,
		JOB_COMPILE };

struct job {
	struct healer *h;
	struct trace *tr;
	enum job_kind kind;
	/* inputs (copied: the worker must not read the config's mutable state) */
	struct rca_plan plan;
	char **argv;
	unsigned timeout_ms, tries, interval_ms;
	char ready_addr[128];
	/* results */
	int err;
	int status;
	char error[512];
	char output[OUTPUT_MAX];
	struct patch patch; /* JOB_BUILD: moved into the trace */
	char *diff;
	struct guard_verdict verdicts[VERDICTS_MAX];
	size_t n_verdicts;
	const char *blocked_by;
	char backup_id[PATCH_BACKUP_ID_LEN + 8];
	cJSON *info; /* extra payload fields for the next event */
	int attempt;
	/* JOB_LLM_RCA */
	char rca_files[LLM_RCA_FILES_MAX][PATH_MAX];
	int n_rca_files;
	char key[HEAL_KEY_LEN];
	char type[32];
	cJSON *payload; /* a copy of the failure */
	struct llm_rca_answer answer;
};

static void job_free(struct job *j)
{
	llm_rca_answer__free(&j->answer);
	cJSON_Delete(j->payload);
	patch__free(&j->patch);
	free(j->diff);
	cJSON_Delete(j->info);
	free(j);
}

static void job_done(void *arg);
static void job_run(void *arg);

static int submit(struct healer *h, struct trace *tr, enum job_kind kind, struct job *j)
{
	j->h = h;
	j->tr = tr;
	j->kind = kind;
	tr->busy = true;
	if (worker__submit(h->worker, job_run, job_done, j)) {
		tr->busy = false;
		job_free(j);
		return -EAGAIN;
	}
	return 0;
}

static int add_file_change(struct patch *p, const char *path, char *new_content, size_t new_len)
{
	struct patch_file *v = realloc(p->files, (p->n + 1) * sizeof(*v)), *f;
	int e;

	if (!v) {
		free(new_content);
		return -ENOMEM;
	}
	p->files = v;
	f = &p->files[p->n];
	memset(f, 0, sizeof(*f));
	/* the guardrails check (and the patch writes) the resolved path */
	{
		char real[PATH_MAX], dir[PATH_MAX], *slash;

		if (!realpath(path, real)) {
			snprintf(dir, sizeof(dir), "%s", path);
			slash = strrchr(dir, '/');
			if (slash && (*slash = 0, realpath(dir[0] ? dir : "/", real)))
				snprintf(real + strlen(real), sizeof(real) - strlen(real), "/%s", slash + 1);
			else
				snprintf(real, sizeof(real), "%s", path);
		}
		f->path = strdup(real);
	}
	f->new_content = new_content;
	f->new_len = new_len;
	p->n++;
	if (!f->path)
		return -ENOMEM;
	e = patch__read_file(path, FILE_MAX, &f->old_content, &f->old_len);
	if (e == 0)
		f->old_exists = 1;
	else if (e != -ENOENT)
		return e;
	return 0;
}

/* RFC 6901 pointer set; creates the last member of an object, replaces array items. */
static int json_pointer_set(cJSON *root, const char *pointer, cJSON *value)
{
	char buf[1024], *tok, *save = NULL, *next;
	cJSON *cur = root;

	if (!pointer[0])
		return -EINVAL;
	snprintf(buf, sizeof(buf), "%s", pointer + 1);
	tok = strtok_r(buf, "/", &save);
	while (tok) {
		char name[256];
		size_t i, o = 0;

		for (i = 0; tok[i] && o + 1 < sizeof(name); i++) {
			if (tok[i] == '~' && tok[i + 1] == '1')
				name[o++] = '/', i++;
			else if (tok[i] == '~' && tok[i + 1] == '0')
				name[o++] = '~', i++;
			else
				name[o++] = tok[i];
		}
		name[o] = 0;
		next = strtok_r(NULL, "/", &save);
		if (!next) {
			if (cJSON_IsArray(cur)) {
				int idx = atoi(name);

				if (idx < 0 || idx >= cJSON_GetArraySize(cur))
					return -ENOENT;
				return cJSON_ReplaceItemInArray(cur, idx, value) ? 0 : -EINVAL;
			}
			if (!cJSON_IsObject(cur))
				return -ENOTDIR;
			if (cJSON_HasObjectItem(cur, name))
				return cJSON_ReplaceItemInObjectCaseSensitive(cur, name, value) ? 0 : -EINVAL;
			return cJSON_AddItemToObject(cur, name, value) ? 0 : -ENOMEM;
		}
		cur = cJSON_IsArray(cur) ? cJSON_GetArrayItem(cur, atoi(name)) :
					   cJSON_GetObjectItemCaseSensitive(cur, name);
		if (!cur)
			return -ENOENT;
		tok = next;
	}
	return -EINVAL;
}

static int build_restore(struct job *j)
{
	struct healer *h = j->h;
	int i, e;

	for (i = 0; i < j->plan.n_files; i++) {
		const char *path = j->plan.files[i];
		char *cur = NULL, *good = NULL;
		size_t clen = 0, glen = 0;

		e = patch__read_file(path, FILE_MAX, &cur, &clen);
		if (e && e != -ENOENT) {
			snprintf(j->error, sizeof(j->error), "cannot read %s: %s", path, strerror(-e));
			return e;
		}
		e = snapshot__latest_other_than(h->snaps, path, cur, e ? 0 : clen, &good, &glen);
		free(cur);
		if (e) {
			snprintf(j->error, sizeof(j->error), "no known good version of %s to restore", path);
			return e;
		}
		e = add_file_change(&j->patch, path, good, glen);
		if (e)
			return e;
	}
	return 0;
}

/* ---- json_set in place: the file keeps its layout, the diff shows the one value ---- */

static const char *json_ws(const char *p, const char *e)
{
	while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* End of the JSON string starting at p (on its quote), or NULL. */
static const char *json_skip_string(const char *p, const char *e)
{
	for (p++; p < e; p++) {
		if (*p == '\\')
			p++;
		else if (*p == '"')
			return p + 1;
	}
	return NULL;
}

/* End of the JSON value starting at p, or NULL (the text has been parsed once already). */
static const char *json_skip_value(const char *p, const char *e)
{
	int depth = 0;

	if (p >= e)
		return NULL;
	if (*p != '{' && *p != '[') {
		if (*p == '"')
			return json_skip_string(p, e);
		while (p < e && !strchr(",}] \t\r\n", *p))
			p++;
		return p;
	}
	for (; p < e; p++) {
		if (*p == '"') {
			p = json_skip_string(p, e);
			if (!p)
				return NULL;
			p--;
		} else if (*p == '{' || *p == '[') {
			depth++;
		} else if ((*p == '}' || *p == ']') && --depth == 0) {
			return p + 1;
		}
	}
	return NULL;
}

/* Where the value at pointer is in text: [*vs, *ve). -ENOENT when it does not exist yet. */
static int json_locate(const char *text, size_t len, const char *pointer, const char **vs,
		       const char **ve)
{
	const char *e = text + len, *p = json_ws(text, e), *tok = pointer;

	while (*tok == '/') {
		char name[256];
		size_t o = 0;

		/* the next reference token, unescaped (~1 is '/', ~0 is '~') */
		for (tok++; *tok && *tok != '/' && o + 1 < sizeof(name); tok++) {
			if (tok[0] == '~' && (tok[1] == '0' || tok[1] == '1'))
				name[o++] = *++tok == '1' ? '/' : '~';
			else
				name[o++] = *tok;
		}
		if (*tok && *tok != '/')
			return -ENOENT; /* a name too long to hold: let the caller print the file anew */
		name[o] = 0;
		if (p < e && *p == '{') {
			const char *k, *ke;
			bool hit = false;

			for (p = json_ws(p + 1, e); p < e && *p == '"'; p = json_ws(p + 1, e)) {
				k = p;
				ke = json_skip_string(k, e);
				if (!ke)
					return -EINVAL;
				/* keys with escapes are compared as written: no match, the caller falls back */
				hit = (size_t)(ke - k - 2) == strlen(name) && !memchr(k, '\\', (size_t)(ke - k)) &&
				      memcmp(k + 1, name, strlen(name)) == 0;
				p = json_ws(ke, e);
				if (p >= e || *p != ':')
					return -EINVAL;
				p = json_ws(p + 1, e);
				if (hit)
					break;
				if (!(p = json_skip_value(p, e)))
					return -EINVAL;
				p = json_ws(p, e);
				if (p >= e || *p != ',')
					break;
			}
			if (!hit)
				return -ENOENT;
		} else if (p < e && *p == '[') {
			char *end;
			long idx = strtol(name, &end, 10);

			if (*end || idx < 0)
				return -ENOENT;
			for (p = json_ws(p + 1, e); idx > 0 && p < e && *p != ']'; idx--) {
				if (!(p = json_skip_value(p, e)))
					return -EINVAL;
				p = json_ws(p, e);
				if (p >= e || *p != ',')
					return -ENOENT;
				p = json_ws(p + 1, e);
			}
			if (p >= e || *p == ']')
				return -ENOENT;
		} else {
			return -ENOENT;
		}
	}
	*vs = p;
	*ve = json_skip_value(p, e);
	return *ve ? 0 : -EINVAL;
}

/*
 * The file with only the value at pointer replaced by value, when that gives
 * exactly the document `want`; NULL otherwise (the caller prints want whole).
 */
static char *json_splice(const char *text, size_t len, const char *pointer, const cJSON *value,
			 const cJSON *want)
{
	const char *vs, *ve;
	char *v, *out = NULL;
	cJSON *check;

	if (json_locate(text, len, pointer, &vs, &ve))
		return NULL;
	v = cJSON_PrintUnformatted(value);
	if (!v || asprintf(&out, "%.*s%s%.*s", (int)(vs - text), text, v,
			   (int)(text + len - ve), ve) < 0)
		out = NULL;
	free(v);
	check = out ? cJSON_Parse(out) : NULL;
	if (!check || !cJSON_Compare(check, want, 1)) {
		free(out);
		out = NULL;
	}
	cJSON_Delete(check);
	return out;
}

static int build_json_set(struct job *j)
{
	const struct heal_playbook *pb = j->plan.pb;
	char *cur = NULL, *out;
	cJSON *root, *value;
	size_t len;
	int e;

	e = patch__read_file(pb->file, FILE_MAX, &cur, &len);
	if (e) {
		snprintf(j->error, sizeof(j->error), "cannot read %s: %s", pb->file, strerror(-e));
		return e;
	}
	root = cJSON_ParseWithLength(cur, len);
	value = cJSON_Parse(pb->value_json);
	if (!root || !value) {
		cJSON_Delete(root);
		cJSON_Delete(value);
		free(cur);
		snprintf(j->error, sizeof(j->error), "%s is not valid JSON", pb->file);
		return -EINVAL;
	}
	e = json_pointer_set(root, pb->pointer, value);
	if (e) {
		cJSON_Delete(value);
		cJSON_Delete(root);
		free(cur);
		snprintf(j->error, sizeof(j->error), "cannot set %s in %s: %s", pb->pointer, pb->file,
			 strerror(-e));
		return e;
	}
	/* an existing value is replaced where it stands; anything else prints the file anew */
	out = json_splice(cur, len, pb->pointer, value, root);
	free(cur);
	if (out) {
		cJSON_Delete(root);
		return add_file_change(&j->patch, pb->file, out, strlen(out));
	}
	out = cJSON_Print(root);
	cJSON_Delete(root);
	if (!out)
		return -ENOMEM;
	len = strlen(out);
	/* keep a final newline, as editors do */
	{
		char *nl = realloc(out, len + 2);

		if (!nl) {
			free(out);
			return -ENOMEM;
		}
		out = nl;
		out[len++] = '\n';
		out[len] = 0;
	}
	return add_file_change(&j->patch, pb->file, out, len);
}

/* Ask the LLM for the whole new file; anything unusable falls back (the caller moves on). */
static int build_llm(struct job *j)
{
	struct healer *h = j->h;
	struct llm_result r = { 0 };
	char *cur = NULL, *prompt = NULL, *failure = NULL, *red;
	const char *path = j->plan.n_files ? j->plan.files[0] : NULL;
	size_t len = 0, nred = 0;
	int e;

	if (j->tr->llm_content && strcmp(j->plan.playbook, "llm_rca") == 0 && path) {
		/* the analysis already proposed the whole file: no second call */
		char *content = strdup(j->tr->llm_content);

		if (!content)
			return -ENOMEM;
		return add_file_change(&j->patch, path, content, strlen(content));
	}
	if (!h->llm) {
		snprintf(j->error, sizeof(j->error), "no LLM configured");
		return -ENOENT;
	}
	if (!path) {
		snprintf(j->error, sizeof(j->error), "llm_patch needs a file");
		return -EINVAL;
	}
	e = patch__read_file(path, FILE_MAX / 4, &cur, &len);
	if (e) {
		snprintf(j->error, sizeof(j->error), "cannot read %s: %s", path, strerror(-e));
		return e;
	}
	failure = cJSON_PrintUnformatted(j->tr->failure);
	if (asprintf(&prompt,
		     "A program failed. Failure (JSON): %s\n\nFile %s:\n<file>\n%s</file>\n\n"
		     "Reply with the complete corrected file inside <file></file> and nothing else.",
		     failure ? failure : "{}", path, cur) < 0)
		prompt = NULL;
	free(failure);
	/* secrets never leave the host: the client redacts again, this is the first line */
	red = prompt ? redact__text(prompt, &nred) : NULL;
	free(prompt);
	if (!red) {
		free(cur);
		return -ENOMEM;
	}
	e = llm__complete(h->llm, "You fix configuration and code files of failing services. "
			  "Change as little as possible.", red, 20000, &r);
	free(red);
	j->info = cJSON_CreateObject();
	if (j->info) {
		cJSON_AddBoolToObject(j->info, "llm_ok", r.ok);
		cJSON_AddNumberToObject(j->info, "llm_attempts", r.attempts);
		cJSON_AddNumberToObject(j->info, "llm_ms", (double)r.duration_ms);
		cJSON_AddStringToObject(j->info, "llm_request_id", r.request_id);
		cJSON_AddNumberToObject(j->info, "redacted", (double)nred);
		if (!r.ok)
			cJSON_AddStringToObject(j->info, "llm_error", r.error);
	}
	if (!r.ok) {
		snprintf(j->error, sizeof(j->error), "LLM failed: %s", r.error);
		llm_result__free(&r);
		free(cur);
		return -EIO;
	}
	{
		char *a = strstr(r.text, "<file>"), *b = a ? strstr(a + 6, "</file>") : NULL;
		char *content;

		if (!a || !b) {
			snprintf(j->error, sizeof(j->error), "LLM answer has no <file> block");
			llm_result__free(&r);
			free(cur);
			return -EBADMSG;
		}
		a += 6;
		if (*a == '\n')
			a++;
		content = strndup(a, (size_t)(b - a));
		llm_result__free(&r);
		free(cur);
		if (!content)
			return -ENOMEM;
		return add_file_change(&j->patch, path, content, strlen(content));
	}
}

static void run_build(struct job *j)
{
	struct guard_rules rules = rules_for(j->h->cfg, j->tr->t);
	int e;

	rules.restore = j->plan.action == HEAL_ACT_RESTORE_KNOWN_GOOD;
	switch (j->plan.action) {
	case HEAL_ACT_RESTORE_KNOWN_GOOD:
		e = build_restore(j);
		break;
	case HEAL_ACT_JSON_SET:
		e = build_json_set(j);
		break;
	case HEAL_ACT_LLM_PATCH:
		e = build_llm(j);
		break;
	default:
		e = 0;
		break;
	}
	if (e) {
		j->err = e;
		return;
	}
	if (!j->patch.n)
		return;
	j->diff = patch__diff(&j->patch);
	j->err = guard__check(&rules, &j->patch, j->verdicts, &j->n_verdicts, VERDICTS_MAX,
			      &j->blocked_by);
}

/* Remove or gzip files matching the cleanup globs, oldest first, until writes can go on. */
static void run_cleanup(struct job *j)
{
	char **globs = j->plan.pb && j->plan.pb->globs ? j->plan.pb->globs : j->tr->t->cleanup;
	unsigned long long freed = 0;
	cJSON *files = cJSON_CreateArray();
	bool compress = j->plan.pb && j->plan.pb->compress;
	size_t i, k;

	for (i = 0; globs && globs[i]; i++) {
		glob_t gl;

		if (glob(globs[i], 0, NULL, &gl))
			continue;
		for (k = 0; k < gl.gl_pathc; k++) {
			const char *f = gl.gl_pathv[k];
			struct stat st;

			if (lstat(f, &st) || !S_ISREG(st.st_mode))
				continue;
			if (compress && !strstr(f, ".gz")) {
				char gz[PATH_MAX + 4], buf[65536];
				gzFile out;
				ssize_t n;
				int fd = open(f, O_RDONLY | O_CLOEXEC);

				snprintf(gz, sizeof(gz), "%s.gz", f);
				out = fd >= 0 ? gzopen(gz, "wb9") : NULL;
				while (out && (n = read(fd, buf, sizeof(buf))) > 0)
					gzwrite(out, buf, (unsigned)n);
				if (fd >= 0)
					close(fd);
				if (!out || gzclose(out) != Z_OK) {
					unlink(gz);
					continue;
				}
			}
			if (unlink(f) == 0) {
				freed += (unsigned long long)st.st_size;
				cJSON_AddItemToArray(files, cJSON_CreateString(f));
			}
		}
		globfree(&gl);
	}
	j->info = cJSON_CreateObject();
	if (j->info) {
		cJSON_AddItemToObject(j->info, compress ? "compressed" : "removed", files);
		cJSON_AddNumberToObject(j->info, "freed_bytes", (double)freed);
	} else {
		cJSON_Delete(files);
	}
	if (!cJSON_GetArraySize(files)) {
		j->err = -ENOENT;
		snprintf(j->error, sizeof(j->error), "no file matches the cleanup globs");
	}
}

/* addr accepts a connection before deadline (util__now_ms); an unanswered SYN waits no longer. */
static bool tcp_ready(const char *addr, long long deadline)
{
	char host[128];
	const char *colon = strrchr(addr, ':');
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct pollfd pfd = { .events = POLLOUT };
	int fd, ok, soerr = 0;
	socklen_t len = sizeof(soerr);
	long long left;

	if (!colon)
		return false;
	snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return false;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return false;
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (!ok && errno == EINPROGRESS) {
		left = deadline - util__now_ms();
		pfd.fd = fd;
		ok = left > 0 && poll(&pfd, 1, (int)(left > 1000 ? 1000 : left)) == 1 &&
		     getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr == 0;
	}
	close(fd);
	return ok;
}

/* Ask the LLM for the cause (and a fix) with a compact, redacted context; any failure is recorded. */
static void run_llm_rca(struct job *j)
{
	struct llm_rca_file files[LLM_RCA_FILES_MAX] = { 0 };
	char *contents[LLM_RCA_FILES_MAX] = { 0 }, *prompt;
	struct llm_result r = { 0 };
	size_t nred = 0;
	int i;

	for (i = 0; i < j->n_rca_files; i++) {
		files[i].path = j->rca_files[i];
		if (patch__read_file(j->rca_files[i], LLM_RCA_FILE_BYTES * 4, &contents[i], &files[i].len) == 0)
			files[i].content = contents[i];
	}
	prompt = llm_rca__prompt(j->type, j->key, j->payload, files, j->n_rca_files, &nred);
	j->info = cJSON_CreateObject();
	if (!prompt) {
		j->err = -ENOMEM;
		goto out;
	}
	llm__complete(j->h->llm, llm_rca_system, prompt, LLM_BUDGET_MS, &r);
	free(prompt);
	if (j->info) {
		cJSON_AddBoolToObject(j->info, "llm_ok", r.ok);
		cJSON_AddNumberToObject(j->info, "llm_attempts", r.attempts);
		cJSON_AddNumberToObject(j->info, "llm_ms", (double)r.duration_ms);
		cJSON_AddStringToObject(j->info, "llm_request_id", r.request_id);
		cJSON_AddNumberToObject(j->info, "redacted", (double)nred);
	}
	if (!r.ok) {
		j->err = -EIO;
		snprintf(j->error, sizeof(j->error), "LLM failed: %s", r.error);
	} else if (llm_rca__parse(r.text, files, j->n_rca_files, &j->answer, j->error,
				  sizeof(j->error))) {
		j->err = -EBADMSG;
	}
	if (j->err && j->info)
		cJSON_AddStringToObject(j->info, "llm_error", j->error);
out:
	llm_result__free(&r);
	for (i = 0; i < j->n_rca_files; i++)
		free(contents[i]);
}

static void job_run(void *arg)
{
	struct job *j = arg;
	long long deadline;
	unsigned t;
	char err[256] = "";

	switch (j->kind) {
	case JOB_BUILD:
		run_build(j);
		break;
	case JOB_APPLY:
		if (j->plan.action == HEAL_ACT_CLEANUP) {
			run_cleanup(j);
			break;
		}
		if (util__mkdir_p(j->tr->backup_dir, 0700)) {
			j->err = -errno;
			break;
		}
		j->err = patch__apply(&j->tr->patch, j->tr->backup_dir, j->backup_id,
				      sizeof(j->backup_id), err, sizeof(err));
		snprintf(j->error, sizeof(j->error), "%s", err);
		break;
	case JOB_RESTORE:
		j->err = patch__restore(j->tr->backup_dir, j->tr->backup_id, err, sizeof(err));
		snprintf(j->error, sizeof(j->error), "%s", err);
		break;
	case JOB_RELOAD:
	case JOB_COMPILE:
		j->status = util__run(j->argv, j->timeout_ms, j->output, sizeof(j->output));
		j->err = j->status < 0 ? j->status : 0;
		break;
	case JOB_READY:
		deadline = util__now_ms() + j->timeout_ms;
		j->err = -ETIMEDOUT;
		/* most services listen within milliseconds: poll fast, then back off to 50 ms */
		for (t = 2; util__now_ms() < deadline; t = t < 25 ? t * 2 : 50) {
			if (tcp_ready(j->ready_addr, deadline)) {
				j->err = 0;
				break;
			}
			usleep(t * 1000u);
		}
		break;
	case JOB_LLM_RCA:
		run_llm_rca(j);
		break;
	case JOB_VERIFY:
		j->err = -EIO;
		for (t = 0; t < j->tries; t++) {
			j->attempt = (int)t + 1;
			j->status = util__run(j->argv, j->timeout_ms, j->output, sizeof(j->output));
			if (j->status >= 0 && WIFEXITED(j->status) && WEXITSTATUS(j->status) == 0) {
				j->err = 0;
				break;
			}
			if (t + 1 < j->tries)
				usleep(j->interval_ms * 1000u);
		}
		break;
	}
}

/* ---- the state machine ------------------------------------------------------------ */

static void next_plan(struct healer *h, struct trace *tr);
static void after_apply(struct healer *h, struct trace *tr);
static void start_verify(struct healer *h, struct trace *tr);
static void verify_failed(struct healer *h, struct trace *tr, const char *why);
static void reload_none(struct healer *h, struct trace *tr, const char *why);
static void llm_rca_done(struct healer *h, struct trace *tr, struct job *j);

static void finish(struct healer *h, struct trace *tr, const char *type, const char *why)
{
	struct sig_state *sig = sig_get(h, tr->key);
	struct heal_event *ev;
	long long now = util__now_ms();
	int i;

	ev = step(h, tr, type, strcmp(type, "HEALED") == 0 ? "success" : "error");
	if (ev) {
		cJSON_AddNumberToObject(ev->payload, "duration_ms", (double)(now - tr->started_ms));
		cJSON_AddNumberToObject(ev->payload, "repeats", tr->repeats);
		if (why)
			cJSON_AddStringToObject(ev->payload, "reason", why);
		{
			cJSON *tried = cJSON_AddArrayToObject(ev->payload, "tried");

			for (i = 0; tried && i < tr->n_tried; i++)
				cJSON_AddItemToArray(tried, cJSON_CreateString(tr->tried[i]));
		}
	}
	if (strcmp(type, "HEALED") == 0) {
		h->stats.healed++;
		sig->failures = 0;
		sig->next_ms = 0;
		remember(h, tr->key, tr->plans[tr->cur].playbook, true);
		snapshot_all(h, "verified");
	} else if (strcmp(type, "DRY_RUN") == 0) {
		/* nothing was tried: no outcome, no backoff */
	} else {
		unsigned long long backoff = h->cfg->limits.backoff_ms;

		for (i = 0; i < tr->n_tried; i++)
			remember(h, tr->key, tr->tried[i], false);
		sig->failures++;
		for (unsigned k = 1; k < sig->failures && backoff < h->cfg->limits.backoff_max_ms; k++)
			backoff *= 2;
		if (backoff > h->cfg->limits.backoff_max_ms)
			backoff = h->cfg->limits.backoff_max_ms;
		sig->next_ms = now + (long long)backoff;
		if (strcmp(type, "ESCALATED") == 0) {
			sig->escalated = true;
			sig->escalated_ms = now;
			h->stats.escalated++;
		} else {
			h->stats.failed++;
		}
		if (ev)
			cJSON_AddNumberToObject(ev->payload, "next_attempt_in_ms", (double)backoff);
	}
	if (tr->applied_files || strcmp(type, "HEALED") == 0) {
		struct closed_trace *c = &h->closed[h->next_closed];

		snprintf(c->id, sizeof(c->id), "%s", tr->id);
		snprintf(c->key, sizeof(c->key), "%s", tr->key);
		c->target_id = tr->t->id;
		h->next_closed = (h->next_closed + 1) % CLOSED_KEPT;
		if (h->n_closed < CLOSED_KEPT)
			h->n_closed++;
	}
	tr->st = T_DONE;
	tr->cur = tr->n_plans; /* step() no longer names a playbook */
	publish(h, ev);
	/* a target the heal left down is supervision's again */
	hold(h, tr, false);
	trace_unlink(h, tr);
}

/* The last plan failed: ESCALATED once the breaker trips, else HEAL_FAILED. */
static void give_up(struct healer *h, struct trace *tr, const char *why)
{
	struct sig_state *sig = sig_get(h, tr->key);

	if (sig->failures + 1 >= h->cfg->limits.breaker_failures)
		finish(h, tr, "ESCALATED", why);
	else
		finish(h, tr, "HEAL_FAILED", why);
}

static void plan_failed(struct healer *h, struct trace *tr, const char *why)
{
	if (why != tr->fail_reason)
		snprintf(tr->fail_reason, sizeof(tr->fail_reason), "%s", why);
	tr->cur++;
	next_plan(h, tr);
}

static void apply(struct healer *h, struct trace *tr)
{
	const struct rca_plan *p = &tr->plans[tr->cur];
	const struct heal_target *dep;
	struct heal_event *ev;
	struct job *j;
	int e;

	tr->st = T_APPLYING;
	switch (p->action) {
	case HEAL_ACT_RESTORE_KNOWN_GOOD:
	case HEAL_ACT_JSON_SET:
	case HEAL_ACT_LLM_PATCH:
	case HEAL_ACT_CLEANUP:
		j = calloc(1, sizeof(*j));
		if (!j || (j->plan = *p, submit(h, tr, JOB_APPLY, j)))
			plan_failed(h, tr, "worker queue full");
		return;
	case HEAL_ACT_RAISE_NOFILE: {
		const cJSON *pid = cJSON_GetObjectItem(tr->failure, "pid");
		struct rlimit nl;

		tr->nofile_pid = cJSON_IsNumber(pid) ? (pid_t)pid->valuedouble : 0;
		if (tr->nofile_pid <= 0 || prlimit(tr->nofile_pid, RLIMIT_NOFILE, NULL, &tr->old_nofile)) {
			plan_failed(h, tr, "the failing process is gone: its limit cannot be raised");
			return;
		}
		nl.rlim_cur = p->pb && p->pb->limit ? p->pb->limit : tr->old_nofile.rlim_cur * 4;
		if (nl.rlim_cur < 1024)
			nl.rlim_cur = 1024;
		nl.rlim_max = tr->old_nofile.rlim_max > nl.rlim_cur ? tr->old_nofile.rlim_max : nl.rlim_cur;
		if (prlimit(tr->nofile_pid, RLIMIT_NOFILE, &nl, NULL)) {
			plan_failed(h, tr, "prlimit failed");
			return;
		}
		tr->nofile_set = true;
		ev = step(h, tr, "PATCH_APPLIED", "action");
		if (ev) {
			cJSON_AddStringToObject(ev->payload, "action", "raise_nofile");
			cJSON_AddNumberToObject(ev->payload, "pid", tr->nofile_pid);
			cJSON_AddNumberToObject(ev->payload, "old_limit", (double)tr->old_nofile.rlim_cur);
			cJSON_AddNumberToObject(ev->payload, "new_limit", (double)nl.rlim_cur);
		}
		publish(h, ev);
		reload_none(h, tr, "the live process uses its new limit at once");
		return;
	}
	case HEAL_ACT_RESTART:
	case HEAL_ACT_RESTART_DEPENDENCY:
		dep = p->action == HEAL_ACT_RESTART ? tr->t : config__target_by_name(h->cfg, p->dep_target);
		if (!dep) {
			plan_failed(h, tr, "no such dependency target");
			return;
		}
		ev = step(h, tr, "PATCH_APPLIED", "action");
		if (ev) {
			cJSON_AddStringToObject(ev->payload, "action", config__action_name(p->action));
			cJSON_AddStringToObject(ev->payload, "restarting", dep->name);
		}
		publish(h, ev);
		/* waiting before asking: a target that is already down restarts (and calls back) at once */
		tr->st = T_RELOADING;
		tr->busy = true; /* until healer__on_restart */
		e = targets__restart(h->targets, dep->id, dep->reload.stop_timeout_ms);
		if (e) {
			tr->busy = false;
			verify_failed(h, tr, e == -EOPNOTSUPP ? "the target is not supervised by heald" :
								"the restart was refused");
		}
		return;
	}
}

static void plan_ready(struct healer *h, struct trace *tr, struct job *j)
{
	const struct rca_plan *p = &tr->plans[tr->cur];
	struct heal_event *ev;
	cJSON *verdicts;
	size_t i;

	ev = step(h, tr, j && j->err == -EPERM ? "PATCH_BLOCKED" : "PATCH_READY",
		  j && j->err == -EPERM ? "error" : "diff");
	if (ev) {
		cJSON_AddStringToObject(ev->payload, "action", config__action_name(p->action));
		cJSON_AddNumberToObject(ev->payload, "risk", p->risk);
		if (j && j->diff)
			cJSON_AddStringToObject(ev->payload, "diff", j->diff);
		if (j && j->patch.n) {
			cJSON *files = cJSON_AddArrayToObject(ev->payload, "files");

			for (i = 0; files && i < j->patch.n; i++)
				cJSON_AddItemToArray(files, cJSON_CreateString(j->patch.files[i].path));
			cJSON_AddNumberToObject(ev->payload, "lines", (double)patch__changed_lines(&j->patch));
		}
		if (j && j->n_verdicts) {
			verdicts = cJSON_AddArrayToObject(ev->payload, "guardrails");
			for (i = 0; verdicts && i < j->n_verdicts; i++) {
				cJSON *v = cJSON_CreateObject();

				cJSON_AddStringToObject(v, "rule", j->verdicts[i].rule);
				cJSON_AddBoolToObject(v, "ok", j->verdicts[i].ok);
				cJSON_AddStringToObject(v, "reason", j->verdicts[i].reason);
				cJSON_AddItemToArray(verdicts, v);
			}
		}
		if (j && j->err == -EPERM && j->blocked_by) {
			cJSON_AddStringToObject(ev->payload, "rule", j->blocked_by);
			for (i = 0; i < j->n_verdicts; i++)
				if (!j->verdicts[i].ok) {
					cJSON_AddStringToObject(ev->payload, "reason", j->verdicts[i].reason);
					break;
				}
		}
		if (j && j->info) {
			cJSON *it;

			cJSON_ArrayForEach(it, j->info)
				cJSON_AddItemToObject(ev->payload, it->string, cJSON_Duplicate(it, 1));
		}
	}
	publish(h, ev);
	if (j && j->err == -EPERM) {
		h->stats.blocked++;
		plan_failed(h, tr, "blocked by the guardrails");
		return;
	}
	if (j) {
		/* the trace owns the patch from here on */
		patch__free(&tr->patch);
		tr->patch = j->patch;
		memset(&j->patch, 0, sizeof(j->patch));
	}
	if (h->mode == HEAL_MODE_DRY_RUN) {
		finish(h, tr, "DRY_RUN", "dry-run: diagnosed and planned, nothing changed");
		return;
	}
	if (h->mode == HEAL_MODE_APPROVE && p->risk > h->cfg->approve_above) {
		ev = step(h, tr, "APPROVAL_REQUIRED", "approval");
		if (ev) {
			cJSON_AddNumberToObject(ev->payload, "risk", p->risk);
			cJSON_AddNumberToObject(ev->payload, "approve_above", h->cfg->approve_above);
			cJSON_AddStringToObject(ev->payload, "how", "healctl approve TRACE | healctl reject TRACE");
		}
		publish(h, ev);
		tr->st = T_AWAIT_APPROVAL;
		hold(h, tr, false); /* a person may take hours: the target must not wait for them */
		return;
	}
	apply(h, tr);
}

static void next_plan(struct healer *h, struct trace *tr)
{
	const struct rca_plan *p;
	struct heal_event *ev;
	struct job *j;

	if (tr->cur >= tr->n_plans) {
		give_up(h, tr, tr->fail_reason[0] ? tr->fail_reason : "no playbook healed it");
		return;
	}
	p = &tr->plans[tr->cur];
	if (tr->n_tried < RCA_MAX_PLANS) {
		memcpy(tr->tried[tr->n_tried], p->playbook, sizeof(tr->tried[0]));
		tr->tried[tr->n_tried++][sizeof(tr->tried[0]) - 1] = 0;
	}
	patch__free(&tr->patch);
	memset(&tr->patch, 0, sizeof(tr->patch));
	tr->applied_files = false;
	tr->nofile_set = false;
	tr->recurred = false;
	ev = step(h, tr, "PATCH_REQUESTED", "plan");
	if (ev) {
		cJSON_AddStringToObject(ev->payload, "action", config__action_name(p->action));
		cJSON_AddStringToObject(ev->payload, "cause", p->cause);
		cJSON_AddNumberToObject(ev->payload, "attempt", tr->cur + 1);
	}
	publish(h, ev);
	tr->st = T_BUILDING;
	switch (p->action) {
	case HEAL_ACT_RESTORE_KNOWN_GOOD:
	case HEAL_ACT_JSON_SET:
	case HEAL_ACT_LLM_PATCH:
		j = calloc(1, sizeof(*j));
		if (!j || (j->plan = *p, submit(h, tr, JOB_BUILD, j)))
			plan_failed(h, tr, "worker queue full");
		return;
	default:
		plan_ready(h, tr, NULL);
		return;
	}
}

/* The failure killed the supervised main process: gone, or going (a core dump can take long). */
static bool main_process_died(struct healer *h, const struct trace *tr)
{
	const cJSON *pid = cJSON_GetObjectItem(tr->failure, "pid");
	pid_t main_pid = targets__main_pid(h->targets, tr->t->id);

	return (!strcmp(tr->type, "CRASH") || !strcmp(tr->type, "OOM_KILL") ||
		!strcmp(tr->type, "EXIT_FAILURE")) &&
	       main_pid > 0 && cJSON_IsNumber(pid) && (pid_t)pid->valuedouble == main_pid;
}

/* The patch in place (or just rolled back) touches code: the target must be rebuilt and restarted. */
static bool touches_code(const struct trace *tr)
{
	size_t i;

	for (i = 0; i < tr->patch.n; i++) {
		const char *dot = strrchr(tr->patch.files[i].path, '.');

		if (dot && (!strcmp(dot, ".c") || !strcmp(dot, ".h") || !strcmp(dot, ".cc") ||
			    !strcmp(dot, ".cpp")))
			return true;
	}
	return false;
}

static void reload(struct healer *h, struct trace *tr)
{
	const struct heal_target *t = tr->t;
	struct heal_event *ev;
	struct job *j;
	bool code = tr->applied_files && touches_code(tr);
	int e;

	tr->st = T_RELOADING;
	/* after a code patch: build first (its failure fails the heal and rolls back), then restart */
	if (code && t->build && !tr->built) {
		j = calloc(1, sizeof(*j));
		if (j) {
			j->argv = t->build;
			j->timeout_ms = 300000;
			if (submit(h, tr, JOB_COMPILE, j) == 0)
				return;
		}
	}
	tr->built = false;
	/* a supervised target that is not running (it crashed) is started, whatever the config
	 * says; one whose death is not reaped yet is waited for first (a signal would go nowhere) */
	if (t->exec && (t->reload.restart || code || targets__main_pid(h->targets, t->id) == 0 ||
			main_process_died(h, tr))) {
		tr->busy = true; /* before asking: a stopped target restarts and calls back at once */
		e = targets__restart(h->targets, t->id, t->reload.stop_timeout_ms);
		if (e == 0)
			return;
		tr->busy = false;
	}
	if (t->reload.command) {
		j = calloc(1, sizeof(*j));
		if (j) {
			j->argv = t->reload.command;
			j->timeout_ms = 30000;
			if (submit(h, tr, JOB_RELOAD, j) == 0)
				return;
		}
	}
	ev = step(h, tr, "RELOAD_DONE", "reload");
	if (ev) {
		if (t->reload.signal > 0) {
			e = targets__signal(h->targets, t->id, t->reload.signal);
			cJSON_AddStringToObject(ev->payload, "how", "signal");
			cJSON_AddNumberToObject(ev->payload, "signal", t->reload.signal);
			cJSON_AddNumberToObject(ev->payload, "processes", e > 0 ? e : 0);
		} else {
			cJSON_AddStringToObject(ev->payload, "how", "none");
		}
	}
	publish(h, ev);
	after_apply(h, tr);
}

/* After the change and its reload: verify, or (rolling back) report the rollback. */
static void after_apply(struct healer *h, struct trace *tr);

/* An action the live process picks up by itself (a new limit, free space): the reload is a no-op. */
static void reload_none(struct healer *h, struct trace *tr, const char *why)
{
	struct heal_event *ev = step(h, tr, "RELOAD_DONE", "reload");

	if (ev) {
		cJSON_AddStringToObject(ev->payload, "how", "none");
		cJSON_AddStringToObject(ev->payload, "why", why);
	}
	publish(h, ev);
	after_apply(h, tr);
}

static void after_apply(struct healer *h, struct trace *tr)
{
	struct heal_event *ev;

	if (tr->rolling_back) {
		tr->rolling_back = false;
		ev = step(h, tr, "ROLLBACK_DONE", "rollback");
		if (ev) {
			cJSON_AddBoolToObject(ev->payload, "restored", tr->applied_files || tr->nofile_set);
			if (tr->backup_id[0])
				cJSON_AddStringToObject(ev->payload, "backup_id", tr->backup_id);
		}
		publish(h, ev);
		h->stats.rolled_back++;
		plan_failed(h, tr, tr->fail_reason);
		return;
	}
	tr->watch_from_ms = util__now_ms();
	start_verify(h, tr);
}

static void start_verify(struct healer *h, struct trace *tr)
{
	const struct heal_verify *v = &tr->t->verify;
	struct job *j;

	tr->st = T_VERIFYING;
	if (v->command) {
		j = calloc(1, sizeof(*j));
		if (j) {
			j->argv = v->command;
			j->tries = v->tries;
			j->interval_ms = v->interval_ms;
			j->timeout_ms = v->timeout_ms;
			if (submit(h, tr, JOB_VERIFY, j) == 0)
				return;
		}
	}
	/* no command (or no worker): the recurrence window alone decides */
	tr->st = T_WINDOW;
	tr->window_end_ms = util__now_ms() + v->window_ms;
}

static void rollback(struct healer *h, struct trace *tr)
{
	struct job *j;

	tr->st = T_ROLLING_BACK;
	tr->rolling_back = true;
	if (tr->applied_files) {
		j = calloc(1, sizeof(*j));
		if (j && submit(h, tr, JOB_RESTORE, j) == 0)
			return;
		log_error("trace %s: cannot queue the rollback", tr->id);
	}
	if (tr->nofile_set) {
		prlimit(tr->nofile_pid, RLIMIT_NOFILE, &tr->old_nofile, NULL);
		after_apply(h, tr);
		return;
	}
	after_apply(h, tr); /* restarts and cleanups have nothing to undo */
}

static void verify_failed(struct healer *h, struct trace *tr, const char *why)
{
	struct heal_event *ev = step(h, tr, "VERIFY_FAIL", "error");

	if (ev)
		cJSON_AddStringToObject(ev->payload, "reason", why);
	publish(h, ev);
	snprintf(tr->fail_reason, sizeof(tr->fail_reason), "%s", why);
	rollback(h, tr);
}

static void job_done(void *arg)
{
	struct job *j = arg;
	struct healer *h = j->h;
	struct trace *tr = j->tr;
	struct heal_event *ev;
	char why[600];

	tr->busy = false;
	if (tr->dead) {
		trace_free(tr);
		job_free(j);
		return;
	}
	switch (j->kind) {
	case JOB_BUILD:
		if (j->err && j->err != -EPERM) {
			ev = step(h, tr, "PATCH_BLOCKED", "error");
			if (ev) {
				cJSON_AddStringToObject(ev->payload, "rule", "build");
				cJSON_AddStringToObject(ev->payload, "reason", j->error[0] ? j->error :
										  strerror(-j->err));
				if (j->info) {
					cJSON *it;

					cJSON_ArrayForEach(it, j->info)
						cJSON_AddItemToObject(ev->payload, it->string,
								      cJSON_Duplicate(it, 1));
				}
			}
			publish(h, ev);
			plan_failed(h, tr, j->error[0] ? j->error : "the patch could not be built");
			break;
		}
		plan_ready(h, tr, j);
		break;
	case JOB_APPLY:
		if (j->err) {
			snprintf(why, sizeof(why), "apply failed: %s", j->error[0] ? j->error : strerror(-j->err));
			plan_failed(h, tr, why);
			break;
		}
		ev = step(h, tr, "PATCH_APPLIED", "diff");
		if (ev) {
			cJSON_AddStringToObject(ev->payload, "action",
						config__action_name(tr->plans[tr->cur].action));
			if (j->backup_id[0]) {
				snprintf(tr->backup_id, sizeof(tr->backup_id), "%s", j->backup_id);
				tr->applied_files = true;
				cJSON_AddStringToObject(ev->payload, "backup_id", j->backup_id);
				cJSON_AddStringToObject(ev->payload, "backup_dir", tr->backup_dir);
			}
			if (j->info) {
				cJSON *it;

				cJSON_ArrayForEach(it, j->info)
					cJSON_AddItemToObject(ev->payload, it->string, cJSON_Duplicate(it, 1));
			}
		}
		publish(h, ev);
		if (tr->plans[tr->cur].action == HEAL_ACT_CLEANUP) {
			reload_none(h, tr, "the process retries its writes");
		} else {
			reload(h, tr);
		}
		break;
	case JOB_RESTORE:
		if (j->err)
			log_error("trace %s: rollback of %s failed: %s", tr->id, tr->backup_id, j->error);
		else
			tr->applied_files = true; /* report restored: the backup's bytes are back */
		reload(h, tr);
		break;
	case JOB_RELOAD:
		ev = step(h, tr, "RELOAD_DONE", "reload");
		if (ev) {
			cJSON_AddStringToObject(ev->payload, "how", "command");
			cJSON_AddNumberToObject(ev->payload, "exit_code",
						j->status >= 0 && WIFEXITED(j->status) ? WEXITSTATUS(j->status) : -1);
			add_output(ev->payload, "output", j->output);
		}
		publish(h, ev);
		after_apply(h, tr);
		break;
	case JOB_READY:
		ev = step(h, tr, "RELOAD_DONE", "reload");
		if (ev) {
			cJSON_AddStringToObject(ev->payload, "how", "restart");
			cJSON_AddBoolToObject(ev->payload, "ready", j->err == 0);
		}
		publish(h, ev);
		after_apply(h, tr);
		break;
	case JOB_LLM_RCA:
		llm_rca_done(h, tr, j);
		break;
	case JOB_COMPILE:
		tr->built = true;
		if (j->status < 0 || !WIFEXITED(j->status) || WEXITSTATUS(j->status) != 0) {
			snprintf(why, sizeof(why), "the build failed: %.400s", j->output);
			if (tr->rolling_back) {
				/* the old code does not build either: keep going, say so */
				log_error("trace %s: rebuilding the rolled-back code failed", tr->id);
				reload(h, tr);
			} else {
				verify_failed(h, tr, why);
			}
			break;
		}
		reload(h, tr);
		break;
	case JOB_VERIFY:
		if (j->err) {
			snprintf(why, sizeof(why), "verify command failed after %d tries: %.400s", j->attempt,
				 j->output);
			verify_failed(h, tr, why);
			break;
		}
		if (tr->recurred) {
			verify_failed(h, tr, "the failure recurred after the change");
			break;
		}
		tr->st = T_WINDOW;
		tr->window_end_ms = util__now_ms() + tr->t->verify.window_ms;
		break;
	}
	job_free(j);
}

void healer__on_restart(void *ctx, uint32_t target_id, int pid_or_err)
{
	struct healer *h = ctx;
	struct trace *tr, *next;

	for (tr = h->traces; tr; tr = next) {
		const struct rca_plan *p;
		const struct heal_target *waited;
		struct heal_event *ev;
		struct job *j;

		next = tr->next;
		if (tr->st != T_RELOADING && tr->st != T_ROLLING_BACK)
			continue;
		p = tr->cur < tr->n_plans ? &tr->plans[tr->cur] : NULL;
		waited = p && p->action == HEAL_ACT_RESTART_DEPENDENCY ?
				 config__target_by_name(h->cfg, p->dep_target) : tr->t;
		if (!waited || waited->id != target_id || !tr->busy)
			continue;
		tr->busy = false;
		if (pid_or_err < 0) {
			ev = step(h, tr, "RELOAD_DONE", "error");
			if (ev) {
				cJSON_AddStringToObject(ev->payload, "how", "restart");
				cJSON_AddStringToObject(ev->payload, "error", strerror(-pid_or_err));
			}
			publish(h, ev);
			verify_failed(h, tr, "the restart failed");
			continue;
		}
		if (waited->ready_tcp) {
			j = calloc(1, sizeof(*j));
			if (j) {
				snprintf(j->ready_addr, sizeof(j->ready_addr), "%s", waited->ready_tcp);
				j->timeout_ms = waited->ready_timeout_ms;
				if (submit(h, tr, JOB_READY, j) == 0)
					continue;
			}
		}
		ev = step(h, tr, "RELOAD_DONE", "reload");
		if (ev) {
			cJSON_AddStringToObject(ev->payload, "how", "restart");
			cJSON_AddNumberToObject(ev->payload, "pid", pid_or_err);
		}
		publish(h, ev);
		after_apply(h, tr);
	}
}

/* Publish the analysis and start on the best plan. */
static void rca_ready(struct healer *h, struct trace *tr, const char *source, const cJSON *info)
{
	struct heal_event *rca;
	int i;

	tr->cur = 0;
	rca = step(h, tr, "RCA_READY", "reasoning");
	if (rca) {
		cJSON *alts = cJSON_CreateArray(), *it;

		cJSON_AddStringToObject(rca->payload, "failure_type", tr->failure_type);
		if (tr->n_plans) {
			cJSON_AddStringToObject(rca->payload, "cause", tr->plans[0].cause);
			cJSON_AddNumberToObject(rca->payload, "confidence", tr->plans[0].confidence);
			cJSON_AddNumberToObject(rca->payload, "risk", tr->plans[0].risk);
		} else {
			cJSON_AddStringToObject(rca->payload, "cause", "no playbook matches this failure");
			cJSON_AddNumberToObject(rca->payload, "confidence", 0);
		}
		for (i = 0; alts && i < tr->n_plans; i++) {
			cJSON *a = cJSON_CreateObject();

			cJSON_AddStringToObject(a, "playbook", tr->plans[i].playbook);
			cJSON_AddNumberToObject(a, "confidence", tr->plans[i].confidence);
			cJSON_AddNumberToObject(a, "risk", tr->plans[i].risk);
			cJSON_AddItemToArray(alts, a);
		}
		cJSON_AddItemToObject(rca->payload, "plans", alts);
		cJSON_AddStringToObject(rca->payload, "source", source);
		cJSON_ArrayForEach(it, info)
			cJSON_AddItemToObject(rca->payload, it->string, cJSON_Duplicate(it, 1));
	}
	publish(h, rca);
	if (!tr->n_plans) {
		finish(h, tr, "ESCALATED", "no playbook for this failure: a person has to look");
		return;
	}
	next_plan(h, tr);
}

/* Queue the LLM's analysis of tr; 0 when queued (rca_ready follows from its completion). */
static int ask_llm(struct healer *h, struct trace *tr, const struct heal_event *ev,
		   const struct rca_env *env)
{
	char changed[RCA_MAX_FILES][PATH_MAX];
	struct job *j = calloc(1, sizeof(*j));
	int n, i;

	if (!j)
		return -ENOMEM;
	/* what the model sees: the files changed since known good, else the target's allowlisted ones */
	n = changed_files(h, tr->t, changed, RCA_MAX_FILES);
	for (i = 0; i < n && j->n_rca_files < LLM_RCA_FILES_MAX; i++)
		snprintf(j->rca_files[j->n_rca_files++], PATH_MAX, "%s", changed[i]);
	for (i = 0; n <= 0 && i < h->n_tracked && j->n_rca_files < LLM_RCA_FILES_MAX; i++)
		if (env->allowed(h, tr->t, h->tracked[i]))
			snprintf(j->rca_files[j->n_rca_files++], PATH_MAX, "%s", h->tracked[i]);
	snprintf(j->key, sizeof(j->key), "%s", ev->key);
	snprintf(j->type, sizeof(j->type), "%s", ev->type);
	j->payload = cJSON_Duplicate(ev->payload, 1);
	tr->st = T_PLANNING;
	return submit(h, tr, JOB_LLM_RCA, j);
}

/* The LLM answered (or not): its plan goes first when it proposes a change; else the playbooks. */
static void llm_rca_done(struct healer *h, struct trace *tr, struct job *j)
{
	struct rca_plan *p;

	if (j->err || !j->answer.content) {
		if (!j->err && j->info)
			cJSON_AddStringToObject(j->info, "llm_cause", j->answer.cause);
		rca_ready(h, tr, "playbooks", j->info);
		return;
	}
	if (tr->n_plans == RCA_MAX_PLANS)
		tr->n_plans--;
	memmove(&tr->plans[1], &tr->plans[0], (size_t)tr->n_plans * sizeof(tr->plans[0]));
	tr->n_plans++;
	p = &tr->plans[0];
	memset(p, 0, sizeof(*p));
	p->action = HEAL_ACT_LLM_PATCH;
	snprintf(p->playbook, sizeof(p->playbook), "llm_rca");
	snprintf(p->cause, sizeof(p->cause), "%s", j->answer.cause);
	p->confidence = j->answer.confidence;
	p->risk = j->answer.risk;
	snprintf(p->files[0], PATH_MAX, "%s", j->answer.file);
	p->n_files = 1;
	free(tr->llm_content);
	tr->llm_content = j->answer.content;
	j->answer.content = NULL;
	rca_ready(h, tr, "llm", j->info);
}

static void open_trace(struct healer *h, struct heal_event *ev, const struct heal_target *t)
{
	struct rca_env env = { .changed_files = changed_files, .allowed = allowed_cb,
			       .history = history_cb, .llm = h->llm != NULL, .ctx = h };
	struct sig_state *sig = sig_get(h, ev->key);
	long long now = util__now_ms();
	struct trace *tr;

	if (sig->escalated && now - sig->escalated_ms < (long long)h->cfg->limits.breaker_reset_ms) {
		h->stats.suppressed++; /* the breaker is open: a person has it */
		sig->escalated_ms = now; /* and the healthy period that closes it starts over */
		return;
	}
	if (sig->escalated) {
		sig->escalated = false; /* healthy long enough: the breaker closes */
		sig->failures = 0;
	}
	if (now < sig->next_ms) {
		h->stats.suppressed++;
		return;
	}
	if (now - h->hour_start_ms > 3600000) {
		h->hour_start_ms = now;
		h->heals_this_hour = 0;
	}
	if (now - sig->hour_start_ms > 3600000) {
		sig->hour_start_ms = now;
		sig->heals_this_hour = 0;
	}
	if (h->heals_this_hour >= h->cfg->limits.heals_per_hour ||
	    sig->heals_this_hour >= h->cfg->limits.per_signature_per_hour) {
		h->stats.suppressed++;
		log_warn("not healing %s: rate limit reached", ev->key);
		return;
	}
	tr = calloc(1, sizeof(*tr));
	if (!tr)
		return;
	h->heals_this_hour++;
	sig->heals_this_hour++;
	snprintf(tr->id, sizeof(tr->id), "tr-%llx-%llu", (unsigned long long)ev->ts_us, ++h->seq);
	snprintf(tr->key, sizeof(tr->key), "%s", ev->key);
	snprintf(tr->type, sizeof(tr->type), "%s", ev->type);
	snprintf(tr->backup_dir, sizeof(tr->backup_dir), "%s/%s", h->backups, tr->id);
	tr->t = t;
	tr->failure = cJSON_Duplicate(ev->payload, 1);
	tr->started_ms = tr->step_ms = now;
	snprintf(ev->trace_id, sizeof(ev->trace_id), "%s", tr->id);
	tr->next = h->traces;
	h->traces = tr;
	h->n_open++;
	/* a heal that opens for the death of a supervised process restarts it: supervision must not
	 * start it first (a race, and a verify that proves nothing) */
	hold(h, tr, is_death_type(ev->type) && t->exec);

	tr->n_plans = rca__plan(h->cfg, t, ev, &env, tr->plans, RCA_MAX_PLANS);
	tr->cur = 0;
	snprintf(tr->failure_type, sizeof(tr->failure_type), "%s", ev->type);
	/* no confident playbook: ask the LLM first, off the loop; the playbooks stay the fallback */
	if (h->llm && (!tr->n_plans || tr->plans[0].confidence < LLM_RCA_BELOW) &&
	    ask_llm(h, tr, ev, &env) == 0)
		return;
	rca_ready(h, tr, "playbooks", NULL);
}

void healer__on_event(struct heal_event *ev, void *ctx)
{
	struct healer *h = ctx;
	const struct heal_target *t;
	struct trace *tr;

	if (!is_failure_type(ev->type) || ev->trace_id[0] || h->mode == HEAL_MODE_OBSERVE)
		return;
	t = config__target_by_name(h->cfg, pstr(ev->payload, "target") ? pstr(ev->payload, "target") : "");
	if (!t)
		return;
	tr = trace_by_key(h, ev->key);
	if (tr) {
		/* the same failure again while its heal is open: counted, not healed again */
		snprintf(ev->trace_id, sizeof(ev->trace_id), "%s", tr->id);
		tr->repeats++;
		h->stats.repeats++;
		if (tr->watch_from_ms && (tr->st == T_VERIFYING || tr->st == T_WINDOW) &&
		    util__now_ms() >= tr->watch_from_ms)
			tr->recurred = true;
		return;
	}
	if (h->paused) {
		h->stats.suppressed++; /* paused by a person: seen, counted, not healed */
		return;
	}
	open_trace(h, ev, t);
}

static void read_control(struct healer *h)
{
	struct dirent *de;
	DIR *d = opendir(h->control);

	if (!d)
		return;
	while ((de = readdir(d))) {
		char path[PATH_MAX + 300], id[HEAL_TRACE_ID_LEN];
		const char *dot = strrchr(de->d_name, '.');
		bool approve;

		if (!dot || de->d_name[0] == '.')
			continue;
		if (strcmp(dot, ".approve") == 0)
			approve = true;
		else if (strcmp(dot, ".reject") == 0)
			approve = false;
		else
			continue;
		snprintf(id, sizeof(id), "%.*s", (int)(dot - de->d_name), de->d_name);
		snprintf(path, sizeof(path), "%s/%s", h->control, de->d_name);
		unlink(path);
		if (healer__decide(h, id, approve, "healctl"))
			log_warn("healctl %s %s: no such trace waiting for approval",
				 approve ? "approve" : "reject", id);
	}
	closedir(d);
}

void healer__tick(struct healer *h)
{
	read_control(h);
	healer__windows(h);
}

long long healer__next_deadline_ms(const struct healer *h)
{
	const struct trace *tr;
	long long next = 0;

	for (tr = h->traces; tr; tr = tr->next)
		if (tr->st == T_WINDOW && (!next || tr->window_end_ms < next))
			next = tr->window_end_ms;
	return next;
}

void healer__windows(struct healer *h)
{
	long long now = util__now_ms();
	struct trace *tr, *next;
	struct heal_event *ev;

	for (tr = h->traces; tr; tr = next) {
		next = tr->next;
		if (tr->st != T_WINDOW)
			continue;
		if (tr->recurred) {
			verify_failed(h, tr, "the failure recurred within the verify window");
			continue;
		}
		if (now < tr->window_end_ms)
			continue;
		ev = step(h, tr, "VERIFY_PASS", "success");
		if (ev) {
			cJSON_AddNumberToObject(ev->payload, "window_ms", tr->t->verify.window_ms);
			cJSON_AddBoolToObject(ev->payload, "command", tr->t->verify.command != NULL);
		}
		publish(h, ev);
		finish(h, tr, "HEALED", NULL);
	}
}

int healer__decide(struct healer *h, const char *trace_id, bool approve, const char *who)
{
	struct trace *tr = trace_by_id(h, trace_id);
	struct heal_event *ev;

	if (!tr)
		return -ENOENT;
	if (tr->st != T_AWAIT_APPROVAL)
		return -EINVAL;
	ev = step(h, tr, approve ? "APPROVED" : "REJECTED", "approval");
	if (ev)
		cJSON_AddStringToObject(ev->payload, "by", who);
	publish(h, ev);
	if (approve) {
		hold(h, tr, is_death_type(tr->type) && tr->t->exec);
		apply(h, tr);
	} else {
		finish(h, tr, "HEAL_FAILED", "rejected by a person");
	}
	return 0;
}

/* ---- a person's rollback of a finished heal ---------------------------------------- */

struct manual_job {
	struct healer *h;
	struct closed_trace c;
	char dir[PATH_MAX + 64];
	int restored, failed;
	char err[256];
};

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void manual_run(void *arg)
{
	struct manual_job *m = arg;
	char *ids[16];
	struct dirent *de;
	int n = 0, i;
	DIR *d = opendir(m->dir);

	if (!d) {
		snprintf(m->err, sizeof(m->err), "no backup for this heal");
		return;
	}
	while ((de = readdir(d)) && n < 16)
		if (de->d_name[0] != '.')
			ids[n++] = strdup(de->d_name);
	closedir(d);
	qsort(ids, (size_t)n, sizeof(ids[0]), cmp_names);
	/* newest first: every change of the heal is undone, back to what was there before it */
	for (i = n - 1; i >= 0; i--) {
		if (ids[i] && patch__restore(m->dir, ids[i], m->err, sizeof(m->err)) == 0)
			m->restored++;
		else
			m->failed++;
		free(ids[i]);
	}
}

static void manual_done(void *arg)
{
	struct manual_job *m = arg;
	struct healer *h = m->h;
	const struct heal_target *t = config__target_by_id(h->cfg, m->c.target_id);
	struct heal_event *ev = event__new("ROLLBACK_DONE");

	if (t && m->restored) {
		/* the restored files take effect the way the target reloads */
		if (t->exec && t->reload.restart)
			targets__restart(h->targets, t->id, t->reload.stop_timeout_ms);
		else if (t->reload.signal > 0)
			targets__signal(h->targets, t->id, t->reload.signal);
	}
	if (ev) {
		snprintf(ev->key, sizeof(ev->key), "%s", m->c.key);
		snprintf(ev->trace_id, sizeof(ev->trace_id), "%s", m->c.id);
		ev->ui_hint = "rollback";
		cJSON_AddStringToObject(ev->payload, "target", t ? t->name : "?");
		cJSON_AddBoolToObject(ev->payload, "manual", 1);
		cJSON_AddNumberToObject(ev->payload, "restored", m->restored);
		cJSON_AddNumberToObject(ev->payload, "failed", m->failed);
		if (m->err[0])
			cJSON_AddStringToObject(ev->payload, "error", m->err);
		publish(h, ev);
	}
	if (m->restored)
		h->stats.rolled_back++;
	free(m);
}

int healer__rollback(struct healer *h, const char *trace_id)
{
	struct manual_job *m;
	int i;

	if (trace_by_id(h, trace_id))
		return -EBUSY; /* still healing: its own rollback runs if the fix does not hold */
	for (i = 0; i < h->n_closed; i++)
		if (strcmp(h->closed[i].id, trace_id) == 0)
			break;
	if (i == h->n_closed)
		return -ENOENT;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->h = h;
	m->c = h->closed[i];
	snprintf(m->dir, sizeof(m->dir), "%s/%s", h->backups, trace_id);
	if (worker__submit(h->worker, manual_run, manual_done, m)) {
		free(m);
		return -EAGAIN;
	}
	return 0;
}

void healer__set_mode(struct healer *h, enum heal_mode mode)
{
	h->mode = mode;
}

enum heal_mode healer__mode(const struct healer *h)
{
	return h->mode;
}

void healer__pause(struct healer *h, bool paused)
{
	h->paused = paused;
}

bool healer__paused(const struct healer *h)
{
	return h->paused;
}

void healer__stats(const struct healer *h, struct healer_stats *st)
{
	*st = h->stats;
	st->open_traces = h->n_open;
}

/* ---- recovery ------------------------------------------------------------------ */

struct seen_trace {
	char id[HEAL_TRACE_ID_LEN];
	char key[HEAL_KEY_LEN];
	char target[64];
	char playbook[64];
	bool terminal;
};

struct recover_ctx {
	struct healer *h;
	struct seen_trace *v;
	size_t n, cap;
};

static struct seen_trace *seen(struct recover_ctx *rc, const char *id)
{
	size_t i;

	for (i = rc->n; i-- > 0;)
		if (strcmp(rc->v[i].id, id) == 0)
			return &rc->v[i];
	if (rc->n == rc->cap) {
		size_t cap = rc->cap ? rc->cap * 2 : 64;
		struct seen_trace *v = realloc(rc->v, cap * sizeof(*v));

		if (!v)
			return NULL;
		rc->v = v;
		rc->cap = cap;
	}
	memset(&rc->v[rc->n], 0, sizeof(rc->v[0]));
	snprintf(rc->v[rc->n].id, sizeof(rc->v[0].id), "%s", id);
	return &rc->v[rc->n++];
}

static int recover_line(const char *line, void *ctx)
{
	struct recover_ctx *rc = ctx;
	cJSON *o = cJSON_Parse(line);
	const char *type, *id, *pb;
	struct seen_trace *s;

	if (!o)
		return 0;
	type = cJSON_GetStringValue(cJSON_GetObjectItem(o, "type"));
	id = cJSON_GetStringValue(cJSON_GetObjectItem(o, "trace_id"));
	if (type && id && (s = seen(rc, id))) {
		const cJSON *p = cJSON_GetObjectItem(o, "payload");

		snprintf(s->key, sizeof(s->key), "%s", cJSON_GetStringValue(cJSON_GetObjectItem(o, "key")) ?: "");
		snprintf(s->target, sizeof(s->target), "%s", pstr(p, "target") ?: "");
		pb = pstr(p, "playbook");
		if (pb)
			snprintf(s->playbook, sizeof(s->playbook), "%s", pb);
		if (!strcmp(type, "HEALED") || !strcmp(type, "HEAL_FAILED") || !strcmp(type, "ESCALATED") ||
		    !strcmp(type, "DRY_RUN")) {
			s->terminal = true;
			if (!strcmp(type, "HEALED") && pb)
				remember(rc->h, s->key, pb, true);
			else if (!strcmp(type, "HEAL_FAILED") || !strcmp(type, "ESCALATED")) {
				const cJSON *tried = cJSON_GetObjectItem(p, "tried"), *it;

				cJSON_ArrayForEach(it, tried)
					if (cJSON_IsString(it))
						remember(rc->h, s->key, it->valuestring, false);
			}
		}
	}
	cJSON_Delete(o);
	return 0;
}

static int cmp_ids(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Restore every backup of a heal the previous heald did not finish, newest first. */
static void recover_trace(struct healer *h, const char *id, const struct seen_trace *s)
{
	char dir[PATH_MAX + 64], err[256], ids[16][PATCH_BACKUP_ID_LEN + 8];
	const struct heal_target *t = s ? config__target_by_name(h->cfg, s->target) : NULL;
	struct heal_event *ev;
	struct dirent *de;
	int n = 0, i, restored = 0, failed = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/%s", h->backups, id);
	d = opendir(dir);
	if (!d)
		return;
	while ((de = readdir(d)) && n < 16)
		if (de->d_name[0] != '.')
			snprintf(ids[n++], sizeof(ids[0]), "%s", de->d_name);
	closedir(d);
	/* backup ids start with their UTC time: sorted, the last is the newest, undone first */
	qsort(ids, (size_t)n, sizeof(ids[0]), cmp_ids);
	for (i = n - 1; i >= 0; i--) {
		if (patch__restore(dir, ids[i], err, sizeof(err)) == 0) {
			restored++;
		} else {
			failed++;
			log_error("recovery of %s: cannot restore backup %s: %s", id, ids[i], err);
		}
	}
	if (!n)
		return;
	log_warn("recovered heal %s cut off by a restart of heald: %d backup(s) restored", id, restored);
	ev = event__new("ROLLBACK_DONE");
	if (ev) {
		snprintf(ev->key, sizeof(ev->key), "%s", s && s->key[0] ? s->key : id);
		snprintf(ev->trace_id, sizeof(ev->trace_id), "%s", id);
		ev->ui_hint = "rollback";
		cJSON_AddStringToObject(ev->payload, "target", t ? t->name : (s ? s->target : ""));
		cJSON_AddBoolToObject(ev->payload, "recovered", 1);
		cJSON_AddNumberToObject(ev->payload, "restored", restored);
		cJSON_AddNumberToObject(ev->payload, "failed", failed);
		publish(h, ev);
	}
	ev = event__new("HEAL_FAILED");
	if (ev) {
		snprintf(ev->key, sizeof(ev->key), "%s", s && s->key[0] ? s->key : id);
		snprintf(ev->trace_id, sizeof(ev->trace_id), "%s", id);
		ev->ui_hint = "error";
		cJSON_AddStringToObject(ev->payload, "target", t ? t->name : (s ? s->target : ""));
		if (s && s->playbook[0])
			cJSON_AddStringToObject(ev->payload, "playbook", s->playbook);
		cJSON_AddStringToObject(ev->payload, "reason",
					"heald stopped mid-heal; the change was rolled back on restart");
		publish(h, ev);
	}
}

int healer__recover(struct healer *h)
{
	struct recover_ctx rc = { .h = h };
	char jdir[PATH_MAX + 16];
	struct dirent *de;
	DIR *d;
	size_t i;

	snprintf(jdir, sizeof(jdir), "%s/journal", h->cfg->state_dir);
	journal__read(jdir, recover_line, &rc, NULL);
	d = opendir(h->backups);
	while (d && (de = readdir(d))) {
		const struct seen_trace *s = NULL;

		if (de->d_name[0] == '.')
			continue;
		for (i = 0; i < rc.n; i++)
			if (strcmp(rc.v[i].id, de->d_name) == 0)
				s = &rc.v[i];
		/* a heal with a backup and no verdict was cut off: roll it back */
		if (!s || !s->terminal)
			recover_trace(h, de->d_name, s);
	}
	if (d)
		closedir(d);
	free(rc.v);
	find_tracked(h);
	/* synchronously, before any target runs: the first known-good versions must exist
	 * before the first failure can ask for them */
	{
		struct snap_job j = { .h = h, .reason = "start" };

		snap_run(&j);
		log_info("known-good snapshots of %d allowlisted file(s): %d new", h->n_tracked, j.stored);
	}
	return 0;
}

/* ---- supervision's restarts ----------------------------------------------------------- */

/* TARGET_RESTARTED: supervision started a target no heal brought back (the healer has the bus). */
static void on_restarted(void *ctx, const struct targets_restarted *r)
{
	struct healer *h = ctx;
	const struct heal_target *t = config__target_by_id(h->cfg, r->target_id);
	struct heal_event *ev = t ? event__new("TARGET_RESTARTED") : NULL;
	cJSON *p;

	if (!ev)
		return;
	p = ev->payload;
	snprintf(ev->key, sizeof(ev->key), "%s:TARGET_RESTARTED", t->name);
	ev->ui_hint = "warning";
	cJSON_AddStringToObject(p, "target", t->name);
	cJSON_AddNumberToObject(p, "pid", r->pid);
	cJSON_AddNumberToObject(p, "previous_pid", r->previous_pid);
	cJSON_AddNumberToObject(p, "attempt", r->attempt);
	cJSON_AddNumberToObject(p, "backoff_ms", r->backoff_ms);
	cJSON_AddNumberToObject(p, "down_ms", (double)r->down_ms);
	cJSON_AddNumberToObject(p, "uptime_ms", (double)r->uptime_ms);
	cJSON_AddNumberToObject(p, "status", r->status);
	if (WIFSIGNALED(r->status)) {
		const char *sig = names__signal_name(WTERMSIG(r->status));
		char buf[16];

		if (!sig) {
			snprintf(buf, sizeof(buf), "SIG%d", WTERMSIG(r->status));
			sig = buf;
		}
		cJSON_AddNullToObject(p, "exit_code");
		cJSON_AddStringToObject(p, "signal", sig);
		cJSON_AddBoolToObject(p, "core_dumped", WCOREDUMP(r->status) != 0);
	} else {
		cJSON_AddNumberToObject(p, "exit_code", WEXITSTATUS(r->status));
	}
	publish(h, ev);
}

/* ---- lifetime ---------------------------------------------------------------------- */

struct healer *healer__new(const struct heal_config *cfg, struct bus *bus, struct worker *w,
			   struct targets *ts, char *err, size_t errlen)
{
	struct healer *h = calloc(1, sizeof(*h));
	char dir[PATH_MAX + 16];
	int e;

	if (!h) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->cfg = cfg;
	h->mode = cfg->mode;
	h->bus = bus;
	h->worker = w;
	h->targets = ts;
	h->hour_start_ms = util__now_ms();
	/* supervision's restarts are reported here, where the heals that hold them off are */
	targets__on_restarted(ts, on_restarted, h);
	h->sigs = calloc(SIG_MAX, sizeof(*h->sigs));
	h->outcomes = calloc(OUTCOME_MAX, sizeof(*h->outcomes));
	if (!h->sigs || !h->outcomes) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	snprintf(h->backups, sizeof(h->backups), "%s/backups", cfg->state_dir);
	snprintf(h->control, sizeof(h->control), "%s/control", cfg->state_dir);
	snprintf(dir, sizeof(dir), "%s/snapshots", cfg->state_dir);
	if ((e = util__mkdir_p(h->backups, 0700)) || (e = util__mkdir_p(h->control, 0700)) ||
	    (e = snapshot__open(dir, 0, &h->snaps))) {
		snprintf(err, errlen, "cannot prepare %s: %s", cfg->state_dir, strerror(-e));
		goto fail;
	}
	if (cfg->llm_json) {
		cJSON *o = cJSON_Parse(cfg->llm_json);
		struct llm_config lc = { 0 };
		char field[128], reason[256];

		if (!o || llm_config__parse(o, "llm", &lc, field, sizeof(field), reason, sizeof(reason))) {
			/* the config check reported it already; heal with playbooks only */
			log_warn("llm: %s: %s; healing with playbooks only", field, reason);
		} else {
			h->llm = llm__new(&lc, reason, sizeof(reason));
			if (!h->llm)
				log_warn("llm: %s; healing with playbooks only", reason);
		}
		llm_config__free(&lc);
		cJSON_Delete(o);
	}
	return h;
fail:
	healer__free(h);
	return NULL;
}

void healer__free(struct healer *h)
{
	struct trace *tr, *next;

	if (!h)
		return;
	/* called after the worker is gone: no completion can come back for these */
	for (tr = h->traces; tr; tr = next) {
		next = tr->next;
		trace_free(tr);
	}
	snapshot__close(h->snaps);
	llm__free(h->llm);
	free(h->sigs);
	free(h->outcomes);
	free(h);
}
