/* SPDX-License-Identifier: MIT */
/*
 * A throwaway PostgreSQL server for tests: initdb in a temporary directory,
 * trust auth, 127.0.0.1 on a free port plus a private unix socket dir. Runs
 * as the postgres user (or nobody) when the test runs as root, since
 * postgres refuses root.
 */
#ifndef HEAL_TEST_PG_H
#define HEAL_TEST_PG_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

struct h_pg {
	char dir[PATH_MAX];    /* the temporary directory: data/, sock/, log */
	char bindir[PATH_MAX]; /* initdb, pg_ctl */
	int port;
	uid_t uid; /* the server's user */
	gid_t gid;
	char url[PATH_MAX + 64]; /* libpq connection string for the postgres database */
	char why[256];		 /* why h_pg_init failed (for a skip message) */
};

/* Find the binaries ($PG_BINDIR or /usr/lib/postgresql/NN/bin) and initdb; false with why set. */
bool h_pg_init(struct h_pg *pg);
/* Start the server and wait until it accepts connections (pg_ctl -w). */
bool h_pg_start(struct h_pg *pg);
/* Stop it (fast shutdown: open connections are cut, as in an outage). */
bool h_pg_stop(struct h_pg *pg);
/* CREATE DATABASE name; writes its connection string to url. */
bool h_pg_create_db(struct h_pg *pg, const char *name, char *url, size_t len);
/* Stop the server if running and remove the directory (kept with HEAL_KEEP=1). */
void h_pg_free(struct h_pg *pg);

#endif /* HEAL_TEST_PG_H */
