/* main: the command line. `run` starts the workers and keeps the control
 * thread for signals; `check` validates a config like `nginx -t`. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <event2/event.h>

#include "admin.h"
#include "config.h"
#include "conn.h"
#include "control.h"
#include "cli.h"
#include "fleet.h"
#include "log.h"
#include "notify.h"
#include "project.h"
#include "spool.h"
#include "spool_store.h"
#include "state.h"
#include "state_store.h"
#include "worker.h"

#define DEFAULT_CONFIG "/etc/cutover/cutover.conf"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: cutover COMMAND [options]\n"
		"\n"
		"  run -c FILE [--start-mode MODE]\n"
		"                    run the proxy in the foreground; --start-mode starts\n"
		"                    in MODE when the state file cannot be read\n"
		"  check -c FILE     validate a config; every error as FILE:LINE: message\n"
		"  --help            this text\n"
		"  --version         the version\n"
		"\n"
		"  status [--json]   modes, upstreams, in-flight requests, journal\n"
		"  switch old|new [--project P] [--reason TEXT] [--force] [--at TIME]\n"
		"  maintenance [on|off] [--project P] [--until TIME] [--reason TEXT]\n"
		"  hold [--project P] [--max SECONDS]   /   resume [--project P]\n"
		"  journal [-n N]    the audit trail of operator actions\n"
		"  spool ls [--project P] / spool retry ID   the spool and its dead letters\n"
		"  control commands take --admin ADDR (or CUTOVER_ADMIN), --json;\n"
		"  `cutover COMMAND --help` for details\n"
		"Default config: " DEFAULT_CONFIG "\n");
}

static const char *start_mode;

static const char *config_arg(int argc, char **argv)
{
	static const struct option opts[] = { { "config", required_argument, NULL, 'c' },
					      { "start-mode", required_argument, NULL, 's' },
					      { "help", no_argument, NULL, 'h' },
					      { NULL, 0, NULL, 0 } };
	const char *path = DEFAULT_CONFIG;
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 's':
			start_mode = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "cutover: unexpected argument '%s'\n", argv[optind]);
		exit(2);
	}
	return path;
}

static int cmd_check(int argc, char **argv)
{
	const char *path = config_arg(argc, argv);
	struct config *cfg = config_load(path, stderr);
	if (!cfg)
		return 1;
	config_free(cfg);
	printf("%s: configuration ok\n", path);
	return 0;
}

struct runtime {
	struct event_base *base;
	struct worker **workers;
	int n_workers;
	bool stopping;
	struct control *control;
};

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	struct runtime *rt = arg;
	if (rt->stopping)
		return;
	rt->stopping = true;
	double drain = control_config(rt->control)->limits->drain_timeout;
	log_info("signal %d: stopping (drain up to %.0fs)", (int)sig, drain);
	char line[96];
	snprintf(line, sizeof line, "stopping: draining up to %.0fs", drain);
	if (notify_stopping(line) < 0)
		log_warn("systemd: cannot send STOPPING=1 to NOTIFY_SOCKET");
	for (int i = 0; i < rt->n_workers; i++)
		worker_request_stop(rt->workers[i]);
	event_base_loopbreak(rt->base);
}

static void on_reopen_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	(void)arg;
	if (log_reopen() == 0)
		log_info("SIGUSR1: access log reopened");
}

static void on_reload_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	struct runtime *rt = arg;
	json_t *answer = NULL;
	int status = control_reload(rt->control, "SIGHUP", &answer);
	if (status != 200)
		log_error("SIGHUP: reload refused, the running config stays:\n%s",
			  json_string_value(json_object_get(answer, "error")) ?: "out of memory");
	json_decref(answer);
}

/* control reloads through these; it does not include config.h. */
static const struct control_config_ops config_ops = {
	.load = config_load,
	.free = config_free,
	.restart_needed = config_restart_needed,
};

