/* log_oracle.h: the access log line as cutover made it with jansson
 * before issue 16 (a json_t object dumped with JSON_COMPACT |
 * JSON_REAL_PRECISION(15)), kept as the oracle that tests/test_log.c holds
 * log_access_format() to, byte for byte. Header-only, like tmpdir.h; the
 * caller includes cmocka first. */
#ifndef CUTOVER_TESTS_LOG_ORACLE_H
#define CUTOVER_TESTS_LOG_ORACLE_H

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

static inline size_t oracle_utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	if (c < 0x80)
		return 1;
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return len;
}

static inline json_t *oracle_slice(struct log_slice s)
{
	if (s.ptr == NULL)
		return json_null();
	const unsigned char *p = (const unsigned char *)s.ptr;
	char *out = malloc(3 * s.len + 1);
	assert_non_null(out);
	size_t o = 0;
	for (size_t i = 0; i < s.len;) {
		size_t k = oracle_utf8_seq(p + i, s.len - i);
		if (k == 0) {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		} else {
			memcpy(out + o, p + i, k);
			o += k;
			i += k;
		}
	}
	json_t *j = json_stringn_nocheck(out, o);
	free(out);
	return j;
}

static inline json_t *oracle_ms(double ms)
{
	if (ms < 0 || !isfinite(ms))
		return json_null();
	if (ms < 1e15)
		ms = (double)(long long)(ms * 1000.0 + 0.5) / 1000.0;
	return json_real(ms);
}

static inline json_t *oracle_count(uint64_t v)
{
	return json_integer(v > (uint64_t)LLONG_MAX ? LLONG_MAX : (json_int_t)v);
}

/* The line as the jansson path made it, '\n' included; free() it. */
static inline char *oracle_line(const struct access_entry *e)
{
	char when[40];
	struct tm tm;
	char secs[32];
	long ms = e->start.tv_nsec / 1000000;
	if (gmtime_r(&e->start.tv_sec, &tm) == NULL ||
	    strftime(secs, sizeof secs, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		snprintf(when, sizeof when, "1970-01-01T00:00:00.000Z");
	else
		snprintf(when, sizeof when, "%s.%03ldZ", secs, ms < 0 || ms > 999 ? 0 : ms);
	json_t *o = json_object();
	json_object_set_new(o, "time", json_string(when));
	json_object_set_new(o, "client", oracle_slice(e->client));
	json_object_set_new(o, "method", oracle_slice(e->method));
	json_object_set_new(o, "path", oracle_slice(e->path));
	json_object_set_new(o, "route", oracle_slice(e->route));
	json_object_set_new(o, "project", oracle_slice(e->project));
	json_object_set_new(o, "upstream", oracle_slice(e->upstream));
	json_object_set_new(o, "status", json_integer(e->status));
	json_object_set_new(o, "bytes_in", oracle_count(e->bytes_in));
	json_object_set_new(o, "bytes_out", oracle_count(e->bytes_out));
	json_object_set_new(o, "upstream_ms", oracle_ms(e->upstream_ms));
	json_object_set_new(o, "total_ms", oracle_ms(e->total_ms < 0 ? 0 : e->total_ms));
	assert_int_equal(json_object_size(o), 12);
	char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15));
	json_decref(o);
	assert_non_null(s);
	size_t n = strlen(s);
	char *line = malloc(n + 2);
	assert_non_null(line);
	memcpy(line, s, n);
	memcpy(line + n, "\n", 2);
	free(s);
	return line;
}

#endif
