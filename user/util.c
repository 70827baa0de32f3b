// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <mntent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
