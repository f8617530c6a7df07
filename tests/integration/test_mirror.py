# SPDX-License-Identifier: Apache-2.0
"""Pull-through mirror routing (issue 10), on a cache already in the tree.

The cache is laid down by a ringport started without mirrors (a hosted push
of docker.io/library/alpine); the same root is then served with [[mirror]]
tables. Every client convention must reach that one cache entry: the path
prefix (podman, containerd override_path), containerd's ns parameter, and the
default upstream (dockerd's registry-mirrors), with Docker Hub's implicit
library/. An unknown ns is refused and never contacted, pushes into a mirror
are refused, and everything outside the prefixes stays hosted.
"""
import concurrent.futures
import contextlib
import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from ringtest.client import Client
from ringtest.fakeupstream import FakeUpstream
from ringtest.harness import Ringport, ringport_bin, ringport_with_config

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"

# Upstream URLs are loopback fakes: tests never leave the machine.
CONFIG = """
[[mirror]]
prefix = "docker.io"
url = "{hub}"
hosts = ["docker.io", "index.docker.io", "registry-1.docker.io"]
default = true

[[mirror]]
prefix = "ghcr.io"
url = "{ghcr}"
"""


@pytest.fixture(scope="module")
def mirrored():
    seed = Ringport().start()
    try:
        seed.wait_ready()
        c = Client(seed.host)
        body, digest = c.push_image("docker.io/library/alpine", "3.20",
                                    layers=(b"alpine layer",))
        tool, _ = c.push_image("ghcr.io/org/tool", "v1", layers=(b"tool layer",))
        hosted, _ = c.push_image("team/app", "v1", layers=(b"hosted layer",))
    finally:
        assert seed.stop() == 0
    # The upstreams hold what the cache holds, so a tag's revalidation (a
    # HEAD after tag_ttl_s) confirms it.
    hub, ghcr = FakeUpstream(bearer=False), FakeUpstream(bearer=False)
    hub.add_manifest("library/alpine", "3.20", body)
    ghcr.add_manifest("org/tool", "v1", tool)
    fd, cfg = tempfile.mkstemp(suffix=".toml")
    with os.fdopen(fd, "w") as f:
        f.write(CONFIG.format(hub=hub.url, ghcr=ghcr.url))
    srv = Ringport(root=seed.root, config=cfg).start()
    srv.wait_ready()
    try:
        yield srv, {"alpine": (body, digest), "tool": tool, "hosted": hosted, "hub": hub}
    finally:
        srv.cleanup()  # SIGTERM, exit 0 and no sanitizer report, or it fails
        shutil.rmtree(seed.root, ignore_errors=True)
        hub.close()
        ghcr.close()
        os.unlink(cfg)


def get(srv, path):
    return Client(srv.host).request("GET", path, headers={"Accept": OCI_MANIFEST})


@pytest.mark.parametrize("path", [
    "/v2/docker.io/library/alpine/manifests/3.20",           # path prefix
    "/v2/docker.io/alpine/manifests/3.20",                   # prefix, implicit library/
    "/v2/library/alpine/manifests/3.20?ns=docker.io",        # containerd hosts.toml
    "/v2/alpine/manifests/3.20?ns=index.docker.io",          # another host of the same upstream
    "/v2/library/alpine/manifests/3.20?ns=registry-1.docker.io",
    "/v2/library/alpine/manifests/3.20",                     # the default upstream (dockerd)
    "/v2/alpine/manifests/3.20",
    "/v2/docker.io/library/alpine/manifests/3.20?ns=ghcr.io",  # a prefix wins over ns
])
def test_every_client_convention_reaches_the_one_cache_entry(mirrored, path):
    srv, seen = mirrored
    body, digest = seen["alpine"]
    r = get(srv, path)
    assert r.status == 200, r
    assert r.body == body
    assert r.header("Docker-Content-Digest") == digest


def test_blobs_and_tag_lists_are_routed_too(mirrored):
    srv, seen = mirrored
    body, _ = seen["alpine"]
    layer = json.loads(body)["layers"][0]["digest"]
    for path in (f"/v2/library/alpine/blobs/{layer}?ns=docker.io",
                 f"/v2/docker.io/alpine/blobs/{layer}", f"/v2/alpine/blobs/{layer}"):
        r = Client(srv.host).request("GET", path)
        assert r.status == 200, (path, r)
        assert r.body == b"alpine layer"
    r = Client(srv.host).request("GET", "/v2/library/alpine/tags/list?ns=docker.io")
    assert r.status == 200, r
    assert r.json()["tags"] == ["3.20"]
    r = Client(srv.host).request("GET", "/v2/org/tool/manifests/v1?ns=ghcr.io",
                                 headers={"Accept": OCI_MANIFEST})
    assert r.status == 200 and r.body == seen["tool"], r
    # No library/ off Docker Hub: ghcr.io/tool is not ghcr.io/library/tool.
    assert get(srv, "/v2/tool/manifests/v1?ns=ghcr.io").status == 404


@pytest.mark.parametrize("ns", ["evil.example", "127.0.0.1:1", "localhost", "quay.io"])
def test_an_unknown_ns_is_refused_as_name_unknown(mirrored, ns):
    srv, _ = mirrored
    r = get(srv, f"/v2/library/alpine/manifests/3.20?ns={ns}")
    assert r.status == 404, r
    assert "NAME_UNKNOWN" in r.error_codes()


