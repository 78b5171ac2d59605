#!/usr/bin/python3
"""dashboard-screenshot.py [OUT.png]: redo docs/dashboard.png, the README's
picture of the dashboard.

Starts a demo on free loopback ports (the two demo upstreams, cutover with
a TCP admin listener and a token, all in a temp directory, with the
integration tests' helpers), gives it a night's worth of state (a global
switch, a pilot project on its own mode, a project in maintenance with
spooled submissions, phones reporting their unsent forms, a scheduled
rollback), then has headless chromium open the page with the token and
save a 1200x900 screenshot. Needs build/cutover (or CUTOVER_BIN) and
chromium.
"""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
os.environ.setdefault("CUTOVER_BIN", os.path.join(ROOT, "build", "cutover"))

from browser_testlib import ISOLATION, chromium_path  # noqa: E402
from cutover_testlib import (Admin, Harness, free_port, multipart_submission,  # noqa: E402
                             request)

TOKEN = "demo-token-for-the-screenshot-0123456789"


def main():
    out = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                          os.path.join(ROOT, "docs", "dashboard.png"))
    exe = chromium_path()
    if not exe:
        sys.exit("dashboard-screenshot: chromium is not installed (apt-get install chromium)")
    h = Harness()
    try:
        old, new = h.upstream("old"), h.upstream("new")
        tf = h.path("token")
        tf.write_text(TOKEN + "\n")
        aport = free_port()
        proxy = h.proxy(old, new, admin='address = "127.0.0.1:%d"; token_file = "%s";'
                        % (aport, tf))
        admin = Admin("127.0.0.1:%d" % aport, token=TOKEN)
        # phones report their backlog: the number the team watches fall
        for project, devices in (("bihar-chw", [12, 4, 0, 7]), ("kenya-anc", [3, 1]),
                                 ("pilot", [2]), ("uganda-vht", [5, 9, 1])):
            for i, unsent in enumerate(devices):
                request(proxy.port, "GET", "/a/%s/phone/heartbeat/app/?device_id=%s-%d"
                        "&num_unsent_forms=%d" % (project, project, i, unsent))
        assert admin.switch("new", project="pilot", reason="pilot group").status == 200
        assert admin.maintenance(True, project="kenya-anc", until="+45m",
                                 reason="data dump").status == 200
        for i in range(3):
            ctype, form = multipart_submission("uuid:screenshot-%d" % i)
            request(proxy.port, "POST", "/a/kenya-anc/receiver/", [("Content-Type", ctype)], form)
        for i in range(6):
            request(proxy.port, "GET", "/a/uganda-vht/phone/restore/")
        assert admin.switch("new", at="+2h", reason="everyone else").status == 202
        os.makedirs(os.path.dirname(out), exist_ok=True)
        p = subprocess.run([exe] + ISOLATION + [
            "--user-data-dir=%s" % h.path("chromium"), "--hide-scrollbars",
            "--window-size=1200,900", "--virtual-time-budget=3000", "--screenshot=%s" % out,
            "http://127.0.0.1:%d/#token=%s" % (aport, TOKEN)],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        if p.returncode != 0 or not os.path.exists(out):
            sys.exit("dashboard-screenshot: chromium failed:\n" + p.stderr[-3000:])
        print("%s: %d bytes" % (out, os.path.getsize(out)))
    finally:
        problems = h.teardown()
        if problems:
            sys.exit("\n".join(problems))


if __name__ == "__main__":
    main()
