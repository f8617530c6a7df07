# SPDX-License-Identifier: Apache-2.0
"""`ringport check [--repair]` (issue 12): the tree checked with the registry stopped.

A tree that ringport wrote is damaged the ways a crash, a bad disk or another
tool damages one; the check names each problem once, changes nothing without
--repair, and with it moves the corrupt blob to <root>/ringport-quarantine/
and drops what points at nothing, leaving what cannot be repaired (a manifest
naming a lost blob, one that does not parse) reported. Afterwards ringport
and Distribution serve the intact images.
"""
import os
import subprocess
import time

import pytest

from ringtest import rootgen
from ringtest.client import Client, sha256
from ringtest.harness import Distribution, Ringport, ringport_bin, wait_until
from ringtest.images import (blob_path, layer_link, manifest_for, multiarch_with_signature, pulls,
                             put)
from ringtest.oci import (OCI_CONFIG, OCI_MANIFEST, descriptor, dumps, image_config, random_bytes,
                          unique_name)

pytestmark = pytest.mark.skipif(
    os.environ.get("RINGTEST_TARGET", "ringport") == "distribution",
    reason="ringport's own check")


def check(root, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RINGPORT_")}
    cp = subprocess.run([ringport_bin(), "check", "--root", root, *args], capture_output=True,
                        text=True, timeout=120, env=env, check=False)
    return cp.returncode, sorted(cp.stdout.splitlines()), cp.stderr


def snapshot_of(root):
    """Every file under the tree with its size and mtime: what a check may not change."""
    out = {}
    for dirpath, dirs, files in os.walk(rootgen.v2(root)):
        for name in files + dirs:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[p] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture()
def damaged(tmp_path):
    """A tree with two intact images and one of each kind of damage; returns
    (root, repo, facts)."""
    root = str(tmp_path / "root")
    os.mkdir(root)
    repo = unique_name("chk")
    with Ringport(root=root) as srv:
        srv.wait_ready()
        c = Client(srv.host)
        good = put(c, repo, "good", manifest_for(c, repo, [random_bytes(5000, 1)]))
        _plats, multi, _sig = multiarch_with_signature(c, repo, "multi", 10)
        broken_layer = random_bytes(6000, 2)
        broken = put(c, repo, "broken", manifest_for(c, repo, [broken_layer]))
        orphan = c.push_blob(repo, random_bytes(700, 3))
    v2 = rootgen.v2(root)
    facts = {"good": good, "multi": multi, "broken": broken, "orphan": orphan,
             "corrupt": sha256(broken_layer)}
    # A layer whose bytes rotted: same size, other bytes.
    with open(blob_path(root, facts["corrupt"]), "r+b") as f:
        f.write(b"\0" * 16)
    # An orphan's layer link whose file holds garbage.
    with open(layer_link(root, repo, orphan), "w") as f:
        f.write("not a digest")
    # A blob directory a kill left without its data.
    empty = "e" * 64
    os.makedirs(os.path.join(v2, "blobs/sha256", empty[:2], empty))
    facts["empty"] = empty
    # A tag pointing at a manifest this repository does not hold.
    ghost = "sha256:" + "a" * 64
    tag_dir = os.path.join(v2, "repositories", repo, "_manifests/tags/ghost/current")
    os.makedirs(tag_dir)
    with open(os.path.join(tag_dir, "link"), "w") as f:
        f.write(ghost)
    facts["ghost"] = ghost
    # A manifest revision whose bytes are stored but are not a manifest.
    junk = b"this is not a manifest"
    jd = rootgen.write_blob(root, junk)
    rootgen.link_revision(root, repo, jd)
    facts["junk"] = jd
    # An upload abandoned a month ago, and one from just now (resumable: kept).
    for uuid, age in (("0b6f3c5e-1d2a-4e8f-9c7b-5a4d3e2f1a0b", 30 * 86400),
                      ("1c7a4d6f-2e3b-4f9a-8d8c-6b5e4f3a2b1c", 60)):
        up = os.path.join(v2, "repositories", repo, "_uploads", uuid)
        os.makedirs(up)
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - age))
        with open(os.path.join(up, "startedat"), "w") as f:
            f.write(started)
        with open(os.path.join(up, "data"), "wb") as f:
            f.write(b"partial")
    facts["stale_upload"] = "0b6f3c5e-1d2a-4e8f-9c7b-5a4d3e2f1a0b"
    return root, repo, facts


