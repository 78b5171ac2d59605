#!/usr/bin/env bash
# bench/flips.sh: flips old<->new under load (issue 4, "Bench").
# Two upstream nginx-light servers, "old" (serves /small as 100 x 'a') and
# "new" (100 x 'b'), and for each proxy a wrk -t1 -c50 run of FLIPS_DURATION
# seconds on /small while a loop flips the proxy between them FLIPS_COUNT
# times, FLIPS_INTERVAL seconds apart:
#   nginx    rewrite the config (upstream = old or new) + `nginx -s reload`
#   haproxy  runtime API: `set server upstream/<x> state ready|maint`
#   cutover  `cutover switch new|old --force --admin unix:<sock>`
# Counts wrk's requests, non-2xx/3xx answers and socket errors
# (connect + read + write + timeout), and the flips done; a flip is
# "seen" when GET /small through the proxy answers from the upstream flipped
# to within 1 s. Target: 0 errors for cutover (a request lost shows up as a
# socket error: wrk counts only complete answers as requests).
# Prints the table and writes it to bench/out/flips.md.
# Knobs: CUTOVER_BIN, FLIPS_COUNT (20), FLIPS_INTERVAL (0.5 s),
# FLIPS_DURATION (12 s), FLIPS_TARGETS ("nginx haproxy cutover"),
# BENCH_PIN (1 = taskset when there are >= 2 CPUs).
set -uo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-/usr/bin/python3}
# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_cutover_bin
FLIPS=${FLIPS_COUNT:-20}
INTERVAL=${FLIPS_INTERVAL:-0.5}
DURATION=${FLIPS_DURATION:-12}
TARGETS=${FLIPS_TARGETS:-nginx haproxy cutover}
CONNS=50
SMALL_BYTES=100
OUT=bench/out
MD=$OUT/flips.md

die() { echo "flips: $*" >&2; exit 1; }
log() { echo "flips: $*" >&2; }

for tool in nginx haproxy wrk curl taskset timeout; do
	command -v "$tool" >/dev/null || die "$tool not found: run 'make deps'"
done
[ -x "$PYTHON" ] || die "$PYTHON not found"
bench_prepare flips || die "mktemp failed"
mkdir -p "$OUT"

