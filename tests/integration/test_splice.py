"""Large bodies between plain sockets go socket to socket through a kernel
pipe (splice, issue 16): byte for byte the same as through the buffers,
counted in cutover_spliced_bytes_total, and ending the same ways: the
connections kept alive and reused, a pipelined request behind an upload,
a cut or stalled upstream, a client that stops, shuts its side or sends
too slowly. limits.splice_min = 0 and re-framed bodies keep the buffers."""

import hashlib
import re
import socket
import time

import pytest

from cutover_testlib import (Client, ConnectionClosed, ScriptedUpstream, build_request,
                             proxy_admin, wait_for)

MiB = 1 << 20
IO_CHUNK = 64 * 1024
PATTERN = (b"cutover-demo-upstream-0123456789abcdefghijklmnopqrstuvwxyz\n" * 1200)[:IO_CHUNK]
BUFFER = 64 * 1024           # limits.buffer_bytes: what may go through the buffers first


def pattern(n):
    """The first N bytes of the demo upstream's /bytes/N."""
    return (PATTERN * (n // len(PATTERN) + 1))[:n]


def spliced(admin):
    r = admin.get("/metrics")
    assert r.status == 200, r
    m = re.search(rb"^cutover_spliced_bytes_total (\d+)$", r.body, re.M)
    assert m, "no cutover_spliced_bytes_total in /metrics"
    return int(m.group(1))


def body_block(n):
    block = bytes((i * 7 + 3) & 0xFF for i in range(MiB))
    return (block * (n // MiB + 1))[:n]


def log_line(proxy, part):
    return wait_for(lambda: [l for l in proxy.stderr().splitlines() if part in l], 5,
                    what="a log line naming %s" % part)[0]




def test_download_spliced_byte_for_byte_and_both_connections_kept(harness):
    old = harness.upstream("old", record=False)
    proxy = harness.proxy(old, old_extra='health = { interval = 3600.0; };')
    admin = proxy_admin(proxy)
    n = 8 * MiB + 12345
    conns0 = old.stats()["connections"]
    with Client(proxy.port, timeout=20) as c:
        for _ in range(2):
            r = c.request("GET", "/bytes/%d" % n)
            assert r.status == 200, r
            assert r.body == pattern(n)
    # one upstream connection for both (back in the pool after a spliced
    # answer), plus the stats requests themselves
    assert old.stats()["connections"] - conns0 == 2
    assert spliced(admin) >= 2 * (n - BUFFER)


def test_upload_spliced_then_the_connection_goes_on(harness):
    old = harness.upstream("old", record=False)
    proxy = harness.proxy(old)
    admin = proxy_admin(proxy)
    body = body_block(8 * MiB + 999)
    with Client(proxy.port, timeout=20) as c:
        r = c.request("POST", "/sink?big", [("Content-Type", "application/octet-stream")], body)
        assert r.status == 200, r
        assert r.json() == {"received": len(body), "sha256": hashlib.sha256(body).hexdigest()}
        r = c.request("GET", "/echo?after")
        assert r.status == 200 and r.json()["path"] == "/echo?after", r
    assert spliced(admin) >= len(body) - BUFFER


def test_pipelined_request_behind_a_spliced_upload(harness):
    """The tunnel takes exactly Content-Length bytes: the request sent right
    behind the body is read and answered."""
    old = harness.upstream("old", record=False)
    proxy = harness.proxy(old)
    body = body_block(2 * MiB)
    with Client(proxy.port, timeout=20) as c:
        c.send(build_request("POST", "/sink?first", [("Content-Length", str(len(body)))]) +
               body + build_request("GET", "/echo?second"))
        r = c.read_response("POST")
        assert r.status == 200 and r.json()["received"] == len(body), r
        r = c.read_response()
        assert r.status == 200 and r.json()["path"] == "/echo?second", r


def test_close_delimited_answer_spliced_to_http10_client(harness):
    old = harness.upstream("old", record=False)
    proxy = harness.proxy(old)
    admin = proxy_admin(proxy)
    n = 3 * MiB + 7
    with Client(proxy.port, timeout=20) as c:
        r = c.request("GET", "/bytes/%d?close=1" % n, version="HTTP/1.0")
        assert r.status == 200 and r.body == pattern(n), r
        assert c.closed_within(2)
    assert spliced(admin) >= n - BUFFER
    # an HTTP/1.1 client gets it re-framed as chunks: through the buffers
    before = spliced(admin)
    with Client(proxy.port, timeout=20) as c:
        r = c.request("GET", "/bytes/%d?close=1" % n)
        assert r.status == 200 and r.chunked and r.body == pattern(n), r
    assert spliced(admin) == before


def test_splice_min_zero_keeps_the_buffers(harness):
    old = harness.upstream("old", record=False)
    proxy = harness.proxy(old, extra='limits = { splice_min = 0; };\n')
    admin = proxy_admin(proxy)
    n = 4 * MiB
    body = body_block(n)
    with Client(proxy.port, timeout=20) as c:
        assert c.request("GET", "/bytes/%d" % n).body == pattern(n)
        r = c.request("POST", "/sink", None, body)
        assert r.json()["sha256"] == hashlib.sha256(body).hexdigest(), r
    assert spliced(admin) == 0


def test_upstream_cut_mid_body_cuts_the_client_and_says_so(harness):
    old = harness.upstream("old", record=False)
    proxy = harness.proxy(old)
    admin = proxy_admin(proxy)
    with Client(proxy.port, timeout=10) as c:
        c.send(build_request("GET", "/truncated/%d?send=%d" % (4 * MiB, MiB)))
        with pytest.raises(ConnectionClosed):
            c.read_response()
    line = log_line(proxy, "/truncated/")
    assert "upstream closed the connection mid-response after %d bytes of a %d-byte body" \
        % (MiB, 4 * MiB) in line, line
    assert spliced(admin) > MiB // 2


def test_upstream_stalled_mid_body_times_out(harness):
    def answer(conn, head):
        if b"/stall" not in head:   # a health check: answered at once
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
            return
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (4 * MiB) +
                     b"s" * (MiB // 2))
        time.sleep(4)
    up = ScriptedUpstream(answer, "stalling")
    harness.procs.append(up)
    proxy = harness.proxy(up.url, old_extra="read_timeout = 0.5;")
    admin = proxy_admin(proxy)
    with Client(proxy.port, timeout=10) as c:
        c.send(build_request("GET", "/stall"))
        r = c.read_head()
        assert r.status == 200, r
        t0 = time.monotonic()
        got = len(c.buf)
        c.buf.clear()
        while c._fill(timeout=5):
            got += len(c.buf)
            c.buf.clear()
        took = time.monotonic() - t0
    assert got == MiB // 2 and took < 3, (got, took)
    line = log_line(proxy, "GET /stall")
    assert "upstream timed out after %d bytes of a %d-byte body" % (MiB // 2, 4 * MiB) in line, line
    assert spliced(admin) > MiB // 4


def test_client_that_stops_reading_is_dropped_after_send_timeout(harness):
    old = harness.upstream("old", record=False)
    proxy = harness.proxy(old, extra='limits = { send_timeout = 0.5; };\n')
    admin = proxy_admin(proxy)
    c = Client(proxy.port, timeout=10)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        c.send(build_request("GET", "/bytes/%d" % (64 * MiB)))
        assert c.read_head().status == 200
        wait_for(lambda: admin.status()["upstreams"]["old"]["in_flight"] == 0, 5,
                 what="the exchange to end once the client stopped reading")
    finally:
        c.close()
    assert spliced(admin) > 0


def test_client_shuts_its_side_mid_upload_gets_400(harness):
    old = harness.upstream("old", record=False)
    proxy = harness.proxy(old)
    admin = proxy_admin(proxy)
    with Client(proxy.port, timeout=10) as c:
        c.send(build_request("POST", "/sink?half", [("Content-Length", str(4 * MiB))]) +
               body_block(MiB))
        time.sleep(0.2)  # let the buffered part go and the tunnel start
        c.sock.shutdown(socket.SHUT_WR)
        r = c.read_response("POST")
        assert r.status == 400, r
        assert b"closed before the end of the request body" in r.body, r
    assert spliced(admin) > MiB // 2


def test_client_stalled_mid_upload_gets_408(harness):
    old = harness.upstream("old", record=False)
    proxy = harness.proxy(old, extra='limits = { body_timeout = 0.5; };\n')
    admin = proxy_admin(proxy)
    with Client(proxy.port, timeout=10) as c:
        c.send(build_request("POST", "/sink?stall", [("Content-Length", str(4 * MiB))]) +
               body_block(MiB))
        t0 = time.monotonic()
        r = c.read_response("POST")
        assert r.status == 408 and time.monotonic() - t0 < 3, r
    assert spliced(admin) > MiB // 2


def test_slow_body_through_the_tunnel_gets_408(harness):
    """min_body_rate still applies once the body goes by tunnel."""
    old = harness.upstream("old", record=False)
    proxy = harness.proxy(old, extra='limits = { min_body_rate = 400000; '
                                     'min_body_rate_grace = 0.5; };\n')
    admin = proxy_admin(proxy)
    with Client(proxy.port, timeout=10) as c:
        c.send(build_request("POST", "/sink?trickle", [("Content-Length", str(4 * MiB))]) +
               body_block(256 * 1024))
        t0 = time.monotonic()
        for _ in range(100):        # 1 KiB every 50 ms: 20 KiB/s, far below the rate
            try:
                c.send(b"t" * 1024)
                if c._fill(timeout=0.05):
                    break           # the answer came
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                break
        r = c.read_response("POST")
        took = time.monotonic() - t0
    assert r.status == 408 and took < 4, (r, took)
    assert spliced(admin) > 0, "the body never went by tunnel"
