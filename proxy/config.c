/* config: reads one libconfig file, sets every default, then hands each
 * top-level key to the module that owns it (the table in config_parse_root()).
 * Errors are collected with their file and line, sorted into file order and
 * printed together, so one `cutover check` run shows all of them. */

#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "forward.h"
#include "listener.h"
#include "log.h"
#include "maintenance.h"
#include "route.h"
#include "state.h"
#include "upstream.h"
#include "worker.h"

/* ---- the reader: file name and collected messages ---- */

struct conf_msg {
	char *file;
	unsigned line;
	size_t seq;          /* discovery order, to keep the sort stable */
	char *text;          /* the whole "FILE:LINE: message" line */
};

struct conf_reader {
	const char *path;
	const char *include_dir;  /* where @include names are relative to */
	struct conf_msg *msgs;
	size_t n_msgs, cap_msgs;
	unsigned errors, warnings;
	bool lost;           /* a message could not be stored (out of memory) */
};

/* The file and line of AT, or of the nearest ancestor that has them
 * (libconfig leaves the root at line 0, and strings read from memory have
 * no file). */
static void conf_locate(const struct conf_reader *r, const config_setting_t *at,
			const char **file, unsigned *line)
{
	*file = NULL;
	*line = 0;
	for (const config_setting_t *s = at; s != NULL; s = config_setting_parent(s)) {
		if (*file == NULL && config_setting_source_file(s) != NULL)
			*file = config_setting_source_file(s);
		if (*line == 0)
			*line = config_setting_source_line(s);
		if (*file != NULL && *line != 0)
			break;
	}
	if (*file == NULL)
		*file = r->path;
	if (*line == 0)
		*line = 1;
}

/* libconfig names an @include'd file as written in the directive, relative
 * to the including file's directory: show it as a path from here. */
static const char *shown_file(const char *path, const char *include_dir, const char *file,
			      char *buf, size_t len)
{
	if (include_dir == NULL || strcmp(include_dir, ".") == 0 || file[0] == '/' ||
	    strcmp(file, path) == 0)
		return file;
	snprintf(buf, len, "%s/%s", include_dir, file);
	return buf;
}

static void conf_vreport(struct conf_reader *r, const config_setting_t *at, bool warning,
			 const char *fmt, va_list ap)
{
	if (warning)
		r->warnings++;
	else
		r->errors++;

	const char *file;
	unsigned line;
	conf_locate(r, at, &file, &line);

	char msg[1024];
	vsnprintf(msg, sizeof msg, fmt, ap);

	char joined[PATH_MAX];
	file = shown_file(r->path, r->include_dir, file, joined, sizeof joined);

	if (r->n_msgs == r->cap_msgs) {
		size_t cap = r->cap_msgs ? r->cap_msgs * 2 : 16;
		struct conf_msg *v = realloc(r->msgs, cap * sizeof *v);
		if (v == NULL) {
			r->lost = true;
			return;
		}
		r->msgs = v;
		r->cap_msgs = cap;
	}
	struct conf_msg *m = &r->msgs[r->n_msgs];
	m->file = strdup(file);
	m->line = line;
	m->seq = r->n_msgs;
	if (m->file == NULL ||
	    asprintf(&m->text, "%s:%u: %s%s", file, line, warning ? "warning: " : "", msg) < 0) {
		free(m->file);
		r->lost = true;
		return;
	}
	r->n_msgs++;
}

void conf_error(struct conf_reader *r, const config_setting_t *at, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	conf_vreport(r, at, false, fmt, ap);
	va_end(ap);
}

void conf_warn(struct conf_reader *r, const config_setting_t *at, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	conf_vreport(r, at, true, fmt, ap);
	va_end(ap);
}

