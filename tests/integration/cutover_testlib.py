"""Test furniture for cutover's integration tests: processes (demo upstreams,
nginx, the proxy), a raw-socket HTTP/1.1 client, the upstream's record file,
and RSS sampling. Python 3 standard library only; loopback only; every wait
is bounded by a deadline."""

import http.client
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "tests" / "demo" / "openrosa_upstream.py"
# absolute: processes are started with their test directory as cwd
CUTOVER_BIN = os.path.abspath(os.environ.get("CUTOVER_BIN", str(REPO / "build" / "cutover")))
NGINX_BIN = os.environ.get("NGINX_BIN", "/usr/sbin/nginx")
SANITIZED = os.environ.get("CUTOVER_SANITIZED") == "1"
HOST = "127.0.0.1"
HEALTH_PATH = "/.well-known/cutover/health"
# Under ASan everything is slower; stretch start-up deadlines, not assertions.
START_TIMEOUT = 30.0 if SANITIZED else 10.0
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                     "UndefinedBehaviorSanitizer", "ThreadSanitizer")

MINIMAL_CONFIG = """\
listen = ( { address = "127.0.0.1:18080"; } );
admin = { address = "unix:/tmp/cutover-test/admin.sock"; };
upstreams = {
  old = { url = "http://127.0.0.1:18081"; };
  new = { url = "http://127.0.0.1:18082"; };
};
state_file = "/tmp/cutover-test/state.json";
journal_file = "/tmp/cutover-test/journal.log";
spool = { dir = "/tmp/cutover-test/spool"; };
routes = (
  { name = "submit";  match = { methods = ["POST", "HEAD"]; path = "^/a/([^/]+)/receiver/"; }; project = 1; spool = true; },
  { name = "restore"; match = { path = "^/a/([^/]+)/phone/restore/"; }; project = 1; },
  { name = "project"; match = { path = "^/a/([^/]+)/"; }; project = 1; },
  { name = "default"; }
);
"""

ROUTES = """\
routes = (
  { name = "submit";  match = { methods = ["POST", "HEAD"]; path = "^/a/([^/]+)/receiver/"; }; project = 1; spool = true; },
  { name = "restore"; match = { path = "^/a/([^/]+)/phone/restore/"; }; project = 1; },
  { name = "project"; match = { path = "^/a/([^/]+)/"; }; project = 1; },
  { name = "default"; }
);
"""


class Deadline:
    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def left(self):
        return max(0.0, self.end - time.monotonic())

    def expired(self):
        return time.monotonic() >= self.end


def wait_for(pred, timeout, interval=0.02, what="condition"):
    """Polls PRED until it returns a true value (returned) or TIMEOUT passes."""
    d = Deadline(timeout)
    while True:
        v = pred()
        if v:
            return v
        if d.expired():
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def free_port():
    """An ephemeral loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def can_connect(port, timeout=0.2, host=HOST):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS for pid %d" % pid)


class RssSampler:
    """Samples a process's VmRSS in a thread until stopped; .max is the peak."""

    def __init__(self, pid, interval=0.02):
        self.pid = pid
        self.interval = interval
        self.max = rss_bytes(pid)
        self.samples = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.max = max(self.max, rss_bytes(self.pid))
                self.samples += 1
            except (OSError, AssertionError):
                return
            self._stop.wait(self.interval)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(5)


# ---------------------------------------------------------------------------
# HTTP client over a raw socket


class Response:
    def __init__(self, version, status, reason, headers):
        self.version = version          # "HTTP/1.1"
        self.status = status
        self.reason = reason
        self.headers = headers          # [(name, value)] in order
        self.body = b""
        self.body_len = 0
        self.chunked = False
        self.informational = []         # 1xx responses seen before this one

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def headers_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<Response %s %d %r headers=%r body[%d]=%r>" % (
            self.version, self.status, self.reason, self.headers, self.body_len, self.body[:200])


class ConnectionClosed(Exception):
    pass


