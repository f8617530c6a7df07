# SPDX-License-Identifier: Apache-2.0
"""Garbage collection while serving (issue 12): POST /ringport/v1/gc.

- unreferenced blobs go, their layer links first; what manifests reference stays
  and pulls, also after a restart, and Distribution 2.8.2 serves the tree;
- the grace period keeps blobs linked, pushed or asked for with HEAD recently,
  so a push whose layers are uploaded but whose manifest is not yet put
  succeeds after a run (the case that makes Distribution go read-only);
- a dry run reports and removes nothing;
- delete_untagged keeps the platforms of a tagged index and the referrers of a
  live manifest (distribution#3178), and removes the rest;
- pushes and pulls during a run all succeed and leave nothing missing.
"""
import json
import os
import random
import shutil
import subprocess
import tempfile
import threading

import pytest

from ringtest import rootgen
from ringtest.client import Client, sha256
from ringtest.harness import (DISTRIBUTION_CONFIG, Distribution, Ringport, free_port,
                              ringport_bin, ringport_with_config, wait_until)
from ringtest.images import (blob_path, layer_link, manifest_for, pulls, put, revision_link,
                             run_to_end)
from ringtest.oci import descriptor, dumps, image_config, random_bytes, unique_name

pytestmark = pytest.mark.skipif(
    os.environ.get("RINGTEST_TARGET", "ringport") == "distribution",
    reason="ringport's own garbage collection")

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"
CONFIG = "application/vnd.oci.image.config.v1+json"
TIMEOUT_S = 30.0


def run_gc(c, **params):
    """Starts a run, waits for its end; returns its report."""
    return run_to_end(c, "gc", "&".join(f"{k}={str(v).lower()}" for k, v in params.items()),
                      TIMEOUT_S)


@pytest.fixture()
def srv():
    s = Ringport().start()
    s.wait_ready()
    yield s
    s.cleanup()


def test_unreferenced_blobs_go_links_first_and_the_rest_pulls(srv):
    c = Client(srv.host)
    repo = unique_name("gc")
    keep_layer = random_bytes(4096, 1)
    body = manifest_for(c, repo, [keep_layer])
    put(c, repo, "v1", body)
    orphan = random_bytes(8192, 2)
    od = c.push_blob(repo, orphan)
    assert os.path.exists(blob_path(srv.root, od))
    rep = run_gc(c, grace_s=0)
    assert rep["blobs_deleted"] == 1 and rep["links_deleted"] == 1, rep
    assert rep["bytes_freed"] == len(orphan), rep
    assert rep["errors"] == 0 and rep["manifests_deleted"] == 0, rep
    assert not os.path.exists(blob_path(srv.root, od))
    assert not os.path.exists(os.path.dirname(blob_path(srv.root, od)))
    assert not os.path.exists(layer_link(srv.root, repo, od))
    assert c.request("HEAD", f"/v2/{repo}/blobs/{od}").status == 404
    assert pulls(c, repo, "v1")
    # A second run finds nothing more.
    again = run_gc(c, grace_s=0)
    assert again["blobs_deleted"] == 0 and again["blobs_eligible"] == 0, again
    # The index after a restart agrees with the tree, and Distribution serves it.
    srv.stop()
    srv.start()
    srv.wait_ready()
    c = Client(srv.host)  # a new port
    assert pulls(c, repo, "v1")
    assert c.request("HEAD", f"/v2/{repo}/blobs/{od}").status == 404
    srv.stop()
    with Distribution(root=srv.root) as dist:
        dc = Client(dist.host)
        assert pulls(dc, repo, "v1")
        assert dc.request("HEAD", f"/v2/{repo}/blobs/{od}").status == 404


