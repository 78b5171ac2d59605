#!/usr/bin/env bash
# certs/mkcerts.sh [--force] [OUTDIR]: a development CA and a server
# certificate for cutover's TLS front (`make run`, the TLS audit, the bench),
# made with the openssl CLI only (OpenSSL 3.0 or later).
#
#   OUTDIR/ca.pem       development CA, EC P-256, 10 years, self-signed
#   OUTDIR/ca.key       its key (0600)
#   OUTDIR/server.pem   server certificate, leaf only (the CA is not in it:
#                       clients trust ca.pem; SSL_CTX_use_certificate_chain_file
#                       takes a lone leaf), EC P-256, 825 days, signed by the CA,
#                       SAN DNS:localhost, DNS:cutover.test, IP:127.0.0.1, IP:::1,
#                       EKU serverAuth
#   OUTDIR/server.key   its key (0600)
#
# OUTDIR defaults to certs/dev next to this script. Idempotent: existing
# files are kept as long as they are usable (the server certificate is
# remade when it no longer verifies against the CA, e.g. after a new CA, or
# expires within a day); --force makes everything anew.
# Development only: the keys are unencrypted and the CA can sign anything;
# never trust ca.pem outside a test machine. certs/.gitignore keeps the
# generated files out of git.
set -euo pipefail

usage() { echo "usage: $0 [--force] [OUTDIR]" >&2; exit 2; }
die() { echo "mkcerts: $*" >&2; exit 1; }

force=0
out=
while [ $# -gt 0 ]; do
	case $1 in
	--force | -f) force=1 ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	-*) usage ;;
	*) [ -z "$out" ] || usage; out=$1 ;;
	esac
	shift
done
[ -n "$out" ] || out="$(cd "$(dirname "$0")" && pwd)/dev"

command -v openssl >/dev/null || die "openssl not found (Debian: apt-get install openssl)"
mkdir -p "$out" || die "cannot create $out"
out=$(cd "$out" && pwd)

CA_DAYS=3650
SERVER_DAYS=825
CA_CN="cutover development CA — not for production"
SERVER_CN=localhost
SAN="DNS:localhost,DNS:cutover.test,IP:127.0.0.1,IP:::1"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cutover-mkcerts.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$tmp"' EXIT

# A random serial, 128 bits (RFC 5280: at most 20 octets, positive: openssl
# reads 0x... as a positive number and encodes it so).
serial() { echo "0x$(openssl rand -hex 16)"; }

# newkey FILE: an EC P-256 key, created 0600 (written to a temp file first so
# that an interrupted run leaves no half key).
newkey() {
	(umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out "$tmp/key" 2>"$tmp/err") || die "genpkey: $(cat "$tmp/err")"
	chmod 600 "$tmp/key"
	mv -f "$tmp/key" "$1"
}

# ---- CA -------------------------------------------------------------------
made_ca=0
if [ "$force" = 1 ] || [ ! -s "$out/ca.pem" ] || [ ! -s "$out/ca.key" ] ||
	! openssl x509 -in "$out/ca.pem" -noout -checkend 86400 >/dev/null 2>&1; then
	newkey "$out/ca.key"
	cat >"$tmp/ca.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
utf8 = yes
string_mask = utf8only
x509_extensions = v3_ca
[dn]
O = cutover development
CN = $CA_CN
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
	openssl req -new -x509 -config "$tmp/ca.cnf" -key "$out/ca.key" -sha256 \
		-days "$CA_DAYS" -set_serial "$(serial)" -out "$tmp/ca.pem" 2>"$tmp/err" ||
		die "CA certificate: $(cat "$tmp/err")"
	mv -f "$tmp/ca.pem" "$out/ca.pem"
	chmod 644 "$out/ca.pem"
	made_ca=1
fi

# ---- server certificate ---------------------------------------------------
server_ok() {
	[ -s "$out/server.pem" ] && [ -s "$out/server.key" ] &&
		openssl verify -CAfile "$out/ca.pem" -purpose sslserver "$out/server.pem" >/dev/null 2>&1 &&
		openssl x509 -in "$out/server.pem" -noout -checkend 86400 >/dev/null 2>&1 &&
		# the key belongs to the certificate
		[ "$(openssl x509 -in "$out/server.pem" -noout -pubkey 2>/dev/null)" = \
			"$(openssl pkey -in "$out/server.key" -pubout 2>/dev/null)" ]
}

made_server=0
if [ "$force" = 1 ] || [ "$made_ca" = 1 ] || ! server_ok; then
	newkey "$out/server.key"
	cat >"$tmp/server.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
O = cutover development
CN = $SERVER_CN
[v3_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $SAN
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
EOF
	openssl req -new -config "$tmp/server.cnf" -key "$out/server.key" -out "$tmp/server.csr" 2>"$tmp/err" ||
		die "server CSR: $(cat "$tmp/err")"
	openssl x509 -req -in "$tmp/server.csr" -CA "$out/ca.pem" -CAkey "$out/ca.key" \
		-set_serial "$(serial)" -sha256 -days "$SERVER_DAYS" \
		-extfile "$tmp/server.cnf" -extensions v3_server -out "$tmp/server.pem" 2>"$tmp/err" ||
		die "server certificate: $(cat "$tmp/err")"
	mv -f "$tmp/server.pem" "$out/server.pem"
	chmod 644 "$out/server.pem"
	made_server=1
	server_ok || die "the new server certificate does not verify against $out/ca.pem"
fi

chmod 600 "$out/ca.key" "$out/server.key"

state() { [ "$1" = 1 ] && echo "new " || echo "kept"; }
rel() {  # a path relative to the current directory when under it
	case $1 in "$PWD"/*) echo "${1#"$PWD"/}" ;; *) echo "$1" ;; esac
}
until=$(openssl x509 -in "$out/server.pem" -noout -enddate | sed 's/^notAfter=//')
cat <<EOF
mkcerts: $(state "$made_ca") CA          $(rel "$out/ca.pem")  (key $(rel "$out/ca.key"))
mkcerts: $(state "$made_server") certificate $(rel "$out/server.pem")  (key $(rel "$out/server.key"))
         for localhost, cutover.test, 127.0.0.1, ::1; valid until $until
Use in cutover's config:
  listen = ( { address = "127.0.0.1:18443";
               tls = { certificates = ( { cert = "$out/server.pem"; key = "$out/server.key"; } ); }; } );
Try:
  curl --cacert $(rel "$out/ca.pem") https://localhost:18443/.well-known/cutover/health
EOF
