"""The spool's replay (issue 14, third slice): when a scope leaves
maintenance for old or new, its spooled submissions go to that upstream
once each, in acceptance order per project, byte-identical; new
submissions join a spool that is not empty; outcomes (retry with backoff,
Retry-After, dead letters, max_attempts), a restart resumes, in_flight
counts a replay; GET /spool, POST /spool/<id>/retry and `cutover spool`.
The upstream is a recorder on loopback: every assertion is on what it got."""

import json
import os
import signal
import socket
import threading
import time

import pytest

from cutover_testlib import (HOST, Client, Cutover, build_request, multipart_submission,
                             proxy_admin, request, restart_proxy, run_cli, wait_for)

BASIC = "Basic ZGV2aWNlOnMzY3JldA=="        # device:s3cret
DATE = "Fri, 04 Dec 2026 15:00:00 GMT"


class Recorder:
    """An upstream on an ephemeral loopback port, a thread per connection,
    keep-alive; records (arrival index, request line, headers, body) and
    answers what SCRIPT(rec) returns: (status, extra headers, body, delay)."""

    def __init__(self, script=None):
        self.script = script or (lambda rec: (201, [], b"<ok/>", 0))
        self.got = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.url = "http://%s:%d" % (HOST, self.port)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(20)
        buf = b""
        try:
            while not self.stop.is_set():
                while b"\r\n\r\n" not in buf:
                    c = conn.recv(65536)
                    if not c:
                        return
                    buf += c
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.split(b"\r\n")
                headers = [tuple(x.decode("latin-1").split(": ", 1)) for x in lines[1:]]
                n = 0
                for k, v in headers:
                    if k.lower() == "content-length":
                        n = int(v)
                    assert k.lower() != "transfer-encoding", headers
                while len(buf) < n:
                    c = conn.recv(1 << 20)
                    if not c:
                        return
                    buf += c
                body, buf = buf[:n], buf[n:]
                rec = {"line": lines[0].decode("latin-1"), "headers": headers, "body": body,
                       "path": lines[0].decode("latin-1").split(" ")[1]}
                if rec["line"].startswith("GET / "):
                    # cutover's periodic health check: answered, not recorded
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                    continue
                with self.lock:
                    rec["n"] = len(self.got)
                    self.got.append(rec)
                status, extra, answer, delay = self.script(rec)
                if delay:
                    time.sleep(delay)
                if status is None:
                    conn.close()          # a dropped connection
                    return
                out = b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n" % (status, len(answer))
                for k, v in extra:
                    out += ("%s: %s\r\n" % (k, v)).encode()
                conn.sendall(out + b"\r\n" + answer)
        except OSError:
            pass
        finally:
            conn.close()

    def records(self, part="/receiver/"):
        with self.lock:
            return [r for r in self.got if part in r["path"]]

    def close(self):
        self.stop.set()
        self.sock.close()


def header(rec, name):
    vals = [v for k, v in rec["headers"] if k.lower() == name.lower()]
    return vals[0] if vals else None


@pytest.fixture
def rig(harness):
    made = []

    def make(old_script=None, new_script=None, spool="retry_min = 0.05; retry_max = 0.2;",
             old=None, new=None, port=None, **kw):
        old = old or Recorder(old_script)
        new = new or Recorder(new_script)
        made.extend([old, new])
        port, text = harness.config(old, new, port=port, **kw)
        d = harness.dir / "spool"
        text = text.replace('spool = { dir = "%s"; };' % d, 'spool = { dir = "%s"; %s };' % (d, spool))
        c = Cutover(harness.dir, text, wait_ready=False, port=port)
        harness.proxies.append(c)
        c.wait_ready()
        return c, proxy_admin(c), old, new

    yield make
    for r in made:
        r.close()


def form_headers(ctype, i):
    return [("Content-Type", ctype), ("Authorization", BASIC), ("X-OpenRosa-Version", "1.0"),
            ("Date", DATE), ("X-Seq", str(i))]


def chunked(body, size=1000):
    out = b""
    for i in range(0, len(body), size):
        out += b"%x\r\n" % len(body[i:i + size]) + body[i:i + size] + b"\r\n"
    return out + b"0\r\n\r\n"


