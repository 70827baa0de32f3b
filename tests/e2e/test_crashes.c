// SPDX-License-Identifier: MIT
/* End to end: crashes, failing exits, OOM kills, failed API returns, drops. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define WAIT_MS 10000

static const cJSON *frame(const cJSON *ev, int i)
{
	return cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(ev, "payload"), "stack"), i);
}

static const char *fstr(const cJSON *f, const char *k)
{
	return cJSON_GetStringValue(cJSON_GetObjectItem(f, k));
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = s ? strlen(s) : 0, b = strlen(suffix);

	return s && a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Index of the first frame whose function is func, or -1. */
static int find_frame(const cJSON *ev, const char *func)
{
	const cJSON *f;
	int i;

	for (i = 0; (f = frame(ev, i)); i++)
		if (fstr(f, "func") && strcmp(fstr(f, "func"), func) == 0)
			return i;
	return -1;
}

static void test_segfault(void)
{
	int want_line = h_source_line("tools/failgen.c", "&order->status = 1");
	struct h_heald h;
	const cJSON *ev, *f;
	int i;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(h_heald_start(&h,
		"{\"state_dir\": \"@STATE@\", \"mode\": \"observe\", \"targets\": [{\"name\": \"orders\","
		" \"exec\": [\"@FAILGEN@\", \"segfault\"], \"detect\": {\"crashes\": true, \"exits\": true}}]}"),
		"heald starts"))
		goto out;
	ev = h_heald_wait(&h, "CRASH", NULL, WAIT_MS);
	if (!ASSERT_OK_PTR(ev, "CRASH event"))
		goto out;
	ASSERT_STREQ(cJSON_GetObjectItem(ev, "key")->valuestring,
		     "orders:CRASH:SIGSEGV:failgen_crash_in_handler", "key names the crashing function");
	ASSERT_STREQ(h_str(ev, "target"), "orders", "target");
	ASSERT_STREQ(h_str(ev, "comm"), "failgen", "comm");
	ASSERT_STREQ(h_str(ev, "exe"), h_bin("failgen"), "exe");
	ASSERT_STREQ(h_str(ev, "signal"), "SIGSEGV", "signal");
	ASSERT_STREQ(h_str(ev, "fault_addr"), "0x10", "fault address (NULL->status)");
	ASSERT_EQ(h_num(ev, "si_code"), 1, "SEGV_MAPERR");
	f = frame(ev, 0);
	if (ASSERT_OK_PTR(f, "stack[0]")) {
		ASSERT_STREQ(fstr(f, "func"), "failgen_crash_in_handler", "stack[0].func");
		ASSERT_TRUE(ends_with(fstr(f, "file"), "tools/failgen.c"), "stack[0].file");
		ASSERT_EQ(cJSON_GetNumberValue(cJSON_GetObjectItem(f, "line")), want_line, "stack[0].line");
		ASSERT_STREQ(fstr(f, "module"), h_bin("failgen"), "stack[0].module");
		ASSERT_GE(cJSON_GetNumberValue(cJSON_GetObjectItem(f, "offset")), 1, "stack[0].offset");
	}
	i = find_frame(ev, "failgen_handle_order");
	ASSERT_EQ(i, 1, "caller is stack[1]");
	ASSERT_GE(find_frame(ev, "main"), 2, "main is on the stack");
	ev = h_heald_wait(&h, "EXIT_FAILURE", NULL, WAIT_MS);
	if (ASSERT_OK_PTR(ev, "EXIT_FAILURE event")) {
		ASSERT_STREQ(h_str(ev, "signal"), "SIGSEGV", "death by signal");
		ASSERT_STREQ(cJSON_GetObjectItem(ev, "key")->valuestring, "orders:EXIT_FAILURE:SIGSEGV",
			     "exit key");
	}
out:
	ASSERT_EQ(h_heald_stop(&h), 0, "heald exits 0");
	h_heald_free(&h);
}

