/* tls: OpenSSL contexts for TLS listeners and https upstreams, built while
 * the config is parsed (see include/tls.h). */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "conf.h"

/* Mozilla "intermediate" TLS 1.2 ciphers: forward secrecy and AEAD only,
 * still reached by the Android versions data-collection devices run. */
#define TLS_CIPHERS_INTERMEDIATE                                               \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"           \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"           \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"           \
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:"                 \
	"DHE-RSA-CHACHA20-POLY1305"
#define TLS_GROUPS "X25519:prime256v1:secp384r1"

/* The server session cache: bounded, and entries no older than a typical
 * client's own session lifetime. */
#define TLS_SESSION_CACHE_SIZE 20000
#define TLS_SESSION_TIMEOUT 300

/* Sessions are only resumed in the context that shares this id: every
 * listener context uses the same one, so a session survives an SNI switch
 * to a sibling context. */
static const unsigned char tls_session_id_context[] = "cutover";

/* The only protocol spoken, in ALPN wire format (length-prefixed). */
static const unsigned char tls_alpn_http11[] = "\x08http/1.1";

/* Data hung on contexts rather than on the conf structs: a reload frees the
 * conf while open connections still use its contexts, so what their
 * callbacks read must live exactly as long as the context (freed by
 * OpenSSL with its last reference). */
static int tls_sni_index = -1;       /* struct tls_sni, on a listener's default ctx */
static int tls_sessions_index = -1;  /* struct tls_session_cache, on an upstream ctx */
static pthread_once_t tls_index_once = PTHREAD_ONCE_INIT;

/* The listener's other contexts, each holding a reference, so that an SNI
 * switch never reaches a freed context. Only the default context holds
 * one: the others never point back, so there is no reference cycle. */
struct tls_sni {
	size_t n;
	SSL_CTX *alt[];
};

/* The newest session of an upstream, offered by its next connection.
 * Workers are threads sharing the context, hence the lock. */
struct tls_session_cache {
	pthread_mutex_t lock;
	SSL_SESSION *last;
};

static void tls_sni_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			 void *argp)
{
	(void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
	struct tls_sni *sni = ptr;
	if (sni == NULL)
		return;
	for (size_t i = 0; i < sni->n; i++)
		SSL_CTX_free(sni->alt[i]);
	free(sni);
}

static void tls_sessions_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			      void *argp)
{
	(void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
	struct tls_session_cache *c = ptr;
	if (c == NULL)
		return;
	SSL_SESSION_free(c->last);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static void tls_index_create(void)
{
	tls_sni_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, tls_sni_free);
	tls_sessions_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, tls_sessions_free);
}

/* ---- messages ---- */

/* The first error OpenSSL queued, which is the cause (later ones are its
 * callers' wrappers such as "PEM lib"); the queue is left empty. NULL if
 * there was none. */
