/* tests for proxy/config.c: config_load() end to end (the reader of
 * conf.c as the groups' owners use it), the admin, dns, maintenance and
 * spool groups through it, the contract's minimal config and the
 * reference config as a whole, and which reload changes need a restart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "admin.h"
#include "config.h"
#include "conn.h"
#include "dns.h"
#include "rewrite.h"
#include "listener.h"
#include "log.h"
#include "maintenance.h"
#include "route.h"
#include "spool.h"
#include "state.h"
#include "upstream.h"

static char tmpdir[64];
static char conf_path[128];

/* Lines 1-7 of every fixture; a test's own text starts at line 8. */
#define PRELUDE_LINES 7
static const char prelude[] =
	"listen = ( { address = \"127.0.0.1:18080\"; } );\n"
	"upstreams = {\n"
	"  old = { url = \"http://127.0.0.1:18081\"; };\n"
	"  new = { url = \"http://127.0.0.1:18082\"; };\n"
	"};\n"
	"state_file = \"/tmp/cutover-test/state.json\";\n"
	"journal_file = \"/tmp/cutover-test/journal.log\";\n";

#define ADMIN_UNIX "admin = { address = \"unix:/tmp/cutover-test/admin.sock\"; };\n"

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

static int group_setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/cutover-test-config.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(conf_path, sizeof conf_path, "%s/test.conf", tmpdir);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	return nftw(tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* Loads PATH; *ERRS gets everything printed (caller frees). */
static struct config *load_file(const char *path, char **errs)
{
	size_t len;
	FILE *f = open_memstream(errs, &len);
	assert_non_null(f);
	struct config *cfg = config_load(path, f);
	fclose(f);
	return cfg;
}

/* Writes TEXT (with the prelude unless RAW) to the fixture file and loads it. */
static struct config *load_text(const char *text, bool raw, char **errs)
{
	FILE *f = fopen(conf_path, "w");
	assert_non_null(f);
	if (!raw)
		fputs(prelude, f);
	fputs(text, f);
	fclose(f);
	return load_file(conf_path, errs);
}

static struct config *load(const char *text, char **errs)
{
	return load_text(text, false, errs);
}

static size_t count_lines(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* Asserts that ERRS holds the line "<fixture>:LINE: MSG" (MSG may be a prefix). */
static void expect_msg(const char *errs, int line, const char *msg)
{
	char want[512];
	snprintf(want, sizeof want, "%s:%d: %s", conf_path, line, msg);
	if (strstr(errs, want) == NULL)
		fail_msg("expected \"%s\" in:\n%s", want, errs);
}

static void expect_clean(const struct config *cfg, const char *errs)
{
	if (cfg == NULL || errs[0] != '\0')
		fail_msg("expected a clean load, got %s:\n%s", cfg ? "messages" : "NULL", errs);
}

static void expect_errors(const struct config *cfg, const char *errs, size_t n)
{
	if (cfg != NULL)
		fail_msg("expected the load to fail; messages:\n%s", errs);
	if (count_lines(errs) != n)
		fail_msg("expected %zu message lines, got:\n%s", n, errs);
}

/* ---- whole files ---- */

static void test_contract_minimal_config(void **state)
{
	(void)state;
	char *errs;
	struct config *cfg = load_file(TEST_SRCDIR "/data/minimal.conf", &errs);
	if (cfg == NULL || errs[0] != '\0')
		fail_msg("the contract's minimal config must load cleanly:\n%s", errs);

	assert_int_equal(cfg->n_listen, 1);
	assert_true(addr_is_unix(&cfg->admin->address));
	assert_null(cfg->admin->token_file);
	assert_true(cfg->upstream[UPSTREAM_OLD].defined);
	assert_true(cfg->upstream[UPSTREAM_NEW].defined);
	assert_string_equal(cfg->upstream[UPSTREAM_OLD].url, "http://127.0.0.1:18081");
	assert_string_equal(cfg->upstream[UPSTREAM_NEW].url, "http://127.0.0.1:18082");
	assert_string_equal(cfg->state->state_file, "/tmp/cutover-test/state.json");
	assert_string_equal(cfg->state->journal_file, "/tmp/cutover-test/journal.log");
	assert_non_null(cfg->routes);
	assert_int_equal(cfg->routes->n, 4);

	/* every other key has its default */
	assert_string_equal(cfg->spool->dir, "/tmp/cutover-test/spool");
	assert_int_equal(cfg->spool->max_bytes, 1ULL << 30);
	assert_int_equal(cfg->spool->max_record_bytes, 32ULL << 20);
	assert_int_equal(cfg->spool->response_status, 201);
	assert_null(cfg->spool->response_body);
	assert_true(cfg->spool->retry_min == 1.0 && cfg->spool->retry_max == 300.0);
	assert_int_equal(cfg->spool->max_attempts, 20);
	assert_int_equal(cfg->maintenance->retry_after, 120);
	assert_null(cfg->maintenance->body_html);
	assert_int_equal(cfg->dns->n_servers, 0);
	assert_true(cfg->dns->min_ttl == 1.0 && cfg->dns->max_ttl == 300.0);
	assert_int_equal(cfg->limits->max_connections, 10000);
	assert_int_equal(cfg->limits->max_request_line, 8192);
	assert_int_equal(cfg->limits->max_header_bytes, 32768);
	assert_int_equal(cfg->limits->max_body, 0);
	assert_true(cfg->limits->header_timeout == 30.0);
	assert_true(cfg->limits->body_timeout == 60.0);
	assert_true(cfg->limits->keepalive_timeout == 75.0);
	assert_true(cfg->limits->send_timeout == 60.0);
	assert_true(cfg->limits->drain_timeout == 30.0);
	assert_int_equal(cfg->limits->buffer_bytes, 65536);
	assert_int_equal(cfg->limits->body_buffer, 65536);
	assert_int_equal(cfg->limits->min_body_rate, 128);
	assert_true(cfg->limits->min_body_rate_grace == 10.0);
	assert_int_equal(cfg->log->level, LL_INFO);
	assert_null(cfg->log->access);
	assert_int_equal(cfg->workers, 1);
	assert_int_equal(cfg->rewrite->trusted_proxies.n, 0);

	config_free(cfg);
	free(errs);
}

static void test_reference_config(void **state)
{
	(void)state;
	char *errs;
	/* Its TLS listener reads certs/dev/ from the working directory, where
	 * `make run` puts them: run there with a throwaway set. */
	char dir[] = "/tmp/cutover-refconf-XXXXXX", cwd[4096], cmd[4300];
	assert_non_null(mkdtemp(dir));
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(cmd, sizeof(cmd), "%s/../certs/mkcerts.sh %s/certs/dev >/dev/null", TEST_SRCDIR, dir);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(chdir(dir), 0);
	struct config *cfg = load_file(TEST_SRCDIR "/../conf/cutover.conf", &errs);
	assert_int_equal(chdir(cwd), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	if (cfg == NULL || errs[0] != '\0')
		fail_msg("conf/cutover.conf must load cleanly:\n%s", errs);
	assert_non_null(cfg->listen[1].tls);
	assert_string_equal(cfg->spool->dir, "/var/lib/cutover/spool");
	assert_non_null(cfg->log->access);
	assert_string_equal(cfg->log->access, "stderr");
	config_free(cfg);
	free(errs);
}

static void test_prelude_alone_warns_about_admin(void **state)
{
	(void)state;
	char *errs;
	struct config *cfg = load("", &errs);
	assert_non_null(cfg);
	expect_msg(errs, 1, "warning: no 'admin' group");
	assert_int_equal(count_lines(errs), 1);
	config_free(cfg);
	free(errs);
}

static void test_load_string_names_the_source(void **state)
{
	(void)state;
	char *errs;
	size_t len;
	FILE *f = open_memstream(&errs, &len);
	struct config *cfg = config_load_string("listen = (\n  42 x\n);\n", "inline.conf", f);
	fclose(f);
	assert_null(cfg);
	if (strncmp(errs, "inline.conf:2: ", 15) != 0)
		fail_msg("got: %s", errs);
	free(errs);
}

static void test_missing_file(void **state)
{
	(void)state;
	char *errs;
	char path[160];
	snprintf(path, sizeof path, "%s/absent.conf", tmpdir);
	struct config *cfg = load_file(path, &errs);
	assert_null(cfg);
	assert_non_null(strstr(errs, path));
	assert_non_null(strstr(errs, "No such file"));
	free(errs);
}

/* ---- error reporting ---- */

static void test_syntax_error(void **state)
{
	(void)state;
	char *errs;
	struct config *cfg = load(ADMIN_UNIX
				  "spool = {\n"
				  "  dir = ;\n"
				  "};\n", &errs);
	expect_errors(cfg, errs, 1);
	expect_msg(errs, PRELUDE_LINES + 3, "syntax error");
	free(errs);
}

static void test_unknown_keys(void **state)
{
	(void)state;
	char *errs;
	struct config *cfg = load(ADMIN_UNIX
				  "spool = { dir = \"/tmp/s\";\n"
				  "  max_byte = \"1G\"; };\n"
				  "colour = \"blue\";\n", &errs);
	expect_errors(cfg, errs, 2);
	expect_msg(errs, PRELUDE_LINES + 3,
		   "unknown key 'max_byte' in spool (did you mean 'max_bytes'?)");
	expect_msg(errs, PRELUDE_LINES + 4, "unknown top-level key 'colour'");
	free(errs);
}

static void test_spool_replay_keys(void **state)
{
	(void)state;
	char *errs;
	struct config *cfg = load(ADMIN_UNIX
				  "spool = { dir = \"/tmp/s\"; retry_min = 0.5; retry_max = 2;\n"
				  "  max_attempts = 3; };\n", &errs);
	assert_non_null(cfg);
	assert_true(cfg->spool->retry_min == 0.5 && cfg->spool->retry_max == 2.0);
	assert_int_equal(cfg->spool->max_attempts, 3);
	config_free(cfg);
	free(errs);
	cfg = load(ADMIN_UNIX
		   "spool = { dir = \"/tmp/s\"; retry_min = 10;\n"
		   "  retry_max = 2;\n"
		   "  max_attempts = 0; };\n", &errs);
	expect_errors(cfg, errs, 2);
	expect_msg(errs, PRELUDE_LINES + 3, "spool: retry_max (2) is smaller than retry_min (10)");
	expect_msg(errs, PRELUDE_LINES + 4, "spool.max_attempts: 0 is out of range");
	free(errs);
}

static void test_unknown_key_in_admin_and_dns(void **state)
{
	(void)state;
	char *errs;
	struct config *cfg = load("admin = { address = \"unix:/tmp/a.sock\"; tokenfile = \"/t\"; };\n"
				  "dns = { servers = [ \"127.0.0.1\" ]; ttl = 5; };\n", &errs);
	expect_errors(cfg, errs, 2);
	expect_msg(errs, PRELUDE_LINES + 1,
		   "unknown key 'tokenfile' in admin (did you mean 'token_file'?)");
	expect_msg(errs, PRELUDE_LINES + 2, "unknown key 'ttl' in dns");
	free(errs);
}

static void test_wrong_types(void **state)
{
	(void)state;
	char *errs;
	struct config *cfg = load(ADMIN_UNIX
				  "spool = { dir = 5; };\n"
				  "maintenance = { retry_after = \"soon\"; };\n"
				  "dns = {\n"
				  "  servers = ( \"127.0.0.1\", 5 );\n"
				  "  min_ttl = \"1s\";\n"
				  "};\n"
				  "workers = 2;\n", &errs);
	expect_errors(cfg, errs, 4);
	expect_msg(errs, PRELUDE_LINES + 2, "spool.dir: expected a string, not an integer");
	expect_msg(errs, PRELUDE_LINES + 3,
		   "maintenance.retry_after: expected an integer, not a string");
	expect_msg(errs, PRELUDE_LINES + 5, "dns.servers.[1]: expected a string, not an integer");
	expect_msg(errs, PRELUDE_LINES + 6, "dns.min_ttl: expected a duration in seconds");
	free(errs);
}

static void test_group_expected(void **state)
{
	(void)state;
	char *errs;
	struct config *cfg = load(ADMIN_UNIX "spool = \"/var/spool\";\n", &errs);
	expect_errors(cfg, errs, 1);
	expect_msg(errs, PRELUDE_LINES + 2, "spool: expected a group { ... }, not a string");
	free(errs);
}

/* limits.body_buffer, min_body_rate, min_body_rate_grace: set, bounded. */
static void test_limits_body_keys(void **state)
{
	(void)state;
	char *errs;
	struct config *cfg = load(ADMIN_UNIX "limits = { body_buffer = \"1M\"; min_body_rate = 0;\n"
				  "  min_body_rate_grace = 2.5; };\n", &errs);
	expect_clean(cfg, errs);
	assert_int_equal(cfg->limits->body_buffer, 1 << 20);
	assert_int_equal(cfg->limits->min_body_rate, 0);
	assert_true(cfg->limits->min_body_rate_grace == 2.5);
	config_free(cfg);
	free(errs);

	cfg = load(ADMIN_UNIX "limits = { body_buffer = \"1G\";\n  min_body_rate = -1;\n"
		   "  min_body_rate_grace = 0; };\n", &errs);
	expect_errors(cfg, errs, 3);
	expect_msg(errs, PRELUDE_LINES + 2, "limits.body_buffer: 1G is above the maximum of 64M");
	expect_msg(errs, PRELUDE_LINES + 3, "limits.min_body_rate: -1 is out of range");
	expect_msg(errs, PRELUDE_LINES + 4, "limits.min_body_rate_grace: 0 seconds is out of range");
	free(errs);
}

static void test_bad_sizes(void **state)
{
	(void)state;
	static const char *const bad[] = { "\"10X\"", "\"1.5G\"", "\"\"", "\"G\"", "\"32 M\"",
					   "\"32MB\"", "\"-1\"", "\"99999999999999999999\"",
					   "\"17179869184G\"" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char text[256], *errs;
		snprintf(text, sizeof text, ADMIN_UNIX "spool = { dir = \"/tmp/s\";\n"
			 "  max_bytes = %s; };\n", bad[i]);
		struct config *cfg = load(text, &errs);
		expect_errors(cfg, errs, 1);
		expect_msg(errs, PRELUDE_LINES + 3, "spool.max_bytes: invalid size");
		free(errs);
	}

	char *errs;
	struct config *cfg = load(ADMIN_UNIX "spool = { dir = \"/tmp/s\"; max_bytes = -5; };\n", &errs);
	expect_errors(cfg, errs, 1);
	expect_msg(errs, PRELUDE_LINES + 2, "spool.max_bytes: a size cannot be negative");
	free(errs);

	cfg = load(ADMIN_UNIX "spool = { dir = \"/tmp/s\"; max_bytes = 1.5; };\n", &errs);
	expect_errors(cfg, errs, 1);
	expect_msg(errs, PRELUDE_LINES + 2, "spool.max_bytes: expected a size");
	free(errs);

	cfg = load(ADMIN_UNIX "spool = { dir = \"/tmp/s\"; max_bytes = 0; };\n", &errs);
	expect_errors(cfg, errs, 1);
	expect_msg(errs, PRELUDE_LINES + 2, "spool.max_bytes: 0 is below the minimum of 1");
	free(errs);
}

static void test_sizes_parse(void **state)
{
	(void)state;
	static const struct { const char *max, *rec; uint64_t max_v, rec_v; } cases[] = {
		{ "\"1G\"", "\"32M\"", 1ULL << 30, 32ULL << 20 },
		{ "1024", "1024", 1024, 1024 },
		{ "\"4k\"", "\"1K\"", 4096, 1024 },
		{ "\"8G\"", "\"2g\"", 8ULL << 30, 2ULL << 30 },
		{ "8589934592L", "\"512m\"", 8ULL << 30, 512ULL << 20 },
		{ "\"123\"", "0x10", 123, 16 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char text[256], *errs;
		snprintf(text, sizeof text, ADMIN_UNIX "spool = { dir = \"/tmp/s\"; "
			 "max_bytes = %s; max_record_bytes = %s; };\n", cases[i].max, cases[i].rec);
		struct config *cfg = load(text, &errs);
		expect_clean(cfg, errs);
		assert_int_equal(cfg->spool->max_bytes, cases[i].max_v);
		assert_int_equal(cfg->spool->max_record_bytes, cases[i].rec_v);
		config_free(cfg);
		free(errs);
	}
}

static void test_record_larger_than_spool(void **state)
{
	(void)state;
	char *errs;
	struct config *cfg = load(ADMIN_UNIX
				  "spool = { dir = \"/tmp/s\";\n"
				  "  max_bytes = \"16M\";\n"
				  "  max_record_bytes = \"32M\"; };\n", &errs);
	expect_errors(cfg, errs, 1);
	expect_msg(errs, PRELUDE_LINES + 4,
		   "spool: max_record_bytes (32M) is greater than max_bytes (16M)");
	free(errs);

	/* the contract: a max_bytes below the 32M default lowers that default */
	cfg = load(ADMIN_UNIX
		   "spool = { dir = \"/tmp/s\";\n"
		   "  max_bytes = \"16M\"; };\n", &errs);
	expect_clean(cfg, errs);
	assert_int_equal(cfg->spool->max_bytes, 16ULL << 20);
	assert_int_equal(cfg->spool->max_record_bytes, 16ULL << 20);
	config_free(cfg);
	free(errs);
}

static void test_segment_bytes(void **state)
{
	(void)state;
	char *errs;
	struct config *cfg = load(ADMIN_UNIX "spool = { dir = \"/tmp/s\"; };\n", &errs);
	expect_clean(cfg, errs);
	assert_int_equal(cfg->spool->segment_bytes, 64ULL << 20);
	config_free(cfg);
	free(errs);

	cfg = load(ADMIN_UNIX "spool = { dir = \"/tmp/s\"; segment_bytes = \"8M\"; };\n", &errs);
	expect_clean(cfg, errs);
	assert_int_equal(cfg->spool->segment_bytes, 8ULL << 20);
	config_free(cfg);
	free(errs);

	cfg = load(ADMIN_UNIX "spool = { dir = \"/tmp/s\";\n  segment_bytes = 100; };\n", &errs);
	expect_errors(cfg, errs, 1);
	expect_msg(errs, PRELUDE_LINES + 3, "spool.segment_bytes: 100 is below the minimum");
	free(errs);
}

static void test_spool_values(void **state)
{
	(void)state;
	char *errs;
	struct config *cfg = load(ADMIN_UNIX
				  "spool = { dir = \"/tmp/s\"; response_status = 202;\n"
				  "  response_body = \"<OpenRosaResponse/>\"; };\n", &errs);
	expect_clean(cfg, errs);
	assert_int_equal(cfg->spool->response_status, 202);
	assert_string_equal(cfg->spool->response_body, "<OpenRosaResponse/>");
	config_free(cfg);
	free(errs);

	cfg = load(ADMIN_UNIX
		   "spool = { max_bytes = \"1G\";\n"
		   "  response_status = 503; };\n", &errs);
	expect_errors(cfg, errs, 2);
	expect_msg(errs, PRELUDE_LINES + 2, "spool: missing required key 'dir'");
	expect_msg(errs, PRELUDE_LINES + 3, "spool.response_status: 503 is out of range [200, 299]");
	free(errs);

	cfg = load(ADMIN_UNIX "spool = { dir = \"\"; };\n", &errs);
	expect_errors(cfg, errs, 1);
	expect_msg(errs, PRELUDE_LINES + 2, "spool.dir: must not be empty");
	free(errs);
}

static void test_spool_route_needs_dir(void **state)
{
	(void)state;
	char *errs;
	struct config *cfg = load(ADMIN_UNIX
				  "routes = (\n"
				  "  { name = \"submit\"; spool = true; }\n"
				  ");\n", &errs);
	expect_errors(cfg, errs, 1);
	expect_msg(errs, PRELUDE_LINES + 3,
		   "route 'submit' has spool = true but no spool.dir is configured");
	free(errs);
}

static void test_admin(void **state)
{
	(void)state;
	char *errs;
	struct config *cfg = load("admin = { address = \"127.0.0.1:18090\"; };\n", &errs);
	expect_errors(cfg, errs, 1);
	expect_msg(errs, PRELUDE_LINES + 1, "admin: token_file is required when admin.address is TCP");
	free(errs);

	cfg = load("admin = {\n"
		   "  address = \"10.1.2.3:18090\";\n"
		   "  token_file = \"/etc/cutover/token\"; };\n", &errs);
	expect_errors(cfg, errs, 1);
	expect_msg(errs, PRELUDE_LINES + 2, "admin.address: \"10.1.2.3:18090\" is not a loopback address");
	free(errs);

	cfg = load("admin = { address = \"[::1]:18090\"; token_file = \"/etc/cutover/token\"; };\n",
		   &errs);
	expect_clean(cfg, errs);
	assert_false(addr_is_unix(&cfg->admin->address));
	assert_string_equal(cfg->admin->token_file, "/etc/cutover/token");
	config_free(cfg);
	free(errs);

	cfg = load("admin = { address = \"127.0.0.1:18090\"; token_file = \"/t\"; };\n", &errs);
	expect_clean(cfg, errs);
	config_free(cfg);
	free(errs);

	cfg = load("admin = { address = \"nonsense\"; };\n", &errs);
	expect_errors(cfg, errs, 1);
	expect_msg(errs, PRELUDE_LINES + 1, "admin.address: invalid address \"nonsense\"");
	free(errs);

	cfg = load("admin = { token_file = \"/t\"; };\n", &errs);
	expect_errors(cfg, errs, 1);
	expect_msg(errs, PRELUDE_LINES + 1, "admin: missing required key 'address'");
	free(errs);
}

static void test_dns(void **state)
{
	(void)state;
	char *errs;
	struct config *cfg = load(ADMIN_UNIX
				  "dns = { servers = [ \"127.0.0.1:5353\", \"::1\", \"9.9.9.9\",\n"
				  "                    \"[::1]:53\" ];\n"
				  "  min_ttl = 0.5; max_ttl = 600; };\n", &errs);
	expect_clean(cfg, errs);
	assert_int_equal(cfg->dns->n_servers, 4);
	assert_string_equal(cfg->dns->servers[0], "127.0.0.1:5353");
	assert_null(cfg->dns->servers[4]);
	assert_true(cfg->dns->min_ttl == 0.5 && cfg->dns->max_ttl == 600.0);
	config_free(cfg);
	free(errs);

	cfg = load(ADMIN_UNIX
		   "dns = { servers = [ \"dns.example.org\" ];\n"
		   "  min_ttl = 10;\n"
		   "  max_ttl = 5; };\n", &errs);
	expect_errors(cfg, errs, 2);
	expect_msg(errs, PRELUDE_LINES + 2, "dns.servers.[0]: invalid DNS server \"dns.example.org\"");
	expect_msg(errs, PRELUDE_LINES + 4, "dns: min_ttl (10) is greater than max_ttl (5)");
	free(errs);

	cfg = load(ADMIN_UNIX "dns = { max_ttl = 100000; servers = \"127.0.0.1\"; };\n", &errs);
	expect_errors(cfg, errs, 2);
	expect_msg(errs, PRELUDE_LINES + 2, "dns.max_ttl: 100000 seconds is out of range [0, 86400]");
	expect_msg(errs, PRELUDE_LINES + 2, "dns.servers: expected a list of strings");
	free(errs);
}

static void test_maintenance(void **state)
{
	(void)state;
	char *errs;
	struct config *cfg = load(ADMIN_UNIX
				  "maintenance = { retry_after = 0; body_html = \"<p>later</p>\";\n"
				  "  body_json = \"{}\"; body_text = \"later\"; };\n", &errs);
	expect_clean(cfg, errs);
	assert_int_equal(cfg->maintenance->retry_after, 0);
	assert_string_equal(cfg->maintenance->body_html, "<p>later</p>");
	assert_string_equal(cfg->maintenance->body_json, "{}");
	assert_string_equal(cfg->maintenance->body_text, "later");
	config_free(cfg);
	free(errs);

	cfg = load(ADMIN_UNIX "maintenance = { retry_after = 86401; };\n", &errs);
	expect_errors(cfg, errs, 1);
	expect_msg(errs, PRELUDE_LINES + 2,
		   "maintenance.retry_after: 86401 is out of range [0, 86400]");
	free(errs);
}

static void test_missing_required(void **state)
{
	(void)state;
	char *errs;
	struct config *cfg = load_text(ADMIN_UNIX, true, &errs);
	expect_errors(cfg, errs, 2);
	expect_msg(errs, 1, "missing required 'listen'");
	expect_msg(errs, 1, "missing required 'upstreams'");
	free(errs);

	cfg = load_text(ADMIN_UNIX
			"listen = ( );\n"
			"upstreams = {\n"
			"  old = { url = \"http://127.0.0.1:18081\"; };\n"
			"};\n", true, &errs);
	expect_errors(cfg, errs, 2);
	expect_msg(errs, 2, "listen: at least one listen address is required");
	expect_msg(errs, 3, "upstreams: missing required upstream 'new'");
	free(errs);
}

static void test_all_errors_reported_in_file_order(void **state)
{
	(void)state;
	char *errs;
	struct config *cfg = load("admin = { address = \"127.0.0.1:18090\"; };\n" /* 8 */
				  "bogus = 1;\n"                                 /* 9 */
				  "spool = {\n"                                  /* 10 */
				  "  dir = \"/tmp/s\";\n"                        /* 11 */
				  "  max_bytes = \"5Q\";\n"                      /* 12 */
				  "  response_status = true;\n"                  /* 13 */
				  "};\n"                                         /* 14 */
				  "maintenance = { retry_after = -1; };\n"       /* 15 */
				  "dns = { min_ttl = \"x\"; };\n"                /* 16 */
				  "workers = \"two\";\n",                        /* 17 */
				  &errs);
	expect_errors(cfg, errs, 7);
	expect_msg(errs, 8, "admin: token_file is required");
	expect_msg(errs, 9, "unknown top-level key 'bogus'");
	expect_msg(errs, 12, "spool.max_bytes: invalid size \"5Q\"");
	expect_msg(errs, 13, "spool.response_status: expected an integer, not a boolean");
	expect_msg(errs, 15, "maintenance.retry_after: -1 is out of range [0, 86400]");
	expect_msg(errs, 16, "dns.min_ttl: expected a duration in seconds");
	expect_msg(errs, 17, "workers: expected an integer");

	/* printed in file order, whatever order the owners ran in */
	int last = 0;
	for (const char *p = errs; *p; p = strchr(p, '\n') + 1) {
		int line = atoi(p + strlen(conf_path) + 1);
		assert_true(line >= last);
		last = line;
	}
	free(errs);
}

/* ---- reload: which changes need a restart ---- */

/* A whole config; NULL takes the usual value. EXTRA is appended. */
static struct config *variant(const char *listen, const char *admin, const char *state,
			      const char *journal, const char *extra)
{
	char text[2048], *errs;
	snprintf(text, sizeof text,
		 "listen = ( %s );\n"
		 "upstreams = {\n"
		 "  old = { url = \"http://127.0.0.1:18081\"; };\n"
		 "  new = { url = \"http://127.0.0.1:18082\"; };\n"
		 "};\n"
		 "admin = { %s };\n"
		 "state_file = \"%s\";\n"
		 "journal_file = \"%s\";\n"
		 "%s",
		 listen ? listen : "{ address = \"127.0.0.1:18080\"; }",
		 admin ? admin : "address = \"unix:/tmp/cutover-test/admin.sock\";",
		 state ? state : "/tmp/cutover-test/state.json",
		 journal ? journal : "/tmp/cutover-test/journal.log", extra ? extra : "");
	struct config *cfg = load_text(text, true, &errs);
	expect_clean(cfg, errs);
	free(errs);
	return cfg;
}

static void expect_restart(const struct config *running, struct config *next, const char *key)
{
	const char *got = config_restart_needed(running, next);
	if (key == NULL && got != NULL)
		fail_msg("expected no restart, got '%s'", got);
	if (key != NULL && (got == NULL || strcmp(got, key) != 0))
		fail_msg("expected '%s', got %s%s%s", key, got ? "'" : "", got ? got : "NULL",
			 got ? "'" : "");
	config_free(next);
}

static void test_restart_needed(void **state)
{
	(void)state;
	struct config *run = variant(NULL, NULL, NULL, NULL,
				     "dns = { servers = [ \"127.0.0.1:5353\" ]; };\n"
				     "log = { access = \"stderr\"; };\n");
	const char *dns = "dns = { servers = [ \"127.0.0.1:5353\" ]; };\n";
	const char *log = "log = { access = \"stderr\"; };\n";
	char both[256];
	snprintf(both, sizeof both, "%s%s", dns, log);

	/* what a reload takes over */
	expect_restart(run, variant(NULL, NULL, NULL, NULL, both), NULL);
	expect_restart(run, variant(NULL, NULL, NULL, NULL,
				    "dns = { servers = [ \"127.0.0.1:5353\" ]; };\n"
				    "log = { access = \"stderr\"; level = \"debug\"; };\n"
				    "maintenance = { retry_after = 5; };\n"
				    "limits = { drain_timeout = 1; };\n"
				    "trusted_proxies = [ \"10.0.0.0/8\" ];\n"
				    "routes = ( { name = \"all\"; } );\n"), NULL);

	/* each key that needs a restart */
	expect_restart(run, variant("{ address = \"127.0.0.1:18081\"; }", NULL, NULL, NULL, both),
		       "listen");
	expect_restart(run, variant("{ address = \"127.0.0.1:18080\"; }, "
				    "{ address = \"127.0.0.1:18081\"; }", NULL, NULL, NULL, both),
		       "listen");
	expect_restart(run, variant(NULL, "address = \"unix:/tmp/cutover-test/other.sock\";",
				    NULL, NULL, both), "admin");
	expect_restart(run, variant(NULL, "address = \"unix:/tmp/cutover-test/admin.sock\"; "
				    "token_file = \"/t\";", NULL, NULL, both), "admin");
	char text[512];
	snprintf(text, sizeof text, "%sworkers = 2;\n", both);
	expect_restart(run, variant(NULL, NULL, NULL, NULL, text), "workers");
	expect_restart(run, variant(NULL, NULL, "/tmp/other.json", NULL, both), "state_file");
	expect_restart(run, variant(NULL, NULL, NULL, "/tmp/other.log", both), "journal_file");
	expect_restart(run, variant(NULL, NULL, NULL, NULL, dns), "log.access");
	expect_restart(run, variant(NULL, NULL, NULL, NULL, log), "dns");
	snprintf(text, sizeof text, "%sdns = { servers = [ \"127.0.0.1:5354\" ]; };\n", log);
	expect_restart(run, variant(NULL, NULL, NULL, NULL, text), "dns");
	snprintf(text, sizeof text, "%sdns = { servers = [ \"127.0.0.1:5353\" ]; max_ttl = 60; };\n",
		 log);
	expect_restart(run, variant(NULL, NULL, NULL, NULL, text), "dns");
	/* the spool store is opened once, with its limits */
	snprintf(text, sizeof text, "%sspool = { dir = \"/tmp/cutover-test/spool2\"; };\n", both);
	expect_restart(run, variant(NULL, NULL, NULL, NULL, text), "spool.dir");
	snprintf(text, sizeof text, "%sspool = { dir = \"/tmp/cutover-test/spool\"; };\n", both);
	struct config *sp = variant(NULL, NULL, NULL, NULL, text);
	snprintf(text, sizeof text, "%sspool = { dir = \"/tmp/cutover-test/spool\"; "
		 "response_status = 200; };\n", both);
	expect_restart(sp, variant(NULL, NULL, NULL, NULL, text), NULL);
	snprintf(text, sizeof text, "%sspool = { dir = \"/tmp/cutover-test/spool\"; "
		 "max_bytes = \"2G\"; };\n", both);
	expect_restart(sp, variant(NULL, NULL, NULL, NULL, text), "spool.max_bytes");
	snprintf(text, sizeof text, "%sspool = { dir = \"/tmp/cutover-test/spool\"; "
		 "max_record_bytes = \"1M\"; };\n", both);
	expect_restart(sp, variant(NULL, NULL, NULL, NULL, text), "spool.max_record_bytes");
	snprintf(text, sizeof text, "%sspool = { dir = \"/tmp/cutover-test/spool\"; "
		 "segment_bytes = \"1M\"; };\n", both);
	expect_restart(sp, variant(NULL, NULL, NULL, NULL, text), "spool.segment_bytes");
	config_free(sp);

	/* several at once: the first in the documented order */
	expect_restart(run, variant("{ address = \"127.0.0.1:18081\"; }",
				    "address = \"unix:/tmp/x.sock\";", NULL, NULL, NULL), "listen");
	expect_restart(run, variant(NULL, "address = \"unix:/tmp/x.sock\";", NULL, NULL,
				    "workers = 3;\n"), "admin");
	expect_restart(run, variant(NULL, NULL, "/tmp/other.json", "/tmp/other.log",
				    "workers = 3;\n"), "workers");
	expect_restart(run, variant(NULL, NULL, "/tmp/other.json", "/tmp/other.log", NULL),
		       "state_file");
	expect_restart(run, variant(NULL, NULL, NULL, "/tmp/other.log", NULL), "journal_file");
	expect_restart(run, variant(NULL, NULL, NULL, NULL, NULL), "log.access");
	config_free(run);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_contract_minimal_config),
		cmocka_unit_test(test_reference_config),
		cmocka_unit_test(test_prelude_alone_warns_about_admin),
		cmocka_unit_test(test_load_string_names_the_source),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_syntax_error),
		cmocka_unit_test(test_unknown_keys),
		cmocka_unit_test(test_spool_replay_keys),
		cmocka_unit_test(test_unknown_key_in_admin_and_dns),
		cmocka_unit_test(test_wrong_types),
		cmocka_unit_test(test_group_expected),
		cmocka_unit_test(test_limits_body_keys),
		cmocka_unit_test(test_bad_sizes),
		cmocka_unit_test(test_sizes_parse),
		cmocka_unit_test(test_record_larger_than_spool),
		cmocka_unit_test(test_segment_bytes),
		cmocka_unit_test(test_spool_values),
		cmocka_unit_test(test_spool_route_needs_dir),
		cmocka_unit_test(test_admin),
		cmocka_unit_test(test_dns),
		cmocka_unit_test(test_maintenance),
		cmocka_unit_test(test_missing_required),
		cmocka_unit_test(test_all_errors_reported_in_file_order),
		cmocka_unit_test(test_restart_needed),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
