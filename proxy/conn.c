/* conn: a client connection. One request at a time: read the head, route
 * it, pick the action from the scope's mode, then either answer locally or
 * forward to an upstream and stream both bodies with backpressure. Bytes of
 * pipelined requests wait in the input buffer until the response before
 * them is done, so answers always go out in order. */
#include "conn.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>

#include "conf.h"
#include "forward.h"
#include "http1.h"
#include "listener.h"
#include "log.h"
#include "maintenance.h"
#include "project.h"
#include "response.h"
#include "route.h"
#include "state.h"
#include "tls.h"
#include "upstream.h"
#include "worker.h"

#define HEALTH_PATH "/.well-known/cutover/health"
#define MAX_RESPONSE_HEAD (64 * 1024)

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
	};
}

int limits_conf_parse(struct conf_reader *r, const config_setting_t *s, struct config *cfg)
{
	static const char *const keys[] = { "max_connections", "max_request_line",
					    "max_header_bytes", "max_body", "header_timeout",
					    "body_timeout", "keepalive_timeout", "send_timeout",
					    "drain_timeout", "buffer_bytes", "max_parked", NULL };
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
	if ((rc = conf_get_size(r, s, "buffer_bytes", 4096, 64 << 20, &sz)) < 0)
		status = -1;
	else if (rc)
		l->buffer_bytes = sz;
	if (conf_get_size(r, s, "max_body", 0, UINT64_MAX, &l->max_body) < 0 ||
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

/* One request/response exchange; allocated when a request starts, freed
 * when it ends, so an idle keep-alive connection holds none of this. */
struct exchange {
	struct http1_head req;
	struct http1_head resp;
	struct http1_parser resp_parser;
	const struct route *route;
	struct project *project_entry;   /* registry entry of the request's scope */
	struct worker *worker;
	enum upstream_id upstream;
	struct upstream_conn *uc;        /* non-NULL = counted in flight */
	const char *mode;

	uint64_t req_remaining;      /* Content-Length body bytes still to forward */
	uint64_t resp_remaining;
	uint64_t body_count;         /* chunked request body bytes, for max_body */
	uint64_t max_body;
	enum http1_framing resp_framing;
	bool req_done;               /* whole request sent upstream */
	bool resp_head_done;
	bool resp_chunked_out;       /* re-encode the response body as chunked */
	bool upstream_eof;
	bool client_keep_alive;
	bool http10;
	bool head_method;
	bool retried;

	/* for the access log: copies, the head's memory is gone by then */
	char method[16];
	char path[512];
	size_t path_len;
	char project[128];
	size_t project_len;
	int status;
	uint64_t bytes_in, bytes_out;
	struct timespec wall_start;
	struct timespec start, upstream_start, upstream_end;
};

struct conn {
	struct worker *w;
	const struct config *cfg;
	struct conn *prev, *next;
	struct bufferevent *bev;
	enum conn_state state;
	struct sockaddr_storage peer;
	socklen_t peer_len;
	struct http1_parser req_parser;
	struct exchange *x;
	struct evbuffer *sent_head;  /* copy of the head sent upstream, for a retry */
	struct conn *park_prev, *park_next;  /* worker's parked list (hold) */
	struct event *park_timer;
	bool close_after;            /* close once the current response is out */
	bool admitted;               /* leaving the admission queue: may pass it */
	bool stopping;
	bool tls;                    /* came through a TLS listener */
};

static void client_read_cb(struct bufferevent *bev, void *arg);
static void client_write_cb(struct bufferevent *bev, void *arg);
static void client_event_cb(struct bufferevent *bev, short what, void *arg);
static void upstream_read_cb(struct bufferevent *bev, void *arg);
static void upstream_write_cb(struct bufferevent *bev, void *arg);
static void upstream_event_cb(struct bufferevent *bev, short what, void *arg);
static void conn_process_input(struct conn *c);
static void exchange_finish(struct conn *c);
static void conn_linger(struct conn *c);
static void conn_unpark(struct conn *c);

static struct timeval tv_of(double seconds)
{
	struct timeval tv = { .tv_sec = (time_t)seconds };
	tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
	return tv;
}

static double ms_between(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) * 1e3 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

/* Both sides of an exchange get the same budget: reading stops once CAP
 * bytes wait in the input, the peer is refilled once its output fell to
 * half, and a write may move up to CAP bytes (libevent's default is 16 KiB).
 * Reads stay capped at 4 KiB by libevent itself: see bev_read_more(). */
static void bev_set_budget(struct bufferevent *bev, size_t cap)
{
	bufferevent_setwatermark(bev, EV_READ, 0, cap);
	bufferevent_setwatermark(bev, EV_WRITE, cap / 2, 0);
	bufferevent_set_max_single_read(bev, cap);
	bufferevent_set_max_single_write(bev, cap);
}

/* libevent 2.1 reads at most 4 KiB per callback (EVBUFFER_MAX_READ), which
 * makes a syscall and an epoll round per 4 KiB of body. While a body
 * streams, read on directly, filling the input buffer up to WANT bytes (the
 * read budget). EOF and errors are left for libevent to see and report on
 * its next read. Call it only right after moving bytes to the other side:
 * that move guarantees a write callback, which consumes what was read here
 * (the socket itself may never signal again). Plain sockets only: a TLS
 * bufferevent must do its own reads. */
static void bev_read_more(struct bufferevent *bev, size_t want)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t have = evbuffer_get_length(in);
	int fd = bufferevent_getfd(bev);
	if (have >= want || fd < 0 || bufferevent_openssl_get_ssl(bev))
		return;
	/* libevent freezes the end of an input buffer against users; it
	 * unfreezes it the same way around its own reads. */
	evbuffer_unfreeze(in, 0);
	struct evbuffer_iovec v[2];
	int n = evbuffer_reserve_space(in, (ev_ssize_t)(want - have), v, 2);
	if (n <= 0) {
		evbuffer_freeze(in, 0);
		return;
	}
	struct iovec iov[2];
	for (int i = 0; i < n; i++) {
		iov[i].iov_base = v[i].iov_base;
		iov[i].iov_len = v[i].iov_len;
	}
	ssize_t got = readv(fd, iov, n);
	if (got <= 0) {
		evbuffer_commit_space(in, v, 0);
		evbuffer_freeze(in, 0);
		return;
	}
	size_t left = (size_t)got;
	int used = 0;
	for (; used < n && left; used++) {
		if (v[used].iov_len > left)
			v[used].iov_len = left;
		left -= v[used].iov_len;
	}
	evbuffer_commit_space(in, v, used);
	evbuffer_freeze(in, 0);
}

/* libevent arms a bufferevent's write event when output is added and
 * disarms it once the output drained: two epoll_ctl per answer. Running
 * the write callback in this loop round instead usually drains the output
 * at once, and the worker's epoll changelist then cancels the arm/disarm
 * pair before it reaches the kernel; a full socket keeps the event armed.
 * (ev_write is public in bufferevent_struct.h, for the TLS bufferevent
 * too.) */
static void bev_write_soon(struct bufferevent *bev)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)))
		event_active(&bev->ev_write, EV_WRITE, 1);
}

