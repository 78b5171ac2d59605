#!/usr/bin/env python3
"""A demo upstream that speaks enough OpenRosa to be realistic.

Test furniture for cutover (not the product): it stands in for the "old"
hosted environment and the "new" local server in `make run` and in the
integration tests. Python 3 standard library only.

    openrosa_upstream.py --port 18081 --name old [--host 127.0.0.1]
                         [--record FILE] [--quiet] [--keepalive-timeout S]

--port 0 picks a free port; the chosen one is printed on stdout as
"listening on HOST:PORT" once the socket accepts connections.
--keepalive-timeout S closes connections idle for S seconds (default 300).

OpenRosa / CommCare endpoints:
  GET  /a/<domain>/phone/restore/      200, OpenRosaResponse restore payload (XML)
  POST /a/<domain>/receiver/...        multipart/form-data with xml_submission_file
                                       -> 201, <message nature="submit_success">
  HEAD /a/<domain>/receiver/...        204 + X-OpenRosa-Accept-Content-Length
  GET  /a/<domain>/phone/heartbeat/... 200, small JSON
  GET  /                               200 "ok" (health)

Helpers for tests:
  GET  /__stats                 {"connections": accepted TCP connections, "requests": N}
  GET  /bytes/<n>[?chunked=1]   n bytes, streamed (Content-Length, or chunked, or
                                with ?close=1 delimited by closing the connection);
                                &trailer=1 ends the chunked body with a trailer field
  GET  /hop-response            a response carrying hop-by-hop headers
  POST /sink                    reads the body (Content-Length or chunked), answers
                                {"received": n, "sha256": "..."}; ?pause=S[&pause_after=N]
                                stops reading for S seconds after N bytes (default 1 MiB)
  ANY  /echo                    the request (method, path, headers) as JSON
  GET  /slow?delay=S            sleeps S seconds, then 200
  ANY  /bad-response?kind=K     a malformed response (cl-te, dup-cl, garbage, bare-lf,
                                obs-fold, bad-status, nul-in-header, huge-head, bad-chunk)
  GET  /truncated/<n>?send=m    announces Content-Length n, sends m bytes, closes
  ANY  /close-before-response   closes the connection without answering
  ANY  /reset                   resets the connection (SO_LINGER 0)

Every response carries "X-Upstream: <name>". With --record FILE, every request
received appends one JSON line {method, path, version, headers: [[name, value]...],
body_len, body_sha256, complete}; a request whose body was cut short or
malformed is recorded with complete=false, and a request line this server could
not parse is recorded as {"error": ..., "raw": ...}, so a test can assert that
nothing at all of a request reached the upstream.
"""

import argparse
import hashlib
import http.client
import http.server
import json
import os
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.parse
import uuid
from email.parser import BytesParser
from email.policy import HTTP as HTTP_POLICY

OPENROSA_VERSION = "3.0"
ACCEPT_CONTENT_LENGTH = 104857600      # 100 MiB, what CommCare HQ announces
MAX_SUBMISSION = ACCEPT_CONTENT_LENGTH
IO_CHUNK = 64 * 1024
PATTERN = (b"cutover-demo-upstream-0123456789abcdefghijklmnopqrstuvwxyz\n" * 1200)[:IO_CHUNK]

# A proxy under test may send many headers; keep the stdlib's parser out of the way.
http.client._MAXHEADERS = 1000


class BodyError(Exception):
    """The request body was malformed or cut short."""


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.connections = 0
        self.requests = 0

    def add(self, connections=0, requests=0):
        with self.lock:
            self.connections += connections
            self.requests += requests

    def snapshot(self):
        with self.lock:
            return {"connections": self.connections, "requests": self.requests}


class Recorder:
    def __init__(self, path):
        self.lock = threading.Lock()
        self.f = open(path, "a", encoding="utf-8") if path else None

    def write(self, obj):
        if self.f is None:
            return
        line = json.dumps(obj, separators=(",", ":")) + "\n"
        with self.lock:
            self.f.write(line)
            self.f.flush()


class UpstreamServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, addr, name, recorder, quiet):
        if ":" in addr[0]:
            self.address_family = socket.AF_INET6
        self.upstream_name = name
        self.recorder = recorder
        self.quiet = quiet
        self.stats = Stats()
        super().__init__(addr, Handler)

    def server_bind(self):
        # HTTPServer.server_bind() calls getfqdn(), which may wait on DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = host
        self.server_port = port

    def process_request(self, request, client_address):
        self.stats.add(connections=1)
        super().process_request(request, client_address)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "openrosa-demo"
    sys_version = ""
    timeout = 300.0  # socket timeout: bounds an idle keep-alive connection (--keepalive-timeout)

    # ---- plumbing -------------------------------------------------------

    def setup(self):
        super().setup()
        # headers and body go out in separate writes: don't let Nagle hold the body
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):
        if not self.server.quiet:
            sys.stderr.write("[%s] %s %s\n" % (self.server.upstream_name,
                                               self.address_string(), fmt % args))

    def parse_request(self):
        ok = super().parse_request()
        if not ok:
            raw = self.raw_requestline.decode("latin-1", "replace") if self.raw_requestline else ""
            self.server.recorder.write({"error": "unparsable request", "raw": raw})
        return ok

    def handle_one_request(self):
        # Same as the stdlib's, but every method goes through dispatch().
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if len(self.raw_requestline) > 65536:
                self.requestline = ""
                self.request_version = ""
                self.command = ""
                self.server.recorder.write({"error": "request line too long",
                                            "raw": self.raw_requestline[:4096].decode("latin-1")})
                self.send_error(414)
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            self.server.stats.add(requests=1)
            self.dispatch()
            self.wfile.flush()
        except (TimeoutError, socket.timeout) as e:
            self.log_error("Request timed out: %r", e)
            self.close_connection = True
        except (ConnectionError, BrokenPipeError):
            self.close_connection = True

    def end_headers(self):
        self.send_header("X-Upstream", self.server.upstream_name)
        super().end_headers()

    def send_simple(self, status, body=b"", ctype="text/plain; charset=utf-8", headers=()):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if status not in (204, 304) and not (100 <= status < 200):
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)

    def send_json(self, status, obj, headers=()):
        self.send_simple(status, json.dumps(obj) + "\n", "application/json", headers)

    # ---- request bodies -------------------------------------------------

    def body_chunks(self):
        """Yields the request body, decoded, as it arrives. Raises BodyError."""
        te = self.headers.get_all("Transfer-Encoding") or []
        cl = self.headers.get_all("Content-Length") or []
        if te:
            if ",".join(te).strip().lower() != "chunked" or cl:
                raise BodyError("unsupported framing: TE=%r CL=%r" % (te, cl))
            yield from self._chunked()
            return
        if not cl:
            return
        if len(cl) != 1 or not cl[0].strip().isdigit():
            raise BodyError("bad Content-Length %r" % (cl,))
        left = int(cl[0])
        while left > 0:
            data = self.rfile.read1(min(left, IO_CHUNK)) if hasattr(self.rfile, "read1") \
                else self.rfile.read(min(left, IO_CHUNK))
            if not data:
                raise BodyError("body cut short, %d bytes missing" % left)
            left -= len(data)
            yield data

    def _chunked(self):
        while True:
            line = self.rfile.readline(1024)
            if not line.endswith(b"\r\n"):
                raise BodyError("bad chunk line %r" % line[:64])
            size_txt = line[:-2].split(b";", 1)[0].strip()
            try:
                if not size_txt or any(c not in b"0123456789abcdefABCDEF" for c in size_txt):
                    raise ValueError
                size = int(size_txt, 16)
            except ValueError:
                raise BodyError("bad chunk size %r" % line[:64])
            if size == 0:
                break
            left = size
            while left > 0:
                data = self.rfile.read(min(left, IO_CHUNK))
                if not data:
                    raise BodyError("chunk cut short")
                left -= len(data)
                yield data
            if self.rfile.read(2) != b"\r\n":
                raise BodyError("chunk data not followed by CRLF")
        while True:  # trailer section
            line = self.rfile.readline(8192)
            if line == b"\r\n":
                return
            if not line.endswith(b"\r\n"):
                raise BodyError("bad trailer line")

    def read_body(self, keep=False, limit=None, pause_after=None, pause=0.0):
        """Consumes the request body, records the request, returns (n, sha, bytes|None).
        After PAUSE_AFTER bytes, stops reading for PAUSE seconds (backpressure tests).
        On a malformed or short body: records it as incomplete, closes, returns None."""
        h = hashlib.sha256()
        n = 0
        kept = [] if keep else None
        complete = True
        error = None
        try:
            for data in self.body_chunks():
                n += len(data)
                if pause_after is not None and n >= pause_after:
                    pause_after = None
                    time.sleep(pause)
                h.update(data)
                if keep:
                    if limit is not None and n > limit:
                        keep = False
                        kept = None
                    else:
                        kept.append(data)
        except (BodyError, ConnectionError, TimeoutError, socket.timeout) as e:
            complete = False
            error = str(e)
        rec = {
            "method": self.command,
            "path": self.path,
            "version": self.request_version,
            "headers": [[k, v] for k, v in self.headers.raw_items()],
            "body_len": n,
            "body_sha256": h.hexdigest(),
            "complete": complete,
            "time": time.time(),
        }
        if error:
            rec["error"] = error
        self.server.recorder.write(rec)
        if not complete:
            self.close_connection = True
            self.log_error("incomplete request body: %s", error)
            return None
        return n, h.hexdigest(), (b"".join(kept) if kept is not None else None)

    # ---- dispatch -------------------------------------------------------

    def do_GET(self):
        self.dispatch()

    def dispatch(self):
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        query = urllib.parse.parse_qs(url.query)
        parts = path.split("/")
        keep = path.startswith("/a/") and "/receiver" in path and self.command == "POST"
        pause_after, pause = None, 0.0
        if path == "/sink" and "pause" in query:
            pause_after = int(query.get("pause_after", ["1048576"])[0])
            pause = min(float(query["pause"][0]), 60.0)
        body = self.read_body(keep=keep, limit=MAX_SUBMISSION, pause_after=pause_after, pause=pause)
        if body is None:
            return
        if self.request_version == "HTTP/1.0" and \
                self.headers.get("Connection", "").lower() != "keep-alive":
            self.close_connection = True

        if path == "/__stats":
            return self.send_json(200, self.server.stats.snapshot())
        if path == "/" or path == "/health":
            return self.send_simple(200, "ok\n")
        if path.startswith("/bytes/"):
            return self.serve_bytes(parts[2] if len(parts) > 2 else "",
                                    query.get("chunked", ["0"])[0] == "1",
                                    query.get("close", ["0"])[0] == "1",
                                    query.get("trailer", ["0"])[0] == "1")
        if path == "/hop-response":
            return self.send_simple(200, "hop\n", headers=[
                ("Connection", "X-Hop-Named"), ("X-Hop-Named", "must-not-pass"),
                ("Keep-Alive", "timeout=5"), ("Proxy-Connection", "keep-alive"),
                ("Upgrade", "h2c"), ("Trailer", "X-Nothing"), ("X-End-To-End", "must-pass")])
        if path == "/sink":
            n, sha, _ = body
            return self.send_json(200, {"received": n, "sha256": sha})
        if path == "/echo":
            return self.send_json(200, {
                "method": self.command, "path": self.path, "version": self.request_version,
                "headers": [[k, v] for k, v in self.headers.raw_items()],
                "body_len": body[0], "body_sha256": body[1],
                "upstream": self.server.upstream_name})
        if path == "/slow":
            try:
                delay = min(float(query.get("delay", ["1"])[0]), 120.0)
            except ValueError:
                delay = 1.0
            time.sleep(delay)
            return self.send_simple(200, "slept %.3f\n" % delay)
        if path == "/bad-response":
            return self.bad_response(query.get("kind", [""])[0])
        if path.startswith("/truncated/"):
            return self.truncated(parts[2] if len(parts) > 2 else "0",
                                  int(query.get("send", ["0"])[0]))
        if path == "/close-before-response":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if path == "/reset":
            self.close_connection = True
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
            return
        if len(parts) >= 4 and parts[1] == "a" and parts[2]:
            return self.openrosa(parts[2], parts[3:], body)
        return self.send_simple(404, "not found: %s\n" % path)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_GET

    # ---- generic helpers ------------------------------------------------

    def serve_bytes(self, n_txt, chunked, by_close=False, trailer=False):
        try:
            total = int(n_txt)
            if total < 0:
                raise ValueError
        except ValueError:
            return self.send_simple(400, "bad size\n")
        if by_close:                 # no Content-Length, no chunked: the body ends at close
            chunked = False
            self.close_connection = True
        if chunked and self.request_version == "HTTP/1.0":
            chunked = False          # a 1.0 client knows no chunked: delimit by close
            by_close = True
            self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif not by_close:
            self.send_header("Content-Length", str(total))
        self.end_headers()
        if self.command == "HEAD":
            return
        left = total
        view = memoryview(PATTERN)
        while left > 0:
            k = min(left, IO_CHUNK)
            if chunked:
                self.wfile.write(b"%x\r\n" % k)
                self.wfile.write(view[:k])
                self.wfile.write(b"\r\n")
            else:
                self.wfile.write(view[:k])
            left -= k
        if chunked:
            self.wfile.write(b"0\r\nX-Checksum: demo\r\n\r\n" if trailer else b"0\r\n\r\n")

    BAD_RESPONSES = {
        "cl-te": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "dup-cl": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "garbage": b"NOT HTTP AT ALL\r\n\r\n",
        "bare-lf": b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
        "obs-fold": b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
        "bad-status": b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok",
        "nul-in-header": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok",
        "huge-head": b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-Pad-%04d: %s\r\n" % (i, b"p" * 1000)
                                                   for i in range(300)) + b"Content-Length: 2\r\n\r\nok",
        "bad-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n",
    }

    def bad_response(self, kind):
        """Writes a malformed response head (or body), then closes."""
        raw = self.BAD_RESPONSES.get(kind)
        if raw is None:
            return self.send_simple(400, "unknown kind %r\n" % kind)
        self.close_connection = True
        self.wfile.write(raw)
        self.wfile.flush()
        try:
            self.connection.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def truncated(self, n_txt, send):
        """Announces Content-Length N, sends SEND bytes, then closes."""
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", n_txt)
        self.end_headers()
        self.wfile.write(PATTERN[:send] if send <= len(PATTERN) else b"t" * send)
        self.wfile.flush()
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ---- OpenRosa -------------------------------------------------------

    def openrosa_headers(self):
        return [("X-OpenRosa-Version", OPENROSA_VERSION)]

    def openrosa(self, domain, rest, body):
        section = rest[0] if rest else ""
        sub = rest[1] if len(rest) > 1 else ""
        if section == "receiver":
            if self.command == "HEAD":
                return self.send_simple(204, headers=self.openrosa_headers() + [
                    ("X-OpenRosa-Accept-Content-Length", str(ACCEPT_CONTENT_LENGTH))])
            if self.command == "POST":
                return self.submission(domain, body[2])
            return self.send_simple(405, "method not allowed\n",
                                    headers=[("Allow", "HEAD, POST")])
        if section == "phone" and sub == "restore" and self.command in ("GET", "HEAD"):
            return self.send_simple(200, restore_payload(domain, self.server.upstream_name),
                                    "text/xml; charset=utf-8", self.openrosa_headers())
        if section == "phone" and sub == "heartbeat" and self.command in ("GET", "HEAD"):
            return self.send_json(200, {
                "app_id": rest[2] if len(rest) > 2 and rest[2] else "demo-app",
                "latest_apk_version": {"value": "2.54.0"},
                "latest_ccz_version": {"value": 42, "force_by_date": None},
                "served_by": self.server.upstream_name,
            })
        return self.send_simple(404, "not found\n")

    def submission(self, domain, raw):
        ctype = self.headers.get("Content-Type", "")
        if raw is None:
            return self.openrosa_message(413, "submit_error", "Submission too large")
        if not ctype.lower().startswith("multipart/form-data"):
            return self.openrosa_message(400, "submit_error",
                                         "Expected multipart/form-data, got %r" % ctype)
        msg = BytesParser(policy=HTTP_POLICY).parsebytes(
            b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + raw)
        xml = None
        attachments = 0
        if msg.is_multipart():
            for part in msg.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if name == "xml_submission_file":
                    xml = part.get_payload(decode=True)
                elif name:
                    attachments += 1
        if not xml:
            return self.openrosa_message(400, "submit_error",
                                         "No xml_submission_file in the submission")
        return self.openrosa_message(201, "submit_success",
                                     "   √   Thanks for submitting to %s (%s), %d bytes, %d attachments."
                                     % (domain, self.server.upstream_name, len(xml), attachments))

    def openrosa_message(self, status, nature, text):
        body = ('<OpenRosaResponse xmlns="http://openrosa.org/http/response">'
                '<message nature="%s">%s</message></OpenRosaResponse>\n'
                % (nature, xml_escape(text)))
        self.send_simple(status, body, "text/xml; charset=utf-8", self.openrosa_headers())


