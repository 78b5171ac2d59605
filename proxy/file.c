/* file: full writes and the temp file + fsync + rename + fsync dir dance. */
#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void file_error(char *why, size_t why_len, const char *path, const char *step, int err)
{
	if (why && why_len)
		snprintf(why, why_len, "%s: %s: %s", path, step, strerror(err));
}

int file_write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int file_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *b = buf;
	while (len > 0) {
		ssize_t r = pread(fd, b, len, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -1 : (errno = EIO, -1);
		b += r;
		len -= (size_t)r;
		off += (uint64_t)r;
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

int file_replace(const char *path, const void *data, size_t len, mode_t mode, char *why,
		 size_t why_len)
{
	const char *step = "create temp file";
	char *tmp = NULL, *dir = NULL;
	int fd = -1, err = 0;
	bool renamed = false;

	if (asprintf(&tmp, "%s.tmp.%ld", path, (long)getpid()) < 0) {
		tmp = NULL;
		err = ENOMEM;
		goto fail;
	}
	/* No O_EXCL: a temp file left by a crashed process with our pid is
	 * ours to overwrite. O_NOFOLLOW: never write through a planted link. */
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		goto fail_errno;
	step = "chmod temp file";
	if (fchmod(fd, mode) < 0)   /* exactly MODE whatever the umask */
		goto fail_errno;
	step = "write temp file";
	if (file_write_full(fd, data, len) < 0)
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
	return 0;

fail_errno:
	err = errno;
fail:
	if (fd >= 0)
		close(fd);
	if (tmp && !renamed)
		unlink(tmp);
	file_error(why, why_len, path, step, err);
	free(dir);
	free(tmp);
	errno = err;
	return -1;
}
