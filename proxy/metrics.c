/* metrics: the Prometheus text exposition. Every family is written whole
 * (HELP, TYPE, its samples) from one status document and one sum of the
 * workers' counters, so a scrape is consistent within itself as far as
 * status is. Names beyond the contract's are what an operator alerts on:
 * admission queue, parked requests, pools, replay outcomes, reloads,
 * preflights, registry evictions. */
#include "metrics.h"

#include <inttypes.h>
#include <stdbool.h>
#include <string.h>

#include "conf.h"
#include "health.h"
#include "state.h"
#include "stats.h"
#include "upstream.h"
#include "worker.h"

struct label {
	const char *k, *v;
};

struct out {
	struct evbuffer *b;
	bool ok;                      /* false once an append failed */
};

static void put(struct out *o, const char *s, size_t n)
{
	o->ok = o->ok && evbuffer_add(o->b, s, n) == 0;
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

int metrics_label(struct evbuffer *b, const char *v)
{
	struct out o = { b, true };
	for (const char *p = v; *p; p++) {
		const char *esc = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : NULL;
		if (esc) {
			puts_(&o, esc);
			continue;
		}
		size_t n = strcspn(p, "\\\"\n");
		put(&o, p, n);
		p += n - 1;
	}
	return o.ok ? 0 : -1;
}

static void family(struct out *o, const char *name, const char *type, const char *help)
{
	o->ok = o->ok && evbuffer_add_printf(o->b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
					     type) >= 0;
}

static void sample_start(struct out *o, const char *name, const struct label *l, size_t n)
{
	puts_(o, name);
	if (n)
		puts_(o, "{");
	for (size_t i = 0; i < n; i++) {
		if (i)
			puts_(o, ",");
		puts_(o, l[i].k);
		puts_(o, "=\"");
		o->ok = o->ok && metrics_label(o->b, l[i].v) == 0;
		puts_(o, "\"");
	}
	if (n)
		puts_(o, "}");
}

static void sample_u(struct out *o, const char *name, const struct label *l, size_t n, uint64_t v)
{
	sample_start(o, name, l, n);
	o->ok = o->ok && evbuffer_add_printf(o->b, " %" PRIu64 "\n", v) >= 0;
}

static void sample_i(struct out *o, const char *name, const struct label *l, size_t n, int64_t v)
{
	sample_start(o, name, l, n);
	o->ok = o->ok && evbuffer_add_printf(o->b, " %" PRId64 "\n", v) >= 0;
}

static void sample_d(struct out *o, const char *name, const struct label *l, size_t n, double v)
{
	sample_start(o, name, l, n);
	o->ok = o->ok && evbuffer_add_printf(o->b, " %.15g\n", v) >= 0;
}

static int64_t int_at(const json_t *doc, const char *a, const char *b)
{
	const json_t *v = json_object_get(doc, a);
	return json_integer_value(b ? json_object_get(v, b) : v);
}

/* ---- the families ---- */

static const char *const class_names[STATS_CLASSES] = { "1xx", "2xx", "3xx", "4xx", "5xx" };
static const char *const up_names[STATS_UPSTREAMS + 1] = { "old", "new", "local" };

static void requests(struct out *o, const struct stats *s)
{
	family(o, "cutover_requests_total", "counter",
	       "Requests answered, by route, upstream (local: cutover answered) and status class.");
	for (unsigned r = 0; r < STATS_ROUTES; r++) {
		const char *route = stats_route_name(r);
		for (unsigned u = 0; route && u <= STATS_UPSTREAMS; u++)
			for (unsigned c = 0; c < STATS_CLASSES; c++) {
				if (!s->answers[r][u][c] && !(r == 0 && u == STATS_LOCAL && c == 1))
					continue; /* one sample always: the family is never empty */
				struct label l[] = { { "route", route }, { "upstream", up_names[u] },
						     { "code", class_names[c] } };
				sample_u(o, "cutover_requests_total", l, 3, s->answers[r][u][c]);
			}
	}
	family(o, "cutover_requests_unanswered_total", "counter",
	       "Requests that ended with no answer sent (the client left, the connection broke).");
	sample_u(o, "cutover_requests_unanswered_total", NULL, 0, s->unanswered);
	family(o, "cutover_client_connections", "gauge", "Open client connections.");
	sample_i(o, "cutover_client_connections", NULL, 0, s->connections);
	family(o, "cutover_client_received_bytes_total", "counter",
	       "Bytes read from clients, heads and bodies.");
	sample_u(o, "cutover_client_received_bytes_total", NULL, 0, s->bytes_in);
	family(o, "cutover_client_sent_bytes_total", "counter",
	       "Bytes written to clients, heads and bodies.");
	sample_u(o, "cutover_client_sent_bytes_total", NULL, 0, s->bytes_out);
	family(o, "cutover_tls_handshake_failures_total", "counter",
	       "Client connections to a TLS listener that ended before their handshake did.");
	sample_u(o, "cutover_tls_handshake_failures_total", NULL, 0, s->tls_handshake_failures);
	family(o, "cutover_spliced_bytes_total", "counter",
	       "Body bytes moved from socket to socket through a kernel pipe (splice), never "
	       "copied through cutover: large bodies between plain TCP sockets.");
	sample_u(o, "cutover_spliced_bytes_total", NULL, 0, s->spliced_bytes);
	family(o, "cutover_parked_requests", "gauge", "Requests parked by a hold.");
	sample_i(o, "cutover_parked_requests", NULL, 0, s->parked);
}

static void upstreams(struct out *o, const struct status_sources *src, const json_t *doc,
		      const struct stats *s)
{
	const json_t *ups = json_object_get(doc, "upstreams");
	family(o, "cutover_upstream_in_flight", "gauge",
	       "Requests bound to the upstream (forwarded, streaming, spool replays).");
	for (int i = 0; i < UPSTREAM_COUNT; i++) {
		struct label l[] = { { "upstream", up_names[i] } };
		sample_i(o, "cutover_upstream_in_flight", l, 1,
			 int_at(json_object_get(ups, src->cfg->upstream[i].name), "in_flight", NULL));
	}
	family(o, "cutover_upstream_up", "gauge",
	       "1 if the upstream's last periodic health check passed, 0 if it failed (absent "
	       "before the first).");
	for (int i = 0; i < UPSTREAM_COUNT; i++) {
		int up = health_up(src->health, (enum upstream_id)i);
		if (up >= 0)
			sample_u(o, "cutover_upstream_up",
				 (struct label[]){ { "upstream", up_names[i] } }, 1, (uint64_t)up);
	}
	family(o, "cutover_upstream_health_latency_seconds", "gauge",
	       "How long the upstream's last health check took.");
	for (int i = 0; i < UPSTREAM_COUNT; i++) {
		double l = health_latency(src->health, (enum upstream_id)i);
		if (l >= 0)
			sample_d(o, "cutover_upstream_health_latency_seconds",
				 (struct label[]){ { "upstream", up_names[i] } }, 1, l);
	}
	family(o, "cutover_upstream_health_checks_total", "counter",
	       "Periodic health checks, by result.");
	for (int i = 0; i < UPSTREAM_COUNT; i++) {
		uint64_t n, failed;
		health_counts(src->health, (enum upstream_id)i, &n, &failed);
		sample_u(o, "cutover_upstream_health_checks_total",
			 (struct label[]){ { "upstream", up_names[i] }, { "result", "ok" } }, 2,
			 n - failed);
		sample_u(o, "cutover_upstream_health_checks_total",
			 (struct label[]){ { "upstream", up_names[i] }, { "result", "failed" } }, 2,
			 failed);
	}
	family(o, "cutover_upstream_failures_total", "counter",
	       "Forwarded exchanges that failed (connect, TLS, timeouts, a broken or malformed "
	       "answer): the client got a 502 or 504.");
	for (int i = 0; i < UPSTREAM_COUNT; i++)
		sample_u(o, "cutover_upstream_failures_total",
			 (struct label[]){ { "upstream", up_names[i] } }, 1, s->upstream_failures[i]);
	family(o, "cutover_upstream_dns_failures_total", "counter",
	       "Lookups of the upstream's name that failed (the last answer stays in use).");
	for (int i = 0; i < UPSTREAM_COUNT; i++) {
		const json_t *u = json_object_get(ups, src->cfg->upstream[i].name);
		sample_i(o, "cutover_upstream_dns_failures_total",
			 (struct label[]){ { "upstream", up_names[i] } }, 1,
			 int_at(json_object_get(u, "dns"), "failures", NULL));
	}
	family(o, "cutover_upstream_active", "gauge", "Admission slots taken (of max_active).");
	for (int i = 0; i < UPSTREAM_COUNT; i++)
		sample_i(o, "cutover_upstream_active", (struct label[]){ { "upstream", up_names[i] } },
			 1, s->active[i]);
	family(o, "cutover_upstream_max_active", "gauge", "The upstream's max_active (0: none).");
	for (int i = 0; i < UPSTREAM_COUNT; i++)
		sample_u(o, "cutover_upstream_max_active",
			 (struct label[]){ { "upstream", up_names[i] } }, 1,
			 src->cfg->upstream[i].max_active);
	family(o, "cutover_upstream_queued", "gauge", "Requests waiting for an admission slot.");
	for (int i = 0; i < UPSTREAM_COUNT; i++)
		sample_i(o, "cutover_upstream_queued", (struct label[]){ { "upstream", up_names[i] } },
			 1, s->queued[i]);
	family(o, "cutover_upstream_idle_connections", "gauge",
	       "Idle keep-alive connections in the upstream's pools.");
	for (int i = 0; i < UPSTREAM_COUNT; i++)
		sample_i(o, "cutover_upstream_idle_connections",
			 (struct label[]){ { "upstream", up_names[i] } }, 1, s->pool_idle[i]);

	const char *h = "cutover_upstream_request_duration_seconds";
	family(o, h, "histogram",
	       "Forwarded exchanges, from sending the request to the response's end or failure.");
	for (int i = 0; i < UPSTREAM_COUNT; i++) {
		uint64_t cum = 0;
		char le[32];
		for (int b = 0; b <= STATS_BUCKETS; b++) {
			cum += s->duration_bucket[i][b];
			if (b < STATS_BUCKETS)
				snprintf(le, sizeof le, "%g", stats_bucket_bounds[b]);
			struct label l[] = { { "upstream", up_names[i] },
					     { "le", b < STATS_BUCKETS ? le : "+Inf" } };
			sample_u(o, "cutover_upstream_request_duration_seconds_bucket", l, 2, cum);
		}
		struct label l[] = { { "upstream", up_names[i] } };
		sample_d(o, "cutover_upstream_request_duration_seconds_sum", l, 1,
			 (double)s->duration_us[i] / 1e6);
		sample_u(o, "cutover_upstream_request_duration_seconds_count", l, 1, cum);
	}
}

/* 1 for the scope's mode, 0 for the others: a scope is the global one or a
 * project with a mode of its own (the others follow the global one). */
static void scope_modes(struct out *o, const char *scope, const char *mode)
{
	for (int m = 0; m < MODE_COUNT; m++) {
		struct label l[] = { { "scope", scope }, { "mode", mode_name((enum mode)m) } };
		sample_u(o, "cutover_scope_mode", l, 2, strcmp(mode, mode_name((enum mode)m)) == 0);
	}
}

static void scopes_and_spool(struct out *o, const json_t *doc, const struct stats *s)
{
	const json_t *projects = json_object_get(doc, "projects");
	const char *name;
	const json_t *p;
	family(o, "cutover_scope_mode", "gauge",
	       "1 for the scope's current mode, 0 for the others (scope: global or a project "
	       "with a mode of its own).");
	scope_modes(o, "global", json_string_value(json_object_get(doc, "mode")));
	json_object_foreach((json_t *)projects, name, p)
		if (json_is_true(json_object_get(p, "own_mode")))
			scope_modes(o, name, json_string_value(json_object_get(p, "mode")));

	static const struct {
		const char *metric, *key, *help;
	} spool[] = {
		{ "cutover_spool_records", "records", "Records in the spool, pending and dead." },
		{ "cutover_spool_bytes", "bytes", "Bytes the spool's records hold on disk." },
		{ "cutover_spool_dead_letters", "dead_letters", "Records no upstream took." },
		{ "cutover_spool_oldest_age_seconds", "oldest_age",
		  "Age of the oldest pending record (0: none)." },
	};
	/* per project with records or a mode of its own: a drained project
	 * shows 0 rather than vanishing while it is a scope */
	for (size_t k = 0; k < sizeof spool / sizeof spool[0]; k++) {
		family(o, spool[k].metric, "gauge", spool[k].help);
		json_object_foreach((json_t *)projects, name, p) {
			const json_t *sp = json_object_get(p, "spool");
			if (!int_at(sp, "records", NULL) && !json_is_true(json_object_get(p, "own_mode")))
				continue;
			sample_i(o, spool[k].metric, (struct label[]){ { "project", name } }, 1,
				 int_at(sp, spool[k].key, NULL));
		}
	}
	family(o, "cutover_spool_replayed_total", "counter",
	       "Replay sends by outcome: delivered (2xx), retried (to be sent again), dead (a dead "
	       "letter).");
	static const char *const outcomes[STATS_REPLAY_OUTCOMES] = { "delivered", "retried",
								     "dead" };
	for (int i = 0; i < STATS_REPLAY_OUTCOMES; i++)
		sample_u(o, "cutover_spool_replayed_total",
			 (struct label[]){ { "outcome", outcomes[i] } }, 1, s->replay[i]);
}

static void fleet(struct out *o, const json_t *doc)
{
	const json_t *projects = json_object_get(doc, "projects");
	const char *name;
	const json_t *p;
	family(o, "cutover_fleet_unsent_forms", "gauge",
	       "Forms on the devices not sent yet, from their latest heartbeats, per project.");
	json_object_foreach((json_t *)projects, name, p)
		if (int_at(p, "devices", NULL))
			sample_i(o, "cutover_fleet_unsent_forms", (struct label[]){ { "project", name } },
				 1, int_at(p, "unsent_forms", NULL));
	family(o, "cutover_fleet_devices", "gauge", "Devices heard from by heartbeat, per project.");
	json_object_foreach((json_t *)projects, name, p)
		if (int_at(p, "devices", NULL))
			sample_i(o, "cutover_fleet_devices", (struct label[]){ { "project", name } }, 1,
				 int_at(p, "devices", NULL));
	family(o, "cutover_fleet_heartbeats_dropped_total", "counter",
	       "Heartbeats of new devices past fleet.max_devices.");
	sample_i(o, "cutover_fleet_heartbeats_dropped_total", NULL, 0,
		 int_at(doc, "fleet", "dropped"));
	family(o, "cutover_fleet_heartbeats_refused_total", "counter",
	       "Heartbeat queries that did not parse.");
	sample_i(o, "cutover_fleet_heartbeats_refused_total", NULL, 0,
		 int_at(doc, "fleet", "refused"));
}

static void control(struct out *o, const json_t *doc, const struct metrics_control *mc)
{
	family(o, "cutover_config_reloads_total", "counter", "Config reloads by result.");
	sample_u(o, "cutover_config_reloads_total", (struct label[]){ { "result", "ok" } }, 1,
		 mc->reloads_ok);
	sample_u(o, "cutover_config_reloads_total", (struct label[]){ { "result", "failed" } }, 1,
		 mc->reloads_failed);
	family(o, "cutover_preflights_total", "counter", "Preflights of a switch, by result.");
	for (int i = 0; i < UPSTREAM_COUNT; i++) {
		sample_u(o, "cutover_preflights_total",
			 (struct label[]){ { "upstream", up_names[i] }, { "result", "ok" } }, 2,
			 mc->preflights_ok[i]);
		sample_u(o, "cutover_preflights_total",
			 (struct label[]){ { "upstream", up_names[i] }, { "result", "failed" } }, 2,
			 mc->preflights_failed[i]);
	}
	family(o, "cutover_scheduled_switches", "gauge", "Switches scheduled with --at.");
	sample_u(o, "cutover_scheduled_switches", NULL, 0,
		 json_array_size(json_object_get(doc, "scheduled")));
	const json_t *reg = json_object_get(doc, "registry");
	family(o, "cutover_projects_tracked", "gauge", "Projects the registry tracks.");
	sample_i(o, "cutover_projects_tracked", NULL, 0, int_at(reg, "tracked", NULL));
	family(o, "cutover_projects_evicted_total", "counter",
	       "Idle project names the registry dropped to make room.");
	sample_i(o, "cutover_projects_evicted_total", NULL, 0, int_at(reg, "evicted", NULL));
	family(o, "cutover_build_info", "gauge", "The running version.");
	sample_u(o, "cutover_build_info", (struct label[]){ { "version", CUTOVER_VERSION } }, 1, 1);
}

int metrics_render(const struct status_sources *src, const struct metrics_control *mc,
		   struct evbuffer *out)
{
	json_t *doc = status_json(src);
	if (!doc)
		return -1;
	struct stats sum = { 0 };
	for (int k = 0; k < src->n_workers; k++)
		worker_stats_add(src->workers[k], &sum);
	struct out o = { out, true };
	requests(&o, &sum);
	upstreams(&o, src, doc, &sum);
	scopes_and_spool(&o, doc, &sum);
	fleet(&o, doc);
	control(&o, doc, mc);
	json_decref(doc);
	return o.ok ? 0 : -1;
}
