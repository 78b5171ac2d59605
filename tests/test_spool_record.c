/* test_spool_record: the record format, its sums, the scan of a segment in
 * memory (records, damage, torn tails) and the marker entries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "spool_record.h"

struct seg {
	uint8_t *p;
	size_t n;
	uint64_t rec_off[32], rec_id[32];
	size_t n_rec;
	uint64_t dmg_off[32], dmg_len[32];
	enum spool_record_status dmg_why[32];
	size_t n_dmg;
};

/* Appends one record (project, route, head, BODY_LEN bytes of B) to G;
 * returns its offset. */
static uint64_t add(struct seg *g, uint64_t id, const char *project, size_t body_len, uint8_t b)
{
	const char *route = "submit", *head = "POST /a/x/receiver/ HTTP/1.1\r\n\r\n";
	struct spool_record_hdr h = { .id = id, .accepted_us = 1700000000000000 + (int64_t)id,
				      .body_len = body_len, .head_len = (uint32_t)strlen(head),
				      .project_len = (uint16_t)strlen(project),
				      .route_len = (uint16_t)strlen(route) };
	uint8_t *body = malloc(body_len + 1);
	memset(body, b, body_len);
	struct spool_sum *sum = spool_sum_new();
	spool_sum_update(sum, project, h.project_len);
	spool_sum_update(sum, route, h.route_len);
	spool_sum_update(sum, head, h.head_len);
	spool_sum_update(sum, body, body_len);
	spool_sum_final(sum, h.data_sum);
	spool_sum_free(sum);
	uint64_t off = g->n;
	g->p = realloc(g->p, g->n + spool_record_size(&h));
	spool_record_encode_header(&h, g->p + g->n);
	g->n += SPOOL_RECORD_HEADER;
	memcpy(g->p + g->n, project, h.project_len);
	g->n += h.project_len;
	memcpy(g->p + g->n, route, h.route_len);
	g->n += h.route_len;
	memcpy(g->p + g->n, head, h.head_len);
	g->n += h.head_len;
	memcpy(g->p + g->n, body, body_len);
	g->n += body_len;
	free(body);
	return off;
}

static ssize_t mem_read(void *ctx, uint64_t off, void *buf, size_t n)
{
	struct seg *g = ctx;
	if (off >= g->n)
		return 0;
	if (n > g->n - off)
		n = g->n - off;
	memcpy(buf, g->p + off, n);
	return (ssize_t)n;
}

static void on_record(void *ctx, uint64_t off, const struct spool_record_hdr *h)
{
	struct seg *g = ctx;
	g->rec_off[g->n_rec] = off;
	g->rec_id[g->n_rec++] = h->id;
}

static void on_damage(void *ctx, uint64_t off, uint64_t len, enum spool_record_status why)
{
	struct seg *g = ctx;
	g->dmg_off[g->n_dmg] = off;
	g->dmg_len[g->n_dmg] = len;
	g->dmg_why[g->n_dmg++] = why;
}

static int64_t scan(struct seg *g)
{
	g->n_rec = g->n_dmg = 0;
	struct spool_scan_ops ops = { .read = mem_read, .record = on_record, .damage = on_damage,
				      .ctx = g };
	return spool_record_scan(&ops, g->n);
}

static void test_round_trip_header(void **state)
{
	(void)state;
	struct spool_record_hdr h = { .id = 42, .accepted_us = -5, .body_len = 1ULL << 33,
				      .head_len = 99, .project_len = 5, .route_len = 0 }, back;
	memset(h.data_sum, 0xab, sizeof h.data_sum);
	uint8_t buf[SPOOL_RECORD_HEADER];
	spool_record_encode_header(&h, buf);
	assert_int_equal(spool_record_decode_header(buf, sizeof buf, &back), SPOOL_RECORD_OK);
	assert_memory_equal(&h, &back, sizeof h);
	assert_int_equal(spool_record_decode_header(buf, 63, &back), SPOOL_RECORD_SHORT);
	for (size_t i = 0; i < sizeof buf; i++) {
		buf[i] ^= 0x10;
		assert_int_not_equal(spool_record_decode_header(buf, sizeof buf, &back),
				     SPOOL_RECORD_OK);
		buf[i] ^= 0x10;
	}
}

