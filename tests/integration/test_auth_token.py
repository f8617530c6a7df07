# SPDX-License-Identifier: Apache-2.0
"""Bearer tokens (Docker registry token authentication): the challenge as
Distribution sends it, tokens of every accepted algorithm and key source
(root bundle by kid, x5c chains, JWKS), and the attack matrix: each forged,
stale or insufficient token answered 401 with the right challenge and the
tree byte-identical. Then the built-in issuer: GET and OAuth2 POST,
refresh tokens, grants narrowed to the access rules."""
import base64
import json
import os
import re
import shutil
import tempfile
import time
import urllib.parse

import pytest

from ringtest.authtest import htpasswd_file, start_with_config, startup_refusal, tree_state
from ringtest.client import Client
from ringtest.jwtmint import Minter, b64url

REALM = "https://auth.test/token"
SERVICE = "registry.test"


@pytest.fixture(scope="module")
def minter():
    d = tempfile.mkdtemp(prefix="ringport-jwt-")
    yield Minter(d, service=SERVICE)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def registry(minter):
    """An external issuer's tokens: keys from the root bundle."""
    r = start_with_config(f"""
[auth]
scheme = "token"
token_realm = "{REALM}"
token_service = "{SERVICE}"
token_issuer = "test-issuer"
token_rootcertbundle = "{minter.bundle}"
""")
    # Content to read, pushed with a token (nothing else can push).
    admin = bearer(r, minter.token(minter.claims(access=[("repository", "team/app", ["*"])])))
    body, _ = admin.push_image("team/app", "v1", layers=(b"team layer",))
    r.manifest = body
    yield r
    r.cleanup()
    os.unlink(r.config_path)


def bearer(r, token):
    return Client(r.host, auth="Bearer " + token)


def challenge_of(resp):
    assert resp.status == 401, resp
    assert resp.error_codes() == ["UNAUTHORIZED"]
    v = resp.header("WWW-Authenticate")
    assert v.startswith("Bearer "), v
    return dict(re.findall(r'(\w+)="([^"]*)"', v))


def test_the_challenge_is_distributions(registry):
    anon = Client(registry.host)
    assert challenge_of(anon.request("GET", "/v2/")) == {"realm": REALM, "service": SERVICE}
    resp = anon.get_manifest("team/app", "v1")
    assert resp.header("WWW-Authenticate") == (
        f'Bearer realm="{REALM}",service="{SERVICE}",scope="repository:team/app:pull"')
    assert challenge_of(anon.request("POST", "/v2/team/app/blobs/uploads/"))["scope"] == \
        "repository:team/app:pull,push"
    assert challenge_of(anon.request("DELETE", "/v2/team/app/manifests/v1"))["scope"] == \
        "repository:team/app:delete"
    assert challenge_of(anon.request("GET", "/v2/_catalog"))["scope"] == "registry:catalog:*"


@pytest.mark.parametrize("kind", ["ec256", "ec384", "rsa", "ed25519"])
def test_every_accepted_algorithm_and_key_kind(registry, minter, kind):
    t = minter.token(minter.claims(access=[("repository", "team/app", ["pull"])]), kind=kind)
    resp = bearer(registry, t).get_manifest("team/app", "v1")
    assert resp.status == 200 and resp.body == registry.manifest


def test_ps256_and_x5c_chains(registry, minter):
    access = [("repository", "team/app", ["pull"])]
    ps = minter.token(minter.claims(access=access), kind="rsa", alg="PS256")
    assert bearer(registry, ps).get_manifest("team/app", "v1").status == 200
    chained = minter.token(minter.claims(access=access), x5c=True)
    assert bearer(registry, chained).get_manifest("team/app", "v1").status == 200


