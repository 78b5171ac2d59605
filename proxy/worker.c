/* worker: one thread running one event loop with its own listeners,
 * connections and upstream pools. */
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
#include "listener.h"
#include "log.h"

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

static struct timeval tv_of(double seconds)
{
	struct timeval tv = { .tv_sec = (time_t)seconds };
	tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
	return tv;
}

static void drain_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct worker *w = arg;
	if (w->n_conns)
		log_warn("worker %d: drain timeout, closing %zu connection(s)", w->id, w->n_conns);
	conn_free_all(w);
	event_base_loopbreak(w->base);
}

static void worker_stop(struct worker *w)
{
	if (w->stopping)
		return;
	w->stopping = true;
	listener_close_all(w);
	conn_shutdown_all(w);
	if (w->n_conns == 0) {
		event_base_loopbreak(w->base);
		return;
	}
	struct timeval tv = tv_of(w->cfg->limits->drain_timeout);
	evtimer_add(w->drain_ev, &tv);
}

void worker_conn_closed(struct worker *w)
{
	if (w->stopping) {
		if (w->n_conns == 0)
			event_base_loopbreak(w->base);
		return;
	}
	if (w->paused && w->n_conns < w->cfg->limits->max_connections)
		listener_pause_all(w, false);
}

static void admit_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_admit_queued(arg);
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
							    (enum upstream_id)i);
		if (!p) {
			log_error("worker %d: out of memory, reload not taken", w->id);
			return;
		}
		upstream_pool_retire(w->pools[i]);
		w->retired[w->n_retired++] = w->pools[i];
		w->pools[i] = p;
	}
	w->cfg = cfg;
}

static void notify_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct worker *w = arg;
	uint64_t n;
	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_warn("worker %d: notify: %s", w->id, strerror(errno));
	if (__atomic_exchange_n(&w->state_changed, 0, __ATOMIC_ACQ_REL))
		conn_state_changed(w);
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

struct worker *worker_new(int id, const struct config *cfg)
{
	struct worker *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->id = id;
	w->cfg = cfg;
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
	event_add(w->notify_ev, NULL);
	w->drain_ev = evtimer_new(w->base, drain_timeout_cb, w);
	w->admit_ev = event_new(w->base, -1, 0, admit_cb, w);
	for (int i = 0; i < UPSTREAM_COUNT; i++)
		w->pools[i] = upstream_pool_new(w->base, &cfg->upstream[i], (enum upstream_id)i);
	if (listener_open_all(w) < 0)
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
	if (w->notify_fd > 0)
		close(w->notify_fd);
	if (w->base) {
		conn_free_all(w);
		listener_close_all(w);
		for (int i = 0; i < UPSTREAM_COUNT; i++)
			upstream_pool_free(w->pools[i]);
		for (size_t i = 0; i < w->n_retired; i++)
			upstream_pool_free(w->retired[i]);
		free(w->retired);
		if (w->notify_ev)
			event_free(w->notify_ev);
		if (w->drain_ev)
			event_free(w->drain_ev);
		if (w->admit_ev)
			event_free(w->admit_ev);
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
