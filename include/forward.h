/* forward: the rewrite of a request head for the upstream (Host,
 * X-Forwarded-*, hop-by-hop removal) and of a response head for the client. */
#ifndef CUTOVER_FORWARD_H
#define CUTOVER_FORWARD_H

#include <libconfig.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "addr.h"

struct conf_reader;
struct config;
struct evbuffer;
struct http1_head;
struct upstream_conf;

struct forward_conf {
	struct cidr_set trusted_proxies;
};

/* Parses the top-level "trusted_proxies" list. */
int forward_conf_parse(struct conf_reader *r, const config_setting_t *root, struct config *cfg);
void forward_conf_free(struct forward_conf *c);

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
