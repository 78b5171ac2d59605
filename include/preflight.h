/* preflight: proves that an upstream can serve before traffic is switched
 * to it: its name resolves now (a fresh query), a TCP connection opens to
 * one of those addresses and, for https, the TLS handshake verifies the
 * certificate (chain, name, dates), all through the same upstream code as
 * the data path; then the configured health request answers 2xx within
 * health.timeout. Runs on the control thread's loop. */
#ifndef CUTOVER_PREFLIGHT_H
#define CUTOVER_PREFLIGHT_H

#include <jansson.h>
#include <stdbool.h>

#include "upstream.h"

struct dns_resolver;
struct event_base;
struct preflight;

/* Called once with the result: {"ok": bool, "upstream": "new", "steps":
 * [{"step": "resolve"|"connect"|"tls"|"health", "ok": bool, "detail": "..."}],
 * "error": "step: cause"}. RESULT is the callback's to keep or decref. */
typedef void (*preflight_done_fn)(void *arg, bool ok, json_t *result);

/* Starts the checks; never calls DONE before returning. */
struct preflight *preflight_start(struct event_base *base, struct dns_resolver *dns,
				  const struct upstream_conf *u, enum upstream_id id,
				  preflight_done_fn done, void *arg);

/* The same checks with the followed name's current answer instead of a
 * fresh query (what the data path connects to): the periodic health
 * check. Never calls DONE before returning. */
struct preflight *preflight_probe(struct event_base *base, const struct upstream_conf *u,
				  enum upstream_id id, preflight_done_fn done, void *arg);
/* Ends probe P without calling DONE (a shutdown). Not for preflight_start's:
 * its DNS lookup cannot be withdrawn. */
void preflight_cancel(struct preflight *p);

#endif
