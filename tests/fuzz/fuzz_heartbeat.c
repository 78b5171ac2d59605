/* fuzz_heartbeat: heartbeat_parse_query() on any query string. Beyond
 * crashes it checks what heartbeat.h promises: on success the values are
 * within their bounds, NUL-free and free of control characters; on
 * refusal a reason and nothing else.
 *
 * Input: the query string (the bytes after '?'). */
#include "fuzz.h"

#include "heartbeat.h"

static void check_text(const char *s, size_t max, const char *what)
{
	size_t n = strnlen(s, max + 1);
	FUZZ_CHECK(n <= max, "%s longer than %zu", what, max);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		FUZZ_CHECK(c >= 0x20 && c != 0x7f, "%s holds 0x%02x", what, c);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy: a read past the query is an ASan report. */
	char *q = malloc(size ? size : 1);
	if (!q)
		abort();
	memcpy(q, data, size);
	struct heartbeat hb;
	if (heartbeat_parse_query(q, size, &hb) == 0) {
		FUZZ_CHECK(hb.error == NULL, "success with a reason");
		if (hb.has_device_id) {
			FUZZ_CHECK(hb.device_id_len > 0 && hb.device_id_len == strlen(hb.device_id),
				   "device_id_len %zu for '%s'", hb.device_id_len, hb.device_id);
			check_text(hb.device_id, HEARTBEAT_DEVICE_ID_MAX, "device_id");
		} else {
			FUZZ_CHECK(hb.device_id[0] == '\0', "device_id set without has_device_id");
		}
		FUZZ_CHECK(hb.num_unsent_forms <= HEARTBEAT_UNSENT_MAX, "num_unsent_forms %u",
			   hb.num_unsent_forms);
		FUZZ_CHECK(hb.has_num_unsent_forms || hb.num_unsent_forms == 0, "count without flag");
		check_text(hb.app_version, HEARTBEAT_VERSION_MAX, "app_version");
		check_text(hb.cc_version, HEARTBEAT_VERSION_MAX, "cc_version");
		/* Found only where the name is in the query (perhaps escaped). */
		if (hb.has_num_unsent_forms)
			FUZZ_CHECK(memchr(q, '=', size), "a count without any '='");
	} else {
		FUZZ_CHECK(hb.error != NULL, "refused without a reason");
		FUZZ_CHECK(!hb.has_device_id && !hb.has_num_unsent_forms && !hb.has_app_version &&
				   !hb.has_cc_version && hb.num_unsent_forms == 0 &&
				   hb.device_id[0] == '\0',
			   "a refused query left values");
	}
	free(q);
	return 0;
}
