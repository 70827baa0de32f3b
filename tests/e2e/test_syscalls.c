// SPDX-License-Identifier: MIT
/* End to end: failed syscalls of real processes, seen by the real kernel programs. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define WAIT_MS 10000

static int log_int(struct h_heald *h, const char *target, const char *field)
{
	char *log = h_target_log(h, target), *p;
	int v = -1;

	p = strstr(log, field);
	if (p)
		v = atoi(p + strlen(field));
	free(log);
	return v;
}

static void check_common(const cJSON *ev, const char *target)
{
	ASSERT_STREQ(h_str(ev, "target"), target, "payload.target");
	ASSERT_STREQ(h_str(ev, "comm"), "failgen", "payload.comm");
	ASSERT_STREQ(h_str(ev, "exe"), h_bin("failgen"), "payload.exe");
	ASSERT_GE(h_num(ev, "pid"), 1, "payload.pid");
	ASSERT_GE(h_num(ev, "tid"), 1, "payload.tid");
	ASSERT_OK_PTR(cJSON_GetObjectItem(ev, "timestamp"), "timestamp");
}

static void test_missing_file(void)
{
	struct h_heald h;
	const cJSON *ev;
	const char *ts;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(h_heald_start(&h,
		"{\"state_dir\": \"@STATE@\", \"mode\": \"observe\", \"targets\": [{\"name\": \"shop\","
		" \"exec\": [\"@FAILGEN@\", \"missing-file\", \"--path\", \"/tmp/heal-failgen-missing/shop.json\"],"
		" \"detect\": {\"syscalls\": [{\"syscall\": [\"openat\", \"connect\"], \"errno\": [\"ENOENT\", \"ECONNREFUSED\"]}]}}]}"),
		"heald starts"))
		goto out;
	ev = h_heald_wait(&h, "SYSCALL_FAILURE", NULL, WAIT_MS);
	if (!ASSERT_OK_PTR(ev, "SYSCALL_FAILURE event"))
		goto out;
	ASSERT_STREQ(cJSON_GetObjectItem(ev, "key")->valuestring,
		     "shop:SYSCALL_FAILURE:openat:ENOENT:/tmp/heal-failgen-missing/shop.json", "key");
	check_common(ev, "shop");
	ASSERT_STREQ(h_str(ev, "syscall"), "openat", "syscall");
	ASSERT_STREQ(h_str(ev, "errno"), "ENOENT", "errno");
	ASSERT_EQ(h_num(ev, "ret"), -2, "ret");
	ASSERT_STREQ(h_str(ev, "path"), "/tmp/heal-failgen-missing/shop.json", "path");
	ASSERT_EQ(h_num(ev, "count"), 1, "count");
	/* RFC 3339, UTC, microseconds: 2026-11-25T00:27:03.123456Z */
	ts = cJSON_GetObjectItem(ev, "timestamp")->valuestring;
	ASSERT_EQ(strlen(ts), 27, "timestamp length");
	ASSERT_TRUE(ts[10] == 'T' && ts[19] == '.' && ts[26] == 'Z', "timestamp shape");
	ASSERT_TRUE(cJSON_IsNull(cJSON_GetObjectItem(ev, "trace_id")), "trace_id null before healing");
out:
	ASSERT_EQ(h_heald_stop(&h), 0, "heald exits 0 on SIGTERM");
	h_heald_free(&h);
}

