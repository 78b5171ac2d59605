/* dns: upstream names resolved with c-ares on the control thread's loop.
 *
 * One ares_channel per resolver, driven by libevent: c-ares names the
 * sockets to watch through its socket-state callback (one persistent event
 * each), and one timer follows ares_timeout() so that its retries happen.
 * Every followed name has a refresh timer set to its answer's TTL. Answers
 * are immutable: a new one is published with one atomic store and the old
 * one is freed only after a grace period, so a worker that loaded it can
 * use it without a lock until its callback returns. */
#include "dns.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <ares.h>
#include <event2/event.h>

#include "conf.h"
#include "duration.h"
#include "log.h"

/* 2 s per try, doubled by c-ares for the second round: a silent server
 * costs a query 2 + 4 = 6 s (a refusing one fails it at once), which bounds
 * how long a dns_lookup can wait. */
#define DNS_TIMEOUT_MS 2000
#define DNS_TRIES 2
/* Replaced answers are freed this long after: far beyond any worker
 * callback that may still read one. */
#define DNS_GRACE 10.0
/* A zero TTL (a hosts-file entry, or a 0-TTL record with min_ttl = 0)
 * would otherwise re-query in a busy loop. */
#define DNS_REFRESH_FLOOR 0.1
/* After a failure the last good answer keeps serving, so there is no hurry:
 * retry soon enough to notice a recovered server (min_ttl, between 1 and
 * 5 s), then back off, doubling up to 30 s, not to hammer a dead one. */
#define DNS_RETRY_FIRST_MIN 1.0
#define DNS_RETRY_FIRST_MAX 5.0
#define DNS_RETRY_MAX 30.0
/* "HOST: reason": a DNS name has at most 253 characters. */
#define DNS_ERROR_LEN 320

/* The event watching one c-ares socket. */
struct dns_socket {
	struct dns_socket *next;
	struct dns_resolver *r;
	struct event *ev;
	ares_socket_t fd;
	short what;                   /* EV_READ and/or EV_WRITE */
};

/* A replaced answer waiting out the grace period. */
struct dns_retired {
	struct dns_retired *next;
	struct dns_answer *answer;
	double expires;               /* monotonic seconds */
};

struct dns_name {
	struct dns_name *next;
	struct dns_resolver *r;
	char *host;
	uint16_t port;
	/* Stored with __atomic (release) by the control thread only, loaded
	 * (acquire) by workers; the control thread reads it plainly. */
	struct dns_answer *current;
	double resolved_mono;         /* when current arrived, for "age" */
	char error[DNS_ERROR_LEN];    /* last failure, "" after a success */
	bool settled;                 /* had its first result */
	bool literal;                 /* an IP address: never asked, never changes */
	double backoff;               /* next retry delay after a failure, 0 = first */
	uint64_t failures;            /* lookups that failed, for /metrics */
	struct event *refresh;
};

/* One dns_lookup() until DONE has been called. */
struct dns_lookup {
	struct dns_lookup *next;
	struct dns_resolver *r;
	char *host;
	uint16_t port;
	dns_lookup_fn done;
	void *arg;
	struct dns_answer *answer;    /* the result: an answer, or ERROR */
	char error[DNS_ERROR_LEN];
	struct event *deliver;        /* calls DONE from the loop */
};

struct dns_resolver {
	struct event_base *base;
	ares_channel channel;
	double min_ttl, max_ttl;
	bool closing;                 /* in dns_resolver_free: results are dropped */
	struct event *timeout;        /* ares_timeout(): retries and give-ups */
	struct dns_socket *sockets;
	struct dns_name *names;
	struct dns_lookup *lookups;
	struct dns_retired *retired, **retired_tail;   /* oldest first */
	struct event *reaper;
};

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void timer_in(struct event *ev, double seconds)
{
	struct timeval tv = duration_tv(seconds);
	evtimer_add(ev, &tv);
}

/* ---- driving c-ares from libevent ---- */

static void arm_timeout(struct dns_resolver *r)
{
	struct timeval tv;
	if (ares_timeout(r->channel, NULL, &tv) != NULL)
		evtimer_add(r->timeout, &tv);
	else
		evtimer_del(r->timeout);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct dns_resolver *r = arg;
	ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	arm_timeout(r);
}

