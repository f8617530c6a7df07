# SPDX-License-Identifier: Apache-2.0
"""skopeo against the registry: copy in and out byte-identical, multi-arch with
--all, inspect, list-tags, delete.

Each test uses its own repository on the module's shared registry.
"""
import json
import os

from ringtest import realclients as rc
from ringtest.client import Client, sha256

MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"
ACCEPT_ALL = ", ".join([MT_OCI_MANIFEST, MT_OCI_INDEX, MT_DOCKER_V2,
                        "application/vnd.docker.distribution.manifest.list.v2+json"])


def referenced_blobs(manifest_bytes):
    m = json.loads(manifest_bytes)
    return [m["config"]["digest"]] + [layer["digest"] for layer in m["layers"]]


def assert_served(host, repo, ref, body, digest, media_type):
    """The registry serves `body` byte-for-byte for repo:ref and repo@digest."""
    c = Client(host)
    for r in (ref, digest):
        resp = c.get_manifest(repo, r, accept=ACCEPT_ALL)
        assert resp.status == 200, resp
        assert resp.body == body
        assert resp.header("Docker-Content-Digest") == digest
        assert resp.header("Content-Type") == media_type
        head = c.request("HEAD", f"/v2/{repo}/manifests/{r}", headers={"Accept": ACCEPT_ALL})
        assert head.status == 200, head
        assert head.header("Docker-Content-Digest") == digest
        assert int(head.header("Content-Length")) == len(body)


def assert_blobs_served(host, repo, blobs, digests):
    c = Client(host)
    for d in digests:
        r = c.get_blob(repo, d)
        assert r.status == 200, (d, r.status)
        assert r.body == blobs[d], d


def test_single_roundtrip_oci(shared_registry, skopeo, images, tmp_path):
    h, repo = shared_registry.host, "skopeo/single"
    skopeo.copy(images.oci("single"), f"docker://{h}/{repo}:v1")

    assert_served(h, repo, "v1", images.single_manifest, images.single_digest,
                  MT_OCI_MANIFEST)
    digests = referenced_blobs(images.single_manifest)
    assert len(digests) == 4  # config + 3 layers
    assert_blobs_served(h, repo, images.single_blobs, digests)

    out = tmp_path / "out"
    skopeo.copy(f"docker://{h}/{repo}:v1", f"oci:{out}:back")
    assert rc.layout_blobs(str(out)) == images.single_blobs
    desc, body = rc.layout_top(str(out), "back")
    assert desc["digest"] == images.single_digest
    assert body == images.single_manifest


def test_single_roundtrip_dir(shared_registry, skopeo, images, tmp_path):
    h, repo = shared_registry.host, "skopeo/single-dir"
    skopeo.copy(images.oci("single"), f"docker://{h}/{repo}:v1")
    out = tmp_path / "dir"
    skopeo.copy(f"docker://{h}/{repo}:v1", f"dir:{out}")
    manifest, blobs = rc.dir_transport_blobs(str(out))
    assert manifest == images.single_manifest
    assert set(blobs) == set(referenced_blobs(images.single_manifest))
    for d, data in blobs.items():
        assert data == images.single_blobs[d]
        assert rc.sha256_file(os.path.join(out, d.split(":", 1)[1])) == d


def test_docker_v2s2_conversion_roundtrip(shared_registry, skopeo, images, tmp_path):
    """skopeo converts to a Docker schema 2 manifest; the registry keeps its bytes."""
    h, repo = shared_registry.host, "skopeo/v2s2"
    skopeo.copy(images.oci("single"), f"docker://{h}/{repo}:v1", "--format", "v2s2")
    raw = skopeo.raw(f"docker://{h}/{repo}:v1")
    m = json.loads(raw)
    assert m["mediaType"] == MT_DOCKER_V2
    assert [x["digest"] for x in m["layers"]] == referenced_blobs(images.single_manifest)[1:]
    assert_served(h, repo, "v1", raw, sha256(raw), MT_DOCKER_V2)

    out = tmp_path / "dir"
    skopeo.copy(f"docker://{h}/{repo}:v1", f"dir:{out}")
    manifest, blobs = rc.dir_transport_blobs(str(out))
    assert manifest == raw
    for d in referenced_blobs(images.single_manifest)[1:]:  # layers unchanged
        assert blobs[d] == images.single_blobs[d]


def test_multiarch_all_roundtrip(shared_registry, skopeo, images, tmp_path):
    h, repo = shared_registry.host, "skopeo/multi"
    skopeo.copy(images.oci("multi"), f"docker://{h}/{repo}:v1", all_images=True)

    assert skopeo.raw(f"docker://{h}/{repo}:v1") == images.multi_index
    assert_served(h, repo, "v1", images.multi_index, images.multi_digest, MT_OCI_INDEX)
    index = json.loads(images.multi_index)
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    for m in index["manifests"]:
        child = images.multi_blobs[m["digest"]]
        assert_served(h, repo, m["digest"], child, m["digest"], MT_OCI_MANIFEST)
        assert_blobs_served(h, repo, images.multi_blobs, referenced_blobs(child))

    out = tmp_path / "out"
    skopeo.copy(f"docker://{h}/{repo}:v1", f"oci:{out}:back", all_images=True)
    assert rc.layout_blobs(str(out)) == images.multi_blobs
    assert rc.layout_top(str(out), "back")[0]["digest"] == images.multi_digest