static void test_refused_connect(void)
{
	struct h_heald h;
	const cJSON *ev;
	char addr[64];
	int port;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(h_heald_start(&h,
		"{\"state_dir\": \"@STATE@\", \"mode\": \"observe\", \"targets\": [{\"name\": \"payments-client\","
		" \"exec\": [\"@FAILGEN@\", \"refused-connect\"],"
		" \"detect\": {\"syscalls\": [{\"syscall\": \"connect\", \"errno\": \"ECONNREFUSED\"}]}}]}"),
		"heald starts"))
		goto out;
	ev = h_heald_wait(&h, "SYSCALL_FAILURE", NULL, WAIT_MS);
	if (!ASSERT_OK_PTR(ev, "SYSCALL_FAILURE event"))
		goto out;
	h_heald_wait(&h, "SYSCALL_COUNTS", NULL, WAIT_MS); /* the process is done: its log is complete */
	port = log_int(&h, "payments-client", "port=");
	ASSERT_GE(port, 1, "failgen printed the port");
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	check_common(ev, "payments-client");
	ASSERT_STREQ(h_str(ev, "syscall"), "connect", "syscall");
	ASSERT_STREQ(h_str(ev, "errno"), "ECONNREFUSED", "errno");
	ASSERT_EQ(h_num(ev, "ret"), -111, "ret");
	ASSERT_STREQ(h_str(ev, "addr"), addr, "addr");
	ASSERT_GE(h_num(ev, "fd"), 3, "fd");
	ASSERT_TRUE(strstr(cJSON_GetObjectItem(ev, "key")->valuestring, addr) != NULL,
		    "the address is part of the key");
out:
	ASSERT_EQ(h_heald_stop(&h), 0, "heald exits 0");
	h_heald_free(&h);
}

static void test_emfile(void)
{
	struct h_heald h;
	const cJSON *ev;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(h_heald_start(&h,
		"{\"state_dir\": \"@STATE@\", \"mode\": \"observe\", \"targets\": [{\"name\": \"leaky\","
		" \"exec\": [\"@FAILGEN@\", \"emfile\"],"
		" \"detect\": {\"syscalls\": [{\"syscall\": \"*\", \"errno\": \"EMFILE\"}]}}]}"),
		"heald starts"))
		goto out;
	ev = h_heald_wait(&h, "SYSCALL_FAILURE", NULL, WAIT_MS);
	if (!ASSERT_OK_PTR(ev, "SYSCALL_FAILURE event"))
		goto out;
	check_common(ev, "leaky");
	ASSERT_STREQ(h_str(ev, "syscall"), "openat", "syscall (wildcard rule)");
	ASSERT_STREQ(h_str(ev, "errno"), "EMFILE", "errno");
	ASSERT_EQ(h_num(ev, "ret"), -24, "ret");
	ASSERT_STREQ(h_str(ev, "path"), "/dev/null", "path");
out:
	ASSERT_EQ(h_heald_stop(&h), 0, "heald exits 0");
	h_heald_free(&h);
}

static void test_enospc(void)
{
	struct h_heald h;
	const cJSON *ev;
	int fd;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(h_heald_start(&h,
		"{\"state_dir\": \"@STATE@\", \"mode\": \"observe\", \"targets\": [{\"name\": \"spooler\","
		" \"exec\": [\"@FAILGEN@\", \"enospc\"],"
		" \"detect\": {\"syscalls\": [{\"syscall\": [\"write\", \"openat\"], \"errno\": [\"ENOSPC\"]}]}}]}"),
		"heald starts"))
		goto out;
	ev = h_heald_wait(&h, "SYSCALL_FAILURE", NULL, WAIT_MS);
	if (!ASSERT_OK_PTR(ev, "SYSCALL_FAILURE event"))
		goto out;
	h_heald_wait(&h, "SYSCALL_COUNTS", NULL, WAIT_MS);
	fd = log_int(&h, "spooler", "fd=");
	check_common(ev, "spooler");
	ASSERT_STREQ(h_str(ev, "syscall"), "write", "syscall");
	ASSERT_STREQ(h_str(ev, "errno"), "ENOSPC", "errno");
	ASSERT_EQ(h_num(ev, "ret"), -28, "ret");
	ASSERT_EQ(h_num(ev, "fd"), fd, "fd is the spool file's");
	ASSERT_STREQ(cJSON_GetObjectItem(ev, "key")->valuestring, "spooler:SYSCALL_FAILURE:write:ENOSPC",
		     "key");
out:
	ASSERT_EQ(h_heald_stop(&h), 0, "heald exits 0");
	h_heald_free(&h);
}