static int conf_msg_cmp(const void *a, const void *b)
{
	const struct conf_msg *x = a, *y = b;
	int c = strcmp(x->file, y->file);
	if (c != 0)
		return c;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Prints every message in file order, then forgets them. */
static void conf_reader_flush(struct conf_reader *r, FILE *errs)
{
	if (r->n_msgs > 1)
		qsort(r->msgs, r->n_msgs, sizeof *r->msgs, conf_msg_cmp);
	for (size_t i = 0; i < r->n_msgs; i++) {
		if (errs != NULL)
			fprintf(errs, "%s\n", r->msgs[i].text);
		free(r->msgs[i].file);
		free(r->msgs[i].text);
	}
	if (r->lost && errs != NULL)
		fprintf(errs, "%s: out of memory: some messages were lost\n", r->path);
	free(r->msgs);
	r->msgs = NULL;
	r->n_msgs = r->cap_msgs = 0;
}

/* ---- where a setting is ---- */

const char *conf_where(const config_setting_t *s, char *buf, size_t len)
{
	if (len == 0)
		return buf;
	buf[0] = '\0';
	if (s == NULL)
		return buf;

	/* Settings only know their parent: collect the chain up to the root,
	 * then print it top-down. */
	const config_setting_t *chain[64];
	size_t depth = 0;
	for (const config_setting_t *p = s; p != NULL && !config_setting_is_root(p);
	     p = config_setting_parent(p)) {
		if (depth == sizeof chain / sizeof chain[0])
			break;
		chain[depth++] = p;
	}

	size_t used = 0;
	for (size_t i = depth; i-- > 0;) {
		const config_setting_t *p = chain[i];
		const char *sep = used > 0 ? "." : "";
		int n;
		if (config_setting_name(p) != NULL)
			n = snprintf(buf + used, len - used, "%s%s", sep, config_setting_name(p));
		else
			n = snprintf(buf + used, len - used, "%s[%d]", sep, config_setting_index(p));
		if (n < 0 || (size_t)n >= len - used)
			break;           /* truncated: snprintf left it terminated */
		used += (size_t)n;
	}
	return buf;
}

#define WHERE(s) conf_where((s), (char[256]){0}, 256)

static const char *type_name(const config_setting_t *s)
{
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_GROUP:  return "a group";
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:  return "an integer";
	case CONFIG_TYPE_FLOAT:  return "a float";
	case CONFIG_TYPE_STRING: return "a string";
	case CONFIG_TYPE_BOOL:   return "a boolean";
	case CONFIG_TYPE_ARRAY:  return "an array";
	case CONFIG_TYPE_LIST:   return "a list";
	default:                 return "unknown";
	}
}

/* ---- unknown keys ---- */

/* Levenshtein distance, for "did you mean" on short key names. */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 63 || lb > 63)
		return SIZE_MAX;
	size_t row[64];
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);
			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

static const char *closest_key(const char *name, const char *const allowed[])
{
	const char *best = NULL;
	size_t best_d = 3;       /* suggest only close misspellings */
	for (size_t i = 0; allowed[i] != NULL; i++) {
		size_t d = edit_distance(name, allowed[i]);
		if (d < best_d && d < strlen(allowed[i])) {
			best = allowed[i];
			best_d = d;
		}
	}
	return best;
}

bool conf_check_keys(struct conf_reader *r, const config_setting_t *group,
		     const char *const allowed[])
{
	if (group == NULL)
		return true;
	if (!config_setting_is_group(group)) {
		conf_error(r, group, "%s: expected a group { ... }, not %s",
			   WHERE(group), type_name(group));
		return false;
	}
	bool ok = true;
	int n = config_setting_length(group);
	for (int i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(group, (unsigned)i);
		const char *name = config_setting_name(m);
		bool known = false;
		for (size_t k = 0; allowed[k] != NULL && !known; k++)
			known = strcmp(name, allowed[k]) == 0;
		if (known)
			continue;
		ok = false;
		const char *hint = closest_key(name, allowed);
		char did[96] = "";
		if (hint != NULL)
			snprintf(did, sizeof did, " (did you mean '%s'?)", hint);
		if (config_setting_is_root(group))
			conf_error(r, m, "unknown top-level key '%s'%s", name, did);
		else
			conf_error(r, m, "unknown key '%s' in %s%s", name, WHERE(group), did);
	}
	return ok;
}

/* ---- typed getters ---- */

static const config_setting_t *member(const config_setting_t *group, const char *key)
{
	if (group == NULL || !config_setting_is_group(group))
		return NULL;
	return config_setting_get_member(group, key);
}

