/* maintenance: what cutover answers itself while a scope is in maintenance
 * (or a hold ran out). Every answer is built whole in a scratch buffer and
 * appended to the caller's only when complete, so a failure leaves OUT as it
 * was. Nothing here is a 3xx or a 422, and the only 2xx are the OpenRosa
 * replies that promise nothing was stored: 202 "restore pending" to a sync,
 * 204 to ODK Collect's HEAD probe of a submission URL. */
#include "maintenance.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "conf.h"
#include "response.h"

#define WHERE(s) conf_where((s), (char[256]){0}, 256)

#define PLACEHOLDER "{retry_after}"
#define PLACEHOLDER_LEN (sizeof PLACEHOLDER - 1)

/* ---- configuration ---- */

/* Copies TEXT to OUT with every {retry_after} replaced by SECONDS. */
static int add_substituted(struct evbuffer *out, const char *text, int seconds)
{
	char num[16];
	int num_len = snprintf(num, sizeof num, "%d", seconds);
	const char *p = text;
	for (const char *hit; (hit = strstr(p, PLACEHOLDER)) != NULL; p = hit + PLACEHOLDER_LEN) {
		if (evbuffer_add(out, p, (size_t)(hit - p)) < 0 ||
		    evbuffer_add(out, num, (size_t)num_len) < 0)
			return -1;
	}
	return evbuffer_add(out, p, strlen(p));
}

/* body_json must stay JSON once {retry_after} becomes a number: a client
 * that asked for JSON gets it, not a parse error. */
static int check_body_json(struct conf_reader *r, const config_setting_t *s, const char *text)
{
	struct evbuffer *b = evbuffer_new();
	if (b == NULL || add_substituted(b, text, MAINTENANCE_RETRY_AFTER_DEFAULT) < 0 ||
	    evbuffer_add(b, "", 1) < 0) {
		evbuffer_free(b);
		conf_error(r, s, "%s: out of memory", WHERE(s));
		return -1;
	}
	json_error_t err;
	json_t *j = json_loads((const char *)evbuffer_pullup(b, -1), JSON_DECODE_ANY, &err);
	evbuffer_free(b);
	if (j == NULL) {
		conf_error(r, s, "%s: not valid JSON (with " PLACEHOLDER " read as a number): "
			   "%s at character %d", WHERE(s), err.text, err.position);
		return -1;
	}
	json_decref(j);
	return 0;
}

void maintenance_conf_defaults(struct maintenance_conf *m)
{
	*m = (struct maintenance_conf){
		.retry_after = MAINTENANCE_RETRY_AFTER_DEFAULT,
		.max_accept_content_length = MAINTENANCE_MAX_ACCEPT_DEFAULT,
	};
}

int maintenance_conf_parse(struct conf_reader *r, const config_setting_t *s, struct config *cfg)
{
	static const char *const keys[] = { "retry_after", "body_html", "body_json", "body_text",
					    "max_accept_content_length", NULL };
	int ok = conf_check_keys(r, s, keys) ? 0 : -1;
	if (!config_setting_is_group(s))
		return -1;
	struct maintenance_conf *m = cfg->maintenance;

	long long retry = m->retry_after;
	if (conf_get_int(r, s, "retry_after", 0, 86400, &retry) < 0)
		ok = -1;
	else
		m->retry_after = (int)retry;

	if (conf_get_string(r, s, "body_html", &m->body_html) < 0)
		ok = -1;
	if (conf_get_string(r, s, "body_text", &m->body_text) < 0)
		ok = -1;
	int rc = conf_get_string(r, s, "body_json", &m->body_json);
	if (rc < 0 ||
	    (rc == 1 && check_body_json(r, config_setting_get_member(s, "body_json"),
					m->body_json) < 0))
		ok = -1;

	/* Java clients read it as a long. */
	uint64_t max_accept = m->max_accept_content_length;
	if (conf_get_size(r, s, "max_accept_content_length", 1, INT64_MAX, &max_accept) < 0)
		ok = -1;
	else
		m->max_accept_content_length = max_accept;
	return ok;
}