def test_the_attack_matrix(registry, minter):
    before = tree_state(registry.root)
    now = int(time.time())
    pull = [("repository", "team/app", ["pull"])]
    everything = [("repository", "team/app", ["*"]), ("registry", "catalog", ["*"])]
    good = minter.claims(access=everything)
    tampered = minter.token(good).split(".")
    forged_claims = dict(good, access=[("repository", "x", ["*"])], sub="root")
    tampered[1] = b64url(json.dumps(forged_claims).encode())
    invalid = {
        "expired": minter.token(minter.claims(access=everything, exp=now - 3600, iat=now - 7200,
                                              nbf=now - 7200)),
        "not yet valid": minter.token(minter.claims(access=everything, nbf=now + 3600)),
        "issued in the future": minter.token(minter.claims(access=everything, iat=now + 3600)),
        "far future": minter.token(minter.claims(access=everything, ttl=10 * 365 * 86400)),
        "no expiry": minter.token(minter.claims(access=everything, exp=None)),
        "wrong audience": minter.token(minter.claims(access=everything, aud="elsewhere")),
        "wrong issuer": minter.token(minter.claims(access=everything, iss="mallory")),
        "alg none": minter.unsigned(good),
        "alg none with a signature": minter.unsigned(good) + "AAAA",
        "HS256 keyed with the RSA public key": minter.hs256_with_public_key(good),
        "tampered payload": ".".join(tampered),
        "ES256 named, RSA key": minter.token(good, kind="rsa", alg="RS256",
                                             header={"alg": "ES256"}),
        "unknown kid": minter.token(good, header={"kid": "AAAA:BBBB"}),
        "untrusted x5c": minter.token(good, x5c=True, header={"x5c": ["bm90IGEgY2VydA=="]}),
        "embedded jwk": minter.token(good, kind="rsa", header={
            "kid": "nope", "jwk": {"kty": "RSA", "n": "AQAB", "e": "AQAB"}}),
        "garbage": "not.a.token",
        "two parts": "eyJhbGciOiJFUzI1NiJ9.e30",
        "four parts": minter.token(good) + ".x",
        "bad base64": "eyJhbGciOiJFUzI1NiJ9.e30.@@@",
        "refresh token": minter.token(minter.claims(access=everything, ringport_refresh=True)),
    }
    for why, t in invalid.items():
        c = bearer(registry, t)
        for method, path in (("GET", "/v2/team/app/manifests/v1"),
                             ("POST", "/v2/team/app/blobs/uploads/"),
                             ("DELETE", "/v2/team/app/manifests/v1")):
            ch = challenge_of(c.request(method, path))
            assert ch.get("error") == "invalid_token", (why, method, ch)
    # Valid tokens without the scope: insufficient_scope.
    insufficient = [
        (minter.token(minter.claims(access=[("repository", "other/app", ["*"])])),
         "GET", "/v2/team/app/manifests/v1", "repository:team/app:pull"),
        (minter.token(minter.claims(access=pull)), "POST", "/v2/team/app/blobs/uploads/",
         "repository:team/app:pull,push"),
        (minter.token(minter.claims(access=pull)), "PUT", "/v2/team/app/manifests/v2",
         "repository:team/app:pull,push"),
        (minter.token(minter.claims(access=pull)), "DELETE", "/v2/team/app/manifests/v1",
         "repository:team/app:delete"),
        (minter.token(minter.claims(access=pull)), "GET", "/v2/_catalog", "registry:catalog:*"),
        (minter.token(minter.claims(access=[("repository", "team/app", ["push"])])),
         "POST", "/v2/team/app/blobs/uploads/", "repository:team/app:pull,push"),
    ]
    for t, method, path, scope in insufficient:
        ch = challenge_of(bearer(registry, t).request(
            method, path, body=registry.manifest if method == "PUT" else None))
        assert ch == {"realm": REALM, "service": SERVICE, "scope": scope,
                      "error": "insufficient_scope"}, (method, path, ch)
    # Malformed Authorization headers.
    for header in ("Bearer", "Bearer  ", "bearer", "Token abc", "Basic dGVzdDp0ZXN0"):
        ch = challenge_of(Client(registry.host, auth=header).request("GET", "/v2/"))
        assert ch["realm"] == REALM
    assert tree_state(registry.root) == before
    # ... and a good token still works.
    assert bearer(registry, minter.token(good)).request("GET", "/v2/_catalog").status == 200


def test_a_verified_token_is_checked_once(minter, tmp_path):
    r = start_with_config(f"""
[auth]
scheme = "token"
token_realm = "{REALM}"
token_service = "{SERVICE}"
token_issuer = "test-issuer"
token_rootcertbundle = "{minter.bundle}"
""")
    try:
        t = minter.token(minter.claims(access=[("repository", "a/b", ["*"]),
                                               ("registry", "metrics", ["*"])]))
        c = bearer(r, t)
        for _ in range(20):
            assert c.request("GET", "/v2/a/b/tags/list").status in (200, 404)
        m = c.request("GET", "/metrics")
        assert m.status == 200
        checks = re.search(r"^ringport_auth_token_signature_checks_total (\d+)$",
                           m.body.decode(), re.M)
        assert checks and int(checks.group(1)) == 1
    finally:
        r.cleanup()
        os.unlink(r.config_path)


