/* upstream: upstream config and the per-worker keep-alive pools. */
#include "upstream.h"

#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>

#include "conf.h"
#include "dns.h"
#include "duration.h"
#include "log.h"
#include "stats.h"

static const char *const upstream_names[UPSTREAM_COUNT] = { "old", "new" };

enum upstream_id upstream_other(enum upstream_id id)
{
	return id == UPSTREAM_OLD ? UPSTREAM_NEW : UPSTREAM_OLD;
}

/* "http://host[:port][/]" -> host, port. */
static int parse_url(struct conf_reader *r, const config_setting_t *at, struct upstream_conf *u)
{
	const char *url = u->url, *rest;
	if (strncmp(url, "http://", 7) == 0) {
		rest = url + 7;
		u->port = 80;
	} else if (strncmp(url, "https://", 8) == 0) {
		rest = url + 8;
		u->port = 443;
		u->https = true;
	} else {
		conf_error(r, at, "%s: the url must start with http:// or https://", url);
		return -1;
	}
	const char *host = rest, *host_end;
	if (*host == '[') {
		host_end = strchr(host, ']');
		if (!host_end) {
			conf_error(r, at, "%s: unterminated [ in the host", url);
			return -1;
		}
		host++;
		rest = host_end + 1;
	} else {
		host_end = host + strcspn(host, ":/?#");
		rest = host_end;
	}
	if (host_end == host) {
		conf_error(r, at, "%s: the url has no host", url);
		return -1;
	}
	u->host = strndup(host, (size_t)(host_end - host));
	if (*rest == ':') {
		char *end;
		long port = strtol(rest + 1, &end, 10);
		if (end == rest + 1 || port < 1 || port > 65535) {
			conf_error(r, at, "%s: invalid port", url);
			return -1;
		}
		u->port = (uint16_t)port;
		rest = end;
	}
	if (*rest && strcmp(rest, "/") != 0) {
		conf_error(r, at, "%s: a path after the host is not supported", url);
		return -1;
	}
	return 0;
}

void upstream_conf_defaults(struct upstream_conf *u, enum upstream_id id)
{
	memset(u, 0, sizeof(*u));
	u->name = upstream_names[id];
	u->health.path = strdup("/");
	u->health.timeout = 2.0;
	u->health.interval = 10.0;
	u->connect_timeout = 5.0;
	u->read_timeout = 60.0;
	u->send_timeout = 60.0;
	u->idle_timeout = 30.0;
	u->pool_size = 64;
	u->max_active = 0;
	u->queue = 1000;
	u->queue_timeout = 10.0;
}