static void on_socket(evutil_socket_t fd, short what, void *arg)
{
	struct dns_socket *s = arg;
	struct dns_resolver *r = s->r;   /* S may be freed by ares_process_fd */
	ares_process_fd(r->channel, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
			(what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	arm_timeout(r);
}

/* c-ares opened, changed or (readable = writable = 0) is about to close
 * FD. If watching it fails for lack of memory, its queries end by
 * timeout: there is no way to tell c-ares here. */
static void on_socket_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns_resolver *r = data;
	short what = (short)((readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
	struct dns_socket **p = &r->sockets;
	while (*p != NULL && (*p)->fd != fd)
		p = &(*p)->next;
	struct dns_socket *s = *p;
	if (s != NULL && s->what == what)
		return;
	if (s != NULL) {                 /* changed: watch it anew */
		*p = s->next;
		event_free(s->ev);
		free(s);
	}
	if (what == 0)
		return;
	s = calloc(1, sizeof *s);
	if (s != NULL) {
		s->r = r;
		s->fd = fd;
		s->what = what;
		s->ev = event_new(r->base, fd, what | EV_PERSIST, on_socket, s);
	}
	if (s == NULL || s->ev == NULL || event_add(s->ev, NULL) < 0) {
		log_error("dns: cannot watch a c-ares socket (out of memory?): its queries will "
			  "time out");
		if (s != NULL && s->ev != NULL)
			event_free(s->ev);
		free(s);
		return;
	}
	s->next = r->sockets;
	r->sockets = s;
}

/* Both families; lookups stay c-ares' default "fb" (/etc/hosts, then
 * DNS), as the system resolver would do. */
static void start_query(struct dns_resolver *r, const char *host, ares_addrinfo_callback cb,
			void *arg)
{
	const struct ares_addrinfo_hints hints = {
		.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP,
	};
	ares_getaddrinfo(r->channel, host, NULL, &hints, cb, arg);
	arm_timeout(r);
}

/* ---- answers ---- */

static struct dns_answer *answer_new(size_t n)
{
	struct dns_answer *a = calloc(1, sizeof *a + n * sizeof a->addrs[0]);
	if (a != NULL)
		a->resolved = time(NULL);
	return a;
}

static void addr_set_port(struct addr *a, uint16_t port)
{
	if (a->ss.ss_family == AF_INET)
		((struct sockaddr_in *)&a->ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)&a->ss)->sin6_port = htons(port);
}

static bool same_host(const struct sockaddr *x, const struct sockaddr *y)
{
	if (x->sa_family != y->sa_family)
		return false;
	if (x->sa_family == AF_INET)
		return memcmp(&((const struct sockaddr_in *)x)->sin_addr,
			      &((const struct sockaddr_in *)y)->sin_addr, sizeof(struct in_addr)) == 0;
	const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)x;
	const struct sockaddr_in6 *b = (const struct sockaddr_in6 *)y;
	return memcmp(&a->sin6_addr, &b->sin6_addr, sizeof a->sin6_addr) == 0 &&
	       a->sin6_scope_id == b->sin6_scope_id;
}

/* HOST as an IP address ("10.0.0.1", "::1" or "[::1]") with PORT. */
static bool parse_literal(const char *host, uint16_t port, struct addr *out)
{
	char buf[INET6_ADDRSTRLEN];
	size_t len = strlen(host);
	if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
		if (len - 2 >= sizeof buf)
			return false;
		memcpy(buf, host + 1, len - 2);
		buf[len - 2] = '\0';
		host = buf;
	}
	memset(out, 0, sizeof *out);
	struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		out->len = sizeof *sin;
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		out->len = sizeof *sin6;
	} else {
		return false;
	}
	addr_set_port(out, port);
	return true;
}

/* RFC 6761 6.3: "localhost" and every name under it are the loopback
 * host, whatever DNS or /etc/hosts say (a container may have neither). */
static bool is_localhost(const char *host)
{
	size_t len = strlen(host);
	if (len && host[len - 1] == '.')
		len--;
	return (len == 9 && strncasecmp(host, "localhost", 9) == 0) ||
	       (len > 10 && strncasecmp(host + len - 10, ".localhost", 10) == 0);
}

