# SPDX-License-Identifier: Apache-2.0
"""The on-disk tree ringport writes is Distribution's, byte for byte.

The same pushes go to ringport and to Debian's Distribution 2.8.2, each on its
own root; afterwards the two trees must hold the same paths and the same bytes
(upload scratch space aside). Also: what is on disk after a commit (no stray
temporary files, no upload left over), and a schema 1 manifest already in a
tree is still served as stored.
"""
import hashlib
import json
import os

from ringtest import oci
from ringtest.client import Client, sha256
from ringtest.harness import Distribution, Ringport

V2 = "docker/registry/v2"


def tree(root):
    """{relative path: bytes} for every file under the v2 dir, _uploads excluded."""
    out = {}
    base = os.path.join(root, V2)
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if d != "_uploads"]
        for f in filenames:
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, base)] = fh.read()
    return out


def push_everything(host):
    """A fixed sequence of pushes: layers, an image by tag, a second tag, an
    index by digest, a referrer, a chunked blob, a mount, tag and manifest deletes."""
    c = Client(host)
    layer1 = b"layer one\n" * 100
    layer2 = bytes(range(256)) * 300
    body, digest = c.push_image("lib/app", "v1", layers=(b"deterministic a", b"deterministic b"),
                                config=b'{"architecture":"amd64","os":"linux"}')
    r = c.put_manifest("lib/app", "v2", body, oci.OCI_MANIFEST)
    assert r.status == 201, r
    d1 = c.push_blob("lib/app", layer1)
    c.push_blob_chunked("lib/app", layer2, 7000)
    cfg = c.push_blob("other", b"{}")
    man = json.dumps({
        "schemaVersion": 2, "mediaType": oci.OCI_MANIFEST,
        "config": {"mediaType": oci.OCI_CONFIG, "digest": cfg, "size": 2},
        "layers": [{"mediaType": oci.OCI_LAYER, "digest": d1, "size": len(layer1)}],
    }).encode()
    assert c.request("POST", f"/v2/other/blobs/uploads/?mount={d1}&from=lib/app").status in (201, 202)
    c.push_blob("other", layer1)
    assert c.put_manifest("other", "latest", man, oci.OCI_MANIFEST).status == 201
    idx = json.dumps({"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": [
        {"mediaType": oci.OCI_MANIFEST, "digest": sha256(man), "size": len(man),
         "platform": {"architecture": "amd64", "os": "linux"}}]}).encode()
    assert c.put_manifest("other", sha256(idx), idx, oci.OCI_INDEX).status == 201
    ref = json.dumps({
        "schemaVersion": 2, "mediaType": oci.OCI_MANIFEST, "artifactType": "application/x-sig",
        "config": {"mediaType": oci.OCI_EMPTY, "digest": cfg, "size": 2},
        "layers": [{"mediaType": oci.OCI_LAYER, "digest": d1, "size": len(layer1)}],
        "subject": {"mediaType": oci.OCI_MANIFEST, "digest": sha256(man), "size": len(man)},
    }).encode()
    assert c.put_manifest("other", "sig", ref, oci.OCI_MANIFEST).status == 201
    assert c.put_manifest("other", "gone", man, oci.OCI_MANIFEST).status == 201
    assert c.request("DELETE", f"/v2/lib/app/manifests/{digest}").status == 202


def test_ringport_and_distribution_write_the_same_tree_for_the_same_pushes(tmp_path):
    roots = {"ringport": str(tmp_path / "r"), "distribution": str(tmp_path / "d")}
    for root in roots.values():
        os.makedirs(root)
    with Ringport(root=roots["ringport"]) as r:
        push_everything(r.host)
    with Distribution(root=roots["distribution"]) as d:
        push_everything(d.host)
    ours, theirs = tree(roots["ringport"]), tree(roots["distribution"])
    assert sorted(ours) == sorted(theirs), (
        f"only ringport: {sorted(set(ours) - set(theirs))}\n"
        f"only distribution: {sorted(set(theirs) - set(ours))}")
    for path in ours:
        assert ours[path] == theirs[path], path


def test_link_files_hold_the_bare_digest_and_nothing_temporary_is_left(registry):
    c = Client(registry.host)
    img = oci.push_image(registry.host, "a/b", "t")
    files = tree(registry.root)
    links = {p: b for p, b in files.items() if p.endswith("/link")}
    assert links, files.keys()
    for p, b in links.items():
        assert b.startswith(b"sha256:") and len(b) == 71 and not b.endswith(b"\n"), (p, b)
        parts = p.split("/")
        if "_layers" in parts or "revisions" in parts or "index" in parts:
            assert b.decode() == f"{parts[-3]}:{parts[-2]}", p
    for p, b in files.items():
        assert not p.endswith(".tmp"), p
        if p.startswith("blobs/"):
            _, alg, two, hexd, name = p.split("/")
            assert name == "data" and hexd[:2] == two
            assert hashlib.new(alg, b).hexdigest() == hexd, p
    uploads = os.path.join(registry.root, V2, "repositories/a/b/_uploads")
    assert not os.path.exists(uploads) or os.listdir(uploads) == []
    assert c.get_manifest("a/b", "t").body == img.manifest


SCHEMA1 = (b'{\n   "schemaVersion": 1,\n   "name": "old/img",\n   "tag": "v1",\n'
           b'   "architecture": "amd64",\n   "fsLayers": [],\n   "history": [],\n'
           b'   "signatures": []\n}')


def test_a_schema1_manifest_already_in_the_tree_is_served_as_stored(tmp_path):
    root = str(tmp_path)
    d = hashlib.sha256(SCHEMA1).hexdigest()
    base = os.path.join(root, V2)
    files = {
        f"blobs/sha256/{d[:2]}/{d}/data": SCHEMA1,
        f"repositories/old/img/_manifests/revisions/sha256/{d}/link": f"sha256:{d}".encode(),
        "repositories/old/img/_manifests/tags/v1/current/link": f"sha256:{d}".encode(),
        f"repositories/old/img/_manifests/tags/v1/index/sha256/{d}/link": f"sha256:{d}".encode(),
    }
    for p, b in files.items():
        os.makedirs(os.path.dirname(os.path.join(base, p)), exist_ok=True)
        with open(os.path.join(base, p), "wb") as f:
            f.write(b)
    with Ringport(root=root) as r:
        r.wait_ready()
        got = Client(r.host).get_manifest("old/img", "v1")
        assert got.status == 200, got
        assert got.body == SCHEMA1
        assert got.header("Content-Type") == oci.DOCKER_SCHEMA1_SIGNED
        assert got.header("Docker-Content-Digest") == f"sha256:{d}"
        # ... but a new schema 1 push is refused.
        put = Client(r.host).put_manifest("old/img", "v2", SCHEMA1, oci.DOCKER_SCHEMA1_SIGNED)
        assert put.status == 400 and "MANIFEST_INVALID" in put.error_codes(), put
