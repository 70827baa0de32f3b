// SPDX-License-Identifier: MIT
/*
 * failgen: a table-driven failure generator. Tests and the demo run it as a
 * target under heald and assert the exact events heald reports, so the paths,
 * function names and printed numbers here are a contract: change them together
 * with the tests.
 *
 * Every case that finishes prints exactly one line to stdout,
 * "failgen: CASE done: <details>", and exits 0. Cases that end the process
 * (segfault, abort, exit3) print nothing. Exit 1 means the intended failure
 * did not happen, 77 that the environment cannot produce it (skip), 2 a usage
 * error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/sdt.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define EXIT_SKIP 77

#define MISSING_PATH "/tmp/heal-failgen-missing/config.json"
#define STORM_PATH "/tmp/heal-failgen-missing/storm"
#define ENOSPC_DIR "/tmp/heal-failgen-enospc"
#define API_PATH "/returns"
#define ORDER_ID "order-1001"

#define ENOSPC_TMPFS_OPTS "size=64k"
#define ENOSPC_CHUNK 4096
#define EMFILE_LIMIT 32
#define OOM_LIMIT_BYTES (32UL << 20)
#define OOM_CHUNK (1UL << 20)
#define OOM_MAX_CHUNKS 1024 /* 1 GiB */

struct opts {
	const char *path;	/* NULL: the case's default */
	const char *arg;	/* NULL: the case's default */
	long count;		/* -1: the case's default */
	long delay_ms;
	long port;		/* -1: pick a free one */
};

struct failcase {
	const char *name;
	int (*fn)(const struct failcase *c, const struct opts *o);
	const char *desc;
	const char *default_path;
	long default_count;
};

/* Functions tests attach to or expect in stacks: global, never inlined or cloned. */
void failgen_crash_in_handler(const char *order_id);
void failgen_handle_order(const char *order_id);
void failgen_abort_in_handler(void);
int failgen_handle_request(int method, const char *path);

/* noipa: no inlining, cloning or return-value propagation into callers (GCC only). */
#ifdef __clang__
#define FAILGEN_PROBE_FN __attribute__((noinline, used, disable_tail_calls))
#else
#define FAILGEN_PROBE_FN __attribute__((noinline, noipa, used))
#endif

/* Keeps a call out of tail position so the caller's frame stays on the stack. */
#define KEEP_FRAME() __asm__ __volatile__("" ::: "memory")

static const char *const *g_argv;

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FAILGEN_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(FAILGEN_ASAN)
const char *__asan_default_options(void);

/* make SAN=1: let SIGSEGV kill the process as in a normal build; leak checks break emfile/oom. */
const char *__asan_default_options(void)
{
	return "handle_segv=0:handle_abort=0:detect_leaks=0";
}
#endif

static void done(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void done(const char *name, const char *fmt, ...)
{
	va_list ap;

	printf("failgen: %s done: ", name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static const char *case_path(const struct failcase *c, const struct opts *o)
{
	return o->path ? o->path : c->default_path;
}

static long case_count(const struct failcase *c, const struct opts *o)
{
	return o->count >= 0 ? o->count : c->default_count;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static int write_file(const char *path, const char *s)
{
	int fd, err = 0;
	size_t len = strlen(s);

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, s, len) != (ssize_t)len)
		err = -errno;
	close(fd);
	return err;
}

static int mkdir_p(const char *path)
{
	char buf[PATH_MAX];
	char *p;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0755) && errno != EEXIST)
		return -errno;
	return 0;
}

/* openat(AT_FDCWD, path, O_RDONLY) n times; returns how many failed with ENOENT. */
static long open_missing(const char *path, long n)
{
	long i, enoent = 0;
	int fd;

	for (i = 0; i < n; i++) {
		fd = openat(AT_FDCWD, path, O_RDONLY);
		if (fd >= 0)
			close(fd);
		else if (errno == ENOENT)
			enoent++;
	}
	return enoent;
}

