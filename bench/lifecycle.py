# SPDX-License-Identifier: Apache-2.0
"""bench/compare's `gc` step (issue 12): garbage collection.

One tree, written directly in Distribution's layout (tests/lib/ringtest/
rootgen.py): `--gc-blobs` blobs (100,000; quick: 20,000), 30% of them garbage
(orphans, half linked into a repository's _layers, half linked nowhere),
every file dated two hours back so the online grace period (1 h) does not
hide the garbage. Rows:

- offline: `ringport garbage-collect` against `registry garbage-collect` on
  two copies of the tree: run time (ratio, ≥ 20×) and the blobs each removed
  (the same set);
- online: ringport serving a third copy while `ringport-bench ci-fleet`
  (16 clients: 14 pull and 2 push images; 1,500 rounds, quick: 300, long
  enough to cover the run) runs, once without a collection and once with
  one started a second in: failed requests (0), the run's
  time and bytes freed, p99 latency with against without (≤ 2×), and after
  it every blob of the tree's images on disk and every garbage blob gone.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "lib"))
from ringtest import rootgen  # noqa: E402

LAYERS_PER_IMAGE = 4
TAGS_PER_REPO = 10
AGE_S = 7200
TIMEOUT_S = 900


def make_tree(root, blobs):
    """Returns (kept digests, garbage digests)."""
    per_image = LAYERS_PER_IMAGE + 2  # config, layers, the manifest
    images = int(blobs * 0.7) // per_image
    kept, garbage = set(), set()
    for i in range(images):
        repo = f"gc/r{i // TAGS_PER_REPO:05d}"
        config = json.dumps({"architecture": "amd64", "os": "linux", "n": i}).encode()
        layers = [f"layer {i}.{k} ".encode() * 8 for k in range(LAYERS_PER_IMAGE)]
        _body, md = rootgen.write_image(root, repo, [f"t{i % TAGS_PER_REPO}"], config, layers)
        kept.update({rootgen.digest_of(config), md, *(rootgen.digest_of(x) for x in layers)})
    n_garbage = blobs - len(kept)
    for g in range(n_garbage):
        data = f"orphan {g} ".encode() * 8
        d = rootgen.write_blob(root, data)
        if g % 2 == 0:
            rootgen.link_layer(root, f"gc/r{(g // 2) % max(1, images // TAGS_PER_REPO):05d}", d)
        garbage.add(d)
    then = time.time() - AGE_S
    for dirpath, _dirs, files in os.walk(rootgen.v2(root)):
        for f in files:
            os.utime(os.path.join(dirpath, f), (then, then))
    return kept, garbage


def timed(cmd, log, timeout, env=None):
    t0 = time.monotonic()
    with open(log, "w") as f:
        cp = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout,
                            check=False, env=env)
    return time.monotonic() - t0, cp.returncode


def offline(ringport, distribution, tree, scratch, logdir, say, timeout):
    out = {}
    a = os.path.join(scratch, "gc-offline-distribution")
    b = os.path.join(scratch, "gc-offline-ringport")
    for d in (a, b):
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(tree, d, symlinks=True)
    os.sync()  # neither run pays for writing back the copies
    before = rootgen.blobs_on_disk(tree)
    cfg = os.path.join(scratch, "gc-distribution.yml")
    with open(cfg, "w") as f:
        f.write(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                f"    rootdirectory: {a}\n  delete:\n    enabled: true\nhttp:\n"
                f"  addr: 127.0.0.1:0\n")
    # Page caches warm for both: each copy was just written. First the dry
    # runs (the mark and the walk of blobs/, nothing removed), then the runs.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RINGPORT_")}
    out["distribution_dry_s"], _ = timed([distribution, "garbage-collect", "--dry-run", cfg],
                                         os.path.join(logdir, "gc-offline-distribution-dry.txt"),
                                         timeout)
    out["ringport_dry_s"], _ = timed([ringport, "garbage-collect", "--dry-run", "--root", b],
                                     os.path.join(logdir, "gc-offline-ringport-dry.txt"),
                                     timeout, env)
    say(f"gc offline dry runs: Distribution {out['distribution_dry_s']:.2f} s, ringport "
        f"{out['ringport_dry_s']:.2f} s")
    say("gc offline: registry garbage-collect")
    out["distribution_s"], rc_d = timed([distribution, "garbage-collect", cfg],
                                        os.path.join(logdir, "gc-offline-distribution.txt"),
                                        timeout)
    say(f"  {out['distribution_s']:.2f} s (exit {rc_d})")
    say("gc offline: ringport garbage-collect")
    out["ringport_s"], rc_r = timed([ringport, "garbage-collect", "--root", b],
                                    os.path.join(logdir, "gc-offline-ringport.txt"), timeout, env)
    say(f"  {out['ringport_s']:.2f} s (exit {rc_r})")
    gone_d, gone_r = before - rootgen.blobs_on_disk(a), before - rootgen.blobs_on_disk(b)
    out.update({"exit_distribution": rc_d, "exit_ringport": rc_r, "blobs": len(before),
                "removed_distribution": len(gone_d), "removed_ringport": len(gone_r),
                "same_removed": gone_d == gone_r})
    shutil.rmtree(a, ignore_errors=True)
    shutil.rmtree(b, ignore_errors=True)
    return out


def gc_request(url, method="GET", query=""):
    req = urllib.request.Request(f"{url}/ringport/v1/gc{query}", method=method)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def fleet(bench, url, pid, label, path, rounds, logdir):
    args = [bench, "run", "--url", url, "--workload", "ci-fleet", "--pullers", "14",
            "--pushers", "2", "--layers", "4", "--layer-size", "64KiB", "--count", str(rounds),
            "--server-pid", str(pid), "--label", label, "--json", path, "--no-progress"]
    return subprocess.Popen(args, stdout=open(os.path.join(logdir, f"{label}.txt"), "w"),
                            stderr=subprocess.STDOUT)


def load_doc(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def online(bench, start_ringport, tree, kept, garbage, scratch, logdir, say, rounds, timeout):
    root = os.path.join(scratch, "gc-online")
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(tree, root, symlinks=True)
    out = {}
    srv = start_ringport("gc-online", root)
    try:
        base_path = os.path.join(logdir, "gc-online-baseline.json")
        say("gc online: ci-fleet without a collection")
        p = fleet(bench, srv.url, srv.pid, "gc-online-baseline", base_path, rounds, logdir)
        p.wait(timeout=timeout)
        out["baseline"] = load_doc(base_path)
        say("gc online: ci-fleet with a collection started 1 s in")
        gc_path = os.path.join(logdir, "gc-online-during.json")
        p = fleet(bench, srv.url, srv.pid, "gc-online-during", gc_path, rounds, logdir)
        time.sleep(1.0)
        started = gc_request(srv.url, "POST")
        run = started["run"]
        t0 = time.monotonic()
        report = started
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            report = gc_request(srv.url)
            if report["run"] == run and report["phase"] in ("done", "failed"):
                break
            time.sleep(0.05)
        out["gc_wall_s"] = time.monotonic() - t0
        out["gc_during_load"] = p.poll() is None
        out["report"] = report
        p.wait(timeout=timeout)
        out["during"] = load_doc(gc_path)
        say(f"  gc {report.get('phase')} in {out['gc_wall_s']:.2f} s: "
            f"{report.get('blobs_deleted')} blobs, {report.get('bytes_freed')} bytes freed; "
            f"load still running at its end: {out['gc_during_load']}")
    finally:
        srv.stop()
    on_disk = rootgen.blobs_on_disk(root)
    out["missing_referenced"] = len(kept - on_disk)
    out["garbage_left"] = len(garbage & on_disk)
    shutil.rmtree(root, ignore_errors=True)
    return out


def dangling_links(root):
    """Layer and revision links whose blob data is missing."""
    base = os.path.join(rootgen.v2(root), "repositories")
    out = 0
    for dirpath, _dirs, files in os.walk(base):
        if "link" in files and ("/_layers/" in dirpath or "/revisions/" in dirpath):
            with open(os.path.join(dirpath, "link")) as f:
                if not os.path.exists(rootgen.blob_path(root, f.read().strip())):
                    out += 1
    return out


def kills(start_ringport, start_distribution, tree, kept, scratch, say, rounds, seed=12):
    """`rounds` collections killed with SIGKILL at random moments (a restart
    between each), then one run to the end; after every kill, links to
    missing data and referenced blobs missing are counted, and at the end
    Distribution pulls every tag's manifest of a sample of repositories."""
    import random
    rng = random.Random(seed)
    root = os.path.join(scratch, "gc-kill")
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(tree, root, symlinks=True)
    out = {"rounds": 0, "dangling": 0, "missing_referenced": 0, "killed_mid_run": 0}
    for r in range(rounds + 1):
        srv = start_ringport("gc-kill", root)
        try:
            started = gc_request(srv.url, "POST", "?grace_s=0")
            if r == rounds:  # the last run goes to its end
                deadline = time.monotonic() + TIMEOUT_S
                rep = started
                while time.monotonic() < deadline:
                    rep = gc_request(srv.url)
                    if rep["run"] == started["run"] and rep["phase"] in ("done", "failed"):
                        break
                    time.sleep(0.05)
                out["final"] = rep
                continue
            time.sleep(rng.uniform(0.05, 1.5))
            mid = gc_request(srv.url)["phase"] not in ("done", "failed")
            out["killed_mid_run"] += 1 if mid else 0
            srv.proc.kill()
            srv.proc.wait()
        finally:
            srv.stop()
        out["rounds"] += 1 if r < rounds else 0
        out["dangling"] += dangling_links(root)
        out["missing_referenced"] += len(kept - rootgen.blobs_on_disk(root))
    say(f"gc kill -9: {out['rounds']} kills ({out['killed_mid_run']} during a run), "
        f"{out['dangling']} dangling links, {out['missing_referenced']} referenced blobs missing")
    dist = start_distribution("gc-kill-distribution", root)
    try:
        bad = 0
        repos = sorted({d for d in os.listdir(os.path.join(rootgen.v2(root), "repositories",
                                                           "gc"))})[:50]
        for repo in repos:
            for t in range(TAGS_PER_REPO):
                req = urllib.request.Request(
                    f"{dist.url}/v2/gc/{repo}/manifests/t{t}", method="GET",
                    headers={"Accept": rootgen.OCI_MANIFEST})
                try:
                    with urllib.request.urlopen(req, timeout=10) as resp:
                        m = json.loads(resp.read())
                    for b in [m["config"]] + m["layers"]:
                        h = urllib.request.Request(f"{dist.url}/v2/gc/{repo}/blobs/{b['digest']}",
                                                   method="HEAD")
                        with urllib.request.urlopen(h, timeout=10):
                            pass
                except OSError:
                    bad += 1
        out["distribution_failed_pulls"] = bad
        out["distribution_checked"] = len(repos) * TAGS_PER_REPO
    finally:
        dist.stop()
    shutil.rmtree(root, ignore_errors=True)
    return out


