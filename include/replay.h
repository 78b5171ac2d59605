/* replay: sends the spool's records to the upstream of their scope once it
 * has left maintenance for old or new (CONTRACT.md, "Spool"): per project
 * in acceptance order, one record at a time per project, projects in
 * parallel within the upstream's max_active (each send takes a gate slot
 * and counts in flight). 2xx: delivered; network errors, 5xx, 408, 423,
 * 425, 429: retried with backoff (Retry-After wins), at most
 * spool.max_attempts sends; anything else, or the last attempt: a dead
 * letter, and the project goes on. Runs on one worker's loop (worker 0). */
#ifndef CUTOVER_REPLAY_H
#define CUTOVER_REPLAY_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct conn_env;
struct spool_store;

struct replay;

/* A journal line: EVENT is "replay-start", "replay-done" or "dead-letter"
 * (then ID, STATUS, ATTEMPTS and the first bytes of the answer). Called on
 * the replay's thread. */
typedef void (*replay_note_fn)(const char *event, const char *project, uint64_t id, int status,
			       uint32_t attempts, const char *answer, size_t answer_len);
void replay_set_note(replay_note_fn fn);

/* Counts every project's pending records into the project registry (the
 * data path's "spool not empty"), once, before any request is taken. */
void replay_count_pending(struct spool_store *s);

/* The replay of ENV's loop (ENV->spool set); it looks at the modes at once
 * (a restart resumes), then at every replay_kick() and replay_poke(). */
struct replay *replay_new(struct conn_env *env);
/* Ends every send (a record cut short stays pending) and frees RP. */
void replay_free(struct replay *rp);
/* The modes changed (on RP's thread). */
void replay_kick(struct replay *rp);
/* Any thread: a record became pending (a submission joined a spool's tail
 * after its scope left maintenance, or an operator's retry). */
void replay_poke(void);

/* The initial backoff of ATTEMPTS (>= 1) sends: MIN doubling, at most MAX,
 * times JITTER (0..1 maps to 0.75..1.25). */
double replay_backoff(double min, double max, unsigned attempts, double jitter);
/* Seconds a Retry-After value asks for (delta seconds or an HTTP date,
 * counted from NOW), or -1 when it says nothing usable. */
double replay_retry_after(const char *v, size_t len, time_t now);
/* Whether STATUS (0: a network error) is worth another attempt. */
int replay_retryable(int status);

#endif
