/* tests for proxy/httpclient.c: one exchange with an upstream over its pool,
 * against a scripted upstream on a loopback port served by the test's own
 * event base. The upstream checks nothing itself: it records the exact
 * bytes of each request (head and body) for the test to compare, and
 * answers from a script, in pieces written 20 ms apart, then keeps the
 * connection, half-closes it (FIN), or half-closes it on the request
 * without answering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "config.h"
#include "dns.h"
#include "httpclient.h"
#include "evloop.h"
#include "project.h"
#include "stats.h"
#include "upstream.h"

#define OLD UPSTREAM_OLD
#define STEPS 8
#define PIECES 6
#define CONNS 8
#define BUFFER_BYTES 65536
#define LOOP_LIMIT 5.0          /* seconds: a bug must not hang the suite */

/* ---- the scripted upstream ---- */

struct step {
	const char *expect;          /* the request, exactly (head and body); NULL ends */
	const char *answer[PIECES];  /* written 20 ms apart; none: never answers */
	bool fin_after;              /* half-close after the last piece */
	bool fin_on_request;         /* half-close once the request is in, answer nothing */
};

/* Step I of F's upstream script: the request EXPECT, then the answer pieces
 * (NULL: none). */
#define SCRIPT(f, i, expect_, ...) \
	((f)->up.steps[i] = (struct step){ .expect = (expect_), .answer = { __VA_ARGS__ } })

struct srv_conn {
	struct upstream *u;
	int fd;
	struct event *rd, *wr;
	int recv_step;               /* the step whose request is arriving, -1 none */
	int send_step;               /* the step being answered, -1 none */
	int piece;
	bool peer_closed;            /* the client closed the connection */
};

struct upstream {
	struct event_base *base;
	int lfd;
	uint16_t port;
	struct event *accept_ev;
	struct step steps[STEPS];
	int next_step;
	struct {
		char buf[8192];
		size_t len;
		int conn;            /* accepted connection it arrived on */
		bool complete;
	} got[STEPS];
	char unexpected[512];        /* bytes beyond the script */
	size_t n_unexpected;
	struct srv_conn conns[CONNS];
	int accepts;
	bool any_fin;                /* a FIN was sent on some connection */
};

static void srv_send_all(struct srv_conn *c, const char *s)
{
	size_t len = strlen(s), off = 0;
	while (off < len) {
		ssize_t n = send(c->fd, s + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* the client is gone: the test sees it */
		off += (size_t)n;
	}
}

static void srv_fin(struct srv_conn *c)
{
	shutdown(c->fd, SHUT_WR);
	c->u->any_fin = true;
}

static void srv_next_piece(struct srv_conn *c)
{
	const struct step *s = &c->u->steps[c->send_step];
	srv_send_all(c, s->answer[c->piece]);
	c->piece++;
	if (c->piece < PIECES && s->answer[c->piece]) {
		struct timeval tv = { 0, 20000 };
		evtimer_add(c->wr, &tv);
		return;
	}
	c->send_step = -1;
	if (s->fin_after)
		srv_fin(c);
}

static void srv_on_piece_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	srv_next_piece(arg);
}

static void srv_request_in(struct srv_conn *c, int step)
{
	const struct step *s = &c->u->steps[step];
	c->u->got[step].complete = true;
	if (s->fin_on_request) {
		srv_fin(c);
		return;
	}
	if (!s->answer[0])
		return;
	c->send_step = step;
	c->piece = 0;
	srv_next_piece(c);
}

static void srv_close(struct srv_conn *c)
{
	if (c->rd)
		event_free(c->rd);
	if (c->wr)
		event_free(c->wr);
	if (c->fd >= 0)
		close(c->fd);
	c->rd = c->wr = NULL;
	c->fd = -1;
}

static void srv_on_read(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct srv_conn *c = arg;
	struct upstream *u = c->u;
	char buf[4096];
	ssize_t n = recv(fd, buf, sizeof buf, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		c->peer_closed = true;
		srv_close(c);
		return;
	}
	const char *p = buf;
	size_t left = (size_t)n;
	while (left) {
		if (c->recv_step < 0) {
			if (u->next_step >= STEPS || !u->steps[u->next_step].expect) {
				size_t room = sizeof u->unexpected - 1 - u->n_unexpected;
				size_t k = left < room ? left : room;
				memcpy(u->unexpected + u->n_unexpected, p, k);
				u->n_unexpected += k;
				u->unexpected[u->n_unexpected] = '\0';
				return;
			}
			c->recv_step = u->next_step++;
			u->got[c->recv_step].conn = (int)(c - u->conns);
		}
		int i = c->recv_step;
		size_t want = strlen(u->steps[i].expect);
		assert_true(want < sizeof u->got[i].buf);
		size_t take = want - u->got[i].len < left ? want - u->got[i].len : left;
		memcpy(u->got[i].buf + u->got[i].len, p, take);
		u->got[i].len += take;
		u->got[i].buf[u->got[i].len] = '\0';
		p += take;
		left -= take;
		if (u->got[i].len == want) {
			c->recv_step = -1;
			srv_request_in(c, i);
		}
	}
}

static void srv_on_accept(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct upstream *u = arg;
	int s = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (s < 0)
		return;
	if (u->accepts >= CONNS) {
		close(s);
		return;
	}
	struct srv_conn *c = &u->conns[u->accepts++];
	c->u = u;
	c->fd = s;
	c->recv_step = c->send_step = -1;
	c->rd = event_new(u->base, s, EV_READ | EV_PERSIST, srv_on_read, c);
	c->wr = evtimer_new(u->base, srv_on_piece_timer, c);
	assert_non_null(c->rd);
	assert_non_null(c->wr);
	event_add(c->rd, NULL);
}

