/* fuzz_state: the state file as a restart reads it: the bytes written to a
 * file in a temp directory, loaded through the file store by state_init()
 * (JSON, then the snapshot of every scope and the scheduled switches), the
 * snapshot read as workers and status read it, then state_shutdown().
 * Also with --start-mode (control byte 1), which replaces an unreadable
 * state.
 *
 * Input: one control byte, then the file's bytes. */
#include "fuzz.h"

#include <fcntl.h>
#include <unistd.h>

#include <jansson.h>

#include "state.h"
#include "state_store.h"

static const char *path;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	path = fuzz_tmpdir("fuzz-state", "state.json");
	return 0;
}

static void write_file(const uint8_t *data, size_t size)
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
		const struct project_mode *p = &s->projects[i];
		FUZZ_CHECK(p->s.mode < MODE_COUNT, "project mode %d", (int)p->s.mode);
		FUZZ_CHECK(i == 0 || memcmp(s->projects[i - 1].name, p->name,
					    p->len < s->projects[i - 1].len ? p->len
									     : s->projects[i - 1].len) <= 0,
			   "projects not sorted");
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
	const char *force = data[0] == 1 ? "maintenance" : NULL;
	write_file(data + 1, size - 1);
	struct state_store *store = state_store_file_new(path);
	if (state_init(store, force, fuzz_devnull()) == 0) {
		read_snapshot();
		state_shutdown();
	}
	return 0;
}
