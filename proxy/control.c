/* control: operator actions on the scopes, run on the control thread. */
#include "control.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "conf.h"
#include "conn.h"
#include "dns.h"
#include "fleet.h"
#include "health.h"
#include "duration.h"
#include "journal.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "preflight.h"
#include "replay.h"
#include "project.h"
#include "spool_store.h"
#include "state.h"
#include "status.h"
#include "upstream.h"
#include "when.h"
#include "worker.h"

#define DRAIN_POLL_SECONDS 0.020
#define TICK_SECONDS 0.250
/* The fleet's backlog reaches its file at most this often (and at exit). */
#define FLEET_SAVE_SECONDS 30.0
#define JOURNAL_IN_STATUS 5

struct control {
	struct event_base *base;
	const struct config *cfg;        /* the one in force */
	const struct control_config_ops *ops;
	/* Configs loaded by reload. Kept until exit: connections and retired
	 * pools may still point into an older one (a few KiB per reload). */
	struct config **reloaded;
	size_t n_reloaded;
	struct worker **workers;
	int n_workers;
	struct dns_resolver *dns;        /* follows the upstreams' names */
	struct journal *journal;
	struct spool_store *spool;       /* NULL = no spool.dir */
	struct metrics_control counts;   /* reloads, preflights */
	struct health *health;           /* the periodic checks of the upstreams */
	struct event *tick;
	long next_sched_id;
};

/* One action on its way: preflight, apply, drain, answer. */
struct action {
	struct control *ctl;
	char *name;                  /* "switch", "maintenance", ... */
	char *project;               /* NULL = global */
	char *who;
	char *reason;
	bool force;
	struct scope_state from, to;
	json_t *preflight;
	control_done_fn done;
	void *arg;
	struct event *drain_timer;
	struct timespec drain_start;
	double drain_ms;             /* how long the drain may take */
};

/* ---- answers ---- */

static json_t *error_answer(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static json_t *error_answer(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return json_pack("{s:b, s:s}", "ok", 0, "error", buf);
}

static const char *scope_name(const char *project)
{
	return project ? project : "global";
}

static void action_free(struct action *a)
{
	if (a->drain_timer)
		event_free(a->drain_timer);
	free(a->name);
	free(a->project);
	free(a->who);
	free(a->reason);
	free(a->from.reason);
	json_decref(a->preflight);
	free(a);
}

static void action_answer(struct action *a, int status, json_t *answer)
{
	control_done_fn done = a->done;
	void *arg = a->arg;
	action_free(a);
	if (done)
		done(arg, status, answer);
	else
		json_decref(answer);
}

static void journal_write(struct control *ctl, json_t *entry)
{
	if (!entry)
		log_error("journal: cannot append: out of memory");
	else if (journal_append(ctl->journal, entry) < 0)
		log_error("journal: cannot append: %m");
	json_decref(entry);
}

static json_t *journal_entry(const struct action *a, const char *outcome)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s?, s:b, s:O?, s:s}", "action", a->name, "who",
			 a->who, "scope", scope_name(a->project), "from", mode_name(a->from.mode), "to",
			 mode_name(a->to.mode), "reason", a->reason, "forced", a->force, "preflight",
			 a->preflight, "outcome", outcome);
}

/* ---- drain ---- */

struct drain_count {
	const struct state_snapshot *snap;
	const char *project;
	enum upstream_id id;
	int64_t n;
};

static void count_one(struct project *p, void *arg)
{
	struct drain_count *d = arg;
	size_t len;
	const char *name = project_name(p, &len);
	if (d->project) {
		if (strcmp(name, d->project) != 0)
			return;
	} else if (state_project(d->snap, name, len)) {
		return; /* has its own mode: not in the global scope */
	}
	d->n += project_in_flight(p, d->id);
}

/* Requests of the scope in flight to ID, and of those the ones that could
 * be the scope's but have no project entry (*UNTRACKED): every drain waits
 * for them too, as a false "drained" is the one answer that must not be. */
