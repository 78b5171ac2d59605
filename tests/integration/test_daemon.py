"""Daemon conventions: systemd's readiness protocol (NOTIFY_SOCKET, a
datagram socket the test binds), the unit file, logrotate, make install."""

import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from cutover_testlib import (CUTOVER_BIN, HEALTH_PATH, REPO, START_TIMEOUT, get, proxy_admin,
                             run_cli)


# ---------------------------------------------------------------------------
# sd_notify


class NotifySocket:
    """What systemd does for a Type=notify service: bind NOTIFY_SOCKET, read
    its datagrams (KEY=VALUE lines)."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)

    def env(self):
        return dict(os.environ, NOTIFY_SOCKET=self.path)

    def next(self, timeout):
        """The next message as a dict; fails after TIMEOUT seconds."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            raise AssertionError("no sd_notify message within %.0fs" % timeout) from None
        return dict(line.split("=", 1) for line in data.decode().split("\n") if line)

    def pending(self):
        """Messages already sent, without waiting."""
        out = []
        self.sock.setblocking(False)
        try:
            while True:
                out.append(self.sock.recv(4096).decode())
        except BlockingIOError:
            return out

    def close(self):
        self.sock.close()


def connects_now(proxy):
    """The public listener and the admin socket accept at once (no retry)."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=2.0):
        pass
    admin_path = str(proxy.workdir / "admin.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(2.0)
        s.connect(admin_path)


def start_notified(harness, old, new):
    ns = NotifySocket(harness.path("notify.sock"))
    proxy = harness.proxy(old, new, wait_ready=False, env=ns.env())
    return ns, proxy


def test_ready_only_once_serving(harness, old, new):
    ns, proxy = start_notified(harness, old, new)
    try:
        msg = ns.next(START_TIMEOUT)
        # connect before anything else: READY=1 must mean "accepting now"
        connects_now(proxy)
        assert msg.get("READY") == "1", msg
        assert msg.get("MAINPID") == str(proxy.pid), msg
        assert "running" in msg.get("STATUS", "") and "old" in msg["STATUS"], msg
        assert get(proxy.port, HEALTH_PATH).status == 200
        assert proxy_admin(proxy).status()["mode"] == "old"
        assert ns.pending() == [], "more than one message at start"
    finally:
        ns.close()


def test_reloading_then_ready(harness, old, new):
    ns, proxy = start_notified(harness, old, new)
    try:
        assert ns.next(START_TIMEOUT).get("READY") == "1"
        proxy.signal(signal.SIGHUP)
        msg = ns.next(10)
        assert msg.get("RELOADING") == "1", msg
        assert int(msg["MONOTONIC_USEC"]) > 0, msg
        msg = ns.next(10)
        assert msg.get("READY") == "1" and "reloaded" in msg.get("STATUS", ""), msg

        # `cutover reload` through the admin API is the same reload
        r = run_cli(["--admin", "unix:%s" % (proxy.workdir / "admin.sock"), "reload"])
        assert r.returncode == 0, r.stderr
        assert ns.next(10).get("RELOADING") == "1"
        assert ns.next(10).get("READY") == "1"

        # a refused reload still ends with READY=1: the running config serves
        text = proxy.config_path.read_text()
        proxy.config_path.write_text(text + "no_such_key = 1;\n")
        proxy.signal(signal.SIGHUP)
        assert ns.next(10).get("RELOADING") == "1"
        msg = ns.next(10)
        assert msg.get("READY") == "1" and "refused" in msg.get("STATUS", ""), msg
        assert get(proxy.port, HEALTH_PATH).status == 200
    finally:
        ns.close()


def test_stopping_on_sigterm(harness, old, new):
    ns, proxy = start_notified(harness, old, new)
    try:
        assert ns.next(START_TIMEOUT).get("READY") == "1"
        proxy.signal(signal.SIGTERM)
        msg = ns.next(10)
        assert msg.get("STOPPING") == "1", msg
        assert "drain" in msg.get("STATUS", ""), msg
        assert proxy.wait(15) == 0, proxy.stderr()
    finally:
        ns.close()


def test_no_notify_socket_runs_as_before(harness, old, new):
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    proxy = harness.proxy(old, new, env=env)
    assert get(proxy.port, HEALTH_PATH).status == 200
    assert "NOTIFY_SOCKET" not in proxy.stderr()


# ---------------------------------------------------------------------------
# the unit file

UNIT = REPO / "conf" / "cutover.service"
REFERENCE_CONF = REPO / "conf" / "cutover.conf"


def unit_settings(text):
    """{key: [values]} over every section of a unit file."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;[" or "=" not in line:
            continue
        k, v = line.split("=", 1)
        out.setdefault(k.strip(), []).append(v.strip())
    return out


def test_unit_passes_systemd_analyze_verify(tmp_path):
    tool = shutil.which("systemd-analyze")
    if not tool:
        pytest.skip("systemd-analyze not installed (Debian package systemd)")
    # verify wants ExecStart's binary to exist: point it at the one under
    # test; test_make_install checks the installed path.
    unit = tmp_path / "cutover.service"
    text = UNIT.read_text()
    assert "ExecStart=/usr/sbin/cutover run -c /etc/cutover/cutover.conf" in text
    unit.write_text(text.replace("/usr/sbin/cutover", CUTOVER_BIN))
    r = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    # verify exits 0 on a value it ignores ("Failed to parse ..."): any
    # word from it is a finding
    assert r.returncode == 0 and not r.stderr.strip() and not r.stdout.strip(), \
        "systemd-analyze verify: rc %d\n%s%s" % (r.returncode, r.stdout, r.stderr)