static const char *tls_queued_reason(char *buf, size_t len)
{
	unsigned long e = ERR_peek_error();
	if (e == 0)
		return NULL;
	const char *reason = ERR_reason_error_string(e);
	if (reason != NULL)
		snprintf(buf, len, "%s", reason);
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

static const char *tls_reason(char *buf, size_t len)
{
	const char *reason = tls_queued_reason(buf, len);
	return reason ? reason : "unknown OpenSSL error";
}

/* RFC 3339, UTC. */
static const char *tls_time_text(const ASN1_TIME *t, char *buf, size_t len)
{
	struct tm tm;
	if (t == NULL || !ASN1_TIME_to_tm(t, &tm) ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "(unreadable date)");
	return buf;
}

/* ---- loading files ---- */

/* OpenSSL reports an unreadable file as "system lib", and a directory as
 * "no start line": opening it first gives the operator errno's reason. */
static bool tls_file_readable(struct conf_reader *r, const config_setting_t *at,
			      const char *where, const char *path, const char *what)
{
	FILE *f = fopen(path, "r");
	struct stat st;
	int err = f == NULL ? errno : fstat(fileno(f), &st) < 0 ? errno
				   : S_ISDIR(st.st_mode) ? EISDIR : 0;
	if (f != NULL)
		fclose(f);
	if (err != 0)
		conf_error(r, at, "%s \"%s\": cannot load the %s: %s", where, path, what,
			   strerror(err));
	return err == 0;
}

/* A key file that asks for a passphrase sets the bool at USERDATA: a
 * daemon (and a reload) has no one to ask, and OpenSSL's default would
 * prompt on the terminal. */
static int tls_no_passphrase_cb(char *buf, int size, int rwflag, void *userdata)
{
	(void)buf; (void)size; (void)rwflag;
	if (userdata != NULL)
		*(bool *)userdata = true;
	return -1;
}

/* Why the private key did not load, in the operator's terms where
 * OpenSSL's are obscure; the queue is left empty. */
static const char *tls_key_reason(bool asked_passphrase, char *buf, size_t len)
{
	unsigned long e = ERR_peek_error();
	const char *reason = NULL;
	if (asked_passphrase)
		reason = "it is encrypted and there is no one to type the passphrase: "
			 "store it unencrypted, readable only by cutover";
	else if (ERR_GET_LIB(e) == ERR_LIB_OSSL_DECODER && ERR_GET_REASON(e) == ERR_R_UNSUPPORTED)
		reason = "no PEM private key in it";  /* OpenSSL 3 says "unsupported" */
	if (reason == NULL)
		return tls_reason(buf, len);
	ERR_clear_error();
	snprintf(buf, len, "%s", reason);
	return buf;
}

/* An expired certificate still serves (a reload must not fail because of
 * the calendar), but the operator must hear about it. */
static void tls_check_validity(struct conf_reader *r, const config_setting_t *at,
			       const char *where, const char *path, SSL_CTX *ctx)
{
	X509 *x = SSL_CTX_get0_certificate(ctx);
	char when[32];
	if (x == NULL)
		return;
	if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0)
		conf_warn(r, at, "%s \"%s\": the certificate expired on %s", where, path,
			  tls_time_text(X509_get0_notAfter(x), when, sizeof when));
	else if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0)
		conf_warn(r, at, "%s \"%s\": the certificate is not valid before %s", where, path,
			  tls_time_text(X509_get0_notBefore(x), when, sizeof when));
}

/* Loads CERT (then its chain) and KEY into CTX. WHERE names the group
 * holding them, CERT_AT and KEY_AT their settings. */
static int tls_load_pair(struct conf_reader *r, SSL_CTX *ctx, const char *where,
			 const config_setting_t *cert_at, const char *cert,
			 const config_setting_t *key_at, const char *key)
{
	char cert_where[256], key_where[256], why[256];
	snprintf(cert_where, sizeof cert_where, "%s.cert", where);
	snprintf(key_where, sizeof key_where, "%s.key", where);

	ERR_clear_error();
	if (!tls_file_readable(r, cert_at, cert_where, cert, "certificate"))
		return -1;
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		conf_error(r, cert_at, "%s \"%s\": cannot load the certificate: %s", cert_where,
			   cert, tls_reason(why, sizeof why));
		return -1;
	}
	tls_check_validity(r, cert_at, cert_where, cert, ctx);

	if (!tls_file_readable(r, key_at, key_where, key, "private key"))
		return -1;
	bool asked_passphrase = false;
	SSL_CTX_set_default_passwd_cb(ctx, tls_no_passphrase_cb);
	SSL_CTX_set_default_passwd_cb_userdata(ctx, &asked_passphrase);
	int loaded = SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM);
	SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
	/* OpenSSL compares a key with the certificate of its type as it loads
	 * it; SSL_CTX_check_private_key() catches a key of another type. */
	unsigned long e = ERR_peek_error();
	bool mismatch = loaded == 1 ? SSL_CTX_check_private_key(ctx) != 1
				    : ERR_GET_LIB(e) == ERR_LIB_X509 &&
				      ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH;
	if (mismatch) {
		ERR_clear_error();
		conf_error(r, key_at,
			   "%s \"%s\": the private key does not match the certificate \"%s\"",
			   key_where, key, cert);
		return -1;
	}
	if (loaded != 1) {
		conf_error(r, key_at, "%s \"%s\": cannot load the private key: %s", key_where, key,
			   tls_key_reason(asked_passphrase, why, sizeof why));
		return -1;
	}
	return 0;
}

