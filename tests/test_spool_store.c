/* test_spool_store: the store on a temp directory: round trips across
 * projects and segment rotations, group commit (fewer syncs than records,
 * nothing acknowledged before its sync), recovery of torn and damaged
 * segments, limits and write errors, markers and reclamation, abort. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool_store.h"
#include "tmpdir.h"

#define WAIT_MS 10000

/* ---- test hooks: syncs counted and held, writes failed on demand ---- */

struct hooks {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int hold;                    /* the next sync blocks until released */
	int held;                    /* a sync is blocked now */
	int entered_pipe[2];
	int fail_writes;             /* the next N pwrites fail with ENOSPC */
	int fail_syncs;              /* the next N syncs fail with EIO */
};

static int hook_sync(void *arg, int fd)
{
	struct hooks *h = arg;
	pthread_mutex_lock(&h->mu);
	if (h->hold) {
		h->held = 1;
		if (write(h->entered_pipe[1], "x", 1) != 1)
			abort();
		while (h->hold)
			pthread_cond_wait(&h->cv, &h->mu);
		h->held = 0;
	}
	int fail = h->fail_syncs > 0;
	if (fail)
		h->fail_syncs--;
	pthread_mutex_unlock(&h->mu);
	if (fail) {
		errno = EIO;
		return -1;
	}
	return fdatasync(fd);
}

static ssize_t hook_pwrite(void *arg, int fd, const void *p, size_t n, off_t off)
{
	struct hooks *h = arg;
	pthread_mutex_lock(&h->mu);
	int fail = h->fail_writes > 0;
	if (fail)
		h->fail_writes--;
	pthread_mutex_unlock(&h->mu);
	if (fail) {
		/* half of it lands first, as a real full disk may do */
		if (n > 1 && pwrite(fd, p, n / 2, off) < 0)
			return -1;
		errno = ENOSPC;
		return -1;
	}
	return pwrite(fd, p, n, off);
}

struct fix {
	struct tmpdir t;
	char dir[160];
	struct spool_store_opts o;
	struct hooks h;
	struct spool_store_hooks sh;
	struct spool_store *s;
	struct spool_waiter *w;
	struct spool_damage *damage;
	size_t n_damage;
};

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof *f);
	if (!f || tmpdir_make(&f->t, "spool", "x") < 0)
		return -1;
	snprintf(f->dir, sizeof f->dir, "%s/spool", f->t.dir);
	f->o = (struct spool_store_opts){ .dir = f->dir, .max_bytes = 1ULL << 30,
					  .max_record_bytes = 32ULL << 20,
					  .segment_bytes = 1 << 20, .record_buffer = 64 << 10,
					  .hooks = &f->sh };
	pthread_mutex_init(&f->h.mu, NULL);
	pthread_cond_init(&f->h.cv, NULL);
	if (pipe(f->h.entered_pipe) < 0)
		return -1;
	f->sh = (struct spool_store_hooks){ .sync = hook_sync, .pwrite = hook_pwrite, .arg = &f->h };
	*state = f;
	return 0;
}

static void fix_close(struct fix *f)
{
	spool_store_close(f->s); /* first: the writer may still post to the waiter */
	f->s = NULL;
	spool_waiter_free(f->w);
	f->w = NULL;
	free(f->damage);
	f->damage = NULL;
}

static void fix_open(struct fix *f)
{
	fix_close(f);
	char why[512] = "";
	f->s = spool_store_open(&f->o, &f->damage, &f->n_damage, why, sizeof why);
	if (!f->s)
		fail_msg("open: %s", why);
	f->w = spool_waiter_new();
	assert_non_null(f->w);
}

static int teardown(void **state)
{
	struct fix *f = *state;
	/* a failed assertion may have left the writer held in a sync */
	pthread_mutex_lock(&f->h.mu);
	f->h.hold = 0;
	pthread_cond_broadcast(&f->h.cv);
	pthread_mutex_unlock(&f->h.mu);
	fix_close(f);
	close(f->h.entered_pipe[0]);
	close(f->h.entered_pipe[1]);
	tmpdir_remove(&f->t);
	free(f);
	return 0;
}

/* ---- records ---- */

