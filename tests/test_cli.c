/* tests for proxy/cli.c: command lines into requests (method, path, JSON
 * body), admin address and token precedence, usage errors (exit 2), and
 * how answers become output lines and exit codes through each command's
 * printer (the printers alone: test_render.c). No sockets, except one
 * connect to a unix path that does not exist. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

#define ARGV(...) ((char *[]){ __VA_ARGS__, NULL })
#define ARGC(...) ((int)(sizeof((char *[]){ __VA_ARGS__ }) / sizeof(char *)))
/* Parses the command line given as string literals. */
#define BUILD(req, err, ...) \
	cli_build_request(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), (req), (err), sizeof(err))

static int setup_env(void **state)
{
	(void)state;
	unsetenv("CUTOVER_ADMIN");
	unsetenv("CUTOVER_TOKEN_FILE");
	return 0;
}

/* REQ's body equals the JSON text WANT (key order and spacing aside). */
static void assert_body(const struct cli_request *req, const char *want)
{
	if (!want) {
		assert_null(req->body);
		return;
	}
	assert_non_null(req->body);
	json_error_t e;
	json_t *got = json_loads(req->body, 0, &e);
	json_t *exp = json_loads(want, 0, &e);
	assert_non_null(got);
	assert_non_null(exp);
	if (!json_equal(got, exp))
		fail_msg("body %s, want %s", req->body, want);
	json_decref(got);
	json_decref(exp);
}

static void assert_request(struct cli_request *req, int rc, const char *err, const char *method,
			   const char *path, const char *body)
{
	if (rc != CLI_OK)
		fail_msg("cli_build_request failed (%d): %s", rc, err);
	assert_false(req->help);
	assert_string_equal(req->method, method);
	assert_string_equal(req->path, path);
	assert_body(req, body);
	cli_request_free(req);
}

/* A usage error whose message contains WANT. */
static void assert_usage(struct cli_request *req, int rc, const char *err, const char *want)
{
	cli_request_free(req);
	if (rc != CLI_USAGE)
		fail_msg("expected a usage error containing '%s', got %d", want, rc);
	if (!strstr(err, want))
		fail_msg("usage error '%s' does not contain '%s'", err, want);
}

static void test_commands(void **state)
{
	(void)state;
	const char *yes[] = { "status", "switch", "maintenance", "hold", "resume", "journal",
			      "reload", "schedule", "spool" };
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		assert_true(cli_is_command(yes[i]));
	assert_false(cli_is_command("run"));
	assert_false(cli_is_command("check"));
	assert_false(cli_is_command("Status"));
	assert_false(cli_is_command(""));
	assert_false(cli_is_command(NULL));
}

static void test_status(void **state)
{
	(void)state;
	struct cli_request r;
	char err[256];
	int rc = BUILD(&r, err, "status");
	assert_false(r.json);
	assert_request(&r, rc, err, "GET", "/status", NULL);
	rc = BUILD(&r, err, "status", "--json");
	assert_true(r.json);
	assert_request(&r, rc, err, "GET", "/status", NULL);
}

static void test_switch(void **state)
{
	(void)state;
	struct cli_request r;
	char err[256];
	int rc = BUILD(&r, err, "switch", "new");
	assert_request(&r, rc, err, "POST", "/switch", "{\"to\": \"new\"}");
	rc = BUILD(&r, err, "switch", "old", "--project", "alpha", "--reason", "dump done",
		   "--force");
	assert_request(&r, rc, err, "POST", "/switch",
		       "{\"to\": \"old\", \"project\": \"alpha\", \"reason\": \"dump done\", "
		       "\"force\": true}");
	/* Options before the target, --opt=value, --at passed through as given. */
	rc = BUILD(&r, err, "switch", "--project=alpha", "--at", "+10m", "new");
	assert_request(&r, rc, err, "POST", "/switch",
		       "{\"to\": \"new\", \"project\": \"alpha\", \"at\": \"+10m\"}");
	rc = BUILD(&r, err, "switch", "new", "--at=2026-12-01T02:00:00Z");
	assert_request(&r, rc, err, "POST", "/switch",
		       "{\"to\": \"new\", \"at\": \"2026-12-01T02:00:00Z\"}");
	/* "--" ends the options. */
	rc = BUILD(&r, err, "switch", "--reason", "x", "--", "new");
	assert_request(&r, rc, err, "POST", "/switch", "{\"to\": \"new\", \"reason\": \"x\"}");
}

