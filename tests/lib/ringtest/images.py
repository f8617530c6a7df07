# SPDX-License-Identifier: Apache-2.0
"""Pushing small images through a Client and checking that they pull whole,
and where their links sit in the tree (the lifecycle tests: GC, retention)."""
import os

from ringtest.harness import wait_until

from ringtest.client import sha256
from ringtest.oci import OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, descriptor, dumps
from ringtest.oci import image_config, random_bytes
from ringtest.rootgen import blob_path

__all__ = ["blob_path", "layer_link", "revision_link", "manifest_for", "put", "pulls",
           "multiarch_with_signature", "run_to_end"]


def layer_link(root, repo, digest):
    return os.path.join(root, "docker/registry/v2/repositories", repo, "_layers/sha256",
                        digest.split(":", 1)[1], "link")


def revision_link(root, repo, digest):
    return os.path.join(root, "docker/registry/v2/repositories", repo,
                        "_manifests/revisions/sha256", digest.split(":", 1)[1], "link")


def manifest_for(c, repo, layers, config=None):
    """Pushes the blobs; returns the manifest bytes (not put)."""
    config = config if config is not None else image_config()
    c.push_blob(repo, config)
    for layer in layers:
        c.push_blob(repo, layer)
    return dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                  "config": descriptor(OCI_CONFIG, config),
                  "layers": [descriptor(OCI_LAYER, x) for x in layers]})


def put(c, repo, ref, body, media_type=OCI_MANIFEST):
    r = c.put_manifest(repo, ref, body, media_type)
    assert r.status == 201, r
    return sha256(body)


def pulls(c, repo, ref):
    """The manifest and every blob it names (children of an index too) come back whole."""
    r = c.get_manifest(repo, ref, accept=f"{OCI_MANIFEST}, {OCI_INDEX}")
    if r.status != 200:
        return False
    m = r.json()
    for child in m.get("manifests", []):
        if not pulls(c, repo, child["digest"]):
            return False
    for d in ([m["config"]] if "config" in m else []) + m.get("layers", []):
        b = c.get_blob(repo, d["digest"])
        if b.status != 200 or sha256(b.body) != d["digest"]:
            return False
    return True


def multiarch_with_signature(c, repo, tag, seed, arches=("amd64", "arm64")):
    """Pushes one image per architecture (by digest), an index of them under
    `tag` and a signature whose subject is the index (untagged, as cosign
    pushes them). Returns (platform digests, index digest, signature digest)."""
    platforms = []
    for i, arch in enumerate(arches):
        body = manifest_for(c, repo, [random_bytes(2048, seed + i)])
        platforms.append((put(c, repo, sha256(body), body), body, arch))
    index = dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        dict(descriptor(OCI_MANIFEST, body), platform={"os": "linux", "architecture": arch})
        for _d, body, arch in platforms]})
    index_d = put(c, repo, tag, index, OCI_INDEX)
    c.push_blob(repo, b"{}")
    c.push_blob(repo, b"signature")
    sig = dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                 "artifactType": "application/vnd.dev.cosign.simplesigning.v1+json",
                 "config": descriptor("application/vnd.oci.empty.v1+json", b"{}"),
                 "layers": [descriptor("application/octet-stream", b"signature")],
                 "subject": descriptor(OCI_INDEX, index)})
    return [d for d, _b, _a in platforms], index_d, put(c, repo, sha256(sig), sig)


def run_to_end(c, endpoint, query="", timeout_s=30.0):
    """POSTs a run to /ringport/v1/<endpoint> and waits for its end; returns
    its report (asserting it ended done)."""
    r = c.request("POST", f"/ringport/v1/{endpoint}" + (f"?{query}" if query else ""))
    assert r.status == 202, r
    run = r.json()["run"]
    out = {}

    def ended():
        g = c.request("GET", f"/ringport/v1/{endpoint}")
        assert g.status == 200, g
        out.clear()
        out.update(g.json())
        return out["run"] == run and out["phase"] in ("done", "failed")

    assert wait_until(ended, timeout_s), out
    assert out["phase"] == "done", out
    return out
