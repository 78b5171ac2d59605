/* fuzz_time: the TIME of `--at` and `--until` (when_parse(): RFC 3339 or
 * +N[smhd]), as the admin API reads "at" and "until". A time it accepts
 * lies within [now, now + WHEN_MAX_AHEAD], and is shown back in status and
 * persisted in the state file as state_time_json() writes it: that text
 * must read back as the same instant, or status would show a time other
 * than the one in force.
 *
 * Input: the text, as the JSON string's value (no NUL inside). */
#include "fuzz.h"

#include <stdbool.h>
#include <time.h>

#include <jansson.h>

#include "state.h"
#include "when.h"

/* A fixed "now" (2026-12-01T00:00:00Z): the same input, the same result. */
#define NOW ((time_t)1796083200)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 256 || memchr(data, 0, size))
		return 0;
	char *text = fuzz_cstr(data, size);
	time_t t;
	const char *why = NULL;
	for (int future = 0; future < 2; future++) {
		if (when_parse(text, NOW, future, &t, &why) < 0) {
			FUZZ_CHECK(why && *why, "'%s' refused without a reason", text);
			continue;
		}
		if (t == 0)
			continue; /* the epoch itself: 0 is "no time" to state_time_json() */
		if (future)
			FUZZ_CHECK(t >= NOW && t <= NOW + WHEN_MAX_AHEAD,
				   "'%s' accepted as %lld, out of [now, now + %d]", text,
				   (long long)t, WHEN_MAX_AHEAD);
		json_t *shown = state_time_json(t);
		FUZZ_CHECK(json_is_string(shown), "time %lld from '%s' cannot be shown",
			   (long long)t, text);
		char *again = fuzz_cstr((const uint8_t *)json_string_value(shown),
					json_string_length(shown));
		time_t back = 0;
		bool read = when_parse(again, NOW, false, &back, NULL) == 0;
		FUZZ_CHECK(read && back == t, "'%s' is %lld, shown as '%s', which reads back as %s",
			   text, (long long)t, again, read ? "another time" : "nothing (refused)");
		free(again);
		json_decref(shown);
	}
	free(text);
	return 0;
}
