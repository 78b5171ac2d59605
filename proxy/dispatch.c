/* dispatch: health, route, project, scope mode, action. */
#include "dispatch.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "conf.h"
#include "conn.h"
#include "fleet.h"
#include "forward.h"
#include "intake.h"
#include "log.h"
#include "maintenance.h"
#include "project.h"
#include "response.h"
#include "route.h"
#include "spool.h"
#include "state.h"

#define HEALTH_PATH "/.well-known/cutover/health"

static struct request *request_of(struct gate_waiter *wt)
{
	return (struct request *)((char *)wt - offsetof(struct request, wait));
}

/* The path part of the target, for routing: no query, origin-form. */
static void target_path(const struct http1_head *h, const char **p, size_t *len)
{
	const char *t;
	size_t n;
	http1_origin_form(h, &t, &n);
	const char *q = memchr(t, '?', n);
	if (q)
		n = (size_t)(q - t);
	const char *hash = memchr(t, '#', n);
	if (hash)
		n = (size_t)(hash - t);
	*p = n ? t : "/";
	*len = n ? n : 1;
}

static void copy_for_log(struct request *r, const struct route_project *proj)
{
	size_t n = r->head.method_len < sizeof(r->method) - 1 ? r->head.method_len
							      : sizeof(r->method) - 1;
	memcpy(r->method, r->head.method, n);
	r->method[n] = '\0';
	r->path_len = r->head.target_len < sizeof(r->path) ? r->head.target_len : sizeof(r->path);
	memcpy(r->path, r->head.target, r->path_len);
	r->project_len = proj->len < sizeof(r->project_name) ? proj->len : sizeof(r->project_name);
	memcpy(r->project_name, proj->ptr, r->project_len);
}

static void answer_health(struct request *r)
{
	char body[96];
	snprintf(body, sizeof(body), "{\"status\":\"ok\",\"mode\":\"%s\"}\n", r->mode);
	conn_consume_head(r);
	if (r->head.framing != HTTP1_BODY_NONE)
		conn_close_after(r->conn);
	struct response resp = {
		.status = 200,
		.content_type = "application/json",
		.body = body,
		.body_len = strlen(body),
	};
	conn_respond(r, &resp, false);
}

/* The answer of a scope in maintenance (or a hold past its limits). The
 * head is consumed; a request body is not read, so the connection closes
 * after the answer (lingering, so the device still gets it). */
static void answer_maintenance(struct request *r, const struct scope_state *scope)
{
	struct conn *c = r->conn;
	const struct http1_header *accept = http1_find(&r->head, "accept");
	bool keep = !conn_closing_after(c) && r->head.keep_alive &&
		    r->head.framing == HTTP1_BODY_NONE;
	struct maintenance_request mr = {
		.route = r->route,
		.head = r->head_method,
		.method = r->head.method,
		.method_len = r->head.method_len,
		.project = r->project_len ? r->project_name : NULL,
		.project_len = r->project_len,
		.accept = accept ? accept->value : NULL,
		.accept_len = accept ? accept->value_len : 0,
		.until = scope->until,
		.now = time(NULL),
		.mode = r->mode,
		.keep_alive = keep,
		.http10 = r->http10,
		/* ODK Collect splits a submission at this size: the spool's limit */
		.accept_content_length = r->cfg->spool->dir ? r->cfg->spool->max_record_bytes : 0,
	};
	struct evbuffer *out = conn_output(c);
	size_t before = evbuffer_get_length(out);
	r->status = maintenance_write(out, r->cfg->maintenance, &mr);
	if (r->status < 0) {
		log_error("maintenance answer: out of memory, closing the connection");
		conn_abort(c);
		return;
	}
	r->bytes_out += evbuffer_get_length(out) - before;
	conn_consume_head(r);
	if (!keep)
		conn_close_after(c);
	conn_request_done(r);
}

static void dispatch_mode(struct request *r);

/* The hold is over for R (its scope left hold), or R's patience ran out:
 * it goes on under the mode in force now; a scope still on hold past its
 * deadline answers with the maintenance response. */
static void hold_over(struct gate_waiter *wt, bool timed_out)
{
	(void)timed_out;
	dispatch_mode(request_of(wt));
}

/* R left its admission queue: a slot is free (it reads the mode again), or
 * queue_timeout passed (503). */
static void queue_over(struct gate_waiter *wt, bool timed_out)
{
	struct request *r = request_of(wt);
	if (timed_out)
		forward_busy(r);
	else
		dispatch_mode(r);
}

/* Parks R until the hold ends, its deadline passes (then the maintenance
 * answer) or the worker's cap on parked requests is reached. */
