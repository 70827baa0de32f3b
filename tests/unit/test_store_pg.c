// SPDX-License-Identifier: MIT
/*
 * store_pg against a real PostgreSQL: a heal's rows, an outage spooled and
 * replayed exactly once, idempotent uids, two hosts in one database,
 * idempotent migrations, and a submit path that never waits for the database.
 */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "heal/store_pg.h"
/* The Makefile links only harness.c and shopenv.c of tests/lib into tests: pg.c is included here.
 */
#include "../lib/pg.c"

static struct h_pg pg;
static bool pg_up;
static char pg_skip[300];

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(p);
}

static long long mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int group_setup(void **state)
{
	if (!h_pg_init(&pg)) {
		snprintf(pg_skip, sizeof(pg_skip), "%s", pg.why);
		return 0;
	}
	if (!h_pg_start(&pg)) {
		snprintf(pg_skip, sizeof(pg_skip), "postgres did not start (see %s/server.log)",
			 pg.dir);
		return 0;
	}
	pg_up = true;
	return 0;
}

static int group_teardown(void **state)
{
	h_pg_free(&pg);
	return 0;
}

/* Each test: its own database and spool dir. */
struct fx {
	char url[PATH_MAX + 64];
	char spool[64];
};

static int setup(void **state)
{
	static int n;
	struct fx *f;
	char name[32];

	if (!pg_up) {
		fprintf(stderr, "[  SKIP    ] %s\n", pg_skip);
		skip();
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	snprintf(f->spool, sizeof(f->spool), "/tmp/heal-test-storepg-XXXXXX");
	snprintf(name, sizeof(name), "heal_t%d", ++n);
	if (!mkdtemp(f->spool) || !h_pg_create_db(&pg, name, f->url, sizeof(f->url))) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (f) {
		nftw(f->spool, rm_one, 8, FTW_DEPTH | FTW_PHYS);
		free(f);
	}
	return 0;
}

/* ---- helpers ---- */

/* One heald event line; payload is a JSON object text, trace may be NULL. */
static char *ev_line(const char *type, const char *trace, int sec, const char *payload)
{
	char *s = NULL;
	char tr[64];

	if (trace)
		snprintf(tr, sizeof(tr), "\"%s\"", trace);
	else
		snprintf(tr, sizeof(tr), "null");
	assert_true(asprintf(&s,
			     "{\"type\":\"%s\",\"key\":\"shop:openat:ENOENT\",\"payload\":%s,"
			     "\"timestamp\":\"2026-01-01T00:%02d:%02d.000000Z\",\"trace_id\":%s,"
			     "\"ui_hint\":null}\n",
			     type, payload, sec / 60 % 60, sec % 60, tr) > 0);
	return s;
}

static void submit(struct store_pg *s, const char *uid, const char *type, const char *trace,
		   int sec, const char *payload)
{
	char *line = ev_line(type, trace, sec, payload);

	assert_int_equal(store_pg__submit(s, uid, line), 0);
	free(line);
}

/* First column of the first row as a long, -1 on error. */
static long q_long(const char *url, const char *sql)
{
	PGconn *c = PQconnectdb(url);
	PGresult *r;
	long v = -1;

	if (PQstatus(c) == CONNECTION_OK) {
		r = PQexec(c, sql);
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
		    !PQgetisnull(r, 0, 0))
			v = atol(PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	PQfinish(c);
	return v;
}

/* First column of the first row, malloc'd; NULL on error or SQL NULL. */
static char *q_str(const char *url, const char *sql)
{
	PGconn *c = PQconnectdb(url);
	PGresult *r;
	char *v = NULL;

	if (PQstatus(c) == CONNECTION_OK) {
		r = PQexec(c, sql);
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
		    !PQgetisnull(r, 0, 0))
			v = strdup(PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	PQfinish(c);
	return v;
}

/* Poll until sql returns want (or timeout_ms); returns the last value. */
static long wait_long(const char *url, const char *sql, long want, int timeout_ms)
{
	long long end = mono_us() + timeout_ms * 1000LL;
	long v;

	for (;;) {
		v = q_long(url, sql);
		if (v == want || mono_us() > end)
			return v;
		usleep(20000);
	}
}

static void wait_stat(struct store_pg *s, uint64_t want_spooled, int timeout_ms)
{
	long long end = mono_us() + timeout_ms * 1000LL;
	struct store_pg_stats st;

	do {
		store_pg__stats(s, &st);
		if (st.spooled >= want_spooled && !st.queued)
			return;
		usleep(10000);
	} while (mono_us() < end);
	fail_msg("spooled %llu, queued %llu; expected %llu spooled", (unsigned long long)st.spooled,
		 (unsigned long long)st.queued, (unsigned long long)want_spooled);
}

static struct store_pg *open_store(struct fx *f, const char *host)
{
	char err[256] = "";
	struct store_pg *s = store_pg__new(f->url, host, f->spool, err, sizeof(err));

	if (!s)
		fail_msg("store_pg__new: %s", err);
	return s;
}

/* A heal's events, uids PREFIX-0..5, all under trace TRACE. */
static void submit_heal(struct store_pg *s, const char *prefix, const char *trace)
{
	char uid[64];

	snprintf(uid, sizeof(uid), "%s-0", prefix);
	submit(s, uid, "SYSCALL_FAILURE", NULL, 1, "{\"target\":\"shop\",\"errno\":\"ENOENT\"}");
	snprintf(uid, sizeof(uid), "%s-1", prefix);
	submit(s, uid, "SYSCALL_FAILURE", trace, 2, "{\"target\":\"shop\",\"errno\":\"ENOENT\"}");
	snprintf(uid, sizeof(uid), "%s-2", prefix);
	submit(s, uid, "RCA_READY", trace, 3,
	       "{\"target\":\"shop\",\"playbook\":\"missing_file\"}");
	snprintf(uid, sizeof(uid), "%s-3", prefix);
	submit(s, uid, "PATCH_APPLIED", trace, 4,
	       "{\"target\":\"shop\",\"playbook\":\"missing_file\",\"backup_id\":\"b-17\","
	       "\"diff\":\"--- a/shop.json\\n+++ b/shop.json\\n-\\\"db\\\": "
	       "\\\"/nope\\\"\\n+\\\"db\\\": \\\"/ok\\\"\\n\","
	       "\"files\":[\"/etc/shop/shop.json\"]}");
	snprintf(uid, sizeof(uid), "%s-4", prefix);
	submit(s, uid, "RELOAD_DONE", trace, 5,
	       "{\"target\":\"shop\",\"playbook\":\"missing_file\"}");
	snprintf(uid, sizeof(uid), "%s-5", prefix);
	submit(s, uid, "VERIFY_PASS", trace, 6,
	       "{\"target\":\"shop\",\"playbook\":\"missing_file\"}");
}

/* ---- tests ---- */

static void test_heal_rows(void **state)
{
	struct fx *f = *state;
	struct store_pg *s = open_store(f, "web-1");
	struct store_pg_stats st;
	char *v;

	submit_heal(s, "h", "tr-1");
	assert_int_equal(wait_long(f->url, "SELECT count(*) FROM heal_events", 6, 10000), 6);
	assert_int_equal(q_long(f->url, "SELECT count(*) FROM heal_events WHERE host = 'web-1'"),
			 6);
	assert_int_equal(q_long(f->url, "SELECT count(*) FROM heal_events WHERE trace_id = 'tr-1'"),
			 5);
	assert_int_equal(q_long(f->url, "SELECT count(*) FROM heal_events WHERE trace_id IS NULL"),
			 1);
	assert_int_equal(q_long(f->url, "SELECT count(*) FROM heal_events WHERE target = 'shop' "
					"AND payload->>'errno' = 'ENOENT'"),
			 2);
	assert_int_equal(
	    q_long(f->url, "SELECT count(*) FROM heal_events WHERE ts = '2026-01-01T00:00:01Z' "
			   "AND event_uid = 'h-0' AND type = 'SYSCALL_FAILURE'"),
	    1);

	assert_int_equal(q_long(f->url, "SELECT count(*) FROM heal_traces"), 1);
	v = q_str(
	    f->url,
	    "SELECT host || '|' || trace_id || '|' || target || '|' || state || '|' || playbook "
	    "|| '|' || key FROM heal_traces");
	assert_non_null(v);
	assert_string_equal(v, "web-1|tr-1|shop|VERIFY_PASS|missing_file|shop:openat:ENOENT");
	free(v);
	assert_int_equal(
	    q_long(f->url, "SELECT extract(epoch FROM updated - started) FROM heal_traces"), 4);

	v = q_str(f->url,
		  "SELECT host || '|' || trace_id || '|' || backup_id || '|' || (files->>0) "
		  "|| '|' || (applied_at = '2026-01-01T00:00:04Z') FROM heal_patches");
	assert_non_null(v);
	assert_string_equal(v, "web-1|tr-1|b-17|/etc/shop/shop.json|true");
	free(v);
	v = q_str(f->url, "SELECT diff FROM heal_patches");
	assert_non_null(v);
	assert_string_equal(
	    v, "--- a/shop.json\n+++ b/shop.json\n-\"db\": \"/nope\"\n+\"db\": \"/ok\"\n");
	free(v);

	store_pg__stats(s, &st);
	assert_int_equal(st.inserted, 6);
	assert_int_equal(st.spooled, 0);
	assert_int_equal(st.connected, 1);
	store_pg__free(s);
}

static void test_outage_replay(void **state)
{
	struct fx *f = *state;
	struct store_pg *s = open_store(f, "web-1");
	struct store_pg_stats st;
	char uid[32], path[128];
	struct stat sb;
	char *v;
	int i;

	for (i = 0; i < 50; i++) {
		snprintf(uid, sizeof(uid), "u-%d", i);
		submit(s, uid, "RCA_READY", "tr-a", i, "{\"target\":\"shop\"}");
	}
	assert_int_equal(wait_long(f->url, "SELECT count(*) FROM heal_events", 50, 10000), 50);

	assert_true(h_pg_stop(&pg));
	for (i = 50; i < 150; i++) {
		snprintf(uid, sizeof(uid), "u-%d", i);
		submit(s, uid, "RCA_READY", "tr-a", i, "{\"target\":\"shop\"}");
	}
	wait_stat(s, 100, 10000);
	store_pg__stats(s, &st);
	assert_int_equal(st.connected, 0);
	assert_int_equal(st.spooled, 100);
	assert_true(st.spool_bytes > 0);
	assert_true(st.last_error[0] != '\0');

	/* heald restarts during the outage: the spool outlives the store */
	store_pg__free(s);
	s = open_store(f, "web-1");
	for (i = 150; i < 200; i++) {
		snprintf(uid, sizeof(uid), "u-%d", i);
		submit(s, uid, "VERIFY_PASS", "tr-a", i, "{\"target\":\"shop\"}");
	}
	wait_stat(s, 50, 10000);

	assert_true(h_pg_start(&pg));
	assert_int_equal(wait_long(f->url, "SELECT count(*) FROM heal_events", 200, 15000), 200);
	/* exactly once, every uid */
	assert_int_equal(q_long(f->url, "SELECT count(DISTINCT event_uid) FROM heal_events"), 200);
	assert_int_equal(
	    q_long(f->url,
		   "SELECT count(*) FROM generate_series(0, 199) g "
		   "LEFT JOIN heal_events e ON e.event_uid = 'u-' || g WHERE e.event_uid IS NULL"),
	    0);
	v = q_str(f->url, "SELECT state FROM heal_traces WHERE trace_id = 'tr-a'");

	assert_non_null(v);
	assert_string_equal(v, "VERIFY_PASS");
	free(v);
	/* the spool is emptied once replayed */
	for (i = 0; i < 200; i++) {
		store_pg__stats(s, &st);
		if (!st.spool_bytes)
			break;
		usleep(10000);
	}
	assert_int_equal(st.spool_bytes, 0);
	assert_int_equal(st.replayed, 150);
	assert_int_equal(st.connected, 1);
	snprintf(path, sizeof(path), "%s/%s", f->spool, STORE_PG_SPOOL_NAME);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_size, 0);
	store_pg__free(s);
}

static void test_duplicate_uid(void **state)
{
	struct fx *f = *state;
	struct store_pg *s = open_store(f, "web-1");
	struct store_pg_stats st;

	submit(s, "dup-1", "RCA_READY", "tr-d", 1, "{\"target\":\"shop\"}");
	submit(s, "dup-1", "RCA_READY", "tr-d", 1, "{\"target\":\"shop\"}");
	submit(s, "dup-2", "VERIFY_PASS", "tr-d", 2, "{\"target\":\"shop\"}");
	assert_int_equal(wait_long(f->url,
				   "SELECT count(*) FROM heal_events WHERE event_uid = 'dup-2'", 1,
				   10000),
			 1);
	store_pg__free(s);
	/* and again from a fresh store, as a replay after a restart would */
	s = open_store(f, "web-1");
	submit(s, "dup-1", "RCA_READY", "tr-d", 1, "{\"target\":\"shop\"}");
	submit(s, "dup-3", "VERIFY_PASS", "tr-d", 3, "{\"target\":\"shop\"}");
	assert_int_equal(wait_long(f->url,
				   "SELECT count(*) FROM heal_events WHERE event_uid = 'dup-3'", 1,
				   10000),
			 1);
	assert_int_equal(
	    q_long(f->url, "SELECT count(*) FROM heal_events WHERE event_uid = 'dup-1'"), 1);
	assert_int_equal(q_long(f->url, "SELECT count(*) FROM heal_events"), 3);
	store_pg__stats(s, &st);
	assert_int_equal(st.duplicates, 1);
	assert_int_equal(st.inserted, 1);

	/* malformed input is refused up front */
	assert_int_equal(store_pg__submit(s, "", "{}"), -EINVAL);
	assert_int_equal(store_pg__submit(s, "a\"b", "{}"), -EINVAL);
	assert_int_equal(store_pg__submit(s, "x", "{}\n{}"), -EINVAL);
	store_pg__free(s);
}

static void test_two_hosts(void **state)
{
	struct fx *f = *state;
	struct store_pg *a = open_store(f, "web-1"), *b = open_store(f, "web-2");
	char err[256] = "";
	cJSON *out = NULL, *it;
	int hosts = 0;

	/* the same uids and trace id on both hosts: the host column keeps them apart */
	submit_heal(a, "h", "tr-1");
	submit_heal(b, "h", "tr-1");
	assert_int_equal(wait_long(f->url, "SELECT count(*) FROM heal_events", 12, 10000), 12);
	assert_int_equal(q_long(f->url, "SELECT count(DISTINCT host) FROM heal_traces"), 2);
	assert_int_equal(q_long(f->url, "SELECT count(*) FROM heal_patches"), 2);

	assert_int_equal(store_pg__query_traces(f->url, 1, NULL, 10, &out, err, sizeof(err)), 0);
	assert_non_null(out);
	assert_int_equal(cJSON_GetArraySize(out), 2);
	cJSON_ArrayForEach(it, out)
	{
		const char *h = cJSON_GetStringValue(cJSON_GetObjectItem(it, "host"));

		assert_non_null(h);
		hosts |= !strcmp(h, "web-1") ? 1 : !strcmp(h, "web-2") ? 2 : 4;
		assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(it, "state")),
				    "VERIFY_PASS");
		assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(it, "started")),
				    "2026-01-01T00:00:02.000000Z");
	}
	assert_int_equal(hosts, 3);
	cJSON_Delete(out);

	assert_int_equal(store_pg__query_traces(f->url, 0, "web-2", 10, &out, err, sizeof(err)), 0);
	assert_int_equal(cJSON_GetArraySize(out), 1);
	assert_string_equal(
	    cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(out, 0), "host")), "web-2");
	cJSON_Delete(out);

	assert_int_equal(store_pg__query_traces("host=127.0.0.1 port=1 connect_timeout=2", 1, NULL,
						10, &out, err, sizeof(err)),
			 -ECONNREFUSED);
	assert_null(out);
	assert_true(err[0] != '\0');
	store_pg__free(a);
	store_pg__free(b);
}

