/* heartbeat: CommCare's heartbeat query string, parsed strictly (see
 * heartbeat.h). No allocation: every value is decoded into OUT's own
 * bounded buffers. */
#include "heartbeat.h"

#include <string.h>

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Form-decodes SRC[0..LEN) ('+' = space, %XX = a byte) into DST, of which
 * only the first CAP bytes are written; *N is the whole decoded length, so
 * the caller sees a value too long for DST. False on a bad escape. */
static bool form_decode(const char *src, size_t len, char *dst, size_t cap, size_t *n)
{
	size_t out = 0;
	for (size_t i = 0; i < len; i++) {
		char c = src[i];
		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			if (len - i < 3)
				return false;
			int hi = hex_digit(src[i + 1]), lo = hex_digit(src[i + 2]);
			if (hi < 0 || lo < 0)
				return false;
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		if (out < cap)
			dst[out] = c;
		out++;
	}
	*n = out;
	return true;
}

/* Valid UTF-8 (no overlong form, surrogate or code point past U+10FFFF)
 * without a control character (C0, DEL, C1): it goes into status and logs
 * as it is, so it must neither break JSON nor forge a line. */
static bool text_ok(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i];
		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f)
				return false;
			i++;
			continue;
		}
		size_t more;
		uint32_t cp, min;
		if ((c & 0xe0) == 0xc0) {
			more = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			more = 2, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			more = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (n - i - 1 < more)
			return false;
		for (size_t j = 1; j <= more; j++) {
			unsigned b = s[i + j];
			if ((b & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (b & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp <= 0x9f)
			return false;
		i += more + 1;
	}
	return true;
}

/* A text value into DST (CAP bytes + NUL). 1 = set, 0 = empty (left
 * unset), -1 = refused with *WHY. */
static int take_text(const char *v, size_t len, char *dst, size_t cap, size_t *dst_len,
		     const char *too_long, const char *bad, const char **why)
{
	size_t n;
	if (!form_decode(v, len, dst, cap, &n)) {
		*why = "bad percent escape";
		return -1;
	}
	if (n > cap) {
		*why = too_long;
		return -1;
	}
	dst[n] = '\0';
	if (!text_ok((const unsigned char *)dst, n)) {
		*why = bad;
		return -1;
	}
	if (dst_len)
		*dst_len = n;
	return n > 0;
}

static int take_count(const char *v, size_t len, uint32_t *out, const char **why)
{
	char digits[16];
	size_t n;
	if (!form_decode(v, len, digits, sizeof(digits), &n)) {
		*why = "bad percent escape";
		return -1;
	}
	if (n == 0 || n > sizeof(digits)) {
		*why = n ? "num_unsent_forms out of range" : "empty num_unsent_forms";
		return -1;
	}
	uint32_t x = 0;
	for (size_t i = 0; i < n; i++) {
		if (digits[i] < '0' || digits[i] > '9') {
			*why = "num_unsent_forms is not a non-negative integer";
			return -1;
		}
		x = x * 10 + (uint32_t)(digits[i] - '0');
		/* Checked at every digit: x stays far below UINT32_MAX / 10. */
		if (x > HEARTBEAT_UNSENT_MAX) {
			*why = "num_unsent_forms out of range";
			return -1;
		}
	}
	*out = x;
	return 1;
}

enum field { F_DEVICE_ID, F_UNSENT, F_APP_VERSION, F_CC_VERSION, F_UNKNOWN };

static enum field field_of(const char *name, size_t n)
{
	static const char *const names[] = {
		[F_DEVICE_ID] = "device_id",
		[F_UNSENT] = "num_unsent_forms",
		[F_APP_VERSION] = "app_version",
		[F_CC_VERSION] = "cc_version",
	};
	for (size_t i = 0; i < F_UNKNOWN; i++)
		if (strlen(names[i]) == n && memcmp(names[i], name, n) == 0)
			return (enum field)i;
	return F_UNKNOWN;
}

/* One NAME=VALUE pair (VALUE may be empty). */
static int take_pair(const char *p, size_t len, struct heartbeat *out, bool seen[F_UNKNOWN])
{
	const char *eq = memchr(p, '=', len);
	size_t name_len = eq ? (size_t)(eq - p) : len;
	const char *v = eq ? eq + 1 : p + len;
	size_t v_len = eq ? len - name_len - 1 : 0;

	char name[24];
	size_t n;
	if (!form_decode(p, name_len, name, sizeof(name), &n)) {
		out->error = "bad percent escape";
		return -1;
	}
	enum field f = n <= sizeof(name) ? field_of(name, n) : F_UNKNOWN;
	if (f == F_UNKNOWN) {
		/* Ignored, but a bad escape is a bad query wherever it is. */
		if (!form_decode(v, v_len, NULL, 0, &n)) {
			out->error = "bad percent escape";
			return -1;
		}
		return 0;
	}
	if (seen[f]) {
		out->error = "a heartbeat field is repeated";
		return -1;
	}
	seen[f] = true;
	int r = 0;
	switch (f) {
	case F_DEVICE_ID:
		r = take_text(v, v_len, out->device_id, HEARTBEAT_DEVICE_ID_MAX, &out->device_id_len,
			      "device_id too long",
			      "device_id is not UTF-8 text without control characters", &out->error);
		if (r == 0) {
			out->error = "empty device_id";
			return -1;
		}
		out->has_device_id = r > 0;
		break;
	case F_UNSENT:
		r = take_count(v, v_len, &out->num_unsent_forms, &out->error);
		out->has_num_unsent_forms = r > 0;
		break;
	case F_APP_VERSION:
		r = take_text(v, v_len, out->app_version, HEARTBEAT_VERSION_MAX, NULL,
			      "app_version too long",
			      "app_version is not UTF-8 text without control characters", &out->error);
		out->has_app_version = r > 0;
		break;
	case F_CC_VERSION:
		r = take_text(v, v_len, out->cc_version, HEARTBEAT_VERSION_MAX, NULL,
			      "cc_version too long",
			      "cc_version is not UTF-8 text without control characters", &out->error);
		out->has_cc_version = r > 0;
		break;
	case F_UNKNOWN:
		break;
	}
	return r < 0 ? -1 : 0;
}

int heartbeat_parse_query(const char *query, size_t len, struct heartbeat *out)
{
	memset(out, 0, sizeof(*out));
	bool seen[F_UNKNOWN] = { false };
	size_t end;
	for (size_t start = 0; start < len; start = end + 1) {
		const char *amp = memchr(query + start, '&', len - start);
		end = amp ? (size_t)(amp - query) : len;
		if (end > start && take_pair(query + start, end - start, out, seen) < 0)
			goto refused;
	}
	return 0;

refused: {
	/* Nothing half-parsed is left for a caller that ignores the result. */
	const char *why = out->error;
	memset(out, 0, sizeof(*out));
	out->error = why;
	return -1;
}
}
