/* route: the ordered route list; route_match() maps a request (method,
 * path) to its route and project, with PCRE2 (JIT) regexes compiled once
 * per config generation. */
#ifndef CUTOVER_ROUTE_H
#define CUTOVER_ROUTE_H

#include <libconfig.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conf_reader;
struct config;

enum route_maintenance {
	ROUTE_MAINT_UNAVAILABLE,     /* 503 + Retry-After (default) */
	ROUTE_MAINT_RESTORE_PENDING, /* OpenRosa 202 "restore pending" */
};

/* Whether a submission must carry credentials to be spooled: servers that
 * need them would refuse its replay (spool_auth). */
enum route_spool_auth {
	ROUTE_SPOOL_AUTH_OPTIONAL,   /* spooled with or without Authorization (default) */
	ROUTE_SPOOL_AUTH_REQUIRED,   /* without Authorization: the maintenance answer */
};

struct route {
	char *name;
	char **methods;              /* NULL-terminated, NULL = any method */
	char *path;                  /* regex source, NULL = any path */
	void *re;                    /* pcre2_code *, NULL = any path */
	int project_group;           /* capture group holding the project, 0 = none */
	bool spool;
	enum route_spool_auth spool_auth;
	uint64_t max_body;           /* 0 = no limit */
	enum route_maintenance maintenance;
	int line;                    /* where it was defined, for messages */
	unsigned stats_id;           /* its slot in the answer counters (stats.h) */
};

struct route_table {
	struct route *v;
	size_t n;
};

/* The project name of a matched request: a slice of the path given to
 * route_match(), empty (len 0) when the route has no project group or the
 * group did not participate. */
struct route_project {
	const char *ptr;
	size_t len;
};

/* Parses the top-level "routes" list into cfg->routes. */
int route_conf_parse(struct conf_reader *r, const config_setting_t *s, struct config *cfg);
void route_table_free(struct route_table *t);

/* Compiles RT->path (if any) into RT->re, with JIT when available; for
 * route_conf_parse() and for tests that build tables by hand. Returns 0, or
 * -1 with the PCRE2 message and offset in WHY. */
int route_compile(struct route *rt, char *why, size_t why_len);

/* First route whose methods and path regex match, or NULL. PATH is the
 * request target's path (no query string), not NUL-terminated. Thread-safe:
 * match data is per thread; no allocation after a thread's first call. */
const struct route *route_match(const struct route_table *t,
				const char *method, size_t method_len,
				const char *path, size_t path_len,
				struct route_project *project);

#endif
