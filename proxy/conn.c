/* conn: a client connection. One request at a time: read the head, hand it
 * to the dispatcher, then let the action it chose drive the connection
 * through the named states of enum conn_state. Bytes of pipelined requests
 * wait in the input buffer until the answer before them is out. */
#include "conn.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "bev.h"
#include "conf.h"
#include "duration.h"
#include "listener.h"
#include "log.h"
#include "response.h"
#include "route.h"
#include "project.h"
#include "state.h"
#include "stats.h"
#include "tls.h"

void limits_conf_defaults(struct limits_conf *l)
{
	*l = (struct limits_conf){
		.max_connections = 10000,
		.max_request_line = 8192,
		.max_header_bytes = 32768,
		.max_body = 0,
		.header_timeout = 30,
		.body_timeout = 60,
		.keepalive_timeout = 75,
		.send_timeout = 60,
		.drain_timeout = 30,
		.buffer_bytes = 65536,
		.max_parked = 1000,
		.body_buffer = 65536,
		.splice_min = 65536,
		/* Far below a 2G link (several KB/s); the average since the body
		 * began, so an early burst pays for a later stall. */
		.min_body_rate = 128,
		.min_body_rate_grace = 10,
		.projects = PROJECT_LIMIT_DEFAULT,
	};
}

int limits_conf_parse(struct conf_reader *r, const config_setting_t *s, struct config *cfg)
{
	static const char *const keys[] = { "max_connections", "max_request_line",
					    "max_header_bytes", "max_body", "header_timeout",
					    "body_timeout", "keepalive_timeout", "send_timeout",
					    "drain_timeout", "buffer_bytes", "max_parked", "body_buffer",
					    "min_body_rate", "min_body_rate_grace", "projects", "splice_min",
					    NULL };
	struct limits_conf *l = cfg->limits;
	int status = conf_check_keys(r, s, keys) ? 0 : -1;
	long long n;
	uint64_t sz;
	int rc;
	if ((rc = conf_get_int(r, s, "max_connections", 1, 10000000, &n)) < 0)
		status = -1;
	else if (rc)
		l->max_connections = (unsigned)n;
	if ((rc = conf_get_size(r, s, "max_request_line", 64, 1 << 20, &sz)) < 0)
		status = -1;
	else if (rc)
		l->max_request_line = sz;
	if ((rc = conf_get_size(r, s, "max_header_bytes", 256, 1 << 20, &sz)) < 0)
		status = -1;
	else if (rc)
		l->max_header_bytes = sz;
	if ((rc = conf_get_int(r, s, "max_parked", 0, 1000000, &n)) < 0)
		status = -1;
	else if (rc)
		l->max_parked = (unsigned)n;
	if ((rc = conf_get_int(r, s, "projects", 1, PROJECT_LIMIT_MAX, &n)) < 0)
		status = -1;
	else if (rc)
		l->projects = (size_t)n;
	if ((rc = conf_get_size(r, s, "buffer_bytes", 4096, 64 << 20, &sz)) < 0)
		status = -1;
	else if (rc)
		l->buffer_bytes = sz;
	if ((rc = conf_get_size(r, s, "body_buffer", 0, 64 << 20, &sz)) < 0)
		status = -1;
	else if (rc)
		l->body_buffer = sz;
	if ((rc = conf_get_int(r, s, "min_body_rate", 0, 1LL << 40, &n)) < 0)
		status = -1;
	else if (rc)
		l->min_body_rate = (uint64_t)n;
	if (conf_get_size(r, s, "max_body", 0, UINT64_MAX, &l->max_body) < 0 ||
	    conf_get_size(r, s, "splice_min", 0, UINT64_MAX, &l->splice_min) < 0 ||
	    conf_get_duration(r, s, "min_body_rate_grace", 0.001, 3600, &l->min_body_rate_grace) < 0 ||
	    conf_get_duration(r, s, "header_timeout", 0.001, 3600, &l->header_timeout) < 0 ||
	    conf_get_duration(r, s, "body_timeout", 0.001, 86400, &l->body_timeout) < 0 ||
	    conf_get_duration(r, s, "keepalive_timeout", 0.001, 86400, &l->keepalive_timeout) < 0 ||
	    conf_get_duration(r, s, "send_timeout", 0.001, 86400, &l->send_timeout) < 0 ||
	    conf_get_duration(r, s, "drain_timeout", 0, 86400, &l->drain_timeout) < 0)
		status = -1;
	if (status == 0 && l->buffer_bytes <= l->max_header_bytes) {
		/* Reading pauses at buffer_bytes: a whole head must fit below it. */
		conf_error(r, s, "limits: buffer_bytes (%zu) must be larger than max_header_bytes (%zu)",
			   l->buffer_bytes, l->max_header_bytes);
		status = -1;
	}
	if (status == 0 && l->max_request_line > l->max_header_bytes) {
		conf_error(r, s, "limits: max_request_line (%zu) is larger than max_header_bytes (%zu)",
			   l->max_request_line, l->max_header_bytes);
		status = -1;
	}
	return status;
}

