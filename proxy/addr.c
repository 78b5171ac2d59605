/* addr: config addresses ("127.0.0.1:8080", "[::1]:8080", "unix:/path")
 * and the CIDR sets behind trusted_proxies. Hosts are numeric only: names
 * belong to the upstream resolver, never to listen/admin addresses. */
#include "addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

static void set_why(const char **why, const char *text)
{
	if (why != NULL)
		*why = text;
}

/* "1".."65535", digits only. */
static int parse_port(const char *p, uint16_t *out, const char **why)
{
	if (*p == '\0') {
		set_why(why, "missing port after ':'");
		return -1;
	}
	unsigned long v = 0;
	for (const char *q = p; *q != '\0'; q++) {
		if (*q < '0' || *q > '9') {
			set_why(why, "port must be a number");
			return -1;
		}
		v = v * 10 + (unsigned long)(*q - '0');
		if (v > 65535) {
			set_why(why, "port out of range (1-65535)");
			return -1;
		}
	}
	if (v == 0) {
		set_why(why, "port 0 is not allowed (1-65535)");
		return -1;
	}
	*out = (uint16_t)v;
	return 0;
}

static int parse_unix(const char *path, struct addr *out, const char **why)
{
	struct sockaddr_un *sun = (struct sockaddr_un *)&out->ss;
	size_t n = strlen(path);
	if (n == 0) {
		set_why(why, "empty unix socket path");
		return -1;
	}
	if (n >= sizeof sun->sun_path) {
		set_why(why, "unix socket path too long (at most 107 bytes)");
		return -1;
	}
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, path, n + 1);
	out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	return 0;
}

int addr_parse(const char *text, struct addr *out, const char **why)
{
	struct addr a;
	memset(&a, 0, sizeof a);
	if (text == NULL || *text == '\0') {
		set_why(why, "empty address");
		return -1;
	}
	if (strncmp(text, "unix:", 5) == 0) {
		if (parse_unix(text + 5, &a, why) < 0)
			return -1;
		*out = a;
		return 0;
	}

	char host[INET6_ADDRSTRLEN + 1];
	const char *port;
	int family;
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (close == NULL) {
			set_why(why, "missing ']' after an IPv6 address");
			return -1;
		}
		size_t n = (size_t)(close - text - 1);
		if (n == 0 || n >= sizeof host) {
			set_why(why, "invalid IPv6 address in brackets");
			return -1;
		}
		memcpy(host, text + 1, n);
		host[n] = '\0';
		if (close[1] != ':') {
			set_why(why, "missing ':port' after ']'");
			return -1;
		}
		port = close + 2;
		family = AF_INET6;
	} else {
		const char *colon = strrchr(text, ':');
		if (colon == NULL) {
			set_why(why, "missing ':port'");
			return -1;
		}
		if (memchr(text, ':', (size_t)(colon - text)) != NULL) {
			set_why(why, "an IPv6 address must be in brackets, e.g. \"[::1]:8080\"");
			return -1;
		}
		size_t n = (size_t)(colon - text);
		if (n == 0) {
			set_why(why, "missing host before ':port'");
			return -1;
		}
		if (n >= sizeof host) {
			set_why(why, "host must be a numeric IPv4 address (or an IPv6 address in brackets)");
			return -1;
		}
		memcpy(host, text, n);
		host[n] = '\0';
		port = colon + 1;
		family = AF_INET;
	}

	uint16_t p;
	if (parse_port(port, &p, why) < 0)
		return -1;

	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&a.ss;
		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
			set_why(why, "host must be a numeric IPv4 address (or an IPv6 address "
				"in brackets); names are not resolved here");
			return -1;
		}
		sin->sin_family = AF_INET;
		sin->sin_port = htons(p);
		a.len = sizeof *sin;
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a.ss;
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
			set_why(why, "invalid IPv6 address in brackets");
			return -1;
		}
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(p);
		a.len = sizeof *sin6;
	}
	*out = a;
	return 0;
}

/* Dotted quad, by hand: glibc's inet_ntop goes through sprintf, and every
 * forwarded request formats its client (X-Forwarded-For). */
static void format_ipv4(const struct in_addr *in, char *out)
{
	const unsigned char *b = (const unsigned char *)&in->s_addr;
	for (int i = 0; i < 4; i++) {
		unsigned v = b[i];
		if (v >= 100)
			*out++ = (char)('0' + v / 100);
		if (v >= 10)
			*out++ = (char)('0' + v / 10 % 10);
		*out++ = (char)('0' + v % 10);
		*out++ = i < 3 ? '.' : '\0';
	}
}

const char *addr_format_host(const struct sockaddr *sa, char *buf, size_t size)
{
	if (size == 0)
		return buf;
	buf[0] = '\0';
	if (sa == NULL)
		return buf;
	char tmp[INET6_ADDRSTRLEN] = "?";
	switch (sa->sa_family) {
	case AF_INET:
		format_ipv4(&((const struct sockaddr_in *)sa)->sin_addr, tmp);
		break;
	case AF_INET6:
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, tmp, sizeof tmp);
		break;
	case AF_UNIX:
		memcpy(tmp, "unix", 5);
		break;
	}
	size_t n = strlen(tmp);
	if (n >= size)
		n = size - 1;
	memcpy(buf, tmp, n);
	buf[n] = '\0';
	return buf;
}

