/* adminclient: one request per connection ("Connection: close"), written
 * and read with blocking calls whose socket timeouts shrink towards one
 * deadline, so a stalled admin API cannot hold the CLI past --timeout. The
 * answer's head is parsed by http1; its body is decoded once the server has
 * closed. */
#include "adminclient.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "duration.h"
#include "http1.h"

#define MAX_HEAD 65536

/* The bytes read so far: head and body as they came. */
struct reading {
	char *buf;
	size_t len;
};

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

void adminclient_answer_free(struct adminclient_answer *ans)
{
	free(ans->body);
	ans->body = NULL;
	ans->body_len = 0;
}

static int64_t ms_left(const struct timespec *deadline)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	double ms = duration_ms_between(&now, deadline);
	return ms > 0 ? (int64_t)ms : 0;
}

/* Blocking socket calls give up at the deadline. */
static void set_socket_timeouts(int fd, const struct timespec *deadline)
{
	int64_t ms = ms_left(deadline);
	if (ms == 0)
		ms = 1;
	struct timeval tv = duration_tv((double)ms / 1e3);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static char *request_text(const struct adminclient_request *req, size_t *len)
{
	char *text = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&text, &size);
	if (!f)
		return NULL;
	fprintf(f, "%s %s HTTP/1.1\r\nHost: cutover\r\nUser-Agent: cutover-ctl/%s\r\n"
		   "Accept: application/json\r\nConnection: close\r\n",
		req->method, req->path, CUTOVER_VERSION);
	if (req->token)
		fprintf(f, "Authorization: Bearer %s\r\n", req->token);
	if (req->body)
		fprintf(f, "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
			strlen(req->body), req->body);
	else
		fputs("\r\n", f);
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	*len = size;
	return text;
}

static void chunk_append(void *arg, const char *at, size_t len)
{
	struct adminclient_answer *ans = arg;
	memcpy(ans->body + ans->body_len, at, len); /* decoded <= encoded: fits */
	ans->body_len += len;
}

/* Parses the bytes read into status + body. Returns 1 when the answer is
 * complete, 0 when more bytes are needed, -1 on a malformed answer (ERR).
 * AT_EOF: the peer closed the connection. */
static int answer_parse(const struct reading *rd, bool at_eof, struct adminclient_answer *ans,
			char *err, size_t errlen)
{
	struct http1_parser p;
	struct http1_head h;
	http1_parser_init(&p, HTTP1_RESPONSE);
	switch (http1_parse_head(&p, rd->buf, rd->len, MAX_HEAD, MAX_HEAD, &h)) {
	case HTTP1_MORE:
		if (!at_eof)
			return 0;
		return fail(err, errlen, rd->len ? "the answer ends inside its head"
						 : "the connection closed without an answer");
	case HTTP1_ERROR:
		return fail(err, errlen, "malformed answer: %s", p.error_reason);
	case HTTP1_DONE:
		break;
	}
	const char *rest = rd->buf + h.head_len;
	size_t rest_len = rd->len - h.head_len;
	size_t body_len;
	switch (h.framing) {
	case HTTP1_BODY_NONE:
		body_len = 0;
		break;
	case HTTP1_BODY_LENGTH:
		if (rest_len < h.content_length) {
			if (!at_eof)
				return 0;
			return fail(err, errlen, "the answer ends %llu bytes short of its Content-Length",
				    (unsigned long long)(h.content_length - rest_len));
		}
		body_len = (size_t)h.content_length;
		break;
	case HTTP1_BODY_EOF:
		if (!at_eof)
			return 0;
		body_len = rest_len;
		break;
	case HTTP1_BODY_CHUNKED: {
		if (!at_eof)
			return 0; /* Connection: close: decode once everything is in */
		free(ans->body);
		ans->body = malloc(rest_len + 1);
		ans->body_len = 0;
		if (!ans->body)
			return fail(err, errlen, "out of memory");
		bool done = false;
		long used = http1_chunked_feed(&p, rest, rest_len, &done, chunk_append, ans);
		if (used < 0)
			return fail(err, errlen, "malformed chunked answer: %s", p.error_reason);
		if (!done)
			return fail(err, errlen, "the chunked answer ends before its last chunk");
		ans->body[ans->body_len] = '\0';
		ans->status = h.status;
		return 1;
	}
	default:
		return fail(err, errlen, "malformed answer");
	}
	free(ans->body);
	ans->body = malloc(body_len + 1);
	if (!ans->body)
		return fail(err, errlen, "out of memory");
	memcpy(ans->body, rest, body_len);
	ans->body[body_len] = '\0';
	ans->body_len = body_len;
	ans->status = h.status;
	return 1;
}

