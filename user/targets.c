// SPDX-License-Identifier: MIT
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "heal/log.h"
#include "heal/names.h"
#include "heal/targets.h"
#include "heal/util.h"

#define PROC_BUCKETS 1024
#define PROC_MAX 16384 /* as many as the kernel's watched map holds */
#define CHILD_MAX HEAL_TARGET_MAX
/* a run this long was healthy: the next death starts the backoff over */
#define RESTART_STABLE_MS 10000

struct proc_node {
	struct proc_info info;
	struct proc_node *next;
};

/* A supervised (exec) target: its main process, any restart in progress, supervision's state. */
struct child {
	pid_t pid;          /* 0 when not running */
	int last_status;    /* wait(2) status of the last exit */
	int restarting;     /* stop requested; start again once it is gone */
	int killed;         /* SIGKILL sent after the grace period */
	bool died_first;    /* it was already dead when the restart asked it to stop */
	long deadline_ms;   /* end of the grace period */
	unsigned starts;
	long started_ms;       /* when pid started */
	long died_ms;	       /* when the last one ended */
	pid_t last_pid;	       /* the last one */
	long due_ms;	       /* a supervision restart is due then; 0: none pending */
	unsigned quick_deaths; /* consecutive deaths within RESTART_STABLE_MS of their start */
	unsigned backoff_ms;   /* the wait that led to due_ms */
	unsigned holds;	       /* heals in charge of bringing it back */
	long held_since_ms;
};

struct targets {
	const struct heal_config *cfg;
	struct probe *probe;
	targets_join_fn on_join;
	void *ctx;
	struct proc_node *buckets[PROC_BUCKETS];
	size_t n_procs;
	unsigned long long table_full;
	struct child children[CHILD_MAX]; /* by target index */
	targets_restart_fn on_restart;
	void *restart_ctx;
	targets_restarted_fn on_restarted;
	void *restarted_ctx;
	bool stopping; /* heald is stopping its children: supervision is over */
};

static long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static struct proc_node **bucket(struct targets *ts, uint32_t tgid)
{
	return &ts->buckets[(tgid * 2654435761u) % PROC_BUCKETS];
}

static struct proc_node *find(struct targets *ts, uint32_t tgid)
{
	struct proc_node *n;

	for (n = *bucket(ts, tgid); n; n = n->next)
		if (n->info.tgid == tgid)
			return n;
	return NULL;
}

static void read_comm(uint32_t tgid, char comm[HEAL_COMM_LEN])
{
	char path[64], *buf = NULL;
	size_t len;

	snprintf(path, sizeof(path), "/proc/%u/comm", tgid);
	if (util__read_file(path, HEAL_COMM_LEN, &buf, &len) == 0) {
		if (len && buf[len - 1] == '\n')
			buf[len - 1] = 0;
		snprintf(comm, HEAL_COMM_LEN, "%s", buf);
	}
	free(buf);
}

static int read_exe(uint32_t tgid, char *exe, size_t len)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%u/exe", tgid);
	n = readlink(path, exe, len - 1);
	if (n < 0)
		return -errno;
	exe[n] = 0;
	return 0;
}

/* Insert or update; returns the node or NULL when the table is full. */
static struct proc_node *upsert(struct targets *ts, uint32_t tgid, uint32_t target_id)
{
	struct proc_node *n = find(ts, tgid), **b;

