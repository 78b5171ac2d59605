/* spool_index: the spool's records in memory, their fates and totals. */
#include "spool_index.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum rec_state { REC_PENDING, REC_DEAD, REC_DELIVERED };

struct seg {
	char name[SPOOL_INDEX_NAME_MAX];
	uint32_t live;               /* records not delivered */
	int gone;
};

struct rec {
	uint64_t id, off, size;
	int64_t accepted_us;
	uint32_t seg, proj;
	uint8_t state;
	uint32_t attempts;           /* failed sends while pending (ATTEMPT markers) */
	struct spool_dead_info *dead;
};

struct proj {
	char *name;
	uint64_t *ids;               /* acceptance order; [head] is the oldest kept */
	size_t n, cap, head;
	struct spool_totals t;
};

struct spool_index {
	struct seg *segs;
	size_t n_segs, cap_segs;
	struct rec *recs;            /* by id */
	size_t n_recs, cap_recs;
	struct proj *projs;          /* few: a linear search (see the report) */
	size_t n_projs, cap_projs;
	struct spool_totals all;
	uint64_t used;
};

struct spool_index *spool_index_new(void)
{
	return calloc(1, sizeof(struct spool_index));
}

void spool_index_free(struct spool_index *x)
{
	if (!x)
		return;
	for (size_t i = 0; i < x->n_recs; i++)
		free(x->recs[i].dead);
	for (size_t i = 0; i < x->n_projs; i++) {
		free(x->projs[i].name);
		free(x->projs[i].ids);
	}
	free(x->recs);
	free(x->projs);
	free(x->segs);
	free(x);
}

static struct proj *proj_get(const struct spool_index *x, const char *name, uint32_t *idx)
{
	for (size_t i = 0; i < x->n_projs; i++)
		if (strcmp(x->projs[i].name, name) == 0) {
			if (idx)
				*idx = (uint32_t)i;
			return &x->projs[i];
		}
	return NULL;
}

