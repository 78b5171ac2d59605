/* tests for proxy/conf.c: the reader on its own, without any module's
 * group: typed getters (present, absent, invalid, with the FILE:LINE of
 * the message), sizes, unknown keys and their suggestion, and the order
 * messages are printed in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

#define NAME "t.conf"

/* One text read into a reader; the messages go to a memory stream. */
struct fix {
	struct conf_reader *r;
	config_t lc;
	const config_setting_t *root;
	char *out;
	size_t out_len;
	FILE *errs;
};

static struct fix *fix_new(const char *text)
{
	struct fix *f = calloc(1, sizeof *f);
	assert_non_null(f);
	f->errs = open_memstream(&f->out, &f->out_len);
	assert_non_null(f->errs);
	f->r = conf_reader_new(NAME);
	assert_non_null(f->r);
	assert_int_equal(conf_reader_load(f->r, &f->lc, text, f->errs), 0);
	f->root = config_root_setting(&f->lc);
	return f;
}

/* Flushes the reader; returns what conf_reader_flush() said and leaves
 * every printed line in f->out. */
static bool fix_flush(struct fix *f)
{
	bool failed = conf_reader_flush(f->r, f->errs);
	fflush(f->errs);
	return failed;
}

static void fix_free(struct fix *f)
{
	config_destroy(&f->lc);
	conf_reader_free(f->r);
	fclose(f->errs);
	free(f->out);
	free(f);
}

static const config_setting_t *group(struct fix *f, const char *name)
{
	const config_setting_t *g = config_setting_get_member(f->root, name);
	assert_non_null(g);
	return g;
}

/* Asserts that the flushed output is exactly WANT. */
static void expect_out(struct fix *f, const char *want)
{
	if (strcmp(f->out, want) != 0)
		fail_msg("expected:\n%s\ngot:\n%s", want, f->out);
}

/* ---- integers ---- */

static void test_int(void **state)
{
	(void)state;
	struct fix *f = fix_new("g = {\n"
				"  n = 7;\n"
				"  big = 9000000000L;\n"
				"  s = \"7\";\n"
				"  neg = -1;\n"
				"};\n");
	const config_setting_t *g = group(f, "g");
	long long v = 42;
	assert_int_equal(conf_get_int(f->r, g, "n", 0, 10, &v), 1);
	assert_int_equal(v, 7);
	assert_int_equal(conf_get_int(f->r, g, "big", 0, 9000000000LL, &v), 1);
	assert_true(v == 9000000000LL);

	v = 42;
	assert_int_equal(conf_get_int(f->r, g, "absent", 0, 10, &v), 0);
	assert_int_equal(v, 42);             /* a default survives */
	assert_int_equal(conf_get_int(f->r, NULL, "n", 0, 10, &v), 0);
	assert_int_equal(conf_get_int(f->r, f->root, "g", 0, 10, &v), -1);  /* a group */
	assert_int_equal(v, 42);
	assert_int_equal(conf_get_int(f->r, g, "s", 0, 10, &v), -1);
	assert_int_equal(conf_get_int(f->r, g, "neg", 0, 10, &v), -1);
	assert_int_equal(conf_get_int(f->r, g, "n", 8, 10, &v), -1);
	assert_int_equal(v, 42);             /* untouched when invalid */

	assert_true(fix_flush(f));
	expect_out(f, NAME ":1: g: expected an integer, not a group\n"
		      NAME ":2: g.n: 7 is out of range [8, 10]\n"
		      NAME ":4: g.s: expected an integer, not a string\n"
		      NAME ":5: g.neg: -1 is out of range [0, 10]\n");
	fix_free(f);
}

/* ---- sizes ---- */

