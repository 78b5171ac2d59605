/* tests for proxy/log.c: access log lines (log_access_format), the access
 * log file (open, reopen after rotation, concurrent writers), the error log
 * (log_msg), then log_conf_parse() through config_load_string(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <time.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "log.h"
#include "log_oracle.h"

static char tmpdir[64];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

static int group_setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/cutover-test-log.XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int group_teardown(void **state)
{
	(void)state;
	log_close();
	return nftw(tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static struct log_slice S(const char *s)
{
	return (struct log_slice){ s, s ? strlen(s) : 0 };
}

/* 2026-11-23T21:00:00.123Z */
static struct access_entry sample(void)
{
	return (struct access_entry){
		.start = { 1795467600, 123456789 },
		.client = S("127.0.0.1"),
		.method = S("POST"),
		.path = S("/a/alpha/receiver/?x=\"1\"\\"),
		.route = S("submit"),
		.project = S("alpha"),
		.upstream = S("old"),
		.status = 201,
		.bytes_in = 12345,
		.bytes_out = 678,
		.upstream_ms = 12.3456,
		.total_ms = 15.0004,
	};
}

/* Parses LINE (one object and a final '\n') back, or fails the test. */
static json_t *parse_line(const char *line, size_t len)
{
	assert_true(len > 0);
	assert_int_equal(line[len - 1], '\n');
	assert_null(memchr(line, '\n', len - 1));
	json_error_t err;
	json_t *j = json_loadb(line, len, JSON_ALLOW_NUL, &err);
	if (j == NULL)
		fail_msg("not JSON (%s): %.*s", err.text, (int)len, line);
	assert_true(json_is_object(j));
	return j;
}

static const char *str_of(json_t *j, const char *key)
{
	json_t *v = json_object_get(j, key);
	if (!json_is_string(v))
		fail_msg("\"%s\" is not a string", key);
	return json_string_value(v);
}

static void test_format_fields(void **state)
{
	(void)state;
	struct access_entry e = sample();
	char buf[2048];
	size_t n = log_access_format(&e, buf, sizeof buf);
	assert_int_equal(n, strlen(buf));
	json_t *j = parse_line(buf, n);

	assert_int_equal(json_object_size(j), 12);
	assert_string_equal(str_of(j, "time"), "2026-11-23T21:00:00.123Z");
	assert_string_equal(str_of(j, "client"), "127.0.0.1");
	assert_string_equal(str_of(j, "method"), "POST");
	assert_string_equal(str_of(j, "path"), "/a/alpha/receiver/?x=\"1\"\\");
	assert_string_equal(str_of(j, "route"), "submit");
	assert_string_equal(str_of(j, "project"), "alpha");
	assert_string_equal(str_of(j, "upstream"), "old");
	assert_int_equal(json_integer_value(json_object_get(j, "status")), 201);
	assert_int_equal(json_integer_value(json_object_get(j, "bytes_in")), 12345);
	assert_int_equal(json_integer_value(json_object_get(j, "bytes_out")), 678);
	assert_true(json_is_real(json_object_get(j, "upstream_ms")));
	assert_true(json_real_value(json_object_get(j, "upstream_ms")) == 12.346);
	assert_true(json_real_value(json_object_get(j, "total_ms")) == 15.0);
	json_decref(j);

	/* Compact, in key order, three decimals as written. */
	if (strncmp(buf, "{\"time\":\"2026-11-23T21:00:00.123Z\",\"client\":", 44) != 0)
		fail_msg("unexpected line start: %s", buf);
	assert_non_null(strstr(buf, "\"upstream_ms\":12.346,\"total_ms\":15.0}\n"));
}

static void test_format_nulls(void **state)
{
	(void)state;
	struct access_entry e = {
		.start = { 0, 999999999 },
		.client = S("::1"),
		.method = S("GET"),
		.path = S("/"),
		.status = 0,
		.upstream_ms = -1,
		.total_ms = 0.0004,
		.bytes_out = UINT64_MAX,
	};
	char buf[1024];
	size_t n = log_access_format(&e, buf, sizeof buf);
	json_t *j = parse_line(buf, n);
	assert_string_equal(str_of(j, "time"), "1970-01-01T00:00:00.999Z");
	assert_true(json_is_null(json_object_get(j, "route")));
	assert_true(json_is_null(json_object_get(j, "project")));
	assert_true(json_is_null(json_object_get(j, "upstream")));
	assert_true(json_is_null(json_object_get(j, "upstream_ms")));
	assert_int_equal(json_integer_value(json_object_get(j, "status")), 0);
	assert_true(json_real_value(json_object_get(j, "total_ms")) == 0.0);
	assert_true(json_integer_value(json_object_get(j, "bytes_out")) > 0);   /* clamped */
	json_decref(j);

	/* An empty non-NULL slice is "", not null. */
	e.project = (struct log_slice){ "", 0 };
	n = log_access_format(&e, buf, sizeof buf);
	j = parse_line(buf, n);
	assert_string_equal(str_of(j, "project"), "");
	json_decref(j);
}

