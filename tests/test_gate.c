/* tests for proxy/gate.c: max_active admission (FIFO queue, bounded, with
 * queue_timeout), the hold's parked requests (cap, release by predicate in
 * arrival order, deadline), gate_leave and gate_free. The gate runs on the
 * test's own event base; waiters are embedded in a small request record, as
 * dispatch.c embeds them in struct request. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "gate.h"
#include "evloop.h"
#include "stats.h"

#define OLD UPSTREAM_OLD
#define NEW UPSTREAM_NEW

struct fx;

/* A request as the gate sees it: its waiter and what happened to it. */
struct req {
	struct gate_waiter wt;      /* first: the callback gets &wt */
	struct fx *f;
	int n;                      /* its name in the release log */
	/* What the release callback does. */
	bool admit_on_release;      /* gate_admit() again at once (dispatch_mode) */
	enum upstream_id admit_id;
	bool park_on_release;       /* park again at once (still on hold) */
	bool held;                  /* gate_release_parked()'s predicate */
	/* What happened. */
	int releases;
	bool timed_out;
	bool admitted_at_release;   /* wt->admitted inside the callback */
	enum gate_admission readmit;
	bool repark_ok;
};

struct fx {
	struct event_base *base;
	struct stats stats;
	struct gate *g;
	struct req r[8];
	int log[32];                /* request numbers, in release order */
	int n_log;
	int want_log;                /* what run_until_released() waits for */
};

static void on_release(struct gate_waiter *wt, bool timed_out);

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	assert_non_null(f);
	f->base = event_base_new();
	assert_non_null(f->base);
	f->g = gate_new(f->base, &f->stats);
	assert_non_null(f->g);
	for (int i = 0; i < 8; i++) {
		f->r[i].f = f;
		f->r[i].n = i;
		f->r[i].admit_id = OLD;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	gate_free(f->g);
	event_base_free(f->base);
	free(f);
	return 0;
}

static void on_release(struct gate_waiter *wt, bool timed_out)
{
	struct req *r = (struct req *)wt;
	struct fx *f = r->f;
	r->releases++;
	r->timed_out = timed_out;
	r->admitted_at_release = wt->admitted;
	if (f->n_log < 32)
		f->log[f->n_log++] = r->n;
	/* A waiter let in again and again is a livelock in the gate: stop
	 * taking part so that the test fails instead of hanging. */
	if (r->admit_on_release && r->releases <= 3)
		r->readmit = gate_admit(f->g, r->admit_id, wt, on_release);
	if (r->park_on_release) {
		r->park_on_release = false; /* once */
		r->repark_ok = gate_park(f->g, wt, 5, 8, on_release);
	}
}

static bool is_held(struct gate_waiter *wt)
{
	return ((struct req *)wt)->held;
}

/* Runs the loop for SECONDS (every due timer and pending activation runs). */
static void run_for(struct fx *f, double seconds)
{
	evloop_run(f->base, seconds, NULL, NULL);
}

static bool released_enough(const void *arg)
{
	const struct fx *f = arg;
	return f->n_log >= f->want_log;
}

