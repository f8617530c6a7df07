# SPDX-License-Identifier: Apache-2.0
"""bench/compare's `retention` step (issue 12): retention policies.

One tree, written directly in Distribution's layout: `--retention-tags` tags
(20,000; quick: 5,000) in repositories of 100 tags each (ret/rNNNN), every tag
its own image (manifests differ by an annotation; config and layer shared in
a repository), tag t099 pushed last and each earlier one an hour before it
(the tag links' mtimes, which is what ringport reads for a tree written
before it tracked push times). The policy: repositories ret/**, keep_last 10,
so 90% of the tags and their manifests go. Rows:

- ringport's dry run (the plan only) and its real run while `ringport-bench
  ci-fleet` (16 clients: 14 pull and 2 push, in their own repositories) runs:
  run time, failed requests (0), p99 latency against a run of the same load
  without retention (≤ 2×), and after it exactly the 10 newest tags left in
  every repository;
- Distribution has no retention: the same deletions through its API, the way
  a cleanup script does it (list tags, HEAD each doomed tag for its digest,
  DELETE the manifest by digest), 8 at a time; its run time against
  ringport's (ratio), and the same tags left.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "lib"))
from ringtest import rootgen  # noqa: E402
import lifecycle  # noqa: E402  (bench/lifecycle.py: the ci-fleet runner)

TAGS_PER_REPO = 100
KEEP = 10
TIMEOUT_S = 1800
ACCEPT = "application/vnd.oci.image.manifest.v1+json"


def make_tree(root, tags):
    """Returns {repo: [tags in push order]}."""
    repos = {}
    now = time.time()
    written = set()
    for r in range(max(1, tags // TAGS_PER_REPO)):
        repo = f"ret/r{r:04d}"
        config = json.dumps({"architecture": "amd64", "os": "linux", "repo": r}).encode()
        layer = f"layer of {repo} ".encode() * 64
        names = []
        for t in range(TAGS_PER_REPO):
            tag = f"t{t:03d}"
            rootgen.write_image(root, repo, [tag], config, [layer],
                                annotations={"n": str(t)}, blobs_written=written)
            at = now - (TAGS_PER_REPO - t) * 3600
            link = os.path.join(rootgen.v2(root), "repositories", repo, "_manifests/tags", tag,
                                "current/link")
            os.utime(link, (at, at))
            names.append(tag)
        repos[repo] = names
    return repos


def request(url, method="GET", path="", headers=None):
    req = urllib.request.Request(url + path, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=30) as r:
        body = r.read()
        return r.status, r.headers, body


def tags_left(url, repos):
    out = {}
    for repo in repos:
        _s, _h, body = request(url, path=f"/v2/{repo}/tags/list")
        out[repo] = sorted(json.loads(body).get("tags") or [])
    return out


def expected_left(repos):
    return {repo: sorted(names[-KEEP:]) for repo, names in repos.items()}


def run_ringport(url, dry_run, timeout):
    """POSTs a run and polls it to its end; returns (seconds, report)."""
    t0 = time.monotonic()
    _s, _h, body = request(url, "POST", f"/ringport/v1/retention?dry_run={str(dry_run).lower()}")
    run = json.loads(body)["run"]
    rep = {}
    while time.monotonic() - t0 < timeout:
        _s, _h, body = request(url, path="/ringport/v1/retention")
        rep = json.loads(body)
        if rep["run"] == run and rep["phase"] in ("done", "failed"):
            break
        time.sleep(0.05)
    rep.pop("items", None)
    return time.monotonic() - t0, rep


def script_against_api(url, repos, threads=8):
    """What a cleanup script does against a registry without retention:
    list each repository's tags, HEAD the doomed ones for their digests, and
    DELETE the manifests by digest. Returns (seconds, failures)."""
    work = []
    t0 = time.monotonic()
    for repo, names in repos.items():
        _s, _h, body = request(url, path=f"/v2/{repo}/tags/list")
        listed = set(json.loads(body).get("tags") or [])
        work += [(repo, t) for t in names[:-KEEP] if t in listed]
    failures = []
    lock = threading.Lock()

    def worker(k):
        for i in range(k, len(work), threads):
            repo, tag = work[i]
            try:
                _s, h, _b = request(url, "HEAD", f"/v2/{repo}/manifests/{tag}",
                                    {"Accept": ACCEPT})
                d = h["Docker-Content-Digest"]
                request(url, "DELETE", f"/v2/{repo}/manifests/{d}")
            except OSError as e:
                with lock:
                    failures.append(f"{repo}:{tag}: {e}")

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.monotonic() - t0, failures


def compare_step(args, bench, start_ringport, start_distribution, scratch, logdir, say):
    """`start_ringport(name, root, config_text)` and `start_distribution(name,
    root)` return started servers (url, pid, stop())."""
    tags = args.retention_tags or (5000 if args.quick else 20000)
    rounds = 300 if args.quick else 1500
    tree = tempfile.mkdtemp(prefix="retention-tree-", dir=scratch)
    t0 = time.monotonic()
    repos = make_tree(tree, tags)
    n = sum(len(v) for v in repos.values())
    say(f"retention: tree of {n} tags in {len(repos)} repositories written in "
        f"{time.monotonic() - t0:.1f} s")
    res = {"tags": n, "repositories": len(repos)}
    want = expected_left(repos)
    policy = ('[[retention.policy]]\nrepositories = ["ret/**"]\n'
              f"keep_last = {KEEP}\n")
    try:
        root = os.path.join(scratch, "retention-ringport")
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(tree, root, symlinks=True)
        srv = start_ringport("retention-ringport", root, policy)
        try:
            res["dry_s"], res["dry"] = run_ringport(srv.url, True, TIMEOUT_S)
            say(f"retention: ringport dry run {res['dry_s']:.2f} s: "
                f"{res['dry'].get('tags_deleted')} tags would go")
            base_path = os.path.join(logdir, "retention-baseline.json")
            p = lifecycle.fleet(bench, srv.url, srv.pid, "retention-baseline", base_path,
                                rounds, logdir)
            p.wait(timeout=TIMEOUT_S)
            res["baseline"] = lifecycle.load_doc(base_path)
            during_path = os.path.join(logdir, "retention-during.json")
            p = lifecycle.fleet(bench, srv.url, srv.pid, "retention-during", during_path,
                                rounds, logdir)
            time.sleep(1.0)
            res["run_s"], res["run"] = run_ringport(srv.url, False, TIMEOUT_S)
            res["during_load"] = p.poll() is None
            p.wait(timeout=TIMEOUT_S)
            res["during"] = lifecycle.load_doc(during_path)
            say(f"retention: ringport run {res['run_s']:.2f} s: {res['run'].get('tags_deleted')} "
                f"tags, {res['run'].get('manifests_deleted')} manifests; load still running at "
                f"its end: {res['during_load']}")
            res["ringport_left_ok"] = tags_left(srv.url, repos) == want
        finally:
            srv.stop()
        shutil.rmtree(root, ignore_errors=True)

        root = os.path.join(scratch, "retention-distribution")
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(tree, root, symlinks=True)
        dist = start_distribution("retention-distribution", root)
        try:
            res["distribution_s"], failures = script_against_api(dist.url, repos)
            res["distribution_failures"] = len(failures)
            res["distribution_left_ok"] = tags_left(dist.url, repos) == want
            say(f"retention: the same deletions through Distribution's API "
                f"{res['distribution_s']:.2f} s, {len(failures)} failures")
        finally:
            dist.stop()
        shutil.rmtree(root, ignore_errors=True)
    except (OSError, subprocess.SubprocessError, ValueError, KeyError) as e:
        res["error"] = f"{type(e).__name__}: {e}"
        say(f"retention: FAILED ({res['error']})")
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    return res


def rows(res, row, fmt):
    """The `retention` rows of bench/compare's table."""
    r = res.get("retention")
    if not r:
        return
    n = f"{r.get('tags', 0):,} tags in {r.get('repositories', 0):,} repositories, keep_last 10"
    run = r.get("run") or {}
    rs, ds = r.get("run_s"), r.get("distribution_s")
    ratio = ds / rs if rs and ds else None
    row(f"retention: {n}", fmt(rs, "s"), fmt(ds, "s"), fmt(ratio, "×"),
        "faster than a cleanup script against Distribution's API; the same tags left",
        bool(ratio and ratio >= 1 and r.get("ringport_left_ok") and r.get("distribution_left_ok")
             and run.get("errors") == 0),
        f"ringport deleted {run.get('tags_deleted')} tags and {run.get('manifests_deleted')} "
        f"manifests while 16 clients pushed and pulled; Distribution: list tags, HEAD and "
        f"DELETE by digest, 8 at a time ({r.get('distribution_failures')} failures); tags left "
        f"as expected: ringport {r.get('ringport_left_ok')}, Distribution "
        f"{r.get('distribution_left_ok')}; dry run (plan only) {fmt(r.get('dry_s'), 's')}")
    base = ((r.get("baseline") or {}).get("results") or {})
    during = ((r.get("during") or {}).get("results") or {})
    if base and during:
        errors = (base.get("errors") or 0) + (during.get("errors") or 0)
        bp = (base.get("latency_us") or {}).get("p99")
        dp = (during.get("latency_us") or {}).get("p99")
        slow = dp / bp if bp and dp else None
        row("retention: requests of 16 clients during a run", fmt(dp and dp / 1000, "ms"), "—",
            fmt(slow, "×"), "0 failed, p99 ≤ 2× without a run",
            bool(errors == 0 and slow is not None and slow <= 2 and r.get("during_load")),
            f"p99 without a run {fmt(bp and bp / 1000, 'ms')}; failed requests {errors}; the "
            f"load was still running when the run ended: {r.get('during_load')}")