/* Applies the cipher lists of the tls group S (NULL = OpenSSL's default),
 * each bad one reported at its setting when REPORT. */
static int tls_set_ciphers(struct conf_reader *r, const config_setting_t *s, const char *where,
			   SSL_CTX *ctx, const char *ciphers, const char *suites, bool report)
{
	char why[256];
	int status = 0;
	ERR_clear_error();
	if (ciphers != NULL && SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
		tls_reason(why, sizeof why);
		if (report)
			conf_error(r, config_setting_get_member(s, "ciphers"),
				   "%s.ciphers \"%s\": %s", where, ciphers, why);
		status = -1;
	}
	if (suites != NULL && SSL_CTX_set_ciphersuites(ctx, suites) != 1) {
		tls_reason(why, sizeof why);
		if (report)
			conf_error(r, config_setting_get_member(s, "ciphersuites"),
				   "%s.ciphersuites \"%s\": %s", where, suites, why);
		status = -1;
	}
	return status;
}

/* ---- listeners ---- */

/* The client chooses among our protocols; one that offers ALPN without
 * http/1.1 gets a fatal alert (RFC 7301 3.2) rather than a connection that
 * would speak a protocol it did not ask for: that strictness is also the
 * mitigation for cross-protocol attacks (ALPACA), as nginx does. */
static int tls_alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
			      const unsigned char *in, unsigned int inlen, void *arg)
{
	(void)ssl; (void)arg;
	unsigned char *chosen;
	if (SSL_select_next_proto(&chosen, outlen, tls_alpn_http11, sizeof tls_alpn_http11 - 1,
				  in, inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	*out = chosen;
	return SSL_TLSEXT_ERR_OK;
}

static bool tls_ctx_serves(SSL_CTX *ctx, const char *name)
{
	X509 *x = SSL_CTX_get0_certificate(ctx);
	return x != NULL &&
	       X509_check_host(x, name, 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL) == 1;
}

/* Picks the first certificate, in config order, valid for the requested
 * name (SAN or CN, wildcards included). OpenSSL only calls the callback of
 * the context the SSL was made from, the default one, which holds the
 * others. An unknown or absent name keeps the default. */
static int tls_servername_cb(SSL *ssl, int *alert, void *arg)
{
	(void)alert; (void)arg;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	SSL_CTX *ctx = SSL_get_SSL_CTX(ssl);
	const struct tls_sni *sni = SSL_CTX_get_ex_data(ctx, tls_sni_index);
	if (name == NULL || sni == NULL || tls_ctx_serves(ctx, name))
		return SSL_TLSEXT_ERR_OK;
	for (size_t i = 0; i < sni->n; i++) {
		if (tls_ctx_serves(sni->alt[i], name)) {
			SSL_set_SSL_CTX(ssl, sni->alt[i]);
			break;
		}
	}
	return SSL_TLSEXT_ERR_OK;
}

/* Both sides: give back the ~34 KiB of record buffers while a connection
 * is idle, which is most of the time for a fleet of devices on keep-alive.
 * No read-ahead (one read per record instead of two): bytes OpenSSL reads
 * ahead during a handshake sit where libevent 2.1 does not look, and the
 * connection stalls. */
static void tls_ctx_tune(SSL_CTX *ctx)
{
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
}

static SSL_CTX *tls_server_ctx_new(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL)
		return NULL;
	/* No max version: TLS 1.3 is welcome. */
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) != 1 ||
	    SSL_CTX_set_dh_auto(ctx, 1) != 1 ||
	    SSL_CTX_set_session_id_context(ctx, tls_session_id_context,
					   sizeof tls_session_id_context - 1) != 1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	/* Client-initiated renegotiation costs us a handshake per request
	 * and brings nothing to HTTP/1.1. Our cipher order wins (auditors such
	 * as testssl rate a client-chosen order HIGH), except that a client
	 * that prefers ChaCha20 (no AES hardware) still gets it. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
				 SSL_OP_PRIORITIZE_CHACHA);
	tls_ctx_tune(ctx);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_sess_set_cache_size(ctx, TLS_SESSION_CACHE_SIZE);
	SSL_CTX_set_timeout(ctx, TLS_SESSION_TIMEOUT);
	/* After an SNI switch the ALPN callback of the new context is the one
	 * called: every context has it. */
	SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_select_cb, NULL);
	return ctx;
}