/* 1 M failures: exact in-kernel counts, a bounded number of samples. */
static void test_storm(void)
{
	struct h_heald h;
	const cJSON *ev, *counts, *c;
	char *log;
	double elapsed_s = 0;
	int samples;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(h_heald_start(&h,
		"{\"state_dir\": \"@STATE@\", \"mode\": \"observe\", \"samples_per_sec\": 10, \"targets\": [{\"name\": \"storm\","
		" \"exec\": [\"@FAILGEN@\", \"storm\", \"--count\", \"1000000\"],"
		" \"detect\": {\"syscalls\": [{\"syscall\": \"openat\", \"errno\": \"ENOENT\"}]}}]}"),
		"heald starts"))
		goto out;
	ev = h_heald_wait(&h, "SYSCALL_COUNTS", NULL, 60000);
	if (!ASSERT_OK_PTR(ev, "SYSCALL_COUNTS event at exit"))
		goto out;
	counts = cJSON_GetObjectItem(cJSON_GetObjectItem(ev, "payload"), "counts");
	ASSERT_EQ(cJSON_GetArraySize(counts), 1, "one (syscall, errno) pair");
	c = cJSON_GetArrayItem(counts, 0);
	ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(c, "syscall")), "openat", "counted syscall");
	ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(c, "errno")), "ENOENT", "counted errno");
	ASSERT_EQ(cJSON_GetNumberValue(cJSON_GetObjectItem(c, "count")), 1000000, "exact count");
	log = h_target_log(&h, "storm");
	if (strstr(log, "elapsed_ns="))
		elapsed_s = atof(strstr(log, "elapsed_ns=") + 11) / 1e9;
	free(log);
	h_heald_drain(&h, 200);
	samples = h_heald_count(&h, "SYSCALL_FAILURE");
	ASSERT_GE(samples, 1, "at least one sample");
	/* 10 per second per key, per rate-limit second started */
	ASSERT_LE(samples, 10 * ((int)elapsed_s + 2), "samples are rate-limited");
	fprintf(stderr, "  storm: 1000000 failures in %.2fs, %d samples\n", elapsed_s, samples);
out:
	ASSERT_EQ(h_heald_stop(&h), 0, "heald exits 0");
	h_heald_free(&h);
}

/* A healthy target and an unwatched failing process give no events. */
static void test_unwatched(void)
{
	char *argv[] = { (char *)h_bin("failgen"), "missing-file", "--count", "50", NULL };
	struct h_heald h;
	char *out = NULL;
	int st;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(h_heald_start(&h,
		"{\"state_dir\": \"@STATE@\", \"mode\": \"observe\", \"targets\": [{\"name\": \"healthy\","
		" \"exec\": [\"@FAILGEN@\", \"ok\", \"--count\", \"100\"],"
		" \"detect\": {\"syscalls\": [{\"syscall\": \"*\", \"errno\": [\"EMFILE\", \"ENOSPC\", \"EBADF\", \"EACCES\"]},"
		" {\"syscall\": [\"openat\", \"newfstatat\"], \"errno\": \"*\"}], \"crashes\": true, \"exits\": true}}]}"),
		"heald starts"))
		goto out;
	st = h_run(argv, &out);
	ASSERT_EQ(st, 0, "unwatched failgen ran");
	free(out);
	h_heald_drain(&h, 1000);
	ASSERT_EQ(h_heald_count(&h, "SYSCALL_FAILURE"), 0, "no failures from unwatched or healthy processes");
	ASSERT_EQ(h_heald_count(&h, "EXIT_FAILURE"), 0, "healthy exit is not a failure");
out:
	ASSERT_EQ(h_heald_stop(&h), 0, "heald exits 0");
	h_heald_free(&h);
}

