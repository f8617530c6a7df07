# SPDX-License-Identifier: Apache-2.0
"""The web UI in Debian's Chromium, driven by playwright-core (drive.mjs).

Each test starts ringport on a temporary root, pushes what its scenario
needs through the OCI API, runs the scenario in a headless Chromium, and
checks the registry's own side (a deleted tag is gone from /v2/, a GC dry
run is recorded). Every page a scenario opens is checked by axe-core, and
any script error, console error, dialog or CSP violation fails it.
Screenshots land in build/screenshots/ (RINGPORT_SCREENSHOTS to move them).
"""
import json
import os
import shutil
import subprocess
import time

import pytest

from ringtest.authtest import htpasswd_file, start_with_config
from ringtest.client import Client, sha256
from ringtest.fakeupstream import FakeUpstream
from ringtest.harness import Ringport, free_port, ringport_with_config, wait_until
from ringtest.mirrortest import image_manifest
from ringtest.oci import OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, descriptor, dumps, random_bytes
from ringtest.testca import issue, make_ca

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SHOTS = os.environ.get("RINGPORT_SCREENSHOTS", os.path.join(REPO, "build", "screenshots"))
SIGNATURE = "application/vnd.dev.cosign.simplesigning.v1+json"
SBOM = "application/spdx+json"
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


def drive(scenario, url, **args):
    """Runs one scenario; fails the test with what the browser saw."""
    node = shutil.which("node")
    assert node, "node is missing: tools/setup.sh --tests installs it"
    assert os.path.isdir(os.path.join(HERE, "node_modules", "playwright-core")), \
        "tests/browser/node_modules is missing: run `npm ci --prefix tests/browser`"
    assert os.path.exists("/usr/bin/chromium"), "chromium is missing: tools/setup.sh --tests"
    cp = subprocess.run([node, os.path.join(HERE, "drive.mjs"), scenario, url, SHOTS,
                         json.dumps(args)], cwd=HERE, capture_output=True, text=True,
                        timeout=180)
    assert cp.returncode == 0, f"{scenario}:\n{cp.stdout}\n{cp.stderr}"
    assert f"{scenario}: ok" in cp.stdout


@pytest.fixture
def srv():
    r = Ringport()
    r.start()
    try:
        yield r
    finally:
        r.stop()


def image(c, repo, seed, arch="amd64", layers=2, labels=None, env=None, history=None,
          annotations=None, ref=None):
    """Pushes an image with a real-looking config; returns (digest, body)."""
    cfg = dumps({
        "architecture": arch, "os": "linux", "created": "2026-11-30T10:00:00Z",
        "config": {"Env": env or ["PATH=/usr/local/bin:/usr/bin", f"UI_SEED={seed}"],
                   "Entrypoint": ["/usr/bin/app"], "Cmd": ["--serve"],
                   "WorkingDir": "/srv", "Labels": labels or {"org.example.team": "platform"}},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": history or [{"created": "2026-11-30T10:00:00Z",
                                 "created_by": f"COPY app /usr/bin/app # {seed}"}],
    })
    c.push_blob(repo, cfg)
    descs = []
    for i in range(layers):
        data = random_bytes(1000 + 100 * i + seed % 97, seed * 10 + i)
        c.push_blob(repo, data)
        descs.append(descriptor("application/vnd.oci.image.layer.v1.tar+gzip", data))
    m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, cfg),
         "layers": descs}
    if annotations:
        m["annotations"] = annotations
    body = dumps(m)
    r = c.put_manifest(repo, ref or sha256(body), body, OCI_MANIFEST)
    assert r.status == 201, r
    return sha256(body), body


def referrer(c, repo, subject_body, subject_type, artifact_type, seed):
    c.push_blob(repo, b"{}")
    data = random_bytes(200, seed)
    c.push_blob(repo, data)
    body = dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
                  "config": descriptor("application/vnd.oci.empty.v1+json", b"{}"),
                  "layers": [descriptor("application/octet-stream", data)],
                  "subject": descriptor(subject_type, subject_body)})
    r = c.put_manifest(repo, sha256(body), body, OCI_MANIFEST)
    assert r.status == 201, r


