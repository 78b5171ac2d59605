/* admin: the admin API server (HTTP/1.1 + JSON) on the control thread.
 * One request per connection; a table maps method + path to a handler. */
#include "admin.h"

#include <errno.h>
#include <time.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/crypto.h>

#include "admin_spool.h"
#include "conf.h"
#include "control.h"
#include "dashboard.h"
#include "duration.h"
#include "http1.h"
#include "listener.h"
#include "log.h"
#include "spool_reader.h"
#include "response.h"

#define ADMIN_MAX_HEAD 16384
#define ADMIN_MAX_BODY 65536
#define ADMIN_TIMEOUT 10
#define ADMIN_MAX_CONNS 64
/* A connection must bring its whole request (head and body) within this,
 * trickled bytes or not: until then its token is unchecked, and it holds a
 * slot an operator may need. */
#define ADMIN_REQUEST_DEADLINE 2
/* Slots one TCP peer address may hold while its requests are incomplete. */
#define ADMIN_MAX_PER_PEER 16
/* Refused or dropped connections are logged once per this, with counts. */
#define ADMIN_LOG_INTERVAL 10.0
/* A streamed body (a spooled record's) is read from disk while the output
 * holds less than this. */
#define ADMIN_STREAM_ROOM (256 * 1024)

struct admin {
	struct event_base *base;
	const struct config *cfg;
	struct control *ctl;
	struct evconnlistener *listener;
	struct listener_guard *guard;    /* rests the listener after accept errors */
	char *token;                 /* TCP only */
	char *unix_path;
	int n_conns;
	struct admin_conn *conns;     /* newest first */
	/* Connections dropped before a whole request: the slot went to a newer
	 * one, the deadline passed, or none was free (each logged rate-limited). */
	struct log_every evicted, expired, refused;
};

struct admin_conn {
	struct admin *adm;
	struct admin_conn *prev, *next;
	struct bufferevent *bev;
	struct http1_parser parser;
	struct http1_head head;
	char who[96];
	char where[80];               /* the peer as the log names it */
	struct sockaddr_storage peer; /* TCP: the address, port zeroed, for the per-peer limit */
	struct event *deadline;       /* ADMIN_REQUEST_DEADLINE, until dispatched */
	bool answered;
	bool waiting;                /* a control action will answer later */
	bool gone;                   /* the client left while we waited */
	struct spool_reader *stream;  /* a record's body still to send */
	uint64_t stream_left;
};

static void conn_close(struct admin_conn *ac)
{
	if (ac->prev)
		ac->prev->next = ac->next;
	else
		ac->adm->conns = ac->next;
	if (ac->next)
		ac->next->prev = ac->prev;
	ac->adm->n_conns--;
	if (ac->deadline)
		event_free(ac->deadline);
	if (ac->stream)
		spool_reader_close(ac->stream);
	bufferevent_free(ac->bev);
	free(ac);
}

/* Still reading its request: nobody has checked its token yet. */
static bool incomplete(const struct admin_conn *ac)
{
	return !ac->answered && !ac->waiting;
}

static void log_dropped(struct log_every *e, const char *what, const struct admin_conn *ac)
{
	unsigned long n;
	if (log_every_due(e, ADMIN_LOG_INTERVAL, &n))
		log_warn("admin: %s: %lu in the last %.0f s, the latest from %s", what, n,
			 ADMIN_LOG_INTERVAL, ac ? ac->where : "a peer not accepted");
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct admin_conn *ac = arg;
	if (!incomplete(ac))
		return;
	log_dropped(&ac->adm->expired, "closed connections that sent no whole request within "
		    "2 s (half requests)", ac);
	conn_close(ac);
}

/* The head of every answer, with EXTRA header lines (each ending in CRLF)
 * if any; the connection then reads no more (one request per connection). */
static void reply_head(struct admin_conn *ac, int status, const char *content_type,
		       unsigned long long len, const char *extra)
{
	evbuffer_add_printf(bufferevent_get_output(ac->bev),
			    "HTTP/1.1 %d %s\r\nDate: %s\r\nServer: cutover\r\n"
			    "Content-Type: %s\r\nContent-Length: %llu\r\n"
			    "Cache-Control: no-store\r\n%sConnection: close\r\n\r\n",
			    status, response_reason(status), response_date(), content_type, len,
			    extra ? extra : "");
	ac->answered = true;
	ac->waiting = false;
	bufferevent_disable(ac->bev, EV_READ);
}

