/* tests for proxy/journal.c: one fsync'd JSON line per entry, the tail read
 * backwards across blocks, torn lines after a crash. Files live in a
 * mkdtemp() directory removed at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "tmpdir.h"

static int setup(void **state)
{
	return tmpdir_setup(state, "journal", "journal.jsonl");
}

static int teardown(void **state)
{
	return tmpdir_teardown(state);
}

/* The whole file, NUL-terminated. */
static char *slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	long n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	char *buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
	buf[n] = '\0';
	fclose(fp);
	if (len)
		*len = (size_t)n;
	return buf;
}

static void write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	fclose(fp);
}

static void append_i(struct journal *j, int i)
{
	json_t *e = json_pack("{s:i, s:s}", "i", i, "scope", "global");
	assert_int_equal(journal_append(j, e), 0);
	json_decref(e);
}

/* Asserts TAIL holds entries whose "i" run from FIRST, COUNT of them. */
static void assert_run(json_t *tail, int first, size_t count)
{
	assert_non_null(tail);
	assert_int_equal(json_array_size(tail), count);
	for (size_t k = 0; k < count; k++)
		assert_int_equal(json_integer_value(json_object_get(json_array_get(tail, k), "i")),
				 first + (int)k);
}

static void test_append_one_line_per_entry_with_time(void **state)
{
	struct tmpdir *f = *state;
	char why[256] = "";
	struct journal *j = journal_open(f->path, why, sizeof why);
	assert_non_null(j);
	append_i(j, 0);
	json_t *e = json_pack("{s:i, s:s, s:s}", "i", 1, "time", "2024-01-02T03:04:05.678Z",
			      "reason", "line one\nline two");
	assert_int_equal(journal_append(j, e), 0);
	json_decref(e);
	append_i(j, 2);
	journal_close(j);

	struct stat st;
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0137, 0);   /* 0640 at most */

	size_t len;
	char *text = slurp(f->path, &len);
	assert_true(len > 0 && text[len - 1] == '\n');
	int lines = 0;
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		json_t *v = json_loads(line, 0, NULL);
		assert_non_null(v);
		assert_int_equal(json_integer_value(json_object_get(v, "i")), lines);
		const char *t = json_string_value(json_object_get(v, "time"));
		assert_non_null(t);
		if (lines == 1) {
			assert_string_equal(t, "2024-01-02T03:04:05.678Z");   /* kept as given */
			assert_string_equal(json_string_value(json_object_get(v, "reason")),
					    "line one\nline two");
		} else {
			/* YYYY-MM-DDTHH:MM:SS.mmmZ */
			assert_int_equal(strlen(t), 24);
			assert_int_equal(t[4], '-');
			assert_int_equal(t[10], 'T');
			assert_int_equal(t[19], '.');
			assert_int_equal(t[23], 'Z');
		}
		json_decref(v);
		lines++;
	}
	assert_int_equal(lines, 3);
	free(text);
}

static void test_append_refuses_non_object(void **state)
{
	struct tmpdir *f = *state;
	struct journal *j = journal_open(f->path, NULL, 0);
	assert_non_null(j);
	json_t *a = json_array();
	errno = 0;
	assert_int_equal(journal_append(j, a), -1);
	assert_int_equal(errno, EINVAL);
	json_decref(a);
	journal_close(j);
}

static void test_open_missing_dir_names_path(void **state)
{
	struct tmpdir *f = *state;
	char path[192], why[256] = "";
	snprintf(path, sizeof path, "%s/nope/journal.jsonl", f->dir);
	assert_null(journal_open(path, why, sizeof why));
	assert_non_null(strstr(why, path));
}

static void test_tail_last_two_of_five(void **state)
{
	struct tmpdir *f = *state;
	struct journal *j = journal_open(f->path, NULL, 0);
	assert_non_null(j);
	for (int i = 0; i < 5; i++)
		append_i(j, i);

	json_t *t = journal_tail(j, 2);
	assert_run(t, 3, 2);
	json_decref(t);

	t = journal_tail(j, 0);
	assert_run(t, 0, 0);
	json_decref(t);

	t = journal_tail(j, 100);
	assert_run(t, 0, 5);
	json_decref(t);
	journal_close(j);
}

