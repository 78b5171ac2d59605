/* tests for proxy/state.c: loading the state file (and the changes logged
 * after it) at start, changes and what they cost, and the mode names. Files live in a mkdtemp() directory removed at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state.h"
#include "tmpdir.h"
#include "state_store.h"

struct fx {
	struct tmpdir t;
	char *errs_text;
	size_t errs_len;
	FILE *errs;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	if (!f || tmpdir_make(&f->t, "state", "state.json") < 0)
		return -1;
	f->errs = open_memstream(&f->errs_text, &f->errs_len);
	if (!f->errs)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	state_shutdown();
	fclose(f->errs);
	free(f->errs_text);
	tmpdir_remove(&f->t); /* a test may have made the state file a directory */
	free(f);
	return 0;
}

static void write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fwrite(text, 1, strlen(text), fp), strlen(text));
	assert_int_equal(fclose(fp), 0);
}

static const char *errs_of(struct fx *f)
{
	fflush(f->errs);
	return f->errs_text ? f->errs_text : "";
}

static int init_with(struct fx *f, const char *path)
{
	return state_init(state_store_file_new(path), NULL, f->errs);
}

/* Loads TEXT from the state file and expects failure naming the file. */
static void expect_load_error(struct fx *f, const char *text, const char *cause)
{
	write_file(f->t.path, text);
	assert_int_equal(init_with(f, f->t.path), -1);
	const char *e = errs_of(f);
	if (!strstr(e, f->t.path))
		fail_msg("error for %s does not name the file: '%s'", text, e);
	if (!strstr(e, "cannot load the state"))
		fail_msg("error for %s: '%s'", text, e);
	if (cause && !strstr(e, cause))
		fail_msg("error for %s does not say '%s': '%s'", text, cause, e);
	/* nothing was published */
	assert_null(state_current());
}

static void test_absent_file(void **state)
{
	struct fx *f = *state;
	assert_int_equal(init_with(f, f->t.path), 0);
	assert_non_null(state_current());
	assert_int_equal(state_current()->global.mode, MODE_OLD);
	assert_string_equal(errs_of(f), "");
}

static void test_mode_new(void **state)
{
	struct fx *f = *state;
	write_file(f->t.path, "{\"mode\":\"new\"}\n");
	assert_int_equal(init_with(f, f->t.path), 0);
	const struct state_snapshot *s = state_current();
	assert_non_null(s);
	assert_int_equal(s->global.mode, MODE_NEW);
	assert_int_equal(s->generation, 0);
	assert_int_equal(state_mode_for(s, "alpha", 5), MODE_NEW);
	assert_string_equal(errs_of(f), "");
}

static void test_every_mode_and_generation(void **state)
{
	struct fx *f = *state;
	static const struct {
		const char *text;
		enum mode mode;
		uint64_t gen;
	} cases[] = {
		{ "{\"mode\": \"old\", \"generation\": 3}", MODE_OLD, 3 },
		{ "{\"generation\": 12, \"mode\": \"maintenance\"}", MODE_MAINTENANCE, 12 },
		{ "  {\n  \"mode\" : \"hold\",\n  \"extra\": [1, 2]\n}\n", MODE_HOLD, 0 },
		{ "{\"mode\":\"new\",\"generation\":9007199254740993}", MODE_NEW, 9007199254740993ULL },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		write_file(f->t.path, cases[i].text);
		assert_int_equal(init_with(f, f->t.path), 0);
		const struct state_snapshot *s = state_current();
		assert_non_null(s);
		assert_int_equal(s->global.mode, cases[i].mode);
		assert_int_equal(s->generation, cases[i].gen);
		state_shutdown();
	}
	assert_string_equal(errs_of(f), "");
}

static void test_corrupt_file(void **state)
{
	struct fx *f = *state;
	expect_load_error(f, "{\"mode\": \"new\"", NULL);
}