static void test_switch_usage(void **state)
{
	(void)state;
	struct cli_request r;
	char err[256];
	int rc = BUILD(&r, err, "switch");
	assert_usage(&r, rc, err, "old or new");
	rc = BUILD(&r, err, "switch", "maintenance");
	assert_usage(&r, rc, err, "'maintenance'");
	rc = BUILD(&r, err, "switch", "new", "old");
	assert_usage(&r, rc, err, "unexpected argument 'old'");
	rc = BUILD(&r, err, "switch", "new", "--project");
	assert_usage(&r, rc, err, "--project needs a value");
	rc = BUILD(&r, err, "switch", "new", "--at", "");
	assert_usage(&r, rc, err, "--at needs a value");
	rc = BUILD(&r, err, "switch", "new", "--until", "+1h");
	assert_usage(&r, rc, err, "--until is not an option of switch");
	rc = BUILD(&r, err, "switch", "new", "--frobnicate");
	assert_usage(&r, rc, err, "unknown option '--frobnicate'");
	rc = BUILD(&r, err, "switch", "new", "--force=yes");
	assert_usage(&r, rc, err, "--force takes no value");
}

static void test_maintenance(void **state)
{
	(void)state;
	struct cli_request r;
	char err[256];
	int rc = BUILD(&r, err, "maintenance");
	assert_request(&r, rc, err, "POST", "/maintenance", "{\"on\": true}");
	rc = BUILD(&r, err, "maintenance", "on", "--project", "beta", "--until", "+2h", "--reason",
		   "dump");
	assert_string_equal(r.until, "+2h");
	assert_request(&r, rc, err, "POST", "/maintenance",
		       "{\"on\": true, \"project\": \"beta\", \"until\": \"+2h\", \"reason\": \"dump\"}");
	rc = BUILD(&r, err, "maintenance", "off", "--project", "beta");
	assert_request(&r, rc, err, "POST", "/maintenance", "{\"on\": false, \"project\": \"beta\"}");

	rc = BUILD(&r, err, "maintenance", "off", "--until", "+1h");
	assert_usage(&r, rc, err, "--until");
	rc = BUILD(&r, err, "maintenance", "maybe");
	assert_usage(&r, rc, err, "'maybe'");
	rc = BUILD(&r, err, "maintenance", "on", "--force");
	assert_usage(&r, rc, err, "--force is not an option of maintenance");
}

static void test_hold_resume(void **state)
{
	(void)state;
	struct cli_request r;
	char err[256];
	int rc = BUILD(&r, err, "hold");
	assert_request(&r, rc, err, "POST", "/hold", "{}");
	rc = BUILD(&r, err, "hold", "--project", "alpha", "--max", "5");
	assert_request(&r, rc, err, "POST", "/hold", "{\"project\": \"alpha\", \"max\": 5}");
	rc = BUILD(&r, err, "hold", "--max", "2.5");
	assert_request(&r, rc, err, "POST", "/hold", "{\"max\": 2.5}");
	rc = BUILD(&r, err, "hold", "--max", "0");
	assert_usage(&r, rc, err, "--max");
	rc = BUILD(&r, err, "hold", "--max", "5s");
	assert_usage(&r, rc, err, "--max");
	rc = BUILD(&r, err, "hold", "--max", "7200");
	assert_usage(&r, rc, err, "--max");

	rc = BUILD(&r, err, "resume");
	assert_request(&r, rc, err, "POST", "/resume", "{}");
	rc = BUILD(&r, err, "resume", "--project", "alpha");
	assert_request(&r, rc, err, "POST", "/resume", "{\"project\": \"alpha\"}");
	rc = BUILD(&r, err, "resume", "alpha");
	assert_usage(&r, rc, err, "unexpected argument 'alpha'");
}

