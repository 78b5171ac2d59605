"""The dashboard (issue 15, point 4): admin GET / in a real headless
chromium (Debian's package; skipped with the reason when it is missing).
The page must show what /status says: each scope's mode after switches, the
fleet's backlog after heartbeats, an upstream down, scheduled switches,
the journal; refresh itself; say so when cutover cannot be reached; and
show device-chosen project names as text, never as markup."""

import pytest

from browser_testlib import Browser, chromium_path, render
from cutover_testlib import (Admin, Pending, free_port, multipart_submission, proxy_admin,
                             request, wait_for)

needs_chromium = pytest.mark.skipif(chromium_path() is None,
                                    reason="chromium not installed (Debian: chromium; "
                                           "make deps installs it)")

TOKEN = "k3Yq9v2LmX8pR4tZ7wN1cB6dF0gH5jQa"
# Device-chosen project names reach the page; these would be elements,
# attributes or entities if the page parsed them as markup.
NASTY = '<b>pwned<b>'
NASTY_QUOTES = '"\'&amp;<i>x'


def heartbeat(proxy, project, device, unsent):
    r = request(proxy.port, "GET", "/a/%s/phone/heartbeat/app/?device_id=%s&num_unsent_forms=%d"
                % (project, device, unsent))
    assert r.status == 200, r


def tcp_proxy(harness, old, new, **kw):
    """cutover with a TCP admin listener and its token: (proxy, admin, port)."""
    tf = harness.path("token")
    tf.write_text(TOKEN + "\n")
    aport = free_port()
    proxy = harness.proxy(old, new, admin='address = "127.0.0.1:%d"; token_file = "%s";'
                          % (aport, tf), **kw)
    return proxy, Admin("127.0.0.1:%d" % aport, token=TOKEN), aport


def row(dom, scope):
    r = dom.find("tr", data_scope=scope)
    assert r is not None, "no row for %r in the scopes table" % scope
    return r


def cell(node, key):
    c = node.find(data_k=key)
    assert c is not None, "no %s in %r" % (key, node)
    return c.text()


def health(dom, upstream):
    card = dom.find(data_upstream=upstream)
    assert card is not None, "no card for upstream %s" % upstream
    return cell(card, "health")


