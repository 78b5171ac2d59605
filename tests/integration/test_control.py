"""The control plane through the admin API: status, per-project switch,
persistence across restarts, preflight and --force, scheduled switches,
drains, admin security and the journal; and the same through the CLI
(`cutover status|switch|...`), skipped while the binary has no CLI."""

import json
import os
import re
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

from cutover_testlib import (CUTOVER_BIN, HEALTH_PATH, Admin, AsyncCall, Client, Deadline,
                             Pending, build_request, free_port, get, multipart_submission,
                             persisted_state, proxy_admin, request, restart_proxy, run_cli,
                             wait_for)

JOURNAL_KEYS = ("time", "who", "action", "scope", "from", "to", "reason", "forced", "outcome")


@pytest.fixture
def env(harness):
    """(old, new, proxy, admin) with the default test config."""
    old = harness.upstream("old")
    new = harness.upstream("new")
    proxy = harness.proxy(old, new)
    return old, new, proxy, proxy_admin(proxy)


def upstream_of(proxy, path, method="GET"):
    r = request(proxy.port, method, path)
    return r.header("X-Upstream"), r


def wait_in_flight(admin, check, what, timeout=5.0):
    """Polls /status until CHECK(status) holds; returns that status."""
    def probe():
        st = admin.status()
        return st if check(st) else None
    return wait_for(probe, timeout, interval=0.02, what=what)


def last(entries, action):
    found = [e for e in entries if e.get("action") == action]
    assert found, "no %r entry in the journal: %r" % (action, entries)
    return found[-1]


# ---------------------------------------------------------------------------
# status


def test_status_initial_then_project_seen_in_traffic(env):
    old, new, proxy, admin = env
    st = admin.status()
    assert st["mode"] == "old", st
    for name in ("old", "new"):
        assert st["upstreams"][name]["in_flight"] == 0, st["upstreams"]
    assert st["upstreams"]["old"]["url"] == old.url
    assert "alpha" not in st["projects"], st["projects"]
    assert isinstance(st["scheduled"], list) and not st["scheduled"]
    for k in ("records", "bytes", "dead_letters", "oldest_age"):
        assert k in st["spool"], st["spool"]

    up, r = upstream_of(proxy, "/a/alpha/phone/heartbeat/app1?seen=1")
    assert (up, r.status) == ("old", 200), r
    st = wait_in_flight(admin, lambda s: "alpha" in s["projects"]
                        and s["projects"]["alpha"]["in_flight"] == {"old": 0, "new": 0},
                        "projects.alpha to appear with nothing in flight")
    alpha = st["projects"]["alpha"]
    assert alpha["mode"] == "old" and alpha["own_mode"] is False, alpha
    assert "beta" not in st["projects"]


# ---------------------------------------------------------------------------
# per-project switch


def test_switch_one_project_to_new(env):
    old, new, proxy, admin = env
    a = admin.switch("new", project="alpha", reason="pilot project")
    assert a.status == 200, a
    assert a["ok"] is True and a["drained"] is True, a
    assert (a["scope"], a["from"], a["to"]) == ("alpha", "old", "new"), a
    assert a["forced"] is False and a["preflight"]["ok"] is True, a

    up, r = upstream_of(proxy, "/a/alpha/phone/restore/?after=switch")
    assert (up, r.status) == ("new", 200), r
    assert new.find("/a/alpha/phone/restore/?after=switch")
    assert not old.find("/a/alpha/phone/restore/?after=switch")
    up, r = upstream_of(proxy, "/a/alpha/receiver/", method="HEAD")
    assert up == "new", r
    up, r = upstream_of(proxy, "/a/beta/phone/restore/?after=switch")
    assert up == "old", r
    assert old.find("/a/beta/phone/restore/?after=switch")
    assert not new.find("/a/beta/")
    up, r = upstream_of(proxy, "/echo?no-project=1")
    assert up == "old", r

    st = admin.status()
    assert st["mode"] == "old"
    assert st["projects"]["alpha"]["mode"] == "new", st["projects"]
    assert st["projects"]["alpha"]["own_mode"] is True
    assert st["projects"]["beta"]["own_mode"] is False
    assert st["projects"]["beta"]["mode"] == "old"

    # and back: rollback is the same operation
    a = admin.switch("old", project="alpha")
    assert a.status == 200 and a["drained"] is True, a
    assert upstream_of(proxy, "/a/alpha/phone/restore/?after=rollback")[0] == "old"


