/* fuzz_admin_json: request bodies of the admin API. admin.c reads a body
 * with json_loadb(flags 0) and control.c validates it per action with
 * json_unpack_ex(); neither has an entry point that takes a body without a
 * socket and a running control plane (preflight, drain timers, the state
 * file), so this target runs the same calls with the same flags and
 * formats: the parse, each action's unpack, mode_parse() and
 * control_parse_time() on the fields, the time as status would show it,
 * and the answer text as admin.c writes it (JSON_INDENT(2) |
 * JSON_PRESERVE_ORDER).
 *
 * Input: one control byte (the action: switch, maintenance, hold, resume),
 * then the body. */
#include "fuzz.h"

#include <time.h>

#include <jansson.h>

#include "control.h"
#include "state.h"

#define NOW ((time_t)1796083200)

static void time_field(const char *text)
{
	time_t t;
	if (text && control_parse_time(text, NOW, &t) == 0) {
		json_t *shown = state_time_json(t);
		json_decref(shown);
	}
}

/* The scheduled entry control.c persists for a switch with "at". */
static void scheduled_entry(json_t *body, const char *at)
{
	time_t t;
	if (control_parse_time(at, NOW, &t) < 0)
		return;
	json_t *entry = json_deep_copy(body);
	FUZZ_CHECK(entry, "deep copy of a parsed body failed");
	json_object_del(entry, "at");
	json_object_set_new(entry, "id", json_integer(1));
	json_object_set_new(entry, "at", state_time_json(t));
	json_object_set_new(entry, "who", json_string("fuzz"));
	char *text = json_dumps(entry, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	FUZZ_CHECK(text, "a scheduled entry cannot be written");
	/* The persisted schedule is read back by the state file's loader. */
	json_error_t err;
	json_t *back = json_loads(text, JSON_REJECT_DUPLICATES, &err);
	FUZZ_CHECK(back && json_equal(back, entry), "scheduled entry does not read back: %s",
		   back ? "different" : err.text);
	json_decref(back);
	free(text);
	json_decref(entry);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 64 * 1024)
		return 0;
	unsigned action = data[0] & 3;
	json_error_t err;
	json_t *body = json_loadb((const char *)data + 1, size - 1, 0, &err);
	if (!body) {
		char msg[300];
		snprintf(msg, sizeof(msg), "bad request: malformed JSON at line %d: %s", err.line,
			 err.text);
		return 0;
	}
	if (json_is_object(body)) {
		const char *project = NULL, *reason = NULL, *to = NULL, *at = NULL, *until = NULL;
		int force = 0, on = 1;
		if (json_unpack_ex(body, &err, 0, "{s?s, s?s}", "project", &project, "reason",
				   &reason) == 0 && project) {
			enum mode m;
			mode_parse(project, &m);
		}
		switch (action) {
		case 0:
			if (json_unpack_ex(body, &err, 0, "{s:s, s?b, s?s}", "to", &to, "force", &force,
					   "at", &at) == 0) {
				enum mode m;
				mode_parse(to, &m);
				if (at)
					scheduled_entry(body, at);
			}
			break;
		case 1:
			if (json_unpack_ex(body, &err, 0, "{s?b, s?s}", "on", &on, "until", &until) == 0)
				time_field(until);
			break;
		case 2: {
			json_t *m = json_object_get(body, "max");
			if (m && json_is_number(m))
				(void)json_number_value(m);
			break;
		}
		default:
			break;
		}
	}
	/* The answer's text, as reply() writes it. */
	char *text = json_dumps(body, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
	FUZZ_CHECK(text, "a parsed body cannot be written back");
	free(text);
	json_decref(body);
	return 0;
}
