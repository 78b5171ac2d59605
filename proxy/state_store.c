/* state_store: the file store. save goes through file_replace (temp file
 * in the same directory, fsync, rename, fsync of the directory), so a reader
 * (or a restart after a crash) sees the old document or the new one, never
 * a mix; append adds one line to PATH.log with one write + fdatasync. A
 * crash mid-append leaves at most a torn last line, which load drops and
 * the next append cuts off. Both files are created 0600: operator data that
 * only the daemon's own user needs to read. */
#include "state_store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file.h"
#include "log.h"

struct state_store_file {
	struct state_store base;   /* first: a state_store * is a state_store_file * */
	char *path;
	char *log_path;            /* PATH.log */
	int log_fd;                /* -1 until the first append */
	off_t log_good;            /* bytes of whole lines in the log; -1 = not read yet */
	size_t doc_bytes;          /* size of the document, to weigh the log against */
};

static void say(char *why, size_t why_len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void say(char *why, size_t why_len, const char *fmt, ...)
{
	if (!why || !why_len)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, why_len, fmt, ap);
	va_end(ap);
}

/* Reads PATH whole into *BUF (*LEN bytes, NUL-terminated), never more than
 * MAX bytes even if the file grows meanwhile. 0, 1 = no such file, -1 with
 * WHY. */
static int slurp(const char *path, size_t max, char **buf_out, size_t *len_out, char *why,
		 size_t why_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 1;
		file_error(why, why_len, path, "open", errno);
		return -1;
	}
	struct stat st;
	char *buf = NULL;
	if (fstat(fd, &st) < 0) {
		file_error(why, why_len, path, "stat", errno);
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		say(why, why_len, "%s: not a regular file", path);
		goto fail;
	}
	if ((size_t)st.st_size > max)
		goto too_big;
	size_t cap = (size_t)st.st_size + 1, len = 0;
	for (;;) {
		if (!buf || len == cap) {
			if (buf && cap > max)
				goto too_big;
			size_t ncap = !buf ? cap : cap * 2 > max + 1 ? max + 1 : cap * 2;
			char *nbuf = realloc(buf, ncap + 1);   /* + the NUL */
			if (!nbuf) {
				file_error(why, why_len, path, "read", ENOMEM);
				goto fail;
			}
			buf = nbuf;
			cap = ncap;
		}
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			file_error(why, why_len, path, "read", errno);
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	if (len > max)
		goto too_big;
	close(fd);
	buf[len] = '\0';
	*buf_out = buf;
	*len_out = len;
	return 0;

too_big:
	say(why, why_len, "%s: larger than %zu MiB, refused", path, max / (1024 * 1024));
fail:
	free(buf);
	close(fd);
	return -1;
}

/* Calls FN for each change in the log text BUF: one object per line. The
 * last line may be torn by a crash mid-append (no newline, or not JSON): it
 * was never acknowledged and is skipped; anything else wrong is corruption.
 * *GOOD = the bytes of the whole lines. FN NULL: only count them (*N). */
static int changes_parse(const char *path, const char *buf, size_t len, state_store_change_fn fn,
			 void *arg, off_t *good, size_t *n, char *why, size_t why_len)
{
	size_t at = 0;
	int line = 0;
	*n = 0;
	while (at < len) {
		const char *nl = memchr(buf + at, '\n', len - at);
		if (!nl)
			break;   /* torn: the newline is written last */
		size_t end = (size_t)(nl - buf) + 1;
		line++;
		json_error_t err;
		json_t *c = json_loadb(buf + at, end - at, JSON_REJECT_DUPLICATES, &err);
		if (!json_is_object(c)) {
			json_decref(c);
			if (end == len)
				break;   /* torn in the middle, newline persisted */
			say(why, why_len, "%s:%d: %s", path, line, c ? "not a JSON object" : err.text);
			return -1;
		}
		char cause[400] = "";
		int rc = fn ? fn(c, arg, cause, sizeof(cause)) : 0;
		json_decref(c);
		if (rc < 0) {
			say(why, why_len, "%s:%d: %s", path, line, cause);
			return -1;
		}
		(*n)++;
		at = end;
	}
	*good = (off_t)at;
	return 0;
}

