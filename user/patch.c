// SPDX-License-Identifier: MIT
/*
 * patch: unified diffs of new file contents (Myers' O(ND) line diff in linear
 * space, with a cost cap so a rewritten file stays cheap) and their atomic,
 * backed-up application and restoration.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "heal/patch.h"
#include "heal/util.h"

#define CONTEXT		 3
#define MANIFEST	 "manifest.json"
#define MANIFEST_MAX	 (4u << 20)
#define MANIFEST_VERSION 1
/* Past this many edit steps the diff settles for a good split, not the best one. */
#define DIFF_COST_MIN 4096

/* ---- lines ---------------------------------------------------------------- */

struct line {
	const char *s;
	size_t len; /* without the newline */
	int nl;	    /* ends with '\n' (only a last line may not) */
};

struct lines {
	struct line *v;
	size_t n;
};

static int split_lines(const char *s, size_t len, struct lines *out)
{
	const char *p, *end, *nl;
	size_t n = 0, i = 0;

	out->v = NULL;
	out->n = 0;
	if (len > PATCH_MAX_BYTES)
		return -E2BIG;
	if (len) {
		end = s + len;
		for (p = s; p < end && (nl = memchr(p, '\n', end - p)); p = nl + 1)
			n++;
		if (s[len - 1] != '\n')
			n++;
	}
	if (n > PATCH_MAX_LINES)
		return -E2BIG;
	out->v = calloc(n ? n : 1, sizeof(*out->v));
	if (!out->v)
		return -ENOMEM;
	for (p = s; i < n; i++) {
		nl = memchr(p, '\n', s + len - p);
		out->v[i].s = p;
		out->v[i].len = nl ? (size_t)(nl - p) : (size_t)(s + len - p);
		out->v[i].nl = nl != NULL;
		p = nl ? nl + 1 : s + len;
	}
	out->n = n;
	return 0;
}

static int line_eq(const struct line *a, const struct line *b)
{
	return a->len == b->len && a->nl == b->nl && memcmp(a->s, b->s, a->len) == 0;
}

static uint64_t line_hash(const struct line *l)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < l->len; i++) {
		h ^= (unsigned char)l->s[i];
		h *= 1099511628211ULL;
	}
	return h ^ (uint64_t)l->nl;
}

/* ---- Myers diff --------------------------------------------------------------- */

struct fdiff {
	struct lines a, b;
	int *xv, *yv;	    /* equivalence class of each line: the diff compares ints */
	char *del, *ins;    /* del[i]: old line i removed; ins[j]: new line j added */
	int *fdiag, *bdiag; /* furthest x per diagonal, indexed from -(nb + 1) */
	int too_expensive;
};

static void fdiff_free(struct fdiff *d)
{
	free(d->a.v);
	free(d->b.v);
	free(d->xv);
	free(d->yv);
	free(d->del);
	free(d->ins);
	free(d->fdiag ? d->fdiag - (d->b.n + 1) : NULL);
	free(d->bdiag ? d->bdiag - (d->b.n + 1) : NULL);
	memset(d, 0, sizeof(*d));
}

/* Number every distinct line (text and trailing newline) so equal lines get equal ids. */
static int classify(struct fdiff *d)
{
	size_t total = d->a.n + d->b.n, cap = 16, i, k;
	const struct line **slot;
	int *id, next = 0;

	while (cap < 2 * total)
		cap <<= 1;
	slot = calloc(cap, sizeof(*slot));
	id = calloc(cap, sizeof(*id));
	d->xv = calloc(d->a.n + 1, sizeof(*d->xv));
	d->yv = calloc(d->b.n + 1, sizeof(*d->yv));
	if (!slot || !id || !d->xv || !d->yv) {
		free(slot);
		free(id);
		return -ENOMEM;
	}
	for (i = 0; i < total; i++) {
		const struct line *l = i < d->a.n ? &d->a.v[i] : &d->b.v[i - d->a.n];

		k = line_hash(l) & (cap - 1);
		while (slot[k] && !line_eq(slot[k], l))
			k = (k + 1) & (cap - 1);
		if (!slot[k]) {
			slot[k] = l;
			id[k] = next++;
		}
		if (i < d->a.n)
			d->xv[i] = id[k];
		else
			d->yv[i - d->a.n] = id[k];
	}
	free(slot);
	free(id);
	return 0;
}

/*
 * Find a point (xmid, ymid) on an optimal path through [xoff,xlim) x [yoff,ylim)
 * by running the forward and backward searches until they overlap (Myers 1986,
 * section 4b). Both ranges are non-empty and differ at both ends.
 */