static struct rec *rec_find(const struct spool_index *x, uint64_t id)
{
	size_t lo = 0, hi = x->n_recs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (x->recs[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < x->n_recs && x->recs[lo].id == id ? &x->recs[lo] : NULL;
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
static void proj_oldest(const struct spool_index *x, struct proj *p)
{
	while (p->head < p->n) {
		const struct rec *r = rec_find(x, p->ids[p->head]);
		if (r && r->state != REC_DELIVERED)
			break;
		p->head++;
	}
	p->t.oldest_us = 0;
	for (size_t i = p->head; i < p->n; i++) {
		const struct rec *r = rec_find(x, p->ids[i]);
		if (r && r->state == REC_PENDING) {
			p->t.oldest_us = r->accepted_us;
			break;
		}
	}
}

static void all_oldest(struct spool_index *x)
{
	x->all.oldest_us = 0;
	for (size_t i = 0; i < x->n_projs; i++) {
		int64_t o = x->projs[i].t.oldest_us;
		if (o && (!x->all.oldest_us || o < x->all.oldest_us))
			x->all.oldest_us = o;
	}
}

uint32_t spool_index_add_segment(struct spool_index *x, const char *name)
{
	x->segs = spool_grow(x->segs, &x->cap_segs, x->n_segs + 1, sizeof *x->segs);
	struct seg *g = &x->segs[x->n_segs];
	*g = (struct seg){ 0 };
	snprintf(g->name, sizeof g->name, "%s", name);
	return (uint32_t)x->n_segs++;
}

int spool_index_add(struct spool_index *x, uint64_t id, uint32_t seg, uint64_t off, uint64_t size,
		    int64_t accepted_us, const char *project)
{
	if ((x->n_recs && x->recs[x->n_recs - 1].id >= id) || seg >= x->n_segs)
		return -1;
	uint32_t pi;
	struct proj *p = proj_get(x, project, &pi);
	if (!p) {
		x->projs = spool_grow(x->projs, &x->cap_projs, x->n_projs + 1, sizeof *x->projs);
		p = &x->projs[x->n_projs];
		*p = (struct proj){ .name = strdup(project) };
		if (!p->name)
			abort();
		pi = (uint32_t)x->n_projs++;
	}
	x->recs = spool_grow(x->recs, &x->cap_recs, x->n_recs + 1, sizeof *x->recs);
	struct rec *r = &x->recs[x->n_recs++];
	*r = (struct rec){ .id = id, .off = off, .size = size, .accepted_us = accepted_us,
			   .seg = seg, .proj = pi, .state = REC_PENDING };
	p->ids = spool_grow(p->ids, &p->cap, p->n + 1, sizeof *p->ids);
	p->ids[p->n++] = id;
	x->segs[seg].live++;
	x->segs[seg].gone = 0;
	x->used += size;
	totals_add(&p->t, r, 1);
	totals_add(&x->all, r, 1);
	if (!p->t.oldest_us)
		p->t.oldest_us = accepted_us;
	if (!x->all.oldest_us)
		x->all.oldest_us = accepted_us;
	return 0;
}

/* Moves R to state ST, keeping every count true. */
static void rec_set_state(struct spool_index *x, struct rec *r, enum rec_state st)
{
	struct proj *p = &x->projs[r->proj];
	totals_add(&p->t, r, -1);
	totals_add(&x->all, r, -1);
	if (st == REC_DELIVERED && r->state != REC_DELIVERED) {
		x->segs[r->seg].live--;
		x->used -= r->size;
	}
	r->state = (uint8_t)st;
	if (st != REC_DEAD) {
		free(r->dead);
		r->dead = NULL;
	}
	totals_add(&p->t, r, 1);
	totals_add(&x->all, r, 1);
	proj_oldest(x, p);
	all_oldest(x);
}

int spool_index_apply(struct spool_index *x, const struct spool_marker *m)
{
	struct rec *r = rec_find(x, m->id);
	if (!r || r->state == REC_DELIVERED)
		return -1;
	switch (m->kind) {
	case SPOOL_MARK_DELIVERED:
		rec_set_state(x, r, REC_DELIVERED);
		return 0;
	case SPOOL_MARK_DEAD: {
		if (r->state != REC_PENDING)
			return -1;
		struct spool_dead_info *d = calloc(1, sizeof *d);
		if (!d)
			abort();
		d->attempts = m->attempts;
		d->status = m->status;
		d->time_us = m->time_us;
		d->answer_len = m->answer_len;
		memcpy(d->answer, m->answer, m->answer_len);
		rec_set_state(x, r, REC_DEAD);
		r->dead = d;
		return 0;
	}
	case SPOOL_MARK_RETRY:
		if (r->state != REC_DEAD)
			return -1;
		rec_set_state(x, r, REC_PENDING);
		r->attempts = 0;         /* the operator grants a fresh budget */
		return 0;
	case SPOOL_MARK_ATTEMPT:
		if (r->state != REC_PENDING)
			return -1;
		r->attempts = m->attempts;
		return 0;
	case SPOOL_MARK_FLOOR:
		break;
	}
	return -1;
}

int spool_index_segment_live(const struct spool_index *x, uint32_t seg)
{
	return seg < x->n_segs && x->segs[seg].live > 0;
}

void spool_index_reclaim(struct spool_index *x, int active,
			 int (*unlink_segment)(void *arg, const char *name), void *arg)
{
	int any = 0;
	for (size_t i = 0; i < x->n_segs; i++) {
		struct seg *g = &x->segs[i];
		if (g->gone || g->live || (int)i == active)
			continue;
		if (unlink_segment(arg, g->name) == 0)
			g->gone = any = 1;
	}
	if (!any)
		return;
	size_t k = 0;
	for (size_t i = 0; i < x->n_recs; i++)
		if (!x->segs[x->recs[i].seg].gone)
			x->recs[k++] = x->recs[i];
		else
			free(x->recs[i].dead);
	x->n_recs = k;
	for (size_t i = 0; i < x->n_projs; i++) {
		struct proj *p = &x->projs[i];
		size_t m = 0;
		for (size_t j = p->head; j < p->n; j++)
			if (rec_find(x, p->ids[j]))
				p->ids[m++] = p->ids[j];
		p->n = m;
		p->head = 0;
	}
}

uint64_t spool_index_used(const struct spool_index *x)
{
	return x->used;
}

int spool_index_known(const struct spool_index *x, uint64_t id)
{
	return rec_find(x, id) != NULL;
}

int spool_index_locate(const struct spool_index *x, uint64_t id,
		       char name[SPOOL_INDEX_NAME_MAX], uint64_t *off)
{
	const struct rec *r = rec_find(x, id);
	if (!r || r->state == REC_DELIVERED)
		return -1;
	memcpy(name, x->segs[r->seg].name, SPOOL_INDEX_NAME_MAX);
	*off = r->off;
	return 0;
}

void spool_index_totals(const struct spool_index *x, const char *project, struct spool_totals *t)
{
	const struct proj *p = project ? proj_get(x, project, NULL) : NULL;
	*t = project ? (p ? p->t : (struct spool_totals){ 0 }) : x->all;
}

char **spool_index_projects(const struct spool_index *x, size_t *n)
{
	char **v = calloc(x->n_projs + 1, sizeof *v);
	size_t k = 0;
	for (size_t i = 0; v && i < x->n_projs; i++)
		if (x->projs[i].t.pending || x->projs[i].t.dead)
			if (!(v[k++] = strdup(x->projs[i].name)))
				abort();
	*n = k;
	return v;
}

size_t spool_index_pending(const struct spool_index *x, const char *project, uint64_t after,
			   uint64_t *ids, size_t max)
{
	size_t k = 0;
	const struct proj *p = proj_get(x, project, NULL);
	for (size_t i = p ? p->head : 0; p && i < p->n && k < max; i++) {
		if (p->ids[i] <= after)
			continue;
		const struct rec *r = rec_find(x, p->ids[i]);
		if (r && r->state == REC_PENDING)
			ids[k++] = r->id;
	}
	return k;
}

size_t spool_index_dead(const struct spool_index *x, const char *project, uint64_t *ids, size_t max)
{
	size_t k = 0;
	const struct proj *p = proj_get(x, project, NULL);
	for (size_t i = p ? p->head : 0; p && i < p->n && k < max; i++) {
		const struct rec *r = rec_find(x, p->ids[i]);
		if (r && r->state == REC_DEAD)
			ids[k++] = r->id;
	}
	return k;
}

uint32_t spool_index_attempts(const struct spool_index *x, uint64_t id)
{
	const struct rec *r = rec_find(x, id);
	return r && r->state == REC_PENDING ? r->attempts : 0;
}

size_t spool_index_list(const struct spool_index *x, const char *project, uint64_t after,
			struct spool_entry *out, size_t max)
{
	uint32_t pi = 0;
	if (project && !proj_get(x, project, &pi))
		return 0;
	size_t lo = 0, hi = x->n_recs, k = 0;
	while (lo < hi) {                /* the first id above AFTER */
		size_t mid = lo + (hi - lo) / 2;
		if (x->recs[mid].id <= after)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < x->n_recs && k < max; i++) {
		const struct rec *r = &x->recs[i];
		if (r->state == REC_DELIVERED || (project && r->proj != pi))
			continue;
		struct spool_entry *e = &out[k++];
		e->id = r->id;
		e->bytes = r->size;
		e->dead = r->state == REC_DEAD;
		snprintf(e->project, sizeof e->project, "%s", x->projs[r->proj].name);
	}
	return k;
}

int spool_index_dead_info(const struct spool_index *x, uint64_t id, struct spool_dead_info *d)
{
	const struct rec *r = rec_find(x, id);
	int rc = !r ? -1 : r->state == REC_DEAD && r->dead;
	if (rc == 1)
		*d = *r->dead;
	return rc;
}

size_t spool_index_segments(const struct spool_index *x)
{
	size_t n = 0;
	for (size_t i = 0; i < x->n_segs; i++)
		n += !x->segs[i].gone;
	return n;
}

size_t spool_index_markers(const struct spool_index *x, uint64_t floor_id, uint8_t **buf)
{
	size_t cap = 0, len = 0;
	uint8_t *b = spool_grow(NULL, &cap, SPOOL_MARKER_MAX, 1);
	struct spool_marker m = { .kind = SPOOL_MARK_FLOOR, .id = floor_id };
	len += spool_marker_encode(&m, b);
	for (size_t i = 0; i < x->n_recs; i++) {
		const struct rec *r = &x->recs[i];
		if (r->state == REC_PENDING && !r->attempts)
			continue;
		if (r->state == REC_PENDING) {
			m = (struct spool_marker){ .kind = SPOOL_MARK_ATTEMPT, .id = r->id,
						   .attempts = r->attempts };
			b = spool_grow(b, &cap, len + SPOOL_MARKER_MAX, 1);
			len += spool_marker_encode(&m, b + len);
			continue;
		}
		m = (struct spool_marker){ .kind = r->dead ? SPOOL_MARK_DEAD : SPOOL_MARK_DELIVERED,
					   .id = r->id };
		if (r->dead) {
			m.attempts = r->dead->attempts;
			m.status = r->dead->status;
			m.time_us = r->dead->time_us;
			m.answer_len = (uint16_t)r->dead->answer_len;
			memcpy(m.answer, r->dead->answer, r->dead->answer_len);
		}
		b = spool_grow(b, &cap, len + SPOOL_MARKER_MAX, 1);
		len += spool_marker_encode(&m, b + len);
	}
	*buf = b;
	return len;
}