static int case_missing_file(const struct failcase *c, const struct opts *o)
{
	const char *path = case_path(c, o);
	long n = case_count(c, o), enoent;

	enoent = open_missing(path, n);
	if (enoent != n) {
		fprintf(stderr, "failgen: %s: %ld of %ld opens of %s did not fail with ENOENT\n",
			c->name, n - enoent, n, path);
		return EXIT_FAIL;
	}
	done(c->name, "path=%s failures=%ld", path, enoent);
	return 0;
}

static int free_tcp_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd, port = -1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || getsockname(fd, (struct sockaddr *)&sa, &len))
		port = -errno;
	else
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static int case_refused_connect(const struct failcase *c, const struct opts *o)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	long i, n = case_count(c, o);
	int fd, port, err;

	port = o->port >= 0 ? (int)o->port : free_tcp_port();
	if (port < 0) {
		fprintf(stderr, "failgen: %s: cannot find a free port: %s\n", c->name, strerror(-port));
		return EXIT_FAIL;
	}
	sa.sin_port = htons((unsigned short)port);
	for (i = 0; i < n; i++) {
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			fprintf(stderr, "failgen: %s: socket: %s\n", c->name, strerror(errno));
			return EXIT_FAIL;
		}
		err = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ? errno : 0;
		close(fd);
		if (err != ECONNREFUSED) {
			fprintf(stderr, "failgen: %s: connect to 127.0.0.1:%d: %s (wanted ECONNREFUSED)\n",
				c->name, port, err ? strerror(err) : "succeeded");
			return EXIT_FAIL;
		}
	}
	done(c->name, "port=%d", port);
	return 0;
}

static int case_emfile(const struct failcase *c, const struct opts *o)
{
	struct rlimit rl;
	long opened = 0;
	int fd;

	(void)o;
	if (getrlimit(RLIMIT_NOFILE, &rl)) {
		fprintf(stderr, "failgen: %s: getrlimit: %s\n", c->name, strerror(errno));
		return EXIT_FAIL;
	}
	rl.rlim_cur = EMFILE_LIMIT;
	if (setrlimit(RLIMIT_NOFILE, &rl)) {
		fprintf(stderr, "failgen: %s: setrlimit: %s\n", c->name, strerror(errno));
		return EXIT_FAIL;
	}
	/* The descriptors stay open until exit: that is the leak being simulated. */
	while ((fd = openat(AT_FDCWD, "/dev/null", O_RDONLY)) >= 0)
		opened++;
	if (errno != EMFILE) {
		fprintf(stderr, "failgen: %s: open /dev/null: %s (wanted EMFILE)\n", c->name, strerror(errno));
		return EXIT_FAIL;
	}
	done(c->name, "opened=%ld limit=%d", opened, EMFILE_LIMIT);
	return 0;
}

static int case_enospc(const struct failcase *c, const struct opts *o)
{
	const char *dir = case_path(c, o);
	char file[PATH_MAX], chunk[ENOSPC_CHUNK];
	int fd, err;

	if (unshare(CLONE_NEWNS)) {
		fprintf(stderr, "failgen: %s: unshare(CLONE_NEWNS): %s (needs root)\n", c->name, strerror(errno));
		return EXIT_SKIP;
	}
	/* Private propagation so the tmpfs never shows up in the host's mount table. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) {
		fprintf(stderr, "failgen: %s: make / private: %s\n", c->name, strerror(errno));
		return EXIT_SKIP;
	}
	err = mkdir_p(dir);
	if (err) {
		fprintf(stderr, "failgen: %s: mkdir %s: %s\n", c->name, dir, strerror(-err));
		return EXIT_FAIL;
	}
	if (mount("heal-failgen", dir, "tmpfs", 0, ENOSPC_TMPFS_OPTS)) {
		fprintf(stderr, "failgen: %s: mount tmpfs on %s: %s\n", c->name, dir, strerror(errno));
		return EXIT_SKIP;
	}
	if (snprintf(file, sizeof(file), "%s/spool.dat", dir) >= (int)sizeof(file)) {
		fprintf(stderr, "failgen: %s: path too long\n", c->name);
		return EXIT_FAIL;
	}
	fd = openat(AT_FDCWD, file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "failgen: %s: open %s: %s\n", c->name, file, strerror(errno));
		return EXIT_FAIL;
	}
	memset(chunk, 'x', sizeof(chunk));
	/* Page-sized writes into a page-granular tmpfs: each one fits whole or fails whole. */
	while (write(fd, chunk, sizeof(chunk)) > 0)
		;
	if (errno != ENOSPC) {
		fprintf(stderr, "failgen: %s: write %s: %s (wanted ENOSPC)\n", c->name, file, strerror(errno));
		return EXIT_FAIL;
	}
	/* fd stays open until exit so /proc/PID/fd/N still names the file for heald. */
	done(c->name, "fd=%d", fd);
	return 0;
}

