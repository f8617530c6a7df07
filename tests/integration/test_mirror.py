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
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from ringtest.client import Client
from ringtest.fakeupstream import FakeUpstream
from ringtest.harness import Ringport, ringport_bin
from ringtest.mirrortest import (OCI_MANIFEST, TTL_PAST_S, at_once, blob_get, fake_and_mirror, get, image_manifest)


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


# --- single flight ----------------------------------------------------------


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
