"""Access log: one JSON line per request, reopened on SIGUSR1 (logrotate)."""

import grp
import gzip
import json
import os
import pwd
import shutil
import signal
import subprocess
import time
import uuid

import pytest

from cutover_testlib import HEALTH_PATH, REPO, Client, get, request, wait_for

KEYS = {"time", "client", "method", "path", "route", "project", "upstream", "status",
        "bytes_in", "bytes_out", "upstream_ms", "total_ms"}


def read_lines(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f.read().splitlines() if line.strip()]


def entries_for(path, needle):
    return [e for e in read_lines(path) if needle in (e.get("path") or "")]


def test_one_json_line_per_request(proxy, old):
    tag = uuid.uuid4().hex[:8]
    r1 = get(proxy.port, "/a/alpha/phone/restore/?t=" + tag)
    r2 = request(proxy.port, "POST", "/sink?t=" + tag, body=b"x" * 1234)
    r3 = get(proxy.port, "/no-such-thing?t=" + tag)
    assert (r1.status, r2.status, r3.status) == (200, 200, 404)
    log = proxy.access_log
    wait_for(lambda: len(entries_for(log, tag)) >= 3, 5, what="3 access log lines")
    lines = entries_for(log, tag)
    assert len(lines) == 3, lines
    for e in lines:
        assert KEYS <= set(e), "missing keys %s in %r" % (KEYS - set(e), e)
        assert e["client"] in ("127.0.0.1", "::ffff:127.0.0.1")
        assert isinstance(e["status"], int)
        assert isinstance(e["bytes_in"], int) and isinstance(e["bytes_out"], int)
        assert isinstance(e["upstream_ms"], (int, float)) and isinstance(e["total_ms"], (int, float))
        assert e["total_ms"] >= 0
        assert e["upstream"] == "old"
    by_prefix = {p: [e for e in lines if e["path"].startswith(p)] for p in ("/a/", "/sink", "/no-such")}
    assert all(len(v) == 1 for v in by_prefix.values()), lines
    restore, sink, missing = (by_prefix[p][0] for p in ("/a/", "/sink", "/no-such"))
    assert restore["method"] == "GET" and restore["route"] == "restore"
    assert restore["project"] == "alpha" and restore["status"] == 200
    assert restore["bytes_out"] >= len(r1.body)
    assert sink["method"] == "POST" and sink["route"] == "default"
    assert sink["bytes_in"] >= 1234 and sink["status"] == 200
    assert sink["project"] in (None, "")
    assert missing["status"] == 404


def test_project_for_submission_and_local_health(proxy, old):
    tag = uuid.uuid4().hex[:8]
    request(proxy.port, "POST", "/a/beta/receiver/?t=" + tag, body=b"<x/>",
            headers=[("Content-Type", "text/xml")])
    get(proxy.port, HEALTH_PATH + "?t=" + tag)
    wait_for(lambda: len(entries_for(proxy.access_log, tag)) >= 2, 5, what="2 access log lines")
    sub, health = sorted(entries_for(proxy.access_log, tag), key=lambda e: "well-known" in e["path"])
    assert sub["route"] == "submit" and sub["project"] == "beta" and sub["upstream"] == "old"
    assert health["status"] == 200 and health["upstream"] in (None, "")


def test_error_requests_logged(harness):
    old = harness.upstream("old")
    proxy = harness.proxy(old, old_extra="read_timeout = 1.0;")
    tag = uuid.uuid4().hex[:8]
    assert get(proxy.port, "/slow?delay=3&t=" + tag).status == 504
    wait_for(lambda: entries_for(proxy.access_log, tag), 5, what="the 504's access log line")
    e = entries_for(proxy.access_log, tag)[0]
    assert e["status"] == 504 and e["upstream"] == "old"
    assert e["total_ms"] >= 900


