/* admin_spool: what the operator sees of the spool and can do to it,
 * through the store's index and readers; admin.c writes the answers. */
#include "admin_spool.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "control.h"
#include "log.h"
#include "project.h"
#include "replay.h"
#include "spool_head.h"
#include "spool_store.h"

#define SPOOL_LIST_MAX 1000       /* dead letters listed per project */
#define RECORDS_DEFAULT 100       /* GET /spool/records: a page */
#define RECORDS_MAX 1000
#define RETRY_BATCH 1000          /* dead letters taken per index call */
#define PUMP_CHUNK 65536          /* bytes read from a segment at once */
#define QUERY_KEYS_MAX 4

static void answer(struct admin_spool_answer *a, int status, json_t *json)
{
	a->status = status;
	a->json = json;
}

static void fail(struct admin_spool_answer *a, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fail(struct admin_spool_answer *a, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	answer(a, status, json_pack("{s:b, s:s}", "ok", 0, "error", msg));
}

static struct spool_store *spool_of(struct control *ctl, struct admin_spool_answer *a)
{
	struct spool_store *s = control_spool(ctl);
	if (!s)
		fail(a, 409, "no spool: spool.dir is not configured");
	return s;
}

/* ---- queries: key=value pairs, strict ---- */

struct query {
	const char *keys[QUERY_KEYS_MAX + 1];  /* allowed, NULL-terminated */
	char *vals[QUERY_KEYS_MAX];            /* given (malloc'd), NULL if not */
};

static void query_free(struct query *q)
{
	for (size_t i = 0; i < QUERY_KEYS_MAX; i++)
		free(q->vals[i]);
}

/* Fills Q->vals from TEXT: 0, or -1 with a 400 in A naming the key that is
 * unknown, given twice or empty. Values are taken as written (no
 * percent-decoding: no value the endpoints take needs it). */
static int query_parse(const char *text, struct query *q, struct admin_spool_answer *a)
{
	for (const char *p = text; p && *p;) {
		size_t len = strcspn(p, "&");
		const char *eq = memchr(p, '=', len);
		size_t klen = eq ? (size_t)(eq - p) : len;
		size_t i = 0;
		while (q->keys[i] && (strlen(q->keys[i]) != klen || memcmp(q->keys[i], p, klen)))
			i++;
		if (!q->keys[i]) {
			char known[128] = "";
			for (size_t k = 0; q->keys[k]; k++)
				snprintf(known + strlen(known), sizeof(known) - strlen(known), "%s%s",
					 k ? ", " : "", q->keys[k]);
			fail(a, 400, "bad request: unknown query key \"%.*s\" (%s%s)",
			      (int)(klen > 64 ? 64 : klen), p, *known ? "takes: " : "takes none",
			      known);
			return -1;
		}
		if (q->vals[i]) {
			fail(a, 400, "bad request: query key \"%s\" given twice", q->keys[i]);
			return -1;
		}
		if (!eq || eq + 1 == p + len) {
			fail(a, 400, "bad request: query key \"%s\" needs a value", q->keys[i]);
			return -1;
		}
		q->vals[i] = strndup(eq + 1, len - klen - 1);
		if (!q->vals[i]) {
			fail(a, 500, "out of memory");
			return -1;
		}
		p += len + (p[len] == '&');
	}
	return 0;
}

/* VAL as a decimal in [MIN, MAX] into *OUT: 0, or -1 with a 400 naming KEY. */
static int query_number(const char *key, const char *val, uint64_t min, uint64_t max,
			uint64_t *out, struct admin_spool_answer *a)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(val, &end, 10);
	if (*val < '0' || *val > '9' || *end || errno || v < min || v > max) {
		fail(a, 400, "bad request: \"%s\" must be a whole number in %llu..%llu, not \"%.32s\"",
		      key, (unsigned long long)min, (unsigned long long)max, val);
		return -1;
	}
	*out = v;
	return 0;
}

static int project_check(const char *p, struct admin_spool_answer *a)
{
	size_t n = strlen(p);
	if (n == 0 || n > SPOOL_RECORD_PROJECT_MAX || strpbrk(p, "%/ ")) {
		fail(a, 400, "bad request: \"project\" is not a project name");
		return -1;
	}
	return 0;
}

/* ---- rendering ---- */

static void rfc3339(int64_t us, bool micro, char *out, size_t len)
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;
	gmtime_r(&t, &tm);
	size_t n = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
	if (micro)
		snprintf(out + n, len - n, ".%06dZ", (int)(us % 1000000));
	else
		snprintf(out + n, len - n, "Z");
}

/* A dead letter's answer as JSON text: bytes that are not printable ASCII
 * become '.', so a binary answer never breaks the document. */
