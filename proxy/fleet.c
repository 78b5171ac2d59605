/* fleet: two chained hash tables under one mutex, devices keyed by
 * (project, device_id) and projects by name with their sums kept current,
 * so a heartbeat and a status read are both O(1) per entry touched. The
 * file is a JSON document written whole by file_replace (old or new after
 * a crash, never a mix). */
#include "fleet.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "conf.h"
#include "file.h"
#include "heartbeat.h"
#include "log.h"

#define FLEET_FILE_NAME "fleet.json"

/* ---- config ---- */

void fleet_conf_defaults(struct fleet_conf *c)
{
	*c = (struct fleet_conf){ .forget_after = 72 * 3600.0, .max_devices = 100000 };
}

int fleet_conf_parse(struct conf_reader *r, const config_setting_t *s, struct config *cfg)
{
	static const char *const keys[] = { "file", "forget_after", "max_devices", NULL };
	int ok = conf_check_keys(r, s, keys) ? 0 : -1;
	if (!config_setting_is_group(s))
		return -1;
	struct fleet_conf *c = cfg->fleet;
	if (conf_get_path(r, s, "file", &c->file) < 0 ||
	    conf_get_duration(r, s, "forget_after", 1, 366 * 86400.0, &c->forget_after) < 0 ||
	    conf_get_size(r, s, "max_devices", 1, 10000000, &c->max_devices) < 0)
		ok = -1;
	return ok;
}

void fleet_conf_free(struct fleet_conf *c)
{
	free(c->file);
	c->file = NULL;
}

const char *fleet_conf_restart_key(const struct fleet_conf *a, const struct fleet_conf *b)
{
	return conf_str_equal(a->file, b->file) ? NULL : "fleet.file";
}

/* ---- the table ---- */

struct fproj {
	struct fproj *next;          /* bucket chain */
	uint32_t hash;
	struct fleet_totals t;
	char name[];
};

struct device {
	struct device *next;
	uint32_t hash;
	struct fproj *proj;
	uint32_t unsent;
	time_t seen;
	char *app_version;           /* NULL: not sent */
	char id[];
};

static struct {
	pthread_mutex_t mu;
	bool open;
	struct device **devs;
	struct fproj **projs;
	size_t n_buckets;            /* both tables: a power of two */
	uint64_t n_devices, limit;
	double forget_after;
	char *file;
	bool dirty;
	time_t saved;
	time_t swept;                    /* the last look for devices to forget */
	uint64_t dropped, refused, forgotten;
} F = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* FNV-1a over the project, a separator and the device id. */
static uint32_t hash_of(const char *p, size_t pn, const char *d, size_t dn)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < pn; i++)
		h = (h ^ (uint8_t)p[i]) * 16777619u;
	h = (h ^ 0xffu) * 16777619u;
	for (size_t i = 0; i < dn; i++)
		h = (h ^ (uint8_t)d[i]) * 16777619u;
	return h;
}

static struct fproj *proj_get(const char *name, size_t len, bool create)
{
	uint32_t h = hash_of(name, len, "", 0);
	struct fproj **b = &F.projs[h & (F.n_buckets - 1)];
	for (struct fproj *p = *b; p; p = p->next)
		if (p->hash == h && strlen(p->name) == len && memcmp(p->name, name, len) == 0)
			return p;
	if (!create)
		return NULL;
	struct fproj *p = calloc(1, sizeof *p + len + 1);
	if (!p)
		return NULL;
	p->hash = h;
	memcpy(p->name, name, len);
	p->next = *b;
	*b = p;
	return p;
}

static void proj_drop_if_empty(struct fproj *p)
{
	if (p->t.devices)
		return;
	struct fproj **b = &F.projs[p->hash & (F.n_buckets - 1)];
	while (*b != p)
		b = &(*b)->next;
	*b = p->next;
	free(p);
}

static struct device **dev_slot(const struct fproj *p, const char *id, size_t len, uint32_t h)
{
	struct device **b = &F.devs[h & (F.n_buckets - 1)];
	for (; *b; b = &(*b)->next)
		if ((*b)->hash == h && (*b)->proj == p && strlen((*b)->id) == len &&
		    memcmp((*b)->id, id, len) == 0)
			break;
	return b;
}

/* Records one report (mu held). Returns 0, or -1 when the device is new
 * and the table full (or out of memory). */
