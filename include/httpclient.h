/* httpclient: one HTTP/1.1 request/response exchange with an upstream, over
 * a connection from its pool (upstream_conn). The forward action, the
 * preflight and (later) the spool replay and health checks all use it.
 *
 * The caller gives a request head and a body source: none, bytes in memory
 * (sent by the client itself, so a retry can send them again), or a stream
 * the caller pushes as it arrives (httpclient_body_add/_end, whenever
 * httpclient_body_room() says the upstream side has room). The response
 * head is parsed (interim 1xx answers skipped) and handed over; the body is
 * pulled by the caller with httpclient_body_move(), decoded and re-framed
 * as it asks, within the budget it gives, so a slow reader slows the
 * upstream instead of filling memory.
 *
 * A reused pooled connection that turns out dead before any byte of an
 * answer (an interim 1xx included) is replaced once, when the request can
 * be sent again (no body, or a body in memory). Timeouts come from the upstream's config: connect, send (idle
 * while sending), read (from the end of the request to each byte of the
 * answer); an optional deadline bounds the whole exchange (probes).
 *
 * Every callback is the last thing the client does in that event: the
 * caller may free the exchange inside it. */
#ifndef CUTOVER_HTTPCLIENT_H
#define CUTOVER_HTTPCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http1.h"

struct bufferevent;
struct dns_answer;
struct evbuffer;
struct httpclient;
struct project;
struct stats;
struct upstream_pool;

enum httpclient_body {
	HTTPCLIENT_BODY_NONE,
	HTTPCLIENT_BODY_MEMORY,      /* req.body holds all of it; sent with Content-Length */
	HTTPCLIENT_BODY_LENGTH,      /* pushed by the caller, content_length bytes */
	HTTPCLIENT_BODY_CHUNKED,     /* pushed by the caller, sent chunked */
};

struct httpclient_request {
	/* Both taken over by httpclient_start(), even when it fails. */
	struct evbuffer *head;       /* the whole head, final CRLF included */
	enum httpclient_body body;
	struct evbuffer *body_bytes; /* HTTPCLIENT_BODY_MEMORY: the body; else NULL */
	bool head_method;            /* a HEAD request: the answer has no body */
	/* The caller moves the body into a sink whose own write callback brings
	 * it back to httpclient_body_move() (the forward action: the client's
	 * bufferevent): the client may then read ahead of what the socket
	 * signalled, in one syscall. Others get a body() callback per read. */
	bool read_ahead;
	size_t buffer_bytes;         /* per-direction buffering before backpressure */
	double deadline;             /* seconds for the whole exchange; 0 = none */
	/* A new connection to these addresses (copied) instead of the pool's
	 * idle ones and the upstream's cached answer: the preflight tries what
	 * DNS answers right now. */
	const struct dns_answer *answer;
	/* In-flight accounting while the exchange holds its connection: the
	 * project's counter and the worker's stats. NULL: not counted (cutover's
	 * own probes are not in flight). */
	struct project *project;
	struct stats *stats;
};

struct httpclient_ops {
	/* A new connection is ready (TCP, TLS) and the head is queued; a
	 * reused one is ready when httpclient_start() returns. Optional. */
	void (*connected)(void *arg);
	/* The upstream took bytes and has room again: push more of a streamed
	 * body. Optional for bodies not pushed. */
	void (*writable)(void *arg);
	/* The final response head; its slices are valid during the call only. */
	void (*head)(void *arg, const struct http1_head *resp);
	/* Response body bytes (or the end of a close-delimited body) wait:
	 * call httpclient_body_move(). */
	void (*body)(void *arg);
	/* The exchange failed: STATUS is what a proxy would answer (502, 504),
	 * WHY the cause (a connect failure names the address). The connection
	 * is released; the caller still frees the exchange. */
	void (*failed)(void *arg, int status, const char *why);
};

/* Starts an exchange on a pooled connection or a new one. NULL with the
 * reason in *WHY when nothing can be tried (no address known, no memory);
 * callbacks never run before this returns. */
struct httpclient *httpclient_start(struct upstream_pool *pool,
				    const struct httpclient_request *req,
				    const struct httpclient_ops *ops, void *arg, const char **why);
/* Ends the caller's use: a connection still held is closed (an exchange
 * cut short) or, after httpclient_body_move() reported the end, already
 * back in its pool. */
void httpclient_free(struct httpclient *hc);

/* The connection is up and the head queued (a new one: once connected()
 * was called; a pooled one: at once). */
bool httpclient_ready(const struct httpclient *hc);
/* Streamed bodies: bytes the upstream side can take now (0 while the
 * connection is being made). */
size_t httpclient_body_room(const struct httpclient *hc);
/* Moves N body bytes from SRC (zero-copy where it can), framed as the
 * request said; only as much as httpclient_body_room() allowed. */
void httpclient_body_add(struct httpclient *hc, struct evbuffer *src, size_t n);
/* The streamed body is complete (before the connection is up too: it ends
 * once the head went out). */
void httpclient_body_end(struct httpclient *hc);
/* The whole request went out (or was queued): the read timeout runs. */
bool httpclient_request_sent(const struct httpclient *hc);

enum httpclient_move {
	HTTPCLIENT_MORE,             /* more body to come */
	HTTPCLIENT_DONE,             /* the whole answer was moved; the connection is released */
	HTTPCLIENT_ERROR,            /* malformed or cut answer: see httpclient_error() */
};
/* Moves up to MAX bytes of response body (decoded) into DST, re-framed
 * as chunks when CHUNKED (with the last chunk at the end); *MOVED is what
 * was added to DST, framing included. */
enum httpclient_move httpclient_body_move(struct httpclient *hc, struct evbuffer *dst, size_t max,
					  bool chunked, size_t *moved);
const char *httpclient_error(const struct httpclient *hc);

/* Bodies the caller moves between sockets itself (splice, tunnel.h).
 * The connection's socket when it is up and plain TCP (not TLS); else -1. */
int httpclient_plain_fd(const struct httpclient *hc);
/* Nothing of a streamed request body waits in memory: bytes written to
 * the socket directly now follow what was sent. */
bool httpclient_body_flushed(const struct httpclient *hc);
/* HOLD: stop reading the answer into memory, the caller will take the
 * rest of its body from the socket; false: read again. */
void httpclient_body_hold(struct httpclient *hc, bool hold);
/* With the body held and every byte already read moved by
 * httpclient_body_move(): true, with what is left to take from the socket
 * (UINT64_MAX: until it closes). False while bytes wait in memory, for a
 * chunked body, or when nothing is left. */
bool httpclient_body_raw_left(const struct httpclient *hc, uint64_t *left);
/* N body bytes were taken from the socket: the exchange ends (DONE, the
 * connection back to its pool when it can be reused) or, with WHY (how the
 * move failed), is cut (ERROR, WHY in httpclient_error() with progress). */
enum httpclient_move httpclient_body_raw_end(struct httpclient *hc, uint64_t n, const char *why);

/* The response's framing, once the head arrived. */
enum http1_framing httpclient_response_framing(const struct httpclient *hc);
/* The address connected to, or being tried, for messages. */
const char *httpclient_peer(const struct httpclient *hc);
/* Only for the preflight's report: TCP came up (a failure after that is
 * the TLS handshake's), and the connection (its TLS session) once ready. */
bool httpclient_tcp_up(const struct httpclient *hc);
struct bufferevent *httpclient_bufferevent(const struct httpclient *hc);

#endif
