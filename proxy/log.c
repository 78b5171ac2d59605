/* log: the error log (leveled lines on stderr) and the access log (one
 * JSON object per request). Every line is one write(2): with O_APPEND the
 * kernel keeps lines from concurrent workers whole, so no lock is taken on
 * the request path. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"

#define WHERE(s) conf_where((s), (char[256]){0}, 256)

static const char *const level_names[] = { "debug", "info", "warn", "error" };
static const char *const level_tags[] = { "DEBUG", "INFO", "WARN", "ERROR" };

static atomic_int min_level = LL_INFO;

/* The access log fd is private (stderr is dup'ed too), so reopening can
 * dup3() a new file over it: a worker's write never meets a closed fd. */
static atomic_int access_fd = -1;
static atomic_bool access_on;
static pthread_mutex_t access_lock = PTHREAD_MUTEX_INITIALIZER;
static char *access_path;            /* NULL when the access log is stderr */

/* ---- config ---- */

void log_conf_defaults(struct log_conf *c)
{
	*c = (struct log_conf){ .access = NULL, .level = LL_INFO };
}

int log_conf_parse(struct conf_reader *r, const config_setting_t *s, struct config *cfg)
{
	static const char *const keys[] = { "access", "level", "format", NULL };
	int ok = conf_check_keys(r, s, keys) ? 0 : -1;
	if (!config_setting_is_group(s))
		return -1;
	struct log_conf *c = cfg->log;

	int rc = conf_get_string(r, s, "access", &c->access);
	if (rc < 0)
		ok = -1;
	else if (rc == 1 && c->access[0] == '\0') {
		const config_setting_t *a = config_setting_get_member(s, "access");
		conf_error(r, a, "%s: must not be empty (a file path or \"stderr\"; leave it "
			   "out for no access log)", WHERE(a));
		ok = -1;
	}

	char *text = NULL;
	rc = conf_get_string(r, s, "level", &text);
	if (rc < 0)
		ok = -1;
	else if (rc == 1) {
		size_t i = 0;
		while (i < 4 && strcmp(text, level_names[i]) != 0)
			i++;
		if (i < 4)
			c->level = (enum log_level)i;
		else {
			const config_setting_t *l = config_setting_get_member(s, "level");
			conf_error(r, l, "%s: \"%s\" is not one of \"debug\", \"info\", \"warn\", "
				   "\"error\"", WHERE(l), text);
			ok = -1;
		}
	}
	free(text);

	text = NULL;
	rc = conf_get_string(r, s, "format", &text);
	if (rc < 0)
		ok = -1;
	else if (rc == 1 && strcmp(text, "json") != 0) {
		const config_setting_t *f = config_setting_get_member(s, "format");
		conf_error(r, f, "%s: \"%s\" is not supported (only \"json\")", WHERE(f), text);
		ok = -1;
	}
	free(text);
	return ok;
}

const char *log_conf_restart_key(const struct log_conf *a, const struct log_conf *b)
{
	/* The access log is opened once (SIGUSR1 reopens the same path); the
	 * level is taken over by a reload. */
	return conf_str_equal(a->access, b->access) ? NULL : "log.access";
}

void log_conf_free(struct log_conf *c)
{
	if (c == NULL)
		return;
	free(c->access);
	c->access = NULL;
}

/* ---- shared helpers ---- */

/* One write(2) in the normal case; the loop only covers signals and short
 * writes to pipes. */
static void write_line(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		buf += n;
		len -= (size_t)n;
	}
}

/* "2026-11-23T21:00:00.123Z" (RFC 3339, UTC, milliseconds). The seconds
 * part is cached per thread: it changes once a second, lines come faster. */