static void test_migrations_idempotent(void **state)
{
	struct fx *f = *state;
	struct store_pg *s, *t;
	struct store_pg_stats st;
	int i;

	/* two hosts migrating the same fresh database at once, then a third start */
	s = open_store(f, "web-1");
	t = open_store(f, "web-2");
	submit(s, "m-1", "RCA_READY", "tr-m", 1, "{}");
	submit(t, "m-1", "RCA_READY", "tr-m", 1, "{}");
	assert_int_equal(wait_long(f->url, "SELECT count(*) FROM heal_events", 2, 10000), 2);
	store_pg__free(s);
	store_pg__free(t);
	s = open_store(f, "web-1");
	submit(s, "m-2", "VERIFY_PASS", "tr-m", 2, "{}");
	assert_int_equal(wait_long(f->url, "SELECT count(*) FROM heal_events", 3, 10000), 3);
	assert_int_equal(q_long(f->url, "SELECT count(*) FROM heal_schema_migrations"), 1);
	assert_int_equal(q_long(f->url, "SELECT max(version) FROM heal_schema_migrations"), 1);
	for (i = 0; i < 100; i++) {
		store_pg__stats(s, &st);
		if (st.connected)
			break;
		usleep(10000);
	}
	assert_int_equal(st.failures, 0);
	store_pg__free(s);
}

