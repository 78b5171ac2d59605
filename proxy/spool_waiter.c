/* spool_waiter: a locked event queue and its eventfd. */
#include "spool_waiter.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct queued_event {
	struct spool_event ev;
	const void *who;
};

struct spool_waiter {
	int efd;
	pthread_mutex_t mu;
	struct queued_event *q;      /* [head, head + n) */
	size_t head, n, cap;
};

struct spool_waiter *spool_waiter_new(void)
{
	struct spool_waiter *w = calloc(1, sizeof *w);
	if (!w)
		return NULL;
	w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->efd < 0) {
		free(w);
		return NULL;
	}
	pthread_mutex_init(&w->mu, NULL);
	return w;
}

int spool_waiter_fd(const struct spool_waiter *w)
{
	return w->efd;
}

void spool_waiter_push(struct spool_waiter *w, const void *who, void *cookie,
		       enum spool_event_kind kind, int err, uint64_t id)
{
	pthread_mutex_lock(&w->mu);
	if (w->head + w->n == w->cap && w->head) {
		memmove(w->q, w->q + w->head, w->n * sizeof *w->q);
		w->head = 0;
	}
	if (w->head + w->n == w->cap) {
		/* bounded by the caller's open writes: at most two events each */
		size_t cap = w->cap ? 2 * w->cap : 16;
		struct queued_event *q = realloc(w->q, cap * sizeof *q);
		if (!q)
			abort();
		w->q = q;
		w->cap = cap;
	}
	w->q[w->head + w->n++] = (struct queued_event){
		.ev = { .kind = kind, .cookie = cookie, .err = err, .id = id }, .who = who };
	/* readable exactly while events wait: only the first event of a batch
	 * has to make it so (the consumer drains to empty before it reads) */
	uint64_t one = 1;
	if (w->n == 1 && write(w->efd, &one, sizeof one) < 0 && errno != EAGAIN)
		abort(); /* an eventfd write fails only on counter overflow */
	pthread_mutex_unlock(&w->mu);
}

int spool_waiter_next(struct spool_waiter *w, struct spool_event *ev)
{
	pthread_mutex_lock(&w->mu);
	int got = w->n > 0;
	if (got) {
		*ev = w->q[w->head].ev;
		w->head++;
		w->n--;
	}
	if (w->n == 0) {
		/* readable exactly while events wait */
		uint64_t v;
		if (read(w->efd, &v, sizeof v) < 0 && errno != EAGAIN)
			abort();
		w->head = 0;
	}
	pthread_mutex_unlock(&w->mu);
	return got;
}

void spool_waiter_forget(struct spool_waiter *w, const void *who)
{
	pthread_mutex_lock(&w->mu);
	size_t k = w->head;
	for (size_t i = w->head; i < w->head + w->n; i++)
		if (w->q[i].who != who)
			w->q[k++] = w->q[i];
	w->n = k - w->head;
	if (w->n == 0) {
		uint64_t v;
		if (read(w->efd, &v, sizeof v) < 0 && errno != EAGAIN)
			abort();
	}
	pthread_mutex_unlock(&w->mu);
}

void spool_waiter_free(struct spool_waiter *w)
{
	if (!w)
		return;
	close(w->efd);
	pthread_mutex_destroy(&w->mu);
	free(w->q);
	free(w);
}
