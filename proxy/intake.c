/* intake: a submission into the spool, acknowledged after group commit. */
#include "intake.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>

#include "addr.h"
#include "conf.h"
#include "conn.h"
#include "rewrite.h"
#include "http1.h"
#include "log.h"
#include "maintenance.h"
#include "project.h"
#include "replay.h"
#include "response.h"
#include "spool.h"
#include "spool_store.h"
#include "spool_waiter.h"
#include "state.h"

/* Decoded chunked bytes read ahead while the store has no room: enough to
 * make spool_write_append ask for a ROOM event, bounded. */
#define CHUNK_PROBE 4096

static const char default_ack[] =
	"<OpenRosaResponse xmlns=\"http://openrosa.org/http/response\">"
	"<message nature=\"submit_success\">Form received; it is delivered once "
	"maintenance ends.</message></OpenRosaResponse>";

/* A record being written. After spool_write_end, only the store's DONE or
 * FAILED ends it: if the request goes first (the device left), R becomes
 * NULL and the event frees it. */
struct intake {
	struct request *r;
	struct spool_write *wr;      /* while the body streams; NULL once ended or aborted */
	time_t until;                /* the scope's end of maintenance, for Retry-After */
	uint64_t remaining;          /* Content-Length bytes still to read */
	uint64_t body_count;         /* chunked: decoded bytes so far (max_body) */
	struct evbuffer *chunk;      /* chunked: decoded bytes the store has not taken yet */
	bool body_done;              /* chunked: the last chunk was read */
	/* Held from spool_write_begin to DONE or FAILED: its count of spooled
	 * records (the data path's "spool not empty") includes this one. */
	struct project *proj;
};

/* ---- what is spooled (pure) ---- */

static bool is_digest(const char *v, size_t n)
{
	return n >= 6 && strncasecmp(v, "Digest", 6) == 0 && (n == 6 || v[6] == ' ' || v[6] == '\t');
}

bool intake_wants(const struct http1_head *h, enum route_spool_auth auth)
{
	if (!http1_token_eq(h->method, h->method_len, "POST"))
		return false;
	bool credentials = false;
	for (size_t i = 0; i < h->n_headers; i++) {
		const struct http1_header *f = &h->headers[i];
		if (!http1_token_eq(f->name, f->name_len, "authorization"))
			continue;
		if (is_digest(f->value, f->value_len))
			return false;
		credentials = true;
	}
	return credentials || auth != ROUTE_SPOOL_AUTH_REQUIRED;
}

bool intake_is_hop_by_hop(const struct http1_head *h, const char *name, size_t len)
{
	return (len >= 6 && strncasecmp(name, "proxy-", 6) == 0) ||
	       (len == sizeof(INTAKE_PEER_HEADER) - 1 &&
		strncasecmp(name, INTAKE_PEER_HEADER, len) == 0) ||
	       rewrite_is_hop_by_hop(h, name, len);
}

size_t intake_filter_head(const struct http1_head *h, const char *raw, size_t len, char *out)
{
	const char *p = raw, *end = raw + len;
	size_t o = 0;
	bool first = true;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
		const char *colon = first ? NULL : memchr(p, ':', n);
		first = false;
		if (!colon || !intake_is_hop_by_hop(h, p, (size_t)(colon - p))) {
			memcpy(out + o, p, n);
			o += n;
		}
		p += n;
	}
	return o;
}

/* ---- the action ---- */

/* KEPT: the record is stored (still counted, now as pending). */
static void intake_release(struct intake *in, bool kept)
{
	if (!in->proj)
		return;
	if (!kept)
		project_spooled_add(in->proj, -1);
	project_put(in->proj);
	in->proj = NULL;
}

static void intake_free(struct intake *in)
{
	intake_release(in, false);
	if (in->chunk)
		evbuffer_free(in->chunk);
	free(in);
}

