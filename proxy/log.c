/* log: the error log (leveled lines on stderr) and the access log (one
 * JSON object per request). A worker gathers its access lines in its own
 * batch (struct log_batch) and writes them with one write(2) each 32 KiB
 * or 100 ms: with O_APPEND the kernel keeps the writes of concurrent
 * workers whole, so no lock is shared between workers on the request path. */
#include "log.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
/* Not a regular file (a pipe, a terminal): writes of at most PIPE_BUF
 * bytes, cut at line ends, are the ones the kernel keeps whole. */
static atomic_bool access_pipe;
/* Every worker's batch, so that a reopen or a close writes them first. */
static struct log_batch *batches;
static void batches_flush_locked(void);

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

/* "2026-11-23T21:00:00" for SEC, or NULL if it has no such form. Cached
 * per thread: it changes once a second, lines come faster. */
static const char *time_secs(time_t sec)
{
	static _Thread_local time_t cached_sec;
	static _Thread_local char cached[32];
	if (cached[0] == '\0' || sec != cached_sec) {
		struct tm tm;
		if (gmtime_r(&sec, &tm) == NULL ||
		    strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
			cached[0] = '\0';
			return NULL;
		}
		cached_sec = sec;
	}
	return cached;
}

/* "2026-11-23T21:00:00.123Z" (RFC 3339, UTC, milliseconds) into OUT,
 * which has room for 32 bytes; returns the length. */
