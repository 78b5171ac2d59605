/* admin_spool: the admin API's spool endpoints (CONTRACT.md, "Spool"), on
 * the control thread; admin.c routes the requests here and writes the
 * answers. No endpoint logs a head: a record's Authorization leaves the
 * daemon only in GET /spool/<id>?credentials=1.
 *
 *   GET  /spool[?project=P]
 *     200 {"ok": true, "projects": {"<p>": {"records": N, "pending": N,
 *          "bytes": B, "oldest_age": S, "dead_letters": [{"id": N,
 *          "status": 400, "attempts": 1, "time": T, "answer": "..."}]}}}
 *   GET  /spool/records[?after=ID][&limit=N][&project=P]
 *     200 {"ok": true, "records": [{"id": N, "project": "p", "state":
 *          "pending"|"dead", "bytes": B}], "next": ID|null}
 *     records above AFTER (default 0) in acceptance order, at most LIMIT
 *     (1..1000, default 100); NEXT is the AFTER of the next page, null
 *     when this one is the last.
 *   GET  /spool/<id>[?credentials=1]
 *     200 {"ok": true, "id": N, "project": "p", "route": "submit",
 *          "state": "pending"|"dead", "accepted": "<RFC 3339, us>",
 *          "body_bytes": N, "method": "POST", "target": "/a/p/receiver/",
 *          "head": ["POST /a/p/receiver/ HTTP/1.1", "Authorization: Basic
 *                   <redacted>", ...], "credentials": false,
 *          "dead_letter": null | {"status": 400, "attempts": 1, "time":
 *                                 "<RFC 3339>", "answer": "..."}}
 *     HEAD is the stored head line by line, each byte one character
 *     (ISO-8859-1), Authorization's credential redacted unless
 *     credentials=1 (or true).
 *   GET  /spool/<id>/body
 *     200 application/octet-stream: the body bytes as stored, streamed
 *     from the segment with their SHA-256 checked; bytes that no longer
 *     match it end the answer short of its Content-Length.
 *   POST /spool/<id>/retry  {}
 *     200 {"ok": true, "id": N, "project": "p"}: the dead letter is pending
 *   POST /spool/retry  {"project": "p"?}
 *     200 {"ok": true, "retried": N, "project": "p"|null}: every dead
 *     letter (of P) is pending again; one journal line with the count.
 *
 *   404 unknown record, 409 no spool (or not a dead letter), 400 a query
 *   key that is unknown, given twice or of a bad value, naming it. */
#ifndef CUTOVER_ADMIN_SPOOL_H
#define CUTOVER_ADMIN_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct control;
struct evbuffer;
struct spool_reader;

/* An endpoint's answer: STATUS with JSON, or (GET /spool/<id>/body) 200
 * with BODY_LEN bytes to stream from BODY (the caller's to close). */
struct admin_spool_answer {
	int status;
	json_t *json;
	struct spool_reader *body;
	uint64_t body_len;
};

/* The endpoints above; WHO names the operator in the journal, QUERY is the
 * text after '?' (NULL for none), BODY the checked request body. */
void admin_spool_list(struct control *ctl, const char *query, struct admin_spool_answer *a);
void admin_spool_records(struct control *ctl, const char *query, struct admin_spool_answer *a);
void admin_spool_retry_all(struct control *ctl, const char *who, const json_t *body,
			   struct admin_spool_answer *a);
/* /spool/REST: "<id>", "<id>/body" (GET), "<id>/retry" (POST). IS_GET /
 * IS_POST: the request's method. */
void admin_spool_record(struct control *ctl, const char *who, bool is_get, bool is_post,
			const char *rest, const char *query, struct admin_spool_answer *a);

/* Moves body bytes from RD into OUT until OUT holds about ROOM bytes or
 * *LEFT is 0. Returns 0, or -1 when RD fails (its sum no longer matches:
 * the answer must end short). */
int admin_spool_pump(struct spool_reader *rd, uint64_t *left, struct evbuffer *out, size_t room);

#endif
