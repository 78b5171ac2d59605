/* state: modes of the scopes, read lock-free by workers. */
#include "state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "config.h"

static const char *const mode_names[MODE_COUNT] = { "old", "new", "maintenance", "hold" };

const char *mode_name(enum mode m)
{
	return (unsigned)m < MODE_COUNT ? mode_names[m] : "?";
}

int mode_parse(const char *text, enum mode *out)
{
	for (int i = 0; i < MODE_COUNT; i++)
		if (strcmp(text, mode_names[i]) == 0) {
			*out = (enum mode)i;
			return 0;
		}
	return -1;
}

int state_conf_parse(struct conf_reader *r, const config_setting_t *root, struct config *cfg)
{
	if (conf_get_string(r, root, "state_file", &cfg->state.state_file) < 0 ||
	    conf_get_string(r, root, "journal_file", &cfg->state.journal_file) < 0)
		return -1;
	return 0;
}

void state_conf_free(struct state_conf *c)
{
	free(c->state_file);
	free(c->journal_file);
	c->state_file = c->journal_file = NULL;
}

static struct state_snapshot *current;

static int load_file(const char *path, struct state_snapshot *s, FILE *errs)
{
	struct stat st;
	if (stat(path, &st) < 0 && errno == ENOENT)
		return 0; /* no state yet: global mode old */
	json_error_t jerr;
	json_t *root = json_load_file(path, 0, &jerr);
	if (!root) {
		fprintf(errs, "%s:%d: cannot load the state file: %s\n", path,
			jerr.line > 0 ? jerr.line : 1, jerr.text);
		return -1;
	}
	const char *mode = NULL;
	if (json_unpack_ex(root, &jerr, 0, "{s:s}", "mode", &mode) < 0 ||
	    mode_parse(mode, &s->global) < 0) {
		fprintf(errs, "%s:1: cannot load the state file: %s\n", path,
			mode ? "unknown mode" : jerr.text);
		json_decref(root);
		return -1;
	}
	json_int_t gen = 0;
	json_unpack(root, "{s?I}", "generation", &gen);
	s->generation = (uint64_t)gen;
	json_decref(root);
	return 0;
}

int state_init(const struct state_conf *c, FILE *errs)
{
	struct state_snapshot *s = calloc(1, sizeof(*s));
	if (!s)
		return -1;
	s->global = MODE_OLD;
	if (c->state_file) {
		if (load_file(c->state_file, s, errs) < 0) {
			free(s);
			return -1;
		}
	}
	__atomic_store_n(&current, s, __ATOMIC_RELEASE);
	return 0;
}

void state_shutdown(void)
{
	free(__atomic_exchange_n(&current, NULL, __ATOMIC_ACQ_REL));
}

const struct state_snapshot *state_current(void)
{
	return __atomic_load_n(&current, __ATOMIC_ACQUIRE);
}

enum mode state_mode_for(const struct state_snapshot *s, const char *project, size_t len)
{
	(void)project;
	(void)len;
	return s ? s->global : MODE_OLD;
}
