/* forward: the action that sends a request to an upstream and relays the
 * answer: admission (max_active), the heads rewritten (rewrite.h), the
 * request body streamed through the HTTP client, the response streamed
 * back; large bodies between plain sockets through a tunnel (tunnel.h). */
#include "forward.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "addr.h"
#include "conf.h"
#include "conn.h"
#include "http1.h"
#include "httpclient.h"
#include "log.h"
#include "response.h"
#include "rewrite.h"
#include "stats.h"
#include "tunnel.h"
#include "upstream.h"

/* ---- the forward action ---- */

struct forward {
	struct request *r;
	struct httpclient *hc;
	enum upstream_id id;
	uint64_t req_remaining;      /* Content-Length body bytes still to send */
	uint64_t body_count;         /* chunked body bytes decoded, for max_body */
	struct evbuffer *chunk;      /* a decoded piece of a chunked body */
	bool chunked_out;            /* the answer is re-encoded as chunked */
	bool answering;              /* the answer's head went to the client */
	size_t answer_at;            /* the client's output before the answer's head */
	uint64_t answer_out;         /* r->bytes_out then */
	/* Large bodies between plain sockets go through a tunnel (splice) once
	 * what the buffers hold went out: */
	bool raw_request;            /* the rest of the request body will */
	bool raw_response;           /* the rest of the answer's body will */
	struct tunnel *tunnel;       /* one moving now */
	bool tunnel_request;         /* ... the request's body (else the answer's) */
	uint64_t tunnel_base;        /* r->bytes_in (or bytes_out) when it began */
};

static void pump_request(struct forward *f);
static void pump_response(struct forward *f);
static void tunnel_close(struct forward *f);

static const struct upstream_conf *conf_of(const struct forward *f)
{
	return &f->r->cfg->upstream[f->id];
}

static void action_readable(struct request *r)
{
	pump_request(r->action_state);
}

static void action_writable(struct request *r)
{
	struct forward *f = r->action_state;
	if (f->answering)
		pump_response(f);
}

static void action_free(struct request *r)
{
	struct forward *f = r->action_state;
	if (!f)
		return;
	tunnel_close(f);
	if (f->raw_request)
		conn_reading(r->conn, true); /* what follows decides about reading */
	httpclient_free(f->hc);
	gate_slot_free(conn_env(r->conn)->gate, f->id);
	if (f->chunk)
		evbuffer_free(f->chunk);
	free(f);
	r->action_state = NULL;
	r->action = NULL;
}

static const struct conn_action forward_action = {
	.readable = action_readable,
	.writable = action_writable,
	.free = action_free,
};

/* Keeps the first KEEP bytes of OUT, a bufferevent's output; false when
 * out of memory. libevent freezes the start of an output buffer against
 * users: it is unfrozen for this, as libevent does around its writes. */
static bool output_truncate(struct evbuffer *out, size_t keep)
{
	struct evbuffer *front = keep ? evbuffer_new() : NULL;
	if (keep && !front)
		return false;
	evbuffer_unfreeze(out, 1);
	if (front)
		evbuffer_remove_buffer(out, front, keep);
	evbuffer_drain(out, evbuffer_get_length(out));
	if (front) {
		evbuffer_add_buffer(out, front);
		evbuffer_free(front);
	}
	evbuffer_freeze(out, 1);
	return true;
}

/* The answer's head (and maybe some body) is queued for the client but not
 * one byte of it was written yet: it can still be taken back. Whatever was
 * written only shortens the output, and all we added is in bytes_out. */
static bool answer_unsent(const struct forward *f)
{
	const struct request *r = f->r;
	return evbuffer_get_length(conn_output(r->conn)) ==
	       f->answer_at + (size_t)(r->bytes_out - f->answer_out);
}

/* The request ends early: before the answer reached the client, the device
 * gets STATUS (the exchange is freed first); after, all that can be done is
 * to cut the connection. */
static void request_refused(struct forward *f, int status, const char *why)
{
	struct request *r = f->r;
	if (f->answering && answer_unsent(f) &&
	    output_truncate(conn_output(r->conn), f->answer_at)) {
		f->answering = false; /* e.g. a bad chunk in the same read as the head */
		r->bytes_out = f->answer_out;
	}
	if (f->answering)
		conn_abort(r->conn);
	else
		conn_respond_error(r, status, why);
}

