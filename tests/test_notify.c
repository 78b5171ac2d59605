/* tests for proxy/notify.c: the messages systemd reads from NOTIFY_SOCKET
 * (a datagram socket the test binds), and nothing sent without it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "notify.h"
#include "tmpdir.h"

struct sock {
	struct tmpdir t;
	int fd;
};

static int setup(void **state)
{
	struct sock *s = calloc(1, sizeof *s);
	if (!s || tmpdir_make(&s->t, "notify", "notify.sock") < 0)
		return -1;
	s->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(s->t.path) >= sizeof sa.sun_path)
		return -1;
	memcpy(sa.sun_path, s->t.path, strlen(s->t.path) + 1);
	if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		return -1;
	setenv("NOTIFY_SOCKET", s->t.path, 1);
	*state = s;
	return 0;
}

static int teardown(void **state)
{
	struct sock *s = *state;
	unsetenv("NOTIFY_SOCKET");
	close(s->fd);
	tmpdir_remove_tree(s->t.dir);
	free(s);
	return 0;
}

/* The next datagram, NUL-terminated (the test fails rather than block). */
static void recv_msg(struct sock *s, char *buf, size_t len)
{
	ssize_t n = recv(s->fd, buf, len - 1, MSG_DONTWAIT);
	assert_true(n > 0);
	buf[n] = '\0';
}

static void test_ready_carries_status_and_mainpid(void **state)
{
	struct sock *s = *state;
	assert_true(notify_ready("running, global mode old") > 0);
	char msg[512], want[64];
	recv_msg(s, msg, sizeof msg);
	snprintf(want, sizeof want, "\nMAINPID=%ld", (long)getpid());
	assert_true(strncmp(msg, "READY=1\n", 8) == 0);
	assert_non_null(strstr(msg, "\nSTATUS=running, global mode old\n"));
	assert_non_null(strstr(msg, want));
}

static void test_reloading_then_stopping(void **state)
{
	struct sock *s = *state;
	char msg[512];
	assert_true(notify_reloading() > 0);
	recv_msg(s, msg, sizeof msg);
	assert_true(strncmp(msg, "RELOADING=1\n", 12) == 0);
	assert_non_null(strstr(msg, "\nMONOTONIC_USEC="));
	assert_true(notify_stopping("draining") > 0);
	recv_msg(s, msg, sizeof msg);
	assert_string_equal(msg, "STOPPING=1\nSTATUS=draining");
}

/* A line end in a status would let it set other variables (READY=1). */
static void test_status_is_one_line(void **state)
{
	struct sock *s = *state;
	char msg[512];
	assert_true(notify_stopping("bye\nREADY=1") > 0);
	recv_msg(s, msg, sizeof msg);
	assert_string_equal(msg, "STOPPING=1\nSTATUS=bye");
}

static void test_no_socket_is_a_noop(void **state)
{
	struct sock *s = *state;
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(notify_ready("x"), 0);
	assert_int_equal(notify_reloading(), 0);
	assert_int_equal(notify_stopping("x"), 0);
	char buf[8];
	assert_true(recv(s->fd, buf, sizeof buf, MSG_DONTWAIT) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ready_carries_status_and_mainpid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reloading_then_stopping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_is_one_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_socket_is_a_noop, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
