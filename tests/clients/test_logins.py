# SPDX-License-Identifier: Apache-2.0
"""Logins with real clients against htpasswd Basic auth: skopeo over TLS
with the registry:2 compose environment (REGISTRY_AUTH=htpasswd,
REGISTRY_AUTH_HTPASSWD_PATH/_REALM, REGISTRY_HTTP_TLS_CERTIFICATE/_KEY) as
is; podman and docker login, push and pull; containerd with the
credentials in hosts.toml. A wrong password is refused every time, and
nothing is pushed without logging in."""
import base64
import os
import shutil
import tempfile

import pytest

from ringtest import realclients as rc
from ringtest.authtest import htpasswd_file
from ringtest.client import Client
from ringtest.harness import Ringport
from ringtest.testca import make_ca

USER, PASSWORD = "ci-bot", "s3cret pass"


@pytest.fixture(scope="module")
def secured():
    """ringport as a registry:2 compose file would start it: TLS and htpasswd."""
    d = tempfile.mkdtemp(prefix="ringport-logins-")
    ca, cert, key = make_ca(d)
    path = htpasswd_file(d, {USER: PASSWORD})
    certs = os.path.join(d, "certs.d")
    os.mkdir(certs)
    shutil.copy(ca, os.path.join(certs, "ca.crt"))
    r = Ringport(env={"REGISTRY_AUTH": "htpasswd", "REGISTRY_AUTH_HTPASSWD_PATH": path,
                      "REGISTRY_AUTH_HTPASSWD_REALM": "Registry Realm",
                      "REGISTRY_HTTP_TLS_CERTIFICATE": cert, "REGISTRY_HTTP_TLS_KEY": key},
                 tls_ca=ca)
    r.start()
    r.wait_ready()
    r.certs = certs
    r.dir = d
    yield r
    r.cleanup()
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def plain():
    """htpasswd over plain HTTP on loopback (what docker and podman allow
    without a CA for 127.0.0.1)."""
    d = tempfile.mkdtemp(prefix="ringport-logins-plain-")
    path = htpasswd_file(d, {USER: PASSWORD})
    r = Ringport(env={"REGISTRY_AUTH": "htpasswd", "REGISTRY_AUTH_HTPASSWD_PATH": path})
    r.start()
    r.wait_ready()
    yield r
    r.cleanup()
    shutil.rmtree(d, ignore_errors=True)


def test_skopeo_login_then_copy_over_tls(secured, skopeo, images, tmp_path):
    authfile = str(tmp_path / "auth.json")
    host = f"localhost:{secured.port}"
    ref = f"docker://{host}/logins/skopeo:v1"
    bad = rc.run([skopeo.bin, "login", "--authfile", authfile, "--cert-dir", secured.certs,
                  "-u", USER, "--password-stdin", host], input="wrong\n", check=False)
    assert bad.returncode != 0
    # Without a login: refused.
    denied = skopeo("copy", "--quiet", f"--dest-cert-dir={secured.certs}", "--authfile", authfile,
                    images.oci("single"), ref, check=False)
    assert denied.returncode != 0
    rc.run([skopeo.bin, "login", "--authfile", authfile, "--cert-dir", secured.certs,
            "-u", USER, "--password-stdin", host], input=PASSWORD + "\n")
    skopeo("copy", "--quiet", f"--dest-cert-dir={secured.certs}", "--authfile", authfile,
           images.oci("single"), ref)
    out = tmp_path / "out"
    skopeo("copy", "--quiet", f"--src-cert-dir={secured.certs}", "--authfile", authfile, ref,
           f"oci:{out}:back")
    assert rc.layout_blobs(str(out)) == images.single_blobs
    got = Client(secured.host, secured.ssl_context(), auth=(USER, PASSWORD)).get_manifest(
        "logins/skopeo", "v1", accept="application/vnd.oci.image.manifest.v1+json")
    assert got.body == images.single_manifest