static size_t format_time(const struct timespec *ts, char *out, size_t size)
{
	static _Thread_local time_t cached_sec;
	static _Thread_local char cached[32];
	if (cached[0] == '\0' || ts->tv_sec != cached_sec) {
		struct tm tm;
		if (gmtime_r(&ts->tv_sec, &tm) == NULL ||
		    strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
			snprintf(out, size, "1970-01-01T00:00:00.000Z");
			return strlen(out);
		}
		cached_sec = ts->tv_sec;
	}
	long ms = ts->tv_nsec / 1000000;
	if (ms < 0 || ms > 999)
		ms = 0;
	int n = snprintf(out, size, "%s.%03ldZ", cached, ms);
	return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

/* ---- the error log ---- */

void log_set_level(enum log_level level)
{
	atomic_store_explicit(&min_level, (int)level, memory_order_relaxed);
}

bool log_every_due(struct log_every *e, double interval, unsigned long *count)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	e->count++;
	double since = (double)(now.tv_sec - e->last.tv_sec) +
		       (double)(now.tv_nsec - e->last.tv_nsec) / 1e9;
	if (e->started && since < interval)
		return false;
	*count = e->count;
	e->count = 0;
	e->last = now;
	e->started = true;
	return true;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	if ((int)level < atomic_load_explicit(&min_level, memory_order_relaxed))
		return;
	if ((unsigned)level > LL_ERROR)
		level = LL_ERROR;

	char line[4096];
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	size_t len = format_time(&now, line, sizeof line);
	len += (size_t)snprintf(line + len, sizeof line - len, " %s ", level_tags[level]);

	size_t room = sizeof line - len - 1;      /* keep one byte for '\n' */
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line + len, room + 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	size_t msg = (size_t)n;
	if (msg > room) {
		msg = room;
		memcpy(line + len + msg - 3, "...", 3);
	}
	/* One entry, one line: a peer's bytes in a message must not forge
	 * another entry. */
	for (char *p = line + len; p < line + len + msg; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	len += msg;
	line[len++] = '\n';
	write_line(STDERR_FILENO, line, len);
}

/* ---- the access log file ---- */

static int open_target(const char *target)
{
	if (strcmp(target, "stderr") == 0)
		return fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
	return open(target, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

int log_open(const struct log_conf *c)
{
	log_set_level(c->level);
	pthread_mutex_lock(&access_lock);
	if (c->access == NULL) {
		/* The fd stays open (a worker may be writing): it is only unused. */
		atomic_store(&access_on, false);
		free(access_path);
		access_path = NULL;
		pthread_mutex_unlock(&access_lock);
		return 0;
	}

	bool to_stderr = strcmp(c->access, "stderr") == 0;
	char *path = NULL;
	int fd = open_target(c->access);
	int err = errno;
	if (fd >= 0 && !to_stderr && (path = strdup(c->access)) == NULL) {
		err = ENOMEM;
		close(fd);
		fd = -1;
	}
	if (fd < 0) {
		pthread_mutex_unlock(&access_lock);
		log_error("access log %s: cannot open: %s", c->access, strerror(err));
		return -1;
	}

	int cur = atomic_load(&access_fd);
	if (cur >= 0) {
		if (dup3(fd, cur, O_CLOEXEC) < 0) {
			err = errno;
			close(fd);
			free(path);
			pthread_mutex_unlock(&access_lock);
			log_error("access log %s: cannot replace the old file: %s", c->access,
				  strerror(err));
			return -1;
		}
		close(fd);
	} else {
		atomic_store(&access_fd, fd);
	}
	free(access_path);
	access_path = path;
	atomic_store(&access_on, true);
	pthread_mutex_unlock(&access_lock);
	return 0;
}

int log_reopen(void)
{
	pthread_mutex_lock(&access_lock);
	int cur = atomic_load(&access_fd);
	if (access_path == NULL || cur < 0 || !atomic_load(&access_on)) {
		pthread_mutex_unlock(&access_lock);
		return 0;            /* stderr or no access log: nothing to rotate */
	}
	int fd = open_target(access_path);
	if (fd < 0 || dup3(fd, cur, O_CLOEXEC) < 0) {
		int err = errno;
		if (fd >= 0)
			close(fd);
		char path[4096];
		snprintf(path, sizeof path, "%s", access_path);
		pthread_mutex_unlock(&access_lock);
		log_error("access log %s: cannot reopen, still writing to the old file: %s",
			  path, strerror(err));
		return -1;
	}
	close(fd);
	pthread_mutex_unlock(&access_lock);
	return 0;
}

void log_close(void)
{
	pthread_mutex_lock(&access_lock);
	atomic_store(&access_on, false);
	int fd = atomic_exchange(&access_fd, -1);
	if (fd >= 0)
		close(fd);
	free(access_path);
	access_path = NULL;
	pthread_mutex_unlock(&access_lock);
}

bool log_access_enabled(void)
{
	return atomic_load_explicit(&access_on, memory_order_relaxed) &&
	       atomic_load_explicit(&access_fd, memory_order_relaxed) >= 0;
}

/* ---- access log lines ---- */

/* Length of the well-formed UTF-8 sequence at P (RFC 3629: no overlong
 * forms, no surrogates, at most U+10FFFF), or 0 if it is not one. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	if (c < 0x80)
		return 1;
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf;    /* bounds of the second byte */
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return len;
}

/* A JSON string for S: as is when it is valid UTF-8 (the common case, no
 * copy), otherwise with each invalid byte replaced by U+FFFD, through a
 * stack buffer (the heap only for very long slices). */
static json_t *slice_json(struct log_slice s)
{
	if (s.ptr == NULL)
		return json_null();
	const unsigned char *p = (const unsigned char *)s.ptr;
	size_t i = 0;
	while (i < s.len) {
		size_t k = utf8_seq(p + i, s.len - i);
		if (k == 0)
			break;
		i += k;
	}
	if (i == s.len)
		return json_stringn_nocheck(s.ptr, s.len);

	char stack[2048];
	size_t need = i + 3 * (s.len - i);
	char *out = need <= sizeof stack ? stack : malloc(need);
	if (out == NULL)
		return NULL;
	memcpy(out, s.ptr, i);
	size_t o = i;
	while (i < s.len) {
		size_t k = utf8_seq(p + i, s.len - i);
		if (k == 0) {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		} else {
			memcpy(out + o, p + i, k);
			o += k;
			i += k;
		}
	}
	json_t *j = json_stringn_nocheck(out, o);
	if (out != stack)
		free(out);
	return j;
}

/* Milliseconds with three decimals; NULL for "not measured". */
static json_t *ms_json(double ms)
{
	if (ms < 0 || !isfinite(ms))
		return json_null();
	/* Rounded by hand: the build does not link libm. */
	if (ms < 1e15)
		ms = (double)(long long)(ms * 1000.0 + 0.5) / 1000.0;
	return json_real(ms);
}

static json_t *count_json(uint64_t v)
{
	return json_integer(v > (uint64_t)LLONG_MAX ? LLONG_MAX : (json_int_t)v);
}

static json_t *access_json(const struct access_entry *e)
{
	char when[40];
	size_t wlen = format_time(&e->start, when, sizeof when);
	const struct {
		const char *key;
		json_t *value;
	} fields[] = {
		{ "time",        json_stringn_nocheck(when, wlen) },
		{ "client",      slice_json(e->client) },
		{ "method",      slice_json(e->method) },
		{ "path",        slice_json(e->path) },
		{ "route",       slice_json(e->route) },
		{ "project",     slice_json(e->project) },
		{ "upstream",    slice_json(e->upstream) },
		{ "status",      json_integer(e->status) },
		{ "bytes_in",    count_json(e->bytes_in) },
		{ "bytes_out",   count_json(e->bytes_out) },
		{ "upstream_ms", ms_json(e->upstream_ms) },
		{ "total_ms",    ms_json(e->total_ms < 0 ? 0 : e->total_ms) },
	};
	json_t *o = json_object();
	bool ok = o != NULL;
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		/* _new_nocheck takes the reference even on failure. */
		if (fields[i].value == NULL ||
		    (ok && json_object_set_new_nocheck(o, fields[i].key, fields[i].value) < 0)) {
			ok = false;
		} else if (!ok) {
			json_decref(fields[i].value);
		}
	}
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* 15 significant digits print a 3-decimal value as written ("12.345"). */
#define ACCESS_DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

size_t log_access_format(const struct access_entry *e, char *buf, size_t size)
{
	if (size < 3)
		return 0;
	json_t *o = access_json(e);
	if (o == NULL)
		return 0;
	size_t n = json_dumpb(o, buf, size - 2, ACCESS_DUMP_FLAGS);
	json_decref(o);
	if (n == 0 || n > size - 2)
		return 0;
	buf[n++] = '\n';
	buf[n] = '\0';
	return n;
}

void log_access(const struct access_entry *e)
{
	if (!log_access_enabled())
		return;
	json_t *o = access_json(e);
	if (o == NULL)
		return;
	char stack[4096];
	char *buf = stack;
	size_t n = json_dumpb(o, buf, sizeof stack - 1, ACCESS_DUMP_FLAGS);
	if (n > sizeof stack - 1) {
		buf = malloc(n + 1);
		if (buf == NULL || json_dumpb(o, buf, n, ACCESS_DUMP_FLAGS) != n)
			n = 0;
	}
	json_decref(o);
	if (n > 0) {
		buf[n++] = '\n';
		write_line(atomic_load_explicit(&access_fd, memory_order_relaxed), buf, n);
	}
	if (buf != stack)
		free(buf);
}