static void test_journal_reload_schedule(void **state)
{
	(void)state;
	struct cli_request r;
	char err[256];
	int rc = BUILD(&r, err, "journal");
	assert_request(&r, rc, err, "GET", "/journal?n=20", NULL);
	rc = BUILD(&r, err, "journal", "-n", "5");
	assert_request(&r, rc, err, "GET", "/journal?n=5", NULL);
	rc = BUILD(&r, err, "journal", "-n7");
	assert_request(&r, rc, err, "GET", "/journal?n=7", NULL);
	rc = BUILD(&r, err, "journal", "--lines=0");
	assert_request(&r, rc, err, "GET", "/journal?n=0", NULL);
	rc = BUILD(&r, err, "journal", "-n", "-1");
	assert_usage(&r, rc, err, "-n");
	rc = BUILD(&r, err, "journal", "-n", "many");
	assert_usage(&r, rc, err, "-n");
	rc = BUILD(&r, err, "journal", "-x");
	assert_usage(&r, rc, err, "unknown option '-x'");

	rc = BUILD(&r, err, "reload");
	assert_request(&r, rc, err, "POST", "/reload", "{}");

	rc = BUILD(&r, err, "schedule", "cancel", "3");
	assert_request(&r, rc, err, "DELETE", "/schedule/3", NULL);
	rc = BUILD(&r, err, "schedule");
	assert_usage(&r, rc, err, "cancel");
	rc = BUILD(&r, err, "schedule", "list");
	assert_usage(&r, rc, err, "'list'");
	rc = BUILD(&r, err, "schedule", "cancel");
	assert_usage(&r, rc, err, "ID");
	rc = BUILD(&r, err, "schedule", "cancel", "3x");
	assert_usage(&r, rc, err, "'3x'");
	rc = BUILD(&r, err, "schedule", "cancel", "-3");
	assert_usage(&r, rc, err, "-3");
	rc = BUILD(&r, err, "schedule", "cancel", "3", "4");
	assert_usage(&r, rc, err, "'4'");
}

static void test_spool(void **state)
{
	(void)state;
	struct cli_request r;
	char err[256];
	int rc = BUILD(&r, err, "spool", "ls");
	assert_request(&r, rc, err, "GET", "/spool", NULL);
	rc = BUILD(&r, err, "spool", "ls", "--project", "alpha");
	assert_request(&r, rc, err, "GET", "/spool?project=alpha", NULL);
	rc = BUILD(&r, err, "spool", "ls", "--project", "a&b=c");
	assert_usage(&r, rc, err, "not a project name");
	rc = BUILD(&r, err, "spool", "retry", "42");
	assert_request(&r, rc, err, "POST", "/spool/42/retry", "{}");
	rc = BUILD(&r, err, "spool");
	assert_usage(&r, rc, err, "ls, show, retry and export");
	rc = BUILD(&r, err, "spool", "peek", "1");
	assert_usage(&r, rc, err, "'peek'");
	/* retry --all [--project P]; --project goes only with --all */
	rc = BUILD(&r, err, "spool", "retry", "--all");
	assert_request(&r, rc, err, "POST", "/spool/retry", "{}");
	rc = BUILD(&r, err, "spool", "retry", "--all", "--project", "beta");
	assert_request(&r, rc, err, "POST", "/spool/retry", "{\"project\":\"beta\"}");
	rc = BUILD(&r, err, "spool", "retry", "--all", "7");
	assert_usage(&r, rc, err, "'7'");
	rc = BUILD(&r, err, "spool", "retry", "7", "--project", "beta");
	assert_usage(&r, rc, err, "only with --all");
	rc = BUILD(&r, err, "spool", "ls", "--all");
	assert_usage(&r, rc, err, "--all does not go with it");
	/* show and export: run by cli_spool, several exchanges */
	rc = BUILD(&r, err, "spool", "show", "12", "--body", "/tmp/b", "--with-credentials");
	assert_int_equal(rc, CLI_OK);
	assert_int_equal(r.spool_action, CLI_SPOOL_SHOW);
	assert_int_equal(r.spool_id, 12);
	assert_string_equal(r.body_file, "/tmp/b");
	assert_true(r.credentials);
	cli_request_free(&r);
	rc = BUILD(&r, err, "spool", "show", "x");
	assert_usage(&r, rc, err, "'x'");
	rc = BUILD(&r, err, "spool", "show", "1", "--project", "a");
	assert_usage(&r, rc, err, "--project does not go with it");
	rc = BUILD(&r, err, "spool", "export", "/tmp/out", "--project", "alpha");
	assert_int_equal(rc, CLI_OK);
	assert_int_equal(r.spool_action, CLI_SPOOL_EXPORT);
	assert_string_equal(r.spool_dir, "/tmp/out");
	assert_string_equal(r.project, "alpha");
	assert_false(r.credentials);
	cli_request_free(&r);
	rc = BUILD(&r, err, "spool", "export");
	assert_usage(&r, rc, err, "DIR");
	rc = BUILD(&r, err, "spool", "export", "/tmp/out", "--body", "f");
	assert_usage(&r, rc, err, "--body does not go with it");
	rc = BUILD(&r, err, "spool", "retry");
	assert_usage(&r, rc, err, "ID");
	rc = BUILD(&r, err, "spool", "retry", "0");
	assert_usage(&r, rc, err, "'0'");
	rc = BUILD(&r, err, "spool", "retry", "-1");
	assert_usage(&r, rc, err, "'-1'");
	rc = BUILD(&r, err, "spool", "ls", "x");
	assert_usage(&r, rc, err, "'x'");
}