static void test_submit_never_blocks(void **state)
{
	struct fx *f = *state;
	struct store_pg *s;
	struct store_pg_stats st;
	long long t0, worst = 0, dt, total;
	char uid[32], *line;
	int i;

	/* the database is down for the whole burst */
	assert_true(h_pg_stop(&pg));
	s = open_store(f, "web-1");
	line = ev_line("SYSCALL_FAILURE", NULL, 1, "{\"target\":\"shop\",\"errno\":\"EMFILE\"}");
	total = mono_us();
	for (i = 0; i < 10000; i++) {
		snprintf(uid, sizeof(uid), "b-%d", i);
		t0 = mono_us();
		assert_int_equal(store_pg__submit(s, uid, line), 0);
		dt = mono_us() - t0;
		if (dt > worst)
			worst = dt;
	}
	total = mono_us() - total;
	free(line);
	print_message("10000 submits with the database down: %lld us total, worst %lld us\n", total,
		      worst);
	assert_true(total < 500000);
	assert_true(worst < 50000);
	wait_stat(s, 10000, 10000);
	store_pg__stats(s, &st);
	assert_int_equal(st.spooled, 10000);
	assert_int_equal(st.dropped, 0);

	assert_true(h_pg_start(&pg));
	assert_int_equal(wait_long(f->url, "SELECT count(*) FROM heal_events", 10000, 15000),
			 10000);
	assert_int_equal(q_long(f->url, "SELECT count(DISTINCT event_uid) FROM heal_events"),
			 10000);
	store_pg__free(s);
}

