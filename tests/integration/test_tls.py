# SPDX-License-Identifier: Apache-2.0
"""TLS on the listener: certificates (ECDSA and RSA) configured the
Distribution way, protocol versions, ALPN, client certificates, SIGHUP
reload under a running download, stalled handshakes, bounded memory."""
import hashlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

from ringtest.authtest import startup_refusal
from ringtest.client import Client, sha256
from ringtest.harness import Ringport, wait_until
from ringtest.testca import issue, make_ca


@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="ringport-tls-")
    other = os.path.join(d, "other")
    os.mkdir(other)
    try:
        ca, cert, key = make_ca(d)
        rsa_cert, rsa_key = issue(d, "rsa", "ringport rsa", names=("localhost",),
                                  ips=("127.0.0.1",), key_type="rsa")
        alice = issue(d, "alice", "alice", client=True)
        make_ca(other)
        mallory = issue(other, "mallory", "mallory", client=True)
        yield {"dir": d, "ca": ca, "cert": cert, "key": key, "rsa_cert": rsa_cert,
               "rsa_key": rsa_key, "alice": alice, "mallory": mallory}
    finally:
        shutil.rmtree(d, ignore_errors=True)


def tls_env(pki, cert="cert", key="key", **extra):
    env = {"REGISTRY_HTTP_TLS_CERTIFICATE": pki[cert], "REGISTRY_HTTP_TLS_KEY": pki[key]}
    env.update(extra)
    return env


