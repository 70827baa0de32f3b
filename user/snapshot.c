// SPDX-License-Identifier: MIT
/* snapshot: content-addressed, zlib-compressed known-good versions of files. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <zlib.h>

#include "heal/snapshot.h"
#include "heal/util.h"

#define INDEX	     "index.jsonl"
#define INDEX_TMP    "index.jsonl.tmp"
#define INDEX_MAX    (4u << 20) /* 1000 versions of < 2 KiB lines */
#define DEFAULT_KEEP 10u
#define MAX_KEEP     1000u
#define ESCAPED_MAX  200 /* of NAME_MAX 255: room for "~<16 hex>" and temp suffixes */
#define ZLEVEL	     6

struct snapshots {
	int dirfd;
	unsigned keep;
};

struct version {
	long long time_us;
	uint64_t hash;
	size_t size;
	unsigned mode;
	unsigned uid;
	unsigned gid;
	char reason[SNAPSHOT_REASON_MAX + 1];
};

static uint64_t fnv1a64(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t h = 0xcbf29ce484222325ull;

	while (len--) {
		h ^= *p++;
		h *= 0x100000001b3ull;
	}
	return h;
}

/* One directory name per path, reversible unless it had to be shortened. */
static void escape_path(const char *path, char *out)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p;
	size_t o = 0;

	for (p = (const unsigned char *)path; *p; p++) {
		int keep = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			   (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
			   (*p == '.' && o > 0); /* never ".", ".." or a hidden name */

		if (o + (keep ? 1 : 3) > ESCAPED_MAX - 17) {
			snprintf(out + o, 18, "~%016llx",
				 (unsigned long long)fnv1a64(path, strlen(path)));
			return;
		}
		if (keep) {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = 0;
}

static void object_name(char *buf, size_t len, uint64_t hash, size_t size)
{
	snprintf(buf, len, "%016llx-%zu.z", (unsigned long long)hash, size);
}

/* All of fd into a NUL-terminated malloc'd buffer; -EFBIG past max bytes. */
static int read_all(int fd, size_t max, char **out, size_t *len)
{
	size_t n = 0, cap = 0;
	char *buf = NULL, *nb;
	ssize_t r;

	*out = NULL;
	for (;;) {
		if (n == cap) {
			if (cap > max) {
				free(buf);
				return -EFBIG;
			}
			cap = cap ? cap * 2 : 64 << 10;
			if (cap > max + 1)
				cap = max + 1;
			nb = realloc(buf, cap + 1);
			if (!nb) {
				free(buf);
				return -ENOMEM;
			}
			buf = nb;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			free(buf);
			return -errno;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max) {
			free(buf);
			return -EFBIG;
		}
	}
	buf[n] = 0;
	*out = buf;
	*len = n;
	return 0;
}

/* name in pfd gets exactly data: temp file, fsync, rename (dir fsync: caller). */
static int write_file_at(int pfd, const char *name, const void *data, size_t len)
{
	char tmp[NAME_MAX + 8];
	int fd, err;

	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	fd = openat(pfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	err = util__write_all(fd, data, len);
	if (!err && fsync(fd))
		err = -errno;
	if (close(fd) && !err)
		err = -errno;
	if (!err && renameat(pfd, tmp, pfd, name))
		err = -errno;
	if (err)
		unlinkat(pfd, tmp, 0);
	return err;
}

/* The directory of path's versions, flock'ed (LOCK_EX or LOCK_SH). */
static int open_path_dir(struct snapshots *s, const char *path, int create, int lock, int *out)
{
	char name[NAME_MAX + 1];
	int fd;

	*out = -1;
	escape_path(path, name);
	if (create) {
		if (mkdirat(s->dirfd, name, 0700) == 0) {
			if (fsync(s->dirfd))
				return -errno;
		} else if (errno != EEXIST) {
			return -errno;
		}
	}
	fd = openat(s->dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (flock(fd, lock)) {
		if (errno != EINTR) {
			int err = -errno;

			close(fd);
			return err;
		}
	}
	*out = fd;
	return 0;
}

static int parse_version(const char *line, struct version *v)
{
	cJSON *o = cJSON_Parse(line), *t, *h, *sz, *m, *u, *g, *r;
	char *end;
	int ok;

	if (!o)
		return 0;
	t = cJSON_GetObjectItem(o, "time_us");
	h = cJSON_GetObjectItem(o, "hash");
	sz = cJSON_GetObjectItem(o, "size");
	m = cJSON_GetObjectItem(o, "mode");
	u = cJSON_GetObjectItem(o, "uid");
	g = cJSON_GetObjectItem(o, "gid");
	r = cJSON_GetObjectItem(o, "reason");
	ok = cJSON_IsNumber(t) && cJSON_IsString(h) && strlen(h->valuestring) == 16 &&
	     cJSON_IsNumber(sz) && sz->valuedouble >= 0 && sz->valuedouble <= SNAPSHOT_MAX_FILE &&
	     cJSON_IsNumber(m) && cJSON_IsNumber(u) && cJSON_IsNumber(g);
	if (ok) {
		v->time_us = (long long)t->valuedouble;
		v->hash = strtoull(h->valuestring, &end, 16);
		ok = *end == 0;
		v->size = (size_t)sz->valuedouble;
		v->mode = (unsigned)m->valuedouble & 07777;
		v->uid = (unsigned)u->valuedouble;
		v->gid = (unsigned)g->valuedouble;
		snprintf(v->reason, sizeof(v->reason), "%s",
			 cJSON_IsString(r) ? r->valuestring : "");
	}
	cJSON_Delete(o);
	return ok;
}

/* Versions oldest first; none when there is no index. Damaged lines are skipped. */
static int load_index(int pfd, struct version **out, size_t *n)
{
	struct version *v = NULL, *nv;
	size_t len, cap = 0, cnt = 0;
	char *buf = NULL, *line, *save = NULL;
	int fd, err;

	*out = NULL;
	*n = 0;
	fd = openat(pfd, INDEX, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	err = read_all(fd, INDEX_MAX, &buf, &len);
	close(fd);
	if (err)
		return err;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				free(v);
				free(buf);
				return -ENOMEM;
			}
			v = nv;
		}
		if (parse_version(line, &v[cnt]))
			cnt++;
	}
	free(buf);
	*out = v;
	*n = cnt;
	return 0;
}

static int write_index(int pfd, const struct version *v, size_t n)
{
	char *text = NULL, *line, *nt, hash[17];
	size_t len = 0, cap = 0, l, i;
	cJSON *o;
	int err = 0;

	for (i = 0; i < n; i++) {
		snprintf(hash, sizeof(hash), "%016llx", (unsigned long long)v[i].hash);
		o = cJSON_CreateObject();
		if (!o || !cJSON_AddNumberToObject(o, "time_us", (double)v[i].time_us) ||
		    !cJSON_AddStringToObject(o, "hash", hash) ||
		    !cJSON_AddNumberToObject(o, "size", (double)v[i].size) ||
		    !cJSON_AddNumberToObject(o, "mode", v[i].mode) ||
		    !cJSON_AddNumberToObject(o, "uid", v[i].uid) ||
		    !cJSON_AddNumberToObject(o, "gid", v[i].gid) ||
		    !cJSON_AddStringToObject(o, "reason", v[i].reason)) {
			cJSON_Delete(o);
			err = -ENOMEM;
			goto cleanup;
		}
		line = cJSON_PrintUnformatted(o);
		cJSON_Delete(o);
		if (!line) {
			err = -ENOMEM;
			goto cleanup;
		}
		l = strlen(line);
		if (len + l + 1 > cap) {
			cap = (len + l + 1) * 2;
			nt = realloc(text, cap);
			if (!nt) {
				free(line);
				err = -ENOMEM;
				goto cleanup;
			}
			text = nt;
		}
		memcpy(text + len, line, l);
		text[len + l] = '\n';
		len += l + 1;
		free(line);
	}
	err = write_file_at(pfd, INDEX, text ? text : "", len);
	if (!err && fsync(pfd))
		err = -errno;
cleanup:
	free(text);
	return err;
}

/* Remove temp files and objects no kept version refers to. */
static void sweep(int pfd, const struct version *v, size_t n)
{
	char want[NAME_MAX + 1];
	struct dirent *de;
	size_t i, l;
	DIR *d;
	int fd;

	fd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((de = readdir(d))) {
		l = strlen(de->d_name);
		if (l > 4 && strcmp(de->d_name + l - 4, ".tmp") == 0) {
			unlinkat(pfd, de->d_name, 0);
			continue;
		}
		if (l < 3 || strcmp(de->d_name + l - 2, ".z") != 0)
			continue;
		for (i = 0; i < n; i++) {
			object_name(want, sizeof(want), v[i].hash, v[i].size);
			if (strcmp(want, de->d_name) == 0)
				break;
		}
		if (i == n)
			unlinkat(pfd, de->d_name, 0);
	}
	closedir(d);
}

static int store_object(int pfd, const char *name, const char *data, size_t len)
{
	struct stat st;
	uLongf zlen;
	Bytef *z;
	int err;

	if (fstatat(pfd, name, &st, 0) == 0)
		return 0; /* content-addressed: already there */
	zlen = compressBound(len);
	z = malloc(zlen);
	if (!z)
		return -ENOMEM;
	if (compress2(z, &zlen, (const Bytef *)data, len, ZLEVEL) != Z_OK)
		err = -ENOMEM;
	else
		err = write_file_at(pfd, name, z, zlen);
	free(z);
	return err;
}

static int load_object(int pfd, const struct version *v, char **content, size_t *len)
{
	char name[NAME_MAX + 1], *z = NULL, *out = NULL;
	size_t zlen;
	uLongf olen = v->size;
	int fd, err;

	*content = NULL;
	object_name(name, sizeof(name), v->hash, v->size);
	fd = openat(pfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	err = read_all(fd, compressBound(v->size) + 64, &z, &zlen);
	close(fd);
	if (err)
		return err == -EFBIG ? -EBADMSG : err;
	out = malloc(v->size + 1);
	if (!out) {
		err = -ENOMEM;
		goto cleanup;
	}
	if (uncompress((Bytef *)out, &olen, (const Bytef *)z, zlen) != Z_OK || olen != v->size ||
	    fnv1a64(out, olen) != v->hash) {
		err = -EBADMSG;
		goto cleanup;
	}
	out[olen] = 0;
	*content = out;
	*len = olen;
	out = NULL;
cleanup:
	free(out);
	free(z);
	return err;
}

static void copy_reason(char *dst, const char *src)
{
	size_t n = src ? strlen(src) : 0;

	if (n > SNAPSHOT_REASON_MAX) {
		n = SNAPSHOT_REASON_MAX;
		while (n &&
		       ((unsigned char)src[n] & 0xC0) == 0x80) /* not inside a UTF-8 sequence */
			n--;
	}
	if (n)
		memcpy(dst, src, n);
	dst[n] = 0;
}

static long long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int snapshot__open(const char *dir, unsigned keep_per_file, struct snapshots **out)
{
	struct snapshots *s;
	int err;

	*out = NULL;
	if (!dir || !*dir)
		return -EINVAL;
	err = util__mkdir_p(dir, 0700);
	if (err)
		return err;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->keep = keep_per_file ? keep_per_file : DEFAULT_KEEP;
	if (s->keep > MAX_KEEP)
		s->keep = MAX_KEEP;
	s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		err = -errno;
		free(s);
		return err;
	}
	*out = s;
	return 0;
}

void snapshot__close(struct snapshots *s)
{
	if (!s)
		return;
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s);
}

int snapshot__take(struct snapshots *s, const char *path, const char *reason, int *stored)
{
	struct version *v = NULL, *nv;
	char name[NAME_MAX + 1], *data = NULL;
	size_t len = 0, n = 0, drop;
	int fd, pfd = -1, err;
	struct stat st;
	uint64_t h;

	if (stored)
		*stored = 0;
	if (!s || !path || !*path)
		return -EINVAL;
	/* O_NONBLOCK: a FIFO in its place must not hang heald */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st))
		err = -errno;
	else if (!S_ISREG(st.st_mode))
		err = -EINVAL;
	else if (st.st_size > (off_t)SNAPSHOT_MAX_FILE)
		err = -EFBIG;
	else
		err = read_all(fd, SNAPSHOT_MAX_FILE, &data, &len);
	close(fd);
	if (err)
		return err;
	h = fnv1a64(data, len);

	err = open_path_dir(s, path, 1, LOCK_EX, &pfd);
	if (err)
		goto cleanup;
	err = load_index(pfd, &v, &n);
	if (err)
		goto cleanup;
	if (n && v[n - 1].hash == h && v[n - 1].size == len)
		goto cleanup; /* unchanged since the newest version */
	object_name(name, sizeof(name), h, len);
	err = store_object(pfd, name, data, len);
	if (err)
		goto cleanup;
	nv = realloc(v, (n + 1) * sizeof(*v));
	if (!nv) {
		err = -ENOMEM;
		goto cleanup;
	}
	v = nv;
	v[n] = (struct version){.time_us = now_us(),
				.hash = h,
				.size = len,
				.mode = st.st_mode & 07777,
				.uid = st.st_uid,
				.gid = st.st_gid};
	copy_reason(v[n].reason, reason);
	n++;
	drop = n > s->keep ? n - s->keep : 0;
	err = write_index(pfd, v + drop, n - drop);
	if (err)
		goto cleanup;
	sweep(pfd, v + drop, n - drop);
	if (stored)
		*stored = 1;
