/* state: modes of the scopes, read lock-free by workers, changed by the
 * control thread. */
#include "state.h"

#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "log.h"
#include "state_store.h"

static const char *const mode_names[MODE_COUNT] = { "old", "new", "maintenance", "hold" };

const char *mode_name(enum mode m)
{
	return (unsigned)m < MODE_COUNT ? mode_names[m] : "?";
}

int mode_parse(const char *text, enum mode *out)
{
	for (int i = 0; i < MODE_COUNT; i++)
		if (strcmp(text, mode_names[i]) == 0) {
			*out = (enum mode)i;
			return 0;
		}
	return -1;
}

int state_conf_parse(struct conf_reader *r, const config_setting_t *root, struct config *cfg)
{
	if (conf_get_string(r, root, "state_file", &cfg->state->state_file) < 0 ||
	    conf_get_string(r, root, "journal_file", &cfg->state->journal_file) < 0)
		return -1;
	if (!cfg->state->state_file)
		cfg->state->state_file = strdup(STATE_FILE_DEFAULT);
	if (!cfg->state->journal_file)
		cfg->state->journal_file = strdup(JOURNAL_FILE_DEFAULT);
	if (!cfg->state->state_file || !cfg->state->journal_file) {
		conf_error(r, root, "state_file, journal_file: out of memory");
		return -1;
	}
	return 0;
}

const char *state_conf_restart_key(const struct state_conf *a, const struct state_conf *b)
{
	/* The state is loaded and the journal opened once, at start. */
	if (!conf_str_equal(a->state_file, b->state_file))
		return "state_file";
	if (!conf_str_equal(a->journal_file, b->journal_file))
		return "journal_file";
	return NULL;
}

void state_conf_free(struct state_conf *c)
{
	free(c->state_file);
	free(c->journal_file);
	c->state_file = c->journal_file = NULL;
}

/* ---- snapshots ---- */

/* A replaced snapshot may still be read by a worker in the middle of a
 * callback; it is freed once it has been retired this long. */
#define GRACE_SECONDS 10

struct retired {
	struct state_snapshot *s;
	time_t at;
	struct retired *next;
};

static struct state_snapshot *current;
static struct retired *retired_list;
static struct state_store *store;
static json_t *scheduled;

static void snapshot_free(struct state_snapshot *s)
{
	if (!s)
		return;
	free(s->global.reason);
	for (size_t i = 0; i < s->n_projects; i++) {
		free(s->projects[i].name);
		free(s->projects[i].s.reason);
	}
	free(s->projects);
	free(s);
}

static int project_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	return c ? c : (alen > blen) - (alen < blen);
}