def submit(port, project, i, extra=b"", chunk=False, expect=201):
    ctype, form = multipart_submission("uuid:%s-%03d" % (project, i), extra=extra)
    path = "/a/%s/receiver/?n=%d" % (project, i)
    hs = form_headers(ctype, i)
    if chunk:
        with Client(port, timeout=30) as c:
            c.send(build_request("POST", path, hs + [("Transfer-Encoding", "chunked")], None)
                   + chunked(form))
            r = c.read_response("POST")
    else:
        r = request(port, "POST", path, hs, form, timeout=30)
    assert r.status == expect, r
    return {"path": path, "ctype": ctype, "body": form}


def journal_kinds(admin):
    return [e.get("action") for e in admin.journal(50)]


def spool_totals(admin, project=None):
    st = admin.status()
    return st["spool"] if project is None else st["projects"].get(project, {}).get("spool")


def assert_delivered_in_order(up, sent, project):
    got = [r for r in up.records("/a/%s/" % project)]
    assert [r["path"] for r in got] == [s["path"] for s in sent], [r["path"] for r in got]
    for r, s in zip(got, sent):
        assert r["body"] == s["body"]
        assert header(r, "Content-Type") == s["ctype"]
        assert header(r, "Authorization") == BASIC
        assert header(r, "X-OpenRosa-Version") == "1.0"
        assert header(r, "Date") == DATE
        assert header(r, "Content-Length") == str(len(s["body"]))
        assert header(r, "X-Forwarded-For") == HOST
        assert header(r, "X-Cutover-Peer") is None


def test_switch_replays_each_once_in_order_byte_identical(rig):
    proxy, admin, old, new = rig()
    assert admin.maintenance(True).status == 200
    sent = {p: [] for p in ("alpha", "beta", "gamma")}
    for i in range(12):
        p = ("alpha", "beta", "gamma")[i % 3]
        big = b"x" * (3 << 20) if i == 4 else b""
        sent[p].append(submit(proxy.port, p, i, extra=big, chunk=(i % 4 == 1)))
    assert not old.records() and not new.records()
    assert spool_totals(admin)["records"] == 12
    assert admin.switch("new", force=True).status == 200
    wait_for(lambda: len(new.records()) >= 12, 20, what="12 replays")
    wait_for(lambda: spool_totals(admin)["records"] == 0, 10, what="spool empty")
    time.sleep(0.2)                             # nothing more may arrive
    assert len(new.records()) == 12 and not old.records()
    for p, s in sent.items():
        assert_delivered_in_order(new, s, p)
    assert spool_totals(admin)["dead_letters"] == 0
    assert spool_totals(admin, "alpha")["records"] == 0
    # drained: a new submission is forwarded directly, not spooled
    r = request(proxy.port, "POST", "/a/alpha/receiver/?direct", [("Content-Type", "text/xml")], b"<x/>")
    assert r.status == 201 and r.header("X-Cutover-Mode") != "maintenance"
    assert new.records()[-1]["path"] == "/a/alpha/receiver/?direct"
    wait_for(lambda: {"replay-start", "replay-done"} <= set(journal_kinds(admin)), 5,
             what="the replay's journal lines")


def test_rollback_replays_to_old(rig):
    proxy, admin, old, new = rig()
    assert admin.switch("new", force=True).status == 200
    assert admin.maintenance(True, project="alpha").status == 200
    sent = [submit(proxy.port, "alpha", i) for i in range(3)]
    assert admin.switch("old", project="alpha", force=True).status == 200
    wait_for(lambda: len(old.records()) >= 3, 10, what="replays to old")
    assert_delivered_in_order(old, sent, "alpha")
    assert not new.records()


def test_new_submissions_join_the_tail(rig):
    slow = threading.Event()

    def script(rec):
        # the first replayed record is answered slowly: the switch has happened
        if rec["n"] == 0:
            slow.set()
            return 201, [], b"", 1.0
        return 201, [], b"", 0

    proxy, admin, old, new = rig(new_script=script)
    assert admin.maintenance(True, project="alpha").status == 200
    sent = [submit(proxy.port, "alpha", i) for i in range(3)]
    assert admin.switch("new", project="alpha", force=True).status == 200
    assert slow.wait(5)
    late = submit(proxy.port, "alpha", 3)      # spooled: the project's spool is not empty
    wait_for(lambda: len(new.records()) >= 4, 10, what="4 deliveries")
    assert_delivered_in_order(new, sent + [late], "alpha")


