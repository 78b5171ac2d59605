"""Hold under abuse, the data path (issue 13): slow uploads must not take
every max_active slot (bodies buffered before admission, a minimum body
rate), admission refusals logged once per second, a bad upstream chunk that
arrives with the head answered 502, half-closed clients answered, and
upstream failures logged with the client, method, path and what happened."""

import json
import socket
import struct
import threading
import time

import pytest

from cutover_testlib import (Client, ConnectionClosed, Pending, ScriptedUpstream,
                             build_request, get, proxy_admin, wait_for)

# ---------------------------------------------------------------------------
# furniture


def raw_upstream(harness, answer):
    u = ScriptedUpstream(lambda conn, head: answer(conn), "raw-upstream")
    harness.procs.append(u)
    return u


def access_entries(proxy, path_part):
    if not proxy.access_log.exists():
        return []
    out = []
    for line in proxy.access_log.read_text().splitlines():
        e = json.loads(line)
        if path_part in e.get("path", ""):
            out.append(e)
    return out


class SlowUpload:
    """A POST whose head goes out at once (with Expect: 100-continue, so the
    100 tells that cutover took it in), then its body one byte per INTERVAL,
    at most MAX_BYTES of them, until stopped or answered."""

    def __init__(self, port, path, length=10000, interval=0.2, max_bytes=200, first=b""):
        self.c = Client(port, timeout=10)
        self.c.send(build_request("POST", path, [("Content-Length", str(length)),
                                                 ("Expect", "100-continue")]) + first)
        self.interval = interval
        self.max_bytes = max_bytes
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._t.start()
        return self

    def _run(self):
        for _ in range(self.max_bytes):
            if self._stop.wait(self.interval):
                return
            try:
                self.c.sock.sendall(b"x")
            except OSError:
                return

    def wait_continue(self):
        r = self.c.read_head()
        assert r.status == 100, r

    def stop(self):
        self._stop.set()
        self._t.join(5)
        self.c.close()


# ---------------------------------------------------------------------------
# fault 3: slow uploads, max_active, min_body_rate, the admission log line


def test_slow_uploads_do_not_take_every_slot(harness):
    """As many 1-byte-per-0.2-s uploads as there are slots: a GET still goes
    through at once (the bodies are buffered before admission)."""
    old = harness.upstream("old")
    proxy = harness.proxy(old, old_extra="max_active = 4; queue = 10; queue_timeout = 3.0;")
    uploads = [SlowUpload(proxy.port, "/sink?slow=%d" % i) for i in range(4)]
    try:
        for u in uploads:
            u.wait_continue()           # cutover took it in (admitted or buffering)
            u.start()
        t0 = time.monotonic()
        r = get(proxy.port, "/echo?normal", timeout=10)
        took = time.monotonic() - t0
        assert r.status == 200, r
        assert took < 1.5, "a normal GET waited %.1fs behind slow uploads" % took
        st = proxy_admin(proxy).status()["upstreams"]["old"]
        assert st["in_flight"] == 0 and st["active"] == 0, st
    finally:
        for u in uploads:
            u.stop()


def test_slow_upload_gets_408_before_admission(harness):
    old = harness.upstream("old")
    proxy = harness.proxy(old, extra="limits = { min_body_rate = 200; "
                                     "min_body_rate_grace = 1.0; };\n")
    u = SlowUpload(proxy.port, "/sink?dribble", interval=0.1)
    try:
        u.wait_continue()
        t0 = time.monotonic()
        u.start()
        r = u.c.read_response("POST")
        assert r.status == 408 and r.reason == "Request Timeout", r
        assert time.monotonic() - t0 < 4
        assert u.c.closed_within(5)
    finally:
        u.stop()
    assert not old.find("/sink?dribble"), "a body slower than min_body_rate reached old"
    e = wait_for(lambda: access_entries(proxy, "/sink?dribble"), 5, what="access log line")
    assert e[0]["status"] == 408, e