/* Children and re-execs stay in their target. */
static void test_fork_and_exec(void)
{
	struct h_heald h;
	const cJSON *ev;
	char *log;
	int child = -1;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(h_heald_start(&h,
		"{\"state_dir\": \"@STATE@\", \"mode\": \"observe\", \"targets\": ["
		"{\"name\": \"forker\", \"exec\": [\"@FAILGEN@\", \"fork-missing-file\", \"--path\", \"/tmp/heal-failgen-missing/fork\"],"
		" \"detect\": {\"syscalls\": [{\"syscall\": \"openat\", \"errno\": \"ENOENT\"}]}},"
		"{\"name\": \"execer\", \"exec\": [\"@FAILGEN@\", \"exec-missing-file\", \"--path\", \"/tmp/heal-failgen-missing/exec\"],"
		" \"detect\": {\"syscalls\": [{\"syscall\": \"openat\", \"errno\": \"ENOENT\"}]}}]}"),
		"heald starts"))
		goto out;
	ev = h_heald_wait(&h, "SYSCALL_FAILURE",
			  "forker:SYSCALL_FAILURE:openat:ENOENT:/tmp/heal-failgen-missing/fork", WAIT_MS);
	if (ASSERT_OK_PTR(ev, "the forked child's failure")) {
		h_heald_wait_pid(&h, "SYSCALL_COUNTS", (int)h_num(ev, "pid"), WAIT_MS);
		h_heald_drain(&h, 300);
		log = h_target_log(&h, "forker");
		if (strstr(log, "child="))
			child = atoi(strstr(log, "child=") + 6);
		free(log);
		ASSERT_EQ(h_num(ev, "pid"), child, "pid is the child's");
	}
	ev = h_heald_wait(&h, "SYSCALL_FAILURE",
			  "execer:SYSCALL_FAILURE:openat:ENOENT:/tmp/heal-failgen-missing/exec", WAIT_MS);
	if (ASSERT_OK_PTR(ev, "the re-exec'd image's failure"))
		ASSERT_STREQ(h_str(ev, "comm"), "failgen", "comm after exec");
out:
	ASSERT_EQ(h_heald_stop(&h), 0, "heald exits 0");
	h_heald_free(&h);
}

/* A matched target: processes started after heald, found by exe in the kernel at exec. */
static void test_match_exe(void)
{
	char *argv[] = { (char *)h_bin("failgen"), "missing-file", "--path",
			 "/tmp/heal-failgen-missing/matched", NULL };
	char cfg[1024];
	struct h_heald h;
	const cJSON *ev;
	char *out = NULL;

	if (!h_need_bpf())
		return;
	snprintf(cfg, sizeof(cfg),
		 "{\"state_dir\": \"@STATE@\", \"mode\": \"observe\", \"targets\": [{\"name\": \"matched\","
		 " \"match\": {\"exe\": \"%s\"},"
		 " \"detect\": {\"syscalls\": [{\"syscall\": \"openat\", \"errno\": \"ENOENT\"}]}}]}",
		 h_bin("failgen"));
	if (!ASSERT_TRUE(h_heald_start(&h, cfg), "heald starts"))
		goto out;
	ASSERT_EQ(h_run(argv, &out), 0, "failgen ran");
	free(out);
	ev = h_heald_wait(&h, "SYSCALL_FAILURE",
			  "matched:SYSCALL_FAILURE:openat:ENOENT:/tmp/heal-failgen-missing/matched", WAIT_MS);
	if (ASSERT_OK_PTR(ev, "event from a process matched by exe"))
		check_common(ev, "matched");
out:
	ASSERT_EQ(h_heald_stop(&h), 0, "heald exits 0");
	h_heald_free(&h);
}

/* A matched target already running when heald starts, found by comm in /proc. */
static void test_match_running(void)
{
	struct h_heald h;
	const cJSON *ev;
	pid_t pid;
	int st;

	if (!h_need_bpf())
		return;
	pid = fork();
	if (pid == 0) {
		if (!freopen("/dev/null", "w", stdout))
			_exit(126);
		execl(h_bin("failgen"), "failgen", "--delay-ms", "1500", "missing-file", "--path",
		      "/tmp/heal-failgen-missing/running", (char *)NULL);
		_exit(127);
	}
	if (!ASSERT_TRUE(h_heald_start(&h,
		"{\"state_dir\": \"@STATE@\", \"mode\": \"observe\", \"targets\": [{\"name\": \"running\","
		" \"match\": {\"comm\": \"failgen\"},"
		" \"detect\": {\"syscalls\": [{\"syscall\": \"openat\", \"errno\": \"ENOENT\"}]}}]}"),
		"heald starts"))
		goto out;
	ev = h_heald_wait(&h, "SYSCALL_FAILURE", NULL, WAIT_MS);
	if (ASSERT_OK_PTR(ev, "event from a process that was running before heald"))
		ASSERT_EQ(h_num(ev, "pid"), pid, "pid");
out:
	waitpid(pid, &st, 0);
	ASSERT_EQ(h_heald_stop(&h), 0, "heald exits 0");
	h_heald_free(&h);
}