static void reply(struct admin_conn *ac, int status, json_t *body)
{
	if (ac->gone) {
		json_decref(body);
		conn_close(ac);
		return;
	}
	/* 15 digits: an age of 0.1 prints as 0.1, not 0.10000000000000001. */
	char *text = body ? json_dumps(body, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
				       JSON_REAL_PRECISION(15)) : NULL;
	json_decref(body);
	/* BODY could not be built or printed: say so, never a 200 with nothing. */
	const char *out = text ? text : "{\"ok\": false, \"error\": \"out of memory\"}";
	if (!text)
		status = 500;
	size_t len = strlen(out);
	reply_head(ac, status, "application/json", len + 1, NULL);
	evbuffer_add(bufferevent_get_output(ac->bev), out, len);
	evbuffer_add(bufferevent_get_output(ac->bev), "\n", 1);
	free(text);
}

/* A 200 that is not JSON: BODY (drained) with its CONTENT_TYPE and EXTRA
 * header lines (NULL: none). */
static void reply_text(struct admin_conn *ac, const char *content_type, const char *extra,
		       struct evbuffer *body)
{
	if (ac->gone) {
		conn_close(ac);
		return;
	}
	reply_head(ac, 200, content_type, evbuffer_get_length(body), extra);
	evbuffer_add_buffer(bufferevent_get_output(ac->bev), body);
}

static void reply_error(struct admin_conn *ac, int status, const char *msg)
{
	reply(ac, status, json_pack("{s:b, s:s}", "ok", 0, "error", msg));
}

static void action_done(void *arg, int status, json_t *answer)
{
	reply(arg, status, answer);
}

/* ---- handlers ---- */

static void h_status(struct admin_conn *ac, json_t *body, const char *query)
{
	(void)body;
	(void)query;
	reply(ac, 200, control_status(ac->adm->ctl));
}

/* GET /metrics: Prometheus text exposition 0.0.4. */
static void h_metrics(struct admin_conn *ac, json_t *body, const char *query)
{
	(void)body;
	(void)query;
	struct evbuffer *text = evbuffer_new();
	if (!text || control_metrics(ac->adm->ctl, text) < 0)
		reply_error(ac, 500, "cannot build the metrics: out of memory");
	else
		reply_text(ac, "text/plain; version=0.0.4; charset=utf-8", NULL, text);
	if (text)
		evbuffer_free(text);
}

/* GET /: the dashboard page, static bytes that fetch /status themselves. */
static void h_dashboard(struct admin_conn *ac, json_t *body, const char *query)
{
	(void)body;
	(void)query;
	size_t len;
	const unsigned char *page = dashboard_page(&len);
	struct evbuffer *text = evbuffer_new();
	if (!text || evbuffer_add_reference(text, page, len, NULL, NULL) < 0)
		reply_error(ac, 500, "cannot send the dashboard: out of memory");
	else
		reply_text(ac, "text/html; charset=utf-8", dashboard_headers(), text);
	if (text)
		evbuffer_free(text);
}

static void h_journal(struct admin_conn *ac, json_t *body, const char *query)
{
	(void)body;
	long n = 20;
	const char *q = query ? strstr(query, "n=") : NULL;
	if (q) {
		char *end;
		n = strtol(q + 2, &end, 10);
		if (end == q + 2 || n < 0 || n > 10000) {
			reply_error(ac, 400, "bad request: n must be 0..10000");
			return;
		}
	}
	json_t *answer = NULL;
	int status = control_journal(ac->adm->ctl, (size_t)n, &answer);
	reply(ac, status, answer);
}

static void act(struct admin_conn *ac, const char *action, json_t *body)
{
	ac->waiting = true;
	control_act(ac->adm->ctl, action, body, ac->who, action_done, ac);
}

static void h_switch(struct admin_conn *ac, json_t *body, const char *query)
{
	(void)query;
	act(ac, "switch", body);
}

static void h_maintenance(struct admin_conn *ac, json_t *body, const char *query)
{
	(void)query;
	act(ac, "maintenance", body);
}

static void h_hold(struct admin_conn *ac, json_t *body, const char *query)
{
	(void)query;
	act(ac, "hold", body);
}