static uint8_t body_byte(unsigned seed, uint64_t i)
{
	return (uint8_t)(seed * 131u + i * 7u + (i >> 9));
}

static size_t make_head(char *out, size_t len, const char *project, unsigned seed)
{
	return (size_t)snprintf(out, len,
				"POST /a/%s/receiver/?seed=%u HTTP/1.1\r\n"
				"Content-Type: multipart/form-data; boundary=----x%u\r\n"
				"Authorization: Basic dXNlcjpwYXNz\r\nX-OpenRosa-Version: 1.0\r\n\r\n",
				project, seed, seed);
}

/* The next event within WAIT_MS, waiting on the waiter's fd. */
static int next_event(struct spool_waiter *w, struct spool_event *ev, int timeout_ms)
{
	for (;;) {
		if (spool_waiter_next(w, ev))
			return 1;
		struct pollfd p = { .fd = spool_waiter_fd(w), .events = POLLIN };
		if (poll(&p, 1, timeout_ms) <= 0)
			return 0;
	}
}

/* Streams one record's body in CHUNK-byte appends, waiting for room. */
static int stream_body(struct fix *f, struct spool_write *wr, unsigned seed, size_t body_len,
		       size_t chunk)
{
	uint8_t *buf = malloc(chunk ? chunk : 1);
	uint64_t off = 0;
	int err = 0;
	while (off < body_len) {
		size_t n = body_len - off < chunk ? body_len - off : chunk;
		for (size_t i = 0; i < n; i++)
			buf[i] = body_byte(seed, off + i);
		ssize_t got = spool_write_append(wr, buf, n);
		if (got < 0) {
			err = (int)-got;
			break;
		}
		if (got == 0) {
			struct spool_event ev;
			assert_true(next_event(f->w, &ev, WAIT_MS));
			assert_int_equal(ev.kind, SPOOL_EVENT_ROOM);
			continue;
		}
		off += (uint64_t)got;
	}
	free(buf);
	return err;
}

/* Writes one record and waits for its outcome: its id, or 0 with *ERR. */
static uint64_t put(struct fix *f, const char *project, unsigned seed, size_t body_len,
		    size_t chunk, int chunked, int *err)
{
	char head[512];
	size_t hl = make_head(head, sizeof head, project, seed);
	*err = 0;
	struct spool_write *wr = spool_write_begin(f->s, f->w, NULL, project, "submit", head, hl,
						   chunked ? -1 : (int64_t)body_len);
	if (!wr) {
		*err = errno;
		return 0;
	}
	struct spool_event ev;
	int e = stream_body(f, wr, seed, body_len, chunk);
	(void)e;
	spool_write_end(wr);
	for (;;) {
		assert_true(next_event(f->w, &ev, WAIT_MS));
		if (ev.kind != SPOOL_EVENT_ROOM)
			break;
	}
	if (ev.kind == SPOOL_EVENT_FAILED) {
		*err = ev.err;
		return 0;
	}
	assert_int_equal(ev.kind, SPOOL_EVENT_DONE);
	assert_true(ev.id > 0);
	return ev.id;
}

static uint64_t put_ok(struct fix *f, const char *project, unsigned seed, size_t body_len,
		       size_t chunk)
{
	int err;
	uint64_t id = put(f, project, seed, body_len, chunk, seed % 2, &err);
	if (!id)
		fail_msg("record %u of %s failed: %s", seed, project, strerror(err));
	return id;
}

/* Reads record ID back and checks every byte against SEED. */
static void check_record(struct fix *f, uint64_t id, const char *project, unsigned seed,
			 size_t body_len)
{
	struct spool_reader *r = spool_store_read(f->s, id);
	if (!r)
		fail_msg("record %" PRIu64 ": %s", id, strerror(errno));
	const struct spool_record_view *v = spool_reader_view(r);
	char head[512];
	size_t hl = make_head(head, sizeof head, project, seed);
	assert_int_equal(v->id, id);
	assert_string_equal(v->project, project);
	assert_string_equal(v->route, "submit");
	assert_int_equal(v->head_len, hl);
	assert_memory_equal(v->head, head, hl);
	assert_int_equal(v->body_len, body_len);
	uint8_t buf[4096];
	uint64_t off = 0;
	for (;;) {
		ssize_t n = spool_reader_read(r, buf, sizeof buf);
		assert_true(n >= 0);
		if (n == 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != body_byte(seed, off + (uint64_t)i))
				fail_msg("record %" PRIu64 " byte %" PRIu64 " differs", id,
					 off + (uint64_t)i);
		off += (uint64_t)n;
	}
	assert_int_equal(off, body_len);
	spool_reader_close(r);
}

