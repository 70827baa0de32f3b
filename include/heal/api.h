/* SPDX-License-Identifier: MIT */
/*
 * The operators' surface of heald: Prometheus metrics, the JSON API and the
 * live event stream over the HTTP server. Everything heald knows reaches it
 * as bus events on the main loop; the HTTP threads read only what this
 * module publishes under its lock (status, traces, the event ring, the
 * metrics registry), and actions come back to the main loop through an
 * eventfd (api__fd, api__dispatch).
 */
#ifndef HEAL_API_H
#define HEAL_API_H

#include "heal/bus.h"
#include "heal/config.h"
#include "heal/healer.h"
#include "heal/probe.h"
#include "heal/worker.h"

struct api;

/*
 * Start serving on listen ("127.0.0.1:PORT"; the token comes from
 * STATE_DIR/api.token, created 0600 on first start). NULL with a sentence
 * in err when the server cannot start.
 */
struct api *api__new(const struct heal_config *cfg, const char *listen, struct healer *healer,
		     struct probe *probe, struct bus *bus, struct worker *worker, char *err,
		     size_t errlen);
void api__free(struct api *a);
/* Bus subscriber: every event into the ring, the metrics and the trace table. */
void api__on_event(struct heal_event *ev, void *ctx);
/* Refresh what the HTTP threads read (status, gauges, in-kernel counts); from the loop's timer. */
void api__tick(struct api *a);
/* The actions queue: readable when POSTed actions wait; run them on the main loop. */
int api__fd(const struct api *a);
void api__dispatch(struct api *a);
/* The bound port. */
unsigned short api__port(const struct api *a);

#endif /* HEAL_API_H */
