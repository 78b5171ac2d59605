"""The spool's intake (issue 14, second slice): a submission on a spooling
route in a scope in maintenance is written to the spool and acknowledged
(OpenRosa 201) only once durable; HEAD, Digest, spool_auth and the limits
get the contract's answers; status shows what the spool holds, across a
restart and a kill -9. Records are read back from the segment files by the
documented record format (README, "The spool on disk"), checksums included."""

import email.utils
import os
import stat
import signal
import socket
import struct
import time

import pytest

from cutover_testlib import (Client, Cutover, build_request, multipart_submission, proxy_admin,
                             request, restart_proxy, run_cli, wait_for)
from spool_testlib import BASIC, chunked, read_records

ACK_NATURE = b'nature="submit_success"'
HOP_BY_HOP = ("connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade",
              "proxy-connection", "proxy-authorization")


def start(harness, old, new, spool=None, routes=None):
    """cutover with the contract's shape; SPOOL replaces the inside of the
    spool group (dir stays in the test's directory)."""
    port, text = harness.config(old, new, routes=routes)
    if spool is not None:
        d = harness.dir / "spool"
        text = text.replace('spool = { dir = "%s"; };' % d,
                            'spool = { dir = "%s"; %s };' % (d, spool))
        assert spool in text
    c = Cutover(harness.dir, text, wait_ready=False, port=port)
    harness.proxies.append(c)
    c.wait_ready()
    return c


@pytest.fixture
def env(harness):
    old = harness.upstream("old")
    new = harness.upstream("new")
    return harness, old, new


def header_lines(head):
    lines = head.split(b"\r\n")
    assert lines[-2:] == [b"", b""], head       # ends with the blank line
    return lines[0], lines[1:-2]


def assert_ack(r):
    assert r.status == 201, r
    assert r.header("X-OpenRosa-Version") == "1.0", r
    assert r.header("X-Cutover-Mode") == "maintenance", r
    when = email.utils.parsedate_to_datetime(r.header("Date"))
    assert abs(when.timestamp() - time.time()) < 60
    assert ACK_NATURE in r.body and b"<OpenRosaResponse" in r.body, r.body
    assert r.header("X-Upstream") is None, r


def assert_refused(r):
    assert r.status == 503, r
    v = r.header("Retry-After")
    assert v is not None and v.isdigit(), r
    return int(v)


def submit_chunked(port, path, headers, body):
    with Client(port) as c:
        c.send(build_request("POST", path, headers + [("Transfer-Encoding", "chunked")], None)
               + chunked(body))
        return c.read_response("POST")


def spool_status(admin, project=None):
    st = admin.status()
    return st["spool"] if project is None else st["projects"][project]["spool"]


def nothing_forwarded(*upstreams):
    for u in upstreams:
        assert not u.find("/receiver/"), u.find("/receiver/")


