/* journal: the audit trail of operator actions, one JSON object per line.
 * Each entry is one write(2) on an O_APPEND fd followed by fsync(2), so an
 * acknowledged action is on stable storage; a crash can at worst leave a
 * torn last line, which journal_tail skips and the next append steps over. */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "file.h"

/* Tail reads the file backwards in blocks of this size. */
#define TAIL_BLOCK (64 * 1024)

struct journal {
	int wfd;        /* O_WRONLY|O_APPEND: the only writer */
	int rfd;        /* O_RDONLY on the same file, for journal_tail */
	bool need_nl;   /* the file ends in a torn line: start the next entry on a new one */
	char *path;
};

static ssize_t pread_full(int fd, char *buf, size_t len, off_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t r = pread(fd, buf + done, len - done, off + (off_t)done);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

/* Whether the file ends in a torn line (its last byte is not '\n'), read
 * from the file itself: the O_APPEND writes are all ours, so its end is
 * where our last write stopped. */
static int ends_torn(struct journal *j, bool *torn)
{
	struct stat st;
	char last;
	if (fstat(j->rfd, &st) < 0)
		return -1;
	if (st.st_size == 0) {
		*torn = false;
		return 0;
	}
	errno = 0;
	if (pread_full(j->rfd, &last, 1, st.st_size - 1) != 1) {
		if (errno == 0)
			errno = EIO;   /* the file shrank under us */
		return -1;
	}
	*torn = last != '\n';
	return 0;
}

struct journal *journal_open(const char *path, char *why, size_t why_len)
{
	struct journal *j = calloc(1, sizeof(*j));
	if (!j || !(j->path = strdup(path))) {
		file_error(why, why_len, path, "open", ENOMEM);
		free(j);
		return NULL;
	}
	j->rfd = -1;
	j->wfd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (j->wfd < 0) {
		file_error(why, why_len, path, "open for appending", errno);
		goto fail;
	}
	j->rfd = open(path, O_RDONLY | O_CLOEXEC);
	if (j->rfd < 0) {
		file_error(why, why_len, path, "open for reading", errno);
		goto fail;
	}
	struct stat st;
	if (fstat(j->wfd, &st) < 0) {
		file_error(why, why_len, path, "stat", errno);
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		if (why && why_len)
			snprintf(why, why_len, "%s: not a regular file", path);
		goto fail;
	}
	if (ends_torn(j, &j->need_nl) < 0) {
		file_error(why, why_len, path, "read", errno);
		goto fail;
	}
	return j;
fail:
	journal_close(j);
	return NULL;
}

void journal_close(struct journal *j)
{
	if (!j)
		return;
	if (j->wfd >= 0)
		close(j->wfd);
	if (j->rfd >= 0)
		close(j->rfd);
	free(j->path);
	free(j);
}

/* RFC 3339, UTC, milliseconds: 2024-05-01T12:34:56.789Z */
static int format_now(char buf[32])
{
	struct timespec ts;
	struct tm tm;
	if (clock_gettime(CLOCK_REALTIME, &ts) < 0 || !gmtime_r(&ts.tv_sec, &tm))
		return -1;
	size_t n = strftime(buf, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	if (n == 0)
		return -1;
	snprintf(buf + n, 32 - n, ".%03ldZ", ts.tv_nsec / 1000000);
	return 0;
}

int journal_append(struct journal *j, json_t *entry)
{
	if (!j || !json_is_object(entry)) {
		errno = EINVAL;
		return -1;
	}
	if (!json_object_get(entry, "time")) {
		char now[32];
		if (format_now(now) < 0 || json_object_set_new(entry, "time", json_string(now)) < 0) {
			errno = ENOMEM;
			return -1;
		}
	}
	/* JSON_COMPACT escapes control characters inside strings, so the
	 * text has no newline; checked anyway since a line is the unit. */
	char *text = json_dumps(entry, JSON_COMPACT);
	if (!text) {
		errno = ENOMEM;
		return -1;
	}
	size_t len = strlen(text);
	if (memchr(text, '\n', len)) {
		free(text);
		errno = EINVAL;
		return -1;
	}
	if (len > JOURNAL_LINE_MAX) {
		free(text);
		errno = EMSGSIZE;
		return -1;
	}
	/* One buffer, one write: [\n] entry \n */
	size_t lead = j->need_nl ? 1 : 0;
	char *line = malloc(lead + len + 1);
	if (!line) {
		free(text);
		errno = ENOMEM;
		return -1;
	}
	if (lead)
		line[0] = '\n';
	memcpy(line + lead, text, len);
	line[lead + len] = '\n';
	free(text);

	int rc = file_write_full(j->wfd, line, lead + len + 1);
	int err = errno;
	free(line);
	if (rc < 0) {
		/* Part of the line may be on disk now: step over it next time
		 * (if the file cannot tell, an empty line costs nothing). */
		bool torn;
		j->need_nl = ends_torn(j, &torn) < 0 || torn;
		errno = err;
		return -1;
	}
	j->need_nl = false;
	if (fsync(j->wfd) < 0)
		return -1;
	return 0;
}

static pthread_mutex_t posted_mu = PTHREAD_MUTEX_INITIALIZER;
static json_t *posted;               /* array, under posted_mu */
static unsigned long posted_dropped;

void journal_post(json_t *entry)
{
	char now[32];
	if (entry && !json_object_get(entry, "time") && format_now(now) == 0)
		json_object_set_new(entry, "time", json_string(now));
	pthread_mutex_lock(&posted_mu);
	if (!posted)
		posted = json_array();
	if (entry && posted && json_array_size(posted) < JOURNAL_POSTED_MAX)
		json_array_append(posted, entry);
	else
		posted_dropped++;
	pthread_mutex_unlock(&posted_mu);
	json_decref(entry);
}

unsigned long journal_write_posted(struct journal *j)
{
	pthread_mutex_lock(&posted_mu);
	json_t *list = posted;
	unsigned long dropped = posted_dropped;
	posted = NULL;
	posted_dropped = 0;
	pthread_mutex_unlock(&posted_mu);
	size_t i;
	json_t *e;
	json_array_foreach(list, i, e) {
		if (journal_append(j, e) < 0)
			dropped++;
	}
	json_decref(list);
	return dropped;
}

/* Parses one line; keeps it (in NEWEST, newest first) if it is an object.
 * *BYTES counts the text kept, for the JOURNAL_TAIL_BYTES bound. */
static bool keep_line(json_t *newest, const char *s, size_t len, size_t *bytes)
{
	if (len == 0)
		return false;
	if (*bytes + len > JOURNAL_TAIL_BYTES) {
		*bytes = JOURNAL_TAIL_BYTES;    /* full: older entries would leave a gap */
		return false;
	}
	json_t *v = json_loadb(s, len, 0, NULL);
	if (!json_is_object(v)) {
		json_decref(v);
		return false;
	}
	if (json_array_append_new(newest, v) < 0)
		return false;
	*bytes += len;
	return true;
}

json_t *journal_tail(struct journal *j, size_t n)
{
	if (!j) {
		errno = EINVAL;
		return NULL;
	}
	if (n > JOURNAL_TAIL_MAX)
		n = JOURNAL_TAIL_MAX;
	json_t *newest = json_array();     /* newest first while reading */
	if (!newest) {
		errno = ENOMEM;
		return NULL;
	}
	struct stat st;
	if (n > 0 && fstat(j->rfd, &st) < 0)
		goto fail;

	/* WIN holds file bytes [lo, lo + wlen) not consumed yet: the start of
	 * the line being assembled. Complete lines are cut off its end. It
	 * never holds more than one line (<= JOURNAL_LINE_MAX) plus a block;
	 * a longer line is dropped while skipping to its start. */
	size_t cap = JOURNAL_LINE_MAX + TAIL_BLOCK + 1, wlen = 0, found = 0, bytes = 0;
	if (n > 0 && (off_t)cap > st.st_size + 1)
		cap = (size_t)st.st_size + 1;   /* a small file needs no more */
	char *win = n > 0 ? malloc(cap) : NULL;
	if (n > 0 && !win) {
		errno = ENOMEM;
		goto fail;
	}
	off_t lo = n > 0 ? st.st_size : 0;
	bool started = false;  /* the file's last '\n' was seen (what follows is torn) */
	bool skipping = false; /* dropping an overlong line until its start */
	while (found < n && lo > 0 && bytes < JOURNAL_TAIL_BYTES) {
		size_t blen = lo < TAIL_BLOCK ? (size_t)lo : TAIL_BLOCK;
		if (wlen + blen > cap - 1) {
			/* no '\n' within JOURNAL_LINE_MAX: an overlong or torn line */
			wlen = 0;
			skipping = true;
			started = true;
		}
		lo -= (off_t)blen;
		memmove(win + blen, win, wlen);
		ssize_t r = pread_full(j->rfd, win, blen, lo);
		if (r < 0) {
			free(win);
			goto fail;
		}
		if ((size_t)r < blen) {
			/* the file shrank under us: keep what was parsed */
			break;
		}
		wlen += blen;
		for (;;) {
			char *nl = memrchr(win, '\n', wlen);
			if (!nl)
				break;
			size_t at = (size_t)(nl - win);
			if (!started)
				started = true;         /* bytes after the last '\n' are torn */
			else if (skipping)
				skipping = false;
			else if (keep_line(newest, nl + 1, wlen - at - 1, &bytes) && ++found == n)
				break;
			wlen = at;
		}
		if (lo == 0 && found < n && started && !skipping)
			keep_line(newest, win, wlen, &bytes);   /* the file's first line */
	}
	free(win);

	json_t *out = json_array();
	if (!out) {
		errno = ENOMEM;
		goto fail;
	}
	for (size_t i = json_array_size(newest); i-- > 0;)
		if (json_array_append(out, json_array_get(newest, i)) < 0) {
			json_decref(out);
			errno = ENOMEM;
			goto fail;
		}
	json_decref(newest);
	return out;
fail:
	json_decref(newest);
	return NULL;
}
