/* tests for proxy/maintenance.c: which answer a request gets, the exact
 * headers of each (503, 202 restore pending, 204 submission probe), the
 * Retry-After countdown, Accept negotiation, configured bodies, and the
 * "maintenance" config group. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "http_assert.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "config.h"
#include "maintenance.h"
#include "response.h"

#define NOW ((time_t)1790000000)     /* 2026-09-21T14:13:20Z */

static const struct maintenance_conf default_conf = {
	.retry_after = 120,
	.max_accept_content_length = 104857600,
};

static struct route plain_route = { .name = "project" };
static struct route spool_route = { .name = "submit", .spool = true };
static struct route restore_route = { .name = "restore",
				      .maintenance = ROUTE_MAINT_RESTORE_PENDING };

static struct maintenance_request request(const struct route *rt)
{
	return (struct maintenance_request){
		.route = rt, .now = NOW, .mode = "maintenance", .keep_alive = true,
		.method = "GET", .method_len = 3,
	};
}

static char *write_answer(const struct maintenance_conf *conf,
			  const struct maintenance_request *req, int want_status)
{
	struct evbuffer *b = evbuffer_new();
	assert_non_null(b);
	assert_int_equal(maintenance_write(b, conf, req), want_status);
	return buffer_string(b);
}

/* The header names of OUT, in order, joined by ",". */
static void header_names(const char *out, char *buf, size_t size)
{
	const char *end = strstr(out, "\r\n\r\n");
	assert_non_null(end);
	buf[0] = '\0';
	for (const char *line = strstr(out, "\r\n"); line && line < end;
	     line = strstr(line + 2, "\r\n")) {
		const char *l = line + 2;
		const char *colon = strchr(l, ':');
		assert_non_null(colon);
		size_t used = strlen(buf);
		snprintf(buf + used, size - used, "%s%.*s", used ? "," : "", (int)(colon - l), l);
	}
}

static void assert_date_now(const char *out)
{
	char v[64];
	assert_non_null(header(out, "Date", v, sizeof v));
	struct tm tm = { 0 };
	const char *rest = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	assert_non_null(rest);
	assert_int_equal(*rest, '\0');
	time_t t = timegm(&tm), now = time(NULL);
	assert_true(t <= now && now - t <= 5);
}

static void assert_content_length_matches(const char *out)
{
	char v[32];
	assert_non_null(header(out, "Content-Length", v, sizeof v));
	assert_int_equal(strtoul(v, NULL, 10), strlen(body_of(out)));
}

/* ---- which answer ---- */

static void test_kind_for(void **state)
{
	(void)state;
	struct maintenance_request req = request(NULL);
	assert_int_equal(maintenance_kind_for(&req), MAINT_UNAVAILABLE);
	req.head = true;
	assert_int_equal(maintenance_kind_for(&req), MAINT_UNAVAILABLE);

	req = request(&plain_route);
	assert_int_equal(maintenance_kind_for(&req), MAINT_UNAVAILABLE);
	req.head = true;
	assert_int_equal(maintenance_kind_for(&req), MAINT_UNAVAILABLE);

	/* spool route: HEAD is the ODK probe, anything else 503 until the spool
	 * stores submissions (never a 2xx for something not stored) */
	req = request(&spool_route);
	req.head = true;
	req.method = "HEAD";
	req.method_len = 4;
	assert_int_equal(maintenance_kind_for(&req), MAINT_SUBMISSION_PROBE);
	req = request(&spool_route);
	req.method = "POST";
	req.method_len = 4;
	assert_int_equal(maintenance_kind_for(&req), MAINT_UNAVAILABLE);
	req = request(&spool_route);
	assert_int_equal(maintenance_kind_for(&req), MAINT_UNAVAILABLE);

	/* restore-pending: sync reads get the 202 */
	req = request(&restore_route);
	assert_int_equal(maintenance_kind_for(&req), MAINT_RESTORE_PENDING);
	req.head = true;
	assert_int_equal(maintenance_kind_for(&req), MAINT_RESTORE_PENDING);
	req = request(&restore_route);
	req.method = NULL;
	req.method_len = 0;
	assert_int_equal(maintenance_kind_for(&req), MAINT_RESTORE_PENDING);
	/* ...but a request carrying data never gets a 2xx */
	req = request(&restore_route);
	req.method = "POST";
	req.method_len = 4;
	assert_int_equal(maintenance_kind_for(&req), MAINT_UNAVAILABLE);
	req.method = "GETX";
	assert_int_equal(maintenance_kind_for(&req), MAINT_UNAVAILABLE);

	/* spool wins over restore-pending: a POST there is a submission */
	struct route both = { .name = "both", .spool = true,
			      .maintenance = ROUTE_MAINT_RESTORE_PENDING };
	req = request(&both);
	req.method = "POST";
	req.method_len = 4;
	assert_int_equal(maintenance_kind_for(&req), MAINT_UNAVAILABLE);
	req.head = true;
	req.method = "HEAD";
	assert_int_equal(maintenance_kind_for(&req), MAINT_SUBMISSION_PROBE);
}

