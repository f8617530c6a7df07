# SPDX-License-Identifier: Apache-2.0
"""Access rules ([[access]], [groups]) over htpasswd users and client
certificates: who may pull, push, delete, list and administer what; the
catalog shows only what the caller may pull; mounts do not reveal blobs
the caller may not pull; read-only mode. Every refused request leaves the
tree byte-identical."""
import os
import shutil
import tempfile

import pytest

from ringtest.authtest import htpasswd_file, start_with_config, startup_refusal, tree_state
from ringtest.client import Client, sha256
from ringtest.harness import Ringport
from ringtest.testca import issue, make_ca

USERS = {"alice": "a-pass", "bob": "b-pass", "bot1": "ci-pass"}

RULES = """
[groups]
ci = ["bot1"]

[[access]]
who = ["anonymous"]
repositories = ["public/**"]
actions = ["pull"]

[[access]]
who = ["*"]
repositories = ["public/**"]
actions = ["pull", "catalog"]

[[access]]
who = ["group:ci"]
repositories = ["ci/**"]
actions = ["pull", "push"]

[[access]]
who = ["bob"]
repositories = ["team/*"]
actions = ["pull"]

[[access]]
who = ["alice"]
repositories = ["**"]
actions = ["pull", "push", "delete", "catalog", "admin", "metrics"]
"""


@pytest.fixture(scope="module")
def lab():
    d = tempfile.mkdtemp(prefix="ringport-access-")
    path = htpasswd_file(d, USERS)
    r = start_with_config(f"""
[auth]
scheme = "htpasswd"
htpasswd_path = "{path}"
failures_per_minute = 1000
{RULES}""")
    users = {u: Client(r.host, auth=(u, p)) for u, p in USERS.items()}
    alice = users["alice"]
    alice.push_image("public/app", "v1", layers=(b"public layer",))
    alice.push_image("team/app", "v1", layers=(b"team layer",))
    alice.push_image("secret/vault", "v1", layers=(b"the secret layer",))
    users["bot1"].push_image("ci/build", "v1", layers=(b"ci layer",))
    yield r, users, Client(r.host)
    r.cleanup()
    os.unlink(r.config_path)
    shutil.rmtree(d, ignore_errors=True)


def refused(resp, status):
    assert resp.status == status, resp
    assert resp.error_codes() == (["UNAUTHORIZED"] if status == 401 else ["DENIED"])


def test_who_may_do_what(lab):
    r, users, anon = lab
    alice, bob, bot = users["alice"], users["bob"], users["bot1"]
    before = tree_state(r.root)
    # anonymous: pull public only
    assert anon.get_manifest("public/app", "v1").status == 200
    refused(anon.get_manifest("team/app", "v1"), 401)
    refused(anon.request("GET", "/v2/"), 401)
    refused(anon.request("POST", "/v2/public/app/blobs/uploads/"), 401)
    refused(anon.request("GET", "/v2/_catalog"), 401)
    # bob: pull team/* and public, nothing else
    assert bob.get_manifest("team/app", "v1").status == 200
    assert bob.request("GET", "/v2/team/app/tags/list").status == 200
    refused(bob.request("POST", "/v2/team/app/blobs/uploads/"), 403)
    refused(bob.request("DELETE", "/v2/team/app/manifests/v1"), 403)
    refused(bob.put_manifest("team/app", "v2", b"{}", "application/json"), 403)
    refused(bob.get_manifest("secret/vault", "v1"), 403)
    refused(bob.get_manifest("ci/build", "v1"), 403)
    refused(bob.request("GET", "/v2/secret/vault/tags/list"), 403)
    refused(bob.request("GET", "/ringport/v1/status"), 403)
    refused(bob.request("GET", "/metrics"), 403)
    # bot1 (group ci): push ci, not team
    refused(bot.get_manifest("team/app", "v1"), 403)
    refused(bot.request("POST", "/v2/team/app/blobs/uploads/"), 403)
    assert tree_state(r.root) == before  # every refusal above changed nothing
    # alice: everything, the admin API and the metrics too
    assert alice.request("GET", "/ringport/v1/status").status == 200
    assert alice.request("GET", "/metrics").status == 200
    assert alice.request("DELETE", "/v2/secret/vault/manifests/v1").status == 202