static void set_client_timeouts(struct conn *c, double read, double write)
{
	struct timeval r = tv_of(read), w = tv_of(write);
	bufferevent_set_timeouts(c->bev, read > 0 ? &r : NULL, write > 0 ? &w : NULL);
}

struct conn *conn_new(struct worker *w, int fd, const struct sockaddr *peer, socklen_t len,
		      const struct listen_conf *lc)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->w = w;
	c->cfg = w->cfg;
	memcpy(&c->peer, peer, len);
	c->peer_len = len;
	if (lc->tls) {
		/* The handshake runs inside the bufferevent; header_timeout bounds it
		 * like the head that follows. */
		SSL *ssl = tls_server_ssl(lc->tls);
		c->bev = ssl ? bufferevent_openssl_socket_new(w->base, fd, ssl,
							     BUFFEREVENT_SSL_ACCEPTING,
							     BEV_OPT_CLOSE_ON_FREE)
			     : NULL;
		if (!c->bev && ssl)
			SSL_free(ssl);
		c->tls = true;
	} else {
		c->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
	}
	if (!c->bev) {
		free(c);
		return NULL;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	http1_parser_init(&c->req_parser, HTTP1_REQUEST);
	c->state = CONN_READ_HEAD;
	bufferevent_setcb(c->bev, client_read_cb, client_write_cb, client_event_cb, c);
	bev_set_budget(c->bev, c->cfg->limits->buffer_bytes);
	set_client_timeouts(c, c->cfg->limits->header_timeout, c->cfg->limits->send_timeout);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);

	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->n_conns++;
	return c;
}

/* Ends the exchange's use of its upstream connection (back to the pool
 * when REUSABLE); from here on the request is no longer in flight there. */
static void exchange_release_upstream(struct exchange *x, bool reusable)
{
	if (!x->uc)
		return;
	upstream_conn_put(x->uc, reusable);
	x->uc = NULL;
	project_in_flight_add(x->project_entry, x->upstream, -1);
	struct worker *w = x->worker;
	__atomic_sub_fetch(&w->active[x->upstream], 1, __ATOMIC_RELAXED);
	if (w->queue[x->upstream])
		event_active(w->admit_ev, 0, 0);
}

static void exchange_free(struct conn *c)
{
	struct exchange *x = c->x;
	if (!x)
		return;
	exchange_release_upstream(x, false);
	free(x);
	c->x = NULL;
}

static void conn_free(struct conn *c)
{
	struct worker *w = c->w;
	conn_unpark(c);
	exchange_free(c);
	bufferevent_free(c->bev);
	if (c->sent_head)
		evbuffer_free(c->sent_head);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->n_conns--;
	free(c);
	worker_conn_closed(w);
}

void conn_shutdown_all(struct worker *w)
{
	struct conn *c = w->conns;
	while (c) {
		struct conn *next = c->next;
		c->stopping = true;
		c->close_after = true;
		if (c->state == CONN_READ_HEAD && !c->x &&
		    evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)
			conn_free(c);
		c = next;
	}
}