static void *post_some(void *arg)
{
	(void)arg;
	for (int i = 0; i < 100; i++)
		journal_post(json_pack("{s:i}", "i", i));
	return NULL;
}

/* Entries posted from other threads are written, in order, by the owner. */
static void test_posted_entries_written_by_owner(void **state)
{
	struct tmpdir *f = *state;
	struct journal *j = journal_open(f->path, NULL, 0);
	assert_non_null(j);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, post_some, NULL), 0);
	pthread_join(t, NULL);
	assert_int_equal(journal_write_posted(j), 0);
	assert_int_equal(journal_write_posted(j), 0); /* nothing twice */
	json_t *tail = journal_tail(j, 1000);
	assert_int_equal(json_array_size(tail), 100);
	for (size_t i = 0; i < 100; i++) {
		json_t *e = json_array_get(tail, i);
		assert_int_equal(json_integer_value(json_object_get(e, "i")), (json_int_t)i);
		assert_non_null(json_object_get(e, "time"));
	}
	json_decref(tail);
	journal_close(j);
}

static void test_tail_empty_file(void **state)
{
	struct tmpdir *f = *state;
	struct journal *j = journal_open(f->path, NULL, 0);
	assert_non_null(j);
	json_t *t = journal_tail(j, 10);
	assert_run(t, 0, 0);
	json_decref(t);
	journal_close(j);
}

static void test_torn_last_line(void **state)
{
	struct tmpdir *f = *state;
	write_file(f->path, "{\"i\":0}\n{\"i\":1}\n{\"i\":2}\n{\"i\":99,\"sco");
	struct journal *j = journal_open(f->path, NULL, 0);
	assert_non_null(j);

	json_t *t = journal_tail(j, 10);
	assert_run(t, 0, 3);
	json_decref(t);

	append_i(j, 3);
	t = journal_tail(j, 10);
	assert_run(t, 0, 4);
	json_decref(t);
	journal_close(j);

	/* the torn fragment stays on its own line; the entry starts a new one */
	char *text = slurp(f->path, NULL);
	assert_non_null(strstr(text, "{\"i\":99,\"sco\n{\"i\":3,"));
	free(text);

	/* and a second append needs no extra newline */
	j = journal_open(f->path, NULL, 0);
	assert_non_null(j);
	append_i(j, 4);
	journal_close(j);
	text = slurp(f->path, NULL);
	assert_null(strstr(text, "\n\n"));
	free(text);
}

static void test_tail_skips_invalid_lines(void **state)
{
	struct tmpdir *f = *state;
	write_file(f->path, "{\"i\":0}\nnot json\n[1,2]\n\n{\"i\":1}\n{\"i\":\n{\"i\":2}\n");
	struct journal *j = journal_open(f->path, NULL, 0);
	assert_non_null(j);
	json_t *t = journal_tail(j, 2);   /* counts valid entries, not lines */
	assert_run(t, 1, 2);
	json_decref(t);
	t = journal_tail(j, 10);
	assert_run(t, 0, 3);
	json_decref(t);
	journal_close(j);
}

/* Well past one 64 KiB block, with one line longer than a block. */
static void test_tail_across_blocks(void **state)
{
	struct tmpdir *f = *state;
	FILE *fp = fopen(f->path, "wb");
	assert_non_null(fp);
	char pad[201];
	memset(pad, 'x', 200);
	pad[200] = '\0';
	for (int i = 0; i < 3000; i++) {
		if (i == 2000) {
			fprintf(fp, "{\"i\":%d,\"reason\":\"", i);
			for (int k = 0; k < 100 * 1024; k++)
				fputc('y', fp);
			fputs("\"}\n", fp);
		} else {
			fprintf(fp, "{\"i\":%d,\"reason\":\"%s\"}\n", i, pad);
		}
	}
	fclose(fp);
	struct stat st;
	assert_int_equal(stat(f->path, &st), 0);
	assert_true(st.st_size > 8 * 64 * 1024);

	struct journal *j = journal_open(f->path, NULL, 0);
	assert_non_null(j);
	json_t *t = journal_tail(j, 2500);
	assert_run(t, 500, 2500);
	assert_int_equal(strlen(json_string_value(json_object_get(json_array_get(t, 1500), "reason"))),
			 100 * 1024);
	json_decref(t);

	t = journal_tail(j, 5000);   /* more than there are: all, from the file's start */
	assert_run(t, 0, 3000);
	json_decref(t);
	journal_close(j);
}