def test_keys_from_a_jwks_file(minter, tmp_path):
    jwks = minter.jwks(str(tmp_path / "keys.json"), kinds=("ec256", "rsa", "ed25519"))
    r = start_with_config(f"""
[auth]
scheme = "token"
token_realm = "{REALM}"
token_service = "{SERVICE}"
token_issuer = "test-issuer"
token_jwks = "{jwks}"
""")
    try:
        for kind in ("ec256", "rsa", "ed25519"):
            t = minter.token(minter.claims(access=[("repository", "j/k", ["pull"])]), kind=kind,
                             header={"kid": "jwks-" + kind})
            resp = bearer(r, t).request("GET", "/v2/j/k/tags/list")
            assert resp.status == 404, (kind, resp)  # allowed; the repository is absent
        # A key not in the file (ec384) is refused.
        t = minter.token(minter.claims(access=[("repository", "j/k", ["pull"])]), kind="ec384",
                         header={"kid": "jwks-ec384"})
        assert challenge_of(bearer(r, t).request("GET", "/v2/j/k/tags/list"))["error"] == \
            "invalid_token"
    finally:
        r.cleanup()
        os.unlink(r.config_path)


# ---- the built-in issuer ------------------------------------------------------------

@pytest.fixture(scope="module")
def issuing():
    d = tempfile.mkdtemp(prefix="ringport-issuer-")
    path = htpasswd_file(d, {"alice": "a-pass", "bob": "b-pass"})
    r = start_with_config(f"""
[auth]
scheme = "token"
token_issue = true
token_service = "{SERVICE}"
htpasswd_path = "{path}"
failures_per_minute = 1000

[[access]]
who = ["anonymous"]
repositories = ["public/**"]
actions = ["pull"]

[[access]]
who = ["alice"]
repositories = ["**"]
actions = ["pull", "push", "delete", "catalog"]

[[access]]
who = ["bob"]
repositories = ["team/*"]
actions = ["pull"]
""")
    r.htpasswd = path
    yield r
    r.cleanup()
    os.unlink(r.config_path)
    shutil.rmtree(d, ignore_errors=True)


def claims_of(token):
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def get_token(r, auth=None, scopes=(), **params):
    params.setdefault("service", SERVICE)
    q = [("scope", s) for s in scopes] + list(params.items())
    return Client(r.host, auth=auth).request("GET", "/auth/token?" + urllib.parse.urlencode(q))


def test_the_issuer_grants_what_the_rules_allow(issuing):
    r = issuing
    ch = challenge_of(Client(r.host).request("GET", "/v2/"))
    assert ch["realm"] == f"http://{r.host}/auth/token" and ch["service"] == SERVICE
    resp = get_token(r, ("alice", "a-pass"),
                     ["repository:team/app:pull,push", "registry:catalog:*"])
    assert resp.status == 200, resp
    body = resp.json()
    assert body["token"] == body["access_token"] and body["expires_in"] == 300
    c = claims_of(body["token"])
    assert c["sub"] == "alice" and c["aud"] == SERVICE and c["iss"] == "ringport"
    assert {(a["type"], a["name"]): a["actions"] for a in c["access"]} == {
        ("repository", "team/app"): ["pull", "push"], ("registry", "catalog"): ["*"]}
    alice = bearer(r, body["token"])
    alice.push_image("team/app", "v1", layers=(b"issued",))
    assert alice.request("GET", "/v2/_catalog").status == 200
    # bob asks for more than he has: he gets pull only, and pushing fails.
    bob = get_token(r, ("bob", "b-pass"), ["repository:team/app:pull,push,delete"]).json()
    assert claims_of(bob["token"])["access"] == [
        {"type": "repository", "name": "team/app", "actions": ["pull"]}]
    assert bearer(r, bob["token"]).get_manifest("team/app", "v1").status == 200
    assert challenge_of(bearer(r, bob["token"]).request(
        "POST", "/v2/team/app/blobs/uploads/"))["error"] == "insufficient_scope"
    # Anonymous: what anonymous rules allow (public/ only); nothing granted
    # is left out of the token.
    anon = get_token(r, None, ["repository:team/app:pull", "repository:public/x:pull"]).json()
    assert claims_of(anon["token"])["sub"] == ""
    assert claims_of(anon["token"])["access"] == [
        {"type": "repository", "name": "public/x", "actions": ["pull"]}]
    # A wrong password: 401 with a Basic challenge, no token.
    wrong = get_token(r, ("alice", "nope"), ["repository:team/app:pull"])
    assert wrong.status == 401 and wrong.header("WWW-Authenticate").startswith("Basic ")
    assert get_token(r, ("alice", "a-pass"), service="other").status == 400


