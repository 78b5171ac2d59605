/* status: the answer of GET /status, assembled from the state snapshot, the
 * project registry, the workers' counters, DNS, the spool and the journal
 * (CONTRACT.md, "Admin API"). Read-only: it changes nothing it reads. */
#include "status.h"

#include <stdlib.h>
#include <time.h>

#include "conf.h"
#include "dns.h"
#include "fleet.h"
#include "health.h"
#include "journal.h"
#include "project.h"
#include "spool_store.h"
#include "state.h"
#include "stats.h"
#include "upstream.h"
#include "worker.h"

struct status_walk {
	const struct state_snapshot *snap;
	json_t *projects;
	bool ok;                 /* false once out of memory */
};

static json_t *in_flight_json(const struct project *p)
{
	return json_pack("{s:I, s:I}", "old", (json_int_t)project_in_flight(p, UPSTREAM_OLD), "new",
			 (json_int_t)project_in_flight(p, UPSTREAM_NEW));
}

static void status_project(struct project *p, void *arg)
{
	struct status_walk *w = arg;
	size_t len;
	const char *name = project_name(p, &len);
	if (len == 0 || !w->ok)
		return; /* requests without a project: counted in the upstream totals */
	json_t *o = json_object_getn(w->projects, name, len);
	if (!o) {
		o = state_scope_json(&w->snap->global);
		w->ok = json_object_setn_new(w->projects, name, len, o) == 0 &&
			json_object_set_new(o, "own_mode", json_false()) == 0;
	}
	w->ok = w->ok && json_object_set_new(o, "in_flight", in_flight_json(p)) == 0;
}

/* The spool's totals (of PROJECT, or all of it) as status shows them. */
static json_t *spool_json(struct spool_store *s, const char *project, time_t now)
{
	struct spool_totals t = { 0 };
	if (s)
		spool_store_totals(s, project, &t);
	int64_t age = t.oldest_us ? (int64_t)now - t.oldest_us / 1000000 : 0;
	return json_pack("{s:I, s:I, s:I, s:I}", "records", (json_int_t)(t.pending + t.dead), "bytes",
			 (json_int_t)t.bytes, "dead_letters", (json_int_t)t.dead, "oldest_age",
			 (json_int_t)(age > 0 ? age : 0));
}

/* Every project gets its spool; one with records appears even without a
 * mode or traffic of its own. */
static bool status_spool(struct spool_store *spool, const struct state_snapshot *snap,
			 json_t *projects, time_t now)
{
	size_t n = 0;
	char **names = spool ? spool_store_projects(spool, &n) : NULL;
	bool ok = !spool || names || n == 0;
	for (size_t i = 0; i < n; i++) {
		if (ok && !json_object_get(projects, names[i])) {
			json_t *o = state_scope_json(&snap->global);
			ok = json_object_set_new(projects, names[i], o) == 0 &&
			     json_object_set_new(o, "own_mode", json_false()) == 0 &&
			     json_object_set_new(o, "in_flight",
						 json_pack("{s:i, s:i}", "old", 0, "new", 0)) == 0;
		}
		free(names[i]);
	}
	free(names);
	const char *name;
	json_t *o;
	json_object_foreach(projects, name, o)
		ok = ok && json_object_set_new(o, "spool", spool_json(spool, name, now)) == 0;
	return ok;
}

struct fleet_walk {
	const struct state_snapshot *snap;
	json_t *projects;
	uint64_t unsent;
	bool ok;
};

static void fleet_project(void *arg, const char *name, const struct fleet_totals *t)
{
	struct fleet_walk *w = arg;
	json_t *o = json_object_get(w->projects, name);
	if (w->ok && !o) {
		o = state_scope_json(&w->snap->global);
		w->ok = json_object_set_new(w->projects, name, o) == 0 &&
			json_object_set_new(o, "own_mode", json_false()) == 0 &&
			json_object_set_new(o, "in_flight",
					    json_pack("{s:i, s:i}", "old", 0, "new", 0)) == 0;
	}
	w->ok = w->ok &&
		json_object_set_new(o, "unsent_forms", json_integer((json_int_t)t->unsent_forms)) == 0 &&
		json_object_set_new(o, "devices", json_integer((json_int_t)t->devices)) == 0;
	w->unsent += t->unsent_forms;
}

/* The fleet's backlog: every project shows unsent_forms and devices (0 when
 * none reported), one with devices appears even without traffic of its
 * own; the totals and what the table could not keep go in "fleet". */