static void test_corrupt_file_line(void **state)
{
	struct fx *f = *state;
	expect_load_error(f, "{\n\"mode\":\n new\n}\n", NULL);
	/* "FILE:LINE:" with the line of the fault */
	char want[256];
	snprintf(want, sizeof want, "%s:3: ", f->t.path);
	if (strncmp(errs_of(f), want, strlen(want)) != 0)
		fail_msg("want '%s...', got '%s'", want, errs_of(f));
}

static void test_empty_file(void **state)
{
	struct fx *f = *state;
	expect_load_error(f, "", NULL);
}

static void test_unknown_mode(void **state)
{
	struct fx *f = *state;
	expect_load_error(f, "{\"mode\":\"newer\"}", "unknown mode 'newer'");
	char want[256];
	snprintf(want, sizeof want, "%s:1: unknown mode 'newer'\n", f->t.path);
	assert_true(strncmp(errs_of(f), want, strlen(want)) == 0);
}

/* A scope no request could reach is refused, in the file and in the log
 * (found by fuzz_state: "" loaded as a project). */
static void test_unreachable_project_name(void **state)
{
	struct fx *f = *state;
	expect_load_error(f, "{\"mode\":\"old\",\"projects\":{\"\":{\"mode\":\"new\"}}}",
			  "is not a project name");
	expect_load_error(f, "{\"mode\":\"old\",\"projects\":{\"a/b\":{\"mode\":\"new\"}}}",
			  "is not a project name");
	char log[192];
	snprintf(log, sizeof log, "%s.log", f->t.path);
	write_file(f->t.path, "{\"mode\": \"new\"}\n");
	write_file(log, "{\"generation\": 1, \"project\": \"a b\", \"scope\": {\"mode\": \"new\"}}\n");
	assert_int_equal(init_with(f, f->t.path), -1);
	if (!strstr(errs_of(f), "not a project name"))
		fail_msg("got '%s'", errs_of(f));
}

static void test_mode_case_sensitive(void **state)
{
	struct fx *f = *state;
	expect_load_error(f, "{\"mode\":\"NEW\"}", "unknown mode");
}

static void test_mode_missing_or_not_a_string(void **state)
{
	struct fx *f = *state;
	expect_load_error(f, "{}", NULL);
	expect_load_error(f, "{\"mode\": 1}", NULL);
	expect_load_error(f, "[\"new\"]", NULL);
	expect_load_error(f, "\"new\"", NULL);
}

static void test_path_is_a_directory(void **state)
{
	struct fx *f = *state;
	assert_int_equal(mkdir(f->t.path, 0700), 0);
	assert_int_equal(init_with(f, f->t.path), -1);
	assert_non_null(strstr(errs_of(f), f->t.path));
	assert_null(state_current());
}

static void test_unreadable_file(void **state)
{
	struct fx *f = *state;
	if (geteuid() == 0)
		skip(); /* root reads it anyway */
	write_file(f->t.path, "{\"mode\":\"new\"}");
	assert_int_equal(chmod(f->t.path, 0), 0);
	assert_int_equal(init_with(f, f->t.path), -1);
	assert_non_null(strstr(errs_of(f), f->t.path));
	assert_null(state_current());
}

/* A failed load leaves the published snapshot alone. */
static void test_failed_init_keeps_current(void **state)
{
	struct fx *f = *state;
	write_file(f->t.path, "{\"mode\":\"new\"}");
	assert_int_equal(init_with(f, f->t.path), 0);
	const struct state_snapshot *before = state_current();
	write_file(f->t.path, "garbage");
	assert_int_equal(init_with(f, f->t.path), -1);
	assert_ptr_equal(state_current(), before);
	assert_int_equal(state_current()->global.mode, MODE_NEW);
}

