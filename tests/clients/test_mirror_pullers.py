# SPDX-License-Identifier: Apache-2.0
"""Real pullers through the mirror (issue 10), each in its own convention,
each pulling a multi-arch image and running it:
- containerd's ctr with a hosts.toml mirror (requests carry ?ns=docker.io);
- podman with a registries.conf mirror under the path prefix;
- dockerd with registry-mirrors (Docker Hub only: neither prefix nor ns).

The "Docker Hub" upstream is a plain ringport on loopback holding the images
as library/<name>; the mirror is configured for docker.io with it as URL, so
nothing leaves the machine (a client falling back to the real Docker Hub
fails: there is no route to it). Each client pulls its own repository, so
each pull is a real upstream fetch, and only the pulled platform's blobs
reach the cache.
"""
import json
import os
import shutil
import tempfile

import pytest

import mkimage
from ringtest import realclients as rc
from ringtest.harness import Ringport, ringport_with_config

TAG = "v1"
NAMES = ("multi-ctr", "multi-podman", "multi-docker")


class Salted:
    """A multi-arch image per client, salted so that its configs and
    per-platform layers are in no client's store yet (the base layers may
    be: the other client tests pulled the same busybox)."""

    def __init__(self, base, name):
        self.path = os.path.join(base, name)
        self.index_digest = mkimage.write_multi(self.path, TAG, rc.tool("busybox"), salt=name)
        self.blobs = rc.layout_blobs(self.path)

    def platform(self, arch):
        for m in json.loads(self.blobs[self.index_digest])["manifests"]:
            if m["platform"]["architecture"] == arch:
                return m["digest"], json.loads(self.blobs[m["digest"]])
        raise KeyError(arch)


@pytest.fixture(scope="module")
def hub_and_mirror(skopeo, tmp_path_factory):
    base = str(tmp_path_factory.mktemp("salted"))
    salted = {name: Salted(base, name) for name in NAMES}
    hub = Ringport().start()
    hub.wait_ready()
    for name in NAMES:
        skopeo.copy(f"oci:{salted[name].path}:{TAG}", f"docker://{hub.host}/library/{name}:{TAG}",
                    all_images=True)
    mirror, cfg = ringport_with_config(
        '[[mirror]]\nprefix = "docker.io"\n'
        f'url = "{hub.url}"\n'
        'hosts = ["docker.io", "index.docker.io", "registry-1.docker.io"]\n'
        "default = true\n")
    try:
        yield salted, mirror
    finally:
        mirror.cleanup()
        hub.cleanup()
        os.unlink(cfg)


def linked(srv, repo, kind):
    d = os.path.join(srv.root, "docker/registry/v2/repositories", repo, kind, "sha256")
    return {"sha256:" + x for x in os.listdir(d)} if os.path.isdir(d) else set()


def assert_only_amd64_fetched(srv, name, salted):
    """The index and the amd64 manifest were fetched into the cache, with the
    amd64 config and own layer; nothing of arm64."""
    repo = f"docker.io/library/{name}"
    s = salted[name]
    amd, m = s.platform("amd64")
    arm, _ = s.platform("arm64")
    amd_blobs = {m["config"]["digest"]} | {x["digest"] for x in m["layers"]}
    own = {m["config"]["digest"], m["layers"][-1]["digest"]}  # salted: no store had them
    layers = linked(srv, repo, "_layers")
    assert own <= layers <= amd_blobs, (layers, amd_blobs)
    assert linked(srv, repo, "_manifests/revisions") == {s.index_digest, amd}
    assert arm not in linked(srv, repo, "_manifests/revisions")


def test_containerd_pulls_through_a_hosts_toml_mirror_and_runs(hub_and_mirror, containerd):
    salted, mirror = hub_and_mirror
    hosts = tempfile.mkdtemp(prefix="rt-hosts-", dir="/tmp")
    try:
        os.makedirs(os.path.join(hosts, "docker.io"))
        with open(os.path.join(hosts, "docker.io", "hosts.toml"), "w") as f:
            f.write('server = "https://registry-1.docker.io"\n'
                    f'[host."http://{mirror.host}"]\n'
                    '  capabilities = ["pull", "resolve"]\n')
        ref = f"docker.io/library/multi-ctr:{TAG}"
        containerd.ctr("images", "pull", "--hosts-dir", hosts, "--snapshotter",
                       containerd.SNAPSHOTTER, ref)
        out = containerd.ctr("run", "--rm", "--snapshotter", containerd.SNAPSHOTTER, ref,
                             "rt-mirror-ctr", "cat", "/etc/ringtest/platform").stdout
        assert out.strip() == "linux/amd64"
        out = containerd.ctr("run", "--rm", "--snapshotter", containerd.SNAPSHOTTER, ref,
                             "rt-mirror-ctr2").stdout
        assert out.strip() == mkimage.MESSAGE
    finally:
        shutil.rmtree(hosts, ignore_errors=True)
    assert_only_amd64_fetched(mirror, "multi-ctr", salted)


def test_podman_pulls_through_a_registries_conf_mirror_and_runs(hub_and_mirror, podman):
    salted, mirror = hub_and_mirror
    conf = os.path.join(podman.dir, "registries.conf")
    with open(conf, "w") as f:
        f.write('[[registry]]\nprefix = "docker.io"\nlocation = "docker.io"\n'
                f'[[registry.mirror]]\nlocation = "{mirror.host}/docker.io"\ninsecure = true\n')
    podman.env["CONTAINERS_REGISTRIES_CONF"] = conf
    try:
        ref = f"docker.io/library/multi-podman:{TAG}"
        podman.podman("pull", ref)
        out = podman.podman("run", "--rm", ref, "cat", "/etc/ringtest/platform").stdout
        assert out.strip() == "linux/amd64"
    finally:
        podman.env.pop("CONTAINERS_REGISTRIES_CONF", None)
    assert_only_amd64_fetched(mirror, "multi-podman", salted)


def test_dockerd_pulls_through_registry_mirrors_and_runs(hub_and_mirror):
    salted, mirror = hub_and_mirror
    d = rc.Dockerd(daemon_config={"registry-mirrors": [mirror.url]})
    try:
        d.start()
        d.docker("pull", f"multi-docker:{TAG}")  # Docker Hub's library/, by the mirror
        out = d.docker("run", "--rm", "--network", "none", f"multi-docker:{TAG}",
                       "cat", "/etc/ringtest/platform").stdout
        assert out.strip() == "linux/amd64"
    finally:
        d.cleanup()
    assert_only_amd64_fetched(mirror, "multi-docker", salted)
