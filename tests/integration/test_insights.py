# SPDX-License-Identifier: Apache-2.0
"""Insights and the repository admin API (/ringport/v1/repositories,
/insights, /timeseries) through the real binary.

The main test runs a seeded random workload (pushes sharing layers,
mounts, multi-arch indexes, tag and manifest deletes through both APIs, a
whole repository deleted, pulls by tag and by digest), then checks every
repository's stored bytes (unique and shared), tag and manifest counts,
the registry's totals and every pull count against a recount from the tree
on disk and the workload's own tally; then again after a restart, when the
sizes are learned from the tree and the pulls read back from their file."""
import json
import os
import random
import shutil
import tempfile

from ringtest.client import Client, sha256
from ringtest.harness import Ringport, wait_until
from ringtest.openapi import check

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
V2 = os.path.join("docker", "registry", "v2")


def recount(root):
    """Per repository, from the tree: the distinct blobs it links (layer
    links and manifest revisions), its tags, its manifests; and each blob's
    size from its data file."""
    repos = {}
    top = os.path.join(root, V2, "repositories")
    for dirpath, dirnames, _ in os.walk(top):
        if "_layers" not in dirnames and "_manifests" not in dirnames:
            continue
        name = os.path.relpath(dirpath, top)
        held, manifests, tags = set(), set(), set()
        for kind in ("_layers", os.path.join("_manifests", "revisions")):
            base = os.path.join(dirpath, kind, "sha256")
            for hexd in os.listdir(base) if os.path.isdir(base) else []:
                if os.path.exists(os.path.join(base, hexd, "link")):
                    held.add("sha256:" + hexd)
                    if kind != "_layers":
                        manifests.add("sha256:" + hexd)
        tdir = os.path.join(dirpath, "_manifests", "tags")
        for t in os.listdir(tdir) if os.path.isdir(tdir) else []:
            if os.path.exists(os.path.join(tdir, t, "current", "link")):
                tags.add(t)
        dirnames[:] = [d for d in dirnames if not d.startswith("_")]
        if held or tags:
            repos[name] = {"held": held, "manifests": manifests, "tags": tags}
    holders = {}
    for r in repos.values():
        for d in r["held"]:
            holders[d] = holders.get(d, 0) + 1

    def size(d):
        p = os.path.join(root, V2, "blobs", "sha256", d[7:9], d[7:], "data")
        return os.path.getsize(p) if os.path.exists(p) else 0

    out = {}
    for name, r in repos.items():
        total = sum(size(d) for d in r["held"])
        unique = sum(size(d) for d in r["held"] if holders[d] == 1)
        out[name] = {"size_bytes": total, "unique_bytes": unique, "shared_bytes": total - unique,
                     "tags": len(r["tags"]), "manifests": len(r["manifests"])}
    totals = {"size_bytes": sum(size(d) for d in holders),
              "logical_bytes": sum(v["size_bytes"] for v in out.values()),
              "blobs": len(holders)}
    return out, totals


def listed(c, **query):
    query.setdefault("limit", 1000)
    q = "&".join(f"{k}={v}" for k, v in query.items())
    r = c.request("GET", "/ringport/v1/repositories?" + q)
    assert r.status == 200, r
    return r.json()


def push_index(c, repo, tag, children):
    """An OCI index over (manifest body, platform) pairs already pushed."""
    idx = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": sha256(body), "size": len(body),
         "platform": {"os": "linux", "architecture": arch}} for body, arch in children]}
    body = json.dumps(idx).encode()
    r = c.put_manifest(repo, tag, body, OCI_INDEX)
    assert r.status == 201, r
    return body, sha256(body)


