/* maintenance: the answers devices get while their scope is in maintenance
 * (or a hold ran out): 503 + Retry-After with a body chosen by Accept, the
 * OpenRosa "restore pending" 202 on routes that ask for it, and the 204 that
 * ODK Collect expects to a HEAD on a submission URL. Pure functions: they
 * fill an evbuffer, the caller sends it. */
#ifndef CUTOVER_MAINTENANCE_H
#define CUTOVER_MAINTENANCE_H

#include <libconfig.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "route.h"

struct conf_reader;
struct config;
struct evbuffer;

#define MAINTENANCE_RETRY_AFTER_DEFAULT 120                  /* seconds */
#define MAINTENANCE_MAX_ACCEPT_DEFAULT  (100ULL << 20)        /* 100M */

struct maintenance_conf {
	int retry_after;             /* seconds, when no --until is known */
	char *body_html, *body_json, *body_text;  /* NULL = built-in bodies */
	unsigned long long max_accept_content_length; /* X-OpenRosa-Accept-Content-Length */
};

/* Sets every field of M to its default (M is not freed first). */
void maintenance_conf_defaults(struct maintenance_conf *m);
/* Parses the top-level "maintenance" group into cfg->maintenance. */
int maintenance_conf_parse(struct conf_reader *r, const config_setting_t *s, struct config *cfg);
void maintenance_conf_free(struct maintenance_conf *m);

enum maintenance_kind {
	MAINT_UNAVAILABLE,          /* 503 + Retry-After */
	MAINT_RESTORE_PENDING,      /* 202 OpenRosa restore pending */
	MAINT_SUBMISSION_PROBE,     /* 204 + X-OpenRosa-Accept-Content-Length (HEAD on a spool route) */
};

struct maintenance_request {
	const struct route *route;  /* may be NULL */
	bool head;                  /* HEAD request: no body */
	const char *accept;         /* Accept header value, may be NULL */
	size_t accept_len;
	time_t until;               /* end of the window (0 = unknown) */
	time_t now;
	const char *mode;           /* X-Cutover-Mode value */
	bool keep_alive;
	bool http10;
	/* Optional (zero = not given): the request method, so that a request
	 * carrying data (POST, PUT...) never gets the 202 of a restore-pending
	 * route; and the project, named in the restore-pending message. */
	const char *method;
	size_t method_len;
	const char *project;
	size_t project_len;
	/* X-OpenRosa-Accept-Content-Length of the probe's 204 (spool.max_record_bytes);
	 * 0 = conf's max_accept_content_length. */
	unsigned long long accept_content_length;
};

/* Which answer a request gets in maintenance. */
enum maintenance_kind maintenance_kind_for(const struct maintenance_request *req);

/* Seconds for Retry-After: counted down to UNTIL when known (at least 1),
 * else conf->retry_after. */
int maintenance_retry_after(const struct maintenance_conf *conf, time_t until, time_t now);

/* Appends the full answer (status line, Date, X-Cutover-Mode, Retry-After,
 * Content-Type, Content-Length, body) to OUT and returns its status, or -1
 * when out of memory (then nothing was appended). The 204 carries no
 * Content-Length (RFC 9110 8.6). */
int maintenance_write(struct evbuffer *out, const struct maintenance_conf *conf,
		      const struct maintenance_request *req);

/* The 503 body formats, and the one an Accept header value prefers: the
 * best q among text/html, application/json (or any "x/json", "x/y+json")
 * and text/plain, most specific range first; ties go to the range listed first,
 * then to plain text. Absent, unparsable or all-q=0 Accept: plain text. */
enum maintenance_format {
	MAINT_FORMAT_TEXT,
	MAINT_FORMAT_JSON,
	MAINT_FORMAT_HTML,
};
enum maintenance_format maintenance_negotiate(const char *accept, size_t accept_len);

#endif
