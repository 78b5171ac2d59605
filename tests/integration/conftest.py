"""Fixtures for cutover's integration tests: each test gets its own temp dir,
demo upstreams on ephemeral loopback ports, nginx when asked, and a cutover
started on a config written for it. Teardown sends SIGTERM and fails the test
unless cutover exits 0 within 10 s with no sanitizer report on stderr."""

import pytest

from cutover_testlib import Cutover, Harness, free_port as _free_port, proxy_admin
from spool_testlib import Recorder

NGINX_FILES = {
    "big.bin": 1 << 30,                      # 1 GiB, sparse
    "small.txt": b"hello from nginx\n",
    "64k.bin": bytes(range(256)) * 256,
}


def _finish(h):
    problems = h.teardown()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def harness():
    h = Harness()
    yield h
    _finish(h)


@pytest.fixture(scope="module")
def module_harness():
    h = Harness()
    yield h
    _finish(h)


@pytest.fixture
def free_port():
    """A function returning a free ephemeral loopback port."""
    return _free_port


@pytest.fixture
def tmpdir_cutover(harness):
    """The test's own temp directory (Path)."""
    return harness.dir


@pytest.fixture
def old(harness):
    """Demo upstream "old", recording every request it receives."""
    return harness.upstream("old")


@pytest.fixture
def new(harness):
    """Demo upstream "new", recording every request it receives."""
    return harness.upstream("new")


@pytest.fixture
def proxy(harness, old, new):
    """cutover in front of the two demo upstreams, default settings."""
    return harness.proxy(old, new)


@pytest.fixture
def nginx(harness):
    """nginx-light serving /big.bin (1 GiB sparse), /small.txt and /64k.bin."""
    return harness.nginx(NGINX_FILES)


@pytest.fixture
def rig(harness):
    """make(...) -> (cutover, admin, old, new) with Recorder upstreams and SPOOL
    as the inside of the spool group (after its dir)."""
    made = []

    def make(old_script=None, new_script=None, spool="retry_min = 0.05; retry_max = 0.2;",
             old=None, new=None, port=None, **kw):
        old = old or Recorder(old_script)
        new = new or Recorder(new_script)
        made.extend([old, new])
        port, text = harness.config(old, new, port=port, **kw)
        d = harness.dir / "spool"
        text = text.replace('spool = { dir = "%s"; };' % d, 'spool = { dir = "%s"; %s };' % (d, spool))
        c = Cutover(harness.dir, text, wait_ready=False, port=port)
        harness.proxies.append(c)
        c.wait_ready()
        return c, proxy_admin(c), old, new

    yield make
    for r in made:
        r.close()
