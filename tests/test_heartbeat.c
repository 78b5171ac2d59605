/* tests for proxy/heartbeat.c: the heartbeat query string, what it takes
 * (decoding, bounds) and what it refuses (bad escapes, repeats, control
 * characters, numbers out of range). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "heartbeat.h"

static struct heartbeat parsed(const char *q)
{
	struct heartbeat hb;
	if (heartbeat_parse_query(q, strlen(q), &hb) != 0)
		fail_msg("query '%s' refused: %s", q, hb.error ? hb.error : "(no reason)");
	assert_null(hb.error);
	return hb;
}

/* Q is refused with a reason holding WANT, and OUT keeps nothing of it. */
static void assert_refused_n(const char *q, size_t len, const char *want)
{
	struct heartbeat hb;
	memset(&hb, 0x5a, sizeof(hb));
	if (heartbeat_parse_query(q, len, &hb) != -1)
		fail_msg("query '%.*s' accepted", (int)len, q);
	assert_non_null(hb.error);
	if (!strstr(hb.error, want))
		fail_msg("query '%.*s': reason '%s', want '%s'", (int)len, q, hb.error, want);
	assert_false(hb.has_device_id);
	assert_false(hb.has_num_unsent_forms);
	assert_false(hb.has_app_version);
	assert_false(hb.has_cc_version);
	assert_int_equal(hb.device_id[0], 0);
	assert_int_equal(hb.num_unsent_forms, 0);
}

static void assert_refused(const char *q, const char *want)
{
	assert_refused_n(q, strlen(q), want);
}

static void test_commcare_heartbeat(void **state)
{
	(void)state;
	struct heartbeat hb = parsed("device_id=353xxx-ab12&app_version=57&num_unsent_forms=3"
				     "&num_quarantined_forms=0&last_sync_time=2026-12-01T02%3A00%3A00Z"
				     "&cc_version=2.54.1");
	assert_true(hb.has_device_id);
	assert_string_equal(hb.device_id, "353xxx-ab12");
	assert_int_equal(hb.device_id_len, 11);
	assert_true(hb.has_num_unsent_forms);
	assert_int_equal(hb.num_unsent_forms, 3);
	assert_true(hb.has_app_version);
	assert_string_equal(hb.app_version, "57");
	assert_true(hb.has_cc_version);
	assert_string_equal(hb.cc_version, "2.54.1");
}

static void test_absent_fields(void **state)
{
	(void)state;
	struct heartbeat hb = parsed("");
	assert_false(hb.has_device_id);
	assert_false(hb.has_num_unsent_forms);
	hb = parsed("num_unsent_forms=0");
	assert_false(hb.has_device_id);
	assert_true(hb.has_num_unsent_forms);
	assert_int_equal(hb.num_unsent_forms, 0);
	hb = parsed("device_id=p1");
	assert_true(hb.has_device_id);
	assert_false(hb.has_num_unsent_forms);
	assert_false(hb.has_app_version);
	/* an empty version is as if not sent */
	hb = parsed("device_id=p1&app_version=&cc_version");
	assert_false(hb.has_app_version);
	assert_false(hb.has_cc_version);
}

static void test_decoding(void **state)
{
	(void)state;
	struct heartbeat hb = parsed("device_id=Tab+of+Ana%20%C3%A9%2b%26%3D&num_unsent_forms=%31%32");
	assert_string_equal(hb.device_id, "Tab of Ana \xc3\xa9+&=");
	assert_int_equal(hb.num_unsent_forms, 12);
	/* names are decoded too */
	hb = parsed("device%5Fid=x&num%5funsent%5fforms=7");
	assert_string_equal(hb.device_id, "x");
	assert_int_equal(hb.num_unsent_forms, 7);
	/* leading zeros are still a number */
	hb = parsed("num_unsent_forms=0000000000000042");
	assert_int_equal(hb.num_unsent_forms, 42);
}

static void test_tolerated_separators_and_unknowns(void **state)
{
	(void)state;
	struct heartbeat hb = parsed("&&device_id=d&&&num_unsent_forms=5&&");
	assert_string_equal(hb.device_id, "d");
	assert_int_equal(hb.num_unsent_forms, 5);
	hb = parsed("x=1&flag&=&=v&device_id=a=b&y=%00&num_unsent_forms=1&device=zz&DEVICE_ID=q");
	assert_string_equal(hb.device_id, "a=b");      /* the first '=' splits */
	assert_int_equal(hb.num_unsent_forms, 1);
	/* the length is LEN, not a NUL */
	const char q[] = "device_id=abc&num_unsent_forms=9";
	struct heartbeat h2;
	assert_int_equal(heartbeat_parse_query(q, strlen("device_id=ab"), &h2), 0);
	assert_string_equal(h2.device_id, "ab");
	assert_false(h2.has_num_unsent_forms);
}

static void test_bad_escapes(void **state)
{
	(void)state;
	assert_refused("device_id=a%2", "percent escape");
	assert_refused("device_id=a%", "percent escape");
	assert_refused("device_id=%zz", "percent escape");
	assert_refused("num_unsent_forms=%g1", "percent escape");
	assert_refused("device_id=ok&other=%x", "percent escape");   /* even in an unknown one */
	assert_refused("bad%name=1&device_id=ok", "percent escape");
	assert_refused("device_id=ok&app_version=1%", "percent escape");
	/* an escape cut by LEN */
	assert_refused_n("device_id=a%41", strlen("device_id=a%4"), "percent escape");
}

