/* when: the times an operator gives to `switch --at` and `maintenance
 * --until`: RFC 3339 or an offset from now, within a bounded range. */
#ifndef CUTOVER_WHEN_H
#define CUTOVER_WHEN_H

#include <stdbool.h>
#include <time.h>

/* How far ahead an operator may schedule: a year, leap day included. */
#define WHEN_MAX_AHEAD (366 * 86400)

/* "2026-12-01T02:00:00Z", "2026-12-01T04:00:00+02:00" (years 1970..9999)
 * or "+10m" / "+90s" / "+2h" / "+1d" relative to NOW, at most
 * WHEN_MAX_AHEAD. FUTURE (an operator's --at or --until): an RFC 3339 time
 * must also lie in [NOW, NOW + WHEN_MAX_AHEAD]; without it (a stored
 * schedule read back) any time of those years is read. Returns 0, or -1
 * with *WHY (WHY may be NULL) the end of a sentence "'TEXT' is WHY": "in
 * the past", "more than 366 days ahead", "not a time (...)". */
int when_parse(const char *text, time_t now, bool future, time_t *out, const char **why);

#endif
