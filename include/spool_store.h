/* spool_store: the durable spool on disk. Append-only segment files
 * (DIR/seg-<first id>.spool, records as spool_record says), a marker log
 * (DIR/markers: a record delivered, dead-lettered, retried or failed once
 * more, appended and checksummed, so no segment is rewritten to record a
 * fate; only a start cuts damage out of one), DIR/quarantine/ for damaged
 * bytes. One writer thread owns the files: workers (intake) stream records
 * into it, and it writes them, shares one fdatasync between all the
 * records that ended meanwhile (group commit), and tells each caller
 * through its waiter (an eventfd the caller's loop watches) once its
 * record is durable. The replay reads records back and marks their fate. */
#ifndef CUTOVER_SPOOL_STORE_H
#define CUTOVER_SPOOL_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "spool_index.h"
#include "spool_reader.h"
#include "spool_recover.h"
#include "spool_waiter.h"

struct spool_store;
struct spool_write;

/* Test hooks: called by the writer thread instead of fdatasync / pwrite.
 * NULL = the real call. */
struct spool_store_hooks {
	int (*sync)(void *arg, int fd);
	ssize_t (*pwrite)(void *arg, int fd, const void *p, size_t n, off_t off);
	void *arg;
};

struct spool_store_opts {
	const char *dir;
	uint64_t max_bytes;          /* records held, pending and dead (0: none) */
	uint64_t max_record_bytes;   /* one record's body (0: 32 MiB) */
	uint64_t segment_bytes;      /* rotate past this (0: 64 MiB) */
	size_t record_buffer;        /* body bytes a record holds in memory (0: 256 KiB) */
	const struct spool_store_hooks *hooks;
};

/* Opens DIR (created 0700 if missing; set to 0700 if group/other may
 * access it; refused if it is not ours), scans every segment (torn tails and
 * damaged ranges copied to quarantine/ and cut out), applies the markers,
 * deletes fully delivered segments and starts the writer thread. *DAMAGE
 * gets what was quarantined now (malloc'd, *N_DAMAGE entries; free()).
 * Returns NULL with the reason in WHY. */
struct spool_store *spool_store_open(const struct spool_store_opts *o, struct spool_damage **damage,
				     size_t *n_damage, char *why, size_t why_len);
/* Writes what has ended, syncs, stops the writer. Writes not ended are
 * dropped (never acknowledged) and leaked: end or abort them first. */
void spool_store_close(struct spool_store *s);
/* Blocks until everything ended or marked before the call is durable. */
void spool_store_flush(struct spool_store *s);

/* ---- writing (any thread; one spool_waiter per event loop) ---- */

/* Starts a record: HEAD is the request line and end-to-end headers as the
 * device sent them (copied). BODY_LEN is the Content-Length, or -1 when
 * chunked. Returns NULL with errno (E2BIG/ENOSPC past a limit, EINVAL). */
struct spool_write *spool_write_begin(struct spool_store *s, struct spool_waiter *w, void *cookie,
				      const char *project, const char *route, const void *head,
				      size_t head_len, int64_t body_len);
/* Takes up to N body bytes; returns how many (0: wait for a ROOM event),
 * or -errno when the record has failed (then end or abort it). */
ssize_t spool_write_append(struct spool_write *wr, const void *p, size_t n);
/* Bytes spool_write_append would take now. */
size_t spool_write_room(struct spool_write *wr);
/* No more body: the record gets DONE or FAILED later. WR is gone. */
void spool_write_end(struct spool_write *wr);
/* The device went away: no event will come for WR, nothing of it stays. */
void spool_write_abort(struct spool_write *wr);

/* ---- the index (any thread) ---- */

/* Totals of PROJECT, or of the whole spool when PROJECT is NULL. */
void spool_store_totals(struct spool_store *s, const char *project, struct spool_totals *t);
/* Project names with records (pending or dead): a malloc'd array of
 * malloc'd strings, *N of them. */
char **spool_store_projects(struct spool_store *s, size_t *n);
/* Up to MAX ids of PROJECT's pending records after AFTER (0: from the
 * start), in acceptance order. Returns how many. */
size_t spool_store_pending(struct spool_store *s, const char *project, uint64_t after,
			   uint64_t *ids, size_t max);

/* Up to MAX ids of PROJECT's dead letters, in acceptance order. */
size_t spool_store_dead(struct spool_store *s, const char *project, uint64_t *ids, size_t max);
/* Up to MAX records (pending or dead) above AFTER, of PROJECT (NULL:
 * all), in acceptance order. Returns how many. */
size_t spool_store_list(struct spool_store *s, const char *project, uint64_t after,
			struct spool_entry *out, size_t max);
/* 1 and *D when ID is a dead letter, 0 if not, -1 if unknown. */
int spool_store_dead_info(struct spool_store *s, uint64_t id, struct spool_dead_info *d);

/* Markers: the index changes at once, the marker is durable by the next
 * group commit (a delivered record replayed again after a crash is a
 * duplicate the servers drop, never a loss). 0 or -1 (unknown id, or not
 * in a state that allows it). */
int spool_store_mark_delivered(struct spool_store *s, uint64_t id);
int spool_store_mark_dead(struct spool_store *s, uint64_t id, uint32_t attempts, int status,
			  const void *answer, size_t answer_len);
int spool_store_mark_retry(struct spool_store *s, uint64_t id); /* dead -> pending */
/* A send of pending ID failed and will be retried: ATTEMPTS so far, kept
 * so that a restart does not grant spool.max_attempts afresh. */
int spool_store_mark_attempt(struct spool_store *s, uint64_t id, uint32_t attempts, int status);
/* What spool_store_mark_attempt last recorded for pending ID (else 0). */
uint32_t spool_store_attempts(struct spool_store *s, uint64_t id);

/* ---- reading one record (the replay) ---- */

/* Opens record ID (pending or dead) for reading; NULL with errno (ENOENT:
 * unknown or delivered). */
struct spool_reader *spool_store_read(struct spool_store *s, uint64_t id);

/* Files and bytes in DIR/quarantine/ when the store was opened (damage is
 * only found at a start). */
void spool_store_quarantine(struct spool_store *s, uint64_t *files, uint64_t *bytes);

/* ---- for tests ---- */
uint64_t spool_store_sync_count(struct spool_store *s);
size_t spool_store_segment_count(struct spool_store *s);

#endif