void conn_free_all(struct worker *w)
{
	while (w->conns)
		conn_free(w->conns);
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

static void exchange_log(struct conn *c)
{
	struct exchange *x = c->x;
	if (!x || !log_access_enabled())
		return;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	char client[64];
	addr_format_host((struct sockaddr *)&c->peer, client, sizeof(client));
	struct access_entry e = {
		.start = x->wall_start,
		.client = cstr(client),
		.method = cstr(x->method),
		.path = slice(x->path, x->path_len),
		.route = x->route ? cstr(x->route->name) : slice(NULL, 0),
		.project = x->project_len ? slice(x->project, x->project_len) : slice(NULL, 0),
		.upstream = x->upstream_start.tv_sec ? cstr(c->cfg->upstream[x->upstream].name)
						     : slice(NULL, 0),
		.status = x->status,
		.bytes_in = x->bytes_in,
		.bytes_out = x->bytes_out,
		.upstream_ms = x->upstream_start.tv_sec
			? ms_between(&x->upstream_start, x->upstream_end.tv_sec ? &x->upstream_end : &now)
			: -1,
		.total_ms = ms_between(&x->start, &now),
	};
	log_access(&e);
}

/* ---- answers cutover makes itself ---- */

/* Sends a complete response and ends the exchange. CLOSE: the connection
 * closes after it (malformed input, unread body). */
static void conn_respond(struct conn *c, int status, const char *content_type,
			 const char *body, const char *extra_headers, bool close)
{
	struct exchange *x = c->x;
	bool http10 = x && x->http10;
	bool keep = !close && !c->close_after && x && x->req.keep_alive;
	const struct state_snapshot *snap = state_current();
	struct response r = {
		.status = status,
		.mode = x && x->mode ? x->mode : mode_name(state_mode_for(snap, NULL, 0)),
		.content_type = content_type,
		.body = body,
		.body_len = body ? strlen(body) : 0,
		.extra_headers = extra_headers,
		.keep_alive = keep,
		.head_only = x && x->head_method,
		.http10 = http10,
	};
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t before = evbuffer_get_length(out);
	response_write(out, &r);
	if (x) {
		x->status = status;
		x->bytes_out += evbuffer_get_length(out) - before;
	}
	if (!keep)
		c->close_after = true;
	exchange_finish(c);
}

static void conn_respond_error(struct conn *c, int status, const char *reason)
{
	char body[256];
	snprintf(body, sizeof(body), "%d %s: %s\n", status, response_reason(status),
		 reason ? reason : "");
	conn_respond(c, status, NULL, body, NULL, true);
}

/* ---- request side ---- */

static void copy_for_log(struct exchange *x, const struct route_project *proj)
{
	size_t n = x->req.method_len < sizeof(x->method) - 1 ? x->req.method_len
							     : sizeof(x->method) - 1;
	memcpy(x->method, x->req.method, n);
	x->method[n] = '\0';
	x->path_len = x->req.target_len < sizeof(x->path) ? x->req.target_len : sizeof(x->path);
	memcpy(x->path, x->req.target, x->path_len);
	x->project_len = proj->len < sizeof(x->project) ? proj->len : sizeof(x->project);
	memcpy(x->project, proj->ptr, x->project_len);
}

/* The path part of the target, for routing: no query, origin-form. */
static void target_path(const struct http1_head *h, const char **p, size_t *len)
{
	const char *t;
	size_t n;
	http1_origin_form(h, &t, &n);
	const char *q = memchr(t, '?', n);
	if (q)
		n = (size_t)(q - t);
	const char *hash = memchr(t, '#', n);
	if (hash)
		n = (size_t)(hash - t);
	*p = n ? t : "/";
	*len = n ? n : 1;
}

static void answer_health(struct conn *c)
{
	char body[96];
	snprintf(body, sizeof(body), "{\"status\":\"ok\",\"mode\":\"%s\"}\n", c->x->mode);
	conn_respond(c, 200, "application/json", body, NULL, false);
}

static void forward_start(struct conn *c, enum upstream_id id);

/* The answer of a scope in maintenance (or a hold past its limits). The
 * head is consumed; a request body is not read, so the connection closes
 * after the answer (lingering, so the device still gets it). */
static void answer_maintenance(struct conn *c, const struct scope_state *scope)
{
	struct exchange *x = c->x;
	const struct http1_header *accept = http1_find(&x->req, "accept");
	bool keep = !c->close_after && x->req.keep_alive && x->req.framing == HTTP1_BODY_NONE;
	struct maintenance_request mr = {
		.route = x->route,
		.head = x->head_method,
		.method = x->req.method,
		.method_len = x->req.method_len,
		.project = x->project_len ? x->project : NULL,
		.project_len = x->project_len,
		.accept = accept ? accept->value : NULL,
		.accept_len = accept ? accept->value_len : 0,
		.until = scope->until,
		.now = time(NULL),
		.mode = x->mode,
		.keep_alive = keep,
		.http10 = x->http10,
	};
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t before = evbuffer_get_length(out);
	x->status = maintenance_write(out, c->cfg->maintenance, &mr);
	if (x->status < 0) {
		conn_free(c);
		return;
	}
	x->bytes_out += evbuffer_get_length(out) - before;
	evbuffer_drain(bufferevent_get_input(c->bev), x->req.head_len);
	x->bytes_in += x->req.head_len;
	if (!keep)
		c->close_after = true;
	exchange_finish(c);
}

/* The list a waiting connection is on: the hold's, or its upstream's queue. */
static struct conn **wait_list(struct conn *c, struct conn ***tail, size_t **count)
{
	struct worker *w = c->w;
	if (c->state == CONN_PARKED) {
		*tail = &w->parked_tail;
		*count = &w->n_parked;
		return &w->parked;
	}
	enum upstream_id id = c->x->upstream;
	*tail = &w->queue_tail[id];
	*count = &w->n_queued[id];
	return &w->queue[id];
}

static void wait_begin(struct conn *c, enum conn_state state, double seconds,
		       event_callback_fn on_timeout)
{
	c->state = state;
	struct conn **tail;
	size_t *count;
	struct conn **head = wait_list(c, &tail, &count);
	c->park_prev = *tail;
	c->park_next = NULL;
	if (*tail)
		(*tail)->park_next = c;
	else
		*head = c;
	*tail = c;
	__atomic_add_fetch(count, 1, __ATOMIC_RELAXED);
	c->park_timer = evtimer_new(c->w->base, on_timeout, c);
	struct timeval tv = tv_of(seconds);
	evtimer_add(c->park_timer, &tv);
	/* The client may wait longer than the head timeout allows. */
	set_client_timeouts(c, 0, c->cfg->limits->send_timeout);
}

static void conn_unpark(struct conn *c)
{
	if (c->state != CONN_PARKED && c->state != CONN_QUEUED)
		return;
	struct conn **tail;
	size_t *count;
	struct conn **head = wait_list(c, &tail, &count);
	if (c->park_prev)
		c->park_prev->park_next = c->park_next;
	else
		*head = c->park_next;
	if (c->park_next)
		c->park_next->park_prev = c->park_prev;
	else
		*tail = c->park_prev;
	c->park_prev = c->park_next = NULL;
	__atomic_sub_fetch(count, 1, __ATOMIC_RELAXED);
	event_free(c->park_timer);
	c->park_timer = NULL;
	c->state = CONN_READ_HEAD;
}

/* The hold is over for this request: it goes on under the mode in force
 * now, its head parsed again (the buffer under it may have moved). */
static void conn_release(struct conn *c)
{
	conn_unpark(c);
	conn_process_input(c);
}

/* The hold outlasted this request's patience: its head is parsed again
 * (the buffer under it may have moved) and dispatched; a scope still on
 * hold past its deadline answers with the maintenance response. */
static void park_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_release(arg);
}

