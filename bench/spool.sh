#!/usr/bin/env bash
# bench/spool.sh: the durable spool (issue 14, "Bench"), in one run:
#   (a) the disk's one-fdatasync-per-record rate: append 10 KiB, fdatasync,
#       repeat, for SPOOL_FSYNC_SECONDS (bench/spool_fsync.c, built by meson
#       as build-release/bench/spool_fsync);
#   (b) its raw batched-append limit: append 64 x 10 KiB, one fdatasync,
#       repeat, as long;
#   acks: cutover (1 worker on CPU 0) with the global scope in maintenance
#       and a spooling route; wrk -t1 -cSPOOL_CONNS (CPU 1) POSTing a ~10 KiB
#       multipart OpenRosa submission (bench/spool-post.lua, a unique
#       instanceID each, spread over SPOOL_PROJECTS projects
#       /a/benchN/receiver/) for BENCH_DURATION s after BENCH_WARMUP s:
#       acknowledged submissions/s and p50/p99 acknowledgement latency; the
#       row fails on any non-2xx answer;
#   replay: `cutover switch new --force` with every record of the run above
#       spooled, timed until status shows no record left: records/s, at the
#       concurrency the replay uses (one per project: SPOOL_PROJECTS, within
#       half of max_active = 2 x SPOOL_PROJECTS); beside the same upstream
#       (nginx-light, 1 worker, reads each body, answers 201) taking the
#       same POSTs from wrk -t1 -c<that concurrency> directly.
# The helper's file and the spool live in a fresh directory made in
# SPOOL_DATA (default bench/out, on the checkout's disk, as a deployment's
# /var/lib/cutover would be; that directory alone is removed at the end);
# its file system is printed, and a tmpfs is flagged in the table.
# Targets: acks/s >= 20x (a), >= 0.7x (b); replay >= 0.8x direct.
# Prints the table and writes it to bench/out/spool.md (bench/run.sh appends
# it to bench/RESULTS.md); configs and logs end up in bench/out/spool/.
# Knobs: CUTOVER_BIN, BENCH_DURATION (s, 10), BENCH_WARMUP (s, 2),
# BENCH_PIN (1 = taskset when there are >= 2 CPUs), SPOOL_CONNS (64),
# SPOOL_PROJECTS (16), SPOOL_FSYNC_SECONDS (5), SPOOL_DATA,
# SPOOL_REPLAY_TIMEOUT (s, 600).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

PYTHON=${PYTHON:-/usr/bin/python3}
# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_cutover_bin
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
CONNS=${SPOOL_CONNS:-64}
PROJECTS=${SPOOL_PROJECTS:-16}
FSYNC_SECONDS=${SPOOL_FSYNC_SECONDS:-5}
REPLAY_TIMEOUT=${SPOOL_REPLAY_TIMEOUT:-600}
DATA_PARENT=${SPOOL_DATA:-$PWD/bench/out}
OUT=bench/out
MD=$OUT/spool.md
LOGS=$OUT/spool
HELPER=$(dirname "$CUTOVER_BIN")/bench/spool_fsync

die() { echo "spool: $*" >&2; exit 1; }
log() { echo "spool: $*" >&2; }

for tool in nginx wrk curl taskset timeout ninja df; do
	command -v "$tool" >/dev/null || die "$tool not found: run 'make deps'"
done
[ -x "$PYTHON" ] || die "$PYTHON not found"
[ -x "$CUTOVER_BIN" ] || die "no cutover binary at $CUTOVER_BIN"
ninja -C "$(dirname "$CUTOVER_BIN")" bench/spool_fsync >/dev/null ||
	die "could not build $HELPER"
bench_prepare spool || die "mktemp failed"
mkdir -p "$WORK/tmp" "$OUT"
mkdir -p "$DATA_PARENT" && DATA=$(mktemp -d "$DATA_PARENT/spool-data.XXXXXX") ||
	die "cannot make a directory in $DATA_PARENT"
mkdir -m 700 "$DATA/spool" || die "cannot make $DATA/spool"