	if (n) {
		n->info.target_id = target_id;
		return n;
	}
	if (ts->n_procs >= PROC_MAX) {
		ts->table_full++;
		return NULL;
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->info.tgid = tgid;
	n->info.target_id = target_id;
	b = bucket(ts, tgid);
	n->next = *b;
	*b = n;
	ts->n_procs++;
	return n;
}

struct targets *targets__new(const struct heal_config *cfg, struct probe *probe,
			     targets_join_fn on_join, void *ctx)
{
	struct targets *ts = calloc(1, sizeof(*ts));

	if (!ts)
		return NULL;
	ts->cfg = cfg;
	ts->probe = probe;
	ts->on_join = on_join;
	ts->ctx = ctx;
	return ts;
}

void targets__free(struct targets *ts)
{
	size_t i;

	if (!ts)
		return;
	for (i = 0; i < PROC_BUCKETS; i++) {
		struct proc_node *n = ts->buckets[i];

		while (n) {
			struct proc_node *next = n->next;

			free(n);
			n = next;
		}
	}
	free(ts);
}

static void joined(struct targets *ts, struct proc_node *n)
{
	if (ts->on_join)
		ts->on_join(ts->ctx, &n->info);
}

/* In the child between fork and exec: only async-signal-safe calls, then exec. */
static void __attribute__((noreturn))
exec_child(const struct heal_target *t, int gate, int logfd, const struct passwd *pw)
{
	sigset_t none;
	char c;
	size_t i;
	int devnull;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* wait until heald has put this pid in the watched map */
	if (read(gate, &c, 1) != 1)
		_exit(127);
	close(gate);
	devnull = open("/dev/null", O_RDONLY);
	if (devnull >= 0)
		dup2(devnull, 0);
	if (logfd >= 0) {
		dup2(logfd, 1);
		dup2(logfd, 2);
	}
	setsid();
	if (t->cwd && chdir(t->cwd))
		_exit(126);
	for (i = 0; i < t->n_env; i++)
		putenv(t->env[i]);
	if (pw) {
		if (setgid(pw->pw_gid) || initgroups(pw->pw_name, pw->pw_gid) ||
		    setuid(pw->pw_uid))
			_exit(126);
	}
	execv(t->exec_path, t->exec);
	_exit(127);
}

/*
 * STATE_DIR/run/NAME.pid holds "PID STARTTIME" of a supervised target's main
 * process, so a heald that starts after one that died without cleaning up
 * (SIGKILL, OOM) finds the orphan that still holds the target's port.
 */
static void pid_file(const struct targets *ts, const struct heal_target *t, char *out, size_t len)
{
	snprintf(out, len, "%s/run/%s.pid", ts->cfg->state_dir, t->name);
}

/* Start time of pid (clock ticks since boot, field 22 of /proc/PID/stat); 0 when gone. */
static unsigned long long proc_start_time(pid_t pid)
{
	char path[64], *buf = NULL, *p;
	unsigned long long v = 0;
	int i;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (util__read_file(path, 4096, &buf, NULL))
		return 0;
	/* the comm field may hold spaces and parentheses: count from its closing one */
	p = strrchr(buf, ')');
	for (i = 3; p && i <= 22; i++)
		p = strchr(p + 1, ' ');
	if (p)
		v = strtoull(p + 1, NULL, 10);
	free(buf);
	return v;
}

static void record_pid(const struct targets *ts, const struct heal_target *t, pid_t pid)
{
	char path[PATH_MAX], dir[PATH_MAX];
	int fd;

	snprintf(dir, sizeof(dir), "%s/run", ts->cfg->state_dir);
	if (util__mkdir_p(dir, 0700))
		return;
	pid_file(ts, t, path, sizeof(path));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	dprintf(fd, "%d %llu\n", pid, proc_start_time(pid));
	close(fd);
}

/* pid is still the process recorded: same start time, running t's binary. */
static bool same_process(const struct heal_target *t, pid_t pid, unsigned long long start)
{
	char exe[PATH_MAX], want[PATH_MAX];
	const char *deleted = " (deleted)";
	size_t n, dl = strlen(deleted);

	if (proc_start_time(pid) != start || read_exe((uint32_t)pid, exe, sizeof(exe)))
		return false; /* gone, reused, or a zombie (no exe) */
	if (!realpath(t->exec_path, want))
		snprintf(want, sizeof(want), "%s", t->exec_path);
	/* the binary may have been replaced since it started */
	n = strlen(exe);
	if (n > dl && strcmp(exe + n - dl, deleted) == 0)
		exe[n - dl] = 0;
	return strcmp(exe, want) == 0;
}

/* Stop what a previous heald started for t and left running (blocks up to the stop timeout). */
static void stop_previous(const struct targets *ts, const struct heal_target *t)
{
	char path[PATH_MAX], *buf = NULL;
	unsigned long long start = 0;
	long deadline;
	int pid = 0;

	pid_file(ts, t, path, sizeof(path));
	if (util__read_file(path, 64, &buf, NULL))
		return;
	if (sscanf(buf, "%d %llu", &pid, &start) != 2 || pid <= 1 || !start ||
	    !same_process(t, pid, start))
		goto out;
	log_warn("target %s: pid %d, started by a previous heald, still runs: stopping it", t->name,
		 pid);
	/* its whole session, as a restart would */
	kill(-pid, SIGTERM);
	kill(pid, SIGTERM);
	deadline = mono_ms() + (long)t->reload.stop_timeout_ms;
	while (same_process(t, pid, start) && mono_ms() < deadline)
		usleep(20000);
	if (same_process(t, pid, start)) {
		log_warn("target %s: pid %d did not stop in time, sending SIGKILL", t->name, pid);
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		deadline = mono_ms() + 1000;
		while (same_process(t, pid, start) && mono_ms() < deadline)
			usleep(20000);
	}
out:
	free(buf);
}

static int start_one(struct targets *ts, const struct heal_target *t, char *err, size_t errlen)
{
	const struct passwd *pw = NULL;
	char logpath[PATH_MAX];
	int gate[2] = { -1, -1 }, logfd = -1, e = 0;
	struct proc_node *n;
	pid_t pid;

	if (t->id == 0 || t->id > CHILD_MAX)
		return -ENOSPC;
	if (t->user) {
		pw = getpwnam(t->user);
		if (!pw) {
			snprintf(err, errlen, "target %s: no such user \"%s\"", t->name, t->user);
			return -ENOENT;
		}
	}
	snprintf(logpath, sizeof(logpath), "%s/%s.log", ts->cfg->state_dir, t->name);
	logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (logfd < 0) {
		e = -errno;
		snprintf(err, errlen, "target %s: cannot open its log %s: %s", t->name, logpath,
			 strerror(-e));
		return e;
	}
	if (pipe2(gate, O_CLOEXEC)) {
		e = -errno;
		goto cleanup;
	}
	pid = fork();
	if (pid < 0) {
		e = -errno;
		snprintf(err, errlen, "target %s: fork: %s", t->name, strerror(-e));
		goto cleanup;
	}
	if (pid == 0) {
		close(gate[1]);
		exec_child(t, gate[0], logfd, pw);
	}
	close(gate[0]);
	gate[0] = -1;
	e = probe__watch(ts->probe, (uint32_t)pid, t);
	if (e) {
		snprintf(err, errlen, "target %s: cannot watch pid %d: %s", t->name, pid, strerror(-e));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		goto cleanup;
	}
	ts->children[t->id - 1].pid = pid;
	ts->children[t->id - 1].starts++;
	ts->children[t->id - 1].started_ms = mono_ms();
	/* whoever started it, supervision has nothing left to do */
	ts->children[t->id - 1].due_ms = 0;
	n = upsert(ts, (uint32_t)pid, t->id);
	if (n) {
		snprintf(n->info.exe, sizeof(n->info.exe), "%s", t->exec[0]);
		snprintf(n->info.comm, sizeof(n->info.comm), "%s",
			 strrchr(t->exec[0], '/') ? strrchr(t->exec[0], '/') + 1 : t->exec[0]);
	}
	if (write(gate[1], "g", 1) != 1) {
		e = -errno;
		goto cleanup;
	}
	record_pid(ts, t, pid);
	log_info("started target %s: pid %d (%s)", t->name, pid, t->exec[0]);
cleanup:
	if (gate[0] >= 0)
		close(gate[0]);
	if (gate[1] >= 0)
		close(gate[1]);
	close(logfd);
	return e;
}

int targets__start(struct targets *ts, char *err, size_t errlen)
{
	size_t i;
	int e;

	for (i = 0; i < ts->cfg->n_targets; i++) {
		const struct heal_target *t = &ts->cfg->targets[i];

		if (!t->exec)
			continue;
		stop_previous(ts, t);
		e = start_one(ts, t, err, errlen);
		if (e)
			return e;
	}
	targets__rescan(ts);
	return 0;
}

static bool match_cgroup(const char *want, uint32_t tgid)
{
	char path[64], *buf = NULL, *line, *save = NULL;
	const char *rel = want;
	const char *root = util__cgroup2_root();
	bool hit = false;

	/* accept both "/sys/fs/cgroup/.../x" and "/x" or "x" relative to the v2 root */
	if (strncmp(rel, root, strlen(root)) == 0)
		rel += strlen(root);
	while (*rel == '/')
		rel++;
	snprintf(path, sizeof(path), "/proc/%u/cgroup", tgid);
	if (util__read_file(path, 65536, &buf, NULL))
		return false;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "0::/", 4) == 0) {
			hit = strcmp(line + 4, rel) == 0;
			break;
		}
	}
	free(buf);
	return hit;
}