static int64_t scope_in_flight(const char *project, enum upstream_id id, int64_t *untracked)
{
	struct drain_count d = { state_current(), project, id, 0 };
	project_each(count_one, &d);
	*untracked = project_untracked_in_flight(id);
	return d.n + *untracked;
}

static bool mode_targets(enum mode m, enum upstream_id id)
{
	return (m == MODE_OLD && id == UPSTREAM_OLD) || (m == MODE_NEW && id == UPSTREAM_NEW);
}

/* The scope's busiest upstream among those its new mode no longer targets
 * (*UNTRACKED: how many of those have no project entry). */
static int64_t leaving_in_flight(const struct action *a, enum upstream_id *which,
				 int64_t *untracked)
{
	int64_t most = 0;
	*which = UPSTREAM_OLD;
	*untracked = 0;
	for (int i = 0; i < UPSTREAM_COUNT; i++) {
		if (mode_targets(a->to.mode, (enum upstream_id)i))
			continue;
		int64_t u;
		int64_t n = scope_in_flight(a->project, (enum upstream_id)i, &u);
		if (n > most) {
			most = n;
			*which = (enum upstream_id)i;
			*untracked = u;
		}
	}
	return most;
}

static void drain_check(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct action *a = arg;
	enum upstream_id id;
	int64_t untracked;
	int64_t n = leaving_in_flight(a, &id, &untracked);
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	bool late = duration_ms_between(&a->drain_start, &now) >= a->drain_ms;
	if (n > 0 && !late) {
		struct timeval tv = duration_tv(DRAIN_POLL_SECONDS);
		evtimer_add(a->drain_timer, &tv);
		return;
	}
	const char *up = a->ctl->cfg->upstream[id].name;
	if (n > 0) {
		char outcome[128];
		char part[96] = "";
		if (untracked)
			snprintf(part, sizeof(part), " (%lld untracked, maybe of another project)",
				 (long long)untracked);
		snprintf(outcome, sizeof(outcome), "drain timeout: %lld in flight to %s%s",
			 (long long)n, up, part);
		journal_write(a->ctl, json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s}", "action",
						"drain", "who", a->who, "scope",
						scope_name(a->project), "upstream", up, "in_flight",
						(json_int_t)n, "untracked", (json_int_t)untracked,
						"outcome", outcome));
	}
	/* "untracked": the part of in_flight counted because the registry could
	 * not say whose it is (see project.h). */
	json_t *answer = json_pack("{s:b, s:s, s:s, s:s, s:b, s:O?, s:b, s:I, s:I, s:s}", "ok", 1,
				   "scope", scope_name(a->project), "from", mode_name(a->from.mode),
				   "to", mode_name(a->to.mode), "forced", a->force, "preflight",
				   a->preflight, "drained", n == 0, "in_flight", (json_int_t)n,
				   "untracked", (json_int_t)untracked, "upstream", up);
	action_answer(a, 200, answer);
}

/* ---- apply ---- */

static void notify_workers(struct control *ctl)
{
	for (int i = 0; i < ctl->n_workers; i++)
		worker_notify_state(ctl->workers[i]);
}

static void action_apply(struct action *a)
{
	struct control *ctl = a->ctl;
	char why[512];
	a->to.since = time(NULL);
	a->to.reason = a->reason;
	if (state_change(a->project, &a->to, why, sizeof(why)) < 0) {
		a->to.reason = NULL;
		char outcome[600];
		snprintf(outcome, sizeof(outcome), "failed: %s", why);
		journal_write(ctl, journal_entry(a, outcome));
		action_answer(a, 500, error_answer("cannot persist the new mode: %s", why));
		return;
	}
	a->to.reason = NULL;
	notify_workers(ctl);
	journal_write(ctl, journal_entry(a, "applied"));
	log_info("%s: %s: %s -> %s by %s%s", a->name, scope_name(a->project),
		 mode_name(a->from.mode), mode_name(a->to.mode), a->who, a->force ? " (forced)" : "");

	a->drain_timer = evtimer_new(ctl->base, drain_check, a);
	clock_gettime(CLOCK_MONOTONIC, &a->drain_start);
	/* No timer to wait with (out of memory): answer now with what is in flight. */
	a->drain_ms = a->drain_timer ? ctl->cfg->limits->drain_timeout * 1e3 : 0;
	drain_check(-1, 0, a);
}

