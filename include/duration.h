/* duration: seconds as the config and the API give them (doubles) turned
 * into what libevent and the clocks use, in one place. */
#ifndef CUTOVER_DURATION_H
#define CUTOVER_DURATION_H

#include <sys/time.h>
#include <time.h>

/* SECONDS as a timeval for libevent, to the nearest microsecond. A negative
 * or NaN duration is 0 (a timer due now); a huge one is capped at INT_MAX
 * seconds rather than overflowing time_t. */
struct timeval duration_tv(double seconds);

/* Milliseconds from A to B (negative when B is before A), for two readings
 * of the same clock. */
double duration_ms_between(const struct timespec *a, const struct timespec *b);

#endif
