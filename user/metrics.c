// SPDX-License-Identifier: MIT
/*
 * metrics: families kept sorted by name in one array, series in a list per
 * family (found by a hash of their label values, then compared), one mutex
 * for everything. Cardinality is bounded per family, so the list stays short.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "heal/metrics.h"
#include "heal/util.h"

#define DEFAULT_MAX_SERIES 64
#define MAX_COLLECTORS	   8
#define OVERFLOW_FAMILY	   "heal_metrics_series_overflow_total"

struct series {
	struct series *next;
	uint64_t hash;
	char **values;	   /* n_labels strings */
	double value;	   /* counter, gauge */
	uint64_t *buckets; /* histogram: n_buckets + 1 (the last is +Inf), not cumulative */
	double sum;
	uint64_t count;
};

struct metrics_family {
	struct metrics *m;
	char *name, *help;
	enum metrics_type type;
	unsigned n_labels;
	char *labels[METRICS_MAX_LABELS];
	unsigned max_series, n_series;
	double bounds[METRICS_MAX_BUCKETS];
	size_t n_buckets;
	struct series *head, *tail;
	struct series *other; /* where updates go once the family is full */
	unsigned long long overflowed;
};

struct collector {
	metrics_collect_fn fn;
	void *ctx;
};

struct proc_families {
	struct metrics_family *cpu, *rss, *vsz, *fds, *max_fds, *start;
};

struct metrics {
	pthread_mutex_t lock;
	struct metrics_family **fam; /* sorted by name */
	size_t n_fam, cap_fam;
	struct metrics_family *overflow; /* OVERFLOW_FAMILY, registered by metrics__new */
	struct collector coll[MAX_COLLECTORS];
	unsigned n_coll;
	struct proc_families *proc;
};

/* -- names and values -------------------------------------------------------------------------- */

