/* log: the error log (leveled lines to stderr) and the access log (one
 * JSON object per request, to a file or stderr, reopened on SIGUSR1),
 * gathered per worker in a batch and written 32 KiB or 100 ms at a time. */
#ifndef CUTOVER_LOG_H
#define CUTOVER_LOG_H

#include <libconfig.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct conf_reader;
struct config;
struct event_base;

enum log_level { LL_DEBUG, LL_INFO, LL_WARN, LL_ERROR };

struct log_conf {
	char *access;                /* path, "stderr", or NULL = no access log */
	enum log_level level;        /* default LL_INFO */
};

/* Sets every field of C to its default (C is not freed first). */
void log_conf_defaults(struct log_conf *c);
/* Parses the top-level "log" group into cfg->log. */
int log_conf_parse(struct conf_reader *r, const config_setting_t *s, struct config *cfg);
void log_conf_free(struct log_conf *c);
/* "log.access" if the access log path differs, else NULL. */
const char *log_conf_restart_key(const struct log_conf *a, const struct log_conf *b);

/* Opens the access log named by C (if any) and sets the error-log level.
 * Returns 0, or -1 after printing why. */
int log_open(const struct log_conf *c);
/* Reopens the access log file in place (logrotate). Safe to call from the
 * control thread while workers write: every batch is written to the old
 * file first, then the new file replaces the old fd atomically (dup3).
 * Returns 0 or -1 (old file kept). */
int log_reopen(void);
void log_close(void);
void log_set_level(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_debug(...) log_msg(LL_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LL_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LL_ERROR, __VA_ARGS__)

/* Events that would flood the log with a line each (accept failures,
 * refused peers): the first gets its line at once, later ones at most one
 * line per interval, with how many there were. One per thread. */
struct log_every {
	struct timespec last;        /* CLOCK_MONOTONIC of the last line */
	unsigned long count;         /* events since the last line */
	bool started;
};

/* Counts one event on E: true if a line is due (the first, or INTERVAL
 * seconds since the last), with *COUNT the events it stands for. */
bool log_every_due(struct log_every *e, double interval, unsigned long *count);

/* One request. Strings are slices (ptr, len) that need not be
 * NUL-terminated or valid UTF-8; NULL ptr = JSON null. */
struct log_slice {
	const char *ptr;
	size_t len;
};

struct access_entry {
	struct timespec start;       /* CLOCK_REALTIME when the request head arrived */
	struct log_slice client;     /* peer address, numeric */
	struct log_slice method;
	struct log_slice path;       /* request target as sent */
	struct log_slice route;
	struct log_slice project;
	struct log_slice upstream;   /* "old"/"new", NULL if not forwarded */
	int status;                  /* status sent to the client, 0 if none */
	uint64_t bytes_in;           /* request bytes read from the client (head + body) */
	uint64_t bytes_out;          /* response bytes written to the client */
	double upstream_ms;          /* < 0 if not forwarded */
	double total_ms;
};

/* Formats E as one JSON line into BUF (NUL-terminated, ends with '\n').
 * Returns the length, or 0 if it did not fit. Exposed for tests. */
size_t log_access_format(const struct access_entry *e, char *buf, size_t size);
/* Writes E to the access log, if one is open (one write(2) per line). */
void log_access(const struct access_entry *e);
bool log_access_enabled(void);

/* One worker's access log lines, written with one write(2) once they hold
 * 32 KiB or the oldest is 100 ms old (a timer on BASE; NULL BASE: only by
 * size and log_batch_flush), and before a reopen or close. At most 256 KiB:
 * while writes fail, lines past it are dropped, counted and warned about.
 * Used by its worker's thread; reopen and close may write it from another. */
struct log_batch;

struct log_batch *log_batch_new(struct event_base *base);
/* Writes what is left, then frees B (on its worker's thread, or once that
 * worker's loop has stopped: the timer belongs to it). */
void log_batch_free(struct log_batch *b);
/* Adds E's line to B (the access log must be enabled: log_access_enabled). */
void log_batch_add(struct log_batch *b, const struct access_entry *e);
void log_batch_flush(struct log_batch *b);
/* Lines dropped so far, and bytes waiting: for tests. */
uint64_t log_batch_dropped(struct log_batch *b);
size_t log_batch_pending(struct log_batch *b);

#endif
