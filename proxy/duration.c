/* duration: seconds to timeval, and elapsed milliseconds. */
#include "duration.h"

struct timeval duration_tv(double seconds)
{
	struct timeval tv = { .tv_sec = (time_t)seconds };
	tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
	return tv;
}

double duration_ms_between(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) * 1e3 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}
