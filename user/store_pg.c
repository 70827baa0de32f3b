// SPDX-License-Identifier: MIT
/*
 * PostgreSQL fleet store. heald's main loop hands lines to a bounded queue;
 * the store's thread batches them into transactions, or appends them to the
 * spool while the database is away and replays the spool (in file order)
 * before anything newer once it is back. Every row is keyed by (host,
 * event_uid) and written with ON CONFLICT, so a replay never duplicates.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "heal/store_pg.h"
#include "heal/util.h"

#define UID_MAX	       128
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define IDLE_WAIT_MS   200
/* Any constant both old and new heald agree on: serializes migrations across hosts. */
#define MIGRATE_LOCK_KEY "6865616c"

struct item {
	char *uid;
	char *line;
};

/* One row to write: uid and the parsed event (owned by the caller). */
struct row {
	const char *uid;
	const cJSON *ev;
};

struct store_pg {
	char *url, *host, *spool_path;

	pthread_mutex_t mu; /* queue, stop, last_error */
	pthread_cond_t cv;
	struct item q[STORE_PG_QUEUE_MAX];
	size_t q_head, q_len;
	bool stop;
	long long deadline_ms;
	char last_error[256];

	pthread_mutex_t spool_mu; /* spool_fd's size and contents */
	int spool_fd;
	uint64_t spool_bytes, spool_max;
	bool spool_dirty;

	/* the thread's own */
	pthread_t thr;
	bool thr_started;
	PGconn *conn;
	uint64_t replay_off;

	/* counters, updated with atomics */
	uint64_t inserted, duplicates, spooled, replayed, failures, dropped;
	int connected;
};

static const char *const migrations[] = {
    /* 1: events, the traces they make, the patches applied */
    "CREATE TABLE heal_events ("
    "  host text NOT NULL, event_uid text NOT NULL, trace_id text, type text NOT NULL,"
    "  key text, target text, ts timestamptz NOT NULL, payload jsonb NOT NULL,"
    "  PRIMARY KEY (host, event_uid));"
    "CREATE INDEX heal_events_trace ON heal_events (host, trace_id) WHERE trace_id IS NOT NULL;"
    "CREATE INDEX heal_events_ts ON heal_events (ts);"
    "CREATE TABLE heal_traces ("
    "  host text NOT NULL, trace_id text NOT NULL, target text, key text, state text NOT NULL,"
    "  playbook text, started timestamptz NOT NULL, updated timestamptz NOT NULL,"
    "  PRIMARY KEY (host, trace_id));"
    "CREATE INDEX heal_traces_updated ON heal_traces (updated DESC);"
    "CREATE TABLE heal_patches ("
    "  host text NOT NULL, trace_id text NOT NULL, backup_id text NOT NULL, diff text,"
    "  files jsonb, applied_at timestamptz,"
    "  PRIMARY KEY (host, trace_id, backup_id));",
};
#define N_MIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))

