// SPDX-License-Identifier: MIT
/*
 * journal: append-only JSON lines, rotated and gzip'd.
 *
 * Rotation never leaves a line in two places or in none, whatever step a
 * crash cuts: (1) link current.jsonl to journal-<seq>.jsonl, (2) rename an
 * empty current.jsonl.tmp over current.jsonl, (3) gzip journal-<seq>.jsonl to
 * journal-<seq>.jsonl.gz.tmp, fsync, rename to .gz, (4) unlink the plain
 * file. Readers take the .gz of a seq when it exists, else the plain file
 * unless it is still the same inode as current.jsonl (crash between 1 and 2);
 * open repairs each of those states.
 */
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
#include <sys/uio.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <zlib.h>

#include "heal/journal.h"
#include "heal/util.h"

#define CURRENT		     "current.jsonl"
#define CURRENT_TMP	     "current.jsonl.tmp"
#define ARCHIVE_PREFIX	     "journal-"
#define DEFAULT_ROTATE_BYTES (8u << 20)
#define MIN_ROTATE_BYTES     4096u
#define MAX_ROTATE_BYTES     (1u << 30)
#define DEFAULT_KEEP_FILES   20u
#define MAX_KEEP_FILES	     10000u
#define MAX_ARCHIVES	     65536u /* files listed in one directory */
#define GZ_CHUNK	     (128u << 10)
#define GZ_LEVEL	     6 /* gzip's default; ~10x on JSON lines */
#define READ_BUF	     (JOURNAL_LINE_MAX + 1)

struct journal {
	int dirfd;
	int fd;
	uint64_t size; /* of current.jsonl; we are its only writer */
	uint64_t next_seq;
	uint64_t rotate_at; /* rotate_bytes, pushed further after a failure */
	size_t rotate_bytes;
	unsigned keep_files;
	struct journal_stats stats;
};

struct archive {
	uint64_t seq;
	unsigned char gz;
	unsigned char plain;
};

static void archive_name(char *buf, size_t len, uint64_t seq, int gz)
{
	snprintf(buf, len, ARCHIVE_PREFIX "%08llu.jsonl%s", (unsigned long long)seq,
		 gz ? ".gz" : "");
}

/* journal-<digits>.jsonl[.gz] -> seq; 0 when name is something else. */
static int parse_archive_name(const char *name, uint64_t *seq, int *gz)
{
	const char *p = name + strlen(ARCHIVE_PREFIX);
	char *end;

	if (strncmp(name, ARCHIVE_PREFIX, strlen(ARCHIVE_PREFIX)) || *p < '0' || *p > '9')
		return 0;
	errno = 0;
	*seq = strtoull(p, &end, 10);
	if (errno)
		return 0;
	if (strcmp(end, ".jsonl.gz") == 0)
		*gz = 1;
	else if (strcmp(end, ".jsonl") == 0)
		*gz = 0;
	else
		return 0;
	return 1;
}

static int is_stale_tmp(const char *name)
{
	size_t n = strlen(name);

	return strncmp(name, ARCHIVE_PREFIX, strlen(ARCHIVE_PREFIX)) == 0 && n > 4 &&
	       strcmp(name + n - 4, ".tmp") == 0;
}

static int cmp_archive(const void *a, const void *b)
{
	const struct archive *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Rotated files in dirfd, oldest first, one entry per seq. With
 * unlink_tmp, also removes temp files a crash left behind (writer only). */
static int list_archives(int dirfd, int unlink_tmp, struct archive **out, size_t *n)
{
	struct archive *v = NULL, *nv;
	size_t cnt = 0, cap = 0, i, k;
	struct dirent *de;
	DIR *d;
	int fd, err = 0;

	*out = NULL;
	*n = 0;
	fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		err = -errno;
		close(fd);
		return err;
	}
	while ((errno = 0, de = readdir(d))) {
		uint64_t seq;
		int gz;

		if (!parse_archive_name(de->d_name, &seq, &gz)) {
			if (unlink_tmp && is_stale_tmp(de->d_name))
				unlinkat(dirfd, de->d_name, 0);
			continue;
		}
		if (cnt == cap) {
			if (cap >= MAX_ARCHIVES) {
				err = -E2BIG;
				goto cleanup;
			}
			cap = cap ? cap * 2 : 32;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				err = -ENOMEM;
				goto cleanup;
			}
			v = nv;
		}
		v[cnt++] = (struct archive){.seq = seq, .gz = gz, .plain = !gz};
	}
	if (errno) {
		err = -errno;
		goto cleanup;
	}
	if (cnt)
		qsort(v, cnt, sizeof(*v), cmp_archive);
	for (i = 0, k = 0; i < cnt; i++) {
		if (k && v[k - 1].seq == v[i].seq) {
			v[k - 1].gz |= v[i].gz;
			v[k - 1].plain |= v[i].plain;
			continue;
		}
		v[k++] = v[i];
	}
	*out = v;
	*n = k;
	v = NULL;