def test_a_dry_run_reports_and_removes_nothing(srv):
    c = Client(srv.host)
    repo = unique_name("gc")
    od = c.push_blob(repo, random_bytes(1000, 3))
    rep = run_gc(c, grace_s=0, dry_run=True)
    assert rep["dry_run"] is True and rep["blobs_eligible"] == 1, rep
    assert rep["blobs_deleted"] == 0 and rep["bytes_freed"] == 0, rep
    assert os.path.exists(blob_path(srv.root, od))
    assert c.request("HEAD", f"/v2/{repo}/blobs/{od}").status == 200


def test_the_grace_period_keeps_a_push_under_way(srv):
    """Layers uploaded, manifest not yet put: a run (default grace, 1 h)
    keeps them and the manifest put afterwards succeeds and pulls."""
    c = Client(srv.host)
    repo = unique_name("gc")
    layers = [random_bytes(3000, 4), random_bytes(3000, 5)]
    body = manifest_for(c, repo, layers)
    rep = run_gc(c)
    assert rep["grace_s"] == 3600, rep
    assert rep["blobs_eligible"] == 3 and rep["kept_in_grace"] == 3, rep
    assert rep["blobs_deleted"] == 0, rep
    put(c, repo, "latest", body)
    assert pulls(c, repo, "latest")


def test_a_head_counts_as_a_use(srv):
    """A client told by HEAD that a layer is there will put a manifest that
    needs it: the HEAD starts the grace period again."""
    c = Client(srv.host)
    repo = unique_name("gc")
    layer = random_bytes(2000, 6)
    body = manifest_for(c, repo, [layer])
    # Every blob is older than a 2 s grace period after this wait (uses are
    # counted in whole seconds).
    assert not wait_until(lambda: False, 3.2)
    for d in json.loads(body)["layers"] + [json.loads(body)["config"]]:
        assert c.request("HEAD", f"/v2/{repo}/blobs/{d['digest']}").status == 200
    rep = run_gc(c, grace_s=2)
    assert rep["kept_in_grace"] == 2 and rep["blobs_deleted"] == 0, rep
    put(c, repo, "v1", body)
    assert pulls(c, repo, "v1")
    # Unasked for longer than the grace period, an orphan goes.
    od = c.push_blob(repo, random_bytes(500, 7))
    assert not wait_until(lambda: False, 3.2)
    rep = run_gc(c, grace_s=2)
    assert rep["blobs_deleted"] == 1, rep
    assert c.request("HEAD", f"/v2/{repo}/blobs/{od}").status == 404


def test_delete_untagged_keeps_platforms_and_referrers(srv):
    c = Client(srv.host)
    repo = unique_name("gc")
    shared = random_bytes(2048, 8)
    amd = manifest_for(c, repo, [shared, random_bytes(2048, 9)])
    arm = manifest_for(c, repo, [shared, random_bytes(2048, 10)])
    amd_d = put(c, repo, sha256(amd), amd)
    arm_d = put(c, repo, sha256(arm), arm)
    index = dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        dict(descriptor(OCI_MANIFEST, amd), platform={"os": "linux", "architecture": "amd64"}),
        dict(descriptor(OCI_MANIFEST, arm), platform={"os": "linux", "architecture": "arm64"}),
    ]})
    index_d = put(c, repo, "multi", index, OCI_INDEX)
    # A signature of the tagged index (untagged, as cosign and notation push them).
    sig_cfg = b"{}"
    sig = dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                 "artifactType": "application/vnd.dev.cosign.simplesigning.v1+json",
                 "config": descriptor("application/vnd.oci.empty.v1+json", sig_cfg),
                 "layers": [descriptor("application/octet-stream", b"signature")],
                 "subject": descriptor(OCI_INDEX, index)})
    c.push_blob(repo, sig_cfg)
    c.push_blob(repo, b"signature")
    sig_d = put(c, repo, sha256(sig), sig)
    # An image that lost its tag: it goes, with the layer only it used.
    old_layer = random_bytes(4096, 11)
    old = manifest_for(c, repo, [shared, old_layer])
    old_d = put(c, repo, "old", old)
    assert c.request("DELETE", f"/v2/{repo}/manifests/old").status == 202
    dry = run_gc(c, grace_s=0, delete_untagged=True, dry_run=True)
    assert dry["manifests_eligible"] == 1 and dry["manifests_deleted"] == 0, dry
    assert os.path.exists(revision_link(srv.root, repo, old_d))
    rep = run_gc(c, grace_s=0, delete_untagged=True)
    assert rep["manifests_deleted"] == 1, rep
    # Its manifest blob, its config and its own layer; not the shared layer.
    assert rep["blobs_deleted"] == 3, rep
    assert not os.path.exists(revision_link(srv.root, repo, old_d))
    assert not os.path.exists(blob_path(srv.root, sha256(old_layer)))
    assert c.get_manifest(repo, old_d).status == 404
    for d in (amd_d, arm_d, index_d, sig_d):
        assert os.path.exists(revision_link(srv.root, repo, d)), d
    assert pulls(c, repo, "multi")
    assert pulls(c, repo, sig_d)
    r = c.request("GET", f"/v2/{repo}/referrers/{index_d}")
    assert r.status == 200 and [m["digest"] for m in r.json()["manifests"]] == [sig_d], r
    assert os.path.exists(blob_path(srv.root, sha256(shared)))


