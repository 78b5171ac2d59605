/* tests for proxy/rewrite.c: the request head sent upstream and the
 * response head sent to the client, from heads parsed by http1_parse_head(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "addr.h"
#include "rewrite.h"
#include "http1.h"
#include "upstream.h"

struct fx {
	struct http1_parser p;
	struct http1_head h;
	struct upstream_conf up;
	struct rewrite_conf fc;
	struct cidr trusted[2];
	struct sockaddr_storage peer;
	char *out;                  /* NUL-terminated copy of what was written */
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	f->up.name = "old";
	f->up.defined = true;
	f->up.host = "127.0.0.1";
	f->up.port = 8081;
	f->up.host_header = "127.0.0.1:8081";
	struct sockaddr_in *sin = (struct sockaddr_in *)&f->peer;
	sin->sin_family = AF_INET;
	sin->sin_port = htons(40000);
	inet_pton(AF_INET, "127.0.0.1", &sin->sin_addr);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	free(f->out);
	free(f);
	return 0;
}

static void trust(struct fx *f, const char *cidr)
{
	const char *why = NULL;
	assert_true(f->fc.trusted_proxies.n < 2);
	if (cidr_parse(cidr, &f->trusted[f->fc.trusted_proxies.n], &why) != 0)
		fail_msg("cidr_parse(%s): %s", cidr, why ? why : "?");
	f->fc.trusted_proxies.v = f->trusted;
	f->fc.trusted_proxies.n++;
}

