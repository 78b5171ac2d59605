/* worker: one thread running one event loop with its own listeners,
 * connections, upstream pools, gate and counters. */
#include "worker.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "conf.h"
#include "conn.h"
#include "dispatch.h"
#include "duration.h"
#include "gate.h"
#include "intake.h"
#include "listener.h"
#include "log.h"
#include "replay.h"
#include "spool_waiter.h"
#include "stats.h"
#include "tunnel.h"
#include "upstream.h"

struct worker {
	int id;
	pthread_t thread;
	struct event_base *base;
	const struct config *cfg;
	struct listener_set *listeners;
	struct conn_env env;             /* what its connections see */
	struct stats stats;
	bool stopping;
	bool paused;                     /* listeners paused at max_connections */
	/* The control thread talks to a worker only through this eventfd and
	 * three flags, so libevent needs no locks (each loop is single-threaded). */
	int notify_fd;
	struct event *notify_ev;
	int stop_requested;              /* atomic */
	const struct config *pending_cfg; /* atomic: a reload to take over */
	int state_changed;               /* atomic */
	struct upstream_pool **retired;  /* pools of earlier configs, freed at exit */
	size_t n_retired;
	struct event *drain_ev;          /* drain timeout */
	struct event *spool_ev;          /* env.spool_waiter has events */
	struct replay *replay;           /* worker 0's, with a spool */
};

int worker_conf_parse(struct conf_reader *r, const config_setting_t *root, struct config *cfg)
{
	long long n = 1;             /* the default: one worker thread */
	int rc = conf_get_int(r, root, "workers", 1, 64, &n);
	cfg->workers = (int)n;
	return rc < 0 ? -1 : 0;
}

const char *worker_conf_restart_key(int a, int b)
{
	return a != b ? "workers" : NULL;
}

static void drain_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct worker *w = arg;
	if (w->env.n_conns)
		log_warn("worker %d: drain timeout, closing %zu connection(s)", w->id,
			 w->env.n_conns);
	conn_free_all(&w->env);
	event_base_loopbreak(w->base);
}

static void worker_stop(struct worker *w)
{
	if (w->stopping)
		return;
	w->stopping = true;
	replay_free(w->replay); /* a record cut short stays pending */
	w->replay = NULL;
	listener_close_all(w->listeners);
	w->listeners = NULL;
	conn_shutdown_all(&w->env);
	if (w->env.n_conns == 0) {
		event_base_loopbreak(w->base);
		return;
	}
	struct timeval tv = duration_tv(w->cfg->limits->drain_timeout);
	evtimer_add(w->drain_ev, &tv);
}

/* A connection was freed: accept again below max_connections; end the
 * loop when a stop has drained. */
static void conn_closed(void *arg)
{
	struct worker *w = arg;
	if (w->stopping) {
		if (w->env.n_conns == 0)
			event_base_loopbreak(w->base);
		return;
	}
	if (w->paused && w->env.n_conns < w->cfg->limits->max_connections) {
		w->paused = false;
		listener_pause_all(w->listeners, false);
	}
}

static void accept_cb(void *arg, int fd, const struct sockaddr *peer, socklen_t len, size_t index)
{
	struct worker *w = arg;
	/* The worker's current config: a reload may have brought new
	 * certificates for this address. */
	if (!conn_new(&w->env, fd, peer, len, &w->cfg->listen[index])) {
		close(fd);
		return;
	}
	if (w->env.n_conns >= w->cfg->limits->max_connections && !w->paused) {
		w->paused = true;
		listener_pause_all(w->listeners, true);
		log_warn("worker %d: max_connections (%u) reached, not accepting", w->id,
			 w->cfg->limits->max_connections);
	}
}

/* This worker's share of each upstream's max_active and queue. */
static void worker_set_limits(struct worker *w, const struct config *cfg)
{
	unsigned n = (unsigned)cfg->workers;
	for (int i = 0; i < UPSTREAM_COUNT; i++) {
		const struct upstream_conf *u = &cfg->upstream[i];
		gate_set_limits(w->env.gate, (enum upstream_id)i,
				u->max_active ? (u->max_active + n - 1) / n : 0,
				(u->queue + n - 1) / n, u->queue_timeout);
	}
}

static void worker_take_config(struct worker *w, const struct config *cfg)
{
	struct upstream_pool **list =
		realloc(w->retired, (w->n_retired + UPSTREAM_COUNT) * sizeof(*list));
	if (!list) {
		log_error("worker %d: out of memory, reload not taken", w->id);
		return;
	}
	w->retired = list;
	for (int i = 0; i < UPSTREAM_COUNT; i++) {
		struct upstream_pool *p = upstream_pool_new(w->base, &cfg->upstream[i],
							    (enum upstream_id)i, &w->stats);
		if (!p) {
			log_error("worker %d: out of memory, reload not taken", w->id);
			return;
		}
		upstream_pool_retire(w->env.pools[i]);
		w->retired[w->n_retired++] = w->env.pools[i];
		w->env.pools[i] = p;
	}
	w->cfg = cfg;
	w->env.cfg = cfg;
	worker_set_limits(w, cfg);
}

static void notify_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct worker *w = arg;
	uint64_t n;
	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_warn("worker %d: notify: %s", w->id, strerror(errno));
	if (__atomic_exchange_n(&w->state_changed, 0, __ATOMIC_ACQ_REL)) {
		dispatch_state_changed(&w->env);
		if (w->replay)
			replay_kick(w->replay);
	}
	const struct config *next = __atomic_exchange_n(&w->pending_cfg, NULL, __ATOMIC_ACQ_REL);
	if (next)
		worker_take_config(w, next);
	if (__atomic_load_n(&w->stop_requested, __ATOMIC_ACQUIRE))
		worker_stop(w);
}