/* ---- Retry-After ---- */

static void test_retry_after(void **state)
{
	(void)state;
	struct maintenance_conf c = { .retry_after = 45 };
	assert_int_equal(maintenance_retry_after(&c, NOW + 600, NOW), 600);
	assert_int_equal(maintenance_retry_after(&c, NOW + 1, NOW), 1);
	/* counts down as time passes */
	assert_int_equal(maintenance_retry_after(&c, NOW + 600, NOW + 599), 1);
	/* reached, passed or unknown: the configured value */
	assert_int_equal(maintenance_retry_after(&c, NOW, NOW), 45);
	assert_int_equal(maintenance_retry_after(&c, NOW - 10, NOW), 45);
	assert_int_equal(maintenance_retry_after(&c, 0, NOW), 45);
	c.retry_after = 0;
	assert_int_equal(maintenance_retry_after(&c, 0, NOW), 0);
	assert_int_equal(maintenance_retry_after(NULL, 0, NOW), 120);
	/* far away: clamped, never overflowing */
	if (sizeof(time_t) > sizeof(int))
		assert_int_equal(maintenance_retry_after(&c, NOW + (time_t)INT_MAX * 4, NOW),
				 INT_MAX);
}

static void test_retry_after_header_counts_down(void **state)
{
	(void)state;
	struct maintenance_request req = request(&plain_route);
	req.until = NOW + 300;
	char v[64];
	char *out = write_answer(&default_conf, &req, 503);
	assert_string_equal(header(out, "Retry-After", v, sizeof v), "300");
	free(out);

	req.now = NOW + 299;
	out = write_answer(&default_conf, &req, 503);
	assert_string_equal(header(out, "Retry-After", v, sizeof v), "1");
	free(out);

	req.now = NOW + 301;    /* overrun: back to the configured value */
	out = write_answer(&default_conf, &req, 503);
	assert_string_equal(header(out, "Retry-After", v, sizeof v), "120");
	free(out);

	req = request(&restore_route);
	req.until = NOW + 42;
	out = write_answer(&default_conf, &req, 202);
	assert_string_equal(header(out, "Retry-After", v, sizeof v), "42");
	assert_non_null(strstr(body_of(out), "retry-after=\"42\""));
	free(out);
}

/* ---- 503 ---- */

