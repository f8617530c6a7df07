# SPDX-License-Identifier: Apache-2.0
"""The test image generator: shape and reproducibility (no registry needed)."""
import gzip
import io
import json
import tarfile

import mkimage
from ringtest import realclients as rc


def test_single_shape(images):
    m = json.loads(images.single_manifest)
    assert m["mediaType"] == mkimage.MT_MANIFEST
    assert len(m["layers"]) >= 3
    cfg = json.loads(images.single_blobs[m["config"]["digest"]])
    assert cfg["config"]["Entrypoint"] == ["/bin/busybox"]
    assert cfg["config"]["Cmd"] == ["cat", "/etc/ringtest/message"]
    diff_ids = []
    names = set()
    for layer in m["layers"]:
        blob = images.single_blobs[layer["digest"]]
        assert layer["size"] == len(blob)
        raw = gzip.decompress(blob)
        diff_ids.append(mkimage.sha256(raw))
        with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
            names |= set(tf.getnames())
    assert cfg["rootfs"]["diff_ids"] == diff_ids
    assert {"bin/busybox", "bin/sh", "etc/ringtest/message"} <= names
    total = sum(len(b) for b in images.single_blobs.values())
    assert total < 5 * 1024 * 1024


def test_multi_shape(images):
    idx = json.loads(images.multi_index)
    assert idx["mediaType"] == mkimage.MT_INDEX
    plats = [(d["platform"]["os"], d["platform"]["architecture"]) for d in idx["manifests"]]
    assert plats == [("linux", "amd64"), ("linux", "arm64")]
    for d in idx["manifests"]:
        child = json.loads(images.multi_blobs[d["digest"]])
        cfg = json.loads(images.multi_blobs[child["config"]["digest"]])
        assert cfg["architecture"] == d["platform"]["architecture"]
        assert len(child["layers"]) == 4


def test_reproducible(images, tmp_path):
    a = mkimage.write_single(str(tmp_path / "a"), "v1", rc.tool("busybox"))
    b = mkimage.write_multi(str(tmp_path / "b"), "v1", rc.tool("busybox"))
    assert a == images.single_digest and b == images.multi_digest
    assert rc.layout_blobs(str(tmp_path / "a")) == images.single_blobs
    assert rc.layout_blobs(str(tmp_path / "b")) == images.multi_blobs
