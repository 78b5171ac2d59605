/* intake: the action that takes a submission into the spool while its
 * scope is in maintenance (CONTRACT.md, "Spool"): the head as the device
 * sent it minus hop-by-hop headers, the body streamed into a record with
 * the store's back-pressure, and the OpenRosa acknowledgement only once the
 * record is durable (the waiter's DONE); 503 + Retry-After on any failure.
 * Requests that are not spooled never reach it. */
#ifndef CUTOVER_INTAKE_H
#define CUTOVER_INTAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "route.h"

/* The last header line of a stored head: the device's address and scheme
 * (for the replay's X-Forwarded-*); never sent upstream. */
#define INTAKE_PEER_HEADER "X-Cutover-Peer"

struct http1_head;
struct request;
struct spool_event;

/* Whether a request on a spooling route in maintenance goes to the spool:
 * a POST, not Digest-authenticated (a Digest answer is bound to the old
 * server's nonce), and with credentials when AUTH requires them. The rest
 * gets the maintenance answer. */
bool intake_wants(const struct http1_head *h, enum route_spool_auth auth);

/* True if NAME is dropped from a spooled head: hop-by-hop as forward.c
 * says (Connection and what it names, Keep-Alive, TE, Trailer,
 * Transfer-Encoding, Upgrade), every Proxy-* header and INTAKE_PEER_HEADER. */
bool intake_is_hop_by_hop(const struct http1_head *h, const char *name, size_t len);

/* Copies the head RAW[0..LEN) (the request line, headers, the blank line,
 * exactly as received; H parsed from it) into OUT (LEN bytes at least),
 * without its hop-by-hop header lines. Returns the bytes written. */
size_t intake_filter_head(const struct http1_head *h, const char *raw, size_t len, char *out);

/* Spools R (intake_wants() said yes; the worker has a store). UNTIL: the
 * scope's end of maintenance, for Retry-After on a refusal. */
void intake_start(struct request *r, time_t until);

/* An event of a worker's spool waiter (DONE, FAILED, ROOM) for a record
 * intake_start() began. */
void intake_event(const struct spool_event *ev);

#endif
