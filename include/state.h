/* state: the mode of every scope. Workers read an immutable snapshot
 * through one atomic pointer; the control plane (a later issue) builds a new
 * snapshot, persists it through the store and publishes it. */
#ifndef CUTOVER_STATE_H
#define CUTOVER_STATE_H

#include <libconfig.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct conf_reader;
struct config;

enum mode { MODE_OLD, MODE_NEW, MODE_MAINTENANCE, MODE_HOLD, MODE_COUNT };

struct state_conf {
	char *state_file;
	char *journal_file;
};

/* Parses the top-level "state_file" and "journal_file" scalars. */
int state_conf_parse(struct conf_reader *r, const config_setting_t *root, struct config *cfg);
void state_conf_free(struct state_conf *c);

const char *mode_name(enum mode m);
int mode_parse(const char *text, enum mode *out);

struct state_snapshot {
	uint64_t generation;
	enum mode global;
	/* per-project modes come with the control-plane issue */
};

/* Loads the state file (absent = global mode old). A file that exists but
 * cannot be read or parsed is an error naming the file: a restart must never
 * silently send traffic back to old. Returns 0 or -1 after printing why. */
int state_init(const struct state_conf *c, FILE *errs);
void state_shutdown(void);
/* The current snapshot; lock-free, valid until the caller's next request. */
const struct state_snapshot *state_current(void);
enum mode state_mode_for(const struct state_snapshot *s, const char *project, size_t len);

#endif