/* The crashing store writes ->status of a NULL order, so the fault address is 0x10. */
struct failgen_order {
	const char *id;		/* 0x00 */
	long quantity;		/* 0x08 */
	int status;		/* 0x10 */
};

static const char *volatile failgen_last_order;

/* no_sanitize: under UBSan the NULL member access would be reported and aborted, not faulted. */
FAILGEN_PROBE_FN __attribute__((no_sanitize("address", "undefined")))
void failgen_crash_in_handler(const char *order_id)
{
	/* Volatile pointer: GCC cannot prove it is NULL, so it emits a store, not ud2. */
	struct failgen_order *volatile order = NULL;

	failgen_last_order = order_id;
	*(volatile int *)&order->status = 1;
	KEEP_FRAME();
}

FAILGEN_PROBE_FN
void failgen_handle_order(const char *order_id)
{
	failgen_crash_in_handler(order_id);
	KEEP_FRAME();
}

static int case_segfault(const struct failcase *c, const struct opts *o)
{
	failgen_handle_order(o->arg ? o->arg : ORDER_ID);
	KEEP_FRAME();
	fprintf(stderr, "failgen: %s: survived the NULL store\n", c->name);
	return EXIT_FAIL;
}

FAILGEN_PROBE_FN
void failgen_abort_in_handler(void)
{
	abort();
}

static int case_abort(const struct failcase *c, const struct opts *o)
{
	(void)c, (void)o;
	failgen_abort_in_handler();
	KEEP_FRAME();
	return EXIT_FAIL;
}

static int case_exit3(const struct failcase *c, const struct opts *o)
{
	(void)c, (void)o;
	exit(3);
}

struct memcg {
	char dir[PATH_MAX];
	int v2;
};

static int file_has_word(const char *path, const char *word)
{
	char buf[4096], *tok, *save;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	for (tok = strtok_r(buf, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save))
		if (!strcmp(tok, word))
			return 1;
	return 0;
}

/* Finds a memory cgroup hierarchy; returns its root or NULL, saying why on stderr. */
static const char *memcg_root(int *v2)
{
	static const char *const v2_roots[] = { "/sys/fs/cgroup/unified", "/sys/fs/cgroup" };
	char path[PATH_MAX];
	size_t i;

	if (!access("/sys/fs/cgroup/memory/memory.limit_in_bytes", F_OK)) {
		*v2 = 0;
		return "/sys/fs/cgroup/memory";
	}
	for (i = 0; i < sizeof(v2_roots) / sizeof(v2_roots[0]); i++) {
		snprintf(path, sizeof(path), "%s/cgroup.controllers", v2_roots[i]);
		if (!file_has_word(path, "memory"))
			continue;
		snprintf(path, sizeof(path), "%s/cgroup.subtree_control", v2_roots[i]);
		if (!file_has_word(path, "memory") && write_file(path, "+memory")) {
			fprintf(stderr, "failgen: oom: cannot enable memory in %s\n", path);
			continue;
		}
		*v2 = 1;
		return v2_roots[i];
	}
	fprintf(stderr, "failgen: oom: no cgroup v1 memory controller at /sys/fs/cgroup/memory and no cgroup v2 "
		"hierarchy with the memory controller at /sys/fs/cgroup/unified or /sys/fs/cgroup\n");
	return NULL;
}

