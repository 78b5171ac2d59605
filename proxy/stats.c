/* stats: summing the workers' counters on read. */
#include "stats.h"

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
	}
	into->parked += LOAD(parked);
	into->connections += LOAD(connections);
}
