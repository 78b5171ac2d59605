/* replay: spooled records to the upstream of their scope, in order. */
#include "replay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "conf.h"
#include "conn.h"
#include "rewrite.h"
#include "gate.h"
#include "http1.h"
#include "httpclient.h"
#include "log.h"
#include "project.h"
#include "spool.h"
#include "spool_store.h"
#include "stats.h"
#include "state.h"
#include "upstream.h"

#define READ_CHUNK (64u << 10)   /* body bytes read from disk at once */
#define BUSY_RETRY 0.1           /* seconds before asking a full admission queue again */
#define RETRY_AFTER_MAX 86400.0  /* an upstream cannot park a record for longer */
#define PEER_HEADER "x-cutover-peer"

enum runner_state { RUN_QUEUED, RUN_SENDING, RUN_BACKOFF };

/* One project's replay: its oldest pending record, sent until an outcome. */
struct runner {
	struct replay *rp;
	struct runner *next;
	char name[PROJECT_NAME_MAX + 2];   /* as the records say ("-": no project) */
	struct project *proj;              /* held: in-flight accounting */
	enum upstream_id target;
	enum runner_state state;
	struct gate_waiter wait;
	bool slot;                         /* a max_active slot is held */
	bool counted;                      /* in rp->taking[target] (a slot or a queue place) */
	struct event *timer;
	uint64_t id;                       /* the record being sent, 0 none */
	uint32_t attempts;                 /* sends of ID so far */
	struct spool_reader *rd;
	uint64_t remaining;                /* body bytes still to send */
	struct httpclient *hc;
	int status;                        /* the answer's, 0 before it */
	double retry_after;                /* -1: none */
	size_t answer_len;
	char answer[SPOOL_ANSWER_MAX];
	uint64_t delivered, dead;          /* this run, for the journal */
};

struct replay {
	struct conn_env *env;
	struct runner *runners;
	unsigned taking[UPSTREAM_COUNT];   /* runners holding a slot or a queue place */
	int poke_fd;
	struct event *poke_ev;
	struct event *start_ev;
	unsigned seed;
};

static int poke_fd = -1;               /* the one replay's, for replay_poke() */
static replay_note_fn note_fn;         /* atomic */

void replay_set_note(replay_note_fn fn)
{
	__atomic_store_n(&note_fn, fn, __ATOMIC_RELEASE);
}

static void note(const char *event, const char *project, uint64_t id, int status,
		 uint32_t attempts, const char *answer, size_t len)
{
	replay_note_fn fn = __atomic_load_n(&note_fn, __ATOMIC_ACQUIRE);
	if (fn)
		fn(event, project, id, status, attempts, answer, len);
}

/* ---- pure parts ---- */

double replay_backoff(double min, double max, unsigned attempts, double jitter)
{
	double d = min;
	for (unsigned i = 1; i < attempts && d < max; i++)
		d *= 2;
	if (d > max)
		d = max;
	return d * (0.75 + 0.5 * jitter);
}

