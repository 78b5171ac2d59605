/* forward: the action that forwards a request to an upstream: admission
 * (max_active, through the gate), the rewrite of the request head for the
 * upstream (Host, X-Forwarded-*, hop-by-hop removal), the request body
 * streamed through the HTTP client, and the answer relayed with its head
 * rewritten for the client. */
#ifndef CUTOVER_FORWARD_H
#define CUTOVER_FORWARD_H

#include <libconfig.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "addr.h"
#include "gate.h"
#include "upstream.h"

struct conf_reader;
struct config;
struct evbuffer;
struct http1_head;
struct request;
struct upstream_conf;

struct forward_conf {
	struct cidr_set trusted_proxies;
};

/* Parses the top-level "trusted_proxies" list. */
int forward_conf_parse(struct conf_reader *r, const config_setting_t *root, struct config *cfg);
void forward_conf_free(struct forward_conf *c);

/* Forwards R to upstream ID once it has a max_active slot: at once, or
 * after waiting in the upstream's queue (QUEUE_OVER is called when it
 * leaves the queue: a slot is free, or queue_timeout passed), or a 503 +
 * Retry-After when the queue is full. */
void forward_request(struct request *r, enum upstream_id id, gate_release_fn queue_over);
/* The 503 + Retry-After of a full queue (or a wait that timed out). */
void forward_busy(struct request *r);

/* Appends the head to send upstream for REQ. */
void forward_request_head(struct evbuffer *out, const struct http1_head *req,
			  const struct upstream_conf *up, const struct forward_conf *fc,
			  const struct sockaddr *peer, bool client_tls);

/* Appends the head to send the client for RESP. CHUNKED: the body will be
 * sent chunked; otherwise Content-Length (if any) is kept. KEEP_ALIVE: the
 * client connection stays open after this response (said explicitly to an
 * HTTP/1.0 client). */
void forward_response_head(struct evbuffer *out, const struct http1_head *resp,
			   bool chunked, bool keep_alive, bool client_http10);

/* True if NAME (case-insensitive) is hop-by-hop: Connection, Keep-Alive,
 * TE, Trailer, Transfer-Encoding, Upgrade, Proxy-Connection, or a token
 * listed in one of the head's Connection headers. */
bool forward_is_hop_by_hop(const struct http1_head *h, const char *name, size_t len);

#endif