static void middle_snake(struct fdiff *d, int xoff, int xlim, int yoff, int ylim, int *xmid,
			 int *ymid)
{
	const int *xv = d->xv, *yv = d->yv;
	int *fd = d->fdiag, *bd = d->bdiag;
	const int dmin = xoff - ylim, dmax = xlim - yoff;
	const int fmid = xoff - yoff, bmid = xlim - ylim;
	const int odd = (fmid - bmid) & 1;
	int fmin = fmid, fmax = fmid, bmin = bmid, bmax = bmid;
	int c, k, x, y;

	fd[fmid] = xoff;
	bd[bmid] = xlim;
	for (c = 1;; c++) {
		/* one more edit step forward on every diagonal in reach */
		if (fmin > dmin)
			fd[--fmin - 1] = -1;
		else
			fmin++;
		if (fmax < dmax)
			fd[++fmax + 1] = -1;
		else
			fmax--;
		for (k = fmax; k >= fmin; k -= 2) {
			x = fd[k - 1] >= fd[k + 1] ? fd[k - 1] + 1 : fd[k + 1];
			y = x - k;
			while (x < xlim && y < ylim && xv[x] == yv[y])
				x++, y++;
			fd[k] = x;
			if (odd && bmin <= k && k <= bmax && bd[k] <= x) {
				*xmid = x;
				*ymid = y;
				return;
			}
		}
		/* and one backward */
		if (bmin > dmin)
			bd[--bmin - 1] = INT_MAX;
		else
			bmin++;
		if (bmax < dmax)
			bd[++bmax + 1] = INT_MAX;
		else
			bmax--;
		for (k = bmax; k >= bmin; k -= 2) {
			x = bd[k - 1] < bd[k + 1] ? bd[k - 1] : bd[k + 1] - 1;
			y = x - k;
			while (x > xoff && y > yoff && xv[x - 1] == yv[y - 1])
				x--, y--;
			bd[k] = x;
			if (!odd && fmin <= k && k <= fmax && x <= fd[k]) {
				*xmid = x;
				*ymid = y;
				return;
			}
		}
		if (c >= d->too_expensive) {
			/* Too costly for a minimal diff: split where either search got furthest. */
			int fbest = -1, fx = xoff, bbest = INT_MAX, bx = xlim;

			for (k = fmax; k >= fmin; k -= 2) {
				x = fd[k] < xlim ? fd[k] : xlim;
				y = x - k;
				if (y > ylim)
					x = ylim + k, y = ylim;
				if (x + y > fbest)
					fbest = x + y, fx = x;
			}
			for (k = bmax; k >= bmin; k -= 2) {
				x = bd[k] > xoff ? bd[k] : xoff;
				y = x - k;
				if (y < yoff)
					x = yoff + k, y = yoff;
				if (x + y < bbest)
					bbest = x + y, bx = x;
			}
			if ((xlim + ylim) - bbest < fbest - (xoff + yoff)) {
				*xmid = fx;
				*ymid = fbest - fx;
			} else {
				*xmid = bx;
				*ymid = bbest - bx;
			}
			return;
		}
	}
}

static void compareseq(struct fdiff *d, int xoff, int xlim, int yoff, int ylim)
{
	int xmid, ymid;

	while (xoff < xlim && yoff < ylim && d->xv[xoff] == d->yv[yoff])
		xoff++, yoff++;
	while (xlim > xoff && ylim > yoff && d->xv[xlim - 1] == d->yv[ylim - 1])
		xlim--, ylim--;
	if (xoff == xlim) {
		while (yoff < ylim)
			d->ins[yoff++] = 1;
	} else if (yoff == ylim) {
		while (xoff < xlim)
			d->del[xoff++] = 1;
	} else {
		middle_snake(d, xoff, xlim, yoff, ylim, &xmid, &ymid);
		compareseq(d, xoff, xmid, yoff, ymid);
		compareseq(d, xmid, xlim, ymid, ylim);
	}
}

static int check_file(const struct patch_file *f)
{
	if (!f || !f->path || !f->path[0])
		return -EINVAL;
	if ((!f->new_content && f->new_len) || (!f->old_content && f->old_len))
		return -EINVAL;
	return 0;
}

/* Diff the old and new content of one file into d (fdiff_free() it). */
static int diff_file(const struct patch_file *f, struct fdiff *d)
{
	size_t diags, bits;
	int err;

	memset(d, 0, sizeof(*d));
	err = check_file(f);
	if (err)
		return err;
	err = split_lines(f->old_exists ? f->old_content : NULL, f->old_exists ? f->old_len : 0,
			  &d->a);
	if (!err)
		err = split_lines(f->new_content, f->new_len, &d->b);
	if (!err)
		err = classify(d);
	if (err)
		goto cleanup;
	diags = d->a.n + d->b.n + 3;
	d->del = calloc(d->a.n + 1, 1);
	d->ins = calloc(d->b.n + 1, 1);
	d->fdiag = malloc(diags * sizeof(int));
	d->bdiag = malloc(diags * sizeof(int));
	if (!d->del || !d->ins || !d->fdiag || !d->bdiag) {
		free(d->fdiag);
		free(d->bdiag);
		d->fdiag = d->bdiag = NULL;
		err = -ENOMEM;
		goto cleanup;
	}
	d->fdiag += d->b.n + 1;
	d->bdiag += d->b.n + 1;
	/* about the square root of the number of diagonals, at least DIFF_COST_MIN */
	d->too_expensive = 1;
	for (bits = diags; bits; bits >>= 2)
		d->too_expensive <<= 1;
	if (d->too_expensive < DIFF_COST_MIN)
		d->too_expensive = DIFF_COST_MIN;
	compareseq(d, 0, (int)d->a.n, 0, (int)d->b.n);
	return 0;
cleanup:
	fdiff_free(d);
	return err;
}

