/*
 * monitor_int.h — internals of the monitor shared between its files: the
 * dashboard's static files embedded at build time (cmake/monitor.cmake
 * generates the table from ui/), and small text helpers of the renderers.
 */
#ifndef COH_MONITOR_INT_H
#define COH_MONITOR_INT_H

#include <stddef.h>

#include "util/util_int.h"

/* One embedded dashboard file: path as served ("/index.html"), its MIME
 * type and bytes.  The table ends with an entry whose path is NULL. */
typedef struct coh__ui_asset {
  const char *path;
  const char *mime;
  const unsigned char *data;
  size_t len;
} coh__ui_asset;

extern const coh__ui_asset coh__ui_assets[];

/* Appends s (n bytes) as a JSON string literal, quotes included; invalid
 * UTF-8 bytes become U+FFFD so the output is always valid JSON. */
void coh__json_str(coh__buf *b, const char *s, size_t n);

/* Appends x as the shortest decimal that reads back as the same double
 * (integers without a fraction); NaN and infinities as Prometheus writes
 * them ("NaN", "+Inf", "-Inf"). */
void coh__fmt_num(coh__buf *b, double x);

#endif /* COH_MONITOR_INT_H */
