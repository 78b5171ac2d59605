/* stats: the counters of one worker. Its thread is the only writer (plain
 * relaxed atomic stores: no lock, no read-modify-write on the data path);
 * the control thread sums every worker's on read (status, later metrics). */
#ifndef CUTOVER_STATS_H
#define CUTOVER_STATS_H

#include <stdint.h>

/* The upstreams, old and new (upstream.h checks it equals UPSTREAM_COUNT):
 * a leaf header, so that the modules that count need not see each other. */
#define STATS_UPSTREAMS 2

/* Answers are counted per route name (a process-wide table that reloads
 * only add to: a name keeps its counters), upstream (old, new, or local:
 * cutover answered) and status class. Index 0 is "no route matched"; names
 * past the table share its last slot, "other". */
#define STATS_ROUTES 64
#define STATS_LOCAL STATS_UPSTREAMS
#define STATS_CLASSES 5                  /* 1xx .. 5xx */
/* Upper bounds (seconds) of the upstream duration histogram's buckets;
 * +Inf is the count. */
#define STATS_BUCKETS 14
extern const double stats_bucket_bounds[STATS_BUCKETS];

/* What the replay did with a record. */
enum stats_replay { STATS_REPLAY_DELIVERED, STATS_REPLAY_RETRIED, STATS_REPLAY_DEAD,
		    STATS_REPLAY_OUTCOMES };

struct stats {
	uint64_t requests;                   /* request heads parsed */
	uint64_t bytes_in, bytes_out;        /* client side, heads and bodies */
	int64_t in_flight[STATS_UPSTREAMS];   /* exchanges bound to an upstream */
	int64_t active[STATS_UPSTREAMS];      /* admission slots taken (max_active) */
	int64_t queued[STATS_UPSTREAMS];      /* waiting for a slot */
	int64_t parked;                      /* held by a hold */
	int64_t pool_idle[STATS_UPSTREAMS];   /* idle keep-alive connections */
	int64_t connections;                 /* open client connections */
	uint64_t answers[STATS_ROUTES][STATS_UPSTREAMS + 1][STATS_CLASSES];
	uint64_t unanswered;                 /* ended with no status (client gone) */
	/* upstream exchanges answered: per bucket (not cumulative), sum */
	uint64_t duration_bucket[STATS_UPSTREAMS][STATS_BUCKETS + 1];
	uint64_t duration_us[STATS_UPSTREAMS];
	uint64_t replay[STATS_REPLAY_OUTCOMES];
	/* exchanges with an upstream that failed (connect, TLS, timeouts, a
	 * broken or malformed answer): the device got a 502/504 for them */
	uint64_t upstream_failures[STATS_UPSTREAMS];
	uint64_t tls_handshake_failures;     /* client connections gone before their handshake ended */
	uint64_t spliced_bytes;              /* body bytes moved socket to socket (tunnel.h) */
};

/* Single-writer update of one counter (owner thread only). */
#define STATS_ADD(s, field, n) \
	__atomic_store_n(&(s)->field, (s)->field + (n), __ATOMIC_RELAXED)

/* Adds FROM (another thread's, read with relaxed loads) into INTO. */
void stats_sum(struct stats *into, const struct stats *from);

/* The slot of route NAME in the answers table (taken on first sight; any
 * thread, config loading only: it locks). */
unsigned stats_route_id(const char *name);
/* The name of slot ID ("-" for 0, "other" for the shared last one), or
 * NULL for a slot not taken. */
const char *stats_route_name(unsigned id);

/* Counts a request's end (owner thread): ROUTE_ID, UPSTREAM (or
 * STATS_LOCAL), its STATUS (0: none was sent) and, for an answered upstream
 * exchange, its duration in microseconds (< 0: none). */
void stats_answer(struct stats *s, unsigned route_id, unsigned upstream, int status,
		  int64_t upstream_us);

#endif