struct expect {
	const char *project;
	unsigned seed;
	size_t body_len;
	uint64_t id;
};

/* PROJECT's pending ids are exactly those of E (in order) with that project. */
static void check_project(struct fix *f, const char *project, const struct expect *e, size_t n)
{
	uint64_t ids[512];
	size_t got = spool_store_pending(f->s, project, 0, ids, 512), k = 0;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(e[i].project, project) != 0)
			continue;
		assert_true(k < got);
		assert_int_equal(ids[k], e[i].id);
		check_record(f, ids[k], project, e[i].seed, e[i].body_len);
		k++;
	}
	assert_int_equal(k, got);
}

static int count_files(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	int n = 0;
	struct dirent *e;
	while (d && (e = readdir(d)))
		n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
	if (d)
		closedir(d);
	return n;
}

/* The path of the only (or first, by name) segment file. */
static void first_segment(struct fix *f, char *out, size_t len)
{
	DIR *d = opendir(f->dir);
	struct dirent *e;
	char best[256] = "";
	while ((e = readdir(d)))
		if (strncmp(e->d_name, "seg-", 4) == 0 && (!best[0] || strcmp(e->d_name, best) < 0))
			snprintf(best, sizeof best, "%s", e->d_name);
	closedir(d);
	assert_true(best[0] != 0);
	snprintf(out, len, "%s/%s", f->dir, best);
}

/* ---- tests ---- */

static void test_round_trip(void **state)
{
	struct fix *f = *state;
	fix_open(f);
	static const char *const projects[] = { "alpha", "beta", "gamma" };
	struct expect e[60];
	size_t n = 0;
	for (unsigned i = 0; i < 60; i++) {
		size_t len = i % 7 == 0 ? 0 : i % 20 == 3 ? (3u << 20) + i : 1000 + i * 37;
		e[n] = (struct expect){ projects[i % 3], i, len, 0 };
		e[n].id = put_ok(f, e[n].project, i, len, i % 20 == 3 ? 1000 : 777);
		if (n)
			assert_true(e[n].id > e[n - 1].id);
		n++;
	}
	assert_true(spool_store_segment_count(f->s) > 3); /* rotations, 1 MiB segments */
	struct spool_totals t;
	spool_store_totals(f->s, NULL, &t);
	assert_int_equal(t.pending, 60);
	for (int round = 0; round < 2; round++) {
		for (size_t p = 0; p < 3; p++)
			check_project(f, projects[p], e, n);
		fix_open(f); /* and again after a restart */
		assert_int_equal(f->n_damage, 0);
	}
	spool_store_totals(f->s, "beta", &t);
	assert_int_equal(t.pending, 20);
	assert_int_equal(t.dead, 0);
	assert_true(t.oldest_us > 0);
	/* ids go on growing after a restart */
	uint64_t id = put_ok(f, "alpha", 99, 10, 10);
	assert_true(id > e[n - 1].id);
}

