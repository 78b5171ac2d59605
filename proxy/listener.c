/* listener: public listening sockets, one set per worker. */
#include "listener.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "conf.h"
#include "duration.h"
#include "log.h"

/* After an accept error, or a connection refused at the descriptor
 * ceiling, a listener rests this long instead of retrying at once (a
 * listening socket stays readable: retrying at once spins). */
#define ACCEPT_BACKOFF_SECONDS 0.1
/* Accept trouble is logged at most once per this many seconds. */
#define ACCEPT_LOG_INTERVAL 10.0
/* Descriptors kept apart from client and upstream connections: the admin
 * API (64 connections), logs, state and journal files, DNS, event loops. */
#define FD_RESERVE 128

struct listener_guard {
	struct evconnlistener *ev;
	struct event *timer;
	const char *what;             /* "accept", "admin accept" */
	int ceiling;                  /* a client fd at or above it is refused; 0: none */
	rlim_t nofile;                /* RLIMIT_NOFILE it was computed from */
	bool held;                    /* paused by its owner (max_connections) */
	bool resting;                 /* paused for the back-off */
	struct log_every errors, shed;
};

struct listener {
	struct evconnlistener *ev;
	struct listener_guard *guard;
	struct listener_set *set;
	size_t index;                 /* in listen[]: a reload keeps the addresses */
};

struct listener_set {
	struct listener **v;
	size_t n;
	listener_accept_fn accept;
	void *arg;
};

int listener_conf_parse(struct conf_reader *r, const config_setting_t *s, struct config *cfg)
{
	if (!config_setting_is_list(s) && !config_setting_is_array(s)) {
		conf_error(r, s, "listen: expected a list ( { address = \"host:port\"; }, ... )");
		return -1;
	}
	unsigned n = (unsigned)config_setting_length(s);
	cfg->listen = calloc(n ? n : 1, sizeof(*cfg->listen));
	int status = 0;
	for (unsigned i = 0; i < n; i++) {
		static const char *const keys[] = { "address", "tls", NULL };
		const config_setting_t *e = config_setting_get_elem(s, i);
		if (!config_setting_is_group(e)) {
			conf_error(r, e, "listen.[%u]: expected a group { address = \"host:port\"; }", i);
			status = -1;
			continue;
		}
		if (!conf_check_keys(r, e, keys))
			status = -1;
		struct tls_listen_conf *tls = NULL;
		const config_setting_t *ts = config_setting_get_member(e, "tls");
		if (ts) {
			char where[48];
			snprintf(where, sizeof(where), "listen.[%u].tls", i);
			tls = calloc(1, sizeof(*tls));
			if (!tls || tls_listen_conf_parse(r, ts, where, tls) < 0) {
				status = -1;
				if (tls)
					tls_listen_conf_free(tls);
				free(tls);
				tls = NULL;
			}
		}
		char *text = NULL;
		int rc = conf_get_string(r, e, "address", &text);
		if (rc == 0) {
			conf_error(r, e, "listen.[%u]: missing required key 'address'", i);
			status = -1;
		} else if (rc > 0) {
			const char *why = NULL;
			struct listen_conf *l = &cfg->listen[cfg->n_listen];
			if (addr_parse(text, &l->address, &why) < 0 || addr_is_unix(&l->address)) {
				conf_error(r, config_setting_get_member(e, "address"),
					   "listen.[%u].address '%s': %s", i, text,
					   why ? why : "expected host:port");
				status = -1;
			} else {
				l->line = config_setting_source_line(e);
				l->tls = tls;
				tls = NULL;
				cfg->n_listen++;
			}
		} else {
			status = -1;
		}
		free(text);
		if (tls) {
			tls_listen_conf_free(tls);
			free(tls);
		}
	}
	return status;
}

void listener_conf_free(struct listen_conf *l)
{
	if (l->tls) {
		tls_listen_conf_free(l->tls);
		free(l->tls);
		l->tls = NULL;
	}
}