def test_sigusr1_reopens(proxy, old):
    log = str(proxy.access_log)
    for i in range(3):
        assert get(proxy.port, "/echo?before=%d" % i).status == 200
    wait_for(lambda: len(entries_for(log, "before=")) == 3, 5, what="3 lines before rotation")
    rotated = log + ".1"
    os.rename(log, rotated)
    assert get(proxy.port, "/echo?between").status == 200      # still goes to the renamed file
    os.kill(proxy.pid, signal.SIGUSR1)

    n = [0]

    def reopened():
        n[0] += 1
        assert get(proxy.port, "/echo?after=%d" % n[0]).status == 200
        return os.path.exists(log) and entries_for(log, "after=")
    wait_for(reopened, 5, interval=0.1, what="a new access log after SIGUSR1")
    last = "/echo?final=" + uuid.uuid4().hex
    assert get(proxy.port, last).status == 200
    wait_for(lambda: entries_for(log, last), 5, what="the final line in the new file")
    assert not entries_for(rotated, last), "line written to the rotated file after reopen"
    assert not entries_for(log, "before="), "old lines in the new file"
    assert len(entries_for(rotated, "before=")) == 3
    assert entries_for(rotated, "between")
    # the requests made while the reopen was on its way: each in one file, once
    sent = ["/echo?after=%d" % i for i in range(1, n[0] + 1)]
    logged = [e["path"] for e in entries_for(rotated, "after=") + entries_for(log, "after=")]
    assert sorted(logged) == sorted(sent)
    assert proxy.alive()


def logrotate_config(proxy):
    """conf/cutover.logrotate aimed at the test's access log and process."""
    text = (REPO / "conf" / "cutover.logrotate").read_text()
    swaps = [("/var/log/cutover/*.log", str(proxy.access_log)),
             ("su cutover cutover", "su %s %s" % (pwd.getpwuid(os.geteuid()).pw_name,
                                                  grp.getgrgid(os.getegid()).gr_name)),
             ("systemctl kill --signal=SIGUSR1 --kill-whom=main cutover.service",
              "kill -USR1 %d" % proxy.pid)]
    for old, new in swaps:
        assert text.count(old) == 1, "conf/cutover.logrotate no longer has %r" % old
        text = text.replace(old, new)
    return text