static bool read_pid_file(const char *file, uint32_t *pid)
{
	char *buf = NULL;
	long v;
	bool ok;

	if (util__read_file(file, 64, &buf, NULL))
		return false;
	v = strtol(buf, NULL, 10);
	free(buf);
	ok = v > 0;
	*pid = (uint32_t)v;
	return ok;
}

static const struct heal_target *match_proc(struct targets *ts, uint32_t tgid, const char *exe,
					    const char *comm)
{
	size_t i;

	for (i = 0; i < ts->cfg->n_targets; i++) {
		const struct heal_target *t = &ts->cfg->targets[i];
		const struct heal_match *m = &t->match;
		uint32_t filepid;

		if (!t->has_match)
			continue;
		if (m->exe && exe[0] && strcmp(m->exe, exe) == 0)
			return t;
		if (m->comm && strcmp(m->comm, comm) == 0)
			return t;
		if (m->pid_file && read_pid_file(m->pid_file, &filepid) && filepid == tgid)
			return t;
		if (m->cgroup && match_cgroup(m->cgroup, tgid))
			return t;
	}
	return NULL;
}

int targets__rescan(struct targets *ts)
{
	uint32_t self = (uint32_t)getpid();
	struct dirent *de;
	bool any = false;
	size_t i;
	DIR *d;
	int joined_n = 0;

	for (i = 0; i < ts->cfg->n_targets; i++)
		any |= ts->cfg->targets[i].has_match;
	if (!any)
		return 0;
	d = opendir("/proc");
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char exe[PATH_MAX] = "", comm[HEAL_COMM_LEN] = "";
		const struct heal_target *t;
		struct proc_node *n;
		char *end;
		unsigned long v = strtoul(de->d_name, &end, 10);
		uint32_t tgid = (uint32_t)v;

		if (*end || v == 0 || tgid == self || find(ts, tgid))
			continue;
		if (read_exe(tgid, exe, sizeof(exe)))
			continue; /* kernel thread or gone */
		read_comm(tgid, comm);
		t = match_proc(ts, tgid, exe, comm);
		if (!t || probe__watch(ts->probe, tgid, t))
			continue;
		n = upsert(ts, tgid, t->id);
		if (!n)
			continue;
		snprintf(n->info.exe, sizeof(n->info.exe), "%s", exe);
		memcpy(n->info.comm, comm, sizeof(comm));
		log_info("target %s: watching pid %u (%s)", t->name, tgid, exe);
		joined(ts, n);
		joined_n++;
	}
	closedir(d);
	return joined_n;
}

