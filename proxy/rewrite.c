/* rewrite: the heads cutover sends on. The request head for the upstream:
 * its origin-form target, Host, X-Forwarded-For/-Proto/-Host (kept from
 * trusted_proxies only), no hop-by-hop field, the framing said again. The
 * answer's head for the client: no hop-by-hop field, the framing and the
 * connection's fate said. Each head is written in one pass. The forward
 * action and the spool replay use it. */
#include "rewrite.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "addr.h"
#include "conf.h"
#include "http1.h"
#include "upstream.h"

int rewrite_conf_parse(struct conf_reader *r, const config_setting_t *root, struct config *cfg)
{
	char **list = NULL;
	size_t n = 0;
	int rc = conf_get_strings(r, root, "trusted_proxies", &list, &n);
	if (rc <= 0)
		return rc < 0 ? -1 : 0;
	const config_setting_t *at = config_setting_get_member(root, "trusted_proxies");
	struct cidr_set *set = &cfg->rewrite->trusted_proxies;
	set->v = calloc(n ? n : 1, sizeof(*set->v));
	if (!set->v) {
		conf_error(r, at, "trusted_proxies: out of memory");
		conf_strings_free(list);
		return -1;
	}
	int status = 0;
	for (size_t i = 0; i < n; i++) {
		const char *why = NULL;
		if (cidr_parse(list[i], &set->v[set->n], &why) < 0) {
			conf_error(r, config_setting_get_elem(at, (unsigned)i),
				   "trusted_proxies: '%s': %s", list[i], why ? why : "invalid");
			status = -1;
		} else {
			set->n++;
		}
	}
	conf_strings_free(list);
	return status;
}

void rewrite_conf_free(struct rewrite_conf *c)
{
	cidr_set_free(&c->trusted_proxies);
}

/* The tokens of a head's Connection fields (the more hop-by-hop fields
 * they name), collected once per head instead of looked up per field. */
#define CONNECTION_TOKENS 8

struct connection_tokens {
	size_t n;
	bool more;                   /* past CONNECTION_TOKENS: looked up instead */
	struct {
		const char *p;
		size_t len;
	} t[CONNECTION_TOKENS];
};

static void connection_tokens(const struct http1_head *h, struct connection_tokens *ct)
{
	size_t cursor = 0, n;
	const char *tok;
	ct->n = 0;
	ct->more = false;
	while (http1_next_token(h, "connection", &cursor, &tok, &n)) {
		if (ct->n == CONNECTION_TOKENS) {
			ct->more = true;
			return;
		}
		ct->t[ct->n].p = tok;
		ct->t[ct->n++].len = n;
	}
}

static bool is_listed_in_connection(const struct http1_head *h, const struct connection_tokens *ct,
				    const char *name, size_t len)
{
	for (size_t i = 0; i < ct->n; i++)
		if (ct->t[i].len == len && strncasecmp(ct->t[i].p, name, len) == 0)
			return true;
	if (!ct->more)
		return false;
	size_t cursor = 0, n;
	const char *tok;
	while (http1_next_token(h, "connection", &cursor, &tok, &n))
		if (n == len && strncasecmp(tok, name, len) == 0)
			return true;
	return false;
}

static bool hop_by_hop(const struct http1_head *h, const struct connection_tokens *ct,
		       const char *name, size_t len)
{
	switch (len) {
	case 2:
		if (http1_token_eq(name, len, "te"))
			return true;
		break;
	case 7:
		if (http1_token_eq(name, len, "trailer") || http1_token_eq(name, len, "upgrade"))
			return true;
		break;
	case 10:
		if (http1_token_eq(name, len, "connection") ||
		    http1_token_eq(name, len, "keep-alive"))
			return true;
		break;
	case 16:
		if (http1_token_eq(name, len, "proxy-connection"))
			return true;
		break;
	case 17:
		if (http1_token_eq(name, len, "transfer-encoding"))
			return true;
		break;
	}
	return is_listed_in_connection(h, ct, name, len);
}

bool rewrite_is_hop_by_hop(const struct http1_head *h, const char *name, size_t len)
{
	struct connection_tokens ct;
	connection_tokens(h, &ct);
	return hop_by_hop(h, &ct, name, len);
}

/* A head is written in one pass into space reserved in the output at
 * once: no evbuffer call per field. The bound is the head it comes from
 * plus what may be added. */
struct head_writer {
	char *p, *end;
};

static void put(struct head_writer *w, const void *s, size_t n)
{
	assert(n <= (size_t)(w->end - w->p));
	memcpy(w->p, s, n);
	w->p += n;
}

#define PUT_LITERAL(w, s) put((w), (s), sizeof(s) - 1)

static void put_field(struct head_writer *w, const struct http1_header *f)
{
	put(w, f->name, f->name_len);
	PUT_LITERAL(w, ": ");
	put(w, f->value, f->value_len);
	PUT_LITERAL(w, "\r\n");
}

static void put_u64(struct head_writer *w, uint64_t v)
{
	char digits[20];
	size_t n = 0;
	do
		digits[sizeof(digits) - ++n] = (char)('0' + v % 10);
	while ((v /= 10) && n < sizeof(digits));
	put(w, digits + sizeof(digits) - n, n);
}

/* The head's own bytes bound every field copied from it; the fields
 * cutover adds or rebuilds fit in this. */
#define HEAD_ADDED 512

static bool head_begin(struct evbuffer *out, size_t bound, struct evbuffer_iovec *v,
		       struct head_writer *w)
{
	if (evbuffer_reserve_space(out, (ev_ssize_t)bound, v, 1) < 1)
		return false;
	w->p = v->iov_base;
	w->end = w->p + bound;
	return true;
}

