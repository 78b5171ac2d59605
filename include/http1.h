/* http1: HTTP/1.x message framing on top of llhttp (strict mode, no
 * lenient flags), plus the checks the contract asks for that llhttp lets
 * through (obs-fold, a Transfer-Encoding other than a final chunked).
 *
 * A head is parsed from one contiguous buffer; header slices point into
 * that buffer, which the caller keeps untouched until it is done with the
 * head. Bodies are streamed: Content-Length bodies are counted by the
 * caller, chunked bodies go through http1_chunked_feed(). */
#ifndef CUTOVER_HTTP1_H
#define CUTOVER_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <strings.h>

#include <llhttp.h>

struct evbuffer;

#define HTTP1_MAX_HEADERS 100

struct http1_header {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

enum http1_framing {
	HTTP1_BODY_NONE,      /* no body */
	HTTP1_BODY_LENGTH,    /* Content-Length bytes */
	HTTP1_BODY_CHUNKED,   /* Transfer-Encoding: chunked */
	HTTP1_BODY_EOF,       /* response delimited by connection close */
};

struct http1_head {
	/* request */
	const char *method;
	size_t method_len;
	const char *target;
	size_t target_len;
	/* response */
	int status;
	const char *reason;
	size_t reason_len;

	uint8_t major, minor;
	struct http1_header headers[HTTP1_MAX_HEADERS];
	size_t n_headers;
	const char *host;            /* Host header value (requests), NULL if absent */
	size_t host_len;
	enum http1_framing framing;
	uint64_t content_length;
	bool has_content_length;     /* a Content-Length header was sent (maybe 0) */
	bool keep_alive;             /* llhttp_should_keep_alive() at head end */
	bool expect_continue;        /* Expect: 100-continue */
	size_t head_len;             /* bytes of the head, final CRLF included */
};

enum http1_result {
	HTTP1_DONE,           /* a whole head was parsed */
	HTTP1_MORE,           /* need more bytes */
	HTTP1_ERROR,          /* malformed: see status and reason */
};

enum http1_kind { HTTP1_REQUEST, HTTP1_RESPONSE };

struct http1_parser {
	llhttp_t ll;
	enum http1_kind kind;
	struct http1_head *head;     /* being filled */
	const char *end;             /* end of the bytes given to parse_head */
	bool head_only_response;     /* response to HEAD: no body */
	bool in_value;
	bool url_done;
	int error_status;            /* 400, 414, 431, 502 ... */
	const char *error_reason;
	/* chunked body feed */
	void (*on_data)(void *arg, const char *at, size_t len);
	void *arg;
	bool message_done;
	char last_byte;              /* last body byte fed, to check the final CRLF */
};

void http1_parser_init(struct http1_parser *p, enum http1_kind kind);

/* Parses a head from BUF[0..LEN). The buffer starts at the head's first
 * byte. MAX_LINE bounds the request line (414), MAX_HEAD the whole head
 * (431); for responses both give 502. On HTTP1_DONE, H is filled and
 * h->head_len says how many bytes to consume. */
enum http1_result http1_parse_head(struct http1_parser *p, const char *buf, size_t len,
				   size_t max_line, size_t max_head, struct http1_head *h);

/* Tells a response parser that the request was HEAD (or the status forbids
 * a body): framing becomes HTTP1_BODY_NONE. Call before http1_parse_head. */
void http1_expect_no_body(struct http1_parser *p, bool no_body);

/* Feeds chunked-body bytes after a head. Decoded data is passed to ON_DATA
 * as it is found. Returns bytes consumed (< LEN when the message ended
 * inside BUF), sets *DONE at the message's end; -1 on malformed framing
 * (p->error_reason says why). */
long http1_chunked_feed(struct http1_parser *p, const char *buf, size_t len, bool *done,
			void (*on_data)(void *arg, const char *at, size_t len), void *arg);

/* http1_chunked_feed() over up to BUDGET bytes of IN (drained as they are
 * consumed), the decoded data appended to OUT. Returns bytes consumed from
 * IN, -1 on malformed framing (p->error_reason says why). */
long http1_chunked_move(struct http1_parser *p, struct evbuffer *in, size_t budget,
			struct evbuffer *out, bool *done);

/* DST parses on its own from where SRC stands (a chunked body checked
 * ahead while SRC still has to move it). */
void http1_parser_copy(struct http1_parser *dst, const struct http1_parser *src);
/* http1_chunked_feed() over IN from byte FROM to its end, nothing decoded
 * and nothing drained. Returns bytes consumed, -1 on malformed framing. */
long http1_chunked_scan(struct http1_parser *p, struct evbuffer *in, size_t from, bool *done);

/* The target without scheme and authority: "http://h/p?q" gives "/p?q",
 * "http://h?q" gives "?q", "http://h" gives "" (the caller adds the "/"). */
void http1_origin_form(const struct http1_head *h, const char **rest, size_t *len);

/* Walks the comma-separated list values of every NAME header: *TOK is set
 * to each element's first token (parameters after ';' excluded). Start
 * with *CURSOR = 0; returns false when there are no more. */
bool http1_next_token(const struct http1_head *h, const char *name, size_t *cursor,
		      const char **tok, size_t *len);

/* H's slices pointed into FROM; its head_len bytes were copied to TO. */
void http1_head_rebase(struct http1_head *h, const char *from, const char *to);

/* Header lookup, case-insensitive; first match or NULL. */
const struct http1_header *http1_find(const struct http1_head *h, const char *name);
/* A (ALEN bytes) equals the string B, case-insensitive. Inline: with B a
 * literal, its length is known when compiling (heads are compared on the
 * hot path, name by name). */
static inline bool http1_token_eq(const char *a, size_t alen, const char *b)
{
	return __builtin_strlen(b) == alen && strncasecmp(a, b, alen) == 0;
}

#endif