static void test_format_invalid_utf8(void **state)
{
	(void)state;
	struct access_entry e = sample();
	/* A lone continuation byte, a truncated sequence, an overlong '/',
	 * a surrogate, NUL and a control character; valid é and € around. */
	static const char path[] = "/\x80x/\xc3/\xc0\xaf/\xed\xa0\x80/\xc3\xa9\xe2\x82\xac/\x00\x01\xff";
	e.path = (struct log_slice){ path, sizeof path - 1 };
	e.method = (struct log_slice){ "G\xe9T", 3 };
	char buf[2048];
	size_t n = log_access_format(&e, buf, sizeof buf);
	json_t *j = parse_line(buf, n);     /* jansson refuses invalid UTF-8 */
	json_t *p = json_object_get(j, "path");
	const char *want = "/\xef\xbf\xbdx/\xef\xbf\xbd/\xef\xbf\xbd\xef\xbf\xbd/"
			   "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd/\xc3\xa9\xe2\x82\xac/";
	size_t want_len = strlen(want) + 2 + 3;  /* then \0 \x01 and U+FFFD */
	assert_int_equal(json_string_length(p), want_len);
	assert_memory_equal(json_string_value(p), want, strlen(want));
	assert_memory_equal(json_string_value(p) + strlen(want), "\0\x01\xef\xbf\xbd", 5);
	assert_string_equal(str_of(j, "method"), "G\xef\xbf\xbdT");
	json_decref(j);
	/* Control characters are escaped, never raw, in the line. */
	assert_non_null(strstr(buf, "\\u0000\\u0001"));

	/* Long and invalid: past the sanitiser's stack buffer. */
	size_t big = 5000;
	char *raw = malloc(big);
	assert_non_null(raw);
	for (size_t i = 0; i < big; i++)
		raw[i] = i % 2 ? (char)0xfe : 'a';
	e.path = (struct log_slice){ raw, big };
	char *line = malloc(32768);
	assert_non_null(line);
	n = log_access_format(&e, line, 32768);
	j = parse_line(line, n);
	assert_int_equal(json_string_length(json_object_get(j, "path")), big / 2 * 4);
	json_decref(j);
	free(line);
	free(raw);
}

static void test_format_too_small(void **state)
{
	(void)state;
	struct access_entry e = sample();
	char buf[2048];
	size_t n = log_access_format(&e, buf, sizeof buf);
	assert_true(n > 0);
	char exact[2048];
	/* Room for the line, '\n' and NUL: fits; one byte less: 0. */
	assert_int_equal(log_access_format(&e, exact, n + 1), n);
	assert_string_equal(exact, buf);
	assert_int_equal(log_access_format(&e, exact, n), 0);
	assert_int_equal(log_access_format(&e, exact, 10), 0);
	assert_int_equal(log_access_format(&e, exact, 0), 0);
}

/* ---- the formatter against jansson (the oracle, tests/log_oracle.h) ----
 * The access log line used to be a jansson object dumped with
 * JSON_COMPACT | JSON_REAL_PRECISION(15); log_access_format() now writes it
 * by hand and must stay byte-identical to that. */

/* E's line from log_access_format() is the oracle's, byte for byte. */
static void expect_as_oracle(const struct access_entry *e, const char *what)
{
	char *want = oracle_line(e);
	size_t size = strlen(want) + 1 + 64;
	char *got = malloc(size);
	assert_non_null(got);
	size_t n = log_access_format(e, got, size);
	if (n != strlen(want) || memcmp(got, want, n) != 0)
		fail_msg("%s:\n got  %.*s want %s", what, (int)n, got, want);
	free(got);
	free(want);
}

#define SL(lit) ((struct log_slice){ (lit), sizeof(lit) - 1 })