def test_switch_bad_requests(env):
    _, _, proxy, admin = env
    for body in ({"to": "sideways"}, {"to": "maintenance"}, {}, {"to": 1},
                 {"to": "new", "project": "a/b"}, {"to": "new", "force": "yes"}):
        a = admin.post("/switch", body)
        assert a.status == 400, (body, a)
        assert a["ok"] is False and a["error"], a
    assert admin.status()["mode"] == "old"
    assert upstream_of(proxy, "/echo")[0] == "old"


# ---------------------------------------------------------------------------
# persistence


def restart_scenario(harness, reasons):
    """Switch alpha, restart, switch global, restart: the modes survive.
    REASONS: give every change a reason (and the global scope one first)."""
    old = harness.upstream("old")
    new = harness.upstream("new")
    proxy = harness.proxy(old, new)
    admin = proxy_admin(proxy)
    why = (lambda text: {"reason": text}) if reasons else (lambda text: {})
    if reasons:
        assert admin.switch("old", **why("baseline")).status == 200
    assert admin.switch("new", project="alpha", **why("pilot")).status == 200

    proxy = restart_proxy(harness, proxy)
    assert upstream_of(proxy, "/a/alpha/phone/restore/?r=1")[0] == "new"
    assert upstream_of(proxy, "/a/beta/phone/restore/?r=1")[0] == "old"
    assert upstream_of(proxy, "/echo?r=1")[0] == "old"
    st = admin.status()
    assert st["projects"]["alpha"]["own_mode"] is True and st["projects"]["alpha"]["mode"] == "new"

    a = admin.switch("new", **why("global cutover"))
    assert a.status == 200 and a["scope"] == "global", a
    state = persisted_state(proxy.state_file)
    assert state["mode"] == "new", state

    proxy = restart_proxy(harness, proxy)
    for path in ("/a/alpha/phone/restore/?r=2", "/a/beta/phone/restore/?r=2", "/echo?r=2"):
        assert upstream_of(proxy, path)[0] == "new", path
    assert get(proxy.port, HEALTH_PATH).header("X-Cutover-Mode") == "new"
    assert admin.status()["mode"] == "new"
    assert not old.find("?r=2")


def test_restart_keeps_the_modes(harness):
    restart_scenario(harness, reasons=False)


def test_restart_keeps_the_modes_when_every_scope_has_a_reason(harness):
    restart_scenario(harness, reasons=True)


# ---------------------------------------------------------------------------
# preflight and --force


def test_preflight_refuses_when_new_is_down_and_force_overrides(harness):
    old = harness.upstream("old")
    dead = "http://127.0.0.1:%d" % free_port()        # nothing listens there
    proxy = harness.proxy(old, dead)
    admin = proxy_admin(proxy)

    a = admin.switch("new")
    assert a.status == 409, a
    assert a["ok"] is False
    assert "preflight" in a["error"] and "connect" in a["error"], a
    assert upstream_of(proxy, "/echo?after=refused")[0] == "old"
    assert admin.status()["mode"] == "old"
    e = last(admin.journal(), "switch")
    assert e["outcome"].startswith("refused"), e
    assert e["forced"] is False and e["to"] == "new" and e["from"] == "old", e

    a = admin.switch("new", force=True, reason="dump window")
    assert a.status == 200, a
    assert a["ok"] is True and a["forced"] is True, a
    r = get(proxy.port, "/echo?after=forced")
    assert r.status == 502, r                         # new is down: cutover's own 502
    assert r.header("X-Cutover-Mode") == "new", r
    assert not old.find("/echo?after=forced")
    assert admin.status()["mode"] == "new"
    e = last(admin.journal(), "switch")
    assert e["forced"] is True and e["reason"] == "dump window", e
    assert e["to"] == "new" and not e["outcome"].startswith("refused"), e