/* ---- rendering ------------------------------------------------------------ */

struct op {
	char t;	  /* ' ', '-' or '+' */
	size_t i; /* old lines before this one */
	size_t j; /* new lines before this one */
};

/* The edit script in order: within a change, removed lines come before added ones. */
static struct op *build_ops(const struct fdiff *d, size_t *nops)
{
	struct op *v = malloc((d->a.n + d->b.n + 1) * sizeof(*v));
	size_t i = 0, j = 0, n = 0;

	if (!v)
		return NULL;
	while (i < d->a.n || j < d->b.n) {
		if (i < d->a.n && d->del[i])
			v[n++] = (struct op){'-', i++, j};
		else if (j < d->b.n && d->ins[j])
			v[n++] = (struct op){'+', i, j++};
		else if (i < d->a.n && j < d->b.n)
			v[n++] = (struct op){' ', i++, j++};
		else
			break; /* cannot happen: unmatched lines are always marked */
	}
	*nops = n;
	return v;
}

static void put_range(struct util_sb *b, size_t before, size_t count)
{
	if (count == 0)
		util__sb_printf(b, "%zu,0", before);
	else if (count == 1)
		util__sb_printf(b, "%zu", before + 1);
	else
		util__sb_printf(b, "%zu,%zu", before + 1, count);
}

static void put_line(struct util_sb *b, char t, const struct line *l)
{
	util__sb_putn(b, &t, 1);
	util__sb_putn(b, l->s, l->len);
	util__sb_putn(b, "\n", 1);
	if (!l->nl)
		util__sb_putn(b, "\\ No newline at end of file\n", 28);
}

static void render_hunks(struct util_sb *b, const struct patch_file *f, const struct fdiff *d,
			 const struct op *ops, size_t nops)
{
	size_t k = 0, c, e, r, start, end, h, acount, bcount;
	int header = 0;

	while (k < nops) {
		for (c = k; c < nops && ops[c].t == ' '; c++)
			;
		if (c == nops)
			break;
		start = c >= k + CONTEXT ? c - CONTEXT : k;
		/* extend over changes separated by at most 2 * CONTEXT unchanged lines */
		for (e = c;;) {
			while (e < nops && ops[e].t != ' ')
				e++;
			for (r = 0; e + r < nops && ops[e + r].t == ' '; r++)
				;
			if (e + r == nops) {
				end = e + (r < CONTEXT ? r : CONTEXT);
				break;
			}
			if (r > 2 * CONTEXT) {
				end = e + CONTEXT;
				break;
			}
			e += r;
		}
		if (!header) {
			util__sb_puts(b, "--- ");
			util__sb_puts(b, f->old_exists ? f->path : "/dev/null");
			util__sb_puts(b, "\n+++ ");
			util__sb_puts(b, f->path);
			util__sb_puts(b, "\n");
			header = 1;
		}
		acount = bcount = 0;
		for (h = start; h < end; h++) {
			acount += ops[h].t != '+';
			bcount += ops[h].t != '-';
		}
		util__sb_putn(b, "@@ -", 4);
		put_range(b, ops[start].i, acount);
		util__sb_putn(b, " +", 2);
		put_range(b, ops[start].j, bcount);
		util__sb_putn(b, " @@\n", 4);
		for (h = start; h < end; h++)
			put_line(b, ops[h].t,
				 ops[h].t == '+' ? &d->b.v[ops[h].j] : &d->a.v[ops[h].i]);
		k = end;
	}
}

static int has_nul(const char *s, size_t len)
{
	return len && memchr(s, 0, len) != NULL;
}

static int diff_one(struct util_sb *b, const struct patch_file *f)
{
	struct fdiff d;
	struct op *ops;
	size_t nops;
	int err;

	err = diff_file(f, &d);
	if (err)
		return err;
	if (has_nul(f->old_content, f->old_exists ? f->old_len : 0) ||
	    has_nul(f->new_content, f->new_len)) {
		for (nops = 0; nops < d.a.n && !d.del[nops]; nops++)
			;
		if (nops < d.a.n || memchr(d.ins, 1, d.b.n)) {
			util__sb_puts(b, "Binary files ");
			util__sb_puts(b, f->old_exists ? f->path : "/dev/null");
			util__sb_puts(b, " and ");
			util__sb_puts(b, f->path);
			util__sb_puts(b, " differ\n");
		}
		fdiff_free(&d);
		return 0;
	}
	ops = build_ops(&d, &nops);
	if (!ops) {
		fdiff_free(&d);
		return -ENOMEM;
	}
	render_hunks(b, f, &d, ops, nops);
	free(ops);
	fdiff_free(&d);
	return 0;
}

