/* store: where the modes of every scope are persisted. A small interface so
 * that a file today and etcd later (several instances sharing one control
 * plane) plug in the same way. */
#ifndef CUTOVER_STORE_H
#define CUTOVER_STORE_H

#include <jansson.h>
#include <stddef.h>

struct store;

struct store_ops {
	/* *OUT = the stored document, or NULL when nothing was stored yet.
	 * -1 = unreadable or corrupt (WHY says so, naming the file). */
	int (*load)(struct store *s, json_t **out, char *why, size_t why_len);
	/* Durably replaces the document: atomic for readers, on stable
	 * storage before it returns 0. */
	int (*save)(struct store *s, const json_t *doc, char *why, size_t why_len);
	/* Where the document lives, for messages about its content (the file
	 * path; an etcd key later). Valid until free. */
	const char *(*name)(struct store *s);
	void (*free)(struct store *s);
};

struct store {
	const struct store_ops *ops;
};

/* The file store: PATH written as temp file ("PATH.tmp.PID") + fsync +
 * rename + fsync of the directory; created mode 0600 (operator data). A
 * file larger than STORE_FILE_MAX is refused by load (and never written
 * by save). NULL on ENOMEM. */
#define STORE_FILE_MAX (16 * 1024 * 1024)
struct store *store_file_new(const char *path);

static inline int store_load(struct store *s, json_t **out, char *why, size_t why_len)
{
	return s->ops->load(s, out, why, why_len);
}

static inline int store_save(struct store *s, const json_t *doc, char *why, size_t why_len)
{
	return s->ops->save(s, doc, why, why_len);
}

static inline const char *store_name(struct store *s)
{
	return s->ops->name(s);
}

static inline void store_free(struct store *s)
{
	if (s)
		s->ops->free(s);
}

#endif
