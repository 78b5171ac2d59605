/* tests for proxy/state_store.c: the file store's atomic save, its change
 * log (append, torn tail, compaction hint) and strict load.
 * Files live in a mkdtemp() directory removed at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state_store.h"
#include "tmpdir.h"

struct fx {
	struct tmpdir t;
	struct state_store *st;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	if (!f || tmpdir_make(&f->t, "state-store", "state.json") < 0)
		return -1;
	f->st = state_store_file_new(f->t.path);
	if (!f->st)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	state_store_free(f->st);
	tmpdir_remove(&f->t);
	free(f);
	return 0;
}

static int collect(const json_t *change, void *arg, char *why, size_t why_len)
{
	(void)why;
	(void)why_len;
	return json_array_append((json_t *)arg, (json_t *)change);
}

/* The document and the changes since (an array), as a restart reads them;
 * -1 with both NULL. */
static int load_all(struct state_store *st, json_t **doc, json_t **changes, char *why,
		    size_t why_len)
{
	*changes = json_array();
	assert_non_null(*changes);
	if (state_store_load(st, doc, why, why_len) == 0 &&
	    state_store_replay(st, collect, *changes, why, why_len) == 0)
		return 0;
	json_decref(*doc);
	json_decref(*changes);
	*doc = *changes = NULL;
	return -1;
}

/* The document alone; the changes since are the log tests' business. */
static int load_doc(struct state_store *st, json_t **doc, char *why, size_t why_len)
{
	json_t *changes = NULL;
	return load_all(st, doc, &changes, why, why_len) < 0 ? -1 : (json_decref(changes), 0);
}

static void write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	fclose(fp);
}

static void test_round_trip(void **state)
{
	struct fx *f = *state;
	char why[512] = "";
	json_t *doc = json_pack("{s:{s:s}, s:{s:{s:s}}, s:i}", "global", "mode", "new",
				"projects", "alpha", "mode", "maintenance", "generation", 7);
	assert_int_equal(state_store_save(f->st, doc, why, sizeof why), 0);

	json_t *back = NULL;
	assert_int_equal(load_doc(f->st, &back, why, sizeof why), 0);
	assert_non_null(back);
	assert_true(json_equal(doc, back));
	json_decref(back);

	/* a second save replaces the first */
	json_object_set_new(doc, "generation", json_integer(8));
	assert_int_equal(state_store_save(f->st, doc, why, sizeof why), 0);
	assert_int_equal(load_doc(f->st, &back, why, sizeof why), 0);
	assert_int_equal(json_integer_value(json_object_get(back, "generation")), 8);
	json_decref(back);
	json_decref(doc);
	assert_string_equal(state_store_name(f->st), f->t.path);
}

static void test_load_absent(void **state)
{
	struct fx *f = *state;
	char why[512] = "";
	json_t *doc = json_object();   /* must be overwritten with NULL */
	json_t *keep = doc;
	assert_int_equal(load_doc(f->st, &doc, why, sizeof why), 0);
	assert_null(doc);
	json_decref(keep);
}

static void test_load_corrupt(void **state)
{
	struct fx *f = *state;
	char why[512] = "";
	write_file(f->t.path, "{\n  \"global\": {\"mode\": \"new\"},\n  \"projects\": {\n");
	json_t *doc = NULL;
	assert_int_equal(load_doc(f->st, &doc, why, sizeof why), -1);
	assert_null(doc);
	char prefix[160];
	snprintf(prefix, sizeof prefix, "%s:", f->t.path);
	assert_memory_equal(why, prefix, strlen(prefix));   /* "<path>:<line>: ..." */
	assert_true(why[strlen(prefix)] >= '1' && why[strlen(prefix)] <= '9');
}

static void test_load_empty_file_is_corrupt(void **state)
{
	struct fx *f = *state;
	char why[512] = "";
	write_file(f->t.path, "");
	json_t *doc = NULL;
	assert_int_equal(load_doc(f->st, &doc, why, sizeof why), -1);
	assert_non_null(strstr(why, f->t.path));
}

