/* spool_waiter: how the spool's writer thread tells a caller on an event
 * loop that its record is durable (or failed, or may take more bytes): a
 * locked queue of events and an eventfd that the caller's loop watches.
 * Each libevent loop stays used by one thread: the writer never touches
 * it. */
#ifndef CUTOVER_SPOOL_WAITER_H
#define CUTOVER_SPOOL_WAITER_H

#include <stdint.h>

enum spool_event_kind {
	SPOOL_EVENT_DONE,            /* durable: id set */
	SPOOL_EVENT_FAILED,          /* err set (E2BIG, ENOSPC, EIO, ...): answer 503 */
	SPOOL_EVENT_ROOM,            /* spool_write_append may take more bytes */
};

struct spool_event {
	enum spool_event_kind kind;
	void *cookie;
	int err;
	uint64_t id;
};

struct spool_waiter;

/* NULL with errno when the eventfd cannot be made. */
struct spool_waiter *spool_waiter_new(void);
/* Readable exactly while events wait. */
int spool_waiter_fd(const struct spool_waiter *w);
/* Takes the next event; 0 when there is none. */
int spool_waiter_next(struct spool_waiter *w, struct spool_event *ev);
/* No write may still be open with W. */
void spool_waiter_free(struct spool_waiter *w);

/* The store's side: queues an event for WHO (any thread). */
void spool_waiter_push(struct spool_waiter *w, const void *who, void *cookie,
		       enum spool_event_kind kind, int err, uint64_t id);
/* Drops the events queued for WHO (an aborted write). */
void spool_waiter_forget(struct spool_waiter *w, const void *who);

#endif
