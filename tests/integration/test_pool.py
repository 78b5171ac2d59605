"""Upstream keep-alive pool: sequential requests reuse upstream connections
(counted by the upstream's accepts)."""

from cutover_testlib import Client, get


def upstream_accepts(up):
    # /__stats counts its own connection too: subtract it
    return up.stats()["connections"] - 1


def test_reuse_over_one_client_connection(harness):
    old = harness.upstream("old")
    proxy = harness.proxy(old, extra="workers = 1;\n")
    before = upstream_accepts(old)
    with Client(proxy.port) as c:
        for i in range(50):
            r = c.request("GET", "/echo?pool=%d" % i)
            assert r.status == 200, r
    opened = upstream_accepts(old) - before - 1   # minus the first /__stats call
    assert 1 <= opened <= 2, "50 sequential requests opened %d upstream connections" % opened


def test_reuse_across_client_connections(harness):
    old = harness.upstream("old")
    proxy = harness.proxy(old, extra="workers = 1;\n")
    before = upstream_accepts(old)
    for i in range(50):
        r = get(proxy.port, "/echo?pool-fresh=%d" % i)       # a new client connection each time
        assert r.status == 200, r
    opened = upstream_accepts(old) - before - 1
    assert 1 <= opened <= 2, "50 requests on 50 client connections opened %d upstream connections" % opened


def test_reuse_with_bodies_both_ways(harness):
    """Reuse must survive Content-Length and chunked bodies in both directions."""
    old = harness.upstream("old")
    proxy = harness.proxy(old, extra="workers = 1;\n")
    before = upstream_accepts(old)
    with Client(proxy.port) as c:
        for i in range(20):
            assert c.request("POST", "/sink", body=b"x" * (i * 1000 + 1)).json()["received"] == i * 1000 + 1
            assert c.request("GET", "/bytes/%d?chunked=1" % (i * 777 + 5)).body_len == i * 777 + 5
            assert c.request("HEAD", "/a/alpha/receiver/").status == 204
    opened = upstream_accepts(old) - before - 1
    assert 1 <= opened <= 2, "60 requests with bodies opened %d upstream connections" % opened


def test_failed_exchange_not_returned_to_pool(harness):
    """After an upstream reset the next requests still succeed (the dead
    connection was not pooled)."""
    old = harness.upstream("old")
    proxy = harness.proxy(old, extra="workers = 1;\n")
    assert get(proxy.port, "/reset").status == 502
    for i in range(5):
        assert get(proxy.port, "/echo?after-reset-%d" % i).status == 200
