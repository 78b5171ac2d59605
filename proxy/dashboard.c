/* dashboard: hands the admin API the embedded status page and the headers
 * that must go with it. */
#include "dashboard.h"

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
