/* spool_store: segments, recovery, the index, markers and the writer
 * thread's group commit. One mutex guards the queues and the index; the
 * writer does its I/O outside it. */
#include "spool_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "file.h"
#include "spool_record.h"
#include "spool_index.h"
#include "spool_reader.h"
#include "spool_recover.h"

#define COPY_BLOCK (64u << 10)

struct spool_write {
	struct spool_store *s;
	struct spool_waiter *w;
	void *cookie;
	char project[SPOOL_RECORD_PROJECT_MAX + 1], route[SPOOL_RECORD_ROUTE_MAX + 1];
	uint8_t *head;
	size_t head_len;
	uint64_t body_len;           /* taken so far */
	uint8_t *buf, *spill_buf;    /* the caller's, the one handed to the writer */
	size_t len, spill_len;
	int spilling, want_room, ended, aborted, queued, err;
	/* the writer's own */
	int stage_fd;
	uint64_t staged;
	struct spool_sum *sum;
	uint32_t seg;
	uint64_t off, size, id;
	int64_t accepted_us;
	struct spool_write *next;
};

struct spool_store {
	struct spool_store_opts o;
	char *dir;
	int dir_fd, markers_fd;
	/* the segment the last read opened (mu held): a replay reads records
	 * of one segment after another, so one open serves thousands (dup'ed) */
	int read_fd;
	char read_name[SPOOL_INDEX_NAME_MAX];
	uint64_t quarantine_files, quarantine_bytes;   /* counted at open, then fixed */
	struct spool_store_hooks hooks;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t wake, flushed;
	int stop;
	struct spool_write *work, **work_tail;
	uint8_t *marks;              /* encoded markers waiting for the writer */
	size_t marks_len, marks_cap;
	uint64_t flush_req, flush_done, syncs;
	struct spool_index *idx;
	uint64_t next_id;            /* the writer's */
	/* the writer's segment */
	int seg_fd;
	uint32_t seg_idx;
	uint64_t seg_size;
	/* the disk refused a record: the segment being written is closed and
	 * deleted as soon as all its records are delivered, not at rotation */
	int disk_full;
};

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int do_sync(struct spool_store *s, int fd)
{
	s->syncs++;
	return s->hooks.sync ? s->hooks.sync(s->hooks.arg, fd) : fdatasync(fd);
}

