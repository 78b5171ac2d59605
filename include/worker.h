/* worker: one thread, one libevent loop, its own listeners, client
 * connections and upstream pools. A request lives on one worker. */
#ifndef CUTOVER_WORKER_H
#define CUTOVER_WORKER_H

#include <libconfig.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "upstream.h"

struct conf_reader;
struct config;
struct conn;
struct event;
struct event_base;
struct listener;

struct worker {
	int id;
	pthread_t thread;
	struct event_base *base;
	const struct config *cfg;
	struct listener **listeners;
	size_t n_listeners;
	struct upstream_pool *pools[UPSTREAM_COUNT];
	struct conn *conns;          /* all client connections (list) */
	size_t n_conns;
	bool stopping;
	bool paused;                 /* listeners paused at max_connections */
	/* The control thread talks to a worker only through this eventfd and
	 * two flags, so libevent needs no locks (each loop is single-threaded). */
	int notify_fd;
	struct event *notify_ev;
	int stop_requested;          /* atomic */
	const struct config *pending_cfg;    /* atomic: a reload to take over */
	struct upstream_pool **retired;      /* pools of earlier configs, freed at exit */
	size_t n_retired;
	int state_changed;           /* atomic */
	struct event *drain_ev;      /* drain timeout */
	struct conn *parked;         /* requests parked by hold, oldest first */
	struct conn *parked_tail;
	size_t n_parked;             /* read by the control thread (atomic) */
	/* admission: requests forwarded to each upstream now, and those waiting
	 * for a slot (max_active is shared out evenly between workers) */
	unsigned active[UPSTREAM_COUNT];     /* read by the control thread (atomic) */
	struct conn *queue[UPSTREAM_COUNT], *queue_tail[UPSTREAM_COUNT];
	size_t n_queued[UPSTREAM_COUNT];     /* read by the control thread (atomic) */
	struct event *admit_ev;      /* a slot was freed: let queued requests in */
};

/* Parses the top-level "workers" scalar (default 1); always called. */
int worker_conf_parse(struct conf_reader *r, const config_setting_t *root, struct config *cfg);
/* "workers" if the counts differ, else NULL: the threads start once. */
const char *worker_conf_restart_key(int a, int b);

struct worker *worker_new(int id, const struct config *cfg);
void worker_free(struct worker *w);
int worker_start(struct worker *w);              /* spawns the thread */
void worker_request_stop(struct worker *w);      /* thread-safe */
void worker_notify_state(struct worker *w);      /* thread-safe */
/* Hands CFG (kept alive by the caller) to W: new connections and each
 * connection's next request use it; its upstream pools are replaced, the
 * old ones finish the exchanges they serve. Thread-safe. */
void worker_set_config(struct worker *w, const struct config *cfg);
void worker_join(struct worker *w);

/* Called by conn.c after it unlinked a connection from w->conns: resumes
 * accepting below max_connections, ends the loop when a stop has drained. */
void worker_conn_closed(struct worker *w);

#endif