static void test_unavailable_headers(void **state)
{
	(void)state;
	struct maintenance_request req = request(&plain_route);
	char *out = write_answer(&default_conf, &req, 503);
	char v[128], names[512];

	assert_true(strncmp(out, "HTTP/1.1 503 Service Unavailable\r\n", 34) == 0);
	header_names(out, names, sizeof names);
	assert_string_equal(names, "Date,Server,X-Cutover-Mode,Cache-Control,Retry-After,Vary,"
				   "Content-Type,Content-Length");
	assert_date_now(out);
	assert_string_equal(header(out, "X-Cutover-Mode", v, sizeof v), "maintenance");
	assert_string_equal(header(out, "Cache-Control", v, sizeof v), "no-store");
	assert_string_equal(header(out, "Retry-After", v, sizeof v), "120");
	assert_string_equal(header(out, "Vary", v, sizeof v), "Accept");
	assert_string_equal(header(out, "Content-Type", v, sizeof v), "text/plain; charset=utf-8");
	assert_content_length_matches(out);
	assert_non_null(strstr(body_of(out), "maintenance"));
	assert_non_null(strstr(body_of(out), "120 seconds"));
	free(out);

	/* connection handling */
	req.keep_alive = false;
	out = write_answer(&default_conf, &req, 503);
	assert_string_equal(header(out, "Connection", v, sizeof v), "close");
	free(out);

	req.http10 = true;
	out = write_answer(&default_conf, &req, 503);
	assert_true(strncmp(out, "HTTP/1.0 503 Service Unavailable\r\n", 34) == 0);
	assert_string_equal(header(out, "Connection", v, sizeof v), "close");
	free(out);

	req.keep_alive = true;
	out = write_answer(&default_conf, &req, 503);
	assert_string_equal(header(out, "Connection", v, sizeof v), "keep-alive");
	free(out);

	req.mode = NULL;
	out = write_answer(&default_conf, &req, 503);
	assert_string_equal(header(out, "X-Cutover-Mode", v, sizeof v), "-");
	free(out);

	/* the same answer with a NULL conf (built-in defaults) */
	req = request(NULL);
	req.mode = "hold";
	out = write_answer(NULL, &req, 503);
	assert_string_equal(header(out, "Retry-After", v, sizeof v), "120");
	assert_string_equal(header(out, "X-Cutover-Mode", v, sizeof v), "hold");
	free(out);
}

static void test_unavailable_until_in_bodies(void **state)
{
	(void)state;
	char v[128];
	struct maintenance_request req = request(&plain_route);
	req.until = NOW + 3600;              /* 2026-09-21T15:13:20Z */
	const char *when = "2026-09-21T15:13:20Z";

	char *out = write_answer(&default_conf, &req, 503);
	assert_non_null(strstr(body_of(out), when));
	assert_non_null(strstr(body_of(out), "3600 seconds"));
	free(out);

	req.accept = "text/html";
	req.accept_len = strlen(req.accept);
	out = write_answer(&default_conf, &req, 503);
	assert_string_equal(header(out, "Content-Type", v, sizeof v), "text/html; charset=utf-8");
	assert_true(strncmp(body_of(out), "<!DOCTYPE html>", 15) == 0);
	assert_non_null(strstr(body_of(out), when));
	assert_content_length_matches(out);
	free(out);
}

static void test_json_body(void **state)
{
	(void)state;
	char v[128];
	struct maintenance_request req = request(&plain_route);
	req.accept = "application/json";
	req.accept_len = strlen(req.accept);

	char *out = write_answer(&default_conf, &req, 503);
	assert_string_equal(header(out, "Content-Type", v, sizeof v), "application/json");
	assert_content_length_matches(out);
	json_error_t err;
	json_t *j = json_loads(body_of(out), 0, &err);
	if (j == NULL)
		fail_msg("not JSON (%s): %s", err.text, body_of(out));
	assert_string_equal(json_string_value(json_object_get(j, "status")), "maintenance");
	assert_int_equal(json_integer_value(json_object_get(j, "retry_after")), 120);
	assert_true(json_is_null(json_object_get(j, "until")));
	assert_int_equal(json_object_size(j), 3);
	json_decref(j);
	free(out);

	req.until = NOW + 90;
	out = write_answer(&default_conf, &req, 503);
	j = json_loads(body_of(out), 0, &err);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(j, "retry_after")), 90);
	assert_string_equal(json_string_value(json_object_get(j, "until")),
			    "2026-09-21T14:14:50Z");
	json_decref(j);
	free(out);
}

