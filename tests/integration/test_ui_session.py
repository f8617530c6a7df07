# SPDX-License-Identifier: Apache-2.0
"""The web UI's sign-in (/ringport/v1/session) and its CSRF defences,
through the real binary: a password as Basic auth checks it gives an
HttpOnly, SameSite=Strict session cookie (Secure over TLS); the access
rules decide for the session's user; every change from a session needs its
CSRF token; a change a page of another site asks for is refused, signed in
or not; signing out ends the session. The browser tests sign in through
the UI itself.
"""
import json
import os
import shutil
import ssl
import tempfile

import pytest

from ringtest.authtest import htpasswd_file, set_password, start_with_config
from ringtest.client import Client, sha256
from ringtest.harness import Ringport, free_port, wait_until
from ringtest.oci import OCI_CONFIG, OCI_MANIFEST, descriptor, dumps, image_config
from ringtest.openapi import check
from ringtest.testca import issue, make_ca

RULES = '''
[[access]]
who = ["alice"]
repositories = ["**"]
actions = ["pull", "push", "delete", "catalog", "admin"]

[[access]]
who = ["bob"]
repositories = ["team/**"]
actions = ["pull"]
'''


def cookie_of(r):
    v = r.header("Set-Cookie")
    assert v, r
    return v


def session_cookie(r):
    return cookie_of(r).split(";", 1)[0]


def sign_in(c, user, password, headers=None):
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    return c.request("POST", "/ringport/v1/session",
                     body=json.dumps({"username": user, "password": password}).encode(),
                     headers=h)


def push(c, repo, tag):
    cfg = image_config()
    c.push_blob(repo, cfg)
    body = dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                  "config": descriptor(OCI_CONFIG, cfg), "layers": []})
    assert c.put_manifest(repo, tag, body, OCI_MANIFEST).status == 201
    return sha256(body)


@pytest.fixture(scope="module")
def srv():
    d = tempfile.mkdtemp(prefix="ringport-ui-session-")
    path = htpasswd_file(d, {"alice": "alice-pass", "bob": "bob-pass"})
    r = start_with_config(f'[auth]\nscheme = "htpasswd"\nhtpasswd_path = "{path}"\n'
                          f'[audit]\npath = "{d}/audit.jsonl"\n' + RULES)
    r.audit_path = f"{d}/audit.jsonl"
    admin = Client(r.host, auth=("alice", "alice-pass"))
    push(admin, "team/app", "v1")
    push(admin, "team/app", "v2")
    push(admin, "other/app", "v1")
    yield r
    r.stop()
    shutil.rmtree(d, ignore_errors=True)


def test_who_is_signed_in_and_whether_sign_in_is_offered(srv):
    c = Client(srv.host)
    r = c.request("GET", "/ringport/v1/session")
    assert r.status == 200, r
    assert r.json() == {"user": None, "via": None, "csrf": None, "expires_at": None,
                        "auth": "htpasswd", "sign_in": {"available": True, "reason": None},
                        "registry": None}
    assert r.header("Cache-Control") == "no-store"
    check("GET", "/ringport/v1/session", r)  # docs/openapi.json