cleanup:
	free(v);
	closedir(d);
	return err;
}

/* Bytes read, short only at end of file, or -errno. */
static ssize_t read_full(int fd, void *buf, size_t len)
{
	size_t n = 0;
	ssize_t r;

	while (n < len) {
		r = read(fd, (char *)buf + n, len - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	return (ssize_t)n;
}

/* gzip src into dst (both in dirfd) through dst.tmp: fsync'd, then renamed. */
static int gzip_file(int dirfd, const char *src, const char *dst)
{
	unsigned char *in = NULL, *out = NULL;
	char tmp[NAME_MAX + 8];
	int ifd, ofd = -1, zinit = 0, flush, err = 0;
	z_stream zs;
	ssize_t r;

	snprintf(tmp, sizeof(tmp), "%s.tmp", dst);
	ifd = openat(dirfd, src, O_RDONLY | O_CLOEXEC);
	if (ifd < 0)
		return -errno;
	ofd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (ofd < 0) {
		err = -errno;
		goto cleanup;
	}
	in = malloc(GZ_CHUNK);
	out = malloc(GZ_CHUNK);
	if (!in || !out) {
		err = -ENOMEM;
		goto cleanup;
	}
	memset(&zs, 0, sizeof(zs));
	/* windowBits 15 + 16: a gzip header and trailer, so zcat reads it */
	if (deflateInit2(&zs, GZ_LEVEL, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
		err = -ENOMEM;
		goto cleanup;
	}
	zinit = 1;
	do {
		r = read_full(ifd, in, GZ_CHUNK);
		if (r < 0) {
			err = (int)r;
			goto cleanup;
		}
		flush = (size_t)r < GZ_CHUNK ? Z_FINISH : Z_NO_FLUSH;
		zs.next_in = in;
		zs.avail_in = (uInt)r;
		do {
			zs.next_out = out;
			zs.avail_out = GZ_CHUNK;
			if (deflate(&zs, flush) == Z_STREAM_ERROR) {
				err = -EIO;
				goto cleanup;
			}
			err = util__write_all(ofd, out, GZ_CHUNK - zs.avail_out);
			if (err)
				goto cleanup;
		} while (zs.avail_out == 0);
	} while (flush != Z_FINISH);
	if (fsync(ofd)) {
		err = -errno;
		goto cleanup;
	}
	err = close(ofd) ? -errno : 0;
	ofd = -1;
	if (!err && renameat(dirfd, tmp, dirfd, dst))
		err = -errno;
cleanup:
	if (zinit)
		deflateEnd(&zs);
	if (ofd >= 0)
		close(ofd);
	if (err)
		unlinkat(dirfd, tmp, 0);
	free(in);
	free(out);
	close(ifd);
	return err;
}

static void note_rotate_err(struct journal *j, int err)
{
	j->stats.rotate_failures++;
	j->stats.last_rotate_err = err;
}

/*
 * Bring rotated files to their final state: drop a plain file that is still
 * current.jsonl (crash before the swap) or already has its .gz, gzip the
 * others, remove the oldest beyond keep_files. Learns next_seq on the way.
 * Only a failed listing is returned; the rest is counted.
 */
static int finish_archives(struct journal *j, int unlink_tmp)
{
	struct archive *v = NULL;
	struct stat cur, st;
	char plain[NAME_MAX + 1], gz[NAME_MAX + 1];
	size_t n, i, live;
	int err, dirty = 0;

	err = list_archives(j->dirfd, unlink_tmp, &v, &n);
	if (err)
		return err;
	if (n && v[n - 1].seq >= j->next_seq)
		j->next_seq = v[n - 1].seq + 1;
	if (fstat(j->fd, &cur))
		memset(&cur, 0, sizeof(cur));
	live = n;
	for (i = 0; i < n; i++) {
		if (!v[i].plain)
			continue;
		archive_name(plain, sizeof(plain), v[i].seq, 0);
		archive_name(gz, sizeof(gz), v[i].seq, 1);
		if (!v[i].gz && fstatat(j->dirfd, plain, &st, 0) == 0 && st.st_ino == cur.st_ino &&
		    st.st_dev == cur.st_dev) {
			unlinkat(j->dirfd, plain, 0);
			v[i].plain = 0;
			live--;
			dirty = 1;
			continue;
		}
		if (!v[i].gz) {
			err = gzip_file(j->dirfd, plain, gz);
			if (err) {
				note_rotate_err(j, err);
				continue;
			}
			v[i].gz = 1;
		}
		unlinkat(j->dirfd, plain, 0);
		v[i].plain = 0;
		dirty = 1;
	}
	for (i = 0; i < n && live > j->keep_files; i++) {
		if (!v[i].gz && !v[i].plain)
			continue;
		archive_name(gz, sizeof(gz), v[i].seq, 1);
		archive_name(plain, sizeof(plain), v[i].seq, 0);
		unlinkat(j->dirfd, gz, 0);
		unlinkat(j->dirfd, plain, 0);
		live--;
		dirty = 1;
	}
	if (dirty && fsync(j->dirfd))
		note_rotate_err(j, -errno);
	free(v);
	return 0;
}

/* Swap in an empty current.jsonl, then compress and prune. */
static int rotate(struct journal *j)
{
	char plain[NAME_MAX + 1];
	int nfd, err;

	if (fdatasync(j->fd))
		return -errno;
	nfd =
	    openat(j->dirfd, CURRENT_TMP, O_RDWR | O_APPEND | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (nfd < 0)
		return -errno;
	archive_name(plain, sizeof(plain), j->next_seq, 0);
	if (linkat(j->dirfd, CURRENT, j->dirfd, plain, 0) == 0) {
		if (renameat(j->dirfd, CURRENT_TMP, j->dirfd, CURRENT)) {
			err = -errno;
			unlinkat(j->dirfd, plain, 0);
			goto fail;
		}
	} else if (errno == EPERM || errno == EOPNOTSUPP) {
		/* no hard links here: two renames, current.jsonl briefly absent */
		if (renameat(j->dirfd, CURRENT, j->dirfd, plain)) {
			err = -errno;
			goto fail;
		}
		if (renameat(j->dirfd, CURRENT_TMP, j->dirfd, CURRENT)) {
			err = -errno;
			renameat(j->dirfd, plain, j->dirfd, CURRENT);
			goto fail;
		}
	} else {
		err = -errno;
		goto fail;
	}
	close(j->fd);
	j->fd = nfd;
	j->size = 0;
	j->rotate_at = j->rotate_bytes;
	j->next_seq++;
	j->stats.rotations++;
	if (fsync(j->dirfd))
		note_rotate_err(j, -errno);
	err = finish_archives(j, 0);
	if (err)
		note_rotate_err(j, err);
	return 0;
fail:
	close(nfd);
	unlinkat(j->dirfd, CURRENT_TMP, 0);
	return err;
}

/* A crash mid-append leaves a line without its '\n': cut it so the next
 * line does not end up glued to it. The caller never saw it succeed. */
static int drop_torn_tail(int fd, uint64_t *size)
{
	char buf[4096];
	off_t end = (off_t)*size, pos;
	size_t chunk;
	ssize_t r;
	char *nl;

	if (end == 0)
		return 0;
	if (pread(fd, buf, 1, end - 1) != 1)
		return -EIO;
	if (buf[0] == '\n')
		return 0;
	pos = end;
	while (pos > 0) {
		chunk = pos < (off_t)sizeof(buf) ? (size_t)pos : sizeof(buf);
		pos -= (off_t)chunk;
		r = pread(fd, buf, chunk, pos);
		if (r != (ssize_t)chunk)
			return r < 0 ? -errno : -EIO;
		nl = memrchr(buf, '\n', chunk);
		if (nl) {
			pos += nl - buf + 1;
			break;
		}
	}
	if (ftruncate(fd, pos) || fsync(fd))
		return -errno;
	*size = (uint64_t)pos;
	return 0;
}

int journal__open(const char *dir, const struct journal_opts *o, struct journal **out)
{
	struct journal *j;
	struct stat st;
	int err;

	*out = NULL;
	if (!dir || !*dir)
		return -EINVAL;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->dirfd = j->fd = -1;
	j->next_seq = 1;
	j->rotate_bytes = o && o->rotate_bytes ? o->rotate_bytes : DEFAULT_ROTATE_BYTES;
	if (j->rotate_bytes < MIN_ROTATE_BYTES)
		j->rotate_bytes = MIN_ROTATE_BYTES;
	if (j->rotate_bytes > MAX_ROTATE_BYTES)
		j->rotate_bytes = MAX_ROTATE_BYTES;
	j->keep_files = o && o->keep_files ? o->keep_files : DEFAULT_KEEP_FILES;
	if (j->keep_files > MAX_KEEP_FILES)
		j->keep_files = MAX_KEEP_FILES;
	j->rotate_at = j->rotate_bytes;

	err = util__mkdir_p(dir, 0700);
	if (err)
		goto cleanup;
	j->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (j->dirfd < 0) {
		err = -errno;
		goto cleanup;
	}
	if (flock(j->dirfd, LOCK_EX | LOCK_NB)) {
		err = errno == EWOULDBLOCK ? -EBUSY : -errno;
		goto cleanup;
	}
	if (unlinkat(j->dirfd, CURRENT_TMP, 0) && errno != ENOENT) {
		err = -errno;
		goto cleanup;
	}
	j->fd = openat(j->dirfd, CURRENT, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (j->fd < 0) {
		err = -errno;
		goto cleanup;
	}
	if (fstat(j->fd, &st)) {
		err = -errno;
		goto cleanup;
	}
	if (!S_ISREG(st.st_mode)) {
		err = -EINVAL;
		goto cleanup;
	}
	j->size = (uint64_t)st.st_size;
	err = drop_torn_tail(j->fd, &j->size);
	if (err)
		goto cleanup;
	if (fsync(j->dirfd)) {
		err = -errno;
		goto cleanup;
	}
	err = finish_archives(j, 1);
	if (err)
		goto cleanup;
	*out = j;
	return 0;
cleanup:
	journal__close(j);
	return err;
}

void journal__close(struct journal *j)
{
	if (!j)
		return;
	if (j->fd >= 0) {
		fdatasync(j->fd);
		close(j->fd);
	}
	if (j->dirfd >= 0)
		close(j->dirfd); /* drops the flock */
	free(j);
}

int journal__append(struct journal *j, const char *json_line, int sync)
{
	static char nl = '\n';
	struct iovec iov[2];
	size_t len, total, done = 0;
	ssize_t r;
	int err;

	if (!j || !json_line)
		return -EINVAL;
	len = strlen(json_line);
	if (len == 0 || memchr(json_line, '\n', len))
		return -EINVAL;
	if (len > JOURNAL_LINE_MAX)
		return -EMSGSIZE;
	total = len + 1;
	while (done < total) {
		int cnt = 0;

		if (done < len)
			iov[cnt++] = (struct iovec){(char *)json_line + done, len - done};
		iov[cnt++] = (struct iovec){&nl, 1};
		r = writev(j->fd, iov, cnt);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			err = r < 0 ? -errno : -EIO;
			/* never leave half a line for the next one to be glued to */
			if (done && ftruncate(j->fd, (off_t)j->size)) {
				j->size += done;
				if (write(j->fd, &nl, 1) == 1)
					j->size++;
			}
			return err;
		}
		done += (size_t)r;
	}
	j->size += total;
	j->stats.lines++;
	j->stats.bytes += total;
	if (sync && fdatasync(j->fd))
		return -errno;
	if (j->size > j->rotate_at) {
		err = rotate(j);
		if (err) { /* try again after another 1/16 of rotate_bytes, not at every line */
			note_rotate_err(j, err);
			j->rotate_at = j->size + j->rotate_bytes / 16;
		}
	}
	return 0;
}

void journal__stats(const struct journal *j, struct journal_stats *st)
{
	*st = j->stats;
}

/* A complete line: one JSON object and nothing else. */
static int line_ok(char *line, size_t len)
{
	const char *end = NULL;
	cJSON *o;
	int ok;

	if (memchr(line, 0, len))
		return 0;
	o = cJSON_ParseWithOpts(line, &end, 1);
	ok = o && cJSON_IsObject(o);
	cJSON_Delete(o);
	return ok;
}

/* Lines of one (gzip'd or plain) file. last: an unterminated tail is a
 * write in flight, not damage. */
static int read_lines(int fd, char *buf, int last, journal_line_fn cb, void *ctx, unsigned *skipped)
{
	size_t have = 0, start;
	int n, overlong = 0, ret = 0;
	char *nl;
	gzFile g;

	g = gzdopen(fd, "rb"); /* reads plain files transparently */
	if (!g) {
		close(fd);
		return -ENOMEM;
	}
	gzbuffer(g, 64 << 10);
	for (;;) {
		n = gzread(g, buf + have, (unsigned)(READ_BUF - have));
		if (n < 0) { /* corrupt or truncated gzip: keep what came before */
			(*skipped)++;
			have = 0;
			overlong = 0;
			break;
		}
		if (n == 0)
			break;
		have += (size_t)n;
		start = 0;
		while ((nl = memchr(buf + start, '\n', have - start))) {
			size_t len = (size_t)(nl - (buf + start));

			*nl = 0;
			if (overlong || !line_ok(buf + start, len)) {
				(*skipped)++;
			} else {
				ret = cb(buf + start, ctx);
				if (ret)
					goto out;
			}
			overlong = 0;
			start += len + 1;
		}
		memmove(buf, buf + start, have - start);
		have -= start;
		if (have == READ_BUF) { /* no newline in a full buffer: drop to the next one */
			overlong = 1;
			have = 0;
		}
	}
	if ((have || overlong) && !last)
		(*skipped)++;
out:
	gzclose_r(g);
	return ret;
}

int journal__read(const char *dir, journal_line_fn cb, void *ctx, unsigned *skipped)
{
	struct archive *v = NULL;
	struct stat cur, st;
	char name[NAME_MAX + 1];
	unsigned dummy = 0;
	char *buf = NULL;
	int dirfd, fd, cur_fd, err;
	size_t n = 0, i;

	if (!skipped)
		skipped = &dummy;
	*skipped = 0;
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return -errno;
	buf = malloc(READ_BUF);
	if (!buf) {
		err = -ENOMEM;
		goto cleanup;
	}
	err = list_archives(dirfd, 0, &v, &n);
	if (err)
		goto cleanup;
	cur_fd = openat(dirfd, CURRENT, O_RDONLY | O_CLOEXEC);
	if (cur_fd < 0 || fstat(cur_fd, &cur))
		memset(&cur, 0, sizeof(cur));
	for (i = 0; i < n; i++) {
		archive_name(name, sizeof(name), v[i].seq, v[i].gz);
		fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue; /* pruned by a running heald meanwhile */
		/* a plain file still linked to current.jsonl: read it once, below */
		if (!v[i].gz && fstat(fd, &st) == 0 && st.st_ino == cur.st_ino &&
		    st.st_dev == cur.st_dev) {
			close(fd);
			continue;
		}
		err = read_lines(fd, buf, 0, cb, ctx, skipped);
		if (err) {
			if (cur_fd >= 0)
				close(cur_fd);
			goto cleanup;
		}
	}
	if (cur_fd >= 0)
		err = read_lines(cur_fd, buf, 1, cb, ctx, skipped);
cleanup:
	free(v);
	free(buf);
	close(dirfd);
	return err;
}
