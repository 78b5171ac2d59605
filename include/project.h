/* project: the registry of projects (scopes) seen in traffic or given a
 * mode, with their in-flight counters. The control thread reads it for
 * status and for the drain after a switch; later the fleet census
 * (devices, unsent forms) hangs its counters here too.
 *
 * Bounded: at most `limits.projects` entries for projects seen only in
 * traffic; an idle one of those is evicted to make room for a new name, so
 * a flood of names cannot fill the table for good. A project with its own
 * mode always gets an entry and is never evicted, nor is an entry a live
 * request holds (each request holds its entry from routing to its end).
 * A name that cannot be tracked (too long, every entry busy) is counted in
 * one "untracked" bucket, which every drain counts too: a drain may wait
 * longer than needed, never answer "drained" too early.
 *
 * Threads: lookups of a known name take no lock (a hash chain walked with
 * atomic loads, then a reference taken with a CAS that fails on an entry
 * being evicted or rewritten); inserting and evicting take one mutex. */
#ifndef CUTOVER_PROJECT_H
#define CUTOVER_PROJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "upstream.h"

#define PROJECT_NAME_MAX 127
#define PROJECT_LIMIT_DEFAULT 4096
#define PROJECT_LIMIT_MAX 1000000
/* True if NAME (LEN bytes) can be a scope: 1..PROJECT_NAME_MAX bytes, no
 * space, control character or '/' (a route's capture can yield it). The
 * admin API and the state loader both check with it, so a stored scope is
 * always one a request can reach. */
bool project_name_ok(const char *name, size_t len);

/* Entries of every kind (with a mode included): a hard ceiling on memory
 * (~180 bytes each); past it names are untracked, never refused. */
#define PROJECT_ENTRIES_MAX (1u << 21)

struct project;

/* Whether NAME has its own mode now (the state snapshot's answer). */
typedef bool (*project_mode_fn)(const char *name, size_t len);

/* Sets up the registry, before any other call: LIMIT entries for projects
 * seen only in traffic (the hash table is sized from it). Returns 0, -1
 * when out of memory. */
int project_init(size_t limit, project_mode_fn has_mode);
/* A new limit (reload); entries beyond it are evicted as names come. */
void project_set_limit(size_t limit);
/* Frees the registry (tests, exit): no entry may be held any more. */
void project_shutdown(void);

/* The entry for NAME (LEN bytes, 0 = requests without a project), held
 * until project_put(); a new name with its own mode (project_init's
 * HAS_MODE, asked only when NAME is not found) is never refused an entry.
 * The untracked bucket when NAME cannot be tracked. Never NULL. */
struct project *project_get(const char *name, size_t len);
void project_put(struct project *p);   /* NULL: nothing */

/* The name of a held entry (NUL-terminated; "" for no project). */
const char *project_name(const struct project *p, size_t *len);
bool project_is_untracked(const struct project *p);

void project_in_flight_add(struct project *p, enum upstream_id id, int delta);
int64_t project_in_flight(const struct project *p, enum upstream_id id);
/* PROJECT's spooled records that are neither delivered nor dead, a
 * submission being stored included: while not 0, its new submissions join
 * the spool's tail (read on the data path without a lock). The entry is
 * held while the count is above 0. */
void project_spooled_add(struct project *p, int delta);
int64_t project_spooled(const struct project *p);
/* Sum over all requests (tracked or not): in flight to ID. */
int64_t project_in_flight_total(enum upstream_id id);
/* In flight to ID with no project entry of their own. */
int64_t project_untracked_in_flight(enum upstream_id id);

struct project_registry_stats {
	size_t tracked;                  /* entries in use (with a mode included) */
	size_t limit;                    /* limits.projects */
	uint64_t evicted;                /* idle names let go to make room */
	uint64_t untracked_requests;     /* requests counted in the untracked bucket */
};
void project_registry_stats(struct project_registry_stats *out);

/* Calls FN for every tracked entry (the no-project entry included, with an
 * empty name; not the untracked bucket), each held during the call. */
void project_each(void (*fn)(struct project *p, void *arg), void *arg);

#endif