def test_multiarch_platform_selection(shared_registry, skopeo, images, tmp_path):
    h, repo = shared_registry.host, "skopeo/multi-select"
    skopeo.copy(images.oci("multi"), f"docker://{h}/{repo}:v1", all_images=True)
    for arch in ("amd64", "arm64"):
        digest, body = images.platform_manifest(arch)
        out = tmp_path / arch
        skopeo.copy(f"docker://{h}/{repo}:v1", f"dir:{out}",
                    "--override-os", "linux", "--override-arch", arch)
        manifest, blobs = rc.dir_transport_blobs(str(out))
        assert manifest == body, arch
        for d in referenced_blobs(body):
            assert blobs[d] == images.multi_blobs[d]
        info = skopeo.inspect_json(f"docker://{h}/{repo}:v1", "--override-os", "linux",
                                   "--override-arch", arch)
        assert info["Architecture"] == arch


def test_inspect(shared_registry, skopeo, images):
    h, repo = shared_registry.host, "skopeo/inspect"
    skopeo.copy(images.oci("single"), f"docker://{h}/{repo}:v1")
    ref = f"docker://{h}/{repo}:v1"

    info = skopeo.inspect_json(ref)
    assert info["Digest"] == images.single_digest
    assert info["Architecture"] == "amd64"
    assert info["Os"] == "linux"
    assert info["Layers"] == referenced_blobs(images.single_manifest)[1:]
    assert info["Labels"] == {"org.ringport.test": "single"}
    assert info["RepoTags"] == ["v1"]  # skopeo inspect also lists the repository's tags

    assert skopeo.raw(ref) == images.single_manifest
    cfg_digest = json.loads(images.single_manifest)["config"]["digest"]
    assert skopeo.raw(ref, "--config") == images.single_blobs[cfg_digest]
    cfg = skopeo.inspect_json(ref, "--config")
    assert cfg["config"]["Entrypoint"] == ["/bin/busybox"]

    by_digest = skopeo.inspect_json(f"docker://{h}/{repo}@{images.single_digest}")
    assert by_digest["Digest"] == images.single_digest


def test_list_tags_and_catalog(shared_registry, skopeo, images):
    h, repo = shared_registry.host, "skopeo/tags"
    tags = ["v1", "latest", "1.0.0", "a-b_c.d"]
    skopeo.copy(images.oci("single"), f"docker://{h}/{repo}:{tags[0]}")
    for t in tags[1:]:
        # registry -> registry inside one registry: skopeo reuses (mounts) the blobs
        skopeo.copy(f"docker://{h}/{repo}:{tags[0]}", f"docker://{h}/{repo}:{t}")
    skopeo.copy(f"docker://{h}/{repo}:v1", f"docker://{h}/skopeo/tags-other:x")

    assert sorted(skopeo.list_tags(f"docker://{h}/{repo}")) == sorted(tags)
    assert skopeo.list_tags(f"docker://{h}/skopeo/tags-other") == ["x"]
    assert skopeo.raw(f"docker://{h}/skopeo/tags-other:x") == images.single_manifest

    r = Client(h).request("GET", "/v2/_catalog")
    assert r.status == 200, r
    repos = r.json()["repositories"]
    assert {repo, "skopeo/tags-other"} <= set(repos)
    assert repos == sorted(repos)


def test_delete(shared_registry, skopeo, images):
    h, repo = shared_registry.host, "skopeo/delete"
    ref = f"docker://{h}/{repo}"
    skopeo.copy(images.oci("single"), f"{ref}:gone")
    skopeo.copy(f"{ref}:gone", f"{ref}:gone-too")  # same manifest, second tag
    skopeo.copy(images.oci("multi"), f"{ref}:stay", all_images=True)
    assert sorted(skopeo.list_tags(ref)) == ["gone", "gone-too", "stay"]

    skopeo.delete(f"{ref}:gone")  # resolves the tag, DELETEs the manifest by digest

    c = Client(h)
    for r in ("gone", "gone-too", images.single_digest):
        resp = c.get_manifest(repo, r, accept=ACCEPT_ALL)
        assert resp.status == 404, (r, resp)
        assert "MANIFEST_UNKNOWN" in resp.error_codes(), resp
    failed = skopeo("inspect", "--tls-verify=false", "--raw", f"{ref}:gone", check=False)
    assert failed.returncode != 0
    assert "manifest unknown" in failed.stderr.lower(), failed.stderr

    assert skopeo.list_tags(ref) == ["stay"]
    assert skopeo.raw(f"{ref}:stay") == images.multi_index
    # deleting the same digest again: the manifest is unknown now
    again = skopeo("delete", "--tls-verify=false", f"{ref}@{images.single_digest}",
                   check=False)
    assert again.returncode != 0
