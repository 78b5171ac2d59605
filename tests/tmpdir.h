/* tmpdir.h: a fresh directory per test, and one file path in it, for the
 * unit tests of modules that write files (admin's token, the journal, the
 * state and its store, file). Header-only, like http_assert.h. */
#ifndef CUTOVER_TESTS_TMPDIR_H
#define CUTOVER_TESTS_TMPDIR_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct tmpdir {
	char dir[64];
	char path[128];          /* DIR/FILE */
};

/* Makes /tmp/cutover-test-NAME-XXXXXX and sets t->path to DIR/FILE (not
 * created). Returns 0 or -1. */
static inline int tmpdir_make(struct tmpdir *t, const char *name, const char *file)
{
	snprintf(t->dir, sizeof t->dir, "/tmp/cutover-test-%s-XXXXXX", name);
	if (!mkdtemp(t->dir))
		return -1;
	snprintf(t->path, sizeof t->path, "%s/%s", t->dir, file);
	return 0;
}

/* Removes DIR and whatever a test left in it, directories included. */
static inline void tmpdir_remove_tree(const char *dir)
{
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *e;
		char p[600];
		while ((e = readdir(d))) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)sizeof p)
				continue;
			if (unlink(p) < 0)
				tmpdir_remove_tree(p); /* a directory */
		}
		closedir(d);
	}
	rmdir(dir);
}

/* Entries in DIR ("." and ".." aside); -1 when it cannot be read. */
static inline int tmpdir_count(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

static inline void tmpdir_remove(struct tmpdir *t)
{
	tmpdir_remove_tree(t->dir);
}

/* cmocka setup/teardown for a test whose whole state is one struct tmpdir. */
static inline int tmpdir_setup(void **state, const char *name, const char *file)
{
	struct tmpdir *t = calloc(1, sizeof *t);
	if (!t || tmpdir_make(t, name, file) < 0) {
		free(t);
		return -1;
	}
	*state = t;
	return 0;
}

static inline int tmpdir_teardown(void **state)
{
	tmpdir_remove(*state);
	free(*state);
	return 0;
}

#endif