def test_pushes_and_deletes_into_a_mirror_are_refused_and_change_nothing(mirrored):
    srv, seen = mirrored
    body, digest = seen["alpine"]
    c = Client(srv.host)
    for method, path in (
            ("POST", "/v2/docker.io/library/alpine/blobs/uploads/"),
            ("POST", "/v2/library/alpine/blobs/uploads/?ns=docker.io"),
            ("PUT", "/v2/docker.io/library/alpine/manifests/evil"),
            ("DELETE", f"/v2/docker.io/library/alpine/manifests/{digest}"),
            ("DELETE", "/v2/library/alpine/manifests/3.20?ns=docker.io")):
        r = c.request(method, path, body=body if method == "PUT" else None,
                      headers={"Content-Type": OCI_MANIFEST} if method == "PUT" else None)
        assert r.status == 405, (method, path, r)
        assert "UNSUPPORTED" in r.error_codes()
    r = get(srv, "/v2/docker.io/library/alpine/manifests/3.20")
    assert r.status == 200 and r.body == body
    assert get(srv, "/v2/docker.io/library/alpine/manifests/evil").status == 404


def test_hosted_content_stays_hosted_beside_a_default_mirror(mirrored):
    srv, seen = mirrored
    c = Client(srv.host)
    r = get(srv, "/v2/team/app/manifests/v1")
    assert r.status == 200 and r.body == seen["hosted"], r
    # A push with neither prefix nor ns is a hosted push, default mirror or not.
    # Clients check each blob with a HEAD first: for a repository nobody
    # pulled through the mirror that stays hosted (404 here, nothing fetched).
    layer = "sha256:" + hashlib.sha256(b"new hosted layer").hexdigest()
    hub = seen["hub"]
    blob_requests = hub.count(kind="blob")
    h = c.request("HEAD", f"/v2/team/new/blobs/{layer}")
    assert h.status == 404, h
    assert hub.count(kind="blob") == blob_requests
    body, _ = c.push_image("team/new", "v1", layers=(b"new hosted layer",))
    r = get(srv, "/v2/team/new/manifests/v1")
    assert r.status == 200 and r.body == body
    # The catalog lists the caches as ordinary repositories.
    names = c.request("GET", "/v2/_catalog").json()["repositories"]
    assert {"docker.io/library/alpine", "ghcr.io/org/tool", "team/app", "team/new"} <= set(names)


def test_a_bad_mirror_config_stops_startup_with_the_reason():
    fd, cfg = tempfile.mkstemp(suffix=".toml")
    with os.fdopen(fd, "w") as f:
        f.write('[[mirror]]\nprefix = "docker.io"\nurl = "https://a"\ndefault = true\n'
                '[[mirror]]\nprefix = "quay.io"\nurl = "https://b"\ndefault = true\n')
    root = tempfile.mkdtemp(prefix="ringport-test-")
    try:
        p = subprocess.run([ringport_bin(), "serve", "--listen", "127.0.0.1:0", "--root", root,
                            "--config", cfg], capture_output=True, text=True, timeout=60,
                           env={k: v for k, v in os.environ.items() if k != "RINGPORT_BIN"})
        assert p.returncode == 2, p
        assert "default already" in p.stderr
        assert p.stdout == ""  # never listened
    finally:
        os.unlink(cfg)
        shutil.rmtree(root, ignore_errors=True)


# --- fetching from an upstream (manifests) ---------------------------------

def image_manifest(seed):
    cfg = {"mediaType": "application/vnd.oci.image.config.v1+json",
           "digest": "sha256:" + hashlib.sha256(seed + b"c").hexdigest(), "size": 2}
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar",
             "digest": "sha256:" + hashlib.sha256(seed + b"l").hexdigest(), "size": 10}
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": cfg,
                       "layers": [layer]}).encode()


@pytest.fixture()
def upstream_and_mirror():
    with fake_and_mirror(bearer=True) as (up, srv):
        yield up, srv


def test_a_manifest_missing_from_the_cache_is_fetched_once_with_a_token(upstream_and_mirror):
    up, srv = upstream_and_mirror
    body = image_manifest(b"one")
    digest = up.add_manifest("team/app", "v1", body)
    r = get(srv, "/v2/team/app/manifests/v1?ns=up.test")
    assert r.status == 200, r
    assert r.body == body
    assert r.header("Docker-Content-Digest") == digest
    # The dance: a 401 with a challenge, an anonymous token, the retry.
    assert up.count("GET", "manifest") == 2
    assert up.count("GET", "token") == 1
    before = up.count()
    # Cached: by tag, by digest, by the prefix route, HEAD: no upstream request.
    assert get(srv, "/v2/up.test/team/app/manifests/v1").body == body
    assert get(srv, f"/v2/team/app/manifests/{digest}?ns=up.test").body == body
    h = Client(srv.host).request("HEAD", "/v2/up.test/team/app/manifests/v1",
                                 headers={"Accept": OCI_MANIFEST})
    assert h.status == 200 and h.header("Docker-Content-Digest") == digest
    assert up.count() == before
    # A second repository reuses the token cache only for its own scope.
    up.add_manifest("team/other", "v1", image_manifest(b"two"))
    assert get(srv, "/v2/up.test/team/other/manifests/v1").status == 200
    assert up.count("GET", "token") == 2
    # Stored as an ordinary repository of the tree, with its tag link.
    v2 = os.path.join(srv.root, "docker/registry/v2/repositories/up.test/team/app/_manifests")
    with open(os.path.join(v2, "tags/v1/current/link")) as f:
        assert f.read() == digest


def test_a_manifest_by_digest_is_fetched_and_checked_against_it(upstream_and_mirror):
    up, srv = upstream_and_mirror
    body = image_manifest(b"by digest")
    digest = up.add_manifest("team/app", "v2", body)
    r = get(srv, f"/v2/up.test/team/app/manifests/{digest}")
    assert r.status == 200 and r.body == body, r
    # A tag was not asked for, so none is made (the tag list is the
    # upstream's now: the tree tells what the cache holds).
    tags = os.path.join(srv.root, "docker/registry/v2/repositories/up.test/team/app/_manifests/tags")
    assert not os.path.exists(tags) or os.listdir(tags) == []


