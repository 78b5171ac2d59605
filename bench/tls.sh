#!/usr/bin/env bash
# bench/tls.sh: the TLS front side by side (issue "TLS", "Bench"):
#   nginx    nginx terminating TLS, reverse proxy (bench/nginx-proxy.conf.in + ssl)
#   haproxy  HAProxy terminating TLS (bench/haproxy.cfg.in + ssl crt)
#   cutover  cutover with a TLS listener (bench/cutover.conf.in + tls)
# all with the same certificate (certs/mkcerts.sh into the work dir: EC
# P-256, signed by a throwaway CA) in front of the same upstream (nginx-light
# serving /small, 100 B, as in bench/run.sh), each proxy with one worker on
# CPU 0, the load generators on CPU 1 (BENCH_PIN as in run.sh). Measures:
#   (a) TLS keep-alive small GET: wrk -t1 -c50 https://127.0.0.1:PORT/small,
#       BENCH_WARMUP s warm-up then BENCH_DURATION s; req/s, p50, p99 (and,
#       for information, requests per second of proxy CPU, as for (b)).
#   (b) new TLS handshakes: full handshakes, no resumption. wrk cannot do them
#       (with "Connection: close" it resumes its previous session on every
#       reconnect: HAProxy counts 100% session reuse), so TLS_HS_CLIENTS
#       parallel `openssl s_time -connect 127.0.0.1:PORT -new` (a new session
#       each time: a full handshake, then close; no request) for BENCH_DURATION s,
#       run the same way for every target. OpenSSL 3.0's client side costs
#       more per handshake than the server side, so one CPU of s_time cannot
#       saturate one proxy CPU: next to handshakes/s the table gives the
#       proxy's CPU use, and handshakes per second of proxy CPU (handshakes
#       divided by the user+system CPU time the proxy, with its children,
#       spent meanwhile), judged too: raw handshakes/s mostly measure the client.
# Prints the table and the targets (cutover/HAProxy >= 0.80x on both) and
# writes it to bench/out/tls.md (bench/run.sh appends it to bench/RESULTS.md);
# configs and logs end up in bench/out/tls/.
# Knobs: CUTOVER_BIN, BENCH_DURATION (s, 10), BENCH_WARMUP (s, 2),
# BENCH_PIN (1 = taskset when there are >= 2 CPUs), TLS_TARGETS
# ("nginx haproxy cutover"), TLS_HS_CLIENTS (4 s_time processes).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

PYTHON=${PYTHON:-/usr/bin/python3}
# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_cutover_bin
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
TARGETS=${TLS_TARGETS:-nginx haproxy cutover}
HS_CLIENTS=${TLS_HS_CLIENTS:-4}
CONNS=50
SMALL_BYTES=100
OUT=bench/out
MD=$OUT/tls.md
LOGS=$OUT/tls

die() { echo "tls: $*" >&2; exit 1; }
log() { echo "tls: $*" >&2; }

for tool in nginx haproxy wrk curl openssl taskset timeout pgrep; do
	command -v "$tool" >/dev/null || die "$tool not found: run 'make deps'"
done
[ -x "$PYTHON" ] || die "$PYTHON not found"
# (the keys in WORK stay 0600: only the nginx and HAProxy masters, root,
# read them)
bench_prepare tls || die "mktemp failed"
mkdir -p "$WORK/www" "$WORK/tmp" "$OUT"