def expected(repo, f, repaired=False):
    """The check's lines for the damaged tree ('*': the rest of the line)."""
    mark = " (repaired)" if repaired else ""
    return sorted([
        f"corrupt blob: {f['corrupt']} (its bytes hash to *",
        f"bad layer link: repositories/{repo}/_layers/sha256/{f['orphan'].split(':')[1]}{mark}",
        f"blob directory without data: blobs/sha256/{f['empty'][:2]}/{f['empty']}{mark}",
        f"dangling layer link: {repo} -> {f['corrupt']}{mark}",
        f"dangling tag: {repo}:ghost -> {f['ghost']}{mark}",
        f"stale upload: {repo} {f['stale_upload']}{mark}",
        f"missing blob: {repo}@{f['broken']} names {f['corrupt']}, not stored",
        f"unparseable manifest: {repo}@{f['junk']}: *",
    ])


def matches(lines, patterns):
    """Each line matches its pattern ('*' stands for the rest of the line)."""
    if len(lines) != len(patterns):
        return False
    remaining = list(lines)
    for p in patterns:
        head = p.split("*", 1)[0]
        hit = next((l for l in remaining if (l == p if "*" not in p else l.startswith(head))),
                   None)
        if hit is None:
            return False
        remaining.remove(hit)
    return True


def test_a_clean_tree_checks_clean(tmp_path):
    root = str(tmp_path / "root")
    os.mkdir(root)
    repo = unique_name("chk")
    with Ringport(root=root) as srv:
        srv.wait_ready()
        c = Client(srv.host)
        put(c, repo, "v1", manifest_for(c, repo, [random_bytes(100000, 4)]))
        multiarch_with_signature(c, repo, "multi", 20)
        # A Windows-style image: its foreign layer's bytes live elsewhere (urls).
        cfg = image_config()
        c.push_blob(repo, cfg)
        foreign = descriptor("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                             b"not here", urls=["https://example.invalid/layer"])
        put(c, repo, "windows", dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                                       "config": descriptor(OCI_CONFIG, cfg),
                                       "layers": [foreign]}))
    rc, lines, err = check(root)
    assert rc == 0 and lines == [], (lines, err)
    assert "0 problem(s)" in err and "blob(s)" in err, err


def test_check_names_every_problem_and_changes_nothing(damaged):
    root, repo, f = damaged
    before = snapshot_of(root)
    rc, lines, err = check(root)
    assert rc == 1, (lines, err)
    assert matches(lines, expected(repo, f)), "\n".join(lines)
    assert "8 problem(s), 0 repaired" in err, err
    assert snapshot_of(root) == before