def test_upstream_not_found_is_manifest_unknown_and_nothing_is_stored(upstream_and_mirror):
    up, srv = upstream_and_mirror
    r = get(srv, "/v2/up.test/team/none/manifests/v1")
    assert r.status == 404, r
    assert "MANIFEST_UNKNOWN" in r.error_codes()
    names = Client(srv.host).request("GET", "/v2/_catalog").json()["repositories"]
    assert "up.test/team/none" not in names


@pytest.mark.parametrize("fault", ["digest header", "junk", "wrong digest"])
def test_bad_upstream_content_is_502_and_never_cached(upstream_and_mirror, fault):
    up, srv = upstream_and_mirror
    good = image_manifest(b"good")
    if fault == "digest header":
        up.add_manifest("team/bad", "v1", good, digest_header="sha256:" + "0" * 64)
        path = "/v2/up.test/team/bad/manifests/v1"
    elif fault == "junk":
        up.add_manifest("team/bad", "v1", b"<html>rate limited</html>", media_type=OCI_MANIFEST)
        path = "/v2/up.test/team/bad/manifests/v1"
    else:  # asked by digest, served other bytes
        want = "sha256:" + hashlib.sha256(b"something else").hexdigest()
        up.manifests[("team/bad", want)] = (good, OCI_MANIFEST, want)
        path = f"/v2/up.test/team/bad/manifests/{want}"
    for _ in range(2):
        r = get(srv, path)
        assert r.status == 502, r
    # Each try went upstream again: nothing was cached.
    assert up.count("GET", "manifest") >= 3
    assert not os.path.exists(os.path.join(
        srv.root, "docker/registry/v2/repositories/up.test/team/bad"))


def test_an_unreachable_upstream_is_502_and_the_server_keeps_serving():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    fd, cfg = tempfile.mkstemp(suffix=".toml")
    with os.fdopen(fd, "w") as f:
        f.write(f'[[mirror]]\nprefix = "down.test"\nurl = "http://127.0.0.1:{port}"\n')
    srv = Ringport(config=cfg).start()
    try:
        srv.wait_ready()
        r = get(srv, "/v2/down.test/x/manifests/v1")
        assert r.status == 502, r
        assert "UNKNOWN" in r.error_codes()
        assert Client(srv.host).request("GET", "/v2/").status == 200
    finally:
        srv.cleanup()
        os.unlink(cfg)


TTL_PAST_S = 2.3  # past the tests' tag_ttl_s (2 s; 1 s in the removal test)


@contextlib.contextmanager
def fake_and_mirror(extra="", bearer=False):
    """A scripted upstream and a ringport mirroring it as up.test."""
    up = FakeUpstream(bearer=bearer)
    srv, cfg = mirror_of(up, extra)
    try:
        yield up, srv
    finally:
        srv.cleanup()
        up.close()
        os.unlink(cfg)


def mirror_of(up, extra=""):
    return ringport_with_config(f'[[mirror]]\nprefix = "up.test"\nurl = "{up.url}"\n{extra}')


def test_a_cached_tag_is_fresh_for_tag_ttl_then_revalidated_with_one_head():
    with fake_and_mirror("tag_ttl_s = 2\n") as (up, srv):
        one, two = image_manifest(b"v1 content"), image_manifest(b"v2 content")
        up.add_manifest("team/app", "latest", one)
        assert get(srv, "/v2/up.test/team/app/manifests/latest").body == one
        assert (up.count("GET", "manifest"), up.count("HEAD", "manifest")) == (1, 0)
        # Re-pointed upstream; within the TTL the cache answers without asking.
        two_digest = up.add_manifest("team/app", "latest", two)
        assert get(srv, "/v2/up.test/team/app/manifests/latest").body == one
        assert up.count() == 1
        time.sleep(TTL_PAST_S)
        # Past the TTL: one HEAD sees the new digest, one GET fetches it.
        r = get(srv, "/v2/up.test/team/app/manifests/latest")
        assert r.body == two and r.header("Docker-Content-Digest") == two_digest
        assert (up.count("GET", "manifest"), up.count("HEAD", "manifest")) == (2, 1)
        assert r.header("Warning") is None
        time.sleep(TTL_PAST_S)
        # Unchanged upstream: a HEAD, no GET (Docker Hub does not count HEADs).
        assert get(srv, "/v2/up.test/team/app/manifests/latest").body == two
        assert (up.count("GET", "manifest"), up.count("HEAD", "manifest")) == (2, 2)
        # By digest: never upstream once cached, TTL or not.
        assert get(srv, f"/v2/up.test/team/app/manifests/{two_digest}").body == two
        assert up.count() == 4
        # Upstream down past the TTL: the cached tag is served, marked stale.
        up.close()
        time.sleep(TTL_PAST_S)
        r = get(srv, "/v2/up.test/team/app/manifests/latest")
        assert r.status == 200 and r.body == two, r
        assert r.header("Warning", "").startswith('110 ringport "stale: ')
        # A tag the cache never had cannot be served stale: 502.
        assert get(srv, "/v2/up.test/team/app/manifests/other").status == 502


def test_a_tag_removed_upstream_is_unknown_after_its_ttl():
    with fake_and_mirror("tag_ttl_s = 1\n") as (up, srv):
        body = image_manifest(b"soon gone")
        up.add_manifest("team/app", "rc", body)
        assert get(srv, "/v2/up.test/team/app/manifests/rc").body == body
        del up.manifests[("team/app", "rc")]
        time.sleep(TTL_PAST_S)
        r = get(srv, "/v2/up.test/team/app/manifests/rc")
        assert r.status == 404 and "MANIFEST_UNKNOWN" in r.error_codes(), r


# --- fetching blobs ---------------------------------------------------------

def blob_get(srv, path, headers=None):
    return Client(srv.host).request("GET", path, headers=headers)


