"""Strict framing: ambiguous or malformed requests get 400 (414/431 for size),
the connection is closed, and nothing of them reaches the upstream.

Every case carries a unique marker in its path (and in any request smuggled
inside it). After each case a valid sentinel request is sent and waited for
at the upstream, then the upstream's record file (which logs every request it
received, including incomplete ones and request lines it could not parse)
must not contain the marker anywhere."""

import threading
import uuid

import pytest

from cutover_testlib import Client, ConnectionClosed, get

H = "Host: cutover.test\r\n"
LIMITS = "limits = { max_request_line = 4096; max_header_bytes = 16384; };\n"


def chunked_post(te_lines, body, extra=""):
    return "POST {M} HTTP/1.1\r\n" + H + extra + te_lines + "\r\n" + body


SMUGGLED = "GET {M}-inner HTTP/1.1\r\n" + H + "\r\n"

CASES = [
    # Content-Length / Transfer-Encoding ambiguity
    ("cl-te", "POST {M} HTTP/1.1\r\n" + H + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
     "0\r\n\r\n" + SMUGGLED, {400}),
    ("te-cl", "POST {M} HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n"
     "0\r\n\r\n" + SMUGGLED, {400}),
    ("te-space-before-colon-cl", "POST {M} HTTP/1.1\r\n" + H + "Transfer-Encoding : chunked\r\n"
     "Content-Length: 5\r\n\r\n0\r\n\r\n" + SMUGGLED, {400}),
    ("dup-cl", "POST {M} HTTP/1.1\r\n" + H + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", {400}),
    ("diff-cl", "POST {M} HTTP/1.1\r\n" + H + "Content-Length: 5\r\nContent-Length: 41\r\n\r\nhello"
     + SMUGGLED, {400}),
    ("cl-list", "POST {M} HTTP/1.1\r\n" + H + "Content-Length: 3, 3\r\n\r\nabc", {400}),
    ("cl-plus", "POST {M} HTTP/1.1\r\n" + H + "Content-Length: +5\r\n\r\nhello", {400}),
    ("cl-negative", "POST {M} HTTP/1.1\r\n" + H + "Content-Length: -1\r\n\r\n", {400}),
    ("cl-hex", "POST {M} HTTP/1.1\r\n" + H + "Content-Length: 0x5\r\n\r\nhello", {400}),
    ("te-gzip", chunked_post("Transfer-Encoding: gzip\r\n", "0\r\n\r\n"), {400}),
    ("te-chunked-gzip", chunked_post("Transfer-Encoding: chunked, gzip\r\n", "0\r\n\r\n"), {400}),
    ("te-not-final-two-headers", chunked_post(
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n", "0\r\n\r\n"), {400}),
    ("te-identity", chunked_post("Transfer-Encoding: identity\r\n", "0\r\n\r\n"), {400}),
    ("te-duplicate", chunked_post(
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), {400}),
    ("te-chunked-twice-list", chunked_post("Transfer-Encoding: chunked, chunked\r\n", "0\r\n\r\n"), {400}),
    ("te-xchunked", chunked_post("Transfer-Encoding: xchunked\r\n", "0\r\n\r\n"), {400}),
    # chunk framing
    ("chunk-size-zz", chunked_post("Transfer-Encoding: chunked\r\n", "zz\r\nhello\r\n0\r\n\r\n"), {400}),
    ("chunk-size-negative", chunked_post("Transfer-Encoding: chunked\r\n", "-1\r\nhello\r\n0\r\n\r\n"), {400}),
    ("chunk-size-oversized", chunked_post(
        "Transfer-Encoding: chunked\r\n", "fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"), {400}),
    ("chunk-size-wraps-to-5", chunked_post(
        "Transfer-Encoding: chunked\r\n", "10000000000000005\r\nhello\r\n0\r\n\r\n" + SMUGGLED), {400}),
    ("chunk-size-empty", chunked_post("Transfer-Encoding: chunked\r\n", "\r\nhello\r\n0\r\n\r\n"), {400}),
    ("chunk-line-bare-lf", chunked_post("Transfer-Encoding: chunked\r\n", "5\nhello\r\n0\r\n\r\n"), {400}),
    ("chunk-data-bare-lf", chunked_post("Transfer-Encoding: chunked\r\n", "5\r\nhello\n0\r\n\r\n"), {400}),
    ("chunk-data-no-crlf", chunked_post("Transfer-Encoding: chunked\r\n", "5\r\nhelloXX0\r\n\r\n"), {400}),
    ("chunk-last-bare-lf", chunked_post("Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\n\n"), {400}),
    # line endings and header syntax
    ("head-bare-cr", "GET {M} HTTP/1.1\r\n" + H + "X-A: 1\rX-Injected: 2\r\n\r\n", {400}),
    ("head-bare-lf", "GET {M} HTTP/1.1\nHost: cutover.test\n\n", {400}),
    ("head-bare-lf-mixed", "GET {M} HTTP/1.1\r\n" + H + "X-A: 1\nX-B: 2\r\n\r\n", {400}),
    ("request-line-bare-lf", "GET {M} HTTP/1.1\n" + H + "\r\n", {400}),
    ("obs-fold", "GET {M} HTTP/1.1\r\n" + H + "X-Folded: a\r\n b\r\n\r\n", {400}),
    ("obs-fold-tab", "GET {M} HTTP/1.1\r\n" + H + "X-Folded: a\r\n\tb\r\n\r\n", {400}),
    ("ws-before-colon", "GET {M} HTTP/1.1\r\n" + H + "X-Foo : bar\r\n\r\n", {400}),
    ("tab-before-colon", "GET {M} HTTP/1.1\r\n" + H + "X-Foo\t: bar\r\n\r\n", {400}),
    ("header-name-paren", "GET {M} HTTP/1.1\r\n" + H + "X(Foo): bar\r\n\r\n", {400}),
    ("header-name-brace", "GET {M} HTTP/1.1\r\n" + H + "X{Foo}: bar\r\n\r\n", {400}),
    ("header-name-space", "GET {M} HTTP/1.1\r\n" + H + "X Foo: bar\r\n\r\n", {400}),
    ("header-name-empty", "GET {M} HTTP/1.1\r\n" + H + ": bar\r\n\r\n", {400}),
    ("header-no-colon", "GET {M} HTTP/1.1\r\n" + H + "X-No-Colon\r\n\r\n", {400}),
    ("header-leading-space", "GET {M} HTTP/1.1\r\n" + H + " X-Indented: a\r\n\r\n", {400}),
    ("value-nul", "GET {M} HTTP/1.1\r\n" + H + "X-A: a\x00b\r\n\r\n", {400}),
    ("value-0x01", "GET {M} HTTP/1.1\r\n" + H + "X-A: a\x01b\r\n\r\n", {400}),
    ("value-0x7f", "GET {M} HTTP/1.1\r\n" + H + "X-A: a\x7fb\r\n\r\n", {400}),
    ("value-0x1f", "GET {M} HTTP/1.1\r\n" + H + "X-A: a\x1fb\r\n\r\n", {400}),
    # request line
    ("method-invalid-token", "G(T {M} HTTP/1.1\r\n" + H + "\r\n", {400}),
    ("method-with-ctl", "GE\x01T {M} HTTP/1.1\r\n" + H + "\r\n", {400}),
    ("target-space", "GET {M} x HTTP/1.1\r\n" + H + "\r\n", {400}),
    ("target-ctl", "GET {M}\x01x HTTP/1.1\r\n" + H + "\r\n", {400}),
    ("target-del", "GET {M}\x7fx HTTP/1.1\r\n" + H + "\r\n", {400}),
    ("target-nul", "GET {M}\x00x HTTP/1.1\r\n" + H + "\r\n", {400}),
    ("target-tab", "GET {M}\tx HTTP/1.1\r\n" + H + "\r\n", {400}),
    ("version-garbage", "GET {M} HTTP/1.x\r\n" + H + "\r\n", {400}),
    ("double-space", "GET  {M} HTTP/1.1\r\n" + H + "\r\n", {400}),
    # sizes (limits set in LIMITS)
    ("request-line-oversized", "GET {M}?" + "q" * 8000 + " HTTP/1.1\r\n" + H + "\r\n", {414}),
    ("headers-oversized", "GET {M} HTTP/1.1\r\n" + H
     + "".join("X-Big-%03d: %s\r\n" % (i, "b" * 200) for i in range(150)) + "\r\n", {431}),
    ("one-header-oversized", "GET {M} HTTP/1.1\r\n" + H + "X-Huge: " + "h" * 20000 + "\r\n\r\n", {431}),
]


@pytest.fixture(scope="module")
def env(module_harness):
    old = module_harness.upstream("old")
    proxy = module_harness.proxy(old, extra=LIMITS)
    return proxy, old


def send_and_read(port, raw):
    """Sends RAW (reading concurrently, so a large request cannot deadlock
    against an early answer) and returns (response, client)."""
    c = Client(port, timeout=5)
    err = []

    def writer():
        try:
            c.sock.sendall(raw)
        except OSError as e:       # cutover may answer and close before reading it all
            err.append(e)
    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        r = c.read_response()
    except ConnectionClosed as e:
        c.close()
        raise AssertionError("connection closed without a response (%s; send error: %r)" % (e, err))
    t.join(5)
    return r, c


def assert_rejected(proxy, old, raw, statuses, marker):
    r, c = send_and_read(proxy.port, raw)
    try:
        assert r.status in statuses, "expected %s, got %r" % (statuses, r)
        assert r.header("Date"), "no Date on cutover's own response: %r" % r
        assert r.header("X-Cutover-Mode") == "old", "no X-Cutover-Mode: %r" % r
        assert r.header("X-Upstream") is None, "the answer came from the upstream: %r" % r
        assert c.closed_within(3.0), "connection left open after a %d" % r.status
    finally:
        c.close()
    # a valid request after it: once the upstream has it, anything smuggled
    # earlier would have been recorded too
    sentinel = "/sentinel-" + uuid.uuid4().hex
    s = get(proxy.port, sentinel)
    assert s.status == 404 and s.header("X-Upstream") == "old", s
    old.wait_record(sentinel)
    leaked = [line for line in old.record_text().splitlines() if marker in line]
    assert not leaked, "request reached the upstream:\n" + "\n".join(leaked)


@pytest.mark.parametrize("name,raw,statuses", CASES, ids=[c[0] for c in CASES])
def test_rejected_and_never_forwarded(env, name, raw, statuses):
    proxy, old = env
    marker = "/smug-%s-%s" % (name, uuid.uuid4().hex[:12])
    data = raw.replace("{M}", marker).encode("latin-1")
    assert_rejected(proxy, old, data, statuses, marker)


def test_control_valid_request_is_recorded(env):
    """The harness itself: a valid request with a marker does reach the upstream."""
    proxy, old = env
    marker = "/smug-control-" + uuid.uuid4().hex[:12]
    r = get(proxy.port, marker)
    assert r.status == 404 and r.header("X-Upstream") == "old"
    assert old.wait_record(marker)[0]["complete"]


def test_valid_chunked_with_extension_and_trailer_accepted(env):
    """Strictness must not reject valid framing: chunk extensions and trailers."""
    proxy, old = env
    marker = "/sink?marker=" + uuid.uuid4().hex
    raw = ("POST " + marker + " HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n"
           "5;name=value\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n").encode()
    r, c = send_and_read(proxy.port, raw)
    c.close()
    assert r.status == 200, r
    assert r.json()["received"] == 5


def test_valid_tab_in_header_value_accepted(env):
    proxy, old = env
    marker = "/echo?marker=" + uuid.uuid4().hex
    r = get(proxy.port, marker, headers=[("X-Tabbed", "a\tb")])
    assert r.status == 200, r
    rec = old.wait_record(marker)[0]
    assert ["X-Tabbed", "a\tb"] in rec["headers"]


def test_smuggled_request_in_pipelined_keepalive_not_forwarded(env):
    """A valid request followed on the same connection by a CL+TE one: the first
    is served, the second rejected, and its body never parsed as a request."""
    proxy, old = env
    m = "/smug-pipeline-" + uuid.uuid4().hex[:12]
    raw = ("GET " + m + "-first HTTP/1.1\r\n" + H + "\r\n"
           "POST " + m + " HTTP/1.1\r\n" + H + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
           "0\r\n\r\n" + "GET " + m + "-inner HTTP/1.1\r\n" + H + "\r\n").encode()
    with Client(proxy.port, timeout=5) as c:
        c.send(raw)
        r1 = c.read_response()
        assert r1.status == 404 and r1.header("X-Upstream") == "old", r1
        r2 = c.read_response()
        assert r2.status == 400, r2
        assert c.closed_within(3.0)
    sentinel = "/sentinel-" + uuid.uuid4().hex
    get(proxy.port, sentinel)
    old.wait_record(sentinel)
    paths = [x.get("path") for x in old.records()
             if m in (x.get("path") or "") or m in (x.get("raw") or "")]
    assert paths == [m + "-first"], paths


def test_default_limits_oversized_line_and_headers(harness):
    """With default limits: a 128 KiB request line gets 414, 256 KiB of headers 431."""
    old = harness.upstream("old")
    proxy = harness.proxy(old)
    m1 = "/smug-default-line-" + uuid.uuid4().hex[:8]
    assert_rejected(proxy, old, ("GET " + m1 + "?" + "q" * (128 * 1024) + " HTTP/1.1\r\n" + H
                                 + "\r\n").encode(), {414}, m1)
    m2 = "/smug-default-headers-" + uuid.uuid4().hex[:8]
    assert_rejected(proxy, old, ("GET " + m2 + " HTTP/1.1\r\n" + H
                                 + "".join("X-Big-%04d: %s\r\n" % (i, "b" * 1000) for i in range(256))
                                 + "\r\n").encode(), {431}, m2)


def test_rejections_do_not_disturb_other_connections(env):
    proxy, _ = env
    with Client(proxy.port) as good:
        assert good.request("GET", "/echo?before").status == 200
        for _ in range(3):
            bad = Client(proxy.port, timeout=5)
            bad.send(b"GET /x HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n")
            assert bad.read_response().status == 400
            bad.close()
        assert good.request("GET", "/echo?after").status == 200