/* The answer HOST has without a query: an IP literal, or localhost's two
 * loopback addresses. NULL if it needs DNS (or out of memory: *OOM). */
static struct dns_answer *fixed_answer(const char *host, uint16_t port, bool *oom)
{
	struct addr literal;
	struct dns_answer *a = NULL;
	*oom = false;
	if (parse_literal(host, port, &literal)) {
		if ((a = answer_new(1)) != NULL) {
			a->addrs[0] = literal;
			a->n = 1;
		}
	} else if (is_localhost(host)) {
		if ((a = answer_new(2)) != NULL) {
			parse_literal("127.0.0.1", port, &a->addrs[0]);
			parse_literal("::1", port, &a->addrs[1]);
			a->n = 2;
		}
	} else {
		return NULL;
	}
	*oom = a == NULL;
	return a;
}

static double clamp_ttl(const struct dns_resolver *r, double ttl)
{
	if (ttl < r->min_ttl)
		return r->min_ttl;
	return ttl > r->max_ttl ? r->max_ttl : ttl;
}

/* The answer of a getaddrinfo result, or NULL with the reason in *WHY.
 * Addresses keep c-ares' order, without duplicates; the TTL is the
 * smallest of the records and CNAMEs that led to them. */
static struct dns_answer *answer_from_result(const struct dns_resolver *r, int status,
					     const struct ares_addrinfo *ai, uint16_t port,
					     const char **why)
{
	if (status != ARES_SUCCESS) {
		*why = ares_strerror(status);
		return NULL;
	}
	size_t n = 0;
	for (const struct ares_addrinfo_node *p = ai->nodes; p != NULL; p = p->ai_next)
		n++;
	struct dns_answer *a = answer_new(n);
	if (a == NULL) {
		*why = ares_strerror(ARES_ENOMEM);
		return NULL;
	}
	int ttl = INT_MAX;
	for (const struct ares_addrinfo_node *p = ai->nodes; p != NULL; p = p->ai_next) {
		if (p->ai_family != AF_INET && p->ai_family != AF_INET6)
			continue;
		if (p->ai_addrlen > sizeof a->addrs[0].ss)
			continue;
		if (p->ai_ttl < ttl)
			ttl = p->ai_ttl;
		bool seen = false;
		for (size_t i = 0; i < a->n && !seen; i++)
			seen = same_host((const struct sockaddr *)&a->addrs[i].ss, p->ai_addr);
		if (seen)
			continue;
		struct addr *to = &a->addrs[a->n++];
		memcpy(&to->ss, p->ai_addr, p->ai_addrlen);
		to->len = p->ai_addrlen;
		addr_set_port(to, port);
	}
	for (const struct ares_addrinfo_cname *c = ai->cnames; c != NULL; c = c->next)
		if (c->ttl < ttl)
			ttl = c->ttl;
	if (a->n == 0) {
		free(a);
		*why = ares_strerror(ARES_ENODATA);
		return NULL;
	}
	/* A TTL with its top bit set reads as negative: RFC 2181 says 0. */
	a->ttl = clamp_ttl(r, ttl < 0 ? 0 : (double)ttl);
	return a;
}

/* ---- replaced answers ---- */

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct dns_resolver *r = arg;
	double now = mono_now();
	while (r->retired != NULL && r->retired->expires <= now) {
		struct dns_retired *t = r->retired;
		r->retired = t->next;
		free(t->answer);
		free(t);
	}
	if (r->retired == NULL)
		r->retired_tail = &r->retired;
	else
		timer_in(r->reaper, r->retired->expires - now);
}

static void retire(struct dns_resolver *r, struct dns_retired *t, struct dns_answer *a)
{
	t->answer = a;
	t->expires = mono_now() + DNS_GRACE;
	t->next = NULL;
	*r->retired_tail = t;
	r->retired_tail = &t->next;
	if (!evtimer_pending(r->reaper, NULL))
		timer_in(r->reaper, DNS_GRACE);
}

/* ---- followed names ---- */

static void on_name_result(void *arg, int status, int timeouts, struct ares_addrinfo *ai);

static void on_refresh(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct dns_name *n = arg;
	start_query(n->r, n->host, on_name_result, n);
}

