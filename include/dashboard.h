/* dashboard: the status page the admin API serves on GET / (read-only; it
 * fetches /status itself). The page is proxy/dashboard.html, embedded at
 * build time by scripts/embed-dashboard.py, which also computes the
 * Content-Security-Policy that lets exactly its inline style and script run. */
#ifndef CUTOVER_DASHBOARD_H
#define CUTOVER_DASHBOARD_H

#include <stdbool.h>
#include <stddef.h>

/* The page's bytes (UTF-8 HTML, not NUL-terminated) and their length. */
const unsigned char *dashboard_page(size_t *len);

/* The header lines to send with the page, each ending in CRLF: the CSP,
 * nosniff, no referrer, no framing. */
const char *dashboard_headers(void);

/* Whether a request a browser made (it carries Origin or Sec-Fetch-Site)
 * may reach the admin API: HOST (the Host header, NULL if none) must be
 * loopback (localhost, 127.x.x.x or [::1], any port), against DNS
 * rebinding, and ORIGIN (NULL if none) must be http:// that same host,
 * against cross-site requests: a tunnel to the unix socket carries no
 * token, so a web page the operator visits could otherwise act. Clients
 * that are not browsers send neither header and are not concerned. */
bool dashboard_browser_allowed(const char *host, size_t host_len, const char *origin,
			       size_t origin_len);

#endif
