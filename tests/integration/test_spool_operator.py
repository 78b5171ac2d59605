"""The spool's operator view (issue 14, point 5): `cutover spool show ID
[--body FILE] [--with-credentials]`, `spool retry --all [--project P]`,
`spool export DIR` and the admin endpoints under them (GET /spool/<id>,
GET /spool/<id>/body, GET /spool/records, POST /spool/retry). A Basic
credential never leaves the daemon unless asked for; bodies come back byte
for byte; an exported record replayed with curl reaches a recording
upstream as the device sent it."""

import json
import os
import stat
import subprocess

from cutover_testlib import (Client, build_request, multipart_submission, request, run_cli,
                             wait_for)
from spool_testlib import (BASIC, DATE, Recorder, chunked, form_headers, spool_totals,  # noqa: F401
                           submit)
from spool_testlib import recorded_header as header

SECRET = BASIC.split(" ", 1)[1]          # the credential itself


def admin_of(proxy):
    return "unix:%s/admin.sock" % proxy.workdir


def cli(proxy, *args, timeout=60.0):
    return run_cli(list(args) + ["--admin", admin_of(proxy)], timeout=timeout)


def record_ids(admin, project=None):
    q = "/spool/records?limit=1000" + ("&project=%s" % project if project else "")
    a = admin.get(q)
    assert a.status == 200, a
    return [r["id"] for r in a.json["records"]]