def test_pushes_and_pulls_during_a_run_all_succeed(srv):
    c = Client(srv.host)
    base = unique_name("gc")
    stable = f"{base}/stable"
    put(c, stable, "v1", manifest_for(c, stable, [random_bytes(65536, 12)]))
    for i in range(40):  # garbage to sweep: 40 orphans
        c.push_blob(f"{base}/junk", random_bytes(4096, 1000 + i))
    failures = []
    pushed = []
    stop = threading.Event()

    def pusher(k):
        cc = Client(srv.host)
        for i in range(200):  # bounded; ends at the run's end
            if stop.is_set():
                return
            repo = f"{base}/p{k}"
            try:
                body = manifest_for(cc, repo, [random_bytes(2048, k * 10000 + i)])
                r = cc.put_manifest(repo, f"t{i}", body, OCI_MANIFEST)
                if r.status != 201:
                    failures.append(("put", r.status, r.body[:200]))
                else:
                    pushed.append((repo, f"t{i}"))
                if not pulls(cc, stable, "v1"):
                    failures.append(("pull", stable))
            except Exception as e:  # noqa: BLE001 - any failure counts
                failures.append(("exception", repr(e)))

    threads = [threading.Thread(target=pusher, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(3):
            run_gc(c)  # default grace: pushes under way keep their layers
            run_gc(c, grace_s=0, dry_run=True)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not failures, failures[:5]
    assert pushed
    for repo, tag in pushed:
        assert pulls(c, repo, tag), (repo, tag)
    assert pulls(c, stable, "v1")


def test_bad_requests_get_clear_errors(srv):
    c = Client(srv.host)
    for q in ("dry_run=maybe", "grace_s=-1", "grace_s=1x", "delete_untagged=2"):
        r = c.request("POST", f"/ringport/v1/gc?{q}")
        assert r.status == 405 and r.error_codes() == ["UNSUPPORTED"], (q, r)
    r = c.request("PUT", "/ringport/v1/gc")
    assert r.status == 405, r
    r = c.request("GET", "/ringport/v1/gc")
    assert r.status == 200 and r.json()["phase"] == "idle", r


# ---------------------------------------------------------------------------
# Offline: `ringport garbage-collect` against `registry garbage-collect`
# ---------------------------------------------------------------------------

def distribution_gc(root, *flags):
    cfg = os.path.join(root, "gc-config.yml")
    with open(cfg, "w") as f:
        f.write(DISTRIBUTION_CONFIG.format(root=root, port=free_port()))
    cp = subprocess.run([Distribution.BIN, "garbage-collect", *flags, cfg], capture_output=True,
                        text=True, timeout=120, check=False)
    os.unlink(cfg)
    assert cp.returncode == 0, cp.stderr
    return cp.stdout


def ringport_gc(root, *flags):
    cp = subprocess.run([ringport_bin(), "garbage-collect", "--root", root, *flags],
                        capture_output=True, text=True, timeout=120, check=False,
                        env={k: v for k, v in os.environ.items() if k != "RINGPORT_BIN"})
    assert cp.returncode == 0, cp.stderr
    return cp.stdout


def summary(out):
    lines = [x for x in out.splitlines() if "eligible for deletion" in x and "marked" in x]
    assert len(lines) == 1, out
    return lines[0]


@pytest.fixture(scope="module")
def distribution_tree():
    """A tree Distribution 2.8.2 wrote: a tagged image, an untagged one, orphan
    blobs, a tagged multi-arch index whose platforms are pushed by digest, and
    a signature (referrer) of the index. Returns (root, expected), where
    expected names what Distribution's --delete-untagged wrongly removes."""
    root = tempfile.mkdtemp(prefix="gc-dist-")
    exp = {}
    with Distribution(root=root) as dist:
        c = Client(dist.host)
        shared = random_bytes(3000, 20)
        put(c, "app", "v1", manifest_for(c, "app", [shared, random_bytes(3000, 21)]))
        lost_layer = random_bytes(3000, 22)
        lost = manifest_for(c, "app", [shared, lost_layer])
        exp["untagged"] = put(c, "app", sha256(lost), lost)
        exp["orphans"] = {c.push_blob("app", random_bytes(1000, 23 + i)) for i in range(3)}
        exp["orphans"].add(c.push_blob("other", random_bytes(1000, 30)))
        amd_layer, arm_layer = random_bytes(3000, 31), random_bytes(3000, 32)
        amd_cfg, arm_cfg = image_config(), image_config()
        amd = manifest_for(c, "multi", [shared, amd_layer], amd_cfg)
        arm = manifest_for(c, "multi", [shared, arm_layer], arm_cfg)
        put(c, "multi", sha256(amd), amd)
        put(c, "multi", sha256(arm), arm)
        index = dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            dict(descriptor(OCI_MANIFEST, amd), platform={"os": "linux", "architecture": "amd64"}),
            dict(descriptor(OCI_MANIFEST, arm), platform={"os": "linux", "architecture": "arm64"}),
        ]})
        put(c, "multi", "latest", index, OCI_INDEX)
        sig_cfg, sig_layer = b'{"sig":1}', random_bytes(200, 33)
        sig = dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                     "config": descriptor("application/vnd.oci.empty.v1+json", sig_cfg),
                     "layers": [descriptor("application/octet-stream", sig_layer)],
                     "subject": descriptor(OCI_INDEX, index)})
        c.push_blob("multi", sig_cfg)
        c.push_blob("multi", sig_layer)
        put(c, "multi", sha256(sig), sig)
        # Distribution's --delete-untagged deletes the platforms' revisions
        # (their manifest blobs stay: the index marks them) and so their own
        # configs and layers, and the signature with its blobs.
        exp["distribution_bug"] = {sha256(amd_cfg), sha256(arm_cfg), sha256(amd_layer),
                                   sha256(arm_layer), sha256(sig), sha256(sig_cfg),
                                   sha256(sig_layer)}
        exp["untagged_blobs"] = {exp["untagged"], sha256(lost_layer)}
        exp["untagged_blobs"].add(json.loads(lost)["config"]["digest"])
    yield root, exp
    shutil.rmtree(root, ignore_errors=True)


