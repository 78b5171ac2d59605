"""Routes: ordered matching on methods and path (no query string), the
project capture group, and max_body (per route, and the limits default).
Which route and project a request got is read from the access log."""

import json
import socket
import uuid

import pytest

from cutover_testlib import Client, ConnectionClosed, build_request, request, wait_for

ROUTES = """\
routes = (
  { name = "submit";  match = { methods = ["POST", "HEAD"]; path = "^/a/([^/]+)/receiver/"; }; project = 1; spool = true; },
  { name = "odk";     match = { path = "^/v1/projects/([0-9]+)/"; }; project = 1; },
  { name = "small";   match = { path = "^/small/"; }; max_body = "1K"; },
  { name = "exact";   match = { path = "^/exact$"; }; },
  { name = "getonly"; match = { methods = ["GET"]; path = "^/getonly/"; }; },
  { name = "project"; match = { path = "^/a/([^/]+)/"; }; project = 1; },
  { name = "default"; }
);
"""


@pytest.fixture(scope="module")
def env(module_harness):
    old = module_harness.upstream("old")
    proxy = module_harness.proxy(old, routes=ROUTES, extra="limits = { max_body = 5000; };\n")
    return proxy, old


def log_entry(proxy, tag):
    def find():
        if not proxy.access_log.exists():
            return None
        for line in proxy.access_log.read_text().splitlines():
            e = json.loads(line)
            if tag in (e.get("path") or ""):
                return e
        return None
    return wait_for(find, 5, what="access log line for %s" % tag)


@pytest.mark.parametrize("method,path,route,project", [
    ("POST", "/a/alpha/receiver/secure/", "submit", "alpha"),
    ("HEAD", "/a/alpha/receiver/", "submit", "alpha"),
    ("GET", "/a/alpha/receiver/", "project", "alpha"),       # submit is POST/HEAD only
    ("GET", "/a/beta-2/phone/heartbeat/x/", "project", "beta-2"),
    ("GET", "/v1/projects/7/forms/f/submissions", "odk", "7"),
    ("GET", "/v1/projects/seven/", "default", None),
    ("GET", "/exact?with=query", "exact", None),             # the regex sees the path only
    ("GET", "/exact/more", "default", None),
    ("GET", "/getonly/x", "getonly", None),
    ("POST", "/getonly/x", "default", None),
])
def test_route_and_project(env, method, path, route, project):
    proxy, old = env
    tag = uuid.uuid4().hex
    sep = "&" if "?" in path else "?"
    r = request(proxy.port, method, path + sep + "tag=" + tag, body=b"" if method == "POST" else None)
    assert r.header("X-Upstream") == "old", r
    e = log_entry(proxy, tag)
    assert e["route"] == route, e
    assert (e["project"] or None) == project, e


def test_route_max_body_content_length_413(env):
    proxy, old = env
    tag = uuid.uuid4().hex
    r = request(proxy.port, "POST", "/small/x?tag=" + tag, body=b"b" * 1025)
    assert r.status == 413, r
    assert r.header("Date") and r.header("X-Cutover-Mode") == "old"
    assert not old.find(tag), "an over-limit body reached the upstream"
    ok = request(proxy.port, "POST", "/small/x?ok=" + tag, body=b"b" * 1024)
    assert ok.status == 404 and ok.header("X-Upstream") == "old", ok     # at the limit: forwarded
    assert old.find("ok=" + tag)[0]["body_len"] == 1024


def test_route_max_body_chunked(env):
    """A chunked body that grows past max_body: 413 (or the connection cut),
    and the upstream never sees it complete."""
    proxy, old = env
    tag = uuid.uuid4().hex
    with Client(proxy.port, timeout=5) as c:
        c.send(build_request("POST", "/small/chunked?tag=" + tag, [("Transfer-Encoding", "chunked")]))
        try:
            for _ in range(4):
                c.send(b"200\r\n" + b"c" * 512 + b"\r\n")
            c.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            r = c.read_response()
            assert r.status == 413, r
        except (ConnectionClosed, ConnectionResetError):
            pass
    assert not [x for x in old.find(tag) if x["complete"]], old.find(tag)


def test_limits_max_body_default(env):
    proxy, old = env
    tag = uuid.uuid4().hex
    r = request(proxy.port, "POST", "/sink?tag=" + tag, body=b"d" * 5001)
    assert r.status == 413, r
    assert not old.find(tag)
    r = request(proxy.port, "POST", "/sink?ok=" + tag, body=b"d" * 5000)
    assert r.status == 200 and r.json()["received"] == 5000


def test_client_abort_mid_upload_never_complete_upstream(env):
    """The client sends half of a Content-Length body and disconnects: the
    upstream must not receive a complete request (a truncated submission
    must never look whole)."""
    proxy, old = env
    for framing in ("length", "chunked"):
        tag = uuid.uuid4().hex
        s = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        if framing == "length":
            s.sendall(build_request("POST", "/a/alpha/receiver/?tag=" + tag,
                                    [("Content-Length", "4000")]) + b"x" * 2000)
        else:
            s.sendall(build_request("POST", "/a/alpha/receiver/?tag=" + tag,
                                    [("Transfer-Encoding", "chunked")]) + b"7d0\r\n" + b"x" * 1000)
        s.close()
        # a sentinel through the same proxy, then inspect the upstream
        sentinel = "/sentinel-" + uuid.uuid4().hex
        request(proxy.port, "GET", sentinel)
        old.wait_record(sentinel)
        try:
            recs = wait_for(lambda: old.find(tag), 2, what="the aborted request at the upstream")
        except AssertionError:
            recs = []                       # never forwarded at all: fine
        assert not [x for x in recs if x["complete"]], (framing, recs)


def test_expect_100_continue_over_max_body_gets_413_without_100(env):
    """A client announcing an over-limit body with Expect: 100-continue gets the
    413 right away: no 100 Continue, no need to send the body."""
    proxy, old = env
    tag = uuid.uuid4().hex
    with Client(proxy.port, timeout=5) as c:
        c.send(build_request("POST", "/small/expect?tag=" + tag,
                             [("Expect", "100-continue"), ("Content-Length", "5000")]))
        r = c.read_response()
        assert not r.informational, "100 Continue sent for a body that will be refused"
        assert r.status == 413, r
    assert not old.find(tag)
