/* render: the admin API's answers as the CLI prints them: results on
 * stdout, the one-line reason of a refusal or failure on stderr. */
#ifndef CUTOVER_RENDER_H
#define CUTOVER_RENDER_H

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

/* What an answer means for the command that asked; cli turns it into an
 * exit code. */
enum render_outcome {
	RENDER_DONE,             /* done, the result is printed */
	RENDER_FAILED,           /* refused or failed: one line on stderr says why */
	RENDER_NOT_DRAINED,      /* in force, but requests were still in flight at the
				    drain timeout: one line on stderr says how many */
};

struct render_request;

/* Prints a 2xx answer that is a JSON object. */
typedef enum render_outcome render_printer(const struct render_request *rq, int status,
					   const json_t *answer, FILE *out, FILE *err);

/* What printing needs of the request the answer is to, and nothing else:
 * the command line is cli's. */
struct render_request {
	const char *command;     /* "switch", ...: "cutover: switch refused: ..." */
	const char *admin;       /* the admin address, for "bad answer from ..." */
	bool json;               /* --json: print the answer as is */
	bool token_file;         /* a token file was named: no hint on a 401 */
	const char *until;       /* maintenance --until as given, if the answer has none */
	render_printer *print;   /* the command's printer, NULL: nothing beyond --json */
};

/* Prints the answer STATUS/ANSWER_TEXT to RQ on OUT (results) and ERR (the
 * one-line reason). ANSWER_TEXT is the body (NUL-terminated, may be empty or
 * not JSON). */
enum render_outcome render_answer(const struct render_request *rq, int status,
				  const char *answer_text, FILE *out, FILE *err);

/* The printers, one per answer kind, for cli's command table. */
render_printer render_status;   /* modes, upstreams, projects, spool, schedule, journal */
render_printer render_change;   /* "alpha: old -> new (preflight ok, drained)", or scheduled */
render_printer render_resume;   /* a change line per scope resumed */
render_printer render_journal;  /* an entry per line */
render_printer render_reload;
render_printer render_cancel;   /* the scheduled switch cancelled */
render_printer render_spool;    /* spool ls: a line per project, one per dead letter; retry */
render_printer render_spool_record; /* spool show: what the record is, then its head */

#endif
