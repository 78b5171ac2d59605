#!/usr/bin/env bash
# bench/run.sh: one run, side by side, of wrk/curl against
#   direct   the upstream itself (nginx-light, 1 worker)
#   nginx    nginx as reverse proxy (1 worker, keep-alive upstream pool)
#   haproxy  HAProxy as reverse proxy (1 thread, http-reuse)
#   cutover  cutover (1 worker, no access log)
#   cutover-log  the same cutover binary, a second instance with the JSON
#            access log on, written to a file in the work dir (small GET only)
# each proxy with one worker on CPU 0, the load generator on CPU 1. Every
# proxy is started once and stays up for the whole run; the plain-HTTP
# figures are measured in interleaved rounds (every target once per round,
# the order rotated each round) so a machine that gets busier or quieter
# shifts every target alike; the report gives medians and min..max.
# Prints the table and the ratios and writes bench/RESULTS.md.
# Knobs (environment): CUTOVER_BIN, BENCH_ROUNDS (default 5, at least 1),
# BENCH_DURATION (s per wrk run per round, default 5),
# BENCH_WARMUP (s, one shared warm-up per target before the rounds, 2),
# BENCH_POST_CONNS (10), BENCH_IDLE_CONNS (1000),
# BENCH_PIN (1 = taskset when there are >= 2 CPUs, 0 = never),
# BENCH_TARGETS (default "direct nginx haproxy cutover cutover-log"),
# BENCH_UPSTREAM_SENDFILE (on|off, default on), BENCH_CUTOVER_EXTRA (config
# text appended to the bench config of both cutover instances, e.g.
# 'limits = { buffer_bytes = "1M"; };'),
# BENCH_FLIPS (1 = also run bench/flips.sh, flips old<->new under load, and
# append its table to bench/RESULTS.md; 0 = skip; its knobs: FLIPS_*),
# BENCH_TLS (1 = also run bench/tls.sh, the TLS front beside nginx and
# HAProxy, and append its table; 0 = skip; its knobs: TLS_*),
# BENCH_SPOOL (1 = also run bench/spool.sh, the durable spool's acks/s
# against the disk's fdatasync rates and its replay against the upstream
# taken directly, and append its table; 0 = skip; its knobs: SPOOL_*).
set -uo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-/usr/bin/python3}
# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_cutover_bin
ROUNDS=${BENCH_ROUNDS:-5}
DURATION=${BENCH_DURATION:-5}
WARMUP=${BENCH_WARMUP:-2}
CONNS=50
POST_CONNS=${BENCH_POST_CONNS:-10}
IDLE_CONNS=${BENCH_IDLE_CONNS:-1000}
BIG_BYTES=$((64 * 1024 * 1024))
SMALL_BYTES=100
TARGETS=${BENCH_TARGETS:-direct nginx haproxy cutover cutover-log}
# The upstream serves the 64 MiB file with sendfile (Debian's default), which
# a proxy cannot match with read/write copies; "off" gives a plain baseline.
UPSTREAM_SENDFILE=${BENCH_UPSTREAM_SENDFILE:-on}

OUT=bench/out
RES=$OUT/results.txt

