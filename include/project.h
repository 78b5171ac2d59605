/* project: the registry of projects (scopes) seen in traffic or given a
 * mode, with their live counters. Workers find-or-insert without locks or
 * allocation (a fixed open-addressing table); the control thread reads it
 * for status and for the drain after a switch. Later the fleet census
 * (devices, unsent forms) hangs its counters here too. */
#ifndef CUTOVER_PROJECT_H
#define CUTOVER_PROJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "upstream.h"

#define PROJECT_NAME_MAX 127
#define PROJECT_SLOTS 4096           /* power of two */

struct project {
	int ready;                       /* 0 empty, 1 being written, 2 ready (atomic) */
	uint32_t hash;
	size_t len;
	char name[PROJECT_NAME_MAX + 1];
	int64_t in_flight[UPSTREAM_COUNT];   /* atomic */
};

/* The entry for NAME (LEN bytes, 0 = requests without a project), created
 * on first use. Names longer than PROJECT_NAME_MAX and a full table share
 * one overflow entry named "~other". Never NULL. */
struct project *project_get(const char *name, size_t len);

void project_in_flight_add(struct project *p, enum upstream_id id, int delta);
int64_t project_in_flight(const struct project *p, enum upstream_id id);
/* Sum over all projects: requests in flight to ID. */
int64_t project_in_flight_total(enum upstream_id id);

/* Calls FN for every ready entry (the no-project entry included, with an
 * empty name). */
void project_each(void (*fn)(struct project *p, void *arg), void *arg);

#endif
