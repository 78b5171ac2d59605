/* tests for proxy/route.c: route_match() on tables built by hand (no config
 * parsing involved), then route_conf_parse() through config_load(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "config.h"
#include "route.h"

/* ---- tables built by hand ---- */

struct spec {
	const char *name;
	const char *methods[4];     /* NULL-terminated; all NULL = any method */
	const char *path;
	int project;
	bool spool;
};

static char *dup_or_null(const char *s)
{
	if (s == NULL)
		return NULL;
	char *d = strdup(s);
	assert_non_null(d);
	return d;
}

static struct route_table *table_new(const struct spec *s, size_t n)
{
	struct route_table *t = calloc(1, sizeof *t);
	assert_non_null(t);
	t->v = calloc(n, sizeof *t->v);
	assert_non_null(t->v);
	t->n = n;
	for (size_t i = 0; i < n; i++) {
		struct route *rt = &t->v[i];
		rt->name = dup_or_null(s[i].name);
		if (s[i].methods[0] != NULL) {
			size_t k = 0;
			while (s[i].methods[k] != NULL)
				k++;
			rt->methods = calloc(k + 1, sizeof *rt->methods);
			assert_non_null(rt->methods);
			for (size_t j = 0; j < k; j++)
				rt->methods[j] = dup_or_null(s[i].methods[j]);
		}
		rt->path = dup_or_null(s[i].path);
		rt->project_group = s[i].project;
		rt->spool = s[i].spool;
		char why[256] = "";
		if (route_compile(rt, why, sizeof why) != 0)
			fail_msg("route_compile(\"%s\"): %s", s[i].path, why);
		assert_true((rt->re != NULL) == (rt->path != NULL));
	}
	return t;
}

/* The contract's minimal routes. */
static const struct spec minimal[] = {
	{ "submit",  { "POST", "HEAD" }, "^/a/([^/]+)/receiver/",      1, true },
	{ "restore", { NULL },           "^/a/([^/]+)/phone/restore/", 1, false },
	{ "project", { NULL },           "^/a/([^/]+)/",               1, false },
	{ "default", { NULL },           NULL,                         0, false },
};

/* Matches METHOD PATH and checks the route name and the project. */
static void expect_route(const struct route_table *t, const char *method, const char *path,
			 const char *want_route, const char *want_project)
{
	struct route_project p = { NULL, 12345 };
	const struct route *rt = route_match(t, method, strlen(method), path, strlen(path), &p);
	if (want_route == NULL) {
		if (rt != NULL)
			fail_msg("%s %s: expected no route, got '%s'", method, path, rt->name);
	} else if (rt == NULL || strcmp(rt->name, want_route) != 0) {
		fail_msg("%s %s: expected route '%s', got '%s'", method, path, want_route,
			 rt ? rt->name : "(none)");
	}
	assert_non_null(p.ptr);
	if (want_project == NULL) {
		assert_int_equal(p.len, 0);
		return;
	}
	/* The project is a slice of PATH itself. */
	assert_true(p.ptr >= path && p.ptr + p.len <= path + strlen(path));
	if (p.len != strlen(want_project) || memcmp(p.ptr, want_project, p.len) != 0)
		fail_msg("%s %s: expected project \"%s\", got \"%.*s\"", method, path,
			 want_project, (int)p.len, p.ptr);
}

static void test_minimal_routes(void **state)
{
	(void)state;
	struct route_table *t = table_new(minimal, 4);

	expect_route(t, "POST", "/a/alpha/receiver/", "submit", "alpha");
	expect_route(t, "HEAD", "/a/alpha/receiver/", "submit", "alpha");
	expect_route(t, "POST", "/a/alpha/receiver/secure/x", "submit", "alpha");
	expect_route(t, "GET", "/a/alpha/receiver/", "project", "alpha");
	expect_route(t, "GET", "/a/beta/phone/restore/", "restore", "beta");
	expect_route(t, "POST", "/a/beta/phone/restore/", "restore", "beta");
	expect_route(t, "GET", "/a/gamma/phone/heartbeat/x/", "project", "gamma");
	expect_route(t, "GET", "/", "default", NULL);
	expect_route(t, "POST", "/sink", "default", NULL);
	expect_route(t, "GET", "/a/", "default", NULL);
	expect_route(t, "GET", "/a//receiver/", "default", NULL);
	expect_route(t, "GET", "/b/alpha/", "default", NULL);
	expect_route(t, "GET", "", "default", NULL);

	route_table_free(t);
}

