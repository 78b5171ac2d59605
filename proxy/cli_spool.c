/* cli_spool: `spool show` and `spool export`, several exchanges each; the
 * bodies go from the socket to a file in 64 KiB pieces (adminclient), so
 * a 32 MiB record is never whole in the CLI's memory either. */
#include "cli_spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "adminclient.h"
#include "spool_head.h"

/* One exchange: METHOD PATH, the 200 body into FD when FD >= 0. */
static int exchange(const struct cli_spool_conn *c, const char *path, int fd, uint64_t *written,
		    struct adminclient_answer *ans, FILE *err)
{
	const struct adminclient_request req = {
		.admin = c->admin,
		.addr = c->addr,
		.method = "GET",
		.path = path,
		.token = c->token,
		.timeout = c->timeout,
	};
	char why[512];
	int rc = fd >= 0 ? adminclient_exchange_to_fd(&req, fd, written, ans, why, sizeof(why))
			 : adminclient_exchange(&req, ans, why, sizeof(why));
	if (rc < 0)
		fprintf(err, "cutover: %s\n", why);
	return rc;
}

/* A refusal or failure answer, said in one line as every command says it. */
static enum render_outcome refused(const struct cli_spool_conn *c, const char *command,
				   const struct adminclient_answer *ans, FILE *out, FILE *err)
{
	const struct render_request rq = {
		.command = command, .admin = c->admin, .token_file = c->token_file,
	};
	return render_answer(&rq, ans->status, ans->body, out, err);
}

/* ---- show ---- */

enum render_outcome cli_spool_show(const struct cli_spool_conn *c, uint64_t id, bool credentials,
				   const char *body_file, FILE *out, FILE *err)
{
	char path[96];
	snprintf(path, sizeof(path), "/spool/%llu%s", (unsigned long long)id,
		 credentials ? "?credentials=1" : "");
	struct adminclient_answer ans;
	if (exchange(c, path, -1, NULL, &ans, err) < 0) {
		adminclient_answer_free(&ans);
		return RENDER_FAILED;
	}
	const struct render_request rq = {
		.command = "spool show", .admin = c->admin, .json = c->json,
		.token_file = c->token_file, .print = render_spool_record,
	};
	enum render_outcome rc = render_answer(&rq, ans.status, ans.body, out, err);
	adminclient_answer_free(&ans);
	if (rc != RENDER_DONE || !body_file)
		return rc;
	fflush(out);
	/* The form's data: readable by its owner only. */
	int fd = open(body_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(err, "cutover: spool show: %s: %s\n", body_file, strerror(errno));
		return RENDER_FAILED;
	}
	snprintf(path, sizeof(path), "/spool/%llu/body", (unsigned long long)id);
	uint64_t written = 0;
	int xrc = exchange(c, path, fd, &written, &ans, err);
	if (xrc == 0 && ans.status != 200)
		refused(c, "spool show", &ans, out, err);
	bool ok = xrc == 0 && ans.status == 200;
	adminclient_answer_free(&ans);
	if (close(fd) < 0 && ok) {
		fprintf(err, "cutover: spool show: %s: %s\n", body_file, strerror(errno));
		ok = false;
	}
	if (!ok) {
		unlink(body_file); /* never a body cut short that looks whole */
		return RENDER_FAILED;
	}
	fprintf(c->json ? err : out, "body: %llu bytes written to %s\n",
		(unsigned long long)written, body_file);
	return RENDER_DONE;
}

/* ---- export ---- */

/* DIR ready for an export: created 0700 if missing, else a directory with
 * nothing in it (an export never mixes with another's files). Its fd, or
 * -1 with a reason on ERR. */
static int export_dir(const char *dir, FILE *err)
{
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		fprintf(err, "cutover: spool export: cannot create %s: %s\n", dir, strerror(errno));
		return -1;
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(err, "cutover: spool export: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	int dup_fd = dup(fd);
	DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	if (!d) {
		fprintf(err, "cutover: spool export: %s: %s\n", dir, strerror(errno));
		if (dup_fd >= 0)
			close(dup_fd);
		close(fd);
		return -1;
	}
	const struct dirent *e;
	bool empty = true;
	while (empty && (e = readdir(d)))
		empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
	closedir(d);
	if (!empty) {
		fprintf(err, "cutover: spool export: %s is not empty: give a new or empty directory\n",
			dir);
		close(fd);
		return -1;
	}
	return fd;
}

/* A new file NAME in DFD with MODE (whatever the umask). */
static int create(int dfd, const char *name, mode_t mode, FILE *err)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd >= 0 && fchmod(fd, mode) < 0) {
		close(fd);
		fd = -1;
	}
	if (fd < 0)
		fprintf(err, "cutover: spool export: %s: %s\n", name, strerror(errno));
	return fd;
}

