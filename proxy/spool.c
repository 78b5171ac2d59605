/* spool: the "spool" group. The store itself is spool_store (segments,
 * recovery, group commit) over spool_record (the on-disk format). */
#include "spool.h"

#include <stdlib.h>

#include "conf.h"

void spool_conf_defaults(struct spool_conf *c)
{
	*c = (struct spool_conf){
		.max_bytes = 1ULL << 30,
		.max_record_bytes = 32ULL << 20,
		.segment_bytes = 64ULL << 20,
		.response_status = 201,
		.retry_min = 1,
		.retry_max = 300,
		.max_attempts = 20,
	};
}

int spool_conf_parse(struct conf_reader *r, const config_setting_t *s, struct config *cfg)
{
	static const char *const keys[] = { "dir", "max_bytes", "max_record_bytes",
					    "segment_bytes", "response_status", "response_body",
					    "retry_min", "retry_max", "max_attempts", NULL };
	int ok = conf_check_keys(r, s, keys) ? 0 : -1;
	if (!config_setting_is_group(s))
		return -1;
	struct spool_conf *sp = cfg->spool;

	int rc = conf_get_path(r, s, "dir", &sp->dir);
	if (rc < 0)
		ok = -1;
	else if (rc == 0) {
		conf_error(r, s, "spool: missing required key 'dir'");
		ok = -1;
	}

	int a = conf_get_size(r, s, "max_bytes", 1, UINT64_MAX, &sp->max_bytes);
	int b = conf_get_size(r, s, "max_record_bytes", 1, UINT64_MAX, &sp->max_record_bytes);
	if (a < 0 || b < 0)
		ok = -1;
	else if (b == 0 && sp->max_record_bytes > sp->max_bytes)
		/* The contract: a small max_bytes lowers the default, it is no error. */
		sp->max_record_bytes = sp->max_bytes;
	else if (sp->max_record_bytes > sp->max_bytes) {
		char x[32], y[32];
		const config_setting_t *at =
			config_setting_get_member(s, "max_record_bytes");
		conf_error(r, at, "spool: max_record_bytes (%s) is greater than max_bytes (%s)",
			   conf_size_text(sp->max_record_bytes, x, sizeof x),
			   conf_size_text(sp->max_bytes, y, sizeof y));
		ok = -1;
	}

	/* A segment is the unit of reclamation: small enough to be freed soon
	 * after its records are delivered, big enough to hold a whole record. */
	if (conf_get_size(r, s, "segment_bytes", 64 << 10, 1ULL << 40, &sp->segment_bytes) < 0)
		ok = -1;

	long long status = sp->response_status;
	rc = conf_get_int(r, s, "response_status", 200, 299, &status);
	if (rc < 0)
		ok = -1;
	else
		sp->response_status = (int)status;
	if (conf_get_string(r, s, "response_body", &sp->response_body) < 0)
		ok = -1;

	if (conf_get_duration(r, s, "retry_min", 0.01, 86400, &sp->retry_min) < 0 ||
	    conf_get_duration(r, s, "retry_max", 0.01, 86400, &sp->retry_max) < 0)
		ok = -1;
	else if (sp->retry_max < sp->retry_min) {
		const config_setting_t *at = config_setting_get_member(s, "retry_max");
		conf_error(r, at ? at : s, "spool: retry_max (%g) is smaller than retry_min (%g)", sp->retry_max,
			   sp->retry_min);
		ok = -1;
	}
	long long attempts = sp->max_attempts;
	if (conf_get_int(r, s, "max_attempts", 1, 1000000, &attempts) < 0)
		ok = -1;
	else
		sp->max_attempts = (unsigned)attempts;
	return ok;
}

void spool_conf_free(struct spool_conf *c)
{
	free(c->dir);
	free(c->response_body);
	c->dir = c->response_body = NULL;
}

const char *spool_conf_restart_key(const struct spool_conf *a, const struct spool_conf *b)
{
	if (!conf_str_equal(a->dir, b->dir))
		return "spool.dir";
	if (a->max_bytes != b->max_bytes)
		return "spool.max_bytes";
	if (a->max_record_bytes != b->max_record_bytes)
		return "spool.max_record_bytes";
	if (a->segment_bytes != b->segment_bytes)
		return "spool.segment_bytes";
	return NULL;
}