void targets__on_proc(struct targets *ts, const struct heal_rec_proc *rec)
{
	uint32_t tgid = rec->hdr.tgid;
	struct proc_node *n, *parent;

	switch (rec->kind) {
	case HEAL_PROC_FORK:
		n = upsert(ts, tgid, rec->hdr.target_id);
		if (!n)
			return;
		parent = find(ts, rec->parent_tgid);
		if (parent)
			snprintf(n->info.exe, sizeof(n->info.exe), "%s", parent->info.exe);
		memcpy(n->info.comm, rec->hdr.comm, sizeof(n->info.comm));
		break;
	case HEAL_PROC_EXEC:
		n = upsert(ts, tgid, rec->hdr.target_id);
		if (!n)
			return;
		/* /proc gives the resolved path; the exec'd name may be relative */
		if (read_exe(tgid, n->info.exe, sizeof(n->info.exe)))
			snprintf(n->info.exe, sizeof(n->info.exe), "%s", rec->filename);
		memcpy(n->info.comm, rec->hdr.comm, sizeof(n->info.comm));
		joined(ts, n);
		break;
	default:
		break; /* exit: forgotten once its events are out */
	}
}

const struct proc_info *targets__lookup(struct targets *ts, uint32_t tgid)
{
	struct proc_node *n = find(ts, tgid);

	return n ? &n->info : NULL;
}