void maintenance_conf_free(struct maintenance_conf *m)
{
	if (m == NULL)
		return;
	free(m->body_html);
	free(m->body_json);
	free(m->body_text);
	m->body_html = m->body_json = m->body_text = NULL;
}

/* ---- which answer ---- */

static bool method_is(const struct maintenance_request *req, const char *name)
{
	size_t n = strlen(name);
	return req->method_len == n && memcmp(req->method, name, n) == 0;
}

enum maintenance_kind maintenance_kind_for(const struct maintenance_request *req)
{
	const struct route *rt = req->route;
	if (rt == NULL)
		return MAINT_UNAVAILABLE;
	if (rt->spool)
		/* The submissions the spool takes never get here (intake.c):
		 * the rest keep their form. */
		return req->head ? MAINT_SUBMISSION_PROBE : MAINT_UNAVAILABLE;
	if (rt->maintenance == ROUTE_MAINT_RESTORE_PENDING) {
		/* A 202 tells a device its data arrived: only for reads. */
		if (req->method != NULL && !req->head && !method_is(req, "GET"))
			return MAINT_UNAVAILABLE;
		return MAINT_RESTORE_PENDING;
	}
	return MAINT_UNAVAILABLE;
}

int maintenance_retry_after(const struct maintenance_conf *conf, time_t until, time_t now)
{
	if (until > now) {
		time_t left = until - now;    /* whole seconds: already the ceiling */
		return left > INT_MAX ? INT_MAX : (int)left;
	}
	return conf != NULL ? conf->retry_after : MAINTENANCE_RETRY_AFTER_DEFAULT;
}

/* ---- Accept ---- */

static bool is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static void skip_ows(const char **p, const char *end)
{
	while (*p < end && (**p == ' ' || **p == '\t'))
		(*p)++;
}

static size_t token_len(const char *p, const char *end)
{
	size_t n = 0;
	while (p + n < end && is_tchar((unsigned char)p[n]))
		n++;
	return n;
}

/* Past a quoted-string starting at *P (on its opening quote). */
static bool skip_quoted(const char **p, const char *end)
{
	for ((*p)++; *p < end; (*p)++) {
		if (**p == '\\') {
			if (++(*p) == end)
				return false;
		} else if (**p == '"') {
			(*p)++;
			return true;
		}
	}
	return false;
}

/* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), in thousandths. */
static bool parse_qvalue(const char *v, size_t len, int *q)
{
	if (len == 0 || len > 5 || (v[0] != '0' && v[0] != '1'))
		return false;
	if (len > 1 && v[1] != '.')
		return false;
	int value = v[0] == '1' ? 1000 : 0, scale = 100;
	for (size_t i = 2; i < len; i++, scale /= 10) {
		if (v[i] < '0' || v[i] > '9' || (v[0] == '1' && v[i] != '0'))
			return false;
		value += (v[i] - '0') * scale;
	}
	*q = value;
	return true;
}

struct media_range {
	const char *type, *sub;
	size_t type_len, sub_len;
	int q;                   /* thousandths */
};

/* One media-range with its parameters, from *P up to the next top-level
 * comma or END. */
