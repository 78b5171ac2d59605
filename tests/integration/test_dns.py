"""DNS that follows the upstreams: a DNS server on loopback (dns_responder)
answers for the upstream names; cutover follows its changes after the TTL,
keeps the last good answer when it stops answering, falls over to the next
address when one refuses, and shows it all in status."""

import pytest

from cutover_testlib import HOST, Cutover, free_port, get, proxy_admin, run_cli, wait_for
from dns_responder import DnsResponder


@pytest.fixture
def dns():
    d = DnsResponder(HOST, 0)
    yield d
    d.close()


@pytest.fixture
def pair(harness):
    """Two demo upstreams on one port, at 127.0.0.2 ("a") and 127.0.0.3 ("b")."""
    a = harness.upstream("a", host="127.0.0.2")
    b = harness.upstream("b", host="127.0.0.3", port=a.port)
    return a, b


def dns_proxy(harness, dns, old_url, new_url="http://127.0.0.1:1", extra=""):
    port = free_port()
    d = harness.dir
    text = ("listen = ( { address = \"%s:%d\"; } );\n"
            "admin = { address = \"unix:%s/admin.sock\"; };\n"
            "upstreams = { old = { url = \"%s\"; connect_timeout = 1.0; };\n"
            "              new = { url = \"%s\"; connect_timeout = 1.0; }; };\n"
            "dns = { servers = [ \"%s:%d\" ]; min_ttl = 1; max_ttl = 300; };\n"
            "state_file = \"%s/state.json\";\njournal_file = \"%s/journal.log\";\n"
            "spool = { dir = \"%s/spool\"; };\nroutes = ( { name = \"default\"; } );\n%s"
            % (HOST, port, d, old_url, new_url, HOST, dns.port, d, d, d, extra))
    c = Cutover(harness.dir, text, wait_ready=False, port=port)
    harness.proxies.append(c)
    c.wait_ready()
    return c


def upstream_of(proxy, path="/echo"):
    r = get(proxy.port, path)
    return r.status, r.header("X-Upstream")


def test_follows_a_changed_answer_after_its_ttl(harness, dns, pair):
    a, b = pair
    dns.set("up.test", ["127.0.0.2"], ttl=1)
    proxy = dns_proxy(harness, dns, "http://up.test:%d" % a.port)
    assert upstream_of(proxy) == (200, "a")
    dns.set("up.test", ["127.0.0.3"], ttl=1)
    # within TTL + a refresh: new connections go to b, and pooled ones to a
    # are not reused once a is no longer in the answer
    wait_for(lambda: upstream_of(proxy) == (200, "b"), 6.0, interval=0.1,
             what="traffic to follow the DNS change")
    for _ in range(5):
        assert upstream_of(proxy) == (200, "b")


def test_keeps_the_last_good_answer_when_the_resolver_stops(harness, dns, pair):
    a, b = pair
    dns.set("up.test", ["127.0.0.2"], ttl=1)
    proxy = dns_proxy(harness, dns, "http://up.test:%d" % a.port)
    assert upstream_of(proxy) == (200, "a")
    dns.silent(True)
    admin = proxy_admin(proxy)

    def failing():
        d = admin.status()["upstreams"]["old"]["dns"]
        return d.get("error") and d
    d = wait_for(failing, 15.0, interval=0.2, what="the resolver failure in status")
    assert d["addresses"] == ["127.0.0.2:%d" % a.port], d
    assert "up.test" in d["error"], d
    for _ in range(3):
        assert upstream_of(proxy) == (200, "a")
    dns.silent(False)
    dns.set("up.test", ["127.0.0.3"], ttl=1)
    wait_for(lambda: upstream_of(proxy) == (200, "b"), 40.0, interval=0.2,
             what="recovery once the resolver answers again")


