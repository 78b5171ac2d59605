/* route: the ordered route list from the "routes" config key, and
 * route_match(), which runs once per request: PCRE2 regexes are compiled
 * (JIT) once per config generation and matched with per-thread match data,
 * so a request allocates nothing here. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "route.h"

#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "stats.h"

#define WHERE(s) conf_where((s), (char[256]){0}, 256)

/* ---- compiling ---- */

int route_compile(struct route *rt, char *why, size_t why_len)
{
	rt->stats_id = rt->name ? stats_route_id(rt->name) : 0;
	if (rt->re != NULL) {
		pcre2_code_free(rt->re);
		rt->re = NULL;
	}
	if (rt->path == NULL)
		return 0;

	int err;
	PCRE2_SIZE off;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)rt->path, PCRE2_ZERO_TERMINATED, 0,
				       &err, &off, NULL);
	if (re == NULL) {
		PCRE2_UCHAR msg[256];
		if (pcre2_get_error_message(err, msg, sizeof msg) < 0)
			snprintf((char *)msg, sizeof msg, "error %d", err);
		if (why != NULL && why_len > 0)
			snprintf(why, why_len, "%s at offset %zu", (const char *)msg, (size_t)off);
		return -1;
	}
	/* Without JIT (not built in, or executable memory refused) the
	 * interpreter gives the same answers, only slower. */
	(void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
	rt->re = re;
	return 0;
}

static uint32_t capture_count(const struct route *rt)
{
	uint32_t n = 0;
	if (rt->re != NULL)
		pcre2_pattern_info(rt->re, PCRE2_INFO_CAPTURECOUNT, &n);
	return n;
}

/* ---- the "routes" list ---- */

/* Method names are case-sensitive tokens; lower case in the config is a
 * mistake that would silently never match. */
