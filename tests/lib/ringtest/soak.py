# SPDX-License-Identifier: Apache-2.0
"""The soak (issue 9): load held, faults survived, nothing lost.

Clients push (monolithic, chunked, resumed on a new connection), pull, HEAD,
list tags, walk the catalog, delete and mount against one ringport, while a
supervisor kills it with SIGKILL at random moments and restarts it, a filler
fills the root's file system and frees it again, and slow readers pull blobs
a few KiB at a time. Every acknowledged write goes into a ledger; after each
restart and at the end the ledger is checked against the registry, and at
the end Distribution 2.8.2 must serve the same tree.

Each client owns its repositories and works sequentially, so the ledger is
exact: a write that was acknowledged must be there; a write whose answer was
lost (the kill, a reset) may or may not have landed, so that tag or manifest
is "uncertain" until the client writes it again. Errors are counted by kind;
only those the faults explain are allowed.

Used by bench/soak.py (long) and tests/integration/test_soak.py (short).
Every loop is bounded by a count and a deadline; traffic goes to loopback.
"""
import http.client
import json
import os
import random
import resource
import shutil
import socket
import subprocess
import threading
import time

from .client import Client, path_of, sha256
from .harness import Distribution, Ringport, wait_until

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCTET = "application/octet-stream"
EXPLAINED = {"connection", "507", "503", "timeout"}  # what a kill, a full disk or a drain explain


class Ledger:
    """What one client's acknowledged writes say must be there."""

    def __init__(self):
        self.tags = {}        # (repo, tag) -> manifest digest
        self.manifests = {}   # (repo, digest) -> bytes
        self.blobs = {}       # (repo, digest) -> bytes (kept small: a few KiB)
        self.uncertain = set()  # (repo, tag or digest) whose last write lost its answer

    def forget_uncertain(self, repo, ref):
        self.uncertain.discard((repo, ref))