static void test_format_as_jansson(void **state)
{
	(void)state;
	static const struct log_slice strings[] = {
		SL(""), SL("/"), SL("/a/b/c?x=1&y=/z"), SL("\"quoted\" \\back\\"),
		SL("\b\f\n\r\t"), SL("\x01\x02\x1f\x7f\x00x"), SL("/\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"),
		SL("\xef\xbb\xbf\xf4\x8f\xbf\xbf\xee\x80\x80"),     /* BOM, U+10FFFF, private use */
		SL("\x80\xbf\xc0\xaf\xc1\x80\xf5\x80\x80\x80\xff\xfe"),
		SL("\xe0\x80\xaf\xed\xa0\x80\xf0\x80\x80\x80\xf4\x90\x80\x80"),   /* overlong, surrogate, > U+10FFFF */
		SL("\xc3"), SL("ab\xe2\x82"), SL("\xf0\x9f\x98"), SL("</script>\\u0041"),
	};
	static const double mss[] = {
		0, 0.0004, 0.0005, 0.0015, 0.001, 0.01, 0.1, 0.5, 1, 3, 12.3456, 12.345, 15.0004,
		99.9995, 999.9999, 1234.5, 123456.789, 1e9, 999999999999.9999, 1e12, 1.5e12,
		123456789012.3456, 1e14 + 0.125, 1e15, 1e15 + 1, 1.234e17, 1e300, -0.0, -1, -1e-9,
		NAN, INFINITY, -INFINITY,
	};
	static const uint64_t counts[] = { 0, 1, 9, 10, 4294967296ull, (uint64_t)LLONG_MAX,
					   (uint64_t)LLONG_MAX + 1, UINT64_MAX };
	static const int statuses[] = { 0, 200, 201, 499, 504, -1, INT_MAX, INT_MIN };
	static const struct timespec times[] = {
		{ 0, 0 }, { 1795467600, 123456789 }, { 1795467600, 999999999 }, { 1795467600, 1000000 },
		{ 253402300799, 5000000 }, { 1795467601, -5 }, { 1795467601, 1000000000 },
	};

	struct access_entry e = sample();
	expect_as_oracle(&e, "sample");
	const size_t ns = sizeof strings / sizeof strings[0];
	for (size_t i = 0; i < ns; i++) {
		struct access_entry t = sample();
		t.client = t.method = t.path = t.route = t.project = t.upstream = strings[i];
		expect_as_oracle(&t, "strings");
		t.path = strings[(i + 3) % ns];
		t.route = (struct log_slice){ NULL, 0 };
		expect_as_oracle(&t, "mixed strings, null route");
	}
	for (size_t i = 0; i < sizeof mss / sizeof mss[0]; i++) {
		for (size_t k = 0; k < sizeof mss / sizeof mss[0]; k += 5) {
			struct access_entry t = sample();
			t.upstream_ms = mss[i];
			t.total_ms = mss[k];
			char what[96];
			snprintf(what, sizeof what, "upstream_ms %.17g total_ms %.17g", mss[i], mss[k]);
			expect_as_oracle(&t, what);
			t.upstream_ms = mss[k];
			t.total_ms = mss[i];
			expect_as_oracle(&t, what);
		}
	}
	for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
		struct access_entry t = sample();
		t.bytes_in = counts[i];
		t.bytes_out = counts[sizeof counts / sizeof counts[0] - 1 - i];
		t.status = statuses[i % (sizeof statuses / sizeof statuses[0])];
		expect_as_oracle(&t, "counters");
	}
	for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
		struct access_entry t = sample();
		t.start = times[i];
		expect_as_oracle(&t, "time");
	}
	struct access_entry nulls = { .start = { 1795467600, 0 }, .upstream_ms = -1, .total_ms = -5 };
	expect_as_oracle(&nulls, "every slice null");

	/* Random entries: bytes biased to what needs care, random doubles. */
	unsigned seed = 16;
	static const unsigned char pool[] = "\x00\x01\x1f\"\\/\x7f\x80\xbf\xc2\xc3\xe0\xe2\xed\xf0\xf4\xff"
					    "a%\xa9\x82\x9f\x90";
	for (int round = 0; round < 3000; round++) {
		char buf[6][96];
		struct log_slice sl[6];
		for (int f = 0; f < 6; f++) {
			size_t len = (size_t)(rand_r(&seed) % 96);
			for (size_t b = 0; b < len; b++)
				buf[f][b] = (char)(rand_r(&seed) % 3 ? pool[rand_r(&seed) % (sizeof pool - 1)]
								    : rand_r(&seed) % 256);
			sl[f] = rand_r(&seed) % 9 ? (struct log_slice){ buf[f], len }
						  : (struct log_slice){ NULL, 0 };
		}
		struct access_entry t = {
			.start = { (time_t)(rand_r(&seed) % 2000000000), rand_r(&seed) % 1000000000 },
			.client = sl[0], .method = sl[1], .path = sl[2], .route = sl[3],
			.project = sl[4], .upstream = sl[5],
			.status = rand_r(&seed) % 600,
			.bytes_in = (uint64_t)rand_r(&seed) << (rand_r(&seed) % 40),
			.bytes_out = (uint64_t)rand_r(&seed) * (uint64_t)rand_r(&seed),
			.upstream_ms = (double)rand_r(&seed) / (double)(1 + rand_r(&seed) % 100000) - 100,
			.total_ms = (double)rand_r(&seed) / 1000.0 * (rand_r(&seed) % 2 ? 1e6 : 1),
		};
		expect_as_oracle(&t, "random");
	}
}