static void test_load_duplicate_key(void **state)
{
	struct fx *f = *state;
	char why[512] = "";
	write_file(f->t.path, "{\"global\": {\"mode\": \"new\", \"mode\": \"old\"}}\n");
	json_t *doc = NULL;
	assert_int_equal(load_doc(f->st, &doc, why, sizeof why), -1);
	assert_non_null(strstr(why, f->t.path));
}

static void test_load_not_object(void **state)
{
	struct fx *f = *state;
	char why[512] = "";
	write_file(f->t.path, "[\"new\"]\n");
	json_t *doc = NULL;
	assert_int_equal(load_doc(f->st, &doc, why, sizeof why), -1);
	assert_null(doc);
	assert_non_null(strstr(why, f->t.path));
}

static void test_load_too_big(void **state)
{
	struct fx *f = *state;
	char why[512] = "";
	int fd = open(f->t.path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, STATE_STORE_FILE_MAX + 1), 0);   /* sparse */
	close(fd);
	json_t *doc = NULL;
	assert_int_equal(load_doc(f->st, &doc, why, sizeof why), -1);
	assert_null(doc);
	assert_non_null(strstr(why, f->t.path));
	assert_non_null(strstr(why, "larger"));
}

static void test_load_directory(void **state)
{
	struct fx *f = *state;
	char why[512] = "";
	assert_int_equal(mkdir(f->t.path, 0700), 0);
	json_t *doc = NULL;
	assert_int_equal(load_doc(f->st, &doc, why, sizeof why), -1);
	assert_non_null(strstr(why, f->t.path));
	rmdir(f->t.path);
}

static void test_save_leaves_no_temp_file(void **state)
{
	struct fx *f = *state;
	char why[512] = "";
	json_t *doc = json_pack("{s:s}", "mode", "old");
	for (int i = 0; i < 3; i++)
		assert_int_equal(state_store_save(f->st, doc, why, sizeof why), 0);
	json_decref(doc);
	assert_int_equal(tmpdir_count(f->t.dir), 1);
	struct stat st;
	assert_int_equal(stat(f->t.path, &st), 0);
}

static void test_save_missing_directory(void **state)
{
	struct fx *f = *state;
	char path[192], why[512] = "";
	snprintf(path, sizeof path, "%s/nope/state.json", f->t.dir);
	struct state_store *st = state_store_file_new(path);
	assert_non_null(st);
	json_t *doc = json_pack("{s:s}", "mode", "old");
	assert_int_equal(state_store_save(st, doc, why, sizeof why), -1);
	assert_non_null(strstr(why, path));
	assert_non_null(strstr(why, "No such file"));
	json_decref(doc);
	state_store_free(st);
	assert_int_equal(tmpdir_count(f->t.dir), 0);
}

/* A failure after the temp file exists (rename onto a non-empty directory)
 * removes the temp file and keeps what was there. */
static void test_save_failed_rename_cleans_up(void **state)
{
	struct fx *f = *state;
	char why[512] = "", inner[192];
	assert_int_equal(mkdir(f->t.path, 0700), 0);
	snprintf(inner, sizeof inner, "%s/keep", f->t.path);
	write_file(inner, "x");
	json_t *doc = json_pack("{s:s}", "mode", "old");
	assert_int_equal(state_store_save(f->st, doc, why, sizeof why), -1);
	json_decref(doc);
	assert_non_null(strstr(why, f->t.path));
	assert_non_null(strstr(why, "rename"));
	assert_int_equal(tmpdir_count(f->t.dir), 1);   /* the directory only */
	unlink(inner);
	rmdir(f->t.path);
}

static void test_save_refuses_non_container(void **state)
{
	struct fx *f = *state;
	char why[512] = "";
	json_t *doc = json_integer(3);
	assert_int_equal(state_store_save(f->st, doc, why, sizeof why), -1);
	json_decref(doc);
	assert_non_null(strstr(why, f->t.path));
	assert_int_equal(tmpdir_count(f->t.dir), 0);
}