/* Makes A current and asks again when its TTL runs out. The old answer's
 * retired entry is allocated first: if that fails, nothing changes rather
 * than freeing an answer in use. */
static int name_publish(struct dns_name *n, struct dns_answer *a)
{
	struct dns_answer *old = n->current;
	struct dns_retired *t = NULL;
	if (old != NULL && (t = malloc(sizeof *t)) == NULL)
		return -1;
	__atomic_store_n(&n->current, a, __ATOMIC_RELEASE);
	n->resolved_mono = mono_now();
	n->error[0] = '\0';
	n->backoff = 0;
	n->settled = true;
	if (t != NULL)
		retire(n->r, t, old);
	timer_in(n->refresh, a->ttl > DNS_REFRESH_FLOOR ? a->ttl : DNS_REFRESH_FLOOR);
	return 0;
}

static void name_failed(struct dns_name *n, const char *why)
{
	snprintf(n->error, sizeof n->error, "%s: %s", n->host, why);
	n->failures++;
	double delay = n->backoff;
	if (delay == 0) {
		delay = n->r->min_ttl < DNS_RETRY_FIRST_MIN ? DNS_RETRY_FIRST_MIN : n->r->min_ttl;
		if (delay > DNS_RETRY_FIRST_MAX)
			delay = DNS_RETRY_FIRST_MAX;
	}
	n->backoff = delay * 2 < DNS_RETRY_MAX ? delay * 2 : DNS_RETRY_MAX;
	timer_in(n->refresh, delay);
}

static void on_name_result(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
	(void)timeouts;
	struct dns_name *n = arg;
	/* While ares_destroy runs, c-ares 1.18 may even report ARES_SUCCESS
	 * (one family answered, the other destroyed): drop everything. */
	if (n->r->closing) {
		ares_freeaddrinfo(ai);
		return;
	}
	const char *why = NULL;
	struct dns_answer *a = answer_from_result(n->r, status, ai, n->port, &why);
	ares_freeaddrinfo(ai);
	n->settled = true;
	if (a != NULL && name_publish(n, a) < 0) {
		free(a);
		a = NULL;
		why = ares_strerror(ARES_ENOMEM);
	}
	if (a == NULL)
		name_failed(n, why);
}

static void name_free(struct dns_name *n)
{
	if (n->refresh != NULL)
		event_free(n->refresh);
	free(n->current);
	free(n->host);
	free(n);
}

static struct dns_name *name_find(struct dns_resolver *r, const char *host, uint16_t port)
{
	for (struct dns_name *n = r->names; n != NULL; n = n->next)
		if (n->port == port && strcasecmp(n->host, host) == 0)
			return n;
	return NULL;
}

struct dns_name *dns_follow(struct dns_resolver *r, const char *host, uint16_t port)
{
	struct dns_name *n = name_find(r, host, port);
	if (n != NULL)
		return n;
	n = calloc(1, sizeof *n);
	if (n == NULL)
		return NULL;
	n->r = r;
	n->port = port;
	n->host = strdup(host);
	n->refresh = evtimer_new(r->base, on_refresh, n);
	bool oom;
	n->current = fixed_answer(host, port, &oom);
	bool is_literal = n->current != NULL || oom;
	n->literal = is_literal;
	if (n->current) {
		n->resolved_mono = mono_now();
		n->settled = true;
	}
	if (n->host == NULL || n->refresh == NULL || oom) {
		name_free(n);
		return NULL;
	}
	/* Linked first: ares_getaddrinfo may answer before it returns. */
	n->next = r->names;
	r->names = n;
	if (!is_literal)
		start_query(r, host, on_name_result, n);
	return n;
}

const struct dns_answer *dns_current(const struct dns_name *n)
{
	return __atomic_load_n(&n->current, __ATOMIC_ACQUIRE);
}

static void on_settle_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(bool *)arg = true;
}

static bool all_settled(const struct dns_resolver *r)
{
	for (const struct dns_name *n = r->names; n != NULL; n = n->next)
		if (!n->settled)
			return false;
	return true;
}

void dns_settle(struct dns_resolver *r, double timeout)
{
	bool expired = false;
	struct event *timer = evtimer_new(r->base, on_settle_timeout, &expired);
	if (timer == NULL)
		return;
	timer_in(timer, timeout);
	while (!expired && !all_settled(r))
		if (event_base_loop(r->base, EVLOOP_ONCE) < 0)
			break;
	event_free(timer);
}