static void h_resume(struct admin_conn *ac, json_t *body, const char *query)
{
	(void)query;
	act(ac, "resume", body);
}

static void h_reload(struct admin_conn *ac, json_t *body, const char *query)
{
	(void)body;
	(void)query;
	json_t *answer = NULL;
	int status = control_reload(ac->adm->ctl, ac->who, &answer);
	reply(ac, status, answer);
}

/* ---- the spool (admin_spool.c): answers as JSON, or a body to stream ---- */

static void stream_pump(struct admin_conn *ac)
{
	struct evbuffer *out = bufferevent_get_output(ac->bev);
	if (admin_spool_pump(ac->stream, &ac->stream_left, out, ADMIN_STREAM_ROOM) < 0) {
		conn_close(ac); /* short of its Content-Length: the client sees it failed */
		return;
	}
	if (!ac->stream_left) {
		spool_reader_close(ac->stream);
		ac->stream = NULL;
	}
}

static void spool_reply(struct admin_conn *ac, struct admin_spool_answer *a)
{
	if (!a->body) {
		reply(ac, a->status, a->json);
		return;
	}
	reply_head(ac, 200, "application/octet-stream", a->body_len, NULL);
	ac->stream = a->body;
	ac->stream_left = a->body_len;
	/* Refilled from the segment as the peer reads: never the whole body. */
	bufferevent_setwatermark(ac->bev, EV_WRITE, ADMIN_STREAM_ROOM / 4, 0);
	stream_pump(ac);
}

static void h_spool(struct admin_conn *ac, json_t *body, const char *query)
{
	(void)body;
	struct admin_spool_answer a = { 0 };
	admin_spool_list(ac->adm->ctl, query, &a);
	spool_reply(ac, &a);
}

static void h_spool_records(struct admin_conn *ac, json_t *body, const char *query)
{
	(void)body;
	struct admin_spool_answer a = { 0 };
	admin_spool_records(ac->adm->ctl, query, &a);
	spool_reply(ac, &a);
}

static void h_spool_retry_all(struct admin_conn *ac, json_t *body, const char *query)
{
	struct admin_spool_answer a = { 0 };
	if (query && *query)
		reply_error(ac, 400, "bad request: POST /spool/retry takes no query");
	else {
		admin_spool_retry_all(ac->adm->ctl, ac->who, body, &a);
		spool_reply(ac, &a);
	}
}

static void h_spool_record(struct admin_conn *ac, const char *rest, const char *query)
{
	const struct http1_head *h = &ac->head;
	struct admin_spool_answer a = { 0 };
	admin_spool_record(ac->adm->ctl, ac->who, http1_token_eq(h->method, h->method_len, "GET"),
			   http1_token_eq(h->method, h->method_len, "POST"), rest, query, &a);
	spool_reply(ac, &a);
}

/* The keys a request body may hold and their JSON types: anything else is
 * a 400 naming the key, so that a typo never widens an action's scope. */
struct body_key {
	const char *name;
	json_type type;              /* JSON_TRUE: a boolean; JSON_REAL: any number */
};

static const struct body_key no_keys[] = { { NULL, JSON_NULL } };
static const struct body_key switch_keys[] = {
	{ "to", JSON_STRING }, { "project", JSON_STRING }, { "reason", JSON_STRING },
	{ "force", JSON_TRUE }, { "at", JSON_STRING }, { NULL, JSON_NULL },
};
static const struct body_key maintenance_keys[] = {
	{ "on", JSON_TRUE }, { "project", JSON_STRING }, { "until", JSON_STRING },
	{ "reason", JSON_STRING }, { NULL, JSON_NULL },
};
static const struct body_key hold_keys[] = {
	{ "project", JSON_STRING }, { "max", JSON_REAL }, { "reason", JSON_STRING },
	{ NULL, JSON_NULL },
};
static const struct body_key resume_keys[] = {
	{ "project", JSON_STRING }, { "reason", JSON_STRING }, { NULL, JSON_NULL },
};
static const struct body_key spool_retry_keys[] = {
	{ "project", JSON_STRING }, { NULL, JSON_NULL },
};

