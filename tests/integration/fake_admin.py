"""A fake cutover admin API for testing the CLI (`cutover status|switch|...`)
without a running proxy: listens on a unix socket or a loopback TCP port,
records every request, and answers from a table of canned answers.

    with FakeAdmin(unix_path="/tmp/x/admin.sock") as fake:
        fake.answer("POST", "/switch", 200, {"ok": True, ...})
        ... run the CLI with --admin fake.address ...
        req = fake.requests[-1]   # .method .path .headers (lower-case) .json

An answer's `how` selects the framing: "length" (Content-Length), "chunked",
"eof" (no length, close to end), "close" (close without answering) or
"stall" (read the request, never answer)."""

import json
import os
import socket
import threading
import time


class Recorded:
    def __init__(self, method, path, version, headers, body):
        self.method = method
        self.path = path
        self.version = version
        self.headers = headers          # {lower-case name: value}; last one wins
        self.header_list = []           # [(name, value)] as sent
        self.body = body

    @property
    def json(self):
        return json.loads(self.body) if self.body else None

    def __repr__(self):
        return "<%s %s %r>" % (self.method, self.path, self.body)


class FakeAdmin:
    def __init__(self, unix_path=None, token=None):
        self.unix_path = unix_path
        self.token = token
        self.requests = []
        self.answers = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        if unix_path:
            if os.path.exists(unix_path):
                os.unlink(unix_path)
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(unix_path)
            os.chmod(unix_path, 0o600)
            self.address = "unix:" + unix_path
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(("127.0.0.1", 0))
            self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def answer(self, method, path, status, body, how="length", headers=()):
        """Canned answer for METHOD PATH (path with its query). BODY is a
        JSON-able object, or bytes sent as is."""
        with self.lock:
            self.answers[(method, path)] = (status, body, how, list(headers))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.sock.close()
        if self.unix_path and os.path.exists(self.unix_path):
            os.unlink(self.unix_path)

    # ---- server ----

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _read_request(self, conn):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
            if len(data) > 1 << 20:
                return None
        head, rest = data.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, path, version = lines[0].split(" ", 2)
        headers, header_list = {}, []
        for line in lines[1:]:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
            header_list.append((name, value.strip()))
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            rest += chunk
        rec = Recorded(method, path, version, headers, rest[:length])
        rec.header_list = header_list
        return rec

    def _handle(self, conn):
        with conn:
            conn.settimeout(10)
            try:
                rec = self._read_request(conn)
            except (OSError, ValueError):
                return
            if rec is None:
                return
            with self.lock:
                self.requests.append(rec)
                canned = self.answers.get((rec.method, rec.path))
            if self.token is not None and rec.headers.get("authorization") != "Bearer " + self.token:
                canned = (401, {"ok": False, "error": "missing or wrong bearer token"}, "length", [])
            if canned is None:
                canned = (404, {"ok": False, "error": "no such endpoint"}, "length", [])
            status, body, how, extra = canned
            if how == "close":
                return
            if how == "stall":
                self.stop.wait(30)
                return
            payload = body if isinstance(body, bytes) else (json.dumps(body, indent=2) + "\n").encode()
            head = ["HTTP/1.1 %d X" % status, "Date: %s" % time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()),
                    "Content-Type: application/json", "Connection: close"]
            head += ["%s: %s" % kv for kv in extra]
            if how == "length":
                head.append("Content-Length: %d" % len(payload))
                wire = payload
            elif how == "chunked":
                head.append("Transfer-Encoding: chunked")
                wire = b""
                for i in range(0, len(payload), 7):
                    piece = payload[i:i + 7]
                    wire += b"%x\r\n%s\r\n" % (len(piece), piece)
                wire += b"0\r\n\r\n"
            else:  # eof
                wire = payload
            try:
                conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + wire)
            except OSError:
                pass
