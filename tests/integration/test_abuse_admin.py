"""Issue 13, "hold under abuse": the admin API and its CLI against bad
input and hostile peers. Strict JSON bodies (unknown, duplicate or
mistyped keys are 400 naming the key), times out of range refused, the
operator never locked out of the admin by half-sent requests, and a
process out of file descriptors that pauses accepting instead of spinning."""

import json
import os
import re
import resource
import socket
import subprocess
import time

import pytest

from cutover_testlib import (CUTOVER_BIN, SANITIZED, Admin, Client, Deadline, free_port, get,
                             proxy_admin, run_cli, wait_for)

TOKEN = "k3Yq9v2LmX8pR4tZ7wN1cB6dF0gH5jQa"


@pytest.fixture
def env(harness):
    old = harness.upstream("old")
    new = harness.upstream("new")
    proxy = harness.proxy(old, new)
    return proxy, proxy_admin(proxy)


def cli_on(proxy, *args, timeout=20.0):
    return run_cli(list(args) + ["--admin", proxy_admin(proxy).address], timeout=timeout)


def raw_post(admin, path, text):
    return admin.request("POST", path, raw=text.encode())


# ---------------------------------------------------------------------------
# fault 4: strict JSON bodies


def test_misspelled_key_is_refused_and_switches_nothing(env):
    proxy, admin = env
    a = admin.post("/switch", {"to": "new", "projet": "alpha2", "force": True})
    assert a.status == 400, a
    assert "projet" in a["error"], a
    st = admin.status()
    assert st["mode"] == "old" and "alpha2" not in st["projects"], st
    assert [e for e in admin.journal() if e.get("action") == "switch"] == []


def test_duplicate_keys_are_refused(env):
    proxy, admin = env
    a = raw_post(admin, "/switch", '{"to": "old", "force": true, "to": "new"}')
    assert a.status == 400, a
    assert '"to"' in a["error"] and "duplicate" in a["error"], a
    a = raw_post(admin, "/maintenance", '{"on": true, "project": "a", "project": "b"}')
    assert a.status == 400 and '"project"' in a["error"], a
    assert admin.status()["mode"] == "old"


# (endpoint, a valid body, a key it does not take)
ENDPOINTS = [
    ("/switch", {"to": "new", "force": True}),
    ("/maintenance", {"on": True}),
    ("/hold", {"max": 5}),
    ("/resume", {}),
    ("/reload", {}),
]


@pytest.mark.parametrize("path,body", ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
def test_unknown_key_on_every_endpoint(env, path, body):
    proxy, admin = env
    bad = dict(body)
    bad["bogus_key"] = 1
    a = admin.post(path, bad)
    assert a.status == 400, (path, a)
    assert "bogus_key" in a["error"], (path, a)
    assert admin.status()["mode"] == "old"


def test_unknown_key_on_get_and_delete(env):
    proxy, admin = env
    for method, path in (("GET", "/status"), ("GET", "/journal"), ("GET", "/spool"),
                         ("DELETE", "/schedule/1")):
        a = admin.request(method, path, raw=b'{"bogus_key": 1}')
        assert a.status == 400 and "bogus_key" in a["error"], (method, path, a)


WRONG_TYPES = [
    ("/switch", {"to": 1}, "to"),
    ("/switch", {"to": "new", "force": "yes"}, "force"),
    ("/switch", {"to": "new", "force": 1}, "force"),
    ("/switch", {"to": "new", "project": ["a"]}, "project"),
    ("/switch", {"to": "new", "reason": {"x": 1}}, "reason"),
    ("/switch", {"to": "new", "at": 3600}, "at"),
    ("/switch", {"to": "new", "project": None}, "project"),
    ("/maintenance", {"on": "true"}, "on"),
    ("/maintenance", {"on": True, "until": 7200}, "until"),
    ("/hold", {"max": "30"}, "max"),
    ("/hold", {"max": True}, "max"),
    ("/resume", {"project": 7}, "project"),
]


def test_wrong_types_name_the_field(env):
    proxy, admin = env
    for path, body, field in WRONG_TYPES:
        a = admin.post(path, body)
        assert a.status == 400, (path, body, a)
        assert '"%s"' % field in a["error"], (path, body, a)
    a = raw_post(admin, "/switch", '["to", "new"]')
    assert a.status == 400 and "object" in a["error"], a
    st = admin.status()
    assert st["mode"] == "old" and st["projects"] == {} and st["scheduled"] == [], st


# ---------------------------------------------------------------------------
# fault 6: times out of range


BAD_TIMES = ["+99999999999999999999h", "+9999999999h", "+367d", "+1e308s", "+inf",
             "2020-01-01T00:00:00Z", "99999-01-01T00:00:00Z", "2026-02-30T00:00:00Z"]


def test_switch_at_out_of_range_is_refused(env):
    proxy, admin = env
    for at in BAD_TIMES:
        a = admin.post("/switch", {"to": "new", "force": True, "at": at})
        assert a.status == 400, (at, a)
        assert '"at"' in a["error"], (at, a)
    a = admin.post("/switch", {"to": "new", "force": True, "at": "2020-01-01T00:00:00Z"})
    assert "past" in a["error"], a
    a = admin.post("/switch", {"to": "new", "force": True, "at": "+9999999999h"})
    assert "366 days" in a["error"], a
    st = admin.status()
    assert st["mode"] == "old" and st["scheduled"] == [], st
    # the edges that are fine
    a = admin.post("/switch", {"to": "new", "force": True, "at": "+366d"})
    assert a.status == 202, a
    a = admin.post("/switch", {"to": "new", "force": True, "at": "+1h"})
    assert a.status == 202, a
    assert len(admin.status()["scheduled"]) == 2


def test_maintenance_until_out_of_range_is_refused(env):
    proxy, admin = env
    for until in BAD_TIMES:
        a = admin.maintenance(True, until=until)
        assert a.status == 400, (until, a)
        assert '"until"' in a["error"], (until, a)
    assert admin.status()["mode"] == "old"


def test_cli_at_out_of_range(env):
    proxy, admin = env
    p = cli_on(proxy, "switch", "new", "--force", "--at", "+9999999999h")
    assert p.returncode == 1, p
    line = p.stderr.strip()
    assert "\n" not in line and "at" in line and "366 days" in line, p.stderr
    p = cli_on(proxy, "switch", "new", "--force", "--at", "2020-01-01T00:00:00Z")
    assert p.returncode == 1 and "past" in p.stderr, p
    st = admin.status()
    assert st["mode"] == "old" and st["scheduled"] == [], st
