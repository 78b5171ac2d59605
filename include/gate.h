/* gate: where a worker's requests wait before an action runs: parked by a
 * hold (until the scope leaves hold or the hold's deadline passes), or
 * queued for one of an upstream's max_active slots (FIFO, bounded,
 * queue_timeout). The gate owns its lists, timers and the slot count; a
 * waiter is embedded in the caller's request, and is released through its
 * callback with the request's head and routing untouched, so it goes on
 * from where it stopped. */
#ifndef CUTOVER_GATE_H
#define CUTOVER_GATE_H

#include <stdbool.h>

#include "upstream.h"

struct event;
struct event_base;
struct gate;
struct stats;

struct gate_waiter;
/* TIMED_OUT: the waiter's own deadline passed (hold deadline, queue
 * timeout); otherwise the hold ended for it or a slot is free (then its
 * next gate_admit() for any upstream passes the queue). */
typedef void (*gate_release_fn)(struct gate_waiter *wt, bool timed_out);

struct gate_waiter {               /* the gate's; zero it before first use */
	struct gate *gate;
	struct gate_waiter *prev, *next;
	struct event *timer;
	int list;                      /* 0 none, else 1 + upstream id, or GATE_LIST_HOLD */
	bool admitted;                 /* released for a free slot */
	gate_release_fn release;
};

/* Counts (parked, queued, active) live in STATS, the worker's (required). */
struct gate *gate_new(struct event_base *base, struct stats *stats);
void gate_free(struct gate *g);

/* This worker's share of an upstream's limits (from its config, taken
 * again after a reload). MAX_ACTIVE 0 = unlimited. */
void gate_set_limits(struct gate *g, enum upstream_id id, unsigned max_active, unsigned queue,
		     double queue_timeout);

/* ---- hold ---- */

/* Parks WT for at most SECONDS; false (not parked) when MAX_PARKED
 * requests are parked already. */
bool gate_park(struct gate *g, struct gate_waiter *wt, double seconds, unsigned max_parked,
	       gate_release_fn release);
/* The modes changed: every parked waiter for which HELD says false is
 * released, in arrival order. A release callback may park its own waiter
 * again (it goes to the tail, not seen again in this call) but must not
 * take another waiter off the list. */
void gate_release_parked(struct gate *g, bool (*held)(struct gate_waiter *wt));

/* ---- max_active admission ---- */

enum gate_admission {
	GATE_ADMITTED,                 /* a slot is taken: call gate_slot_free() when done */
	GATE_QUEUED,                   /* WT waits for a slot */
	GATE_FULL,                     /* the queue is full: answer busy */
};
enum gate_admission gate_admit(struct gate *g, enum upstream_id id, struct gate_waiter *wt,
			       gate_release_fn release);
void gate_slot_free(struct gate *g, enum upstream_id id);

/* ---- both ---- */

bool gate_waiting(const struct gate_waiter *wt);
/* Takes WT off its list without releasing it (its connection is going). */
void gate_leave(struct gate *g, struct gate_waiter *wt);

#endif
