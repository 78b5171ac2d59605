/* listener: the public listening sockets ("listen" list). Each worker opens
 * its own sockets with SO_REUSEPORT so connections spread across threads. */
#ifndef CUTOVER_LISTENER_H
#define CUTOVER_LISTENER_H

#include <libconfig.h>
#include <stdbool.h>
#include <stddef.h>

#include "addr.h"
#include "tls.h"

struct conf_reader;
struct config;
struct worker;

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

struct listener;

/* Opens, binds and listens on every configured address for worker W.
 * Returns 0 or -1 after logging which address failed and why. */
int listener_open_all(struct worker *w);
void listener_close_all(struct worker *w);
/* Stop/start accepting (max_connections reached, graceful stop). */
void listener_pause_all(struct worker *w, bool pause);

#endif
