"""Errors cutover makes itself (502/504, never 2xx, always Date and
X-Cutover-Mode) and the client-side bounds: header timeout, keep-alive
timeout, max_connections."""

import socket
import time

import pytest

from cutover_testlib import (Client, ConnectionClosed, Deadline, build_request, free_port, get,
                             request, wait_for)


def assert_own_error(r, statuses):
    assert r.status in statuses, r
    assert not 200 <= r.status < 400, r
    assert r.header("Date"), "no Date: %r" % r
    assert r.header("X-Cutover-Mode") == "old", "no X-Cutover-Mode: %r" % r
    assert r.header("X-Upstream") is None, r


def test_upstream_down_502(harness):
    dead = "http://127.0.0.1:%d" % free_port()           # nothing listens there
    proxy = harness.proxy(dead)
    t0 = time.monotonic()
    r = get(proxy.port, "/echo")
    assert_own_error(r, {502})
    assert time.monotonic() - t0 < 5
    # and the connection-level behaviour stays sane: a second request also 502s
    r2 = get(proxy.port, "/a/alpha/phone/restore/")
    assert_own_error(r2, {502})


def test_upstream_down_submission_never_2xx(harness):
    proxy = harness.proxy("http://127.0.0.1:%d" % free_port())
    r = get(proxy.port, "/a/alpha/receiver/")
    assert_own_error(r, {502})
    r = request(proxy.port, "POST", "/a/alpha/receiver/", body=b"<form/>",
                headers=[("Content-Type", "text/xml")])
    assert_own_error(r, {502, 503})


def test_upstream_closes_before_response_502(harness):
    old = harness.upstream("old")
    proxy = harness.proxy(old)
    r = get(proxy.port, "/close-before-response")
    assert_own_error(r, {502})
    assert old.find("/close-before-response")
    # cutover stays healthy
    assert get(proxy.port, "/echo").status == 200


def test_upstream_reset_502(harness):
    old = harness.upstream("old")
    proxy = harness.proxy(old)
    r = get(proxy.port, "/reset")
    assert_own_error(r, {502})
    assert get(proxy.port, "/echo").status == 200


@pytest.mark.slow
def test_pooled_connection_closed_by_upstream_while_idle(harness):
    """The upstream closes idle keep-alive connections after 0.5 s; a request
    after that must not fail because cutover reused a dead pooled connection."""
    old = harness.upstream("old", keepalive_timeout=0.5)
    proxy = harness.proxy(old)
    for i in range(3):
        with Client(proxy.port) as c:
            assert c.request("GET", "/echo?warm-%d" % i).status == 200
        time.sleep(1.2)
        r = get(proxy.port, "/echo?after-idle-%d" % i)
        assert r.status == 200, "request after the upstream closed an idle pooled connection: %r" % r
    assert old.stats()["connections"] >= 3


def test_upstream_read_timeout_504(harness):
    old = harness.upstream("old")
    proxy = harness.proxy(old, old_extra="read_timeout = 1.0;")
    t0 = time.monotonic()
    r = get(proxy.port, "/slow?delay=4")
    took = time.monotonic() - t0
    assert_own_error(r, {504})
    assert 0.8 <= took < 3.5, "504 after %.2fs with read_timeout 1.0" % took
    # a fast request on the same proxy is fine
    assert get(proxy.port, "/echo").status == 200


def test_header_timeout_partial_head(harness):
    old = harness.upstream("old")
    proxy = harness.proxy(old, extra="limits = { header_timeout = 1.0; };\n")
    with Client(proxy.port, timeout=6) as c:
        t0 = time.monotonic()
        c.send(b"GET /echo?slowloris HTTP/1.1\r\nHost: x\r\n")
        got = b""
        d = Deadline(6)
        while not d.expired():
            try:
                c.sock.settimeout(d.left())
                data = c.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                break
            except ConnectionResetError:
                data = b""
            if not data:
                break
            got += data
        took = time.monotonic() - t0
    assert d.left() > 0, "connection still open %.1fs after a partial head" % took
    assert 0.7 <= took < 4.0, "closed after %.2fs with header_timeout 1.0" % took
    if got:
        assert got.startswith(b"HTTP/1.1 408") or got.startswith(b"HTTP/1.0 408"), got[:200]
    assert not old.find("slowloris")


@pytest.mark.slow
def test_header_timeout_bounds_whole_head_not_each_byte(harness):
    """Trickling one header byte every 0.2 s must not keep the connection alive."""
    proxy = harness.proxy(harness.upstream("old"), extra="limits = { header_timeout = 1.0; };\n")
    c = Client(proxy.port, timeout=1)
    t0 = time.monotonic()
    c.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n")
    closed = False
    try:
        while time.monotonic() - t0 < 6:
            c.sock.sendall(b"X")
            time.sleep(0.2)
            c.sock.setblocking(False)
            try:
                data = c.sock.recv(4096)
                if data == b"" or data.startswith(b"HTTP/1.1 408"):
                    closed = True
                    break
            except BlockingIOError:
                pass
            finally:
                c.sock.setblocking(True)
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    finally:
        c.close()
    took = time.monotonic() - t0
    assert closed, "trickling client kept the connection for %.1fs" % took
    assert took < 4.0, "closed only after %.2fs with header_timeout 1.0" % took