def copy_of(root):
    dst = tempfile.mkdtemp(prefix="gc-copy-")
    shutil.copytree(root, dst, dirs_exist_ok=True)
    return dst


def test_offline_gc_removes_what_distribution_removes(distribution_tree):
    root, exp = distribution_tree
    before = rootgen.blobs_on_disk(root)
    a, b = copy_of(root), copy_of(root)
    try:
        dist_out = distribution_gc(a)
        ours = ringport_gc(b)
        assert rootgen.blobs_on_disk(a) == rootgen.blobs_on_disk(b)
        assert before - rootgen.blobs_on_disk(b) == exp["orphans"]
        assert summary(ours) == summary(dist_out)
        for d in exp["orphans"]:
            assert f"blob eligible for deletion: {d}" in ours
        # The orphans' layer links went with them (Distribution leaves them).
        for repo in ("app", "other"):
            for d in exp["orphans"]:
                assert not os.path.exists(layer_link(b, repo, d))
        # A dry run changes nothing and says the same.
        c = copy_of(root)
        try:
            dry = ringport_gc(c, "--dry-run")
            assert rootgen.blobs_on_disk(c) == before
            assert summary(dry) == summary(ours)
        finally:
            shutil.rmtree(c, ignore_errors=True)
        # Both servers serve the collected tree.
        with Ringport(root=b) as srv:
            srv.wait_ready()
            assert pulls(Client(srv.host), "app", "v1")
            assert pulls(Client(srv.host), "multi", "latest")
        with Distribution(root=b) as dist:
            assert pulls(Client(dist.host), "app", "v1")
            assert pulls(Client(dist.host), "multi", "latest")
    finally:
        shutil.rmtree(a, ignore_errors=True)
        shutil.rmtree(b, ignore_errors=True)