json_t *dns_name_status(const struct dns_name *n)
{
	const struct dns_answer *a = n->current;
	json_t *addrs = json_array();
	json_t *age = NULL, *ttl = NULL;
	const char *at = NULL;
	char when[32];
	bool ok = addrs != NULL;     /* a status missing an address would mislead */
	if (a != NULL) {
		for (size_t i = 0; ok && i < a->n; i++) {
			char buf[INET6_ADDRSTRLEN + 16];
			addr_format((const struct sockaddr *)&a->addrs[i].ss, a->addrs[i].len, buf,
				    sizeof buf);
			ok = json_array_append_new(addrs, json_string(buf)) == 0;
		}
		double secs = mono_now() - n->resolved_mono;
		age = json_real((double)(long long)(secs * 10 + 0.5) / 10);
		ttl = json_real(a->ttl);
		if (!ok || age == NULL || ttl == NULL) {
			json_decref(addrs);
			json_decref(age);
			json_decref(ttl);
			return NULL;
		}
		struct tm tm;
		if (gmtime_r(&a->resolved, &tm) != NULL &&
		    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm) > 0)
			at = when;
	}
	return json_pack("{s:s, s:b, s:o, s:o?, s:o?, s:s?, s:s?, s:I}", "host", n->host, "literal",
			 n->literal, "addresses", addrs, "age", age, "ttl", ttl, "error",
			 n->error[0] ? n->error : NULL, "resolved_at", at, "failures",
			 (json_int_t)n->failures);
}

/* ---- one-off lookups ---- */

static void lookup_free(struct dns_lookup *l)
{
	if (l->deliver != NULL)
		event_free(l->deliver);
	free(l->answer);
	free(l->host);
	free(l);
}

/* Always through the loop: c-ares answers hosts-file names and some
 * failures from inside ares_getaddrinfo, and DONE must not run there. */
static void lookup_finish(struct dns_lookup *l, struct dns_answer *a, const char *why)
{
	l->answer = a;
	if (a == NULL)
		snprintf(l->error, sizeof l->error, "%s: %s", l->host, why);
	event_active(l->deliver, EV_TIMEOUT, 1);
}

static void on_deliver(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct dns_lookup *l = arg;
	struct dns_lookup **p = &l->r->lookups;
	while (*p != l)
		p = &(*p)->next;
	*p = l->next;
	l->done(l->arg, l->answer, l->answer != NULL ? NULL : l->error);
	lookup_free(l);
}

/* A fresh answer for a followed name becomes its current one too: after a
 * preflight passed, the data path must not keep an older (or failed)
 * answer until its own refresh. */
static void name_adopt(struct dns_resolver *r, const char *host, uint16_t port,
		       const struct dns_answer *a)
{
	struct dns_name *n = name_find(r, host, port);
	if (n == NULL)
		return;
	size_t size = sizeof(*a) + a->n * sizeof(a->addrs[0]);
	struct dns_answer *copy = malloc(size);
	if (copy == NULL)
		return;
	memcpy(copy, a, size);
	if (name_publish(n, copy) < 0)
		free(copy);
}

static void on_lookup_result(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
	(void)timeouts;
	struct dns_lookup *l = arg;
	if (l->r->closing) {             /* see on_name_result */
		ares_freeaddrinfo(ai);
		return;
	}
	const char *why = NULL;
	struct dns_answer *a = answer_from_result(l->r, status, ai, l->port, &why);
	ares_freeaddrinfo(ai);
	if (a != NULL)
		name_adopt(l->r, l->host, l->port, a);
	lookup_finish(l, a, why);
}

int dns_lookup(struct dns_resolver *r, const char *host, uint16_t port, dns_lookup_fn done,
	       void *arg)
{
	struct dns_lookup *l = calloc(1, sizeof *l);
	if (l == NULL)
		return -1;
	l->r = r;
	l->port = port;
	l->done = done;
	l->arg = arg;
	l->host = strdup(host);
	l->deliver = event_new(r->base, -1, 0, on_deliver, l);
	if (l->host == NULL || l->deliver == NULL) {
		lookup_free(l);
		return -1;
	}
	l->next = r->lookups;
	r->lookups = l;
	bool oom;
	struct dns_answer *a = fixed_answer(host, port, &oom);
	if (a || oom) {
		lookup_finish(l, a, ares_strerror(ARES_ENOMEM));
	} else {
		start_query(r, host, on_lookup_result, l);
	}
	return 0;
}

