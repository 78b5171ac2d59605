/* tests for proxy/tls.c: listen[].tls and upstreams.X.tls through
 * config_load_string(), on certificates made by the openssl command at test
 * time, then real handshakes between the contexts they build, in memory
 * over BIO pairs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "listener.h"
#include "tls.h"
#include "upstream.h"

/* ---- fixtures: certificates made once for the whole run ---- */

static char dir[64];

/* a.test (also valid for 127.0.0.1) and b.test (and *.b.test) are signed by
 * "Test CA"; expired is a.test with validity ending before it starts (x509
 * -req cannot backdate); other.key (EC) and rsa.key match no certificate;
 * encrypted.key is a.key under a passphrase. */
static const char make_certs[] =
	"cd '%s' && exec >openssl.log 2>&1 &&"
	" ec='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes' &&"
	" openssl req -x509 $ec -keyout ca.key -out ca.pem -days 30 -subj '/CN=Test CA' &&"
	" sign() { openssl req $ec -keyout $1.key -out $1.csr -subj /CN=$2 &&"
	"   printf 'subjectAltName=%%s\\n' \"$3\" >$1.ext &&"
	"   openssl x509 -req -in $1.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
	"     -extfile $1.ext -days $4 -out $1.pem; } &&"
	" sign a a.test DNS:a.test,IP:127.0.0.1 30 &&"
	" sign b b.test 'DNS:b.test,DNS:*.b.test' 30 &&"
	" sign expired a.test DNS:a.test -1 &&"
	" openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out other.key &&"
	" openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key &&"
	" openssl pkey -in a.key -aes256 -passout pass:secret -out encrypted.key &&"
	" echo 'this is not PEM' >garbage.pem";

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