static void test_mode_names(void **state)
{
	(void)state;
	static const char *const names[MODE_COUNT] = { "old", "new", "maintenance", "hold" };
	for (int i = 0; i < MODE_COUNT; i++) {
		assert_string_equal(mode_name((enum mode)i), names[i]);
		enum mode m = MODE_COUNT;
		assert_int_equal(mode_parse(names[i], &m), 0);
		assert_int_equal(m, i);
		assert_int_equal(mode_parse(mode_name(m), &m), 0);
		assert_int_equal(m, i);
	}
	assert_string_equal(mode_name(MODE_COUNT), "?");
	assert_string_equal(mode_name((enum mode)-1), "?");
	static const char *const bad[] = { "", "Old", "NEW", "new ", " new", "maint", "holds", "?" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		enum mode m = MODE_HOLD;
		if (mode_parse(bad[i], &m) != -1)
			fail_msg("mode_parse('%s') accepted", bad[i]);
		assert_int_equal(m, MODE_HOLD); /* untouched */
	}
}

static void test_mode_for_null_snapshot(void **state)
{
	(void)state;
	assert_int_equal(state_mode_for(NULL, "x", 1), MODE_OLD);
}

/* Bytes this process has passed to write(2) so far (/proc/self/io wchar):
 * what a change costs on disk, independent of timing. */
static unsigned long long bytes_written(void)
{
	FILE *fp = fopen("/proc/self/io", "r");
	assert_non_null(fp);
	unsigned long long n = 0;
	char line[128];
	while (fgets(line, sizeof line, fp))
		if (sscanf(line, "wchar: %llu", &n) == 1)
			break;
	fclose(fp);
	return n;
}

#define MANY 10000
#define CHANGES 100

/* With 10,000 projects a change writes and keeps a few hundred bytes, not a
 * copy of all 10,000 (issue 13: every switch rewrote and cloned the whole
 * state, 28 ms and 337 MB peak over 10,000 switches). mallinfo2 reads 0
 * under ASan, where only the bytes-written half bites. */
static void test_change_cost_flat_in_projects(void **state)
{
	struct fx *f = *state;
	FILE *fp = fopen(f->t.path, "w");
	assert_non_null(fp);
	fputs("{\"mode\": \"old\", \"generation\": 1, \"projects\": {", fp);
	for (int i = 0; i < MANY; i++)
		fprintf(fp, "%s\"p%d\": {\"mode\": \"new\", \"resume_to\": \"new\", \"until\": null, "
			    "\"since\": \"2026-12-01T02:00:00Z\"}", i ? ", " : "", i);
	fputs("}}\n", fp);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(init_with(f, f->t.path), 0);

	char why[512], name[32];
	struct scope_state s = { .mode = MODE_OLD, .resume_to = MODE_OLD, .since = 1,
				 .reason = "scale" };
	unsigned long long w0 = bytes_written();
	size_t heap0 = mallinfo2().uordblks;
	for (int i = 0; i < CHANGES; i++) {
		/* half flip an existing project, half add one */
		snprintf(name, sizeof name, "p%d", i % 2 ? i * 97 % MANY : MANY + i);
		if (state_change(name, &s, why, sizeof why) < 0)
			fail_msg("change %d: %s", i, why);
	}
	size_t heap = mallinfo2().uordblks - heap0;
	unsigned long long w = bytes_written() - w0;
	print_message("%d changes at %d projects: %llu bytes written, %zu bytes kept\n", CHANGES,
		      MANY, w, heap);
	if (w > CHANGES * 1024ULL)
		fail_msg("%llu bytes written per change at %d projects", w / CHANGES, MANY);
	if (heap > CHANGES * 2048ULL)
		fail_msg("%zu bytes kept per change at %d projects", heap / CHANGES, MANY);

	const struct state_snapshot *cur = state_current();
	assert_int_equal(state_mode_for(cur, "p97", 3), MODE_OLD);
	assert_int_equal(state_mode_for(cur, "p98", 3), MODE_NEW);
	snprintf(name, sizeof name, "p%d", MANY + 2);
	assert_int_equal(state_mode_for(cur, name, strlen(name)), MODE_OLD);
	assert_int_equal(state_mode_for(cur, "p", 1), MODE_OLD); /* global */
}