def test_offline_delete_untagged_differs_only_by_distributions_bug(distribution_tree):
    root, exp = distribution_tree
    before = rootgen.blobs_on_disk(root)
    a, b = copy_of(root), copy_of(root)
    try:
        distribution_gc(a, "--delete-untagged")
        ours = ringport_gc(b, "-m")
        gone_dist, gone_ours = before - rootgen.blobs_on_disk(a), before - rootgen.blobs_on_disk(b)
        assert gone_ours == exp["orphans"] | exp["untagged_blobs"], ours
        assert gone_dist - gone_ours == exp["distribution_bug"]
        assert gone_ours <= gone_dist
        assert f"manifest eligible for deletion: {exp['untagged']}" in ours
        assert not os.path.exists(revision_link(b, "app", exp["untagged"]))
        # Ringport pulls the multi-arch image and its signature whole; on
        # Distribution's tree the platforms are gone.
        with Ringport(root=b) as srv:
            srv.wait_ready()
            c = Client(srv.host)
            assert pulls(c, "multi", "latest")
            r = c.request("GET", "/v2/multi/referrers/" + sha256(
                c.get_manifest("multi", "latest", accept=OCI_INDEX).body))
            assert r.status == 200 and len(r.json()["manifests"]) == 1, r
        with Ringport(root=a) as srv:
            srv.wait_ready()
            assert not pulls(Client(srv.host), "multi", "latest")
    finally:
        shutil.rmtree(a, ignore_errors=True)
        shutil.rmtree(b, ignore_errors=True)


def test_offline_gc_refuses_while_a_server_holds_the_root(srv):
    cp = subprocess.run([ringport_bin(), "garbage-collect", "--root", srv.root],
                        capture_output=True, text=True, timeout=60, check=False,
                        env={k: v for k, v in os.environ.items() if k != "RINGPORT_BIN"})
    assert cp.returncode == 1
    assert "POST /ringport/v1/gc" in cp.stderr, cp.stderr
    cp = subprocess.run([ringport_bin(), "garbage-collect", "--grace", "1x", "--root", srv.root],
                        capture_output=True, text=True, timeout=60, check=False)
    assert cp.returncode == 2 and "--grace" in cp.stderr, cp.stderr


# ---------------------------------------------------------------------------
# kill -9 during a sweep
# ---------------------------------------------------------------------------