/* Reads the log (absent = no changes), calling FN for each change. */
static int changes_read(struct state_store_file *f, state_store_change_fn fn, void *arg,
			size_t *n, char *why, size_t why_len)
{
	char *buf = NULL;
	size_t len = 0;
	int rc = slurp(f->log_path, STATE_STORE_LOG_MAX, &buf, &len, why, why_len);
	if (rc < 0)
		return -1;
	rc = changes_parse(f->log_path, rc == 1 ? "" : buf, rc == 1 ? 0 : len, fn, arg,
			   &f->log_good, n, why, why_len);
	free(buf);
	return rc;
}

static int file_load(struct state_store *s, json_t **out, char *why, size_t why_len)
{
	struct state_store_file *f = (struct state_store_file *)s;
	const char *path = f->path;
	*out = NULL;
	char *buf = NULL;
	size_t len = 0, n = 0;
	int rc = slurp(path, STATE_STORE_FILE_MAX, &buf, &len, why, why_len);
	if (rc < 0)
		return -1;
	if (rc == 1) {
		/* The document removed by hand: its changes alone would apply
		 * to "old" everywhere, a guess that must not be silent. */
		if (changes_read(f, NULL, NULL, &n, why, why_len) < 0)
			return -1;
		if (n) {
			say(why, why_len, "%s:1: %zu changes but no %s; remove both to start afresh",
			    f->log_path, n, path);
			return -1;
		}
		return 0;   /* nothing stored yet */
	}
	/* A duplicate key can only come from a hand edit; which one wins would
	 * be a guess, and a guess about the mode must not be silent. */
	json_error_t err;
	json_t *doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &err);
	free(buf);
	if (!doc) {
		say(why, why_len, "%s:%d: %s", path, err.line, err.text);
		return -1;
	}
	if (!json_is_object(doc)) {
		say(why, why_len, "%s: not a JSON object", path);
		json_decref(doc);
		return -1;
	}
	f->doc_bytes = len;
	*out = doc;
	return 0;
}

static int file_replay(struct state_store *s, state_store_change_fn fn, void *arg, char *why,
		       size_t why_len)
{
	size_t n;
	return changes_read((struct state_store_file *)s, fn, arg, &n, why, why_len);
}

/* fsync of the directory holding PATH: a new file's name is durable only
 * once its directory is. */
static int sync_dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir = !slash ? strdup(".") : slash == path ? strdup("/")
				: strndup(path, (size_t)(slash - path));
	if (!dir) {
		errno = ENOMEM;
		return -1;
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	int err = errno;
	close(fd);
	errno = err;
	return rc;
}

static void changes_close(struct state_store_file *f)
{
	if (f->log_fd >= 0)
		close(f->log_fd);
	f->log_fd = -1;
	f->log_good = -1;   /* read it again before the next append */
}

/* Opens the log for appending, created if need be, with a torn tail cut
 * off so that the next line starts clean. */
static int changes_open(struct state_store_file *f, char *why, size_t why_len)
{
	if (f->log_fd >= 0)
		return 0;
	size_t n;
	if (f->log_good < 0 && changes_read(f, NULL, NULL, &n, why, why_len) < 0)
		return -1;
	int fd = open(f->log_path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT) {
		fd = open(f->log_path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0 && (fchmod(fd, 0600) < 0 || sync_dir_of(f->log_path) < 0)) {
			file_error(why, why_len, f->log_path, "create", errno);
			close(fd);
			return -1;
		}
	}
	if (fd < 0) {
		file_error(why, why_len, f->log_path, "open for appending", errno);
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 ||
	    (st.st_size != f->log_good && (ftruncate(fd, f->log_good) < 0 || fdatasync(fd) < 0))) {
		file_error(why, why_len, f->log_path, "cut the torn tail", errno);
		close(fd);
		return -1;
	}
	f->log_fd = fd;
	return 0;
}