def test_repair_quarantines_and_drops_what_points_at_nothing(damaged):
    root, repo, f = damaged
    rotten = open(blob_path(root, f["corrupt"]), "rb").read()
    rc, lines, err = check(root, "--repair")
    assert rc == 1, (lines, err)  # the broken image and the junk manifest stay reported
    assert matches(lines, expected(repo, f, repaired=True)), "\n".join(lines)
    assert "8 problem(s), 6 repaired" in err, err
    # The corrupt blob's bytes are in the quarantine, outside the tree.
    q = os.path.join(root, "ringport-quarantine", "sha256", f["corrupt"].split(":")[1])
    assert open(q, "rb").read() == rotten
    assert not os.path.exists(os.path.dirname(blob_path(root, f["corrupt"])))
    assert not os.path.exists(layer_link(root, repo, f["orphan"]))
    assert not os.path.exists(os.path.join(rootgen.v2(root), "repositories", repo,
                                           "_manifests/tags/ghost"))
    uploads = os.listdir(os.path.join(rootgen.v2(root), "repositories", repo, "_uploads"))
    assert uploads == ["1c7a4d6f-2e3b-4f9a-8d8c-6b5e4f3a2b1c"]
    # Again: only what cannot be repaired.
    rc, lines, err = check(root, "--repair")
    assert rc == 1 and matches(lines, [
        f"missing blob: {repo}@{f['broken']} names {f['corrupt']}, not stored",
        f"unparseable manifest: {repo}@{f['junk']}: *"]), "\n".join(lines)
    # Both servers serve the intact images; the broken one's layer is gone.
    with Ringport(root=root) as srv:
        srv.wait_ready()
        c = Client(srv.host)
        assert pulls(c, repo, "good") and pulls(c, repo, "multi")
        assert not pulls(c, repo, "broken")
        assert c.get_manifest(repo, "ghost").status == 404
    with Distribution(root=root) as dist:
        dc = Client(dist.host)
        assert pulls(dc, repo, "good") and pulls(dc, repo, "multi")


def test_check_refuses_while_a_server_holds_the_root(tmp_path):
    root = str(tmp_path / "root")
    os.mkdir(root)
    with Ringport(root=root) as srv:
        srv.wait_ready()
        rc, lines, err = check(root)
        assert rc == 2 and lines == [], (lines, err)
        assert "holds" in err and "/ringport/v1/scrub" in err, err


def test_bad_arguments_are_usage_errors(tmp_path):
    rc, _lines, err = check(str(tmp_path), "--threads", "0")
    assert rc == 2 and "usage: ringport check" in err, err
    rc, _lines, err = check(str(tmp_path), "--bogus")
    assert rc == 2 and "unknown argument --bogus" in err, err


def test_the_online_scrub_reports_what_it_finds_and_repairs_nothing(damaged):
    root, repo, f = damaged
    cfg = os.path.join(os.path.dirname(root), "scrub.toml")
    with open(cfg, "w") as fh:
        fh.write("[scrub]\nbytes_per_s = 100000000\ninterval_s = 3600\n")
    rotten = open(blob_path(root, f["corrupt"]), "rb").read()
    with Ringport(root=root, config=cfg) as srv:
        srv.wait_ready()
        c = Client(srv.host)
        rep = {}

        def pass_done():
            rep.clear()
            rep.update(c.request("GET", "/ringport/v1/scrub").json())
            return rep["pass"] == 1 and rep["phase"] == "waiting"

        assert wait_until(pass_done, 30.0), rep
        assert rep["enabled"] is True and rep["blobs"] == rep["blobs_total"] > 0, rep
        # What a check finds, less the stale upload the server's own purge
        # removed at its start; nothing is repaired while serving.
        want = [p for p in expected(repo, f) if not p.startswith("stale upload")]
        assert matches(sorted(rep["findings"]), want), "\n".join(rep["findings"])
        assert rep["problems"] == len(want), rep
        assert open(blob_path(root, f["corrupt"]), "rb").read() == rotten
        assert wait_until(lambda: any("scrub: corrupt blob: " + f["corrupt"] in line
                                      for line in srv.err), 10.0)
        # Serving goes on: the intact images pull.
        assert pulls(c, repo, "good") and pulls(c, repo, "multi")
        assert c.request("POST", "/ringport/v1/scrub").status == 405


def test_the_scrub_is_off_by_default(tmp_path):
    root = str(tmp_path / "root")
    os.mkdir(root)
    with Ringport(root=root) as srv:
        srv.wait_ready()
        rep = Client(srv.host).request("GET", "/ringport/v1/scrub").json()
        assert rep["enabled"] is False and rep["phase"] == "idle" and rep["pass"] == 0, rep
