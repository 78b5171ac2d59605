#!/usr/bin/env bash
# scripts/tls-audit.sh: Debian's testssl.sh against cutover's TLS front.
#
# Makes a throwaway CA and server certificate (certs/mkcerts.sh) in a temp
# dir, starts a demo upstream (tests/demo/openrosa_upstream.py) and
# `cutover run` with one TLS listener on a free 127.0.0.1 port in front of it,
# runs testssl (full default run, SNI "localhost", the throwaway CA added to
# its trust stores, no DNS queries, bounded by TLS_AUDIT_TIMEOUT), then stops
# everything (also on error or Ctrl-C) and judges testssl's JSON findings.
#
# Exit status:
#   0   no HIGH or CRITICAL finding; prints a one-line summary
#   1   at least one HIGH or CRITICAL finding; prints them
#   2   the audit could not run: cutover refused the config or did not start,
#       testssl failed, timed out or reached nothing
#   77  testssl is not installed (`make tls-audit` installs it:
#       scripts/install-deps.sh testssl.sh)
#
# Findings listed in TLS_AUDIT_IGNORE are properties of the throwaway
# development certificate, not of the TLS front, and are reported as ignored
# rather than counted: by default "cert_revocation" (HIGH in testssl 3.0:
# "Neither CRL nor OCSP URI provided", which no development CA has; a real
# deployment's CA decides it). Set TLS_AUDIT_IGNORE= to count everything.
#
# Knobs (environment): CUTOVER_BIN (default build/cutover), PYTHON
# (/usr/bin/python3), TESTSSL (the testssl binary: Debian's is "testssl",
# upstream's "testssl.sh"), TLS_AUDIT_TIMEOUT (s, 300), TLS_AUDIT_FAST
# (1 = testssl --fast), TLS_AUDIT_IGNORE ("cert_revocation"),
# TLS_AUDIT_OUT (where the reports are kept, default /tmp/cutover-tls-audit:
# testssl.log, testssl.json, cutover.conf, cutover.out, upstream.out).
set -uo pipefail

# Paths given relative to the caller's directory stay valid after the cd.
abs() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
[ -n "${CUTOVER_BIN:-}" ] && [ -e "$CUTOVER_BIN" ] && CUTOVER_BIN=$(abs "$CUTOVER_BIN")
OUT=$(abs "${TLS_AUDIT_OUT:-/tmp/cutover-tls-audit}")
cd "$(dirname "$0")/.." || exit 1

PYTHON=${PYTHON:-/usr/bin/python3}
CUTOVER_BIN=${CUTOVER_BIN:-build/cutover}
TIMEOUT=${TLS_AUDIT_TIMEOUT:-300}
IGNORE=${TLS_AUDIT_IGNORE-cert_revocation}

log() { echo "tls-audit: $*" >&2; }
fail() { echo "tls-audit: ERROR: $*" >&2; exit 2; }

TESTSSL=${TESTSSL:-}
if [ -z "$TESTSSL" ]; then
	TESTSSL=$(command -v testssl || command -v testssl.sh || true)
fi
if [ -z "$TESTSSL" ] || ! command -v "$TESTSSL" >/dev/null; then
	echo "tls-audit: SKIP: testssl not installed (Debian package testssl.sh; 'make tls-audit' installs it)" >&2
	exit 77
fi
for tool in openssl curl timeout; do
	command -v "$tool" >/dev/null || fail "$tool not found: run 'make deps'"
done
[ -x "$PYTHON" ] || fail "$PYTHON not found"
[ -x "$CUTOVER_BIN" ] || fail "no cutover binary at $CUTOVER_BIN (run 'make build', or set CUTOVER_BIN)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cutover-tls-audit.XXXXXX") || fail "mktemp failed"

