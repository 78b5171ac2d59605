/* config: the wiring. Reads one libconfig file with the reader of conf.c,
 * starts every part from its owner's defaults, then hands each top-level
 * key to the module that owns it (the table in config_parse_root()). */

#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "conn.h"
#include "dns.h"
#include "fleet.h"
#include "rewrite.h"
#include "listener.h"
#include "log.h"
#include "maintenance.h"
#include "route.h"
#include "spool.h"
#include "state.h"
#include "upstream.h"
#include "worker.h"

/* ---- the parts, their defaults and the top-level dispatch ---- */

/* A config and the parts it points at (conf.h), in one allocation: the
 * modules own the types, their defaults and their contents; the wiring
 * only knows how big they are. */
struct config_parts {
	struct config cfg;           /* first: a struct config * is the block */
	struct admin_conf admin;
	struct upstream_conf upstream[UPSTREAM_COUNT];
	struct dns_conf dns;
	struct maintenance_conf maintenance;
	struct spool_conf spool;
	struct fleet_conf fleet;
	struct state_conf state;
	struct log_conf log;
	struct limits_conf limits;
	struct rewrite_conf rewrite;
};

/* Every part starts from its owner's defaults, so that a group left out
 * of the file has them too. Parts left zero: admin (none configured),
 * forward (no trusted proxies), state (state_conf_parse is always called
 * and sets its own), listen and routes (none until parsed). */
static struct config *config_new(const char *path)
{
	struct config_parts *p = calloc(1, sizeof *p);
	if (p == NULL)
		return NULL;
	struct config *cfg = &p->cfg;
	if ((cfg->path = strdup(path)) == NULL) {
		free(p);
		return NULL;
	}
	cfg->admin = &p->admin;
	cfg->upstream = p->upstream;
	for (int i = 0; i < UPSTREAM_COUNT; i++)
		upstream_conf_defaults(&cfg->upstream[i], (enum upstream_id)i);
	cfg->dns = &p->dns;
	dns_conf_defaults(cfg->dns);
	cfg->maintenance = &p->maintenance;
	maintenance_conf_defaults(cfg->maintenance);
	cfg->spool = &p->spool;
	spool_conf_defaults(cfg->spool);
	cfg->fleet = &p->fleet;
	fleet_conf_defaults(cfg->fleet);
	cfg->state = &p->state;
	cfg->log = &p->log;
	log_conf_defaults(cfg->log);
	cfg->limits = &p->limits;
	limits_conf_defaults(cfg->limits);
	cfg->rewrite = &p->rewrite;
	return cfg;
}

typedef int conf_parse_fn(struct conf_reader *r, const config_setting_t *s, struct config *cfg);

/* Who owns which top-level keys. A "group" owner gets its own setting and
 * is called only when the key is present; a "root" owner reads scalars at
 * the top level itself and is always called, once, so it can check for
 * keys it requires. */
static const struct conf_section {
	const char *keys[3];
	conf_parse_fn *parse;
	bool root;
} sections[] = {
	{ { "listen" },                      listener_conf_parse,    false },
	{ { "admin" },                       admin_conf_parse,       false },
	{ { "upstreams" },                   upstream_conf_parse,    false },
	{ { "dns" },                         dns_conf_parse,         false },
	{ { "routes" },                      route_conf_parse,       false },
	{ { "maintenance" },                 maintenance_conf_parse, false },
	{ { "spool" },                       spool_conf_parse,       false },
	{ { "fleet" },                       fleet_conf_parse,       false },
	{ { "state_file", "journal_file" },  state_conf_parse,       true  },
	{ { "log" },                         log_conf_parse,         false },
	{ { "limits" },                      limits_conf_parse,      false },
	{ { "trusted_proxies" },             rewrite_conf_parse,     true  },
	{ { "workers" },                     worker_conf_parse,      true  },
};

#define N_SECTIONS (sizeof sections / sizeof sections[0])

/* Checks that span groups; run after every owner has parsed. */
static void config_check_required(struct conf_reader *r, const config_setting_t *root,
				   struct config *cfg)
{
	const config_setting_t *listen = config_setting_get_member(root, "listen");
	if (listen == NULL)
		conf_error(r, root, "missing required 'listen': at least one listen address, "
			   "e.g. listen = ( { address = \"0.0.0.0:80\"; } );");
	else if ((config_setting_is_list(listen) || config_setting_is_array(listen)) &&
		 config_setting_length(listen) == 0)
		conf_error(r, listen, "listen: at least one listen address is required");

