/* state_store: where the modes of every scope are persisted. A small interface so
 * that a file today and etcd later (several instances sharing one control
 * plane) plug in the same way. */
#ifndef CUTOVER_STATE_STORE_H
#define CUTOVER_STATE_STORE_H

#include <jansson.h>
#include <stddef.h>

struct state_store;

/* The document is the whole state; a change is one small object that the
 * owner (state.c) knows how to apply. Each change is durable on its own, so
 * a switch costs the same with 10 scopes as with 10,000; the whole document
 * is written again only now and then (compaction).
 *
 * One change read back by replay. -1 with WHY (the cause; the store adds
 * where it is) stops the replay. */
typedef int (*state_store_change_fn)(const json_t *change, void *arg, char *why, size_t why_len);

struct state_store_ops {
	/* *OUT = the stored document, or NULL when nothing was stored yet.
	 * -1 = unreadable or corrupt (WHY says so as "FILE:LINE: cause"),
	 * changes without a document included. */
	int (*load)(struct state_store *s, json_t **out, char *why, size_t why_len);
	/* Calls FN for each change made since the document, oldest first, one
	 * at a time (memory stays that of one change). A change that was
	 * being written when the process died (a torn tail) is not there: it
	 * was never acknowledged. -1 = corrupt, or FN said so: WHY says where
	 * as "FILE:LINE: cause". */
	int (*replay)(struct state_store *s, state_store_change_fn fn, void *arg, char *why,
		      size_t why_len);
	/* Durably replaces the document and forgets the changes before it:
	 * atomic for readers, on stable storage before it returns 0. */
	int (*save)(struct state_store *s, const json_t *doc, char *why, size_t why_len);
	/* Durably records CHANGE (an object) after the others: on stable
	 * storage before it returns. 0, or 1 when the changes have grown large
	 * next to the document and a save of the whole would pay off; -1 with
	 * WHY (nothing recorded). */
	int (*append)(struct state_store *s, const json_t *change, char *why, size_t why_len);
	/* Where the document lives, for messages about its content (the file
	 * path; an etcd key later). Valid until free. */
	const char *(*name)(struct state_store *s);
	void (*free)(struct state_store *s);
};

struct state_store {
	const struct state_store_ops *ops;
};

/* The file store: PATH written as temp file ("PATH.tmp.PID") + fsync +
 * rename + fsync of the directory; the changes since in "PATH.log", one
 * JSON object per line, each appended with one write + fdatasync. Both
 * created mode 0600 (operator data). A document larger than
 * STATE_STORE_FILE_MAX is refused by load (and never written by save), a
 * log larger than STATE_STORE_LOG_MAX likewise. append asks for a save
 * once the log passes STATE_STORE_LOG_MIN and twice the document's size,
 * so the bytes written per change stay constant however many scopes
 * there are. NULL on ENOMEM. */
#define STATE_STORE_FILE_MAX (16 * 1024 * 1024)
#define STATE_STORE_LOG_MAX (4 * STATE_STORE_FILE_MAX)
#define STATE_STORE_LOG_MIN (256 * 1024)
struct state_store *state_store_file_new(const char *path);

static inline int state_store_load(struct state_store *s, json_t **out, char *why, size_t why_len)
{
	return s->ops->load(s, out, why, why_len);
}

static inline int state_store_replay(struct state_store *s, state_store_change_fn fn, void *arg,
				     char *why, size_t why_len)
{
	return s->ops->replay(s, fn, arg, why, why_len);
}

static inline int state_store_save(struct state_store *s, const json_t *doc, char *why,
				   size_t why_len)
{
	return s->ops->save(s, doc, why, why_len);
}

static inline int state_store_append(struct state_store *s, const json_t *change, char *why,
				     size_t why_len)
{
	return s->ops->append(s, change, why, why_len);
}

static inline const char *state_store_name(struct state_store *s)
{
	return s->ops->name(s);
}

static inline void state_store_free(struct state_store *s)
{
	if (s)
		s->ops->free(s);
}

#endif
