/* tests for proxy/dns.c: IP literals, A+AAAA answers with the port, TTL
 * clamping and refresh, the last good answer kept through a failure,
 * dns_lookup's deferred callback, dns_follow's dedup and dns_settle.
 * The resolver asks a fake DNS server on a loopback UDP port, served by a
 * read event on the test's own event base. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ares.h>
#include <event2/event.h>
#include <jansson.h>

#include "dns.h"

#define MIN_TTL 0.2
#define MAX_TTL 300.0

/* ---- a fake DNS server: one record per row, answered from this table ---- */

struct fake_rr {
	const char *name;
	const char *addr;   /* IPv4 answers A queries, IPv6 answers AAAA */
	uint32_t ttl;
};

struct fake_dns {
	int fd;
	uint16_t port;
	struct event *ev;
	bool drop;                /* receive queries but never answer */
	struct fake_rr rr[8];     /* a name without rows is NXDOMAIN */
	struct {
		char name[256];
		int n;
	} seen[16];               /* queries per name, both types */
	int total;
};

static int fake_count(const struct fake_dns *d, const char *name)
{
	for (size_t i = 0; i < 16; i++)
		if (strcasecmp(d->seen[i].name, name) == 0)
			return d->seen[i].n;
	return 0;
}

static void fake_note(struct fake_dns *d, const char *name)
{
	d->total++;
	for (size_t i = 0; i < 16; i++) {
		if (d->seen[i].name[0] == '\0')
			snprintf(d->seen[i].name, sizeof d->seen[i].name, "%s", name);
		if (strcasecmp(d->seen[i].name, name) == 0) {
			d->seen[i].n++;
			return;
		}
	}
}