/* abort() runs through libc, built without frame pointers: the stack still reaches our code. */
static void test_abort(void)
{
	int want_line = h_source_line("tools/failgen.c", "abort();");
	struct h_heald h;
	const cJSON *ev, *f;
	int i;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(h_heald_start(&h,
		"{\"state_dir\": \"@STATE@\", \"mode\": \"observe\", \"targets\": [{\"name\": \"returns\","
		" \"exec\": [\"@FAILGEN@\", \"abort\"], \"detect\": {\"crashes\": true}}]}"),
		"heald starts"))
		goto out;
	ev = h_heald_wait(&h, "CRASH", NULL, WAIT_MS);
	if (!ASSERT_OK_PTR(ev, "CRASH event"))
		goto out;
	ASSERT_STREQ(h_str(ev, "signal"), "SIGABRT", "signal");
	ASSERT_STREQ(cJSON_GetObjectItem(ev, "key")->valuestring,
		     "returns:CRASH:SIGABRT:failgen_abort_in_handler", "key names our function, not libc's");
	i = find_frame(ev, "failgen_abort_in_handler");
	if (ASSERT_GE(i, 1, "failgen_abort_in_handler on the stack below libc")) {
		f = frame(ev, i);
		ASSERT_TRUE(ends_with(fstr(f, "file"), "tools/failgen.c"), "file");
		ASSERT_EQ(cJSON_GetNumberValue(cJSON_GetObjectItem(f, "line")), want_line, "line of abort()");
		ASSERT_TRUE(strstr(fstr(frame(ev, 0), "module"), "libc") != NULL, "stack[0] is in libc");
	}
out:
	ASSERT_EQ(h_heald_stop(&h), 0, "heald exits 0");
	h_heald_free(&h);
}

static void test_exit3(void)
{
	struct h_heald h;
	const cJSON *ev;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(h_heald_start(&h,
		"{\"state_dir\": \"@STATE@\", \"mode\": \"observe\", \"targets\": [{\"name\": \"batch\","
		" \"exec\": [\"@FAILGEN@\", \"exit3\"], \"detect\": {\"exits\": true, \"crashes\": true}}]}"),
		"heald starts"))
		goto out;
	ev = h_heald_wait(&h, "EXIT_FAILURE", NULL, WAIT_MS);
	if (!ASSERT_OK_PTR(ev, "EXIT_FAILURE event"))
		goto out;
	ASSERT_STREQ(cJSON_GetObjectItem(ev, "key")->valuestring, "batch:EXIT_FAILURE:3", "key");
	ASSERT_EQ(h_num(ev, "exit_code"), 3, "exit_code");
	ASSERT_STREQ(h_str(ev, "comm"), "failgen", "comm");
	h_heald_drain(&h, 300);
	ASSERT_EQ(h_heald_count(&h, "CRASH"), 0, "an exit is not a crash");
out:
	ASSERT_EQ(h_heald_stop(&h), 0, "heald exits 0");
	h_heald_free(&h);
}