double replay_retry_after(const char *v, size_t len, time_t now)
{
	char text[64];
	while (len && (*v == ' ' || *v == '\t'))
		v++, len--;
	while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
		len--;
	if (len == 0 || len >= sizeof(text))
		return -1;
	memcpy(text, v, len);
	text[len] = '\0';
	if (strspn(text, "0123456789") == len) {
		double s = strtod(text, NULL);
		return s > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : s;
	}
	struct tm tm = { 0 };
	const char *end = strptime(text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (!end || *end)
		return -1;
	double s = difftime(timegm(&tm), now);
	return s < 0 ? 0 : s > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : s;
}

int replay_retryable(int status)
{
	return status == 0 || status >= 500 || status == 408 || status == 423 || status == 425 ||
	       status == 429;
}

/* ---- the registry's counts ---- */

/* The registry name of a record's project: "-" is the global scope's. */
static const char *scope_name(const char *record_project, size_t *len)
{
	if (strcmp(record_project, "-") == 0) {
		*len = 0;
		return "";
	}
	*len = strlen(record_project);
	return record_project;
}

void replay_count_pending(struct spool_store *s)
{
	size_t n = 0;
	char **names = spool_store_projects(s, &n);
	for (size_t i = 0; i < n; i++) {
		struct spool_totals t;
		spool_store_totals(s, names[i], &t);
		size_t len;
		const char *name = scope_name(names[i], &len);
		struct project *p = project_get(name, len);
		if (t.pending)
			project_spooled_add(p, (int)t.pending);
		project_put(p);
		free(names[i]);
	}
	free(names);
}

/* ---- one project's run ---- */

static void runner_next(struct runner *ru);

/* The runner no longer holds (or waits for) a slot. */
static void uncount(struct runner *ru)
{
	if (ru->counted) {
		ru->rp->taking[ru->target]--;
		ru->counted = false;
	}
}

/* Replays take at most half of this worker's max_active slots (at least
 * one): the rest, and the admission queue, stay for devices. 0: no cap. */
static unsigned replay_cap(const struct replay *rp, enum upstream_id id)
{
	const struct config *cfg = rp->env->cfg;
	unsigned n = (unsigned)cfg->workers, max = cfg->upstream[id].max_active;
	if (max == 0)
		return 0;
	unsigned share = (max + n - 1) / n;
	return share / 2 ? share / 2 : 1;
}

static void runner_free(struct runner *ru)
{
	uncount(ru);
	struct replay *rp = ru->rp;
	for (struct runner **pp = &rp->runners; *pp; pp = &(*pp)->next)
		if (*pp == ru) {
			*pp = ru->next;
			break;
		}
	if (gate_waiting(&ru->wait))
		gate_leave(rp->env->gate, &ru->wait);
	if (ru->hc)
		httpclient_free(ru->hc);
	if (ru->slot)
		gate_slot_free(rp->env->gate, ru->target);
	if (ru->rd)
		spool_reader_close(ru->rd);
	if (ru->timer)
		event_free(ru->timer);
	project_put(ru->proj);
	free(ru);
}

/* The run ends: the spool of the project is empty, or its scope is not live. */
static void runner_end(struct runner *ru, const char *why)
{
	log_info("spool: replay of %s to %s %s (%llu delivered, %llu dead letters)", ru->name,
		 ru->target == UPSTREAM_OLD ? "old" : "new", why,
		 (unsigned long long)ru->delivered, (unsigned long long)ru->dead);
	if (strcmp(why, "finished") == 0)
		note("replay-done", ru->name, 0, 0, 0, NULL, 0);
	runner_free(ru);
}

/* The live upstream of NAME's scope, or -1 (maintenance, hold). */
static int live_target(const char *record_project)
{
	size_t len;
	const char *name = scope_name(record_project, &len);
	enum mode m = state_mode_for(state_current(), name, len);
	return m == MODE_OLD ? UPSTREAM_OLD : m == MODE_NEW ? UPSTREAM_NEW : -1;
}

/* The exchange is over (or never began): what is held for it goes back. */
static void exchange_end(struct runner *ru)
{
	if (ru->hc) {
		httpclient_free(ru->hc);
		ru->hc = NULL;
	}
	if (ru->rd) {
		spool_reader_close(ru->rd);
		ru->rd = NULL;
	}
	if (ru->slot) {
		gate_slot_free(ru->rp->env->gate, ru->target);
		ru->slot = false;
	}
	uncount(ru);
}

static void backoff(struct runner *ru, double seconds)
{
	ru->state = RUN_BACKOFF;
	struct timeval tv = { (time_t)seconds, (suseconds_t)((seconds - floor(seconds)) * 1e6) };
	evtimer_add(ru->timer, &tv);
}

static void outcome(struct runner *ru, int status, const char *why)
{
	const struct spool_conf *sc = ru->rp->env->cfg->spool;
	struct spool_store *s = ru->rp->env->spool;
	/* WHY may live in the exchange: kept before it is freed. */
	char reason[160] = "";
	if (why)
		snprintf(reason, sizeof(reason), "%s", why);
	if (status <= 0 && why) {
		size_t n = strlen(reason);
		ru->answer_len = n < sizeof(ru->answer) ? n : sizeof(ru->answer);
		memcpy(ru->answer, reason, ru->answer_len);
	}
	exchange_end(ru);
	ru->attempts++;
	if (status >= 200 && status < 300) {
		if (spool_store_mark_delivered(s, ru->id) == 0)
			project_spooled_add(ru->proj, -1);
		ru->delivered++;
		STATS_ADD(ru->rp->env->stats, replay[STATS_REPLAY_DELIVERED], 1);
		log_debug("spool: record %llu of %s delivered (%d)", (unsigned long long)ru->id,
			  ru->name, status);
		ru->id = 0;
		ru->attempts = 0;
		runner_next(ru);
		return;
	}
	if (replay_retryable(status) && ru->attempts < sc->max_attempts) {
		double d = ru->retry_after >= 0
				   ? ru->retry_after
				   : replay_backoff(sc->retry_min, sc->retry_max, ru->attempts,
						    (double)rand_r(&ru->rp->seed) / RAND_MAX);
		spool_store_mark_attempt(s, ru->id, ru->attempts, status);
		STATS_ADD(ru->rp->env->stats, replay[STATS_REPLAY_RETRIED], 1);
		log_info("spool: record %llu of %s: %s%s%d, attempt %u of %u, again in %.1fs",
			 (unsigned long long)ru->id, ru->name, status ? "" : reason,
			 status ? "status " : " ", status, ru->attempts, sc->max_attempts, d);
		backoff(ru, d);
		return;
	}
	if (spool_store_mark_dead(s, ru->id, ru->attempts, status, ru->answer, ru->answer_len) == 0)
		project_spooled_add(ru->proj, -1);
	ru->dead++;
	STATS_ADD(ru->rp->env->stats, replay[STATS_REPLAY_DEAD], 1);
	log_warn("spool: record %llu of %s is a dead letter (status %d after %u attempt%s)",
		 (unsigned long long)ru->id, ru->name, status, ru->attempts,
		 ru->attempts == 1 ? "" : "s");
	note("dead-letter", ru->name, ru->id, status, ru->attempts, ru->answer, ru->answer_len);
	ru->id = 0;
	ru->attempts = 0;
	runner_next(ru);
}

/* Streams the body from disk while the upstream side has room. */
static void pump(struct runner *ru)
{
	if (!ru->hc || !httpclient_ready(ru->hc))
		return;
	struct evbuffer *tmp = NULL;
	while (ru->remaining) {
		size_t room = httpclient_body_room(ru->hc);
		if (room == 0)
			break;
		if (!tmp && !(tmp = evbuffer_new()))
			break;
		size_t want = room < READ_CHUNK ? room : READ_CHUNK;
		if (want > ru->remaining)
			want = (size_t)ru->remaining;
		struct evbuffer_iovec v;
		if (evbuffer_reserve_space(tmp, want, &v, 1) < 1)
			break;
		ssize_t got = spool_reader_read(ru->rd, v.iov_base, want);
		if (got <= 0) {
			evbuffer_free(tmp);
			/* A record that rotted on disk is never sent whole. */
			outcome(ru, -1, got < 0 ? strerror(errno) : "the record ended early");
			return;
		}
		v.iov_len = (size_t)got;
		evbuffer_commit_space(tmp, &v, 1);
		httpclient_body_add(ru->hc, tmp, (size_t)got);
		ru->remaining -= (uint64_t)got;
	}
	if (tmp)
		evbuffer_free(tmp);
	if (ru->remaining == 0 && !httpclient_request_sent(ru->hc))
		httpclient_body_end(ru->hc);
}

static void on_connected(void *arg)
{
	pump(arg);
}

static void on_writable(void *arg)
{
	pump(arg);
}

/* Keeps the answer's first bytes (the dead letter's reason), drops the rest. */
static void drain(struct runner *ru)
{
	struct evbuffer *tmp = evbuffer_new();
	if (!tmp) {
		outcome(ru, 0, "out of memory");
		return;
	}
	for (;;) {
		size_t moved = 0;
		enum httpclient_move m = httpclient_body_move(ru->hc, tmp, READ_CHUNK, false, &moved);
		size_t room = sizeof(ru->answer) - ru->answer_len;
		ru->answer_len += (size_t)evbuffer_remove(tmp, ru->answer + ru->answer_len, room);
		evbuffer_drain(tmp, evbuffer_get_length(tmp));
		if (m == HTTPCLIENT_DONE) {
			evbuffer_free(tmp);
			outcome(ru, ru->status, NULL);
			return;
		}
		if (m == HTTPCLIENT_ERROR) {
			/* The status came but the answer was cut: not a 2xx for sure. */
			const char *why = httpclient_error(ru->hc);
			int st = ru->status >= 200 && ru->status < 300 ? 0 : ru->status;
			evbuffer_free(tmp);
			outcome(ru, st, why);
			return;
		}
		if (moved == 0)
			break;
	}
	evbuffer_free(tmp);
}

static void on_head(void *arg, const struct http1_head *resp)
{
	struct runner *ru = arg;
	ru->status = resp->status;
	const struct http1_header *ra = http1_find(resp, "retry-after");
	ru->retry_after = ra ? replay_retry_after(ra->value, ra->value_len, time(NULL)) : -1;
	drain(ru);
}

static void on_body(void *arg)
{
	drain(arg);
}

static void on_failed(void *arg, int status, const char *why)
{
	(void)status;
	outcome(arg, 0, why);
}

static const struct httpclient_ops replay_ops = {
	.connected = on_connected,
	.writable = on_writable,
	.head = on_head,
	.body = on_body,
	.failed = on_failed,
};

/* The device's address and scheme, kept in the record by intake. */
static bool take_peer(struct http1_head *h, struct sockaddr_storage *ss, bool *tls)
{
	memset(ss, 0, sizeof(*ss));
	ss->ss_family = AF_UNSPEC;
	*tls = false;
	for (size_t i = 0; i < h->n_headers; i++) {
		const struct http1_header *f = &h->headers[i];
		if (!http1_token_eq(f->name, f->name_len, PEER_HEADER))
			continue;
		char text[80];
		size_t n = f->value_len < sizeof(text) - 1 ? f->value_len : sizeof(text) - 1;
		memcpy(text, f->value, n);
		text[n] = '\0';
		char *sp = strchr(text, ' ');
		if (sp) {
			*sp = '\0';
			*tls = strcmp(sp + 1, "https") == 0;
		}
		struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
		struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
		if (inet_pton(AF_INET, text, &v4->sin_addr) == 1)
			v4->sin_family = AF_INET;
		else if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1)
			v6->sin6_family = AF_INET6;
		memmove(&h->headers[i], &h->headers[i + 1],
			(h->n_headers - i - 1) * sizeof(h->headers[0]));
		h->n_headers--;
		return true;
	}
	return false;
}

