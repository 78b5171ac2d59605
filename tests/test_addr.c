/* tests for proxy/addr.c: config addresses, formatting, loopback checks
 * and CIDR sets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "addr.h"

static const struct sockaddr *sa_of(const struct addr *a)
{
	return (const struct sockaddr *)&a->ss;
}

static struct addr parse_ok(const char *text)
{
	struct addr a;
	const char *why = NULL;
	if (addr_parse(text, &a, &why) != 0)
		fail_msg("addr_parse(\"%s\") failed: %s", text, why ? why : "(no reason)");
	assert_true(a.len > 0);
	return a;
}

/* Fails to parse, with a reason that contains WANT. */
static void parse_bad(const char *text, const char *want)
{
	struct addr a;
	const char *why = NULL;
	if (addr_parse(text, &a, &why) == 0)
		fail_msg("addr_parse(\"%s\") should fail", text);
	assert_non_null(why);
	if (strstr(why, want) == NULL)
		fail_msg("addr_parse(\"%s\"): reason \"%s\" lacks \"%s\"", text, why, want);
}

static void test_parse_ipv4(void **state)
{
	(void)state;
	struct addr a = parse_ok("127.0.0.1:8080");
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&a.ss;
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(ntohs(sin->sin_port), 8080);
	assert_int_equal(ntohl(sin->sin_addr.s_addr), 0x7f000001);
	assert_int_equal(a.len, sizeof(struct sockaddr_in));
	assert_false(addr_is_unix(&a));

	a = parse_ok("0.0.0.0:1");
	assert_int_equal(ntohs(((struct sockaddr_in *)&a.ss)->sin_port), 1);
	a = parse_ok("10.1.2.3:65535");
	assert_int_equal(ntohs(((struct sockaddr_in *)&a.ss)->sin_port), 65535);
}

