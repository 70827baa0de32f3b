// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "heal/bus.h"

#define BUS_MAX_SUBSCRIBERS 32

struct subscriber {
	const char *type;
	bus_fn fn;
	void *ctx;
};

#define BUS_MAX_PENDING 4096

struct bus {
	struct subscriber subs[BUS_MAX_SUBSCRIBERS];
	int n;
	unsigned long long published;
	unsigned long long dropped;
	/* events published by a subscriber while one is being delivered: they go out after it */
	struct heal_event *pending[BUS_MAX_PENDING];
	unsigned head, count;
	int delivering;
};

struct bus *bus__new(void)
{
	return calloc(1, sizeof(struct bus));
}

void bus__free(struct bus *b)
{
	if (!b)
		return;
	while (b->count) {
		event__free(b->pending[b->head]);
		b->head = (b->head + 1) % BUS_MAX_PENDING;
		b->count--;
	}
	free(b);
}

int bus__subscribe(struct bus *b, const char *type, bus_fn fn, void *ctx)
{
	if (b->n >= BUS_MAX_SUBSCRIBERS)
		return -ENOSPC;
	b->subs[b->n++] = (struct subscriber){ .type = type, .fn = fn, .ctx = ctx };
	return 0;
}

static void deliver(struct bus *b, struct heal_event *ev)
{
	int i;

	b->published++;
	for (i = 0; i < b->n; i++) {
		if (!b->subs[i].type || strcmp(b->subs[i].type, ev->type) == 0)
			b->subs[i].fn(ev, b->subs[i].ctx);
	}
	event__free(ev);
}

void bus__publish(struct bus *b, struct heal_event *ev)
{
	if (!ev)
		return;
	if (b->delivering) {
		/* every subscriber sees events in publish order: the nested one waits its turn */
		if (b->count == BUS_MAX_PENDING) {
			b->dropped++;
			event__free(ev);
			return;
		}
		b->pending[(b->head + b->count) % BUS_MAX_PENDING] = ev;
		b->count++;
		return;
	}
	b->delivering = 1;
	deliver(b, ev);
	while (b->count) {
		ev = b->pending[b->head];
		b->head = (b->head + 1) % BUS_MAX_PENDING;
		b->count--;
		deliver(b, ev);
	}
	b->delivering = 0;
}

unsigned long long bus__published(const struct bus *b)
{
	return b->published;
}
