/* conn: one client connection. It reads a request head, routes it, counts
 * it against its project, and hands it to the action its scope's mode
 * picks: a local answer (health, errors, maintenance), the gate (hold,
 * admission queue), or the forward action. An action that streams (forward;
 * later the spool) plugs in through struct conn_action and drives the
 * connection through conn_set_state() and the functions below. One request
 * at a time: pipelined bytes wait in the input until the answer before them
 * is out, so answers always go out in order. */
#ifndef CUTOVER_CONN_H
#define CUTOVER_CONN_H

#include <libconfig.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "gate.h"
#include "http1.h"
#include "upstream.h"

struct conf_reader;
struct config;
struct evbuffer;
struct event_base;
struct listen_conf;
struct log_batch;
struct conn;
struct project;
struct request;
struct response;
struct route;
struct spool_store;
struct spool_waiter;
struct stats;

/* The "limits" group: bounds on client connections. */
struct limits_conf {
	unsigned max_connections;    /* per worker */
	size_t max_request_line;     /* 414 past it */
	size_t max_header_bytes;     /* 431 past it */
	uint64_t max_body;           /* default for routes without max_body, 0 = none */
	double header_timeout;       /* to receive a whole request head */
	double body_timeout;         /* idle time while reading a request body */
	double keepalive_timeout;    /* idle time between requests */
	double send_timeout;         /* idle time while the client reads a response */
	double drain_timeout;        /* graceful stop and switch drains */
	unsigned max_parked;         /* requests parked by hold, per worker */
	size_t buffer_bytes;         /* per-direction buffering before backpressure */
	size_t body_buffer;          /* request body read before admission, 0 = off */
	uint64_t splice_min;         /* bodies this large go socket to socket (tunnel.h), 0 = never */
	uint64_t min_body_rate;      /* bytes/s a request body must average, 0 = off */
	double min_body_rate_grace;  /* seconds before min_body_rate applies */
	size_t projects;             /* registry entries for projects seen only in traffic */
};

/* Sets every field of L to its default. */
void limits_conf_defaults(struct limits_conf *l);
int limits_conf_parse(struct conf_reader *r, const config_setting_t *s, struct config *cfg);

/* What a worker lends its connections: conn.c never sees struct worker. */
struct conn_env {
	struct event_base *base;
	const struct config *cfg;                   /* the newest: each request takes it */
	struct upstream_pool *pools[UPSTREAM_COUNT];
	struct gate *gate;
	struct stats *stats;
	struct spool_store *spool;                  /* NULL = no spool.dir */
	struct spool_waiter *spool_waiter;          /* this loop's, with SPOOL */
	struct log_batch *access_log;               /* this loop's access lines; NULL = one write each */
	/* A whole head was read: route R and pick its action (dispatch.c). */
	void (*dispatch)(struct request *r);
	struct conn *conns;                         /* every open connection (conn.c's) */
	size_t n_conns;
	void (*closed)(void *arg);                  /* a connection was freed */
	void *closed_arg;
};

enum conn_state {
	CONN_READ_HEAD,        /* waiting for (the rest of) a request head, or idle */
	CONN_PARKED,           /* held by a hold: routed, the body unread */
	CONN_QUEUED,           /* waiting for a max_active slot: routed, the body unread */
	CONN_BUFFER_BODY,      /* reading the body (up to body_buffer) before admission */
	CONN_CONNECT,          /* forward: waiting for an upstream connection */
	CONN_SEND_BODY,        /* forward: streaming the request body upstream */
	CONN_AWAIT_RESPONSE,   /* forward: the request is sent, no answer yet */
	CONN_RELAY_RESPONSE,   /* forward: streaming the answer back */
	CONN_CLOSING,          /* flushing the last answer, then linger */
	CONN_LINGER,           /* half-closed: discarding input until EOF or a short timeout */
};

/* A streaming action: CONN calls these while the request is in one of the
 * action's states. */
struct conn_action {
	void (*readable)(struct request *r);     /* request body bytes wait in the input */
	void (*writable)(struct request *r);     /* the client's output has room again */
	void (*free)(struct request *r);         /* the request ends or the connection goes */
};

/* One request, from its first byte to the end of its answer; an idle
 * keep-alive connection holds none. */
