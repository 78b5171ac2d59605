/* spool_record: the record format, its sums and the scan of a segment. */
#include "spool_record.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

static const uint8_t magic[4] = { 'C', 'S', 'P', 'L' };

/* The scan reads at most this much at once: a 32 MiB body is checked in
 * pieces, never held whole. */
#define SCAN_BLOCK (64u << 10)

const char *spool_record_status_text(enum spool_record_status st)
{
	switch (st) {
	case SPOOL_RECORD_OK: return "ok";
	case SPOOL_RECORD_SHORT: return "cut short";
	case SPOOL_RECORD_BAD_MAGIC: return "bad magic";
	case SPOOL_RECORD_BAD_VERSION: return "unknown version";
	case SPOOL_RECORD_BAD_HEADER_SUM: return "header checksum mismatch";
	case SPOOL_RECORD_BAD_LENGTH: return "impossible length";
	case SPOOL_RECORD_BAD_DATA_SUM: return "data checksum mismatch";
	}
	return "?";
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

uint64_t spool_record_size(const struct spool_record_hdr *h)
{
	return SPOOL_RECORD_HEADER + (uint64_t)h->project_len + h->route_len + h->head_len +
	       h->body_len;
}

static void header_sum(const uint8_t *p, uint8_t out[8])
{
	uint8_t md[32];
	unsigned int len = 0;
	if (!EVP_Digest(p, 56, md, &len, EVP_sha256(), NULL))
		abort(); /* SHA-256 cannot fail short of a broken OpenSSL */
	memcpy(out, md, 8);
}

void spool_record_encode_header(const struct spool_record_hdr *h, uint8_t *out)
{
	memcpy(out, magic, 4);
	put16(out + 4, SPOOL_RECORD_VERSION);
	put16(out + 6, 0);
	put64(out + 8, h->id);
	put64(out + 16, (uint64_t)h->accepted_us);
	put64(out + 24, h->body_len);
	put32(out + 32, h->head_len);
	put16(out + 36, h->project_len);
	put16(out + 38, h->route_len);
	memcpy(out + 40, h->data_sum, SPOOL_SUM_LEN);
	header_sum(out, out + 56);
}

enum spool_record_status spool_record_decode_header(const uint8_t *p, size_t n,
						    struct spool_record_hdr *h)
{
	if (n < SPOOL_RECORD_HEADER)
		return SPOOL_RECORD_SHORT;
	if (memcmp(p, magic, 4) != 0)
		return SPOOL_RECORD_BAD_MAGIC;
	uint8_t sum[8];
	header_sum(p, sum);
	if (memcmp(sum, p + 56, 8) != 0)
		return SPOOL_RECORD_BAD_HEADER_SUM;
	if (get16(p + 4) != SPOOL_RECORD_VERSION || get16(p + 6) != 0)
		return SPOOL_RECORD_BAD_VERSION;
	h->id = get64(p + 8);
	h->accepted_us = (int64_t)get64(p + 16);
	h->body_len = get64(p + 24);
	h->head_len = get32(p + 32);
	h->project_len = get16(p + 36);
	h->route_len = get16(p + 38);
	memcpy(h->data_sum, p + 40, SPOOL_SUM_LEN);
	if (h->project_len == 0 || h->project_len > SPOOL_RECORD_PROJECT_MAX ||
	    h->route_len > SPOOL_RECORD_ROUTE_MAX || h->head_len == 0 ||
	    h->head_len > SPOOL_RECORD_HEAD_MAX || h->body_len > SPOOL_RECORD_BODY_MAX ||
	    h->id == 0)
		return SPOOL_RECORD_BAD_LENGTH;
	return SPOOL_RECORD_OK;
}

struct spool_sum {
	EVP_MD_CTX *ctx;
};

struct spool_sum *spool_sum_new(void)
{
	struct spool_sum *s = malloc(sizeof *s);
	if (!s)
		return NULL;
	s->ctx = EVP_MD_CTX_new();
	if (!s->ctx || !EVP_DigestInit_ex(s->ctx, EVP_sha256(), NULL)) {
		EVP_MD_CTX_free(s->ctx);
		free(s);
		return NULL;
	}
	return s;
}

void spool_sum_update(struct spool_sum *s, const void *p, size_t n)
{
	if (n && !EVP_DigestUpdate(s->ctx, p, n))
		abort();
}

void spool_sum_final(struct spool_sum *s, uint8_t out[SPOOL_SUM_LEN])
{
	uint8_t md[32];
	unsigned int len = 0;
	if (!EVP_DigestFinal_ex(s->ctx, md, &len) || !EVP_DigestInit_ex(s->ctx, EVP_sha256(), NULL))
		abort();
	memcpy(out, md, SPOOL_SUM_LEN);
}

void spool_sum_free(struct spool_sum *s)
{
	if (s) {
		EVP_MD_CTX_free(s->ctx);
		free(s);
	}
}

/* Reads exactly N bytes at OFF; 1 done, 0 short (the end), -1 error. */
static int read_full(const struct spool_scan_ops *ops, uint64_t off, uint8_t *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = ops->read(ops->ctx, off + got, buf + got, n - got);
		if (r < 0)
			return -1;
		if (r == 0)
			return 0;
		got += (size_t)r;
	}
	return 1;
}