static bool parse_range(const char **pp, const char *end, struct media_range *mr)
{
	const char *p = *pp;
	mr->type = p;
	mr->type_len = token_len(p, end);
	p += mr->type_len;
	if (mr->type_len == 0 || p == end || *p != '/')
		return false;
	mr->sub = ++p;
	mr->sub_len = token_len(p, end);
	p += mr->sub_len;
	if (mr->sub_len == 0)
		return false;
	if (mr->type_len == 1 && mr->type[0] == '*' && !(mr->sub_len == 1 && mr->sub[0] == '*'))
		return false;    /* a wildcard type needs a wildcard subtype */
	mr->q = 1000;

	for (;;) {
		skip_ows(&p, end);
		if (p == end || *p == ',')
			break;
		if (*p++ != ';')
			return false;
		skip_ows(&p, end);
		if (p == end || *p == ',' || *p == ';')
			continue;        /* empty parameter */
		const char *name = p;
		size_t name_len = token_len(p, end);
		p += name_len;
		if (name_len == 0 || p == end || *p != '=')
			return false;
		const char *value = ++p;
		if (p < end && *p == '"') {
			if (!skip_quoted(&p, end))
				return false;
			if (name_len == 1 && (name[0] == 'q' || name[0] == 'Q'))
				return false;  /* weight = OWS ";" OWS "q=" qvalue, unquoted */
			continue;
		}
		size_t value_len = token_len(p, end);
		p += value_len;
		if (value_len == 0)
			return false;
		if (name_len == 1 && (name[0] == 'q' || name[0] == 'Q') &&
		    !parse_qvalue(value, value_len, &mr->q))
			return false;
	}
	*pp = p;
	return true;
}

static bool span_is(const char *p, size_t len, const char *s)
{
	return len == strlen(s) && strncasecmp(p, s, len) == 0;
}

static bool span_ends_with(const char *p, size_t len, const char *s)
{
	size_t n = strlen(s);
	return len > n && strncasecmp(p + len - n, s, n) == 0;
}

/* How specifically MR names format F: 3 by type and subtype, 2 by type with
 * a wildcard subtype, 1 by the full wildcard, 0 not at all. */
static int specificity(const struct media_range *mr, enum maintenance_format f)
{
	if (span_is(mr->type, mr->type_len, "*"))
		return 1;
	bool sub_any = span_is(mr->sub, mr->sub_len, "*");
	switch (f) {
	case MAINT_FORMAT_HTML:
	case MAINT_FORMAT_TEXT:
		if (!span_is(mr->type, mr->type_len, "text"))
			return 0;
		if (sub_any)
			return 2;
		return span_is(mr->sub, mr->sub_len, f == MAINT_FORMAT_HTML ? "html" : "plain") ? 3 : 0;
	case MAINT_FORMAT_JSON:
		if (sub_any)
			return span_is(mr->type, mr->type_len, "application") ? 2 : 0;
		return span_is(mr->sub, mr->sub_len, "json") ||
		       span_ends_with(mr->sub, mr->sub_len, "+json") ? 3 : 0;
	}
	return 0;
}

enum maintenance_format maintenance_negotiate(const char *accept, size_t accept_len)
{
	/* Listed in the order that wins a full tie. */
	static const enum maintenance_format formats[] = {
		MAINT_FORMAT_TEXT, MAINT_FORMAT_JSON, MAINT_FORMAT_HTML,
	};
	enum { N = sizeof formats / sizeof formats[0] };
	struct { int spec, q; size_t pos; } best[N] = { { 0, 0, 0 } };

	if (accept == NULL)
		accept_len = 0;
	const char *p = accept, *end = accept + accept_len;
	for (size_t pos = 0; p < end; pos++) {
		skip_ows(&p, end);
		const char *start = p;
		struct media_range mr;
		if (p < end && *p != ',' && parse_range(&p, end, &mr)) {
			for (size_t i = 0; i < N; i++) {
				int spec = specificity(&mr, formats[i]);
				if (spec > best[i].spec) {
					best[i].spec = spec;
					best[i].q = mr.q;
					best[i].pos = pos;
				}
			}
		} else {
			/* Unparsable element: skip it, minding quoted commas. */
			for (p = start; p < end && *p != ',';) {
				if (*p == '"') {
					if (!skip_quoted(&p, end))
						p = end;
				} else {
					p++;
				}
			}
		}
		if (p < end)
			p++;             /* the comma */
	}

