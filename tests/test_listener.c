/* tests for proxy/listener.c: the guard that keeps an accept loop from
 * spinning when descriptors run out, and the descriptor ceiling. The
 * process's own RLIMIT_NOFILE is lowered to exhaust it for real. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "listener.h"
#include "log.h"

static void test_ceiling(void **state)
{
	(void)state;
	assert_int_equal(listener_fd_ceiling(RLIM_INFINITY), 0);
	assert_int_equal(listener_fd_ceiling(256), 64);
	assert_int_equal(listener_fd_ceiling(1024), 448);
	assert_int_equal(listener_fd_ceiling(64), 16);
	assert_int_equal(listener_fd_ceiling(1), 1);
	/* always leaves room for an upstream connection per client and more */
	for (rlim_t n = 8; n < 100000; n = n * 3 / 2)
		assert_true((rlim_t)listener_fd_ceiling(n) * 2 <= n);
}

struct counts {
	struct listener_guard *guard;
	int errors, accepted;
};

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
		      void *arg)
{
	(void)l;
	(void)sa;
	(void)len;
	struct counts *c = arg;
	c->accepted++;
	close(fd);
}

static void on_error(struct evconnlistener *l, void *arg)
{
	(void)l;
	struct counts *c = arg;
	c->errors++;
	listener_guard_error(c->guard);
}

/* Out of descriptors with connections waiting: without the guard the loop
 * gets an error callback per round, tens of thousands a second; with it,
 * one per back-off. Then a freed descriptor lets the backlog in. */
static void test_emfile_rests(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	assert_non_null(base);
	struct counts c = { 0 };
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof sin), 0);
	socklen_t sl = sizeof sin;
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &sl), 0);
	assert_int_equal(listen(lfd, 16), 0);
	struct evconnlistener *l = evconnlistener_new(base, on_accept, &c, LEV_OPT_CLOSE_ON_FREE, -1,
						      lfd);
	assert_non_null(l);
	evconnlistener_set_error_cb(l, on_error);
	c.guard = listener_guard_new(base, l, "accept", false);
	assert_non_null(c.guard);

	int clients[4];
	for (int i = 0; i < 4; i++)
		assert_true((clients[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)) >= 0);
	struct rlimit saved;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
	/* fill the table up to a low limit */
	struct rlimit low = { 64, saved.rlim_max };
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	int fills[64], n_fills = 0;
	for (int fd; (fd = dup(0)) >= 0;)
		fills[n_fills++] = fd;
	assert_int_equal(errno, EMFILE);
	for (int i = 0; i < 4; i++)
		connect(clients[i], (struct sockaddr *)&sin, sizeof sin);

	struct timeval half = { 0, 500000 };
	event_base_loopexit(base, &half);
	event_base_dispatch(base);
	assert_int_equal(c.accepted, 0);
	assert_true(c.errors >= 1);
	assert_true(c.errors <= 8);   /* 0.5 s at one try per 0.1 s */

	for (int i = 0; i < n_fills; i++)
		close(fills[i]);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
	event_base_loopexit(base, &half);
	event_base_dispatch(base);
	assert_int_equal(c.accepted, 4);

	for (int i = 0; i < 4; i++)
		close(clients[i]);
	listener_guard_free(c.guard);
	evconnlistener_free(l);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ceiling),
		cmocka_unit_test(test_emfile_rests),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