def test_submissions_are_acknowledged_after_commit_and_survive_restart_and_kill(env):
    harness, old, new = env
    proxy = start(harness, old, new)
    admin = proxy_admin(proxy)
    assert admin.maintenance(True, project="alpha").status == 200
    sent = []                                   # (instance, body bytes)
    for i in range(20):
        ctype, form = multipart_submission("uuid:intake-%02d" % i,
                                           extra=(b"x" * (10 << 20)) if i == 19 else b"")
        headers = [("Content-Type", ctype), ("Authorization", BASIC),
                   ("X-OpenRosa-Version", "1.0"), ("Date", "Fri, 04 Dec 2026 15:00:00 GMT")]
        path = "/a/alpha/receiver/?n=%d" % i
        if i % 3 == 1:
            r = submit_chunked(proxy.port, path, headers, form)
        elif i == 19:
            # streamed in pieces: never whole in the proxy's memory at once
            with Client(proxy.port, timeout=30) as c:
                data = build_request("POST", path, headers, form)
                for k in range(0, len(data), 1 << 20):
                    c.send(data[k:k + (1 << 20)])
                r = c.read_response("POST")
        else:
            r = request(proxy.port, "POST", path, headers, form)
        assert_ack(r)
        sent.append(form)
    nothing_forwarded(old, new)
    total = sum(len(f) for f in sent)
    sp = spool_status(admin, "alpha")
    assert sp["records"] == 20 and sp["dead_letters"] == 0, sp
    assert sp["bytes"] > total, sp             # bodies plus heads and record headers
    assert sp["oldest_age"] >= 0
    whole = dict(spool_status(admin))
    assert whole.pop("quarantined") == {"files": 0, "bytes": 0}
    assert whole == sp
    recs = read_records(harness.dir / "spool")
    assert sorted(r["body"] for r in recs) == sorted(sent)
    assert {r["project"] for r in recs} == {"alpha"} and {r["route"] for r in recs} == {"submit"}
    text = run_cli(["status", "--admin", admin_addr(proxy)])
    assert text.returncode == 0, text.stderr
    assert "spool: 20 records" in text.stdout, text.stdout
    assert "20/%d/0" % sp["bytes"] in text.stdout, text.stdout

    proxy = restart_proxy(harness, proxy)      # SIGTERM: exit 0, then start again
    admin = proxy_admin(proxy)
    again = spool_status(admin, "alpha")
    assert (again["records"], again["bytes"]) == (20, sp["bytes"]), again

    # kill -9 right after more acknowledgements: every acknowledged one counts
    ctype, form = multipart_submission("uuid:intake-after-restart")
    assert_ack(request(proxy.port, "POST", "/a/alpha/receiver/?n=20", [("Content-Type", ctype)], form))
    os.kill(proxy.pid, signal.SIGKILL)
    proxy.wait(10)
    proxy.checked = True
    proxy = Cutover(harness.dir, proxy.config_path.read_text(), wait_ready=False, port=proxy.port)
    harness.proxies.append(proxy)
    proxy.wait_ready()
    after = spool_status(proxy_admin(proxy), "alpha")
    assert after["records"] == 21 and after["bytes"] > sp["bytes"], after


def admin_addr(proxy):
    return "unix:%s/admin.sock" % proxy.workdir


def test_record_head_is_byte_identical_without_hop_by_hop(env):
    harness, old, new = env
    proxy = start(harness, old, new)
    admin = proxy_admin(proxy)
    assert admin.maintenance(True).status == 200
    ctype, form = multipart_submission("uuid:bytes-1")
    # exact bytes with odd spacing, case and hop-by-hop headers around them
    head = ("POST /a/beta/receiver/?x=%C3%A9 HTTP/1.1\r\n"
            "Host: cutover.test\r\n"
            "Authorization:  " + BASIC + "\r\n"
            "Connection: keep-alive, X-Hop\r\n"
            "X-Hop: drop me\r\n"
            "Keep-Alive: timeout=5\r\n"
            "Proxy-Authorization: Basic cHJveHk6cHc=\r\n"
            "TE: trailers\r\n"
            "X-Cutover-Peer: 10.9.9.9 https\r\n"
            "content-type: " + ctype + "\r\n"
            "X-OpenRosa-Version: 1.0\r\n"
            "X-OpenRosa-Instance-Id: uuid:bytes-1\r\n"
            "Date: Fri, 04 Dec 2026 15:00:00 GMT\r\n"
            "User-Agent: org.odk.collect.android/v2024.2.3 Dalvik/2.1.0\r\n"
            "Transfer-Encoding: chunked\r\n"
            "\r\n").encode()
    with Client(proxy.port) as c:
        c.send(head + chunked(form, 37))
        r = c.read_response("POST")
        assert_ack(r)
        # the connection goes on after an acknowledgement
        ctype2, form2 = multipart_submission("uuid:bytes-2")
        assert_ack(c.request("POST", "/a/beta/receiver/", [("Content-Type", ctype2)], form2))
    recs = read_records(harness.dir / "spool")
    assert len(recs) == 2, recs
    rec = next(r for r in recs if r["body"] == form)      # the chunked body, decoded
    line, fields = header_lines(rec["head"])
    assert line == b"POST /a/beta/receiver/?x=%C3%A9 HTTP/1.1"
    assert b"Authorization:  " + BASIC.encode() in fields
    assert b"content-type: " + ctype.encode() in fields
    assert b"X-OpenRosa-Version: 1.0" in fields
    assert b"X-OpenRosa-Instance-Id: uuid:bytes-1" in fields
    assert b"Date: Fri, 04 Dec 2026 15:00:00 GMT" in fields
    assert b"User-Agent: org.odk.collect.android/v2024.2.3 Dalvik/2.1.0" in fields
    names = [f.split(b":", 1)[0].decode().lower() for f in fields]
    for h in HOP_BY_HOP + ("x-hop",):
        assert h not in names, (h, rec["head"])
    # nothing else added or dropped: the kept lines in the order sent, then
    # the device's address for the replay's X-Forwarded-* (a device's own
    # X-Cutover-Peer line is dropped: it cannot choose its address)
    dropped = HOP_BY_HOP + ("x-hop", "x-cutover-peer")
    kept = [l for l in head.split(b"\r\n")[1:-2]
            if l.split(b":", 1)[0].decode().lower() not in dropped]
    assert fields == kept + [b"X-Cutover-Peer: 127.0.0.1 http"]
    assert spool_status(admin, "beta")["records"] == 2
    nothing_forwarded(old, new)