/* Matched by pid file and by cgroup v2 path: found in /proc by the periodic rescan or at exec. */
static void test_match_pid_file_and_cgroup(void)
{
	char cfg[3 * PATH_MAX], pidfile[PATH_MAX + 32], cgdir[PATH_MAX], procs[PATH_MAX + 32];
	const char *root = "/sys/fs/cgroup/unified";
	struct h_heald h;
	const cJSON *ev;
	pid_t a, b;
	FILE *f;
	int st;

	if (!h_need_bpf())
		return;
	if (access("/sys/fs/cgroup/unified/cgroup.procs", W_OK))
		root = "/sys/fs/cgroup";
	snprintf(cgdir, sizeof(cgdir), "%s/heal-test-%d", root, (int)getpid());
	if (mkdir(cgdir, 0755)) {
		h_skip("cannot create a cgroup v2 directory under %s", root);
		return;
	}
	snprintf(pidfile, sizeof(pidfile), "%s/app.pid", h_tmpdir());
	/* a: found by pid file, running before heald */
	a = fork();
	if (a == 0) {
		if (!freopen("/dev/null", "w", stdout))
			_exit(126);
		execl(h_bin("failgen"), "failgen", "--delay-ms", "2500", "missing-file", "--path",
		      "/tmp/heal-failgen-missing/pidfile", (char *)NULL);
		_exit(127);
	}
	f = fopen(pidfile, "w");
	fprintf(f, "%d\n", (int)a);
	fclose(f);
	snprintf(cfg, sizeof(cfg),
		 "{\"state_dir\": \"@STATE@\", \"mode\": \"observe\", \"rescan_ms\": 200, \"targets\": ["
		 "{\"name\": \"bypid\", \"match\": {\"pid_file\": \"%s\"},"
		 " \"detect\": {\"syscalls\": [{\"syscall\": \"openat\", \"errno\": \"ENOENT\"}]}},"
		 "{\"name\": \"bycg\", \"match\": {\"cgroup\": \"%s\"},"
		 " \"detect\": {\"syscalls\": [{\"syscall\": \"openat\", \"errno\": \"ENOENT\"}]}}]}",
		 pidfile, cgdir + strlen(root));
	if (!ASSERT_TRUE(h_heald_start(&h, cfg), "heald starts"))
		goto out;
	/* b: joins the cgroup, then execs: matched in the kernel at exec */
	b = fork();
	if (b == 0) {
		snprintf(procs, sizeof(procs), "%s/cgroup.procs", cgdir);
		f = fopen(procs, "w");
		if (!f)
			_exit(126);
		fprintf(f, "0\n");
		fclose(f);
		if (!freopen("/dev/null", "w", stdout))
			_exit(126);
		execl(h_bin("failgen"), "failgen", "missing-file", "--path",
		      "/tmp/heal-failgen-missing/cgroup", (char *)NULL);
		_exit(127);
	}
	ev = h_heald_wait(&h, "SYSCALL_FAILURE",
			  "bycg:SYSCALL_FAILURE:openat:ENOENT:/tmp/heal-failgen-missing/cgroup", WAIT_MS);
	if (ASSERT_OK_PTR(ev, "event from the cgroup's process"))
		ASSERT_EQ(h_num(ev, "pid"), b, "cgroup pid");
	ev = h_heald_wait(&h, "SYSCALL_FAILURE",
			  "bypid:SYSCALL_FAILURE:openat:ENOENT:/tmp/heal-failgen-missing/pidfile", WAIT_MS);
	if (ASSERT_OK_PTR(ev, "event from the pid file's process"))
		ASSERT_EQ(h_num(ev, "pid"), a, "pid file pid");
	waitpid(b, &st, 0);
out:
	waitpid(a, &st, 0);
	ASSERT_EQ(h_heald_stop(&h), 0, "heald exits 0");
	h_heald_free(&h);
	rmdir(cgdir);
}