def test_a_refused_first_address_falls_over_to_the_next(harness, dns, pair):
    a, b = pair
    # nothing listens on 127.0.0.4
    dns.set("up.test", ["127.0.0.4", "127.0.0.2"], ttl=30)
    proxy = dns_proxy(harness, dns, "http://up.test:%d" % a.port)
    admin = proxy_admin(proxy)
    assert admin.status()["upstreams"]["old"]["addresses"] == [
        "127.0.0.4:%d" % a.port, "127.0.0.2:%d" % a.port]
    for i in range(3):
        assert upstream_of(proxy, "/echo?n=%d" % i) == (200, "a")
    assert "127.0.0.4:%d" % a.port in proxy.stderr(), "the refused address was not tried first"


def test_status_shows_addresses_ttl_and_age(harness, dns, pair):
    a, b = pair
    dns.set("up.test", ["127.0.0.2", "127.0.0.3"], ttl=42)
    proxy = dns_proxy(harness, dns, "http://up.test:%d" % a.port)
    d = proxy_admin(proxy).status()["upstreams"]["old"]["dns"]
    assert d["host"] == "up.test"
    assert sorted(d["addresses"]) == ["127.0.0.2:%d" % a.port, "127.0.0.3:%d" % a.port]
    assert d["ttl"] == 42 and 0 <= d["age"] < 30 and d["error"] is None, d
    p = run_cli(["status", "--admin", "unix:%s/admin.sock" % harness.dir])
    assert p.returncode == 0, p
    assert "127.0.0.2:%d" % a.port in p.stdout and "ttl 42s" in p.stdout, p.stdout


def test_max_ttl_clamps_a_long_ttl(harness, dns, pair):
    a, b = pair
    dns.set("up.test", ["127.0.0.2"], ttl=86400)
    proxy = dns_proxy(harness, dns, "http://up.test:%d" % a.port)
    assert proxy_admin(proxy).status()["upstreams"]["old"]["dns"]["ttl"] == 300


def test_a_name_that_does_not_resolve_yet(harness, dns, pair):
    """cutover starts anyway, answers 502 with the reason, and serves once the
    name appears (it keeps asking in the background)."""
    a, b = pair
    proxy = dns_proxy(harness, dns, "http://late.test:%d" % a.port)
    r = get(proxy.port, "/echo")
    assert r.status == 502, r
    dns.set("late.test", ["127.0.0.2"], ttl=1)
    wait_for(lambda: upstream_of(proxy) == (200, "a"), 40.0, interval=0.2,
             what="the late name to be followed")


def test_preflight_refuses_a_name_that_does_not_resolve(harness, dns, pair):
    a, b = pair
    dns.set("up.test", ["127.0.0.2"], ttl=30)
    proxy = dns_proxy(harness, dns, "http://up.test:%d" % a.port,
                      new_url="http://missing.test:%d" % a.port)
    r = proxy_admin(proxy).switch("new")
    assert r.status == 409, r
    err = r["preflight"]["error"]
    assert err.startswith("resolve") and "missing.test" in err, r
    # and the preflight asks again rather than trusting the cache
    dns.set("missing.test", ["127.0.0.3"], ttl=30)
    r = proxy_admin(proxy).switch("new")
    assert r.status == 200, r
    steps = {s["step"]: s for s in r["preflight"]["steps"]}
    assert steps["resolve"]["detail"] == "127.0.0.3:%d" % a.port, r


def test_failed_lookups_are_counted_in_metrics(harness, dns, pair):
    """A name the resolver does not know: its failed lookups count in
    cutover_upstream_dns_failures_total, the other upstream's stay 0."""
    from test_metrics import parse, scrape, value
    a, b = pair
    proxy = dns_proxy(harness, dns, "http://late.test:%d" % a.port)
    admin = proxy_admin(proxy)
    wait_for(lambda: (value(parse(scrape(admin)), "cutover_upstream_dns_failures_total",
                            upstream="old") or 0) >= 1, 20, interval=0.2,
             what="a failed lookup counted")
    assert value(parse(scrape(admin)), "cutover_upstream_dns_failures_total", upstream="new") == 0
    assert admin.status()["upstreams"]["old"]["dns"]["failures"] >= 1
