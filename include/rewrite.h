/* rewrite: the heads cutover sends on, for the upstream and for the
 * client, each written in one pass; and the top-level trusted_proxies
 * (whose X-Forwarded-* fields are kept). */
#ifndef CUTOVER_REWRITE_H
#define CUTOVER_REWRITE_H

#include <libconfig.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "addr.h"

struct conf_reader;
struct config;
struct evbuffer;
struct http1_head;
struct upstream_conf;

struct rewrite_conf {
	struct cidr_set trusted_proxies;
};

/* Parses the top-level "trusted_proxies" list. */
int rewrite_conf_parse(struct conf_reader *r, const config_setting_t *root, struct config *cfg);
void rewrite_conf_free(struct rewrite_conf *c);

/* Appends the head to send upstream UP for REQ from PEER; false when out
 * of memory. */
bool rewrite_request_head(struct evbuffer *out, const struct http1_head *req,
			  const struct upstream_conf *up, const struct rewrite_conf *rc,
			  const struct sockaddr *peer, bool client_tls);

/* Appends the head to send the client for RESP. CHUNKED: the body will be
 * sent chunked; otherwise Content-Length (if any) is kept. KEEP_ALIVE: the
 * client connection stays open after this response (said explicitly to an
 * HTTP/1.0 client). False when out of memory. */
bool rewrite_response_head(struct evbuffer *out, const struct http1_head *resp,
			   bool chunked, bool keep_alive, bool client_http10);

/* True if NAME (case-insensitive) is hop-by-hop: Connection, Keep-Alive,
 * TE, Trailer, Transfer-Encoding, Upgrade, Proxy-Connection, or a token
 * listed in one of the head's Connection headers. */
bool rewrite_is_hop_by_hop(const struct http1_head *h, const char *name, size_t len);

#endif
