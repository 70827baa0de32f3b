/* SPDX-License-Identifier: MIT */
/*
 * The kernel side as heald sees it: loads the BPF skeletons, fills their
 * maps from the config, attaches, and hands every ring buffer record to a
 * callback. Also the map operations heald needs while running.
 */
#ifndef HEAL_PROBE_H
#define HEAL_PROBE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "heal/config.h"
#include "heal/events.h"

struct probe;

/* One ring buffer record (starts with struct heal_rec_hdr). Runs on the polling thread. */
typedef void (*probe_record_fn)(void *ctx, const void *rec, size_t len);
/* One in-kernel failure count of a process. */
typedef void (*probe_count_fn)(void *ctx, uint32_t nr, uint32_t err, uint64_t count);

/*
 * Load and attach everything cfg asks for. On failure returns a negative
 * errno and a sentence for people in err (what failed and how to fix it).
 */
int probe__new(const struct heal_config *cfg, probe_record_fn cb, void *ctx, struct probe **out,
	       char *err, size_t errlen);
void probe__free(struct probe *p);

/* epoll-able fd of the ring buffer; probe__consume() when it is readable. */
int probe__fd(const struct probe *p);
/*
 * Hand waiting records to the callback, at most max of them: producers faster
 * than heald would otherwise keep it in here forever (libbpf reads until the
 * ring is empty). Returns records consumed (max: more may be waiting) or -errno.
 */
int probe__consume(struct probe *p, int max);

/* Make tgid part of target (its children follow in the kernel). 0 or -errno. */
int probe__watch(struct probe *p, uint32_t tgid, const struct heal_target *t);
int probe__unwatch(struct probe *p, uint32_t tgid);

/* Sums over CPUs: drops[HEAL_REC_MAX] by record type, stats[HEAL_STAT_MAX]. */
int probe__read_drops(struct probe *p, uint64_t drops[HEAL_REC_MAX]);
int probe__read_stats(struct probe *p, uint64_t stats[HEAL_STAT_MAX]);

/* Report and forget the in-kernel failure counts of an exited process. */
/* The processes (tgid, target) that have counts in the kernel table; at most max. */
struct probe_count_owner {
	uint32_t tgid;
	uint32_t target_id;
};
int probe__count_owners(struct probe *p, struct probe_count_owner *out, size_t max);
int probe__take_counts(struct probe *p, uint32_t tgid, probe_count_fn cb, void *ctx);

/* One live in-kernel count: (target, syscall, errno) of a running process. */
typedef void (*probe_live_count_fn)(void *ctx, uint32_t target_id, uint32_t nr, uint32_t err,
				    uint64_t count);
/* Walk the counts of processes still running (nothing is removed). Returns entries or -errno. */
int probe__live_counts(struct probe *p, probe_live_count_fn cb, void *ctx);

/* The api rule behind an api_id of a record. */
const struct heal_api_rule *probe__api_rule(const struct probe *p, uint32_t api_id,
					    const struct heal_target **target);

#endif /* HEAL_PROBE_H */