static int memcg_set(const struct memcg *cg, const char *file, const char *val, int required)
{
	char path[PATH_MAX + 64];
	int err;

	snprintf(path, sizeof(path), "%s/%s", cg->dir, file);
	if (!required && access(path, F_OK))
		return 0;
	err = write_file(path, val);
	if (err)
		fprintf(stderr, "failgen: oom: write %s to %s: %s\n", val, path, strerror(-err));
	return err;
}

static void memcg_remove(const struct memcg *cg)
{
	int i;

	/* The memcg can stay busy for a moment after its last task is reaped. */
	for (i = 0; i < 100; i++) {
		if (!rmdir(cg->dir) || errno == ENOENT)
			return;
		if (errno != EBUSY)
			break;
		sleep_ms(10);
	}
	fprintf(stderr, "failgen: oom: rmdir %s: %s\n", cg->dir, strerror(errno));
}

static void *volatile oom_chunks;

static void oom_child(const struct memcg *cg)
{
	char procs[PATH_MAX + 64], pid[32];
	char *p;
	int i, err;

	snprintf(procs, sizeof(procs), "%s/cgroup.procs", cg->dir);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	err = write_file(procs, pid);
	if (err) {
		fprintf(stderr, "failgen: oom: join %s: %s\n", procs, strerror(-err));
		_exit(EXIT_SKIP);
	}
	for (i = 0; i < OOM_MAX_CHUNKS; i++) {
		p = malloc(OOM_CHUNK);
		if (!p)
			_exit(EXIT_FAIL);
		memset(p, 0xa5, OOM_CHUNK);
		/* Chained into a volatile global so the compiler cannot elide the allocation. */
		*(void **)p = oom_chunks;
		oom_chunks = p;
	}
	fprintf(stderr, "failgen: oom: allocated %d MiB without being killed\n", OOM_MAX_CHUNKS);
	_exit(EXIT_FAIL);
}

static int case_oom(const struct failcase *c, const struct opts *o)
{
	const char *root;
	struct memcg cg;
	char limit[32];
	int status = 0;
	pid_t pid;

	(void)o;
	root = memcg_root(&cg.v2);
	if (!root)
		return EXIT_SKIP;
	snprintf(cg.dir, sizeof(cg.dir), "%s/heal-failgen-%d", root, (int)getpid());
	if (mkdir(cg.dir, 0755) && errno != EEXIST) {
		fprintf(stderr, "failgen: oom: mkdir %s: %s\n", cg.dir, strerror(errno));
		return EXIT_SKIP;
	}
	snprintf(limit, sizeof(limit), "%lu", OOM_LIMIT_BYTES);
	/* v1 needs the memory limit set before memsw, which may not go below it. */
	if (cg.v2 ? memcg_set(&cg, "memory.max", limit, 1) || memcg_set(&cg, "memory.swap.max", "0", 0)
		  : memcg_set(&cg, "memory.limit_in_bytes", limit, 1) ||
		    memcg_set(&cg, "memory.memsw.limit_in_bytes", limit, 0)) {
		memcg_remove(&cg);
		return EXIT_SKIP;
	}
	/* The child is SIGKILLed inside the memcg; the parent outlives it to remove the cgroup. */
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "failgen: oom: fork: %s\n", strerror(errno));
		memcg_remove(&cg);
		return EXIT_FAIL;
	}
	if (pid == 0)
		oom_child(&cg);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	memcg_remove(&cg);
	if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_SKIP)
		return EXIT_SKIP;
	done(c->name, "child=%d status=%d", (int)pid, status);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
		fprintf(stderr, "failgen: oom: child was not OOM-killed\n");
		return EXIT_FAIL;
	}
	return 0;
}

