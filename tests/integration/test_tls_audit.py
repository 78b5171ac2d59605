"""testssl against cutover's TLS front (scripts/tls-audit.sh): no HIGH or
CRITICAL finding. Skipped only when testssl is not installed (`make test`
installs it). Under ASan the script's cutover log is checked too: testssl
throws a wide range of odd handshakes at the front."""

import os
import subprocess

import pytest

from cutover_testlib import CUTOVER_BIN, REPO, SANITIZER_MARKERS


@pytest.mark.slow
def test_testssl_finds_nothing_high_or_critical(harness):
    out = harness.path("tls-audit")
    env = dict(os.environ, CUTOVER_BIN=str(CUTOVER_BIN), TLS_AUDIT_OUT=str(out))
    p = subprocess.run([str(REPO / "scripts" / "tls-audit.sh")], env=env, capture_output=True,
                       text=True, timeout=420, stdin=subprocess.DEVNULL)
    if p.returncode == 77:
        pytest.skip("testssl is not installed")
    assert p.returncode == 0, "tls-audit exit %d:\n%s%s" % (p.returncode, p.stdout, p.stderr)
    log = (out / "cutover.out").read_text(errors="replace")
    found = [m for m in SANITIZER_MARKERS if m in log]
    assert not found, "sanitizer report from cutover under testssl:\n" + log[-6000:]