static int valid_name(const char *s, int colon)
{
	const char *p;

	if (!s || !*s)
		return 0;
	for (p = s; *p; p++) {
		int ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
			 (colon && *p == ':') || (p != s && *p >= '0' && *p <= '9');

		if (!ok)
			return 0;
	}
	return 1;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && !strcmp(s + a - b, suffix);
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	size_t len, i;
	unsigned cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

/* A label value as stored, into out: valid UTF-8 (bad bytes become '?'), at most
 * METRICS_LABEL_VALUE_MAX bytes. */
static void clean_value(const char *v, char out[METRICS_LABEL_VALUE_MAX + 1])
{
	size_t n = v ? strlen(v) : 0, i = 0, o = 0;

	while (i < n) {
		size_t l = utf8_len((const unsigned char *)v + i, n - i);

		if (o + (l ? l : 1) > METRICS_LABEL_VALUE_MAX)
			break;
		if (!l) {
			out[o++] = '?';
			i++;
			continue;
		}
		memcpy(out + o, v + i, l);
		o += l;
		i += l;
	}
	out[o] = '\0';
}

/* A family's label values, cleaned. */
struct values {
	char v[METRICS_MAX_LABELS][METRICS_LABEL_VALUE_MAX + 1];
};

static void clean_values(const struct metrics_family *f, const char *const *values,
			 struct values *out)
{
	unsigned i;

	for (i = 0; i < f->n_labels; i++)
		clean_value(values ? values[i] : NULL, out->v[i]);
}

/* FNV-1a over the cleaned values. */
static uint64_t hash_values(const struct metrics_family *f, const struct values *vals)
{
	uint64_t h = 1469598103934665603ull;
	unsigned i;

	for (i = 0; i < f->n_labels; i++) {
		const char *p;

		for (p = vals->v[i]; *p; p++)
			h = (h ^ (unsigned char)*p) * 1099511628211ull;
		h = (h ^ 0xff) * 1099511628211ull;
	}
	return h;
}

/* -- registry ---------------------------------------------------------------------------------- */

static void series_free(struct series *s, unsigned n_labels)
{
	unsigned i;

	if (!s)
		return;
	if (s->values)
		for (i = 0; i < n_labels; i++)
			free(s->values[i]);
	free(s->values);
	free(s->buckets);
	free(s);
}

static void family_free(struct metrics_family *f)
{
	struct series *s, *next;
	unsigned i;

	if (!f)
		return;
	for (s = f->head; s; s = next) {
		next = s->next;
		series_free(s, f->n_labels);
	}
	series_free(f->other, f->n_labels);
	for (i = 0; i < f->n_labels; i++)
		free(f->labels[i]);
	free(f->name);
	free(f->help);
	free(f);
}

/* A new series with these (cleaned) values, or NULL on ENOMEM. */
static struct series *series_new(const struct metrics_family *f, const struct values *vals,
				 uint64_t hash)
{
	struct series *s = calloc(1, sizeof(*s));
	unsigned i;

	if (!s)
		return NULL;
	s->hash = hash;
	if (f->n_labels) {
		s->values = calloc(f->n_labels, sizeof(*s->values));
		if (!s->values)
			goto fail;
		for (i = 0; i < f->n_labels; i++) {
			s->values[i] = strdup(vals->v[i]);
			if (!s->values[i])
				goto fail;
		}
	}
	if (f->type == METRICS_HISTOGRAM) {
		s->buckets = calloc(f->n_buckets + 1, sizeof(*s->buckets));
		if (!s->buckets)
			goto fail;
	}
	return s;
fail:
	series_free(s, f->n_labels);
	return NULL;
}

static int same_values(const struct metrics_family *f, const struct series *s,
		       const struct values *vals)
{
	unsigned i;

	for (i = 0; i < f->n_labels; i++)
		if (strcmp(s->values[i], vals->v[i]))
			return 0;
	return 1;
}

/* The series for values, created when new; the "other" series once full. Lock held. */
static struct series *series_get(struct metrics_family *f, const char *const *values)
{
	struct values vals;
	struct series *s;
	uint64_t h;
	unsigned i;

	clean_values(f, values, &vals);
	h = hash_values(f, &vals);
	for (s = f->head; s; s = s->next)
		if (s->hash == h && same_values(f, s, &vals))
			return s;
	if (f->n_series < f->max_series) {
		s = series_new(f, &vals, h);
		if (s) {
			if (f->tail)
				f->tail->next = s;
			else
				f->head = s;
			f->tail = s;
			f->n_series++;
			return s;
		}
	}
	/* full (or out of memory): fold into {...="other"}, which may be a real series already */
	f->overflowed++;
	if (!f->other) {
		for (i = 0; i < f->n_labels; i++)
			snprintf(vals.v[i], sizeof(vals.v[i]), "other");
		h = hash_values(f, &vals);
		for (s = f->head; s; s = s->next)
			if (s->hash == h && same_values(f, s, &vals))
				return s;
		f->other = series_new(f, &vals, h);
	}
	return f->other;
}

static int family_insert(struct metrics *m, struct metrics_family *f)
{
	size_t i, at;

	for (at = 0; at < m->n_fam; at++) {
		int c = strcmp(f->name, m->fam[at]->name);

		if (!c)
			return -EEXIST;
		if (c < 0)
			break;
	}
	if (m->n_fam == m->cap_fam) {
		size_t cap = m->cap_fam ? m->cap_fam * 2 : 16;
		struct metrics_family **v = realloc(m->fam, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		m->fam = v;
		m->cap_fam = cap;
	}
	for (i = m->n_fam; i > at; i--)
		m->fam[i] = m->fam[i - 1];
	m->fam[at] = f;
	m->n_fam++;
	return 0;
}

int metrics__register(struct metrics *m, const struct metrics_desc *d, struct metrics_family **out)
{
	static const double heal_buckets[] = {METRICS_HEAL_BUCKETS};
	struct metrics_family *f;
	const double *b;
	size_t nb = 0, i;
	unsigned n = 0, k;
	int err;

	if (!m || !d || !out || !valid_name(d->name, 1) || !d->help || !*d->help)
		return -EINVAL;
	if (d->type != METRICS_COUNTER && d->type != METRICS_GAUGE && d->type != METRICS_HISTOGRAM)
		return -EINVAL;
	/* promtool's lint: counters end in _total, nothing else does, nor in _count/_sum/_bucket */
	if ((d->type == METRICS_COUNTER) != ends_with(d->name, "_total") ||
	    (d->type != METRICS_COUNTER &&
	     (ends_with(d->name, "_count") || ends_with(d->name, "_sum") ||
	      ends_with(d->name, "_bucket"))))
		return -EINVAL;
	for (n = 0; d->labels && d->labels[n]; n++) {
		if (n == METRICS_MAX_LABELS || !valid_name(d->labels[n], 0) ||
		    !strncmp(d->labels[n], "__", 2) ||
		    (d->type == METRICS_HISTOGRAM && !strcmp(d->labels[n], "le")))
			return -EINVAL;
		for (k = 0; k < n; k++)
			if (!strcmp(d->labels[k], d->labels[n]))
				return -EINVAL;
	}
	b = d->buckets;
	if (d->type == METRICS_HISTOGRAM) {
		nb = b ? d->n_buckets : sizeof(heal_buckets) / sizeof(heal_buckets[0]);
		if (!b)
			b = heal_buckets;
		if (!nb || nb > METRICS_MAX_BUCKETS)
			return -EINVAL;
		for (i = 0; i < nb; i++)
			if (!isfinite(b[i]) || (i && b[i] <= b[i - 1]))
				return -EINVAL;
	}

	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->m = m;
	f->type = d->type;
	f->max_series = d->max_series ? d->max_series : DEFAULT_MAX_SERIES;
	f->n_buckets = nb;
	if (nb)
		memcpy(f->bounds, b, nb * sizeof(*b));
	f->name = strdup(d->name);
	f->help = strdup(d->help);
	err = -ENOMEM;
	if (!f->name || !f->help)
		goto fail;
	for (k = 0; k < n; k++) {
		f->labels[k] = strdup(d->labels[k]);
		if (!f->labels[k])
			goto fail;
		f->n_labels = k + 1;
	}
	/* a family without labels has its single series from the start */
	if (!n) {
		static const struct values none;

		f->head = f->tail = series_new(f, &none, hash_values(f, &none));
		if (!f->head)
			goto fail;
		f->n_series = 1;
	}
	pthread_mutex_lock(&m->lock);
	err = family_insert(m, f);
	pthread_mutex_unlock(&m->lock);
	if (err)
		goto fail;
	*out = f;
	return 0;
fail:
	family_free(f);
	return err;
}

struct metrics *metrics__new(void)
{
	static const char *const family_label[] = {"family", NULL};
	const struct metrics_desc d = {
	    .name = OVERFLOW_FAMILY,
	    .help = "Updates folded into a family's \"other\" series because it reached its series "
		    "limit.",
	    .type = METRICS_COUNTER,
	    .labels = family_label,
	    .max_series = 1024,
	};
	struct metrics *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	pthread_mutex_init(&m->lock, NULL);
	if (metrics__register(m, &d, &m->overflow)) {
		metrics__free(m);
		errno = ENOMEM;
		return NULL;
	}
	return m;
}

void metrics__free(struct metrics *m)
{
	size_t i;

	if (!m)
		return;
	for (i = 0; i < m->n_fam; i++)
		family_free(m->fam[i]);
	free(m->fam);
	free(m->proc);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

int metrics__add_collector(struct metrics *m, metrics_collect_fn fn, void *ctx)
{
	int err = 0;

	if (!m || !fn)
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	if (m->n_coll == MAX_COLLECTORS)
		err = -ENOSPC;
	else
		m->coll[m->n_coll++] = (struct collector){.fn = fn, .ctx = ctx};
	pthread_mutex_unlock(&m->lock);
	return err;
}

/* -- updates ----------------------------------------------------------------------------------- */

enum op { OP_ADD, OP_SET, OP_OBSERVE };

static void update(struct metrics_family *f, enum metrics_type type, const char *const *values,
		   enum op op, double v)
{
	struct series *s;
	size_t i;

	if (!f || f->type != type || isnan(v))
		return;
	pthread_mutex_lock(&f->m->lock);
	s = series_get(f, values);
	if (!s)
		goto out;
	switch (op) {
	case OP_ADD:
		s->value += v;
		break;
	case OP_SET:
		s->value = v;
		break;
	case OP_OBSERVE:
		for (i = 0; i < f->n_buckets && v > f->bounds[i]; i++)
			;
		s->buckets[i]++;
		s->sum += v;
		s->count++;
		break;
	}
out:
	pthread_mutex_unlock(&f->m->lock);
}

void metrics__counter_add(struct metrics_family *f, const char *const *values, double v)
{
	if (v >= 0)
		update(f, METRICS_COUNTER, values, OP_ADD, v);
}

void metrics__counter_inc(struct metrics_family *f, const char *const *values)
{
	update(f, METRICS_COUNTER, values, OP_ADD, 1);
}

void metrics__counter_set(struct metrics_family *f, const char *const *values, double v)
{
	if (v >= 0)
		update(f, METRICS_COUNTER, values, OP_SET, v);
}

void metrics__gauge_set(struct metrics_family *f, const char *const *values, double v)
{
	update(f, METRICS_GAUGE, values, OP_SET, v);
}

void metrics__gauge_add(struct metrics_family *f, const char *const *values, double v)
{
	update(f, METRICS_GAUGE, values, OP_ADD, v);
}

void metrics__observe(struct metrics_family *f, const char *const *values, double v)
{
	update(f, METRICS_HISTOGRAM, values, OP_OBSERVE, v);
}

unsigned long long metrics__overflowed(struct metrics_family *f)
{
	unsigned long long n;

	if (!f)
		return 0;
	pthread_mutex_lock(&f->m->lock);
	n = f->overflowed;
	pthread_mutex_unlock(&f->m->lock);
	return n;
}

/* -- process metrics --------------------------------------------------------------------------- */

static double boot_time(void)
{
	char line[256];
	double bt = 0;
	FILE *fp = fopen("/proc/stat", "re");

	if (!fp)
		return 0;
	while (fgets(line, sizeof(line), fp))
		if (sscanf(line, "btime %lf", &bt) == 1)
			break;
	fclose(fp);
	return bt;
}

static void collect_process(struct metrics *m, void *ctx)
{
	struct proc_families *p = ctx;
	unsigned long long utime, stime, start, vsize;
	long long rss;
	long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	struct rlimit rl;
	struct dirent *de;
	char buf[1024], *s;
	size_t n;
	int fds = 0;
	FILE *fp;
	DIR *dir;

	fp = fopen("/proc/self/stat", "re");
	if (fp) {
		n = fread(buf, 1, sizeof(buf) - 1, fp);
		buf[n] = '\0';
		fclose(fp);
		/* fields after the comm, which may hold spaces and parentheses: start at the last
		 * ')' */
		s = strrchr(buf, ')');
		if (s && tck > 0 &&
		    sscanf(s + 2,
			   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d "
			   "%*d %*d %llu %llu %lld",
			   &utime, &stime, &start, &vsize, &rss) == 5) {
			metrics__counter_set(p->cpu, NULL, (double)(utime + stime) / (double)tck);
			metrics__gauge_set(p->vsz, NULL, (double)vsize);
			metrics__gauge_set(p->rss, NULL, (double)rss * (double)page);
			metrics__gauge_set(p->start, NULL,
					   boot_time() + (double)start / (double)tck);
		}
	}
	dir = opendir("/proc/self/fd");
	if (dir) {
		while ((de = readdir(dir)))
			fds += de->d_name[0] != '.';
		closedir(dir);
		metrics__gauge_set(p->fds, NULL, fds - 1); /* less the one opendir holds */
	}
	if (!getrlimit(RLIMIT_NOFILE, &rl))
		metrics__gauge_set(p->max_fds, NULL,
				   rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur);
}

int metrics__register_process(struct metrics *m)
{
	struct proc_families *p;
	struct {
		const char *name, *help;
		enum metrics_type type;
		struct metrics_family **out;
	} d[6];
	size_t i;
	int err;

	if (!m)
		return -EINVAL;
	if (m->proc)
		return -EEXIST;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	d[0] = (typeof(d[0])){"process_cpu_seconds_total",
			      "Total user and system CPU time spent in seconds.", METRICS_COUNTER,
			      &p->cpu};
	d[1] = (typeof(d[0])){"process_resident_memory_bytes", "Resident memory size in bytes.",
			      METRICS_GAUGE, &p->rss};
	d[2] = (typeof(d[0])){"process_virtual_memory_bytes", "Virtual memory size in bytes.",
			      METRICS_GAUGE, &p->vsz};
	d[3] = (typeof(d[0])){"process_open_fds", "Number of open file descriptors.", METRICS_GAUGE,
			      &p->fds};
	d[4] = (typeof(d[0])){"process_max_fds", "Maximum number of open file descriptors.",
			      METRICS_GAUGE, &p->max_fds};
	d[5] = (typeof(d[0])){"process_start_time_seconds",
			      "Start time of the process since unix epoch in seconds.",
			      METRICS_GAUGE, &p->start};
	for (i = 0; i < 6; i++) {
		const struct metrics_desc md = {
		    .name = d[i].name, .help = d[i].help, .type = d[i].type};

		err = metrics__register(m, &md, d[i].out);
		if (err) {
			free(p); /* families already registered stay, at 0 */
			return err;
		}
	}
	err = metrics__add_collector(m, collect_process, p);
	if (err) {
		free(p);
		return err;
	}
	m->proc = p;
	return 0;
}

/* -- rendering --------------------------------------------------------------------------------- */

/* Escape \ and newline (HELP), plus " in label values. */
static void sb_escaped(struct util_sb *b, const char *s, int quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			util__sb_putn(b, "\\\\", 2);
		else if (*s == '\n')
			util__sb_putn(b, "\\n", 2);
		else if (quote && *s == '"')
			util__sb_putn(b, "\\\"", 2);
		else
			util__sb_putn(b, s, 1);
	}
}

/* Shortest text that reads back as v; Prometheus spellings for the special values. */
static void fmt_double(char *buf, size_t len, double v)
{
	if (isnan(v))
		snprintf(buf, len, "NaN");
	else if (isinf(v))
		snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
	else {
		snprintf(buf, len, "%.15g", v);
		if (strtod(buf, NULL) != v)
			snprintf(buf, len, "%.17g", v);
	}
}

/* {a="x",b="y"[,le="..."]} or nothing when there are no labels at all */
static void sb_labels(struct util_sb *b, const struct metrics_family *f, const struct series *s,
		      const char *le)
{
	unsigned i;

	if (!f->n_labels && !le)
		return;
	util__sb_puts(b, "{");
	for (i = 0; i < f->n_labels; i++) {
		if (i)
			util__sb_puts(b, ",");
		util__sb_puts(b, f->labels[i]);
		util__sb_puts(b, "=\"");
		sb_escaped(b, s->values[i], 1);
		util__sb_puts(b, "\"");
	}
	if (le) {
		if (f->n_labels)
			util__sb_puts(b, ",");
		util__sb_puts(b, "le=\"");
		util__sb_puts(b, le);
		util__sb_puts(b, "\"");
	}
	util__sb_puts(b, "}");
}

static void render_series(struct util_sb *b, const struct metrics_family *f, const struct series *s)
{
	char num[64];
	uint64_t cum = 0;
	size_t i;

	if (f->type != METRICS_HISTOGRAM) {
		util__sb_puts(b, f->name);
		sb_labels(b, f, s, NULL);
		fmt_double(num, sizeof(num), s->value);
		util__sb_puts(b, " ");
		util__sb_puts(b, num);
		util__sb_puts(b, "\n");
		return;
	}
	for (i = 0; i <= f->n_buckets; i++) {
		char le[64];

		cum += s->buckets[i];
		fmt_double(le, sizeof(le), i < f->n_buckets ? f->bounds[i] : INFINITY);
		util__sb_puts(b, f->name);
		util__sb_puts(b, "_bucket");
		sb_labels(b, f, s, le);
		snprintf(num, sizeof(num), " %llu\n", (unsigned long long)cum);
		util__sb_puts(b, num);
	}
	util__sb_puts(b, f->name);
	util__sb_puts(b, "_sum");
	sb_labels(b, f, s, NULL);
	fmt_double(num, sizeof(num), s->sum);
	util__sb_puts(b, " ");
	util__sb_puts(b, num);
	util__sb_puts(b, "\n");
	util__sb_puts(b, f->name);
	util__sb_puts(b, "_count");
	sb_labels(b, f, s, NULL);
	snprintf(num, sizeof(num), " %llu\n", (unsigned long long)s->count);
	util__sb_puts(b, num);
}

char *metrics__render(struct metrics *m)
{
	static const char *const type_name[] = {"counter", "gauge", "histogram"};
	struct collector coll[MAX_COLLECTORS];
	struct util_sb b = {0};
	unsigned n_coll, i;
	size_t k;

	if (!m)
		return NULL;
	pthread_mutex_lock(&m->lock);
	n_coll = m->n_coll;
	memcpy(coll, m->coll, sizeof(coll));
	pthread_mutex_unlock(&m->lock);
	for (i = 0; i < n_coll; i++)
		coll[i].fn(m, coll[i].ctx);

	pthread_mutex_lock(&m->lock);
	/* mirror every labelled family's overflow count into OVERFLOW_FAMILY */
	for (k = 0; k < m->n_fam; k++) {
		struct metrics_family *f = m->fam[k];
		const char *v[1] = {f->name};
		struct series *s;

		if (f == m->overflow || !f->n_labels)
			continue;
		s = series_get(m->overflow, v);
		if (s)
			s->value = (double)f->overflowed;
	}
	for (k = 0; k < m->n_fam; k++) {
		const struct metrics_family *f = m->fam[k];
		const struct series *s;

		if (!f->head && !f->other)
			continue;
		util__sb_puts(&b, "# HELP ");
		util__sb_puts(&b, f->name);
		util__sb_puts(&b, " ");
		sb_escaped(&b, f->help, 0);
		util__sb_puts(&b, "\n# TYPE ");
		util__sb_puts(&b, f->name);
		util__sb_puts(&b, " ");
		util__sb_puts(&b, type_name[f->type]);
		util__sb_puts(&b, "\n");
		for (s = f->head; s; s = s->next)
			render_series(&b, f, s);
		if (f->other)
			render_series(&b, f, f->other);
	}
	pthread_mutex_unlock(&m->lock);
	if (!b.err && !b.p)
		util__sb_puts(&b, "");
	if (b.err) {
		free(b.p);
		return NULL;
	}
	return b.p;
}