/* A loopback socket bound to an ephemeral port; listening when LISTEN. */
static int loopback_socket(bool listening, uint16_t *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in sin = { .sin_family = AF_INET };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	if (listening)
		assert_int_equal(listen(fd, 16), 0);
	socklen_t len = sizeof sin;
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static void upstream_start(struct upstream *u, struct event_base *base)
{
	u->base = base;
	u->lfd = loopback_socket(true, &u->port);
	u->accept_ev = event_new(base, u->lfd, EV_READ | EV_PERSIST, srv_on_accept, u);
	assert_non_null(u->accept_ev);
	event_add(u->accept_ev, NULL);
	for (int i = 0; i < CONNS; i++)
		u->conns[i].fd = -1;
}

static void upstream_stop(struct upstream *u)
{
	for (int i = 0; i < u->accepts; i++)
		srv_close(&u->conns[i]);
	event_free(u->accept_ev);
	close(u->lfd);
}

/* ---- the caller of httpclient ---- */

enum free_at { FREE_NEVER, FREE_IN_HEAD, FREE_AT_END };

struct caller {
	struct fx *f;
	struct httpclient *hc;
	size_t step;                 /* max per httpclient_body_move() */
	bool chunked;                /* ask for the body re-framed as chunks */
	enum free_at free_at;        /* httpclient_free() inside a callback */
	struct evbuffer *body;       /* response body moved so far */
	struct evbuffer *push;       /* request body left to push (streamed bodies) */
	size_t push_step;
	bool hold_end;               /* never call httpclient_body_end() */
	bool one_move;               /* one httpclient_body_move() per callback */
	bool push_ended;
	struct project *project;
	/* What happened. */
	int connected, writable, heads, bodies, failed;
	bool ready_when_connected;
	size_t room_when_connected;
	int status;
	enum http1_framing framing;
	uint64_t content_length;
	bool keep_alive;
	int fail_status;
	char why[512];
	bool finished;               /* body_move said DONE or ERROR */
	enum httpclient_move end;
	char error[512];
	size_t largest_move;
	int64_t in_flight_at_head, in_flight_at_end;
	int64_t project_at_head, project_at_end;
	bool upstream_fin_at_end;    /* a FIN had been sent when the end came */
};

struct fx {
	struct event_base *base;
	struct upstream up;
	struct dns_resolver *dns;
	struct upstream_conf conf;
	struct stats stats;
	struct upstream_pool *pool;
	struct upstream_conf dead_conf;      /* a port nothing listens on */
	struct upstream_pool *dead_pool;
	uint16_t dead_port;
	struct caller c[3];
	char big[2048];                      /* a body larger than one piece */
	char first_piece[1024];              /* a piece built at run time */
};

static int64_t in_flight(const struct caller *c)
{
	return c->f->stats.in_flight[OLD];
}

static int64_t project_count(const struct caller *c)
{
	return c->project ? project_in_flight(c->project, OLD) : 0;
}

static void caller_end(struct caller *c)
{
	c->in_flight_at_end = in_flight(c);
	c->project_at_end = project_count(c);
	c->upstream_fin_at_end = c->f->up.any_fin;
	if (c->free_at == FREE_AT_END) {
		httpclient_free(c->hc);
		c->hc = NULL;
	}
}

/* Moves what waits, STEP bytes a call, until the end or no progress (no
 * byte moved and the input unchanged: chunk framing alone is progress);
 * with one_move, a single call. */
static void pump(struct caller *c)
{
	if (!c->hc || c->finished)
		return;
	for (int i = 0; i < 1000000; i++) {
		struct bufferevent *bev = httpclient_bufferevent(c->hc);
		size_t in_before = bev ? evbuffer_get_length(bufferevent_get_input(bev)) : 0;
		size_t moved = 12345; /* must be set on every path */
		enum httpclient_move m = httpclient_body_move(c->hc, c->body, c->step, c->chunked,
							      &moved);
		if (moved > c->largest_move)
			c->largest_move = moved;
		if (m != HTTPCLIENT_MORE) {
			c->finished = true;
			c->end = m;
			const char *e = httpclient_error(c->hc);
			snprintf(c->error, sizeof c->error, "%s", e ? e : "");
			caller_end(c);
			return;
		}
		bev = httpclient_bufferevent(c->hc);
		size_t in_after = bev ? evbuffer_get_length(bufferevent_get_input(bev)) : 0;
		if ((moved == 0 && in_after == in_before) || c->one_move)
			return;
	}
	fail_msg("httpclient_body_move() never stops");
}

/* Pushes the streamed request body as far as httpclient_body_room() lets. */
static void push(struct caller *c)
{
	if (!c->hc || !c->push || c->push_ended || c->failed)
		return;
	for (;;) {
		size_t n = evbuffer_get_length(c->push);
		size_t room = httpclient_body_room(c->hc);
		if (n > room)
			n = room;
		if (n > c->push_step)
			n = c->push_step;
		if (n == 0)
			break;
		httpclient_body_add(c->hc, c->push, n);
	}
	if (evbuffer_get_length(c->push) == 0 && !c->hold_end) {
		httpclient_body_end(c->hc);
		c->push_ended = true;
	}
}

static void on_connected(void *arg)
{
	struct caller *c = arg;
	c->connected++;
	c->ready_when_connected = httpclient_ready(c->hc);
	c->room_when_connected = httpclient_body_room(c->hc);
	push(c);
}

static void on_writable(void *arg)
{
	struct caller *c = arg;
	c->writable++;
	push(c);
}

static void on_head(void *arg, const struct http1_head *h)
{
	struct caller *c = arg;
	c->heads++;
	c->status = h->status;
	c->framing = h->framing;
	c->content_length = h->content_length;
	c->keep_alive = h->keep_alive;
	c->in_flight_at_head = in_flight(c);
	c->project_at_head = project_count(c);
	assert_int_equal(httpclient_response_framing(c->hc), h->framing);
	if (c->free_at == FREE_IN_HEAD) {
		httpclient_free(c->hc);
		c->hc = NULL;
		return;
	}
	pump(c); /* bytes that came with the head get no body callback */
}

static void on_body(void *arg)
{
	struct caller *c = arg;
	c->bodies++;
	pump(c);
}

static void on_failed(void *arg, int status, const char *why)
{
	struct caller *c = arg;
	c->failed++;
	c->fail_status = status;
	snprintf(c->why, sizeof c->why, "%s", why ? why : "(null)");
	caller_end(c);
}

static const struct httpclient_ops ops = {
	.connected = on_connected,
	.writable = on_writable,
	.head = on_head,
	.body = on_body,
	.failed = on_failed,
};

static struct evbuffer *bytes(const char *s)
{
	struct evbuffer *b = evbuffer_new();
	assert_non_null(b);
	evbuffer_add(b, s, strlen(s));
	return b;
}

/* Starts REQ (its head given as text) for caller C; pushes what it can at
 * once (a pooled connection is ready when httpclient_start() returns). */
static void start(struct caller *c, struct upstream_pool *pool, const char *head,
		  struct httpclient_request req)
{
	req.head = bytes(head);
	if (!req.buffer_bytes)
		req.buffer_bytes = BUFFER_BYTES;
	const char *why = NULL;
	c->hc = httpclient_start(pool, &req, &ops, c, &why);
	if (!c->hc)
		fail_msg("httpclient_start: %s", why ? why : "?");
	/* Callbacks never run before httpclient_start() returns. */
	assert_int_equal(c->connected + c->writable + c->heads + c->failed, 0);
	if (httpclient_ready(c->hc))
		push(c);
}

/* Runs the loop until DONE(ARG), at most LOOP_LIMIT seconds. */
static bool run_until(struct fx *f, bool (*done)(const void *), const void *arg)
{
	return evloop_run(f->base, LOOP_LIMIT, done, arg);
}

static bool caller_over(const void *arg)
{
	const struct caller *c = arg;
	return c->finished || c->failed;
}

static bool caller_has_head(const void *arg)
{
	const struct caller *c = arg;
	return c->heads > 0 || c->failed;
}

static bool caller_has_body_call(const void *arg)
{
	const struct caller *c = arg;
	return c->bodies > 0 || c->failed;
}

static bool peer_closed(const void *arg)
{
	return ((const struct srv_conn *)arg)->peer_closed;
}

static void run_exchange(struct fx *f, struct caller *c)
{
	if (!run_until(f, caller_over, c))
		fail_msg("the exchange did not end within %.0f s (heads %d)", LOOP_LIMIT, c->heads);
}

/* Runs the loop for SECONDS. */
static void run_for(struct fx *f, double seconds)
{
	evloop_run(f->base, seconds, NULL, NULL);
}

/* The connection the upstream accepted as number I is closed by the client. */
static void assert_client_closed(struct fx *f, int i)
{
	assert_true(i < f->up.accepts);
	if (!run_until(f, peer_closed, &f->up.conns[i]))
		fail_msg("connection %d is still open (pooled?)", i);
}

static void assert_request(struct fx *f, int i)
{
	assert_true(f->up.got[i].complete);
	assert_string_equal(f->up.got[i].buf, f->up.steps[i].expect);
}

static char *body_string(const struct caller *c)
{
	static char s[8192];
	size_t n = evbuffer_get_length(c->body);
	assert_true(n < sizeof s);
	evbuffer_copyout(c->body, s, n);
	s[n] = '\0';
	return s;
}

/* Decodes chunked TEXT strictly (hex size CRLF, data CRLF, ..., 0 CRLF CRLF
 * and nothing after) into OUT; false when TEXT is not that. */
static bool dechunk(const char *text, char *out, size_t size)
{
	size_t len = strlen(text), i = 0, o = 0;
	for (;;) {
		size_t n = 0, digits = 0;
		while (i < len && isxdigit((unsigned char)text[i])) {
			char d = (char)tolower((unsigned char)text[i++]);
			n = n * 16 + (size_t)(d <= '9' ? d - '0' : d - 'a' + 10);
			digits++;
		}
		if (!digits || len - i < 2 || memcmp(text + i, "\r\n", 2) != 0)
			return false;
		i += 2;
		if (n == 0) {
			out[o] = '\0';
			return len - i == 2 && memcmp(text + i, "\r\n", 2) == 0;
		}
		if (len - i < n + 2 || o + n >= size || memcmp(text + i + n, "\r\n", 2) != 0)
			return false;
		memcpy(out + o, text + i, n);
		o += n;
		i += n + 2;
	}
}

static void assert_chunked(const char *text, const char *want)
{
	static char decoded[8192];
	if (!dechunk(text, decoded, sizeof decoded))
		fail_msg("not a valid chunked body:\n%s", text);
	assert_string_equal(decoded, want);
	size_t len = strlen(text);
	assert_true(len >= 5 && strcmp(text + len - 5, "0\r\n\r\n") == 0);
}

/* ---- fixture ---- */

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	assert_non_null(f);
	f->base = event_base_new();
	assert_non_null(f->base);
	upstream_start(&f->up, f->base);

	/* IP literals only: the resolver never asks a server. */
	static char server[] = "127.0.0.1:9";
	static char *servers[] = { server };
	struct dns_conf dc = { .servers = servers, .n_servers = 1, .min_ttl = 1, .max_ttl = 300 };
	char why[256] = "";
	f->dns = dns_resolver_new(f->base, &dc, why, sizeof why);
	if (!f->dns)
		fail_msg("dns_resolver_new: %s", why);

	f->conf = (struct upstream_conf){
		.name = "old",
		.defined = true,
		.host = "127.0.0.1",
		.port = f->up.port,
		.host_header = "127.0.0.1",
		.connect_timeout = 2,
		.read_timeout = 2,
		.send_timeout = 2,
		.idle_timeout = 10,
		.pool_size = 4,
	};
	f->conf.dns = dns_follow(f->dns, "127.0.0.1", f->up.port);
	assert_non_null(f->conf.dns);
	assert_non_null(dns_current(f->conf.dns));
	f->pool = upstream_pool_new(f->base, &f->conf, OLD, &f->stats);
	assert_non_null(f->pool);

	int dead = loopback_socket(false, &f->dead_port);
	close(dead); /* bound, never listening, now free: connections are refused */
	f->dead_conf = f->conf;
	f->dead_conf.port = f->dead_port;
	f->dead_conf.dns = dns_follow(f->dns, "127.0.0.1", f->dead_port);
	f->dead_pool = upstream_pool_new(f->base, &f->dead_conf, OLD, &f->stats);
	assert_non_null(f->dead_pool);

	for (int i = 0; i < 3; i++) {
		f->c[i].f = f;
		f->c[i].step = 7;
		f->c[i].push_step = 5;
		f->c[i].body = evbuffer_new();
		assert_non_null(f->c[i].body);
	}
	for (size_t i = 0; i < sizeof f->big - 1; i++)
		f->big[i] = (char)('a' + i % 26);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	for (int i = 0; i < 3; i++) {
		httpclient_free(f->c[i].hc);
		evbuffer_free(f->c[i].body);
		if (f->c[i].push)
			evbuffer_free(f->c[i].push);
	}
	upstream_pool_free(f->pool);
	upstream_pool_free(f->dead_pool);
	dns_resolver_free(f->dns);
	upstream_stop(&f->up);
	event_base_free(f->base);
	free(f);
	return 0;
}

