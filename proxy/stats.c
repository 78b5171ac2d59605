/* stats: summing the workers' counters on read, the route-name table the
 * answers are counted by, and the one update a request's end makes. */
#include "stats.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

const double stats_bucket_bounds[STATS_BUCKETS] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
						    1,     2.5,  5,     10,   30,  60,  120 };

#define LOAD(f) __atomic_load_n(&from->f, __ATOMIC_RELAXED)

void stats_sum(struct stats *into, const struct stats *from)
{
	into->requests += LOAD(requests);
	into->bytes_in += LOAD(bytes_in);
	into->bytes_out += LOAD(bytes_out);
	for (int i = 0; i < STATS_UPSTREAMS; i++) {
		into->in_flight[i] += LOAD(in_flight[i]);
		into->active[i] += LOAD(active[i]);
		into->queued[i] += LOAD(queued[i]);
		into->pool_idle[i] += LOAD(pool_idle[i]);
		for (int b = 0; b <= STATS_BUCKETS; b++)
			into->duration_bucket[i][b] += LOAD(duration_bucket[i][b]);
		into->duration_us[i] += LOAD(duration_us[i]);
		into->upstream_failures[i] += LOAD(upstream_failures[i]);
	}
	into->parked += LOAD(parked);
	into->connections += LOAD(connections);
	for (int r = 0; r < STATS_ROUTES; r++)
		for (int u = 0; u <= STATS_UPSTREAMS; u++)
			for (int c = 0; c < STATS_CLASSES; c++)
				into->answers[r][u][c] += LOAD(answers[r][u][c]);
	into->unanswered += LOAD(unanswered);
	into->tls_handshake_failures += LOAD(tls_handshake_failures);
	into->spliced_bytes += LOAD(spliced_bytes);
	for (int o = 0; o < STATS_REPLAY_OUTCOMES; o++)
		into->replay[o] += LOAD(replay[o]);
}

/* ---- route names ---- */

static pthread_mutex_t names_mu = PTHREAD_MUTEX_INITIALIZER;
/* Written once per slot under the mutex, before the slot's id is handed
 * out; read (release/acquire) by the metrics without it. */
static const char *names[STATS_ROUTES] = { "-" };

unsigned stats_route_id(const char *name)
{
	pthread_mutex_lock(&names_mu);
	unsigned id = 1;
	for (; id < STATS_ROUTES - 1; id++) {
		const char *n = __atomic_load_n(&names[id], __ATOMIC_ACQUIRE);
		if (!n || strcmp(n, name) == 0)
			break;
	}
	if (id == STATS_ROUTES - 1) {
		if (!names[id])
			__atomic_store_n(&names[id], "other", __ATOMIC_RELEASE);
	} else if (!names[id]) {
		/* kept for the process's life: a name's counters outlive reloads */
		char *copy = strdup(name);
		if (!copy)
			id = 0;
		else
			__atomic_store_n(&names[id], copy, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&names_mu);
	return id;
}

const char *stats_route_name(unsigned id)
{
	return id < STATS_ROUTES ? __atomic_load_n(&names[id], __ATOMIC_ACQUIRE) : NULL;
}

/* ---- a request's end ---- */

void stats_answer(struct stats *s, unsigned route_id, unsigned upstream, int status,
		  int64_t upstream_us)
{
	if (route_id >= STATS_ROUTES)
		route_id = 0;
	if (upstream > STATS_LOCAL)
		upstream = STATS_LOCAL;
	if (status < 100 || status > 599) {
		STATS_ADD(s, unanswered, 1);
		return;
	}
	STATS_ADD(s, answers[route_id][upstream][status / 100 - 1], 1);
	if (upstream_us < 0 || upstream == STATS_LOCAL)
		return;
	double secs = (double)upstream_us / 1e6;
	int b = 0;
	while (b < STATS_BUCKETS && secs > stats_bucket_bounds[b])
		b++;
	STATS_ADD(s, duration_bucket[upstream][b], 1);
	STATS_ADD(s, duration_us[upstream], (uint64_t)upstream_us);
}