/* The head to send: the stored one, rewritten as forward does for a
 * request from that device (Host, X-Forwarded-*, Content-Length). */
static struct evbuffer *request_head(struct runner *ru, const struct spool_record_view *v)
{
	struct http1_head *h = calloc(1, sizeof(*h));
	struct evbuffer *out = evbuffer_new();
	if (!h || !out)
		goto fail;
	struct http1_parser p;
	http1_parser_init(&p, HTTP1_REQUEST);
	if (http1_parse_head(&p, (const char *)v->head, v->head_len, v->head_len, v->head_len, h) !=
	    HTTP1_DONE)
		goto fail;
	struct sockaddr_storage peer;
	bool tls;
	take_peer(h, &peer, &tls);
	h->framing = HTTP1_BODY_LENGTH;
	h->content_length = v->body_len;
	h->has_content_length = true;
	const struct config *cfg = ru->rp->env->cfg;
	if (!rewrite_request_head(out, h, &cfg->upstream[ru->target], cfg->rewrite,
				  (const struct sockaddr *)&peer, tls))
		goto fail;
	free(h);
	return out;
fail:
	free(h);
	if (out)
		evbuffer_free(out);
	return NULL;
}

/* A slot is held: opens the record and starts the exchange. */
static void send_record(struct runner *ru)
{
	struct conn_env *env = ru->rp->env;
	ru->state = RUN_SENDING;
	ru->status = 0;
	ru->retry_after = -1;
	ru->answer_len = 0;
	ru->rd = spool_store_read(env->spool, ru->id);
	if (!ru->rd) {
		exchange_end(ru);
		/* Delivered or dead meanwhile (an operator, a crash's replay). */
		ru->id = 0;
		ru->attempts = 0;
		runner_next(ru);
		return;
	}
	const struct spool_record_view *v = spool_reader_view(ru->rd);
	struct evbuffer *head = request_head(ru, v);
	if (!head) {
		static const char bad[] = "the stored head does not parse";
		ru->answer_len = sizeof(bad) - 1;
		memcpy(ru->answer, bad, ru->answer_len);
		outcome(ru, -1, bad);
		return;
	}
	ru->remaining = v->body_len;
	struct httpclient_request req = {
		.head = head,
		.body = v->body_len ? HTTPCLIENT_BODY_LENGTH : HTTPCLIENT_BODY_NONE,
		.buffer_bytes = READ_CHUNK * 4,
		.project = ru->proj,
		.stats = env->stats,
	};
	const char *why = NULL;
	ru->hc = httpclient_start(env->pools[ru->target], &req, &replay_ops, ru, &why);
	if (!ru->hc) {
		outcome(ru, 0, why ? why : "cannot start the exchange");
		return;
	}
	if (httpclient_ready(ru->hc))
		pump(ru);
}