int conf_get_string(struct conf_reader *r, const config_setting_t *group,
		    const char *key, char **out)
{
	const config_setting_t *s = member(group, key);
	if (s == NULL)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		conf_error(r, s, "%s: expected a string, not %s", WHERE(s), type_name(s));
		return -1;
	}
	char *copy = strdup(config_setting_get_string(s));
	if (copy == NULL) {
		conf_error(r, s, "%s: out of memory", WHERE(s));
		return -1;
	}
	free(*out);
	*out = copy;
	return 1;
}

int conf_get_bool(struct conf_reader *r, const config_setting_t *group,
		  const char *key, bool *out)
{
	const config_setting_t *s = member(group, key);
	if (s == NULL)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
		conf_error(r, s, "%s: expected a boolean (true or false), not %s",
			   WHERE(s), type_name(s));
		return -1;
	}
	*out = config_setting_get_bool(s) != 0;
	return 1;
}

static bool is_integer(const config_setting_t *s)
{
	return config_setting_type(s) == CONFIG_TYPE_INT || config_setting_type(s) == CONFIG_TYPE_INT64;
}

int conf_get_int(struct conf_reader *r, const config_setting_t *group,
		 const char *key, long long min, long long max, long long *out)
{
	const config_setting_t *s = member(group, key);
	if (s == NULL)
		return 0;
	if (!is_integer(s)) {
		conf_error(r, s, "%s: expected an integer, not %s", WHERE(s), type_name(s));
		return -1;
	}
	long long v = config_setting_get_int64(s);
	if (v < min || v > max) {
		conf_error(r, s, "%s: %lld is out of range [%lld, %lld]", WHERE(s), v, min, max);
		return -1;
	}
	*out = v;
	return 1;
}

/* "1G", "32M", "4096" for messages: the largest exact unit. */
static const char *size_text(uint64_t v, char *buf, size_t len)
{
	static const char units[] = "GMK";
	for (int i = 0; i < 3; i++) {
		uint64_t unit = 1ULL << (10 * (3 - i));
		if (v != 0 && v % unit == 0) {
			snprintf(buf, len, "%" PRIu64 "%c", v / unit, units[i]);
			return buf;
		}
	}
	snprintf(buf, len, "%" PRIu64, v);
	return buf;
}

/* "32M" → 33554432. Digits, then at most one K, M or G (either case). */
static int parse_size(const char *text, uint64_t *out)
{
	const char *p = text;
	uint64_t v = 0;
	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	unsigned shift = 0;
	switch (*p) {
	case '\0':           break;
	case 'k': case 'K':  shift = 10; p++; break;
	case 'm': case 'M':  shift = 20; p++; break;
	case 'g': case 'G':  shift = 30; p++; break;
	default:             return -1;
	}
	if (*p != '\0')
		return -1;
	if (shift != 0 && v > (UINT64_MAX >> shift))
		return -1;
	*out = v << shift;
	return 0;
}

int conf_get_size(struct conf_reader *r, const config_setting_t *group,
		  const char *key, uint64_t min, uint64_t max, uint64_t *out)
{
	const config_setting_t *s = member(group, key);
	if (s == NULL)
		return 0;
	uint64_t v;
	if (is_integer(s)) {
		long long i = config_setting_get_int64(s);
		if (i < 0) {
			conf_error(r, s, "%s: a size cannot be negative (%lld)", WHERE(s), i);
			return -1;
		}
		v = (uint64_t)i;
	} else if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		const char *text = config_setting_get_string(s);
		if (parse_size(text, &v) < 0) {
			conf_error(r, s, "%s: invalid size \"%s\" (expected bytes, or a whole "
				   "number with a K, M or G suffix such as \"32M\")", WHERE(s), text);
			return -1;
		}
	} else {
		conf_error(r, s, "%s: expected a size (bytes, or a string such as \"32M\"), not %s",
			   WHERE(s), type_name(s));
		return -1;
	}
	if (v < min || v > max) {
		char a[32], b[32];
		conf_error(r, s, "%s: %s is %s %s", WHERE(s), size_text(v, a, sizeof a),
			   v < min ? "below the minimum of" : "above the maximum of",
			   size_text(v < min ? min : max, b, sizeof b));
		return -1;
	}
	*out = v;
	return 1;
}