def multiarch(c, repo, tag, seed):
    plats = [(image(c, repo, seed + i, arch=arch), arch)
             for i, arch in enumerate(("amd64", "arm64"))]
    index = dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        dict(descriptor(OCI_MANIFEST, body), platform={"os": "linux", "architecture": arch})
        for (_d, body), arch in plats]})
    r = c.put_manifest(repo, tag, index, OCI_INDEX)
    assert r.status == 201, r
    referrer(c, repo, index, OCI_INDEX, SIGNATURE, seed + 100)
    referrer(c, repo, index, OCI_INDEX, SBOM, seed + 101)
    return index


def test_browse_search_sort_and_pages(srv):
    c = Client(srv.host)
    names = [f"team/web-{i:03d}" for i in range(30)] + [f"team/api-{i:03d}" for i in range(90)]
    for i, n in enumerate(names):
        image(c, n, i + 1, layers=1, ref="latest")
    # Sizes grow with the seed: the largest "web" repository is the last one.
    drive("browse", srv.url, total=len(names), search="web", matches=30, largest="team/web-029")


def test_multiarch_image_platforms_referrers_config_and_layers(srv):
    c = Client(srv.host)
    multiarch(c, "apps/shop", "v1", 7)
    drive("image", srv.url, name="apps/shop", tag="v1", artifactType=SIGNATURE,
          envKey="UI_SEED", labelValue="platform", layers=2)


def test_the_ui_on_an_address_of_its_own_names_the_registrys_port():
    port = free_port()
    srv, cfg = ringport_with_config(f'[ui]\nlisten = "127.0.0.1:{port}"\n')
    try:
        c = Client(srv.host)
        multiarch(c, "apps/apart", "v3", 13)
        assert c.request("GET", "/ui/").status == 404
        drive("image", f"http://127.0.0.1:{port}", name="apps/apart", tag="v3",
              artifactType=SIGNATURE, envKey="UI_SEED", labelValue="platform", layers=2,
              registry=srv.host)
    finally:
        srv.stop()
        os.unlink(cfg)


def test_deep_links_survive_a_reload(srv):
    c = Client(srv.host)
    multiarch(c, "apps/deep", "v2", 11)
    drive("deeplink", srv.url, name="apps/deep", tag="v2")


def test_delete_a_tag_and_it_is_gone_from_the_registry_api(srv):
    c = Client(srv.host)
    image(c, "apps/old", 21, ref="keep")
    image(c, "apps/old", 22, ref="drop")
    drive("delete", srv.url, name="apps/old", tag="drop")
    r = c.request("GET", "/v2/apps/old/tags/list")
    assert r.status == 200, r
    assert r.json()["tags"] == ["keep"]
    assert c.request("GET", "/v2/apps/old/manifests/drop").status == 404
    assert c.request("GET", "/v2/apps/old/manifests/keep").status == 200


def test_storage_page_runs_gc_and_retention_dry_runs():
    srv, cfg = ringport_with_config(
        '[[retention.policy]]\nrepositories = ["store/**"]\nkeep_last = 1\n')
    try:
        c = Client(srv.host)
        image(c, "store/r0", 29, ref="expired")
        time.sleep(1.1)  # push times are kept in seconds: "latest" is the newer
        for i in range(3):
            image(c, f"store/r{i}", 30 + i, ref="latest")
        drive("storage", srv.url, repo="store/r0", expired="expired")
        gc = c.request("GET", "/ringport/v1/gc").json()
        assert gc["phase"] == "done" and gc["dry_run"] is True and gc["blobs_deleted"] == 0, gc
        ret = c.request("GET", "/ringport/v1/retention").json()
        assert ret["phase"] == "done" and ret["dry_run"] is True and ret["tags_deleted"] == 1, ret
        # A dry run: the tag is still there.
        assert c.request("GET", "/v2/store/r0/manifests/expired").status == 200
    finally:
        srv.stop()
        os.unlink(cfg)


def test_a_client_certificate_signs_the_browser_in(tmp_path):
    d = str(tmp_path)
    ca, cert, key = make_ca(d)
    alice = issue(d, "alice", "alice", client=True)
    srv = start_with_config(
        f'[tls]\ncertificate = "{cert}"\nkey = "{key}"\nclient_cas = "{ca}"\n'
        'client_auth = "optional"\n[auth]\nscheme = "certificate"\n'
        '[[access]]\nwho = ["alice"]\nrepositories = ["**"]\n'
        'actions = ["pull", "push", "delete", "catalog", "admin"]\n', tls_ca=ca,
        tls_client=alice)
    try:
        c = Client(srv.host, srv.ssl_context())
        image(c, "cert/app", 81, ref="drop")
        image(c, "cert/app", 82, ref="keep")
        drive("certificate", srv.url, user="alice", repo="cert/app", tag="drop",
              clientCert=alice[0], clientKey=alice[1])
        assert c.request("GET", "/v2/cert/app/tags/list").json()["tags"] == ["keep"]
    finally:
        srv.stop()
        os.unlink(srv.config_path)


