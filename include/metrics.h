/* metrics: GET /metrics, the Prometheus text exposition (format 0.0.4) of
 * what status shows plus the workers' counters (CONTRACT.md, "Metrics").
 * Built on the control thread from a status document and the summed
 * counters: the data path only bumps its own worker's counters. */
#ifndef CUTOVER_METRICS_H
#define CUTOVER_METRICS_H

#include <stdint.h>

#include <event2/buffer.h>

#include "status.h"

/* What the control thread counts itself (written and read on its thread). */
struct metrics_control {
	uint64_t reloads_ok, reloads_failed;
	uint64_t preflights_ok[2], preflights_failed[2];   /* per upstream */
};

/* Appends the whole exposition to OUT. Returns 0, or -1 when out of
 * memory (OUT then holds a part: the caller discards it). */
int metrics_render(const struct status_sources *src, const struct metrics_control *mc,
		   struct evbuffer *out);

/* Appends V to OUT as a label value: backslash, quote and newline escaped. */
int metrics_label(struct evbuffer *out, const char *v);

#endif