def xml_escape(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def restore_payload(domain, upstream):
    d = xml_escape(domain)
    user_id = uuid.uuid5(uuid.NAMESPACE_URL, "user/" + domain).hex
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    cases = []
    for i, (name, village) in enumerate([("Amina Diallo", "Kati"), ("Jean Mukasa", "Gulu"),
                                         ("Priya Nair", "Alappuzha")]):
        case_id = uuid.uuid5(uuid.NAMESPACE_URL, "case/%s/%d" % (domain, i))
        cases.append(
            '  <case case_id="%s" date_modified="%s" user_id="%s" '
            'xmlns="http://commcarehq.org/case/transaction/v2">\n'
            '    <create><case_type>household</case_type><case_name>%s</case_name>'
            '<owner_id>%s</owner_id></create>\n'
            '    <update><village>%s</village><visit_count>%d</visit_count></update>\n'
            '  </case>\n' % (case_id, now, user_id, name, user_id, village, i + 1))
    return (
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        '<OpenRosaResponse xmlns="http://openrosa.org/http/response" items="%d">\n'
        '  <message nature="ota_restore_success">Successfully restored account demo from %s!</message>\n'
        '  <Sync xmlns="http://commcarehq.org/sync"><restore_id>%s</restore_id></Sync>\n'
        '  <Registration xmlns="http://openrosa.org/user/registration">\n'
        '    <username>demo@%s.commcarehq.org</username>\n'
        '    <password>sha256$demo$0000</password>\n'
        '    <uuid>%s</uuid>\n'
        '    <date>2024-01-01</date>\n'
        '    <user_data><data key="commcare_project">%s</data></user_data>\n'
        '  </Registration>\n'
        '%s'
        '</OpenRosaResponse>\n'
        % (len(cases) + 1, upstream, uuid.uuid4().hex, d, user_id, d, "".join(cases)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True, help="TCP port, 0 = any free port")
    ap.add_argument("--name", required=True, help="upstream name sent as X-Upstream (old|new)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--record", metavar="FILE", help="append one JSON line per request received")
    ap.add_argument("--quiet", action="store_true", help="no per-request log on stderr")
    ap.add_argument("--keepalive-timeout", type=float, default=300.0, metavar="SECONDS",
                    help="close a client connection idle (or stalled) this long (default 300)")
    args = ap.parse_args(argv)
    Handler.timeout = args.keepalive_timeout

    srv = UpstreamServer((args.host, args.port), args.name, Recorder(args.record), args.quiet)
    host, port = srv.server_address[:2]
    print("listening on %s:%d" % (host, port), flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
    return 0


if __name__ == "__main__":
    import signal
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    sys.exit(main())
