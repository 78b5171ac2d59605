/* tests for proxy/duration.c: seconds to timevals, timespec differences. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <math.h>

#include "duration.h"

static void assert_tv(struct timeval tv, long sec, long usec)
{
	if (tv.tv_sec != sec || tv.tv_usec != usec)
		fail_msg("got {%ld, %ld}, want {%ld, %ld}", (long)tv.tv_sec, (long)tv.tv_usec, sec,
			 usec);
}

static void test_tv_whole_and_fractions(void **state)
{
	(void)state;
	assert_tv(duration_tv(0), 0, 0);
	assert_tv(duration_tv(10), 10, 0);
	assert_tv(duration_tv(2.5), 2, 500000);
	assert_tv(duration_tv(0.020), 0, 20000);
	assert_tv(duration_tv(0.001), 0, 1000);
	assert_tv(duration_tv(30.000001), 30, 1);
}

/* Binary fractions just below the decimal: rounded, not truncated. */
static void test_tv_rounds_to_the_microsecond(void **state)
{
	(void)state;
	assert_tv(duration_tv(0.3), 0, 300000);
	assert_tv(duration_tv(0.7), 0, 700000);
	assert_tv(duration_tv(1.1), 1, 100000);
	assert_tv(duration_tv(0.9999999), 1, 0);   /* carries into the seconds */
	assert_tv(duration_tv(0.0000004), 0, 0);
}

static void test_tv_out_of_range(void **state)
{
	(void)state;
	assert_tv(duration_tv(-1), 0, 0);
	assert_tv(duration_tv(-0.5), 0, 0);
	assert_tv(duration_tv(NAN), 0, 0);
	assert_tv(duration_tv(1e300), INT_MAX, 0);
	assert_tv(duration_tv(INFINITY), INT_MAX, 0);
}

static void test_ms_between(void **state)
{
	(void)state;
	struct timespec a = { 10, 500000000 }, b = { 12, 250000000 };
	assert_float_equal(duration_ms_between(&a, &b), 1750.0, 1e-9);
	assert_float_equal(duration_ms_between(&b, &a), -1750.0, 1e-9);
	assert_float_equal(duration_ms_between(&a, &a), 0.0, 1e-9);
	struct timespec c = { 10, 500000001 };
	assert_float_equal(duration_ms_between(&a, &c), 0.000001, 1e-12);
	/* nanoseconds borrow across the second */
	struct timespec d = { 11, 0 };
	assert_float_equal(duration_ms_between(&a, &d), 500.0, 1e-9);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tv_whole_and_fractions),
		cmocka_unit_test(test_tv_rounds_to_the_microsecond),
		cmocka_unit_test(test_tv_out_of_range),
		cmocka_unit_test(test_ms_between),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
