/* tunnel: the rest of a body moved from one plain socket to another through
 * a kernel pipe with splice(2), so its bytes never pass through user space
 * (HAProxy's "option splice-response" is the model). The forward action
 * uses it for large Content-Length and close-delimited bodies once both
 * sockets' buffers are empty; TLS and re-framed bodies keep the buffers.
 *
 * While a tunnel runs it owns reading SRC and writing DST: the caller stops
 * its own reads on SRC and has nothing queued for DST. The pipe holds at
 * most pipe_bytes (the same budget a buffered body has); each side has its
 * idle timeout, counted while the tunnel waits for it. Pipes are kept per
 * thread for the next tunnel (a few, then closed).
 *
 * Callbacks are the last thing the tunnel does in an event: the caller may
 * free it inside them. */
#ifndef CUTOVER_TUNNEL_H
#define CUTOVER_TUNNEL_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct tunnel;

/* A length for "until the source closes" (a close-delimited body). */
#define TUNNEL_UNTIL_EOF UINT64_MAX

enum tunnel_end {
	TUNNEL_DONE,          /* all of len moved (or the source closed, for TUNNEL_UNTIL_EOF) */
	TUNNEL_SRC_EOF,       /* the source closed before len bytes */
	TUNNEL_SRC_ERROR,     /* reading the source failed (errno given) */
	TUNNEL_DST_ERROR,     /* writing the destination failed (errno given) */
	TUNNEL_SRC_TIMEOUT,   /* nothing came for src_timeout */
	TUNNEL_DST_TIMEOUT,   /* the destination took nothing for dst_timeout */
};

struct tunnel_spec {
	int src, dst;            /* non-blocking stream sockets */
	uint64_t len;            /* bytes to move, or TUNNEL_UNTIL_EOF */
	double src_timeout;      /* seconds; 0 = none */
	double dst_timeout;
	size_t pipe_bytes;       /* the most held in the pipe */
};

struct tunnel_ops {
	/* Bytes moved (tunnel_read(), tunnel_written() grew). Optional. */
	void (*progress)(void *arg);
	/* The tunnel stopped: its events are off; the caller frees it. ERR is
	 * the errno of an error end, else 0. */
	void (*end)(void *arg, enum tunnel_end end, int err);
};

/* Starts moving in the next loop round. NULL when no pipe or no memory can
 * be had (an fd limit): the caller moves the body through its buffers. */
struct tunnel *tunnel_start(struct event_base *base, const struct tunnel_spec *spec,
			    const struct tunnel_ops *ops, void *arg);
void tunnel_free(struct tunnel *t);

uint64_t tunnel_read(const struct tunnel *t);     /* taken from SRC */
uint64_t tunnel_written(const struct tunnel *t);  /* given to DST */

/* Closes this thread's kept pipes (a worker's exit). */
void tunnel_thread_exit(void);

#endif