def context(pki, client=None, maximum=None, minimum=None, alpn=None):
    ctx = ssl.create_default_context(cafile=pki["ca"])
    if client:
        ctx.load_cert_chain(*client)
    if maximum:
        ctx.maximum_version = maximum
    if minimum:
        ctx.minimum_version = minimum
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def handshake(port, ctx, request=b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n"):
    """Connects, shakes hands, sends one request; returns (ssl socket info, reply
    bytes). Raises ssl.SSLError / OSError when the server refuses."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            info = {"version": s.version(), "cipher": s.cipher()[0],
                    "alpn": s.selected_alpn_protocol(),
                    "cert": s.getpeercert()}
            s.sendall(request)
            reply = s.recv(65536)  # TLS 1.3 reports a refused client certificate here
            return info, reply


def refused(port, ctx):
    try:
        _, reply = handshake(port, ctx)
    except (ssl.SSLError, OSError):
        return True
    return reply == b""


@pytest.fixture
def server(pki):
    servers = []

    def start(env=None, **kw):
        r = Ringport(env=env or tls_env(pki), tls_ca=pki["ca"], **kw)
        servers.append(r)
        r.start()
        r.wait_ready()
        return r

    yield start
    for r in servers:
        r.cleanup()


def test_ecdsa_certificate_serves_the_api_and_a_blob_round_trip(pki, server):
    r = server()
    c = Client(r.host, r.ssl_context())
    v2 = c.request("GET", "/v2/")
    assert v2.status == 200 and v2.header("Docker-Distribution-API-Version") == "registry/2.0"
    data = os.urandom(3 << 20)
    d = c.push_blob("tls/app", data)
    got = c.get_blob("tls/app", d)
    assert got.status == 200 and sha256(got.body) == d
    body, md = c.push_image("tls/app", "v1", layers=(b"one", b"two"))
    m = c.get_manifest("tls/app", "v1", accept="application/vnd.oci.image.manifest.v1+json")
    assert m.status == 200 and m.body == body and m.header("Docker-Content-Digest") == md
    info, _ = handshake(r.port, context(pki))
    assert info["version"] in ("TLSv1.2", "TLSv1.3")
    # curl, as a client would use it (verifying the certificate against the CA).
    out = subprocess.run(["curl", "-sS", "--cacert", pki["ca"], "-o", "/dev/null", "-w",
                          "%{http_code} %{ssl_verify_result}",
                          f"https://127.0.0.1:{r.port}/v2/tls/app/blobs/{d}"],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout == "200 0", out


def test_rsa_certificate(pki, server):
    r = server(tls_env(pki, "rsa_cert", "rsa_key"))
    info, reply = handshake(r.port, context(pki, maximum=ssl.TLSVersion.TLSv1_2))
    assert info["version"] == "TLSv1.2"
    assert info["cipher"] == "ECDHE-RSA-AES128-GCM-SHA256"
    assert dict(x[0] for x in info["cert"]["subject"])["commonName"] == "ringport rsa"
    assert reply.startswith(b"HTTP/1.1 200")
    info, _ = handshake(r.port, context(pki))
    assert info["version"] == "TLSv1.3" and info["cipher"] == "TLS_AES_128_GCM_SHA256"


def test_plain_http_to_a_tls_listener_is_told_why(pki, server):
    r = server()
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = b""
        for _ in range(100):
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    assert reply.startswith(b"HTTP/1.0 400 Bad Request")
    assert b"HTTP request to an HTTPS server" in reply
    # and the listener is fine
    assert Client(r.host, r.ssl_context()).request("GET", "/v2/").status == 200


def test_minimum_version(pki, server):
    r = server()  # default: TLS 1.2
    info, _ = handshake(r.port, context(pki, maximum=ssl.TLSVersion.TLSv1_2))
    assert info["version"] == "TLSv1.2"
    r13 = server(tls_env(pki, REGISTRY_HTTP_TLS_MINIMUMTLS="tls1.3"))
    assert refused(r13.port, context(pki, maximum=ssl.TLSVersion.TLSv1_2))
    info, _ = handshake(r13.port, context(pki))
    assert info["version"] == "TLSv1.3"
    assert Client(r13.host, r13.ssl_context()).request("GET", "/v2/").status == 200


def test_alpn_is_http11_only(pki, server):
    r = server()
    info, reply = handshake(r.port, context(pki, alpn=["h2", "http/1.1"]))
    assert info["alpn"] == "http/1.1" and reply.startswith(b"HTTP/1.1 200")
    assert refused(r.port, context(pki, alpn=["h2"]))
    info, _ = handshake(r.port, context(pki))
    assert info["alpn"] is None


def test_client_certificates_required(pki, server):
    r = server(tls_env(pki, REGISTRY_HTTP_TLS_CLIENTCAS=f"[{pki['ca']}]"),
               tls_client=pki["alice"])
    assert refused(r.port, context(pki))  # none
    assert refused(r.port, context(pki, client=pki["mallory"]))  # another CA
    _, reply = handshake(r.port, context(pki, client=pki["alice"]))
    assert reply.startswith(b"HTTP/1.1 200")
    c = Client(r.host, context(pki, client=pki["alice"]))
    assert c.request("GET", "/v2/_catalog").status == 200
    # The verified subject is who the request came from.
    assert wait_until(lambda: any('"GET /v2/_catalog"' in l and "user=alice" in l
                                  for l in r.err), 5)


def test_client_certificates_optional(pki, server):
    r = server(tls_env(pki, RINGPORT_TLS_CLIENT_CAS=pki["ca"],
                       RINGPORT_TLS_CLIENT_AUTH="optional"))
    _, reply = handshake(r.port, context(pki))
    assert reply.startswith(b"HTTP/1.1 200")
    _, reply = handshake(r.port, context(pki, client=pki["alice"]))
    assert reply.startswith(b"HTTP/1.1 200")
    assert refused(r.port, context(pki, client=pki["mallory"]))  # sent, so verified
    assert wait_until(lambda: sum('"GET /v2/"' in l and "user=alice" in l for l in r.err) == 1,
                      5)
    assert not any("user=mallory" in l for l in r.err)


def test_stalled_handshakes_are_timed_out(pki, server):
    r = server(tls_env(pki, RINGPORT_TLS_HANDSHAKE_TIMEOUT_MS="300"))
    silent = socket.create_connection(("127.0.0.1", r.port), timeout=10)
    partial = socket.create_connection(("127.0.0.1", r.port), timeout=10)
    partial.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello's start
    try:
        for s in (silent, partial):
            t0 = time.monotonic()
            assert s.recv(100) == b""  # closed by the server, not by our timeout
            assert time.monotonic() - t0 < 9
    finally:
        silent.close()
        partial.close()
    assert wait_until(lambda: sum("not completed in time" in l for l in r.err) == 2, 5)
    assert Client(r.host, r.ssl_context()).request("GET", "/v2/").status == 200


def _rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_sighup_reloads_the_certificate_without_dropping_a_download(pki, server):
    d = tempfile.mkdtemp(prefix="ringport-tls-reload-", dir=pki["dir"])
    cert = os.path.join(d, "live.pem")
    key = os.path.join(d, "live.key")
    shutil.copy(pki["cert"], cert)
    shutil.copy(pki["key"], key)
    r = server({"REGISTRY_HTTP_TLS_CERTIFICATE": cert, "REGISTRY_HTTP_TLS_KEY": key})
    c = Client(r.host, r.ssl_context())
    data = os.urandom(64 << 20)
    digest = c.push_blob("reload/big", data)
    before = _rss_kib(r.proc.pid)
    # A slow reader: the download is in flight across the reload.
    raw = socket.create_connection(("127.0.0.1", r.port), timeout=30)
    s = context(pki).wrap_socket(raw, server_hostname="localhost")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(f"GET /v2/reload/big/blobs/{digest} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    got = bytearray()
    for _ in range(64):
        got += s.recv(65536)
    assert got.startswith(b"HTTP/1.1 200")
    # Swap in a certificate with another name and reload.
    new_cert, new_key = issue(pki["dir"], "renewed", "ringport renewed", names=("localhost",),
                              ips=("127.0.0.1",))
    shutil.copy(new_cert, cert)
    shutil.copy(new_key, key)
    r.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: any("tls certificate reloaded" in l for l in r.err), 10)
    info, _ = handshake(r.port, context(pki))
    assert dict(x[0] for x in info["cert"]["subject"])["commonName"] == "ringport renewed"
    peak = _rss_kib(r.proc.pid)
    # The old connection goes on with its session and gets every byte.
    head_len = bytes(got[:4096]).index(b"\r\n\r\n") + 4
    for i in range(100000):
        if len(got) - head_len >= len(data):
            break
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        got += chunk
        if i % 16 == 0:
            peak = max(peak, _rss_kib(r.proc.pid))
    s.close()
    assert hashlib.sha256(got[head_len:]).hexdigest() == digest.split(":")[1]
    # Streamed from the file in bounded pieces: far less than the blob.
    assert peak - before < 24 << 10, (before, peak)
    # A bad file on reload keeps the current certificate.
    with open(cert, "w") as f:
        f.write("not a certificate\n")
    r.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: any("tls reload failed" in l for l in r.err), 10)
    info, _ = handshake(r.port, context(pki))
    assert dict(x[0] for x in info["cert"]["subject"])["commonName"] == "ringport renewed"


def test_bad_tls_settings_stop_startup_with_a_reason(pki):
    cases = [
        ({"REGISTRY_HTTP_TLS_CERTIFICATE": pki["cert"]}, "tls.certificate and tls.key go together"),
        (tls_env(pki, key="rsa_key"), "does not match certificate"),
        ({"REGISTRY_HTTP_TLS_CERTIFICATE": "/nonexistent.pem",
          "REGISTRY_HTTP_TLS_KEY": pki["key"]}, "certificate /nonexistent.pem"),
        (tls_env(pki, REGISTRY_HTTP_TLS_MINIMUMTLS="ssl3"), "tls.minimum_version 'ssl3'"),
        (tls_env(pki, RINGPORT_TLS_CLIENT_AUTH="required"), "needs tls.client_cas"),
        (tls_env(pki, REGISTRY_HTTP_TLS_CLIENTCAS="/nonexistent-ca.pem"),
         "client CA bundle /nonexistent-ca.pem"),
    ]
    for env, why in cases:
        reason = startup_refusal(env=env)
        assert why in reason, (env, reason)