static int parse_one(struct conf_reader *r, const config_setting_t *s, struct upstream_conf *u)
{
	static const char *const keys[] = { "url", "host_header", "preserve_host", "health",
					    "connect_timeout", "read_timeout", "send_timeout",
					    "idle_timeout", "pool_size", "max_active", "queue",
					    "queue_timeout", "tls", NULL };
	int status = conf_check_keys(r, s, keys) ? 0 : -1;
	u->defined = true;
	u->line = config_setting_source_line(s);
	int rc = conf_get_string(r, s, "url", &u->url);
	if (rc == 0) {
		conf_error(r, s, "upstreams.%s: missing required key 'url'", u->name);
		status = -1;
	} else if (rc < 0) {
		status = -1;
	} else {
		const config_setting_t *at = config_setting_get_member(s, "url");
		if (parse_url(r, at, u) < 0)
			status = -1;
	}
	const config_setting_t *tls = config_setting_get_member(s, "tls");
	char where[64];
	snprintf(where, sizeof(where), "upstreams.%s.tls", u->name);
	if (u->https && u->host) {
		if (tls_upstream_conf_parse(r, tls, where, u->host, &u->tls) < 0)
			status = -1;
	} else if (tls) {
		conf_error(r, tls, "%s: the url is http://, so there is no TLS to configure "
			   "(use https://)", where);
		status = -1;
	}
	if (conf_get_string(r, s, "host_header", &u->host_header) < 0 ||
	    conf_get_bool(r, s, "preserve_host", &u->preserve_host) < 0)
		status = -1;
	if (!u->host_header && u->host) {
		char buf[300];
		bool v6 = strchr(u->host, ':') != NULL;
		if (u->port == (u->https ? 443 : 80))
			snprintf(buf, sizeof(buf), v6 ? "[%s]" : "%s", u->host);
		else
			snprintf(buf, sizeof(buf), v6 ? "[%s]:%u" : "%s:%u", u->host, u->port);
		u->host_header = strdup(buf);
	}
	const config_setting_t *h = config_setting_get_member(s, "health");
	if (h) {
		static const char *const hkeys[] = { "path", "timeout", "interval", NULL };
		if (!conf_check_keys(r, h, hkeys) ||
		    conf_get_string(r, h, "path", &u->health.path) < 0 ||
		    conf_get_duration(r, h, "timeout", 0.001, 3600, &u->health.timeout) < 0 ||
		    conf_get_duration(r, h, "interval", 0.1, 86400, &u->health.interval) < 0)
			status = -1;
		else if (u->health.path[0] != '/') {
			conf_error(r, config_setting_get_member(h, "path"),
				   "upstreams.%s.health.path must start with /", u->name);
			status = -1;
		}
	}
	long long v;
	if (conf_get_duration(r, s, "connect_timeout", 0.001, 3600, &u->connect_timeout) < 0 ||
	    conf_get_duration(r, s, "read_timeout", 0.001, 86400, &u->read_timeout) < 0 ||
	    conf_get_duration(r, s, "send_timeout", 0.001, 86400, &u->send_timeout) < 0 ||
	    conf_get_duration(r, s, "idle_timeout", 0.001, 86400, &u->idle_timeout) < 0 ||
	    conf_get_duration(r, s, "queue_timeout", 0, 3600, &u->queue_timeout) < 0)
		status = -1;
	if ((rc = conf_get_int(r, s, "pool_size", 0, 100000, &v)) < 0)
		status = -1;
	else if (rc)
		u->pool_size = (unsigned)v;
	if ((rc = conf_get_int(r, s, "max_active", 0, 1000000, &v)) < 0)
		status = -1;
	else if (rc)
		u->max_active = (unsigned)v;
	if ((rc = conf_get_int(r, s, "queue", 0, 1000000, &v)) < 0)
		status = -1;
	else if (rc)
		u->queue = (unsigned)v;
	return status;
}

int upstream_conf_parse(struct conf_reader *r, const config_setting_t *s, struct config *cfg)
{
	if (!config_setting_is_group(s)) {
		conf_error(r, s, "upstreams: expected a group { old = {...}; new = {...}; }");
		return -1;
	}
	static const char *const names[] = { "old", "new", NULL };
	int status = conf_check_keys(r, s, names) ? 0 : -1;
	for (int i = 0; i < UPSTREAM_COUNT; i++) {
		const config_setting_t *u = config_setting_get_member(s, upstream_names[i]);
		if (!u) {
			conf_error(r, s, "upstreams: missing required upstream '%s'", upstream_names[i]);
			status = -1;
		} else if (!config_setting_is_group(u)) {
			conf_error(r, u, "upstreams.%s: expected a group", upstream_names[i]);
			status = -1;
		} else if (parse_one(r, u, &cfg->upstream[i]) < 0) {
			status = -1;
		}
	}
	return status;
}

void upstream_conf_free(struct upstream_conf *u)
{
	free(u->url);
	free(u->host);
	free(u->host_header);
	free(u->health.path);
	tls_upstream_conf_free(&u->tls);
	memset(u, 0, sizeof(*u));
}

/* ---- per-worker pool ---- */

struct upstream_pool {
	struct event_base *base;
	const struct upstream_conf *conf;
	enum upstream_id id;
	struct upstream_conn *idle;   /* most recently used first */
	unsigned n_idle;
	bool retired;
	struct stats *stats;          /* the worker's, NULL for a private pool */
};

static_assert(UPSTREAM_COUNT == STATS_UPSTREAMS, "stats.h counts the upstreams");