def test_a_blob_missing_from_the_cache_is_fetched_verified_and_kept(upstream_and_mirror):
    up, srv = upstream_and_mirror
    data = os.urandom(3 * 1024 * 1024 + 17)  # several of the pipeline's buffers
    d = up.add_blob("team/app", data)
    r = blob_get(srv, f"/v2/team/app/blobs/{d}?ns=up.test")
    assert r.status == 200, r
    assert r.body == data
    assert r.header("Docker-Content-Digest") == d
    assert (up.count("GET", "blob"), up.count("GET", "token")) == (2, 1)  # 401, token, retry
    before = up.count()
    # From the cache now: whole, by range, by HEAD, by the prefix route.
    assert blob_get(srv, f"/v2/up.test/team/app/blobs/{d}").body == data
    part = blob_get(srv, f"/v2/up.test/team/app/blobs/{d}", {"Range": "bytes=10-19"})
    assert part.status == 206 and part.body == data[10:20]
    assert Client(srv.host).request("HEAD", f"/v2/up.test/team/app/blobs/{d}").status == 200
    assert up.count() == before
    # In the tree as Distribution keeps it: the data once, a layer link.
    v2 = os.path.join(srv.root, "docker/registry/v2")
    with open(os.path.join(v2, "blobs/sha256", d[7:9], d[7:], "data"), "rb") as f:
        assert f.read() == data
    with open(os.path.join(v2, "repositories/up.test/team/app/_layers/sha256", d[7:],
                           "link")) as f:
        assert f.read() == d


def test_a_blob_redirected_to_a_cdn_is_fetched_without_the_token(upstream_and_mirror):
    up, srv = upstream_and_mirror
    cdn = FakeUpstream(bearer=False)
    try:
        up.redirect_blobs_to = cdn
        data = b"from the cdn" * 1000
        d = up.add_blob("team/app", data)
        r = blob_get(srv, f"/v2/up.test/team/app/blobs/{d}")
        assert r.status == 200 and r.body == data, r
        assert cdn.count("GET", "cdn") == 1  # and it saw no Authorization, or it says 403
    finally:
        cdn.close()


def get_or_cut(srv, path):
    """The response, or "cut" when the server closed it short of its length."""
    try:
        return blob_get(srv, path)
    except (http.client.IncompleteRead, ConnectionError):
        return "cut"


@pytest.mark.parametrize("size", [1300, 600 * 1024])  # within and past the held-back tail
def test_wrong_blob_bytes_are_cut_short_then_502_and_nothing_is_kept(size):
    with fake_and_mirror("not_found_ttl_s = 1\n", bearer=True) as (up, srv):
        data = os.urandom(size)
        wrong = bytearray(data)
        wrong[-1] ^= 1  # the same length: only the digest can tell
        d = up.add_blob("team/app", data, served=bytes(wrong))
        path = f"/v2/up.test/team/app/blobs/{d}"
        first = get_or_cut(srv, path)
        # Streamed from the first byte, so the answer may already be under way:
        # then it ends short, never with the wrong blob whole.
        assert first == "cut" or first.status == 502, first
        gets = up.count("GET", "blob")
        r = blob_get(srv, path)  # remembered: no second stream cut short
        assert r.status == 502 and "UNKNOWN" in r.error_codes(), r
        assert up.count("GET", "blob") == gets
        assert not os.path.exists(os.path.join(srv.root, "docker/registry/v2/blobs/sha256",
                                               d[7:9], d[7:]))
        # The upstream repairs itself: after the TTL the next pull gets the right bytes.
        up.blobs[("team/app", d)] = data
        time.sleep(1.1)
        r = blob_get(srv, path)
        assert r.status == 200 and r.body == data, r


def test_a_blob_the_upstream_lacks_is_blob_unknown(upstream_and_mirror):
    up, srv = upstream_and_mirror
    r = blob_get(srv, "/v2/up.test/team/app/blobs/sha256:" + "ab" * 32)
    assert r.status == 404 and "BLOB_UNKNOWN" in r.error_codes(), r


# --- streaming while the fetch lands ----------------------------------------

def open_blob(srv, path, method="GET", headers=None):
    """A response whose body the test reads piece by piece."""
    conn = http.client.HTTPConnection(srv.host, timeout=10)
    conn.request(method, path, headers=headers or {})
    return conn, conn.getresponse()