def submit_big(port, project, i, size, chunk=False):
    """A submission whose body is SIZE bytes (not a multipart form: the
    spool keeps bytes, whatever they are)."""
    body = bytes((j * 7 + i) & 0xFF for j in range(251)) * (size // 251 + 1)
    body = body[:size]
    hs = form_headers("application/octet-stream", i)
    path = "/a/%s/receiver/?big=%d" % (project, i)
    if chunk:
        with Client(port, timeout=60) as c:
            c.send(build_request("POST", path, hs + [("Transfer-Encoding", "chunked")], None)
                   + chunked(body, 65536))
            r = c.read_response("POST")
    else:
        r = request(port, "POST", path, hs, body, timeout=60)
    assert r.status == 201, r
    return body


def test_show_redacts_the_credential_unless_asked(rig, tmp_path):
    proxy, admin, old, new = rig()
    assert admin.maintenance(True).status == 200
    sent = submit(proxy.port, "alpha", 0)
    (rid,) = record_ids(admin)
    doc = admin.get("/spool/%d" % rid)
    assert doc.status == 200, doc
    d = doc.json
    assert (d["id"], d["project"], d["route"], d["state"]) == (rid, "alpha", "submit", "pending")
    assert d["body_bytes"] == len(sent["body"]) and d["method"] == "POST"
    assert d["target"] == sent["path"] and d["dead_letter"] is None
    assert d["head"][0] == "POST %s HTTP/1.1" % sent["path"], d["head"]
    assert "Authorization: Basic <redacted>" in d["head"], d["head"]
    assert "Content-Type: %s" % sent["ctype"] in d["head"]
    assert "X-OpenRosa-Version: 1.0" in d["head"]
    assert SECRET not in doc.body.decode()
    full = admin.get("/spool/%d?credentials=1" % rid)
    assert full.status == 200 and "Authorization: %s" % BASIC in full.json["head"], full

    out = cli(proxy, "spool", "show", str(rid))
    assert out.returncode == 0, out.stderr
    assert "alpha" in out.stdout and "pending" in out.stdout
    assert "Authorization: Basic <redacted>" in out.stdout, out.stdout
    assert SECRET not in out.stdout + out.stderr
    js = cli(proxy, "spool", "show", str(rid), "--json")
    assert js.returncode == 0 and SECRET not in js.stdout
    assert json.loads(js.stdout)["id"] == rid
    cred = cli(proxy, "spool", "show", str(rid), "--with-credentials")
    assert cred.returncode == 0 and "Authorization: %s" % BASIC in cred.stdout, cred.stdout

    # the daemon's own output (access log, stderr) never holds the credential
    assert SECRET not in proxy.access_log.read_text()
    assert SECRET not in proxy.stderr()

    missing = cli(proxy, "spool", "show", "99999")
    assert missing.returncode == 1 and "no such record" in missing.stderr, missing
    assert len(missing.stderr.strip().splitlines()) == 1, missing.stderr
    assert cli(proxy, "spool", "show", "x1").returncode == 2


def test_show_body_is_byte_identical_plain_and_chunked(rig, tmp_path):
    proxy, admin, old, new = rig()
    assert admin.maintenance(True).status == 200
    plain = submit_big(proxy.port, "alpha", 1, 1 << 20)
    chunk = submit_big(proxy.port, "alpha", 2, 3 * 65536 + 17, chunk=True)
    ids = record_ids(admin, "alpha")
    assert len(ids) == 2
    for rid, want in zip(ids, (plain, chunk)):
        f = tmp_path / ("body-%d" % rid)
        out = cli(proxy, "spool", "show", str(rid), "--body", str(f))
        assert out.returncode == 0, out.stderr
        assert f.read_bytes() == want
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
        raw = admin.get("/spool/%d/body" % rid)
        assert raw.status == 200 and raw.body == want
        assert raw.headers["Content-Type"] == "application/octet-stream"
    # nothing left the spool
    assert spool_totals(admin)["records"] == 2


def test_body_stream_stops_short_on_a_damaged_record(rig, harness, tmp_path):
    """The SHA-256 is still checked when a body is streamed: flipped bytes
    on disk end the answer before its last byte, and the CLI fails."""
    proxy, admin, old, new = rig()
    assert admin.maintenance(True).status == 200
    body = submit_big(proxy.port, "alpha", 3, 300000)
    (rid,) = record_ids(admin)
    (seg,) = sorted((harness.dir / "spool").glob("seg-*.spool"))
    data = bytearray(seg.read_bytes())
    at = data.find(body[100000:100064])
    assert at > 0
    data[at] ^= 0xFF
    seg.write_bytes(bytes(data))
    f = tmp_path / "bad"
    out = cli(proxy, "spool", "show", str(rid), "--body", str(f))
    assert out.returncode == 1, out
    assert "short" in out.stderr or "checksum" in out.stderr, out.stderr
    assert not f.exists()


def test_retry_all_and_retry_all_of_a_project(rig):
    state = {"accept": False}

    def script(rec):
        return (201, [], b"", 0) if state["accept"] else (400, [], b"no thanks", 0)

    proxy, admin, old, new = rig(new_script=script)
    assert admin.maintenance(True).status == 200
    a = [submit(proxy.port, "alpha", i) for i in range(3)]
    b = [submit(proxy.port, "beta", i) for i in range(2)]
    assert admin.switch("new", force=True).status == 200
    wait_for(lambda: spool_totals(admin)["dead_letters"] == 5, 10, what="five dead letters")
    state["accept"] = True
    n_before = len(new.records())

    out = cli(proxy, "spool", "retry", "--all", "--project", "beta")
    assert out.returncode == 0, out.stderr
    assert "2 dead letter" in out.stdout, out.stdout
    wait_for(lambda: spool_totals(admin, "beta") is None or spool_totals(admin, "beta")["records"] == 0,
             10, what="beta delivered")
    got = [r["path"] for r in new.records()[n_before:]]
    assert sorted(got) == sorted(s["path"] for s in b), got
    assert spool_totals(admin, "alpha")["dead_letters"] == 3

    out = cli(proxy, "spool", "retry", "--all")
    assert out.returncode == 0 and "3 dead letter" in out.stdout, out
    wait_for(lambda: spool_totals(admin)["records"] == 0, 10, what="alpha delivered")
    got = [r["path"] for r in new.records()[n_before:]]
    assert sorted(got) == sorted(s["path"] for s in a + b), got
    out = cli(proxy, "spool", "retry", "--all")
    assert out.returncode == 0 and "0 dead letter" in out.stdout, out
    kinds = [e for e in admin.journal(50) if e.get("action") == "spool-retry"]
    assert [(e.get("scope"), e.get("count")) for e in kinds[-3:]] == [
        ("beta", 2), ("all", 3), ("all", 0)], kinds
    # usage: --all and an ID do not go together; --project only with --all
    assert cli(proxy, "spool", "retry", "--all", "3").returncode == 2
    assert cli(proxy, "spool", "retry", "3", "--project", "x").returncode == 2


def test_export_then_replay_one_record_with_curl(rig, tmp_path):
    proxy, admin, old, new = rig()
    assert admin.maintenance(True).status == 200
    sent = [submit(proxy.port, "alpha", i) for i in range(3)] + [submit(proxy.port, "beta", 0)]
    # the record replayed below also carries a header with an empty value,
    # which curl sends only when its header file says "Name;"
    ctype, form = multipart_submission("uuid:empty-header")
    path = "/a/alpha/receiver/?empty=1"
    r = request(proxy.port, "POST", path, form_headers(ctype, 1) + [("X-Empty", "")], form)
    assert r.status == 201, r
    sent[1] = {"path": path, "ctype": ctype, "body": form}
    big = submit_big(proxy.port, "alpha", 9, 200000, chunk=True)
    d = tmp_path / "out"
    out = cli(proxy, "spool", "export", str(d))
    assert out.returncode == 0, out.stderr
    assert "6 records" in out.stdout, out.stdout
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    ids = record_ids(admin)
    assert sorted(p.name for p in d.iterdir()) == sorted(
        "%d.%s" % (i, ext) for i in ids for ext in ("headers", "body", "json", "sh"))
    for p in d.iterdir():
        want = 0o700 if p.suffix == ".sh" else 0o600
        assert stat.S_IMODE(p.stat().st_mode) == want, p
        assert SECRET.encode() not in p.read_bytes(), p
    meta = json.loads((d / ("%d.json" % ids[0])).read_text())
    assert (meta["method"], meta["target"], meta["project"], meta["state"]) == (
        "POST", sent[0]["path"], "alpha", "pending"), meta
    hdrs = (d / ("%d.headers" % ids[0])).read_text().splitlines()
    assert "Authorization: Basic <redacted>" in hdrs, hdrs
    assert not [h for h in hdrs if h.split(":")[0].lower() in
                ("content-length", "transfer-encoding", "host", "x-cutover-peer")], hdrs
    by_path = {json.loads((d / ("%d.json" % i)).read_text())["target"]: i for i in ids}
    assert (d / ("%d.body" % by_path["/a/alpha/receiver/?big=9"])).read_bytes() == big
    replayed = by_path[sent[1]["path"]]

    # replay record 2 of alpha by hand, as an operator would
    target = Recorder()
    try:
        env = dict(os.environ, CUTOVER_TARGET=target.url)
        r = subprocess.run([str(d / ("%d.sh" % replayed))], env=env, capture_output=True,
                           timeout=30, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr
        (rec,) = target.records()
        assert rec["line"] == "POST %s HTTP/1.1" % sent[1]["path"], rec["line"]
        assert rec["body"] == sent[1]["body"]
        assert header(rec, "Content-Type") == sent[1]["ctype"]
        assert header(rec, "X-OpenRosa-Version") == "1.0"
        assert header(rec, "Date") == DATE
        assert header(rec, "X-Empty") == "", rec["headers"]
        # nothing curl would add on its own: the device sent no Accept or User-Agent
        names = [k.lower() for k, v in rec["headers"]]
        assert "accept" not in names and "user-agent" not in names, names
        assert "expect" not in names and "content-length" in names
        # without CUTOVER_TARGET the script says what it needs and sends nothing
        env.pop("CUTOVER_TARGET")
        r = subprocess.run([str(d / ("%d.sh" % replayed))], env=env, capture_output=True,
                           timeout=30, stdin=subprocess.DEVNULL)
        assert r.returncode != 0 and b"base URL" in r.stderr, r.stderr
        assert len(target.records()) == 1
    finally:
        target.close()

    # with credentials, of one project; a DIR that is not empty is refused
    assert cli(proxy, "spool", "export", str(d)).returncode == 1
    d2 = tmp_path / "beta"
    d2.mkdir()
    out = cli(proxy, "spool", "export", str(d2), "--project", "beta", "--with-credentials")
    assert out.returncode == 0 and "1 records" in out.stdout, out
    (h,) = d2.glob("*.headers")
    assert "Authorization: %s" % BASIC in h.read_text().splitlines()
    assert SECRET not in proxy.access_log.read_text() + proxy.stderr()


def test_export_pages_through_many_records(rig, tmp_path):
    proxy, admin, old, new = rig()
    assert admin.maintenance(True).status == 200
    n = 1050                       # the CLI asks for 500 a page: three pages
    for i in range(n):
        submit(proxy.port, "alpha" if i % 3 else "beta", i)
    first = admin.get("/spool/records?limit=50")
    assert first.status == 200 and len(first.json["records"]) == 50, first
    nxt = first.json["next"]
    second = admin.get("/spool/records?limit=1000&after=%d" % nxt).json
    assert len(second["records"]) == 1000 and second["next"] is not None, second["next"]
    last = admin.get("/spool/records?limit=1000&after=%d" % second["next"]).json
    assert last["records"] == [] and last["next"] is None, last
    beta = admin.get("/spool/records?limit=1000&project=beta").json["records"]
    assert len(beta) == 350 and {r["project"] for r in beta} == {"beta"}
    out = cli(proxy, "spool", "export", str(tmp_path / "all"))
    assert out.returncode == 0 and "%d records" % n in out.stdout, out
    assert len(list((tmp_path / "all").glob("*.body"))) == n


def test_bad_ids_and_queries_are_refused_naming_the_problem(rig):
    proxy, admin, old, new = rig()
    assert admin.maintenance(True).status == 200
    submit(proxy.port, "alpha", 0)
    before = admin.status()["spool"]
    a = admin.get("/spool/99999")
    assert a.status == 404 and "no such record" in a["error"], a
    assert admin.get("/spool/99999/body").status == 404
    assert admin.get("/spool/abc").status == 404
    a = admin.get("/spool/1?credentials=maybe")
    assert a.status == 400 and "credentials" in a["error"], a
    a = admin.get("/spool/1?colour=red")
    assert a.status == 400 and "colour" in a["error"], a
    for q, field in (("limit=0", "limit"), ("limit=5000", "limit"), ("after=-1", "after"),
                     ("after=x", "after"), ("limit=1&limit=2", "limit"), ("page=2", "page")):
        a = admin.get("/spool/records?" + q)
        assert a.status == 400 and field in a["error"], (q, a)
    a = admin.post("/spool/retry", {"project": 3})
    assert a.status == 400 and "project" in a["error"], a
    a = admin.post("/spool/retry", {"projects": "alpha"})
    assert a.status == 400 and "projects" in a["error"], a
    assert admin.get("/spool/retry").status == 405
    assert admin.post("/spool/1/body", {}).status == 405
    assert admin.post("/spool/1", {}).status == 405
    assert admin.status()["spool"] == before
    assert not new.records() and not old.records()


def test_no_spool_configured_is_409(harness):
    old = harness.upstream("old")
    new = harness.upstream("new")
    port, text = harness.config(old, new, routes='routes = ( { name = "default"; } );')
    text = "\n".join(l for l in text.splitlines() if not l.startswith("spool"))
    assert "spool" not in text
    from cutover_testlib import Cutover, proxy_admin
    c = Cutover(harness.dir, text, wait_ready=False, port=port)
    harness.proxies.append(c)
    c.wait_ready()
    admin = proxy_admin(c)
    for method, path in (("GET", "/spool/1"), ("GET", "/spool/1/body"),
                         ("GET", "/spool/records"), ("POST", "/spool/retry")):
        a = admin.request(method, path, body={} if method == "POST" else None)
        assert a.status == 409 and "spool" in a["error"], (path, a)
