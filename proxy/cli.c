/* cli: `cutover status|switch|maintenance|hold|resume|journal|reload|
 * schedule` as a client of the admin API. A table maps each command to the
 * options it takes, how it builds its request and which render printer
 * shows the answer; the exchange itself is adminclient's. The exit codes
 * are decided here, from what the command line and the answer say. */
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
#include "cli_spool.h"
#include "render.h"

/* ---- command line ---- */

enum cli_opt {
	OPT_PROJECT = 1u << 0,
	OPT_REASON = 1u << 1,
	OPT_FORCE = 1u << 2,
	OPT_AT = 1u << 3,
	OPT_UNTIL = 1u << 4,
	OPT_MAX = 1u << 5,
	OPT_LINES = 1u << 6,
	OPT_BODY = 1u << 7,
	/* global: every command takes them */
	OPT_ADMIN = 1u << 8,
	OPT_TOKEN_FILE = 1u << 9,
	OPT_JSON = 1u << 10,
	OPT_TIMEOUT = 1u << 11,
	OPT_HELP = 1u << 12,
	OPT_CREDENTIALS = 1u << 13,
	OPT_ALL = 1u << 14,
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
	{ "--body", NULL, OPT_BODY, true },
	{ "--with-credentials", NULL, OPT_CREDENTIALS, false },
	{ "--all", NULL, OPT_ALL, false },
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
	const char *project, *reason, *at, *until, *max, *lines, *body;
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
	render_printer *print;   /* how a 2xx answer is printed */
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
	req->body = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(15));
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

/* A record id as the operator typed it: 0 (with ERR) if it is not one. */
static unsigned long long spool_id(const char *action, const char *id, char *err, size_t errlen)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(id, &end, 10);
	if (end == id || *end || errno || v == 0 || !isdigit((unsigned char)id[0])) {
		usage_error(err, errlen, "spool %s: the ID is a number, not '%s'", action, id);
		return 0;
	}
	return v;
}

/* Options that only some spool actions take: ACTION takes those in ALLOWED. */
static int spool_options(const struct cli_args *a, const char *action, unsigned allowed,
			 char *err, size_t errlen)
{
	static const struct { unsigned bit; const char *name; } only[] = {
		{ OPT_PROJECT, "--project" }, { OPT_BODY, "--body" },
		{ OPT_CREDENTIALS, "--with-credentials" }, { OPT_ALL, "--all" },
	};
	for (size_t i = 0; i < sizeof(only) / sizeof(only[0]); i++)
		if ((a->seen & only[i].bit) && !(allowed & only[i].bit))
			return usage_error(err, errlen, "spool %s: %s does not go with it%s", action,
					   only[i].name, only[i].bit == OPT_PROJECT &&
					   !strcmp(action, "retry") ? " (only with --all)" : "");
	if (a->project && (strlen(a->project) > 255 || strpbrk(a->project, "&?# /%")))
		return usage_error(err, errlen, "spool %s: '%s' is not a project name", action,
				   a->project);
	return CLI_OK;
}

/* spool ls [--project P] | show ID [--body FILE] [--with-credentials] |
 * retry ID | retry --all [--project P] | export DIR [--project P]
 * [--with-credentials]. show and export are run by cli_spool. */
static int build_spool(const struct cli_args *a, struct cli_request *req, char *err,
		       size_t errlen)
{
	static const char *const actions[] = { "ls", "show", "retry", "export" };
	size_t k = 0;
	while (a->n_pos && k < 4 && strcmp(a->pos[0], actions[k]) != 0)
		k++;
	if (a->n_pos == 0 || k == 4)
		return usage_error(err, errlen, "spool: the actions are ls, show, retry and export%s%s%s",
				   a->n_pos ? ", not '" : "", a->n_pos ? a->pos[0] : "",
				   a->n_pos ? "'" : "");
	const char *action = actions[k];
	bool all = a->seen & OPT_ALL;
	unsigned allowed = k == 0 ? OPT_PROJECT : k == 1 ? OPT_BODY | OPT_CREDENTIALS
			   : k == 2 ? OPT_ALL | (all ? OPT_PROJECT : 0) : OPT_PROJECT | OPT_CREDENTIALS;
	int rc = spool_options(a, action, allowed, err, errlen);
	if (rc != CLI_OK)
		return rc;
	int want = k == 0 || (k == 2 && all) ? 1 : 2;
	if (a->n_pos < want)
		return usage_error(err, errlen, "spool %s: %s", action,
				   k == 3 ? "into which DIR?" : "which ID? (see cutover spool ls)");
	if ((rc = no_positional(a, req, want, err, errlen)) != CLI_OK)
		return rc;
	req->project = a->project;
	req->credentials = a->seen & OPT_CREDENTIALS;
	switch (k) {
	case 0:
		req->method = "GET";
		snprintf(req->path, sizeof(req->path), "/spool%s%s", a->project ? "?project=" : "",
			 a->project ? a->project : "");
		return CLI_OK;
	case 1:
		if (!(req->spool_id = spool_id(action, a->pos[1], err, errlen)))
			return CLI_USAGE;
		req->spool_action = CLI_SPOOL_SHOW;
		req->body_file = a->body;
		return CLI_OK;
	case 3:
		req->spool_action = CLI_SPOOL_EXPORT;
		req->spool_dir = a->pos[1];
		return CLI_OK;
	}
	req->method = "POST";
	if (all) {
		snprintf(req->path, sizeof(req->path), "/spool/retry");
		return set_body(req, json_pack("{s:s*}", "project", a->project), err, errlen);
	}
	unsigned long long v = spool_id(action, a->pos[1], err, errlen);
	if (!v)
		return CLI_USAGE;
	snprintf(req->path, sizeof(req->path), "/spool/%llu/retry", v);
	return set_body(req, json_object(), err, errlen);
}

