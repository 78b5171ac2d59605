/* stats: the counters of one worker. Its thread is the only writer (plain
 * relaxed atomic stores: no lock, no read-modify-write on the data path);
 * the control thread sums every worker's on read (status, later metrics). */
#ifndef CUTOVER_STATS_H
#define CUTOVER_STATS_H

#include <stdint.h>

/* The upstreams, old and new (upstream.h checks it equals UPSTREAM_COUNT):
 * a leaf header, so that the modules that count need not see each other. */
#define STATS_UPSTREAMS 2

struct stats {
	uint64_t requests;                   /* request heads parsed */
	uint64_t bytes_in, bytes_out;        /* client side, heads and bodies */
	int64_t in_flight[STATS_UPSTREAMS];   /* exchanges bound to an upstream */
	int64_t active[STATS_UPSTREAMS];      /* admission slots taken (max_active) */
	int64_t queued[STATS_UPSTREAMS];      /* waiting for a slot */
	int64_t parked;                      /* held by a hold */
	int64_t pool_idle[STATS_UPSTREAMS];   /* idle keep-alive connections */
	int64_t connections;                 /* open client connections */
};

/* Single-writer update of one counter (owner thread only). */
#define STATS_ADD(s, field, n) \
	__atomic_store_n(&(s)->field, (s)->field + (n), __ATOMIC_RELAXED)

/* Adds FROM (another thread's, read with relaxed loads) into INTO. */
void stats_sum(struct stats *into, const struct stats *from);

#endif
