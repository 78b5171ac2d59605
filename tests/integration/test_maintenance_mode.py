"""Maintenance mode: nothing is forwarded; devices get answers their apps
understand (503 + Retry-After with a body chosen by Accept, the OpenRosa
"restore pending" 202 on routes that ask for it, 204 to ODK Collect's HEAD
probe), every one with Date and X-Cutover-Mode; `off` returns to the mode
before it."""

import email.utils
import json
import time

import pytest

from cutover_testlib import (HEALTH_PATH, AsyncCall, Client, build_request, get,
                             multipart_submission, persisted_state, proxy_admin, request,
                             restart_proxy, wait_for)

RESTORE_PENDING_ROUTES = """\
routes = (
  { name = "submit";  match = { methods = ["POST", "HEAD"]; path = "^/a/([^/]+)/receiver/"; }; project = 1; spool = true; },
  { name = "restore"; match = { path = "^/a/([^/]+)/phone/restore/"; }; project = 1; maintenance = "restore-pending"; },
  { name = "project"; match = { path = "^/a/([^/]+)/"; }; project = 1; },
  { name = "default"; }
);
"""


@pytest.fixture
def env(harness):
    old = harness.upstream("old")
    new = harness.upstream("new")
    proxy = harness.proxy(old, new)
    return old, new, proxy, proxy_admin(proxy)


def assert_self_made(r, mode="maintenance"):
    """Date (a valid HTTP date, close to now) and X-Cutover-Mode."""
    date = r.header("Date")
    assert date, r
    when = email.utils.parsedate_to_datetime(date)
    assert abs(when.timestamp() - time.time()) < 60, date
    assert r.header("X-Cutover-Mode") == mode, r
    assert r.header("X-Upstream") is None, r


def retry_after(r):
    v = r.header("Retry-After")
    assert v is not None and v.isdigit(), "Retry-After %r is not an integer: %r" % (v, r)
    return int(v)


def nothing_reached(upstreams, *parts):
    for u in upstreams:
        for p in parts:
            assert not u.find(p), "%s reached upstream %s: %r" % (p, u.upstream_name, u.find(p))


def test_maintenance_answers_and_off_returns_to_old(env):
    old, new, proxy, admin = env
    a = admin.maintenance(True, reason="dump window")
    assert a.status == 200, a
    assert a["ok"] is True and a["to"] == "maintenance" and a["from"] == "old", a
    assert a["drained"] is True
    st = admin.status()
    assert st["mode"] == "maintenance" and st["reason"] == "dump window", st

    r = get(proxy.port, "/a/alpha/phone/restore/?m=plain")
    assert r.status == 503, r
    assert_self_made(r)
    assert retry_after(r) == 120                       # maintenance.retry_after default
    assert r.header("Content-Type", "").startswith("text/plain"), r

    r = get(proxy.port, "/a/alpha/phone/restore/?m=json", headers=[("Accept", "application/json")])
    assert r.status == 503, r
    assert_self_made(r)
    assert r.header("Content-Type", "").startswith("application/json"), r
    body = r.json()
    assert body["retry_after"] == retry_after(r), body

    r = get(proxy.port, "/a/alpha/phone/restore/?m=html",
            headers=[("Accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8")])
    assert r.status == 503, r
    assert_self_made(r)
    assert r.header("Content-Type", "").startswith("text/html"), r
    assert b"<html" in r.body.lower()

    # a submission goes into the spool, acknowledged once durable
    # (test_spool_intake.py has the rest)
    ctype, form = multipart_submission()
    r = request(proxy.port, "POST", "/a/alpha/receiver/", [("Content-Type", ctype)], form)
    assert r.status == 201, r
    assert_self_made(r)
    assert r.header("X-OpenRosa-Version") == "1.0", r

    # ODK Collect's probe of the submission URL: the spool's record limit
    # (spool.max_record_bytes, 32M by default)
    r = request(proxy.port, "HEAD", "/a/alpha/receiver/")
    assert r.status == 204, r
    assert_self_made(r)
    assert r.header("X-OpenRosa-Accept-Content-Length") == str(32 << 20), r

    # requests without a project follow the global mode too
    r = get(proxy.port, "/echo?m=noproject")
    assert r.status == 503, r
    assert_self_made(r)
    h = get(proxy.port, HEALTH_PATH)
    assert h.status == 200 and h.header("X-Cutover-Mode") == "maintenance", h

    nothing_reached((old, new), "?m=", "/a/alpha/receiver/")

    a = admin.maintenance(False)
    assert a.status == 200, a
    assert a["from"] == "maintenance" and a["to"] == "old", a
    r = get(proxy.port, "/a/alpha/phone/restore/?m=after")
    assert r.status == 200 and r.header("X-Upstream") == "old", r
    assert old.find("?m=after")
    assert admin.status()["mode"] == "old"


def test_maintenance_answers_on_a_keep_alive_connection(env):
    old, new, proxy, admin = env
    assert admin.maintenance(True).status == 200
    with Client(proxy.port) as c:
        for i in range(3):
            r = c.request("GET", "/a/alpha/phone/heartbeat/x?k=%d" % i)
            assert r.status == 503, r
            assert_self_made(r)
    nothing_reached((old, new), "?k=")


