/* response: the responses cutover makes itself (errors, health, the
 * maintenance answers). Every one carries Date and X-Cutover-Mode, never a
 * 2xx for something not done, never a redirect. */
#ifndef CUTOVER_RESPONSE_H
#define CUTOVER_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;

const char *response_reason(int status);

/* "Sun, 06 Nov 1994 08:49:37 GMT", cached per second per thread. */
const char *response_date(void);

struct response {
	int status;
	const char *mode;            /* X-Cutover-Mode */
	const char *content_type;    /* NULL = text/plain; charset=utf-8 */
	const char *body;
	size_t body_len;
	const char *extra_headers;   /* "Name: value\r\n..." or NULL */
	bool keep_alive;
	bool head_only;              /* HEAD request: headers only */
	bool http10;                 /* answer with HTTP/1.0 status line */
	/* The maintenance answers' layout (devices have seen it since the
	 * start); zero keeps the usual one. */
	bool no_content;             /* a 204: no Content-Type, no Content-Length (RFC 9110 8.6) */
	bool extra_headers_first;    /* Cache-Control and EXTRA_HEADERS right after X-Cutover-Mode */
};

/* Appends the whole response to OUT: status line, Date, Server,
 * X-Cutover-Mode, Content-Type, Content-Length, Cache-Control, Connection
 * (when not the version's default), EXTRA_HEADERS, body. Returns 0, or -1
 * when out of memory (OUT may then hold part of it: build into a scratch
 * buffer when that matters). */
int response_write(struct evbuffer *out, const struct response *r);

#endif