static int do_pwrite_full(struct spool_store *s, int fd, const void *p, size_t n, uint64_t off)
{
	const uint8_t *b = p;
	while (n > 0) {
		ssize_t w = s->hooks.pwrite ? s->hooks.pwrite(s->hooks.arg, fd, b, n, (off_t)off)
					    : pwrite(fd, b, n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -1 : (errno = EIO, -1);
		b += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

static int unlink_segment(void *arg, const char *name)
{
	struct spool_store *s = arg;
	if (s->read_fd >= 0 && strcmp(s->read_name, name) == 0) {
		/* the cached fd would keep the deleted file's space taken */
		close(s->read_fd);
		s->read_fd = -1;
	}
	return unlinkat(s->dir_fd, name, 0) == 0 || errno == ENOENT ? 0 : -1;
}

/* Deletes fully delivered segments, not the one being written (mu held). */
static void reclaim(struct spool_store *s, int active)
{
	spool_index_reclaim(s->idx, active, unlink_segment, s);
}

/* ---- markers ---- */

/* Queues marker M for the writer (mu held). Only the first marker of a
 * batch wakes it: the writer then lets MARKS_DELAY pass for more to join,
 * so a replay's thousands of deliveries a second share a few fdatasyncs
 * (and context switches) instead of one each. */
static void marker_queue(struct spool_store *s, const struct spool_marker *m)
{
	bool first = s->marks_len == 0;
	s->marks = spool_grow(s->marks, &s->marks_cap, s->marks_len + SPOOL_MARKER_MAX, 1);
	s->marks_len += spool_marker_encode(m, s->marks + s->marks_len);
	if (first)
		pthread_cond_signal(&s->wake);
}

/* How long markers alone wait for company: a delivered marker that is not
 * durable yet costs at most a duplicate after a crash, never a loss. */
#define MARKS_DELAY_NS 2000000L

/* Markers alone are queued (mu held): waits up to MARKS_DELAY_NS for more,
 * returning early for records, a flush or the stop, which must not wait. */
static void marks_linger(struct spool_store *s)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += MARKS_DELAY_NS;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	while (!s->work && s->flush_done == s->flush_req && !s->stop)
		if (pthread_cond_timedwait(&s->wake, &s->mu, &until) != 0)
			break;
}

/* Applies M to the index and queues it for the log. */
static int mark(struct spool_store *s, const struct spool_marker *m)
{
	pthread_mutex_lock(&s->mu);
	int rc = spool_index_apply(s->idx, m);
	if (rc == 0)
		marker_queue(s, m);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int spool_store_mark_delivered(struct spool_store *s, uint64_t id)
{
	struct spool_marker m = { .kind = SPOOL_MARK_DELIVERED, .id = id, .time_us = now_us() };
	return mark(s, &m);
}

int spool_store_mark_dead(struct spool_store *s, uint64_t id, uint32_t attempts, int status,
			  const void *answer, size_t answer_len)
{
	struct spool_marker m = { .kind = SPOOL_MARK_DEAD, .id = id, .time_us = now_us(),
				  .attempts = attempts, .status = status };
	m.answer_len = (uint16_t)(answer_len < SPOOL_ANSWER_MAX ? answer_len : SPOOL_ANSWER_MAX);
	if (m.answer_len)
		memcpy(m.answer, answer, m.answer_len);
	return mark(s, &m);
}

int spool_store_mark_attempt(struct spool_store *s, uint64_t id, uint32_t attempts, int status)
{
	struct spool_marker m = { .kind = SPOOL_MARK_ATTEMPT, .id = id, .time_us = now_us(),
				  .attempts = attempts, .status = status };
	return mark(s, &m);
}

uint32_t spool_store_attempts(struct spool_store *s, uint64_t id)
{
	pthread_mutex_lock(&s->mu);
	uint32_t n = spool_index_attempts(s->idx, id);
	pthread_mutex_unlock(&s->mu);
	return n;
}

int spool_store_mark_retry(struct spool_store *s, uint64_t id)
{
	struct spool_marker m = { .kind = SPOOL_MARK_RETRY, .id = id, .time_us = now_us() };
	return mark(s, &m);
}

/* ---- writing: the caller's side ---- */

/* Puts WR on the writer's list (mu held). */
static void work_queue(struct spool_store *s, struct spool_write *wr)
{
	if (wr->queued)
		return;
	wr->queued = 1;
	wr->next = NULL;
	*s->work_tail = wr;
	s->work_tail = &wr->next;
	pthread_cond_signal(&s->wake);
}

static void write_free(struct spool_write *wr)
{
	if (wr->stage_fd >= 0)
		close(wr->stage_fd);
	spool_sum_free(wr->sum);
	free(wr->head);
	free(wr->buf);
	free(wr->spill_buf);
	free(wr);
}

struct spool_write *spool_write_begin(struct spool_store *s, struct spool_waiter *w, void *cookie,
				      const char *project, const char *route, const void *head,
				      size_t head_len, int64_t body_len)
{
	size_t pl = strlen(project), rl = strlen(route);
	if (pl == 0 || pl > SPOOL_RECORD_PROJECT_MAX || rl > SPOOL_RECORD_ROUTE_MAX ||
	    head_len == 0 || head_len > SPOOL_RECORD_HEAD_MAX) {
		errno = EINVAL;
		return NULL;
	}
	uint64_t least = SPOOL_RECORD_HEADER + pl + rl + head_len + (body_len > 0 ? (uint64_t)body_len : 0);
	if (body_len > 0 && (uint64_t)body_len > s->o.max_record_bytes) {
		errno = E2BIG;
		return NULL;
	}
	pthread_mutex_lock(&s->mu);
	int full = spool_index_used(s->idx) + least > s->o.max_bytes;
	pthread_mutex_unlock(&s->mu);
	if (full) {
		errno = ENOSPC;
		return NULL;
	}
	struct spool_write *wr = calloc(1, sizeof *wr);
	if (!wr || !(wr->head = malloc(head_len)) || !(wr->sum = spool_sum_new())) {
		if (wr)
			free(wr->head);
		free(wr);
		errno = ENOMEM;
		return NULL;
	}
	wr->s = s;
	wr->w = w;
	wr->cookie = cookie;
	wr->stage_fd = -1;
	memcpy(wr->project, project, pl + 1);
	memcpy(wr->route, route, rl + 1);
	memcpy(wr->head, head, head_len);
	wr->head_len = head_len;
	spool_sum_update(wr->sum, project, pl);
	spool_sum_update(wr->sum, route, rl);
	spool_sum_update(wr->sum, head, head_len);
	return wr;
}

size_t spool_write_room(struct spool_write *wr)
{
	pthread_mutex_lock(&wr->s->mu);
	size_t room = wr->len < wr->s->o.record_buffer ? wr->s->o.record_buffer - wr->len : 0;
	pthread_mutex_unlock(&wr->s->mu);
	return room;
}

ssize_t spool_write_append(struct spool_write *wr, const void *p, size_t n)
{
	struct spool_store *s = wr->s;
	size_t cap = s->o.record_buffer;
	pthread_mutex_lock(&s->mu);
	ssize_t rc;
	if (wr->err) {
		rc = -wr->err;
	} else if (wr->body_len + n > s->o.max_record_bytes) {
		rc = -(wr->err = E2BIG);
	} else if (spool_index_used(s->idx) + wr->body_len + n > s->o.max_bytes) {
		rc = -(wr->err = ENOSPC);
	} else {
		size_t take = cap - wr->len < n ? cap - wr->len : n;
		if (take && !wr->buf && !(wr->buf = malloc(cap)))
			take = 0;
		if (take)
			memcpy(wr->buf + wr->len, p, take);
		wr->len += take;
		wr->body_len += take;
		if (wr->len == cap && !wr->spilling) {
			/* full: the writer moves it to the record's staging file */
			wr->spill_buf = wr->buf;
			wr->spill_len = wr->len;
			wr->buf = NULL;
			wr->len = 0;
			wr->spilling = 1;
			work_queue(s, wr);
		}
		wr->want_room = take < n;
		rc = (ssize_t)take;
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

void spool_write_end(struct spool_write *wr)
{
	pthread_mutex_lock(&wr->s->mu);
	wr->ended = 1;
	work_queue(wr->s, wr);
	pthread_mutex_unlock(&wr->s->mu);
}

void spool_write_abort(struct spool_write *wr)
{
	struct spool_store *s = wr->s;
	pthread_mutex_lock(&s->mu);
	wr->aborted = 1;
	/* ROOM events already queued for it must not reach the caller */
	spool_waiter_forget(wr->w, wr);
	work_queue(s, wr);
	pthread_mutex_unlock(&s->mu);
}

/* ---- the writer thread ---- */

/* Appends a full buffer of WR's body to its staging file: an unnamed file
 * in DIR, gone with its fd, so a crash leaves nothing behind. */
static int stage(struct spool_store *s, struct spool_write *wr, const uint8_t *p, size_t n)
{
	if (wr->stage_fd < 0) {
		wr->stage_fd = openat(s->dir_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (wr->stage_fd < 0)
			return -1;
	}
	if (do_pwrite_full(s, wr->stage_fd, p, n, wr->staged) < 0)
		return -1;
	spool_sum_update(wr->sum, p, n);
	wr->staged += n;
	return 0;
}

/* The segments written in one round of the writer: synced at its end, or
 * when rotated out; a failed one fails the round's records in it. */
struct touched {
	int fd;                      /* -1 once synced and closed */
	uint32_t idx;
	uint64_t start;
	int created, failed;
};

struct round {
	struct touched *t;
	size_t n, cap;
	uint64_t bytes;
};

/* Syncs touched segment T; on failure cuts it back to where the round
 * began (fsync errors are sticky: nothing more goes into it). */
static void sync_touched(struct spool_store *s, struct touched *t)
{
	if (do_sync(s, t->fd) < 0) {
		t->failed = 1;
		if (ftruncate(t->fd, (off_t)t->start) < 0) {
			/* recovery will find the torn bytes; never acknowledged */
		}
		if (t->fd == s->seg_fd)
			s->seg_fd = -1;
	}
}

static void touch(struct round *rd, int fd, uint32_t idx, uint64_t start, int created)
{
	rd->t = spool_grow(rd->t, &rd->cap, rd->n + 1, sizeof *rd->t);
	rd->t[rd->n++] = (struct touched){ .fd = fd, .idx = idx, .start = start, .created = created };
}

static int open_segment(struct spool_store *s, uint64_t first_id)
{
	char name[SPOOL_SEGMENT_NAME_MAX];
	spool_segment_name(first_id, name);
	int fd = openat(s->dir_fd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	pthread_mutex_lock(&s->mu);
	s->seg_idx = spool_index_add_segment(s->idx, name);
	pthread_mutex_unlock(&s->mu);
	s->seg_fd = fd;
	s->seg_size = 0;
	return 0;
}

/* Writes WR's record at the end of the current segment (rotating first if
 * it would pass segment_bytes). Returns 0 or an errno. */
static int write_record(struct spool_store *s, struct spool_write *wr, struct round *rd)
{
	size_t pl = strlen(wr->project), rl = strlen(wr->route);
	uint64_t meta_len = SPOOL_RECORD_HEADER + pl + rl + wr->head_len;
	uint64_t total = meta_len + wr->body_len;
	if (wr->body_len > s->o.max_record_bytes)
		return E2BIG;
	pthread_mutex_lock(&s->mu);
	uint64_t used = spool_index_used(s->idx);
	pthread_mutex_unlock(&s->mu);
	if (used + rd->bytes + total > s->o.max_bytes)
		return ENOSPC;
	uint64_t id = s->next_id++;
	if (s->seg_fd >= 0 && s->seg_size > 0 && s->seg_size + total > s->o.segment_bytes) {
		/* rotate: what this round wrote in the old one is synced now */
		struct touched *last = rd->n ? &rd->t[rd->n - 1] : NULL;
		if (last && last->fd == s->seg_fd) {
			sync_touched(s, last);
			last->fd = -1;
		}
		if (s->seg_fd >= 0)
			close(s->seg_fd);
		s->seg_fd = -1;
	}
	if (s->seg_fd < 0) {
		if (open_segment(s, id) < 0)
			return errno;
		touch(rd, s->seg_fd, s->seg_idx, 0, 1);
	} else if (rd->n == 0 || rd->t[rd->n - 1].fd != s->seg_fd) {
		touch(rd, s->seg_fd, s->seg_idx, s->seg_size, 0);
	}
	struct spool_record_hdr h = { .id = id, .accepted_us = now_us(), .body_len = wr->body_len,
				      .head_len = (uint32_t)wr->head_len,
				      .project_len = (uint16_t)pl, .route_len = (uint16_t)rl };
	spool_sum_update(wr->sum, wr->buf, wr->len);
	spool_sum_final(wr->sum, h.data_sum);
	/* A body held in memory (not staged) goes out in the same write as
	 * the header: one pwrite a record instead of two. */
	size_t inline_body = wr->staged ? 0 : wr->len;
	uint8_t *meta = malloc(meta_len + inline_body);
	if (!meta)
		return ENOMEM;
	spool_record_encode_header(&h, meta);
	memcpy(meta + SPOOL_RECORD_HEADER, wr->project, pl);
	memcpy(meta + SPOOL_RECORD_HEADER + pl, wr->route, rl);
	memcpy(meta + SPOOL_RECORD_HEADER + pl + rl, wr->head, wr->head_len);
	if (inline_body)
		memcpy(meta + meta_len, wr->buf, inline_body);
	uint64_t off = s->seg_size, at = off;
	int rc = do_pwrite_full(s, s->seg_fd, meta, meta_len + inline_body, at);
	free(meta);
	at += meta_len + inline_body;
	uint8_t *blk = rc == 0 && wr->staged ? malloc(COPY_BLOCK) : NULL;
	if (wr->staged && !blk)
		rc = -1;
	for (uint64_t done = 0; rc == 0 && done < wr->staged;) {
		size_t n = wr->staged - done < COPY_BLOCK ? (size_t)(wr->staged - done) : COPY_BLOCK;
		rc = file_pread_full(wr->stage_fd, blk, n, done);
		if (rc == 0)
			rc = do_pwrite_full(s, s->seg_fd, blk, n, at);
		done += n;
		at += n;
	}
	free(blk);
	if (rc == 0 && wr->len && !inline_body)
		rc = do_pwrite_full(s, s->seg_fd, wr->buf, wr->len, at);
	if (rc < 0) {
		int e = errno ? errno : EIO;
		/* roll back; if even that fails, leave the torn bytes to recovery
		 * and write on in a new segment */
		if (ftruncate(s->seg_fd, (off_t)off) < 0)
			s->seg_fd = -1;
		return e;
	}
	s->seg_size += total;
	rd->bytes += total;
	wr->seg = s->seg_idx;
	wr->off = off;
	wr->size = total;
	wr->id = id;
	wr->accepted_us = h.accepted_us;
	return 0;
}

/* Takes one item of the work list: a spill, an abort, or an end that
 * joins BATCH. */
static void process(struct spool_store *s, struct spool_write *wr, struct spool_write ***batch_tail)
{
	pthread_mutex_lock(&s->mu);
	uint8_t *spill = wr->spill_buf;
	size_t spill_len = wr->spill_len;
	int failed = wr->err;
	pthread_mutex_unlock(&s->mu);
	int e = 0;
	if (spill && !failed && stage(s, wr, spill, spill_len) < 0)
		e = errno ? errno : EIO;
	pthread_mutex_lock(&s->mu);
	if (spill) {
		free(spill);
		wr->spill_buf = NULL;
		wr->spilling = 0;
		if (e && !wr->err)
			wr->err = e;
	}
	if (wr->aborted) {
		pthread_mutex_unlock(&s->mu);
		write_free(wr);
		return;
	}
	if (wr->ended && !wr->spilling) {
		wr->next = NULL;
		**batch_tail = wr;
		*batch_tail = &wr->next;
		pthread_mutex_unlock(&s->mu);
		return;
	}
	wr->queued = 0;
	if (!wr->err && wr->len == s->o.record_buffer && !wr->ended) {
		wr->spill_buf = wr->buf;
		wr->spill_len = wr->len;
		wr->buf = NULL;
		wr->len = 0;
		wr->spilling = 1;
		work_queue(s, wr);
	}
	if (wr->want_room && (wr->len < s->o.record_buffer || wr->err)) {
		wr->want_room = 0;
		spool_waiter_push(wr->w, wr, wr->cookie, SPOOL_EVENT_ROOM, 0, 0);
	}
	pthread_mutex_unlock(&s->mu);
}

/* Syncs what this round wrote, then the directory if a segment was made. */
static void sync_round(struct spool_store *s, struct round *rd)
{
	int created = 0;
	for (size_t i = 0; i < rd->n; i++) {
		struct touched *t = &rd->t[i];
		if (t->fd >= 0)
			sync_touched(s, t);
		created |= t->created && !t->failed;
	}
	if (created && do_sync(s, s->dir_fd) < 0)
		for (size_t i = 0; i < rd->n; i++)
			if (rd->t[i].created) {
				rd->t[i].failed = 1;
				if (rd->t[i].fd >= 0 && rd->t[i].fd == s->seg_fd)
					s->seg_fd = -1;
			}
	for (size_t i = 0; i < rd->n; i++)
		if (rd->t[i].fd >= 0 && rd->t[i].fd != s->seg_fd)
			close(rd->t[i].fd);
}

static void *writer_main(void *arg)
{
	struct spool_store *s = arg;
	int backoff = 0;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (!s->work && (!s->marks_len || backoff) && s->flush_done == s->flush_req &&
		       !s->stop) {
			if (!backoff) {
				pthread_cond_wait(&s->wake, &s->mu);
				continue;
			}
			/* the marker log failed: retry in 100 ms, not in a spin */
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 100000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			if (pthread_cond_timedwait(&s->wake, &s->mu, &ts) != 0)
				backoff = 0;
		}
		if (!backoff && !s->work && s->marks_len)
			marks_linger(s);
		backoff = 0;
		if (s->stop && !s->work && !s->marks_len) {
			s->flush_done = s->flush_req;
			pthread_cond_broadcast(&s->flushed);
			break;
		}
		uint64_t req = s->flush_req;
		struct spool_write *list = s->work;
		s->work = NULL;
		s->work_tail = &s->work;
		uint8_t *marks = s->marks;
		size_t marks_len = s->marks_len;
		s->marks = NULL;
		s->marks_len = s->marks_cap = 0;
		pthread_mutex_unlock(&s->mu);

		struct spool_write *batch = NULL, **batch_tail = &batch;
		while (list) {
			struct spool_write *next = list->next;
			process(s, list, &batch_tail);
			list = next;
		}
		struct round rd = { 0 };
		for (struct spool_write *wr = batch; wr; wr = wr->next)
			if (!wr->err)
				wr->err = write_record(s, wr, &rd);
		sync_round(s, &rd);
		int marks_ok = 1;
		if (marks_len && (file_write_full(s->markers_fd, marks, marks_len) < 0 ||
				  do_sync(s, s->markers_fd) < 0)) {
			marks_ok = 0;
			if (errno == ENOSPC || errno == EDQUOT)
				s->disk_full = 1;
		}

		pthread_mutex_lock(&s->mu);
		for (struct spool_write *wr = batch, *next; wr; wr = next) {
			next = wr->next;
			for (size_t i = 0; i < rd.n && !wr->err; i++)
				if (rd.t[i].idx == wr->seg && rd.t[i].failed)
					wr->err = EIO;
			if (!wr->err) {
				spool_index_add(s->idx, wr->id, wr->seg, wr->off, wr->size,
						wr->accepted_us, wr->project);
				spool_waiter_push(wr->w, wr, wr->cookie, SPOOL_EVENT_DONE, 0, wr->id);
			} else {
				if (wr->err == ENOSPC || wr->err == EDQUOT)
					s->disk_full = 1;
				spool_waiter_push(wr->w, wr, wr->cookie, SPOOL_EVENT_FAILED, wr->err, 0);
			}
			write_free(wr);
		}
		if (marks_ok) {
			free(marks);
		} else {
			/* keep them, first, for the next round */
			s->marks = spool_grow(s->marks, &s->marks_cap, s->marks_len + marks_len, 1);
			memmove(s->marks + marks_len, s->marks, s->marks_len);
			memcpy(s->marks, marks, marks_len);
			s->marks_len += marks_len;
			free(marks);
			backoff = 1;
		}
		/* Delivered segments go once their markers are durable; on a full
		 * disk even before, since the markers need the space they hold (a
		 * crash meanwhile at worst sends a delivered record again). */
		if (marks_ok || s->disk_full) {
			if (s->disk_full && s->seg_fd >= 0 &&
			    !spool_index_segment_live(s->idx, s->seg_idx)) {
				close(s->seg_fd);
				s->seg_fd = -1;
			}
			if (s->seg_fd < 0)
				s->disk_full = 0;
			reclaim(s, s->seg_fd >= 0 ? (int)s->seg_idx : -1);
		}
		free(rd.t);
		s->flush_done = req;
		pthread_cond_broadcast(&s->flushed);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* ---- open, close ---- */

/* Rewrites the marker log as the state it leads to, once it holds markers
 * of deleted segments. */
static int compact_markers(struct spool_store *s, char *why, size_t why_len)
{
	uint8_t *buf;
	size_t len = spool_index_markers(s->idx, s->next_id - 1, &buf);
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", s->dir, SPOOL_MARKERS_FILE);
	int rc = file_replace(path, buf, len, 0600, why, why_len);
	free(buf);
	return rc;
}

/* What quarantine/ holds (this start's damage and earlier ones an operator
 * has not cleared): status shows it, so damage is seen after the log line
 * scrolled away. */
static void count_quarantine(struct spool_store *s)
{
	int fd = openat(s->dir_fd, "quarantine", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	struct dirent *e;
	struct stat st;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.' && fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode)) {
			s->quarantine_files++;
			s->quarantine_bytes += (uint64_t)st.st_size;
		}
	closedir(d);
}

void spool_store_quarantine(struct spool_store *s, uint64_t *files, uint64_t *bytes)
{
	*files = s->quarantine_files;
	*bytes = s->quarantine_bytes;
}

static int index_recovered(struct spool_store *s, struct spool_recovery *rc, char *why,
			   size_t why_len)
{
	for (size_t i = 0; i < rc->n_segs; i++)
		spool_index_add_segment(s->idx, rc->segs[i].name);
	for (size_t i = 0; i < rc->n_recs; i++) {
		const struct spool_found_record *f = &rc->recs[i];
		/* the same id twice can only be damage: the first is kept */
		spool_index_add(s->idx, f->id, f->seg, f->off, f->size, f->accepted_us, f->project);
	}
	size_t stale = 0;
	for (size_t i = 0; i < rc->n_marks; i++)
		if (rc->marks[i].kind == SPOOL_MARK_FLOOR || !spool_index_known(s->idx, rc->marks[i].id))
			stale++;
		else
			spool_index_apply(s->idx, &rc->marks[i]);
	s->next_id = rc->max_id + 1;
	reclaim(s, -1); /* recovery deleted the empty ones: ENOENT is fine */
	if (stale > 1)
		return compact_markers(s, why, why_len);
	return 0;
}

struct spool_store *spool_store_open(const struct spool_store_opts *o, struct spool_damage **damage,
				     size_t *n_damage, char *why, size_t why_len)
{
	*damage = NULL;
	*n_damage = 0;
	struct spool_store *s = calloc(1, sizeof *s);
	if (!s || !(s->dir = strdup(o->dir))) {
		free(s);
		snprintf(why, why_len, "%s: out of memory", o->dir);
		return NULL;
	}
	s->o = *o;
	s->o.dir = s->dir;
	if (!s->o.record_buffer)
		s->o.record_buffer = 256 << 10;
	if (!s->o.segment_bytes)
		s->o.segment_bytes = 64ULL << 20;
	if (!s->o.max_bytes)
		s->o.max_bytes = UINT64_MAX;
	if (!s->o.max_record_bytes)
		s->o.max_record_bytes = 32ULL << 20;
	if (o->hooks)
		s->hooks = *o->hooks;
	s->work_tail = &s->work;
	s->seg_fd = s->markers_fd = s->read_fd = -1;
	if (!(s->idx = spool_index_new())) {
		free(s->dir);
		free(s);
		snprintf(why, why_len, "%s: out of memory", o->dir);
		return NULL;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->wake, NULL);
	pthread_cond_init(&s->flushed, NULL);
	struct spool_recovery rc;
	s->dir_fd = spool_recover_dir(s->dir, why, why_len);
	if (s->dir_fd < 0)
		goto fail;
	if (spool_recover(s->dir_fd, s->dir, &rc, why, why_len) < 0)
		goto fail;
	int bad = index_recovered(s, &rc, why, why_len);
	count_quarantine(s);
	*damage = rc.damage;
	*n_damage = rc.n_damage;
	rc.damage = NULL;
	spool_recovery_free(&rc);
	if (bad < 0)
		goto fail;
	int existed = faccessat(s->dir_fd, SPOOL_MARKERS_FILE, F_OK, 0) == 0;
	s->markers_fd = openat(s->dir_fd, SPOOL_MARKERS_FILE,
			       O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (s->markers_fd < 0 || (!existed && fsync(s->dir_fd) < 0)) {
		file_error(why, why_len, s->dir, SPOOL_MARKERS_FILE, errno);
		goto fail;
	}
	if (pthread_create(&s->thread, NULL, writer_main, s) != 0) {
		snprintf(why, why_len, "%s: cannot start the spool writer thread", s->dir);
		goto fail;
	}
	return s;
fail:
	s->stop = 1;
	spool_store_close(s);
	return NULL;
}

void spool_store_flush(struct spool_store *s)
{
	pthread_mutex_lock(&s->mu);
	uint64_t mine = ++s->flush_req;
	pthread_cond_signal(&s->wake);
	while (s->flush_done < mine)
		pthread_cond_wait(&s->flushed, &s->mu);
	pthread_mutex_unlock(&s->mu);
}

void spool_store_close(struct spool_store *s)
{
	if (!s)
		return;
	if (!s->stop) {
		pthread_mutex_lock(&s->mu);
		s->stop = 1;
		pthread_cond_signal(&s->wake);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->thread, NULL);
	}
	if (s->seg_fd >= 0)
		close(s->seg_fd);
	if (s->markers_fd >= 0)
		close(s->markers_fd);
	if (s->read_fd >= 0)
		close(s->read_fd);
	if (s->dir_fd >= 0)
		close(s->dir_fd);
	spool_index_free(s->idx);
	free(s->marks);
	free(s->dir);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->wake);
	pthread_cond_destroy(&s->flushed);
	free(s);
}

/* ---- queries ---- */

void spool_store_totals(struct spool_store *s, const char *project, struct spool_totals *t)
{
	pthread_mutex_lock(&s->mu);
	spool_index_totals(s->idx, project, t);
	pthread_mutex_unlock(&s->mu);
}

char **spool_store_projects(struct spool_store *s, size_t *n)
{
	pthread_mutex_lock(&s->mu);
	char **v = spool_index_projects(s->idx, n);
	pthread_mutex_unlock(&s->mu);
	return v;
}

size_t spool_store_pending(struct spool_store *s, const char *project, uint64_t after,
			   uint64_t *ids, size_t max)
{
	pthread_mutex_lock(&s->mu);
	size_t k = spool_index_pending(s->idx, project, after, ids, max);
	pthread_mutex_unlock(&s->mu);
	return k;
}

size_t spool_store_dead(struct spool_store *s, const char *project, uint64_t *ids, size_t max)
{
	pthread_mutex_lock(&s->mu);
	size_t k = spool_index_dead(s->idx, project, ids, max);
	pthread_mutex_unlock(&s->mu);
	return k;
}

size_t spool_store_list(struct spool_store *s, const char *project, uint64_t after,
			struct spool_entry *out, size_t max)
{
	pthread_mutex_lock(&s->mu);
	size_t k = spool_index_list(s->idx, project, after, out, max);
	pthread_mutex_unlock(&s->mu);
	return k;
}

int spool_store_dead_info(struct spool_store *s, uint64_t id, struct spool_dead_info *d)
{
	pthread_mutex_lock(&s->mu);
	int rc = spool_index_dead_info(s->idx, id, d);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

uint64_t spool_store_sync_count(struct spool_store *s)
{
	pthread_mutex_lock(&s->mu);
	uint64_t n = s->syncs;
	pthread_mutex_unlock(&s->mu);
	return n;
}

size_t spool_store_segment_count(struct spool_store *s)
{
	pthread_mutex_lock(&s->mu);
	size_t n = spool_index_segments(s->idx);
	pthread_mutex_unlock(&s->mu);
	return n;
}

/* ---- reading ---- */

struct spool_reader *spool_store_read(struct spool_store *s, uint64_t id)
{
	char name[SPOOL_INDEX_NAME_MAX];
	uint64_t off = 0;
	pthread_mutex_lock(&s->mu);
	int found = spool_index_locate(s->idx, id, name, &off) == 0;
	int fd = -1;
	if (found) {
		if (s->read_fd < 0 || strcmp(s->read_name, name) != 0) {
			if (s->read_fd >= 0)
				close(s->read_fd);
			s->read_fd = openat(s->dir_fd, name, O_RDONLY | O_CLOEXEC);
			snprintf(s->read_name, sizeof s->read_name, "%s", name);
		}
		/* a segment deleted meanwhile held only delivered records: ENOENT */
		fd = s->read_fd >= 0 ? fcntl(s->read_fd, F_DUPFD_CLOEXEC, 0) : -1;
	}
	pthread_mutex_unlock(&s->mu);
	if (!found) {
		errno = ENOENT;
		return NULL;
	}
	return fd < 0 ? NULL : spool_reader_open_fd(fd, off, id);
}
