#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Available after a crash (issue 9), measured on a generated root.

Measurements, each starting ringport on the same root (bench/compare
runs them in its `startup` and `scale` steps; alone, see --help):

- first answer: with no usable snapshot, the time from the listener opening
  to one manifest GET by tag answered, then 100 GETs of random repositories'
  tags at once (p50/p99/max), and the time until the index is complete
  (/readyz). Distribution, which always reads the tree, gets the same GETs.
- kill -9 under push load: clients push small images (a ledger keeps every
  acknowledged one); the server is killed mid-load and restarted; the time
  to /readyz, and then every acknowledged manifest is pulled by digest and
  by tag and compared byte for byte.
- background save: the snapshot is saved every second while a client pushes
  and another times manifest GETs; the longest GET, and each save's time and
  size from the log.
- stop while loading: SIGTERM during a no-snapshot load; when a request
  waiting for the index is answered (503), and when the process is gone.
- walk (cold roots only, bench/walk.py): where the no-snapshot load's time
  goes, against the device's own random-read rate.
"""
import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "lib"))
from ringtest import abuse  # noqa: E402
from ringtest.client import Client, sha256  # noqa: E402

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
RINGPORT = os.path.join(REPO, "build", "release", "src", "ringport")


def http_status(url, timeout=5.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


class Proc:
    """ringport (or any command printing `listening on HOST:PORT`) with its
    stderr in a file; t0 is when it was started."""

    def __init__(self, args, env, log_path):
        self.log_path = log_path
        self.log = open(log_path, "ab")
        # The log is shared by every start of a step: this run's lines are
        # the ones after this offset (an earlier start's "index verified"
        # must not end this one's quiet_after_start).
        self.log_offset = self.log.tell()
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, env=env,
                                  start_new_session=True)
        line = self.p.stdout.readline().decode()
        self.t_listen = time.monotonic()
        m = re.search(r"listening on (\S+)", line)
        if not m:
            self.kill()
            raise RuntimeError(f"did not start: {line!r}; see {log_path}")
        self.host = m.group(1)

    def wait_ready(self, timeout=900):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if http_status(f"http://{self.host}/readyz") == 200:
                return time.monotonic() - self.t0
            if self.p.poll() is not None:
                raise RuntimeError(f"exited while loading; see {self.log_path}")
            time.sleep(0.01)
        raise RuntimeError("never ready")

    def kill(self):
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGKILL)
            self.p.wait()
        self.log.close()

    def stop(self):
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(timeout=600)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()
        return self.p.returncode

    def log_lines(self):
        """This run's stderr lines."""
        with open(self.log_path, "rb") as f:
            f.seek(self.log_offset)
            return f.read().decode(errors="replace").splitlines()


def ringport_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RINGPORT_")}
    env.update({"RINGPORT_HTTP_ACCESS_LOG": "false", "RINGPORT_LOG_LEVEL": "info"})
    env.update(extra or {})
    return env


def start_ringport(root, log_path, extra=None):
    return Proc([RINGPORT, "serve", "--listen", "127.0.0.1:0", "--root", root],
                ringport_env(extra), log_path)


def timed_get(host, name, tag):
    t = time.monotonic()
    r = Client(host).get_manifest(name, tag, accept=OCI_MANIFEST)
    return time.monotonic() - t, r.status


def pct(sorted_v, p):
    return sorted_v[min(len(sorted_v) - 1, int(p * len(sorted_v)))] if sorted_v else None