/* Returns the HTTP-ish status for a request: 500 for paths under /returns, else 200. */
FAILGEN_PROBE_FN
int failgen_handle_request(int method, const char *path)
{
	int status = strncmp(path, API_PATH, strlen(API_PATH)) ? 200 : 500;

	(void)method;
	if (status >= 500) {
		/* Opaque to the optimizer so the probe's arg1 is a register, not the constant $500. */
		__asm__ __volatile__("" : "+r"(status));
		DTRACE_PROBE2(failgen, request_failed, status, path);
	}
	return status;
}

static int case_api(const struct failcase *c, const struct opts *o)
{
	const char *path = o->arg ? o->arg : API_PATH;
	long i, n = case_count(c, o);
	int status = 0;

	for (i = 0; i < n; i++)
		status = failgen_handle_request(1, path);
	done(c->name, "status=%d calls=%ld", status, n);
	return 0;
}

static int case_storm(const struct failcase *c, const struct opts *o)
{
	const char *path = case_path(c, o);
	long n = case_count(c, o), failures;
	struct timespec t0, t1;
	long long ns;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	failures = open_missing(path, n);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ns = (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
	done(c->name, "failures=%ld elapsed_ns=%lld", failures, ns);
	return failures == n ? 0 : EXIT_FAIL;
}

static int case_ok(const struct failcase *c, const struct opts *o)
{
	long i, n = case_count(c, o);
	struct stat st;
	int fd;

	for (i = 0; i < n; i++) {
		fd = openat(AT_FDCWD, "/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd < 0 || close(fd) || stat("/", &st)) {
			fprintf(stderr, "failgen: ok: %s\n", strerror(errno));
			return EXIT_FAIL;
		}
	}
	done(c->name, "iterations=%ld", n);
	return 0;
}

static int case_sleep(const struct failcase *c, const struct opts *o)
{
	/* main() already slept --delay-ms. */
	done(c->name, "slept_ms=%ld", o->delay_ms);
	return 0;
}

static int case_fork_missing_file(const struct failcase *c, const struct opts *o)
{
	const char *path = case_path(c, o);
	long n = case_count(c, o);
	int status = 0;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "failgen: %s: fork: %s\n", c->name, strerror(errno));
		return EXIT_FAIL;
	}
	if (pid == 0)
		_exit(open_missing(path, n) == n ? 0 : EXIT_FAIL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	done(c->name, "child=%d status=%d", (int)pid, status);
	return status ? EXIT_FAIL : 0;
}

static int case_exec_missing_file(const struct failcase *c, const struct opts *o)
{
	char exe[PATH_MAX], count[32], port[32];
	const char *argv[16];
	ssize_t len;
	int i = 0;

	argv[i++] = g_argv[0];
	argv[i++] = "missing-file";
	if (o->path) {
		argv[i++] = "--path";
		argv[i++] = o->path;
	}
	if (o->count >= 0) {
		snprintf(count, sizeof(count), "%ld", o->count);
		argv[i++] = "--count";
		argv[i++] = count;
	}
	if (o->arg) {
		argv[i++] = "--arg";
		argv[i++] = o->arg;
	}
	if (o->port >= 0) {
		snprintf(port, sizeof(port), "%ld", o->port);
		argv[i++] = "--port";
		argv[i++] = port;
	}
	argv[i] = NULL;
	fflush(NULL);
	/* Exec the resolved path: exec of "/proc/self/exe" would rename comm to "exe". */
	len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (len > 0) {
		exe[len] = '\0';
		execv(exe, (char *const *)argv);
	}
	execv("/proc/self/exe", (char *const *)argv);
	fprintf(stderr, "failgen: %s: exec /proc/self/exe: %s\n", c->name, strerror(errno));
	return EXIT_FAIL;
}

