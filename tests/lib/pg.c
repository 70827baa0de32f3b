// SPDX-License-Identifier: MIT
/* A throwaway PostgreSQL server for tests; see pg.h. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "pg.h"

static int pg_free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* Run argv as the server's user, output to DIR/cmd.log; true on exit 0. */
static bool pg_run(struct h_pg *pg, char *const argv[])
{
	char log[PATH_MAX + 16];
	int status, fd;
	pid_t pid;

	snprintf(log, sizeof(log), "%s/cmd.log", pg->dir);
	pid = fork();
	if (pid < 0)
		return false;
	if (pid == 0) {
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		fd = open("/dev/null", O_RDONLY);
		if (fd >= 0)
			dup2(fd, 0);
		if (geteuid() == 0 && (setgroups(0, NULL) || setgid(pg->gid) || setuid(pg->uid)))
			_exit(126);
		if (chdir(pg->dir) < 0)
			_exit(126);
		execv(argv[0], argv);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return false;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

bool h_pg_init(struct h_pg *pg)
{
	char initdb[PATH_MAX + 16], data[PATH_MAX + 16], sock[PATH_MAX + 16];
	const char *env = getenv("PG_BINDIR");
	struct passwd *pw;
	glob_t g;

	memset(pg, 0, sizeof(*pg));
	if (env && *env) {
		snprintf(pg->bindir, sizeof(pg->bindir), "%s", env);
	} else if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) == 0) {
		/* the highest version: glob sorts, and 15 < 16 as strings for two digits */
		snprintf(pg->bindir, sizeof(pg->bindir), "%s", g.gl_pathv[g.gl_pathc - 1]);
		*strrchr(pg->bindir, '/') = '\0';
		globfree(&g);
	} else {
		snprintf(pg->why, sizeof(pg->why),
			 "no PostgreSQL server binaries (apt-get install postgresql)");
		return false;
	}
	snprintf(initdb, sizeof(initdb), "%s/initdb", pg->bindir);
	if (access(initdb, X_OK) < 0) {
		snprintf(pg->why, sizeof(pg->why), "%s: %s", initdb, strerror(errno));
		return false;
	}
	pg->uid = geteuid();
	pg->gid = getegid();
	if (pg->uid == 0) {
		pw = getpwnam("postgres");
		if (!pw)
			pw = getpwnam("nobody");
		if (!pw) {
			snprintf(pg->why, sizeof(pg->why),
				 "running as root and no postgres or nobody user");
			return false;
		}
		pg->uid = pw->pw_uid;
		pg->gid = pw->pw_gid;
	}
	snprintf(pg->dir, sizeof(pg->dir), "/tmp/heal-test-pg-XXXXXX");
	if (!mkdtemp(pg->dir) || chown(pg->dir, pg->uid, pg->gid) < 0 || chmod(pg->dir, 0700) < 0) {
		snprintf(pg->why, sizeof(pg->why), "temp dir: %s", strerror(errno));
		return false;
	}
	snprintf(data, sizeof(data), "%s/data", pg->dir);
	snprintf(sock, sizeof(sock), "%s/sock", pg->dir);
	if (mkdir(sock, 0700) < 0 || chown(sock, pg->uid, pg->gid) < 0) {
		snprintf(pg->why, sizeof(pg->why), "socket dir: %s", strerror(errno));
		return false;
	}
	pg->port = pg_free_port();
	{
		char *argv[] = {initdb,	 "-D",	       data,	    "-A",
				"trust", "-U",	       "postgres",  "-E",
				"UTF8",	 "--locale=C", "--no-sync", "--no-instructions",
				NULL};

		if (!pg_run(pg, argv)) {
			snprintf(pg->why, sizeof(pg->why), "initdb failed (see %s/cmd.log)",
				 pg->dir);
			return false;
		}
	}
	snprintf(pg->url, sizeof(pg->url), "host=127.0.0.1 port=%d user=postgres dbname=postgres",
		 pg->port);
	return true;
}

bool h_pg_start(struct h_pg *pg)
{
	char ctl[PATH_MAX + 16], data[PATH_MAX + 16], log[PATH_MAX + 16], opts[PATH_MAX + 160];
	char *argv[] = {ctl,  "-D", data, "-l", log,	 "-o", opts,
			"-w", "-t", "20", "-s", "start", NULL};

	snprintf(ctl, sizeof(ctl), "%s/pg_ctl", pg->bindir);
	snprintf(data, sizeof(data), "%s/data", pg->dir);
	snprintf(log, sizeof(log), "%s/server.log", pg->dir);
	/* durability is not under test: fsync off keeps start/stop fast */
	snprintf(
	    opts, sizeof(opts),
	    "-p %d -k %s/sock -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
	    pg->port, pg->dir);
	return pg_run(pg, argv);
}

bool h_pg_stop(struct h_pg *pg)
{
	char ctl[PATH_MAX + 16], data[PATH_MAX + 16];
	char *argv[] = {ctl, "-D", data, "-m", "fast", "-w", "-t", "20", "-s", "stop", NULL};

	snprintf(ctl, sizeof(ctl), "%s/pg_ctl", pg->bindir);
	snprintf(data, sizeof(data), "%s/data", pg->dir);
	return pg_run(pg, argv);
}

bool h_pg_create_db(struct h_pg *pg, const char *name, char *url, size_t len)
{
	char sql[160];
	PGconn *c = PQconnectdb(pg->url);
	PGresult *r;
	bool ok;

	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "h_pg_create_db: %s", PQerrorMessage(c));
		PQfinish(c);
		return false;
	}
	/* test-chosen identifier, not data: quoted all the same */
	snprintf(sql, sizeof(sql), "CREATE DATABASE \"%s\"", name);
	r = PQexec(c, sql);
	ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok)
		fprintf(stderr, "h_pg_create_db: %s", PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(c);
	snprintf(url, len, "host=127.0.0.1 port=%d user=postgres dbname=%s", pg->port, name);
	return ok;
}

static int pg_rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(p);
}

void h_pg_free(struct h_pg *pg)
{
	const char *keep = getenv("HEAL_KEEP");
	char pid[PATH_MAX + 32];

	if (!pg->dir[0])
		return;
	snprintf(pid, sizeof(pid), "%s/data/postmaster.pid", pg->dir);
	if (access(pid, F_OK) == 0)
		h_pg_stop(pg);
	if (!(keep && !strcmp(keep, "1")))
		nftw(pg->dir, pg_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	pg->dir[0] = '\0';
}
