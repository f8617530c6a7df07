# SPDX-License-Identifier: Apache-2.0
"""Distribution 2.8.2 as the mirror's upstream (issue 10), the way a private
registry runs: `auth: token` with a token server the test runs, over TLS
with a CA the test makes, and credentials the mirror must send to the token
realm. Then ringport in front of ringport in front of that Distribution.

Distribution 2.8.2 checks tokens through libtrust: ES256 here, the signing
key's certificate in `rootcertbundle` and in the token's `x5c`. The token is
signed with the openssl CLI (no Python crypto module needed); the token
server grants what it is asked to whoever sends the right Basic
credentials, and records what it was sent.
"""
import base64
import http.client
import http.server
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import pytest

from ringtest.client import Client, sha256
from ringtest.harness import DISTRIBUTION_CONFIG, Ringport, free_port, ringport_with_config
from ringtest.jwtmint import b64url, der_to_raw
from ringtest.testca import make_ca

SERVICE = "ringtest-registry"
ISSUER = "ringtest-issuer"
USER, PASSWORD = "bot", "s3cret"


class TokenServer:
    """HTTPS token endpoint: ES256 tokens for the scope asked, to USER only."""

    def __init__(self, tls, key, cert_der):
        self.key, self.cert_der = key, cert_der
        self.auths = []  # the Authorization header of each token request
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                owner.auths.append(self.headers.get("Authorization"))
                good = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                if self.headers.get("Authorization") != good:
                    body, status = b'{"errors":[{"code":"UNAUTHORIZED"}]}', 401
                else:
                    q = dict(p.split("=", 1) for p in self.path.split("?", 1)[1].split("&"))
                    scope = q.get("scope", "").replace("%3A", ":").replace("%2F", "/")
                    body = json.dumps({"token": owner.token(scope), "expires_in": 300}).encode()
                    status = 200
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*tls)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/token"

    def token(self, scope):
        access = []
        if scope.startswith("repository:"):
            _, name, actions = scope.split(":", 2)
            access.append({"type": "repository", "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(self.cert_der).decode()]}
        claims = {"iss": ISSUER, "sub": USER, "aud": SERVICE, "exp": now + 300, "nbf": now - 10,
                  "iat": now, "jti": os.urandom(8).hex(), "access": access}
        signing_input = (b64url(json.dumps(header).encode()) + "." +
                         b64url(json.dumps(claims).encode())).encode()
        der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key],
                             input=signing_input, capture_output=True, check=True,
                             timeout=30).stdout
        return signing_input.decode() + "." + b64url(der_to_raw(der, 32))

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# The tests' Distribution settings (http last), then TLS for http and token auth.
DIST_EXTRA = """  tls:
    certificate: {cert}
    key: {key}
auth:
  token:
    realm: {realm}
    service: {service}
    issuer: {issuer}
    rootcertbundle: {bundle}
"""


@pytest.fixture(scope="module")
def setup():
    d = tempfile.mkdtemp(prefix="rt-mirror-dist-")
    things = []
    try:
        ca, cert, key = make_ca(d)
        tok_key = os.path.join(d, "token.key")
        tok_cert = os.path.join(d, "token.pem")
        subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout",
                        "-out", tok_key], check=True, capture_output=True, timeout=60)
        subprocess.run(["openssl", "req", "-x509", "-new", "-key", tok_key, "-sha256", "-days",
                        "1", "-subj", "/CN=ringtest token signer", "-out", tok_cert],
                       check=True, capture_output=True, timeout=60)
        der = subprocess.run(["openssl", "x509", "-in", tok_cert, "-outform", "DER"],
                             check=True, capture_output=True, timeout=60).stdout
        tokens = TokenServer((cert, key), tok_key, der)
        things.append(tokens)
        # The image, laid down by a plain ringport (Distribution's tree, byte
        # for byte), then served by Distribution with auth on.
        root = os.path.join(d, "dist-root")
        seed = Ringport(root=root).start()
        seed.wait_ready()
        c = Client(seed.host)
        layers = (os.urandom(300 * 1024), b"second layer")
        body, digest = c.push_image("team/app", "v1", layers=layers)
        assert seed.stop() == 0
        port = free_port()
        cfg = os.path.join(d, "dist.yml")
        with open(cfg, "w") as f:
            f.write(DISTRIBUTION_CONFIG.format(root=root, port=port) +
                    DIST_EXTRA.format(cert=cert, key=key, realm=tokens.url, service=SERVICE,
                                      issuer=ISSUER, bundle=tok_cert))
        dist = subprocess.Popen(["/usr/bin/docker-registry", "serve", cfg],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        things.append(type("P", (), {"close": lambda self: (dist.terminate(), dist.wait(10))})())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        first, cfg1 = ringport_with_config(
            '[[mirror]]\nprefix = "dist"\n'
            f'url = "https://127.0.0.1:{port}"\nca_file = "{ca}"\n'
            f'username = "{USER}"\npassword = "{PASSWORD}"\n')
        things.append(type("R", (), {"close": lambda self: (first.cleanup(), os.unlink(cfg1))})())
        second, cfg2 = ringport_with_config(
            f'[[mirror]]\nprefix = "m1"\nurl = "{first.url}"\n')
        things.append(type("R", (), {"close": lambda self: (second.cleanup(), os.unlink(cfg2))})())
        yield {"tokens": tokens, "first": first, "second": second, "body": body,
               "digest": digest, "layers": layers, "port": port, "ca": ca}
    finally:
        for t in reversed(things):
            t.close()
        shutil.rmtree(d, ignore_errors=True)


def pull(srv, name, want_body, layers):
    c = Client(srv.host)
    r = c.request("GET", f"/v2/{name}/manifests/v1",
                  headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert r.status == 200 and r.body == want_body, r
    for layer in layers:
        b = c.request("GET", f"/v2/{name}/blobs/{sha256(layer)}")
        assert b.status == 200 and b.body == layer, b


def test_distribution_refuses_anonymous_pulls(setup):
    ctx = ssl.create_default_context(cafile=setup["ca"])
    conn = http.client.HTTPSConnection("127.0.0.1", setup["port"], context=ctx, timeout=10)
    conn.request("GET", "/v2/team/app/manifests/v1")
    r = conn.getresponse()
    r.read()
    assert r.status == 401 and "Bearer" in r.getheader("WWW-Authenticate"), r.status


def test_a_mirror_pulls_from_distribution_with_token_auth_over_tls(setup):
    pull(setup["first"], "dist/team/app", setup["body"], setup["layers"])
    good = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert setup["tokens"].auths and all(a == good for a in setup["tokens"].auths)


def test_a_chain_of_two_mirrors_in_front_of_distribution(setup):
    pull(setup["second"], "m1/dist/team/app", setup["body"], setup["layers"])