static void test_head_has_no_body(void **state)
{
	(void)state;
	char v[32];
	struct maintenance_request req = request(&plain_route);
	req.accept = "text/html";
	req.accept_len = strlen(req.accept);
	char *get = write_answer(&default_conf, &req, 503);
	size_t get_len = strlen(body_of(get));
	assert_true(get_len > 0);

	req.head = true;
	req.method = "HEAD";
	req.method_len = 4;
	char *head = write_answer(&default_conf, &req, 503);
	assert_string_equal(body_of(head), "");
	assert_non_null(header(head, "Content-Length", v, sizeof v));
	assert_int_equal(strtoul(v, NULL, 10), get_len);
	assert_string_equal(header(head, "Content-Type", v, sizeof v), "text/html; charset=utf-8");
	assert_string_equal(header(head, "Retry-After", v, sizeof v), "120");
	free(get);
	free(head);

	/* HEAD on a restore-pending route: 202 headers, no body */
	req = request(&restore_route);
	get = write_answer(&default_conf, &req, 202);
	req.head = true;
	req.method = "HEAD";
	req.method_len = 4;
	head = write_answer(&default_conf, &req, 202);
	assert_string_equal(body_of(head), "");
	assert_non_null(header(head, "Content-Length", v, sizeof v));
	assert_int_equal(strtoul(v, NULL, 10), strlen(body_of(get)));
	free(get);
	free(head);
}

/* ---- Accept ---- */

static enum maintenance_format negotiate(const char *accept)
{
	return maintenance_negotiate(accept, accept ? strlen(accept) : 0);
}

static void test_accept_negotiation(void **state)
{
	(void)state;
	/* the cases of the brief */
	assert_int_equal(negotiate("text/html;q=0.9, application/json"), MAINT_FORMAT_JSON);
	assert_int_equal(negotiate("text/html,application/xhtml+xml,*/*;q=0.8"), MAINT_FORMAT_HTML);
	assert_int_equal(negotiate("application/json;q=0, text/plain"), MAINT_FORMAT_TEXT);
	assert_int_equal(negotiate(NULL), MAINT_FORMAT_TEXT);
	assert_int_equal(negotiate(""), MAINT_FORMAT_TEXT);
	assert_int_equal(negotiate("*/*"), MAINT_FORMAT_TEXT);
	assert_int_equal(negotiate("garbage"), MAINT_FORMAT_TEXT);
	assert_int_equal(negotiate(";;;,,,/==\"q"), MAINT_FORMAT_TEXT);
	assert_int_equal(negotiate("\x01\x7f\xff/\xfe"), MAINT_FORMAT_TEXT);

	/* browsers, curl, OpenRosa clients */
	assert_int_equal(negotiate("text/html,application/xhtml+xml,application/xml;q=0.9,"
				   "image/avif,image/webp,*/*;q=0.8"), MAINT_FORMAT_HTML);
	assert_int_equal(negotiate("application/json, text/plain, */*"), MAINT_FORMAT_JSON);
	assert_int_equal(negotiate("text/xml"), MAINT_FORMAT_TEXT);

	/* JSON dialects and wildcards */
	assert_int_equal(negotiate("application/problem+json"), MAINT_FORMAT_JSON);
	assert_int_equal(negotiate("application/vnd.api+json;q=0.5, text/html;q=0.4"),
			 MAINT_FORMAT_JSON);
	assert_int_equal(negotiate("text/json"), MAINT_FORMAT_JSON);
	assert_int_equal(negotiate("application/*"), MAINT_FORMAT_JSON);
	assert_int_equal(negotiate("text/*"), MAINT_FORMAT_TEXT);
	assert_int_equal(negotiate("text/*;q=0.5, text/html"), MAINT_FORMAT_HTML);

	/* q values: highest wins, ties go to the one listed first */
	assert_int_equal(negotiate("text/plain;q=0.5, text/html;q=0.501"), MAINT_FORMAT_HTML);
	assert_int_equal(negotiate("text/html;q=0.5, application/json;q=0.5"), MAINT_FORMAT_HTML);
	assert_int_equal(negotiate("application/json;q=0.5, text/html;q=0.5"), MAINT_FORMAT_JSON);
	assert_int_equal(negotiate("text/html; q=1.000, text/plain"), MAINT_FORMAT_HTML);
	assert_int_equal(negotiate("TEXT/HTML;Q=0.7, text/plain;q=0.6"), MAINT_FORMAT_HTML);
	/* the most specific range decides, not the order */
	assert_int_equal(negotiate("*/*;q=1, text/html;q=0"), MAINT_FORMAT_TEXT);
	assert_int_equal(negotiate("text/html;q=0, */*"), MAINT_FORMAT_TEXT);
	assert_int_equal(negotiate("text/*;q=0, application/json;q=0.1"), MAINT_FORMAT_JSON);
	/* nothing acceptable: plain text all the same (no 406 in maintenance) */
	assert_int_equal(negotiate("image/png"), MAINT_FORMAT_TEXT);
	assert_int_equal(negotiate("text/html;q=0, application/json;q=0, text/plain;q=0"),
			 MAINT_FORMAT_TEXT);

	/* invalid elements are skipped, valid ones still count */
	assert_int_equal(negotiate("text/html;q=2, application/json"), MAINT_FORMAT_JSON);
	assert_int_equal(negotiate("text/html;q=0.0001, application/json;q=0.5"),
			 MAINT_FORMAT_JSON);
	assert_int_equal(negotiate("text/html;q=\"1\", application/json;q=0.5"), MAINT_FORMAT_JSON);
	assert_int_equal(negotiate("*/html, application/json;q=0.2"), MAINT_FORMAT_JSON);
	assert_int_equal(negotiate("text/html;level, application/json;q=0.2"), MAINT_FORMAT_JSON);
	assert_int_equal(negotiate("text, application/json"), MAINT_FORMAT_JSON);
	/* quoted parameters may hold commas and semicolons */
	assert_int_equal(negotiate("text/html;x=\"a, b; q=0\";q=0.9, application/json;q=0.8"),
			 MAINT_FORMAT_HTML);
	assert_int_equal(negotiate("text/html;x=\"a, b, application/json\""), MAINT_FORMAT_HTML);
	assert_int_equal(negotiate("text/html;x=\"unterminated, application/json"),
			 MAINT_FORMAT_TEXT);
	/* empty list elements and parameters, OWS */
	assert_int_equal(negotiate(" , ,\tapplication/json ;; q=0.3 ,"), MAINT_FORMAT_JSON);

	/* the length is honoured: no NUL terminator needed */
	const char buf[] = { 't', 'e', 'x', 't', '/', 'h', 't', 'm', 'l', 'X' };
	assert_int_equal(maintenance_negotiate(buf, 9), MAINT_FORMAT_HTML);
	assert_int_equal(maintenance_negotiate(buf, 10), MAINT_FORMAT_TEXT);
}

