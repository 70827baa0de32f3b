/* SPDX-License-Identifier: MIT */
/*
 * metrics: a small Prometheus registry — counters, gauges and histograms
 * with fixed label names — rendered in the text exposition format 0.0.4
 * (what `promtool check metrics` accepts).
 *
 * Thread-safe: one mutex guards the registry; updates (main loop) and
 * renders (the HTTP thread) may run concurrently. Families are registered
 * once, at start-up; their series are created on first use. Each family
 * holds at most max_series series: past it, an update for a new label set
 * goes to one extra series whose every label value is "other", and is
 * counted — rendered as heal_metrics_series_overflow_total{family="..."} —
 * so a misbehaving label (a pid, a path) cannot grow memory or the scrape.
 *
 * Refreshing gauges: values owned by heald's main loop (open traces, mode)
 * are set by the main loop when they change — the registry keeps the last
 * value. Values any thread may read (this process's CPU and memory from
 * /proc/self, BPF map counters by fd) can be read just before each render
 * by a collector (metrics__add_collector), which runs on the rendering
 * thread: it must not touch main-loop state.
 */
#ifndef HEAL_METRICS_H
#define HEAL_METRICS_H

#include <stddef.h>

struct metrics;
struct metrics_family;

enum metrics_type { METRICS_COUNTER, METRICS_GAUGE, METRICS_HISTOGRAM };

/* Upper bounds of heal durations in seconds, for an initializer: {METRICS_HEAL_BUCKETS}. */
#define METRICS_HEAL_BUCKETS 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120
#define METRICS_MAX_LABELS   8
#define METRICS_MAX_BUCKETS  32
/* Label values are cut to this many bytes (cardinality is bounded anyway). */
#define METRICS_LABEL_VALUE_MAX 128

struct metrics_desc {
	/* [a-zA-Z_:][a-zA-Z0-9_:]*: counters end in _total; others don't, nor in _sum etc. */
	const char *name;
	const char *help; /* one line, required */
	enum metrics_type type;
	/* NULL-terminated label names, NULL: none; "le" refused on histograms */
	const char *const *labels;
	unsigned max_series; /* 0: 64 */
	/* histograms: ascending finite upper bounds, +Inf implied; NULL: METRICS_HEAL_BUCKETS */
	const double *buckets;
	size_t n_buckets;
};

/* Called at the start of every render, on the rendering thread, without the registry lock. */
typedef void (*metrics_collect_fn)(struct metrics *m, void *ctx);

struct metrics *metrics__new(void);
/* Accepts NULL. No thread may still use the registry or its families. */
void metrics__free(struct metrics *m);

/*
 * Register a family; *out stays valid until metrics__free. 0, -EINVAL (bad
 * name, help, label or buckets; a suffix promtool's lint rejects), -EEXIST
 * (name taken) or -ENOMEM. A family without labels starts with its one
 * series at 0; +Inf is implied after the last bucket.
 */
int metrics__register(struct metrics *m, const struct metrics_desc *d, struct metrics_family **out);

/*
 * Updates. values: one string per label name, in order (NULL entries are
 * ""; the array may be NULL for a family without labels). A call on the
 * wrong type of family, with a NULL family, or a negative counter increment
 * or a NaN is ignored.
 */
void metrics__counter_add(struct metrics_family *f, const char *const *values, double v);
void metrics__counter_inc(struct metrics_family *f, const char *const *values);
/* A counter kept elsewhere (a BPF map's drop count): its absolute value. */
void metrics__counter_set(struct metrics_family *f, const char *const *values, double v);
void metrics__gauge_set(struct metrics_family *f, const char *const *values, double v);
void metrics__gauge_add(struct metrics_family *f, const char *const *values, double v);
void metrics__observe(struct metrics_family *f, const char *const *values, double v);
/* Updates that went to the "other" series of f because it was full. */
unsigned long long metrics__overflowed(struct metrics_family *f);

/* Add a collector run before each render (at most 8). 0, -EINVAL or -ENOSPC. */
int metrics__add_collector(struct metrics *m, metrics_collect_fn fn, void *ctx);

/*
 * Register the standard process_* gauges and counters (CPU seconds,
 * resident and virtual memory, open and max fds, start time), read from
 * /proc/self by a collector at each render. 0 or -errno from registering.
 */
int metrics__register_process(struct metrics *m);

/*
 * The exposition text (Content-Type "text/plain; version=0.0.4"): families
 * sorted by name, each with # HELP and # TYPE, label values escaped,
 * histograms as _bucket{le=...} (cumulative, +Inf last), _sum, _count.
 * Families with no series yet are left out. malloc'd; NULL on ENOMEM.
 */
char *metrics__render(struct metrics *m);

#endif /* HEAL_METRICS_H */