cleanup:
	if (pfd >= 0)
		close(pfd);
	free(v);
	free(data);
	return err;
}

/* Newest version, or with current set the newest whose content differs. */
static int find(struct snapshots *s, const char *path, int skip_current, const char *current,
		size_t current_len, char **content, size_t *len, struct version *meta)
{
	struct version *v = NULL;
	size_t n = 0, i;
	uint64_t h = 0;
	int pfd, err;

	*content = NULL;
	*len = 0;
	if (!s || !path || !*path)
		return -EINVAL;
	err = open_path_dir(s, path, 0, LOCK_SH, &pfd);
	if (err)
		return err;
	err = load_index(pfd, &v, &n);
	if (err)
		goto cleanup;
	if (skip_current)
		h = fnv1a64(current ? current : "", current ? current_len : 0);
	err = -ENOENT;
	for (i = n; i-- > 0;) {
		if (skip_current && v[i].hash == h && v[i].size == current_len)
			continue;
		err = load_object(pfd, &v[i], content, len);
		if (!err && meta)
			*meta = v[i];
		break;
	}
cleanup:
	free(v);
	close(pfd);
	return err;
}

int snapshot__latest(struct snapshots *s, const char *path, char **content, size_t *len,
		     mode_t *mode, uid_t *uid, gid_t *gid)
{
	struct version meta;
	int err;

	err = find(s, path, 0, NULL, 0, content, len, &meta);
	if (err)
		return err;
	if (mode)
		*mode = meta.mode;
	if (uid)
		*uid = meta.uid;
	if (gid)
		*gid = meta.gid;
	return 0;
}

int snapshot__latest_other_than(struct snapshots *s, const char *path, const char *current,
				size_t current_len, char **content, size_t *len)
{
	return find(s, path, 1, current, current_len, content, len, NULL);
}

int snapshot__list(struct snapshots *s, const char *path,
		   int (*cb)(void *ctx, long long time_us, const char *hash, size_t size,
			     const char *reason),
		   void *ctx)
{
	struct version *v = NULL;
	char hash[17];
	size_t n = 0, i;
	int pfd, err;

	if (!s || !path || !*path || !cb)
		return -EINVAL;
	err = open_path_dir(s, path, 0, LOCK_SH, &pfd);
	if (err)
		return err == -ENOENT ? 0 : err;
	err = load_index(pfd, &v, &n);
	for (i = n; !err && i-- > 0;) {
		snprintf(hash, sizeof(hash), "%016llx", (unsigned long long)v[i].hash);
		err = cb(ctx, v[i].time_us, hash, v[i].size, v[i].reason);
	}
	free(v);
	close(pfd);
	return err;
}