#define COUNT(s, field, n) __atomic_add_fetch(&(s)->field, (uint64_t)(n), __ATOMIC_RELAXED)

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_error(struct store_pg *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_error(struct store_pg *s, const char *fmt, ...)
{
	va_list ap;
	char buf[sizeof(s->last_error)];
	size_t n;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	pthread_mutex_lock(&s->mu);
	memcpy(s->last_error, buf, sizeof(buf));
	pthread_mutex_unlock(&s->mu);
}

/* ---- spool ------------------------------------------------------------------------- */

/* Append {"uid":UID,"event":LINE} (uid needs no escaping: submit checked it). */
static int spool_append(struct store_pg *s, const char *uid, const char *line, size_t len)
{
	static const char pre[] = "{\"uid\":\"", mid[] = "\",\"event\":", post[] = "}\n";
	size_t ulen = strlen(uid),
	       total = sizeof(pre) - 1 + ulen + sizeof(mid) - 1 + len + sizeof(post) - 1;
	char *buf = malloc(total), *p = buf;
	int err;

	if (!buf) {
		COUNT(s, dropped, 1);
		return -ENOMEM;
	}
	memcpy(p, pre, sizeof(pre) - 1), p += sizeof(pre) - 1;
	memcpy(p, uid, ulen), p += ulen;
	memcpy(p, mid, sizeof(mid) - 1), p += sizeof(mid) - 1;
	memcpy(p, line, len), p += len;
	memcpy(p, post, sizeof(post) - 1);

	pthread_mutex_lock(&s->spool_mu);
	if (s->spool_bytes + total > s->spool_max) {
		err = -ENOSPC;
	} else {
		err = util__write_all(s->spool_fd, buf, total);
		if (err)
			/* no half line left behind for the replay to trip over */
			(void)!ftruncate(s->spool_fd, (off_t)s->spool_bytes);
		else
			s->spool_bytes += total, s->spool_dirty = true;
	}
	pthread_mutex_unlock(&s->spool_mu);
	free(buf);
	if (err) {
		COUNT(s, dropped, 1);
		return err;
	}
	COUNT(s, spooled, 1);
	return 0;
}

/* fdatasync outside the lock, so a submit that spools is not held up by the disk. */
static void spool_sync(struct store_pg *s)
{
	bool dirty;

	pthread_mutex_lock(&s->spool_mu);
	dirty = s->spool_dirty;
	s->spool_dirty = false;
	pthread_mutex_unlock(&s->spool_mu);
	if (dirty && fdatasync(s->spool_fd) < 0)
		set_error(s, "spool %s: fdatasync: %s", s->spool_path, strerror(errno));
}

static uint64_t spool_size(struct store_pg *s)
{
	uint64_t n;

	pthread_mutex_lock(&s->spool_mu);
	n = s->spool_bytes;
	pthread_mutex_unlock(&s->spool_mu);
	return n;
}

/* ---- database ---------------------------------------------------------------------- */

/* The server's NOTICEs (e.g. "already exists, skipping") are not heald's business. */
static void quiet(void *arg, const char *msg)
{
}

static PGconn *connect_db(const char *url, char *err, size_t errlen)
{
	/* defaults first: with expand_dbname the URL's own settings come later and win */
	const char *const keys[] = {"connect_timeout",
				    "keepalives",
				    "keepalives_idle",
				    "keepalives_interval",
				    "keepalives_count",
				    "tcp_user_timeout",
				    "application_name",
				    "client_encoding",
				    "options",
				    "dbname",
				    NULL};
	const char *const vals[] = {
	    "3", "1", "10", "5", "3", "10000", "heald", "UTF8", "-c statement_timeout=30000",
	    url, NULL};
	PGconn *c = PQconnectdbParams(keys, vals, 1);

	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (PQstatus(c) != CONNECTION_OK) {
		snprintf(err, errlen, "%s", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	PQsetNoticeProcessor(c, quiet, NULL);
	return c;
}

/* Run a statement without data; 0, or -EIO with the reason in err. */
static int exec_plain(PGconn *c, const char *sql, char *err, size_t errlen)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	int ret = 0;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "%s", PQresultErrorMessage(r));
		ret = -EIO;
	}
	PQclear(r);
	return ret;
}

/* Create or bring the schema up to date, once per version, under a lock shared by all hosts. */
static int migrate(PGconn *c, char *err, size_t errlen)
{
	PGresult *r = NULL;
	char v[16];
	const char *params[1] = {v};
	int cur, ret;
	size_t i;

	ret = exec_plain(c, "BEGIN", err, errlen);
	if (ret)
		return ret;
	ret = exec_plain(c, "SELECT pg_advisory_xact_lock(x'" MIGRATE_LOCK_KEY "'::bigint)", err,
			 errlen);
	if (ret)
		goto cleanup;
	ret = exec_plain(
	    c,
	    "CREATE TABLE IF NOT EXISTS heal_schema_migrations ("
	    "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
	    err, errlen);
	if (ret)
		goto cleanup;
	r = PQexec(c, "SELECT coalesce(max(version), 0) FROM heal_schema_migrations");
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		snprintf(err, errlen, "%s", PQresultErrorMessage(r));
		ret = -EIO;
		goto cleanup;
	}
	cur = atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
	r = NULL;
	for (i = (size_t)(cur > 0 ? cur : 0); i < N_MIGRATIONS; i++) {
		ret = exec_plain(c, migrations[i], err, errlen);
		if (ret)
			goto cleanup;
		snprintf(v, sizeof(v), "%zu", i + 1);
		r = PQexecParams(
		    c, "INSERT INTO heal_schema_migrations (version) VALUES ($1::integer)", 1, NULL,
		    params, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			snprintf(err, errlen, "%s", PQresultErrorMessage(r));
			ret = -EIO;
			goto cleanup;
		}
		PQclear(r);
		r = NULL;
	}
	ret = exec_plain(c, "COMMIT", err, errlen);
	return ret;