static void action_free(struct request *r)
{
	struct intake *in = r->action_state;
	if (!in)
		return;
	r->action_state = NULL;
	r->action = NULL;
	if (in->wr) {
		spool_write_abort(in->wr); /* the device keeps its form: nothing stays */
		intake_free(in);
		return;
	}
	if (in->chunk) {
		evbuffer_free(in->chunk);
		in->chunk = NULL;
	}
	in->r = NULL; /* its DONE or FAILED frees it */
}

/* Refusals are logged at most once a second per worker, with a count: a
 * full spool must not flood the log too. Never a header value. */
static _Thread_local struct log_every refusals;

static void log_refusal(const struct request *r, const char *why)
{
	unsigned long n;
	if (!log_every_due(&refusals, 1.0, &n))
		return;
	char client[64];
	addr_format_host(conn_peer(r->conn), client, sizeof(client));
	log_warn("spool: refused %lu submission%s since the last such line; latest %s %s %.*s: %s",
		 n, n == 1 ? "" : "s", client, r->method, (int)r->path_len, r->path, why);
}

/* 503 + Retry-After: the device keeps its form and comes back. CLOSE: its
 * body was not read to the end. */
static void refuse(struct request *r, time_t until, const char *why, bool close)
{
	log_refusal(r, why);
	char extra[48], body[256];
	snprintf(extra, sizeof(extra), "Retry-After: %d\r\n",
		 maintenance_retry_after(r->cfg->maintenance, until, time(NULL)));
	snprintf(body, sizeof(body), "503 Service Unavailable: the submission was not stored (%s), "
		 "retry later\n", why);
	struct response resp = {
		.status = 503,
		.body = body,
		.body_len = strlen(body),
		.extra_headers = extra,
	};
	conn_consume_head(r);
	conn_respond(r, &resp, close);
}

static const char *store_error(int err)
{
	switch (err) {
	case E2BIG:
		return "larger than spool.max_record_bytes";
	case ENOSPC:
		return "the spool is full (spool.max_bytes or the disk)";
	case EINVAL:
		return "the project or head cannot be stored";
	case ENOMEM:
		return "out of memory";
	default:
		return strerror(err);
	}
}

/* Ends the streaming with a refusal; the record is dropped. */
static void fail(struct intake *in, int status, const char *why)
{
	struct request *r = in->r;
	time_t until = in->until;
	if (in->wr)
		spool_write_abort(in->wr);
	r->action_state = NULL;
	r->action = NULL;
	intake_free(in);
	if (status == 503)
		refuse(r, until, why, true);
	else
		conn_respond_error(r, status, why);
}

/* Hands up to N bytes of FROM to the store; returns how many it took, or
 * -errno when the record failed. */
static ssize_t feed(struct intake *in, struct evbuffer *from, size_t n)
{
	size_t taken = 0;
	while (taken < n) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(from, -1, NULL, &v, 1) < 1)
			break;
		size_t want = v.iov_len < n - taken ? v.iov_len : n - taken;
		ssize_t got = spool_write_append(in->wr, v.iov_base, want);
		if (got < 0)
			return got;
		evbuffer_drain(from, (size_t)got);
		taken += (size_t)got;
		if ((size_t)got < want)
			break; /* full: a ROOM event follows */
	}
	return (ssize_t)taken;
}

/* Decodes chunked body bytes from the input while nothing decoded waits.
 * Returns -1 after refusing the request. */
static int decode_chunks(struct intake *in)
{
	struct request *r = in->r;
	struct evbuffer *src = conn_input(r->conn);
	while (!in->body_done && evbuffer_get_length(in->chunk) == 0 && evbuffer_get_length(src)) {
		size_t room = spool_write_room(in->wr);
		bool done = false;
		long used = http1_chunked_move(&r->parser, src, room ? room : CHUNK_PROBE, in->chunk,
					       &done);
		if (used < 0) {
			fail(in, 400, r->parser.error_reason);
			return -1;
		}
		r->bytes_in += (uint64_t)used;
		in->body_done = done;
		in->body_count += evbuffer_get_length(in->chunk);
		if (r->max_body && in->body_count > r->max_body) {
			fail(in, 413, "request body larger than the route's max_body");
			return -1;
		}
		if (used == 0)
			break;
	}
	return 0;
}

