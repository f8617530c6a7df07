# SPDX-License-Identifier: Apache-2.0
"""Fixtures for the real-client tests (skopeo, podman, containerd, docker).

Session-scoped: the test image layouts (built once from busybox-static), and the
client daemons: a private containerd and a private dockerd, each started once per
session with a bounded startup wait and torn down (processes, mounts, temp
directories, cgroups) at the end, also when tests fail. podman has no daemon; its
fixture is a private --root/--runroot kept for the session.

The registry under test is tests/conftest.py's `shared_registry` (per module;
ringport, or Distribution 2.8.2 with RINGTEST_TARGET=distribution).

A missing tool is a failure (pytest.fail), never a skip.
"""
import atexit
import json
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import mkimage  # noqa: E402
from ringtest import realclients as rc  # noqa: E402

TAG = "v1"

_live = []  # daemons still up, in case the interpreter exits without finalizers


@atexit.register
def _cleanup_left_over():
    while _live:
        try:
            _live.pop().cleanup()
        except Exception:
            pass


def _need(fn):
    try:
        return fn()
    except rc.ToolMissing as e:
        pytest.fail(str(e), pytrace=False)


class Images:
    """The two OCI layouts written by mkimage.py, and what they contain."""

    def __init__(self, base):
        self.single = os.path.join(base, "single")
        self.multi = os.path.join(base, "multi")
        self.single_digest = mkimage.write_single(self.single, TAG, rc.tool("busybox"))
        self.multi_digest = mkimage.write_multi(self.multi, TAG, rc.tool("busybox"))
        self.single_blobs = rc.layout_blobs(self.single)
        self.multi_blobs = rc.layout_blobs(self.multi)
        self.single_manifest = self.single_blobs[self.single_digest]
        self.multi_index = self.multi_blobs[self.multi_digest]
        self.message = mkimage.MESSAGE

    def oci(self, which):
        return f"oci:{getattr(self, which)}:{TAG}"

    def platform_manifest(self, arch):
        """(digest, bytes) of the multi-arch index's manifest for linux/ARCH."""
        for m in json.loads(self.multi_index)["manifests"]:
            if m["platform"]["architecture"] == arch:
                return m["digest"], self.multi_blobs[m["digest"]]
        raise KeyError(arch)


@pytest.fixture(scope="session")
def images(tmp_path_factory):
    return _need(lambda: Images(str(tmp_path_factory.mktemp("layouts"))))


@pytest.fixture(scope="session")
def skopeo():
    return _need(rc.Skopeo)


def _daemon(cls):
    d = cls()
    _live.append(d)
    try:
        _need(d.start)
    except BaseException:
        _live.remove(d)
        d.cleanup()
        raise
    return d


def _finish(d):
    if d in _live:
        _live.remove(d)
    d.cleanup()


@pytest.fixture(scope="session")
def containerd():
    d = _daemon(rc.Containerd)
    yield d
    _finish(d)


@pytest.fixture(scope="session")
def dockerd():
    d = _daemon(rc.Dockerd)
    yield d
    _finish(d)


@pytest.fixture(scope="session")
def podman():
    d = _daemon(rc.Podman)
    yield d
    _finish(d)


@pytest.fixture(scope="module")
def seeded(shared_registry, skopeo, images):
    """shared_registry holding clients/single:v1 and clients/multi:v1 (pushed by skopeo)."""
    h = shared_registry.host
    skopeo.copy(images.oci("single"), f"docker://{h}/clients/single:{TAG}")
    skopeo.copy(images.oci("multi"), f"docker://{h}/clients/multi:{TAG}", all_images=True)
    return shared_registry
