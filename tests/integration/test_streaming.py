"""Bodies stream through with bounded memory: a 1 GiB download from nginx,
a 200 MiB upload to the demo /sink, and backpressure from a client that
stops reading. RSS bounds are skipped under ASan (CUTOVER_SANITIZED=1)."""

import hashlib
import socket
import time

import pytest

from cutover_testlib import SANITIZED, Client, RssSampler, build_request, get

MiB = 1 << 20
GiB = 1 << 30
RSS_GROWTH_MAX = 16 * MiB

pytestmark = pytest.mark.slow


def warm_up(proxy, path):
    # first requests allocate per-worker state (pools, buffers): not "growth"
    for _ in range(3):
        r = get(proxy.port, path)
        assert r.status == 200, r
    return proxy.rss()


def assert_rss_growth(baseline, peak, what):
    growth = peak - baseline
    print("%s: RSS baseline %.1f MiB, peak %.1f MiB, growth %.1f MiB"
          % (what, baseline / MiB, peak / MiB, growth / MiB))
    if SANITIZED:
        return
    assert growth < RSS_GROWTH_MAX, "%s: RSS grew by %.1f MiB (limit 16 MiB)" % (what, growth / MiB)


def test_1gib_download_from_nginx(harness, nginx):
    proxy = harness.proxy(nginx)
    baseline = warm_up(proxy, "/small.txt")
    with Client(proxy.port, timeout=30) as c, RssSampler(proxy.pid) as rss:
        c.send(build_request("GET", "/big.bin"))
        r = c.read_head()
        assert r.status == 200, r
        assert r.header("Content-Length") == str(GiB)
        got = 0
        nonzero = 0
        buf = bytearray(4 * MiB)
        view = memoryview(buf)
        pending = len(c.buf)            # body bytes read along with the head
        got += pending
        c.buf.clear()
        c.sock.settimeout(30)
        t0 = time.monotonic()
        while got < GiB and time.monotonic() - t0 < 120:
            n = c.sock.recv_into(view, min(len(buf), GiB - got))
            if n == 0:
                break
            if buf[0] or buf[n - 1]:    # cheap spot check: the sparse file is zeros
                nonzero += 1
            got += n
        took = time.monotonic() - t0
    assert got == GiB, "received %d of %d bytes" % (got, GiB)
    assert nonzero == 0
    print("1 GiB in %.2fs (%.0f MB/s), %d RSS samples" % (took, GiB / took / 1e6, rss.samples))
    assert_rss_growth(baseline, rss.max, "1 GiB download")
    # the connection is still usable afterwards
    assert get(proxy.port, "/small.txt").body == b"hello from nginx\n"


def test_200mib_upload_to_sink(harness):
    old = harness.upstream("old", record=False)
    proxy = harness.proxy(old)
    baseline = warm_up(proxy, "/echo")
    total = 200 * MiB
    block = bytes((i * 7 + 3) & 0xFF for i in range(MiB))
    sha = hashlib.sha256()
    with Client(proxy.port, timeout=60) as c, RssSampler(proxy.pid) as rss:
        c.send(build_request("POST", "/sink", [("Content-Length", str(total)),
                                               ("Content-Type", "application/octet-stream")]))
        sent = 0
        t0 = time.monotonic()
        while sent < total:
            c.sock.sendall(block)
            sha.update(block)
            sent += len(block)
        r = c.read_response()
        took = time.monotonic() - t0
    assert r.status == 200, r
    assert r.json() == {"received": total, "sha256": sha.hexdigest()}
    print("200 MiB upload in %.2fs" % took)
    assert_rss_growth(baseline, rss.max, "200 MiB upload")


def test_chunked_upload_streams(harness):
    """A 64 MiB chunked upload also streams (no buffering of the whole body)."""
    old = harness.upstream("old", record=False)
    proxy = harness.proxy(old)
    baseline = warm_up(proxy, "/echo")
    block = bytes(range(256)) * 1024 * 4          # 1 MiB
    n_blocks = 64
    sha = hashlib.sha256()
    with Client(proxy.port, timeout=60) as c, RssSampler(proxy.pid) as rss:
        c.send(build_request("POST", "/sink", [("Transfer-Encoding", "chunked")]))
        for _ in range(n_blocks):
            c.sock.sendall(b"%x\r\n" % len(block) + block + b"\r\n")
            sha.update(block)
        c.sock.sendall(b"0\r\n\r\n")
        r = c.read_response()
    assert r.status == 200, r
    assert r.json() == {"received": n_blocks * len(block), "sha256": sha.hexdigest()}
    assert_rss_growth(baseline, rss.max, "64 MiB chunked upload")


def test_slow_reader_backpressure(harness, nginx):
    """A client that stops reading mid-download: cutover must stop reading from
    nginx instead of buffering the rest of the 1 GiB."""
    proxy = harness.proxy(nginx)
    baseline = warm_up(proxy, "/small.txt")
    with Client(proxy.port, timeout=30) as c:
        # a small receive buffer so the pause is felt quickly
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        c.send(build_request("GET", "/big.bin"))
        r = c.read_head()
        assert r.status == 200, r
        got = len(c.buf)
        c.buf.clear()

        def read(n):
            nonlocal got
            left = n
            while left > 0:
                data = c.sock.recv(min(left, MiB))
                assert data, "connection closed after %d bytes" % got
                left -= len(data)
                got += len(data)

        read(8 * MiB)
        with RssSampler(proxy.pid) as rss:
            time.sleep(3.0)                 # stop reading; at loopback speed 3 s is many GiB
        paused_peak = rss.max
        read(16 * MiB)                      # the stream resumes
    assert_rss_growth(baseline, paused_peak, "paused reader")
    assert got >= 24 * MiB
    assert get(proxy.port, "/small.txt").status == 200


def test_upload_backpressure_from_stalled_upstream(harness):
    """The upstream stops reading the body for 3 s after 1 MiB: cutover must
    stop reading from the client instead of buffering the upload."""
    old = harness.upstream("old", record=False)
    proxy = harness.proxy(old)
    baseline = warm_up(proxy, "/echo")
    total = 256 * MiB
    block = b"u" * MiB
    sent = 0
    with Client(proxy.port, timeout=60) as c:
        c.send(build_request("POST", "/sink?pause=3&pause_after=1048576",
                             [("Content-Length", str(total))]))
        c.sock.setblocking(False)
        with RssSampler(proxy.pid) as rss:
            t0 = time.monotonic()
            while time.monotonic() - t0 < 2.5 and sent < total:   # push as fast as accepted
                try:
                    sent += c.sock.send(block[:min(MiB, total - sent)])
                except BlockingIOError:
                    time.sleep(0.005)
            stalled_peak = rss.max
        # while the upstream was not reading, only buffers' worth got through
        assert sent < 64 * MiB, "client pushed %d MiB into a stalled upstream" % (sent // MiB)
        c.sock.setblocking(True)
        c.sock.settimeout(60)
        while sent < total:
            k = min(MiB, total - sent)
            c.sock.sendall(block[:k])
            sent += k
        r = c.read_response()
    assert r.status == 200 and r.json()["received"] == total, r
    assert_rss_growth(baseline, stalled_peak, "upload into a stalled upstream")