def test_retries_backoff_dead_letters_and_operator_retry(rig):
    calls = {}

    def script(rec):
        p = rec["path"]
        calls[p] = calls.get(p, 0) + 1
        if "?n=0" in p:                         # 503 twice, then 201
            return (503, [], b"busy", 0) if calls[p] <= 2 else (201, [], b"", 0)
        if "?n=1" in p:                         # 429 with Retry-After: 1
            return (429, [("Retry-After", "1")], b"slow down", 0) if calls[p] == 1 else (201, [], b"", 0)
        if "?n=2" in p:                         # permanent: a dead letter at once
            return (400, [], b"bad form " + b"y" * 600, 0) if calls[p] == 1 else (202, [], b"", 0)
        if "?n=4" in p:
            return 500, [], b"always", 0        # max_attempts
        return 201, [], b"", 0

    proxy, admin, old, new = rig(new_script=script,
                                 spool="retry_min = 0.05; retry_max = 0.1; max_attempts = 3;")
    assert admin.maintenance(True).status == 200
    sent = [submit(proxy.port, "alpha", i) for i in range(5)]
    assert admin.switch("new", force=True).status == 200
    wait_for(lambda: "/a/alpha/receiver/?n=3" in [r["path"] for r in new.records()], 10,
             what="the form after the dead letter")
    wait_for(lambda: spool_totals(admin)["dead_letters"] == 2, 10, what="two dead letters")
    paths = [r["path"] for r in new.records()]
    assert paths.count(sent[0]["path"]) == 3    # 503, 503, 201
    assert paths.count(sent[2]["path"]) == 1    # 400: not sent again
    assert paths.count(sent[4]["path"]) == 3    # max_attempts = 3
    # Retry-After: 1 was honoured (backoff alone would be ~0.05 s)
    t = [r for r in new.records() if r["path"] == sent[1]["path"]]
    assert len(t) == 2
    # order: n=1 delivered only after its wait, n=2..3 after it
    order = [p for p in paths]
    assert order.index(sent[3]["path"]) > order.index(sent[2]["path"]) > max(
        i for i, p in enumerate(order) if p == sent[1]["path"])
    doc = admin.get("/spool").json
    alpha = doc["projects"]["alpha"]
    dead = {d["status"]: d for d in alpha["dead_letters"]}
    assert set(dead) == {400, 500}, doc
    assert dead[400]["attempts"] == 1 and dead[500]["attempts"] == 3
    assert dead[400]["answer"].startswith("bad form") and len(dead[400]["answer"]) <= 512
    # the operator sends the 400 one again: now it is accepted (202)
    out = run_cli(["spool", "retry", str(dead[400]["id"]), "--admin",
                   "unix:%s/admin.sock" % proxy.workdir])
    assert out.returncode == 0, out.stderr
    wait_for(lambda: [r["path"] for r in new.records()].count(sent[2]["path"]) == 2, 10,
             what="the retried dead letter")
    wait_for(lambda: spool_totals(admin)["dead_letters"] == 1, 5, what="one dead letter left")
    ls = run_cli(["spool", "ls", "--project", "alpha", "--admin", "unix:%s/admin.sock" % proxy.workdir])
    assert ls.returncode == 0 and "500" in ls.stdout, ls.stdout
    js = run_cli(["spool", "ls", "--json", "--admin", "unix:%s/admin.sock" % proxy.workdir])
    assert json.loads(js.stdout)["projects"]["alpha"]["dead_letters"][0]["status"] == 500
    wait_for(lambda: journal_kinds(admin).count("dead-letter") == 2, 5, what="2 dead-letter lines")
    dl = [e for e in admin.journal() if e.get("action") == "dead-letter"]
    assert {e["status"] for e in dl} == {400, 500} and all(e["scope"] == "alpha" for e in dl), dl
    assert "Basic" not in json.dumps(admin.journal())


