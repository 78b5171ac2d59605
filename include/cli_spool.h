/* cli_spool: the spool commands that take more than one exchange with the
 * admin API: `cutover spool show ID [--body FILE]` (the record, then its
 * body streamed into FILE) and `cutover spool export DIR` (every record,
 * paged through GET /spool/records, as files a person replays with curl).
 * cli parses the command line and calls these. */
#ifndef CUTOVER_CLI_SPOOL_H
#define CUTOVER_CLI_SPOOL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "render.h"

struct addr;

/* The admin API to talk to, as cli resolved it. */
struct cli_spool_conn {
	const char *admin;          /* the address as written, for messages */
	const struct addr *addr;
	const char *token;          /* bearer token, NULL for none */
	bool token_file;            /* one was named (no hint on a 401) */
	double timeout;             /* seconds for each exchange */
	bool json;                  /* --json */
};

/* Records asked for per GET /spool/records. */
#define CLI_SPOOL_PAGE 500

/* Prints record ID (GET /spool/<id>, Authorization redacted unless
 * CREDENTIALS); with BODY_FILE, then writes its body there (created 0600;
 * removed again if the body does not arrive whole). */
enum render_outcome cli_spool_show(const struct cli_spool_conn *c, uint64_t id, bool credentials,
				   const char *body_file, FILE *out, FILE *err);

/* Writes every record (of PROJECT, NULL: all), pending and dead, into DIR
 * (created 0700 if missing; refused unless empty) as ID.headers (curl -H
 * @FILE), ID.body (the bytes), ID.json (what the record is) and ID.sh (the
 * curl command, 0700); the others 0600. Prints how many records and body
 * bytes were written. */
enum render_outcome cli_spool_export(const struct cli_spool_conn *c, const char *dir,
				     const char *project, bool credentials, FILE *out, FILE *err);

#endif
