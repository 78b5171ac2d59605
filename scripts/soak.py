#!/usr/bin/env python3
"""soak.py: `make soak` (issue 14): cutover (the ASan+UBSan build by
default) under mixed load for SOAK_SECONDS in front of two demo OpenRosa
upstreams on loopback:

  - small GETs (restore payloads, health) and 3 MiB streamed downloads,
  - form submissions on the spooling route, each with a unique instanceID,
  - a flip every SOAK_FLIP_SECONDS: old -> new -> maintenance -> old ->
    new -> maintenance ... (leaving maintenance replays the spool, to old
    or to new), and a project-only maintenance window now and then,
  - a kill -9 + restart every SOAK_KILL_SECONDS, none in the last
    SOAK_LONG_LIFE seconds.

Reports, and exits 1 when a criterion fails:
  - RSS of the proxy sampled every second, per process life (between
    kills); the first SOAK_WARMUP seconds of a life are warm-up; RSS swings
    with the flip cycle (6 flips: a maintenance window holds less memory
    than forwarding downloads), so a life is judged by its peak in the
    first cycle after warm-up against its peak in its last cycle, when it
    holds two; the longest judged life must grow < SOAK_RSS_LIMIT % (5;
    0 = not judged, for short smoke runs);
  - acknowledged submissions missing upstream after a final `switch new`
    and replay: every instanceID answered 2xx must have reached old or new
    (matched by the body's SHA-256, complete): 0;
  - sanitizer reports in the proxy's stderr, every life: 0;
  - answers outside the expected ones (GET 200/503, submission 201) and
    connection errors outside a kill window: 0; a proxy that exits by
    itself, a spool that does not drain, a final SIGTERM not exiting 0.

ASan's quarantine (256 MiB by default) keeps freed memory resident until
it is full, which looks like growth over minutes: ASAN_OPTIONS gets
quarantine_size_mb=16 unless the caller sets ASAN_OPTIONS.
Knobs (environment or options): SOAK_SECONDS (1800), SOAK_FLIP_SECONDS
(30), SOAK_KILL_SECONDS (180), SOAK_LONG_LIFE (600), SOAK_WARMUP (60),
SOAK_RSS_LIMIT (5 %), SOAK_SEED (14), SOAK_RSS_CSV (a file for the
samples), CUTOVER_BIN
(build-asan/cutover), SOAK_MARKDOWN (a file for the figures' table).
Loopback only; every load loop is bounded in count and time."""

import argparse
import hashlib
import os
import random
import signal
import sys
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("CUTOVER_BIN", str(REPO / "build-asan" / "cutover"))
if "asan" in os.path.basename(os.path.dirname(os.environ["CUTOVER_BIN"])):
    os.environ.setdefault("CUTOVER_SANITIZED", "1")
os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:quarantine_size_mb=16")
os.environ.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
sys.path.insert(0, str(REPO / "tests" / "integration"))

from cutover_testlib import (CUTOVER_BIN, SANITIZER_MARKERS, Cutover, Harness,  # noqa: E402
                             multipart_submission, proxy_admin, request)

PROJECTS = ["p%d" % i for i in range(6)]
DOWNLOAD_BYTES = 3 << 20
WINDOW_PROJECT = "p1"            # the one with project-only maintenance windows


def log(msg):
    print("soak %7.1f  %s" % (time.monotonic() - T0, msg), flush=True)


T0 = time.monotonic()


