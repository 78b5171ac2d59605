/* fleet: the unsent-form backlog of the devices, from CommCare's hourly
 * heartbeat (GET /a/<domain>/phone/heartbeat/<app>/?device_id=...&
 * num_unsent_forms=N...; CONTRACT.md, "What mobile clients need"): the
 * latest value per device, summed per project, for status
 * (projects.<p>.unsent_forms, devices), /metrics and the dashboard. The
 * number the team watches fall after cutover.
 *
 * One process-wide table, bounded by fleet.max_devices (a device beyond it
 * is counted as dropped, never evicting one that reported); devices not
 * heard from for fleet.forget_after are forgotten. It survives reloads (it
 * is not config) and restarts (fleet.file, written off the data path by
 * the control thread). A heartbeat takes one mutex: once an hour per
 * device, it is not the hot path. */
#ifndef CUTOVER_FLEET_H
#define CUTOVER_FLEET_H

#include <libconfig.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct conf_reader;
struct config;

struct fleet_conf {
	char *file;                  /* NULL: fleet.json beside state_file */
	double forget_after;         /* seconds (default 72 h) */
	uint64_t max_devices;        /* default 100000 */
};

void fleet_conf_defaults(struct fleet_conf *c);
int fleet_conf_parse(struct conf_reader *r, const config_setting_t *s, struct config *cfg);
void fleet_conf_free(struct fleet_conf *c);
/* "fleet.file" when it changed (the table is read once, at start). */
const char *fleet_conf_restart_key(const struct fleet_conf *a, const struct fleet_conf *b);

/* Loads the table from C's file (STATE_FILE's directory when C->file is
 * NULL); a missing file is an empty fleet, a damaged one is logged and
 * what could be read is kept. 0, or -1 with WHY (out of memory). */
int fleet_open(const struct fleet_conf *c, const char *state_file, char *why, size_t why_len);
/* A reload: the new bounds apply from the next heartbeat and sweep. */
void fleet_set_conf(const struct fleet_conf *c);
/* Saves (if changed) and frees the table. */
void fleet_close(void);

/* The data path, after routing: QUERY[0..QLEN) of a heartbeat of PROJECT.
 * Ignored when the table is not open, the project empty or the query has
 * no device_id and num_unsent_forms. */
void fleet_heartbeat(const char *project, size_t plen, const char *query, size_t qlen, time_t now);
/* Whether PATH[0..LEN) is a heartbeat's ("/phone/heartbeat/" in it). */
int fleet_is_heartbeat(const char *path, size_t len);

/* The control thread, every few seconds: forgets devices not heard from
 * for forget_after and writes the file when the table changed (at most
 * every SAVE_EVERY seconds). */
void fleet_maintain(time_t now, double save_every);

struct fleet_totals {
	uint64_t unsent_forms;
	uint64_t devices;
};
/* Calls FN for every project with devices (under the table's lock: FN
 * must not call back into fleet). */
void fleet_each(void (*fn)(void *arg, const char *project, const struct fleet_totals *t),
		void *arg);
struct fleet_stats {
	uint64_t devices, limit;
	uint64_t dropped;            /* heartbeats of new devices past max_devices */
	uint64_t refused;            /* heartbeat queries that did not parse */
	uint64_t forgotten;
};
void fleet_stats(struct fleet_stats *s);

#endif
