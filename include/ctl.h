/* ctl: the command-line client of the admin API (`cutover status`,
 * `switch`, `maintenance`, `hold`, `resume`, `journal`, `reload`). */
#ifndef CUTOVER_CTL_H
#define CUTOVER_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* True if CMD is one of the control commands. */
bool ctl_is_command(const char *cmd);
/* Runs a control command; argv[0] is the command. Returns the exit code:
 * 0 success, 1 refused or failed (one line on stderr says why), 2 usage,
 * 3 the change is in force but requests were still in flight at the drain
 * timeout. */
int ctl_main(int argc, char **argv);

/* ---- the pieces of ctl_main, apart so they can be tested without sockets ---- */

#define CTL_DEFAULT_ADMIN "unix:/run/cutover/admin.sock"
#define CTL_DEFAULT_TIMEOUT 60.0
#define CTL_DEFAULT_JOURNAL 20
#define CTL_MAX_ANSWER (16u << 20)

/* Exit codes. */
enum { CTL_OK = 0, CTL_FAILED = 1, CTL_USAGE = 2, CTL_NOT_DRAINED = 3 };

/* One parsed command line: what to send, where. Strings other than BODY
 * point into argv or the environment. */
struct ctl_request {
	const char *command;     /* "switch", "schedule", ... */
	const char *method;      /* "GET", "POST", "DELETE" */
	char path[96];           /* "/switch", "/journal?n=20", "/schedule/3" */
	char *body;              /* JSON text (malloc'd), NULL for GET/DELETE */
	const char *admin;       /* --admin, else $CUTOVER_ADMIN, else CTL_DEFAULT_ADMIN */
	const char *token_file;  /* --token-file, else $CUTOVER_TOKEN_FILE, else NULL */
	double timeout;          /* seconds for the whole exchange */
	bool json;               /* --json: print the API's answer as is */
	bool help;               /* -h/--help: print the command's usage, send nothing */
	const char *until;       /* maintenance --until as given, for the success line */
};

/* Parses ARGV (argv[0] is the command) into OUT. Returns CTL_OK, or
 * CTL_USAGE with a one-line reason in ERR. OUT is always safe to pass to
 * ctl_request_free. */
int ctl_build_request(int argc, char **argv, struct ctl_request *out, char *err, size_t errlen);
void ctl_request_free(struct ctl_request *req);

/* The admin address: OPTION if given, else $CUTOVER_ADMIN if set and not
 * empty, else CTL_DEFAULT_ADMIN. */
const char *ctl_admin_address(const char *option);

/* "usage: cutover switch old|new [...]" for COMMAND (NULL: every command). */
void ctl_print_usage(const char *command, FILE *out, bool long_form);

/* Prints the answer STATUS/ANSWER_TEXT of the API to REQ to OUT (results)
 * and ERR (the one-line reason) and returns the exit code. ANSWER_TEXT is
 * the body (NUL-terminated, may be empty or not JSON). */
int ctl_render(const struct ctl_request *req, int status, const char *answer_text, FILE *out,
	       FILE *err);

#endif