/* Parks the request until the hold ends, its deadline passes (then the
 * maintenance answer) or the worker's cap on parked requests is reached. */
static void conn_park(struct conn *c, const struct scope_state *scope)
{
	struct worker *w = c->w;
	time_t now = time(NULL);
	if (scope->until <= now || w->n_parked >= c->cfg->limits->max_parked) {
		answer_maintenance(c, scope);
		return;
	}
	wait_begin(c, CONN_PARKED, (double)(scope->until - now), park_timeout_cb);
}

static void answer_busy(struct conn *c, const struct upstream_conf *u)
{
	char extra[64];
	snprintf(extra, sizeof(extra), "Retry-After: %d\r\n", (int)u->queue_timeout + 1);
	evbuffer_drain(bufferevent_get_input(c->bev), c->x->req.head_len);
	c->x->bytes_in += c->x->req.head_len;
	conn_respond(c, 503, NULL, "503 Service Unavailable: the upstream is busy, retry later\n",
		     extra, c->x->req.framing != HTTP1_BODY_NONE);
}

static void queue_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct conn *c = arg;
	conn_unpark(c);
	answer_busy(c, &c->cfg->upstream[c->x->upstream]);
}

/* Slots of UPSTREAM on this worker: max_active shared out between workers. */
static unsigned admission_limit(const struct config *cfg, enum upstream_id id)
{
	unsigned n = (unsigned)cfg->workers, max = cfg->upstream[id].max_active;
	return max ? (max + n - 1) / n : UINT32_MAX;
}

/* max_active: forward now if the upstream has a free slot on this worker,
 * else wait in its bounded FIFO (queue_timeout, then 503 + Retry-After).
 * A request leaving the queue reads the mode again. */
static void forward_or_queue(struct conn *c, enum upstream_id id)
{
	struct worker *w = c->w;
	const struct upstream_conf *u = &c->cfg->upstream[id];
	if (w->active[id] < admission_limit(c->cfg, id) && (!w->queue[id] || c->admitted)) {
		forward_start(c, id);
		return;
	}
	unsigned n = (unsigned)c->cfg->workers;
	if (w->n_queued[id] >= (u->queue + n - 1) / n) {
		answer_busy(c, u);
		return;
	}
	c->x->upstream = id;
	wait_begin(c, CONN_QUEUED, u->queue_timeout, queue_timeout_cb);
}

void conn_admit_queued(struct worker *w)
{
	for (int id = 0; id < UPSTREAM_COUNT; id++) {
		unsigned limit = admission_limit(w->cfg, (enum upstream_id)id);
		while (w->queue[id] && w->active[id] < limit) {
			struct conn *c = w->queue[id];
			c->admitted = true;
			conn_release(c);
			c->admitted = false;
			if (w->queue[id] == c)
				break; /* defensive: no progress */
		}
	}
}

void conn_state_changed(struct worker *w)
{
	const struct state_snapshot *snap = state_current();
	/* In arrival order; a released request may park again at the tail, so
	 * stop at the current tail. */
	struct conn *c = w->parked, *last = w->parked_tail;
	while (c) {
		struct conn *next = c == last ? NULL : c->park_next;
		if (state_mode_for(snap, c->x->project, c->x->project_len) != MODE_HOLD)
			conn_release(c);
		c = next;
	}
}

static void conn_dispatch(struct conn *c)
{
	struct exchange *x = c->x;
	const struct http1_head *h = &x->req;
	const char *path;
	size_t path_len;
	target_path(h, &path, &path_len);

	struct route_project proj = { path, 0 };
	x->http10 = h->major == 1 && h->minor == 0;
	x->head_method = http1_token_eq(h->method, h->method_len, "HEAD");
	const struct state_snapshot *snap = state_current();

	if (path_len == sizeof(HEALTH_PATH) - 1 && memcmp(path, HEALTH_PATH, path_len) == 0 &&
	    (x->head_method || http1_token_eq(h->method, h->method_len, "GET"))) {
		copy_for_log(x, &proj);
		x->mode = mode_name(state_mode_for(snap, NULL, 0));
		evbuffer_drain(bufferevent_get_input(c->bev), h->head_len);
		x->bytes_in += h->head_len;
		if (h->framing != HTTP1_BODY_NONE)
			c->close_after = true;
		answer_health(c);
		return;
	}
	x->route = route_match(c->cfg->routes, h->method, h->method_len, path, path_len, &proj);
	copy_for_log(x, &proj);
	x->project_entry = project_get(x->project, x->project_len);
	const struct scope_state *scope = state_scope_for(snap, x->project, x->project_len);
	enum mode mode = scope->mode;
	x->mode = mode_name(mode);
	if (http1_token_eq(h->method, h->method_len, "CONNECT")) {
		conn_respond_error(c, 405, "CONNECT is not supported");
		return;
	}
	x->max_body = x->route && x->route->max_body ? x->route->max_body
						       : c->cfg->limits->max_body;
	if (x->max_body && h->framing == HTTP1_BODY_LENGTH && h->content_length > x->max_body) {
		conn_respond_error(c, 413, "request body larger than the route's max_body");
		return;
	}
	switch (mode) {
	case MODE_OLD:
		forward_or_queue(c, UPSTREAM_OLD);
		return;
	case MODE_NEW:
		forward_or_queue(c, UPSTREAM_NEW);
		return;
	case MODE_MAINTENANCE:
	case MODE_COUNT:
		answer_maintenance(c, scope);
		return;
	case MODE_HOLD:
		conn_park(c, scope);
		return;
	}
}

