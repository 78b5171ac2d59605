/* cli: `cutover status|switch|maintenance|hold|resume|journal|reload|
 * schedule` as a client of the admin API. A table maps each command to the
 * options it takes, how it builds its request and how it prints the
 * answer; the exchange itself is adminclient's. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "addr.h"
#include "admin.h"
#include "adminclient.h"

/* ---- command line ---- */

enum cli_opt {
	OPT_PROJECT = 1u << 0,
	OPT_REASON = 1u << 1,
	OPT_FORCE = 1u << 2,
	OPT_AT = 1u << 3,
	OPT_UNTIL = 1u << 4,
	OPT_MAX = 1u << 5,
	OPT_LINES = 1u << 6,
	/* global: every command takes them */
	OPT_ADMIN = 1u << 8,
	OPT_TOKEN_FILE = 1u << 9,
	OPT_JSON = 1u << 10,
	OPT_TIMEOUT = 1u << 11,
	OPT_HELP = 1u << 12,
};
#define OPT_GLOBAL (OPT_ADMIN | OPT_TOKEN_FILE | OPT_JSON | OPT_TIMEOUT | OPT_HELP)

static const struct cli_option {
	const char *name;      /* "--project" */
	const char *alias;     /* "-n", "-h" or NULL */
	enum cli_opt bit;
	bool takes_value;
} options[] = {
	{ "--project", NULL, OPT_PROJECT, true },
	{ "--reason", NULL, OPT_REASON, true },
	{ "--force", NULL, OPT_FORCE, false },
	{ "--at", NULL, OPT_AT, true },
	{ "--until", NULL, OPT_UNTIL, true },
	{ "--max", NULL, OPT_MAX, true },
	{ "--lines", "-n", OPT_LINES, true },
	{ "--admin", NULL, OPT_ADMIN, true },
	{ "--token-file", NULL, OPT_TOKEN_FILE, true },
	{ "--json", NULL, OPT_JSON, false },
	{ "--timeout", NULL, OPT_TIMEOUT, true },
	{ "--help", "-h", OPT_HELP, false },
};

#define MAX_POSITIONAL 4

/* What the command line said, before it becomes a request. */
struct cli_args {
	unsigned seen;
	const char *project, *reason, *at, *until, *max, *lines;
	const char *admin, *token_file, *timeout;
	const char *pos[MAX_POSITIONAL];
	int n_pos;
};

struct cli_command {
	const char *name;
	const char *synopsis;    /* after "cutover NAME " */
	const char *summary;
	unsigned opts;           /* command options it accepts, besides OPT_GLOBAL */
	int (*build)(const struct cli_args *a, struct cli_request *req, char *err, size_t errlen);
	/* Prints a 2xx answer; returns the exit code. */
	int (*print)(const struct cli_request *req, int status, const json_t *answer, FILE *out,
		     FILE *err);
};

static int usage_error(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int usage_error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return CLI_USAGE;
}

/* The body as JSON text; BODY is consumed. */
static int set_body(struct cli_request *req, json_t *body, char *err, size_t errlen)
{
	if (!body)
		return usage_error(err, errlen, "%s: an option value is not valid UTF-8",
				   req->command);
	req->body = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (!req->body)
		return usage_error(err, errlen, "%s: out of memory", req->command);
	return CLI_OK;
}

static int no_positional(const struct cli_args *a, const struct cli_request *req, int from,
			 char *err, size_t errlen)
{
	if (a->n_pos > from)
		return usage_error(err, errlen, "%s: unexpected argument '%s'", req->command,
				   a->pos[from]);
	return CLI_OK;
}

static int build_status(const struct cli_args *a, struct cli_request *req, char *err,
			size_t errlen)
{
	req->method = "GET";
	snprintf(req->path, sizeof(req->path), "/status");
	return no_positional(a, req, 0, err, errlen);
}

static int build_switch(const struct cli_args *a, struct cli_request *req, char *err,
			size_t errlen)
{
	if (a->n_pos == 0)
		return usage_error(err, errlen, "switch: say where to: old or new");
	if (strcmp(a->pos[0], "old") != 0 && strcmp(a->pos[0], "new") != 0)
		return usage_error(err, errlen, "switch: the target is old or new, not '%s'",
				   a->pos[0]);
	int rc = no_positional(a, req, 1, err, errlen);
	if (rc != CLI_OK)
		return rc;
	req->method = "POST";
	snprintf(req->path, sizeof(req->path), "/switch");
	return set_body(req,
			json_pack("{s:s, s:s*, s:s*, s:o*, s:s*}", "to", a->pos[0], "project",
				  a->project, "reason", a->reason, "force",
				  (a->seen & OPT_FORCE) ? json_true() : NULL, "at", a->at),
			err, errlen);
}

