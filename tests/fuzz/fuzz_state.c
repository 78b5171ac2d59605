/* fuzz_state: the state as a restart reads it: the full save (state.json)
 * and the log of changes since (state.json.log), written to a temp
 * directory, loaded through the file store by state_init() (JSON, the
 * snapshot of every scope, the scheduled switches, the changes replayed),
 * the snapshot read as workers and status read it, then state_shutdown().
 *
 * Input: one control byte (bit 0: with --start-mode, which replaces an
 * unreadable state; bit 1: the bytes after the first NUL are the change
 * log), then the files' bytes. */
#include "fuzz.h"

#include <fcntl.h>
#include <unistd.h>

#include <jansson.h>

#include "project.h"
#include "state.h"
#include "state_store.h"

static const char *path;
static char log_path[4096];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	path = fuzz_tmpdir("fuzz-state", "state.json");
	snprintf(log_path, sizeof(log_path), "%s.log", path);
	return 0;
}

static void write_file(const char *path, const uint8_t *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size) || close(fd) < 0)
		abort();
}

static void read_snapshot(void)
{
	const struct state_snapshot *s = state_current();
	FUZZ_CHECK(s != NULL, "no snapshot after a successful load");
	FUZZ_CHECK(s->global.mode < MODE_COUNT && s->global.resume_to < MODE_COUNT,
		   "global mode %d resume_to %d", (int)s->global.mode, (int)s->global.resume_to);
	json_t *j = state_scope_json(&s->global);
	json_decref(j);
	for (size_t i = 0; i < s->n_projects; i++) {
		const struct project_mode *p = state_project_at(s, i);
		FUZZ_CHECK(p != NULL, "project %zu of %zu missing", i, s->n_projects);
		FUZZ_CHECK(p->s.mode < MODE_COUNT, "project mode %d", (int)p->s.mode);
		/* A scope a request can reach: what the admin API would accept. */
		FUZZ_CHECK(p->len > 0 && p->len <= PROJECT_NAME_MAX, "project name of %zu bytes",
			   p->len);
		/* Every project is found by its own name. */
		FUZZ_CHECK(state_project(s, p->name, p->len) == p, "project %zu not found", i);
		FUZZ_CHECK(state_mode_for(s, p->name, p->len) == p->s.mode, "project %zu mode", i);
		j = state_scope_json(&p->s);
		json_decref(j);
	}
	state_mode_for(s, "no-such-project", 15);
	FUZZ_CHECK(json_is_array(state_scheduled()), "scheduled is not an array");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 256 * 1024)
		return 0;
	const char *force = data[0] & 1 ? "maintenance" : NULL;
	const uint8_t *log = data[0] & 2 ? memchr(data + 1, 0, size - 1) : NULL;
	size_t state_len = log ? (size_t)(log - (data + 1)) : size - 1;
	write_file(path, data + 1, state_len);
	if (log)
		write_file(log_path, log + 1, size - 1 - state_len - 1);
	else
		unlink(log_path);
	struct state_store *store = state_store_file_new(path);
	if (state_init(store, force, fuzz_devnull()) == 0) {
		read_snapshot();
		state_shutdown();
	}
	return 0;
}