static void preflight_done(void *arg, bool ok, json_t *result)
{
	struct action *a = arg;
	a->preflight = result;
	int up = a->to.mode == MODE_NEW ? UPSTREAM_NEW : UPSTREAM_OLD;
	(ok ? a->ctl->counts.preflights_ok : a->ctl->counts.preflights_failed)[up]++;
	if (!ok) {
		const char *err = json_string_value(json_object_get(result, "error"));
		char outcome[400];
		snprintf(outcome, sizeof(outcome), "refused: preflight failed: %s", err ? err : "?");
		journal_write(a->ctl, journal_entry(a, outcome));
		json_t *answer = error_answer("preflight of %s failed: %s; traffic stays on %s",
					      mode_name(a->to.mode), err ? err : "?",
					      mode_name(a->from.mode));
		json_object_set(answer, "preflight", result);
		action_answer(a, 409, answer);
		return;
	}
	action_apply(a);
}

/* ---- the actions ---- */

static enum mode upstream_mode_of(const struct scope_state *s)
{
	return s->mode == MODE_OLD || s->mode == MODE_NEW ? s->mode : s->resume_to;
}

/* The action that DONE(ARG, ...) will answer; NULL when it was answered
 * already: 400 for a bad body, 500 when out of memory. */
static struct action *action_new(struct control *ctl, const char *name, json_t *body,
				 const char *who, control_done_fn done, void *arg)
{
	const char *project = NULL, *reason = NULL;
	json_error_t jerr;
	if (json_unpack_ex(body, &jerr, 0, "{s?s, s?s}", "project", &project, "reason", &reason) < 0) {
		done(arg, 400, error_answer("bad request: %s", jerr.text));
		return NULL;
	}
	if (project && !project_name_ok(project, strlen(project))) {
		done(arg, 400, error_answer("bad request: invalid project name '%s'", project));
		return NULL;
	}
	struct action *a = calloc(1, sizeof(*a));
	const struct state_snapshot *snap = state_current();
	const struct scope_state *cur =
		state_scope_for(snap, project, project ? strlen(project) : 0);
	if (a) {
		a->ctl = ctl;
		a->done = done;
		a->arg = arg;
		a->from = *cur;
		a->name = strdup(name);
		a->project = project ? strdup(project) : NULL;
		a->who = strdup(who);
		a->reason = reason ? strdup(reason) : NULL;
		a->from.reason = cur->reason ? strdup(cur->reason) : NULL;
	}
	if (!a || !a->name || !a->who || (project && !a->project) || (reason && !a->reason) ||
	    (cur->reason && !a->from.reason)) {
		if (a)
			action_free(a);
		done(arg, 500, error_answer("out of memory"));
		return NULL;
	}
	return a;
}

static json_t *schedule_switch(struct control *ctl, json_t *body, const char *who, time_t at)
{
	json_t *list = json_deep_copy(state_scheduled());
	long id = ++ctl->next_sched_id;
	json_t *entry = json_deep_copy(body);
	json_object_del(entry, "at");
	/* Each call fails on a NULL (out of memory): a half-built entry or
	 * list must not replace the persisted schedule. */
	bool ok = json_object_set_new(entry, "id", json_integer(id)) == 0 &&
		  json_object_set_new(entry, "at", state_time_json(at)) == 0 &&
		  json_object_set_new(entry, "who", json_string(who)) == 0 &&
		  json_array_append(list, entry) == 0;
	char why[512];
	int rc = ok ? state_set_scheduled(list, why, sizeof(why)) : -1;
	json_decref(list);
	if (rc < 0) {
		json_decref(entry);
		return NULL;
	}
	json_t *j = json_pack("{s:s, s:s, s:O, s:s}", "action", "schedule", "who", who, "scheduled",
			      entry, "outcome", "scheduled");
	journal_write(ctl, j);
	return entry;
}

