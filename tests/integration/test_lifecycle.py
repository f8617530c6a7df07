# SPDX-License-Identifier: Apache-2.0
"""Operational behaviour of the real binary: what happens around the requests.

- a full disk (a 2 MiB tmpfs root): 507 with an OCI error, nothing partial kept,
  earlier data still served, service back once space is free;
- restarts (SIGTERM and SIGKILL) in the middle of an upload: it resumes;
- stale uploads purged at startup, fresh ones kept and resumable;
- the startup index: requests sent while it loads wait and are answered right;
- the root lock, configuration errors and the CLI;
- the access log, and how connections are spread over shards;
- read-after-write across shards;
- kill -9 during a push leaves a tree Distribution 2.8.2 serves.

test_robustness.py covers malformed HTTP, limits, SIGKILL mid-upload with a
restart of ringport itself and SIGTERM draining; this file does not repeat those.
All of it is about the ringport process, so it does not run under
RINGTEST_TARGET=distribution (Distribution 2.8.2 is used here as the second
reader of a root ringport wrote).
"""
import errno
import http.client
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest

from ringtest import rootgen
from ringtest.client import Client, path_of, sha256
from ringtest.harness import REPO_ROOT, Distribution, Ringport, ringport_bin, wait_until
from ringtest.oci import Connection, link_next, random_bytes
from ringtest.rawhttp import Closed, RawConn, build_request, parse_response

pytestmark = pytest.mark.skipif(
    os.environ.get("RINGTEST_TARGET", "ringport") == "distribution",
    reason="operational behaviour of the ringport binary itself")

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCTET = "application/octet-stream"
KIB = 1 << 10
MIB = 1 << 20
TIMEOUT_S = 20.0
DISK_FULL_CODE = "UNKNOWN"  # docs/behaviour.md: disk full → 507, code UNKNOWN


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------



