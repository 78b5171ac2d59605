/* state: modes of the scopes, read lock-free by workers, changed by the
 * control thread. */
#include "state.h"

#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "log.h"
#include "project.h"
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

/* ---- snapshots ----
 *
 * A snapshot is a small header (generation, global scope, project count)
 * over a shared project table; the table maps each project with its own
 * mode to an immutable record. A change builds one record and one header,
 * stores the record's pointer in its table entry and swaps the header: the
 * work and the memory per change do not depend on how many projects there
 * are. The table grows by doubling, so copying it is paid once per
 * doubling, not per change. */

/* A replaced header, record or table may still be read by a worker in the
 * middle of a callback; it is freed once it has been retired this long. */
#define GRACE_SECONDS 10
/* Bounds what waits out the grace period (~200 bytes per change, so some
 * 80,000 changes in GRACE_SECONDS): past it, changes are refused until the
 * oldest are freed. An operator never comes near it (a change is two
 * fsyncs); a runaway script meets a clear error instead of a growing
 * daemon. */
#define RETIRED_BYTES_MAX (16 * 1024 * 1024)
#define TABLE_MIN 16

struct project_table {
	size_t n;                        /* entries used (control thread) */
	size_t cap;                      /* entries allocated */
	size_t mask;                     /* slots - 1; slots = 2 * cap, a power of two */
	struct project_mode **entries;   /* in the order projects got a mode; atomic */
	uint32_t *slots;                 /* open addressing: entry + 1, 0 = free; atomic */
};

struct retired {
	void *p;
	void (*free_fn)(void *);
	size_t bytes;
	time_t at;
	struct retired *next;
};

static struct state_snapshot *current;
static struct retired *retired_head, *retired_tail;   /* oldest first */
static size_t retired_bytes;
static struct state_store *store;
static json_t *scheduled;
static bool have_doc;        /* the store holds a document the changes apply to */

static uint64_t name_hash(const char *name, size_t len)
{
	uint64_t h = 14695981039346656037ULL;   /* FNV-1a */
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)name[i]) * 1099511628211ULL;
	return h;
}

/* One allocation: the table and both arrays. */
static struct project_table *table_new(size_t cap)
{
	size_t slots = 2 * cap;
	struct project_table *t = calloc(1, sizeof(*t) + cap * sizeof(*t->entries) +
						    slots * sizeof(*t->slots));
	if (!t)
		return NULL;
	t->cap = cap;
	t->mask = slots - 1;
	t->entries = (struct project_mode **)(t + 1);
	t->slots = (uint32_t *)(t->entries + cap);
	return t;
}

/* Entry index of NAME in T, or -1. Lock-free: entries are published before
 * the slot that points at them. */
static ssize_t table_find(const struct project_table *t, const char *name, size_t len)
{
	if (!t)
		return -1;
	for (size_t i = name_hash(name, len) & t->mask;; i = (i + 1) & t->mask) {
		uint32_t e = __atomic_load_n(&t->slots[i], __ATOMIC_ACQUIRE);
		if (!e)
			return -1;
		const struct project_mode *p = __atomic_load_n(&t->entries[e - 1], __ATOMIC_ACQUIRE);
		if (p->len == len && memcmp(p->name, name, len) == 0)
			return (ssize_t)(e - 1);
	}
}

/* Adds REC as entry t->n; there must be room. */
static void table_insert(struct project_table *t, struct project_mode *rec)
{
	size_t e = t->n++;
	__atomic_store_n(&t->entries[e], rec, __ATOMIC_RELEASE);
	size_t i = name_hash(rec->name, rec->len) & t->mask;
	while (t->slots[i])
		i = (i + 1) & t->mask;
	__atomic_store_n(&t->slots[i], (uint32_t)(e + 1), __ATOMIC_RELEASE);
}

/* A table twice T's size (TABLE_MIN for none) sharing T's records. */
static struct project_table *table_grow(const struct project_table *t)
{
	size_t cap = t ? 2 * t->cap : TABLE_MIN;
	if (cap > UINT32_MAX / 2)
		return NULL;
	struct project_table *g = table_new(cap);
	for (size_t i = 0; g && t && i < t->n; i++)
		table_insert(g, t->entries[i]);
	return g;
}

/* The table and the records it holds (at shutdown, or a whole state
 * replaced by state_init). */
static void table_free_deep(void *arg)
{
	struct project_table *t = arg;
	for (size_t i = 0; t && i < t->n; i++)
		free(t->entries[i]);
	free(t);
}