#define GET_ONE "GET /one HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
#define GET_TWO "GET /two HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
#define OK_HELLO "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
#define POST_HEAD "POST /up HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 12\r\n\r\n"
#define CHUNKED_POST_HEAD \
	"POST /up HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"

/* ---- response framing ---- */

/* A Content-Length body arriving in pieces, moved 7 bytes at a time, comes
 * out exactly; DONE at its end puts the connection back in the pool, and the
 * next exchange reuses it (one accept for two requests), ready at once. */
static void test_length_body_small_steps_then_pooled(void **state)
{
	struct fx *f = *state;
	char *answer = f->first_piece;
	snprintf(answer, sizeof f->first_piece,
		 "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nX-A: 1\r\n\r\n%.500s",
		 strlen(f->big), f->big);
	SCRIPT(f, 0, GET_ONE, answer, f->big + 500, NULL);
	SCRIPT(f, 1, GET_TWO, OK_HELLO);
	struct caller *c = &f->c[0];
	start(c, f->pool, GET_ONE, (struct httpclient_request){ 0 });
	assert_false(httpclient_ready(c->hc));          /* a new connection */
	assert_int_equal(httpclient_body_room(c->hc), 0);
	run_exchange(f, c);
	assert_request(f, 0);
	assert_int_equal(c->failed, 0);
	assert_int_equal(c->connected, 1);
	assert_int_equal(c->heads, 1);
	assert_int_equal(c->status, 200);
	assert_int_equal(c->framing, HTTP1_BODY_LENGTH);
	assert_int_equal(c->content_length, strlen(f->big));
	assert_true(c->keep_alive);
	assert_int_equal(c->end, HTTPCLIENT_DONE);
	assert_string_equal(body_string(c), f->big);
	assert_int_equal(c->largest_move, 7);
	char peer[32];
	snprintf(peer, sizeof peer, "127.0.0.1:%u", f->up.port);
	assert_string_equal(httpclient_peer(c->hc), peer);
	assert_int_equal(f->stats.pool_idle[OLD], 1);
	/* After DONE the exchange stays DONE. */
	size_t moved = 1;
	assert_int_equal(httpclient_body_move(c->hc, c->body, 7, false, &moved), HTTPCLIENT_DONE);
	assert_int_equal(moved, 0);

	struct caller *c2 = &f->c[1];
	start(c2, f->pool, GET_TWO, (struct httpclient_request){ 0 });
	assert_true(httpclient_ready(c2->hc));          /* the pooled connection */
	assert_true(httpclient_request_sent(c2->hc));
	assert_int_equal(f->stats.pool_idle[OLD], 0);
	run_exchange(f, c2);
	assert_request(f, 1);
	assert_int_equal(c2->connected, 0);             /* no new connection */
	assert_string_equal(body_string(c2), "hello");
	assert_int_equal(f->up.accepts, 1);
	assert_int_equal(f->up.got[1].conn, 0);
	assert_int_equal(f->stats.pool_idle[OLD], 1);
	assert_int_equal(f->up.n_unexpected, 0);
}