def test_slow_upload_gets_408_while_streaming(harness):
    """A body larger than limits.body_buffer streams once the buffer is full;
    the rate still applies: the upstream request is aborted, the device gets
    408 and the upstream is no longer in flight."""
    old = harness.upstream("old")
    proxy = harness.proxy(old, extra="limits = { body_buffer = \"1K\"; min_body_rate = 200; "
                                     "min_body_rate_grace = 1.0; };\n")
    admin = proxy_admin(proxy)
    u = SlowUpload(proxy.port, "/sink?streaming", length=100000, interval=0.1,
                   first=b"y" * 3000)
    try:
        u.wait_continue()
        wait_for(lambda: admin.status()["upstreams"]["old"]["in_flight"] == 1, 5,
                 what="the upload to stream to old")
        t0 = time.monotonic()
        u.start()
        r = u.c.read_response("POST")
        assert r.status == 408, r
        assert time.monotonic() - t0 < 4
    finally:
        u.stop()
    wait_for(lambda: admin.status()["upstreams"]["old"]["in_flight"] == 0, 5,
             what="the aborted upload to leave old")


def test_fast_upload_larger_than_body_buffer_goes_through(harness):
    old = harness.upstream("old")
    proxy = harness.proxy(old, extra="limits = { body_buffer = \"1K\"; };\n")
    body = bytes(range(256)) * 1024
    with Client(proxy.port) as c:
        r = c.request("POST", "/sink?fast", body=body)
        assert r.status == 200 and r.json()["received"] == len(body), r
        r = c.request("POST", "/sink?fast2", body=b"small")
        assert r.status == 200 and r.json()["received"] == 5, r


def test_admission_refusals_logged_once_per_second(harness):
    old = harness.upstream("old")
    proxy = harness.proxy(old, old_extra="max_active = 1; queue = 0; queue_timeout = 1.0;")
    admin = proxy_admin(proxy)
    first = Pending(proxy.port, "GET", "/slow?delay=3")
    wait_for(lambda: admin.status()["upstreams"]["old"]["in_flight"] == 1, 5,
             what="the first request to be in flight")
    t0 = time.monotonic()
    for i in range(5):
        assert get(proxy.port, "/echo?refused=%d" % i).status == 503
    assert time.monotonic() - t0 < 1.0, "too slow to test the rate limit"
    lines = wait_for(lambda: [l for l in proxy.stderr().splitlines() if "admission" in l],
                     5, what="an admission log line")
    assert len([l for l in proxy.stderr().splitlines() if "admission" in l]) == 1, lines
    assert "old" in lines[0] and "queue" in lines[0], lines
    # a second past the first line, the next refusal logs the ones held back
    time.sleep(max(0.0, 1.05 - (time.monotonic() - t0)))
    assert get(proxy.port, "/echo?refused=last").status == 503
    lines = wait_for(lambda: [l for l in proxy.stderr().splitlines() if "admission" in l][1:],
                     5, what="the second admission log line")
    assert "5 " in lines[0], lines
    assert first.result(10).status == 200


# ---------------------------------------------------------------------------
# fault 7: a bad chunk in the same read as the head


@pytest.mark.parametrize("chunk", [b"zz\r\n", b"ffffffffffffffffffff\r\n"])
def test_bad_chunk_with_the_head_gets_502(harness, chunk):
    def answer(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk)
        time.sleep(0.5)                 # keep the connection: the chunk is the fault
    up = raw_upstream(harness, answer)
    proxy = harness.proxy(up.url)
    with Client(proxy.port, timeout=5) as c:
        c.send(build_request("GET", "/badchunk"))
        try:
            r = c.read_response()
        except ConnectionClosed as e:
            raise AssertionError("empty reply for a bad chunk that came with the head: %s" % e)
        assert r.status == 502 and r.reason == "Bad Gateway", r
        assert r.header("X-Cutover-Mode") and r.header("Date"), r
    e = wait_for(lambda: access_entries(proxy, "/badchunk"), 5, what="access log line")
    assert e[0]["status"] == 502, e


# ---------------------------------------------------------------------------
# fault 9: half-close after a whole request


def half_closed(port, raw):
    """Sends RAW, shuts the write side, returns the answer and whether the
    connection then closed."""
    with Client(port, timeout=5) as c:
        c.send(raw)
        c.sock.shutdown(socket.SHUT_WR)
        r = c.read_response(raw.split(b" ", 1)[0].decode())
        return r, c.closed_within(5)


def test_half_close_forwarded_get(harness):
    old = harness.upstream("old")
    proxy = harness.proxy(old)
    r, closed = half_closed(proxy.port, build_request("GET", "/echo?halfclose"))
    assert r.status == 200 and r.json()["path"] == "/echo?halfclose", r
    assert closed