static void test_methods_are_exact(void **state)
{
	(void)state;
	struct route_table *t = table_new(minimal, 4);
	const char *path = "/a/alpha/receiver/";

	expect_route(t, "post", path, "project", "alpha");   /* case-sensitive */
	expect_route(t, "POS", path, "project", "alpha");    /* not a prefix match */
	expect_route(t, "POSTX", path, "project", "alpha");
	expect_route(t, "PUT", path, "project", "alpha");

	/* The method is a slice: only METHOD_LEN bytes count. */
	struct route_project p;
	const struct route *rt = route_match(t, "POSTGET", 4, path, strlen(path), &p);
	assert_non_null(rt);
	assert_string_equal(rt->name, "submit");
	rt = route_match(t, "HEADER", 6, path, strlen(path), &p);
	assert_string_equal(rt->name, "project");
	rt = route_match(t, NULL, 0, path, strlen(path), &p);
	assert_string_equal(rt->name, "project");

	route_table_free(t);
}

static void test_path_is_a_slice(void **state)
{
	(void)state;
	struct route_table *t = table_new(minimal, 4);
	/* Not NUL-terminated where the path ends: the regex must not see
	 * past PATH_LEN. */
	const char buf[] = "/a/alpha/receiver/";
	struct route_project p;
	const struct route *rt = route_match(t, "POST", 4, buf, 9, &p);      /* "/a/alpha/" */
	assert_string_equal(rt->name, "project");
	assert_int_equal(p.len, 5);
	assert_memory_equal(p.ptr, "alpha", 5);
	rt = route_match(t, "POST", 4, buf, 8, &p);                          /* "/a/alpha" */
	assert_string_equal(rt->name, "default");
	assert_int_equal(p.len, 0);

	/* Bytes that are not UTF-8, and a NUL, are just bytes. */
	const char odd[] = "/a/\xff\x00z/receiver/";
	rt = route_match(t, "POST", 4, odd, sizeof odd - 1, &p);
	assert_string_equal(rt->name, "submit");
	assert_int_equal(p.len, 3);
	assert_memory_equal(p.ptr, "\xff\x00z", 3);

	/* "$" anchors at the end of the slice. */
	static const struct spec exact[] = { { "x", { NULL }, "^/x$", 0, false } };
	struct route_table *tx = table_new(exact, 1);
	rt = route_match(tx, "GET", 3, "/xyz", 2, &p);
	assert_non_null(rt);
	rt = route_match(tx, "GET", 3, "/xyz", 3, &p);
	assert_null(rt);
	route_table_free(tx);

	route_table_free(t);
}

static void test_no_match_and_no_table(void **state)
{
	(void)state;
	struct route_table *t = table_new(minimal, 1);      /* "submit" only */
	struct route_project p = { NULL, 99 };
	const char *path = "/a/alpha/receiver/";
	assert_null(route_match(t, "GET", 3, path, strlen(path), &p));
	assert_ptr_equal(p.ptr, path);
	assert_int_equal(p.len, 0);

	p = (struct route_project){ NULL, 99 };
	assert_null(route_match(NULL, "GET", 3, path, strlen(path), &p));
	assert_ptr_equal(p.ptr, path);
	assert_int_equal(p.len, 0);

	/* An empty table, and a NULL PROJECT. */
	struct route_table empty = { NULL, 0 };
	assert_null(route_match(&empty, "GET", 3, "/", 1, &p));
	assert_non_null(route_match(t, "POST", 4, path, strlen(path), NULL));
	/* A NULL path is an empty one. */
	assert_null(route_match(t, "POST", 4, NULL, 0, &p));
	assert_non_null(p.ptr);
	assert_int_equal(p.len, 0);

	route_table_free(t);
	route_table_free(NULL);
}