@needs_chromium
def test_dashboard_shows_modes_backlog_and_health(harness):
    old = harness.upstream("old")
    dead = "http://127.0.0.1:%d" % free_port()         # nothing listens: new is down
    proxy, admin, aport = tcp_proxy(harness, old, dead, old_extra="max_active = 7;")
    wait_for(lambda: admin.status()["upstreams"]["new"]["health"]["up"] is False, 10,
             what="new checked down")
    wait_for(lambda: admin.status()["upstreams"]["old"]["health"]["up"] is True, 10,
             what="old checked up")
    url = "http://127.0.0.1:%d/#token=%s" % (aport, TOKEN)

    before = render(url, harness.path("chromium-1"))
    assert before.find(id="conn").text() == "live", before.find(id="conn")
    assert before.find(id="global-mode").text() == "old"
    assert health(before, "old") == "up"
    assert health(before, "new").startswith("down"), health(before, "new")
    assert "127.0.0.1:%d" % old.port in cell(before.find(data_upstream="old"), "addresses")
    assert before.find("tr", data_scope="beta") is None

    # beta's phones report a backlog (names chosen by devices too), then the
    # global scope goes to new, alpha stays on old with a mode of its own, a
    # rollback is scheduled
    heartbeat(proxy, "beta", "d1", 3)
    heartbeat(proxy, "beta", "d2", 4)
    heartbeat(proxy, "beta", "d1", 1)             # the device's latest value counts: 1 + 4
    heartbeat(proxy, NASTY, "d9", 7)
    heartbeat(proxy, NASTY_QUOTES, "d8", 2)
    assert admin.switch("new", force=True, reason="night of the cutover").status == 200
    assert admin.switch("old", project="alpha").status == 200
    assert admin.maintenance(True, project="delta", reason="data dump").status == 200
    for i in range(2):
        ctype, form = multipart_submission("uuid:dashboard-%d" % i)
        r = request(proxy.port, "POST", "/a/delta/receiver/", [("Content-Type", ctype)], form)
        assert r.status == 201, r
    assert admin.switch("old", at="+1h", force=True, reason="rollback drill").status == 202
    st = admin.status()
    assert st["projects"]["beta"]["unsent_forms"] == 5, st["projects"]["beta"]

    dom = render(url, harness.path("chromium-2"))
    assert dom.find(id="conn").text() == "live"
    assert dom.find(id="global-mode").text() == "new"
    g = dom.find("tr", data_kind="global")
    assert cell(g, "mode") == "new" and cell(g, "reason") == "night of the cutover"
    assert cell(g, "unsent_forms") == "14"                  # 5 + 7 + 2, the fleet's total
    alpha = row(dom, "alpha")
    assert alpha.attrs["data-kind"] == "own" and cell(alpha, "mode") == "old"
    beta = row(dom, "beta")
    assert beta.attrs["data-kind"] == "follows" and cell(beta, "mode") == "new"
    assert cell(beta, "unsent_forms") == "5" and cell(beta, "devices") == "2"
    assert cell(dom.find(id="fleet"), "unsent_forms") == "14"
    assert health(dom, "new").startswith("down") and health(dom, "old") == "up"
    assert cell(dom.find(data_upstream="old"), "active") == "0 of 7"
    delta = row(dom, "delta")
    assert cell(delta, "mode") == "maintenance" and cell(delta, "reason") == "data dump"
    assert cell(delta, "spool_records") == "2" and cell(delta, "dead_letters") == "0"
    assert cell(g, "spool_records") == "2" and cell(dom.find(id="spool"), "records") == "2"

    # the names are text: no element made of them, read back byte for byte
    assert cell(row(dom, NASTY), "scope") == NASTY
    assert cell(row(dom, NASTY_QUOTES), "scope") == NASTY_QUOTES
    assert cell(row(dom, NASTY), "unsent_forms") == "7"
    assert not dom.find_all("b") and not dom.find_all("i")

    sched = dom.find(id="scheduled").find("tbody").text()
    assert "rollback drill" in sched and "old" in sched, sched
    journal = [tr.text() for tr in dom.find(id="journal").find("tbody").find_all("tr")]
    night = [t for t in journal if "night of the cutover" in t]
    assert len(night) == 1 and "old \u2192 new" in night[0], journal
    assert journal[0].startswith(st["journal"][-1]["time"].replace("T", " ")), journal
    assert any("alpha" in t and "new \u2192 old" in t for t in journal), journal


@needs_chromium
def test_dashboard_shows_in_flight_and_queued(harness):
    old = harness.upstream("old")
    new = harness.upstream("new")
    proxy, admin, aport = tcp_proxy(harness, old, new, old_extra="max_active = 1;")
    # one slow request holds old's only slot, the next one waits in the queue
    slow = [Pending(proxy.port, "GET", "/slow?delay=30") for _ in range(2)]
    try:
        wait_for(lambda: (admin.status()["upstreams"]["old"]["in_flight"],
                          admin.status()["upstreams"]["old"]["queued"]) == (1, 1), 10,
                 what="one request in flight to old, one queued")
        dom = render("http://127.0.0.1:%d/#token=%s" % (aport, TOKEN), harness.path("chromium"))
    finally:
        old.kill()              # the slow exchanges fail at once: no 30 s teardown
        for p in slow:
            p.close()
    card = dom.find(data_upstream="old")
    assert cell(card, "in_flight") == "1" and cell(card, "queued") == "1", card.text()
    assert cell(card, "active") == "1 of 1"
    assert cell(dom.find(data_upstream="new"), "in_flight") == "0"
    assert cell(dom.find("tr", data_kind="global"), "in_flight_old") == "1"


def test_page_needs_no_token_but_status_does(harness):
    old = harness.upstream("old")
    new = harness.upstream("new")
    proxy, admin, aport = tcp_proxy(harness, old, new)
    assert admin.switch("new", project="secretproject").status == 200
    a = admin.get("/", token=False)
    assert a.status == 200, a
    assert a.headers["Content-Type"] == "text/html; charset=utf-8"
    assert a.headers["Cache-Control"] == "no-store"
    csp = a.headers["Content-Security-Policy"]
    assert csp.startswith("default-src 'none';") and "connect-src 'self'" in csp, csp
    assert "unsafe" not in csp, csp
    assert b"secretproject" not in a.body                  # static: no data in the page
    # the token rule stands for everything else
    assert admin.get("/status", token=False).status == 401
    assert admin.get("/?x=1", token=False).status == 401
    assert admin.post("/", token=False).status == 401
    assert admin.get("/status", token="wrong-token-wrong-token").status == 401