cleanup:
	PQclear(r);
	if (PQstatus(c) == CONNECTION_OK)
		PQclear(PQexec(c, "ROLLBACK"));
	return ret;
}

static bool is_failure(const char *t)
{
	return !strcmp(t, "SYSCALL_FAILURE") || !strcmp(t, "API_FAILURE") || !strcmp(t, "CRASH") ||
	       !strcmp(t, "EXIT_FAILURE") || !strcmp(t, "OOM_KILL");
}

static const char *str_field(const cJSON *o, const char *name)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(it) ? it->valuestring : NULL;
}

static const char SQL_EVENT[] =
    "INSERT INTO heal_events (host, event_uid, trace_id, type, key, target, ts, payload) "
    "VALUES ($1, $2, $3, $4, $5, $6, coalesce($7::timestamptz, now()), $8::jsonb) "
    "ON CONFLICT (host, event_uid) DO NOTHING RETURNING 1";

/* Events may arrive out of order (a full queue spools ahead): the newest event sets the state. */
static const char SQL_TRACE[] =
    "INSERT INTO heal_traces AS t (host, trace_id, target, key, state, playbook, started, updated) "
    "VALUES ($1, $2, $3, $4, $5, $6, coalesce($7::timestamptz, now()), coalesce($7::timestamptz, "
    "now())) "
    "ON CONFLICT (host, trace_id) DO UPDATE SET "
    "  started = least(t.started, EXCLUDED.started), "
    "  updated = greatest(t.updated, EXCLUDED.updated), "
    "  state = CASE WHEN EXCLUDED.state <> 'DETECTED' AND (t.state = 'DETECTED' OR "
    "EXCLUDED.updated >= t.updated) "
    "               THEN EXCLUDED.state ELSE t.state END, "
    "  target = coalesce(t.target, EXCLUDED.target), "
    "  key = coalesce(t.key, EXCLUDED.key), "
    "  playbook = CASE WHEN EXCLUDED.playbook IS NOT NULL AND EXCLUDED.updated >= t.updated "
    "                  THEN EXCLUDED.playbook ELSE coalesce(t.playbook, EXCLUDED.playbook) END";

/* PATCH_READY proposes (backup_id ""), PATCH_APPLIED applies; an applied patch without its own
 * diff takes the proposal's. */
static const char SQL_PATCH[] =
    "INSERT INTO heal_patches AS p (host, trace_id, backup_id, diff, files, applied_at) "
    "VALUES ($1, $2, $3, "
    "  coalesce($4::text, (SELECT diff FROM heal_patches WHERE host = $1 AND trace_id = $2 AND "
    "backup_id = '')), "
    "  coalesce($5::jsonb, (SELECT files FROM heal_patches WHERE host = $1 AND trace_id = $2 AND "
    "backup_id = '')), "
    "  $6::timestamptz) "
    "ON CONFLICT (host, trace_id, backup_id) DO UPDATE SET "
    "  diff = coalesce(EXCLUDED.diff, p.diff), files = coalesce(EXCLUDED.files, p.files), "
    "  applied_at = coalesce(EXCLUDED.applied_at, p.applied_at)";

enum { WR_OK = 0, WR_DATA = 1, WR_CONN = 2 };

