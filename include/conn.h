/* conn: one client connection, an explicit state machine that reads a
 * request head, routes it, picks the action from the scope's mode and
 * drives the exchange with the upstream, streaming both bodies. */
#ifndef CUTOVER_CONN_H
#define CUTOVER_CONN_H

#include <libconfig.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct conf_reader;
struct config;
struct listen_conf;
struct worker;

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
};

/* Sets every field of L to its default. */
void limits_conf_defaults(struct limits_conf *l);
int limits_conf_parse(struct conf_reader *r, const config_setting_t *s, struct config *cfg);

enum conn_state {
	CONN_READ_HEAD,     /* waiting for (the rest of) a request head */
	CONN_PARKED,        /* held: the scope is on hold, the head stays unread */
	CONN_QUEUED,        /* waiting for a max_active slot, the head stays unread */
	CONN_CONNECT,       /* waiting for an upstream connection */
	CONN_FORWARD,       /* request head sent; body and/or response streaming */
	CONN_CLOSING,       /* flushing the last answer, then linger */
	CONN_LINGER,        /* half-closed: discarding input until EOF or a short timeout */
};

struct conn;

/* Takes ownership of FD (accepted, non-blocking) from listener LC (its
 * tls, when set, makes this a TLS connection). */
struct conn *conn_new(struct worker *w, int fd, const struct sockaddr *peer, socklen_t len,
		      const struct listen_conf *lc);
/* Graceful stop of every connection of W: idle ones close now, busy ones
 * after their current response. */
void conn_shutdown_all(struct worker *w);
/* Slots were freed: queued requests of W go on while there is room. */
void conn_admit_queued(struct worker *w);
/* The modes changed: parked requests of W whose scope left hold go on. */
void conn_state_changed(struct worker *w);
/* Closes every connection of W at once (drain timeout, exit). */
void conn_free_all(struct worker *w);

#endif