/* E, entry I of the certificates of the tls group S: its strings, then
 * its context. */
static int tls_listen_pair_parse(struct conf_reader *r, const config_setting_t *s,
				 const config_setting_t *e, const char *where,
				 struct tls_listen_conf *out, size_t i, bool *ciphers_checked)
{
	static const char *const keys[] = { "cert", "key", NULL };
	struct tls_cert_conf *c = &out->certs[i];
	char at[192], why[256];
	snprintf(at, sizeof at, "%s.certificates.[%zu]", where, i);
	if (!config_setting_is_group(e)) {
		conf_error(r, e, "%s: expected a group { cert = \"...\"; key = \"...\"; }", at);
		return -1;
	}
	int status = conf_check_keys(r, e, keys) ? 0 : -1;
	c->line = config_setting_source_line(e);
	for (size_t k = 0; keys[k] != NULL; k++) {
		int rc = conf_get_string(r, e, keys[k], k == 0 ? &c->cert : &c->key);
		if (rc == 0)
			conf_error(r, e, "%s: missing required key '%s'", at, keys[k]);
		if (rc <= 0)
			status = -1;
	}
	if (c->cert == NULL || c->key == NULL)
		return -1;

	SSL_CTX *ctx = tls_server_ctx_new();
	if (ctx == NULL) {
		conf_error(r, e, "%s: cannot create a TLS context: %s", at,
			   tls_reason(why, sizeof why));
		return -1;
	}
	out->sni_ctx[i] = ctx;
	/* The same lists fail on every context: say it once. */
	const char *ciphers = out->ciphers ? out->ciphers : TLS_CIPHERS_INTERMEDIATE;
	if (tls_set_ciphers(r, s, where, ctx, ciphers, out->ciphersuites, !*ciphers_checked) < 0)
		status = -1;
	*ciphers_checked = true;
	if (tls_load_pair(r, ctx, at, config_setting_get_member(e, "cert"), c->cert,
			  config_setting_get_member(e, "key"), c->key) < 0)
		status = -1;
	return status;
}

/* Makes the default context the SNI switch: it takes a reference to each
 * other context and answers the servername extension. */
static int tls_listen_sni_attach(struct tls_listen_conf *t)
{
	SSL_CTX *def = t->sni_ctx[0];
	size_t n = t->n_certs - 1;
	struct tls_sni *sni = calloc(1, sizeof *sni + n * sizeof sni->alt[0]);
	if (sni == NULL)
		return -1;
	if (SSL_CTX_set_ex_data(def, tls_sni_index, sni) != 1) {
		free(sni);
		return -1;
	}
	/* Filled only once attached: from now on the default context frees
	 * it, and the references it took, with itself. */
	for (size_t i = 0; i < n; i++) {
		SSL_CTX_up_ref(t->sni_ctx[i + 1]);
		sni->alt[sni->n++] = t->sni_ctx[i + 1];
	}
	SSL_CTX_set_tlsext_servername_callback(def, tls_servername_cb);
	t->ctx = def;
	return 0;
}

