/* tests for proxy/response.c: responses cutover makes itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "http_assert.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>

#include "response.h"

static char *write_response(const struct response *r)
{
	struct evbuffer *b = evbuffer_new();
	assert_non_null(b);
	response_write(b, r);
	return buffer_string(b);
}

/* "Sun, 06 Nov 1994 08:49:37 GMT" (IMF-fixdate, RFC 7231 7.1.1.1). */
static void assert_imf_fixdate(const char *d)
{
	static const char *const days[] = { "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	if (strlen(d) != 29)
		fail_msg("Date '%s': length %zu, want 29", d, strlen(d));
	bool day_ok = false, month_ok = false;
	for (int i = 0; i < 7; i++)
		day_ok |= strncmp(d, days[i], 3) == 0;
	for (int i = 0; i < 12; i++)
		month_ok |= strncmp(d + 8, months[i], 3) == 0;
	const char *shape = "Ddd, 00 Mmm 0000 00:00:00 GMT";
	for (size_t i = 0; i < 29; i++) {
		bool ok = shape[i] == '0' ? isdigit((unsigned char)d[i]) != 0
			: (shape[i] == 'D' || shape[i] == 'd' || shape[i] == 'M' || shape[i] == 'm')
				? true
				: d[i] == shape[i];
		if (!ok)
			fail_msg("Date '%s': bad character at %zu", d, i);
	}
	if (!day_ok || !month_ok)
		fail_msg("Date '%s': bad day or month name", d);
	/* and it is now (within a few seconds) */
	struct tm tm = { 0 };
	assert_non_null(strptime(d, "%a, %d %b %Y %H:%M:%S GMT", &tm));
	time_t t = timegm(&tm);
	time_t now = time(NULL);
	assert_true(t <= now && now - t <= 5);
}

static void test_status_line_and_headers(void **state)
{
	(void)state;
	struct response r = {
		.status = 502,
		.mode = "new",
		.body = "upstream failed\n",
		.body_len = 16,
		.keep_alive = true,
	};
	char *out = write_response(&r);
	char v[128];
	assert_true(strncmp(out, "HTTP/1.1 502 Bad Gateway\r\n", 26) == 0);
	assert_non_null(header(out, "Date", v, sizeof v));
	assert_imf_fixdate(v);
	assert_string_equal(header(out, "X-Cutover-Mode", v, sizeof v), "new");
	assert_string_equal(header(out, "Content-Length", v, sizeof v), "16");
	assert_string_equal(header(out, "Content-Type", v, sizeof v), "text/plain; charset=utf-8");
	assert_null(header(out, "Connection", v, sizeof v));
	assert_string_equal(body_of(out), "upstream failed\n");
	free(out);
}

static void test_exact_layout(void **state)
{
	(void)state;
	struct response r = {
		.status = 404,
		.mode = "old",
		.content_type = "application/json",
		.body = "{}",
		.body_len = 2,
		.keep_alive = true,
	};
	/* retry if the second ticks between the write and the expected text */
	char *out = NULL;
	char want[512], before[40];
	for (int tries = 0; tries < 3; tries++) {
		free(out);
		snprintf(before, sizeof before, "%s", response_date());
		out = write_response(&r);
		if (strcmp(before, response_date()) == 0)
			break;
	}
	snprintf(want, sizeof want,
		 "HTTP/1.1 404 Not Found\r\n"
		 "Date: %s\r\n"
		 "Server: cutover\r\n"
		 "X-Cutover-Mode: old\r\n"
		 "Content-Type: application/json\r\n"
		 "Content-Length: 2\r\n"
		 "Cache-Control: no-store\r\n"
		 "\r\n"
		 "{}",
		 before);
	assert_string_equal(out, want);
	free(out);
}

static void test_content_length_matches_body(void **state)
{
	(void)state;
	static const char body[] = "a body\r\nwith\0a NUL";
	struct response r = { .status = 400, .mode = "old", .body = body,
			      .body_len = sizeof body - 1, .keep_alive = true };
	struct evbuffer *b = evbuffer_new();
	response_write(b, &r);
	size_t n = evbuffer_get_length(b);
	const char *raw = (const char *)evbuffer_pullup(b, -1);
	const char *end = memmem(raw, n, "\r\n\r\n", 4);
	assert_non_null(end);
	size_t head = (size_t)(end + 4 - raw);
	assert_int_equal(n - head, sizeof body - 1);
	assert_memory_equal(end + 4, body, sizeof body - 1);
	assert_int_equal(sizeof body - 1, 18);
	assert_non_null(memmem(raw, head, "\r\nContent-Length: 18\r\n", 22));
	evbuffer_free(b);
}

static void test_empty_body(void **state)
{
	(void)state;
	struct response r = { .status = 204, .mode = "hold", .keep_alive = true };
	char *out = write_response(&r);
	char v[64];
	assert_string_equal(header(out, "Content-Length", v, sizeof v), "0");
	assert_string_equal(header(out, "X-Cutover-Mode", v, sizeof v), "hold");
	assert_string_equal(body_of(out), "");
	free(out);
}

static void test_connection_close(void **state)
{
	(void)state;
	struct response r = { .status = 400, .mode = "old", .body = "bad\n", .body_len = 4 };
	char *out = write_response(&r);
	char v[64];
	assert_string_equal(header(out, "Connection", v, sizeof v), "close");
	assert_string_equal(body_of(out), "bad\n");
	free(out);
}

static void test_http10(void **state)
{
	(void)state;
	struct response r = { .status = 200, .mode = "old", .body = "ok", .body_len = 2,
			      .keep_alive = true, .http10 = true };
	char *out = write_response(&r);
	char v[64];
	assert_true(strncmp(out, "HTTP/1.0 200 OK\r\n", 17) == 0);
	assert_string_equal(header(out, "Connection", v, sizeof v), "keep-alive");
	free(out);
	r.keep_alive = false;
	out = write_response(&r);
	assert_true(strncmp(out, "HTTP/1.0 200 OK\r\n", 17) == 0);
	assert_string_equal(header(out, "Connection", v, sizeof v), "close");
	free(out);
}

static void test_head_only(void **state)
{
	(void)state;
	struct response r = { .status = 200, .mode = "new", .body = "healthy\n", .body_len = 8,
			      .keep_alive = true, .head_only = true };
	char *out = write_response(&r);
	char v[64];
	assert_string_equal(header(out, "Content-Length", v, sizeof v), "8");
	assert_string_equal(body_of(out), "");
	size_t n = strlen(out);
	assert_string_equal(out + n - 4, "\r\n\r\n");
	free(out);
}

static void test_extra_headers(void **state)
{
	(void)state;
	struct response r = { .status = 503, .mode = "maintenance", .body = "x", .body_len = 1,
			      .extra_headers = "Retry-After: 30\r\nX-Other: y\r\n" };
	char *out = write_response(&r);
	char v[64];
	assert_true(strncmp(out, "HTTP/1.1 503 Service Unavailable\r\n", 34) == 0);
	assert_string_equal(header(out, "Retry-After", v, sizeof v), "30");
	assert_string_equal(header(out, "X-Other", v, sizeof v), "y");
	assert_string_equal(header(out, "Connection", v, sizeof v), "close");
	assert_string_equal(header(out, "X-Cutover-Mode", v, sizeof v), "maintenance");
	assert_string_equal(body_of(out), "x");
	free(out);
}

static void test_no_mode(void **state)
{
	(void)state;
	struct response r = { .status = 500, .keep_alive = true };
	char *out = write_response(&r);
	char v[64];
	assert_string_equal(header(out, "X-Cutover-Mode", v, sizeof v), "-");
	free(out);
}

static void test_reasons(void **state)
{
	(void)state;
	assert_string_equal(response_reason(400), "Bad Request");
	assert_string_equal(response_reason(414), "URI Too Long");
	assert_string_equal(response_reason(431), "Request Header Fields Too Large");
	assert_string_equal(response_reason(502), "Bad Gateway");
	assert_string_equal(response_reason(504), "Gateway Timeout");
	assert_string_equal(response_reason(503), "Service Unavailable");
	assert_string_equal(response_reason(204), "No Content");
	assert_string_equal(response_reason(413), "Content Too Large");
	assert_string_equal(response_reason(999), "Unknown");
}

/* Every status cutover sends itself (proxy, admin API, maintenance) has
 * its standard reason phrase (RFC 9110 section 15), never "Unknown". */
static void test_reasons_of_every_status_sent(void **state)
{
	(void)state;
	static const struct {
		int status;
		const char *reason;
	} table[] = {
		{ 100, "Continue" },
		{ 200, "OK" },
		{ 201, "Created" },
		{ 202, "Accepted" },
		{ 204, "No Content" },
		{ 400, "Bad Request" },
		{ 401, "Unauthorized" },
		{ 403, "Forbidden" },
		{ 404, "Not Found" },
		{ 405, "Method Not Allowed" },
		{ 408, "Request Timeout" },
		{ 409, "Conflict" },
		{ 411, "Length Required" },
		{ 412, "Precondition Failed" },
		{ 413, "Content Too Large" },
		{ 414, "URI Too Long" },
		{ 415, "Unsupported Media Type" },
		{ 417, "Expectation Failed" },
		{ 421, "Misdirected Request" },
		{ 423, "Locked" },
		{ 425, "Too Early" },
		{ 429, "Too Many Requests" },
		{ 431, "Request Header Fields Too Large" },
		{ 500, "Internal Server Error" },
		{ 501, "Not Implemented" },
		{ 502, "Bad Gateway" },
		{ 503, "Service Unavailable" },
		{ 504, "Gateway Timeout" },
		{ 505, "HTTP Version Not Supported" },
		{ 507, "Insufficient Storage" },
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (strcmp(response_reason(table[i].status), table[i].reason) != 0)
			fail_msg("%d: reason '%s', want '%s'", table[i].status,
				 response_reason(table[i].status), table[i].reason);
}

static void test_date(void **state)
{
	(void)state;
	const char *d = response_date();
	assert_imf_fixdate(d);
	/* cached: the same buffer */
	assert_ptr_equal(response_date(), d);
}

/* The layout maintenance answers use: Cache-Control and the extra headers
 * first, and for a 204 neither Content-Type nor Content-Length. */
static void test_extra_headers_first_and_no_content(void **state)
{
	(void)state;
	struct response r = {
		.status = 503,
		.mode = "maintenance",
		.body = "later\n",
		.body_len = 6,
		.extra_headers = "Retry-After: 120\r\n",
		.extra_headers_first = true,
	};
	char *out = NULL;
	char want[512], before[40];
	for (int tries = 0; tries < 3; tries++) {
		free(out);
		snprintf(before, sizeof before, "%s", response_date());
		struct evbuffer *b = evbuffer_new();
		assert_non_null(b);
		assert_int_equal(response_write(b, &r), 0);
		out = buffer_string(b);
		if (strcmp(before, response_date()) == 0)
			break;
	}
	snprintf(want, sizeof want,
		 "HTTP/1.1 503 Service Unavailable\r\n"
		 "Date: %s\r\n"
		 "Server: cutover\r\n"
		 "X-Cutover-Mode: maintenance\r\n"
		 "Cache-Control: no-store\r\n"
		 "Retry-After: 120\r\n"
		 "Content-Type: text/plain; charset=utf-8\r\n"
		 "Content-Length: 6\r\n"
		 "Connection: close\r\n"
		 "\r\n"
		 "later\n",
		 before);
	assert_string_equal(out, want);
	free(out);

	r = (struct response){ .status = 204, .mode = "maintenance", .keep_alive = true,
			       .content_type = "text/xml", .no_content = true,
			       .extra_headers = "X-OpenRosa-Version: 1.0\r\n" };
	out = write_response(&r);
	char v[64];
	assert_null(header(out, "Content-Length", v, sizeof v));
	assert_null(header(out, "Content-Type", v, sizeof v));
	assert_string_equal(header(out, "X-OpenRosa-Version", v, sizeof v), "1.0");
	assert_non_null(strstr(out, "\r\nCache-Control: no-store\r\nX-OpenRosa-Version: 1.0\r\n\r\n"));
	assert_string_equal(body_of(out), "");
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status_line_and_headers),
		cmocka_unit_test(test_exact_layout),
		cmocka_unit_test(test_content_length_matches_body),
		cmocka_unit_test(test_empty_body),
		cmocka_unit_test(test_connection_close),
		cmocka_unit_test(test_http10),
		cmocka_unit_test(test_head_only),
		cmocka_unit_test(test_extra_headers),
		cmocka_unit_test(test_no_mode),
		cmocka_unit_test(test_reasons),
		cmocka_unit_test(test_reasons_of_every_status_sent),
		cmocka_unit_test(test_date),
		cmocka_unit_test(test_extra_headers_first_and_no_content),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