static void set_peer6(struct fx *f, const char *ip)
{
	memset(&f->peer, 0, sizeof f->peer);
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&f->peer;
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(40000);
	assert_int_equal(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
}

static char *drain(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	char *s = malloc(n + 1);
	assert_non_null(s);
	memcpy(s, evbuffer_pullup(b, -1), n);
	s[n] = '\0';
	evbuffer_free(b);
	return s;
}

static void parse(struct fx *f, enum http1_kind kind, bool no_body, const char *text)
{
	http1_parser_init(&f->p, kind);
	http1_expect_no_body(&f->p, no_body);
	enum http1_result r = http1_parse_head(&f->p, text, strlen(text), 8192, 32768, &f->h);
	if (r != HTTP1_DONE)
		fail_msg("cannot parse '%s': %d %s", text, f->p.error_status, f->p.error_reason);
}

/* Parses TEXT as a request and returns the head rewrite_request_head writes. */
static const char *fwd_req(struct fx *f, const char *text, bool tls)
{
	parse(f, HTTP1_REQUEST, false, text);
	struct evbuffer *b = evbuffer_new();
	assert_non_null(b);
	rewrite_request_head(b, &f->h, &f->up, &f->fc, (const struct sockaddr *)&f->peer, tls);
	free(f->out);
	f->out = drain(b);
	return f->out;
}

static const char *fwd_resp(struct fx *f, const char *text, bool chunked, bool keep_alive,
			    bool http10)
{
	parse(f, HTTP1_RESPONSE, false, text);
	struct evbuffer *b = evbuffer_new();
	assert_non_null(b);
	rewrite_response_head(b, &f->h, chunked, keep_alive, http10);
	free(f->out);
	f->out = drain(b);
	return f->out;
}

/* Number of header lines in head OUT named NAME (case-insensitive). */
static int count_header(const char *out, const char *name)
{
	int n = 0;
	size_t len = strlen(name);
	const char *line = strstr(out, "\r\n");
	while (line && line[2] != '\r') {
		line += 2;
		if (strncasecmp(line, name, len) == 0 && line[len] == ':')
			n++;
		line = strstr(line, "\r\n");
	}
	return n;
}

/* Asserts OUT has exactly one header line "NAME: VALUE". */
static void assert_one_header(const char *out, const char *name, const char *value)
{
	char want[512];
	snprintf(want, sizeof want, "\r\n%s: %s\r\n", name, value);
	if (count_header(out, name) != 1 || !strstr(out, want))
		fail_msg("want exactly one '%s: %s' in:\n%s", name, value, out);
}

static void assert_no_header(const char *out, const char *name)
{
	if (count_header(out, name) != 0)
		fail_msg("'%s' should be gone from:\n%s", name, out);
}

/* ---- requests ---- */

static void test_request_exact(void **state)
{
	struct fx *f = *state;
	const char *out = fwd_req(f, "GET /a/p/x?y=1 HTTP/1.1\r\n"
				     "Host: example.org\r\n"
				     "User-Agent: t/1\r\n"
				     "Accept: */*\r\n"
				     "\r\n", false);
	assert_string_equal(out, "GET /a/p/x?y=1 HTTP/1.1\r\n"
				 "Host: 127.0.0.1:8081\r\n"
				 "User-Agent: t/1\r\n"
				 "Accept: */*\r\n"
				 "X-Forwarded-For: 127.0.0.1\r\n"
				 "X-Forwarded-Proto: http\r\n"
				 "X-Forwarded-Host: example.org\r\n"
				 "\r\n");
}

static void test_request_absolute_form(void **state)
{
	struct fx *f = *state;
	const char *out = fwd_req(f, "GET http://h/p?q HTTP/1.1\r\nHost: h\r\n\r\n", false);
	assert_true(strncmp(out, "GET /p?q HTTP/1.1\r\n", 19) == 0);
	out = fwd_req(f, "GET http://h:8080/ HTTP/1.1\r\nHost: h\r\n\r\n", false);
	assert_true(strncmp(out, "GET / HTTP/1.1\r\n", 16) == 0);
	out = fwd_req(f, "GET http://h HTTP/1.1\r\nHost: h\r\n\r\n", false);
	assert_true(strncmp(out, "GET / HTTP/1.1\r\n", 16) == 0);
	out = fwd_req(f, "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", false);
	assert_true(strncmp(out, "OPTIONS * HTTP/1.1\r\n", 20) == 0);
}

/* Regression: "http://h?q" keeps its query: its origin-form is "/?q"
 * (RFC 9112 3.2). */
static void test_absolute_form_query_without_path(void **state)
{
	struct fx *f = *state;
	const char *out = fwd_req(f, "GET http://h?q=1 HTTP/1.1\r\nHost: h\r\n\r\n", false);
	if (strncmp(out, "GET /?q=1 HTTP/1.1\r\n", 20) != 0)
		fail_msg("request line: %.*s (want GET /?q=1 HTTP/1.1)",
			 (int)(strstr(out, "\r\n") - out), out);
}

static void test_request_http10_becomes_11(void **state)
{
	struct fx *f = *state;
	const char *out = fwd_req(f, "GET /x HTTP/1.0\r\n\r\n", false);
	assert_string_equal(out, "GET /x HTTP/1.1\r\n"
				 "Host: 127.0.0.1:8081\r\n"
				 "X-Forwarded-For: 127.0.0.1\r\n"
				 "X-Forwarded-Proto: http\r\n"
				 "\r\n");
}

static void test_request_preserve_host(void **state)
{
	struct fx *f = *state;
	f->up.preserve_host = true;
	const char *out = fwd_req(f, "GET / HTTP/1.1\r\nHost: client.example:8443\r\n\r\n", false);
	assert_true(strncmp(out, "GET / HTTP/1.1\r\nHost: client.example:8443\r\n", 43) == 0);
	assert_one_header(out, "Host", "client.example:8443");
	assert_one_header(out, "X-Forwarded-Host", "client.example:8443");
	/* no client Host (HTTP/1.0): the upstream's */
	out = fwd_req(f, "GET / HTTP/1.0\r\n\r\n", false);
	assert_one_header(out, "Host", "127.0.0.1:8081");
	assert_no_header(out, "X-Forwarded-Host");
}

static void test_request_host_replaced(void **state)
{
	struct fx *f = *state;
	const char *out = fwd_req(f, "GET / HTTP/1.1\r\nhost: client.example\r\n\r\n", false);
	assert_one_header(out, "Host", "127.0.0.1:8081");
	assert_one_header(out, "X-Forwarded-Host", "client.example");
}

static void test_xff_untrusted_replaced(void **state)
{
	struct fx *f = *state;
	trust(f, "10.0.0.0/8");
	const char *out = fwd_req(f, "GET / HTTP/1.1\r\nHost: h\r\n"
				     "X-Forwarded-For: 1.2.3.4\r\n"
				     "X-Forwarded-Proto: https\r\n"
				     "X-Forwarded-Host: evil.example\r\n"
				     "\r\n", false);
	assert_one_header(out, "X-Forwarded-For", "127.0.0.1");
	assert_one_header(out, "X-Forwarded-Proto", "http");
	assert_one_header(out, "X-Forwarded-Host", "h");
	assert_null(strstr(out, "1.2.3.4"));
	assert_null(strstr(out, "evil"));
}

static void test_xff_trusted_appended(void **state)
{
	struct fx *f = *state;
	trust(f, "127.0.0.0/8");
	const char *out = fwd_req(f, "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",
				  false);
	assert_one_header(out, "X-Forwarded-For", "1.2.3.4, 127.0.0.1");
	assert_one_header(out, "X-Forwarded-Proto", "http");
	assert_one_header(out, "X-Forwarded-Host", "h");
}

static void test_xff_trusted_several_lines_joined(void **state)
{
	struct fx *f = *state;
	trust(f, "127.0.0.1");
	const char *out = fwd_req(f, "GET / HTTP/1.1\r\nHost: h\r\n"
				     "X-Forwarded-For: 1.1.1.1\r\n"
				     "Accept: */*\r\n"
				     "x-forwarded-for: 2.2.2.2, 3.3.3.3\r\n"
				     "\r\n", false);
	assert_one_header(out, "X-Forwarded-For", "1.1.1.1, 2.2.2.2, 3.3.3.3, 127.0.0.1");
	assert_one_header(out, "Accept", "*/*");
}

static void test_xff_untrusted_several_lines_dropped(void **state)
{
	struct fx *f = *state;
	const char *out = fwd_req(f, "GET / HTTP/1.1\r\nHost: h\r\n"
				     "X-Forwarded-For: 1.1.1.1\r\n"
				     "X-Forwarded-For: 2.2.2.2\r\n"
				     "\r\n", false);
	assert_one_header(out, "X-Forwarded-For", "127.0.0.1");
}

/* A trusted proxy's X-Forwarded-Proto/Host are kept, not added again. */
static void test_forwarded_proto_host_trusted_kept(void **state)
{
	struct fx *f = *state;
	trust(f, "127.0.0.0/8");
	const char *out = fwd_req(f, "GET / HTTP/1.1\r\nHost: inner\r\n"
				     "X-Forwarded-Proto: https\r\n"
				     "X-Forwarded-Host: outer.example\r\n"
				     "\r\n", false);
	assert_one_header(out, "X-Forwarded-Proto", "https");
	assert_one_header(out, "X-Forwarded-Host", "outer.example");
}

static void test_forwarded_proto_tls(void **state)
{
	struct fx *f = *state;
	const char *out = fwd_req(f, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", true);
	assert_one_header(out, "X-Forwarded-Proto", "https");
}

static void test_xff_ipv6_peer(void **state)
{
	struct fx *f = *state;
	set_peer6(f, "::1");
	const char *out = fwd_req(f, "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",
				  false);
	assert_one_header(out, "X-Forwarded-For", "::1");
	trust(f, "::1/128");
	out = fwd_req(f, "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n", false);
	assert_one_header(out, "X-Forwarded-For", "1.2.3.4, ::1");
}

static void test_hop_by_hop_removed(void **state)
{
	struct fx *f = *state;
	const char *out = fwd_req(f, "GET / HTTP/1.1\r\nHost: h\r\n"
				     "Connection: close, X-Secret\r\n"
				     "X-Secret: s3cr3t\r\n"
				     "Keep-Alive: timeout=5\r\n"
				     "TE: trailers\r\n"
				     "Trailer: X-T\r\n"
				     "Upgrade: websocket\r\n"
				     "Proxy-Connection: keep-alive\r\n"
				     "X-Kept: yes\r\n"
				     "\r\n", false);
	static const char *const gone[] = { "Connection", "X-Secret", "Keep-Alive", "TE",
					    "Trailer", "Upgrade", "Proxy-Connection",
					    "Transfer-Encoding" };
	for (size_t i = 0; i < sizeof gone / sizeof *gone; i++)
		assert_no_header(out, gone[i]);
	assert_null(strstr(out, "s3cr3t"));
	assert_null(strstr(out, "websocket"));
	assert_one_header(out, "X-Kept", "yes");
}

/* Tokens of several Connection headers, any case and spacing, all count. */
static void test_connection_tokens(void **state)
{
	struct fx *f = *state;
	const char *out = fwd_req(f, "GET / HTTP/1.1\r\nHost: h\r\n"
				     "Connection: x-a ,X-B\r\n"
				     "connection: \tx-c\r\n"
				     "X-A: 1\r\nX-B: 2\r\nX-C: 3\r\nX-AB: 4\r\nX-: 5\r\n"
				     "\r\n", false);
	assert_no_header(out, "X-A");
	assert_no_header(out, "X-B");
	assert_no_header(out, "X-C");
	assert_one_header(out, "X-AB", "4");
	assert_one_header(out, "X-", "5");
}

/* More Connection tokens than are collected at once: the rest are still
 * looked up. */
static void test_many_connection_tokens(void **state)
{
	struct fx *f = *state;
	const char *out = fwd_req(f, "GET / HTTP/1.1\r\nHost: h\r\n"
				     "Connection: t1, t2, t3, t4, t5, t6\r\n"
				     "Connection: t7, t8, t9, t10\r\n"
				     "T1: a\r\nT8: b\r\nT9: c\r\nT10: d\r\nT11: e\r\n"
				     "\r\n", false);
	assert_no_header(out, "T1");
	assert_no_header(out, "T8");
	assert_no_header(out, "T9");
	assert_no_header(out, "T10");
	assert_one_header(out, "T11", "e");
}

/* The head is written into space reserved once: the worst case of what
 * is added (Host written twice, a space after every colon, every
 * X-Forwarded-For joined, the framing re-said) still fits. */
static void test_request_head_bound(void **state)
{
	struct fx *f = *state;
	trust(f, "127.0.0.0/8");
	f->up.preserve_host = true;
	static char text[16384];
	char host[4001];
	memset(host, 'h', sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	int n = snprintf(text, sizeof(text), "POST http://x/ HTTP/1.0\r\nHost:%s\r\n", host);
	for (int i = 0; i < 60; i++)
		n += snprintf(text + n, sizeof(text) - (size_t)n, "X-Forwarded-For:%d\r\n", i);
	n += snprintf(text + n, sizeof(text) - (size_t)n, "Content-Length:12345678901\r\n\r\n");
	const char *out = fwd_req(f, text, false);
	assert_non_null(strstr(out, "X-Forwarded-For: 0, 1, 2,"));
	assert_non_null(strstr(out, "58, 59, 127.0.0.1\r\n"));
	assert_one_header(out, "Content-Length", "12345678901");
	assert_int_equal(count_header(out, "X-Forwarded-Host"), 1);
}

static void test_is_hop_by_hop(void **state)
{
	struct fx *f = *state;
	parse(f, HTTP1_REQUEST, false, "GET / HTTP/1.1\r\nHost: h\r\nConnection: Foo\r\n\r\n");
	static const char *const yes[] = { "connection", "Keep-Alive", "TE", "trailer",
					   "Transfer-Encoding", "UPGRADE", "proxy-connection",
					   "foo", "FOO" };
	for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
		if (!rewrite_is_hop_by_hop(&f->h, yes[i], strlen(yes[i])))
			fail_msg("%s should be hop-by-hop", yes[i]);
	static const char *const no[] = { "Host", "Content-Length", "Foo-Bar", "Fo", "TEx",
					  "Trailers", "X-Forwarded-For", "" };
	for (size_t i = 0; i < sizeof no / sizeof *no; i++)
		if (rewrite_is_hop_by_hop(&f->h, no[i], strlen(no[i])))
			fail_msg("%s should not be hop-by-hop", no[i]);
}

static void test_expect_removed(void **state)
{
	struct fx *f = *state;
	const char *out = fwd_req(f, "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
				     "Content-Length: 3\r\n\r\n", false);
	assert_no_header(out, "Expect");
	assert_one_header(out, "Content-Length", "3");
}

static void test_content_length_reemitted(void **state)
{
	struct fx *f = *state;
	const char *out = fwd_req(f, "POST /s HTTP/1.1\r\nHost: h\r\ncontent-length: 11\r\n"
				     "Content-Type: text/plain\r\n\r\nhello world", false);
	assert_string_equal(out, "POST /s HTTP/1.1\r\n"
				 "Host: 127.0.0.1:8081\r\n"
				 "Content-Type: text/plain\r\n"
				 "X-Forwarded-For: 127.0.0.1\r\n"
				 "X-Forwarded-Proto: http\r\n"
				 "X-Forwarded-Host: h\r\n"
				 "Content-Length: 11\r\n"
				 "\r\n");
}

static void test_chunked_reemitted(void **state)
{
	struct fx *f = *state;
	const char *out = fwd_req(f, "POST /s HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
				     "\r\n", false);
	assert_one_header(out, "Transfer-Encoding", "chunked");
	assert_no_header(out, "Content-Length");
	/* it is the last header */
	size_t n = strlen(out);
	assert_true(n > 30);
	assert_string_equal(out + n - 30, "Transfer-Encoding: chunked\r\n\r\n");
}

/* Regression: a transfer coding before chunked ("gzip, chunked") would be
 * lost when the body is re-chunked, so the request is refused (501). */
static void test_transfer_coding_before_chunked_lost(void **state)
{
	struct fx *f = *state;
	static const char *const reqs[] = {
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n"
		"Transfer-Encoding: chunked\r\n\r\n",
	};
	int failures = 0;
	for (size_t i = 0; i < sizeof reqs / sizeof *reqs; i++) {
		http1_parser_init(&f->p, HTTP1_REQUEST);
		enum http1_result r = http1_parse_head(&f->p, reqs[i], strlen(reqs[i]), 8192, 32768,
						       &f->h);
		if (r == HTTP1_ERROR)
			continue; /* refused: fine */
		assert_int_equal(r, HTTP1_DONE);
		struct evbuffer *b = evbuffer_new();
		rewrite_request_head(b, &f->h, &f->up, &f->fc, (const struct sockaddr *)&f->peer,
				     false);
		char *out = drain(b);
		if (!strstr(out, "gzip")) {
			print_error("  request %zu accepted (framing %d) and forwarded without "
				    "its gzip coding:\n%s", i, f->h.framing, out);
			failures++;
		}
		free(out);
	}
	if (failures)
		fail_msg("%d request(s) lost a transfer coding", failures);
}

/* ---- responses ---- */

static void test_response_exact(void **state)
{
	struct fx *f = *state;
	const char *out = fwd_resp(f, "HTTP/1.1 201 Created\r\n"
				      "Content-Length: 5\r\n"
				      "Connection: keep-alive\r\n"
				      "Keep-Alive: timeout=5\r\n"
				      "Location: /x\r\n"
				      "\r\nhello", false, true, false);
	assert_string_equal(out, "HTTP/1.1 201 Created\r\n"
				 "Content-Length: 5\r\n"
				 "Location: /x\r\n"
				 "\r\n");
}

static void test_response_hop_by_hop_removed(void **state)
{
	struct fx *f = *state;
	const char *out = fwd_resp(f, "HTTP/1.1 200 OK\r\n"
				      "Connection: X-Secret\r\n"
				      "X-Secret: s\r\n"
				      "Upgrade: h2c\r\n"
				      "Trailer: X-T\r\n"
				      "Proxy-Connection: close\r\n"
				      "Content-Length: 0\r\n"
				      "\r\n", false, true, false);
	assert_string_equal(out, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
}

static void test_response_chunked(void **state)
{
	struct fx *f = *state;
	/* a Content-Length body re-sent chunked */
	const char *out = fwd_resp(f, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\n",
				   true, true, false);
	assert_string_equal(out, "HTTP/1.1 200 OK\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
	/* a chunked body stays chunked, with one Transfer-Encoding */
	out = fwd_resp(f, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n", true,
		       true, false);
	assert_string_equal(out, "HTTP/1.1 200 OK\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
	/* a close-delimited body, chunked for the client */
	out = fwd_resp(f, "HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n", true, true, false);
	assert_string_equal(out, "HTTP/1.1 200 OK\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
}

static void test_response_close(void **state)
{
	struct fx *f = *state;
	const char *out = fwd_resp(f, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", false, false,
				   false);
	assert_string_equal(out, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n");
	/* close wins over the HTTP/1.0 keep-alive */
	out = fwd_resp(f, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", false, false, true);
	assert_string_equal(out, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n");
	/* the upstream's own "Connection: close" is not relayed twice */
	out = fwd_resp(f, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n", false,
		       false, false);
	assert_int_equal(count_header(out, "Connection"), 1);
}

static void test_response_http10_keep_alive(void **state)
{
	struct fx *f = *state;
	const char *out = fwd_resp(f, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", false, true,
				   true);
	assert_string_equal(out,
			    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n");
	/* HTTP/1.1 client kept alive: nothing said */
	out = fwd_resp(f, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", false, true, false);
	assert_no_header(out, "Connection");
}

static void test_response_from_http10_upstream(void **state)
{
	struct fx *f = *state;
	const char *out = fwd_resp(f, "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n", false,
				   true, false);
	assert_string_equal(out, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_request_exact),
		T(test_request_absolute_form),
		T(test_absolute_form_query_without_path),
		T(test_request_http10_becomes_11),
		T(test_request_preserve_host),
		T(test_request_host_replaced),
		T(test_xff_untrusted_replaced),
		T(test_xff_trusted_appended),
		T(test_xff_trusted_several_lines_joined),
		T(test_xff_untrusted_several_lines_dropped),
		T(test_forwarded_proto_host_trusted_kept),
		T(test_forwarded_proto_tls),
		T(test_xff_ipv6_peer),
		T(test_hop_by_hop_removed),
		T(test_connection_tokens),
		T(test_many_connection_tokens),
		T(test_request_head_bound),
		T(test_is_hop_by_hop),
		T(test_expect_removed),
		T(test_content_length_reemitted),
		T(test_chunked_reemitted),
		T(test_transfer_coding_before_chunked_lost),
		T(test_response_exact),
		T(test_response_hop_by_hop_removed),
		T(test_response_chunked),
		T(test_response_close),
		T(test_response_http10_keep_alive),
		T(test_response_from_http10_upstream),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