/* One allocation: the record, its name and its reason. */
static struct project_mode *record_new(const char *name, size_t len, const struct scope_state *s)
{
	size_t rlen = s->reason ? strlen(s->reason) + 1 : 0;
	struct project_mode *p = malloc(sizeof(*p) + len + 1 + rlen);
	if (!p)
		return NULL;
	char *text = (char *)(p + 1);
	memcpy(text, name, len);
	text[len] = '\0';
	p->name = text;
	p->len = len;
	p->s = *s;
	p->s.reason = rlen ? memcpy(text + len + 1, s->reason, rlen) : NULL;
	return p;
}

/* One allocation: the header and the global reason. */
static struct state_snapshot *header_new(uint64_t gen, const struct scope_state *global,
					 struct project_table *t, size_t n)
{
	size_t rlen = global->reason ? strlen(global->reason) + 1 : 0;
	struct state_snapshot *s = malloc(sizeof(*s) + rlen);
	if (!s)
		return NULL;
	*s = (struct state_snapshot){ gen, *global, t, n };
	s->global.reason = rlen ? memcpy(s + 1, global->reason, rlen) : NULL;
	return s;
}

static size_t table_bytes(const struct project_table *t)
{
	return sizeof(*t) + t->cap * sizeof(*t->entries) + (t->mask + 1) * sizeof(*t->slots);
}

static size_t record_bytes(const struct project_mode *p)
{
	return sizeof(*p) + p->len + 1 + (p->s.reason ? strlen(p->s.reason) + 1 : 0);
}

static size_t header_bytes(const struct state_snapshot *s)
{
	return sizeof(*s) + (s->global.reason ? strlen(s->global.reason) + 1 : 0);
}

static void retire(void *p, void (*free_fn)(void *), size_t bytes, time_t now)
{
	struct retired *r = malloc(sizeof(*r));
	if (!r)
		return; /* leak it: freeing it could crash a reader */
	*r = (struct retired){ p, free_fn, bytes + sizeof(*r), now, NULL };
	if (retired_tail)
		retired_tail->next = r;
	else
		retired_head = r;
	retired_tail = r;
	retired_bytes += r->bytes;
}

/* Frees what has waited out the grace period (all of it when ALL). */
static void reclaim(time_t now, bool all)
{
	while (retired_head && (all || now - retired_head->at >= GRACE_SECONDS)) {
		struct retired *r = retired_head;
		retired_head = r->next;
		if (!retired_head)
			retired_tail = NULL;
		retired_bytes -= r->bytes;
		r->free_fn(r->p);
		free(r);
	}
}

/* Frees what was retired after MARK (NULL: everything), which no worker
 * ever saw: the steps of replaying the store's changes at start. */
static void drop_since(struct retired *mark)
{
	struct retired *r = mark ? mark->next : retired_head;
	if (mark)
		mark->next = NULL;
	else
		retired_head = NULL;
	retired_tail = mark;
	while (r) {
		struct retired *next = r->next;
		retired_bytes -= r->bytes;
		r->free_fn(r->p);
		free(r);
		r = next;
	}
}

size_t state_retired_bytes(void)
{
	return retired_bytes;
}

const struct project_mode *state_project(const struct state_snapshot *s, const char *project,
					 size_t len)
{
	if (!s || !len)
		return NULL;
	ssize_t e = table_find(s->projects, project, len);
	return e < 0 ? NULL : __atomic_load_n(&s->projects->entries[e], __ATOMIC_ACQUIRE);
}

