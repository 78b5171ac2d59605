"""Request head rewriting, asserted on what the upstream actually received
(its --record file): X-Forwarded-*, hop-by-hop removal, Host."""

from cutover_testlib import Client, request


def hdrs(rec, name):
    name = name.lower()
    return [v for k, v in rec["headers"] if k.lower() == name]


def one(rec, name):
    v = hdrs(rec, name)
    assert len(v) == 1, "expected exactly one %s upstream, got %r (all: %r)" % (name, v, rec["headers"])
    return v[0]


def xff_list(value):
    return [p.strip() for p in value.split(",")]


def test_x_forwarded_headers_set(proxy, old):
    request(proxy.port, "GET", "/echo?case=xf-set", host="devices.example.org")
    rec = old.wait_record("/echo?case=xf-set")[0]
    assert xff_list(one(rec, "X-Forwarded-For")) == ["127.0.0.1"]
    assert one(rec, "X-Forwarded-Proto") == "http"
    assert one(rec, "X-Forwarded-Host") == "devices.example.org"


def test_client_x_forwarded_replaced_when_peer_untrusted(proxy, old):
    request(proxy.port, "GET", "/echo?case=xf-replace", host="devices.example.org",
            headers=[("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "7.7.7.7, 8.8.8.8"),
                     ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil.example")])
    rec = old.wait_record("/echo?case=xf-replace")[0]
    assert xff_list(one(rec, "X-Forwarded-For")) == ["127.0.0.1"]
    assert one(rec, "X-Forwarded-Proto") == "http"
    assert one(rec, "X-Forwarded-Host") == "devices.example.org"
    assert "6.6.6.6" not in str(rec["headers"]) and "evil.example" not in str(rec["headers"])


def test_client_x_forwarded_for_appended_when_peer_trusted(harness):
    old = harness.upstream("old")
    proxy = harness.proxy(old, extra='trusted_proxies = [ "127.0.0.0/8" ];\n')
    request(proxy.port, "GET", "/echo?case=xf-append",
            headers=[("X-Forwarded-For", "203.0.113.9")])
    rec = old.wait_record("/echo?case=xf-append")[0]
    assert xff_list(one(rec, "X-Forwarded-For")) == ["203.0.113.9", "127.0.0.1"]


def test_hop_by_hop_headers_removed(proxy, old):
    request(proxy.port, "GET", "/echo?case=hop", headers=[
        ("Connection", "keep-alive, X-Custom-Hop"),
        ("Connection", "X-Second-Hop"),
        ("X-Custom-Hop", "must-not-pass"),
        ("X-Second-Hop", "must-not-pass"),
        ("Keep-Alive", "timeout=5, max=1000"),
        ("TE", "trailers"),
        ("Trailer", "X-Checksum"),
        ("Upgrade", "h2c"),
        ("Proxy-Connection", "keep-alive"),
        ("X-End-To-End", "must-pass"),
    ])
    rec = old.wait_record("/echo?case=hop")[0]
    names = [k.lower() for k, _ in rec["headers"]]
    for gone in ("x-custom-hop", "x-second-hop", "keep-alive", "te", "trailer", "upgrade",
                 "proxy-connection"):
        assert gone not in names, "hop-by-hop header %s reached the upstream: %r" % (gone, rec["headers"])
    for v in hdrs(rec, "Connection"):
        # cutover may manage its own upstream connection, but never relay the client's
        assert v.strip().lower() in ("keep-alive", "close"), \
            "client's Connection header relayed: %r" % rec["headers"]
    assert "must-not-pass" not in str(rec["headers"])
    assert one(rec, "X-End-To-End") == "must-pass"


def test_hop_by_hop_removed_from_response(proxy):
    with Client(proxy.port) as c:
        r = c.request("GET", "/hop-response")
        assert r.status == 200 and r.body == b"hop\n", r
        names = [k.lower() for k, _ in r.headers]
        for gone in ("x-hop-named", "keep-alive", "proxy-connection", "upgrade", "trailer"):
            assert gone not in names, "hop-by-hop %s relayed to the client: %r" % (gone, r.headers)
        for v in r.headers_all("Connection"):
            assert v.strip().lower() in ("keep-alive", "close"), r.headers
        assert r.header("X-End-To-End") == "must-pass"
        # the client connection is still usable (the upstream's Connection
        # header named a field, it did not ask to close)
        assert c.request("GET", "/echo?after-hop").status == 200


def test_host_set_to_upstream(proxy, old):
    request(proxy.port, "GET", "/echo?case=host", host="devices.example.org")
    rec = old.wait_record("/echo?case=host")[0]
    assert one(rec, "Host") == "127.0.0.1:%d" % old.port


def test_host_preserved_when_configured(harness):
    old = harness.upstream("old")
    proxy = harness.proxy(old, old_extra="preserve_host = true;")
    request(proxy.port, "GET", "/echo?case=preserve-host", host="devices.example.org")
    rec = old.wait_record("/echo?case=preserve-host")[0]
    assert one(rec, "Host") == "devices.example.org"


def test_end_to_end_request_headers_kept_in_order(proxy, old):
    request(proxy.port, "POST", "/a/alpha/receiver/", body=b"x",
            headers=[("Content-Type", "multipart/form-data; boundary=b"),
                     ("X-OpenRosa-Version", "1.0"), ("Authorization", "Digest username=\"u\""),
                     ("Cookie", "a=1"), ("Cookie", "b=2")])
    rec = old.wait_record("/a/alpha/receiver/")[0]
    assert one(rec, "X-OpenRosa-Version") == "1.0"
    assert one(rec, "Authorization") == 'Digest username="u"'
    assert hdrs(rec, "Cookie") in (["a=1", "b=2"], ["a=1; b=2"])
    assert one(rec, "Content-Length") == "1"