static int write_file(int dfd, const char *name, mode_t mode, const char *data, size_t len,
		      FILE *err)
{
	int fd = create(dfd, name, mode, err);
	if (fd < 0)
		return -1;
	int rc = 0;
	while (len && rc == 0) {
		ssize_t n = write(fd, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			rc = -1;
		else {
			data += n;
			len -= (size_t)n;
		}
	}
	if (close(fd) < 0)
		rc = -1;
	if (rc < 0)
		fprintf(err, "cutover: spool export: %s: %s\n", name, strerror(errno));
	return rc;
}

/* JSON text S (from a head) as its bytes, into a malloc'd buffer. */
static char *bytes_of(const char *s, size_t *len)
{
	size_t n = strlen(s);
	char *b = malloc(n + 1);
	if (!b)
		return NULL;
	*len = spool_head_utf8_to_latin1(s, n, b);
	if (*len == (size_t)-1) {
		free(b);
		return NULL;
	}
	return b;
}

/* Bytes P as one shell word in single quotes. */
static void sh_quote(FILE *f, const char *p, size_t n)
{
	fputc('\'', f);
	for (size_t i = 0; i < n; i++)
		if (p[i] == '\'')
			fputs("'\\''", f);
		else
			fputc(p[i], f);
	fputc('\'', f);
}

/* What the script must know of a record's headers. */
struct head_facts {
	bool redacted;               /* an Authorization line holds no credential */
	bool accept, user_agent;     /* the device sent them (else curl must not add its own) */
};

/* ID.headers: the end-to-end headers as curl takes them (-H @FILE). */
static int write_headers(int dfd, const char *name, const json_t *head, struct head_facts *hf,
			 FILE *err)
{
	char *text = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&text, &size);
	if (!f)
		return -1;
	size_t i;
	const json_t *line;
	int rc = 0;
	json_array_foreach(head, i, line) {
		size_t n;
		char *b = i && json_string_value(line) ? bytes_of(json_string_value(line), &n) : NULL;
		if (!i)
			continue; /* the request line: in the .sh */
		if (!b) {
			rc = -1;
			break;
		}
		if (!spool_head_curl_skips(b, n)) {
			char *c = malloc(n + 1);
			if (!c) {
				free(b);
				rc = -1;
				break;
			}
			fwrite(c, 1, spool_head_curl_line(b, n, c), f);
			fputc('\n', f);
			free(c);
			if (spool_head_is(b, n, "authorization") &&
			    n >= strlen(SPOOL_HEAD_REDACTED) &&
			    !memcmp(b + n - strlen(SPOOL_HEAD_REDACTED), SPOOL_HEAD_REDACTED,
				    strlen(SPOOL_HEAD_REDACTED)))
				hf->redacted = true;
			hf->accept |= spool_head_is(b, n, "accept");
			hf->user_agent |= spool_head_is(b, n, "user-agent");
		}
		free(b);
	}
	if (fclose(f) != 0)
		rc = -1;
	if (rc == 0)
		rc = write_file(dfd, name, 0600, text, size, err);
	else
		fprintf(err, "cutover: spool export: %s: the head is not readable\n", name);
	free(text);
	return rc;
}

/* ID.sh: curl with the record's method, its headers and body files, and
 * its target after ${CUTOVER_TARGET}. */