int tls_listen_conf_parse(struct conf_reader *r, const config_setting_t *s, const char *where,
			  struct tls_listen_conf *out)
{
	static const char *const keys[] = { "certificates", "ciphers", "ciphersuites", NULL };
	memset(out, 0, sizeof *out);
	pthread_once(&tls_index_once, tls_index_create);
	int status = conf_check_keys(r, s, keys) ? 0 : -1;
	if (!config_setting_is_group(s))
		return -1;
	/* Each read on its own, so that every bad value is reported. */
	if (conf_get_string(r, s, "ciphers", &out->ciphers) < 0)
		status = -1;
	if (conf_get_string(r, s, "ciphersuites", &out->ciphersuites) < 0)
		status = -1;

	const config_setting_t *list = config_setting_get_member(s, "certificates");
	if (list == NULL) {
		conf_error(r, s, "%s: missing required key 'certificates', e.g. certificates = "
			   "( { cert = \"site.pem\"; key = \"site.key\"; } );", where);
		return -1;
	}
	if ((!config_setting_is_list(list) && !config_setting_is_array(list)) ||
	    config_setting_length(list) == 0) {
		conf_error(r, list, "%s.certificates: expected a non-empty list "
			   "( { cert = \"...\"; key = \"...\"; }, ... )", where);
		return -1;
	}
	size_t n = (size_t)config_setting_length(list);
	out->certs = calloc(n, sizeof *out->certs);
	out->sni_ctx = calloc(n, sizeof *out->sni_ctx);
	if (out->certs == NULL || out->sni_ctx == NULL) {
		conf_error(r, s, "%s: out of memory", where);
		return -1;
	}
	out->n_certs = n;
	bool ciphers_checked = false;
	for (size_t i = 0; i < n; i++)
		if (tls_listen_pair_parse(r, s, config_setting_get_elem(list, (unsigned)i), where,
					  out, i, &ciphers_checked) < 0)
			status = -1;
	if (status == 0 && tls_listen_sni_attach(out) < 0) {
		conf_error(r, s, "%s: out of memory", where);
		status = -1;
	}
	return status;
}

void tls_listen_conf_free(struct tls_listen_conf *t)
{
	/* t->ctx is sni_ctx[0], not a reference of its own. */
	for (size_t i = 0; i < t->n_certs; i++) {
		free(t->certs[i].cert);
		free(t->certs[i].key);
		if (t->sni_ctx != NULL)
			SSL_CTX_free(t->sni_ctx[i]);
	}
	free(t->certs);
	free(t->sni_ctx);
	free(t->ciphers);
	free(t->ciphersuites);
	memset(t, 0, sizeof *t);
}

SSL *tls_server_ssl(const struct tls_listen_conf *t)
{
	return SSL_new(t->ctx);
}

/* ---- upstreams ---- */

/* OpenSSL marks a session not resumable when an SSL using it is freed
 * without a close_notify or ends with a fatal alert: a pooled connection
 * dropped by a timeout would spoil the session its siblings resume. So the
 * cache keeps its own copy, never the object an SSL holds, and returns 0
 * (OpenSSL keeps its reference). */
static int tls_new_session_cb(SSL *ssl, SSL_SESSION *session)
{
	struct tls_session_cache *c = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tls_sessions_index);
	SSL_SESSION *copy = c != NULL ? SSL_SESSION_dup(session) : NULL;
	if (copy == NULL)
		return 0;
	pthread_mutex_lock(&c->lock);
	SSL_SESSION *old = c->last;
	c->last = copy;
	pthread_mutex_unlock(&c->lock);
	SSL_SESSION_free(old);
	return 0;
}

/* Pooled connections to one upstream resume its last session: the cache
 * is ours (one entry, no lookup by id, which clients never do anyway). */
