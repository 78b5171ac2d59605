/* tests for proxy/admin.c: the token file reader the server and the CLI
 * share (whitespace around the token, limits, errors naming the file).
 * Files live in a mkdtemp() directory removed at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "tmpdir.h"

#define TOKEN "k3Yq9v2LmX8pR4tZ7wN1cB6dF0gH5jQa"

static int setup(void **state)
{
	return tmpdir_setup(state, "admin", "token");
}

static int teardown(void **state)
{
	return tmpdir_teardown(state);
}

static void write_bytes(const char *path, const char *data, size_t len)
{
	FILE *fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

/* The token read from a file holding TEXT. */
static void assert_reads(const char *path, const char *text, const char *want)
{
	write_bytes(path, text, strlen(text));
	char why[512] = "";
	char *got = admin_token_read(path, why, sizeof why);
	if (!got)
		fail_msg("file %s: no token: %s", text, why);
	assert_string_equal(got, want);
	free(got);
}

/* The error for a file holding LEN bytes of DATA: NULL, and WHY names the
 * file and holds WANT. */
static void assert_refused(const char *path, const char *data, size_t len, const char *want)
{
	write_bytes(path, data, len);
	char why[512] = "";
	assert_null(admin_token_read(path, why, sizeof why));
	if (!strstr(why, path) || !strstr(why, want))
		fail_msg("why '%s': want the path and '%s'", why, want);
}

static void test_surrounding_whitespace_is_not_the_token(void **state)
{
	struct tmpdir *f = *state;
	assert_reads(f->path, TOKEN, TOKEN);
	assert_reads(f->path, TOKEN "\n", TOKEN);
	assert_reads(f->path, TOKEN "\t", TOKEN);        /* the CLI used to keep it */
	assert_reads(f->path, TOKEN "\t\n", TOKEN);
	assert_reads(f->path, TOKEN "\r\n", TOKEN);
	assert_reads(f->path, "   " TOKEN "\n", TOKEN);  /* the server used to keep them */
	assert_reads(f->path, "\t\r\n " TOKEN " \t\r\n\n", TOKEN);
	/* spaces inside are part of it */
	assert_reads(f->path, " two words \n", "two words");
}

static void test_long_token(void **state)
{
	struct tmpdir *f = *state;
	char *text = malloc(ADMIN_TOKEN_FILE_MAX + 2);
	assert_non_null(text);
	/* exactly the limit, past the 511 bytes the server used to keep */
	memset(text, 'a', ADMIN_TOKEN_MAX);
	memcpy(text + ADMIN_TOKEN_MAX, "\r\n", 3);
	write_bytes(f->path, text, strlen(text));
	char why[512] = "";
	char *got = admin_token_read(f->path, why, sizeof why);
	assert_non_null(got);
	assert_int_equal(strlen(got), ADMIN_TOKEN_MAX);
	free(got);

	/* one more byte: an error, not a truncated token */
	memset(text, 'a', ADMIN_TOKEN_MAX + 1);
	assert_refused(f->path, text, ADMIN_TOKEN_MAX + 1, "longer than 4096 bytes");

	/* a file far too long for a token */
	memset(text, 'a', ADMIN_TOKEN_FILE_MAX + 1);
	assert_refused(f->path, text, ADMIN_TOKEN_FILE_MAX + 1, "longer than");
	free(text);
}

static void test_empty(void **state)
{
	struct tmpdir *f = *state;
	assert_refused(f->path, "", 0, "empty");
	assert_refused(f->path, " \t\r\n\n", 5, "empty");
}

static void test_control_character_inside(void **state)
{
	struct tmpdir *f = *state;
	assert_refused(f->path, "abc\ndef\n", 8, "control character");
	assert_refused(f->path, "abc\tdef", 7, "control character");
	assert_refused(f->path, "abc\0def", 7, "control character");
	assert_refused(f->path, "abc\x7f", 4, "control character");
}

static void test_missing_file(void **state)
{
	struct tmpdir *f = *state;
	char why[512] = "";
	assert_null(admin_token_read(f->path, why, sizeof why));
	assert_non_null(strstr(why, f->path));
	assert_non_null(strstr(why, "No such file"));

	/* a directory is not a token file either */
	assert_null(admin_token_read(f->dir, why, sizeof why));
	assert_non_null(strstr(why, f->dir));
}

/* ---- request bodies ---- */

static void expect_body(const char *method, const char *path, const char *text, int want,
			const char *says)
{
	json_t *body = NULL;
	char msg[512] = "";
	int status = admin_body_parse(method, path, text, strlen(text), &body, msg, sizeof msg);
	if (status != want || (says && !strstr(msg, says)))
		fail_msg("%s %s %s: got %d '%s', want %d '%s'", method, path, text, status, msg, want,
			 says ? says : "");
	assert_true((status == 0) == (body != NULL));
	json_decref(body);
}

static void test_body_keys(void **state)
{
	(void)state;
	expect_body("POST", "/switch", "{\"to\":\"new\",\"project\":\"a\",\"force\":true}", 0, NULL);
	expect_body("POST", "/switch", "", 0, NULL);
	expect_body("POST", "/switch", "{\"to\":\"new\",\"projet\":\"a\"}", 400, "\"projet\"");
	expect_body("POST", "/switch", "{\"to\":\"new\",\"to\":\"old\"}", 400, "duplicate");
	expect_body("POST", "/switch", "{\"force\":\"yes\"}", 400, "\"force\" must be a boolean");
	expect_body("POST", "/switch", "[1]", 400, "must be a JSON object");
	expect_body("POST", "/switch", "{", 400, "malformed JSON");
	expect_body("POST", "/hold", "{\"max\":2.5}", 0, NULL);
	expect_body("POST", "/reload", "{\"x\":1}", 400, "takes no keys");
	expect_body("GET", "/switch", "{\"to\":\"new\"}", 400, "takes no keys");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_surrounding_whitespace_is_not_the_token, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_long_token, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_control_character_inside, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
		cmocka_unit_test(test_body_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