def test_oauth2_password_and_refresh_grants(issuing):
    r = issuing

    def post(**form):
        return Client(r.host).request("POST", "/auth/token",
                                      body=urllib.parse.urlencode(form).encode(),
                                      headers={"Content-Type":
                                               "application/x-www-form-urlencoded"})

    resp = post(grant_type="password", username="alice", password="a-pass", service=SERVICE,
                scope="repository:team/app:pull registry:catalog:*", access_type="offline",
                client_id="test")
    assert resp.status == 200, resp
    body = resp.json()
    assert body["token_type"] == "Bearer" and "refresh_token" in body
    assert body["scope"] == "repository:team/app:pull registry:catalog:*"
    # The refresh token makes new access tokens, and is no access token itself.
    assert challenge_of(bearer(r, body["refresh_token"]).request("GET", "/v2/"))["error"] == \
        "invalid_token"
    again = post(grant_type="refresh_token", refresh_token=body["refresh_token"],
                 service=SERVICE, scope="repository:team/app:pull", client_id="test")
    assert again.status == 200, again
    assert bearer(r, again.json()["access_token"]).request("GET", "/v2/").status == 200
    # Refused: a wrong password, an access token as refresh token, a bad grant.
    assert post(grant_type="password", username="alice", password="x",
                service=SERVICE).status == 401
    assert post(grant_type="refresh_token", refresh_token=body["access_token"],
                service=SERVICE).json()["error"] == "invalid_grant"
    assert post(grant_type="client_credentials").json()["error"] == "unsupported_grant_type"
    # GET with offline_token=true (what docker login asks) gives one too.
    off = get_token(r, ("bob", "b-pass"), [], offline_token="true", client_id="docker")
    assert "refresh_token" in off.json()


@pytest.mark.parametrize("text, why", [
    ('[auth]\nscheme = "token"\n', "auth.token_realm"),
    ('[auth]\nscheme = "token"\ntoken_realm = "https://x/t"\n', "needs keys to trust"),
    ('[auth]\nscheme = "token"\ntoken_realm = "https://x/t"\n'
     'token_rootcertbundle = "/nonexistent.pem"\n', "/nonexistent.pem"),
    ('[auth]\nscheme = "token"\ntoken_issue = true\ntoken_path = "/v2/token"\n',
     "token_path"),
])
def test_bad_token_settings_stop_startup(text, why):
    assert why in startup_refusal(text)


def test_mounts_follow_the_token_not_the_rules(registry, minter):
    """With token auth the token's grants decide what a mount may read: a
    token for me/x only cannot link team/app's blobs by mounting them."""
    team = bearer(registry, minter.token(minter.claims(
        access=[("repository", "team/app", ["pull"])])))
    layer = team.get_manifest("team/app", "v1").json()["layers"][0]["digest"]
    mine = bearer(registry, minter.token(minter.claims(
        access=[("repository", "me/x", ["pull", "push"])])))
    for q in (f"?mount={layer}&from=team/app", f"?mount={layer}"):
        resp = mine.request("POST", f"/v2/me/x/blobs/uploads/{q}")
        assert resp.status == 202, (q, resp)
        mine.request("DELETE", resp.header("Location"))
    assert mine.request("HEAD", f"/v2/me/x/blobs/{layer}").status == 404
    both = bearer(registry, minter.token(minter.claims(
        access=[("repository", "me/y", ["pull", "push"]), ("repository", "team/app", ["pull"])])))
    assert both.request("POST", f"/v2/me/y/blobs/uploads/?mount={layer}&from=team/app").status == 201
    assert both.request("POST", f"/v2/me/y/blobs/uploads/?mount={layer}").status == 201


def test_a_name_with_line_breaks_cannot_split_the_challenge(registry):
    from ringtest import rawhttp
    c = rawhttp.RawConn(registry.host)
    c.send_all(b"GET /v2/a%0d%0aSet-Cookie:%20x=1/manifests/t HTTP/1.1\r\nHost: x\r\n\r\n")
    resp = c.read_response()
    assert resp.status == 401
    assert resp.header("Set-Cookie") is None
    assert "scope" not in resp.header("WWW-Authenticate")