static int write_script(int dfd, uint64_t id, const json_t *doc, const struct head_facts *hf,
			FILE *err)
{
	size_t mlen = 0, tlen = 0;
	const char *m = json_string_value(json_object_get(doc, "method"));
	const char *t = json_string_value(json_object_get(doc, "target"));
	char *method = m ? bytes_of(m, &mlen) : NULL, *target = t ? bytes_of(t, &tlen) : NULL;
	char *text = NULL, name[48];
	size_t size = 0;
	FILE *f = method && target ? open_memstream(&text, &size) : NULL;
	int rc = -1;
	snprintf(name, sizeof(name), "%llu.sh", (unsigned long long)id);
	if (f) {
		const char *project = json_string_value(json_object_get(doc, "project"));
		fprintf(f, "#!/bin/sh\n"
			   "# cutover spool export: record %llu of %s, accepted %s, %s.\n"
			   "# Sends it as the device did: set CUTOVER_TARGET to the server's base URL\n"
			   "# (https://server.example.org); the record's target is appended to it.\n",
			(unsigned long long)id, project ? project : "?",
			json_string_value(json_object_get(doc, "accepted")),
			json_string_value(json_object_get(doc, "state")));
		if (hf->redacted)
			fprintf(f, "# Authorization is redacted in %llu.headers: put the credential back\n"
				   "# there first (or export with --with-credentials).\n",
				(unsigned long long)id);
		fprintf(f, "set -eu\ncd \"$(dirname \"$0\")\"\n"
			   "exec curl --silent --show-error --globoff --request ");
		sh_quote(f, method, mlen);
		/* "Name:" stops curl adding a header the device did not send. */
		fprintf(f, " \\\n  --header @'%llu.headers' --header 'Expect:'%s%s --data-binary @'%llu.body' \\\n"
			   "  --write-out '\\nHTTP %%{http_code}\\n' \\\n"
			   "  \"${CUTOVER_TARGET:?base URL of the server}\"",
			(unsigned long long)id, hf->accept ? "" : " --header 'Accept:'",
			hf->user_agent ? "" : " --header 'User-Agent:'", (unsigned long long)id);
		sh_quote(f, target, tlen);
		fputc('\n', f);
		if (fclose(f) == 0)
			rc = write_file(dfd, name, 0700, text, size, err);
	}
	if (rc < 0 && !f)
		fprintf(err, "cutover: spool export: %s: the request line is not readable\n", name);
	free(text);
	free(method);
	free(target);
	return rc;
}

static void remove_files(int dfd, uint64_t id)
{
	static const char *const ext[] = { "json", "headers", "sh", "body" };
	char name[48];
	for (size_t i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "%llu.%s", (unsigned long long)id, ext[i]);
		unlinkat(dfd, name, 0);
	}
}

/* Record ID into DFD: 1 written (*BYTES += its body), 0 gone meanwhile
 * (delivered: nothing left of it), -1 failed (said on ERR). */