static const struct cli_command commands[] = {
	{ "status", "", "Modes, upstreams, in-flight requests, spool, schedule, last journal entries",
	  0, build_status, render_status },
	{ "switch", "old|new [--project P] [--reason TEXT] [--force] [--at TIME]",
	  "Send a scope's traffic to old or new (preflight first unless --force; --at schedules it)",
	  OPT_PROJECT | OPT_REASON | OPT_FORCE | OPT_AT, build_switch, render_change },
	{ "maintenance", "[on|off] [--project P] [--until TIME] [--reason TEXT]",
	  "Enter maintenance (default 'on') or leave it for the mode before it",
	  OPT_PROJECT | OPT_UNTIL | OPT_REASON, build_maintenance, render_change },
	{ "hold", "[--project P] [--max SECONDS]",
	  "Park new requests for up to --max seconds (default 30) during a short flip",
	  OPT_PROJECT | OPT_MAX, build_hold, render_change },
	{ "resume", "[--project P]", "Release parked requests (every scope on hold by default)",
	  OPT_PROJECT, build_resume, render_resume },
	{ "journal", "[-n N]", "The last N operator actions (default 20)", OPT_LINES, build_journal,
	  render_journal },
	{ "reload", "", "Re-read the config and certificates without dropping connections", 0,
	  build_reload, render_reload },
	{ "schedule", "cancel ID", "Cancel scheduled switch ID (ids are in cutover status)", 0,
	  build_schedule, render_cancel },
	{ "spool", "ls [--project P] | show ID [--body FILE] [--with-credentials] | "
	  "retry ID | retry --all [--project P] | export DIR [--project P] [--with-credentials]",
	  "The spool per project and its dead letters; one record (its body into FILE); send "
	  "dead letters again; every record as files to replay with curl (${CUTOVER_TARGET})",
	  OPT_PROJECT | OPT_BODY | OPT_CREDENTIALS | OPT_ALL, build_spool, render_spool },
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
	case OPT_BODY: return &a->body;
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


/* ---- the answer ---- */

/* The exit code of an answer's outcome. */
static int exit_code(enum render_outcome outcome)
{
	switch (outcome) {
	case RENDER_DONE: return CLI_OK;
	case RENDER_NOT_DRAINED: return CLI_NOT_DRAINED;
	case RENDER_FAILED: break;
	}
	return CLI_FAILED;
}

int cli_render(const struct cli_request *req, int status, const char *answer_text, FILE *out,
	       FILE *err)
{
	const struct cli_command *c = command_find(req->command);
	const struct render_request rq = {
		.command = req->command,
		.admin = req->admin,
		.json = req->json,
		.token_file = req->token_file != NULL,
		.until = req->until,
		.print = c ? c->print : NULL,
	};
	return exit_code(render_answer(&rq, status, answer_text, out, err));
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
	if (req.spool_action) {
		const struct cli_spool_conn sc = {
			.admin = req.admin, .addr = &addr, .token = token,
			.token_file = req.token_file != NULL, .timeout = req.timeout, .json = req.json,
		};
		fflush(stdout);
		enum render_outcome out =
			req.spool_action == CLI_SPOOL_SHOW
				? cli_spool_show(&sc, req.spool_id, req.credentials, req.body_file,
						 stdout, stderr)
				: cli_spool_export(&sc, req.spool_dir, req.project, req.credentials,
						   stdout, stderr);
		free(token);
		cli_request_free(&req);
		rc = exit_code(out);
		if (fflush(stdout) != 0 && rc == CLI_OK) {
			fprintf(stderr, "cutover: cannot write the output: %s\n", strerror(errno));
			rc = CLI_FAILED;
		}
		return rc;
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
