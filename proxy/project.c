/* project: a bounded registry of projects with lock-free lookups.
 *
 * Entries live in chunks that are never freed while the registry runs, so a
 * pointer read from a chain always points at an entry, though maybe one
 * evicted and reused for another name since (ABA). Hence a lookup first
 * takes a reference (CAS on refs, which fails while the entry is free or
 * being rewritten), then compares the name: a rewrite happens only at
 * refs == 0, so a held entry's name is stable. Chains and the counters
 * below change under the mutex only; a reader walking a chain while an
 * entry moves may miss its name, and then looks again under the mutex. */
#include "project.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define CHUNK 256
#define MAX_CHUNKS (PROJECT_ENTRIES_MAX / CHUNK)
#define FREE (-1)                /* refs of an entry not in use, or being rewritten */
#define FAST_STEPS 1024          /* chain steps without the lock before asking under it */
#define SWEEP_STEPS 64           /* entries an eviction looks at before giving up */
#define MIN_BUCKETS (1u << 15)   /* room for tens of thousands of projects with a mode */

struct project {
	int refs;                        /* atomic: holders; FREE */
	int used;                        /* atomic: looked up since the sweep passed */
	uint32_t hash;                   /* atomic: read before the reference */
	bool traffic;                    /* counted against the limit (mutex) */
	struct project *next;            /* atomic: the bucket's chain */
	struct project *free_next;       /* the free list (mutex) */
	size_t len;
	char name[PROJECT_NAME_MAX + 1];
	int64_t in_flight[UPSTREAM_COUNT];   /* atomic */
	int64_t spooled;                 /* atomic: records not yet delivered nor dead */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	struct project **buckets;        /* heads, atomic */
	uint32_t mask;
	uint32_t seed[2];
	project_mode_fn has_mode;
	struct project *chunks[MAX_CHUNKS];
	size_t n_alloc;                  /* atomic: entries in chunks (free ones included) */
	size_t n_used;                   /* entries ever handed out; the rest are fresh */
	struct project *free;            /* evicted past a lowered limit, for reuse */
	size_t hand;                     /* the eviction sweep's position */
	size_t n_traffic, n_live;
	size_t limit;
	uint64_t evicted;                /* atomic */
	uint64_t untracked;              /* atomic */
} reg;

static struct project none;          /* requests without a project */
static struct project untracked = { .len = 10, .name = "~untracked" };
static int64_t totals[UPSTREAM_COUNT];

/* FNV-1a from a random basis, then a final mix with a second key: a
 * client cannot choose names that all land in one chain. */
static uint32_t hash_name(const char *s, size_t len)
{
	uint32_t h = 2166136261u ^ reg.seed[0];
	for (size_t i = 0; i < len; i++) {
		h ^= (uint8_t)s[i];
		h *= 16777619u;
	}
	h ^= reg.seed[1];
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

bool project_name_ok(const char *name, size_t len)
{
	if (len == 0 || len > PROJECT_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)name[i] < 0x21 || name[i] == '/' || name[i] == 0x7f)
			return false;
	return true;
}

static bool try_hold(struct project *p)
{
	int r = __atomic_load_n(&p->refs, __ATOMIC_RELAXED);
	do {
		if (r < 0)
			return false;
	} while (!__atomic_compare_exchange_n(&p->refs, &r, r + 1, true, __ATOMIC_ACQUIRE,
					      __ATOMIC_RELAXED));
	return true;
}

void project_put(struct project *p)
{
	if (p)
		__atomic_sub_fetch(&p->refs, 1, __ATOMIC_RELEASE);
}

static struct project *entry_at(size_t i)
{
	return &reg.chunks[i / CHUNK][i % CHUNK];
}

static struct project **bucket_of(uint32_t h)
{
	return &reg.buckets[h & reg.mask];
}

static struct project *untracked_get(void)
{
	__atomic_add_fetch(&reg.untracked, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&untracked.refs, 1, __ATOMIC_RELAXED);
	return &untracked;
}

int project_init(size_t limit, project_mode_fn has_mode)
{
	size_t n = MIN_BUCKETS;
	while (n < 2 * limit && n < PROJECT_ENTRIES_MAX)
		n *= 2;
	reg.buckets = calloc(n, sizeof(*reg.buckets));
	if (!reg.buckets)
		return -1;
	reg.mask = (uint32_t)(n - 1);
	if (getrandom(reg.seed, sizeof(reg.seed), 0) != sizeof(reg.seed)) {
		reg.seed[0] = (uint32_t)(uintptr_t)&reg;   /* no entropy yet: ASLR at least */
		reg.seed[1] = (uint32_t)(uintptr_t)&none;
	}
	reg.has_mode = has_mode;
	reg.limit = limit;
	return 0;
}

void project_set_limit(size_t limit)
{
	pthread_mutex_lock(&lock);
	reg.limit = limit;
	pthread_mutex_unlock(&lock);
}

