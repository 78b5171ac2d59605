/* httpclient: one request/response exchange with an upstream. */
#include "httpclient.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>

#include "bev.h"
#include "duration.h"
#include "project.h"
#include "stats.h"
#include "upstream.h"

/* Larger heads are refused (502); reading also stops at buffer_bytes. */
#define MAX_RESPONSE_HEAD (64 * 1024)

struct httpclient {
	struct upstream_pool *pool;
	const struct upstream_conf *conf;
	struct upstream_conn *uc;        /* NULL once released */
	const struct httpclient_ops *ops;
	void *arg;

	struct evbuffer *head;           /* kept for a retry */
	struct evbuffer *body_bytes;     /* HTTPCLIENT_BODY_MEMORY, kept for a retry */
	struct evbuffer *piece;          /* a decoded piece of a chunked answer */
	enum httpclient_body body;
	size_t buffer_bytes;
	struct event *deadline_ev;
	double deadline;

	struct project *project;         /* in-flight accounting, while counted */
	struct stats *stats;
	bool counted;

	bool bound;                      /* our callbacks are on uc->bev, head queued */
	bool sent;                       /* the whole request is queued */
	bool retried;
	bool tcp_up;
	bool answered;                   /* the upstream sent something (a retry would repeat) */
	bool head_done;                  /* final response head received */
	bool end_pending;                /* httpclient_body_end() before the connection was up */
	bool read_ahead;                 /* the caller comes back when its sink drains */
	bool eof;                        /* the upstream closed after the head */
	bool held;                       /* the caller takes the body from the socket */
	bool released;

	struct http1_parser parser;
	uint64_t resp_remaining;
	uint64_t body_in;                /* answer body bytes taken from the upstream, for messages */
	const char *error;
	char peer[64];                   /* set when the connection is let go */
	char why[320];

	/* Last: its header array is not zeroed (see httpclient_start()). */
	struct http1_head resp;
};

static void on_ready(void *arg, struct upstream_conn *uc, const char *error);
static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

/* The exchange no longer holds its connection: back to the pool when
 * REUSABLE; from here on it is not in flight. */
static void release(struct httpclient *hc, bool reusable)
{
	if (hc->uc) {
		memcpy(hc->peer, hc->uc->peer, sizeof(hc->peer)); /* for messages after */
		hc->tcp_up = hc->tcp_up || hc->uc->tcp_up;
		upstream_conn_put(hc->uc, reusable);
		hc->uc = NULL;
	}
	if (hc->counted) {
		hc->counted = false;
		enum upstream_id id = upstream_pool_id(hc->pool);
		if (hc->project)
			project_in_flight_add(hc->project, id, -1);
		if (hc->stats)
			STATS_ADD(hc->stats, in_flight[id], -1);
	}
	if (hc->deadline_ev)
		event_del(hc->deadline_ev);
	hc->released = true;
}

static void fail(struct httpclient *hc, int status, const char *why)
{
	if (why != hc->why)
		snprintf(hc->why, sizeof(hc->why), "%s", why);
	hc->error = hc->why;
	release(hc, false);
	hc->ops->failed(hc->arg, status, hc->why);
}

/* The request is queued whole: the upstream owes an answer from now on. */
static void request_sent(struct httpclient *hc)
{
	hc->sent = true;
	bev_set_timeouts(hc->uc->bev, hc->conf->read_timeout, hc->conf->send_timeout);
}

/* A usable connection: our callbacks, the head, a body in memory. */
static void bind_connection(struct httpclient *hc)
{
	struct bufferevent *bev = hc->uc->bev;
	bufferevent_setcb(bev, on_read, on_write, on_event, hc);
	if (hc->uc->budget != hc->buffer_bytes) { /* a pooled one has it from its last exchange */
		bev_set_budget(bev, hc->buffer_bytes);
		hc->uc->budget = hc->buffer_bytes;
	}
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	bool streamed = hc->body == HTTPCLIENT_BODY_LENGTH || hc->body == HTTPCLIENT_BODY_CHUNKED;
	if (streamed)
		bev_set_timeouts(bev, 0, hc->conf->send_timeout); /* else request_sent() sets them */
	struct evbuffer *out = bufferevent_get_output(bev);
	evbuffer_add(out, evbuffer_pullup(hc->head, -1), evbuffer_get_length(hc->head));
	if (hc->body_bytes)
		evbuffer_add(out, evbuffer_pullup(hc->body_bytes, -1),
			     evbuffer_get_length(hc->body_bytes));
	hc->bound = true;
	hc->tcp_up = true;
	if (!streamed)
		request_sent(hc);
	else if (hc->end_pending)
		httpclient_body_end(hc); /* an empty streamed body */
	bev_write_soon(bev);
}

