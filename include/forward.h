/* forward: the action that forwards a request to an upstream: admission
 * (max_active, through the gate), the request head rewritten for the
 * upstream (rewrite.h), the request body streamed through the HTTP client,
 * and the answer relayed with its head rewritten for the client; large
 * bodies between plain sockets go through a tunnel (tunnel.h). */
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

/* Forwards R to upstream ID once it has a max_active slot: at once, or
 * after waiting in the upstream's queue (QUEUE_OVER is called when it
 * leaves the queue: a slot is free, or queue_timeout passed), or a 503 +
 * Retry-After when the queue is full. */
void forward_request(struct request *r, enum upstream_id id, gate_release_fn queue_over);
/* The 503 + Retry-After of a full queue (or a wait that timed out). */
void forward_busy(struct request *r);

#endif