class SoakClient(threading.Thread):
    def __init__(self, k, soak):
        super().__init__(daemon=True)
        self.k, self.soak = k, soak
        self.rng = random.Random(1000 + k)
        self.ledger = Ledger()
        self.ops = {}
        self.errors = {}
        self.lock = threading.Lock()  # held while checking: no writes meanwhile

    def count(self, table, key):
        table[key] = table.get(key, 0) + 1

    def repo(self):
        return f"soak/c{self.k}/r{self.rng.randrange(3)}"

    def run(self):
        while not self.soak.stop.is_set():
            self.soak.running.wait(60)  # cleared while the supervisor checks
            op = self.rng.choice(("push", "push", "chunked", "resumed", "pull", "pull", "head",
                                  "tags", "catalog", "delete", "mount"))
            with self.lock:
                try:
                    getattr(self, "op_" + op)()
                    self.count(self.ops, op)
                except SoakError as e:
                    self.count(self.errors, e.kind)
                    if e.kind not in EXPLAINED:
                        self.soak.unexplained.append(f"c{self.k} {op}: {e}")
            self.soak.stop.wait(self.rng.uniform(0, 0.02))

    # --- requests ---------------------------------------------------------
    def req(self, method, path, body=None, headers=None, ok=(200,)):
        try:
            r = Client(self.soak.host()).request(method, path, body=body, headers=headers)
        except (OSError, http.client.HTTPException) as e:
            raise SoakError("timeout" if isinstance(e, socket.timeout) else "connection",
                            f"{method} {path}: {e!r}")
        if r.status not in ok:
            kind = str(r.status) if r.status in (503, 507) else f"status {r.status}"
            raise SoakError(kind, f"{method} {path}: {r.status} {r.body[:200]!r}")
        return r

    def blob_bytes(self):
        return os.urandom(self.rng.randrange(1, 8192))

    def put_blob_monolithic(self, repo, data):
        d = sha256(data)
        self.req("POST", f"/v2/{repo}/blobs/uploads/?digest={d}", body=data,
                 headers={"Content-Type": OCTET}, ok=(201,))
        self.ledger.blobs[(repo, d)] = data
        return d

    def push_manifest(self, repo, blob_digests, tag):
        cfg = json.dumps({"k": self.k, "n": self.rng.random()}).encode()
        cfg_d = self.put_blob_monolithic(repo, cfg)
        m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
             "config": {"mediaType": OCI_CONFIG, "digest": cfg_d, "size": len(cfg)},
             "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d,
                         "size": len(self.ledger.blobs[(repo, d)])} for d in blob_digests]}
        body = json.dumps(m).encode()
        md = sha256(body)
        self.ledger.uncertain.add((repo, tag))
        self.ledger.uncertain.add((repo, md))
        self.req("PUT", f"/v2/{repo}/manifests/{tag}", body=body,
                 headers={"Content-Type": OCI_MANIFEST}, ok=(201,))
        self.ledger.tags[(repo, tag)] = md
        self.ledger.manifests[(repo, md)] = body
        self.ledger.forget_uncertain(repo, tag)
        self.ledger.forget_uncertain(repo, md)

    def op_push(self):
        repo = self.repo()
        d = self.put_blob_monolithic(repo, self.blob_bytes())
        self.push_manifest(repo, [d], f"t{self.rng.randrange(4)}")

    def op_chunked(self):
        repo = self.repo()
        data = self.blob_bytes()
        r = self.req("POST", f"/v2/{repo}/blobs/uploads/", ok=(202,))
        loc = path_of(r.header("Location"))
        cut = len(data) // 2
        for a, b in ((0, cut), (cut, len(data))):
            if a == b:
                continue
            r = self.req("PATCH", loc, body=data[a:b], headers={
                "Content-Type": OCTET, "Content-Range": f"{a}-{b - 1}"}, ok=(202,))
            loc = path_of(r.header("Location"))
        sep = "&" if "?" in loc else "?"
        self.req("PUT", f"{loc}{sep}digest={sha256(data)}", ok=(201,))
        self.ledger.blobs[(repo, sha256(data))] = data
        self.push_manifest(repo, [sha256(data)], f"t{self.rng.randrange(4)}")

    def op_resumed(self):
        """A session left idle (maybe across a restart or an idle release), then
        its status read and the rest sent on a new connection."""
        repo = self.repo()
        data = self.blob_bytes() + self.blob_bytes()
        r = self.req("POST", f"/v2/{repo}/blobs/uploads/", ok=(202,))
        loc = path_of(r.header("Location"))
        cut = len(data) // 3
        r = self.req("PATCH", loc, body=data[:cut], headers={"Content-Type": OCTET}, ok=(202,))
        loc = path_of(r.header("Location"))
        self.soak.stop.wait(self.rng.uniform(0, 0.3))
        st = self.req("GET", loc, ok=(204, 404))
        if st.status == 404:
            return  # purged or lost with a kill before any byte was durable: allowed
        have = int(st.header("Range").split("-")[1]) + 1 if cut else 0
        if have != cut:
            raise SoakError("status resumed", f"upload at {have}, {cut} were acknowledged")
        r = self.req("PATCH", loc, body=data[cut:], headers={"Content-Type": OCTET}, ok=(202,))
        loc = path_of(r.header("Location"))
        sep = "&" if "?" in loc else "?"
        self.req("PUT", f"{loc}{sep}digest={sha256(data)}", ok=(201,))
        self.ledger.blobs[(repo, sha256(data))] = data

    def op_pull(self):
        if not self.ledger.manifests:
            return
        (repo, md), body = self.rng.choice(sorted(self.ledger.manifests.items()))
        r = self.req("GET", f"/v2/{repo}/manifests/{md}", headers={"Accept": OCI_MANIFEST})
        if r.body != body:
            raise SoakError("wrong bytes", f"{repo}@{md}")
        for layer in json.loads(body)["layers"]:
            b = self.req("GET", f"/v2/{repo}/blobs/{layer['digest']}")
            if sha256(b.body) != layer["digest"]:
                raise SoakError("wrong bytes", f"{repo} blob {layer['digest']}")

    def op_head(self):
        if self.ledger.blobs:
            (repo, d), data = self.rng.choice(sorted(self.ledger.blobs.items()))
            r = self.req("HEAD", f"/v2/{repo}/blobs/{d}")
            if r.header("Content-Length") != str(len(data)):
                raise SoakError("wrong size", f"{repo} {d}")

    def op_tags(self):
        repo = self.repo()
        r = self.req("GET", f"/v2/{repo}/tags/list", ok=(200, 404))
        got = set(r.json().get("tags") or []) if r.status == 200 else set()
        want = {t for (rp, t) in self.ledger.tags if rp == repo}
        maybe = {t for (rp, t) in self.ledger.uncertain if rp == repo}
        if not (want - maybe) <= got or not got <= (want | maybe):
            raise SoakError("wrong tags", f"{repo}: {sorted(got)} vs {sorted(want)}")

    def op_catalog(self):
        self.req("GET", "/v2/_catalog?n=100")

    def op_delete(self):
        tags = sorted(t for t in self.ledger.tags if t not in self.ledger.uncertain)
        if not tags:
            return
        repo, tag = self.rng.choice(tags)
        self.ledger.uncertain.add((repo, tag))
        self.req("DELETE", f"/v2/{repo}/manifests/{tag}", ok=(202,))
        del self.ledger.tags[(repo, tag)]
        self.ledger.forget_uncertain(repo, tag)

    def op_mount(self):
        others = [c for c in self.soak.clients if c is not self and c.ledger.blobs]
        if not others:
            return
        try:  # another client's ledger, read without its lock (it may be writing)
            (frm, d), data = self.rng.choice(list(self.rng.choice(others).ledger.blobs.items()))
        except RuntimeError:
            return
        repo = self.repo()
        r = self.req("POST", f"/v2/{repo}/blobs/uploads/?mount={d}&from={frm}", ok=(201, 202))
        if r.status == 201:
            self.ledger.blobs[(repo, d)] = data
        else:  # not linked there any more: a session was started; cancel it
            self.req("DELETE", path_of(r.header("Location")), ok=(204, 404))

    # --- the check --------------------------------------------------------
    def check(self, host, accept_404_for_uncertain=True):
        """Every acknowledged manifest, tag and blob is there, byte-identical."""
        problems = []
        c = Client(host)
        for (repo, md), body in self.ledger.manifests.items():
            r = c.request("GET", f"/v2/{repo}/manifests/{md}", headers={"Accept": OCI_MANIFEST})
            if (repo, md) in self.ledger.uncertain:
                continue
            still_tagged = any(v == md for (rp, _), v in self.ledger.tags.items() if rp == repo)
            if r.status == 404 and not still_tagged:
                continue  # deleted through a tag delete of the manifest it pointed to
            if r.status != 200 or r.body != body:
                problems.append(f"manifest {repo}@{md}: {r.status}")
        for (repo, tag), md in self.ledger.tags.items():
            if (repo, tag) in self.ledger.uncertain:
                continue
            r = c.request("HEAD", f"/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
            if r.status != 200 or r.header("Docker-Content-Digest") != md:
                problems.append(f"tag {repo}:{tag}: {r.status} {r.header('Docker-Content-Digest')}")
        for (repo, d), data in self.ledger.blobs.items():
            r = c.request("GET", f"/v2/{repo}/blobs/{d}")
            if r.status != 200 or r.body != data:
                problems.append(f"blob {repo}@{d}: {r.status}")
        return problems


class SoakError(Exception):
    def __init__(self, kind, msg):
        super().__init__(msg)
        self.kind = kind


class Filler(threading.Thread):
    """Fills the file system holding the root, holds it full, frees it."""

    def __init__(self, soak, path, hold_s=5.0, every_s=30.0):
        super().__init__(daemon=True)
        self.soak, self.path, self.hold_s, self.every_s = soak, path, hold_s, every_s
        self.fills = 0

    def run(self):
        while not self.soak.stop.wait(self.every_s):
            try:
                with open(self.path, "wb") as f:
                    chunk = b"\0" * (1 << 20)
                    for _ in range(1 << 16):  # bounded: 64 GiB at most
                        f.write(chunk)
                        f.flush()
            except OSError:
                pass  # ENOSPC: full
            self.fills += 1
            self.soak.stop.wait(self.hold_s)
            try:
                os.unlink(self.path)
            except OSError:
                pass


class SlowReader(threading.Thread):
    """Pulls one blob 4 KiB at a time with pauses, again and again."""

    def __init__(self, soak):
        super().__init__(daemon=True)
        self.soak = soak
        self.reads = 0

    def run(self):
        rng = random.Random(7)
        while not self.soak.stop.wait(0.5):
            owners = [c for c in self.soak.clients if c.ledger.blobs]
            if not owners:
                continue
            try:
                (repo, d), _ = rng.choice(list(rng.choice(owners).ledger.blobs.items()))
            except RuntimeError:  # its client is writing: another time
                continue
            try:
                h, p = self.soak.host().rsplit(":", 1)
                with socket.create_connection((h, int(p)), timeout=10) as s:
                    s.sendall(f"GET /v2/{repo}/blobs/{d} HTTP/1.1\r\nHost: s\r\n\r\n".encode())
                    for _ in range(8):
                        if not s.recv(4096):
                            break
                        time.sleep(0.2)
                self.reads += 1
            except OSError:
                pass


class Soak:
    def __init__(self, root, clients=64, duration_s=600, kill_every_s=(20, 60), fs_path=None,
                 env=None, say=print):
        self.root, self.duration_s, self.kill_every_s = root, duration_s, kill_every_s
        self.fs_path, self.say = fs_path, say
        self.stop = threading.Event()
        self.running = threading.Event()
        self.running.set()
        self.server = Ringport(root=root, env=env or {})
        self._host = None
        self.clients = [SoakClient(k, self) for k in range(clients)]
        self.unexplained, self.check_problems = [], []
        self.restarts, self.rss = 0, []
        self.filler_every_s, self.filler = 30.0, None

    def host(self):
        return self._host

    def restart(self, kill=True):
        """Kill -9 (or SIGTERM) with requests in flight, restart, and check
        every ledger while no client writes."""
        if kill:
            self.server.kill()
        self.running.clear()
        for c in self.clients:
            c.lock.acquire()  # its in-flight request has ended (refused, reset)
        try:
            if not kill:
                self.server.stop()
            self.server.start()
            self._host = self.server.host
            self.server.wait_ready(timeout_s=300)
            self.restarts += 1
            for c in self.clients:
                self.check_problems += c.check(self._host)
        finally:
            for c in self.clients:
                c.lock.release()
            self.running.set()

    def run(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
        self.server.start()
        self._host = self.server.host
        self.server.wait_ready(timeout_s=300)
        extras = [SlowReader(self) for _ in range(4)]
        if self.fs_path:
            self.filler = Filler(self, os.path.join(self.fs_path, "filler"),
                                 hold_s=self.filler_every_s / 4, every_s=self.filler_every_s)
            extras.append(self.filler)
        for t in self.clients + extras:
            t.start()
        t0 = time.monotonic()
        rng = random.Random(3)
        next_kill = t0 + rng.uniform(*self.kill_every_s)
        while time.monotonic() - t0 < self.duration_s:
            time.sleep(1.0)
            self.rss.append((round(time.monotonic() - t0), vm_rss_kib(self.server.proc.pid)))
            if time.monotonic() >= next_kill:
                self.say(f"soak: kill -9 at {time.monotonic() - t0:.0f} s")
                self.restart(kill=True)
                next_kill = time.monotonic() + rng.uniform(*self.kill_every_s)
        self.stop.set()
        for t in self.clients + extras:
            t.join(timeout=60)
        if self.fs_path:
            try:
                os.unlink(os.path.join(self.fs_path, "filler"))
            except OSError:
                pass
        self.restart(kill=False)  # a clean stop too, then the last check
        code = self.server.stop()
        return self.report(code)

    def report(self, code):
        ops, errors = {}, {}
        for c in self.clients:
            for k, v in c.ops.items():
                ops[k] = ops.get(k, 0) + v
            for k, v in c.errors.items():
                errors[k] = errors.get(k, 0) + v
        return {"duration_s": self.duration_s, "clients": len(self.clients),
                "requests_ok": ops, "errors": errors, "restarts": self.restarts,
                "unexplained": self.unexplained[:20], "check_problems": self.check_problems[:20],
                "rss_kib": self.rss, "clean_stop_code": code,
                "sanitizer": self.server.sanitizer_reports()[:5],
                "fills": self.filler.fills if self.filler else 0,
                "acknowledged": {"manifests": sum(len(c.ledger.manifests) for c in self.clients),
                                 "blobs": sum(len(c.ledger.blobs) for c in self.clients)}}

    def tree_integrity(self):
        """Every blob in the tree hashes to its path: nothing half-written is visible."""
        bad = []
        top = os.path.join(self.root, "docker", "registry", "v2", "blobs", "sha256")
        for dp, _, fns in os.walk(top):
            if "data" in fns:
                with open(os.path.join(dp, "data"), "rb") as f:
                    if sha256(f.read()) != "sha256:" + os.path.basename(dp):
                        bad.append(dp)
        return bad

    def distribution_serves(self, sample=200):
        """Distribution 2.8.2 on the same tree serves a sample of the ledger."""
        problems = []
        items = [(c, k) for c in self.clients for k in c.ledger.manifests
                 if k not in c.ledger.uncertain]
        random.Random(5).shuffle(items)
        with Distribution(root=self.root) as d:
            cl = Client(d.host)
            for c, (repo, md) in items[:sample]:
                still = any(v == md for (rp, _), v in c.ledger.tags.items() if rp == repo)
                r = cl.request("GET", f"/v2/{repo}/manifests/{md}",
                               headers={"Accept": OCI_MANIFEST})
                if r.status == 404 and not still:
                    continue
                if r.status != 200 or r.body != c.ledger.manifests[(repo, md)]:
                    problems.append(f"distribution: {repo}@{md}: {r.status}")
                    continue
                for layer in json.loads(r.body)["layers"]:
                    b = cl.request("GET", f"/v2/{repo}/blobs/{layer['digest']}")
                    if sha256(b.body) != layer["digest"]:
                        problems.append(f"distribution: blob {repo}@{layer['digest']}")
        return problems


def vm_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def make_small_fs(size_mib, workdir):
    """A loop-mounted ext4 file system of size_mib (a root that can fill up);
    returns (mount point, cleanup)."""
    img = os.path.join(workdir, "soak.img")
    mnt = os.path.join(workdir, "mnt")
    os.makedirs(mnt, exist_ok=True)
    with open(img, "wb") as f:
        f.truncate(size_mib << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", img], check=True, timeout=60)
    subprocess.run(["mount", "-o", "loop", img, mnt], check=True, timeout=60)

    def cleanup():
        subprocess.run(["umount", mnt], timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)

    return mnt, cleanup