/* Where a 200 answer's body goes instead of memory. */
struct sink {
	int fd;                     /* -1: none (or no longer: not a 200) */
	uint64_t *written;
};

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* RD holds at least a head: if it is a 200 framed by Content-Length, its
 * body goes to SINK as it arrives, through a 64 KiB buffer whatever its
 * size. 1 done, -1 failed (ERR), 0 not such an answer (SINK is dropped)
 * or its head is incomplete. */
static int sink_body(int fd, struct reading *rd, struct sink *sink,
		     const struct timespec *deadline, struct adminclient_answer *ans, char *err,
		     size_t errlen)
{
	struct http1_parser p;
	struct http1_head h;
	http1_parser_init(&p, HTTP1_RESPONSE);
	enum http1_result r = http1_parse_head(&p, rd->buf, rd->len, MAX_HEAD, MAX_HEAD, &h);
	if (r == HTTP1_MORE)
		return 0;
	if (r != HTTP1_DONE || h.status != 200 || h.framing != HTTP1_BODY_LENGTH) {
		sink->fd = -1; /* read and parsed as any other answer */
		return 0;
	}
	uint64_t left = h.content_length, done = 0;
	char *at = rd->buf + h.head_len;
	size_t have = rd->len - h.head_len;
	char buf[65536];
	for (;;) {
		size_t n = have < left ? have : (size_t)left;
		if (n && write_all(sink->fd, at, n) < 0)
			return fail(err, errlen, "cannot write the answer: %s", strerror(errno));
		left -= n;
		done += n;
		if (!left)
			break;
		set_socket_timeouts(fd, deadline);
		ssize_t got = recv(fd, buf, sizeof(buf), 0);
		if (got < 0 && errno == EINTR) {
			have = 0;
			continue;
		}
		if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return fail(err, errlen, "the answer stalled after %llu of %llu bytes",
				    (unsigned long long)done, (unsigned long long)h.content_length);
		if (got <= 0)
			return fail(err, errlen, "the answer ends %llu bytes short of its Content-Length "
				    "(%llu of %llu)", (unsigned long long)left,
				    (unsigned long long)done, (unsigned long long)h.content_length);
		at = buf;
		have = (size_t)got;
	}
	*sink->written = done;
	free(ans->body);
	ans->body = calloc(1, 1);
	ans->body_len = 0;
	ans->status = 200;
	return ans->body ? 1 : fail(err, errlen, "out of memory");
}

/* Reads until the answer is complete; FD is the caller's. SEND_ERRNO: why
 * sending stopped early, if it did (the reason when nothing comes back). */
