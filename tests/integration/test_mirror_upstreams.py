# SPDX-License-Identifier: Apache-2.0
"""How the mirror reaches its upstreams (issue 10): credentials, inline or
from a file re-read when it changes, sent to a token realm only on the
upstream's own address or allow-list, Basic-auth upstreams, TLS with a CA
the tests make, and the per-upstream timeouts. Every upstream is a loopback
fake; 127.0.0.2 plays a foreign token realm."""
import base64
import os
import tempfile
import time

import pytest

from ringtest.client import Client
from ringtest.fakeupstream import FakeUpstream
from ringtest.harness import ringport_with_config
from ringtest.testca import make_ca

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
GOOD = "Basic " + base64.b64encode(b"bot:s3cret").decode()


def image_manifest(seed):
    return (b'{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":'
            b'"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":2},'
            b'"layers":[]}' % (OCI_MANIFEST.encode(), seed.hex().encode().ljust(64, b"0")[:64]))


class Mirror:
    def __init__(self, up, extra):
        self.srv, self.cfg = ringport_with_config(
            f'[[mirror]]\nprefix = "up.test"\nurl = "{up.url}"\n{extra}')

    def get(self, path):
        return Client(self.srv.host).request("GET", path, headers={"Accept": OCI_MANIFEST})

    def close(self):
        self.srv.cleanup()
        os.unlink(self.cfg)


@pytest.fixture()
def cleanup():
    things = []
    yield things
    for t in reversed(things):
        t.close()


def serve(cleanup, up, extra=""):
    cleanup.append(up)
    m = Mirror(up, extra)
    cleanup.append(m)
    return m


def test_credentials_go_to_a_token_realm_on_the_upstreams_own_address(cleanup):
    up = FakeUpstream(users={"bot": "s3cret"})
    m = serve(cleanup, up, 'username = "bot"\npassword = "s3cret"\n')
    body = image_manifest(b"private")
    up.add_manifest("team/app", "v1", body)
    r = m.get("/v2/up.test/team/app/manifests/v1")
    assert r.status == 200 and r.body == body, r
    assert up.auths == [("token", GOOD)]


def test_wrong_credentials_are_refused_upstream_and_502_here(cleanup):
    up = FakeUpstream(users={"bot": "s3cret"})
    m = serve(cleanup, up, 'username = "bot"\npassword = "wrong"\n')
    up.add_manifest("team/app", "v1", image_manifest(b"private"))
    r = m.get("/v2/up.test/team/app/manifests/v1")
    assert r.status == 502 and "UNKNOWN" in r.error_codes(), r
    assert len(up.auths) == 1 and up.auths[0][1] != GOOD


def test_a_foreign_token_realm_gets_no_credentials_unless_allowed(cleanup):
    auth = FakeUpstream(host="127.0.0.2")  # answers tokens to anyone
    cleanup.append(auth)
    up = FakeUpstream(realm=f"{auth.url}/token")
    m = serve(cleanup, up, 'username = "bot"\npassword = "s3cret"\n')
    body = image_manifest(b"realm elsewhere")
    up.add_manifest("team/app", "v1", body)
    assert m.get("/v2/up.test/team/app/manifests/v1").body == body
    assert auth.auths == [("token", None)]  # anonymous: 127.0.0.2 is not 127.0.0.1
    # The same realm on the allow-list gets them.
    allowed = serve(cleanup, up, 'username = "bot"\npassword = "s3cret"\n'
                                 'auth_hosts = ["127.0.0.2"]\n')
    assert allowed.get("/v2/up.test/team/app/manifests/v1").body == body
    assert auth.auths[-1] == ("token", GOOD)


def test_a_basic_auth_upstream_is_answered_with_the_credentials(cleanup):
    up = FakeUpstream(bearer=False, basic=True, users={"bot": "s3cret"})
    m = serve(cleanup, up, 'username = "bot"\npassword = "s3cret"\n')
    body = image_manifest(b"basic")
    up.add_manifest("team/app", "v1", body)
    data = os.urandom(300 * 1024)
    d = up.add_blob("team/app", data)
    assert m.get("/v2/up.test/team/app/manifests/v1").body == body
    assert m.get(f"/v2/up.test/team/app/blobs/{d}").body == data
    # One 401 to learn the scheme, then the credentials go up front.
    assert [a for _, a in up.auths] == [None, GOOD, GOOD]


def test_a_basic_auth_upstream_without_credentials_is_502(cleanup):
    up = FakeUpstream(bearer=False, basic=True, users={"bot": "s3cret"})
    m = serve(cleanup, up)
    up.add_manifest("team/app", "v1", image_manifest(b"basic"))
    r = m.get("/v2/up.test/team/app/manifests/v1")
    assert r.status == 502, r
    assert [a for _, a in up.auths] == [None]


def test_a_credentials_file_is_reread_when_it_changes(cleanup):
    up = FakeUpstream(users={"bot": "s3cret"})
    fd, cred = tempfile.mkstemp()
    with os.fdopen(fd, "w") as f:
        f.write("bot:old-password\n")
    m = serve(cleanup, up, f'credentials_file = "{cred}"\nnot_found_ttl_s = 0\n')
    try:
        body = image_manifest(b"rotated")
        up.add_manifest("team/app", "v1", body)
        assert m.get("/v2/up.test/team/app/manifests/v1").status == 502
        with open(cred + ".new", "w") as f:
            f.write("bot:s3cret\n")
        os.replace(cred + ".new", cred)  # rotated the way secret managers do
        time.sleep(1.1)  # the file is looked at once a second at most
        r = m.get("/v2/up.test/team/app/manifests/v1")
        assert r.status == 200 and r.body == body, r
        assert up.auths[-1] == ("token", GOOD)
    finally:
        os.unlink(cred)


@pytest.fixture(scope="module")
def ca():
    with tempfile.TemporaryDirectory() as d:
        yield make_ca(d)


def test_a_tls_upstream_is_verified_against_its_ca_file(cleanup, ca):
    ca_file, cert, key = ca
    up = FakeUpstream(tls=(cert, key))
    body = image_manifest(b"over tls")
    up.add_manifest("team/app", "v1", body)
    data = os.urandom(200 * 1024)
    d = up.add_blob("team/app", data)
    m = serve(cleanup, up, f'ca_file = "{ca_file}"\n')
    assert up.url.startswith("https://")
    assert m.get("/v2/up.test/team/app/manifests/v1").body == body
    assert m.get(f"/v2/up.test/team/app/blobs/{d}").body == data
    # Without the CA the certificate does not verify: nothing is fetched.
    plain = serve(cleanup, up, "not_found_ttl_s = 0\n")
    r = plain.get("/v2/up.test/team/app/manifests/v1")
    assert r.status == 502 and "certificate" in r.body.decode().lower(), r
    # Verification can be turned off for an upstream (a lab registry).
    unchecked = serve(cleanup, up, "tls_verify = false\n")
    assert unchecked.get("/v2/up.test/team/app/manifests/v1").body == body


def test_an_upstream_that_sends_no_status_line_in_time_fails_at_first_byte_timeout(cleanup):
    up = FakeUpstream(bearer=False)
    up.add_manifest("team/app", "v1", image_manifest(b"slow"))
    up.delay_s = 4
    m = serve(cleanup, up, "first_byte_timeout_ms = 500\n")
    t0 = time.monotonic()
    r = m.get("/v2/up.test/team/app/manifests/v1")
    took = time.monotonic() - t0
    assert r.status == 502 and "no answer within 500 ms" in r.body.decode(), r
    assert took < 3.5, took  # curl checks about once a second; the upstream takes 4 s