int conf_get_duration(struct conf_reader *r, const config_setting_t *group,
		      const char *key, double min, double max, double *out)
{
	const config_setting_t *s = member(group, key);
	if (s == NULL)
		return 0;
	double v;
	if (is_integer(s))
		v = (double)config_setting_get_int64(s);
	else if (config_setting_type(s) == CONFIG_TYPE_FLOAT)
		v = config_setting_get_float(s);
	else {
		conf_error(r, s, "%s: expected a duration in seconds (a number), not %s",
			   WHERE(s), type_name(s));
		return -1;
	}
	if (!isfinite(v) || v < min || v > max) {
		conf_error(r, s, "%s: %g seconds is out of range [%g, %g]", WHERE(s), v, min, max);
		return -1;
	}
	*out = v;
	return 1;
}

void conf_strings_free(char **v)
{
	if (v == NULL)
		return;
	for (char **p = v; *p != NULL; p++)
		free(*p);
	free(v);
}

int conf_get_strings(struct conf_reader *r, const config_setting_t *group,
		     const char *key, char ***out, size_t *n)
{
	const config_setting_t *s = member(group, key);
	if (s == NULL)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_ARRAY && config_setting_type(s) != CONFIG_TYPE_LIST) {
		conf_error(r, s, "%s: expected a list of strings such as [\"a\", \"b\"], not %s",
			   WHERE(s), type_name(s));
		return -1;
	}
	int len = config_setting_length(s);
	bool bad = false;
	for (int i = 0; i < len; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			conf_error(r, e, "%s: expected a string, not %s", WHERE(e), type_name(e));
			bad = true;
		}
	}
	if (bad)
		return -1;

	char **v = calloc((size_t)len + 1, sizeof *v);
	if (v == NULL) {
		conf_error(r, s, "%s: out of memory", WHERE(s));
		return -1;
	}
	for (int i = 0; i < len; i++) {
		v[i] = strdup(config_setting_get_string(config_setting_get_elem(s, (unsigned)i)));
		if (v[i] == NULL) {
			conf_strings_free(v);
			conf_error(r, s, "%s: out of memory", WHERE(s));
			return -1;
		}
	}
	*out = v;
	if (n != NULL)
		*n = (size_t)len;
	return 1;
}

/* ---- groups parsed here until their modules exist ---- */

/* A string that must not be empty when present. */
static int get_path(struct conf_reader *r, const config_setting_t *group, const char *key,
		    char **out)
{
	int rc = conf_get_string(r, group, key, out);
	if (rc == 1 && (*out)[0] == '\0') {
		conf_error(r, member(group, key), "%s: must not be empty", WHERE(member(group, key)));
		return -1;
	}
	return rc;
}

static int admin_conf_parse(struct conf_reader *r, const config_setting_t *s, struct config *cfg)
{
	static const char *const keys[] = { "address", "token_file", NULL };
	int ok = conf_check_keys(r, s, keys) ? 0 : -1;
	if (!config_setting_is_group(s))
		return -1;

	struct admin_conf *a = &cfg->admin;
	if (get_path(r, s, "token_file", &a->token_file) < 0)
		ok = -1;

	char *text = NULL;
	int rc = conf_get_string(r, s, "address", &text);
	if (rc == 0) {
		conf_error(r, s, "admin: missing required key 'address' "
			   "(\"unix:/path\" or a loopback \"host:port\")");
		return -1;
	}
	if (rc < 0)
		return -1;

	const config_setting_t *at = member(s, "address");
	const char *why = NULL;
	if (addr_parse(text, &a->address, &why) < 0) {
		conf_error(r, at, "admin.address: invalid address \"%s\": %s", text,
			   why ? why : "unparsable");
		memset(&a->address, 0, sizeof a->address);
		ok = -1;
	} else if (!addr_is_unix(&a->address)) {
		/* TCP: the token is the only guard, and without TLS it must not
		 * cross a network (TLS for admin comes in a later issue). */
		if (!addr_is_loopback((const struct sockaddr *)&a->address.ss)) {
			conf_error(r, at, "admin.address: \"%s\" is not a loopback address; a TCP "
				   "admin listener must be loopback (127.0.0.1, [::1]) as long as it "
				   "has no TLS, which is not available yet", text);
			ok = -1;
		}
		if (a->token_file == NULL) {
			conf_error(r, at, "admin: token_file is required when admin.address is TCP "
				   "(\"%s\")", text);
			ok = -1;
		}
	}
	free(text);
	return ok;
}