/* Classify a failed result: the row's fault (data or integrity class), or the connection's. */
static int failed(struct store_pg *s, PGresult *r)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	int kind = WR_CONN;

	set_error(s, "postgres: %s", r ? PQresultErrorMessage(r) : PQerrorMessage(s->conn));
	if (PQstatus(s->conn) == CONNECTION_OK && state &&
	    (!strncmp(state, "22", 2) || !strncmp(state, "23", 2)))
		kind = WR_DATA;
	PQclear(r);
	return kind;
}

static int exec_params(struct store_pg *s, const char *sql, int n, const char *const *vals,
		       bool *got_row)
{
	PGresult *r = PQexecParams(s->conn, sql, n, NULL, vals, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(r);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		return failed(s, r);
	if (got_row)
		*got_row = st == PGRES_TUPLES_OK && PQntuples(r) > 0;
	PQclear(r);
	return WR_OK;
}

static int write_row(struct store_pg *s, const struct row *w, bool *is_new)
{
	const cJSON *payload = cJSON_GetObjectItemCaseSensitive(w->ev, "payload");
	const char *type = str_field(w->ev, "type"), *trace = str_field(w->ev, "trace_id");
	const char *ts = str_field(w->ev, "timestamp"), *target = NULL, *playbook = NULL;
	char *ptext = NULL, *ftext = NULL;
	int ret;

	*is_new = false;
	if (!type)
		return WR_DATA;
	if (cJSON_IsObject(payload)) {
		target = str_field(payload, "target");
		playbook = str_field(payload, "playbook");
		ptext = cJSON_PrintUnformatted(payload);
	} else {
		ptext = strdup("{}");
	}
	if (!ptext)
		return WR_CONN; /* ENOMEM: keep the row for later, like an outage */
	{
		const char *v[] = {s->host,
				   w->uid,
				   trace && *trace ? trace : NULL,
				   type,
				   str_field(w->ev, "key"),
				   target,
				   ts,
				   ptext};

		ret = exec_params(s, SQL_EVENT, 8, v, is_new);
	}
	/* a row already there was written with its trace and patch the first time */
	if (ret || !*is_new || !trace || !*trace)
		goto cleanup;
	{
		const char *v[] = {s->host,
				   trace,
				   target,
				   str_field(w->ev, "key"),
				   is_failure(type) ? "DETECTED" : type,
				   playbook,
				   ts};

		ret = exec_params(s, SQL_TRACE, 7, v, NULL);
	}
	if (ret)
		goto cleanup;
	if (!strcmp(type, "PATCH_READY") || !strcmp(type, "PATCH_APPLIED")) {
		const cJSON *files = cJSON_GetObjectItemCaseSensitive(payload, "files");
		const char *bid = str_field(payload, "backup_id");

		if (cJSON_IsArray(files) && !(ftext = cJSON_PrintUnformatted(files))) {
			ret = WR_CONN;
			goto cleanup;
		}
		{
			const char *v[] = {s->host,
					   trace,
					   bid && !strcmp(type, "PATCH_APPLIED") ? bid : "",
					   str_field(payload, "diff"),
					   ftext,
					   !strcmp(type, "PATCH_APPLIED") ? (ts ? ts : "now")
									  : NULL};

			ret = exec_params(s, SQL_PATCH, 6, v, NULL);
		}
	}
cleanup:
	free(ptext);
	free(ftext);
	return ret;
}

/* One transaction for rows; WR_DATA when one row is refused (nothing committed). */
static int write_tx(struct store_pg *s, const struct row *rows, size_t n)
{
	uint64_t fresh = 0;
	bool is_new;
	size_t i;
	int ret;

	ret = exec_params(s, "BEGIN", 0, NULL, NULL);
	for (i = 0; !ret && i < n; i++) {
		ret = write_row(s, &rows[i], &is_new);
		fresh += is_new;
	}
	if (!ret)
		ret = exec_params(s, "COMMIT", 0, NULL, NULL);
	if (ret) {
		if (PQstatus(s->conn) == CONNECTION_OK)
			PQclear(PQexec(s->conn, "ROLLBACK"));
		return ret;
	}
	COUNT(s, inserted, fresh);
	COUNT(s, duplicates, n - fresh);
	return WR_OK;
}

/* Write rows; a refused row is retried alone and dropped (counted), the others still go in. */
static int write_rows(struct store_pg *s, const struct row *rows, size_t n)
{
	size_t i;
	int ret = write_tx(s, rows, n);

	if (ret != WR_DATA)
		return ret;
	for (i = 0; i < n; i++) {
		ret = write_tx(s, &rows[i], 1);
		if (ret == WR_DATA) {
			COUNT(s, failures, 1);
			COUNT(s, dropped, 1);
		} else if (ret) {
			return ret;
		}
	}
	return WR_OK;
}

static void disconnect(struct store_pg *s)
{
	if (s->conn) {
		PQfinish(s->conn);
		s->conn = NULL;
	}
	__atomic_store_n(&s->connected, 0, __ATOMIC_RELAXED);
}

/* Write the spool back, oldest first, then empty it; -EIO when the database went away again,
 * -EINTR when the stop deadline passed (the rest stays in the spool). */
static int replay(struct store_pg *s)
{
	struct row rows[STORE_PG_BATCH_MAX];
	cJSON *parsed[STORE_PG_BATCH_MAX];
	char *line = NULL;
	size_t cap = 0, n, i;
	uint64_t size, off;
	FILE *f = NULL;
	int ret = 0;

	for (;;) {
		pthread_mutex_lock(&s->spool_mu);
		size = s->spool_bytes;
		if (s->replay_off >= size) {
			/* everything up to here is in the database: start the spool afresh */
			if (size && ftruncate(s->spool_fd, 0) == 0)
				s->spool_bytes = 0;
			s->replay_off = 0;
			pthread_mutex_unlock(&s->spool_mu);
			break;
		}
		pthread_mutex_unlock(&s->spool_mu);
		if (!f && !(f = fopen(s->spool_path, "re"))) {
			set_error(s, "spool %s: %s", s->spool_path, strerror(errno));
			ret = -EIO;
			break;
		}
		if (fseeko(f, (off_t)s->replay_off, SEEK_SET) < 0) {
			ret = -EIO;
			break;
		}
		off = s->replay_off;
		for (n = 0; n < STORE_PG_BATCH_MAX && off < size;) {
			ssize_t len = getline(&line, &cap, f);
			cJSON *w;

			if (len <= 0)
				break;
			off += (uint64_t)len;
			w = cJSON_Parse(line);
			if (!w || !str_field(w, "uid") ||
			    !cJSON_IsObject(cJSON_GetObjectItem(w, "event"))) {
				/* a torn line from a crash: nothing to recover */
				cJSON_Delete(w);
				COUNT(s, dropped, 1);
				continue;
			}
			parsed[n] = w;
			rows[n].uid = str_field(w, "uid");
			rows[n].ev = cJSON_GetObjectItem(w, "event");
			n++;
		}
		ret = n ? write_rows(s, rows, n) : WR_OK;
		for (i = 0; i < n; i++)
			cJSON_Delete(parsed[i]);
		if (ret) {
			ret = -EIO;
			break;
		}
		COUNT(s, replayed, n);
		s->replay_off = off;
		pthread_mutex_lock(&s->mu);
		ret = s->stop && now_ms() >= s->deadline_ms ? -EINTR : 0;
		pthread_mutex_unlock(&s->mu);
		if (ret)
			break;
	}
	free(line);
	if (f)
		fclose(f);
	return ret;
}

static void spool_items(struct store_pg *s, struct item *it, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		spool_append(s, it[i].uid, it[i].line, strlen(it[i].line));
}

/* Write items straight to the database; false (nothing lost: the caller spools them) when it
 * failed. */
static bool write_items(struct store_pg *s, struct item *it, size_t n)
{
	struct row rows[STORE_PG_BATCH_MAX];
	cJSON *parsed[STORE_PG_BATCH_MAX];
	size_t i, m = 0;
	int ret;

	for (i = 0; i < n; i++) {
		cJSON *ev = cJSON_Parse(it[i].line);

		if (!cJSON_IsObject(ev)) {
			cJSON_Delete(ev);
			COUNT(s, dropped, 1);
			continue;
		}
		parsed[m] = ev;
		rows[m].uid = it[i].uid;
		rows[m].ev = ev;
		m++;
	}
	ret = m ? write_rows(s, rows, m) : WR_OK;
	for (i = 0; i < m; i++)
		cJSON_Delete(parsed[i]);
	return ret == WR_OK;
}

static void free_items(struct item *it, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(it[i].uid);
		free(it[i].line);
	}
}