struct conn {
	struct conn_env *env;
	struct conn *prev, *next;        /* env->conns */
	struct bufferevent *bev;
	enum conn_state state;
	struct sockaddr_storage peer;
	struct request *r;               /* the request being read or answered */
	const struct config *cfg;        /* the config of its latest request */
	bool close_after;                /* close once the current answer is out */
	bool input_eof;                  /* the client shut its sending side */
	bool in_process;                 /* conn_process_input() is running */
	bool tls;                        /* came through a TLS listener */
	bool handshaken;                 /* its TLS handshake ended well */
	double t_read, t_write;          /* the timeouts last set (< 0: none yet) */
};

static void client_read_cb(struct bufferevent *bev, void *arg);
static void client_write_cb(struct bufferevent *bev, void *arg);
static void client_event_cb(struct bufferevent *bev, short what, void *arg);
static void conn_process_input(struct conn *c);

/* Closing right after an answer while the client still sends (a body we
 * refused, pipelined requests) would make the kernel reset the connection
 * and the client could lose the answer. So: half-close, then read and
 * discard for a short while before closing for good. */
#define LINGER_SECONDS 2.0

static bool reads_body(enum conn_state s)
{
	return s == CONN_BUFFER_BODY || s == CONN_CONNECT || s == CONN_SEND_BODY;
}

static double coarse_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Sets the client's timeouts, unless they are those already set: each
 * set re-adds the bufferevent's events (a timer heap update each), and a
 * request moves through several states with the same ones. Skipping one
 * does not stretch a timeout: libevent restarts them on every read and
 * write anyway. */
static void conn_timeouts(struct conn *c, double read, double write)
{
	if (read == c->t_read && write == c->t_write)
		return;
	c->t_read = read;
	c->t_write = write;
	bev_set_timeouts(c->bev, read, write);
}

/* Every state change goes through here, and with it the client-side
 * timeouts each phase allows. */