static int report(const char *project, size_t plen, const char *id, size_t idlen,
		  uint32_t unsent, const char *app_version, time_t seen)
{
	uint32_t h = hash_of(project, plen, id, idlen);
	struct fproj *p = proj_get(project, plen, false);
	struct device **slot = p ? dev_slot(p, id, idlen, h) : NULL;
	struct device *d = slot ? *slot : NULL;
	if (!d) {
		if (F.n_devices >= F.limit)
			return -1;
		if (!p && !(p = proj_get(project, plen, true)))
			return -1;
		d = calloc(1, sizeof *d + idlen + 1);
		if (!d) {
			proj_drop_if_empty(p);
			return -1;
		}
		d->hash = h;
		d->proj = p;
		memcpy(d->id, id, idlen);
		struct device **b = &F.devs[h & (F.n_buckets - 1)];
		d->next = *b;
		*b = d;
		F.n_devices++;
		p->t.devices++;
	} else if (seen < d->seen) {
		return 0; /* an older report (a file loaded late): the newer stands */
	}
	p->t.unsent_forms = p->t.unsent_forms - d->unsent + unsent;
	d->unsent = unsent;
	d->seen = seen;
	if (app_version && (!d->app_version || strcmp(d->app_version, app_version) != 0)) {
		char *v = strdup(app_version);
		if (v) {
			free(d->app_version);
			d->app_version = v;
		}
	}
	F.dirty = true;
	return 0;
}

static void forget(struct device **slot)
{
	struct device *d = *slot;
	*slot = d->next;
	d->proj->t.devices--;
	d->proj->t.unsent_forms -= d->unsent;
	proj_drop_if_empty(d->proj);
	free(d->app_version);
	free(d);
	F.n_devices--;
}

/* ---- the data path ---- */

int fleet_is_heartbeat(const char *path, size_t len)
{
	static const char marker[] = "/phone/heartbeat/";
	return len >= sizeof marker - 1 && memmem(path, len, marker, sizeof marker - 1) != NULL;
}

void fleet_heartbeat(const char *project, size_t plen, const char *query, size_t qlen, time_t now)
{
	if (!plen)
		return;
	struct heartbeat hb;
	int rc = heartbeat_parse_query(query, qlen, &hb);
	pthread_mutex_lock(&F.mu);
	if (!F.open) {
		pthread_mutex_unlock(&F.mu);
		return;
	}
	if (rc < 0) {
		F.refused++;
	} else if (hb.has_device_id && hb.has_num_unsent_forms &&
		   report(project, plen, hb.device_id, hb.device_id_len, hb.num_unsent_forms,
			  hb.has_app_version ? hb.app_version : NULL, now) < 0) {
		F.dropped++;
	}
	pthread_mutex_unlock(&F.mu);
}

/* ---- the file ---- */

static json_t *table_json(void)
{
	json_t *devs = json_array();
	for (size_t i = 0; devs && i < F.n_buckets; i++)
		for (const struct device *d = F.devs[i]; d; d = d->next) {
			json_t *e = json_pack("{s:s, s:s, s:I, s:I, s:s?}", "project", d->proj->name,
					      "device_id", d->id, "unsent", (json_int_t)d->unsent,
					      "seen", (json_int_t)d->seen, "app_version",
					      d->app_version);
			if (json_array_append_new(devs, e) < 0) {
				json_decref(devs);
				return NULL;
			}
		}
	return devs ? json_pack("{s:i, s:o}", "version", 1, "devices", devs) : NULL;
}

/* Writes the file (mu held: a sweep every few seconds, a few MB at most). */
static void save(void)
{
	json_t *doc = table_json();
	char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	char why[512];
	if (!text)
		log_warn("fleet: cannot write %s: out of memory", F.file);
	else if (file_replace(F.file, text, strlen(text), 0600, why, sizeof why) < 0)
		log_warn("fleet: cannot write the backlog: %s", why);
	else
		F.dirty = false;
	free(text);
}

/* Loads DOC's devices through the same checks a heartbeat gets. */
static void load(const json_t *doc)
{
	const json_t *devs = json_object_get(doc, "devices");
	size_t i, bad = 0;
	const json_t *e;
	json_array_foreach(devs, i, e) {
		const char *p = json_string_value(json_object_get(e, "project"));
		const char *id = json_string_value(json_object_get(e, "device_id"));
		json_int_t unsent = json_integer_value(json_object_get(e, "unsent"));
		json_int_t seen = json_integer_value(json_object_get(e, "seen"));
		const char *ver = json_string_value(json_object_get(e, "app_version"));
		size_t idlen = id ? strlen(id) : 0;
		if (!p || !*p || strlen(p) > 255 || !idlen || idlen > HEARTBEAT_DEVICE_ID_MAX ||
		    unsent < 0 || unsent > HEARTBEAT_UNSENT_MAX || seen <= 0 ||
		    (ver && strlen(ver) > HEARTBEAT_VERSION_MAX) ||
		    report(p, strlen(p), id, idlen, (uint32_t)unsent, ver, (time_t)seen) < 0)
			bad++;
	}
	if (bad)
		log_warn("fleet: %s: %zu device entries skipped (malformed or past max_devices)",
			 F.file, bad);
}