def test_half_close_forwarded_post_with_body(harness):
    old = harness.upstream("old")
    proxy = harness.proxy(old)
    r, closed = half_closed(proxy.port, build_request("POST", "/sink?halfclose", body=b"z" * 5000))
    assert r.status == 200 and r.json()["received"] == 5000, r
    assert closed
    chunked = build_request("POST", "/sink?halfclose-chunked",
                            [("Transfer-Encoding", "chunked")]) + b"5\r\nhello\r\n0\r\n\r\n"
    r, closed = half_closed(proxy.port, chunked)
    assert r.status == 200 and r.json()["received"] == 5, r
    assert closed


def test_half_close_incomplete_body_not_forwarded_whole(harness):
    old = harness.upstream("old")
    proxy = harness.proxy(old)
    raw = build_request("POST", "/sink?cut", [("Content-Length", "100")]) + b"z" * 10
    with Client(proxy.port, timeout=5) as c:
        c.send(raw)
        c.sock.shutdown(socket.SHUT_WR)
        try:
            r = c.read_response("POST")
            assert r.status == 400, r
        except ConnectionClosed:
            pass
    assert get(proxy.port, "/echo").status == 200


def test_half_close_local_answers(harness):
    old = harness.upstream("old")
    proxy = harness.proxy(old)
    r, closed = half_closed(proxy.port, build_request("GET", "/.well-known/cutover/health"))
    assert r.status == 200 and closed, r
    assert proxy_admin(proxy).maintenance(True, reason="test").status == 200
    r, closed = half_closed(proxy.port, build_request("GET", "/a/p/phone/restore/"))
    assert r.status == 503 and r.header("Retry-After"), r
    assert closed
    r, closed = half_closed(proxy.port, build_request("POST", "/a/p/phone/restore/",
                                                      body=b"q" * 3000))
    assert r.status == 503 and closed, r
    assert not old.find("/a/p/"), "a request reached old in maintenance"


# ---------------------------------------------------------------------------
# the log says what happened, and for which request


def test_upstream_reset_mid_response_logged_as_such(harness):
    def answer(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"a" * 10)
        time.sleep(0.3)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    up = raw_upstream(harness, answer)
    proxy = harness.proxy(up.url)
    with Client(proxy.port, timeout=5) as c:
        c.send(build_request("GET", "/reset-mid?x=1"))
        with pytest.raises(ConnectionClosed):
            c.read_response()
    line = wait_for(lambda: [l for l in proxy.stderr().splitlines() if "/reset-mid?x=1" in l],
                    5, what="a log line naming the request")[0]
    assert "connection failed" not in line, line
    assert "reset" in line and "after 10 bytes" in line, line
    assert "127.0.0.1" in line and "GET" in line and "old" in line, line


def test_upstream_failure_log_names_the_request(harness):
    def answer(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort")
    up = raw_upstream(harness, answer)
    proxy = harness.proxy(up.url)
    with Client(proxy.port, timeout=5) as c:
        c.send(build_request("POST", "/cut-short/a", body=b"b"))
        with pytest.raises(ConnectionClosed):
            c.read_response("POST")
    line = wait_for(lambda: [l for l in proxy.stderr().splitlines() if "/cut-short/a" in l],
                    5, what="a log line naming the request")[0]
    assert "127.0.0.1" in line and "POST" in line and "old" in line, line
    assert "after 5 bytes" in line, line


def test_half_close_while_parked_by_a_hold(harness):
    """A half-closed request parked by a hold (with a body too) is forwarded
    and answered once the hold ends."""
    old = harness.upstream("old")
    proxy = harness.proxy(old)
    admin = proxy_admin(proxy)
    assert admin.hold(max=20).status == 200
    clients = []
    for raw in (build_request("GET", "/echo?parked-halfclose"),
                build_request("POST", "/sink?parked-halfclose", body=b"p" * 4000)):
        c = Client(proxy.port, timeout=5)
        c.send(raw)
        c.sock.shutdown(socket.SHUT_WR)
        clients.append(c)
    wait_for(lambda: admin.status()["hold"]["parked"] == 2, 5, what="both requests parked")
    assert admin.resume().status == 200
    try:
        r = clients[0].read_response()
        assert r.status == 200 and r.json()["path"] == "/echo?parked-halfclose", r
        r = clients[1].read_response("POST")
        assert r.status == 200 and r.json()["received"] == 4000, r
        assert all(c.closed_within(5) for c in clients)
    finally:
        for c in clients:
            c.close()