static void idle_count(struct upstream_pool *p, int delta)
{
	p->n_idle = (unsigned)((int)p->n_idle + delta);
	if (p->stats)
		STATS_ADD(p->stats, pool_idle[p->id], delta);
}

struct upstream_pool *upstream_pool_new(struct event_base *base, const struct upstream_conf *conf,
					enum upstream_id id, struct stats *stats)
{
	struct upstream_pool *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->base = base;
	p->conf = conf;
	p->id = id;
	p->stats = stats;
	return p;
}

const struct upstream_conf *upstream_pool_conf(const struct upstream_pool *p)
{
	return p->conf;
}

enum upstream_id upstream_pool_id(const struct upstream_pool *p)
{
	return p->id;
}

struct event_base *upstream_pool_base(const struct upstream_pool *p)
{
	return p->base;
}

static void idle_unlink(struct upstream_conn *uc)
{
	struct upstream_pool *p = uc->pool;
	if (uc->prev)
		uc->prev->next = uc->next;
	else
		p->idle = uc->next;
	if (uc->next)
		uc->next->prev = uc->prev;
	uc->prev = uc->next = NULL;
	idle_count(p, -1);
}

static void connect_free(struct upstream_connect *k);

static void conn_close(struct upstream_conn *uc)
{
	if (uc->connecting)
		connect_free(uc->connecting);
	if (uc->bev)
		bufferevent_free(uc->bev);
	free(uc);
}

void upstream_pool_free(struct upstream_pool *p)
{
	if (!p)
		return;
	while (p->idle) {
		struct upstream_conn *uc = p->idle;
		idle_unlink(uc);
		conn_close(uc);
	}
	free(p);
}

void upstream_pool_retire(struct upstream_pool *p)
{
	p->retired = true;
	while (p->idle) {
		struct upstream_conn *uc = p->idle;
		idle_unlink(uc);
		conn_close(uc);
	}
}

/* An idle connection that becomes readable was closed by the upstream (or
 * sent bytes nobody asked for): either way it cannot be reused. */
static void idle_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	struct upstream_conn *uc = arg;
	idle_unlink(uc);
	conn_close(uc);
}

static void idle_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	idle_read_cb(bev, arg);
}

/* ---- making a new connection: each address in turn, then TLS ---- */

struct upstream_connect {
	struct upstream_conn *uc;
	upstream_ready_fn ready;
	void *arg;
	struct addr *addrs;          /* a copy of the DNS answer when it started */
	size_t n_addrs, next;
	int fd;
	struct event *ev;            /* connect wait, or an early failure */
	char why[320];               /* the last failure */
};

static void connect_free(struct upstream_connect *k)
{
	if (k->ev)
		event_free(k->ev);
	if (k->fd >= 0)
		close(k->fd);
	free(k->addrs);
	k->uc->connecting = NULL;
	free(k);
}

/* Hands the result to the caller. On failure uc stays, bev-less, for the
 * caller to put back. */
static void connect_done(struct upstream_connect *k, const char *error)
{
	struct upstream_conn *uc = k->uc;
	upstream_ready_fn ready = k->ready;
	void *arg = k->arg;
	char why[sizeof(k->why)];
	if (error)
		snprintf(why, sizeof(why), "%s", error);
	connect_free(k);
	ready(arg, uc, error ? why : NULL);
}

static void tls_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct upstream_conn *uc = arg;
	struct upstream_connect *k = uc->connecting;
	if (what & BEV_EVENT_CONNECTED) {
		bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
		bufferevent_set_timeouts(bev, NULL, NULL);
		connect_done(k, NULL);
		return;
	}
	/* libevent moves OpenSSL's errors off the thread's queue into its own. */
	char fallback[160], reason[200];
	unsigned long e = bufferevent_get_openssl_error(bev);
	if (what & BEV_EVENT_TIMEOUT)
		snprintf(fallback, sizeof(fallback), "no TLS handshake within %.1fs",
			 uc->pool->conf->connect_timeout);
	else if (e)
		ERR_error_string_n(e, fallback, sizeof(fallback));
	else if (what & BEV_EVENT_EOF)
		snprintf(fallback, sizeof(fallback), "the peer closed the connection during the handshake");
	else
		snprintf(fallback, sizeof(fallback), "%s", strerror(errno));
	tls_failure_reason(bufferevent_openssl_get_ssl(bev), fallback, reason, sizeof(reason));
	bufferevent_free(bev);
	uc->bev = NULL;
	snprintf(k->why, sizeof(k->why), "TLS with %s: %s", uc->peer, reason);
	connect_done(k, k->why);
}

