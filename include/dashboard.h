/* dashboard: the status page the admin API serves on GET / (read-only; it
 * fetches /status itself). The page is proxy/dashboard.html, embedded at
 * build time by scripts/embed-dashboard.py, which also computes the
 * Content-Security-Policy that lets exactly its inline style and script run. */
#ifndef CUTOVER_DASHBOARD_H
#define CUTOVER_DASHBOARD_H

#include <stddef.h>

/* The page's bytes (UTF-8 HTML, not NUL-terminated) and their length. */
const unsigned char *dashboard_page(size_t *len);

/* The header lines to send with the page, each ending in CRLF: the CSP,
 * nosniff, no referrer, no framing. */
const char *dashboard_headers(void);

#endif
