/* SPDX-License-Identifier: MIT */
/* The demo shop under a real heald, for the healing tests. */
#ifndef HEAL_TEST_SHOPENV_H
#define HEAL_TEST_SHOPENV_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "harness.h"

#define SHOP_WAIT_MS 20000

struct shop {
	struct h_heald h;
	char dir[PATH_MAX];
	char etc[PATH_MAX + 8];
	char data[PATH_MAX + 8];
	int port, pay_port;
	bool started;
	bool tmpfs;
};

/* DIR/etc/name of the shop's config files. */
void shop_path(char *out, size_t len, const struct shop *s, const char *name);
/*
 * Lay out a shop (payments and shop supervised by heald, its config files
 * allowlisted) in a fresh directory and start heald on it; true once the
 * shop answers. top: extra top-level config keys, each followed by a comma;
 * shop_extra: extra keys of the shop target, each followed by a comma, where
 * "@ETC@" stands for the shop's config directory. small_disk: DIR/data on a
 * 1 MiB tmpfs.
 */
bool shop_start(struct shop *s, const char *top, const char *shop_extra, bool small_disk);

struct shop_opts {
	const char *top;        /* extra top-level keys, each followed by a comma */
	const char *shop_extra; /* extra keys of the shop target, each followed by a comma */
	const char *limits;     /* the "limits" object; NULL: {"backoff_ms": 200} */
	const char *verify;     /* the shop target's "verify" object; NULL: tools/shop-verify.sh */
	bool small_disk;        /* DIR/data on a 1 MiB tmpfs */
};

/* shop_start with every option; "@ETC@" and "@DIR@" in top, shop_extra and verify are expanded. */
bool shop_start_opts(struct shop *s, const struct shop_opts *o);
/* Wait until the shop answers /health (up to 5 s). */
bool shop_wait_up(struct shop *s);
/* The pid of the shop serving DIR/etc/shop.json (heald's supervised child), 0 when none runs. */
pid_t shop_pid(const struct shop *s);
/* The pid of its payments process, 0 when none runs. */
pid_t shop_payments_pid(const struct shop *s);
/* SIGHUP the shop and wait until its log (STATE_DIR/shop.log) contains needle. */
bool shop_reload(struct shop *s, const char *needle);
/* Stop heald (asserting it exits 0) and clean up. */
void shop_stop(struct shop *s);
/* The step types of a trace, in order, space separated (failure events left out). */
void shop_trace_steps(struct h_heald *h, const char *trace_id, char *out, size_t len);
const char *shop_trace_of(const cJSON *ev);
/*
 * Wait for the first event of failure_type, then for its trace to end
 * (HEALED, HEAL_FAILED, ESCALATED, DRY_RUN) or to wait for approval; returns
 * that event and the trace id in trace.
 */
cJSON *shop_wait_outcome(struct shop *s, const char *failure_type, char *trace, size_t tlen);

#endif /* HEAL_TEST_SHOPENV_H */