pids=()
cleanup() {
	local pid
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	rm -rf "$LOGS"
	mkdir -p "$LOGS"
	cp "$WORK"/*.log "$WORK"/*.out "$WORK"/*.conf "$WORK"/*.cfg "$LOGS/" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# render TEMPLATE DEST PORT
render() {
	sed -e "s|@WORK@|$WORK|g" -e "s|@PORT@|$3|g" -e "s|@UPSTREAM_PORT@|$UPSTREAM_PORT|g" \
		-e "s|@SENDFILE@|on|g" "$1" >"$2"
}

# cpu_pct TICKS WALL_US: CPU use in % of one CPU
cpu_pct() { awk -v t="$1" -v w="$2" -v hz="$CLK_TCK" 'BEGIN { printf "%.0f", (w > 0 ? 100 * (t / hz) / (w / 1e6) : 0) }'; }

now_us() { echo "${EPOCHREALTIME/./}"; }

# measure WHO PORT PID: both tests for one target; appends a row to ROWS and
# sets KA_RPS[WHO], HS_PER_CPU[WHO], HS_RPS[WHO].
measure() {
	local who=$1 port=$2 pid=$3 url="https://127.0.0.1:$2/small"
	local neg line req dur c0 c1 t0 t1 ka="" ka_p50="" ka_p99="" ka_cpu="" ka_per_cpu="" notes=""
	neg=$(timeout 10 openssl s_client -connect "127.0.0.1:$port" -servername localhost \
		-CAfile "$CA" -brief </dev/null 2>&1 |
		awk -F': ' '/^Protocol version/ { p = $2 } /^Ciphersuite/ { c = $2 }
			/^Server Temp Key/ { split($2, k, ","); g = k[1] } /^Verification:/ { v = $2 }
			END { printf "%s %s %s%s", p, c, g, (v == "OK" ? "" : ", verification: " v) }')

	log "$who: TLS keep-alive small GET, $CONNS connections, ${WARMUP}s warm-up + ${DURATION}s"
	timeout $((WARMUP + 30)) "${LOAD_CPU[@]}" wrk -t1 -c"$CONNS" -d"${WARMUP}s" "$url" >/dev/null 2>&1
	c0=$(proxy_cpu_ticks "$pid")
	t0=$(now_us)
	timeout $((DURATION + 30)) "${LOAD_CPU[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 5s \
		-s bench/get.lua "$url" >"$WORK/wrk.$who.out" 2>&1
	t1=$(now_us)
	c1=$(proxy_cpu_ticks "$pid")
	line=$(grep '^RESULT ' "$WORK/wrk.$who.out" | tail -1)
	req=$(field "$line" requests)
	dur=$(field "$line" duration_us)
	if [ -n "$req" ] && [ "${dur:-0}" -gt 0 ] && [ "$req" -gt 0 ]; then
		ka=$(awk -v r="$req" -v d="$dur" 'BEGIN { printf "%.0f", r / (d / 1e6) }')
		ka_p50=$(awk -v v="$(field "$line" p50_us)" 'BEGIN { printf "%.3f", v / 1000 }')
		ka_p99=$(awk -v v="$(field "$line" p99_us)" 'BEGIN { printf "%.3f", v / 1000 }')
		ka_cpu=$(cpu_pct $((c1 - c0)) $((t1 - t0)))
		if [ $((c1 - c0)) -gt 0 ]; then
			# requests over the whole wrk run (its duration ~ the CPU window)
			ka_per_cpu=$(awk -v n="$req" -v t=$((c1 - c0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.0f", n / (t / hz) }')
			KA_PER_CPU[$who]=$ka_per_cpu
		fi
		[ "$(field "$line" errors)" = 0 ] || notes+="keep-alive: $(field "$line" errors) socket errors; "
		[ "$(field "$line" non2xx)" = 0 ] || notes+="keep-alive: $(field "$line" non2xx) non-2xx; "
		KA_RPS[$who]=$ka
	else
		ka="failed"
		notes+="keep-alive: wrk: $(tail -1 "$WORK/wrk.$who.out"); "
	fi

	log "$who: new TLS handshakes, $HS_CLIENTS x openssl s_time -new, ${DURATION}s"
	local i hs_pids=() n total=0 aborted=0 hs="" hs_cpu="" hs_per_cpu="" ticks
	c0=$(proxy_cpu_ticks "$pid")
	t0=$(now_us)
	for ((i = 0; i < HS_CLIENTS; i++)); do
		timeout $((DURATION + 30)) "${LOAD_CPU[@]}" openssl s_time -connect "127.0.0.1:$port" -new \
			-time "$DURATION" >"$WORK/s_time.$who.$i.out" 2>&1 &
		hs_pids+=($!)
		pids+=($!)
	done
	for ((i = 0; i < HS_CLIENTS; i++)); do
		wait "${hs_pids[$i]}" || aborted=$((aborted + 1))
	done
	t1=$(now_us)
	c1=$(proxy_cpu_ticks "$pid")
	for ((i = 0; i < HS_CLIENTS; i++)); do
		# "N connections in T real seconds, ..." (s_time stops at its first failed connection)
		n=$(sed -n 's/^\** *\([0-9]*\) connections in [0-9]* real seconds.*/\1/p' "$WORK/s_time.$who.$i.out" | tail -1)
		total=$((total + ${n:-0}))
	done
	ticks=$((c1 - c0))
	if [ "$total" -gt 0 ]; then
		hs=$(awk -v n="$total" -v w=$((t1 - t0)) 'BEGIN { printf "%.0f", n / (w / 1e6) }')
		hs_cpu=$(cpu_pct "$ticks" $((t1 - t0)))
		if [ "$ticks" -gt 0 ]; then
			hs_per_cpu=$(awk -v n="$total" -v t="$ticks" -v hz="$CLK_TCK" 'BEGIN { printf "%.0f", n / (t / hz) }')
			HS_PER_CPU[$who]=$hs_per_cpu
		fi
		HS_RPS[$who]=$hs
	else
		hs="failed"
		notes+="handshakes: s_time: $(grep -v '^\**$' "$WORK/s_time.$who.0.out" | tail -1); "
	fi
	[ "$aborted" = 0 ] || notes+="handshakes: $aborted of $HS_CLIENTS s_time stopped early (a failed connection); "
	kill -0 "$pid" 2>/dev/null || notes+="exited during the bench: $(tail -1 "$WORK/$who.out"); "
	ROWS+=("| $who | $neg | $ka | $ka_p50 | $ka_p99 | $ka_cpu | $ka_per_cpu | $hs | $hs_cpu | $hs_per_cpu | ${notes%; } |")
}

