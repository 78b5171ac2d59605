/* tunnel: socket -> pipe -> socket with splice(2). */
#include "tunnel.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>

#include "duration.h"

/* Bytes one event may move before the loop serves others: a fast pair of
 * sockets must not starve the worker's other connections. */
#define ROUND_PIPES 16
/* ... and at most this much, whatever the pipe's size (buffer_bytes may be
 * set up to 64 MiB). */
#define ROUND_MAX (1 << 20)
/* Pipes kept per thread for the next tunnels. */
#define KEPT_PIPES 8

struct pipe_pair {
	int rd, wr;
	size_t size;             /* what the kernel gave (F_GETPIPE_SZ) */
	size_t asked;            /* what was asked for (the kernel rounds it) */
};

struct tunnel {
	const struct tunnel_ops *ops;
	void *arg;
	struct event *ev_src, *ev_dst;
	struct pipe_pair pipe;
	int src, dst;
	uint64_t len;
	uint64_t read, written;
	size_t cap;              /* the most held in the pipe */
	struct timeval src_timeout, dst_timeout;
	bool src_timed, dst_timed;
	bool src_done;           /* len read, or the source closed */
	bool src_eof;
};

static _Thread_local struct pipe_pair kept[KEPT_PIPES];
static _Thread_local int n_kept;

static void pipe_close(struct pipe_pair *p)
{
	close(p->rd);
	close(p->wr);
}

/* A pipe of (about) SIZE bytes: a kept one, else a new one. The kernel
 * rounds sizes up to pages and may refuse a large one (a user's pipe
 * limit): the tunnel then holds what it got. */
static bool pipe_take(struct pipe_pair *p, size_t size)
{
	if (n_kept) {
		*p = kept[--n_kept];
	} else {
		int fd[2];
		if (pipe2(fd, O_CLOEXEC | O_NONBLOCK) < 0)
			return false;
		p->rd = fd[0];
		p->wr = fd[1];
		p->size = p->asked = 0;
	}
	if (p->asked != size) {
		if (size <= INT32_MAX)
			(void)fcntl(p->wr, F_SETPIPE_SZ, (int)size);
		int got = fcntl(p->wr, F_GETPIPE_SZ);
		if (got <= 0) {
			pipe_close(p);
			return false;
		}
		p->size = (size_t)got;
		p->asked = size;
	}
	return true;
}

/* Back for the next tunnel only when empty: leftover bytes would be sent
 * to someone else. */
static void pipe_give_back(struct pipe_pair *p, bool empty)
{
	if (empty && n_kept < KEPT_PIPES)
		kept[n_kept++] = *p;
	else
		pipe_close(p);
}

void tunnel_thread_exit(void)
{
	while (n_kept)
		pipe_close(&kept[--n_kept]);
}

static void on_ready(evutil_socket_t fd, short what, void *arg);

struct tunnel *tunnel_start(struct event_base *base, const struct tunnel_spec *spec,
			    const struct tunnel_ops *ops, void *arg)
{
	struct tunnel *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->ev_src = event_new(base, spec->src, EV_READ, on_ready, t);
	t->ev_dst = event_new(base, spec->dst, EV_WRITE, on_ready, t);
	if (!t->ev_src || !t->ev_dst || !pipe_take(&t->pipe, spec->pipe_bytes)) {
		if (t->ev_src)
			event_free(t->ev_src);
		if (t->ev_dst)
			event_free(t->ev_dst);
		free(t);
		return NULL;
	}
	t->ops = ops;
	t->arg = arg;
	t->src = spec->src;
	t->dst = spec->dst;
	t->len = spec->len;
	t->cap = spec->pipe_bytes < t->pipe.size ? spec->pipe_bytes : t->pipe.size;
	t->src_timed = spec->src_timeout > 0;
	t->dst_timed = spec->dst_timeout > 0;
	t->src_timeout = duration_tv(spec->src_timeout);
	t->dst_timeout = duration_tv(spec->dst_timeout);
	t->src_done = t->len == 0;
	event_active(t->ev_src, EV_READ, 1);
	return t;
}