pids=()
cleanup() {
	local pid
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	mkdir -p "$OUT/flips"
	cp "$WORK"/*.log "$WORK"/*.out "$WORK"/*.conf "$WORK"/*.cfg "$OUT/flips/" 2>/dev/null || true
	for side in old new; do
		cp "$WORK/up-$side/upstream.error.log" "$OUT/flips/upstream-$side.error.log" 2>/dev/null || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# render TEMPLATE DEST WORKDIR PORT
render() {
	sed -e "s|@WORK@|$3|g" -e "s|@PORT@|$4|g" -e "s|@UPSTREAM_PORT@|$OLD_PORT|g" \
		-e "s|@UPSTREAM_NEW_PORT@|$NEW_PORT|g" -e "s|@SENDFILE@|on|g" "$1" >"$2"
}

# which PORT: "old" or "new", from the first byte of /small, else "?".
which_upstream() {
	local b
	b=$(curl -s -m 1 "http://127.0.0.1:$1/small" 2>/dev/null | head -c 1)
	case $b in a) echo old ;; b) echo new ;; *) echo "?" ;; esac
}

# seen PORT SIDE: polls (at most 1 s) until the proxy answers from SIDE.
seen() {
	local i
	for ((i = 0; i < 20; i++)); do
		[ "$(which_upstream "$1")" = "$2" ] && return 0
		sleep 0.05
	done
	return 1
}

hap_cmd() {  # hap_cmd COMMAND: one command on HAProxy's admin socket
	timeout 5 "$PYTHON" - "$WORK/haproxy.sock" "$1" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(3)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
out = b""
while True:
    d = s.recv(4096)
    if not d:
        break
    out += d
sys.stdout.write(out.decode(errors="replace"))
sys.exit(1 if out.strip() else 0)
EOF
}

# flip TARGET SIDE: sends TARGET's traffic to SIDE; status 0 when accepted.
flip() {
	local side=$1 other=old
	[ "$side" = old ] && other=new
	case $TARGET in
	nginx)
		cp "$WORK/nginx-proxy-$side.conf" "$WORK/nginx-proxy.conf.tmp" &&
			mv "$WORK/nginx-proxy.conf.tmp" "$WORK/nginx-proxy.conf" &&
			timeout 5 nginx -p "$WORK/" -e "$WORK/nginx-proxy.error.log" -c "$WORK/nginx-proxy.conf" -s reload
		;;
	haproxy)
		hap_cmd "set server upstream/$side state ready; set server upstream/$other state maint"
		;;
	cutover)
		timeout 5 "$CUTOVER_BIN" switch "$side" --force --reason "bench flip" \
			--admin "unix:$WORK/cutover-admin.sock" >/dev/null
		;;
	esac
}

now_us() { echo "${EPOCHREALTIME/./}"; }

# run_target TARGET PORT: wrk during FLIPS flips; appends a table row.
run_target() {
	local port=$1 url="http://127.0.0.1:$1/small" wrk_pid line side i done_n=0 seen_n=0 failed=0
	local t0 next now req non2xx errs
	if [ "$(which_upstream "$port")" != old ]; then
		ROWS+=("| $TARGET | failed: does not answer from old before the run | | | | | |")
		return
	fi
	log "$TARGET: wrk -t1 -c$CONNS -d${DURATION}s with $FLIPS flips every ${INTERVAL}s"
	timeout $((DURATION + 30)) "${LOAD_CPU[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 5s \
		-s bench/get.lua "$url" >"$WORK/wrk.$TARGET.out" 2>&1 &
	wrk_pid=$!
	pids+=("$wrk_pid")
	sleep 1
	side=old
	t0=$(now_us)
	for ((i = 0; i < FLIPS; i++)); do
		kill -0 "$wrk_pid" 2>/dev/null || break
		[ "$side" = old ] && side=new || side=old
		if flip "$side" >>"$WORK/flips.$TARGET.out" 2>&1; then
			done_n=$((done_n + 1))
			seen "$port" "$side" && seen_n=$((seen_n + 1))
		else
			failed=$((failed + 1))
			echo "flip $i to $side failed" >>"$WORK/flips.$TARGET.out"
		fi
		# next flip INTERVAL after this one's start (no catch-up bursts)
		next=$((t0 + (i + 1) * $(awk -v s="$INTERVAL" 'BEGIN { printf "%d", s * 1e6 }')))
		now=$(now_us)
		[ "$now" -lt "$next" ] && sleep "$(awk -v d=$((next - now)) 'BEGIN { printf "%.3f", d / 1e6 }')"
	done
	wait "$wrk_pid" 2>/dev/null
	line=$(grep '^RESULT ' "$WORK/wrk.$TARGET.out" | tail -1)
	req=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<" $line")
	non2xx=$(sed -n 's/.* non2xx=\([0-9]*\).*/\1/p' <<<" $line")
	errs=$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' <<<" $line")
	if [ -z "$req" ]; then
		ROWS+=("| $TARGET | failed: wrk: $(tail -1 "$WORK/wrk.$TARGET.out") | | | | | |")
		return
	fi
	local sockerr_detail result=""
	sockerr_detail=$(sed -n 's/^ *Socket errors: //p' "$WORK/wrk.$TARGET.out")
	[ -n "$sockerr_detail" ] && sockerr_detail=" ($sockerr_detail)"
	if [ "$TARGET" = cutover ]; then
		if [ "$non2xx" = 0 ] && [ "$errs" = 0 ] && [ "$done_n" = "$FLIPS" ] && [ "$seen_n" = "$FLIPS" ]; then
			result=PASS
		else
			result=MISS
		fi
	fi
	[ "$failed" = 0 ] || sockerr_detail+="; $failed flip(s) failed"
	ROWS+=("| $TARGET | $req | $non2xx | $errs$sockerr_detail | $done_n/$FLIPS | $seen_n | $result |")
}

# ---- set-up ---------------------------------------------------------------

read -r OLD_PORT NEW_PORT NGINX_PORT HAPROXY_PORT CUTOVER_PORT <<<"$(free_ports 5)"
for side in old new; do
	d=$WORK/up-$side
	mkdir -p "$d/www" "$d/tmp"
	chmod 755 "$d"
	ch=a
	[ $side = new ] && ch=b
	head -c "$SMALL_BYTES" /dev/zero | tr '\0' "$ch" >"$d/www/small"
	port=$OLD_PORT
	[ $side = new ] && port=$NEW_PORT
	render bench/nginx-upstream.conf.in "$d/upstream.conf" "$d" "$port"
	start "upstream-$side" nginx -p "$d/" -e "$d/upstream.error.log" -c "$d/upstream.conf"
	wait_ready "$port" "$STARTED_PID" ||
		die "upstream $side did not start: $(tail -3 "$WORK/upstream-$side.out" "$d/upstream.error.log" 2>/dev/null)"