static struct runner *runner_of(struct gate_waiter *wt)
{
	return (struct runner *)((char *)wt - offsetof(struct runner, wait));
}

static void admit(struct runner *ru);

static void queue_over(struct gate_waiter *wt, bool timed_out)
{
	struct runner *ru = runner_of(wt);
	uncount(ru);
	if (timed_out)
		backoff(ru, BUSY_RETRY);
	else
		runner_next(ru); /* the mode again; its next admission passes the queue */
}

/* A max_active slot, as a device's request takes one. */
static void admit(struct runner *ru)
{
	struct replay *rp = ru->rp;
	unsigned cap = replay_cap(rp, ru->target);
	if (cap && rp->taking[ru->target] >= cap) {
		backoff(ru, BUSY_RETRY);
		return;
	}
	ru->state = RUN_QUEUED;
	switch (gate_admit(rp->env->gate, ru->target, &ru->wait, queue_over)) {
	case GATE_ADMITTED:
		ru->slot = true;
		ru->counted = true;
		rp->taking[ru->target]++;
		send_record(ru);
		return;
	case GATE_QUEUED:
		ru->counted = true;
		rp->taking[ru->target]++;
		return;
	case GATE_FULL:
		backoff(ru, BUSY_RETRY);
		return;
	}
}

/* The oldest pending record of the project, if its scope is live. */
static void runner_next(struct runner *ru)
{
	uncount(ru); /* before the target may change */
	int target = live_target(ru->name);
	if (target < 0) {
		runner_end(ru, "paused (the scope is not live)");
		return;
	}
	ru->target = (enum upstream_id)target;
	uint64_t id = 0;
	if (spool_store_pending(ru->rp->env->spool, ru->name, 0, &id, 1) == 0) {
		runner_end(ru, "finished");
		return;
	}
	if (id != ru->id) {
		ru->id = id;
		ru->attempts = spool_store_attempts(ru->rp->env->spool, id);
	}
	admit(ru);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	runner_next(arg);
}