static int build_maintenance(const struct cli_args *a, struct cli_request *req, char *err,
			     size_t errlen)
{
	bool on = true;
	if (a->n_pos > 0) {
		if (strcmp(a->pos[0], "off") == 0)
			on = false;
		else if (strcmp(a->pos[0], "on") != 0)
			return usage_error(err, errlen, "maintenance: say on or off, not '%s'",
					   a->pos[0]);
	}
	int rc = no_positional(a, req, 1, err, errlen);
	if (rc != CLI_OK)
		return rc;
	if (!on && a->until)
		return usage_error(err, errlen, "maintenance: --until goes with 'on', not 'off'");
	req->method = "POST";
	snprintf(req->path, sizeof(req->path), "/maintenance");
	req->until = a->until;
	return set_body(req,
			json_pack("{s:b, s:s*, s:s*, s:s*}", "on", on, "project", a->project,
				  "until", a->until, "reason", a->reason),
			err, errlen);
}

static int build_hold(const struct cli_args *a, struct cli_request *req, char *err,
		      size_t errlen)
{
	int rc = no_positional(a, req, 0, err, errlen);
	if (rc != CLI_OK)
		return rc;
	json_t *max = NULL;
	if (a->max) {
		char *end;
		errno = 0;
		double v = strtod(a->max, &end);
		if (end == a->max || *end || errno || !isfinite(v) || v <= 0 || v > 3600)
			return usage_error(err, errlen,
					   "hold: --max is seconds in (0, 3600], not '%s'", a->max);
		max = v == floor(v) ? json_integer((json_int_t)v) : json_real(v);
		if (!max)   /* "s:o*" would drop it: the hold would get the default */
			return usage_error(err, errlen, "hold: out of memory");
	}
	req->method = "POST";
	snprintf(req->path, sizeof(req->path), "/hold");
	return set_body(req, json_pack("{s:s*, s:o*}", "project", a->project, "max", max), err,
			errlen);
}

static int build_resume(const struct cli_args *a, struct cli_request *req, char *err,
			size_t errlen)
{
	int rc = no_positional(a, req, 0, err, errlen);
	if (rc != CLI_OK)
		return rc;
	req->method = "POST";
	snprintf(req->path, sizeof(req->path), "/resume");
	return set_body(req, json_pack("{s:s*}", "project", a->project), err, errlen);
}

static int build_journal(const struct cli_args *a, struct cli_request *req, char *err,
			 size_t errlen)
{
	int rc = no_positional(a, req, 0, err, errlen);
	if (rc != CLI_OK)
		return rc;
	long n = CLI_DEFAULT_JOURNAL;
	if (a->lines) {
		char *end;
		errno = 0;
		n = strtol(a->lines, &end, 10);
		if (end == a->lines || *end || errno || n < 0 || n > 10000)
			return usage_error(err, errlen, "journal: -n is a count in 0..10000, not '%s'",
					   a->lines);
	}
	req->method = "GET";
	snprintf(req->path, sizeof(req->path), "/journal?n=%ld", n);
	return CLI_OK;
}

static int build_reload(const struct cli_args *a, struct cli_request *req, char *err,
			size_t errlen)
{
	int rc = no_positional(a, req, 0, err, errlen);
	if (rc != CLI_OK)
		return rc;
	req->method = "POST";
	snprintf(req->path, sizeof(req->path), "/reload");
	return set_body(req, json_object(), err, errlen);
}

static int build_schedule(const struct cli_args *a, struct cli_request *req, char *err,
			  size_t errlen)
{
	if (a->n_pos == 0 || strcmp(a->pos[0], "cancel") != 0)
		return usage_error(err, errlen, "schedule: the only action is 'cancel ID'%s%s%s",
				   a->n_pos ? ", not '" : "", a->n_pos ? a->pos[0] : "",
				   a->n_pos ? "'" : "");
	if (a->n_pos < 2)
		return usage_error(err, errlen, "schedule cancel: which ID? (see cutover status)");
	const char *id = a->pos[1];
	char *end;
	errno = 0;
	long v = strtol(id, &end, 10);
	if (end == id || *end || errno || v <= 0 || !isdigit((unsigned char)id[0]))
		return usage_error(err, errlen, "schedule cancel: the ID is a number, not '%s'", id);
	int rc = no_positional(a, req, 2, err, errlen);
	if (rc != CLI_OK)
		return rc;
	req->method = "DELETE";
	snprintf(req->path, sizeof(req->path), "/schedule/%ld", v);
	return CLI_OK;
}

static int print_status(const struct cli_request *, int, const json_t *, FILE *, FILE *);
static int print_change(const struct cli_request *, int, const json_t *, FILE *, FILE *);
static int print_resume(const struct cli_request *, int, const json_t *, FILE *, FILE *);
static int print_journal(const struct cli_request *, int, const json_t *, FILE *, FILE *);
static int print_reload(const struct cli_request *, int, const json_t *, FILE *, FILE *);
static int print_cancel(const struct cli_request *, int, const json_t *, FILE *, FILE *);