done
mkdir -p "$WORK/tmp"

ROWS=()
for TARGET in $TARGETS; do
	case $TARGET in
	nginx)
		render bench/nginx-proxy.conf.in "$WORK/nginx-proxy-old.conf" "$WORK" "$NGINX_PORT"
		sed "s|127.0.0.1:$OLD_PORT;|127.0.0.1:$NEW_PORT;|" "$WORK/nginx-proxy-old.conf" >"$WORK/nginx-proxy-new.conf"
		cp "$WORK/nginx-proxy-old.conf" "$WORK/nginx-proxy.conf"
		start nginx-proxy "${PROXY_CPU[@]}" nginx -p "$WORK/" -e "$WORK/nginx-proxy.error.log" -c "$WORK/nginx-proxy.conf"
		if wait_ready "$NGINX_PORT" "$STARTED_PID"; then
			run_target "$NGINX_PORT"
		else
			ROWS+=("| nginx | failed: did not start | | | | | |")
		fi
		stop "$STARTED_PID"
		;;
	haproxy)
		render bench/haproxy-flips.cfg.in "$WORK/haproxy.cfg" "$WORK" "$HAPROXY_PORT"
		start haproxy "${PROXY_CPU[@]}" haproxy -db -f "$WORK/haproxy.cfg"
		if wait_ready "$HAPROXY_PORT" "$STARTED_PID"; then
			run_target "$HAPROXY_PORT"
		else
			ROWS+=("| haproxy | failed: did not start | | | | | |")
		fi
		stop "$STARTED_PID"
		;;
	cutover)
		render bench/cutover.conf.in "$WORK/cutover.conf" "$WORK" "$CUTOVER_PORT"
		sed -i "/^ *new *=/s|127.0.0.1:$OLD_PORT\"|127.0.0.1:$NEW_PORT\"|" "$WORK/cutover.conf"
		mkdir -p "$WORK/cutover-spool"
		if [ ! -x "$CUTOVER_BIN" ]; then
			ROWS+=("| cutover | failed: no binary at $CUTOVER_BIN | | | | | MISS |")
		elif ! "$CUTOVER_BIN" check -c "$WORK/cutover.conf" >"$WORK/cutover-check.out" 2>&1; then
			ROWS+=("| cutover | failed: cutover check: $(head -1 "$WORK/cutover-check.out") | | | | | MISS |")
		else
			start cutover "${PROXY_CPU[@]}" "$CUTOVER_BIN" run -c "$WORK/cutover.conf" --start-mode old
			if wait_ready "$CUTOVER_PORT" "$STARTED_PID"; then
				run_target "$CUTOVER_PORT"
				kill -0 "$STARTED_PID" 2>/dev/null || ROWS+=("| cutover | exited during the run: $(tail -1 "$WORK/cutover.out") | | | | | MISS |")
			else
				ROWS+=("| cutover | failed: did not answer: $(tail -1 "$WORK/cutover.out") | | | | | MISS |")
			fi
			stop "$STARTED_PID"
		fi
		;;
	*) die "unknown target $TARGET" ;;
	esac
done

{
	echo "## Flips under load (issue 4)"
	echo
	echo "wrk -t1 -c$CONNS -d${DURATION}s on the ${SMALL_BYTES} B file through each proxy while it is flipped"
	echo "$FLIPS times, ${INTERVAL} s apart, between two upstream nginx-light servers (old, new):"
	echo "nginx by config switch + \`nginx -s reload\`, HAProxy by its runtime API"
	echo "(\`set server upstream/<x> state ready|maint\`), cutover by \`cutover switch new|old --force\`."
	echo "\"seen\" counts flips after which GET /small answered from the side flipped to within 1 s."
	echo "Socket errors are wrk's connect + read + write + timeout; a request lost shows up there."
	echo "Target for cutover: 0 socket errors, 0 non-2xx, every flip done."
	echo
	echo "| target | requests | non-2xx/3xx | socket errors | flips done | flips seen | result |"
	echo "|--------|----------|-------------|---------------|------------|------------|--------|"
	printf '%s\n' "${ROWS[@]}"
} >"$MD"
cat "$MD"
