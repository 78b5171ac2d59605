"""The spool through a whole night (issue 14, its remaining tests): hundreds
of submissions over five projects, a kill -9 loop, damaged segments, a full
disk, a connection dropped after the upstream stored the form, and a 409
dead letter. Every assertion is on what the recording upstream got, matched
to what the devices sent and what they were told (a 2xx or not)."""

import base64
import os
import random
import re
import signal
import subprocess
import threading
import time

import pytest

from cutover_testlib import (SANITIZED, Client, Cutover, build_request, multipart_submission,
                             proxy_admin, restart_proxy, wait_for)
from spool_testlib import DATE, chunked, read_records, recorded_header, spool_totals

INSTANCE = re.compile(rb"<instanceID>([^<]*)</instanceID>")


def instance_of(body):
    m = INSTANCE.search(body)
    return m.group(1).decode() if m else None


def form(project, i, extra=b"", instance=None):
    """A submission of PROJECT with its own credential, so a mix-up of heads
    between records shows: (path, headers, body)."""
    ctype, body = multipart_submission(instance or "uuid:%s-%04d" % (project, i), extra=extra)
    cred = base64.b64encode(b"%s-%d:pw" % (project.encode(), i)).decode()
    headers = [("Content-Type", ctype), ("Authorization", "Basic " + cred),
               ("X-OpenRosa-Version", "1.0"), ("Date", DATE)]
    return {"path": "/a/%s/receiver/?n=%d" % (project, i), "headers": headers, "body": body}


def send(port, f, chunk=False, piece=1 << 20, timeout=30):
    """POSTs form F, the head and body in PIECE-byte writes (or chunked);
    returns the Response."""
    hs = f["headers"] + ([("Transfer-Encoding", "chunked")] if chunk else [])
    data = build_request("POST", f["path"], hs, None if chunk else f["body"])
    if chunk:
        data += chunked(f["body"], 4096)
    with Client(port, timeout=timeout) as c:
        for k in range(0, len(data), piece):
            c.send(data[k:k + piece])
        return c.read_response("POST")


def assert_arrived_in_order(got, sent):
    """GOT (upstream records) is SENT (forms), one each, in order, with the
    body and the end-to-end headers byte-identical."""
    assert [r["path"] for r in got] == [f["path"] for f in sent], \
        ([r["path"] for r in got][:20], [f["path"] for f in sent][:20])
    for r, f in zip(got, sent):
        assert r["body"] == f["body"], f["path"]
        for k, v in f["headers"]:
            assert recorded_header(r, k) == v, (f["path"], k, recorded_header(r, k), v)
        assert recorded_header(r, "Content-Length") == str(len(f["body"]))