static void test_spool_limit(void **state)
{
	struct fx *f = *state;
	struct store_pg *s;
	struct store_pg_stats st;
	char uid[32], *line;
	int i, j;

	assert_true(h_pg_stop(&pg));
	s = open_store(f, "web-1");
	store_pg__set_spool_max(s, 4096);
	line = ev_line("RCA_READY", "tr-s", 1, "{\"target\":\"shop\"}");
	for (i = 0; i < 200; i++) {
		snprintf(uid, sizeof(uid), "s-%d", i);
		store_pg__submit(s, uid, line);
	}
	free(line);
	for (j = 0; j < 500; j++) {
		store_pg__stats(s, &st);
		if (!st.queued && st.spooled + st.dropped == 200)
			break;
		usleep(10000);
	}
	/* bounded, and what did not fit is counted, not silently lost */
	assert_int_equal(st.spooled + st.dropped, 200);
	assert_true(st.dropped > 0);
	assert_true(st.spool_bytes <= 4096);
	assert_true(st.spool_bytes > 0);
	store_pg__free(s);

	assert_true(h_pg_start(&pg));
	s = open_store(f, "web-1");
	assert_int_equal(
	    wait_long(f->url, "SELECT count(*) FROM heal_events", (long)st.spooled, 10000),
	    (long)st.spooled);
	store_pg__free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_heal_rows, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_outage_replay, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_duplicate_uid, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_two_hosts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrations_idempotent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_submit_never_blocks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_spool_limit, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
