/* SPDX-License-Identifier: MIT */
/* Small file-system helpers shared by heald's modules. */
#ifndef HEAL_UTIL_H
#define HEAL_UTIL_H

#include <stddef.h>
#include <sys/types.h>

/* Mount point of the cgroup v2 hierarchy ("/sys/fs/cgroup" or ".../unified"). */
const char *util__cgroup2_root(void);
/* mkdir -p with mode for created directories. 0 or -errno. */
int util__mkdir_p(const char *path, mode_t mode);
/* Read a whole small file (<= max bytes) into a NUL-terminated malloc'd buffer. 0 or -errno. */
int util__read_file(const char *path, size_t max, char **out, size_t *len);

/*
 * Run argv (no shell) with stdin from /dev/null, stdout+stderr captured into
 * out (truncated to outlen - 1, NUL-terminated), killed (whole process group)
 * after timeout_ms. Blocks: call it from a worker thread. Returns the wait(2)
 * status, or -ETIMEDOUT, or -errno when it could not run.
 */
int util__run(char *const argv[], unsigned timeout_ms, char *out, size_t outlen);
/* write(2) all of buf, retrying short writes and EINTR. 0, -EIO (wrote nothing), or -errno. */
int util__write_all(int fd, const void *buf, size_t len);

/* A growing NUL-terminated string (zero-initialize it); the first failure
 * sticks in err (-ENOMEM, -EINVAL) and later appends do nothing. p is the
 * caller's to free. */
struct util_sb {
	char *p;
	size_t len, cap;
	int err;
};
void util__sb_putn(struct util_sb *b, const char *s, size_t n);
void util__sb_puts(struct util_sb *b, const char *s);
void util__sb_printf(struct util_sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

struct cJSON;
/* "a string", "an array", ... for messages about a JSON value of the wrong type. */
const char *util__json_type_name(const struct cJSON *j);

/* Milliseconds of CLOCK_MONOTONIC. */
long long util__now_ms(void);

#endif /* HEAL_UTIL_H */
