/* state_store: the file store. save goes through file_replace (temp file
 * in the same directory, fsync, rename, fsync of the directory), so a reader
 * (or a restart after a crash) sees the old document or the new one, never
 * a mix. The file is created 0600: it is operator data that only the
 * daemon's own user needs to read. */
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

struct state_store_file {
	struct state_store base;   /* first: a state_store * is a state_store_file * */
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

static int file_load(struct state_store *s, json_t **out, char *why, size_t why_len)
{
	const char *path = ((struct state_store_file *)s)->path;
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;   /* nothing stored yet */
		file_error(why, why_len, path, "open", errno);
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		file_error(why, why_len, path, "stat", errno);
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		say(why, why_len, "%s: not a regular file", path);
		goto fail;
	}
	if (st.st_size > STATE_STORE_FILE_MAX)
		goto too_big;

	/* Read to EOF, never past the bound, even if the file grows meanwhile. */
	size_t cap = (size_t)st.st_size + 1, len = 0;
	char *buf = malloc(cap);
	if (!buf) {
		file_error(why, why_len, path, "read", ENOMEM);
		goto fail;
	}
	for (;;) {
		if (len == cap) {
			if (cap > STATE_STORE_FILE_MAX) {
				free(buf);
				goto too_big;
			}
			size_t ncap = cap * 2 > (size_t)STATE_STORE_FILE_MAX + 1
					      ? (size_t)STATE_STORE_FILE_MAX + 1
					      : cap * 2;
			char *nbuf = realloc(buf, ncap);
			if (!nbuf) {
				free(buf);
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
			free(buf);
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	if (len > STATE_STORE_FILE_MAX) {
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
	say(why, why_len, "%s: larger than %d MiB, refused", path, STATE_STORE_FILE_MAX / (1024 * 1024));
	return -1;
fail:
	close(fd);
	return -1;
}

static int file_save(struct state_store *s, const json_t *doc, char *why, size_t why_len)
{
	const char *path = ((struct state_store_file *)s)->path;
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
	return rc;

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
	free(f->path);
	free(f);
}

static const struct state_store_ops file_ops = {
	.load = file_load,
	.save = file_save,
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
	if (!f || !(f->path = strdup(path))) {
		free(f);
		errno = ENOMEM;
		return NULL;
	}
	f->base.ops = &file_ops;
	return &f->base;
}
