/* SPDX-License-Identifier: MIT */
/*
 * Root cause analysis by playbooks: the target's own rules from the config
 * plus built-in defaults for common host failures, ranked by confidence and
 * by what healed the same signature before. Pure logic: what it needs to
 * know about files and history comes through callbacks.
 */
#ifndef HEAL_RCA_H
#define HEAL_RCA_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "heal/config.h"
#include "heal/event.h"

#define RCA_MAX_PLANS 6
#define RCA_MAX_FILES 8

struct rca_plan {
	enum heal_action action;
	char playbook[64]; /* built-in name, or the config playbook's name */
	char cause[384];
	double confidence; /* 0..1, after ranking */
	double risk;       /* 0..1 */
	char files[RCA_MAX_FILES][PATH_MAX]; /* files the plan changes (restore/json_set/llm_patch) */
	int n_files;
	char dep_target[64]; /* restart_dependency */
	const struct heal_playbook *pb; /* the config playbook, or NULL for a built-in */
};

struct rca_env {
	/* Allowlisted files whose content differs from their last known good version. */
	int (*changed_files)(void *ctx, const struct heal_target *t, char out[][PATH_MAX], int max);
	/* Whether path is allowlisted for t (after resolving it). */
	bool (*allowed)(void *ctx, const struct heal_target *t, const char *path);
	/* Past outcomes of playbook on this signature: successes and failures. */
	void (*history)(void *ctx, const char *key, const char *playbook, unsigned *ok, unsigned *failed);
	bool llm; /* an LLM is configured: llm_patch is a candidate */
	void *ctx;
};

/*
 * Plans for the failure ev of target t, best first (at most max). Returns
 * how many; 0 when no playbook applies.
 */
int rca__plan(const struct heal_config *cfg, const struct heal_target *t, const struct heal_event *ev,
	      const struct rca_env *env, struct rca_plan *plans, int max);

/* Whether a config playbook's match holds for the event (exported for tests). */
bool rca__match(const struct heal_playbook_match *m, const struct heal_event *ev);

#endif /* HEAL_RCA_H */
