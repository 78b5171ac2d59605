/* tests for proxy/render.c: each printer's lines, what render_answer does
 * for every answer (--json, refusals, error statuses, not JSON, a drain
 * that timed out), and the outcome it reports. The request is built by
 * hand: nothing here goes through the command line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "render.h"

struct output {
	char *out, *err;
	size_t out_len, err_len;
};

static enum render_outcome answer(const struct render_request *rq, int status, const char *text,
				  struct output *res)
{
	memset(res, 0, sizeof(*res));
	FILE *o = open_memstream(&res->out, &res->out_len);
	FILE *e = open_memstream(&res->err, &res->err_len);
	assert_non_null(o);
	assert_non_null(e);
	enum render_outcome rc = render_answer(rq, status, text, o, e);
	fclose(o);
	fclose(e);
	return rc;
}

static void output_free(struct output *res)
{
	free(res->out);
	free(res->err);
}

/* RQ's answer STATUS/TEXT prints OUT and ERR exactly and gives WANT. */
static void expect(const struct render_request *rq, int status, const char *text,
		   enum render_outcome want, const char *out, const char *err)
{
	struct output o;
	enum render_outcome rc = answer(rq, status, text, &o);
	if (rc != want || strcmp(o.out, out) != 0 || strcmp(o.err, err) != 0)
		fail_msg("answer %d %s:\n got %d, stdout '%s', stderr '%s'\nwant %d, stdout '%s', "
			 "stderr '%s'",
			 status, text, rc, o.out, o.err, want, out, err);
	output_free(&o);
}

#define ADMIN "unix:/run/cutover/admin.sock"

static const char *LATE = "{\"scope\": \"alpha\", \"from\": \"old\", \"to\": \"new\", "
			  "\"drained\": false, \"in_flight\": 4, \"upstream\": \"old\"}";
static const char *LATE_LINE = "cutover: now new for alpha, but 4 request(s) still in flight to "
			       "old after the drain timeout\n";

static void test_change_lines(void **state)
{
	(void)state;
	struct render_request rq = { .command = "switch", .admin = ADMIN, .print = render_change };
	expect(&rq, 200, "{\"from\": \"old\", \"to\": \"new\", \"drained\": true}", RENDER_DONE,
	       "global: old -> new (no preflight, drained)\n", "");
	expect(&rq, 200, "{\"scope\": \"a\", \"from\": \"old\", \"to\": \"new\", \"preflight\": {}}",
	       RENDER_DONE, "a: old -> new (preflight skipped, drained)\n", "");
	expect(&rq, 200, "{}", RENDER_DONE, "global: ? -> ? (no preflight, drained)\n", "");
	expect(&rq, 200, LATE, RENDER_NOT_DRAINED, "", LATE_LINE);
	expect(&rq, 200,
	       "{\"scope\": \"alpha\", \"to\": \"new\", \"drained\": false, \"in_flight\": 4, "
	       "\"untracked\": 1, \"upstream\": \"old\"}",
	       RENDER_NOT_DRAINED, "",
	       "cutover: now new for alpha, but 4 request(s) still in flight to old after the drain "
	       "timeout (1 of them untracked: the project registry was full)\n");
	expect(&rq, 202, "{\"ok\": true}", RENDER_DONE, "scheduled #-: switch ? at ?\n", "");

	rq = (struct render_request){ .command = "hold", .admin = ADMIN, .print = render_change };
	expect(&rq, 200, "{\"from\": \"new\", \"to\": \"hold\", \"until\": \"T\"}", RENDER_DONE,
	       "global: on hold, new requests are parked until T (was new, drained)\n", "");

	/* --until as given stands in for an answer without "until", never over it. */
	rq = (struct render_request){ .command = "maintenance", .admin = ADMIN, .until = "+2h",
				      .print = render_change };
	expect(&rq, 200, "{\"from\": \"old\", \"to\": \"maintenance\"}", RENDER_DONE,
	       "global: maintenance on until +2h (was old, drained)\n", "");
	expect(&rq, 200, "{\"from\": \"old\", \"to\": \"maintenance\", \"until\": \"Z\"}",
	       RENDER_DONE, "global: maintenance on until Z (was old, drained)\n", "");
}

