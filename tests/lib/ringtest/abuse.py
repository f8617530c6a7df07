# SPDX-License-Identifier: Apache-2.0
"""Hostile load for the bounds test (short, in CI) and bench/abuse (long).

One round is: `absent` requests for random names, tags, digests and upload
ids that do not exist (pipelined on keep-alive connections, so a Python
client reaches tens of thousands a second), `sessions` upload sessions
started and abandoned, and `stalled` connections that send half a request
head and stop. Meanwhile a well-behaved client pushes and pulls an image and
polls /healthz; every failure it sees is counted.

Every loop is bounded by a count and a deadline; all traffic is to the
registry on loopback.
"""
import json
import os
import random
import resource
import socket
import threading
import time
import urllib.request

from .client import Client, sha256

PIPELINE_DEPTH = 64
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def status(host):
    """ringport's /ringport/v1/status document."""
    with urllib.request.urlopen(f"http://{host}/ringport/v1/status", timeout=10) as r:
        return json.loads(r.read())


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def threads_of(pid):
    """{tid: (name, nice)} of a live process's threads."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue  # ended meanwhile
        out[int(tid)] = (name, int(fields[16]))  # field 19 of stat: nice
    return out


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def _hex(rng, n=64):
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


# Each asks for something absent: {n} a random repository, {k} the known
# one (absent digests and tags in it), {d} a digest, {t} a tag, {u} an upload id.
ABSENT_KINDS = (
    "GET /v2/{n}/manifests/{t}",
    "HEAD /v2/{n}/manifests/{d}",
    "DELETE /v2/{n}/manifests/{d}",
    "DELETE /v2/{n}/manifests/{t}",
    "DELETE /v2/{k}/manifests/{d}",
    "DELETE /v2/{k}/manifests/{t}",
    "DELETE /v2/{k}/blobs/{d}",
    "HEAD /v2/{k}/blobs/{d}",
    "GET /v2/{n}/tags/list?n=10&last={t}",
    "GET /v2/{k}/referrers/{d}",  # 200: an empty index, as the spec says
    "GET /v2/{n}/blobs/uploads/{u}",
    "DELETE /v2/{n}/blobs/uploads/{u}",
)


def absent_requests(rng, known_repo, count):
    """`count` (method, request bytes), each for something absent."""
    out = []
    for i in range(count):
        line = ABSENT_KINDS[i % len(ABSENT_KINDS)].format(
            n=f"absent/{_hex(rng, 12)}", k=known_repo, d=f"sha256:{_hex(rng)}",
            t=f"t{_hex(rng, 10)}", u=_hex(rng, 32))
        out.append((line.split(" ", 1)[0], f"{line} HTTP/1.1\r\nHost: abuse\r\n\r\n".encode()))
    return out


class _Reader:
    """Reads pipelined responses (Content-Length bodies only) off one socket."""

    def __init__(self, sock):
        self.sock, self.buf = sock, bytearray()

    def response(self, method, deadline):
        while b"\r\n\r\n" not in self.buf:
            self._fill(deadline)
        end = self.buf.index(b"\r\n\r\n") + 4
        head = bytes(self.buf[:end])
        code = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:].strip())
        if method == "HEAD" or code in (204, 304):
            length = 0
        while len(self.buf) < end + length:
            self._fill(deadline)
        del self.buf[:end + length]
        return code

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no response in time")
        self.sock.settimeout(left)
        data = self.sock.recv(1 << 16)
        if not data:
            raise ConnectionError("server closed a keep-alive connection")
        self.buf += data


def drive_pipelined(host, requests, deadline):
    """Sends `requests` pipelined, PIPELINE_DEPTH at a time; returns {status: count}."""
    statuses = {}
    h, p = host.rsplit(":", 1)
    sock = socket.create_connection((h, int(p)), timeout=10)
    try:
        reader = _Reader(sock)
        for at in range(0, len(requests), PIPELINE_DEPTH):
            batch = requests[at:at + PIPELINE_DEPTH]
            sock.sendall(b"".join(raw for _, raw in batch))
            for method, _ in batch:
                code = reader.response(method, deadline)
                statuses[code] = statuses.get(code, 0) + 1
    finally:
        sock.close()
    return statuses


def drive_parallel(host, requests, conns, deadline):
    """drive_pipelined over `conns` connections at once (threads); merged statuses."""
    parts = [requests[i::conns] for i in range(conns)]
    results, errors = [None] * conns, []

    def one(i):
        try:
            results[i] = drive_pipelined(host, parts[i], deadline)
        except Exception as e:  # reported below, with the others' results
            errors.append(repr(e))

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + 5)
    merged = {}
    for r in results:
        for k, v in (r or {}).items():
            merged[k] = merged.get(k, 0) + v
    if errors:
        merged["errors"] = errors[:5]
    return merged


def start_sessions(host, count, deadline, repos=50):
    """Starts `count` upload sessions and abandons them; returns {status: count}."""
    reqs = [("POST", f"POST /v2/abandon/r{i % repos}/blobs/uploads/ HTTP/1.1\r\n"
                     f"Host: abuse\r\nContent-Length: 0\r\n\r\n".encode())
            for i in range(count)]
    return drive_pipelined(host, reqs, deadline)


def raise_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))


def stall_connections(host, count, deadline):
    """Opens `count` connections that each send half a request head and stall."""
    raise_fd_limit(count + 1024)
    h, p = host.rsplit(":", 1)
    socks = []
    for i in range(count):
        if time.monotonic() > deadline:
            break
        s = socket.create_connection((h, int(p)), timeout=10)
        s.sendall(f"GET /v2/stall/{i}/manifests/latest HTTP/1.1\r\nHost: ab".encode())
        socks.append(s)
    return socks


class WellBehaved(threading.Thread):
    """Pushes and pulls one small image again and again, and polls /healthz,
    until stopped; counts what failed."""

    def __init__(self, host, rounds_max=100000, health_path="/healthz"):
        super().__init__(daemon=True)
        self.host, self.rounds_max, self.health_path = host, rounds_max, health_path
        self.stop_flag = threading.Event()
        self.ok = self.failures = self.health_failures = 0
        self.errors = []

    def run(self):
        c = Client(self.host)
        for i in range(self.rounds_max):
            if self.stop_flag.is_set():
                return
            try:
                layer = f"well-behaved layer {i}".encode()
                body, digest = c.push_image("good/app", f"v{i % 5}", layers=(layer,))
                got = c.get_manifest("good/app", digest, accept=OCI_MANIFEST)
                blob = c.get_blob("good/app", sha256(layer))
                # Then deleted again, so what the registry stores stays the
                # same size: growth between rounds is the abuse's, not this.
                gone = [c.request("DELETE", f"/v2/good/app/manifests/{digest}").status,
                        c.request("DELETE", f"/v2/good/app/blobs/{sha256(layer)}").status]
                if got.status == 200 and got.body == body and blob.body == layer and \
                        gone == [202, 202]:
                    self.ok += 1
                else:
                    self.failures += 1
                    self.errors.append(f"pull: {got.status} {blob.status}, delete: {gone}")
            except Exception as e:  # a refused push is what this counts
                self.failures += 1
                self.errors.append(repr(e))
            try:
                with urllib.request.urlopen(f"http://{self.host}{self.health_path}",
                                            timeout=10) as r:
                    if r.status != 200:
                        self.health_failures += 1
            except Exception as e:
                self.health_failures += 1
                self.errors.append(f"healthz: {e!r}")
            self.stop_flag.wait(0.01)

    def finish(self):
        self.stop_flag.set()
        self.join(timeout=60)


def one_round(host, absent, sessions, stalled, seed, time_limit_s, conns=1):
    """Runs one round; returns what it saw. Stalled connections are closed at
    the end (as their clients would die), after everything else ran."""
    rng = random.Random(seed)
    deadline = time.monotonic() + time_limit_s
    t0 = time.monotonic()
    socks = stall_connections(host, stalled, deadline)
    codes = {}
    batch = 20000 * conns
    for at in range(0, absent, batch):
        reqs = absent_requests(rng, "good/app", min(batch, absent - at))
        for k, v in drive_parallel(host, reqs, conns, deadline).items():
            if k == "errors":
                codes.setdefault("errors", []).extend(v)
            else:
                codes[k] = codes.get(k, 0) + v
    sess = start_sessions(host, sessions, deadline)
    for s in socks:
        s.close()
    return {"absent_statuses": codes, "session_statuses": sess, "stalled": len(socks),
            "seconds": time.monotonic() - t0}