/* Takes a connection (pooled or new); false with *WHY when none can be had. */
static bool take_connection(struct httpclient *hc, const struct dns_answer *answer,
			    const char **why)
{
	hc->bound = false;
	hc->sent = false;
	hc->uc = answer ? upstream_conn_open(hc->pool, answer, on_ready, hc, why)
			: upstream_conn_get(hc->pool, on_ready, hc, why);
	if (!hc->uc)
		return false;
	if (hc->uc->bev)
		bind_connection(hc);
	return true;
}

static void on_ready(void *arg, struct upstream_conn *uc, const char *error)
{
	struct httpclient *hc = arg;
	hc->tcp_up = uc->tcp_up;
	if (error) {
		fail(hc, 502, error);
		return;
	}
	bind_connection(hc);
	if (hc->ops->connected)
		hc->ops->connected(hc->arg);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct httpclient *hc = arg;
	char why[96];
	snprintf(why, sizeof(why), "no answer within %.1fs", hc->deadline);
	fail(hc, 504, why);
}

struct httpclient *httpclient_start(struct upstream_pool *pool,
				    const struct httpclient_request *req,
				    const struct httpclient_ops *ops, void *arg, const char **why)
{
	/* Zeroed up to the response head's header array, which
	 * http1_parse_head() fills as far as its count says. */
	struct httpclient *hc = malloc(sizeof(*hc));
	if (hc)
		memset(hc, 0, offsetof(struct httpclient, resp.headers));
	if (!hc || (req->deadline > 0 && !(hc->deadline_ev = evtimer_new(upstream_pool_base(pool),
									 on_deadline, hc)))) {
		*why = "out of memory";
		evbuffer_free(req->head);
		if (req->body_bytes)
			evbuffer_free(req->body_bytes);
		httpclient_free(hc);
		return NULL;
	}
	hc->head = req->head;
	hc->body_bytes = req->body == HTTPCLIENT_BODY_MEMORY ? req->body_bytes : NULL;
	if (req->body_bytes && !hc->body_bytes)
		evbuffer_free(req->body_bytes); /* taken over, not used */
	hc->pool = pool;
	hc->conf = upstream_pool_conf(pool);
	hc->ops = ops;
	hc->arg = arg;
	hc->body = req->body;
	hc->buffer_bytes = req->buffer_bytes;
	hc->deadline = req->deadline;
	hc->read_ahead = req->read_ahead;
	hc->project = req->project;
	hc->stats = req->stats;
	http1_parser_init(&hc->parser, HTTP1_RESPONSE);
	http1_expect_no_body(&hc->parser, req->head_method);
	if (!take_connection(hc, req->answer, why)) {
		httpclient_free(hc);
		return NULL;
	}
	enum upstream_id id = upstream_pool_id(pool);
	hc->counted = true;
	if (hc->project)
		project_in_flight_add(hc->project, id, +1);
	if (hc->stats)
		STATS_ADD(hc->stats, in_flight[id], +1);
	if (hc->deadline_ev) {
		struct timeval tv = duration_tv(req->deadline);
		evtimer_add(hc->deadline_ev, &tv);
	}
	return hc;
}

void httpclient_free(struct httpclient *hc)
{
	if (!hc)
		return;
	release(hc, false);
	if (hc->deadline_ev)
		event_free(hc->deadline_ev);
	if (hc->head)
		evbuffer_free(hc->head);
	if (hc->body_bytes)
		evbuffer_free(hc->body_bytes);
	if (hc->piece)
		evbuffer_free(hc->piece);
	free(hc);
}

/* A reused pooled connection died before answering anything (not even an
 * interim 1xx: the upstream may be working on the request): send the
 * request once more on a fresh one, if nothing of it was consumed for good. */
static bool retry(struct httpclient *hc)
{
	if (!hc->uc || !hc->uc->reused || hc->retried || hc->answered ||
	    hc->body == HTTPCLIENT_BODY_LENGTH || hc->body == HTTPCLIENT_BODY_CHUNKED)
		return false;
	hc->retried = true;
	struct upstream_conn *dead = hc->uc;
	const char *why = NULL;
	if (!take_connection(hc, NULL, &why)) {
		hc->uc = dead; /* the caller fails the exchange */
		return false;
	}
	upstream_conn_put(dead, false);
	return true;
}

