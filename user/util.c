// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <mntent.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "heal/util.h"

static char cgroup2_root[PATH_MAX] = "/sys/fs/cgroup";
static pthread_once_t cgroup2_once = PTHREAD_ONCE_INIT;

static void find_cgroup2(void)
{
	FILE *f = setmntent("/proc/self/mounts", "r");
	struct mntent *m;

	if (!f)
		return;
	while ((m = getmntent(f))) {
		if (strcmp(m->mnt_type, "cgroup2") == 0) {
			snprintf(cgroup2_root, sizeof(cgroup2_root), "%s", m->mnt_dir);
			break;
		}
	}
	endmntent(f);
}

const char *util__cgroup2_root(void)
{
	pthread_once(&cgroup2_once, find_cgroup2);
	return cgroup2_root;
}

int util__mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t i, len = strlen(path);

	if (len == 0 || len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != 0)
			continue;
		buf[i] = 0;
		if (mkdir(buf, mode) && errno != EEXIST)
			return -errno;
		buf[i] = i == len ? 0 : '/';
	}
	return 0;
}

int util__read_file(const char *path, size_t max, char **out, size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	ssize_t r;
	int fd, err = 0;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf = malloc(max + 1);
	if (!buf) {
		err = -ENOMEM;
		goto cleanup;
	}
	while (n < max && (r = read(fd, buf + n, max - n)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			goto cleanup;
		}
		n += (size_t)r;
	}
	buf[n] = 0;
	*out = buf;
	buf = NULL;
	if (len)
		*len = n;
cleanup:
	free(buf);
	close(fd);
	return err;
}

long long util__now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int util__run(char *const argv[], unsigned timeout_ms, char *out, size_t outlen)
{
	long long deadline = util__now_ms() + timeout_ms;
	int pipefd[2], status = 0, timed_out = 0;
	size_t used = 0;
	char sink[512];
	pid_t pid;

	if (outlen)
		out[0] = 0;
	if (pipe2(pipefd, O_CLOEXEC))
		return -errno;
	pid = fork();
	if (pid < 0) {
		int e = -errno;

		close(pipefd[0]);
		close(pipefd[1]);
		return e;
	}
	if (pid == 0) {
		sigset_t none;
		int devnull = open("/dev/null", O_RDONLY);

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		setpgid(0, 0);
		if (devnull >= 0)
			dup2(devnull, 0);
		dup2(pipefd[1], 1);
		dup2(pipefd[1], 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(pipefd[1]);
	for (;;) {
		long long left = deadline - util__now_ms();
		struct pollfd pfd = { .fd = pipefd[0], .events = POLLIN };
		ssize_t n;

		if (left <= 0) {
			timed_out = 1;
			break;
		}
		if (poll(&pfd, 1, (int)(left > 1000 ? 1000 : left)) <= 0)
			continue;
		if (used + 1 < outlen)
			n = read(pipefd[0], out + used, outlen - used - 1);
		else
			n = read(pipefd[0], sink, sizeof(sink)); /* keep draining: the child must not block */
		if (n <= 0)
			break;
		if (used + 1 < outlen) {
			used += (size_t)n;
			out[used] = 0;
		}
	}
	close(pipefd[0]);
	if (timed_out) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
	}
	/* output closed: the command is done or has closed its output; wait for it within the budget */
	while (!timed_out) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return status;
		if (util__now_ms() >= deadline) {
			timed_out = 1;
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			break;
		}
		usleep(5000);
	}
	waitpid(pid, &status, 0);
	return -ETIMEDOUT;
}

int util__write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t r;

	while (len) {
		r = write(fd, p, len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EIO;
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

const char *util__json_type_name(const struct cJSON *j)
{
	if (cJSON_IsNull(j))
		return "null";
	if (cJSON_IsBool(j))
		return "a boolean";
	if (cJSON_IsNumber(j))
		return "a number";
	if (cJSON_IsString(j))
		return "a string";
	if (cJSON_IsArray(j))
		return "an array";
	if (cJSON_IsObject(j))
		return "an object";
	return "an invalid value";
}

/* Room for n more bytes and the NUL; allocates even for n == 0, so p is a string. */
static int sb_reserve(struct util_sb *b, size_t n)
{
	size_t cap;
	char *p;

	if (b->err)
		return b->err;
	if (b->len + n + 1 <= b->cap)
		return 0;
	for (cap = b->cap ? b->cap : 256; cap < b->len + n + 1; cap *= 2)
		;
	p = realloc(b->p, cap);
	if (!p)
		return b->err = -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

void util__sb_putn(struct util_sb *b, const char *s, size_t n)
{
	if (sb_reserve(b, n))
		return;
	if (n)
		memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void util__sb_puts(struct util_sb *b, const char *s)
{
	util__sb_putn(b, s, strlen(s));
}

void util__sb_printf(struct util_sb *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		if (!b->err)
			b->err = -EINVAL;
		return;
	}
	if (sb_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}
