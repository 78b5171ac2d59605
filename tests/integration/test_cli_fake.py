"""The control CLI (`cutover status|switch|maintenance|hold|resume|journal|
reload|schedule`) against a fake admin API: the request each command sends
(method, path, JSON body, bearer token over TCP only), the address it picks
(--admin > CUTOVER_ADMIN > default), and how answers become output and exit
codes (0 ok, 1 refused/failed with one line, 2 usage, 3 not drained)."""

import json
import os
import subprocess
import tempfile
import time

import pytest

from cutover_testlib import CUTOVER_BIN
from fake_admin import FakeAdmin


def _cli_available():
    try:
        p = subprocess.run([CUTOVER_BIN, "status", "--help"], capture_output=True, timeout=10)
    except OSError:
        return False
    return p.returncode == 0


pytestmark = pytest.mark.skipif(not _cli_available(),
                                reason="%s does not dispatch control commands yet" % CUTOVER_BIN)

TOKEN = "s3cr3t-token-0123456789abcdef"

CHANGE = {"ok": True, "scope": "global", "from": "old", "to": "new", "forced": False,
          "preflight": {"ok": True, "steps": [{"step": "connect", "ok": True}]},
          "drained": True, "in_flight": 0, "upstream": "old"}

STATUS = {"version": "0.1.0", "mode": "old", "generation": 1, "until": None, "reason": None,
          "projects": {"alpha": {"mode": "new", "own_mode": True, "in_flight": {"old": 0, "new": 3}}},
          "upstreams": {"old": {"url": "http://127.0.0.1:1", "in_flight": 0, "addresses": ["127.0.0.1:1"]},
                        "new": {"url": "http://127.0.0.1:2", "in_flight": 3, "addresses": ["127.0.0.1:2"]}},
          "hold": {"parked": 0}, "scheduled": [],
          "spool": {"records": 0, "bytes": 0, "dead_letters": 0, "oldest_age": 0},
          "journal": []}


@pytest.fixture
def workdir():
    with tempfile.TemporaryDirectory(prefix="cutover-cli-") as d:
        yield d


@pytest.fixture
def unix_fake(workdir):
    with FakeAdmin(unix_path=os.path.join(workdir, "admin.sock")) as fake:
        yield fake