/* ---- request body, pushed by the caller ---- */

size_t httpclient_body_room(const struct httpclient *hc)
{
	if (!hc->bound || hc->sent || !hc->uc)
		return 0;
	size_t queued = evbuffer_get_length(bufferevent_get_output(hc->uc->bev));
	return queued < hc->buffer_bytes ? hc->buffer_bytes - queued : 0;
}

void httpclient_body_add(struct httpclient *hc, struct evbuffer *src, size_t n)
{
	if (!n || !hc->uc)
		return;
	struct evbuffer *out = bufferevent_get_output(hc->uc->bev);
	if (hc->body == HTTPCLIENT_BODY_CHUNKED) {
		evbuffer_add_printf(out, "%zx\r\n", n);
		evbuffer_remove_buffer(src, out, n);
		evbuffer_add(out, "\r\n", 2);
	} else {
		evbuffer_remove_buffer(src, out, n);
	}
	bev_write_soon(hc->uc->bev);
}

void httpclient_body_end(struct httpclient *hc)
{
	if (!hc->bound) {
		hc->end_pending = true; /* bind_connection() ends it */
		return;
	}
	if (!hc->uc || hc->sent)
		return;
	if (hc->body == HTTPCLIENT_BODY_CHUNKED) {
		evbuffer_add(bufferevent_get_output(hc->uc->bev), "0\r\n\r\n", 5);
		bev_write_soon(hc->uc->bev);
	}
	request_sent(hc);
}

bool httpclient_ready(const struct httpclient *hc)
{
	return hc->bound;
}

bool httpclient_request_sent(const struct httpclient *hc)
{
	return hc->sent;
}

/* ---- response ---- */

static void read_head(struct httpclient *hc)
{
	struct evbuffer *in = bufferevent_get_input(hc->uc->bev);
	for (;;) {
		size_t avail = evbuffer_get_length(in);
		if (avail == 0)
			return;
		hc->answered = true;
		/* Reading stops at buffer_bytes, so a larger head could never complete. */
		size_t max = hc->buffer_bytes - 1;
		if (max > MAX_RESPONSE_HEAD)
			max = MAX_RESPONSE_HEAD;
		size_t want = avail < max + 1 ? avail : max + 1;
		const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)want);
		enum http1_result r = http1_parse_head(&hc->parser, buf, want, max, max, &hc->resp);
		if (r == HTTP1_MORE)
			return;
		if (r == HTTP1_ERROR) {
			fail(hc, 502, hc->parser.error_reason);
			return;
		}
		if (hc->resp.status / 100 != 1)
			break;
		/* Interim answers are not relayed (a 100 Continue to the device is
		 * the caller's business). */
		if (hc->resp.status == 101) {
			fail(hc, 502, "upstream switched protocols");
			return;
		}
		evbuffer_drain(in, hc->resp.head_len);
	}
	/* The head stays in the input buffer, unmoved, while the caller reads
	 * it; the body after it is only touched by httpclient_body_move(). */
	hc->head_done = true;
	hc->resp_remaining = hc->resp.framing == HTTP1_BODY_LENGTH ? hc->resp.content_length : 0;
	hc->ops->head(hc->arg, &hc->resp);
}

/* Once the caller has the head, its bytes leave the input. */
static void drop_head(struct httpclient *hc)
{
	if (hc->resp.head_len && hc->uc) {
		evbuffer_drain(bufferevent_get_input(hc->uc->bev), hc->resp.head_len);
		hc->resp.head_len = 0;
	}
}

static enum httpclient_move finish(struct httpclient *hc, bool reusable)
{
	release(hc, reusable && hc->sent && hc->resp.keep_alive &&
			    hc->resp.framing != HTTP1_BODY_EOF && !hc->eof);
	return HTTPCLIENT_DONE;
}

/* Answer body bytes received so far: taken, and waiting in the input. */
static uint64_t body_received(const struct httpclient *hc)
{
	size_t in = hc->uc ? evbuffer_get_length(bufferevent_get_input(hc->uc->bev)) : 0;
	size_t head = hc->resp.head_len; /* 0 once dropped */
	return hc->body_in + (in > head ? in - head : 0);
}