static void conn_read_head(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t avail = evbuffer_get_length(in);
	if (avail == 0)
		return;
	const struct limits_conf *lim = c->cfg->limits;
	if (!c->x) {
		if (c->cfg != c->w->cfg) {
			/* A reload happened: each request runs on one config, the
			 * next one on the newest. */
			c->cfg = c->w->cfg;
			lim = c->cfg->limits;
			bev_set_budget(c->bev, lim->buffer_bytes);
		}
		c->x = calloc(1, sizeof(*c->x));
		if (!c->x) {
			c->close_after = true;
			conn_respond_error(c, 503, "out of memory");
			return;
		}
		clock_gettime(CLOCK_REALTIME, &c->x->wall_start);
		clock_gettime(CLOCK_MONOTONIC, &c->x->start);
		set_client_timeouts(c, lim->header_timeout, lim->send_timeout);
	}
	size_t want = avail < lim->max_header_bytes + 1 ? avail : lim->max_header_bytes + 1;
	const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)want);
	switch (http1_parse_head(&c->req_parser, buf, want, lim->max_request_line,
				 lim->max_header_bytes, &c->x->req)) {
	case HTTP1_MORE: {
		/* header_timeout bounds the whole head, not the gap between bytes. */
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		double left = lim->header_timeout - ms_between(&c->x->start, &now) / 1e3;
		set_client_timeouts(c, left > 0.001 ? left : 0.001, lim->send_timeout);
		return;
	}
	case HTTP1_ERROR:
		c->x->bytes_in = want;
		log_debug("client %p: %d %s", (void *)c, c->req_parser.error_status,
			  c->req_parser.error_reason);
		conn_respond_error(c, c->req_parser.error_status, c->req_parser.error_reason);
		return;
	case HTTP1_DONE:
		break;
	}
	/* The head may be read; further bytes are the body or the next request. */
	set_client_timeouts(c, lim->body_timeout, lim->send_timeout);
	conn_dispatch(c);
}

static void emit_chunk(void *arg, const char *at, size_t len)
{
	struct evbuffer *out = arg;
	evbuffer_add_printf(out, "%zx\r\n", len);
	evbuffer_add(out, at, len);
	evbuffer_add(out, "\r\n", 2);
}

static void emit_raw(void *arg, const char *at, size_t len)
{
	evbuffer_add(arg, at, len);
}

/* Feeds up to BUDGET bytes of IN through the chunked decoder, handing the
 * data to EMIT. Returns bytes consumed, -1 on malformed framing. */
static long chunked_pump(struct http1_parser *p, struct evbuffer *in, size_t budget, bool *done,
			 void (*emit)(void *, const char *, size_t), void *arg)
{
	struct evbuffer_iovec vec[8];
	size_t total = 0;
	*done = false;
	int n = evbuffer_peek(in, (ev_ssize_t)budget, NULL, vec, 8);
	for (int i = 0; i < n && i < 8 && total < budget; i++) {
		size_t len = vec[i].iov_len;
		if (len > budget - total)
			len = budget - total;
		long used = http1_chunked_feed(p, vec[i].iov_base, len, done, emit, arg);
		if (used < 0)
			return -1;
		total += (size_t)used;
		if (*done)
			break;
	}
	evbuffer_drain(in, total);
	return (long)total;
}

static void request_sent(struct conn *c)
{
	struct exchange *x = c->x;
	x->req_done = true;
	/* Now the upstream owes us an answer: its read timeout starts. */
	const struct upstream_conf *u = &c->cfg->upstream[x->upstream];
	struct timeval rt = tv_of(u->read_timeout), st = tv_of(u->send_timeout);
	bufferevent_set_timeouts(x->uc->bev, &rt, &st);
	set_client_timeouts(c, 0, c->cfg->limits->send_timeout);
}

/* Moves request body bytes from the client to the upstream, as much as the
 * upstream's output budget allows. */
static void pump_request_body(struct conn *c)
{
	struct exchange *x = c->x;
	if (!x || x->req_done || !x->uc || !x->uc->bev)
		return;
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct evbuffer *out = bufferevent_get_output(x->uc->bev);
	size_t cap = c->cfg->limits->buffer_bytes;
	size_t queued = evbuffer_get_length(out);
	size_t budget = queued < cap ? cap - queued : 0;
	switch (x->req.framing) {
	case HTTP1_BODY_NONE:
	case HTTP1_BODY_EOF:
		request_sent(c);
		return;
	case HTTP1_BODY_LENGTH: {
		size_t n = evbuffer_get_length(in);
		if (n > budget)
			n = budget;
		if (n > x->req_remaining)
			n = (size_t)x->req_remaining;
		if (n) {
			evbuffer_remove_buffer(in, out, n);
			bev_write_soon(x->uc->bev);
			x->req_remaining -= n;
			x->bytes_in += n;
			if (x->req_remaining > evbuffer_get_length(in))
				bev_read_more(c->bev, cap); /* refill in one syscall */
		}
		if (x->req_remaining == 0)
			request_sent(c);
		return;
	}
	case HTTP1_BODY_CHUNKED: {
		bool done;
		size_t before = evbuffer_get_length(out);
		long used = chunked_pump(&c->req_parser, in, budget, &done, emit_chunk, out);
		if (used < 0) {
			/* The upstream got part of a body: that connection is spoilt. */
			exchange_release_upstream(x, false);
			if (!x->resp_head_done)
				conn_respond_error(c, 400, c->req_parser.error_reason);
			else
				conn_free(c);
			return;
		}
		x->bytes_in += (uint64_t)used;
		x->body_count += evbuffer_get_length(out) - before;
		if (x->max_body && x->body_count > x->max_body) {
			exchange_release_upstream(x, false);
			conn_respond_error(c, 413, "request body larger than the route's max_body");
			return;
		}
		if (done) {
			evbuffer_add(out, "0\r\n\r\n", 5);
			request_sent(c);
		}
		return;
	}
	}
}