static void test_resume(void **state)
{
	(void)state;
	struct render_request rq = { .command = "resume", .admin = ADMIN, .print = render_resume };
	expect(&rq, 200, "{\"scope\": \"b\", \"from\": \"hold\", \"to\": \"old\"}", RENDER_DONE,
	       "b: resumed, now old (drained)\n", "");
	char text[512];
	/* A refusal outweighs a drain that timed out, whichever comes first. */
	snprintf(text, sizeof(text), "{\"resumed\": [%s, {\"ok\": false, \"error\": \"not held\"}]}",
		 LATE);
	char err[512];
	snprintf(err, sizeof(err), "%scutover: resume refused: not held\n", LATE_LINE);
	expect(&rq, 200, text, RENDER_FAILED, "", err);
	snprintf(text, sizeof(text), "{\"resumed\": [{\"ok\": false}, %s]}", LATE);
	struct output o;
	assert_int_equal(answer(&rq, 200, text, &o), RENDER_FAILED);
	assert_non_null(strstr(o.err, "resume refused: (no reason given)\n"));
	assert_non_null(strstr(o.err, LATE_LINE));
	output_free(&o);
	expect(&rq, 200, "{\"resumed\": []}", RENDER_DONE, "", "");
}

static void test_answer_errors(void **state)
{
	(void)state;
	struct render_request rq = { .command = "switch", .admin = ADMIN, .print = render_change };
	expect(&rq, 422, "", RENDER_FAILED, "", "cutover: switch refused: (no reason given)\n");
	expect(&rq, 400, "{\"error\": \"bad to\"}", RENDER_FAILED, "",
	       "cutover: switch refused: bad to\n");
	/* Not JSON: its first line is the reason. */
	expect(&rq, 503, "busy\r\nlater", RENDER_FAILED, "", "cutover: admin API answered 503: busy\n");
	/* A 401 hints at the token only when none was named. */
	expect(&rq, 401, "{}", RENDER_FAILED, "",
	       "cutover: admin API answered 401: (no reason given) (no token sent: give "
	       "--token-file or set CUTOVER_TOKEN_FILE)\n");
	rq.token_file = true;
	expect(&rq, 401, "{}", RENDER_FAILED, "", "cutover: admin API answered 401: (no reason given)\n");
	/* The reason of a refused resume counts for the whole answer. */
	expect(&rq, 500, "{\"resumed\": [{\"ok\": false, \"error\": \"e\"}]}", RENDER_FAILED, "",
	       "cutover: admin API answered 500: e\n");
	expect(&rq, 200, "[1]", RENDER_FAILED, "",
	       "cutover: bad answer from the admin API at " ADMIN ": not a JSON object\n");
	expect(&rq, 200, "", RENDER_FAILED, "",
	       "cutover: bad answer from the admin API at " ADMIN ": not JSON\n");
	expect(&rq, 200, NULL, RENDER_FAILED, "",
	       "cutover: bad answer from the admin API at " ADMIN ": not JSON\n");
}

static void test_answer_json(void **state)
{
	(void)state;
	/* --json: the answer as is (indented if it is JSON), never the printer. */
	struct render_request rq = { .command = "reload", .admin = ADMIN, .json = true,
				     .print = render_reload };
	expect(&rq, 200, "{\"b\":1,\"a\":[]}", RENDER_DONE, "{\n  \"b\": 1,\n  \"a\": []\n}\n", "");
	expect(&rq, 502, "Bad Gateway", RENDER_FAILED, "Bad Gateway",
	       "cutover: admin API answered 502: Bad Gateway\n");
	/* ... and the outcome still says how each drain went. */
	char text[512];
	snprintf(text, sizeof(text), "{\"resumed\": [{\"drained\": true}, %s]}", LATE);
	struct output o;
	assert_int_equal(answer(&rq, 200, text, &o), RENDER_NOT_DRAINED);
	assert_string_equal(o.err, LATE_LINE);
	output_free(&o);
	/* No printer: the shared handling alone. */
	rq = (struct render_request){ .command = "status", .admin = ADMIN };
	expect(&rq, 200, "{}", RENDER_DONE, "", "");
}

