/* config: loads one libconfig file into an immutable struct config.
 *
 * config.c owns the top-level dispatch; each group is parsed by the module
 * that owns it (listener_conf_parse(), upstream_conf_parse(), ...) through
 * the reader of conf.h, so every error is reported as "FILE:LINE: message"
 * and parsing goes on to find the rest of them. */
#ifndef CUTOVER_CONFIG_H
#define CUTOVER_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "addr.h"
#include "admin.h"
#include "conf.h"
#include "dns.h"
#include "forward.h"
#include "conn.h"
#include "listener.h"
#include "log.h"
#include "maintenance.h"
#include "route.h"
#include "spool.h"
#include "state.h"
#include "upstream.h"

struct config {
	char *path;
	struct listen_conf *listen;
	size_t n_listen;
	struct admin_conf admin;
	struct upstream_conf upstream[UPSTREAM_COUNT];
	struct dns_conf dns;
	struct route_table *routes;
	struct maintenance_conf maintenance;
	struct spool_conf spool;
	struct state_conf state;
	struct log_conf log;
	struct limits_conf limits;
	struct forward_conf forward;
	int workers;
};

/* Loads and validates PATH. On failure returns NULL after printing every
 * error, one "FILE:LINE: message" per line, to ERRS. Warnings are printed
 * too but do not fail the load. */
struct config *config_load(const char *path, FILE *errs);
/* Same, from a string in memory (tests); NAME stands for the file name in
 * messages ("NAME:LINE: message"). */
struct config *config_load_string(const char *text, const char *name, FILE *errs);
void config_free(struct config *cfg);

#endif