static void test_usage_generic(void **state)
{
	(void)state;
	struct cli_request r;
	char err[256];
	int rc = BUILD(&r, err, "frobnicate");
	assert_usage(&r, rc, err, "unknown command 'frobnicate'");
	rc = BUILD(&r, err, "status", "extra");
	assert_usage(&r, rc, err, "unexpected argument 'extra'");
	rc = BUILD(&r, err, "status", "--project", "alpha");
	assert_usage(&r, rc, err, "--project is not an option of status");
	rc = BUILD(&r, err, "status", "--timeout", "0");
	assert_usage(&r, rc, err, "--timeout");
	rc = BUILD(&r, err, "status", "--timeout", "soon");
	assert_usage(&r, rc, err, "--timeout");
	rc = BUILD(&r, err, "status", "--admin", "nowhere");
	assert_usage(&r, rc, err, "'nowhere'");
	rc = BUILD(&r, err, "status", "--admin", "127.0.0.1:99999");
	assert_usage(&r, rc, err, "127.0.0.1:99999");
}

static void test_help(void **state)
{
	(void)state;
	struct cli_request r;
	char err[256];
	const char *cmds[] = { "status", "switch", "maintenance", "hold", "resume", "journal",
			       "reload", "schedule" };
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		char *argv[] = { (char *)cmds[i], "--help", NULL };
		assert_int_equal(cli_build_request(2, argv, &r, err, sizeof(err)), CLI_OK);
		assert_true(r.help);
		cli_request_free(&r);
	}
	/* -h wins over what a complete command line would still need. */
	int rc = BUILD(&r, err, "switch", "-h");
	assert_int_equal(rc, CLI_OK);
	assert_true(r.help);
	cli_request_free(&r);
	/* cli_main: help exits 0 and sends nothing, a usage error exits 2. */
	assert_int_equal(cli_main(2, ARGV("journal", "--help")), CLI_OK);
	assert_int_equal(cli_main(1, ARGV("switch")), CLI_USAGE);
	assert_int_equal(cli_main(3, ARGV("hold", "--max", "x")), CLI_USAGE);
}

static void test_admin_address_precedence(void **state)
{
	(void)state;
	struct cli_request r;
	char err[256];
	assert_string_equal(cli_admin_address(NULL), CLI_DEFAULT_ADMIN);
	int rc = BUILD(&r, err, "status");
	assert_int_equal(rc, CLI_OK);
	assert_string_equal(r.admin, "unix:/run/cutover/admin.sock");
	assert_null(r.token_file);
	assert_true(r.timeout == 60.0);
	cli_request_free(&r);

	setenv("CUTOVER_ADMIN", "", 1); /* empty counts as unset */
	assert_string_equal(cli_admin_address(NULL), CLI_DEFAULT_ADMIN);

	setenv("CUTOVER_ADMIN", "unix:/tmp/from-env.sock", 1);
	setenv("CUTOVER_TOKEN_FILE", "/tmp/env-token", 1);
	rc = BUILD(&r, err, "status");
	assert_int_equal(rc, CLI_OK);
	assert_string_equal(r.admin, "unix:/tmp/from-env.sock");
	assert_string_equal(r.token_file, "/tmp/env-token");
	cli_request_free(&r);

	/* The option beats the environment, wherever it stands. */
	rc = BUILD(&r, err, "switch", "--admin", "127.0.0.1:18090", "new", "--token-file",
		   "/tmp/opt-token", "--timeout", "2.5");
	assert_int_equal(rc, CLI_OK);
	assert_string_equal(r.admin, "127.0.0.1:18090");
	assert_string_equal(r.token_file, "/tmp/opt-token");
	assert_true(r.timeout == 2.5);
	cli_request_free(&r);
	rc = BUILD(&r, err, "status", "--admin=[::1]:18090");
	assert_int_equal(rc, CLI_OK);
	assert_string_equal(r.admin, "[::1]:18090");
	cli_request_free(&r);

	/* A bad CUTOVER_ADMIN is a usage error that names it. */
	setenv("CUTOVER_ADMIN", "not-an-address", 1);
	rc = BUILD(&r, err, "status");
	assert_usage(&r, rc, err, "CUTOVER_ADMIN");
	setup_env(NULL);
}

