/* gate: the hold's parked requests and the admission queues of a worker. */
#include "gate.h"

#include <stdint.h>
#include <stdlib.h>

#include <event2/event.h>

#include "duration.h"
#include "stats.h"

#define GATE_LIST_HOLD (UPSTREAM_COUNT + 1)
#define GATE_LISTS (UPSTREAM_COUNT + 2)    /* index 0 unused: "on no list" */

struct gate_list {
	struct gate_waiter *head, *tail;
};

struct gate {
	struct event_base *base;
	struct stats *stats;
	struct gate_list lists[GATE_LISTS];
	unsigned max_active[UPSTREAM_COUNT];   /* this worker's share; UINT32_MAX = no limit */
	unsigned queue[UPSTREAM_COUNT];
	double queue_timeout[UPSTREAM_COUNT];
	struct event *admit_ev;                /* a slot was freed: let queued requests in */
};

static void admit_cb(evutil_socket_t fd, short what, void *arg);

struct gate *gate_new(struct event_base *base, struct stats *stats)
{
	struct gate *g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->base = base;
	g->stats = stats;
	g->admit_ev = event_new(base, -1, 0, admit_cb, g);
	if (!g->admit_ev) {
		free(g);
		return NULL;
	}
	for (int i = 0; i < UPSTREAM_COUNT; i++)
		g->max_active[i] = UINT32_MAX;
	return g;
}

void gate_free(struct gate *g)
{
	if (!g)
		return;
	for (int l = 1; l < GATE_LISTS; l++)
		while (g->lists[l].head)
			gate_leave(g, g->lists[l].head);
	event_free(g->admit_ev);
	free(g);
}

void gate_set_limits(struct gate *g, enum upstream_id id, unsigned max_active, unsigned queue,
		     double queue_timeout)
{
	g->max_active[id] = max_active ? max_active : UINT32_MAX;
	g->queue[id] = queue;
	g->queue_timeout[id] = queue_timeout;
	event_active(g->admit_ev, 0, 0); /* a larger share may let some in */
}

static void count(struct gate *g, int list, int delta)
{
	if (list == GATE_LIST_HOLD)
		STATS_ADD(g->stats, parked, delta);
	else
		STATS_ADD(g->stats, queued[list - 1], delta);
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg);

static bool enter(struct gate *g, struct gate_waiter *wt, int list, double seconds,
		  gate_release_fn release)
{
	if (!wt->timer)
		wt->timer = evtimer_new(g->base, timeout_cb, wt);
	if (!wt->timer)
		return false;
	struct gate_list *l = &g->lists[list];
	wt->gate = g;
	wt->list = list;
	wt->admitted = false;
	wt->release = release;
	wt->prev = l->tail;
	wt->next = NULL;
	if (l->tail)
		l->tail->next = wt;
	else
		l->head = wt;
	l->tail = wt;
	count(g, list, +1);
	struct timeval tv = duration_tv(seconds);
	evtimer_add(wt->timer, &tv);
	return true;
}

void gate_leave(struct gate *g, struct gate_waiter *wt)
{
	if (wt->list) {
		struct gate_list *l = &g->lists[wt->list];
		if (wt->prev)
			wt->prev->next = wt->next;
		else
			l->head = wt->next;
		if (wt->next)
			wt->next->prev = wt->prev;
		else
			l->tail = wt->prev;
		count(g, wt->list, -1);
		wt->prev = wt->next = NULL;
		wt->list = 0;
	}
	if (wt->timer) {
		event_free(wt->timer);
		wt->timer = NULL;
	}
}

bool gate_waiting(const struct gate_waiter *wt)
{
	return wt->list != 0;
}

static void release(struct gate *g, struct gate_waiter *wt, bool timed_out, bool admitted)
{
	gate_release_fn fn = wt->release;
	gate_leave(g, wt);
	wt->admitted = admitted;
	fn(wt, timed_out);
}

/* ---- hold ---- */

bool gate_park(struct gate *g, struct gate_waiter *wt, double seconds, unsigned max_parked,
	       gate_release_fn release)
{
	if ((uint64_t)g->stats->parked >= max_parked)
		return false;
	return enter(g, wt, GATE_LIST_HOLD, seconds, release);
}

void gate_release_parked(struct gate *g, bool (*held)(struct gate_waiter *wt))
{
	/* In arrival order; a released request may park again at the tail, so
	 * stop at the current tail. */
	struct gate_list *l = &g->lists[GATE_LIST_HOLD];
	struct gate_waiter *wt = l->head, *last = l->tail;
	while (wt) {
		struct gate_waiter *next = wt == last ? NULL : wt->next;
		if (!held(wt))
			release(g, wt, false, false);
		wt = next;
	}
}

/* ---- admission ---- */

enum gate_admission gate_admit(struct gate *g, enum upstream_id id, struct gate_waiter *wt,
			       gate_release_fn release_fn)
{
	bool first = wt->admitted;
	wt->admitted = false;
	struct gate_list *q = &g->lists[1 + id];
	if ((uint64_t)g->stats->active[id] < g->max_active[id] && (!q->head || first)) {
		STATS_ADD(g->stats, active[id], +1);
		return GATE_ADMITTED;
	}
	if ((uint64_t)g->stats->queued[id] >= g->queue[id])
		return GATE_FULL;
	if (!enter(g, wt, 1 + id, g->queue_timeout[id], release_fn))
		return GATE_FULL;
	return GATE_QUEUED;
}

void gate_slot_free(struct gate *g, enum upstream_id id)
{
	STATS_ADD(g->stats, active[id], -1);
	if (g->lists[1 + id].head)
		event_active(g->admit_ev, 0, 0);
}

static void admit_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct gate *g = arg;
	for (int id = 0; id < UPSTREAM_COUNT; id++) {
		struct gate_list *q = &g->lists[1 + id];
		/* At most those waiting now: one released that queues again (its
		 * scope's mode changed) must not make this loop go round forever. */
		int64_t n = g->stats->queued[id];
		while (n-- > 0 && q->head && (uint64_t)g->stats->active[id] < g->max_active[id])
			release(g, q->head, false, true);
	}
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct gate_waiter *wt = arg;
	release(wt->gate, wt, true, false);
}