static void test_accept_chooses_body(void **state)
{
	(void)state;
	static const struct { const char *accept, *type; } cases[] = {
		{ "text/html;q=0.9, application/json", "application/json" },
		{ "text/html,application/xhtml+xml,*/*;q=0.8", "text/html; charset=utf-8" },
		{ "application/json;q=0, text/plain", "text/plain; charset=utf-8" },
		{ NULL, "text/plain; charset=utf-8" },
		{ "%%%garbage!!", "text/plain; charset=utf-8" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct maintenance_request req = request(&plain_route);
		req.accept = cases[i].accept;
		req.accept_len = cases[i].accept ? strlen(cases[i].accept) : 0;
		char *out = write_answer(&default_conf, &req, 503);
		char v[64];
		if (strcmp(header(out, "Content-Type", v, sizeof v), cases[i].type) != 0)
			fail_msg("Accept %s: Content-Type %s, want %s", cases[i].accept, v,
				 cases[i].type);
		assert_string_equal(header(out, "Vary", v, sizeof v), "Accept");
		assert_content_length_matches(out);
		free(out);
	}
}

/* ---- configured bodies ---- */

static void test_configured_bodies(void **state)
{
	(void)state;
	struct maintenance_conf c = {
		.retry_after = 75,
		.body_html = "<p>back in {retry_after}s ({retry_after})</p>",
		.body_json = "{\"wait\": {retry_after}}",
		.body_text = "{retry_after}",
		.max_accept_content_length = 1,
	};
	char v[64];
	struct maintenance_request req = request(&plain_route);
	char *out = write_answer(&c, &req, 503);
	assert_string_equal(body_of(out), "75");
	assert_string_equal(header(out, "Content-Length", v, sizeof v), "2");
	free(out);

	req.accept = "text/html";
	req.accept_len = strlen(req.accept);
	out = write_answer(&c, &req, 503);
	assert_string_equal(body_of(out), "<p>back in 75s (75)</p>");
	assert_content_length_matches(out);
	free(out);

	req.accept = "application/json";
	req.accept_len = strlen(req.accept);
	req.until = NOW + 9;
	out = write_answer(&c, &req, 503);
	assert_string_equal(body_of(out), "{\"wait\": 9}");
	assert_string_equal(header(out, "Content-Type", v, sizeof v), "application/json");
	free(out);

	/* only the exact placeholder is replaced */
	c.body_text = "{retry_after {retry_after}} {RETRY_AFTER}";
	req.accept = NULL;
	req.accept_len = 0;
	req.until = 0;
	out = write_answer(&c, &req, 503);
	assert_string_equal(body_of(out), "{retry_after 75} {RETRY_AFTER}");
	free(out);

	/* an empty configured body is an empty body */
	c.body_text = "";
	out = write_answer(&c, &req, 503);
	assert_string_equal(body_of(out), "");
	assert_string_equal(header(out, "Content-Length", v, sizeof v), "0");
	free(out);
}

/* ---- 202 restore pending ---- */

static void test_restore_pending(void **state)
{
	(void)state;
	char v[128], names[512];
	struct maintenance_request req = request(&restore_route);
	req.accept = "application/json";     /* ignored: OpenRosa answers XML */
	req.accept_len = strlen(req.accept);
	req.keep_alive = false;
	req.project = "alpha";
	req.project_len = 5;
	char *out = write_answer(&default_conf, &req, 202);

	assert_true(strncmp(out, "HTTP/1.1 202 Accepted\r\n", 23) == 0);
	header_names(out, names, sizeof names);
	assert_string_equal(names, "Date,Server,X-Cutover-Mode,Cache-Control,Retry-After,"
				   "X-OpenRosa-Version,Content-Type,Content-Length,Connection");
	assert_date_now(out);
	assert_string_equal(header(out, "X-Cutover-Mode", v, sizeof v), "maintenance");
	assert_string_equal(header(out, "Retry-After", v, sizeof v), "120");
	assert_string_equal(header(out, "X-OpenRosa-Version", v, sizeof v), "3.0");
	assert_string_equal(header(out, "Content-Type", v, sizeof v), "text/xml; charset=utf-8");
	assert_string_equal(header(out, "Connection", v, sizeof v), "close");
	assert_content_length_matches(out);

	assert_string_equal(body_of(out),
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<OpenRosaResponse xmlns=\"http://openrosa.org/http/response\">"
		"<message nature=\"ota_restore_pending\">Asynchronous restore under way for "
		"project alpha: the server is under maintenance</message>"
		"<Sync xmlns=\"http://commcarehq.org/sync\">"
		"<progress done=\"0\" total=\"0\" retry-after=\"120\"/>"
		"</Sync></OpenRosaResponse>\n");
	free(out);

	/* the project is escaped; no project, no name */
	req.project = "a&<b>\"'\x01";
	req.project_len = strlen(req.project);
	out = write_answer(&default_conf, &req, 202);
	assert_non_null(strstr(body_of(out), "for project a&amp;&lt;b&gt;&quot;&apos;?:"));
	free(out);
	req.project = NULL;
	req.project_len = 0;
	out = write_answer(&default_conf, &req, 202);
	assert_non_null(strstr(body_of(out), "under way for this device:"));
	free(out);

	/* configured 503 bodies do not replace the OpenRosa one */
	struct maintenance_conf c = default_conf;
	c.body_text = "nope";
	c.body_json = "{}";
	out = write_answer(&c, &req, 202);
	assert_non_null(strstr(body_of(out), "<progress done=\"0\" total=\"0\""));
	free(out);

	/* a POST on that route is not a sync: 503 */
	req.method = "POST";
	req.method_len = 4;
	out = write_answer(&default_conf, &req, 503);
	free(out);
}

/* ---- 204 submission probe ---- */

static void test_submission_probe(void **state)
{
	(void)state;
	char v[64], names[512];
	struct maintenance_request req = request(&spool_route);
	req.head = true;
	req.method = "HEAD";
	req.method_len = 4;
	struct maintenance_conf c = default_conf;
	char *out = write_answer(&c, &req, 204);

	assert_true(strncmp(out, "HTTP/1.1 204 No Content\r\n", 25) == 0);
	header_names(out, names, sizeof names);
	assert_string_equal(names, "Date,Server,X-Cutover-Mode,Cache-Control,"
				   "X-OpenRosa-Version,X-OpenRosa-Accept-Content-Length");
	assert_date_now(out);
	assert_string_equal(header(out, "X-OpenRosa-Accept-Content-Length", v, sizeof v),
			    "104857600");
	assert_string_equal(header(out, "X-OpenRosa-Version", v, sizeof v), "1.0");
	assert_string_equal(header(out, "X-Cutover-Mode", v, sizeof v), "maintenance");
	assert_null(header(out, "Retry-After", v, sizeof v));
	assert_null(header(out, "Content-Length", v, sizeof v));
	assert_string_equal(body_of(out), "");
	free(out);

	c.max_accept_content_length = 5ULL << 30;
	req.keep_alive = false;
	out = write_answer(&c, &req, 204);
	assert_string_equal(header(out, "X-OpenRosa-Accept-Content-Length", v, sizeof v),
			    "5368709120");
	assert_string_equal(header(out, "Connection", v, sizeof v), "close");
	free(out);

	/* the submission itself: 503 + Retry-After, never a 2xx */
	req = request(&spool_route);
	req.method = "POST";
	req.method_len = 4;
	out = write_answer(&c, &req, 503);
	assert_string_equal(header(out, "Retry-After", v, sizeof v), "120");
	free(out);
}

/* ---- config ---- */

#define BASE \
	"listen = ( { address = \"127.0.0.1:18080\"; } );\n"          /* 1 */ \
	"admin = { address = \"unix:/tmp/cutover-test/admin.sock\"; };\n" /* 2 */ \
	"upstreams = { old = { url = \"http://127.0.0.1:18081\"; };\n"  /* 3 */ \
	"              new = { url = \"http://127.0.0.1:18082\"; }; };\n" /* 4 */ \
	"state_file = \"/tmp/cutover-test/state.json\";\n"           /* 5 */ \
	"journal_file = \"/tmp/cutover-test/journal.log\";\n"        /* 6 */

static struct config *load(const char *text, char **errs)
{
	size_t len;
	FILE *f = open_memstream(errs, &len);
	assert_non_null(f);
	struct config *cfg = config_load_string(text, "m.conf", f);
	fclose(f);
	return cfg;
}

static void expect_msg(const char *errs, const char *line_and_msg)
{
	char want[512];
	snprintf(want, sizeof want, "m.conf:%s", line_and_msg);
	if (strstr(errs, want) == NULL)
		fail_msg("expected \"%s\" in:\n%s", want, errs);
}

static size_t count_lines(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void test_conf_defaults(void **state)
{
	(void)state;
	char *errs;
	struct config *cfg = load(BASE, &errs);
	if (cfg == NULL || errs[0] != '\0')
		fail_msg("expected a clean load:\n%s", errs);
	assert_int_equal(cfg->maintenance->retry_after, 120);
	assert_int_equal(cfg->maintenance->max_accept_content_length, 104857600);
	assert_null(cfg->maintenance->body_html);
	assert_null(cfg->maintenance->body_json);
	assert_null(cfg->maintenance->body_text);
	config_free(cfg);
	free(errs);
}

static void test_conf_keys(void **state)
{
	(void)state;
	char *errs;
	struct config *cfg = load(BASE
				  "maintenance = {\n"
				  "  retry_after = 30;\n"
				  "  body_html = \"<p>{retry_after}</p>\";\n"
				  "  body_json = \"{\\\"retry\\\": {retry_after}}\";\n"
				  "  body_text = \"wait {retry_after}\";\n"
				  "  max_accept_content_length = \"10M\";\n"
				  "};\n", &errs);
	if (cfg == NULL || errs[0] != '\0')
		fail_msg("expected a clean load:\n%s", errs);
	assert_int_equal(cfg->maintenance->retry_after, 30);
	assert_string_equal(cfg->maintenance->body_html, "<p>{retry_after}</p>");
	assert_string_equal(cfg->maintenance->body_json, "{\"retry\": {retry_after}}");
	assert_string_equal(cfg->maintenance->body_text, "wait {retry_after}");
	assert_int_equal(cfg->maintenance->max_accept_content_length, 10ULL << 20);
	config_free(cfg);
	free(errs);

	cfg = load(BASE "maintenance = { max_accept_content_length = 1234; retry_after = 0; };\n",
		   &errs);
	if (cfg == NULL || errs[0] != '\0')
		fail_msg("expected a clean load:\n%s", errs);
	assert_int_equal(cfg->maintenance->max_accept_content_length, 1234);
	assert_int_equal(cfg->maintenance->retry_after, 0);
	config_free(cfg);
	free(errs);
}

static void test_conf_errors(void **state)
{
	(void)state;
	char *errs;
	struct config *cfg = load(BASE
				  "maintenance = {\n"                                 /* 7 */
				  "  retry_after = 86401;\n"                          /* 8 */
				  "  body_html = 1;\n"                                /* 9 */
				  "  body_json = \"{\\\"a\\\": }\";\n"                /* 10 */
				  "  body_text = [\"x\"];\n"                          /* 11 */
				  "  max_accept_content_length = \"5Q\";\n"           /* 12 */
				  "  retry_afterr = 3;\n"                             /* 13 */
				  "};\n", &errs);
	assert_null(cfg);
	if (count_lines(errs) != 6)
		fail_msg("expected 6 messages, got:\n%s", errs);
	expect_msg(errs, "8: maintenance.retry_after: 86401 is out of range [0, 86400]");
	expect_msg(errs, "9: maintenance.body_html: expected a string, not an integer");
	expect_msg(errs, "10: maintenance.body_json: not valid JSON");
	expect_msg(errs, "11: maintenance.body_text: expected a string, not an array");
	expect_msg(errs, "12: maintenance.max_accept_content_length: invalid size \"5Q\"");
	expect_msg(errs, "13: unknown key 'retry_afterr' in maintenance "
			 "(did you mean 'retry_after'?)");
	free(errs);

	cfg = load(BASE
		   "maintenance = {\n"                                 /* 7 */
		   "  retry_after = -1;\n"                             /* 8 */
		   "  max_accept_content_length = 0;\n"                /* 9 */
		   "};\n", &errs);
	assert_null(cfg);
	if (count_lines(errs) != 2)
		fail_msg("expected 2 messages, got:\n%s", errs);
	expect_msg(errs, "8: maintenance.retry_after: -1 is out of range [0, 86400]");
	expect_msg(errs, "9: maintenance.max_accept_content_length: 0 is below the minimum");
	free(errs);

	cfg = load(BASE "maintenance = 5;\n", &errs);
	assert_null(cfg);
	expect_msg(errs, "7: maintenance: expected a group");
	free(errs);

	cfg = load(BASE "maintenance = { retry_after = \"soon\"; };\n", &errs);
	assert_null(cfg);
	expect_msg(errs, "7: maintenance.retry_after: expected an integer, not a string");
	free(errs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kind_for),
		cmocka_unit_test(test_retry_after),
		cmocka_unit_test(test_retry_after_header_counts_down),
		cmocka_unit_test(test_unavailable_headers),
		cmocka_unit_test(test_unavailable_until_in_bodies),
		cmocka_unit_test(test_json_body),
		cmocka_unit_test(test_head_has_no_body),
		cmocka_unit_test(test_accept_negotiation),
		cmocka_unit_test(test_accept_chooses_body),
		cmocka_unit_test(test_configured_bodies),
		cmocka_unit_test(test_restore_pending),
		cmocka_unit_test(test_submission_probe),
		cmocka_unit_test(test_conf_defaults),
		cmocka_unit_test(test_conf_keys),
		cmocka_unit_test(test_conf_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
