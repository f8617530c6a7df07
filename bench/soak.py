#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The soak, long form (issue 9): load held, faults survived, nothing lost.

64 clients push (monolithic, chunked, resumed), pull, HEAD, list tags, walk
the catalog, delete and mount for --seconds (600) against one ringport whose
root is a loop-mounted ext4 file system of --fs-mib (1024) that a filler
fills up and frees every 60 s; ringport is killed with SIGKILL every 30–90 s
and restarted; slow readers pull blobs 4 KiB at a time. After each restart
and at the end every acknowledged write is checked; at the end every blob in
the tree must hash to its path, and Distribution 2.8.2 must serve a sample
of the ledger. See tests/lib/ringtest/soak.py. Run as root:

    bench/soak.py [--seconds 600] [--clients 64] [--fs-mib 1024] [--json FILE]
"""
import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "lib"))
from ringtest.soak import Soak, make_small_fs  # noqa: E402


def run(seconds, clients, fs_mib, say=print):
    work = tempfile.mkdtemp(prefix="ringport-soak-")
    mnt, cleanup = make_small_fs(fs_mib, work)
    try:
        soak = Soak(mnt + "/root", clients=clients, duration_s=seconds,
                    kill_every_s=(max(5, seconds // 20), max(10, seconds // 7)), fs_path=mnt,
                    say=say)
        soak.filler_every_s = max(10.0, seconds / 10)
        rep = soak.run()
        rep["tree_integrity_problems"] = soak.tree_integrity()[:10]
        rep["distribution_problems"] = soak.distribution_serves()[:10]
        rss = [v for _, v in rep["rss_kib"] if v]
        rep["rss_kib_max"] = max(rss) if rss else None
        rep["ok"] = (not rep["unexplained"] and not rep["check_problems"]
                     and not rep["tree_integrity_problems"] and not rep["distribution_problems"]
                     and rep["clean_stop_code"] == 0 and rep["restarts"] >= 2)
        return rep
    finally:
        cleanup()


def rows(res, row, fmt):
    """bench/compare's soak rows."""
    s = res.get("soak")
    if not s:
        return
    if "error" in s:
        row("soak", f"failed: {s['error']}", "—", "—", "nothing lost", False)
        return
    served = sum(s["requests_ok"].values())
    row(f"soak, {s['duration_s']} s, {s['clients']} clients, kill -9 × {s['restarts'] - 1}, "
        f"disk filled × {s['fills']}: acknowledged writes all there, byte-identical",
        f"{fmt(served, '', 0)} operations ({s['requests_ok']}); errors {s['errors']}; "
        f"{s['acknowledged']['manifests']:,} manifests, {s['acknowledged']['blobs']:,} blobs "
        f"checked after each restart: {len(s['check_problems'])} problems; unexplained errors "
        f"{len(s['unexplained'])}; half-written blobs {len(s['tree_integrity_problems'])}",
        f"serves the resulting tree: {'yes' if not s['distribution_problems'] else 'NO'}", "—",
        "nothing lost, only errors the faults explain", s["ok"])
    row("soak: server RSS over the run (information)",
        f"max {fmt(s.get('rss_kib_max'), 'kB', 0)}; "
        + ", ".join(f"{t} s {v:,}" for t, v in s["rss_kib"][:: max(1, len(s['rss_kib']) // 8)]
                    if v), "—", "—", "—", None)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--fs-mib", type=int, default=1024)
    ap.add_argument("--json")
    a = ap.parse_args()
    rep = run(a.seconds, a.clients, a.fs_mib)
    text = json.dumps(rep, indent=1)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text)
    print(text)
    return 0 if rep["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