class Client:
    """One client connection; reads are buffered and bounded by TIMEOUT."""

    def __init__(self, port, timeout=10.0, host=HOST):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self, timeout=None):
        """Reads more bytes into the buffer; False at EOF (or reset)."""
        if self.eof:
            return False
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        try:
            data = self.sock.recv(1 << 20)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_until(self, sep, limit=1 << 20):
        while True:
            i = self.buf.find(sep)
            if i >= 0:
                out = bytes(self.buf[:i + len(sep)])
                del self.buf[:i + len(sep)]
                return out
            if len(self.buf) > limit:
                raise AssertionError("no %r within %d bytes" % (sep, limit))
            if not self._fill():
                raise ConnectionClosed("connection closed; have %r" % bytes(self.buf[:200]))

    def read_exact(self, n):
        while len(self.buf) < n:
            if not self._fill():
                raise ConnectionClosed("connection closed after %d of %d bytes" % (len(self.buf), n))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_head(self):
        raw = self.read_until(b"\r\n\r\n", limit=256 * 1024)
        lines = raw[:-4].decode("latin-1").split("\r\n")
        m = re.match(r"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", lines[0])
        if not m:
            raise AssertionError("bad status line %r" % lines[0])
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or name != name.strip() or not name:
                raise AssertionError("bad response header line %r" % line)
            headers.append((name, value.strip(" \t")))
        return Response(m.group(1), int(m.group(2)), m.group(3) or "", headers)

    def read_response(self, method="GET", sink=None, keep_body=True):
        """Reads one final response (1xx ones are collected in .informational).
        SINK(bytes) receives the body as it arrives if given."""
        infos = []
        while True:
            r = self.read_head()
            if 100 <= r.status < 200 and r.status != 101:
                infos.append(r)
                continue
            break
        r.informational = infos
        parts = []

        def take(data):
            r.body_len += len(data)
            if sink is not None:
                sink(data)
            elif keep_body:
                parts.append(data)

        te = ",".join(r.headers_all("Transfer-Encoding")).lower().replace(" ", "")
        cls = r.headers_all("Content-Length")
        if method == "HEAD" or r.status in (204, 304):
            pass
        elif te:
            assert te == "chunked", "unexpected response Transfer-Encoding %r" % te
            r.chunked = True
            while True:
                line = self.read_until(b"\r\n", limit=4096)
                size = int(line[:-2].split(b";")[0].strip(), 16)
                if size == 0:
                    while self.read_until(b"\r\n", limit=65536) != b"\r\n":
                        pass
                    break
                self._read_body_bytes(size, take)
                assert self.read_exact(2) == b"\r\n", "chunk not followed by CRLF"
        elif cls:
            assert len(set(cls)) == 1, "several Content-Length in response: %r" % cls
            self._read_body_bytes(int(cls[0]), take)
        else:
            while True:                 # delimited by close
                if self.buf:
                    data = bytes(self.buf)
                    self.buf.clear()
                    take(data)
                if not self._fill():
                    break
        r.body = b"".join(parts)
        return r

    def _read_body_bytes(self, n, take):
        while n > 0:
            if not self.buf and not self._fill():
                raise ConnectionClosed("body cut short, %d bytes missing" % n)
            k = min(n, len(self.buf))
            take(bytes(self.buf[:k]))
            del self.buf[:k]
            n -= k

    def request(self, method, path, headers=None, body=None, version="HTTP/1.1",
                host="cutover.test", keep_body=True, sink=None):
        self.send(build_request(method, path, headers, body, version, host))
        return self.read_response(method, sink=sink, keep_body=keep_body)

    def closed_within(self, timeout):
        """True if the peer closes (EOF/RST) within TIMEOUT with nothing more
        sent; raises if more data arrives."""
        d = Deadline(timeout)
        while not d.expired():
            try:
                more = self._fill(timeout=max(0.01, d.left()))
            except (socket.timeout, TimeoutError):
                return False
            if not more:
                return True
            raise AssertionError("unexpected bytes after the response: %r" % bytes(self.buf[:300]))
        return False


def build_request(method, path, headers=None, body=None, version="HTTP/1.1", host="cutover.test"):
    headers = list(headers or [])
    names = {k.lower() for k, _ in headers}
    if host is not None and "host" not in names:
        headers.insert(0, ("Host", host))
    if isinstance(body, str):
        body = body.encode()
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        headers.append(("Content-Length", str(len(body))))
    head = "%s %s %s\r\n" % (method, path, version)
    head += "".join("%s: %s\r\n" % (k, v) for k, v in headers) + "\r\n"
    return head.encode("latin-1") + (body or b"")