def test_maintenance_on_waits_for_the_scope_to_drain(env):
    old, new, proxy, admin = env
    # larger than limits.body_buffer, so that it streams (a smaller body is
    # buffered before admission and is not in flight yet)
    ctype, form = multipart_submission("uuid:drain-1", extra=b" " * (200 * 1024))
    head = build_request("POST", "/a/alpha/receiver/?drain=1", [("Content-Type", ctype)], form)
    up = Client(proxy.port, timeout=20)
    up.send(head[:-20])                                # an upload still streaming to old
    wait_for(lambda: admin.status()["projects"].get("alpha", {}).get("in_flight", {})
             .get("old") == 1, 5, what="projects.alpha.in_flight.old to be 1")
    call = AsyncCall(admin.maintenance, True, project="alpha")
    assert not call.wait(0.5), "maintenance on answered while alpha had an upload in flight"
    # already in force for new requests of the scope
    assert get(proxy.port, "/a/alpha/phone/restore/?drain=2").status == 503
    up.send(head[-20:])
    r = up.read_response()
    up.close()
    assert r.status == 201 and r.header("X-Upstream") == "old", r
    a = call.result(10)
    assert a.status == 200 and a["drained"] is True and a["upstream"] == "old", a
    assert old.find("?drain=1")[0]["complete"] is True
    nothing_reached((old, new), "?drain=2")


def test_maintenance_until_counts_down(env):
    old, new, proxy, admin = env
    a = admin.maintenance(True, until="+120s")
    assert a.status == 200, a
    assert admin.status()["until"], admin.status()
    r = get(proxy.port, "/a/alpha/phone/restore/", headers=[("Accept", "application/json")])
    assert r.status == 503, r
    n = retry_after(r)
    assert 100 <= n <= 121, n
    assert r.json()["until"], r.json()
    a = admin.maintenance(True, until="+30s")       # a new window replaces the old one
    assert a.status == 200, a
    n = retry_after(get(proxy.port, "/a/alpha/phone/restore/"))
    assert 10 <= n <= 31, n
    assert admin.maintenance(True, until="whenever").status == 400


def test_maintenance_of_one_project(env):
    old, new, proxy, admin = env
    a = admin.maintenance(True, project="alpha")
    assert a.status == 200 and a["scope"] == "alpha", a
    r = get(proxy.port, "/a/alpha/phone/restore/?p=alpha")
    assert r.status == 503, r
    assert_self_made(r)
    r = get(proxy.port, "/a/beta/phone/restore/?p=beta")
    assert r.status == 200 and r.header("X-Upstream") == "old", r
    nothing_reached((old, new), "?p=alpha")
    st = admin.status()
    assert st["mode"] == "old"
    assert st["projects"]["alpha"]["mode"] == "maintenance" and st["projects"]["alpha"]["own_mode"]
    assert admin.maintenance(False, project="alpha").status == 200
    r = get(proxy.port, "/a/alpha/phone/restore/?p=back")
    assert r.status == 200 and r.header("X-Upstream") == "old", r


def test_maintenance_off_returns_to_the_mode_before(env):
    old, new, proxy, admin = env
    assert admin.switch("new").status == 200
    a = admin.maintenance(True)
    assert a.status == 200 and a["from"] == "new", a
    assert get(proxy.port, "/echo?during=1").status == 503
    a = admin.maintenance(False)
    assert a.status == 200 and a["to"] == "new", a
    r = get(proxy.port, "/echo?after=1")
    assert r.header("X-Upstream") == "new", r
    nothing_reached((old, new), "?during=1")


def test_maintenance_off_when_not_in_maintenance_is_refused(env):
    _, _, proxy, admin = env
    a = admin.maintenance(False)
    assert a.status == 409 and a["ok"] is False and a["error"], a
    assert admin.status()["mode"] == "old"


def test_restore_pending_route(harness):
    old = harness.upstream("old")
    new = harness.upstream("new")
    proxy = harness.proxy(old, new, routes=RESTORE_PENDING_ROUTES)
    admin = proxy_admin(proxy)
    assert admin.maintenance(True, until="+300s").status == 200

    r = get(proxy.port, "/a/alpha/phone/restore/?rp=1")
    assert r.status == 202, r
    assert_self_made(r)
    n = retry_after(r)
    assert 280 <= n <= 301, n
    text = r.body.decode()
    assert "<progress" in text and "done=" in text and "total=" in text, text
    assert "OpenRosaResponse" in text

    # a request that carries data never gets the 202
    r = request(proxy.port, "POST", "/a/alpha/phone/restore/?rp=2", body=b"x=1")
    assert r.status == 503, r
    # other routes keep the 503
    r = get(proxy.port, "/a/alpha/phone/heartbeat/x?rp=3")
    assert r.status == 503, r
    nothing_reached((old, new), "?rp=")

    assert admin.maintenance(False).status == 200
    r = get(proxy.port, "/a/alpha/phone/restore/?rp=after")
    assert r.status == 200 and r.header("X-Upstream") == "old", r


def test_maintenance_survives_a_restart(harness):
    old = harness.upstream("old")
    new = harness.upstream("new")
    proxy = harness.proxy(old, new)
    admin = proxy_admin(proxy)
    assert admin.maintenance(True, reason="dump window").status == 200
    state = persisted_state(proxy.state_file)
    assert state["mode"] == "maintenance", state
    proxy = restart_proxy(harness, proxy)
    r = get(proxy.port, "/a/alpha/phone/restore/?restart=1")
    assert r.status == 503, r
    assert_self_made(r)
    nothing_reached((old, new), "?restart=1")
    a = admin.maintenance(False)
    assert a.status == 200 and a["to"] == "old", a
    assert get(proxy.port, "/echo").header("X-Upstream") == "old"
