/* spool_recover: the spool directory as a start finds it, made consistent. */
#include "spool_recover.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file.h"
#include "log.h"

#define BLOCK (64u << 10)

void spool_segment_name(uint64_t first_id, char out[SPOOL_SEGMENT_NAME_MAX])
{
	snprintf(out, SPOOL_SEGMENT_NAME_MAX, "seg-%016" PRIx64 ".spool", first_id);
}

int spool_recover_dir(const char *dir, char *why, size_t why_len)
{
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		file_error(why, why_len, dir, "mkdir", errno);
		return -1;
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		file_error(why, why_len, dir, "open", errno);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	/* It holds credentials (Authorization is kept for the replay). */
	if (st.st_uid != geteuid()) {
		snprintf(why, why_len, "%s: owned by uid %u, not by us (uid %u): refusing to use it",
			 dir, (unsigned)st.st_uid, (unsigned)geteuid());
		close(fd);
		return -1;
	}
	/* Ours but open to others (e.g. made by `mkdir -p`): closed, said once.
	 * The files inside are 0600 whatever the directory's mode was. */
	if (st.st_mode & 077) {
		if (fchmod(fd, 0700) < 0) {
			snprintf(why, why_len, "%s: mode %04o lets group or others in and chmod 700 "
				 "failed: %s", dir, (unsigned)(st.st_mode & 07777), strerror(errno));
			close(fd);
			return -1;
		}
		log_warn("spool %s: mode was %04o (it holds credentials): set to 0700", dir,
			 (unsigned)(st.st_mode & 07777));
	}
	if (mkdirat(fd, "quarantine", 0700) < 0 && errno != EEXIST) {
		file_error(why, why_len, dir, "mkdir quarantine", errno);
		close(fd);
		return -1;
	}
	return fd;
}

static int parse_segment_name(const char *n, uint64_t *id)
{
	char tail[8];
	unsigned long long v;
	if (strlen(n) != 26 || sscanf(n, "seg-%16llx%7s", &v, tail) != 2 ||
	    strcmp(tail, ".spool") != 0)
		return -1;
	*id = v;
	return 0;
}

static int cmp_seg(const void *a, const void *b)
{
	return strcmp(((const struct spool_found_segment *)a)->name,
		      ((const struct spool_found_segment *)b)->name);
}

static int cmp_rec(const void *a, const void *b)
{
	uint64_t x = ((const struct spool_found_record *)a)->id;
	uint64_t y = ((const struct spool_found_record *)b)->id;
	return x < y ? -1 : x > y;
}

static void *grow(void *p, size_t n, size_t elem)
{
	/* doubling on powers of two: N is the count before the append */
	if (n && (n & (n - 1)))
		return p;
	void *q = realloc(p, (n ? 2 * n : 8) * elem);
	if (!q)
		abort();
	return q;
}

struct scan_ctx {
	int fd;
	const char *seg;
	uint32_t seg_idx;
	struct spool_recovery *out;
	size_t first_rec;            /* this segment's records start here */
	struct { uint64_t off, len; enum spool_record_status why; } *dmg;
	size_t n_dmg;
	int err;
};

static ssize_t scan_read(void *ctx, uint64_t off, void *buf, size_t n)
{
	struct scan_ctx *c = ctx;
	ssize_t r;
	do
		r = pread(c->fd, buf, n, (off_t)off);
	while (r < 0 && errno == EINTR);
	return r;
}

static void scan_record(void *ctx, uint64_t off, const struct spool_record_hdr *h)
{
	struct scan_ctx *c = ctx;
	struct spool_recovery *o = c->out;
	o->recs = grow(o->recs, o->n_recs, sizeof *o->recs);
	struct spool_found_record *r = &o->recs[o->n_recs];
	*r = (struct spool_found_record){ .id = h->id, .off = off, .size = spool_record_size(h),
					  .body_len = h->body_len, .accepted_us = h->accepted_us,
					  .seg = c->seg_idx };
	/* the data sum matched, so the project bytes are the ones written */
	if (scan_read(c, off + SPOOL_RECORD_HEADER, r->project, h->project_len) !=
	    (ssize_t)h->project_len) {
		c->err = errno ? errno : EIO;
		return;
	}
	r->project[h->project_len] = '\0';
	o->n_recs++;
}

static void scan_damage(void *ctx, uint64_t off, uint64_t len, enum spool_record_status why)
{
	struct scan_ctx *c = ctx;
	c->dmg = grow(c->dmg, c->n_dmg, sizeof *c->dmg);
	c->dmg[c->n_dmg].off = off;
	c->dmg[c->n_dmg].len = len;
	c->dmg[c->n_dmg].why = why;
	c->n_dmg++;
}