static const struct failcase cases[] = {
	{ "missing-file", case_missing_file,
	  "openat(AT_FDCWD, PATH, O_RDONLY) fails with ENOENT, COUNT times", MISSING_PATH, 1 },
	{ "refused-connect", case_refused_connect,
	  "TCP connect() to 127.0.0.1:PORT fails with ECONNREFUSED", NULL, 1 },
	{ "emfile", case_emfile,
	  "RLIMIT_NOFILE=32, then openat(/dev/null) until it fails with EMFILE", NULL, 1 },
	{ "enospc", case_enospc,
	  "write() to PATH/spool.dat on a 64k tmpfs fails with ENOSPC (root, private mount ns)", ENOSPC_DIR, 1 },
	{ "segfault", case_segfault,
	  "failgen_handle_order -> failgen_crash_in_handler stores to NULL+0x10: SIGSEGV", NULL, 1 },
	{ "abort", case_abort,
	  "failgen_abort_in_handler calls abort(): SIGABRT", NULL, 1 },
	{ "exit3", case_exit3,
	  "exit(3)", NULL, 1 },
	{ "oom", case_oom,
	  "a child in a 32 MiB memory cgroup allocates until the OOM killer SIGKILLs it", NULL, 1 },
	{ "api", case_api,
	  "failgen_handle_request(1, ARG) returns 500 for /returns* and fires USDT failgen:request_failed",
	  NULL, 1 },
	{ "storm", case_storm,
	  "COUNT openat(PATH) ENOENT failures as fast as possible", STORM_PATH, 1000000 },
	{ "ok", case_ok,
	  "nothing fails: open/close /dev/null and stat /, COUNT times", NULL, 1 },
	{ "sleep", case_sleep,
	  "nothing fails: sleep DELAY-MS and exit 0", NULL, 1 },
	{ "fork-missing-file", case_fork_missing_file,
	  "a forked child does missing-file; the parent waits", MISSING_PATH, 1 },
	{ "exec-missing-file", case_exec_missing_file,
	  "re-exec itself as missing-file with the same options (minus --delay-ms)", MISSING_PATH, 1 },
};

#define NR_CASES (sizeof(cases) / sizeof(cases[0]))

static void usage(FILE *f)
{
	fprintf(f,
		"usage: failgen [options] CASE\n"
		"       failgen --list\n"
		"options:\n"
		"  --path P        file path (file cases) or directory (enospc)\n"
		"  --count N       repetitions (missing-file, refused-connect, api, storm, ok, *-missing-file)\n"
		"  --delay-ms N    sleep before the failure (default 0)\n"
		"  --arg S         string argument (api: request path, segfault: order id)\n"
		"  --port N        refused-connect port (default: a free one)\n");
}

static void list_cases(void)
{
	size_t i;

	for (i = 0; i < NR_CASES; i++)
		printf("%-18s %s\n", cases[i].name, cases[i].desc);
}

static int parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "path", required_argument, NULL, 'P' },
		{ "count", required_argument, NULL, 'c' },
		{ "delay-ms", required_argument, NULL, 'd' },
		{ "arg", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'p' },
		{ "list", no_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .count = -1, .port = -1 };
	int opt, idx = 0, err = 0;
	size_t i;

	g_argv = (const char *const *)argv;
	while ((opt = getopt_long(argc, argv, "h", longopts, &idx)) != -1) {
		switch (opt) {
		case 'P':
			o.path = optarg;
			break;
		case 'a':
			o.arg = optarg;
			break;
		case 'c':
			err = parse_long(optarg, 0, LONG_MAX, &o.count);
			break;
		case 'd':
			err = parse_long(optarg, 0, LONG_MAX / 1000, &o.delay_ms);
			break;
		case 'p':
			err = parse_long(optarg, 1, 65535, &o.port);
			break;
		case 'l':
			list_cases();
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
		if (err) {
			fprintf(stderr, "failgen: bad number for --%s: %s\n", longopts[idx].name, optarg);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	for (i = 0; i < NR_CASES; i++) {
		if (strcmp(argv[optind], cases[i].name))
			continue;
		if (o.delay_ms)
			sleep_ms(o.delay_ms);
		return cases[i].fn(&cases[i], &o);
	}
	fprintf(stderr, "failgen: unknown case '%s' (see failgen --list)\n", argv[optind]);
	return EXIT_USAGE;
}
