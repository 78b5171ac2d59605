/* state: the mode of every scope. Workers read a snapshot through one
 * atomic pointer, without locks or allocation; the control thread persists
 * each change through the state store (a file now, etcd later) and then
 * publishes it: one new project record and one new snapshot header, so a
 * change costs the same with 10 projects as with 10,000. */
#ifndef CUTOVER_STATE_H
#define CUTOVER_STATE_H

#include <jansson.h>
#include <libconfig.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

struct conf_reader;
struct config;
struct state_store;

enum mode { MODE_OLD, MODE_NEW, MODE_MAINTENANCE, MODE_HOLD, MODE_COUNT };

#define STATE_FILE_DEFAULT "/var/lib/cutover/state.json"
#define JOURNAL_FILE_DEFAULT "/var/lib/cutover/journal.log"

struct state_conf {
	char *state_file;
	char *journal_file;
};

/* Parses the top-level "state_file" and "journal_file" scalars. */
int state_conf_parse(struct conf_reader *r, const config_setting_t *root, struct config *cfg);
void state_conf_free(struct state_conf *c);
/* "state_file" or "journal_file" if that path differs, else NULL. */
const char *state_conf_restart_key(const struct state_conf *a, const struct state_conf *b);

const char *mode_name(enum mode m);
int mode_parse(const char *text, enum mode *out);

struct scope_state {
	enum mode mode;
	enum mode resume_to;         /* where maintenance off / the end of a hold returns */
	time_t until;                /* announced end of maintenance or hold, 0 = none */
	time_t since;                /* when this mode was set */
	char *reason;                /* NULL = none */
};

struct project_mode {
	char *name;
	size_t len;
	struct scope_state s;
};

struct project_table;

/* The generation, the global scope and the number of projects with their
 * own mode are fixed in a snapshot. The projects' scopes are shared by all
 * snapshots: each one is replaced atomically on its own, so one read
 * through an older snapshot may see a newer mode (never a torn one). */
struct state_snapshot {
	uint64_t generation;
	struct scope_state global;
	struct project_table *projects;  /* use state_project(), state_project_at() */
	size_t n_projects;
};

/* Loads the persisted state from STORE (nothing stored = global mode old).
 * An unreadable or corrupt state is an error naming the file: a restart
 * must never silently send traffic back to old. FORCE_MODE (optional, the
 * operator's --start-mode) replaces an unreadable state with that global
 * mode. Takes ownership of STORE. Returns 0 or -1 after printing why. */
int state_init(struct state_store *store, const char *force_mode, FILE *errs);
void state_shutdown(void);

/* The current snapshot; lock-free. Valid for the rest of the current event
 * callback: a replaced snapshot (or project scope) is freed only after a
 * grace period. */
const struct state_snapshot *state_current(void);
/* The scope a request falls in: PROJECT's own, else the global one. */
const struct scope_state *state_scope_for(const struct state_snapshot *s, const char *project,
					  size_t len);
enum mode state_mode_for(const struct state_snapshot *s, const char *project, size_t len);
/* PROJECT's own scope, or NULL if it follows the global mode. */
const struct project_mode *state_project(const struct state_snapshot *s, const char *project,
					 size_t len);
/* The Ith project with its own mode, I < n_projects, in the order they got
 * it (NULL past the end). */
const struct project_mode *state_project_at(const struct state_snapshot *s, size_t i);

/* ---- control thread only ---- */

/* Sets PROJECT's scope (NULL = global) to S (copied), persists, publishes.
 * Returns 0, or -1 with WHY (nothing changed): out of memory, the store
 * failed, or so many changes within the grace period (some 80,000) that
 * what they replaced reached its memory bound. */
int state_change(const char *project, const struct scope_state *s, char *why, size_t why_len);
/* Scheduled changes are persisted with the modes: an array of objects the
 * control plane owns. state_set_scheduled takes a reference. */
const json_t *state_scheduled(void);
int state_set_scheduled(json_t *list, char *why, size_t why_len);

/* Bytes of replaced state waiting out the grace period: bounded (16 MiB),
 * whatever the switch rate. */
size_t state_retired_bytes(void);

json_t *state_scope_json(const struct scope_state *s);
/* T as an RFC 3339 UTC string ("2026-12-01T02:00:00Z"), or null for 0. */
json_t *state_time_json(time_t t);

#endif