class Workload:
    """A seeded random workload with its own tally of pulls."""

    def __init__(self, c, seed):
        self.c = c
        self.rng = random.Random(seed)
        self.repos = ["team/app", "team/lib", "base", "ci/cache/x", "gone/soon"]
        self.layers = [os.urandom(self.rng.randrange(100, 20000)) for _ in range(14)]
        self.tags = {}  # (repo, tag) -> digest
        self.pulls = {}  # repo -> count
        self.tag_pulls = {}  # (repo, tag) -> count
        self.n = 0
        self.total_pulls = 0

    def push(self):
        repo = self.rng.choice(self.repos)
        self.n += 1
        layers = self.rng.sample(self.layers, self.rng.randrange(1, 4))
        tag = f"v{self.n}"
        _, d = self.c.push_image(repo, tag, layers=tuple(layers),
                                 config=json.dumps({"n": self.n}).encode())
        self.tags[(repo, tag)] = d

    def push_multi(self):
        repo = self.rng.choice(self.repos)
        kids = []
        for arch in ("amd64", "arm64"):
            self.n += 1
            body, _ = self.c.push_image(repo, f"k{self.n}", layers=(self.rng.choice(self.layers),),
                                        config=json.dumps({"arch": arch, "n": self.n}).encode())
            # the child is kept by digest only: its tag goes
            assert self.c.request("DELETE", f"/v2/{repo}/manifests/k{self.n}").status == 202
            kids.append((body, arch))
        self.n += 1
        tag = f"m{self.n}"
        _, d = push_index(self.c, repo, tag, kids)
        self.tags[(repo, tag)] = d

    def mount(self):
        src, dst = self.rng.sample(self.repos, 2)
        layer = self.rng.choice(self.layers)
        d = sha256(layer)
        r = self.c.request("POST", f"/v2/{dst}/blobs/uploads/?mount={d}&from={src}")
        assert r.status in (201, 202), r
        if r.status == 202:  # not linked in src: cancel the session it opened
            loc = r.header("Location")
            self.c.request("DELETE", loc[loc.index("/v2/"):])

    def pull(self):
        if not self.tags:
            return
        (repo, tag), d = self.rng.choice(sorted(self.tags.items()))
        by_digest = self.rng.random() < 0.3
        r = self.c.get_manifest(repo, d if by_digest else tag,
                                accept=f"{OCI_MANIFEST}, {OCI_INDEX}")
        assert r.status == 200, r
        self.pulls[repo] = self.pulls.get(repo, 0) + 1
        self.total_pulls += 1
        if not by_digest:
            self.tag_pulls[(repo, tag)] = self.tag_pulls.get((repo, tag), 0) + 1
        if self.rng.random() < 0.2:  # a HEAD by digest is not a pull
            assert self.c.request("HEAD", f"/v2/{repo}/manifests/{d}").status == 200

    def delete_tag(self, admin_api):
        if not self.tags:
            return
        repo, tag = self.rng.choice(sorted(self.tags))
        path = (f"/ringport/v1/repositories/{repo}/-/tags/{tag}" if admin_api
                else f"/v2/{repo}/manifests/{tag}")
        assert self.c.request("DELETE", path).status == 202
        del self.tags[(repo, tag)]
        self.tag_pulls.pop((repo, tag), None)

    def delete_manifest(self):
        if not self.tags:
            return
        (repo, tag), d = self.rng.choice(sorted(self.tags.items()))
        r = self.c.request("DELETE", f"/ringport/v1/repositories/{repo}/-/manifests/{d}")
        assert r.status == 202, r
        for k in [k for k, v in self.tags.items() if k[0] == repo and v == d]:
            del self.tags[k]
            self.tag_pulls.pop(k, None)

    def run(self, steps):
        for _ in range(steps):
            x = self.rng.random()
            if x < 0.30:
                self.push()
            elif x < 0.38:
                self.push_multi()
            elif x < 0.48:
                self.mount()
            elif x < 0.80:
                self.pull()
            elif x < 0.88:
                self.delete_tag(self.rng.random() < 0.5)
            else:
                self.delete_manifest()


