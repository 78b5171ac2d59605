"""The project registry under abuse (issue 13, fault 2): in-flight accounting
must never depend on how many project names the registry can hold. A flood
of distinct project names must neither hide a request in flight nor let a
switch report "drained" while that request still runs."""

from cutover_testlib import (AsyncCall, Client, Deadline, build_request, multipart_submission,
                             proxy_admin, wait_for)

FLOOD = 5000            # distinct names: more than the old fixed table (4,096)
FLOOD_CONNS = 4
FLOOD_BATCH = 50        # pipelined requests per round trip
FLOOD_SECONDS = 120.0   # the whole flood, sanitized build included


def flood_names(port, names):
    """GETs /a/<name>/phone/restore/ for every name, pipelined on a few
    keep-alive connections; every answer must be a 200 from the upstream."""
    deadline = Deadline(FLOOD_SECONDS)
    clients = [Client(port, timeout=30) for _ in range(FLOOD_CONNS)]
    try:
        for start in range(0, len(names), FLOOD_BATCH * FLOOD_CONNS):
            assert not deadline.expired(), "the flood did not finish in %.0fs" % FLOOD_SECONDS
            sent = []
            for k, c in enumerate(clients):
                lo = start + k * FLOOD_BATCH
                batch = names[lo:lo + FLOOD_BATCH]
                if batch:
                    c.send(b"".join(build_request("GET", "/a/%s/phone/restore/" % n)
                                    for n in batch))
                    sent.append((c, len(batch)))
            for c, n in sent:
                for _ in range(n):
                    r = c.read_response()
                    assert r.status == 200, r
    finally:
        for c in clients:
            c.close()


def status_where(admin, check, what, timeout=10.0):
    def probe():
        st = admin.status()
        return st if check(st) else None
    return wait_for(probe, timeout, interval=0.02, what=what)


def start_upload(port, project):
    """A submission to PROJECT whose body is half sent: in flight to its
    upstream until finish_upload(). Larger than limits.body_buffer, so that
    it streams (a smaller body is buffered before admission, not in flight)."""
    ctype, body = multipart_submission(extra=b" " * (200 * 1024))
    c = Client(port, timeout=30)
    head = build_request("POST", "/a/%s/receiver/" % project, [("Content-Type", ctype)], body)
    cut = len(head) - len(body) // 2
    c.send(head[:cut])
    return c, head[cut:]


def finish_upload(upload):
    c, rest = upload
    c.send(rest)
    r = c.read_response()
    c.close()
    return r


def in_flight_old(st, project):
    return st["projects"].get(project, {}).get("in_flight", {}).get("old")


def test_flood_of_names_cannot_hide_a_request_from_the_drain(harness):
    old = harness.upstream("old", record=False)
    new = harness.upstream("new", record=False)
    proxy = harness.proxy(old, new, access_log=False)
    admin = proxy_admin(proxy)

    flood_names(proxy.port, ["flood%05d" % i for i in range(FLOOD)])
    upload = start_upload(proxy.port, "realproj")
    try:
        status_where(admin, lambda s: s["upstreams"]["old"]["in_flight"] == 1,
                     "upstreams.old.in_flight to be 1 during the upload")
        call = AsyncCall(admin.switch, "new", project="realproj", force=True)
        assert not call.wait(0.5), \
            "the switch of realproj answered while its upload was in flight: %r" % (call.value,)
        # the project is tracked (idle flood names made room) and status says
        # how many names the registry let go (status reads the project's
        # counter before the upstream's: wait for both)
        st = status_where(admin, lambda s: in_flight_old(s, "realproj") == 1,
                          "projects.realproj.in_flight.old to be 1 during the upload")
        reg = st["registry"]
        assert reg["evicted"] >= FLOOD - reg["limit"], reg
        assert reg["tracked"] <= reg["limit"] + 2, reg
        r = finish_upload(upload)
        assert r.status == 201 and r.header("X-Upstream") == "old", r
        a = call.result(20)
        assert a.status == 200 and a["drained"] is True and a["in_flight"] == 0, a
        assert a["scope"] == "realproj" and a["upstream"] == "old", a
    finally:
        upload[0].close()