#define CHUNKED_HEAD "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"

static void script_chunked(struct fx *f)
{
	SCRIPT(f, 0, GET_ONE,
	       CHUNKED_HEAD "5\r\nhello\r\n", "10\r\n, chunked world!\r\n",
	       "1;ext=1\r\n.\r\n0\r\nX-Trailer: t\r\n\r\n");
	SCRIPT(f, 1, GET_TWO, OK_HELLO);
}

/* A chunked answer moved with chunked=false comes out decoded (trailers
 * dropped); its end puts the connection back in the pool. */
static void test_chunked_decoded(void **state)
{
	struct fx *f = *state;
	script_chunked(f);
	struct caller *c = &f->c[0];
	start(c, f->pool, GET_ONE, (struct httpclient_request){ 0 });
	run_exchange(f, c);
	assert_int_equal(c->framing, HTTP1_BODY_CHUNKED);
	assert_int_equal(c->end, HTTPCLIENT_DONE);
	assert_string_equal(body_string(c), "hello, chunked world!.");
	assert_true(c->largest_move <= 7);
	assert_int_equal(f->stats.pool_idle[OLD], 1);
	struct caller *c2 = &f->c[1];
	start(c2, f->pool, GET_TWO, (struct httpclient_request){ 0 });
	run_exchange(f, c2);
	assert_string_equal(body_string(c2), "hello");
	assert_int_equal(f->up.accepts, 1);
}

/* With chunked=true the same answer comes out as valid chunked framing,
 * ending with the last chunk, that decodes to the same bytes. */
static void test_chunked_reframed(void **state)
{
	struct fx *f = *state;
	script_chunked(f);
	struct caller *c = &f->c[0];
	c->chunked = true;
	start(c, f->pool, GET_ONE, (struct httpclient_request){ 0 });
	run_exchange(f, c);
	assert_int_equal(c->end, HTTPCLIENT_DONE);
	assert_chunked(body_string(c), "hello, chunked world!.");
	assert_int_equal(f->stats.pool_idle[OLD], 1);
}

/* No Content-Length, no chunked: the body ends when the upstream closes.
 * DONE comes only after the close; re-framed as chunks it ends with the last
 * chunk; the connection is not pooled. */
static void test_close_delimited_reframed(void **state)
{
	struct fx *f = *state;
	SCRIPT(f, 0, GET_ONE,
	       "HTTP/1.1 200 OK\r\n\r\nfirst piece, ", "second piece, ", "last");
	f->up.steps[0].fin_after = true;
	struct caller *c = &f->c[0];
	c->chunked = true;
	start(c, f->pool, GET_ONE, (struct httpclient_request){ 0 });
	run_exchange(f, c);
	assert_int_equal(c->framing, HTTP1_BODY_EOF);
	assert_false(c->keep_alive);
	assert_int_equal(c->end, HTTPCLIENT_DONE);
	assert_true(c->upstream_fin_at_end);
	assert_chunked(body_string(c), "first piece, second piece, last");
	assert_int_equal(f->stats.pool_idle[OLD], 0);
	assert_client_closed(f, 0);
}

/* The same, decoded: the raw bytes. */
static void test_close_delimited_raw(void **state)
{
	struct fx *f = *state;
	SCRIPT(f, 0, GET_ONE,
	       "HTTP/1.1 200 OK\r\n\r\nfirst piece, ", "last");
	f->up.steps[0].fin_after = true;
	struct caller *c = &f->c[0];
	start(c, f->pool, GET_ONE, (struct httpclient_request){ 0 });
	run_exchange(f, c);
	assert_int_equal(c->end, HTTPCLIENT_DONE);
	assert_true(c->upstream_fin_at_end);
	assert_string_equal(body_string(c), "first piece, last");
	assert_true(c->largest_move <= 7);
	assert_int_equal(f->stats.pool_idle[OLD], 0);
}

/* A Content-Length answer with "Connection: close" is complete but its
 * connection is not pooled. */
static void test_connection_close_not_pooled(void **state)
{
	struct fx *f = *state;
	SCRIPT(f, 0, GET_ONE,
	       "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello");
	struct caller *c = &f->c[0];
	start(c, f->pool, GET_ONE, (struct httpclient_request){ 0 });
	run_exchange(f, c);
	assert_int_equal(c->end, HTTPCLIENT_DONE);
	assert_string_equal(body_string(c), "hello");
	assert_int_equal(f->stats.pool_idle[OLD], 0);
	assert_client_closed(f, 0);
}

/* A complete answer followed by the upstream's FIN before the caller moved
 * it: DONE, but the closed connection is not pooled. */
static void test_complete_answer_then_close_not_pooled(void **state)
{
	struct fx *f = *state;
	SCRIPT(f, 0, GET_ONE, OK_HELLO);
	f->up.steps[0].fin_after = true;
	struct caller *c = &f->c[0];
	c->step = 0;                                    /* move nothing until the FIN is seen */
	start(c, f->pool, GET_ONE, (struct httpclient_request){ 0 });
	assert_true(run_until(f, caller_has_body_call, c));
	assert_false(c->finished);
	c->step = 7;
	pump(c);
	assert_int_equal(c->end, HTTPCLIENT_DONE);
	assert_string_equal(body_string(c), "hello");
	assert_int_equal(f->stats.pool_idle[OLD], 0);
	assert_client_closed(f, 0);
}

/* An answer that comes before the pushed body was all sent (an early 413)
 * ends the exchange, but the connection, with the upstream still expecting
 * body bytes, is not pooled; later pushes are ignored. */