/* jansson's allocator counts the allocations made while formatting. */
static size_t json_allocs;

static void *counting_malloc(size_t n)
{
	json_allocs++;
	return malloc(n);
}

static void test_format_allocates_nothing(void **state)
{
	(void)state;
	json_malloc_t saved_malloc;
	json_free_t saved_free;
	json_get_alloc_funcs(&saved_malloc, &saved_free);
	json_set_alloc_funcs(counting_malloc, free);
	struct access_entry e = sample();
	char buf[2048];
	json_allocs = 0;
	size_t n = log_access_format(&e, buf, sizeof buf);
	size_t allocs = json_allocs;
	json_set_alloc_funcs(saved_malloc, saved_free);
	assert_true(n > 0);
	if (allocs != 0)
		fail_msg("formatting one line made %zu allocations", allocs);
}

/* The longest path a request keeps (512 bytes), every byte at its widest
 * escape: the line stays inside the buffer it is given, whatever its size. */
static void test_format_bounded(void **state)
{
	(void)state;
	char path[512];
	memset(path, 0x01, sizeof path);           /* each one "\u0001" */
	struct access_entry e = sample();
	e.path = (struct log_slice){ path, sizeof path };
	char full[8192];
	size_t n = log_access_format(&e, full, sizeof full);
	assert_true(n > 6 * sizeof path);
	expect_as_oracle(&e, "long path");

	char *buf = malloc(n + 2 + 64);
	assert_non_null(buf);
	for (size_t size = 0; size <= n + 1; size++) {
		memset(buf, 'Z', n + 2 + 64);
		size_t got = log_access_format(&e, buf, size);
		assert_int_equal(got, size == n + 1 ? n : 0);
		for (size_t i = size; i < n + 2 + 64; i++)
			if (buf[i] != 'Z')
				fail_msg("size %zu: byte %zu written past the buffer", size, i);
	}
	free(buf);
}

/* ---- the access log file ---- */

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return NULL;
	char *s = NULL;
	size_t cap = 0, len = 0;
	for (;;) {
		if (len + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			s = realloc(s, cap);
			assert_non_null(s);
		}
		size_t n = fread(s + len, 1, 4096, f);
		len += n;
		if (n == 0)
			break;
	}
	s[len] = '\0';
	fclose(f);
	return s;
}

/* Lines of the file at PATH whose path contains NEEDLE, each checked to
 * be a whole JSON object. */
static size_t count_entries(const char *path, const char *needle)
{
	char *s = slurp(path);
	if (s == NULL)
		return 0;
	size_t n = 0;
	for (char *p = s; *p != '\0';) {
		char *end = strchr(p, '\n');
		assert_non_null(end);             /* every line is whole */
		json_t *j = parse_line(p, (size_t)(end - p + 1));
		if (strstr(str_of(j, "path"), needle) != NULL)
			n++;
		json_decref(j);
		p = end + 1;
	}
	free(s);
	return n;
}

static void log_path(struct access_entry *e, char *buf, size_t size, const char *what)
{
	snprintf(buf, size, "/echo?%s", what);
	e->path = S(buf);
}

static void test_open_write_reopen(void **state)
{
	(void)state;
	char path[128], rotated[160];
	snprintf(path, sizeof path, "%s/access.log", tmpdir);
	snprintf(rotated, sizeof rotated, "%s.1", path);

	mode_t old_mask = umask(022);
	struct log_conf c = { .access = path, .level = LL_INFO };
	assert_int_equal(log_open(&c), 0);
	umask(old_mask);
	assert_true(log_access_enabled());

	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);

	struct access_entry e = sample();
	char p[64];
	for (int i = 0; i < 3; i++) {
		log_path(&e, p, sizeof p, "before");
		log_access(&e);
	}
	assert_int_equal(count_entries(path, "before"), 3);

	assert_int_equal(rename(path, rotated), 0);
	log_path(&e, p, sizeof p, "between");
	log_access(&e);                     /* still the renamed file */
	assert_int_equal(access(path, F_OK), -1);

	assert_int_equal(log_reopen(), 0);
	log_path(&e, p, sizeof p, "after");
	log_access(&e);
	log_access(&e);

	assert_int_equal(count_entries(path, "after"), 2);
	assert_int_equal(count_entries(path, "before"), 0);
	assert_int_equal(count_entries(path, "between"), 0);
	assert_int_equal(count_entries(rotated, "before"), 3);
	assert_int_equal(count_entries(rotated, "between"), 1);
	assert_int_equal(count_entries(rotated, "after"), 0);

	/* A failed reopen keeps the old file. */
	char sub[128], subpath[160];
	snprintf(sub, sizeof sub, "%s/gone", tmpdir);
	assert_int_equal(mkdir(sub, 0700), 0);
	snprintf(subpath, sizeof subpath, "%s/access.log", sub);
	c.access = subpath;
	assert_int_equal(log_open(&c), 0);   /* replaces the fd in place */
	log_path(&e, p, sizeof p, "sub");
	log_access(&e);
	assert_int_equal(count_entries(subpath, "sub"), 1);
	char moved[160];
	snprintf(moved, sizeof moved, "%s/moved.log", tmpdir);
	assert_int_equal(rename(subpath, moved), 0);
	assert_int_equal(rmdir(sub), 0);
	log_set_level((enum log_level)(LL_ERROR + 1));     /* silence the error line */
	assert_int_equal(log_reopen(), -1);
	log_set_level(LL_INFO);
	log_path(&e, p, sizeof p, "kept");
	log_access(&e);
	assert_int_equal(count_entries(moved, "kept"), 1);

	/* A file that cannot be opened. */
	c.access = subpath;
	c.level = (enum log_level)(LL_ERROR + 1);   /* silence the error line */
	assert_int_equal(log_open(&c), -1);
	c.level = LL_INFO;
	log_set_level(LL_INFO);
	assert_true(log_access_enabled());    /* the old one stays */

	/* No access log. */
	c.access = NULL;
	assert_int_equal(log_open(&c), 0);
	assert_false(log_access_enabled());
	log_access(&e);                        /* harmless */
	assert_int_equal(log_reopen(), 0);
	log_close();
	assert_false(log_access_enabled());
	log_close();                           /* twice is harmless */
}

