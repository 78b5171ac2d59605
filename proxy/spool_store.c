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
#include "spool_reader.h"
#include "spool_recover.h"

#define COPY_BLOCK (64u << 10)

enum rec_state { REC_PENDING, REC_DEAD, REC_DELIVERED };

struct seg {
	char name[40];
	uint64_t first_id;
	uint32_t records, live;      /* live: not delivered */
	int gone;
};

struct rec {
	uint64_t id, off, size, body_len;
	int64_t accepted_us;
	uint32_t seg, proj;
	uint8_t state;
	struct spool_dead_info *dead;
};

struct proj {
	char *name;
	uint64_t *ids;               /* acceptance order; [head] is the oldest kept */
	size_t n, cap, head;
	struct spool_totals t;
};

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
	struct spool_store_hooks hooks;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t wake, flushed;
	int stop;
	struct spool_write *work, **work_tail;
	uint8_t *marks;              /* encoded markers waiting for the writer */
	size_t marks_len, marks_cap;
	uint64_t flush_req, flush_done, syncs;
	/* the index */
	struct seg *segs;
	size_t n_segs, cap_segs;
	struct rec *recs;            /* by id */
	size_t n_recs, cap_recs;
	struct proj *projs;
	size_t n_projs, cap_projs;
	struct spool_totals all;
	uint64_t used, next_id;
	/* the writer's segment */
	int seg_fd;
	uint32_t seg_idx;
	uint64_t seg_size;
};

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return p;
	size_t c = *cap ? *cap : 16;
	while (c < need)
		c *= 2;
	void *q = realloc(p, c * elem);
	if (!q)
		abort(); /* the index cannot be half-updated; out of memory is fatal here */
	*cap = c;
	return q;
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