int fleet_open(const struct fleet_conf *c, const char *state_file, char *why, size_t why_len)
{
	pthread_mutex_lock(&F.mu);
	size_t nb = 64;
	while (nb < c->max_devices && nb < (1u << 20))
		nb <<= 1;
	F.n_buckets = nb;
	F.devs = calloc(nb, sizeof *F.devs);
	F.projs = calloc(nb, sizeof *F.projs);
	if (c->file) {
		F.file = strdup(c->file);
	} else {
		const char *slash = strrchr(state_file, '/');
		size_t dir = slash ? (size_t)(slash - state_file) + 1 : 0;
		F.file = malloc(dir + sizeof FLEET_FILE_NAME);
		if (F.file)
			snprintf(F.file, dir + sizeof FLEET_FILE_NAME, "%.*s%s", (int)dir, state_file,
				 FLEET_FILE_NAME);
	}
	if (!F.devs || !F.projs || !F.file) {
		pthread_mutex_unlock(&F.mu);
		fleet_close();
		snprintf(why, why_len, "fleet: out of memory");
		return -1;
	}
	F.limit = c->max_devices;
	F.forget_after = c->forget_after;
	json_error_t err;
	json_t *doc = json_load_file(F.file, JSON_REJECT_DUPLICATES, &err);
	if (doc) {
		load(doc);
		json_decref(doc);
	} else if (errno != ENOENT || err.line > 0) {
		/* a damaged file costs the backlog until the next heartbeats, not the start */
		log_warn("fleet: %s: %s (line %d): starting with an empty backlog", F.file, err.text,
			 err.line);
	}
	F.dirty = false;
	F.open = true;
	pthread_mutex_unlock(&F.mu);
	return 0;
}

void fleet_set_conf(const struct fleet_conf *c)
{
	pthread_mutex_lock(&F.mu);
	F.limit = c->max_devices;
	F.forget_after = c->forget_after;
	pthread_mutex_unlock(&F.mu);
}

void fleet_close(void)
{
	pthread_mutex_lock(&F.mu);
	if (F.open && F.dirty)
		save();
	for (size_t i = 0; F.devs && i < F.n_buckets; i++)
		while (F.devs[i])
			forget(&F.devs[i]);
	free(F.devs);
	free(F.projs);
	free(F.file);
	F.devs = NULL;
	F.projs = NULL;
	F.file = NULL;
	F.open = false;
	F.n_devices = F.dropped = F.refused = F.forgotten = 0;
	pthread_mutex_unlock(&F.mu);
}

void fleet_maintain(time_t now, double save_every)
{
	pthread_mutex_lock(&F.mu);
	if (!F.open) {
		pthread_mutex_unlock(&F.mu);
		return;
	}
	/* Walking every bucket costs about a millisecond at the default size:
	 * a tenth of forget_after apart (at most a minute), not every tick. */
	double every = F.forget_after / 10 < 60 ? F.forget_after / 10 : 60;
	bool sweep = difftime(now, F.swept) >= every;
	if (sweep)
		F.swept = now;
	time_t horizon = now - (time_t)F.forget_after;
	for (size_t i = 0; sweep && i < F.n_buckets; i++)
		for (struct device **s = &F.devs[i]; *s;) {
			if ((*s)->seen < horizon) {
				forget(s);
				F.forgotten++;
				F.dirty = true;
			} else {
				s = &(*s)->next;
			}
		}
	if (F.dirty && difftime(now, F.saved) >= save_every) {
		save();
		F.saved = now;
	}
	pthread_mutex_unlock(&F.mu);
}

void fleet_each(void (*fn)(void *arg, const char *project, const struct fleet_totals *t),
		void *arg)
{
	pthread_mutex_lock(&F.mu);
	for (size_t i = 0; F.open && i < F.n_buckets; i++)
		for (const struct fproj *p = F.projs[i]; p; p = p->next)
			fn(arg, p->name, &p->t);
	pthread_mutex_unlock(&F.mu);
}

void fleet_stats(struct fleet_stats *s)
{
	pthread_mutex_lock(&F.mu);
	*s = (struct fleet_stats){ .devices = F.n_devices, .limit = F.limit, .dropped = F.dropped,
				   .refused = F.refused, .forgotten = F.forgotten };
	pthread_mutex_unlock(&F.mu);
}