	size_t win = 0;
	for (size_t i = 1; i < N; i++) {
		if (best[i].spec == 0 || best[i].q == 0)
			continue;
		if (best[win].spec == 0 || best[win].q == 0 || best[i].q > best[win].q ||
		    (best[i].q == best[win].q && best[i].pos < best[win].pos))
			win = i;
	}
	return formats[win];
}

/* ---- bodies ---- */

static const char *rfc3339(time_t t, char *buf, size_t len)
{
	struct tm tm;
	if (gmtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "%lld", (long long)t);
	return buf;
}

static int add_json_body(struct evbuffer *b, int retry, time_t until)
{
	char when[40];
	json_t *j = json_pack("{s:s, s:I, s:o}", "status", "maintenance",
			      "retry_after", (json_int_t)retry,
			      "until", until != 0 ? json_string(rfc3339(until, when, sizeof when))
						  : json_null());
	if (j == NULL)
		return -1;
	char *text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (text == NULL)
		return -1;
	int rc = evbuffer_add_printf(b, "%s\n", text) < 0 ? -1 : 0;
	free(text);
	return rc;
}

static int add_html_body(struct evbuffer *b, int retry, time_t until)
{
	char when[40] = "";
	if (until != 0)
		rfc3339(until, when, sizeof when);
	return evbuffer_add_printf(b,
		"<!DOCTYPE html>\n"
		"<html lang=\"en\">\n"
		"<head><meta charset=\"utf-8\">"
		"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
		"<title>Down for maintenance</title></head>\n"
		"<body>\n"
		"<h1>Down for maintenance</h1>\n"
		"<p>This service is under maintenance. Please try again in %d seconds.</p>\n"
		"%s%s%s%s%s"
		"</body>\n"
		"</html>\n",
		retry,
		until ? "<p>Expected back at <time datetime=\"" : "", when,
		until ? "\">" : "", when, until ? "</time> (UTC).</p>\n" : "") < 0 ? -1 : 0;
}

static int add_text_body(struct evbuffer *b, int retry, time_t until)
{
	char when[40];
	if (until != 0)
		return evbuffer_add_printf(b, "Service unavailable: maintenance in progress until "
					   "%s. Retry in %d seconds.\n",
					   rfc3339(until, when, sizeof when), retry) < 0 ? -1 : 0;
	return evbuffer_add_printf(b, "Service unavailable: maintenance in progress. "
				   "Retry in %d seconds.\n", retry) < 0 ? -1 : 0;
}

static int add_xml_escaped(struct evbuffer *b, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		const char *e = NULL;
		switch (s[i]) {
		case '&':  e = "&amp;"; break;
		case '<':  e = "&lt;"; break;
		case '>':  e = "&gt;"; break;
		case '"':  e = "&quot;"; break;
		case '\'': e = "&apos;"; break;
		default:
			/* XML 1.0 has no representation for other C0 controls. */
			if ((unsigned char)s[i] < 0x20)
				e = "?";
		}
		if ((e ? evbuffer_add(b, e, strlen(e)) : evbuffer_add(b, s + i, 1)) < 0)
			return -1;
	}
	return 0;
}

/* As CommCare HQ's AsyncRestoreResponse: the app parses <progress done
 * total> (any depth) and waits Retry-After seconds before polling again. */
static int add_restore_pending_body(struct evbuffer *b, const struct maintenance_request *req,
				    int retry)
{
	if (evbuffer_add_printf(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
				"<OpenRosaResponse xmlns=\"http://openrosa.org/http/response\">"
				"<message nature=\"ota_restore_pending\">Asynchronous restore under "
				"way for ") < 0)
		return -1;
	if (req->project != NULL && req->project_len > 0) {
		if (evbuffer_add_printf(b, "project ") < 0 ||
		    add_xml_escaped(b, req->project, req->project_len) < 0)
			return -1;
	} else if (evbuffer_add_printf(b, "this device") < 0) {
		return -1;
	}
	return evbuffer_add_printf(b, ": the server is under maintenance</message>"
				   "<Sync xmlns=\"http://commcarehq.org/sync\">"
				   "<progress done=\"0\" total=\"0\" retry-after=\"%d\"/>"
				   "</Sync></OpenRosaResponse>\n", retry) < 0 ? -1 : 0;
}

