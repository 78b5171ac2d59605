/* addr: socket addresses as written in the config ("127.0.0.1:8080",
 * "[::1]:8080", "unix:/run/x.sock") and CIDR sets for trusted_proxies. */
#ifndef CUTOVER_ADDR_H
#define CUTOVER_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct addr {
	struct sockaddr_storage ss;
	socklen_t len;            /* 0 = unset */
};

/* Parses "host:port", "[v6]:port" (numeric hosts only) or "unix:/path".
 * Returns 0, or -1 with a static reason in *why. */
int addr_parse(const char *text, struct addr *out, const char **why);
/* "127.0.0.1:8080", "[::1]:8080" or "unix:/path" into BUF. */
const char *addr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t size);
/* Numeric host only, no port ("127.0.0.1", "::1"). */
const char *addr_format_host(const struct sockaddr *sa, char *buf, size_t size);
bool addr_is_loopback(const struct sockaddr *sa);
bool addr_is_unix(const struct addr *a);
/* The same address (two unset ones are equal). */
bool addr_equal(const struct addr *a, const struct addr *b);

struct cidr {
	int family;               /* AF_INET or AF_INET6 */
	uint8_t net[16];
	int prefix;
};

struct cidr_set {
	struct cidr *v;
	size_t n;
};

/* "10.0.0.0/8", "::1/128", or a bare address (full-length prefix). */
int cidr_parse(const char *text, struct cidr *out, const char **why);
/* IPv4-mapped IPv6 peers match IPv4 entries. */
bool cidr_set_contains(const struct cidr_set *set, const struct sockaddr *sa);
void cidr_set_free(struct cidr_set *set);

#endif