/* "1.1.1.1", "1.1.1.1:53", "::1", "[::1]:5353": numeric, port optional. */
static int dns_server_check(const char *text, const char **why)
{
	struct addr a;
	if (strncmp(text, "unix:", 5) == 0) {
		*why = "a DNS server cannot be a unix socket";
		return -1;
	}
	if (addr_parse(text, &a, why) == 0)
		return 0;
	char buf[128];
	if (strchr(text, ':') != NULL && text[0] != '[')
		snprintf(buf, sizeof buf, "[%s]:53", text);   /* bare IPv6 */
	else
		snprintf(buf, sizeof buf, "%s:53", text);
	const char *why2;
	return addr_parse(buf, &a, &why2);
}

static int dns_conf_parse(struct conf_reader *r, const config_setting_t *s, struct config *cfg)
{
	static const char *const keys[] = { "servers", "min_ttl", "max_ttl", NULL };
	int ok = conf_check_keys(r, s, keys) ? 0 : -1;
	if (!config_setting_is_group(s))
		return -1;
	struct dns_conf *d = &cfg->dns;

	char **servers = NULL;
	size_t n = 0;
	int rc = conf_get_strings(r, s, "servers", &servers, &n);
	if (rc < 0)
		ok = -1;
	else if (rc == 1) {
		const config_setting_t *list = member(s, "servers");
		for (size_t i = 0; i < n; i++) {
			const char *why = NULL;
			if (dns_server_check(servers[i], &why) < 0) {
				const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
				conf_error(r, e, "%s: invalid DNS server \"%s\" (expected a numeric "
					   "address with an optional port, e.g. \"127.0.0.1:53\")%s%s",
					   WHERE(e), servers[i], why ? ": " : "", why ? why : "");
				ok = -1;
			}
		}
		conf_strings_free(d->servers);
		d->servers = servers;
		d->n_servers = n;
	}

	int a = conf_get_duration(r, s, "min_ttl", 0, 86400, &d->min_ttl);
	int b = conf_get_duration(r, s, "max_ttl", 0, 86400, &d->max_ttl);
	if (a < 0 || b < 0)
		ok = -1;
	else if (d->min_ttl > d->max_ttl) {
		const config_setting_t *at = member(s, b == 1 ? "max_ttl" : "min_ttl");
		conf_error(r, at, "dns: min_ttl (%g) is greater than max_ttl (%g)",
			   d->min_ttl, d->max_ttl);
		ok = -1;
	}
	return ok;
}

static int spool_conf_parse(struct conf_reader *r, const config_setting_t *s, struct config *cfg)
{
	static const char *const keys[] = { "dir", "max_bytes", "max_record_bytes",
					    "response_status", "response_body", NULL };
	int ok = conf_check_keys(r, s, keys) ? 0 : -1;
	if (!config_setting_is_group(s))
		return -1;
	struct spool_conf *sp = &cfg->spool;

	int rc = get_path(r, s, "dir", &sp->dir);
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
	else if (sp->max_record_bytes > sp->max_bytes) {
		char x[32], y[32];
		const config_setting_t *at = member(s, b == 1 ? "max_record_bytes" : "max_bytes");
		conf_error(r, at, "spool: max_record_bytes (%s) is greater than max_bytes (%s)",
			   size_text(sp->max_record_bytes, x, sizeof x),
			   size_text(sp->max_bytes, y, sizeof y));
		ok = -1;
	}

	long long status = sp->response_status;
	rc = conf_get_int(r, s, "response_status", 200, 299, &status);
	if (rc < 0)
		ok = -1;
	else
		sp->response_status = (int)status;
	if (conf_get_string(r, s, "response_body", &sp->response_body) < 0)
		ok = -1;
	return ok;
}

/* ---- defaults and the top-level dispatch ---- */