/* Runs the loop until the release log has N entries (at most 3 s). */
static void run_until_released(struct fx *f, int n)
{
	f->want_log = n;
	if (!evloop_run(f->base, 3, released_enough, f))
		fail_msg("%d release(s) after 3 s, want %d", f->n_log, n);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static enum gate_admission admit(struct fx *f, int i)
{
	return gate_admit(f->g, f->r[i].admit_id, &f->r[i].wt, on_release);
}

/* ---- admission ---- */

/* max_active 2, queue 2: two in, two wait, the fifth is told busy; each
 * freed slot lets the oldest waiter in (FIFO), through its callback, with
 * wt->admitted set so that its gate_admit() passes the others still queued. */
static void test_admission_fifo_and_full(void **state)
{
	struct fx *f = *state;
	gate_set_limits(f->g, OLD, 2, 2, 10);
	for (int i = 0; i < 5; i++)
		f->r[i].admit_on_release = true;
	assert_int_equal(admit(f, 0), GATE_ADMITTED);
	assert_int_equal(admit(f, 1), GATE_ADMITTED);
	assert_int_equal(admit(f, 2), GATE_QUEUED);
	assert_int_equal(admit(f, 3), GATE_QUEUED);
	assert_int_equal(admit(f, 4), GATE_FULL);
	assert_int_equal(f->stats.active[OLD], 2);
	assert_int_equal(f->stats.queued[OLD], 2);
	assert_int_equal(f->stats.active[NEW], 0);
	assert_int_equal(f->stats.queued[NEW], 0);
	assert_true(gate_waiting(&f->r[2].wt));
	assert_false(gate_waiting(&f->r[4].wt));
	assert_false(gate_waiting(&f->r[0].wt));

	/* Nothing moves while every slot is taken. */
	run_for(f, 0.05);
	assert_int_equal(f->n_log, 0);

	gate_slot_free(f->g, OLD);
	run_until_released(f, 1);
	run_for(f, 0.02);
	assert_int_equal(f->n_log, 1);
	assert_int_equal(f->log[0], 2);                 /* the oldest first */
	assert_false(f->r[2].timed_out);
	assert_true(f->r[2].admitted_at_release);
	assert_int_equal(f->r[2].readmit, GATE_ADMITTED); /* passed r[3], still queued */
	assert_false(gate_waiting(&f->r[2].wt));
	assert_true(gate_waiting(&f->r[3].wt));
	assert_int_equal(f->stats.active[OLD], 2);
	assert_int_equal(f->stats.queued[OLD], 1);

	gate_slot_free(f->g, OLD);
	run_until_released(f, 2);
	assert_int_equal(f->log[1], 3);
	assert_int_equal(f->r[3].readmit, GATE_ADMITTED);
	assert_int_equal(f->stats.active[OLD], 2);
	assert_int_equal(f->stats.queued[OLD], 0);

	/* The queue has room again. */
	f->r[5].admit_on_release = true;
	assert_int_equal(admit(f, 5), GATE_QUEUED);
	assert_int_equal(f->stats.queued[OLD], 1);
	gate_leave(f->g, &f->r[5].wt);
	assert_int_equal(f->stats.queued[OLD], 0);
	gate_slot_free(f->g, OLD);
	gate_slot_free(f->g, OLD);
	assert_int_equal(f->stats.active[OLD], 0);
	run_for(f, 0.02);
	assert_int_equal(f->n_log, 2);                  /* r[5] left: no callback */
}

/* A slot freed while others wait goes to the oldest waiter, not to a new
 * request that arrives before the waiter was let in. */
static void test_newcomer_does_not_overtake_queue(void **state)
{
	struct fx *f = *state;
	gate_set_limits(f->g, OLD, 1, 4, 10);
	f->r[1].admit_on_release = true;
	assert_int_equal(admit(f, 0), GATE_ADMITTED);
	assert_int_equal(admit(f, 1), GATE_QUEUED);
	gate_slot_free(f->g, OLD);
	assert_int_equal(f->n_log, 0);                  /* released from the loop */
	assert_int_equal(admit(f, 2), GATE_QUEUED);     /* behind r[1] */
	run_until_released(f, 1);
	assert_int_equal(f->log[0], 1);
	assert_int_equal(f->r[1].readmit, GATE_ADMITTED);
	assert_true(gate_waiting(&f->r[2].wt));
	assert_int_equal(f->stats.active[OLD], 1);
	assert_int_equal(f->stats.queued[OLD], 1);
}

/* A waiter let in that does not take the slot (its mode changed: it went
 * elsewhere) leaves it to the next in line, in the same round. */
static void test_slot_not_taken_goes_to_next(void **state)
{
	struct fx *f = *state;
	gate_set_limits(f->g, OLD, 1, 4, 10);
	assert_int_equal(admit(f, 0), GATE_ADMITTED);
	assert_int_equal(admit(f, 1), GATE_QUEUED);     /* will not admit again */
	f->r[2].admit_on_release = true;
	assert_int_equal(admit(f, 2), GATE_QUEUED);
	f->r[3].admit_on_release = true;
	assert_int_equal(admit(f, 3), GATE_QUEUED);
	gate_slot_free(f->g, OLD);
	run_until_released(f, 2);
	run_for(f, 0.02);
	assert_int_equal(f->n_log, 2);
	assert_int_equal(f->log[0], 1);
	assert_int_equal(f->log[1], 2);
	assert_true(f->r[1].admitted_at_release);
	assert_int_equal(f->r[2].readmit, GATE_ADMITTED);
	assert_true(gate_waiting(&f->r[3].wt));         /* the slot is r[2]'s */
	assert_int_equal(f->stats.active[OLD], 1);
	assert_int_equal(f->stats.queued[OLD], 1);
}

/* queue_timeout: a waiter never let in is released with timed_out. */
static void test_queue_timeout(void **state)
{
	struct fx *f = *state;
	gate_set_limits(f->g, OLD, 1, 4, 0.1);
	assert_int_equal(admit(f, 0), GATE_ADMITTED);
	assert_int_equal(admit(f, 1), GATE_QUEUED);
	double t0 = now();
	run_until_released(f, 1);
	double took = now() - t0;
	assert_true(took > 0.08 && took < 1.5);
	assert_int_equal(f->log[0], 1);
	assert_true(f->r[1].timed_out);
	assert_false(f->r[1].admitted_at_release);
	assert_false(gate_waiting(&f->r[1].wt));
	assert_int_equal(f->stats.queued[OLD], 0);
	assert_int_equal(f->stats.active[OLD], 1);
}

/* max_active 0 is no limit; the upstreams' slots are counted apart. */
static void test_unlimited_and_per_upstream(void **state)
{
	struct fx *f = *state;
	gate_set_limits(f->g, OLD, 0, 0, 10);
	gate_set_limits(f->g, NEW, 1, 0, 10);
	for (int i = 0; i < 5; i++)
		assert_int_equal(admit(f, i), GATE_ADMITTED);
	assert_int_equal(f->stats.active[OLD], 5);
	f->r[5].admit_id = NEW;
	f->r[6].admit_id = NEW;
	assert_int_equal(admit(f, 5), GATE_ADMITTED);
	assert_int_equal(admit(f, 6), GATE_FULL);       /* queue 0: no waiting */
	assert_int_equal(f->stats.active[NEW], 1);
	assert_int_equal(f->stats.queued[NEW], 0);
}

/* Raising max_active (a reload) lets queued waiters in without a slot
 * being freed. */
static void test_set_limits_raise_admits_queued(void **state)
{
	struct fx *f = *state;
	gate_set_limits(f->g, OLD, 1, 4, 10);
	assert_int_equal(admit(f, 0), GATE_ADMITTED);
	for (int i = 1; i < 4; i++) {
		f->r[i].admit_on_release = true;
		assert_int_equal(admit(f, i), GATE_QUEUED);
	}
	gate_set_limits(f->g, OLD, 3, 4, 10);
	run_until_released(f, 2);
	run_for(f, 0.02);
	assert_int_equal(f->n_log, 2);
	assert_int_equal(f->log[0], 1);
	assert_int_equal(f->log[1], 2);
	assert_true(gate_waiting(&f->r[3].wt));
	assert_int_equal(f->stats.active[OLD], 3);
	assert_int_equal(f->stats.queued[OLD], 1);
}

/* ---- hold ---- */

/* gate_park caps the parked requests; gate_release_parked releases those
 * no longer held, oldest first, and leaves the others parked. */
static void test_park_cap_and_release_in_order(void **state)
{
	struct fx *f = *state;
	for (int i = 0; i < 4; i++)
		assert_true(gate_park(f->g, &f->r[i].wt, 5, 4, on_release));
	assert_false(gate_park(f->g, &f->r[4].wt, 5, 4, on_release));
	assert_false(gate_waiting(&f->r[4].wt));
	assert_int_equal(f->stats.parked, 4);
	f->r[1].held = true;
	gate_release_parked(f->g, is_held);
	assert_int_equal(f->n_log, 3);
	assert_int_equal(f->log[0], 0);
	assert_int_equal(f->log[1], 2);
	assert_int_equal(f->log[2], 3);
	for (int i = 0; i < 4; i++) {
		if (i == 1)
			continue;
		assert_false(f->r[i].timed_out);
		assert_false(f->r[i].admitted_at_release); /* a hold is no slot */
		assert_false(gate_waiting(&f->r[i].wt));
	}
	assert_true(gate_waiting(&f->r[1].wt));
	assert_int_equal(f->r[1].releases, 0);
	assert_int_equal(f->stats.parked, 1);
	/* There is room again under the cap. */
	assert_true(gate_park(f->g, &f->r[4].wt, 5, 2, on_release));
	assert_false(gate_park(f->g, &f->r[5].wt, 5, 2, on_release));
	f->r[1].held = false;
	gate_release_parked(f->g, is_held);
	assert_int_equal(f->n_log, 5);
	assert_int_equal(f->log[3], 1);
	assert_int_equal(f->log[4], 4);
	assert_int_equal(f->stats.parked, 0);
	/* Nothing is left to fire later. */
	run_for(f, 0.05);
	assert_int_equal(f->n_log, 5);
}

/* A waiter whose callback parks it again (its scope went back on hold) is
 * at the tail: the same gate_release_parked() call does not release it a
 * second time, whether it was the first or the last parked. */
static void test_repark_inside_release_not_released_twice(void **state)
{
	struct fx *f = *state;
	for (int i = 0; i < 3; i++)
		assert_true(gate_park(f->g, &f->r[i].wt, 5, 8, on_release));
	f->r[0].park_on_release = true;
	f->r[2].park_on_release = true;
	gate_release_parked(f->g, is_held);
	assert_int_equal(f->n_log, 3);
	assert_int_equal(f->log[0], 0);
	assert_int_equal(f->log[1], 1);
	assert_int_equal(f->log[2], 2);
	assert_int_equal(f->r[0].releases, 1);
	assert_int_equal(f->r[2].releases, 1);
	assert_true(f->r[0].repark_ok);
	assert_true(f->r[2].repark_ok);
	assert_true(gate_waiting(&f->r[0].wt));
	assert_true(gate_waiting(&f->r[2].wt));
	assert_false(gate_waiting(&f->r[1].wt));
	assert_int_equal(f->stats.parked, 2);
	/* The next call releases them, in their new order. */
	gate_release_parked(f->g, is_held);
	assert_int_equal(f->n_log, 5);
	assert_int_equal(f->log[3], 0);
	assert_int_equal(f->log[4], 2);
	assert_int_equal(f->stats.parked, 0);
}

/* The park deadline releases with timed_out; another waiter parked for
 * longer stays. */
static void test_park_deadline(void **state)
{
	struct fx *f = *state;
	assert_true(gate_park(f->g, &f->r[0].wt, 0.1, 8, on_release));
	assert_true(gate_park(f->g, &f->r[1].wt, 5, 8, on_release));
	double t0 = now();
	run_until_released(f, 1);
	double took = now() - t0;
	assert_true(took > 0.08 && took < 1.5);
	assert_int_equal(f->log[0], 0);
	assert_true(f->r[0].timed_out);
	assert_false(gate_waiting(&f->r[0].wt));
	assert_true(gate_waiting(&f->r[1].wt));
	assert_int_equal(f->stats.parked, 1);
}

/* gate_leave takes a waiter off its list without a callback, now or when
 * its deadline would have passed. */
static void test_leave_no_callback(void **state)
{
	struct fx *f = *state;
	gate_set_limits(f->g, OLD, 1, 4, 0.05);
	assert_int_equal(admit(f, 0), GATE_ADMITTED);
	assert_int_equal(admit(f, 1), GATE_QUEUED);
	assert_true(gate_park(f->g, &f->r[2].wt, 0.05, 8, on_release));
	gate_leave(f->g, &f->r[1].wt);
	gate_leave(f->g, &f->r[2].wt);
	assert_false(gate_waiting(&f->r[1].wt));
	assert_false(gate_waiting(&f->r[2].wt));
	assert_int_equal(f->stats.queued[OLD], 0);
	assert_int_equal(f->stats.parked, 0);
	gate_slot_free(f->g, OLD);
	assert_int_equal(f->stats.active[OLD], 0);
	run_for(f, 0.2);
	assert_int_equal(f->n_log, 0);
	/* Leaving twice, or a waiter never queued, is harmless. */
	gate_leave(f->g, &f->r[1].wt);
	gate_leave(f->g, &f->r[3].wt);
	assert_int_equal(f->stats.queued[OLD], 0);
	assert_int_equal(f->stats.parked, 0);
}

/* gate_free with waiters queued and parked frees their timers (ASan and
 * LeakSanitizer watch) and calls nobody back. */
static void test_free_with_waiters(void **state)
{
	struct fx *f = *state;
	gate_set_limits(f->g, OLD, 1, 4, 10);
	gate_set_limits(f->g, NEW, 1, 4, 10);
	assert_int_equal(admit(f, 0), GATE_ADMITTED);
	assert_int_equal(admit(f, 1), GATE_QUEUED);
	assert_int_equal(admit(f, 2), GATE_QUEUED);
	f->r[3].admit_id = NEW;
	f->r[4].admit_id = NEW;
	assert_int_equal(admit(f, 3), GATE_ADMITTED);
	assert_int_equal(admit(f, 4), GATE_QUEUED);
	assert_true(gate_park(f->g, &f->r[5].wt, 10, 8, on_release));
	assert_true(gate_park(f->g, &f->r[6].wt, 10, 8, on_release));
	gate_slot_free(f->g, OLD);                      /* an admission pending too */
	gate_free(f->g);
	f->g = NULL;
	for (int i = 1; i < 7; i++) {
		assert_false(gate_waiting(&f->r[i].wt));
		assert_null(f->r[i].wt.timer);
	}
	assert_int_equal(f->stats.queued[OLD], 0);
	assert_int_equal(f->stats.queued[NEW], 0);
	assert_int_equal(f->stats.parked, 0);
	run_for(f, 0.05);
	assert_int_equal(f->n_log, 0);
}

int main(void)
{
#define TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		TEST(test_admission_fifo_and_full),
		TEST(test_newcomer_does_not_overtake_queue),
		TEST(test_slot_not_taken_goes_to_next),
		TEST(test_queue_timeout),
		TEST(test_unlimited_and_per_upstream),
		TEST(test_set_limits_raise_admits_queued),
		TEST(test_park_cap_and_release_in_order),
		TEST(test_repark_inside_release_not_released_twice),
		TEST(test_park_deadline),
		TEST(test_leave_no_callback),
		TEST(test_free_with_waiters),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