def test_logrotate_snippet(harness, proxy, old):
    """logrotate -f with conf/cutover.logrotate: the file is renamed, SIGUSR1
    makes cutover write a fresh one, no line is lost, and the rotation
    after that compresses (delaycompress)."""
    tool = shutil.which("logrotate") or ("/usr/sbin/logrotate"
                                         if os.access("/usr/sbin/logrotate", os.X_OK) else None)
    if not tool:
        pytest.skip("logrotate not installed (Debian package logrotate)")
    conf = harness.path("logrotate.conf")
    conf.write_text(logrotate_config(proxy))
    state = harness.path("logrotate.state")
    log = str(proxy.access_log)

    def rotate():
        r = subprocess.run([tool, "-f", "-s", str(state), str(conf)], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0, r.stdout + r.stderr

    def lines_until_new_file(tag, limit=200):
        """Requests until one lands in a fresh access.log; their paths."""
        sent = []

        def landed():
            assert len(sent) < limit, "no fresh access.log after %d requests" % limit
            sent.append("/echo?%s=%d" % (tag, len(sent)))
            assert get(proxy.port, sent[-1]).status == 200
            return os.path.exists(log) and entries_for(log, tag + "=")
        wait_for(landed, 10, interval=0.05, what="a fresh access.log after logrotate")
        return sent

    for i in range(3):
        assert get(proxy.port, "/echo?first=%d" % i).status == 200
    wait_for(lambda: len(entries_for(log, "first=")) == 3, 5, what="3 lines before rotation")
    rotate()
    sent = lines_until_new_file("second")
    rotated = log + ".1"
    assert len(entries_for(rotated, "first=")) == 3      # delaycompress: still plain text
    assert not entries_for(log, "first=")
    wait_for(lambda: len(entries_for(log, "second=")) + len(entries_for(rotated, "second="))
             >= len(sent), 5, what="every line written")
    logged = [e["path"] for e in entries_for(rotated, "second=") + entries_for(log, "second=")]
    assert sorted(logged) == sorted(sent), "lines lost or doubled around the reopen"
    rotate()
    sent3 = lines_until_new_file("third")
    with gzip.open(log + ".2.gz", "rt") as f:
        older = [json.loads(l) for l in f.read().splitlines() if l.strip()]
    assert sum("first=" in e["path"] for e in older) == 3
    assert entries_for(rotated, "second=") and len(sent3) >= 1
    assert proxy.alive()


# ---- batched writes (issue 16): each worker writes its lines 32 KiB or 100 ms at a time ----

def _burst(port, tag, conns, per_conn, pad=200):
    """PER_CONN keep-alive GETs on each of CONNS parallel connections; returns
    the set of paths sent (every answer must be 200)."""
    import threading
    paths = set()
    errors = []
    lock = threading.Lock()

    def run(i):
        try:
            with Client(port, timeout=10.0) as c:
                for j in range(per_conn):
                    p = "/echo?t=%s&c=%d&n=%d&pad=%s" % (tag, i, j, "p" * pad)
                    r = c.request("GET", p)
                    assert r.status == 200, r
                    with lock:
                        paths.add(p)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))
    threads = [threading.Thread(target=run, args=(i,)) for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(paths) == conns * per_conn
    return paths


def _paths_once(files, tag):
    """path -> how many times it is logged across FILES (each line must parse)."""
    seen = {}
    for f in files:
        for e in entries_for(f, "t=" + tag + "&"):
            seen[e["path"]] = seen.get(e["path"], 0) + 1
    return seen


def test_idle_proxy_flushes_within_the_interval(proxy, old):
    tag = uuid.uuid4().hex[:8]
    t0 = time.monotonic()
    assert get(proxy.port, "/echo?t=%s&idle" % tag).status == 200
    wait_for(lambda: entries_for(proxy.access_log, tag), 5, interval=0.01,
             what="the line of a lone request")
    took = time.monotonic() - t0
    # The flush interval is 100 ms; the margin is for a loaded or sanitized run.
    assert took < 1.0, "the line took %.3f s to reach the file" % took


def test_no_line_lost_at_sigterm_two_workers(harness, old):
    proxy = harness.proxy(old, extra="workers = 2;\n")
    tag = uuid.uuid4().hex[:8]
    sent = _burst(proxy.port, tag, conns=8, per_conn=40)
    proxy.signal(signal.SIGTERM)          # at once: lines are still in the workers' batches
    assert proxy.wait(20) == 0, proxy.stderr()[-2000:]
    seen = _paths_once([proxy.access_log], tag)
    assert set(seen) == sent, "%d of %d lines missing" % (len(sent - set(seen)), len(sent))
    assert all(n == 1 for n in seen.values()), [p for p, n in seen.items() if n != 1][:3]


def test_no_line_lost_across_reopen_two_workers(harness, old):
    import threading
    proxy = harness.proxy(old, extra="workers = 2;\n")
    log = str(proxy.access_log)
    rotated = log + ".1"
    tag = uuid.uuid4().hex[:8]
    result = {}

    def load():
        result["sent"] = _burst(proxy.port, tag, conns=6, per_conn=60)
    t = threading.Thread(target=load)
    t.start()
    try:
        # Rotate in the middle of the load, as logrotate would.
        wait_for(lambda: len(entries_for(log, "t=" + tag + "&")) >= 20 or not t.is_alive(), 10,
                 what="the load to begin")
        os.rename(log, rotated)
        proxy.signal(signal.SIGUSR1)
        wait_for(lambda: "access log reopened" in proxy.stderr(), 5, what="the reopen")
    finally:
        t.join(60)
    final = "/echo?t=%s&final" % tag
    assert get(proxy.port, final).status == 200
    wait_for(lambda: entries_for(log, final), 5, what="the final line in the new file")
    sent = result["sent"] | {final}
    # the other worker's last lines may still wait in its batch (100 ms)
    try:
        wait_for(lambda: set(_paths_once([rotated, log], tag)) >= sent, 2,
                 what="every line in one of the files")
    except AssertionError:
        pass  # reported below, with the count
    seen = _paths_once([rotated, log], tag)
    assert set(seen) == sent, "%d of %d lines missing" % (len(sent - set(seen)), len(sent))
    assert all(n == 1 for n in seen.values()), [p for p, n in seen.items() if n != 1][:3]
    assert entries_for(rotated, "t=" + tag + "&"), "nothing in the renamed file"