static void notify(struct worker *w)
{
	uint64_t one = 1;
	if (write(w->notify_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_error("worker %d: cannot notify: %s", w->id, strerror(errno));
}

static void spool_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct worker *w = arg;
	struct spool_event ev;
	while (spool_waiter_next(w->env.spool_waiter, &ev))
		intake_event(&ev);
}

void worker_set_config(struct worker *w, const struct config *cfg)
{
	__atomic_store_n(&w->pending_cfg, cfg, __ATOMIC_RELEASE);
	notify(w);
}

void worker_notify_state(struct worker *w)
{
	__atomic_store_n(&w->state_changed, 1, __ATOMIC_RELEASE);
	notify(w);
}

struct worker *worker_new(int id, const struct config *cfg, struct spool_store *spool)
{
	struct worker *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->id = id;
	w->cfg = cfg;
	w->notify_fd = -1;
	/* epoll changelist: an event added and deleted again within one loop
	 * round costs no epoll_ctl at all. */
	struct event_config *ec = event_config_new();
	if (ec)
		event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	w->base = ec ? event_base_new_with_config(ec) : NULL;
	if (ec)
		event_config_free(ec);
	if (!w->base)
		goto fail;
	w->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->notify_fd < 0)
		goto fail;
	w->notify_ev = event_new(w->base, w->notify_fd, EV_READ | EV_PERSIST, notify_cb, w);
	w->drain_ev = evtimer_new(w->base, drain_timeout_cb, w);
	w->env.gate = gate_new(w->base, &w->stats);
	w->env.access_log = log_batch_new(w->base);
	if (!w->notify_ev || event_add(w->notify_ev, NULL) < 0 || !w->drain_ev || !w->env.gate ||
	    !w->env.access_log)
		goto fail;
	if (spool) {
		w->env.spool = spool;
		w->env.spool_waiter = spool_waiter_new();
		w->spool_ev = w->env.spool_waiter
				      ? event_new(w->base, spool_waiter_fd(w->env.spool_waiter),
						  EV_READ | EV_PERSIST, spool_cb, w)
				      : NULL;
		if (!w->spool_ev || event_add(w->spool_ev, NULL) < 0)
			goto fail;
	}
	w->env.base = w->base;
	w->env.cfg = cfg;
	w->env.stats = &w->stats;
	w->env.dispatch = dispatch_request;
	w->env.closed = conn_closed;
	w->env.closed_arg = w;
	for (int i = 0; i < UPSTREAM_COUNT; i++) {
		w->env.pools[i] = upstream_pool_new(w->base, &cfg->upstream[i], (enum upstream_id)i,
						    &w->stats);
		if (!w->env.pools[i])
			goto fail;
	}
	worker_set_limits(w, cfg);
	if (spool && id == 0) {
		/* Before any worker takes a request: the data path's "spool not
		 * empty" must be true from the start. */
		replay_count_pending(spool);
		if (!(w->replay = replay_new(&w->env)))
			goto fail;
	}
	w->listeners = listener_open_all(w->base, cfg->listen, cfg->n_listen, cfg->workers > 1,
					 id == 0, accept_cb, w);
	if (!w->listeners)
		goto fail;
	return w;
fail:
	worker_free(w);
	return NULL;
}

void worker_free(struct worker *w)
{
	if (!w)
		return;
	if (w->notify_fd >= 0)
		close(w->notify_fd);
	if (w->base) {
		replay_free(w->replay);
		conn_free_all(&w->env);
		if (w->spool_ev)
			event_free(w->spool_ev);
		if (w->env.spool_waiter) {
			/* The store was flushed: the last answers of requests gone
			 * meanwhile are here, and free what waited for them. */
			struct spool_event ev;
			while (spool_waiter_next(w->env.spool_waiter, &ev))
				intake_event(&ev);
			spool_waiter_free(w->env.spool_waiter);
		}
		gate_free(w->env.gate);
		listener_close_all(w->listeners);
		for (int i = 0; i < UPSTREAM_COUNT; i++)
			upstream_pool_free(w->env.pools[i]);
		for (size_t i = 0; i < w->n_retired; i++)
			upstream_pool_free(w->retired[i]);
		free(w->retired);
		if (w->notify_ev)
			event_free(w->notify_ev);
		if (w->drain_ev)
			event_free(w->drain_ev);
		/* Last: the connections and spool answers above may log. */
		log_batch_free(w->env.access_log);
		event_base_free(w->base);
	}
	free(w);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	/* Signals are the control thread's business. */
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	event_base_dispatch(w->base);
	/* A stop: the lines so far are out before the main thread goes on. */
	if (w->env.access_log)
		log_batch_flush(w->env.access_log);
	tunnel_thread_exit();
	return NULL;
}

int worker_start(struct worker *w)
{
	return pthread_create(&w->thread, NULL, worker_main, w) == 0 ? 0 : -1;
}

void worker_request_stop(struct worker *w)
{
	__atomic_store_n(&w->stop_requested, 1, __ATOMIC_RELEASE);
	notify(w);
}

void worker_join(struct worker *w)
{
	pthread_join(w->thread, NULL);
}

void worker_stats_add(const struct worker *w, struct stats *sum)
{
	stats_sum(sum, &w->stats);
}
