/* forward: request and response head rewriting between client and upstream. */
#include "forward.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "config.h"
#include "http1.h"
#include "upstream.h"

int forward_conf_parse(struct conf_reader *r, const config_setting_t *root, struct config *cfg)
{
	char **list = NULL;
	size_t n = 0;
	int rc = conf_get_strings(r, root, "trusted_proxies", &list, &n);
	if (rc <= 0)
		return rc < 0 ? -1 : 0;
	const config_setting_t *at = config_setting_get_member(root, "trusted_proxies");
	struct cidr_set *set = &cfg->forward.trusted_proxies;
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

void forward_conf_free(struct forward_conf *c)
{
	cidr_set_free(&c->trusted_proxies);
}

static bool is_listed_in_connection(const struct http1_head *h, const char *name, size_t len)
{
	size_t cursor = 0, n;
	const char *tok;
	while (http1_next_token(h, "connection", &cursor, &tok, &n))
		if (n == len && strncasecmp(tok, name, len) == 0)
			return true;
	return false;
}

bool forward_is_hop_by_hop(const struct http1_head *h, const char *name, size_t len)
{
	static const char *const fixed[] = { "connection", "keep-alive", "te", "trailer",
					     "transfer-encoding", "upgrade", "proxy-connection",
					     NULL };
	for (const char *const *f = fixed; *f; f++)
		if (http1_token_eq(name, len, *f))
			return true;
	return is_listed_in_connection(h, name, len);
}

void forward_request_head(struct evbuffer *out, const struct http1_head *req,
			  const struct upstream_conf *up, const struct forward_conf *fc,
			  const struct sockaddr *peer, bool client_tls)
{
	const char *target;
	size_t target_len;
	http1_origin_form(req, &target, &target_len);
	evbuffer_add(out, req->method, req->method_len);
	evbuffer_add(out, " ", 1);
	if (target_len == 0 || *target == '?')
		evbuffer_add(out, "/", 1);
	evbuffer_add(out, target, target_len);
	evbuffer_add(out, " HTTP/1.1\r\nHost: ", 17);
	if (up->preserve_host && req->host)
		evbuffer_add(out, req->host, req->host_len);
	else
		evbuffer_add(out, up->host_header, strlen(up->host_header));
	evbuffer_add(out, "\r\n", 2);

	bool trusted = cidr_set_contains(&fc->trusted_proxies, peer);
	bool have_proto = false, have_fhost = false;
	for (size_t i = 0; i < req->n_headers; i++) {
		const struct http1_header *f = &req->headers[i];
		if (http1_token_eq(f->name, f->name_len, "host") ||
		    http1_token_eq(f->name, f->name_len, "content-length") ||
		    http1_token_eq(f->name, f->name_len, "expect") ||
		    forward_is_hop_by_hop(req, f->name, f->name_len))
			continue;
		if (http1_token_eq(f->name, f->name_len, "x-forwarded-for"))
			continue; /* rebuilt below as one line */
		bool is_proto = http1_token_eq(f->name, f->name_len, "x-forwarded-proto");
		bool is_fhost = http1_token_eq(f->name, f->name_len, "x-forwarded-host");
		if (is_proto || is_fhost) {
			if (!trusted)
				continue;
			have_proto |= is_proto;
			have_fhost |= is_fhost;
		}
		evbuffer_add(out, f->name, f->name_len);
		evbuffer_add(out, ": ", 2);
		evbuffer_add(out, f->value, f->value_len);
		evbuffer_add(out, "\r\n", 2);
	}
	char host[64];
	addr_format_host(peer, host, sizeof(host));
	evbuffer_add(out, "X-Forwarded-For: ", 17);
	bool first = true;
	if (trusted) {
		for (size_t i = 0; i < req->n_headers; i++) {
			const struct http1_header *f = &req->headers[i];
			if (!http1_token_eq(f->name, f->name_len, "x-forwarded-for"))
				continue;
			if (!first)
				evbuffer_add(out, ", ", 2);
			evbuffer_add(out, f->value, f->value_len);
			first = false;
		}
	}
	if (!first)
		evbuffer_add(out, ", ", 2);
	evbuffer_add(out, host, strlen(host));
	evbuffer_add(out, "\r\n", 2);
	if (!have_proto)
		evbuffer_add_printf(out, "X-Forwarded-Proto: %s\r\n", client_tls ? "https" : "http");
	if (!have_fhost && req->host) {
		evbuffer_add(out, "X-Forwarded-Host: ", 18);
		evbuffer_add(out, req->host, req->host_len);
		evbuffer_add(out, "\r\n", 2);
	}
	if (req->framing == HTTP1_BODY_LENGTH)
		evbuffer_add_printf(out, "Content-Length: %llu\r\n",
				    (unsigned long long)req->content_length);
	else if (req->framing == HTTP1_BODY_CHUNKED)
		evbuffer_add(out, "Transfer-Encoding: chunked\r\n", 28);
	else if (req->has_content_length)
		evbuffer_add(out, "Content-Length: 0\r\n", 19); /* some servers want it on a POST */
	evbuffer_add(out, "\r\n", 2);
}

void forward_response_head(struct evbuffer *out, const struct http1_head *resp,
			   bool chunked, bool keep_alive, bool client_http10)
{
	evbuffer_add_printf(out, "HTTP/1.1 %d ", resp->status);
	evbuffer_add(out, resp->reason, resp->reason_len);
	evbuffer_add(out, "\r\n", 2);
	for (size_t i = 0; i < resp->n_headers; i++) {
		const struct http1_header *f = &resp->headers[i];
		if (forward_is_hop_by_hop(resp, f->name, f->name_len))
			continue;
		if (chunked && http1_token_eq(f->name, f->name_len, "content-length"))
			continue;
		evbuffer_add(out, f->name, f->name_len);
		evbuffer_add(out, ": ", 2);
		evbuffer_add(out, f->value, f->value_len);
		evbuffer_add(out, "\r\n", 2);
	}
	if (chunked)
		evbuffer_add(out, "Transfer-Encoding: chunked\r\n", 28);
	if (!keep_alive)
		evbuffer_add(out, "Connection: close\r\n", 19);
	else if (client_http10)
		evbuffer_add(out, "Connection: keep-alive\r\n", 24);
	evbuffer_add(out, "\r\n", 2);
}