static size_t take(struct store_pg *s, struct item *out, size_t max)
{
	size_t n = 0;

	while (n < max && s->q_len) {
		out[n++] = s->q[s->q_head];
		s->q_head = (s->q_head + 1) % STORE_PG_QUEUE_MAX;
		s->q_len--;
	}
	return n;
}

static void *store_thread(void *arg)
{
	struct store_pg *s = arg;
	struct item batch[STORE_PG_BATCH_MAX];
	long long next_try = 0, backoff = BACKOFF_MIN_MS, deadline;
	char err[512];
	bool stop;
	size_t n;

	for (;;) {
		pthread_mutex_lock(&s->mu);
		if (!s->q_len && !s->stop) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += IDLE_WAIT_MS * 1000000L;
			ts.tv_sec += ts.tv_nsec / 1000000000L;
			ts.tv_nsec %= 1000000000L;
			pthread_cond_timedwait(&s->cv, &s->mu, &ts);
		}
		n = take(s, batch, STORE_PG_BATCH_MAX);
		stop = s->stop;
		deadline = s->deadline_ms;
		pthread_mutex_unlock(&s->mu);

		/* stopping with the database away, or past the deadline: everything goes to the
		 * spool */
		if (stop && (!s->conn || now_ms() >= deadline)) {
			spool_items(s, batch, n);
			free_items(batch, n);
			pthread_mutex_lock(&s->mu);
			while ((n = take(s, batch, STORE_PG_BATCH_MAX))) {
				pthread_mutex_unlock(&s->mu);
				spool_items(s, batch, n);
				free_items(batch, n);
				pthread_mutex_lock(&s->mu);
			}
			pthread_mutex_unlock(&s->mu);
			break;
		}
		if (!s->conn && now_ms() >= next_try) {
			s->conn = connect_db(s->url, err, sizeof(err));
			if (s->conn && migrate(s->conn, err, sizeof(err))) {
				PQfinish(s->conn);
				s->conn = NULL;
			}
			if (s->conn) {
				backoff = BACKOFF_MIN_MS;
				__atomic_store_n(&s->connected, 1, __ATOMIC_RELAXED);
			} else {
				set_error(s, "postgres: %s", err);
				COUNT(s, failures, 1);
				next_try = now_ms() + backoff;
				backoff =
				    backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
			}
		}
		/* the spool holds older events than the queue: it goes first */
		if (s->conn && spool_size(s) && replay(s) == -EIO) {
			COUNT(s, failures, 1);
			disconnect(s);
			next_try = now_ms() + backoff;
		}
		if (n) {
			if (!s->conn || spool_size(s) || !write_items(s, batch, n)) {
				if (s->conn && !spool_size(s)) {
					COUNT(s, failures, 1);
					disconnect(s);
					next_try = now_ms() + backoff;
				}
				spool_items(s, batch, n);
			}
			free_items(batch, n);
		}
		spool_sync(s);
		if (stop && !n) {
			pthread_mutex_lock(&s->mu);
			n = s->q_len;
			pthread_mutex_unlock(&s->mu);
			if (!n)
				break;
		}
	}
	spool_sync(s);
	disconnect(s);
	return NULL;
}

