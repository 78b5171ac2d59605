"""TLS on both sides: the front (listen[].tls: SNI, versions, ALPN,
resumption, certificate reload) and https upstreams (verification, SNI,
client certificates, session reuse), with a PKI made by each test."""

import hashlib
import json
import re
import shutil
import signal
import socket
import ssl

import pytest

from cutover_testlib import (HOST, Client, Cutover, free_port, get, proxy_admin, run_cli,
                             wait_for)
from pki import Pki
from tls_upstream import TlsUpstream


@pytest.fixture
def pki(harness):
    p = Pki(harness.path("pki"))
    p.ca("ca")
    p.ca("otherca")
    return p


def front_config(harness, plain_port, tls_port, certs, old_url, new_url, old_extra="",
                 new_extra="", tls_extra="", extra=""):
    """A config with a plain listener (readiness checks) and a TLS one."""
    d = harness.dir
    pairs = ", ".join('{ cert = "%s"; key = "%s"; }' % c for c in certs)
    return ("listen = ( { address = \"%s:%d\"; },\n"
            "           { address = \"%s:%d\"; tls = { certificates = ( %s ); %s }; } );\n"
            "admin = { address = \"unix:%s/admin.sock\"; };\n"
            "upstreams = { old = { url = \"%s\"; %s };\n"
            "              new = { url = \"%s\"; %s }; };\n"
            "state_file = \"%s/state.json\";\njournal_file = \"%s/journal.log\";\n"
            "spool = { dir = \"%s/spool\"; };\n"
            "routes = ( { name = \"default\"; } );\n"
            "log = { access = \"%s/access.log\"; };\n%s"
            % (HOST, plain_port, HOST, tls_port, pairs, tls_extra, d, old_url, old_extra,
               new_url, new_extra, d, d, d, d, extra))


def start(harness, text, port):
    c = Cutover(harness.dir, text, wait_ready=False, port=port)
    harness.proxies.append(c)
    c.wait_ready()
    return c


def client_ctx(cafile=None, alpn=None):
    ctx = ssl.create_default_context(cafile=cafile)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def tls_connect(port, ctx, server_hostname, session=None):
    raw = socket.create_connection((HOST, port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname=server_hostname, session=session)


def tls_request(sock, path="/echo", host="cutover.test"):
    """One GET on an open TLS socket; returns (status, headers dict, body)."""
    sock.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, host)).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        assert data, "connection closed before a response head: %r" % buf
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        data = sock.recv(65536)
        assert data, "connection closed in the body"
        rest += data
    return status, headers, rest[:n]


def forwarded_proto(rec):
    return [v for k, v in rec["headers"] if k.lower() == "x-forwarded-proto"]


def peer_cn(sock):
    cert = sock.getpeercert()
    return dict(x[0] for x in cert["subject"])["commonName"]


# ---------------------------------------------------------------------------
# the front


@pytest.fixture
def front(harness, pki, old, new):
    a = pki.leaf("a", "ca", dns=["a.test"])
    b = pki.leaf("b", "ca", dns=["b.test", "*.b.test"])
    plain, port = free_port(), free_port()
    proxy = start(harness, front_config(harness, plain, port, [a, b], old.url, new.url), plain)
    return proxy, port, pki


def test_sni_picks_each_names_certificate_and_the_first_is_the_default(front, old):
    proxy, port, pki = front
    ctx = client_ctx(pki.path("ca.pem"))
    for name, cn in [("a.test", "a.test"), ("b.test", "b.test"), ("x.b.test", "b.test")]:
        with tls_connect(port, ctx, name) as s:
            assert peer_cn(s) == cn, name
            status, headers, _ = tls_request(s)
            assert status == 200 and headers["x-upstream"] == "old"
    # no SNI, or a name we have no certificate for: the first (default) one
    nocheck = ssl.create_default_context(cafile=pki.path("ca.pem"))
    nocheck.check_hostname = False
    for name in [None, "unknown.test"]:
        with tls_connect(port, nocheck, name) as s:
            assert peer_cn(s) == "a.test", name


