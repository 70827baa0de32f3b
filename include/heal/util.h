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

#endif /* HEAL_UTIL_H */