const char *listener_conf_restart_key(const struct listen_conf *a, size_t n_a,
				      const struct listen_conf *b, size_t n_b)
{
	/* Every worker opened its sockets at start; certificates may change. */
	if (n_a != n_b)
		return "listen";
	for (size_t i = 0; i < n_a; i++)
		if (!addr_equal(&a[i].address, &b[i].address))
			return "listen";
	return NULL;
}

/* ---- the guard: back-off and descriptor ceiling ---- */

int listener_fd_ceiling(rlim_t nofile)
{
	if (nofile == RLIM_INFINITY || nofile > INT_MAX)
		return 0;
	/* Each client connection may need an upstream one: half of what is
	 * left after the reserve (HAProxy's maxconn arithmetic). */
	rlim_t reserve = nofile / 2 < FD_RESERVE ? nofile / 2 : FD_RESERVE;
	int c = (int)((nofile - reserve) / 2);
	return c > 0 ? c : 1;
}

static void guard_wake(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct listener_guard *g = arg;
	g->resting = false;
	if (!g->held)
		evconnlistener_enable(g->ev);
}

static void guard_rest(struct listener_guard *g)
{
	if (g->resting)
		return;
	g->resting = true;
	evconnlistener_disable(g->ev);
	struct timeval tv = duration_tv(ACCEPT_BACKOFF_SECONDS);
	evtimer_add(g->timer, &tv);
}

struct listener_guard *listener_guard_new(struct event_base *base, struct evconnlistener *ev,
					  const char *what, bool ceiling)
{
	struct listener_guard *g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->ev = ev;
	g->what = what;
	if (!(g->timer = evtimer_new(base, guard_wake, g))) {
		free(g);
		return NULL;
	}
	struct rlimit rl;
	if (ceiling && getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		g->nofile = rl.rlim_cur;
		g->ceiling = listener_fd_ceiling(rl.rlim_cur);
	}
	return g;
}

void listener_guard_free(struct listener_guard *g)
{
	if (!g)
		return;
	event_free(g->timer);
	free(g);
}

void listener_guard_error(struct listener_guard *g)
{
	int err = EVUTIL_SOCKET_ERROR();
	/* Out of descriptors (EMFILE, ENFILE) or memory: the connections we
	 * have keep being served; new ones wait in the backlog meanwhile. */
	guard_rest(g);
	unsigned long n;
	if (log_every_due(&g->errors, ACCEPT_LOG_INTERVAL, &n))
		log_error("%s: %s: pausing accept for %.0f ms at a time (%lu time%s in the last "
			  "%.0f s)", g->what, evutil_socket_error_to_string(err),
			  ACCEPT_BACKOFF_SECONDS * 1000, n, n == 1 ? "" : "s", ACCEPT_LOG_INTERVAL);
}

bool listener_guard_admit(struct listener_guard *g, int fd)
{
	/* Descriptors are numbered lowest free first: FD at the ceiling means
	 * that many are open, and the rest is for upstreams and the admin. */
	if (!g->ceiling || fd < g->ceiling)
		return true;
	close(fd);
	guard_rest(g);
	unsigned long n;
	if (log_every_due(&g->shed, ACCEPT_LOG_INTERVAL, &n))
		log_warn("%s: %d descriptors open, the rest of RLIMIT_NOFILE (%llu) is kept for "
			 "upstream connections and the admin: closing new connections (%lu in the "
			 "last %.0f s)", g->what, g->ceiling, (unsigned long long)g->nofile, n,
			 ACCEPT_LOG_INTERVAL);
	return false;
}

void listener_guard_hold(struct listener_guard *g, bool hold)
{
	g->held = hold;
	if (hold)
		evconnlistener_disable(g->ev);
	else if (!g->resting)
		evconnlistener_enable(g->ev);
}

/* ---- the public listeners ---- */