static bool method_name_ok(const char *m)
{
	static const char extra[] = "!#$%&'*+-.^_`|~";
	if (*m == '\0')
		return false;
	for (const char *p = m; *p != '\0'; p++) {
		bool ok = (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
			  strchr(extra, *p) != NULL;
		if (!ok)
			return false;
	}
	return true;
}

static int parse_match(struct conf_reader *r, const config_setting_t *m, struct route *rt)
{
	static const char *const keys[] = { "methods", "path", NULL };
	if (!conf_check_keys(r, m, keys) && !config_setting_is_group(m))
		return -1;
	int ok = 0;

	size_t n = 0;
	int rc = conf_get_strings(r, m, "methods", &rt->methods, &n);
	if (rc < 0)
		ok = -1;
	else if (rc == 1) {
		const config_setting_t *list = config_setting_get_member(m, "methods");
		if (n == 0) {
			conf_error(r, list, "%s: empty list matches no request (leave 'methods' "
				   "out to match every method)", WHERE(list));
			ok = -1;
		}
		for (size_t i = 0; i < n; i++) {
			if (method_name_ok(rt->methods[i]))
				continue;
			const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
			conf_error(r, e, "%s: \"%s\" is not a method name (methods are "
				   "case-sensitive upper-case tokens such as \"POST\")",
				   WHERE(e), rt->methods[i]);
			ok = -1;
		}
	}

	rc = conf_get_string(r, m, "path", &rt->path);
	if (rc < 0)
		ok = -1;
	else if (rc == 1) {
		const config_setting_t *p = config_setting_get_member(m, "path");
		char why[300];
		if (route_compile(rt, why, sizeof why) < 0) {
			conf_error(r, p, "%s: invalid regular expression \"%s\": %s",
				   WHERE(p), rt->path, why);
			ok = -1;
		}
	}
	return ok;
}

static int parse_route(struct conf_reader *r, const config_setting_t *e,
		       struct route *rt, const struct route *before, size_t n_before)
{
	static const char *const keys[] = { "name", "match", "project", "spool", "spool_auth",
					    "max_body", "maintenance", NULL };
	rt->line = config_setting_source_line(e);
	int ok = conf_check_keys(r, e, keys) ? 0 : -1;
	if (!config_setting_is_group(e))
		return -1;

	int rc = conf_get_string(r, e, "name", &rt->name);
	const config_setting_t *name = config_setting_get_member(e, "name");
	if (rc == 0) {
		conf_error(r, e, "%s: missing required key 'name'", WHERE(e));
		ok = -1;
	} else if (rc < 0) {
		ok = -1;
	} else if (rt->name[0] == '\0') {
		conf_error(r, name, "%s: must not be empty", WHERE(name));
		ok = -1;
	} else {
		for (size_t i = 0; i < n_before; i++) {
			if (before[i].name != NULL && strcmp(before[i].name, rt->name) == 0) {
				conf_error(r, name, "%s: route name \"%s\" is already used by "
					   "the route at line %d", WHERE(name), rt->name,
					   before[i].line);
				ok = -1;
				break;
			}
		}
	}

	const config_setting_t *match = config_setting_get_member(e, "match");
	if (match != NULL && parse_match(r, match, rt) < 0)
		ok = -1;

	long long project = 0;
	rc = conf_get_int(r, e, "project", 0, 65535, &project);
	if (rc < 0)
		ok = -1;
	else if (rc == 1 && project > 0) {
		const config_setting_t *p = config_setting_get_member(e, "project");
		if (rt->path == NULL) {
			conf_error(r, p, "%s: project = %lld names a capture group of match.path, "
				   "but this route has no match.path", WHERE(p), project);
			ok = -1;
		} else if (rt->re != NULL && (uint32_t)project > capture_count(rt)) {
			conf_error(r, p, "%s: project = %lld, but match.path \"%s\" has only %u "
				   "capture group(s)", WHERE(p), project, rt->path,
				   capture_count(rt));
			ok = -1;
		} else if (rt->re != NULL) {
			rt->project_group = (int)project;
		}
	}

	if (conf_get_bool(r, e, "spool", &rt->spool) < 0)
		ok = -1;
	if (conf_get_size(r, e, "max_body", 0, UINT64_MAX, &rt->max_body) < 0)
		ok = -1;

	char *maint = NULL;
	rc = conf_get_string(r, e, "maintenance", &maint);
	if (rc < 0)
		ok = -1;
	else if (rc == 1) {
		if (strcmp(maint, "unavailable") == 0)
			rt->maintenance = ROUTE_MAINT_UNAVAILABLE;
		else if (strcmp(maint, "restore-pending") == 0)
			rt->maintenance = ROUTE_MAINT_RESTORE_PENDING;
		else {
			const config_setting_t *m = config_setting_get_member(e, "maintenance");
			conf_error(r, m, "%s: \"%s\" is not one of \"unavailable\", "
				   "\"restore-pending\"", WHERE(m), maint);
			ok = -1;
		}
	}
	free(maint);

	char *auth = NULL;
	rc = conf_get_string(r, e, "spool_auth", &auth);
	if (rc < 0)
		ok = -1;
	else if (rc == 1) {
		if (strcmp(auth, "optional") == 0)
			rt->spool_auth = ROUTE_SPOOL_AUTH_OPTIONAL;
		else if (strcmp(auth, "required") == 0)
			rt->spool_auth = ROUTE_SPOOL_AUTH_REQUIRED;
		else {
			const config_setting_t *m = config_setting_get_member(e, "spool_auth");
			conf_error(r, m, "%s: \"%s\" is not one of \"required\", \"optional\"",
				   WHERE(m), auth);
			ok = -1;
		}
	}
	free(auth);
	return ok;
}

int route_conf_parse(struct conf_reader *r, const config_setting_t *s, struct config *cfg)
{
	if (!config_setting_is_list(s)) {
		conf_error(r, s, "routes: expected a list of groups, e.g. "
			   "routes = ( { name = \"default\"; } );");
		return -1;
	}
	struct route_table *t = calloc(1, sizeof *t);
	int len = config_setting_length(s);
	if (t == NULL || (len > 0 && (t->v = calloc((size_t)len, sizeof *t->v)) == NULL)) {
		free(t);
		conf_error(r, s, "routes: out of memory");
		return -1;
	}
	/* One entry per list element even when an element is wrong, so
	 * index i is element i for checks made later across groups. */
	t->n = (size_t)len;
	int ok = 0;
	for (size_t i = 0; i < t->n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		if (parse_route(r, e, &t->v[i], t->v, i) < 0)
			ok = -1;
	}

	/* First match wins: anything after a catch-all is dead config. */
	for (size_t i = 0; i + 1 < t->n; i++) {
		const struct route *all = &t->v[i];
		if (all->name == NULL || all->methods != NULL || all->path != NULL)
			continue;
		for (size_t j = i + 1; j < t->n; j++)
			conf_warn(r, config_setting_get_elem(s, (unsigned)j),
				  "route '%s' is never used: route '%s' (line %d) before it "
				  "matches every request", t->v[j].name ? t->v[j].name : "?",
				  all->name, all->line);
		break;
	}

	if (cfg->routes != NULL)
		route_table_free(cfg->routes);
	cfg->routes = t;
	return ok;
}

void route_table_free(struct route_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n; i++) {
		struct route *rt = &t->v[i];
		free(rt->name);
		conf_strings_free(rt->methods);
		free(rt->path);
		pcre2_code_free(rt->re);
	}
	free(t->v);
	free(t);
}

