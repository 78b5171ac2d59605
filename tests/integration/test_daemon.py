"""Daemon conventions: systemd's readiness protocol (NOTIFY_SOCKET, a
datagram socket the test binds), the unit file, logrotate, make install."""

import os
import signal
import socket

from cutover_testlib import HEALTH_PATH, START_TIMEOUT, get, proxy_admin, run_cli


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