static void test_early_answer_not_pooled(void **state)
{
	struct fx *f = *state;
	SCRIPT(f, 0, POST_HEAD "hello",
	       "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n");
	struct caller *c = &f->c[0];
	c->push = bytes("hello");
	c->hold_end = true;
	start(c, f->pool, POST_HEAD,
	      (struct httpclient_request){ .body = HTTPCLIENT_BODY_LENGTH });
	run_exchange(f, c);
	assert_int_equal(c->status, 413);
	assert_int_equal(c->end, HTTPCLIENT_DONE);
	assert_false(httpclient_request_sent(c->hc));
	assert_int_equal(f->stats.pool_idle[OLD], 0);
	assert_int_equal(httpclient_body_room(c->hc), 0);
	evbuffer_add(c->push, " more", 5);
	httpclient_body_add(c->hc, c->push, 5);
	httpclient_body_end(c->hc);
	assert_client_closed(f, 0);
	assert_int_equal(f->up.n_unexpected, 0);
}

/* ---- interim answers, HEAD ---- */

/* 100 Continue and 103 Early Hints are skipped (in their own read, or in the
 * same read as the final head): the head callback sees the final answer. */
static void test_interim_answers_skipped(void **state)
{
	struct fx *f = *state;
	SCRIPT(f, 0, GET_ONE,
	       "HTTP/1.1 100 Continue\r\n\r\n",
	       "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
	       "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok");
	struct caller *c = &f->c[0];
	start(c, f->pool, GET_ONE, (struct httpclient_request){ 0 });
	run_exchange(f, c);
	assert_int_equal(c->failed, 0);
	assert_int_equal(c->heads, 1);
	assert_int_equal(c->status, 201);
	assert_int_equal(c->end, HTTPCLIENT_DONE);
	assert_string_equal(body_string(c), "ok");
	assert_int_equal(f->stats.pool_idle[OLD], 1);
}

/* 101 Switching Protocols is not something a proxied exchange can go on
 * with: 502, and no head callback. */
static void test_101_fails_502(void **state)
{
	struct fx *f = *state;
	SCRIPT(f, 0, GET_ONE,
	       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	       "Connection: Upgrade\r\n\r\n");
	struct caller *c = &f->c[0];
	start(c, f->pool, GET_ONE, (struct httpclient_request){ 0 });
	run_exchange(f, c);
	assert_int_equal(c->failed, 1);
	assert_int_equal(c->heads, 0);
	assert_int_equal(c->fail_status, 502);
	assert_non_null(strstr(c->why, "switched protocols"));
	assert_int_equal(f->stats.pool_idle[OLD], 0);
	assert_client_closed(f, 0);
}

/* The answer to HEAD has no body whatever its Content-Length says: DONE at
 * once, and the connection serves the next request (no phantom body read
 * as the next answer). */
