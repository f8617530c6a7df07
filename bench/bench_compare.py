#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""ringport against CNCF Distribution (Debian's docker-registry), in one run.

Run as root from a checkout (bench/compare is the entry point):

    bench/compare [--quick] [--rounds N] [--pick best|median] [--out DIR]
                  [--scratch DIR] [--scale] [--skip-install] [--keep-roots]
                  [--ringport-env KEY=VALUE ...] [--only STEP,...]

What it does, in order:
 1. installs what it needs with apt-get (only when something is missing) and
    builds (`ninja -C build/release`, or tools/setup.sh on a fresh checkout);
 2. records the machine's limits: `openssl speed -evp sha256` on one core
    (taskset -c 0; the 16384-byte column), loopback throughput of
    `ringport-bench pull` against `ringport-bench sendfile-server` (1 stream
    and concurrency 4, same size and count as the registry pulls), and
    sequential write with fsync (`dd ... conv=fsync`) on the scratch
    filesystem, where the registry roots live;
 3. idle RSS of each server on an empty root (started, ready, then VmRSS);
 4. starts ringport (`--listen 127.0.0.1:0`, fresh root) and Distribution
    (fresh root, loopback port, filesystem storage, deletes on, no auth, access
    log off, log level warn); ringport gets the equivalent settings (access log
    off, log level warn) and everything else at its defaults. Each workload
    runs against both, interleaved (ringport, Distribution, ringport, ...) for
    --rounds rounds, always with --server-pid; the run kept per server is the
    best (highest ops/s) or, with --pick median, the median by ops/s;
 5. memory after the comparison: VmHWM of both long-running servers;
 6. idle connections: N keep-alive connections (bench/hold_connections.py:
    one GET /v2/ each, then idle) held against each server while
    ringport-bench measures manifest GET; RSS before/during/after and the
    throughput against the same run without them;
 7. abuse (bench/abuse.py): two identical rounds of hostile load against a
    fresh ringport and a fresh Distribution: RSS growth in the second round,
    a well-behaved client's failures, and what ringport holds after each;
 7a. stop (bench/stop.py): idle and half-request connections and a
    half-sent upload pending, then SIGTERM: the time to exit (ringport with a
    1 s drain and hour-long timeouts), and each server's threads;
 7b. soak (bench/soak.py): 64 clients of mixed load for --soak-seconds against
    one ringport on a 1 GiB loop-mounted root that fills up and is freed,
    killed with SIGKILL at random moments and restarted; every acknowledged
    write is checked after each restart, and Distribution serves the tree;
 7c. mirror (bench/mirror.py): ringport's pull-through mirror and
    Distribution in proxy mode in front of the same loopback upstream (200
    MB/s per connection): 64 clients on one uncached blob at once and spread
    over its fetch, a warm blob and warm manifests, a stalled upstream, a
    multi-arch pull after tag_ttl; upstream requests counted each time;
 7d. security (bench/security.py): ringport over TLS against plain-HTTP
    ringport and Distribution over TLS (same certificate): 64 MiB pulls (1
    and 4 streams) and push, and new TLS connections per second with the
    server's CPU per handshake against `openssl speed ecdsap256 ecdhx25519`;
 7e. gc (bench/lifecycle.py): a 100,000-blob tree with 30% garbage:
    `ringport garbage-collect` against `registry garbage-collect` (run time,
    the blobs removed), and a collection while ci-fleet (16 clients) pushes
    and pulls: failed requests, missing blobs after, p99 with and without;
 7f. retention (bench/retention.py): 20,000 tags in repositories of 100, a
    keep_last 10 policy: ringport's dry run and real run while ci-fleet (16
    clients) pushes and pulls (failed requests, p99 with and without), against
    the same deletions through Distribution's API by a cleanup script;
 7g. check (bench/check.py): `ringport check` over 2 GiB of blobs against one
    core's SHA-256, and ci-fleet with the scrub at 64 MiB/s against without;
 7h. observe (bench/observe.py): manifest GETs and pushes with nothing on,
    the audit log on, and the audit log plus a webhook for every event
    (Distribution without and with a notification endpoint), and 10,000
    events queued while the endpoint is down, drained after it returns;
 7i. insights (bench/insights.py): 100,000 repositories (ringport-genroot):
    the repository list's first page, search as you type (each keystroke a
    request) and the registry's insights, against Distribution's _catalog
    (its first page, and the whole walk a client-side search needs);
 7j. ui (bench/ui.py): the web UI's repository list over 10,000 repositories
    in Debian's Chromium, cold and warm, from navigation start to the first
    page drawn and taking input (Distribution has no UI);
 8. startup: ringport-genroot writes 10,000 repositories x 10 tags, the page
    cache is warmed (every file read once), then the `ready` workload starts
    each server on it (`--server-cmd`): time to GET /v2/, to ready (/readyz;
    /v2/ for Distribution, which has no index), and a full catalog walk.
    ringport is started two ways: with storage.index_snapshot=false (every
    link read: a first start, or one after a crash) and as a restart from the
    snapshot that a clean stop just before saved;
 8b. on that root (and the scale root), bench/crash.py: with no snapshot, the
    first manifest GET after the listener opens and 100 at once (Distribution
    gets the same GETs), the time to a complete index; kill -9 during a push
    load and the restart (time to ready, every acknowledged push pulled back);
    SIGTERM while the index loads (a waiting catalog's answer, the exit);
    manifest GET latency with a snapshot save every second and without;
 9. with --scale: 1,000,000 tags over 10,000 repositories, `sync` and
    `echo 3 > /proc/sys/vm/drop_caches` before each measured start, then
    ringport's time to /readyz (both ways, as in 7) and its RSS per tag
    ((RSS after ready - idle RSS on an empty root) / tags).

Output (default build/bench/<UTC timestamp>/): every ringport-bench JSON file,
logs/, results.json (everything parsed), compare.txt (`ringport-bench compare`
per workload) and summary.md: the targets table (ringport, Distribution,
ratio, target, PASS/FAIL) and the machine limits, with the date, machine and
exact command. --quick is a smoke run with small counts (< 2 minutes); its
table says which figures are not at the targets' sizes.
"""
import argparse
import atexit
import datetime
import hashlib
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
BUILD = os.path.join(REPO, "build", "release")
RINGPORT = os.path.join(BUILD, "src", "ringport")
BENCH = os.path.join(BUILD, "bench", "ringport-bench")
GENROOT = os.path.join(BUILD, "tools", "ringport-genroot")
HOLD = os.path.join(REPO, "bench", "hold_connections.py")
DISTRIBUTION = "/usr/bin/docker-registry"

# Debian packages this script uses, by the command that tells they are there.
NEEDED = {
    "docker-registry": DISTRIBUTION,
    "openssl": "/usr/bin/openssl",
    "coreutils": "/usr/bin/dd",
    "util-linux": "/usr/bin/taskset",
    "findutils": "/usr/bin/xargs",
}

RINGPORT_ENV = {"RINGPORT_HTTP_ACCESS_LOG": "false", "RINGPORT_LOG_LEVEL": "warn"}

# Distribution runs with the settings the tests give it (filesystem storage,
# deletes on, no auth, quiet logs): one definition for both.
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))
from ringtest.harness import DISTRIBUTION_CONFIG  # noqa: E402
import abuse as abuse_rounds  # noqa: E402  (bench/abuse.py)
import crash as crash_runs  # noqa: E402  (bench/crash.py)
import lifecycle as gc_run  # noqa: E402  (bench/lifecycle.py)
import retention as retention_run  # noqa: E402  (bench/retention.py)
import check as check_run  # noqa: E402  (bench/check.py)
import observe as observe_run  # noqa: E402  (bench/observe.py)
import insights as insights_run  # noqa: E402  (bench/insights.py)
import ui as ui_run  # noqa: E402  (bench/ui.py)
import mirror as mirror_run  # noqa: E402  (bench/mirror.py)
import security as security_run  # noqa: E402  (bench/security.py)
import soak as soak_run  # noqa: E402  (bench/soak.py)
import stop as stop_run  # noqa: E402  (bench/stop.py)

T0 = time.monotonic()


def say(msg):
    print(f"[{time.monotonic() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


class Fatal(Exception):
    pass


# --------------------------------------------------------------------------
# Child processes: every one is tracked and killed (its whole process group)
# at exit, whatever the exit.

CHILDREN = []


def spawn(args, log_path, env=None, stdout_path=None):
    out = open(stdout_path or log_path, "ab")
    err = open(log_path, "ab") if stdout_path else subprocess.STDOUT
    try:
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                             start_new_session=True)
    finally:
        out.close()
        if stdout_path:
            err.close()
    CHILDREN.append(p)
    return p


def file_size(path):
    return os.path.getsize(path) if os.path.exists(path) else 0


def listening_address(path, start_at):
    """HOST:PORT from the first `listening on HOST:PORT` a process wrote to
    `path` past `start_at` (logs are appended to: an --out reused, a restart
    under one name), or None yet."""
    with open(path, "rb") as f:
        f.seek(start_at)
        m = re.search(rb"listening on (\S+)", f.read())
    return m.group(1).decode() if m else None


def kill_group(p, term_wait=10.0):
    if p.poll() is not None:
        return p.returncode
    try:
        os.killpg(p.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        return p.wait(timeout=term_wait)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return p.wait(timeout=10)


def kill_all():
    for p in reversed(CHILDREN):
        try:
            kill_group(p, term_wait=5.0)
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def on_signal(sig, _frame):
    say(f"signal {sig}: stopping servers")
    kill_all()
    sys.exit(128 + sig)


def run(args, timeout, log_path=None, check=True, env=None, input_=None):
    """Runs a command to completion (bounded); returns CompletedProcess."""
    try:
        p = subprocess.Popen(args, stdin=subprocess.PIPE if input_ else subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                             start_new_session=True)
    except FileNotFoundError as e:
        raise Fatal(f"missing tool: {e.filename}") from e
    CHILDREN.append(p)
    try:
        out, err = p.communicate(input=input_, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(p, term_wait=5.0)
        out, err = p.communicate()
        if log_path:
            with open(log_path, "ab") as f:
                f.write(out + err)
        raise Fatal(f"timed out after {timeout}s: {shlex.join(args)}")
    finally:
        if p in CHILDREN:
            CHILDREN.remove(p)
    if log_path:
        with open(log_path, "ab") as f:
            f.write(b"$ " + shlex.join(args).encode() + b"\n" + out + err)
    cp = subprocess.CompletedProcess(args, p.returncode, out.decode(errors="replace"),
                                     err.decode(errors="replace"))
    if check and p.returncode != 0:
        raise Fatal(f"exit {p.returncode}: {shlex.join(args)}\n{cp.stderr[-2000:]}")
    return cp


# --------------------------------------------------------------------------
# /proc

def proc_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "Threads"):
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def rss_kb(pid):
    return proc_status(pid).get("VmRSS")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url, timeout=2.0, ca=None):
    ctx = ssl.create_default_context(cafile=ca) if ca else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=ctx) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except Exception:  # noqa: BLE001 - connection refused while starting
        return None


# --------------------------------------------------------------------------
# Servers

class Server:
    def __init__(self, kind, proc, url, root, ca=None):
        self.kind, self.proc, self.url, self.root = kind, proc, url, root
        self.ca = ca  # https: the CA its certificate chains to

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        return kill_group(self.proc)


def ringport_env(extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RINGPORT_")}
    env.update(RINGPORT_ENV)
    env.update(extra)
    return env


def start_ringport(root, logdir, name, extra_env, timeout=30.0, config=None, tls_ca=None):
    os.makedirs(root, exist_ok=True)
    out_path = os.path.join(logdir, f"{name}.stdout")
    start_at = file_size(out_path)
    p = spawn([RINGPORT, "serve", "--listen", "127.0.0.1:0", "--root", root,
               *(["--config", config] if config else [])],
              os.path.join(logdir, f"{name}.log"), env=ringport_env(extra_env),
              stdout_path=out_path)
    deadline = time.monotonic() + timeout
    port = None
    while time.monotonic() < deadline:
        addr = listening_address(out_path, start_at)
        if addr:
            port = int(addr.rsplit(":", 1)[1])
            break
        if p.poll() is not None:
            break
        time.sleep(0.02)
    if port is None:
        kill_group(p)
        raise Fatal(f"ringport did not start within {timeout}s; see {logdir}/{name}.log")
    scheme = "https" if tls_ca else "http"
    s = Server("ringport", p, f"{scheme}://127.0.0.1:{port}", root, ca=tls_ca)
    wait_status(s, "/readyz", timeout=600)
    return s


def distribution_config(root, port, cfgdir, name):
    path = os.path.join(cfgdir, f"{name}.yml")
    with open(path, "w") as f:
        f.write(DISTRIBUTION_CONFIG.format(root=root, port=port))
    return path


def start_distribution(root, logdir, cfgdir, name, timeout=30.0, proxy=None, http_extra="",
                       tls_ca=None, ready_status=200):
    """`http_extra`: YAML lines under `http:` (indented two spaces), e.g. tls."""
    os.makedirs(root, exist_ok=True)
    port = free_port()
    cfg = distribution_config(root, port, cfgdir, name)
    with open(cfg, "a") as f:
        f.write(http_extra)
        if proxy:  # pull-through cache of `proxy`
            f.write(f"proxy:\n  remoteurl: {proxy}\n")
    p = spawn([DISTRIBUTION, "serve", cfg], os.path.join(logdir, f"{name}.log"))
    scheme = "https" if tls_ca else "http"
    s = Server("distribution", p, f"{scheme}://127.0.0.1:{port}", root, ca=tls_ca)
    wait_status(s, "/v2/", timeout=timeout, want=ready_status)
    return s


def wait_status(server, path, timeout, want=200):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise Fatal(f"{server.kind} exited (status {server.proc.returncode}) while starting")
        if http_status(server.url + path, ca=server.ca) == want:
            return
        time.sleep(0.02)
    raise Fatal(f"{server.kind}: {path} did not answer {want} within {timeout:.0f}s")


# --------------------------------------------------------------------------
# ringport-bench

class Runner:
    def __init__(self, args, out, logdir):
        self.args, self.out, self.logdir = args, out, logdir
        self.errors = []
        self.timeout = 300 if args.quick else 1800

    def bench(self, name, server_label, url, workload, extra, pid=None, timeout=None):
        """One `ringport-bench run`; returns its JSON (dict) or None on failure."""
        path = os.path.join(self.out, f"{name}.{server_label}.json")
        args = [BENCH, "run", "--url", url, "--workload", workload, *extra,
                "--label", server_label, "--json", path, "--no-progress"]
        if pid:
            args += ["--server-pid", str(pid)]
        log = os.path.join(self.logdir, f"{name}.{server_label}.txt")
        try:
            cp = run(args, timeout=timeout or self.timeout, log_path=log, check=False)
        except Fatal as e:
            self.errors.append(f"{name} {server_label}: {e}")
            say(f"  {name} {server_label}: FAILED ({e})")
            return None
        if cp.returncode != 0 or not os.path.exists(path):
            why = (cp.stderr.strip() or cp.stdout.strip()).splitlines()[-1:] or ["?"]
            self.errors.append(f"{name} {server_label}: exit {cp.returncode}: {why[0]}")
            say(f"  {name} {server_label}: FAILED (exit {cp.returncode}: {why[0]})")
            return None
        with open(path) as f:
            doc = json.load(f)
        res = doc.get("results", {})
        say(f"  {name} {server_label}: {res.get('ops_per_s', 0):.1f} ops/s "
            f"{(res.get('bytes_per_s') or 0) / 1e6:.1f} MB/s errors={res.get('errors')}")
        return doc


def pick(docs, how):
    docs = [d for d in docs if d]
    if not docs:
        return None
    docs.sort(key=lambda d: d["results"].get("ops_per_s") or 0)
    if how == "median":
        return docs[(len(docs) - 1) // 2]
    return docs[-1]


# --------------------------------------------------------------------------
# Steps

def install_and_build(args):
    if os.geteuid() != 0:
        raise Fatal("run as root (apt-get, drop_caches, RLIMIT_NOFILE)")
    missing = [pkg for pkg, path in NEEDED.items() if not os.path.exists(path)]
    if missing and not args.skip_install:
        say(f"apt-get install {' '.join(missing)}")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run(["apt-get", "update", "-qq"], timeout=600, env=env)
        run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], timeout=1200,
            env=env)
    still = [path for path in NEEDED.values() if not os.path.exists(path)]
    if still:
        raise Fatal(f"missing tools: {', '.join(still)}")
    if not args.skip_build:
        if os.path.exists(os.path.join(BUILD, "build.ninja")) and shutil.which("ninja"):
            say("ninja -C build/release")
            run(["ninja", "-C", BUILD], timeout=1800)
        else:
            say("tools/setup.sh (install build packages, configure, build)")
            run([os.path.join(REPO, "tools", "setup.sh")], timeout=3600)
    for b in (RINGPORT, BENCH, GENROOT):
        if not os.access(b, os.X_OK):
            raise Fatal(f"missing binary {b} (build failed?)")


def raise_nofile():
    """Room for the idle-connections test; the servers inherit it."""
    want = 1 << 18
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
    except (ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def machine_info(args, scratch):
    def first(cmd):
        try:
            return run(cmd, timeout=30, check=False).stdout.strip().splitlines()[0]
        except Exception:  # noqa: BLE001
            return "?"

    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    fs = first(["stat", "-f", "-c", "%T", scratch])
    fs_src = first(["findmnt", "-n", "-o", "SOURCE,FSTYPE", "-T", scratch])
    git = first(["git", "-C", REPO, "rev-parse", "--short", "HEAD"])
    dirty = run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"], timeout=30,
                check=False).stdout.strip()
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "kernel": platform.release(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1048576, 1),
        "scratch": scratch,
        "scratch_fs": fs_src if fs_src != "?" else fs,
        "ringport": first([RINGPORT, "version"]),
        "git": git + ("+dirty" if dirty else ""),
        "distribution": first([DISTRIBUTION, "--version"]),
        "openssl": first(["openssl", "version"]),
        "command": shlex.join(["bench/compare", *sys.argv[1:]]),
        "quick": args.quick,
        "rounds": args.rounds,
        "pick": args.pick,
    }


def limit_openssl(args, logdir):
    cmd = ["openssl", "speed", "-evp", "sha256", "-bytes", "16384", "-seconds",
           "1" if args.quick else "3"]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    cp = run(cmd, timeout=120, log_path=os.path.join(logdir, "openssl.txt"), check=False)
    text = cp.stdout + cp.stderr
    header = None
    for line in text.splitlines():
        if line.startswith("type"):
            header = line.split()[1:]
        elif header and line.lower().startswith("sha256"):
            vals = line.split()[1:]
            # header: "16384 bytes" pairs; with -bytes there is one column.
            cols = [h for h in header if h != "bytes"]
            if "16384" in cols and len(vals) == len(cols):
                v = vals[cols.index("16384")]
                return float(v.rstrip("k")) * 1000.0
    raise Fatal("could not parse `openssl speed` output (see logs/openssl.txt)")


def limit_dd(args, scratch, logdir, direct=False):
    path = os.path.join(scratch, "dd-fsync.bin")
    count = 256 if args.quick else 1024
    flags = ["oflag=direct"] if direct else []
    cp = run(["dd", "if=/dev/zero", f"of={path}", "bs=1M", f"count={count}", "conv=fsync",
              *flags], timeout=600,
             log_path=os.path.join(logdir, "dd-direct.txt" if direct else "dd.txt"))
    os.unlink(path)
    m = re.search(r"(\d+) bytes .* copied, ([\d.,]+) s", cp.stderr)
    if not m:
        raise Fatal("could not parse dd output (see logs/dd.txt)")
    return int(m.group(1)) / float(m.group(2).replace(",", "."))


def make_blob_file(path, size):
    h = hashlib.sha256()
    chunk = 1 << 20
    with open(path, "wb") as f:
        left = size
        while left > 0:
            b = os.urandom(min(chunk, left))
            h.update(b)
            f.write(b)
            left -= len(b)
    return "sha256:" + h.hexdigest()


def limit_sendfile(args, R, scratch, logdir, pull_specs):
    """Pull throughput from a minimal sendfile server, same client and params."""
    path = os.path.join(scratch, "sendfile.bin")
    digest = make_blob_file(path, args.size_bytes)
    log = os.path.join(logdir, "sendfile-server.log")
    start_at = file_size(log)
    p = spawn([BENCH, "sendfile-server", "--listen", "127.0.0.1:0", "--file", path], log)
    url = None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and p.poll() is None:
        addr = listening_address(log, start_at)
        if addr:
            url = "http://" + addr
            break
        time.sleep(0.02)
    if url is None:
        kill_group(p)
        raise Fatal("sendfile-server did not start (see logs/sendfile-server.log)")
    out = {}
    try:
        for key, extra in pull_specs:
            docs = []
            for r in range(args.rounds):
                docs.append(R.bench(f"{key}.r{r + 1}", "sendfile", url, "pull",
                                    [*extra, "--raw-path", "/blob", "--expect-digest", digest],
                                    pid=p.pid))
            out[key] = pick(docs, args.pick)
    finally:
        kill_group(p)
        os.unlink(path)
    return out


def idle_rss(args, scratch, logdir, cfgdir):
    """VmRSS of each server started on an empty root, ready, idle for 1 s."""
    out = {}
    s = start_ringport(os.path.join(scratch, "idle-ringport"), logdir, "idle-ringport",
                       args.ringport_env)
    try:
        time.sleep(1.0)
        out["ringport"] = proc_status(s.pid)
    finally:
        s.stop()
    d = start_distribution(os.path.join(scratch, "idle-distribution"), logdir, cfgdir,
                           "idle-distribution")
    try:
        time.sleep(1.0)
        out["distribution"] = proc_status(d.pid)
    finally:
        d.stop()
    return out


def workloads(args):
    q = args.quick
    size = args.size
    man = ["--duration", "2" if q else "5"]
    return [
        ("push1", "push", ["--size", size, "--count", "2" if q else "8"]),
        ("push4", "push", ["--size", size, "--count", "4" if q else "16", "--concurrency", "4"]),
        ("chunked", "push-chunked",
         ["--size", size, "--chunk", "8MiB", "--count", "2" if q else "8"]),
        ("pull1", "pull", ["--size", size, "--count", "8" if q else "32"]),
        ("pull4", "pull", ["--size", size, "--count", "16" if q else "64", "--concurrency", "4"]),
        ("mget", "manifest-get", [*man, "--concurrency", "8"]),
        ("mhead", "manifest-head", [*man, "--concurrency", "8"]),
        ("tags", "tags-list", ["--tags", str(args.tags), "--count", "50" if q else "200"]),
        ("catalog", "catalog",
         ["--repos", str(args.repos), "--page", "100", "--count", "2" if q else "3"]),
    ]


def idle_connections(args, R, server, logdir):
    """Manifest GET with and without N idle keep-alive connections held."""
    n = args.idle_conns
    extra = ["--duration", "2" if args.quick else "5", "--concurrency", "8", "--repo",
             "bench/idle"]
    res = {"count": n}
    res["base"] = R.bench("idle-base", server.kind, server.url, "manifest-get", extra, server.pid)
    res["rss_before_kb"] = rss_kb(server.pid)
    status = os.path.join(logdir, f"hold-{server.kind}.json")
    if os.path.exists(status):
        os.unlink(status)
    hold = spawn([sys.executable, HOLD, "--url", server.url, "--count", str(n), "--status", status,
                  "--timeout", "120"], os.path.join(logdir, f"hold-{server.kind}.log"))
    try:
        deadline = time.monotonic() + 150
        held = None
        while time.monotonic() < deadline and hold.poll() is None:
            if os.path.exists(status):
                with open(status) as f:
                    held = json.loads(f.read() or "{}")
                if held.get("event") == "holding":
                    break
            time.sleep(0.1)
        if not held or held.get("event") != "holding":
            raise Fatal(f"hold_connections did not report (see logs/hold-{server.kind}.log)")
        res["held"] = held
        time.sleep(0.5)
        res["rss_holding_kb"] = rss_kb(server.pid)
        res["loaded"] = R.bench("idle-loaded", server.kind, server.url, "manifest-get", extra,
                                server.pid)
        res["rss_loaded_kb"] = rss_kb(server.pid)
    finally:
        kill_group(hold, term_wait=30)
    if os.path.exists(status):
        with open(status) as f:
            res["released"] = json.loads(f.read() or "{}")
    time.sleep(0.5)
    res["rss_after_kb"] = rss_kb(server.pid)
    res["hwm_after_kb"] = proc_status(server.pid).get("VmHWM")
    # A second baseline after the release: the rate with the connections held
    # is compared with the mean of the two, so drift on a shared machine
    # does not count against either server.
    res["base2"] = R.bench("idle-base2", server.kind, server.url, "manifest-get", extra,
                           server.pid)
    return res


def remove_root(root):
    """rm -rf of a generated root, a few repositories at a time in parallel
    (millions of small files: one rm alone takes minutes)."""
    repos = os.path.join(root, "docker", "registry", "v2", "repositories")
    if os.path.isdir(repos):
        run(["sh", "-c", "find \"$1\" -mindepth 1 -maxdepth 3 -type d -print0 | "
             "xargs -0 -r -P 4 -n 50 rm -rf", "sh", repos], timeout=3600, check=False)
    shutil.rmtree(root, ignore_errors=True)


def count_root(root):
    """(repositories, tags) of an existing root, by walking it."""
    repos = tags = 0
    stack = [os.path.join(root, "docker", "registry", "v2", "repositories")]
    while stack:
        d = stack.pop()
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        names = {e.name for e in entries}
        if "_manifests" in names or "_layers" in names:
            repos += 1
            try:
                tags += sum(1 for _ in os.scandir(os.path.join(d, "_manifests", "tags")))
            except OSError:
                pass
            continue
        stack.extend(e.path for e in entries if e.is_dir(follow_symlinks=False))
    return repos, tags


def startup(args, R, scratch, logdir, cfgdir, repos, tags_per_repo, name, kinds, cold=False,
            existing=None):
    """genroot (or an existing root), then the `ready` workload for each kind."""
    if existing:
        repos, tags = count_root(existing)
        say(f"{name}: existing root {existing}: {repos:,} repositories, {tags:,} tags")
        res = {"genroot": None, "repos": repos, "tags": tags, "root": existing}
        return ready_runs(args, R, existing, logdir, cfgdir, name, kinds, cold, res, keep=True)
    root = os.path.join(scratch, name)
    remove_root(root)
    # Distribution's layout costs ~5 directories (4 KiB each on ext4) and
    # ~7.5 inodes per tag: refuse early rather than fill the disk.
    tags = repos * tags_per_repo
    st = os.statvfs(scratch)
    need_inodes, need_bytes = int(tags * 7.7), int(tags * 29 * 1024)
    if st.f_files and st.f_favail < need_inodes or st.f_bavail * st.f_frsize < need_bytes:
        raise Fatal(f"{name}: {scratch} has {st.f_favail:,} inodes and "
                    f"{st.f_bavail * st.f_frsize / 1e9:.0f} GB free; {tags:,} tags need about "
                    f"{need_inodes:,} and {need_bytes / 1e9:.0f} GB")
    say(f"{name}: ringport-genroot {repos} repositories x {tags_per_repo} tags")
    t = time.monotonic()
    cp = run([GENROOT, "--root", root, "--repos", str(repos), "--tags-per-repo",
              str(tags_per_repo)], timeout=3600, log_path=os.path.join(logdir, f"{name}-genroot.txt"))
    gen = {"seconds": round(time.monotonic() - t, 2), "output": cp.stdout.strip()}
    say(f"  {cp.stdout.strip()}")
    res = {"genroot": gen, "repos": repos, "tags": repos * tags_per_repo}
    return ready_runs(args, R, root, logdir, cfgdir, name, kinds, cold, res,
                      keep=args.keep_roots)


def drop_caches(R, name, res):
    run(["sync"], timeout=1800)
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        res["caches_dropped"] = True
    except OSError as e:
        res["caches_dropped"] = False
        R.errors.append(f"{name}: could not drop caches: {e}")


# ringport is started two ways: "ringport-tree" with index snapshots off (it
# reads every link: a first start, or one after a crash) and "ringport" from
# the snapshot its previous clean stop saved (a restart).
def server_cmd(args, kind, root, port, cfgdir, name, r):
    if kind.startswith("ringport"):
        env = {**RINGPORT_ENV, **args.ringport_env}
        if kind == "ringport-tree":
            env["RINGPORT_STORAGE_INDEX_SNAPSHOT"] = "false"
        envs = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        return (f"exec env {envs} {shlex.quote(RINGPORT)} serve --listen 127.0.0.1:{port} "
                f"--root {shlex.quote(root)}", ["--ready-url-path", "/readyz"])
    cfg = distribution_config(root, port, cfgdir, f"{name}-{r}")
    return f"exec {DISTRIBUTION} serve {shlex.quote(cfg)}", ["--ready-url-path", ""]


def ready_runs(args, R, root, logdir, cfgdir, name, kinds, cold, res, keep):
    if not cold:
        # Warm: read every file once (dentries, inodes and data in the cache).
        run(["sh", "-c", "find \"$1\" -type f -print0 | xargs -0 -r cat > /dev/null", "sh", root],
            timeout=1800)
    rounds = 1 if cold else args.rounds
    count = "1" if (cold or args.quick) else "3"
    for kind in kinds:
        res[kind] = []
    for r in range(rounds):
        for kind in kinds:
            if kind == "ringport":
                # A clean stop saves the snapshot this start is measured from.
                port = free_port()
                cmd, ready = server_cmd(args, "ringport", root, port, cfgdir, name, r)
                R.bench(f"{name}.prep{r + 1}", kind, f"http://127.0.0.1:{port}", "ready",
                        ["--server-cmd", cmd, *ready, "--count", "1", "--ready-timeout", "600"],
                        timeout=2400)
            if cold:
                drop_caches(R, name, res)
            port = free_port()
            cmd, ready = server_cmd(args, kind, root, port, cfgdir, name, r)
            doc = R.bench(f"{name}.r{r + 1}", kind, f"http://127.0.0.1:{port}", "ready",
                          ["--server-cmd", cmd, *ready, "--count", count, "--ready-timeout", "600"],
                          timeout=1800 + 600 * int(count))
            res[kind].append(doc)
    for kind in kinds:
        docs = [d for d in res[kind] if d]
        # Fastest start wins (best), or the median by time to ready.
        docs.sort(key=lambda d: d["extra"].get("ready_ms") or 1e18)
        res[kind] = (docs[(len(docs) - 1) // 2] if args.pick == "median" else docs[0]) if docs \
            else None
    if "ringport" in kinds and not args.no_crash:
        res["crash"] = crash_runs.compare_step(
            root, logdir, name, res["repos"], res["tags"] // max(1, res["repos"]),
            None if cold else (lambda: start_distribution(root, logdir, cfgdir,
                                                          f"{name}-crash-distribution")),
            say, drop=(lambda: drop_caches(R, name, res)) if cold else None)
    if not keep:
        t = time.monotonic()
        remove_root(root)
        res["rm_seconds"] = round(time.monotonic() - t, 1)
    return res


# --------------------------------------------------------------------------
# The table

def g(doc, *path):
    cur = doc
    for p in path:
        if cur is None:
            return None
        cur = cur.get(p) if isinstance(cur, dict) else None
    return cur


def fmt(v, unit="", nd=1):
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float)):
        if abs(v) >= 100 or nd == 0:
            s = f"{v:,.0f}"
        else:
            s = f"{v:,.{nd}f}"
        return s + (f" {unit}" if unit else "")
    return str(v)


def verdict(ok):
    if ok is None:
        return "n/a"
    return "PASS" if ok else "**FAIL**"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def faster(rp_time, dist_time):
    """'N× faster' / 'N× slower' for two durations (ringport, Distribution)."""
    r = ratio(dist_time, rp_time)
    if r is None:
        return "—"
    return f"{r:,.1f}× faster" if r >= 1 else f"{1 / r:,.1f}× slower"


def build_rows(args, res):
    rows = []

    def row(name, rp, dist, rat, goal, ok, note=""):
        rows.append({"target": name, "ringport": rp, "distribution": dist, "ratio": rat,
                     "goal": goal, "result": verdict(ok), "note": note})

    W = res.get("workloads", {})
    lim = res.get("limits", {})
    q = " (quick)" if args.quick else ""

    def mbps(d):
        v = g(d, "results", "bytes_per_s")
        return None if v is None else v / 1e6

    def errs(*docs):
        n = sum((g(d, "results", "errors") or 0) for d in docs if d)
        return f"errors: {n}" if n else ""

    def pair(key):
        w = W.get(key, {})
        return w.get("ringport"), w.get("distribution")

    if W:
        workload_rows(args, W, lim, row, q, mbps, errs, pair)
    startup_rows(res, row)
    memory_rows(args, res, row, q)
    abuse_rounds.rows(res, row, fmt)
    crash_runs.rows(res, row, fmt)
    soak_run.rows(res, row, fmt)
    stop_run.rows(res, row, fmt)
    mirror_run.rows(res, row, fmt)
    security_run.rows(res, row, fmt)
    gc_run.rows(res, row, fmt)
    retention_run.rows(res, row, fmt)
    check_run.rows(res, row, fmt)
    observe_run.rows(res, row, fmt)
    insights_run.rows(res, row, fmt)
    ui_run.rows(res, row, fmt)
    return rows


def workload_rows(args, W, lim, row, q, mbps, errs, pair):
    # push
    rp, di = pair("push1")
    r = ratio(mbps(rp), mbps(di))
    row(f"push {args.size}, 1 stream{q}", fmt(mbps(rp), "MB/s"), fmt(mbps(di), "MB/s"),
        fmt(r, "×"), "≥ 6× Distribution", None if r is None else r >= 6, errs(rp, di))
    sha, dd = lim.get("openssl_sha256_Bps"), lim.get("dd_fsync_Bps")
    floor = min(sha, dd) if sha and dd else None
    r2 = ratio(g(rp, "results", "bytes_per_s"), floor)
    row(f"push {args.size}, 1 stream vs machine", fmt(mbps(rp), "MB/s"), "—",
        fmt(None if r2 is None else 100 * r2, "%", 0) + " of min(sha256 1 core, fsync write)"
        + (f" = {floor / 1e6:,.0f} MB/s" if floor else ""),
        "≥ 60%", None if r2 is None else r2 >= 0.6)
    # One stream is bounded by both SHA-256 on one core and the device's
    # direct-write speed (its bytes are hashed and written before the 201):
    # shown so a reader can see what the 6× row asks of this machine.
    ddd = lim.get("dd_direct_Bps")
    ceiling = min(sha, ddd) if sha and ddd else None
    r3 = ratio(g(rp, "results", "bytes_per_s"), ceiling)
    need = None if mbps(di) is None else 6 * mbps(di)
    row(f"push {args.size}, 1 stream vs its ceiling (information)", fmt(mbps(rp), "MB/s"), "—",
        fmt(None if r3 is None else 100 * r3, "%", 0)
        + " of min(sha256 1 core, O_DIRECT write)"
        + (f" = {ceiling / 1e6:,.0f} MB/s" if ceiling else "")
        + (f"; 6× Distribution = {need:,.0f} MB/s" if need else "")
        + (f" = {100 * need * 1e6 / ceiling:,.0f} % of it" if need and ceiling else ""),
        "—", None)
    rp, di = pair("push4")
    r = ratio(mbps(rp), mbps(di))
    row(f"push {args.size}, concurrency 4{q}", fmt(mbps(rp), "MB/s"), fmt(mbps(di), "MB/s"),
        fmt(r, "×"), "≥ 5× Distribution", None if r is None else r >= 5, errs(rp, di))
    threads = g(rp, "server", "threads") or []
    shards = [t for t in threads if (t.get("name") or "").startswith("rp-shard-")]
    other_cpu = {}
    for t in threads:
        nm = t.get("name") or "?"
        if nm.startswith("rp-shard-"):
            continue
        nm = re.sub(r"-\d+$", "-N", nm) if nm.startswith("iou-") else nm
        other_cpu[nm] = other_cpu.get(nm, 0.0) + (t.get("cpu_s") or 0.0)
    others = [f"{k} {v:.2f} s" for k, v in sorted(other_cpu.items())]
    if shards:
        top = max(t["cpu_s"] for t in shards)
        low = min(t["cpu_s"] for t in shards)
        busy = len(shards) >= min(2, os.cpu_count() or 1) and top > 0 and low >= 0.3 * top
        desc = ", ".join(f"{t['name']} {t['cpu_s']:.2f} s" for t in
                         sorted(shards, key=lambda t: t["name"]))
        row("push concurrency 4: every shard busy (server CPU per thread)", desc, "—",
            fmt(low / top if top else None, "", 2) + " least/most",
            "each shard ≥ 30% of the busiest", busy,
            ("other threads: " + ", ".join(others)) if others else "")
    else:
        row("push concurrency 4: every shard busy", "no rp-shard-N threads seen", "—", "—",
            "each shard busy", None if rp is None else False,
            ("thread names: " + ", ".join(sorted({t.get('name') or '?' for t in threads})))
            if threads else "")
    rp, di = pair("chunked")
    r = ratio(mbps(rp), mbps(di))
    row(f"chunked push {args.size} in 8 MiB chunks{q}", fmt(mbps(rp), "MB/s"),
        fmt(mbps(di), "MB/s"), fmt(r, "×"), "≥ 5× Distribution", None if r is None else r >= 5,
        errs(rp, di))
    # pull
    for key, label in (("pull1", "1 stream"), ("pull4", "concurrency 4")):
        rp, di = pair(key)
        sf = lim.get("sendfile", {}).get(key)
        r = ratio(mbps(rp), mbps(sf))
        rd = ratio(mbps(rp), mbps(di))
        row(f"pull {args.size} warm, {label}{q}", fmt(mbps(rp), "MB/s"), fmt(mbps(di), "MB/s"),
            fmt(None if r is None else 100 * r, "%", 0) + f" of sendfile ({fmt(mbps(sf), 'MB/s')})"
            + (f"; {rd:.2f}× Distribution" if rd else ""),
            "≥ 90% of sendfile", None if r is None else r >= 0.9, errs(rp, di))
    # manifests
    for key, label in (("mget", "GET"), ("mhead", "HEAD")):
        rp, di = pair(key)
        a, b = g(rp, "results", "ops_per_s"), g(di, "results", "ops_per_s")
        r = ratio(a, b)
        row(f"manifest {label}, concurrency 8{q}", fmt(a, "req/s"), fmt(b, "req/s"), fmt(r, "×"),
            "≥ 40× Distribution", None if r is None else r >= 40, errs(rp, di))
        ca, cb = g(rp, "server", "cpu_us_per_op"), g(di, "server", "cpu_us_per_op")
        row(f"manifest {label}: server CPU per request", fmt(ca, "µs"), fmt(cb, "µs"),
            fmt(ratio(cb, ca), "× less", 1), "≤ 25 µs", None if ca is None else ca <= 25)
    # lists
    rp, di = pair("tags")
    a, b = g(rp, "results", "latency_us", "p50"), g(di, "results", "latency_us", "p50")
    a, b = (None if a is None else a / 1000), (None if b is None else b / 1000)
    ntags = g(rp, "extra", "tags") or args.tags
    row(f"tags list, {ntags:,} tags (p50 latency){q}", fmt(a, "ms", 2), fmt(b, "ms", 2),
        faster(a, b), "≤ 1 ms", None if a is None else a <= 1.0, errs(rp, di))
    checks = ("sorted", "honours_n", "honours_last", "paged_walk_complete")

    def flags(d):
        if d is None:
            return None
        return all(g(d, "extra", c) is True for c in checks)

    def flag_txt(d):
        if d is None:
            return "—"
        return ", ".join(f"{c}={fmt(g(d, 'extra', c))}" for c in checks)

    row("tags list: sorted, n and last honoured", flag_txt(rp), flag_txt(di), "—", "all yes",
        flags(rp))
    rp, di = pair("catalog")
    a, b = g(rp, "extra", "walk_ms"), g(di, "extra", "walk_ms")
    nrep = g(rp, "extra", "repos") or args.repos
    row(f"catalog full walk, {nrep:,} repositories at n=100{q}", fmt(a, "ms", 2), fmt(b, "ms", 2),
        faster(a, b), "≤ 100 ms", None if a is None else a <= 100,
        errs(rp, di) + ("" if g(rp, "extra", "sorted") in (None, True) else " unsorted!"))


HOW = {"ringport": "restart from the snapshot", "ringport-tree": "no snapshot: every link read"}


def startup_rows(res, row):
    st = res.get("startup")
    if st:
        di = st.get("distribution")
        lbl = f"{st['repos']:,} repositories, {st['tags']:,} tags, warm"

        def ready_walk(d):
            x, y = g(d, "extra", "ready_ms"), g(d, "extra", "catalog_walk_ms")
            return None if x is None or y is None else x + y

        for kind in ("ringport", "ringport-tree"):
            rp = st.get(kind)
            if kind not in st:
                continue
            a, b = g(rp, "extra", "ready_v2_ms"), g(di, "extra", "ready_v2_ms")
            row(f"startup ({lbl}; {HOW[kind]}): GET /v2/ answers", fmt(a, "ms", 1),
                fmt(b, "ms", 1), "—", "≤ 100 ms", None if a is None else a <= 100)
            a, b = ready_walk(rp), ready_walk(di)
            row(f"startup ({lbl}; {HOW[kind]}): ready + full catalog walk",
                fmt(a, "ms", 1) + f" (ready {fmt(g(rp, 'extra', 'ready_ms'), 'ms', 1)})",
                fmt(b, "ms", 1) + " (/v2/: no index)", faster(a, b), "≤ 1,000 ms",
                None if a is None else a <= 1000)
    sc = res.get("scale")
    if sc:
        cold = "page cache dropped" if sc.get("caches_dropped") else "cache NOT dropped"
        pers = []
        for kind in ("ringport", "ringport-tree"):
            if kind not in sc:
                continue
            rp = sc.get(kind)
            a = g(rp, "extra", "ready_ms")
            row(f"scale ({sc['tags']:,} tags, {sc['repos']:,} repositories, {cold}; "
                f"{HOW[kind]}): index ready",
                fmt(None if a is None else a / 1000, "s", 2), "—", "—", "≤ 15 s",
                None if a is None else a <= 15000)
            rss = g(rp, "server", "rss_kb")
            idle = g(res, "idle_rss", "ringport", "VmRSS")
            per = None if rss is None or idle is None else (rss - idle) * 1024 / sc["tags"]
            pers.append((kind, per, rss))
        if pers:
            worst = max((p for _, p, _ in pers if p is not None), default=None)
            txt = "; ".join(f"{HOW[k].split(':')[0]} {fmt(p, 'B', 0)} (RSS {fmt(r, 'kB', 0)})"
                            for k, p, r in pers)
            row("scale: RSS per tag ((RSS after ready − idle RSS) / tags)", txt, "—", "—",
                "≤ 200 B", None if worst is None else worst <= 200)


def memory_rows(args, res, row, q):
    idle = res.get("idle_rss", {})
    a, b = g(idle, "ringport", "VmRSS"), g(idle, "distribution", "VmRSS")
    if idle:
        row("idle RSS, empty root", fmt(None if a is None else a / 1024, "MiB", 1),
            fmt(None if b is None else b / 1024, "MiB", 1), fmt(ratio(a, b), "", 2),
            "≤ 16 MiB", None if a is None else a <= 16 * 1024)
    mem = res.get("memory_after_run", {})
    a, b = g(mem, "ringport", "VmHWM"), g(mem, "distribution", "VmHWM")
    r = ratio(a, b)
    if mem:
        row("peak RSS (VmHWM) after the comparison run",
            fmt(None if a is None else a / 1024, "MiB"),
            fmt(None if b is None else b / 1024, "MiB"),
            fmt(None if r is None else 100 * r, "%", 0), "≤ 40% of Distribution's",
            None if r is None else r <= 0.4)
    # idle connections
    ic = res.get("idle_connections", {})
    if ic:
        n = args.idle_conns

        def held(x):
            return g(x, "held", "ok")

        def still(x):
            return g(x, "released", "still_open")

        def txt(x):
            if not x:
                return "—"
            st = g(x, "held", "status") or {}
            other = {k: v for k, v in st.items() if k != "200"}
            er = g(x, "held", "errors") or {}
            s = f"{fmt(held(x), '', 0)} answered 200, {fmt(still(x), '', 0)} still open at the end"
            if other:
                s += f"; other statuses {other}"
            if er:
                s += f"; errors {er}"
            return s

        rp, di = ic.get("ringport"), ic.get("distribution")
        row(f"{n:,} idle keep-alive connections held{q}", txt(rp), txt(di), "—", f"all {n:,}",
            None if rp is None else (held(rp) == n and still(rp) == n))

        def per_conn(x):
            if not x or x.get("rss_holding_kb") is None or x.get("rss_before_kb") is None:
                return None
            h = held(x) or 0
            return (x["rss_holding_kb"] - x["rss_before_kb"]) * 1024 / h if h else None

        def rss_txt(x):
            if not x:
                return "—"
            return (f"{fmt(per_conn(x), 'B/conn', 0)} (RSS {fmt(x.get('rss_before_kb'), '', 0)} → "
                    f"{fmt(x.get('rss_holding_kb'), '', 0)} → {fmt(x.get('rss_after_kb'), 'kB', 0)})")

        pc = per_conn(rp)
        row("idle connections: server RSS growth (before → holding → released)", rss_txt(rp),
            rss_txt(di), fmt(ratio(per_conn(di), pc), "× less"), "≤ 16 KiB per connection (provisional: the issue says 'bounded')",
            None if pc is None else pc <= 16384)

        def base_rate(x):
            v = [g(x, k, "results", "ops_per_s") for k in ("base", "base2")]
            v = [y for y in v if y]
            return sum(v) / len(v) if v else None

        def speed(x):
            return ratio(g(x, "loaded", "results", "ops_per_s"), base_rate(x))

        def sp_txt(x):
            if not x:
                return "—"
            return (f"{fmt(g(x, 'loaded', 'results', 'ops_per_s'), 'req/s')} vs "
                    f"{fmt(base_rate(x), 'req/s')} without (mean of before and after) "
                    f"({fmt(None if speed(x) is None else 100 * speed(x), '%', 0)}); "
                    f"errors {fmt(g(x, 'loaded', 'results', 'errors'), '', 0)}")

        sp = speed(rp)
        row("idle connections: another client's manifest GET rate", sp_txt(rp), sp_txt(di), "—",
            "≥ 90% of the rate without", None if sp is None else
            (sp >= 0.9 and not g(rp, "loaded", "results", "errors")))


def markdown(args, res, rows):
    m = res["machine"]
    lim = res.get("limits", {})
    L = []
    L.append(f"## ringport vs Distribution — {m['date_utc']}")
    L.append("")
    L.append(f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux "
             f"{m['kernel']}, scratch on {m['scratch_fs']}. ringport {m['ringport']} "
             f"(git {m['git']}), {m['distribution']}, {m['openssl']}.")
    L.append(f"Command: `{m['command']}` — {m['rounds']} round(s), interleaved; kept: "
             f"{m['pick']} by ops/s{'; QUICK smoke run: small counts' if args.quick else ''}.")
    L.append("")
    L.append("| target | ringport | Distribution | ratio | goal | result |")
    L.append("|---|---|---|---|---|---|")
    for r in rows:
        note = f" ({r['note']})" if r["note"] else ""
        L.append(f"| {r['target']}{note} | {r['ringport']} | {r['distribution']} | {r['ratio']} | "
                 f"{r['goal']} | {r['result']} |")
    if lim:
        L.append("")
        L.append("Machine limits (same run):")
        L.append("")
        L.append("| limit | figure |")
        L.append("|---|---|")
    if lim.get("openssl_sha256_Bps"):
        L.append(f"| `openssl speed -evp sha256`, one core, 16 KiB blocks | "
                 f"{lim['openssl_sha256_Bps'] / 1e6:,.0f} MB/s |")
    if lim.get("dd_fsync_Bps"):
        L.append(f"| sequential write + fsync (`dd bs=1M conv=fsync`, {lim.get('dd_mib')} MiB) | "
                 f"{lim['dd_fsync_Bps'] / 1e6:,.0f} MB/s |")
    if lim.get("dd_direct_Bps"):
        L.append(f"| sequential write, O_DIRECT + fsync (`dd bs=1M oflag=direct conv=fsync`; "
                 f"how ringport writes uploads; not the target's reference) | "
                 f"{lim['dd_direct_Bps'] / 1e6:,.0f} MB/s |")
    for key, label in (("pull1", "1 stream"), ("pull4", "concurrency 4")):
        d = lim.get("sendfile", {}).get(key)
        if d:
            L.append(f"| loopback: ringport-bench pull from sendfile-server, {label} | "
                     f"{d['results']['bytes_per_s'] / 1e6:,.0f} MB/s |")
    fails = [r for r in rows if r["result"] == "**FAIL**"]
    L.append("")
    L.append(f"{sum(1 for r in rows if r['result'] == 'PASS')} PASS, {len(fails)} FAIL, "
             f"{sum(1 for r in rows if r['result'] == 'n/a')} n/a. Runtime "
             f"{res.get('runtime_s', 0):.0f} s ("
             + ", ".join(f"{k} {v:.0f} s" for k, v in res.get("step_seconds", {}).items()) + ").")
    if res.get("errors"):
        L.append("")
        L.append("Errors during the run:")
        for e in res["errors"]:
            L.append(f"- {e}")
    return "\n".join(L) + "\n"


# --------------------------------------------------------------------------

def parse_args():
    ap = argparse.ArgumentParser(prog="bench/compare", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run with small counts (< 2 min)")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds per workload (1)")
    ap.add_argument("--pick", choices=("best", "median"), default="best",
                    help="which round to keep per server: best (default) or median by ops/s")
    ap.add_argument("--out", help="output directory (default build/bench/<UTC timestamp>)")
    ap.add_argument("--scratch", help="where the registry roots and the dd file go "
                    "(default OUT/scratch); the fsync figure is taken there")
    ap.add_argument("--scale", action="store_true",
                    help="also the 1,000,000-tag cold-cache index test (~10 min, ~30 GB, 7.5M inodes)")
    ap.add_argument("--scale-root", metavar="DIR",
                    help="--scale on this existing root (kept) instead of generating one")
    ap.add_argument("--scale-repos", type=int, default=10000, help=argparse.SUPPRESS)
    ap.add_argument("--scale-tags-per-repo", type=int, default=100, help=argparse.SUPPRESS)
    ap.add_argument("--skip-install", action="store_true", help="never call apt-get")
    ap.add_argument("--skip-build", action="store_true", help="use build/release as it is")
    ap.add_argument("--keep-roots", action="store_true", help="leave the generated roots")
    ap.add_argument("--size", default="64MiB", help="blob size for push and pull (64MiB)")
    ap.add_argument("--mirror-size", default=None,
                    help="the mirror step's blob (1GiB; quick: 256MiB)")
    ap.add_argument("--idle-conns", type=int, help="idle connections (10000; quick: 1000)")
    ap.add_argument("--gc-blobs", type=int,
                    help="blobs in the gc step's tree (100000; quick: 20000)")
    ap.add_argument("--retention-tags", type=int,
                    help="tags in the retention step's tree (20000; quick: 5000)")
    ap.add_argument("--check-mib", type=int,
                    help="MiB of blobs in the check step's tree (2048; quick: 512)")
    ap.add_argument("--ringport-env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment for ringport (e.g. RINGPORT_HTTP_SHARDS=2)")
    ap.add_argument("--abuse-absent", type=int,
                    help="absent requests per abuse round (1,000,000; quick: 20,000)")
    ap.add_argument("--abuse-sessions", type=int,
                    help="abandoned upload sessions per abuse round (10,000; quick: 600)")
    ap.add_argument("--abuse-stalled", type=int,
                    help="half-request connections per abuse round (10,000; quick: 300)")
    ap.add_argument("--stop-idle", type=int,
                    help="idle connections pending at SIGTERM in the stop step (1,000; quick: 200)")
    ap.add_argument("--stop-stalled", type=int,
                    help="half-request connections pending at SIGTERM (1,000; quick: 200)")
    ap.add_argument("--soak-seconds", type=int,
                    help="length of the soak step (600; quick: 60)")
    ap.add_argument("--no-crash", action="store_true",
                    help="skip the crash measurements in the startup and scale steps")
    ap.add_argument("--only", help="comma-separated steps: limits,idle,workloads,connections,"
                    "abuse,stop,soak,startup,mirror,security,gc,scale (default: all but scale "
                    "unless --scale)")
    a = ap.parse_args()
    if a.rounds < 1:
        ap.error("--rounds must be ≥ 1")
    env = {}
    for kv in a.ringport_env:
        k, sep, v = kv.partition("=")
        if not sep or not k.startswith("RINGPORT_"):
            ap.error(f"--ringport-env wants RINGPORT_KEY=VALUE, not {kv!r}")
        env[k] = v
    a.ringport_env = env
    m = re.fullmatch(r"(\d+)(KiB|MiB|GiB)?", a.size)
    if not m:
        ap.error("--size: a number of bytes, or N KiB/MiB/GiB")
    a.size_bytes = int(m.group(1)) * {None: 1, "KiB": 1 << 10, "MiB": 1 << 20,
                                      "GiB": 1 << 30}[m.group(2)]
    a.size = m.group(1) + (m.group(2) or "")
    ms = re.fullmatch(r"(\d+)(KiB|MiB|GiB)?", a.mirror_size or ("256MiB" if a.quick else "1GiB"))
    if not ms:
        ap.error("--mirror-size: a number of bytes, or N KiB/MiB/GiB")
    a.mirror_bytes = int(ms.group(1)) * {None: 1, "KiB": 1 << 10, "MiB": 1 << 20,
                                         "GiB": 1 << 30}[ms.group(2)]
    a.tags = 1000 if a.quick else 10000
    a.repos = 300 if a.quick else 10000
    a.startup_repos = 500 if a.quick else 10000
    if a.idle_conns is None:
        a.idle_conns = 1000 if a.quick else 10000
    for key, full, quick in (("abuse_absent", 1000000, 20000), ("abuse_sessions", 10000, 600),
                             ("abuse_stalled", 10000, 300), ("soak_seconds", 600, 60),
                             ("stop_idle", 1000, 200), ("stop_stalled", 1000, 200)):
        if getattr(a, key) is None:
            setattr(a, key, quick if a.quick else full)
    steps = {"limits", "idle", "workloads", "connections", "abuse", "stop", "soak", "startup",
             "mirror", "security", "gc", "retention", "check", "observe", "insights", "ui"}
    if a.scale or a.scale_root:
        steps.add("scale")
    if a.only:
        steps = set(a.only.split(","))
        bad = steps - {"limits", "idle", "workloads", "connections", "abuse", "stop", "soak",
                       "startup", "scale", "mirror", "security", "gc", "retention", "check",
                       "observe", "insights", "ui"}
        if bad:
            ap.error(f"--only: unknown step(s) {', '.join(sorted(bad))}")
    a.steps = steps
    return a


def main():
    args = parse_args()
    # ringport refuses RINGPORT_* variables it does not know (RINGPORT_BIN from
    # the tests, say); its settings here come from RINGPORT_ENV and --ringport-env.
    for k in [k for k in os.environ if k.startswith("RINGPORT_")]:
        del os.environ[k]
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    atexit.register(kill_all)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = os.path.abspath(args.out or os.path.join(REPO, "build", "bench", stamp))
    logdir = os.path.join(out, "logs")
    os.makedirs(logdir, exist_ok=True)
    scratch = os.path.abspath(args.scratch or os.path.join(out, "scratch"))
    os.makedirs(scratch, exist_ok=True)
    own_scratch = not args.scratch
    cfgdir = tempfile.mkdtemp(prefix="compare-cfg-", dir=out)
    say(f"output: {out}")

    res = {"errors": [], "step_seconds": {}}
    R = Runner(args, out, logdir)
    t_step = [time.monotonic()]

    def step_done(name):
        now = time.monotonic()
        res["step_seconds"][name] = round(now - t_step[0], 1)
        t_step[0] = now
    try:
        install_and_build(args)
        step_done("install+build")
        nofile = raise_nofile()
        res["machine"] = machine_info(args, scratch)
        res["machine"]["nofile"] = nofile
        W = workloads(args)
        pulls = [(k, x) for k, w, x in W if w == "pull"]

        if "limits" in args.steps:
            say("machine limits: openssl speed -evp sha256 (one core)")
            lim = {"openssl_sha256_Bps": limit_openssl(args, logdir)}
            say(f"  sha256 {lim['openssl_sha256_Bps'] / 1e6:,.0f} MB/s")
            say("machine limits: dd conv=fsync on the scratch filesystem")
            lim["dd_mib"] = 256 if args.quick else 1024
            lim["dd_fsync_Bps"] = limit_dd(args, scratch, logdir)
            say(f"  write+fsync {lim['dd_fsync_Bps'] / 1e6:,.0f} MB/s")
            # ringport writes uploads with O_DIRECT: the device's own speed.
            lim["dd_direct_Bps"] = limit_dd(args, scratch, logdir, direct=True)
            say(f"  write O_DIRECT+fsync {lim['dd_direct_Bps'] / 1e6:,.0f} MB/s")
            say("machine limits: loopback pull from sendfile-server")
            lim["sendfile"] = limit_sendfile(args, R, scratch, logdir, pulls)
            res["limits"] = lim
            step_done("limits")

        if "idle" in args.steps or "scale" in args.steps:
            say("idle RSS on an empty root")
            res["idle_rss"] = idle_rss(args, scratch, logdir, cfgdir)
            say(f"  ringport {res['idle_rss']['ringport']}, "
                f"distribution {res['idle_rss']['distribution']}")
            step_done("idle RSS")

        if {"workloads", "connections"} & args.steps:
            rp = start_ringport(os.path.join(scratch, "ringport"), logdir, "ringport",
                                args.ringport_env)
            di = start_distribution(os.path.join(scratch, "distribution"), logdir, cfgdir,
                                    "distribution")
            say(f"ringport {rp.url} (pid {rp.pid}), distribution {di.url} (pid {di.pid})")
            servers = [rp, di]
            if "workloads" in args.steps:
                res["workloads"] = {}
                for key, workload, extra in W:
                    say(f"{key}: {workload} {' '.join(extra)}")
                    docs = {s.kind: [] for s in servers}
                    for r in range(args.rounds):
                        for s in servers:
                            if not s.alive():
                                raise Fatal(f"{s.kind} died (exit {s.proc.returncode}); see logs/")
                            docs[s.kind].append(R.bench(f"{key}.r{r + 1}", s.kind, s.url,
                                                        workload, extra, s.pid))
                    res["workloads"][key] = {k: pick(v, args.pick) for k, v in docs.items()}
                    kept = [d for d in res["workloads"][key].values() if d]
                    if len(kept) == 2:
                        paths = [os.path.join(out, f"{key}.{k}.kept.json")
                                 for k in ("ringport", "distribution")]
                        for p, k in zip(paths, ("ringport", "distribution")):
                            with open(p, "w") as f:
                                json.dump(res["workloads"][key][k], f, indent=1)
                        cp = run([BENCH, "compare", *paths], timeout=60, check=False)
                        with open(os.path.join(out, "compare.txt"), "a") as f:
                            f.write(f"### {key}\n{cp.stdout}{cp.stderr}\n")
                res["memory_after_run"] = {s.kind: proc_status(s.pid) for s in servers}
                say(f"memory after the run: {res['memory_after_run']}")
                step_done("workloads")
            if "connections" in args.steps:
                res["idle_connections"] = {}
                for s in servers:
                    say(f"idle connections: {args.idle_conns} against {s.kind}")
                    try:
                        res["idle_connections"][s.kind] = idle_connections(args, R, s, logdir)
                    except Fatal as e:
                        R.errors.append(f"idle connections {s.kind}: {e}")
                        say(f"  FAILED: {e}")
                step_done("idle connections")
            for s in servers:
                code = s.stop()
                if s.kind == "ringport" and code not in (0, None):
                    R.errors.append(f"ringport exited with {code} on SIGTERM")

        if "abuse" in args.steps:
            res["abuse"] = abuse_rounds.compare_step(
                args,
                lambda: start_ringport(os.path.join(scratch, "abuse-ringport"), logdir,
                                       "abuse-ringport", args.ringport_env),
                lambda: start_distribution(os.path.join(scratch, "abuse-distribution"), logdir,
                                           cfgdir, "abuse-distribution"),
                say)
            step_done("abuse")

        if "stop" in args.steps:
            res["stop"] = stop_run.compare_step(
                args,
                lambda: start_ringport(os.path.join(scratch, "stop-ringport"), logdir,
                                       "stop-ringport",
                                       {**stop_run.RINGPORT_STOP_ENV, **args.ringport_env}),
                lambda: start_distribution(os.path.join(scratch, "stop-distribution"), logdir,
                                           cfgdir, "stop-distribution"),
                say)
            step_done("stop")

        if "soak" in args.steps:
            say(f"soak: {args.soak_seconds} s")
            try:
                res["soak"] = soak_run.run(args.soak_seconds, 64, 1024, say=say)
            except Exception as e:  # the table says it failed; the rest still runs
                res["soak"] = {"error": repr(e)}
                R.errors.append(f"soak: {e!r}")
            step_done("soak")

        if "mirror" in args.steps:
            def mirror_ringport(upstream, ttl, name):
                cfg = os.path.join(cfgdir, f"{name}.toml")
                with open(cfg, "w") as f:
                    f.write(f'[[mirror]]\nprefix = "up.test"\nurl = "{upstream}"\n'
                            f"tag_ttl_s = {ttl}\n")
                return start_ringport(os.path.join(scratch, name), logdir, name,
                                      args.ringport_env, config=cfg)

            res["mirror"] = mirror_run.compare_step(
                args, BENCH, mirror_ringport,
                lambda: start_ringport(os.path.join(scratch, "mirror-plain"), logdir,
                                       "mirror-plain", args.ringport_env),
                lambda upstream: start_distribution(os.path.join(scratch, "mirror-distribution"),
                                                    logdir, cfgdir, "mirror-distribution",
                                                    proxy=upstream),
                scratch, say)
            step_done("mirror")
        if "security" in args.steps:
            res["security"] = security_run.compare_step(
                args, R,
                lambda name, env, ca, config=None: start_ringport(
                    os.path.join(scratch, name), logdir, name, {**args.ringport_env, **env},
                    tls_ca=ca, config=config),
                lambda name, extra, ca, ready=200: start_distribution(
                    os.path.join(scratch, name), logdir, cfgdir, name, http_extra=extra,
                    tls_ca=ca, ready_status=ready),
                scratch, logdir, say, pick)
            step_done("security")
        if "gc" in args.steps:
            res["gc"] = gc_run.compare_step(
                args, RINGPORT, DISTRIBUTION, BENCH,
                lambda name, root: start_ringport(root, logdir, name, args.ringport_env),
                scratch, logdir, say,
                lambda name, root: start_distribution(root, logdir, cfgdir, name))
            step_done("gc")
        def configured_ringport(name, root, config_text):
            cfg = os.path.join(cfgdir, f"{name}.toml")
            with open(cfg, "w") as f:
                f.write(config_text)
            return start_ringport(root, logdir, name, args.ringport_env, config=cfg)

        if "retention" in args.steps:
            res["retention"] = retention_run.compare_step(
                args, BENCH, configured_ringport,
                lambda name, root: start_distribution(root, logdir, cfgdir, name),
                scratch, logdir, say)
            step_done("retention")
        if "check" in args.steps:
            res["check"] = check_run.compare_step(
                args, RINGPORT, BENCH, configured_ringport,
                lambda: limit_openssl(args, logdir), scratch, logdir, say)
            step_done("check")
        if "observe" in args.steps:
            res["observe"] = observe_run.compare_step(
                args, BENCH, configured_ringport,
                lambda name, root, extra: start_distribution(root, logdir, cfgdir, name,
                                                             http_extra=extra),
                free_port, scratch, logdir, say)
            step_done("observe")
        if "insights" in args.steps:
            res["insights"] = insights_run.compare_step(
                args, GENROOT, configured_ringport,
                lambda name, root: start_distribution(root, logdir, cfgdir, name),
                scratch, logdir, say)
            step_done("insights")
        if "ui" in args.steps:
            res["ui"] = ui_run.compare_step(args, GENROOT, configured_ringport, scratch, say)
            step_done("ui")
        if "startup" in args.steps:
            res["startup"] = startup(args, R, scratch, logdir, cfgdir, args.startup_repos, 10,
                                     "startup", ["ringport-tree", "ringport", "distribution"])
            step_done("startup")
        if "scale" in args.steps:
            res["scale"] = startup(args, R, scratch, logdir, cfgdir, args.scale_repos,
                                   args.scale_tags_per_repo, "scale", ["ringport-tree", "ringport"],
                                   cold=True,
                                   existing=args.scale_root)
            step_done("scale")
    except Fatal as e:
        R.errors.append(f"stopped: {e}")
        say(f"stopped: {e}")
    finally:
        kill_all()
    res["errors"] = R.errors
    res["runtime_s"] = time.monotonic() - T0
    if "machine" not in res:
        print(f"bench/compare: {R.errors[-1] if R.errors else 'failed'}", file=sys.stderr)
        return 2
    rows = build_rows(args, res)
    res["table"] = rows
    md = markdown(args, res, rows)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(res, f, indent=1, default=str)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(md)
    shutil.rmtree(cfgdir, ignore_errors=True)
    if own_scratch and not args.keep_roots:
        for e in os.scandir(scratch):
            remove_root(e.path) if e.is_dir() else os.unlink(e.path)
        shutil.rmtree(scratch, ignore_errors=True)
    print(md)
    say(f"wrote {out}/summary.md and results.json ({res['runtime_s']:.0f} s)")
    return 1 if R.errors else 0


if __name__ == "__main__":
    sys.exit(main())
