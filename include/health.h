/* health: checks each upstream every upstreams.X.health.interval with the
 * preflight's steps (connect to the followed name's current addresses, TLS,
 * the health request within health.timeout) and keeps the last result, its latency and its cause for
 * status, /metrics (cutover_upstream_up) and the dashboard. Runs on the
 * control thread's loop; a check is a probe (not counted in in_flight).
 * A change of verdict is logged once, not every check. */
#ifndef CUTOVER_HEALTH_H
#define CUTOVER_HEALTH_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "upstream.h"

struct config;
struct event_base;
struct health;

/* Starts checking CFG's upstreams at once, then every interval. */
struct health *health_new(struct event_base *base, const struct config *cfg);
/* A reload: the next check uses CFG (its interval, path, timeout). CFG
 * must outlive the checks running on the old one (control keeps every
 * config until exit). */
void health_set_config(struct health *h, const struct config *cfg);
void health_free(struct health *h);

/* 1 up, 0 down, -1 not checked yet (or the upstream is not defined). */
int health_up(const struct health *h, enum upstream_id id);
/* Seconds the last check took (-1: none yet). */
double health_latency(const struct health *h, enum upstream_id id);
/* Checks done and failed since the start. */
void health_counts(const struct health *h, enum upstream_id id, uint64_t *checks,
		   uint64_t *failed);
/* {"up": bool|null, "checked": RFC 3339|null, "since": RFC 3339|null,
 *  "latency_ms": n|null, "error": "step: cause"|null, "interval": s} */
json_t *health_json(const struct health *h, enum upstream_id id);

#endif
