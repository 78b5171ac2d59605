/* tests for proxy/file.c: full writes through EINTR and short writes, and
 * the atomic replace (temp file, fsync, rename, fsync dir). Files live in a
 * mkdtemp() directory removed at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "file.h"
#include "tmpdir.h"

static int setup(void **state)
{
	return tmpdir_setup(state, "file", "data");
}

static int teardown(void **state)
{
	return tmpdir_teardown(state);
}

/* The whole file (malloc'd) and its length. */
static char *slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	assert_non_null(fp);
	char *buf = malloc(1 << 20);
	assert_non_null(buf);
	*len = fread(buf, 1, 1 << 20, fp);
	fclose(fp);
	return buf;
}

/* ---- file_write_full ---- */

struct reader {
	int fd;
	char *got;
	size_t len, cap;
};

/* Reads slowly, so that the writer blocks and the timer interrupts it. */
static void *read_slowly(void *arg)
{
	struct reader *r = arg;
	for (;;) {
		char buf[4096];
		ssize_t n = read(r->fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (r->len + (size_t)n <= r->cap)
			memcpy(r->got + r->len, buf, (size_t)n);
		r->len += (size_t)n;
		if (r->len % (64 * 1024) < (size_t)n)
			usleep(1000);
	}
	return NULL;
}

static volatile sig_atomic_t ticks;

static void on_alarm(int sig)
{
	(void)sig;
	ticks++;
}

/* A pipe's writer interrupted every 200 us (no SA_RESTART): write(2) keeps
 * returning short counts or EINTR, and every byte still arrives, in order. */
static void test_write_full_through_interruptions(void **state)
{
	(void)state;
	size_t len = 4u << 20;
	char *data = malloc(len);
	assert_non_null(data);
	for (size_t i = 0; i < len; i++)
		data[i] = (char)(i * 7 + i / 4096);
	int p[2];
	assert_int_equal(pipe(p), 0);
	struct reader r = { .fd = p[0], .got = malloc(len), .cap = len };
	assert_non_null(r.got);

	struct sigaction sa = { .sa_handler = on_alarm }, old;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
	/* Only this thread takes the signal: block it in the reader. */
	sigset_t alrm, prev;
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &alrm, &prev);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, read_slowly, &r), 0);
	pthread_sigmask(SIG_SETMASK, &prev, NULL);
	struct itimerval it = { { 0, 200 }, { 0, 200 } }, off = { 0 };
	assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);

	int rc = file_write_full(p[1], data, len);

	setitimer(ITIMER_REAL, &off, NULL);
	sigaction(SIGALRM, &old, NULL);
	close(p[1]);
	pthread_join(t, NULL);
	close(p[0]);
	assert_int_equal(rc, 0);
	assert_true(ticks > 0);
	assert_int_equal(r.len, len);
	assert_memory_equal(r.got, data, len);
	free(r.got);
	free(data);
}

static void test_write_full_reports_errno(void **state)
{
	struct tmpdir *f = *state;
	int fd = open(f->path, O_RDONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	errno = 0;
	assert_int_equal(file_write_full(fd, "x", 1), -1);
	assert_int_equal(errno, EBADF);
	close(fd);

	/* nothing to write: nothing done, success */
	assert_int_equal(file_write_full(-1, "", 0), 0);
}

/* ---- file_replace ---- */

static void test_replace_creates_and_replaces(void **state)
{
	struct tmpdir *f = *state;
	char why[512] = "";
	assert_int_equal(file_replace(f->path, "first\n", 6, 0600, why, sizeof why), 0);
	size_t n;
	char *got = slurp(f->path, &n);
	assert_int_equal(n, 6);
	assert_memory_equal(got, "first\n", 6);
	free(got);

	assert_int_equal(file_replace(f->path, "second, longer\n", 15, 0600, why, sizeof why), 0);
	got = slurp(f->path, &n);
	assert_int_equal(n, 15);
	assert_memory_equal(got, "second, longer\n", 15);
	free(got);

	/* empty content is content */
	assert_int_equal(file_replace(f->path, "", 0, 0600, NULL, 0), 0);
	got = slurp(f->path, &n);
	assert_int_equal(n, 0);
	free(got);
	assert_int_equal(tmpdir_count(f->dir), 1);   /* no temp file left */
	assert_string_equal(why, "");
}

/* Exactly MODE, whatever the umask, also over a file with another mode. */
static void test_replace_mode(void **state)
{
	struct tmpdir *f = *state;
	struct stat st;
	mode_t old = umask(0);
	assert_int_equal(file_replace(f->path, "a", 1, 0640, NULL, 0), 0);
	umask(old);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);

	old = umask(0077);
	assert_int_equal(file_replace(f->path, "b", 1, 0644, NULL, 0), 0);
	umask(old);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_true(S_ISREG(st.st_mode));
}

