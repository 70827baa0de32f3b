/* SPDX-License-Identifier: MIT */
/*
 * PostgreSQL fleet store: every event, the traces and the patches they make,
 * with a host column so many hosts share one database. Writes are batched on
 * the store's own thread; while the database is away events wait in
 * SPOOL_DIR/pg-spool.jsonl and are replayed in order when it is back.
 * Rows are keyed (host, event_uid), so a replay never duplicates.
 */
#ifndef HEAL_STORE_PG_H
#define HEAL_STORE_PG_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define STORE_PG_QUEUE_MAX  4096	   /* in-memory lines; past it, submit spools */
#define STORE_PG_BATCH_MAX  200		   /* rows per transaction */
#define STORE_PG_SPOOL_MAX  (256ULL << 20) /* spool bytes; past it, lines are dropped */
#define STORE_PG_FLUSH_MS   2000	   /* store_pg__free's deadline */
#define STORE_PG_SPOOL_NAME "pg-spool.jsonl"

struct store_pg;

struct store_pg_stats {
	uint64_t inserted;    /* event rows written (new rows only) */
	uint64_t duplicates;  /* event rows already in the database (replays, resubmits) */
	uint64_t spooled;     /* lines appended to the spool */
	uint64_t replayed;    /* spooled lines written back to the database */
	uint64_t failures;    /* failed connects, transactions and rows the database refused */
	uint64_t dropped;     /* lines lost: spool full or unwritable, or not JSON */
	uint64_t queued;      /* lines in the in-memory queue now */
	uint64_t spool_bytes; /* spool file size now */
	int connected;	      /* 1 while the thread holds a working connection */
	char last_error[256]; /* the last database or spool error, "" if none */
};

/*
 * Start the store: url is a libpq connection string or postgresql:// URI,
 * host is stored with every row, spool_dir must exist. Returns immediately
 * (connecting is the thread's job); NULL with a reason in err on failure.
 */
struct store_pg *store_pg__new(const char *url, const char *host, const char *spool_dir, char *err,
			       size_t errlen);
/*
 * Queue one event (json_line: one heald event object, trailing newline allowed)
 * under its unique id. Never blocks on the database: when the queue is full the
 * line goes straight to the spool. 0, -EINVAL (no uid, uid with tab/newline/quote,
 * line with an inner newline) or -ENOMEM/-ENOSPC/-errno when even the spool failed
 * (counted in dropped).
 */
int store_pg__submit(struct store_pg *s, const char *event_uid, const char *json_line);
/* Spool size limit in bytes (default STORE_PG_SPOOL_MAX). */
void store_pg__set_spool_max(struct store_pg *s, uint64_t bytes);
/* A consistent snapshot of the counters. */
void store_pg__stats(struct store_pg *s, struct store_pg_stats *st);
/*
 * Stop the thread: writes what it can within STORE_PG_FLUSH_MS, spools (and
 * fsyncs) the rest, closes. Accepts NULL.
 */
void store_pg__free(struct store_pg *s);

/*
 * The fleet view for healctl: traces newest first (at most limit, <= 0: 100),
 * of all hosts or of host (NULL: this machine's hostname). *out gets a JSON
 * array of {host, trace_id, target, key, state, playbook, started, updated};
 * 0 or -errno with a reason in err.
 */
int store_pg__query_traces(const char *url, int all_hosts, const char *host, int limit, cJSON **out,
			   char *err, size_t errlen);

#endif /* HEAL_STORE_PG_H */
