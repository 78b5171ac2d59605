/* tests for proxy/dashboard.c: the embedded page is whole and
 * self-contained, and the CSP sent with it allows exactly its inline
 * script and style, by hashes recomputed here with OpenSSL (not by the
 * generator that made them). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "dashboard.h"

/* The page as a NUL-terminated copy (it holds no NUL itself). */
static char page[256 * 1024];

static const char *load_page(void)
{
	size_t len;
	const unsigned char *bytes = dashboard_page(&len);
	assert_non_null(bytes);
	assert_true(len > 0 && len < sizeof(page));
	assert_null(memchr(bytes, '\0', len));
	memcpy(page, bytes, len);
	page[len] = '\0';
	return page;
}

/* "'sha256-BASE64'" of the text between OPEN and CLOSE, which occur once. */
static void element_hash(const char *html, const char *open, const char *close, char *out,
			 size_t out_len)
{
	const char *a = strstr(html, open);
	assert_non_null(a);
	assert_null(strstr(a + 1, open));
	a += strlen(open);
	const char *b = strstr(a, close);
	assert_non_null(b);
	unsigned char md[SHA256_DIGEST_LENGTH];
	assert_non_null(SHA256((const unsigned char *)a, (size_t)(b - a), md));
	unsigned char b64[64];
	int n = EVP_EncodeBlock(b64, md, sizeof(md));
	assert_true(n > 0);
	snprintf(out, out_len, "'sha256-%s'", b64);
}

static void test_page_is_whole_and_self_contained(void **state)
{
	(void)state;
	const char *html = load_page();
	assert_int_equal(strncmp(html, "<!DOCTYPE html>", 15), 0);
	assert_non_null(strstr(html, "<meta charset=\"utf-8\">"));
	size_t len = strlen(html);
	assert_string_equal(html + len - 8, "</html>\n");
	/* nothing loaded from elsewhere, no CR (the hashes are of LF text) */
	assert_null(strstr(html, "http://"));
	assert_null(strstr(html, "https://"));
	assert_null(strstr(html, " src="));
	assert_null(strstr(html, " href="));
	assert_null(strchr(html, '\r'));
	/* data goes in as text: the page never parses markup it did not write */
	assert_null(strstr(html, "innerHTML"));
	assert_null(strstr(html, "outerHTML"));
	assert_null(strstr(html, "insertAdjacentHTML"));
	assert_null(strstr(html, "document.write"));
	/* it reads /status, relative to where it was served */
	assert_non_null(strstr(html, "fetch(\"status\""));
}

static void test_csp_allows_exactly_the_inline_script_and_style(void **state)
{
	(void)state;
	const char *html = load_page();
	const char *h = dashboard_headers();
	char script[80], style[80], want[256];
	element_hash(html, "<script>", "</script>", script, sizeof(script));
	element_hash(html, "<style>", "</style>", style, sizeof(style));
	snprintf(want, sizeof(want), "script-src %s;", script);
	assert_non_null(strstr(h, want));
	snprintf(want, sizeof(want), "style-src %s;", style);
	assert_non_null(strstr(h, want));
	assert_int_equal(strncmp(h, "Content-Security-Policy: default-src 'none'; ", 45), 0);
	assert_non_null(strstr(h, "connect-src 'self';"));
	assert_non_null(strstr(h, "frame-ancestors 'none'"));
	assert_null(strstr(h, "unsafe"));
	assert_non_null(strstr(h, "\r\nX-Content-Type-Options: nosniff\r\n"));
}

static void test_headers_are_whole_lines(void **state)
{
	(void)state;
	const char *h = dashboard_headers();
	size_t len = strlen(h);
	assert_true(len > 4);
	assert_string_equal(h + len - 2, "\r\n");
	/* every LF ends a CRLF and no line is empty: the head stays well formed */
	for (const char *p = h; *p; p++) {
		if (*p == '\n') {
			assert_true(p > h && p[-1] == '\r');
			assert_true(p[1] != '\r');
		} else {
			assert_true((unsigned char)*p >= 0x20 || *p == '\r');
		}
	}
}

static bool allowed(const char *host, const char *origin)
{
	return dashboard_browser_allowed(host, host ? strlen(host) : 0, origin,
					 origin ? strlen(origin) : 0);
}

static void test_browser_requests_only_from_loopback_names(void **state)
{
	(void)state;
	/* the page itself, through a tunnel or on the TCP listener */
	assert_true(allowed("127.0.0.1:8090", NULL));
	assert_true(allowed("127.0.0.1:8090", "http://127.0.0.1:8090"));
	assert_true(allowed("localhost:8090", "http://localhost:8090"));
	assert_true(allowed("LocalHost", "http://localhost"));
	assert_true(allowed("[::1]:18090", "http://[::1]:18090"));
	assert_true(allowed("127.1.2.3", NULL));
	/* cross-site: another origin, or none a browser would name */
	assert_false(allowed("127.0.0.1:8090", "https://evil.example"));
	assert_false(allowed("127.0.0.1:8090", "http://127.0.0.1:8091"));
	assert_false(allowed("127.0.0.1:8090", "http://127.0.0.1:8090/"));
	assert_false(allowed("127.0.0.1:8090", "https://127.0.0.1:8090"));
	assert_false(allowed("127.0.0.1:8090", "null"));
	/* rebinding: a name that is not ours, whatever its origin says */
	assert_false(allowed("evil.example:8090", "http://evil.example:8090"));
	assert_false(allowed("evil.example", NULL));
	assert_false(allowed(NULL, NULL));
	assert_false(allowed("", NULL));
	assert_false(allowed("127.0.0.1.evil.example", NULL));
	assert_false(allowed("127.0.0.1:", NULL));
	assert_false(allowed("127.0.0.1:123456", NULL));
	assert_false(allowed("127.0.0", NULL));
	assert_false(allowed("127.0.0.1.", NULL));
	assert_false(allowed("localhost.evil.example", NULL));
	assert_false(allowed("10.0.0.1:8090", NULL));
	assert_false(allowed("[::2]", NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_page_is_whole_and_self_contained),
		cmocka_unit_test(test_csp_allows_exactly_the_inline_script_and_style),
		cmocka_unit_test(test_headers_are_whole_lines),
		cmocka_unit_test(test_browser_requests_only_from_loopback_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
