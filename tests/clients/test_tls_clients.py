# SPDX-License-Identifier: Apache-2.0
"""Real clients over TLS, verifying the registry's certificate against a CA
the test makes: skopeo copies an image in and out byte-identical, with an
ECDSA and an RSA certificate, and with a client certificate when the
registry requires one (and is refused without it)."""
import os
import shutil
import tempfile

import pytest

from ringtest import realclients as rc
from ringtest.client import Client
from ringtest.harness import Ringport, wait_until
from ringtest.testca import issue, make_ca


@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="ringport-tls-clients-")
    try:
        ca, cert, key = make_ca(d)
        rsa = issue(d, "rsa", "ringport rsa", names=("localhost",), ips=("127.0.0.1",),
                    key_type="rsa")
        alice = issue(d, "alice", "alice", client=True)
        yield {"dir": d, "ca": ca, "ec": (cert, key), "rsa": rsa, "alice": alice}
    finally:
        shutil.rmtree(d, ignore_errors=True)


def cert_dir(pki, client=None):
    """A certs.d-style directory as containers/image reads it: ca.crt, and
    client.cert / client.key for a client certificate."""
    d = tempfile.mkdtemp(prefix="certs-", dir=pki["dir"])
    shutil.copy(pki["ca"], os.path.join(d, "ca.crt"))
    if client:
        shutil.copy(client[0], os.path.join(d, "client.cert"))
        shutil.copy(client[1], os.path.join(d, "client.key"))
    return d


def start(pki, which, **env):
    cert, key = pki[which]
    r = Ringport(env={"REGISTRY_HTTP_TLS_CERTIFICATE": cert, "REGISTRY_HTTP_TLS_KEY": key, **env},
                 tls_ca=pki["ca"], tls_client=pki["alice"])
    r.start()
    r.wait_ready()
    return r


@pytest.mark.parametrize("which", ["ec", "rsa"])
def test_skopeo_copies_in_and_out_over_verified_tls(pki, which, skopeo, images, tmp_path):
    r = start(pki, which)
    try:
        certs = cert_dir(pki)
        ref = f"docker://localhost:{r.port}/tls/single:v1"
        skopeo("copy", "--quiet", f"--dest-cert-dir={certs}", "--dest-tls-verify=true",
               images.oci("single"), ref)
        got = Client(r.host, r.ssl_context()).get_manifest(
            "tls/single", "v1", accept="application/vnd.oci.image.manifest.v1+json")
        assert got.status == 200 and got.body == images.single_manifest
        out = tmp_path / "out"
        skopeo("copy", "--quiet", f"--src-cert-dir={certs}", "--src-tls-verify=true", ref,
               f"oci:{out}:back")
        assert rc.layout_blobs(str(out)) == images.single_blobs
        # Without the CA the certificate is not trusted: skopeo refuses.
        bad = skopeo("inspect", "--tls-verify=true", ref, check=False)
        assert bad.returncode != 0 and "certificate" in (bad.stderr + bad.stdout)
    finally:
        r.cleanup()


def test_skopeo_with_a_client_certificate(pki, skopeo, images, tmp_path):
    r = start(pki, "ec", REGISTRY_HTTP_TLS_CLIENTCAS=f"[{pki['ca']}]")
    try:
        ref = f"docker://localhost:{r.port}/mtls/single:v1"
        without = skopeo("copy", "--quiet", f"--dest-cert-dir={cert_dir(pki)}",
                         images.oci("single"), ref, check=False)
        assert without.returncode != 0
        certs = cert_dir(pki, client=pki["alice"])
        skopeo("copy", "--quiet", f"--dest-cert-dir={certs}", images.oci("single"), ref)
        out = tmp_path / "out"
        skopeo("copy", "--quiet", f"--src-cert-dir={certs}", ref, f"oci:{out}:back")
        assert rc.layout_blobs(str(out)) == images.single_blobs
        assert wait_until(lambda: any("user=alice" in l and "PUT /v2/mtls/single/manifests/v1" in l
                                      for l in r.err), 5)
    finally:
        r.cleanup()


def test_podman_with_a_client_certificate_as_its_user(pki, podman, skopeo, images):
    """mTLS as the certificate scheme's user: podman with --cert-dir.

    docker is not here: it treats every loopback registry as insecure
    (127.0.0.0/8 is always in its insecure list) and reads certs.d only for
    registries it considers secure, so it never sends a client certificate
    to a registry on loopback, and the tests use loopback only."""
    r = start(pki, "ec", REGISTRY_HTTP_TLS_CLIENTCAS=pki["ca"], RINGPORT_AUTH_SCHEME="certificate")
    host = f"localhost:{r.port}"
    try:
        certs = cert_dir(pki, client=pki["alice"])
        src = f"{host}/mtls/clients:v1"
        skopeo("copy", "--quiet", f"--dest-cert-dir={certs}", images.oci("single"),
               f"docker://{src}")
        assert podman.podman("pull", "-q", f"--cert-dir={cert_dir(pki)}", src,
                             check=False).returncode != 0
        podman.podman("pull", "-q", f"--cert-dir={certs}", src)
        podman.podman("tag", src, f"{host}/mtls/podman:p1")
        podman.podman("push", f"--cert-dir={certs}", f"{host}/mtls/podman:p1")
        assert wait_until(lambda: any("user=alice" in l and "PUT /v2/mtls/podman/manifests/" in l
                                      for l in r.err), 5), r.err[-10:]
    finally:
        podman.podman("rmi", "-f", f"{host}/mtls/clients:v1", f"{host}/mtls/podman:p1",
                      check=False)
        r.cleanup()
