/* worker: one thread, one libevent loop, its own listeners, client
 * connections, upstream pools, gate (hold, admission) and counters. A
 * request lives on one worker. The control thread talks to a worker only
 * through the thread-safe calls below. */
#ifndef CUTOVER_WORKER_H
#define CUTOVER_WORKER_H

#include <libconfig.h>

struct conf_reader;
struct config;
struct spool_store;
struct stats;
struct worker;

/* Parses the top-level "workers" scalar (default 1); always called. */
int worker_conf_parse(struct conf_reader *r, const config_setting_t *root, struct config *cfg);
/* "workers" if A and B differ (threads are started once), else NULL. */
const char *worker_conf_restart_key(int a, int b);

/* SPOOL (may be NULL) must outlive the worker; each worker watches its
 * own waiter for the records its connections write. */
struct worker *worker_new(int id, const struct config *cfg, struct spool_store *spool);
void worker_free(struct worker *w);
int worker_start(struct worker *w);              /* spawns the thread */
void worker_request_stop(struct worker *w);      /* thread-safe */
void worker_notify_state(struct worker *w);      /* thread-safe */
/* Hands CFG (kept alive by the caller) to W: new connections and each
 * connection's next request use it; its upstream pools are replaced, the
 * old ones finish the exchanges they serve. Thread-safe. */
void worker_set_config(struct worker *w, const struct config *cfg);
void worker_join(struct worker *w);
/* Adds W's counters into SUM (thread-safe: relaxed reads). */
void worker_stats_add(const struct worker *w, struct stats *sum);

#endif