static void test_group_commit(void **state)
{
	struct fix *f = *state;
	fix_open(f);
	put_ok(f, "alpha", 1, 10, 10); /* the segment exists: no directory sync below */
	spool_store_flush(f->s);       /* the writer is idle: the hold catches our round */
	struct spool_event ev;
	assert_int_equal(spool_waiter_next(f->w, &ev), 0);
	uint64_t before = spool_store_sync_count(f->s);
	pthread_mutex_lock(&f->h.mu);
	f->h.hold = 1;
	pthread_mutex_unlock(&f->h.mu);

	enum { N = 40 };
	char head[512];
	struct spool_write *wr[N + 1];
	size_t hl = make_head(head, sizeof head, "alpha", 2);
	wr[0] = spool_write_begin(f->s, f->w, (void *)(uintptr_t)1, "alpha", "submit", head, hl, 0);
	assert_non_null(wr[0]);
	spool_write_end(wr[0]);
	/* the writer is inside the sync of record 0's round now */
	struct pollfd p = { .fd = f->h.entered_pipe[0], .events = POLLIN };
	assert_int_equal(poll(&p, 1, WAIT_MS), 1);
	char x;
	assert_int_equal(read(f->h.entered_pipe[0], &x, 1), 1);
	for (int i = 1; i <= N; i++) {
		hl = make_head(head, sizeof head, "beta", (unsigned)i);
		wr[i] = spool_write_begin(f->s, f->w, (void *)(uintptr_t)(i + 1), "beta", "submit",
					  head, hl, 100);
		assert_non_null(wr[i]);
		uint8_t body[100];
		for (int j = 0; j < 100; j++)
			body[j] = body_byte((unsigned)i, (uint64_t)j);
		assert_int_equal(spool_write_append(wr[i], body, sizeof body), 100);
		spool_write_end(wr[i]);
	}
	/* nothing is acknowledged while its sync has not returned */
	p = (struct pollfd){ .fd = spool_waiter_fd(f->w), .events = POLLIN };
	assert_int_equal(poll(&p, 1, 50), 0);
	assert_int_equal(spool_waiter_next(f->w, &ev), 0);
	pthread_mutex_lock(&f->h.mu);
	assert_int_equal(f->h.held, 1);
	f->h.hold = 0;
	pthread_cond_broadcast(&f->h.cv);
	pthread_mutex_unlock(&f->h.mu);

	int done = 0;
	uint64_t last = 0;
	while (done < N + 1) {
		assert_true(next_event(f->w, &ev, WAIT_MS));
		assert_int_equal(ev.kind, SPOOL_EVENT_DONE);
		assert_true(ev.id > last); /* acknowledged in acceptance order */
		last = ev.id;
		done++;
	}
	/* each once */
	spool_store_flush(f->s);
	assert_int_equal(spool_waiter_next(f->w, &ev), 0);
	uint64_t syncs = spool_store_sync_count(f->s) - before;
	print_message("group commit: %d records, %" PRIu64 " syncs\n", N + 1, syncs);
	/* record 0's round, then the 40 that ended during its sync: two or
	 * three rounds, never one sync per record */
	assert_true(syncs <= 4);
	fix_open(f);
	struct spool_totals t;
	spool_store_totals(f->s, "beta", &t);
	assert_int_equal(t.pending, N);
}

static void test_torn_tail(void **state)
{
	struct fix *f = *state;
	fix_open(f);
	struct expect e[5];
	for (unsigned i = 0; i < 5; i++) {
		e[i] = (struct expect){ "alpha", i, 5000, 0 };
		e[i].id = put_ok(f, "alpha", i, 5000, 1000);
	}
	fix_close(f);
	char seg[512];
	first_segment(f, seg, sizeof seg);
	struct stat st;
	assert_int_equal(stat(seg, &st), 0);
	off_t cut = st.st_size - 2500;
	assert_int_equal(truncate(seg, cut), 0); /* mid-body of the last */
	fix_open(f);
	/* cut short: an unacknowledged write or a damaged disk, told apart by
	 * nobody: its bytes are kept in quarantine/ and reported, then cut off */
	assert_int_equal(f->n_damage, 1);
	assert_string_equal(f->damage[0].reason, "cut short");
	uint64_t tail_len = f->damage[0].length;
	assert_int_equal(f->damage[0].offset + tail_len, (uint64_t)cut);
	char qdir[256];
	snprintf(qdir, sizeof qdir, "%s/quarantine", f->dir);
	assert_int_equal(tmpdir_count(qdir), 1);
	check_project(f, "alpha", e, 4);
	assert_int_equal(stat(seg, &st), 0);
	assert_int_equal(st.st_size, cut - (off_t)tail_len);
	/* the torn bytes are gone from the file, and later records follow */
	e[4].id = put_ok(f, "alpha", 4, 5000, 1000);
	fix_open(f);
	assert_int_equal(f->n_damage, 0);
	check_project(f, "alpha", e, 5);
}

/* Five 1000-byte records, byte AT of the third flipped: reopen reports it
 * quarantined, the others stay. */
