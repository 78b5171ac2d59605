/* render: each answer kind has its printer (a status table, one line per
 * change or journal entry); render_answer handles what all share: --json,
 * a refusal or error status as one line on stderr, a drain that timed out.
 * A field missing from an answer prints as "?" or "-": the change has
 * happened, the output should still say so. */
#include "render.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- changes, journal, reload, cancel ---- */

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
/* ---- control characters ---- */

/* TEXT[LEN] for a terminal: C0 controls and DEL as \xNN, C1 (U+0080 to
 * U+009F, which some terminals obey too) as \u00NN, and the backslash
 * doubled so that an escape cannot be faked; LF and TAB kept if
 * KEEP_LINES. A malloc'd string, NULL when out of memory. */
static char *escape_controls(const char *text, size_t len, bool keep_lines)
{
	char *out = malloc(len * 6 + 1), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		if (c == '\\') {
			*o++ = '\\';
			*o++ = '\\';
		} else if ((c < 0x20 || c == 0x7f) && !(keep_lines && (c == '\n' || c == '\t'))) {
			o += sprintf(o, "\\x%02x", c);
		} else if (c == 0xc2 && i + 1 < len && (unsigned char)text[i + 1] >= 0x80 &&
			   (unsigned char)text[i + 1] <= 0x9f) {
			o += sprintf(o, "\\u%04x", (unsigned char)text[++i]);
		} else {
			*o++ = (char)c;
		}
	}
	*o = '\0';
	return out;
}

/* A copy of V whose strings and keys show their control characters
 * escaped: every printer then prints only what is safe. NULL: no memory. */
static json_t *escaped_tree(const json_t *v)
{
	if (json_is_string(v)) {
		char *e = escape_controls(json_string_value(v), json_string_length(v), false);
		json_t *r = e ? json_string(e) : NULL;
		free(e);
		return r;
	}
	if (json_is_array(v)) {
		json_t *r = json_array();
		size_t i;
		const json_t *x;
		json_array_foreach(v, i, x)
			if (!r || json_array_append_new(r, escaped_tree(x)) < 0) {
				json_decref(r);
				return NULL;
			}
		return r;
	}
	if (json_is_object(v)) {
		json_t *r = json_object();
		const char *k;
		json_t *x;
		json_object_foreach((json_t *)v, k, x) {
			char *ek = escape_controls(k, strlen(k), false);
			if (!r || !ek || json_object_set_new(r, ek, escaped_tree(x)) < 0) {
				free(ek);
				json_decref(r);
				return NULL;
			}
			free(ek);
		}
		return r;
	}
	return json_deep_copy(v);
}

static void first_line(const char *text, char *buf, size_t len)
{
	size_t n = strcspn(text, "\r\n");
	char *e = escape_controls(text, n, false);
	snprintf(buf, len, "%s", e ? e : "(out of memory)");
	free(e);
}

/* RENDER_NOT_DRAINED and its line if a change answer says the drain timed
 * out. */
static enum render_outcome drain_outcome(const json_t *change, FILE *err)
{
	if (!json_is_false(json_object_get(change, "drained")))
		return RENDER_DONE;
	char n[32], u[32] = "";
	const json_t *untracked = json_object_get(change, "untracked");
	if (json_is_integer(untracked) && json_integer_value(untracked) > 0)
		num(change, "untracked", u, sizeof(u));
	fprintf(err,
		"cutover: now %s for %s, but %s request(s) still in flight to %s after the drain "
		"timeout%s%s%s\n",
		str(change, "to") ?: "?", str(change, "scope") ?: "?",
		num(change, "in_flight", n, sizeof(n)), str(change, "upstream") ?: "?",
		*u ? " (" : "", u, *u ? " of them untracked: the project registry was full)" : "");
	return RENDER_NOT_DRAINED;
}