static int file_append(struct state_store *s, const json_t *change, char *why, size_t why_len)
{
	struct state_store_file *f = (struct state_store_file *)s;
	char *text = NULL;
	int err = 0;
	const char *step = "serialize";
	if (!json_is_object(change)) {
		err = EINVAL;   /* load would refuse it */
		goto fail;
	}
	if (changes_open(f, why, why_len) < 0)
		return -1;
	if (!(text = json_dumps(change, JSON_COMPACT | JSON_SORT_KEYS))) {
		err = ENOMEM;
		goto fail;
	}
	size_t len = strlen(text);
	text[len++] = '\n';   /* over the NUL: one line, newline last */
	if ((size_t)f->log_good + len > STATE_STORE_LOG_MAX) {
		err = EFBIG;    /* load would refuse the log */
		goto fail;
	}
	step = "append";
	if (file_write_full(f->log_fd, text, len) < 0) {
		err = errno;
		goto undo;
	}
	step = "fdatasync";
	if (fdatasync(f->log_fd) < 0) {
		err = errno;
		goto undo;
	}
	free(text);
	f->log_good += (off_t)len;
	return (size_t)f->log_good >= STATE_STORE_LOG_MIN &&
	       (size_t)f->log_good >= 2 * f->doc_bytes;

undo:
	/* Not acknowledged: take it back if we can, else read the log again
	 * before the next append. */
	if (ftruncate(f->log_fd, f->log_good) < 0 || fdatasync(f->log_fd) < 0)
		changes_close(f);
fail:
	file_error(why, why_len, f->log_path, step, err);
	free(text);
	errno = err;
	return -1;
}

static int file_save(struct state_store *s, const json_t *doc, char *why, size_t why_len)
{
	struct state_store_file *f = (struct state_store_file *)s;
	const char *path = f->path;
	char *text = NULL;
	int err = 0;
	if (!json_is_object(doc)) {
		err = EINVAL;   /* load would refuse it */
		goto fail;
	}
	if (!(text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS))) {
		err = ENOMEM;
		goto fail;
	}
	size_t len = strlen(text);
	if (len + 1 > STATE_STORE_FILE_MAX) {
		/* load would refuse it: don't replace a good file with it */
		err = EFBIG;
		goto fail;
	}
	text[len] = '\n';   /* the NUL is not written: end the file with a newline */
	int rc = file_replace(path, text, len + 1, 0600, why, why_len);
	free(text);
	if (rc < 0)
		return -1;
	f->doc_bytes = len + 1;
	/* The log's changes are all in the document now. Emptying it is
	 * tidiness, not safety: its changes are older than the document
	 * (the owner's generations tell), so a failure here costs nothing
	 * but a longer log. */
	int fd = f->log_fd >= 0 ? f->log_fd : open(f->log_path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0 && ftruncate(fd, 0) == 0 && fdatasync(fd) == 0) {
		f->log_good = 0;
		if (fd != f->log_fd)
			close(fd);
	} else if (fd >= 0 || errno != ENOENT) {
		log_warn("%s: cannot empty after saving %s: %m", f->log_path, path);
		if (fd >= 0 && fd != f->log_fd)
			close(fd);
		changes_close(f);
	} else {
		f->log_good = 0;     /* no log yet */
	}
	return 0;

fail:
	file_error(why, why_len, path, "serialize", err);
	free(text);
	errno = err;
	return -1;
}

static const char *file_name(struct state_store *s)
{
	return ((struct state_store_file *)s)->path;
}

static void file_free(struct state_store *s)
{
	struct state_store_file *f = (struct state_store_file *)s;
	if (f->log_fd >= 0)
		close(f->log_fd);
	free(f->log_path);
	free(f->path);
	free(f);
}

static const struct state_store_ops file_ops = {
	.load = file_load,
	.replay = file_replay,
	.save = file_save,
	.append = file_append,
	.name = file_name,
	.free = file_free,
};

struct state_store *state_store_file_new(const char *path)
{
	if (!path) {
		errno = EINVAL;
		return NULL;
	}
	struct state_store_file *f = calloc(1, sizeof(*f));
	size_t n = strlen(path);
	if (!f || !(f->path = strdup(path)) || !(f->log_path = malloc(n + sizeof(".log")))) {
		if (f)
			free(f->path);
		free(f);
		errno = ENOMEM;
		return NULL;
	}
	memcpy(f->log_path, path, n);
	memcpy(f->log_path + n, ".log", sizeof(".log"));
	f->log_fd = -1;
	f->log_good = -1;
	f->base.ops = &file_ops;
	return &f->base;
}