/* ---- answers ---- */

struct output {
	char *out, *err;
	size_t out_len, err_len;
	FILE *o, *e;
};

static int render(char **argv, int argc, int status, const char *answer,
		  struct output *res)
{
	struct cli_request r;
	char err[256];
	if (cli_build_request(argc, argv, &r, err, sizeof(err)) != CLI_OK)
		fail_msg("%s", err);
	memset(res, 0, sizeof(*res));
	res->o = open_memstream(&res->out, &res->out_len);
	res->e = open_memstream(&res->err, &res->err_len);
	int rc = cli_render(&r, status, answer, res->o, res->e);
	fclose(res->o);
	fclose(res->e);
	cli_request_free(&r);
	return rc;
}

#define RENDER(res, status, answer, ...) \
	render(ARGV(__VA_ARGS__), ARGC(__VA_ARGS__), (status), (answer), (res))

static void output_free(struct output *res)
{
	free(res->out);
	free(res->err);
}

static const char *CHANGE_OK =
	"{\"ok\": true, \"scope\": \"global\", \"from\": \"old\", \"to\": \"new\", "
	"\"forced\": false, \"preflight\": {\"ok\": true, \"steps\": []}, \"drained\": true, "
	"\"in_flight\": 0, \"upstream\": \"old\"}";

static void test_render_switch(void **state)
{
	(void)state;
	struct output o;
	assert_int_equal(RENDER(&o, 200, CHANGE_OK, "switch", "new"), CLI_OK);
	assert_string_equal(o.out, "global: old -> new (preflight ok, drained)\n");
	assert_string_equal(o.err, "");
	output_free(&o);

	assert_int_equal(RENDER(&o, 200,
				"{\"ok\": true, \"scope\": \"alpha\", \"from\": \"new\", \"to\": "
				"\"old\", \"forced\": true, \"preflight\": {\"ok\": false, "
				"\"skipped\": \"forced\"}, \"drained\": true, \"in_flight\": 0, "
				"\"upstream\": \"new\"}",
				"switch", "old", "--force", "--project", "alpha"),
			 CLI_OK);
	assert_string_equal(o.out, "alpha: new -> old (forced, drained)\n");
	output_free(&o);

	assert_int_equal(RENDER(&o, 202,
				"{\"ok\": true, \"scheduled\": {\"id\": 3, \"to\": \"new\", \"at\": "
				"\"2026-12-01T02:00:00Z\", \"who\": \"ops\"}}",
				"switch", "new", "--at", "2026-12-01T02:00:00Z"),
			 CLI_OK);
	assert_string_equal(o.out, "scheduled #3: switch new at 2026-12-01T02:00:00Z\n");
	output_free(&o);
}

static void test_render_not_drained(void **state)
{
	(void)state;
	const char *late = "{\"ok\": true, \"scope\": \"alpha\", \"from\": \"old\", \"to\": "
			   "\"maintenance\", \"forced\": false, \"drained\": false, \"in_flight\": 2, "
			   "\"upstream\": \"old\"}";
	struct output o;
	assert_int_equal(RENDER(&o, 200, late, "maintenance", "--project", "alpha"), CLI_NOT_DRAINED);
	assert_string_equal(o.err, "cutover: now maintenance for alpha, but 2 request(s) still in "
				   "flight to old after the drain timeout\n");
	assert_string_equal(o.out, "");
	output_free(&o);

	/* --json: the raw answer on stdout, the exit code and the line still say it. */
	assert_int_equal(RENDER(&o, 200, late, "maintenance", "--json"), CLI_NOT_DRAINED);
	assert_non_null(strstr(o.out, "\n  \"drained\": false"));
	assert_non_null(strstr(o.err, "2 request(s) still in flight to old"));
	output_free(&o);

	/* resume of every held scope: one of them late. */
	char list[1024];
	snprintf(list, sizeof(list), "{\"ok\": true, \"resumed\": [%s, %s, null]}", CHANGE_OK, late);
	assert_int_equal(RENDER(&o, 200, list, "resume"), CLI_NOT_DRAINED);
	assert_string_equal(o.out, "global: old -> new (preflight ok, drained)\n");
	assert_non_null(strstr(o.err, "now maintenance for alpha"));
	output_free(&o);
}

