/* adminclient: one blocking HTTP/1.1 exchange with the admin API, over a
 * unix socket or TCP, bounded in time (a deadline for the whole exchange)
 * and size (ADMINCLIENT_MAX_ANSWER). The CLI's way to the `admin` module. */
#ifndef CUTOVER_ADMINCLIENT_H
#define CUTOVER_ADMINCLIENT_H

#include <stddef.h>
#include <stdint.h>

struct addr;

/* The largest answer body read; a larger one fails the exchange. */
#define ADMINCLIENT_MAX_ANSWER (16u << 20)

/* What to send, where. */
struct adminclient_request {
	const char *admin;          /* the address as written, for messages */
	const struct addr *addr;    /* ADMIN parsed */
	const char *method;         /* "GET", "POST", "DELETE" */
	const char *path;           /* "/switch", "/journal?n=20" */
	const char *body;           /* JSON text, NULL for none */
	const char *token;          /* bearer token, NULL for none */
	double timeout;             /* seconds for the whole exchange */
};

/* What came back. */
struct adminclient_answer {
	int status;
	char *body;                 /* decoded body, NUL-terminated (malloc'd) */
	size_t body_len;
};

/* Sends REQ and reads the answer into ANS. Returns 0, or -1 with a one-line
 * reason in ERR that names the address. ANS is always safe to pass to
 * adminclient_answer_free. */
int adminclient_exchange(const struct adminclient_request *req, struct adminclient_answer *ans,
			 char *err, size_t errlen);
/* The same, except that a 200 answer framed by Content-Length has its body
 * written to FD as it arrives (any size, never whole in memory): ANS->body
 * is then empty and *WRITTEN the bytes written. An answer ending short of
 * its Content-Length fails (-1, ERR says how short); any other answer is
 * read into ANS as adminclient_exchange reads it. */
int adminclient_exchange_to_fd(const struct adminclient_request *req, int fd, uint64_t *written,
			       struct adminclient_answer *ans, char *err, size_t errlen);
void adminclient_answer_free(struct adminclient_answer *ans);

#endif
