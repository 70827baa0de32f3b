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

struct bus {
	struct subscriber subs[BUS_MAX_SUBSCRIBERS];
	int n;
	unsigned long long published;
};

struct bus *bus__new(void)
{
	return calloc(1, sizeof(struct bus));
}

void bus__free(struct bus *b)
{
	free(b);
}

int bus__subscribe(struct bus *b, const char *type, bus_fn fn, void *ctx)
{
	if (b->n >= BUS_MAX_SUBSCRIBERS)
		return -ENOSPC;
	b->subs[b->n++] = (struct subscriber){ .type = type, .fn = fn, .ctx = ctx };
	return 0;
}

void bus__publish(struct bus *b, struct heal_event *ev)
{
	int i;

	if (!ev)
		return;
	b->published++;
	for (i = 0; i < b->n; i++) {
		if (!b->subs[i].type || strcmp(b->subs[i].type, ev->type) == 0)
			b->subs[i].fn(ev, b->subs[i].ctx);
	}
	event__free(ev);
}

unsigned long long bus__published(const struct bus *b)
{
	return b->published;
}
