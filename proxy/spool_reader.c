/* spool_reader: one record read back from its segment. */
#include "spool_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "file.h"
#include "spool_record.h"

/* Bytes read behind the header at open: the names and a usual head. */
#define FIRST_READ_META 2048

struct spool_reader {
	int fd;
	uint64_t at, left;
	struct spool_record_view v;
	uint8_t *meta;               /* project NUL route NUL head */
	struct spool_sum *sum;
	uint8_t want[SPOOL_SUM_LEN];
};

struct spool_reader *spool_reader_open(int dir_fd, const char *segment, uint64_t off, uint64_t id)
{
	int fd = openat(dir_fd, segment, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? NULL : spool_reader_open_fd(fd, off, id);
}

struct spool_reader *spool_reader_open_fd(int fd, uint64_t off, uint64_t id)
{
	struct spool_reader *rd = calloc(1, sizeof *rd);
	if (!rd) {
		close(fd);
		return NULL;
	}
	rd->fd = fd;
	/* The header and, most often, the names and head behind it in one read:
	 * a replay opens thousands of records a second. */
	uint8_t first[SPOOL_RECORD_HEADER + FIRST_READ_META];
	struct spool_record_hdr h;
	ssize_t got = rd->fd < 0 ? -1 : pread(rd->fd, first, sizeof first, (off_t)off);
	if (got >= 0 && (size_t)got < SPOOL_RECORD_HEADER &&
	    file_pread_full(rd->fd, first + got, SPOOL_RECORD_HEADER - (size_t)got,
			    off + (uint64_t)got) == 0)
		got = SPOOL_RECORD_HEADER;
	if (got < (ssize_t)SPOOL_RECORD_HEADER)
		goto fail;
	if (spool_record_decode_header(first, SPOOL_RECORD_HEADER, &h) != SPOOL_RECORD_OK ||
	    h.id != id) {
		errno = EIO;
		goto fail;
	}
	size_t ml = (size_t)h.project_len + h.route_len + h.head_len;
	if (!(rd->meta = malloc(ml + 2)) || !(rd->sum = spool_sum_new()))
		goto fail;
	uint8_t *p = rd->meta, *rt = p + h.project_len + 1, *hd = rt + h.route_len + 1;
	/* the meta bytes as one run: read already, or (a long head) read now */
	const uint8_t *src = first + SPOOL_RECORD_HEADER;
	size_t have = (size_t)got - SPOOL_RECORD_HEADER;
	uint8_t *run = NULL;
	if (have < ml) {
		if (!(run = malloc(ml)))
			goto fail;
		memcpy(run, src, have);
		if (file_pread_full(rd->fd, run + have, ml - have, off + SPOOL_RECORD_HEADER + have) <
		    0) {
			free(run);
			goto fail;
		}
		src = run;
	}
	memcpy(p, src, h.project_len);
	memcpy(rt, src + h.project_len, h.route_len);
	memcpy(hd, src + h.project_len + h.route_len, h.head_len);
	free(run);
	spool_sum_update(rd->sum, p, h.project_len);
	spool_sum_update(rd->sum, rt, h.route_len);
	spool_sum_update(rd->sum, hd, h.head_len);
	p[h.project_len] = rt[h.route_len] = '\0';
	rd->v = (struct spool_record_view){ .id = id, .accepted_us = h.accepted_us,
					    .project = (char *)p, .route = (char *)rt, .head = hd,
					    .head_len = h.head_len, .body_len = h.body_len };
	memcpy(rd->want, h.data_sum, sizeof rd->want);
	rd->at = off + SPOOL_RECORD_HEADER + ml;
	rd->left = h.body_len;
	if (rd->left == 0 && spool_reader_read(rd, NULL, 0) < 0)
		goto fail;
	return rd;
fail:
	spool_reader_close(rd);
	if (!errno)
		errno = EIO;
	return NULL;
}

const struct spool_record_view *spool_reader_view(const struct spool_reader *r)
{
	return &r->v;
}

ssize_t spool_reader_read(struct spool_reader *r, void *buf, size_t n)
{
	if (r->left == 0 && n)
		return 0;
	if (n > r->left)
		n = (size_t)r->left;
	if (n && file_pread_full(r->fd, buf, n, r->at) < 0)
		return -1;
	spool_sum_update(r->sum, buf, n);
	r->at += n;
	r->left -= n;
	if (r->left == 0) {
		/* the last bytes go out only if the whole record still matches */
		uint8_t got[SPOOL_SUM_LEN];
		spool_sum_final(r->sum, got);
		if (memcmp(got, r->want, sizeof got) != 0) {
			errno = EIO;
			return -1;
		}
	}
	return (ssize_t)n;
}

void spool_reader_close(struct spool_reader *r)
{
	if (!r)
		return;
	if (r->fd >= 0)
		close(r->fd);
	free(r->meta);
	spool_sum_free(r->sum);
	free(r);
}
