// SPDX-License-Identifier: MIT
/*
 * End to end: heald writes a heal's events into a real PostgreSQL; with the
 * database stopped it spools, and when it is back every event arrives
 * exactly once; healctl --postgres shows the fleet.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shopenv.h"

/* one translation unit: tests/lib/pg.c is not linked into every test */
#include "../lib/pg.c"

#define BROKEN_SCHEMA "{\"required\": [\"order_id\", \"reason\", \"rma_code\"]}\n"
#define A_RETURN "{\"order_id\": \"ord-7\", \"reason\": \"damaged\"}"

static long long scalar(const char *url, const char *sql)
{
	PGconn *c = PQconnectdb(url);
	long long v = -1;
	PGresult *r;

	if (PQstatus(c) == CONNECTION_OK) {
		r = PQexec(c, sql);
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
			v = atoll(PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	PQfinish(c);
	return v;
}

static int count_lines(const char *path)
{
	char *t = h_read(path, NULL), *p;
	int n = 0;

	for (p = t; p && *p; p++)
		n += *p == '\n';
	free(t);
	return n;
}

static void heal_once(struct shop *s)
{
	char schema[PATH_MAX + 64];
	int healed = h_heald_count(&s->h, "HEALED"), i;

	shop_path(schema, sizeof(schema), s, "returns-schema.json");
	h_write(schema, BROKEN_SCHEMA);
	h_http(s->port, "POST", "/returns", A_RETURN);
	for (i = 0; i < 200 && h_heald_count(&s->h, "HEALED") == healed; i++)
		h_heald_drain(&s->h, 100);
	ASSERT_EQ(h_heald_count(&s->h, "HEALED"), healed + 1, "healed");
}

static void test_store_outage(void)
{
	char url[PATH_MAX + 128], top[PATH_MAX + 256], journal[PATH_MAX + 64], *out = NULL;
	struct shop_opts o = { .top = top };
	struct h_pg pg = { 0 };
	struct shop s;
	long long rows, distinct;
	int lines, i;

	if (!h_need_bpf())
		return;
	if (!h_pg_init(&pg) || !h_pg_start(&pg)) {
		h_skip("no PostgreSQL server to test with: %s (make deps installs it)", pg.why);
		h_pg_free(&pg);
		return;
	}
	if (!ASSERT_TRUE(h_pg_create_db(&pg, "fleet", url, sizeof(url)), "a database"))
		goto out;
	snprintf(top, sizeof(top), "\"store\": {\"postgres\": \"%s\", \"host\": \"web-1\"},", url);
	if (!ASSERT_TRUE(shop_start_opts(&s, &o), "shop up under heald"))
		goto out_pg;
	heal_once(&s);
	/* the database goes away; heals go on; events wait in the spool */
	ASSERT_TRUE(h_pg_stop(&pg), "database stopped");
	h_http(s.port, "POST", "/returns", A_RETURN); /* healed schema: just traffic */
	heal_once(&s);
	ASSERT_TRUE(h_pg_start(&pg), "database back");
	snprintf(journal, sizeof(journal), "%s/state/journal/current.jsonl", s.h.dir);
	/* heald reconnects (backing off up to 5 s) and replays its spool in order */
	for (i = 0, rows = -1; i < 150; i++) {
		lines = count_lines(journal);
		rows = scalar(url, "select count(*) from heal_events where host = 'web-1'");
		if (rows == lines)
			break;
		usleep(100000);
	}
	ASSERT_EQ(h_heald_stop(&s.h), 0, "heald exits 0 (flushing its store)");
	s.started = false;
	lines = count_lines(journal);
	rows = scalar(url, "select count(*) from heal_events where host = 'web-1'");
	distinct = scalar(url, "select count(distinct event_uid) from heal_events where host = 'web-1'");
	ASSERT_GE(lines, 16, "two heals' events in the journal");
	ASSERT_EQ(rows, lines, "every event of the journal is in the database");
	ASSERT_EQ(distinct, rows, "none twice");
	ASSERT_EQ(scalar(url, "select count(*) from heal_traces where host = 'web-1' and state = 'HEALED'"),
		  2, "two healed traces");
	ASSERT_GE(scalar(url, "select count(*) from heal_patches where host = 'web-1' and diff like '%rma_code%'"),
		  1, "the patches with their diffs");
	{
		char *argv[] = { (char *)h_bin("healctl"), "--postgres", url, "--json", "traces", "--all-hosts",
				 NULL };
		cJSON *arr;

		ASSERT_EQ(h_run(argv, &out), 0, "healctl --postgres traces --all-hosts");
		arr = out ? cJSON_Parse(out) : NULL;
		ASSERT_EQ(cJSON_GetArraySize(arr), 2, "the fleet view lists both heals");
		ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "host")),
			     "web-1", "with their host");
		cJSON_Delete(arr);
	}
out_pg:
	shop_stop(&s);
out:
	free(out);
	h_pg_free(&pg);
}

int main(void)
{
	h_subtest("store_outage_exactly_once", test_store_outage);
	return h_summary("test_fleet");
}