static void exchange_bind_upstream(struct conn *c)
{
	struct bufferevent *ub = c->x->uc->bev;
	bufferevent_setcb(ub, upstream_read_cb, upstream_write_cb, upstream_event_cb, c);
	bev_set_budget(ub, c->cfg->limits->buffer_bytes);
	bufferevent_enable(ub, EV_READ | EV_WRITE);
}

static void upstream_failed(struct conn *c, int status, const char *why);

/* The upstream connection is usable: the head goes out, then the body. */
static void forward_connected(struct conn *c)
{
	struct exchange *x = c->x;
	const struct upstream_conf *u = &c->cfg->upstream[x->upstream];
	exchange_bind_upstream(c);
	struct timeval st = tv_of(u->send_timeout);
	bufferevent_set_timeouts(x->uc->bev, NULL, &st);
	evbuffer_add(bufferevent_get_output(x->uc->bev), evbuffer_pullup(c->sent_head, -1),
		     evbuffer_get_length(c->sent_head));
	bev_write_soon(x->uc->bev);
	c->state = CONN_FORWARD;
	pump_request_body(c);
}

/* A pooled connection is usable now; a new one calls forward_ready(). */
static void forward_when_ready(struct conn *c)
{
	if (c->x->uc->bev)
		forward_connected(c);
	else
		c->state = CONN_CONNECT; /* the body waits in the client's input */
}

static void forward_ready(void *arg, struct upstream_conn *uc, const char *error)
{
	(void)uc;
	struct conn *c = arg;
	if (error) {
		upstream_failed(c, 502, error);
		return;
	}
	forward_connected(c);
}

static void forward_start(struct conn *c, enum upstream_id id)
{
	struct exchange *x = c->x;
	struct upstream_pool *pool = c->w->pools[id];
	const char *why = NULL;
	x->upstream = id;
	x->uc = upstream_conn_get(pool, forward_ready, c, &why);
	if (!x->uc) {
		log_warn("upstream %s: %s", c->cfg->upstream[id].name, why);
		conn_respond_error(c, 502, why);
		return;
	}
	project_in_flight_add(x->project_entry, id, +1);
	x->worker = c->w;
	__atomic_add_fetch(&c->w->active[id], 1, __ATOMIC_RELAXED);
	clock_gettime(CLOCK_MONOTONIC, &x->upstream_start);

	/* The head is kept until the upstream connection is ready, and after
	 * that for one retry if a reused connection turns out dead. */
	if (!c->sent_head)
		c->sent_head = evbuffer_new();
	evbuffer_drain(c->sent_head, evbuffer_get_length(c->sent_head));
	forward_request_head(c->sent_head, &x->req, &c->cfg->upstream[id], c->cfg->forward,
			     (struct sockaddr *)&c->peer, c->tls);

	struct evbuffer *in = bufferevent_get_input(c->bev);
	evbuffer_drain(in, x->req.head_len);
	x->bytes_in += x->req.head_len;
	x->req_remaining = x->req.framing == HTTP1_BODY_LENGTH ? x->req.content_length : 0;

	http1_parser_init(&x->resp_parser, HTTP1_RESPONSE);
	http1_expect_no_body(&x->resp_parser, x->head_method);

	if (x->req.expect_continue && x->req.framing != HTTP1_BODY_NONE && !x->http10)
		evbuffer_add(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n", 25);
	forward_when_ready(c);
}

/* A reused pooled connection died before answering: send the request once
 * more on a fresh one, if it had no body (nothing was consumed for good). */
static bool forward_retry(struct conn *c)
{
	struct exchange *x = c->x;
	if (!x->uc->reused || x->retried || x->resp_head_done || x->req.framing != HTTP1_BODY_NONE)
		return false;
	x->retried = true;
	const char *why = NULL;
	struct upstream_conn *fresh = upstream_conn_get(c->w->pools[x->upstream], forward_ready, c,
							 &why);
	if (!fresh)
		return false; /* the caller fails the exchange and releases x->uc */
	upstream_conn_put(x->uc, false);
	x->uc = fresh;
	x->req_done = false;
	forward_when_ready(c);
	return true;
}

/* ---- response side ---- */

static void pump_response_body(struct conn *c);

static void upstream_failed(struct conn *c, int status, const char *why)
{
	struct exchange *x = c->x;
	clock_gettime(CLOCK_MONOTONIC, &x->upstream_end);
	log_warn("upstream %s: %s", c->cfg->upstream[x->upstream].name, why);
	exchange_release_upstream(x, false);
	if (x->resp_head_done) {
		/* Headers already went out: all we can do is cut the connection. */
		conn_free(c);
		return;
	}
	conn_respond_error(c, status, why);
}

static void read_response_head(struct conn *c)
{
	struct exchange *x = c->x;
	struct evbuffer *in = bufferevent_get_input(x->uc->bev);
	for (;;) {
		size_t avail = evbuffer_get_length(in);
		if (avail == 0)
			return;
		/* Reading stops at buffer_bytes, so a larger head could never complete. */
		size_t max = c->cfg->limits->buffer_bytes - 1;
		if (max > MAX_RESPONSE_HEAD)
			max = MAX_RESPONSE_HEAD;
		size_t want = avail < max + 1 ? avail : max + 1;
		const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)want);
		enum http1_result r = http1_parse_head(&x->resp_parser, buf, want, max, max,
						       &x->resp);
		if (r == HTTP1_MORE)
			return;
		if (r == HTTP1_ERROR) {
			upstream_failed(c, 502, x->resp_parser.error_reason);
			return;
		}
		if (x->resp.status / 100 == 1) {
			/* Interim answers (100 Continue was already ours) are not relayed. */
			if (x->resp.status == 101) {
				upstream_failed(c, 502, "upstream switched protocols");
				return;
			}
			evbuffer_drain(in, x->resp.head_len);
			continue;
		}
		break;
	}
	const struct http1_head *h = &x->resp;
	x->resp_head_done = true;
	x->status = h->status;
	x->resp_framing = h->framing;
	x->resp_remaining = h->framing == HTTP1_BODY_LENGTH ? h->content_length : 0;
	bool delimited = h->framing != HTTP1_BODY_EOF;
	x->resp_chunked_out = !x->http10 &&
			      (h->framing == HTTP1_BODY_CHUNKED || h->framing == HTTP1_BODY_EOF);
	x->client_keep_alive = x->req.keep_alive && !c->close_after &&
			       (delimited || x->resp_chunked_out) &&
			       !(x->http10 && h->framing == HTTP1_BODY_CHUNKED);
	/* A response that arrives before the request body ended leaves unread
	 * bytes on the client side: that connection cannot go on. */
	if (!x->req_done)
		x->client_keep_alive = false;
	if (!x->client_keep_alive)
		c->close_after = true;

	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t before = evbuffer_get_length(out);
	forward_response_head(out, h, x->resp_chunked_out, x->client_keep_alive, x->http10);
	x->bytes_out += evbuffer_get_length(out) - before;
	evbuffer_drain(in, h->head_len);
	struct timeval st = tv_of(c->cfg->limits->send_timeout);
	bufferevent_set_timeouts(c->bev, NULL, &st);
	c->state = CONN_FORWARD;
	pump_response_body(c);
}