static void act_switch(struct control *ctl, json_t *body, const char *who, control_done_fn done,
		       void *arg)
{
	const char *to = NULL, *at = NULL;
	int force = 0;
	json_error_t jerr;
	if (json_unpack_ex(body, &jerr, 0, "{s:s, s?b, s?s}", "to", &to, "force", &force, "at", &at) < 0) {
		done(arg, 400, error_answer("bad request: %s", jerr.text));
		return;
	}
	enum mode target;
	if (mode_parse(to, &target) < 0 || (target != MODE_OLD && target != MODE_NEW)) {
		done(arg, 400, error_answer("bad request: \"to\" must be \"old\" or \"new\", not \"%s\"", to));
		return;
	}
	if (at) {
		time_t when;
		const char *why;
		if (when_parse(at, time(NULL), true, &when, &why) < 0) {
			done(arg, 400, error_answer("bad request: \"at\": '%s' is %s", at, why));
			return;
		}
		json_t *entry = schedule_switch(ctl, body, who, when);
		if (!entry) {
			done(arg, 500, error_answer("cannot persist the schedule"));
			return;
		}
		done(arg, 202, json_pack("{s:b, s:o}", "ok", 1, "scheduled", entry));
		return;
	}
	struct action *a = action_new(ctl, "switch", body, who, done, arg);
	if (!a)
		return;
	a->force = force;
	a->to = (struct scope_state){ .mode = target, .resume_to = target };
	if (a->from.mode == MODE_HOLD) {
		/* hold, switch, resume: the parked requests go to the new target
		 * when the operator resumes, not before. */
		a->to.mode = MODE_HOLD;
		a->to.until = a->from.until;
	}
	enum upstream_id id = target == MODE_OLD ? UPSTREAM_OLD : UPSTREAM_NEW;
	if (force) {
		a->preflight = json_pack("{s:b, s:s}", "ok", 0, "skipped", "forced");
		action_apply(a);
		return;
	}
	if (!preflight_start(ctl->base, ctl->dns, &ctl->cfg->upstream[id], id, preflight_done, a))
		action_answer(a, 500, error_answer("cannot start the preflight"));
}

static void act_maintenance(struct control *ctl, json_t *body, const char *who,
			    control_done_fn done, void *arg)
{
	int on = 1;
	const char *until = NULL;
	json_error_t jerr;
	if (json_unpack_ex(body, &jerr, 0, "{s?b, s?s}", "on", &on, "until", &until) < 0) {
		done(arg, 400, error_answer("bad request: %s", jerr.text));
		return;
	}
	time_t end = 0;
	const char *why;
	if (until && when_parse(until, time(NULL), true, &end, &why) < 0) {
		done(arg, 400, error_answer("bad request: \"until\": '%s' is %s", until, why));
		return;
	}
	struct action *a = action_new(ctl, "maintenance", body, who, done, arg);
	if (!a)
		return;
	if (on) {
		enum mode back = upstream_mode_of(&a->from);
		a->to = (struct scope_state){ .mode = MODE_MAINTENANCE, .resume_to = back, .until = end };
	} else {
		if (a->from.mode != MODE_MAINTENANCE) {
			action_answer(a, 409, error_answer("%s is not in maintenance (mode %s)",
							   scope_name(a->project),
							   mode_name(a->from.mode)));
			return;
		}
		a->to = (struct scope_state){ .mode = a->from.resume_to, .resume_to = a->from.resume_to };
	}
	action_apply(a);
}

static void act_hold(struct control *ctl, json_t *body, const char *who, control_done_fn done,
		     void *arg)
{
	double max = 30;
	json_t *m = json_object_get(body, "max");
	if (m && (!json_is_number(m) || json_number_value(m) <= 0 || json_number_value(m) > 3600)) {
		done(arg, 400, error_answer("bad request: \"max\" must be seconds in (0, 3600]"));
		return;
	}
	if (m)
		max = json_number_value(m);
	struct action *a = action_new(ctl, "hold", body, who, done, arg);
	if (!a)
		return;
	time_t until = time(NULL) + (time_t)(max + 0.999);
	a->to = (struct scope_state){ .mode = MODE_HOLD, .resume_to = upstream_mode_of(&a->from),
				      .until = until };
	action_apply(a);
}

