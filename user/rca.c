// SPDX-License-Identifier: MIT
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heal/names.h"
#include "heal/rca.h"

static const char *pstr(const struct heal_event *ev, const char *k)
{
	return cJSON_GetStringValue(cJSON_GetObjectItem(ev->payload, k));
}

static bool pnum(const struct heal_event *ev, const char *k, double *out)
{
	const cJSON *v = cJSON_GetObjectItem(ev->payload, k);

	if (!cJSON_IsNumber(v))
		return false;
	*out = v->valuedouble;
	return true;
}

static bool str_is(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static const char *crash_site(const struct heal_event *ev)
{
	const char *key = ev->key, *last = strrchr(key, ':');

	/* CRASH keys end in the crashing function */
	return last ? last + 1 : NULL;
}

bool rca__match(const struct heal_playbook_match *m, const struct heal_event *ev)
{
	const char *s;
	double v;

	if (m->type && strcmp(m->type, ev->type))
		return false;
	if (m->syscall >= 0 && !str_is(pstr(ev, "syscall"), names__syscall_name(m->syscall)))
		return false;
	if (m->err >= 0 && !str_is(pstr(ev, "errno"), names__errno_name(m->err)))
		return false;
	if (m->path) {
		s = pstr(ev, "path");
		if (!s)
			s = pstr(ev, "addr");
		if (!s || fnmatch(m->path, s, 0))
			return false;
	}
	if (m->signal > 0 && !str_is(pstr(ev, "signal"), names__signal_name(m->signal)))
		return false;
	if (m->symbol) {
		s = pstr(ev, "symbol");
		if (!s)
			s = pstr(ev, "usdt");
		if (!s && strcmp(ev->type, "CRASH") == 0)
			s = crash_site(ev);
		if (!str_is(s, m->symbol))
			return false;
	}
	if (m->exit_code >= 0 && !(pnum(ev, "exit_code", &v) && (int)v == m->exit_code))
		return false;
	if (m->has_ret && !(pnum(ev, "ret", &v) && predicate__eval(&m->ret, (int64_t)v)))
		return false;
	return true;
}

static struct rca_plan *add(struct rca_plan *plans, int *n, int max, enum heal_action a,
			    const char *playbook, double confidence, double risk)
{
	struct rca_plan *p;

	if (*n >= max)
		return NULL;
	p = &plans[(*n)++];
	memset(p, 0, sizeof(*p));
	p->action = a;
	snprintf(p->playbook, sizeof(p->playbook), "%s", playbook);
	p->confidence = confidence;
	p->risk = risk;
	return p;
}

static bool file_syscall(const char *sc)
{
	static const char *const names[] = { "open", "openat", "openat2", "stat", "lstat", "newfstatat",
					     "statx", "access", "faccessat", "faccessat2", "readlink",
					     "readlinkat", "execve", "execveat", "creat", NULL };

	for (int i = 0; sc && names[i]; i++)
		if (strcmp(names[i], sc) == 0)
			return true;
	return false;
}

static bool is_errno(const char *e, const char *const *set)
{
	for (int i = 0; e && set[i]; i++)
		if (strcmp(e, set[i]) == 0)
			return true;
	return false;
}

/* A restore of every allowlisted file changed since its last known good version. */
static void plan_restore_changed(const struct heal_target *t, const struct rca_env *env,
				 struct rca_plan *plans, int *n, int max, double confidence,
				 const char *why)
{
	char changed[RCA_MAX_FILES][PATH_MAX];
	struct rca_plan *p;
	int k, nc;

	if (!env->changed_files)
		return;
	nc = env->changed_files(env->ctx, t, changed, RCA_MAX_FILES);
	if (nc <= 0)
		return;
	p = add(plans, n, max, HEAL_ACT_RESTORE_KNOWN_GOOD, "restore_known_good", confidence, 0.3);
	if (!p)
		return;
	for (k = 0; k < nc; k++)
		snprintf(p->files[k], PATH_MAX, "%s", changed[k]);
	p->n_files = nc;
	snprintf(p->cause, sizeof(p->cause), "%s after %s changed since its last known good version%s",
		 why, changed[0], nc > 1 ? " (and other files)" : "");
}

static void builtin_plans(const struct heal_config *cfg, const struct heal_target *t,
			  const struct heal_event *ev, const struct rca_env *env,
			  struct rca_plan *plans, int *n, int max)
{
	static const char *const missing[] = { "ENOENT", "EACCES", "ENOTDIR", "EISDIR", "ELOOP", NULL };
	static const char *const refused[] = { "ECONNREFUSED", "ECONNRESET", "EHOSTUNREACH",
					       "ETIMEDOUT", "ENETUNREACH", NULL };
	const char *sc = pstr(ev, "syscall"), *err = pstr(ev, "errno"), *path = pstr(ev, "path");
	const char *addr = pstr(ev, "addr");
	struct rca_plan *p;
	size_t i;

	(void)cfg;
	if (strcmp(ev->type, "SYSCALL_FAILURE") == 0) {
		if (file_syscall(sc) && is_errno(err, missing) && path && path[0] == '/' &&
		    env->allowed && env->allowed(env->ctx, t, path)) {
			p = add(plans, n, max, HEAL_ACT_RESTORE_KNOWN_GOOD, "restore_known_good", 0.85, 0.2);
			if (p) {
				snprintf(p->files[0], PATH_MAX, "%s", path);
				p->n_files = 1;
				snprintf(p->cause, sizeof(p->cause),
					 "config file %s is %s (%s on %s)", path,
					 strcmp(err, "ENOENT") == 0 ? "missing" : "unreadable", err, sc);
			}
			/* or a changed config now points at a file that never existed */
			plan_restore_changed(t, env, plans, n, max, 0.7, "a file went missing");
		}
		if (is_errno(err, (const char *const[]){ "EMFILE", "ENFILE", NULL })) {
			p = add(plans, n, max, HEAL_ACT_RAISE_NOFILE, "raise_nofile", 0.7, 0.2);
			if (p)
				snprintf(p->cause, sizeof(p->cause),
					 "the process ran out of file descriptors (%s on %s): a leak or a limit too low",
					 err, sc);
			if (t->exec) {
				p = add(plans, n, max, HEAL_ACT_RESTART, "restart", 0.55, 0.4);
				if (p)
					snprintf(p->cause, sizeof(p->cause),
						 "file descriptors exhausted (%s): a restart releases the leaked ones", err);
			}
		}
		if (is_errno(err, (const char *const[]){ "ENOSPC", "EDQUOT", NULL }) && t->cleanup) {
			p = add(plans, n, max, HEAL_ACT_CLEANUP, "cleanup", 0.75, 0.3);
			if (p)
				snprintf(p->cause, sizeof(p->cause),
					 "the file system is full (%s on %s): old files matching the cleanup globs can go",
					 err, sc);
		}
		if (sc && strcmp(sc, "connect") == 0 && is_errno(err, refused) && addr) {
			for (i = 0; i < t->n_deps; i++) {
				if (!t->deps[i].addr || strcmp(t->deps[i].addr, addr))
					continue;
				p = add(plans, n, max, HEAL_ACT_RESTART_DEPENDENCY, "restart_dependency", 0.85, 0.25);
				if (p) {
					snprintf(p->dep_target, sizeof(p->dep_target), "%s", t->deps[i].target);
					snprintf(p->cause, sizeof(p->cause),
						 "dependency %s at %s is down (%s)", t->deps[i].target, addr, err);
				}
			}
		}
		return;
	}
	if (strcmp(ev->type, "CRASH") == 0 || strcmp(ev->type, "EXIT_FAILURE") == 0) {
		plan_restore_changed(t, env, plans, n, max, 0.8,
				     strcmp(ev->type, "CRASH") == 0 ? "crashed" : "failed");
		if (t->exec) {
			p = add(plans, n, max, HEAL_ACT_RESTART, "restart", 0.5, 0.3);
			if (p)
				snprintf(p->cause, sizeof(p->cause),
					 "%s with no recent config change: restart it (with backoff)",
					 strcmp(ev->type, "CRASH") == 0 ? "crashed" : "exited with a failure");
		}
		return;
	}
	if (strcmp(ev->type, "OOM_KILL") == 0) {
		plan_restore_changed(t, env, plans, n, max, 0.6, "killed for memory");
		if (t->exec) {
			p = add(plans, n, max, HEAL_ACT_RESTART, "restart", 0.5, 0.3);
			if (p)
				snprintf(p->cause, sizeof(p->cause), "killed by the OOM killer: restart it");
		}
		return;
	}
	if (strcmp(ev->type, "API_FAILURE") == 0) {
		plan_restore_changed(t, env, plans, n, max, 0.75, "API calls fail");
		if (env->llm) {
			p = add(plans, n, max, HEAL_ACT_LLM_PATCH, "llm_patch", 0.5, 0.6);
			if (p)
				snprintf(p->cause, sizeof(p->cause),
					 "API calls fail with no config change to undo: ask the LLM for a patch");
		}
	}
}

static int by_confidence(const void *a, const void *b)
{
	const struct rca_plan *x = a, *y = b;

	return (x->confidence < y->confidence) - (x->confidence > y->confidence);
}

static bool same_plan(const struct rca_plan *a, const struct rca_plan *b)
{
	int i;

	if (a->action != b->action || a->n_files != b->n_files || strcmp(a->dep_target, b->dep_target))
		return false;
	for (i = 0; i < a->n_files; i++)
		if (strcmp(a->files[i], b->files[i]))
			return false;
	/* two config playbooks doing the same thing stay: their params may differ */
	return !a->pb && !b->pb;
}

/* The same change reached by two rules is tried once (the better ranked one stays). */
static int dedupe(struct rca_plan *plans, int n)
{
	int i, k, out = 0;

	for (i = 0; i < n; i++) {
		for (k = 0; k < out; k++)
			if (same_plan(&plans[k], &plans[i]))
				break;
		if (k == out)
			plans[out++] = plans[i];
	}
	return out;
}

int rca__plan(const struct heal_config *cfg, const struct heal_target *t, const struct heal_event *ev,
	      const struct rca_env *env, struct rca_plan *plans, int max)
{
	int n = 0, i;
	size_t k;

	for (k = 0; k < t->n_playbooks; k++) {
		const struct heal_playbook *pb = &t->playbooks[k];
		struct rca_plan *p;

		if (!rca__match(&pb->match, ev))
			continue;
		/* the operator's own playbooks outrank the defaults at equal confidence */
		p = add(plans, &n, max, pb->action, pb->name, pb->confidence + 0.05, pb->risk);
		if (!p)
			break;
		p->pb = pb;
		if (pb->file) {
			snprintf(p->files[0], PATH_MAX, "%s", pb->file);
			p->n_files = 1;
		}
		if (pb->dep_target)
			snprintf(p->dep_target, sizeof(p->dep_target), "%s", pb->dep_target);
		snprintf(p->cause, sizeof(p->cause), "playbook %s matches %s", pb->name, ev->key);
	}
	builtin_plans(cfg, t, ev, env, plans, &n, max);

	/* what healed this signature before counts; what failed it counts against */
	for (i = 0; i < n && env->history; i++) {
		unsigned ok = 0, failed = 0;

		env->history(env->ctx, ev->key, plans[i].playbook, &ok, &failed);
		/* a success raises it, a failure lowers it: x (0.5 + Laplace-smoothed success rate) */
		if (ok + failed)
			plans[i].confidence *= 0.5 + ((double)ok + 1) / ((double)(ok + failed) + 2);
		if (plans[i].confidence > 1)
			plans[i].confidence = 1;
	}
	qsort(plans, (size_t)n, sizeof(*plans), by_confidence);
	return dedupe(plans, n);
}
