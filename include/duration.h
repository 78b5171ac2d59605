/* duration: seconds as config gives them, turned into what libc and
 * libevent take. */
#ifndef CUTOVER_DURATION_H
#define CUTOVER_DURATION_H

#include <sys/time.h>
#include <time.h>

struct timeval duration_tv(double seconds);
double duration_ms_between(const struct timespec *a, const struct timespec *b);

#endif