def wait_for(cond, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def blob_file(srv, d):
    return os.path.join(srv.root, "docker/registry/v2/blobs/sha256", d[7:9], d[7:], "data")


def test_clients_are_streamed_the_bytes_as_they_land_and_late_ones_join():
    with fake_and_mirror() as (up, srv):
        data = os.urandom(4 * 1024 * 1024 + 5)
        d = up.add_blob("team/app", data)
        up.hold_at = 1024 * 1024  # the upstream sends 1 MiB, then waits for the test
        path = f"/v2/up.test/team/app/blobs/{d}"
        conns = []
        try:
            c1, first = open_blob(srv, path)
            conns.append(c1)
            assert first.status == 200 and first.getheader("Content-Length") == str(len(data))
            # The first MiB reaches the client while the fetch is held mid-body.
            assert first.read(1024 * 1024) == data[:1024 * 1024]
            # A late client reads what is on disk, from the first byte.
            c2, late = open_blob(srv, path)
            conns.append(c2)
            assert late.status == 200 and late.read(512 * 1024) == data[:512 * 1024]
            # HEAD and a Range inside what landed answer now, fetch still running.
            c3, head = open_blob(srv, path, "HEAD")
            conns.append(c3)
            assert head.status == 200 and head.getheader("Content-Length") == str(len(data))
            head.read()
            c4, part = open_blob(srv, path, headers={"Range": "bytes=1000-199999"})
            conns.append(c4)
            assert part.status == 206, part.status
            assert part.getheader("Content-Range") == f"bytes 1000-199999/{len(data)}"
            assert part.read() == data[1000:200000]
            assert not os.path.exists(blob_file(srv, d))  # nothing committed yet
            up.release.set()
            assert first.read() == data[1024 * 1024:]
            assert late.read() == data[512 * 1024:]
        finally:
            up.release.set()
            for c in conns:
                c.close()
        assert up.count("GET", "blob") == 1
        assert open(blob_file(srv, d), "rb").read() == data


def test_a_range_past_what_landed_waits_for_its_bytes():
    with fake_and_mirror() as (up, srv):
        data = os.urandom(2 * 1024 * 1024)
        d = up.add_blob("team/app", data)
        up.hold_at = 256 * 1024
        path = f"/v2/up.test/team/app/blobs/{d}"
        c1, first = open_blob(srv, path)
        try:
            assert first.read(128 * 1024) == data[:128 * 1024]
            result = {}

            def tail():
                r = blob_get(srv, path, headers={"Range": "bytes=1048576-1048675"})
                result["r"] = r
            t = threading.Thread(target=tail)
            t.start()
            time.sleep(0.3)
            assert "r" not in result  # its bytes have not come yet
            up.release.set()
            t.join(10)
            r = result["r"]
            assert r.status == 206 and r.body == data[1048576:1048676], r
            assert first.read() == data[128 * 1024:]
        finally:
            up.release.set()
            c1.close()
        assert up.count("GET", "blob") == 1


def test_the_fetch_finishes_and_is_kept_when_every_client_has_gone():
    with fake_and_mirror() as (up, srv):
        data = os.urandom(3 * 1024 * 1024)
        d = up.add_blob("team/app", data)
        up.hold_at = 512 * 1024
        c1, first = open_blob(srv, f"/v2/up.test/team/app/blobs/{d}")
        assert first.read(100) == data[:100]
        c1.close()  # the only client leaves mid-fetch
        up.release.set()
        assert wait_for(lambda: os.path.exists(blob_file(srv, d)))
        assert open(blob_file(srv, d), "rb").read() == data
        r = blob_get(srv, f"/v2/up.test/team/app/blobs/{d}")
        assert r.status == 200 and r.body == data
        assert up.count("GET", "blob") == 1


def test_a_slow_client_does_not_slow_the_fetch_or_the_others():
    with fake_and_mirror() as (up, srv):
        data = os.urandom(24 * 1024 * 1024)  # more than the socket buffers hold
        d = up.add_blob("team/app", data)
        path = f"/v2/up.test/team/app/blobs/{d}"
        up.hold_at = 64 * 1024
        slow_conn, slow = open_blob(srv, path)  # reads nothing until the end
        try:
            up.release.set()
            fast = blob_get(srv, path)
            assert fast.status == 200 and fast.body == data
            # Committed while the slow client has read almost nothing.
            assert wait_for(lambda: os.path.exists(blob_file(srv, d)))
            assert slow.read() == data
        finally:
            slow_conn.close()
        assert up.count("GET", "blob") == 1


def test_an_interrupted_transfer_resumes_with_range_and_clients_see_no_error():
    with fake_and_mirror() as (up, srv):
        data = os.urandom(3 * 1024 * 1024 + 11)
        d = up.add_blob("team/app", data)
        up.resets, up.reset_at = 2, 1024 * 1024 + 123
        r = blob_get(srv, f"/v2/up.test/team/app/blobs/{d}")
        assert r.status == 200 and r.body == data, r
        assert up.count("GET", "blob") == 3
        assert up.ranges[0] is None
        assert up.ranges[1:] == [f"bytes={1024 * 1024 + 123}-"] * 2, up.ranges
        assert open(blob_file(srv, d), "rb").read() == data


def test_resuming_gives_up_after_its_bounded_retries():
    with fake_and_mirror("not_found_ttl_s = 0\n") as (up, srv):
        data = os.urandom(2 * 1024 * 1024)
        d = up.add_blob("team/app", data)
        up.resets, up.reset_at = 100, 300 * 1024
        first = get_or_cut(srv, f"/v2/up.test/team/app/blobs/{d}")
        assert first == "cut" or first.status == 502, first
        assert up.count("GET", "blob") == 4  # the transfer and 3 resumes
        assert not os.path.exists(blob_file(srv, d))
        # Nothing half-stored: once the upstream behaves, a pull is whole.
        up.resets = 0
        r = blob_get(srv, f"/v2/up.test/team/app/blobs/{d}")
        assert r.status == 200 and r.body == data


def test_a_head_of_an_uncached_blob_answers_once_the_upstream_does():
    with fake_and_mirror() as (up, srv):
        data = os.urandom(2 * 1024 * 1024)
        d = up.add_blob("team/app", data)
        up.hold_at = 64 * 1024  # the body would never finish before the test releases it
        try:
            r = Client(srv.host).request("HEAD", f"/v2/up.test/team/app/blobs/{d}")
            assert r.status == 200 and r.header("Content-Length") == str(len(data)), r
            assert r.header("Docker-Content-Digest") == d
        finally:
            up.release.set()
        # The HEAD started the fetch; it lands for the next pull.
        assert wait_for(lambda: os.path.exists(blob_file(srv, d)))
        assert blob_get(srv, f"/v2/up.test/team/app/blobs/{d}").body == data
        assert up.count("GET", "blob") == 1


def test_a_stop_cuts_a_stream_waiting_on_a_stalled_fetch_after_the_drain():
    """A stream follows the fetch, not a socket: the stop must still end it."""
    with fake_and_mirror("\n[http]\ndrain_timeout_ms = 200\n") as (up, srv):
        data = os.urandom(1024 * 1024)
        d = up.add_blob("team/app", data)
        up.hold_at = 256 * 1024  # never released before the stop
        c1, first = open_blob(srv, f"/v2/up.test/team/app/blobs/{d}")
        try:
            assert first.read(64 * 1024) == data[:64 * 1024]
            t0 = time.monotonic()
            assert srv.stop(timeout_s=8) == 0
            assert time.monotonic() - t0 < 5
            with pytest.raises((http.client.IncompleteRead, ConnectionError)):
                first.read()
        finally:
            up.release.set()
            c1.close()


# --- single flight ----------------------------------------------------------

def at_once(n, fn):
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: fn(), range(n)))


