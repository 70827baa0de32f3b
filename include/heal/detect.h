/* SPDX-License-Identifier: MIT */
/*
 * Detection: turns the kernel's records into heal_events (names, keys,
 * wall-clock times, symbolized stacks) and publishes them on the bus.
 * Runs on the main loop; stack symbolization and binary indexing go to the
 * worker so the ring buffer is never held up by disk.
 */
#ifndef HEAL_DETECT_H
#define HEAL_DETECT_H

#include <stddef.h>
#include <stdint.h>

#include "heal/bus.h"
#include "heal/config.h"
#include "heal/probe.h"
#include "heal/targets.h"
#include "heal/worker.h"

struct detect;

struct detect *detect__new(const struct heal_config *cfg, struct bus *bus, struct worker *w);
/* Wire in the probe and targets once they exist (they need detect's callbacks first). */
void detect__attach(struct detect *d, struct probe *probe, struct targets *ts);
void detect__free(struct detect *d);
/* A ring buffer record (probe callback). */
void detect__record(struct detect *d, const void *rec, size_t len);
/* A process joined a target: index its binaries for later symbolization. */
void detect__joined(struct detect *d, const struct proc_info *pi);
/* Periodic: report drops (EVENTS_DROPPED) when the kernel's counters grew. */
void detect__tick(struct detect *d);
/* Report and drop the counts of processes that ended unseen (call every few seconds). */
void detect__sweep(struct detect *d);

/* Event keys are built by these (exported for tests). */
void detect__key_syscall(char *out, size_t len, const char *target, const char *syscall,
			 const char *err, const char *detail);

#endif /* HEAL_DETECT_H */