/* ---- API ------------------------------------------------------------------------- */

struct store_pg *store_pg__new(const char *url, const char *host, const char *spool_dir, char *err,
			       size_t errlen)
{
	struct store_pg *s;
	struct stat st;
	char last;
	int ret;

	if (!url || !*url || !host || !*host || !spool_dir || !*spool_dir) {
		snprintf(err, errlen, "store_pg: url, host and spool dir are required");
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "store_pg: out of memory");
		return NULL;
	}
	s->spool_fd = -1;
	s->spool_max = STORE_PG_SPOOL_MAX;
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->spool_mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	s->url = strdup(url);
	s->host = strdup(host);
	if (!s->url || !s->host ||
	    asprintf(&s->spool_path, "%s/%s", spool_dir, STORE_PG_SPOOL_NAME) < 0) {
		s->spool_path = NULL;
		snprintf(err, errlen, "store_pg: out of memory");
		goto fail;
	}
	s->spool_fd = open(s->spool_path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (s->spool_fd < 0 || fstat(s->spool_fd, &st) < 0) {
		snprintf(err, errlen, "store_pg: spool %s: %s", s->spool_path, strerror(errno));
		goto fail;
	}
	s->spool_bytes = (uint64_t)st.st_size;
	/* a crash mid-append leaves a torn last line: end it, so the next append starts clean */
	if (st.st_size && pread(s->spool_fd, &last, 1, st.st_size - 1) == 1 && last != '\n' &&
	    util__write_all(s->spool_fd, "\n", 1) == 0)
		s->spool_bytes++;
	ret = pthread_create(&s->thr, NULL, store_thread, s);
	if (ret) {
		snprintf(err, errlen, "store_pg: thread: %s", strerror(ret));
		goto fail;
	}
	s->thr_started = true;
	return s;
fail:
	store_pg__free(s);
	return NULL;
}

