#!/usr/bin/env bash
# run-demo.sh: what `make run` does after the build. Starts the two demo
# upstreams (old on 127.0.0.1:18081, new on 127.0.0.1:18082), waits until
# they answer, makes a development CA and certificate (certs/mkcerts.sh, kept
# in certs/dev), prints what to try, then runs cutover on conf/cutover.conf in
# the foreground (http://127.0.0.1:18080 and https://127.0.0.1:18443).
# Ctrl-C stops cutover, then the upstreams.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

PYTHON=${PYTHON:-/usr/bin/python3}
CUTOVER_BIN=${CUTOVER_BIN:-build/cutover}
CONF=${CONF:-conf/cutover.conf}

die() { echo "run-demo: $*" >&2; exit 1; }

[ -x "$CUTOVER_BIN" ] || die "no $CUTOVER_BIN: run 'make build' first"
# conf/cutover.conf keeps its admin socket in /run/cutover and its state,
# journal and spool in /var/lib/cutover.
mkdir -p /run/cutover /var/lib/cutover || die "cannot create /run/cutover and /var/lib/cutover (run as root)"

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in 18080 18081 18082 18443; do
	port_busy "$port" && die "127.0.0.1:$port is already in use (another 'make run'?); stop that first"
done

certs/mkcerts.sh certs/dev >/dev/null || die "certs/mkcerts.sh failed"

pids=()
cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$PYTHON" tests/demo/openrosa_upstream.py --port 18081 --name old --quiet >/dev/null &
pids+=($!)
"$PYTHON" tests/demo/openrosa_upstream.py --port 18082 --name new --quiet >/dev/null &
pids+=($!)

# Poll until both answer: at most 10 s.
for port in 18081 18082; do
	for ((i = 0; i < 100; i++)); do
		code=$(curl -s -o /dev/null -m 1 -w '%{http_code}' "http://127.0.0.1:$port/" || true)
		[ "$code" = 200 ] && break
		for pid in "${pids[@]}"; do
			kill -0 "$pid" 2>/dev/null || die "a demo upstream exited at start (port $port)"
		done
		sleep 0.1
	done
	[ "$code" = 200 ] || die "demo upstream on 127.0.0.1:$port does not answer"
done

cat <<EOF

Demo upstreams: old = http://127.0.0.1:18081, new = http://127.0.0.1:18082
(each response names the one that served it in X-Upstream).
cutover listens on http://127.0.0.1:18080 and https://127.0.0.1:18443 with
$CONF. Try, in another shell:

  curl -i http://127.0.0.1:18080/a/demo/phone/restore/
  curl -i -F xml_submission_file=@$root/scripts/sample-form.xml http://127.0.0.1:18080/a/demo/receiver/
  curl -I http://127.0.0.1:18080/a/demo/receiver/
  curl -i 'http://127.0.0.1:18080/a/demo/phone/heartbeat/demo-app/?num_unsent_forms=2&device_id=phone-1'
  curl -i http://127.0.0.1:18080/.well-known/cutover/health
  curl -i --cacert certs/dev/ca.pem https://localhost:18443/a/demo/phone/restore/
  build/cutover status
  build/cutover maintenance on --reason "data dump"     # then submit: 201, spooled
  build/cutover spool ls
  build/cutover switch new                              # the spool replays to new
  curl -s --unix-socket /run/cutover/admin.sock http://localhost/metrics

Access log (one JSON line per request) and errors go to this terminal.
Ctrl-C stops cutover and the demo upstreams.

EOF

# Not exec: the EXIT trap must outlive cutover to stop the upstreams.
# Ctrl-C reaches cutover directly (same process group) and it stops
# gracefully; this shell just waits for it (':' rather than '' so that
# cutover does not inherit an ignored SIGINT).
trap ':' INT
status=0
"$CUTOVER_BIN" run -c "$CONF" || status=$?
exit "$status"
