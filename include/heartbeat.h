/* heartbeat: the query string of CommCare's hourly heartbeat
 * (GET /a/<domain>/phone/heartbeat/<app_id>/?device_id=...&num_unsent_forms=N...),
 * parsed into the few fields the fleet backlog needs. A pure parser on
 * device-sent bytes (a leaf: no libevent, no allocation); the data path
 * calls it after routing.
 *
 * The query is application/x-www-form-urlencoded: '&'-separated name=value
 * pairs, '+' is a space, %XX an escaped byte. Empty pairs (repeated '&')
 * are skipped, unknown names ignored. A bad escape anywhere, a known name
 * given twice, or a known value out of bounds refuses the whole query:
 * a value that is not exactly what the device sent never reaches status. */
#ifndef CUTOVER_HEARTBEAT_H
#define CUTOVER_HEARTBEAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds of the decoded values, in bytes (the NUL not counted). */
#define HEARTBEAT_DEVICE_ID_MAX 128
#define HEARTBEAT_VERSION_MAX 64
/* A device holding more unsent forms than this is not believed. */
#define HEARTBEAT_UNSENT_MAX 1000000u

struct heartbeat {
	/* device_id: 1..HEARTBEAT_DEVICE_ID_MAX bytes of UTF-8 without control
	 * characters (it is shown in status as it is). */
	char device_id[HEARTBEAT_DEVICE_ID_MAX + 1];
	size_t device_id_len;
	bool has_device_id;
	/* num_unsent_forms: decimal digits only, 0..HEARTBEAT_UNSENT_MAX. */
	uint32_t num_unsent_forms;
	bool has_num_unsent_forms;
	/* app_version (the app's build) and cc_version (CommCare's), when
	 * sent: same rules as device_id, up to HEARTBEAT_VERSION_MAX bytes. */
	char app_version[HEARTBEAT_VERSION_MAX + 1];
	bool has_app_version;
	char cc_version[HEARTBEAT_VERSION_MAX + 1];
	bool has_cc_version;
	/* Why the query was refused (a static string), NULL on success. */
	const char *error;
};

/* Parses QUERY[0..LEN) (the part after '?', no NUL needed) into OUT,
 * which is reset first. Returns 0, or -1 with out->error saying why; a
 * query without device_id or num_unsent_forms is not an error (the has_
 * flags say what was there): the caller decides what it can use. */
int heartbeat_parse_query(const char *query, size_t len, struct heartbeat *out);

#endif