static int tls_sessions_attach(struct tls_upstream_conf *t)
{
	struct tls_session_cache *c = calloc(1, sizeof *c);
	if (c == NULL)
		return -1;
	pthread_mutex_init(&c->lock, NULL);
	if (SSL_CTX_set_ex_data(t->ctx, tls_sessions_index, c) != 1) {
		pthread_mutex_destroy(&c->lock);
		free(c);
		return -1;
	}
	t->sessions = c;
	SSL_CTX_set_session_cache_mode(t->ctx,
				       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(t->ctx, tls_new_session_cb);
	return 0;
}

/* Everything of the client context that does not depend on files. */
static SSL_CTX *tls_client_ctx_new(const struct tls_upstream_conf *t)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL)
		return NULL;
	/* SSL_CTX_set_alpn_protos() returns 0 on success. */
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_alpn_protos(ctx, tls_alpn_http11, sizeof tls_alpn_http11 - 1) != 0) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, t->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	tls_ctx_tune(ctx);
	return ctx;
}

/* The keys of upstreams.X.tls, checked and read into OUT. */
static int tls_upstream_settings(struct conf_reader *r, const config_setting_t *s,
				 const char *where, struct tls_upstream_conf *out)
{
	static const char *const keys[] = { "verify", "ca_file", "sni", "cert", "key", "ciphers",
					    NULL };
	/* In the order of KEYS after "verify". */
	char **strings[] = { &out->ca_file, &out->sni, &out->cert, &out->key, &out->ciphers };
	int status = conf_check_keys(r, s, keys) ? 0 : -1;
	if (conf_get_bool(r, s, "verify", &out->verify) < 0)
		status = -1;
	for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
		if (conf_get_string(r, s, keys[i + 1], strings[i]) < 0)
			status = -1;
	if ((out->cert == NULL) != (out->key == NULL)) {
		conf_error(r, s, "%s: a client certificate needs both 'cert' and 'key' "
			   "(only '%s' is set)", where, out->cert ? "cert" : "key");
		status = -1;
	}
	if (!out->verify)
		conf_warn(r, config_setting_get_member(s, "verify"),
			  "%s.verify = false: the upstream's certificate is not checked; "
			  "anyone on the path can impersonate it", where);
	return status;
}

int tls_upstream_conf_parse(struct conf_reader *r, const config_setting_t *s, const char *where,
			    const char *host, struct tls_upstream_conf *out)
{
	memset(out, 0, sizeof *out);
	out->verify = true;
	pthread_once(&tls_index_once, tls_index_create);
	int status = s != NULL ? tls_upstream_settings(r, s, where, out) : 0;
	/* No host means the URL was refused, and that error is reported. */
	if (out->sni == NULL && host == NULL)
		return -1;
	if (out->sni == NULL && (out->sni = strdup(host)) == NULL) {
		conf_error(r, s, "%s: out of memory", where);
		return -1;
	}
	struct in6_addr ip;
	out->sni_is_ip = inet_pton(AF_INET, out->sni, &ip) == 1 ||
			 inet_pton(AF_INET6, out->sni, &ip) == 1;

	char why[256];
	out->ctx = tls_client_ctx_new(out);
	if (out->ctx == NULL || tls_sessions_attach(out) < 0) {
		conf_error(r, s, "%s: cannot create a TLS context: %s", where,
			   tls_reason(why, sizeof why));
		return -1;
	}
	if (out->ca_file != NULL) {
		const config_setting_t *at = config_setting_get_member(s, "ca_file");
		char at_where[192];
		snprintf(at_where, sizeof at_where, "%s.ca_file", where);
		ERR_clear_error();
		if (!tls_file_readable(r, at, at_where, out->ca_file, "CA certificates"))
			status = -1;
		else if (SSL_CTX_load_verify_locations(out->ctx, out->ca_file, NULL) != 1) {
			conf_error(r, at, "%s \"%s\": cannot load the CA certificates: %s",
				   at_where, out->ca_file, tls_reason(why, sizeof why));
			status = -1;
		}
	} else if (SSL_CTX_set_default_verify_paths(out->ctx) != 1) {
		conf_error(r, s, "%s: cannot load the system's CA certificates: %s", where,
			   tls_reason(why, sizeof why));
		status = -1;
	}
	if (out->cert != NULL && out->key != NULL &&
	    tls_load_pair(r, out->ctx, where, config_setting_get_member(s, "cert"), out->cert,
			  config_setting_get_member(s, "key"), out->key) < 0)
		status = -1;
	if (tls_set_ciphers(r, s, where, out->ctx, out->ciphers, NULL, true) < 0)
		status = -1;
	return status;
}