static void head_end(struct evbuffer *out, struct evbuffer_iovec *v, const struct head_writer *w)
{
	v->iov_len = (size_t)(w->p - (char *)v->iov_base);
	evbuffer_commit_space(out, v, 1);
}

bool rewrite_request_head(struct evbuffer *out, const struct http1_head *req,
			  const struct upstream_conf *up, const struct rewrite_conf *rc,
			  const struct sockaddr *peer, bool client_tls)
{
	size_t host_header = strlen(up->host_header);
	struct evbuffer_iovec v;
	struct head_writer w;
	/* Host may be copied twice (Host, X-Forwarded-Host), and a field
	 * written "Name:value" gains a space. */
	size_t bound = req->head_len + req->n_headers + req->host_len + host_header + HEAD_ADDED;
	if (!head_begin(out, bound, &v, &w))
		return false;
	const char *target;
	size_t target_len;
	http1_origin_form(req, &target, &target_len);
	put(&w, req->method, req->method_len);
	PUT_LITERAL(&w, " ");
	if (target_len == 0 || *target == '?')
		PUT_LITERAL(&w, "/");
	put(&w, target, target_len);
	PUT_LITERAL(&w, " HTTP/1.1\r\nHost: ");
	if (up->preserve_host && req->host)
		put(&w, req->host, req->host_len);
	else
		put(&w, up->host_header, host_header);
	PUT_LITERAL(&w, "\r\n");

	bool trusted = cidr_set_contains(&rc->trusted_proxies, peer);
	struct connection_tokens ct;
	connection_tokens(req, &ct);
	bool have_proto = false, have_fhost = false, have_xff = false;
	for (size_t i = 0; i < req->n_headers; i++) {
		const struct http1_header *f = &req->headers[i];
		if (http1_token_eq(f->name, f->name_len, "host") ||
		    http1_token_eq(f->name, f->name_len, "content-length") ||
		    http1_token_eq(f->name, f->name_len, "expect") ||
		    hop_by_hop(req, &ct, f->name, f->name_len))
			continue;
		if (http1_token_eq(f->name, f->name_len, "x-forwarded-for")) {
			have_xff = true;
			continue; /* rebuilt below as one line */
		}
		bool is_proto = http1_token_eq(f->name, f->name_len, "x-forwarded-proto");
		bool is_fhost = http1_token_eq(f->name, f->name_len, "x-forwarded-host");
		if (is_proto || is_fhost) {
			if (!trusted)
				continue;
			have_proto |= is_proto;
			have_fhost |= is_fhost;
		}
		put_field(&w, f);
	}
	PUT_LITERAL(&w, "X-Forwarded-For: ");
	if (trusted && have_xff) {
		for (size_t i = 0; i < req->n_headers; i++) {
			const struct http1_header *f = &req->headers[i];
			if (!http1_token_eq(f->name, f->name_len, "x-forwarded-for"))
				continue;
			put(&w, f->value, f->value_len);
			PUT_LITERAL(&w, ", ");
		}
	}
	char host[64];
	addr_format_host(peer, host, sizeof(host));
	put(&w, host, strlen(host));
	PUT_LITERAL(&w, "\r\n");
	if (!have_proto) {
		if (client_tls)
			PUT_LITERAL(&w, "X-Forwarded-Proto: https\r\n");
		else
			PUT_LITERAL(&w, "X-Forwarded-Proto: http\r\n");
	}
	if (!have_fhost && req->host) {
		PUT_LITERAL(&w, "X-Forwarded-Host: ");
		put(&w, req->host, req->host_len);
		PUT_LITERAL(&w, "\r\n");
	}
	if (req->framing == HTTP1_BODY_LENGTH) {
		PUT_LITERAL(&w, "Content-Length: ");
		put_u64(&w, req->content_length);
		PUT_LITERAL(&w, "\r\n");
	} else if (req->framing == HTTP1_BODY_CHUNKED) {
		PUT_LITERAL(&w, "Transfer-Encoding: chunked\r\n");
	} else if (req->has_content_length) {
		PUT_LITERAL(&w, "Content-Length: 0\r\n"); /* some servers want it on a POST */
	}
	PUT_LITERAL(&w, "\r\n");
	head_end(out, &v, &w);
	return true;
}

bool rewrite_response_head(struct evbuffer *out, const struct http1_head *resp,
			   bool chunked, bool keep_alive, bool client_http10)
{
	struct evbuffer_iovec v;
	struct head_writer w;
	if (!head_begin(out, resp->head_len + resp->n_headers + HEAD_ADDED, &v, &w))
		return false;
	PUT_LITERAL(&w, "HTTP/1.1 ");
	put_u64(&w, (uint64_t)resp->status);
	PUT_LITERAL(&w, " ");
	put(&w, resp->reason, resp->reason_len);
	PUT_LITERAL(&w, "\r\n");
	struct connection_tokens ct;
	connection_tokens(resp, &ct);
	for (size_t i = 0; i < resp->n_headers; i++) {
		const struct http1_header *f = &resp->headers[i];
		if (hop_by_hop(resp, &ct, f->name, f->name_len))
			continue;
		if (chunked && http1_token_eq(f->name, f->name_len, "content-length"))
			continue;
		put_field(&w, f);
	}
	if (chunked)
		PUT_LITERAL(&w, "Transfer-Encoding: chunked\r\n");
	if (!keep_alive)
		PUT_LITERAL(&w, "Connection: close\r\n");
	else if (client_http10)
		PUT_LITERAL(&w, "Connection: keep-alive\r\n");
	PUT_LITERAL(&w, "\r\n");
	head_end(out, &v, &w);
	return true;
}
