#!/usr/bin/env python3
"""hold_idle.py PORT N PATH: opens N keep-alive connections to 127.0.0.1:PORT,
sends one GET PATH on each and reads its whole response, then prints
"ready OK" (OK = connections that got a 200 and are still open) and holds
them until stdin closes or a line arrives (at most 120 s). Bench furniture
for the "RSS per idle keep-alive connection" measurement."""

import re
import resource
import select
import socket
import sys
import time

DEADLINE = 60.0     # to open and use all connections
HOLD_MAX = 120.0    # to hold them


def read_response(sock):
    """Reads one response with a Content-Length body; True if it was a 200."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            return False
        buf += data
    head, _, body = buf.partition(b"\r\n\r\n")
    m = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
    if not m:
        return False
    need = int(m.group(1)) - len(body)
    while need > 0:
        data = sock.recv(min(need, 65536))
        if not data:
            return False
        need -= len(data)
    return head.startswith(b"HTTP/1.1 200")


def main():
    port, n, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard) if hard != resource.RLIM_INFINITY else want, hard))
    req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: cutover-bench\r\n\r\n" % (path, port)).encode()
    end = time.monotonic() + DEADLINE
    socks = []
    ok = 0
    for _ in range(n):
        if time.monotonic() > end:
            break
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.settimeout(5)
            s.sendall(req)
            if read_response(s):
                ok += 1
            socks.append(s)
        except OSError:
            break
    # A connection the server closed after answering is not idle-held.
    time.sleep(0.5)
    alive = 0
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(1, socket.MSG_PEEK) == b"":
                continue        # EOF: closed by the server
        except BlockingIOError:
            pass                # open, nothing to read: idle
        except OSError:
            continue
        alive += 1
    print("ready %d" % min(ok, alive), flush=True)
    select.select([sys.stdin], [], [], HOLD_MAX)
    for s in socks:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