static const struct route_entry {
	const char *method;
	const char *path;
	const struct body_key *keys;
	void (*fn)(struct admin_conn *ac, json_t *body, const char *query);
} routes[] = {
	{ "GET", "/", no_keys, h_dashboard },
	{ "GET", "/status", no_keys, h_status },
	{ "GET", "/metrics", no_keys, h_metrics },
	{ "GET", "/journal", no_keys, h_journal },
	{ "GET", "/spool", no_keys, h_spool },
	{ "GET", "/spool/records", no_keys, h_spool_records },
	{ "POST", "/spool/retry", spool_retry_keys, h_spool_retry_all },
	{ "POST", "/switch", switch_keys, h_switch },
	{ "POST", "/maintenance", maintenance_keys, h_maintenance },
	{ "POST", "/hold", hold_keys, h_hold },
	{ "POST", "/resume", resume_keys, h_resume },
	{ "POST", "/reload", no_keys, h_reload },
};

static const char *json_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: case JSON_REAL: return "a number";
	case JSON_TRUE: case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "?";
}

static bool type_fits(json_type want, const json_t *v)
{
	switch (want) {
	case JSON_TRUE: return json_is_boolean(v);
	case JSON_REAL: return json_is_number(v);
	default: return json_typeof(v) == want;
	}
}

/* 0 if BODY (an object) holds only KEYS, each of its type; else -1 with a
 * one-line reason naming the key in MSG. */
static int body_check(const json_t *body, const struct body_key *keys, char *msg, size_t len)
{
	const char *name;
	json_t *v;
	json_object_foreach((json_t *)body, name, v) {
		const struct body_key *k = keys;
		while (k->name && strcmp(k->name, name) != 0)
			k++;
		if (!k->name) {
			int n = snprintf(msg, len, "bad request: unknown key \"%s\" (%s)", name,
					 keys->name ? "takes:" : "takes no keys");
			for (k = keys; k->name && n > 0 && (size_t)n < len; k++)
				n += snprintf(msg + n, len - (size_t)n, "%s %s", k == keys ? "" : ",",
					      k->name);
			if (keys->name && n > 0 && (size_t)n < len)
				snprintf(msg + n, len - (size_t)n, ")");
			return -1;
		}
		if (!type_fits(k->type, v)) {
			snprintf(msg, len, "bad request: \"%s\" must be %s, not %s", name,
				 k->type == JSON_TRUE ? "a boolean" : k->type == JSON_REAL ? "a number"
				 : "a string", json_type_name(v));
			return -1;
		}
	}
	return 0;
}

/* BODY_TEXT (LEN bytes, none = {}) as the object KEYS allow into *BODY:
 * 0, or an HTTP status with a one-line reason in MSG. */
static int body_parse(const char *text, size_t len, const struct body_key *keys, json_t **body,
		      char *msg, size_t msg_len)
{
	json_error_t err;
	/* A key given twice is refused: "the last wins" would hide a mistake. */
	*body = len ? json_loadb(text, len, JSON_REJECT_DUPLICATES, &err) : json_object();
	if (!*body) {
		if (len)
			snprintf(msg, msg_len, "bad request: malformed JSON at line %d: %s", err.line,
				 err.text);
		else
			snprintf(msg, msg_len, "out of memory");
		return len ? 400 : 500;
	}
	if (!json_is_object(*body))
		snprintf(msg, msg_len, "bad request: the body must be a JSON object");
	else if (body_check(*body, keys, msg, msg_len) == 0)
		return 0;
	json_decref(*body);
	*body = NULL;
	return 400;
}

int admin_body_parse(const char *method, const char *path, const char *text, size_t len,
		     json_t **body, char *msg, size_t msg_len)
{
	const struct body_key *keys = no_keys;
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (strcmp(routes[i].path, path) == 0 && strcmp(routes[i].method, method) == 0)
			keys = routes[i].keys;
	return body_parse(text, len, keys, body, msg, msg_len);
}

static void h_cancel(struct admin_conn *ac, const char *id_text)
{
	char *end;
	long id = strtol(id_text, &end, 10);
	if (end == id_text || *end) {
		reply_error(ac, 404, "no such scheduled switch");
		return;
	}
	json_t *answer = NULL;
	int status = control_cancel(ac->adm->ctl, id, ac->who, &answer);
	reply(ac, status, answer);
}

/* ---- request handling ---- */