static void flip_third(struct fix *f, size_t at, const char *reason)
{
	fix_open(f);
	struct expect e[5];
	for (unsigned i = 0; i < 5; i++) {
		e[i] = (struct expect){ "alpha", i, 1000, 0 };
		e[i].id = put_ok(f, "alpha", i, 1000, 1000);
	}
	fix_close(f);
	char seg[512], head[512];
	first_segment(f, seg, sizeof seg);
	size_t rec = 64 + 5 + 6 + make_head(head, sizeof head, "alpha", 0) + 1000;
	int fd = open(seg, O_RDWR);
	uint8_t b;
	assert_int_equal(pread(fd, &b, 1, (off_t)(2 * rec + at)), 1);
	b ^= 0x20;
	assert_int_equal(pwrite(fd, &b, 1, (off_t)(2 * rec + at)), 1);
	close(fd);
	fix_open(f);
	assert_int_equal(f->n_damage, 1);
	assert_int_equal(f->damage[0].offset, 2 * rec);
	assert_int_equal(f->damage[0].length, rec);
	assert_string_equal(f->damage[0].reason, reason);
	char q[512];
	snprintf(q, sizeof q, "%s/%s", f->dir, f->damage[0].quarantine);
	struct stat st;
	assert_int_equal(stat(q, &st), 0);
	assert_int_equal(st.st_size, rec);
	assert_int_equal(st.st_mode & 0777, 0600);
	struct expect keep[4] = { e[0], e[1], e[3], e[4] };
	check_project(f, "alpha", keep, 4);
	assert_null(spool_store_read(f->s, e[2].id));
	/* reported once: the damage was cut out of the segment */
	fix_open(f);
	assert_int_equal(f->n_damage, 0);
	check_project(f, "alpha", keep, 4);
	assert_int_equal(count_files(f->dir, "quarantine"), 1);
	char qdir[256];
	snprintf(qdir, sizeof qdir, "%s/quarantine", f->dir);
	assert_int_equal(tmpdir_count(qdir), 1);
}

static void test_flipped_body_byte(void **state)
{
	struct fix *f = *state;
	char head[512];
	flip_third(f, 64 + 5 + 6 + make_head(head, sizeof head, "alpha", 0) + 500,
		   "data checksum mismatch");
}

static void test_flipped_header_byte(void **state)
{
	flip_third(*state, 30, "header checksum mismatch");
}

static void test_record_limit(void **state)
{
	struct fix *f = *state;
	f->o.max_record_bytes = 10000;
	fix_open(f);
	int err;
	/* known from Content-Length: refused at once */
	assert_int_equal(put(f, "alpha", 0, 20000, 1000, 0, &err), 0);
	assert_int_equal(err, E2BIG);
	/* found while streaming a chunked body */
	assert_int_equal(put(f, "alpha", 1, 12000, 1000, 1, &err), 0);
	assert_int_equal(err, E2BIG);
	uint64_t id = put_ok(f, "alpha", 2, 10000, 1000);
	fix_open(f);
	assert_int_equal(f->n_damage, 0);
	struct expect e = { "alpha", 2, 10000, id };
	check_project(f, "alpha", &e, 1);
}

/* One record delivered, its segment deleted at the next start, then one
 * more start: a new record must not take the old id, whose delivered
 * marker is still in the log (it would be taken for delivered). */
static void test_ids_never_reused_after_reclaim(void **state)
{
	struct fix *f = *state;
	fix_open(f);
	uint64_t a = put_ok(f, "alpha", 0, 3000, 1000);
	assert_int_equal(spool_store_mark_delivered(f->s, a), 0);
	spool_store_flush(f->s);
	fix_open(f);
	assert_int_equal(count_files(f->dir, "seg-"), 0);
	fix_open(f);
	struct expect e = { "alpha", 1, 3000, 0 };
	e.id = put_ok(f, "alpha", 1, 3000, 1000);
	assert_true(e.id > a);
	fix_open(f);
	check_project(f, "alpha", &e, 1);
}

