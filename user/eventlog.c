// SPDX-License-Identifier: MIT
/*
 * eventlog: a ring of the latest JSON lines. Ids are contiguous inside the
 * ring (every accepted line takes the next one and only the oldest are
 * evicted), so the slot of id X is (head + X - first_id) % cap: lookups by
 * cursor are O(1). Readers copy what they need under the lock into one
 * buffer and run their callback without it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "heal/eventlog.h"

#define DEFAULT_EVENTS 4096
#define DEFAULT_BYTES  (4u << 20)

struct slot {
	char *line;
	size_t len;
};

struct eventlog {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* CLOCK_MONOTONIC; broadcast on append and wake */
	struct slot *ring;
	size_t cap, max_bytes;
	size_t head, count, bytes; /* head: slot of the oldest event */
	uint64_t last_id;	   /* id of the newest; the oldest is last_id - count + 1 */
	uint64_t wake_seq;	   /* bumped by eventlog__wake */
	unsigned long long appended, evicted, evicted_bytes, rejected;
};

/* What a reader copied out: n entries, their lines packed in text. */
struct copy {
	uint64_t id;
	size_t len, off;
};

struct eventlog *eventlog__new(size_t max_events, size_t max_bytes)
{
	struct eventlog *el = calloc(1, sizeof(*el));
	pthread_condattr_t ca;

	if (!el)
		return NULL;
	el->cap = max_events ? max_events : DEFAULT_EVENTS;
	el->max_bytes = max_bytes ? max_bytes : DEFAULT_BYTES;
	el->ring = calloc(el->cap, sizeof(*el->ring));
	if (!el->ring) {
		free(el);
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&el->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&el->cond, &ca);
	pthread_condattr_destroy(&ca);
	return el;
}

void eventlog__free(struct eventlog *el)
{
	size_t i;

	if (!el)
		return;
	for (i = 0; i < el->count; i++)
		free(el->ring[(el->head + i) % el->cap].line);
	free(el->ring);
	pthread_cond_destroy(&el->cond);
	pthread_mutex_destroy(&el->lock);
	free(el);
}

uint64_t eventlog__append(struct eventlog *el, const char *json_line)
{
	size_t len = json_line ? strlen(json_line) : 0;
	uint64_t id;
	char *copy;

	if (!el)
		return 0;
	if (!len || len > el->max_bytes || strpbrk(json_line, "\r\n"))
		copy = NULL;
	else
		copy = malloc(len + 1);
	pthread_mutex_lock(&el->lock);
	if (!copy) {
		el->rejected++;
		pthread_mutex_unlock(&el->lock);
		return 0;
	}
	memcpy(copy, json_line, len + 1);
	while (el->count && (el->count == el->cap || el->bytes + len > el->max_bytes)) {
		struct slot *old = &el->ring[el->head];

		el->bytes -= old->len;
		el->evicted++;
		el->evicted_bytes += old->len;
		free(old->line);
		old->line = NULL;
		el->head = (el->head + 1) % el->cap;
		el->count--;
	}
	el->ring[(el->head + el->count) % el->cap] = (struct slot){.line = copy, .len = len};
	el->count++;
	el->bytes += len;
	el->appended++;
	id = ++el->last_id;
	pthread_cond_broadcast(&el->cond);
	pthread_mutex_unlock(&el->lock);
	return id;
}

int eventlog__since(struct eventlog *el, uint64_t after_id, size_t max, eventlog_fn cb, void *ctx,
		    struct eventlog_span *span)
{
	struct eventlog_span sp = {0};
	struct copy *c = NULL;
	uint64_t start, n = 0, i;
	size_t bytes = 0;
	char *text;
	int seen = 0;

	if (!el || !cb)
		return -EINVAL;
	pthread_mutex_lock(&el->lock);
	sp.last_id = el->last_id;
	sp.first_id = el->count ? el->last_id - el->count + 1 : 0;
	start = after_id + 1;
	if (sp.first_id && start < sp.first_id) {
		sp.missed = sp.first_id - start;
		start = sp.first_id;
	}
	if (el->count && start <= sp.last_id)
		n = sp.last_id - start + 1;
	if (max && n > max)
		n = max;
	for (i = 0; i < n; i++)
		bytes += el->ring[(el->head + (start - sp.first_id) + i) % el->cap].len + 1;
	if (n) {
		c = malloc(n * sizeof(*c) + bytes);
		if (!c) {
			pthread_mutex_unlock(&el->lock);
			return -ENOMEM;
		}
		text = (char *)(c + n);
		bytes = 0;
		for (i = 0; i < n; i++) {
			const struct slot *s =
			    &el->ring[(el->head + (start - sp.first_id) + i) % el->cap];

			c[i] = (struct copy){.id = start + i, .len = s->len, .off = bytes};
			memcpy(text + bytes, s->line, s->len + 1);
			bytes += s->len + 1;
		}
	}
	pthread_mutex_unlock(&el->lock);
	if (span)
		*span = sp;
	for (i = 0; i < n; i++) {
		seen++;
		if (cb(c[i].id, (char *)(c + n) + c[i].off, c[i].len, ctx))
			break;
	}
	free(c);
	return seen;
}

uint64_t eventlog__last_id(struct eventlog *el)
{
	uint64_t id;

	if (!el)
		return 0;
	pthread_mutex_lock(&el->lock);
	id = el->last_id;
	pthread_mutex_unlock(&el->lock);
	return id;
}

int eventlog__wait(struct eventlog *el, uint64_t after_id, int timeout_ms, const int *cancel)
{
	struct timespec deadline;
	uint64_t seq;
	int ret;

	if (!el)
		return -EINVAL;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	if (timeout_ms >= 0) {
		deadline.tv_sec += timeout_ms / 1000;
		deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&el->lock);
	seq = el->wake_seq;
	for (;;) {
		if (cancel && __atomic_load_n(cancel, __ATOMIC_ACQUIRE)) {
			ret = -ECANCELED;
			break;
		}
		if (el->last_id > after_id) {
			ret = 1;
			break;
		}
		if (el->wake_seq != seq) {
			ret = 0;
			break;
		}
		if (timeout_ms < 0) {
			pthread_cond_wait(&el->cond, &el->lock);
		} else if (pthread_cond_timedwait(&el->cond, &el->lock, &deadline) == ETIMEDOUT) {
			ret = el->last_id > after_id;
			break;
		}
	}
	pthread_mutex_unlock(&el->lock);
	return ret;
}

void eventlog__wake(struct eventlog *el)
{
	if (!el)
		return;
	pthread_mutex_lock(&el->lock);
	el->wake_seq++;
	pthread_cond_broadcast(&el->cond);
	pthread_mutex_unlock(&el->lock);
}

void eventlog__stats(struct eventlog *el, struct eventlog_stats *st)
{
	if (!st)
		return;
	memset(st, 0, sizeof(*st));
	if (!el)
		return;
	pthread_mutex_lock(&el->lock);
	st->appended = el->appended;
	st->evicted = el->evicted;
	st->evicted_bytes = el->evicted_bytes;
	st->rejected = el->rejected;
	st->events = el->count;
	st->bytes = el->bytes;
	pthread_mutex_unlock(&el->lock);
}