char *patch__diff(const struct patch *p)
{
	struct util_sb b = {0};
	int err = 0;

	if (!p || (p->n && !p->files)) {
		errno = EINVAL;
		return NULL;
	}
	util__sb_putn(&b, "", 0);
	for (size_t i = 0; i < p->n && !err; i++)
		err = diff_one(&b, &p->files[i]);
	if (!err)
		err = b.err;
	if (err) {
		free(b.p);
		errno = -err;
		return NULL;
	}
	return b.p;
}

int patch__line_stats(const struct patch *p, size_t *added, size_t *removed)
{
	struct fdiff d;
	size_t i, k, a = 0, r = 0;
	int err;

	if (!p || (p->n && !p->files))
		return -EINVAL;
	for (i = 0; i < p->n; i++) {
		err = diff_file(&p->files[i], &d);
		if (err)
			return err;
		for (k = 0; k < d.a.n; k++)
			r += d.del[k];
		for (k = 0; k < d.b.n; k++)
			a += d.ins[k];
		fdiff_free(&d);
	}
	if (added)
		*added = a;
	if (removed)
		*removed = r;
	return 0;
}

size_t patch__changed_lines(const struct patch *p)
{
	size_t a, r;

	return patch__line_stats(p, &a, &r) ? SIZE_MAX : a + r;
}

int patch__for_each_added(const struct patch_file *f, patch_line_fn fn, void *ctx)
{
	struct fdiff d;
	int err, ret = 0;

	if (!fn)
		return -EINVAL;
	err = diff_file(f, &d);
	if (err)
		return err;
	for (size_t j = 0; j < d.b.n && !ret; j++)
		if (d.ins[j])
			ret = fn(d.b.v[j].s, d.b.v[j].len, j + 1, ctx);
	fdiff_free(&d);
	return ret;
}

/* ---- files ------------------------------------------------------------------ */

static void __attribute__((format(printf, 3, 4)))
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int patch__read_file(const char *path, size_t max, char **content, size_t *len)
{
	struct stat st;
	size_t n = 0, cap;
	char *buf = NULL, *nb;
	ssize_t r;
	int fd, err = 0;

	if (!path || !content)
		return -EINVAL;
	*content = NULL;
	if (len)
		*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st)) {
		err = -errno;
		goto cleanup;
	}
	if (!S_ISREG(st.st_mode)) {
		err = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		goto cleanup;
	}
	if ((uintmax_t)st.st_size > max) {
		err = -EFBIG;
		goto cleanup;
	}
	cap = (size_t)st.st_size + 1;
	buf = malloc(cap + 1);
	if (!buf) {
		err = -ENOMEM;
		goto cleanup;
	}
	for (;;) {
		if (n == cap) {
			/* the file grew since fstat() */
			if (cap > max) {
				err = -EFBIG;
				goto cleanup;
			}
			cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
			nb = realloc(buf, cap + 1);
			if (!nb) {
				err = -ENOMEM;
				goto cleanup;
			}
			buf = nb;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = -errno;
			goto cleanup;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n > max) {
		err = -EFBIG;
		goto cleanup;
	}
	buf[n] = 0;
	*content = buf;
	buf = NULL;
	if (len)
		*len = n;
cleanup:
	free(buf);
	close(fd);
	return err;
}

void patch__free(struct patch *p)
{
	if (!p)
		return;
	for (size_t i = 0; p->files && i < p->n; i++) {
		free(p->files[i].path);
		free(p->files[i].old_content);
		free(p->files[i].new_content);
	}
	free(p->files);
	p->files = NULL;
	p->n = 0;
}

/* Split an absolute path into its directory and last component. */
static int split_path(const char *path, char *dir, size_t dirlen, const char **base)
{
	const char *slash = strrchr(path, '/');
	size_t n;

	if (!slash || !slash[1] || strcmp(slash + 1, ".") == 0 || strcmp(slash + 1, "..") == 0)
		return -EINVAL;
	n = slash == path ? 1 : (size_t)(slash - path);
	if (n >= dirlen)
		return -ENAMETOOLONG;
	memcpy(dir, path, n);
	dir[n] = 0;
	*base = slash + 1;
	return 0;
}