static void test_parse_ipv6(void **state)
{
	(void)state;
	struct addr a = parse_ok("[::1]:8080");
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a.ss;
	assert_int_equal(sin6->sin6_family, AF_INET6);
	assert_int_equal(ntohs(sin6->sin6_port), 8080);
	assert_true(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
	assert_int_equal(a.len, sizeof(struct sockaddr_in6));

	a = parse_ok("[2001:db8::42]:443");
	char buf[64];
	assert_string_equal(addr_format(sa_of(&a), a.len, buf, sizeof buf), "[2001:db8::42]:443");
}

static void test_parse_unix(void **state)
{
	(void)state;
	struct addr a = parse_ok("unix:/tmp/cutover/admin.sock");
	assert_true(addr_is_unix(&a));
	const struct sockaddr_un *sun = (const struct sockaddr_un *)&a.ss;
	assert_string_equal(sun->sun_path, "/tmp/cutover/admin.sock");
	assert_int_equal(a.len, offsetof(struct sockaddr_un, sun_path) + strlen(sun->sun_path) + 1);

	/* sun_path holds 108 bytes including the NUL: 107 fit, 108 do not. */
	char text[200] = "unix:/";
	size_t room = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
	memset(text + 6, 'x', room - 1);
	text[5 + room] = '\0';
	a = parse_ok(text);
	assert_int_equal(strlen(((struct sockaddr_un *)&a.ss)->sun_path), room);
	text[5 + room] = 'y';
	text[6 + room] = '\0';
	parse_bad(text, "too long");
	parse_bad("unix:", "empty unix socket path");
}

static void test_parse_errors(void **state)
{
	(void)state;
	parse_bad("", "empty");
	parse_bad(NULL, "empty");
	parse_bad("127.0.0.1", "missing ':port'");
	parse_bad("127.0.0.1:", "missing port");
	parse_bad("127.0.0.1:0", "port 0");
	parse_bad("127.0.0.1:65536", "out of range");
	parse_bad("127.0.0.1:99999999999999999999", "out of range");
	parse_bad("127.0.0.1:80a", "number");
	parse_bad("127.0.0.1:-1", "number");
	parse_bad("127.0.0.1:+80", "number");
	parse_bad(":8080", "missing host");
	parse_bad("localhost:8080", "numeric");
	parse_bad("256.0.0.1:80", "numeric");
	parse_bad("::1:8080", "brackets");
	parse_bad("[::1]", "missing ':port'");
	parse_bad("[::1]8080", "missing ':port'");
	parse_bad("[::1:8080", "missing ']'");
	parse_bad("[]:80", "IPv6");
	parse_bad("[127.0.0.1]:80", "IPv6");
	parse_bad("[fe80::1%eth0]:80", "IPv6");

	/* A failed parse leaves *out alone. */
	struct addr a = parse_ok("127.0.0.1:1");
	struct addr before = a;
	const char *why;
	assert_int_equal(addr_parse("nope:1", &a, &why), -1);
	assert_memory_equal(&a, &before, sizeof a);
	/* WHY may be NULL. */
	assert_int_equal(addr_parse("nope", &a, NULL), -1);
}

static void test_format(void **state)
{
	(void)state;
	char buf[128];
	struct addr a = parse_ok("192.0.2.7:18080");
	assert_string_equal(addr_format(sa_of(&a), a.len, buf, sizeof buf), "192.0.2.7:18080");
	assert_string_equal(addr_format_host(sa_of(&a), buf, sizeof buf), "192.0.2.7");

	a = parse_ok("[::1]:9");
	assert_string_equal(addr_format(sa_of(&a), a.len, buf, sizeof buf), "[::1]:9");
	assert_string_equal(addr_format_host(sa_of(&a), buf, sizeof buf), "::1");

	a = parse_ok("unix:/run/x.sock");
	assert_string_equal(addr_format(sa_of(&a), a.len, buf, sizeof buf), "unix:/run/x.sock");

	/* An unnamed unix peer (len covers only the family). */
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	assert_string_equal(addr_format((struct sockaddr *)&un, sizeof(sa_family_t), buf,
					sizeof buf), "unix:");

	/* Truncated into a small buffer, still terminated. */
	a = parse_ok("192.0.2.7:18080");
	assert_string_equal(addr_format(sa_of(&a), a.len, buf, 6), "192.0");
	char one[1] = { 'z' };
	assert_string_equal(addr_format_host(sa_of(&a), one, 1), "");
	assert_string_equal(addr_format(NULL, 0, buf, sizeof buf), "");

	/* An IPv4-mapped peer of a dual-stack socket. */
	struct sockaddr_in6 m = { .sin6_family = AF_INET6 };
	inet_pton(AF_INET6, "::ffff:127.0.0.1", &m.sin6_addr);
	assert_string_equal(addr_format_host((struct sockaddr *)&m, buf, sizeof buf),
			    "::ffff:127.0.0.1");
}

static bool loopback(const char *text)
{
	struct addr a = parse_ok(text);
	return addr_is_loopback(sa_of(&a));
}

static void test_loopback(void **state)
{
	(void)state;
	assert_true(loopback("127.0.0.1:1"));
	assert_true(loopback("127.255.3.4:1"));
	assert_true(loopback("[::1]:1"));
	assert_true(loopback("[::ffff:127.0.0.1]:1"));
	assert_true(loopback("[::ffff:127.9.9.9]:1"));
	assert_false(loopback("128.0.0.1:1"));
	assert_false(loopback("0.0.0.0:1"));
	assert_false(loopback("10.0.0.1:1"));
	assert_false(loopback("[::]:1"));
	assert_false(loopback("[::2]:1"));
	assert_false(loopback("[::ffff:10.0.0.1]:1"));
	assert_false(loopback("[::127.0.0.1]:1"));     /* v4-compatible, not mapped */
	assert_false(loopback("unix:/x"));
	assert_false(addr_is_loopback(NULL));

	struct addr unset = { .len = 0 };
	assert_false(addr_is_unix(&unset));
	assert_false(addr_is_unix(NULL));
}

/* ---- CIDR ---- */

static struct cidr cidr_ok(const char *text)
{
	struct cidr c;
	const char *why = NULL;
	if (cidr_parse(text, &c, &why) != 0)
		fail_msg("cidr_parse(\"%s\") failed: %s", text, why ? why : "(no reason)");
	return c;
}

static void cidr_bad(const char *text, const char *want)
{
	struct cidr c;
	const char *why = NULL;
	if (cidr_parse(text, &c, &why) == 0)
		fail_msg("cidr_parse(\"%s\") should fail", text);
	assert_non_null(why);
	if (strstr(why, want) == NULL)
		fail_msg("cidr_parse(\"%s\"): reason \"%s\" lacks \"%s\"", text, why, want);
}

static void test_cidr_parse(void **state)
{
	(void)state;
	struct cidr c = cidr_ok("10.0.0.0/8");
	assert_int_equal(c.family, AF_INET);
	assert_int_equal(c.prefix, 8);
	assert_int_equal(c.net[0], 10);

	c = cidr_ok("::1/128");
	assert_int_equal(c.family, AF_INET6);
	assert_int_equal(c.prefix, 128);
	assert_int_equal(c.net[15], 1);

	c = cidr_ok("192.0.2.9");
	assert_int_equal(c.family, AF_INET);
	assert_int_equal(c.prefix, 32);
	assert_int_equal(c.net[3], 9);
	c = cidr_ok("2001:db8::1");
	assert_int_equal(c.family, AF_INET6);
	assert_int_equal(c.prefix, 128);

	/* Host bits are allowed and masked off. */
	c = cidr_ok("10.1.2.3/8");
	static const uint8_t ten[4] = { 10, 0, 0, 0 };
	assert_memory_equal(c.net, ten, 4);
	c = cidr_ok("192.168.255.255/20");
	static const uint8_t net20[4] = { 192, 168, 240, 0 };
	assert_memory_equal(c.net, net20, 4);
	c = cidr_ok("2001:db8:ffff::1/33");
	assert_int_equal(c.net[4], 0x80);
	assert_int_equal(c.net[5], 0);
	assert_int_equal(c.net[15], 0);
	c = cidr_ok("0.0.0.0/0");
	assert_int_equal(c.prefix, 0);
	c = cidr_ok("1.2.3.4/0");
	assert_int_equal(c.net[0], 0);

	/* An IPv4-mapped network is stored as IPv4. */
	c = cidr_ok("::ffff:10.0.0.0/104");
	assert_int_equal(c.family, AF_INET);
	assert_int_equal(c.prefix, 8);
	assert_memory_equal(c.net, ten, 4);

	cidr_bad("", "empty");
	cidr_bad("10.0.0.0/33", "out of range");
	cidr_bad("::/129", "out of range");
	cidr_bad("10.0.0.0/", "missing prefix");
	cidr_bad("10.0.0.0/-1", "number");
	cidr_bad("10.0.0.0/8x", "number");
	cidr_bad("10.0.0/8", "numeric");
	cidr_bad("example.org/8", "numeric");
	cidr_bad("/8", "numeric");
}

static struct sockaddr_storage peer(const char *host)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	if (strchr(host, ':') != NULL) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
		s->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, host, &s->sin6_addr), 1);
	} else {
		struct sockaddr_in *s = (struct sockaddr_in *)&ss;
		s->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, host, &s->sin_addr), 1);
	}
	return ss;
}