static void test_total_limit(void **state)
{
	struct fix *f = *state;
	f->o.max_bytes = 50000;
	fix_open(f);
	uint64_t ids[4];
	for (unsigned i = 0; i < 4; i++)
		ids[i] = put_ok(f, "alpha", i, 10000, 1000);
	int err;
	assert_int_equal(put(f, "alpha", 9, 10000, 1000, 1, &err), 0);
	assert_int_equal(err, ENOSPC);
	assert_int_equal(put(f, "alpha", 9, 10000, 1000, 0, &err), 0);
	assert_int_equal(err, ENOSPC);
	/* a delivery makes room */
	assert_int_equal(spool_store_mark_delivered(f->s, ids[0]), 0);
	uint64_t id = put_ok(f, "alpha", 5, 10000, 1000);
	fix_open(f);
	assert_int_equal(f->n_damage, 0);
	struct expect e[4] = { { "alpha", 1, 10000, ids[1] }, { "alpha", 2, 10000, ids[2] },
			       { "alpha", 3, 10000, ids[3] }, { "alpha", 5, 10000, id } };
	check_project(f, "alpha", e, 4);
}

static void test_write_error(void **state)
{
	struct fix *f = *state;
	fix_open(f);
	uint64_t a = put_ok(f, "alpha", 0, 3000, 1000);
	pthread_mutex_lock(&f->h.mu);
	f->h.fail_writes = 1;
	pthread_mutex_unlock(&f->h.mu);
	int err;
	assert_int_equal(put(f, "alpha", 1, 3000, 1000, 0, &err), 0);
	assert_int_equal(err, ENOSPC);
	/* a big one fails while its body is staged */
	pthread_mutex_lock(&f->h.mu);
	f->h.fail_writes = 1;
	pthread_mutex_unlock(&f->h.mu);
	assert_int_equal(put(f, "alpha", 2, 300000, 4096, 1, &err), 0);
	assert_int_equal(err, ENOSPC);
	uint64_t b = put_ok(f, "alpha", 3, 3000, 1000);
	struct expect e[2] = { { "alpha", 0, 3000, a }, { "alpha", 3, 3000, b } };
	check_project(f, "alpha", e, 2);
	fix_open(f);
	assert_int_equal(f->n_damage, 0);
	check_project(f, "alpha", e, 2);
}

/* The disk refused a record: once every record of the segment being
 * written is delivered, the segment is deleted then, not at its rotation
 * (which a full disk never reaches), and the disk gets its space back. */
static void test_full_disk_frees_the_written_segment(void **state)
{
	struct fix *f = *state;
	fix_open(f);
	uint64_t a = put_ok(f, "alpha", 0, 3000, 1000);
	uint64_t b = put_ok(f, "alpha", 1, 3000, 1000);
	pthread_mutex_lock(&f->h.mu);
	f->h.fail_writes = 1;
	pthread_mutex_unlock(&f->h.mu);
	int err;
	assert_int_equal(put(f, "alpha", 2, 3000, 1000, 0, &err), 0);
	assert_int_equal(err, ENOSPC);
	assert_int_equal(spool_store_mark_delivered(f->s, a), 0);
	assert_int_equal(spool_store_mark_delivered(f->s, b), 0);
	spool_store_flush(f->s);
	assert_int_equal(spool_store_segment_count(f->s), 0);
	assert_int_equal(count_files(f->dir, "seg-"), 0);
	/* the next record opens a new segment */
	struct expect e = { "alpha", 3, 3000, 0 };
	e.id = put_ok(f, "alpha", 3, 3000, 1000);
	check_project(f, "alpha", &e, 1);
	fix_open(f);
	assert_int_equal(f->n_damage, 0);
	check_project(f, "alpha", &e, 1);
}

static void test_sync_error(void **state)
{
	struct fix *f = *state;
	fix_open(f);
	uint64_t a = put_ok(f, "alpha", 0, 3000, 1000);
	spool_store_flush(f->s);
	pthread_mutex_lock(&f->h.mu);
	f->h.fail_syncs = 1;
	pthread_mutex_unlock(&f->h.mu);
	int err;
	assert_int_equal(put(f, "alpha", 1, 3000, 1000, 0, &err), 0);
	assert_int_equal(err, EIO);
	/* the segment whose sync failed takes nothing more: a new one follows */
	uint64_t b = put_ok(f, "alpha", 2, 3000, 1000);
	struct expect e[2] = { { "alpha", 0, 3000, a }, { "alpha", 2, 3000, b } };
	check_project(f, "alpha", e, 2);
	fix_open(f);
	assert_int_equal(f->n_damage, 0);
	check_project(f, "alpha", e, 2);
}