static void test_project_group_edges(void **state)
{
	(void)state;
	static const struct spec s[] = {
		/* group 1 is optional: the route matches without a project */
		{ "opt", { NULL }, "^/p(?:/([a-z]+))?", 1, false },
		/* project 0 = none, even with captures */
		{ "none", { NULL }, "^/q/([a-z]+)", 0, false },
		/* the second group holds the project */
		{ "second", { NULL }, "^/v1/(projects)/([0-9]+)/", 2, false },
	};
	struct route_table *t = table_new(s, 3);
	expect_route(t, "GET", "/p", "opt", NULL);
	expect_route(t, "GET", "/p/abc", "opt", "abc");
	expect_route(t, "GET", "/q/abc", "none", NULL);
	expect_route(t, "GET", "/v1/projects/42/forms", "second", "42");
	route_table_free(t);

	/* A project group past the default match data size (32 pairs): the
	 * per-thread match data grows. */
	char re[512] = "^/";
	for (int i = 0; i < 39; i++)
		strcat(re, "(x)");
	strcat(re, "([a-z]+)$");
	char path[128] = "/";
	for (int i = 0; i < 39; i++)
		strcat(path, "x");
	strcat(path, "hello");
	struct spec big[] = { { "big", { NULL }, re, 40, false } };
	t = table_new(big, 1);
	expect_route(t, "GET", path, "big", "hello");
	route_table_free(t);
}

static void test_compile_errors(void **state)
{
	(void)state;
	struct route rt = { .path = strdup("^/a/(") };
	char why[256] = "";
	assert_int_equal(route_compile(&rt, why, sizeof why), -1);
	assert_null(rt.re);
	if (strstr(why, "missing closing parenthesis") == NULL || strstr(why, "offset 5") == NULL)
		fail_msg("unexpected reason: %s", why);

	free(rt.path);
	rt.path = strdup("a[z-a]");
	assert_int_equal(route_compile(&rt, why, sizeof why), -1);
	if (strstr(why, "range out of order") == NULL || strstr(why, "offset 4") == NULL)
		fail_msg("unexpected reason: %s", why);

	/* Compiling again replaces the old code (ASan would see a leak). */
	free(rt.path);
	rt.path = strdup("^/ok/");
	assert_int_equal(route_compile(&rt, why, sizeof why), 0);
	assert_non_null(rt.re);

	/* JIT code whenever this machine can JIT at all. */
	int err;
	PCRE2_SIZE off;
	pcre2_code *probe = pcre2_compile((PCRE2_SPTR) "^/x", PCRE2_ZERO_TERMINATED, 0, &err,
					  &off, NULL);
	assert_non_null(probe);
	if (pcre2_jit_compile(probe, PCRE2_JIT_COMPLETE) == 0) {
		size_t jit_size = 0;
		assert_int_equal(pcre2_pattern_info(rt.re, PCRE2_INFO_JITSIZE, &jit_size), 0);
		assert_true(jit_size > 0);
	}
	pcre2_code_free(probe);

	assert_int_equal(route_compile(&rt, NULL, 0), 0);
	assert_non_null(rt.re);
	free(rt.path);
	rt.path = NULL;
	assert_int_equal(route_compile(&rt, why, sizeof why), 0);
	assert_null(rt.re);
}

struct worker_arg {
	const struct route_table *t;
	int failures;
};

static void *match_many(void *p)
{
	struct worker_arg *a = p;
	static const struct {
		const char *method, *path, *route, *project;
	} cases[] = {
		{ "POST", "/a/alpha/receiver/", "submit", "alpha" },
		{ "GET", "/a/beta/phone/restore/", "restore", "beta" },
		{ "GET", "/a/gamma/x", "project", "gamma" },
		{ "GET", "/", "default", "" },
	};
	for (int i = 0; i < 20000; i++) {
		size_t k = (size_t)i % 4;
		struct route_project proj;
		const struct route *rt = route_match(a->t, cases[k].method,
						     strlen(cases[k].method), cases[k].path,
						     strlen(cases[k].path), &proj);
		if (rt == NULL || strcmp(rt->name, cases[k].route) != 0 ||
		    proj.len != strlen(cases[k].project) ||
		    memcmp(proj.ptr, cases[k].project, proj.len) != 0)
			a->failures++;
	}
	return NULL;
}

