/* spool_head: a stored head as lines, redacted and made portable. */
#include "spool_head.h"

#include <string.h>
#include <strings.h>

bool spool_head_next_line(const char *head, size_t len, size_t *pos, const char **line,
			  size_t *line_len)
{
	if (*pos >= len)
		return false;
	const char *start = head + *pos;
	const char *nl = memchr(start, '\n', len - *pos);
	size_t n = nl ? (size_t)(nl - start) : len - *pos;
	*pos += nl ? n + 1 : n;
	if (n && start[n - 1] == '\r')
		n--;
	if (n == 0) {
		*pos = len; /* the blank line: nothing after it belongs to the head */
		return false;
	}
	*line = start;
	*line_len = n;
	return true;
}

bool spool_head_is(const char *line, size_t line_len, const char *name)
{
	size_t n = strlen(name);
	return line_len > n && line[n] == ':' && strncasecmp(line, name, n) == 0;
}

size_t spool_head_redact(const char *line, size_t line_len, bool credentials, char *out,
			 size_t out_cap)
{
	if (credentials || !spool_head_is(line, line_len, "authorization")) {
		if (out_cap < line_len)
			return 0;
		memcpy(out, line, line_len);
		return line_len;
	}
	/* "Authorization:" OWS scheme [SP credential]: the scheme tells the
	 * operator what kind it was (Basic, Bearer), never the secret. */
	size_t i = strlen("authorization") + 1;
	while (i < line_len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	size_t scheme = i;
	while (i < line_len && line[i] != ' ' && line[i] != '\t')
		i++;
	bool has_credential = false;
	for (size_t j = i; j < line_len; j++)
		has_credential |= line[j] != ' ' && line[j] != '\t';
	/* A lone token is the credential itself (no scheme to keep). */
	size_t keep = has_credential ? i : scheme;
	size_t need = keep + (has_credential ? 1 : 0) + strlen(SPOOL_HEAD_REDACTED);
	if (out_cap < need)
		return 0;
	memcpy(out, line, keep);
	size_t n = keep;
	if (has_credential)
		out[n++] = ' ';
	memcpy(out + n, SPOOL_HEAD_REDACTED, strlen(SPOOL_HEAD_REDACTED));
	return n + strlen(SPOOL_HEAD_REDACTED);
}

bool spool_head_curl_skips(const char *line, size_t line_len)
{
	static const char *const skip[] = { "host", "content-length", "transfer-encoding",
					    "x-cutover-peer" };
	for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
		if (spool_head_is(line, line_len, skip[i]))
			return true;
	return false;
}

size_t spool_head_curl_line(const char *line, size_t line_len, char *out)
{
	const char *colon = memchr(line, ':', line_len);
	size_t i = colon ? (size_t)(colon - line) + 1 : line_len;
	while (i < line_len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (colon && i == line_len) {
		size_t n = (size_t)(colon - line);
		memcpy(out, line, n);
		out[n] = ';';
		return n + 1;
	}
	memcpy(out, line, line_len);
	return line_len;
}

size_t spool_head_latin1_to_utf8(const char *in, size_t len, char *out)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c < 0x80) {
			out[n++] = (char)c;
		} else {
			out[n++] = (char)(0xC0 | (c >> 6));
			out[n++] = (char)(0x80 | (c & 0x3F));
		}
	}
	return n;
}

size_t spool_head_utf8_to_latin1(const char *in, size_t len, char *out)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c < 0x80) {
			out[n++] = (char)c;
			continue;
		}
		/* U+0080..U+00FF only: 0xC2 or 0xC3 and one continuation byte. */
		if ((c != 0xC2 && c != 0xC3) || i + 1 >= len ||
		    ((unsigned char)in[i + 1] & 0xC0) != 0x80)
			return (size_t)-1;
		out[n++] = (char)(((c & 0x03) << 6) | ((unsigned char)in[++i] & 0x3F));
	}
	return n;
}