@pytest.fixture
def tcp_fake():
    with FakeAdmin(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def token_file(workdir):
    path = os.path.join(workdir, "token")
    with open(path, "w") as f:
        f.write("  %s\n" % TOKEN)    # surrounding whitespace is not part of the token
    return path


def run(args, env=None, timeout=20):
    e = {k: v for k, v in os.environ.items() if k not in ("CUTOVER_ADMIN", "CUTOVER_TOKEN_FILE")}
    e.update(env or {})
    return subprocess.run([CUTOVER_BIN] + args, capture_output=True, text=True, env=e, timeout=timeout)


def one_line(stderr):
    lines = stderr.splitlines()
    assert len(lines) == 1, "want exactly one line on stderr, got %r" % stderr
    return lines[0]


def test_unreachable_socket_names_address_and_cause(workdir):
    addr = "unix:%s/nothing.sock" % workdir
    p = run(["status", "--admin", addr])
    assert p.returncode == 1, p
    assert one_line(p.stderr) == "cutover: cannot reach the admin socket at %s: No such file or directory" % addr
    assert p.stdout == ""


def test_unreachable_default_address(workdir):
    if os.path.exists("/run/cutover/admin.sock"):
        pytest.skip("a cutover runs on this machine")
    p = run(["status"])
    assert p.returncode == 1, p
    assert one_line(p.stderr).startswith(
        "cutover: cannot reach the admin socket at unix:/run/cutover/admin.sock: ")


def test_unix_socket_from_env(unix_fake):
    unix_fake.answer("GET", "/status", 200, STATUS)
    p = run(["status"], env={"CUTOVER_ADMIN": unix_fake.address})
    assert p.returncode == 0, p
    assert "global mode: old" in p.stdout
    assert "alpha" in p.stdout and "0/3" in p.stdout
    [req] = unix_fake.requests
    assert (req.method, req.path) == ("GET", "/status")
    assert req.headers.get("host") == "cutover"
    assert req.headers.get("connection") == "close"


def test_admin_option_beats_env(unix_fake, workdir):
    unix_fake.answer("GET", "/status", 200, STATUS)
    p = run(["status", "--admin", unix_fake.address],
            env={"CUTOVER_ADMIN": "unix:%s/elsewhere.sock" % workdir})
    assert p.returncode == 0, p
    assert len(unix_fake.requests) == 1


def test_no_token_over_unix_socket(unix_fake, token_file):
    unix_fake.answer("POST", "/resume", 200, dict(CHANGE, **{"from": "hold", "to": "old"}))
    p = run(["resume", "--admin", unix_fake.address, "--token-file", token_file])
    assert p.returncode == 0, p
    assert "authorization" not in unix_fake.requests[0].headers


def test_bearer_token_over_tcp(tcp_fake, token_file):
    tcp_fake.answer("POST", "/switch", 200, dict(CHANGE, scope="alpha"))
    p = run(["switch", "new", "--project", "alpha", "--reason", "pilot group",
             "--admin", tcp_fake.address, "--token-file", token_file])
    assert p.returncode == 0, p
    assert p.stdout == "alpha: old -> new (preflight ok, drained)\n"
    [req] = tcp_fake.requests
    assert req.headers["authorization"] == "Bearer " + TOKEN
    assert req.headers["content-type"] == "application/json"
    assert int(req.headers["content-length"]) == len(req.body)
    assert req.json == {"to": "new", "project": "alpha", "reason": "pilot group"}


def test_token_file_from_env(tcp_fake, token_file):
    tcp_fake.answer("GET", "/journal?n=20", 200, {"entries": []})
    p = run(["journal"], env={"CUTOVER_ADMIN": tcp_fake.address, "CUTOVER_TOKEN_FILE": token_file})
    assert p.returncode == 0, p
    assert tcp_fake.requests[0].headers["authorization"] == "Bearer " + TOKEN


def test_401(tcp_fake, workdir):
    wrong = os.path.join(workdir, "wrong")
    with open(wrong, "w") as f:
        f.write("not-the-token\n")
    p = run(["status", "--admin", tcp_fake.address, "--token-file", wrong])
    assert p.returncode == 1, p
    assert one_line(p.stderr) == "cutover: admin API answered 401: missing or wrong bearer token"
    # Without any token the line says how to give one.
    p = run(["status", "--admin", tcp_fake.address])
    assert p.returncode == 1, p
    line = one_line(p.stderr)
    assert line.startswith("cutover: admin API answered 401: missing or wrong bearer token")
    assert "--token-file" in line
    assert "authorization" not in tcp_fake.requests[-1].headers


def test_unreadable_token_file(tcp_fake, workdir):
    p = run(["status", "--admin", tcp_fake.address, "--token-file", os.path.join(workdir, "none")])
    assert p.returncode == 1, p
    assert "token file" in one_line(p.stderr)
    assert tcp_fake.requests == []


def test_not_drained_exits_3(unix_fake):
    unix_fake.answer("POST", "/maintenance", 200,
                     {"ok": True, "scope": "alpha", "from": "old", "to": "maintenance", "forced": False,
                      "drained": False, "in_flight": 2, "upstream": "old"})
    p = run(["maintenance", "on", "--project", "alpha", "--admin", unix_fake.address])
    assert p.returncode == 3, p
    assert one_line(p.stderr) == ("cutover: now maintenance for alpha, but 2 request(s) still in flight "
                                  "to old after the drain timeout")
    assert unix_fake.requests[0].json == {"on": True, "project": "alpha"}


def test_json_prints_raw_answer(unix_fake):
    unix_fake.answer("GET", "/status", 200, STATUS)
    p = run(["status", "--json", "--admin", unix_fake.address])
    assert p.returncode == 0, p
    assert json.loads(p.stdout) == STATUS
    assert '\n  "mode": "old"' in p.stdout          # pretty, two-space indent
    assert p.stderr == ""


def test_json_and_not_drained(unix_fake):
    late = dict(CHANGE, drained=False, in_flight=1)
    unix_fake.answer("POST", "/switch", 200, late)
    p = run(["switch", "new", "--json", "--admin", unix_fake.address])
    assert p.returncode == 3, p
    assert json.loads(p.stdout) == late


def test_refused_switch(unix_fake):
    unix_fake.answer("POST", "/switch", 409,
                     {"ok": False, "error": "preflight of new failed: connect: Connection refused; "
                                            "traffic stays on old"})
    p = run(["switch", "new", "--admin", unix_fake.address])
    assert p.returncode == 1, p
    assert one_line(p.stderr) == ("cutover: switch refused: preflight of new failed: connect: "
                                  "Connection refused; traffic stays on old")
    assert p.stdout == ""


def test_scheduled_switch(unix_fake):
    unix_fake.answer("POST", "/switch", 202,
                     {"ok": True, "scheduled": {"id": 3, "to": "new", "at": "2026-12-01T02:00:00Z",
                                                "force": True, "who": "ops"}})
    p = run(["switch", "new", "--force", "--at", "2026-12-01T02:00:00Z", "--admin", unix_fake.address])
    assert p.returncode == 0, p
    assert p.stdout.startswith("scheduled #3: switch new at 2026-12-01T02:00:00Z")
    assert unix_fake.requests[0].json == {"to": "new", "force": True, "at": "2026-12-01T02:00:00Z"}


@pytest.mark.parametrize("args, method, path, body", [
    (["maintenance"], "POST", "/maintenance", {"on": True}),
    (["maintenance", "off", "--project", "b"], "POST", "/maintenance", {"on": False, "project": "b"}),
    (["maintenance", "--until", "+2h", "--reason", "dump"], "POST", "/maintenance",
     {"on": True, "until": "+2h", "reason": "dump"}),
    (["hold", "--max", "10"], "POST", "/hold", {"max": 10}),
    (["resume", "--project", "alpha"], "POST", "/resume", {"project": "alpha"}),
    (["reload"], "POST", "/reload", {}),
    (["journal", "-n", "3"], "GET", "/journal?n=3", None),
    (["schedule", "cancel", "7"], "DELETE", "/schedule/7", None),
])
def test_requests(unix_fake, args, method, path, body):
    unix_fake.answer(method, path, 200, {"ok": True})
    p = run(args + ["--admin", unix_fake.address])
    assert len(unix_fake.requests) == 1, p
    req = unix_fake.requests[0]
    assert (req.method, req.path, req.json) == (method, path, body)


def test_journal_lines(unix_fake):
    entries = [{"time": "2026-11-30T10:00:00Z", "who": "alice", "action": "switch", "scope": "alpha",
                "from": "old", "to": "new", "reason": "pilot", "forced": True, "outcome": "applied"},
               {"time": "2026-11-30T10:05:00Z", "who": "bob", "action": "maintenance", "scope": "global",
                "from": "old", "to": "maintenance", "outcome": "applied"}]
    unix_fake.answer("GET", "/journal?n=20", 200, {"entries": entries})
    p = run(["journal", "--admin", unix_fake.address])
    assert p.returncode == 0, p
    lines = p.stdout.splitlines()
    assert len(lines) == 2
    assert "alice" in lines[0] and "alpha: old -> new" in lines[0] and "pilot" in lines[0]
    assert "forced" in lines[0] and "applied" in lines[0]
    assert "global: old -> maintenance" in lines[1]


@pytest.mark.parametrize("how", ["chunked", "eof"])
def test_answer_framings(unix_fake, how):
    unix_fake.answer("GET", "/status", 200, STATUS, how=how)
    p = run(["status", "--json", "--admin", unix_fake.address])
    assert p.returncode == 0, p
    assert json.loads(p.stdout) == STATUS


def test_closed_without_answer(unix_fake):
    unix_fake.answer("GET", "/status", 200, {}, how="close")
    p = run(["status", "--admin", unix_fake.address])
    assert p.returncode == 1, p
    assert "closed the connection" in one_line(p.stderr) or "without an answer" in p.stderr


def test_timeout(unix_fake):
    unix_fake.answer("GET", "/status", 200, {}, how="stall")
    t0 = time.monotonic()
    p = run(["status", "--timeout", "0.5", "--admin", unix_fake.address])
    assert time.monotonic() - t0 < 5
    assert p.returncode == 1, p
    assert "no answer" in one_line(p.stderr)


def test_not_json(unix_fake):
    unix_fake.answer("GET", "/status", 502, b"upstream exploded\n")
    p = run(["status", "--admin", unix_fake.address])
    assert p.returncode == 1, p
    assert one_line(p.stderr) == "cutover: admin API answered 502: upstream exploded"


@pytest.mark.parametrize("args", [
    ["switch"], ["switch", "sideways"], ["maintenance", "maybe"], ["hold", "--max", "0"],
    ["journal", "-n", "x"], ["status", "--bogus"], ["schedule", "cancel"], ["status", "--admin", "nowhere"],
])
def test_usage_errors_exit_2(args, unix_fake):
    p = run(args, env={"CUTOVER_ADMIN": unix_fake.address})
    assert p.returncode == 2, p
    assert p.stderr.startswith("cutover: ")
    assert "usage: cutover " in p.stderr
    assert unix_fake.requests == []


def test_help_exits_0_without_contacting(unix_fake):
    for cmd in ["status", "switch", "maintenance", "hold", "resume", "journal", "reload", "schedule"]:
        p = run([cmd, "--help"], env={"CUTOVER_ADMIN": unix_fake.address})
        assert p.returncode == 0, p
        assert ("usage: cutover " + cmd) in p.stdout
    assert unix_fake.requests == []
