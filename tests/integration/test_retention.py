# SPDX-License-Identifier: Apache-2.0
"""Retention policies (issue 12): [[retention.policy]], POST /ringport/v1/retention.

- keep_last, keep_tags and delete_older_than_days decide by push time; a dry
  run reports and deletes nothing; a real run deletes the tags, the manifests
  they leave unreached (platforms and referrers too), then garbage collection
  frees the blobs; what stays pulls, from ringport and from Distribution;
- delete_not_pulled_days counts from the last pull (a HEAD counts), and never
  from before pull tracking began;
- delete_untagged_days removes untagged manifests unused that long, and keeps
  the platforms of tagged indexes and the referrers of live manifests;
- push and pull times are saved outside the tree in batches and survive a
  clean stop and a kill -9;
- a schedule runs on its own; bad requests get clear errors.

Times in the past are made by editing the saved activity (.ringport.activity)
and file mtimes while the server is stopped: the server reads what it would
have recorded itself had the pushes been that old.
"""
import os
import time

import pytest

from ringtest.client import Client, sha256
from ringtest.harness import Distribution, Ringport, wait_until
from ringtest.images import (blob_path, manifest_for, multiarch_with_signature, pulls, put,
                             revision_link, run_to_end)
from ringtest.oci import OCI_MANIFEST, random_bytes, unique_name

pytestmark = pytest.mark.skipif(
    os.environ.get("RINGTEST_TARGET", "ringport") == "distribution",
    reason="ringport's own retention")

TIMEOUT_S = 30.0
DAY = 86400
ACTIVITY = ".ringport.activity"


def config(root, policies, extra="", name="ringport"):
    path = os.path.join(root, "..", f"{os.path.basename(root)}-{name}.toml")
    with open(path, "w") as f:
        f.write(extra)
        for p in policies:
            f.write("[[retention.policy]]\n")
            for k, v in p.items():
                val = "[" + ", ".join(f'"{x}"' for x in v) + "]" if isinstance(v, list) else v
                f.write(f"{k} = {val}\n")
    return path


def read_activity(root):
    """{key: (pulled, pushed)} and the tracking start, as saved."""
    since, entries = None, {}
    with open(os.path.join(root, ACTIVITY)) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("ringport-activity 1 since="):
                since = int(line.split("=", 1)[1])
                continue
            pulled, pushed, key = line.split(" ", 2)
            entries[key] = (int(pulled), int(pushed))
    return since, entries


def write_activity(root, since, entries):
    with open(os.path.join(root, ACTIVITY), "w") as f:
        f.write(f"ringport-activity 1 since={since}\n")
        for key, (pulled, pushed) in entries.items():
            f.write(f"{pulled} {pushed} {key}\n")


def run_retention(c, dry_run=False):
    rep = run_to_end(c, "retention", f"dry_run={str(dry_run).lower()}", TIMEOUT_S)
    assert rep["errors"] == 0, rep
    return rep


def tags_of(c, repo):
    r = c.request("GET", f"/v2/{repo}/tags/list")
    return sorted(r.json().get("tags") or []) if r.status == 200 else []


def items(rep):
    return sorted((i.get("tag") or i["digest"], i["reason"]) for i in rep["items"])


@pytest.fixture()
def root(tmp_path):
    r = tmp_path / "root"
    r.mkdir()
    return str(r)


