/* config: loads one libconfig file into an immutable struct config.
 *
 * config.c owns the file, the error list and the top-level dispatch; each
 * group is parsed by the module that owns it (listener_conf_parse(),
 * upstream_conf_parse(), ...) through the small reader API below, so every
 * error is reported as "FILE:LINE: message" and parsing goes on to find the
 * rest of them. */
#ifndef CUTOVER_CONFIG_H
#define CUTOVER_CONFIG_H

#include <libconfig.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "addr.h"
#include "forward.h"
#include "conn.h"
#include "listener.h"
#include "log.h"
#include "maintenance.h"
#include "route.h"
#include "state.h"
#include "upstream.h"

/* Groups whose behaviour lands in later issues; parsed and validated now so
 * that the reference config and `cutover check` already know every key. */
struct admin_conf {
	struct addr address;     /* unix:/path or loopback host:port */
	char *token_file;        /* required for TCP */
};

struct dns_conf {
	char **servers;          /* "host[:port]"; empty = /etc/resolv.conf */
	size_t n_servers;
	double min_ttl, max_ttl; /* seconds */
};

struct spool_conf {
	char *dir;
	uint64_t max_bytes, max_record_bytes;
	int response_status;     /* answer to a spooled submission (201) */
	char *response_body;
};

struct config {
	char *path;
	struct listen_conf *listen;
	size_t n_listen;
	struct admin_conf admin;
	struct upstream_conf upstream[UPSTREAM_COUNT];
	struct dns_conf dns;
	struct route_table *routes;
	struct maintenance_conf maintenance;
	struct spool_conf spool;
	struct state_conf state;
	struct log_conf log;
	struct limits_conf limits;
	struct forward_conf forward;
	int workers;
};

/* Loads and validates PATH. On failure returns NULL after printing every
 * error, one "FILE:LINE: message" per line, to ERRS. Warnings are printed
 * too but do not fail the load. */
struct config *config_load(const char *path, FILE *errs);
/* Same, from a string in memory (tests); NAME stands for the file name in
 * messages ("NAME:LINE: message"). */
struct config *config_load_string(const char *text, const char *name, FILE *errs);
void config_free(struct config *cfg);

/* ---- reader API, used by each module's *_conf_parse() ---- */

struct conf_reader;

void conf_error(struct conf_reader *r, const config_setting_t *at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void conf_warn(struct conf_reader *r, const config_setting_t *at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The path of the setting for messages, e.g. "upstreams.old.url". */
const char *conf_where(const config_setting_t *s, char *buf, size_t len);

/* Reports every member of GROUP not named in ALLOWED (NULL-terminated).
 * Also reports GROUP itself if it is not a group. Returns false on error. */
bool conf_check_keys(struct conf_reader *r, const config_setting_t *group,
		     const char *const allowed[]);

/* Typed getters: 1 = present and valid (*out set), 0 = absent (*out
 * untouched, so defaults set before the call survive), -1 = present but
 * invalid (an error has been reported, *out untouched). */
int conf_get_string(struct conf_reader *r, const config_setting_t *group,
		    const char *key, char **out);          /* strdup; frees old */
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

#endif
