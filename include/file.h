/* file: durable file writes shared by the modules that keep data on disk
 * (the state store and the journal today; the spool and a backlog file
 * later). */
#ifndef CUTOVER_FILE_H
#define CUTOVER_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Writes all LEN bytes of BUF to FD, going on after EINTR and short
 * writes. Returns 0, or -1 with errno set (part of BUF may have been
 * written). */
int file_write_full(int fd, const void *buf, size_t len);
/* Reads exactly LEN bytes of FD at offset OFF into BUF, going on after
 * EINTR and short reads. 0, or -1 with errno (EIO: the file ends first). */
int file_pread_full(int fd, void *buf, size_t len, uint64_t off);

/* Replaces PATH with DATA (LEN bytes) so that a reader, or a restart after
 * a crash, sees the old content or the new one, never a mix: writes
 * "PATH.tmp.PID" in the same directory (created with exactly MODE,
 * whatever the umask; never through a symlink), fsyncs it, renames it over
 * PATH and fsyncs the directory. Returns 0, or -1 with errno set and
 * "PATH: step: cause" in WHY; the temp file is removed unless the rename
 * happened. One writer per PATH per process (the temp name is per pid). */
int file_replace(const char *path, const void *data, size_t len, mode_t mode, char *why,
		 size_t why_len);

/* "PATH: STEP: strerror(ERR)" into WHY (nothing if WHY is NULL or WHY_LEN
 * is 0): how file errors read everywhere. */
void file_error(char *why, size_t why_len, const char *path, const char *step, int err);

#endif