/* A line over JOURNAL_LINE_MAX is skipped, the lines around it are not. */
static void test_tail_skips_overlong_line(void **state)
{
	struct tmpdir *f = *state;
	FILE *fp = fopen(f->path, "wb");
	assert_non_null(fp);
	fputs("{\"i\":0}\n{\"i\":1}\n{\"i\":50,\"reason\":\"", fp);
	for (size_t k = 0; k < JOURNAL_LINE_MAX + 200 * 1024; k++)
		fputc('z', fp);
	fputs("\"}\n{\"i\":2}\n", fp);
	fclose(fp);

	struct journal *j = journal_open(f->path, NULL, 0);
	assert_non_null(j);
	json_t *t = journal_tail(j, 10);
	assert_non_null(t);
	assert_int_equal(json_array_size(t), 3);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(t, 0), "i")), 0);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(t, 1), "i")), 1);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(t, 2), "i")), 2);
	json_decref(t);
	journal_close(j);
}

static void test_append_after_reopen(void **state)
{
	struct tmpdir *f = *state;
	struct journal *j = journal_open(f->path, NULL, 0);
	assert_non_null(j);
	append_i(j, 0);
	append_i(j, 1);
	journal_close(j);

	j = journal_open(f->path, NULL, 0);
	assert_non_null(j);
	append_i(j, 2);
	json_t *t = journal_tail(j, 10);
	assert_run(t, 0, 3);
	json_decref(t);
	journal_close(j);

	char *text = slurp(f->path, NULL);
	int nl = 0;
	for (char *p = text; *p; p++)
		nl += *p == '\n';
	assert_int_equal(nl, 3);
	free(text);
}

/* A write that fails part-way (the file size limit) leaves a torn line;
 * the next entry starts on a new line. One that writes nothing adds no
 * empty line. */
static void test_failed_append(void **state)
{
	struct tmpdir *f = *state;
	struct journal *j = journal_open(f->path, NULL, 0);
	assert_non_null(j);
	append_i(j, 0);
	append_i(j, 1);
	struct stat st;
	assert_int_equal(stat(f->path, &st), 0);

	void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
	struct rlimit old, lim;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = (rlim_t)st.st_size + 10;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	json_t *e = json_pack("{s:i, s:s}", "i", 2, "reason", "longer than ten bytes");
	int rc = journal_append(j, e);
	int err = errno;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_int_equal(rc, -1);
	assert_int_equal(err, EFBIG);
	append_i(j, 3);
	char *text = slurp(f->path, NULL);
	assert_non_null(strstr(text, "}\n{\"i\":2,\"re\n{\"i\":3,"));   /* 10 bytes, then \n */
	free(text);

	assert_int_equal(stat(f->path, &st), 0);
	lim.rlim_cur = (rlim_t)st.st_size;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	rc = journal_append(j, e);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, old_handler);
	assert_int_equal(rc, -1);
	json_decref(e);
	append_i(j, 4);
	text = slurp(f->path, NULL);
	assert_null(strstr(text, "\n\n"));
	free(text);

	json_t *t = journal_tail(j, 10);
	assert_int_equal(json_array_size(t), 4);   /* 0, 1, 3, 4 */
	assert_int_equal(json_integer_value(json_object_get(json_array_get(t, 2), "i")), 3);
	json_decref(t);
	journal_close(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_append_one_line_per_entry_with_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_refuses_non_object, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_missing_dir_names_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tail_last_two_of_five, setup, teardown),
		cmocka_unit_test_setup_teardown(test_posted_entries_written_by_owner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tail_empty_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_last_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tail_skips_invalid_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tail_across_blocks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tail_skips_overlong_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_after_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_append, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
