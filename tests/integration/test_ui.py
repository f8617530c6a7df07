# SPDX-License-Identifier: Apache-2.0
"""The web UI's files through the real binary (the browser tests in
tests/browser drive the app itself): every /ui/ path answers the app, with
the security headers, a strong ETag and gzip; a config switches it off;
under authentication the app is public and the data it reads is not.
"""
import gzip
import json
import os
import tempfile

from ringtest.authtest import htpasswd_file, start_with_config
from ringtest.client import Client, sha256
from ringtest.harness import ringport_with_config
from ringtest.oci import OCI_CONFIG, OCI_MANIFEST, descriptor, dumps, image_config

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")


def assert_secure(r):
    assert r.header("Content-Security-Policy") == CSP, r
    assert r.header("X-Content-Type-Options") == "nosniff"
    assert r.header("X-Frame-Options") == "DENY"
    assert r.header("Referrer-Policy") == "no-referrer"


def test_every_ui_path_is_the_app_with_its_headers(registry):
    c = Client(registry.host)
    page = c.request("GET", "/ui/")
    assert page.status == 200, page
    assert page.header("Content-Type") == "text/html; charset=utf-8"
    assert b'<script type="module" async src="/ui/assets/app.js?v=' in page.body
    assert_secure(page)
    assert page.header("Cache-Control") == "no-cache"
    for path in ("/ui/repositories", "/ui/repositories/a/b/-/tags/v1", "/ui/storage",
                 "/ui/repositories/%3Cscript%3E"):
        r = c.request("GET", path)
        assert r.status == 200 and r.body == page.body, (path, r)
        assert r.header("ETag") == page.header("ETag")
    r = c.request("GET", "/ui")
    assert r.status == 308 and r.header("Location") == "/ui/", r
    assert_secure(r)


def test_assets_types_etags_304_gzip_and_head(registry):
    c = Client(registry.host)
    types = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8",
             "favicon.svg": "image/svg+xml"}
    for name, ctype in types.items():
        plain = c.request("GET", f"/ui/assets/{name}")
        assert plain.status == 200, (name, plain)
        assert plain.header("Content-Type") == ctype
        assert plain.header("Content-Encoding") is None
        assert plain.header("Vary") == "Accept-Encoding"
        assert_secure(plain)
        etag = plain.header("ETag")
        assert etag.startswith('"') and not etag.startswith("W/")
        packed = c.request("GET", f"/ui/assets/{name}", headers={"Accept-Encoding": "gzip"})
        assert packed.header("Content-Encoding") == "gzip"
        assert gzip.decompress(packed.body) == plain.body
        assert len(packed.body) < len(plain.body)
        assert packed.header("ETag") == etag
        again = c.request("GET", f"/ui/assets/{name}", headers={"If-None-Match": etag})
        assert again.status == 304 and again.body == b"", again
        head = c.request("HEAD", f"/ui/assets/{name}")
        assert head.status == 200 and head.body == b""
        assert int(head.header("Content-Length")) == len(plain.body)
    # The modules are bundled into app.js at build time: none is served alone.
    assert c.request("GET", "/ui/assets/repositories.js").status == 404
    missing = c.request("GET", "/ui/assets/nope.js")
    assert missing.status == 404
    assert_secure(missing)
    assert c.request("GET", "/ui/assets/../../v2/").status == 404
    post = c.request("POST", "/ui/", body=b"x")
    assert post.status == 405 and post.header("Allow") == "GET, HEAD"
    # The server keeps serving the registry beside it.
    assert c.request("GET", "/v2/").status == 200


def test_switched_off_by_the_config():
    srv, cfg = ringport_with_config("[ui]\nenabled = false\n")
    try:
        c = Client(srv.host)
        r = c.request("GET", "/ui/")
        assert r.status == 404, r
        assert r.error_codes() == ["NOT_FOUND"], r
        assert c.request("GET", "/ui/assets/app.js").status == 404
        assert c.request("GET", "/v2/").status == 200
    finally:
        srv.stop()
        os.unlink(cfg)


def test_the_manifest_body_comes_from_the_admin_api_without_counting_a_pull(registry):
    c = Client(registry.host)
    cfg = image_config()
    c.push_blob("ui/body", cfg)
    body = dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                  "config": descriptor(OCI_CONFIG, cfg), "layers": []})
    assert c.put_manifest("ui/body", "v1", body, OCI_MANIFEST).status == 201
    for path in ("/ringport/v1/repositories/ui/body/-/tags/v1?body=true",
                 f"/ringport/v1/repositories/ui/body/-/manifests/{sha256(body)}?body=true"):
        r = c.request("GET", path)
        assert r.status == 200, r
        assert r.json()["body"].encode() == body
    assert "body" not in c.request("GET", "/ringport/v1/repositories/ui/body/-/tags/v1").json()
    repo = c.request("GET", "/ringport/v1/repositories/ui/body").json()
    assert repo["pulls"] == 0 and repo["last_pull"] is None, repo


def test_under_authentication_the_app_is_public_and_its_data_is_not():
    d = tempfile.mkdtemp(prefix="ringport-ui-auth-")
    path = htpasswd_file(d, {"admin": "s3cret-pass"})
    srv = start_with_config(
        f'[auth]\nscheme = "htpasswd"\nhtpasswd_path = "{path}"\n'
        '[[access]]\nwho = ["admin"]\nrepositories = ["*"]\n'
        'actions = ["pull", "push", "delete", "catalog", "admin"]\n')
    try:
        anon = Client(srv.host)
        assert anon.request("GET", "/ui/").status == 200
        assert anon.request("GET", "/ui/assets/app.js").status == 200
        r = anon.request("GET", "/ringport/v1/repositories")
        assert r.status == 401, r
        admin = Client(srv.host, auth=("admin", "s3cret-pass"))
        r = admin.request("GET", "/ringport/v1/repositories")
        assert r.status == 200, r
        assert json.loads(r.body)["total"] == 0
    finally:
        srv.stop()