/* Copies LEN bytes at OFF of IN to OUT at OUT_OFF. */
static int copy_range(int in, uint64_t off, int out, uint64_t out_off, uint64_t len, uint8_t *buf)
{
	while (len > 0) {
		size_t n = len < BLOCK ? (size_t)len : BLOCK;
		ssize_t r = pread(in, buf, n, (off_t)off);
		if (r <= 0)
			return r < 0 ? -1 : (errno = EIO, -1);
		if (pwrite(out, buf, (size_t)r, (off_t)out_off) != r)
			return -1;
		off += (uint64_t)r;
		out_off += (uint64_t)r;
		len -= (uint64_t)r;
	}
	return 0;
}

/* Copies the damaged ranges of segment C->seg to quarantine/; then, unless
 * the only damage is a cut-short tail (cut off by the caller), rewrites the
 * segment with its good records only (temp file, fsync, rename). */
static int quarantine(int dir_fd, const char *dir, struct scan_ctx *c, int tail_only, char *why,
		      size_t why_len)
{
	struct spool_recovery *o = c->out;
	uint8_t *buf = malloc(BLOCK);
	if (!buf)
		abort();
	int rc = -1;
	for (size_t i = 0; i < c->n_dmg; i++) {
		o->damage = grow(o->damage, o->n_damage, sizeof *o->damage);
		struct spool_damage *d = &o->damage[o->n_damage];
		*d = (struct spool_damage){ .offset = c->dmg[i].off, .length = c->dmg[i].len };
		snprintf(d->segment, sizeof d->segment, "%s", c->seg);
		snprintf(d->reason, sizeof d->reason, "%s", spool_record_status_text(c->dmg[i].why));
		int q = -1;
		for (int k = 0; k < 1000 && q < 0; k++) {
			snprintf(d->quarantine, sizeof d->quarantine, "quarantine/%s.%" PRIu64 ".%d",
				 c->seg, d->offset, k);
			q = openat(dir_fd, d->quarantine, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
			if (q < 0 && errno != EEXIST)
				break;
		}
		if (q < 0 || copy_range(c->fd, d->offset, q, 0, d->length, buf) < 0 || fsync(q) < 0) {
			file_error(why, why_len, dir, d->quarantine, errno);
			if (q >= 0)
				close(q);
			goto out;
		}
		close(q);
		o->n_damage++;
	}
	if (tail_only) {
		rc = 0;
		goto out;
	}
	char tmp[SPOOL_SEGMENT_NAME_MAX + 8];
	snprintf(tmp, sizeof tmp, "%s.tmp", c->seg);
	int t = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	uint64_t at = 0;
	int copied = t >= 0;
	for (size_t i = c->first_rec; copied && i < o->n_recs; i++) {
		struct spool_found_record *r = &o->recs[i];
		if (copy_range(c->fd, r->off, t, at, r->size, buf) < 0)
			copied = 0;
		r->off = at;
		at += r->size;
	}
	if (!copied || fsync(t) < 0 || renameat(dir_fd, tmp, dir_fd, c->seg) < 0 ||
	    fsync(dir_fd) < 0) {
		file_error(why, why_len, dir, tmp, errno);
		if (t >= 0) {
			close(t);
			unlinkat(dir_fd, tmp, 0);
		}
		goto out;
	}
	close(t);
	rc = 0;
out:
	free(buf);
	return rc;
}

/* Scans one segment; repairs it; an empty one is deleted. */
static int scan_segment(int dir_fd, const char *dir, struct spool_recovery *o, uint32_t idx,
			char *why, size_t why_len)
{
	struct spool_found_segment *g = &o->segs[idx];
	struct scan_ctx c = { .seg = g->name, .seg_idx = idx, .out = o, .first_rec = o->n_recs };
	struct stat st;
	c.fd = openat(dir_fd, g->name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (c.fd < 0 || fstat(c.fd, &st) < 0) {
		file_error(why, why_len, dir, g->name, errno);
		goto fail;
	}
	struct spool_scan_ops ops = { .read = scan_read, .record = scan_record,
				      .damage = scan_damage, .ctx = &c };
	int64_t end = spool_record_scan(&ops, (uint64_t)st.st_size);
	if (end < 0 || c.err) {
		file_error(why, why_len, dir, g->name, c.err ? c.err : errno);
		goto fail;
	}
	/* A record cut short at the end: one a crash stopped mid-write (never
	 * acknowledged) or an acknowledged one a damaged disk cut; the two look
	 * alike, so its bytes are kept and reported too, then cut off. */
	int torn = (uint64_t)end < (uint64_t)st.st_size;
	int only_torn = torn && !c.n_dmg;
	if (torn)
		scan_damage(&c, (uint64_t)end, (uint64_t)st.st_size - (uint64_t)end,
			    SPOOL_RECORD_SHORT);
	if (c.n_dmg && quarantine(dir_fd, dir, &c, only_torn, why, why_len) < 0)
		goto fail;
	if (only_torn && (ftruncate(c.fd, end) < 0 || fsync(c.fd) < 0)) {
		file_error(why, why_len, dir, g->name, errno);
		goto fail;
	}
	g->size = 0;
	for (size_t i = c.first_rec; i < o->n_recs; i++)
		g->size += o->recs[i].size;
	if (o->n_recs == c.first_rec && unlinkat(dir_fd, g->name, 0) < 0) {
		file_error(why, why_len, dir, g->name, errno);
		goto fail;
	}
	close(c.fd);
	free(c.dmg);
	return 0;
fail:
	if (c.fd >= 0)
		close(c.fd);
	free(c.dmg);
	return -1;
}

/* Reads the marker log; a torn last entry is cut off, a damaged one skipped
 * (the scan resumes on the next entry whose sum matches). */
static int read_markers(int dir_fd, const char *dir, struct spool_recovery *o, char *why,
			size_t why_len)
{
	int fd = openat(dir_fd, SPOOL_MARKERS_FILE, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		file_error(why, why_len, dir, SPOOL_MARKERS_FILE, errno);
		return -1;
	}
	struct stat st;
	uint8_t *buf = malloc(BLOCK);
	if (!buf)
		abort();
	int rc = -1;
	if (fstat(fd, &st) < 0)
		goto out;
	uint64_t size = (uint64_t)st.st_size, off = 0;
	while (off < size) {
		size_t avail = size - off < BLOCK ? (size_t)(size - off) : BLOCK;
		if (pread(fd, buf, avail, (off_t)off) != (ssize_t)avail)
			goto out;
		size_t pos = 0;
		for (;;) {
			struct spool_marker m;
			ssize_t n = spool_marker_decode(buf + pos, avail - pos, &m);
			if (n > 0) {
				o->marks = grow(o->marks, o->n_marks, sizeof *o->marks);
				o->marks[o->n_marks++] = m;
				/* every id a marker names was used: a new record
				 * taking it would meet the old record's fate */
				if (m.id > o->max_id)
					o->max_id = m.id;
				pos += (size_t)n;
			} else if (n < 0) {
				pos++;
			} else {
				break; /* needs bytes past this block */
			}
			if (pos == avail)
				break;
		}
		if (pos == 0 || (off + avail == size && pos < avail)) {
			/* an entry cut short at the end: never made durable, cut off */
			if (off + avail == size) {
				if (ftruncate(fd, (off_t)(off + pos)) < 0 || fsync(fd) < 0)
					goto out;
				break;
			}
			pos = 1; /* cannot happen: an entry is smaller than a block */
		}
		off += pos;
	}
	rc = 0;
out:
	if (rc < 0)
		file_error(why, why_len, dir, SPOOL_MARKERS_FILE, errno ? errno : EIO);
	free(buf);
	close(fd);
	return rc;
}

int spool_recover(int dir_fd, const char *dir, struct spool_recovery *o, char *why, size_t why_len)
{
	*o = (struct spool_recovery){ 0 };
	int dfd = dup(dir_fd);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		file_error(why, why_len, dir, "opendir", errno);
		if (dfd >= 0)
			close(dfd);
		return -1;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		uint64_t id;
		size_t l = strlen(e->d_name);
		if (l > 4 && strcmp(e->d_name + l - 4, ".tmp") == 0) {
			unlinkat(dir_fd, e->d_name, 0); /* a rewrite a crash interrupted */
			continue;
		}
		if (parse_segment_name(e->d_name, &id) < 0)
			continue;
		o->segs = grow(o->segs, o->n_segs, sizeof *o->segs);
		memset(&o->segs[o->n_segs], 0, sizeof *o->segs);
		snprintf(o->segs[o->n_segs].name, SPOOL_SEGMENT_NAME_MAX, "%s", e->d_name);
		o->n_segs++;
	}
	closedir(d);
	if (o->n_segs)
		qsort(o->segs, o->n_segs, sizeof *o->segs, cmp_seg);
	for (size_t i = 0; i < o->n_segs; i++)
		if (scan_segment(dir_fd, dir, o, (uint32_t)i, why, why_len) < 0)
			goto fail;
	if (o->n_recs)
		qsort(o->recs, o->n_recs, sizeof *o->recs, cmp_rec);
	for (size_t i = 0; i < o->n_recs; i++)
		if (o->recs[i].id > o->max_id)
			o->max_id = o->recs[i].id;
	if (read_markers(dir_fd, dir, o, why, why_len) < 0)
		goto fail;
	return 0;
fail:
	spool_recovery_free(o);
	return -1;
}

void spool_recovery_free(struct spool_recovery *r)
{
	free(r->segs);
	free(r->recs);
	free(r->marks);
	free(r->damage);
	*r = (struct spool_recovery){ 0 };
}
