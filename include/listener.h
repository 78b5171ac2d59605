/* listener: the public listening sockets ("listen" list). Each worker opens
 * its own sockets with SO_REUSEPORT so connections spread across threads. */
#ifndef CUTOVER_LISTENER_H
#define CUTOVER_LISTENER_H

#include <libconfig.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/resource.h>
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

/* What keeps an accept loop from spinning when descriptors run out: after
 * an accept error the listener rests briefly (a listening socket stays
 * readable), and new client connections are refused while the descriptors
 * open reach a ceiling below RLIMIT_NOFILE, which keeps the rest for their
 * upstream connections and the admin. Trouble is logged once per interval
 * with a count. The admin listener uses it too, without the ceiling. */
struct evconnlistener;
struct listener_guard;

/* The ceiling for a descriptor limit NOFILE: 0 for none (unlimited). */
int listener_fd_ceiling(rlim_t nofile);
/* Guards EV on BASE; WHAT names it in the log ("accept"); CEILING: refuse
 * connections at the descriptor ceiling. NULL when out of memory. */
struct listener_guard *listener_guard_new(struct event_base *base, struct evconnlistener *ev,
					  const char *what, bool ceiling);
void listener_guard_free(struct listener_guard *g);
/* For EV's error callback: logs (rate-limited) and rests. */
void listener_guard_error(struct listener_guard *g);
/* For EV's accept callback: true if FD may be served; else FD is closed,
 * the refusal logged (rate-limited) and the listener rests. */
bool listener_guard_admit(struct listener_guard *g, int fd);
/* The owner's pause (max_connections): accepting resumes when neither
 * the owner nor the back-off holds it. */
void listener_guard_hold(struct listener_guard *g, bool hold);

#endif
