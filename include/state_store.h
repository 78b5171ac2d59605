/* state_store: where the modes of every scope are persisted. A small interface so
 * that a file today and etcd later (several instances sharing one control
 * plane) plug in the same way. */
#ifndef CUTOVER_STATE_STORE_H
#define CUTOVER_STATE_STORE_H

#include <jansson.h>
#include <stddef.h>

struct state_store;

struct state_store_ops {
	/* *OUT = the stored document, or NULL when nothing was stored yet.
	 * -1 = unreadable or corrupt (WHY says so, naming the file). */
	int (*load)(struct state_store *s, json_t **out, char *why, size_t why_len);
	/* Durably replaces the document: atomic for readers, on stable
	 * storage before it returns 0. */
	int (*save)(struct state_store *s, const json_t *doc, char *why, size_t why_len);
	/* Where the document lives, for messages about its content (the file
	 * path; an etcd key later). Valid until free. */
	const char *(*name)(struct state_store *s);
	void (*free)(struct state_store *s);
};

struct state_store {
	const struct state_store_ops *ops;
};

/* The file store: PATH written as temp file ("PATH.tmp.PID") + fsync +
 * rename + fsync of the directory; created mode 0600 (operator data). A
 * file larger than STATE_STORE_FILE_MAX is refused by load (and never written
 * by save). NULL on ENOMEM. */
#define STATE_STORE_FILE_MAX (16 * 1024 * 1024)
struct state_store *state_store_file_new(const char *path);

static inline int state_store_load(struct state_store *s, json_t **out, char *why, size_t why_len)
{
	return s->ops->load(s, out, why, why_len);
}

static inline int state_store_save(struct state_store *s, const json_t *doc, char *why,
				   size_t why_len)
{
	return s->ops->save(s, doc, why, why_len);
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