static bool authorized(struct admin_conn *ac)
{
	const char *token = ac->adm->token;
	if (!token)
		return true; /* unix socket: file mode 0600 is the guard */
	const struct http1_header *h = http1_find(&ac->head, "authorization");
	if (!h || h->value_len < 7 || strncasecmp(h->value, "Bearer ", 7) != 0)
		return false;
	size_t len = h->value_len - 7, want = strlen(token);
	/* Constant time over the expected token's length: a given token of
	 * another length is never read, the expected one is compared with
	 * itself instead, as long. */
	const char *given = len == want ? h->value + 7 : token;
	return (CRYPTO_memcmp(given, token, want) == 0) & (len == want);
}

static void dispatch(struct admin_conn *ac, const char *body_text, size_t body_len)
{
	const struct http1_head *h = &ac->head;
	const struct http1_header *host = http1_find(h, "host"), *origin = http1_find(h, "origin");
	if ((origin || http1_find(h, "sec-fetch-site")) &&
	    !dashboard_browser_allowed(host ? host->value : NULL, host ? host->value_len : 0,
				       origin ? origin->value : NULL, origin ? origin->value_len : 0)) {
		reply_error(ac, 403, "a browser request from another site or name: open the "
			    "dashboard on a loopback address (localhost, 127.0.0.1, [::1])");
		return;
	}
	/* The dashboard page holds no data (its script fetches /status with the
	 * token), and a browser cannot send a bearer token when opening it. */
	bool page = h->target_len == 1 && h->target[0] == '/' &&
		    http1_token_eq(h->method, h->method_len, "GET");
	if (!page && !authorized(ac)) {
		reply_error(ac, 401, "missing or wrong bearer token");
		return;
	}
	char path[256];
	size_t n = h->target_len < sizeof(path) - 1 ? h->target_len : sizeof(path) - 1;
	memcpy(path, h->target, n);
	path[n] = '\0';
	char *query = strchr(path, '?');
	if (query)
		*query++ = '\0';

	/* The endpoint first: a body is read against what it takes. */
	const struct route_entry *route = NULL;
	bool cancel = strncmp(path, "/schedule/", 10) == 0, path_known = cancel;
	for (size_t i = 0; !cancel && !route && i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (strcmp(routes[i].path, path) != 0)
			continue;
		path_known = true;
		if (http1_token_eq(h->method, h->method_len, routes[i].method))
			route = &routes[i];
	}
	/* /spool/<id>...: admin_spool reads the id and the method. */
	bool record = !route && !path_known && strncmp(path, "/spool/", 7) == 0;
	if (cancel && !http1_token_eq(h->method, h->method_len, "DELETE")) {
		reply_error(ac, 405, "use DELETE /schedule/<id>");
		return;
	}
	if (!cancel && !route && !record) {
		reply_error(ac, path_known ? 405 : 404,
			    path_known ? "method not allowed" : "no such endpoint");
		return;
	}
	char msg[512];
	json_t *body = NULL;
	int status = body_parse(body_text, body_len, route ? route->keys : no_keys, &body, msg,
				sizeof(msg));
	if (status)
		reply_error(ac, status, msg);
	else if (cancel)
		h_cancel(ac, path + 10);
	else if (record)
		h_spool_record(ac, path + 7, query);
	else
		route->fn(ac, body, query);
	json_decref(body);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct admin_conn *ac = arg;
	if (ac->answered || ac->waiting)
		return;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t avail = evbuffer_get_length(in);
	size_t want = avail < ADMIN_MAX_HEAD + 1 ? avail : ADMIN_MAX_HEAD + 1;
	const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)want);
	switch (http1_parse_head(&ac->parser, buf, want, ADMIN_MAX_HEAD, ADMIN_MAX_HEAD, &ac->head)) {
	case HTTP1_MORE:
		return;
	case HTTP1_ERROR:
		reply_error(ac, ac->parser.error_status, ac->parser.error_reason);
		return;
	case HTTP1_DONE:
		break;
	}
	const struct http1_head *h = &ac->head;
	if (h->framing == HTTP1_BODY_CHUNKED) {
		reply_error(ac, 411, "send a Content-Length");
		return;
	}
	if (h->framing == HTTP1_BODY_LENGTH && h->content_length > ADMIN_MAX_BODY) {
		reply_error(ac, 413, "request body too large");
		return;
	}
	size_t body_len = h->framing == HTTP1_BODY_LENGTH ? (size_t)h->content_length : 0;
	if (avail < h->head_len + body_len)
		return; /* the head stays parsed again next time: small and bounded */
	event_del(ac->deadline);
	/* Whole: an action may take up to a drain timeout to answer, longer
	 * than the idle timeout; reading goes on only to see the client leave. */
	struct timeval wtv = duration_tv(ADMIN_TIMEOUT);
	bufferevent_set_timeouts(bev, NULL, &wtv);
	buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)(h->head_len + body_len));
	dispatch(ac, buf + h->head_len, body_len);
}