/* Moves body bytes from the client into the record while the store has
 * room; the client is not read while it has none (the input fills to its
 * watermark), and the ROOM event brings us back. */
static void pump(struct intake *in)
{
	struct request *r = in->r;
	struct conn *c = r->conn;
	struct evbuffer *src = conn_input(c);
	bool chunked = r->head.framing == HTTP1_BODY_CHUNKED;
	bool full = false;
	for (;;) {
		if (chunked && decode_chunks(in) < 0)
			return;
		struct evbuffer *from = chunked ? in->chunk : src;
		size_t avail = evbuffer_get_length(from);
		if (!chunked && avail > in->remaining)
			avail = (size_t)in->remaining;
		if (avail == 0)
			break;
		ssize_t got = feed(in, from, avail);
		if (got < 0) {
			fail(in, 503, store_error((int)-got));
			return;
		}
		if (!chunked) {
			in->remaining -= (uint64_t)got;
			r->bytes_in += (uint64_t)got;
		}
		if ((size_t)got < avail) {
			full = true;
			break;
		}
	}
	bool done = chunked ? in->body_done && evbuffer_get_length(in->chunk) == 0
			    : in->remaining == 0;
	if (done) {
		spool_write_end(in->wr); /* DONE or FAILED follows */
		in->wr = NULL;
		conn_set_state(c, CONN_AWAIT_RESPONSE);
		return;
	}
	if (!full && evbuffer_get_length(src) == 0 && conn_input_eof(c)) {
		fail(in, 400, "the client closed before the end of the request body");
		return;
	}
	/* No conn_read_more() here: bytes it reads get no read callback, and
	 * nothing else (no upstream write) would come back for them. */
	if (conn_body_too_slow(r, full))
		fail(in, 408, "request body slower than limits.min_body_rate");
}

static void action_readable(struct request *r)
{
	struct intake *in = r->action_state;
	if (in && in->wr)
		pump(in);
}

static void action_writable(struct request *r)
{
	(void)r;
}

static const struct conn_action intake_action = {
	.readable = action_readable,
	.writable = action_writable,
	.free = action_free,
};

/* The record is durable: the contract's acknowledgement. */
static void acknowledge(struct request *r, uint64_t id)
{
	const struct spool_conf *sc = r->cfg->spool;
	log_debug("spool: record %llu stored for %.*s", (unsigned long long)id,
		  (int)r->project_len, r->project_name);
	struct response resp = {
		.status = sc->response_status,
		.content_type = "text/xml; charset=utf-8",
		.body = sc->response_body ? sc->response_body : default_ack,
		.body_len = sc->response_body ? strlen(sc->response_body) : sizeof(default_ack) - 1,
		.extra_headers = "X-OpenRosa-Version: 1.0\r\n",
	};
	conn_respond(r, &resp, false);
}

void intake_event(const struct spool_event *ev)
{
	struct intake *in = ev->cookie;
	if (ev->kind == SPOOL_EVENT_ROOM) {
		if (in->r && in->wr)
			pump(in);
		return;
	}
	struct request *r = in->r;
	if (ev->kind == SPOOL_EVENT_DONE) {
		/* Stored after its scope left maintenance (it joined the tail):
		 * the replay takes it from here. */
		size_t len;
		const char *name = project_name(in->proj, &len);
		enum mode m = state_mode_for(state_current(), name, len);
		intake_release(in, true);
		if (m == MODE_OLD || m == MODE_NEW)
			replay_poke();
	}
	if (!r) {
		intake_free(in); /* the device left while its record was committed */
		return;
	}
	time_t until = in->until;
	/* The request ends here: its action goes first, then the answer. */
	r->action_state = NULL;
	r->action = NULL;
	intake_free(in);
	if (ev->kind == SPOOL_EVENT_DONE)
		acknowledge(r, ev->id);
	else
		refuse(r, until, store_error(ev->err), false);
}