pids=()
cleanup() {
	local pid
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	# only this script's own files are replaced in OUT
	mkdir -p "$OUT" && (cd "$OUT" && rm -f testssl.log testssl.json testssl.out cutover.conf \
		cutover.out cutover-check.out upstream.out mkcerts.out) &&
		cp "$WORK"/*.log "$WORK"/*.json "$WORK"/*.out "$WORK"/*.conf "$OUT"/ 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# shellcheck source=bench/lib.sh
. bench/lib.sh

# ---- certificate, upstream, cutover --------------------------------------

certs/mkcerts.sh "$WORK/certs" >"$WORK/mkcerts.out" 2>&1 ||
	fail "certs/mkcerts.sh failed: $(tail -3 "$WORK/mkcerts.out")"
CA=$WORK/certs/ca.pem

start upstream "$PYTHON" tests/demo/openrosa_upstream.py --host 127.0.0.1 --port 0 --name old --quiet
UPSTREAM_PID=$STARTED_PID
UPSTREAM_PORT=
for ((i = 0; i < 100; i++)); do     # at most 10 s
	UPSTREAM_PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$WORK/upstream.out")
	[ -n "$UPSTREAM_PORT" ] && break
	kill -0 "$UPSTREAM_PID" 2>/dev/null || break
	sleep 0.1
done
[ -n "$UPSTREAM_PORT" ] || fail "the demo upstream did not start: $(tail -3 "$WORK/upstream.out")"

PORT=$(free_ports 1)
mkdir -p "$WORK/spool"
cat >"$WORK/cutover.conf" <<EOF
# tls-audit: one TLS listener in front of the demo upstream.
listen = ( { address = "127.0.0.1:$PORT";
             tls = { certificates = ( { cert = "$WORK/certs/server.pem"; key = "$WORK/certs/server.key"; } ); }; } );
admin = { address = "unix:$WORK/admin.sock"; };
upstreams = {
  old = { url = "http://127.0.0.1:$UPSTREAM_PORT"; };
  new = { url = "http://127.0.0.1:$UPSTREAM_PORT"; };
};
state_file = "$WORK/state.json";
journal_file = "$WORK/journal.log";
spool = { dir = "$WORK/spool"; };
routes = ( { name = "default"; } );
EOF

if ! timeout 30 "$CUTOVER_BIN" check -c "$WORK/cutover.conf" >"$WORK/cutover-check.out" 2>&1; then
	fail "cutover check refused the TLS config: $(head -3 "$WORK/cutover-check.out")"
fi
start cutover "$CUTOVER_BIN" run -c "$WORK/cutover.conf"
CUTOVER_PID=$STARTED_PID
# The health path is answered by the upstream ("/" is its health check).
wait_url "https://127.0.0.1:$PORT/" "$CUTOVER_PID" --cacert "$CA" ||
	fail "cutover did not answer over TLS on 127.0.0.1:$PORT: $(tail -3 "$WORK/cutover.out") (reports in $OUT)"

# ---- testssl --------------------------------------------------------------

fast=()
[ "${TLS_AUDIT_FAST:-0}" = 1 ] && fast=(--fast)
log "testssl $("$TESTSSL" --version 2>/dev/null | sed -n 's/^ *testssl\(\.sh\)\{0,1\} *\([0-9][^ ]*\).*/\2/p' | head -1) against cutover on https://localhost:$PORT (at most ${TIMEOUT} s)"
start_s=$SECONDS
# --warnings batch: never prompt; --nodns none: no DNS queries at all (the
# address is given with --ip); the URI's host is the SNI sent and the name
# checked against the certificate.
# In the background + wait, so that a TERM to this script stops it at once
# (the cleanup kills timeout, which passes the signal on to testssl's group).
(cd "$WORK" && exec timeout -k 10 "$TIMEOUT" "$TESTSSL" --quiet --color 0 --warnings batch \
	--nodns none --ip 127.0.0.1 --connect-timeout 10 --openssl-timeout 10 \
	--add-ca "$CA" "${fast[@]}" --jsonfile "$WORK/testssl.json" --logfile "$WORK/testssl.log" \
	"https://localhost:$PORT" </dev/null >"$WORK/testssl.out" 2>&1) &
TESTSSL_PID=$!
pids+=("$TESTSSL_PID")
wait "$TESTSSL_PID"
rc=$?
elapsed=$((SECONDS - start_s))
[ "$rc" = 124 ] || [ "$rc" = 137 ] && fail "testssl did not finish within ${TIMEOUT} s (reports in $OUT)"
kill -0 "$CUTOVER_PID" 2>/dev/null || fail "cutover exited during the audit: $(tail -3 "$WORK/cutover.out") (reports in $OUT)"
[ -s "$WORK/testssl.json" ] || fail "testssl wrote no findings (exit $rc): $(tail -3 "$WORK/testssl.out") (reports in $OUT)"

# ---- verdict --------------------------------------------------------------

"$PYTHON" - "$WORK/testssl.json" "$IGNORE" "$rc" "$elapsed" "$OUT" <<'PY'
import collections, json, sys

path, ignore, rc, elapsed, out = sys.argv[1], set(sys.argv[2].split()), sys.argv[3], sys.argv[4], sys.argv[5]
try:
    with open(path) as f:
        findings = json.load(f)
    if isinstance(findings, dict):          # --jsonfile-pretty layout
        findings = [x for s in findings.get("scanResult", []) for v in s.values()
                    if isinstance(v, list) for x in v]
except (OSError, ValueError) as e:
    print(f"tls-audit: ERROR: cannot read testssl's findings: {e}", file=sys.stderr)
    sys.exit(2)

def line(x):
    return f"  {x.get('severity')} {x.get('id')}: {x.get('finding')}"

fatal = [x for x in findings if x.get("severity") == "FATAL" or x.get("id") == "scanProblem"]
if fatal:
    print("tls-audit: ERROR: testssl could not complete the scan:", file=sys.stderr)
    for x in fatal:
        print(line(x), file=sys.stderr)
    sys.exit(2)
offered = [x["id"] for x in findings
           if x.get("id", "").startswith(("SSLv", "TLS1")) and x.get("finding", "").startswith("offered")]
if not offered:
    print(f"tls-audit: ERROR: testssl found no TLS protocol offered (exit {rc}); see {out}/testssl.log",
          file=sys.stderr)
    sys.exit(2)

bad = [x for x in findings if x.get("severity") in ("HIGH", "CRITICAL")]
ignored = [x for x in bad if x.get("id") in ignore]
bad = [x for x in bad if x.get("id") not in ignore]
count = collections.Counter(x.get("severity") for x in findings)
others = ", ".join(f"{count[s]} {s}" for s in ("MEDIUM", "LOW") if count[s])
medium_low = ", ".join(f"{x['id']}" for x in findings if x.get("severity") in ("MEDIUM", "LOW"))
ign = ""
if ignored:
    ign = "; ignored (throwaway dev certificate): " + ", ".join(f"{x['severity']} {x['id']}" for x in ignored)

if bad:
    print(f"tls-audit: FAIL: {len(bad)} HIGH/CRITICAL finding(s) against cutover's TLS front:")
    for x in bad:
        print(line(x))
    for x in ignored:
        print(line(x) + "   [ignored: throwaway dev certificate]")
    print(f"tls-audit: full report in {out}/testssl.log")
    sys.exit(1)
print(f"tls-audit: PASS: no HIGH/CRITICAL finding ({'/'.join(offered)} offered; "
      f"{others or 'nothing else'}{': ' + medium_low if medium_low else ''}{ign}; "
      f"testssl {elapsed} s, report in {out}/testssl.log)")
PY