const char *addr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t size)
{
	if (size == 0)
		return buf;
	buf[0] = '\0';
	if (sa == NULL || len < (socklen_t)sizeof(sa_family_t))
		return buf;
	char host[INET6_ADDRSTRLEN];
	switch (sa->sa_family) {
	case AF_INET: {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
		snprintf(buf, size, "%s:%u", host, ntohs(sin->sin_port));
		break;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host);
		snprintf(buf, size, "[%s]:%u", host, ntohs(sin6->sin6_port));
		break;
	}
	case AF_UNIX: {
		/* sun_path need not be terminated within LEN (unnamed or
		 * abstract sockets): print only what LEN covers. */
		const struct sockaddr_un *sun = (const struct sockaddr_un *)sa;
		size_t off = offsetof(struct sockaddr_un, sun_path);
		size_t n = (size_t)len > off ? (size_t)len - off : 0;
		if (n > sizeof sun->sun_path)
			n = sizeof sun->sun_path;
		n = strnlen(sun->sun_path, n);
		snprintf(buf, size, "unix:%.*s", (int)n, sun->sun_path);
		break;
	}
	default:
		snprintf(buf, size, "?");
		break;
	}
	return buf;
}

bool addr_is_loopback(const struct sockaddr *sa)
{
	if (sa == NULL)
		return false;
	if (sa->sa_family == AF_INET) {
		const uint8_t *b = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
		return b[0] == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_LOOPBACK(a))
			return true;
		return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
	}
	return false;
}

bool addr_is_unix(const struct addr *a)
{
	return a != NULL && a->len > 0 && a->ss.ss_family == AF_UNIX;
}

bool addr_equal(const struct addr *a, const struct addr *b)
{
	return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

/* ---- CIDR sets ---- */

static const uint8_t v4_mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* Clears every bit of NET past PREFIX. */
static void mask_host_bits(uint8_t *net, size_t bytes, int prefix)
{
	for (size_t i = 0; i < bytes; i++) {
		int keep = prefix - (int)(i * 8);
		if (keep >= 8)
			continue;
		net[i] &= keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
	}
}

int cidr_parse(const char *text, struct cidr *out, const char **why)
{
	if (text == NULL || *text == '\0') {
		set_why(why, "empty network");
		return -1;
	}
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(text, '/');
	size_t n = slash ? (size_t)(slash - text) : strlen(text);
	if (n == 0 || n >= sizeof host) {
		set_why(why, "expected a numeric address, e.g. \"10.0.0.0/8\" or \"::1/128\"");
		return -1;
	}
	memcpy(host, text, n);
	host[n] = '\0';

	struct cidr c;
	memset(&c, 0, sizeof c);
	int max;
	if (inet_pton(AF_INET, host, c.net) == 1) {
		c.family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, host, c.net) == 1) {
		c.family = AF_INET6;
		max = 128;
	} else {
		set_why(why, "not a numeric IPv4 or IPv6 address");
		return -1;
	}

	c.prefix = max;
	if (slash != NULL) {
		const char *p = slash + 1;
		if (*p == '\0') {
			set_why(why, "missing prefix length after '/'");
			return -1;
		}
		int v = 0;
		for (; *p != '\0'; p++) {
			if (*p < '0' || *p > '9') {
				set_why(why, "prefix length must be a number");
				return -1;
			}
			v = v * 10 + (*p - '0');
			if (v > max) {
				set_why(why, c.family == AF_INET ? "prefix length out of range (0-32)"
								 : "prefix length out of range (0-128)");
				return -1;
			}
		}
		c.prefix = v;
	}

	/* "::ffff:10.0.0.0/104" is an IPv4 network: store it as one so that
	 * plain IPv4 and mapped peers both match it. */
	if (c.family == AF_INET6 && c.prefix >= 96 &&
	    memcmp(c.net, v4_mapped_prefix, sizeof v4_mapped_prefix) == 0) {
		memmove(c.net, c.net + 12, 4);
		memset(c.net + 4, 0, 12);
		c.family = AF_INET;
		c.prefix -= 96;
	}
	mask_host_bits(c.net, sizeof c.net, c.prefix);
	*out = c;
	return 0;
}

static bool prefix_equal(const uint8_t *a, const uint8_t *b, int prefix)
{
	size_t full = (size_t)prefix / 8;
	if (memcmp(a, b, full) != 0)
		return false;
	int rest = prefix % 8;
	if (rest == 0)
		return true;
	uint8_t m = (uint8_t)(0xff << (8 - rest));
	return (a[full] & m) == (b[full] & m);
}

bool cidr_set_contains(const struct cidr_set *set, const struct sockaddr *sa)
{
	if (set == NULL || sa == NULL || set->n == 0)
		return false;

	/* The peer in both forms: V4 (if it is or maps an IPv4 address) and
	 * V6 (IPv4 peers as ::ffff:a.b.c.d, so that "::/0" covers them). */
	uint8_t v4[4], v6[16];
	bool has_v4 = false;
	if (sa->sa_family == AF_INET) {
		memcpy(v4, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		memcpy(v6, v4_mapped_prefix, 12);
		memcpy(v6 + 12, v4, 4);
		has_v4 = true;
	} else if (sa->sa_family == AF_INET6) {
		memcpy(v6, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		if (memcmp(v6, v4_mapped_prefix, 12) == 0) {
			memcpy(v4, v6 + 12, 4);
			has_v4 = true;
		}
	} else {
		return false;
	}

	for (size_t i = 0; i < set->n; i++) {
		const struct cidr *c = &set->v[i];
		if (c->family == AF_INET) {
			if (has_v4 && prefix_equal(v4, c->net, c->prefix))
				return true;
		} else if (c->family == AF_INET6) {
			if (prefix_equal(v6, c->net, c->prefix))
				return true;
		}
	}
	return false;
}

void cidr_set_free(struct cidr_set *set)
{
	if (set == NULL)
		return;
	free(set->v);
	set->v = NULL;
	set->n = 0;
}
