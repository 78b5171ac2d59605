/* store: the file store. save writes "<path>.tmp.<pid>" in the same
 * directory, fsyncs it, renames it over PATH and fsyncs the directory, so
 * a reader (or a restart after a crash) sees the old document or the new
 * one, never a mix. The file is created 0600: it is operator data that
 * only the daemon's own user needs to read. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct store_file {
	struct store base;   /* first: a struct store * is a struct store_file * */
	char *path;
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

static int file_load(struct store *s, json_t **out, char *why, size_t why_len)
{
	const char *path = ((struct store_file *)s)->path;
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;   /* nothing stored yet */
		say(why, why_len, "%s: open: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		say(why, why_len, "%s: stat: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		say(why, why_len, "%s: not a regular file", path);
		goto fail;
	}
	if (st.st_size > STORE_FILE_MAX)
		goto too_big;

	/* Read to EOF, never past the bound, even if the file grows meanwhile. */
	size_t cap = (size_t)st.st_size + 1, len = 0;
	char *buf = malloc(cap);
	if (!buf) {
		say(why, why_len, "%s: read: %s", path, strerror(ENOMEM));
		goto fail;
	}
	for (;;) {
		if (len == cap) {
			if (cap > STORE_FILE_MAX) {
				free(buf);
				goto too_big;
			}
			size_t ncap = cap * 2 > (size_t)STORE_FILE_MAX + 1 ? (size_t)STORE_FILE_MAX + 1 : cap * 2;
			char *nbuf = realloc(buf, ncap);
			if (!nbuf) {
				free(buf);
				say(why, why_len, "%s: read: %s", path, strerror(ENOMEM));
				goto fail;
			}
			buf = nbuf;
			cap = ncap;
		}
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			say(why, why_len, "%s: read: %s", path, strerror(errno));
			free(buf);
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	if (len > STORE_FILE_MAX) {
		free(buf);
		goto too_big_closed;
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
	*out = doc;
	return 0;

too_big:
	close(fd);
too_big_closed:
	say(why, why_len, "%s: larger than %d MiB, refused", path, STORE_FILE_MAX / (1024 * 1024));
	return -1;
fail:
	close(fd);
	return -1;
}

static int write_full(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, buf, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

/* The directory holding PATH, for its fsync; NULL on ENOMEM. */
static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

static int file_save(struct store *s, const json_t *doc, char *why, size_t why_len)
{
	const char *path = ((struct store_file *)s)->path;
	const char *step = "serialize";
	char *tmp = NULL, *dir = NULL;
	int fd = -1, err = 0;
	bool renamed = false;

	char *text = NULL;
	if (!json_is_object(doc)) {
		err = EINVAL;   /* load would refuse it */
		goto fail;
	}
	if (!(text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS))) {
		err = ENOMEM;
		goto fail;
	}
	size_t len = strlen(text);
	if (len + 1 > STORE_FILE_MAX) {
		/* load would refuse it: don't replace a good file with it */
		err = EFBIG;
		goto fail;
	}
	text[len] = '\n';   /* the NUL is not written: end the file with a newline */

	step = "create temp file";
	if (asprintf(&tmp, "%s.tmp.%ld", path, (long)getpid()) < 0) {
		tmp = NULL;
		err = ENOMEM;
		goto fail;
	}
	/* No O_EXCL: a temp file left by a crashed process with our pid is
	 * ours to overwrite. O_NOFOLLOW: never write through a planted link. */
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		goto fail_errno;
	step = "chmod temp file";
	if (fchmod(fd, 0600) < 0)   /* exactly 0600 whatever the umask */
		goto fail_errno;
	step = "write temp file";
	if (write_full(fd, text, len + 1) < 0)
		goto fail_errno;
	step = "fsync temp file";
	if (fsync(fd) < 0)
		goto fail_errno;
	step = "close temp file";
	int rc = close(fd);
	fd = -1;
	if (rc < 0)
		goto fail_errno;
	step = "rename temp file";
	if (rename(tmp, path) < 0)
		goto fail_errno;
	renamed = true;

	/* The rename itself is durable only once the directory is. */
	step = "open directory";
	if (!(dir = dir_of(path))) {
		err = ENOMEM;
		goto fail;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		goto fail_errno;
	step = "fsync directory";
	if (fsync(fd) < 0)
		goto fail_errno;
	close(fd);
	free(dir);
	free(tmp);
	free(text);
	return 0;

fail_errno:
	err = errno;
fail:
	if (fd >= 0)
		close(fd);
	if (tmp && !renamed)
		unlink(tmp);
	say(why, why_len, "%s: %s: %s", path, step, strerror(err));
	free(dir);
	free(tmp);
	free(text);
	errno = err;
	return -1;
}

static const char *file_name(struct store *s)
{
	return ((struct store_file *)s)->path;
}

static void file_free(struct store *s)
{
	struct store_file *f = (struct store_file *)s;
	free(f->path);
	free(f);
}

static const struct store_ops file_ops = {
	.load = file_load,
	.save = file_save,
	.name = file_name,
	.free = file_free,
};

struct store *store_file_new(const char *path)
{
	if (!path) {
		errno = EINVAL;
		return NULL;
	}
	struct store_file *f = calloc(1, sizeof(*f));
	if (!f || !(f->path = strdup(path))) {
		free(f);
		errno = ENOMEM;
		return NULL;
	}
	f->base.ops = &file_ops;
	return &f->base;
}
