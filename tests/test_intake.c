/* tests for proxy/intake.c's pure part: which requests are spooled and the
 * head a record keeps (hop-by-hop lines gone, every other byte as sent). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http1.h"
#include "intake.h"

struct parsed {
	struct http1_parser p;
	struct http1_head h;
};

static struct parsed *parse(const char *text)
{
	struct parsed *x = calloc(1, sizeof *x);
	assert_non_null(x);
	http1_parser_init(&x->p, HTTP1_REQUEST);
	assert_int_equal(http1_parse_head(&x->p, text, strlen(text), 8192, 32768, &x->h), HTTP1_DONE);
	return x;
}

static char *filtered(const char *text)
{
	struct parsed *x = parse(text);
	size_t len = x->h.head_len;
	char *out = calloc(1, len + 1);
	assert_non_null(out);
	size_t n = intake_filter_head(&x->h, text, len, out);
	out[n] = '\0';
	free(x);
	return out;
}

static void test_filter_keeps_end_to_end_bytes(void **state)
{
	(void)state;
	/* odd spacing and case on purpose: servers deduplicate by exact bytes */
	const char *in =
		"POST /a/p/receiver/?x=1 HTTP/1.1\r\n"
		"Host: cutover.test\r\n"
		"Authorization:  Basic dXNlcjpwYXNz\r\n"
		"Connection: keep-alive, X-Drop-Me\r\n"
		"content-type: multipart/form-data; boundary=----b0undary\r\n"
		"X-Drop-Me: 1\r\n"
		"Keep-Alive: timeout=5\r\n"
		"Proxy-Authorization: Basic eHg6eXk=\r\n"
		"Proxy-Connection: keep-alive\r\n"
		"TE: trailers\r\n"
		"Trailer: X-Sum\r\n"
		"Upgrade: h2c\r\n"
		"Transfer-Encoding: chunked\r\n"
		"X-OpenRosa-Version: 1.0\r\n"
		"Date: Fri, 04 Dec 2026 15:00:00 GMT\r\n"
		"User-Agent: org.odk.collect.android/v2024.1\r\n"
		"\r\n";
	char *out = filtered(in);
	assert_string_equal(out,
			    "POST /a/p/receiver/?x=1 HTTP/1.1\r\n"
			    "Host: cutover.test\r\n"
			    "Authorization:  Basic dXNlcjpwYXNz\r\n"
			    "content-type: multipart/form-data; boundary=----b0undary\r\n"
			    "X-OpenRosa-Version: 1.0\r\n"
			    "Date: Fri, 04 Dec 2026 15:00:00 GMT\r\n"
			    "User-Agent: org.odk.collect.android/v2024.1\r\n"
			    "\r\n");
	free(out);
}

static void test_filter_without_hop_by_hop_is_identity(void **state)
{
	(void)state;
	const char *in = "POST /r HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n";
	char *out = filtered(in);
	assert_string_equal(out, in);
	free(out);
}

static bool wants(const char *text, enum route_spool_auth auth)
{
	struct parsed *x = parse(text);
	bool w = intake_wants(&x->h, auth);
	free(x);
	return w;
}

static void test_wants(void **state)
{
	(void)state;
	const enum route_spool_auth opt = ROUTE_SPOOL_AUTH_OPTIONAL, req = ROUTE_SPOOL_AUTH_REQUIRED;
	const char *basic = "POST /r HTTP/1.1\r\nHost: h\r\nAuthorization: Basic eDp5\r\n\r\n";
	const char *none = "POST /r HTTP/1.1\r\nHost: h\r\n\r\n";
	const char *digest = "POST /r HTTP/1.1\r\nHost: h\r\n"
			     "Authorization: Digest username=\"u\", nonce=\"n\"\r\n\r\n";
	const char *digest_lower = "POST /r HTTP/1.1\r\nHost: h\r\nauthorization: digest x=1\r\n\r\n";
	const char *digestish = "POST /r HTTP/1.1\r\nHost: h\r\nAuthorization: DigestX y\r\n\r\n";
	assert_true(wants(basic, opt));
	assert_true(wants(basic, req));
	assert_true(wants(none, opt));
	assert_false(wants(none, req));
	assert_false(wants(digest, opt));
	assert_false(wants(digest, req));
	assert_false(wants(digest_lower, opt));
	assert_true(wants(digestish, opt));
	assert_false(wants("PUT /r HTTP/1.1\r\nHost: h\r\n\r\n", opt));
	assert_false(wants("HEAD /r HTTP/1.1\r\nHost: h\r\n\r\n", opt));
	assert_false(wants("GET /r HTTP/1.1\r\nHost: h\r\n\r\n", opt));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_filter_keeps_end_to_end_bytes),
		cmocka_unit_test(test_filter_without_hop_by_hop_is_identity),
		cmocka_unit_test(test_wants),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
