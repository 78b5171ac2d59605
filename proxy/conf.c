/* conf: the config reader. Messages are collected with their file and
 * line, sorted into file order and printed together; the typed getters
 * report a wrong type or range themselves, so a module's parser only says
 * what is specific to its keys. Depends on libconfig and libc only. */

#include "conf.h"

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- the reader: file name and collected messages ---- */

struct conf_msg {
	char *file;
	unsigned line;
	size_t seq;          /* discovery order, to keep the sort stable */
	char *text;          /* the whole "FILE:LINE: message" line */
};

struct conf_reader {
	const char *path;
	char *include_dir;   /* where @include names are relative to */
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

bool conf_reader_flush(struct conf_reader *r, FILE *errs)
{
	bool failed = r->errors > 0 || r->lost;
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
	r->errors = r->warnings = 0;
	r->lost = false;
	return failed;
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
			   CONF_WHERE(group), type_name(group));
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
			conf_error(r, m, "unknown key '%s' in %s%s", name, CONF_WHERE(group), did);
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
		conf_error(r, s, "%s: expected a string, not %s", CONF_WHERE(s), type_name(s));
		return -1;
	}
	char *copy = strdup(config_setting_get_string(s));
	if (copy == NULL) {
		conf_error(r, s, "%s: out of memory", CONF_WHERE(s));
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
			   CONF_WHERE(s), type_name(s));
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
		conf_error(r, s, "%s: expected an integer, not %s", CONF_WHERE(s), type_name(s));
		return -1;
	}
	long long v = config_setting_get_int64(s);
	if (v < min || v > max) {
		conf_error(r, s, "%s: %lld is out of range [%lld, %lld]", CONF_WHERE(s), v, min, max);
		return -1;
	}
	*out = v;
	return 1;
}

/* "1G", "32M", "4096" for messages: the largest exact unit. */
const char *conf_size_text(uint64_t v, char *buf, size_t len)
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
			conf_error(r, s, "%s: a size cannot be negative (%lld)", CONF_WHERE(s), i);
			return -1;
		}
		v = (uint64_t)i;
	} else if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		const char *text = config_setting_get_string(s);
		if (parse_size(text, &v) < 0) {
			conf_error(r, s, "%s: invalid size \"%s\" (expected bytes, or a whole "
				   "number with a K, M or G suffix such as \"32M\")", CONF_WHERE(s), text);
			return -1;
		}
	} else {
		conf_error(r, s, "%s: expected a size (bytes, or a string such as \"32M\"), not %s",
			   CONF_WHERE(s), type_name(s));
		return -1;
	}
	if (v < min || v > max) {
		char a[32], b[32];
		conf_error(r, s, "%s: %s is %s %s", CONF_WHERE(s), conf_size_text(v, a, sizeof a),
			   v < min ? "below the minimum of" : "above the maximum of",
			   conf_size_text(v < min ? min : max, b, sizeof b));
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
			   CONF_WHERE(s), type_name(s));
		return -1;
	}
	if (!isfinite(v) || v < min || v > max) {
		conf_error(r, s, "%s: %g seconds is out of range [%g, %g]", CONF_WHERE(s), v, min, max);
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
			   CONF_WHERE(s), type_name(s));
		return -1;
	}
	int len = config_setting_length(s);
	bool bad = false;
	for (int i = 0; i < len; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			conf_error(r, e, "%s: expected a string, not %s", CONF_WHERE(e), type_name(e));
			bad = true;
		}
	}
	if (bad)
		return -1;

	char **v = calloc((size_t)len + 1, sizeof *v);
	if (v == NULL) {
		conf_error(r, s, "%s: out of memory", CONF_WHERE(s));
		return -1;
	}
	for (int i = 0; i < len; i++) {
		v[i] = strdup(config_setting_get_string(config_setting_get_elem(s, (unsigned)i)));
		if (v[i] == NULL) {
			conf_strings_free(v);
			conf_error(r, s, "%s: out of memory", CONF_WHERE(s));
			return -1;
		}
	}
	*out = v;
	if (n != NULL)
		*n = (size_t)len;
	return 1;
}

int conf_get_path(struct conf_reader *r, const config_setting_t *group, const char *key,
		  char **out)
{
	int rc = conf_get_string(r, group, key, out);
	if (rc == 1 && (*out)[0] == '\0') {
		conf_error(r, member(group, key), "%s: must not be empty",
			   CONF_WHERE(member(group, key)));
		return -1;
	}
	return rc;
}

/* ---- the reader's life ---- */

struct conf_reader *conf_reader_new(const char *path)
{
	struct conf_reader *r = calloc(1, sizeof *r);
	if (r != NULL)
		r->path = path;
	return r;
}

void conf_reader_free(struct conf_reader *r)
{
	if (r == NULL)
		return;
	conf_reader_flush(r, NULL);
	free(r->include_dir);
	free(r);
}

int conf_reader_load(struct conf_reader *r, config_t *lc, const char *text, FILE *errs)
{
	const char *path = r->path;
	config_init(lc);
	config_set_options(lc, config_get_options(lc) | CONFIG_OPTION_AUTOCONVERT);

	int ok;
	if (text != NULL)
		ok = config_read_string(lc, text);
	else {
		/* @include "x.conf" is relative to the including file's directory. */
		char *dup = strdup(path);
		if (dup != NULL)
			config_set_include_dir(lc, dirname(dup));
		ok = config_read_file(lc, path);
		free(dup);
		free(r->include_dir);
		r->include_dir = config_get_include_dir(lc) ? strdup(config_get_include_dir(lc))
							    : NULL;
	}
	if (ok == CONFIG_TRUE)
		return 0;

	if (config_error_type(lc) == CONFIG_ERR_FILE_IO) {
		FILE *f = fopen(path, "r");
		int err = f ? EIO : errno;
		if (f != NULL)
			fclose(f);
		if (errs != NULL)
			fprintf(errs, "%s: cannot read: %s\n", path, strerror(err));
	} else if (errs != NULL) {
		char joined[PATH_MAX];
		const char *file = config_error_file(lc) ? config_error_file(lc) : path;
		file = shown_file(path, config_get_include_dir(lc), file, joined, sizeof joined);
		int line = config_error_line(lc) > 0 ? config_error_line(lc) : 1;
		fprintf(errs, "%s:%d: %s\n", file, line,
			config_error_text(lc) ? config_error_text(lc) : "syntax error");
	}
	config_destroy(lc);
	return -1;
}

bool conf_str_equal(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}