struct request {
	struct conn *conn;
	const struct config *cfg;        /* the config it runs on, start to end */
	struct http1_parser parser;      /* the head's, then the chunked body's */
	char *head_copy;                 /* the head's bytes once they left the input */
	bool head_consumed;              /* no longer in the client's input */
	const struct route *route;
	struct project *project;         /* registry entry of its scope */
	const char *mode;                /* X-Cutover-Mode: the mode it was handled under */
	uint64_t max_body;               /* 0 = none */
	bool http10;
	bool head_method;
	bool body_buffered;              /* body_buffer is read (or the whole body) */
	bool continue_sent;              /* 100 Continue went out */
	const char *head_at;             /* where the head's slices point while in the input */
	double rate_since;               /* min_body_rate: since when, from how many bytes */
	uint64_t rate_mark;
	struct gate_waiter wait;         /* parked or queued */
	gate_release_fn queue_over;      /* where it goes on once buffered or admitted */
	struct http1_parser body_scan;   /* a chunked body checked while it is buffered */
	size_t body_scanned;
	const struct conn_action *action;
	void *action_state;

	/* for the access log: copies, the head's memory is gone by then */
	char method[16];
	char path[512];
	size_t path_len;
	char project_name[128];
	size_t project_len;
	enum upstream_id upstream_id;    /* the upstream it is forwarded or queued to */
	const char *upstream;            /* its name for the log; NULL = not forwarded */
	int status;
	uint64_t bytes_in, bytes_out;
	struct timespec wall_start;
	struct timespec start, upstream_start, upstream_end;

	/* Last: its header array (3 KiB) is not zeroed when a request starts;
	 * the parser fills what it uses (see request_new()). */
	struct http1_head head;          /* slices into the input, or into head_copy */
};

/* Takes ownership of FD (accepted, non-blocking) from listener LC (its
 * tls, when set, makes this a TLS connection). */
struct conn *conn_new(struct conn_env *env, int fd, const struct sockaddr *peer, socklen_t len,
		      const struct listen_conf *lc);
/* Graceful stop: idle connections close now, busy ones after their
 * current response. */
void conn_shutdown_all(struct conn_env *env);
/* Closes every connection at once (drain timeout, exit). */
void conn_free_all(struct conn_env *env);

/* ---- for actions ---- */

/* Sets the state and the client-side timeouts it allows (again, when S is
 * the current state). */
void conn_set_state(struct conn *c, enum conn_state s);
enum conn_state conn_state(const struct conn *c);
struct conn_env *conn_env(const struct conn *c);
struct evbuffer *conn_input(const struct conn *c);
struct evbuffer *conn_output(const struct conn *c);
const struct sockaddr *conn_peer(const struct conn *c);
bool conn_tls(const struct conn *c);
/* The client connection closes once the current answer is out. */
void conn_close_after(struct conn *c);
bool conn_closing_after(const struct conn *c);
/* The head leaves the client's input (once); its bytes count as read. */
void conn_consume_head(struct request *r);
/* The head leaves the input but stays readable (copied): the request
 * waits (parked, queued) while more bytes may arrive behind it. Returns -1
 * when out of memory. */
int conn_keep_head(struct request *r);
/* The head's slices point at the head again after reads that may have
 * moved the input's memory (a body read behind the head). */
void conn_head_refresh(struct request *r);
/* The client shut its sending side: no more input will come. */
bool conn_input_eof(const struct conn *c);
/* True once R's body fell below limits.min_body_rate, on average since its
 * body began, after the grace. BACKPRESSURED: cutover is not reading (the
 * upstream is slow), so the count starts again instead. */
bool conn_body_too_slow(struct request *r, bool backpressured);
/* Sends what the output holds now (a small TLS answer as one record). */
void conn_flush(struct conn *c);
/* Reads the client's body on directly up to the read budget (see bev.h). */
void conn_read_more(struct conn *c);
/* The client's socket when it is plain TCP (not TLS), for a body moved
 * without the buffers (tunnel.h); else -1. */
int conn_plain_fd(const struct conn *c);
/* Stops (false) or resumes (true) reading the client into the input, while
 * a tunnel takes the body from the socket. A client that shut its sending
 * side is not read again. */
void conn_reading(struct conn *c, bool on);
/* A tunnel saw the client shut its sending side: as when the buffers see
 * it, nothing more is read and the connection closes after the answer. */
void conn_input_ended(struct conn *c);
/* Answers R locally with RESP (status, body...; Date and X-Cutover-Mode
 * added) and ends it. CLOSE: the connection closes after it. */
void conn_respond(struct request *r, struct response *resp, bool close);
/* An error answer ("STATUS Reason: WHY"), then the connection closes. */
void conn_respond_error(struct request *r, int status, const char *why);
/* The action queued the whole answer: R ends (access log, next request). */
void conn_request_done(struct request *r);
/* Cuts the connection at once (an answer already begun cannot be completed). */
void conn_abort(struct conn *c);

#endif