static bool contains(const struct cidr_set *set, const char *host)
{
	struct sockaddr_storage ss = peer(host);
	return cidr_set_contains(set, (struct sockaddr *)&ss);
}

static void test_cidr_set(void **state)
{
	(void)state;
	struct cidr_set set = { .n = 4 };
	set.v = calloc(set.n, sizeof *set.v);
	assert_non_null(set.v);
	set.v[0] = cidr_ok("10.0.0.0/8");
	set.v[1] = cidr_ok("192.168.1.0/25");
	set.v[2] = cidr_ok("2001:db8::/32");
	set.v[3] = cidr_ok("203.0.113.5");

	assert_true(contains(&set, "10.0.0.1"));
	assert_true(contains(&set, "10.255.255.255"));
	assert_false(contains(&set, "11.0.0.1"));
	assert_true(contains(&set, "192.168.1.127"));
	assert_false(contains(&set, "192.168.1.128"));
	assert_true(contains(&set, "203.0.113.5"));
	assert_false(contains(&set, "203.0.113.6"));
	assert_true(contains(&set, "2001:db8:1::5"));
	assert_false(contains(&set, "2001:db9::5"));
	/* IPv4-mapped IPv6 peers match IPv4 entries. */
	assert_true(contains(&set, "::ffff:10.2.3.4"));
	assert_true(contains(&set, "::ffff:203.0.113.5"));
	assert_false(contains(&set, "::ffff:11.2.3.4"));
	/* ...but an IPv4-compatible or plain IPv6 address does not. */
	assert_false(contains(&set, "::10.2.3.4"));
	assert_false(contains(&set, "::1"));

	struct sockaddr_un un = { .sun_family = AF_UNIX };
	assert_false(cidr_set_contains(&set, (struct sockaddr *)&un));
	assert_false(cidr_set_contains(&set, NULL));

	cidr_set_free(&set);
	assert_null(set.v);
	assert_int_equal(set.n, 0);
	assert_false(contains(&set, "10.0.0.1"));
	cidr_set_free(&set);     /* twice is harmless */

	/* "::/0" covers IPv4 peers too (as ::ffff:a.b.c.d). */
	struct cidr all6 = cidr_ok("::/0");
	struct cidr_set any = { &all6, 1 };
	assert_true(contains(&any, "2001:db8::1"));
	assert_true(contains(&any, "198.51.100.1"));
	struct cidr all4 = cidr_ok("0.0.0.0/0");
	struct cidr_set any4 = { &all4, 1 };
	assert_true(contains(&any4, "198.51.100.1"));
	assert_false(contains(&any4, "2001:db8::1"));
}

/* The hand-made dotted quad says what inet_ntop says, for every byte
 * value in every position (and a short buffer is cut, terminated). */
static void test_format_host_ipv4(void **state)
{
	(void)state;
	struct sockaddr_in sin = { .sin_family = AF_INET };
	char got[64], want[INET_ADDRSTRLEN];
	for (unsigned v = 0; v < 256; v++) {
		for (int pos = 0; pos < 4; pos++) {
			uint8_t b[4] = { 10, 200, 3, 99 };
			b[pos] = (uint8_t)v;
			memcpy(&sin.sin_addr, b, 4);
			inet_ntop(AF_INET, &sin.sin_addr, want, sizeof(want));
			addr_format_host((const struct sockaddr *)&sin, got, sizeof(got));
			assert_string_equal(got, want);
		}
	}
	inet_pton(AF_INET, "255.255.255.255", &sin.sin_addr);
	addr_format_host((const struct sockaddr *)&sin, got, 8);
	assert_string_equal(got, "255.255");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_ipv4),
		cmocka_unit_test(test_parse_ipv6),
		cmocka_unit_test(test_parse_unix),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_format_host_ipv4),
		cmocka_unit_test(test_loopback),
		cmocka_unit_test(test_cidr_parse),
		cmocka_unit_test(test_cidr_set),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