static void test_journal_reload_cancel(void **state)
{
	(void)state;
	struct render_request rq = { .command = "journal", .admin = ADMIN, .print = render_journal };
	expect(&rq, 200, "{}", RENDER_DONE, "the journal is empty\n", "");
	expect(&rq, 200,
	       "{\"entries\": [{\"time\": \"t\", \"who\": \"w\", \"action\": \"schedule\", "
	       "\"scheduled\": {\"id\": 4, \"project\": \"p\", \"to\": \"old\", \"at\": \"A\", "
	       "\"reason\": \"r\"}, \"status\": 409, \"answer\": {\"error\": \"no\"}}, {\"status\": "
	       "200, \"answer\": {\"ok\": true}}, {\"forced\": true}]}",
	       RENDER_DONE,
	       "t  w  schedule  #4 switch p to old at A  \"r\"  -> 409 no\n"
	       "-  -  -> 200 ok\n"
	       "-  -  forced\n",
	       "");

	/* spool retries name their record, or how many a retry --all took */
	expect(&rq, 200,
	       "{\"entries\": [{\"time\": \"t\", \"who\": \"w\", \"action\": \"spool-retry\", "
	       "\"scope\": \"alpha\", \"id\": 12}, {\"action\": \"spool-retry\", \"scope\": "
	       "\"all\", \"count\": 3}]}",
	       RENDER_DONE,
	       "t  w  spool-retry  alpha  record 12\n"
	       "-  -  spool-retry  all  3 record(s)\n",
	       "");
	/* spool show: what the record is, then its head */
	rq = (struct render_request){ .command = "spool show", .admin = ADMIN,
				      .print = render_spool_record };
	expect(&rq, 200,
	       "{\"id\": 3, \"project\": \"-\", \"route\": \"submit\", \"state\": \"dead\", "
	       "\"accepted\": \"A\", \"body_bytes\": 10, \"dead_letter\": {\"status\": 400, "
	       "\"attempts\": 1, \"time\": \"T\", \"answer\": \"no\"}, \"head\": [\"POST / HTTP/1.1\", "
	       "\"Authorization: Basic <redacted>\"]}",
	       RENDER_DONE,
	       "record 3 of (global) (route submit): dead\n"
	       "accepted A, body 10 bytes\n"
	       "dead letter: status 400 after 1 attempt(s), T: no\n\n"
	       "POST / HTTP/1.1\nAuthorization: Basic <redacted>\n",
	       "");
	rq = (struct render_request){ .command = "spool", .admin = ADMIN, .print = render_spool };
	expect(&rq, 200, "{\"ok\": true, \"retried\": 2, \"project\": \"beta\"}", RENDER_DONE,
	       "2 dead letter(s) of beta pending again\n", "");

	rq = (struct render_request){ .command = "reload", .admin = ADMIN, .print = render_reload };
	expect(&rq, 200, "{\"message\": \"m\"}", RENDER_DONE, "reloaded: m\n", "");
	expect(&rq, 200, "{\"generation\": 2}", RENDER_DONE, "reloaded (config generation 2)\n", "");
	expect(&rq, 200, "{}", RENDER_DONE, "reloaded\n", "");

	rq = (struct render_request){ .command = "schedule", .admin = ADMIN, .print = render_cancel };
	expect(&rq, 200, "{\"cancelled\": {\"id\": 9, \"to\": \"old\", \"at\": \"T\", "
			 "\"project\": \"p\", \"force\": true}}",
	       RENDER_DONE, "cancelled #9: switch old at T for project p (forced)\n", "");
	expect(&rq, 200, "{}", RENDER_DONE, "cancelled\n", "");
}

static void test_status_table(void **state)
{
	(void)state;
	struct render_request rq = { .command = "status", .admin = ADMIN, .print = render_status };
	/* Columns two spaces apart, the last one not padded, empty trailing cells dropped. */
	expect(&rq, 200,
	       "{\"version\": \"9\", \"generation\": 2, \"mode\": \"old\", "
	       "\"upstreams\": {\"old\": {\"url\": \"http://o\", \"in_flight\": 12, "
	       "\"active\": 1, \"queued\": 0, \"addresses\": [\"10.0.0.1:80\"], \"dns\": "
	       "{\"literal\": true}, \"health\": {\"up\": true, \"latency_ms\": 2.6}}, "
	       "\"new\": {\"url\": \"http://new.example\", \"dns\": "
	       "{\"age\": 3, \"ttl\": 60, \"error\": \"SERVFAIL\"}, \"health\": {\"up\": false, "
	       "\"error\": \"resolve: no address yet\"}}},"
	       "\"projects\": {\"z\": {\"mode\": \"new\", \"own_mode\": true, \"until\": \"U\"}, "
	       "\"a\": {\"mode\": \"old\", \"in_flight\": {\"old\": 1, \"new\": 0}, "
	       "\"spool\": {\"records\": 3, \"bytes\": 4096, \"dead_letters\": 1, \"oldest_age\": 5}}},"
	       "\"registry\": {\"tracked\": 2, \"limit\": 4096, \"evicted\": 7, "
	       "\"untracked_requests\": 3, \"untracked_in_flight\": {\"old\": 1, \"new\": 0}},"
	       "\"spool\": {\"records\": 3, \"bytes\": 4096, \"dead_letters\": 1, \"oldest_age\": 5, "
	       "\"quarantined\": {\"files\": 2, \"bytes\": 700}}, "
	       "\"fleet\": {\"unsent_forms\": 40, \"devices\": 7}, "
	       "\"scheduled\": [], \"journal\": []}",
	       RENDER_DONE,
	       "cutover 9, state generation 2\n"
	       "global mode: old\n"
	       "upstreams:\n"
	       "  NAME  URL                 HEALTH                         IN_FLIGHT  ACTIVE  QUEUED  ADDRESSES       RESOLVED\n"
	       "  old   http://o            up 3 ms                        12         1       0       10.0.0.1:80     (IP address)\n"
	       "  new   http://new.example  down: resolve: no address yet  -          -       -       (not resolved)  3s ago (ttl 60s), now failing: SERVFAIL\n"
	       "projects:\n"
	       "  NAME  MODE  SCOPE      IN_FLIGHT old/new  UNSENT  SPOOL records/bytes/dead  NOTE\n"
	       "  a     old   following  1/0                -       3/4096/1\n"
	       "  z     new   own        -/-                -       -                         until U\n"
	       "registry: 2 projects tracked (limit 4096 seen only in traffic), 7 evicted, "
	       "3 request(s) untracked, in flight untracked old/new: 1/0\n"
	       "spool: 3 records, 4096 bytes, 1 dead letters, oldest 5 s\n"
	       "spool quarantine: 2 file(s), 700 bytes of damaged records found at start (see the "
	       "log; remove them once looked at)\n"
	       "fleet: 40 unsent form(s) on 7 device(s) by their last heartbeat\n"
	       "scheduled: none\n"
	       "last journal entries: none\n",
	       "");
	expect(&rq, 200, "{}", RENDER_DONE,
	       "cutover ?, state generation -\n"
	       "global mode: ?\n"
	       "upstreams:\n"
	       "  (none)\n"
	       "projects:\n"
	       "  (none seen yet; every project follows the global mode)\n"
	       "scheduled: none\n"
	       "last journal entries: none\n",
	       "");
}

