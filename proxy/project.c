/* project: a fixed, lock-free registry of projects and their counters. */
#include "project.h"

#include <string.h>

static struct project table[PROJECT_SLOTS];
static struct project overflow = { .ready = 2, .len = 6, .name = "~other" };
static int64_t totals[UPSTREAM_COUNT];

static uint32_t hash_name(const char *s, size_t len)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (size_t i = 0; i < len; i++) {
		h ^= (uint8_t)s[i];
		h *= 16777619u;
	}
	return h;
}

static bool same(const struct project *p, uint32_t h, const char *name, size_t len)
{
	return p->hash == h && p->len == len && memcmp(p->name, name, len) == 0;
}

struct project *project_get(const char *name, size_t len)
{
	if (len > PROJECT_NAME_MAX)
		return &overflow;
	uint32_t h = hash_name(name, len);
	for (uint32_t i = 0; i < PROJECT_SLOTS; i++) {
		struct project *p = &table[(h + i) & (PROJECT_SLOTS - 1)];
		int state = __atomic_load_n(&p->ready, __ATOMIC_ACQUIRE);
		if (state == 0) {
			int expected = 0;
			if (__atomic_compare_exchange_n(&p->ready, &expected, 1, false,
							__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
				p->hash = h;
				p->len = len;
				memcpy(p->name, name, len);
				p->name[len] = '\0';
				__atomic_store_n(&p->ready, 2, __ATOMIC_RELEASE);
				return p;
			}
			state = expected;
		}
		/* Another thread is writing this slot: it is at most a memcpy away. */
		while (state == 1)
			state = __atomic_load_n(&p->ready, __ATOMIC_ACQUIRE);
		if (same(p, h, name, len))
			return p;
	}
	return &overflow;
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

int64_t project_in_flight_total(enum upstream_id id)
{
	return __atomic_load_n(&totals[id], __ATOMIC_RELAXED);
}

void project_each(void (*fn)(struct project *p, void *arg), void *arg)
{
	for (size_t i = 0; i < PROJECT_SLOTS; i++)
		if (__atomic_load_n(&table[i].ready, __ATOMIC_ACQUIRE) == 2)
			fn(&table[i], arg);
	if (overflow.in_flight[0] || overflow.in_flight[1])
		fn(&overflow, arg);
}