def test_retry_after_is_honoured(rig):
    times = []

    def script(rec):
        times.append(time.monotonic())
        return (429, [("Retry-After", "1")], b"", 0) if len(times) == 1 else (201, [], b"", 0)

    proxy, admin, old, new = rig(new_script=script)
    assert admin.maintenance(True).status == 200
    submit(proxy.port, "alpha", 0)
    assert admin.switch("new", force=True).status == 200
    wait_for(lambda: len(times) >= 2, 10, what="the second attempt")
    assert times[1] - times[0] >= 0.9, times


def test_restart_resumes_the_replay(rig, harness):
    down = {"on": True}

    def script(rec):
        return (None, [], b"", 0) if down["on"] else (201, [], b"", 0)

    proxy, admin, old, new = rig(new_script=script,
                                 spool="retry_min = 0.05; retry_max = 0.2; max_attempts = 1000;")
    assert admin.maintenance(True).status == 200
    sent = [submit(proxy.port, "alpha", i) for i in range(3)]
    assert admin.switch("new", force=True).status == 200
    wait_for(lambda: len(new.records()) >= 1, 10, what="a failed attempt")
    proxy = restart_proxy(harness, proxy)       # SIGTERM: exit 0; records still pending
    admin = proxy_admin(proxy)
    assert spool_totals(admin)["records"] == 3
    before = len(new.records())
    down["on"] = False
    wait_for(lambda: spool_totals(admin)["records"] == 0, 10, what="replayed after restart")
    got = new.records()[before:]
    assert [r["path"] for r in got if r["n"] >= before][-3:] == [s["path"] for s in sent]


def test_attempts_survive_a_restart(rig, harness):
    # max_attempts bounds the sends of a record over the daemon's lives, not
    # per life: 2 failed sends, a restart, then only 2 more before the dead
    # letter (before the attempts were kept, the restart granted 4 afresh: 6)
    def script(rec):
        return 500, [], b"down", 0

    proxy, admin, old, new = rig(new_script=script,
                                 spool="retry_min = 0.5; retry_max = 0.5; max_attempts = 4;")
    assert admin.maintenance(True).status == 200
    sent = submit(proxy.port, "alpha", 0)
    assert admin.switch("new", force=True).status == 200
    wait_for(lambda: "attempt 2 of 4" in proxy.stderr(), 10, what="the second failed send")
    proxy = restart_proxy(harness, proxy)
    admin = proxy_admin(proxy)
    wait_for(lambda: spool_totals(admin)["dead_letters"] == 1, 10, what="the dead letter")
    assert [r["path"] for r in new.records()] == [sent["path"]] * 4
    dead = admin.get("/spool").json["projects"]["alpha"]["dead_letters"]
    assert dead[0]["attempts"] == 4 and dead[0]["status"] == 500, dead


def test_switch_away_waits_for_a_replay_in_flight(rig):
    started = threading.Event()

    def script(rec):
        started.set()
        return 201, [], b"", 1.5

    proxy, admin, old, new = rig(new_script=script)
    assert admin.maintenance(True).status == 200
    submit(proxy.port, "alpha", 0)
    assert admin.switch("new", force=True).status == 200
    assert started.wait(5)
    st = admin.status()
    assert st["upstreams"]["new"]["in_flight"] >= 1, st["upstreams"]
    t0 = time.monotonic()
    r = admin.switch("old", force=True)
    assert r.status == 200, r
    assert time.monotonic() - t0 >= 0.5        # it waited for the replay to end
    assert spool_totals(admin)["records"] == 0


GLOBAL_ROUTES = """\
routes = (
  { name = "submit"; match = { methods = ["POST"]; path = "^/submit"; }; spool = true; },
  { name = "default"; }
);
"""


def test_global_scope_records_replay_on_maintenance_off_across_workers(rig):
    # records of a route without a project group are the global scope's
    # ("-"); `maintenance off` returns to old and replays them there; with
    # two workers a record stored on either joins the same replay
    proxy, admin, old, new = rig(routes=GLOBAL_ROUTES, extra="workers = 2;\n")
    assert admin.maintenance(True).status == 200
    sent = []
    for i in range(6):
        ctype, form = multipart_submission("uuid:global-%d" % i)
        path = "/submit?n=%d" % i
        r = request(proxy.port, "POST", path, form_headers(ctype, i), form)
        assert r.status == 201, r
        sent.append({"path": path, "ctype": ctype, "body": form})
    assert spool_totals(admin)["records"] == 6
    assert admin.maintenance(False).status == 200
    wait_for(lambda: len(old.records("/submit")) >= 6, 10, what="global replays to old")
    got = old.records("/submit")
    assert [r["path"] for r in got] == [s["path"] for s in sent]
    assert all(r["body"] == s["body"] for r, s in zip(got, sent))
    assert not new.records("/submit")
    wait_for(lambda: spool_totals(admin)["records"] == 0, 5, what="spool empty")


