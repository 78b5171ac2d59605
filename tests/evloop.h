/* evloop.h: running a test's libevent loop with a bound, for the unit
 * tests of modules that work on a loop (gate, httpclient). Header-only,
 * like tmpdir.h. */
#ifndef CUTOVER_TESTS_EVLOOP_H
#define CUTOVER_TESTS_EVLOOP_H

#include <stdbool.h>

#include <event2/event.h>

#include "duration.h"

static inline void evloop_expired(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(bool *)arg = true;
}

/* Runs BASE until DONE(ARG) says so (never, when DONE is NULL) or SECONDS
 * passed; returns DONE(ARG) (false without DONE). */
static inline bool evloop_run(struct event_base *base, double seconds,
			      bool (*done)(const void *), const void *arg)
{
	bool expired = false;
	struct event *t = evtimer_new(base, evloop_expired, &expired);
	if (!t)
		return false;
	struct timeval tv = duration_tv(seconds);
	evtimer_add(t, &tv);
	while (!expired && !(done && done(arg)))
		event_base_loop(base, EVLOOP_ONCE);
	event_free(t);
	return done && done(arg);
}

#endif
