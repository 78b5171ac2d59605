/* cli: the command-line client of the admin API (`cutover status`,
 * `switch`, `maintenance`, `hold`, `resume`, `journal`, `reload`,
 * `schedule`, `spool`). */
#ifndef CUTOVER_CLI_H
#define CUTOVER_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* True if CMD is one of the control commands. */
bool cli_is_command(const char *cmd);
/* Runs a control command; argv[0] is the command. Returns the exit code:
 * 0 success, 1 refused or failed (one line on stderr says why), 2 usage,
 * 3 the change is in force but requests were still in flight at the drain
 * timeout. */
int cli_main(int argc, char **argv);

/* ---- the pieces of cli_main, apart so they can be tested without sockets ---- */

#define CLI_DEFAULT_ADMIN "unix:/run/cutover/admin.sock"
#define CLI_DEFAULT_TIMEOUT 60.0
#define CLI_DEFAULT_JOURNAL 20

/* Exit codes, the one place they are defined: render says what an answer
 * means, cli turns that into one of these. */
enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2, CLI_NOT_DRAINED = 3 };

/* One parsed command line: what to send, where. Strings other than BODY
 * point into argv or the environment. */
struct cli_request {
	const char *command;     /* "switch", "schedule", ... */
	const char *method;      /* "GET", "POST", "DELETE" */
	char path[96];           /* "/switch", "/journal?n=20", "/schedule/3" */
	char *body;              /* JSON text (malloc'd), NULL for GET/DELETE */
	const char *admin;       /* --admin, else $CUTOVER_ADMIN, else CLI_DEFAULT_ADMIN */
	const char *token_file;  /* --token-file, else $CUTOVER_TOKEN_FILE, else NULL */
	double timeout;          /* seconds for the whole exchange */
	bool json;               /* --json: print the API's answer as is */
	bool help;               /* -h/--help: print the command's usage, send nothing */
	const char *until;       /* maintenance --until as given, for the success line */
	/* spool show / export: several exchanges, run by cli_spool */
	int spool_action;        /* 0, CLI_SPOOL_SHOW or CLI_SPOOL_EXPORT */
	unsigned long long spool_id;
	const char *spool_dir;   /* export DIR */
	const char *body_file;   /* show --body FILE */
	const char *project;     /* --project */
	bool credentials;        /* --with-credentials */
};

enum { CLI_SPOOL_SHOW = 1, CLI_SPOOL_EXPORT = 2 };

/* Parses ARGV (argv[0] is the command) into OUT. Returns CLI_OK, or
 * CLI_USAGE with a one-line reason in ERR. OUT is always safe to pass to
 * cli_request_free. */
int cli_build_request(int argc, char **argv, struct cli_request *out, char *err, size_t errlen);
void cli_request_free(struct cli_request *req);

/* The admin address: OPTION if given, else $CUTOVER_ADMIN if set and not
 * empty, else CLI_DEFAULT_ADMIN. */
const char *cli_admin_address(const char *option);

/* "usage: cutover switch old|new [...]" for COMMAND (NULL: every command). */
void cli_print_usage(const char *command, FILE *out, bool long_form);

/* Prints the answer STATUS/ANSWER_TEXT of the API to REQ to OUT (results)
 * and ERR (the one-line reason) with REQ's command's render printer, and
 * returns the exit code. ANSWER_TEXT is the body (NUL-terminated, may be
 * empty or not JSON). */
int cli_render(const struct cli_request *req, int status, const char *answer_text, FILE *out,
	       FILE *err);

#endif