/* The TCP connection is up: a plain bufferevent, or the TLS handshake. */
static void connect_established(struct upstream_connect *k)
{
	struct upstream_conn *uc = k->uc;
	const struct upstream_conf *c = uc->pool->conf;
	int fd = k->fd;
	k->fd = -1; /* the bufferevent owns it now */
	uc->tcp_up = true;
	uc->addr = k->addrs[k->next - 1];
	if (!c->https) {
		uc->bev = bufferevent_socket_new(uc->pool->base, fd, BEV_OPT_CLOSE_ON_FREE);
		if (!uc->bev) {
			close(fd);
			connect_done(k, "out of memory");
			return;
		}
		connect_done(k, NULL);
		return;
	}
	SSL *ssl = tls_client_ssl(&c->tls);
	if (ssl)
		uc->bev = bufferevent_openssl_socket_new(uc->pool->base, fd, ssl,
							 BUFFEREVENT_SSL_CONNECTING,
							 BEV_OPT_CLOSE_ON_FREE);
	if (!uc->bev) {
		if (ssl)
			SSL_free(ssl);
		close(fd);
		connect_done(k, "cannot start TLS (out of memory)");
		return;
	}
	/* Many servers close without close_notify; the HTTP framing (length or
	 * chunked) is what tells a whole answer from a cut one. */
	bufferevent_openssl_set_allow_dirty_shutdown(uc->bev, 1);
	struct timeval ct = duration_tv(c->connect_timeout);
	bufferevent_set_timeouts(uc->bev, &ct, &ct);
	bufferevent_setcb(uc->bev, NULL, NULL, tls_event_cb, uc);
	bufferevent_enable(uc->bev, EV_READ | EV_WRITE);
}

static void connect_next(struct upstream_connect *k);

static void connect_wait_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upstream_connect *k = arg;
	const struct upstream_conf *c = k->uc->pool->conf;
	if (k->fd < 0) { /* every address failed at once: report from the loop */
		connect_done(k, k->why);
		return;
	}
	int err = 0;
	socklen_t len = sizeof(err);
	if (what & EV_TIMEOUT)
		err = ETIMEDOUT;
	else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err == 0) {
		event_free(k->ev);
		k->ev = NULL;
		connect_established(k);
		return;
	}
	if (err == ETIMEDOUT)
		snprintf(k->why, sizeof(k->why), "connect to %s: no answer within %.1fs",
			 k->uc->peer, c->connect_timeout);
	else
		snprintf(k->why, sizeof(k->why), "connect to %s: %s", k->uc->peer, strerror(err));
	log_info("upstream %s: %s%s", c->name, k->why,
		 k->next < k->n_addrs ? ", trying the next address" : "");
	close(k->fd);
	k->fd = -1;
	event_free(k->ev);
	k->ev = NULL;
	connect_next(k);
}

/* Starts a connect to the next address. Failures that show at once move
 * on; when none is left, the failure is reported from the loop (the caller
 * of upstream_conn_get() must not be called back from inside it). */
static void connect_next(struct upstream_connect *k)
{
	struct upstream_conn *uc = k->uc;
	const struct upstream_conf *c = uc->pool->conf;
	while (k->next < k->n_addrs) {
		const struct addr *a = &k->addrs[k->next++];
		addr_format((const struct sockaddr *)&a->ss, a->len, uc->peer, sizeof(uc->peer));
		int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			snprintf(k->why, sizeof(k->why), "socket for %s: %s", uc->peer, strerror(errno));
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0 && errno != EINPROGRESS) {
			snprintf(k->why, sizeof(k->why), "connect to %s: %s", uc->peer, strerror(errno));
			log_info("upstream %s: %s", c->name, k->why);
			close(fd);
			continue;
		}
		k->fd = fd;
		k->ev = event_new(uc->pool->base, fd, EV_WRITE, connect_wait_cb, k);
		struct timeval ct = duration_tv(c->connect_timeout);
		if (!k->ev || event_add(k->ev, &ct) < 0)
			break;
		return;
	}
	if (k->fd >= 0) {
		close(k->fd);
		k->fd = -1;
	}
	if (k->ev)
		event_free(k->ev);
	k->ev = event_new(uc->pool->base, -1, 0, connect_wait_cb, k);
	if (k->ev)
		event_active(k->ev, EV_TIMEOUT, 0);
}