static void test_oom(void)
{
	struct h_heald h;
	const cJSON *ev;
	char *log;
	int child = -1;

	if (!h_need_bpf())
		return;
	if (access("/sys/fs/cgroup/memory/memory.limit_in_bytes", W_OK) &&
	    access("/sys/fs/cgroup/unified/cgroup.controllers", R_OK) &&
	    access("/sys/fs/cgroup/cgroup.controllers", R_OK)) {
		h_skip("no memory cgroup controller to make an OOM kill in");
		return;
	}
	if (!ASSERT_TRUE(h_heald_start(&h,
		"{\"state_dir\": \"@STATE@\", \"mode\": \"observe\", \"targets\": [{\"name\": \"hog\","
		" \"exec\": [\"@FAILGEN@\", \"oom\"], \"detect\": {\"oom\": true, \"exits\": true}}]}"),
		"heald starts"))
		goto out;
	ev = h_heald_wait(&h, "OOM_KILL", NULL, 30000);
	if (!ASSERT_OK_PTR(ev, "OOM_KILL event"))
		goto out;
	h_heald_wait(&h, "EXIT_FAILURE", "hog:EXIT_FAILURE:SIGKILL", WAIT_MS);
	h_heald_drain(&h, 500);
	log = h_target_log(&h, "hog");
	if (strstr(log, "child="))
		child = atoi(strstr(log, "child=") + 6);
	free(log);
	ASSERT_EQ(h_num(ev, "pid"), child, "the victim is the allocating child");
	ASSERT_STREQ(cJSON_GetObjectItem(ev, "key")->valuestring, "hog:OOM_KILL", "key");
	ASSERT_STREQ(h_str(ev, "comm"), "failgen", "victim comm");
	/* the cgroup limit is 32 MiB: the victim held most of it */
	ASSERT_GE(h_num(ev, "anon_rss_kb"), 16 * 1024, "anon_rss_kb");
	ASSERT_LE(h_num(ev, "anon_rss_kb"), 40 * 1024, "anon_rss_kb within the limit");
	ASSERT_GE(h_num(ev, "total_vm_kb"), h_num(ev, "anon_rss_kb"), "total_vm_kb");
	ev = h_heald_wait(&h, "EXIT_FAILURE", "hog:EXIT_FAILURE:SIGKILL", 100);
	ASSERT_OK_PTR(ev, "the kill shows as an exit by SIGKILL");
out:
	ASSERT_EQ(h_heald_stop(&h), 0, "heald exits 0");
	h_heald_free(&h);
}

static void test_api_uprobe_and_usdt(void)
{
	struct h_heald h;
	const cJSON *ev;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(h_heald_start(&h,
		"{\"state_dir\": \"@STATE@\", \"mode\": \"observe\", \"targets\": [{\"name\": \"shop\","
		" \"exec\": [\"@FAILGEN@\", \"--delay-ms\", \"100\", \"api\", \"--arg\", \"/returns/1001\", \"--count\", \"3\"],"
		" \"detect\": {\"api\": ["
		"  {\"binary\": \"@FAILGEN@\", \"symbol\": \"failgen_handle_request\", \"fail_when\": \"ret >= 500\","
		"   \"capture_arg\": {\"index\": 2, \"type\": \"string\"}},"
		"  {\"binary\": \"@FAILGEN@\", \"symbol\": \"failgen_handle_request\", \"fail_when\": \"ret == 200\"},"
		"  {\"binary\": \"@FAILGEN@\", \"symbol\": \"failgen_handle_request\", \"fail_when\": \"ret != 0\","
		"   \"ret_type\": \"long\", \"capture_arg\": {\"index\": 1, \"type\": \"int\"}},"
		"  {\"binary\": \"@FAILGEN@\", \"usdt\": {\"provider\": \"failgen\", \"name\": \"request_failed\"},"
		"   \"fail_when\": \"arg1 >= 500\", \"capture_arg\": {\"index\": 2, \"type\": \"string\"}}]}}]}"),
		"heald starts"))
		goto out;
	h_heald_wait(&h, "API_FAILURE", "shop:API_FAILURE:failgen_handle_request", WAIT_MS);
	h_heald_drain(&h, 300);
	/* two rules watch this symbol (one signature): take the ">= 500" rule's event */
	ev = NULL;
	for (size_t i = 0; i < h.n_events && !ev; i++)
		if (h_str(h.events[i], "fail_when") && !strcmp(h_str(h.events[i], "fail_when"), "ret >= 500"))
			ev = h.events[i];
	if (ASSERT_OK_PTR(ev, "uretprobe API_FAILURE")) {
		ASSERT_STREQ(h_str(ev, "symbol"), "failgen_handle_request", "symbol");
		ASSERT_EQ(h_num(ev, "ret"), 500, "ret");
		ASSERT_STREQ(h_str(ev, "arg"), "/returns/1001", "captured string argument");
		ASSERT_STREQ(h_str(ev, "fail_when"), "ret >= 500", "predicate");
		ASSERT_STREQ(h_str(ev, "binary"), h_bin("failgen"), "binary");
		ASSERT_STREQ(h_str(ev, "comm"), "failgen", "comm");
	}
	ev = h_heald_wait(&h, "API_FAILURE", "shop:API_FAILURE:failgen:request_failed", WAIT_MS);
	if (ASSERT_OK_PTR(ev, "USDT API_FAILURE")) {
		ASSERT_STREQ(h_str(ev, "usdt"), "failgen:request_failed", "usdt");
		ASSERT_EQ(h_num(ev, "ret"), 500, "the predicate's argument");
		ASSERT_STREQ(h_str(ev, "arg"), "/returns/1001", "captured USDT argument");
	}
	h_heald_wait(&h, "NEVER", NULL, 500);
	/* 3 calls, each failing: 3 + 3 uretprobe and 3 USDT events; the "ret == 200" rule never held */
	ASSERT_EQ(h_heald_count(&h, "API_FAILURE"), 9, "one event per failing call per rule");
	{
		size_t i;
		int ints = 0;

		for (i = 0; i < h.n_events; i++)
			if (cJSON_IsNumber(cJSON_GetObjectItem(cJSON_GetObjectItem(h.events[i], "payload"), "arg")) &&
			    h_num(h.events[i], "arg") == 1)
				ints++;
		ASSERT_EQ(ints, 3, "integer argument captured (method 1)");
	}