static void on_write(struct bufferevent *bev, void *arg)
{
	struct admin_conn *ac = arg;
	if (ac->stream) {
		stream_pump(ac);
		return;
	}
	if (ac->answered && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		conn_close(ac);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	struct admin_conn *ac = arg;
	if (ac->waiting) {
		/* The action goes on; its answer has nowhere to go. */
		ac->gone = true;
		bufferevent_disable(ac->bev, EV_READ | EV_WRITE);
		return;
	}
	conn_close(ac);
}

static void peer_name(struct admin_conn *ac, int fd, const struct sockaddr *sa, socklen_t len)
{
	if (sa->sa_family == AF_UNIX) {
		struct ucred cred;
		socklen_t cl = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0) {
			struct passwd pw, *res = NULL;
			char buf[1024];
			if (getpwuid_r(cred.uid, &pw, buf, sizeof(buf), &res) == 0 && res)
				snprintf(ac->who, sizeof(ac->who), "%s (uid %u, pid %d)", res->pw_name,
					 (unsigned)cred.uid, (int)cred.pid);
			else
				snprintf(ac->who, sizeof(ac->who), "uid %u (pid %d)", (unsigned)cred.uid,
					 (int)cred.pid);
			return;
		}
		snprintf(ac->who, sizeof(ac->who), "unix socket");
		return;
	}
	addr_format(sa, len, ac->where, sizeof(ac->where));
	snprintf(ac->who, sizeof(ac->who), "token from %s", ac->where);
}

/* The peer's address without its port (TCP); all zero for the unix socket,
 * whose peers are the socket file's owner and root. */
static void peer_key(struct sockaddr_storage *key, const struct sockaddr *sa, socklen_t len)
{
	memset(key, 0, sizeof(*key));
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		struct sockaddr_in *k = (struct sockaddr_in *)key;
		k->sin_family = AF_INET;
		k->sin_addr = ((const struct sockaddr_in *)sa)->sin_addr;
	} else if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		struct sockaddr_in6 *k = (struct sockaddr_in6 *)key;
		k->sin6_family = AF_INET6;
		k->sin6_addr = ((const struct sockaddr_in6 *)sa)->sin6_addr;
	}
}

/* A slot for a new connection from PEER: at the per-peer limit (TCP) or
 * the total, the oldest incomplete request (of PEER, at its limit) makes
 * room, so that half-sent requests cannot keep the operator out; false if
 * every slot holds a request in progress. */
static bool make_room(struct admin *adm, const struct sockaddr_storage *peer)
{
	int same = 0;
	struct admin_conn *oldest = NULL, *oldest_same = NULL;
	for (struct admin_conn *ac = adm->conns; ac; ac = ac->next) {
		bool mine = memcmp(&ac->peer, peer, sizeof(*peer)) == 0;
		same += mine;
		if (incomplete(ac)) {
			oldest = ac;
			if (mine)
				oldest_same = ac;
		}
	}
	struct admin_conn *victim = NULL;
	if (peer->ss_family != AF_UNSPEC && same >= ADMIN_MAX_PER_PEER)
		victim = oldest_same ? oldest_same : NULL;
	else if (adm->n_conns >= ADMIN_MAX_CONNS)
		victim = oldest;
	else
		return true;
	if (!victim)
		return false;
	log_dropped(&adm->evicted, "closed incomplete requests that made room for newer "
		    "connections", victim);
	conn_close(victim);
	return true;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
		      void *arg)
{
	(void)l;
	struct admin *adm = arg;
	struct sockaddr_storage peer;
	peer_key(&peer, sa, (socklen_t)len);
	if (!make_room(adm, &peer)) {
		log_dropped(&adm->refused, "refused connections, every slot busy with a request "
			    "in progress", NULL);
		evutil_closesocket(fd);
		return;
	}
	struct admin_conn *ac = calloc(1, sizeof(*ac));
	if (!ac) {
		evutil_closesocket(fd);
		return;
	}
	ac->adm = adm;
	ac->peer = peer;
	ac->bev = bufferevent_socket_new(adm->base, fd, BEV_OPT_CLOSE_ON_FREE);
	ac->deadline = evtimer_new(adm->base, on_deadline, ac);
	struct timeval dl = duration_tv(ADMIN_REQUEST_DEADLINE);
	if (!ac->bev || !ac->deadline || evtimer_add(ac->deadline, &dl) < 0) {
		if (ac->deadline)
			event_free(ac->deadline);
		if (ac->bev)
			bufferevent_free(ac->bev);
		else
			evutil_closesocket(fd);
		free(ac);
		return;
	}
	adm->n_conns++;
	ac->next = adm->conns;
	if (adm->conns)
		adm->conns->prev = ac;
	adm->conns = ac;
	peer_name(ac, fd, sa, (socklen_t)len);
	if (!ac->where[0])
		snprintf(ac->where, sizeof(ac->where), "%.*s", (int)sizeof(ac->where) - 1, ac->who);
	http1_parser_init(&ac->parser, HTTP1_REQUEST);
	struct timeval tv = duration_tv(ADMIN_TIMEOUT);
	bufferevent_set_timeouts(ac->bev, &tv, &tv);
	bufferevent_setcb(ac->bev, on_read, on_write, on_event, ac);
	bufferevent_enable(ac->bev, EV_READ | EV_WRITE);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
	(void)l;
	struct admin *adm = arg;
	listener_guard_error(adm->guard);
}