def check_against_tree(c, root, w):
    want, totals = recount(root)
    got = {r["name"]: r for r in listed(c)["repositories"]}
    assert sorted(got) == sorted(want)
    for name, exp in want.items():
        g = got[name]
        assert g["sizes_complete"], name
        for k, v in exp.items():
            assert g[k] == v, (name, k, g[k], v)
        assert g["pulls"] == w.pulls.get(name, 0), (name, g["pulls"], w.pulls.get(name, 0))
    ins = check("GET", "/ringport/v1/insights", c.request("GET", "/ringport/v1/insights"))
    for k, v in totals.items():
        assert ins[k] == v, (k, ins[k], v)
    assert ins["pulls"] == w.total_pulls  # deleted repositories' too
    assert ins["deduplication_ratio_percent"] == totals["logical_bytes"] * 100 // totals["size_bytes"]
    for (repo, tag), n in sorted(w.tag_pulls.items()):
        t = check("GET", "/ringport/v1/repositories/{name}/-/tags/{tag}",
                  c.request("GET", f"/ringport/v1/repositories/{repo}/-/tags/{tag}"))
        assert t["pulls"] == n, (repo, tag, t["pulls"], n)
        assert t["pulls_per_day"][-1]["value"] == n


def test_insights_match_a_recount_from_the_tree_after_a_random_workload_and_a_restart():
    root = tempfile.mkdtemp(prefix="ringport-insights-")
    fd, cfg = tempfile.mkstemp(suffix=".toml")
    with os.fdopen(fd, "w") as f:
        f.write("[retention]\nactivity_save_s = 1\n")
    srv = Ringport(root=root, config=cfg).start()
    try:
        srv.wait_ready()
        c = Client(srv.host)
        w = Workload(c, seed=1205)
        w.run(160)
        # A whole repository goes through the admin API; its pulls go with it.
        r = c.request("DELETE", "/ringport/v1/repositories/gone/soon")
        assert r.status in (202, 404), r
        w.pulls.pop("gone/soon", None)
        for k in [k for k in w.tags if k[0] == "gone/soon"]:
            del w.tags[k]
            w.tag_pulls.pop(k, None)
        w.run(40)
        check_against_tree(c, root, w)
        # The pulls reach their file within a save or two; a restart reads
        # them back and learns every size from the tree.
        saved = os.path.join(root, ".ringport.insights")
        assert wait_until(lambda: os.path.exists(saved), 10)
        srv.stop()
        srv.start()
        srv.wait_ready()
        c = Client(srv.host)
        assert wait_until(lambda: c.request("GET", "/ringport/v1/insights").json()
                          ["sizes_complete"], 20)
        check_against_tree(c, root, w)
        ts = check("GET", "/ringport/v1/timeseries",
                   c.request("GET", "/ringport/v1/timeseries?days=3"))
        assert ts["pulls"][-1]["value"] == w.total_pulls  # deleted repositories' too
        assert ts["stored_bytes"][-1]["value"] == recount(root)[1]["size_bytes"]
    finally:
        srv.cleanup()
        shutil.rmtree(root, ignore_errors=True)
        os.unlink(cfg)