struct writer {
	int id;
	int lines;
};

static void *write_many(void *p)
{
	struct writer *w = p;
	struct access_entry e = sample();
	char path[256];
	/* Long enough that a torn or interleaved line would show. */
	char pad[1500];
	memset(pad, 'p', sizeof pad - 1);
	pad[sizeof pad - 1] = '\0';
	for (int i = 0; i < w->lines; i++) {
		snprintf(path, sizeof path, "/w%d/%d/%.200s", w->id, i, pad);
		e.path = S(path);
		log_access(&e);
	}
	return NULL;
}

/* While N threads TH write PER lines each with PREFIX: renames PATH
 * ROTATIONS (<= 8) times with a reopen after each, then checks every line
 * whole (count_entries parses each) and none lost, across all the files. */
static void rotate_join_count(const char *path, pthread_t *th, int n, int per, int rotations,
			      const char *prefix)
{
	char rotated[8][160];
	assert_true(rotations <= 8);
	for (int r = 0; r < rotations; r++) {
		usleep(2000);           /* spreads the rotations over the writes, not a sync */
		snprintf(rotated[r], sizeof rotated[r], "%s.%d", path, r);
		assert_int_equal(rename(path, rotated[r]), 0);
		assert_int_equal(log_reopen(), 0);
	}
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	log_close();
	size_t total = count_entries(path, prefix);
	for (int r = 0; r < rotations; r++)
		total += count_entries(rotated[r], prefix);
	assert_int_equal(total, (size_t)n * (size_t)per);
}

static void test_concurrent_writers_and_rotation(void **state)
{
	(void)state;
	char path[128];
	snprintf(path, sizeof path, "%s/busy.log", tmpdir);
	struct log_conf c = { .access = path, .level = LL_INFO };
	assert_int_equal(log_open(&c), 0);

	enum { THREADS = 4, LINES = 3000, ROTATIONS = 5 };
	pthread_t th[THREADS];
	struct writer w[THREADS];
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct writer){ i, LINES };
		assert_int_equal(pthread_create(&th[i], NULL, write_many, &w[i]), 0);
	}
	rotate_join_count(path, th, THREADS, LINES, ROTATIONS, "/w");
}

static void test_access_to_stderr(void **state)
{
	(void)state;
	char path[128];
	snprintf(path, sizeof path, "%s/stderr.txt", tmpdir);
	int saved = dup(STDERR_FILENO);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, STDERR_FILENO);
	close(fd);

	struct log_conf c = { .access = "stderr", .level = LL_INFO };
	assert_int_equal(log_open(&c), 0);
	assert_true(log_access_enabled());
	struct access_entry e = sample();
	e.path = S("/to-stderr");
	log_access(&e);
	assert_int_equal(log_reopen(), 0);    /* nothing to reopen */
	log_access(&e);
	log_close();

	dup2(saved, STDERR_FILENO);
	close(saved);
	assert_int_equal(count_entries(path, "/to-stderr"), 2);
}

/* ---- batches ---- */

/* A ~1 KiB line for batch tests, its path tagged with WHAT and I. */
static void batch_add(struct log_batch *b, const char *what, int i)
{
	char path[1024];
	snprintf(path, sizeof path, "/%s/%d/%0900d", what, i, 0);
	struct access_entry e = sample();
	e.path = S(path);
	log_batch_add(b, &e);
}

