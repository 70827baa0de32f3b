/* SPDX-License-Identifier: MIT */
/*
 * eventlog: the most recent events as JSON lines, in memory, for readers on
 * other threads (the HTTP API's /api/v1/events and its SSE stream).
 *
 * One writer (heald's main loop) appends; any thread reads. Every event gets
 * the next id (1, 2, 3, ...; ids restart at 1 with the process). The ring is
 * bounded twice, by event count and by bytes; the oldest events are evicted
 * first and counted. A reader whose cursor points before what the ring still
 * holds is told how many events it missed, so it can say so.
 *
 * Locking: one mutex, held only to copy a few pointers and bytes; callbacks
 * never run under it, so a slow reader cannot stall the writer.
 */
#ifndef HEAL_EVENTLOG_H
#define HEAL_EVENTLOG_H

#include <stddef.h>
#include <stdint.h>

struct eventlog;

/* Where the ring stands, as seen by one eventlog__since call. */
struct eventlog_span {
	uint64_t first_id; /* oldest id still held, 0 when empty */
	uint64_t last_id;  /* newest id appended so far, 0 before the first */
	uint64_t missed;   /* ids after after_id already evicted: the reader's gap */
};

struct eventlog_stats {
	unsigned long long appended;	  /* events accepted */
	unsigned long long evicted;	  /* events pushed out by newer ones */
	unsigned long long evicted_bytes; /* their bytes */
	unsigned long long rejected;	  /* lines refused: empty, newline, too long, ENOMEM */
	size_t events, bytes;		  /* held now */
};

/*
 * Called once per event, oldest first, on the reader's thread without the
 * lock held: line is NUL-terminated (len bytes, no newline) and valid only
 * during the call. Nonzero stops the walk.
 */
typedef int (*eventlog_fn)(uint64_t id, const char *line, size_t len, void *ctx);

/*
 * A ring of at most max_events events and max_bytes bytes of lines
 * (0: 4096 events, 4 MiB). NULL on ENOMEM (errno set).
 */
struct eventlog *eventlog__new(size_t max_events, size_t max_bytes);
/* Frees the ring; no thread may still use it (or wait on it). Accepts NULL. */
void eventlog__free(struct eventlog *el);

/*
 * Append one line (a JSON value without newline; not validated) and wake
 * waiting readers. Returns its id, or 0 when refused (empty, contains '\n'
 * or '\r', longer than max_bytes, ENOMEM): counted in rejected.
 */
uint64_t eventlog__append(struct eventlog *el, const char *json_line);

/*
 * Call cb for up to max (0: no limit) events with id > after_id, oldest
 * first. Returns how many cb saw (the one that returned nonzero included),
 * or -EINVAL/-ENOMEM. span (may be NULL) is filled before the first call of
 * cb: the ring's ends and the gap — when events after after_id were already
 * evicted, span->missed says how many and the walk starts at
 * span->first_id. An after_id beyond span->last_id (a cursor from an earlier
 * run of the process) yields nothing; the caller decides whether to restart
 * from 0.
 */
int eventlog__since(struct eventlog *el, uint64_t after_id, size_t max, eventlog_fn cb, void *ctx,
		    struct eventlog_span *span);

/* The newest id appended so far, 0 before the first. */
uint64_t eventlog__last_id(struct eventlog *el);

/*
 * Block the calling (reader) thread until an event newer than after_id
 * exists (1), timeout_ms passes (0; negative: no timeout), or *cancel is
 * nonzero (-ECANCELED). cancel may be NULL; it is read atomically under the
 * ring's lock, so to end waits without a lost wake-up store it with
 * __atomic_store_n() and then call eventlog__wake(). Spurious returns of 0
 * are possible (eventlog__wake): callers loop.
 */
int eventlog__wait(struct eventlog *el, uint64_t after_id, int timeout_ms, const int *cancel);
/* Wake every thread blocked in eventlog__wait (they re-check their cancel flag). */
void eventlog__wake(struct eventlog *el);

/* Counters and occupancy, consistent with each other. */
void eventlog__stats(struct eventlog *el, struct eventlog_stats *st);

#endif /* HEAL_EVENTLOG_H */