def test_keepalive_timeout_closes_idle_client(harness):
    proxy = harness.proxy(harness.upstream("old"), extra="limits = { keepalive_timeout = 1.0; };\n")
    with Client(proxy.port, timeout=6) as c:
        assert c.request("GET", "/echo").status == 200
        t0 = time.monotonic()
        assert c.closed_within(5.0), "idle keep-alive connection still open after 5s"
        took = time.monotonic() - t0
    assert 0.7 <= took < 4.0, "idle connection closed after %.2fs with keepalive_timeout 1.0" % took


def test_max_connections(harness):
    old = harness.upstream("old")
    proxy = harness.proxy(old, extra="workers = 1;\nlimits = { max_connections = 2; };\n")
    a = Client(proxy.port, timeout=5)
    b = Client(proxy.port, timeout=5)
    try:
        assert a.request("GET", "/echo?conn=a").status == 200
        assert b.request("GET", "/echo?conn=b").status == 200
        third = Client(proxy.port, timeout=5)           # kernel may complete the handshake
        try:
            third.send(build_request("GET", "/echo?conn=third"))
            third.sock.settimeout(1.5)
            try:
                early = third.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                early = None
            except ConnectionResetError:
                early = b""
            if early:
                assert not early.startswith(b"HTTP/1.1 2"), \
                    "third connection served while max_connections=2 were open: %r" % early[:200]
            assert not old.find("conn=third"), "third connection's request reached the upstream"
            a.close()
            if early is None:
                # it waited in the accept queue: now it is served
                third.sock.settimeout(5)
                r = third.read_response()
                assert r.status == 200 and r.json()["path"] == "/echo?conn=third", r
            else:
                # it was turned away; a new connection is now served
                def served():
                    try:
                        return get(proxy.port, "/echo?conn=fourth", timeout=2).status == 200
                    except OSError:
                        return False
                wait_for(served, 5, interval=0.1, what="a connection to be served after one closed")
        finally:
            third.close()
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("path", ["/close-before-response", "/reset"])
def test_upstream_failure_on_post_never_2xx(harness, path):
    old = harness.upstream("old")
    proxy = harness.proxy(old)
    r = request(proxy.port, "POST", path, body=b"x" * 10000)
    assert_own_error(r, {502})


BAD_HEADS = ["cl-te", "dup-cl", "garbage", "bare-lf", "obs-fold", "bad-status", "nul-in-header"]


@pytest.fixture(scope="module")
def bad_env(module_harness):
    old = module_harness.upstream("old")
    return module_harness.proxy(old), old


@pytest.mark.parametrize("kind", BAD_HEADS)
def test_malformed_upstream_response_head_502(bad_env, kind):
    """An ambiguous or malformed response head is not relayed: 502."""
    proxy, _ = bad_env
    r = get(proxy.port, "/bad-response?kind=" + kind)
    assert_own_error(r, {502})
    assert get(proxy.port, "/echo").status == 200


def test_oversized_upstream_response_head_502(harness):
    """A 300 KiB response head (then the upstream closes): 502, promptly."""
    old = harness.upstream("old")
    # a short drain so that a stuck exchange fails this test, not the teardown
    proxy = harness.proxy(old, extra="limits = { drain_timeout = 2.0; };\n")
    t0 = time.monotonic()
    try:
        r = get(proxy.port, "/bad-response?kind=huge-head", timeout=5)
    except (socket.timeout, TimeoutError):
        raise AssertionError("no answer within 5 s to a request whose upstream sent an "
                             "oversized response head and closed")
    assert_own_error(r, {502})
    assert time.monotonic() - t0 < 3
    assert get(proxy.port, "/echo").status == 200


def test_malformed_upstream_chunk_not_relayed_as_complete(bad_env):
    """A bad chunk size in the upstream's body: the client must not receive a
    complete-looking response (502, or the response is cut off)."""
    proxy, _ = bad_env
    with Client(proxy.port, timeout=5) as c:
        c.send(build_request("GET", "/bad-response?kind=bad-chunk"))
        try:
            r = c.read_response()
        except ConnectionClosed:
            return                      # headers relayed, then the connection cut: fine
        assert_own_error(r, {502})


def test_truncated_upstream_body_is_not_completed(bad_env):
    """The upstream announces 100000 bytes, sends 5000 and closes: the client
    must see a cut-off response, never a complete one."""
    proxy, _ = bad_env
    with Client(proxy.port, timeout=5) as c:
        c.send(build_request("GET", "/truncated/100000?send=5000"))
        try:
            r = c.read_response()
        except ConnectionClosed:
            return
        # only acceptable if cutover noticed before sending the head
        assert_own_error(r, {502})