def test_mirrored_prefixes_are_shown_apart_with_their_hit_rate():
    up = FakeUpstream(bearer=False)
    srv, cfg = ringport_with_config(f'[[mirror]]\nprefix = "up.test"\nurl = "{up.url}"\n')
    try:
        up.add_manifest("team/app", "v1", image_manifest(b"ui-mirror"))
        c = Client(srv.host)
        for _ in range(3):  # a miss, then hits from the cache
            r = c.request("GET", "/v2/up.test/team/app/manifests/v1",
                          headers={"Accept": OCI_MANIFEST})
            assert r.status == 200, r
        image(c, "local/app", 71, ref="v1")
        m = c.request("GET", "/ringport/v1/mirrors").json()["mirrors"][0]
        assert m["hits"] >= 1 and m["misses"] >= 1, m
        drive("mirrors", srv.url, prefix="up.test", upstream=up.url,
              hitRate=m["hit_ratio_percent"], mirrored="up.test/team/app", hosted="local/app")
    finally:
        srv.stop()
        up.close()
        os.unlink(cfg)


def test_status_page_shows_a_failing_webhook_and_its_backlog():
    # An endpoint nobody listens on: the push's event waits in the spool.
    srv, cfg = ringport_with_config(
        f'[[notifications.endpoints]]\nname = "ci-hook"\n'
        f'url = "http://127.0.0.1:{free_port()}/hook"\ntimeout = "1s"\nbackoff = "1s"\n')
    try:
        c = Client(srv.host)
        image(c, "hooked/app", 51, ref="v1")
        assert wait_until(lambda: c.request("GET", "/ringport/v1/status").json()["webhooks"][0]
                          ["failing"], 20), c.request("GET", "/ringport/v1/status").json()
        st = c.request("GET", "/ringport/v1/status").json()
        assert st["webhooks"][0]["backlog"] > 0, st
        drive("status", srv.url, version=st["version"], hook="ci-hook")
    finally:
        srv.stop()
        os.unlink(cfg)


@pytest.mark.parametrize("apart", [False, True], ids=["same-address", "ui-address"])
def test_sign_in_csrf_and_another_sites_form(tmp_path, apart):
    path = htpasswd_file(str(tmp_path), {"alice": "alice-pass"})
    port = free_port()
    srv, cfg = ringport_with_config(
        (f'[ui]\nlisten = "127.0.0.1:{port}"\n' if apart else "") +
        f'[auth]\nscheme = "htpasswd"\nhtpasswd_path = "{path}"\n'
        '[[access]]\nwho = ["alice"]\nrepositories = ["**"]\n'
        'actions = ["pull", "push", "delete", "catalog", "admin"]\n')
    try:
        c = Client(srv.host, auth=("alice", "alice-pass"))
        image(c, "sec/app", 61, ref="drop")
        image(c, "sec/app", 62, ref="keep")
        drive("signin", f"http://127.0.0.1:{port}" if apart else srv.url, user="alice",
              password="alice-pass", repo="sec/app", tag="drop", keep="keep",
              registry=srv.host)
        assert c.request("GET", "/v2/sec/app/tags/list").json()["tags"] == ["keep"]
        assert c.request("GET", "/ringport/v1/gc").json()["phase"] == "idle"
    finally:
        srv.stop()
        os.unlink(cfg)


def test_markup_in_labels_annotations_and_history_never_runs(srv):
    c = Client(srv.host)
    image(c, "evil/app", 41, ref="v1", labels={"org.example.note": XSS, XSS: "key"},
          env=[f"NOTE={XSS}"], history=[{"created_by": XSS}],
          annotations={"org.opencontainers.image.description": XSS})
    drive("xss", srv.url, marker=XSS,
          pages=[{"url": "/ui/repositories?q=evil", "shows": 0},
                 {"url": "/ui/repositories/evil/app", "shows": 0},
                 # a label's value and key, the env value, the history step,
                 # the annotation (table and JSON): as text, every one
                 {"url": "/ui/repositories/evil/app/-/tags/v1", "shows": 5}])