/* "after 10 bytes of a 100000-byte body": how far the answer came. */
static void describe_progress(const struct httpclient *hc, char *buf, size_t size)
{
	unsigned long long got = (unsigned long long)body_received(hc);
	if (hc->resp.framing == HTTP1_BODY_LENGTH)
		snprintf(buf, size, "after %llu bytes of a %llu-byte body", got,
			 (unsigned long long)hc->resp.content_length);
	else if (hc->resp.framing == HTTP1_BODY_CHUNKED)
		snprintf(buf, size, "after %llu bytes of a chunked body", got);
	else
		snprintf(buf, size, "after %llu bytes of the body", got);
}

static enum httpclient_move cut(struct httpclient *hc, const char *why)
{
	char progress[96];
	describe_progress(hc, progress, sizeof(progress));
	snprintf(hc->why, sizeof(hc->why), "%s %s", why, progress);
	hc->error = hc->why;
	release(hc, false);
	return HTTPCLIENT_ERROR;
}

enum httpclient_move httpclient_body_move(struct httpclient *hc, struct evbuffer *dst, size_t max,
					  bool chunked, size_t *moved)
{
	*moved = 0;
	if (hc->released)
		return hc->error ? HTTPCLIENT_ERROR : HTTPCLIENT_DONE;
	if (!hc->head_done)
		return HTTPCLIENT_MORE;
	drop_head(hc);
	struct evbuffer *in = bufferevent_get_input(hc->uc->bev);
	size_t before = evbuffer_get_length(dst);
	switch (hc->resp.framing) {
	case HTTP1_BODY_NONE:
		return finish(hc, true);
	case HTTP1_BODY_LENGTH: {
		size_t n = evbuffer_get_length(in);
		if (n > max)
			n = max;
		if (n > hc->resp_remaining)
			n = (size_t)hc->resp_remaining;
		evbuffer_remove_buffer(in, dst, n);
		hc->resp_remaining -= n;
		hc->body_in += n;
		*moved = n;
		if (n && hc->read_ahead && !hc->held && hc->resp_remaining > evbuffer_get_length(in) &&
		    !hc->eof)
			bev_read_more(hc->uc->bev, hc->buffer_bytes); /* refill in one syscall */
		if (hc->resp_remaining == 0)
			return finish(hc, true);
		if (hc->eof && evbuffer_get_length(in) == 0)
			return cut(hc, "upstream closed the connection mid-response");
		return HTTPCLIENT_MORE;
	}
	case HTTP1_BODY_CHUNKED: {
		bool done;
		long used;
		if (chunked) {
			/* Decoded pieces are re-framed one chunk per call. */
			if (!hc->piece && !(hc->piece = evbuffer_new()))
				return cut(hc, "out of memory");
			used = http1_chunked_move(&hc->parser, in, max, hc->piece, &done);
			size_t n = evbuffer_get_length(hc->piece);
			if (n) {
				evbuffer_add_printf(dst, "%zx\r\n", n);
				evbuffer_add_buffer(dst, hc->piece);
				evbuffer_add(dst, "\r\n", 2);
			}
		} else {
			used = http1_chunked_move(&hc->parser, in, max, dst, &done);
		}
		if (used < 0) {
			char why[160];
			snprintf(why, sizeof(why), "bad chunk in the upstream's answer (%s)",
				 hc->parser.error_reason);
			return cut(hc, why);
		}
		hc->body_in += (uint64_t)used;
		if (done && chunked)
			evbuffer_add(dst, "0\r\n\r\n", 5);
		*moved = evbuffer_get_length(dst) - before;
		if (done)
			return finish(hc, true);
		if (hc->eof && evbuffer_get_length(in) == 0)
			return cut(hc, "upstream closed the connection mid-response");
		return HTTPCLIENT_MORE;
	}
	case HTTP1_BODY_EOF: {
		size_t n = evbuffer_get_length(in);
		if (n > max)
			n = max;
		if (n) {
			if (chunked)
				evbuffer_add_printf(dst, "%zx\r\n", n);
			evbuffer_remove_buffer(in, dst, n);
			if (chunked)
				evbuffer_add(dst, "\r\n", 2);
			hc->body_in += n;
		}
		if (hc->eof && evbuffer_get_length(in) == 0) {
			if (chunked)
				evbuffer_add(dst, "0\r\n\r\n", 5);
			*moved = evbuffer_get_length(dst) - before;
			return finish(hc, false);
		}
		*moved = evbuffer_get_length(dst) - before;
		return HTTPCLIENT_MORE;
	}
	}
	return HTTPCLIENT_MORE;
}

