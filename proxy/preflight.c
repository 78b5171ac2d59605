/* preflight: resolve, connect, TLS, health request; one step after another. */
#include "preflight.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "dns.h"
#include "http1.h"
#include "tls.h"

struct preflight {
	struct event_base *base;
	const struct upstream_conf *u;
	enum upstream_id id;
	struct upstream_pool *pool;     /* private: a preflight never reuses a connection */
	struct upstream_conn *uc;
	struct event *timer;
	struct http1_parser parser;
	struct http1_head head;
	json_t *result, *steps;
	enum { STEP_RESOLVE, STEP_CONNECT, STEP_HEALTH } step;
	preflight_done_fn done;
	void *arg;
};

static void step(struct preflight *p, const char *name, bool ok, const char *detail)
{
	json_array_append_new(p->steps, json_pack("{s:s, s:b, s:s}", "step", name, "ok", ok,
						  "detail", detail));
}

static void finish(struct preflight *p, bool ok, const char *failed_step, const char *why)
{
	if (!ok) {
		step(p, failed_step, false, why);
		char err[400];
		snprintf(err, sizeof(err), "%s: %s", failed_step, why);
		json_object_set_new(p->result, "error", json_string(err));
	}
	json_object_set_new(p->result, "ok", json_boolean(ok));
	if (p->uc)
		upstream_conn_put(p->uc, false);
	upstream_pool_free(p->pool);
	event_free(p->timer);
	preflight_done_fn done = p->done;
	void *arg = p->arg;
	json_t *result = p->result;
	free(p);
	done(arg, ok, result);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct preflight *p = arg;
	char why[96];
	snprintf(why, sizeof(why), "no answer within %.1fs", p->u->health.timeout);
	finish(p, false, p->step == STEP_CONNECT ? "connect" : "health", why);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct preflight *p = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len = evbuffer_get_length(in);
	if (len > 65536)
		len = 65536;
	const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
	switch (http1_parse_head(&p->parser, buf, len, 65535, 65535, &p->head)) {
	case HTTP1_MORE:
		return;
	case HTTP1_ERROR:
		finish(p, false, "health", p->parser.error_reason ? p->parser.error_reason
								  : "malformed answer");
		return;
	case HTTP1_DONE:
		break;
	}
	char detail[160];
	snprintf(detail, sizeof(detail), "GET %s answered %d", p->u->health.path, p->head.status);
	if (p->head.status / 100 != 2) {
		finish(p, false, "health", detail);
		return;
	}
	step(p, "health", true, detail);
	finish(p, true, NULL, NULL);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	struct preflight *p = arg;
	const char *why = (what & BEV_EVENT_EOF) ? "connection closed before an answer"
		: (what & BEV_EVENT_TIMEOUT) ? "timed out"
					      : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR());
	finish(p, false, "health", why);
}

static void on_ready(void *arg, struct upstream_conn *uc, const char *error)
{
	struct preflight *p = arg;
	if (error) {
		/* After TCP is up, only the TLS handshake can have failed. */
		if (uc->tcp_up)
			step(p, "connect", true, uc->peer);
		finish(p, false, uc->tcp_up ? "tls" : "connect", error);
		return;
	}
	step(p, "connect", true, uc->peer);
	if (p->u->https) {
		char detail[300];
		SSL *ssl = bufferevent_openssl_get_ssl(uc->bev);
		tls_peer_summary(ssl, detail, sizeof(detail));
		if (!p->u->tls.verify)
			snprintf(detail + strlen(detail), sizeof(detail) - strlen(detail),
				 " (not verified: tls.verify = false)");
		step(p, "tls", true, detail);
	}
	p->step = STEP_HEALTH;
	bufferevent_setcb(uc->bev, on_read, NULL, on_event, p);
	bufferevent_enable(uc->bev, EV_READ | EV_WRITE);
	evbuffer_add_printf(bufferevent_get_output(uc->bev),
			    "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: cutover-preflight\r\n"
			    "Connection: close\r\n\r\n",
			    p->u->health.path, p->u->host_header);
}

static void on_resolved(void *arg, const struct dns_answer *answer, const char *error)
{
	struct preflight *p = arg;
	if (!answer) {
		finish(p, false, "resolve", error ? error : "no address");
		return;
	}
	char list[400] = "";
	for (size_t i = 0; i < answer->n; i++) {
		char one[80];
		addr_format((const struct sockaddr *)&answer->addrs[i].ss, answer->addrs[i].len, one,
			    sizeof(one));
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? " " : "", one);
	}
	if (answer->n == 0) {
		finish(p, false, "resolve", "no address");
		return;
	}
	step(p, "resolve", true, list);
	p->step = STEP_CONNECT;
	const char *why = NULL;
	p->pool = upstream_pool_new(p->base, p->u, p->id);
	p->uc = p->pool ? upstream_conn_open(p->pool, answer, on_ready, p, &why) : NULL;
	if (!p->uc) {
		finish(p, false, "connect", why ? why : "out of memory");
		return;
	}
	struct timeval tv = { .tv_sec = (time_t)p->u->health.timeout };
	tv.tv_usec = (suseconds_t)((p->u->health.timeout - (double)tv.tv_sec) * 1e6);
	evtimer_add(p->timer, &tv);
}

struct preflight *preflight_start(struct event_base *base, struct dns_resolver *dns,
				  const struct upstream_conf *u, enum upstream_id id,
				  preflight_done_fn done, void *arg)
{
	struct preflight *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->base = base;
	p->u = u;
	p->id = id;
	p->done = done;
	p->arg = arg;
	p->result = json_pack("{s:s, s:[]}", "upstream", u->name, "steps");
	p->steps = json_object_get(p->result, "steps");
	p->timer = evtimer_new(base, on_timeout, p);
	http1_parser_init(&p->parser, HTTP1_RESPONSE);
	if (dns_lookup(dns, u->host, u->port, on_resolved, p) < 0) {
		json_decref(p->result);
		event_free(p->timer);
		free(p);
		return NULL;
	}
	return p;
}
