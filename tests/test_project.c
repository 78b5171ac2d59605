/* tests for proxy/project.c: one entry per name, the limit on projects seen
 * only in traffic (idle ones evicted, held ones never), projects with a mode
 * never refused nor evicted, the untracked bucket and its counters, an
 * entry reused for another name never found under the old one, and
 * lookups, inserts and evictions from several threads at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "project.h"

#define OLD UPSTREAM_OLD
#define NEW UPSTREAM_NEW

/* Names starting with 'm' have their own mode. */
static bool has_mode(const char *name, size_t len)
{
	return len > 0 && name[0] == 'm';
}

static struct project *get(const char *name)
{
	return project_get(name, strlen(name));
}

static int teardown(void **state)
{
	(void)state;
	project_shutdown();
	return 0;
}

struct seen {
	const char *want;
	int found;
	size_t n;
	int64_t in_flight;
};

static void visit(struct project *p, void *arg)
{
	struct seen *s = arg;
	size_t len;
	const char *name = project_name(p, &len);
	s->n++;
	s->in_flight += project_in_flight(p, OLD) + project_in_flight(p, NEW);
	if (s->want && len == strlen(s->want) && memcmp(name, s->want, len) == 0)
		s->found++;
}

static void count_moded(struct project *p, void *arg)
{
	size_t len;
	const char *name = project_name(p, &len);
	((struct seen *)arg)->found += has_mode(name, len);
}

static int tracked_as(const char *name)
{
	struct seen s = { .want = name };
	project_each(visit, &s);
	return s.found;
}

static struct project_registry_stats stats(void)
{
	struct project_registry_stats rs;
	project_registry_stats(&rs);
	return rs;
}

static void test_one_entry_per_name(void **state)
{
	(void)state;
	assert_int_equal(project_init(16, has_mode), 0);
	struct project *a = get("alpha"), *a2 = get("alpha"), *b = get("beta");
	assert_ptr_equal(a, a2);
	assert_ptr_not_equal(a, b);
	size_t len;
	assert_string_equal(project_name(a, &len), "alpha");
	assert_int_equal(len, 5);
	assert_false(project_is_untracked(a));

	struct project *none = project_get("", 0);
	assert_string_equal(project_name(none, &len), "");
	assert_int_equal(len, 0);

	char long_name[PROJECT_NAME_MAX + 2];
	memset(long_name, 'x', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	struct project *u = get(long_name);
	assert_true(project_is_untracked(u));
	assert_int_equal(stats().untracked_requests, 1);
	assert_int_equal(stats().tracked, 2);
	assert_int_equal(stats().limit, 16);
	assert_int_equal(tracked_as("alpha"), 1);
	assert_int_equal(tracked_as(""), 1);   /* the no-project entry */
	for (struct project **p = (struct project *[]){ a, a2, b, none, u, NULL }; *p; p++)
		project_put(*p);
}

static void test_limit_evicts_idle_entries_only(void **state)
{
	(void)state;
	assert_int_equal(project_init(3, has_mode), 0);
	struct project *a = get("a"), *b = get("b"), *c = get("c");
	/* every entry is held: a fourth name cannot be tracked */
	struct project *d = get("d");
	assert_true(project_is_untracked(d));
	project_put(d);
	assert_int_equal(stats().evicted, 0);

	project_put(a);
	d = get("d");
	assert_false(project_is_untracked(d));
	assert_int_equal(stats().evicted, 1);
	assert_int_equal(tracked_as("a"), 0);
	assert_int_equal(tracked_as("b") + tracked_as("c") + tracked_as("d"), 3);
	assert_int_equal(stats().tracked, 3);

	/* a comes back: b, c and d are held, so it is untracked again */
	a = get("a");
	assert_true(project_is_untracked(a));
	project_put(a);
	project_put(b);
	project_put(c);
	project_put(d);

	/* a raised limit takes new names without evicting */
	project_set_limit(5);
	struct project *e = get("e"), *f = get("f");
	assert_false(project_is_untracked(e) || project_is_untracked(f));
	assert_int_equal(stats().evicted, 1);
	assert_int_equal(stats().tracked, 5);
	project_put(e);
	project_put(f);

	/* a lowered limit: each new name lets one more idle entry go */
	project_set_limit(2);
	char name[8];
	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "g%d", i);
		struct project *g = get(name);
		assert_false(project_is_untracked(g));
		project_put(g);
		assert_int_equal(stats().tracked, (size_t)(4 - i));
	}
	assert_int_equal(stats().tracked, 2);
	struct project *g = get("h");
	project_put(g);
	assert_int_equal(stats().tracked, 2);
}