static void response_done(struct conn *c)
{
	struct exchange *x = c->x;
	clock_gettime(CLOCK_MONOTONIC, &x->upstream_end);
	bool reusable = x->req_done && x->resp.keep_alive && x->resp_framing != HTTP1_BODY_EOF &&
			!x->upstream_eof;
	exchange_release_upstream(x, reusable);
	if (!x->req_done)
		c->close_after = true;
	exchange_finish(c);
	if (c->state == CONN_READ_HEAD)
		conn_process_input(c); /* pipelined requests waiting behind this one */
}

/* libevent's TLS bufferevent makes one TLS record (and one write) per
 * buffer chain, and a small answer is several chains (head, body, chunk
 * framing): join them so it leaves as one record. */
#define TLS_COALESCE_BYTES 16384  /* a TLS record's largest payload */

static void response_out(struct conn *c, struct evbuffer *out)
{
	size_t len = evbuffer_get_length(out);
	if (c->tls && len <= TLS_COALESCE_BYTES && evbuffer_get_contiguous_space(out) < len)
		evbuffer_pullup(out, -1);
	bev_write_soon(c->bev);
}

static void pump_response_body(struct conn *c)
{
	struct exchange *x = c->x;
	if (!x || !x->uc || !x->resp_head_done)
		return;
	struct evbuffer *in = bufferevent_get_input(x->uc->bev);
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t cap = c->cfg->limits->buffer_bytes;
	size_t queued = evbuffer_get_length(out);
	size_t budget = queued < cap ? cap - queued : 0;
	size_t before = queued;
	switch (x->resp_framing) {
	case HTTP1_BODY_NONE:
		response_done(c);
		return;
	case HTTP1_BODY_LENGTH: {
		size_t n = evbuffer_get_length(in);
		if (n > budget)
			n = budget;
		if (n > x->resp_remaining)
			n = (size_t)x->resp_remaining;
		evbuffer_remove_buffer(in, out, n);
		x->resp_remaining -= n;
		x->bytes_out += n;
		if (n && x->resp_remaining > evbuffer_get_length(in) && !x->upstream_eof)
			bev_read_more(x->uc->bev, cap); /* refill in one syscall */
		response_out(c, out);
		if (x->resp_remaining == 0)
			response_done(c);
		else if (x->upstream_eof && evbuffer_get_length(in) == 0)
			upstream_failed(c, 502, "upstream closed in the middle of the body");
		return;
	}
	case HTTP1_BODY_CHUNKED: {
		bool done;
		long used = chunked_pump(&x->resp_parser, in, budget, &done,
					 x->resp_chunked_out ? emit_chunk : emit_raw, out);
		if (used < 0) {
			upstream_failed(c, 502, x->resp_parser.error_reason);
			return;
		}
		if (done && x->resp_chunked_out)
			evbuffer_add(out, "0\r\n\r\n", 5);
		x->bytes_out += evbuffer_get_length(out) - before;
		response_out(c, out);
		if (done)
			response_done(c);
		else if (x->upstream_eof && evbuffer_get_length(in) == 0)
			upstream_failed(c, 502, "upstream closed in the middle of a chunked body");
		return;
	}
	case HTTP1_BODY_EOF: {
		size_t n = evbuffer_get_length(in);
		if (n > budget)
			n = budget;
		if (n) {
			if (x->resp_chunked_out) {
				evbuffer_add_printf(out, "%zx\r\n", n);
				evbuffer_remove_buffer(in, out, n);
				evbuffer_add(out, "\r\n", 2);
			} else {
				evbuffer_remove_buffer(in, out, n);
			}
		}
		if (x->upstream_eof && evbuffer_get_length(in) == 0) {
			if (x->resp_chunked_out)
				evbuffer_add(out, "0\r\n\r\n", 5);
			x->bytes_out += evbuffer_get_length(out) - before;
			response_done(c);
			return;
		}
		x->bytes_out += evbuffer_get_length(out) - before;
		return;
	}
	}
}

