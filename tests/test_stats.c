/* tests for proxy/stats.c: the answer counters, the duration buckets, the
 * route-name table; and metrics_label's escaping (proxy/metrics.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "metrics.h"
#include "stats.h"

static struct stats s;

static void test_answers_by_class_and_unanswered(void **state)
{
	(void)state;
	memset(&s, 0, sizeof s);
	stats_answer(&s, 3, 1, 201, -1);
	stats_answer(&s, 3, 1, 204, -1);
	stats_answer(&s, 3, STATS_LOCAL, 503, -1);
	stats_answer(&s, 0, STATS_LOCAL, 400, -1);
	stats_answer(&s, 3, 1, 0, -1);            /* the client left */
	stats_answer(&s, 3, 1, 600, -1);          /* not a status */
	stats_answer(&s, 999, 7, 200, -1);        /* out of range: no route, local */
	assert_int_equal(s.answers[3][1][1], 2);
	assert_int_equal(s.answers[3][STATS_LOCAL][4], 1);
	assert_int_equal(s.answers[0][STATS_LOCAL][3], 1);
	assert_int_equal(s.answers[0][STATS_LOCAL][1], 1);
	assert_int_equal(s.unanswered, 2);
	/* no duration for a local answer */
	assert_int_equal(s.duration_bucket[0][0] + s.duration_bucket[1][0], 0);
}

static void test_duration_buckets(void **state)
{
	(void)state;
	memset(&s, 0, sizeof s);
	stats_answer(&s, 1, 0, 200, 5000);       /* 0.005 s: le="0.005" */
	stats_answer(&s, 1, 0, 200, 5001);       /* just above: le="0.01" */
	stats_answer(&s, 1, 0, 502, 200000000);  /* 200 s: +Inf only */
	stats_answer(&s, 1, STATS_LOCAL, 200, 1000);
	assert_int_equal(s.duration_bucket[0][0], 1);
	assert_int_equal(s.duration_bucket[0][1], 1);
	assert_int_equal(s.duration_bucket[0][STATS_BUCKETS], 1);
	assert_int_equal(s.duration_us[0], 5000 + 5001 + 200000000);
	struct stats sum = { 0 };
	stats_sum(&sum, &s);
	stats_sum(&sum, &s);
	assert_int_equal(sum.duration_bucket[0][1], 2);
	assert_int_equal(sum.answers[1][0][1], 4);
}

static void test_route_names(void **state)
{
	(void)state;
	assert_string_equal(stats_route_name(0), "-");
	unsigned a = stats_route_id("submit"), b = stats_route_id("restore");
	assert_true(a > 0 && b > 0 && a != b);
	assert_int_equal(stats_route_id("submit"), a);   /* a reload keeps the slot */
	assert_string_equal(stats_route_name(a), "submit");
	char name[32];
	unsigned last = 0;
	for (int i = 0; i < 2 * STATS_ROUTES; i++) {
		snprintf(name, sizeof name, "r%d", i);
		last = stats_route_id(name);
	}
	assert_int_equal(last, STATS_ROUTES - 1);            /* the shared slot */
	assert_string_equal(stats_route_name(STATS_ROUTES - 1), "other");
	assert_null(stats_route_name(STATS_ROUTES));
}

static void test_label_escaping(void **state)
{
	(void)state;
	struct evbuffer *b = evbuffer_new();
	assert_int_equal(metrics_label(b, "a\"b\\c\nd e"), 0);
	size_t n = evbuffer_get_length(b);
	char out[64] = { 0 };
	evbuffer_remove(b, out, n);
	assert_string_equal(out, "a\\\"b\\\\c\\nd e");
	evbuffer_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_answers_by_class_and_unanswered),
		cmocka_unit_test(test_duration_buckets),
		cmocka_unit_test(test_route_names),
		cmocka_unit_test(test_label_escaping),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
