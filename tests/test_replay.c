/* tests for proxy/replay.c's pure part: the backoff, Retry-After and which
 * answers are tried again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <time.h>

#include "replay.h"

static void test_backoff_doubles_to_max_with_jitter(void **state)
{
	(void)state;
	assert_true(replay_backoff(1, 300, 1, 0.5) == 1.0);
	assert_true(replay_backoff(1, 300, 2, 0.5) == 2.0);
	assert_true(replay_backoff(1, 300, 5, 0.5) == 16.0);
	assert_true(replay_backoff(1, 300, 20, 0.5) == 300.0);
	assert_true(replay_backoff(1, 300, 1000000, 0.5) == 300.0); /* no overflow */
	assert_true(replay_backoff(1, 300, 1, 0) == 0.75);
	assert_true(replay_backoff(1, 300, 1, 1) == 1.25);
}

static void test_retry_after(void **state)
{
	(void)state;
	time_t now = 1796396400; /* 2026-12-04T15:00:00Z */
	assert_true(replay_retry_after("1", 1, now) == 1.0);
	assert_true(replay_retry_after(" 120 ", 5, now) == 120.0);
	assert_true(replay_retry_after("99999999", 8, now) == 86400.0);
	const char *date = "Fri, 04 Dec 2026 15:00:30 GMT";
	assert_true(replay_retry_after(date, strlen(date), now) == 30.0);
	const char *past = "Fri, 04 Dec 2026 14:00:00 GMT";
	assert_true(replay_retry_after(past, strlen(past), now) == 0.0);
	assert_true(replay_retry_after("", 0, now) < 0);
	assert_true(replay_retry_after("-1", 2, now) < 0);
	assert_true(replay_retry_after("1.5", 3, now) < 0);
	assert_true(replay_retry_after("soon", 4, now) < 0);
	const char *junk = "Fri, 04 Dec 2026 15:00:30 GMT x";
	assert_true(replay_retry_after(junk, strlen(junk), now) < 0);
}

static void test_retryable(void **state)
{
	(void)state;
	const int again[] = { 0, 408, 423, 425, 429, 500, 502, 503, 504, 599 };
	const int dead[] = { -1, 300, 301, 400, 401, 403, 404, 409, 413, 422 };
	for (size_t i = 0; i < sizeof(again) / sizeof(again[0]); i++)
		assert_true(replay_retryable(again[i]));
	for (size_t i = 0; i < sizeof(dead) / sizeof(dead[0]); i++)
		assert_false(replay_retryable(dead[i]));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff_doubles_to_max_with_jitter),
		cmocka_unit_test(test_retry_after),
		cmocka_unit_test(test_retryable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