static void change_ok(const char *project, enum mode m, const char *reason)
{
	char why[512];
	struct scope_state s = { .mode = m, .resume_to = m == MODE_NEW ? MODE_NEW : MODE_OLD,
				 .since = 1, .reason = (char *)reason };
	if (state_change(project, &s, why, sizeof why) < 0)
		fail_msg("change %s: %s", project ? project : "global", why);
}

/* Shuts down and loads again, as a restart does. */
static void restart(struct fx *f)
{
	state_shutdown();
	assert_int_equal(init_with(f, f->t.path), 0);
}

/* Every change survives a restart, whether it is in the document or in
 * the log after it; the first one saves a document to apply them to. */
static void test_changes_survive_a_restart(void **state)
{
	struct fx *f = *state;
	assert_int_equal(init_with(f, f->t.path), 0);
	change_ok("alpha", MODE_NEW, "pilot");
	change_ok(NULL, MODE_MAINTENANCE, "dump");
	change_ok("beta", MODE_HOLD, NULL);
	change_ok("alpha", MODE_OLD, NULL);
	char why[512];
	json_t *list = json_pack("[{s:i}]", "id", 7);
	assert_int_equal(state_set_scheduled(list, why, sizeof why), 0);
	json_decref(list);
	uint64_t gen = state_current()->generation;
	assert_int_equal(gen, 5);
	struct stat st;
	assert_int_equal(stat(f->t.path, &st), 0);   /* the document exists */

	restart(f);
	const struct state_snapshot *s = state_current();
	assert_int_equal(s->generation, gen);
	assert_int_equal(s->global.mode, MODE_MAINTENANCE);
	assert_string_equal(s->global.reason, "dump");
	assert_int_equal(s->n_projects, 2);
	assert_int_equal(state_mode_for(s, "alpha", 5), MODE_OLD);
	assert_null(state_project(s, "alpha", 5)->s.reason);
	assert_int_equal(state_mode_for(s, "beta", 4), MODE_HOLD);
	assert_int_equal(state_mode_for(s, "gamma", 5), MODE_MAINTENANCE);
	assert_string_equal(state_project_at(s, 0)->name, "alpha");
	assert_string_equal(state_project_at(s, 1)->name, "beta");
	assert_null(state_project_at(s, 2));
	assert_int_equal(json_array_size(state_scheduled()), 1);
	assert_string_equal(errs_of(f), "");
}

/* Changes already in the document (a crash between saving it and emptying
 * the log) are skipped; newer ones apply. */
static void test_log_older_than_document_is_skipped(void **state)
{
	struct fx *f = *state;
	char log[192];
	snprintf(log, sizeof log, "%s.log", f->t.path);
	write_file(f->t.path, "{\"mode\": \"old\", \"generation\": 10, \"projects\": "
			      "{\"alpha\": {\"mode\": \"new\"}}}\n");
	write_file(log, "{\"generation\": 9, \"project\": \"alpha\", \"scope\": {\"mode\": \"old\"}}\n"
			"{\"generation\": 10, \"scope\": {\"mode\": \"maintenance\"}}\n"
			"{\"generation\": 11, \"project\": \"beta\", \"scope\": {\"mode\": \"new\"}}\n");
	assert_int_equal(init_with(f, f->t.path), 0);
	const struct state_snapshot *s = state_current();
	assert_int_equal(s->generation, 11);
	assert_int_equal(s->global.mode, MODE_OLD);
	assert_int_equal(state_mode_for(s, "alpha", 5), MODE_NEW);
	assert_int_equal(state_mode_for(s, "beta", 4), MODE_NEW);
}

/* A bad change refuses the start (naming the store), and leaves whatever
 * was in force alone. */