/* Every loop here is epoll-based, so descriptors past 1024 are fine: take
 * the hard limit the way Go and systemd's advice do, so a default soft
 * limit of 1024 does not cap client connections (listener.c keeps a
 * reserve of it for upstreams and the admin). */
static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > (1u << 20) ? (1u << 20)
										 : rl.rlim_max;
	if (want > rl.rlim_cur) {
		rl.rlim_cur = want;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn("cannot raise RLIMIT_NOFILE to %llu: %m", (unsigned long long)want);
	}
}

/* The registry asks whether a project has its own mode, so that one is
 * never evicted nor refused an entry. */
static bool project_has_mode(const char *name, size_t len)
{
	return state_project(state_current(), name, len) != NULL;
}

/* Opens spool.dir with the config's limits; every damage a start cut out
 * is reported. NULL with the reason logged: the start is refused. */
static struct spool_store *open_spool(const struct spool_conf *sc)
{
	struct spool_store_opts o = {
		.dir = sc->dir,
		.max_bytes = sc->max_bytes,
		.max_record_bytes = sc->max_record_bytes,
		.segment_bytes = sc->segment_bytes,
	};
	struct spool_damage *damage;
	size_t n_damage;
	char why[512];
	struct spool_store *s = spool_store_open(&o, &damage, &n_damage, why, sizeof(why));
	if (!s) {
		log_error("cannot start: spool %s: %s", sc->dir, why);
		return NULL;
	}
	for (size_t i = 0; i < n_damage; i++)
		log_warn("spool %s: %s at offset %llu (%llu bytes): %s; quarantined as %s", sc->dir,
			 damage[i].segment, (unsigned long long)damage[i].offset,
			 (unsigned long long)damage[i].length, damage[i].reason,
			 damage[i].quarantine);
	free(damage);
	return s;
}