/* Bytes that rot on disk after the start: the reader refuses the last
 * ones, so a replay can never send the record whole. */
static void test_reader_checks_sum(void **state)
{
	struct fix *f = *state;
	fix_open(f);
	uint64_t id = put_ok(f, "alpha", 0, 10000, 1000);
	char seg[512];
	first_segment(f, seg, sizeof seg);
	struct stat st;
	assert_int_equal(stat(seg, &st), 0);
	int fd = open(seg, O_RDWR);
	uint8_t b;
	assert_int_equal(pread(fd, &b, 1, st.st_size - 5000), 1);
	b ^= 1;
	assert_int_equal(pwrite(fd, &b, 1, st.st_size - 5000), 1);
	close(fd);
	struct spool_reader *r = spool_store_read(f->s, id);
	assert_non_null(r);
	uint8_t buf[4096];
	uint64_t got = 0;
	ssize_t n;
	while ((n = spool_reader_read(r, buf, sizeof buf)) > 0)
		got += (uint64_t)n;
	assert_int_equal(n, -1);
	assert_int_equal(errno, EIO);
	assert_true(got < 10000);
	spool_reader_close(r);
}

static void test_markers(void **state)
{
	struct fix *f = *state;
	f->o.segment_bytes = 256 << 10;
	fix_open(f);
	struct expect e[6];
	for (unsigned i = 0; i < 6; i++) {
		e[i] = (struct expect){ "alpha", i, 100000, 0 };
		e[i].id = put_ok(f, "alpha", i, 100000, 4096);
	}
	assert_int_equal(spool_store_segment_count(f->s), 3); /* two records each */
	assert_int_equal(spool_store_mark_delivered(f->s, e[0].id), 0);
	assert_int_equal(spool_store_mark_delivered(f->s, e[1].id), 0);
	assert_int_equal(spool_store_mark_delivered(f->s, e[1].id), -1); /* already */
	assert_int_equal(spool_store_mark_dead(f->s, e[2].id, 3, 409, "conflict", 8), 0);
	assert_int_equal(spool_store_mark_attempt(f->s, e[3].id, 2, 503), 0);
	assert_int_equal(spool_store_mark_attempt(f->s, e[2].id, 4, 503), -1); /* dead */
	spool_store_flush(f->s);
	assert_int_equal(spool_store_segment_count(f->s), 2); /* the first one deleted */
	assert_int_equal(count_files(f->dir, "seg-"), 2);
	struct spool_totals t;
	spool_store_totals(f->s, "alpha", &t);
	assert_int_equal(t.pending, 3);
	assert_int_equal(t.dead, 1);
	fix_open(f);
	check_project(f, "alpha", e + 3, 3);
	/* failed sends survive the restart and the markers' compaction */
	assert_int_equal(spool_store_attempts(f->s, e[3].id), 2);
	assert_int_equal(spool_store_attempts(f->s, e[4].id), 0);
	assert_null(spool_store_read(f->s, e[0].id));
	struct spool_dead_info d;
	assert_int_equal(spool_store_dead_info(f->s, e[2].id, &d), 1);
	assert_int_equal(d.status, 409);
	assert_int_equal(d.attempts, 3);
	assert_int_equal(d.answer_len, 8);
	assert_memory_equal(d.answer, "conflict", 8);
	check_record(f, e[2].id, "alpha", 2, 100000); /* a dead letter can be exported */
	spool_store_totals(f->s, NULL, &t);
	assert_int_equal(t.pending, 3);
	assert_int_equal(t.dead, 1);
	/* retried: pending again, in its place */
	assert_int_equal(spool_store_mark_retry(f->s, e[2].id), 0);
	fix_open(f);
	check_project(f, "alpha", e + 2, 4);
	assert_int_equal(spool_store_dead_info(f->s, e[2].id, &d), 0);
	assert_int_equal(spool_store_attempts(f->s, e[2].id), 0); /* a fresh budget */
	assert_int_equal(spool_store_attempts(f->s, e[3].id), 2);
	/* everything delivered: every segment but none is left after a restart */
	for (int i = 2; i < 6; i++)
		assert_int_equal(spool_store_mark_delivered(f->s, e[i].id), 0);
	fix_open(f);
	assert_int_equal(count_files(f->dir, "seg-"), 0);
	spool_store_totals(f->s, NULL, &t);
	assert_int_equal(t.pending + t.dead + t.bytes, 0);
	/* and the ids still grow */
	assert_true(put_ok(f, "alpha", 7, 10, 10) > e[5].id);
}

