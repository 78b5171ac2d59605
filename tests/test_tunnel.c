/* tests for proxy/tunnel.c: a body moved socket -> pipe -> socket with
 * splice(2) on the test's own event base. The test writes a known pattern
 * into SRC's peer and reads DST's peer; the tunnel sits in between:
 *
 *   test -> src_peer ==> src -[tunnel]-> dst ==> dst_peer -> test
 *
 * Pairs are TCP on 127.0.0.1 (ephemeral ports, as in production) or
 * AF_UNIX; every fd is non-blocking and every loop is bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "evloop.h"
#include "tunnel.h"

#define MiB (1024 * 1024)
/* tunnel.c's bounds, as its comments promise them. */
#define ROUND_PIPES 16
#define KEPT_PIPES 8

enum pair_kind { PAIR_TCP, PAIR_UNIX };
enum after_feed { FEED_KEEP, FEED_SHUT, FEED_CLOSE };
/* Where the progress callback frees the tunnel: after a round that used
 * its whole budget (the tunnel yielded), or after one that waits. */
enum free_at { FREE_NEVER, FREE_AT_YIELD, FREE_AT_WAIT };

struct fx {
	struct event_base *base;
	int src_peer, src, dst, dst_peer;
	struct tunnel *t;
	/* The sender: feed_len bytes of the pattern into src_peer, then
	 * after_feed. */
	struct event *ev_feed;
	uint64_t feed_len, fed;
	enum after_feed after_feed;
	/* The receiver: what dst_peer got. */
	struct event *ev_drain;
	unsigned char *got;
	size_t n_got, got_cap;
	/* What the tunnel reported. */
	bool ended;
	enum tunnel_end end;
	int err;
	size_t pipe_bytes;
	int progress_calls;
	enum free_at free_at;
	bool freed;
	uint64_t last_written, max_round, max_held;
	double t_last_move, t_end;
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Byte I of every body: not periodic in any small step, so a lost, doubled
 * or shifted piece shows. */
static unsigned char pattern(uint64_t i)
{
	return (unsigned char)((i * 2654435761u) >> 24 ^ i);
}

static void assert_pattern(const unsigned char *buf, uint64_t off, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (buf[i] != pattern(off + i))
			fail_msg("byte %llu is %u, want %u", (unsigned long long)(off + i), buf[i],
				 pattern(off + i));
}

/* ---- sockets ---- */

/* A connected pair of non-blocking sockets. For TCP, BUF > 0 sets both
 * buffers of both ends, before connecting so that the window follows. */
static void sock_pair(enum pair_kind kind, int buf, int *a, int *b)
{
	if (kind == PAIR_UNIX) {
		int fd[2];
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fd), 0);
		*a = fd[0];
		*b = fd[1];
		return;
	}
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof sa;
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	*a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(l >= 0 && *a >= 0);
	for (int i = 0; buf && i < 2; i++) { /* the accepted end inherits l's */
		int fd = i ? l : *a;
		assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf), 0);
		assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf), 0);
	}
	assert_int_equal(bind(l, (struct sockaddr *)&sa, len), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&sa, &len), 0);
	assert_int_equal(connect(*a, (struct sockaddr *)&sa, len), 0);
	*b = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	assert_true(*b >= 0);
	close(l);
	assert_int_equal(fcntl(*a, F_SETFL, O_NONBLOCK), 0);
}

/* The pipe fds this process has open. */
static int count_pipes(void)
{
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		char target[64];
		ssize_t len = readlinkat(dirfd(d), e->d_name, target, sizeof target - 1);
		n += len > 5 && strncmp(target, "pipe:", 5) == 0;
	}
	closedir(d);
	return n;
}

/* ---- the sender and the receiver ---- */

static void on_feed(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct fx *f = arg;
	unsigned char chunk[64 * 1024];
	while (f->fed < f->feed_len) {
		size_t n = f->feed_len - f->fed < sizeof chunk ? (size_t)(f->feed_len - f->fed) : sizeof chunk;
		for (size_t i = 0; i < n; i++)
			chunk[i] = pattern(f->fed + i);
		ssize_t w = send(fd, chunk, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EAGAIN) {
			event_add(f->ev_feed, NULL);
			return;
		}
		if (w < 0)
			fail_msg("sending the body: %s", strerror(errno));
		f->fed += (uint64_t)w;
	}
	if (f->after_feed == FEED_SHUT) {
		shutdown(fd, SHUT_WR);
	} else if (f->after_feed == FEED_CLOSE) {
		close(f->src_peer);
		f->src_peer = -1;
	}
}