def dangling_links(root):
    """Layer and revision links whose blob data is missing."""
    base = os.path.join(root, "docker/registry/v2/repositories")
    out = []
    for dirpath, _dirs, files in os.walk(base):
        if "link" not in files or not ("/_layers/" in dirpath or "/revisions/" in dirpath):
            continue
        with open(os.path.join(dirpath, "link")) as f:
            d = f.read().strip()
        if not os.path.exists(blob_path(root, d)):
            out.append(os.path.join(dirpath, "link"))
    return out


def test_kill_9_during_a_sweep_leaves_a_tree_both_serve():
    """A collection (delete_untagged, no grace) killed at several moments:
    after each restart no link points at missing data, every tagged image
    pulls whole; the last run removes every bit of garbage, and Distribution
    serves what is left."""
    rng = random.Random(12)
    root = tempfile.mkdtemp(prefix="gc-kill-")
    kept = []
    for i in range(12):
        repo = f"kill/r{i % 3}"
        cfg = json.dumps({"n": i}).encode()
        layers = [random_bytes(512, 5000 + i * 4 + k) for k in range(3)]
        rootgen.write_image(root, repo, [f"t{i}"], cfg, layers)
        kept.append((repo, f"t{i}"))
        # An untagged image beside it: a manifest and a layer of its own.
        own = random_bytes(512, 9000 + i)
        rootgen.write_image(root, repo, [], json.dumps({"old": i}).encode(), [layers[0], own])
    for g in range(1500):
        d = rootgen.write_blob(root, random_bytes(256, 20000 + g))
        if g % 2 == 0:
            rootgen.link_layer(root, f"kill/r{g % 3}", d)
    srv = Ringport(root=root)
    try:
        for round_ in range(6):
            srv.start()
            srv.wait_ready()
            c = Client(srv.host)
            if round_ < 5:
                r = c.request("POST", "/ringport/v1/gc?grace_s=0&delete_untagged=true")
                assert r.status == 202, r
                assert not wait_until(lambda: False, rng.uniform(0.0, 0.25))
                srv.kill()
                assert dangling_links(root) == []
                continue
            for repo, tag in kept:
                assert pulls(c, repo, tag), (repo, tag)
            rep = run_gc(c, grace_s=0, delete_untagged=True)
            assert rep["errors"] == 0, rep
            again = run_gc(c, grace_s=0, delete_untagged=True)
            assert again["blobs_eligible"] == 0 and again["manifests_eligible"] == 0, again
            srv.stop()
        assert dangling_links(root) == []
        # 12 images x (manifest, config, 3 layers) are all that is left.
        assert len(rootgen.blobs_on_disk(root)) == 12 * 5
        with Distribution(root=root) as dist:
            dc = Client(dist.host)
            for repo, tag in kept:
                assert pulls(dc, repo, tag), (repo, tag)
    finally:
        srv.cleanup()
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------------
# Deleting a whole repository
# ---------------------------------------------------------------------------

def test_deleting_a_repository_leaves_its_blobs_to_gc(srv):
    c = Client(srv.host)
    base = unique_name("gc")
    doomed, other = f"{base}/doomed", f"{base}/other"
    shared = random_bytes(1500, 40)
    own = random_bytes(1500, 41)
    put(c, doomed, "a", manifest_for(c, doomed, [shared, own]))
    put(c, doomed, "b", manifest_for(c, doomed, [shared]))
    put(c, other, "v1", manifest_for(c, other, [shared]))
    r = c.request("DELETE", f"/ringport/v1/repositories/{doomed}")
    assert r.status == 202, r
    assert r.json() == {"repository": doomed, "tags": 2, "manifests": 2, "blob_links": 4}, r
    assert c.request("GET", f"/v2/{doomed}/tags/list").error_codes() == ["NAME_UNKNOWN"]
    assert c.get_manifest(doomed, "a").status == 404
    assert doomed not in c.request("GET", "/v2/_catalog").json()["repositories"]
    assert os.path.exists(blob_path(srv.root, sha256(own)))  # left to GC
    r = c.request("DELETE", f"/ringport/v1/repositories/{doomed}")
    assert r.status == 404 and r.error_codes() == ["NAME_UNKNOWN"], r
    for bad, code in (("Bad/Name", "NAME_INVALID"), ("a/../b", "NAME_INVALID")):
        r = c.request("DELETE", f"/ringport/v1/repositories/{bad}")
        assert r.status in (400, 404) and r.error_codes() == [code], (bad, r)
    assert c.request("GET", f"/ringport/v1/repositories/{other}").json()["name"] == other
    assert c.request("POST", f"/ringport/v1/repositories/{other}").status == 405
    rep = run_gc(c, grace_s=0)
    assert rep["errors"] == 0 and rep["blobs_deleted"] == 5, rep  # own, 2 configs, 2 manifests
    assert not os.path.exists(blob_path(srv.root, sha256(own)))
    assert pulls(c, other, "v1")
    srv.stop()
    srv.start()
    srv.wait_ready()
    c = Client(srv.host)
    assert c.request("GET", f"/v2/{doomed}/tags/list").status == 404
    assert pulls(c, other, "v1")
    srv.stop()
    with Distribution(root=srv.root) as dist:
        dc = Client(dist.host)
        assert dc.get_manifest(doomed, "a").status == 404
        assert pulls(dc, other, "v1")


