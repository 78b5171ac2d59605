/* dashboard: hands the admin API the embedded status page and the headers
 * that must go with it. */
#include "dashboard.h"

#include <string.h>
#include <strings.h>

/* Generated in the build directory by scripts/embed-dashboard.py from
 * proxy/dashboard.html: dashboard_html[] and DASHBOARD_CSP. */
#include "dashboard_page.h"

/* The policy lets only the page's own style and script run and only its own
 * origin be fetched; the rest keeps it from being sniffed, framed or
 * leaking its address. */
static const char headers[] =
	"Content-Security-Policy: " DASHBOARD_CSP "\r\n"
	"X-Content-Type-Options: nosniff\r\n"
	"Referrer-Policy: no-referrer\r\n"
	"X-Frame-Options: DENY\r\n";

const unsigned char *dashboard_page(size_t *len)
{
	*len = sizeof(dashboard_html);
	return dashboard_html;
}

const char *dashboard_headers(void)
{
	return headers;
}

/* "localhost", a dotted quad 127.x.x.x or "[::1]", then ":PORT" or nothing. */
static bool loopback_host(const char *h, size_t len)
{
	size_t name = len;
	while (name > 0 && h[name - 1] >= '0' && h[name - 1] <= '9')
		name--;
	if (name > 0 && name < len && h[name - 1] == ':' && len - name <= 5)
		name--;                 /* a port */
	else
		name = len;
	if ((name == 9 && strncasecmp(h, "localhost", 9) == 0) ||
	    (name == 5 && memcmp(h, "[::1]", 5) == 0))
		return true;
	if (name < 7 || name > 15 || memcmp(h, "127.", 4) != 0)
		return false;
	int dots = 0, digits = 0;
	for (size_t i = 4; i < name; i++) {
		if (h[i] == '.') {
			if (!digits || ++dots > 2)
				return false;
			digits = 0;
		} else if (h[i] >= '0' && h[i] <= '9' && digits < 3) {
			digits++;
		} else {
			return false;
		}
	}
	return dots == 2 && digits;
}

bool dashboard_browser_allowed(const char *host, size_t host_len, const char *origin,
			       size_t origin_len)
{
	if (!host || !loopback_host(host, host_len))
		return false;
	if (!origin)
		return true;
	return origin_len == host_len + 7 && strncasecmp(origin, "http://", 7) == 0 &&
	       strncasecmp(origin + 7, host, host_len) == 0;
}