def test_keep_last_and_patterns_by_push_time_then_gc_frees(root):
    cfg = config(root, [{"repositories": ["ret-*/**"], "keep_last": 2,
                         "keep_tags": ["stable", "v*"], "delete_older_than_days": 30}],
                 extra="[gc]\ngrace_s = 0\n")
    repo = unique_name("ret") + "/app"
    other = unique_name("other")  # no policy names it
    with Ringport(root=root, config=cfg) as srv:
        srv.wait_ready()
        c = Client(srv.host)
        imgs = {}
        for i, tag in enumerate(["new1", "new2", "old1", "old2", "stable", "v1.0", "young"]):
            body = manifest_for(c, repo, [random_bytes(3000, 100 + i)])
            imgs[tag] = (put(c, repo, tag, body), body)
        # One image under two tags: one old, one protected by pattern.
        shared_d = put(c, repo, "old-shared", imgs["v1.0"][1])
        put(c, other, "old", manifest_for(c, other, [random_bytes(100, 99)]))
    since, act = read_activity(root)
    now = int(time.time())
    ages = {"new1": 1, "new2": 2, "old1": 40, "old2": 50, "stable": 90, "v1.0": 90,
            "young": 10, "old-shared": 60}
    for tag, age in ages.items():
        act[f"{repo}:{tag}"] = (0, now - age * DAY)
    act[f"{other}:old"] = (0, now - 400 * DAY)
    write_activity(root, since, act)

    with Ringport(root=root, config=cfg) as srv:
        srv.wait_ready()
        c = Client(srv.host)
        dry = run_retention(c, dry_run=True)
        assert dry["dry_run"] is True and dry["repositories"] == 1, dry
        assert dry["tags_examined"] == 8, dry
        # old1 and old2 are past 30 days and not among the 2 newest; their
        # manifests go with them. old-shared's image stays tagged v1.0.
        assert items(dry) == sorted([("old1", "older_than"), ("old2", "older_than"),
                                     ("old-shared", "older_than"),
                                     (imgs["old1"][0], "freed"), (imgs["old2"][0], "freed")])
        assert dry["tags_deleted"] == 3 and dry["manifests_deleted"] == 2, dry
        assert "old1" in tags_of(c, repo)  # a dry run deletes nothing

        rep = run_retention(c)
        assert rep["dry_run"] is False and items(rep) == items(dry), rep
        assert rep["tags_deleted"] == 3 and rep["manifests_deleted"] == 2, rep
        assert tags_of(c, repo) == ["new1", "new2", "stable", "v1.0", "young"]
        assert tags_of(c, other) == ["old"]
        for tag in ("old1", "old2"):
            assert c.get_manifest(repo, imgs[tag][0]).status == 404
            assert not os.path.exists(revision_link(root, repo, imgs[tag][0]))
        assert pulls(c, repo, shared_d)
        # Garbage collection follows and frees the deleted images' blobs.
        gone = [sha256(random_bytes(3000, 102)), sha256(random_bytes(3000, 103))]
        assert wait_until(lambda: not any(os.path.exists(blob_path(root, d)) for d in gone),
                          TIMEOUT_S)
        # The files go before the run's counters are added: wait for its end.
        assert wait_until(lambda: c.request("GET", "/ringport/v1/gc").json()["phase"] == "done",
                          TIMEOUT_S)
        g = c.request("GET", "/ringport/v1/gc").json()
        assert g["run"] >= 1 and g["blobs_deleted"] >= 6, g
        for tag in ("new1", "new2", "stable", "v1.0", "young"):
            assert pulls(c, repo, tag), tag
        assert wait_until(lambda: any("retention: deleted tag " + repo + ":old1" in line
                                      for line in srv.err), TIMEOUT_S)
        # A second run finds nothing more.
        again = run_retention(c)
        assert again["tags_deleted"] == 0 and again["manifests_deleted"] == 0, again

    with Distribution(root=root) as dist:
        dc = Client(dist.host)
        for tag in ("new1", "stable", "v1.0"):
            assert pulls(dc, repo, tag), tag
        assert dc.get_manifest(repo, "old1").status == 404


def test_not_pulled_counts_from_the_last_pull_and_never_before_tracking(root):
    cfg = config(root, [{"repositories": ["**"], "delete_not_pulled_days": 30}])
    repo = unique_name("ret")
    with Ringport(root=root, config=cfg) as srv:
        srv.wait_ready()
        c = Client(srv.host)
        digests = {}
        for i, tag in enumerate(["pulled-long-ago", "pulled-lately", "never", "headed",
                                 "by-digest"]):
            digests[tag] = put(c, repo, tag, manifest_for(c, repo, [random_bytes(500, 200 + i)]))
    since, act = read_activity(root)
    now = int(time.time())
    # Tracking began 10 days ago: nothing counts as unpulled for 30 days yet.
    for tag in digests:
        act[f"{repo}:{tag}"] = (now - 40 * DAY if tag != "pulled-lately" else now - DAY,
                                now - 100 * DAY)
    act[f"{repo}:never"] = (0, now - 100 * DAY)
    write_activity(root, now - 10 * DAY, act)
    with Ringport(root=root, config=cfg) as srv:
        srv.wait_ready()
        c = Client(srv.host)
        rep = run_retention(c, dry_run=True)
        assert rep["tags_examined"] == 5 and rep["items"] == [], rep
    # Tracking began 60 days ago: tags unpulled for 30 days go, unless a
    # pull since (a HEAD by tag, a GET by digest) says otherwise.
    write_activity(root, now - 60 * DAY, read_activity(root)[1] | act)
    with Ringport(root=root, config=cfg) as srv:
        srv.wait_ready()
        c = Client(srv.host)
        assert c.request("HEAD", f"/v2/{repo}/manifests/headed",
                         headers={"Accept": OCI_MANIFEST}).status == 200
        assert c.get_manifest(repo, digests["by-digest"]).status == 200
        rep = run_retention(c)
        assert items(rep) == sorted([("pulled-long-ago", "not_pulled"), ("never", "not_pulled"),
                                     (digests["pulled-long-ago"], "freed"),
                                     (digests["never"], "freed")]), rep
        assert tags_of(c, repo) == ["by-digest", "headed", "pulled-lately"]