void targets__forget(struct targets *ts, uint32_t tgid)
{
	struct proc_node **pp = bucket(ts, tgid), *n;

	for (; (n = *pp); pp = &n->next) {
		if (n->info.tgid == tgid) {
			*pp = n->next;
			free(n);
			ts->n_procs--;
			return;
		}
	}
}

/* What a wait(2) status says: "exit code 3", "SIGSEGV, core dumped". */
static void status_text(int status, char *buf, size_t len)
{
	const char *sig;

	if (WIFEXITED(status)) {
		snprintf(buf, len, "exit code %d", WEXITSTATUS(status));
		return;
	}
	sig = names__signal_name(WTERMSIG(status));
	if (sig)
		snprintf(buf, len, "%s%s", sig, WCOREDUMP(status) ? ", core dumped" : "");
	else
		snprintf(buf, len, "signal %d", WTERMSIG(status));
}

/* One more death; only a run of them, each soon after its start, makes the backoff grow. */
static void count_death(struct child *c, long now)
{
	if (now - c->started_ms >= RESTART_STABLE_MS)
		c->quick_deaths = 0;
	c->quick_deaths++;
}

/* Supervision: a restart after the backoff that this run of quick deaths has earned. */
static void schedule(const struct heal_target *t, struct child *c, long now)
{
	unsigned long long backoff = t->restart.backoff_ms;
	unsigned k;

	for (k = 1; k < c->quick_deaths && backoff < t->restart.max_backoff_ms; k++)
		backoff *= 2;
	if (backoff > t->restart.max_backoff_ms)
		backoff = t->restart.max_backoff_ms;
	c->backoff_ms = (unsigned)backoff;
	c->due_ms = now + (long)backoff; /* never 0: the monotonic clock counts from boot */
}

/* The main process ended and nobody asked for it: supervision takes it from here. */
static void ended(struct targets *ts, const struct heal_target *t, struct child *c, long now)
{
	char how[64];

	status_text(c->last_status, how, sizeof(how));
	if (ts->stopping) {
		log_info("target %s: pid %d ended (%s)", t->name, c->last_pid, how);
		return;
	}
	if (t->restart.policy == HEAL_RESTART_NEVER) {
		/* a one-shot job that succeeded is no news */
		if (WIFEXITED(c->last_status) && WEXITSTATUS(c->last_status) == 0)
			log_info("target %s: pid %d ended (%s)", t->name, c->last_pid, how);
		else
			log_warn("target %s: pid %d ended (%s); restart is \"never\": left down",
				 t->name, c->last_pid, how);
		return;
	}
	count_death(c, now);
	schedule(t, c, now);
	log_warn("target %s: pid %d ended (%s); restart in %u ms unless a heal does it first",
		 t->name, c->last_pid, how, c->backoff_ms);
}

