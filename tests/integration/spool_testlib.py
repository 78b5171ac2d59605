"""Spool test furniture shared by test_spool_*.py: a recording upstream
(Recorder), the spool's records read back from its segment files by the
documented format, and a submission helper. Loopback only; standard library."""

import hashlib
import socket
import struct
import threading
import time
from pathlib import Path

from cutover_testlib import (HOST, Client, build_request, loopback_listener, multipart_submission,
                             request)

BASIC = "Basic ZGV2aWNlOnMzY3JldA=="        # device:s3cret
DATE = "Fri, 04 Dec 2026 15:00:00 GMT"


class Recorder:
    """An upstream on an ephemeral loopback port, a thread per connection,
    keep-alive; records (arrival index, request line, headers, body) and
    answers what SCRIPT(rec) returns: (status, extra headers, body, delay)."""

    def __init__(self, script=None):
        self.script = script or (lambda rec: (201, [], b"<ok/>", 0))
        self.got = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.sock, self.port, self.url = loopback_listener(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(20)
        buf = b""
        try:
            while not self.stop.is_set():
                while b"\r\n\r\n" not in buf:
                    c = conn.recv(65536)
                    if not c:
                        return
                    buf += c
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.split(b"\r\n")
                # "Name: value", or "Name:" for an empty value
                headers = [(k, v.lstrip(" \t")) for k, _, v in
                           (x.decode("latin-1").partition(":") for x in lines[1:])]
                n = 0
                for k, v in headers:
                    if k.lower() == "content-length":
                        n = int(v)
                    assert k.lower() != "transfer-encoding", headers
                while len(buf) < n:
                    c = conn.recv(1 << 20)
                    if not c:
                        return
                    buf += c
                body, buf = buf[:n], buf[n:]
                rec = {"line": lines[0].decode("latin-1"), "headers": headers, "body": body,
                       "path": lines[0].decode("latin-1").split(" ")[1]}
                if rec["line"].startswith("GET / "):
                    # cutover's periodic health check: answered, not recorded
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                    continue
                with self.lock:
                    rec["n"] = len(self.got)
                    self.got.append(rec)
                status, extra, answer, delay = self.script(rec)
                if delay:
                    time.sleep(delay)
                if status is None:
                    conn.close()          # a dropped connection
                    return
                out = b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n" % (status, len(answer))
                for k, v in extra:
                    out += ("%s: %s\r\n" % (k, v)).encode()
                conn.sendall(out + b"\r\n" + answer)
        except OSError:
            pass
        finally:
            conn.close()

    def records(self, part="/receiver/"):
        with self.lock:
            return [r for r in self.got if part in r["path"]]

    def close(self):
        self.stop.set()
        self.sock.close()


def recorded_header(rec, name):
    """The first value of header NAME in a Recorder record, or None."""
    vals = [v for k, v in rec["headers"] if k.lower() == name.lower()]
    return vals[0] if vals else None



def read_records(spool_dir):
    """Every record of every segment: dicts with id, project, route, head,
    body, segment (file name), offset and size in it; the header and data
    sums are checked (SHA-256, truncated)."""
    out = []
    for seg in sorted(Path(spool_dir).glob("seg-*.spool")):
        data = seg.read_bytes()
        off = 0
        while off < len(data):
            hdr = data[off:off + 64]
            assert len(hdr) == 64 and hdr[:4] == b"CSPL", (seg, off)
            assert hashlib.sha256(hdr[:56]).digest()[:8] == hdr[56:64], (seg, off)
            rid, accepted, body_len, head_len, plen, rlen = struct.unpack_from("<QqQIHH", hdr, 8)
            p = off + 64
            project = data[p:p + plen]
            route = data[p + plen:p + plen + rlen]
            h0 = p + plen + rlen
            head = data[h0:h0 + head_len]
            body = data[h0 + head_len:h0 + head_len + body_len]
            assert len(body) == body_len, (seg, off)
            assert hashlib.sha256(project + route + head + body).digest()[:16] == hdr[40:56]
            out.append({"id": rid, "project": project.decode(), "route": route.decode(),
                        "head": head, "body": body, "segment": seg.name, "offset": off,
                        "size": h0 + head_len + body_len - off})
            off = h0 + head_len + body_len
    return out


def form_headers(ctype, i):
    return [("Content-Type", ctype), ("Authorization", BASIC), ("X-OpenRosa-Version", "1.0"),
            ("Date", DATE), ("X-Seq", str(i))]


def chunked(body, size=1000):
    """BODY in the chunked transfer coding, SIZE bytes a chunk."""
    out = b""
    for i in range(0, len(body), size):
        out += b"%x\r\n" % len(body[i:i + size]) + body[i:i + size] + b"\r\n"
    return out + b"0\r\n\r\n"


def submit(port, project, i, extra=b"", chunk=False, expect=201, instance=None):
    """POSTs a form of PROJECT (number I) and checks its status is EXPECT;
    returns what an upstream must get: path, content type, body."""
    ctype, form = multipart_submission(instance or "uuid:%s-%03d" % (project, i), extra=extra)
    path = "/a/%s/receiver/?n=%d" % (project, i)
    hs = form_headers(ctype, i)
    if chunk:
        with Client(port, timeout=30) as c:
            c.send(build_request("POST", path, hs + [("Transfer-Encoding", "chunked")], None)
                   + chunked(form))
            r = c.read_response("POST")
    else:
        r = request(port, "POST", path, hs, form, timeout=30)
    assert r.status == expect, r
    return {"path": path, "ctype": ctype, "body": form}


def spool_totals(admin, project=None):
    st = admin.status()
    return st["spool"] if project is None else st["projects"].get(project, {}).get("spool")
