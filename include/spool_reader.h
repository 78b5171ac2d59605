/* spool_reader: one spooled record read back for the replay: its head in
 * memory, its body streamed from the segment in bounded reads (a 32 MiB
 * body never sits whole in memory), its sum checked before the last bytes
 * are handed out, so a record that rotted on disk is never sent whole. */
#ifndef CUTOVER_SPOOL_READER_H
#define CUTOVER_SPOOL_READER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct spool_record_view {
	uint64_t id;
	int64_t accepted_us;
	const char *project, *route; /* NUL-terminated */
	const uint8_t *head;         /* request line and headers, as sent */
	size_t head_len;
	uint64_t body_len;
};

struct spool_reader;

/* Opens record ID at OFF in segment SEGMENT of the directory DIR_FD (the
 * reader keeps its own fd: deleting the segment later does not hurt it).
 * NULL with errno (EIO: the header or an empty body does not check). */
struct spool_reader *spool_reader_open(int dir_fd, const char *segment, uint64_t off, uint64_t id);
/* The same on FD, an open segment (taken: closed with the reader, or on
 * failure). */
struct spool_reader *spool_reader_open_fd(int fd, uint64_t off, uint64_t id);
const struct spool_record_view *spool_reader_view(const struct spool_reader *r);
/* Up to N body bytes; 0 at the end, -1 with errno (EIO: the bytes on disk
 * no longer match their sum, found before the last ones are returned). */
ssize_t spool_reader_read(struct spool_reader *r, void *buf, size_t n);
void spool_reader_close(struct spool_reader *r);

#endif
