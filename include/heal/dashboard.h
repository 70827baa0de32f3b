/* SPDX-License-Identifier: MIT */
/*
 * dashboard: the web dashboard's static files (tools/dashboard/), embedded in the binary
 * by tools/embed.sh (.output/dashboard_assets.h), served by the HTTP server as its
 * http_asset_fn: "/" and "/index.html" the page, "/app.js", "/style.css"; anything else
 * is 404. Nothing is loaded from anywhere else: the page needs no network but heald.
 */
#ifndef HEAL_DASHBOARD_H
#define HEAL_DASHBOARD_H

#include "heal/http.h"

/* An http_asset_fn: fill *out for path and return 0, or -ENOENT (404). ctx is unused. */
int dashboard__asset(void *ctx, const char *path, struct http_asset *out);

#endif /* HEAL_DASHBOARD_H */