/* An evicted entry reused for another name must not answer to the old one:
 * the lookup checks the name after taking its reference. */
static void test_reused_entry_not_found_under_old_name(void **state)
{
	(void)state;
	assert_int_equal(project_init(1, has_mode), 0);
	struct project *a = get("aa");
	project_put(a);
	struct project *b = get("bb");
	assert_ptr_equal(a, b);                  /* the same memory, reused */
	assert_string_equal(project_name(b, NULL), "bb");
	struct project *a2 = get("aa");          /* bb held: aa cannot be tracked */
	assert_ptr_not_equal(a2, b);
	assert_true(project_is_untracked(a2));
	project_put(a2);
	project_put(b);
}

static void test_projects_with_a_mode_are_never_refused_nor_evicted(void **state)
{
	(void)state;
	enum { MODED = 12000, FLOOD = 2000 };   /* past 10,000 projects with a mode */
	assert_int_equal(project_init(2, has_mode), 0);
	char name[32];
	for (int i = 0; i < MODED; i++) {
		snprintf(name, sizeof(name), "m%d", i);
		struct project *p = get(name);
		assert_false(project_is_untracked(p));
		project_put(p);
	}
	for (int i = 0; i < FLOOD; i++) {
		snprintf(name, sizeof(name), "flood%d", i);
		struct project *p = get(name);
		assert_false(project_is_untracked(p));   /* an idle flood name made room */
		project_put(p);
	}
	struct project_registry_stats rs = stats();
	assert_int_equal(rs.untracked_requests, 0);
	assert_true(rs.tracked <= MODED + 2);
	assert_true(rs.evicted >= FLOOD - 2);
	struct seen s = { 0 };
	project_each(count_moded, &s);
	assert_int_equal(s.found, MODED);   /* names are unique: each one once */
	/* with both traffic entries held, a project with a mode still gets one */
	struct project *x = get("x"), *y = get("y");
	struct project *m = get("mnew");
	assert_false(project_is_untracked(m));
	project_put(m);
	project_put(x);
	project_put(y);
}

static void test_in_flight_counters(void **state)
{
	(void)state;
	assert_int_equal(project_init(1, has_mode), 0);
	struct project *a = get("a"), *b = get("b");
	assert_true(project_is_untracked(b));
	project_in_flight_add(a, OLD, +1);
	project_in_flight_add(b, NEW, +1);
	project_in_flight_add(b, NEW, +1);
	assert_int_equal(project_in_flight(a, OLD), 1);
	assert_int_equal(project_in_flight_total(OLD), 1);
	assert_int_equal(project_in_flight_total(NEW), 2);
	assert_int_equal(project_untracked_in_flight(NEW), 2);
	assert_int_equal(project_untracked_in_flight(OLD), 0);
	struct seen s = { 0 };
	project_each(visit, &s);
	assert_int_equal(s.in_flight, 1);        /* the untracked bucket is not an entry */
	project_in_flight_add(a, OLD, -1);
	project_in_flight_add(b, NEW, -2);
	assert_int_equal(project_in_flight_total(OLD) + project_in_flight_total(NEW), 0);
	project_put(a);
	project_put(b);
}

/* ---- threads ---- */

#define THREADS 4
#define NAMES 48
#define ITERATIONS 200000
#define SECONDS 3.0

static char names[NAMES][16];
static int errors, workers_done;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A worker: look a random name up, check the entry is that name's, count it
 * in flight while it holds it, let go. */