def compare_step(args, ringport, distribution, bench, start_ringport, scratch, logdir, say,
                 start_distribution=None):
    """`start_ringport(name, root)` returns a started server (url, pid, stop())."""
    blobs = args.gc_blobs or (20000 if args.quick else 100000)
    tree = tempfile.mkdtemp(prefix="gc-tree-", dir=scratch)
    t0 = time.monotonic()
    kept, garbage = make_tree(tree, blobs)
    say(f"gc: tree of {len(kept) + len(garbage)} blobs ({len(garbage)} garbage) written in "
        f"{time.monotonic() - t0:.1f} s")
    res = {"blobs": len(kept) + len(garbage), "garbage": len(garbage)}
    try:
        res["offline"] = offline(ringport, distribution, tree, scratch, logdir, say, TIMEOUT_S)
        res["online"] = online(bench, start_ringport, tree, kept, garbage, scratch, logdir, say,
                               300 if args.quick else 1500, TIMEOUT_S)
        if start_distribution is not None:
            res["kills"] = kills(start_ringport, start_distribution, tree, kept, scratch, say,
                                 5 if args.quick else 20)
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        res["error"] = f"{type(e).__name__}: {e}"
        say(f"gc: FAILED ({res['error']})")
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    return res


def rows(res, row, fmt):
    """The `gc` rows of bench/compare's table."""
    gc = res.get("gc")
    if not gc:
        return
    n = f"{gc.get('blobs', 0):,} blobs, {gc.get('garbage', 0):,} garbage"
    off = gc.get("offline") or {}
    if off:
        r, d = off.get("ringport_s"), off.get("distribution_s")
        ratio = d / r if r and d else None
        ok = bool(ratio and ratio >= 20 and off.get("same_removed")
                  and off.get("exit_ringport") == 0)
        rd, dd = off.get("ringport_dry_s"), off.get("distribution_dry_s")
        row(f"gc: offline, {n}", fmt(r, " s"), fmt(d, " s"), fmt(ratio, "×"),
            "≥ 20× faster, the same blobs removed", ok,
            f"removed: ringport {off.get('removed_ringport')}, Distribution "
            f"{off.get('removed_distribution')}; same set: {off.get('same_removed')}; "
            f"dry runs (mark and walk, nothing removed): ringport {fmt(rd, ' s')}, "
            f"Distribution {fmt(dd, ' s')} ({fmt(dd / rd if rd and dd else None, '×')})")
    on = gc.get("online") or {}
    if on:
        rep = on.get("report") or {}
        base = ((on.get("baseline") or {}).get("results") or {})
        during = ((on.get("during") or {}).get("results") or {})
        errors = (base.get("errors") or 0) + (during.get("errors") or 0)
        row(f"gc: online while 16 clients push and pull, {n}",
            fmt(on.get("gc_wall_s"), " s"), "— (needs read-only)", "—",
            "0 failed requests, 0 missing referenced blobs",
            errors == 0 and on.get("missing_referenced") == 0 and rep.get("phase") == "done"
            and on.get("garbage_left") == 0 and on.get("gc_during_load"),
            f"failed requests {errors}; missing referenced {on.get('missing_referenced')}; "
            f"garbage left {on.get('garbage_left')}; freed {rep.get('bytes_freed')} bytes, "
            f"{rep.get('blobs_deleted')} blobs, {rep.get('links_deleted')} links")
    k = gc.get("kills") or {}
    if k:
        fin = k.get("final") or {}
        ok = (k.get("rounds", 0) > 0 and k.get("dangling") == 0
              and k.get("missing_referenced") == 0 and k.get("distribution_failed_pulls") == 0
              and fin.get("phase") == "done")
        row(f"gc: kill -9 at {k.get('rounds')} random moments of a run, {n}",
            f"{k.get('dangling')} dangling, {k.get('missing_referenced')} missing", "—", "—",
            "every restart serves every referenced blob; Distribution serves the tree", ok,
            f"{k.get('killed_mid_run')} kills during a run; Distribution pulled "
            f"{k.get('distribution_checked', 0) - (k.get('distribution_failed_pulls') or 0)} of "
            f"{k.get('distribution_checked')} tags whole after the final run "
            f"({fin.get('blobs_deleted')} blobs removed by it)")
    if on:
        rep = on.get("report") or {}
        base = ((on.get("baseline") or {}).get("results") or {})
        during = ((on.get("during") or {}).get("results") or {})
        p99b = (base.get("latency_us") or {}).get("p99")
        p99d = (during.get("latency_us") or {}).get("p99")
        ratio = p99d / p99b if p99b and p99d else None
        row("gc: p99 request latency during a run against without",
            fmt(p99d and p99d / 1000, " ms"), "—", fmt(ratio, "×"), "≤ 2×",
            bool(ratio and ratio <= 2), f"without: {fmt(p99b and p99b / 1000, ' ms')}")