out:
	ASSERT_EQ(h_heald_stop(&h), 0, "heald exits 0");
	h_heald_free(&h);
}

/* A storm into a tiny ring buffer: drops are counted and reported, counts stay exact. */
static void test_drops_reported(void)
{
	struct h_heald h;
	const cJSON *ev, *c;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(h_heald_start(&h,
		"{\"state_dir\": \"@STATE@\", \"mode\": \"observe\", \"ringbuf_kb\": 64, \"samples_per_sec\": 100000, \"targets\": [{\"name\": \"flood\","
		" \"exec\": [\"@FAILGEN@\", \"--delay-ms\", \"100\", \"storm\", \"--count\", \"300000\"],"
		" \"detect\": {\"syscalls\": [{\"syscall\": \"openat\", \"errno\": \"ENOENT\"}]}}]}"),
		"heald starts"))
		goto out;
	ev = h_heald_wait(&h, "EVENTS_DROPPED", NULL, 30000);
	if (ASSERT_OK_PTR(ev, "EVENTS_DROPPED event")) {
		ASSERT_GE(h_num(ev, "dropped"), 1, "dropped");
		ASSERT_STREQ(cJSON_GetObjectItem(ev, "key")->valuestring, "heal:EVENTS_DROPPED", "key");
	}
	ev = h_heald_wait(&h, "SYSCALL_COUNTS", NULL, 30000);
	if (ASSERT_OK_PTR(ev, "SYSCALL_COUNTS")) {
		c = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(ev, "payload"), "counts"), 0);
		ASSERT_EQ(cJSON_GetNumberValue(cJSON_GetObjectItem(c, "count")), 300000,
			  "counts exact despite drops");
	}
out:
	ASSERT_EQ(h_heald_stop(&h), 0, "heald exits 0");
	h_heald_free(&h);
}

/*
 * Eight processes storm a small ring at a high sample rate and end one after
 * the other while the rest still storm: samples may take half the ring only,
 * so every exit still arrives and each process gets its SYSCALL_COUNTS with
 * its exact count (before, exits were crowded out and their counts leaked).
 */