/* The state file is operator data: 0600 whatever the umask. */
static void test_saved_file_mode(void **state)
{
	struct fx *f = *state;
	char why[512] = "";
	mode_t old = umask(0);
	json_t *doc = json_pack("{s:s}", "mode", "new");
	int rc = state_store_save(f->st, doc, why, sizeof why);
	umask(old);
	json_decref(doc);
	assert_int_equal(rc, 0);
	struct stat st;
	assert_int_equal(stat(f->t.path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_true(S_ISREG(st.st_mode));
}

static void test_saved_file_is_indented_and_sorted(void **state)
{
	struct fx *f = *state;
	char why[512] = "";
	json_t *doc = json_pack("{s:i, s:i}", "zeta", 1, "alpha", 2);
	assert_int_equal(state_store_save(f->st, doc, why, sizeof why), 0);
	json_decref(doc);
	FILE *fp = fopen(f->t.path, "rb");
	assert_non_null(fp);
	char buf[128] = "";
	size_t n = fread(buf, 1, sizeof buf - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	assert_string_equal(buf, "{\n  \"alpha\": 2,\n  \"zeta\": 1\n}\n");
}

/* ---- the change log ---- */

static void log_path_of(struct fx *f, char *buf, size_t len)
{
	snprintf(buf, len, "%s.log", f->t.path);
}

static json_t *change(int gen, const char *project, const char *mode)
{
	json_t *c = json_pack("{s:i, s:s, s:{s:s}}", "generation", gen, "project", project, "scope",
			      "mode", mode);
	assert_non_null(c);
	return c;
}

static void append_ok(struct fx *f, json_t *c)
{
	char why[512] = "";
	if (state_store_append(f->st, c, why, sizeof why) < 0)
		fail_msg("append: %s", why);
	json_decref(c);
}

static void save_doc(struct fx *f, const char *text)
{
	char why[512] = "";
	json_t *doc = json_loads(text, 0, NULL);
	assert_non_null(doc);
	assert_int_equal(state_store_save(f->st, doc, why, sizeof why), 0);
	json_decref(doc);
}

/* Loads with a fresh store (as a restart does); returns the changes. */
static json_t *reload(struct fx *f, json_t **doc)
{
	char why[512] = "";
	state_store_free(f->st);
	f->st = state_store_file_new(f->t.path);
	assert_non_null(f->st);
	json_t *changes = NULL;
	if (load_all(f->st, doc, &changes, why, sizeof why) < 0)
		fail_msg("load: %s", why);
	assert_true(json_is_array(changes));
	return changes;
}

#define append_raw(path, text) append_bytes(path, text, sizeof(text) - 1)

static void append_bytes(const char *path, const char *bytes, size_t len)
{
	FILE *fp = fopen(path, "ab");
	assert_non_null(fp);
	assert_int_equal(fwrite(bytes, 1, len, fp), len);
	fclose(fp);
}

static void test_append_round_trip(void **state)
{
	struct fx *f = *state;
	save_doc(f, "{\"mode\": \"old\", \"generation\": 1}");
	append_ok(f, change(2, "alpha", "new"));
	append_ok(f, change(3, "beta", "maintenance"));
	json_t *doc = NULL, *changes = reload(f, &doc);
	assert_int_equal(json_integer_value(json_object_get(doc, "generation")), 1);
	assert_int_equal(json_array_size(changes), 2);
	json_t *want = change(3, "beta", "maintenance");
	assert_true(json_equal(json_array_get(changes, 1), want));
	json_decref(want);
	json_decref(changes);
	json_decref(doc);

	/* 0600 like the document; the directory holds the two files only */
	char log[192];
	log_path_of(f, log, sizeof log);
	struct stat st;
	assert_int_equal(stat(log, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(tmpdir_count(f->t.dir), 2);
}

/* A crash mid-append leaves a torn last line: never acknowledged, dropped
 * by load, cut off before the next append. */
static void test_torn_tail(void **state)
{
	struct fx *f = *state;
	char log[192];
	log_path_of(f, log, sizeof log);
	save_doc(f, "{\"mode\": \"old\"}");
	append_ok(f, change(1, "alpha", "new"));
	append_raw(log, "{\"generation\": 2, \"project\": \"be");
	json_t *doc = NULL, *changes = reload(f, &doc);
	assert_int_equal(json_array_size(changes), 1);
	json_decref(changes);
	json_decref(doc);

	append_ok(f, change(2, "gamma", "new"));
	changes = reload(f, &doc);
	assert_int_equal(json_array_size(changes), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(changes, 1),
							      "project")), "gamma");
	json_decref(changes);
	json_decref(doc);

	/* torn with its newline on disk (a lost page in the middle) */
	append_raw(log, "{\"generation\": 3, \0\0\0\n");
	changes = reload(f, &doc);
	assert_int_equal(json_array_size(changes), 2);
	json_decref(changes);
	json_decref(doc);
}

/* Anything but the last line wrong is corruption, named by file and line. */
static void test_corrupt_log_line(void **state)
{
	struct fx *f = *state;
	char log[192], why[512] = "", want[256];
	log_path_of(f, log, sizeof log);
	save_doc(f, "{\"mode\": \"old\"}");
	append_ok(f, change(1, "alpha", "new"));
	append_raw(log, "garbage\n");
	append_ok(f, change(2, "beta", "new"));
	json_t *doc = NULL, *changes = NULL;
	assert_int_equal(load_all(f->st, &doc, &changes, why, sizeof why), -1);
	assert_null(doc);
	assert_null(changes);
	snprintf(want, sizeof want, "%s:2: ", log);
	if (strncmp(why, want, strlen(want)) != 0)
		fail_msg("want '%s...', got '%s'", want, why);
}

/* Changes without their document: the document was removed by hand. */
static void test_log_without_document(void **state)
{
	struct fx *f = *state;
	char log[192], why[512] = "";
	log_path_of(f, log, sizeof log);
	save_doc(f, "{\"mode\": \"new\"}");
	append_ok(f, change(1, "alpha", "new"));
	assert_int_equal(unlink(f->t.path), 0);
	json_t *doc = NULL, *changes = NULL;
	assert_int_equal(load_all(f->st, &doc, &changes, why, sizeof why), -1);
	assert_non_null(strstr(why, log));
	assert_non_null(strstr(why, "no "));
}

static void test_save_empties_the_log(void **state)
{
	struct fx *f = *state;
	save_doc(f, "{\"mode\": \"old\"}");
	append_ok(f, change(1, "alpha", "new"));
	save_doc(f, "{\"mode\": \"old\", \"generation\": 1, \"projects\": {\"alpha\": {\"mode\": \"new\"}}}");
	json_t *doc = NULL, *changes = reload(f, &doc);
	assert_int_equal(json_array_size(changes), 0);
	json_decref(changes);
	json_decref(doc);
	/* and appending goes on after it */
	append_ok(f, change(2, "beta", "new"));
	changes = reload(f, &doc);
	assert_int_equal(json_array_size(changes), 1);
	json_decref(changes);
	json_decref(doc);
}

/* append asks for a full save once the log is large next to the document,
 * and not before: the bytes per change stay constant. */
static void test_append_asks_for_a_save(void **state)
{
	struct fx *f = *state;
	char why[512] = "", log[192];
	log_path_of(f, log, sizeof log);
	save_doc(f, "{\"mode\": \"old\"}");
	int rc = 0, n = 0;
	while (rc == 0 && n < 10000) {
		json_t *c = change(++n, "a-project-with-a-longish-name", "new");
		rc = state_store_append(f->st, c, why, sizeof why);
		json_decref(c);
	}
	assert_int_equal(rc, 1);
	struct stat st;
	assert_int_equal(stat(log, &st), 0);
	assert_true(st.st_size >= STATE_STORE_LOG_MIN);
	assert_true(st.st_size < STATE_STORE_LOG_MIN + 256);
}

static void test_append_refuses_non_object(void **state)
{
	struct fx *f = *state;
	char why[512] = "";
	json_t *c = json_integer(3);
	assert_int_equal(state_store_append(f->st, c, why, sizeof why), -1);
	json_decref(c);
	assert_non_null(strstr(why, ".log"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_absent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_empty_file_is_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_duplicate_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_not_object, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_too_big, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_directory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_leaves_no_temp_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_missing_directory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_failed_rename_cleans_up, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_refuses_non_container, setup, teardown),
		cmocka_unit_test_setup_teardown(test_saved_file_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_saved_file_is_indented_and_sorted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_log_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_log_without_document, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_empties_the_log, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_asks_for_a_save, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_refuses_non_object, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