static void park(struct request *r, const struct scope_state *scope)
{
	struct conn_env *env = conn_env(r->conn);
	time_t now = time(NULL);
	if (scope->until <= now ||
	    !gate_park(env->gate, &r->wait, (double)(scope->until - now), r->cfg->limits->max_parked,
		       hold_over)) {
		answer_maintenance(r, scope);
		return;
	}
	/* More bytes may arrive behind the head while it waits. */
	if (conn_keep_head(r) < 0) {
		gate_leave(env->gate, &r->wait);
		conn_respond_error(r, 503, "out of memory");
		return;
	}
	conn_set_state(r->conn, CONN_PARKED);
}

/* A submission of a project whose spool is not empty joins its tail, so
 * its order holds across the switch (one atomic load per request). */
static bool joins_tail(struct request *r)
{
	return r->route && r->route->spool && conn_env(r->conn)->spool && r->project &&
	       project_spooled(r->project) > 0 && intake_wants(&r->head, r->route->spool_auth);
}

/* The action of the scope's mode now. */
static void dispatch_mode(struct request *r)
{
	const struct scope_state *scope = state_scope_for(state_current(), r->project_name,
							  r->project_len);
	r->mode = mode_name(scope->mode);
	switch (scope->mode) {
	case MODE_OLD:
	case MODE_NEW:
		if (joins_tail(r)) {
			intake_start(r, 0);
			return;
		}
		forward_request(r, scope->mode == MODE_OLD ? UPSTREAM_OLD : UPSTREAM_NEW,
				queue_over);
		return;
	case MODE_MAINTENANCE:
		if (r->route && r->route->spool && conn_env(r->conn)->spool &&
		    intake_wants(&r->head, r->route->spool_auth)) {
			intake_start(r, scope->until);
			return;
		}
		answer_maintenance(r, scope);
		return;
	case MODE_COUNT:
		answer_maintenance(r, scope);
		return;
	case MODE_HOLD:
		park(r, scope);
		return;
	}
}

/* A heartbeat reports the device's unsent forms: recorded on the way,
 * the request goes on to its upstream (or its maintenance answer) as any. */
static void heartbeat_seen(const struct request *r, const struct http1_head *h)
{
	const char *t;
	size_t n;
	http1_origin_form(h, &t, &n);
	const char *q = memchr(t, '?', n);
	if (!q)
		return;
	const char *end = memchr(q, '#', n - (size_t)(q - t));
	size_t qlen = (size_t)((end ? end : t + n) - (q + 1));
	fleet_heartbeat(r->project_name, r->project_len, q + 1, qlen, time(NULL));
}

void dispatch_request(struct request *r)
{
	const struct http1_head *h = &r->head;
	const char *path;
	size_t path_len;
	target_path(h, &path, &path_len);
	struct route_project proj = { path, 0 };
	r->http10 = h->major == 1 && h->minor == 0;
	r->head_method = http1_token_eq(h->method, h->method_len, "HEAD");

	if (path_len == sizeof(HEALTH_PATH) - 1 && memcmp(path, HEALTH_PATH, path_len) == 0 &&
	    (r->head_method || http1_token_eq(h->method, h->method_len, "GET"))) {
		copy_for_log(r, &proj);
		r->mode = mode_name(state_mode_for(state_current(), NULL, 0));
		answer_health(r);
		return;
	}
	r->route = route_match(r->cfg->routes, h->method, h->method_len, path, path_len, &proj);
	copy_for_log(r, &proj);
	project_put(r->project); /* held from here to the request's end */
	r->project = project_get(r->project_name, r->project_len);
	r->mode = mode_name(state_mode_for(state_current(), r->project_name, r->project_len));
	if (r->project_len && fleet_is_heartbeat(path, path_len))
		heartbeat_seen(r, h);
	if (http1_token_eq(h->method, h->method_len, "CONNECT")) {
		conn_respond_error(r, 405, "CONNECT is not supported");
		return;
	}
	r->max_body = r->route && r->route->max_body ? r->route->max_body
						     : r->cfg->limits->max_body;
	if (r->max_body && h->framing == HTTP1_BODY_LENGTH && h->content_length > r->max_body) {
		conn_respond_error(r, 413, "request body larger than the route's max_body");
		return;
	}
	dispatch_mode(r);
}

static bool still_held(struct gate_waiter *wt)
{
	struct request *r = request_of(wt);
	return state_mode_for(state_current(), r->project_name, r->project_len) == MODE_HOLD;
}

void dispatch_state_changed(struct conn_env *env)
{
	gate_release_parked(env->gate, still_held);
}
