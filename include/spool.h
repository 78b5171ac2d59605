/* spool: the durable store of submissions accepted while their scope is in
 * maintenance, replayed in order when it leaves (CONTRACT.md, "Spool").
 * This module holds its config (the "spool" group); the store is
 * spool_store over the record format of spool_record, written by intake
 * (the data path) and read by replay. */
#ifndef CUTOVER_SPOOL_H
#define CUTOVER_SPOOL_H

#include <libconfig.h>
#include <stdint.h>

struct conf_reader;
struct config;

struct spool_conf {
	char *dir;                   /* NULL = no spool (required in the group) */
	uint64_t max_bytes, max_record_bytes;
	uint64_t segment_bytes;      /* a segment file is rotated past this */
	int response_status;         /* answer to a spooled submission (201) */
	char *response_body;         /* NULL = the built-in OpenRosa answer */
	/* The replay: the first retry's delay, doubling up to RETRY_MAX (with
	 * jitter; a Retry-After answer wins), at most MAX_ATTEMPTS sends. */
	double retry_min, retry_max;
	unsigned max_attempts;
};

/* Sets every field of C to its default (C holds nothing to free). */
void spool_conf_defaults(struct spool_conf *c);
/* Parses the top-level "spool" group into cfg->spool. */
int spool_conf_parse(struct conf_reader *r, const config_setting_t *s, struct config *cfg);
void spool_conf_free(struct spool_conf *c);
/* The first key a reload cannot change ("spool.dir", or a limit: the store
 * is opened once with them), or NULL. */
const char *spool_conf_restart_key(const struct spool_conf *a, const struct spool_conf *b);

#endif
