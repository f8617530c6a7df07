#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Open N keep-alive connections to a registry, send one `GET /v2/` on each,
read the answer, then hold them all open and idle.

    hold_connections.py --url http://127.0.0.1:5000 --count 10000 \
        [--status FILE] [--hold-seconds S] [--batch 500]

Prints one JSON line when every connection has its answer (or failed):
    {"event": "holding", "count": N, "ok": K, "status": {"200": K, ...}, "errors": {...}}
then holds until SIGTERM/SIGINT or --hold-seconds, and prints a last line
    {"event": "released", "still_open": M, "closed_by_server": C, "held_s": S}
The same JSON objects are written to --status FILE (rewritten each time).
RLIMIT_NOFILE is raised to fit. bench/compare uses it for the idle
connections test.
"""
import argparse
import errno
import json
import resource
import selectors
import signal
import socket
import sys
import time
import urllib.parse


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 256
    if soft >= want:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft), max(want, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Conn:
    __slots__ = ("sock", "buf", "state", "status")

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.state = "connecting"  # -> sent -> done | failed
        self.status = None


def response_complete(buf):
    """(status, complete) for a buffered HTTP/1.1 response."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return None, False
    head = buf[:head_end].decode("latin-1").split("\r\n")
    try:
        status = int(head[0].split(" ", 2)[1])
    except (IndexError, ValueError):
        return 0, True
    length = 0
    for line in head[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            length = int(v.strip() or 0)
    return status, len(buf) >= head_end + 4 + length


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--status", help="write the JSON status lines here too")
    ap.add_argument("--hold-seconds", type=float, default=0, help="0: until SIGTERM")
    ap.add_argument("--batch", type=int, default=500, help="connections opened at once")
    ap.add_argument("--timeout", type=float, default=60, help="bound on opening them all")
    a = ap.parse_args()

    u = urllib.parse.urlparse(a.url)
    host, port = u.hostname, u.port or 80
    raise_nofile(a.count)
    request = f"GET /v2/ HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: hold-connections\r\n\r\n".encode()

    stop = {"now": False}

    def on_signal(*_):
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def report(obj):
        line = json.dumps(obj)
        print(line, flush=True)
        if a.status:
            with open(a.status + ".tmp", "w") as f:
                f.write(line + "\n")
            import os
            os.replace(a.status + ".tmp", a.status)

    sel = selectors.DefaultSelector()
    conns = []
    errors = {}
    pending = 0
    started = time.monotonic()
    deadline = started + a.timeout

    def fail(c, why):
        nonlocal pending
        errors[why] = errors.get(why, 0) + 1
        c.state = "failed"
        try:
            sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()
        pending -= 1

    def service(timeout):
        nonlocal pending
        for key, ev in sel.select(timeout):
            c = key.data
            if c.state == "connecting" and ev & selectors.EVENT_WRITE:
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    fail(c, errno.errorcode.get(err, str(err)))
                    continue
                try:
                    c.sock.send(request)
                except OSError as e:
                    fail(c, errno.errorcode.get(e.errno, str(e)))
                    continue
                c.state = "sent"
                sel.modify(c.sock, selectors.EVENT_READ, c)
            elif c.state == "sent" and ev & selectors.EVENT_READ:
                try:
                    data = c.sock.recv(65536)
                except OSError as e:
                    fail(c, errno.errorcode.get(e.errno, str(e)))
                    continue
                if not data:
                    fail(c, "closed before answer" if not c.buf else "closed mid-answer")
                    continue
                c.buf += data
                status, done = response_complete(c.buf)
                if done:
                    c.status = status
                    c.state = "done"
                    c.buf = b""
                    sel.unregister(c.sock)
                    pending -= 1

    opened = 0
    while opened < a.count and not stop["now"] and time.monotonic() < deadline:
        n = min(a.batch, a.count - opened)
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            c = Conn(s)
            conns.append(c)
            pending += 1
            rc = s.connect_ex((host, port))
            if rc not in (0, errno.EINPROGRESS):
                fail(c, errno.errorcode.get(rc, str(rc)))
                continue
            sel.register(s, selectors.EVENT_WRITE, c)
        opened += n
        while pending > 0 and time.monotonic() < deadline and not stop["now"]:
            service(0.2)
    for c in conns:
        if c.state in ("connecting", "sent"):
            fail(c, "timeout")
    statuses = {}
    for c in conns:
        if c.state == "done":
            statuses[str(c.status)] = statuses.get(str(c.status), 0) + 1
    ok = statuses.get("200", 0)
    # Connections whose answer was not 200 are closed: only good ones are held.
    held = []
    for c in conns:
        if c.state == "done" and c.status == 200:
            held.append(c)
        elif c.state == "done":
            c.sock.close()
    report({"event": "holding", "count": a.count, "ok": ok, "status": statuses, "errors": errors,
            "open_s": round(time.monotonic() - started, 3)})

    # Hold: watch for the server closing any of them.
    for c in held:
        sel.register(c.sock, selectors.EVENT_READ, c)
    closed = 0
    hold_start = time.monotonic()
    while not stop["now"]:
        if a.hold_seconds and time.monotonic() - hold_start >= a.hold_seconds:
            break
        for key, _ in sel.select(0.5):
            c = key.data
            try:
                data = c.sock.recv(4096)
            except OSError:
                data = b""
            if not data:
                sel.unregister(c.sock)
                c.sock.close()
                c.state = "closed"
                closed += 1
    still = sum(1 for c in held if c.state == "done")
    report({"event": "released", "count": a.count, "ok": ok, "still_open": still,
            "closed_by_server": closed, "held_s": round(time.monotonic() - hold_start, 3)})
    for c in held:
        if c.state == "done":
            c.sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