/* Checks the data sum of the record at OFF: 1 good, 0 bad, -1 read error. */
static int check_data(const struct spool_scan_ops *ops, struct spool_sum *sum, uint8_t *buf,
		      uint64_t off, const struct spool_record_hdr *h)
{
	uint64_t left = spool_record_size(h) - SPOOL_RECORD_HEADER;
	off += SPOOL_RECORD_HEADER;
	while (left > 0) {
		size_t n = left < SCAN_BLOCK ? (size_t)left : SCAN_BLOCK;
		int r = read_full(ops, off, buf, n);
		if (r <= 0)
			return r < 0 ? -1 : 0;
		spool_sum_update(sum, buf, n);
		off += n;
		left -= n;
	}
	uint8_t got[SPOOL_SUM_LEN];
	spool_sum_final(sum, got);
	return memcmp(got, h->data_sum, SPOOL_SUM_LEN) == 0;
}

/* The first offset after FROM holding a header that checks (its data
 * unchecked), or SIZE: where the scan resumes after damage. */
static int64_t resync(const struct spool_scan_ops *ops, uint8_t *buf, uint64_t from, uint64_t size)
{
	uint64_t pos = from + 1;
	while (pos + SPOOL_RECORD_HEADER <= size) {
		uint64_t want = size - pos < SCAN_BLOCK ? size - pos : SCAN_BLOCK;
		if (read_full(ops, pos, buf, (size_t)want) < 0)
			return -1;
		for (size_t i = 0; i + 4 <= want; i++) {
			if (buf[i] != 'C' || memcmp(buf + i, magic, 4) != 0)
				continue;
			uint8_t hb[SPOOL_RECORD_HEADER];
			if (pos + i + SPOOL_RECORD_HEADER > size)
				return (int64_t)size;
			if (read_full(ops, pos + i, hb, sizeof hb) < 0)
				return -1;
			struct spool_record_hdr h;
			if (spool_record_decode_header(hb, sizeof hb, &h) == SPOOL_RECORD_OK)
				return (int64_t)(pos + i);
		}
		/* the last 3 bytes may start a magic cut by the block's end */
		pos += want > 3 ? want - 3 : 1;
	}
	return (int64_t)size;
}