def test_untagged_manifests_go_after_days_platforms_and_referrers_stay(root):
    cfg = config(root, [{"repositories": ["**"], "delete_untagged_days": 2}])
    repo = unique_name("ret")
    with Ringport(root=root, config=cfg) as srv:
        srv.wait_ready()
        c = Client(srv.host)
        (amd_d, arm_d), index_d, sig_d = multiarch_with_signature(c, repo, "multi", 300)
        # latest moves to a new image: the old one is untagged (CI's commonest garbage).
        old_d = put(c, repo, "latest", manifest_for(c, repo, [random_bytes(1000, 302)]))
        new_d = put(c, repo, "latest", manifest_for(c, repo, [random_bytes(1000, 303)]))
        recent = manifest_for(c, repo, [random_bytes(1000, 304)])
        recent_d = put(c, repo, sha256(recent), recent)  # untagged, but new
    # Every revision link and recorded put is 5 days old, except the recent one's.
    old_t = time.time() - 5 * DAY
    since, act = read_activity(root)
    for d in (amd_d, arm_d, index_d, sig_d, old_d, new_d):
        os.utime(revision_link(root, repo, d), (old_t, old_t))
        act[f"{repo}@{d}"] = (0, int(old_t))
    write_activity(root, since, act)
    with Ringport(root=root, config=cfg) as srv:
        srv.wait_ready()
        c = Client(srv.host)
        rep = run_retention(c)
        assert items(rep) == [(old_d, "untagged")], rep
        assert rep["tags_examined"] == 0 and rep["manifests_deleted"] == 1, rep
        assert c.get_manifest(repo, old_d).status == 404
        for d in (amd_d, arm_d, index_d, sig_d, new_d, recent_d):
            assert c.get_manifest(repo, d).status == 200, d
        assert pulls(c, repo, "multi") and pulls(c, repo, "latest")
        r = c.request("GET", f"/v2/{repo}/referrers/{index_d}")
        assert [m["digest"] for m in r.json()["manifests"]] == [sig_d], r


def test_a_deleted_index_takes_its_platforms_and_referrers(root):
    cfg = config(root, [{"repositories": ["**"], "keep_last": 1}])
    repo = unique_name("ret")
    with Ringport(root=root, config=cfg) as srv:
        srv.wait_ready()
        c = Client(srv.host)
        (amd_d,), index_d, sig_d = multiarch_with_signature(c, repo, "v1", 400,
                                                            arches=("amd64",))
        v2_d = put(c, repo, "v2", manifest_for(c, repo, [random_bytes(2048, 401)]))
    since, act = read_activity(root)
    act[f"{repo}:v1"] = (0, int(time.time()) - DAY)
    write_activity(root, since, act)
    with Ringport(root=root, config=cfg) as srv:
        srv.wait_ready()
        c = Client(srv.host)
        rep = run_retention(c)
        assert items(rep) == sorted([("v1", "beyond_keep_last"), (index_d, "freed"),
                                     (amd_d, "freed"), (sig_d, "freed")]), rep
        for d in (index_d, amd_d, sig_d):
            assert c.get_manifest(repo, d).status == 404, d
        assert tags_of(c, repo) == ["v2"] and c.get_manifest(repo, v2_d).status == 200


