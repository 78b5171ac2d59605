/* response: responses cutover makes itself. */
#include "response.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

const char *response_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Unknown";
	}
}

const char *response_date(void)
{
	static _Thread_local time_t cached;
	static _Thread_local char buf[40];
	time_t now = time(NULL);
	if (now != cached) {
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
		cached = now;
	}
	return buf;
}

int response_write(struct evbuffer *out, const struct response *r)
{
	static const char cache_control[] = "Cache-Control: no-store\r\n";
	const char *extra = r->extra_headers ? r->extra_headers : "";
	bool first = r->extra_headers_first, content = !r->no_content;
	const char *type = r->content_type ? r->content_type : "text/plain; charset=utf-8";
	char length[48] = "";
	if (content)
		snprintf(length, sizeof length, "Content-Length: %zu\r\n", r->body_len);
	if (evbuffer_add_printf(out,
				"HTTP/1.%d %d %s\r\n"
				"Date: %s\r\n"
				"Server: cutover\r\n"
				"X-Cutover-Mode: %s\r\n"
				"%s%s"          /* extra_headers_first: Cache-Control, extra */
				"%s%s%s%s"      /* Content-Type, Content-Length */
				"%s%s%s"        /* else Cache-Control; Connection; else extra */
				"\r\n",
				r->http10 ? 0 : 1, r->status, response_reason(r->status),
				response_date(), r->mode ? r->mode : "-",
				first ? cache_control : "", first ? extra : "",
				content ? "Content-Type: " : "", content ? type : "",
				content ? "\r\n" : "", length,
				first ? "" : cache_control,
				r->keep_alive ? (r->http10 ? "Connection: keep-alive\r\n" : "")
					      : "Connection: close\r\n",
				first ? "" : extra) < 0)
		return -1;
	if (!r->head_only && r->body_len && evbuffer_add(out, r->body, r->body_len) < 0)
		return -1;
	return 0;
}