void conn_set_state(struct conn *c, enum conn_state s)
{
	const struct limits_conf *lim = c->cfg->limits;
	enum conn_state was = c->state;
	c->state = s;
	if (was == CONN_BUFFER_BODY && s != CONN_BUFFER_BODY)
		bufferevent_setwatermark(c->bev, EV_READ, 0, lim->buffer_bytes);
	if (c->r && reads_body(s) && !reads_body(was)) {
		/* min_body_rate counts from here: waiting in a gate is not the client's time. */
		c->r->rate_since = coarse_now();
		c->r->rate_mark = c->r->bytes_in + evbuffer_get_length(bufferevent_get_input(c->bev));
	}
	switch (s) {
	case CONN_READ_HEAD:
		conn_timeouts(c, lim->keepalive_timeout, lim->send_timeout);
		break;
	case CONN_PARKED:
	case CONN_QUEUED:            /* may wait longer than the head timeout allows */
	case CONN_AWAIT_RESPONSE:
	case CONN_RELAY_RESPONSE:
		conn_timeouts(c, 0, lim->send_timeout);
		break;
	case CONN_BUFFER_BODY: {
		/* The body waits behind the head (when still in the input), bounded by body_buffer. */
		size_t head = c->r && !c->r->head_consumed ? c->r->head.head_len : 0;
		size_t high = head + lim->body_buffer;
		bufferevent_setwatermark(c->bev, EV_READ, 0,
					 high > lim->buffer_bytes ? high : lim->buffer_bytes);
		conn_timeouts(c, lim->body_timeout, lim->send_timeout);
		break;
	}
	case CONN_CONNECT:
	case CONN_SEND_BODY:
		conn_timeouts(c, lim->body_timeout, lim->send_timeout);
		break;
	case CONN_CLOSING:
		break;
	case CONN_LINGER: {
		SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
		if (ssl)
			SSL_shutdown(ssl); /* close_notify, so the client knows nothing was cut */
		shutdown(bufferevent_getfd(c->bev), SHUT_WR);
		struct evbuffer *in = bufferevent_get_input(c->bev);
		evbuffer_drain(in, evbuffer_get_length(in));
		conn_timeouts(c, LINGER_SECONDS, 0);
		bufferevent_setwatermark(c->bev, EV_READ, 0, 0);
		bufferevent_enable(c->bev, EV_READ);
		break;
	}
	}
}

enum conn_state conn_state(const struct conn *c)
{
	return c->state;
}

struct conn_env *conn_env(const struct conn *c)
{
	return c->env;
}

struct evbuffer *conn_input(const struct conn *c)
{
	return bufferevent_get_input(c->bev);
}

struct evbuffer *conn_output(const struct conn *c)
{
	return bufferevent_get_output(c->bev);
}

const struct sockaddr *conn_peer(const struct conn *c)
{
	return (const struct sockaddr *)&c->peer;
}

bool conn_tls(const struct conn *c)
{
	return c->tls;
}

void conn_close_after(struct conn *c)
{
	c->close_after = true;
}

bool conn_closing_after(const struct conn *c)
{
	return c->close_after;
}

bool conn_input_eof(const struct conn *c)
{
	return c->input_eof;
}

bool conn_body_too_slow(struct request *r, bool backpressured)
{
	const struct limits_conf *lim = r->cfg->limits;
	if (!lim->min_body_rate)
		return false;
	double now = coarse_now(), elapsed = now - r->rate_since;
	if (elapsed < lim->min_body_rate_grace)
		return false;
	uint64_t received = r->bytes_in + evbuffer_get_length(bufferevent_get_input(r->conn->bev));
	if (backpressured) {
		r->rate_since = now;
		r->rate_mark = received;
		return false;
	}
	uint64_t got = received > r->rate_mark ? received - r->rate_mark : 0;
	return (double)got < (double)lim->min_body_rate * (elapsed - lim->min_body_rate_grace);
}

void conn_read_more(struct conn *c)
{
	bev_read_more(c->bev, c->cfg->limits->buffer_bytes);
}

int conn_plain_fd(const struct conn *c)
{
	return c->tls ? -1 : bufferevent_getfd(c->bev);
}

void conn_input_ended(struct conn *c)
{
	c->input_eof = true;
	c->close_after = true;
	bufferevent_disable(c->bev, EV_READ);
}

void conn_reading(struct conn *c, bool on)
{
	if (!on)
		bufferevent_disable(c->bev, EV_READ);
	else if (!c->input_eof)
		bufferevent_enable(c->bev, EV_READ);
}

