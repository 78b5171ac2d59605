/* dns: upstream host names resolved with c-ares on the control thread's
 * event loop (never blocking it), each answer cached for its TTL clamped to
 * dns.min_ttl..dns.max_ttl and refreshed in the background. The current
 * answer of every followed name is an immutable list published with one
 * atomic pointer store: workers read it without a lock when they open an
 * upstream connection. When the resolver fails, the last good answer stays. */
#ifndef CUTOVER_DNS_H
#define CUTOVER_DNS_H

#include <jansson.h>
#include <libconfig.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "addr.h"

struct conf_reader;
struct config;
struct event_base;

/* The "dns" group. */
struct dns_conf {
	char **servers;          /* "host[:port]"; empty = /etc/resolv.conf */
	size_t n_servers;
	double min_ttl, max_ttl; /* seconds */
};

/* Sets every field of C to its default (C is not freed first). */
void dns_conf_defaults(struct dns_conf *c);
/* Parses the top-level "dns" group into cfg->dns. */
int dns_conf_parse(struct conf_reader *r, const config_setting_t *s, struct config *cfg);
void dns_conf_free(struct dns_conf *c);
/* "dns" if the servers or TTL bounds differ, else NULL. */
const char *dns_conf_restart_key(const struct dns_conf *a, const struct dns_conf *b);

struct dns_answer {
	time_t resolved;             /* wall clock when it was received */
	double ttl;                  /* seconds, after clamping */
	size_t n;
	struct addr addrs[];         /* every A and AAAA, with the port set */
};

struct dns_resolver;
struct dns_name;

/* A DNS server as dns.servers writes it: "1.1.1.1", "1.1.1.1:53", "::1",
 * "[::1]" or "[::1]:5353", numeric, port 53 unless given. The config check
 * and the resolver both read it with this. Returns 0, or -1 with a static
 * reason in *WHY (left alone when addr_parse gave none). */
int dns_server_parse(const char *text, struct addr *out, const char **why);

/* A resolver on BASE (the control thread's loop). dns.servers, when set,
 * replaces /etc/resolv.conf. NULL with a reason in WHY on failure. */
struct dns_resolver *dns_resolver_new(struct event_base *base, const struct dns_conf *conf,
				      char *why, size_t why_len);
/* Frees every followed name too. Call after the workers stopped. */
void dns_resolver_free(struct dns_resolver *r);

/* Follows HOST:PORT from now on: resolved at once, then again when its TTL
 * runs out. An IP literal gets a fixed answer at once, without a query, and
 * so do "localhost" and "*.localhost": 127.0.0.1 and ::1 (RFC 6761).
 * Following the same HOST:PORT twice returns the same name. Owned by R. */
struct dns_name *dns_follow(struct dns_resolver *r, const char *host, uint16_t port);

/* The current answer of N, or NULL before the first one arrived. Safe from
 * any thread, lock-free; the answer stays valid at least until the caller's
 * current event callback returns (replaced answers are freed after a grace
 * period of several seconds). */
const struct dns_answer *dns_current(const struct dns_name *n);

/* Runs BASE until every followed name has had its first result (an answer
 * or a failure) or TIMEOUT seconds passed: used once at start so that the
 * first requests find their addresses. */
void dns_settle(struct dns_resolver *r, double timeout);

/* For status: {"host": ..., "literal": true for an IP address or
 * localhost (never resolved), "addresses": ["10.0.0.1:443", ...],
 * "age": seconds since resolved (null before), "ttl": seconds,
 * "error": last failure or null, "resolved_at": RFC 3339 or null}. */
json_t *dns_name_status(const struct dns_name *n);

/* A fresh query for HOST:PORT that ignores the cache (preflight); a good
 * answer also becomes the current one of the followed name HOST:PORT, if
 * any. Calls DONE once, later from BASE's loop (never from inside
 * dns_lookup), with the answer (owned by the callee: valid during the call)
 * or NULL and the resolver's reason ("old.example.org: Domain name not
 * found"); lookups still pending when the resolver is freed are dropped
 * without a call (that happens only at exit). */
typedef void (*dns_lookup_fn)(void *arg, const struct dns_answer *answer, const char *error);
int dns_lookup(struct dns_resolver *r, const char *host, uint16_t port, dns_lookup_fn done,
	       void *arg);

#endif