def test_unit_settings():
    s = unit_settings(UNIT.read_text())
    want = {
        "Type": "notify", "ExecReload": "/bin/kill -HUP $MAINPID", "User": "cutover",
        "Group": "cutover", "RuntimeDirectory": "cutover", "StateDirectory": "cutover",
        "LogsDirectory": "cutover", "ProtectSystem": "strict", "ProtectHome": "yes",
        "PrivateTmp": "yes", "NoNewPrivileges": "yes", "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes", "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "AmbientCapabilities": "CAP_NET_BIND_SERVICE", "LimitNOFILE": "65536",
        "KillSignal": "SIGTERM", "Restart": "on-failure",
    }
    for k, v in want.items():
        assert s.get(k) == [v], "%s=%s expected, found %s" % (k, v, s.get(k))
    # systemd must not kill a drain that cutover's own limit still allows
    assert float(s["TimeoutStopSec"][0]) > 30.0 + 10
    assert "DynamicUser" not in s        # a fixed user: see the unit's header


def test_reference_config_paths_match_the_unit():
    """The unit gives /run/cutover and /var/lib/cutover (and nothing else
    is writable under ProtectSystem=strict): the installed config must use them."""
    text = REFERENCE_CONF.read_text()
    live = "\n".join(l.split("#", 1)[0] for l in text.splitlines())
    admin = re.search(r'admin\s*=\s*{[^}]*address\s*=\s*"([^"]+)"', live, re.S).group(1)
    assert admin == "unix:/run/cutover/admin.sock"
    for key in ("state_file", "journal_file"):
        m = re.search(r'^%s\s*=\s*"([^"]+)"' % key, live, re.M)
        assert m and m.group(1).startswith("/var/lib/cutover/"), key
    spool = re.search(r'spool\s*=\s*{[^}]*dir\s*=\s*"([^"]+)"', live, re.S).group(1)
    assert spool.startswith("/var/lib/cutover/")
    access = re.search(r'log\s*=\s*{[^}]*access\s*=\s*"([^"]+)"', live, re.S).group(1)
    assert access == "stderr" or access.startswith("/var/log/cutover/")


# ---------------------------------------------------------------------------
# make install


def run_make_install(destdir, timeout=60):
    """`make install DESTDIR=...` with the binary under test; as nobody when
    we are root, so it proves no root is needed."""
    make = shutil.which("make")
    if not make:
        pytest.skip("make not installed")
    argv = [make, "-s", "-C", str(REPO), "install", "DESTDIR=%s" % destdir,
            "CUTOVER_INSTALL_BIN=%s" % CUTOVER_BIN]
    if os.geteuid() == 0 and shutil.which("setpriv"):
        nobody = pwd.getpwnam("nobody")
        as_nobody = ["setpriv", "--reuid=%d" % nobody.pw_uid, "--regid=%d" % nobody.pw_gid,
                     "--clear-groups"]
        # a checkout under a private home cannot be read by nobody: then as root
        can_read = subprocess.run(as_nobody + ["test", "-r", str(REPO / "Makefile"), "-a",
                                               "-r", CUTOVER_BIN], timeout=10).returncode == 0
        if can_read:
            os.chown(destdir, nobody.pw_uid, nobody.pw_gid)
            argv = as_nobody + argv
        else:
            print("make install runs as root: nobody cannot read %s" % REPO)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def modes(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = stat.S_IMODE(os.stat(p).st_mode)
    return out


@pytest.fixture
def dest():
    """An empty DESTDIR that nobody can reach (pytest's tmp_path is 0700)."""
    d = Path(tempfile.mkdtemp(prefix="cutover-install-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_make_install(dest):
    r = run_make_install(dest)
    assert r.returncode == 0, r.stdout + r.stderr
    want = {
        "usr/sbin/cutover": 0o755,
        "etc/cutover/cutover.conf": 0o644,
        "lib/systemd/system/cutover.service": 0o644,
        "etc/logrotate.d/cutover": 0o644,
        "usr/lib/sysusers.d/cutover.conf": 0o644,
        "usr/share/doc/cutover/README.md": 0o644,
    }
    for f in sorted(REPO.glob("conf/prometheus*")):
        want["usr/share/cutover/" + f.name] = 0o644
    assert modes(dest) == want
    assert (dest / "etc/cutover/cutover.conf").read_text() == REFERENCE_CONF.read_text()
    assert (dest / "lib/systemd/system/cutover.service").read_text() == UNIT.read_text()
    assert (dest / "etc/logrotate.d/cutover").read_text() == \
        (REPO / "conf/cutover.logrotate").read_text()
    v = subprocess.run([str(dest / "usr/sbin/cutover"), "--version"], capture_output=True,
                       text=True, timeout=10)
    assert v.returncode == 0 and v.stdout.startswith("cutover ")

    # an operator's config is never overwritten: the new one goes beside it
    (dest / "etc/cutover/cutover.conf").write_text("# edited\n")
    r = run_make_install(dest)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (dest / "etc/cutover/cutover.conf").read_text() == "# edited\n"
    assert (dest / "etc/cutover/cutover.conf.dist").read_text() == REFERENCE_CONF.read_text()
    assert "cutover.conf.dist" in r.stdout


def test_make_install_prefix(dest):
    make = shutil.which("make") or pytest.skip("make not installed")
    r = subprocess.run([make, "-s", "-C", str(REPO), "install", "DESTDIR=%s" % dest,
                        "PREFIX=/usr/local", "CUTOVER_INSTALL_BIN=%s" % CUTOVER_BIN],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (dest / "usr/local/sbin/cutover").is_file()
    unit = (dest / "lib/systemd/system/cutover.service").read_text()
    assert "ExecStart=/usr/local/sbin/cutover run -c /etc/cutover/cutover.conf" in unit
