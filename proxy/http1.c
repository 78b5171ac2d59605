/* http1: HTTP/1.x heads and chunked bodies on top of llhttp (strict). */
#include "http1.h"

#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

static struct http1_parser *parser_of(llhttp_t *ll)
{
	return ll->data;
}

static int fail(struct http1_parser *p, int status, const char *reason)
{
	p->error_status = status;
	p->error_reason = reason;
	return HPE_USER;
}

static int on_method(llhttp_t *ll, const char *at, size_t len)
{
	struct http1_head *h = parser_of(ll)->head;
	if (!h->method)
		h->method = at;
	h->method_len += len;
	return 0;
}

static int on_url(llhttp_t *ll, const char *at, size_t len)
{
	struct http1_head *h = parser_of(ll)->head;
	if (!h->target)
		h->target = at;
	h->target_len += len;
	return 0;
}

static int on_url_complete(llhttp_t *ll)
{
	parser_of(ll)->url_done = true;
	return 0;
}

static int on_status(llhttp_t *ll, const char *at, size_t len)
{
	struct http1_head *h = parser_of(ll)->head;
	if (!h->reason)
		h->reason = at;
	h->reason_len += len;
	return 0;
}

static int on_header_field(llhttp_t *ll, const char *at, size_t len)
{
	struct http1_parser *p = parser_of(ll);
	struct http1_head *h = p->head;
	if (!h)
		return 0; /* trailers: dropped */
	if (h->n_headers == 0 || p->in_value) {
		if (h->n_headers == HTTP1_MAX_HEADERS)
			return fail(p, p->kind == HTTP1_REQUEST ? 431 : 502, "too many header fields");
		h->headers[h->n_headers++] = (struct http1_header){ .name = at, .value = "" };
		p->in_value = false;
	}
	h->headers[h->n_headers - 1].name_len += len;
	return 0;
}

static int on_header_value(llhttp_t *ll, const char *at, size_t len)
{
	struct http1_parser *p = parser_of(ll);
	struct http1_head *h = p->head;
	if (!h)
		return 0;
	struct http1_header *f = &h->headers[h->n_headers - 1];
	if (!p->in_value) {
		f->value = at;
		p->in_value = true;
	}
	f->value_len += len;
	return 0;
}

void http1_origin_form(const struct http1_head *h, const char **rest, size_t *len)
{
	const char *t = h->target, *end = h->target + h->target_len;
	*rest = t;
	*len = h->target_len;
	if (t == end || *t == '/')
		return;
	const char *sep = memmem(t, h->target_len, "://", 3);
	if (!sep)
		return; /* asterisk-form or garbage: as sent */
	const char *q = sep + 3;
	while (q < end && *q != '/' && *q != '?' && *q != '#')
		q++;
	*rest = q;
	*len = (size_t)(end - q);
}

bool http1_next_token(const struct http1_head *h, const char *name, size_t *cursor,
		      const char **tok, size_t *len)
{
	/* CURSOR packs the header index (high bits) and the offset in its value. */
	size_t i = *cursor >> 32, off = *cursor & 0xffffffffu;
	for (; i < h->n_headers; i++, off = 0) {
		const struct http1_header *f = &h->headers[i];
		if (!http1_token_eq(f->name, f->name_len, name))
			continue;
		const char *q = f->value + off, *end = f->value + f->value_len;
		while (q < end) {
			while (q < end && (*q == ' ' || *q == '\t' || *q == ','))
				q++;
			const char *start = q;
			while (q < end && *q != ',' && *q != ' ' && *q != '\t' && *q != ';')
				q++;
			const char *stop = q;
			while (q < end && *q != ',')
				q++;
			if (stop > start) {
				*tok = start;
				*len = (size_t)(stop - start);
				*cursor = ((size_t)i << 32) | (size_t)(q - f->value);
				return true;
			}
		}
	}
	*cursor = (size_t)h->n_headers << 32;
	return false;
}

const struct http1_header *http1_find(const struct http1_head *h, const char *name)
{
	for (size_t i = 0; i < h->n_headers; i++)
		if (http1_token_eq(h->headers[i].name, h->headers[i].name_len, name))
			return &h->headers[i];
	return NULL;
}

/* llhttp joins an obs-fold continuation into the value; the contract wants
 * it refused, so any CR or LF left inside a value is an error. */
