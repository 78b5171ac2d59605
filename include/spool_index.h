/* spool_index: what the spool holds, in memory: segments, records by id,
 * per project in acceptance order, their fates (pending, dead letter,
 * delivered) and the totals status shows. No lock and no I/O of its own:
 * spool_store calls it under its mutex and does the files. */
#ifndef CUTOVER_SPOOL_INDEX_H
#define CUTOVER_SPOOL_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spool_record.h"

#define SPOOL_ANSWER_MAX SPOOL_MARKER_ANSWER_MAX
#define SPOOL_INDEX_NAME_MAX 40

struct spool_totals {
	uint64_t pending;            /* not delivered and not dead */
	uint64_t dead;
	uint64_t bytes;              /* held on disk by pending and dead records */
	int64_t oldest_us;           /* acceptance of the oldest pending, 0 if none */
};

struct spool_dead_info {
	uint32_t attempts;
	int status;                  /* last HTTP status, 0 = network error */
	int64_t time_us;
	size_t answer_len;
	uint8_t answer[SPOOL_ANSWER_MAX];
};

/* One record as a listing shows it. */
struct spool_entry {
	uint64_t id;
	uint64_t bytes;              /* held on disk (header, head and body) */
	bool dead;                   /* a dead letter, else pending */
	char project[SPOOL_RECORD_PROJECT_MAX + 1];
};

struct spool_index;

struct spool_index *spool_index_new(void);
void spool_index_free(struct spool_index *x);

/* A segment file (NAME); returns its number for spool_index_add. */
uint32_t spool_index_add_segment(struct spool_index *x, const char *name);
/* A pending record; ids must grow. Returns -1 (ignored) if ID is not above
 * the last one added. */
int spool_index_add(struct spool_index *x, uint64_t id, uint32_t seg, uint64_t off, uint64_t size,
		    int64_t accepted_us, const char *project);
/* Applies marker M: 0, or -1 when its record is unknown or not in a state
 * that allows it (delivered twice, dead twice, retry of a pending one). */
int spool_index_apply(struct spool_index *x, const struct spool_marker *m);
/* Whether segment SEG holds a record not delivered (pending or dead). */
int spool_index_segment_live(const struct spool_index *x, uint32_t seg);
/* Deletes (through UNLINK, which returns 0 or -1) the segments whose
 * records are all delivered, except segment ACTIVE (-1: none), and drops
 * their records. */
void spool_index_reclaim(struct spool_index *x, int active,
			 int (*unlink_segment)(void *arg, const char *name), void *arg);

/* Bytes held by pending and dead records (what max_bytes bounds). */
uint64_t spool_index_used(const struct spool_index *x);
int spool_index_known(const struct spool_index *x, uint64_t id);
/* Segment name and offset of record ID if pending or dead: 0, else -1. */
int spool_index_locate(const struct spool_index *x, uint64_t id,
		       char name[SPOOL_INDEX_NAME_MAX], uint64_t *off);
void spool_index_totals(const struct spool_index *x, const char *project,
			struct spool_totals *t);
char **spool_index_projects(const struct spool_index *x, size_t *n);
size_t spool_index_pending(const struct spool_index *x, const char *project, uint64_t after,
			   uint64_t *ids, size_t max);
/* Up to MAX ids of PROJECT's dead letters, in acceptance order. */
size_t spool_index_dead(const struct spool_index *x, const char *project, uint64_t *ids, size_t max);
/* Failed sends of pending record ID so far (0 if not pending). */
uint32_t spool_index_attempts(const struct spool_index *x, uint64_t id);
/* Up to MAX records (pending or dead) with ids above AFTER, of PROJECT
 * (NULL: all), in id order (acceptance order). Returns how many. */
size_t spool_index_list(const struct spool_index *x, const char *project, uint64_t after,
			struct spool_entry *out, size_t max);
int spool_index_dead_info(const struct spool_index *x, uint64_t id, struct spool_dead_info *d);
size_t spool_index_segments(const struct spool_index *x);
/* The state as markers (a FLOOR of FLOOR_ID, then one per delivered or
 * dead record and per pending one with failed sends), malloc'd into *BUF: what a compacted marker log holds. */
size_t spool_index_markers(const struct spool_index *x, uint64_t floor_id, uint8_t **buf);

#endif