def http_status(url, timeout_s=5.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def exchange(host, method, path, headers=None, body=b"", timeout_s=TIMEOUT_S):
    """One request on a fresh raw connection. The body is sent only as long as the
    server is not answering yet (a registry may answer 507 mid-body and close);
    the response is read either way."""
    with RawConn(host, timeout_s) as c:
        c.send(build_request(method, path, headers, body), timeout_s=timeout_s)
        try:
            return c.read_response(method, timeout_s)
        except Closed as e:
            r = parse_response(e.partial, method)
            assert r is not None, f"{method} {path}: closed without a response ({e.partial[:200]!r})"
            return r


def assert_oci_error(r, status, code=None):
    """`r` is `status` with an OCI JSON error body ({"errors":[{code,message,...}]})."""
    assert r.status == status, r
    ct = (r.header("Content-Type") or "").split(";")[0].strip()
    assert ct == "application/json", f"error body is not JSON: {r}"
    doc = json.loads(r.body)
    assert isinstance(doc.get("errors"), list) and doc["errors"], r
    for e in doc["errors"]:
        assert isinstance(e.get("code"), str) and isinstance(e.get("message"), str), r
    if code is not None:
        assert doc["errors"][0]["code"] == code, r


def upload_range_end(r):
    """The last offset of an upload's `Range: 0-<last>` header."""
    m = re.fullmatch(r"(?:bytes=)?0-(\d+)", (r.header("Range") or "").strip())
    assert m, f"bad upload Range header: {r}"
    return int(m.group(1))


def upload_sessions(root):
    """Every entry inside any repositories/**/_uploads directory."""
    out = []
    repos = os.path.join(rootgen.v2(root), "repositories")
    for dp, dns, _ in os.walk(repos):
        if os.path.basename(dp) == "_uploads":
            out += [os.path.relpath(os.path.join(dp, n), root) for n in sorted(os.listdir(dp))]
            dns[:] = []
        else:
            dns[:] = [d for d in dns if not d.startswith("_") or d == "_uploads"]
    return out


def blob_files(root):
    return rootgen.files_under(rootgen.blobs_dir(root))


def pull_image(c, name, ref, manifest, blobs):
    """The manifest and every blob read back byte-identical."""
    r = c.get_manifest(name, ref, accept=OCI_MANIFEST)
    assert r.status == 200 and r.body == manifest, (name, ref, r)
    for d, data in blobs.items():
        g = c.get_blob(name, d)
        assert g.status == 200, (name, d, g)
        assert g.body == data, f"{name} {d}: bytes differ"


def push_image(c, name, tag, layers, config=None):
    """Pushes config + layers + manifest; returns (manifest bytes, digest, {digest: bytes})."""
    config = config if config is not None else json.dumps(
        {"architecture": "amd64", "os": "linux", "author": uuid.uuid4().hex}).encode()
    body, d = c.push_image(name, tag, layers=layers, config=config)
    return body, d, {sha256(b): b for b in [config] + list(layers)}


def image_manifest(config, layers, annotations=None):
    return rootgen.image_manifest(config, layers, annotations)


def clean_env(extra=None):
    """The test environment without any registry setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RINGPORT_") and not k.startswith("REGISTRY_")}
    env.update(extra or {})
    return env


def run_cli(args, env=None, timeout_s=10.0):
    """Runs `ringport <args>` expecting it to exit; returns (code, stdout, stderr)."""
    p = subprocess.Popen([ringport_bin()] + list(args), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=clean_env(env))
    try:
        out, err = p.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate(timeout=5)
        raise AssertionError(f"ringport {' '.join(args)} still ran after {timeout_s}s; "
                             f"stdout={out[-500:]!r} stderr={err[-2000:]!r}")
    return p.returncode, out, err


# --- the access log ----------------------------------------------------------

ACCESS_RE = re.compile(r"\baccess\b")
SHARD_RE = re.compile(r"\bshard=(\d+)\b")


def access_lines(srv):
    return [l for l in list(srv.err) if ACCESS_RE.search(l)]


def mentions(line, method, target):
    """The line names `method` as a word and `target` (path and query, as sent) whole."""
    return (re.search(rf"(?<![A-Za-z]){re.escape(method)}(?![A-Za-z])", line) is not None and
            re.search(rf"(?<![\w/]){re.escape(target)}(?=[\s\"]|$)", line) is not None)


def has_status(line, status):
    return re.search(rf"(?<![\w.:=/-]){status}(?![\w.])", line) is not None


def lines_for(srv, method, path, want=1, timeout_s=3.0):
    """The access lines for (method, path), waiting until `want` arrived; the log
    writer flushes in batches, so a line can trail its response."""
    def find():
        return [l for l in access_lines(srv) if mentions(l, method, path)]
    wait_until(lambda: len(find()) >= want, timeout_s)
    return find()


def shard_of(srv, path):
    """The shard that served the one request for `path` (from the access log)."""
    ls = lines_for(srv, "GET", path)
    assert len(ls) == 1, f"want one access line for GET {path}, got {ls}"
    m = SHARD_RE.search(ls[0])
    assert m, f"no shard=N field in the access line: {ls[0]!r}"
    return int(m.group(1))


# --- processes, temporary directories and mounts -----------------------------

class Lab:
    """Owns what a test starts, so teardown stops processes before it unmounts
    and removes directories, whatever happened in the test."""

    def __init__(self):
        self.servers, self.mounts, self.dirs = [], [], []

    def tmpdir(self):
        d = tempfile.mkdtemp(prefix="ringtest-life-")
        self.dirs.append(d)
        return d

    def tmpfs(self, size):
        d = self.tmpdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", d],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, f"mount -t tmpfs -o size={size} failed: {r.stderr.strip()}"
        self.mounts.append(d)
        return d

    def ringport(self, root, env=None, config=None, start=True):
        s = Ringport(root=root, env=env, config=config)
        self.servers.append(s)
        return s.start() if start else s

    def distribution(self, root):
        d = Distribution(root=root)
        self.servers.append(d)
        return d.start()

    def close(self):
        errors = []
        for s in reversed(self.servers):
            try:
                s.cleanup()
            except Exception as e:  # a sanitizer report or a bad exit: report it, go on
                errors.append(e)
        for m in reversed(self.mounts):
            r = subprocess.run(["umount", m], capture_output=True, text=True, timeout=20)
            if r.returncode != 0:
                subprocess.run(["umount", "-l", m], capture_output=True, timeout=20)
                errors.append(AssertionError(f"umount {m}: {r.stderr.strip()}"))
        for d in reversed(self.dirs):
            shutil.rmtree(d, ignore_errors=True)
        if errors:
            raise errors[0]


@pytest.fixture
def lab():
    lb = Lab()
    try:
        yield lb
    finally:
        lb.close()


# ---------------------------------------------------------------------------
# 1. A full disk
# ---------------------------------------------------------------------------

def fill_disk(path, max_bytes):
    """Writes zeros to `path` until the file system is full; returns the bytes written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    page = b"\0" * 4096
    written = 0
    try:
        for _ in range(max_bytes // len(page) + 2):
            try:
                written += os.write(fd, page)
            except OSError as e:
                if e.errno == errno.ENOSPC:
                    return written
                raise
    finally:
        os.close(fd)
    raise AssertionError(f"{path}: wrote {written} bytes and the disk is still not full")


def test_a_full_disk_answers_507_keeps_nothing_partial_and_serves_again_once_space_is_free(lab):
    root = lab.tmpfs("2m")
    srv = lab.ringport(root)
    srv.wait_ready()
    c = Client(srv.host)
    name = "full/app"

    # An image that fits.
    a_body, a_digest, a_blobs = push_image(c, name, "a", [random_bytes(64 * KIB, 1), b"small"])
    base_blobs = blob_files(root)
    assert upload_sessions(root) == []

    # A monolithic blob larger than the whole disk.
    big = random_bytes(3 * MIB, 2)
    r = exchange(srv.host, "POST", f"/v2/{name}/blobs/uploads/?digest={sha256(big)}",
                 headers={"Content-Type": OCTET}, body=big)
    assert_oci_error(r, 507, DISK_FULL_CODE)
    assert wait_until(lambda: upload_sessions(root) == [], 3.0), \
        f"upload data left after a 507: {upload_sessions(root)}"
    assert blob_files(root) == base_blobs, "partial data appeared under blobs/"
    assert c.request("HEAD", f"/v2/{name}/blobs/{sha256(big)}").status == 404

    # A chunked upload that outgrows the free space.
    chunked_data = random_bytes(4 * MIB, 3)
    loc = c.start_upload(name)
    statuses = []
    for off in range(0, len(chunked_data), 512 * KIB):
        part = chunked_data[off:off + 512 * KIB]
        p = exchange(srv.host, "PATCH", loc, body=part, headers={
            "Content-Type": OCTET, "Content-Range": f"{off}-{off + len(part) - 1}"})
        statuses.append(p.status)
        if p.status != 202:
            break
        loc = path_of(p.header("Location"))
    assert statuses[-1] == 507, f"PATCH statuses {statuses}: the disk never filled?"
    assert_oci_error(p, 507, DISK_FULL_CODE)
    assert 2 <= len(statuses) <= 5, statuses
    assert wait_until(lambda: upload_sessions(root) == [], 3.0), \
        f"upload data left after a 507: {upload_sessions(root)}"
    assert blob_files(root) == base_blobs, "partial data appeared under blobs/"
    assert_oci_error(c.request("GET", loc), 404, "BLOB_UPLOAD_UNKNOWN")
    assert c.request("HEAD", f"/v2/{name}/blobs/{sha256(chunked_data)}").status == 404

    # The earlier image reads back byte-identical.
    pull_image(c, name, "a", a_body, a_blobs)

    # The blobs of a second image fit; then the disk is filled to the last page.
    b_cfg = b'{"architecture":"arm64","os":"linux"}'
    b_layer = random_bytes(8 * KIB, 4)
    for blob in (b_cfg, b_layer):
        c.push_blob(name, blob)
    b_body = image_manifest(b_cfg, [b_layer], annotations={"image": "b"})
    filler = os.path.join(root, "filler")
    fill_disk(filler, 4 * MIB)
    before_blobs = blob_files(root)

    # A manifest PUT that cannot be written: 507, and no tag, no revision.
    r = c.put_manifest(name, "b", b_body, OCI_MANIFEST)
    assert_oci_error(r, 507, DISK_FULL_CODE)
    t = c.request("GET", f"/v2/{name}/tags/list")
    assert t.status == 200 and t.json()["tags"] == ["a"], t
    assert c.get_manifest(name, "b", accept=OCI_MANIFEST).status == 404
    assert c.get_manifest(name, sha256(b_body), accept=OCI_MANIFEST).status == 404
    tags_dir = os.path.join(rootgen.repo_dir(root, name), "_manifests", "tags")
    assert sorted(os.listdir(tags_dir)) == ["a"], os.listdir(tags_dir)
    assert blob_files(root) == before_blobs, "a partial manifest blob was left"

    # A small blob that would normally fit: 507 too, nothing left.
    tiny = b"tiny blob " * 100
    r = exchange(srv.host, "POST", f"/v2/{name}/blobs/uploads/?digest={sha256(tiny)}",
                 headers={"Content-Type": OCTET}, body=tiny)
    assert_oci_error(r, 507, DISK_FULL_CODE)
    assert wait_until(lambda: upload_sessions(root) == [], 3.0), upload_sessions(root)
    pull_image(c, name, "a", a_body, a_blobs)

    # Space freed: pushes work again.
    os.unlink(filler)
    r = c.put_manifest(name, "b", b_body, OCI_MANIFEST)
    assert r.status == 201, r
    pull_image(c, name, "b", b_body, {sha256(b_cfg): b_cfg, sha256(b_layer): b_layer})
    again = random_bytes(100 * KIB, 5)
    assert c.push_blob_chunked(name, again, 40 * KIB) == sha256(again)
    assert c.get_blob(name, sha256(again)).body == again
    assert c.push_blob(name, tiny) == sha256(tiny)
    t = c.request("GET", f"/v2/{name}/tags/list")
    assert t.status == 200 and t.json()["tags"] == ["a", "b"], t
    pull_image(c, name, "a", a_body, a_blobs)
    assert srv.alive()


# ---------------------------------------------------------------------------
# 2. Restarts resume unfinished uploads
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_an_unfinished_upload_resumes_after_a_restart(lab, how):
    root = lab.tmpdir()
    srv = lab.ringport(root)
    srv.wait_ready()
    c = Client(srv.host)
    name = "resume/app"
    data = random_bytes(3 * MIB + 123, 10)
    half = len(data) // 2
    loc = c.start_upload(name)
    r = c.request("PATCH", loc, body=data[:half],
                  headers={"Content-Type": OCTET, "Content-Range": f"0-{half - 1}"})
    assert r.status == 202 and upload_range_end(r) == half - 1, r
    loc = path_of(r.header("Location"))
    upload_id = r.header("Docker-Upload-UUID")

    if how == "sigterm":
        assert srv.stop() == 0
    else:
        srv.kill()
    srv2 = lab.ringport(root)
    srv2.wait_ready()
    c = Client(srv2.host)

    g = c.request("GET", loc)
    assert g.status == 204, g
    assert upload_range_end(g) == half - 1, g
    if upload_id is not None:
        assert g.header("Docker-Upload-UUID") == upload_id, g
    assert g.header("Location"), g
    loc = path_of(g.header("Location"))
    p = c.request("PATCH", loc, body=data[half:],
                  headers={"Content-Type": OCTET, "Content-Range": f"{half}-{len(data) - 1}"})
    assert p.status == 202 and upload_range_end(p) == len(data) - 1, p
    loc = path_of(p.header("Location"))
    sep = "&" if "?" in loc else "?"
    f = c.request("PUT", f"{loc}{sep}digest={sha256(data)}")
    assert f.status == 201, f
    b = c.get_blob(name, sha256(data))
    assert b.status == 200 and b.body == data
    assert upload_sessions(root) == []


# ---------------------------------------------------------------------------
# 3. Stale uploads are purged at startup
# ---------------------------------------------------------------------------

def _push_and_stop(lab, root, name):
    srv = lab.ringport(root)
    srv.wait_ready()
    body, _, blobs = push_image(Client(srv.host), name, "v1", [b"purge layer"])
    assert srv.stop() == 0
    return body, blobs


def _finish_crafted_upload(c, name, upload_id, data):
    loc = f"/v2/{name}/blobs/uploads/{upload_id}"
    g = c.request("GET", loc)
    assert g.status == 204 and upload_range_end(g) == len(data) - 1, g
    f = c.request("PUT", f"{loc}?digest={sha256(data)}")
    assert f.status == 201, f
    assert c.get_blob(name, sha256(data)).body == data


def test_uploads_older_than_the_purge_age_are_removed_at_startup_and_fresh_ones_resume(lab):
    root = lab.tmpdir()
    name = "purge/app"
    body, blobs = _push_and_stop(lab, root, name)
    old = rootgen.utc_hours_ago(200)
    now = rootgen.utc_hours_ago(0)
    ids = {k: str(uuid.uuid4()) for k in ("old_plain", "old_nano", "fresh_plain", "fresh_nano")}
    fresh_data = {"fresh_plain": random_bytes(1000, 20), "fresh_nano": random_bytes(5000, 21)}
    rootgen.write_upload(root, name, ids["old_plain"], b"x" * 100, rootgen.rfc3339(old))
    rootgen.write_upload(root, name, ids["old_nano"], b"y" * 100, rootgen.rfc3339(old, nanos=True))
    rootgen.write_upload(root, name, ids["fresh_plain"], fresh_data["fresh_plain"],
                         rootgen.rfc3339(now), hashstate=False)
    rootgen.write_upload(root, name, ids["fresh_nano"], fresh_data["fresh_nano"],
                         rootgen.rfc3339(now, nanos=True))
    up = rootgen.uploads_dir(root, name)

    srv = lab.ringport(root)  # storage.upload_purge_age_hours at its default, 168
    srv.wait_ready()
    left = sorted(os.listdir(up))
    assert ids["old_plain"] not in left, "an upload started 200 h ago (RFC 3339) was kept"
    assert ids["old_nano"] not in left, "an upload started 200 h ago (RFC 3339 nano) was kept"
    assert sorted(left) == sorted([ids["fresh_plain"], ids["fresh_nano"]]), left
    c = Client(srv.host)
    pull_image(c, name, "v1", body, blobs)
    for k in ("fresh_plain", "fresh_nano"):
        _finish_crafted_upload(c, name, ids[k], fresh_data[k])


def test_a_stale_upload_in_a_repository_that_holds_nothing_else_is_purged_too(lab):
    # A client that started a push and vanished leaves a repository with only
    # `_uploads` (Distribution lays it out so); its stale sessions go as well.
    root = lab.tmpdir()
    _push_and_stop(lab, root, "purge/app")
    name = "purge/abandoned"
    stale, fresh = str(uuid.uuid4()), str(uuid.uuid4())
    fresh_data = random_bytes(700, 22)
    rootgen.write_upload(root, name, stale, b"z" * 100, rootgen.rfc3339(rootgen.utc_hours_ago(200)))
    rootgen.write_upload(root, name, fresh, fresh_data, rootgen.rfc3339(rootgen.utc_hours_ago(1)))
    srv = lab.ringport(root)
    srv.wait_ready()
    left = sorted(os.listdir(rootgen.uploads_dir(root, name)))
    assert left == [fresh], f"after startup _uploads of {name} holds {left}; want only {fresh}"
    _finish_crafted_upload(Client(srv.host), name, fresh, fresh_data)


def test_the_purge_age_setting_decides_which_uploads_are_stale(lab):
    root = lab.tmpdir()
    name = "purge/app"
    _push_and_stop(lab, root, name)
    two_h, half_h = str(uuid.uuid4()), str(uuid.uuid4())
    rootgen.write_upload(root, name, two_h, b"a" * 10, rootgen.rfc3339(rootgen.utc_hours_ago(2)))
    rootgen.write_upload(root, name, half_h, b"b" * 10, rootgen.rfc3339(rootgen.utc_hours_ago(0.5)))
    srv = lab.ringport(root, env={"RINGPORT_STORAGE_UPLOAD_PURGE_AGE_HOURS": "1"})
    srv.wait_ready()
    assert sorted(os.listdir(rootgen.uploads_dir(root, name))) == [half_h]


# ---------------------------------------------------------------------------
# 4. The index never answers wrongly while it loads
# ---------------------------------------------------------------------------

GEN_REPOS = 3000
GEN_TAGS = ("t0", "t1", "t2")


def generate_root(root):
    """GEN_REPOS repositories x GEN_TAGS, each tag its own manifest; shared blobs.
    Returns (names, {(name, tag): manifest bytes}, config, layer)."""
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    layer = b"one layer shared by every generated image\n"
    written = set()
    names = [f"gen/r{i:05d}" for i in range(GEN_REPOS)]
    manifests = {}
    for n in names:
        for t in GEN_TAGS:
            body, _ = rootgen.write_image(root, n, [t], config, [layer],
                                          annotations={"repo": n, "tag": t},
                                          blobs_written=written)
            manifests[(n, t)] = body
    return names, manifests, config, layer


def test_requests_sent_while_the_index_loads_wait_for_it_and_get_the_right_answer(lab):
    root = lab.tmpfs("256m")  # a tmpfs: generating on a slow disk would take too long
    names, manifests, _, layer = generate_root(root)
    last = names[-1]
    srv = lab.ringport(root)

    # At once, before anything else: requests that need the index.
    wanted = [
        ("GET", f"/v2/{last}/manifests/t2", {"Accept": OCI_MANIFEST}),
        ("HEAD", f"/v2/{last}/manifests/t1", {"Accept": OCI_MANIFEST}),
        ("GET", f"/v2/{last}/tags/list", {}),
        ("GET", "/v2/_catalog?n=1000", {}),
        ("GET", "/v2/_catalog", {}),
        ("GET", f"/v2/{last}/blobs/{sha256(layer)}", {}),
        ("GET", f"/v2/{last}/manifests/no-such-tag", {"Accept": OCI_MANIFEST}),
    ]
    conns = []
    try:
        for method, path, headers in wanted:
            rc = RawConn(srv.host, 30.0)
            conns.append(rc)
            rc.send_all(build_request(method, path, headers))
        ready_before = http_status(srv.url + "/readyz")
        base = http_status(srv.url + "/v2/")
        health = http_status(srv.url + "/healthz")
        ready_after = http_status(srv.url + "/readyz")
        resps = [rc.read_response(m, 30.0) for rc, (m, _, _) in zip(conns, wanted)]
    finally:
        for rc in conns:
            rc.close()

    assert ready_before == 503, \
        f"/readyz said {ready_before} right after start: the index loaded before the " \
        f"requests could be sent, so this test checked nothing (make GEN_REPOS larger)"
    assert base == 200 and health == 200, (base, health)
    assert ready_after == 503, f"/readyz {ready_after}: /v2/ was not answered while loading"

    m, h, tags, cat, cat_default, blob, unknown = resps
    assert m.status == 200 and m.body == manifests[(last, "t2")], m
    assert m.header("Docker-Content-Digest") == sha256(manifests[(last, "t2")]), m
    assert h.status == 200 and h.header("Docker-Content-Digest") == sha256(manifests[(last, "t1")]), h
    assert tags.status == 200 and tags.json() == {"name": last, "tags": list(GEN_TAGS)}, tags
    assert cat.status == 200 and cat.json()["repositories"] == names[:1000], cat.body[:300]
    assert link_next(cat) is not None, cat
    assert cat_default.status == 200 and cat_default.json()["repositories"] == names[:100], \
        cat_default.body[:300]
    assert blob.status == 200 and blob.body == layer, blob
    assert_oci_error(unknown, 404, "MANIFEST_UNKNOWN")

    srv.wait_ready()
    # The whole catalog, page by page, is every repository once and in order.
    c = Client(srv.host)
    seen = []
    path = "/v2/_catalog?n=1000"
    for _ in range(GEN_REPOS // 1000 + 2):
        r = c.request("GET", path)
        assert r.status == 200, r
        seen += r.json()["repositories"]
        path = link_next(r)
        if path is None:
            break
    assert path is None, "the catalog's Link chain did not end"
    assert seen == names

    line = wait_until(lambda: next((l for l in list(srv.err) if "index ready in" in l), None), 3.0)
    assert line, "no 'index ready in' line on stderr"
    repos = re.search(r"\b(\d+) repositories\b", line)
    ntags = re.search(r"\b(\d+) tags\b", line)
    assert repos and int(repos.group(1)) == GEN_REPOS, line
    assert ntags and int(ntags.group(1)) == GEN_REPOS * len(GEN_TAGS), line


# ---------------------------------------------------------------------------
# 5. The root lock
# ---------------------------------------------------------------------------

def test_a_second_ringport_on_the_same_root_refuses_to_start_and_the_first_keeps_serving(lab):
    root = lab.tmpdir()
    first = lab.ringport(root)
    first.wait_ready()
    c = Client(first.host)
    body, _, blobs = push_image(c, "lock/app", "v1", [b"lock layer"])

    t0 = time.monotonic()
    code, out, err = run_cli(["serve", "--listen", "127.0.0.1:0", "--root", root])
    took = time.monotonic() - t0
    assert code != 0, f"a second ringport on {root} exited {code}: {err!r}"
    assert took < 5.0, f"the second ringport took {took:.1f}s to give up"
    assert root in err, f"the refusal does not name the root {root}: {err!r}"
    assert "listening" not in out, out

    assert first.alive()
    pull_image(c, "lock/app", "v1", body, blobs)
    assert c.push_blob("lock/app", b"after the refusal") == sha256(b"after the refusal")

    # A lock left by a killed process does not block the next one.
    first.kill()
    second = lab.ringport(root)
    second.wait_ready()
    pull_image(Client(second.host), "lock/app", "v1", body, blobs)


# ---------------------------------------------------------------------------
# 6. Configuration errors and the CLI
# ---------------------------------------------------------------------------

def _serve_args(lab, config=None):
    args = ["serve", "--listen", "127.0.0.1:0", "--root", lab.tmpdir()]
    if config is not None:
        args += ["--config", config]
    return args


def _write(lab, text):
    p = os.path.join(lab.tmpdir(), "ringport.toml")
    with open(p, "w") as f:
        f.write(text)
    return p


@pytest.mark.parametrize("text,key", [
    ("[http]\nlisten_port = 5000\n", "listen_port"),
    ("[storage]\nroot = \"/x\"\ndeletes_enabled = true\n", "deletes_enabled"),
    ("[cache]\nsize = 1\n", "cache"),
    ("[http]\nshards = \"abc\"\n", "shards"),
])
def test_a_bad_key_or_value_in_the_config_file_stops_startup_with_exit_2_naming_it(lab, text, key):
    code, out, err = run_cli(_serve_args(lab, _write(lab, text)))
    assert code == 2, (code, err)
    assert key in err, f"stderr does not name {key!r}: {err!r}"
    assert "listening" not in out, out


@pytest.mark.parametrize("var,value", [
    ("RINGPORT_HTTP_LISTN", "127.0.0.1:0"),
    ("RINGPORT_NO_SUCH_SETTING", "1"),
    ("RINGPORT_HTTP_SHARDS", "abc"),
    ("RINGPORT_STORAGE_DELETE_ENABLED", "maybe"),
    ("REGISTRY_STORAGE_DELETE_ENABLED", "maybe"),
])
def test_an_unknown_or_bad_environment_setting_stops_startup_with_exit_2_naming_it(lab, var, value):
    code, out, err = run_cli(_serve_args(lab), env={var: value})
    assert code == 2, (code, err)
    assert var in err, f"stderr does not name {var}: {err!r}"
    assert "listening" not in out, out


def test_version_prints_the_version_and_help_prints_usage():
    code, out, err = run_cli(["version"])
    assert code == 0, err
    with open(os.path.join(REPO_ROOT, "meson.build")) as f:
        version = re.search(r"\bversion\s*:\s*'([^']+)'", f.read()).group(1)
    first, second = out.splitlines()
    assert first == f"ringport {version}", (out, version)
    # The build's sanitizers: the bounds tests read RSS only where it means something.
    assert re.fullmatch(r"sanitize: (none|[a-z,]+)", second), out
    for flag in ("--help", "help"):
        code, out, err = run_cli([flag])
        assert code == 0, err
        assert "usage" in out.lower() and "serve" in out, out
    code, out, err = run_cli(["no-such-command"])
    assert code == 2 and "usage" in err.lower(), (code, err)


def test_the_example_config_loads_as_a_config_file_and_its_values_apply(lab):
    code, example, err = run_cli(["config-example"])
    assert code == 0, err
    for key in ("listen", "shards", "root", "delete_enabled", "upload_purge_age_hours",
                "max_entries"):
        assert re.search(rf"^{key} = ", example, re.M), f"{key} missing from config-example"
    srv = lab.ringport(lab.tmpdir(), config=_write(lab, example))
    srv.wait_ready()
    c = Client(srv.host)
    _, dg, _ = push_image(c, "conf/app", "v1", [b"conf layer"])
    assert c.request("DELETE", f"/v2/conf/app/manifests/{dg}").status == 202

    # The same file with deletes switched off.
    off = re.sub(r"^delete_enabled = true$", "delete_enabled = false", example, flags=re.M)
    assert off != example
    srv2 = lab.ringport(lab.tmpdir(), config=_write(lab, off))
    srv2.wait_ready()
    c2 = Client(srv2.host)
    _, dg, _ = push_image(c2, "conf/app", "v1", [b"conf layer"])
    assert_oci_error(c2.request("DELETE", f"/v2/conf/app/manifests/{dg}"), 405, "UNSUPPORTED")


def test_distributions_registry_storage_delete_enabled_false_turns_deletes_off(lab):
    srv = lab.ringport(lab.tmpdir(), env={"REGISTRY_STORAGE_DELETE_ENABLED": "false"})
    srv.wait_ready()
    c = Client(srv.host)
    name = "nodelete/app"
    body, dg, blobs = push_image(c, name, "v1", [b"kept layer"])
    for path in (f"/v2/{name}/manifests/{dg}", f"/v2/{name}/manifests/v1",
                 f"/v2/{name}/blobs/{sha256(b'kept layer')}"):
        assert_oci_error(c.request("DELETE", path), 405, "UNSUPPORTED")
    pull_image(c, name, "v1", body, blobs)


# ---------------------------------------------------------------------------
# 7-9. The access log and the shards
# ---------------------------------------------------------------------------

def test_every_request_writes_exactly_one_access_line_with_method_path_and_status(lab):
    srv = lab.ringport(lab.tmpdir())
    srv.wait_ready()
    time.sleep(0.2)
    base = len(access_lines(srv))
    c = Client(srv.host)
    name = f"log/{uuid.uuid4().hex[:10]}"
    data = b"logged blob"
    dg = sha256(data)
    done = []  # (method, target, status); every (method, target) differs

    def req(method, target, body=None, headers=None):
        r = c.request(method, target, body=body, headers=headers)
        done.append((method, target, r.status))
        return r

    req("GET", "/v2/")
    req("HEAD", f"/v2/{name}/blobs/{sha256(b'absent')}")
    r = req("POST", f"/v2/{name}/blobs/uploads/")
    up = path_of(r.header("Location")).split("?")[0]
    req("PATCH", up, body=data, headers={"Content-Type": OCTET,
                                         "Content-Range": f"0-{len(data) - 1}"})
    req("GET", up)
    req("PUT", f"{up}?digest={dg}")
    req("GET", f"/v2/{name}/blobs/{dg}")
    req("GET", f"/v2/{name}/blobs/sha256:zz")
    cfg = b"{}"
    req("POST", f"/v2/{name}/blobs/uploads/?digest={sha256(cfg)}", body=cfg,
        headers={"Content-Type": OCTET})
    man = image_manifest(cfg, [data])
    req("PUT", f"/v2/{name}/manifests/v1", body=man, headers={"Content-Type": OCI_MANIFEST})
    req("GET", f"/v2/{name}/manifests/v1")
    req("GET", f"/v2/{name}/tags/list")
    req("DELETE", f"/v2/{name}/manifests/{sha256(man)}")
    req("GET", "/v2/_catalog")
    req("GET", "/v2/no/such/endpoint/here")
    req("GET", "/healthz")
    assert [s for _, _, s in done] == [200, 404, 202, 202, 204, 201, 200, 400, 201, 201, 200,
                                       200, 202, 200, 404, 200], done

    want = base + len(done)
    wait_until(lambda: len(access_lines(srv)) >= want, 3.0)
    time.sleep(0.2)  # a duplicate line would arrive in the same flush or the next one
    new = access_lines(srv)[base:]
    assert len(new) == len(done), f"{len(done)} requests, {len(new)} access lines:\n" + "".join(new)
    for method, target, status in done:
        hits = [l for l in new if mentions(l, method, target)]
        assert len(hits) == 1, f"{method} {target}: {len(hits)} access lines: {hits}"
        assert has_status(hits[0], status), f"{method} {target} -> {status}: {hits[0]!r}"


def _probe(conn, tag):
    """One request on a held connection that its access line can be found by."""
    path = f"/v2/probe/{tag}/tags/list"
    r = conn.request("GET", path)
    assert r.status == 404, r
    return path


def test_four_held_connections_are_spread_two_and_two_over_two_shards(lab):
    srv = lab.ringport(lab.tmpdir(), env={"RINGPORT_HTTP_SHARDS": "2"})
    srv.wait_ready()
    time.sleep(0.3)  # the readiness probes' connections are closed and counted out
    conns = []
    try:
        for _ in range(4):
            conns.append(RawConn(srv.host, 10.0))
        paths = [_probe(rc, f"c{i}-{uuid.uuid4().hex[:8]}") for i, rc in enumerate(conns)]
        shards = [shard_of(srv, p) for p in paths]
    finally:
        for rc in conns:
            rc.close()
    assert sorted(shards) == [0, 0, 1, 1], \
        f"four connections opened together went to shards {shards}; access log:\n" + \
        "".join(access_lines(srv))


def test_a_manifest_pushed_on_one_shard_is_at_once_readable_on_the_other(lab):
    srv = lab.ringport(lab.tmpdir(), env={"RINGPORT_HTTP_SHARDS": "2"})
    srv.wait_ready()
    time.sleep(0.3)
    name = "raw/app"
    c = Client(srv.host)
    cfg, layer = b'{"os":"linux"}', b"read-after-write layer"
    c.push_blob(name, cfg)
    c.push_blob(name, layer)

    conns, by_shard = [], {}
    try:
        for i in range(6):  # two connections on two shards; a few tries at most
            conn = Connection(srv.host, timeout=10)
            conns.append(conn)
            probe = f"/v2/probe/raw{i}-{uuid.uuid4().hex[:8]}/tags/list"
            assert conn.request("GET", probe).status == 404
            by_shard.setdefault(shard_of(srv, probe), conn)
            if len(by_shard) == 2:
                break
        assert len(by_shard) == 2, f"six connections all went to shard {list(by_shard)}"
        a, b = by_shard[0], by_shard[1]
        for i in range(50):
            writer, reader = (a, b) if i % 2 == 0 else (b, a)
            body = image_manifest(cfg, [layer], annotations={"i": str(i)})
            tag = f"t{i}"
            r = writer.request("PUT", f"/v2/{name}/manifests/{tag}", body=body,
                               headers={"Content-Type": OCI_MANIFEST})
            assert r.status == 201, (i, r)
            g = reader.request("GET", f"/v2/{name}/manifests/{tag}",
                               headers={"Accept": OCI_MANIFEST})
            assert g.status == 200 and g.body == body, f"iteration {i}: {g}"
            g = reader.request("HEAD", f"/v2/{name}/manifests/{sha256(body)}",
                               headers={"Accept": OCI_MANIFEST})
            assert g.status == 200, f"iteration {i}: {g}"
    finally:
        for conn in conns:
            conn.close()
    # Every PUT and GET was served by its connection's shard: the writes and the
    # reads really were on different shards.
    for i in range(50):
        w, rd = (0, 1) if i % 2 == 0 else (1, 0)
        for method, shard in (("PUT", w), ("GET", rd)):
            ls = lines_for(srv, method, f"/v2/{name}/manifests/t{i}")
            assert len(ls) == 1, (method, i, ls)
            m = SHARD_RE.search(ls[0])
            assert m and int(m.group(1)) == shard, f"{method} t{i} want shard {shard}: {ls[0]!r}"


# ---------------------------------------------------------------------------
# 10. kill -9 during pushes leaves a tree Distribution serves
# ---------------------------------------------------------------------------

class Pusher(threading.Thread):
    """Pushes image B's blobs (chunked, on one keep-alive connection) and then its
    manifest, until the server goes away. `committed` lists the blobs whose final
    PUT answered 201; `attempted` every blob it started."""

    def __init__(self, host, name, blobs):
        super().__init__(daemon=True)
        self.host, self.name, self.blobs = host, name, blobs
        self.committed, self.attempted = [], []
        self.two_done = threading.Event()
        self.error = None

    def run(self):
        try:
            conn = Connection(self.host, timeout=10)
        except OSError as e:
            self.error = e
            return
        try:
            for data in self.blobs:
                self.attempted.append(sha256(data))
                r = conn.request("POST", f"/v2/{self.name}/blobs/uploads/")
                assert r.status == 202, r
                loc = path_of(r.header("Location"))
                for off in range(0, len(data), 256 * KIB):
                    part = data[off:off + 256 * KIB]
                    r = conn.request("PATCH", loc, body=part, headers={
                        "Content-Type": OCTET, "Content-Range": f"{off}-{off + len(part) - 1}"})
                    assert r.status == 202, r
                    loc = path_of(r.header("Location"))
                sep = "&" if "?" in loc else "?"
                r = conn.request("PUT", f"{loc}{sep}digest={sha256(data)}")
                assert r.status == 201, r
                self.committed.append(sha256(data))
                if len(self.committed) == 2:
                    self.two_done.set()
            self.error = AssertionError("every blob of B was pushed before the kill")
        except Exception as e:  # the kill: connection reset, closed, ...
            self.error = e
        finally:
            self.two_done.set()
            conn.close()


def test_kill_9_during_a_push_leaves_a_tree_distribution_serves(lab):
    root = lab.tmpdir()
    srv = lab.ringport(root)
    srv.wait_ready()
    c = Client(srv.host)
    a_name, b_name = "crash/a", "crash/b"
    a_body, a_digest, a_blobs = push_image(c, a_name, "v1",
                                           [random_bytes(MIB, 30), b"crash layer two"])
    assert c.put_manifest(a_name, "v2", a_body, OCI_MANIFEST).status == 201

    b_blobs = [random_bytes(MIB + i, 40 + i) for i in range(40)]
    pusher = Pusher(srv.host, b_name, b_blobs)
    # An upload with half its body on the wire when the process dies.
    held = RawConn(srv.host, 10.0)
    hold_loc = c.start_upload(b_name)
    held_data = random_bytes(4 * MIB, 50)
    held.send_all(build_request("PATCH", hold_loc, [
        ("Content-Type", OCTET), ("Content-Range", f"0-{len(held_data) - 1}"),
        ("Content-Length", str(len(held_data)))]) + held_data[:MIB])
    try:
        pusher.start()
        assert pusher.two_done.wait(20.0), "B's first two blobs were not pushed in 20 s"
        srv.kill()
        pusher.join(20.0)
    finally:
        held.close()
    assert not pusher.is_alive(), "the pusher thread did not end after the kill"
    assert len(pusher.committed) >= 2, pusher.error
    # The pusher ended because the server vanished, not on a refused request.
    assert isinstance(pusher.error, (OSError, http.client.HTTPException)), repr(pusher.error)
    assert len(pusher.committed) < len(b_blobs), "B was pushed completely before the kill"
    in_flight = [d for d in pusher.attempted if d not in pusher.committed]

    dist = lab.distribution(root)
    dc = Client(dist.host)
    r = dc.request("GET", "/v2/_catalog")
    assert r.status == 200, r
    # Distribution lists a repository once it links a blob (`_layers`).
    assert r.json()["repositories"] == [a_name, b_name], r
    r = dc.request("GET", f"/v2/{a_name}/tags/list")
    assert r.status == 200 and sorted(r.json()["tags"]) == ["v1", "v2"], r
    for ref in ("v1", "v2", a_digest):
        pull_image(dc, a_name, ref, a_body, a_blobs)

    # B's partial state: no 5xx anywhere, committed blobs whole, the rest absent.
    r = dc.request("GET", f"/v2/{b_name}/tags/list")
    assert r.status in (200, 404) and (r.status == 404 or not r.json().get("tags")), r
    r = dc.get_manifest(b_name, "latest", accept=OCI_MANIFEST)
    assert r.status == 404, r
    by_digest = {sha256(b): b for b in b_blobs}
    for d in pusher.committed:
        g = dc.get_blob(b_name, d)
        assert g.status == 200 and g.body == by_digest[d], (d, g.status)
    for d in in_flight + [sha256(held_data)]:
        g = dc.get_blob(b_name, d)
        assert g.status in (200, 404), (d, g)
        if g.status == 200:  # its final PUT was done, only the answer was lost
            assert g.body == by_digest.get(d, held_data), d
    for d in [sha256(b) for b in b_blobs if sha256(b) not in pusher.attempted]:
        assert dc.request("HEAD", f"/v2/{b_name}/blobs/{d}").status == 404, d
    assert not [l for l in dist.err if "panic" in l], dist.err[-20:]


def test_more_slow_uploads_than_large_receive_buffers_all_complete():
    """A shard lends at most 64 large receive buffers; uploads beyond that go
    on with the small head buffer (slower, never refused), so slow uploaders
    cannot pin unbounded memory and nobody is turned away."""
    count, half = 80, 150 * 1024
    with Ringport(env={"RINGPORT_HTTP_SHARDS": "1"}) as srv:
        blobs = [random_bytes(2 * half, 1000 + i) for i in range(count)]
        conns = []
        try:
            for i, blob in enumerate(blobs):
                rc = RawConn(srv.host)
                head = build_request("POST", f"/v2/slow/blobs/uploads/?digest={sha256(blob)}",
                                     [("Content-Type", "application/octet-stream")], blob)
                split = len(head) - half
                rc.send_all(head[:split])  # the head and half the body, then wait
                conns.append((rc, head[split:]))
            time.sleep(0.2)  # every upload is now mid-body at once
            for rc, rest in conns:
                rc.send_all(rest)
            statuses = [rc.read_response("POST").status for rc, _ in conns]
        finally:
            for rc, _ in conns:
                rc.close()
        assert statuses == [201] * count, statuses
        c = Client(srv.host)
        for blob in blobs[::16]:
            assert c.get_blob("slow", sha256(blob)).body == blob


def _sanitized_binary():
    with open(ringport_bin(), "rb") as f:
        return b"AddressSanitizer" in f.read()


def _rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_idle_keep_alive_connections_park_without_buffers_and_still_serve():
    """Connections idle past the grace period give their head buffer back and
    wait with a poll; they serve their next request normally, and each held
    connection costs a few KiB, not a receive buffer."""
    import resource
    import socket
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    count = 2000
    req = b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n"
    with Ringport() as srv:
        before = _rss_kb(srv.proc.pid)
        socks = []
        try:
            for _ in range(count):
                s = socket.create_connection(("127.0.0.1", srv.port), timeout=TIMEOUT_S)
                s.sendall(req)
                socks.append(s)
            for s in socks:
                assert b" 200 " in s.recv(4096).split(b"\r\n")[0]
            time.sleep(0.3)  # past the 50 ms grace: every connection is parked
            grown_kb = _rss_kb(srv.proc.pid) - before
            if not _sanitized_binary():  # ASan's redzones and quarantine inflate RSS
                assert grown_kb / count < 12, f"{grown_kb} KiB for {count} idle connections"
            for s in socks[::50]:  # parked connections wake up and serve
                s.sendall(req)
                assert b" 200 " in s.recv(4096).split(b"\r\n")[0]
        finally:
            for s in socks:
                s.close()


# ---------------------------------------------------------------------------
# 11. The index snapshot (storage.index_snapshot; docs/behaviour.md)
# ---------------------------------------------------------------------------

SNAP_CONFIG = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
SNAP_LAYER = b"the snapshot tests' layer\n"


def snapshot_file(root):
    return os.path.join(root, ".ringport.index")


def journal_file(root):
    return os.path.join(root, ".ringport.dirty")


def saved_line(srv, why, timeout_s=30.0, after=0):
    """The log line of a snapshot save (`why`: after start, periodic, at shutdown)
    among stderr lines from index `after` on."""
    line = wait_until(lambda: next((l for l in list(srv.err)[after:]
                                    if f"index snapshot saved ({why})" in l), None), timeout_s)
    assert line, f"no 'index snapshot saved ({why})' line: {srv.err[-5:]}"
    return line


def snap_root(lab, repos=12, tags=("a", "b", "c")):
    """A root with `repos` repositories, each tag its own manifest; returns
    (root, {(name, tag): manifest digest})."""
    root = lab.tmpdir()
    digests = {}
    written = set()
    for i in range(repos):
        name = f"snap/r{i:02d}"
        for t in tags:
            _, md = rootgen.write_image(root, name, [t], SNAP_CONFIG, [SNAP_LAYER],
                                        annotations={"repo": name, "tag": t},
                                        blobs_written=written)
            digests[(name, t)] = md
    return root, digests


def index_view(srv):
    """Everything the index answers: the catalog, each repository's tags and
    what each tag resolves to."""
    c = Client(srv.host)
    r = c.request("GET", "/v2/_catalog?n=1000")
    assert r.status == 200, r
    view = {}
    for name in r.json()["repositories"]:
        t = c.request("GET", f"/v2/{name}/tags/list")
        assert t.status == 200, (name, t)
        for tag in t.json()["tags"]:
            h = c.request("HEAD", f"/v2/{name}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
            assert h.status == 200, (name, tag, h)
            view[(name, tag)] = h.header("Docker-Content-Digest")
    return view


def start_ready(srv):
    srv.start()
    srv.wait_ready()
    line = wait_until(lambda: next((l for l in list(srv.err) if "index ready in" in l), None), 5.0)
    assert line, "no 'index ready in' line on stderr"
    return line


def verified_line(srv, timeout_s=30.0):
    line = wait_until(lambda: next((l for l in list(srv.err) if "against the tree" in l), None),
                      timeout_s)
    assert line, "the verification after a snapshot load never reported"
    return line


def count_in(line, what):
    m = re.search(r"(\d+) " + what, line)
    assert m, f"no '{what}' count in: {line}"
    return int(m.group(1))


def stopped_with_snapshot(lab, repos=12):
    """A root, its digests, and a stopped ringport that served it once and
    saved its snapshot."""
    root, digests = snap_root(lab, repos=repos)
    srv = lab.ringport(root, start=False)
    start_ready(srv)
    assert srv.stop() == 0
    assert os.path.getsize(snapshot_file(root)) > 0, "no snapshot after a clean stop"
    return root, digests, srv


def test_a_clean_restart_starts_from_the_snapshot_and_answers_exactly_as_before(lab):
    root, digests = snap_root(lab)
    srv = lab.ringport(root, start=False)
    first = start_ready(srv)
    assert "from the snapshot" not in first, first
    before = index_view(srv)
    assert before == digests
    assert srv.stop() == 0
    assert os.path.getsize(snapshot_file(root)) > 0, "no snapshot after a clean stop"

    line = start_ready(srv)
    assert "from the snapshot" in line, line
    assert count_in(line, r"repositories \(") == 12 and count_in(line, "read again") == 0, line
    # It stays while serving: the journal names what this run writes.
    assert os.path.getsize(snapshot_file(root)) > 0 and os.path.exists(journal_file(root))
    assert index_view(srv) == before
    v = verified_line(srv)
    assert count_in(v, "corrected") == 0 and count_in(v, "repositories read") == 12, v
    # Manifests and blobs are still served from the tree.
    c = Client(srv.host)
    name, tag = "snap/r03", "b"
    r = c.get_manifest(name, tag, accept=OCI_MANIFEST)
    assert r.status == 200 and sha256(r.body) == digests[(name, tag)], r
    assert c.get_blob(name, sha256(SNAP_LAYER)).body == SNAP_LAYER


def test_tags_and_manifests_changed_by_another_writer_while_stopped_are_seen_at_once(lab):
    root, digests, srv = stopped_with_snapshot(lab)
    # As Distribution would, while ringport is down: a new tag on an existing
    # manifest, a tag removed, and a new image under a new tag.
    rootgen.link_tag(root, "snap/r01", "added", digests[("snap/r01", "a")])
    shutil.rmtree(os.path.join(rootgen.repo_dir(root, "snap/r02"), "_manifests", "tags", "b"))
    _, new_md = rootgen.write_image(root, "snap/r05", ["fresh"], SNAP_CONFIG, [SNAP_LAYER],
                                    annotations={"new": "image"})
    line = start_ready(srv)
    assert "from the snapshot" in line and count_in(line, "read again") == 3, line
    want = dict(digests)
    want[("snap/r01", "added")] = digests[("snap/r01", "a")]
    del want[("snap/r02", "b")]
    want[("snap/r05", "fresh")] = new_md
    assert index_view(srv) == want  # right from the first answer, not after verification


def hold_the_verification(root, name):
    """Replaces one of `name`'s layer links with a FIFO in place: no stamped
    directory changes, so a snapshot load does not read it, but the
    verification after it blocks on it. Returns release(), which writes the
    digest into it (idempotent)."""
    layer = sha256(SNAP_LAYER)
    link = os.path.join(rootgen.repo_dir(root, name), "_layers", "sha256",
                        layer.split(":", 1)[1], "link")
    os.unlink(link)
    return rootgen.fifo_link(link, layer)


def test_a_tag_rewritten_in_place_while_stopped_is_answered_right_before_verification(lab):
    root, digests, srv = stopped_with_snapshot(lab)
    # Distribution re-points a tag by rewriting current/link in place: no
    # directory that the snapshot checks changes.
    name = "snap/r07"
    other = digests[(name, "c")]
    rootgen.link_tag(root, name, "a", other)
    release = hold_the_verification(root, "snap/r03")
    want = dict(digests)
    want[(name, "a")] = other
    try:
        line = start_ready(srv)
        assert "from the snapshot" in line and count_in(line, "read again") == 0, line
        c = Client(srv.host)
        r = c.get_manifest(name, "a", accept=OCI_MANIFEST)
        assert r.status == 200 and r.header("Docker-Content-Digest") == other, r
        assert sha256(r.body) == other
        # Every tag answers what its link says, while the verification is held.
        assert index_view(srv) == want
        # A tag ringport itself moves or makes meanwhile answers its new target.
        _, moved = c.push_image("snap/r01", "b", layers=(b"moved while unverified",))
        _, made = c.push_image("snap/r01", "new", layers=(b"made while unverified",))
        assert c.get_manifest("snap/r01", "b", accept=OCI_MANIFEST).header(
            "Docker-Content-Digest") == moved
        assert c.get_manifest("snap/r01", "new", accept=OCI_MANIFEST).header(
            "Docker-Content-Digest") == made
        assert c.get_manifest(name, "nope", accept=OCI_MANIFEST).status == 404
        assert not any("against the tree" in l for l in list(srv.err)), "not held"
    finally:
        release()
    v = verified_line(srv)
    assert count_in(v, "corrected") == 1, v
    want[("snap/r01", "b")] = moved
    want[("snap/r01", "new")] = made
    assert index_view(srv) == want  # from the index again, now corrected


def test_a_new_repository_made_while_stopped_is_found_by_the_walk_and_read(lab):
    root, digests, srv = stopped_with_snapshot(lab, repos=4)
    _, md = rootgen.write_image(root, "other/new", ["v1"], SNAP_CONFIG, [SNAP_LAYER])
    shutil.rmtree(rootgen.repo_dir(root, "snap/r02"))  # and one removed
    line = start_ready(srv)
    # The repositories walk changed: it is walked again (directory reads, no
    # links), and only the new repository is read; the removed one is gone.
    assert "from the snapshot" in line and count_in(line, "read again") == 1, line
    want = {k: v for k, v in digests.items() if k[0] != "snap/r02"}
    want[("other/new", "v1")] = md
    assert index_view(srv) == want


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
def test_a_damaged_snapshot_is_not_used_and_the_tree_is_read(lab, damage):
    root, digests, srv = stopped_with_snapshot(lab, repos=4)
    path = snapshot_file(root)
    data = bytearray(open(path, "rb").read())
    if damage == "flip":
        data[len(data) // 2] ^= 0x40
    elif damage == "truncate":
        data = data[: len(data) - 7]
    else:
        data = bytearray(b"RPINDEX1" + os.urandom(200))
    with open(path, "wb") as f:
        f.write(data)
    line = start_ready(srv)
    assert "from the snapshot" not in line, line
    assert any("index snapshot not used" in l for l in srv.err), srv.err[-5:]
    assert index_view(srv) == digests
    # Replaced by a good one once the tree was read.
    saved_line(srv, "after start")
    with open(path, "rb") as f:
        assert f.read(8) == b"RPINDEX3"


def test_after_kill_9_the_restart_trusts_the_snapshot_and_reads_again_what_was_written(lab):
    root, digests, srv = stopped_with_snapshot(lab, repos=3)
    start_ready(srv)
    saved_line(srv, "after start")
    # Re-point a tag to a manifest the repository already has (a rename
    # inside the tag's own directory, which no directory stamp sees), push a
    # new repository, then crash.
    c = Client(srv.host)
    body = c.get_manifest("snap/r00", "b", accept=OCI_MANIFEST).body
    r = c.put_manifest("snap/r00", "a", body, OCI_MANIFEST)
    assert r.status == 201, r
    new_body, new_md = c.push_image("crash/new", "v1", layers=(b"pushed before the crash",))
    srv.kill()
    line = start_ready(srv)
    assert "from the snapshot" in line, line
    assert count_in(line, "read again") == 2, line  # exactly the two written since the save
    want = dict(digests)
    want[("snap/r00", "a")] = digests[("snap/r00", "b")]
    want[("crash/new", "v1")] = new_md
    assert index_view(srv) == want  # right from the first answer
    got = Client(srv.host).get_manifest("crash/new", "v1", accept=OCI_MANIFEST)
    assert got.body == new_body, got


def test_the_snapshot_is_saved_in_the_background_while_serving(lab):
    root, digests, srv = stopped_with_snapshot(lab, repos=3)
    srv.env["RINGPORT_STORAGE_INDEX_SNAPSHOT_INTERVAL_S"] = "1"
    start_ready(srv)
    saved_line(srv, "after start")
    mark = len(srv.err)
    c = Client(srv.host)
    _, md = c.push_image("bg/app", "v1", layers=(b"saved in the background",))
    saved_line(srv, "periodic", after=mark)
    # Nothing written since that save: a crash now loses no work at restart.
    srv.kill()
    line = start_ready(srv)
    assert "from the snapshot" in line and count_in(line, "read again") == 0, line
    want = dict(digests)
    want[("bg/app", "v1")] = md
    assert index_view(srv) == want


def test_a_save_that_cannot_write_removes_the_snapshot_and_the_next_start_reads_the_tree(lab):
    root, digests, srv = stopped_with_snapshot(lab, repos=3)
    # The save's temp file cannot be created: a directory holds its name.
    os.mkdir(snapshot_file(root) + ".tmp")
    line = start_ready(srv)
    assert "from the snapshot" in line, line
    failed = wait_until(lambda: next((l for l in list(srv.err)
                                      if "index snapshot not saved (after start)" in l), None), 30)
    assert failed, srv.err[-5:]
    # A snapshot the failed save can no longer keep current is not left to be trusted.
    assert not os.path.exists(snapshot_file(root))
    c = Client(srv.host)
    _, md = c.push_image("nosave/app", "v1", layers=(b"written while saves fail",))
    srv.kill()
    os.rmdir(snapshot_file(root) + ".tmp")
    line = start_ready(srv)
    assert "from the snapshot" not in line, line
    want = dict(digests)
    want[("nosave/app", "v1")] = md
    assert index_view(srv) == want
    saved_line(srv, "after start")  # saves work again
    assert os.path.getsize(snapshot_file(root)) > 0


def test_index_snapshot_false_saves_nothing_and_removes_an_existing_one(lab):
    root, digests, srv = stopped_with_snapshot(lab, repos=3)
    assert os.path.exists(snapshot_file(root))
    off = lab.ringport(root, env={"RINGPORT_STORAGE_INDEX_SNAPSHOT": "false"}, start=False)
    line = start_ready(off)
    assert "from the snapshot" not in line, line
    # An old snapshot would miss what this run writes: it is removed, with its journal.
    assert not os.path.exists(snapshot_file(root))
    assert not os.path.exists(journal_file(root))
    assert index_view(off) == digests
    assert off.stop() == 0
    assert not os.path.exists(snapshot_file(root))
    assert not os.path.exists(journal_file(root))


def test_a_repository_the_index_holds_nothing_for_is_still_checked_after_a_restart(lab):
    # Only a broken link: the index lists nothing for it, yet it is on disk.
    root, digests, srv = stopped_with_snapshot(lab, repos=2)
    name = "snap/hollow"
    rootgen.link_layer(root, name, "sha256:" + "0" * 64)
    with open(os.path.join(rootgen.repo_dir(root, name), "_layers", "sha256", "0" * 64, "link"),
              "w") as f:
        f.write("sha256:" + "1" * 64)  # names another digest than its path: skipped
    for d in ("revisions/sha256", "tags"):  # empty, as after deleting everything
        os.makedirs(os.path.join(rootgen.repo_dir(root, name), "_manifests", d))
    line = start_ready(srv)
    # A new repository: the walk finds it and it alone is read.
    assert "from the snapshot" in line and count_in(line, "read again") == 1, line
    assert srv.stop() == 0
    # Now the snapshot knows it (empty). Another writer pushes into it.
    _, md = rootgen.write_image(root, name, ["late"], SNAP_CONFIG, [SNAP_LAYER])
    line = start_ready(srv)
    assert "from the snapshot" in line and count_in(line, "read again") == 1, line
    want = dict(digests)
    want[(name, "late")] = md
    assert index_view(srv) == want


def test_a_snapshot_that_cannot_be_removed_stops_startup(lab):
    root, _, srv = stopped_with_snapshot(lab, repos=1)
    os.unlink(snapshot_file(root))
    os.mkdir(snapshot_file(root))  # unreadable as a file and not removable by unlink
    r = subprocess.run([ringport_bin(), "serve", "--listen", "127.0.0.1:0", "--root", root],
                       capture_output=True, text=True, timeout=30,
                       env={k: v for k, v in os.environ.items() if k != "RINGPORT_BIN"})
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert ".ringport.index" in r.stderr, r.stderr
    os.rmdir(snapshot_file(root))