static void test_head_request_no_body(void **state)
{
	struct fx *f = *state;
	const char *head = "HEAD /one HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
	SCRIPT(f, 0, head, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
	SCRIPT(f, 1, GET_TWO, OK_HELLO);
	struct caller *c = &f->c[0];
	start(c, f->pool, head, (struct httpclient_request){ .head_method = true });
	run_exchange(f, c);
	assert_int_equal(c->status, 200);
	assert_int_equal(c->framing, HTTP1_BODY_NONE);
	assert_int_equal(c->end, HTTPCLIENT_DONE);
	assert_int_equal(evbuffer_get_length(c->body), 0);
	assert_int_equal(f->stats.pool_idle[OLD], 1);
	struct caller *c2 = &f->c[1];
	start(c2, f->pool, GET_TWO, (struct httpclient_request){ 0 });
	run_exchange(f, c2);
	assert_int_equal(c2->end, HTTPCLIENT_DONE);
	assert_string_equal(body_string(c2), "hello");
	assert_int_equal(f->up.accepts, 1);
}

/* ---- request bodies ---- */

/* A body in memory goes out right behind the head. */
static void test_body_in_memory(void **state)
{
	struct fx *f = *state;
	SCRIPT(f, 0, POST_HEAD "hello world!", OK_HELLO);
	struct caller *c = &f->c[0];
	start(c, f->pool, POST_HEAD,
	      (struct httpclient_request){ .body = HTTPCLIENT_BODY_MEMORY,
					   .body_bytes = bytes("hello world!") });
	assert_false(httpclient_request_sent(c->hc));   /* not before the connection */
	run_exchange(f, c);
	assert_request(f, 0);
	assert_true(httpclient_request_sent(c->hc));
	assert_int_equal(c->end, HTTPCLIENT_DONE);
	assert_int_equal(f->up.n_unexpected, 0);
}

/* A Content-Length body pushed by the caller: no room before the
 * connection is up; then pushed in 5-byte pieces as room allows; the read
 * side waits for httpclient_body_end(). */
static void test_body_length_pushed(void **state)
{
	struct fx *f = *state;
	SCRIPT(f, 0, POST_HEAD "hello world!", OK_HELLO);
	struct caller *c = &f->c[0];
	c->push = bytes("hello world!");
	start(c, f->pool, POST_HEAD,
	      (struct httpclient_request){ .body = HTTPCLIENT_BODY_LENGTH });
	assert_false(httpclient_ready(c->hc));
	assert_int_equal(httpclient_body_room(c->hc), 0);
	assert_false(httpclient_request_sent(c->hc));
	run_exchange(f, c);
	assert_request(f, 0);
	assert_int_equal(c->connected, 1);
	assert_true(c->ready_when_connected);
	assert_true(c->room_when_connected > 0);
	assert_true(c->push_ended);
	assert_true(httpclient_request_sent(c->hc));
	assert_int_equal(c->end, HTTPCLIENT_DONE);
	assert_int_equal(f->up.n_unexpected, 0);
	assert_int_equal(f->stats.pool_idle[OLD], 1);
}

/* A streamed body ended before the connection is up (an empty chunked
 * body) ends once the head went out: the last chunk follows the head. */
static void test_body_end_before_ready(void **state)
{
	struct fx *f = *state;
	SCRIPT(f, 0, CHUNKED_POST_HEAD "0\r\n\r\n", OK_HELLO);
	struct caller *c = &f->c[0];
	start(c, f->pool, CHUNKED_POST_HEAD,
	      (struct httpclient_request){ .body = HTTPCLIENT_BODY_CHUNKED });
	assert_false(httpclient_ready(c->hc));
	httpclient_body_end(c->hc);
	assert_false(httpclient_request_sent(c->hc));
	run_exchange(f, c);
	assert_request(f, 0);
	assert_true(httpclient_request_sent(c->hc));
	assert_int_equal(c->end, HTTPCLIENT_DONE);
	assert_int_equal(f->up.n_unexpected, 0);
}

/* A chunked body pushed by the caller reaches the upstream as valid chunked
 * framing, one chunk per push, ending with the last chunk. */
static void test_body_chunked_pushed(void **state)
{
	struct fx *f = *state;
	SCRIPT(f, 0, CHUNKED_POST_HEAD "5\r\nhello\r\n5\r\n worl\r\n2\r\nd!\r\n0\r\n\r\n",
	       OK_HELLO);
	struct caller *c = &f->c[0];
	c->push = bytes("hello world!");
	start(c, f->pool, CHUNKED_POST_HEAD,
	      (struct httpclient_request){ .body = HTTPCLIENT_BODY_CHUNKED });
	assert_int_equal(httpclient_body_room(c->hc), 0);
	run_exchange(f, c);
	assert_request(f, 0);
	assert_chunked(f->up.got[0].buf + strlen(CHUNKED_POST_HEAD), "hello world!");
	assert_int_equal(c->end, HTTPCLIENT_DONE);
	assert_int_equal(f->up.n_unexpected, 0);
}

/* ---- a dead pooled connection ---- */

/* The first exchange leaves its connection in the pool; the upstream takes
 * the second request on it and closes without answering (as a server does
 * whose keep-alive timer fired as the request came). Without a body to
 * lose, the request goes again on a new connection: the caller sees only
 * the answer. */
static void test_retry_on_dead_pooled_connection(void **state)
{
	struct fx *f = *state;
	SCRIPT(f, 0, GET_ONE, OK_HELLO);
	SCRIPT(f, 1, GET_TWO, NULL);
	f->up.steps[1].fin_on_request = true;
	SCRIPT(f, 2, GET_TWO, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nagain");
	struct caller *c = &f->c[0];
	start(c, f->pool, GET_ONE, (struct httpclient_request){ 0 });
	run_exchange(f, c);
	assert_int_equal(f->stats.pool_idle[OLD], 1);
	struct caller *c2 = &f->c[1];
	start(c2, f->pool, GET_TWO, (struct httpclient_request){ 0 });
	assert_true(httpclient_ready(c2->hc));          /* it took the pooled one */
	run_exchange(f, c2);
	assert_int_equal(c2->failed, 0);
	assert_int_equal(c2->end, HTTPCLIENT_DONE);
	assert_string_equal(body_string(c2), "again");
	assert_int_equal(f->up.accepts, 2);
	assert_request(f, 1);
	assert_request(f, 2);
	assert_int_equal(f->up.got[1].conn, 0);
	assert_int_equal(f->up.got[2].conn, 1);
	assert_int_equal(c2->connected, 1);             /* the new connection */
	assert_int_equal(f->up.n_unexpected, 0);
	assert_client_closed(f, 0);
}

/* A body in memory is kept for the retry: the second connection gets head
 * and body again. */
static void test_retry_resends_body_in_memory(void **state)
{
	struct fx *f = *state;
	SCRIPT(f, 0, GET_ONE, OK_HELLO);
	SCRIPT(f, 1, POST_HEAD "hello world!", NULL);
	f->up.steps[1].fin_on_request = true;
	SCRIPT(f, 2, POST_HEAD "hello world!", OK_HELLO);
	struct caller *c = &f->c[0];
	start(c, f->pool, GET_ONE, (struct httpclient_request){ 0 });
	run_exchange(f, c);
	struct caller *c2 = &f->c[1];
	start(c2, f->pool, POST_HEAD,
	      (struct httpclient_request){ .body = HTTPCLIENT_BODY_MEMORY,
					   .body_bytes = bytes("hello world!") });
	run_exchange(f, c2);
	assert_int_equal(c2->failed, 0);
	assert_int_equal(c2->end, HTTPCLIENT_DONE);
	assert_request(f, 2);
	assert_int_equal(f->up.got[2].conn, 1);
	assert_int_equal(f->up.accepts, 2);
}

/* A pushed body is gone once sent: the same dead connection fails the
 * exchange with 502 instead of sending it again. */
static void test_no_retry_with_pushed_body(void **state)
{
	struct fx *f = *state;
	SCRIPT(f, 0, GET_ONE, OK_HELLO);
	SCRIPT(f, 1, POST_HEAD "hello world!", NULL);
	f->up.steps[1].fin_on_request = true;
	struct caller *c = &f->c[0];
	start(c, f->pool, GET_ONE, (struct httpclient_request){ 0 });
	run_exchange(f, c);
	struct caller *c2 = &f->c[1];
	c2->push = bytes("hello world!");
	start(c2, f->pool, POST_HEAD,
	      (struct httpclient_request){ .body = HTTPCLIENT_BODY_LENGTH });
	assert_true(c2->push_ended);                    /* pooled: pushed at once */
	run_exchange(f, c2);
	assert_request(f, 1);
	assert_int_equal(c2->failed, 1);
	assert_int_equal(c2->fail_status, 502);
	assert_non_null(strstr(c2->why, "closed"));
	assert_int_equal(c2->heads, 0);
	run_for(f, 0.05);
	assert_int_equal(f->up.accepts, 1);
	assert_int_equal(f->up.n_unexpected, 0);
}

/* ---- timeouts ---- */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* An upstream that never answers: 504 once read_timeout passed after the
 * request went out. */
static void test_read_timeout_504(void **state)
{
	struct fx *f = *state;
	f->conf.read_timeout = 0.2;
	SCRIPT(f, 0, GET_ONE, NULL);
	struct caller *c = &f->c[0];
	double t0 = now();
	start(c, f->pool, GET_ONE, (struct httpclient_request){ 0 });
	run_exchange(f, c);
	double took = now() - t0;
	assert_request(f, 0);
	assert_int_equal(c->failed, 1);
	assert_int_equal(c->fail_status, 504);
	assert_true(took > 0.18 && took < 2);
	assert_int_equal(f->stats.pool_idle[OLD], 0);
	assert_client_closed(f, 0);
}

/* Nothing listens: 502, naming the address tried, reported from the loop. */
static void test_connect_refused_502_names_address(void **state)
{
	struct fx *f = *state;
	struct caller *c = &f->c[0];
	start(c, f->dead_pool, GET_ONE, (struct httpclient_request){ 0 });
	run_exchange(f, c);
	assert_int_equal(c->failed, 1);
	assert_int_equal(c->fail_status, 502);
	assert_int_equal(c->connected, 0);
	char addr[64];
	snprintf(addr, sizeof addr, "127.0.0.1:%u", f->dead_port);
	if (!strstr(c->why, addr))
		fail_msg("'%s' does not name %s", c->why, addr);
	assert_false(httpclient_tcp_up(c->hc));
	/* After a failure the exchange reports an error, not the end. */
	size_t moved;
	assert_int_equal(httpclient_body_move(c->hc, c->body, 7, false, &moved), HTTPCLIENT_ERROR);
	assert_non_null(httpclient_error(c->hc));
}

/* The deadline bounds the whole exchange whatever the read timeout. */
static void test_deadline_504(void **state)
{
	struct fx *f = *state;
	f->conf.read_timeout = 5;
	SCRIPT(f, 0, GET_ONE, NULL);
	struct caller *c = &f->c[0];
	double t0 = now();
	start(c, f->pool, GET_ONE, (struct httpclient_request){ .deadline = 0.3 });
	run_exchange(f, c);
	double took = now() - t0;
	assert_int_equal(c->failed, 1);
	assert_int_equal(c->fail_status, 504);
	assert_non_null(strstr(c->why, "no answer within 0.3"));
	assert_true(took > 0.28 && took < 2);
	assert_client_closed(f, 0);
}

/* A deadline that is not reached does not fire after the exchange ended. */
static void test_deadline_quiet_after_done(void **state)
{
	struct fx *f = *state;
	SCRIPT(f, 0, GET_ONE, OK_HELLO);
	struct caller *c = &f->c[0];
	start(c, f->pool, GET_ONE, (struct httpclient_request){ .deadline = 0.1 });
	run_exchange(f, c);
	assert_int_equal(c->end, HTTPCLIENT_DONE);
	run_for(f, 0.2);
	assert_int_equal(c->failed, 0);
	assert_int_equal(f->stats.pool_idle[OLD], 1);
}

/* ---- malformed answers ---- */

/* A bad chunk size after a good head: the body move reports ERROR with the
 * cause, and the connection is closed. */
static void test_bad_chunk_size_error(void **state)
{
	struct fx *f = *state;
	SCRIPT(f, 0, GET_ONE, CHUNKED_HEAD, "zz\r\n");
	struct caller *c = &f->c[0];
	start(c, f->pool, GET_ONE, (struct httpclient_request){ 0 });
	run_exchange(f, c);
	assert_int_equal(c->heads, 1);
	assert_int_equal(c->failed, 0);
	assert_int_equal(c->end, HTTPCLIENT_ERROR);
	assert_true(c->error[0] != '\0');
	assert_non_null(httpclient_error(c->hc));
	assert_int_equal(f->stats.pool_idle[OLD], 0);
	assert_client_closed(f, 0);
}

/* Not HTTP at all: 502 before any head. */
static void test_garbage_status_line_502(void **state)
{
	struct fx *f = *state;
	SCRIPT(f, 0, GET_ONE, "garbage\r\n\r\n");
	struct caller *c = &f->c[0];
	start(c, f->pool, GET_ONE, (struct httpclient_request){ 0 });
	run_exchange(f, c);
	assert_int_equal(c->heads, 0);
	assert_int_equal(c->failed, 1);
	assert_int_equal(c->fail_status, 502);
	assert_true(c->why[0] != '\0');
	assert_client_closed(f, 0);
}

/* The upstream closes in the middle of a Content-Length body: what came is
 * moved, then ERROR naming the cut. */
static void test_closed_mid_length_body(void **state)
{
	struct fx *f = *state;
	SCRIPT(f, 0, GET_ONE,
	       "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "defg");
	f->up.steps[0].fin_after = true;
	struct caller *c = &f->c[0];
	start(c, f->pool, GET_ONE, (struct httpclient_request){ 0 });
	run_exchange(f, c);
	assert_int_equal(c->end, HTTPCLIENT_ERROR);
	assert_non_null(strstr(c->error, "closed in the middle"));
	assert_string_equal(body_string(c), "abcdefg");
	assert_int_equal(f->stats.pool_idle[OLD], 0);
}

/* The same for a chunked body cut inside a chunk. */
static void test_closed_mid_chunked_body(void **state)
{
	struct fx *f = *state;
	SCRIPT(f, 0, GET_ONE, CHUNKED_HEAD "a\r\nabc");
	f->up.steps[0].fin_after = true;
	struct caller *c = &f->c[0];
	start(c, f->pool, GET_ONE, (struct httpclient_request){ 0 });
	run_exchange(f, c);
	assert_int_equal(c->end, HTTPCLIENT_ERROR);
	assert_non_null(strstr(c->error, "closed in the middle"));
	assert_string_equal(body_string(c), "abc");
}

/* ---- in-flight accounting, and freeing ---- */

/* With stats and a project set, the exchange counts 1 in flight while it
 * holds its connection, and 0 after DONE, after failed, and after an
 * unfinished exchange is freed (whose connection is then closed). */
static void test_in_flight_accounting(void **state)
{
	struct fx *f = *state;
	struct project *p = project_get("p", 1);
	int64_t base = project_in_flight(p, OLD);
	SCRIPT(f, 0, GET_ONE, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "hello");
	SCRIPT(f, 1, GET_TWO, NULL);      /* never answered */
	SCRIPT(f, 2, GET_ONE,
	       "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
	struct httpclient_request counted = { .stats = &f->stats, .project = p };

	struct caller *c = &f->c[0];
	c->project = p;
	start(c, f->pool, GET_ONE, counted);
	assert_int_equal(f->stats.in_flight[OLD], 1);
	assert_int_equal(project_in_flight(p, OLD), base + 1);
	run_exchange(f, c);
	assert_int_equal(c->end, HTTPCLIENT_DONE);
	assert_int_equal(c->in_flight_at_head, 1);
	assert_int_equal(c->project_at_head, base + 1);
	assert_int_equal(c->in_flight_at_end, 0);
	assert_int_equal(c->project_at_end, base);

	f->conf.read_timeout = 0.2;
	struct caller *c2 = &f->c[1];
	c2->project = p;
	start(c2, f->pool, GET_TWO, counted);
	assert_int_equal(f->stats.in_flight[OLD], 1);
	run_exchange(f, c2);
	assert_int_equal(c2->failed, 1);
	assert_int_equal(c2->in_flight_at_end, 0);    /* already inside failed() */
	assert_int_equal(c2->project_at_end, base);

	f->conf.read_timeout = 2;
	struct caller *c3 = &f->c[2];
	c3->project = p;
	c3->step = 0;                                   /* reads nothing: stays unfinished */
	start(c3, f->pool, GET_ONE, counted);
	assert_true(run_until(f, caller_has_head, c3));
	assert_int_equal(c3->heads, 1);
	assert_false(c3->finished);
	assert_int_equal(f->stats.in_flight[OLD], 1);
	assert_int_equal(project_in_flight(p, OLD), base + 1);
	httpclient_free(c3->hc);
	c3->hc = NULL;
	assert_int_equal(f->stats.in_flight[OLD], 0);
	assert_int_equal(project_in_flight(p, OLD), base);
	assert_int_equal(f->stats.pool_idle[OLD], 0);
	assert_client_closed(f, 1);
	assert_int_equal(f->up.accepts, 2);
}

/* Not counted when the request names no stats and no project (cutover's
 * own probes). */
static void test_not_counted_without_stats(void **state)
{
	struct fx *f = *state;
	struct project *p = project_get("p", 1);
	int64_t base = project_in_flight(p, OLD);
	SCRIPT(f, 0, GET_ONE, OK_HELLO);
	struct caller *c = &f->c[0];
	start(c, f->pool, GET_ONE, (struct httpclient_request){ 0 });
	assert_int_equal(f->stats.in_flight[OLD], 0);
	assert_int_equal(project_in_flight(p, OLD), base);
	run_exchange(f, c);
	assert_int_equal(c->end, HTTPCLIENT_DONE);
	assert_int_equal(f->stats.in_flight[OLD], 0);
}

/* Every callback may free the exchange (ASan watches): in head, at DONE
 * from the body move, in failed. */
static void test_free_inside_callbacks(void **state)
{
	struct fx *f = *state;
	SCRIPT(f, 0, GET_ONE, OK_HELLO);
	SCRIPT(f, 1, GET_TWO, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "hello");
	struct caller *c = &f->c[0];
	c->free_at = FREE_IN_HEAD;
	start(c, f->pool, GET_ONE, (struct httpclient_request){ .stats = &f->stats,
								.deadline = 0.2 });
	assert_true(run_until(f, caller_has_head, c));
	assert_null(c->hc);
	assert_int_equal(f->stats.in_flight[OLD], 0);
	assert_client_closed(f, 0);

	struct caller *c2 = &f->c[1];
	c2->free_at = FREE_AT_END;
	start(c2, f->pool, GET_TWO, (struct httpclient_request){ .deadline = 0.2 });
	run_exchange(f, c2);
	assert_null(c2->hc);
	assert_int_equal(c2->end, HTTPCLIENT_DONE);
	assert_string_equal(body_string(c2), "hello");
	assert_int_equal(f->stats.pool_idle[OLD], 1);

	struct caller *c3 = &f->c[2];
	c3->free_at = FREE_AT_END;
	start(c3, f->dead_pool, GET_ONE, (struct httpclient_request){ .deadline = 0.2 });
	run_exchange(f, c3);
	assert_null(c3->hc);
	assert_int_equal(c3->failed, 1);
	run_for(f, 0.3);                                /* no deadline left to fire */
	assert_int_equal(c3->failed, 1);
	assert_int_equal(c2->failed, 0);
}

/* req.answer makes a new connection to those addresses, even with an idle
 * pooled one at hand (the preflight tries what DNS says now). */
static void test_answer_bypasses_pool(void **state)
{
	struct fx *f = *state;
	SCRIPT(f, 0, GET_ONE, OK_HELLO);
	SCRIPT(f, 1, GET_TWO, OK_HELLO);
	struct caller *c = &f->c[0];
	start(c, f->pool, GET_ONE, (struct httpclient_request){ 0 });
	run_exchange(f, c);
	assert_int_equal(f->stats.pool_idle[OLD], 1);
	struct caller *c2 = &f->c[1];
	start(c2, f->pool, GET_TWO,
	      (struct httpclient_request){ .answer = dns_current(f->conf.dns) });
	assert_false(httpclient_ready(c2->hc));
	run_exchange(f, c2);
	assert_int_equal(c2->end, HTTPCLIENT_DONE);
	assert_int_equal(c2->connected, 1);
	assert_int_equal(f->up.accepts, 2);
	assert_int_equal(f->up.got[1].conn, 1);
	assert_true(httpclient_tcp_up(c2->hc));
}

/* No retry once the upstream answered anything: here it takes a POST on the
 * pooled connection, answers 103 Early Hints (it has the request and works
 * on it), then closes. Sending the body again on a new connection would be
 * a duplicate submission: failed 502, one accept, the request sent once. */
static void test_no_retry_after_interim_answer(void **state)
{
	struct fx *f = *state;
	SCRIPT(f, 0, GET_ONE, OK_HELLO);
	SCRIPT(f, 1, POST_HEAD "hello world!", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n");
	f->up.steps[1].fin_after = true;
	SCRIPT(f, 2, POST_HEAD "hello world!", OK_HELLO); /* what the retry sends */
	struct caller *c = &f->c[0];
	start(c, f->pool, GET_ONE, (struct httpclient_request){ 0 });
	run_exchange(f, c);
	struct caller *c2 = &f->c[1];
	start(c2, f->pool, POST_HEAD,
	      (struct httpclient_request){ .body = HTTPCLIENT_BODY_MEMORY,
					   .body_bytes = bytes("hello world!") });
	assert_true(httpclient_ready(c2->hc));          /* on the pooled connection */
	run_exchange(f, c2);
	run_for(f, 0.05);
	assert_request(f, 1);
	if (f->up.got[2].complete)
		fail_msg("the POST was sent again after the upstream answered 103 "
			 "(accepts %d)", f->up.accepts);
	assert_int_equal(f->up.accepts, 1);
	assert_int_equal(c2->failed, 1);
	assert_int_equal(c2->fail_status, 502);
}

/* A reader that moves all that waits, once per body() callback (its budget
 * is ample), and does not set read_ahead gets the whole of a larger
 * Content-Length body: the client reads no bytes that would raise no read
 * event (they would sit until read_timeout, 504). */
static void test_every_body_byte_gets_a_callback(void **state)
{
	struct fx *f = *state;
	static char answer[21000];
	int n = snprintf(answer, sizeof answer, "HTTP/1.1 200 OK\r\nContent-Length: 20000\r\n\r\n");
	memset(answer + n, 'x', 20000);
	answer[n + 20000] = '\0';
	SCRIPT(f, 0, GET_ONE, answer);
	f->conf.read_timeout = 0.5;
	struct caller *c = &f->c[0];
	c->one_move = true;
	c->step = 1 << 20;
	start(c, f->pool, GET_ONE, (struct httpclient_request){ 0 });
	run_exchange(f, c);
	if (c->failed)
		fail_msg("failed %d (%s) with %zu of 20000 body bytes moved", c->fail_status,
			 c->why, evbuffer_get_length(c->body));
	assert_int_equal(c->end, HTTPCLIENT_DONE);
	assert_int_equal(evbuffer_get_length(c->body), 20000);
}

int main(void)
{
#define TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		TEST(test_length_body_small_steps_then_pooled),
		TEST(test_chunked_decoded),
		TEST(test_chunked_reframed),
		TEST(test_close_delimited_reframed),
		TEST(test_close_delimited_raw),
		TEST(test_connection_close_not_pooled),
		TEST(test_complete_answer_then_close_not_pooled),
		TEST(test_early_answer_not_pooled),
		TEST(test_interim_answers_skipped),
		TEST(test_101_fails_502),
		TEST(test_head_request_no_body),
		TEST(test_body_in_memory),
		TEST(test_body_length_pushed),
		TEST(test_body_chunked_pushed),
		TEST(test_body_end_before_ready),
		TEST(test_retry_on_dead_pooled_connection),
		TEST(test_retry_resends_body_in_memory),
		TEST(test_no_retry_with_pushed_body),
		TEST(test_read_timeout_504),
		TEST(test_connect_refused_502_names_address),
		TEST(test_deadline_504),
		TEST(test_deadline_quiet_after_done),
		TEST(test_bad_chunk_size_error),
		TEST(test_garbage_status_line_502),
		TEST(test_closed_mid_length_body),
		TEST(test_closed_mid_chunked_body),
		TEST(test_in_flight_accounting),
		TEST(test_not_counted_without_stats),
		TEST(test_free_inside_callbacks),
		TEST(test_answer_bypasses_pool),
		TEST(test_no_retry_after_interim_answer),
		TEST(test_every_body_byte_gets_a_callback),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
