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
#include "httpclient.h"
#include "tls.h"

struct preflight {
	struct event_base *base;
	const struct upstream_conf *u;
	enum upstream_id id;
	struct upstream_pool *pool;     /* private: a preflight never reuses a connection */
	struct httpclient *hc;
	struct event *deliver;          /* a probe's start, through the loop */
	bool connected;
	json_t *result, *steps;
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
	httpclient_free(p->hc);
	upstream_pool_free(p->pool);
	preflight_done_fn done = p->done;
	void *arg = p->arg;
	json_t *result = p->result;
	free(p);
	done(arg, ok, result);
}

static void on_connected(void *arg)
{
	struct preflight *p = arg;
	p->connected = true;
	step(p, "connect", true, httpclient_peer(p->hc));
	if (p->u->https) {
		char detail[300];
		SSL *ssl = bufferevent_openssl_get_ssl(httpclient_bufferevent(p->hc));
		tls_peer_summary(ssl, detail, sizeof(detail));
		if (!p->u->tls.verify)
			snprintf(detail + strlen(detail), sizeof(detail) - strlen(detail),
				 " (not verified: tls.verify = false)");
		step(p, "tls", true, detail);
	}
}

static void on_head(void *arg, const struct http1_head *h)
{
	struct preflight *p = arg;
	char detail[160];
	snprintf(detail, sizeof(detail), "GET %s answered %d", p->u->health.path, h->status);
	if (h->status / 100 != 2) {
		finish(p, false, "health", detail);
		return;
	}
	step(p, "health", true, detail);
	finish(p, true, NULL, NULL);
}

static void on_body(void *arg)
{
	(void)arg; /* finished at the head */
}

static void on_failed(void *arg, int status, const char *why)
{
	(void)status;
	struct preflight *p = arg;
	if (p->connected) {
		finish(p, false, "health", why);
	} else if (httpclient_tcp_up(p->hc)) {
		/* After TCP is up, only the TLS handshake can have failed. */
		step(p, "connect", true, httpclient_peer(p->hc));
		finish(p, false, "tls", why);
	} else {
		finish(p, false, "connect", why);
	}
}

static const struct httpclient_ops preflight_ops = {
	.connected = on_connected,
	.head = on_head,
	.body = on_body,
	.failed = on_failed,
};

static void send_health(struct preflight *p, const struct dns_answer *answer);

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
	send_health(p, answer);
}

/* Connects to one of ANSWER's addresses and sends the health request. */
static void send_health(struct preflight *p, const struct dns_answer *answer)
{
	const char *why = "out of memory";
	struct evbuffer *head = evbuffer_new();
	p->pool = upstream_pool_new(p->base, p->u, p->id, NULL);
	if (!head || !p->pool ||
	    evbuffer_add_printf(head,
				"GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: cutover-preflight\r\n"
				"Connection: close\r\n\r\n",
				p->u->health.path, p->u->host_header) < 0) {
		if (head)
			evbuffer_free(head);
		finish(p, false, "connect", why);
		return;
	}
	struct httpclient_request req = {
		.head = head,
		.buffer_bytes = 64 * 1024 + 1,
		.deadline = p->u->health.timeout,
		.answer = answer,
	};
	p->hc = httpclient_start(p->pool, &req, &preflight_ops, p, &why);
	if (!p->hc)
		finish(p, false, "connect", why);
}

static struct preflight *preflight_new(struct event_base *base, const struct upstream_conf *u,
				       enum upstream_id id, preflight_done_fn done, void *arg)
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
	p->steps = p->result ? json_object_get(p->result, "steps") : NULL;
	if (!p->steps) {
		json_decref(p->result);
		free(p);
		return NULL;
	}
	return p;
}

struct preflight *preflight_start(struct event_base *base, struct dns_resolver *dns,
				  const struct upstream_conf *u, enum upstream_id id,
				  preflight_done_fn done, void *arg)
{
	struct preflight *p = preflight_new(base, u, id, done, arg);
	if (p && dns_lookup(dns, u->host, u->port, on_resolved, p) < 0) {
		json_decref(p->result);
		free(p);
		return NULL;
	}
	return p;
}

/* Through the loop, like a lookup's answer: DONE never runs inside
 * preflight_probe(). */
static void probe_deliver(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct preflight *p = arg;
	event_free(p->deliver);
	p->deliver = NULL;
	const struct dns_answer *a = p->u->dns ? dns_current(p->u->dns) : NULL;
	if (!a || a->n == 0) {
		finish(p, false, "resolve", p->u->dns ? "no address yet" : "not followed");
		return;
	}
	step(p, "resolve", true, "the current answer");
	send_health(p, a);
}

struct preflight *preflight_probe(struct event_base *base, const struct upstream_conf *u,
				  enum upstream_id id, preflight_done_fn done, void *arg)
{
	struct preflight *p = preflight_new(base, u, id, done, arg);
	if (!p)
		return NULL;
	p->deliver = evtimer_new(base, probe_deliver, p);
	if (!p->deliver) {
		json_decref(p->result);
		free(p);
		return NULL;
	}
	event_active(p->deliver, EV_TIMEOUT, 0);
	return p;
}

void preflight_cancel(struct preflight *p)
{
	if (p->deliver)
		event_free(p->deliver);
	httpclient_free(p->hc);
	upstream_pool_free(p->pool);
	json_decref(p->result);
	free(p);
}
