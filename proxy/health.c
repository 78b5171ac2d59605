/* health: one timer per upstream; each tick runs a preflight of it and
 * keeps the verdict. One check at a time per upstream: a check slower than
 * the interval delays the next instead of piling up. */
#include "health.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "conf.h"
#include "duration.h"
#include "log.h"
#include "preflight.h"
#include "state.h"

struct check {
	struct health *h;
	enum upstream_id id;
	struct event *timer;
	struct preflight *running;
	int up;                      /* -1 unknown */
	time_t checked, since;       /* the last check's end; when the verdict last changed */
	double latency;              /* seconds, -1 none */
	struct timespec started;
	char error[300];
	uint64_t checks, failed;
};

struct health {
	struct event_base *base;
	const struct config *cfg;
	struct check c[UPSTREAM_COUNT];
};

static void arm(struct check *c)
{
	const struct upstream_conf *u = &c->h->cfg->upstream[c->id];
	struct timeval tv = duration_tv(u->health.interval);
	evtimer_add(c->timer, &tv);
}

static void done(void *arg, bool ok, json_t *result)
{
	struct check *c = arg;
	c->running = NULL;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	c->latency = duration_ms_between(&c->started, &now) / 1e3;
	c->checked = time(NULL);
	c->checks++;
	const char *name = c->h->cfg->upstream[c->id].name;
	if (!ok) {
		const char *err = json_string_value(json_object_get(result, "error"));
		snprintf(c->error, sizeof c->error, "%s", err ? err : "?");
		c->failed++;
	} else {
		c->error[0] = '\0';
	}
	if (c->up != (int)ok) {
		if (ok)
			log_info("health: upstream %s is up (%.0f ms)", name, c->latency * 1e3);
		else
			log_warn("health: upstream %s is down: %s", name, c->error);
		c->up = ok;
		c->since = c->checked;
	}
	json_decref(result);
	arm(c);
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct check *c = arg;
	const struct upstream_conf *u = &c->h->cfg->upstream[c->id];
	if (!u->defined || !u->host) {
		c->up = -1;
		arm(c);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &c->started);
	c->running = preflight_probe(c->h->base, u, c->id, done, c);
	if (!c->running) {
		snprintf(c->error, sizeof c->error, "cannot start a check: out of memory");
		arm(c);
	}
}

struct health *health_new(struct event_base *base, const struct config *cfg)
{
	struct health *h = calloc(1, sizeof *h);
	if (!h)
		return NULL;
	*h = (struct health){ .base = base, .cfg = cfg };
	for (int i = 0; i < UPSTREAM_COUNT; i++) {
		struct check *c = &h->c[i];
		*c = (struct check){ .h = h, .id = (enum upstream_id)i, .up = -1, .latency = -1 };
		c->timer = evtimer_new(base, tick, c);
		if (!c->timer) {
			health_free(h);
			return NULL;
		}
		event_active(c->timer, EV_TIMEOUT, 0); /* the first check at once */
	}
	return h;
}

void health_set_config(struct health *h, const struct config *cfg)
{
	h->cfg = cfg;
}

void health_free(struct health *h)
{
	if (!h)
		return;
	for (int i = 0; i < UPSTREAM_COUNT; i++) {
		if (h->c[i].running)
			preflight_cancel(h->c[i].running);
		if (h->c[i].timer)
			event_free(h->c[i].timer);
	}
	free(h);
}

int health_up(const struct health *h, enum upstream_id id)
{
	return h ? h->c[id].up : -1;
}

double health_latency(const struct health *h, enum upstream_id id)
{
	return h ? h->c[id].latency : -1;
}

void health_counts(const struct health *h, enum upstream_id id, uint64_t *checks,
		   uint64_t *failed)
{
	*checks = h ? h->c[id].checks : 0;
	*failed = h ? h->c[id].failed : 0;
}

json_t *health_json(const struct health *h, enum upstream_id id)
{
	if (!h)
		return json_pack("{s:n}", "up");
	const struct check *c = &h->c[id];
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:f}", "up",
			 c->up < 0 ? json_null() : json_boolean(c->up), "checked",
			 c->checked ? state_time_json(c->checked) : json_null(), "since",
			 c->since ? state_time_json(c->since) : json_null(), "latency_ms",
			 c->latency < 0 ? json_null() : json_real(c->latency * 1e3), "error",
			 c->error[0] ? json_string(c->error) : json_null(), "interval",
			 h->cfg->upstream[id].health.interval);
}