/* The device may send its body now. */
static void send_continue(struct request *r)
{
	if (r->continue_sent || !r->head.expect_continue || r->head.framing == HTTP1_BODY_NONE ||
	    r->http10)
		return;
	r->continue_sent = true;
	evbuffer_add(conn_output(r->conn), "HTTP/1.1 100 Continue\r\n\r\n", 25);
	conn_flush(r->conn);
}

#define PEER_LINE_MAX 96

/* Appends the device's address and scheme as the last header line, for
 * the replay's X-Forwarded-*; a device's own such line was dropped. */
static size_t add_peer(struct conn *c, char *head, size_t len)
{
	char host[64];
	addr_format_host(conn_peer(c), host, sizeof(host));
	if (len < 2 || head[len - 1] != '\n')
		return len;
	size_t end = len >= 2 && head[len - 2] == '\r' ? len - 2 : len - 1;
	char line[PEER_LINE_MAX];
	int n = snprintf(line, sizeof(line), "%s: %s %s\r\n", INTAKE_PEER_HEADER, host,
			 conn_tls(c) ? "https" : "http");
	if (n < 0 || (size_t)n >= sizeof(line))
		return len;
	memcpy(head + end, line, (size_t)n);
	memcpy(head + end + (size_t)n, "\r\n", 2);
	return end + (size_t)n + 2;
}

/* The project as the record names it: a route without a project group
 * spools under "-" (the global scope). */
static void record_project(const struct request *r, char *out, size_t size)
{
	size_t n = r->project_len < size - 1 ? r->project_len : size - 1;
	if (n == 0) {
		snprintf(out, size, "-");
		return;
	}
	memcpy(out, r->project_name, n);
	out[n] = '\0';
}

void intake_start(struct request *r, time_t until)
{
	struct conn *c = r->conn;
	struct conn_env *env = conn_env(c);
	/* The head as received: still at the input's start, or copied when the
	 * request waited (hold, admission). */
	const char *raw = r->head_copy;
	if (!raw) {
		conn_head_refresh(r);
		raw = r->head_at;
	}
	struct intake *in = calloc(1, sizeof(*in));
	char *head = malloc(r->head.head_len + PEER_LINE_MAX);
	if (!in || !head || (r->head.framing == HTTP1_BODY_CHUNKED && !(in->chunk = evbuffer_new()))) {
		free(head);
		if (in)
			intake_free(in);
		refuse(r, until, "out of memory", r->head.framing != HTTP1_BODY_NONE);
		return;
	}
	size_t head_len = intake_filter_head(&r->head, raw, r->head.head_len, head);
	head_len = add_peer(c, head, head_len);
	char project[sizeof(r->project_name) + 1];
	record_project(r, project, sizeof(project));
	int64_t body_len = r->head.framing == HTTP1_BODY_LENGTH    ? (int64_t)r->head.content_length
			   : r->head.framing == HTTP1_BODY_CHUNKED ? -1
								   : 0;
	in->r = r;
	in->until = until;
	in->remaining = r->head.framing == HTTP1_BODY_LENGTH ? r->head.content_length : 0;
	in->wr = spool_write_begin(env->spool, env->spool_waiter, in, project, r->route->name, head,
				   head_len, body_len);
	int err = errno;
	free(head);
	if (in->wr) {
		in->proj = project_get(r->project_name, r->project_len);
		project_spooled_add(in->proj, 1);
	}
	if (!in->wr) {
		intake_free(in);
		refuse(r, until, store_error(err), r->head.framing != HTTP1_BODY_NONE);
		return;
	}
	r->action = &intake_action;
	r->action_state = in;
	conn_consume_head(r);
	send_continue(r);
	conn_set_state(c, CONN_SEND_BODY);
	pump(in);
}