static void test_bad_change_refuses_to_start(void **state)
{
	struct fx *f = *state;
	char log[192];
	snprintf(log, sizeof log, "%s.log", f->t.path);
	write_file(f->t.path, "{\"mode\": \"new\"}\n");
	assert_int_equal(init_with(f, f->t.path), 0);
	const struct state_snapshot *before = state_current();
	write_file(log, "{\"generation\": 1, \"project\": \"alpha\", \"scope\": {\"mode\": \"new\"}}\n"
			"{\"generation\": 2, \"project\": \"beta\", \"scope\": {\"mode\": \"sideways\"}}\n");
	assert_int_equal(init_with(f, f->t.path), -1);
	const char *e = errs_of(f);
	char want[256];
	snprintf(want, sizeof want, "%s:2: unknown mode 'sideways'\n", log);
	if (strncmp(e, want, strlen(want)) != 0)
		fail_msg("want '%s...', got '%s'", want, e);
	assert_ptr_equal(state_current(), before);
	assert_int_equal(state_current()->n_projects, 0);

	write_file(log, "not json\n{\"generation\": 1, \"scope\": {\"mode\": \"new\"}}\n");
	assert_int_equal(init_with(f, f->t.path), -1);
	assert_non_null(strstr(errs_of(f), log));
	assert_ptr_equal(state_current(), before);
}

/* Past the log's bound the whole state is saved again and the log
 * emptied; nothing is lost on the way. */
static void test_compaction_keeps_everything(void **state)
{
	struct fx *f = *state;
	char log[192], name[32];
	snprintf(log, sizeof log, "%s.log", f->t.path);
	assert_int_equal(init_with(f, f->t.path), 0);
	struct stat st;
	off_t longest = 0;
	int compactions = 0, i;
	for (i = 0; i < 6000 && compactions < 2; i++) {
		snprintf(name, sizeof name, "p%d", i % 500);
		change_ok(name, i % 3 ? MODE_NEW : MODE_MAINTENANCE, NULL);
		assert_int_equal(stat(log, &st), 0);
		if (st.st_size < longest)
			compactions++;
		longest = st.st_size;
	}
	assert_int_equal(compactions, 2);
	assert_true(longest <= STATE_STORE_LOG_MIN + 1024);
	restart(f);
	const struct state_snapshot *s = state_current();
	assert_int_equal(s->generation, (uint64_t)i);
	assert_int_equal(s->n_projects, 500);
	for (int k = i - 500; k < i; k++) {
		snprintf(name, sizeof name, "p%d", k % 500);
		assert_int_equal(state_mode_for(s, name, strlen(name)),
				 k % 3 ? MODE_NEW : MODE_MAINTENANCE);
	}
}

/* --start-mode over an unreadable state: the first change saves the whole
 * state over it (and drops its log). */
static void test_start_mode_then_change(void **state)
{
	struct fx *f = *state;
	char log[192];
	snprintf(log, sizeof log, "%s.log", f->t.path);
	write_file(f->t.path, "{\"mode\": \"new\"}\n");
	write_file(log, "garbage\n{}\n");
	assert_int_equal(state_init(state_store_file_new(f->t.path), "maintenance", f->errs), 0);
	assert_int_equal(state_current()->global.mode, MODE_MAINTENANCE);
	change_ok("alpha", MODE_NEW, NULL);
	restart(f);
	assert_int_equal(state_current()->global.mode, MODE_MAINTENANCE);
	assert_int_equal(state_mode_for(state_current(), "alpha", 5), MODE_NEW);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_absent_file),
		T(test_mode_new),
		T(test_every_mode_and_generation),
		T(test_corrupt_file),
		T(test_corrupt_file_line),
		T(test_empty_file),
		T(test_unknown_mode),
		T(test_unreachable_project_name),
		T(test_mode_case_sensitive),
		T(test_mode_missing_or_not_a_string),
		T(test_path_is_a_directory),
		T(test_unreadable_file),
		T(test_failed_init_keeps_current),
		T(test_mode_names),
		T(test_mode_for_null_snapshot),
		T(test_change_cost_flat_in_projects),
		T(test_changes_survive_a_restart),
		T(test_log_older_than_document_is_skipped),
		T(test_bad_change_refuses_to_start),
		T(test_compaction_keeps_everything),
		T(test_start_mode_then_change),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