void tls_upstream_conf_free(struct tls_upstream_conf *t)
{
	/* The session cache belongs to the context and goes with its last
	 * reference: a pooled connection may still be handed a session. */
	SSL_CTX_free(t->ctx);
	free(t->ca_file);
	free(t->sni);
	free(t->cert);
	free(t->key);
	free(t->ciphers);
	memset(t, 0, sizeof *t);
}

SSL *tls_client_ssl(const struct tls_upstream_conf *t)
{
	SSL *ssl = SSL_new(t->ctx);
	if (ssl == NULL)
		return NULL;
	/* RFC 6066: an IP literal is never sent as SNI; it is checked against
	 * the certificate's IP addresses instead. */
	bool ok = t->sni_is_ip || SSL_set_tlsext_host_name(ssl, t->sni) == 1;
	if (ok && t->verify) {
		if (t->sni_is_ip) {
			ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), t->sni) == 1;
		} else {
			SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			ok = SSL_set1_host(ssl, t->sni) == 1;
		}
	}
	if (ok) {
		/* A copy, for the reason given at tls_new_session_cb(). Without
		 * one (out of memory) the handshake is simply a full one. */
		pthread_mutex_lock(&t->sessions->lock);
		SSL_SESSION *copy = t->sessions->last ? SSL_SESSION_dup(t->sessions->last) : NULL;
		pthread_mutex_unlock(&t->sessions->lock);
		if (copy != NULL) {
			ok = SSL_set_session(ssl, copy) == 1;
			SSL_SESSION_free(copy);
		}
	}
	if (!ok) {
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}

/* ---- diagnostics ---- */

const char *tls_failure_reason(SSL *ssl, const char *fallback, char *buf, size_t len)
{
	if (len == 0)
		return buf;
	/* Without SSL_VERIFY_PEER a verification error did not stop the
	 * handshake, so it is not the reason it failed. */
	long verify = X509_V_OK;
	if (ssl != NULL && (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER))
		verify = SSL_get_verify_result(ssl);
	if (verify != X509_V_OK) {
		snprintf(buf, len, "certificate verify failed: %s",
			 X509_verify_cert_error_string(verify));
		ERR_clear_error();
	} else if (tls_queued_reason(buf, len) == NULL) {
		snprintf(buf, len, "%s", fallback ? fallback : "unknown error");
	}
	return buf;
}

/* "CN=name", else the whole name ("/O=.../OU=..."). */
static const char *tls_name_text(const X509_NAME *name, char *buf, size_t len)
{
	char cn[256];
	if (X509_NAME_get_text_by_NID(name, NID_commonName, cn, sizeof cn) >= 0)
		snprintf(buf, len, "CN=%s", cn);
	else
		X509_NAME_oneline(name, buf, (int)len);
	return buf;
}

const char *tls_peer_summary(SSL *ssl, char *buf, size_t len)
{
	X509 *x = SSL_get0_peer_certificate(ssl);
	if (x == NULL) {
		snprintf(buf, len, "no certificate, %s", SSL_get_version(ssl));
		return buf;
	}
	char subject[300], issuer[300], until[32];
	snprintf(buf, len, "%s, issuer %s, valid until %s, %s",
		 tls_name_text(X509_get_subject_name(x), subject, sizeof subject),
		 tls_name_text(X509_get_issuer_name(x), issuer, sizeof issuer),
		 tls_time_text(X509_get0_notAfter(x), until, sizeof until), SSL_get_version(ssl));
	return buf;
}