static int group_setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/cutover-test-tls.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	char cmd[2048];
	snprintf(cmd, sizeof cmd, make_certs, dir);
	if (system(cmd) != 0) {
		fprintf(stderr, "making the test certificates failed: see %s/openssl.log\n", dir);
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	return nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* ---- loading configs ---- */

/* Everything a config needs besides the group under test, on lines 1-3. */
static const char prelude[] =
	"admin = { address = \"unix:/tmp/cutover-test/admin.sock\"; };\n"
	"state_file = \"/tmp/cutover-test/state.json\";\n"
	"journal_file = \"/tmp/cutover-test/journal.log\";\n";

static char *errs;  /* everything the last load printed */

/* Loads the prelude, HEAD, then BODY (a printf format, %1$s standing for
 * the certificates' directory), then TAIL. */
static struct config *vload(const char *head, const char *tail, const char *body, va_list ap)
{
	char *text, *formatted;
	assert_true(vasprintf(&formatted, body, ap) >= 0);
	assert_true(asprintf(&text, "%s%s%s%s", prelude, head, formatted, tail) >= 0);
	free(errs);
	size_t len;
	FILE *f = open_memstream(&errs, &len);
	assert_non_null(f);
	struct config *cfg = config_load_string(text, "tls.conf", f);
	fclose(f);
	free(formatted);
	free(text);
	return cfg;
}

/* listen[0], BODY starting on line 6. */
static struct config *load_listen(const char *body, ...) __attribute__((format(printf, 1, 2)));
static struct config *load_listen(const char *body, ...)
{
	va_list ap;
	va_start(ap, body);
	struct config *cfg = vload("upstreams = { old = { url = \"http://127.0.0.1:18081\"; }; "
				   "new = { url = \"http://127.0.0.1:18082\"; }; };\n"
				   "listen = ( { address = \"127.0.0.1:18443\";\n",
				   "} );\n", body, ap);
	va_end(ap);
	return cfg;
}

/* upstreams.old = https://HOST, BODY starting on line 7. */
static struct config *load_upstream(const char *host, const char *body, ...)
	__attribute__((format(printf, 2, 3)));
static struct config *load_upstream(const char *host, const char *body, ...)
{
	char head[256];
	snprintf(head, sizeof head, "listen = ( { address = \"127.0.0.1:18080\"; } );\n"
		 "upstreams = { new = { url = \"http://127.0.0.1:18082\"; };\n"
		 "  old = { url = \"https://%s\";\n", host);
	va_list ap;
	va_start(ap, body);
	struct config *cfg = vload(head, "}; };\n", body, ap);
	va_end(ap);
	return cfg;
}

/* The usual listener: a.test (default), then b.test. */
static struct config *listen_ab(void)
{
	struct config *cfg = load_listen("tls = { certificates = (\n"
					 "  { cert = \"%1$s/a.pem\"; key = \"%1$s/a.key\"; },\n"
					 "  { cert = \"%1$s/b.pem\"; key = \"%1$s/b.key\"; } );"
					 " };\n", dir);
	if (cfg == NULL || errs[0] != '\0')
		fail_msg("the a/b listener was refused:\n%s", errs);
	assert_non_null(cfg->listen[0].tls);
	return cfg;
}

/* Asserts that the load printed exactly WANT (a format like the bodies). */
static void assert_errs(const char *want, ...) __attribute__((format(printf, 1, 2)));
static void assert_errs(const char *want, ...)
{
	char *text;
	va_list ap;
	va_start(ap, want);
	assert_true(vasprintf(&text, want, ap) >= 0);
	va_end(ap);
	if (strcmp(errs, text) != 0)
		fail_msg("expected:\n%s\ngot:\n%s", text, errs);
	free(text);
}

static void assert_msg(const char *needle)
{
	if (strstr(errs, needle) == NULL)
		fail_msg("expected \"%s\" in:\n%s", needle, errs);
}

static void test_listen_good(void **state)
{
	(void)state;
	struct config *cfg = listen_ab();
	const struct tls_listen_conf *t = cfg->listen[0].tls;
	assert_int_equal(t->n_certs, 2);
	assert_non_null(t->ctx);
	assert_ptr_equal(t->ctx, t->sni_ctx[0]);
	assert_non_null(t->sni_ctx[1]);
	assert_int_equal(t->certs[1].line, 8);
	assert_non_null(strstr(t->certs[1].key, "/b.key"));
	assert_null(t->ciphers);  /* Mozilla intermediate */
	config_free(cfg);

	/* Freeing a struct that was never parsed, or twice, is harmless. */
	struct tls_listen_conf zero = { 0 };
	tls_listen_conf_free(&zero);
	tls_listen_conf_free(&zero);
}

static void test_listen_missing_file(void **state)
{
	(void)state;
	assert_null(load_listen("tls = { certificates = (\n"
				"  { cert = \"%1$s/a.pem\"; key = \"%1$s/a.key\"; },\n"
				"  { cert = \"%1$s/nope.pem\";\n"
				"    key = \"%1$s/b.key\"; } ); };\n", dir));
	assert_errs("tls.conf:8: listen.[0].tls.certificates.[1].cert \"%s/nope.pem\": "
		    "cannot load the certificate: No such file or directory\n", dir);

	assert_null(load_listen("tls = { certificates = ( { cert = \"%1$s/a.pem\";\n"
				"  key = \"%1$s/nope.key\"; } ); };\n", dir));
	assert_errs("tls.conf:7: listen.[0].tls.certificates.[0].key \"%s/nope.key\": "
		    "cannot load the private key: No such file or directory\n", dir);
}

static void test_listen_key_mismatch(void **state)
{
	(void)state;
	/* Same key type: OpenSSL compares them when the key is loaded. */
	assert_null(load_listen("tls = { certificates = ( { cert = \"%1$s/a.pem\";\n"
				"  key = \"%1$s/other.key\"; } ); };\n", dir));
	assert_errs("tls.conf:7: listen.[0].tls.certificates.[0].key \"%s/other.key\": "
		    "the private key does not match the certificate \"%s/a.pem\"\n", dir, dir);
	/* Another type: only SSL_CTX_check_private_key() sees it. */
	assert_null(load_listen("tls = { certificates = ( { cert = \"%1$s/a.pem\"; "
				"key = \"%1$s/rsa.key\"; } ); };\n", dir));
	assert_errs("tls.conf:6: listen.[0].tls.certificates.[0].key \"%s/rsa.key\": "
		    "the private key does not match the certificate \"%s/a.pem\"\n", dir, dir);
	assert_int_equal(ERR_peek_error(), 0);
}

static void test_listen_garbage(void **state)
{
	(void)state;
	assert_null(load_listen("tls = { certificates = ( { cert = \"%1$s/garbage.pem\"; "
				"key = \"%1$s/a.key\"; } ); };\n", dir));
	assert_errs("tls.conf:6: listen.[0].tls.certificates.[0].cert \"%s/garbage.pem\": "
		    "cannot load the certificate: no start line\n", dir);

	assert_null(load_listen("tls = { certificates = ( { cert = \"%1$s/a.pem\"; "
				"key = \"%1$s/garbage.pem\"; } ); };\n", dir));
	assert_errs("tls.conf:6: listen.[0].tls.certificates.[0].key \"%s/garbage.pem\": "
		    "cannot load the private key: no PEM private key in it\n", dir);

	assert_null(load_listen("tls = { certificates = ( { cert = \"%1$s\"; "
				"key = \"%1$s/a.key\"; } ); };\n", dir));
	assert_errs("tls.conf:6: listen.[0].tls.certificates.[0].cert \"%s\": "
		    "cannot load the certificate: Is a directory\n", dir);

	/* Refused at once, never a prompt on the terminal. */
	assert_null(load_listen("tls = { certificates = ( { cert = \"%1$s/a.pem\"; "
				"key = \"%1$s/encrypted.key\"; } ); };\n", dir));
	assert_errs("tls.conf:6: listen.[0].tls.certificates.[0].key \"%s/encrypted.key\": "
		    "cannot load the private key: it is encrypted and there is no one to type "
		    "the passphrase: store it unencrypted, readable only by cutover\n", dir);
	assert_int_equal(ERR_peek_error(), 0);
}

static void test_listen_ciphers(void **state)
{
	(void)state;
	/* Reported once, at its own line, though both contexts refuse it. */
	assert_null(load_listen("tls = { certificates = (\n"
				"  { cert = \"%1$s/a.pem\"; key = \"%1$s/a.key\"; },\n"
				"  { cert = \"%1$s/b.pem\"; key = \"%1$s/b.key\"; } );\n"
				"  ciphers = \"NOT-A-CIPHER\"; };\n", dir));
	assert_errs("tls.conf:9: listen.[0].tls.ciphers \"NOT-A-CIPHER\": no cipher match\n");

	assert_null(load_listen("tls = { certificates = ( { cert = \"%1$s/a.pem\"; "
				"key = \"%1$s/a.key\"; } );\n  ciphersuites = \"TLS_NOPE\";\n"
				"  ciphers = \"NOPE\"; };\n", dir));
	assert_errs("tls.conf:7: listen.[0].tls.ciphersuites \"TLS_NOPE\": no cipher match\n"
		    "tls.conf:8: listen.[0].tls.ciphers \"NOPE\": no cipher match\n");

	struct config *cfg = load_listen("tls = { certificates = ( { cert = \"%1$s/a.pem\"; "
					 "key = \"%1$s/a.key\"; } );\n"
					 "  ciphers = \"ECDHE-ECDSA-AES128-GCM-SHA256\";\n"
					 "  ciphersuites = \"TLS_AES_128_GCM_SHA256\"; };\n", dir);
	assert_non_null(cfg);
	assert_string_equal(cfg->listen[0].tls->ciphers, "ECDHE-ECDSA-AES128-GCM-SHA256");
	config_free(cfg);
}

static void test_listen_expired_warns(void **state)
{
	(void)state;
	struct config *cfg = load_listen("tls = { certificates = ( { cert = \"%1$s/expired.pem\"; "
					 "key = \"%1$s/expired.key\"; } ); };\n", dir);
	assert_non_null(cfg);
	assert_non_null(cfg->listen[0].tls->ctx);
	char want[256];
	snprintf(want, sizeof want, "tls.conf:6: warning: listen.[0].tls.certificates.[0].cert "
		 "\"%s/expired.pem\": the certificate expired on 20", dir);
	assert_msg(want);
	assert_null(strchr(strchr(errs, '\n') + 1, '\n'));
	config_free(cfg);
}

static void test_listen_shape(void **state)
{
	(void)state;
	assert_null(load_listen("tls = { ciphers = \"HIGH\"; };\n"));
	assert_msg("tls.conf:6: listen.[0].tls: missing required key 'certificates'");

	assert_null(load_listen("tls = { certificates = ( ); };\n"));
	assert_msg("tls.conf:6: listen.[0].tls.certificates: expected a non-empty list");

	assert_null(load_listen("tls = \"yes\";\n"));
	assert_msg("tls.conf:6: listen.[0].tls: expected a group");

	assert_null(load_listen("tls = { certificates = (\n"
				"  { cert = \"%1$s/a.pem\"; },\n"
				"  \"b.pem\",\n"
				"  { cert = \"%1$s/b.pem\"; key = \"%1$s/b.key\"; kee = 1; } );\n"
				"  protocols = \"TLSv1.3\"; };\n", dir));
	assert_errs("tls.conf:7: listen.[0].tls.certificates.[0]: missing required key 'key'\n"
		    "tls.conf:8: listen.[0].tls.certificates.[1]: expected a group "
		    "{ cert = \"...\"; key = \"...\"; }\n"
		    "tls.conf:9: unknown key 'kee' in listen.[0].tls.certificates.[2] "
		    "(did you mean 'key'?)\n"
		    "tls.conf:10: unknown key 'protocols' in listen.[0].tls\n");
}

static void test_upstream_settings(void **state)
{
	(void)state;
	struct config *cfg = load_upstream("old.example.org", "%s", "");
	assert_non_null(cfg);
	assert_string_equal(errs, "");
	const struct tls_upstream_conf *u = &cfg->upstream[UPSTREAM_OLD].tls;
	assert_true(u->verify);
	assert_string_equal(u->sni, "old.example.org");
	assert_false(u->sni_is_ip);
	assert_null(u->ca_file);
	assert_non_null(u->ctx);
	assert_non_null(u->sessions);
	config_free(cfg);

	const struct { const char *host, *body, *sni; bool ip; } cases[] = {
		{ "10.0.0.1", "tls = { ca_file = \"%1$s/ca.pem\"; };", "10.0.0.1", true },
		{ "[::1]:8443", "", "::1", true },
		{ "10.0.0.1", "tls = { sni = \"old.example.org\"; };", "old.example.org", false },
		{ "old.example.org", "tls = { sni = \"10.0.0.1\"; };", "10.0.0.1", true },
		{ "a.test", "tls = { cert = \"%1$s/a.pem\"; key = \"%1$s/a.key\";\n"
			    "  ciphers = \"ECDHE-ECDSA-AES128-GCM-SHA256\"; };", "a.test", false },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cfg = load_upstream(cases[i].host, cases[i].body, dir);
		if (cfg == NULL || errs[0] != '\0')
			fail_msg("case %zu:\n%s", i, errs);
		u = &cfg->upstream[UPSTREAM_OLD].tls;
		assert_string_equal(u->sni, cases[i].sni);
		assert_int_equal(u->sni_is_ip, cases[i].ip);
		config_free(cfg);
	}

	struct tls_upstream_conf zero = { 0 };
	tls_upstream_conf_free(&zero);
}

static void test_upstream_errors(void **state)
{
	(void)state;
	struct config *cfg = load_upstream("a.test", "tls = {\n  verify = false; };\n");
	assert_non_null(cfg);
	assert_errs("tls.conf:8: warning: upstreams.old.tls.verify = false: the upstream's "
		    "certificate is not checked; anyone on the path can impersonate it\n");
	assert_false(cfg->upstream[UPSTREAM_OLD].tls.verify);
	config_free(cfg);

	assert_null(load_upstream("a.test", "tls = { cert = \"%1$s/a.pem\"; };\n", dir));
	assert_errs("tls.conf:7: upstreams.old.tls: a client certificate needs both 'cert' "
		    "and 'key' (only 'cert' is set)\n");

	assert_null(load_upstream("a.test", "tls = {\n  ca_file = \"%1$s/nope.pem\"; };\n", dir));
	assert_errs("tls.conf:8: upstreams.old.tls.ca_file \"%s/nope.pem\": cannot load "
		    "the CA certificates: No such file or directory\n", dir);

	assert_null(load_upstream("a.test", "tls = {\n  ca_file = \"%1$s/garbage.pem\"; };\n",
				  dir));
	char want[256];
	snprintf(want, sizeof want, "tls.conf:8: upstreams.old.tls.ca_file \"%s/garbage.pem\": "
		 "cannot load the CA certificates: ", dir);
	assert_msg(want);

	assert_null(load_upstream("a.test", "tls = { cert = \"%1$s/a.pem\";\n"
				  "  key = \"%1$s/b.key\"; };\n", dir));
	assert_errs("tls.conf:8: upstreams.old.tls.key \"%s/b.key\": the private key does not "
		    "match the certificate \"%s/a.pem\"\n", dir, dir);

	/* Every error of the group at once. */
	assert_null(load_upstream("a.test", "tls = { verify = \"yes\";\n ciphers = \"NOPE\";\n"
				  " sin = \"x\"; };\n"));
	assert_errs("tls.conf:7: upstreams.old.tls.verify: expected a boolean (true or false), "
		    "not a string\n"
		    "tls.conf:8: upstreams.old.tls.ciphers \"NOPE\": no cipher match\n"
		    "tls.conf:9: unknown key 'sin' in upstreams.old.tls (did you mean 'sni'?)\n");
}

/* ---- handshakes in memory ---- */

enum side { BOTH_OK, CLIENT_FAILED, SERVER_FAILED };

static char why[256];

static bool wants_io(SSL *ssl, int rc)
{
	int e = SSL_get_error(ssl, rc);
	return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
}

/* Runs both ends until both are done or one fails; the failing side's
 * tls_failure_reason() goes into WHY before the other side runs again
 * (both share this thread's error queue). Frees nothing. */
static enum side handshake(SSL *client, SSL *server)
{
	BIO *cb, *sb;
	assert_int_equal(BIO_new_bio_pair(&cb, 0, &sb, 0), 1);
	SSL_set_bio(client, cb, cb);
	SSL_set_bio(server, sb, sb);
	SSL_set_connect_state(client);
	SSL_set_accept_state(server);
	why[0] = '\0';
	for (int i = 0; i < 20; i++) {
		int c = SSL_do_handshake(client);
		if (c <= 0 && !wants_io(client, c)) {
			tls_failure_reason(client, "client failed", why, sizeof why);
			return CLIENT_FAILED;
		}
		int s = SSL_do_handshake(server);
		if (s <= 0 && !wants_io(server, s)) {
			tls_failure_reason(server, "server failed", why, sizeof why);
			return SERVER_FAILED;
		}
		if (c == 1 && s == 1)
			return BOTH_OK;
	}
	fail_msg("the handshake did not finish");
	return CLIENT_FAILED;
}

/* One byte each way, so that the client reads the TLS 1.3 session tickets
 * the server sent after the handshake. */
static void exchange(SSL *client, SSL *server)
{
	char c = 0;
	assert_int_equal(SSL_write(client, "q", 1), 1);
	assert_int_equal(SSL_read(server, &c, 1), 1);
	assert_int_equal(SSL_write(server, "r", 1), 1);
	assert_int_equal(SSL_read(client, &c, 1), 1);
	assert_int_equal(c, 'r');
}

/* Handshakes a client of U with a server of L and returns who failed.
 * With PEER_NAME, the client must have got a certificate valid for that
 * name; *REUSED tells whether the session was resumed. */
static enum side connect_once(const struct tls_upstream_conf *u, const struct tls_listen_conf *l,
			      const char *peer_name, int *reused)
{
	SSL *client = tls_client_ssl(u), *server = tls_server_ssl(l);
	assert_non_null(client);
	assert_non_null(server);
	enum side rc = handshake(client, server);
	if (rc == BOTH_OK) {
		exchange(client, server);
		if (peer_name != NULL)
			assert_int_equal(X509_check_host(SSL_get0_peer_certificate(client),
							 peer_name, 0, 0, NULL), 1);
		if (reused != NULL)
			*reused = SSL_session_reused(client);
	}
	SSL_free(client);
	SSL_free(server);
	return rc;
}

/* An upstream config for https://HOST; BODY is the inside of its tls group,
 * %1$s standing for the directory. */
static struct config *upstream(const char *host, const char *body)
{
	char fmt[256];
	snprintf(fmt, sizeof fmt, "tls = { %s };\n", body);
	struct config *cfg = load_upstream(host, fmt, dir);
	if (cfg == NULL)
		fail_msg("the upstream was refused:\n%s", errs);
	return cfg;
}

#define UP(cfg) (&(cfg)->upstream[UPSTREAM_OLD].tls)

static void test_handshake_sni(void **state)
{
	(void)state;
	struct config *l = listen_ab();
	const struct { const char *host, *want; } cases[] = {
		{ "b.test", "b.test" },
		{ "www.b.test", "b.test" },      /* the wildcard SAN */
		{ "a.test", "a.test" },
		{ "unknown.test", "a.test" },    /* the default */
		{ "127.0.0.1", "a.test" },       /* no SNI sent: the default */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct config *u = upstream(cases[i].host, "verify = false;");
		assert_int_equal(connect_once(UP(u), l->listen[0].tls, cases[i].want, NULL),
				 BOTH_OK);
		config_free(u);
	}
	config_free(l);
}

static void test_handshake_alpn_and_summary(void **state)
{
	(void)state;
	struct config *l = listen_ab(), *u = upstream("a.test", "ca_file = \"%1$s/ca.pem\";");
	SSL *client = tls_client_ssl(UP(u)), *server = tls_server_ssl(l->listen[0].tls);
	assert_int_equal(handshake(client, server), BOTH_OK);
	const unsigned char *proto;
	unsigned len;
	SSL_get0_alpn_selected(client, &proto, &len);
	assert_int_equal(len, 8);
	assert_memory_equal(proto, "http/1.1", 8);
	char buf[256];
	tls_peer_summary(client, buf, sizeof buf);
	assert_non_null(strstr(buf, "CN=a.test, issuer CN=Test CA, valid until 20"));
	assert_non_null(strstr(buf, "Z, TLSv1.3"));
	SSL_free(client);
	SSL_free(server);

	/* A client offering ALPN without http/1.1 is refused. */
	client = tls_client_ssl(UP(u));
	server = tls_server_ssl(l->listen[0].tls);
	assert_int_equal(SSL_set_alpn_protos(client, (const unsigned char *)"\x02h2", 3), 0);
	assert_int_equal(handshake(client, server), SERVER_FAILED);
	assert_string_equal(why, "no application protocol");
	SSL_free(client);
	SSL_free(server);
	config_free(u);
	config_free(l);
}

/* Connects a client of an upstream https://HOST with tls { BODY } to L;
 * returns who failed, the reason being in WHY. */
static enum side try_upstream(const struct config *l, const char *host, const char *body)
{
	struct config *u = upstream(host, body);
	enum side rc = connect_once(UP(u), l->listen[0].tls, NULL, NULL);
	config_free(u);
	return rc;
}

static void test_handshake_verify(void **state)
{
	(void)state;
	struct config *l = listen_ab();
	const char *ca = "ca_file = \"%1$s/ca.pem\";";
	assert_int_equal(try_upstream(l, "b.test", ca), BOTH_OK);
	/* An IP literal is checked against the certificate's IP addresses. */
	assert_int_equal(try_upstream(l, "127.0.0.1", ca), BOTH_OK);
	assert_int_equal(try_upstream(l, "127.0.0.2", ca), CLIENT_FAILED);
	assert_string_equal(why, "certificate verify failed: IP address mismatch");

	assert_int_equal(try_upstream(l, "a.test",
				      "ca_file = \"%1$s/ca.pem\"; sni = \"wrong.test\";"),
			 CLIENT_FAILED);
	assert_string_equal(why, "certificate verify failed: hostname mismatch");

	/* The system store does not know the test CA. */
	assert_int_equal(try_upstream(l, "a.test", ""), CLIENT_FAILED);
	if (strncmp(why, "certificate verify failed: ", 27) != 0)
		fail_msg("unexpected reason: %s", why);
	config_free(l);

	l = load_listen("tls = { certificates = ( { cert = \"%1$s/expired.pem\"; "
			"key = \"%1$s/expired.key\"; } ); };\n", dir);
	assert_non_null(l);
	assert_int_equal(try_upstream(l, "a.test", ca), CLIENT_FAILED);
	assert_string_equal(why, "certificate verify failed: certificate has expired");
	config_free(l);
	assert_int_equal(ERR_peek_error(), 0);
}

static void test_handshake_resumption(void **state)
{
	(void)state;
	struct config *l = listen_ab(), *u = upstream("a.test", "ca_file = \"%1$s/ca.pem\";");
	const struct tls_listen_conf *server_conf = l->listen[0].tls;
	int reused = -1;
	assert_int_equal(connect_once(UP(u), server_conf, "a.test", &reused), BOTH_OK);
	assert_int_equal(reused, 0);
	/* Every connection was freed without a close_notify, as a pooled
	 * connection dropped on a timeout is: resumption must survive that. */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(connect_once(UP(u), server_conf, "a.test", &reused), BOTH_OK);
		assert_int_equal(reused, 1);
	}
	config_free(u);

	/* TLS 1.2 too, where the session comes with the handshake. */
	u = upstream("b.test", "ca_file = \"%1$s/ca.pem\";");
	assert_int_equal(SSL_CTX_set_max_proto_version(UP(u)->ctx, TLS1_2_VERSION), 1);
	assert_int_equal(connect_once(UP(u), server_conf, "b.test", &reused), BOTH_OK);
	assert_int_equal(reused, 0);
	assert_int_equal(connect_once(UP(u), server_conf, "b.test", &reused), BOTH_OK);
	assert_int_equal(reused, 1);

	/* A reload frees the configs while a connection still holds their
	 * contexts: the SNI switch and the session cache outlive them. */
	SSL *client = tls_client_ssl(UP(u)), *server = tls_server_ssl(server_conf);
	config_free(u);
	config_free(l);
	assert_int_equal(handshake(client, server), BOTH_OK);
	exchange(client, server);
	assert_int_equal(X509_check_host(SSL_get0_peer_certificate(client), "b.test", 0, 0, NULL),
			 1);
	SSL_free(client);
	SSL_free(server);
}