struct conn *conn_new(struct conn_env *env, int fd, const struct sockaddr *peer, socklen_t len,
		      const struct listen_conf *lc)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->env = env;
	c->cfg = env->cfg;
	c->t_read = c->t_write = -1;
	memcpy(&c->peer, peer, len);
	if (lc->tls) {
		/* The handshake runs inside the bufferevent; header_timeout bounds it
		 * like the head that follows. */
		SSL *ssl = tls_server_ssl(lc->tls);
		c->bev = ssl ? bufferevent_openssl_socket_new(env->base, fd, ssl,
							     BUFFEREVENT_SSL_ACCEPTING,
							     BEV_OPT_CLOSE_ON_FREE)
			     : NULL;
		if (!c->bev && ssl)
			SSL_free(ssl);
		c->tls = true;
	} else {
		c->bev = bufferevent_socket_new(env->base, fd, BEV_OPT_CLOSE_ON_FREE);
	}
	if (!c->bev) {
		free(c);
		return NULL;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	bufferevent_setcb(c->bev, client_read_cb, client_write_cb, client_event_cb, c);
	bev_set_budget(c->bev, c->cfg->limits->buffer_bytes);
	c->state = CONN_READ_HEAD;
	conn_timeouts(c, c->cfg->limits->header_timeout, c->cfg->limits->send_timeout);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);

	c->next = env->conns;
	if (env->conns)
		env->conns->prev = c;
	env->conns = c;
	env->n_conns++;
	STATS_ADD(env->stats, connections, +1);
	return c;
}

static void request_free(struct conn *c)
{
	struct request *r = c->r;
	if (!r)
		return;
	if (r->action && r->action->free)
		r->action->free(r);
	gate_leave(c->env->gate, &r->wait);
	project_put(r->project); /* after the action: its exchange counted in flight there */
	free(r->head_copy);
	free(r);
	c->r = NULL;
}

static void conn_free(struct conn *c)
{
	struct conn_env *env = c->env;
	request_free(c);
	bufferevent_free(c->bev);
	if (c->prev)
		c->prev->next = c->next;
	else
		env->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	env->n_conns--;
	STATS_ADD(env->stats, connections, -1);
	free(c);
	env->closed(env->closed_arg);
}

void conn_abort(struct conn *c)
{
	conn_free(c);
}

void conn_shutdown_all(struct conn_env *env)
{
	struct conn *c = env->conns;
	while (c) {
		struct conn *next = c->next;
		c->close_after = true;
		if (c->state == CONN_READ_HEAD && !c->r &&
		    evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)
			conn_free(c);
		c = next;
	}
}

void conn_free_all(struct conn_env *env)
{
	while (env->conns)
		conn_free(env->conns);
}

/* ---- the access log ---- */

static struct log_slice slice(const char *p, size_t n)
{
	return (struct log_slice){ p, n };
}

static struct log_slice cstr(const char *p)
{
	return (struct log_slice){ p, p ? strlen(p) : 0 };
}

static void request_log(struct conn *c, const struct request *r)
{
	if (!log_access_enabled())
		return;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	char client[64];
	addr_format_host((const struct sockaddr *)&c->peer, client, sizeof(client));
	bool forwarded = r->upstream_start.tv_sec != 0;
	struct access_entry e = {
		.start = r->wall_start,
		.client = cstr(client),
		.method = cstr(r->method),
		.path = slice(r->path, r->path_len),
		.route = r->route ? cstr(r->route->name) : slice(NULL, 0),
		.project = r->project_len ? slice(r->project_name, r->project_len) : slice(NULL, 0),
		.upstream = forwarded ? cstr(r->upstream) : slice(NULL, 0),
		.status = r->status,
		.bytes_in = r->bytes_in,
		.bytes_out = r->bytes_out,
		.upstream_ms = forwarded ? duration_ms_between(&r->upstream_start,
							       r->upstream_end.tv_sec ? &r->upstream_end
										: &now)
					 : -1,
		.total_ms = duration_ms_between(&r->start, &now),
	};
	if (c->env->access_log)
		log_batch_add(c->env->access_log, &e);
	else
		log_access(&e);
}