def test_hundreds_over_five_projects_arrive_once_in_order(rig):
    """Five projects, each from its own thread (so its acceptance order is
    defined), some chunked, three of 10 MiB: after `switch new` each arrives
    once, in the order of its 201s, byte-identical."""
    per = 30 if SANITIZED else 60
    projects = ["p%d" % k for k in range(5)]
    big = {("p0", 10), ("p2", per // 2), ("p4", per - 5)}
    proxy, admin, old, new = rig()
    assert admin.maintenance(True).status == 200
    acked = {p: [] for p in projects}
    errors = []

    def device(p):
        try:
            for i in range(per):
                f = form(p, i, extra=b"B" * (10 << 20) if (p, i) in big else b"s%d" % i * (i % 50))
                r = send(proxy.port, f, chunk=(i % 7 == 3))
                assert r.status == 201, (f["path"], r)
                acked[p].append(f)           # the order of this project's 201s
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append((p, e))

    threads = [threading.Thread(target=device, args=(p,)) for p in projects]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)
    total = per * len(projects)
    assert spool_totals(admin)["records"] == total
    assert not new.records() and not old.records()
    assert admin.switch("new", force=True).status == 200
    t0 = time.monotonic()
    wait_for(lambda: spool_totals(admin)["records"] == 0, 60, what="the spool drained")
    got = new.records()
    print("%d forms (%d bytes) replayed in %.2fs" % (len(got), sum(len(r["body"]) for r in got),
                                                   time.monotonic() - t0))
    assert len(got) == total, len(got)
    for p in projects:
        assert_arrived_in_order(new.records("/a/%s/" % p), acked[p])
    st = spool_totals(admin)
    assert (st["records"], st["bytes"], st["dead_letters"]) == (0, 0, 0), st
    assert not old.records()


def restart_after_kill(harness, proxy):
    """SIGKILL (the proxy must still be running: a crash of its own is a
    failure), then a start on the same config, port and spool dir."""
    assert proxy.alive(), "cutover died on its own:\n" + proxy.stderr()[-3000:]
    os.kill(proxy.pid, signal.SIGKILL)
    assert proxy.wait(10) == -signal.SIGKILL
    proxy.checked = True
    c = Cutover(harness.dir, proxy.config_path.read_text(), wait_ready=False, port=proxy.port)
    harness.proxies.append(c)
    c.wait_ready()
    return c


def test_kill_9_loop_loses_no_acknowledged_submission(rig, harness):
    """Each cycle: devices submit from many threads (some bodies large
    enough to be mid-upload), then SIGKILL and a restart on the same spool.
    Every third cycle from the second on kills during a replay instead
    (scope switched to new, the upstream slow). At the end every instanceID
    that got a 2xx arrives, none arrives that was never sent or torn.
    The ASan build runs 30 cycles of 12 threads (each start is slower there)."""
    cycles = 30 if SANITIZED else 50
    threads_n = 12 if SANITIZED else 24
    rng = random.Random(14)
    slow = {"delay": 0.0}

    def script(rec):
        return 201, [], b"", slow["delay"]

    proxy, admin, old, new = rig(new_script=script,
                                 spool="retry_min = 0.02; retry_max = 0.1; max_attempts = 1000;")
    assert admin.maintenance(True).status == 200
    projects = ["k0", "k1", "k2", "k3"]
    sent, acked, lock = {}, set(), threading.Lock()
    figures = {"kills_in_replay": 0, "in_flight_at_kill": []}

    def device(cycle, k, port, stop, inflight):
        for n in range(3 if k < 3 else 8):
            if stop.is_set():
                return
            iid = "uuid:c%02d-t%02d-%d" % (cycle, k, n)
            extra = b"L" * (300 << 10) if k < 3 else b""      # past record_buffer: staged
            f = form(projects[k % len(projects)], cycle * 1000 + k * 10 + n, extra, instance=iid)
            with lock:
                sent[iid] = f["body"]
                inflight[0] += 1
            try:
                r = send(port, f, chunk=(k % 5 == 4), piece=16 << 10, timeout=10)
            except Exception:  # noqa: BLE001 - the proxy is gone: no answer
                return
            finally:
                with lock:
                    inflight[0] -= 1
            if 200 <= r.status < 300:
                with lock:
                    acked.add(iid)
            else:
                return

    t_start = time.monotonic()
    for cycle in range(cycles):
        in_replay = cycle % 3 == 1
        if in_replay:
            slow["delay"] = 0.05
            before = len(new.records())
            assert admin.switch("new", force=True).status == 200
            wait_for(lambda: len(new.records()) > before, 10, what="a replay under way")
        stop, inflight = threading.Event(), [0]
        ts = [threading.Thread(target=device, args=(cycle, k, proxy.port, stop, inflight))
              for k in range(threads_n)]
        base = len(acked)
        for t in ts:
            t.start()
        target = rng.randint(3, 30)
        wait_for(lambda: len(acked) - base >= target or not any(t.is_alive() for t in ts),
                 20, interval=0.002, what="acknowledgements in cycle %d" % cycle)
        figures["in_flight_at_kill"].append(inflight[0])
        figures["kills_in_replay"] += in_replay
        proxy = restart_after_kill(harness, proxy)
        stop.set()
        for t in ts:
            t.join(20)
            assert not t.is_alive()
        admin = proxy_admin(proxy)
        if in_replay:
            slow["delay"] = 0.0
            assert admin.maintenance(True).status == 200
    loop_s = time.monotonic() - t_start
    assert admin.switch("new", force=True).status == 200
    wait_for(lambda: spool_totals(admin)["records"] == 0, 90, what="the spool drained")
    arrived = {}
    for r in new.records() + old.records():
        iid = instance_of(r["body"])
        assert iid in sent, ("never sent", r["path"], r["body"][:200])
        assert r["body"] == sent[iid], ("torn", iid, len(r["body"]), len(sent[iid]))
        arrived[iid] = arrived.get(iid, 0) + 1
    missing = sorted(acked - set(arrived))
    unacked = set(sent) - acked
    print("%d cycles in %.1fs (%d during a replay), %d sent, %d acknowledged, "
          "%d in flight at a kill (median), %d unacknowledged of which %d arrived, "
          "%d duplicates, %d torn tails quarantined"
          % (cycles, loop_s, figures["kills_in_replay"], len(sent), len(acked),
             sorted(figures["in_flight_at_kill"])[cycles // 2], len(unacked),
             len(unacked & set(arrived)), sum(v - 1 for v in arrived.values()),
             len(list((harness.dir / "spool" / "quarantine").iterdir()))))
    assert not missing, "%d acknowledged never arrived: %s" % (len(missing), missing[:10])
    assert spool_totals(admin)["dead_letters"] == 0


@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_damaged_segment_is_quarantined_and_the_rest_replays(rig, harness, damage):
    """Segments of 64K hold about three forms: the first one is cut inside
    its last record, or a byte of its middle record's body flips. The start
    goes on, the damage goes to quarantine/ and to stderr (segment and
    offset), and the other forms replay in order, byte-identical."""
    proxy, admin, old, new = rig(spool="segment_bytes = \"64K\"; retry_min = 0.05;")
    assert admin.maintenance(True).status == 200
    forms = []
    for i in range(8):
        f = form("alpha", i, extra=b"d%d" % i * 5000)
        assert send(proxy.port, f).status == 201
        forms.append(f)
    assert not proxy.stop_and_check()
    recs = read_records(harness.dir / "spool")
    assert [r["body"] for r in recs] == [f["body"] for f in forms]
    first = [r for r in recs if r["segment"] == recs[0]["segment"]]
    assert 2 <= len(first) < len(recs), [(r["segment"], r["offset"]) for r in recs]
    seg = harness.dir / "spool" / first[0]["segment"]
    hit = first[-1] if damage == "truncated" else first[len(first) // 2]
    data = bytearray(seg.read_bytes())
    if damage == "truncated":
        data = data[:hit["offset"] + hit["size"] // 2]
    else:
        data[hit["offset"] + hit["size"] - 100] ^= 0x01      # inside the body
    seg.write_bytes(bytes(data))
    lost = forms[recs.index(hit)]

    proxy = Cutover(harness.dir, proxy.config_path.read_text(), wait_ready=False, port=proxy.port)
    harness.proxies.append(proxy)
    proxy.wait_ready()
    admin = proxy_admin(proxy)
    err = proxy.stderr()
    assert seg.name in err and "offset %d" % hit["offset"] in err and "quarantine" in err, err
    quarantined = list((harness.dir / "spool" / "quarantine").iterdir())
    assert len(quarantined) == 1, quarantined
    assert quarantined[0].read_bytes() == bytes(data[hit["offset"]:hit["offset"] + hit["size"]])
    # status tells the operator long after the log line scrolled away
    assert spool_totals(admin)["quarantined"] == {
        "files": 1, "bytes": quarantined[0].stat().st_size}
    assert spool_totals(admin)["records"] == len(forms) - 1
    assert admin.switch("new", force=True).status == 200
    wait_for(lambda: spool_totals(admin)["records"] == 0, 20, what="the spool drained")
    assert_arrived_in_order(new.records(), [f for f in forms if f is not lost])
    assert lost["path"] not in [r["path"] for r in new.records()]


def mount_tmpfs(path, size):
    """Mounts a SIZE tmpfs (0700) on PATH, or skips the test saying why."""
    if os.geteuid() != 0:
        pytest.skip("ENOSPC test needs root to mount a tmpfs (euid %d)" % os.geteuid())
    path.mkdir(mode=0o700)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % size, "tmpfs",
                        str(path)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip("ENOSPC test: mount -t tmpfs failed: %s" % (p.stderr.strip() or p.returncode))


def test_full_disk_refuses_with_503_and_still_replays(rig, harness):
    """spool.dir on a 4 MiB tmpfs, max_bytes far above it: the disk fills
    first. Every answer is 201 or 503 + Retry-After; every 201 arrives after
    `switch new`; once the replay has freed the space the spool takes
    submissions again."""
    d = harness.dir / "spool"
    mount_tmpfs(d, "4m")
    try:
        proxy, admin, old, new = rig(spool='max_bytes = "64M"; max_record_bytes = "2M"; '
                                           "retry_min = 0.05;")
        assert admin.maintenance(True).status == 200
        acked, refused = [], 0
        for i in range(60):
            # 150..450 KiB, some past record_buffer (staged in a temp file)
            f = form("full", i, extra=b"F" * ((150 + 100 * (i % 4)) << 10))
            r = send(proxy.port, f, chunk=(i % 3 == 2))
            if r.status == 201:
                acked.append(f)
                continue
            assert r.status == 503, (f["path"], r)
            assert (r.header("Retry-After") or "").isdigit(), r
            refused += 1
            if refused >= 6:
                break
        # then small ones until even they are refused: the disk is full
        for i in range(60, 400):
            f = form("full", i, extra=b"f" * (3 << 10))
            r = send(proxy.port, f)
            if r.status != 201:
                assert r.status == 503 and (r.header("Retry-After") or "").isdigit(), r
                refused += 1
                break
            acked.append(f)
        assert refused >= 7 and acked, (len(acked), refused)
        print("%d acknowledged, %d refused on a full 4 MiB tmpfs" % (len(acked), refused))
        assert spool_totals(admin)["records"] == len(acked)
        assert [r["body"] for r in read_records(d)] == [f["body"] for f in acked]
        assert not new.records() and not old.records()
        assert admin.switch("new", force=True).status == 200
        wait_for(lambda: spool_totals(admin)["records"] == 0, 20, what="the spool drained")
        assert_arrived_in_order(new.records(), acked)
        # the replay frees the disk (delivered segments are deleted): then,
        # in maintenance again, the spool takes forms
        wait_for(lambda: disk_free(d) >= 3 << 20, 10,
                 what="the delivered records' space back (%d bytes free)" % disk_free(d))
        assert admin.maintenance(True).status == 200
        again = [form("full", 100 + i, extra=b"A" * (400 << 10)) for i in range(4)]
        for f in again:
            r = send(proxy.port, f)
            assert r.status == 201, (f["path"], r, disk_free(d))
        assert spool_totals(admin)["records"] == len(again)
    finally:
        problems = [q for p in harness.proxies for q in p.stop_and_check()]
        subprocess.run(["umount", "-l", str(d)], capture_output=True)
    assert not problems, problems


def disk_free(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def test_connection_dropped_after_the_upstream_stored_the_form(rig):
    """The upstream reads the whole request, stores it and closes without
    an answer (once): the replay sends it again, the upstream answers the
    duplicate 202 (as KoboToolbox does): delivered, no dead letter."""
    dropped = []

    def script(rec):
        if rec["path"].endswith("?n=1") and not dropped:
            dropped.append(rec)
            return None, [], b"", 0
        if rec["path"].endswith("?n=1"):
            return 202, [], b"<OpenRosaResponse>Duplicate Instance</OpenRosaResponse>", 0
        return 201, [], b"", 0

    proxy, admin, old, new = rig(new_script=script)
    assert admin.maintenance(True).status == 200
    forms = [form("kobo", i) for i in range(3)]
    for f in forms:
        assert send(proxy.port, f).status == 201
    assert admin.switch("new", force=True).status == 200
    wait_for(lambda: spool_totals(admin)["records"] - spool_totals(admin)["dead_letters"] == 0,
             10, what="the replay done")
    assert dropped
    assert spool_totals(admin)["dead_letters"] == 0, admin.get("/spool").json
    assert_arrived_in_order(new.records(), [forms[0], forms[1], forms[1], forms[2]])
    assert admin.get("/spool").json["projects"].get("kobo", {}).get("dead_letters", []) == []


def test_409_is_a_dead_letter_and_later_forms_still_arrive(rig):
    """ODK Central / KoboToolbox answer 409 to the same instanceID with other
    bytes: a dead letter at once (status and answer kept), sent once, and
    the project's later forms still arrive, in order."""
    def script(rec):
        if rec["path"].endswith("?n=1"):
            return 409, [], b"<error>A submission already exists with this ID</error>", 0
        return 201, [], b"", 0

    proxy, admin, old, new = rig(new_script=script)
    assert admin.maintenance(True).status == 200
    forms = [form("odk", i) for i in range(4)]
    for f in forms:
        assert send(proxy.port, f).status == 201
    assert admin.switch("new", force=True).status == 200
    wait_for(lambda: spool_totals(admin)["records"] == spool_totals(admin)["dead_letters"] == 1
             and len(new.records()) >= 4, 10, what="three delivered, one dead letter")
    assert_arrived_in_order(new.records(), forms)           # the 409 one sent once
    dead = admin.get("/spool").json["projects"]["odk"]["dead_letters"]
    assert len(dead) == 1 and dead[0]["status"] == 409 and dead[0]["attempts"] == 1, dead
    assert dead[0]["answer"].startswith("<error>A submission already exists"), dead


def test_a_second_window_after_restarts_replays_its_form(rig, harness):
    """One form in a window, delivered; two restarts; one form in the next
    window, a restart before its replay: it still arrives (a record id of
    the first window used again would meet that window's delivered marker)."""
    proxy, admin, old, new = rig()
    first, second = form("win", 1), form("win", 2)
    assert admin.maintenance(True).status == 200
    assert send(proxy.port, first).status == 201
    assert admin.switch("new", force=True).status == 200
    wait_for(lambda: spool_totals(admin)["records"] == 0, 10, what="the first window replayed")
    for _ in range(2):
        proxy = restart_proxy(harness, proxy)
    admin = proxy_admin(proxy)
    assert admin.maintenance(True).status == 200
    assert send(proxy.port, second).status == 201
    proxy = restart_proxy(harness, proxy)
    admin = proxy_admin(proxy)
    assert spool_totals(admin)["records"] == 1, (read_records(harness.dir / "spool"),
                                                 proxy.stderr())
    assert admin.switch("new", force=True).status == 200
    wait_for(lambda: len(new.records()) >= 2, 10, what="the second window's form")
    assert_arrived_in_order(new.records(), [first, second])