static void open_log(const char *path)
{
	struct log_conf c = { .access = (char *)path, .level = LL_INFO };
	assert_int_equal(log_open(&c), 0);
}

static void test_batch_by_size(void **state)
{
	(void)state;
	char path[128];
	snprintf(path, sizeof path, "%s/batch-size.log", tmpdir);
	open_log(path);
	struct log_batch *b = log_batch_new(NULL);
	assert_non_null(b);
	int i = 0;
	/* Nothing is written below 32 KiB... */
	while (log_batch_pending(b) + 1200 < 32 * 1024)
		batch_add(b, "size", i++);
	assert_true(i > 20);
	assert_int_equal(count_entries(path, "/size/"), 0);
	/* ...and everything in one go once a line takes it past. */
	while (log_batch_pending(b) > 0)
		batch_add(b, "size", i++);
	assert_int_equal(count_entries(path, "/size/"), (size_t)i);
	batch_add(b, "size", i++);
	assert_int_equal(count_entries(path, "/size/"), (size_t)i - 1);
	log_batch_flush(b);
	assert_int_equal(count_entries(path, "/size/"), (size_t)i);
	batch_add(b, "size", i++);
	assert_int_equal(log_batch_dropped(b), 0);
	log_batch_free(b);                     /* writes what is left */
	assert_int_equal(count_entries(path, "/size/"), (size_t)i);
	log_close();
}

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_batch_by_time(void **state)
{
	(void)state;
	char path[128];
	snprintf(path, sizeof path, "%s/batch-time.log", tmpdir);
	open_log(path);
	struct event_base *base = event_base_new();
	assert_non_null(base);
	struct log_batch *b = log_batch_new(base);
	assert_non_null(b);
	double t0 = mono_now();
	batch_add(b, "idle", 0);
	batch_add(b, "idle", 1);
	assert_int_equal(count_entries(path, "/idle/"), 0);
	/* The flush timer is the loop's only event: the loop ends once it ran. */
	assert_int_equal(event_base_dispatch(base), 1);
	double took = mono_now() - t0;
	assert_int_equal(count_entries(path, "/idle/"), 2);
	assert_int_equal(log_batch_pending(b), 0);
	if (took < 0.09 || took > 2.0)
		fail_msg("flushed after %.3f s, expected about 0.1", took);
	log_batch_free(b);
	event_base_free(base);
	log_close();
}

static void test_batch_reopen(void **state)
{
	(void)state;
	char path[128], rotated[160];
	snprintf(path, sizeof path, "%s/batch-rot.log", tmpdir);
	snprintf(rotated, sizeof rotated, "%s.1", path);
	open_log(path);
	struct log_batch *b = log_batch_new(NULL);
	for (int i = 0; i < 3; i++)
		batch_add(b, "before", i);
	assert_int_equal(rename(path, rotated), 0);
	assert_int_equal(log_reopen(), 0);
	/* Lines logged before the reopen are in the renamed file. */
	assert_int_equal(count_entries(rotated, "/before/"), 3);
	assert_int_equal(log_batch_pending(b), 0);
	batch_add(b, "after", 0);
	batch_add(b, "after", 1);
	log_batch_flush(b);
	assert_int_equal(count_entries(path, "/after/"), 2);
	assert_int_equal(count_entries(path, "/before/"), 0);
	assert_int_equal(count_entries(rotated, "/after/"), 0);
	/* log_close writes what a batch holds too. */
	batch_add(b, "closing", 0);
	log_close();
	assert_int_equal(count_entries(path, "/closing/"), 1);
	log_batch_free(b);
}

/* Writes that fail (a full disk): the batch keeps at most its bound, drops
 * and counts the rest, and what it kept goes out once writes work again. */
static void test_batch_full_disk(void **state)
{
	(void)state;
	open_log("/dev/full");
	log_set_level(LL_ERROR);               /* the drop warning */
	struct log_batch *b = log_batch_new(NULL);
	int added = 0;
	while (log_batch_dropped(b) < 10 && added < 10000)
		batch_add(b, "full", added++);
	log_set_level(LL_INFO);
	assert_int_equal(log_batch_dropped(b), 10);
	size_t kept = log_batch_pending(b);
	assert_true(kept > 200 * 1024 && kept <= 256 * 1024);

	char path[128];
	snprintf(path, sizeof path, "%s/batch-after-full.log", tmpdir);
	open_log(path);                        /* the old fd still fails: kept */
	log_batch_flush(b);
	assert_int_equal(log_batch_pending(b), 0);
	assert_int_equal(count_entries(path, "/full/"), (size_t)added - 10);
	log_batch_free(b);
	log_close();
}

struct batch_writer {
	int id;
	int lines;
};