int64_t spool_record_scan(const struct spool_scan_ops *ops, uint64_t size)
{
	uint8_t *buf = malloc(SCAN_BLOCK);
	struct spool_sum *sum = spool_sum_new();
	int64_t end = -1;
	if (!buf || !sum)
		goto out;
	uint64_t off = 0;
	while (off < size) {
		uint8_t hb[SPOOL_RECORD_HEADER];
		if (size - off < SPOOL_RECORD_HEADER) {
			end = (int64_t)off; /* a header cut short */
			goto out;
		}
		if (read_full(ops, off, hb, sizeof hb) <= 0)
			goto out;
		struct spool_record_hdr h;
		enum spool_record_status st = spool_record_decode_header(hb, sizeof hb, &h);
		if (st == SPOOL_RECORD_OK) {
			uint64_t len = spool_record_size(&h);
			if (len > size - off) {
				end = (int64_t)off; /* the writer stopped inside it */
				goto out;
			}
			int good = check_data(ops, sum, buf, off, &h);
			if (good < 0)
				goto out;
			if (good)
				ops->record(ops->ctx, off, &h);
			else
				ops->damage(ops->ctx, off, len, SPOOL_RECORD_BAD_DATA_SUM);
			off += len;
			continue;
		}
		int64_t next = resync(ops, buf, off, size);
		if (next < 0)
			goto out;
		ops->damage(ops->ctx, off, (uint64_t)next - off, st);
		off = (uint64_t)next;
	}
	end = (int64_t)size;
out:
	free(buf);
	spool_sum_free(sum);
	return end;
}

static const uint8_t marker_magic[4] = { 'C', 'S', 'P', 'M' };

static void marker_sum(const uint8_t *p, size_t n, uint8_t out[8])
{
	uint8_t md[32];
	unsigned int len = 0;
	if (!EVP_Digest(p, n, md, &len, EVP_sha256(), NULL))
		abort();
	memcpy(out, md, 8);
}

size_t spool_marker_encode(const struct spool_marker *m, uint8_t *out)
{
	size_t alen = m->answer_len > SPOOL_MARKER_ANSWER_MAX ? SPOOL_MARKER_ANSWER_MAX
							      : m->answer_len;
	memcpy(out, marker_magic, 4);
	out[4] = (uint8_t)m->kind;
	out[5] = 0;
	put16(out + 6, (uint16_t)alen);
	put64(out + 8, m->id);
	put64(out + 16, (uint64_t)m->time_us);
	put32(out + 24, m->attempts);
	put32(out + 28, (uint32_t)m->status);
	memcpy(out + 32, m->answer, alen);
	marker_sum(out, 32 + alen, out + 32 + alen);
	return SPOOL_MARKER_FIXED + alen;
}

ssize_t spool_marker_decode(const uint8_t *p, size_t n, struct spool_marker *m)
{
	if (n < SPOOL_MARKER_FIXED)
		return n >= 4 && memcmp(p, marker_magic, 4) != 0 ? -1 : 0;
	if (memcmp(p, marker_magic, 4) != 0 || p[5] != 0)
		return -1;
	size_t alen = get16(p + 6);
	if (alen > SPOOL_MARKER_ANSWER_MAX || p[4] < SPOOL_MARK_DELIVERED || p[4] > SPOOL_MARK_ATTEMPT)
		return -1;
	if (n < SPOOL_MARKER_FIXED + alen)
		return 0;
	uint8_t sum[8];
	marker_sum(p, 32 + alen, sum);
	if (memcmp(sum, p + 32 + alen, 8) != 0)
		return -1;
	m->kind = (enum spool_marker_kind)p[4];
	m->answer_len = (uint16_t)alen;
	m->id = get64(p + 8);
	m->time_us = (int64_t)get64(p + 16);
	m->attempts = get32(p + 24);
	m->status = (int32_t)get32(p + 28);
	memcpy(m->answer, p + 32, alen);
	return (ssize_t)(SPOOL_MARKER_FIXED + alen);
}

void *spool_grow(void *p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return p;
	size_t c = *cap ? *cap : 16;
	while (c < need)
		c *= 2;
	void *q = realloc(p, c * elem);
	if (!q)
		abort(); /* the spool's bookkeeping cannot be half-updated */
	*cap = c;
	return q;
}