def test_the_catalog_lists_only_what_the_caller_may_pull(lab):
    r, users, anon = lab

    def names(client, n=None):
        got, last = [], ""
        for _ in range(20):  # pages of n, following Link
            q = f"?n={n}&last={last}" if n else ""
            resp = client.request("GET", "/v2/_catalog" + q)
            assert resp.status == 200, resp
            page = resp.json()["repositories"]
            got += page
            if not n or not resp.header("Link"):
                return got
            last = page[-1]
        return got

    assert set(names(users["alice"])) >= {"public/app", "team/app", "ci/build"}
    assert names(users["bob"]) == ["public/app", "team/app"]
    assert names(users["bot1"]) == ["ci/build", "public/app"]
    assert names(users["bob"], n=1) == ["public/app", "team/app"]  # paged the same


def test_mounts_do_not_reveal_blobs_the_caller_may_not_pull(lab):
    r, users, anon = lab
    alice, bot = users["alice"], users["bot1"]
    secret = b"a layer only alice may pull"
    d = alice.push_blob("secret/probe", secret)
    absent = sha256(b"never pushed anywhere")
    before = tree_state(r.root)

    def mount(client, digest, source):
        q = f"?mount={digest}" + (f"&from={source}" if source else "")
        return client.request("POST", f"/v2/ci/probe/blobs/uploads/{q}")

    answers = [mount(bot, d, "secret/probe"), mount(bot, absent, "secret/probe"),
               mount(bot, d, None), mount(bot, absent, None)]
    # Every probe is an upload session: whether the blob exists is not told.
    for resp in answers:
        assert resp.status == 202, resp
        assert "/blobs/uploads/" in resp.header("Location")
        assert resp.header("Docker-Content-Digest") is None
        bot.request("DELETE", resp.header("Location"))
    assert bot.request("HEAD", f"/v2/ci/probe/blobs/{d}").status == 404
    # Nothing was linked: outside the upload sessions the probes opened (and
    # cancelled) in ci/probe, where bot1 may push, the tree is as it was.
    after = tree_state(r.root)
    assert not [k for k in after if k.startswith("repositories/ci/probe/_layers")]
    assert {k: v for k, v in after.items() if not k.startswith("repositories/ci/probe/")} == \
        {k: v for k, v in before.items() if not k.startswith("repositories/ci/probe/")}
    # alice may pull the source: her mounts link the blob.
    assert mount(alice, d, "secret/probe").status == 201
    assert alice.request("POST", f"/v2/team/other/blobs/uploads/?mount={d}").status == 201


def test_mounts_without_from_can_be_switched_off(tmp_path):
    path = htpasswd_file(str(tmp_path), {"alice": "a"})
    r = start_with_config(f"""
[auth]
scheme = "htpasswd"
htpasswd_path = "{path}"
mount_without_from = false
""")
    try:
        alice = Client(r.host, auth=("alice", "a"))
        d = alice.push_blob("one/repo", b"shared layer")
        assert alice.request("POST", f"/v2/two/repo/blobs/uploads/?mount={d}").status == 202
        assert alice.request("POST",
                             f"/v2/two/repo/blobs/uploads/?mount={d}&from=one/repo").status == 201
    finally:
        r.cleanup()
        os.unlink(r.config_path)


