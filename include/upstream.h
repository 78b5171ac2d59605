/* upstream: the two upstreams (old, new), their config, and per worker a
 * keep-alive pool of connections to each. conn.c drives the exchange; this
 * module hands out connected (or connecting) bufferevents and takes them
 * back when the exchange ended cleanly. */
#ifndef CUTOVER_UPSTREAM_H
#define CUTOVER_UPSTREAM_H

#include <libconfig.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "addr.h"
#include "tls.h"

struct conf_reader;
struct config;
struct event_base;
struct event;
struct bufferevent;
struct dns_name;
struct dns_answer;
struct stats;

enum upstream_id { UPSTREAM_OLD, UPSTREAM_NEW, UPSTREAM_COUNT };

struct upstream_health_conf {
	char *path;
	double timeout, interval;
};

struct upstream_conf {
	const char *name;            /* "old" / "new" (static) */
	bool defined;
	char *url;
	char *host;                  /* from the URL */
	uint16_t port;
	bool https;
	struct tls_upstream_conf tls;        /* https only */
	char *host_header;           /* Host sent upstream; default host[:port] */
	bool preserve_host;          /* send the client's Host instead */
	struct upstream_health_conf health;
	double connect_timeout, read_timeout, send_timeout, idle_timeout;
	unsigned pool_size;          /* idle connections kept per worker */
	unsigned max_active;         /* 0 = unlimited */
	unsigned queue;
	double queue_timeout;
	/* Followed by the resolver (set by whoever owns it, before workers see
	 * this config); NULL in a config that was only checked. */
	struct dns_name *dns;
	int line;
};

/* Sets every field of U, upstream ID, to its default (U is not freed first). */
void upstream_conf_defaults(struct upstream_conf *u, enum upstream_id id);
/* Parses the top-level "upstreams" group into cfg->upstream[]. */
int upstream_conf_parse(struct conf_reader *r, const config_setting_t *s, struct config *cfg);
void upstream_conf_free(struct upstream_conf *u);
enum upstream_id upstream_other(enum upstream_id id);

struct upstream_pool;
struct upstream_conn;
struct upstream_connect;

/* Called once when a new connection is ready (ERROR NULL: uc->bev is set,
 * connected and, for https, past the handshake, with no callbacks) or
 * could not be made (ERROR says why, naming the address or the TLS cause;
 * uc->bev is NULL and the caller still releases uc with
 * upstream_conn_put(uc, false)). */
typedef void (*upstream_ready_fn)(void *arg, struct upstream_conn *uc, const char *error);

struct upstream_conn {
	struct bufferevent *bev;     /* NULL while connecting */
	struct upstream_pool *pool;
	enum upstream_id id;
	bool reused;                 /* came from the idle pool */
	struct upstream_conn *prev, *next;  /* idle list */
	struct upstream_connect *connecting; /* while a new connection is made */
	bool tcp_up;                 /* TCP connected (a failure after it is TLS's) */
	struct addr addr;            /* the address connected to */
	/* The DNS answer it was chosen from, compared (never read: it may be
	 * gone) with the current one to tell quickly whether it changed; the
	 * time guards against a new answer at a freed one's address. */
	const struct dns_answer *answer;
	time_t answer_resolved;
	char peer[64];               /* the address connected to, for logs */
	size_t budget;               /* bev_set_budget() as last applied; 0: not yet */
};

/* STATS (the worker's, or NULL) counts the idle connections. */
struct upstream_pool *upstream_pool_new(struct event_base *base, const struct upstream_conf *conf,
					enum upstream_id id, struct stats *stats);
const struct upstream_conf *upstream_pool_conf(const struct upstream_pool *p);
enum upstream_id upstream_pool_id(const struct upstream_pool *p);
struct event_base *upstream_pool_base(const struct upstream_pool *p);
void upstream_pool_free(struct upstream_pool *p);
/* A reload replaced P: its idle connections close now, the busy ones when
 * they are put back. */
void upstream_pool_retire(struct upstream_pool *p);

/* An idle pooled connection (uc->reused, uc->bev ready at once: READY is
 * not called), or a new one being made: each address of the upstream's
 * current DNS answer is tried in turn (connect_timeout each) until one
 * accepts, then the TLS handshake runs for https; READY is called once,
 * later, from the event loop. NULL with the reason in *WHY when nothing can
 * be tried (no address known). The caller sets the bufferevent's
 * callbacks. */
struct upstream_conn *upstream_conn_get(struct upstream_pool *p, upstream_ready_fn ready,
					void *arg, const char **why);
/* A new connection to the addresses of ANSWER (copied) rather than the
 * upstream's cached ones: preflight tries what DNS answers right now. */
struct upstream_conn *upstream_conn_open(struct upstream_pool *p, const struct dns_answer *answer,
					 upstream_ready_fn ready, void *arg, const char **why);
/* Ends the caller's use: back to the idle pool when REUSABLE and the pool
 * has room, otherwise closed (a connection still being made is abandoned). */
void upstream_conn_put(struct upstream_conn *uc, bool reusable);

#endif