static void feed(struct fx *f, uint64_t len, enum after_feed after)
{
	f->feed_len = len;
	f->after_feed = after;
	f->ev_feed = event_new(f->base, f->src_peer, EV_WRITE, on_feed, f);
	assert_non_null(f->ev_feed);
	event_active(f->ev_feed, EV_WRITE, 1);
}

static void on_drain(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct fx *f = arg;
	for (;;) {
		if (f->n_got == f->got_cap)
			fail_msg("the receiver got more than %zu bytes", f->got_cap);
		ssize_t n = recv(fd, f->got + f->n_got, f->got_cap - f->n_got, 0);
		if (n > 0) {
			f->n_got += (size_t)n;
			continue;
		}
		if (n == 0)
			event_del(f->ev_drain);
		else if (errno != EAGAIN)
			fail_msg("receiving the body: %s", strerror(errno));
		return;
	}
}

/* Reads dst_peer as bytes come, into room for MAX bytes and one more. */
static void drain(struct fx *f, size_t max)
{
	f->got_cap = max + 1;
	f->got = malloc(f->got_cap);
	assert_non_null(f->got);
	f->ev_drain = event_new(f->base, f->dst_peer, EV_READ | EV_PERSIST, on_drain, f);
	assert_non_null(f->ev_drain);
	event_add(f->ev_drain, NULL);
}

/* ---- the tunnel ---- */

static void on_progress(void *arg)
{
	struct fx *f = arg;
	uint64_t r = tunnel_read(f->t), w = tunnel_written(f->t);
	bool full = w - f->last_written == ROUND_PIPES * f->pipe_bytes;
	f->progress_calls++;
	if (r - w > f->max_held)
		f->max_held = r - w;
	if (w - f->last_written > f->max_round)
		f->max_round = w - f->last_written;
	f->last_written = w;
	f->t_last_move = now();
	if ((f->free_at == FREE_AT_YIELD && full) || (f->free_at == FREE_AT_WAIT && !full)) {
		tunnel_free(f->t);
		f->t = NULL;
		f->freed = true;
	}
}

static void on_end(void *arg, enum tunnel_end end, int err)
{
	struct fx *f = arg;
	f->ended = true;
	f->end = end;
	f->err = err;
	f->t_end = now();
}

static const struct tunnel_ops ops = { .progress = on_progress, .end = on_end };

static void start(struct fx *f, uint64_t len, double src_timeout, double dst_timeout, size_t pipe_bytes)
{
	struct tunnel_spec spec = {
		.src = f->src, .dst = f->dst, .len = len,
		.src_timeout = src_timeout, .dst_timeout = dst_timeout, .pipe_bytes = pipe_bytes,
	};
	f->pipe_bytes = pipe_bytes;
	f->t_last_move = now();
	f->t = tunnel_start(f->base, &spec, &ops, f);
	assert_non_null(f->t);
}

static bool ended(const void *arg)
{
	return ((const struct fx *)arg)->ended;
}

static bool freed(const void *arg)
{
	return ((const struct fx *)arg)->freed;
}

/* The tunnel ended, the receiver has what it was given and the sender is
 * through. */
static bool settled(const void *arg)
{
	const struct fx *f = arg;
	return f->ended && f->n_got == tunnel_written(f->t) && f->fed == f->feed_len;
}

static void run_until(struct fx *f, bool (*done)(const void *), double seconds)
{
	if (!evloop_run(f->base, seconds, done, f))
		fail_msg("not done after %.1f s: ended %d, %d progress calls, got %zu, fed %llu",
			 seconds, f->ended, f->progress_calls, f->n_got, (unsigned long long)f->fed);
}

/* Back to a fresh fixture on the same base: the tunnel freed, the sockets
 * closed, nothing recorded. */