def test_kill_during_a_replay_loses_nothing(rig, harness):
    # kill -9 while the upstream holds the first replayed record: after the
    # restart it is sent again (a duplicate the server drops) and every
    # record arrives, in order after the duplicate
    first = threading.Event()
    slow = {"on": True}

    def script(rec):
        if slow["on"] and rec["n"] == 0:
            first.set()
            return 201, [], b"", 3.0
        return 201, [], b"", 0

    proxy, admin, old, new = rig(new_script=script)
    assert admin.maintenance(True).status == 200
    sent = [submit(proxy.port, "alpha", i) for i in range(5)]
    assert admin.switch("new", force=True).status == 200
    assert first.wait(5)
    os.kill(proxy.pid, signal.SIGKILL)
    proxy.wait(10)
    proxy.checked = True
    slow["on"] = False
    proxy = Cutover(harness.dir, proxy.config_path.read_text(), wait_ready=False, port=proxy.port)
    harness.proxies.append(proxy)
    proxy.wait_ready()
    admin = proxy_admin(proxy)
    wait_for(lambda: spool_totals(admin)["records"] == 0, 10, what="replayed after kill -9")
    paths = [r["path"] for r in new.records()]
    assert paths[0] == sent[0]["path"]              # the one in flight at the kill
    assert paths[1:] == [s["path"] for s in sent], paths


def test_replays_leave_device_traffic_room(rig):
    # new: max_active 2, queue 1. Three projects replay slowly at once: at
    # most half the slots (1) go to replays, so a device's request finds
    # a slot instead of a full queue's 503
    lock = threading.Lock()
    live = {"now": 0, "max": 0}

    def script(rec):
        if "/receiver/" not in rec["path"]:
            return 200, [], b"device", 0
        with lock:
            live["now"] += 1
            live["max"] = max(live["max"], live["now"])
        time.sleep(0.3)
        with lock:
            live["now"] -= 1
        return 201, [], b"", 0

    proxy, admin, old, new = rig(new_script=script, new_extra="max_active = 2; queue = 1;")
    assert admin.maintenance(True).status == 200
    for i in range(6):
        submit(proxy.port, ("p1", "p2", "p3")[i % 3], i)
    assert admin.switch("new", force=True).status == 200
    wait_for(lambda: live["now"] >= 1, 5, what="a replay in flight")
    for _ in range(3):
        r = request(proxy.port, "GET", "/a/p1/phone/restore/")
        assert r.status == 200 and r.body == b"device", r
    wait_for(lambda: spool_totals(admin)["records"] == 0, 20, what="all replayed")
    assert live["max"] == 1, live


def test_spool_endpoints_refuse_bad_input_without_changing_anything(rig):
    proxy, admin, old, new = rig()
    assert admin.maintenance(True).status == 200
    submit(proxy.port, "alpha", 0)
    submit(proxy.port, "beta", 1)
    doc = admin.get("/spool").json
    assert set(doc["projects"]) == {"alpha", "beta"}, doc
    a = doc["projects"]["alpha"]
    assert (a["records"], a["pending"], a["dead_letters"]) == (1, 1, []), a
    only = admin.get("/spool?project=beta").json
    assert set(only["projects"]) == {"beta"}, only
    before = admin.status()["spool"]
    assert admin.post("/spool/99999/retry", {}).status == 404
    assert admin.post("/spool/1/retry", {}).status == 409          # pending, not dead
    assert admin.post("/spool/abc/retry", {}).status == 404
    assert admin.post("/spool/1/again", {}).status == 404
    assert admin.get("/spool/1/retry").status == 405
    assert admin.status()["spool"] == before
    out = run_cli(["spool", "retry", "99999", "--admin", "unix:%s/admin.sock" % proxy.workdir])
    assert out.returncode != 0 and "no such record" in out.stderr, out.stderr
    assert not new.records() and not old.records()