def test_the_repository_list_sorts_filters_searches_and_pages():
    with Ringport() as srv:
        srv.wait_ready()
        c = Client(srv.host)
        for i, name in enumerate(["alpha/web", "alpha/db", "beta/web", "gamma"]):
            c.push_image(name, "v1", layers=(os.urandom(1000 * (i + 1)),))
        c.get_manifest("beta/web", "v1")
        c.get_manifest("beta/web", "v1")
        c.get_manifest("gamma", "v1")
        names = lambda j: [r["name"] for r in j["repositories"]]  # noqa: E731
        assert names(listed(c)) == ["alpha/db", "alpha/web", "beta/web", "gamma"]
        assert names(listed(c, order="desc")) == ["gamma", "beta/web", "alpha/web", "alpha/db"]
        assert names(listed(c, sort="size")) == ["gamma", "beta/web", "alpha/db", "alpha/web"]
        assert names(listed(c, sort="size", order="asc"))[0] == "alpha/web"
        assert names(listed(c, sort="pulls"))[:2] == ["beta/web", "gamma"]
        assert names(listed(c, q="web")) == ["alpha/web", "beta/web"]
        assert names(listed(c, prefix="alpha/")) == ["alpha/db", "alpha/web"]
        assert names(listed(c, mirrored="true")) == []
        page = listed(c, offset=1, limit=2)
        assert page["total"] == 4 and names(page) == ["alpha/web", "beta/web"]
        assert names(listed(c, offset=4)) == []
        # Bad numbers are 400 PAGINATION_NUMBER_INVALID (as /v2/_catalog's
        # n); a bad choice is 405 UNSUPPORTED (as the gc endpoint's).
        for bad, status, code in (("sort=color", 405, "UNSUPPORTED"),
                                  ("order=up", 405, "UNSUPPORTED"),
                                  ("mirrored=maybe", 405, "UNSUPPORTED"),
                                  ("limit=0", 400, "PAGINATION_NUMBER_INVALID"),
                                  ("limit=1001", 400, "PAGINATION_NUMBER_INVALID"),
                                  ("offset=-1", 400, "PAGINATION_NUMBER_INVALID")):
            r = c.request("GET", "/ringport/v1/repositories?" + bad)
            assert (r.status, r.error_codes()) == (status, [code]), (bad, r)
        assert c.request("GET", "/ringport/v1/repositories/none/here").status == 404
        assert c.request("GET", "/ringport/v1/repositories/Bad..Name").status == 400
        assert c.request("GET", "/ringport/v1/repositories/gamma/-/other").status == 404
        assert c.request("GET", "/ringport/v1/repositories/gamma/-/tags/nope").status == 404
        # References that are not tags or digests are refused, and the
        # server keeps serving.
        for path, code in (("gamma/-/tags/a:b", "TAG_INVALID"),
                           ("gamma/-/manifests/foo:bar", "DIGEST_INVALID"),
                           ("gamma/-/manifests/v1", "DIGEST_INVALID"),
                           ("gamma/-/manifests/sha256:00", "DIGEST_INVALID")):
            r = c.request("GET", "/ringport/v1/repositories/" + path)
            assert (r.status, r.error_codes()) == (400, [code]), (path, r)
        r = c.request("DELETE", "/ringport/v1/repositories/none/here/-/tags/v1")
        assert (r.status, r.error_codes()) == (404, ["NAME_UNKNOWN"]), r
        r = c.request("GET", "/ringport/v1/repositories/gamma/-/tags?limit=201")
        assert r.status == 400, r
        assert c.get_manifest("gamma", "v1").status == 200