static void fx_clear(struct fx *f)
{
	tunnel_free(f->t);
	if (f->ev_feed)
		event_free(f->ev_feed);
	if (f->ev_drain)
		event_free(f->ev_drain);
	int fds[] = { f->src_peer, f->src, f->dst, f->dst_peer };
	for (size_t i = 0; i < 4; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(f->got);
	struct event_base *base = f->base;
	*f = (struct fx){ .base = base, .src_peer = -1, .src = -1, .dst = -1, .dst_peer = -1 };
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	assert_non_null(f);
	f->base = event_base_new();
	assert_non_null(f->base);
	f->src_peer = f->src = f->dst = f->dst_peer = -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	fx_clear(f);
	event_base_free(f->base);
	free(f);
	return 0;
}

static void open_pairs(struct fx *f, enum pair_kind kind, int dst_buf)
{
	sock_pair(kind, 0, &f->src_peer, &f->src);
	sock_pair(kind, dst_buf, &f->dst, &f->dst_peer);
}

/* ---- cases ---- */

/* The sender sends SENT bytes then does AFTER; a tunnel for LEN runs to its
 * end and the receiver takes everything it gives. */
static void run_body(struct fx *f, enum pair_kind kind, uint64_t len, uint64_t sent,
		     enum after_feed after, size_t pipe_bytes)
{
	open_pairs(f, kind, 0);
	feed(f, sent, after);
	drain(f, sent);
	start(f, len, 5, 5, pipe_bytes);
	run_until(f, settled, 20);
}

/* The tunnel ended with END, having moved exactly N bytes of the body. */
static void assert_moved(struct fx *f, enum tunnel_end end, uint64_t n)
{
	assert_int_equal(f->end, end);
	assert_int_equal(f->err, 0);
	assert_int_equal(tunnel_read(f->t), n);
	assert_int_equal(tunnel_written(f->t), n);
	assert_int_equal(f->n_got, n);
	assert_pattern(f->got, 0, n);
}

/* The tunnel's last progress was at least about SECONDS before its end. */
static void assert_idle_before_end(struct fx *f, double seconds)
{
	double idle = f->t_end - f->t_last_move;
	if (idle < seconds - 0.02 || idle > seconds + 2)
		fail_msg("ended %.3f s after the last move, want %.3f s", idle, seconds);
}

/* A bounded length moves whole, and the bytes after it (a pipelined next
 * request) stay in the source for its owner. */
static void move_bounded(struct fx *f, enum pair_kind kind)
{
	const uint64_t len = 5 * MiB + 17, extra = 1000;
	run_body(f, kind, len, len + extra, FEED_KEEP, 64 * 1024);
	assert_moved(f, TUNNEL_DONE, len);

	unsigned char rest[2000];
	size_t n = 0;
	for (int i = 0; i < 100 && n < extra; i++) {
		struct pollfd p = { .fd = f->src, .events = POLLIN };
		assert_int_equal(poll(&p, 1, 2000), 1);
		ssize_t r = recv(f->src, rest + n, sizeof rest - n, 0);
		assert_true(r > 0);
		n += (size_t)r;
	}
	assert_int_equal(n, extra);
	assert_pattern(rest, len, extra);
}

static void test_bounded(void **state)
{
	move_bounded(*state, PAIR_TCP);
	fx_clear(*state);
	move_bounded(*state, PAIR_UNIX);
}

static void test_until_eof(void **state)
{
	struct fx *f = *state;
	run_body(f, PAIR_TCP, TUNNEL_UNTIL_EOF, 3 * MiB + 5, FEED_SHUT, 64 * 1024);
	assert_moved(f, TUNNEL_DONE, 3 * MiB + 5);
}

/* The source closes early: what was read still goes out. */
static void test_src_closes_early(void **state)
{
	struct fx *f = *state;
	run_body(f, PAIR_TCP, MiB, 300 * 1000 + 3, FEED_CLOSE, 64 * 1024);
	assert_moved(f, TUNNEL_SRC_EOF, 300 * 1000 + 3);
}

/* The destination's peer is gone: a write fails (EPIPE, or ECONNRESET
 * when its RST came first). */
static void test_dst_peer_closed(void **state)
{
	struct fx *f = *state;
	open_pairs(f, PAIR_TCP, 0);
	close(f->dst_peer);
	f->dst_peer = -1;
	feed(f, 4 * MiB, FEED_KEEP);
	start(f, 4 * MiB, 5, 5, 64 * 1024);
	run_until(f, ended, 10);
	assert_int_equal(f->end, TUNNEL_DST_ERROR);
	assert_true(f->err == EPIPE || f->err == ECONNRESET);
	assert_true(tunnel_written(f->t) < 4 * MiB);
}

static void test_src_timeout(void **state)
{
	struct fx *f = *state;
	open_pairs(f, PAIR_TCP, 0);
	feed(f, 1000, FEED_KEEP);
	drain(f, 1000);
	start(f, MiB, 0.2, 5, 64 * 1024);
	run_until(f, settled, 5);
	assert_moved(f, TUNNEL_SRC_TIMEOUT, 1000);
	assert_idle_before_end(f, 0.2);
}

/* Nobody reads the destination: the tunnel holds at most pipe_bytes and
 * stops reading the source, then gives up after dst_timeout. */
static void test_dst_timeout_bounded(void **state)
{
	struct fx *f = *state;
	const size_t pipe_bytes = 16 * 1024;
	open_pairs(f, PAIR_TCP, 4096);
	feed(f, 8 * MiB, FEED_KEEP);
	start(f, 8 * MiB, 5, 0.2, pipe_bytes);
	run_until(f, ended, 5);
	assert_int_equal(f->end, TUNNEL_DST_TIMEOUT);
	assert_idle_before_end(f, 0.2);
	assert_true(f->progress_calls >= 1);
	assert_true(f->max_held <= pipe_bytes);
	assert_true(tunnel_read(f->t) - tunnel_written(f->t) <= pipe_bytes);
	assert_true(tunnel_written(f->t) > 0);
	assert_true(f->fed < 8 * MiB);      /* the source was left to fill up */
}

/* A clean tunnel's pipe is kept for the next one, up to KEPT_PIPES;
 * tunnel_thread_exit() closes them. */
static void test_pipe_pool(void **state)
{
	struct fx *f = *state;
	tunnel_thread_exit();
	int base = count_pipes();
	for (int round = 0; round < 2; round++) {
		run_body(f, PAIR_TCP, 200 * 1000, 200 * 1000, FEED_KEEP, 64 * 1024);
		assert_moved(f, TUNNEL_DONE, 200 * 1000);
		assert_int_equal(count_pipes(), base + 2); /* a new pipe, then the kept one */
		fx_clear(f);
		assert_int_equal(count_pipes(), base + 2);
	}
	tunnel_thread_exit();
	assert_int_equal(count_pipes(), base);

	/* More tunnels at once than are kept: the extra pipes close. Empty
	 * bodies end at once, so the same sockets serve them all. */
	struct tunnel *t[KEPT_PIPES + 2];
	open_pairs(f, PAIR_TCP, 0);
	struct tunnel_spec spec = { .src = f->src, .dst = f->dst, .len = 0, .pipe_bytes = 4096 };
	for (int i = 0; i < KEPT_PIPES + 2; i++) {
		t[i] = tunnel_start(f->base, &spec, &ops, f);
		assert_non_null(t[i]);
	}
	assert_int_equal(count_pipes(), base + 2 * (KEPT_PIPES + 2));
	evloop_run(f->base, 0.05, NULL, NULL);
	for (int i = 0; i < KEPT_PIPES + 2; i++)
		tunnel_free(t[i]);
	assert_int_equal(count_pipes(), base + 2 * KEPT_PIPES);
	tunnel_thread_exit();
	assert_int_equal(count_pipes(), base);
}

/* A fast pair does not hold the loop: one event moves ROUND_PIPES pipes'
 * worth at most, then the tunnel yields and goes on in a later round. Over
 * TCP the pieces do not fill the pipe evenly, so a bound checked only after
 * each write would be passed. */
static void test_round_bound(void **state)
{
	struct fx *f = *state;
	run_body(f, PAIR_TCP, 4 * MiB, 4 * MiB, FEED_KEEP, 4096);
	assert_moved(f, TUNNEL_DONE, 4 * MiB);
	assert_true(f->progress_calls > 1);
	assert_true(f->max_held <= 4096);
	assert_int_equal(f->max_round, ROUND_PIPES * 4096); /* reached, not passed */
}

/* The caller frees the tunnel inside its progress callback, mid-body, as
 * forward.c does on a too slow body: no event of the tunnel fires
 * afterwards, the source still being readable (ASan watches). */
static void free_in_progress(struct fx *f, enum free_at at)
{
	open_pairs(f, PAIR_TCP, 0);
	feed(f, 4 * MiB, FEED_KEEP);
	drain(f, 4 * MiB);
	f->free_at = at;
	start(f, 4 * MiB, 5, 5, 4096);
	run_until(f, freed, 5);
	evloop_run(f->base, 0.1, NULL, NULL);
	assert_false(f->ended);
	assert_true(f->n_got < 4 * MiB);
}

static void test_free_in_progress(void **state)
{
	free_in_progress(*state, FREE_AT_YIELD);
	fx_clear(*state);
	free_in_progress(*state, FREE_AT_WAIT);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN); /* as cutover's main does */
#define TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		TEST(test_bounded),
		TEST(test_until_eof),
		TEST(test_src_closes_early),
		TEST(test_dst_peer_closed),
		TEST(test_src_timeout),
		TEST(test_dst_timeout_bounded),
		TEST(test_pipe_pool),
		TEST(test_round_bound),
		TEST(test_free_in_progress),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	tunnel_thread_exit();
	return failed;
}
