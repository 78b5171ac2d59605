# bench/lib.sh: process helpers shared by bench/run.sh, bench/flips.sh,
# bench/tls.sh, bench/spool.sh and scripts/tls-audit.sh.
# The caller sets PYTHON, calls bench_prepare (which sets WORK) and owns the
# array `pids` (its cleanup kills what is left in it).

# bench_cutover_bin: CUTOVER_BIN as given, else build-release/cutover,
# else build/cutover.
bench_cutover_bin() {
	if [ -z "${CUTOVER_BIN:-}" ]; then
		CUTOVER_BIN=build-release/cutover
		[ -x "$CUTOVER_BIN" ] || CUTOVER_BIN=build/cutover
	fi
}

# bench_prepare NAME: raises the fd limit; sets PROXY_CPU and LOAD_CPU, the
# taskset prefixes that put the proxy on CPU 0 and the load on CPU 1
# (BENCH_PIN=1, the default, with >= 2 CPUs; empty otherwise); makes WORK,
# a fresh /tmp/cutover-NAME.* dir, mode 755: nginx workers run as "nobody"
# when started as root and must read it.
bench_prepare() {
	ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
	PROXY_CPU=()
	LOAD_CPU=()
	if [ "${BENCH_PIN:-1}" = 1 ] && [ "$(nproc)" -ge 2 ]; then
		PROXY_CPU=(taskset -c 0)
		LOAD_CPU=(taskset -c 1)
	fi
	WORK=$(mktemp -d "/tmp/cutover-$1.XXXXXX") || return 1
	chmod 755 "$WORK"
}

# free_ports N: N free TCP ports on 127.0.0.1, all distinct (held together,
# then released).
free_ports() {
	"$PYTHON" - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# start NAME CMD...: runs CMD in the background, output to $WORK/NAME.out;
# sets STARTED_PID.
start() {
	local name=$1
	shift
	"$@" >"$WORK/$name.out" 2>&1 &
	STARTED_PID=$!
	pids+=("$STARTED_PID")
}

stop() {  # stop PID: graceful, then hard after 5 s
	local pid=$1 i
	kill "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# wait_url URL PID [CURL_OPTION...]: polls GET URL until it answers 200 (at
# most 10 s); fails at once when PID exits.
wait_url() {
	local url=$1 pid=$2 i code
	shift 2
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || return 1
		code=$(curl -s -o /dev/null -m 1 -w '%{http_code}' "$@" "$url" || true)
		[ "$code" = 200 ] && return 0
		sleep 0.1
	done
	return 1
}

# wait_ready PORT PID: polls GET /small until it answers 200 (at most 10 s).
wait_ready() { wait_url "http://127.0.0.1:$1/small" "$2"; }

# wait_ready_tls PORT PID CAFILE: the same over TLS, the certificate checked
# against CAFILE.
wait_ready_tls() { wait_url "https://127.0.0.1:$1/small" "$2" --cacert "$3"; }

# field LINE NAME: the value of NAME=... in LINE (the load scripts' RESULT lines).
field() {
	sed -n "s/.* $2=\([0-9.]*\).*/\1/p" <<<" $1"
}

# proxy_cpu_ticks PID: utime + stime of PID and its children (nginx: master
# + worker), in clock ticks (CLK_TCK a second); the fields after "(comm)" so
# a name with a space cannot shift them.
CLK_TCK=$(getconf CLK_TCK)
proxy_cpu_ticks() {
	local total=0 p t
	for p in "$1" $(pgrep -P "$1"); do
		t=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }')
		total=$((total + ${t:-0}))
	done
	echo "$total"
}