static void test_size_suffixes(void **state)
{
	(void)state;
	struct fix *f = fix_new("a = 4096; b = \"4k\"; c = \"32M\"; d = \"2G\"; e = \"8g\";\n"
				"f = \"123\"; g = 0x10; h = 8589934592L; i = \"0\";\n");
	static const struct { const char *key; uint64_t want; } cases[] = {
		{ "a", 4096 }, { "b", 4096 }, { "c", 32ULL << 20 }, { "d", 2ULL << 30 },
		{ "e", 8ULL << 30 }, { "f", 123 }, { "g", 16 }, { "h", 8ULL << 30 }, { "i", 0 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uint64_t v = 1;
		assert_int_equal(conf_get_size(f->r, f->root, cases[i].key, 0, UINT64_MAX, &v), 1);
		assert_true(v == cases[i].want);
	}
	uint64_t v = 5;
	assert_int_equal(conf_get_size(f->r, f->root, "absent", 0, UINT64_MAX, &v), 0);
	assert_true(v == 5);
	assert_false(fix_flush(f));
	expect_out(f, "");
	fix_free(f);
}

static void test_size_invalid(void **state)
{
	(void)state;
	struct fix *f = fix_new("a = \"10X\";\n"
				"b = \"1.5G\";\n"
				"c = \"32 M\";\n"
				"d = \"\";\n"
				"e = \"99999999999999999999\";\n"   /* over 2^64 */
				"f = \"17179869184G\";\n"           /* 2^34 G = 2^64: over */
				"g = -5;\n"
				"h = 1.5;\n"
				"i = 0;\n"
				"j = \"2M\";\n"
				"k = \"17179869183G\";\n");         /* just fits */
	static const char *const bad[] = { "a", "b", "c", "d", "e", "f", "g", "h" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		uint64_t v = 7;
		assert_int_equal(conf_get_size(f->r, f->root, bad[i], 0, UINT64_MAX, &v), -1);
		assert_true(v == 7);
	}
	uint64_t v = 7;
	assert_int_equal(conf_get_size(f->r, f->root, "i", 1, 100, &v), -1);
	assert_int_equal(conf_get_size(f->r, f->root, "j", 1, 1ULL << 20, &v), -1);
	assert_true(v == 7);
	assert_int_equal(conf_get_size(f->r, f->root, "k", 0, UINT64_MAX, &v), 1);
	assert_true(v == 17179869183ULL << 30);

	assert_true(fix_flush(f));
	expect_out(f,
		NAME ":1: a: invalid size \"10X\" (expected bytes, or a whole number with a K, M "
		"or G suffix such as \"32M\")\n"
		NAME ":2: b: invalid size \"1.5G\" (expected bytes, or a whole number with a K, M "
		"or G suffix such as \"32M\")\n"
		NAME ":3: c: invalid size \"32 M\" (expected bytes, or a whole number with a K, M "
		"or G suffix such as \"32M\")\n"
		NAME ":4: d: invalid size \"\" (expected bytes, or a whole number with a K, M or G "
		"suffix such as \"32M\")\n"
		NAME ":5: e: invalid size \"99999999999999999999\" (expected bytes, or a whole "
		"number with a K, M or G suffix such as \"32M\")\n"
		NAME ":6: f: invalid size \"17179869184G\" (expected bytes, or a whole number with "
		"a K, M or G suffix such as \"32M\")\n"
		NAME ":7: g: a size cannot be negative (-5)\n"
		NAME ":8: h: expected a size (bytes, or a string such as \"32M\"), not a float\n"
		NAME ":9: i: 0 is below the minimum of 1\n"
		NAME ":10: j: 2M is above the maximum of 1M\n");
	fix_free(f);
}

static void test_size_text(void **state)
{
	(void)state;
	char buf[32];
	assert_string_equal(conf_size_text(1ULL << 30, buf, sizeof buf), "1G");
	assert_string_equal(conf_size_text(32ULL << 20, buf, sizeof buf), "32M");
	assert_string_equal(conf_size_text(4096, buf, sizeof buf), "4K");
	assert_string_equal(conf_size_text(1536ULL << 20, buf, sizeof buf), "1536M");
	assert_string_equal(conf_size_text(1000, buf, sizeof buf), "1000");
	assert_string_equal(conf_size_text(0, buf, sizeof buf), "0");
}

/* ---- durations, booleans, strings ---- */

static void test_duration(void **state)
{
	(void)state;
	struct fix *f = fix_new("a = 2; b = 0.25;\n"
				"c = \"1s\";\n"
				"d = 100000;\n"
				"e = -0.5;\n");
	double v = 9;
	assert_int_equal(conf_get_duration(f->r, f->root, "a", 0, 10, &v), 1);
	assert_true(v == 2.0);
	assert_int_equal(conf_get_duration(f->r, f->root, "b", 0, 10, &v), 1);
	assert_true(v == 0.25);
	v = 9;
	assert_int_equal(conf_get_duration(f->r, f->root, "absent", 0, 10, &v), 0);
	assert_int_equal(conf_get_duration(f->r, f->root, "c", 0, 10, &v), -1);
	assert_int_equal(conf_get_duration(f->r, f->root, "d", 0, 86400, &v), -1);
	assert_int_equal(conf_get_duration(f->r, f->root, "e", 0, 10, &v), -1);
	assert_true(v == 9);
	assert_true(fix_flush(f));
	expect_out(f, NAME ":2: c: expected a duration in seconds (a number), not a string\n"
		      NAME ":3: d: 100000 seconds is out of range [0, 86400]\n"
		      NAME ":4: e: -0.5 seconds is out of range [0, 10]\n");
	fix_free(f);
}

static void test_bool(void **state)
{
	(void)state;
	struct fix *f = fix_new("yes = true; no = false;\n"
				"text = \"yes\";\n"
				"one = 1;\n");
	bool v = false;
	assert_int_equal(conf_get_bool(f->r, f->root, "yes", &v), 1);
	assert_true(v);
	assert_int_equal(conf_get_bool(f->r, f->root, "no", &v), 1);
	assert_false(v);
	v = true;
	assert_int_equal(conf_get_bool(f->r, f->root, "absent", &v), 0);
	assert_int_equal(conf_get_bool(f->r, f->root, "text", &v), -1);
	assert_int_equal(conf_get_bool(f->r, f->root, "one", &v), -1);
	assert_true(v);
	assert_true(fix_flush(f));
	expect_out(f, NAME ":2: text: expected a boolean (true or false), not a string\n"
		      NAME ":3: one: expected a boolean (true or false), not an integer\n");
	fix_free(f);
}

static void test_string_and_path(void **state)
{
	(void)state;
	struct fix *f = fix_new("g = { s = \"new\"; n = 5; empty = \"\"; };\n");
	const config_setting_t *g = group(f, "g");
	char *v = strdup("old");
	assert_int_equal(conf_get_string(f->r, g, "s", &v), 1);   /* frees "old" */
	assert_string_equal(v, "new");
	assert_int_equal(conf_get_string(f->r, g, "absent", &v), 0);
	assert_string_equal(v, "new");
	assert_int_equal(conf_get_string(f->r, g, "n", &v), -1);
	assert_string_equal(v, "new");
	assert_int_equal(conf_get_string(f->r, g, "empty", &v), 1); /* allowed as a string */
	assert_string_equal(v, "");
	free(v);

	char *p = NULL;
	assert_int_equal(conf_get_path(f->r, g, "s", &p), 1);
	assert_string_equal(p, "new");
	assert_int_equal(conf_get_path(f->r, g, "empty", &p), -1);
	assert_int_equal(conf_get_path(f->r, g, "absent", &p), 0);
	free(p);

	assert_true(fix_flush(f));
	expect_out(f, NAME ":1: g.n: expected a string, not an integer\n"
		      NAME ":1: g.empty: must not be empty\n");
	fix_free(f);
}

static void test_strings(void **state)
{
	(void)state;
	struct fix *f = fix_new("arr = [ \"a\", \"b\" ];\n"
				"list = ( \"c\" );\n"
				"none = [ ];\n"
				"one = \"d\";\n"
				"mixed = ( \"e\",\n"
				"  5 );\n");
	char **v = NULL;
	size_t n = 9;
	assert_int_equal(conf_get_strings(f->r, f->root, "arr", &v, &n), 1);
	assert_int_equal(n, 2);
	assert_string_equal(v[0], "a");
	assert_string_equal(v[1], "b");
	assert_null(v[2]);
	conf_strings_free(v);
	v = NULL;
	assert_int_equal(conf_get_strings(f->r, f->root, "list", &v, NULL), 1);
	assert_string_equal(v[0], "c");
	assert_null(v[1]);
	conf_strings_free(v);
	v = NULL;
	assert_int_equal(conf_get_strings(f->r, f->root, "none", &v, &n), 1);
	assert_int_equal(n, 0);
	assert_null(v[0]);
	conf_strings_free(v);

	v = NULL;
	n = 9;
	assert_int_equal(conf_get_strings(f->r, f->root, "absent", &v, &n), 0);
	assert_int_equal(conf_get_strings(f->r, f->root, "one", &v, &n), -1);
	assert_int_equal(conf_get_strings(f->r, f->root, "mixed", &v, &n), -1);
	assert_null(v);
	assert_int_equal(n, 9);
	conf_strings_free(NULL);

	assert_true(fix_flush(f));
	expect_out(f, NAME ":4: one: expected a list of strings such as [\"a\", \"b\"], not a string\n"
		      NAME ":6: mixed.[1]: expected a string, not an integer\n");
	fix_free(f);
}

/* ---- keys ---- */

static void test_check_keys(void **state)
{
	(void)state;
	struct fix *f = fix_new("spool = {\n"
				"  dir = \"/s\";\n"
				"  max_byte = 1;\n"
				"  colour = 2;\n"
				"};\n"
				"spoll = 1;\n"
				"limits = 5;\n");
	static const char *const spool_keys[] = { "dir", "max_bytes", "max_record_bytes", NULL };
	static const char *const root_keys[] = { "spool", "limits", NULL };
	assert_false(conf_check_keys(f->r, group(f, "spool"), spool_keys));
	assert_false(conf_check_keys(f->r, f->root, root_keys));
	assert_false(conf_check_keys(f->r, group(f, "limits"), spool_keys));
	assert_true(conf_check_keys(f->r, NULL, spool_keys));
	static const char *const all[] = { "dir", "max_byte", "colour", NULL };
	assert_true(conf_check_keys(f->r, group(f, "spool"), all));

	assert_true(fix_flush(f));
	expect_out(f, NAME ":3: unknown key 'max_byte' in spool (did you mean 'max_bytes'?)\n"
		      NAME ":4: unknown key 'colour' in spool\n"
		      NAME ":6: unknown top-level key 'spoll' (did you mean 'spool'?)\n"
		      NAME ":7: limits: expected a group { ... }, not an integer\n");
	fix_free(f);
}

static void test_where(void **state)
{
	(void)state;
	struct fix *f = fix_new("a = { b = ( 1, { c = 2; } ); };\n");
	const config_setting_t *c = config_lookup(&f->lc, "a.b.[1].c");
	assert_non_null(c);
	char buf[64];
	assert_string_equal(conf_where(c, buf, sizeof buf), "a.b.[1].c");
	assert_string_equal(conf_where(c, buf, 4), "a.b");    /* truncated, terminated */
	assert_string_equal(conf_where(f->root, buf, sizeof buf), "");
	assert_string_equal(conf_where(NULL, buf, sizeof buf), "");
	assert_string_equal(CONF_WHERE(config_setting_parent(c)), "a.b.[1]");
	fix_free(f);
}

/* ---- messages ---- */

static void test_messages_in_file_order(void **state)
{
	(void)state;
	struct fix *f = fix_new("a = 1;\n"
				"b = 2;\n"
				"c = 3;\n");
	const config_setting_t *a = config_setting_get_member(f->root, "a");
	const config_setting_t *b = config_setting_get_member(f->root, "b");
	const config_setting_t *c = config_setting_get_member(f->root, "c");
	conf_error(f->r, c, "third");
	conf_warn(f->r, b, "second");
	conf_error(f->r, a, "first");
	conf_error(f->r, b, "after second");     /* same line: discovery order */
	conf_error(f->r, f->root, "root");       /* line 0 is shown as 1 */
	assert_true(fix_flush(f));
	expect_out(f, NAME ":1: first\n"
		      NAME ":1: root\n"
		      NAME ":2: warning: second\n"
		      NAME ":2: after second\n"
		      NAME ":3: third\n");

	/* flushed: forgotten, and warnings alone do not fail */
	fclose(f->errs);
	free(f->out);
	f->out = NULL;
	f->errs = open_memstream(&f->out, &f->out_len);
	assert_false(fix_flush(f));
	expect_out(f, "");
	conf_warn(f->r, c, "only a warning");
	assert_false(fix_flush(f));
	expect_out(f, NAME ":3: warning: only a warning\n");
	fix_free(f);
}

static void test_load_reports_syntax_errors(void **state)
{
	(void)state;
	char *out = NULL;
	size_t len;
	FILE *errs = open_memstream(&out, &len);
	struct conf_reader *r = conf_reader_new("bad.conf");
	config_t lc;
	assert_int_equal(conf_reader_load(r, &lc, "a = 1;\nb = ;\n", errs), -1);
	fclose(errs);
	assert_string_equal(out, "bad.conf:2: syntax error\n");
	free(out);

	errs = open_memstream(&out, &len);
	conf_reader_free(r);
	r = conf_reader_new("/nonexistent/cutover-test.conf");
	assert_int_equal(conf_reader_load(r, &lc, NULL, errs), -1);
	fclose(errs);
	assert_string_equal(out, "/nonexistent/cutover-test.conf: cannot read: "
				 "No such file or directory\n");
	free(out);
	conf_reader_free(r);
}

static void test_str_equal(void **state)
{
	(void)state;
	assert_true(conf_str_equal(NULL, NULL));
	assert_true(conf_str_equal("a", "a"));
	assert_false(conf_str_equal("a", NULL));
	assert_false(conf_str_equal(NULL, "a"));
	assert_false(conf_str_equal("a", "b"));
}

static void test_unflushed_messages_are_freed(void **state)
{
	(void)state;
	struct fix *f = fix_new("a = 1;\n");
	conf_error(f->r, f->root, "never printed");
	fix_free(f);                  /* ASan: nothing leaks */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_int),
		cmocka_unit_test(test_size_suffixes),
		cmocka_unit_test(test_size_invalid),
		cmocka_unit_test(test_size_text),
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_bool),
		cmocka_unit_test(test_string_and_path),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_check_keys),
		cmocka_unit_test(test_where),
		cmocka_unit_test(test_messages_in_file_order),
		cmocka_unit_test(test_load_reports_syntax_errors),
		cmocka_unit_test(test_str_equal),
		cmocka_unit_test(test_unflushed_messages_are_freed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