static void accept_cb(struct evconnlistener *ev, evutil_socket_t fd, struct sockaddr *sa,
		      int len, void *arg)
{
	(void)ev;
	struct listener *l = arg;
	if (!listener_guard_admit(l->guard, fd))
		return;
	l->set->accept(l->set->arg, fd, sa, (socklen_t)len, l->index);
}

static void accept_error_cb(struct evconnlistener *ev, void *arg)
{
	(void)ev;
	struct listener *l = arg;
	listener_guard_error(l->guard);
}

static int open_one(struct event_base *base, const struct listen_conf *lc, bool reuseport,
		    bool say, struct listener *l)
{
	char where[80];
	const struct sockaddr *sa = (const struct sockaddr *)&lc->address.ss;
	addr_format(sa, lc->address.len, where, sizeof(where));
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_error("listen %s: socket: %s", where, strerror(errno));
		return -1;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* Several workers share the port; a single worker must not, so that a
	 * port already taken is an error instead of a silent share. */
	if (reuseport)
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (sa->sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, sa, lc->address.len) < 0 || listen(fd, 1024) < 0) {
		log_error("listen %s: %s", where, strerror(errno));
		close(fd);
		return -1;
	}
	l->ev = evconnlistener_new(base, accept_cb, l, LEV_OPT_CLOSE_ON_FREE, -1, fd);
	if (!l->ev) {
		log_error("listen %s: cannot create the listener", where);
		close(fd);
		return -1;
	}
	evconnlistener_set_error_cb(l->ev, accept_error_cb);
	if (!(l->guard = listener_guard_new(base, l->ev, "accept", true))) {
		log_error("listen %s: out of memory", where);
		evconnlistener_free(l->ev);
		l->ev = NULL;
		return -1;
	}
	if (say)
		log_info("listening on %s", where);
	return 0;
}

struct listener_set *listener_open_all(struct event_base *base, const struct listen_conf *listen,
				       size_t n, bool reuseport, bool say, listener_accept_fn accept,
				       void *arg)
{
	struct listener_set *set = calloc(1, sizeof(*set));
	if (!set || !(set->v = calloc(n ? n : 1, sizeof(*set->v)))) {
		log_error("listen: out of memory");
		free(set);
		return NULL;
	}
	set->accept = accept;
	set->arg = arg;
	struct rlimit rl;
	if (say && getrlimit(RLIMIT_NOFILE, &rl) == 0 && listener_fd_ceiling(rl.rlim_cur)) {
		int c = listener_fd_ceiling(rl.rlim_cur);
		/* A low limit caps the connections more than max_connections does. */
		if (c < 1024)
			log_warn("RLIMIT_NOFILE is %llu: client connections are accepted while fewer "
				 "than %d descriptors are open (raise it with ulimit -n or "
				 "LimitNOFILE=)", (unsigned long long)rl.rlim_cur, c);
		else
			log_info("RLIMIT_NOFILE is %llu: client connections are accepted while "
				 "fewer than %d descriptors are open", (unsigned long long)rl.rlim_cur, c);
	}
	for (size_t i = 0; i < n; i++) {
		struct listener *l = calloc(1, sizeof(*l));
		if (l) {
			l->index = i;
			l->set = set;
		}
		if (!l || open_one(base, &listen[i], reuseport, say, l) < 0) {
			free(l);
			listener_close_all(set);
			return NULL;
		}
		set->v[set->n++] = l;
	}
	return set;
}

void listener_close_all(struct listener_set *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->n; i++) {
		evconnlistener_free(set->v[i]->ev);
		listener_guard_free(set->v[i]->guard);
		free(set->v[i]);
	}
	free(set->v);
	free(set);
}

void listener_pause_all(struct listener_set *set, bool pause)
{
	for (size_t i = 0; set && i < set->n; i++)
		listener_guard_hold(set->v[i]->guard, pause);
}