static void put16(unsigned char *p, unsigned v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

static void on_query(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct fake_dns *d = arg;
	unsigned char q[512], out[512];
	struct sockaddr_storage from;
	socklen_t from_len = sizeof from;
	ssize_t got = recvfrom(fd, q, sizeof q, 0, (struct sockaddr *)&from, &from_len);
	if (got < 12)
		return;
	size_t len = (size_t)got, off = 12, n = 0;
	char name[256];
	while (off < len && q[off] != 0) {
		size_t label = q[off];
		if (label > 63 || off + 1 + label >= len || n + label + 2 > sizeof name)
			return;
		if (n > 0)
			name[n++] = '.';
		memcpy(name + n, q + off + 1, label);
		n += label;
		off += 1 + label;
	}
	name[n] = '\0';
	size_t question_end = off + 1 + 4;            /* root label, QTYPE, QCLASS */
	if (question_end > len)
		return;
	unsigned qtype = (unsigned)q[off + 1] << 8 | q[off + 2];
	fake_note(d, name);
	if (d->drop)
		return;

	memcpy(out, q, question_end);                 /* header and question */
	out[2] = (unsigned char)(0x84 | (q[2] & 0x01));   /* QR, AA, RD as asked */
	out[3] = 0;
	put16(out + 4, 1);
	memset(out + 8, 0, 4);                        /* no authority, no additional */
	size_t o = question_end;
	unsigned answers = 0;
	bool known = false;
	for (size_t i = 0; i < 8 && d->rr[i].name != NULL; i++) {
		if (strcasecmp(d->rr[i].name, name) != 0)
			continue;
		known = true;
		unsigned char a[16];
		unsigned type = 1, rdlen = 4;
		if (inet_pton(AF_INET, d->rr[i].addr, a) != 1) {
			assert_int_equal(inet_pton(AF_INET6, d->rr[i].addr, a), 1);
			type = 28;
			rdlen = 16;
		}
		if (type != qtype)
			continue;
		out[o] = 0xc0;                        /* the name in the question */
		out[o + 1] = 0x0c;
		put16(out + o + 2, type);
		put16(out + o + 4, 1);
		put16(out + o + 6, d->rr[i].ttl >> 16);
		put16(out + o + 8, d->rr[i].ttl & 0xffff);
		put16(out + o + 10, rdlen);
		memcpy(out + o + 12, a, rdlen);
		o += 12 + rdlen;
		answers++;
	}
	if (!known)
		out[3] = 3;                           /* NXDOMAIN */
	put16(out + 6, answers);
	sendto(fd, out, o, 0, (struct sockaddr *)&from, from_len);
}

static void fake_start(struct fake_dns *d, struct event_base *base)
{
	d->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(d->fd >= 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sin_len = sizeof sin;
	assert_int_equal(bind(d->fd, (struct sockaddr *)&sin, sizeof sin), 0);
	assert_int_equal(getsockname(d->fd, (struct sockaddr *)&sin, &sin_len), 0);
	d->port = ntohs(sin.sin_port);
	d->ev = event_new(base, d->fd, EV_READ | EV_PERSIST, on_query, d);
	assert_non_null(d->ev);
	assert_int_equal(event_add(d->ev, NULL), 0);
}

/* The server is gone: queries to its port are refused. */
static void fake_stop(struct fake_dns *d)
{
	if (d->ev != NULL)
		event_free(d->ev);
	if (d->fd >= 0)
		close(d->fd);
	d->ev = NULL;
	d->fd = -1;
}

/* ---- fixture: an event base, the fake server, a resolver that asks it ---- */

struct fx {
	struct event_base *base;
	struct fake_dns dns;
	char server[32];
	char *servers[2];
	struct dns_conf conf;
	struct dns_resolver *r;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	assert_non_null(f);
	f->base = event_base_new();
	assert_non_null(f->base);
	fake_start(&f->dns, f->base);
	snprintf(f->server, sizeof f->server, "127.0.0.1:%u", f->dns.port);
	f->servers[0] = f->server;
	f->conf = (struct dns_conf){ .servers = f->servers, .n_servers = 1,
				     .min_ttl = MIN_TTL, .max_ttl = MAX_TTL };
	char why[256] = "";
	f->r = dns_resolver_new(f->base, &f->conf, why, sizeof why);
	if (f->r == NULL)
		fail_msg("dns_resolver_new: %s", why);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	dns_resolver_free(f->r);
	fake_stop(&f->dns);
	event_base_free(f->base);
	free(f);
	return 0;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(bool *)arg = true;
}

/* Runs the loop until DONE(ARG) or TIMEOUT seconds; returns DONE(ARG). */
static bool run_until(struct fx *f, bool (*done)(const void *), const void *arg, double timeout)
{
	bool expired = false;
	struct event *t = evtimer_new(f->base, on_deadline, &expired);
	struct timeval tv = { .tv_sec = (time_t)timeout,
			      .tv_usec = (suseconds_t)((timeout - (double)(time_t)timeout) * 1e6) };
	evtimer_add(t, &tv);
	while (!expired && !done(arg))
		event_base_loop(f->base, EVLOOP_ONCE);
	event_free(t);
	return done(arg);
}

static bool never(const void *arg)
{
	(void)arg;
	return false;
}

static char *format(const struct addr *a, char *buf, size_t size)
{
	addr_format((const struct sockaddr *)&a->ss, a->len, buf, size);
	return buf;
}

static bool answer_has(const struct dns_answer *a, const char *text)
{
	char buf[64];
	for (size_t i = 0; a != NULL && i < a->n; i++)
		if (strcmp(format(&a->addrs[i], buf, sizeof buf), text) == 0)
			return true;
	return false;
}

/* ---- tests ---- */

static void test_ip_literal_answers_at_once_without_query(void **state)
{
	struct fx *f = *state;
	const struct { const char *host, *want; } cases[] = {
		{ "10.1.2.3", "10.1.2.3:80" },
		{ "::1", "[::1]:80" },
		{ "[2001:db8::7]", "[2001:db8::7]:80" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct dns_name *n = dns_follow(f->r, cases[i].host, 80);
		assert_non_null(n);
		const struct dns_answer *a = dns_current(n);
		assert_non_null(a);
		assert_int_equal(a->n, 1);
		assert_true(answer_has(a, cases[i].want));
		assert_true(a->ttl == 0);
		json_t *st = dns_name_status(n);
		assert_true(json_is_true(json_object_get(st, "literal")));
		json_decref(st);
	}
	run_until(f, never, NULL, 0.05);
	assert_int_equal(f->dns.total, 0);
}

static void test_all_a_and_aaaa_kept_with_port(void **state)
{
	struct fx *f = *state;
	f->dns.rr[0] = (struct fake_rr){ "svc.test", "10.0.0.1", 60 };
	f->dns.rr[1] = (struct fake_rr){ "svc.test", "10.0.0.2", 60 };
	f->dns.rr[2] = (struct fake_rr){ "svc.test", "2001:db8::1", 30 };
	f->dns.rr[3] = (struct fake_rr){ "svc.test", "10.0.0.1", 60 };   /* duplicate */
	struct dns_name *n = dns_follow(f->r, "svc.test", 8443);
	assert_non_null(n);
	dns_settle(f->r, 3);
	const struct dns_answer *a = dns_current(n);
	assert_non_null(a);
	assert_int_equal(a->n, 3);
	assert_true(answer_has(a, "10.0.0.1:8443"));
	assert_true(answer_has(a, "10.0.0.2:8443"));
	assert_true(answer_has(a, "[2001:db8::1]:8443"));
	assert_true(a->ttl == 30);                 /* the smallest record TTL */
	assert_true(a->resolved > 0);

	json_t *s = dns_name_status(n);
	assert_non_null(s);
	assert_string_equal(json_string_value(json_object_get(s, "host")), "svc.test");
	assert_int_equal(json_array_size(json_object_get(s, "addresses")), 3);
	assert_true(json_is_null(json_object_get(s, "error")));
	assert_true(json_real_value(json_object_get(s, "ttl")) == 30);
	double age = json_real_value(json_object_get(s, "age"));
	assert_true(age >= 0 && age < 1);
	const char *at = json_string_value(json_object_get(s, "resolved_at"));
	assert_non_null(at);
	assert_int_equal(strlen(at), 20);          /* 2026-01-02T03:04:05Z */
	assert_int_equal(at[19], 'Z');
	json_decref(s);
}

static bool has_new_address(const void *arg)
{
	return answer_has(dns_current(arg), "10.0.0.9:80");
}

static void test_answer_changes_after_ttl(void **state)
{
	struct fx *f = *state;
	f->dns.rr[0] = (struct fake_rr){ "moving.test", "10.0.0.1", 1 };
	struct dns_name *n = dns_follow(f->r, "moving.test", 80);
	dns_settle(f->r, 3);
	const struct dns_answer *old = dns_current(n);
	assert_true(answer_has(old, "10.0.0.1:80"));
	double t0 = now();
	f->dns.rr[0].addr = "10.0.0.9";
	assert_true(run_until(f, has_new_address, n, 3));
	assert_true(now() - t0 > 0.8);
	assert_int_equal(dns_current(n)->n, 1);
	/* The replaced answer stays readable through the grace period. */
	assert_true(answer_has(old, "10.0.0.1:80"));
}

static bool has_error(const void *arg)
{
	json_t *s = dns_name_status(arg);
	bool yes = json_is_string(json_object_get(s, "error"));
	json_decref(s);
	return yes;
}

static void test_failure_keeps_last_good_answer(void **state)
{
	struct fx *f = *state;
	f->dns.rr[0] = (struct fake_rr){ "steady.test", "10.0.0.1", 1 };
	struct dns_name *n = dns_follow(f->r, "steady.test", 80);
	dns_settle(f->r, 3);
	const struct dns_answer *good = dns_current(n);
	assert_non_null(good);
	fake_stop(&f->dns);
	assert_true(run_until(f, has_error, n, 4));
	assert_ptr_equal(dns_current(n), good);
	json_t *s = dns_name_status(n);
	const char *error = json_string_value(json_object_get(s, "error"));
	assert_non_null(strstr(error, "steady.test: "));
	assert_int_equal(json_array_size(json_object_get(s, "addresses")), 1);
	json_decref(s);
}

struct lookup_result {
	int calls;
	bool had_answer;
	char first[64];
	size_t n;
	char error[256];
};

static void on_lookup(void *arg, const struct dns_answer *a, const char *error)
{
	struct lookup_result *res = arg;
	res->calls++;
	res->had_answer = a != NULL;
	if (a != NULL) {
		res->n = a->n;
		format(&a->addrs[0], res->first, sizeof res->first);
	}
	snprintf(res->error, sizeof res->error, "%s", error != NULL ? error : "");
}

static bool called(const void *arg)
{
	return ((const struct lookup_result *)arg)->calls > 0;
}

static void test_lookup_nxdomain_names_host(void **state)
{
	struct fx *f = *state;
	struct lookup_result res = { 0 };
	assert_int_equal(dns_lookup(f->r, "old.example.test", 443, on_lookup, &res), 0);
	assert_int_equal(res.calls, 0);
	assert_true(run_until(f, called, &res, 3));
	assert_int_equal(res.calls, 1);
	assert_false(res.had_answer);
	assert_non_null(strstr(res.error, "old.example.test: "));
	assert_non_null(strstr(res.error, ares_strerror(ARES_ENOTFOUND)));
}

/* RFC 6761 6.3: localhost and *.localhost are loopback, answered here
 * without asking DNS or /etc/hosts (a container may have neither). */
static void test_localhost_is_loopback_without_query(void **state)
{
	struct fx *f = *state;
	static const char *const hosts[] = { "localhost", "LocalHost.", "api.localhost",
					     "a.b.localhost." };
	for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
		struct dns_name *n = dns_follow(f->r, hosts[i], 8080);
		assert_non_null(n);
		const struct dns_answer *a = dns_current(n);
		if (a == NULL)
			fail_msg("%s: no answer at once", hosts[i]);
		assert_int_equal(a->n, 2);
		assert_true(answer_has(a, "127.0.0.1:8080"));
		assert_true(answer_has(a, "[::1]:8080"));
	}
	struct lookup_result res = { 0 };
	assert_int_equal(dns_lookup(f->r, "x.localhost", 81, on_lookup, &res), 0);
	assert_true(run_until(f, called, &res, 3));
	assert_true(res.had_answer);
	/* not localhost: these go to DNS */
	f->dns.rr[0] = (struct fake_rr){ "localhost.example", "10.0.0.9", 60 };
	struct dns_name *other = dns_follow(f->r, "localhost.example", 80);
	dns_settle(f->r, 3);
	assert_true(answer_has(dns_current(other), "10.0.0.9:80"));
	assert_true(dns_follow(f->r, "notlocalhost", 80) != NULL);
	run_until(f, never, NULL, 0.05);
	assert_int_equal(f->dns.total, 2 + 2);   /* A and AAAA for each of the last two */
}

static void test_lookup_never_calls_back_synchronously(void **state)
{
	struct fx *f = *state;
	f->dns.rr[0] = (struct fake_rr){ "svc.test", "10.0.0.1", 60 };
	/* localhost and literals are answered without c-ares, still later. */
	struct lookup_result local = { 0 }, literal = { 0 }, remote = { 0 };
	assert_int_equal(dns_lookup(f->r, "localhost", 80, on_lookup, &local), 0);
	assert_int_equal(dns_lookup(f->r, "10.0.0.7", 81, on_lookup, &literal), 0);
	assert_int_equal(dns_lookup(f->r, "svc.test", 82, on_lookup, &remote), 0);
	assert_int_equal(local.calls + literal.calls + remote.calls, 0);
	assert_true(run_until(f, called, &local, 3));
	assert_true(run_until(f, called, &literal, 3));
	assert_true(run_until(f, called, &remote, 3));
	run_until(f, never, NULL, 0.05);
	assert_int_equal(local.calls, 1);
	assert_true(local.had_answer);
	assert_int_equal(literal.calls, 1);
	assert_string_equal(literal.first, "10.0.0.7:81");
	assert_int_equal(remote.calls, 1);
	assert_string_equal(remote.first, "10.0.0.1:82");
	assert_string_equal(remote.error, "");
}

static void test_follow_dedupes_host_and_port(void **state)
{
	struct fx *f = *state;
	f->dns.rr[0] = (struct fake_rr){ "svc.test", "10.0.0.1", 60 };
	struct dns_name *a = dns_follow(f->r, "svc.test", 80);
	assert_ptr_equal(dns_follow(f->r, "svc.test", 80), a);
	assert_ptr_equal(dns_follow(f->r, "SVC.test", 80), a);
	struct dns_name *b = dns_follow(f->r, "svc.test", 81);
	assert_ptr_not_equal(b, a);
	assert_ptr_equal(dns_follow(f->r, "10.0.0.1", 80), dns_follow(f->r, "10.0.0.1", 80));
	dns_settle(f->r, 3);
	assert_int_equal(fake_count(&f->dns, "svc.test"), 4);   /* A + AAAA per port */
}

static void test_ttl_clamped(void **state)
{
	struct fx *f = *state;
	f->dns.rr[0] = (struct fake_rr){ "long.test", "10.0.0.1", 100000 };
	f->dns.rr[1] = (struct fake_rr){ "zero.test", "10.0.0.2", 0 };
	struct dns_name *l = dns_follow(f->r, "long.test", 80);
	struct dns_name *z = dns_follow(f->r, "zero.test", 80);
	dns_settle(f->r, 3);
	assert_true(dns_current(l)->ttl == MAX_TTL);
	assert_true(dns_current(z)->ttl == MIN_TTL);
}

static void test_settle_returns_after_first_results(void **state)
{
	struct fx *f = *state;
	f->dns.rr[0] = (struct fake_rr){ "one.test", "10.0.0.1", 60 };
	struct dns_name *one = dns_follow(f->r, "one.test", 80);
	struct dns_name *gone = dns_follow(f->r, "gone.test", 80);   /* NXDOMAIN */
	struct dns_name *literal = dns_follow(f->r, "10.0.0.3", 80);
	double t0 = now();
	dns_settle(f->r, 5);
	assert_true(now() - t0 < 1);
	assert_non_null(dns_current(one));
	assert_non_null(dns_current(literal));
	assert_null(dns_current(gone));
	assert_true(has_error(gone));

	/* A server that never answers: dns_settle gives up at its timeout. */
	f->dns.drop = true;
	struct dns_name *slow = dns_follow(f->r, "slow.test", 80);
	t0 = now();
	dns_settle(f->r, 0.3);
	double took = now() - t0;
	assert_true(took > 0.25 && took < 1);
	assert_null(dns_current(slow));
	assert_false(has_error(slow));
	assert_true(fake_count(&f->dns, "slow.test") > 0);
}

static void test_bad_server_names_it(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	char *servers[] = { "127.0.0.1", "[::1]", "::1", "127.0.0.1:5353", "nonsense:53" };
	struct dns_conf conf = { .servers = servers, .n_servers = 4, .min_ttl = 1, .max_ttl = 300 };
	char why[256] = "";
	struct dns_resolver *r = dns_resolver_new(base, &conf, why, sizeof why);
	assert_non_null(r);
	dns_resolver_free(r);
	conf.n_servers = 5;
	assert_null(dns_resolver_new(base, &conf, why, sizeof why));
	assert_non_null(strstr(why, "\"nonsense:53\""));
	event_base_free(base);
}

/* One parser for dns.servers: what `cutover check` accepts is what the
 * resolver is given. */
static void test_server_parse(void **state)
{
	(void)state;
	static const struct { const char *text; int family; uint16_t port; } good[] = {
		{ "127.0.0.1", AF_INET, 53 },        { "127.0.0.1:5353", AF_INET, 5353 },
		{ "::1", AF_INET6, 53 },             { "[::1]", AF_INET6, 53 },
		{ "[::1]:5353", AF_INET6, 5353 },    { "2001:db8::53", AF_INET6, 53 },
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		struct addr a;
		const char *why = NULL;
		if (dns_server_parse(good[i].text, &a, &why) < 0)
			fail_msg("%s: %s", good[i].text, why ? why : "?");
		assert_int_equal(a.ss.ss_family, good[i].family);
		uint16_t port = a.ss.ss_family == AF_INET
					? ntohs(((struct sockaddr_in *)&a.ss)->sin_port)
					: ntohs(((struct sockaddr_in6 *)&a.ss)->sin6_port);
		assert_int_equal(port, good[i].port);
	}
	static const struct { const char *text, *why; } bad[] = {
		{ "unix:/run/dns.sock", "a DNS server cannot be a unix socket" },
		{ "dns.example.org", "missing ':port'" },
		{ "1.2.3.4:99999", "port out of range (1-65535)" },
		{ "[::1", "missing ']' after an IPv6 address" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct addr a;
		const char *why = NULL;
		assert_int_equal(dns_server_parse(bad[i].text, &a, &why), -1);
		assert_non_null(why);
		assert_string_equal(why, bad[i].why);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_localhost_is_loopback_without_query, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_ip_literal_answers_at_once_without_query, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_all_a_and_aaaa_kept_with_port, setup, teardown),
		cmocka_unit_test_setup_teardown(test_answer_changes_after_ttl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure_keeps_last_good_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lookup_nxdomain_names_host, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lookup_never_calls_back_synchronously, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_follow_dedupes_host_and_port, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ttl_clamped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_settle_returns_after_first_results, setup,
						teardown),
		cmocka_unit_test(test_bad_server_names_it),
		cmocka_unit_test(test_server_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