static const struct cli_command commands[] = {
	{ "status", "", "Modes, upstreams, in-flight requests, spool, schedule, last journal entries",
	  0, build_status, print_status },
	{ "switch", "old|new [--project P] [--reason TEXT] [--force] [--at TIME]",
	  "Send a scope's traffic to old or new (preflight first unless --force; --at schedules it)",
	  OPT_PROJECT | OPT_REASON | OPT_FORCE | OPT_AT, build_switch, print_change },
	{ "maintenance", "[on|off] [--project P] [--until TIME] [--reason TEXT]",
	  "Enter maintenance (default 'on') or leave it for the mode before it",
	  OPT_PROJECT | OPT_UNTIL | OPT_REASON, build_maintenance, print_change },
	{ "hold", "[--project P] [--max SECONDS]",
	  "Park new requests for up to --max seconds (default 30) during a short flip",
	  OPT_PROJECT | OPT_MAX, build_hold, print_change },
	{ "resume", "[--project P]", "Release parked requests (every scope on hold by default)",
	  OPT_PROJECT, build_resume, print_resume },
	{ "journal", "[-n N]", "The last N operator actions (default 20)", OPT_LINES, build_journal,
	  print_journal },
	{ "reload", "", "Re-read the config and certificates without dropping connections", 0,
	  build_reload, print_reload },
	{ "schedule", "cancel ID", "Cancel scheduled switch ID (ids are in cutover status)", 0,
	  build_schedule, print_cancel },
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct cli_command *command_find(const char *name)
{
	for (size_t i = 0; name && i < N_COMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

bool cli_is_command(const char *cmd)
{
	return command_find(cmd) != NULL;
}

static const char *env_nonempty(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

const char *cli_admin_address(const char *option)
{
	if (option)
		return option;
	const char *env = env_nonempty("CUTOVER_ADMIN");
	return env ? env : CLI_DEFAULT_ADMIN;
}

void cli_print_usage(const char *command, FILE *out, bool long_form)
{
	const struct cli_command *c = command_find(command);
	for (size_t i = 0; i < N_COMMANDS; i++) {
		if (c && &commands[i] != c)
			continue;
		fprintf(out, "%s cutover %s%s%s [global options]\n", i && !c ? "      " : "usage:",
			commands[i].name, *commands[i].synopsis ? " " : "", commands[i].synopsis);
	}
	if (!long_form)
		return;
	if (c)
		fprintf(out, "\n%s.\n", c->summary);
	if (c && (c->opts & (OPT_AT | OPT_UNTIL)))
		fprintf(out, "TIME is RFC 3339 (2026-12-01T02:00:00Z) or an offset (+10m, +2h, +1d).\n");
	fprintf(out, "\nglobal options:\n"
		     "  --admin ADDR        the admin API: unix:/path or host:port (else $CUTOVER_ADMIN,\n"
		     "                      else " CLI_DEFAULT_ADMIN ")\n"
		     "  --token-file FILE   bearer token for a TCP admin address (else $CUTOVER_TOKEN_FILE)\n"
		     "  --json              print the API's answer as is\n"
		     "  --timeout SECONDS   give up after this long (default 60; switch and maintenance\n"
		     "                      wait for the drain)\n"
		     "  -h, --help          this help\n"
		     "exit: 0 done, 1 refused or failed, 2 usage, 3 in force but requests still in flight\n");
}

static const struct cli_option *option_find(const char *arg, size_t len)
{
	for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++) {
		const struct cli_option *o = &options[i];
		if ((strlen(o->name) == len && strncmp(o->name, arg, len) == 0) ||
		    (o->alias && strlen(o->alias) == len && strncmp(o->alias, arg, len) == 0))
			return o;
	}
	return NULL;
}

static const char **option_slot(struct cli_args *a, enum cli_opt bit)
{
	switch (bit) {
	case OPT_PROJECT: return &a->project;
	case OPT_REASON: return &a->reason;
	case OPT_AT: return &a->at;
	case OPT_UNTIL: return &a->until;
	case OPT_MAX: return &a->max;
	case OPT_LINES: return &a->lines;
	case OPT_ADMIN: return &a->admin;
	case OPT_TOKEN_FILE: return &a->token_file;
	case OPT_TIMEOUT: return &a->timeout;
	default: return NULL;
	}
}

/* Reads options anywhere on the line ("--opt VALUE", "--opt=VALUE", "-nN");
 * "--" ends them. */
static int parse_args(const struct cli_command *c, int argc, char **argv, struct cli_args *a,
		      char *err, size_t errlen)
{
	bool only_positional = false;
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (only_positional || arg[0] != '-' || arg[1] == '\0') {
			if (a->n_pos == MAX_POSITIONAL)
				return usage_error(err, errlen, "%s: unexpected argument '%s'", c->name,
						   arg);
			a->pos[a->n_pos++] = arg;
			continue;
		}
		if (strcmp(arg, "--") == 0) {
			only_positional = true;
			continue;
		}
		const char *eq = arg[1] == '-' ? strchr(arg, '=') : NULL;
		size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
		const char *value = eq ? eq + 1 : NULL;
		const struct cli_option *o = option_find(arg, name_len);
		if (!o && arg[1] != '-' && name_len > 2) {
			/* "-n5" */
			o = option_find(arg, 2);
			if (o && o->takes_value) {
				name_len = 2;
				value = arg + 2;
			} else {
				o = NULL;
			}
		}
		if (!o)
			return usage_error(err, errlen, "%s: unknown option '%.*s'", c->name,
					   (int)name_len, arg);
		if (!(o->bit & (c->opts | OPT_GLOBAL)))
			return usage_error(err, errlen, "%s: %s is not an option of %s", c->name,
					   o->name, c->name);
		if (o->bit == OPT_HELP) {
			a->seen |= OPT_HELP;
			return CLI_OK; /* nothing after it matters */
		}
		if (!o->takes_value) {
			if (value)
				return usage_error(err, errlen, "%s: %s takes no value", c->name,
						   o->name);
			a->seen |= o->bit;
			continue;
		}
		if (!value) {
			if (i + 1 >= argc)
				return usage_error(err, errlen, "%s: %.*s needs a value", c->name,
						   (int)name_len, arg);
			value = argv[++i];
		}
		if (*value == '\0')
			return usage_error(err, errlen, "%s: %s needs a value that is not empty",
					   c->name, o->name);
		a->seen |= o->bit;
		*option_slot(a, o->bit) = value;
	}
	return CLI_OK;
}

int cli_build_request(int argc, char **argv, struct cli_request *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (errlen)
		err[0] = '\0';
	const struct cli_command *c = argc > 0 ? command_find(argv[0]) : NULL;
	if (!c)
		return usage_error(err, errlen, "unknown command '%s'", argc > 0 ? argv[0] : "");
	out->command = c->name;
	struct cli_args a = { 0 };
	int rc = parse_args(c, argc, argv, &a, err, errlen);
	if (rc != CLI_OK)
		return rc;
	if (a.seen & OPT_HELP) {
		out->help = true;
		return CLI_OK;
	}
	out->json = a.seen & OPT_JSON;
	out->timeout = CLI_DEFAULT_TIMEOUT;
	if (a.timeout) {
		char *end;
		errno = 0;
		double t = strtod(a.timeout, &end);
		if (end == a.timeout || *end || errno || !isfinite(t) || t <= 0 || t > 86400)
			return usage_error(err, errlen, "%s: --timeout is seconds in (0, 86400], not '%s'",
					   c->name, a.timeout);
		out->timeout = t;
	}
	out->admin = cli_admin_address(a.admin);
	struct addr addr;
	const char *why = NULL;
	if (addr_parse(out->admin, &addr, &why) < 0)
		return usage_error(err, errlen, "%s: admin address '%s'%s: %s", c->name, out->admin,
				   a.admin ? "" : (env_nonempty("CUTOVER_ADMIN") ? " (from CUTOVER_ADMIN)" : ""),
				   why ? why : "invalid");
	out->token_file = a.token_file ? a.token_file : env_nonempty("CUTOVER_TOKEN_FILE");
	return c->build(&a, out, err, errlen);
}

void cli_request_free(struct cli_request *req)
{
	free(req->body);
	req->body = NULL;
}

int cli_main(int argc, char **argv)
{
	struct cli_request req;
	char err[512];
	int rc = cli_build_request(argc, argv, &req, err, sizeof(err));
	if (rc != CLI_OK) {
		fprintf(stderr, "cutover: %s\n", err);
		cli_print_usage(req.command, stderr, false);
		cli_request_free(&req);
		return rc;
	}
	if (req.help) {
		cli_print_usage(req.command, stdout, true);
		cli_request_free(&req);
		return CLI_OK;
	}
	struct addr addr;
	const char *why = NULL;
	addr_parse(req.admin, &addr, &why); /* checked by cli_build_request */
	char *token = NULL;
	if (!addr_is_unix(&addr) && req.token_file) {
		token = admin_token_read(req.token_file, err, sizeof(err));
		if (!token) {
			fprintf(stderr, "cutover: %s\n", err);
			cli_request_free(&req);
			return CLI_FAILED;
		}
	}
	const struct adminclient_request areq = {
		.admin = req.admin,
		.addr = &addr,
		.method = req.method,
		.path = req.path,
		.body = req.body,
		.token = token,
		.timeout = req.timeout,
	};
	struct adminclient_answer ans;
	rc = adminclient_exchange(&areq, &ans, err, sizeof(err));
	free(token);
	if (rc < 0) {
		fprintf(stderr, "cutover: %s\n", err);
		rc = CLI_FAILED;
	} else {
		fflush(stdout);
		rc = cli_render(&req, ans.status, ans.body, stdout, stderr);
	}
	adminclient_answer_free(&ans);
	cli_request_free(&req);
	if (fflush(stdout) != 0 && rc == CLI_OK) {
		fprintf(stderr, "cutover: cannot write the output: %s\n", strerror(errno));
		rc = CLI_FAILED;
	}
	return rc;
}

/* ---- printing answers ---- */

static const char *str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* A number as text ("-" when absent). */
static const char *num(const json_t *o, const char *key, char *buf, size_t len)
{
	const json_t *v = json_object_get(o, key);
	if (json_is_integer(v))
		snprintf(buf, len, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		snprintf(buf, len, "%g", json_real_value(v));
	else
		snprintf(buf, len, "-");
	return buf;
}

/* The first line of TEXT, bounded, for error messages. */
static void first_line(const char *text, char *buf, size_t len)
{
	size_t n = strcspn(text, "\r\n");
	if (n >= len)
		n = len - 1;
	memcpy(buf, text, n);
	buf[n] = '\0';
}

/* Exit 3 and its line if a change answer says the drain timed out. */
static int drain_outcome(const json_t *change, FILE *err)
{
	if (!json_is_false(json_object_get(change, "drained")))
		return CLI_OK;
	char n[32];
	fprintf(err,
		"cutover: now %s for %s, but %s request(s) still in flight to %s after the drain "
		"timeout\n",
		str(change, "to") ?: "?", str(change, "scope") ?: "?",
		num(change, "in_flight", n, sizeof(n)), str(change, "upstream") ?: "?");
	return CLI_NOT_DRAINED;
}

static void print_change_line(const struct cli_request *req, const json_t *c, FILE *out)
{
	const char *scope = str(c, "scope") ?: "global";
	const char *from = str(c, "from") ?: "?";
	const char *to = str(c, "to") ?: "?";
	const char *until = str(c, "until");
	if (!until && req && strcmp(req->command, "maintenance") == 0)
		until = req->until;
	if (strcmp(to, "maintenance") == 0) {
		fprintf(out, "%s: maintenance on%s%s (was %s, drained)\n", scope,
			until ? " until " : "", until ? until : "", from);
	} else if (strcmp(from, "maintenance") == 0) {
		fprintf(out, "%s: maintenance off, now %s (drained)\n", scope, to);
	} else if (strcmp(to, "hold") == 0) {
		fprintf(out, "%s: on hold, new requests are parked%s%s (was %s, drained)\n", scope,
			until ? " until " : "", until ? until : "", from);
	} else if (strcmp(from, "hold") == 0) {
		fprintf(out, "%s: resumed, now %s (drained)\n", scope, to);
	} else {
		const json_t *pf = json_object_get(c, "preflight");
		const char *check = json_is_true(json_object_get(c, "forced"))    ? "forced"
				    : json_is_true(json_object_get(pf, "ok")) ? "preflight ok"
				    : pf                                       ? "preflight skipped"
										: "no preflight";
		fprintf(out, "%s: %s -> %s (%s, drained)\n", scope, from, to, check);
	}
}

static void print_scheduled_line(const char *what, const json_t *s, FILE *out)
{
	char id[32];
	const char *project = str(s, "project");
	fprintf(out, "%s #%s: switch %s at %s%s%s%s\n", what, num(s, "id", id, sizeof(id)),
		str(s, "to") ?: "?", str(s, "at") ?: "?", project ? " for project " : "",
		project ? project : "", json_is_true(json_object_get(s, "force")) ? " (forced)" : "");
}

static int print_change(const struct cli_request *req, int status, const json_t *answer,
			FILE *out, FILE *err)
{
	const json_t *sched = json_object_get(answer, "scheduled");
	if (status == 202 || json_is_object(sched)) {
		print_scheduled_line("scheduled", sched, out);
		return CLI_OK;
	}
	int rc = drain_outcome(answer, err);
	if (rc == CLI_OK)
		print_change_line(req, answer, out);
	return rc;
}

static int print_resume(const struct cli_request *req, int status, const json_t *answer,
			FILE *out, FILE *err)
{
	const json_t *list = json_object_get(answer, "resumed");
	if (!json_is_array(list))
		return print_change(req, status, answer, out, err);
	int rc = CLI_OK;
	size_t i;
	const json_t *c;
	json_array_foreach(list, i, c) {
		if (!json_is_object(c))
			continue;
		if (json_is_false(json_object_get(c, "ok"))) {
			fprintf(err, "cutover: resume refused: %s\n", str(c, "error") ?: "(no reason given)");
			rc = CLI_FAILED;
			continue;
		}
		int one = drain_outcome(c, err);
		if (one == CLI_OK)
			print_change_line(req, c, out);
		else if (rc == CLI_OK)
			rc = one;
	}
	return rc;
}

/* One journal entry on one line: time, who, action, scope: from -> to,
 * reason, forced, outcome. */
static void print_journal_entry(const json_t *e, FILE *out, const char *indent)
{
	const char *action = str(e, "action");
	fprintf(out, "%s%s  %s", indent, str(e, "time") ?: "-", str(e, "who") ?: "-");
	if (action)
		fprintf(out, "  %s", action);
	const char *scope = str(e, "scope");
	const char *from = str(e, "from"), *to = str(e, "to");
	if (scope)
		fprintf(out, "  %s", scope);
	if (from || to)
		fprintf(out, "%s%s -> %s", scope ? ": " : "  ", from ?: "?", to ?: "?");
	const json_t *s = json_object_get(e, "scheduled");
	if (json_is_object(s)) {
		char id[32];
		const char *p = str(s, "project");
		fprintf(out, "  #%s switch %s%s%s at %s", num(s, "id", id, sizeof(id)),
			p ? p : "", p ? " to " : "", str(s, "to") ?: "?", str(s, "at") ?: "?");
		if (!str(e, "reason") && str(s, "reason"))
			fprintf(out, "  \"%s\"", str(s, "reason"));
	}
	const char *up = str(e, "upstream");
	if (up && !from) {
		char n[32];
		fprintf(out, "  %s in flight to %s", num(e, "in_flight", n, sizeof(n)), up);
	}
	if (str(e, "reason"))
		fprintf(out, "  \"%s\"", str(e, "reason"));
	if (json_is_true(json_object_get(e, "forced")))
		fputs("  forced", out);
	const char *outcome = str(e, "outcome");
	if (!outcome && json_is_integer(json_object_get(e, "status"))) {
		char n[32];
		const json_t *ans = json_object_get(e, "answer");
		fprintf(out, "  -> %s %s", num(e, "status", n, sizeof(n)),
			str(ans, "error") ?: (json_is_true(json_object_get(ans, "ok")) ? "ok" : ""));
	} else if (outcome) {
		fprintf(out, "  -> %s", outcome);
	}
	fputc('\n', out);
}

static int print_journal(const struct cli_request *req, int status, const json_t *answer,
			 FILE *out, FILE *err)
{
	(void)req;
	(void)status;
	(void)err;
	const json_t *entries = json_object_get(answer, "entries");
	if (!json_array_size(entries)) {
		fputs("the journal is empty\n", out);
		return CLI_OK;
	}
	size_t i;
	const json_t *e;
	json_array_foreach(entries, i, e)
		print_journal_entry(e, out, "");
	return CLI_OK;
}

static int print_reload(const struct cli_request *req, int status, const json_t *answer,
			FILE *out, FILE *err)
{
	(void)req;
	(void)status;
	(void)err;
	const char *msg = str(answer, "message");
	char gen[32];
	if (msg)
		fprintf(out, "reloaded: %s\n", msg);
	else if (json_object_get(answer, "generation"))
		fprintf(out, "reloaded (config generation %s)\n",
			num(answer, "generation", gen, sizeof(gen)));
	else
		fputs("reloaded\n", out);
	return CLI_OK;
}

static int print_cancel(const struct cli_request *req, int status, const json_t *answer,
			FILE *out, FILE *err)
{
	(void)req;
	(void)status;
	(void)err;
	const json_t *gone = json_object_get(answer, "cancelled");
	if (json_is_object(gone))
		print_scheduled_line("cancelled", gone, out);
	else
		fputs("cancelled\n", out);
	return CLI_OK;
}

/* ---- status table ---- */

#define TABLE_MAX_COLS 8

struct table {
	size_t n_cols, n_rows, cap;
	char **cells;            /* n_rows * n_cols, row-major */
	bool incomplete;         /* a row or cell was lost (out of memory) */
};

static void table_row(struct table *t, const char *const *cells)
{
	if (t->n_rows == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 8;
		char **nc = realloc(t->cells, ncap * t->n_cols * sizeof(*nc));
		if (!nc) {
			t->incomplete = true;
			return;
		}
		t->cells = nc;
		t->cap = ncap;
	}
	for (size_t c = 0; c < t->n_cols; c++) {
		char *cell = strdup(cells[c] ? cells[c] : "");
		t->incomplete |= !cell;      /* printed empty */
		t->cells[t->n_rows * t->n_cols + c] = cell;
	}
	t->n_rows++;
}

/* Left-aligned columns, two spaces apart; the last one is not padded. */
static void table_print(struct table *t, FILE *out, const char *indent)
{
	size_t width[TABLE_MAX_COLS] = { 0 };
	for (size_t r = 0; r < t->n_rows; r++)
		for (size_t c = 0; c < t->n_cols; c++) {
			const char *cell = t->cells[r * t->n_cols + c];
			size_t w = cell ? strlen(cell) : 0;
			if (w > width[c])
				width[c] = w;
		}
	for (size_t r = 0; r < t->n_rows; r++) {
		fputs(indent, out);
		size_t last = t->n_cols;
		while (last > 1 && !*(t->cells[r * t->n_cols + last - 1] ?: ""))
			last--;
		for (size_t c = 0; c < last; c++) {
			const char *cell = t->cells[r * t->n_cols + c] ?: "";
			if (c + 1 < last)
				fprintf(out, "%-*s  ", (int)width[c], cell);
			else
				fputs(cell, out);
		}
		fputc('\n', out);
	}
	if (t->incomplete)
		fprintf(out, "%s(incomplete: out of memory)\n", indent);
	for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->n_rows = t->cap = 0;
}

/* "maintenance until X, then old, reason: R" for a scope object. */
static void scope_details(const json_t *s, char *buf, size_t len)
{
	const char *mode = str(s, "mode") ?: "?";
	int n = snprintf(buf, len, "%s", mode);
	const char *until = str(s, "until");
	if (until && n >= 0 && (size_t)n < len)
		n += snprintf(buf + n, len - (size_t)n, " until %s", until);
	const char *then = str(s, "resume_to");
	if (then && (strcmp(mode, "maintenance") == 0 || strcmp(mode, "hold") == 0) && n >= 0 &&
	    (size_t)n < len)
		n += snprintf(buf + n, len - (size_t)n, ", then %s", then);
	const char *reason = str(s, "reason");
	if (reason && n >= 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, ", reason: %s", reason);
}

static int key_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of object O, sorted; the caller frees the array. */
static const char **sorted_keys(const json_t *o, size_t *n)
{
	*n = json_object_size(o);
	const char **keys = calloc(*n ? *n : 1, sizeof(*keys));
	if (!keys) {
		*n = 0;
		return NULL;
	}
	size_t i = 0;
	const char *k;
	const json_t *v;
	json_object_foreach((json_t *)o, k, v) {
		(void)v;
		keys[i++] = k;
	}
	qsort(keys, *n, sizeof(*keys), key_cmp);
	return keys;
}

static void status_upstreams(const json_t *ups, FILE *out)
{
	fputs("upstreams:\n", out);
	if (!json_object_size(ups)) {
		fputs("  (none)\n", out);
		return;
	}
	struct table t = { .n_cols = 7 };
	const char *head[] = { "NAME", "URL", "IN_FLIGHT", "ACTIVE", "QUEUED", "ADDRESSES",
			       "RESOLVED" };
	table_row(&t, head);
	const char *name;
	const json_t *u;
	json_object_foreach((json_t *)ups, name, u) { /* the server's order: old, new */
		char in_flight[32], active[64], queued[32], max[32], addrs[1024] = "";
		num(u, "in_flight", in_flight, sizeof(in_flight));
		num(u, "active", active, sizeof(active));
		num(u, "max_active", max, sizeof(max));
		if (json_integer_value(json_object_get(u, "max_active")) > 0) {
			size_t l = strlen(active);
			snprintf(active + l, sizeof(active) - l, "/%s", max);
		}
		num(u, "queued", queued, sizeof(queued));
		size_t k;
		const json_t *a;
		json_array_foreach(json_object_get(u, "addresses"), k, a) {
			size_t l = strlen(addrs);
			snprintf(addrs + l, sizeof(addrs) - l, "%s%s", k ? ", " : "",
				 json_string_value(a) ?: "?");
		}
		if (!addrs[0])
			snprintf(addrs, sizeof(addrs), "(not resolved)");
		char resolved[300] = "-";
		const json_t *dns = json_object_get(u, "dns");
		const json_t *age = json_object_get(dns, "age");
		if (json_is_true(json_object_get(dns, "literal")))
			snprintf(resolved, sizeof(resolved), "(IP address)");
		else if (json_is_number(age))
			snprintf(resolved, sizeof(resolved), "%.0fs ago (ttl %.0fs)",
				 json_number_value(age),
				 json_number_value(json_object_get(dns, "ttl")));
		const char *dns_error = str(dns, "error");
		if (dns_error && json_is_number(age)) {
			size_t l = strlen(resolved);
			snprintf(resolved + l, sizeof(resolved) - l, ", now failing: %s", dns_error);
		} else if (dns_error) {
			snprintf(resolved, sizeof(resolved), "failing: %s", dns_error);
		}
		const char *row[] = { name, str(u, "url") ?: "-", in_flight, active, queued, addrs,
				      resolved };
		table_row(&t, row);
	}
	table_print(&t, out, "  ");
}

static void status_projects(const json_t *projects, FILE *out)
{
	fputs("projects:\n", out);
	if (!json_object_size(projects)) {
		fputs("  (none seen yet; every project follows the global mode)\n", out);
		return;
	}
	struct table t = { .n_cols = 6 };
	const char *head[] = { "NAME", "MODE", "SCOPE", "IN_FLIGHT old/new", "UNSENT", "NOTE" };
	table_row(&t, head);
	size_t n;
	const char **keys = sorted_keys(projects, &n);
	t.incomplete |= !keys;
	for (size_t i = 0; i < n; i++) {
		const json_t *p = json_object_get(projects, keys[i]);
		const json_t *fl = json_object_get(p, "in_flight");
		char o[32], nw[32], flight[80], unsent[32], note[512] = "";
		snprintf(flight, sizeof(flight), "%s/%s", num(fl, "old", o, sizeof(o)),
			 num(fl, "new", nw, sizeof(nw)));
		num(p, "unsent_forms", unsent, sizeof(unsent));
		const char *until = str(p, "until"), *reason = str(p, "reason");
		snprintf(note, sizeof(note), "%s%s%s%s%s", until ? "until " : "", until ? until : "",
			 until && reason ? ", " : "", reason ? "reason: " : "", reason ? reason : "");
		const char *row[] = { keys[i], str(p, "mode") ?: "?",
				      json_is_true(json_object_get(p, "own_mode")) ? "own" : "following",
				      flight, unsent, note };
		table_row(&t, row);
	}
	free(keys);
	table_print(&t, out, "  ");
}

static void status_scheduled(const json_t *list, FILE *out)
{
	if (!json_array_size(list)) {
		fputs("scheduled: none\n", out);
		return;
	}
	fputs("scheduled:\n", out);
	struct table t = { .n_cols = 6 };
	const char *head[] = { "ID", "AT", "SCOPE", "TO", "BY", "REASON" };
	table_row(&t, head);
	size_t i;
	const json_t *s;
	json_array_foreach(list, i, s) {
		char id[80], to[64];
		snprintf(id, sizeof(id), "#%s", num(s, "id", to, sizeof(to)));
		snprintf(to, sizeof(to), "%s%s", str(s, "to") ?: "?",
			 json_is_true(json_object_get(s, "force")) ? " (forced)" : "");
		const char *row[] = { id, str(s, "at") ?: "?", str(s, "project") ?: "global", to,
				      str(s, "who") ?: "", str(s, "reason") ?: "" };
		table_row(&t, row);
	}
	table_print(&t, out, "  ");
}

static int print_status(const struct cli_request *req, int status, const json_t *st, FILE *out,
			FILE *err)
{
	(void)req;
	(void)status;
	(void)err;
	char buf[1024], a[32], b[32], c[32], d[32];
	fprintf(out, "cutover %s, state generation %s\n", str(st, "version") ?: "?",
		num(st, "generation", a, sizeof(a)));
	scope_details(st, buf, sizeof(buf));
	fprintf(out, "global mode: %s\n", buf);
	status_upstreams(json_object_get(st, "upstreams"), out);
	status_projects(json_object_get(st, "projects"), out);
	const json_t *sp = json_object_get(st, "spool");
	if (sp)
		fprintf(out, "spool: %s records, %s bytes, %s dead letters, oldest %s s\n",
			num(sp, "records", a, sizeof(a)), num(sp, "bytes", b, sizeof(b)),
			num(sp, "dead_letters", c, sizeof(c)), num(sp, "oldest_age", d, sizeof(d)));
	const json_t *hold = json_object_get(st, "hold");
	if (hold)
		fprintf(out, "hold: %s request(s) parked\n", num(hold, "parked", a, sizeof(a)));
	status_scheduled(json_object_get(st, "scheduled"), out);
	const json_t *journal = json_object_get(st, "journal");
	if (json_array_size(journal)) {
		fputs("last journal entries:\n", out);
		size_t i;
		const json_t *e;
		json_array_foreach(journal, i, e)
			print_journal_entry(e, out, "  ");
	} else {
		fputs("last journal entries: none\n", out);
	}
	return CLI_OK;
}

/* ---- the answer as a whole ---- */

int cli_render(const struct cli_request *req, int status, const char *answer_text, FILE *out,
	       FILE *err)
{
	const struct cli_command *c = command_find(req->command);
	json_error_t jerr;
	json_t *answer = answer_text && *answer_text
				 ? json_loads(answer_text, JSON_DECODE_ANY, &jerr)
				 : NULL;
	if (req->json) {
		if (answer) {
			json_dumpf(answer, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
			fputc('\n', out);
		} else if (answer_text) {
			fputs(answer_text, out);
		}
	}
	int rc;
	const char *error = str(answer, "error");
	size_t i;
	const json_t *one;
	json_array_foreach(json_object_get(answer, "resumed"), i, one)
		if (!error && json_is_false(json_object_get(one, "ok")))
			error = str(one, "error");
	char line[300];
	if (!error && answer_text && *answer_text && !json_is_object(answer)) {
		first_line(answer_text, line, sizeof(line));
		error = line;
	}
	if (status < 200 || status > 299) {
		if (status == 400 || status == 409 || status == 422)
			fprintf(err, "cutover: %s refused: %s\n", req->command,
				error ? error : "(no reason given)");
		else
			fprintf(err, "cutover: admin API answered %d: %s%s\n", status,
				error ? error : "(no reason given)",
				status == 401 && !req->token_file
					? " (no token sent: give --token-file or set CUTOVER_TOKEN_FILE)"
					: "");
		rc = CLI_FAILED;
	} else if (!json_is_object(answer)) {
		fprintf(err, "cutover: bad answer from the admin API at %s: %s\n", req->admin,
			answer ? "not a JSON object" : "not JSON");
		rc = CLI_FAILED;
	} else if (req->json) {
		/* The raw answer is the output; the exit code still says how the drain went. */
		rc = drain_outcome(answer, err);
		json_array_foreach(json_object_get(answer, "resumed"), i, one)
			if (json_is_object(one) && drain_outcome(one, err) != CLI_OK)
				rc = CLI_NOT_DRAINED;
	} else {
		rc = c->print(req, status, answer, out, err);
	}
	json_decref(answer);
	return rc;
}