const struct project_mode *state_project(const struct state_snapshot *s, const char *project,
					 size_t len)
{
	if (!s || !len)
		return NULL;
	size_t lo = 0, hi = s->n_projects;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = project_cmp(project, len, s->projects[mid].name, s->projects[mid].len);
		if (c == 0)
			return &s->projects[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

const struct scope_state *state_scope_for(const struct state_snapshot *s, const char *project,
					  size_t len)
{
	static const struct scope_state fallback = { .mode = MODE_OLD, .resume_to = MODE_OLD };
	if (!s)
		return &fallback;
	const struct project_mode *p = state_project(s, project, len);
	return p ? &p->s : &s->global;
}

enum mode state_mode_for(const struct state_snapshot *s, const char *project, size_t len)
{
	return state_scope_for(s, project, len)->mode;
}

const struct state_snapshot *state_current(void)
{
	return __atomic_load_n(&current, __ATOMIC_ACQUIRE);
}

static void publish(struct state_snapshot *next)
{
	struct state_snapshot *old = __atomic_exchange_n(&current, next, __ATOMIC_ACQ_REL);
	time_t now = time(NULL);
	struct retired **pp = &retired_list;
	while (*pp) {
		struct retired *r = *pp;
		if (now - r->at >= GRACE_SECONDS) {
			*pp = r->next;
			snapshot_free(r->s);
			free(r);
		} else {
			pp = &r->next;
		}
	}
	if (old) {
		struct retired *r = malloc(sizeof(*r));
		if (r) {
			*r = (struct retired){ old, now, retired_list };
			retired_list = r;
		} /* else leak it: freeing it could crash a reader */
	}
}

/* ---- JSON form (the persisted document and the status answer) ---- */

json_t *state_time_json(time_t t)
{
	if (!t)
		return json_null();
	char buf[32];
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(buf);
}

static time_t time_from_json(const json_t *v)
{
	if (!json_is_string(v))
		return 0;
	struct tm tm = { 0 };
	const char *end = strptime(json_string_value(v), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return end && !*end ? timegm(&tm) : 0;
}

json_t *state_scope_json(const struct scope_state *s)
{
	return json_pack("{s:s, s:s, s:o, s:o, s:s?}", "mode", mode_name(s->mode), "resume_to",
			 mode_name(s->resume_to), "until", state_time_json(s->until), "since",
			 state_time_json(s->since), "reason", s->reason);
}

static int scope_from_json(const json_t *o, struct scope_state *s, char *why, size_t why_len)
{
	const char *mode = NULL, *resume = NULL;
	json_error_t err;
	if (json_unpack_ex((json_t *)o, &err, 0, "{s:s, s?s}", "mode", &mode, "resume_to",
			   &resume) < 0) {
		snprintf(why, why_len, "%s", err.text);
		return -1;
	}
	/* "reason" is written as null when there is none. */
	const char *reason = json_string_value(json_object_get(o, "reason"));
	if (mode_parse(mode, &s->mode) < 0 || (resume && mode_parse(resume, &s->resume_to) < 0)) {
		snprintf(why, why_len, "unknown mode '%s'", mode_parse(mode, &s->mode) < 0 ? mode : resume);
		return -1;
	}
	if (!resume)
		s->resume_to = s->mode == MODE_NEW ? MODE_NEW : MODE_OLD;
	s->until = time_from_json(json_object_get(o, "until"));
	s->since = time_from_json(json_object_get(o, "since"));
	s->reason = reason ? strdup(reason) : NULL;
	if (reason && !s->reason) {
		snprintf(why, why_len, "out of memory");
		return -1;
	}
	return 0;
}

/* NULL when out of memory: a document missing a part must never be saved
 * (a restart would lose those modes). */
static json_t *document(const struct state_snapshot *s)
{
	json_t *doc = state_scope_json(&s->global);
	json_t *projects = json_object();
	/* json_object_set*_new() drop a NULL value and fail: one check each. */
	bool ok = doc && projects &&
		  json_object_set_new(doc, "generation", json_integer((json_int_t)s->generation)) == 0;
	for (size_t i = 0; ok && i < s->n_projects; i++)
		ok = json_object_setn_new(projects, s->projects[i].name, s->projects[i].len,
					  state_scope_json(&s->projects[i].s)) == 0;
	ok = ok && json_object_set(doc, "projects", projects) == 0 &&
	     json_object_set_new(doc, "scheduled",
				 scheduled ? json_incref(scheduled) : json_array()) == 0;
	json_decref(projects);
	if (!ok) {
		json_decref(doc);
		return NULL;
	}
	return doc;
}

static int qsort_projects(const void *a, const void *b)
{
	const struct project_mode *x = a, *y = b;
	return project_cmp(x->name, x->len, y->name, y->len);
}

static struct state_snapshot *snapshot_from_json(const json_t *doc, char *why, size_t why_len)
{
	struct state_snapshot *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(why, why_len, "out of memory");
		return NULL;
	}
	if (scope_from_json(doc, &s->global, why, why_len) < 0)
		goto fail;
	json_t *gen = json_object_get(doc, "generation");
	s->generation = json_is_integer(gen) ? (uint64_t)json_integer_value(gen) : 0;
	json_t *projects = json_object_get(doc, "projects");
	if (projects && !json_is_object(projects)) {
		snprintf(why, why_len, "\"projects\" is not an object");
		goto fail;
	}
	size_t n = projects ? json_object_size(projects) : 0;
	s->projects = calloc(n ? n : 1, sizeof(*s->projects));
	if (!s->projects) {
		snprintf(why, why_len, "out of memory");
		goto fail;
	}
	const char *name;
	json_t *v;
	json_object_foreach(projects, name, v) {
		struct project_mode *p = &s->projects[s->n_projects];
		if (scope_from_json(v, &p->s, why, why_len) < 0)
			goto fail;
		s->n_projects++;     /* counted now: snapshot_free frees its reason */
		p->name = strdup(name);
		p->len = strlen(name);
		if (!p->name) {
			snprintf(why, why_len, "out of memory");
			goto fail;
		}
	}
	qsort(s->projects, s->n_projects, sizeof(*s->projects), qsort_projects);
	return s;
fail:
	snapshot_free(s);
	return NULL;
}

/* Makes ST and SCHED (taken) the current store and schedule. */
static void adopt(struct state_store *st, json_t *sched)
{
	if (store != st)
		state_store_free(store);
	store = st;
	json_decref(scheduled);
	scheduled = sched;
}

int state_init(struct state_store *st, const char *force_mode, FILE *errs)
{
	if (!st) {
		fprintf(errs, "cutover: out of memory\n");
		return -1;
	}
	char why[512] = "", cause[400] = "";
	json_t *doc = NULL, *sched = NULL;
	struct state_snapshot *s = NULL;
	if (state_store_load(st, &doc, why, sizeof(why)) < 0)
		goto unreadable; /* WHY is "FILE:LINE: cause" */
	if (!doc) {
		s = calloc(1, sizeof(*s));
		if (!s)
			goto out_of_memory;
		s->global.mode = s->global.resume_to = MODE_OLD;
	} else {
		s = snapshot_from_json(doc, cause, sizeof(cause));
		json_t *list = json_object_get(doc, "scheduled");
		if (json_is_array(list))
			sched = json_incref(list);
		json_decref(doc);
		if (!s) {
			json_decref(sched);
			snprintf(why, sizeof(why), "%s:1: %s", state_store_name(st), cause);
			goto unreadable;
		}
	}
	if (!sched && !(sched = json_array())) {
		snapshot_free(s);
		goto out_of_memory;
	}
	adopt(st, sched);
	publish(s);
	return 0;

unreadable:
	fprintf(errs, "%s\n", why);
	if (force_mode) {
		enum mode m;
		if (mode_parse(force_mode, &m) < 0 || (m != MODE_OLD && m != MODE_NEW &&
						       m != MODE_MAINTENANCE)) {
			fprintf(errs, "cutover: --start-mode %s: expected old, new or maintenance\n",
				force_mode);
			return -1;
		}
		fprintf(errs, "cutover: cannot load the state; starting in mode %s as asked "
			      "(--start-mode)\n", force_mode);
		s = calloc(1, sizeof(*s));
		sched = json_array();
		if (!s || !sched) {
			free(s);
			json_decref(sched);
			goto out_of_memory;
		}
		s->global.mode = m;
		s->global.resume_to = m == MODE_NEW ? MODE_NEW : MODE_OLD;
		adopt(st, sched);
		publish(s);
		return 0;
	}
	fprintf(errs, "cutover: cannot load the state; refusing to start, because a restart must "
		      "not silently return traffic to old. Fix or remove the file, or start with "
		      "--start-mode MODE\n");
	state_store_free(st); /* whatever was loaded before stays in force */
	return -1;

out_of_memory:
	fprintf(errs, "cutover: cannot load the state: out of memory\n");
	state_store_free(st);
	return -1;
}

void state_shutdown(void)
{
	snapshot_free(__atomic_exchange_n(&current, NULL, __ATOMIC_ACQ_REL));
	while (retired_list) {
		struct retired *r = retired_list;
		retired_list = r->next;
		snapshot_free(r->s);
		free(r);
	}
	json_decref(scheduled);
	scheduled = NULL;
	state_store_free(store);
	store = NULL;
}

/* Returns 0, or -1 when out of memory (DST has no reason then). */
static int scope_copy(struct scope_state *dst, const struct scope_state *src)
{
	*dst = *src;
	dst->reason = src->reason ? strdup(src->reason) : NULL;
	return src->reason && !dst->reason ? -1 : 0;
}

/* CUR with room for one more project; NULL when out of memory. */
static struct state_snapshot *snapshot_clone(const struct state_snapshot *cur)
{
	struct state_snapshot *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->generation = cur->generation + 1;
	s->projects = calloc(cur->n_projects + 1, sizeof(*s->projects));
	if (scope_copy(&s->global, &cur->global) < 0 || !s->projects)
		goto fail;
	for (size_t i = 0; i < cur->n_projects; i++) {
		struct project_mode *p = &s->projects[i];
		s->n_projects++;     /* counted now: snapshot_free frees what is copied */
		p->len = cur->projects[i].len;
		if (!(p->name = strdup(cur->projects[i].name)) ||
		    scope_copy(&p->s, &cur->projects[i].s) < 0)
			goto fail;
	}
	return s;
fail:
	snapshot_free(s);
	return NULL;
}

static int persist_and_publish(struct state_snapshot *next, char *why, size_t why_len)
{
	json_t *doc = document(next);
	if (!doc) {
		snprintf(why, why_len, "out of memory");
		snapshot_free(next);
		return -1;
	}
	int rc = state_store_save(store, doc, why, why_len);
	json_decref(doc);
	if (rc < 0) {
		snapshot_free(next);
		return -1;
	}
	publish(next);
	return 0;
}

int state_change(const char *project, const struct scope_state *s, char *why, size_t why_len)
{
	const struct state_snapshot *cur = state_current();
	struct state_snapshot *next = snapshot_clone(cur);
	if (!next) {
		snprintf(why, why_len, "out of memory");
		return -1;
	}
	struct scope_state *dst = &next->global;
	if (project) {
		size_t len = strlen(project);
		struct project_mode *p = (struct project_mode *)state_project(next, project, len);
		if (!p) {
			p = &next->projects[next->n_projects++];
			p->name = strdup(project);
			p->len = len;
			if (!p->name)
				goto out_of_memory;
			qsort(next->projects, next->n_projects, sizeof(*next->projects), qsort_projects);
			p = (struct project_mode *)state_project(next, project, len);
		} else {
			free(p->s.reason);
		}
		dst = &p->s;
	} else {
		free(dst->reason);
	}
	if (scope_copy(dst, s) < 0)
		goto out_of_memory;
	return persist_and_publish(next, why, why_len);

out_of_memory:
	snprintf(why, why_len, "out of memory");
	snapshot_free(next);
	return -1;
}

const json_t *state_scheduled(void)
{
	return scheduled;
}

int state_set_scheduled(json_t *list, char *why, size_t why_len)
{
	if (!list) {             /* the caller ran out of memory building it */
		snprintf(why, why_len, "out of memory");
		return -1;
	}
	json_t *old = scheduled;
	scheduled = json_incref(list);
	const struct state_snapshot *cur = state_current();
	json_t *doc = document(cur);
	int rc = doc ? state_store_save(store, doc, why, why_len) : -1;
	if (!doc)
		snprintf(why, why_len, "out of memory");
	json_decref(doc);
	if (rc < 0) {
		json_decref(scheduled);
		scheduled = old;
		return -1;
	}
	json_decref(old);
	return 0;
}