die() { echo "bench: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }

[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive integer, not '$ROUNDS'"
[[ "$DURATION" =~ ^[1-9][0-9]*$ ]] || die "BENCH_DURATION must be a positive integer (s), not '$DURATION'"
for tool in nginx haproxy wrk curl taskset pgrep getconf; do
	command -v "$tool" >/dev/null || die "$tool not found: run 'make deps'"
done
[ -x "$PYTHON" ] || die "$PYTHON not found"
ECHO_MODULE=/usr/lib/nginx/modules/ngx_http_echo_module.so
[ -f "$ECHO_MODULE" ] || die "$ECHO_MODULE missing (Debian: libnginx-mod-http-echo, pulled in by nginx-light)"

# (1,000 held connections plus the proxies' own need the raised fd limit)
bench_prepare bench || die "mktemp failed"
mkdir -p "$WORK/www" "$WORK/tmp" "$OUT"
: >"$RES"

pids=()
cleanup() {
	local pid
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	cp "$WORK"/*.log "$WORK"/*.out "$WORK"/*.conf "$WORK"/*.cfg "$OUT"/ 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

result() { echo "$*" >>"$RES"; }

# render TEMPLATE DEST PORT [WORKDIR]: WORKDIR (default $WORK) for @WORK@.
render() {
	sed -e "s|@WORK@|${4:-$WORK}|g" -e "s|@PORT@|$3|g" -e "s|@UPSTREAM_PORT@|$UPSTREAM_PORT|g" \
		-e "s|@SENDFILE@|$UPSTREAM_SENDFILE|g" "$1" >"$2"
}

# rss_kib PID: VmRSS of PID and its children (nginx: master + worker), KiB.
rss_kib() {
	local total=0 p kb
	for p in "$1" $(pgrep -P "$1"); do
		kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null)
		total=$((total + ${kb:-0}))
	done
	echo "$total"
}

# wrk_run URL CONNS SCRIPT: one wrk run of DURATION; prints the RESULT line.
wrk_run() {
	timeout $((DURATION + 30)) "${LOAD_CPU[@]}" wrk -t1 -c"$2" -d"${DURATION}s" --timeout 5s \
		-s "$3" "$1" 2>&1 | grep '^RESULT ' | tail -1
}


# access_lines: the lines in cutover-log's access log so far (0 before it exists).
access_lines() {
	{ wc -l <"$ACCESS_LOG"; } 2>/dev/null || echo 0
}
LOG_LINES=0     # access-log lines written during cutover-log's measured runs
LOG_REQS=0      # requests wrk counted in those runs

# check_target TARGET: GET /small answers 200 with the whole file.
check_target() {
	local size
	size=$(curl -s -o /dev/null -m 5 -w '%{http_code} %{size_download}' "http://127.0.0.1:${PORT[$1]}/small" || true)
	[ "$size" = "200 $SMALL_BYTES" ] && return 0
	result "$1 note failed: GET /small answered '$size'"
	return 1
}

# measure_idle TARGET: RSS growth per idle keep-alive connection, once per
# target, first, while the process is fresh: memory freed after the big
# transfers would otherwise be reused and hide what each connection keeps.
measure_idle() {
	local who=$1 port=${PORT[$1]} pid=${PID[$1]}
	log "$who: RSS with $IDLE_CONNS idle keep-alive connections"
	local before after held fifo=$WORK/hold.$who.in hold_pid i
	before=$(rss_kib "$pid")
	rm -f "$fifo"
	mkfifo "$fifo"
	"${LOAD_CPU[@]}" "$PYTHON" bench/hold_idle.py "$port" "$IDLE_CONNS" /small <"$fifo" >"$WORK/hold.$who.out" 2>&1 &
	hold_pid=$!
	pids+=("$hold_pid")
	exec 9>"$fifo"
	held=
	for ((i = 0; i < 900; i++)); do     # at most 90 s
		held=$(sed -n 's/^ready \([0-9]*\)$/\1/p' "$WORK/hold.$who.out")
		[ -n "$held" ] && break
		kill -0 "$hold_pid" 2>/dev/null || break
		sleep 0.1
	done
	if [ -n "$held" ] && [ "$held" -gt 0 ]; then
		sleep 1     # let the proxy finish freeing per-request state
		after=$(rss_kib "$pid")
		result "$who rss_kib_per_conn $(awk -v a="$after" -v b="$before" -v n="$held" 'BEGIN { printf "%.2f", (a - b) / n }')"
		[ "$held" = "$IDLE_CONNS" ] || result "$who note only $held of $IDLE_CONNS idle connections stayed open"
	else
		result "$who rss_kib_per_conn failed: $(tail -1 "$WORK/hold.$who.out" 2>/dev/null)"
	fi
	exec 9>&-
	wait "$hold_pid" 2>/dev/null || true
}

# measure_round TARGET ROUND: one round of the plain-HTTP figures for TARGET,
# one line per figure; a proxy's CPU time is sampled around the small-GET run
# (the direct target is the upstream itself: no proxy CPU to report).
# cutover-log runs the small GET only, and its figures count only when its
# access log grew by a line for each request wrk counted.
measure_round() {
	local who=$1 r=$2 url="http://127.0.0.1:${PORT[$1]}" line req dur c0="" c1 out code got speed
	local lines0="" logged why=""
	log "round $r/$ROUNDS $who: small GET, $CONNS connections, ${DURATION}s"
	[ "$who" = cutover-log ] && lines0=$(access_lines)
	[ "$who" = direct ] || c0=$(proxy_cpu_ticks "${PID[$who]}")
	line=$(wrk_run "$url/small" "$CONNS" bench/get.lua)
	# cutover writes its access log every 100 ms: let the last lines land
	# (and their write count in its CPU time) before counting them.
	[ -z "$lines0" ] || sleep 0.5
	[ -z "$c0" ] || c1=$(proxy_cpu_ticks "${PID[$who]}")
	req=$(field "$line" requests)
	dur=$(field "$line" duration_us)
	if [ -n "$lines0" ] && [ -n "$req" ]; then
		logged=$(($(access_lines) - lines0))
		LOG_LINES=$((LOG_LINES + logged))
		LOG_REQS=$((LOG_REQS + req))
		# wrk does not count the requests still in flight when it stops
		if [ "$logged" -lt "$req" ] || [ "$logged" -gt $((req + CONNS)) ]; then
			why="the access log grew by $logged lines for $req requests"
		fi
	fi
	if [ -z "$why" ] && [ -n "$req" ] && [ "${dur:-0}" -gt 0 ] && [ "$req" -gt 0 ]; then
		result "$who get_rps $(awk -v r="$req" -v d="$dur" 'BEGIN { printf "%.1f", r / (d / 1e6) }')"
		result "$who get_p50_ms $(awk -v v="$(field "$line" p50_us)" 'BEGIN { printf "%.3f", v / 1000 }')"
		result "$who get_p99_ms $(awk -v v="$(field "$line" p99_us)" 'BEGIN { printf "%.3f", v / 1000 }')"
		[ -z "$c0" ] || result "$who cpu_us_per_req $(awk -v c=$((c1 - c0)) -v hz="$CLK_TCK" -v r="$req" \
			'BEGIN { printf "%.3f", c / hz * 1e6 / r }')"
		[ "$(field "$line" errors)" = 0 ] || result "$who note round $r small GET: $(field "$line" errors) socket errors"
		[ "$(field "$line" non2xx)" = 0 ] || result "$who note round $r small GET: $(field "$line" non2xx) non-2xx answers"
	else
		for k in get_rps get_p50_ms get_p99_ms cpu_us_per_req; do
			[ "$who$k" = directcpu_us_per_req ] || result "$who $k failed: ${why:-wrk: ${line:-no result}}"
		done
	fi
	[ "$who" = cutover-log ] && return 0

	log "round $r/$ROUNDS $who: 64 MiB download"
	out=$("${LOAD_CPU[@]}" curl -s -o /dev/null -m 60 -w '%{http_code} %{size_download} %{speed_download}' "$url/big" || true)
	read -r code got speed <<<"$out"
	if [ "${code:-}" = 200 ] && [ "${got:-}" = "$BIG_BYTES" ]; then
		result "$who dl_mibs $(awk -v s="${speed%%.*}" 'BEGIN { printf "%.1f", s / 1048576 }')"
	else
		result "$who dl_mibs failed: download '$out'"
	fi

	log "round $r/$ROUNDS $who: 1 MiB POST, $POST_CONNS connections, ${DURATION}s"
	line=$(wrk_run "$url/post" "$POST_CONNS" bench/post.lua)
	req=$(field "$line" requests)
	dur=$(field "$line" duration_us)
	if [ -n "$req" ] && [ "${dur:-0}" -gt 0 ] && [ "$req" -gt 0 ] && [ "$(field "$line" non2xx)" = 0 ]; then
		result "$who post_rps $(awk -v r="$req" -v d="$dur" 'BEGIN { printf "%.1f", r / (d / 1e6) }')"
		[ "$(field "$line" errors)" = 0 ] || result "$who note round $r 1 MiB POST: $(field "$line" errors) socket errors"
	else
		result "$who post_rps failed: wrk: ${line:-no result}"
	fi
}

# busy_percent: CPU time used by anything over one second (all CPUs), %.
busy_percent() {
	local a b
	a=$(head -1 /proc/stat)
	sleep 1
	b=$(head -1 /proc/stat)
	awk -v a="$a" -v b="$b" 'BEGIN {
		n = split(a, x); split(b, y); total = 0
		for (i = 2; i <= n; i++) total += y[i] - x[i]
		idle = (y[5] - x[5]) + (y[6] - x[6])
		printf "%.0f", (total > 0 ? 100 * (total - idle) / total : 0) }'
}

# ---- set-up ---------------------------------------------------------------

busy=$(busy_percent)
if [ "$busy" -gt 10 ]; then
	log "WARNING: the machine is busy before the bench starts (${busy}% CPU in use): numbers will be low and noisy"
	result "meta busy ${busy}% of the CPUs were in use by other processes when the bench started: numbers are unreliable"
fi

head -c "$SMALL_BYTES" /dev/zero | tr '\0' 'a' >"$WORK/www/small"
head -c "$BIG_BYTES" /dev/urandom >"$WORK/www/big"

read -r UPSTREAM_PORT NGINX_PORT HAPROXY_PORT CUTOVER_PORT CUTOVER_LOG_PORT <<<"$(free_ports 5)"
render bench/nginx-upstream.conf.in "$WORK/upstream.conf" "$UPSTREAM_PORT"
render bench/nginx-proxy.conf.in "$WORK/nginx-proxy.conf" "$NGINX_PORT"
render bench/haproxy.cfg.in "$WORK/haproxy.cfg" "$HAPROXY_PORT"
render bench/cutover.conf.in "$WORK/cutover.conf" "$CUTOVER_PORT"
[ -z "${BENCH_CUTOVER_EXTRA:-}" ] || printf '%s\n' "$BENCH_CUTOVER_EXTRA" >>"$WORK/cutover.conf"
mkdir -p "$WORK/cutover-spool"
# cutover-log: the same config with its own state, spool and admin socket in
# $WORK/cutover-log/, and the JSON access log on (not *.log: cleanup would
# copy it to $OUT).
ACCESS_LOG=$WORK/cutover-log/access.jsonl
render bench/cutover.conf.in "$WORK/cutover-log.conf" "$CUTOVER_LOG_PORT" "$WORK/cutover-log"
sed -i "s|^log = { level = \"warn\"; };\$|log = { level = \"warn\"; access = \"$ACCESS_LOG\"; };|" "$WORK/cutover-log.conf"
grep -q "access = \"$ACCESS_LOG\"" "$WORK/cutover-log.conf" || die "bench/cutover.conf.in: log line not found"
[ -z "${BENCH_CUTOVER_EXTRA:-}" ] || printf '%s\n' "$BENCH_CUTOVER_EXTRA" >>"$WORK/cutover-log.conf"
mkdir -p "$WORK/cutover-log/cutover-spool"

versions="$(nginx -v 2>&1 | sed 's/^nginx version: //'), $(haproxy -v 2>/dev/null | head -1 | awk '{ print "HAProxy " $3 }')"
versions+=", wrk $(wrk -v 2>&1 | head -1 | awk '{ print $2 }'), curl $(curl --version | head -1 | awk '{ print $2 }')"
versions+=", libevent $(pkg-config --modversion libevent 2>/dev/null || echo '?')"
versions+=", $("$CUTOVER_BIN" --version 2>/dev/null | head -1 || echo "cutover ?")"
pin_note="proxy pinned to CPU 0, load generator to CPU 1, upstream unpinned"
[ ${#PROXY_CPU[@]} -gt 0 ] || pin_note="no CPU pinning"
result "meta date $(date -u '+%Y-%m-%d %H:%M UTC')"
result "meta nproc $(nproc)"
result "meta cpu $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
result "meta memory $(awk '/^MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
result "meta kernel $(uname -r)"
result "meta versions $versions"
result "meta cutover_bin $CUTOVER_BIN"
result "meta rounds $ROUNDS"
result "meta method every proxy started once for the whole run, one shared ${WARMUP}s wrk warm-up each, then $ROUNDS interleaved rounds (every target once per round, the order rotated by one each round), each round: wrk -t1 -c$CONNS ${DURATION}s on a ${SMALL_BYTES} B file with the proxy's CPU time (utime+stime of its processes from /proc/PID/stat) sampled before and after, one curl download of 64 MiB, wrk -t1 -c$POST_CONNS ${DURATION}s of 1 MiB POSTs (the upstream reads each body whole); RSS growth of the serving process(es) with $IDLE_CONNS idle keep-alive connections that each made one request, divided by the connections held; one worker/thread per proxy; $pin_note; upstream nginx-light with 1 worker, sendfile $UPSTREAM_SENDFILE; access logs off everywhere but cutover-log, the same cutover binary as a second instance with the JSON access log on, written to a file in the bench's work dir under /tmp; cutover-log takes part in the small-GET rounds only (no 64 MiB download, 1 MiB POST or idle RSS), and a round counts only when its access log grew by one line per request wrk counted (checked 0.5 s after the run, inside the CPU sample, so the last 100 ms batch is written)"

start upstream nginx -p "$WORK/" -e "$WORK/upstream.error.log" -c "$WORK/upstream.conf"
UPSTREAM_PID=$STARTED_PID
wait_ready "$UPSTREAM_PORT" "$UPSTREAM_PID" || die "upstream nginx did not start: $(tail -3 "$WORK/upstream.out" "$WORK/upstream.error.log" 2>/dev/null)"

# Every proxy starts now and stays up to the end: one warm-up shared by all
# rounds, and an idle one costs the others nothing (one CPU each, pinned).
declare -A PORT PID
PORT[direct]=$UPSTREAM_PORT
PID[direct]=$UPSTREAM_PID
active=()
for target in $TARGETS; do
	case $target in
	direct) ;;
	nginx)
		start nginx-proxy "${PROXY_CPU[@]}" nginx -p "$WORK/" -e "$WORK/nginx-proxy.error.log" -c "$WORK/nginx-proxy.conf"
		wait_ready "$NGINX_PORT" "$STARTED_PID" ||
			{ result "nginx note failed: did not start: $(tail -1 "$WORK/nginx-proxy.out")"; continue; }
		PORT[nginx]=$NGINX_PORT
		;;
	haproxy)
		start haproxy "${PROXY_CPU[@]}" haproxy -db -f "$WORK/haproxy.cfg"
		wait_ready "$HAPROXY_PORT" "$STARTED_PID" ||
			{ result "haproxy note failed: did not start: $(tail -1 "$WORK/haproxy.out")"; continue; }
		PORT[haproxy]=$HAPROXY_PORT
		;;
	cutover | cutover-log)
		port=$CUTOVER_PORT
		[ "$target" = cutover ] || port=$CUTOVER_LOG_PORT
		if [ ! -x "$CUTOVER_BIN" ]; then
			result "$target note failed: no binary at $CUTOVER_BIN"
			continue
		elif ! "$CUTOVER_BIN" check -c "$WORK/$target.conf" >"$WORK/$target-check.out" 2>&1; then
			result "$target note failed: cutover check: $(head -1 "$WORK/$target-check.out")"
			continue
		fi
		start "$target" "${PROXY_CPU[@]}" "$CUTOVER_BIN" run -c "$WORK/$target.conf"
		wait_ready "$port" "$STARTED_PID" ||
			{ result "$target note failed: did not answer: $(tail -1 "$WORK/$target.out")"; continue; }
		PORT[$target]=$port
		;;
	*) die "unknown target $target" ;;
	esac
	[ "$target" = direct ] || PID[$target]=$STARTED_PID
	check_target "$target" && active+=("$target")
done
[ ${#active[@]} -gt 0 ] || die "no target answered"

for target in "${active[@]}"; do [ "$target" = cutover-log ] || measure_idle "$target"; done
for target in "${active[@]}"; do
	log "$target: ${WARMUP}s warm-up"
	timeout $((WARMUP + 30)) "${LOAD_CPU[@]}" wrk -t1 -c"$CONNS" -d"${WARMUP}s" "http://127.0.0.1:${PORT[$target]}/small" >/dev/null 2>&1
done
# Round r starts at target r mod n, so no target is always first or last.
n=${#active[@]}
for ((r = 0; r < ROUNDS; r++)); do
	for ((i = 0; i < n; i++)); do
		measure_round "${active[(i + r) % n]}" $((r + 1))
	done
done
for target in "${active[@]}"; do
	kill -0 "${PID[$target]}" 2>/dev/null || result "$target note exited during the bench"
done
for target in "${active[@]}"; do
	[ "$target" = direct ] || stop "${PID[$target]}"
done
if [ -n "${PORT[cutover-log]:-}" ]; then
	result "cutover-log note access log: $LOG_LINES lines written during the measured runs for $LOG_REQS requests wrk counted; $(access_lines) lines, $(($(stat -c %s "$ACCESS_LOG" 2>/dev/null || echo 0) / 1048576)) MiB in all at exit"
fi

"$PYTHON" bench/report.py "$RES" bench/RESULTS.md || die "report failed"

# part SCRIPT TITLE: runs bench/SCRIPT.sh, which writes $OUT/SCRIPT.md, and
# appends that table to bench/RESULTS.md (or says it failed).
part() {
	local script=$1 title=$2
	log "$title (bench/$script.sh)"
	rm -f "$OUT/$script.md"
	CUTOVER_BIN=$CUTOVER_BIN PYTHON=$PYTHON "bench/$script.sh" >/dev/null
	if [ -s "$OUT/$script.md" ]; then
		{ echo; cat "$OUT/$script.md"; } >>bench/RESULTS.md
		echo
		cat "$OUT/$script.md"
	else
		printf '\n## %s\n\nfailed: bench/%s.sh wrote no table (see %s/%s/)\n' \
			"$title" "$script" "$OUT" "$script" >>bench/RESULTS.md
	fi
}
[ "${BENCH_FLIPS:-1}" = 1 ] && part flips "Flips under load (issue 4)"
[ "${BENCH_TLS:-1}" = 1 ] && part tls "TLS front"
[ "${BENCH_SPOOL:-1}" = 1 ] && part spool "Durable spool (issue 14)"
echo
echo "bench: written to bench/RESULTS.md (raw numbers and logs in $OUT/)"