def concurrent_gets(host, targets):
    """One GET per target at once (a thread each); (latencies sorted, statuses)."""
    out = [None] * len(targets)

    def one(i, name, tag):
        try:
            out[i] = timed_get(host, name, tag)
        except OSError as e:
            out[i] = (None, repr(e))

    threads = [threading.Thread(target=one, args=(i, n, t)) for i, (n, t) in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    lat = sorted(x[0] for x in out if x and x[0] is not None)
    statuses = {}
    for x in out:
        k = str(x[1]) if x else "no answer"
        statuses[k] = statuses.get(k, 0) + 1
    return lat, statuses


def first_answer(root, log_path, repos, tags_per_repo, start_fn=None, seed=1):
    """Start with no usable snapshot; the first GET, then 100 at once, then ready."""
    rng = random.Random(seed)
    pick = [(f"repo-{rng.randrange(repos):05d}", f"tag-{rng.randrange(tags_per_repo)}")
            for _ in range(101)]
    proc = (start_fn or (lambda: start_ringport(
        root, log_path, {"RINGPORT_STORAGE_INDEX_SNAPSHOT": "false"})))()
    try:
        first, st = timed_get(proc.host, *pick[0])
        first_ms = (time.monotonic() - proc.t_listen) * 1000
        lat, statuses = concurrent_gets(proc.host, pick[1:])
        ready_s = proc.wait_ready()
    finally:
        proc.stop()
    return {"first_get_ms_after_listen": round(first_ms, 1), "first_get_status": st,
            "first_get_ms": round(first * 1000, 1),
            "hundred_p50_ms": round(pct(lat, 0.5) * 1000, 1) if lat else None,
            "hundred_p99_ms": round(pct(lat, 0.99) * 1000, 1) if lat else None,
            "hundred_max_ms": round(lat[-1] * 1000, 1) if lat else None,
            "hundred_statuses": statuses, "index_complete_s": ready_s}


def stop_while_loading(root, log_path, after_s=0.5):
    """Start with no usable snapshot, ask for the catalog (it waits for the
    index), SIGTERM `after_s` after the listener opened: when is the waiting
    request answered, and when is the process gone?"""
    proc = start_ringport(root, log_path, {"RINGPORT_STORAGE_INDEX_SNAPSHOT": "false"})
    answer = {}

    def catalog():
        try:
            r = Client(proc.host).request("GET", "/v2/_catalog?n=10")
            answer["status"] = r.status
        except OSError as e:
            answer["status"] = repr(e)
        answer["t"] = time.monotonic()

    t = threading.Thread(target=catalog)
    t.start()
    time.sleep(max(0.0, proc.t_listen + after_s - time.monotonic()))
    loading = http_status(f"http://{proc.host}/readyz") == 503
    t_term = time.monotonic()
    os.killpg(proc.p.pid, signal.SIGTERM)
    t.join(timeout=600)
    try:
        code = proc.p.wait(timeout=600)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = None
    t_exit = time.monotonic()
    proc.log.close()
    stopped = any("index load stopped" in line for line in proc.log_lines()[-50:])
    return {"still_loading_at_sigterm": loading, "waiter_status": answer.get("status"),
            "waiter_answered_ms": round((answer["t"] - t_term) * 1000, 1) if "t" in answer
            else None, "exit_ms": round((t_exit - t_term) * 1000, 1), "exit_code": code,
            "load_stopped": stopped}


class Pusher(threading.Thread):
    """Pushes small images to bench-crash/p<k> repositories until stopped or
    the server goes away; `acked` is the ledger of (name, tag, manifest, digest)."""

    def __init__(self, host, k, pause_s=0.0):
        super().__init__(daemon=True)
        self.host, self.k, self.pause_s = host, k, pause_s
        self.acked, self.errors = [], 0
        self.stop_flag = threading.Event()

    def run(self):
        c = Client(self.host)
        for i in range(1000000):
            if self.stop_flag.is_set():
                return
            name, tag = f"bench-crash/p{self.k}", f"v{i}"
            try:
                body, digest = c.push_image(name, tag, layers=(f"{self.k}/{i}".encode(),))
                self.acked.append((name, tag, body, digest))
                if self.pause_s:
                    self.stop_flag.wait(self.pause_s)
            except Exception:  # the kill: stop at the first failure
                self.errors += 1
                return


def crash_restart(root, log_path, pushers=8, load_s=5.0, cold=False, drop=None):
    proc = start_ringport(root, log_path)
    proc.wait_ready()
    ps = [Pusher(proc.host, k) for k in range(pushers)]
    for p in ps:
        p.start()
    time.sleep(load_s)
    proc.kill()  # kill -9 mid-load
    for p in ps:
        p.stop_flag.set()
        p.join(timeout=60)
    acked = [a for p in ps for a in p.acked]
    if cold and drop:
        drop()
    proc = start_ringport(root, log_path)
    try:
        ready_s = proc.wait_ready()
        line = ""
        for _ in range(500):  # the log writer flushes every 50 ms
            line = next((l for l in proc.log_lines() if "index ready in" in l), "")
            if line:
                break
            time.sleep(0.01)
        c = Client(proc.host)
        bad = []
        for name, tag, body, digest in acked:
            by_digest = c.get_manifest(name, digest, accept=OCI_MANIFEST)
            by_tag = c.get_manifest(name, tag, accept=OCI_MANIFEST)
            if by_digest.body != body or by_tag.body != body or sha256(body) != digest:
                bad.append((name, tag, by_digest.status, by_tag.status))
    finally:
        proc.stop()
    m = re.search(r"(\d+) read again", line)
    return {"acked_pushes": len(acked), "missing_or_wrong": len(bad), "examples": bad[:5],
            "restart_ready_s": round(ready_s, 3), "from_snapshot": "from the snapshot" in line,
            "read_again": int(m.group(1)) if m else None, "ready_line": line[-300:]}


BENCH = os.path.join(REPO, "build", "release", "bench", "ringport-bench")


def quiet_after_start(proc, timeout_s=900):
    """Waits out the start's own background work: the save that follows it
    and, after a snapshot load, the verification against the tree, which
    would otherwise be measured as the periodic saves' stalls."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lines = proc.log_lines()
        ready = next((l for l in lines if "index ready in" in l), "")
        saved = any("saved (after start)" in l for l in lines)
        verified = any(re.search(r"index (verified|verification stopped)", l) for l in lines)
        if ready and saved and (verified or "from the snapshot" not in ready):
            break
        time.sleep(0.1)
    time.sleep(0.5)


def shard_turns(host):
    """The shards' cumulative counts of long loop turns (whole-shard stalls)."""
    shards = abuse.status(host).get("shards", {})
    return {k: v for k, v in shards.items() if k.startswith("turns_from_")}


def gets_under_push(root, log_path, interval_s, duration_s):
    """ringport-bench manifest-get (one connection, one request at a time)
    while a client pushes a small image every 0.2 s (so every periodic save
    has something to save, without the pushes' own load drowning what the
    saves do), with a snapshot save every `interval_s`. Returns (its latency
    percentiles in µs with the shards' long turns during the run, the saves
    seen in the log)."""
    proc = start_ringport(root, log_path,
                          {"RINGPORT_STORAGE_INDEX_SNAPSHOT_INTERVAL_S": str(interval_s)})
    out = f"{log_path}.bench-{interval_s}.json"
    try:
        proc.wait_ready()
        quiet_after_start(proc)
        mark = len(proc.log_lines())  # the saves after the quiet period
        turns_before = shard_turns(proc.host)
        pusher = Pusher(proc.host, 999, pause_s=0.2)  # keeps the journal dirty
        pusher.start()
        subprocess.run([BENCH, "run", "--url", f"http://{proc.host}", "--workload",
                        "manifest-get", "--duration", str(duration_s), "--no-progress",
                        "--json", out], check=True, capture_output=True,
                       timeout=duration_s + 600)
        pusher.stop_flag.set()
        pusher.join(timeout=60)
        turns = {k: v - turns_before.get(k, 0) for k, v in shard_turns(proc.host).items()}
        time.sleep(0.2)
        saves = []
        for line in proc.log_lines()[mark:]:
            m = re.search(r"index snapshot saved \((\w[\w ]*)\): (\d+) bytes in ([\d.]+) s", line)
            if m:
                saves.append({"why": m.group(1), "bytes": int(m.group(2)),
                              "seconds": float(m.group(3))})
    finally:
        proc.stop()
    with open(out) as f:
        doc = json.load(f)
    lat = dict(doc["results"]["latency_us"])
    extra = doc.get("extra", {})
    lat["p999"] = extra.get("latency_p999_us")
    lat["from_5ms"] = extra.get("requests_from_5ms")
    lat["requests"] = doc["results"]["ops"]
    lat["shard_turns"] = turns
    return lat, saves


def save_stall(root, log_path, duration_s=10, rounds=3):
    """The same GET load with a save every second and with none, alternated
    `rounds` times, so what the saves add is told apart from the machine's
    and the pushes' own noise (which drifts over minutes on a shared host).
    Each side reports its longest GET over all rounds and the GETs of 5 ms
    or more."""
    with_runs, without_runs, saves = [], [], []
    for _ in range(rounds):
        lat, sv = gets_under_push(root, log_path, 1, duration_s)
        with_runs.append(lat)
        saves += sv
        without_runs.append(gets_under_push(root, log_path, 86400, duration_s)[0])

    def merged(runs):
        return {"max": max(r["max"] for r in runs), "p99": max(r["p99"] for r in runs),
                "p999": max((r.get("p999") or 0) for r in runs),
                "from_5ms": sum((r.get("from_5ms") or 0) for r in runs),
                "requests": sum(r.get("requests", 0) for r in runs),
                "shard_turns": {k: sum(r["shard_turns"].get(k, 0) for r in runs)
                                for k in runs[0]["shard_turns"]},
                "max_each": [r["max"] for r in runs]}

    sec = [x["seconds"] for x in saves if x["why"] == "periodic"]
    return {"with_saves_us": merged(with_runs), "without_saves_us": merged(without_runs),
            "rounds": rounds, "saves": len(sec),
            "save_seconds_max": max(sec) if sec else None,
            "save_seconds_median": sorted(sec)[len(sec) // 2] if sec else None,
            "snapshot_bytes": saves[-1]["bytes"] if saves else None}


def distribution_gets(start, repos, tags_per_repo, seed=1):
    """Distribution reads the tree for every request: the same GETs once it answers /v2/."""
    rng = random.Random(seed)
    pick = [(f"repo-{rng.randrange(repos):05d}", f"tag-{rng.randrange(tags_per_repo)}")
            for _ in range(101)]
    server = start()
    try:
        host = server.url.split("://", 1)[1]
        first, st = timed_get(host, *pick[0])
        lat, statuses = concurrent_gets(host, pick[1:])
    finally:
        server.stop()
    return {"first_get_ms": round(first * 1000, 1), "first_get_status": st,
            "hundred_p50_ms": round(pct(lat, 0.5) * 1000, 1) if lat else None,
            "hundred_p99_ms": round(pct(lat, 0.99) * 1000, 1) if lat else None,
            "hundred_statuses": statuses}


def walk_analysis(root, log):
    import walk  # bench/walk.py (which imports this module)
    return walk.measure(root, log)


def compare_step(root, logdir, name, repos, tags_per_repo, start_distribution, say, drop=None):
    """bench/compare: the crash measurements on a startup or scale root (the
    caches dropped before each measured start when `drop` is given)."""
    log = os.path.join(logdir, f"{name}-crash.log")
    out = {}
    for key, fn in (
            ("first_answer", lambda: (drop and drop()) or first_answer(root, log, repos,
                                                                        tags_per_repo)),
            ("distribution_gets", lambda: None if start_distribution is None else (
                (drop and drop()) or distribution_gets(start_distribution, repos,
                                                       tags_per_repo))),
            ("crash_restart", lambda: crash_restart(root, log, cold=drop is not None,
                                                    drop=drop)),
            ("save_stall", lambda: save_stall(root, log)),
            ("stop_while_loading", lambda: (drop and drop()) or stop_while_loading(root, log)),
            # Cold roots only: where the no-snapshot load's time goes (it drops the caches).
            ("walk", lambda: None if drop is None else walk_analysis(root, log))):
        say(f"{name}: {key.replace('_', ' ')}")
        try:
            out[key] = fn()
        except Exception as e:  # one failing must not lose the others' figures
            out[key] = {"error": repr(e)}
        say(f"  {out[key]}")
    return out


def rows(res, row, fmt):
    """bench/compare's rows for each root the crash measurements ran on."""
    for key, label in (("startup", "startup tree"), ("scale", "scale tree")):
        cr = (res.get(key) or {}).get("crash")
        if not cr:
            continue
        sc = res[key]
        what = f"{label}, {sc.get('repos', 0):,} repositories, {sc.get('tags', 0):,} tags"
        fa, dg = cr.get("first_answer") or {}, cr.get("distribution_gets") or {}
        first = fa.get("first_get_ms_after_listen")
        row(f"no snapshot ({what}): first manifest GET by tag, from the listener opening",
            fmt(first, "ms", 1) + f" (status {fa.get('first_get_status')})",
            fmt(dg.get("first_get_ms"), "ms", 1) + " (after /v2/ answers)" if dg else "—", "—",
            "≤ 200 ms", None if first is None else first <= 200 and fa.get(
                "first_get_status") == 200)
        p99 = fa.get("hundred_p99_ms")
        row(f"no snapshot ({what}): 100 random repositories' tags at once, p99",
            f"{fmt(p99, 'ms', 1)} (p50 {fmt(fa.get('hundred_p50_ms'), 'ms', 1)}; "
            f"{fa.get('hundred_statuses')})",
            f"{fmt(dg.get('hundred_p99_ms'), 'ms', 1)} ({dg.get('hundred_statuses')})" if dg
            else "—", "—", "≤ 500 ms", None if p99 is None else p99 <= 500 and
            fa.get("hundred_statuses") == {"200": 100})
        done = fa.get("index_complete_s")
        row(f"no snapshot ({what}): index complete", fmt(done, "s", 2), "— (no index)", "—",
            "report (goal ≤ 15 s at 1M tags)", None)
        wk = cr.get("walk") or {}
        if wk.get("walk"):
            w, dk = wk["walk"], wk.get("disk", {})
            deep = next((v for k, v in dk.items() if k != "qd1"), {})
            row(f"no snapshot ({what}), caches dropped: where the load's time goes (information)",
                f"{fmt(w.get('ready_s'), 's', 1)}: CPU user {fmt(w.get('cpu_user_s'), 's', 1)} + "
                f"system {fmt(w.get('cpu_system_s'), 's', 1)}; device {w.get('device_reads'):,} "
                f"reads ({w.get('device_reads_per_s'):,}/s, {w.get('read_latency_ms')} ms each, "
                f"{w.get('in_flight_mean')} in flight, busy {w.get('device_busy_pct')} %)",
                "—", "—", f"device alone, random 4 KiB: {dk.get('qd1', {}).get('reads_per_s'):,}/s "
                f"at depth 1, {deep.get('reads_per_s'):,}/s at depth {deep.get('depth')}", None)
        elif wk.get("error"):
            row(f"no snapshot ({what}): where the load's time goes", f"failed: {wk['error']}",
                "—", "—", "—", None)
        ck = cr.get("crash_restart") or {}
        rs = ck.get("restart_ready_s")
        row(f"kill -9 during a push load ({what}), restart: index complete",
            f"{fmt(rs, 's', 2)} (from the snapshot: {ck.get('from_snapshot')}, "
            f"{ck.get('read_again')} repositories read again)" if rs is not None
            else ck.get("error", "—"), "—", "—", "≤ 5 s",
            None if rs is None else rs <= 5 and ck.get("from_snapshot"))
        acked = ck.get("acked_pushes")
        row(f"kill -9 during a push load ({what}): acknowledged pushes pullable, byte-identical",
            f"{fmt(acked, '', 0)} acknowledged, {ck.get('missing_or_wrong')} missing or wrong",
            "—", "—", "all", None if acked is None else acked > 0 and
            ck.get("missing_or_wrong") == 0)
        ss = cr.get("save_stall") or {}
        w, wo = ss.get("with_saves_us") or {}, ss.get("without_saves_us") or {}
        if w:
            def side(v):
                return (f"max {fmt(v.get('max', 0) / 1000, 'ms', 1)}, p99.9 "
                        f"{fmt((v.get('p999') or 0) / 1000, 'ms', 2)}, "
                        f"{v.get('from_5ms')} of {v.get('requests', 0):,} GETs ≥ 5 ms")

            def turns(v):
                t = v.get("shard_turns") or {}
                return (f"{t.get('turns_from_5ms', '?')} shard turns ≥ 5 ms, "
                        f"{t.get('turns_from_10ms', '?')} ≥ 10 ms")
            row(f"background snapshot save every second ({what}): manifest GET latency "
                f"over {ss.get('rounds', 1)} rounds of 10 s",
                f"{side(w)} (without saves: {side(wo)})", "—",
                f"{(w.get('max', 0) - wo.get('max', 0)) / 1000:+.1f} ms added",
                "longest stall ≤ 5 ms; judged as what the saves add to the machine's own "
                "longest GET (max with − max without)",
                w.get("max", 1e18) - wo.get("max", 0) <= 5000)
            tw = (w.get("shard_turns") or {}).get("turns_from_5ms")
            two = (wo.get("shard_turns") or {}).get("turns_from_5ms")
            row(f"background snapshot save every second ({what}): whole-shard stalls, "
                "server side",
                f"{turns(w)} (without saves: {turns(wo)})", "—", "—",
                "saves add no shard turn ≥ 5 ms (a turn is the longest any of the shard's "
                "connections waits for it); judged as turns with saves ≤ turns without",
                None if tw is None or two is None else tw <= two)
            row(f"background snapshot save ({what}): time and size (information)",
                f"{ss.get('saves')} saves, median {fmt(ss.get('save_seconds_median'), 's', 3)}, "
                f"max {fmt(ss.get('save_seconds_max'), 's', 3)}; "
                f"{fmt((ss.get('snapshot_bytes') or 0) / 1e6, 'MB', 1)}", "—", "—", "—", None)

        sl = cr.get("stop_while_loading") or {}
        if sl:
            ans, ex = sl.get("waiter_answered_ms"), sl.get("exit_ms")
            row(f"no snapshot ({what}): SIGTERM while the index loads",
                f"a waiting catalog answered {sl.get('waiter_status')} after {fmt(ans, 'ms', 1)}; "
                f"exit {sl.get('exit_code')} after {fmt(ex, 'ms', 0)} (still loading at SIGTERM: "
                f"{sl.get('still_loading_at_sigterm')}, load stopped: {sl.get('load_stopped')})"
                if "error" not in sl else sl["error"], "—", "—",
                "waiters answered 503 ≤ 100 ms; exit ≤ 2 s",
                None if ans is None or not sl.get("still_loading_at_sigterm") else
                ans <= 100 and sl.get("waiter_status") == 503 and ex <= 2000 and
                sl.get("exit_code") == 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True,
                    help="a ringport-genroot root (repo-<i>, tag-<j>)")
    ap.add_argument("--repos", type=int, required=True)
    ap.add_argument("--tags-per-repo", type=int, required=True)
    ap.add_argument("--log", default="/tmp/bench-crash.log")
    ap.add_argument("--save-rounds", type=int, default=3,
                    help="save step: rounds of with and without saves (default 3)")
    ap.add_argument("--only", default="first,crash,save,stop",
                    help="any of first,crash,save,stop,walk")
    a = ap.parse_args()
    res = {}
    steps = a.only.split(",")
    if "first" in steps:
        res["first_answer"] = first_answer(a.root, a.log, a.repos, a.tags_per_repo)
    if "crash" in steps:
        res["crash_restart"] = crash_restart(a.root, a.log)
    if "save" in steps:
        res["save_stall"] = save_stall(a.root, a.log, rounds=a.save_rounds)
    if "stop" in steps:
        res["stop_while_loading"] = stop_while_loading(a.root, a.log)
    if "walk" in steps:  # drops the page cache: not in the default
        res["walk"] = walk_analysis(a.root, a.log)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    sys.exit(main())