def test_many_clients_asking_at_once_make_one_upstream_request_each_thing():
    with fake_and_mirror("tag_ttl_s = 2\nnot_found_ttl_s = 0\n") as (up, srv):
        up.delay_s = 0.5  # every client arrives while the first fetch is under way
        data = os.urandom(256 * 1024)
        d = up.add_blob("team/app", data)
        body = image_manifest(b"one flight")
        up.add_manifest("team/app", "v1", body)
        blobs = at_once(16, lambda: blob_get(srv, f"/v2/up.test/team/app/blobs/{d}"))
        assert all(r.status == 200 and r.body == data for r in blobs), blobs[0]
        assert up.count("GET", "blob") == 1
        tags = at_once(16, lambda: get(srv, "/v2/up.test/team/app/manifests/v1"))
        assert all(r.status == 200 and r.body == body for r in tags), tags[0]
        assert up.count("GET", "manifest") == 1
        # Past the TTL, 16 pulls of the tag share one revalidation.
        time.sleep(TTL_PAST_S)
        tags = at_once(16, lambda: get(srv, "/v2/up.test/team/app/manifests/v1"))
        assert all(r.status == 200 and r.body == body for r in tags), tags[0]
        assert (up.count("HEAD", "manifest"), up.count("GET", "manifest")) == (1, 1)
        # Errors are shared too; with not_found_ttl_s = 0 a later request tries again.
        missing = at_once(8, lambda: blob_get(srv, "/v2/up.test/team/app/blobs/sha256:" + "cd" * 32))
        assert all(r.status == 404 for r in missing)
        assert up.count("GET", "blob") == 2
        assert blob_get(srv, "/v2/up.test/team/app/blobs/sha256:" + "cd" * 32).status == 404
        assert up.count("GET", "blob") == 3


def test_an_upstream_404_is_remembered_for_not_found_ttl_s():
    with fake_and_mirror("not_found_ttl_s = 1\n") as (up, srv):
        missing_blob = "/v2/up.test/team/app/blobs/sha256:" + "ef" * 32
        for _ in range(3):
            assert get(srv, "/v2/up.test/team/app/manifests/nope").status == 404
            assert blob_get(srv, missing_blob).status == 404
        assert (up.count("GET", "manifest"), up.count("GET", "blob")) == (1, 1)
        time.sleep(1.3)
        assert get(srv, "/v2/up.test/team/app/manifests/nope").status == 404
        assert (up.count("GET", "manifest"), up.count("GET", "blob")) == (2, 1)
        # Once the upstream has it, the next request after the TTL gets it.
        body = image_manifest(b"arrived")
        up.add_manifest("team/app", "nope", body)
        time.sleep(1.3)
        assert get(srv, "/v2/up.test/team/app/manifests/nope").body == body


def test_the_upstream_is_asked_for_every_manifest_type_whatever_the_client_accepts():
    """The cache is shared: one client's narrow Accept must not decide what
    the tag holds for the others (an upstream would answer a platform's
    manifest, or 404, and that would be stored under the tag)."""
    with fake_and_mirror() as (up, srv):
        body = image_manifest(b"any accept")
        up.add_manifest("team/app", "v1", body)
        narrow = "application/vnd.docker.distribution.manifest.v2+json"
        r = Client(srv.host).request("GET", "/v2/up.test/team/app/manifests/v1",
                                     headers={"Accept": narrow})
        assert r.status == 404, r  # an OCI manifest, which this client does not take
        assert up.accepts and all(
            all(t in a for t in ("application/vnd.oci.image.index.v1+json",
                                 "application/vnd.oci.image.manifest.v1+json",
                                 "application/vnd.docker.distribution.manifest.list.v2+json",
                                 narrow)) for a in up.accepts), up.accepts
        # Cached as the upstream has it, for the next client.
        before = up.count()
        assert get(srv, "/v2/up.test/team/app/manifests/v1").body == body
        assert up.count() == before


def test_a_stalled_upstream_costs_one_deadline_then_the_cache_answers_at_once():
    with fake_and_mirror("tag_ttl_s = 1\ndeadline_ms = 500\nretry_after_s = 2\n") as (up, srv):
        body = image_manifest(b"cached before the outage")
        up.add_manifest("team/app", "v1", body)
        assert get(srv, "/v2/up.test/team/app/manifests/v1").body == body
        up.delay_s = 30  # it accepts, and answers nothing for 30 s
        time.sleep(1.3)  # past the tag's TTL
        r = get(srv, "/v2/up.test/team/app/manifests/v1")
        assert r.status == 200 and r.body == body, r
        assert r.header("Warning", "").startswith('110 ringport "stale: '), r
        heads = up.count("HEAD", "manifest")
        assert heads == 1
        # The circuit is open: ten more pulls are answered from the cache
        # without a request upstream.
        for _ in range(10):
            r = get(srv, "/v2/up.test/team/app/manifests/v1")
            assert r.status == 200 and r.body == body and r.header("Warning"), r
        assert up.count("HEAD", "manifest") == heads
        # retry_after_s later the next pull asks again, and the upstream is back.
        up.delay_s = 0
        time.sleep(2.3)
        r = get(srv, "/v2/up.test/team/app/manifests/v1")
        assert r.status == 200 and r.body == body and r.header("Warning") is None, r
        assert up.count("HEAD", "manifest") == heads + 1


# --- outages: the probe, Retry-After, rate limits, max_stale ----------------

def pull_until(srv, cond, timeout_s=8.0):
    """Pulls team/app:v1 every 50 ms until `cond(response)`; the last response."""
    deadline = time.monotonic() + timeout_s
    r = None
    while time.monotonic() < deadline:
        r = get(srv, "/v2/up.test/team/app/manifests/v1")
        if cond(r):
            return r
        time.sleep(0.05)
    raise AssertionError(f"no pull met the condition in {timeout_s} s: {r}")


