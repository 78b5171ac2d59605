#!/usr/bin/env bash
# bench/ab.sh A_BIN B_BIN: two cutover builds side by side, for a change
# that must not cost speed. Both run at once (one worker each, on CPU 0; the
# idle one costs nothing), in front of the same nginx upstream; every round
# measures A then B or B then A (the order alternates), so a machine that
# gets busier or quieter during the run shifts both alike. Per round and
# build: small-GET req/s and p99 (wrk, 50 connections), the proxy's CPU time
# per request (utime + stime from /proc/PID/stat over the wrk run), 1 MiB
# POST req/s (10 connections) and one 64 MiB download. Prints the median
# and the spread (min..max) of each figure and the B/A ratio of the medians.
# Knobs: AB_ROUNDS (default 5), AB_DURATION (s, default 5).
set -uo pipefail
cd "$(dirname "$0")/.."

[ $# -eq 2 ] || { echo "usage: bench/ab.sh A_BIN B_BIN" >&2; exit 2; }
A_BIN=$1
B_BIN=$2
PYTHON=${PYTHON:-/usr/bin/python3}
ROUNDS=${AB_ROUNDS:-5}
DURATION=${AB_DURATION:-5}
# shellcheck source=bench/lib.sh
. bench/lib.sh

die() { echo "ab: $*" >&2; exit 1; }
for tool in nginx wrk curl taskset; do
	command -v "$tool" >/dev/null || die "$tool not found: run 'make deps'"
done
[ -x "$A_BIN" ] && [ -x "$B_BIN" ] || die "both binaries must exist"

bench_prepare ab || die "mktemp failed"
mkdir -p "$WORK/www" "$WORK/tmp"
pids=()
cleanup() {
	local pid
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT

head -c 100 /dev/zero | tr '\0' 'a' >"$WORK/www/small"
head -c $((64 << 20)) /dev/urandom >"$WORK/www/big"
read -r UPSTREAM_PORT A_PORT B_PORT <<<"$(free_ports 3)"
render() {
	sed -e "s|@WORK@|$WORK/$4|g" -e "s|@PORT@|$3|g" -e "s|@UPSTREAM_PORT@|$UPSTREAM_PORT|g" \
		-e "s|@SENDFILE@|on|g" "$1" >"$2"
}
render bench/nginx-upstream.conf.in "$WORK/upstream.conf" "$UPSTREAM_PORT" ""
start upstream nginx -c "$WORK/upstream.conf"
wait_ready "$UPSTREAM_PORT" "$STARTED_PID" || die "the upstream did not start"

declare -A PID PORT
for t in A B; do
	mkdir -p "$WORK/$t/cutover-spool"
	port=${t}_PORT
	render bench/cutover.conf.in "$WORK/$t.conf" "${!port}" "$t"
	bin=${t}_BIN
	start "cutover-$t" "${PROXY_CPU[@]}" "${!bin}" run -c "$WORK/$t.conf"
	wait_ready "${!port}" "$STARTED_PID" || die "cutover $t did not start: $(tail -1 "$WORK/cutover-$t.out")"
	PID[$t]=$STARTED_PID
	PORT[$t]=${!port}
done

RES=$WORK/results
: >"$RES"
one() {  # one TARGET: one round of every figure for TARGET
	local t=$1
	local url="http://127.0.0.1:${PORT[$t]}" line c0 c1 req dur p99
	"${LOAD_CPU[@]}" wrk -t1 -c50 -d1s "$url/small" >/dev/null 2>&1
	c0=$(proxy_cpu_ticks "${PID[$t]}")
	line=$("${LOAD_CPU[@]}" wrk -t1 -c50 -d"${DURATION}s" -s bench/get.lua "$url/small" 2>/dev/null |
		grep '^RESULT')
	c1=$(proxy_cpu_ticks "${PID[$t]}")
	req=$(field "$line" requests)
	dur=$(field "$line" duration_us)
	p99=$(field "$line" p99_us)
	[ -n "$req" ] && [ "$req" -gt 0 ] || die "wrk against $t: ${line:-no result}"
	awk -v t="$t" -v r="$req" -v d="$dur" -v p="$p99" -v c=$((c1 - c0)) \
		-v hz="$CLK_TCK" 'BEGIN {
		printf "%s get_rps %.1f\n%s get_p99_ms %.3f\n%s cpu_us_per_req %.2f\n",
			t, r / (d / 1e6), t, p / 1000, t, c / hz * 1e6 / r }' >>"$RES"
	line=$("${LOAD_CPU[@]}" wrk -t1 -c10 -d"${DURATION}s" -s bench/post.lua "$url/post" 2>/dev/null |
		grep '^RESULT')
	req=$(field "$line" requests)
	dur=$(field "$line" duration_us)
	awk -v t="$t" -v r="${req:-0}" -v d="${dur:-1}" \
		'BEGIN { printf "%s post_rps %.1f\n", t, r / (d / 1e6) }' >>"$RES"
	line=$("${LOAD_CPU[@]}" curl -s -o /dev/null -m 60 -w '%{speed_download}' "$url/big" || true)
	awk -v t="$t" -v s="${line:-0}" 'BEGIN { printf "%s dl_mibs %.1f\n", t, s / 1048576 }' >>"$RES"
}

for ((round = 1; round <= ROUNDS; round++)); do
	echo "ab: round $round of $ROUNDS" >&2
	if ((round % 2)); then one A; one B; else one B; one A; fi
done

echo "A: $A_BIN"
echo "B: $B_BIN"
echo "$ROUNDS interleaved rounds of ${DURATION}s; medians, (min..max)"
"$PYTHON" - "$RES" <<'PY'
import statistics, sys
vals = {}
for line in open(sys.argv[1]):
    t, k, v = line.split()
    vals.setdefault(k, {}).setdefault(t, []).append(float(v))
print(f"| {'figure':<16} | {'A':>26} | {'B':>26} | B/A   |")
print(f"|{'-' * 18}|{'-' * 28}|{'-' * 28}|-------|")
for k in ("get_rps", "get_p99_ms", "cpu_us_per_req", "post_rps", "dl_mibs"):
    row = []
    for t in ("A", "B"):
        v = vals[k][t]
        row.append((statistics.median(v), min(v), max(v)))
    cell = lambda m: f"{m[0]:.2f} ({m[1]:.2f}..{m[2]:.2f})"
    print(f"| {k:<16} | {cell(row[0]):>26} | {cell(row[1]):>26} | {row[1][0] / row[0][0]:.2f}x |")
PY