static int export_one(const struct cli_spool_conn *c, int dfd, uint64_t id, bool credentials,
		      uint64_t *bytes, FILE *out, FILE *err)
{
	char path[96], name[48];
	snprintf(path, sizeof(path), "/spool/%llu%s", (unsigned long long)id,
		 credentials ? "?credentials=1" : "");
	struct adminclient_answer ans;
	if (exchange(c, path, -1, NULL, &ans, err) < 0) {
		adminclient_answer_free(&ans);
		return -1;
	}
	if (ans.status != 200) {
		int rc = ans.status == 404 ? 0 : -1;
		if (rc)
			refused(c, "spool export", &ans, out, err);
		adminclient_answer_free(&ans);
		return rc;
	}
	json_t *doc = json_loads(ans.body, 0, NULL);
	adminclient_answer_free(&ans);
	if (!json_is_object(doc) || !json_is_array(json_object_get(doc, "head"))) {
		fprintf(err, "cutover: bad answer from the admin API at %s: record %llu\n", c->admin,
			(unsigned long long)id);
		json_decref(doc);
		return -1;
	}
	/* What the record is, for a person and for tools; its head is in .headers. */
	json_t *meta = json_deep_copy(doc);
	json_object_del(meta, "ok");
	json_object_del(meta, "head");
	char *text = json_dumps(meta, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
	json_decref(meta);
	struct head_facts hf = { 0 };
	snprintf(name, sizeof(name), "%llu.json", (unsigned long long)id);
	int rc = text ? write_file(dfd, name, 0600, text, strlen(text), err) : -1;
	free(text);
	snprintf(name, sizeof(name), "%llu.headers", (unsigned long long)id);
	if (rc == 0)
		rc = write_headers(dfd, name, json_object_get(doc, "head"), &hf, err);
	if (rc == 0)
		rc = write_script(dfd, id, doc, &hf, err);
	json_decref(doc);
	snprintf(name, sizeof(name), "%llu.body", (unsigned long long)id);
	int fd = rc == 0 ? create(dfd, name, 0600, err) : -1;
	if (fd < 0)
		return -1;
	snprintf(path, sizeof(path), "/spool/%llu/body", (unsigned long long)id);
	uint64_t written = 0;
	rc = exchange(c, path, fd, &written, &ans, err);
	if (close(fd) < 0 && rc == 0) {
		fprintf(err, "cutover: spool export: %s: %s\n", name, strerror(errno));
		rc = -1;
	}
	if (rc == 0 && ans.status != 200) {
		rc = ans.status == 404 ? 0 : -1;
		if (rc)
			refused(c, "spool export", &ans, out, err);
		else
			remove_files(dfd, id);
	} else if (rc == 0) {
		*bytes += written;
		rc = 1;
	}
	adminclient_answer_free(&ans);
	return rc;
}

enum render_outcome cli_spool_export(const struct cli_spool_conn *c, const char *dir,
				     const char *project, bool credentials, FILE *out, FILE *err)
{
	int dfd = export_dir(dir, err);
	if (dfd < 0)
		return RENDER_FAILED;
	uint64_t after = 0, records = 0, bytes = 0, gone = 0;
	enum render_outcome rc = RENDER_DONE;
	for (;;) {
		char path[512];
		snprintf(path, sizeof(path), "/spool/records?after=%llu&limit=%d%s%s",
			 (unsigned long long)after, CLI_SPOOL_PAGE, project ? "&project=" : "",
			 project ? project : "");
		struct adminclient_answer ans;
		if (exchange(c, path, -1, NULL, &ans, err) < 0) {
			adminclient_answer_free(&ans);
			rc = RENDER_FAILED;
			break;
		}
		json_t *page = ans.status == 200 ? json_loads(ans.body, 0, NULL) : NULL;
		const json_t *list = json_object_get(page, "records");
		if (!json_is_array(list)) {
			if (ans.status == 200)
				fprintf(err, "cutover: bad answer from the admin API at %s: no records\n",
					c->admin);
			else
				refused(c, "spool export", &ans, out, err);
			adminclient_answer_free(&ans);
			json_decref(page);
			rc = RENDER_FAILED;
			break;
		}
		adminclient_answer_free(&ans);
		size_t i;
		const json_t *r;
		json_array_foreach(list, i, r) {
			json_int_t id = json_integer_value(json_object_get(r, "id"));
			int one = id > 0 && (uint64_t)id > after
					  ? export_one(c, dfd, (uint64_t)id, credentials, &bytes, out, err)
					  : -1;
			if (one < 0) {
				rc = RENDER_FAILED;
				break;
			}
			records += one == 1;
			gone += one == 0;
			after = (uint64_t)id;
		}
		const json_t *next = json_object_get(page, "next");
		bool more = rc == RENDER_DONE && json_is_integer(next) &&
			    (uint64_t)json_integer_value(next) >= after && json_array_size(list);
		json_decref(page);
		if (!more)
			break;
	}
	close(dfd);
	if (rc != RENDER_DONE) {
		fprintf(err, "cutover: spool export: stopped after %llu records; what %s holds is "
			     "incomplete\n", (unsigned long long)records, dir);
		return rc;
	}
	if (c->json)
		fprintf(out, "{\"ok\": true, \"records\": %llu, \"bytes\": %llu, \"gone\": %llu}\n",
			(unsigned long long)records, (unsigned long long)bytes,
			(unsigned long long)gone);
	else if (gone)
		fprintf(out, "exported %llu records (%llu body bytes) to %s (%llu delivered "
			     "meanwhile, not exported)\n", (unsigned long long)records,
			(unsigned long long)bytes, dir, (unsigned long long)gone);
	else
		fprintf(out, "exported %llu records (%llu body bytes) to %s\n",
			(unsigned long long)records, (unsigned long long)bytes, dir);
	return RENDER_DONE;
}