/* Resume one scope (PROJECT NULL = global). */
static void resume_scope(struct control *ctl, const char *project, const char *who,
			 control_done_fn done, void *arg)
{
	json_t *body = project ? json_pack("{s:s}", "project", project) : json_object();
	if (!body) {
		done(arg, 500, error_answer("out of memory"));
		return;
	}
	struct action *a = action_new(ctl, "resume", body, who, done, arg);
	json_decref(body);
	if (!a)
		return;
	a->to = (struct scope_state){ .mode = a->from.resume_to, .resume_to = a->from.resume_to };
	action_apply(a);
}

struct resume_all {
	int pending, status;
	json_t *scopes;
	control_done_fn done;
	void *arg;
};

static void resume_one_done(void *arg, int status, json_t *answer)
{
	struct resume_all *r = arg;
	if (status >= 400)
		r->status = status;
	if (answer)
		json_array_append_new(r->scopes, answer);
	if (--r->pending == 0) {
		r->done(r->arg, r->status, json_pack("{s:b, s:o}", "ok", r->status < 400, "resumed",
						     r->scopes));
		free(r);
	}
}

static void act_resume(struct control *ctl, json_t *body, const char *who, control_done_fn done,
		       void *arg)
{
	const char *project = NULL;
	json_error_t jerr;
	if (json_unpack_ex(body, &jerr, 0, "{s?s}", "project", &project) < 0) {
		done(arg, 400, error_answer("bad request: %s", jerr.text));
		return;
	}
	const struct state_snapshot *snap = state_current();
	if (project) {
		if (state_mode_for(snap, project, strlen(project)) != MODE_HOLD) {
			done(arg, 409, error_answer("%s is not on hold", project));
			return;
		}
		resume_scope(ctl, project, who, done, arg);
		return;
	}
	/* No project: every scope on hold. */
	struct resume_all *r = calloc(1, sizeof(*r));
	char **names = calloc(snap->n_projects + 1, sizeof(*names));
	size_t n = 0;
	bool oom = !r || !names || !(r->scopes = json_array());
	for (size_t i = 0; !oom && i < snap->n_projects; i++)
		if (state_project_at(snap, i)->s.mode == MODE_HOLD)
			oom = !(names[n++] = strdup(state_project_at(snap, i)->name));
	bool global = snap->global.mode == MODE_HOLD;
	if (oom || (!global && n == 0)) {
		for (size_t i = 0; i < n; i++)
			free(names[i]);
		free(names);
		if (r)
			json_decref(r->scopes);
		free(r);
		done(arg, oom ? 500 : 409, error_answer(oom ? "out of memory" : "nothing is on hold"));
		return;
	}
	r->status = 200;
	r->done = done;
	r->arg = arg;
	r->pending = 1; /* held until the loop is done */
	if (global) {
		r->pending++;
		resume_scope(ctl, NULL, who, resume_one_done, r);
	}
	for (size_t i = 0; i < n; i++) {
		r->pending++;
		resume_scope(ctl, names[i], who, resume_one_done, r);
		free(names[i]);
	}
	free(names);
	resume_one_done(r, 0, NULL); /* drop the loop's own hold */
}

void control_act(struct control *ctl, const char *action, json_t *body, const char *who,
		 control_done_fn done, void *arg)
{
	static const struct {
		const char *name;
		void (*fn)(struct control *, json_t *, const char *, control_done_fn, void *);
	} table[] = {
		{ "switch", act_switch },
		{ "maintenance", act_maintenance },
		{ "hold", act_hold },
		{ "resume", act_resume },
	};
	if (!json_is_object(body)) {
		done(arg, 400, error_answer("bad request: the body must be a JSON object"));
		return;
	}
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (strcmp(table[i].name, action) == 0) {
			table[i].fn(ctl, body, who, done, arg);
			return;
		}
	done(arg, 404, error_answer("unknown action '%s'", action));
}

/* ---- schedule ---- */