static void test_scan_clean_and_torn(void **state)
{
	(void)state;
	struct seg g = { 0 };
	add(&g, 1, "alpha", 0, 0);
	add(&g, 2, "beta", 70000, 'b');  /* longer than one scan block */
	uint64_t third = add(&g, 3, "alpha", 10, 'c');
	assert_int_equal(scan(&g), (int64_t)g.n);
	assert_int_equal(g.n_rec, 3);
	assert_int_equal(g.n_dmg, 0);
	assert_int_equal(g.rec_id[2], 3);
	/* cut inside the last record, then inside its header */
	size_t full = g.n;
	g.n = full - 3;
	assert_int_equal(scan(&g), (int64_t)third);
	assert_int_equal(g.n_rec, 2);
	assert_int_equal(g.n_dmg, 0);
	g.n = third + 20;
	assert_int_equal(scan(&g), (int64_t)third);
	assert_int_equal(g.n_rec, 2);
	free(g.p);
}

static void test_scan_damage_resyncs(void **state)
{
	(void)state;
	struct seg g = { 0 };
	add(&g, 1, "alpha", 100, 'a');
	uint64_t second = add(&g, 2, "alpha", 100, 'b');
	uint64_t third = add(&g, 3, "alpha", 100, 'c');
	add(&g, 4, "alpha", 100, 'd');
	/* a body byte of record 2: its header still gives its length */
	g.p[third - 5] ^= 1;
	assert_int_equal(scan(&g), (int64_t)g.n);
	assert_int_equal(g.n_rec, 3);
	assert_int_equal(g.n_dmg, 1);
	assert_int_equal(g.dmg_off[0], second);
	assert_int_equal(g.dmg_len[0], third - second);
	assert_int_equal(g.dmg_why[0], SPOOL_RECORD_BAD_DATA_SUM);
	g.p[third - 5] ^= 1;
	/* a header byte of record 2 (its id): the scan finds record 3 again */
	g.p[second + 9] ^= 0x40;
	assert_int_equal(scan(&g), (int64_t)g.n);
	assert_int_equal(g.n_rec, 3);
	assert_int_equal(g.rec_id[1], 3);
	assert_int_equal(g.n_dmg, 1);
	assert_int_equal(g.dmg_off[0], second);
	assert_int_equal(g.dmg_len[0], third - second);
	assert_int_equal(g.dmg_why[0], SPOOL_RECORD_BAD_HEADER_SUM);
	g.p[second + 9] ^= 0x40;
	/* garbage at the end, longer than a header: damage, kept for quarantine */
	size_t n = g.n;
	g.p = realloc(g.p, n + 100);
	memset(g.p + n, 0, 100);
	g.n = n + 100;
	assert_int_equal(scan(&g), (int64_t)g.n);
	assert_int_equal(g.n_rec, 4);
	assert_int_equal(g.n_dmg, 1);
	assert_int_equal(g.dmg_off[0], n);
	assert_int_equal(g.dmg_why[0], SPOOL_RECORD_BAD_MAGIC);
	free(g.p);
}

static void test_markers(void **state)
{
	(void)state;
	struct spool_marker m = { .kind = SPOOL_MARK_DEAD, .id = 7, .time_us = 123, .attempts = 20,
				  .status = 409, .answer_len = 600 }, back;
	memset(m.answer, 'x', sizeof m.answer);
	uint8_t buf[SPOOL_MARKER_MAX];
	size_t n = spool_marker_encode(&m, buf);
	assert_int_equal(n, SPOOL_MARKER_FIXED + SPOOL_MARKER_ANSWER_MAX); /* capped at 512 */
	assert_int_equal(spool_marker_decode(buf, n, &back), (ssize_t)n);
	assert_int_equal(back.answer_len, 512);
	assert_int_equal(back.status, 409);
	assert_int_equal(back.attempts, 20);
	assert_int_equal(spool_marker_decode(buf, n - 1, &back), 0);
	buf[100] ^= 1;
	assert_int_equal(spool_marker_decode(buf, n, &back), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_header),
		cmocka_unit_test(test_scan_clean_and_torn),
		cmocka_unit_test(test_scan_damage_resyncs),
		cmocka_unit_test(test_markers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