def test_delete_repository_offline():
    root = tempfile.mkdtemp(prefix="gc-delrepo-")
    try:
        rootgen.write_image(root, "team/doomed", ["v1"], b'{"a":1}', [random_bytes(300, 50)])
        rootgen.write_image(root, "team/kept", ["v1"], b'{"a":2}', [random_bytes(300, 51)])
        env = {k: v for k, v in os.environ.items() if k != "RINGPORT_BIN"}
        cp = subprocess.run([ringport_bin(), "delete-repository", "team/doomed", "--root", root],
                            capture_output=True, text=True, timeout=60, check=False, env=env)
        assert cp.returncode == 0, cp.stderr
        assert "1 tag(s), 1 manifest(s), 2 layer link(s)" in cp.stdout, cp.stdout
        cp = subprocess.run([ringport_bin(), "delete-repository", "team/doomed", "--root", root],
                            capture_output=True, text=True, timeout=60, check=False, env=env)
        assert cp.returncode == 1 and "team/doomed" in cp.stderr, cp.stderr
        cp = subprocess.run([ringport_bin(), "delete-repository", "Bad", "--root", root],
                            capture_output=True, text=True, timeout=60, check=False, env=env)
        assert cp.returncode == 2, cp.stderr
        out = ringport_gc(root)
        assert "3 blobs and 0 manifests eligible" in summary(out)  # manifest, config, layer
        with Ringport(root=root) as srv:
            srv.wait_ready()
            c = Client(srv.host)
            assert c.request("GET", "/v2/team/doomed/tags/list").status == 404
            assert pulls(c, "team/kept", "v1")
            cp = subprocess.run([ringport_bin(), "delete-repository", "team/kept", "--root", root],
                                capture_output=True, text=True, timeout=60, check=False, env=env)
            assert cp.returncode == 1 and "DELETE /ringport/v1/repositories" in cp.stderr
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_a_schedule_collects_on_its_own():
    srv, cfg = ringport_with_config("[gc]\ninterval_s = 1\ngrace_s = 0\n")
    try:
        c = Client(srv.host)
        repo = unique_name("gc")
        od = c.push_blob(repo, random_bytes(700, 60))
        assert wait_until(lambda: not os.path.exists(blob_path(srv.root, od)), TIMEOUT_S)
        assert c.request("HEAD", f"/v2/{repo}/blobs/{od}").status == 404
        rep = c.request("GET", "/ringport/v1/gc").json()
        assert rep["run"] >= 1 and rep["grace_s"] == 0, rep
        assert wait_until(lambda: any("garbage collection" in line and "freed" in line
                                      for line in srv.err), TIMEOUT_S)
    finally:
        srv.cleanup()
        os.unlink(cfg)