@needs_chromium
def test_without_the_token_the_page_shows_nothing_and_says_why(harness):
    old = harness.upstream("old")
    new = harness.upstream("new")
    proxy, admin, aport = tcp_proxy(harness, old, new)
    assert admin.switch("new", project="secretproject").status == 200
    dom = render("http://127.0.0.1:%d/" % aport, harness.path("chromium"))
    conn = dom.find(id="conn")
    assert "cannot reach cutover" in conn.text() and "401" in conn.text(), conn.text()
    assert "hidden" not in dom.find(id="login").attrs
    assert dom.find(id="global-mode") is None
    assert "secretproject" not in dom.find(id="main").text()


def test_page_on_the_unix_socket(harness):
    old = harness.upstream("old")
    new = harness.upstream("new")
    proxy = harness.proxy(old, new)
    a = proxy_admin(proxy).get("/")
    assert a.status == 200 and a.body.startswith(b"<!DOCTYPE html>"), a
    assert "Content-Security-Policy" in a.headers


@needs_chromium
def test_dashboard_refreshes_and_shows_when_cutover_is_gone(harness):
    old = harness.upstream("old")
    new = harness.upstream("new")
    proxy, admin, aport = tcp_proxy(harness, old, new)
    b = Browser("http://127.0.0.1:%d/#token=%s&every=1" % (aport, TOKEN),
                harness.path("chromium"))
    try:
        def shown(id_):
            return b.eval("(document.getElementById(%r) || {}).textContent" % id_)
        wait_for(lambda: shown("global-mode") == "old", 10, what="the page showing old")
        # the token left the address bar once read
        assert "token" not in b.eval("location.href")
        assert shown("conn") == "live"
        assert admin.switch("new", force=True).status == 200
        wait_for(lambda: shown("global-mode") == "new", 5, what="the page refreshed to new")
        heartbeat(proxy, "gamma", "d1", 9)
        q = 'document.querySelector("tr[data-scope=gamma] [data-k=unsent_forms]")'
        wait_for(lambda: b.eval("(%s || {}).textContent" % q) == "9", 5,
                 what="gamma's backlog on the page")

        problems = proxy.stop_and_check()
        assert not problems, problems
        wait_for(lambda: (shown("conn") or "").startswith("cannot reach cutover"), 10,
                 what="the page saying cutover is gone")
        assert b.eval('document.getElementById("main").className') == "stale"
        assert shown("global-mode") == "new"                    # the last known state stays
        assert "last updated" in shown("updated")
    finally:
        b.close()


def test_browsers_elsewhere_cannot_use_the_admin_api(harness):
    # The dashboard brings browsers to the admin API, and a tunnel to the
    # unix socket carries no token: a web page the operator visits must not
    # flip traffic (CSRF: a cross-site POST carries Origin) nor read status
    # through a name rebound to loopback (DNS rebinding: Host is not ours).
    old = harness.upstream("old")
    new = harness.upstream("new")
    proxy = harness.proxy(old, new)
    admin = proxy_admin(proxy)
    csrf = admin.post("/switch", {"to": "new", "force": True},
                      headers={"Host": "127.0.0.1:8090", "Origin": "https://evil.example",
                               "Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"})
    assert csrf.status == 403 and csrf["ok"] is False, csrf
    rebound = admin.post("/switch", {"to": "new", "force": True},
                         headers={"Host": "evil.example:8090",
                                  "Origin": "http://evil.example:8090"})
    assert rebound.status == 403, rebound
    read = admin.get("/status", headers={"Host": "evil.example:8090",
                                         "Sec-Fetch-Site": "same-origin"})
    assert read.status == 403, read
    null = admin.post("/maintenance", {"on": True}, headers={"Origin": "null"})
    assert null.status == 403, null
    assert admin.status()["mode"] == "old"
    # the page's own requests, through a tunnel on loopback, and the CLI's
    for host in ("127.0.0.1:8090", "localhost:8090", "[::1]:8090"):
        ok = admin.get("/status", headers={"Host": host, "Origin": "http://" + host,
                                           "Sec-Fetch-Site": "same-origin"})
        assert ok.status == 200, (host, ok)
    assert admin.get("/", headers={"Host": "localhost:8090", "Sec-Fetch-Site": "none"}).status == 200
    assert admin.get("/status", headers={"Host": "cutover"}).status == 200
    assert admin.switch("new", force=True).status == 200
