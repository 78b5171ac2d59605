"""The data path: methods, bodies (Content-Length and chunked, both ways),
keep-alive, HTTP/1.0, pipelining, 100-continue, the OpenRosa flows and the
local health endpoint."""

import hashlib
import os
import socket
import threading
import time

import pytest

from cutover_testlib import Client, HEALTH_PATH, build_request, free_port, get, request

FORM_XML = (b'<?xml version="1.0"?><data xmlns="http://openrosa.org/formdesigner/1" id="f1">'
            b"<name>Amina</name><meta><instanceID>uuid:6f1c0a2e-5d1b-4c77-9a0e-1a2b3c4d5e6f"
            b"</instanceID></meta></data>")


def multipart(fields):
    """fields: [(name, filename, content_type, bytes)] -> (content_type, body)."""
    boundary = "----cutover-test-boundary-7d1e2f"
    out = b""
    for name, filename, ctype, data in fields:
        out += b"--" + boundary.encode() + b"\r\n"
        out += ('Content-Disposition: form-data; name="%s"; filename="%s"\r\n' % (name, filename)).encode()
        out += ("Content-Type: %s\r\n\r\n" % ctype).encode()
        out += data + b"\r\n"
    out += b"--" + boundary.encode() + b"--\r\n"
    return "multipart/form-data; boundary=" + boundary, out


def test_get_forwarded_to_old(proxy, old):
    r = get(proxy.port, "/echo?q=get-1")
    assert r.status == 200, r
    assert r.header("X-Upstream") == "old"
    body = r.json()
    assert body["method"] == "GET" and body["path"] == "/echo?q=get-1"
    rec = old.wait_record("/echo?q=get-1")
    assert rec[0]["method"] == "GET" and rec[0]["body_len"] == 0