def test_probe_digest_and_spool_auth(env):
    harness, old, new = env
    routes = """\
routes = (
  { name = "submit";  match = { methods = ["POST", "HEAD"]; path = "^/a/([^/]+)/receiver/"; }; project = 1; spool = true; },
  { name = "strict";  match = { methods = ["POST", "HEAD"]; path = "^/s/([^/]+)/receiver/"; }; project = 1; spool = true; spool_auth = "required"; },
  { name = "anymethod"; match = { path = "^/m/([^/]+)/"; }; project = 1; spool = true; },
  { name = "default"; }
);
"""
    proxy = start(harness, old, new, spool='max_record_bytes = "5M";', routes=routes)
    admin = proxy_admin(proxy)
    assert admin.maintenance(True).status == 200
    r = request(proxy.port, "HEAD", "/a/alpha/receiver/")
    assert r.status == 204, r
    assert r.header("X-OpenRosa-Accept-Content-Length") == str(5 << 20), r

    ctype, form = multipart_submission("uuid:digest")
    digest = ('Digest username="device", realm="old", nonce="abc", uri="/a/alpha/receiver/", '
              'response="0123456789abcdef0123456789abcdef"')
    assert_refused(request(proxy.port, "POST", "/a/alpha/receiver/",
                           [("Content-Type", ctype), ("Authorization", digest)], form))
    # spool_auth = "required": no credentials, no spooling
    assert_refused(request(proxy.port, "POST", "/s/alpha/receiver/", [("Content-Type", ctype)], form))
    # other methods on a spooling route: the maintenance answer
    assert_refused(request(proxy.port, "PUT", "/m/alpha/receiver/", [("Content-Type", ctype)], form))
    assert_refused(request(proxy.port, "GET", "/m/alpha/receiver/"))
    assert spool_status(admin)["records"] == 0
    assert not list((harness.dir / "spool").glob("seg-*.spool")) or not read_records(harness.dir / "spool")
    # with credentials the strict route spools
    assert_ack(request(proxy.port, "POST", "/s/alpha/receiver/",
                       [("Content-Type", ctype), ("Authorization", BASIC)], form))
    assert spool_status(admin, "alpha")["records"] == 1
    nothing_forwarded(old, new)