def test_front_requests_carry_x_forwarded_proto_https(front, old):
    proxy, port, pki = front
    with tls_connect(port, client_ctx(pki.path("ca.pem")), "a.test") as s:
        status, _, _ = tls_request(s, "/echo?tls-proto")
    assert status == 200
    rec = old.wait_record("tls-proto")[0]
    assert forwarded_proto(rec) == ["https"], rec
    # and the plain listener still says http
    assert get(proxy.port, "/echo?plain-proto").status == 200
    assert forwarded_proto(old.wait_record("plain-proto")[0]) == ["http"]


def test_large_body_through_the_front_keeps_the_buffers(front, old):
    """A TLS side cannot be spliced (issue 16): a large answer goes through
    the buffers, whole, and cutover_spliced_bytes_total does not move."""
    proxy, port, pki = front
    n = 3 << 20
    with tls_connect(port, client_ctx(pki.path("ca.pem")), "a.test") as s:
        status, _, body = tls_request(s, "/bytes/%d" % n)
    assert status == 200 and len(body) == n
    assert body[:22] == b"cutover-demo-upstream-"
    metrics = proxy_admin(proxy).get("/metrics").body
    assert re.search(rb"^cutover_spliced_bytes_total 0$", metrics, re.M), metrics[-300:]


def test_only_tls_12_and_13_and_alpn_http11(front):
    proxy, port, pki = front
    ctx = client_ctx(pki.path("ca.pem"), alpn=["h2", "http/1.1"])
    with tls_connect(port, ctx, "a.test") as s:
        assert s.version() in ("TLSv1.2", "TLSv1.3")
        assert s.selected_alpn_protocol() == "http/1.1"
    for version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        old_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old_ctx.check_hostname = False
        old_ctx.verify_mode = ssl.CERT_NONE
        old_ctx.set_ciphers("ALL:@SECLEVEL=0")
        old_ctx.minimum_version = version
        old_ctx.maximum_version = version
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            with tls_connect(port, old_ctx, "a.test"):
                pass
    # TLS 1.2 alone works (Mozilla intermediate ciphers)
    ctx12 = client_ctx(pki.path("ca.pem"))
    ctx12.maximum_version = ssl.TLSVersion.TLSv1_2
    with tls_connect(port, ctx12, "a.test") as s:
        assert s.version() == "TLSv1.2"
        assert "GCM" in s.cipher()[0] or "CHACHA20" in s.cipher()[0], s.cipher()


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_sessions_resume(front, version):
    proxy, port, pki = front
    ctx = client_ctx(pki.path("ca.pem"))
    ctx.minimum_version = ctx.maximum_version = getattr(ssl.TLSVersion, version)
    with tls_connect(port, ctx, "a.test") as s:
        assert tls_request(s)[0] == 200   # TLS 1.3 tickets arrive after the handshake
        session = s.session
    with tls_connect(port, ctx, "a.test", session=session) as s:
        assert s.session_reused, "a %s session was not resumed" % version
        assert tls_request(s)[0] == 200


