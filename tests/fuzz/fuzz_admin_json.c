/* fuzz_admin_json: request bodies of the admin API, through the admin's
 * own reader (admin_body_parse(): JSON, duplicate keys refused, only the
 * endpoint's keys with their types), then what control.c does with the
 * fields it takes: mode_parse() on "to", when_parse() on "at"/"until" and
 * the time shown back as state_time_json() writes it, which must read back
 * as the same instant. Neither admin nor control has an entry point that
 * runs an action without a socket and a running control plane, so the
 * actions themselves are left to the integration tests.
 *
 * Input: one control byte (the endpoint), then the body. */
#include "fuzz.h"

#include <stdbool.h>
#include <time.h>

#include <jansson.h>

#include "admin.h"
#include "state.h"
#include "when.h"

#define NOW ((time_t)1796083200)

static const char *const endpoints[][2] = {
	{ "POST", "/switch" }, { "POST", "/maintenance" }, { "POST", "/hold" },
	{ "POST", "/resume" }, { "POST", "/reload" }, { "GET", "/status" },
	{ "GET", "/journal" }, { "DELETE", "/schedule/1" }, { "GET", "/metrics" },
	{ "POST", "/spool/retry" }, { "POST", "/spool/1/retry" }, { "GET", "/spool" },
};

static void time_field(const json_t *body, const char *key)
{
	const char *text = json_string_value(json_object_get(body, key));
	time_t t;
	if (!text || when_parse(text, NOW, true, &t, NULL) < 0)
		return;
	FUZZ_CHECK(t >= NOW && t <= NOW + WHEN_MAX_AHEAD, "\"%s\": \"%s\" accepted as %lld, "
		   "out of [now, now + %d]", key, text, (long long)t, WHEN_MAX_AHEAD);
	json_t *shown = state_time_json(t);
	FUZZ_CHECK(json_is_string(shown), "time %lld cannot be shown", (long long)t);
	time_t back = 0;
	FUZZ_CHECK(when_parse(json_string_value(shown), NOW, false, &back, NULL) == 0 && back == t,
		   "'%s' shown as '%s' does not read back", text, json_string_value(shown));
	json_decref(shown);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 64 * 1024)
		return 0;
	const char *const *ep = endpoints[data[0] % (sizeof(endpoints) / sizeof(endpoints[0]))];
	json_t *body = NULL;
	char msg[512];
	int status = admin_body_parse(ep[0], ep[1], (const char *)data + 1, size - 1, &body, msg,
				      sizeof(msg));
	FUZZ_CHECK(status == 0 || status == 400 || status == 500, "status %d", status);
	FUZZ_CHECK((status == 0) == (body != NULL), "status %d with body %p", status, (void *)body);
	FUZZ_CHECK(status == 0 || strlen(msg) > 0, "refused without a reason");
	if (status)
		return 0;
	FUZZ_CHECK(json_is_object(body), "a body that is not an object was taken");
	const char *to = json_string_value(json_object_get(body, "to"));
	enum mode m;
	if (to)
		(void)mode_parse(to, &m);
	time_field(body, "at");
	time_field(body, "until");
	/* The answer's text, as reply() writes it. */
	char *text = json_dumps(body, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	FUZZ_CHECK(text, "a parsed body cannot be written back");
	free(text);
	json_decref(body);
	return 0;
}
