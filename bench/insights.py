# SPDX-License-Identifier: Apache-2.0
"""bench/compare's `insights` step (issue 13): the repository API on a big
registry.

A root of 100,000 repositories (ringport-genroot, one tag each, shared
blobs; 2,000 with --quick) is served by ringport, which first learns every
blob's size from the tree in the background (timed: from ready to
`sizes_complete`). Then, over one keep-alive connection, 30 requests each
(after 3 unmeasured):
- the first page of the repository list (50, by name), and by size;
- search as you type: the substring grows one keystroke at a time
  ("7", "77", "777", "7777"), each a request;
- the registry's insights (totals, top 10 by size and by pulls).
Target: every keystroke's p99 within 100 ms (a search box feels instant).
Distribution has no search: its nearest is /v2/_catalog, and a client
that searches must walk all of it (n=1000 pages) first; its first page
and the whole walk are timed on the same root.
"""
import http.client
import json
import os
import shutil
import subprocess
import time
import urllib.parse

KEYS = ["7", "77", "777", "7777"]
ROUNDS = 30


def timed(conn, path, n):
    """Milliseconds of `n` GETs of `path` (after 3 unmeasured), sorted."""
    out = []
    for i in range(n + 3):
        t = time.perf_counter()
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise ValueError(f"{path}: {r.status} {body[:200]!r}")
        if i >= 3:
            out.append((time.perf_counter() - t) * 1000)
    return sorted(out)


def pct(xs, p):
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else None


def walk_catalog(conn):
    """Every name, 1,000 per page, as a client-side search must."""
    names, last = 0, ""
    for _ in range(100000):
        conn.request("GET", "/v2/_catalog?n=1000" + (f"&last={urllib.parse.quote(last)}"
                                                      if last else ""))
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise ValueError(f"_catalog: {r.status}")
        got = json.loads(body)["repositories"]
        names += len(got)
        if len(got) < 1000 or not r.getheader("Link"):
            return names
        last = got[-1]
    return names


def compare_step(args, genroot, start_ringport, start_distribution, scratch, logdir, say):
    repos = 2000 if args.quick else 100000
    root = os.path.join(scratch, "insights")
    shutil.rmtree(root, ignore_errors=True)
    res = {"repos": repos}
    try:
        t = time.monotonic()
        subprocess.run([genroot, "--root", root, "--repos", str(repos), "--tags-per-repo", "1"],
                       check=True, capture_output=True, timeout=3600)
        res["genroot_s"] = round(time.monotonic() - t, 1)
        say(f"insights: {repos:,} repositories written in {res['genroot_s']} s")
        srv = start_ringport("insights", root, "")
        try:
            host = urllib.parse.urlsplit(srv.url).netloc
            conn = http.client.HTTPConnection(host, timeout=120)
            t = time.monotonic()
            for _ in range(600):
                conn.request("GET", "/ringport/v1/insights")
                r = conn.getresponse()
                body = r.read()
                if r.status == 200 and b'"sizes_complete":true' in body:
                    break
                time.sleep(0.1)
            res["sizes_s"] = round(time.monotonic() - t, 2)
            # The startup's background work (the snapshot save, the
            # verification) ends first: its CPU is not the API's.
            time.sleep(2 if args.quick else 10)
            rp = {"list": timed(conn, "/ringport/v1/repositories?limit=50", ROUNDS),
                  "by_size": timed(conn, "/ringport/v1/repositories?limit=50&sort=size", ROUNDS),
                  "insights": timed(conn, "/ringport/v1/insights", ROUNDS)}
            for k in KEYS:
                rp["q" + k] = timed(conn, f"/ringport/v1/repositories?limit=50&q={k}", ROUNDS)
            res["ringport"] = rp
            say("insights: ringport p99 ms: " + ", ".join(
                f"{k} {pct(v, 0.99):.1f}" for k, v in rp.items()))
        finally:
            srv.stop()
        dist = start_distribution("insights-dist", root)
        try:
            host = urllib.parse.urlsplit(dist.url).netloc
            conn = http.client.HTTPConnection(host, timeout=600)
            d = {"catalog_page": timed(conn, "/v2/_catalog?n=50", 5)}
            t = time.monotonic()
            d["walk_names"] = walk_catalog(conn)
            d["walk_ms"] = (time.monotonic() - t) * 1000
            res["distribution"] = d
            say(f"insights: Distribution _catalog?n=50 p50 {pct(d['catalog_page'], 0.5):.1f} ms,"
                f" whole catalog {d['walk_ms']:.0f} ms ({d['walk_names']:,} names)")
        finally:
            dist.stop()
    except (OSError, subprocess.SubprocessError, ValueError, KeyError) as e:
        res["error"] = f"{type(e).__name__}: {e}"
        say(f"insights: FAILED ({res['error']})")
    # The root (700,000 files at full size) is left to bench/compare's
    # cleanup of its scratch, which removes roots in parallel after the
    # table is written (shutil.rmtree here took over 10 minutes under load),
    # or keeps them with --keep-roots.
    return res


def rows(res, row, fmt):
    """The `insights` rows of bench/compare's table."""
    o = res.get("insights")
    if not o or not o.get("ringport"):
        return
    rp, d, n = o["ringport"], o.get("distribution") or {}, o["repos"]
    page = pct(d.get("catalog_page", []), 0.5)
    worst = max(pct(rp["q" + k], 0.99) for k in KEYS)
    row(f"search as you type over {n:,} repositories (p99 of the worst keystroke)",
        fmt(worst, "ms", 1), fmt(d.get("walk_ms"), "ms", 0),
        fmt(d.get("walk_ms") and d["walk_ms"] / worst, "×"), "≤ 100 ms", worst <= 100,
        "keystrokes " + ", ".join(f"'{k}' p50 {fmt(pct(rp['q' + k], 0.5), 'ms', 1)} p99 "
                                  f"{fmt(pct(rp['q' + k], 0.99), 'ms', 1)}" for k in KEYS)
        + "; Distribution has no search: the figure is its whole _catalog walk (n=1000 pages), "
        "which a client-side search needs first")
    row(f"repository list, first page of 50 by name, {n:,} repositories (p50)",
        fmt(pct(rp["list"], 0.5), "ms", 1), fmt(page, "ms", 1),
        fmt(page and page / pct(rp["list"], 0.5), "×"), "—", None,
        f"p99 {fmt(pct(rp['list'], 0.99), 'ms', 1)}; by size p50 "
        f"{fmt(pct(rp['by_size'], 0.5), 'ms', 1)} p99 {fmt(pct(rp['by_size'], 0.99), 'ms', 1)}; "
        "ringport's rows carry sizes, counts and activity; Distribution's _catalog?n=50 only "
        "names")
    row(f"registry insights (totals, top 10 by size and pulls), {n:,} repositories (p50)",
        fmt(pct(rp["insights"], 0.5), "ms", 1), "— (none)", "—", "—", None,
        f"p99 {fmt(pct(rp['insights'], 0.99), 'ms', 1)}; blob sizes learned from the tree "
        f"in {o.get('sizes_s')} s after ready")