static bool token_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

char *admin_token_read(const char *path, char *why, size_t why_len)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		snprintf(why, why_len, "token file %s: %s", path, strerror(errno));
		return NULL;
	}
	char buf[ADMIN_TOKEN_FILE_MAX + 1];
	size_t n = fread(buf, 1, sizeof(buf), f);
	int err = ferror(f) ? errno : 0;
	fclose(f);
	if (err) {
		snprintf(why, why_len, "token file %s: %s", path, strerror(err));
		return NULL;
	}
	if (n > ADMIN_TOKEN_FILE_MAX) {
		snprintf(why, why_len, "token file %s: longer than %d bytes", path,
			 ADMIN_TOKEN_FILE_MAX);
		return NULL;
	}
	size_t start = 0;
	while (start < n && token_space(buf[start]))
		start++;
	while (n > start && token_space(buf[n - 1]))
		n--;
	if (n == start) {
		snprintf(why, why_len, "token file %s is empty", path);
		return NULL;
	}
	if (n - start > ADMIN_TOKEN_MAX) {
		snprintf(why, why_len, "token file %s: the token is longer than %d bytes", path,
			 ADMIN_TOKEN_MAX);
		return NULL;
	}
	for (size_t i = start; i < n; i++)
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f) {
			snprintf(why, why_len, "token file %s: the token has a control character",
				 path);
			return NULL;
		}
	char *token = strndup(buf + start, n - start);
	if (!token)
		snprintf(why, why_len, "token file %s: out of memory", path);
	return token;
}