static void test_render_maintenance(void **state)
{
	(void)state;
	struct output o;
	assert_int_equal(RENDER(&o, 200,
				"{\"ok\": true, \"scope\": \"alpha\", \"from\": \"old\", \"to\": "
				"\"maintenance\", \"until\": \"2026-12-01T02:00:00Z\", \"drained\": "
				"true, \"in_flight\": 0, \"upstream\": \"old\"}",
				"maintenance", "--project", "alpha", "--until", "+2h"),
			 CLI_OK);
	assert_string_equal(o.out,
			    "alpha: maintenance on until 2026-12-01T02:00:00Z (was old, drained)\n");
	output_free(&o);
	/* Without "until" in the answer the line repeats --until as given. */
	assert_int_equal(RENDER(&o, 200,
				"{\"ok\": true, \"scope\": \"global\", \"from\": \"new\", \"to\": "
				"\"maintenance\", \"drained\": true}",
				"maintenance", "--until", "+2h"),
			 CLI_OK);
	assert_string_equal(o.out, "global: maintenance on until +2h (was new, drained)\n");
	output_free(&o);
	assert_int_equal(RENDER(&o, 200,
				"{\"ok\": true, \"scope\": \"global\", \"from\": \"maintenance\", "
				"\"to\": \"new\", \"drained\": true}",
				"maintenance", "off"),
			 CLI_OK);
	assert_string_equal(o.out, "global: maintenance off, now new (drained)\n");
	output_free(&o);
}

static void test_render_errors(void **state)
{
	(void)state;
	struct output o;
	assert_int_equal(RENDER(&o, 409,
				"{\"ok\": false, \"error\": \"preflight of new failed: connect: "
				"Connection refused; traffic stays on old\"}",
				"switch", "new"),
			 CLI_FAILED);
	assert_string_equal(o.err, "cutover: switch refused: preflight of new failed: connect: "
				   "Connection refused; traffic stays on old\n");
	assert_string_equal(o.out, "");
	output_free(&o);

	assert_int_equal(RENDER(&o, 401, "{\"ok\": false, \"error\": \"missing or wrong bearer token\"}",
				"status", "--admin", "127.0.0.1:1", "--token-file", "/t"),
			 CLI_FAILED);
	assert_string_equal(o.err, "cutover: admin API answered 401: missing or wrong bearer token\n");
	output_free(&o);

	assert_int_equal(RENDER(&o, 502, "Bad Gateway\nmore\n", "status"), CLI_FAILED);
	assert_string_equal(o.err, "cutover: admin API answered 502: Bad Gateway\n");
	output_free(&o);

	assert_int_equal(RENDER(&o, 200, "<html>", "status"), CLI_FAILED);
	assert_non_null(strstr(o.err, "bad answer"));
	output_free(&o);

	/* --json prints an error answer too, and still exits 1. */
	assert_int_equal(RENDER(&o, 404, "{\"ok\":false,\"error\":\"no scheduled switch #9\"}",
				"schedule", "cancel", "9", "--json"),
			 CLI_FAILED);
	assert_string_equal(o.out, "{\n  \"ok\": false,\n  \"error\": \"no scheduled switch #9\"\n}\n");
	assert_string_equal(o.err, "cutover: admin API answered 404: no scheduled switch #9\n");
	output_free(&o);
}