/* "127.0.0.1 POST /a/p/receiver/": which request a log line is about. */
static void request_label(const struct request *r, char *buf, size_t size)
{
	char client[64];
	addr_format_host(conn_peer(r->conn), client, sizeof(client));
	snprintf(buf, size, "%s %s %.*s", client, r->method, (int)r->path_len, r->path);
}

/* The exchange with the upstream failed. */
static void forward_failed(struct forward *f, int status, const char *why)
{
	char label[700];
	clock_gettime(CLOCK_MONOTONIC, &f->r->upstream_end);
	STATS_ADD(conn_env(f->r->conn)->stats, upstream_failures[f->r->upstream_id], 1);
	request_label(f->r, label, sizeof(label));
	log_warn("upstream %s: %s: %s", conf_of(f)->name, label, why);
	request_refused(f, status, why);
}

static void body_too_slow(const struct request *r)
{
	char label[700];
	request_label(r, label, sizeof(label));
	log_info("client %s: request body slower than %llu B/s, 408", label,
		 (unsigned long long)r->cfg->limits->min_body_rate);
}

/* The device may send its body now (once: buffering may have sent it). */
static void send_continue(struct request *r)
{
	if (r->continue_sent || !r->head.expect_continue || r->head.framing == HTTP1_BODY_NONE ||
	    r->http10)
		return;
	r->continue_sent = true;
	evbuffer_add(conn_output(r->conn), "HTTP/1.1 100 Continue\r\n\r\n", 25);
	conn_flush(r->conn);
}

static void client_failed(void *arg, int status, const char *why)
{
	forward_failed(arg, status, why);
}

/* Where the connection stands, once either side moved; the timeouts are
 * set again only when the phase changes. */
static void forward_track_state(struct forward *f)
{
	struct conn *c = f->r->conn;
	enum conn_state s = !httpclient_request_sent(f->hc) ? CONN_SEND_BODY
			    : f->answering                  ? CONN_RELAY_RESPONSE
							    : CONN_AWAIT_RESPONSE;
	if (conn_state(c) != s)
		conn_set_state(c, s);
}

/* ---- large bodies socket to socket (tunnel.h) ---- */

static void response_done(struct forward *f);

static void tunnel_progress(void *arg)
{
	struct forward *f = arg;
	struct request *r = f->r;
	if (!f->tunnel_request) {
		r->bytes_out = f->tunnel_base + tunnel_written(f->tunnel);
		return;
	}
	r->bytes_in = f->tunnel_base + tunnel_read(f->tunnel);
	bool backlog = tunnel_read(f->tunnel) != tunnel_written(f->tunnel); /* the upstream is behind */
	if (conn_body_too_slow(r, backlog)) {
		body_too_slow(r);
		request_refused(f, 408, "request body slower than limits.min_body_rate");
	}
}

/* The request body's tunnel ended: the same outcomes as through the
 * buffers, with the same answers. */
static void request_tunnel_ended(struct forward *f, enum tunnel_end end, int err, uint64_t n)
{
	struct request *r = f->r;
	char why[160];
	r->bytes_in = f->tunnel_base + n;
	f->req_remaining -= n;
	switch (end) {
	case TUNNEL_DONE:
		f->raw_request = false;
		conn_reading(r->conn, true);
		httpclient_body_end(f->hc);
		forward_track_state(f);
		return;
	case TUNNEL_SRC_EOF:
		conn_input_ended(r->conn);
		request_refused(f, 400, "the client closed before the end of the request body");
		return;
	case TUNNEL_SRC_TIMEOUT:
		request_refused(f, 408, "timed out waiting for the request body");
		return;
	case TUNNEL_SRC_ERROR:
		conn_abort(r->conn); /* the client is gone */
		return;
	case TUNNEL_DST_TIMEOUT:
		forward_failed(f, 504, "upstream timed out");
		return;
	case TUNNEL_DST_ERROR:
		snprintf(why, sizeof(why),
			 "upstream connection failed while sending the request body: %s",
			 strerror(err));
		forward_failed(f, 502, why);
		return;
	}
}