static int read_answer(int fd, const struct adminclient_request *req,
		       const struct timespec *deadline, int send_errno, struct sink *sink,
		       struct adminclient_answer *ans, char *err, size_t errlen)
{
	struct reading rd = { 0 };
	size_t cap = 0;
	int done = 0; /* 1: complete, -1: failed (ERR says why) */
	while (!done) {
		if (rd.len == cap) {
			if (cap >= ADMINCLIENT_MAX_ANSWER + MAX_HEAD) {
				done = fail(err, errlen, "the admin API's answer is larger than %u MiB",
					    ADMINCLIENT_MAX_ANSWER >> 20);
				break;
			}
			size_t ncap = cap ? cap * 2 : 16384;
			if (ncap > ADMINCLIENT_MAX_ANSWER + MAX_HEAD)
				ncap = ADMINCLIENT_MAX_ANSWER + MAX_HEAD;
			char *nb = realloc(rd.buf, ncap + 1);
			if (!nb) {
				done = fail(err, errlen, "out of memory");
				break;
			}
			rd.buf = nb;
			cap = ncap;
		}
		set_socket_timeouts(fd, deadline);
		ssize_t n = recv(fd, rd.buf + rd.len, cap - rd.len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			done = fail(err, errlen, "no answer from the admin API at %s within %g s",
				    req->admin, req->timeout);
			break;
		}
		if (n < 0 && !(errno == ECONNRESET && rd.len)) {
			int e = !rd.len && send_errno ? send_errno : errno;
			done = fail(err, errlen, "the admin API at %s: %s", req->admin, strerror(e));
			break;
		}
		if (n > 0)
			rd.len += (size_t)n;
		char why[256];
		if (sink->fd >= 0 && n > 0) {
			done = sink_body(fd, &rd, sink, deadline, ans, why, sizeof(why));
			if (done < 0)
				fail(err, errlen, "bad answer from the admin API at %s: %s", req->admin,
				     why);
			if (done)
				break;
		}
		done = answer_parse(&rd, n <= 0, ans, why, sizeof(why));
		if (done < 0)
			fail(err, errlen, "bad answer from the admin API at %s: %s", req->admin, why);
	}
	free(rd.buf);
	return done < 0 ? -1 : 0;
}

static int exchange(const struct adminclient_request *req, struct sink *sink,
		    struct adminclient_answer *ans, char *err, size_t errlen)
{
	memset(ans, 0, sizeof(*ans));
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += (time_t)req->timeout;
	deadline.tv_nsec += (long)((req->timeout - floor(req->timeout)) * 1e9);
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}

	const struct sockaddr *sa = (const struct sockaddr *)&req->addr->ss;
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail(err, errlen, "cannot reach the admin socket at %s: %s", req->admin,
			    strerror(errno));
	set_socket_timeouts(fd, &deadline);
	int rc;
	do
		rc = connect(fd, sa, req->addr->len);
	while (rc < 0 && errno == EINTR);
	if (rc < 0) {
		int e = errno == EINPROGRESS || errno == EAGAIN ? ETIMEDOUT : errno;
		close(fd);
		return fail(err, errlen, "cannot reach the admin socket at %s: %s", req->admin,
			    strerror(e));
	}

	size_t req_len = 0;
	char *text = request_text(req, &req_len);
	if (!text) {
		close(fd);
		return fail(err, errlen, "out of memory");
	}
	int send_errno = 0;
	for (size_t sent = 0; sent < req_len;) {
		set_socket_timeouts(fd, &deadline);
		ssize_t n = send(fd, text + sent, req_len - sent, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			/* The server may have answered early (413, 401): read what it said. */
			send_errno = errno == EAGAIN ? ETIMEDOUT : errno;
			break;
		}
		sent += (size_t)n;
	}
	free(text);
	if (send_errno == ETIMEDOUT) {
		close(fd);
		return fail(err, errlen, "no answer from the admin API at %s within %g s", req->admin,
			    req->timeout);
	}

	rc = read_answer(fd, req, &deadline, send_errno, sink, ans, err, errlen);
	close(fd);
	return rc;
}

int adminclient_exchange(const struct adminclient_request *req, struct adminclient_answer *ans,
			 char *err, size_t errlen)
{
	struct sink none = { .fd = -1 };
	return exchange(req, &none, ans, err, errlen);
}

int adminclient_exchange_to_fd(const struct adminclient_request *req, int fd, uint64_t *written,
			       struct adminclient_answer *ans, char *err, size_t errlen)
{
	struct sink sink = { .fd = fd, .written = written };
	*written = 0;
	return exchange(req, &sink, ans, err, errlen);
}
