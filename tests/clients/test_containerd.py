# SPDX-License-Identifier: Apache-2.0
"""containerd's ctr against the registry (private containerd, native snapshotter):
pull --plain-http, run, push --plain-http to another repository.
"""
import json

import mkimage
from ringtest.client import Client

SNAP = "native"


def _pull(containerd, ref, *extra):
    containerd.ctr("images", "pull", "--plain-http", "--snapshotter", SNAP, *extra, ref)


def test_pull_and_run(seeded, containerd, images):
    ref = f"{seeded.host}/clients/single:v1"
    _pull(containerd, ref)
    listing = containerd.ctr("images", "ls").stdout
    assert images.single_digest in listing, listing
    out = containerd.ctr("run", "--rm", "--snapshotter", SNAP, ref, "rt-ctr-run1").stdout
    assert out.strip() == mkimage.MESSAGE
    out = containerd.ctr("run", "--rm", "--snapshotter", SNAP, ref, "rt-ctr-run2",
                         "echo", "args-ok").stdout
    assert out.strip() == "args-ok"


def test_push_to_other_repo(seeded, containerd, skopeo, images):
    h = seeded.host
    src = f"{h}/clients/single:v1"
    dst = f"{h}/clients/ctr-pushed:c1"
    _pull(containerd, src)
    containerd.ctr("images", "tag", "--force", src, dst)
    containerd.ctr("images", "push", "--plain-http", dst)
    # ctr pushes the manifest it pulled, unchanged
    assert skopeo.raw(f"docker://{dst}") == images.single_manifest
    tags = Client(h).request("GET", "/v2/clients/ctr-pushed/tags/list").json()["tags"]
    assert tags == ["c1"]

    # forget both images (synchronous GC drops their content), pull back, run
    containerd.ctr("images", "rm", "--sync", dst, src)
    content = containerd.ctr("content", "ls", "-q").stdout
    for d in json.loads(images.single_manifest)["layers"]:
        assert d["digest"] not in content
    _pull(containerd, dst)
    assert images.single_digest in containerd.ctr("images", "ls").stdout
    out = containerd.ctr("run", "--rm", "--snapshotter", SNAP, dst, "rt-ctr-run3").stdout
    assert out.strip() == mkimage.MESSAGE


def test_multiarch_pull_all_push_index(seeded, containerd, skopeo, images):
    h = seeded.host
    src = f"{h}/clients/multi:v1"
    dst = f"{h}/clients/ctr-multi:m1"
    _pull(containerd, src, "--all-platforms")
    out = containerd.ctr("run", "--rm", "--snapshotter", SNAP, src, "rt-ctr-run4",
                         "cat", "/etc/ringtest/platform").stdout
    assert out.strip() == "linux/amd64"
    containerd.ctr("images", "tag", "--force", src, dst)
    containerd.ctr("images", "push", "--plain-http", dst)
    assert skopeo.raw(f"docker://{dst}") == images.multi_index
    for m in json.loads(images.multi_index)["manifests"]:
        assert skopeo.raw(f"docker://{h}/clients/ctr-multi@{m['digest']}") == \
            images.multi_blobs[m["digest"]]