def test_preflight_health_must_answer_2xx(harness):
    old = harness.upstream("old")
    new = harness.upstream("new")
    proxy = harness.proxy(old, new, new_extra='health = { path = "/no-such-page"; };')
    admin = proxy_admin(proxy)
    a = admin.switch("new")
    assert a.status == 409, a
    assert "preflight" in a["error"] and "404" in a["error"], a
    assert new.find("/no-such-page"), "the health request never reached new"
    assert upstream_of(proxy, "/echo")[0] == "old"


# ---------------------------------------------------------------------------
# scheduled switches


def test_scheduled_switch_fires(env):
    old, new, proxy, admin = env
    t0 = time.monotonic()
    a = admin.switch("new", at="+2s", reason="night window")
    assert a.status == 202, a
    sched = a["scheduled"]
    assert isinstance(sched["id"], int) and sched["at"], a
    st = admin.status()
    assert [s["id"] for s in st["scheduled"]] == [sched["id"]], st["scheduled"]
    assert st["mode"] == "old"
    assert upstream_of(proxy, "/echo?before=1")[0] == "old"

    wait_for(lambda: upstream_of(proxy, "/echo?poll=1")[0] == "new", 6.0,
             interval=0.1, what="the scheduled switch to send traffic to new")
    assert time.monotonic() - t0 >= 0.9, "the scheduled switch ran at once"
    st = admin.status()
    assert st["mode"] == "new" and st["scheduled"] == [], st
    entries = admin.journal()
    run = last(entries, "scheduled-run")
    assert run["status"] == 200, run
    sw = last(entries, "switch")
    assert sw["to"] == "new" and sw["outcome"] == "applied", sw
    assert "scheduler" in sw["who"], sw


def test_scheduled_switch_cancelled_never_fires(env):
    old, new, proxy, admin = env
    a = admin.switch("new", at="+2s")
    assert a.status == 202, a
    sid = a["scheduled"]["id"]
    t0 = time.monotonic()
    c = admin.request("DELETE", "/schedule/%d" % sid)
    assert c.status == 200 and c["ok"] is True, c
    assert admin.status()["scheduled"] == []
    assert admin.request("DELETE", "/schedule/%d" % sid).status == 404
    assert admin.request("DELETE", "/schedule/99999").status == 404
    # past its time (+2 s, run by a 250 ms tick): the mode must not change
    d = Deadline(3.5 - (time.monotonic() - t0))
    while not d.expired():
        assert admin.status()["mode"] == "old"
        time.sleep(0.1)
    assert upstream_of(proxy, "/echo?after=cancel")[0] == "old"
    entries = admin.journal()
    assert last(entries, "cancel")["outcome"] == "cancelled"
    assert not [e for e in entries if e.get("action") == "scheduled-run"], entries


def test_scheduled_switch_bad_time(env):
    _, _, _, admin = env
    for at in ("tomorrow", "+10x", "2026-13-45T99:00:00Z", ""):
        a = admin.switch("new", at=at)
        assert a.status == 400, (at, a)
    assert admin.status()["scheduled"] == []


def test_scheduled_switch_survives_restart(harness):
    old = harness.upstream("old")
    new = harness.upstream("new")
    proxy = harness.proxy(old, new)
    admin = proxy_admin(proxy)
    # a reason on the global scope, so the journal shows why
    assert admin.switch("old", reason="baseline").status == 200
    a = admin.switch("new", project="alpha", at="+3s")
    assert a.status == 202, a
    proxy = restart_proxy(harness, proxy)
    assert [s["id"] for s in admin.status()["scheduled"]] == [a["scheduled"]["id"]]
    wait_for(lambda: upstream_of(proxy, "/a/alpha/phone/restore/?poll=1")[0] == "new", 7.0,
             interval=0.1, what="the persisted scheduled switch to fire after a restart")
    assert upstream_of(proxy, "/a/beta/phone/restore/")[0] == "old"


# ---------------------------------------------------------------------------
# drain