static int cmd_run(int argc, char **argv)
{
	const char *path = config_arg(argc, argv);
	/* No evthread_use_pthreads(): every event loop is used by its own
	 * thread only (workers are poked through an eventfd), so libevent runs
	 * without locks. */
	struct config *cfg = config_load(path, stderr);
	if (!cfg)
		return 1;
	if (log_open(cfg->log) < 0 ||
	    state_init(state_store_file_new(cfg->state->state_file), start_mode, stderr) < 0) {
		config_free(cfg);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	if (project_init(cfg->limits->projects, project_has_mode) < 0) {
		log_error("cannot start: out of memory");
		state_shutdown();
		config_free(cfg);
		return 1;
	}

	char fleet_why[256];
	if (fleet_open(cfg->fleet, cfg->state->state_file, fleet_why, sizeof fleet_why) < 0) {
		log_error("cannot start: %s", fleet_why);
		project_shutdown();
		state_shutdown();
		log_close();
		config_free(cfg);
		return 1;
	}
	struct spool_store *spool = NULL;
	if (cfg->spool->dir && !(spool = open_spool(cfg->spool))) {
		fleet_close();
		project_shutdown();
		state_shutdown();
		log_close();
		config_free(cfg);
		return 1;
	}

	struct runtime rt = { .n_workers = cfg->workers };
	rt.base = event_base_new();
	rt.workers = calloc((size_t)cfg->workers, sizeof(*rt.workers));
	int status = 0, started = 0;
	if (!rt.base || !rt.workers) {
		log_error("cannot start: out of memory");
		status = 1;
	}
	for (int i = 0; status == 0 && i < cfg->workers; i++) {
		rt.workers[i] = worker_new(i, cfg, spool);
		if (!rt.workers[i]) {
			status = 1;
			break;
		}
	}
	struct event *sigs[4] = { 0 };
	struct control *control = NULL;
	struct admin *admin = NULL;
	if (status == 0) {
		char why[512];
		control = control_new(rt.base, cfg, &config_ops, rt.workers, cfg->workers, spool,
				      why, sizeof(why));
		rt.control = control;
		admin = control ? admin_new(rt.base, cfg, control, why, sizeof(why)) : NULL;
		if (!admin) {
			log_error("%s", why);
			status = 1;
		}
	}
	if (status == 0) {
		sigs[0] = evsignal_new(rt.base, SIGTERM, on_stop_signal, &rt);
		sigs[1] = evsignal_new(rt.base, SIGINT, on_stop_signal, &rt);
		sigs[2] = evsignal_new(rt.base, SIGUSR1, on_reopen_signal, &rt);
		sigs[3] = evsignal_new(rt.base, SIGHUP, on_reload_signal, &rt);
		for (int i = 0; status == 0 && i < 4; i++) {
			if (!sigs[i] || evsignal_add(sigs[i], NULL) < 0) {
				log_error("cannot watch the signals (out of memory)");
				status = 1;
			}
		}
		for (; status == 0 && started < cfg->workers; started++) {
			if (worker_start(rt.workers[started]) < 0) {
				log_error("cannot start worker %d", started);
				status = 1;
				break;
			}
		}
		if (status == 0) {
			char line[96];
			snprintf(line, sizeof line, "running, global mode %s",
				 mode_name(state_current()->global.mode));
			log_info("cutover %s %s", CUTOVER_VERSION, line);
			/* Only now: the listeners and the admin socket accept, the
			 * workers run, so systemd's "started" means serving. */
			if (notify_ready(line) < 0)
				log_warn("systemd: cannot send READY=1 to NOTIFY_SOCKET");
			event_base_dispatch(rt.base);
		} else {
			for (int i = 0; i < started; i++)
				worker_request_stop(rt.workers[i]);
		}
	}
	for (int i = 0; i < started; i++)
		worker_join(rt.workers[i]);
	admin_free(admin);
	/* Writes still streaming were aborted by their connections' end; the
	 * ended ones become durable (or fail) now, their events reach the
	 * waiters, which the workers' ends drain. */
	if (spool)
		spool_store_flush(spool);
	for (int i = 0; rt.workers && i < cfg->workers; i++)
		worker_free(rt.workers[i]);
	control_free(control); /* after the workers: it owns reloaded configs */
	spool_store_close(spool);
	for (int i = 0; i < 4; i++)
		if (sigs[i])
			event_free(sigs[i]);
	free(rt.workers);
	if (rt.base)
		event_base_free(rt.base);
	if (status == 0)
		log_info("stopped");
	fleet_close(); /* after the workers: the last heartbeats are in the file */
	project_shutdown(); /* after the workers: they held entries */
	state_shutdown();
	log_close();
	config_free(cfg);
	libevent_global_shutdown();
	return status;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
		printf("cutover %s\n", CUTOVER_VERSION);
		return 0;
	}
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(cmd, "run") == 0)
		return cmd_run(argc - 1, argv + 1);
	if (strcmp(cmd, "check") == 0)
		return cmd_check(argc - 1, argv + 1);
	if (cli_is_command(cmd))
		return cli_main(argc - 1, argv + 1);
	if (cmd[0] == '-') {
		/* "cutover --admin ADDR status": control options may come first. */
		for (int i = 1; i < argc; i++) {
			if (argv[i][0] == '-') {
				bool takes_value = !strchr(argv[i], '=') &&
						   (strcmp(argv[i], "--admin") == 0 ||
						    strcmp(argv[i], "--token-file") == 0 ||
						    strcmp(argv[i], "--timeout") == 0);
				i += takes_value;
				continue;
			}
			if (!cli_is_command(argv[i]))
				break;
			char *command = argv[i];
			memmove(&argv[2], &argv[1], (size_t)(i - 1) * sizeof(*argv));
			argv[1] = command;
			return cli_main(argc - 1, argv + 1);
		}
	}
	fprintf(stderr, "cutover: unknown command '%s' (see cutover --help)\n", cmd);
	return 2;
}
