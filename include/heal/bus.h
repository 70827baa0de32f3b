/* SPDX-License-Identifier: MIT */
/*
 * In-process publish/subscribe of heal_events. Delivery is synchronous on
 * the publishing thread (heald's main loop); subscribers must not block —
 * slow work goes to the worker.
 */
#ifndef HEAL_BUS_H
#define HEAL_BUS_H

#include "heal/event.h"

struct bus;

/* Called for every published event whose type matches (NULL type: all); subscribers run in
 * the order they subscribed, and an early one may stamp the event (the healer sets trace_id). */
typedef void (*bus_fn)(struct heal_event *ev, void *ctx);

struct bus *bus__new(void);
void bus__free(struct bus *b);
/* 0 or -ENOMEM / -ENOSPC (subscriber table full). */
int bus__subscribe(struct bus *b, const char *type, bus_fn fn, void *ctx);
/*
 * Deliver ev to every subscriber, then free it (the bus takes ownership).
 * Published from inside a subscriber, it is delivered after the current event
 * (in order, bounded: past the limit it is dropped and counted).
 */
void bus__publish(struct bus *b, struct heal_event *ev);
/* Events published so far. */
unsigned long long bus__published(const struct bus *b);

#endif /* HEAL_BUS_H */
