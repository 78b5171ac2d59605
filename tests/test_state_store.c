/* tests for proxy/state_store.c: the file store's atomic save and strict load.
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

/* The document alone; the changes since are the log tests' business. */
static int load_doc(struct state_store *st, json_t **doc, char *why, size_t why_len)
{
	json_t *changes = NULL;
	int rc = state_store_load(st, doc, &changes, why, why_len);
	assert_true(rc < 0 ? !changes : json_is_array(changes));
	json_decref(changes);
	return rc;
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