static void test_handshake_old_protocol(void **state)
{
	(void)state;
	struct config *l = listen_ab();
	/* A client that stops at TLS 1.1 (OpenSSL 3 itself only speaks it at
	 * security level 0). */
	SSL_CTX *old = SSL_CTX_new(TLS_client_method());
	assert_non_null(old);
	SSL_CTX_set_security_level(old, 0);
	assert_int_equal(SSL_CTX_set_min_proto_version(old, TLS1_VERSION), 1);
	assert_int_equal(SSL_CTX_set_max_proto_version(old, TLS1_1_VERSION), 1);
	SSL *client = SSL_new(old), *server = tls_server_ssl(l->listen[0].tls);
	assert_int_equal(handshake(client, server), SERVER_FAILED);
	assert_string_equal(why, "unsupported protocol");
	SSL_free(client);
	SSL_free(server);
	SSL_CTX_free(old);
	config_free(l);
}

static void test_failure_reason(void **state)
{
	(void)state;
	char buf[64];
	assert_string_equal(tls_failure_reason(NULL, "connection reset", buf, sizeof buf),
			    "connection reset");
	ERR_raise(ERR_LIB_SSL, SSL_R_WRONG_VERSION_NUMBER);
	assert_string_equal(tls_failure_reason(NULL, "x", buf, sizeof buf), "wrong version number");
	assert_int_equal(ERR_peek_error(), 0);
	char tiny[5];
	assert_string_equal(tls_failure_reason(NULL, "timeout after 5 s", tiny, sizeof tiny),
			    "time");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_listen_good),
		cmocka_unit_test(test_listen_missing_file),
		cmocka_unit_test(test_listen_key_mismatch),
		cmocka_unit_test(test_listen_garbage),
		cmocka_unit_test(test_listen_ciphers),
		cmocka_unit_test(test_listen_expired_warns),
		cmocka_unit_test(test_listen_shape),
		cmocka_unit_test(test_upstream_settings),
		cmocka_unit_test(test_upstream_errors),
		cmocka_unit_test(test_handshake_sni),
		cmocka_unit_test(test_handshake_alpn_and_summary),
		cmocka_unit_test(test_handshake_verify),
		cmocka_unit_test(test_handshake_resumption),
		cmocka_unit_test(test_handshake_old_protocol),
		cmocka_unit_test(test_failure_reason),
	};
	int failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
	free(errs);
	return failed;
}
