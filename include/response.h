/* response: the responses cutover makes itself (errors, health, later
 * maintenance). Every one carries Date and X-Cutover-Mode, never a 2xx for
 * something not done, never a redirect. */
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
};

/* Appends the whole response to OUT. */
void response_write(struct evbuffer *out, const struct response *r);

#endif
