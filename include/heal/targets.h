/* SPDX-License-Identifier: MIT */
/*
 * Targets at run time: starts supervised (exec) targets and restarts them
 * when they end (supervision: after a backoff, unless a heal holds them),
 * finds matched ones among running processes, and keeps the table of which
 * process belongs to which target (fed by the kernel's fork/exec/exit records).
 */
#ifndef HEAL_TARGETS_H
#define HEAL_TARGETS_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "heal/config.h"
#include "heal/events.h"
#include "heal/probe.h"

struct targets;

struct proc_info {
	uint32_t tgid;
	uint32_t target_id;
	char exe[PATH_MAX];
	char comm[HEAL_COMM_LEN];
};

/* A process joined a target (started, matched, forked, exec'd): e.g. index its binaries. */
typedef void (*targets_join_fn)(void *ctx, const struct proc_info *pi);

struct targets *targets__new(const struct heal_config *cfg, struct probe *probe,
			     targets_join_fn on_join, void *ctx);
void targets__free(struct targets *ts);
/*
 * Start every exec target (each is watched before its first instruction) and
 * look for matched ones. A target's process that a previous heald started and
 * left running (it was killed: STATE_DIR/run/NAME.pid) is stopped first.
 * Returns 0, or -errno with a sentence in err.
 */
int targets__start(struct targets *ts, char *err, size_t errlen);
/* Look for new processes of matched targets. Returns how many joined. */
int targets__rescan(struct targets *ts);
/* Apply a fork/exec/exit record from the kernel. */
void targets__on_proc(struct targets *ts, const struct heal_rec_proc *rec);
/* What the table knows of tgid, filling it from /proc when it is still there; NULL if nothing. */
const struct proc_info *targets__lookup(struct targets *ts, uint32_t tgid);
/* Forget tgid (after its exit has been reported). */
void targets__forget(struct targets *ts, uint32_t tgid);
/* A restart finished: pid of the new process, or a negative errno. */
typedef void (*targets_restart_fn)(void *ctx, uint32_t target_id, int pid_or_err);

/*
 * Restart a supervised target without blocking: SIGTERM now, SIGKILL after
 * stop_timeout_ms (from targets__tick), start again once it is gone; the
 * callback set with targets__on_restart() reports the new pid.
 * -EOPNOTSUPP for matched targets, -EALREADY while one is in progress.
 */
int targets__restart(struct targets *ts, uint32_t target_id, unsigned stop_timeout_ms);
void targets__on_restart(struct targets *ts, targets_restart_fn fn, void *ctx);
/* Drive restarts' grace periods and due supervision restarts; call from the loop's timer. */
void targets__tick(struct targets *ts);

/* A supervision restart: the target's main process ended, no heal brought it back, heald did. */
struct targets_restarted {
	uint32_t target_id;
	pid_t pid;	     /* the new process */
	pid_t previous_pid;  /* the one that ended */
	int status;	     /* its wait(2) status */
	long uptime_ms;	     /* how long it had run */
	unsigned attempt;    /* 1 + the quick deaths just before it (each doubles the backoff) */
	unsigned backoff_ms; /* the wait its run of quick deaths earned */
	long down_ms;	     /* from its end to this start (backoff, tick, any heal's hold) */
};
typedef void (*targets_restarted_fn)(void *ctx, const struct targets_restarted *r);
void targets__on_restarted(struct targets *ts, targets_restarted_fn fn, void *ctx);
/*
 * A heal takes charge of bringing target_id back (its reload starts a stopped
 * target): supervision does not restart it while held, for at most
 * TARGETS_HOLD_MAX_MS after the death. Holds nest; each hold needs a release.
 */
#define TARGETS_HOLD_MAX_MS 30000
void targets__hold(struct targets *ts, uint32_t target_id);
void targets__release(struct targets *ts, uint32_t target_id);
/* The supervised main process of a target, 0 when not running. */
pid_t targets__main_pid(const struct targets *ts, uint32_t target_id);
/* Send sig to every known process of target; how many, or -ESRCH. */
int targets__signal(struct targets *ts, uint32_t target_id, int sig);
/* Reap exited children (after SIGCHLD). Returns how many. */
int targets__reap(struct targets *ts);
/* Supervised children still running. */
int targets__children(const struct targets *ts);
/* Send sig to every supervised child's session: heald stops, supervision restarts nothing. */
void targets__signal_children(struct targets *ts, int sig);

#endif /* HEAL_TARGETS_H */