static int absolute(const char *path, char *out, size_t outlen)
{
	char cwd[PATH_MAX];
	int n;

	if (path[0] == '/')
		n = snprintf(out, outlen, "%s", path);
	else if (!getcwd(cwd, sizeof(cwd)))
		return -errno;
	else
		n = snprintf(out, outlen, "%s/%s", strcmp(cwd, "/") ? cwd : "", path);
	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

static void random_suffix(char *out, size_t n)
{
	static const char set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char rnd[16];
	struct timespec ts;
	size_t i;

	if (n > sizeof(rnd))
		n = sizeof(rnd);
	if (getrandom(rnd, n, GRND_NONBLOCK) != (ssize_t)n) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		for (i = 0; i < n; i++)
			rnd[i] =
			    (unsigned char)((ts.tv_nsec >> (i * 5)) ^ (getpid() >> i) ^ (i * 37));
	}
	for (i = 0; i < n; i++)
		out[i] = set[rnd[i] % (sizeof(set) - 1)];
}

static int join_path(char *out, size_t outlen, const char *dir, const char *name)
{
	int n = snprintf(out, outlen, "%s/%s", dir, name);

	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), err = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd))
		err = -errno;
	close(fd);
	return err;
}

/*
 * Replace path with data: a temp file ".<name>.heal-XXXXXX" in the same
 * directory, owner then mode set, fsync, rename over path, fsync the directory.
 * The temp file is gone on every failure.
 */
static int write_atomic(const char *path, const char *data, size_t len, mode_t mode, uid_t uid,
			gid_t gid)
{
	char dir[PATH_MAX], tmp[NAME_MAX + 1], sfx[6];
	const char *base;
	struct stat st;
	int dfd, fd = -1, err, tries = 0, written = 0;

	err = split_path(path, dir, sizeof(dir), &base);
	if (err)
		return err;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	do {
		random_suffix(sfx, sizeof(sfx));
		snprintf(tmp, sizeof(tmp), ".%.*s.heal-%.6s", NAME_MAX - 13, base, sfx);
		fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	} while (fd < 0 && errno == EEXIST && ++tries < 100);
	if (fd < 0) {
		err = -errno;
		goto cleanup;
	}
	written = 1;
	err = util__write_all(fd, data, len);
	if (err)
		goto cleanup;
	if (fstat(fd, &st)) {
		err = -errno;
		goto cleanup;
	}
	/* owner first: chown clears set-id bits */
	if ((st.st_uid != uid || st.st_gid != gid) && fchown(fd, uid, gid)) {
		err = -errno;
		goto cleanup;
	}
	if (fchmod(fd, mode & 07777) || fsync(fd)) {
		err = -errno;
		goto cleanup;
	}
	err = close(fd) ? -errno : 0;
	fd = -1;
	if (err)
		goto cleanup;
	if (renameat(dfd, tmp, dfd, base)) {
		err = -errno;
		goto cleanup;
	}
	written = 0;
	if (fsync(dfd))
		err = -errno;
cleanup:
	if (fd >= 0)
		close(fd);
	if (written)
		unlinkat(dfd, tmp, 0);
	close(dfd);
	return err;
}

struct entry {
	char path[PATH_MAX];
	char backup[32]; /* file name in the backup directory, "" when the patch creates path */
	int existed;
	mode_t mode;
	uid_t uid;
	gid_t gid;
	size_t size;
};