def test_the_circuit_stays_open_until_a_background_probe_sees_the_upstream_back():
    with fake_and_mirror("tag_ttl_s = 1\nretry_after_s = 1\n") as (up, srv):
        body = image_manifest(b"probe")
        up.add_manifest("team/app", "v1", body)
        assert get(srv, "/v2/up.test/team/app/manifests/v1").body == body
        up.down = (503, {})
        time.sleep(1.2)
        r = get(srv, "/v2/up.test/team/app/manifests/v1")
        assert r.status == 200 and r.body == body and r.header("Warning"), r
        assert up.count("HEAD", "down") == 1
        # Down for 2.5 s more: the probe asks about once a second, the pulls never do.
        for _ in range(25):
            r = get(srv, "/v2/up.test/team/app/manifests/v1")
            assert r.status == 200 and r.header("Warning"), r
            time.sleep(0.1)
        assert up.count("HEAD", "down") == 1
        assert 1 <= up.count("GET", "ping") <= 4, up.counts
        # Back: the probe sees it, and the next pull revalidates as usual.
        up.down = None
        r = pull_until(srv, lambda r: r.header("Warning") is None)
        assert r.body == body
        assert up.count("HEAD", "manifest") == 1
        assert up.count("GET", "ping") >= 1


def test_an_upstream_retry_after_holds_the_probe_back():
    with fake_and_mirror("tag_ttl_s = 1\nretry_after_s = 1\n") as (up, srv):
        body = image_manifest(b"retry after")
        up.add_manifest("team/app", "v1", body)
        assert get(srv, "/v2/up.test/team/app/manifests/v1").body == body
        up.down = (429, {"Retry-After": "4"})
        time.sleep(1.2)
        t0 = time.monotonic()
        r = get(srv, "/v2/up.test/team/app/manifests/v1")
        assert r.status == 200 and r.header("Warning"), r
        up.down = None  # back at once, but it asked for 4 s
        time.sleep(2.5)
        assert up.count("GET", "ping") == 0, up.counts
        assert get(srv, "/v2/up.test/team/app/manifests/v1").header("Warning")
        r = pull_until(srv, lambda r: r.header("Warning") is None)
        assert time.monotonic() - t0 >= 3.5
        assert up.count("GET", "ping") >= 1


def test_below_ratelimit_min_cached_tags_are_not_revalidated_for_retry_after_s():
    with fake_and_mirror("tag_ttl_s = 1\nretry_after_s = 2\nratelimit_min = 10\n") as (up, srv):
        body = image_manifest(b"rate limited")
        up.add_manifest("team/app", "v1", body)
        up.extra_headers = {"ratelimit-remaining": "5;w=21600"}
        assert get(srv, "/v2/up.test/team/app/manifests/v1").body == body
        time.sleep(1.2)  # past the TTL, but 5 pulls left is below 10
        r = get(srv, "/v2/up.test/team/app/manifests/v1")
        assert r.status == 200 and r.body == body, r
        assert "pulls left" in r.header("Warning", ""), r
        assert up.count("HEAD", "manifest") == 0
        # A miss still goes upstream: nothing else could answer it.
        other = image_manifest(b"a miss")
        up.add_manifest("team/app", "v2", other)
        assert get(srv, "/v2/up.test/team/app/manifests/v2").body == other
        # retry_after_s after the low reading, the tag is revalidated again.
        up.extra_headers = {"ratelimit-remaining": "90;w=21600"}
        time.sleep(2.1)
        r = get(srv, "/v2/up.test/team/app/manifests/v1")
        assert r.status == 200 and r.header("Warning") is None, r
        assert up.count("HEAD", "manifest") == 1


def test_a_cached_tag_is_served_stale_only_within_max_stale_s_of_its_last_confirmation():
    with fake_and_mirror("tag_ttl_s = 1\nretry_after_s = 30\nmax_stale_s = 4\n") as (up, srv):
        body = image_manifest(b"max stale")
        up.add_manifest("team/app", "v1", body)
        assert get(srv, "/v2/up.test/team/app/manifests/v1").body == body
        time.sleep(3)
        # Revalidated: confirmed now, so the 4 s count again from here.
        r = get(srv, "/v2/up.test/team/app/manifests/v1")
        assert r.status == 200 and r.header("Warning") is None, r
        assert up.count("HEAD", "manifest") == 1
        up.down = (503, {})
        time.sleep(2)
        r = get(srv, "/v2/up.test/team/app/manifests/v1")
        assert r.status == 200 and r.body == body and r.header("Warning"), r
        time.sleep(3.2)
        r = get(srv, "/v2/up.test/team/app/manifests/v1")
        assert r.status == 502 and "max_stale_s" in r.body.decode(), r


# --- tag lists and referrers: the upstream's, for list_ttl_s ----------------

def test_a_mirrored_tag_list_is_the_upstreams_kept_for_list_ttl_s_and_paged_here():
    with fake_and_mirror("list_ttl_s = 1\n", bearer=True) as (up, srv):
        for t in ("a", "b", "c"):
            up.add_manifest("team/app", t, image_manifest(t.encode()))
        c = Client(srv.host)
        r = c.request("GET", "/v2/up.test/team/app/tags/list")
        assert r.status == 200, r
        assert r.json() == {"name": "up.test/team/app", "tags": ["a", "b", "c"]}
        assert c.request("GET", "/v2/team/app/tags/list?ns=up.test").json()["tags"] == \
            ["a", "b", "c"]
        assert up.count("GET", "tags") == 2  # the 401, then the token's retry; then cached
        # Pages: the upstream's Link comes back pointing here.
        r = c.request("GET", "/v2/up.test/team/app/tags/list?n=2")
        assert r.json()["tags"] == ["a", "b"]
        link = r.header("Link")
        assert link == '</v2/up.test/team/app/tags/list?n=2&last=b>; rel="next"', link
        r = c.request("GET", link[1:link.index(">")])
        assert r.json()["tags"] == ["c"] and r.header("Link") is None
        # A new tag upstream shows once the kept list is older than list_ttl_s.
        up.add_manifest("team/app", "d", image_manifest(b"d"))
        assert c.request("GET", "/v2/up.test/team/app/tags/list").json()["tags"] == \
            ["a", "b", "c"]
        time.sleep(1.1)
        assert c.request("GET", "/v2/up.test/team/app/tags/list").json()["tags"] == \
            ["a", "b", "c", "d"]
        # Unknown upstream and here: NAME_UNKNOWN.
        r = c.request("GET", "/v2/up.test/team/nope/tags/list")
        assert r.status == 404 and "NAME_UNKNOWN" in r.error_codes(), r


