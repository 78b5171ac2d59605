/* status: what GET /status answers, and `cutover status` prints, built
 * from what the control plane holds. Whole or NULL (out of memory), never
 * missing a part. */
#ifndef CUTOVER_STATUS_H
#define CUTOVER_STATUS_H

#include <stddef.h>

#include <jansson.h>

struct config;
struct health;
struct journal;
struct spool_store;
struct worker;

struct status_sources {
	const struct config *cfg;
	struct worker **workers;
	int n_workers;
	struct spool_store *spool;       /* NULL: no spool */
	const struct health *health;     /* NULL: not checking */
	struct journal *journal;
	size_t journal_entries;          /* the latest ones, as a courtesy */
};

json_t *status_json(const struct status_sources *src);

#endif