static bool answer_has(const struct dns_answer *a, const struct addr *addr)
{
	for (size_t i = 0; a && i < a->n; i++)
		if (a->addrs[i].len == addr->len && memcmp(&a->addrs[i].ss, &addr->ss, addr->len) == 0)
			return true;
	return false;
}

struct upstream_conn *upstream_conn_get(struct upstream_pool *p, upstream_ready_fn ready,
					void *arg, const char **why)
{
	const struct upstream_conf *c = p->conf;
	const struct dns_answer *now = c->dns ? dns_current(c->dns) : NULL;
	while (p->idle) {
		struct upstream_conn *uc = p->idle;
		idle_unlink(uc);
		/* DNS moved the upstream away from this address: new requests
		 * follow the answer, so the old connection is not reused. */
		bool same = uc->answer == now && now && uc->answer_resolved == now->resolved;
		if (!same && !answer_has(now, &uc->addr)) {
			conn_close(uc);
			continue;
		}
		uc->answer = now;
		uc->answer_resolved = now ? now->resolved : 0;
		bufferevent_setcb(uc->bev, NULL, NULL, NULL, NULL);
		bufferevent_set_timeouts(uc->bev, NULL, NULL);
		uc->reused = true;
		return uc;
	}
	return upstream_conn_open(p, now, ready, arg, why);
}

struct upstream_conn *upstream_conn_open(struct upstream_pool *p, const struct dns_answer *answer,
					 upstream_ready_fn ready, void *arg, const char **why)
{
	if (!answer || answer->n == 0) {
		*why = "the upstream's name has no address (yet): see `cutover status`";
		return NULL;
	}
	struct upstream_conn *uc = calloc(1, sizeof(*uc));
	struct upstream_connect *k = calloc(1, sizeof(*k));
	struct addr *addrs = malloc(answer->n * sizeof(*addrs));
	if (!uc || !k || !addrs) {
		free(uc);
		free(k);
		free(addrs);
		*why = "out of memory";
		return NULL;
	}
	memcpy(addrs, answer->addrs, answer->n * sizeof(*addrs));
	uc->pool = p;
	uc->id = p->id;
	uc->answer = answer;
	uc->answer_resolved = answer->resolved;
	uc->connecting = k;
	k->uc = uc;
	k->ready = ready;
	k->arg = arg;
	k->addrs = addrs;
	k->n_addrs = answer->n;
	k->fd = -1;
	connect_next(k);
	return uc;
}

void upstream_conn_put(struct upstream_conn *uc, bool reusable)
{
	struct upstream_pool *p = uc->pool;
	if (!reusable || !uc->bev || p->retired || p->n_idle >= p->conf->pool_size ||
	    evbuffer_get_length(bufferevent_get_input(uc->bev)) ||
	    evbuffer_get_length(bufferevent_get_output(uc->bev))) {
		conn_close(uc);
		return;
	}
	struct timeval idle = duration_tv(p->conf->idle_timeout);
	/* The exchange's read budget stays: the input is empty, and any byte
	 * that comes while idle closes the connection anyway. */
	bufferevent_setcb(uc->bev, idle_read_cb, NULL, idle_event_cb, uc);
	bufferevent_set_timeouts(uc->bev, &idle, NULL);
	bufferevent_enable(uc->bev, EV_READ);
	uc->prev = NULL;
	uc->next = p->idle;
	if (p->idle)
		p->idle->prev = uc;
	p->idle = uc;
	idle_count(p, +1);
}
