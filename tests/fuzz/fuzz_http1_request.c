/* fuzz_http1_request: request heads and chunked bodies as conn.c reads them
 * (http1_parse_head over the bytes received so far, then the body), up to a
 * few pipelined requests per input. Beyond crashes, it checks what the
 * contract promises of an accepted head: one framing, no control
 * character but HTAB in a value, CRLF line ends, slices inside the buffer.
 *
 * Input: one control byte (how the bytes arrive: the step between
 * successive http1_parse_head calls, the size of the chunked pieces), then
 * the bytes a client sends. */
#include "fuzz.h"

#include <stdbool.h>

#include "http1.h"

/* conn.c's defaults (limits.max_request_line, max_header_bytes). */
#define MAX_LINE 8192
#define MAX_HEAD 32768
#define MAX_MESSAGES 8

static void count_data(void *arg, const char *at, size_t len)
{
	(void)at;
	*(size_t *)arg += len;
}

static bool inside(const char *p, size_t n, const char *buf, size_t len)
{
	return p >= buf && p + n <= buf + len;
}

static void check_head(const struct http1_head *h, const char *buf, size_t len)
{
	FUZZ_CHECK(h->head_len >= 4 && h->head_len <= len && h->head_len <= MAX_HEAD,
		   "head_len %zu of %zu", h->head_len, len);
	FUZZ_CHECK(memcmp(buf + h->head_len - 4, "\r\n\r\n", 4) == 0, "head not ended by CRLFCRLF");
	FUZZ_CHECK(h->method && inside(h->method, h->method_len, buf, h->head_len),
		   "method outside the head");
	FUZZ_CHECK(h->target && inside(h->target, h->target_len, buf, h->head_len),
		   "target outside the head");
	FUZZ_CHECK(h->method_len > 0 && h->target_len > 0, "empty method or target");
	FUZZ_CHECK(h->n_headers <= HTTP1_MAX_HEADERS, "too many headers");
	size_t n_cl = 0, n_te = 0;
	for (size_t i = 0; i < h->n_headers; i++) {
		const struct http1_header *f = &h->headers[i];
		FUZZ_CHECK(f->name_len > 0 && inside(f->name, f->name_len, buf, h->head_len),
			   "header %zu name", i);
		FUZZ_CHECK(f->value_len == 0 || inside(f->value, f->value_len, buf, h->head_len),
			   "header %zu value outside the head", i);
		for (size_t j = 0; j < f->name_len; j++) {
			unsigned char c = (unsigned char)f->name[j];
			FUZZ_CHECK(c > 0x20 && c < 0x7f && c != ':', "header name byte 0x%02x", c);
		}
		for (size_t j = 0; j < f->value_len; j++) {
			unsigned char c = (unsigned char)f->value[j];
			FUZZ_CHECK(c == '\t' || (c >= 0x20 && c != 0x7f),
				   "control character 0x%02x in the value of header %.*s", c,
				   (int)f->name_len, f->name);
		}
		n_cl += http1_token_eq(f->name, f->name_len, "content-length");
		n_te += http1_token_eq(f->name, f->name_len, "transfer-encoding");
	}
	FUZZ_CHECK(!(n_cl && n_te), "both Content-Length and Transfer-Encoding accepted");
	FUZZ_CHECK(n_cl <= 1, "duplicate Content-Length accepted");
	FUZZ_CHECK(h->framing != HTTP1_BODY_EOF, "request framed by EOF");
	FUZZ_CHECK(n_te == 0 || h->framing == HTTP1_BODY_CHUNKED, "Transfer-Encoding not chunked");
	FUZZ_CHECK(h->framing != HTTP1_BODY_LENGTH || (h->has_content_length && h->content_length),
		   "length framing without a length");
	if (h->major == 1 && h->minor == 1)
		FUZZ_CHECK(h->host != NULL, "HTTP/1.1 without Host accepted");

	/* What dispatch and forward do with an accepted head. */
	const char *rest;
	size_t rest_len;
	http1_origin_form(h, &rest, &rest_len);
	FUZZ_CHECK(inside(rest, rest_len, h->target, h->target_len), "origin form outside target");
	size_t cursor = 0, tlen, n_tok = 0;
	const char *tok;
	while (http1_next_token(h, "connection", &cursor, &tok, &tlen)) {
		FUZZ_CHECK(tlen > 0 && inside(tok, tlen, buf, h->head_len), "connection token");
		FUZZ_CHECK(++n_tok <= h->head_len, "http1_next_token never ends");
	}
	/* The head copied elsewhere, as a parked request keeps it. */
	char *copy = malloc(h->head_len);
	if (!copy)
		abort();
	memcpy(copy, buf, h->head_len);
	struct http1_head moved = *h;
	http1_head_rebase(&moved, buf, copy);
	FUZZ_CHECK(inside(moved.target, moved.target_len, copy, h->head_len), "rebased target");
	for (size_t i = 0; i < moved.n_headers; i++)
		FUZZ_CHECK(moved.headers[i].value_len == 0 ||
				   inside(moved.headers[i].value, moved.headers[i].value_len, copy,
					  h->head_len),
			   "rebased value %zu", i);
	free(copy);
}