def test_switch_waits_for_the_drain(env):
    old, new, proxy, admin = env
    slow = Pending(proxy.port, "GET", "/slow?delay=2")
    wait_in_flight(admin, lambda s: s["upstreams"]["old"]["in_flight"] == 1,
                   "upstreams.old.in_flight to be 1 during /slow")
    call = AsyncCall(admin.switch, "new")
    # the switch is in force at once: the next request goes to new
    wait_for(lambda: upstream_of(proxy, "/echo?during-drain=1")[0] == "new", 2.0,
             what="new requests to go to new while old drains")
    assert not call.done(), "the switch answered while a request was in flight to old"
    a = call.result(10)
    assert a.status == 200 and a["drained"] is True and a["in_flight"] == 0, a
    assert call.elapsed >= 1.5, call.elapsed
    r = slow.result()
    assert r.status == 200 and r.header("X-Upstream") == "old", r


def test_switch_project_drains_only_its_own_requests(env):
    old, new, proxy, admin = env
    # larger than limits.body_buffer, so that it streams (a smaller body is
    # buffered before admission and is not in flight yet)
    ctype, body = multipart_submission(extra=b" " * (200 * 1024))
    # an upload still streaming to old for alpha: half of its body sent
    up = Client(proxy.port, timeout=20)
    head = build_request("POST", "/a/alpha/receiver/", [("Content-Type", ctype)], body)
    cut = len(head) - len(body) // 2
    up.send(head[:cut])
    st = wait_in_flight(admin, lambda s: s["projects"].get("alpha", {}).get("in_flight", {})
                        .get("old") == 1, "projects.alpha.in_flight.old to be 1")
    assert st["upstreams"]["old"]["in_flight"] == 1, st["upstreams"]
    assert st["projects"]["alpha"]["in_flight"]["new"] == 0

    call = AsyncCall(admin.switch, "new", project="alpha")
    # beta has nothing in flight: its switch answers at once, drained
    b = admin.switch("new", project="beta")
    assert b.status == 200 and b["drained"] is True, b
    assert not call.wait(0.5), "alpha's switch answered while its upload was in flight"
    assert upstream_of(proxy, "/a/alpha/phone/restore/?during=1")[0] == "new"

    up.send(head[cut:])
    r = up.read_response()
    up.close()
    assert r.status == 201 and r.header("X-Upstream") == "old", r
    a = call.result(10)
    assert a.status == 200 and a["drained"] is True and a["in_flight"] == 0, a
    assert a["scope"] == "alpha" and a["upstream"] == "old", a
    assert old.find("/a/alpha/receiver/")[0]["complete"] is True
    wait_in_flight(admin, lambda s: s["upstreams"]["old"]["in_flight"] == 0,
                   "old's in_flight to return to 0")


def test_drain_timeout_reports_what_is_still_in_flight(harness):
    old = harness.upstream("old")
    new = harness.upstream("new")
    proxy = harness.proxy(old, new, extra="limits = { drain_timeout = 0.5; };\n")
    admin = proxy_admin(proxy)
    slow = Pending(proxy.port, "GET", "/slow?delay=3")
    wait_in_flight(admin, lambda s: s["upstreams"]["old"]["in_flight"] == 1,
                   "upstreams.old.in_flight to be 1 during /slow")
    t0 = time.monotonic()
    a = admin.switch("new")
    took = time.monotonic() - t0
    assert a.status == 200, a
    assert a["drained"] is False and a["in_flight"] == 1 and a["upstream"] == "old", a
    assert 0.4 <= took < 2.5, took
    assert admin.status()["mode"] == "new"
    e = last(admin.journal(), "drain")
    assert "1" in e["outcome"] and "old" in e["outcome"], e
    r = slow.result()
    assert r.status == 200 and r.header("X-Upstream") == "old", r


def test_in_flight_per_project_while_a_request_runs(env):
    old, new, proxy, admin = env
    # larger than limits.body_buffer, so that it streams (a smaller body is
    # buffered before admission and is not in flight yet)
    ctype, body = multipart_submission(extra=b" " * (200 * 1024))
    c = Client(proxy.port, timeout=20)
    head = build_request("POST", "/a/alpha/receiver/", [("Content-Type", ctype)], body)
    c.send(head[:len(head) - 10])
    # status reads the per-project counters and the totals one after the
    # other, so wait until both show the upload
    st = wait_in_flight(admin, lambda s: s["upstreams"]["old"]["in_flight"] == 1 and
                        s["projects"].get("alpha", {}).get("in_flight", {}).get("old") == 1,
                        "upstreams.old.in_flight and projects.alpha.in_flight.old to be 1")
    assert st["projects"]["alpha"]["in_flight"] == {"old": 1, "new": 0}, st["projects"]
    assert st["upstreams"]["new"]["in_flight"] == 0
    c.send(head[len(head) - 10:])
    assert c.read_response().status == 201
    c.close()
    st = wait_in_flight(admin, lambda s: s["upstreams"]["old"]["in_flight"] == 0,
                        "upstreams.old.in_flight back to 0")
    assert st["projects"]["alpha"]["in_flight"] == {"old": 0, "new": 0}