def test_with_the_upstream_down_a_tag_list_is_the_caches_said_stale():
    with fake_and_mirror("list_ttl_s = 0\n") as (up, srv):
        body = image_manifest(b"cached")
        up.add_manifest("team/app", "v1", body)
        up.add_manifest("team/app", "v2", image_manifest(b"not cached"))
        assert get(srv, "/v2/up.test/team/app/manifests/v1").body == body
        up.down = (503, {})
        c = Client(srv.host)
        r = c.request("GET", "/v2/up.test/team/app/tags/list")
        assert r.status == 200 and r.json()["tags"] == ["v1"], r
        assert r.header("Warning", "").startswith('110 ringport "stale: '), r
        r = c.request("GET", "/v2/up.test/team/never/tags/list")
        assert r.status == 502, r


def test_mirrored_referrers_are_the_upstreams_with_its_filter():
    with fake_and_mirror("list_ttl_s = 30\n", bearer=True) as (up, srv):
        body = image_manifest(b"signed image")
        subject = up.add_manifest("team/app", "v1", body)
        sig = {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "5" * 64, "size": 321,
               "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json"}
        sbom = {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "6" * 64, "size": 123,
                "artifactType": "application/spdx+json"}
        up.referrers[("team/app", subject)] = [sig, sbom]
        c = Client(srv.host)
        r = c.request("GET", f"/v2/up.test/team/app/referrers/{subject}")
        assert r.status == 200, r
        assert r.header("Content-Type") == "application/vnd.oci.image.index.v1+json"
        assert r.json()["manifests"] == [sig, sbom]
        r = c.request("GET", f"/v2/up.test/team/app/referrers/{subject}"
                             "?artifactType=application/spdx%2Bjson")
        assert r.json()["manifests"] == [sbom], r
        assert r.header("OCI-Filters-Applied") == "artifactType"
        before = up.count("GET", "referrers")
        c.request("GET", f"/v2/up.test/team/app/referrers/{subject}")
        assert up.count("GET", "referrers") == before  # kept for list_ttl_s


def test_an_upstream_without_the_referrers_api_leaves_the_caches_answer():
    with fake_and_mirror() as (up, srv):
        up.referrers_api = False
        subject = "sha256:" + "7" * 64
        r = Client(srv.host).request("GET", f"/v2/up.test/team/app/referrers/{subject}")
        assert r.status == 200 and r.json()["manifests"] == [], r
        assert r.header("Warning") is None


def test_a_blob_stored_for_another_repository_is_linked_not_fetched_again():
    with fake_and_mirror() as (up, srv):
        data = os.urandom(256 * 1024)  # a base layer two images share
        d = up.add_blob("team/one", data)
        up.add_blob("team/two", data)
        assert blob_get(srv, f"/v2/up.test/team/one/blobs/{d}").body == data
        assert blob_get(srv, f"/v2/up.test/team/two/blobs/{d}").body == data
        assert up.count("GET", "blob") == 1
        assert os.path.exists(os.path.join(srv.root, "docker/registry/v2/repositories/up.test/"
                                           "team/two/_layers/sha256", d[7:], "link"))


def test_with_credentials_a_blob_is_fetched_for_each_repository_asked():
    """A private repository's blob must pass the upstream's own check."""
    with fake_and_mirror('username = "u"\npassword = "p"\n') as (up, srv):
        data = os.urandom(64 * 1024)
        d = up.add_blob("team/one", data)
        assert blob_get(srv, f"/v2/up.test/team/one/blobs/{d}").body == data
        r = blob_get(srv, f"/v2/up.test/team/two/blobs/{d}")  # team/two upstream lacks it
        assert r.status == 404, r
        assert up.count("GET", "blob") == 2


def test_concurrent_fetches_of_one_repository_share_one_token_request():
    with fake_and_mirror(bearer=True) as (up, srv):
        up.delay_s = 0.3  # every fetch meets the 401 before any token came back
        blobs = [os.urandom(1000 + i) for i in range(8)]
        ds = [up.add_blob("team/app", b) for b in blobs]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            got = list(pool.map(lambda d: blob_get(srv, f"/v2/up.test/team/app/blobs/{d}"), ds))
        assert [r.body for r in got] == blobs
        assert up.count("GET", "token") == 1


def test_a_repository_the_upstream_denies_even_with_a_token_is_unknown_and_remembered():
    """Docker Hub answers 401 insufficient_scope, not 404, for a repository
    that does not exist: a typo'd image must be a 404, asked once."""
    with fake_and_mirror("not_found_ttl_s = 30\n", bearer=True) as (up, srv):
        up.denied.add("team/typo")
        for i in range(3):
            r = get(srv, "/v2/up.test/team/typo/manifests/latest")
            assert r.status == 404 and "MANIFEST_UNKNOWN" in r.error_codes(), r
            assert i > 0 or "insufficient_scope" in r.body.decode(), r
        r = blob_get(srv, "/v2/up.test/team/typo/blobs/sha256:" + "a" * 64)
        assert r.status == 404 and "BLOB_UNKNOWN" in r.error_codes(), r
        assert up.count("GET", "manifest") == 2  # the 401, the token's retry; then remembered