/* ---- the resolver ---- */

static pthread_once_t library_once = PTHREAD_ONCE_INIT;
static int library_status;

static void library_init(void)
{
	library_status = ares_library_init(ARES_LIB_INIT_ALL);
}

int dns_server_parse(const char *text, struct addr *out, const char **why)
{
	if (strncmp(text, "unix:", 5) == 0) {
		*why = "a DNS server cannot be a unix socket";
		return -1;
	}
	if (addr_parse(text, out, why) == 0)
		return 0;
	/* Room for any address a text can hold with a scope id: a longer one
	 * fails here whole instead of being cut to something that parses. */
	char buf[128];
	if (strchr(text, ':') != NULL && text[0] != '[')
		snprintf(buf, sizeof buf, "[%s]:53", text);     /* bare IPv6 */
	else
		snprintf(buf, sizeof buf, "%s:53", text);
	const char *ignored;
	return addr_parse(buf, out, &ignored);   /* on failure, the first WHY says more */
}

/* dns.servers as a list for ares_set_servers_ports(): parsed with
 * addr_parse rather than handed to ares_set_servers_ports_csv, whose 1.18
 * parser guesses ports by counting colons. */
static int set_servers(struct dns_resolver *r, const struct dns_conf *conf, char *why,
		       size_t why_len)
{
	struct ares_addr_port_node *list = calloc(conf->n_servers, sizeof *list);
	if (list == NULL) {
		snprintf(why, why_len, "dns.servers: out of memory");
		return -1;
	}
	for (size_t i = 0; i < conf->n_servers; i++) {
		struct addr a;
		const char *reason = "invalid address";
		if (dns_server_parse(conf->servers[i], &a, &reason) < 0) {
			snprintf(why, why_len, "dns.servers: invalid server \"%s\": %s",
				 conf->servers[i], reason);
			free(list);
			return -1;
		}
		struct ares_addr_port_node *s = &list[i];
		s->family = a.ss.ss_family;
		uint16_t port;
		if (s->family == AF_INET) {
			const struct sockaddr_in *sin = (const struct sockaddr_in *)&a.ss;
			s->addr.addr4 = sin->sin_addr;
			port = ntohs(sin->sin_port);
		} else {
			const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a.ss;
			memcpy(&s->addr.addr6, &sin6->sin6_addr, sizeof s->addr.addr6);
			port = ntohs(sin6->sin6_port);
		}
		s->udp_port = s->tcp_port = port;
		s->next = i + 1 < conf->n_servers ? &list[i + 1] : NULL;
	}
	int rc = ares_set_servers_ports(r->channel, list);
	free(list);
	if (rc != ARES_SUCCESS) {
		snprintf(why, why_len, "dns.servers: %s", ares_strerror(rc));
		return -1;
	}
	return 0;
}

struct dns_resolver *dns_resolver_new(struct event_base *base, const struct dns_conf *conf,
				      char *why, size_t why_len)
{
	pthread_once(&library_once, library_init);
	if (library_status != ARES_SUCCESS) {
		snprintf(why, why_len, "c-ares: %s", ares_strerror(library_status));
		return NULL;
	}
	struct dns_resolver *r = calloc(1, sizeof *r);
	if (r == NULL) {
		snprintf(why, why_len, "dns: out of memory");
		return NULL;
	}
	r->base = base;
	r->min_ttl = conf->min_ttl;
	r->max_ttl = conf->max_ttl;
	r->retired_tail = &r->retired;
	r->timeout = evtimer_new(base, on_timeout, r);
	r->reaper = evtimer_new(base, on_reap, r);
	if (r->timeout == NULL || r->reaper == NULL) {
		snprintf(why, why_len, "dns: out of memory");
		dns_resolver_free(r);
		return NULL;
	}
	struct ares_options o = {
		.timeout = DNS_TIMEOUT_MS,
		.tries = DNS_TRIES,
		.sock_state_cb = on_socket_state,
		.sock_state_cb_data = r,
	};
	int rc = ares_init_options(&r->channel, &o,
				   ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB);
	if (rc != ARES_SUCCESS) {
		snprintf(why, why_len, "c-ares: %s", ares_strerror(rc));
		r->channel = NULL;
		dns_resolver_free(r);
		return NULL;
	}
	if (conf->n_servers > 0 && set_servers(r, conf, why, why_len) < 0) {
		dns_resolver_free(r);
		return NULL;
	}
	return r;
}