/* Strings from the journal and status reach a terminal: control
 * characters (C0, DEL, C1) are shown escaped, never sent as they are. */
static void test_control_characters_escaped(void **state)
{
	(void)state;
	struct render_request rq = { .command = "journal", .admin = ADMIN, .print = render_journal };
	expect(&rq, 200,
	       "{\"entries\": [{\"time\": \"t\", \"who\": \"w\\u001b[31m\", \"action\": "
	       "\"switch\", \"scope\": \"p\", \"from\": \"old\", \"to\": \"new\", \"reason\": "
	       "\"a\\u001b[2J\\u001b]0;x\\u0007b\\r\\nc\\u007f\\u009b1m\\\\d\"}]}",
	       RENDER_DONE,
	       "t  w\\x1b[31m  switch  p: old -> new  \"a\\x1b[2J\\x1b]0;x\\x07b\\x0d\\x0ac\\x7f"
	       "\\u009b1m\\\\d\"\n",
	       "");
	rq = (struct render_request){ .command = "switch", .admin = ADMIN, .print = render_change };
	expect(&rq, 400, "{\"ok\": false, \"error\": \"bad project '\\u001b[2J'\"}", RENDER_FAILED,
	       "", "cutover: switch refused: bad project '\\x1b[2J'\n");
	expect(&rq, 502, "Bad\033[2J Gateway\r\nmore", RENDER_FAILED, "",
	       "cutover: admin API answered 502: Bad\\x1b[2J Gateway\n");
	rq = (struct render_request){ .command = "status", .admin = ADMIN, .print = render_status };
	struct output o;
	assert_int_equal(answer(&rq, 200,
				"{\"mode\": \"old\\u001b\", \"projects\": {\"a\\u001bb\": "
				"{\"mode\": \"new\", \"reason\": \"\\u0007\"}}}", &o),
			 RENDER_DONE);
	assert_null(strchr(o.out, 0x1b));
	assert_null(strchr(o.out, 0x07));
	assert_non_null(strstr(o.out, "global mode: old\\x1b"));
	assert_non_null(strstr(o.out, "a\\x1bb"));
	output_free(&o);
}

/* Numbers print as people write them: 0.1, not 0.10000000000000001. */
static void test_numbers_printed_short(void **state)
{
	(void)state;
	struct render_request rq = { .command = "status", .admin = ADMIN, .json = true,
				     .print = render_status };
	expect(&rq, 200, "{\"age\": 0.1, \"ttl\": 300.0, \"n\": 3}", RENDER_DONE,
	       "{\n  \"age\": 0.1,\n  \"ttl\": 300.0,\n  \"n\": 3\n}\n", "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_change_lines),
		cmocka_unit_test(test_resume),
		cmocka_unit_test(test_answer_errors),
		cmocka_unit_test(test_answer_json),
		cmocka_unit_test(test_journal_reload_cancel),
		cmocka_unit_test(test_status_table),
		cmocka_unit_test(test_control_characters_escaped),
		cmocka_unit_test(test_numbers_printed_short),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