static void test_render_status_and_journal(void **state)
{
	(void)state;
	const char *status =
		"{\"version\": \"0.1.0\", \"mode\": \"maintenance\", \"generation\": 4, "
		"\"until\": \"2026-12-01T02:00:00Z\", \"reason\": \"dump\", \"resume_to\": \"old\","
		"\"projects\": {\"beta\": {\"mode\": \"old\", \"own_mode\": false, \"in_flight\": "
		"{\"old\": 2, \"new\": 0}}, \"alpha\": {\"mode\": \"new\", \"own_mode\": true, "
		"\"in_flight\": {\"old\": 0, \"new\": 5}}},"
		"\"upstreams\": {\"old\": {\"url\": \"http://o\", \"in_flight\": 2, \"active\": 2, "
		"\"queued\": 0, \"max_active\": 200, \"addresses\": [\"10.0.0.1:80\", "
		"\"10.0.0.2:80\"]}, \"new\": {\"url\": \"http://n\", \"in_flight\": 5, "
		"\"addresses\": []}},"
		"\"hold\": {\"parked\": 7}, \"scheduled\": [{\"id\": 3, \"at\": "
		"\"2026-12-01T02:00:00Z\", \"to\": \"new\", \"project\": null, \"reason\": "
		"\"night\"}],"
		"\"spool\": {\"records\": 11, \"bytes\": 2048, \"dead_letters\": 1, \"oldest_age\": 9},"
		"\"journal\": [{\"time\": \"2026-11-30T10:00:00Z\", \"who\": \"ops\", \"action\": "
		"\"switch\", \"scope\": \"alpha\", \"from\": \"old\", \"to\": \"new\", \"reason\": "
		"\"pilot\", \"forced\": true, \"outcome\": \"applied\"}]}";
	struct output o;
	assert_int_equal(RENDER(&o, 200, status, "status"), CLI_OK);
	const char *want[] = {
		"global mode: maintenance until 2026-12-01T02:00:00Z, then old, reason: dump\n",
		"10.0.0.1:80, 10.0.0.2:80", "2/200", "(not resolved)",
		"alpha  new   own", "beta   old   following", "0/5", "2/0",
		"spool: 11 records, 2048 bytes, 1 dead letters, oldest 9 s\n",
		"hold: 7 request(s) parked\n", "#3", "night",
		"2026-11-30T10:00:00Z  ops  switch  alpha: old -> new  \"pilot\"  forced  -> applied\n",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (!strstr(o.out, want[i]))
			fail_msg("status output lacks '%s':\n%s", want[i], o.out);
	/* Projects sorted by name. */
	assert_true(strstr(o.out, "alpha  ") < strstr(o.out, "beta  "));
	output_free(&o);

	assert_int_equal(RENDER(&o, 200,
				"{\"entries\": [{\"time\": \"t1\", \"who\": \"a\", \"action\": "
				"\"hold\", \"scope\": \"global\", \"from\": \"old\", \"to\": \"hold\", "
				"\"outcome\": \"applied\"}, {\"time\": \"t2\", \"who\": \"b\", "
				"\"action\": \"drain\", \"scope\": \"global\", \"upstream\": \"old\", "
				"\"in_flight\": 3, \"outcome\": \"drain timeout\"}]}",
				"journal"),
			 CLI_OK);
	assert_string_equal(o.out, "t1  a  hold  global: old -> hold  -> applied\n"
				   "t2  b  drain  global  3 in flight to old  -> drain timeout\n");
	output_free(&o);
}

static void test_unreachable(void **state)
{
	(void)state;
	/* The one-line reason itself is checked by the integration test. */
	assert_int_equal(cli_main(3, ARGV("status", "--admin", "unix:/nonexistent/cutover-test.sock")),
			 CLI_FAILED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_commands, setup_env),
		cmocka_unit_test_setup(test_status, setup_env),
		cmocka_unit_test_setup(test_switch, setup_env),
		cmocka_unit_test_setup(test_switch_usage, setup_env),
		cmocka_unit_test_setup(test_maintenance, setup_env),
		cmocka_unit_test_setup(test_hold_resume, setup_env),
		cmocka_unit_test_setup(test_journal_reload_schedule, setup_env),
		cmocka_unit_test_setup(test_spool, setup_env),
		cmocka_unit_test_setup(test_usage_generic, setup_env),
		cmocka_unit_test_setup(test_help, setup_env),
		cmocka_unit_test_setup(test_admin_address_precedence, setup_env),
		cmocka_unit_test_setup(test_render_switch, setup_env),
		cmocka_unit_test_setup(test_render_not_drained, setup_env),
		cmocka_unit_test_setup(test_render_maintenance, setup_env),
		cmocka_unit_test_setup(test_render_errors, setup_env),
		cmocka_unit_test_setup(test_render_status_and_journal, setup_env),
		cmocka_unit_test_setup(test_unreachable, setup_env),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