static void restart_done(struct targets *ts, const struct heal_target *t, struct child *c)
{
	char err[256] = "";
	int e;

	c->restarting = 0;
	c->killed = 0;
	c->died_first = false;
	e = start_one(ts, t, err, sizeof(err));
	if (e) {
		log_warn("restart of %s failed: %s", t->name, err[0] ? err : strerror(-e));
		/* down with nothing pending: supervision tries again */
		if (!ts->stopping && t->restart.policy == HEAL_RESTART_ALWAYS) {
			c->quick_deaths++;
			schedule(t, c, mono_ms());
		}
	}
	if (ts->on_restart)
		ts->on_restart(ts->restart_ctx, t->id, e ? e : (int)c->pid);
}

/* Supervision's restart, once due. */
static void supervised_start(struct targets *ts, const struct heal_target *t, struct child *c,
			     long now)
{
	struct targets_restarted r = {
		.target_id = t->id,
		.previous_pid = c->last_pid,
		.status = c->last_status,
		.uptime_ms = c->died_ms - c->started_ms,
		.attempt = c->quick_deaths,
		.backoff_ms = c->backoff_ms,
		.down_ms = now - c->died_ms,
	};
	char err[256] = "";
	int e;

	c->due_ms = 0;
	e = start_one(ts, t, err, sizeof(err));
	if (e) {
		c->quick_deaths++;
		schedule(t, c, now);
		log_warn("target %s: restart failed: %s; next try in %u ms", t->name,
			 err[0] ? err : strerror(-e), c->backoff_ms);
		return;
	}
	r.pid = c->pid;
	if (ts->on_restarted)
		ts->on_restarted(ts->restarted_ctx, &r);
}

/* Start c if its supervision restart is due and no heal in charge still has its chance. */
static void supervise(struct targets *ts, const struct heal_target *t, struct child *c, long now)
{
	long held_from = c->held_since_ms > c->died_ms ? c->held_since_ms : c->died_ms;

	if (!c->due_ms || c->pid || c->restarting || ts->stopping || now < c->due_ms)
		return;
	/* a heal that stalls (an LLM, a build) must not keep the target down for good */
	if (c->holds && now < held_from + TARGETS_HOLD_MAX_MS)
		return;
	if (c->holds)
		log_warn("target %s: the heal in charge did not start it in %d s: supervision does",
			 t->name, TARGETS_HOLD_MAX_MS / 1000);
	supervised_start(ts, t, c, now);
}

int targets__reap(struct targets *ts)
{
	int status, reaped = 0;
	size_t i;

	/* only our targets: other children (commands on the worker) are waited for by their runner */
	for (i = 0; i < ts->cfg->n_targets && i < CHILD_MAX; i++) {
		struct child *c = &ts->children[i];

		if (c->pid <= 0 || waitpid(c->pid, &status, WNOHANG) != c->pid)
			continue;
		reaped++;
		c->last_pid = c->pid;
		c->pid = 0;
		c->last_status = status;
		c->died_ms = mono_ms();
		if (c->restarting) {
			log_info("target %s: pid %d ended (status 0x%x)", ts->cfg->targets[i].name,
				 c->last_pid, status);
			/* a crash a heal restarts before its exit was reaped is still a death */
			if (c->died_first || (WIFSIGNALED(status) && WTERMSIG(status) != SIGTERM &&
					      WTERMSIG(status) != SIGKILL))
				count_death(c, c->died_ms);
			restart_done(ts, &ts->cfg->targets[i], c);
		} else {
			ended(ts, &ts->cfg->targets[i], c, c->died_ms);
		}
	}
	return reaped;
}