/* One request from BUF[0..LEN): bytes consumed, or 0 when the input ends
 * (incomplete or refused). */
static size_t one_request(const char *buf, size_t len, unsigned step, unsigned piece)
{
	struct http1_parser p;
	struct http1_head *h = malloc(sizeof(*h));
	if (!h)
		abort();
	http1_parser_init(&p, HTTP1_REQUEST);
	/* The bytes arrive STEP at a time; conn parses from the start each time. */
	enum http1_result r = HTTP1_MORE;
	size_t have = 0;
	while (r == HTTP1_MORE && have < len) {
		have = have + step < len ? have + step : len;
		r = http1_parse_head(&p, buf, have, MAX_LINE, MAX_HEAD, h);
	}
	size_t used = 0;
	if (r == HTTP1_ERROR) {
		FUZZ_CHECK(p.error_status >= 400 && p.error_status < 600 && p.error_reason,
			   "error without a status or reason");
	} else if (r == HTTP1_DONE) {
		check_head(h, buf, have);
		used = h->head_len;
		if (h->framing == HTTP1_BODY_LENGTH) {
			used = len - used < h->content_length ? 0 : used + h->content_length;
		} else if (h->framing == HTTP1_BODY_CHUNKED) {
			size_t decoded = 0, fed = 0;
			bool done = false;
			while (!done && used < len) {
				size_t n = len - used < piece ? len - used : piece;
				long c = http1_chunked_feed(&p, buf + used, n, &done, count_data, &decoded);
				if (c < 0) {
					FUZZ_CHECK(p.error_reason, "chunked error without a reason");
					used = 0;
					break;
				}
				FUZZ_CHECK((size_t)c <= n && (done || (size_t)c == n),
					   "chunked feed consumed %ld of %zu", c, n);
				used += (size_t)c;
				fed += (size_t)c;
				FUZZ_CHECK(decoded <= fed, "decoded %zu bytes from %zu", decoded, fed);
			}
			if (!done)
				used = 0;
		}
	}
	free(h);
	return used;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 4 * MAX_HEAD)
		return 0;
	unsigned ctl = data[0];
	unsigned step = ctl & 0x0f ? (ctl & 0x0f) * 7 : MAX_HEAD * 4;   /* 0: all at once */
	unsigned piece = ctl >> 4 ? (ctl >> 4) : 65536;
	/* An exact-size copy: a read past the bytes received is an ASan report. */
	char *buf = malloc(size - 1 ? size - 1 : 1);
	if (!buf)
		abort();
	memcpy(buf, data + 1, size - 1);
	size_t off = 0;
	for (int i = 0; i < MAX_MESSAGES && off < size - 1; i++) {
		size_t used = one_request(buf + off, size - 1 - off, step, piece);
		if (!used)
			break;
		off += used;
	}
	free(buf);
	return 0;
}