def test_activity_survives_a_clean_stop_and_a_kill(root):
    cfg = config(root, [{"repositories": ["**"], "keep_last": 100}],
                 extra="[retention]\nactivity_save_s = 1\n")
    repo = unique_name("ret")
    with Ringport(root=root, config=cfg) as srv:
        srv.wait_ready()
        c = Client(srv.host)
        t0 = int(time.time())
        d = put(c, repo, "v1", manifest_for(c, repo, [random_bytes(100, 500)]))
        assert c.get_manifest(repo, "v1").status == 200
    since, act = read_activity(root)
    assert since is not None and since <= t0, since
    pulled, pushed = act[f"{repo}:v1"]
    assert pushed >= t0 and pulled >= t0, act
    assert act[f"{repo}@{d}"][0] >= t0, act
    srv = Ringport(root=root, config=cfg).start()
    try:
        srv.wait_ready()
        c = Client(srv.host)
        put(c, repo, "v2", manifest_for(c, repo, [random_bytes(100, 501)]))
        # Saved within a second or two; then a kill -9 loses none of it.
        assert wait_until(lambda: f"{repo}:v2" in read_activity(root)[1], TIMEOUT_S)
        srv.kill()
        since2, act2 = read_activity(root)
        assert since2 == since and act2[f"{repo}:v1"] == act[f"{repo}:v1"], act2
        # A deleted tag's entry goes with it.
        srv.start()
        srv.wait_ready()
        c = Client(srv.host)
        assert c.request("DELETE", f"/v2/{repo}/manifests/v1").status == 202
        assert wait_until(lambda: f"{repo}:v1" not in read_activity(root)[1], TIMEOUT_S)
    finally:
        srv.cleanup()


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_schedule_applies_policies_on_its_own(root, dry_run):
    """Every second, keep_last 1: a, then b a second later. A scheduled run
    deletes a; with [retention] dry_run, it only reports that it would."""
    cfg = config(root, [{"repositories": ["**"], "keep_last": 1}],
                 extra=f"[retention]\ninterval_s = 1\ndry_run = {str(dry_run).lower()}\n")
    repo = unique_name("ret")
    with Ringport(root=root, config=cfg) as srv:
        srv.wait_ready()
        c = Client(srv.host)
        put(c, repo, "a", manifest_for(c, repo, [random_bytes(100, 600)]))
        time.sleep(1.1)  # a later push time for b
        put(c, repo, "b", manifest_for(c, repo, [random_bytes(100, 601)]))

        if dry_run:  # every run (one a second) reports a, and deletes nothing
            def reported():
                rep = c.request("GET", "/ringport/v1/retention").json()
                return (rep.get("phase") == "done" and rep["dry_run"] is True
                        and ("a", "beyond_keep_last") in items(rep))

            assert wait_until(reported, TIMEOUT_S)
            assert tags_of(c, repo) == ["a", "b"]
        else:
            assert wait_until(lambda: tags_of(c, repo) == ["b"], TIMEOUT_S)
            rep = c.request("GET", "/ringport/v1/retention").json()
            assert rep["run"] >= 1 and rep["dry_run"] is False, rep


def test_bad_requests_get_clear_errors(root):
    cfg = config(root, [{"repositories": ["**"], "keep_last": 1}])
    with Ringport(root=root, config=cfg) as srv:
        srv.wait_ready()
        c = Client(srv.host)
        idle = c.request("GET", "/ringport/v1/retention")
        assert idle.status == 200 and idle.json() == {"run": 0, "phase": "idle"}, idle
        r = c.request("POST", "/ringport/v1/retention?dry_run=perhaps")
        assert r.status == 405 and r.json()["errors"][0]["code"] == "UNSUPPORTED", r
        assert c.request("DELETE", "/ringport/v1/retention").status == 405
    with Ringport(root=root, config=cfg, env={"RINGPORT_STORAGE_READ_ONLY": "true"}) as srv:
        srv.wait_ready()
        c = Client(srv.host)
        r = c.request("POST", "/ringport/v1/retention")
        assert r.status == 405 and b"only a dry run" in r.body, r
        assert run_retention(c, dry_run=True)["phase"] == "done"


def test_a_registry_that_may_not_delete_only_reports_on_schedule(root):
    """Read-only: the scheduled runs are dry runs, and nothing goes."""
    cfg = config(root, [{"repositories": ["**"], "keep_last": 1}],
                 extra="[retention]\ninterval_s = 1\n[storage]\nread_only = true\n")
    plain = config(root, [{"repositories": ["**"], "keep_last": 1}], name="plain")
    repo = unique_name("ret")
    with Ringport(root=root, config=plain) as srv:
        srv.wait_ready()
        c = Client(srv.host)
        put(c, repo, "a", manifest_for(c, repo, [random_bytes(100, 800)]))
        time.sleep(1.1)
        put(c, repo, "b", manifest_for(c, repo, [random_bytes(100, 801)]))
    with Ringport(root=root, config=cfg) as srv:
        srv.wait_ready()
        c = Client(srv.host)

        def reported():
            rep = c.request("GET", "/ringport/v1/retention").json()
            return (rep.get("phase") == "done" and rep["dry_run"] is True
                    and ("a", "beyond_keep_last") in items(rep))

        assert wait_until(reported, TIMEOUT_S)
        assert tags_of(c, repo) == ["a", "b"]
