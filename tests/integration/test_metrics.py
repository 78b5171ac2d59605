"""GET /metrics (issue 15): the Prometheus text exposition with the
contract's names. promtool (Debian's prometheus package) checks the format;
the values must move with the traffic and the switches that made them."""

import re
import time
import shutil
import subprocess

import pytest

from cutover_testlib import free_port, multipart_submission, proxy_admin, request, wait_for

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(admin):
    r = admin.get("/metrics")
    assert r.status == 200, r
    assert r.headers.get("content-type", "").startswith("text/plain; version=0.0.4"), r.headers
    return r.body.decode()


def parse(text):
    """{(name, frozenset(labels)): value} of every sample; asserts each line
    is a comment or a sample."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        labels = frozenset(LABEL.findall(m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def promtool_check(text):
    tool = shutil.which("promtool")
    if not tool:
        pytest.skip("promtool not installed (Debian: prometheus; make deps installs it)")
    p = subprocess.run([tool, "check", "metrics"], input=text.encode(), capture_output=True,
                       timeout=30)
    # promtool exits 0 when clean; lint remarks are printed on stderr
    assert p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(), \
        (p.returncode, p.stdout, p.stderr)


def test_metrics_pass_promtool_and_move_with_traffic(harness):
    old = harness.upstream("old")
    new = harness.upstream("new")
    proxy = harness.proxy(old, new)
    admin = proxy_admin(proxy)
    before = parse(scrape(admin))
    promtool_check(scrape(admin))
    assert value(before, "cutover_scope_mode", scope="global", mode="old") == 1
    assert value(before, "cutover_scope_mode", scope="global", mode="new") == 0
    assert value(before, "cutover_requests_total", route="restore", upstream="old",
                 code="2xx") is None

    for _ in range(3):
        assert request(proxy.port, "GET", "/a/alpha/phone/restore/").status == 200
    assert request(proxy.port, "GET", "/.well-known/cutover/health").status == 200
    after = parse(scrape(admin))
    assert value(after, "cutover_requests_total", route="restore", upstream="old",
                 code="2xx") == 3
    # answered by cutover itself, no route: the health check
    assert value(after, "cutover_requests_total", route="-", upstream="local",
                 code="2xx") >= 1
    n = value(after, "cutover_upstream_request_duration_seconds_count", upstream="old")
    assert n >= 3
    assert value(after, "cutover_upstream_request_duration_seconds_bucket", upstream="old",
                 le="+Inf") == n
    assert value(after, "cutover_upstream_in_flight", upstream="old") == 0

    # a switch moves cutover_scope_mode; the next requests count on new
    assert admin.switch("new", force=True).status == 200
    assert request(proxy.port, "GET", "/a/alpha/phone/restore/").status == 200
    m = parse(scrape(admin))
    assert value(m, "cutover_scope_mode", scope="global", mode="new") == 1
    assert value(m, "cutover_scope_mode", scope="global", mode="old") == 0
    assert value(m, "cutover_requests_total", route="restore", upstream="new", code="2xx") == 1

    # a project in maintenance: its own scope; a spooled submission counts as
    # local 2xx on the submit route and in the project's spool gauges
    assert admin.maintenance(True, project="beta").status == 200
    ctype, form = multipart_submission("uuid:metrics-1")
    r = request(proxy.port, "POST", "/a/beta/receiver/", [("Content-Type", ctype)], form)
    assert r.status == 201, r
    text = scrape(admin)
    promtool_check(text)
    m = parse(text)
    assert value(m, "cutover_scope_mode", scope="beta", mode="maintenance") == 1
    assert value(m, "cutover_requests_total", route="submit", upstream="local", code="2xx") == 1
    assert value(m, "cutover_spool_records", project="beta") == 1
    assert value(m, "cutover_spool_bytes", project="beta") > len(form)
    assert value(m, "cutover_spool_dead_letters", project="beta") == 0

    # leaving maintenance replays it: the spool drains, the replay counts
    assert admin.switch("new", project="beta", force=True).status == 200
    wait_for(lambda: value(parse(scrape(admin)), "cutover_spool_replayed_total",
                           outcome="delivered") == 1, 10, what="the replay counted")
    m = parse(scrape(admin))
    assert value(m, "cutover_spool_records", project="beta") == 0


def test_route_names_are_escaped_and_keep_counting_over_a_reload(harness):
    old = harness.upstream("old")
    new = harness.upstream("new")
    routes = ('routes = ( { name = "we\\"ird\\\\route"; match = { path = "^/w/"; }; },'
              ' { name = "default"; } );\n')
    proxy = harness.proxy(old, new, routes=routes)
    admin = proxy_admin(proxy)
    assert request(proxy.port, "GET", "/w/x").status == 404    # the upstream knows no /w/
    text = scrape(admin)
    assert 'route="we\\"ird\\\\route"' in text, text
    promtool_check(text)
    # a reload with the same route names: the counters go on from where they were
    assert admin.post("/reload").status == 200
    assert request(proxy.port, "GET", "/w/y").status == 404
    m = parse(scrape(admin))
    assert value(m, "cutover_requests_total", route='we\\"ird\\\\route', upstream="old",
                 code="4xx") == 2
    assert value(m, "cutover_config_reloads_total", result="ok") == 1


def upstream_health(admin, name):
    return admin.status()["upstreams"][name]["health"]


def test_health_checks_mark_an_upstream_down_and_up_again(harness):
    # interval 0.3 s: down within two intervals (+ the check's own time) of
    # the upstream stopping, up again once it is back on the same port
    interval = 0.3
    old = harness.upstream("old")
    new = harness.upstream("new")
    hc = "health = { path = \"/\"; interval = %g; timeout = 0.5; };" % interval
    proxy = harness.proxy(old, new, old_extra=hc, new_extra=hc)
    admin = proxy_admin(proxy)
    wait_for(lambda: upstream_health(admin, "new")["up"] is True, 5, what="new checked up")
    h = upstream_health(admin, "new")
    assert h["error"] is None and h["latency_ms"] >= 0 and h["checked"], h
    assert value(parse(scrape(admin)), "cutover_upstream_up", upstream="new") == 1
    port = new.port
    new.kill()
    t0 = time.monotonic()
    wait_for(lambda: upstream_health(admin, "new")["up"] is False, 5, interval=0.02,
             what="new checked down")
    took = time.monotonic() - t0
    assert took <= 2 * interval + 0.5, took
    h = upstream_health(admin, "new")
    assert h["error"].startswith("connect"), h
    m = parse(scrape(admin))
    assert value(m, "cutover_upstream_up", upstream="new") == 0
    assert value(m, "cutover_upstream_up", upstream="old") == 1
    assert value(m, "cutover_upstream_health_checks_total", upstream="new", result="failed") >= 1
    assert "upstream new is down" in proxy.stderr()
    # the checks are probes: nothing of them is counted in flight or as a request
    assert value(m, "cutover_upstream_in_flight", upstream="new") == 0
    harness.upstream("new", port=port)
    wait_for(lambda: upstream_health(admin, "new")["up"] is True, 5, interval=0.02,
             what="new checked up again")
    assert value(parse(scrape(admin)), "cutover_upstream_up", upstream="new") == 1
    # a verdict change is logged once, not every check
    assert proxy.stderr().count("upstream new is down") == 1


def test_upstream_failures_are_counted(harness):
    # new is a port nobody listens on: a request switched there gets 502 and
    # counts as a failure of new; old's count stays 0
    old = harness.upstream("old")
    proxy = harness.proxy(old, "http://127.0.0.1:%d" % free_port())
    admin = proxy_admin(proxy)
    assert request(proxy.port, "GET", "/a/alpha/phone/restore/").status == 200
    assert admin.switch("new", force=True).status == 200
    assert request(proxy.port, "GET", "/a/alpha/phone/restore/").status == 502
    m = parse(scrape(admin))
    assert value(m, "cutover_upstream_failures_total", upstream="new") == 1
    assert value(m, "cutover_upstream_failures_total", upstream="old") == 0
    assert value(m, "cutover_upstream_dns_failures_total", upstream="new") == 0  # an IP: no lookup