def test_read_only_mode_serves_reads_and_refuses_writes(tmp_path):
    root = str(tmp_path / "root")
    os.mkdir(root)
    w = Ringport(root=root).start()
    c = Client(w.host)
    body, digest = c.push_image("lib/app", "v1", layers=(b"kept",))
    w.cleanup()
    r = Ringport(root=root, env={"REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED": "true"})
    r.start()
    r.wait_ready()
    try:
        c = Client(r.host)
        before = tree_state(root)
        assert c.get_manifest("lib/app", "v1").body == body
        for method, path in (("POST", "/v2/lib/app/blobs/uploads/"),
                             ("PUT", "/v2/lib/app/manifests/v2"),
                             ("DELETE", f"/v2/lib/app/manifests/{digest}"),
                             ("DELETE", "/v2/lib/app/manifests/v1")):
            resp = c.request(method, path, body=body if method == "PUT" else None)
            assert resp.status == 405 and resp.error_codes() == ["UNSUPPORTED"], resp
            assert b"read-only" in resp.body
        assert tree_state(root) == before
    finally:
        r.cleanup()


@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="ringport-access-pki-")
    ca, cert, key = make_ca(d)
    yield {"dir": d, "ca": ca, "cert": cert, "key": key,
           "alice": issue(d, "alice", "alice", client=True),
           "bob": issue(d, "bob", "bob", client=True)}
    shutil.rmtree(d, ignore_errors=True)


def tls_config(pki, scheme, extra=""):
    return f"""
[tls]
certificate = "{pki['cert']}"
key = "{pki['key']}"
client_cas = "{pki['ca']}"
client_auth = "optional"

[auth]
scheme = "{scheme}"
{extra}
[[access]]
who = ["alice"]
repositories = ["**"]
actions = ["pull", "push"]

[[access]]
who = ["bob"]
repositories = ["**"]
actions = ["pull"]
"""


def client_for(r, pki, who=None):
    import ssl
    ctx = ssl.create_default_context(cafile=pki["ca"])
    if who:
        ctx.load_cert_chain(*pki[who])
    return Client(r.host, ctx)


def test_client_certificates_name_the_user(pki):
    r = start_with_config(tls_config(pki, "certificate"), tls_ca=pki["ca"])
    try:
        alice, bob, nobody = (client_for(r, pki, w) for w in ("alice", "bob", None))
        before = tree_state(r.root)
        resp = nobody.request("GET", "/v2/x/manifests/v1")
        assert resp.status == 403 and b"client certificate is required" in resp.body
        refused(bob.request("POST", "/v2/x/blobs/uploads/"), 403)
        assert tree_state(r.root) == before
        body, _ = alice.push_image("x", "v1", layers=(b"by certificate",))
        assert bob.get_manifest("x", "v1").body == body
    finally:
        r.cleanup()
        os.unlink(r.config_path)


def test_certificates_and_passwords_together(pki, tmp_path):
    path = htpasswd_file(str(tmp_path), {"carol": "c"})
    extra = f'htpasswd_path = "{path}"\n'
    r = start_with_config(tls_config(pki, "htpasswd", extra) +
                          '\n[[access]]\nwho = ["carol"]\nrepositories = ["**"]\n'
                          'actions = ["pull"]\n', tls_ca=pki["ca"])
    try:
        alice = client_for(r, pki, "alice")
        alice.push_image("y", "v1", layers=(b"by certificate",))
        carol = client_for(r, pki)
        carol.authorization = Client(r.host, auth=("carol", "c")).authorization
        assert carol.get_manifest("y", "v1").status == 200
        refused(carol.request("POST", "/v2/y/blobs/uploads/"), 403)
        nobody = client_for(r, pki)
        resp = nobody.get_manifest("y", "v1")
        assert resp.status == 401 and resp.header("WWW-Authenticate").startswith("Basic ")
    finally:
        r.cleanup()
        os.unlink(r.config_path)


@pytest.mark.parametrize("text, why", [
    ('[auth]\nscheme = "htpasswd"\n', "auth.scheme htpasswd needs auth.htpasswd_path"),
    ('[[access]]\nwho = ["a"]\nrepositories = ["**"]\nactions = ["pull"]\n',
     "[[access]] rules need an auth.scheme"),
    ('[auth]\nscheme = "kerberos"\n', "auth.scheme 'kerberos'"),
    ('[auth]\nscheme = "certificate"\n', "auth.scheme certificate needs tls.client_cas"),
])
def test_bad_auth_settings_stop_startup(text, why):
    assert why in startup_refusal(text)
