/* response: responses cutover makes itself. */
#include "response.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

const char *response_reason(int status)
{
	/* RFC 9110 section 15 (and 6585, 8470, 7725): every status cutover or
	 * its admin API may send, so no answer ever says "Unknown". */
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 203: return "Non-Authoritative Information";
	case 204: return "No Content";
	case 205: return "Reset Content";
	case 206: return "Partial Content";
	case 300: return "Multiple Choices";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 402: return "Payment Required";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 407: return "Proxy Authentication Required";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 421: return "Misdirected Request";
	case 422: return "Unprocessable Content";
	case 423: return "Locked";
	case 424: return "Failed Dependency";
	case 425: return "Too Early";
	case 426: return "Upgrade Required";
	case 428: return "Precondition Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 451: return "Unavailable For Legal Reasons";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	case 507: return "Insufficient Storage";
	case 511: return "Network Authentication Required";
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