static int pread_full(int fd, void *p, size_t n, uint64_t off)
{
	uint8_t *b = p;
	while (n > 0) {
		ssize_t r = pread(fd, b, n, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -1 : (errno = EIO, -1);
		b += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

/* ---- the index (callers hold mu) ---- */

static struct proj *proj_get(struct spool_store *s, const char *name, int create, uint32_t *idx)
{
	for (size_t i = 0; i < s->n_projs; i++)
		if (strcmp(s->projs[i].name, name) == 0) {
			if (idx)
				*idx = (uint32_t)i;
			return &s->projs[i];
		}
	if (!create)
		return NULL;
	s->projs = grow(s->projs, &s->cap_projs, s->n_projs + 1, sizeof *s->projs);
	struct proj *p = &s->projs[s->n_projs];
	*p = (struct proj){ .name = strdup(name) };
	if (!p->name)
		abort();
	if (idx)
		*idx = (uint32_t)s->n_projs;
	s->n_projs++;
	return p;
}

static struct rec *rec_find(struct spool_store *s, uint64_t id)
{
	size_t lo = 0, hi = s->n_recs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->recs[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->n_recs && s->recs[lo].id == id ? &s->recs[lo] : NULL;
}

static void totals_add(struct spool_totals *t, const struct rec *r, int sign)
{
	int64_t d = sign;
	if (r->state == REC_PENDING)
		t->pending += (uint64_t)d;
	else if (r->state == REC_DEAD)
		t->dead += (uint64_t)d;
	if (r->state != REC_DELIVERED)
		t->bytes += (uint64_t)(d * (int64_t)r->size);
}

/* Oldest pending acceptance: the first pending record of the list. */
static void proj_oldest(struct spool_store *s, struct proj *p)
{
	while (p->head < p->n) {
		struct rec *r = rec_find(s, p->ids[p->head]);
		if (r && r->state != REC_DELIVERED)
			break;
		p->head++;
	}
	p->t.oldest_us = 0;
	for (size_t i = p->head; i < p->n; i++) {
		struct rec *r = rec_find(s, p->ids[i]);
		if (r && r->state == REC_PENDING) {
			p->t.oldest_us = r->accepted_us;
			break;
		}
	}
}

static void all_oldest(struct spool_store *s)
{
	s->all.oldest_us = 0;
	for (size_t i = 0; i < s->n_projs; i++) {
		int64_t o = s->projs[i].t.oldest_us;
		if (o && (!s->all.oldest_us || o < s->all.oldest_us))
			s->all.oldest_us = o;
	}
}

/* A record enters the index (ids only grow: appended at the end). */
static void index_add(struct spool_store *s, const struct rec *r0, const char *project)
{
	uint32_t pi;
	struct proj *p = proj_get(s, project, 1, &pi);
	s->recs = grow(s->recs, &s->cap_recs, s->n_recs + 1, sizeof *s->recs);
	struct rec *r = &s->recs[s->n_recs++];
	*r = *r0;
	r->proj = pi;
	p->ids = grow(p->ids, &p->cap, p->n + 1, sizeof *p->ids);
	p->ids[p->n++] = r->id;
	s->segs[r->seg].records++;
	if (r->state != REC_DELIVERED) {
		s->segs[r->seg].live++;
		s->used += r->size;
	}
	totals_add(&p->t, r, 1);
	totals_add(&s->all, r, 1);
	if (r->state == REC_PENDING && !p->t.oldest_us)
		p->t.oldest_us = r->accepted_us;
	if (r->state == REC_PENDING && !s->all.oldest_us)
		s->all.oldest_us = r->accepted_us;
}

/* Moves R to state ST, keeping every count true. */
static void rec_set_state(struct spool_store *s, struct rec *r, enum rec_state st)
{
	struct proj *p = &s->projs[r->proj];
	totals_add(&p->t, r, -1);
	totals_add(&s->all, r, -1);
	if (st == REC_DELIVERED && r->state != REC_DELIVERED) {
		s->segs[r->seg].live--;
		s->used -= r->size;
	}
	r->state = (uint8_t)st;
	if (st != REC_DEAD) {
		free(r->dead);
		r->dead = NULL;
	}
	totals_add(&p->t, r, 1);
	totals_add(&s->all, r, 1);
	proj_oldest(s, p);
	all_oldest(s);
}

static void seg_path(const struct spool_store *s, const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", s->dir, name);
}

/* Deletes the segments whose records are all delivered (not the one being
 * written) and drops their records from the index. */
static void reclaim(struct spool_store *s, int active)
{
	int any = 0;
	for (size_t i = 0; i < s->n_segs; i++) {
		struct seg *g = &s->segs[i];
		if (g->gone || g->live || (int)i == active)
			continue;
		char path[4096];
		seg_path(s, g->name, path, sizeof path);
		if (unlink(path) == 0 || errno == ENOENT)
			g->gone = any = 1;
	}
	if (!any)
		return;
	size_t k = 0;
	for (size_t i = 0; i < s->n_recs; i++)
		if (!s->segs[s->recs[i].seg].gone)
			s->recs[k++] = s->recs[i];
		else
			free(s->recs[i].dead);
	s->n_recs = k;
	for (size_t i = 0; i < s->n_projs; i++) {
		struct proj *p = &s->projs[i];
		size_t m = 0;
		for (size_t j = p->head; j < p->n; j++)
			if (rec_find(s, p->ids[j]))
				p->ids[m++] = p->ids[j];
		p->n = m;
		p->head = 0;
	}
}


/* ---- markers ---- */

/* Queues marker M for the writer (mu held). */
static void marker_queue(struct spool_store *s, const struct spool_marker *m)
{
	s->marks = grow(s->marks, &s->marks_cap, s->marks_len + SPOOL_MARKER_MAX, 1);
	s->marks_len += spool_marker_encode(m, s->marks + s->marks_len);
	pthread_cond_signal(&s->wake);
}

static void apply_marker(struct spool_store *s, const struct spool_marker *m)
{
	struct rec *r = rec_find(s, m->id);
	if (!r || r->state == REC_DELIVERED)
		return;
	if (m->kind == SPOOL_MARK_DELIVERED) {
		rec_set_state(s, r, REC_DELIVERED);
	} else if (m->kind == SPOOL_MARK_DEAD) {
		struct spool_dead_info *d = r->dead ? r->dead : calloc(1, sizeof *d);
		if (!d)
			abort();
		d->attempts = m->attempts;
		d->status = m->status;
		d->time_us = m->time_us;
		d->answer_len = m->answer_len;
		memcpy(d->answer, m->answer, m->answer_len);
		rec_set_state(s, r, REC_DEAD);
		r->dead = d;
	} else if (m->kind == SPOOL_MARK_RETRY && r->state == REC_DEAD) {
		rec_set_state(s, r, REC_PENDING);
	}
}

int spool_store_mark_delivered(struct spool_store *s, uint64_t id)
{
	pthread_mutex_lock(&s->mu);
	struct rec *r = rec_find(s, id);
	int rc = -1;
	if (r && r->state != REC_DELIVERED) {
		struct spool_marker m = { .kind = SPOOL_MARK_DELIVERED, .id = id, .time_us = now_us() };
		apply_marker(s, &m);
		marker_queue(s, &m);
		rc = 0;
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int spool_store_mark_dead(struct spool_store *s, uint64_t id, uint32_t attempts, int status,
			  const void *answer, size_t answer_len)
{
	struct spool_marker m = { .kind = SPOOL_MARK_DEAD, .id = id, .time_us = now_us(),
				  .attempts = attempts, .status = status };
	m.answer_len = (uint16_t)(answer_len < SPOOL_ANSWER_MAX ? answer_len : SPOOL_ANSWER_MAX);
	if (m.answer_len)
		memcpy(m.answer, answer, m.answer_len);
	pthread_mutex_lock(&s->mu);
	struct rec *r = rec_find(s, id);
	int rc = -1;
	if (r && r->state == REC_PENDING) {
		apply_marker(s, &m);
		marker_queue(s, &m);
		rc = 0;
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int spool_store_mark_retry(struct spool_store *s, uint64_t id)
{
	pthread_mutex_lock(&s->mu);
	struct rec *r = rec_find(s, id);
	int rc = -1;
	if (r && r->state == REC_DEAD) {
		struct spool_marker m = { .kind = SPOOL_MARK_RETRY, .id = id, .time_us = now_us() };
		apply_marker(s, &m);
		marker_queue(s, &m);
		rc = 0;
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
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
	int full = s->used + least > s->o.max_bytes;
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
	} else if (s->used + wr->body_len + n > s->o.max_bytes) {
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
	rd->t = grow(rd->t, &rd->cap, rd->n + 1, sizeof *rd->t);
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
	s->segs = grow(s->segs, &s->cap_segs, s->n_segs + 1, sizeof *s->segs);
	s->segs[s->n_segs] = (struct seg){ .first_id = first_id };
	memcpy(s->segs[s->n_segs].name, name, sizeof name);
	s->seg_idx = (uint32_t)s->n_segs++;
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
	uint64_t used = s->used;
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
	uint8_t *meta = malloc(meta_len);
	if (!meta)
		return ENOMEM;
	spool_record_encode_header(&h, meta);
	memcpy(meta + SPOOL_RECORD_HEADER, wr->project, pl);
	memcpy(meta + SPOOL_RECORD_HEADER + pl, wr->route, rl);
	memcpy(meta + SPOOL_RECORD_HEADER + pl + rl, wr->head, wr->head_len);
	uint64_t off = s->seg_size, at = off;
	int rc = do_pwrite_full(s, s->seg_fd, meta, meta_len, at);
	free(meta);
	at += meta_len;
	uint8_t *blk = rc == 0 && wr->staged ? malloc(COPY_BLOCK) : NULL;
	if (wr->staged && !blk)
		rc = -1;
	for (uint64_t done = 0; rc == 0 && done < wr->staged;) {
		size_t n = wr->staged - done < COPY_BLOCK ? (size_t)(wr->staged - done) : COPY_BLOCK;
		rc = pread_full(wr->stage_fd, blk, n, done);
		if (rc == 0)
			rc = do_pwrite_full(s, s->seg_fd, blk, n, at);
		done += n;
		at += n;
	}
	free(blk);
	if (rc == 0 && wr->len)
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
				  do_sync(s, s->markers_fd) < 0))
			marks_ok = 0;

		pthread_mutex_lock(&s->mu);
		for (struct spool_write *wr = batch, *next; wr; wr = next) {
			next = wr->next;
			for (size_t i = 0; i < rd.n && !wr->err; i++)
				if (rd.t[i].idx == wr->seg && rd.t[i].failed)
					wr->err = EIO;
			if (!wr->err) {
				struct rec r = { .id = wr->id, .off = wr->off, .size = wr->size,
						 .body_len = wr->body_len, .accepted_us = wr->accepted_us,
						 .seg = wr->seg, .state = REC_PENDING };
				index_add(s, &r, wr->project);
				spool_waiter_push(wr->w, wr, wr->cookie, SPOOL_EVENT_DONE, 0, wr->id);
			} else {
				spool_waiter_push(wr->w, wr, wr->cookie, SPOOL_EVENT_FAILED, wr->err, 0);
			}
			write_free(wr);
		}
		if (marks_ok) {
			free(marks);
			reclaim(s, s->seg_fd >= 0 ? (int)s->seg_idx : -1);
		} else {
			/* keep them, first, for the next round */
			s->marks = grow(s->marks, &s->marks_cap, s->marks_len + marks_len, 1);
			memmove(s->marks + marks_len, s->marks, s->marks_len);
			memcpy(s->marks, marks, marks_len);
			s->marks_len += marks_len;
			free(marks);
			backoff = 1;
		}
		free(rd.t);
		s->flush_done = req;
		pthread_cond_broadcast(&s->flushed);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* ---- open, close ---- */

/* Rewrites the marker log as the state it leads to (a FLOOR keeps the ids
 * given, delivered and dead records of the segments still there), once
 * it holds markers of deleted segments. */
static int compact_markers(struct spool_store *s, char *why, size_t why_len)
{
	size_t cap = 0, len = 0;
	uint8_t *buf = grow(NULL, &cap, SPOOL_MARKER_MAX, 1);
	struct spool_marker m = { .kind = SPOOL_MARK_FLOOR, .id = s->next_id - 1 };
	len += spool_marker_encode(&m, buf);
	for (size_t i = 0; i < s->n_recs; i++) {
		const struct rec *r = &s->recs[i];
		if (r->state == REC_PENDING)
			continue;
		m = (struct spool_marker){ .kind = r->state == REC_DEAD ? SPOOL_MARK_DEAD
									: SPOOL_MARK_DELIVERED,
					   .id = r->id };
		if (r->dead) {
			m.attempts = r->dead->attempts;
			m.status = r->dead->status;
			m.time_us = r->dead->time_us;
			m.answer_len = (uint16_t)r->dead->answer_len;
			memcpy(m.answer, r->dead->answer, r->dead->answer_len);
		}
		buf = grow(buf, &cap, len + SPOOL_MARKER_MAX, 1);
		len += spool_marker_encode(&m, buf + len);
	}
	char path[4096];
	seg_path(s, SPOOL_MARKERS_FILE, path, sizeof path);
	int rc = file_replace(path, buf, len, 0600, why, why_len);
	free(buf);
	return rc;
}

static int index_recovered(struct spool_store *s, struct spool_recovery *rc, char *why,
			   size_t why_len)
{
	s->segs = grow(s->segs, &s->cap_segs, rc->n_segs + 1, sizeof *s->segs);
	for (size_t i = 0; i < rc->n_segs; i++) {
		s->segs[i] = (struct seg){ 0 };
		memcpy(s->segs[i].name, rc->segs[i].name, sizeof s->segs[i].name);
		/* recovery deleted the empty ones: gone until a record shows */
		s->segs[i].gone = 1;
	}
	s->n_segs = rc->n_segs;
	for (size_t i = 0; i < rc->n_recs; i++) {
		const struct spool_found_record *f = &rc->recs[i];
		if (s->n_recs && s->recs[s->n_recs - 1].id >= f->id)
			continue; /* the same id twice can only be damage; keep the first */
		struct rec r = { .id = f->id, .off = f->off, .size = f->size, .body_len = f->body_len,
				 .accepted_us = f->accepted_us, .seg = f->seg, .state = REC_PENDING };
		s->segs[f->seg].gone = 0;
		index_add(s, &r, f->project);
	}
	size_t stale = 0;
	for (size_t i = 0; i < rc->n_marks; i++) {
		if (rc->marks[i].kind != SPOOL_MARK_FLOOR && rec_find(s, rc->marks[i].id))
			apply_marker(s, &rc->marks[i]);
		else
			stale++;
	}
	s->next_id = rc->max_id + 1;
	reclaim(s, -1);
	if (stale > 1 || rc->n_marks > 2 * s->n_recs + 16)
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
	s->seg_fd = s->markers_fd = -1;
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
	if (s->dir_fd >= 0)
		close(s->dir_fd);
	for (size_t i = 0; i < s->n_recs; i++)
		free(s->recs[i].dead);
	for (size_t i = 0; i < s->n_projs; i++) {
		free(s->projs[i].name);
		free(s->projs[i].ids);
	}
	free(s->recs);
	free(s->projs);
	free(s->segs);
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
	struct proj *p = project ? proj_get(s, project, 0, NULL) : NULL;
	*t = project ? (p ? p->t : (struct spool_totals){ 0 }) : s->all;
	pthread_mutex_unlock(&s->mu);
}

char **spool_store_projects(struct spool_store *s, size_t *n)
{
	pthread_mutex_lock(&s->mu);
	char **v = calloc(s->n_projs + 1, sizeof *v);
	size_t k = 0;
	for (size_t i = 0; v && i < s->n_projs; i++)
		if (s->projs[i].t.pending || s->projs[i].t.dead)
			if (!(v[k++] = strdup(s->projs[i].name)))
				abort();
	pthread_mutex_unlock(&s->mu);
	*n = k;
	return v;
}

size_t spool_store_pending(struct spool_store *s, const char *project, uint64_t after,
			   uint64_t *ids, size_t max)
{
	size_t k = 0;
	pthread_mutex_lock(&s->mu);
	struct proj *p = proj_get(s, project, 0, NULL);
	for (size_t i = p ? p->head : 0; p && i < p->n && k < max; i++) {
		if (p->ids[i] <= after)
			continue;
		const struct rec *r = rec_find(s, p->ids[i]);
		if (r && r->state == REC_PENDING)
			ids[k++] = r->id;
	}
	pthread_mutex_unlock(&s->mu);
	return k;
}

int spool_store_dead_info(struct spool_store *s, uint64_t id, struct spool_dead_info *d)
{
	pthread_mutex_lock(&s->mu);
	const struct rec *r = rec_find(s, id);
	int rc = !r ? -1 : r->state == REC_DEAD && r->dead;
	if (rc == 1)
		*d = *r->dead;
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
	size_t n = 0;
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < s->n_segs; i++)
		n += !s->segs[i].gone;
	pthread_mutex_unlock(&s->mu);
	return n;
}

/* ---- reading ---- */

struct spool_reader *spool_store_read(struct spool_store *s, uint64_t id)
{
	char name[SPOOL_SEGMENT_NAME_MAX];
	uint64_t off = 0;
	pthread_mutex_lock(&s->mu);
	const struct rec *r = rec_find(s, id);
	int found = r && r->state != REC_DELIVERED;
	if (found) {
		memcpy(name, s->segs[r->seg].name, sizeof name);
		off = r->off;
	}
	pthread_mutex_unlock(&s->mu);
	if (!found) {
		errno = ENOENT;
		return NULL;
	}
	/* a segment deleted meanwhile held only delivered records: ENOENT */
	return spool_reader_open(s->dir_fd, name, off, id);
}