static json_t *answer_text(const struct spool_dead_info *d)
{
	char text[SPOOL_ANSWER_MAX];
	for (size_t i = 0; i < d->answer_len; i++)
		text[i] = d->answer[i] >= 0x20 && d->answer[i] < 0x7f ? (char)d->answer[i] : '.';
	return json_stringn(text, d->answer_len);
}

static json_t *spool_project_json(struct spool_store *s, const char *name, time_t now)
{
	struct spool_totals t;
	spool_store_totals(s, name, &t);
	int64_t age = t.oldest_us ? (int64_t)now - t.oldest_us / 1000000 : 0;
	json_t *dead = json_array();
	uint64_t *ids = malloc(SPOOL_LIST_MAX * sizeof(*ids));
	size_t n = ids ? spool_store_dead(s, name, ids, SPOOL_LIST_MAX) : 0;
	for (size_t i = 0; dead && i < n; i++) {
		struct spool_dead_info d;
		if (spool_store_dead_info(s, ids[i], &d) != 1)
			continue;
		json_array_append_new(dead, json_pack("{s:I, s:i, s:i, s:I, s:o}", "id",
						      (json_int_t)ids[i], "status", d.status,
						      "attempts", (int)d.attempts, "time",
						      (json_int_t)(d.time_us / 1000000), "answer",
						      answer_text(&d)));
	}
	free(ids);
	return json_pack("{s:I, s:I, s:I, s:I, s:o*}", "records", (json_int_t)(t.pending + t.dead),
			 "pending", (json_int_t)t.pending, "bytes", (json_int_t)t.bytes,
			 "oldest_age", (json_int_t)(age > 0 ? age : 0), "dead_letters", dead);
}

/* ---- GET /spool ---- */

void admin_spool_list(struct control *ctl, const char *query, struct admin_spool_answer *a)
{
	struct spool_store *s = spool_of(ctl, a);
	struct query q = { .keys = { "project", NULL } };
	if (!s || query_parse(query, &q, a) < 0) {
		query_free(&q);
		return;
	}
	const char *want = q.vals[0];
	json_t *projects = json_object();
	size_t n = 0;
	char **names = spool_store_projects(s, &n);
	time_t now = time(NULL);
	for (size_t i = 0; i < n; i++) {
		if (!want || strcmp(names[i], want) == 0)
			json_object_set_new(projects, names[i], spool_project_json(s, names[i], now));
		free(names[i]);
	}
	free(names);
	query_free(&q);
	answer(a, 200, json_pack("{s:b, s:o*}", "ok", 1, "projects", projects));
}

/* ---- GET /spool/records ---- */

void admin_spool_records(struct control *ctl, const char *query, struct admin_spool_answer *a)
{
	struct spool_store *s = spool_of(ctl, a);
	struct query q = { .keys = { "after", "limit", "project", NULL } };
	uint64_t after = 0, limit = RECORDS_DEFAULT;
	if (!s || query_parse(query, &q, a) < 0 ||
	    (q.vals[0] && query_number("after", q.vals[0], 0, INT64_MAX, &after, a) < 0) ||
	    (q.vals[1] && query_number("limit", q.vals[1], 1, RECORDS_MAX, &limit, a) < 0) ||
	    (q.vals[2] && project_check(q.vals[2], a) < 0)) {
		query_free(&q);
		return;
	}
	struct spool_entry *e = malloc(limit * sizeof(*e));
	json_t *list = json_array();
	if (!e || !list) {
		free(e);
		json_decref(list);
		query_free(&q);
		fail(a, 500, "out of memory");
		return;
	}
	size_t n = spool_store_list(s, q.vals[2], after, e, limit);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(list, json_pack("{s:I, s:s, s:s, s:I}", "id",
						      (json_int_t)e[i].id, "project", e[i].project,
						      "state", e[i].dead ? "dead" : "pending", "bytes",
						      (json_int_t)e[i].bytes));
	json_t *next = n == limit ? json_integer((json_int_t)e[n - 1].id) : json_null();
	free(e);
	query_free(&q);
	answer(a, 200, json_pack("{s:b, s:o, s:o}", "ok", 1, "records", list, "next", next));
}

/* ---- retry ---- */

/* N records of PROJECT (as the spool names it) are pending again: the
 * project's counter (what keeps new submissions behind them) follows. */
static void retried(const char *project, int64_t n)
{
	bool global = strcmp(project, "-") == 0;
	struct project *p = project_get(global ? "" : project, global ? 0 : strlen(project));
	project_spooled_add(p, (int)n);
	project_put(p);
}

static const char *scope_of(const char *project)
{
	return strcmp(project, "-") ? project : "global";
}

