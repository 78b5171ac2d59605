/* conf: the config reader every module parses its own group with, and the
 * shape of a loaded config (struct config).
 *
 * A leaf: it depends on libconfig and libc only, so any module may include
 * it without pulling in the others. The reader collects every message as
 * "FILE:LINE: message" and prints them sorted into file order, so one
 * `cutover check` run shows all of them. config.c (the wiring) reads the
 * file and hands each top-level key to the module that owns it. */
#ifndef CUTOVER_CONF_H
#define CUTOVER_CONF_H

#include <libconfig.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- a loaded config ---- */

/* Each part belongs to the module that parses it and sets its defaults
 * (the header named in the comment). A module reads its own part, and the
 * parts of modules it already depends on; this header only declares the
 * struct tags, so it includes no module header. The parts are never NULL
 * in a config that config_load() returned, except routes (no routes
 * group). */
struct config {
	char *path;                        /* the file it was read from */
	struct listen_conf *listen;        /* listener.h: [n_listen] */
	size_t n_listen;
	struct admin_conf *admin;          /* admin.h */
	/* upstream.h: [UPSTREAM_COUNT], indexed by enum upstream_id. A pointer
	 * to the first of the array rather than an array of pointers: the
	 * count stays upstream.h's alone, and cfg->upstream[id] reads as
	 * before. */
	struct upstream_conf *upstream;
	struct dns_conf *dns;              /* dns.h */
	struct route_table *routes;        /* route.h; NULL without a routes group */
	struct maintenance_conf *maintenance;  /* maintenance.h */
	struct spool_conf *spool;          /* spool.h */
	struct fleet_conf *fleet;          /* fleet.h */
	struct state_conf *state;          /* state.h: state_file, journal_file */
	struct log_conf *log;              /* log.h */
	struct limits_conf *limits;        /* conn.h */
	struct rewrite_conf *rewrite;      /* rewrite.h: trusted_proxies */
	int workers;                       /* worker.h: a plain count, default 1 */
};

/* ---- the reader ---- */

struct conf_reader;

/* A reader for the file PATH (kept, not copied: it must outlive R), the
 * name its messages show. NULL when out of memory. */
struct conf_reader *conf_reader_new(const char *path);
/* Frees R and any message not flushed. */
void conf_reader_free(struct conf_reader *r);

/* Reads TEXT (tests; messages name it PATH) or, when TEXT is NULL, the file
 * PATH into LC, with @include relative to PATH's directory. Returns 0 (LC
 * is the caller's to config_destroy()) or -1 after printing the I/O or
 * syntax error, "FILE:LINE: message", to ERRS (LC already destroyed). */
int conf_reader_load(struct conf_reader *r, config_t *lc, const char *text, FILE *errs);

/* Prints every collected message to ERRS (NULL: nowhere) in file order,
 * then forgets them. Returns true if any was an error, or if a message was
 * lost for want of memory. */
bool conf_reader_flush(struct conf_reader *r, FILE *errs);

void conf_error(struct conf_reader *r, const config_setting_t *at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void conf_warn(struct conf_reader *r, const config_setting_t *at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The path of the setting for messages, e.g. "upstreams.old.url". */
const char *conf_where(const config_setting_t *s, char *buf, size_t len);
/* conf_where() into a buffer that lives as long as the enclosing block. */
#define CONF_WHERE(s) conf_where((s), (char[256]){0}, 256)
/* "1G", "32M", "4096" for messages: the largest exact unit. */
const char *conf_size_text(uint64_t v, char *buf, size_t len);

/* Reports every member of GROUP not named in ALLOWED (NULL-terminated).
 * Also reports GROUP itself if it is not a group. Returns false on error. */
bool conf_check_keys(struct conf_reader *r, const config_setting_t *group,
		     const char *const allowed[]);

/* Typed getters: 1 = present and valid (*out set), 0 = absent (*out
 * untouched, so defaults set before the call survive), -1 = present but
 * invalid (an error has been reported, *out untouched). */
int conf_get_string(struct conf_reader *r, const config_setting_t *group,
		    const char *key, char **out);          /* strdup; frees old */
/* A string that must not be empty when present (a path). */
int conf_get_path(struct conf_reader *r, const config_setting_t *group,
		  const char *key, char **out);
int conf_get_bool(struct conf_reader *r, const config_setting_t *group,
		  const char *key, bool *out);
int conf_get_int(struct conf_reader *r, const config_setting_t *group,
		 const char *key, long long min, long long max, long long *out);
/* Integer bytes, or a string with K/M/G suffix ("32M"). */
int conf_get_size(struct conf_reader *r, const config_setting_t *group,
		  const char *key, uint64_t min, uint64_t max, uint64_t *out);
/* Seconds, integer or float. */
int conf_get_duration(struct conf_reader *r, const config_setting_t *group,
		      const char *key, double min, double max, double *out);
/* An array or list of strings; *out is a NULL-terminated strdup'd vector. */
int conf_get_strings(struct conf_reader *r, const config_setting_t *group,
		     const char *key, char ***out, size_t *n);
void conf_strings_free(char **v);

/* For the owners' *_conf_restart_key(): two optional strings are the same
 * value (both NULL, or equal). */
bool conf_str_equal(const char *a, const char *b);

#endif