void project_shutdown(void)
{
	for (size_t i = 0; i < MAX_CHUNKS && reg.chunks[i]; i++)
		free(reg.chunks[i]);
	free(reg.buckets);
	memset(&reg, 0, sizeof(reg));
	memset(&none, 0, sizeof(none));
	untracked.refs = 0;
	memset(untracked.in_flight, 0, sizeof(untracked.in_flight));
	memset(totals, 0, sizeof(totals));
}

/* ---- under the lock ---- */

static void unlink_entry(struct project *p)
{
	struct project **pp = bucket_of(p->hash);
	while (*pp != p)
		pp = &(*pp)->next;
	/* Readers standing on P keep its next pointer: the rest of the chain. */
	__atomic_store_n(pp, p->next, __ATOMIC_RELEASE);
}

/* An idle entry of a project seen only in traffic, taken out of its chain
 * (refs FREE), or NULL. Second chance: an entry looked up since the sweep
 * last passed is kept if an older one can go. Entries of projects with a
 * mode cost one load each; HAS_MODE is asked about at most SWEEP_STEPS
 * traffic entries (did one get a mode?) and one other (did it lose it?). */
static struct project *evict_sweep(bool *held)
{
	size_t n = reg.n_used;
	struct project *victim = NULL;
	int asked = 0;
	bool rechecked = false;
	for (size_t i = 0; i < n && asked < SWEEP_STEPS; i++) {
		struct project *p = entry_at(reg.hand);
		reg.hand = (reg.hand + 1) % n;
		int refs = __atomic_load_n(&p->refs, __ATOMIC_RELAXED);
		if (refs != 0) {
			*held |= refs != FREE;
			continue;  /* held, or free */
		}
		if (!p->traffic) {
			if (rechecked || !reg.has_mode || reg.has_mode(p->name, p->len))
				continue;
			rechecked = true;
			p->traffic = true;  /* its mode went: seen only in traffic from now */
			reg.n_traffic++;
		} else {
			asked++;
			if (reg.has_mode && reg.has_mode(p->name, p->len)) {
				p->traffic = false;
				reg.n_traffic--;
				continue;
			}
		}
		if (__atomic_exchange_n(&p->used, 0, __ATOMIC_RELAXED)) {
			if (!victim)
				victim = p;
			continue;
		}
		victim = p;
		break;
	}
	int zero = 0;
	if (!victim)
		return NULL;
	if (!__atomic_compare_exchange_n(&victim->refs, &zero, FREE, false, __ATOMIC_ACQUIRE,
					 __ATOMIC_RELAXED)) {
		*held = true; /* taken meanwhile, by a reader or a lookup */
		return NULL;
	}
	unlink_entry(victim);
	reg.n_traffic--;
	reg.n_live--;
	__atomic_add_fetch(&reg.evicted, 1, __ATOMIC_RELAXED);
	return victim;
}

/* A status reader (project_each) holds one entry at a time, for a moment:
 * a sweep can meet each entry just while it is held (or see its victim
 * taken before it can claim it), and find none idle though all are. When a
 * sweep met held entries, it looks again, a few times. With a reader
 * walking all the time, one sweep missed about 1 new name in 1,000-2,000
 * (tests/test_project.c); four, none in 3,000,000. */
#define SWEEPS 4

static struct project *evict_one(void)
{
	for (int i = 0; i < SWEEPS; i++) {
		bool held = false;
		struct project *p = evict_sweep(&held);
		if (p || !held)
			return p;
	}
	return NULL;
}

/* A free entry (refs FREE, in no chain), or NULL at the ceiling or when
 * out of memory. */
static struct project *fresh_entry(void)
{
	if (reg.free) {
		struct project *e = reg.free;
		reg.free = e->free_next;
		return e;
	}
	size_t n = __atomic_load_n(&reg.n_alloc, __ATOMIC_RELAXED);
	if (reg.n_used == n) {
		if (n / CHUNK >= MAX_CHUNKS)
			return NULL;
		struct project *c = calloc(CHUNK, sizeof(*c));
		if (!c)
			return NULL;
		for (size_t i = 0; i < CHUNK; i++)
			c[i].refs = FREE;
		reg.chunks[n / CHUNK] = c;
		/* project_each reads the chunk pointer after this count. */
		__atomic_store_n(&reg.n_alloc, n + CHUNK, __ATOMIC_RELEASE);
	}
	return entry_at(reg.n_used++);
}

