/* SPDX-License-Identifier: MIT */
/*
 * The healing loop. One trace per open failure signature (event key):
 * DETECTED -> RCA_READY -> PATCH_REQUESTED -> PATCH_READY ->
 * (APPROVAL_REQUIRED) -> PATCH_APPLIED | PATCH_BLOCKED -> RELOAD_DONE ->
 * VERIFY_PASS | VERIFY_FAIL -> (ROLLBACK_DONE) -> HEALED | HEAL_FAILED |
 * ESCALATED. Every step is an event on the bus carrying the trace_id.
 * Runs on heald's main loop; disk, commands and LLM calls go to the worker.
 */
#ifndef HEAL_HEALER_H
#define HEAL_HEALER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "heal/bus.h"
#include "heal/config.h"
#include "heal/targets.h"
#include "heal/worker.h"

struct healer;

/* Counters for status and metrics. */
struct healer_stats {
	unsigned open_traces;
	unsigned long long healed, failed, escalated, blocked, rolled_back;
	unsigned long long suppressed; /* failures not healed: breaker open, rate limit, backoff */
	unsigned long long repeats;    /* failures folded into an open trace */
};

/* cfg, bus, worker and targets outlive the healer. err: a sentence on failure. */
struct healer *healer__new(const struct heal_config *cfg, struct bus *bus, struct worker *w,
			   struct targets *ts, char *err, size_t errlen);
void healer__free(struct healer *h);

/*
 * Finish what a previous heald left: every heal cut off between its patch
 * and its verdict is rolled back byte for byte (ROLLBACK_DONE, HEAL_FAILED),
 * outcomes are remembered, and the allowlisted files get their first
 * known-good snapshots. Call once at start, before targets start.
 */
int healer__recover(struct healer *h);

/* Bus subscriber for every event; subscribe it first: it stamps trace ids. */
void healer__on_event(struct heal_event *ev, void *ctx);
/* Timers: verify windows, backoff, approvals from healctl. Call from the loop's tick. */
void healer__tick(struct healer *h);
/* Close the verify windows that have ended (the tick does it too). */
void healer__windows(struct healer *h);
/* When the next verify window ends (CLOCK_MONOTONIC ms, util__now_ms), 0 if none is open:
 * the main loop wakes then rather than on the next tick. */
long long healer__next_deadline_ms(const struct healer *h);
/* targets' restart callback. */
void healer__on_restart(void *ctx, uint32_t target_id, int pid_or_err);
/* A person's decision on a trace waiting for approval. 0, -ENOENT, -EINVAL (not waiting). */
int healer__decide(struct healer *h, const char *trace_id, bool approve, const char *who);
void healer__stats(const struct healer *h, struct healer_stats *st);
/*
 * Undo a finished heal (its backups restored newest first, then the target
 * reloaded); ROLLBACK_DONE with "manual" reports it. 0 when queued, -ENOENT
 * (unknown or nothing was changed), -EBUSY (still open).
 */
int healer__rollback(struct healer *h, const char *trace_id);
/* The mode in force (the config's until changed) and pausing: while paused no heal starts. */
void healer__set_mode(struct healer *h, enum heal_mode mode);
enum heal_mode healer__mode(const struct healer *h);
void healer__pause(struct healer *h, bool paused);
bool healer__paused(const struct healer *h);

#endif /* HEAL_HEALER_H */