struct admin *admin_new(struct event_base *base, const struct config *cfg, struct control *ctl,
			char *why, size_t why_len)
{
	const struct addr *a = &cfg->admin->address;
	if (!a->len) {
		snprintf(why, why_len, "no admin.address configured");
		return NULL;
	}
	struct admin *adm = calloc(1, sizeof(*adm));
	if (!adm) {
		snprintf(why, why_len, "admin: out of memory");
		return NULL;
	}
	adm->base = base;
	adm->cfg = cfg;
	adm->ctl = ctl;
	const struct sockaddr *sa = (const struct sockaddr *)&a->ss;
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto sys_fail;
	if (sa->sa_family == AF_UNIX) {
		const char *path = ((const struct sockaddr_un *)sa)->sun_path;
		struct stat st;
		/* A socket left by a previous run is replaced; anything else is not ours. */
		if (lstat(path, &st) == 0) {
			if (!S_ISSOCK(st.st_mode)) {
				snprintf(why, why_len, "admin socket %s exists and is not a socket", path);
				goto fail;
			}
			unlink(path);
		}
		mode_t old = umask(0177);
		int rc = bind(fd, sa, a->len);
		umask(old);
		if (rc < 0 || chmod(path, 0600) < 0)
			goto sys_fail;
		if (!(adm->unix_path = strdup(path))) {
			unlink(path);
			errno = ENOMEM;
			goto sys_fail;
		}
	} else {
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		char reason[512];
		adm->token = admin_token_read(cfg->admin->token_file, reason, sizeof(reason));
		if (!adm->token) {
			snprintf(why, why_len, "admin: %s", reason);
			goto fail;
		}
		if (strlen(adm->token) < 16) {
			snprintf(why, why_len, "admin: token file %s: the token must have at least "
				 "16 characters", cfg->admin->token_file);
			goto fail;
		}
		if (bind(fd, sa, a->len) < 0)
			goto sys_fail;
	}
	if (listen(fd, 64) < 0)
		goto sys_fail;
	adm->listener = evconnlistener_new(base, on_accept, adm, LEV_OPT_CLOSE_ON_FREE, -1, fd);
	if (!adm->listener)
		goto sys_fail;
	evconnlistener_set_error_cb(adm->listener, on_accept_error);
	if (!(adm->guard = listener_guard_new(base, adm->listener, "admin accept", false))) {
		errno = ENOMEM;
		goto sys_fail;
	}
	char where[128];
	addr_format(sa, a->len, where, sizeof(where));
	log_info("admin API on %s", where);
	return adm;
sys_fail: {
	char where[128];
	addr_format(sa, a->len, where, sizeof(where));
	snprintf(why, why_len, "admin %s: %s", where, strerror(errno));
}
fail:
	if (fd >= 0 && !adm->listener)
		close(fd);
	admin_free(adm);
	return NULL;
}

void admin_free(struct admin *adm)
{
	if (!adm)
		return;
	if (adm->listener)
		evconnlistener_free(adm->listener);
	listener_guard_free(adm->guard);
	/* A connection still waiting for an action is left to it (it frees it). */
	for (struct admin_conn *ac = adm->conns, *next; ac; ac = next) {
		next = ac->next;
		if (!ac->waiting)
			conn_close(ac);
	}
	if (adm->unix_path) {
		unlink(adm->unix_path);
		free(adm->unix_path);
	}
	free(adm->token);
	free(adm);
}

/* ---- configuration: the "admin" group ---- */

int admin_conf_parse(struct conf_reader *r, const config_setting_t *s, struct config *cfg)
{
	static const char *const keys[] = { "address", "token_file", NULL };
	int ok = conf_check_keys(r, s, keys) ? 0 : -1;
	if (!config_setting_is_group(s))
		return -1;

	struct admin_conf *a = cfg->admin;
	if (conf_get_path(r, s, "token_file", &a->token_file) < 0)
		ok = -1;

	char *text = NULL;
	int rc = conf_get_string(r, s, "address", &text);
	if (rc == 0) {
		conf_error(r, s, "admin: missing required key 'address' "
			   "(\"unix:/path\" or a loopback \"host:port\")");
		return -1;
	}
	if (rc < 0)
		return -1;

	const config_setting_t *at = config_setting_get_member(s, "address");
	const char *why = NULL;
	if (addr_parse(text, &a->address, &why) < 0) {
		conf_error(r, at, "admin.address: invalid address \"%s\": %s", text,
			   why ? why : "unparsable");
		memset(&a->address, 0, sizeof a->address);
		ok = -1;
	} else if (!addr_is_unix(&a->address)) {
		/* TCP: the token is the only guard, and without TLS it must not
		 * cross a network (TLS for admin comes in a later issue). */
		if (!addr_is_loopback((const struct sockaddr *)&a->address.ss)) {
			conf_error(r, at, "admin.address: \"%s\" is not a loopback address; a TCP "
				   "admin listener must be loopback (127.0.0.1, [::1]) as long as it "
				   "has no TLS, which is not available yet", text);
			ok = -1;
		}
		if (a->token_file == NULL) {
			conf_error(r, at, "admin: token_file is required when admin.address is TCP "
				   "(\"%s\")", text);
			ok = -1;
		}
	}
	free(text);
	return ok;
}

const char *admin_conf_restart_key(const struct admin_conf *a, const struct admin_conf *b)
{
	/* The listener and the token are set up once, at start. */
	if (!addr_equal(&a->address, &b->address) || !conf_str_equal(a->token_file, b->token_file))
		return "admin";
	return NULL;
}

void admin_conf_free(struct admin_conf *c)
{
	free(c->token_file);
	c->token_file = NULL;
}
