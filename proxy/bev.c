/* bev: bufferevent habits of the data path. */
#include "bev.h"

#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>

#include "duration.h"

void bev_set_budget(struct bufferevent *bev, size_t cap)
{
	bufferevent_setwatermark(bev, EV_READ, 0, cap);
	bufferevent_setwatermark(bev, EV_WRITE, cap / 2, 0);
	bufferevent_set_max_single_read(bev, cap);
	bufferevent_set_max_single_write(bev, cap);
}

/* libevent 2.1 reads at most 4 KiB per callback (EVBUFFER_MAX_READ), which
 * makes a syscall and an epoll round per 4 KiB of body. EOF and errors are
 * left for libevent to see and report on its next read. A TLS bufferevent
 * must do its own reads. */
void bev_read_more(struct bufferevent *bev, size_t want)
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
 * disarms it once the output drained: two epoll_ctl per answer. Running the
 * write callback in this loop round usually drains the output at once, and
 * the epoll changelist cancels the arm/disarm pair before it reaches the
 * kernel; a full socket keeps the event armed. (ev_write is public in
 * bufferevent_struct.h, for the TLS bufferevent too.) */
void bev_write_soon(struct bufferevent *bev)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)))
		event_active(&bev->ev_write, EV_WRITE, 1);
}

void bev_set_timeouts(struct bufferevent *bev, double read, double write)
{
	struct timeval r = duration_tv(read), w = duration_tv(write);
	bufferevent_set_timeouts(bev, read > 0 ? &r : NULL, write > 0 ? &w : NULL);
}
