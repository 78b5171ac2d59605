/* when: the times an operator gives (--at, --until), read strictly and
 * bounded so that no arithmetic step can overflow. */
#include "when.h"

#include <ctype.h>
#include <stdint.h>

/* N digits at *P as a number; false if any is not a digit. */
static bool read_digits(const char **p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return false;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return true;
}

static bool leap_year(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* "+N[.F][s|m|h|d]" into seconds, refused past WHEN_MAX_AHEAD
 * before any multiplication, so nothing can overflow. */
static int parse_offset(const char *p, int64_t *secs, const char **why)
{
	int64_t whole = 0;
	bool big = false;
	const char *digits = p;
	for (; isdigit((unsigned char)*p); p++) {
		whole = whole * 10 + (*p - '0');
		if (whole > WHEN_MAX_AHEAD) {
			big = true;
			whole = WHEN_MAX_AHEAD + 1; /* stays small while the digits go on */
		}
	}
	if (p == digits)
		goto syntax;
	double frac = 0, scale = 1;
	if (*p == '.') {
		const char *f = ++p;
		for (; isdigit((unsigned char)*p); p++)
			if (scale < 1e9) {
				scale *= 10;
				frac += (*p - '0') / scale;
			}
		if (p == f)
			goto syntax;
	}
	int64_t mult;
	switch (*p) {
	case '\0': case 's': mult = 1; break;
	case 'm': mult = 60; break;
	case 'h': mult = 3600; break;
	case 'd': mult = 86400; break;
	default: goto syntax;
	}
	if (*p && p[1])
		goto syntax;
	/* whole <= MAX_AHEAD + 1 and mult <= 86400: the product fits in 48 bits. */
	int64_t s = whole * mult + (int64_t)(frac * (double)mult);
	if (big || s > WHEN_MAX_AHEAD) {
		*why = "more than 366 days ahead";
		return -1;
	}
	*secs = s;
	return 0;
syntax:
	*why = "not a time (RFC 3339 like 2026-12-01T02:00:00Z, or +90s, +10m, +2h, +1d)";
	return -1;
}

/* 9999-12-31T23:59:59Z: the last instant a four-digit year can show. */
#define LAST_SHOWN ((time_t)253402300799)

/* "YYYY-MM-DDTHH:MM:SS[.F](Z|+HH:MM|-HH:MM)", every field checked. */
static int parse_rfc3339(const char *p, time_t *out)
{
	int y, mo, d, h, mi, s;
	if (!read_digits(&p, 4, &y) || *p++ != '-' || !read_digits(&p, 2, &mo) || *p++ != '-' ||
	    !read_digits(&p, 2, &d) || (*p != 'T' && *p != 't') || !(++p, read_digits(&p, 2, &h)) ||
	    *p++ != ':' || !read_digits(&p, 2, &mi) || *p++ != ':' || !read_digits(&p, 2, &s))
		return -1;
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 ||
	    d > mdays[mo - 1] + (mo == 2 && leap_year(y)) || h > 23 || mi > 59 || s > 60)
		return -1;
	if (*p == '.') {
		const char *f = ++p;
		while (isdigit((unsigned char)*p))
			p++;
		if (p == f)
			return -1;
	}
	long off = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p++ == '+' ? -1 : 1, oh, om;
		if (!read_digits(&p, 2, &oh) || *p++ != ':' || !read_digits(&p, 2, &om) || oh > 23 ||
		    om > 59)
			return -1;
		off = sign * (oh * 3600L + om * 60L);
	} else {
		return -1;
	}
	if (*p)
		return -1;
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
			 .tm_min = mi, .tm_sec = s };
	time_t t = timegm(&tm);   /* years 1970..9999: far inside a 64-bit time_t */
	/* A leap second or a UTC offset can carry past the range the fields
	 * were checked in ("9999-12-31T23:59:60Z" is year 10000, which status
	 * could not show and a restart could not read back: found by fuzz_time). */
	if (t == (time_t)-1 || t + off < 0 || t + off > LAST_SHOWN)
		return -1;
	*out = t + off;
	return 0;
}

int when_parse(const char *text, time_t now, bool future, time_t *out, const char **why)
{
	const char *unused;
	if (!why)
		why = &unused;
	if (!text || !*text) {
		*why = "empty: give RFC 3339 like 2026-12-01T02:00:00Z, or +90s, +10m, +2h, +1d";
		return -1;
	}
	if (text[0] == '+') {
		int64_t secs;
		if (parse_offset(text + 1, &secs, why) < 0)
			return -1;
		*out = now + (time_t)secs;  /* now is a real clock: far from TIME_MAX */
		return 0;
	}
	time_t t;
	if (parse_rfc3339(text, &t) < 0) {
		*why = "not a time (RFC 3339 like 2026-12-01T02:00:00Z, or +90s, +10m, +2h, +1d)";
		return -1;
	}
	if (future && t < now) {
		*why = "in the past";
		return -1;
	}
	if (future && t - now > WHEN_MAX_AHEAD) {
		*why = "more than 366 days ahead";
		return -1;
	}
	*out = t;
	return 0;
}