def test_limits_refuse_with_503_and_store_nothing(env):
    harness, old, new = env
    proxy = start(harness, old, new, spool='max_bytes = "3M"; max_record_bytes = "1M";')
    admin = proxy_admin(proxy)
    assert admin.maintenance(True).status == 200
    ctype, big = multipart_submission("uuid:big", extra=b"y" * (1 << 20))
    # known up front from Content-Length
    r = request(proxy.port, "POST", "/a/alpha/receiver/?big=cl", [("Content-Type", ctype)], big)
    assert assert_refused(r) == 120, r
    # found while streaming a chunked body
    r = submit_chunked(proxy.port, "/a/alpha/receiver/?big=chunked", [("Content-Type", ctype)], big)
    assert_refused(r)
    assert spool_status(admin)["records"] == 0, spool_status(admin)
    assert read_records(harness.dir / "spool") == []
    # max_bytes: fill it with records just under max_record_bytes, then 503
    ctype, form = multipart_submission("uuid:fill", extra=b"z" * (900 << 10))
    statuses = []
    for i in range(5):
        r = request(proxy.port, "POST", "/a/alpha/receiver/?fill=%d" % i, [("Content-Type", ctype)], form)
        statuses.append(r.status)
        if r.status != 201:
            assert_refused(r)
    assert statuses == [201, 201, 201, 503, 503], statuses
    assert spool_status(admin)["records"] == 3
    assert len(read_records(harness.dir / "spool")) == 3
    nothing_forwarded(old, new)