/* The answer's tunnel ended. */
static void response_tunnel_ended(struct forward *f, enum tunnel_end end, int err, uint64_t n)
{
	char why[160];
	const char *cut = NULL;
	switch (end) {
	case TUNNEL_DONE:
		break;
	case TUNNEL_SRC_EOF:
		cut = "upstream closed the connection mid-response";
		break;
	case TUNNEL_SRC_TIMEOUT:
		cut = "upstream timed out";
		break;
	case TUNNEL_SRC_ERROR:
		if (err == ECONNRESET)
			snprintf(why, sizeof(why), "upstream reset the connection mid-response");
		else
			snprintf(why, sizeof(why), "upstream connection failed mid-response: %s",
				 strerror(err));
		cut = why;
		break;
	case TUNNEL_DST_ERROR:
	case TUNNEL_DST_TIMEOUT:
		conn_abort(f->r->conn); /* as when the client's own writes fail */
		return;
	}
	if (httpclient_body_raw_end(f->hc, n, cut) == HTTPCLIENT_DONE)
		response_done(f);
	else
		forward_failed(f, end == TUNNEL_SRC_TIMEOUT ? 504 : 502, httpclient_error(f->hc));
}

/* Frees the tunnel, counting what it moved. */
static void tunnel_close(struct forward *f)
{
	if (!f->tunnel)
		return;
	STATS_ADD(conn_env(f->r->conn)->stats, spliced_bytes, tunnel_written(f->tunnel));
	tunnel_free(f->tunnel);
	f->tunnel = NULL;
}

static void tunnel_ended(void *arg, enum tunnel_end end, int err)
{
	struct forward *f = arg;
	struct request *r = f->r;
	uint64_t read = tunnel_read(f->tunnel), written = tunnel_written(f->tunnel);
	tunnel_close(f);
	if (f->tunnel_request) {
		request_tunnel_ended(f, end, err, read);
	} else {
		r->bytes_out = f->tunnel_base + written;
		response_tunnel_ended(f, end, err, read);
	}
}

static const struct tunnel_ops forward_tunnel_ops = {
	.progress = tunnel_progress,
	.end = tunnel_ended,
};

static bool tunnel_open(struct forward *f, bool request, int src, int dst, uint64_t len)
{
	struct request *r = f->r;
	const struct limits_conf *lim = r->cfg->limits;
	struct tunnel_spec spec = {
		.src = src,
		.dst = dst,
		.len = len,
		.src_timeout = request ? lim->body_timeout : conf_of(f)->read_timeout,
		.dst_timeout = request ? conf_of(f)->send_timeout : lim->send_timeout,
		.pipe_bytes = lim->buffer_bytes,
	};
	f->tunnel = tunnel_start(conn_env(r->conn)->base, &spec, &forward_tunnel_ops, f);
	f->tunnel_request = request;
	f->tunnel_base = request ? r->bytes_in : r->bytes_out;
	return f->tunnel != NULL;
}

/* The request body's bytes in the buffers went out: the rest goes by
 * tunnel. False: not now (the upstream still sends what it was given), or
 * never (a TLS upstream, no pipe): reading into the buffers resumes. */
static bool request_tunnel(struct forward *f)
{
	if (!httpclient_body_flushed(f->hc))
		return false; /* client_writable() comes back once it is */
	int dst = httpclient_plain_fd(f->hc), src = conn_plain_fd(f->r->conn);
	if (dst >= 0 && src >= 0 && tunnel_open(f, true, src, dst, f->req_remaining)) {
		forward_track_state(f);
		return true;
	}
	f->raw_request = false;
	conn_reading(f->r->conn, true);
	return false;
}

/* The answer's buffered bytes reached the client: the rest goes by tunnel
 * (or through the buffers again, when no pipe can be had). */
static void response_tunnel(struct forward *f)
{
	uint64_t left;
	if (!httpclient_body_raw_left(f->hc, &left))
		return;
	int src = httpclient_plain_fd(f->hc), dst = conn_plain_fd(f->r->conn);
	if (!tunnel_open(f, false, src, dst, left)) {
		f->raw_response = false;
		httpclient_body_hold(f->hc, false);
	}
}

/* Moves request body bytes from the client to the upstream, as much as the
 * upstream side has room for. */