static void runner_start(struct replay *rp, const char *name, enum upstream_id target)
{
	struct runner *ru = calloc(1, sizeof(*ru));
	if (!ru) {
		log_error("spool: out of memory, the replay of %s waits", name);
		return;
	}
	ru->rp = rp;
	snprintf(ru->name, sizeof(ru->name), "%s", name);
	size_t len;
	const char *pn = scope_name(name, &len);
	ru->proj = project_get(pn, len);
	ru->target = target;
	ru->timer = evtimer_new(rp->env->base, timer_cb, ru);
	if (!ru->timer) {
		project_put(ru->proj);
		free(ru);
		log_error("spool: out of memory, the replay of %s waits", name);
		return;
	}
	ru->next = rp->runners;
	rp->runners = ru;
	struct spool_totals t;
	spool_store_totals(rp->env->spool, name, &t);
	log_info("spool: replay of %s to %s starts (%llu records)", name,
		 target == UPSTREAM_OLD ? "old" : "new", (unsigned long long)t.pending);
	note("replay-start", name, 0, 0, 0, NULL, 0);
	runner_next(ru);
}

void replay_kick(struct replay *rp)
{
	size_t n = 0;
	char **names = spool_store_projects(rp->env->spool, &n);
	for (size_t i = 0; i < n; i++) {
		bool running = false;
		for (struct runner *ru = rp->runners; ru; ru = ru->next)
			running |= strcmp(ru->name, names[i]) == 0;
		uint64_t id;
		int target = live_target(names[i]);
		if (!running && target >= 0 && spool_store_pending(rp->env->spool, names[i], 0, &id, 1))
			runner_start(rp, names[i], (enum upstream_id)target);
		free(names[i]);
	}
	free(names);
}

