/* upstream: upstream config and the per-worker keep-alive pools. */
#include "upstream.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "config.h"
#include "log.h"

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
		conf_error(r, at, "%s: https upstreams are not supported yet (they come with TLS)", url);
		return -1;
	} else {
		conf_error(r, at, "%s: the url must start with http://", url);
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

static int resolve(struct conf_reader *r, const config_setting_t *at, struct upstream_conf *u)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	char port[8];
	snprintf(port, sizeof(port), "%u", u->port);
	int rc = getaddrinfo(u->host, port, &hints, &res);
	if (rc != 0) {
		conf_error(r, at, "%s: cannot resolve '%s': %s", u->url, u->host, gai_strerror(rc));
		return -1;
	}
	size_t n = 0;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
		n++;
	u->addrs = calloc(n, sizeof(*u->addrs));
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		memcpy(&u->addrs[u->n_addrs].ss, ai->ai_addr, ai->ai_addrlen);
		u->addrs[u->n_addrs++].len = ai->ai_addrlen;
	}
	freeaddrinfo(res);
	return 0;
}

static void upstream_defaults(struct upstream_conf *u, enum upstream_id id)
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
	if (config_setting_get_member(s, "tls")) {
		conf_error(r, config_setting_get_member(s, "tls"),
			   "upstreams.%s.tls: upstream TLS is not supported yet", u->name);
		status = -1;
	}
	int rc = conf_get_string(r, s, "url", &u->url);
	if (rc == 0) {
		conf_error(r, s, "upstreams.%s: missing required key 'url'", u->name);
		status = -1;
	} else if (rc < 0) {
		status = -1;
	} else {
		const config_setting_t *at = config_setting_get_member(s, "url");
		if (parse_url(r, at, u) < 0 || resolve(r, at, u) < 0)
			status = -1;
	}
	if (conf_get_string(r, s, "host_header", &u->host_header) < 0 ||
	    conf_get_bool(r, s, "preserve_host", &u->preserve_host) < 0)
		status = -1;
	if (!u->host_header && u->host) {
		char buf[300];
		bool v6 = strchr(u->host, ':') != NULL;
		if (u->port == 80)
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
	for (int i = 0; i < UPSTREAM_COUNT; i++)
		upstream_defaults(&cfg->upstream[i], (enum upstream_id)i);
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
	free(u->addrs);
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
};

struct upstream_pool *upstream_pool_new(struct event_base *base, const struct upstream_conf *conf,
					enum upstream_id id)
{
	struct upstream_pool *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->base = base;
	p->conf = conf;
	p->id = id;
	return p;
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
	p->n_idle--;
}

static void conn_close(struct upstream_conn *uc)
{
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

static struct timeval tv_of(double seconds)
{
	struct timeval tv = { .tv_sec = (time_t)seconds };
	tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
	return tv;
}

struct upstream_conn *upstream_conn_get(struct upstream_pool *p)
{
	if (p->idle) {
		struct upstream_conn *uc = p->idle;
		idle_unlink(uc);
		bufferevent_setcb(uc->bev, NULL, NULL, NULL, NULL);
		bufferevent_set_timeouts(uc->bev, NULL, NULL);
		uc->reused = true;
		return uc;
	}
	const struct upstream_conf *c = p->conf;
	if (!c->n_addrs)
		return NULL;
	struct upstream_conn *uc = calloc(1, sizeof(*uc));
	if (!uc)
		return NULL;
	uc->pool = p;
	uc->id = p->id;
	uc->bev = bufferevent_socket_new(p->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!uc->bev) {
		free(uc);
		return NULL;
	}
	struct timeval ct = tv_of(c->connect_timeout);
	bufferevent_set_timeouts(uc->bev, &ct, &ct);
	if (bufferevent_socket_connect(uc->bev, (struct sockaddr *)&c->addrs[0].ss,
				       (int)c->addrs[0].len) < 0) {
		/* Immediate failures (e.g. no route) surface as an error event. */
		log_debug("upstream %s: connect failed at once", c->name);
	}
	int fd = bufferevent_getfd(uc->bev);
	if (fd >= 0) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	return uc;
}

void upstream_conn_put(struct upstream_conn *uc, bool reusable)
{
	struct upstream_pool *p = uc->pool;
	if (!reusable || p->retired || p->n_idle >= p->conf->pool_size ||
	    evbuffer_get_length(bufferevent_get_input(uc->bev)) ||
	    evbuffer_get_length(bufferevent_get_output(uc->bev))) {
		conn_close(uc);
		return;
	}
	struct timeval idle = tv_of(p->conf->idle_timeout);
	bufferevent_setcb(uc->bev, idle_read_cb, NULL, idle_event_cb, uc);
	bufferevent_setwatermark(uc->bev, EV_READ, 0, 0);
	bufferevent_set_timeouts(uc->bev, &idle, NULL);
	bufferevent_enable(uc->bev, EV_READ);
	uc->prev = NULL;
	uc->next = p->idle;
	if (p->idle)
		p->idle->prev = uc;
	p->idle = uc;
	p->n_idle++;
}
