# SPDX-License-Identifier: Apache-2.0
"""docker (private dockerd: vfs, no bridge, no iptables) against the registry:
pull from 127.0.0.1:PORT over plain http, run --network none, tag + push to
another repository (blob mounts), commit + push a new layer, pull back.
"""
import json

import mkimage
from ringtest.client import Client, sha256

NOTE = "docker-was-here"


def test_loopback_is_insecure_by_default(dockerd):
    cidrs = json.loads(dockerd.docker("info", "--format",
                                      "{{json .RegistryConfig.InsecureRegistryCIDRs}}").stdout)
    assert "127.0.0.0/8" in cidrs


def test_pull_and_run(seeded, dockerd, images):
    ref = f"{seeded.host}/clients/single:v1"
    out = dockerd.docker("pull", ref).stdout
    assert f"Digest: {images.single_digest}" in out, out
    out = dockerd.docker("run", "--rm", "--network", "none", ref).stdout
    assert out.strip() == mkimage.MESSAGE
    out = dockerd.docker("run", "--rm", "--network", "none", ref, "echo", "args-ok").stdout
    assert out.strip() == "args-ok"
    ids = dockerd.docker("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()
    assert ids == json.loads(images.single_manifest)["config"]["digest"]


def test_pull_by_digest_and_multiarch(seeded, dockerd, images):
    h = seeded.host
    ref = f"{h}/clients/single@{images.single_digest}"
    dockerd.docker("pull", ref)
    out = dockerd.docker("run", "--rm", "--network", "none", ref).stdout
    assert out.strip() == mkimage.MESSAGE

    multi = f"{h}/clients/multi:v1"
    out = dockerd.docker("pull", multi).stdout
    assert f"Digest: {images.multi_digest}" in out, out
    out = dockerd.docker("run", "--rm", "--network", "none", multi,
                         "cat", "/etc/ringtest/platform").stdout
    assert out.strip() == "linux/amd64"


def test_tag_push_commit_push_pull_back(seeded, dockerd, skopeo):
    h = seeded.host
    src = f"{h}/clients/single:v1"
    tagged = f"{h}/clients/docker-pushed:d1"
    committed = f"{h}/clients/docker-pushed:d2"
    dockerd.docker("pull", "-q", src)

    # 1. same layers under another repository: docker mounts them from clients/single
    dockerd.docker("tag", src, tagged)
    out = dockerd.docker("push", tagged).stdout
    assert "d1: digest: sha256:" in out, out

    # 2. a new layer on top: docker uploads it
    name = "rt-docker-commit"
    dockerd.docker("rm", "-f", name, check=False)
    dockerd.docker("run", "--network", "none", "--name", name, src,
                   "sh", "-c", f"echo {NOTE} > /root/note")
    dockerd.docker("commit", name, committed)
    dockerd.docker("rm", "-f", name)
    out = dockerd.docker("push", committed).stdout
    assert "d2: digest: sha256:" in out, out
    pushed_digest = out.split("d2: digest: ")[1].split()[0]

    c = Client(h)
    tags = c.request("GET", "/v2/clients/docker-pushed/tags/list").json()["tags"]
    assert sorted(tags) == ["d1", "d2"]
    raw = skopeo.raw(f"docker://{committed}")
    m = json.loads(raw)
    assert m["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert len(m["layers"]) == 4
    assert sha256(raw) == pushed_digest

    # 3. forget everything locally, pull back, run
    dockerd.docker("rmi", "-f", tagged, committed, src)
    out = dockerd.docker("pull", committed).stdout
    assert f"Digest: {pushed_digest}" in out, out
    out = dockerd.docker("run", "--rm", "--network", "none", committed,
                         "cat", "/root/note").stdout
    assert out.strip() == NOTE
    out = dockerd.docker("run", "--rm", "--network", "none", tagged).stdout
    assert out.strip() == mkimage.MESSAGE  # docker pulls the missing d1 implicitly
