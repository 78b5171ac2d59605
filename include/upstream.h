/* upstream: the two upstreams (old, new), their config, and per worker a
 * keep-alive pool of connections to each. conn.c drives the exchange; this
 * module hands out connected (or connecting) bufferevents and takes them
 * back when the exchange ended cleanly. */
#ifndef CUTOVER_UPSTREAM_H
#define CUTOVER_UPSTREAM_H

#include <libconfig.h>
#include <stdbool.h>
#include <stdint.h>

#include "addr.h"

struct conf_reader;
struct config;
struct event_base;
struct bufferevent;

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
	char *host_header;           /* Host sent upstream; default host[:port] */
	bool preserve_host;          /* send the client's Host instead */
	struct upstream_health_conf health;
	double connect_timeout, read_timeout, send_timeout, idle_timeout;
	unsigned pool_size;          /* idle connections kept per worker */
	unsigned max_active;         /* 0 = unlimited */
	unsigned queue;
	double queue_timeout;
	struct addr *addrs;          /* resolved at load; c-ares later */
	size_t n_addrs;
	int line;
};

/* Parses the top-level "upstreams" group into cfg->upstream[]. */
int upstream_conf_parse(struct conf_reader *r, const config_setting_t *s, struct config *cfg);
void upstream_conf_free(struct upstream_conf *u);
enum upstream_id upstream_other(enum upstream_id id);

struct upstream_pool;

struct upstream_conn {
	struct bufferevent *bev;
	struct upstream_pool *pool;
	enum upstream_id id;
	bool reused;                 /* came from the idle pool */
	struct upstream_conn *prev, *next;  /* idle list */
};

struct upstream_pool *upstream_pool_new(struct event_base *base, const struct upstream_conf *conf,
					enum upstream_id id);
void upstream_pool_free(struct upstream_pool *p);
/* A reload replaced P: its idle connections close now, the busy ones when
 * they are put back. */
void upstream_pool_retire(struct upstream_pool *p);

/* An idle pooled connection, or a new one whose connect has been started
 * (the caller's event callback sees BEV_EVENT_CONNECTED or an error). The
 * caller sets the bufferevent's callbacks. NULL if no socket could be made. */
struct upstream_conn *upstream_conn_get(struct upstream_pool *p);
/* Ends the caller's use: back to the idle pool when REUSABLE and the pool
 * has room, otherwise closed. */
void upstream_conn_put(struct upstream_conn *uc, bool reusable);

#endif
