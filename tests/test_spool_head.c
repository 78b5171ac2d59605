/* tests for proxy/spool_head.c: a stored head as the operator sees it
 * (lines, Authorization redacted), the lines curl's header file leaves
 * out, and bytes through JSON and back (ISO-8859-1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "spool_head.h"

/* LINE redacted (or not) as a NUL-terminated string in OUT. */
static const char *redact(const char *line, bool credentials, char *out, size_t cap)
{
	size_t n = spool_head_redact(line, strlen(line), credentials, out, cap);
	out[n] = '\0';
	return out;
}

static void test_redaction_keeps_the_scheme(void **state)
{
	(void)state;
	char out[128];
	assert_string_equal(redact("Authorization: Basic ZGV2aWNlOnMzY3JldA==", false, out, 100),
			    "Authorization: Basic <redacted>");
	assert_string_equal(redact("authorization:Bearer abc", false, out, 100),
			    "authorization:Bearer <redacted>");
	/* a lone token is the credential itself */
	assert_string_equal(redact("Authorization: s3cret", false, out, 100),
			    "Authorization: <redacted>");
	assert_string_equal(redact("AUTHORIZATION:   Basic\tx  ", false, out, 100),
			    "AUTHORIZATION:   Basic <redacted>");
	/* a short credential still fits in LINE_LEN + SPOOL_HEAD_REDACT_EXTRA */
	const char *s = "Authorization: Basic x";
	size_t cap = strlen(s) + SPOOL_HEAD_REDACT_EXTRA;
	assert_string_equal(redact(s, false, out, cap), "Authorization: Basic <redacted>");
	assert_true(strlen(out) <= cap);
	/* other headers, and Authorization when asked for, stay as they are */
	assert_string_equal(redact("Authorization: Basic ZGV2", true, out, 100),
			    "Authorization: Basic ZGV2");
	assert_string_equal(redact("X-Authorization: Basic ZGV2", false, out, 100),
			    "X-Authorization: Basic ZGV2");
	assert_string_equal(redact("Authorization-Info: x", false, out, 100),
			    "Authorization-Info: x");
	assert_string_equal(redact("POST /a/authorization: HTTP/1.1", false, out, 100),
			    "POST /a/authorization: HTTP/1.1");
	/* too small: nothing, never a credential cut in half */
	assert_int_equal(spool_head_redact(s, strlen(s), false, out, 10), 0);
}

static void test_lines_end_at_the_blank_line(void **state)
{
	(void)state;
	const char head[] = "POST /a/x/receiver/ HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\nbody";
	size_t pos = 0, len;
	const char *line;
	const char *want[] = { "POST /a/x/receiver/ HTTP/1.1", "Host: h", "X-A: 1" };
	for (size_t i = 0; i < 3; i++) {
		assert_true(spool_head_next_line(head, sizeof(head) - 1, &pos, &line, &len));
		assert_int_equal(len, strlen(want[i]));
		assert_memory_equal(line, want[i], len);
	}
	assert_false(spool_head_next_line(head, sizeof(head) - 1, &pos, &line, &len));
	assert_false(spool_head_next_line(head, sizeof(head) - 1, &pos, &line, &len));
	pos = 0;
	assert_false(spool_head_next_line("", 0, &pos, &line, &len));
}

static void test_curl_skips_what_curl_sets(void **state)
{
	(void)state;
	const char *skip[] = { "Host: a", "content-length: 3", "Transfer-Encoding: chunked",
			       "X-Cutover-Peer: 127.0.0.1 http" };
	const char *keep[] = { "Content-Type: text/xml", "Authorization: Basic x",
			       "X-OpenRosa-Version: 1.0", "Hostname: a", "Date: x" };
	for (size_t i = 0; i < 4; i++)
		assert_true(spool_head_curl_skips(skip[i], strlen(skip[i])));
	for (size_t i = 0; i < 5; i++)
		assert_false(spool_head_curl_skips(keep[i], strlen(keep[i])));
}

static void test_curl_line_keeps_an_empty_header(void **state)
{
	(void)state;
	char out[64];
	const char *cases[][2] = {
		{ "X-Empty:", "X-Empty;" }, { "X-Empty:  \t", "X-Empty;" },
		{ "X-A: 1", "X-A: 1" }, { "Date: Fri, 04 Dec 2026", "Date: Fri, 04 Dec 2026" },
	};
	for (size_t i = 0; i < 4; i++) {
		size_t n = spool_head_curl_line(cases[i][0], strlen(cases[i][0]), out);
		out[n] = '\0';
		assert_string_equal(out, cases[i][1]);
	}
}

static void test_latin1_round_trip(void **state)
{
	(void)state;
	char in[256], utf[512], back[256];
	for (int i = 0; i < 256; i++)
		in[i] = (char)i;
	size_t u = spool_head_latin1_to_utf8(in, sizeof(in), utf);
	assert_int_equal(u, 128 + 2 * 128);
	assert_int_equal(spool_head_utf8_to_latin1(utf, u, back), 256);
	assert_memory_equal(back, in, 256);
	/* above U+00FF, a lone lead byte, a stray continuation: refused */
	assert_int_equal(spool_head_utf8_to_latin1("\xe2\x82\xac", 3, back), (size_t)-1);
	assert_int_equal(spool_head_utf8_to_latin1("a\xc3", 2, back), (size_t)-1);
	assert_int_equal(spool_head_utf8_to_latin1("\x80", 1, back), (size_t)-1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_redaction_keeps_the_scheme),
		cmocka_unit_test(test_lines_end_at_the_blank_line),
		cmocka_unit_test(test_curl_skips_what_curl_sets),
		cmocka_unit_test(test_curl_line_keeps_an_empty_header),
		cmocka_unit_test(test_latin1_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