/* ---- bodies moved by the caller between sockets (the forward's tunnel) ---- */

int httpclient_plain_fd(const struct httpclient *hc)
{
	if (!hc->bound || !hc->uc || bufferevent_openssl_get_ssl(hc->uc->bev))
		return -1;
	return bufferevent_getfd(hc->uc->bev);
}

bool httpclient_body_flushed(const struct httpclient *hc)
{
	return hc->bound && hc->uc && !evbuffer_get_length(bufferevent_get_output(hc->uc->bev));
}

void httpclient_body_hold(struct httpclient *hc, bool hold)
{
	hc->held = hold;
	if (!hc->uc)
		return;
	if (hold)
		bufferevent_disable(hc->uc->bev, EV_READ);
	else
		bufferevent_enable(hc->uc->bev, EV_READ);
}

bool httpclient_body_raw_left(const struct httpclient *hc, uint64_t *left)
{
	if (!hc->held || !hc->uc || !hc->head_done || hc->resp.head_len || hc->eof ||
	    evbuffer_get_length(bufferevent_get_input(hc->uc->bev)))
		return false;
	if (hc->resp.framing == HTTP1_BODY_LENGTH && hc->resp_remaining) {
		*left = hc->resp_remaining;
		return true;
	}
	if (hc->resp.framing == HTTP1_BODY_EOF) {
		*left = UINT64_MAX;
		return true;
	}
	return false;
}

enum httpclient_move httpclient_body_raw_end(struct httpclient *hc, uint64_t n, const char *why)
{
	hc->body_in += n;
	if (hc->resp.framing == HTTP1_BODY_LENGTH)
		hc->resp_remaining -= n < hc->resp_remaining ? n : hc->resp_remaining;
	if (why)
		return cut(hc, why);
	if (hc->resp.framing == HTTP1_BODY_EOF) {
		hc->eof = true;
		return finish(hc, false);
	}
	if (hc->resp_remaining)
		return cut(hc, "the body ended early");
	return finish(hc, true);
}

const char *httpclient_error(const struct httpclient *hc)
{
	return hc->error;
}

enum http1_framing httpclient_response_framing(const struct httpclient *hc)
{
	return hc->resp.framing;
}

const char *httpclient_peer(const struct httpclient *hc)
{
	return hc->uc ? hc->uc->peer : hc->peer;
}

bool httpclient_tcp_up(const struct httpclient *hc)
{
	return hc->tcp_up || (hc->uc && hc->uc->tcp_up);
}

struct bufferevent *httpclient_bufferevent(const struct httpclient *hc)
{
	return hc->uc ? hc->uc->bev : NULL;
}

/* ---- libevent callbacks ---- */

static void on_read(struct bufferevent *bev, void *arg)
{
	(void)bev;
	struct httpclient *hc = arg;
	if (!hc->head_done)
		read_head(hc);
	else
		hc->ops->body(hc->arg);
}

static void on_write(struct bufferevent *bev, void *arg)
{
	(void)bev;
	struct httpclient *hc = arg;
	if (!hc->sent && hc->ops->writable)
		hc->ops->writable(hc->arg);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	struct httpclient *hc = arg;
	if (what & BEV_EVENT_TIMEOUT) {
		fail(hc, 504, "upstream timed out");
		return;
	}
	if ((what & BEV_EVENT_EOF) && hc->head_done && !(what & BEV_EVENT_ERROR)) {
		hc->eof = true;
		hc->ops->body(hc->arg);
		return;
	}
	int err = EVUTIL_SOCKET_ERROR();
	if (retry(hc))
		return;
	/* Say what happened, and how far the answer had come. */
	char progress[96] = "before answering";
	if (hc->head_done)
		describe_progress(hc, progress, sizeof(progress));
	else if (hc->answered)
		snprintf(progress, sizeof(progress), "in the middle of the answer's head");
	char why[200];
	if (what & BEV_EVENT_EOF)
		snprintf(why, sizeof(why), "upstream closed the connection %s", progress);
	else if (err == ECONNRESET)
		snprintf(why, sizeof(why), "upstream reset the connection %s%s", progress,
			 hc->head_done ? " (mid-response)" : "");
	else
		snprintf(why, sizeof(why), "upstream connection failed %s: %s", progress,
			 err ? evutil_socket_error_to_string(err) : "unknown error");
	fail(hc, 502, why);
}