static int add_unavailable_body(struct evbuffer *b, const struct maintenance_conf *conf,
				enum maintenance_format f, int retry, time_t until,
				const char **content_type)
{
	switch (f) {
	case MAINT_FORMAT_HTML:
		*content_type = "text/html; charset=utf-8";
		return conf && conf->body_html ? add_substituted(b, conf->body_html, retry)
					       : add_html_body(b, retry, until);
	case MAINT_FORMAT_JSON:
		*content_type = "application/json";
		return conf && conf->body_json ? add_substituted(b, conf->body_json, retry)
					       : add_json_body(b, retry, until);
	case MAINT_FORMAT_TEXT:
		break;
	}
	*content_type = "text/plain; charset=utf-8";
	return conf && conf->body_text ? add_substituted(b, conf->body_text, retry)
				       : add_text_body(b, retry, until);
}

/* ---- the answer ---- */

int maintenance_write(struct evbuffer *out, const struct maintenance_conf *conf,
		      const struct maintenance_request *req)
{
	time_t now = req->now != 0 ? req->now : time(NULL);
	int retry = maintenance_retry_after(conf, req->until, now);
	enum maintenance_kind kind = maintenance_kind_for(req);

	struct evbuffer *msg = evbuffer_new(), *body = evbuffer_new();
	if (msg == NULL || body == NULL)
		goto fail;

	int status;
	const char *content_type = NULL;
	char extra[256];
	switch (kind) {
	case MAINT_SUBMISSION_PROBE:
		status = 204;
		snprintf(extra, sizeof extra, "X-OpenRosa-Version: 1.0\r\n"
			 "X-OpenRosa-Accept-Content-Length: %llu\r\n",
			 req->accept_content_length ? req->accept_content_length
			 : conf			    ? conf->max_accept_content_length
						    : MAINTENANCE_MAX_ACCEPT_DEFAULT);
		break;
	case MAINT_RESTORE_PENDING:
		status = 202;
		content_type = "text/xml; charset=utf-8";
		snprintf(extra, sizeof extra, "Retry-After: %d\r\nX-OpenRosa-Version: 3.0\r\n",
			 retry);
		if (add_restore_pending_body(body, req, retry) < 0)
			goto fail;
		break;
	case MAINT_UNAVAILABLE:
	default:
		status = 503;
		snprintf(extra, sizeof extra, "Retry-After: %d\r\nVary: Accept\r\n", retry);
		if (add_unavailable_body(body, conf, maintenance_negotiate(req->accept,
									     req->accept_len),
					 retry, req->until, &content_type) < 0)
			goto fail;
		break;
	}

	/* The body in one piece for response_write (a page at most). */
	size_t body_len = evbuffer_get_length(body);
	const char *bytes = body_len ? (const char *)evbuffer_pullup(body, -1) : NULL;
	if (body_len && bytes == NULL)
		goto fail;
	struct response r = {
		.status = status,
		.mode = req->mode,
		.content_type = content_type,
		.body = bytes,
		.body_len = body_len,
		.extra_headers = extra,
		.keep_alive = req->keep_alive,
		.head_only = req->head,
		.http10 = req->http10,
		.no_content = status == 204,       /* RFC 9110 8.6: no Content-Length */
		.extra_headers_first = true,
	};
	if (response_write(msg, &r) < 0 || evbuffer_add_buffer(out, msg) < 0)
		goto fail;
	evbuffer_free(msg);
	evbuffer_free(body);
	return status;

fail:
	if (msg != NULL)
		evbuffer_free(msg);
	if (body != NULL)
		evbuffer_free(body);
	return -1;
}