static void test_replace_missing_directory(void **state)
{
	struct tmpdir *f = *state;
	char path[192], why[512] = "";
	snprintf(path, sizeof path, "%s/nope/data", f->dir);
	errno = 0;
	assert_int_equal(file_replace(path, "x", 1, 0600, why, sizeof why), -1);
	assert_int_equal(errno, ENOENT);
	char want[400];
	snprintf(want, sizeof want, "%s: create temp file: %s", path, strerror(ENOENT));
	assert_string_equal(why, want);
	assert_int_equal(tmpdir_count(f->dir), 0);
}

/* A failure after the temp file exists (rename onto a non-empty directory)
 * removes the temp file and keeps what was there. */
static void test_replace_failed_rename_cleans_up(void **state)
{
	struct tmpdir *f = *state;
	char why[512] = "", inner[192];
	assert_int_equal(mkdir(f->path, 0700), 0);
	snprintf(inner, sizeof inner, "%s/keep", f->path);
	assert_int_equal(file_replace(inner, "k", 1, 0600, NULL, 0), 0);
	assert_int_equal(file_replace(f->path, "x", 1, 0600, why, sizeof why), -1);
	assert_non_null(strstr(why, f->path));
	assert_non_null(strstr(why, ": rename temp file: "));
	assert_int_equal(tmpdir_count(f->dir), 1);    /* the directory only */
	assert_int_equal(tmpdir_count(f->path), 1);   /* with what it held */
}

/* A symlink planted where the temp file goes is not written through. */
static void test_replace_does_not_follow_planted_link(void **state)
{
	struct tmpdir *f = *state;
	char tmp[192], victim[192], why[512] = "";
	snprintf(victim, sizeof victim, "%s/victim", f->dir);
	assert_int_equal(file_replace(victim, "precious", 8, 0600, NULL, 0), 0);
	snprintf(tmp, sizeof tmp, "%s.tmp.%ld", f->path, (long)getpid());
	assert_int_equal(symlink(victim, tmp), 0);
	assert_int_equal(file_replace(f->path, "evil", 4, 0600, why, sizeof why), -1);
	assert_int_equal(errno, ELOOP);
	size_t n;
	char *got = slurp(victim, &n);
	assert_int_equal(n, 8);
	assert_memory_equal(got, "precious", 8);
	free(got);
	struct stat st;
	assert_int_equal(lstat(f->path, &st), -1);
}

/* A path without a directory part is replaced in the current directory. */
static void test_replace_relative_path(void **state)
{
	struct tmpdir *f = *state;
	char cwd[512];
	assert_non_null(getcwd(cwd, sizeof cwd));
	assert_int_equal(chdir(f->dir), 0);
	int rc = file_replace("here", "h", 1, 0600, NULL, 0);
	assert_int_equal(chdir(cwd), 0);
	assert_int_equal(rc, 0);
	char path[192];
	snprintf(path, sizeof path, "%s/here", f->dir);
	size_t n;
	char *got = slurp(path, &n);
	assert_int_equal(n, 1);
	free(got);
}

static void test_error_format(void **state)
{
	(void)state;
	char why[128];
	file_error(why, sizeof why, "/x/y", "fsync directory", EIO);
	char want[128];
	snprintf(want, sizeof want, "/x/y: fsync directory: %s", strerror(EIO));
	assert_string_equal(why, want);
	file_error(NULL, 0, "/x/y", "open", EIO);   /* no buffer: nothing written */
	why[0] = 'z';
	file_error(why, 0, "/x/y", "open", EIO);
	assert_int_equal(why[0], 'z');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_write_full_through_interruptions),
		cmocka_unit_test_setup_teardown(test_write_full_reports_errno, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replace_creates_and_replaces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replace_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replace_missing_directory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replace_failed_rename_cleans_up, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replace_does_not_follow_planted_link, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_replace_relative_path, setup, teardown),
		cmocka_unit_test(test_error_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
