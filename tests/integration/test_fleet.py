"""The fleet's unsent backlog (issue 15): CommCare's heartbeat
(/a/<domain>/phone/heartbeat/<app>/?device_id=...&num_unsent_forms=N)
recorded per device, summed per project in status and /metrics, updated by
a later heartbeat of the same device, forgotten after fleet.forget_after,
kept across a reload and a restart; bounded by fleet.max_devices."""

import json

from cutover_testlib import proxy_admin, request, restart_proxy, wait_for

from test_metrics import parse, scrape, value


def beat(port, project, device, unsent, extra=""):
    path = "/a/%s/phone/heartbeat/app1/?device_id=%s&num_unsent_forms=%s&app_version=2.53%s" % (
        project, device, unsent, extra)
    r = request(port, "GET", path)
    assert r.header("X-Upstream") == "old", r     # forwarded as any request
    return r


def backlog(admin, project):
    p = admin.status()["projects"].get(project, {})
    return p.get("unsent_forms"), p.get("devices")


def test_backlog_summed_updated_and_kept_across_reload_and_restart(harness):
    old = harness.upstream("old")
    new = harness.upstream("new")
    proxy = harness.proxy(old, new, extra="fleet = { file = \"%s/fleet.json\"; };\n" % harness.dir)
    admin = proxy_admin(proxy)
    beat(proxy.port, "alpha", "dev-1", 5)
    beat(proxy.port, "alpha", "dev-2", 3)
    beat(proxy.port, "alpha", "dev-3", 0)
    beat(proxy.port, "beta", "dev-1", 7)           # the same id in another project: another device
    assert backlog(admin, "alpha") == (8, 3)
    assert backlog(admin, "beta") == (7, 1)
    st = admin.status()
    assert st["fleet"]["unsent_forms"] == 15 and st["fleet"]["devices"] == 4, st["fleet"]
    # a later heartbeat of the same device replaces its count
    beat(proxy.port, "alpha", "dev-1", 1)
    assert backlog(admin, "alpha") == (4, 3)
    m = parse(scrape(admin))
    assert value(m, "cutover_fleet_unsent_forms", project="alpha") == 4
    assert value(m, "cutover_fleet_devices", project="alpha") == 3
    assert value(m, "cutover_fleet_unsent_forms", project="beta") == 7
    # a project that reported nothing shows 0
    request(proxy.port, "GET", "/a/gamma/phone/restore/")
    assert backlog(admin, "gamma") == (0, 0)

    assert admin.post("/reload").status == 200
    assert backlog(admin, "alpha") == (4, 3)
    proxy = restart_proxy(harness, proxy)           # SIGTERM writes the file
    admin = proxy_admin(proxy)
    assert backlog(admin, "alpha") == (4, 3) and backlog(admin, "beta") == (7, 1)
    saved = json.loads((harness.dir / "fleet.json").read_text())
    assert {(d["project"], d["device_id"], d["unsent"]) for d in saved["devices"]} == {
        ("alpha", "dev-1", 1), ("alpha", "dev-2", 3), ("alpha", "dev-3", 0), ("beta", "dev-1", 7)}
    assert all(d["app_version"] == "2.53" for d in saved["devices"])


def test_bad_heartbeats_change_nothing(harness):
    old = harness.upstream("old")
    new = harness.upstream("new")
    proxy = harness.proxy(old, new)
    admin = proxy_admin(proxy)
    beat(proxy.port, "alpha", "dev-1", 5)
    # a bad escape, a count out of bounds, a duplicate: refused whole
    beat(proxy.port, "alpha", "dev-1", "%zz")
    beat(proxy.port, "alpha", "dev-1", "99999999999")
    beat(proxy.port, "alpha", "dev-1", "2", extra="&num_unsent_forms=3")
    # no device_id: nothing to record, not an error
    r = request(proxy.port, "GET", "/a/alpha/phone/heartbeat/app1/?num_unsent_forms=9")
    assert r.header("X-Upstream") == "old"
    assert backlog(admin, "alpha") == (5, 1)
    assert admin.status()["fleet"]["refused"] == 3


def test_devices_forgotten_and_bounded(harness):
    old = harness.upstream("old")
    new = harness.upstream("new")
    proxy = harness.proxy(old, new, extra="fleet = { forget_after = 1.0; max_devices = 2; };\n")
    admin = proxy_admin(proxy)
    beat(proxy.port, "alpha", "dev-1", 5)
    beat(proxy.port, "alpha", "dev-2", 3)
    beat(proxy.port, "alpha", "dev-3", 4)           # past max_devices: dropped, counted
    assert backlog(admin, "alpha") == (8, 2)
    assert admin.status()["fleet"]["dropped"] == 1
    beat(proxy.port, "alpha", "dev-1", 2)           # a known device still updates
    assert backlog(admin, "alpha") == (5, 2)
    # not heard from for forget_after: forgotten, the project leaves the sums
    wait_for(lambda: admin.status()["fleet"]["devices"] == 0, 5, what="devices forgotten")
    assert admin.status()["fleet"]["forgotten"] == 2
    assert backlog(admin, "alpha") == (0, 0)