class Tally:
    """What the load threads saw: counts per (kind, outcome), the errors'
    times (classified against the kill windows at the end), the acks."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}
        self.errors = []             # (kind, what, t_start, t_end)
        self.unexpected = []         # (kind, status, t)
        self.acked = {}              # body sha256 -> instanceID
        self.submitted = 0

    def count(self, kind, outcome):
        with self.lock:
            self.counts[(kind, outcome)] = self.counts.get((kind, outcome), 0) + 1


class Proxy:
    """The current cutover process; replaced at each kill."""

    def __init__(self, harness, text, port):
        self.harness, self.text, self.port = harness, text, port
        self.lives = []              # Cutover per life
        self.life_start = []
        self.lock = threading.Lock()
        self.start()

    def start(self):
        c = Cutover(self.harness.dir, self.text, name="cutover-%d" % len(self.lives),
                    wait_ready=False, port=self.port)
        c.wait_ready()
        with self.lock:
            self.lives.append(c)
            self.life_start.append(time.monotonic())
        self.admin = proxy_admin(c)

    @property
    def current(self):
        with self.lock:
            return self.lives[-1]


def load_thread(kind, port, tally, end, pause, cap, rng):
    """One client looping until END or CAP requests: a fresh connection per
    request (a kill leaves no stale keep-alive to tell apart)."""
    n = 0
    while time.monotonic() < end and n < cap:
        n += 1
        t0 = time.monotonic()
        body = sha = iid = None
        try:
            if kind == "get":
                p = rng.choice(PROJECTS)
                path = rng.choice(["/a/%s/phone/restore/" % p, "/health"])
                r = request(port, "GET", path, timeout=15)
                ok = r.status in (200, 503)
            elif kind == "download":
                r = request(port, "GET", "/bytes/%d" % DOWNLOAD_BYTES, timeout=30, keep_body=False)
                ok = r.status == 503 or (r.status == 200 and r.body_len == DOWNLOAD_BYTES)
            else:
                iid = "uuid:%s" % uuid.uuid4()
                size = rng.choice([0, 1024, 10240, 65536]) if rng.random() > 0.02 else 512 << 10
                ctype, body = multipart_submission(iid, extra=os.urandom(size // 2).hex().encode())
                sha = hashlib.sha256(body).hexdigest()
                p = rng.choice(PROJECTS)
                with tally.lock:
                    tally.submitted += 1
                r = request(port, "POST", "/a/%s/receiver/" % p,
                            [("Content-Type", ctype), ("X-OpenRosa-Version", "1.0"),
                             ("Authorization", "Basic ZGV2aWNlOnMzY3JldA==")], body, timeout=30)
                ok = r.status == 201
                if 200 <= r.status < 300:
                    with tally.lock:
                        tally.acked[sha] = iid
            tally.count(kind, str(r.status))
            if not ok:
                with tally.lock:
                    tally.unexpected.append((kind, r.status, t0))
        except Exception as e:  # noqa: BLE001 - counted, classified at the end
            tally.count(kind, "error")
            with tally.lock:
                tally.errors.append((kind, type(e).__name__, t0, time.monotonic()))
        time.sleep(pause * (0.5 + rng.random()))


def rss_thread(proxy, samples, stop):
    while not stop.wait(1.0):
        with proxy.lock:
            c, life = proxy.lives[-1], len(proxy.lives) - 1
            born = proxy.life_start[life]
        try:
            with open("/proc/%d/status" % c.pid) as f:
                kib = next(int(x.split()[1]) for x in f if x.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
        samples.append((life, time.monotonic() - born, kib))


def spool_totals(admin):
    return admin.status()["spool"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 1800)))
    ap.add_argument("--flip", type=float, default=float(os.environ.get("SOAK_FLIP_SECONDS", 30)))
    ap.add_argument("--kill", type=float, default=float(os.environ.get("SOAK_KILL_SECONDS", 180)))
    ap.add_argument("--long-life", type=float,
                    default=float(os.environ.get("SOAK_LONG_LIFE", 600)))
    ap.add_argument("--rss-csv", default=os.environ.get("SOAK_RSS_CSV"))
    ap.add_argument("--warmup", type=float, default=float(os.environ.get("SOAK_WARMUP", 60)))
    ap.add_argument("--rss-limit", type=float, default=float(os.environ.get("SOAK_RSS_LIMIT", 5)))
    ap.add_argument("--markdown", default=os.environ.get("SOAK_MARKDOWN"))
    ap.add_argument("--seed", type=int, default=int(os.environ.get("SOAK_SEED", 14)))
    a = ap.parse_args()
    if not os.access(CUTOVER_BIN, os.X_OK):
        print("soak: no cutover binary at %s (make build-asan)" % CUTOVER_BIN, file=sys.stderr)
        return 2

    h = Harness()
    failures = []
    try:
        return run(a, h, failures)
    finally:
        problems = h.teardown()
        if problems:
            print("soak: teardown: " + "\n".join(problems), file=sys.stderr)


def run(a, h, failures):
    old, new = h.upstream("old"), h.upstream("new")
    port, text = h.config(old, new)
    d = h.dir / "spool"
    text = text.replace('spool = { dir = "%s"; };' % d,
                        'spool = { dir = "%s"; retry_min = 0.05; retry_max = 1.0; };' % d)
    text += "limits = { drain_timeout = 10.0; };\n"
    log("cutover %s, ASAN_OPTIONS=%s, %d s, flip every %g s, kill every %g s, dir %s"
        % (CUTOVER_BIN, os.environ.get("ASAN_OPTIONS"), a.seconds, a.flip, a.kill, h.dir))
    proxy = Proxy(h, text, port)
    h.proxies.append(proxy.current)      # the last life is stopped by teardown too

    tally = Tally()
    start = time.monotonic()
    end = start + a.seconds
    # (kind, pause s): about 60 GETs, 1.5 downloads and 40 submissions a second
    plan = [("get", 0.05), ("get", 0.05), ("get", 0.05), ("download", 0.7),
            ("submit", 0.05), ("submit", 0.05)]
    threads = []
    for i, (kind, pause) in enumerate(plan):
        cap = int(a.seconds / (pause * 0.5)) + 10
        t = threading.Thread(target=load_thread, daemon=True,
                             args=(kind, port, tally, end, pause, cap, random.Random(a.seed + i)))
        t.start()
        threads.append(t)
    samples, stop_rss = [], threading.Event()
    threading.Thread(target=rss_thread, args=(proxy, samples, stop_rss), daemon=True).start()

    # the timeline: flips on a FLIP grid, kills on a KILL grid offset by
    # a third of a flip so that they fall between flips
    events = []
    k = 1
    while k * a.flip < a.seconds:
        events.append((k * a.flip, "flip", k))
        if k % 4 == 1 and (k + 0.5) * a.flip < a.seconds:
            events.append(((k + 0.5) * a.flip, "project-window", k))
        k += 1
    # no kill in the last SOAK_LONG_LIFE seconds: one life long enough to
    # hold two load cycles after its warm-up
    k = 1
    while k * a.kill + a.flip / 3 < a.seconds - a.long_life:
        events.append((k * a.kill + a.flip / 3, "kill", k))
        k += 1
    events.sort()
    kills, windows, flips, control_errors = [], 0, 0, []
    cycle = ["new", "maintenance", "old", "new", "maintenance", "old"]
    mode = "old"
    in_project_window = False
    for at, what, k in events:
        delay = start + at - time.monotonic()
        if delay > 0:
            time.sleep(delay)            # the timeline's clock, not synchronisation
        c = proxy.current
        if not c.alive():
            failures.append("cutover exited by itself (%s): %s" % (c.p.returncode, c.stderr()[-2000:]))
            break
        if what == "kill":
            t_kill = time.monotonic()
            os.kill(c.pid, signal.SIGKILL)
            c.wait(10)
            c.checked = True
            proxy.start()
            h.proxies.append(proxy.current)
            kills.append((t_kill, time.monotonic()))
            log("kill -9 #%d, restarted in %.1f s" % (len(kills), kills[-1][1] - t_kill))
            continue
        if what == "project-window":
            r = proxy.admin.maintenance(True, project=WINDOW_PROJECT, reason="soak window")
            if r.status != 200:
                control_errors.append("maintenance on %s: %r" % (WINDOW_PROJECT, r))
            in_project_window = True
            windows += 1
            log("maintenance on for project %s" % WINDOW_PROJECT)
            continue
        if in_project_window:
            r = proxy.admin.maintenance(False, project=WINDOW_PROJECT)
            if r.status != 200:
                control_errors.append("maintenance off %s: %r" % (WINDOW_PROJECT, r))
            in_project_window = False
        target = cycle[(k - 1) % len(cycle)]
        if target == "maintenance":
            r = proxy.admin.maintenance(True, reason="soak window")
            windows += 1
        else:
            r = proxy.admin.switch(target, force=True, reason="soak flip")
        flips += 1
        if r.status != 200:
            control_errors.append("%s -> %s: %r" % (mode, target, r))
        mode = target
        st = proxy.admin.status()["spool"]
        log("flip #%d to %s (spool: %d records, %d dead letters)"
            % (flips, target, st["records"], st["dead_letters"]))

    for t in threads:
        t.join(max(1.0, end - time.monotonic() + 40))
    stuck = sum(t.is_alive() for t in threads)
    if stuck:
        failures.append("%d load threads still running 40 s after the end" % stuck)
    stop_rss.set()

    # the final switch: everything to new, every spooled record replayed
    admin = proxy.admin
    for body in ({"to": "new", "force": True, "reason": "soak end"},
                 {"to": "new", "force": True, "reason": "soak end", "project": WINDOW_PROJECT}):
        r = admin.post("/switch", body)
        if r.status != 200:
            control_errors.append("final switch %r: %r" % (body, r))
    drained = None
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        st = spool_totals(admin)
        if st["records"] == st["dead_letters"]:
            drained = st
            break
        time.sleep(0.5)                  # polling status, bounded by the deadline
    if drained is None:
        failures.append("spool not drained 180 s after the final switch: %r" % spool_totals(admin))
        drained = spool_totals(admin)

    got = set()
    for up in (old, new):
        for rec in up.records():
            if "/receiver/" in (rec.get("path") or "") and rec.get("complete") \
                    and rec.get("method") == "POST":
                got.add(rec.get("body_sha256"))
    missing = [iid for sha, iid in tally.acked.items() if sha not in got]

    final = proxy.current
    stop_problems = final.stop_and_check(20)
    sanitizer = []
    for i, c in enumerate(proxy.lives):
        found = [m for m in SANITIZER_MARKERS if m in c.stderr()]
        if found:
            sanitizer.append((i, found))
            print("--- life %d stderr (tail) ---\n%s" % (i, c.stderr()[-4000:]), file=sys.stderr)

    # errors: at a kill when the request overlapped [kill, ready + 1 s]
    at_kill, other = 0, []
    for kind, what, t0, t1 in tally.errors:
        if any(t0 <= ready + 1.0 and t1 >= kill for kill, ready in kills):
            at_kill += 1
        else:
            other.append((kind, what, round(t0 - start, 1)))

    # RSS per life
    cycle = 6 * a.flip                  # the flip cycle: new, maint, old, new, maint, old
    if a.rss_csv:
        with open(a.rss_csv, "w") as f:
            f.write("life,seconds,rss_kib\n")
            f.writelines("%d,%.1f,%d\n" % x for x in samples)
    lives = []
    for i in range(len(proxy.lives)):
        s = [(t, kib) for life, t, kib in samples if life == i]
        if not s:
            continue
        row = {"life": i, "seconds": round(s[-1][0]), "start_kib": s[0][1], "end_kib": s[-1][1],
               "max_kib": max(kib for _, kib in s), "growth": None, "base_kib": None,
               "late_kib": None}
        # the peak of the first load cycle after warm-up against the peak
        # of the last one: RSS swings with the cycle's modes (a window in
        # maintenance holds less than one forwarding 3 MiB downloads)
        t_end = s[-1][0]
        if t_end - a.warmup >= 2 * cycle:
            base = max(kib for t, kib in s if a.warmup <= t < a.warmup + cycle)
            last = max(kib for t, kib in s if t >= t_end - cycle)
            row["base_kib"], row["late_kib"] = base, last
            row["growth"] = (last - base) / base * 100.0
        lives.append(row)
    judged = [r for r in lives if r["growth"] is not None]
    longest = max(judged, key=lambda r: r["seconds"]) if judged else None

    print()
    print("soak: %d s of load, %d flips, %d maintenance windows, %d kills"
          % (a.seconds, flips, windows, len(kills)))
    for (kind, outcome), n in sorted(tally.counts.items()):
        print("  %-9s %-6s %d" % (kind, outcome, n))
    print("  submissions: %d sent, %d acknowledged, %d missing upstream; spool at the end %r"
          % (tally.submitted, len(tally.acked), len(missing), drained))
    print("  errors: %d at a kill, %d elsewhere %s; unexpected answers %d %s"
          % (at_kill, len(other), other[:10], len(tally.unexpected), tally.unexpected[:10]))
    print("  control errors: %d %s" % (len(control_errors), control_errors[:5]))
    for r in lives:
        print("  RSS life %d: %d s, %d KiB at start, peak %s KiB in the first cycle after "
              "warm-up, %s KiB in the last, %d KiB last, max %d KiB, growth %s" % (
                  r["life"], r["seconds"], r["start_kib"],
                  "%d" % r["base_kib"] if r["base_kib"] else "-",
                  "%d" % r["late_kib"] if r["late_kib"] else "-", r["end_kib"], r["max_kib"],
                  "%.1f%%" % r["growth"] if r["growth"] is not None else
                  "not judged (< warm-up + 2 cycles)"))
    print("  sanitizer reports: %d %s" % (len(sanitizer), sanitizer))

    if a.rss_limit <= 0:
        print("  RSS not judged (SOAK_RSS_LIMIT=%g)" % a.rss_limit)
    elif longest is None:
        failures.append("no life lasted warm-up + 2 load cycles (%g s): RSS growth not judged"
                        % (a.warmup + 2 * cycle))
    elif longest["growth"] >= a.rss_limit:
        failures.append("RSS grew %.1f%% over life %d (%d s)"
                        % (longest["growth"], longest["life"], longest["seconds"]))
    if missing:
        failures.append("%d acknowledged submissions missing upstream, e.g. %s"
                        % (len(missing), missing[:5]))
    if not tally.acked:
        failures.append("no submission was acknowledged")
    if sanitizer:
        failures.append("sanitizer reports in %d lives" % len(sanitizer))
    if other:
        failures.append("%d connection errors outside kill windows" % len(other))
    if tally.unexpected:
        failures.append("%d unexpected answers" % len(tally.unexpected))
    if control_errors:
        failures.append("%d control errors" % len(control_errors))
    if drained.get("dead_letters"):
        failures.append("%d dead letters" % drained["dead_letters"])
    failures += stop_problems

    if a.markdown:
        write_markdown(a, Path(a.markdown), lives, longest, tally, missing, sanitizer, flips,
                       windows, kills, at_kill, other, failures)
    if failures:
        print("soak: FAILED:\n  " + "\n  ".join(f[:2000] for f in failures))
        return 1
    print("soak: PASS" + (" (longest judged life %d s, RSS growth %.1f%%)"
                          % (longest["seconds"], longest["growth"]) if longest else ""))
    return 0


def write_markdown(a, path, lives, longest, tally, missing, sanitizer, flips, windows, kills,
                   at_kill, other, failures):
    out = ["| life | seconds | RSS at start (KiB) | peak, first cycle after warm-up | peak, last cycle "
           "| last | max | growth |",
           "|---|---|---|---|---|---|---|---|"]
    for r in lives:
        out.append("| %d | %d | %d | %s | %s | %d | %d | %s |" % (
            r["life"], r["seconds"], r["start_kib"],
            "%d" % r["base_kib"] if r["base_kib"] else "-",
            "%d" % r["late_kib"] if r["late_kib"] else "-", r["end_kib"], r["max_kib"],
            "%.1f%%" % r["growth"] if r["growth"] is not None else "-"))
    counts = ", ".join("%s %s: %d" % (k, o, n) for (k, o), n in sorted(tally.counts.items()))
    out += ["",
            "- %d s of load; %d flips, %d maintenance windows, %d kill -9 + restart"
            % (a.seconds, flips, windows, len(kills)),
            "- longest judged life: %s" % ("life %d, %d s, growth %.1f%% (< %g%% wanted)"
                                           % (longest["life"], longest["seconds"], longest["growth"],
                                              a.rss_limit)
                                           if longest else "none"),
            "- submissions: %d sent, %d acknowledged, %d missing upstream after the final switch"
            % (tally.submitted, len(tally.acked), len(missing)),
            "- sanitizer reports: %d" % len(sanitizer),
            "- answers: %s" % counts,
            "- connection errors: %d at a kill, %d elsewhere; unexpected answers: %d"
            % (at_kill, len(other), len(tally.unexpected)),
            "- result: %s" % ("PASS" if not failures else "FAILED: " + "; ".join(
                f.splitlines()[0] for f in failures))]
    path.write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    sys.exit(main())