static void *batch_write_many(void *p)
{
	struct batch_writer *w = p;
	struct log_batch *b = log_batch_new(NULL);
	assert_non_null(b);
	char what[16];
	snprintf(what, sizeof what, "bw%d", w->id);
	for (int i = 0; i < w->lines; i++)
		batch_add(b, what, i);
	log_batch_free(b);
	return NULL;
}

static void test_batch_concurrent_rotation(void **state)
{
	(void)state;
	char path[128];
	snprintf(path, sizeof path, "%s/batch-busy.log", tmpdir);
	open_log(path);
	enum { THREADS = 4, LINES = 2000, ROTATIONS = 5 };
	pthread_t th[THREADS];
	struct batch_writer w[THREADS];
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct batch_writer){ i, LINES };
		assert_int_equal(pthread_create(&th[i], NULL, batch_write_many, &w[i]), 0);
	}
	rotate_join_count(path, th, THREADS, LINES, ROTATIONS, "/bw");
}

/* "stderr" as the target: a pipe there gets whole lines. */
static void test_batch_to_stderr_pipe(void **state)
{
	(void)state;
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	int saved = dup(STDERR_FILENO);
	dup2(fds[1], STDERR_FILENO);
	close(fds[1]);
	open_log("stderr");
	struct log_batch *b = log_batch_new(NULL);
	for (int i = 0; i < 40; i++)                 /* ~40 KiB: fits the pipe */
		batch_add(b, "piped", i);
	log_batch_free(b);
	log_close();
	dup2(saved, STDERR_FILENO);
	close(saved);

	char path[128];
	snprintf(path, sizeof path, "%s/piped.txt", tmpdir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	char buf[8192];
	ssize_t n;
	while ((n = read(fds[0], buf, sizeof buf)) > 0)
		fwrite(buf, 1, (size_t)n, f);
	fclose(f);
	close(fds[0]);
	assert_int_equal(count_entries(path, "/piped/"), 40);
}

/* ---- the error log ---- */

static void test_error_log(void **state)
{
	(void)state;
	char path[128];
	snprintf(path, sizeof path, "%s/errors.txt", tmpdir);
	int saved = dup(STDERR_FILENO);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, STDERR_FILENO);
	close(fd);

	log_set_level(LL_INFO);
	log_debug("hidden %d", 1);
	log_info("listening on %s", "127.0.0.1:18080");
	log_warn("two\nlines\r");
	log_set_level(LL_ERROR);
	log_warn("hidden too");
	log_error("boom %d", 42);
	char big[6000];
	memset(big, 'b', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	log_error("%s", big);
	log_set_level(LL_INFO);

	dup2(saved, STDERR_FILENO);
	close(saved);

	char *s = slurp(path);
	assert_non_null(s);
	assert_null(strstr(s, "hidden"));
	char *lines[8];
	size_t n = 0;
	for (char *p = s, *end; (end = strchr(p, '\n')) != NULL && n < 8; p = end + 1) {
		*end = '\0';
		lines[n++] = p;
	}
	assert_int_equal(n, 4);
	/* "2026-11-23T21:00:00.123Z LEVEL message" */
	for (size_t i = 0; i < n; i++) {
		int y, mo, d, h, mi, sec, ms;
		char z;
		if (sscanf(lines[i], "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c ", &y, &mo, &d, &h, &mi, &sec,
			   &ms, &z) != 8 || z != 'Z' || lines[i][24] != ' ' || y < 2024)
			fail_msg("bad time stamp: %s", lines[i]);
	}
	assert_string_equal(lines[0] + 25, "INFO listening on 127.0.0.1:18080");
	assert_string_equal(lines[1] + 25, "WARN two lines ");
	assert_string_equal(lines[2] + 25, "ERROR boom 42");
	/* Truncated, marked, still one line. */
	assert_true(strlen(lines[3]) < 4096);
	assert_string_equal(lines[3] + strlen(lines[3]) - 4, "b...");
	free(s);
}

/* ---- log_conf_parse() through config_load_string() ---- */

#define CONF_NAME "test.conf"
#define PRELUDE_LINES 6
static const char prelude[] =
	"listen = ( { address = \"127.0.0.1:18080\"; } );\n"
	"admin = { address = \"unix:/tmp/cutover-test/admin.sock\"; };\n"
	"upstreams = { old = { url = \"http://127.0.0.1:18081\"; };\n"
	"              new = { url = \"http://127.0.0.1:18082\"; }; };\n"
	"state_file = \"/tmp/cutover-test/state.json\";\n"
	"journal_file = \"/tmp/cutover-test/journal.log\";\n";

static struct config *load(const char *text, char **errs)
{
	size_t n = strlen(prelude) + strlen(text) + 1;
	char *all = malloc(n);
	assert_non_null(all);
	snprintf(all, n, "%s%s", prelude, text);
	size_t len;
	FILE *f = open_memstream(errs, &len);
	assert_non_null(f);
	struct config *cfg = config_load_string(all, CONF_NAME, f);
	fclose(f);
	free(all);
	return cfg;
}

static void expect_msg(const char *errs, int line, const char *msg)
{
	char prefix[64];
	snprintf(prefix, sizeof prefix, CONF_NAME ":%d: ", line);
	for (const char *p = errs; *p != '\0';) {
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (strncmp(p, prefix, strlen(prefix)) == 0 && memmem(p, len, msg, strlen(msg)))
			return;
		p += len + (end != NULL);
	}
	fail_msg("expected \"%s...%s\" in:\n%s", prefix, msg, errs);
}

static void test_conf_values(void **state)
{
	(void)state;
	char *errs;
	struct config *cfg = load("log = { access = \"/var/log/cutover/access.log\"; "
				  "level = \"debug\"; format = \"json\"; };\n", &errs);
	if (cfg == NULL || errs[0] != '\0')
		fail_msg("expected a clean load:\n%s", errs);
	assert_string_equal(cfg->log->access, "/var/log/cutover/access.log");
	assert_int_equal(cfg->log->level, LL_DEBUG);
	config_free(cfg);
	free(errs);

	static const struct { const char *text; enum log_level level; } levels[] = {
		{ "info", LL_INFO }, { "warn", LL_WARN }, { "error", LL_ERROR },
	};
	for (size_t i = 0; i < 3; i++) {
		char text[128];
		snprintf(text, sizeof text, "log = { access = \"stderr\"; level = \"%s\"; };\n",
			 levels[i].text);
		cfg = load(text, &errs);
		if (cfg == NULL || errs[0] != '\0')
			fail_msg("expected a clean load:\n%s", errs);
		assert_int_equal(cfg->log->level, levels[i].level);
		assert_string_equal(cfg->log->access, "stderr");
		config_free(cfg);
		free(errs);
	}

	/* Defaults: no access log, level info. */
	cfg = load("log = { };\n", &errs);
	assert_non_null(cfg);
	assert_null(cfg->log->access);
	assert_int_equal(cfg->log->level, LL_INFO);
	config_free(cfg);
	free(errs);
}

static void test_conf_errors(void **state)
{
	(void)state;
	char *errs;
	const int P = PRELUDE_LINES;
	struct config *cfg = load("log = {\n"
				  "  access = \"\";\n"
				  "  level = \"verbose\";\n"
				  "  format = \"text\";\n"
				  "  rotate = true;\n"
				  "};\n", &errs);
	assert_null(cfg);
	expect_msg(errs, P + 2, "log.access: must not be empty");
	expect_msg(errs, P + 3, "log.level: \"verbose\" is not one of");
	expect_msg(errs, P + 4, "log.format: \"text\" is not supported");
	expect_msg(errs, P + 5, "unknown key 'rotate' in log");
	size_t lines = 0;
	for (const char *p = errs; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 4);
	free(errs);

	cfg = load("log = { level = 3; access = 7; };\n", &errs);
	assert_null(cfg);
	expect_msg(errs, P + 1, "log.level: expected a string");
	expect_msg(errs, P + 1, "log.access: expected a string");
	free(errs);

	cfg = load("log = \"stderr\";\n", &errs);
	assert_null(cfg);
	expect_msg(errs, P + 1, "log: expected a group");
	free(errs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_fields),
		cmocka_unit_test(test_format_nulls),
		cmocka_unit_test(test_format_invalid_utf8),
		cmocka_unit_test(test_format_too_small),
		cmocka_unit_test(test_format_as_jansson),
		cmocka_unit_test(test_format_allocates_nothing),
		cmocka_unit_test(test_format_bounded),
		cmocka_unit_test(test_open_write_reopen),
		cmocka_unit_test(test_concurrent_writers_and_rotation),
		cmocka_unit_test(test_access_to_stderr),
		cmocka_unit_test(test_batch_by_size),
		cmocka_unit_test(test_batch_by_time),
		cmocka_unit_test(test_batch_reopen),
		cmocka_unit_test(test_batch_full_disk),
		cmocka_unit_test(test_batch_concurrent_rotation),
		cmocka_unit_test(test_batch_to_stderr_pipe),
		cmocka_unit_test(test_error_log),
	};
	const struct CMUnitTest conf_tests[] = {
		cmocka_unit_test(test_conf_values),
		cmocka_unit_test(test_conf_errors),
	};
	int failed = cmocka_run_group_tests_name("log", tests, group_setup, group_teardown);
	failed += cmocka_run_group_tests_name("log_conf_parse", conf_tests, NULL, NULL);
	return failed;
}