static void pump_request(struct forward *f)
{
	struct request *r = f->r;
	if (!f->hc || f->tunnel || httpclient_request_sent(f->hc))
		return;
	size_t budget = httpclient_body_room(f->hc);
	if (!budget)
		return; /* connecting, or the upstream is not reading */
	struct evbuffer *in = conn_input(r->conn);
	bool done = false;
	if (r->head.framing == HTTP1_BODY_LENGTH) {
		size_t n = evbuffer_get_length(in);
		if (n > budget)
			n = budget;
		if (n > f->req_remaining)
			n = (size_t)f->req_remaining;
		if (n) {
			httpclient_body_add(f->hc, in, n);
			f->req_remaining -= n;
			r->bytes_in += n;
			if (!f->raw_request && f->req_remaining > evbuffer_get_length(in))
				conn_read_more(r->conn); /* refill in one syscall */
		}
		done = f->req_remaining == 0;
		if (done)
			httpclient_body_end(f->hc);
		else if (f->raw_request && !evbuffer_get_length(in) && request_tunnel(f))
			return;
	} else if (r->head.framing == HTTP1_BODY_CHUNKED) {
		long used = http1_chunked_move(&r->parser, in, budget, f->chunk, &done);
		if (used < 0) {
			request_refused(f, 400, r->parser.error_reason);
			return;
		}
		r->bytes_in += (uint64_t)used;
		size_t n = evbuffer_get_length(f->chunk);
		f->body_count += n;
		if (r->max_body && f->body_count > r->max_body) {
			request_refused(f, 413, "request body larger than the route's max_body");
			return;
		}
		httpclient_body_add(f->hc, f->chunk, n);
		if (done)
			httpclient_body_end(f->hc);
	}
	if (!done) {
		bool waiting = evbuffer_get_length(in) != 0; /* the upstream is behind, not the client */
		if (!waiting && conn_input_eof(r->conn)) {
			request_refused(f, 400, "the client closed before the end of the request body");
			return;
		}
		/* raw_request: cutover stopped reading until the tunnel starts */
		if (conn_body_too_slow(r, waiting || f->raw_request)) {
			body_too_slow(r);
			request_refused(f, 408, "request body slower than limits.min_body_rate");
			return;
		}
	}
	forward_track_state(f);
}

static void client_connected(void *arg)
{
	struct forward *f = arg;
	forward_track_state(f);
	pump_request(f);
}

static void client_writable(void *arg)
{
	pump_request(arg);
}

static void client_head(void *arg, const struct http1_head *h)
{
	struct forward *f = arg;
	struct request *r = f->r;
	struct conn *c = r->conn;
	bool sent = httpclient_request_sent(f->hc);
	r->status = h->status;
	f->answering = true;
	f->answer_at = evbuffer_get_length(conn_output(c));
	f->answer_out = r->bytes_out;
	bool delimited = h->framing != HTTP1_BODY_EOF;
	f->chunked_out = !r->http10 &&
			 (h->framing == HTTP1_BODY_CHUNKED || h->framing == HTTP1_BODY_EOF);
	/* An answer that arrives before the request body ended leaves unread
	 * bytes on the client side: that connection cannot go on. */
	bool keep_alive = r->head.keep_alive && !conn_closing_after(c) && sent &&
			  (delimited || f->chunked_out) &&
			  !(r->http10 && h->framing == HTTP1_BODY_CHUNKED);
	if (!keep_alive)
		conn_close_after(c);
	/* A large body that needs no re-framing, between plain sockets: the
	 * upstream is no longer read into memory once its head and what came
	 * with it are out. */
	uint64_t splice_min = r->cfg->limits->splice_min;
	bool large = h->framing == HTTP1_BODY_LENGTH ? h->content_length >= splice_min
						      : h->framing == HTTP1_BODY_EOF && !f->chunked_out;
	f->raw_response = splice_min && large && sent && conn_plain_fd(c) >= 0 &&
			  httpclient_plain_fd(f->hc) >= 0;
	if (f->raw_response)
		httpclient_body_hold(f->hc, true);
	struct evbuffer *out = conn_output(c);
	size_t before = evbuffer_get_length(out);
	if (!rewrite_response_head(out, h, f->chunked_out, keep_alive, r->http10)) {
		f->answering = false;
		forward_failed(f, 502, "out of memory");
		return;
	}
	r->bytes_out += evbuffer_get_length(out) - before;
	forward_track_state(f);
	pump_response(f);
}

static void client_body(void *arg)
{
	pump_response(arg);
}

static void response_done(struct forward *f)
{
	struct request *r = f->r;
	clock_gettime(CLOCK_MONOTONIC, &r->upstream_end);
	if (!httpclient_request_sent(f->hc))
		conn_close_after(r->conn);
	conn_request_done(r);
}