static bool value_has_fold(const struct http1_header *f)
{
	return memchr(f->value, '\r', f->value_len) || memchr(f->value, '\n', f->value_len);
}

/* llhttp tolerates several spaces between the parts of the request line
 * and a bare LF at its end; the contract does not: exactly
 * "METHOD SP target SP HTTP/x.y CRLF". */
static bool request_line_ok(const struct http1_parser *p, const struct http1_head *h)
{
	if (!h->method || !h->target || h->target != h->method + h->method_len + 1)
		return false;
	/* "GET /\n\n" (HTTP/0.9 style) ends the head with no version at all:
	 * check the bytes exist before reading them. */
	const char *v = h->target + h->target_len;
	return p->end - v >= 11 && memcmp(v, " HTTP/", 6) == 0 && v[9] == '\r' && v[10] == '\n';
}

/* True if every Transfer-Encoding token is "chunked": a coding before it
 * would be lost when the body is re-chunked, so it is refused instead. */
static bool only_chunked(const struct http1_head *h)
{
	size_t cursor = 0, len;
	const char *tok;
	while (http1_next_token(h, "transfer-encoding", &cursor, &tok, &len))
		if (!http1_token_eq(tok, len, "chunked"))
			return false;
	return true;
}

static int on_headers_complete(llhttp_t *ll)
{
	struct http1_parser *p = parser_of(ll);
	struct http1_head *h = p->head;
	int bad = p->kind == HTTP1_REQUEST ? 400 : 502;

	if (p->kind == HTTP1_REQUEST && !request_line_ok(p, h))
		return fail(p, 400, "malformed request line");
	for (size_t i = 0; i < h->n_headers; i++) {
		struct http1_header *f = &h->headers[i];
		if (f->name_len == 0)
			return fail(p, bad, "empty header name");
		/* Trailing whitespace is not part of a field value (RFC 9110 5.5). */
		while (f->value_len && (f->value[f->value_len - 1] == ' ' ||
					f->value[f->value_len - 1] == '\t'))
			f->value_len--;
		if (value_has_fold(f))
			return fail(p, bad, "obsolete line folding");
		if (p->kind == HTTP1_REQUEST) {
			if (!h->host && http1_token_eq(f->name, f->name_len, "host")) {
				h->host = f->value;
				h->host_len = f->value_len;
			} else if (http1_token_eq(f->name, f->name_len, "host")) {
				return fail(p, 400, "duplicate Host");
			} else if (http1_token_eq(f->name, f->name_len, "expect") &&
				   http1_token_eq(f->value, f->value_len, "100-continue")) {
				h->expect_continue = true;
			}
		}
	}
	h->major = llhttp_get_http_major(ll);
	h->minor = llhttp_get_http_minor(ll);
	h->keep_alive = llhttp_should_keep_alive(ll);

	uint16_t flags = ll->flags;
	h->has_content_length = flags & F_CONTENT_LENGTH;
	if (p->kind == HTTP1_REQUEST) {
		/* llhttp sets no flag for an empty "Transfer-Encoding:" (found by
		 * fuzz_http1_request): the header itself counts. */
		if (((flags & F_TRANSFER_ENCODING) || http1_find(h, "transfer-encoding")) &&
		    !(flags & F_CHUNKED))
			return fail(p, 400, "Transfer-Encoding other than a final chunked");
		if ((flags & F_CHUNKED) && !only_chunked(h))
			return fail(p, 501, "a transfer coding other than chunked is not supported");
		if (h->major == 1 && h->minor == 1 && !h->host)
			return fail(p, 400, "missing Host");
	} else {
		h->status = llhttp_get_status_code(ll);
		/* llhttp takes "HTTP/1.1 \r\n" or "HTTP/1.1 1 OK": a status is
		 * three digits (RFC 9112 4). */
		if (h->status < 100 || h->status > 999)
			return fail(p, 502, "status code not three digits");
	}

	if (p->kind == HTTP1_RESPONSE &&
	    (p->head_only_response || h->status / 100 == 1 || h->status == 204 || h->status == 304)) {
		h->framing = HTTP1_BODY_NONE;
	} else if (flags & F_CHUNKED) {
		h->framing = HTTP1_BODY_CHUNKED;
	} else if (flags & F_CONTENT_LENGTH) {
		h->content_length = ll->content_length;
		h->framing = h->content_length ? HTTP1_BODY_LENGTH : HTTP1_BODY_NONE;
	} else if (p->kind == HTTP1_RESPONSE) {
		h->framing = HTTP1_BODY_EOF;
	} else {
		h->framing = HTTP1_BODY_NONE;
	}
	return HPE_PAUSED;
}