def test_podman_login_push_and_pull(plain, podman, skopeo, images):
    h = plain.host
    src = f"{h}/logins/podman-src:v1"
    # seed with skopeo (its own credentials)
    skopeo.copy(images.oci("single"), f"docker://{src}", f"--dest-creds={USER}:{PASSWORD}")
    bad = podman.podman("login", "--tls-verify=false", "-u", USER, "-p", "wrong", h, check=False)
    assert bad.returncode != 0
    podman.podman("login", "--tls-verify=false", "-u", USER, "-p", PASSWORD, h)
    try:
        podman.podman("pull", "-q", "--tls-verify=false", src)
        dst = f"{h}/logins/podman-pushed:p1"
        podman.podman("tag", src, dst)
        podman.podman("push", "--tls-verify=false", dst)
        assert Client(h, auth=(USER, PASSWORD)).get_manifest(
            "logins/podman-pushed", "p1").status == 200
    finally:
        podman.podman("logout", h, check=False)
    podman.podman("rmi", "-f", src, check=False)
    refused = podman.podman("pull", "-q", "--tls-verify=false", src, check=False)
    assert refused.returncode != 0


def test_docker_login_push_and_pull(plain, dockerd, skopeo, images):
    h = plain.host
    src = f"{h}/logins/docker-src:v1"
    skopeo.copy(images.oci("single"), f"docker://{src}", f"--dest-creds={USER}:{PASSWORD}")
    anonymous = dockerd.docker("pull", src, check=False)
    assert anonymous.returncode != 0
    bad = rc.run([rc.tool("docker"), "login", "-u", USER, "--password-stdin", h],
                 input="wrong\n", env=dockerd.cli_env, check=False)
    assert bad.returncode != 0
    rc.run([rc.tool("docker"), "login", "-u", USER, "--password-stdin", h],
           input=PASSWORD + "\n", env=dockerd.cli_env)
    try:
        out = dockerd.docker("pull", src).stdout
        assert f"Digest: {images.single_digest}" in out
        dst = f"{h}/logins/docker-pushed:d1"
        dockerd.docker("tag", src, dst)
        dockerd.docker("push", dst)
        assert Client(h, auth=(USER, PASSWORD)).get_manifest(
            "logins/docker-pushed", "d1").status == 200
    finally:
        dockerd.docker("logout", h, check=False)
        dockerd.docker("rmi", "-f", src, f"{h}/logins/docker-pushed:d1", check=False)


def test_containerd_with_credentials_in_hosts_toml(plain, containerd, skopeo, images):
    h = plain.host
    ref = f"{h}/logins/ctr:v1"
    skopeo.copy(images.oci("single"), f"docker://{ref}", f"--dest-creds={USER}:{PASSWORD}")
    hosts = tempfile.mkdtemp(prefix="rt-hosts-auth-", dir="/tmp")
    try:
        os.makedirs(os.path.join(hosts, h))
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        with open(os.path.join(hosts, h, "hosts.toml"), "w") as f:
            f.write(f'server = "http://{h}"\n'
                    f'[host."http://{h}"]\n'
                    '  capabilities = ["pull", "resolve", "push"]\n'
                    f'  [host."http://{h}".header]\n'
                    f'    Authorization = "Basic {token}"\n')
        without = containerd.ctr("images", "pull", "--plain-http", "--snapshotter",
                                 containerd.SNAPSHOTTER, ref, check=False)
        assert without.returncode != 0
        containerd.ctr("images", "pull", "--hosts-dir", hosts, "--snapshotter",
                       containerd.SNAPSHOTTER, ref)
        assert images.single_digest in containerd.ctr("images", "ls").stdout
    finally:
        containerd.ctr("images", "rm", "--sync", ref, check=False)
        shutil.rmtree(hosts, ignore_errors=True)


@pytest.fixture(scope="module")
def token_registry():
    """Token auth through the built-in issuer, over plain HTTP on loopback."""
    d = tempfile.mkdtemp(prefix="ringport-logins-token-")
    path = htpasswd_file(d, {USER: PASSWORD})
    cfg = os.path.join(d, "ringport.toml")
    with open(cfg, "w") as f:
        f.write(f'[auth]\nscheme = "token"\ntoken_issue = true\nhtpasswd_path = "{path}"\n'
                '[[access]]\nwho = ["*"]\nrepositories = ["**"]\n'
                'actions = ["pull", "push", "delete", "catalog"]\n')
    r = Ringport(config=cfg)
    r.start()
    r.wait_ready()
    yield r
    r.cleanup()
    shutil.rmtree(d, ignore_errors=True)


