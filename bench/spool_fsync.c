/* spool_fsync: what the disk under a directory gives a durable append log,
 * the yardstick of the spool bench (bench/spool.sh).
 *
 *   spool_fsync DIR SECONDS single   append 10 KiB, fdatasync, repeat
 *   spool_fsync DIR SECONDS batch    append 64 x 10 KiB, one fdatasync, repeat
 *
 * Prints one line: "RESULT records=N seconds=S rate=R sync_p50_us=A
 * sync_p99_us=B". The file lives in DIR (use the spool's file system), is
 * replaced every 64 MiB as the spool's segments are (a new file and the
 * directory synced), and is removed at the end. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RECORD_BYTES (10 * 1024)
#define BATCH 64
#define FILE_CAP (64LL << 20)
#define MAX_SYNCS 2000000      /* latency samples kept: bounds the memory */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void die(const char *what)
{
	fprintf(stderr, "spool_fsync: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* A fresh file in DIR, the directory entry made durable as the spool does
 * for a new segment. */
static int open_segment(int dirfd, const char *name)
{
	unlinkat(dirfd, name, 0);
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		die("open");
	if (fsync(dirfd) < 0)
		die("fsync dir");
	return fd;
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("write");
		p += w;
		n -= (size_t)w;
	}
}

int main(int argc, char **argv)
{
	if (argc != 4 || (strcmp(argv[3], "single") && strcmp(argv[3], "batch"))) {
		fprintf(stderr, "usage: spool_fsync DIR SECONDS single|batch\n");
		return 2;
	}
	double seconds = atof(argv[2]);
	if (!(seconds > 0 && seconds <= 3600)) {
		fprintf(stderr, "spool_fsync: SECONDS must be in (0, 3600]\n");
		return 2;
	}
	int per_sync = strcmp(argv[3], "batch") == 0 ? BATCH : 1;
	int dirfd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		die(argv[1]);
	const char *name = "spool_fsync.tmp";
	static char record[RECORD_BYTES];
	for (size_t i = 0; i < sizeof record; i++)
		record[i] = (char)('a' + i % 26);
	double *lat = malloc(sizeof(double) * MAX_SYNCS);
	if (!lat)
		die("malloc");

	int fd = open_segment(dirfd, name);
	long long size = 0, records = 0;
	long nsync = 0;
	double start = now_s(), end = start + seconds, t = start;
	while (t < end && nsync < MAX_SYNCS) {
		if (size + (long long)per_sync * RECORD_BYTES > FILE_CAP) {
			close(fd);
			fd = open_segment(dirfd, name);
			size = 0;
		}
		for (int i = 0; i < per_sync; i++)
			write_all(fd, record, sizeof record);
		double s0 = now_s();
		if (fdatasync(fd) < 0)
			die("fdatasync");
		t = now_s();
		lat[nsync++] = t - s0;
		size += (long long)per_sync * RECORD_BYTES;
		records += per_sync;
	}
	double took = t - start;
	close(fd);
	unlinkat(dirfd, name, 0);
	close(dirfd);
	qsort(lat, (size_t)nsync, sizeof *lat, cmp_double);
	printf("RESULT records=%lld seconds=%.3f rate=%.1f sync_p50_us=%.0f sync_p99_us=%.0f\n",
	       records, took, took > 0 ? (double)records / took : 0.0,
	       nsync ? lat[nsync / 2] * 1e6 : 0.0,
	       nsync ? lat[(long)((double)nsync * 0.99)] * 1e6 : 0.0);
	free(lat);
	return 0;
}
