# SPDX-License-Identifier: Apache-2.0
"""bench/compare's `check` step (issue 12): `ringport check` and the scrub.

One tree in Distribution's layout: `--check-mib` MiB (2,048; quick: 512) of
random blobs of 4 MiB, linked as the layers of images in 32 repositories.
Distribution has no check; the bars are the machine's and ringport's own:

- offline: `ringport check` over the tree, page cache warm (the tree was
  just written and read once), against `openssl speed -evp sha256` on one
  core (≥ 1×: the check is bound by hashing, on every core);
- online: `ringport-bench ci-fleet` (16 clients: 14 pull, 2 push) against a
  server without the scrub and one with `[scrub] bytes_per_s` = 64 MiB/s,
  three times each, alternating (the best of each kind): requests per second with
  the scrub at most 5% below without, 0 failed requests, and the scrub
  reading at ≥ 80% of its rate over the load (passes back to back).
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
import lifecycle  # noqa: E402  (bench/lifecycle.py: the ci-fleet runner)

BLOB_MIB = 4
REPOS = 32
SCRUB_BPS = 64 << 20
TIMEOUT_S = 1800


def make_tree(root, mib):
    blobs = max(1, mib // BLOB_MIB)
    for i in range(blobs):
        layer = os.urandom(BLOB_MIB << 20)
        config = json.dumps({"architecture": "amd64", "os": "linux", "n": i}).encode()
        rootgen.write_image(root, f"check/r{i % REPOS:02d}", [f"t{i}"], config, [layer])
    return blobs


def read_all(root):
    """Reads every file once: the page cache holds the tree for both runs."""
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            with open(os.path.join(dirpath, f), "rb") as fh:
                while fh.read(1 << 20):
                    pass


def scrub_report(url):
    with urllib.request.urlopen(f"{url}/ringport/v1/scrub", timeout=10) as r:
        return json.loads(r.read())


def compare_step(args, ringport, bench, start_ringport, sha256_one_core, scratch, logdir, say):
    """`start_ringport(name, root, config_text)` returns a started server
    (url, pid, stop()); `sha256_one_core()` is openssl's figure in bytes/s."""
    mib = args.check_mib or (512 if args.quick else 2048)
    rounds = 300 if args.quick else 1000
    root = tempfile.mkdtemp(prefix="check-tree-", dir=scratch)
    res = {}
    try:
        t0 = time.monotonic()
        res["blobs"] = make_tree(root, mib)
        say(f"check: tree of {mib} MiB in {res['blobs']} layers written in "
            f"{time.monotonic() - t0:.1f} s")
        read_all(root)
        res["sha256_Bps"] = sha256_one_core()
        env = {k: v for k, v in os.environ.items() if not k.startswith("RINGPORT_")}
        log = os.path.join(logdir, "check-offline.txt")
        t0 = time.monotonic()
        with open(log, "w") as f:
            cp = subprocess.run([ringport, "check", "--root", root], stdout=f,
                                stderr=subprocess.STDOUT, timeout=TIMEOUT_S, env=env, check=False)
        res["offline_s"] = time.monotonic() - t0
        res["offline_exit"] = cp.returncode
        res["offline_bytes"] = sum(
            os.path.getsize(rootgen.blob_path(root, d)) for d in rootgen.blobs_on_disk(root))
        say(f"check: offline {res['offline_s']:.2f} s, exit {cp.returncode}, "
            f"{res['offline_bytes'] / res['offline_s'] / 1e6:.0f} MB/s; one core's SHA-256 "
            f"{res['sha256_Bps'] / 1e6:.0f} MB/s")

        runs = []
        for k, scrub in enumerate((False, True) * 3):
            label = f"check-{'scrub' if scrub else 'plain'}-{k}"
            # Passes one after another (a second between them): the scrub
            # reads at its rate for the whole load.
            text = f"[scrub]\nbytes_per_s = {SCRUB_BPS}\ninterval_s = 1\n" if scrub else ""
            srv = start_ringport(label, root, text)
            try:
                path = os.path.join(logdir, f"{label}.json")
                p = lifecycle.fleet(bench, srv.url, srv.pid, label, path, rounds, logdir)
                p.wait(timeout=TIMEOUT_S)
                rep = scrub_report(srv.url)
                runs.append({"scrub": scrub, "doc": lifecycle.load_doc(path), "report": rep})
            finally:
                srv.stop()
            r = (runs[-1]["doc"] or {}).get("results") or {}
            say(f"check: ci-fleet {'with' if scrub else 'without'} the scrub: "
                f"{r.get('ops_per_s') or 0:.0f} ops/s, errors {r.get('errors')}; scrub "
                f"{rep.get('phase')}, {rep.get('bytes', 0) >> 20} MiB read")
        res["runs"] = runs
    except (OSError, subprocess.SubprocessError, ValueError, KeyError) as e:
        res["error"] = f"{type(e).__name__}: {e}"
        say(f"check: FAILED ({res['error']})")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return res


def rows(res, row, fmt):
    """The `check` rows of bench/compare's table."""
    c = res.get("check")
    if not c:
        return
    s, b, sha = c.get("offline_s"), c.get("offline_bytes"), c.get("sha256_Bps")
    rate = b / s if s and b else None
    ratio = rate / sha if rate and sha else None
    row(f"check: offline, {fmt(b and b / 2**20, 'MiB', 0)} in {c.get('blobs')} blobs, "
        "page cache warm", fmt(rate and rate / 1e6, "MB/s", 0), "— (no check)",
        fmt(ratio, "×"), "≥ one core's SHA-256 (openssl speed)",
        bool(ratio and ratio >= 1 and c.get("offline_exit") == 0),
        f"openssl speed -evp sha256, one core, 16 KiB: {fmt(sha and sha / 1e6, 'MB/s', 0)}; "
        f"exit status {c.get('offline_exit')} (0: nothing wrong)")
    runs = c.get("runs") or []

    def best(scrub):
        rates = [((x.get("doc") or {}).get("results") or {}).get("ops_per_s") or 0
                 for x in runs if x["scrub"] == scrub]
        return max(rates) if rates else None

    def errors():
        return sum(((x.get("doc") or {}).get("results") or {}).get("errors") or 0 for x in runs)

    def scrub_rate(x):
        """Bytes per second the scrub read over the load."""
        secs = ((x.get("doc") or {}).get("results") or {}).get("seconds") or 0
        return (x["report"].get("bytes_all_passes") or 0) / secs if secs else 0

    plain, scrub = best(False), best(True)
    if plain and scrub:
        slow = 1 - scrub / plain
        rates = [scrub_rate(x) for x in runs if x["scrub"]]
        reading = bool(rates) and min(rates) >= 0.8 * SCRUB_BPS
        row(f"scrub at {SCRUB_BPS >> 20} MiB/s while 16 clients push and pull",
            fmt(scrub, "ops/s", 0), "—", fmt(100 * slow, "%", 1),
            "≤ 5% slower, 0 failed requests",
            bool(slow <= 0.05 and errors() == 0 and reading),
            f"without the scrub {fmt(plain, 'ops/s', 0)} (best of 3 each, alternating); "
            f"failed requests {errors()}; the scrub read "
            f"{', '.join(fmt(r / 2**20, 'MiB/s') for r in rates)} over the loads")