static void test_storm_spares_exits(void)
{
	enum { PROCS = 8 };
	struct h_heald h;
	int counts[PROCS] = { 0 }, n = 0, i, j, waited;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(h_heald_start(&h,
		"{\"state_dir\": \"@STATE@\", \"mode\": \"observe\", \"ringbuf_kb\": 64, \"samples_per_sec\": 100000, \"targets\": [{\"name\": \"flood\","
		" \"exec\": [\"/bin/sh\", \"-c\", \"for n in 1 2 3 4 5 6 7 8; do @FAILGEN@ storm --count ${n}00000 & done; wait; exec sleep 60\"],"
		" \"detect\": {\"syscalls\": [{\"syscall\": \"openat\", \"errno\": \"ENOENT\"}]}}]}"),
		"heald starts"))
		goto out;
	for (waited = 0; h_heald_count(&h, "SYSCALL_COUNTS") < PROCS && waited < 30000; waited += 100)
		h_heald_drain(&h, 100);
	for (i = 0; i < (int)h.n_events && n < PROCS; i++) {
		const cJSON *ev = h.events[i], *pl;
		int c;

		if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(ev, "type")), "SYSCALL_COUNTS"))
			continue;
		pl = cJSON_GetObjectItem(ev, "payload");
		c = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(pl, "counts"), 0), "count"));
		ASSERT_TRUE(cJSON_GetObjectItem(pl, "exit_seen") == NULL, "reported at its exit, not by the sweep");
		counts[n++] = c;
	}
	ASSERT_EQ(n, PROCS, "one SYSCALL_COUNTS per storming process, at its exit");
	/* the exact counts are 100000, 200000, ... 800000, one each */
	for (j = 1; j <= PROCS; j++) {
		char what[64];

		for (i = 0; i < n && counts[i] != j * 100000; i++)
			;
		snprintf(what, sizeof(what), "a process counted exactly %d00000", j);
		ASSERT_TRUE(i < n, what);
	}
	ASSERT_GE(h_heald_count(&h, "EVENTS_DROPPED"), 1, "the samples that did not fit are reported dropped");
out:
	ASSERT_EQ(h_heald_stop(&h), 0, "heald exits 0");
	h_heald_free(&h);
}

/*
 * An exit record lost to a full ring (heald stopped while a watched shell
 * forks hundreds of processes): the counts of the process whose exit was
 * lost are not kept forever but reported by the sweep, exactly, marked
 * exit_seen: false.
 */
static void test_lost_exit_swept(void)
{
	struct h_heald h;
	const cJSON *ev = NULL, *pl, *c;
	char go[PATH_MAX + 8], done[PATH_MAX + 8], *text;
	int i, fd, pid = 0;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(h_heald_start(&h,
		"{\"state_dir\": \"@STATE@\", \"mode\": \"observe\", \"ringbuf_kb\": 64, \"rescan_ms\": 200, \"targets\": [{\"name\": \"forker\","
		" \"exec\": [\"/bin/sh\", \"-c\", \"while [ ! -e @STATE@/go ]; do sleep 0.05; done; i=0; while [ $i -lt 600 ]; do /bin/true; i=$((i+1)); done;"
		" @FAILGEN@ missing-file --count 7 --path /nonexistent-heal-lost/x & p=$!; wait $p; echo $p > @STATE@/done.tmp; mv @STATE@/done.tmp @STATE@/done; exec sleep 60\"], \"restart\": \"never\","
		" \"detect\": {\"syscalls\": [{\"syscall\": \"openat\", \"errno\": \"ENOENT\"}]}}]}"),
		"heald starts"))
		goto out;
	/* heald stopped: nothing drains the ring while 600 processes come and go */
	ASSERT_EQ(kill(h.pid, SIGSTOP), 0, "heald stopped");
	snprintf(go, sizeof(go), "%s/state/go", h.dir);
	fd = open(go, O_CREAT | O_WRONLY, 0600);
	ASSERT_GE(fd, 0, "go file");
	close(fd);
	snprintf(done, sizeof(done), "%s/state/done", h.dir);
	for (i = 0; i < 400 && access(done, F_OK); i++)
		usleep(50000); /* until failgen has failed 7 times and exited */
	ASSERT_EQ(access(done, F_OK), 0, "the forks and failgen ran while heald was stopped");
	text = h_read(done, NULL);
	pid = text ? atoi(text) : 0;
	free(text);
	ASSERT_GE(pid, 1, "failgen's pid");
	ASSERT_EQ(kill(h.pid, SIGCONT), 0, "heald continues");
	for (i = 0; i < 100 && !ev; i++) {
		h_heald_drain(&h, 100);
		for (size_t k = 0; k < h.n_events && !ev; k++) {
			const cJSON *e = h.events[k];

			/* failgen's; the /bin/true's lost exits are swept too (ld.so's ENOENTs) */
			if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(e, "type")), "SYSCALL_COUNTS") &&
			    (int)h_num(e, "pid") == pid)
				ev = e;
		}
	}
	ASSERT_GE(h_heald_count(&h, "EVENTS_DROPPED"), 1, "the ring overflowed");
	if (!ASSERT_OK_PTR(ev, "SYSCALL_COUNTS of failgen"))
		goto out;
	pl = cJSON_GetObjectItem(ev, "payload");
	ASSERT_TRUE(cJSON_IsFalse(cJSON_GetObjectItem(pl, "exit_seen")), "reported by the sweep: exit_seen false");
	c = cJSON_GetArrayItem(cJSON_GetObjectItem(pl, "counts"), 0);
	ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(c, "syscall")), "openat", "syscall");
	ASSERT_EQ(cJSON_GetNumberValue(cJSON_GetObjectItem(c, "count")), 7, "the exact count");
	ASSERT_STREQ(cJSON_GetObjectItem(ev, "key")->valuestring, "forker:SYSCALL_COUNTS", "key");
