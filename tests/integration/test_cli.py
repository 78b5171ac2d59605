"""The command line: --version, --help, check (all errors as FILE:LINE),
run refusing a taken port, graceful stop on SIGTERM/SIGINT."""

import re
import signal
import socket
import time

import pytest

from cutover_testlib import (MINIMAL_CONFIG, Client, ConnectionClosed, build_request, free_port,
                             render_config, run_cli, wait_for)


def test_version():
    p = run_cli(["--version"])
    assert p.returncode == 0, p
    assert re.search(r"\d+\.\d+", p.stdout + p.stderr), p


def test_help():
    p = run_cli(["--help"])
    assert p.returncode == 0, p
    out = p.stdout + p.stderr
    assert "run" in out and "check" in out, out


def test_unknown_command_fails():
    p = run_cli(["frobnicate"])
    assert p.returncode != 0, p
    assert (p.stdout + p.stderr).strip(), "no message for an unknown command"


def test_check_minimal_config_verbatim(harness):
    path = harness.path("minimal.conf")
    path.write_text(MINIMAL_CONFIG)
    p = run_cli(["check", "-c", str(path)])
    assert p.returncode == 0, "the contract's minimal config was rejected:\n%s%s" % (p.stdout, p.stderr)
    assert "AddressSanitizer" not in p.stderr and "runtime error:" not in p.stderr


def test_check_generated_test_config(harness):
    port, text = harness.config(port=free_port())
    path = harness.path("t.conf")
    path.write_text(text)
    p = run_cli(["check", "-c", str(path)])
    assert p.returncode == 0, p.stdout + p.stderr


def error_lines(output, path):
    pat = re.compile(r"^%s:(\d+): (.+)$" % re.escape(str(path)))
    out = []
    for line in output.splitlines():
        m = pat.match(line.strip())
        if m and "warning" not in m.group(2).lower():
            out.append((int(m.group(1)), m.group(2)))
    return out


def test_check_reports_every_error_with_its_line(harness):
    port, text = harness.config(port=free_port())
    lines = text.rstrip("\n").split("\n")
    lines.append("bogus_key = 1;")                                # unknown key
    unknown_line = len(lines)
    lines.append("")
    lines.append("workers = \"many\";")                          # wrong type
    type_line = len(lines)
    lines.append("# a comment")
    lines.append("limits = {")
    lines.append("  max_connections = -5;")                       # impossible value
    value_line = len(lines)
    lines.append("};")
    path = harness.path("bad.conf")
    path.write_text("\n".join(lines) + "\n")
    p = run_cli(["check", "-c", str(path)])
    out = p.stdout + p.stderr
    assert p.returncode == 1, "exit %d:\n%s" % (p.returncode, out)
    errs = error_lines(out, path)
    assert sorted(n for n, _ in errs) == sorted([unknown_line, type_line, value_line]), \
        "expected errors on lines %s, got:\n%s" % ([unknown_line, type_line, value_line], out)
    msgs = dict(errs)
    assert "bogus_key" in msgs[unknown_line], msgs
    assert "workers" in msgs[type_line], msgs
    assert "max_connections" in msgs[value_line], msgs


def test_check_syntax_error(harness):
    path = harness.path("syntax.conf")
    path.write_text('listen = ( { address = "127.0.0.1:1"; } );\nupstreams = {\n  old = { url = ; };\n};\n')
    p = run_cli(["check", "-c", str(path)])
    assert p.returncode == 1, p
    errs = error_lines(p.stdout + p.stderr, path)
    assert errs and errs[0][0] == 3, p.stdout + p.stderr


def test_check_missing_file(harness):
    path = harness.path("does-not-exist.conf")
    p = run_cli(["check", "-c", str(path)])
    assert p.returncode != 0, p
    assert str(path) in p.stdout + p.stderr


def test_run_refuses_taken_port(harness):
    old = harness.upstream("old")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        text = render_config(harness.dir, port, old.url, old.url)
        rc, err = harness.proxy_start_fails(text)
    assert rc != 0
    assert str(port) in err, "the message does not name the address:\n" + err


@pytest.mark.slow
def test_sigterm_lets_in_flight_request_finish(harness):
    old = harness.upstream("old")
    proxy = harness.proxy(old)
    with Client(proxy.port, timeout=15) as c:
        c.send(build_request("GET", "/slow?delay=2.5"))
        old.wait_record("/slow?delay=2.5")           # it is in flight upstream
        t0 = time.monotonic()
        proxy.signal(signal.SIGTERM)

        # cutover stops accepting while the request is still running
        def refused():
            try:
                with socket.create_connection(("127.0.0.1", proxy.port), timeout=0.5) as s:
                    s.sendall(build_request("GET", "/echo?after-sigterm"))
                    s.settimeout(0.5)
                    try:
                        return s.recv(100) == b""      # accepted but closed unanswered
                    except (socket.timeout, TimeoutError):
                        return False
                    except ConnectionResetError:
                        return True
            except (ConnectionRefusedError, ConnectionResetError, BrokenPipeError):
                return True             # refused, or reset out of a closed listener's queue
        wait_for(refused, 2.0, interval=0.1, what="cutover to stop accepting after SIGTERM")
        r = c.read_response()
        assert r.status == 200 and r.body.startswith(b"slept"), r
        assert r.header("X-Upstream") == "old"
    rc = proxy.wait(10)
    assert rc == 0, "exit code %r after SIGTERM (stderr: %s)" % (rc, proxy.stderr()[-2000:])
    assert time.monotonic() - t0 >= 2.0
    assert not proxy.sanitizer_report(), proxy.stderr()


def test_sigterm_drain_timeout_bounds_the_stop(harness):
    """A request slower than limits.drain_timeout does not hold the stop:
    cutover exits 0 about drain_timeout after SIGTERM, and the cut request
    never looks like a success."""
    old = harness.upstream("old")
    proxy = harness.proxy(old, extra="limits = { drain_timeout = 1.0; };\n")
    with Client(proxy.port, timeout=10) as c:
        c.send(build_request("GET", "/slow?delay=8"))
        old.wait_record("/slow?delay=8")
        t0 = time.monotonic()
        proxy.signal(signal.SIGTERM)
        rc = proxy.wait(10)
        took = time.monotonic() - t0
        assert rc == 0, "exit code %r after SIGTERM (stderr: %s)" % (rc, proxy.stderr()[-2000:])
        assert 0.8 <= took < 4.0, "stopped %.1fs after SIGTERM with drain_timeout 1.0" % took
        try:
            r = c.read_response()
            assert not 200 <= r.status < 300, r
        except ConnectionClosed:
            pass


def test_sigint_idle_exits_zero(harness):
    proxy = harness.proxy(harness.upstream("old"))
    with Client(proxy.port) as c:                    # an idle keep-alive client does not block the stop
        assert c.request("GET", "/echo").status == 200
        proxy.signal(signal.SIGINT)
        rc = proxy.wait(10)
        assert rc == 0, "exit code %r after SIGINT" % rc
        assert c.closed_within(2.0)


def test_run_without_readable_config_fails(harness):
    p = run_cli(["run", "-c", str(harness.path("nope.conf"))], timeout=10)
    assert p.returncode != 0
    assert "nope.conf" in p.stdout + p.stderr