/* exec targets run with their cwd, env and user. */
static void test_exec_user_cwd(void)
{
	struct h_heald h;
	const cJSON *ev;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(h_heald_start(&h,
		"{\"state_dir\": \"@STATE@\", \"mode\": \"observe\", \"targets\": [{\"name\": \"app\","
		" \"exec\": [\"@FAILGEN@\", \"missing-file\", \"--path\", \"heal-app.json\"],"
		" \"cwd\": \"/root\", \"user\": \"nobody\", \"env\": {\"APP_MODE\": \"test\"},"
		" \"detect\": {\"syscalls\": [{\"syscall\": \"openat\", \"errno\": \"*\"}]}}]}"),
		"heald starts"))
		goto out;
	/* relative to /root (cwd) and as nobody (user): no search permission, EACCES; as root or
	 * from another directory it would be ENOENT */
	ev = h_heald_wait(&h, "SYSCALL_FAILURE", "app:SYSCALL_FAILURE:openat:EACCES:heal-app.json", WAIT_MS);
	ASSERT_OK_PTR(ev, "relative path opened from cwd, as nobody");
out:
	ASSERT_EQ(h_heald_stop(&h), 0, "heald exits 0");
	h_heald_free(&h);
}

/* threshold/window_ms: nothing until the N-th failure within the window; counts stay exact. */
static void test_threshold(void)
{
	struct h_heald h;
	const cJSON *ev, *c;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(h_heald_start(&h,
		"{\"state_dir\": \"@STATE@\", \"mode\": \"observe\", \"targets\": ["
		"{\"name\": \"few\", \"exec\": [\"@FAILGEN@\", \"missing-file\", \"--count\", \"4\"],"
		" \"detect\": {\"syscalls\": [{\"syscall\": \"openat\", \"errno\": \"ENOENT\", \"threshold\": 5, \"window_ms\": 5000}]}},"
		"{\"name\": \"many\", \"exec\": [\"@FAILGEN@\", \"--delay-ms\", \"100\", \"missing-file\", \"--count\", \"7\"],"
		" \"detect\": {\"syscalls\": [{\"syscall\": \"openat\", \"errno\": \"ENOENT\", \"threshold\": 5, \"window_ms\": 5000}]}}]}"),
		"heald starts"))
		goto out;
	ev = h_heald_wait(&h, "SYSCALL_FAILURE", NULL, WAIT_MS);
	if (ASSERT_OK_PTR(ev, "a sample once the threshold is reached")) {
		ASSERT_STREQ(h_str(ev, "target"), "many", "only the target that reached it");
		ASSERT_EQ(h_num(ev, "count"), 5, "the first sample is the 5th failure");
	}
	h_heald_wait(&h, "SYSCALL_COUNTS", "many:SYSCALL_COUNTS", WAIT_MS);
	ev = h_heald_wait(&h, "SYSCALL_COUNTS", "few:SYSCALL_COUNTS", WAIT_MS);
	if (ASSERT_OK_PTR(ev, "counts of the target below the threshold")) {
		c = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(ev, "payload"), "counts"), 0);
		ASSERT_EQ(cJSON_GetNumberValue(cJSON_GetObjectItem(c, "count")), 4, "counted exactly");
	}
	ASSERT_EQ(h_heald_count(&h, "SYSCALL_FAILURE"), 3, "samples: failures 5, 6 and 7 of many");
out:
	ASSERT_EQ(h_heald_stop(&h), 0, "heald exits 0");
	h_heald_free(&h);
}

int main(void)
{
	h_subtest("threshold_window", test_threshold);
	h_subtest("match_pid_file_and_cgroup", test_match_pid_file_and_cgroup);
	h_subtest("exec_user_cwd_env", test_exec_user_cwd);
	h_subtest("missing_file", test_missing_file);
	h_subtest("refused_connect", test_refused_connect);
	h_subtest("emfile", test_emfile);
	h_subtest("enospc", test_enospc);
	h_subtest("storm_counts_exact", test_storm);
	h_subtest("unwatched_and_healthy_silent", test_unwatched);
	h_subtest("fork_and_exec_stay_in_target", test_fork_and_exec);
	h_subtest("match_exe_at_exec", test_match_exe);
	h_subtest("match_comm_running", test_match_running);
	return h_summary("test_syscalls");
}