/* ---- the end of a request ---- */

void conn_request_done(struct request *r)
{
	struct conn *c = r->conn;
	STATS_ADD(c->env->stats, bytes_in, r->bytes_in);
	STATS_ADD(c->env->stats, bytes_out, r->bytes_out);
	bool forwarded = r->upstream_start.tv_sec != 0;
	stats_answer(c->env->stats, r->route ? r->route->stats_id : 0,
		     forwarded ? (unsigned)r->upstream_id : STATS_LOCAL, r->status,
		     forwarded && r->upstream_end.tv_sec
			     ? (int64_t)(duration_ms_between(&r->upstream_start, &r->upstream_end) * 1e3)
			     : -1);
	request_log(c, r);
	request_free(c);
	if (c->close_after) {
		conn_set_state(c, CONN_CLOSING);
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
			conn_set_state(c, CONN_LINGER);
		/* else client_write_cb lingers once flushed */
		return;
	}
	conn_set_state(c, CONN_READ_HEAD);
	/* Pipelined requests waiting behind an answer that ended on its own
	 * (forwarded); a local answer returns to the loop below instead. */
	if (!c->in_process)
		conn_process_input(c);
}

void conn_consume_head(struct request *r)
{
	if (r->head_consumed)
		return;
	r->head_consumed = true;
	evbuffer_drain(bufferevent_get_input(r->conn->bev), r->head.head_len);
	r->bytes_in += r->head.head_len;
}

/* libevent's TLS bufferevent makes one TLS record (and one write) per
 * buffer chain, and a small answer is several chains (head, body, chunk
 * framing): join them so it leaves as one record. */
#define TLS_COALESCE_BYTES 16384  /* a TLS record's largest payload */

void conn_flush(struct conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t len = evbuffer_get_length(out);
	if (c->tls && len <= TLS_COALESCE_BYTES && evbuffer_get_contiguous_space(out) < len)
		evbuffer_pullup(out, -1);
	bev_write_soon(c->bev);
}

/* ---- answers cutover makes itself ---- */

void conn_respond(struct request *r, struct response *resp, bool close)
{
	struct conn *c = r->conn;
	bool keep = !close && !c->close_after && r->head.keep_alive;
	resp->keep_alive = keep;
	resp->head_only = r->head_method;
	resp->http10 = r->http10;
	if (!resp->mode)
		resp->mode = r->mode ? r->mode
				     : mode_name(state_mode_for(state_current(), NULL, 0));
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t before = evbuffer_get_length(out);
	response_write(out, resp);
	r->status = resp->status;
	r->bytes_out += evbuffer_get_length(out) - before;
	if (keep)
		conn_consume_head(r); /* the next request starts after it */
	else
		c->close_after = true;
	conn_request_done(r);
}

void conn_respond_error(struct request *r, int status, const char *why)
{
	char body[256];
	snprintf(body, sizeof(body), "%d %s: %s\n", status, response_reason(status), why ? why : "");
	struct response resp = { .status = status, .body = body, .body_len = strlen(body) };
	conn_respond(r, &resp, true);
}

/* ---- reading a request head ---- */

static struct request *request_new(struct conn *c)
{
	if (c->cfg != c->env->cfg) {
		/* A reload happened: each request runs on one config, the next one
		 * on the newest. */
		c->cfg = c->env->cfg;
		bev_set_budget(c->bev, c->cfg->limits->buffer_bytes);
	}
	/* Zeroed up to the head's header array: http1_parse_head() sets the
	 * count and each entry it fills, and nothing reads past the count. */
	struct request *r = malloc(sizeof(*r));
	if (!r)
		return NULL;
	memset(r, 0, offsetof(struct request, head.headers));
	r->conn = c;
	r->cfg = c->cfg;
	r->parser.kind = HTTP1_REQUEST; /* http1_parse_head() sets up the rest */
	clock_gettime(CLOCK_REALTIME, &r->wall_start);
	clock_gettime(CLOCK_MONOTONIC, &r->start);
	conn_timeouts(c, c->cfg->limits->header_timeout, c->cfg->limits->send_timeout);
	return r;
}