int store_pg__submit(struct store_pg *s, const char *event_uid, const char *json_line)
{
	size_t ulen, len;
	const char *c;
	struct item it;
	bool wake;

	if (!s || !event_uid || !json_line)
		return -EINVAL;
	ulen = strlen(event_uid);
	if (!ulen || ulen > UID_MAX)
		return -EINVAL;
	for (c = event_uid; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == '"' || *c == '\\' || *c == 0x7f)
			return -EINVAL;
	len = strlen(json_line);
	while (len && (json_line[len - 1] == '\n' || json_line[len - 1] == '\r'))
		len--;
	if (!len || memchr(json_line, '\n', len))
		return -EINVAL;

	pthread_mutex_lock(&s->mu);
	if (s->q_len < STORE_PG_QUEUE_MAX && !s->stop) {
		it.uid = strdup(event_uid);
		it.line = strndup(json_line, len);
		if (!it.uid || !it.line) {
			pthread_mutex_unlock(&s->mu);
			free(it.uid);
			free(it.line);
			COUNT(s, dropped, 1);
			return -ENOMEM;
		}
		s->q[(s->q_head + s->q_len) % STORE_PG_QUEUE_MAX] = it;
		wake = s->q_len++ == 0;
		pthread_mutex_unlock(&s->mu);
		if (wake)
			pthread_cond_signal(&s->cv);
		return 0;
	}
	pthread_mutex_unlock(&s->mu);
	/* queue full: the spool keeps it until the thread catches up */
	return spool_append(s, event_uid, json_line, len);
}

void store_pg__set_spool_max(struct store_pg *s, uint64_t bytes)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->spool_mu);
	s->spool_max = bytes;
	pthread_mutex_unlock(&s->spool_mu);
}

void store_pg__stats(struct store_pg *s, struct store_pg_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!s)
		return;
	st->inserted = __atomic_load_n(&s->inserted, __ATOMIC_RELAXED);
	st->duplicates = __atomic_load_n(&s->duplicates, __ATOMIC_RELAXED);
	st->spooled = __atomic_load_n(&s->spooled, __ATOMIC_RELAXED);
	st->replayed = __atomic_load_n(&s->replayed, __ATOMIC_RELAXED);
	st->failures = __atomic_load_n(&s->failures, __ATOMIC_RELAXED);
	st->dropped = __atomic_load_n(&s->dropped, __ATOMIC_RELAXED);
	st->connected = __atomic_load_n(&s->connected, __ATOMIC_RELAXED);
	st->spool_bytes = spool_size(s);
	pthread_mutex_lock(&s->mu);
	st->queued = s->q_len;
	memcpy(st->last_error, s->last_error, sizeof(st->last_error));
	pthread_mutex_unlock(&s->mu);
}