static bool status_fleet(const struct state_snapshot *snap, json_t *st, json_t *projects)
{
	const char *name;
	json_t *o;
	bool ok = true;
	json_object_foreach(projects, name, o)
		ok = ok && json_object_set_new(o, "unsent_forms", json_integer(0)) == 0 &&
		     json_object_set_new(o, "devices", json_integer(0)) == 0;
	struct fleet_walk w = { snap, projects, 0, ok };
	fleet_each(fleet_project, &w);
	struct fleet_stats fs;
	fleet_stats(&fs);
	return w.ok && json_object_set_new(st, "fleet",
					   json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "unsent_forms",
						     (json_int_t)w.unsent, "devices",
						     (json_int_t)fs.devices, "max_devices",
						     (json_int_t)fs.limit, "dropped",
						     (json_int_t)fs.dropped, "refused",
						     (json_int_t)fs.refused, "forgotten",
						     (json_int_t)fs.forgotten)) == 0;
}

/* How much the registry holds and what it could not: names evicted to make
 * room, requests counted as untracked and those of them in flight. */
static json_t *registry_json(void)
{
	struct project_registry_stats rs;
	project_registry_stats(&rs);
	return json_pack("{s:I, s:I, s:I, s:I, s:{s:I, s:I}}", "tracked", (json_int_t)rs.tracked,
			 "limit", (json_int_t)rs.limit, "evicted", (json_int_t)rs.evicted,
			 "untracked_requests", (json_int_t)rs.untracked_requests,
			 "untracked_in_flight", "old",
			 (json_int_t)project_untracked_in_flight(UPSTREAM_OLD), "new",
			 (json_int_t)project_untracked_in_flight(UPSTREAM_NEW));
}

json_t *status_json(const struct status_sources *src)
{
	const struct state_snapshot *snap = state_current();
	json_t *st = state_scope_json(&snap->global);
	struct status_walk w = { snap, json_object(), true };
	/* json_object_set*_new() fail on a NULL value or object (out of
	 * memory): the answer is whole or NULL, never missing a part. */
	w.ok = json_object_set_new(st, "version", json_string(CUTOVER_VERSION)) == 0 &&
	       json_object_set_new(st, "generation", json_integer((json_int_t)snap->generation)) == 0 &&
	       json_object_set(st, "projects", w.projects) == 0;
	for (size_t i = 0; w.ok && i < snap->n_projects; i++) {
		const struct project_mode *p = state_project_at(snap, i);
		json_t *o = state_scope_json(&p->s);
		w.ok = json_object_setn_new(w.projects, p->name, p->len, o) == 0 &&
		       json_object_set_new(o, "own_mode", json_true()) == 0 &&
		       json_object_set_new(o, "in_flight",
					   json_pack("{s:i, s:i}", "old", 0, "new", 0)) == 0;
	}
	if (w.ok)
		project_each(status_project, &w);
	time_t now = time(NULL);
	w.ok = w.ok && status_spool(src->spool, snap, w.projects, now) &&
	       status_fleet(snap, st, w.projects);
	json_decref(w.projects);
	w.ok = w.ok && json_object_set_new(st, "registry", registry_json()) == 0;

	struct stats sum = { 0 };
	for (int k = 0; k < src->n_workers; k++)
		worker_stats_add(src->workers[k], &sum);
	json_t *ups = json_object();
	w.ok = w.ok && json_object_set(st, "upstreams", ups) == 0;
	for (int i = 0; w.ok && i < UPSTREAM_COUNT; i++) {
		const struct upstream_conf *u = &src->cfg->upstream[i];
		json_t *dns = u->dns ? dns_name_status(u->dns) : json_object();
		json_t *addrs = json_incref(json_object_get(dns, "addresses"));
		if (!addrs)
			addrs = json_array();
		json_int_t active = sum.active[i], queued = sum.queued[i];
		w.ok = json_object_set_new(ups, u->name,
					   json_pack("{s:s, s:I, s:I, s:I, s:i, s:o, s:o, s:o}", "url",
						     u->url ? u->url : "", "in_flight",
						     (json_int_t)project_in_flight_total((enum upstream_id)i),
						     "active", active, "queued", queued, "max_active",
						     (int)u->max_active, "addresses", addrs, "dns",
						     dns, "health",
						     health_json(src->health, (enum upstream_id)i))) == 0;
	}
	json_decref(ups);
	json_int_t parked = sum.parked;
	json_t *spool = spool_json(src->spool, NULL, now);
	uint64_t qf = 0, qb = 0;
	if (src->spool)
		spool_store_quarantine(src->spool, &qf, &qb);
	/* st owns SPOOL from here, whatever follows */
	w.ok = json_object_set_new(st, "spool", spool) == 0 && w.ok &&
	       json_object_set_new(spool, "quarantined",
				   json_pack("{s:I, s:I}", "files", (json_int_t)qf, "bytes",
					     (json_int_t)qb)) == 0 &&
	       json_object_set_new(st, "hold", json_pack("{s:I}", "parked", parked)) == 0 &&
	       json_object_set_new(st, "scheduled", json_deep_copy(state_scheduled())) == 0;
	if (!w.ok) {
		json_decref(st);
		return NULL;
	}
	/* The last entries are a courtesy: a journal that cannot be read
	 * leaves them out of the status. */
	json_object_set_new(st, "journal", journal_tail(src->journal, src->journal_entries));
	return st;
}