# ---------------------------------------------------------------------------
# admission control (max_active per upstream, bounded FIFO, queue timeout)


def test_max_active_queues_excess_requests(harness):
    old = harness.upstream("old")
    new = harness.upstream("new")
    proxy = harness.proxy(old, new, old_extra="max_active = 1; queue = 10; queue_timeout = 5.0;")
    admin = proxy_admin(proxy)
    first = Pending(proxy.port, "GET", "/slow?delay=1.5")
    wait_in_flight(admin, lambda s: s["upstreams"]["old"]["in_flight"] == 1,
                   "the first request to be in flight")
    second = Pending(proxy.port, "GET", "/echo?queued=1")
    assert second.still_pending_after(0.5), "not queued: %r" % second.response
    assert not old.find("/echo?queued=1"), "the queued request reached old early"
    st = admin.status()["upstreams"]["old"]
    assert (st["active"], st["queued"]) == (1, 1), st
    assert st["in_flight"] == 1, st          # waiting in the queue is not in flight
    r1, r2 = first.result(5), second.result(5)
    assert r1.status == 200 and r2.status == 200 and r2.header("X-Upstream") == "old"
    assert second.answered_at >= first.answered_at - 0.05


def test_max_active_full_queue_and_queue_timeout_get_503(harness):
    old = harness.upstream("old")
    new = harness.upstream("new")
    proxy = harness.proxy(old, new, old_extra="max_active = 1; queue = 1; queue_timeout = 0.5;")
    admin = proxy_admin(proxy)
    first = Pending(proxy.port, "GET", "/slow?delay=2")
    wait_in_flight(admin, lambda s: s["upstreams"]["old"]["in_flight"] == 1,
                   "the first request to be in flight")
    queued = Pending(proxy.port, "GET", "/echo?q=queued")
    assert queued.still_pending_after(0.2)
    r = get(proxy.port, "/echo?q=over", timeout=3)          # the queue is full
    assert r.status == 503 and r.header("Retry-After", "").isdigit(), r
    assert r.header("Date") and r.header("X-Cutover-Mode") == "old", r
    r = queued.result(3)                                     # queue_timeout ran out
    assert r.status == 503 and r.header("Retry-After", "").isdigit(), r
    assert queued.answered_at - queued.sent_at < 1.5
    assert not old.find("?q="), "a refused request reached old"
    assert first.result(5).status == 200


# ---------------------------------------------------------------------------
# reload


def test_reload_applies_a_good_config(env):
    old, new, proxy, admin = env
    assert admin.maintenance(True, reason="dump").status == 200
    assert get(proxy.port, "/echo").header("Retry-After") == "120"
    text = proxy.config_path.read_text() + "maintenance = { retry_after = 7; };\n"
    proxy.config_path.write_text(text)
    a = admin.post("/reload")
    assert a.status == 200 and a["ok"] is True, a
    assert get(proxy.port, "/echo").header("Retry-After") == "7"


def test_reload_with_a_broken_config_keeps_the_running_one(env):
    old, new, proxy, admin = env
    good = proxy.config_path.read_text()
    proxy.config_path.write_text(good + "limits = { no_such_key = 1; };\n")
    a = admin.post("/reload")
    assert 400 <= a.status < 500, a
    assert re.search(re.escape(str(proxy.config_path)) + r":\d+", a["error"]), a
    assert upstream_of(proxy, "/echo?after=bad-reload")[0] == "old"
    # SIGHUP: the same refusal, the process keeps serving on the old config
    proxy.signal(signal.SIGHUP)
    assert get(proxy.port, HEALTH_PATH).status == 200
    assert proxy.alive()
    # the control thread handles the signal: wait for its refusal in the log
    wait_for(lambda: "no_such_key" in proxy.stderr(), 5.0, what="the SIGHUP refusal logged")
    assert upstream_of(proxy, "/echo?after=sighup")[0] == "old"


