/* spool_record: the spool's on-disk record format, pure (no file, no
 * thread). A record is a 64-byte header, then project, route, the request
 * head exactly as the device sent it, and the body:
 *
 *   0  magic "CSPL"         4  version u16, flags u16 (0)
 *   8  id u64               16 accepted (unix microseconds) i64
 *   24 body_len u64         32 head_len u32
 *   36 project_len u16      38 route_len u16
 *   40 data sum [16]        first 16 bytes of SHA-256(project route head body)
 *   56 header sum [8]       first 8 bytes of SHA-256(bytes 0..55)
 *
 * integers little-endian. The header sum makes the lengths trustworthy
 * (a torn tail is told from a corrupt record, and the scan can skip a
 * record whose data is bad); the data sum guards the bytes replayed.
 * SHA-256 from OpenSSL (already linked; SHA-NI makes it cheap next to an
 * fdatasync) rather than a hand-written CRC. */
#ifndef CUTOVER_SPOOL_RECORD_H
#define CUTOVER_SPOOL_RECORD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SPOOL_RECORD_HEADER 64
#define SPOOL_RECORD_VERSION 1
#define SPOOL_RECORD_PROJECT_MAX 255
#define SPOOL_RECORD_ROUTE_MAX 255
#define SPOOL_RECORD_HEAD_MAX (1u << 20)
/* No body is bigger than this, whatever max_record_bytes says: a length
 * past it is impossible, hence corruption. */
#define SPOOL_RECORD_BODY_MAX (1ULL << 40)
#define SPOOL_SUM_LEN 16

struct spool_record_hdr {
	uint64_t id;
	int64_t accepted_us;
	uint64_t body_len;
	uint32_t head_len;
	uint16_t project_len, route_len;
	uint8_t data_sum[SPOOL_SUM_LEN];
};

enum spool_record_status {
	SPOOL_RECORD_OK = 0,
	SPOOL_RECORD_SHORT,       /* fewer than SPOOL_RECORD_HEADER bytes */
	SPOOL_RECORD_BAD_MAGIC,
	SPOOL_RECORD_BAD_VERSION,
	SPOOL_RECORD_BAD_HEADER_SUM,
	SPOOL_RECORD_BAD_LENGTH,  /* lengths no writer makes */
	SPOOL_RECORD_BAD_DATA_SUM,
};

const char *spool_record_status_text(enum spool_record_status st);

/* Bytes of the whole record H describes (header included). */
uint64_t spool_record_size(const struct spool_record_hdr *h);

/* Writes H's header into OUT (SPOOL_RECORD_HEADER bytes), header sum
 * included; H's data_sum must already be final. */
void spool_record_encode_header(const struct spool_record_hdr *h, uint8_t *out);

/* Reads and checks a header from P (N bytes available). */
enum spool_record_status spool_record_decode_header(const uint8_t *p, size_t n,
						    struct spool_record_hdr *h);

/* The running data sum: fed project, route, head, body in that order, in
 * any number of pieces. */
struct spool_sum;
struct spool_sum *spool_sum_new(void);
void spool_sum_update(struct spool_sum *s, const void *p, size_t n);
/* Writes the sum into OUT and starts S again from empty. */
void spool_sum_final(struct spool_sum *s, uint8_t out[SPOOL_SUM_LEN]);
void spool_sum_free(struct spool_sum *s);

/* The scan of a segment's bytes, through READ (pread-like: up to N bytes at
 * OFF into BUF; returns the count, 0 at the end, -1 on error). Each step
 * moves forward, so the scan ends on any input. */
struct spool_scan_ops {
	ssize_t (*read)(void *ctx, uint64_t off, void *buf, size_t n);
	/* a whole record whose header and data sums match */
	void (*record)(void *ctx, uint64_t off, const struct spool_record_hdr *h);
	/* LEN bytes at OFF that are not a valid record; the scan goes on at
	 * OFF + LEN (the next valid header, or the end) */
	void (*damage)(void *ctx, uint64_t off, uint64_t len, enum spool_record_status why);
	void *ctx;
};

/* Scans SIZE bytes. Returns the offset where the valid data ends: SIZE,
 * or the start of a torn tail (a record cut short by a crash, or fewer
 * bytes than a header) that the caller truncates; -1 if READ failed. */
int64_t spool_record_scan(const struct spool_scan_ops *ops, uint64_t size);

/* The marker log: one entry per change of a record's fate, appended, never
 * rewritten in place. Entry: "CSPM", kind u8, 0, answer_len u16, id u64,
 * time_us i64, attempts u32, status i32, answer, then the first 8 bytes of
 * SHA-256 of all that. */
enum spool_marker_kind {
	SPOOL_MARK_DELIVERED = 1,
	SPOOL_MARK_DEAD = 2,
	SPOOL_MARK_RETRY = 3,        /* a dead letter goes back to pending */
	SPOOL_MARK_FLOOR = 4,        /* ids below this were given (kept when
	                                markers are compacted) */
	SPOOL_MARK_ATTEMPT = 5,      /* a send failed and will be retried: the
	                                attempts so far, so a restart does not
	                                grant max_attempts afresh */
};

#define SPOOL_MARKER_ANSWER_MAX 512
#define SPOOL_MARKER_FIXED 40
#define SPOOL_MARKER_MAX (SPOOL_MARKER_FIXED + SPOOL_MARKER_ANSWER_MAX)

struct spool_marker {
	enum spool_marker_kind kind;
	uint64_t id;
	int64_t time_us;
	uint32_t attempts;
	int32_t status;
	uint16_t answer_len;
	uint8_t answer[SPOOL_MARKER_ANSWER_MAX];
};

/* Writes M into OUT (at least SPOOL_MARKER_MAX bytes); returns its size. */
size_t spool_marker_encode(const struct spool_marker *m, uint8_t *out);
/* Reads one entry from P (N bytes): its size, 0 if N is too short for it,
 * -1 if it is not a valid entry. */
ssize_t spool_marker_decode(const uint8_t *p, size_t n, struct spool_marker *m);

/* P (realloc) with room for NEED elements of ELEM bytes, *CAP doubled as
 * needed. Out of memory aborts: the spool's index and marker buffers
 * cannot be left half-updated. */
void *spool_grow(void *p, size_t *cap, size_t need, size_t elem);

#endif