/* Reads a head from the input; a whole one goes to the dispatcher. */
static void conn_read_head(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t avail = evbuffer_get_length(in);
	if (avail == 0)
		return;
	if (!c->r && !(c->r = request_new(c))) {
		log_error("client: out of memory, closing the connection");
		struct response resp = {
			.status = 503,
			.mode = mode_name(state_mode_for(state_current(), NULL, 0)),
			.body = "503 Service Unavailable: out of memory\n",
		};
		resp.body_len = strlen(resp.body);
		response_write(bufferevent_get_output(c->bev), &resp);
		c->close_after = true;
		conn_set_state(c, CONN_CLOSING);
		return;
	}
	struct request *r = c->r;
	const struct limits_conf *lim = r->cfg->limits;
	size_t want = avail < lim->max_header_bytes + 1 ? avail : lim->max_header_bytes + 1;
	const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)want);
	switch (http1_parse_head(&r->parser, buf, want, lim->max_request_line, lim->max_header_bytes,
				 &r->head)) {
	case HTTP1_MORE: {
		if (c->input_eof) {
			conn_free(c); /* half-closed in the middle of a head: it never completes */
			return;
		}
		/* header_timeout bounds the whole head, not the gap between bytes. */
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		double left = lim->header_timeout - duration_ms_between(&r->start, &now) / 1e3;
		conn_timeouts(c, left > 0.001 ? left : 0.001, lim->send_timeout);
		return;
	}
	case HTTP1_ERROR:
		r->bytes_in = want;
		r->head_consumed = true; /* the connection closes: nothing more is read */
		log_debug("client %p: %d %s", (void *)c, r->parser.error_status,
			  r->parser.error_reason);
		conn_respond_error(r, r->parser.error_status, r->parser.error_reason);
		return;
	case HTTP1_DONE:
		break;
	}
	STATS_ADD(c->env->stats, requests, 1);
	r->head_at = buf;
	/* The head may be read; further bytes are the body or the next request. */
	conn_timeouts(c, lim->body_timeout, lim->send_timeout);
	c->env->dispatch(r);
}

/* Parses and runs as many buffered requests as can be answered now. */
static void conn_process_input(struct conn *c)
{
	struct conn_env *env = c->env;
	c->in_process = true;
	while (c->state == CONN_READ_HEAD) {
		if (evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)
			break;
		/* Don't run ahead of a client that isn't reading its answers. */
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) >= c->cfg->limits->buffer_bytes)
			break;
		size_t n_before = env->n_conns;
		conn_read_head(c);
		if (env->n_conns != n_before)
			return; /* only c can have been freed in between */
		if (c->state == CONN_READ_HEAD && c->r)
			break; /* partial head: wait for more */
	}
	c->in_process = false;
}

/* ---- libevent callbacks ---- */

static void client_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	switch (c->state) {
	case CONN_READ_HEAD:
		conn_process_input(c);
		break;
	case CONN_PARKED:
	case CONN_QUEUED:
		break; /* the bytes wait (bounded by the read budget) */
	case CONN_BUFFER_BODY:
	case CONN_CONNECT:
	case CONN_SEND_BODY:
	case CONN_AWAIT_RESPONSE:
	case CONN_RELAY_RESPONSE:
		c->r->action->readable(c->r);
		break;
	case CONN_CLOSING:
	case CONN_LINGER:
		evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
		break;
	}
}