# ---------------------------------------------------------------------------
# admin security and protocol


def test_unix_socket_is_0600(env):
    _, _, proxy, admin = env
    path = admin.address[len("unix:"):]
    st = os.stat(path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)


def test_tcp_admin_needs_the_token(harness):
    old = harness.upstream("old")
    new = harness.upstream("new")
    token = "k3Yq9v2LmX8pR4tZ7wN1cB6dF0gH5jQa"
    assert len(token) == 32
    tf = harness.path("token")
    tf.write_text(token + "\n")
    aport = free_port()
    proxy = harness.proxy(old, new, admin='address = "127.0.0.1:%d"; token_file = "%s";'
                          % (aport, tf))
    admin = Admin("127.0.0.1:%d" % aport)
    a = admin.get("/status")
    assert a.status == 401 and a["ok"] is False, a
    for wrong in ("wrong", token[:-1], token + "x", token[:-1] + "b", token.upper()):
        a = admin.get("/status", token=wrong)
        assert a.status == 401, (wrong, a)
    a = admin.get("/status", headers={"Authorization": "Basic " + token})
    assert a.status == 401, a
    a = admin.post("/switch", {"to": "new"}, token="wrong")
    assert a.status == 401
    assert upstream_of(proxy, "/echo")[0] == "old"

    a = admin.get("/status", token=token)
    assert a.status == 200 and a["mode"] == "old", a
    authed = Admin(admin.address, token=token)
    a = authed.switch("new", project="alpha")
    assert a.status == 200, a
    assert upstream_of(proxy, "/a/alpha/phone/restore/")[0] == "new"
    e = last(authed.journal(), "switch")
    assert "token" in e["who"], e


def test_admin_protocol_errors(env):
    _, _, proxy, admin = env
    a = admin.post("/switch", raw=b'{"to": "new",')
    assert a.status == 400 and a["ok"] is False and "JSON" in a["error"], a
    a = admin.post("/switch", raw=b'["to", "new"]')
    assert a.status == 400 and a["error"], a
    a = admin.get("/no-such-endpoint")
    assert a.status == 404 and a["error"], a
    a = admin.get("/switch")
    assert a.status == 405 and a["error"], a
    a = admin.post("/status")
    assert a.status == 405, a
    # a body too large is refused from its Content-Length, before it is sent
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(admin.address[len("unix:"):])
        s.sendall(b"POST /switch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000000\r\n\r\n{")
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413 "), answer
    assert b"\r\nDate: " in answer, answer
    assert admin.status()["mode"] == "old"
    assert upstream_of(proxy, "/echo")[0] == "old"


# ---------------------------------------------------------------------------
# journal


def test_journal_entries(env):
    old, new, proxy, admin = env
    assert admin.switch("new", project="alpha", reason="pilot").status == 200
    assert admin.switch("old", project="alpha").status == 200
    entries = admin.journal()
    switches = [e for e in entries if e.get("action") == "switch"]
    assert len(switches) == 2, entries
    for e in switches:
        for k in JOURNAL_KEYS:
            assert k in e, (k, e)
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$", e["time"]), e
        assert "uid %d" % os.getuid() in e["who"], e
        assert e["scope"] == "alpha" and e["forced"] is False, e
    assert (switches[0]["from"], switches[0]["to"], switches[0]["reason"]) == ("old", "new", "pilot")
    assert (switches[1]["from"], switches[1]["to"]) == ("new", "old")
    assert switches[1]["reason"] is None
    assert len(admin.journal(1)) == 1
    assert admin.journal(1)[0] == entries[-1]
    # the same entries are in the journal file, one JSON object per line
    lines = [json.loads(l) for l in harness_journal(proxy).read_text().splitlines() if l.strip()]
    assert [l for l in lines if l.get("action") == "switch"] == switches
    # and the last ones in status
    assert admin.status()["journal"][-1] == entries[-1]


def harness_journal(proxy):
    m = re.search(r'journal_file\s*=\s*"([^"]+)"', proxy.config_path.read_text())
    return Path(m.group(1))