static void test_threads(void **state)
{
	(void)state;
	struct route_table *t = table_new(minimal, 4);
	pthread_t th[8];
	struct worker_arg args[8];
	for (int i = 0; i < 8; i++) {
		args[i] = (struct worker_arg){ t, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, match_many, &args[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(args[i].failures, 0);
	}
	route_table_free(t);
}

/* ---- route_conf_parse() through config_load_string() ---- */

#define CONF_NAME "test.conf"
/* Lines 1-8 of every fixture; a test's routes start at line 9. */
#define PRELUDE_LINES 8
static const char prelude[] =
	"listen = ( { address = \"127.0.0.1:18080\"; } );\n"
	"admin = { address = \"unix:/tmp/cutover-test/admin.sock\"; };\n"
	"upstreams = {\n"
	"  old = { url = \"http://127.0.0.1:18081\"; };\n"
	"  new = { url = \"http://127.0.0.1:18082\"; };\n"
	"};\n"
	"state_file = \"/tmp/cutover-test/state.json\"; journal_file = \"/tmp/cutover-test/j.log\";\n"
	"spool = { dir = \"/tmp/cutover-test/spool\"; };\n";

static struct config *load(const char *routes, char **errs)
{
	size_t n = strlen(prelude) + strlen(routes) + 1;
	char *text = malloc(n);
	assert_non_null(text);
	snprintf(text, n, "%s%s", prelude, routes);
	size_t len;
	FILE *f = open_memstream(errs, &len);
	assert_non_null(f);
	struct config *cfg = config_load_string(text, CONF_NAME, f);
	fclose(f);
	free(text);
	return cfg;
}

static size_t count_lines(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* Asserts that one line of ERRS starts with "test.conf:LINE: " and contains
 * every one of the NULL-terminated WANT strings. */
static void expect_msg_at(const char *errs, int line, const char *const want[])
{
	char prefix[64];
	snprintf(prefix, sizeof prefix, CONF_NAME ":%d: ", line);
	for (const char *p = errs; *p != '\0';) {
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (strncmp(p, prefix, strlen(prefix)) == 0) {
			bool all = true;
			for (size_t i = 0; want[i] != NULL && all; i++)
				all = memmem(p, len, want[i], strlen(want[i])) != NULL;
			if (all)
				return;
		}
		p += len + (end != NULL);
	}
	fail_msg("expected a line \"%s...%s...\" in:\n%s", prefix, want[0], errs);
}

#define expect_msg(errs, line, ...) \
	expect_msg_at((errs), (line), (const char *const[]){ __VA_ARGS__, NULL })

static void test_conf_minimal(void **state)
{
	(void)state;
	char *errs;
	size_t len;
	FILE *f = open_memstream(&errs, &len);
	struct config *cfg = config_load(TEST_SRCDIR "/data/minimal.conf", f);
	fclose(f);
	if (cfg == NULL || errs[0] != '\0')
		fail_msg("minimal.conf must load cleanly:\n%s", errs);
	free(errs);

	const struct route_table *t = cfg->routes;
	assert_non_null(t);
	assert_int_equal(t->n, 4);
	const struct route *s = &t->v[0];
	assert_string_equal(s->name, "submit");
	assert_non_null(s->methods);
	assert_string_equal(s->methods[0], "POST");
	assert_string_equal(s->methods[1], "HEAD");
	assert_null(s->methods[2]);
	assert_string_equal(s->path, "^/a/([^/]+)/receiver/");
	assert_non_null(s->re);
	assert_int_equal(s->project_group, 1);
	assert_true(s->spool);
	assert_int_equal(s->max_body, 0);
	assert_int_equal(s->maintenance, ROUTE_MAINT_UNAVAILABLE);
	assert_int_equal(s->line, 11);

	assert_string_equal(t->v[1].name, "restore");
	assert_null(t->v[1].methods);
	assert_false(t->v[1].spool);
	assert_int_equal(t->v[1].line, 12);
	assert_string_equal(t->v[3].name, "default");
	assert_null(t->v[3].methods);
	assert_null(t->v[3].path);
	assert_null(t->v[3].re);
	assert_int_equal(t->v[3].project_group, 0);
	assert_int_equal(t->v[3].line, 14);

	expect_route(t, "POST", "/a/alpha/receiver/", "submit", "alpha");
	expect_route(t, "GET", "/a/alpha/receiver/", "project", "alpha");
	expect_route(t, "GET", "/a/beta/phone/restore/", "restore", "beta");
	expect_route(t, "GET", "/", "default", NULL);
	config_free(cfg);
}

static void test_conf_values(void **state)
{
	(void)state;
	char *errs;
	struct config *cfg = load(
		"routes = (\n"
		"  { name = \"restore\"; match = { path = \"^/a/([^/]+)/phone/restore/\"; };\n"
		"    project = 1; maintenance = \"restore-pending\"; max_body = \"64M\"; },\n"
		"  { name = \"plain\"; match = { methods = [\"GET\", \"M-SEARCH\"]; path = \"^/x/(y)\"; };\n"
		"    project = 0; maintenance = \"unavailable\"; max_body = 1000; spool = false; },\n"
		"  { name = \"s1\"; match = { path = \"^/s1\"; }; spool = true; spool_auth = \"required\"; },\n"
		"  { name = \"s2\"; match = { path = \"^/s2\"; }; spool = true; spool_auth = \"optional\"; }\n"
		");\n", &errs);
	if (cfg == NULL || errs[0] != '\0')
		fail_msg("expected a clean load:\n%s", errs);
	const struct route_table *t = cfg->routes;
	assert_int_equal(t->n, 4);
	assert_int_equal(t->v[0].maintenance, ROUTE_MAINT_RESTORE_PENDING);
	assert_int_equal(t->v[0].spool_auth, ROUTE_SPOOL_AUTH_OPTIONAL); /* the default */
	assert_int_equal(t->v[2].spool_auth, ROUTE_SPOOL_AUTH_REQUIRED);
	assert_int_equal(t->v[3].spool_auth, ROUTE_SPOOL_AUTH_OPTIONAL);
	assert_int_equal(t->v[0].max_body, 64ULL << 20);
	assert_int_equal(t->v[0].line, PRELUDE_LINES + 2);
	assert_int_equal(t->v[1].maintenance, ROUTE_MAINT_UNAVAILABLE);
	assert_int_equal(t->v[1].max_body, 1000);
	assert_int_equal(t->v[1].project_group, 0);
	assert_string_equal(t->v[1].methods[1], "M-SEARCH");
	expect_route(t, "GET", "/x/y", "plain", NULL);
	assert_null(route_match(t, "POST", 4, "/x/y", 4, NULL));
	config_free(cfg);
	free(errs);

	/* An empty list is valid: nothing matches. */
	cfg = load("routes = ( );\n", &errs);
	if (cfg == NULL || errs[0] != '\0')
		fail_msg("expected a clean load:\n%s", errs);
	assert_int_equal(cfg->routes->n, 0);
	assert_null(route_match(cfg->routes, "GET", 3, "/", 1, NULL));
	config_free(cfg);
	free(errs);
}

static void test_conf_errors(void **state)
{
	(void)state;
	char *errs;
	const int P = PRELUDE_LINES;
	struct config *cfg = load(
		"routes = (\n"
		"  { name = \"a\"; match = { path = \"^/a/(\"; }; },\n"
		"  { name = \"b\"; match = { path = \"^/b/([^/]+)/\"; }; project = 2; },\n"
		"  { name = \"c\"; match = { path = \"^/c\"; }; colour = \"red\"; },\n"
		"  { name = \"a\"; match = { path = \"^/a2\"; }; },\n"
		"  { match = { methods = [\"post\"]; }; },\n"
		"  { name = \"d\"; match = { methods = [\"GET\"]; }; project = 1; },\n"
		"  { name = \"e\"; match = { path = \"^/e\"; }; maintenance = \"later\"; spool = \"yes\"; },\n"
		"  { name = \"f\"; match = { methods = [\"GET\"]; path = 42; verbs = [\"GET\"]; }; },\n"
		"  { name = \"g\"; match = { path = \"^/g\"; }; max_body = \"12Q\"; project = -1; },\n"
		"  { name = \"\"; match = { methods = []; path = \"^/h\"; }; },\n"
		"  { name = \"i\"; spool = true; spool_auth = \"always\"; }\n"
		");\n", &errs);
	assert_null(cfg);
	expect_msg(errs, P + 2, "invalid regular expression \"^/a/(\"",
		   "missing closing parenthesis", "offset 5");
	expect_msg(errs, P + 3, "project = 2", "only 1 capture group");
	expect_msg(errs, P + 4, "unknown key 'colour'");
	expect_msg(errs, P + 5, "route name \"a\" is already used by the route at line 10");
	expect_msg(errs, P + 6, "missing required key 'name'");
	expect_msg(errs, P + 6, "\"post\" is not a method name");
	expect_msg(errs, P + 7, "project = 1", "no match.path");
	expect_msg(errs, P + 8, "\"later\" is not one of");
	expect_msg(errs, P + 8, "expected a boolean");
	expect_msg(errs, P + 9, "expected a string");
	expect_msg(errs, P + 9, "unknown key 'verbs'");
	expect_msg(errs, P + 10, "invalid size \"12Q\"");
	expect_msg(errs, P + 10, "out of range");
	expect_msg(errs, P + 11, "must not be empty");
	expect_msg(errs, P + 11, "empty list matches no request");
	expect_msg(errs, P + 12, "\"always\" is not one of \"required\", \"optional\"");
	/* Every error once, nothing else. */
	if (count_lines(errs) != 16)
		fail_msg("expected 16 messages, got:\n%s", errs);
	free(errs);
}

static void test_conf_shape(void **state)
{
	(void)state;
	char *errs;
	struct config *cfg = load("routes = { name = \"x\"; };\n", &errs);
	assert_null(cfg);
	expect_msg(errs, PRELUDE_LINES + 1, "routes: expected a list");
	free(errs);

	cfg = load("routes = ( \"default\", { name = \"ok\"; match = \"^/\"; } );\n", &errs);
	assert_null(cfg);
	expect_msg(errs, PRELUDE_LINES + 1, "expected a group");
	expect_msg(errs, PRELUDE_LINES + 1, "match", "expected a group");
	assert_int_equal(count_lines(errs), 2);
	free(errs);
}

static void test_conf_unreachable_warning(void **state)
{
	(void)state;
	char *errs;
	struct config *cfg = load(
		"routes = (\n"
		"  { name = \"all\"; },\n"
		"  { name = \"late\"; match = { path = \"^/x\"; }; }\n"
		");\n", &errs);
	assert_non_null(cfg);
	expect_msg(errs, PRELUDE_LINES + 3, "warning: route 'late' is never used",
		   "route 'all' (line 10)");
	assert_int_equal(count_lines(errs), 1);
	config_free(cfg);
	free(errs);
}

int main(void)
{
	const struct CMUnitTest match_tests[] = {
		cmocka_unit_test(test_minimal_routes),
		cmocka_unit_test(test_methods_are_exact),
		cmocka_unit_test(test_path_is_a_slice),
		cmocka_unit_test(test_no_match_and_no_table),
		cmocka_unit_test(test_project_group_edges),
		cmocka_unit_test(test_compile_errors),
		cmocka_unit_test(test_threads),
	};
	const struct CMUnitTest conf_tests[] = {
		cmocka_unit_test(test_conf_minimal),
		cmocka_unit_test(test_conf_values),
		cmocka_unit_test(test_conf_errors),
		cmocka_unit_test(test_conf_shape),
		cmocka_unit_test(test_conf_unreachable_warning),
	};
	int failed = cmocka_run_group_tests_name("route_match", match_tests, NULL, NULL);
	failed += cmocka_run_group_tests_name("route_conf_parse", conf_tests, NULL, NULL);
	return failed;
}