# ---- set-up ---------------------------------------------------------------

certs/mkcerts.sh "$WORK/certs" >"$WORK/mkcerts.out" 2>&1 || die "certs/mkcerts.sh failed: $(tail -3 "$WORK/mkcerts.out")"
CA=$WORK/certs/ca.pem
CERT=$WORK/certs/server.pem
KEY=$WORK/certs/server.key
# HAProxy wants the certificate and its key in one file.
(umask 077 && cat "$CERT" "$KEY" >"$WORK/certs/haproxy.pem")

head -c "$SMALL_BYTES" /dev/zero | tr '\0' 'a' >"$WORK/www/small"
read -r UPSTREAM_PORT NGINX_PORT HAPROXY_PORT CUTOVER_PORT <<<"$(free_ports 4)"
render bench/nginx-upstream.conf.in "$WORK/upstream.conf" "$UPSTREAM_PORT"

# The plain bench configs, with TLS on their listener, each proxy's TLS
# defaults otherwise, except nginx's protocols: nginx 1.22 leaves TLS 1.3 off
# by default (on from 1.23.4), HAProxy and cutover offer TLS 1.2 and 1.3.
render bench/nginx-proxy.conf.in "$WORK/nginx-proxy.conf" "$NGINX_PORT"
sed -i -e "s|^\( *listen 127.0.0.1:$NGINX_PORT\) |\1 ssl |" \
	-e "s|^\( *listen 127.0.0.1:$NGINX_PORT.*\)$|\1\n        ssl_certificate $CERT;\n        ssl_certificate_key $KEY;\n        ssl_protocols TLSv1.2 TLSv1.3;|" \
	"$WORK/nginx-proxy.conf"
render bench/haproxy.cfg.in "$WORK/haproxy.cfg" "$HAPROXY_PORT"
sed -i "s|^\( *bind 127.0.0.1:$HAPROXY_PORT\)\$|\1 ssl crt $WORK/certs/haproxy.pem|" "$WORK/haproxy.cfg"
render bench/cutover.conf.in "$WORK/cutover.conf" "$CUTOVER_PORT"
sed -i "s|^listen = ( { address = \"127.0.0.1:$CUTOVER_PORT\"; } );\$|listen = ( { address = \"127.0.0.1:$CUTOVER_PORT\";\n             tls = { certificates = ( { cert = \"$CERT\"; key = \"$KEY\"; } ); }; } );|" \
	"$WORK/cutover.conf"
mkdir -p "$WORK/cutover-spool"
grep -q "ssl_certificate $CERT" "$WORK/nginx-proxy.conf" || die "bench/nginx-proxy.conf.in: listen line not found"
grep -q "ssl crt" "$WORK/haproxy.cfg" || die "bench/haproxy.cfg.in: bind line not found"
grep -q "cert = \"$CERT\"" "$WORK/cutover.conf" || die "bench/cutover.conf.in: listen line not found"

start upstream nginx -p "$WORK/" -e "$WORK/upstream.error.log" -c "$WORK/upstream.conf"
wait_ready "$UPSTREAM_PORT" "$STARTED_PID" || die "upstream nginx did not start: $(tail -3 "$WORK/upstream.out" "$WORK/upstream.error.log" 2>/dev/null)"