/* Moves answer bytes to the client, as much as its output budget allows. */
static void pump_response(struct forward *f)
{
	struct request *r = f->r;
	if (f->tunnel)
		return;
	struct evbuffer *out = conn_output(r->conn);
	size_t cap = r->cfg->limits->buffer_bytes;
	size_t queued = evbuffer_get_length(out);
	size_t moved;
	enum httpclient_move m = httpclient_body_move(f->hc, out, queued < cap ? cap - queued : 0,
						      f->chunked_out, &moved);
	r->bytes_out += moved;
	conn_flush(r->conn);
	if (m == HTTPCLIENT_DONE)
		response_done(f);
	else if (m == HTTPCLIENT_ERROR)
		forward_failed(f, 502, httpclient_error(f->hc));
	else if (f->raw_response && !evbuffer_get_length(out))
		response_tunnel(f); /* else the client's write callback comes back */
}

static const struct httpclient_ops forward_client_ops = {
	.connected = client_connected,
	.writable = client_writable,
	.head = client_head,
	.body = client_body,
	.failed = client_failed,
};

/* Admitted: the head goes out rewritten, then the body as it arrives. */
static void forward_start(struct request *r, enum upstream_id id)
{
	struct conn *c = r->conn;
	struct conn_env *env = conn_env(c);
	const struct upstream_conf *u = &r->cfg->upstream[id];
	struct forward *f = calloc(1, sizeof(*f));
	struct evbuffer *head = evbuffer_new();
	if (!f || !head || (r->head.framing == HTTP1_BODY_CHUNKED && !(f->chunk = evbuffer_new()))) {
		if (head)
			evbuffer_free(head);
		if (f && f->chunk)
			evbuffer_free(f->chunk);
		free(f);
		gate_slot_free(env->gate, id);
		conn_respond_error(r, 503, "out of memory");
		return;
	}
	f->r = r;
	f->id = id;
	r->action = &forward_action;
	r->action_state = f;
	r->upstream = u->name;
	if (!rewrite_request_head(head, &r->head, u, r->cfg->rewrite, conn_peer(c), conn_tls(c))) {
		evbuffer_free(head);
		conn_respond_error(r, 503, "out of memory"); /* frees f and its slot */
		return;
	}
	conn_consume_head(r);
	struct httpclient_request req = {
		.head = head,
		.body = r->head.framing == HTTP1_BODY_LENGTH    ? HTTPCLIENT_BODY_LENGTH
			: r->head.framing == HTTP1_BODY_CHUNKED ? HTTPCLIENT_BODY_CHUNKED
								: HTTPCLIENT_BODY_NONE,
		.head_method = r->head_method,
		.read_ahead = true,
		.buffer_bytes = r->cfg->limits->buffer_bytes,
		.project = r->project,
		.stats = env->stats,
	};
	f->req_remaining = req.body == HTTPCLIENT_BODY_LENGTH ? r->head.content_length : 0;
	const char *why = NULL;
	f->hc = httpclient_start(env->pools[id], &req, &forward_client_ops, f, &why);
	if (!f->hc) {
		char label[700];
		request_label(r, label, sizeof(label));
		log_warn("upstream %s: %s: %s", u->name, label, why);
		conn_respond_error(r, 502, why);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &r->upstream_start);
	/* A large body from a plain socket: what the input holds goes through
	 * the buffers, the rest by tunnel (request_tunnel()). */
	uint64_t splice_min = r->cfg->limits->splice_min;
	f->raw_request = splice_min && f->req_remaining >= splice_min && conn_plain_fd(c) >= 0;
	if (f->raw_request)
		conn_reading(c, false);
	send_continue(r);
	if (!httpclient_ready(f->hc)) {
		conn_set_state(c, CONN_CONNECT); /* the body waits in the client's input */
		return;
	}
	forward_track_state(f);
	pump_request(f);
}

/* Refusals are logged at most once a second per worker, with how many there
 * were since the last line: a flood of 503s must not flood the log too. */
static _Thread_local struct log_every refusals;

static void log_refusal(const struct request *r, const char *why)
{
	const struct upstream_conf *u = &r->cfg->upstream[r->upstream_id];
	unsigned long n;
	if (!log_every_due(&refusals, 1.0, &n))
		return;
	char label[700];
	request_label(r, label, sizeof(label));
	log_warn("upstream %s: admission refused %lu request%s with 503 since the last such line "
		 "(max_active %u, queue %u, queue_timeout %.1fs); latest %s: %s",
		 u->name, n, n == 1 ? "" : "s", u->max_active, u->queue, u->queue_timeout, label,
		 why);
}

