"""A real headless browser for the dashboard tests: Debian's chromium, run
two ways, standard library only.

- render(url): `chromium --dump-dom`, the DOM once the page's scripts have
  run (a virtual time budget lets its first fetch finish), parsed into
  Nodes;
- Browser(url): chromium with its DevTools protocol on a loopback port, to
  read the live page again and again (Runtime.evaluate over a websocket)
  while the test changes what the page shows.

Chromium is kept off every network but loopback: names do not resolve and
everything else goes to a proxy that does not exist (loopback is never
proxied); background services are switched off.
"""

import base64
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import urllib.request
from html.parser import HTMLParser

from cutover_testlib import HOST, wait_for

ISOLATION = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--no-default-browser-check", "--disable-extensions", "--disable-sync",
    "--disable-background-networking", "--disable-component-update",
    "--disable-default-apps", "--disable-domain-reliability", "--no-pings",
    "--metrics-recording-only", "--dns-prefetch-disable", "--mute-audio",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE %s" % HOST,
    "--proxy-server=%s:9" % HOST,
]


def chromium_path():
    for name in ("chromium", "chromium-browser"):
        p = shutil.which(name)
        if p:
            return p
    return None


# ---- a small DOM from chromium's serialisation ----

class Node:
    def __init__(self, tag, attrs, parent):
        self.tag = tag
        self.attrs = {k: (v if v is not None else "") for k, v in attrs}
        self.parent = parent
        self.children = []

    def text(self):
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self):
        yield self
        for c in self.children:
            if isinstance(c, Node):
                yield from c.iter()

    def find_all(self, tag=None, **attrs):
        """Descendants (self included) with TAG and every attribute in ATTRS
        (data_k= stands for data-k=)."""
        want = {k.replace("_", "-"): v for k, v in attrs.items()}
        return [n for n in self.iter() if (tag is None or n.tag == tag)
                and all(n.attrs.get(k) == v for k, v in want.items())]

    def find(self, tag=None, **attrs):
        found = self.find_all(tag, **attrs)
        return found[0] if found else None

    def __repr__(self):
        return "<%s %r>" % (self.tag, self.attrs)


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class _Parser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", [], None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        n = Node(tag, attrs, self.cur)
        self.cur.children.append(n)
        if tag not in VOID:
            self.cur = n

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def parse_dom(text):
    p = _Parser()
    p.feed(text)
    p.close()
    return p.root


def render(url, profile_dir, budget_ms=3000, timeout=40):
    """The DOM of URL after its scripts ran for BUDGET_MS of virtual time."""
    exe = chromium_path()
    assert exe, "no chromium"
    p = subprocess.run([exe] + ISOLATION + ["--user-data-dir=%s" % profile_dir, "--dump-dom",
                                            "--virtual-time-budget=%d" % budget_ms, url],
                       capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    assert p.returncode == 0 and "<html" in p.stdout, (p.returncode, p.stderr[-3000:])
    return parse_dom(p.stdout)


# ---- the DevTools protocol over a websocket (RFC 6455, client side) ----

class _WebSocket:
    def __init__(self, url, timeout):
        assert url.startswith("ws://"), url
        hostport, _, path = url[5:].partition("/")
        host, _, port = hostport.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n" % (path, hostport, key)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            assert chunk, "the DevTools socket closed during the handshake"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head[:200]
        self.buf = head.split(b"\r\n\r\n", 1)[1]

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            assert chunk, "the DevTools socket closed"
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, text):
        data = text.encode()
        n = len(data)
        head = bytes([0x81])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv(self):
        """The next whole text message (control frames skipped)."""
        parts = []
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            data = self._read(n)
            if mask:
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
            op = b0 & 0x0F
            if op in (0x1, 0x0):
                parts.append(data)
                if b0 & 0x80:
                    return b"".join(parts).decode()
            elif op == 0x8:
                raise AssertionError("the DevTools socket closed")

    def close(self):
        self.sock.close()


class Browser:
    """Headless chromium showing URL, driven over its DevTools protocol."""

    def __init__(self, url, profile_dir, timeout=20.0):
        exe = chromium_path()
        assert exe, "no chromium"
        os.makedirs(profile_dir, exist_ok=True)
        port_file = os.path.join(profile_dir, "DevToolsActivePort")
        if os.path.exists(port_file):
            os.unlink(port_file)
        self.proc = subprocess.Popen(
            [exe] + ISOLATION + ["--user-data-dir=%s" % profile_dir,
                                 "--remote-debugging-address=%s" % HOST,
                                 "--remote-debugging-port=0", url],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True)
        self.ws = None
        self.n = 0
        try:
            wait_for(lambda: os.path.exists(port_file) and
                     len(open(port_file).read().split("\n")) >= 2, timeout,
                     interval=0.05, what="chromium's DevTools port")
            port = int(open(port_file).read().split("\n")[0])
            ws_url = wait_for(lambda: self._page_ws(port), timeout, interval=0.05,
                              what="chromium's page target")
            self.ws = _WebSocket(ws_url, timeout)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _page_ws(port):
        try:
            with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                    "http://%s:%d/json/list" % (HOST, port), timeout=5) as r:
                targets = json.loads(r.read())
        except OSError:
            return None         # not listening yet
        for t in targets:
            if t.get("type") == "page" and t.get("webSocketDebuggerUrl"):
                return t["webSocketDebuggerUrl"]
        return None

    def call(self, method, **params):
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            m = json.loads(self.ws.recv())
            if m.get("id") == self.n:
                assert "error" not in m, m
                return m["result"]

    def eval(self, expression):
        """The value of a JavaScript EXPRESSION in the page (JSON-able)."""
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in r, r
        return r["result"].get("value")

    def close(self):
        if self.ws:
            self.ws.close()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc.stderr.close()
