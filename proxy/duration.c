/* duration: conversions between seconds and timevals/timespecs. */
#include "duration.h"

#include <limits.h>

struct timeval duration_tv(double seconds)
{
	if (!(seconds > 0))          /* also NaN */
		return (struct timeval){ 0, 0 };
	if (seconds > (double)INT_MAX)
		seconds = (double)INT_MAX;
	struct timeval tv = { .tv_sec = (time_t)seconds };
	/* Rounded, not truncated: 0.3 s must not become 299999 us. */
	tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6 + 0.5);
	if (tv.tv_usec >= 1000000) {
		tv.tv_sec++;
		tv.tv_usec -= 1000000;
	}
	return tv;
}

double duration_ms_between(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) * 1e3 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}
