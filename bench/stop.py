#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The stop step (issue 9): how promptly a registry stops with work pending,
and which threads it runs.

Against a fresh server: `--idle` keep-alive connections that made one
request, `--stalled` connections that sent half a request head, and one
upload whose PATCH sent half its body, all pending; then SIGTERM, timed
until the process is gone. ringport runs with http.drain_timeout_ms = 1000
and hour-long header, idle and body timeouts, so a stop that waited for a
timeout instead of cancelling it would show; its target is the drain timeout
plus 0.5 s. Distribution 2.8.2 (no drain configured) exits at once, cutting
whatever is in flight. Also the OS threads each runs at idle.

bench/compare runs it for both (step `stop`); alone, against a binary:

    bench/stop.py [--idle 1000] [--stalled 1000]
"""
import argparse
import json
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "lib"))
from ringtest import abuse  # noqa: E402
from ringtest.rawhttp import connect  # noqa: E402

from abuse import side_by_side  # noqa: E402  (bench/abuse.py)

DRAIN_MS = 1000
RINGPORT_STOP_ENV = {
    "RINGPORT_HTTP_DRAIN_TIMEOUT_MS": str(DRAIN_MS),
    "RINGPORT_HTTP_HEADER_TIMEOUT_MS": "3600000",
    "RINGPORT_HTTP_IDLE_TIMEOUT_MS": "3600000",
    "RINGPORT_HTTP_BODY_TIMEOUT_MS": "3600000",
}


def threads(pid):
    """{name: count} of a process's threads, io_uring's per-thread workers as one name."""
    out = {}
    for name, _ in abuse.threads_of(pid).values():
        name = re.sub(r"^(iou-wrk|iou-sqp)-\d+$", r"\1", name)
        out[name] = out.get(name, 0) + 1
    return out


def open_idle(host, count):
    socks = []
    for _ in range(count):
        s = connect(host, 10)
        s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: stop\r\n\r\n")
        socks.append(s)
    for s in socks:  # each answered once, then idle
        s.recv(65536)
    return socks


def half_upload(host):
    """A POST, then a PATCH that sends half of its declared body and stops."""
    s = connect(host, 10)
    s.sendall(b"POST /v2/stop/half/blobs/uploads/ HTTP/1.1\r\nHost: stop\r\n"
              b"Content-Length: 0\r\n\r\n")
    head = s.recv(65536).decode(errors="replace")
    loc = next((line.split(":", 1)[1].strip() for line in head.split("\r\n")
                if line.lower().startswith("location:")), None)
    if not loc:
        raise RuntimeError(f"no upload session: {head[:200]!r}")
    path = loc.split("://", 1)[-1]
    path = path[path.index("/"):] if not loc.startswith("/") else loc
    s.sendall(f"PATCH {path} HTTP/1.1\r\nHost: stop\r\nContent-Type: application/octet-stream\r\n"
              f"Content-Length: {1 << 20}\r\n\r\n".encode() + b"x" * (1 << 19))
    return s


def measure(server, idle, stalled, say=print):
    """`server` has .url, .pid and .proc; SIGTERMs it and returns the figures."""
    host = server.url.split("://", 1)[1]
    abuse.raise_fd_limit(idle + stalled + 1024)
    socks = open_idle(host, idle)
    socks += abuse.stall_connections(host, stalled, time.monotonic() + 300)
    socks.append(half_upload(host))
    time.sleep(0.5)
    th = threads(server.pid)
    t0 = time.monotonic()
    os.killpg(server.proc.pid, signal.SIGTERM)
    try:
        code = server.proc.wait(timeout=120)
    except Exception:  # noqa: BLE001 - reported as not stopped
        code = None
    took = time.monotonic() - t0
    for s in socks:
        s.close()
    out = {"idle": idle, "stalled": stalled, "exit_s": round(took, 3), "exit_code": code,
           "threads": th, "thread_count": sum(th.values())}
    say(f"  exit {code} after {took:.3f} s; {out['thread_count']} threads")
    return out


def compare_step(args, start_ringport, start_distribution, say):
    def one(kind, server):
        say(f"stop: {args.stop_idle:,} idle + {args.stop_stalled:,} half-request connections "
            f"and a half-sent upload, then SIGTERM, against {kind}")
        return measure(server, args.stop_idle, args.stop_stalled, say=say)

    return side_by_side(start_ringport, start_distribution, say, one)


def rows(res, row, fmt):
    st = res.get("stop")
    if not st:
        return
    rp, di = st.get("ringport", {}), st.get("distribution", {})

    def cell(x):
        if "error" in x:
            return f"failed: {x['error']}"
        return f"{fmt(x.get('exit_s'), 's', 3)} (exit {x.get('exit_code')})"

    n = f"{rp.get('idle', 0):,} idle + {rp.get('stalled', 0):,} half-request connections"
    e = rp.get("exit_s")
    row(f"stop: SIGTERM to exit with {n} and a half-sent upload pending (ringport drains "
        f"{DRAIN_MS} ms, its timeouts an hour)", cell(rp), cell(di) + " (no drain: cuts at once)",
        "—", f"≤ drain + 0.5 s ({(DRAIN_MS + 500) / 1000:.1f} s), exit 0",
        None if e is None else e <= (DRAIN_MS + 500) / 1000 and rp.get("exit_code") == 0)

    def th(x):
        t = x.get("threads")
        if not t:
            return "—"
        return f"{x['thread_count']}: " + ", ".join(f"{k} {v}" for k, v in sorted(t.items()))

    row("threads at idle, with the connections open (information)", th(rp), th(di), "—", "—",
        None)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--stalled", type=int, default=1000)
    a = ap.parse_args()
    import shutil
    import tempfile

    import crash  # bench/crash.py: a ringport on a temporary root
    root = tempfile.mkdtemp(prefix="bench-stop-")
    proc = crash.start_ringport(root, root + ".log", RINGPORT_STOP_ENV)

    class S:
        url = f"http://{proc.host}"
        pid = proc.p.pid

    S.proc = proc.p
    try:
        print(json.dumps(measure(S, a.idle, a.stalled), indent=1))
    finally:
        proc.kill()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