static void print_change_line(const struct render_request *rq, const json_t *c, FILE *out)
{
	const char *scope = str(c, "scope") ?: "global";
	const char *from = str(c, "from") ?: "?";
	const char *to = str(c, "to") ?: "?";
	const char *until = str(c, "until");
	if (!until)
		until = rq->until;
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

enum render_outcome render_change(const struct render_request *rq, int status,
				  const json_t *answer, FILE *out, FILE *err)
{
	const json_t *sched = json_object_get(answer, "scheduled");
	if (status == 202 || json_is_object(sched)) {
		print_scheduled_line("scheduled", sched, out);
		return RENDER_DONE;
	}
	enum render_outcome rc = drain_outcome(answer, err);
	if (rc == RENDER_DONE)
		print_change_line(rq, answer, out);
	return rc;
}

enum render_outcome render_resume(const struct render_request *rq, int status,
				  const json_t *answer, FILE *out, FILE *err)
{
	const json_t *list = json_object_get(answer, "resumed");
	if (!json_is_array(list))
		return render_change(rq, status, answer, out, err);
	enum render_outcome rc = RENDER_DONE;
	size_t i;
	const json_t *c;
	json_array_foreach(list, i, c) {
		if (!json_is_object(c))
			continue;
		if (json_is_false(json_object_get(c, "ok"))) {
			fprintf(err, "cutover: resume refused: %s\n", str(c, "error") ?: "(no reason given)");
			rc = RENDER_FAILED;
			continue;
		}
		enum render_outcome one = drain_outcome(c, err);
		if (one == RENDER_DONE)
			print_change_line(rq, c, out);
		else if (rc == RENDER_DONE)
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
	char n[32];
	if (json_is_integer(json_object_get(e, "count")))
		fprintf(out, "  %s record(s)", num(e, "count", n, sizeof(n)));
	else if (action && !strncmp(action, "spool-", 6) && json_is_integer(json_object_get(e, "id")))
		fprintf(out, "  record %s", num(e, "id", n, sizeof(n)));
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

enum render_outcome render_journal(const struct render_request *rq, int status,
				   const json_t *answer, FILE *out, FILE *err)
{
	(void)rq;
	(void)status;
	(void)err;
	const json_t *entries = json_object_get(answer, "entries");
	if (!json_array_size(entries)) {
		fputs("the journal is empty\n", out);
		return RENDER_DONE;
	}
	size_t i;
	const json_t *e;
	json_array_foreach(entries, i, e)
		print_journal_entry(e, out, "");
	return RENDER_DONE;
}

enum render_outcome render_reload(const struct render_request *rq, int status,
				  const json_t *answer, FILE *out, FILE *err)
{
	(void)rq;
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
	return RENDER_DONE;
}

enum render_outcome render_cancel(const struct render_request *rq, int status,
				  const json_t *answer, FILE *out, FILE *err)
{
	(void)rq;
	(void)status;
	(void)err;
	const json_t *gone = json_object_get(answer, "cancelled");
	if (json_is_object(gone))
		print_scheduled_line("cancelled", gone, out);
	else
		fputs("cancelled\n", out);
	return RENDER_DONE;
}

enum render_outcome render_spool(const struct render_request *rq, int status,
				 const json_t *answer, FILE *out, FILE *err)
{
	(void)rq;
	(void)status;
	(void)err;
	char n[32];
	if (json_object_get(answer, "retried")) {
		fprintf(out, "%s dead letter(s)%s%s pending again\n",
			num(answer, "retried", n, sizeof(n)), str(answer, "project") ? " of " : "",
			str(answer, "project") ? str(answer, "project") : "");
		return RENDER_DONE;
	}
	if (json_object_get(answer, "id")) {
		fprintf(out, "record %s of %s is pending again\n", num(answer, "id", n, sizeof(n)),
			str(answer, "project") ? str(answer, "project") : "?");
		return RENDER_DONE;
	}
	const json_t *projects = json_object_get(answer, "projects");
	if (!json_object_size(projects)) {
		fputs("the spool is empty\n", out);
		return RENDER_DONE;
	}
	const char *name;
	const json_t *p;
	json_object_foreach((json_t *)projects, name, p) {
		char r[32], b[32], a[32];
		fprintf(out, "%s: %s records (%s pending), %s bytes, oldest %s s\n",
			strcmp(name, "-") ? name : "(global)", num(p, "records", r, sizeof(r)),
			num(p, "pending", n, sizeof(n)), num(p, "bytes", b, sizeof(b)),
			num(p, "oldest_age", a, sizeof(a)));
		size_t i;
		const json_t *d;
		json_array_foreach(json_object_get(p, "dead_letters"), i, d) {
			char id[32], st[32], at[32];
			fprintf(out, "  dead letter %s: status %s after %s attempt(s): %.80s\n",
				num(d, "id", id, sizeof(id)), num(d, "status", st, sizeof(st)),
				num(d, "attempts", at, sizeof(at)),
				str(d, "answer") ? str(d, "answer") : "");
		}
	}
	return RENDER_DONE;
}

enum render_outcome render_spool_record(const struct render_request *rq, int status,
					const json_t *answer, FILE *out, FILE *err)
{
	(void)rq;
	(void)status;
	(void)err;
	char id[32], len[32];
	const char *project = str(answer, "project");
	fprintf(out, "record %s of %s (route %s): %s\n", num(answer, "id", id, sizeof(id)),
		!project ? "?" : strcmp(project, "-") ? project : "(global)",
		str(answer, "route") ? str(answer, "route") : "?",
		str(answer, "state") ? str(answer, "state") : "?");
	fprintf(out, "accepted %s, body %s bytes\n",
		str(answer, "accepted") ? str(answer, "accepted") : "?",
		num(answer, "body_bytes", len, sizeof(len)));
	const json_t *d = json_object_get(answer, "dead_letter");
	if (json_is_object(d)) {
		char st[32], at[32];
		fprintf(out, "dead letter: status %s after %s attempt(s), %s: %.200s\n",
			num(d, "status", st, sizeof(st)), num(d, "attempts", at, sizeof(at)),
			str(d, "time") ? str(d, "time") : "?", str(d, "answer") ? str(d, "answer") : "");
	}
	fputc('\n', out);
	size_t i;
	const json_t *line;
	json_array_foreach(json_object_get(answer, "head"), i, line)
		fprintf(out, "%s\n", json_string_value(line) ? json_string_value(line) : "");
	return RENDER_DONE;
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

/* "up 3 ms", "down: connect: Connection refused" or "not checked yet". */
static void health_text(const json_t *h, char *buf, size_t len)
{
	const json_t *up = json_object_get(h, "up");
	if (json_is_true(up))
		snprintf(buf, len, "up %.0f ms", json_number_value(json_object_get(h, "latency_ms")));
	else if (json_is_false(up))
		snprintf(buf, len, "down: %s", str(h, "error") ?: "?");
	else
		snprintf(buf, len, "not checked yet");
}

static void status_upstreams(const json_t *ups, FILE *out)
{
	fputs("upstreams:\n", out);
	if (!json_object_size(ups)) {
		fputs("  (none)\n", out);
		return;
	}
	struct table t = { .n_cols = 8 };
	const char *head[] = { "NAME", "URL", "HEALTH", "IN_FLIGHT", "ACTIVE", "QUEUED",
			       "ADDRESSES", "RESOLVED" };
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
		const char *host = str(dns, "host");
		if (json_is_true(json_object_get(dns, "literal")))
			/* localhost is answered without a lookup too (RFC 6761) */
			snprintf(resolved, sizeof(resolved), "%s",
				 host && strcasestr(host, "localhost") ? "(localhost: loopback)"
								       : "(IP address)");
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
		char health[300];
		health_text(json_object_get(u, "health"), health, sizeof(health));
		const char *row[] = { name, str(u, "url") ?: "-", health, in_flight, active, queued,
				      addrs, resolved };
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
	struct table t = { .n_cols = 7 };
	const char *head[] = { "NAME", "MODE", "SCOPE", "IN_FLIGHT old/new", "UNSENT",
			       "SPOOL records/bytes/dead", "NOTE" };
	table_row(&t, head);
	size_t n;
	const char **keys = sorted_keys(projects, &n);
	t.incomplete |= !keys;
	for (size_t i = 0; i < n; i++) {
		const json_t *p = json_object_get(projects, keys[i]);
		const json_t *fl = json_object_get(p, "in_flight");
		char o[32], nw[32], flight[80], unsent[32], note[512] = "";
		char sr[32], sb[32], sd[32], spool[112] = "-";
		const json_t *sp = json_object_get(p, "spool");
		if (sp)
			snprintf(spool, sizeof(spool), "%s/%s/%s", num(sp, "records", sr, sizeof(sr)),
				 num(sp, "bytes", sb, sizeof(sb)), num(sp, "dead_letters", sd, sizeof(sd)));
		snprintf(flight, sizeof(flight), "%s/%s", num(fl, "old", o, sizeof(o)),
			 num(fl, "new", nw, sizeof(nw)));
		num(p, "unsent_forms", unsent, sizeof(unsent));
		const char *until = str(p, "until"), *reason = str(p, "reason");
		snprintf(note, sizeof(note), "%s%s%s%s%s", until ? "until " : "", until ? until : "",
			 until && reason ? ", " : "", reason ? "reason: " : "", reason ? reason : "");
		const char *row[] = { keys[i], str(p, "mode") ?: "?",
				      json_is_true(json_object_get(p, "own_mode")) ? "own" : "following",
				      flight, unsent, spool, note };
		table_row(&t, row);
	}
	free(keys);
	table_print(&t, out, "  ");
}

/* What the project registry could not hold: evicted names, requests counted
 * without a project of their own (and a drain waits for those). */
static void status_registry(const json_t *reg, FILE *out)
{
	if (!json_is_object(reg))
		return;
	const json_t *fl = json_object_get(reg, "untracked_in_flight");
	char t[32], l[32], e[32], u[32], o[32], n[32];
	fprintf(out, "registry: %s projects tracked (limit %s seen only in traffic), %s evicted, "
		"%s request(s) untracked, in flight untracked old/new: %s/%s\n",
		num(reg, "tracked", t, sizeof(t)), num(reg, "limit", l, sizeof(l)),
		num(reg, "evicted", e, sizeof(e)), num(reg, "untracked_requests", u, sizeof(u)),
		num(fl, "old", o, sizeof(o)), num(fl, "new", n, sizeof(n)));
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

enum render_outcome render_status(const struct render_request *rq, int status,
				  const json_t *st, FILE *out, FILE *err)
{
	(void)rq;
	(void)status;
	(void)err;
	char buf[1024], a[32], b[32], c[32], d[32];
	fprintf(out, "cutover %s, state generation %s\n", str(st, "version") ?: "?",
		num(st, "generation", a, sizeof(a)));
	scope_details(st, buf, sizeof(buf));
	fprintf(out, "global mode: %s\n", buf);
	status_upstreams(json_object_get(st, "upstreams"), out);
	status_projects(json_object_get(st, "projects"), out);
	status_registry(json_object_get(st, "registry"), out);
	const json_t *sp = json_object_get(st, "spool");
	if (sp)
		fprintf(out, "spool: %s records, %s bytes, %s dead letters, oldest %s s\n",
			num(sp, "records", a, sizeof(a)), num(sp, "bytes", b, sizeof(b)),
			num(sp, "dead_letters", c, sizeof(c)), num(sp, "oldest_age", d, sizeof(d)));
	const json_t *q = json_object_get(sp, "quarantined");
	if (json_integer_value(json_object_get(q, "files")) > 0)
		fprintf(out, "spool quarantine: %s file(s), %s bytes of damaged records found at start "
			"(see the log; remove them once looked at)\n",
			num(q, "files", a, sizeof(a)), num(q, "bytes", b, sizeof(b)));
	const json_t *fl = json_object_get(st, "fleet");
	if (fl)
		fprintf(out, "fleet: %s unsent form(s) on %s device(s) by their last heartbeat\n",
			num(fl, "unsent_forms", a, sizeof(a)), num(fl, "devices", b, sizeof(b)));
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
	return RENDER_DONE;
}

/* ---- the answer as a whole ---- */

enum render_outcome render_answer(const struct render_request *rq, int status,
				  const char *answer_text, FILE *out, FILE *err)
{
	json_error_t jerr;
	json_t *answer = answer_text && *answer_text
				 ? json_loads(answer_text, JSON_DECODE_ANY, &jerr)
				 : NULL;
	if (rq->json) {
		if (answer) {
			/* ASCII only: no raw DEL or C1 on the terminal; 15 digits: 0.1, not
			 * 0.10000000000000001. */
			json_dumpf(answer, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY |
				   JSON_ENSURE_ASCII | JSON_REAL_PRECISION(15));
			fputc('\n', out);
		} else if (answer_text) {
			char *e = escape_controls(answer_text, strlen(answer_text), true);
			fputs(e ? e : "(out of memory)", out);
			free(e);
		}
	} else if (answer) {
		json_t *safe = escaped_tree(answer);
		json_decref(answer);
		answer = safe;
		if (!answer) {
			fprintf(err, "cutover: out of memory\n");
			return RENDER_FAILED;
		}
	}
	enum render_outcome rc;
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
			fprintf(err, "cutover: %s refused: %s\n", rq->command,
				error ? error : "(no reason given)");
		else
			fprintf(err, "cutover: admin API answered %d: %s%s\n", status,
				error ? error : "(no reason given)",
				status == 401 && !rq->token_file
					? " (no token sent: give --token-file or set CUTOVER_TOKEN_FILE)"
					: "");
		rc = RENDER_FAILED;
	} else if (!json_is_object(answer)) {
		fprintf(err, "cutover: bad answer from the admin API at %s: %s\n", rq->admin,
			answer ? "not a JSON object" : "not JSON");
		rc = RENDER_FAILED;
	} else if (rq->json) {
		/* The raw answer is the output; the exit code still says how the drain went. */
		rc = drain_outcome(answer, err);
		json_array_foreach(json_object_get(answer, "resumed"), i, one)
			if (json_is_object(one) && drain_outcome(one, err) != RENDER_DONE)
				rc = RENDER_NOT_DRAINED;
	} else {
		rc = rq->print ? rq->print(rq, status, answer, out, err) : RENDER_DONE;
	}
	json_decref(answer);
	return rc;
}
