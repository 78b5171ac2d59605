/* journal: the audit trail of operator actions, one JSON object per line,
 * appended and fsync'd before the admin API answers. */
#ifndef CUTOVER_JOURNAL_H
#define CUTOVER_JOURNAL_H

#include <jansson.h>
#include <stddef.h>

struct journal;

/* Bounds: an entry longer than JOURNAL_LINE_MAX bytes is refused by
 * journal_append (EMSGSIZE) and skipped by journal_tail; journal_tail
 * returns at most JOURNAL_TAIL_MAX entries and JOURNAL_TAIL_BYTES of text
 * (the newest ones that fit). */
#define JOURNAL_LINE_MAX   (1024 * 1024)
#define JOURNAL_TAIL_MAX   10000
#define JOURNAL_TAIL_BYTES (16 * 1024 * 1024)

/* Opens (creates 0640) PATH for appending. NULL after writing why
 * ("PATH: step: cause") into WHY (size WHY_LEN). */
struct journal *journal_open(const char *path, char *why, size_t why_len);
void journal_close(struct journal *j);

/* Appends ENTRY (an object; "time" is added to it as RFC 3339 UTC with
 * milliseconds if absent) as one line and fsyncs. If the file ended in a
 * torn line (crash mid-write), the entry starts on a new line. Returns 0
 * or -1 (errno set). Not thread-safe: the control thread is its only
 * writer. */
int journal_append(struct journal *j, json_t *entry);

/* Other threads (the replay on a worker) post entries here (ENTRY taken;
 * "time" set now); the control thread writes them with
 * journal_write_posted, so no fsync runs on the data path. At most
 * JOURNAL_POSTED_MAX wait; past that they are dropped and counted. */
#define JOURNAL_POSTED_MAX 10000
void journal_post(json_t *entry);
/* Appends what was posted; returns how many were dropped since last time. */
unsigned long journal_write_posted(struct journal *j);

/* The last N entries, oldest first, as a new JSON array (N = 0: none).
 * Lines that are not valid JSON (a torn last line after a crash) are
 * skipped. Reads from the end of the file, not the whole file. NULL (errno
 * set) when the file cannot be read. */
json_t *journal_tail(struct journal *j, size_t n);

#endif