out:
	kill(h.pid, SIGCONT);
	ASSERT_EQ(h_heald_stop(&h), 0, "heald exits 0");
	h_heald_free(&h);
}

/*
 * Four processes outrun heald at 100k samples/s: it still turns to its tick
 * and its signals (libbpf's consume would read until the ring is empty, which
 * in a storm is never).
 */
#define FLOOD(n)                                                                             \
	"{\"name\": \"flood" n "\", \"exec\": [\"@FAILGEN@\", \"storm\", \"--count\", \"100000000\"]," \
	" \"detect\": {\"syscalls\": [{\"syscall\": \"openat\", \"errno\": \"ENOENT\"}]}}"
static void test_storm_stop_prompt(void)
{
	struct h_heald h;
	long t0, ms;

	if (!h_need_bpf())
		return;
	if (!ASSERT_TRUE(h_heald_start(&h,
		"{\"state_dir\": \"@STATE@\", \"mode\": \"observe\", \"samples_per_sec\": 100000, \"targets\": ["
		FLOOD("1") "," FLOOD("2") "," FLOOD("3") "," FLOOD("4") "]}"),
		"heald starts"))
		goto out;
	ASSERT_OK_PTR(h_heald_wait(&h, "SYSCALL_FAILURE", NULL, 10000), "the storm is on");
	h_heald_drain(&h, 4000);
	/* The 250 ms tick reports the growing drops each time it runs: 16 in 4 s
	 * when nothing starves it (8-10 under ASan, where heald shares the CPUs
	 * with the storm), about 5 with a consume that reads until the ring is empty. */
	fprintf(stderr, "  EVENTS_DROPPED in 4 s of storm: %d\n", h_heald_count(&h, "EVENTS_DROPPED"));
	ASSERT_GE(h_heald_count(&h, "EVENTS_DROPPED"), 6, "the tick keeps running in a storm");
	t0 = h_now_ms();
	ASSERT_EQ(h_heald_stop(&h), 0, "heald exits 0");
	ms = h_now_ms() - t0;
	fprintf(stderr, "  SIGTERM to exit during a storm: %ld ms\n", ms);
	ASSERT_LE(ms, 2500, "heald stops within 2.5 s in a storm");
	h_heald_free(&h);
	return;
out:
	h_heald_stop(&h);
	h_heald_free(&h);
}

int main(void)
{
	h_subtest("segfault_symbolized", test_segfault);
	h_subtest("abort_through_libc", test_abort);
	h_subtest("exit3", test_exit3);
	h_subtest("oom_kill_in_memcg", test_oom);
	h_subtest("api_uprobe_and_usdt", test_api_uprobe_and_usdt);
	h_subtest("drops_reported", test_drops_reported);
	h_subtest("storm_spares_exits", test_storm_spares_exits);
	h_subtest("storm_stop_prompt", test_storm_stop_prompt);
	h_subtest("lost_exit_swept", test_lost_exit_swept);
	return h_summary("test_crashes");
}
