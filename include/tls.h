/* tls: OpenSSL contexts for the TLS front (listen[].tls) and for https
 * upstreams (upstreams.X.tls), built while the config is parsed so that a
 * bad certificate or key refuses the config (and a reload keeps the running
 * one) with the file and the reason. Contexts belong to their config: a
 * reload builds new ones, and open connections keep the old ones through
 * OpenSSL's own reference counts. */
#ifndef CUTOVER_TLS_H
#define CUTOVER_TLS_H

#include <libconfig.h>
#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

struct conf_reader;

struct tls_cert_conf {
	char *cert;                  /* PEM: the certificate, then its chain */
	char *key;                   /* PEM private key */
	int line;
};

/* listen[].tls = { certificates = ( { cert; key; }, ... ); ciphers;
 * ciphersuites; } */
struct tls_listen_conf {
	struct tls_cert_conf *certs; /* the first is the default (no or unknown SNI) */
	size_t n_certs;
	char *ciphers;               /* TLS 1.2 list; default Mozilla "intermediate" */
	char *ciphersuites;          /* TLS 1.3 list; default OpenSSL's */
	SSL_CTX *ctx;                /* built by the parse; picks the others by SNI */
	SSL_CTX **sni_ctx;           /* one per certificate (sni_ctx[0] == ctx) */
};

/* upstreams.X.tls = { verify; ca_file; sni; cert; key; ciphers; } */
struct tls_upstream_conf {
	bool verify;                 /* default true */
	char *ca_file;               /* default: the system store */
	char *sni;                   /* name sent and checked; default: the URL's host */
	bool sni_is_ip;              /* the name is an IP literal: checked, not sent */
	char *cert, *key;            /* optional client certificate */
	char *ciphers;
	SSL_CTX *ctx;
	struct tls_session_cache *sessions;  /* the last session, shared by workers */
};

/* Parses the "tls" group S of a listener (WHERE names it in messages, e.g.
 * "listen.[0].tls"), loads every certificate/key pair and builds the
 * contexts. Every problem is a conf_error() naming the file and OpenSSL's
 * reason (unreadable file, not PEM, key does not match the certificate,
 * expired certificate is only a warning). Returns 0 or -1. */
int tls_listen_conf_parse(struct conf_reader *r, const config_setting_t *s, const char *where,
			  struct tls_listen_conf *out);
void tls_listen_conf_free(struct tls_listen_conf *t);

/* Parses upstreams.X.tls (S may be NULL: all defaults) for an https
 * upstream whose URL host is HOST, and builds its client context. A
 * "verify = false" is a conf_warn(). Returns 0 or -1. */
int tls_upstream_conf_parse(struct conf_reader *r, const config_setting_t *s, const char *where,
			    const char *host, struct tls_upstream_conf *out);
void tls_upstream_conf_free(struct tls_upstream_conf *t);

/* A new server-side SSL for an accepted connection. NULL on failure. */
SSL *tls_server_ssl(const struct tls_listen_conf *t);

/* A new client-side SSL for an upstream connection: SNI set, the peer's
 * name (or IP) checked during the handshake when verify is on, and the last
 * session of this upstream offered for resumption. NULL on failure. */
SSL *tls_client_ssl(const struct tls_upstream_conf *t);

/* Why the handshake on SSL failed, for a log line, a 502 and preflight:
 * the verification result when there is one ("certificate verify failed:
 * certificate has expired", "...: hostname mismatch", "...: unable to get
 * local issuer certificate"), else the first OpenSSL error queued (the
 * queue is then cleared), else FALLBACK. Writes into BUF, returns BUF. */
const char *tls_failure_reason(SSL *ssl, const char *fallback, char *buf, size_t len);

/* After a successful client handshake: a one-line description of the
 * peer certificate for preflight ("CN=old.example.org, issuer CN=Test CA,
 * valid until 2027-01-01T00:00:00Z, TLSv1.3"). Writes into BUF. */
const char *tls_peer_summary(SSL *ssl, char *buf, size_t len);

#endif
