/* spool_head: a stored request head (the request line and header lines as
 * the device sent them, CRLF-separated, up to the blank line) read as
 * lines for the operator: the credential in Authorization redacted, the
 * bytes carried losslessly through JSON, and the header file curl takes
 * (`-H @FILE`) to replay a record by hand. Pure: no I/O, no state. */
#ifndef CUTOVER_SPOOL_HEAD_H
#define CUTOVER_SPOOL_HEAD_H

#include <stdbool.h>
#include <stddef.h>

/* What stands in for a credential. */
#define SPOOL_HEAD_REDACTED "<redacted>"

/* The next line of HEAD[*POS..LEN): sets *LINE and *LINE_LEN (no CRLF or
 * LF) and advances *POS. False at the blank line ending the head or at its
 * end. */
bool spool_head_next_line(const char *head, size_t len, size_t *pos, const char **line,
			  size_t *line_len);

/* True if header line LINE (LINE_LEN bytes) is named NAME (any case). */
bool spool_head_is(const char *line, size_t line_len, const char *name);

/* Room a redacted line may need beyond its own length. */
#define SPOOL_HEAD_REDACT_EXTRA 12

/* LINE as the operator sees it, into OUT (OUT_CAP bytes; LINE_LEN +
 * SPOOL_HEAD_REDACT_EXTRA are always enough): the same, except that an Authorization header keeps its
 * name and scheme and the credential becomes SPOOL_HEAD_REDACTED
 * ("Authorization: Basic <redacted>") unless CREDENTIALS. Returns the
 * length written (no NUL), or 0 if OUT is too small. */
size_t spool_head_redact(const char *line, size_t line_len, bool credentials, char *out,
			 size_t out_cap);

/* True if header line LINE is left out of a header file for curl: curl
 * sets Host, Content-Length and the framing itself, and X-Cutover-Peer is
 * cutover's own note (the device's address), never sent upstream. */
bool spool_head_curl_skips(const char *line, size_t line_len);

/* Header line LINE as a line of curl's header file, into OUT (LINE_LEN + 1
 * bytes): the same, except that a header with an empty value becomes
 * "Name;" (curl drops "Name:" instead of sending it). Returns the length. */
size_t spool_head_curl_line(const char *line, size_t line_len, char *out);

/* Bytes as ISO-8859-1 code points in UTF-8 (each byte one character), so
 * any head travels through JSON and comes back the same: OUT needs 2 *
 * LEN bytes. Returns the length written. */
size_t spool_head_latin1_to_utf8(const char *in, size_t len, char *out);
/* The reverse: the bytes back, into OUT (LEN bytes are enough). Returns
 * the length, or (size_t)-1 if IN holds a character above U+00FF or is
 * not UTF-8. */
size_t spool_head_utf8_to_latin1(const char *in, size_t len, char *out);

#endif
