#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Where the no-snapshot walk's time goes (issue 9).

Starts ringport with no snapshot on a generated root with the page cache
dropped, and over the load until /readyz answers records:

- the process's CPU time (user, system; exited walk threads included) and
  its I/O (/proc/<pid>/io: read syscalls, bytes from the device);
- the block device's counters (/proc/diskstats): reads completed and merged,
  KiB read, the mean read latency, the mean number of requests in flight and
  the time the device was busy;

then the device's own rate of random 4 KiB reads (O_DIRECT, `--depth`
threads, a file on the same file system), the floor for a walk whose reads
depend on one another. Together they say whether the walk waits for the
disk (device busy, reads ≈ device rate), for the CPU (user + system ≈
wall × cores), or for neither (too few reads in flight).

    bench/walk.py --root ROOT [--depth 64] [--json FILE]
"""
import argparse
import json
import mmap
import os
import random
import subprocess
import sys
import threading
import time

import crash  # bench/crash.py: a ringport on a root

CLK_TCK = os.sysconf("SC_CLK_TCK")


def block_device(path):
    """The whole-disk name (e.g. vda) holding `path`."""
    st = os.stat(path)
    sys_dir = os.path.realpath(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}")
    if os.path.exists(os.path.join(sys_dir, "partition")):
        sys_dir = os.path.dirname(sys_dir)
    return os.path.basename(sys_dir)


def diskstats(dev):
    with open("/proc/diskstats") as f:
        for line in f:
            p = line.split()
            if p[2] == dev:
                v = [int(x) for x in p[3:14]]
                return {"reads": v[0], "reads_merged": v[1], "sectors_read": v[2],
                        "read_ms": v[3], "io_ticks_ms": v[9], "weighted_ms": v[10]}
    raise RuntimeError(f"no {dev} in /proc/diskstats")


def proc_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK  # utime, stime


def proc_io(pid):
    out = {}
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            k, v = line.split(":")
            out[k] = int(v)
    return out


def drop_caches():
    subprocess.run(["sync"], check=True, timeout=1800)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def cold_walk(root, log_path):
    dev = block_device(root)
    drop_caches()
    before = diskstats(dev)
    t0 = time.monotonic()
    proc = crash.start_ringport(root, log_path, {"RINGPORT_STORAGE_INDEX_SNAPSHOT": "false"})
    try:
        ready_s = proc.wait_ready(timeout=1800)
        wall = time.monotonic() - t0
        after = diskstats(dev)
        user, system = proc_cpu(proc.p.pid)
        io = proc_io(proc.p.pid)
    finally:
        proc.stop()
    d = {k: after[k] - before[k] for k in before}
    reads = max(1, d["reads"])
    return {"device": dev, "ready_s": round(ready_s, 2), "cpu_user_s": round(user, 2),
            "cpu_system_s": round(system, 2), "read_syscalls": io.get("syscr"),
            "read_bytes_from_device": io.get("read_bytes"),
            "device_reads": d["reads"], "device_reads_merged": d["reads_merged"],
            "device_kib_read": d["sectors_read"] // 2,
            "device_reads_per_s": round(d["reads"] / wall),
            "read_latency_ms": round(d["read_ms"] / reads, 3),
            "in_flight_mean": round(d["weighted_ms"] / (wall * 1000), 1),
            "device_busy_pct": round(100 * d["io_ticks_ms"] / (wall * 1000), 1)}


def random_reads(directory, depth, seconds=5.0, size=1 << 30):
    """Random 4 KiB O_DIRECT reads of a `size` file by `depth` threads: the
    device's rate at that many reads in flight."""
    path = os.path.join(directory, ".walk-randread")
    with open(path, "wb") as f:
        chunk = os.urandom(1 << 20)
        for _ in range(size >> 20):
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
    count = [0] * depth
    lat = [0.0] * depth
    stop = time.monotonic() + seconds

    def reader(i):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        buf = mmap.mmap(-1, 4096)  # page-aligned, as O_DIRECT needs
        rng = random.Random(i)
        blocks = size // 4096
        try:
            while time.monotonic() < stop:
                t = time.monotonic()
                os.preadv(fd, [buf], rng.randrange(blocks) * 4096)
                lat[i] += time.monotonic() - t
                count[i] += 1
        finally:
            os.close(fd)

    try:
        threads = [threading.Thread(target=reader, args=(i,)) for i in range(depth)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=seconds + 60)
    finally:
        os.unlink(path)
    n = max(1, sum(count))
    return {"depth": depth, "reads_per_s": round(sum(count) / seconds),
            "latency_ms": round(1000 * sum(lat) / n, 3)}


def measure(root, log_path, depth=64):
    walk = cold_walk(root, log_path)
    parent = os.path.dirname(os.path.abspath(root.rstrip("/")))
    disk = {"qd1": random_reads(parent, 1), f"qd{depth}": random_reads(parent, depth)}
    return {"walk": walk, "disk": disk}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True)
    ap.add_argument("--depth", type=int, default=64)
    ap.add_argument("--log", default="/tmp/bench-walk.log")
    ap.add_argument("--json")
    a = ap.parse_args()
    res = measure(a.root, a.log, a.depth)
    print(json.dumps(res, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