static size_t format_time(const struct timespec *ts, char *out)
{
	const char *secs = time_secs(ts->tv_sec);
	if (secs == NULL) {
		memcpy(out, "1970-01-01T00:00:00.000Z", 25);
		return 24;
	}
	long ms = ts->tv_nsec / 1000000;
	if (ms < 0 || ms > 999)
		ms = 0;
	size_t n = strlen(secs);
	memcpy(out, secs, n);
	out[n++] = '.';
	out[n++] = (char)('0' + ms / 100);
	out[n++] = (char)('0' + ms / 10 % 10);
	out[n++] = (char)('0' + ms % 10);
	out[n++] = 'Z';
	out[n] = '\0';
	return n;
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
	size_t len = format_time(&now, line);
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

static bool is_pipe_like(int fd)
{
	struct stat st;
	return fstat(fd, &st) < 0 || !S_ISREG(st.st_mode);
}

int log_open(const struct log_conf *c)
{
	log_set_level(c->level);
	pthread_mutex_lock(&access_lock);
	if (c->access == NULL) {
		/* The fd stays open (a worker may be writing): it is only unused. */
		batches_flush_locked();
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

	/* Lines gathered so far belong to the file they were logged for. */
	batches_flush_locked();
	bool pipe_like = is_pipe_like(fd);
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
	atomic_store(&access_pipe, pipe_like);
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
	/* Every line logged before the signal goes to the renamed file. */
	if (fd >= 0)
		batches_flush_locked();
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
	batches_flush_locked();
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

/* ---- the JSON line, written straight into the caller's buffer ----
 * Byte for byte what jansson's json_dumpb(JSON_COMPACT |
 * JSON_REAL_PRECISION(15)) made of the same object (tests/test_log.c keeps
 * that path as the oracle), without an object and a dozen allocations per
 * request. */

/* A bounded cursor: what does not fit sets OVER, nothing is written past END. */
struct out {
	char *p, *end;
	bool over;
};

static inline void out_bytes(struct out *o, const void *s, size_t n)
{
	if ((size_t)(o->end - o->p) < n) {
		o->over = true;
		o->p = o->end;
		return;
	}
	memcpy(o->p, s, n);
	o->p += n;
}

#define OUT_LIT(o, lit) out_bytes((o), (lit), sizeof(lit) - 1)

/* jansson's escapes: the two mandatory ones, the five short forms, other
 * control characters as \u00XX (upper case); '/' and DEL stay as they are. */
static void out_escape(struct out *o, unsigned char c)
{
	static const char hex[] = "0123456789ABCDEF";
	char seq[6] = { '\\', 0 };
	size_t n = 2;
	switch (c) {
	case '"':  seq[1] = '"'; break;
	case '\\': seq[1] = '\\'; break;
	case '\b': seq[1] = 'b'; break;
	case '\f': seq[1] = 'f'; break;
	case '\n': seq[1] = 'n'; break;
	case '\r': seq[1] = 'r'; break;
	case '\t': seq[1] = 't'; break;
	default:
		memcpy(seq + 1, "u00", 3);
		seq[4] = hex[c >> 4];
		seq[5] = hex[c & 15];
		n = 6;
	}
	out_bytes(o, seq, n);
}

/* S as a JSON string, each byte that is not part of well-formed UTF-8
 * replaced by U+FFFD; null for a NULL slice. */
static void out_string(struct out *o, struct log_slice s)
{
	if (s.ptr == NULL) {
		OUT_LIT(o, "null");
		return;
	}
	const unsigned char *p = (const unsigned char *)s.ptr;
	size_t run = 0, i = 0;                 /* bytes [run, i) go out as they are */
	OUT_LIT(o, "\"");
	while (i < s.len) {
		unsigned char c = p[i];
		if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
			i++;
			continue;
		}
		size_t k = c < 0x80 ? 0 : utf8_seq(p + i, s.len - i);
		if (k > 0) {                   /* well-formed multi-byte: as is */
			i += k;
			continue;
		}
		out_bytes(o, p + run, i - run);
		if (c < 0x80)
			out_escape(o, c);
		else
			OUT_LIT(o, "\xef\xbf\xbd");
		run = ++i;
	}
	out_bytes(o, p + run, i - run);
	OUT_LIT(o, "\"");
}

static void out_u64(struct out *o, uint64_t v)
{
	char d[20];
	size_t n = sizeof d;
	do {
		d[--n] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	out_bytes(o, d + n, sizeof d - n);
}

static void out_int(struct out *o, long long v)
{
	if (v < 0) {
		OUT_LIT(o, "-");
		out_u64(o, 0 - (unsigned long long)v);
	} else {
		out_u64(o, (uint64_t)v);
	}
}

/* Milliseconds with three decimals; null for "not measured". What "%.15g"
 * and jansson's touch-ups (".0" on whole numbers, no '+' or leading zeros
 * in the exponent) made of the value rounded to 3 decimals. */
static void out_ms(struct out *o, double ms)
{
	if (ms < 0 || !isfinite(ms)) {
		OUT_LIT(o, "null");
		return;
	}
	if (ms < 1e12) {
		/* At most 15 significant digits: "%.15g" of k/1000 prints exactly
		 * k/1000 without its trailing zeros, so no printf is needed. */
		unsigned long long k = (unsigned long long)(ms * 1000.0 + 0.5);
		out_u64(o, k / 1000);
		unsigned f = (unsigned)(k % 1000);
		char frac[4] = { '.', (char)('0' + f / 100), (char)('0' + f / 10 % 10),
				 (char)('0' + f % 10) };
		size_t n = f == 0 ? 2 : f % 100 == 0 ? 2 : f % 10 == 0 ? 3 : 4;
		out_bytes(o, frac, n);
		return;
	}
	/* Rounded by hand: the build does not link libm. */
	if (ms < 1e15)
		ms = (double)(long long)(ms * 1000.0 + 0.5) / 1000.0;
	char buf[40];
	int n = snprintf(buf, sizeof buf - 2, "%.15g", ms);
	if (n <= 0 || (size_t)n >= sizeof buf - 2) {
		o->over = true;
		return;
	}
	char *e = strchr(buf, 'e');
	if (e == NULL && strchr(buf, '.') == NULL) {
		memcpy(buf + n, ".0", 3);
		n += 2;
	} else if (e != NULL) {
		/* "1e+15" -> "1e15", "1.5e-05" -> "1.5e-5" */
		char *to = e + 1, *from = e + 2;
		if (*to == '-')
			to++;
		while (*from == '0')
			from++;
		memmove(to, from, strlen(from) + 1);
		n = (int)strlen(buf);
	}
	out_bytes(o, buf, (size_t)n);
}

static void out_time(struct out *o, const struct timespec *ts)
{
	char when[40];
	out_bytes(o, when, format_time(ts, when));
}

/* The line without its '\n' at O; O->over if it did not fit. */
static void out_access(struct out *o, const struct access_entry *e)
{
	OUT_LIT(o, "{\"time\":\"");
	out_time(o, &e->start);
	OUT_LIT(o, "\",\"client\":");
	out_string(o, e->client);
	OUT_LIT(o, ",\"method\":");
	out_string(o, e->method);
	OUT_LIT(o, ",\"path\":");
	out_string(o, e->path);
	OUT_LIT(o, ",\"route\":");
	out_string(o, e->route);
	OUT_LIT(o, ",\"project\":");
	out_string(o, e->project);
	OUT_LIT(o, ",\"upstream\":");
	out_string(o, e->upstream);
	OUT_LIT(o, ",\"status\":");
	out_int(o, e->status);
	OUT_LIT(o, ",\"bytes_in\":");
	out_u64(o, e->bytes_in > (uint64_t)LLONG_MAX ? (uint64_t)LLONG_MAX : e->bytes_in);
	OUT_LIT(o, ",\"bytes_out\":");
	out_u64(o, e->bytes_out > (uint64_t)LLONG_MAX ? (uint64_t)LLONG_MAX : e->bytes_out);
	OUT_LIT(o, ",\"upstream_ms\":");
	out_ms(o, e->upstream_ms);
	OUT_LIT(o, ",\"total_ms\":");
	out_ms(o, e->total_ms < 0 ? 0 : e->total_ms);
	OUT_LIT(o, "}");
}

size_t log_access_format(const struct access_entry *e, char *buf, size_t size)
{
	if (size < 3)
		return 0;
	struct out o = { buf, buf + size - 2, false };
	out_access(&o, e);
	if (o.over)
		return 0;
	size_t n = (size_t)(o.p - buf);
	buf[n++] = '\n';
	buf[n] = '\0';
	return n;
}

/* The longest line E can make: every string byte escaped to 6. */
static size_t access_line_bound(const struct access_entry *e)
{
	const struct log_slice *s[] = { &e->client, &e->method, &e->path, &e->route,
					&e->project, &e->upstream };
	size_t n = 512;
	for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
		n += 6 * s[i]->len + 2;
	return n;
}

void log_access(const struct access_entry *e)
{
	if (!log_access_enabled())
		return;
	char stack[4096];
	size_t need = access_line_bound(e);
	char *buf = need <= sizeof stack ? stack : malloc(need);
	if (buf == NULL)
		return;
	size_t n = log_access_format(e, buf, need <= sizeof stack ? sizeof stack : need);
	if (n > 0)
		write_line(atomic_load_explicit(&access_fd, memory_order_relaxed), buf, n);
	if (buf != stack)
		free(buf);
}

/* ---- batches: a worker's lines, written together ---- */

/* Internal bounds (README, "Access log"): a batch is written once it holds
 * BATCH_FLUSH_BYTES or its oldest line is BATCH_INTERVAL_MS old; it never
 * holds more than BATCH_BYTES (lines past it, while writes fail, are
 * dropped and counted). */
#define BATCH_FLUSH_BYTES (32u * 1024)
#define BATCH_BYTES (256u * 1024)
#define BATCH_INTERVAL_MS 100
#define BATCH_WARN_INTERVAL 10.0

struct log_batch {
	/* Taken by the owning worker and by a reopen or close on another
	 * thread, never by another worker: uncontended on the request path. */
	pthread_mutex_t lock;
	char *buf;                   /* BATCH_BYTES, allocated at the first line */
	size_t len;
	int write_errno;             /* the last failed write's, 0 after a good one */
	uint64_t dropped;            /* lines lost, in all */
	struct event *timer;         /* the flush interval, on the owner's loop */
	bool armed;
	struct log_every drops;      /* the warning, owner's thread only */
	struct log_batch *next;      /* in batches, under access_lock */
};

/* The part of [P, P+N) that one write(2) may carry to a pipe: whole lines
 * up to PIPE_BUF, or one longer line alone. */
static size_t pipe_chunk(const char *p, size_t n)
{
	if (p == NULL || n <= PIPE_BUF)  /* (p: silences a -Wnonnull false alarm) */
		return n;
	const char *nl = memrchr(p, '\n', PIPE_BUF);
	if (nl == NULL)              /* one line longer than PIPE_BUF */
		nl = memchr(p + PIPE_BUF, '\n', n - PIPE_BUF);
	return nl ? (size_t)(nl - p) + 1 : n;
}

/* Writes what B holds, B->lock held. What a failed write left stays, for
 * the next try. */
static void batch_write_locked(struct log_batch *b)
{
	if (b->len == 0 || b->buf == NULL)
		return;
	int fd = atomic_load_explicit(&access_fd, memory_order_relaxed);
	if (fd < 0 || !atomic_load_explicit(&access_on, memory_order_relaxed)) {
		b->len = 0;                  /* no access log any more */
		return;
	}
	bool pipe_like = atomic_load_explicit(&access_pipe, memory_order_relaxed);
	size_t off = 0;
	while (off < b->len) {
		size_t n = b->len - off;
		if (pipe_like)
			n = pipe_chunk(b->buf + off, n);
		ssize_t w = write(fd, b->buf + off, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			b->write_errno = errno;
			break;
		}
		off += (size_t)w;
		b->write_errno = 0;
	}
	if (off > 0 && off < b->len)
		memmove(b->buf, b->buf + off, b->len - off);
	b->len -= off;
}

static void batches_flush_locked(void)
{
	for (struct log_batch *b = batches; b != NULL; b = b->next) {
		pthread_mutex_lock(&b->lock);
		batch_write_locked(b);
		pthread_mutex_unlock(&b->lock);
	}
}

static void batch_arm(struct log_batch *b)
{
	if (b->armed || b->timer == NULL)
		return;
	struct timeval tv = { 0, BATCH_INTERVAL_MS * 1000 };
	if (evtimer_add(b->timer, &tv) == 0)
		b->armed = true;
}

static void batch_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct log_batch *b = arg;
	b->armed = false;
	pthread_mutex_lock(&b->lock);
	batch_write_locked(b);
	bool left = b->len > 0;          /* a failed write: try again later */
	pthread_mutex_unlock(&b->lock);
	if (left)
		batch_arm(b);
}

struct log_batch *log_batch_new(struct event_base *base)
{
	struct log_batch *b = calloc(1, sizeof(*b));
	if (b == NULL)
		return NULL;
	if (pthread_mutex_init(&b->lock, NULL) != 0) {
		free(b);
		return NULL;
	}
	if (base != NULL && (b->timer = evtimer_new(base, batch_timer_cb, b)) == NULL) {
		pthread_mutex_destroy(&b->lock);
		free(b);
		return NULL;
	}
	pthread_mutex_lock(&access_lock);
	b->next = batches;
	batches = b;
	pthread_mutex_unlock(&access_lock);
	return b;
}

void log_batch_add(struct log_batch *b, const struct access_entry *e)
{
	pthread_mutex_lock(&b->lock);
	if (b->buf == NULL)
		b->buf = malloc(BATCH_BYTES);
	size_t n = 0;
	if (b->buf != NULL) {
		n = log_access_format(e, b->buf + b->len, BATCH_BYTES - b->len);
		if (n == 0 && b->len > 0) {
			batch_write_locked(b);   /* make room */
			n = log_access_format(e, b->buf + b->len, BATCH_BYTES - b->len);
		}
	}
	int err = b->buf == NULL ? ENOMEM : b->write_errno;
	if (n == 0)
		b->dropped++;
	b->len += n;
	if (b->len >= BATCH_FLUSH_BYTES)
		batch_write_locked(b);
	bool left = b->len > 0;
	pthread_mutex_unlock(&b->lock);

	if (left)
		batch_arm(b);
	unsigned long count;
	if (n == 0 && log_every_due(&b->drops, BATCH_WARN_INTERVAL, &count))
		log_warn("access log: %lu line(s) dropped, the worker's buffer is full (%s)",
			 count, err ? strerror(err) : "line longer than the buffer");
}

void log_batch_flush(struct log_batch *b)
{
	pthread_mutex_lock(&b->lock);
	batch_write_locked(b);
	pthread_mutex_unlock(&b->lock);
}

uint64_t log_batch_dropped(struct log_batch *b)
{
	pthread_mutex_lock(&b->lock);
	uint64_t n = b->dropped;
	pthread_mutex_unlock(&b->lock);
	return n;
}

size_t log_batch_pending(struct log_batch *b)
{
	pthread_mutex_lock(&b->lock);
	size_t n = b->len;
	pthread_mutex_unlock(&b->lock);
	return n;
}

void log_batch_free(struct log_batch *b)
{
	if (b == NULL)
		return;
	pthread_mutex_lock(&access_lock);
	for (struct log_batch **p = &batches; *p != NULL; p = &(*p)->next) {
		if (*p == b) {
			*p = b->next;
			break;
		}
	}
	pthread_mutex_unlock(&access_lock);
	log_batch_flush(b);
	if (b->timer)
		event_free(b->timer);
	pthread_mutex_destroy(&b->lock);
	free(b->buf);
	free(b);
}