ROWS=()
declare -A KA_RPS=() KA_PER_CPU=() HS_RPS=() HS_PER_CPU=()
# try WHO PORT CMD...: starts CMD, measures when it answers over TLS.
try() {
	local who=$1 port=$2
	shift 2
	start "$who" "${PROXY_CPU[@]}" "$@"
	if wait_ready_tls "$port" "$STARTED_PID" "$CA"; then
		measure "$who" "$port" "$STARTED_PID"
	else
		ROWS+=("| $who | failed to start (see $LOGS/$who.out): $(tail -1 "$WORK/$who.out") | | | | | | | | | |")
	fi
	stop "$STARTED_PID"
}
for target in $TARGETS; do
	case $target in
	nginx) try nginx "$NGINX_PORT" nginx -p "$WORK/" -e "$WORK/nginx.error.log" -c "$WORK/nginx-proxy.conf" ;;
	haproxy) try haproxy "$HAPROXY_PORT" haproxy -db -f "$WORK/haproxy.cfg" ;;
	cutover)
		if [ ! -x "$CUTOVER_BIN" ]; then
			ROWS+=("| cutover | failed to start: no binary at $CUTOVER_BIN | | | | | | | | | |")
		elif ! timeout 30 "$CUTOVER_BIN" check -c "$WORK/cutover.conf" >"$WORK/cutover-check.out" 2>&1; then
			ROWS+=("| cutover | failed to start (see $LOGS/cutover-check.out): $(head -1 "$WORK/cutover-check.out" | sed "s|$WORK/||") | | | | | | | | | |")
		else
			try cutover "$CUTOVER_PORT" "$CUTOVER_BIN" run -c "$WORK/cutover.conf"
		fi
		;;
	*) die "unknown target $target" ;;
	esac
done

# ratio NUM DEN: "0.85x", or "" when either is missing
ratio() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b }'; }
verdict() {  # verdict RATIO: PASS/MISS against >= 0.80x
	[ -n "$1" ] || { echo "MISS (no number)"; return; }
	awk -v r="${1%x}" 'BEGIN { print (r >= 0.80 ? "PASS" : "MISS") }'
}
ka_ratio=$(ratio "${KA_RPS[cutover]:-}" "${KA_RPS[haproxy]:-}")
hs_ratio=$(ratio "${HS_PER_CPU[cutover]:-}" "${HS_PER_CPU[haproxy]:-}")
hs_raw_ratio=$(ratio "${HS_RPS[cutover]:-}" "${HS_RPS[haproxy]:-}")
ka_cpu_ratio=$(ratio "${KA_PER_CPU[cutover]:-}" "${KA_PER_CPU[haproxy]:-}")

pin_note="proxy pinned to CPU 0, load generators to CPU 1, upstream unpinned"
[ ${#PROXY_CPU[@]} -gt 0 ] || pin_note="no CPU pinning"
{
	echo "## TLS front"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(openssl version | awk '{ print "OpenSSL " $2 }'), load average $(cut -d' ' -f1-3 /proc/loadavg) at the end;"
	echo "$pin_note; one worker/thread per proxy; every proxy serves the same certificate"
	echo "(EC P-256 from certs/mkcerts.sh) in front of the same nginx-light upstream, ${SMALL_BYTES} B /small."
	echo "Keep-alive: \`wrk -t1 -c$CONNS -d${DURATION}s https://127.0.0.1:PORT/small\` after ${WARMUP}s warm-up."
	echo "Handshakes: $HS_CLIENTS parallel \`openssl s_time -connect 127.0.0.1:PORT -new -time $DURATION\`: full handshakes,"
	echo "no resumption (a new session each time; wrk would resume), no request; the same for every target."
	echo "One CPU of s_time does not saturate one proxy CPU (OpenSSL 3.0's client side costs more), so"
	echo "\"handshakes per proxy CPU-s\" (handshakes / CPU time the proxy used meanwhile) is judged beside raw handshakes/s."
	echo "CPU % is the proxy's user+system time (with its child processes) over the run, in % of one CPU."
	echo
	echo "| target | negotiated | keep-alive GET req/s | p50 ms | p99 ms | CPU % | req per proxy CPU-s | new handshakes/s | CPU % | handshakes per proxy CPU-s | notes |"
	echo "|--------|------------|----------------------|--------|--------|-------|---------------------|------------------|-------|----------------------------|-------|"
	printf '%s\n' "${ROWS[@]}"
	echo
	echo "| target (TLS issue)                              | wanted   | cutover/HAProxy | result |"
	echo "|-------------------------------------------------|----------|-----------------|--------|"
	echo "| TLS keep-alive small-GET req/s                  | >= 0.80x | ${ka_ratio:-n/a} | $(verdict "$ka_ratio") |"
	echo "| new TLS handshakes per proxy CPU-second         | >= 0.80x | ${hs_ratio:-n/a} | $(verdict "$hs_ratio") |"
	echo "| TLS keep-alive req per proxy CPU-s (for info)   |          | ${ka_cpu_ratio:-n/a} | |"
	echo "| new TLS handshakes/s (client-bound)             | >= 0.80x | ${hs_raw_ratio:-n/a} | $(verdict "$hs_raw_ratio") |"
} >"$MD"
cat "$MD"
