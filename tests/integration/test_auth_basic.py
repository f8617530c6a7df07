# SPDX-License-Identifier: Apache-2.0
"""htpasswd Basic auth as Distribution's REGISTRY_AUTH=htpasswd: the
challenge, logins, the attack matrix for Basic credentials (each refused
with the right answer and the tree byte-identical), the htpasswd file
(bcrypt only, re-read when it changes), one bcrypt per credentials
however many requests, failures rate-limited per address."""
import base64
import os
import re
import shutil
import tempfile

import pytest

from ringtest.authtest import (htpasswd_file, set_password, start_with_config, startup_refusal,
                               tree_state)
from ringtest.client import Client
from ringtest.harness import Ringport, wait_until

REALM = "Registry Realm"
GOOD = ("alice", "correct horse")


@pytest.fixture
def auth_dir():
    d = tempfile.mkdtemp(prefix="ringport-auth-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def registry(auth_dir):
    """ringport with the compose-style environment of a registry:2 deployment."""
    path = htpasswd_file(auth_dir, {"alice": GOOD[1], "bob": "hunter2"})
    r = Ringport(env={"REGISTRY_AUTH": "htpasswd", "REGISTRY_AUTH_HTPASSWD_PATH": path,
                      "REGISTRY_AUTH_HTPASSWD_REALM": REALM,
                      "RINGPORT_AUTH_FAILURES_PER_MINUTE": "1000"})
    r.htpasswd = path
    r.start()
    r.wait_ready()
    yield r
    r.cleanup()


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def assert_challenged(resp):
    assert resp.status == 401, resp
    assert resp.header("WWW-Authenticate") == f'Basic realm="{REALM}"'
    assert resp.error_codes() == ["UNAUTHORIZED"]


def test_the_challenge_and_a_login(registry):
    anon = Client(registry.host)
    assert_challenged(anon.request("GET", "/v2/"))
    alice = Client(registry.host, auth=GOOD)
    assert alice.request("GET", "/v2/").status == 200
    # Pushes and pulls with the credentials; none without.
    body, digest = alice.push_image("team/app", "v1", layers=(b"one", b"two"))
    assert alice.get_manifest("team/app", "v1").body == body
    assert_challenged(anon.get_manifest("team/app", "v1"))
    assert_challenged(anon.request("POST", "/v2/team/app/blobs/uploads/"))
    assert_challenged(anon.request("GET", "/v2/_catalog"))
    # The access log names the user.
    assert wait_until(lambda: any("user=alice" in l and "PUT /v2/team/app/manifests/v1" in l
                                  for l in registry.err), 5)
    # Health and readiness stay open for load balancers.
    assert anon.request("GET", "/healthz").status == 200
    assert anon.request("GET", "/readyz").status == 200


BAD_HEADERS = [
    basic("alice", "wrong"),                      # a wrong password
    basic("mallory", "correct horse"),            # an unknown user
    basic("alice", ""),                           # an empty password
    basic("", "correct horse"),                   # no user
    "Basic",                                      # no payload
    "Basic !!!notbase64!!!",
    "Basic " + base64.b64encode(b"alicecorrect horse").decode(),  # no colon
    "Basic " + base64.b64encode(b"alice:correct\x00horse").decode(),  # a NUL inside
    "Basic YWxpY2U6Y29ycmVjdCBob3JzZQ",           # missing padding
    "Bearer eyJhbGciOiJub25lIn0.e30.",             # a token where Basic is expected
    "Digest username=\"alice\"",
    "basic",
    " ",
    "Basic " + "A" * 5000,                        # oversized
]


@pytest.mark.parametrize("header", BAD_HEADERS)
def test_bad_credentials_are_refused_and_change_nothing(registry, header):
    good = Client(registry.host, auth=GOOD)
    good.push_image("team/app", "v1", layers=(b"stored",))
    before = tree_state(registry.root)
    c = Client(registry.host, auth=header)
    probes = [("GET", "/v2/"), ("GET", "/v2/team/app/manifests/v1"),
              ("PUT", "/v2/team/app/manifests/v2"), ("DELETE", "/v2/team/app/manifests/v1"),
              ("POST", "/v2/team/app/blobs/uploads/"),
              ("POST", "/v2/team/app/blobs/uploads/?mount=sha256:" + "0" * 64 + "&from=x/y")]
    for method, path in probes:
        body = b'{"schemaVersion":2}' if method == "PUT" else None
        resp = c.request(method, path, body=body)
        assert_challenged(resp)
    assert tree_state(registry.root) == before
    assert good.get_manifest("team/app", "v1").status == 200  # still served


def test_a_changed_htpasswd_file_is_read_again(registry):
    alice = Client(registry.host, auth=GOOD)
    assert alice.request("GET", "/v2/").status == 200
    # A new user added to the file works without a restart (the file is
    # checked at most once a second); a changed password stops the old one.
    set_password(registry.htpasswd, "carol", "new one")
    carol = Client(registry.host, auth=("carol", "new one"))
    assert wait_until(lambda: carol.request("GET", "/v2/").status == 200, 5)
    set_password(registry.htpasswd, "alice", "changed")
    assert wait_until(lambda: alice.request("GET", "/v2/").status == 401, 5)
    assert Client(registry.host, auth=("alice", "changed")).request("GET", "/v2/").status == 200
    assert any("htpasswd file" in l and "reloaded" in l for l in registry.err)
    # A broken file keeps the users loaded before.
    with open(registry.htpasswd, "a") as f:
        f.write("eve:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")
    # (the file is looked at when a login needs it)
    assert wait_until(lambda: carol.request("GET", "/v2/").status == 200 and any(
        "keeping the users loaded before" in l for l in registry.err), 5)
    assert carol.request("GET", "/v2/").status == 200


def metrics_config(path, extra=""):
    return f"""
[auth]
scheme = "htpasswd"
htpasswd_path = "{path}"
realm = "{REALM}"
{extra}
[[access]]
who = ["alice"]
repositories = ["**"]
actions = ["pull", "push", "delete", "catalog", "metrics"]
"""


def metric(client, name):
    r = client.request("GET", "/metrics")
    assert r.status == 200, r
    m = re.search(rf"^{name} (\d+)$", r.body.decode(), re.M)
    return int(m.group(1)) if m else None


def test_a_50_layer_pull_pays_one_bcrypt(auth_dir):
    path = htpasswd_file(auth_dir, {"alice": GOOD[1]}, cost=8)
    r = start_with_config(metrics_config(path))
    try:
        alice = Client(r.host, auth=GOOD)
        layers = tuple(b"layer %d" % i for i in range(50))
        alice.push_image("big/image", "v1", layers=layers)
        before = metric(alice, "ringport_auth_bcrypt_verifications_total")
        # A fresh client pulling: /v2/, the manifest, the config, 50 layers.
        puller = Client(r.host, auth=GOOD)
        assert puller.request("GET", "/v2/").status == 200
        m = puller.get_manifest("big/image", "v1").json()
        assert puller.get_blob("big/image", m["config"]["digest"]).status == 200
        for layer in m["layers"]:
            assert puller.get_blob("big/image", layer["digest"]).status == 200
        after = metric(alice, "ringport_auth_bcrypt_verifications_total")
        # The push made the first check; the pull made none (cached).
        assert before == 1 and after == 1, (before, after)
        # A wrong password always runs bcrypt (failures are never cached).
        Client(r.host, auth=("alice", "nope")).request("GET", "/v2/")
        assert metric(alice, "ringport_auth_bcrypt_verifications_total") == 2
        assert metric(alice, "ringport_auth_failures_total") == 1
    finally:
        r.cleanup()
        os.unlink(r.config_path)


def test_failures_are_rate_limited_per_address(auth_dir):
    path = htpasswd_file(auth_dir, {"alice": GOOD[1]})
    r = start_with_config(metrics_config(path, "failures_per_minute = 3"))
    try:
        bad = Client(r.host, auth=("alice", "guess"))
        for _ in range(3):
            assert_challenged(bad.request("GET", "/v2/"))
        limited = bad.request("GET", "/v2/")
        assert limited.status == 429 and limited.error_codes() == ["TOOMANYREQUESTS"]
        assert int(limited.header("Retry-After")) >= 1
        # The right password from the same address waits too: no guessing
        # around the limit.
        assert Client(r.host, auth=GOOD).request("GET", "/v2/").status == 429
    finally:
        r.cleanup()
        os.unlink(r.config_path)


@pytest.mark.parametrize("line, why", [
    ("alice:$apr1$abcdefgh$0123456789abcdefghijkl", "line 2: user 'alice' has Apache MD5"),
    ("alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "line 2: user 'alice' has SHA-1"),
    ("alice:plaintext", "line 2: user 'alice' has an unknown scheme"),
    ("alice", "line 2: expected user:hash"),
])
def test_an_htpasswd_file_with_another_scheme_stops_startup(auth_dir, line, why):
    path = os.path.join(auth_dir, "htpasswd")
    with open(path, "w") as f:
        f.write("# users\n" + line + "\n")
    reason = startup_refusal(env={"REGISTRY_AUTH": "htpasswd",
                                  "REGISTRY_AUTH_HTPASSWD_PATH": path})
    assert why in reason and path in reason


def test_a_missing_htpasswd_file_stops_startup(auth_dir):
    path = os.path.join(auth_dir, "absent")
    assert path in startup_refusal(env={"REGISTRY_AUTH": "htpasswd",
                                        "REGISTRY_AUTH_HTPASSWD_PATH": path})


def test_ringport_htpasswd_keeps_other_lines_and_replaces_the_user(auth_dir):
    path = os.path.join(auth_dir, "htpasswd")
    with open(path, "w") as f:
        f.write("# managed by hand\nbob:$2y$04$abcdefghijklmnopqrstuu5Nj4kkbMz2zmfKrtmCgUR4bHQjGUfKa\n")
    os.chmod(path, 0o640)
    set_password(path, "alice", "one")
    set_password(path, "alice", "two")
    with open(path) as f:
        lines = f.read().splitlines()
    assert lines[0] == "# managed by hand" and lines[1].startswith("bob:$2y$04$")
    assert len([l for l in lines if l.startswith("alice:")]) == 1
    assert os.stat(path).st_mode & 0o777 == 0o640


def test_a_file_made_by_apache_htpasswd_works(auth_dir):
    """Distribution's documented way: `htpasswd -Bbn user password`."""
    import subprocess
    path = os.path.join(auth_dir, "htpasswd")
    line = subprocess.run(["htpasswd", "-Bbn", "-C", "5", "dave", "pw from apache"],
                          capture_output=True, text=True, check=True, timeout=60).stdout
    with open(path, "w") as f:
        f.write(line)
    r = Ringport(env={"REGISTRY_AUTH": "htpasswd", "REGISTRY_AUTH_HTPASSWD_PATH": path})
    r.start()
    try:
        r.wait_ready()
        assert Client(r.host, auth=("dave", "pw from apache")).request("GET", "/v2/").status == 200
        assert_challenged_any(Client(r.host, auth=("dave", "pw")).request("GET", "/v2/"))
    finally:
        r.cleanup()


def assert_challenged_any(resp):
    assert resp.status == 401 and resp.header("WWW-Authenticate", "").startswith("Basic realm=")


def test_concurrent_guesses_count_and_good_logins_are_not_locked_out(auth_dir):
    from concurrent.futures import ThreadPoolExecutor
    path = htpasswd_file(auth_dir, {"alice": GOOD[1]}, cost=8)
    r = start_with_config(metrics_config(path, "failures_per_minute = 3"))
    try:
        alice = Client(r.host, auth=GOOD)
        assert alice.request("GET", "/v2/").status == 200  # remembered as good
        with ThreadPoolExecutor(max_workers=12) as pool:
            answers = list(pool.map(
                lambda i: Client(r.host, auth=("alice", f"guess {i}")).request(
                    "GET", "/v2/").status, range(12)))
        # The budget is taken before each check: at most 3 ran at all.
        assert answers.count(401) <= 3 and answers.count(429) >= 9, answers
        assert metric(alice, "ringport_auth_bcrypt_verifications_total") <= 4
        # The remembered login is not locked out by the guesses.
        assert alice.request("GET", "/v2/").status == 200
    finally:
        r.cleanup()
        os.unlink(r.config_path)


def test_an_htpasswd_cost_too_high_to_check_stops_startup(auth_dir):
    path = os.path.join(auth_dir, "htpasswd")
    with open(path, "w") as f:
        f.write("alice:$2y$19$abcdefghijklmnopqrstuuPp7HPfoAs8I2dCQCQ/fW7zEJv8I8C8e\n")
    assert "bcrypt cost 19" in startup_refusal(env={"REGISTRY_AUTH": "htpasswd",
                                                    "REGISTRY_AUTH_HTPASSWD_PATH": path})