static int on_body(llhttp_t *ll, const char *at, size_t len)
{
	struct http1_parser *p = parser_of(ll);
	if (p->on_data)
		p->on_data(p->arg, at, len);
	return 0;
}

static int on_message_complete(llhttp_t *ll)
{
	parser_of(ll)->message_done = true;
	return HPE_PAUSED;
}

static llhttp_settings_t settings;
static bool settings_ready;

static const llhttp_settings_t *parser_settings(void)
{
	/* Benign race: every thread writes the same values. */
	if (!settings_ready) {
		llhttp_settings_t s;
		llhttp_settings_init(&s);
		s.on_method = on_method;
		s.on_url = on_url;
		s.on_url_complete = on_url_complete;
		s.on_status = on_status;
		s.on_header_field = on_header_field;
		s.on_header_value = on_header_value;
		s.on_headers_complete = on_headers_complete;
		s.on_body = on_body;
		s.on_message_complete = on_message_complete;
		settings = s;
		__atomic_store_n(&settings_ready, true, __ATOMIC_RELEASE);
	}
	return &settings;
}

void http1_parser_init(struct http1_parser *p, enum http1_kind kind)
{
	memset(p, 0, sizeof(*p));
	p->kind = kind;
	llhttp_init(&p->ll, kind == HTTP1_REQUEST ? HTTP_REQUEST : HTTP_RESPONSE, parser_settings());
	p->ll.data = p;
}

void http1_expect_no_body(struct http1_parser *p, bool no_body)
{
	p->head_only_response = no_body;
}

enum http1_result http1_parse_head(struct http1_parser *p, const char *buf, size_t len,
				   size_t max_line, size_t max_head, struct http1_head *h)
{
	bool head_only = p->head_only_response;
	enum http1_kind kind = p->kind;
	http1_parser_init(p, kind);
	p->head_only_response = head_only;
	memset(h, 0, offsetof(struct http1_head, headers));
	h->n_headers = 0;
	h->host = NULL;
	h->host_len = 0;
	h->framing = HTTP1_BODY_NONE;
	h->content_length = 0;
	h->keep_alive = false;
	h->expect_continue = false;
	h->head_len = 0;
	p->head = h;
	p->end = buf + len;

	int bad = kind == HTTP1_REQUEST ? 400 : 502;
	if (kind == HTTP1_REQUEST) {
		/* The request line, CRLF excluded, whether or not it is complete. */
		size_t scan = len < max_line + 2 ? len : max_line + 2;
		const char *nl = memchr(buf, '\n', scan);
		if ((!nl && scan == max_line + 2) || (nl && (size_t)(nl - buf) > max_line + 1)) {
			p->error_status = 414;
			p->error_reason = "request line too long";
			p->head = NULL;
			return HTTP1_ERROR;
		}
	}
	llhttp_errno_t err = llhttp_execute(&p->ll, buf, len);
	if (err == HPE_PAUSED && !p->error_status) {
		h->head_len = (size_t)(llhttp_get_error_pos(&p->ll) - buf);
		p->head = NULL;
		/* llhttp takes a bare LF as the empty line that ends the head. */
		if (h->head_len < 4 || memcmp(buf + h->head_len - 4, "\r\n\r\n", 4) != 0) {
			p->error_status = bad;
			p->error_reason = "bare LF at the end of the head";
			return HTTP1_ERROR;
		}
		if (h->head_len > max_head) {
			p->error_status = kind == HTTP1_REQUEST ? 431 : 502;
			p->error_reason = "header section too large";
			return HTTP1_ERROR;
		}
		return HTTP1_DONE;
	}
	p->head = NULL;
	if (err == HPE_OK) {
		if (len > max_head) {
			p->error_status = kind == HTTP1_REQUEST ? 431 : 502;
			p->error_reason = "header section too large";
			return HTTP1_ERROR;
		}
		return HTTP1_MORE;
	}
	if (!p->error_status) {
		p->error_status = bad;
		p->error_reason = llhttp_get_error_reason(&p->ll);
	}
	return HTTP1_ERROR;
}