/* ---- matching ---- */

/* Match data is per thread: created on a thread's first match (grown only
 * if a later config has a higher project group) and freed when the thread
 * exits, through the key's destructor. */
static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static pthread_key_t md_key;
static bool md_key_ok;
static _Thread_local pcre2_match_data *thread_md;

static void md_destroy(void *md)
{
	pcre2_match_data_free(md);
}

static void md_key_create(void)
{
	md_key_ok = pthread_key_create(&md_key, md_destroy) == 0;
}

static pcre2_match_data *match_data(uint32_t pairs)
{
	if (thread_md != NULL && pcre2_get_ovector_count(thread_md) >= pairs)
		return thread_md;
	pthread_once(&md_once, md_key_create);
	if (pairs < 32)
		pairs = 32;
	pcre2_match_data *md = pcre2_match_data_create(pairs, NULL);
	if (md == NULL)
		return NULL;
	pcre2_match_data_free(thread_md);
	thread_md = md;
	if (md_key_ok)
		pthread_setspecific(md_key, md);
	return md;
}

static bool method_matches(char *const *methods, const char *m, size_t len)
{
	if (methods == NULL)
		return true;
	for (; *methods != NULL; methods++)
		if (strlen(*methods) == len && memcmp(*methods, m, len) == 0)
			return true;
	return false;
}

const struct route *route_match(const struct route_table *t,
				const char *method, size_t method_len,
				const char *path, size_t path_len,
				struct route_project *project)
{
	if (path == NULL) {
		path = "";
		path_len = 0;
	}
	if (method == NULL) {
		method = "";
		method_len = 0;
	}
	/* Never a NULL ptr, even when empty: callers memcpy() from it. */
	if (project != NULL)
		*project = (struct route_project){ path, 0 };
	if (t == NULL)
		return NULL;

	for (size_t i = 0; i < t->n; i++) {
		const struct route *rt = &t->v[i];
		if (!method_matches(rt->methods, method, method_len))
			continue;
		if (rt->re == NULL)
			return rt;

		int g = rt->project_group;
		pcre2_match_data *md = match_data((uint32_t)g + 1);
		if (md == NULL)
			return NULL;
		int rc = pcre2_jit_match(rt->re, (PCRE2_SPTR)path, path_len, 0, 0, md, NULL);
		if (rc == PCRE2_ERROR_JIT_BADOPTION)   /* this pattern has no JIT code */
			rc = pcre2_match(rt->re, (PCRE2_SPTR)path, path_len, 0, 0, md, NULL);
		if (rc < 0)
			continue;    /* no match, or a match limit: try the next route */

		if (project != NULL && g > 0 && g < rc) {
			PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
			if (ov[2 * g] != PCRE2_UNSET && ov[2 * g + 1] >= ov[2 * g])
				*project = (struct route_project){ path + ov[2 * g],
								   ov[2 * g + 1] - ov[2 * g] };
		}
		return rt;
	}
	return NULL;
}