static struct project *get_locked(const char *name, size_t len, uint32_t h)
{
	struct project **b = bucket_of(h);
	/* Entries in a chain are live: eviction unlinks under this lock. */
	for (struct project *p = *b; p; p = p->next)
		if (p->hash == h && p->len == len && memcmp(p->name, name, len) == 0) {
			__atomic_add_fetch(&p->refs, 1, __ATOMIC_ACQUIRE);
			return p;
		}
	bool has_mode = reg.has_mode && reg.has_mode(name, len);
	if (!has_mode && reg.n_traffic > reg.limit) {
		/* The limit was lowered: one more idle entry goes each time. */
		struct project *x = evict_one();
		if (x) {
			x->free_next = reg.free;
			reg.free = x;
		}
	}
	struct project *e = NULL;
	if (has_mode || reg.n_traffic < reg.limit)
		e = fresh_entry();
	if (!e && !has_mode)
		e = evict_one();
	if (!e && has_mode)
		e = evict_one();  /* the ceiling: a project with a mode goes before a flood name */
	if (!e)
		return NULL;
	__atomic_store_n(&e->hash, h, __ATOMIC_RELAXED);
	e->len = len;
	memcpy(e->name, name, len);
	e->name[len] = '\0';
	e->traffic = !has_mode;
	__atomic_store_n(&e->used, 1, __ATOMIC_RELAXED);
	reg.n_traffic += !has_mode;
	reg.n_live++;
	/* Held by the caller, and live before anyone can find it. */
	__atomic_store_n(&e->refs, 1, __ATOMIC_RELEASE);
	__atomic_store_n(&e->next, *b, __ATOMIC_RELAXED);
	__atomic_store_n(b, e, __ATOMIC_RELEASE);
	return e;
}

/* ---- any thread ---- */

struct project *project_get(const char *name, size_t len)
{
	if (len == 0) {
		__atomic_add_fetch(&none.refs, 1, __ATOMIC_RELAXED);
		return &none;
	}
	if (len > PROJECT_NAME_MAX || !reg.buckets)
		return untracked_get();
	uint32_t h = hash_name(name, len);
	struct project *p = __atomic_load_n(bucket_of(h), __ATOMIC_ACQUIRE);
	for (int steps = 0; p && steps < FAST_STEPS; steps++) {
		if (__atomic_load_n(&p->hash, __ATOMIC_RELAXED) == h && try_hold(p)) {
			if (p->len == len && memcmp(p->name, name, len) == 0) {
				if (!__atomic_load_n(&p->used, __ATOMIC_RELAXED))
					__atomic_store_n(&p->used, 1, __ATOMIC_RELAXED);
				return p;
			}
			project_put(p); /* reused for another name meanwhile */
		}
		p = __atomic_load_n(&p->next, __ATOMIC_ACQUIRE);
	}
	pthread_mutex_lock(&lock);
	p = get_locked(name, len, h);
	pthread_mutex_unlock(&lock);
	return p ? p : untracked_get();
}

const char *project_name(const struct project *p, size_t *len)
{
	if (len)
		*len = p->len;
	return p->name;
}

bool project_is_untracked(const struct project *p)
{
	return p == &untracked;
}

void project_in_flight_add(struct project *p, enum upstream_id id, int delta)
{
	__atomic_add_fetch(&p->in_flight[id], delta, __ATOMIC_RELAXED);
	__atomic_add_fetch(&totals[id], delta, __ATOMIC_RELAXED);
}

int64_t project_in_flight(const struct project *p, enum upstream_id id)
{
	return __atomic_load_n(&p->in_flight[id], __ATOMIC_RELAXED);
}

void project_spooled_add(struct project *p, int delta)
{
	int64_t was = __atomic_fetch_add(&p->spooled, delta, __ATOMIC_ACQ_REL);
	/* Records hold their entry, so the count outlives idle eviction. */
	if (was == 0 && delta > 0)
		__atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
	else if (was > 0 && was + delta <= 0)
		__atomic_sub_fetch(&p->refs, 1, __ATOMIC_RELEASE);
}

int64_t project_spooled(const struct project *p)
{
	return __atomic_load_n(&p->spooled, __ATOMIC_ACQUIRE);
}

int64_t project_in_flight_total(enum upstream_id id)
{
	return __atomic_load_n(&totals[id], __ATOMIC_RELAXED);
}

int64_t project_untracked_in_flight(enum upstream_id id)
{
	return project_in_flight(&untracked, id);
}

void project_registry_stats(struct project_registry_stats *out)
{
	pthread_mutex_lock(&lock);
	out->tracked = reg.n_live;
	out->limit = reg.limit;
	pthread_mutex_unlock(&lock);
	out->evicted = __atomic_load_n(&reg.evicted, __ATOMIC_RELAXED);
	out->untracked_requests = __atomic_load_n(&reg.untracked, __ATOMIC_RELAXED);
}

void project_each(void (*fn)(struct project *p, void *arg), void *arg)
{
	__atomic_add_fetch(&none.refs, 1, __ATOMIC_RELAXED);
	fn(&none, arg);
	project_put(&none);
	size_t n = __atomic_load_n(&reg.n_alloc, __ATOMIC_ACQUIRE);
	for (size_t i = 0; i < n; i++) {
		struct project *p = entry_at(i);
		if (try_hold(p)) {
			fn(p, arg);
			project_put(p);
		}
	}
}
