"""The state file: the persisted mode is honoured at start, and a corrupt
one stops cutover from starting (never a silent return to old)."""

import json

from cutover_testlib import HEALTH_PATH, get, request


def test_state_file_new_sends_traffic_to_new(harness):
    old = harness.upstream("old")
    new = harness.upstream("new")
    harness.path("state.json").write_text(json.dumps({"mode": "new"}) + "\n")
    proxy = harness.proxy(old, new)
    h = get(proxy.port, HEALTH_PATH)
    assert h.status == 200 and b"new" in h.body, h
    assert h.header("X-Cutover-Mode") == "new"
    for method, path in (("GET", "/echo?state=1"), ("GET", "/a/alpha/phone/restore/"),
                         ("HEAD", "/a/alpha/receiver/")):
        r = request(proxy.port, method, path)
        assert r.header("X-Upstream") == "new", (path, r)
    assert new.find("/echo?state=1")
    assert not old.find("/echo?state=1") and not old.find("/a/alpha/")


def test_no_state_file_means_old(harness):
    old = harness.upstream("old")
    new = harness.upstream("new")
    proxy = harness.proxy(old, new)
    assert get(proxy.port, "/echo").header("X-Upstream") == "old"
    assert get(proxy.port, HEALTH_PATH).header("X-Cutover-Mode") == "old"


def test_state_file_old_explicit(harness):
    old = harness.upstream("old")
    new = harness.upstream("new")
    harness.path("state.json").write_text('{"mode": "old"}')
    proxy = harness.proxy(old, new)
    assert get(proxy.port, "/echo").header("X-Upstream") == "old"


def test_corrupt_state_file_refuses_to_start(harness):
    old = harness.upstream("old")
    new = harness.upstream("new")
    state = harness.path("state.json")
    state.write_text('{"mode": "new"')                 # truncated JSON
    _, text = harness.config(old, new)
    rc, err = harness.proxy_start_fails(text)
    assert rc != 0
    assert str(state) in err, "the message does not name the state file:\n" + err
    assert not old.records() and not new.records()


def test_state_file_with_unknown_mode_refuses_to_start(harness):
    state = harness.path("state.json")
    state.write_text('{"mode": "sideways"}')
    _, text = harness.config()
    rc, err = harness.proxy_start_fails(text)
    assert rc != 0
    assert str(state) in err, err