static void retry_one(struct control *ctl, const char *who, uint64_t id,
		      struct admin_spool_answer *a)
{
	struct spool_store *s = control_spool(ctl);
	struct spool_dead_info d;
	int rc = spool_store_dead_info(s, id, &d);
	if (rc != 1) {
		fail(a, rc < 0 ? 404 : 409, "%s", rc < 0 ? "no such record"
							  : "the record is not a dead letter");
		return;
	}
	char project[SPOOL_RECORD_PROJECT_MAX + 1] = "";
	struct spool_reader *rd = spool_store_read(s, id);
	if (rd) {
		snprintf(project, sizeof(project), "%s", spool_reader_view(rd)->project);
		spool_reader_close(rd);
	}
	if (!rd || spool_store_mark_retry(s, id) < 0) {
		fail(a, 409, "the record is not a dead letter");
		return;
	}
	retried(project, 1);
	replay_poke();
	control_journal_append(ctl, json_pack("{s:s, s:s, s:s, s:I}", "action", "spool-retry",
					      "who", who, "scope", scope_of(project), "id",
					      (json_int_t)id));
	answer(a, 200, json_pack("{s:b, s:I, s:s}", "ok", 1, "id", (json_int_t)id, "project",
				 project));
}

/* Every dead letter of PROJECT pending again; returns how many. */
static int64_t retry_project(struct spool_store *s, const char *project, uint64_t *ids)
{
	int64_t total = 0;
	for (;;) {
		size_t n = spool_store_dead(s, project, ids, RETRY_BATCH), done = 0;
		for (size_t i = 0; i < n; i++)
			done += spool_store_mark_retry(s, ids[i]) == 0;
		total += (int64_t)done;
		/* A batch that moved nothing would come back the same: stop. */
		if (n < RETRY_BATCH || done == 0)
			break;
	}
	if (total)
		retried(project, total);
	return total;
}

void admin_spool_retry_all(struct control *ctl, const char *who, const json_t *body,
			   struct admin_spool_answer *a)
{
	struct spool_store *s = spool_of(ctl, a);
	if (!s)
		return;
	const char *want = json_string_value(json_object_get(body, "project"));
	if (want && project_check(want, a) < 0)
		return;
	uint64_t *ids = malloc(RETRY_BATCH * sizeof(*ids));
	if (!ids) {
		fail(a, 500, "out of memory");
		return;
	}
	int64_t total = 0;
	size_t n = 0;
	char **names = spool_store_projects(s, &n);
	for (size_t i = 0; i < n; i++) {
		if (!want || strcmp(names[i], want) == 0)
			total += retry_project(s, names[i], ids);
		free(names[i]);
	}
	free(names);
	free(ids);
	if (total)
		replay_poke();
	control_journal_append(ctl, json_pack("{s:s, s:s, s:s, s:I}", "action", "spool-retry",
					      "who", who, "scope", want ? scope_of(want) : "all",
					      "count", (json_int_t)total));
	answer(a, 200, json_pack("{s:b, s:I, s:s?}", "ok", 1, "retried", (json_int_t)total,
				 "project", want));
}

/* ---- one record ---- */

/* The stored head as JSON lines (ISO-8859-1 characters), redacted unless
 * CREDENTIALS; sets the method and target from the request line. */
static json_t *head_json(const struct spool_record_view *v, bool credentials, json_t *doc)
{
	json_t *lines = json_array();
	const char *head = (const char *)v->head, *line;
	size_t pos = 0, len;
	size_t cap = 0;
	char *red = NULL, *utf = NULL;
	bool first = true;
	while (lines && spool_head_next_line(head, v->head_len, &pos, &line, &len)) {
		if (len + SPOOL_HEAD_REDACT_EXTRA > cap) {
			cap = len + SPOOL_HEAD_REDACT_EXTRA;
			free(red);
			free(utf);
			red = malloc(cap);
			utf = malloc(2 * cap);
			if (!red || !utf)
				break;
		}
		size_t n = spool_head_redact(line, len, credentials, red, cap);
		size_t u = spool_head_latin1_to_utf8(red, n, utf);
		json_array_append_new(lines, json_stringn(utf, u));
		if (first) {
			/* "METHOD SP target SP version" (parsed when it was stored) */
			const char *sp1 = memchr(utf, ' ', u);
			const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', u - (size_t)(sp1 + 1 - utf)) : NULL;
			if (sp2) {
				json_object_set_new(doc, "method", json_stringn(utf, (size_t)(sp1 - utf)));
				json_object_set_new(doc, "target",
						    json_stringn(sp1 + 1, (size_t)(sp2 - sp1 - 1)));
			}
			first = false;
		}
	}
	free(red);
	free(utf);
	return lines;
}

