# SPDX-License-Identifier: Apache-2.0
"""Storage interop with CNCF Distribution on the SAME root directory.

producer serves an empty root; skopeo (and the raw client) push images into it;
producer stops; consumer starts on that root and must serve everything
byte-identical (manifests, blobs, tags lists, catalog), skopeo copies everything
back out identical to the source layouts; consumer then writes (new tag, new
repository, delete) and producer, restarted on the root, must see those writes.

Directions: ringport -> distribution and distribution -> ringport. With
RINGTEST_TARGET=distribution "ringport" is Distribution too, which checks the
test itself (distribution -> distribution).
"""
import json
import os
import shutil
import tempfile

import pytest

from ringtest import realclients as rc
from ringtest.client import Client, sha256
from ringtest.harness import Distribution, Ringport

MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
ACCEPT_ALL = ", ".join([MT_OCI_MANIFEST, MT_OCI_INDEX, MT_DOCKER_V2, MT_DOCKER_LIST])

REPOS = ["interop/single", "interop/multi", "interop/docker", "interop/raw"]


def make(kind, root):
    if kind == "ringport" and os.environ.get("RINGTEST_TARGET", "ringport") != "distribution":
        return Ringport(root=root)
    return Distribution(root=root)


def start(server):
    server.start()
    if hasattr(server, "wait_ready"):
        server.wait_ready()
    return server


def snapshot(host, repos):
    """Everything a client can read about `repos`: tags, manifests, blobs, catalog."""
    c = Client(host)
    snap = {}
    r = c.request("GET", "/v2/_catalog")
    assert r.status == 200, r
    snap["catalog"] = r.json()["repositories"]
    for repo in repos:
        r = c.request("GET", f"/v2/{repo}/tags/list")
        assert r.status == 200, (repo, r)
        tags = sorted(r.json()["tags"] or [])
        snap[(repo, "tags")] = tags
        todo = list(tags)
        seen = set()
        for _ in range(1000):  # bounded walk: tags -> manifests -> children / blobs
            if not todo:
                break
            ref = todo.pop(0)
            if ref in seen:
                continue
            seen.add(ref)
            m = c.get_manifest(repo, ref, accept=ACCEPT_ALL)
            assert m.status == 200, (repo, ref, m)
            digest = m.header("Docker-Content-Digest")
            assert digest == sha256(m.body), (repo, ref)
            snap[(repo, ref)] = (m.header("Content-Type"), digest, m.body)
            doc = json.loads(m.body)
            if "manifests" in doc:
                todo += [d["digest"] for d in doc["manifests"]]
                continue
            todo.append(digest)
            for d in [doc["config"]["digest"]] + [x["digest"] for x in doc["layers"]]:
                b = c.get_blob(repo, d)
                assert b.status == 200, (repo, d, b.status)
                assert sha256(b.body) == d
                snap[(repo, d)] = len(b.body)
    return snap


def produce(server, skopeo, images):
    """Push the test content; returns the raw-client manifest bytes."""
    h = server.host
    skopeo.copy(images.oci("single"), f"docker://{h}/interop/single:v1")
    skopeo.copy(f"docker://{h}/interop/single:v1", f"docker://{h}/interop/single:v2")
    skopeo.copy(images.oci("multi"), f"docker://{h}/interop/multi:v1", all_images=True)
    skopeo.copy(images.oci("single"), f"docker://{h}/interop/docker:v1", "--format", "v2s2")
    # raw client: a chunked blob upload and a manifest with unusual formatting, whose
    # exact bytes (indentation, key order, trailing newline) must be kept
    c = Client(h)
    layer = bytes(range(256)) * 400
    cfg = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    ld = c.push_blob_chunked("interop/raw", layer, 30000)
    cd = c.push_blob("interop/raw", cfg)
    body = ('{\n   "schemaVersion": 2,\n   "mediaType": "%s",\n'
            '   "config": {"mediaType": "application/vnd.oci.image.config.v1+json", '
            '"size": %d, "digest": "%s"},\n'
            '   "layers": [ {"mediaType": "application/vnd.oci.image.layer.v1.tar", '
            '"size": %d, "digest": "%s"} ]\n}\n'
            % (MT_OCI_MANIFEST, len(cfg), cd, len(layer), ld)).encode()
    r = c.put_manifest("interop/raw", "pretty", body, MT_OCI_MANIFEST)
    assert r.status == 201, r
    return body


@pytest.mark.parametrize("producer,consumer", [("ringport", "distribution"),
                                               ("distribution", "ringport")],
                         ids=["ringport-to-distribution", "distribution-to-ringport"])
def test_same_root(producer, consumer, skopeo, images, tmp_path):
    root = tempfile.mkdtemp(prefix="rt-interop-", dir=str(tmp_path))
    servers = []
    try:
        # 1. producer writes
        p = start(make(producer, root))
        servers.append(p)
        raw_body = produce(p, skopeo, images)
        before = snapshot(p.host, REPOS)
        p.stop()
        assert before[("interop/single", "tags")] == ["v1", "v2"]
        assert before[("interop/raw", "pretty")][2] == raw_body
        assert set(REPOS) <= set(before["catalog"])

        # 2. consumer serves the producer's root identically
        c = start(make(consumer, root))
        servers.append(c)
        after = snapshot(c.host, REPOS)
        assert after.keys() == before.keys()
        for k in before:
            assert after[k] == before[k], k
        h = c.host
        out = tmp_path / "back-single"
        skopeo.copy(f"docker://{h}/interop/single:v2", f"oci:{out}:v2")
        assert rc.layout_blobs(str(out)) == images.single_blobs
        out = tmp_path / "back-multi"
        skopeo.copy(f"docker://{h}/interop/multi:v1", f"oci:{out}:v1", all_images=True)
        assert rc.layout_blobs(str(out)) == images.multi_blobs
        assert skopeo.raw(f"docker://{h}/interop/raw:pretty") == raw_body

        # 3. consumer writes: a tag, a repository (blobs mounted), a delete
        skopeo.copy(f"docker://{h}/interop/multi:v1", f"docker://{h}/interop/multi:v2",
                    all_images=True)
        skopeo.copy(f"docker://{h}/interop/single:v1", f"docker://{h}/interop/new:v1")
        docker_digest = before[("interop/docker", "v1")][1]
        skopeo.delete(f"docker://{h}/interop/docker:v1")
        c.stop()

        # 4. producer, restarted on the root, sees the consumer's writes
        p2 = start(make(producer, root))
        servers.append(p2)
        h = p2.host
        assert sorted(skopeo.list_tags(f"docker://{h}/interop/multi")) == ["v1", "v2"]
        assert skopeo.raw(f"docker://{h}/interop/multi:v2") == images.multi_index
        assert skopeo.list_tags(f"docker://{h}/interop/new") == ["v1"]
        assert skopeo.raw(f"docker://{h}/interop/new:v1") == images.single_manifest
        cl = Client(h)
        for ref in ("v1", docker_digest):
            r = cl.get_manifest("interop/docker", ref, accept=ACCEPT_ALL)
            assert r.status == 404, (ref, r)
        catalog = cl.request("GET", "/v2/_catalog").json()["repositories"]
        assert {"interop/new", "interop/single", "interop/multi"} <= set(catalog)
        out = tmp_path / "back-new"
        skopeo.copy(f"docker://{h}/interop/new:v1", f"oci:{out}:v1")
        assert rc.layout_blobs(str(out)) == images.single_blobs
        p2.stop()
    finally:
        for s in servers:
            s.cleanup()
        shutil.rmtree(root, ignore_errors=True)
