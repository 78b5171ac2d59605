"""Hold (pgbouncer PAUSE-like): new requests are parked unanswered up to
--max seconds or the cap on parked requests, then proceed under whatever the
mode is by then; past either limit they get the maintenance answer; resume
releases them in arrival order."""

import socket
import time

import pytest

from cutover_testlib import (Client, OrderedUpstream, Pending, build_request, get,
                             multipart_submission, proxy_admin)

PARKED_CAP = "limits = { max_parked = 100; };\n"
PENDING_CHECK = 0.5     # seconds a parked request must stay unanswered


@pytest.fixture
def env(harness):
    old = harness.upstream("old")
    new = harness.upstream("new")
    proxy = harness.proxy(old, new, extra=PARKED_CAP)
    return old, new, proxy, proxy_admin(proxy)


def park(proxy, paths):
    """Sends each request on its own connection, in order, each one checked to
    be still unanswered before the next is sent."""
    out = []
    for p in paths:
        pr = Pending(proxy.port, "GET", p)
        assert pr.still_pending_after(0.2), "%s was answered during the hold: %r" % (
            p, pr.response)
        out.append(pr)
    return out


def test_hold_then_resume_releases_in_arrival_order(harness):
    # old takes one connection at a time: its record order is the order in
    # which cutover forwarded the released requests
    old = OrderedUpstream("old")
    harness.procs.append(old)
    new = harness.upstream("new")
    proxy = harness.proxy(old, new, extra=PARKED_CAP)
    admin = proxy_admin(proxy)
    a = admin.hold(max=10)
    assert a.status == 200 and a["to"] == "hold" and a["from"] == "old", a
    assert admin.status()["mode"] == "hold"
    paths = ["/a/alpha/phone/heartbeat/x?order=%d" % i for i in range(5)]
    parked = park(proxy, paths)
    assert all(p.still_pending_after(PENDING_CHECK / 5) for p in parked)
    assert not old.find("?order="), "a parked request reached old"

    a = admin.resume()
    assert a.status == 200 and a["ok"] is True, a
    for p in parked:
        r = p.result(5)
        assert r.status == 200 and r.header("X-Upstream") == "old", r
    assert old.find("?order=") == paths
    assert not new.find("?order=")
    assert admin.status()["mode"] == "old"
    assert get(proxy.port, "/echo?after=resume").header("X-Upstream") == "old"


def test_parked_submission_with_body_and_keep_alive(env):
    old, new, proxy, admin = env
    assert admin.hold(max=10).status == 200
    ctype, form = multipart_submission("uuid:held-1")
    c = Client(proxy.port, timeout=10)
    c.send(build_request("POST", "/a/alpha/receiver/?held=1", [("Content-Type", ctype)], form))
    c.sock.settimeout(0.3)
    try:
        got = c.sock.recv(1)
    except (socket.timeout, TimeoutError):
        got = None
    assert got is None, "a parked submission was answered: %r" % got
    assert admin.resume().status == 200
    r = c.read_response()
    assert r.status == 201 and r.header("X-Upstream") == "old", r
    rec = old.find("?held=1")
    assert len(rec) == 1 and rec[0]["complete"] and rec[0]["body_len"] == len(form), rec
    # the connection goes on after a released request
    r = c.request("GET", "/a/alpha/phone/heartbeat/x?held=2")
    assert r.status == 200 and r.header("X-Upstream") == "old", r
    c.close()


def test_hold_past_max_gets_the_maintenance_answer(env):
    old, new, proxy, admin = env
    assert admin.hold(max=1).status == 200
    t0 = time.monotonic()
    pr = Pending(proxy.port, "GET", "/a/alpha/phone/restore/?expire=1")
    r = pr.result(4)
    took = time.monotonic() - t0
    assert r.status == 503, r
    assert r.header("Retry-After", "").isdigit(), r
    assert r.header("Date") and r.header("X-Cutover-Mode") == "hold", r
    assert took <= 2.5, took
    assert not old.find("?expire=") and not new.find("?expire=")
    # the hold's time is over: later requests are not parked either
    r = get(proxy.port, "/a/alpha/phone/restore/?expire=2", timeout=3)
    assert r.status == 503, r
    assert admin.resume().status == 200
    assert get(proxy.port, "/echo?expire=3").header("X-Upstream") == "old"