def test_untracked_requests_are_counted_and_drained_conservatively(harness):
    """With every slot busy, a new name cannot be tracked: its request is
    counted as untracked, visible in status, and a drain waits for it."""
    old = harness.upstream("old", record=False)
    new = harness.upstream("new", record=False)
    proxy = harness.proxy(old, new, extra="limits = { projects = 2; };\n")
    admin = proxy_admin(proxy)

    busy = [start_upload(proxy.port, p) for p in ("busy1", "busy2")]
    opened = list(busy)
    try:
        status_where(admin, lambda s: in_flight_old(s, "busy1") == 1 and
                     in_flight_old(s, "busy2") == 1, "busy1 and busy2 in flight")
        held = start_upload(proxy.port, "realproj")
        opened.append(held)
        status_where(admin, lambda s: s["upstreams"]["old"]["in_flight"] == 3,
                     "three uploads in flight to old")
        call = AsyncCall(admin.switch, "new", project="realproj", force=True)
        assert not call.wait(0.5), \
            "the switch of an untracked project answered drained: %r" % (call.value,)
        st = status_where(admin, lambda s: s["registry"]["untracked_in_flight"]["old"] == 1,
                          "registry.untracked_in_flight.old to be 1")
        reg = st["registry"]
        assert reg["untracked_requests"] >= 1, reg
        assert reg["untracked_in_flight"] == {"old": 1, "new": 0}, reg
        # realproj now has its own mode; its upload is counted as untracked
        assert st["projects"]["realproj"]["in_flight"] == {"old": 0, "new": 0}, st["projects"]
        for u in busy:
            assert finish_upload(u).status == 201
        assert not call.wait(0.3), "the drain ignored the untracked request: %r" % (call.value,)
        r = finish_upload(held)
        assert r.status == 201 and r.header("X-Upstream") == "old", r
        a = call.result(20)
        assert a.status == 200 and a["drained"] is True and a["in_flight"] == 0, a

        # now realproj has its own mode: it is tracked even with every slot busy
        busy = [start_upload(proxy.port, p) for p in ("busy3", "busy4")]
        opened += busy
        status_where(admin, lambda s: in_flight_old(s, "busy3") == 1 and
                     in_flight_old(s, "busy4") == 1, "busy3 and busy4 in flight")
        held = start_upload(proxy.port, "realproj")
        opened.append(held)
        st = status_where(admin, lambda s: s["upstreams"]["new"]["in_flight"] == 1 and
                          s["projects"]["realproj"]["in_flight"]["new"] == 1,
                          "the upload of realproj in flight to new")
        assert st["projects"]["realproj"]["own_mode"] is True
        assert st["projects"]["realproj"]["in_flight"] == {"old": 0, "new": 1}, st["projects"]
        assert st["registry"]["untracked_in_flight"] == {"old": 0, "new": 0}, st["registry"]
        for u in busy + [held]:
            assert finish_upload(u).status == 201
    finally:
        for u in opened:
            u[0].close()


def test_reload_changes_the_limit(harness):
    old = harness.upstream("old", record=False)
    new = harness.upstream("new", record=False)
    proxy = harness.proxy(old, new, extra="limits = { projects = 2; };\n")
    admin = proxy_admin(proxy)
    assert admin.status()["registry"]["limit"] == 2
    text = proxy.config_path.read_text().replace("projects = 2;", "projects = 5;")
    proxy.config_path.write_text(text)
    a = admin.post("/reload")
    assert a.status == 200, a
    assert admin.status()["registry"]["limit"] == 5
    text = text.replace("projects = 5;", "projects = 0;")
    proxy.config_path.write_text(text)
    a = admin.post("/reload")
    assert a.status == 400 and "limits.projects" in a["error"], a
    assert admin.status()["registry"]["limit"] == 5