int control_cancel(struct control *ctl, long id, const char *who, json_t **answer)
{
	json_t *list = json_deep_copy(state_scheduled());
	if (!list) {
		*answer = error_answer("out of memory");
		return 500;
	}
	size_t i;
	json_t *e;
	json_array_foreach(list, i, e) {
		if (json_integer_value(json_object_get(e, "id")) != id)
			continue;
		json_t *gone = json_incref(e);
		json_array_remove(list, i);
		char why[512];
		int rc = state_set_scheduled(list, why, sizeof(why));
		json_decref(list);
		if (rc < 0) {
			json_decref(gone);
			*answer = error_answer("cannot persist the schedule: %s", why);
			return 500;
		}
		journal_write(ctl, json_pack("{s:s, s:s, s:O, s:s}", "action", "cancel", "who", who,
					     "scheduled", gone, "outcome", "cancelled"));
		*answer = json_pack("{s:b, s:o}", "ok", 1, "cancelled", gone);
		return 200;
	}
	json_decref(list);
	*answer = error_answer("no scheduled switch #%ld", id);
	return 404;
}

struct sched_run {
	struct control *ctl;
	json_t *entry;
};

static void scheduled_done(void *arg, int status, json_t *answer)
{
	struct sched_run *r = arg;
	char *text = json_dumps(answer, JSON_COMPACT);
	log_info("scheduled switch #%lld: %d %s",
		 (long long)json_integer_value(json_object_get(r->entry, "id")), status,
		 text ? text : "");
	journal_write(r->ctl, json_pack("{s:s, s:s, s:O, s:i, s:o}", "action", "scheduled-run",
					"who", "scheduler", "scheduled", r->entry, "status", status,
					"answer", answer));
	free(text);
	json_decref(r->entry);
	free(r);
}

static void run_due_schedules(struct control *ctl, time_t now)
{
	const json_t *list = state_scheduled();
	size_t i;
	json_t *e;
	json_array_foreach(list, i, e) {
		time_t at = 0;
		if (when_parse(json_string_value(json_object_get(e, "at")), now, false, &at,
				       NULL) < 0 ||
		    at > now)
			continue;
		json_t *rest = json_deep_copy(list), *body = json_deep_copy(e);
		struct sched_run *r = calloc(1, sizeof(*r));
		if (!rest || !body || !r) {
			/* Nothing changed yet: the next tick tries again. */
			log_error("schedule: switch #%lld is due but out of memory",
				  (long long)json_integer_value(json_object_get(e, "id")));
			json_decref(rest);
			json_decref(body);
			free(r);
			return;
		}
		/* Take it off the list first: a failed run is journaled, not retried. */
		json_t *entry = json_incref(e);
		json_array_remove(rest, i);
		char why[512];
		if (state_set_scheduled(rest, why, sizeof(why)) < 0)
			log_error("schedule: %s", why);
		json_decref(rest);
		json_object_del(body, "at");
		json_object_del(body, "id");
		json_object_del(body, "who");
		r->ctl = ctl;
		r->entry = entry;
		char who[160];
		snprintf(who, sizeof(who), "scheduler (for %s)",
			 json_string_value(json_object_get(entry, "who")) ?: "?");
		act_switch(ctl, body, who, scheduled_done, r);
		json_decref(body);
		return; /* the list changed: the next tick looks again */
	}
}

/* The replay's journal lines, from worker 0: posted to the journal and
 * written by this thread's tick. The answer's bytes as printable ASCII. */
static void replay_note(const char *event, const char *project, uint64_t id, int status,
			uint32_t attempts, const char *answer, size_t answer_len)
{
	char text[SPOOL_ANSWER_MAX];
	size_t n = answer_len < sizeof(text) ? answer_len : sizeof(text);
	for (size_t i = 0; i < n; i++)
		text[i] = answer[i] >= 0x20 && answer[i] < 0x7f ? answer[i] : '.';
	json_t *e = json_pack("{s:s, s:s, s:s}", "action", event, "who", "replay", "scope",
			      strcmp(project, "-") == 0 ? "global" : project);
	if (e && id)
		json_object_update_new(e, json_pack("{s:I, s:i, s:i, s:s%}", "id", (json_int_t)id,
						    "status", status, "attempts", (int)attempts,
						    "answer", text, n));
	journal_post(e);
}

