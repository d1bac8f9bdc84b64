/*
 * The dashboard (dashboard.c): its page and Chart.js, embedded at build time
 * (cmake/embed.cmake makes them C arrays), and the one-second snapshot the
 * page draws, a JSON object read from the shared stats memfd and /proc.
 */
#ifndef SWOOP_SERVER_DASHBOARD_H
#define SWOOP_SERVER_DASHBOARD_H

#include <stddef.h>

#include "server/internal.h"

/* The embedded files (generated: dashboard_assets.c in the build tree). */
extern const unsigned char swoop__dash_html[];
extern const size_t swoop__dash_html_len;
extern const unsigned char swoop__dash_chartjs[];
extern const size_t swoop__dash_chartjs_len;

/*
 * The asset served at path[0, len): "/" (or "/index.html") the page,
 * "/chart.js" Chart.js. 0 with *data, *size and *type set, or SWOOP_ENOENT.
 */
int swoop__dash_asset(const char *path, size_t len, const void **data, size_t *size,
                      const char **type);

/* Renders the snapshot of gs into buf (cap bytes); the length it needs, like snprintf. */
int swoop__dash_json(swoop_srv_shared_t *gs, char *buf, size_t cap);

#endif /* SWOOP_SERVER_DASHBOARD_H */
