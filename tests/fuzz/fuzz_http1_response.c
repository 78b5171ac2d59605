/* fuzz_http1_response: upstream answers as httpclient.c reads them: the
 * head parsed from the bytes received so far, interim 1xx answers skipped
 * (101 refused), then a chunked body pulled through http1_chunked_move()
 * from an evbuffer of several chains, within a budget per call. httpclient
 * itself needs a pooled upstream connection; this drives the same parser
 * calls in the same order without a socket.
 *
 * Input: one control byte (bit 0: the request was HEAD; bits 1-3: the step
 * between parse calls; bits 4-7: the budget per move), then the bytes an
 * upstream sends. */
#include "fuzz.h"

#include <stdbool.h>

#include <event2/buffer.h>

#include "http1.h"

/* httpclient.c's MAX_RESPONSE_HEAD, and the most interim answers read. */
#define MAX_HEAD 65536
#define MAX_INTERIM 16
#define CHAINS 5

static bool inside(const char *p, size_t n, const char *buf, size_t len)
{
	return p >= buf && p + n <= buf + len;
}

static void check_head(const struct http1_head *h, const char *buf, size_t len, bool head_only)
{
	FUZZ_CHECK(h->head_len >= 4 && h->head_len <= len, "head_len %zu of %zu", h->head_len, len);
	FUZZ_CHECK(memcmp(buf + h->head_len - 4, "\r\n\r\n", 4) == 0, "head not ended by CRLFCRLF");
	FUZZ_CHECK(h->status >= 100 && h->status <= 999, "status %d", h->status);
	FUZZ_CHECK(h->reason_len == 0 || inside(h->reason, h->reason_len, buf, h->head_len),
		   "reason outside the head");
	for (size_t i = 0; i < h->n_headers; i++) {
		const struct http1_header *f = &h->headers[i];
		FUZZ_CHECK(f->name_len > 0 && inside(f->name, f->name_len, buf, h->head_len),
			   "header %zu name", i);
		FUZZ_CHECK(!memchr(f->value, '\r', f->value_len) && !memchr(f->value, '\n', f->value_len),
			   "CR or LF inside the value of %.*s", (int)f->name_len, f->name);
	}
	if (head_only || h->status == 204 || h->status == 304)
		FUZZ_CHECK(h->framing == HTTP1_BODY_NONE, "a body after HEAD, 204 or 304");
	FUZZ_CHECK(h->framing != HTTP1_BODY_LENGTH || h->content_length > 0, "length 0 framing");
}

static void body(struct http1_parser *p, const char *buf, size_t len, size_t budget)
{
	struct evbuffer *in = evbuffer_new(), *out = evbuffer_new();
	if (!in || !out)
		abort();
	/* Several chains, as bytes come from several reads. */
	size_t cut = len / CHAINS + 1;
	for (size_t off = 0; off < len; off += cut)
		evbuffer_add_reference(in, buf + off, len - off < cut ? len - off : cut, NULL, NULL);
	bool done = false;
	size_t moved = 0;
	for (int calls = 0; !done && evbuffer_get_length(in); calls++) {
		size_t before = evbuffer_get_length(in);
		long used = http1_chunked_move(p, in, budget, out, &done);
		if (used < 0) {
			FUZZ_CHECK(p->error_reason, "chunked error without a reason");
			break;
		}
		FUZZ_CHECK((size_t)used <= budget && before - evbuffer_get_length(in) == (size_t)used,
			   "moved %ld with budget %zu", used, budget);
		FUZZ_CHECK(used > 0 || done, "no progress");
		moved += (size_t)used;
		FUZZ_CHECK(evbuffer_get_length(out) <= moved, "decoded more than read");
	}
	evbuffer_free(in);
	evbuffer_free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 2 * MAX_HEAD)
		return 0;
	unsigned ctl = data[0];
	bool head_only = ctl & 1;
	size_t step = (ctl >> 1) & 7 ? ((ctl >> 1) & 7) * 11 : SIZE_MAX;
	size_t budget = ctl >> 4 ? (ctl >> 4) * 3 : 16384;
	size_t len = size - 1;
	char *buf = malloc(len ? len : 1);
	if (!buf)
		abort();
	memcpy(buf, data + 1, len);

	struct http1_parser p;
	struct http1_head *h = malloc(sizeof(*h));
	if (!h)
		abort();
	http1_parser_init(&p, HTTP1_RESPONSE);
	http1_expect_no_body(&p, head_only);
	size_t off = 0;
	for (int interim = 0; interim < MAX_INTERIM; interim++) {
		enum http1_result r = HTTP1_MORE;
		size_t have = 0, avail = len - off;
		while (r == HTTP1_MORE && have < avail) {
			have = avail - have > step ? have + step : avail;
			size_t want = have < MAX_HEAD + 1 ? have : MAX_HEAD + 1;
			r = http1_parse_head(&p, buf + off, want, MAX_HEAD, MAX_HEAD, h);
			if (want < have)
				break;
		}
		if (r == HTTP1_ERROR) {
			FUZZ_CHECK(p.error_status == 502 && p.error_reason, "error %d without reason",
				   p.error_status);
			break;
		}
		if (r != HTTP1_DONE)
			break;
		check_head(h, buf + off, have, head_only);
		off += h->head_len;
		if (h->status / 100 == 1) {
			if (h->status == 101)
				break;
			continue;
		}
		if (h->framing == HTTP1_BODY_CHUNKED)
			body(&p, buf + off, len - off, budget);
		break;
	}
	free(h);
	free(buf);
	return 0;
}