static void write_notes(struct control *ctl)
{
	unsigned long dropped = journal_write_posted(ctl->journal);
	if (dropped)
		log_warn("journal: %lu replay line(s) not written (more than %d queued, or a "
			 "write error)", dropped, JOURNAL_POSTED_MAX);
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct control *ctl = arg;
	time_t now = time(NULL);
	run_due_schedules(ctl, now);
	write_notes(ctl);
	fleet_maintain(now, FLEET_SAVE_SECONDS);
}

struct spool_store *control_spool(struct control *ctl)
{
	return ctl->spool;
}

void control_journal_append(struct control *ctl, json_t *entry)
{
	journal_write(ctl, entry);
}

/* ---- reload ---- */

/* CFG's upstream names join those the resolver follows (a name already
 * followed keeps its answer, so a reload never waits for DNS). */
static void follow_upstreams(struct control *ctl, struct config *cfg)
{
	for (int i = 0; i < UPSTREAM_COUNT; i++) {
		struct upstream_conf *u = &cfg->upstream[i];
		if (u->host && !(u->dns = dns_follow(ctl->dns, u->host, u->port)))
			log_error("dns: cannot follow %s: out of memory", u->host);
	}
}

/* The reload itself: validate, refuse what needs a restart, hand over. */
static int reload(struct control *ctl, const char *who, json_t **answer)
{
	const char *path = ctl->cfg->path;
	char *errs_text = NULL;
	size_t errs_len = 0;
	FILE *errs = open_memstream(&errs_text, &errs_len);
	if (!errs) {
		*answer = error_answer("cannot reload: out of memory");
		return 500;
	}
	struct config *next = ctl->ops->load(path, errs);
	fclose(errs);
	int status = 200;
	char outcome[600];
	if (!next) {
		while (errs_len && errs_text[errs_len - 1] == '\n')
			errs_text[--errs_len] = '\0';
		*answer = json_pack("{s:b, s:s}", "ok", 0, "error",
				    errs_text && *errs_text ? errs_text : "cannot read the config");
		snprintf(outcome, sizeof(outcome), "refused: invalid config");
		status = 400;
	} else {
		const char *key = ctl->ops->restart_needed(ctl->cfg, next);
		if (key) {
			*answer = error_answer("%s: '%s' changed, which needs a restart; the running "
					       "config stays", path, key);
			snprintf(outcome, sizeof(outcome), "refused: %s changed", key);
			ctl->ops->free(next);
			status = 409;
		}
	}
	if (status == 200) {
		struct config **list = realloc(ctl->reloaded, (ctl->n_reloaded + 1) * sizeof(*list));
		if (!list) {
			ctl->ops->free(next);
			*answer = error_answer("out of memory");
			free(errs_text);
			return 500;
		}
		ctl->reloaded = list;
		ctl->reloaded[ctl->n_reloaded++] = next;
		follow_upstreams(ctl, next);
		ctl->cfg = next;
		health_set_config(ctl->health, next);
		fleet_set_conf(next->fleet);
		log_set_level(next->log->level);
		project_set_limit(next->limits->projects);
		for (int i = 0; i < ctl->n_workers; i++)
			worker_set_config(ctl->workers[i], next);
		*answer = json_pack("{s:b, s:s, s:I}", "ok", 1, "config", path, "reloads",
				    (json_int_t)ctl->n_reloaded);
		snprintf(outcome, sizeof(outcome), "applied");
		log_info("reload by %s: %s applied", who, path);
	}
	if (status == 200)
		ctl->counts.reloads_ok++;
	else
		ctl->counts.reloads_failed++;
	journal_write(ctl, json_pack("{s:s, s:s, s:s, s:s}", "action", "reload", "who", who,
				     "config", path, "outcome", outcome));
	free(errs_text);
	return status;
}