static void config_defaults(struct config *cfg)
{
	cfg->upstream[UPSTREAM_OLD].name = "old";
	cfg->upstream[UPSTREAM_NEW].name = "new";

	cfg->dns.min_ttl = 1;
	cfg->dns.max_ttl = 300;

	cfg->maintenance.retry_after = MAINTENANCE_RETRY_AFTER_DEFAULT;
	cfg->maintenance.max_accept_content_length = MAINTENANCE_MAX_ACCEPT_DEFAULT;

	cfg->spool.max_bytes = 1ULL << 30;
	cfg->spool.max_record_bytes = 32ULL << 20;
	cfg->spool.response_status = 201;

	cfg->log.access = NULL;
	cfg->log.level = LL_INFO;

	cfg->limits = (struct limits_conf){
		.max_connections = 10000,
		.max_request_line = 8192,
		.max_header_bytes = 32768,
		.max_body = 0,
		.header_timeout = 30,
		.body_timeout = 60,
		.keepalive_timeout = 75,
		.send_timeout = 60,
		.drain_timeout = 30,
		.buffer_bytes = 65536,
		.max_parked = 1000,
	};

	cfg->workers = 1;
}

typedef int conf_parse_fn(struct conf_reader *r, const config_setting_t *s, struct config *cfg);

/* Who owns which top-level keys. A "group" owner gets its own setting and
 * is called only when the key is present; a "root" owner reads scalars at
 * the top level itself and is always called, once, so it can check for
 * keys it requires. */
static const struct conf_section {
	const char *keys[3];
	conf_parse_fn *parse;
	bool root;
} sections[] = {
	{ { "listen" },                      listener_conf_parse,    false },
	{ { "admin" },                       admin_conf_parse,       false },
	{ { "upstreams" },                   upstream_conf_parse,    false },
	{ { "dns" },                         dns_conf_parse,         false },
	{ { "routes" },                      route_conf_parse,       false },
	{ { "maintenance" },                 maintenance_conf_parse, false },
	{ { "spool" },                       spool_conf_parse,       false },
	{ { "state_file", "journal_file" },  state_conf_parse,       true  },
	{ { "log" },                         log_conf_parse,         false },
	{ { "limits" },                      limits_conf_parse,      false },
	{ { "trusted_proxies" },             forward_conf_parse,     true  },
	{ { "workers" },                     worker_conf_parse,      true  },
};

#define N_SECTIONS (sizeof sections / sizeof sections[0])

/* Checks that span groups; run after every owner has parsed. */
static void config_check_required(struct conf_reader *r, const config_setting_t *root,
				   struct config *cfg)
{
	const config_setting_t *listen = config_setting_get_member(root, "listen");
	if (listen == NULL)
		conf_error(r, root, "missing required 'listen': at least one listen address, "
			   "e.g. listen = ( { address = \"0.0.0.0:80\"; } );");
	else if ((config_setting_is_list(listen) || config_setting_is_array(listen)) &&
		 config_setting_length(listen) == 0)
		conf_error(r, listen, "listen: at least one listen address is required");

	/* A missing upstreams.old/new inside the group is upstream_conf_parse()'s
	 * to report; only the group's absence is seen here. */
	if (config_setting_get_member(root, "upstreams") == NULL)
		conf_error(r, root, "missing required 'upstreams' with 'old' and 'new', e.g. "
			   "upstreams = { old = { url = \"http://...\"; }; new = { ... }; };");

	const config_setting_t *routes = config_setting_get_member(root, "routes");
	if (cfg->routes != NULL && routes != NULL) {
		for (size_t i = 0; i < cfg->routes->n; i++) {
			const struct route *rt = &cfg->routes->v[i];
			if (rt->spool && cfg->spool.dir == NULL)
				conf_error(r, config_setting_get_elem(routes, (unsigned)i),
					   "route '%s' has spool = true but no spool.dir is configured",
					   rt->name ? rt->name : "?");
		}
	}
}

