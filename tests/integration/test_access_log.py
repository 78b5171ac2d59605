"""Access log: one JSON line per request, reopened on SIGUSR1 (logrotate)."""

import json
import os
import signal
import uuid

from cutover_testlib import HEALTH_PATH, get, request, wait_for

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
    assert proxy.alive()