int control_reload(struct control *ctl, const char *who, json_t **answer)
{
	/* systemd holds `systemctl reload` until READY=1, sent whatever the
	 * outcome (a refused reload leaves the running config serving). */
	if (notify_reloading() < 0)
		log_warn("systemd: cannot send RELOADING=1 to NOTIFY_SOCKET");
	int status = reload(ctl, who, answer);
	char line[96];
	snprintf(line, sizeof line, "running, %s", status == 200 ? "config reloaded"
								  : "reload refused, config unchanged");
	if (notify_ready(line) < 0)
		log_warn("systemd: cannot send READY=1 to NOTIFY_SOCKET");
	return status;
}

/* ---- status ---- */

static struct status_sources sources(struct control *ctl, size_t journal_entries)
{
	return (struct status_sources){
		.cfg = ctl->cfg,
		.workers = ctl->workers,
		.n_workers = ctl->n_workers,
		.spool = ctl->spool,
		.health = ctl->health,
		.journal = ctl->journal,
		.journal_entries = journal_entries,
	};
}

json_t *control_status(struct control *ctl)
{
	const struct status_sources src = sources(ctl, JOURNAL_IN_STATUS);
	return status_json(&src);
}

int control_metrics(struct control *ctl, struct evbuffer *out)
{
	const struct status_sources src = sources(ctl, 0);
	return metrics_render(&src, &ctl->counts, out);
}

const struct config *control_config(const struct control *ctl)
{
	return ctl->cfg;
}

int control_journal(struct control *ctl, size_t n, json_t **answer)
{
	json_t *entries = journal_tail(ctl->journal, n);
	if (!entries) {
		*answer = error_answer("cannot read the journal: %s", strerror(errno));
		return 500;
	}
	*answer = json_pack("{s:o}", "entries", entries);
	return 200;   /* a NULL answer (out of memory) is the admin API's 500 */
}

/* ---- life ---- */

#define DNS_SETTLE_SECONDS 5.0

struct control *control_new(struct event_base *base, struct config *cfg,
			    const struct control_config_ops *ops, struct worker **workers,
			    int n_workers, struct spool_store *spool, char *why, size_t why_len)
{
	struct control *ctl = calloc(1, sizeof(*ctl));
	if (!ctl) {
		snprintf(why, why_len, "out of memory");
		return NULL;
	}
	ctl->base = base;
	ctl->cfg = cfg;
	ctl->ops = ops;
	ctl->workers = workers;
	ctl->n_workers = n_workers;
	ctl->spool = spool;
	ctl->journal = journal_open(cfg->state->journal_file, why, why_len);
	if (!ctl->journal) {
		free(ctl);
		return NULL;
	}
	ctl->dns = dns_resolver_new(base, cfg->dns, why, why_len);
	if (!ctl->dns) {
		journal_close(ctl->journal);
		free(ctl);
		return NULL;
	}
	follow_upstreams(ctl, cfg);
	/* The first requests should find addresses; a name that does not
	 * resolve yet is retried in the background (502 until then). */
	dns_settle(ctl->dns, DNS_SETTLE_SECONDS);
	size_t i;
	json_t *e;
	json_array_foreach(state_scheduled(), i, e) {
		long id = (long)json_integer_value(json_object_get(e, "id"));
		if (id > ctl->next_sched_id)
			ctl->next_sched_id = id;
	}
	ctl->tick = event_new(base, -1, EV_PERSIST, tick, ctl);
	ctl->health = health_new(base, cfg);
	if (!ctl->tick || !ctl->health) {
		snprintf(why, why_len, "control: out of memory");
		control_free(ctl);
		return NULL;
	}
	struct timeval tv = duration_tv(TICK_SECONDS);
	evtimer_add(ctl->tick, &tv);
	replay_set_note(replay_note);
	return ctl;
}

void control_free(struct control *ctl)
{
	if (!ctl)
		return;
	for (size_t i = 0; i < ctl->n_reloaded; i++)
		ctl->ops->free(ctl->reloaded[i]);
	free(ctl->reloaded);
	if (ctl->tick)
		event_free(ctl->tick);
	health_free(ctl->health);
	replay_set_note(NULL);
	write_notes(ctl);
	dns_resolver_free(ctl->dns);
	journal_close(ctl->journal);
	free(ctl);
}