	/* A missing upstreams.old/new inside the group is upstream_conf_parse()'s
	 * to report; only the group's absence is seen here. */
	if (config_setting_get_member(root, "upstreams") == NULL)
		conf_error(r, root, "missing required 'upstreams' with 'old' and 'new', e.g. "
			   "upstreams = { old = { url = \"http://...\"; }; new = { ... }; };");

	const config_setting_t *routes = config_setting_get_member(root, "routes");
	if (cfg->routes != NULL && routes != NULL) {
		for (size_t i = 0; i < cfg->routes->n; i++) {
			const struct route *rt = &cfg->routes->v[i];
			if (rt->spool && cfg->spool->dir == NULL)
				conf_error(r, config_setting_get_elem(routes, (unsigned)i),
					   "route '%s' has spool = true but no spool.dir is configured",
					   rt->name ? rt->name : "?");
		}
	}
}

static void config_parse_root(struct conf_reader *r, const config_setting_t *root,
			      struct config *cfg)
{
	const char *known[2 * N_SECTIONS + 1];
	size_t n = 0;
	for (size_t i = 0; i < N_SECTIONS; i++)
		for (size_t k = 0; k < 3 && sections[i].keys[k] != NULL; k++)
			known[n++] = sections[i].keys[k];
	known[n] = NULL;
	conf_check_keys(r, root, known);

	/* An owner's -1 only means "errors were reported": keep going so the
	 * operator sees every error of the file in one run. */
	for (size_t i = 0; i < N_SECTIONS; i++) {
		const struct conf_section *sec = &sections[i];
		if (sec->root) {
			sec->parse(r, root, cfg);
			continue;
		}
		const config_setting_t *s = config_setting_get_member(root, sec->keys[0]);
		if (s != NULL)
			sec->parse(r, s, cfg);
	}

	if (config_setting_get_member(root, "admin") == NULL)
		conf_warn(r, root, "no 'admin' group: the control commands (switch, "
			  "maintenance, status) cannot reach this instance");

	config_check_required(r, root, cfg);
}

/* Reads with TEXT when given (for tests), otherwise from the file PATH. */
static struct config *config_load_any(const char *path, const char *text, FILE *errs)
{
	struct conf_reader *r = conf_reader_new(path);
	struct config *cfg = config_new(path);
	if (r == NULL || cfg == NULL) {
		if (errs != NULL)
			fprintf(errs, "%s: out of memory\n", path);
		conf_reader_free(r);
		config_free(cfg);
		return NULL;
	}

	config_t lc;
	if (conf_reader_load(r, &lc, text, errs) < 0) {
		conf_reader_free(r);
		config_free(cfg);
		return NULL;
	}
	config_parse_root(r, config_root_setting(&lc), cfg);
	config_destroy(&lc);

	bool failed = conf_reader_flush(r, errs);
	conf_reader_free(r);
	if (failed) {
		config_free(cfg);
		return NULL;
	}
	return cfg;
}

struct config *config_load(const char *path, FILE *errs)
{
	return config_load_any(path, NULL, errs);
}

struct config *config_load_string(const char *text, const char *name, FILE *errs)
{
	return config_load_any(name ? name : "<string>", text, errs);
}

void config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < cfg->n_listen; i++)
		listener_conf_free(&cfg->listen[i]);
	free(cfg->listen);
	admin_conf_free(cfg->admin);
	for (size_t i = 0; i < UPSTREAM_COUNT; i++)
		upstream_conf_free(&cfg->upstream[i]);
	dns_conf_free(cfg->dns);
	if (cfg->routes != NULL)
		route_table_free(cfg->routes);
	maintenance_conf_free(cfg->maintenance);
	spool_conf_free(cfg->spool);
	fleet_conf_free(cfg->fleet);
	state_conf_free(cfg->state);
	log_conf_free(cfg->log);
	rewrite_conf_free(cfg->rewrite);
	free(cfg->path);
	free((struct config_parts *)cfg);
}

const char *config_restart_needed(const struct config *running, const struct config *next)
{
	const struct config *a = running, *b = next;
	const char *key;
	if ((key = listener_conf_restart_key(a->listen, a->n_listen, b->listen, b->n_listen)) ||
	    (key = admin_conf_restart_key(a->admin, b->admin)) ||
	    (key = worker_conf_restart_key(a->workers, b->workers)) ||
	    (key = state_conf_restart_key(a->state, b->state)) ||
	    (key = log_conf_restart_key(a->log, b->log)) ||
	    (key = dns_conf_restart_key(a->dns, b->dns)) ||
	    (key = spool_conf_restart_key(a->spool, b->spool)) ||
	    (key = fleet_conf_restart_key(a->fleet, b->fleet)))
		return key;
	return NULL;
}