/* 503 + Retry-After: the upstream's slots and queue are full. */
static void busy(struct request *r, const char *why)
{
	const struct upstream_conf *u = &r->cfg->upstream[r->upstream_id];
	log_refusal(r, why);
	char extra[64];
	snprintf(extra, sizeof(extra), "Retry-After: %d\r\n", (int)u->queue_timeout + 1);
	conn_consume_head(r);
	static const char body[] = "503 Service Unavailable: the upstream is busy, retry later\n";
	struct response resp = {
		.status = 503,
		.body = body,
		.body_len = sizeof(body) - 1,
		.extra_headers = extra,
	};
	conn_respond(r, &resp, r->head.framing != HTTP1_BODY_NONE);
}

void forward_busy(struct request *r)
{
	busy(r, "waited queue_timeout for a slot");
}

/* ---- the request body, read before admission ---- */

/* 1 once the body is read as far as body_buffer asks: all of it, or
 * body_buffer bytes (then it streams, as HAProxy's http-buffer-request);
 * 0 while more is to come; -1 when its chunked framing is bad. */
static int body_buffered(struct request *r)
{
	if (r->body_buffered || r->head.framing == HTTP1_BODY_NONE || !r->cfg->limits->body_buffer)
		return 1;
	struct evbuffer *in = conn_input(r->conn);
	size_t have = evbuffer_get_length(in), want = r->cfg->limits->body_buffer;
	size_t head = r->head_consumed ? 0 : r->head.head_len;
	have = have > head ? have - head : 0;
	if (r->head.framing == HTTP1_BODY_LENGTH)
		return have >= (r->head.content_length < want ? r->head.content_length : want);
	if (have >= want)
		return 1;
	/* Chunked: the framing is checked as it arrives (a copy of the parser,
	 * which still has to move it), so the end is seen and bad framing
	 * answered at once. */
	if (!r->body_scan.ll.data)
		http1_parser_copy(&r->body_scan, &r->parser);
	bool done;
	long used = http1_chunked_scan(&r->body_scan, in, head + r->body_scanned, &done);
	if (used < 0)
		return -1;
	r->body_scanned += (size_t)used;
	return done;
}

static void buffering_readable(struct request *r)
{
	int buffered = body_buffered(r);
	if (buffered < 0) {
		conn_respond_error(r, 400, r->body_scan.error_reason);
		return;
	}
	if (!buffered && conn_input_eof(r->conn)) {
		conn_respond_error(r, 400, "the client closed before the end of the request body");
		return;
	}
	if (!buffered) {
		if (conn_body_too_slow(r, false)) {
			body_too_slow(r);
			conn_respond_error(r, 408, "request body slower than limits.min_body_rate");
		}
		return;
	}
	/* Read as far as it will be: it asks for a slot, under the mode now. */
	r->body_buffered = true;
	r->action = NULL;
	conn_head_refresh(r);
	r->queue_over(&r->wait, false);
}

static void buffering_writable(struct request *r)
{
	(void)r;
}

static const struct conn_action buffering_action = {
	.readable = buffering_readable,
	.writable = buffering_writable,
	.free = NULL,
};

void forward_request(struct request *r, enum upstream_id id, gate_release_fn queue_over)
{
	r->upstream_id = id;
	r->queue_over = queue_over;
	int buffered = body_buffered(r);
	if (buffered < 0) {
		conn_respond_error(r, 400, r->body_scan.error_reason);
		return;
	}
	if (!buffered) {
		/* A slow device dribbles its body into our buffer, not into a slot. */
		r->action = &buffering_action;
		conn_set_state(r->conn, CONN_BUFFER_BODY);
		send_continue(r);
		return;
	}
	r->body_buffered = true;
	switch (gate_admit(conn_env(r->conn)->gate, id, &r->wait, queue_over)) {
	case GATE_ADMITTED:
		forward_start(r, id);
		return;
	case GATE_QUEUED:
		/* More bytes may arrive behind the head while it waits. */
		if (conn_keep_head(r) < 0) {
			gate_leave(conn_env(r->conn)->gate, &r->wait);
			conn_respond_error(r, 503, "out of memory");
			return;
		}
		conn_set_state(r->conn, CONN_QUEUED);
		return;
	case GATE_FULL:
		busy(r, "the queue is full");
		return;
	}
}