def test_token_logins_skopeo(token_registry, skopeo, images, tmp_path):
    h = token_registry.host
    authfile = str(tmp_path / "auth.json")
    ref = f"docker://{h}/tokens/skopeo:v1"
    bad = rc.run([skopeo.bin, "login", "--tls-verify=false", "--authfile", authfile, "-u", USER,
                  "--password-stdin", h], input="wrong\n", check=False)
    assert bad.returncode != 0
    rc.run([skopeo.bin, "login", "--tls-verify=false", "--authfile", authfile, "-u", USER,
            "--password-stdin", h], input=PASSWORD + "\n")
    skopeo.copy(images.oci("single"), ref, "--authfile", authfile)
    out = tmp_path / "out"
    skopeo.copy(ref, f"oci:{out}:back", "--authfile", authfile)
    assert rc.layout_blobs(str(out)) == images.single_blobs
    assert any("/auth/token" in l and f"user={USER}" in l for l in token_registry.err)


def test_token_logins_podman(token_registry, podman, skopeo, images):
    h = token_registry.host
    src = f"{h}/tokens/podman:v1"
    skopeo.copy(images.oci("single"), f"docker://{src}", f"--dest-creds={USER}:{PASSWORD}")
    assert podman.podman("login", "--tls-verify=false", "-u", USER, "-p", "wrong", h,
                         check=False).returncode != 0
    podman.podman("login", "--tls-verify=false", "-u", USER, "-p", PASSWORD, h)
    try:
        podman.podman("pull", "-q", "--tls-verify=false", src)
        dst = f"{h}/tokens/podman-pushed:p1"
        podman.podman("tag", src, dst)
        podman.podman("push", "--tls-verify=false", dst)
    finally:
        podman.podman("logout", h, check=False)
        podman.podman("rmi", "-f", src, check=False)
    assert podman.podman("pull", "-q", "--tls-verify=false", src, check=False).returncode != 0


def test_token_logins_docker(token_registry, dockerd, skopeo, images):
    h = token_registry.host
    src = f"{h}/tokens/docker:v1"
    skopeo.copy(images.oci("single"), f"docker://{src}", f"--dest-creds={USER}:{PASSWORD}")
    assert dockerd.docker("pull", src, check=False).returncode != 0
    rc.run([rc.tool("docker"), "login", "-u", USER, "--password-stdin", h],
           input=PASSWORD + "\n", env=dockerd.cli_env)
    try:
        assert f"Digest: {images.single_digest}" in dockerd.docker("pull", src).stdout
        dst = f"{h}/tokens/docker-pushed:d1"
        dockerd.docker("tag", src, dst)
        dockerd.docker("push", dst)
    finally:
        dockerd.docker("logout", h, check=False)
        dockerd.docker("rmi", "-f", src, f"{h}/tokens/docker-pushed:d1", check=False)
    assert any("/auth/token" in l and f"user={USER}" in l for l in token_registry.err)


def test_token_auth_with_containerd(token_registry, containerd, skopeo, images):
    """containerd's resolver follows the Bearer challenge to the built-in
    issuer with the credentials it is given (ctr --user)."""
    h = token_registry.host
    ref = f"{h}/tokens/ctr:v1"
    skopeo.copy(images.oci("single"), f"docker://{ref}", f"--dest-creds={USER}:{PASSWORD}")
    try:
        without = containerd.ctr("images", "pull", "--plain-http", "--snapshotter",
                                 containerd.SNAPSHOTTER, ref, check=False)
        assert without.returncode != 0
        wrong = containerd.ctr("images", "pull", "--plain-http", "--user", f"{USER}:wrong",
                               "--snapshotter", containerd.SNAPSHOTTER, ref, check=False)
        assert wrong.returncode != 0
        containerd.ctr("images", "pull", "--plain-http", "--user", f"{USER}:{PASSWORD}",
                       "--snapshotter", containerd.SNAPSHOTTER, ref)
        assert images.single_digest in containerd.ctr("images", "ls").stdout
        dst = f"{h}/tokens/ctr-pushed:c1"
        containerd.ctr("images", "tag", "--force", ref, dst)
        containerd.ctr("images", "push", "--plain-http", "--user", f"{USER}:{PASSWORD}", dst)
        assert Client(h, auth=None).request("GET", "/v2/tokens/ctr-pushed/tags/list").status == 401
    finally:
        containerd.ctr("images", "rm", "--sync", ref, f"{h}/tokens/ctr-pushed:c1", check=False)
    assert any("/auth/token" in l and f"user={USER}" in l for l in token_registry.err)