void store_pg__free(struct store_pg *s)
{
	struct item batch[STORE_PG_BATCH_MAX];
	size_t n;

	if (!s)
		return;
	if (s->thr_started) {
		pthread_mutex_lock(&s->mu);
		s->stop = true;
		s->deadline_ms = now_ms() + STORE_PG_FLUSH_MS;
		pthread_mutex_unlock(&s->mu);
		pthread_cond_signal(&s->cv);
		pthread_join(s->thr, NULL);
	}
	/* nothing is left unless the thread never ran */
	while (s->spool_fd >= 0 && (n = take(s, batch, STORE_PG_BATCH_MAX))) {
		spool_items(s, batch, n);
		free_items(batch, n);
	}
	if (s->spool_fd >= 0) {
		spool_sync(s);
		close(s->spool_fd);
	}
	disconnect(s);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->spool_mu);
	pthread_mutex_destroy(&s->mu);
	free(s->spool_path);
	free(s->host);
	free(s->url);
	free(s);
}

int store_pg__query_traces(const char *url, int all_hosts, const char *host, int limit, cJSON **out,
			   char *err, size_t errlen)
{
	static const char sql[] =
	    "SELECT host, trace_id, target, key, state, playbook, "
	    "  to_char(started AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
	    "  to_char(updated AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
	    "FROM heal_traces WHERE $1::boolean OR host = $2 "
	    "ORDER BY updated DESC, host, trace_id LIMIT $3::integer";
	static const char *const cols[] = {"host",  "trace_id", "target",  "key",
					   "state", "playbook", "started", "updated"};
	char hostname[256], lim[16];
	const char *params[3];
	PGresult *r = NULL;
	PGconn *c;
	cJSON *arr = NULL;
	int ret = 0, i, j;

	*out = NULL;
	if (!url || !*url) {
		snprintf(err, errlen, "no PostgreSQL URL");
		return -EINVAL;
	}
	if (!all_hosts && !host) {
		if (gethostname(hostname, sizeof(hostname)) < 0) {
			ret = -errno;
			snprintf(err, errlen, "gethostname: %s", strerror(errno));
			return ret;
		}
		hostname[sizeof(hostname) - 1] = '\0';
		host = hostname;
	}
	snprintf(lim, sizeof(lim), "%d", limit > 0 ? limit : 100);
	params[0] = all_hosts ? "true" : "false";
	params[1] = all_hosts ? "" : host;
	params[2] = lim;
	c = connect_db(url, err, errlen);
	if (!c)
		return -ECONNREFUSED;
	r = PQexecParams(c, sql, 3, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);

		if (state && !strcmp(state, "42P01")) {
			snprintf(
			    err, errlen,
			    "no heal tables in this database (no heald has written to it yet)");
			ret = -ENOENT;
		} else {
			snprintf(err, errlen, "%s", PQresultErrorMessage(r));
			ret = -EIO;
		}
		goto cleanup;
	}
	arr = cJSON_CreateArray();
	for (i = 0; arr && i < PQntuples(r); i++) {
		cJSON *o = cJSON_CreateObject();

		if (!o || !cJSON_AddItemToArray(arr, o))
			goto nomem;
		for (j = 0; j < (int)(sizeof(cols) / sizeof(cols[0])); j++) {
			cJSON *v = PQgetisnull(r, i, j) ? cJSON_CreateNull()
							: cJSON_CreateString(PQgetvalue(r, i, j));

			if (!v || !cJSON_AddItemToObject(o, cols[j], v))
				goto nomem;
		}
	}
	if (!arr)
		goto nomem;
	*out = arr;
	arr = NULL;
	goto cleanup;
nomem:
	snprintf(err, errlen, "out of memory");
	ret = -ENOMEM;
cleanup:
	cJSON_Delete(arr);
	PQclear(r);
	PQfinish(c);
	return ret;
}