void tunnel_free(struct tunnel *t)
{
	if (!t)
		return;
	event_free(t->ev_src);
	event_free(t->ev_dst);
	pipe_give_back(&t->pipe, t->read == t->written);
	free(t);
}

uint64_t tunnel_read(const struct tunnel *t)
{
	return t->read;
}

uint64_t tunnel_written(const struct tunnel *t)
{
	return t->written;
}

static void finish(struct tunnel *t, enum tunnel_end end, int err)
{
	event_del(t->ev_src);
	event_del(t->ev_dst);
	t->ops->end(t->arg, end, err);
}

/* Fills the pipe from the source: false when the source has nothing now
 * (or the pipe is full by the kernel's count, in pages, not bytes). A pipe
 * full by ours is not a dry source: once drained, it is filled again in
 * the same round. */
static bool fill(struct tunnel *t, int *err)
{
	size_t held = (size_t)(t->read - t->written);
	size_t want = t->cap > held ? t->cap - held : 0;
	if (t->len != TUNNEL_UNTIL_EOF && want > t->len - t->read)
		want = (size_t)(t->len - t->read);
	if (!want)
		return true;
	ssize_t n;
	do
		n = splice(t->src, NULL, t->pipe.wr, NULL, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		t->read += (uint64_t)n;
		t->src_done = t->read == t->len;
		return true;
	}
	if (n == 0) {
		t->src_done = true;
		t->src_eof = true;
		return true;
	}
	if (errno != EAGAIN)
		*err = errno;
	return false;
}

/* Moves as much as both sides allow now, then waits for the side that
 * holds it back: the destination while bytes sit in the pipe, else the
 * source. */
static void run(struct tunnel *t)
{
	uint64_t start = t->written, start_read = t->read;
	uint64_t budget = (uint64_t)ROUND_PIPES * t->cap;
	if (budget > ROUND_MAX)
		budget = ROUND_MAX > t->cap ? ROUND_MAX : t->cap;
	for (;;) {
		int err = 0;
		bool src_dry = t->src_done || !fill(t, &err);
		if (err) {
			finish(t, TUNNEL_SRC_ERROR, err);
			return;
		}
		size_t held = (size_t)(t->read - t->written);
		if (held) {
			/* No more than the round's rest: pipes fill unevenly (a
			 * socket gives what it has), so a whole one could pass it. */
			size_t out = held;
			if (out > budget - (t->written - start))
				out = (size_t)(budget - (t->written - start));
			ssize_t n;
			do
				n = splice(t->pipe.rd, NULL, t->dst, NULL, out,
					   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			while (n < 0 && errno == EINTR);
			if (n < 0 && errno != EAGAIN) {
				finish(t, TUNNEL_DST_ERROR, errno);
				return;
			}
			if (n <= 0) {
				event_add(t->ev_dst, t->dst_timed ? &t->dst_timeout : NULL);
				break;
			}
			t->written += (uint64_t)n;
			held -= (size_t)n;
		}
		if (!held && t->src_done) {
			bool cut = t->src_eof && t->len != TUNNEL_UNTIL_EOF;
			finish(t, cut ? TUNNEL_SRC_EOF : TUNNEL_DONE, 0);
			return;
		}
		if (!held && src_dry) {
			event_add(t->ev_src, t->src_timed ? &t->src_timeout : NULL);
			break;
		}
		if (t->written - start >= budget) {
			event_active(t->ev_src, EV_READ, 1); /* more in the next round */
			break;
		}
	}
	if ((t->written != start || t->read != start_read) && t->ops->progress)
		t->ops->progress(t->arg);
}

/* Either side is ready, or waited too long: the event says which. */
static void on_ready(evutil_socket_t fd, short what, void *arg)
{
	struct tunnel *t = arg;
	if (what & EV_TIMEOUT) {
		finish(t, fd == t->src ? TUNNEL_SRC_TIMEOUT : TUNNEL_DST_TIMEOUT, 0);
		return;
	}
	run(t);
}