pids=()
cleanup() {
	local pid
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	rm -rf "$LOGS"
	mkdir -p "$LOGS"
	cp "$WORK"/*.log "$WORK"/*.out "$WORK"/*.conf "$LOGS/" 2>/dev/null || true
	rm -rf "$WORK" "$DATA"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wrk_post URL CONNS SECONDS: one wrk run of the submission script; prints
# its RESULT line.
wrk_post() {
	SPOOL_PROJECTS=$PROJECTS timeout $(($3 + 30)) "${LOAD_CPU[@]}" wrk -t1 -c"$2" -d"$3s" \
		--timeout 10s -s bench/spool-post.lua "$1" 2>&1 | grep '^RESULT ' | tail -1
}

rate() {  # rate LINE: requests per second of a wrk RESULT line
	awk -v r="$(field "$1" requests)" -v d="$(field "$1" duration_us)" \
		'BEGIN { if (d > 0) printf "%.1f", r / (d / 1e6); else print 0 }'
}

admin() { timeout 30 "$CUTOVER_BIN" "$@" --admin "unix:$WORK/cutover-admin.sock"; }

RES=$WORK/spool.results
: >"$RES"
result() { echo "$*" >>"$RES"; }

fs=$(df -PT "$DATA" | awk 'NR == 2 { print $2 " (" $1 ", mounted on " $7 ")" }')
log "spool and fsync helper in $DATA: $fs"
result "fs $fs"
case $fs in tmpfs* | ramfs*) result "note the spool is on $fs, not a disk: the fsync figures mean nothing" ;; esac

# ---- (a), (b): the disk ----------------------------------------------------
for mode in single batch; do
	log "fsync helper, $mode, ${FSYNC_SECONDS}s"
	line=$("${PROXY_CPU[@]}" "$HELPER" "$DATA" "$FSYNC_SECONDS" "$mode" 2>"$WORK/fsync-$mode.out")
	echo "$line" >>"$WORK/fsync-$mode.out"
	result "fsync_$mode $(field "$line" rate) $(field "$line" sync_p50_us) $(field "$line" sync_p99_us)"
done

# ---- acks ------------------------------------------------------------------
read -r UPSTREAM_PORT CUTOVER_PORT <<<"$(free_ports 2)"
sed -e "s|@WORK@|$WORK|g" -e "s|@PORT@|$UPSTREAM_PORT|g" \
	bench/nginx-spool-upstream.conf.in >"$WORK/upstream.conf"
sed -e "s|@WORK@|$WORK|g" -e "s|@DATA@|$DATA|g" -e "s|@PORT@|$CUTOVER_PORT|g" \
	-e "s|@UPSTREAM_PORT@|$UPSTREAM_PORT|g" -e "s|@MAX_ACTIVE@|$((2 * PROJECTS))|g" \
	bench/cutover-spool.conf.in >"$WORK/cutover.conf"
"$CUTOVER_BIN" check -c "$WORK/cutover.conf" >"$WORK/cutover-check.out" 2>&1 ||
	die "cutover check: $(head -1 "$WORK/cutover-check.out")"

start upstream nginx -p "$WORK/" -e "$WORK/upstream.error.log" -c "$WORK/upstream.conf"
UPSTREAM_PID=$STARTED_PID
wait_ready "$UPSTREAM_PORT" "$UPSTREAM_PID" || die "upstream nginx did not start: $(tail -3 "$WORK/upstream.out" "$WORK/upstream.error.log" 2>/dev/null)"
start cutover "${PROXY_CPU[@]}" "$CUTOVER_BIN" run -c "$WORK/cutover.conf"
CUTOVER_PID=$STARTED_PID
wait_ready "$CUTOVER_PORT" "$CUTOVER_PID" || die "cutover did not answer: $(tail -3 "$WORK/cutover.out")"
admin maintenance on --reason "spool bench" >>"$WORK/admin.out" 2>&1 || die "maintenance on failed: $(tail -1 "$WORK/admin.out")"

url="http://127.0.0.1:$CUTOVER_PORT/"
log "acks: wrk -t1 -c$CONNS ${WARMUP}s warm-up + ${DURATION}s into the spool"
wrk_post "$url" "$CONNS" "$WARMUP" >"$WORK/wrk-warmup.out"
line=$(wrk_post "$url" "$CONNS" "$DURATION")
echo "$line" >"$WORK/wrk-acks.out"
if [ -z "$(field "$line" requests)" ]; then
	result "acks failed: wrk: ${line:-no result}"
elif [ "$(field "$line" non2xx)" != 0 ]; then
	result "acks failed: $(field "$line" non2xx) non-2xx answers of $(field "$line" requests)"
else
	result "acks $(rate "$line") $(field "$line" p50_us) $(field "$line" p99_us) $(field "$line" errors)"
fi

# ---- replay ----------------------------------------------------------------
# the switch and the wait for an empty spool timed in one process, polling
# GET /status every 20 ms on the admin socket
log "replay: switch new, wait for the spool to drain"
"$PYTHON" - "$WORK/cutover-admin.sock" "$CUTOVER_BIN" "$REPLAY_TIMEOUT" >"$WORK/replay.out" 2>&1 <<'PY'
import http.client, json, socket, subprocess, sys, time
sock, binary, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])

class Unix(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(10)
        self.sock.connect(sock)

seen = []          # upstreams.new.in_flight at each poll: the replay's concurrency

def spool():
    c = Unix("cutover")
    c.request("GET", "/status")
    doc = json.loads(c.getresponse().read())
    c.close()
    seen.append(doc.get("upstreams", {}).get("new", {}).get("in_flight", 0))
    return doc["spool"]

before = spool()
t0 = time.monotonic()
p = subprocess.run([binary, "switch", "new", "--force", "--reason", "spool bench replay",
                    "--admin", "unix:" + sock], capture_output=True, text=True, timeout=60)
if p.returncode != 0:
    print("replay failed: switch: %s" % (p.stderr.strip() or p.stdout.strip()))
    sys.exit(0)
while True:
    now = spool()
    if now["records"] - now["dead_letters"] == 0:
        break
    if time.monotonic() - t0 > limit:
        print("replay failed: %d of %d records left after %.0f s" % (now["records"], before["records"], limit))
        sys.exit(0)
    time.sleep(0.02)
took = time.monotonic() - t0
busy = seen[1:-1] or [0]
print("replay %d %.3f %d %.1f %d" % (before["records"], took, now["dead_letters"],
                                    sum(busy) / len(busy), max(busy)))
PY
rline=$(grep '^replay ' "$WORK/replay.out" | tail -1)
if [ -z "$rline" ]; then
	result "replay failed: $(tail -1 "$WORK/replay.out")"
else
	result "$rline $PROJECTS"
fi
kill -0 "$CUTOVER_PID" 2>/dev/null || result "note cutover exited during the bench: $(tail -1 "$WORK/cutover.out")"
stop "$CUTOVER_PID"

# ---- the upstream directly, at the replay's concurrency ---------------------
log "direct: wrk -t1 -c$PROJECTS ${DURATION}s to the upstream"
line=$(wrk_post "http://127.0.0.1:$UPSTREAM_PORT/" "$PROJECTS" "$DURATION")
echo "$line" >"$WORK/wrk-direct.out"
if [ -n "$(field "$line" requests)" ] && [ "$(field "$line" non2xx)" = 0 ]; then
	result "direct $(rate "$line") $(field "$line" errors)"
else
	result "direct failed: wrk: ${line:-no result}"
fi
stop "$UPSTREAM_PID"

# ---- the table -----------------------------------------------------------------
"$PYTHON" - "$RES" "$MD" "$CONNS" "$PROJECTS" "$DURATION" "$WARMUP" "$FSYNC_SECONDS" \
	"${#PROXY_CPU[@]}" "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import sys
res, md, conns, projects, duration, warmup, fsecs, pinned, date, load = sys.argv[1:]
rows = {}
notes = []
for line in open(res):
    k, _, v = line.rstrip("\n").partition(" ")
    if k == "note":
        notes.append(v)
    else:
        rows[k] = v.split(" ") if not v.startswith("failed") else v

def num(key, i=0):
    v = rows.get(key)
    try:
        return float(v[i]) if isinstance(v, list) else None
    except (ValueError, IndexError):
        return None

def show(key, i=0, fmt="{:.0f}"):
    v = rows.get(key)
    if isinstance(v, str):
        return v
    x = num(key, i)
    return "-" if x is None else fmt.format(x)

def ms(key, i):  # a microsecond figure in ms
    x = num(key, i)
    return "-" if x is None else "{:.2f}".format(x / 1000)

a, b, acks, direct = num("fsync_single"), num("fsync_batch"), num("acks"), num("direct")
replay = None
if isinstance(rows.get("replay"), list):
    n, took = num("replay", 0), num("replay", 1)
    replay = n / took if took else None
conc = rows["replay"][5] if isinstance(rows.get("replay"), list) else projects

def ratio(x, y):
    return x / y if x is not None and y else None

out = ["## Durable spool (issue 14)", "",
       "%s; load average %s at the end; %s; the spool and the fsync helper's file on %s."
       % (date, load, "cutover pinned to CPU 0, wrk to CPU 1, upstream unpinned" if pinned != "0"
          else "no CPU pinning", " ".join(rows.get("fs", ["?"]))),
       "(a) `bench/spool_fsync DIR %s single`: append 10 KiB, `fdatasync`, repeat; "
       "(b) `... batch`: append 64 x 10 KiB, one `fdatasync`, repeat." % fsecs,
       "Acks: cutover, 1 worker, global maintenance, route `spool = true`; `wrk -t1 -c%s -d%ss` "
       "(after %ss warm-up) POSTing a 10.4 KiB multipart OpenRosa submission "
       "(bench/spool-post.lua, unique instanceID, %s projects) — every answer 201, else the row fails."
       % (conns, duration, warmup, projects),
       "Replay: every record of that run spooled, `cutover switch new --force`, timed until "
       "`status` shows no record left; the replay runs one record at a time per project, %s "
       "projects in parallel (max_active %d, replays take half). Direct: nginx-light (1 worker, "
       "reads each body, 201) taking the same POSTs from `wrk -t1 -c%s -d%ss`."
       % (conc, 2 * int(projects), conc, duration), ""]
out += ["| measure | records/s | p50 | p99 | notes |", "|---|---|---|---|---|",
        "| (a) one fdatasync per 10 KiB record | %s | %s µs | %s µs | per fdatasync |"
        % (show("fsync_single"), show("fsync_single", 1), show("fsync_single", 2)),
        "| (b) 64 x 10 KiB per fdatasync | %s | %s µs | %s µs | per fdatasync |"
        % (show("fsync_batch"), show("fsync_batch", 1), show("fsync_batch", 2)),
        "| cutover acknowledged submissions, %s conns | %s | %s ms | %s ms | %s socket errors, 0 non-2xx |"
        % (conns, show("acks"), ms("acks", 1), ms("acks", 2), show("acks", 3))
        if not isinstance(rows.get("acks"), str) else
        "| cutover acknowledged submissions, %s conns | %s | | | |" % (conns, rows["acks"]),
        "| replay to nginx, %s concurrent | %s | | | %s records in %s s, %s dead letters; "
        "in flight to the upstream (status, every 20 ms): mean %s, max %s |"
        % (conc, "{:.0f}".format(replay) if replay else show("replay"),
           show("replay", 0), show("replay", 1, "{:.2f}"), show("replay", 2),
           show("replay", 3, "{:.1f}"), show("replay", 4)),
        "| nginx directly, wrk -c%s | %s | | | %s socket errors |"
        % (conc, show("direct"), show("direct", 1)), ""]

def verdict(r, ok, keys):
    if r is None:
        return "-", "failed" if any(isinstance(rows.get(k), str) for k in keys) else "n/a"
    return "{:.2f}x".format(r), "PASS" if ok(r) else "MISS"

checks = [("acks/s vs (a) one fdatasync per record", ">= 20x", ratio(acks, a), lambda r: r >= 20,
           ("acks", "fsync_single")),
          ("acks/s vs (b) batched-append limit", ">= 0.70x", ratio(acks, b), lambda r: r >= 0.7,
           ("acks", "fsync_batch")),
          ("replay vs the upstream directly, same concurrency", ">= 0.80x", ratio(replay, direct),
           lambda r: r >= 0.8, ("replay", "direct"))]
out += ["| target (issue 14) | wanted | cutover | result |", "|---|---|---|---|"]
for name, want, r, ok, keys in checks:
    v, res = verdict(r, ok, keys)
    out.append("| %s | %s | %s | %s |" % (name, want, v, res))
for n in notes:
    out.append("")
    out.append("Note: " + n)
text = "\n".join(out) + "\n"
open(md, "w").write(text)
print(text)
PY