int targets__restart(struct targets *ts, uint32_t target_id, unsigned stop_timeout_ms)
{
	const struct heal_target *t = config__target_by_id(ts->cfg, target_id);
	struct child *c;

	if (!t || !t->exec)
		return -EOPNOTSUPP; /* only supervised targets can be restarted by heald */
	c = &ts->children[target_id - 1];
	if (c->restarting)
		return -EALREADY;
	c->restarting = 1;
	c->killed = 0;
	c->deadline_ms = mono_ms() + (long)stop_timeout_ms;
	if (c->pid > 0) {
		siginfo_t si = { 0 };

		/* exited but not reaped yet (WNOWAIT leaves it for targets__reap) */
		c->died_first =
			waitid(P_PID, (id_t)c->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
			si.si_pid == c->pid;
		/* the whole session: the target may have children of its own */
		if (kill(-c->pid, SIGTERM) && kill(c->pid, SIGTERM))
			log_debug("target %s: SIGTERM: %s", t->name, strerror(errno));
		return 0;
	}
	restart_done(ts, t, c);
	return 0;
}

void targets__tick(struct targets *ts)
{
	long now = mono_ms();
	size_t i;

	for (i = 0; i < ts->cfg->n_targets && i < CHILD_MAX; i++) {
		struct child *c = &ts->children[i];

		supervise(ts, &ts->cfg->targets[i], c, now);
		if (!c->restarting || c->pid <= 0 || c->killed || now < c->deadline_ms)
			continue;
		log_warn("target %s: pid %d did not stop in time, sending SIGKILL",
			 ts->cfg->targets[i].name, c->pid);
		kill(-c->pid, SIGKILL);
		kill(c->pid, SIGKILL);
		c->killed = 1;
	}
}

pid_t targets__main_pid(const struct targets *ts, uint32_t target_id)
{
	if (target_id == 0 || target_id > CHILD_MAX)
		return 0;
	return ts->children[target_id - 1].pid;
}

int targets__signal(struct targets *ts, uint32_t target_id, int sig)
{
	struct proc_node *n;
	size_t i;
	int sent = 0;

	for (i = 0; i < PROC_BUCKETS; i++)
		for (n = ts->buckets[i]; n; n = n->next)
			if (n->info.target_id == target_id && kill((pid_t)n->info.tgid, sig) == 0)
				sent++;
	return sent ? sent : -ESRCH;
}

void targets__on_restart(struct targets *ts, targets_restart_fn fn, void *ctx)
{
	ts->on_restart = fn;
	ts->restart_ctx = ctx;
}

void targets__on_restarted(struct targets *ts, targets_restarted_fn fn, void *ctx)
{
	ts->on_restarted = fn;
	ts->restarted_ctx = ctx;
}

static struct child *supervised(struct targets *ts, uint32_t target_id)
{
	const struct heal_target *t = config__target_by_id(ts->cfg, target_id);

	return t && t->exec && target_id <= CHILD_MAX ? &ts->children[target_id - 1] : NULL;
}

void targets__hold(struct targets *ts, uint32_t target_id)
{
	struct child *c = supervised(ts, target_id);

	if (c && !c->holds++)
		c->held_since_ms = mono_ms();
}

void targets__release(struct targets *ts, uint32_t target_id)
{
	struct child *c = supervised(ts, target_id);

	if (c && c->holds)
		c->holds--;
}

int targets__children(const struct targets *ts)
{
	size_t i;
	int n = 0;

	for (i = 0; i < CHILD_MAX; i++)
		n += ts->children[i].pid > 0;
	return n;
}

void targets__signal_children(struct targets *ts, int sig)
{
	size_t i;

	ts->stopping = true;
	for (i = 0; i < CHILD_MAX; i++) {
		ts->children[i].restarting = 0;
		ts->children[i].due_ms = 0;
		/* the whole session, as a restart does: what it started must not outlive it */
		if (ts->children[i].pid > 0 && kill(-ts->children[i].pid, sig))
			kill(ts->children[i].pid, sig);
	}
}