def test_a_wrong_password_gets_no_session_and_no_browser_dialog(srv):
    c = Client(srv.host)
    r = sign_in(c, "alice", "wrong")
    assert r.status == 401, r
    assert r.error_codes() == ["UNAUTHORIZED"]
    assert r.header("Set-Cookie") is None
    assert r.header("WWW-Authenticate") is None
    # The UI's API requests get no challenge either; other clients do.
    ui = c.request("GET", "/ringport/v1/repositories", headers={"X-Ringport-UI": "1"})
    assert ui.status == 401 and ui.header("WWW-Authenticate") is None, ui
    plain = c.request("GET", "/ringport/v1/repositories")
    assert plain.status == 401 and plain.header("WWW-Authenticate").startswith("Basic"), plain
    # Only JSON: a form another site could post is refused before any check.
    form = c.request("POST", "/ringport/v1/session", body=b"username=alice&password=alice-pass",
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status == 400, form
    for bad in (b"{", b"[]", b'{"username": "alice"}', b'{"username": 1, "password": "x"}'):
        r = c.request("POST", "/ringport/v1/session", body=bad,
                      headers={"Content-Type": "application/json"})
        assert r.status == 400, (bad, r)
    # The failed sign-in is in the audit log, with the name tried.
    records = [json.loads(x) for x in open(srv.audit_path)]
    failed = [x for x in records if x.get("action") == "sign_in" and x.get("status") == 401]
    assert failed and failed[-1]["user"] == "alice" and failed[-1]["outcome"] == "failed", \
        records[-3:]


def test_a_session_cookie_reads_by_the_rules_and_changes_only_with_its_csrf_token(srv):
    c = Client(srv.host)
    r = sign_in(c, "alice", "alice-pass")
    assert r.status == 200, r
    attrs = [a.strip() for a in cookie_of(r).split(";")]
    assert attrs[0].startswith("ringport_session=") and len(attrs[0]) > 40
    assert {"Path=/", "HttpOnly", "SameSite=Strict", "Max-Age=3600"} <= set(attrs), attrs
    assert "Secure" not in attrs  # plain HTTP on loopback
    body = check("POST", "/ringport/v1/session", r)
    assert body["user"] == "alice" and body["via"] == "session" and len(body["csrf"]) > 30
    jar = {"Cookie": session_cookie(r)}
    me = check("GET", "/ringport/v1/session",
               c.request("GET", "/ringport/v1/session", headers=jar))
    assert me["user"] == "alice" and me["csrf"] == body["csrf"]
    lst = c.request("GET", "/ringport/v1/repositories", headers=jar)
    assert lst.status == 200 and lst.json()["total"] == 2, lst
    assert c.request("GET", "/v2/team/app/tags/list", headers=jar).status == 200

    # A change: refused without the CSRF token, or with a wrong one.
    path = "/ringport/v1/repositories/team/app/-/tags/v2"
    for extra in ({}, {"X-Ringport-CSRF": "x" * len(body["csrf"])}, {"X-Ringport-CSRF": ""}):
        r = c.request("DELETE", path, headers={**jar, **extra})
        assert r.status == 403 and r.error_codes() == ["DENIED"], (extra, r)
    assert c.request("GET", "/v2/team/app/manifests/v2", headers=jar).status == 200
    # ... and done with it.
    ok = c.request("DELETE", path, headers={**jar, "X-Ringport-CSRF": body["csrf"]})
    assert ok.status < 300, ok
    assert c.request("GET", "/v2/team/app/manifests/v2", headers=jar).status == 404


def test_a_change_asked_by_another_sites_page_is_refused(srv):
    c = Client(srv.host)
    r = sign_in(c, "alice", "alice-pass")
    jar = {"Cookie": session_cookie(r), "X-Ringport-CSRF": r.json()["csrf"]}
    for extra in ({"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                  {"Origin": "http://evil.example"}, {"Origin": "null"},
                  {"Origin": f"http://127.0.0.1:{srv.port + 1}"}):
        r = c.request("POST", "/ringport/v1/gc?dry_run=true", headers={**jar, **extra})
        assert r.status == 403 and r.error_codes() == ["DENIED"], (extra, r)
    assert c.request("GET", "/ringport/v1/gc", headers=jar).json()["phase"] == "idle"
    # The UI's own origin, and clients that send neither header, are served.
    same = c.request("POST", "/ringport/v1/gc?dry_run=true",
                     headers={**jar, "Origin": f"http://{srv.host}", "Sec-Fetch-Site": "same-origin"})
    assert same.status == 202, same
    # Reads are never refused for their origin (a page may link here).
    assert c.request("GET", "/ringport/v1/session", headers={"Sec-Fetch-Site": "cross-site"}).status == 200


def test_a_sessions_user_gets_only_what_the_rules_give(srv):
    c = Client(srv.host)
    r = sign_in(c, "bob", "bob-pass")
    assert r.status == 200, r
    jar = {"Cookie": session_cookie(r), "X-Ringport-CSRF": r.json()["csrf"]}
    assert c.request("GET", "/v2/team/app/tags/list", headers=jar).status == 200
    assert c.request("GET", "/v2/other/app/tags/list", headers=jar).status == 403
    assert c.request("GET", "/ringport/v1/status", headers=jar).status == 403
    r = c.request("DELETE", "/ringport/v1/repositories/team/app/-/tags/v1", headers=jar)
    assert r.status == 403, r
    assert c.request("GET", "/v2/team/app/manifests/v1", headers=jar).status == 200


def test_signing_out_ends_the_session(srv):
    c = Client(srv.host)
    r = sign_in(c, "alice", "alice-pass")
    jar = {"Cookie": session_cookie(r)}
    csrf = r.json()["csrf"]
    assert c.request("DELETE", "/ringport/v1/session", headers=jar).status == 403  # no token
    out = c.request("DELETE", "/ringport/v1/session", headers={**jar, "X-Ringport-CSRF": csrf})
    assert out.status == 204, out
    assert "Max-Age=0" in cookie_of(out)
    assert c.request("GET", "/ringport/v1/repositories", headers=jar).status == 401
    assert c.request("GET", "/ringport/v1/session", headers=jar).json()["user"] is None
    # A made-up or damaged cookie is no one.
    for bad in ("ringport_session=abc", "ringport_session=", "a=b; ringport_session=" + "A" * 43):
        assert c.request("GET", "/ringport/v1/repositories", headers={"Cookie": bad}).status == 401


def test_without_authentication_sign_in_is_not_offered_and_cross_site_changes_are_refused():
    r = Ringport().start()
    try:
        c = Client(r.host)
        s = c.request("GET", "/ringport/v1/session").json()
        assert s["auth"] == "none" and s["sign_in"]["available"] is False
        assert "no authentication" in s["sign_in"]["reason"]
        assert sign_in(c, "a", "b").status == 405
        refused = c.request("POST", "/ringport/v1/gc?dry_run=true",
                            headers={"Sec-Fetch-Site": "cross-site"})
        assert refused.status == 403, refused
        assert c.request("GET", "/ringport/v1/gc").json()["phase"] == "idle"
    finally:
        r.stop()


def test_over_tls_the_cookie_is_secure_and_a_client_certificate_signs_in_by_itself():
    d = tempfile.mkdtemp(prefix="ringport-ui-tls-")
    try:
        ca, cert, key = make_ca(d)
        alice = issue(d, "alice", "alice", client=True)
        path = htpasswd_file(d, {"carol": "carol-pass"})
        r = start_with_config(
            f'[tls]\ncertificate = "{cert}"\nkey = "{key}"\nclient_cas = "{ca}"\n'
            f'client_auth = "optional"\n[auth]\nscheme = "htpasswd"\nhtpasswd_path = "{path}"\n'
            '[[access]]\nwho = ["alice", "carol"]\nrepositories = ["**"]\n'
            'actions = ["pull", "push", "delete", "catalog", "admin"]\n', tls_ca=ca)
        try:
            plain = Client(r.host, ssl.create_default_context(cafile=ca))
            s = sign_in(plain, "carol", "carol-pass")
            assert s.status == 200, s
            attrs = [a.strip() for a in cookie_of(s).split(";")]
            # __Host-: a browser takes it only from a secure page, for Path=/
            # and no Domain, so no sibling host or plain page can plant one.
            assert attrs[0].startswith("__Host-ringport_session=") and "Secure" in attrs, attrs
            jar = {"Cookie": attrs[0]}
            assert plain.request("GET", "/ringport/v1/repositories", headers=jar).status == 200
            # The plain name is not read over TLS.
            planted = {"Cookie": attrs[0].replace("__Host-", "")}
            assert plain.request("GET", "/ringport/v1/repositories",
                                 headers=planted).status == 401
            ctx = ssl.create_default_context(cafile=ca)
            ctx.load_cert_chain(*alice)
            cert_client = Client(r.host, ctx)
            me = cert_client.request("GET", "/ringport/v1/session").json()
            assert me["user"] == "alice" and me["via"] == "certificate" and me["csrf"], me
            # A browser's change (it sends Sec-Fetch-Site) needs that token;
            # other clients with the certificate need none.
            path = "/ringport/v1/gc?dry_run=true"
            browser = {"Sec-Fetch-Site": "same-origin"}
            assert cert_client.request("POST", path, headers=browser).status == 403
            ok = cert_client.request("POST", path,
                                     headers={**browser, "X-Ringport-CSRF": me["csrf"]})
            assert ok.status == 202, ok
        finally:
            r.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_a_changed_password_or_a_new_sign_in_ends_the_session(tmp_path):
    path = htpasswd_file(str(tmp_path), {"dave": "dave-pass"})
    r = start_with_config(f'[auth]\nscheme = "htpasswd"\nhtpasswd_path = "{path}"\n'
                          '[[access]]\nwho = ["dave"]\nrepositories = ["**"]\n'
                          'actions = ["pull", "catalog"]\n')
    try:
        c = Client(r.host)
        first = {"Cookie": session_cookie(sign_in(c, "dave", "dave-pass"))}
        assert c.request("GET", "/ringport/v1/repositories", headers=first).status == 200
        # Signing in again from the same browser ends the session it brought.
        second = {"Cookie": session_cookie(sign_in(c, "dave", "dave-pass", headers=first))}
        assert second != first
        assert c.request("GET", "/ringport/v1/repositories", headers=first).status == 401
        assert c.request("GET", "/ringport/v1/repositories", headers=second).status == 200
        set_password(path, "dave", "dave-new-pass")
        assert wait_until(lambda: c.request("GET", "/ringport/v1/repositories",
                                            headers=second).status == 401, 10)
        assert sign_in(c, "dave", "dave-new-pass").status == 200
    finally:
        r.stop()


def test_no_password_sign_in_where_the_scheme_takes_none(tmp_path):
    # Certificates only, with an htpasswd file configured anyway: the
    # password must not become a way in.
    ca, cert, key = make_ca(str(tmp_path))
    path = htpasswd_file(str(tmp_path), {"eve": "eve-pass"})
    r = start_with_config(
        f'[tls]\ncertificate = "{cert}"\nkey = "{key}"\nclient_cas = "{ca}"\n'
        f'client_auth = "optional"\n[auth]\nscheme = "certificate"\nhtpasswd_path = "{path}"\n'
        '[[access]]\nwho = ["eve"]\nrepositories = ["**"]\nactions = ["pull", "catalog"]\n',
        tls_ca=ca)
    try:
        c = Client(r.host, ssl.create_default_context(cafile=ca))
        s = c.request("GET", "/ringport/v1/session").json()
        assert s["sign_in"]["available"] is False and "certificate" in s["sign_in"]["reason"], s
        refused = sign_in(c, "eve", "eve-pass")
        assert refused.status == 405 and refused.header("Set-Cookie") is None, refused
    finally:
        r.stop()


def test_the_ui_off_has_no_sessions():
    fd, cfg = tempfile.mkstemp(suffix=".toml")
    with os.fdopen(fd, "w") as f:
        f.write("[ui]\nenabled = false\n")
    r = Ringport(config=cfg).start()
    try:
        assert Client(r.host).request("GET", "/ringport/v1/session").status == 404
    finally:
        r.stop()
        os.unlink(cfg)


def test_the_ui_on_an_address_of_its_own_serves_the_ui_and_the_admin_api_only(tmp_path):
    port = free_port()
    path = htpasswd_file(str(tmp_path), {"alice": "alice-pass", "bob": "bob-pass"})
    r = start_with_config(f'[ui]\nlisten = "127.0.0.1:{port}"\n'
                          f'[auth]\nscheme = "htpasswd"\nhtpasswd_path = "{path}"\n' + RULES)
    try:
        assert wait_until(lambda: f"ringport: web UI on 127.0.0.1:{port}\n" in r.out, 5), r.out
        registry = Client(r.host, auth=("alice", "alice-pass"))
        push(registry, "team/app", "v1")
        ui = Client(f"127.0.0.1:{port}")
        page = ui.request("GET", "/ui/repositories/team/app")
        assert page.status == 200 and b"/ui/assets/app.js?v=" in page.body, page
        assert "frame-ancestors 'none'" in page.header("Content-Security-Policy")
        root = ui.request("GET", "/")
        assert root.status == 308 and root.header("Location") == "/ui/", root
        # Of the registry's API only blob reads (the UI reads an image's
        # config), even with credentials.
        ui_alice = Client(f"127.0.0.1:{port}", auth=("alice", "alice-pass"))
        config = json.loads(registry.request("GET", "/v2/team/app/manifests/v1", headers={
            "Accept": OCI_MANIFEST}).body)["config"]["digest"]
        blob = f"/v2/team/app/blobs/{config}"
        assert ui_alice.request("GET", blob).body == registry.request("GET", blob).body
        assert ui.request("GET", blob).status == 401
        for method, p in (("GET", "/v2/"), ("GET", "/v2/_catalog"),
                          ("GET", "/v2/team/app/tags/list"), ("GET", "/v2/team/app/manifests/v1"),
                          ("DELETE", blob), ("POST", "/v2/team/app/blobs/uploads/"),
                          ("GET", "/metrics")):
            x = ui_alice.request(method, p)
            assert x.status == 404 and x.error_codes() == ["NOT_FOUND"], (p, x)
            assert f"port {r.port}" in x.json()["errors"][0]["detail"], x
        # Sign-in, the rules and CSRF as on the registry's address.
        assert ui.request("GET", "/ringport/v1/repositories").status == 401
        s = sign_in(ui, "alice", "alice-pass")
        assert s.status == 200, s
        jar = {"Cookie": session_cookie(s)}
        me = ui.request("GET", "/ringport/v1/session", headers=jar)
        assert me.json()["user"] == "alice", me
        # The UI's pull commands name the registry's port.
        assert me.json()["registry"] == {"host": "127.0.0.1", "port": r.port}, me
        check("GET", "/ringport/v1/session", me)
        listed = ui.request("GET", "/ringport/v1/repositories", headers=jar)
        assert listed.status == 200 and [x["name"] for x in listed.json()["repositories"]] == [
            "team/app"], listed
        tag = "/ringport/v1/repositories/team/app/-/tags/v1"
        assert ui.request("DELETE", tag, headers=jar).status == 403
        gone = ui.request("DELETE", tag, headers={**jar, "X-Ringport-CSRF": me.json()["csrf"]})
        assert gone.status == 202, gone
        assert registry.request("GET", "/v2/team/app/manifests/v1").status == 404
        # The registry's address has no UI and no sign-in now; its APIs stay.
        assert registry.request("GET", "/ui/").status == 404
        assert registry.request("GET", "/ui/assets/app.js").status == 404
        assert sign_in(Client(r.host), "alice", "alice-pass").status == 404
        assert registry.request("GET", "/v2/").status == 200
        assert registry.request("GET", "/ringport/v1/repositories").status == 200
        assert registry.request("GET", "/token").status == 404  # no issuer under htpasswd
    finally:
        assert r.stop() == 0


def test_the_uis_own_address_speaks_tls_when_the_registry_does(tmp_path):
    d = str(tmp_path)
    ca, cert, key = make_ca(d)
    path = htpasswd_file(d, {"carol": "carol-pass"})
    port = free_port()
    r = start_with_config(
        f'[tls]\ncertificate = "{cert}"\nkey = "{key}"\n[ui]\nlisten = "127.0.0.1:{port}"\n'
        f'[auth]\nscheme = "htpasswd"\nhtpasswd_path = "{path}"\n'
        '[[access]]\nwho = ["carol"]\nrepositories = ["**"]\nactions = ["pull", "admin"]\n',
        tls_ca=ca)
    try:
        ui = Client(f"127.0.0.1:{port}", ssl.create_default_context(cafile=ca))
        assert ui.request("GET", "/ui/").status == 200
        s = sign_in(ui, "carol", "carol-pass")
        assert s.status == 200, s
        attrs = [a.strip() for a in cookie_of(s).split(";")]
        assert attrs[0].startswith("__Host-ringport_session=") and "Secure" in attrs, attrs
        plain = Client(f"127.0.0.1:{port}").request("GET", "/ui/")
        assert plain.status == 400 and b"HTTP request to an HTTPS server" in plain.body, plain
    finally:
        assert r.stop() == 0


def test_on_the_uis_own_address_a_401_names_an_issuer_that_answers_there(tmp_path):
    path = htpasswd_file(str(tmp_path), {"alice": "alice-pass"})
    port = free_port()
    r = start_with_config(
        f'[ui]\nlisten = "127.0.0.1:{port}"\n[auth]\nscheme = "token"\ntoken_issue = true\n'
        f'token_service = "ui.test"\nhtpasswd_path = "{path}"\n' + RULES)
    try:
        ui = f"127.0.0.1:{port}"
        refused = Client(ui).request("GET", "/ringport/v1/repositories")
        assert refused.status == 401, refused
        realm = refused.header("WWW-Authenticate")
        assert f'realm="http://{ui}/auth/token"' in realm, realm
        got = Client(ui, auth=("alice", "alice-pass")).request(
            "GET", "/auth/token?service=ui.test&scope=repository:team/app:pull")
        assert got.status == 200 and got.json()["token"], got
    finally:
        assert r.stop() == 0