# ---------------------------------------------------------------------------
# the CLI (a client of the same API)


def _cli_available():
    try:
        p = subprocess.run([CUTOVER_BIN, "status", "--help"], capture_output=True, timeout=10,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return p.returncode == 0


cli = pytest.mark.skipif(not _cli_available(), reason="no CLI in %s yet" % CUTOVER_BIN)


def cli_on(proxy, *args, timeout=20.0):
    return run_cli(list(args) + ["--admin", proxy_admin(proxy).address], timeout=timeout)


def one_line(text):
    lines = [l for l in text.splitlines() if l.strip()]
    assert len(lines) == 1, "expected one line, got %r" % text
    return lines[0]


@cli
def test_cli_status_table_and_json(env):
    _, _, proxy, admin = env
    get(proxy.port, "/a/alpha/phone/heartbeat/x")
    p = cli_on(proxy, "status")
    assert p.returncode == 0, p
    assert "old" in p.stdout and "alpha" in p.stdout, p.stdout
    p = cli_on(proxy, "status", "--json")
    assert p.returncode == 0, p
    st = json.loads(p.stdout)
    assert st["mode"] == "old" and "alpha" in st["projects"], st


@cli
def test_cli_switch_project(env):
    old, new, proxy, admin = env
    p = cli_on(proxy, "switch", "new", "--project", "alpha", "--reason", "x")
    assert p.returncode == 0, p
    assert "alpha" in p.stdout and "new" in p.stdout, p.stdout
    assert upstream_of(proxy, "/a/alpha/phone/restore/?cli=1")[0] == "new"
    assert upstream_of(proxy, "/a/beta/phone/restore/?cli=1")[0] == "old"
    e = last(admin.journal(), "switch")
    assert e["reason"] == "x" and e["scope"] == "alpha", e


@cli
def test_cli_admin_from_environment(env):
    _, _, proxy, admin = env
    p = subprocess.run([CUTOVER_BIN, "status", "--json"], capture_output=True, text=True,
                       timeout=20, stdin=subprocess.DEVNULL,
                       env=dict(os.environ, CUTOVER_ADMIN=admin.address))
    assert p.returncode == 0, p
    assert json.loads(p.stdout)["mode"] == "old"


@cli
def test_cli_switch_refused_by_preflight(harness):
    old = harness.upstream("old")
    proxy = harness.proxy(old, "http://127.0.0.1:%d" % free_port())
    p = cli_on(proxy, "switch", "new")
    assert p.returncode == 1, p
    assert "preflight" in one_line(p.stderr), p.stderr
    assert upstream_of(proxy, "/echo")[0] == "old"
    p = cli_on(proxy, "switch", "new", "--force", "--reason", "dump window")
    assert p.returncode == 0, p
    assert proxy_admin(proxy).status()["mode"] == "new"


@cli
def test_cli_cannot_reach_the_admin_socket():
    p = run_cli(["status", "--admin", "unix:/nonexistent/admin.sock"])
    assert p.returncode == 1, p
    assert "cannot reach the admin socket" in one_line(p.stderr), p.stderr


@cli
def test_cli_admin_option_before_the_command():
    p = run_cli(["--admin", "unix:/nonexistent/admin.sock", "status"])
    assert p.returncode == 1, p
    assert "cannot reach the admin socket" in one_line(p.stderr), p.stderr


@cli
def test_cli_drain_timeout_exits_3(harness):
    old = harness.upstream("old")
    new = harness.upstream("new")
    proxy = harness.proxy(old, new, extra="limits = { drain_timeout = 0.5; };\n")
    admin = proxy_admin(proxy)
    slow = Pending(proxy.port, "GET", "/slow?delay=3")
    wait_in_flight(admin, lambda s: s["upstreams"]["old"]["in_flight"] == 1,
                   "upstreams.old.in_flight to be 1 during /slow")
    p = cli_on(proxy, "switch", "new")
    assert p.returncode == 3, p
    line = one_line(p.stderr)
    assert "1 request" in line and "old" in line, line
    assert admin.status()["mode"] == "new"
    assert slow.result().status == 200


@cli
def test_cli_maintenance_hold_resume_journal(env):
    old, new, proxy, admin = env
    p = cli_on(proxy, "maintenance", "on", "--until", "+10m", "--reason", "dump")
    assert p.returncode == 0, p
    assert get(proxy.port, "/a/alpha/phone/restore/").status == 503
    p = cli_on(proxy, "maintenance", "off")
    assert p.returncode == 0, p
    assert upstream_of(proxy, "/echo")[0] == "old"
    p = cli_on(proxy, "resume")
    assert p.returncode == 1, p                      # nothing is on hold
    one_line(p.stderr)
    p = cli_on(proxy, "journal", "-n", "5")
    assert p.returncode == 0 and "maintenance" in p.stdout, p
    p = cli_on(proxy, "switch", "new", "--at", "+1h")
    assert p.returncode == 0, p
    sid = admin.status()["scheduled"][0]["id"]
    p = cli_on(proxy, "schedule", "cancel", str(sid))
    assert p.returncode == 0, p
    assert admin.status()["scheduled"] == []


@cli
def test_cli_tcp_admin_with_token_file(harness):
    old = harness.upstream("old")
    new = harness.upstream("new")
    token = "Zp4X0sW9eR2tY7uI1oP3aS5dF8gH6jK0"
    tf = harness.path("token")
    tf.write_text(token + "\n")
    aport = free_port()
    harness.proxy(old, new, admin='address = "127.0.0.1:%d"; token_file = "%s";'
                  % (aport, tf))
    addr = "127.0.0.1:%d" % aport
    p = run_cli(["status", "--admin", addr])
    assert p.returncode == 1 and "401" in one_line(p.stderr), p
    p = run_cli(["status", "--json", "--admin", addr, "--token-file", str(tf)])
    assert p.returncode == 0 and json.loads(p.stdout)["mode"] == "old", p


# The server and the CLI read the same token file the same way: whitespace
# around the token is not part of it, and a long token is not cut short.
@cli
@pytest.mark.parametrize("text", [
    "Zp4X0sW9eR2tY7uI1oP3aS5dF8gH6jK0\t",
    "  Zp4X0sW9eR2tY7uI1oP3aS5dF8gH6jK0\r\n",
    "Zp4X0sW9eR2tY7uI" * 40 + "\n",
], ids=["tab-at-end", "leading-spaces-crlf", "640-bytes"])
def test_cli_and_server_agree_on_the_token_file(harness, text):
    old = harness.upstream("old")
    new = harness.upstream("new")
    tf = harness.path("token")
    tf.write_text(text)
    aport = free_port()
    harness.proxy(old, new, admin='address = "127.0.0.1:%d"; token_file = "%s";'
                  % (aport, tf))
    addr = "127.0.0.1:%d" % aport
    p = run_cli(["status", "--admin", addr, "--token-file", str(tf)])
    assert p.returncode == 0, p
    assert "global mode: old" in p.stdout, p
    assert Admin(addr, token=text.strip()).get("/status").status == 200


def test_reload_keeps_open_connections_and_their_next_request_uses_it(env):
    old, new, proxy, admin = env
    assert admin.maintenance(True, reason="dump").status == 200
    with Client(proxy.port, timeout=5) as c:
        r = c.request("GET", "/echo")
        assert r.header("Retry-After") == "120", r
        proxy.config_path.write_text(proxy.config_path.read_text() +
                                     "maintenance = { retry_after = 9; };\n")
        a = admin.post("/reload")
        assert a.status == 200 and a["ok"] is True, a
        # the same keep-alive connection, not dropped, now on the new config
        r = c.request("GET", "/echo")
        assert r.header("Retry-After") == "9", r
    e = last(admin.journal(), "reload")
    assert e["outcome"] == "applied", e


def test_reload_refuses_a_change_that_needs_a_restart(env, free_port):
    old, new, proxy, admin = env
    text = proxy.config_path.read_text()
    proxy.config_path.write_text(text.replace(
        'address = "127.0.0.1:%d"' % proxy.port, 'address = "127.0.0.1:%d"' % free_port(), 1))
    a = admin.post("/reload")
    assert a.status == 409 and "listen" in a["error"] and "restart" in a["error"], a
    assert get(proxy.port, "/echo").status == 200
