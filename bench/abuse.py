#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The abuse rounds, long form (issue 9): memory held flat under hostile load.

Against one running registry, two identical rounds of: `--absent` requests
for random absent names, tags, digests and upload ids (pipelined over
`--conns` keep-alive connections), `--sessions` upload sessions started and
abandoned, and `--stalled` connections that send half a request head and
stop. A well-behaved client pushes and pulls an image and polls /healthz the
whole time. After each round: VmRSS, and for ringport its own status
(/ringport/v1/status: repository states, interned digests, upload sessions,
live heap from mallinfo2).

The first round may warm pools and allocator arenas; the second must grow
RSS by at most 2 MiB. bench/compare runs this against ringport and
Distribution side by side (step `abuse`); alone:

    bench/abuse.py --url http://127.0.0.1:5000 --pid PID [--absent 1000000]
                   [--sessions 10000] [--stalled 10000] [--json FILE]
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "lib"))
from ringtest import abuse  # noqa: E402


def measure(host, pid, absent, sessions, stalled, conns=4, rounds=2, settle_s=2.0,
            time_limit_s=1800, is_ringport=True, say=print):
    """Runs the rounds; returns a JSON-able result."""
    out = {"absent": absent, "sessions": sessions, "stalled": stalled, "conns": conns,
           "rss_start_kib": abuse.vm_rss_kib(pid), "rounds": []}
    # Distribution 2.8.2 has no /healthz (its health check is on a debug port).
    good = abuse.WellBehaved(host, health_path="/healthz" if is_ringport else "/v2/")
    good.start()
    try:
        for rnd in range(rounds):
            res = abuse.one_round(host, absent, sessions, stalled, seed=1000 + rnd,
                                  time_limit_s=time_limit_s, conns=conns)
            time.sleep(settle_s)  # the stalled connections' closes land
            res["rss_kib"] = abuse.vm_rss_kib(pid)
            res["fds"] = abuse.open_fds(pid)
            res["good_ok"], res["good_failures"] = good.ok, good.failures
            if is_ringport:
                res["status"] = abuse.status(host)
            out["rounds"].append(res)
            say(f"  round {rnd + 1}: {res['seconds']:.0f} s, RSS {res['rss_kib']:,} KiB, "
                f"good pushes {good.ok} ({good.failures} failed), "
                f"statuses {res['absent_statuses']}")
    finally:
        good.finish()
    out["good"] = {"ok": good.ok, "failures": good.failures,
                   "health_failures": good.health_failures, "errors": good.errors[:10]}
    r = out["rounds"]
    if len(r) >= 2:
        out["round2_growth_kib"] = r[-1]["rss_kib"] - r[-2]["rss_kib"]
        if is_ringport:
            out["round2_heap_growth_bytes"] = (r[-1]["status"]["memory"]["heap_in_use_bytes"]
                                               - r[-2]["status"]["memory"]["heap_in_use_bytes"])
    return out


def side_by_side(start_ringport, start_distribution, say, measure_one):
    """Runs measure_one(kind, server) against a fresh ringport, then a fresh
    Distribution; {kind: result}, or {kind: {"error": ...}} for one that failed."""
    out = {}
    for kind, start in (("ringport", start_ringport), ("distribution", start_distribution)):
        server = start()
        try:
            out[kind] = measure_one(kind, server)
        except Exception as e:  # one server failing must not lose the other's figures
            out[kind] = {"error": repr(e)}
            say(f"  FAILED: {e!r}")
        finally:
            server.stop()
    return out


def compare_step(args, start_ringport, start_distribution, say):
    """bench/compare's `abuse` step: the same rounds against a fresh ringport
    and a fresh Distribution, one after the other."""
    def one(kind, server):
        say(f"abuse: {args.abuse_absent:,} absent requests, {args.abuse_sessions:,} abandoned "
            f"sessions, {args.abuse_stalled:,} stalled connections per round, against {kind}")
        host = server.url.split("://", 1)[1]
        return measure(host, server.pid, args.abuse_absent, args.abuse_sessions,
                       args.abuse_stalled, is_ringport=kind == "ringport", say=say)

    return side_by_side(start_ringport, start_distribution, say, one)


def rows(res, row, fmt):
    """The `abuse` rows of bench/compare's table."""
    ab = res.get("abuse")
    if not ab:
        return
    rp, di = ab.get("ringport", {}), ab.get("distribution", {})
    n = rp.get("absent") or di.get("absent") or 0
    what = (f"{n:,} absent requests, {rp.get('sessions', 0):,} abandoned upload sessions, "
            f"{rp.get('stalled', 0):,} half-request connections per round")

    def growth(x):
        if "error" in x:
            return f"failed: {x['error']}"
        g = x.get("round2_growth_kib")
        rss = [r.get("rss_kib") for r in x.get("rounds", [])]
        return f"{fmt(g, 'KiB', 0)} (RSS {' → '.join(fmt(v, '', 0) for v in rss)} kB)"

    g = rp.get("round2_growth_kib")
    row(f"abuse, two rounds of {what}: RSS growth in round 2", growth(rp), growth(di), "—",
        "≤ 2 MiB", None if g is None else g <= 2048)

    def good(x):
        if "good" not in x:
            return "—"
        gd = x["good"]
        return (f"{gd['ok']} push+pull cycles, {gd['failures']} failed, /healthz failed "
                f"{gd['health_failures']}×")

    gd = rp.get("good")
    row("abuse: a well-behaved client during the rounds", good(rp), good(di), "—",
        "no failure", None if not gd else gd["failures"] == 0 and gd["health_failures"] == 0 and
        gd["ok"] > 0)
    if rp.get("rounds"):
        st = [r["status"] for r in rp["rounds"]]
        txt = "; ".join(
            f"round {i + 1}: heap {fmt(s['memory']['heap_in_use_bytes'] / 1024, 'KiB', 0)}, "
            f"{s['index']['repository_states']} repository states, {s['index']['digests']} "
            f"digests, {s['uploads']['sessions']} upload sessions"
            for i, s in enumerate(st))
        row("abuse: what ringport holds after each round (information)", txt, "—", "—", "—", None)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--pid", type=int, required=True, help="the server's pid (for VmRSS)")
    ap.add_argument("--absent", type=int, default=1000000)
    ap.add_argument("--sessions", type=int, default=10000)
    ap.add_argument("--stalled", type=int, default=10000)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--distribution", action="store_true",
                    help="the server is not ringport (no /ringport/v1/status)")
    ap.add_argument("--json", help="write the result here")
    a = ap.parse_args()
    host = a.url.split("://", 1)[-1].rstrip("/")
    res = measure(host, a.pid, a.absent, a.sessions, a.stalled, a.conns,
                  is_ringport=not a.distribution)
    text = json.dumps(res, indent=1)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text)
    print(text)
    ok = res.get("round2_growth_kib", 1 << 30) <= 2048 and res["good"]["failures"] == 0 \
        and res["good"]["health_failures"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
