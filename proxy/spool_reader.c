/* spool_reader: one record read back from its segment. */
#include "spool_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "file.h"
#include "spool_record.h"

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
	struct spool_reader *rd = calloc(1, sizeof *rd);
	if (!rd)
		return NULL;
	rd->fd = openat(dir_fd, segment, O_RDONLY | O_CLOEXEC);
	uint8_t hb[SPOOL_RECORD_HEADER];
	struct spool_record_hdr h;
	if (rd->fd < 0 || file_pread_full(rd->fd, hb, sizeof hb, off) < 0)
		goto fail;
	if (spool_record_decode_header(hb, sizeof hb, &h) != SPOOL_RECORD_OK || h.id != id) {
		errno = EIO;
		goto fail;
	}
	size_t ml = (size_t)h.project_len + h.route_len + h.head_len;
	if (!(rd->meta = malloc(ml + 2)) || !(rd->sum = spool_sum_new()))
		goto fail;
	uint8_t *p = rd->meta, *rt = p + h.project_len + 1, *hd = rt + h.route_len + 1;
	if (file_pread_full(rd->fd, p, h.project_len, off + SPOOL_RECORD_HEADER) < 0 ||
	    file_pread_full(rd->fd, rt, h.route_len, off + SPOOL_RECORD_HEADER + h.project_len) < 0 ||
	    file_pread_full(rd->fd, hd, h.head_len,
		       off + SPOOL_RECORD_HEADER + h.project_len + h.route_len) < 0)
		goto fail;
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
