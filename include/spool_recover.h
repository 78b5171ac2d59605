/* spool_recover: what a start finds in the spool directory. Checks the
 * directory (ours, 0700), scans every segment with spool_record_scan,
 * copies torn tails and damaged ranges to quarantine/ and cuts them
 * out of their segment (so a damage is reported once, and a record is
 * never replayed half), and reads the marker log. spool_store builds its
 * index from the result. */
#ifndef CUTOVER_SPOOL_RECOVER_H
#define CUTOVER_SPOOL_RECOVER_H

#include <stddef.h>
#include <stdint.h>

#include "spool_record.h"

#define SPOOL_SEGMENT_NAME_MAX 40
#define SPOOL_MARKERS_FILE "markers"

/* A damaged range found at start, moved to quarantine. */
struct spool_damage {
	char segment[SPOOL_SEGMENT_NAME_MAX];
	uint64_t offset, length;
	char reason[48];
	char quarantine[256];        /* its bytes, under DIR */
};

struct spool_found_segment {
	char name[SPOOL_SEGMENT_NAME_MAX];
	uint64_t size;
};

struct spool_found_record {
	uint64_t id, off, size, body_len;
	int64_t accepted_us;
	uint32_t seg;                /* index in segs */
	char project[SPOOL_RECORD_PROJECT_MAX + 1];
};

struct spool_recovery {
	struct spool_found_segment *segs;   /* by first id */
	size_t n_segs;
	struct spool_found_record *recs;    /* by id */
	size_t n_recs;
	struct spool_marker *marks;         /* in log order */
	size_t n_marks;
	struct spool_damage *damage;
	size_t n_damage;
	uint64_t max_id;                    /* the highest of records and markers */
};

/* Creates DIR (0700) if missing and opens it; sets one open to
 * group/others to 0700 (warned); refuses a DIR that is not a directory or
 * not ours. Returns the fd or -1 with
 * the reason in WHY. */
int spool_recover_dir(const char *dir, char *why, size_t why_len);

/* Scans and repairs DIR (DIR_FD from spool_recover_dir) into OUT.
 * Returns 0, or -1 with the reason in WHY (an I/O error: nothing is
 * guessed). */
int spool_recover(int dir_fd, const char *dir, struct spool_recovery *out, char *why,
		  size_t why_len);
void spool_recovery_free(struct spool_recovery *r);

/* "seg-<id as 16 hex digits>.spool" */
void spool_segment_name(uint64_t first_id, char out[SPOOL_SEGMENT_NAME_MAX]);

#endif
