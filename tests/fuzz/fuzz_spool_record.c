/* fuzz_spool_record: arbitrary bytes as a spool segment, scanned as a start
 * scans it (spool_record_scan), and as a marker log (spool_marker_decode).
 * Invariants: every read stays inside the input; records and damaged
 * ranges come in order, inside the input, without overlap; a record
 * handed out decodes again and its data sum matches its bytes; the scan
 * ends after a bounded number of reads and its end is a record boundary. */
#include "fuzz.h"

#include "spool_record.h"

struct ctx {
	const uint8_t *p;
	size_t n;
	uint64_t next;               /* where the last record or damage ended */
	size_t reads;
	size_t records, damages;
};

static ssize_t fuzz_read(void *c0, uint64_t off, void *buf, size_t n)
{
	struct ctx *c = c0;
	FUZZ_CHECK(off <= c->n && n <= c->n - off, "read of %zu at %llu past %zu bytes", n,
		   (unsigned long long)off, c->n);
	c->reads++;
	memcpy(buf, c->p + off, n);
	return (ssize_t)n;
}

static void fuzz_record(void *c0, uint64_t off, const struct spool_record_hdr *h)
{
	struct ctx *c = c0;
	uint64_t len = spool_record_size(h);
	FUZZ_CHECK(off >= c->next, "record at %llu before %llu", (unsigned long long)off,
		   (unsigned long long)c->next);
	FUZZ_CHECK(len <= c->n && off <= c->n - len, "record past the end");
	struct spool_record_hdr again;
	FUZZ_CHECK(spool_record_decode_header(c->p + off, c->n - off, &again) == SPOOL_RECORD_OK &&
			   again.id == h->id && again.body_len == h->body_len,
		   "record at %llu does not decode again", (unsigned long long)off);
	struct spool_sum *s = spool_sum_new();
	FUZZ_CHECK(s != NULL, "no sum");
	spool_sum_update(s, c->p + off + SPOOL_RECORD_HEADER, len - SPOOL_RECORD_HEADER);
	uint8_t sum[SPOOL_SUM_LEN];
	spool_sum_final(s, sum);
	spool_sum_free(s);
	FUZZ_CHECK(memcmp(sum, h->data_sum, SPOOL_SUM_LEN) == 0,
		   "record at %llu handed out with a wrong data sum", (unsigned long long)off);
	c->next = off + len;
	c->records++;
}

static void fuzz_damage(void *c0, uint64_t off, uint64_t len, enum spool_record_status why)
{
	struct ctx *c = c0;
	FUZZ_CHECK(off >= c->next && len > 0 && len <= c->n && off <= c->n - len,
		   "damage %llu+%llu (next %llu, size %zu)", (unsigned long long)off,
		   (unsigned long long)len, (unsigned long long)c->next, c->n);
	FUZZ_CHECK(why != SPOOL_RECORD_OK, "damage without a reason");
	c->next = off + len;
	c->damages++;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 1 << 20)
		return 0;
	/* a copy of exactly SIZE bytes: ASan sees any read past it */
	uint8_t *p = malloc(size ? size : 1);
	if (!p)
		abort();
	memcpy(p, data, size);
	struct ctx c = { .p = p, .n = size };
	struct spool_scan_ops ops = { .read = fuzz_read, .record = fuzz_record,
				      .damage = fuzz_damage, .ctx = &c };
	int64_t end = spool_record_scan(&ops, size);
	FUZZ_CHECK(end >= 0 && (uint64_t)end <= size && (uint64_t)end >= c.next,
		   "scan ended at %lld (covered %llu, size %zu)", (long long)end,
		   (unsigned long long)c.next, size);
	/* a torn tail starts where the last record or damage ended */
	FUZZ_CHECK((uint64_t)end == size || (uint64_t)end == c.next, "torn tail at %lld, not %llu",
		   (long long)end, (unsigned long long)c.next);
	/* each read is a header, a block of data, or a resync step */
	FUZZ_CHECK(c.reads <= 4 * size + 16, "%zu reads for %zu bytes", c.reads, size);

	/* the same bytes as a marker log, read as a start reads it */
	for (size_t off = 0; off < size;) {
		struct spool_marker m;
		ssize_t n = spool_marker_decode(p + off, size - off, &m);
		if (n == 0)
			break;
		if (n < 0) {
			off++;
			continue;
		}
		FUZZ_CHECK((size_t)n <= size - off && m.answer_len <= SPOOL_MARKER_ANSWER_MAX,
			   "marker of %zd bytes at %zu", n, off);
		uint8_t again[SPOOL_MARKER_MAX];
		FUZZ_CHECK(spool_marker_encode(&m, again) == (size_t)n &&
				   memcmp(again, p + off, (size_t)n) == 0,
			   "marker at %zu does not encode back to its bytes", off);
		off += (size_t)n;
	}
	free(p);
	return 0;
}