def test_post_content_length_body_intact(proxy, old):
    data = os.urandom(300_000)
    r = request(proxy.port, "POST", "/sink?case=post-cl", body=data)
    assert r.status == 200, r
    assert r.json() == {"received": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    rec = old.wait_record("/sink?case=post-cl")[0]
    assert rec["complete"] and rec["body_len"] == len(data)


def test_head_forwarded_and_connection_reusable(proxy, old):
    with Client(proxy.port) as c:
        r = c.request("HEAD", "/bytes/12345")
        assert r.status == 200, r
        assert r.header("Content-Length") == "12345"
        assert r.body == b""
        # a HEAD response has no body: the next response must parse cleanly
        r2 = c.request("GET", "/bytes/10")
        assert r2.status == 200 and r2.body_len == 10, r2
    assert old.find("/bytes/12345")[0]["method"] == "HEAD"


def test_head_on_chunked_resource(proxy):
    """HEAD where the upstream announces Transfer-Encoding: chunked: no body
    follows, and the next response on the connection parses."""
    with Client(proxy.port) as c:
        r = c.request("HEAD", "/bytes/5000?chunked=1")
        assert r.status == 200 and r.body == b"", r
        r2 = c.request("GET", "/echo?after-head-chunked")
        assert r2.status == 200 and r2.json()["path"] == "/echo?after-head-chunked", r2


def test_client_connection_close_honoured(proxy):
    with Client(proxy.port) as c:
        r = c.request("GET", "/echo", headers=[("Connection", "close")])
        assert r.status == 200
        assert c.closed_within(3.0), "connection left open after Connection: close"


def test_chunked_request_body(proxy, old):
    pieces = [os.urandom(n) for n in (1, 1000, 65536, 7, 200_000)]
    data = b"".join(pieces)
    wire = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    with Client(proxy.port) as c:
        c.send(build_request("POST", "/sink?case=chunked-req",
                             [("Transfer-Encoding", "chunked")]) + wire)
        r = c.read_response()
    assert r.status == 200, r
    assert r.json() == {"received": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    rec = old.wait_record("/sink?case=chunked-req")[0]
    assert rec["complete"] and rec["body_len"] == len(data)


def test_chunked_request_body_split_across_writes(proxy):
    data = b"hello, chunked world"
    with Client(proxy.port) as c:
        c.send(build_request("POST", "/sink", [("Transfer-Encoding", "chunked")]))
        for piece in (b"5\r\nhel", b"lo\r\n", b"f\r\n, chunked world\r", b"\n0\r", b"\n\r\n"):
            c.send(piece)
            time.sleep(0.05)
        r = c.read_response()
    assert r.status == 200, r
    assert r.json() == {"received": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_chunked_response_intact(proxy):
    n = 1_000_003
    with Client(proxy.port) as c:
        r = c.request("GET", "/bytes/%d?chunked=1" % n)
        assert r.status == 200, r
        assert r.body_len == n
        expect = (b"cutover-demo-upstream-0123456789abcdefghijklmnopqrstuvwxyz\n" * 1200)[:65536]
        assert r.body[:65536] == expect
        # framing intact: the connection serves another request
        r2 = c.request("GET", "/bytes/3")
        assert r2.status == 200 and r2.body_len == 3


def test_chunked_response_with_trailer(proxy):
    with Client(proxy.port) as c:
        r = c.request("GET", "/bytes/70000?chunked=1&trailer=1")
        assert r.status == 200 and r.body_len == 70000, r
        r2 = c.request("GET", "/echo?after-trailer")
        assert r2.status == 200 and r2.json()["path"] == "/echo?after-trailer", r2


def test_content_length_response_intact(proxy):
    n = 2_500_000
    r = get(proxy.port, "/bytes/%d" % n)
    assert r.status == 200, r
    assert r.header("Content-Length") == str(n)
    assert r.body_len == n


def test_close_delimited_upstream_response(proxy):
    """An upstream body that ends when the upstream closes (no Content-Length,
    not chunked) reaches a 1.1 client whole, framed so the client can tell."""
    n = 300_001
    with Client(proxy.port) as c:
        r = c.request("GET", "/bytes/%d?close=1" % n)
        assert r.status == 200, r
        assert r.body_len == n
        if r.chunked or r.header("Content-Length"):
            # framed for the client: the connection may stay open and serve again
            if not c.eof:
                r2 = c.request("GET", "/bytes/7")
                assert r2.status == 200 and r2.body_len == 7
        else:
            assert c.eof


def test_keep_alive_two_requests_one_socket(proxy, old):
    with Client(proxy.port) as c:
        r1 = c.request("GET", "/echo?ka=1")
        r2 = c.request("GET", "/echo?ka=2")
        assert r1.status == 200 and r2.status == 200
        assert r1.json()["path"] == "/echo?ka=1" and r2.json()["path"] == "/echo?ka=2"
        assert (r1.header("Connection") or "").lower() != "close"
        assert not c.closed_within(0.3), "keep-alive connection closed after two requests"


def test_http10_client(proxy):
    with Client(proxy.port) as c:
        c.send(b"GET /bytes/5000?chunked=1 HTTP/1.0\r\nHost: cutover.test\r\n\r\n")
        r = c.read_response()
        assert r.status == 200, r
        assert r.version in ("HTTP/1.0", "HTTP/1.1")
        assert not r.headers_all("Transfer-Encoding"), "chunked sent to an HTTP/1.0 client: %r" % r
        assert r.body_len == 5000
        assert c.closed_within(3.0), "connection not closed after an HTTP/1.0 response"


def test_http10_post_with_content_length(proxy):
    with Client(proxy.port) as c:
        c.send(b"POST /sink HTTP/1.0\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        r = c.read_response()
        assert r.status == 200, r
        assert r.json()["received"] == 5
        assert not r.headers_all("Transfer-Encoding")


def test_pipelined_requests_answered_in_order(proxy, old):
    reqs = (build_request("GET", "/echo?seq=1")
            + build_request("POST", "/sink?seq=2", body=b"pipelined-body")
            + build_request("GET", "/echo?seq=3"))
    with Client(proxy.port) as c:
        c.send(reqs)                    # one write
        r1 = c.read_response()
        r2 = c.read_response()
        r3 = c.read_response()
    assert r1.status == r2.status == r3.status == 200, (r1, r2, r3)
    assert r1.json()["path"] == "/echo?seq=1"
    assert r2.json() == {"received": 14, "sha256": hashlib.sha256(b"pipelined-body").hexdigest()}
    assert r3.json()["path"] == "/echo?seq=3"


def test_pipelined_large_responses(proxy):
    """Pipelined requests behind multi-MB responses: all answered, in order, intact."""
    sizes = [3_000_000, 17, 2_000_000]
    reqs = b"".join(build_request("GET", "/bytes/%d" % n) for n in sizes)
    reqs += build_request("GET", "/echo?seq=last")
    with Client(proxy.port, timeout=20) as c:
        c.send(reqs)
        for n in sizes:
            r = c.read_response(keep_body=False)
            assert r.status == 200 and r.body_len == n, r
        last = c.read_response()
        assert last.json()["path"] == "/echo?seq=last"


def test_concurrent_clients_no_crosstalk(proxy):
    """32 clients x 20 keep-alive requests at once: each gets its own answers."""
    errors = []

    def client(i):
        try:
            with Client(proxy.port, timeout=20) as c:
                for j in range(20):
                    if j % 4 == 3:
                        body = ("%d-%d" % (i, j)).encode() * 100
                        r = c.request("POST", "/sink?c=%d&r=%d" % (i, j), body=body)
                        want = {"received": len(body), "sha256": hashlib.sha256(body).hexdigest()}
                        if r.status != 200 or r.json() != want:
                            errors.append((i, j, r))
                    else:
                        path = "/echo?c=%d&r=%d" % (i, j)
                        r = c.request("GET", path)
                        if r.status != 200 or r.json()["path"] != path:
                            errors.append((i, j, r))
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append((i, repr(e)))
    threads = [threading.Thread(target=client, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "clients still running after 60 s"
    assert not errors, errors[:5]


def test_expect_100_continue(proxy, old):
    body = b"sent after 100 Continue"
    with Client(proxy.port, timeout=5) as c:
        c.send(build_request("POST", "/sink?case=expect", [
            ("Expect", "100-continue"), ("Content-Length", str(len(body)))]))
        interim = c.read_head()         # must come without the body having been sent
        assert interim.status == 100, interim
        assert interim.version == "HTTP/1.1"
        c.send(body)
        r = c.read_response()
    assert r.status == 200, r
    assert r.json() == {"received": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def test_openrosa_restore(proxy, old):
    r = get(proxy.port, "/a/alpha/phone/restore/?version=2.0&since=&device_id=d1")
    assert r.status == 200, r
    assert r.header("X-Upstream") == "old"
    assert r.header("X-OpenRosa-Version") == "3.0"
    assert r.header("Content-Type", "").startswith("text/xml")
    text = r.body.decode()
    assert text.startswith("<?xml")
    for needle in ("<OpenRosaResponse", "<Sync", "<Registration", "<case ", "</OpenRosaResponse>"):
        assert needle in text
    assert len(r.body) == int(r.header("Content-Length"))


def test_openrosa_submission_multipart(proxy, old):
    ctype, body = multipart([("xml_submission_file", "form.xml", "text/xml", FORM_XML),
                             ("photo.jpg", "photo.jpg", "image/jpeg", os.urandom(50_000))])
    r = request(proxy.port, "POST", "/a/alpha/receiver/secure/abc123/", body=body,
                headers=[("Content-Type", ctype), ("X-OpenRosa-Version", "1.0")])
    assert r.status == 201, r
    assert r.header("X-Upstream") == "old"
    assert b'nature="submit_success"' in r.body
    rec = old.wait_record("/a/alpha/receiver/secure/abc123/")[0]
    assert rec["method"] == "POST" and rec["body_len"] == len(body)
    assert rec["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_openrosa_head_submission(proxy):
    with Client(proxy.port) as c:
        r = c.request("HEAD", "/a/alpha/receiver/")
        assert r.status == 204, r
        assert r.header("X-OpenRosa-Accept-Content-Length") == "104857600"
        assert r.header("X-OpenRosa-Version") == "3.0"
        assert r.body == b""
        r2 = c.request("GET", "/echo?after-204")
        assert r2.status == 200 and r2.json()["path"] == "/echo?after-204"


def test_openrosa_heartbeat(proxy, old):
    r = get(proxy.port, "/a/alpha/phone/heartbeat/app1/?num_unsent_forms=3&device_id=dev-1")
    assert r.status == 200, r
    assert r.json()["served_by"] == "old"


def test_health_is_local(proxy, old):
    with Client(proxy.port) as c:
        r = c.request("GET", HEALTH_PATH)
        assert r.status == 200, r
        assert b"old" in r.body
        assert r.header("X-Cutover-Mode") == "old"
        assert r.header("Date")
        assert r.header("X-Upstream") is None
        # HEAD too, and the connection stays usable
        r2 = c.request("HEAD", HEALTH_PATH)
        assert r2.status == 200 and r2.body == b""
        r3 = c.request("GET", "/echo?after-health")
        assert r3.status == 200
    old.wait_record("/echo?after-health")
    assert not any("well-known" in (x.get("path") or "") for x in old.records())
    assert "well-known" not in old.record_text()


def test_large_request_header_block_forwarded(proxy, old):
    # 40 headers of 100 bytes: well under any sane default limit
    hdrs = [("X-Pad-%02d" % i, "v" * 100) for i in range(40)]
    r = request(proxy.port, "GET", "/echo?case=many-headers", headers=hdrs)
    assert r.status == 200, r
    got = {k: v for k, v in r.json()["headers"]}
    assert all(got.get("X-Pad-%02d" % i) == "v" * 100 for i in range(40))



def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
def test_ipv6_listener(harness):
    old = harness.upstream("old")
    p6 = free_port()
    proxy = harness.proxy(old, more_listen=["[::1]:%d" % p6])
    with socket.create_connection(("::1", p6), timeout=5) as s:
        s.sendall(build_request("GET", "/echo?v6"))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            assert chunk, "IPv6 listener closed without answering"
            data += chunk
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    rec = old.wait_record("/echo?v6")[0]
    xff = [v for k, v in rec["headers"] if k.lower() == "x-forwarded-for"]
    assert xff in (["::1"], ["[::1]"]), rec["headers"]
    assert get(proxy.port, "/echo?v4").status == 200