def test_handshake_garbage_closes_the_connection(front):
    proxy, port, pki = front
    with Client(port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")   # plain HTTP to the TLS port
        assert c.closed_within(5.0)
    assert get(proxy.port, "/echo").status == 200


def test_certificate_reload_keeps_open_connections(harness, pki, old, new):
    a = pki.leaf("a", "ca", dns=["a.test"])
    live_cert, live_key = harness.path("live.pem"), harness.path("live.key")
    shutil.copy(a[0], live_cert)
    shutil.copy(a[1], live_key)
    plain, port = free_port(), free_port()
    proxy = start(harness, front_config(harness, plain, port, [(live_cert, live_key)], old.url,
                                        new.url), plain)
    admin = proxy_admin(proxy)
    ctx = client_ctx(pki.path("ca.pem"))
    ctx.check_hostname = False
    kept = tls_connect(port, ctx, "a.test")
    try:
        assert peer_cn(kept) == "a.test" and tls_request(kept)[0] == 200

        # a new certificate in place of the old one, then reload
        a2 = pki.leaf("a2", "ca", dns=["a2.test"])
        shutil.copy(a2[0], live_cert)
        shutil.copy(a2[1], live_key)
        r = admin.post("/reload")
        assert r.status == 200, r
        with tls_connect(port, ctx, "a.test") as s:
            assert peer_cn(s) == "a2.test", "new connections must get the reloaded certificate"
        assert tls_request(kept)[0] == 200, "the open keep-alive connection must survive"

        # a broken key: refused with the file and the reason, the old one serves
        live_key_text = open(live_key).read()
        open(live_key, "w").write("-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n")
        r = admin.post("/reload")
        assert r.status == 400, r
        assert str(live_key) in r["error"], r
        assert re.search(re.escape(str(proxy.config_path)) + r":\d+", r["error"]), r
        with tls_connect(port, ctx, "a.test") as s:
            assert peer_cn(s) == "a2.test"
        # a key that does not match the certificate
        b = pki.leaf("b", "ca", dns=["b.test"])
        shutil.copy(b[1], live_key)
        r = admin.post("/reload")
        assert r.status == 400 and str(live_key) in r["error"], r
        assert "match" in r["error"].lower(), r
        open(live_key, "w").write(live_key_text)
        assert tls_request(kept)[0] == 200

        # SIGHUP does the same as `cutover reload`
        a3 = pki.leaf("a3", "ca", dns=["a3.test"])
        shutil.copy(a3[0], live_cert)
        shutil.copy(a3[1], live_key)
        proxy.signal(signal.SIGHUP)

        def serves_a3():
            with tls_connect(port, ctx, "a.test") as s:
                return peer_cn(s) == "a3.test"
        wait_for(serves_a3, 5.0, what="the certificate reloaded by SIGHUP")
        assert tls_request(kept)[0] == 200
    finally:
        kept.close()


def check_front(harness, pair):
    """`cutover check` on a config whose TLS listener has PAIR; (path, result)."""
    text = front_config(harness, free_port(), free_port(), [pair], "http://127.0.0.1:1",
                        "http://127.0.0.1:2")
    path = harness.path("check.conf")
    path.write_text(text)
    return path, run_cli(["check", "-c", str(path)])


def test_check_refuses_bad_certificates_with_file_and_reason(harness, pki):
    a = pki.leaf("a", "ca", dns=["a.test"])
    b = pki.leaf("b", "ca", dns=["b.test"])
    missing = harness.path("missing.pem")
    cases = [
        ((str(missing), a[1]), [str(missing), "No such file"]),
        ((a[0], b[1]), [b[1], "match"]),
        ((a[1], a[1]), [a[1]]),            # a key where the certificate should be
    ]
    for pair, expect in cases:
        path, p = check_front(harness, pair)
        assert p.returncode == 1, p
        out = p.stdout + p.stderr
        assert re.search(re.escape(str(path)) + r":\d+", out), out
        for e in expect:
            assert e in out, (e, out)


def test_expired_front_certificate_is_a_warning(harness, pki):
    exp = pki.leaf("exp", "ca", dns=["exp.test"], expired=True)
    _, p = check_front(harness, exp)
    assert p.returncode == 0, p
    assert "exp.pem" in p.stdout + p.stderr and "expire" in (p.stdout + p.stderr).lower()


# ---------------------------------------------------------------------------
# https upstreams


@pytest.fixture
def tls_up(request, pki):
    made = []

    def make(name, dns=(), ips=("127.0.0.1",), ca="ca", expired=False, client_ca=None):
        cert, key = pki.leaf(name, ca, dns=dns, ips=ips, expired=expired)
        u = TlsUpstream(cert, key, client_ca=client_ca)
        made.append(u)
        return u
    yield make
    for u in made:
        u.close()


def upstream_proxy(harness, pki, new_url, new_tls, old=None, extra="", pool_size=0):
    port = free_port()
    d = harness.dir
    old_url = old.url if old else "http://127.0.0.1:%d" % free_port()
    text = ("listen = ( { address = \"%s:%d\"; } );\n"
            "admin = { address = \"unix:%s/admin.sock\"; };\n"
            "upstreams = { old = { url = \"%s\"; };\n"
            "              new = { url = \"%s\"; tls = { %s }; pool_size = %d; }; };\n"
            "state_file = \"%s/state.json\";\njournal_file = \"%s/journal.log\";\n"
            "spool = { dir = \"%s/spool\"; };\nroutes = ( { name = \"default\"; } );\n%s"
            % (HOST, port, d, old_url, new_url, new_tls, pool_size, d, d, d, extra))
    return start(harness, text, port)


def test_https_upstream_verified_with_ca_file_and_sni(harness, pki, tls_up, old):
    up = tls_up("good", dns=["new.test"])
    proxy = upstream_proxy(harness, pki, "https://127.0.0.1:%d" % up.port,
                           'ca_file = "%s"; sni = "new.test";' % pki.path("ca.pem"), old)
    admin = proxy_admin(proxy)
    a = admin.switch("new")
    assert a.status == 200, a
    steps = {s["step"]: s for s in a["preflight"]["steps"]}
    assert steps["tls"]["ok"] and "new.test" in steps["tls"]["detail"], a
    for i in range(3):
        r = get(proxy.port, "/x%d" % i)
        assert r.status == 200 and r.header("X-Upstream") == "tls", r
    assert all(h["sni"] == "new.test" for h in up.handshakes), up.handshakes
    # pool_size = 0: every request made its own connection, and resumed the session
    assert len(up.handshakes) >= 3
    assert any(h["reused"] for h in up.handshakes[1:]), up.handshakes


def test_large_upload_to_https_upstream_keeps_the_buffers(harness, pki, tls_up, old):
    """A plain client, a TLS upstream: no tunnel, the body goes whole
    through the buffers and the connection goes on (issue 16)."""
    up = tls_up("upload", dns=["new.test"])
    proxy = upstream_proxy(harness, pki, "https://127.0.0.1:%d" % up.port,
                           'ca_file = "%s"; sni = "new.test";' % pki.path("ca.pem"), old)
    admin = proxy_admin(proxy)
    assert admin.switch("new").status == 200
    body = bytes(range(256)) * (8 << 12)  # 2 MiB
    with Client(proxy.port, timeout=20) as c:
        r = c.request("POST", "/upload", None, body)
        assert r.status == 200 and r.body == hashlib.sha256(body).hexdigest().encode(), r
        assert c.request("GET", "/after").status == 200
    assert re.search(rb"^cutover_spliced_bytes_total 0$", admin.get("/metrics").body, re.M)


def test_https_upstream_connections_are_pooled(harness, pki, tls_up, old):
    up = tls_up("pooled", dns=["new.test"])
    proxy = upstream_proxy(harness, pki, "https://127.0.0.1:%d" % up.port,
                           'ca_file = "%s"; sni = "new.test";' % pki.path("ca.pem"), old,
                           pool_size=4)
    assert proxy_admin(proxy).switch("new").status == 200
    after_preflight = len(up.handshakes)
    with Client(proxy.port) as c:
        for i in range(5):
            r = c.request("GET", "/pooled-%d" % i)
            assert r.status == 200 and r.header("X-Upstream") == "tls", r
    assert len([r for r in up.requests if r["path"].startswith("/pooled-")]) == 5
    made = len(up.handshakes) - after_preflight
    assert made == 1, "5 requests made %d TLS connections" % made


def test_https_upstream_name_defaults_to_the_url_host(harness, pki, tls_up, old):
    """No tls.sni: the URL's host is sent as SNI and checked; localhost comes
    from /etc/hosts through the resolver (::1, if listed first, refuses and
    the next address serves)."""
    up = tls_up("byhost", dns=["localhost"])
    proxy = upstream_proxy(harness, pki, "https://localhost:%d" % up.port,
                           'ca_file = "%s";' % pki.path("ca.pem"), old)
    a = proxy_admin(proxy).switch("new")
    assert a.status == 200, a
    r = get(proxy.port, "/by-host")
    assert r.status == 200 and r.header("X-Upstream") == "tls", r
    assert up.handshakes and all(h["sni"] == "localhost" for h in up.handshakes), up.handshakes
    # the Host header names the URL's host too (no port: 443 is not it here)
    assert up.requests[-1]["headers"]["Host"] == "localhost:%d" % up.port


@pytest.mark.parametrize("case", ["wrong-name", "expired", "unknown-ca"])
def test_bad_upstream_certificate_gives_502_and_preflight_says_why(harness, pki, tls_up, old,
                                                                    case):
    leaf = {"wrong-name": dict(dns=["other.test"], ips=()),
            "expired": dict(dns=["new.test"], expired=True),
            "unknown-ca": dict(dns=["new.test"], ca="otherca")}[case]
    why = {"wrong-name": "hostname mismatch", "expired": "expired",
           "unknown-ca": "unable to get local issuer certificate"}[case]
    up = tls_up(case, **leaf)
    proxy = upstream_proxy(harness, pki, "https://127.0.0.1:%d" % up.port,
                           'ca_file = "%s"; sni = "new.test";' % pki.path("ca.pem"), old)
    admin = proxy_admin(proxy)
    a = admin.switch("new")
    assert a.status == 409, a
    assert why in json.dumps(a.json), a
    assert "tls" in a["preflight"]["error"], a
    p = run_cli(["switch", "new", "--admin", "unix:%s/admin.sock" % harness.dir])
    assert p.returncode == 1 and why in p.stdout + p.stderr, p
    # forced anyway: the device gets 502 and the log says why
    assert admin.switch("new", force=True, reason="test").status == 200
    r = get(proxy.port, "/x")
    assert r.status == 502, r
    wait_for(lambda: why in proxy.stderr(), 5.0, what="the verification failure logged")
    assert not up.requests


def test_verify_false_is_warned_and_skips_verification(harness, pki, tls_up, old):
    up = tls_up("selfish", dns=["new.test"], ca="otherca")
    proxy = upstream_proxy(harness, pki, "https://127.0.0.1:%d" % up.port, "verify = false;", old)
    p = run_cli(["check", "-c", str(proxy.config_path)])
    assert p.returncode == 0, p
    assert "verify = false" in p.stdout + p.stderr, p
    assert proxy_admin(proxy).switch("new").status == 200
    assert get(proxy.port, "/x").status == 200


def test_client_certificate(harness, pki, tls_up, old):
    cc = pki.leaf("cutover-client", "ca", dns=["cutover.client"], client=True)
    up = tls_up("mtls", dns=["new.test"], client_ca=pki.path("ca.pem"))
    base = 'ca_file = "%s"; sni = "new.test";' % pki.path("ca.pem")
    proxy = upstream_proxy(harness, pki, "https://127.0.0.1:%d" % up.port,
                           base + ' cert = "%s"; key = "%s";' % cc, old)
    assert proxy_admin(proxy).switch("new").status == 200
    assert get(proxy.port, "/x").status == 200
    assert up.handshakes[-1]["client_cn"] == "cutover.client"


def test_upstream_without_client_certificate_is_refused_by_mtls_upstream(harness, pki, tls_up,
                                                                         old):
    up = tls_up("mtls2", dns=["new.test"], client_ca=pki.path("ca.pem"))
    proxy = upstream_proxy(harness, pki, "https://127.0.0.1:%d" % up.port,
                           'ca_file = "%s"; sni = "new.test";' % pki.path("ca.pem"), old)
    assert proxy_admin(proxy).switch("new", force=True, reason="test").status == 200
    assert get(proxy.port, "/x").status == 502


def test_failed_handshakes_are_counted_in_metrics(front):
    # an old TLS version and a plain-text client on the TLS port: each ends
    # before a handshake did, and cutover_tls_handshake_failures_total counts it;
    # a good handshake does not
    from test_metrics import parse, scrape, value
    proxy, port, pki = front
    admin = proxy_admin(proxy)
    with tls_connect(port, client_ctx(pki.path("ca.pem")), "a.test") as s:
        assert tls_request(s)[0] == 200
    assert value(parse(scrape(admin)), "cutover_tls_handshake_failures_total") == 0
    old_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old_ctx.check_hostname = False
    old_ctx.verify_mode = ssl.CERT_NONE
    old_ctx.set_ciphers("ALL:@SECLEVEL=0")
    old_ctx.minimum_version = old_ctx.maximum_version = ssl.TLSVersion.TLSv1
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        with tls_connect(port, old_ctx, "a.test"):
            pass
    with Client(port) as c:                      # plain text on the TLS port
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    from cutover_testlib import wait_for
    wait_for(lambda: value(parse(scrape(admin)), "cutover_tls_handshake_failures_total") == 2,
             5, what="two failed handshakes counted")