static void test_device_id_bounds(void **state)
{
	(void)state;
	char q[512];
	char id[HEARTBEAT_DEVICE_ID_MAX + 2];
	memset(id, 'd', sizeof(id));
	id[HEARTBEAT_DEVICE_ID_MAX] = '\0';
	snprintf(q, sizeof(q), "device_id=%s", id);
	struct heartbeat hb = parsed(q);
	assert_int_equal(hb.device_id_len, HEARTBEAT_DEVICE_ID_MAX);
	assert_string_equal(hb.device_id, id);

	id[HEARTBEAT_DEVICE_ID_MAX] = 'd';
	id[HEARTBEAT_DEVICE_ID_MAX + 1] = '\0';
	snprintf(q, sizeof(q), "device_id=%s", id);
	assert_refused(q, "device_id too long");
	/* the bound is on decoded bytes: 128 escapes are 128 bytes */
	char *p = q + sprintf(q, "device_id=");
	for (int i = 0; i < HEARTBEAT_DEVICE_ID_MAX; i++)
		p += sprintf(p, "%%41");
	hb = parsed(q);
	assert_int_equal(hb.device_id_len, HEARTBEAT_DEVICE_ID_MAX);
	assert_refused("device_id=", "empty device_id");
	assert_refused("device_id", "empty device_id");
}

static void test_control_characters_and_bad_utf8(void **state)
{
	(void)state;
	assert_refused("device_id=a%0Ab", "control characters");
	assert_refused("device_id=a%0db", "control characters");
	assert_refused("device_id=%00", "control characters");
	assert_refused("device_id=a%09", "control characters");
	assert_refused("device_id=a%7F", "control characters");
	assert_refused("device_id=%C2%85", "control characters");      /* C1 NEL */
	assert_refused_n("device_id=a\nb", 12, "control characters"); /* raw, not escaped */
	assert_refused("device_id=%FF", "UTF-8");
	assert_refused("device_id=%C3", "UTF-8");                       /* cut short */
	assert_refused("device_id=%C0%AF", "UTF-8");                    /* overlong '/' */
	assert_refused("device_id=%ED%A0%80", "UTF-8");                 /* a surrogate */
	assert_refused("device_id=%F4%90%80%80", "UTF-8");              /* past U+10FFFF */
	assert_refused("app_version=1%0A2", "app_version is not");
	assert_refused("cc_version=%1b[31m", "cc_version is not");
	struct heartbeat hb = parsed("device_id=%F0%9F%93%B1%E2%82%AC");
	assert_string_equal(hb.device_id, "\xf0\x9f\x93\xb1\xe2\x82\xac");
}

static void test_num_unsent_forms(void **state)
{
	(void)state;
	char q[64];
	snprintf(q, sizeof(q), "num_unsent_forms=%u", HEARTBEAT_UNSENT_MAX);
	assert_int_equal(parsed(q).num_unsent_forms, HEARTBEAT_UNSENT_MAX);
	snprintf(q, sizeof(q), "num_unsent_forms=%u", HEARTBEAT_UNSENT_MAX + 1);
	assert_refused(q, "out of range");
	assert_refused("num_unsent_forms=4294967296", "out of range");    /* 2^32 */
	assert_refused("num_unsent_forms=18446744073709551617", "out of range");
	assert_refused("num_unsent_forms=00000000000000000001", "out of range");
	assert_refused("num_unsent_forms=-1", "non-negative integer");
	assert_refused("num_unsent_forms=%2B1", "non-negative integer");
	assert_refused("num_unsent_forms=+1", "non-negative integer");    /* '+' is a space */
	assert_refused("num_unsent_forms=1.5", "non-negative integer");
	assert_refused("num_unsent_forms=0x10", "non-negative integer");
	assert_refused("num_unsent_forms=1e3", "non-negative integer");
	assert_refused("num_unsent_forms=", "empty num_unsent_forms");
	assert_refused("num_unsent_forms", "empty num_unsent_forms");
}

static void test_repeated_fields(void **state)
{
	(void)state;
	assert_refused("num_unsent_forms=1&num_unsent_forms=900", "repeated");
	assert_refused("device_id=a&device_id=b", "repeated");
	assert_refused("device_id=a&device%5Fid=a", "repeated");
	assert_refused("app_version=1&app_version=2", "repeated");
	/* unknown names may repeat */
	assert_int_equal(parsed("x=1&x=2&device_id=a").device_id_len, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_commcare_heartbeat),
		cmocka_unit_test(test_absent_fields),
		cmocka_unit_test(test_decoding),
		cmocka_unit_test(test_tolerated_separators_and_unknowns),
		cmocka_unit_test(test_bad_escapes),
		cmocka_unit_test(test_device_id_bounds),
		cmocka_unit_test(test_control_characters_and_bad_utf8),
		cmocka_unit_test(test_num_unsent_forms),
		cmocka_unit_test(test_repeated_fields),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
