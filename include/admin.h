/* admin: the control plane's HTTP/1.1 + JSON API on admin.address (a unix
 * socket, mode 0600, or a loopback TCP port with a bearer token). It runs
 * on the control thread's event loop; `cutover status|switch|...` (cli.c)
 * is its client.
 *
 * Endpoints (request and answer bodies are JSON objects):
 *
 *   GET  /
 *     200 the dashboard page (text/html, include/dashboard.h): static, no
 *     data in it, so served on TCP without the token too; its script
 *     fetches /status (with the token from the page's #token= fragment)
 *   GET  /status
 *     200 {"version": "0.1.0", "mode": "<global mode>", "generation": N,
 *          "until": "<RFC 3339>"|null, "reason": "..."|null,
 *          "projects": {"<p>": {"mode": "new", "own_mode": true,
 *                               "in_flight": {"old": 0, "new": 0},
 *                               "until": null, "reason": null}},
 *          "upstreams": {"old": {"url": "...", "in_flight": 0, "active": 0,
 *                                "queued": 0, "max_active": 0,
 *                                "addresses": ["127.0.0.1:18081"]}, "new": {...}},
 *          "registry": {"tracked": 3, "limit": 4096, "evicted": 0,
 *                       "untracked_requests": 0,
 *                       "untracked_in_flight": {"old": 0, "new": 0}},
 *          "hold": {"parked": 0},
 *          "scheduled": [{"id": 1, "at": "<RFC 3339>", "to": "new",
 *                         "project": null, "reason": "..."}],
 *          "spool": {"records": 0, "bytes": 0, "dead_letters": 0, "oldest_age": 0},
 *          "journal": [ <last 5 journal entries> ]}
 *   POST /switch      {"to": "old"|"new", "project": "p"?, "reason": "..."?,
 *                      "force": false?, "at": "<RFC 3339>"|"+10m"?}
 *   POST /maintenance {"on": true|false, "project": "p"?, "until": "<RFC 3339>"|"+2h"?,
 *                      "reason": "..."?}
 *   POST /hold        {"project": "p"?, "max": 30?}
 *   POST /resume      {"project": "p"?}
 *   POST /reload      {}
 *   GET  /journal?n=N 200 {"entries": [ ... oldest first ... ]}
 *   DELETE /schedule/<id>   cancels a scheduled switch
 *   GET /spool, GET /spool/records, GET /spool/<id>, GET /spool/<id>/body,
 *   POST /spool/<id>/retry, POST /spool/retry: see admin_spool.h
 *
 *   A change answers 200 {"ok": true, "scope": "global"|"<p>", "from": "old",
 *     "to": "new", "forced": false, "preflight": {"ok": true, "steps": [...]},
 *     "drained": true, "in_flight": 0, "untracked": 0, "upstream": "old"}
 *   "drained": false means the new mode is in force but IN_FLIGHT requests
 *   were still running on UPSTREAM when limits.drain_timeout ran out (the
 *   CLI exits 3). "untracked": how many of IN_FLIGHT have no project entry
 *   (the registry was full): a drain waits for them whatever their scope.
 *   A scheduled change answers 202 {"ok": true, "scheduled":
 *   {...}}. Errors answer 4xx/5xx {"ok": false, "error": "one line"}:
 *   400 bad request/JSON, 401 missing or wrong token, 403 a browser's
 *   request from another site or name (dashboard_browser_allowed), 404 unknown path,
 *   405 wrong method, 409 refused (preflight failed, nothing to resume),
 *   413 body too large. A body may hold only the keys listed for its
 *   endpoint, each once and of its type: anything else is a 400 naming the
 *   key (endpoints listed without a body take none).
 *
 *   Connections: at most 64, 16 per TCP peer address while their requests
 *   are incomplete; a request must arrive whole (head and body) within 2 s
 *   of the connection. At either limit the oldest incomplete request makes
 *   room for the new connection, so half-sent requests cannot keep the
 *   operator out; each kind of drop is logged once per 10 s with a count.
 */
#ifndef CUTOVER_ADMIN_H
#define CUTOVER_ADMIN_H

#include <libconfig.h>
#include <stddef.h>

#include <jansson.h>

#include "addr.h"

struct conf_reader;
struct config;
struct control;
struct event_base;
struct admin;

/* The "admin" group. All zero (the default) when there is none: no admin
 * listener, which config.c warns about. */
struct admin_conf {
	struct addr address;     /* unix:/path or loopback host:port */
	char *token_file;        /* required for TCP */
};

/* Parses the top-level "admin" group into cfg->admin. */
int admin_conf_parse(struct conf_reader *r, const config_setting_t *s, struct config *cfg);
void admin_conf_free(struct admin_conf *c);
/* "admin" if the address or token file differ, else NULL: both are read
 * once, at start, so a reload cannot take them over. */
const char *admin_conf_restart_key(const struct admin_conf *a, const struct admin_conf *b);

/* Listens on cfg->admin.address (unix socket created 0600, replacing a
 * stale socket; TCP needs the token file). NULL with WHY on failure. */
struct admin *admin_new(struct event_base *base, const struct config *cfg, struct control *ctl,
			char *why, size_t why_len);
/* Closes the listener and every admin connection. */
void admin_free(struct admin *adm);

/* Longest bearer token, in bytes, and longest token file (the token plus
 * surrounding whitespace). */
#define ADMIN_TOKEN_MAX 4096
#define ADMIN_TOKEN_FILE_MAX (ADMIN_TOKEN_MAX + 1024)

/* The bearer token in the file at PATH without the whitespace around it
 * (spaces, tabs, CR, LF). The server and the CLI both read it here, so
 * that they agree on what the token is. A malloc'd string, or NULL with a
 * one-line reason naming PATH in WHY: unreadable, empty, too long, or a
 * control character inside (it could not travel in a header). */
char *admin_token_read(const char *path, char *why, size_t why_len);

/* A request body for METHOD PATH as dispatch reads it: JSON, duplicate
 * keys refused, an object holding only the endpoint's keys with their
 * types (none for an unknown endpoint). 0 with *BODY (the caller's), or
 * 400/500 with a one-line reason in MSG. For tests and fuzzing. */
int admin_body_parse(const char *method, const char *path, const char *text, size_t len,
		     json_t **body, char *msg, size_t msg_len);

#endif