static void config_parse_root(struct conf_reader *r, const config_setting_t *root,
			      struct config *cfg)
{
	const char *known[2 * N_SECTIONS + 1];
	size_t n = 0;
	for (size_t i = 0; i < N_SECTIONS; i++)
		for (size_t k = 0; k < 3 && sections[i].keys[k] != NULL; k++)
			known[n++] = sections[i].keys[k];
	known[n] = NULL;
	conf_check_keys(r, root, known);

	/* An owner's -1 only means "errors were reported": keep going so the
	 * operator sees every error of the file in one run. */
	for (size_t i = 0; i < N_SECTIONS; i++) {
		const struct conf_section *sec = &sections[i];
		if (sec->root) {
			sec->parse(r, root, cfg);
			continue;
		}
		const config_setting_t *s = config_setting_get_member(root, sec->keys[0]);
		if (s != NULL)
			sec->parse(r, s, cfg);
	}

	if (config_setting_get_member(root, "admin") == NULL)
		conf_warn(r, root, "no 'admin' group: the control commands (switch, "
			  "maintenance, status) cannot reach this instance");

	config_check_required(r, root, cfg);
}

/* Reads with TEXT when given (for tests), otherwise from the file PATH. */
static struct config *config_load_any(const char *path, const char *text, FILE *errs)
{
	struct conf_reader r = { .path = path };
	struct config *cfg = calloc(1, sizeof *cfg);
	if (cfg == NULL || (cfg->path = strdup(path)) == NULL) {
		if (errs != NULL)
			fprintf(errs, "%s: out of memory\n", path);
		free(cfg);
		return NULL;
	}
	config_defaults(cfg);

	config_t lc;
	config_init(&lc);
	config_set_options(&lc, config_get_options(&lc) | CONFIG_OPTION_AUTOCONVERT);

	int ok;
	if (text != NULL)
		ok = config_read_string(&lc, text);
	else {
		/* @include "x.conf" is relative to the including file's directory. */
		char *dup = strdup(path);
		if (dup != NULL)
			config_set_include_dir(&lc, dirname(dup));
		ok = config_read_file(&lc, path);
		free(dup);
		r.include_dir = config_get_include_dir(&lc);
	}

	if (ok != CONFIG_TRUE) {
		if (config_error_type(&lc) == CONFIG_ERR_FILE_IO) {
			FILE *f = fopen(path, "r");
			int err = f ? EIO : errno;
			if (f != NULL)
				fclose(f);
			if (errs != NULL)
				fprintf(errs, "%s: cannot read: %s\n", path, strerror(err));
		} else if (errs != NULL) {
			char joined[PATH_MAX];
			const char *file = config_error_file(&lc) ? config_error_file(&lc) : path;
			file = shown_file(path, config_get_include_dir(&lc), file, joined,
					  sizeof joined);
			int line = config_error_line(&lc) > 0 ? config_error_line(&lc) : 1;
			fprintf(errs, "%s:%d: %s\n", file, line,
				config_error_text(&lc) ? config_error_text(&lc) : "syntax error");
		}
		config_destroy(&lc);
		config_free(cfg);
		return NULL;
	}

	config_parse_root(&r, config_root_setting(&lc), cfg);
	config_destroy(&lc);

	bool failed = r.errors > 0 || r.lost;
	conf_reader_flush(&r, errs);
	if (failed) {
		config_free(cfg);
		return NULL;
	}
	return cfg;
}

struct config *config_load(const char *path, FILE *errs)
{
	return config_load_any(path, NULL, errs);
}

struct config *config_load_string(const char *text, const char *name, FILE *errs)
{
	return config_load_any(name ? name : "<string>", text, errs);
}

void config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < cfg->n_listen; i++)
		listener_conf_free(&cfg->listen[i]);
	free(cfg->listen);
	free(cfg->admin.token_file);
	for (size_t i = 0; i < UPSTREAM_COUNT; i++)
		upstream_conf_free(&cfg->upstream[i]);
	conf_strings_free(cfg->dns.servers);
	if (cfg->routes != NULL)
		route_table_free(cfg->routes);
	maintenance_conf_free(&cfg->maintenance);
	free(cfg->spool.dir);
	free(cfg->spool.response_body);
	state_conf_free(&cfg->state);
	log_conf_free(&cfg->log);
	forward_conf_free(&cfg->forward);
	free(cfg->path);
	free(cfg);
}