long http1_chunked_feed(struct http1_parser *p, const char *buf, size_t len, bool *done,
			void (*on_data)(void *arg, const char *at, size_t len), void *arg)
{
	*done = false;
	if (llhttp_get_errno(&p->ll) == HPE_PAUSED)
		llhttp_resume(&p->ll);
	p->on_data = on_data;
	p->arg = arg;
	llhttp_errno_t err = llhttp_execute(&p->ll, buf, len);
	p->on_data = NULL;
	if (err == HPE_OK) {
		if (len)
			p->last_byte = buf[len - 1];
		return (long)len;
	}
	if (err == HPE_PAUSED && p->message_done) {
		long used = llhttp_get_error_pos(&p->ll) - buf;
		/* As for heads, the final empty line must be CRLF, not a bare LF. */
		char before_lf = used >= 2 ? buf[used - 2] : p->last_byte;
		if (used < 1 || buf[used - 1] != '\n' || before_lf != '\r') {
			p->error_status = p->kind == HTTP1_REQUEST ? 400 : 502;
			p->error_reason = "bare LF at the end of the chunked body";
			return -1;
		}
		*done = true;
		return used;
	}
	p->error_status = p->kind == HTTP1_REQUEST ? 400 : 502;
	p->error_reason = llhttp_get_error_reason(&p->ll);
	return -1;
}

void http1_parser_copy(struct http1_parser *dst, const struct http1_parser *src)
{
	*dst = *src;
	dst->ll.data = dst;
	dst->on_data = NULL;
	dst->arg = NULL;
}

long http1_chunked_scan(struct http1_parser *p, struct evbuffer *in, size_t from, bool *done)
{
	size_t len = evbuffer_get_length(in), total = 0;
	*done = false;
	while (from + total < len) {
		struct evbuffer_ptr at;
		struct evbuffer_iovec vec[8];
		if (evbuffer_ptr_set(in, &at, from + total, EVBUFFER_PTR_SET) < 0)
			break;
		int n = evbuffer_peek(in, (ev_ssize_t)(len - from - total), &at, vec, 8);
		if (n <= 0)
			break;
		for (int i = 0; i < n && i < 8; i++) {
			size_t want = len - from - total;
			size_t chunk = vec[i].iov_len < want ? vec[i].iov_len : want;
			long used = http1_chunked_feed(p, vec[i].iov_base, chunk, done, NULL, NULL);
			if (used < 0)
				return -1;
			total += (size_t)used;
			if (*done || total >= len - from)
				return (long)total;
		}
	}
	return (long)total;
}

static void emit_to_evbuffer(void *arg, const char *at, size_t len)
{
	evbuffer_add(arg, at, len);
}

long http1_chunked_move(struct http1_parser *p, struct evbuffer *in, size_t budget,
			struct evbuffer *out, bool *done)
{
	struct evbuffer_iovec vec[8];
	size_t total = 0;
	*done = false;
	int n = evbuffer_peek(in, (ev_ssize_t)budget, NULL, vec, 8);
	for (int i = 0; i < n && i < 8 && total < budget; i++) {
		size_t len = vec[i].iov_len;
		if (len > budget - total)
			len = budget - total;
		long used = http1_chunked_feed(p, vec[i].iov_base, len, done, emit_to_evbuffer, out);
		if (used < 0)
			return -1;
		total += (size_t)used;
		if (*done)
			break;
	}
	evbuffer_drain(in, total);
	return (long)total;
}

/* Slices outside the head (NULL, the "" of an empty value) stay. */
static const char *rebased(const char *p, const char *from, size_t len, const char *to)
{
	uintptr_t a = (uintptr_t)p, lo = (uintptr_t)from;
	return p && a >= lo && a <= lo + len ? to + (a - lo) : p;
}

void http1_head_rebase(struct http1_head *h, const char *from, const char *to)
{
	size_t n = h->head_len;
	h->method = rebased(h->method, from, n, to);
	h->target = rebased(h->target, from, n, to);
	h->reason = rebased(h->reason, from, n, to);
	h->host = rebased(h->host, from, n, to);
	for (size_t i = 0; i < h->n_headers; i++) {
		h->headers[i].name = rebased(h->headers[i].name, from, n, to);
		h->headers[i].value = rebased(h->headers[i].value, from, n, to);
	}
}
