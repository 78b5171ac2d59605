/* Helpers for unit tests that inspect an HTTP message cutover wrote into an
 * evbuffer. Include after <cmocka.h>. */
#ifndef CUTOVER_TESTS_HTTP_ASSERT_H
#define CUTOVER_TESTS_HTTP_ASSERT_H

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

/* The contents of B as a NUL-terminated string (malloc'd); B is freed. */
static inline char *buffer_string(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	char *s = malloc(n + 1);
	assert_non_null(s);
	if (n)
		memcpy(s, evbuffer_pullup(b, -1), n);
	s[n] = '\0';
	assert_int_equal(strlen(s), n); /* no NUL in what cutover sends */
	evbuffer_free(b);
	return s;
}

/* The value of header NAME in head OUT (copied into BUF), or NULL; fails if
 * the header appears more than once. */
static inline const char *header(const char *out, const char *name, char *buf, size_t size)
{
	const char *found = NULL;
	size_t len = strlen(name);
	const char *end = strstr(out, "\r\n\r\n");
	assert_non_null(end);
	for (const char *line = strstr(out, "\r\n"); line && line < end;
	     line = strstr(line + 2, "\r\n")) {
		const char *l = line + 2;
		if (strncasecmp(l, name, len) == 0 && l[len] == ':') {
			if (found)
				fail_msg("header %s twice in:\n%s", name, out);
			found = l + len + 1;
		}
	}
	if (!found)
		return NULL;
	while (*found == ' ')
		found++;
	size_t vlen = (size_t)(strstr(found, "\r\n") - found);
	assert_true(vlen < size);
	memcpy(buf, found, vlen);
	buf[vlen] = '\0';
	return buf;
}

static inline const char *body_of(const char *out)
{
	const char *end = strstr(out, "\r\n\r\n");
	assert_non_null(end);
	return end + 4;
}

#endif
