/* listener: the public listening sockets ("listen" list). Each worker opens
 * its own sockets with SO_REUSEPORT so connections spread across threads. */
#ifndef CUTOVER_LISTENER_H
#define CUTOVER_LISTENER_H

#include <libconfig.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "addr.h"
#include "tls.h"

struct conf_reader;
struct config;

struct listen_conf {
	struct addr address;
	struct tls_listen_conf *tls;  /* NULL: plain HTTP */
	int line;
};

int listener_conf_parse(struct conf_reader *r, const config_setting_t *s, struct config *cfg);
void listener_conf_free(struct listen_conf *l);
/* "listen" if the addresses of A[N_A] and B[N_B] differ (a reload cannot
 * reopen the sockets), else NULL. */
const char *listener_conf_restart_key(const struct listen_conf *a, size_t n_a,
				      const struct listen_conf *b, size_t n_b);

struct event_base;
struct listener_set;

/* Called for each accepted connection (FD non-blocking, the caller's) on
 * the address listen[INDEX]. */
typedef void (*listener_accept_fn)(void *arg, int fd, const struct sockaddr *peer, socklen_t len,
				   size_t index);

/* Opens, binds and listens on the N addresses of LISTEN on BASE
 * (REUSEPORT: several workers share them; SAY: log each address). NULL
 * after logging which address failed and why. */
struct listener_set *listener_open_all(struct event_base *base, const struct listen_conf *listen,
				       size_t n, bool reuseport, bool say, listener_accept_fn accept,
				       void *arg);
void listener_close_all(struct listener_set *set);
/* Stop/start accepting (max_connections reached). */
void listener_pause_all(struct listener_set *set, bool pause);

#endif