def request(port, method, path, headers=None, body=None, timeout=10.0, connect_host=HOST, **kw):
    """One request on a fresh connection (to CONNECT_HOST:PORT)."""
    with Client(port, timeout=timeout, host=connect_host) as c:
        return c.request(method, path, headers, body, **kw)


def get(port, path, **kw):
    return request(port, "GET", path, **kw)


# ---------------------------------------------------------------------------
# processes


class Proc:
    def __init__(self, argv, cwd, name, env=None, preexec_fn=None):
        self.name = name
        self.stdout_path = Path(cwd) / ("%s.stdout" % name)
        self.stderr_path = Path(cwd) / ("%s.stderr" % name)
        self.argv = argv
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.p = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                      stderr=err, env=env, start_new_session=True,
                                      preexec_fn=preexec_fn)
        self.pid = self.p.pid

    def alive(self):
        return self.p.poll() is None

    def stderr(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def stdout(self):
        try:
            return self.stdout_path.read_text(errors="replace")
        except OSError:
            return ""

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def wait(self, timeout):
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.alive():
            self.p.kill()
            self.p.wait(5)


class DemoUpstream(Proc):
    def __init__(self, workdir, name, record=True, keepalive_timeout=None, host=HOST, port=0):
        self.record_path = Path(workdir) / ("record-%s.jsonl" % name) if record else None
        argv = [sys.executable, str(DEMO), "--port", str(port), "--name", name, "--quiet",
                "--host", host]
        if record:
            argv += ["--record", str(self.record_path)]
        if keepalive_timeout is not None:
            argv += ["--keepalive-timeout", str(keepalive_timeout)]
        super().__init__(argv, workdir, "upstream-" + name)
        self.upstream_name = name

        def ready():
            if not self.alive():
                raise AssertionError("demo upstream %s exited: %s" % (name, self.stderr()))
            m = re.search(r"listening on [\d.]+:(\d+)", self.stdout())
            return m and can_connect(int(m.group(1)), host=host) and int(m.group(1))
        self.port = wait_for(ready, START_TIMEOUT, what="demo upstream %s" % name)
        self.host = host
        self.url = "http://%s:%d" % (host, self.port)

    def stats(self):
        return get(self.port, "/__stats", connect_host=self.host).json()

    def records(self):
        """Every request line recorded so far (dicts)."""
        if self.record_path is None or not self.record_path.exists():
            return []
        out = []
        with open(self.record_path, encoding="utf-8") as f:
            for line in f:
                if line.endswith("\n"):
                    out.append(json.loads(line))
        return out

    def record_text(self):
        if self.record_path is None or not self.record_path.exists():
            return ""
        return self.record_path.read_text(encoding="utf-8", errors="replace")

    def find(self, path_part):
        return [r for r in self.records() if path_part in (r.get("path") or "")]

    def wait_record(self, path_part, timeout=5.0):
        return wait_for(lambda: self.find(path_part), timeout,
                        what="upstream %s to record %r" % (self.upstream_name, path_part))


class Nginx(Proc):
    """Debian's nginx-light serving files from WORKDIR/www on an ephemeral port."""

    def __init__(self, workdir, files):
        workdir = Path(workdir) / "nginx"
        (workdir / "www").mkdir(parents=True)
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi", "logs"):
            (workdir / sub).mkdir()
        for name, spec in files.items():
            p = workdir / "www" / name
            if isinstance(spec, int):             # sparse file of that size
                with open(p, "wb") as f:
                    f.truncate(spec)
            else:
                p.write_bytes(spec)
        self.port = free_port()
        user = "user %s;\n" % pwd.getpwuid(0).pw_name if os.geteuid() == 0 else ""
        conf = """\
%(user)sworker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %(d)s/client_body;
    proxy_temp_path %(d)s/proxy;
    fastcgi_temp_path %(d)s/fastcgi;
    uwsgi_temp_path %(d)s/uwsgi;
    scgi_temp_path %(d)s/scgi;
    default_type application/octet-stream;
    sendfile on;
    keepalive_requests 100000;
    server {
        listen %(host)s:%(port)d;
        root %(d)s/www;
        location / { }
    }
}
""" % {"user": user, "d": workdir, "host": HOST, "port": self.port}
        (workdir / "nginx.conf").write_text(conf)
        super().__init__([NGINX_BIN, "-p", str(workdir), "-e", str(workdir / "error.log"),
                          "-c", str(workdir / "nginx.conf"), "-g", "daemon off;"],
                         workdir, "nginx")
        self.workdir = workdir

        def ready():
            if not self.alive():
                raise AssertionError("nginx exited: %s %s" % (
                    self.stderr(), (workdir / "error.log").read_text(errors="replace")))
            return can_connect(self.port)
        wait_for(ready, START_TIMEOUT, what="nginx")
        self.url = "http://%s:%d" % (HOST, self.port)

    def stop(self):
        self.signal(signal.SIGQUIT)
        if self.wait(10) is None:
            self.kill()


def render_config(workdir, port, old_url, new_url, old_extra="", new_extra="", extra="",
                  access_log=True, more_listen=(), routes=None, admin=None):
    """A config in the shape of the contract's minimal one, with every path in
    WORKDIR. MORE_LISTEN: extra listen addresses ("[::1]:PORT"); ROUTES: a
    whole "routes = (...);" text replacing the contract's; ADMIN: the inside
    of the admin group replacing the default unix socket in WORKDIR."""
    d = str(workdir)
    addrs = ["%s:%d" % (HOST, port)] + list(more_listen)
    text = "listen = ( %s );\n" % ", ".join('{ address = "%s"; }' % a for a in addrs)
    if admin is None:
        text += "admin = { address = \"unix:%s/admin.sock\"; };\n" % d
    else:
        text += "admin = { %s };\n" % admin
    text += "upstreams = {\n"
    text += "  old = { url = \"%s\"; %s };\n" % (old_url, old_extra)
    text += "  new = { url = \"%s\"; %s };\n" % (new_url, new_extra)
    text += "};\n"
    text += "state_file = \"%s/state.json\";\n" % d
    text += "journal_file = \"%s/journal.log\";\n" % d
    text += "spool = { dir = \"%s/spool\"; };\n" % d
    text += ROUTES if routes is None else routes
    if access_log:
        text += "log = { access = \"%s/access.log\"; };\n" % d
    text += extra
    if not text.endswith("\n"):
        text += "\n"
    return text


class Cutover(Proc):
    def __init__(self, workdir, config_text, name="cutover", wait_ready=True, port=None,
                 preexec_fn=None, env=None):
        self.workdir = Path(workdir)
        self.config_path = self.workdir / ("%s.conf" % name)
        self.config_path.write_text(config_text)
        self.access_log = self.workdir / "access.log"
        self.state_file = self.workdir / "state.json"
        self.port = port
        if not os.access(CUTOVER_BIN, os.X_OK):
            raise AssertionError("no cutover binary at %s (set CUTOVER_BIN)" % CUTOVER_BIN)
        super().__init__([CUTOVER_BIN, "run", "-c", str(self.config_path)], workdir, name,
                         env=env, preexec_fn=preexec_fn)
        self.checked = False
        if wait_ready:
            self.wait_ready()

    def wait_ready(self):
        def ready():
            if not self.alive():
                self.checked = True         # reported here, not again at teardown
                raise AssertionError("cutover exited with %s before it was ready; stderr:\n%s"
                                     % (self.p.returncode, self.stderr()))
            try:
                return get(self.port, HEALTH_PATH, timeout=1.0).status == 200
            except (OSError, AssertionError, ConnectionClosed):
                return False
        wait_for(ready, START_TIMEOUT, interval=0.05, what="cutover health to answer 200")

    def rss(self):
        return rss_bytes(self.pid)

    def sanitizer_report(self):
        err = self.stderr()
        return [m for m in SANITIZER_MARKERS if m in err]

    def stop_and_check(self, timeout=10.0):
        """SIGTERM, then the exit code must be 0 within TIMEOUT and stderr free
        of sanitizer reports. Returns a list of problems (empty = fine)."""
        problems = []
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            rc = self.wait(timeout)
            if rc is None:
                self.kill()
                problems.append("cutover did not exit within %.0fs of SIGTERM" % timeout)
            elif rc != 0:
                problems.append("cutover exited %d after SIGTERM" % rc)
        elif self.p.returncode != 0 and not self.checked:
            problems.append("cutover had already exited with %d" % self.p.returncode)
        found = self.sanitizer_report()
        if found:
            problems.append("sanitizer report in cutover stderr (%s):\n%s"
                            % (", ".join(found), self.stderr()[-6000:]))
        self.checked = True
        return problems


class Harness:
    """Everything one test (or module) starts, torn down in reverse order."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="cutover-it-", dir="/tmp"))
        self.procs = []
        self.proxies = []
        self._upstream_n = 0

    def path(self, name):
        return self.dir / name

    def upstream(self, name="old", record=True, keepalive_timeout=None, host=HOST, port=0):
        u = DemoUpstream(self.dir, name, record, keepalive_timeout, host=host, port=port)
        self.procs.append(u)
        return u

    def nginx(self, files):
        n = Nginx(self.dir, files)
        self.procs.append(n)
        return n

    def config(self, old=None, new=None, port=None, **kw):
        """Config text for a proxy in front of OLD/NEW (objects with .url or URL strings)."""
        port = port or free_port()
        old_url = old if isinstance(old, str) else (old.url if old else "http://%s:%d" % (HOST, free_port()))
        new_url = new if isinstance(new, str) else (new.url if new else "http://%s:%d" % (HOST, free_port()))
        return port, render_config(self.dir, port, old_url, new_url, **kw)

    def proxy(self, old=None, new=None, wait_ready=True, name="cutover", preexec_fn=None,
              env=None, **kw):
        """PREEXEC_FN: run in the child before cutover starts (e.g. setrlimit);
        ENV: its whole environment (default: ours)."""
        port, text = self.config(old, new, **kw)
        c = Cutover(self.dir, text, name=name, wait_ready=False, port=port,
                    preexec_fn=preexec_fn, env=env)
        self.proxies.append(c)
        if wait_ready:
            c.wait_ready()
        return c

    def proxy_start_fails(self, config_text, timeout=10.0, name="cutover-fail"):
        """Starts cutover on CONFIG_TEXT expecting it to refuse to run.
        Returns (exit code, stderr); fails if it is still running after TIMEOUT."""
        c = Cutover(self.dir, config_text, name=name, wait_ready=False)
        rc = c.wait(timeout)
        if rc is None:
            c.kill()
            raise AssertionError("cutover kept running on a config it should refuse")
        found = c.sanitizer_report()
        assert not found, "sanitizer report in cutover stderr:\n" + c.stderr()
        return rc, c.stderr()

    def teardown(self):
        problems = []
        for c in reversed(self.proxies):
            try:
                problems += c.stop_and_check()
            except Exception as e:  # noqa: BLE001 - report, keep tearing down
                problems.append("teardown of cutover failed: %r" % e)
            if problems:
                problems.append("cutover stderr (tail):\n" + c.stderr()[-3000:])
        for p in reversed(self.procs):
            try:
                if isinstance(p, Nginx):
                    p.stop()
                else:
                    p.signal(signal.SIGTERM)
                    if p.wait(5) is None:
                        p.kill()
            except Exception as e:  # noqa: BLE001
                problems.append("teardown of %s failed: %r" % (p.name, e))
        if os.environ.get("CUTOVER_KEEP_TMP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            print("kept test dir %s" % self.dir)
        return problems


def run_cli(args, timeout=20.0, cwd=None):
    """Runs the cutover binary to completion; returns CompletedProcess (text).
    Fails on a sanitizer report in its stderr."""
    p = subprocess.run([CUTOVER_BIN] + list(args), capture_output=True, text=True,
                       timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL, errors="replace")
    found = [m for m in SANITIZER_MARKERS if m in p.stderr]
    assert not found, "sanitizer report from cutover %s:\n%s" % (" ".join(args), p.stderr)
    return p


# ---------------------------------------------------------------------------
# the admin API (control plane)


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over an AF_UNIX stream socket."""

    def __init__(self, path, timeout=10.0):
        super().__init__("cutover-admin", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


class AdminAnswer:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers          # http.client.HTTPMessage
        self.body = body                # bytes
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def __getitem__(self, key):
        return self.json[key]

    def get(self, key, default=None):
        return (self.json or {}).get(key, default)

    def __repr__(self):
        return "<AdminAnswer %d %s>" % (self.status, self.body[:600].decode("utf-8", "replace"))


class Admin:
    """A client of cutover's admin API at ADDRESS ("unix:/path" or "host:port"),
    one request per connection, as the API answers with Connection: close."""

    def __init__(self, address, token=None, timeout=20.0):
        self.address = address
        self.token = token
        self.timeout = timeout

    def _conn(self, timeout):
        if self.address.startswith("unix:"):
            return UnixHTTPConnection(self.address[5:], timeout=timeout)
        host, _, port = self.address.rpartition(":")
        return http.client.HTTPConnection(host.strip("[]"), int(port), timeout=timeout)

    def request(self, method, path, body=None, headers=None, raw=None, timeout=None, token=None):
        """BODY: an object sent as JSON; RAW: bytes sent as is. TOKEN overrides
        the client's (False: send no Authorization at all)."""
        hdrs = dict(headers or {})
        tok = self.token if token is None else token
        if tok:
            hdrs.setdefault("Authorization", "Bearer %s" % tok)
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            hdrs.setdefault("Content-Type", "application/json")
        c = self._conn(self.timeout if timeout is None else timeout)
        try:
            c.request(method, path, body=data, headers=hdrs)
            r = c.getresponse()
            return AdminAnswer(r.status, r.headers, r.read())
        finally:
            c.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body={} if body is None and "raw" not in kw else body,
                            **kw)

    def status(self):
        a = self.get("/status")
        assert a.status == 200 and isinstance(a.json, dict), a
        return a.json

    def journal(self, n=None):
        a = self.get("/journal" if n is None else "/journal?n=%d" % n)
        assert a.status == 200 and isinstance(a.json, dict), a
        return a.json["entries"]

    def switch(self, to, **kw):
        body = {"to": to}
        body.update(kw)
        return self.post("/switch", body)

    def maintenance(self, on=True, **kw):
        body = {"on": on}
        body.update(kw)
        return self.post("/maintenance", body)

    def hold(self, **kw):
        return self.post("/hold", kw)

    def resume(self, **kw):
        return self.post("/resume", kw)


def admin_address_of(config_text):
    """The admin.address of a config text."""
    m = re.search(r'admin\s*=\s*\{[^}]*address\s*=\s*"([^"]+)"', config_text)
    assert m, "no admin address in the config"
    return m.group(1)


def proxy_admin(proxy, token=None):
    """An Admin client for a running Cutover (from its config file)."""
    return Admin(admin_address_of(proxy.config_path.read_text()), token=token)


def restart_proxy(harness, proxy, timeout=10.0):
    """Stops PROXY with SIGTERM (it must exit 0) and starts cutover again on
    the same config file, state file and port. Returns the new Cutover."""
    problems = proxy.stop_and_check(timeout)
    assert not problems, "\n".join(problems)
    c = Cutover(proxy.workdir, proxy.config_path.read_text(), name=proxy.name,
                wait_ready=False, port=proxy.port)
    harness.proxies.append(c)
    c.wait_ready()
    return c


class Pending:
    """A request sent on its own connection whose answer is read in a thread,
    so a test can check that it is still unanswered and collect it later."""

    def __init__(self, port, method, path, headers=None, body=None, timeout=20.0):
        self.client = Client(port, timeout=timeout)
        self.method = method
        self.sent_at = time.monotonic()
        self.answered_at = None
        self.response = None
        self.error = None
        self.client.send(build_request(method, path, headers, body))
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        try:
            self.response = self.client.read_response(self.method)
        except Exception as e:  # noqa: BLE001 - reported by result()
            self.error = e
        self.answered_at = time.monotonic()

    def done(self):
        return not self._t.is_alive()

    def still_pending_after(self, seconds):
        """True if no answer came within SECONDS (a bounded wait, not a sleep
        for synchronisation: the point is that nothing happens)."""
        self._t.join(seconds)
        return self._t.is_alive()

    def result(self, timeout=10.0):
        self._t.join(timeout)
        assert not self._t.is_alive(), "no answer within %.1fs" % timeout
        self.client.close()
        if self.error is not None:
            raise self.error
        return self.response

    def close(self):
        self.client.close()


class AsyncCall:
    """Runs FN(*args) in a thread; .result() waits for it."""

    def __init__(self, fn, *args, **kw):
        self.value = None
        self.error = None
        self.started = time.monotonic()
        self.finished = None
        self._t = threading.Thread(target=self._run, args=(fn, args, kw), daemon=True)
        self._t.start()

    def _run(self, fn, args, kw):
        try:
            self.value = fn(*args, **kw)
        except Exception as e:  # noqa: BLE001
            self.error = e
        self.finished = time.monotonic()

    def done(self):
        return not self._t.is_alive()

    def wait(self, timeout):
        self._t.join(timeout)
        return not self._t.is_alive()

    def result(self, timeout=20.0):
        self._t.join(timeout)
        assert not self._t.is_alive(), "call still running after %.1fs" % timeout
        if self.error is not None:
            raise self.error
        return self.value

    @property
    def elapsed(self):
        return (self.finished or time.monotonic()) - self.started


def multipart_submission(instance_id="uuid:00000000-0000-0000-0000-000000000001", extra=b""):
    """(content type, body) of an OpenRosa form submission."""
    boundary = "cutoverboundary7d1f"
    xml = ('<?xml version="1.0"?><data id="demo"><meta><instanceID>%s</instanceID></meta>'
           '</data>' % instance_id).encode()
    body = (b"--" + boundary.encode() + b"\r\n"
            b'Content-Disposition: form-data; name="xml_submission_file"; filename="form.xml"\r\n'
            b"Content-Type: text/xml\r\n\r\n" + xml + extra + b"\r\n"
            b"--" + boundary.encode() + b"--\r\n")
    return "multipart/form-data; boundary=" + boundary, body


def loopback_listener(backlog):
    """A listening TCP socket on an ephemeral loopback port, polled every
    0.1 s by its accept loop (so a stop flag is seen): (sock, port, url)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(backlog)
    sock.settimeout(0.1)
    port = sock.getsockname()[1]
    return sock, port, "http://%s:%d" % (HOST, port)


class ScriptedUpstream:
    """A one-thread upstream on an ephemeral loopback port that takes one
    connection at a time: it reads that request's head, then runs
    ANSWER(conn, head) and closes. Append it to harness.procs to have it
    stopped at teardown."""

    def __init__(self, answer, name="scripted-upstream"):
        self.name = name
        self.answer = answer
        self.requests = 0
        self._stop = threading.Event()
        self.sock, self.port, self.url = loopback_listener(128)
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    if b"\r\n\r\n" in data:
                        self.requests += 1
                        self.answer(conn, data)
                except OSError:
                    pass

    # the Proc interface Harness.teardown uses
    def alive(self):
        return self._t.is_alive()

    def signal(self, sig):
        self._stop.set()

    def wait(self, timeout):
        self._t.join(timeout)
        self.sock.close()
        return 0 if not self._t.is_alive() else None

    def kill(self):
        self._stop.set()
        self.sock.close()


class OrderedUpstream(ScriptedUpstream):
    """Accepts one connection at a time and reads that request's head before
    accepting the next, so .paths is the order in which the proxy connected
    (and sent). Answers 200 with X-Upstream: NAME and closes."""

    def __init__(self, name="old"):
        self.upstream_name = name
        self.paths = []
        self._lock = threading.Lock()
        super().__init__(self._answer, "ordered-upstream-" + name)

    def _answer(self, conn, head):
        line = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        with self._lock:
            self.paths.append(line[1] if len(line) > 1 else "")
        body = b"ok\n"
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Upstream: %s\r\n"
                     b"Connection: close\r\n\r\n%s" % (len(body), self.upstream_name.encode(), body))

    def received(self):
        with self._lock:
            return list(self.paths)

    def find(self, path_part):
        return [p for p in self.received() if path_part in p]


def persisted_state(state_file):
    """The state as cutover loads it at start: STATE_FILE (the last full
    save), then the changes appended to STATE_FILE.log since (one JSON object
    per line; a torn last line is not a change)."""
    state_file = Path(state_file)
    doc = json.loads(state_file.read_text()) if state_file.exists() else {"mode": "old"}
    gen = doc.get("generation", 0)
    log = Path(str(state_file) + ".log")
    lines = log.read_text().split("\n")[:-1] if log.exists() else []
    for line in lines:
        try:
            c = json.loads(line)
        except ValueError:
            break
        if c["generation"] <= gen:
            continue                    # already in the full save
        gen = doc["generation"] = c["generation"]
        if "scheduled" in c:
            doc["scheduled"] = c["scheduled"]
        elif "project" in c:
            doc.setdefault("projects", {})[c["project"]] = c["scope"]
        else:
            for k in ("mode", "resume_to", "until", "since", "reason"):
                doc.pop(k, None)
            doc.update(c["scope"])
    return doc