/* The listing an export pages through: ids above AFTER, delivered ones
 * left out, dead ones marked, one project or all, never more than MAX. */
static void test_list_pages(void **state)
{
	struct fix *f = *state;
	fix_open(f);
	uint64_t id[7];
	for (unsigned i = 0; i < 7; i++)
		id[i] = put_ok(f, i % 2 ? "beta" : "alpha", i, 1000, 1000);
	assert_int_equal(spool_store_mark_delivered(f->s, id[0]), 0);
	assert_int_equal(spool_store_mark_dead(f->s, id[2], 1, 400, "no", 2), 0);
	struct spool_entry e[8];
	size_t n = spool_store_list(f->s, NULL, 0, e, 4);
	assert_int_equal(n, 4);
	assert_int_equal(e[0].id, id[1]);
	assert_string_equal(e[0].project, "beta");
	assert_int_equal(e[1].id, id[2]);
	assert_true(e[1].dead && !e[0].dead);
	assert_true(e[1].bytes > 1000);
	n = spool_store_list(f->s, NULL, e[3].id, e, 4);
	assert_int_equal(n, 2);
	assert_int_equal(e[0].id, id[5]);
	assert_int_equal(e[1].id, id[6]);
	n = spool_store_list(f->s, "alpha", 0, e, 8);
	assert_int_equal(n, 3);              /* 2 (dead), 4, 6 */
	assert_int_equal(e[0].id, id[2]);
	assert_int_equal(spool_store_list(f->s, "nobody", 0, e, 8), 0);
	assert_int_equal(spool_store_list(f->s, NULL, id[6], e, 8), 0);
}

static void test_abort(void **state)
{
	struct fix *f = *state;
	fix_open(f);
	char head[512];
	size_t hl = make_head(head, sizeof head, "alpha", 0);
	/* one small, one past the memory buffer (staged on disk) */
	for (int k = 0; k < 2; k++) {
		struct spool_write *wr =
			spool_write_begin(f->s, f->w, NULL, "alpha", "submit", head, hl, -1);
		assert_non_null(wr);
		assert_int_equal(stream_body(f, wr, 0, k ? 200000 : 100, 4096), 0);
		spool_write_abort(wr);
	}
	uint64_t id = put_ok(f, "alpha", 1, 100, 100);
	struct spool_event ev;
	assert_int_equal(spool_waiter_next(f->w, &ev), 0); /* nothing for the aborted */
	fix_open(f);
	struct expect e = { "alpha", 1, 100, id };
	check_project(f, "alpha", &e, 1);
}

static void test_directory_checks(void **state)
{
	struct fix *f = *state;
	fix_open(f);
	fix_close(f);
	struct stat st;
	assert_int_equal(stat(f->dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	/* Ours but open to others (mkdir -p): closed to 0700 and used. */
	assert_int_equal(chmod(f->dir, 0755), 0);
	fix_open(f);
	assert_int_equal(stat(f->dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	fix_close(f);
	/* Not a directory: refused, naming it. */
	char file[512];
	snprintf(file, sizeof file, "%s/not-a-dir", f->dir);
	FILE *fp = fopen(file, "w");
	assert_non_null(fp);
	fclose(fp);
	struct spool_store_opts o = f->o;
	o.dir = file;
	char why[512] = "";
	assert_null(spool_store_open(&o, &f->damage, &f->n_damage, why, sizeof why));
	assert_non_null(strstr(why, file));
	unlink(file);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_pages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flipped_body_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flipped_header_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_total_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ids_never_reused_after_reclaim, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_disk_frees_the_written_segment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_checks_sum, setup, teardown),
		cmocka_unit_test_setup_teardown(test_markers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort, setup, teardown),
		cmocka_unit_test_setup_teardown(test_directory_checks, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
