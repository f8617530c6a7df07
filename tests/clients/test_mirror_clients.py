# SPDX-License-Identifier: Apache-2.0
"""skopeo through the pull-through mirror (issue 10), all on loopback.

The upstream is a plain ringport holding images pushed by skopeo; a second
ringport mirrors it under the prefix `up.test`, and a third mirrors the
second (a chain of two mirrors). Images copied out through the mirrors must
be byte-identical to what went in, and one platform of a multi-arch image
must bring only that platform's blobs into the cache.
"""
import json
import os

import pytest

from ringtest import realclients as rc
from ringtest.harness import Distribution, Ringport, ringport_with_config

TAG = "v1"


def mirror_of(upstream_url, prefix):
    return ringport_with_config(f'[[mirror]]\nprefix = "{prefix}"\nurl = "{upstream_url}"\n')


@pytest.fixture(scope="module")
def chain(skopeo, images):
    up = Ringport().start()
    up.wait_ready()
    skopeo.copy(images.oci("single"), f"docker://{up.host}/team/single:{TAG}")
    skopeo.copy(images.oci("multi"), f"docker://{up.host}/team/multi:{TAG}", all_images=True)
    first, cfg1 = mirror_of(up.url, "up.test")
    second, cfg2 = mirror_of(first.url, "m1")
    try:
        yield up, first, second
    finally:
        for srv in (second, first, up):
            srv.cleanup()
        os.unlink(cfg1)
        os.unlink(cfg2)


def referenced(manifest_bytes):
    m = json.loads(manifest_bytes)
    return {m["config"]["digest"]} | {layer["digest"] for layer in m["layers"]}


def cached_blobs(srv, repo):
    d = os.path.join(srv.root, "docker/registry/v2/repositories", repo, "_layers/sha256")
    return {"sha256:" + x for x in os.listdir(d)} if os.path.isdir(d) else set()


def test_skopeo_copies_an_image_out_through_the_mirror_byte_identical(chain, skopeo, images,
                                                                      tmp_path):
    _, first, _ = chain
    out = tmp_path / "out"
    skopeo.copy(f"docker://{first.host}/up.test/team/single:{TAG}", f"oci:{out}:back")
    assert rc.layout_blobs(str(out)) == images.single_blobs
    desc, body = rc.layout_top(str(out), "back")
    assert desc["digest"] == images.single_digest
    assert body == images.single_manifest
    # The cache is an ordinary repository now: its blobs are all there.
    assert cached_blobs(first, "up.test/team/single") == referenced(images.single_manifest)


def test_a_chain_of_two_mirrors_serves_the_same_bytes(chain, skopeo, images, tmp_path):
    _, _, second = chain
    out = tmp_path / "chain"
    skopeo.copy(f"docker://{second.host}/m1/up.test/team/single:{TAG}", f"oci:{out}:back")
    assert rc.layout_blobs(str(out)) == images.single_blobs
    desc, _ = rc.layout_top(str(out), "back")
    assert desc["digest"] == images.single_digest


def test_one_platform_of_a_multi_arch_image_brings_only_its_blobs(chain, skopeo, images,
                                                                  tmp_path):
    _, first, _ = chain
    digest, body = images.platform_manifest("arm64")
    out = tmp_path / "arm"
    skopeo.copy(f"docker://{first.host}/up.test/team/multi:{TAG}", f"oci:{out}:back",
                "--override-arch", "arm64", "--override-os", "linux")
    desc, got = rc.layout_top(str(out), "back")
    assert desc["digest"] == digest and got == body
    assert cached_blobs(first, "up.test/team/multi") == referenced(body)


def test_skopeo_inspects_an_image_through_the_mirror(chain, skopeo, images):
    _, first, _ = chain
    info = skopeo.inspect_json(f"docker://{first.host}/up.test/team/single:{TAG}")
    assert info["Digest"] == images.single_digest
    assert info["Layers"] == [layer["digest"] for layer in
                              json.loads(images.single_manifest)["layers"]]


def test_distribution_serves_what_the_mirror_cached(chain, skopeo, images, tmp_path):
    """The cache is ordinary repositories in Distribution's tree."""
    _, first, _ = chain
    skopeo.copy(f"docker://{first.host}/up.test/team/single:{TAG}", f"oci:{tmp_path / 'warm'}:w")
    dist = Distribution(root=first.root).start()
    try:
        out = tmp_path / "from-distribution"
        skopeo.copy(f"docker://{dist.host}/up.test/team/single:{TAG}", f"oci:{out}:back")
        assert rc.layout_blobs(str(out)) == images.single_blobs
    finally:
        dist.cleanup()