static void show(struct spool_store *s, uint64_t id, const char *query,
		 struct admin_spool_answer *a)
{
	struct query q = { .keys = { "credentials", NULL } };
	if (query_parse(query, &q, a) < 0) {
		query_free(&q);
		return;
	}
	const char *c = q.vals[0];
	bool credentials = c && (!strcmp(c, "1") || !strcmp(c, "true"));
	if (c && !credentials && strcmp(c, "0") && strcmp(c, "false")) {
		fail(a, 400, "bad request: \"credentials\" is 1, true, 0 or false, not \"%.16s\"", c);
		query_free(&q);
		return;
	}
	query_free(&q);
	struct spool_reader *rd = spool_store_read(s, id);
	if (!rd) {
		fail(a, errno == ENOENT ? 404 : 500, "%s", errno == ENOENT ? "no such record"
					  : "the record cannot be read (see the log)");
		return;
	}
	const struct spool_record_view *v = spool_reader_view(rd);
	struct spool_dead_info d;
	int dead = spool_store_dead_info(s, id, &d);
	char accepted[48], when[48];
	rfc3339(v->accepted_us, true, accepted, sizeof(accepted));
	json_t *dl = json_null();
	if (dead == 1) {
		rfc3339(d.time_us, false, when, sizeof(when));
		dl = json_pack("{s:i, s:i, s:s, s:o}", "status", d.status, "attempts",
			       (int)d.attempts, "time", when, "answer", answer_text(&d));
	}
	json_t *doc = json_pack("{s:b, s:I, s:s, s:s, s:s, s:s, s:I, s:b}", "ok", 1, "id",
				(json_int_t)id, "project", v->project, "route", v->route, "state",
				dead == 1 ? "dead" : "pending", "accepted", accepted, "body_bytes",
				(json_int_t)v->body_len, "credentials", credentials);
	if (doc) {
		json_object_set_new(doc, "head", head_json(v, credentials, doc));
		json_object_set_new(doc, "dead_letter", dl);
	} else {
		json_decref(dl);
	}
	spool_reader_close(rd);
	answer(a, 200, doc);
}

void admin_spool_record(struct control *ctl, const char *who, bool is_get, bool is_post,
			const char *rest, const char *query, struct admin_spool_answer *a)
{
	char *end;
	errno = 0;
	unsigned long long id = strtoull(rest, &end, 10);
	bool ok_id = rest[0] >= '1' && rest[0] <= '9' && !errno;
	const char *what = ok_id ? end : "";
	if (!ok_id || (*what && strcmp(what, "/body") && strcmp(what, "/retry"))) {
		fail(a, 404, "no such endpoint: /spool/<id>, /spool/<id>/body, /spool/<id>/retry "
		      "(an id is a number from GET /spool/records)");
		return;
	}
	bool retry = strcmp(what, "/retry") == 0;
	if (retry ? !is_post : !is_get) {
		fail(a, 405, "use %s /spool/<id>%s", retry ? "POST" : "GET", what);
		return;
	}
	struct spool_store *s = spool_of(ctl, a);
	if (!s)
		return;
	if (retry) {
		if (query && *query) {
			fail(a, 400, "bad request: POST /spool/<id>/retry takes no query");
			return;
		}
		retry_one(ctl, who, id, a);
		return;
	}
	if (!*what) {
		show(s, id, query, a);
		return;
	}
	if (query && *query) {
		fail(a, 400, "bad request: GET /spool/<id>/body takes no query");
		return;
	}
	struct spool_reader *rd = spool_store_read(s, id);
	if (!rd) {
		fail(a, errno == ENOENT ? 404 : 500, "%s", errno == ENOENT ? "no such record"
					  : "the record cannot be read (see the log)");
		return;
	}
	a->status = 200;
	a->body = rd;
	a->body_len = spool_reader_view(rd)->body_len;
}

int admin_spool_pump(struct spool_reader *rd, uint64_t *left, struct evbuffer *out, size_t room)
{
	while (*left && evbuffer_get_length(out) < room) {
		struct evbuffer_iovec v;
		size_t want = *left < PUMP_CHUNK ? (size_t)*left : PUMP_CHUNK;
		if (evbuffer_reserve_space(out, (ev_ssize_t)want, &v, 1) < 1)
			return -1;
		ssize_t n = spool_reader_read(rd, v.iov_base, want < v.iov_len ? want : v.iov_len);
		if (n <= 0) {
			/* EIO: the bytes no longer match their sum (the reader says so
			 * before the last ones); 0: the record ended early. */
			log_warn("admin: a spooled body does not check (%s): its answer ends short",
				 n < 0 ? strerror(errno) : "shorter than its length");
			return -1;
		}
		v.iov_len = (size_t)n;
		evbuffer_commit_space(out, &v, 1);
		*left -= (uint64_t)n;
	}
	return 0;
}
