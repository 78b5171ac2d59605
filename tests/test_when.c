/* tests for proxy/when.c: when_parse, the times an operator gives to
 * --at and --until (RFC 3339 or +offset), at their edges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <time.h>

#include "when.h"

/* 2026-12-04T12:00:00Z */
#define NOW ((time_t)1796385600)

/* TEXT as an operator's --at at NOW; fails the test with the reason if refused. */
static int parse(const char *text, time_t now, time_t *out)
{
	const char *why = NULL;
	int rc = when_parse(text, now, true, out, &why);
	if (rc < 0)
		fail_msg("'%s' refused: %s", text, why ? why : "(no reason)");
	return rc;
}

static void test_offsets(void **state)
{
	(void)state;
	time_t t = 0;
	assert_int_equal(parse("+10m", NOW, &t), 0);
	assert_int_equal(t, NOW + 600);
	assert_int_equal(parse("+90s", NOW, &t), 0);
	assert_int_equal(t, NOW + 90);
	assert_int_equal(parse("+90", NOW, &t), 0);
	assert_int_equal(t, NOW + 90);
	assert_int_equal(parse("+2h", NOW, &t), 0);
	assert_int_equal(t, NOW + 7200);
	assert_int_equal(parse("+1d", NOW, &t), 0);
	assert_int_equal(t, NOW + 86400);
	assert_int_equal(parse("+1.5h", NOW, &t), 0);
	assert_int_equal(t, NOW + 5400);
	assert_int_equal(parse("+366d", NOW, &t), 0);
	assert_int_equal(t, NOW + 366 * 86400);
}

static void test_offsets_out_of_range(void **state)
{
	(void)state;
	time_t t = 0;
	const char *why = NULL;
	static const char *const bad[] = {
		"+99999999999999999999h", "+9999999999h", "+367d", "+8785h", "+31622401",
		"+1e300s", "+inf", "+nan", "+0x10m", "+-5m", "+ 5m", "+5 m", "+5mm", "+5w", "+",
		"+.", "+5.", "++5m", "-5m", "",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = when_parse(bad[i], NOW, true, &t, &why);
		if (rc == 0)
			fail_msg("'%s' accepted as %lld", bad[i], (long long)t);
		assert_non_null(why);
	}
}

static void test_absolute(void **state)
{
	(void)state;
	time_t t = 0;
	assert_int_equal(parse("2026-12-05T02:00:00Z", NOW, &t), 0);
	assert_int_equal(t, NOW + 14 * 3600);
	assert_int_equal(parse("2026-12-05T04:00:00+02:00", NOW, &t), 0);
	assert_int_equal(t, NOW + 14 * 3600);
	assert_int_equal(parse("2026-12-04T23:30:00-02:30", NOW, &t), 0);
	assert_int_equal(t, NOW + 14 * 3600);
	assert_int_equal(parse("2026-12-05t02:00:00.250z", NOW, &t), 0);
	assert_int_equal(t, NOW + 14 * 3600);
	assert_int_equal(parse("2027-12-05T12:00:00Z", NOW, &t), 0); /* 366 days */
}

static void test_absolute_refused(void **state)
{
	(void)state;
	time_t t = 0;
	const char *why = NULL;
	static const char *const bad[] = {
		"2026-12-04T11:59:59Z",          /* the past */
		"2020-01-01T00:00:00Z",
		"2027-12-05T12:00:01Z",          /* more than 366 days ahead */
		"99999999-12-01T00:00:00Z",
		"2026-13-01T00:00:00Z", "2026-12-32T00:00:00Z", "2027-02-29T00:00:00Z",
		"2026-12-05T24:00:00Z", "2026-12-05T02:60:00Z", "2026-12-05T02:00:61Z",
		"2026-12-05T02:00:00", "2026-12-05T02:00:00+2:00", "2026-12-05T02:00:00+24:00",
		"2026-12-05T02:00:00+02:60", "2026-12-05T02:00:00Zjunk", "2026-12-05 02:00:00Z",
		" 2026-12-05T02:00:00Z", "2026-12-5T02:00:00Z", "2026-12-05T2:00:00Z",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = when_parse(bad[i], NOW, true, &t, &why);
		if (rc == 0)
			fail_msg("'%s' accepted as %lld", bad[i], (long long)t);
		assert_non_null(why);
	}
}

/* The reasons name what is wrong; a stored schedule reads back when due. */
static void test_reasons_and_stored_times(void **state)
{
	(void)state;
	time_t t = 0;
	const char *why = NULL;
	assert_int_equal(when_parse("2026-12-04T11:00:00Z", NOW, true, &t, &why), -1);
	assert_string_equal(why, "in the past");
	assert_int_equal(when_parse("+9999999999h", NOW, true, &t, &why), -1);
	assert_string_equal(why, "more than 366 days ahead");
	assert_int_equal(when_parse("2030-01-01T00:00:00Z", NOW, true, &t, &why), -1);
	assert_string_equal(why, "more than 366 days ahead");
	assert_int_equal(when_parse("tomorrow", NOW, true, &t, &why), -1);
	assert_true(strncmp(why, "not a time", 10) == 0);
	/* FUTURE false: a due schedule entry, written by state_time_json */
	assert_int_equal(when_parse("2026-12-04T11:00:00Z", NOW, false, &t, NULL), 0);
	assert_int_equal(t, NOW - 3600);
	assert_int_equal(when_parse("9999-12-31T23:59:59Z", NOW, false, &t, NULL), 0);
	assert_int_equal(when_parse("1969-12-31T23:59:59Z", NOW, false, &t, NULL), -1);
	/* a leap second or an offset past the last four-digit year, or before
	 * the epoch (found by fuzz_time: status could not show it) */
	assert_int_equal(when_parse("9999-12-31T23:59:60Z", NOW, false, &t, NULL), -1);
	assert_int_equal(when_parse("9999-12-31T23:59:59-00:01", NOW, false, &t, NULL), -1);
	assert_int_equal(when_parse("1970-01-01T00:00:00+00:01", NOW, false, &t, NULL), -1);
	assert_int_equal(when_parse("2026-12-31T23:59:60Z", NOW, false, &t, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_offsets),
		cmocka_unit_test(test_offsets_out_of_range),
		cmocka_unit_test(test_absolute),
		cmocka_unit_test(test_absolute_refused),
		cmocka_unit_test(test_reasons_and_stored_times),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