const struct project_mode *state_project_at(const struct state_snapshot *s, size_t i)
{
	return i < s->n_projects ? __atomic_load_n(&s->projects->entries[i], __ATOMIC_ACQUIRE)
				 : NULL;
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

/* ---- one change: prepared (may fail), then committed (cannot) ---- */

struct pending {
	struct state_snapshot *header;   /* the next header */
	struct project_mode *rec;        /* the project's new record, or NULL */
	ssize_t entry;                   /* its entry, -1 = a new project */
	struct project_table *grown;     /* the table grown for it, or NULL */
};

static void pending_free(struct pending *p)
{
	free(p->header);
	free(p->rec);
	free(p->grown);
	*p = (struct pending){ .entry = -1 };
}

/* Builds what setting PROJECT (NULL = global; S NULL = only a new
 * generation) on top of CUR needs, changing nothing. -1 when out of
 * memory. */
static int prepare(const struct state_snapshot *cur, const char *project,
		   const struct scope_state *s, struct pending *p)
{
	struct project_table *t = cur->projects;
	*p = (struct pending){ .entry = -1 };
	if (!project || !s) {
		p->header = header_new(cur->generation + 1, s ? s : &cur->global, t,
				       cur->n_projects);
		return p->header ? 0 : -1;
	}
	size_t len = strlen(project), n = cur->n_projects;
	p->entry = table_find(t, project, len);
	if (!(p->rec = record_new(project, len, s)))
		goto fail;
	if (p->entry < 0) {
		n++;
		if ((!t || t->n == t->cap) && !(t = p->grown = table_grow(t)))
			goto fail;
	}
	if (!(p->header = header_new(cur->generation + 1, &cur->global, t, n)))
		goto fail;
	return 0;
fail:
	pending_free(p);
	return -1;
}

/* Makes P the snapshot at *AT (&current, or a private one while the
 * store's changes are replayed at start): the record into its entry, then
 * the header swapped. */
static void commit(struct state_snapshot **at, struct pending *p)
{
	struct state_snapshot *old = *at;
	time_t now = time(NULL);
	struct project_table *t = p->header->projects;
	if (p->rec && p->entry >= 0) {
		struct project_mode *was = __atomic_exchange_n(&t->entries[p->entry], p->rec,
							       __ATOMIC_ACQ_REL);
		retire(was, free, record_bytes(was), now);
	} else if (p->rec) {
		table_insert(t, p->rec);
	}
	__atomic_store_n(at, p->header, __ATOMIC_RELEASE);
	retire(old, free, header_bytes(old), now);
	if (p->grown && old->projects)   /* its records live on in the new one */
		retire(old->projects, free, table_bytes(old->projects), now);
	*p = (struct pending){ .entry = -1 };
}

/* Publishes S (with its own table) in place of everything before. */
static void publish_whole(struct state_snapshot *s)
{
	struct state_snapshot *old = __atomic_exchange_n(&current, s, __ATOMIC_ACQ_REL);
	if (old) {
		time_t now = time(NULL);
		if (old->projects)
			retire(old->projects, table_free_deep, table_bytes(old->projects), now);
		retire(old, free, header_bytes(old), now);
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
	for (size_t i = 0; ok && i < s->n_projects; i++) {
		const struct project_mode *p = state_project_at(s, i);
		ok = json_object_setn_new(projects, p->name, p->len, state_scope_json(&p->s)) == 0;
	}
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

/* The change record of setting PROJECT (NULL = global) to S, or of the
 * schedule SCHED, as generation GEN. NULL when out of memory. */
static json_t *change_json(uint64_t gen, const char *project, const struct scope_state *s,
			   json_t *sched)
{
	json_t *c = json_pack("{s:I}", "generation", (json_int_t)gen);
	bool ok = c && (!project || json_object_set_new(c, "project", json_string(project)) == 0) &&
		  (!s || json_object_set_new(c, "scope", state_scope_json(s)) == 0) &&
		  (!sched || json_object_set(c, "scheduled", sched) == 0);
	if (!ok) {
		json_decref(c);
		return NULL;
	}
	return c;
}

/* The replay of the store's changes at start, on a private snapshot. */
struct replay {
	struct state_snapshot *s;
	json_t *sched;
	uint64_t saved;              /* the document's generation */
};

/* Applies one change read back from the store. One already in the
 * document (generation not above the document's: a crash between saving
 * it and emptying the log) is skipped. */
static int apply_change(const json_t *c, void *arg, char *why, size_t why_len)
{
	struct replay *r = arg;
	struct state_snapshot **at = &r->s;
	json_t *gen = json_object_get(c, "generation");
	json_t *scope = json_object_get(c, "scope");
	json_t *project = json_object_get(c, "project");
	json_t *sched = json_object_get(c, "scheduled");
	if (!json_is_integer(gen) || (project && !json_is_string(project)) ||
	    (scope && !json_is_object(scope)) || (sched && !json_is_array(sched)) ||
	    !scope == !sched || (project && !scope)) {
		snprintf(why, why_len, "not a change record");
		return -1;
	}
	if ((uint64_t)json_integer_value(gen) <= r->saved)
		return 0;
	if (project && !project_name_ok(json_string_value(project), json_string_length(project))) {
		snprintf(why, why_len, "\"project\": not a project name");
		return -1;
	}
	struct scope_state s = { 0 };
	if (scope && scope_from_json(scope, &s, why, why_len) < 0)
		return -1;
	struct pending p;
	int rc = prepare(*at, json_string_value(project), scope ? &s : NULL, &p);
	free(s.reason);
	if (rc < 0) {
		snprintf(why, why_len, "out of memory");
		return -1;
	}
	p.header->generation = (uint64_t)json_integer_value(gen);
	commit(at, &p);
	if (sched) {
		json_decref(r->sched);
		r->sched = json_incref(sched);
	}
	return 0;
}

static struct state_snapshot *snapshot_from_json(const json_t *doc, char *why, size_t why_len)
{
	struct scope_state global = { 0 };
	struct project_table *t = NULL;
	struct state_snapshot *s = NULL;
	if (scope_from_json(doc, &global, why, why_len) < 0)
		return NULL;
	json_t *gen = json_object_get(doc, "generation");
	json_t *projects = json_object_get(doc, "projects");
	if (projects && !json_is_object(projects)) {
		snprintf(why, why_len, "\"projects\" is not an object");
		goto fail;
	}
	size_t n = projects ? json_object_size(projects) : 0, cap = TABLE_MIN;
	while (cap < n)
		cap *= 2;
	if (cap > UINT32_MAX / 2 || !(t = table_new(cap)))
		goto out_of_memory;
	const char *name;
	json_t *v;
	json_object_foreach(projects, name, v) {
		/* A scope no request could reach (found by fuzz_state). */
		if (!project_name_ok(name, strlen(name))) {
			snprintf(why, why_len, "\"projects\": \"%.*s\" is not a project name", 64, name);
			goto fail;
		}
		struct scope_state ps = { 0 };
		if (scope_from_json(v, &ps, why, why_len) < 0)
			goto fail;
		struct project_mode *rec = record_new(name, strlen(name), &ps);
		free(ps.reason);
		if (!rec)
			goto out_of_memory;
		table_insert(t, rec);
	}
	s = header_new(json_is_integer(gen) ? (uint64_t)json_integer_value(gen) : 0, &global, t,
		       t->n);
	if (!s)
		goto out_of_memory;
	free(global.reason);
	return s;
out_of_memory:
	snprintf(why, why_len, "out of memory");
fail:
	free(global.reason);
	table_free_deep(t);
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

static struct state_snapshot *snapshot_of_mode(enum mode m)
{
	struct scope_state g = { .mode = m, .resume_to = m == MODE_NEW ? MODE_NEW : MODE_OLD };
	return header_new(0, &g, NULL, 0);
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
	struct retired *mark = retired_tail;
	bool had_doc = false;
	if (state_store_load(st, &doc, why, sizeof(why)) < 0)
		goto unreadable; /* WHY is "FILE:LINE: cause" */
	had_doc = doc != NULL;
	if (!doc) {
		if (!(s = snapshot_of_mode(MODE_OLD)))
			goto out_of_memory;
	} else {
		s = snapshot_from_json(doc, cause, sizeof(cause));
		json_t *list = json_object_get(doc, "scheduled");
		if (json_is_array(list))
			sched = json_incref(list);
		json_decref(doc);
		if (!s) {
			snprintf(why, sizeof(why), "%s:1: %s", state_store_name(st), cause);
			goto unreadable;
		}
	}
	if (!sched && !(sched = json_array()))
		goto out_of_memory;
	/* Replayed on a private snapshot: workers see the result only, and
	 * what the replay replaced is freed at once (drop_since). */
	struct replay r = { s, sched, s->generation };
	int rc = state_store_replay(st, apply_change, &r, why, sizeof(why));
	s = r.s;
	sched = r.sched;
	if (rc < 0)
		goto unreadable; /* WHY is "FILE:LINE: cause" */
	drop_since(mark);
	have_doc = had_doc;
	adopt(st, sched);
	publish_whole(s);
	return 0;

unreadable:
	drop_since(mark);
	if (s)
		table_free_deep(s->projects);
	free(s);
	s = NULL;
	json_decref(sched);
	fprintf(errs, "%s\n", why);
	if (force_mode) {
		enum mode m;
		if (mode_parse(force_mode, &m) < 0 || (m != MODE_OLD && m != MODE_NEW &&
						       m != MODE_MAINTENANCE)) {
			fprintf(errs, "cutover: --start-mode %s: expected old, new or maintenance\n",
				force_mode);
			state_store_free(st);
			return -1;
		}
		fprintf(errs, "cutover: cannot load the state; starting in mode %s as asked "
			      "(--start-mode)\n", force_mode);
		s = snapshot_of_mode(m);
		sched = json_array();
		if (!s || !sched) {
			free(s);
			json_decref(sched);
			fprintf(errs, "cutover: cannot load the state: out of memory\n");
			state_store_free(st);
			return -1;
		}
		have_doc = false;    /* the first change saves the whole state over it */
		adopt(st, sched);
		publish_whole(s);
		return 0;
	}
	fprintf(errs, "cutover: cannot load the state; refusing to start, because a restart must "
		      "not silently return traffic to old. Fix or remove the file, or start with "
		      "--start-mode MODE\n");
	state_store_free(st); /* whatever was loaded before stays in force */
	return -1;

out_of_memory:
	if (s)
		table_free_deep(s->projects);
	free(s);
	fprintf(errs, "cutover: cannot load the state: out of memory\n");
	state_store_free(st);
	return -1;
}

void state_shutdown(void)
{
	struct state_snapshot *s = __atomic_exchange_n(&current, NULL, __ATOMIC_ACQ_REL);
	if (s)
		table_free_deep(s->projects);
	free(s);
	reclaim(0, true);
	json_decref(scheduled);
	scheduled = NULL;
	state_store_free(store);
	store = NULL;
	have_doc = false;
}

/* Persists CHANGE (taken) ahead of P: appended to the store's log, or the
 * whole state saved first when the store holds no document yet. Then
 * commits P and, when the log has grown large next to the document,
 * saves the whole state (the change is durable already: a failure there
 * is only logged). -1 with WHY, nothing changed. */
static int persist_and_commit(json_t *change, struct pending *p, char *why, size_t why_len)
{
	int rc = -1;
	if (!change) {
		snprintf(why, why_len, "out of memory");
		goto out;
	}
	if (!have_doc) {
		json_t *doc = document(current);
		if (!doc) {
			snprintf(why, why_len, "out of memory");
			goto out;
		}
		rc = state_store_save(store, doc, why, why_len);
		json_decref(doc);
		if (rc < 0)
			goto out;
		have_doc = true;
	}
	rc = state_store_append(store, change, why, why_len);
	if (rc < 0) {
		/* Part of it may be in the log still: the next change saves the
		 * whole state first, which empties the log. */
		have_doc = false;
		goto out;
	}
	commit(&current, p);
	if (rc == 1) {
		char whyc[512];
		json_t *doc = document(current);
		if (!doc || state_store_save(store, doc, whyc, sizeof(whyc)) < 0)
			log_warn("state: cannot save the whole state (the changes are safe in "
				 "its log): %s", doc ? whyc : "out of memory");
		json_decref(doc);
	}
	rc = 0;
out:
	json_decref(change);
	pending_free(p);
	return rc;
}

/* Room to retire one more change, or -1 with WHY. */
static int retire_room(char *why, size_t why_len)
{
	reclaim(time(NULL), false);
	if (retired_bytes < RETIRED_BYTES_MAX)
		return 0;
	snprintf(why, why_len, "too many changes in the last %d s (their %zu KiB wait to be "
		 "freed); try again in a few seconds", GRACE_SECONDS, retired_bytes / 1024);
	return -1;
}

int state_change(const char *project, const struct scope_state *s, char *why, size_t why_len)
{
	struct pending p;
	if (retire_room(why, why_len) < 0)
		return -1;
	if (prepare(current, project, s, &p) < 0) {
		snprintf(why, why_len, "out of memory");
		return -1;
	}
	return persist_and_commit(change_json(p.header->generation, project, s, NULL), &p, why,
				  why_len);
}

const json_t *state_scheduled(void)
{
	return scheduled;
}

int state_set_scheduled(json_t *list, char *why, size_t why_len)
{
	struct pending p;
	if (!list) {             /* the caller ran out of memory building it */
		snprintf(why, why_len, "out of memory");
		return -1;
	}
	if (retire_room(why, why_len) < 0)
		return -1;
	if (prepare(current, NULL, NULL, &p) < 0) {
		snprintf(why, why_len, "out of memory");
		return -1;
	}
	/* Set first: a document saved on the way (the first one, or a
	 * compaction) must hold the new schedule. */
	json_t *old = scheduled;
	scheduled = json_incref(list);
	if (persist_and_commit(change_json(p.header->generation, NULL, NULL, list), &p, why,
			       why_len) < 0) {
		json_decref(scheduled);
		scheduled = old;
		return -1;
	}
	json_decref(old);
	return 0;
}