/* ---- end of an exchange ---- */

/* Closing right after an answer while the client still sends (a body we
 * refused, pipelined requests) would make the kernel reset the connection
 * and the client could lose the answer. So: half-close, then read and
 * discard for a short while before closing for good. */
#define LINGER_SECONDS 2.0

static void conn_linger(struct conn *c)
{
	c->state = CONN_LINGER;
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	if (ssl)
		SSL_shutdown(ssl); /* close_notify, so the client knows nothing was cut */
	shutdown(bufferevent_getfd(c->bev), SHUT_WR);
	evbuffer_drain(bufferevent_get_input(c->bev), evbuffer_get_length(bufferevent_get_input(c->bev)));
	set_client_timeouts(c, LINGER_SECONDS, 0);
	bufferevent_setwatermark(c->bev, EV_READ, 0, 0);
	bufferevent_enable(c->bev, EV_READ);
}

static void exchange_finish(struct conn *c)
{
	exchange_log(c);
	exchange_free(c);
	if (c->sent_head) {
		evbuffer_free(c->sent_head);
		c->sent_head = NULL;
	}
	if (c->close_after) {
		c->state = CONN_CLOSING;
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
			conn_linger(c);
		/* else client_write_cb lingers once flushed */
		return;
	}
	c->state = CONN_READ_HEAD;
	set_client_timeouts(c, c->cfg->limits->keepalive_timeout, c->cfg->limits->send_timeout);
}

/* Parses and runs as many buffered requests as can be answered now. */
static void conn_process_input(struct conn *c)
{
	size_t cap = c->cfg->limits->buffer_bytes;
	struct worker *w = c->w;
	while (c->state == CONN_READ_HEAD) {
		if (evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)
			return;
		/* Don't run ahead of a client that isn't reading its answers. */
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) >= cap)
			return;
		size_t n_before = w->n_conns;
		conn_read_head(c);
		if (w->n_conns != n_before)
			return; /* only c can have been freed in between */
		if (c->state == CONN_READ_HEAD && c->x)
			return; /* partial head: wait for more */
	}
}

/* ---- libevent callbacks ---- */

static void client_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	struct conn *c = arg;
	switch (c->state) {
	case CONN_READ_HEAD:
		conn_process_input(c);
		break;
	case CONN_PARKED:
	case CONN_QUEUED:
		break; /* the bytes wait (bounded by the read budget) */
	case CONN_CONNECT:
	case CONN_FORWARD:
		pump_request_body(c);
		break;
	case CONN_CLOSING:
	case CONN_LINGER:
		evbuffer_drain(bufferevent_get_input(c->bev),
			       evbuffer_get_length(bufferevent_get_input(c->bev)));
		break;
	}
}

static void client_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0 && c->state == CONN_CLOSING) {
		conn_linger(c);
		return;
	}
	if (c->state == CONN_FORWARD)
		pump_response_body(c);
	else if (c->state == CONN_READ_HEAD)
		conn_process_input(c);
}

static void client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	struct conn *c = arg;
	struct exchange *x = c->x;
	if (what & BEV_EVENT_CONNECTED)
		return; /* a TLS client finished its handshake */
	if (c->state == CONN_LINGER || c->state == CONN_CLOSING) {
		conn_free(c);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (c->state == CONN_READ_HEAD && x && (what & BEV_EVENT_READING)) {
			conn_respond_error(c, 408, "timed out waiting for the request");
			return;
		}
		if (x && !x->resp_head_done && x->uc && (what & BEV_EVENT_READING)) {
			exchange_release_upstream(x, false);
			conn_respond_error(c, 408, "timed out waiting for the request body");
			return;
		}
		conn_free(c);
		return;
	}
	if ((what & BEV_EVENT_EOF) && x && x->req_done && c->state == CONN_FORWARD &&
	    !(what & BEV_EVENT_ERROR)) {
		/* The client half-closed after a whole request: answer, then close. */
		c->close_after = true;
		bufferevent_disable(c->bev, EV_READ);
		return;
	}
	/* Gone, or broken: whatever was in flight upstream is abandoned. */
	conn_free(c);
}

static void upstream_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	struct conn *c = arg;
	if (!c->x->resp_head_done)
		read_response_head(c);
	else
		pump_response_body(c);
}

static void upstream_write_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	struct conn *c = arg;
	pump_request_body(c);
}

static void upstream_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	struct conn *c = arg;
	struct exchange *x = c->x;
	if (what & BEV_EVENT_TIMEOUT) {
		upstream_failed(c, 504, "upstream timed out");
		return;
	}
	if ((what & BEV_EVENT_EOF) && x->resp_head_done && !(what & BEV_EVENT_ERROR)) {
		x->upstream_eof = true;
		pump_response_body(c);
		return;
	}
	if (forward_retry(c))
		return;
	const char *why = (what & BEV_EVENT_EOF) ? "upstream closed the connection before answering"
						 : "upstream connection failed";
	upstream_failed(c, 502, why);
}
