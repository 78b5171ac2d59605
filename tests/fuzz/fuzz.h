/* fuzz.h: what the libFuzzer targets share (header-only, like
 * tests/tmpdir.h): input as a C string, a private temp directory removed at
 * exit, a sink for error messages, and a check that aborts (a crash the
 * fuzzer keeps) when an invariant of the code under test does not hold. */
#ifndef CUTOVER_TESTS_FUZZ_H
#define CUTOVER_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tmpdir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* An invariant broken: abort with the reason (the fuzzer saves the input). */
#define FUZZ_CHECK(cond, ...)                                                          \
	do {                                                                           \
		if (!(cond)) {                                                         \
			fprintf(stderr, "%s:%d: invariant broken: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                                  \
			fputc('\n', stderr);                                           \
			abort();                                                       \
		}                                                                      \
	} while (0)

/* DATA[0..SIZE) as a malloc'd, NUL-terminated string, exactly SIZE + 1
 * bytes, so ASan sees a read past its end. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* Error messages go nowhere: printing them is not what is fuzzed, and a
 * run's output stays readable. */
static inline FILE *fuzz_devnull(void)
{
	static FILE *f;
	if (!f && !(f = fopen("/dev/null", "w")))
		abort();
	return f;
}

static struct tmpdir fuzz_tmp;

static inline void fuzz_tmpdir_remove(void)
{
	tmpdir_remove_tree(fuzz_tmp.dir);
}

/* A directory of its own, removed at a normal exit; FILE names the path
 * fuzz_tmp.path. A crash exits without atexit handlers and leaves it:
 * under $CUTOVER_FUZZ_TMP when set (scripts/run-fuzz.sh sets it to a
 * directory it removes at the end), else under /tmp. */
static inline const char *fuzz_tmpdir(const char *name, const char *file)
{
	if (!fuzz_tmp.dir[0]) {
		const char *base = getenv("CUTOVER_FUZZ_TMP");
		if (!base || !*base)
			base = "/tmp";
		int n = snprintf(fuzz_tmp.dir, sizeof(fuzz_tmp.dir), "%s/cutover-%s-XXXXXX", base,
				 name);
		if (n < 0 || (size_t)n >= sizeof(fuzz_tmp.dir) || !mkdtemp(fuzz_tmp.dir))
			abort();
		n = snprintf(fuzz_tmp.path, sizeof(fuzz_tmp.path), "%s/%s", fuzz_tmp.dir, file);
		if (n < 0 || (size_t)n >= sizeof(fuzz_tmp.path))
			abort();
		atexit(fuzz_tmpdir_remove);
	}
	return fuzz_tmp.path;
}

#endif