def test_device_leaving_mid_body_leaves_nothing(env):
    harness, old, new = env
    proxy = start(harness, old, new)
    admin = proxy_admin(proxy)
    assert admin.maintenance(True).status == 200
    ctype, form = multipart_submission("uuid:gone", extra=b"g" * (600 << 10))
    data = build_request("POST", "/a/alpha/receiver/?gone=1", [("Content-Type", ctype)], form)
    for cut in (len(data) // 3, len(data) - 10):
        s = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        s.sendall(data[:cut])
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()                                # a reset, mid-body
    # and some that leave right after their last byte, while their record
    # may be in the group commit: stored or not (never acknowledged, the
    # device resends; servers deduplicate), nothing leaks (ASan at
    # teardown), status agrees with the disk and the proxy goes on
    small = build_request("POST", "/a/alpha/receiver/?late=1", [("Content-Type", ctype)],
                          multipart_submission("uuid:late")[1])
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        s.sendall(small)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    # and one that half-closes mid-body: no 2xx
    with Client(proxy.port) as c:
        c.send(data[:len(data) // 2])
        c.sock.shutdown(socket.SHUT_WR)
        r = c.read_response("POST")
        assert r.status == 400, r
    # the proxy is still serving, nothing of them is stored
    ctype2, form2 = multipart_submission("uuid:after")
    assert_ack(request(proxy.port, "POST", "/a/alpha/receiver/?after=1", [("Content-Type", ctype2)], form2))
    recs = read_records(harness.dir / "spool")
    assert [r["body"] for r in recs if b"late=1" not in r["head"]] == [form2]
    assert not [r for r in recs if b"gone=1" in r["head"]]
    assert spool_status(admin)["records"] == len(recs)


def test_access_log_holds_201_and_no_credential(env):
    harness, old, new = env
    proxy = start(harness, old, new)
    admin = proxy_admin(proxy)
    assert admin.maintenance(True).status == 200
    ctype, form = multipart_submission("uuid:log-1")
    assert_ack(request(proxy.port, "POST", "/a/alpha/receiver/?log=1",
                       [("Content-Type", ctype), ("Authorization", BASIC)], form))
    def line():
        for l in proxy.access_log.read_text().splitlines():
            if "log=1" in l:
                return l
        return None
    l = wait_for(line, 5, what="the access log line")
    assert '"status":201' in l.replace(" ", ""), l
    secret = BASIC.split()[1]
    assert secret not in proxy.access_log.read_text()
    assert secret not in proxy.stderr()


def test_start_refused_when_the_store_cannot_open(env):
    harness, old, new = env
    d = harness.dir / "spool"
    d.write_text("a file where the spool directory should be\n")
    port, text = harness.config(old, new)
    rc, err = harness.proxy_start_fails(text)
    assert rc == 1, (rc, err)
    assert "spool" in err and str(d) in err, err


def test_spool_directory_open_to_others_is_closed(env):
    """`mkdir -p` makes 0755; records hold credentials: cutover sets 0700."""
    harness, old, new = env
    d = harness.dir / "spool"
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    proxy = start(harness, old, new)
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert "set to 0700" in proxy.stderr(), proxy.stderr()


def test_start_reports_quarantined_damage(env):
    harness, old, new = env
    proxy = start(harness, old, new)
    admin = proxy_admin(proxy)
    assert admin.maintenance(True, project="alpha").status == 200
    forms = []
    for i in range(3):
        ctype, form = multipart_submission("uuid:damage-%d" % i)
        assert_ack(request(proxy.port, "POST", "/a/alpha/receiver/", [("Content-Type", ctype)], form))
        forms.append(form)
    assert not proxy.stop_and_check()
    seg = sorted((harness.dir / "spool").glob("seg-*.spool"))[0]
    data = bytearray(seg.read_bytes())
    second = 64 + len("alpha") + len("submit")
    first_len = len(read_records(harness.dir / "spool")[0]["head"]) + second + len(forms[0])
    data[first_len + 100] ^= 0xFF                # a byte of the second record rots
    seg.write_bytes(bytes(data))
    proxy = Cutover(harness.dir, proxy.config_path.read_text(), wait_ready=False, port=proxy.port)
    harness.proxies.append(proxy)
    proxy.wait_ready()
    err = proxy.stderr()
    assert seg.name in err and "offset %d" % first_len in err and "quarantine" in err, err
    assert spool_status(proxy_admin(proxy), "alpha")["records"] == 2


def test_sigterm_mid_upload_acknowledges_only_what_is_stored(env):
    harness, old, new = env
    proxy = start(harness, old, new)
    admin = proxy_admin(proxy)
    assert admin.maintenance(True).status == 200
    ctype, form = multipart_submission("uuid:term", extra=b"t" * (300 << 10))
    head = build_request("POST", "/a/alpha/receiver/?term=1",
                         [("Content-Type", ctype), ("Content-Length", str(len(form))),
                          ("Expect", "100-continue")])

    def streaming():
        # its 100 Continue says the intake has it: a readiness check
        c = Client(proxy.port, timeout=20)
        c.send(head)
        assert c.read_until(b"\r\n\r\n").startswith(b"HTTP/1.1 100 Continue")
        c.send(form[:len(form) // 2])
        return c
    finishing, leaving = streaming(), streaming()
    os.kill(proxy.pid, signal.SIGTERM)
    finishing.send(form[len(form) // 2:])           # this one ends its body: stored, then 201
    r = finishing.read_response("POST")
    assert_ack(r)
    finishing.close()
    leaving.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    leaving.close()                                 # this one never ends: aborted, not stored
    assert proxy.wait(15) == 0, proxy.stderr()
    proxy.checked = True
    recs = read_records(harness.dir / "spool")
    assert [r["body"] for r in recs] == [form]
    proxy = Cutover(harness.dir, proxy.config_path.read_text(), wait_ready=False, port=proxy.port)
    harness.proxies.append(proxy)
    proxy.wait_ready()
    assert spool_status(proxy_admin(proxy))["records"] == 1


def test_body_arriving_at_once_is_not_left_waiting(env):
    # A body larger than one read (limits.buffer_bytes, 64K) but sent in one
    # go: all of it must be read and stored, not wait for body_timeout.
    harness, old, new = env
    port, text = harness.config(old, new, extra="limits = { body_timeout = 5; };\n")
    proxy = Cutover(harness.dir, text, wait_ready=False, port=port)
    harness.proxies.append(proxy)
    proxy.wait_ready()
    assert proxy_admin(proxy).maintenance(True).status == 200
    for size in (70 << 10, 100 << 10, 127 << 10):
        ctype, form = multipart_submission("uuid:once-%d" % size, extra=b"o" * size)
        with Client(proxy.port, timeout=10) as c:
            t0 = time.monotonic()
            c.send(build_request("POST", "/a/alpha/receiver/?once=%d" % size,
                                 [("Content-Type", ctype)], form))
            r = c.read_response("POST")
            took = time.monotonic() - t0
        assert_ack(r)
        assert took < 2.5, "a %d-byte body took %.1fs (body_timeout 5s)" % (len(form), took)