void dns_resolver_free(struct dns_resolver *r)
{
	if (r == NULL)
		return;
	/* ares_destroy runs every pending callback and closes its sockets
	 * through on_socket_state, which frees their events: both must still
	 * find R, names and lookups whole, so those are freed after it. */
	r->closing = true;
	if (r->channel != NULL)
		ares_destroy(r->channel);
	while (r->names != NULL) {
		struct dns_name *n = r->names;
		r->names = n->next;
		name_free(n);
	}
	/* Lookups not delivered yet are dropped without a call: their
	 * callers are being torn down with the resolver. */
	while (r->lookups != NULL) {
		struct dns_lookup *l = r->lookups;
		r->lookups = l->next;
		lookup_free(l);
	}
	while (r->retired != NULL) {
		struct dns_retired *t = r->retired;
		r->retired = t->next;
		free(t->answer);
		free(t);
	}
	if (r->timeout != NULL)
		event_free(r->timeout);
	if (r->reaper != NULL)
		event_free(r->reaper);
	free(r);
}

/* ---- configuration: the "dns" group ---- */

void dns_conf_defaults(struct dns_conf *c)
{
	*c = (struct dns_conf){ .min_ttl = 1, .max_ttl = 300 };
}

int dns_conf_parse(struct conf_reader *r, const config_setting_t *s, struct config *cfg)
{
	static const char *const keys[] = { "servers", "min_ttl", "max_ttl", NULL };
	int ok = conf_check_keys(r, s, keys) ? 0 : -1;
	if (!config_setting_is_group(s))
		return -1;
	struct dns_conf *d = cfg->dns;

	char **servers = NULL;
	size_t n = 0;
	int rc = conf_get_strings(r, s, "servers", &servers, &n);
	if (rc < 0)
		ok = -1;
	else if (rc == 1) {
		const config_setting_t *list = config_setting_get_member(s, "servers");
		for (size_t i = 0; i < n; i++) {
			const char *why = NULL;
			struct addr a;
			if (dns_server_parse(servers[i], &a, &why) < 0) {
				const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
				conf_error(r, e, "%s: invalid DNS server \"%s\" (expected a numeric "
					   "address with an optional port, e.g. \"127.0.0.1:53\")%s%s",
					   CONF_WHERE(e), servers[i], why ? ": " : "", why ? why : "");
				ok = -1;
			}
		}
		conf_strings_free(d->servers);
		d->servers = servers;
		d->n_servers = n;
	}

	int a = conf_get_duration(r, s, "min_ttl", 0, 86400, &d->min_ttl);
	int b = conf_get_duration(r, s, "max_ttl", 0, 86400, &d->max_ttl);
	if (a < 0 || b < 0)
		ok = -1;
	else if (d->min_ttl > d->max_ttl) {
		const config_setting_t *at =
			config_setting_get_member(s, b == 1 ? "max_ttl" : "min_ttl");
		conf_error(r, at, "dns: min_ttl (%g) is greater than max_ttl (%g)",
			   d->min_ttl, d->max_ttl);
		ok = -1;
	}
	return ok;
}

const char *dns_conf_restart_key(const struct dns_conf *a, const struct dns_conf *b)
{
	/* The resolver is made once, at start, with these. */
	if (a->n_servers != b->n_servers || a->min_ttl != b->min_ttl || a->max_ttl != b->max_ttl)
		return "dns";
	for (size_t i = 0; i < a->n_servers; i++)
		if (strcmp(a->servers[i], b->servers[i]) != 0)
			return "dns";
	return NULL;
}

void dns_conf_free(struct dns_conf *c)
{
	conf_strings_free(c->servers);
	c->servers = NULL;
	c->n_servers = 0;
}
