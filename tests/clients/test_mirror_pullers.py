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


@pytest.fixture(scope="module")
def hub_and_mirror(skopeo, images):
    hub = Ringport().start()
    hub.wait_ready()
    for name in NAMES:
        skopeo.copy(images.oci("multi"), f"docker://{hub.host}/library/{name}:{TAG}",
                    all_images=True)
    mirror, cfg = ringport_with_config(
        '[[mirror]]\nprefix = "docker.io"\n'
        f'url = "{hub.url}"\n'
        'hosts = ["docker.io", "index.docker.io", "registry-1.docker.io"]\n'
        "default = true\n")
    try:
        yield hub, mirror
    finally:
        mirror.cleanup()
        hub.cleanup()
        os.unlink(cfg)


def linked(srv, repo, kind):
    d = os.path.join(srv.root, "docker/registry/v2/repositories", repo, kind, "sha256")
    return {"sha256:" + x for x in os.listdir(d)} if os.path.isdir(d) else set()


def assert_only_amd64_cached(srv, repo, images):
    digest, body = images.platform_manifest("amd64")
    m = json.loads(body)
    want = {m["config"]["digest"]} | {layer["digest"] for layer in m["layers"]}
    assert linked(srv, repo, "_layers") == want
    revisions = linked(srv, repo, "_manifests/revisions")
    assert revisions == {images.multi_digest, digest}, revisions  # the index and amd64 only


def test_containerd_pulls_through_a_hosts_toml_mirror_and_runs(hub_and_mirror, containerd,
                                                               images):
    _, mirror = hub_and_mirror
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
    assert_only_amd64_cached(mirror, "docker.io/library/multi-ctr", images)


def test_podman_pulls_through_a_registries_conf_mirror_and_runs(hub_and_mirror, podman,
                                                                images):
    _, mirror = hub_and_mirror
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
    assert_only_amd64_cached(mirror, "docker.io/library/multi-podman", images)


def test_dockerd_pulls_through_registry_mirrors_and_runs(hub_and_mirror, images):
    _, mirror = hub_and_mirror
    d = rc.Dockerd(daemon_config={"registry-mirrors": [mirror.url]})
    try:
        d.start()
        d.docker("pull", f"multi-docker:{TAG}")  # Docker Hub's library/, by the mirror
        out = d.docker("run", "--rm", "--network", "none", f"multi-docker:{TAG}",
                       "cat", "/etc/ringtest/platform").stdout
        assert out.strip() == "linux/amd64"
    finally:
        d.cleanup()
    assert_only_amd64_cached(mirror, "docker.io/library/multi-docker", images)
