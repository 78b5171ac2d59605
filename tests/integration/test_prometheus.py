"""A real Prometheus (Debian's package) scrapes cutover's admin TCP listener
with the bearer token, and what cutover counted comes back through
Prometheus's query API; the shipped scrape snippet and alerting rules pass
promtool (issue 15, point 5)."""

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from cutover_testlib import HOST, Admin, free_port, request, wait_for

REPO = Path(__file__).resolve().parents[2]
TOKEN = "prom-test-token-0123456789abcdef"


def tool(name):
    path = shutil.which(name)
    if not path:
        pytest.skip("%s not installed (Debian: prometheus; make deps installs it)" % name)
    return path


def query(port, expr):
    url = "http://%s:%d/api/v1/query?%s" % (HOST, port, urllib.parse.urlencode({"query": expr}))
    with urllib.request.urlopen(url, timeout=5) as r:
        doc = json.load(r)
    assert doc["status"] == "success", doc
    return doc["data"]["result"]


def scalar(port, expr):
    res = query(port, expr)
    return float(res[0]["value"][1]) if len(res) == 1 else None


def test_a_real_prometheus_scrapes_cutover(harness):
    prom = tool("prometheus")
    old = harness.upstream("old")
    new = harness.upstream("new")
    token = harness.path("admin.token")
    token.write_text(TOKEN + "\n")
    aport = free_port()
    proxy = harness.proxy(old, new, admin='address = "%s:%d"; token_file = "%s";'
                          % (HOST, aport, token))
    for i in range(4):
        assert request(proxy.port, "GET", "/a/alpha/phone/restore/").status == 200
    request(proxy.port, "GET",
            "/a/alpha/phone/heartbeat/app1/?device_id=d1&num_unsent_forms=5")

    # the shipped snippet, pointed at this instance's port and token file
    snippet = (REPO / "conf" / "prometheus-scrape.yml").read_text()
    snippet = snippet.replace("127.0.0.1:9180", "%s:%d" % (HOST, aport))
    snippet = snippet.replace("/etc/cutover/admin.token", str(token))
    snippet = snippet.replace("scrape_interval: 15s", "scrape_interval: 1s")
    snippet = snippet.replace("scrape_timeout: 5s", "scrape_timeout: 1s")
    cfg = harness.path("prometheus.yml")
    cfg.write_text("global:\n  evaluation_interval: 1s\n" + snippet)
    p = subprocess.run([tool("promtool"), "check", "config", str(cfg)], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr

    pport = free_port()
    data = harness.path("prom-data")
    log = open(harness.path("prometheus.log"), "w")
    proc = subprocess.Popen([prom, "--config.file=%s" % cfg, "--storage.tsdb.path=%s" % data,
                             "--web.listen-address=%s:%d" % (HOST, pport),
                             "--log.level=warn"], stdout=log, stderr=subprocess.STDOUT)
    try:
        def ready():
            try:
                with urllib.request.urlopen("http://%s:%d/-/ready" % (HOST, pport),
                                            timeout=1) as r:
                    return r.status == 200
            except OSError:
                return False
        wait_for(ready, 30, interval=0.2, what="prometheus ready")
        # the scrape succeeds (token accepted) and the values are cutover's
        wait_for(lambda: scalar(pport, 'up{job="cutover"}') == 1, 30, interval=0.3,
                 what="a successful scrape")
        wait_for(lambda: scalar(pport, 'sum(cutover_requests_total{route="restore",'
                                       'upstream="old",code="2xx"})') == 4,
                 30, interval=0.3, what="cutover_requests_total through Prometheus")
        wait_for(lambda: scalar(pport, 'cutover_fleet_unsent_forms{project="alpha"}') == 5,
                 30, interval=0.3, what="cutover_fleet_unsent_forms through Prometheus")
        # a later value moves: Prometheus sees the switch
        assert Admin("%s:%d" % (HOST, aport), token=TOKEN).switch("new", force=True).status == 200
        wait_for(lambda: scalar(pport, 'cutover_scope_mode{scope="global",mode="new"}') == 1,
                 30, interval=0.3, what="the switch through Prometheus")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_shipped_rules_pass_promtool_and_their_unit_tests():
    promtool = tool("promtool")
    p = subprocess.run([promtool, "check", "rules", "prometheus-alerts.yml"], cwd=REPO / "conf",
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and "SUCCESS" in p.stdout, p.stdout + p.stderr
    p = subprocess.run([promtool, "test", "rules", "prometheus-alerts.test.yml"],
                       cwd=REPO / "conf", capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "SUCCESS" in p.stdout, p.stdout + p.stderr
