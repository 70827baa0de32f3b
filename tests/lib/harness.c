// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "harness.h"

static int n_pass, n_fail, n_skip;
static int cur_failed, cur_skipped;
static const char *cur_name = "";
static char tmp_root[PATH_MAX];
static int tmp_seq;

void h_fail(const char *file, int line, const char *name, const char *fmt, ...)
{
	va_list ap;

	cur_failed++;
	fprintf(stderr, "  FAIL %s: %s (%s:%d): ", cur_name, name, file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void h_skip(const char *fmt, ...)
{
	const char *req = getenv("HEAL_REQUIRE_BPF");
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (req && strcmp(req, "1") == 0) {
		h_fail(__FILE__, __LINE__, "skip", "cannot skip under HEAL_REQUIRE_BPF=1: %s", why);
		return;
	}
	fprintf(stderr, "  SKIP %s: %s\n", cur_name, why);
	cur_skipped = 1;
}

bool h_need_bpf(void)
{
	if (geteuid() != 0) {
		h_skip("BPF tests need root");
		return false;
	}
	if (access("/sys/kernel/btf/vmlinux", R_OK)) {
		h_skip("no kernel BTF at /sys/kernel/btf/vmlinux");
		return false;
	}
	if (access("/sys/kernel/tracing/events", X_OK) &&
	    access("/sys/kernel/debug/tracing/events", X_OK)) {
		h_skip("tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing)");
		return false;
	}
	return true;
}

void h_subtest(const char *name, h_test_fn fn)
{
	const char *only = getenv("HEAL_ONLY");
	struct timespec a, b;

	/* HEAL_ONLY=name runs that subtest alone (the others are not counted) */
	if (only && only[0] && strcmp(only, name))
		return;
	cur_name = name;
	cur_failed = 0;
	cur_skipped = 0;
	clock_gettime(CLOCK_MONOTONIC, &a);
	fn();
	clock_gettime(CLOCK_MONOTONIC, &b);
	if (cur_failed) {
		n_fail++;
		fprintf(stderr, "not ok - %s\n", name);
	} else if (cur_skipped) {
		n_skip++;
		fprintf(stderr, "ok - %s # SKIP\n", name);
	} else {
		n_pass++;
		fprintf(stderr, "ok - %s (%.2fs)\n", name,
			(double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9);
	}
	cur_name = "";
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int h_summary(const char *suite)
{
	const char *keep = getenv("HEAL_KEEP");

	if (tmp_root[0] && !(keep && strcmp(keep, "1") == 0))
		nftw(tmp_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	/* the line tests/run.sh adds up */
	printf("%s: %d passed, %d failed, %d skipped\n", suite, n_pass, n_fail, n_skip);
	fflush(stdout);
	return n_fail ? 1 : 0;
}

const char *h_bin(const char *name)
{
	static char buf[8][PATH_MAX];
	static int slot;
	const char *bin = getenv("BIN");
	char *p = buf[slot++ % 8];
	char rel[PATH_MAX];

	snprintf(rel, sizeof(rel), "%s/%s", bin && bin[0] ? bin : ".output/obj/bin", name);
	if (!realpath(rel, p))
		snprintf(p, PATH_MAX, "%s", rel);
	return p;
}

const char *h_tmpdir(void)
{
	static char dir[PATH_MAX + 16];

	if (!tmp_root[0]) {
		snprintf(tmp_root, sizeof(tmp_root), "/tmp/heal-test.XXXXXX");
		if (!mkdtemp(tmp_root)) {
			perror("mkdtemp");
			exit(1);
		}
	}
	snprintf(dir, sizeof(dir), "%s/%d", tmp_root, ++tmp_seq);
	mkdir(dir, 0700);
	return dir;
}

int h_source_line(const char *file, const char *needle)
{
	char line[4096];
	FILE *f = fopen(file, "r");
	int n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		n++;
		if (strstr(line, needle)) {
			fclose(f);
			return n;
		}
	}
	fclose(f);
	return -1;
}

static char *replace_all(const char *s, const char *from, const char *to)
{
	size_t flen = strlen(from), tlen = strlen(to), n = 0, i;
	const char *p;
	char *out, *o;

	for (p = s; (p = strstr(p, from)); p += flen)
		n++;
	out = malloc(strlen(s) + n * (tlen > flen ? tlen - flen : 0) + 1);
	if (!out)
		return NULL;
	for (o = out, i = 0; s[i];) {
		if (strncmp(s + i, from, flen) == 0) {
			memcpy(o, to, tlen);
			o += tlen;
			i += flen;
		} else {
			*o++ = s[i++];
		}
	}
	*o = 0;
	return out;
}

long h_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static bool errlog_has(const struct h_heald *h, const char *needle)
{
	char *buf = NULL;
	size_t cap = 0;
	bool hit = false;
	FILE *f = fopen(h->errlog, "r");

	if (!f)
		return false;
	while (getline(&buf, &cap, f) > 0)
		if (strstr(buf, needle)) {
			hit = true;
			break;
		}
	free(buf);
	fclose(f);
	return hit;
}

static void dump_errlog(const struct h_heald *h)
{
	char line[1024];
	FILE *f = fopen(h->errlog, "r");
	int n = 0;

	if (!f)
		return;
	fprintf(stderr, "  --- heald stderr (%s) ---\n", h->errlog);
	while (fgets(line, sizeof(line), f) && n++ < 40)
		fprintf(stderr, "  | %s", line);
	fclose(f);
}

static bool pump(struct h_heald *h, int ms);

/* Start heald --watch on h->config, stderr to h->errlog; true once it says it is watching. */
static bool spawn_heald(struct h_heald *h, int errlog_flags)
{
	int pipefd[2], errfd;
	long deadline;

	if (pipe2(pipefd, O_CLOEXEC))
		return false;
	errfd = open(h->errlog, O_WRONLY | O_CREAT | O_CLOEXEC | errlog_flags, 0600);
	h->pid = fork();
	if (h->pid == 0) {
		dup2(pipefd[1], 1);
		dup2(errfd, 2);
		execl(h_bin("heald"), "heald", "--config", h->config, "--watch", "-v", (char *)NULL);
		_exit(127);
	}
	close(pipefd[1]);
	close(errfd);
	h->out_fd = pipefd[0];
	fcntl(h->out_fd, F_SETFL, O_NONBLOCK);
	deadline = h_now_ms() + 15000;
	while (h_now_ms() < deadline) {
		int st;

		if (errlog_has(h, " watching "))
			return true;
		if (waitpid(h->pid, &st, WNOHANG) == h->pid) {
			h->pid = -1;
			dump_errlog(h);
			return false;
		}
		usleep(10000);
	}
	dump_errlog(h);
	return false;
}

bool h_heald_start(struct h_heald *h, const char *config_json)
{
	char state[PATH_MAX + 8], *a, *b;
	FILE *f;

	memset(h, 0, sizeof(*h));
	h->pid = -1;
	h->out_fd = -1;
	snprintf(h->dir, sizeof(h->dir), "%s", h_tmpdir());
	snprintf(h->config, sizeof(h->config), "%s/heal.json", h->dir);
	snprintf(h->errlog, sizeof(h->errlog), "%s/heald.err", h->dir);
	snprintf(state, sizeof(state), "%s/state", h->dir);
	/* no HTTP API unless the test asks for one: the default port is one per machine */
	if (!strstr(config_json, "\"listen\"") && config_json[0] == '{') {
		char *with = malloc(strlen(config_json) + 32);

		if (!with)
			return false;
		sprintf(with, "{\"listen\": \"\", %s", config_json + 1);
		a = replace_all(with, "@STATE@", state);
		free(with);
	} else {
		a = replace_all(config_json, "@STATE@", state);
	}
	b = a ? replace_all(a, "@FAILGEN@", h_bin("failgen")) : NULL;
	free(a);
	f = b ? fopen(h->config, "w") : NULL;
	if (!f) {
		free(b);
		return false;
	}
	fputs(b, f);
	fclose(f);
	free(b);
	return spawn_heald(h, O_TRUNC);
}

void h_heald_kill(struct h_heald *h)
{
	if (h->pid <= 0)
		return;
	kill(h->pid, SIGKILL);
	waitpid(h->pid, NULL, 0);
	h->pid = -1;
	/* what it printed before it died, up to the end of its output */
	h_heald_drain(h, 1000);
}

bool h_heald_restart(struct h_heald *h)
{
	char old[PATH_MAX + 32];
	size_t i;

	if (h->pid > 0)
		return false;
	if (h->out_fd >= 0)
		close(h->out_fd);
	h->out_fd = -1;
	for (i = 0; i < h->n_events; i++)
		cJSON_Delete(h->events[i]);
	h->n_events = 0;
	h->buf_len = 0;
	/* keep the previous run's log next to the new one */
	snprintf(old, sizeof(old), "%s.1", h->errlog);
	rename(h->errlog, old);
	return spawn_heald(h, O_TRUNC);
}

static void push_event(struct h_heald *h, const char *line)
{
	cJSON *ev = cJSON_Parse(line);

	if (!ev) {
		fprintf(stderr, "  heald printed a line that is not JSON: %s\n", line);
		return;
	}
	if (h->n_events == h->cap_events) {
		size_t cap = h->cap_events ? h->cap_events * 2 : 64;
		cJSON **v = realloc(h->events, cap * sizeof(*v));

		if (!v) {
			cJSON_Delete(ev);
			return;
		}
		h->events = v;
		h->cap_events = cap;
	}
	h->events[h->n_events++] = ev;
}

/* Read what is available (waiting up to ms); returns false at EOF. */
static bool pump(struct h_heald *h, int ms)
{
	struct pollfd pfd = { .fd = h->out_fd, .events = POLLIN };
	ssize_t n;
	char *nl;

	if (h->out_fd < 0)
		return false;
	if (poll(&pfd, 1, ms) <= 0)
		return true;
	n = read(h->out_fd, h->buf + h->buf_len, sizeof(h->buf) - 1 - h->buf_len);
	if (n == 0)
		return false;
	if (n < 0)
		return errno == EAGAIN || errno == EINTR;
	h->buf_len += (size_t)n;
	h->buf[h->buf_len] = 0;
	while ((nl = memchr(h->buf, '\n', h->buf_len))) {
		*nl = 0;
		push_event(h, h->buf);
		h->buf_len -= (size_t)(nl + 1 - h->buf);
		memmove(h->buf, nl + 1, h->buf_len);
	}
	if (h->buf_len == sizeof(h->buf) - 1)
		h->buf_len = 0; /* a line longer than the buffer: drop it */
	return true;
}

static cJSON *find(struct h_heald *h, size_t from, const char *type, const char *key, int pid)
{
	size_t i;

	for (i = from; i < h->n_events; i++) {
		cJSON *ev = h->events[i];
		const cJSON *t = cJSON_GetObjectItem(ev, "type"), *k = cJSON_GetObjectItem(ev, "key");

		if (!cJSON_IsString(t) || strcmp(t->valuestring, type))
			continue;
		if (key && (!cJSON_IsString(k) || strcmp(k->valuestring, key)))
			continue;
		if (pid && (int)h_num(ev, "pid") != pid)
			continue;
		return ev;
	}
	return NULL;
}

static cJSON *wait_for(struct h_heald *h, const char *type, const char *key, int pid, int timeout_ms)
{
	long deadline = h_now_ms() + timeout_ms;
	cJSON *ev;

	for (;;) {
		ev = find(h, 0, type, key, pid);
		if (ev)
			return ev;
		if (h_now_ms() >= deadline || !pump(h, 50))
			break;
	}
	return find(h, 0, type, key, pid);
}

cJSON *h_heald_wait(struct h_heald *h, const char *type, const char *key, int timeout_ms)
{
	return wait_for(h, type, key, 0, timeout_ms);
}

cJSON *h_heald_wait_pid(struct h_heald *h, const char *type, int pid, int timeout_ms)
{
	return wait_for(h, type, NULL, pid, timeout_ms);
}

void h_heald_drain(struct h_heald *h, int ms)
{
	long deadline = h_now_ms() + ms;

	while (h_now_ms() < deadline && pump(h, 20))
		;
}

int h_heald_count(struct h_heald *h, const char *type)
{
	size_t i;
	int n = 0;

	for (i = 0; i < h->n_events; i++) {
		const cJSON *t = cJSON_GetObjectItem(h->events[i], "type");

		if (cJSON_IsString(t) && strcmp(t->valuestring, type) == 0)
			n++;
	}
	return n;
}

int h_heald_stop(struct h_heald *h)
{
	int st = -1;
	long deadline;

	if (h->pid <= 0)
		return -1;
	kill(h->pid, SIGTERM);
	deadline = h_now_ms() + 10000;
	while (h_now_ms() < deadline) {
		pump(h, 20);
		if (waitpid(h->pid, &st, WNOHANG) == h->pid) {
			while (pump(h, 0) && h->out_fd >= 0) {
				struct pollfd pfd = { .fd = h->out_fd, .events = POLLIN };

				if (poll(&pfd, 1, 0) <= 0)
					break;
			}
			h->pid = -1;
			return st;
		}
	}
	kill(h->pid, SIGKILL);
	waitpid(h->pid, &st, 0);
	h->pid = -1;
	dump_errlog(h);
	return -1;
}

void h_heald_free(struct h_heald *h)
{
	size_t i;

	if (h->pid > 0) {
		kill(h->pid, SIGKILL);
		waitpid(h->pid, NULL, 0);
	}
	if (h->out_fd >= 0)
		close(h->out_fd);
	for (i = 0; i < h->n_events; i++)
		cJSON_Delete(h->events[i]);
	free(h->events);
	memset(h, 0, sizeof(*h));
	h->pid = -1;
	h->out_fd = -1;
}

char *h_target_log(struct h_heald *h, const char *target)
{
	char path[PATH_MAX + 64], *buf;
	FILE *f;
	long n;

	snprintf(path, sizeof(path), "%s/state/%s.log", h->dir, target);
	f = fopen(path, "r");
	if (!f)
		return strdup("");
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = calloc(1, (size_t)(n > 0 ? n : 0) + 1);
	if (buf && n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n)
		buf[0] = 0;
	fclose(f);
	return buf;
}

int h_run(char *const argv[], char **output)
{
	int pipefd[2], st = -1;
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	ssize_t n;
	pid_t pid;

	*output = NULL;
	if (!buf || pipe2(pipefd, O_CLOEXEC)) {
		free(buf);
		return -1;
	}
	pid = fork();
	if (pid == 0) {
		dup2(pipefd[1], 1);
		dup2(pipefd[1], 2);
		execv(argv[0], argv);
		_exit(127);
	}
	close(pipefd[1]);
	while ((n = read(pipefd[0], buf + len, cap - len - 1)) > 0) {
		len += (size_t)n;
		if (cap - len < 1024) {
			char *nb = realloc(buf, cap * 2);

			if (!nb)
				break;
			buf = nb;
			cap *= 2;
		}
	}
	buf[len] = 0;
	close(pipefd[0]);
	waitpid(pid, &st, 0);
	*output = buf;
	return st;
}

const char *h_str(const cJSON *ev, const char *field)
{
	const cJSON *p = cJSON_GetObjectItem(ev, "payload");
	const cJSON *v = p ? cJSON_GetObjectItem(p, field) : NULL;

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

double h_num(const cJSON *ev, const char *field)
{
	const cJSON *p = cJSON_GetObjectItem(ev, "payload");
	const cJSON *v = p ? cJSON_GetObjectItem(p, field) : NULL;

	return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

int h_http(int port, const char *method, const char *path, const char *body)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { .tv_sec = 5 };
	char req[4096], resp[256];
	int fd, status = -1;
	ssize_t n;

	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		return -1;
	}
	snprintf(req, sizeof(req),
		 "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\n\r\n%s",
		 method, path, body ? strlen(body) : 0, body ? body : "");
	if (write(fd, req, strlen(req)) == (ssize_t)strlen(req)) {
		n = read(fd, resp, sizeof(resp) - 1);
		if (n > 12) {
			resp[n] = 0;
			status = atoi(resp + 9);
		}
	}
	close(fd);
	return status;
}

int h_free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

char *h_read(const char *path, size_t *len)
{
	size_t used = 0, cap = 4096;
	char *buf = malloc(cap), *nb;
	FILE *f = fopen(path, "rb");
	size_t n;

	/* read to the end: /proc files report a size of 0 */
	if (!f || !buf) {
		if (f)
			fclose(f);
		free(buf);
		return NULL;
	}
	while ((n = fread(buf + used, 1, cap - used - 1, f)) > 0) {
		used += n;
		if (cap - used < 2) {
			nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
			cap *= 2;
		}
	}
	if (ferror(f)) {
		free(buf);
		fclose(f);
		return NULL;
	}
	buf[used] = 0;
	if (len)
		*len = used;
	fclose(f);
	return buf;
}

bool h_write(const char *path, const char *content)
{
	FILE *f = fopen(path, "wb");
	bool ok;

	if (!f)
		return false;
	ok = fputs(content, f) >= 0;
	return fclose(f) == 0 && ok;
}