def test_a_repositorys_tags_show_platforms_referrers_and_what_a_delete_frees():
    with Ringport() as srv:
        srv.wait_ready()
        c = Client(srv.host)
        base = os.urandom(5000)
        c.push_image("other", "v1", layers=(base,))
        kids = []
        for arch in ("amd64", "arm64"):
            own = os.urandom(3000)
            body, d = c.push_image("multi", f"tmp-{arch}", layers=(base, own),
                                   config=json.dumps({"arch": arch}).encode())
            assert c.request("DELETE", f"/ringport/v1/repositories/multi/-/tags/tmp-{arch}"
                             ).status == 202
            kids.append((body, arch))
        idx_body, idx_d = push_index(c, "multi", "latest", kids)
        # A signature whose subject is the index.
        sig_cfg = c.push_blob("multi", b"{}")
        sig = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
               "artifactType": "application/vnd.example.signature",
               "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sig_cfg,
                          "size": 2},
               "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": sig_cfg,
                           "size": 2}],
               "subject": {"mediaType": OCI_INDEX, "digest": idx_d, "size": len(idx_body)}}
        sig_body = json.dumps(sig).encode()
        assert c.put_manifest("multi", sha256(sig_body), sig_body, OCI_MANIFEST).status == 201
        tags = check("GET", "/ringport/v1/repositories/{name}/-/tags",
                     c.request("GET", "/ringport/v1/repositories/multi/-/tags"))
        assert tags["total"] == 1
        t = tags["tags"][0]
        assert t["name"] == "latest" and t["digest"] == idx_d
        assert [(p["os"], p["architecture"]) for p in t["platforms"]] == [
            ("linux", "amd64"), ("linux", "arm64")]
        assert [r["artifact_type"] for r in t["referrers"]] == ["application/vnd.example.signature"]
        kid_sizes = sum(len(b) for b, _ in kids)
        own_bytes = 2 * 3000
        configs = sum(len(json.dumps({"arch": a}).encode()) for a in ("amd64", "arm64"))
        assert t["total_bytes"] == len(idx_body) + kid_sizes + own_bytes + configs + 5000
        # The tag's delete frees the index, its children, their own layers
        # and configs, and the signature; not the base layer nor the empty
        # config, which the manifest of `other` references too.
        f = t["delete_frees"]
        assert f["exact"] and f["manifests"] == 4 and f["blobs"] == 4
        assert f["bytes"] == len(idx_body) + kid_sizes + own_bytes + configs + len(sig_body)
        repo = check("GET", "/ringport/v1/repositories/{name}",
                     c.request("GET", "/ringport/v1/repositories/multi"))
        assert repo["delete_frees"]["manifests"] == 4
        assert repo["shared_bytes"] == 5000 + 2
        m = check("GET", "/ringport/v1/repositories/{name}/-/manifests/{digest}",
                  c.request("GET", f"/ringport/v1/repositories/multi/-/manifests/{idx_d}"))
        sig_d = sha256(sig_body)
        s = check("GET", "/ringport/v1/repositories/{name}/-/manifests/{digest}",
                  c.request("GET", f"/ringport/v1/repositories/multi/-/manifests/{sig_d}"))
        assert s["subject"] == idx_d and s["tags"] == []
        assert s["artifact_type"] == "application/vnd.example.signature"
        check("GET", "/ringport/v1/insights", c.request("GET", "/ringport/v1/insights"))
        assert m["tags"] == ["latest"] and len(m["platforms"]) == 2
        # Deleting the manifest through the admin API: gone from /v2/ too.
        r = c.request("DELETE", f"/ringport/v1/repositories/multi/-/manifests/{idx_d}")
        assert r.status == 202 and r.json()["digest"] == idx_d
        assert c.get_manifest("multi", "latest").status == 404
        assert c.get_manifest("multi", idx_d).status == 404
        r = c.request("DELETE", f"/ringport/v1/repositories/multi/-/manifests/{idx_d}")
        assert r.status == 404 and r.error_codes() == ["MANIFEST_UNKNOWN"]
        r = c.request("DELETE", "/ringport/v1/repositories/multi/-/manifests/sha256:zz")
        assert r.status == 400 and r.error_codes() == ["DIGEST_INVALID"]
        # A tag through the admin API, and a tag that is not there.
        c.push_image("other", "v2", layers=(base,))
        assert c.request("DELETE", "/ringport/v1/repositories/other/-/tags/v2").status == 202
        assert c.get_manifest("other", "v2").status == 404
        assert c.get_manifest("other", "v1").status == 200
        r = c.request("DELETE", "/ringport/v1/repositories/other/-/tags/v2")
        assert r.status == 404


def test_with_insights_off_pulls_are_not_counted_and_sizes_still_are():
    fd, cfg = tempfile.mkstemp(suffix=".toml")
    with os.fdopen(fd, "w") as f:
        f.write("[insights]\nenabled = false\n")
    try:
        with Ringport(config=cfg) as srv:
            srv.wait_ready()
            c = Client(srv.host)
            c.push_image("quiet", "v1", layers=(b"q" * 3000,))
            assert c.get_manifest("quiet", "v1").status == 200
            r = c.request("GET", "/ringport/v1/repositories/quiet").json()
            assert r["pulls"] == 0 and r["last_pull"] is None and r["last_push"] is None
            assert r["size_bytes"] >= 3000 and r["sizes_complete"]
    finally:
        os.unlink(cfg)