static void poke_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	uint64_t n;
	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_warn("spool: replay poke: %s", strerror(errno));
	replay_kick(arg);
}

void replay_poke(void)
{
	int fd = __atomic_load_n(&poke_fd, __ATOMIC_ACQUIRE);
	uint64_t one = 1;
	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("spool: replay poke: %s", strerror(errno));
}

static void start_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	replay_kick(arg); /* a restart resumes what live scopes have */
}

struct replay *replay_new(struct conn_env *env)
{
	struct replay *rp = calloc(1, sizeof(*rp));
	if (!rp)
		return NULL;
	rp->env = env;
	rp->seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	rp->poke_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (rp->poke_fd < 0)
		goto fail;
	rp->poke_ev = event_new(env->base, rp->poke_fd, EV_READ | EV_PERSIST, poke_cb, rp);
	rp->start_ev = evtimer_new(env->base, start_cb, rp);
	struct timeval zero = { 0, 0 };
	if (!rp->poke_ev || !rp->start_ev || event_add(rp->poke_ev, NULL) < 0 ||
	    evtimer_add(rp->start_ev, &zero) < 0)
		goto fail;
	__atomic_store_n(&poke_fd, rp->poke_fd, __ATOMIC_RELEASE);
	return rp;
fail:
	replay_free(rp);
	return NULL;
}

void replay_free(struct replay *rp)
{
	if (!rp)
		return;
	while (rp->runners)
		runner_free(rp->runners);
	if (rp->poke_fd >= 0 && __atomic_load_n(&poke_fd, __ATOMIC_ACQUIRE) == rp->poke_fd)
		__atomic_store_n(&poke_fd, -1, __ATOMIC_RELEASE);
	if (rp->poke_ev)
		event_free(rp->poke_ev);
	if (rp->start_ev)
		event_free(rp->start_ev);
	if (rp->poke_fd >= 0)
		close(rp->poke_fd);
	free(rp);
}