static void *worker(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	double end = now_s() + SECONDS;
	for (int i = 0; i < ITERATIONS && (i % 1024 || now_s() < end); i++) {
		const char *name = names[rand_r(&seed) % NAMES];
		size_t len = strlen(name);
		struct project *p = project_get(name, len);
		size_t got;
		const char *pn = project_name(p, &got);
		if (!project_is_untracked(p) && (got != len || memcmp(pn, name, len) != 0))
			__atomic_add_fetch(&errors, 1, __ATOMIC_RELAXED);
		enum upstream_id id = i & 1 ? OLD : NEW;
		project_in_flight_add(p, id, +1);
		if (project_in_flight(p, id) < 1)
			__atomic_add_fetch(&errors, 1, __ATOMIC_RELAXED);
		pn = project_name(p, &got);   /* still its name while held */
		if (!project_is_untracked(p) && (got != len || memcmp(pn, name, len) != 0))
			__atomic_add_fetch(&errors, 1, __ATOMIC_RELAXED);
		project_in_flight_add(p, id, -1);
		project_put(p);
	}
	__atomic_add_fetch(&workers_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void visit_nothing(struct project *p, void *arg)
{
	(void)p;
	(void)arg;
}

static void check_entry(struct project *p, void *arg)
{
	(void)arg;
	size_t len;
	const char *name = project_name(p, &len);
	bool known = len == 0;
	for (int i = 0; !known && i < NAMES; i++)
		known = strlen(names[i]) == len && memcmp(names[i], name, len) == 0;
	int64_t n = project_in_flight(p, OLD) + project_in_flight(p, NEW);
	if (!known || n < 0 || n > THREADS)
		__atomic_add_fetch(&errors, 1, __ATOMIC_RELAXED);
}

static void test_threads_lookup_insert_evict(void **state)
{
	(void)state;
	/* 8 entries for 40 traffic names: constant eviction and reuse */
	assert_int_equal(project_init(8, has_mode), 0);
	for (int i = 0; i < NAMES; i++)
		snprintf(names[i], sizeof(names[i]), i < 8 ? "mode%d" : "name%d", i);
	errors = 0;
	workers_done = 0;
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1)), 0);
	/* the control thread's part: status walks while the workers run */
	double end = now_s() + SECONDS + 5;
	int walks = 0;
	while (__atomic_load_n(&workers_done, __ATOMIC_ACQUIRE) < THREADS && now_s() < end) {
		project_each(check_entry, NULL);
		struct project_registry_stats rs = stats();
		if (rs.tracked > 8 + 8)
			__atomic_add_fetch(&errors, 1, __ATOMIC_RELAXED);
		walks++;
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(errors, 0);
	assert_true(walks > 0);
	assert_int_equal(project_in_flight_total(OLD), 0);
	assert_int_equal(project_in_flight_total(NEW), 0);
	struct seen s = { 0 };
	project_each(visit, &s);
	assert_int_equal(s.in_flight, 0);
	struct project_registry_stats rs = stats();
	assert_true(rs.evicted > 0);
	/* every project with a mode was looked up, and none was evicted */
	for (int i = 0; i < 8; i++)
		assert_int_equal(tracked_as(names[i]), 1);
	/* nothing is held any more: every traffic entry can be evicted */
	for (int i = 0; i < 8; i++) {
		char n[16];
		snprintf(n, sizeof(n), "after%d", i);
		struct project *p = get(n);
		assert_false(project_is_untracked(p));
		project_put(p);
	}
}

/* A status reader walks the registry all the time (project_each holds each
 * entry for a moment while it reads it): a new name must still find an
 * idle entry to take when every other entry is idle. Without a second
 * look, a sweep could meet each entry just while the reader held it. */
static int reader_stop;

static void *reader(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&reader_stop, __ATOMIC_ACQUIRE))
		project_each(visit_nothing, NULL);
	return NULL;
}

static void test_a_status_reader_does_not_make_names_untracked(void **state)
{
	(void)state;
	assert_int_equal(project_init(2, has_mode), 0);
	reader_stop = 0;
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, reader, NULL), 0);
	int untracked = 0, i = 0;
	double end = now_s() + SECONDS;
	for (; i < ITERATIONS && (i % 1024 || now_s() < end); i++) {
		char n[16];
		snprintf(n, sizeof(n), "n%d", i);
		struct project *p = get(n);
		untracked += project_is_untracked(p);
		project_put(p);
	}
	__atomic_store_n(&reader_stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	print_message("%d of %d new names untracked\n", untracked, i);
	assert_int_equal(untracked, 0);
}

int main(void)
{
#define TEST(fn) cmocka_unit_test_teardown(fn, teardown)
	const struct CMUnitTest tests[] = {
		TEST(test_one_entry_per_name),
		TEST(test_limit_evicts_idle_entries_only),
		TEST(test_reused_entry_not_found_under_old_name),
		TEST(test_projects_with_a_mode_are_never_refused_nor_evicted),
		TEST(test_in_flight_counters),
		TEST(test_threads_lookup_insert_evict),
		TEST(test_a_status_reader_does_not_make_names_untracked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