static int read_exact(int fd, char *buf, size_t len)
{
	size_t n = 0;
	ssize_t r;

	while (n < len) {
		r = read(fd, buf + n, len - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ESTALE; /* shrank under us */
		n += (size_t)r;
	}
	return 0;
}

/*
 * Check that f still describes what is on disk and copy it into the backup
 * directory as <idx>.orig. Fills e with what restoring needs.
 */
static int snapshot(const struct patch_file *f, struct entry *e, int bfd, size_t idx, char *err,
		    size_t errlen)
{
	char dir[PATH_MAX], *buf = NULL, one;
	const char *base;
	struct stat st;
	int fd, bk = -1, ret;

	fd = open(e->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 && errno == ENOENT) {
		if (f->old_exists) {
			seterr(err, errlen, "%s no longer exists", e->path);
			return -ESTALE;
		}
		ret = split_path(e->path, dir, sizeof(dir), &base);
		if (!ret && stat(dir, &st))
			ret = -errno;
		if (!ret && !S_ISDIR(st.st_mode))
			ret = -ENOTDIR;
		if (ret) {
			seterr(err, errlen, "cannot create %s: %s", e->path, strerror(-ret));
			return ret;
		}
		/* a new file belongs to whoever owns its directory */
		e->existed = 0;
		e->mode = 0644;
		e->uid = st.st_uid;
		e->gid = st.st_gid;
		return 0;
	}
	if (fd < 0) {
		ret = -errno;
		if (ret == -ELOOP)
			seterr(err, errlen, "%s is a symlink; refusing to write through it",
			       e->path);
		else
			seterr(err, errlen, "cannot open %s: %s", e->path, strerror(-ret));
		return ret;
	}
	if (fstat(fd, &st)) {
		ret = -errno;
		seterr(err, errlen, "cannot stat %s: %s", e->path, strerror(-ret));
		goto cleanup;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = -EINVAL;
		seterr(err, errlen, "%s is not a regular file", e->path);
		goto cleanup;
	}
	if (!f->old_exists) {
		ret = -EEXIST;
		seterr(err, errlen, "%s exists, but the patch creates it", e->path);
		goto cleanup;
	}
	ret = -ESTALE;
	if ((uintmax_t)st.st_size != f->old_len)
		goto stale;
	buf = malloc(f->old_len + 1);
	if (!buf) {
		ret = -ENOMEM;
		goto cleanup;
	}
	ret = read_exact(fd, buf, f->old_len);
	if (ret == -ESTALE || (!ret && read(fd, &one, 1) != 0) ||
	    (!ret && f->old_len && memcmp(buf, f->old_content, f->old_len))) {
		ret = -ESTALE;
		goto stale;
	}
	if (ret) {
		seterr(err, errlen, "cannot read %s: %s", e->path, strerror(-ret));
		goto cleanup;
	}
	snprintf(e->backup, sizeof(e->backup), "%zu.orig", idx);
	bk = openat(bfd, e->backup, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (bk < 0)
		ret = -errno;
	if (!ret)
		ret = util__write_all(bk, buf, f->old_len);
	if (!ret && fsync(bk))
		ret = -errno;
	if (bk >= 0 && close(bk) && !ret)
		ret = -errno;
	if (ret) {
		seterr(err, errlen, "cannot back up %s: %s", e->path, strerror(-ret));
		goto cleanup;
	}
	e->existed = 1;
	e->mode = st.st_mode & 07777;
	e->uid = st.st_uid;
	e->gid = st.st_gid;
	e->size = f->old_len;
	goto cleanup;
stale:
	seterr(err, errlen, "%s changed since the patch was made", e->path);
cleanup:
	free(buf);
	close(fd);
	return ret;
}

static int write_manifest(const char *bdir, const struct entry *e, size_t n)
{
	char path[PATH_MAX], mode[8], stamp[32];
	cJSON *root = cJSON_CreateObject(), *files = cJSON_CreateArray(), *o;
	struct tm tm;
	time_t now = time(NULL);
	char *text = NULL;
	int err = -ENOMEM;

	if (!root || !files)
		goto cleanup;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	cJSON_AddNumberToObject(root, "version", MANIFEST_VERSION);
	cJSON_AddStringToObject(root, "created", stamp);
	cJSON_AddItemToObject(root, "files", files);
	for (size_t i = 0; i < n; i++) {
		o = cJSON_CreateObject();
		if (!o)
			goto cleanup;
		cJSON_AddItemToArray(files, o);
		snprintf(mode, sizeof(mode), "%04o", (unsigned)e[i].mode);
		cJSON_AddStringToObject(o, "path", e[i].path);
		cJSON_AddBoolToObject(o, "existed", e[i].existed);
		if (e[i].existed) {
			cJSON_AddStringToObject(o, "backup", e[i].backup);
			cJSON_AddStringToObject(o, "mode", mode);
			cJSON_AddNumberToObject(o, "uid", e[i].uid);
			cJSON_AddNumberToObject(o, "gid", e[i].gid);
			cJSON_AddNumberToObject(o, "size", (double)e[i].size);
		}
	}
	text = cJSON_Print(root);
	if (!text)
		goto cleanup;
	err = join_path(path, sizeof(path), bdir, MANIFEST);
	if (!err)
		err = write_atomic(path, text, strlen(text), 0600, geteuid(), getegid());
cleanup:
	free(text);
	if (root)
		cJSON_Delete(root);
	else
		cJSON_Delete(files);
	return err;
}

/* Put one file back as the backup in bdir recorded it. */
static int restore_entry(const char *bdir, const struct entry *e, char *err, size_t errlen)
{
	char path[PATH_MAX], dir[PATH_MAX], *buf = NULL;
	const char *base;
	size_t len = 0;
	int ret;

	if (!e->existed) {
		if (unlink(e->path) && errno != ENOENT) {
			ret = -errno;
			seterr(err, errlen, "cannot remove %s: %s", e->path, strerror(-ret));
			return ret;
		}
		ret = split_path(e->path, dir, sizeof(dir), &base);
		if (!ret)
			ret = fsync_dir(dir);
		return ret == -ENOENT ? 0 : ret;
	}
	ret = join_path(path, sizeof(path), bdir, e->backup);
	if (!ret)
		ret = patch__read_file(path, e->size, &buf, &len);
	if (!ret && len != e->size)
		ret = -EIO;
	if (ret) {
		seterr(err, errlen, "cannot read the backup of %s: %s", e->path, strerror(-ret));
		goto cleanup;
	}
	ret = write_atomic(e->path, buf, len, e->mode, e->uid, e->gid);
	if (ret)
		seterr(err, errlen, "cannot restore %s: %s", e->path, strerror(-ret));
cleanup:
	free(buf);
	return ret;
}

/* Restore entries [0, n) last first; keeps going, returns the first error. */
static int restore_entries(const char *bdir, const struct entry *e, size_t n, char *err,
			   size_t errlen)
{
	int ret = 0, r;

	while (n--) {
		r = restore_entry(bdir, &e[n], ret ? NULL : err, ret ? 0 : errlen);
		if (r && !ret)
			ret = r;
	}
	return ret;
}

static void remove_backup(const char *bdir, const struct entry *e, size_t n)
{
	char path[PATH_MAX];

	for (size_t i = 0; i < n; i++) {
		if (!e[i].backup[0])
			continue;
		if (!join_path(path, sizeof(path), bdir, e[i].backup))
			unlink(path);
	}
	if (!join_path(path, sizeof(path), bdir, MANIFEST))
		unlink(path);
	rmdir(bdir);
}

int patch__apply(const struct patch *p, const char *backup_dir, char *backup_id, size_t idlen,
		 char *err, size_t errlen)
{
	char bdir[PATH_MAX], stamp[32], why[PATH_MAX + 128] = "";
	struct entry *e = NULL;
	struct tm tm;
	time_t now;
	size_t i, written = 0, snapped = 0;
	int bfd = -1, ret, rret;

	seterr(err, errlen, "%s", "");
	if (backup_id && idlen)
		backup_id[0] = 0;
	if (!p || !p->n || !p->files || !backup_dir || !backup_dir[0] || !backup_id) {
		seterr(err, errlen, "invalid arguments (an empty patch or no backup directory)");
		return -EINVAL;
	}
	if (idlen < PATCH_BACKUP_ID_LEN) {
		seterr(err, errlen, "backup id buffer too small");
		return -ENAMETOOLONG;
	}
	e = calloc(p->n, sizeof(*e));
	if (!e)
		return -ENOMEM;
	for (i = 0; i < p->n; i++) {
		ret = check_file(&p->files[i]);
		if (!ret)
			ret = absolute(p->files[i].path, e[i].path, sizeof(e[i].path));
		if (ret) {
			seterr(err, errlen, "file %zu of the patch is invalid: %s", i,
			       strerror(-ret));
			goto cleanup;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(e[i].path, e[j].path) == 0) {
				ret = -EINVAL;
				seterr(err, errlen, "%s appears twice in the patch", e[i].path);
				goto cleanup;
			}
		}
	}

	ret = util__mkdir_p(backup_dir, 0700);
	if (ret) {
		seterr(err, errlen, "cannot create %s: %s", backup_dir, strerror(-ret));
		goto cleanup;
	}
	now = time(NULL);
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	if (snprintf(bdir, sizeof(bdir), "%s/%s-XXXXXX", backup_dir, stamp) >= (int)sizeof(bdir)) {
		ret = -ENAMETOOLONG;
		seterr(err, errlen, "backup directory name too long");
		goto cleanup;
	}
	if (!mkdtemp(bdir)) {
		ret = -errno;
		seterr(err, errlen, "cannot create a backup in %s: %s", backup_dir, strerror(-ret));
		goto cleanup;
	}
	bfd = open(bdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (bfd < 0) {
		ret = -errno;
		seterr(err, errlen, "cannot open %s: %s", bdir, strerror(-ret));
		goto drop_backup;
	}

	/* Everything is checked and backed up before the first target is touched. */
	for (; snapped < p->n; snapped++) {
		ret = snapshot(&p->files[snapped], &e[snapped], bfd, snapped, err, errlen);
		if (ret)
			goto drop_backup;
	}
	ret = write_manifest(bdir, e, p->n);
	if (!ret && fsync(bfd))
		ret = -errno;
	if (!ret)
		ret = fsync_dir(backup_dir);
	if (ret) {
		seterr(err, errlen, "cannot write the backup manifest in %s: %s", bdir,
		       strerror(-ret));
		goto drop_backup;
	}

	for (; written < p->n; written++) {
		const struct patch_file *f = &p->files[written];

		ret = write_atomic(e[written].path, f->new_content, f->new_len, e[written].mode,
				   e[written].uid, e[written].gid);
		if (ret) {
			snprintf(why, sizeof(why), "cannot write %s: %s", e[written].path,
				 strerror(-ret));
			break;
		}
	}
	if (!ret) {
		snprintf(backup_id, idlen, "%s", bdir + strlen(backup_dir) + 1);
		goto cleanup;
	}
	/* A later file failed: put back the ones already replaced. */
	rret = restore_entries(bdir, e, written, NULL, 0);
	if (rret) {
		snprintf(backup_id, idlen, "%s", bdir + strlen(backup_dir) + 1);
		seterr(err, errlen,
		       "%s, and restoring the files already written failed (%s); backup kept as %s",
		       why, strerror(-rret), backup_id);
		goto cleanup;
	}
	seterr(err, errlen, "%s; %zu file%s already written restored", why, written,
	       written == 1 ? "" : "s");
drop_backup:
	remove_backup(bdir, e, p->n);
cleanup:
	if (bfd >= 0)
		close(bfd);
	free(e);
	return ret;
}

static int parse_entry(const cJSON *o, struct entry *e)
{
	const cJSON *path = cJSON_GetObjectItemCaseSensitive(o, "path");
	const cJSON *existed = cJSON_GetObjectItemCaseSensitive(o, "existed");
	const cJSON *backup, *mode, *uid, *gid, *size;
	char *end;
	long m;

	if (!cJSON_IsString(path) || path->valuestring[0] != '/' || !cJSON_IsBool(existed) ||
	    strlen(path->valuestring) >= sizeof(e->path))
		return -EINVAL;
	memset(e, 0, sizeof(*e));
	snprintf(e->path, sizeof(e->path), "%s", path->valuestring);
	e->existed = cJSON_IsTrue(existed);
	if (!e->existed)
		return 0;
	backup = cJSON_GetObjectItemCaseSensitive(o, "backup");
	mode = cJSON_GetObjectItemCaseSensitive(o, "mode");
	uid = cJSON_GetObjectItemCaseSensitive(o, "uid");
	gid = cJSON_GetObjectItemCaseSensitive(o, "gid");
	size = cJSON_GetObjectItemCaseSensitive(o, "size");
	if (!cJSON_IsString(backup) || !cJSON_IsString(mode) || !cJSON_IsNumber(uid) ||
	    !cJSON_IsNumber(gid) || !cJSON_IsNumber(size) || strchr(backup->valuestring, '/') ||
	    !backup->valuestring[0] || strlen(backup->valuestring) >= sizeof(e->backup) ||
	    backup->valuestring[0] == '.' || uid->valuedouble < 0 || gid->valuedouble < 0 ||
	    size->valuedouble < 0 || size->valuedouble > (double)SIZE_MAX / 2)
		return -EINVAL;
	errno = 0;
	m = strtol(mode->valuestring, &end, 8);
	if (errno || *end || m < 0 || m > 07777)
		return -EINVAL;
	snprintf(e->backup, sizeof(e->backup), "%s", backup->valuestring);
	e->mode = (mode_t)m;
	e->uid = (uid_t)uid->valuedouble;
	e->gid = (gid_t)gid->valuedouble;
	e->size = (size_t)size->valuedouble;
	return 0;
}

int patch__restore(const char *backup_dir, const char *backup_id, char *err, size_t errlen)
{
	char bdir[PATH_MAX], path[PATH_MAX], *text = NULL;
	const cJSON *files, *version, *o;
	cJSON *root = NULL;
	struct entry *e = NULL;
	size_t n = 0;
	int ret;

	seterr(err, errlen, "%s", "");
	/* ids come from callers such as the HTTP API: never let one leave backup_dir */
	if (!backup_dir || !backup_id || !backup_id[0] || strchr(backup_id, '/') ||
	    strcmp(backup_id, ".") == 0 || strcmp(backup_id, "..") == 0 ||
	    strlen(backup_id) > NAME_MAX) {
		seterr(err, errlen, "invalid backup id \"%s\"", backup_id ? backup_id : "");
		return -EINVAL;
	}
	if (join_path(bdir, sizeof(bdir), backup_dir, backup_id) ||
	    join_path(path, sizeof(path), bdir, MANIFEST)) {
		seterr(err, errlen, "backup path too long");
		return -ENAMETOOLONG;
	}
	ret = patch__read_file(path, MANIFEST_MAX, &text, NULL);
	if (ret) {
		seterr(err, errlen, "cannot read %s: %s", path, strerror(-ret));
		return ret;
	}
	ret = -EINVAL;
	root = cJSON_Parse(text);
	version = cJSON_GetObjectItemCaseSensitive(root, "version");
	files = cJSON_GetObjectItemCaseSensitive(root, "files");
	if (!cJSON_IsNumber(version) || version->valueint != MANIFEST_VERSION ||
	    !cJSON_IsArray(files)) {
		seterr(err, errlen, "%s is not a backup manifest", path);
		goto cleanup;
	}
	e = calloc((size_t)cJSON_GetArraySize(files) + 1, sizeof(*e));
	if (!e) {
		ret = -ENOMEM;
		goto cleanup;
	}
	cJSON_ArrayForEach(o, files)
	{
		if (parse_entry(o, &e[n])) {
			seterr(err, errlen, "%s: file %zu is malformed", path, n);
			goto cleanup;
		}
		n++;
	}
	ret = restore_entries(bdir, e, n, err, errlen);
cleanup:
	cJSON_Delete(root);
	free(text);
	free(e);
	return ret;
}