static void client_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	switch (c->state) {
	case CONN_CLOSING:
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			conn_set_state(c, CONN_LINGER);
		break;
	case CONN_CONNECT:
	case CONN_SEND_BODY:
	case CONN_AWAIT_RESPONSE:
	case CONN_RELAY_RESPONSE:
		c->r->action->writable(c->r);
		break;
	case CONN_READ_HEAD:
		conn_process_input(c);
		break;
	case CONN_PARKED:
	case CONN_QUEUED:
	case CONN_BUFFER_BODY:
	case CONN_LINGER:
		break;
	}
}

/* The client shut its sending side (shutdown(SHUT_WR)) after what it wants
 * answered, as nginx allows: the request in hand goes on and is answered,
 * then the connection closes. False: nothing is left to answer. The
 * connection may be gone when this returns true. */
static bool client_half_closed(struct conn *c)
{
	conn_input_ended(c);
	bool input = evbuffer_get_length(bufferevent_get_input(c->bev)) != 0;
	bool output = evbuffer_get_length(bufferevent_get_output(c->bev)) != 0;
	switch (c->state) {
	case CONN_READ_HEAD:
		if (c->r)
			return false; /* a partial head never completes */
		if (input)
			return true;  /* pipelined, waiting for room in the output */
		if (output) {
			conn_set_state(c, CONN_CLOSING); /* the last answer is still going out */
			return true;
		}
		return false;
	case CONN_BUFFER_BODY:
	case CONN_CONNECT:
	case CONN_SEND_BODY:
		c->r->action->readable(c->r); /* the action sees the end of the body */
		return true;
	case CONN_PARKED:
	case CONN_QUEUED:
	case CONN_AWAIT_RESPONSE:
	case CONN_RELAY_RESPONSE:
		return true;
	case CONN_CLOSING:
	case CONN_LINGER:
		return false;
	}
	return false;
}

static void client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	struct conn *c = arg;
	struct request *r = c->r;
	if (what & BEV_EVENT_CONNECTED) {
		c->handshaken = true; /* a TLS client finished its handshake */
		return;
	}
	if (c->tls && !c->handshaken)
		STATS_ADD(c->env->stats, tls_handshake_failures, 1);
	if (c->state == CONN_LINGER || c->state == CONN_CLOSING) {
		conn_free(c);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if ((what & BEV_EVENT_READING) && r && c->state == CONN_READ_HEAD) {
			r->head_consumed = true;
			conn_respond_error(r, 408, "timed out waiting for the request");
			return;
		}
		if ((what & BEV_EVENT_READING) && r && r->status == 0 && reads_body(c->state)) {
			/* The action lets go of its upstream before the answer. */
			if (r->action && r->action->free)
				r->action->free(r);
			r->action = NULL;
			conn_respond_error(r, 408, "timed out waiting for the request body");
			return;
		}
		conn_free(c);
		return;
	}
	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && client_half_closed(c))
		return;
	/* Gone, or broken: whatever was in flight upstream is abandoned. */
	conn_free(c);
}

int conn_keep_head(struct request *r)
{
	if (r->head_consumed)
		return 0;
	char *copy = malloc(r->head.head_len);
	if (!copy)
		return -1;
	conn_head_refresh(r);
	memcpy(copy, r->head_at, r->head.head_len);
	http1_head_rebase(&r->head, r->head_at, copy);
	r->head_copy = copy;
	conn_consume_head(r);
	return 0;
}

void conn_head_refresh(struct request *r)
{
	if (r->head_consumed)
		return;
	/* The slices point into the pulled-up start of the input, which a read
	 * behind it may have moved (libevent realigns a chain to make room). */
	struct evbuffer *in = bufferevent_get_input(r->conn->bev);
	const char *base = (const char *)evbuffer_pullup(in, (ev_ssize_t)r->head.head_len);
	if (base != r->head_at) {
		http1_head_rebase(&r->head, r->head_at, base);
		r->head_at = base;
	}
}