def test_hold_cap_on_parked_requests(harness):
    old = harness.upstream("old")
    new = harness.upstream("new")
    proxy = harness.proxy(old, new, extra="limits = { max_parked = 1; };\n")
    admin = proxy_admin(proxy)
    assert admin.hold(max=10).status == 200
    first = park(proxy, ["/echo?cap=1"])[0]
    r = get(proxy.port, "/echo?cap=2", timeout=3)       # over the cap: answered at once
    assert r.status == 503 and r.header("Retry-After", "").isdigit(), r
    assert first.still_pending_after(0.2)
    assert admin.resume().status == 200
    r = first.result(5)
    assert r.status == 200 and r.header("X-Upstream") == "old", r
    assert not old.find("?cap=2") and not new.find("?cap=2")


def test_hold_one_project(env):
    old, new, proxy, admin = env
    a = admin.hold(project="alpha", max=10)
    assert a.status == 200 and a["scope"] == "alpha", a
    parked = park(proxy, ["/a/alpha/phone/restore/?proj=alpha"])[0]
    r = get(proxy.port, "/a/beta/phone/restore/?proj=beta", timeout=3)
    assert r.status == 200 and r.header("X-Upstream") == "old", r
    assert parked.still_pending_after(0.2)
    assert admin.resume(project="beta").status == 409          # beta is not on hold
    a = admin.resume(project="alpha")
    assert a.status == 200, a
    r = parked.result(5)
    assert r.status == 200 and r.header("X-Upstream") == "old", r


def test_hold_switch_resume_parked_requests_go_to_new(env):
    """The short flip: whatever happens to the hold in between, no parked
    request reaches old and all are answered by new."""
    old, new, proxy, admin = env
    assert admin.hold(max=10).status == 200
    parked = park(proxy, ["/a/alpha/phone/restore/?flip=%d" % i for i in range(3)])
    a = admin.switch("new", reason="flip")
    assert a.status == 200, a
    admin.resume()
    for p in parked:
        r = p.result(5)
        assert r.status == 200 and r.header("X-Upstream") == "new", r
    assert not old.find("?flip=")
    assert len(new.find("?flip=")) == 3
    assert get(proxy.port, "/echo?flip=after").header("X-Upstream") == "new"


def test_hold_is_kept_across_a_switch_until_resume(env):
    old, new, proxy, admin = env
    assert admin.hold(max=10).status == 200
    parked = park(proxy, ["/a/alpha/phone/restore/?keep=%d" % i for i in range(2)])
    assert admin.switch("new").status == 200
    assert parked[0].still_pending_after(PENDING_CHECK), "the switch released the hold"
    a = admin.resume()
    assert a.status == 200, a
    for p in parked:
        r = p.result(5)
        assert r.status == 200 and r.header("X-Upstream") == "new", r
    assert not old.find("?keep=")


def test_hold_parks_with_the_default_config(harness):
    old = harness.upstream("old")
    new = harness.upstream("new")
    proxy = harness.proxy(old, new)
    admin = proxy_admin(proxy)
    assert admin.hold(max=10).status == 200
    pr = Pending(proxy.port, "GET", "/echo?default=1")
    try:
        assert pr.still_pending_after(PENDING_CHECK), "answered at once: %r" % pr.response
    finally:
        admin.resume()
    assert pr.result(5).header("X-Upstream") == "old"


def test_status_counts_parked_requests(env):
    old, new, proxy, admin = env
    assert admin.hold(max=10).status == 200
    parked = park(proxy, ["/echo?count=%d" % i for i in range(2)])
    try:
        assert admin.status()["hold"]["parked"] == 2
    finally:
        admin.resume()
        for p in parked:
            p.result(5)


def test_resume_with_nothing_on_hold_is_refused(env):
    _, _, proxy, admin = env
    a = admin.resume()
    assert a.status == 409 and a["ok"] is False and a["error"], a
    assert admin.hold(max=0).status == 400
    assert admin.hold(max="ten").status == 400
    assert admin.status()["mode"] == "old"
