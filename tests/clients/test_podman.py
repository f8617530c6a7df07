# SPDX-License-Identifier: Apache-2.0
"""podman (root, vfs, runc, private --root/--runroot) against the registry:
pull, run with --network none, push to a new repository, pull back.
"""
import json

import mkimage
from ringtest.client import Client

NOTE = "podman-was-here"


def test_pull_and_run(seeded, podman, images):
    h = seeded.host
    ref = f"{h}/clients/single:v1"
    podman.podman("pull", "-q", "--tls-verify=false", ref)
    out = podman.podman("run", "--rm", "--network", "none", ref).stdout
    assert out.strip() == mkimage.MESSAGE
    out = podman.podman("run", "--rm", "--network", "none", ref, "echo", "args-ok").stdout
    assert out.strip() == "args-ok"
    # the pulled image is exactly the pushed one
    info = json.loads(podman.podman("image", "inspect", ref).stdout)[0]
    assert info["Digest"] == images.single_digest


def test_pull_by_digest(seeded, podman, images):
    ref = f"{seeded.host}/clients/single@{images.single_digest}"
    podman.podman("pull", "-q", "--tls-verify=false", ref)
    out = podman.podman("run", "--rm", "--network", "none", ref).stdout
    assert out.strip() == mkimage.MESSAGE


def test_pull_multiarch_runs_amd64(seeded, podman, images):
    ref = f"{seeded.host}/clients/multi:v1"
    podman.podman("pull", "-q", "--tls-verify=false", "--arch", "amd64", ref)
    out = podman.podman("run", "--rm", "--network", "none", ref,
                        "cat", "/etc/ringtest/platform").stdout
    assert out.strip() == "linux/amd64"


def test_push_new_layer_and_pull_back(seeded, podman):
    h = seeded.host
    src = f"{h}/clients/single:v1"
    pushed = f"{h}/clients/podman-pushed:p1"
    podman.podman("pull", "-q", "--tls-verify=false", src)
    name = "rt-podman-commit"
    podman.podman("rm", "-f", "--ignore", name)
    podman.podman("run", "--network", "none", "--name", name, src,
                  "sh", "-c", f"echo {NOTE} > /root/note")
    podman.podman("commit", "-q", name, pushed)
    podman.podman("rm", "-f", name)
    # the new layer is uploaded, the three base layers are mounted/reused
    podman.podman("push", "--tls-verify=false", pushed)
    # Docker schema 2 as well, to a second tag
    podman.podman("push", "--tls-verify=false", "--format", "v2s2", pushed,
                  f"{h}/clients/podman-pushed:p1-docker")

    podman.podman("rmi", "-f", pushed)
    podman.podman("pull", "-q", "--tls-verify=false", pushed)
    out = podman.podman("run", "--rm", "--network", "none", pushed, "cat", "/root/note").stdout
    assert out.strip() == NOTE

    c = Client(h)
    tags = c.request("GET", "/v2/clients/podman-pushed/tags/list").json()["tags"]
    assert sorted(tags) == ["p1", "p1-docker"]
    docker_ref = f"{h}/clients/podman-pushed:p1-docker"
    r = c.get_manifest("clients/podman-pushed", "p1-docker",
                       accept="application/vnd.docker.distribution.manifest.v2+json")
    assert r.status == 200, r
    assert json.loads(r.body)["mediaType"] == \
        "application/vnd.docker.distribution.manifest.v2+json"
    assert len(json.loads(r.body)["layers"]) == 4
    podman.podman("pull", "-q", "--tls-verify=false", docker_ref)
    out = podman.podman("run", "--rm", "--network", "none", docker_ref,
                        "cat", "/root/note").stdout
    assert out.strip() == NOTE
