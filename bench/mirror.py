# SPDX-License-Identifier: Apache-2.0
"""bench/compare's `mirror` step (issue 10): ringport's pull-through mirror
side by side with Distribution 2.8.2 in proxy mode, on the same loopback
upstream (tests/lib's FakeUpstream, which counts every request and sends
blob bodies at 200 MB/s per connection).

Rows (issue 10's targets):
- 64 clients pull one uncached 1 GiB blob at once: upstream GETs (ringport:
  exactly 1), every client's bytes verified (ringport-bench checks the
  digest), and the last client's finish against the slower of one direct
  pull from the upstream and the same 64 clients pulling the blob warm from
  a plain ringport (≤ 1.1×);
- the same with 64 clients arriving spread over the fetch: each one's time
  to its first body byte (≤ 5 ms once bytes are on disk; none waits for the
  end);
- a warm blob pull through the mirror against the same pull from a plain
  ringport (≥ 90%);
- warm manifest GETs by tag within tag_ttl: requests per second against
  Distribution's proxy (≥ 40×), and upstream requests (0);
- upstream down (stalled), a cached tag: the first answer (≤ 1.1 s), then
  p99 while the circuit is open (≤ 5 ms), failed pulls (0);
- a warm multi-arch pull of one platform after tag_ttl: upstream HEADs (1)
  and GETs (0).
"""
import http.client
import json
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "lib"))
from ringtest.fakeupstream import FakeUpstream, digest_of  # noqa: E402

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
RATE = 200e6   # upstream bytes/s per connection
CLIENTS = 64
TTL_S = 1      # the ttl server's tag_ttl_s (down and multi-arch rows)


def chunked_random(size, seed):
    """`size` pseudo-random bytes, fast: a 1 MiB random block, salted per MiB."""
    block = os.urandom(1 << 20)
    parts = []
    for i in range((size + (1 << 20) - 1) >> 20):
        parts.append(seed + i.to_bytes(8, "little") + block[len(seed) + 8:])
    return b"".join(parts)[:size]


def image(up, name, tag, seed, arch="amd64"):
    config = b'{"architecture":"%s","os":"linux","seed":"%s"}' % (arch.encode(), seed)
    layer = chunked_random(4 << 20, seed)
    return up.add_image(name, tag, config, [layer]), [digest_of(config), digest_of(layer)]


class Upstream:
    """The fake upstream and what it holds for the rows."""

    def __init__(self, big_bytes):
        self.up = FakeUpstream(bearer=False)
        self.big = chunked_random(big_bytes, b"fan-out")
        self.spread = chunked_random(big_bytes, b"spread")
        self.big_d = self.up.add_blob("bench/big", self.big)
        self.spread_d = self.up.add_blob("bench/big", self.spread)
        self.app, self.app_blobs = image(self.up, "bench/app", "v1", b"app")
        amd, amd_blobs = image(self.up, "bench/multi", "amd64", b"amd", "amd64")
        arm, _ = image(self.up, "bench/multi", "arm64", b"arm", "arm64")
        self.index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": digest_of(m), "size": len(m),
             "platform": {"architecture": a, "os": "linux"}}
            for m, a in ((amd, "amd64"), (arm, "arm64"))]}).encode()
        self.up.add_manifest("bench/multi", "v1", self.index, media_type=OCI_INDEX)
        self.amd, self.amd_blobs = amd, amd_blobs

    def close(self):
        self.up.close()


def bench(tool, url, path, digest, out, *extra):
    """ringport-bench pulling a fixed path (its bytes verified); its JSON."""
    p = subprocess.run([tool, "run", "--url", url, "--workload", "pull", "--raw-path", path,
                        "--expect-digest", digest, "--json", out, "--no-progress", *extra],
                       capture_output=True, text=True, timeout=900)
    if p.returncode != 0 or not os.path.exists(out):
        raise RuntimeError(f"ringport-bench {path}: {p.stdout[-400:]} {p.stderr[-400:]}")
    with open(out) as f:
        return json.load(f)["results"]


def get(host, path, accept=None, timeout=30):
    """(status, body, seconds) of one GET."""
    t0 = time.monotonic()
    c = http.client.HTTPConnection(host, timeout=timeout)
    try:
        c.request("GET", path, headers={"Accept": accept} if accept else {})
        r = c.getresponse()
        body = r.read()
        return r.status, body, time.monotonic() - t0
    finally:
        c.close()


def first_bytes(host, path, out, i):
    """Time to the first body byte of `path`; reads 1 MiB, then leaves."""
    t0 = time.monotonic()
    c = http.client.HTTPConnection(host, timeout=120)
    try:
        c.request("GET", path)
        r = c.getresponse()
        first = r.read(1)
        t1 = time.monotonic()
        r.read((1 << 20) - 1)
        out[i] = {"status": r.status, "ttfb_s": t1 - t0, "start": t0, "ok": len(first) == 1}
    except Exception as e:  # noqa: BLE001 - a failed client is a result
        out[i] = {"error": repr(e), "start": t0}
    finally:
        c.close()


def counts(up):
    return {k: up.up.count(*k) for k in (("GET", "blob"), ("HEAD", "manifest"),
                                         ("GET", "manifest"), ("HEAD", "blob"))}


def delta(after, before):
    return {f"{m} {k}": after[(m, k)] - before[(m, k)] for (m, k) in after}


def measure(kind, server, ttl_server, up, tool, scratch, say, res):
    """Every row's figures against one mirror (and its short-TTL twin), into
    `res` as they come: a failure keeps the rows measured before it."""
    host = server.url.split("://", 1)[1]
    pre = "/v2/up.test/" if kind == "ringport" else "/v2/"
    js = lambda name: os.path.join(scratch, f"mirror-{kind}-{name}.json")  # noqa: E731

    say(f"mirror/{kind}: {CLIENTS} clients pull one uncached {len(up.big) >> 20} MiB blob")
    before = counts(up)
    r = bench(tool, server.url, f"{pre}bench/big/blobs/{up.big_d}", up.big_d, js("fanout"),
              "--count", str(CLIENTS), "--concurrency", str(CLIENTS), "--threads", "2",
              "--timeout", "300", "--no-warmup")
    res["fanout"] = {"seconds": r["seconds"], "errors": r["errors"], "ops": r["ops"],
                     "upstream": delta(counts(up), before)}

    say(f"mirror/{kind}: {CLIENTS} clients arriving spread over an uncached fetch")
    expected_s = len(up.spread) / RATE
    out = [None] * CLIENTS
    before = counts(up)
    threads = []
    t_start = time.monotonic()
    for i in range(CLIENTS):
        t = threading.Thread(target=first_bytes,
                             args=(host, f"{pre}bench/big/blobs/{up.spread_d}", out, i))
        threads.append(t)
        t.start()
        time.sleep(expected_s * 0.9 / CLIENTS)
    for t in threads:
        t.join(300)
    ok = [o for o in out if o and o.get("ok") and o.get("status") == 200]
    later = sorted(o["ttfb_s"] for o in ok[1:]) if ok else []
    res["spread"] = {"clients": CLIENTS, "ok": len(ok), "arrival_span_s":
                     (max(o["start"] for o in out if o) - t_start) if out[0] else None,
                     "first_ttfb_s": ok[0]["ttfb_s"] if ok else None,
                     "later_ttfb_max_s": later[-1] if later else None,
                     "later_ttfb_p50_s": later[len(later) // 2] if later else None,
                     "upstream": delta(counts(up), before)}

    say(f"mirror/{kind}: warm blob pulls through the mirror")
    # The fan-out's blob is cached now (Distribution: once its fetch ended).
    r = bench(tool, server.url, f"{pre}bench/big/blobs/{up.big_d}", up.big_d, js("warm"),
              "--count", "5", "--concurrency", "1")
    res["warm_blob"] = {"bytes_per_s": r["bytes_per_s"], "errors": r["errors"]}

    say(f"mirror/{kind}: warm manifest GETs by tag")
    status, body, _ = get(host, f"{pre}bench/app/manifests/v1", OCI_MANIFEST)
    if status != 200:
        raise RuntimeError(f"manifest GET: {status} {body[:200]!r}")
    before = up.up.count()
    r = bench(tool, server.url, f"{pre}bench/app/manifests/v1", digest_of(up.app), js("manifest"),
              "--duration", "5", "--concurrency", "16", "--timeout", "30")
    res["warm_manifest"] = {"ops_per_s": r["ops_per_s"], "errors": r["errors"],
                            "p99_us": r["latency_us"]["p99"],
                            "upstream_requests": up.up.count() - before}

    tsrv = ttl_server or server
    thost = tsrv.url.split("://", 1)[1]
    say(f"mirror/{kind}: a warm multi-arch pull of one platform after tag_ttl")
    pull_platform = lambda: [  # noqa: E731
        get(thost, f"{pre}bench/multi/manifests/v1", OCI_INDEX),
        get(thost, f"{pre}bench/multi/manifests/{digest_of(up.amd)}", OCI_MANIFEST),
        *[get(thost, f"{pre}bench/multi/blobs/{d}") for d in up.amd_blobs]]
    first = pull_platform()
    if any(s != 200 for s, _, _ in first):
        raise RuntimeError(f"multi-arch pull: {[s for s, _, _ in first]}")
    time.sleep(TTL_S + 0.3)
    before = counts(up)
    again = pull_platform()
    res["multiarch"] = {"statuses": [s for s, _, _ in again],
                        "upstream": delta(counts(up), before)}

    say(f"mirror/{kind}: the upstream stalls; a cached tag")
    get(thost, f"{pre}bench/app/manifests/v1", OCI_MANIFEST)  # cached on the ttl server
    time.sleep(TTL_S + 0.3)
    up.up.delay_s = 60  # accepts, then answers nothing
    try:
        status, _, first_s = get(thost, f"{pre}bench/app/manifests/v1", OCI_MANIFEST, timeout=15)
        r = bench(tool, tsrv.url, f"{pre}bench/app/manifests/v1", digest_of(up.app), js("down"),
                  "--duration", "5", "--concurrency", "8", "--timeout", "15")
        res["down"] = {"first_status": status, "first_s": first_s, "ops": r["ops"],
                       "errors": r["errors"], "p99_us": r["latency_us"]["p99"]}
    except Exception as e:  # noqa: BLE001 - the table says it failed
        res["down"] = {"error": repr(e)}
    finally:
        up.up.delay_s = 0


def references(up, tool, start_plain, scratch, say):
    """What the fan-out row is held against: one direct pull from the
    upstream, and 64 clients pulling the blob warm from a plain ringport;
    and the plain warm pull the warm-mirror row is held against."""
    ref = {}
    say("mirror: one direct pull from the upstream (200 MB/s)")
    r = bench(tool, up.up.url, f"/v2/bench/big/blobs/{up.big_d}", up.big_d,
              os.path.join(scratch, "mirror-direct.json"), "--count", "1", "--timeout", "300",
              "--no-warmup")
    ref["direct_s"] = r["seconds"]
    plain = start_plain()
    try:
        host = plain.url.split("://", 1)[1]
        c = http.client.HTTPConnection(host, timeout=300)
        c.request("POST", f"/v2/bench/big/blobs/uploads/?digest={up.big_d}", body=up.big)
        st = c.getresponse()
        st.read()
        c.close()
        if st.status != 201:
            raise RuntimeError(f"plain push: {st.status}")
        say(f"mirror: {CLIENTS} clients pull the blob warm from a plain ringport")
        r = bench(tool, plain.url, f"/v2/bench/big/blobs/{up.big_d}", up.big_d,
                  os.path.join(scratch, "mirror-plain64.json"), "--count", str(CLIENTS),
                  "--concurrency", str(CLIENTS), "--threads", "2", "--timeout", "300")
        ref["plain64_s"] = r["seconds"]
        r = bench(tool, plain.url, f"/v2/bench/big/blobs/{up.big_d}", up.big_d,
                  os.path.join(scratch, "mirror-plain1.json"), "--count", "5",
                  "--concurrency", "1")
        ref["plain_bytes_per_s"] = r["bytes_per_s"]
    finally:
        plain.stop()
    return ref


def compare_step(args, tool, start_ringport_cfg, start_plain, start_distribution_proxy, scratch,
                 say):
    """bench/compare's `mirror` step. The starters take the upstream's URL
    (and for ringport a tag_ttl_s) and return a started server."""
    big = args.mirror_bytes
    say(f"mirror: making the upstream ({big >> 20} MiB blobs, {RATE / 1e6:.0f} MB/s per "
        "connection)")
    up = Upstream(big)
    up.up.rate = RATE
    out = {"blob_bytes": big, "clients": CLIENTS}
    try:
        out["reference"] = references(up, tool, start_plain, scratch, say)
        for kind in ("ringport", "distribution"):
            up.up.counts.clear()
            try:
                if kind == "ringport":
                    server = start_ringport_cfg(up.up.url, 60, "mirror-ringport")
                    ttl_server = start_ringport_cfg(up.up.url, TTL_S, "mirror-ringport-ttl")
                else:
                    server, ttl_server = start_distribution_proxy(up.up.url), None
            except Exception as e:  # noqa: BLE001
                out[kind] = {"error": repr(e)}
                continue
            out[kind] = {}
            try:
                measure(kind, server, ttl_server, up, tool, scratch, say, out[kind])
            except Exception as e:  # noqa: BLE001 - one failing must not lose the other
                out[kind]["error"] = repr(e)
                say(f"  FAILED: {e!r}")
            finally:
                server.stop()
                if ttl_server is not None:
                    ttl_server.stop()
    finally:
        up.close()
    return out


def rows(res, row, fmt):
    """The `mirror` rows of bench/compare's table."""
    m = res.get("mirror")
    if not m:
        return
    rp, di, ref = m.get("ringport", {}), m.get("distribution", {}), m.get("reference", {})
    mib = m.get("blob_bytes", 0) >> 20
    n = m.get("clients", CLIENTS)

    def cell(x, key, render):
        """A row's cell: `render` of what was measured, else why it was not."""
        if not x.get(key):
            return f"failed: {x['error'][:160]}" if "error" in x else "—"
        return render(x[key])

    def fan(f):
        return (f"last client {f['seconds']:.2f} s, {f['ops']} verified, {f['errors']} errors, "
                f"{f['upstream']['GET blob']} upstream GET")

    f = rp.get("fanout", {})
    slower = max(ref.get("direct_s", 0), ref.get("plain64_s", 0))
    ok = (bool(f) and f["upstream"]["GET blob"] == 1 and f["errors"] == 0 and f["ops"] == n and
          slower > 0 and f["seconds"] <= 1.1 * slower)
    row(f"mirror: {n} clients pull one uncached {mib} MiB blob (upstream 200 MB/s)",
        cell(rp, "fanout", fan), cell(di, "fanout", fan),
        f"{f.get('seconds', 0) / slower:.2f}× of {slower:.2f} s" if f and slower else "—",
        f"1 upstream GET; ≤ 1.1× the slower of a direct pull ({fmt(ref.get('direct_s'), 's', 2)}) "
        f"and {n} warm pulls from plain ringport ({fmt(ref.get('plain64_s'), 's', 2)})", ok)

    def spread(s):
        return (f"{s['ok']}/{s['clients']} answered; later arrivals' first byte: max "
                f"{s['later_ttfb_max_s'] * 1000:.1f} ms, p50 {s['later_ttfb_p50_s'] * 1000:.1f} ms; "
                f"{s['upstream']['GET blob']} upstream GET")

    s = rp.get("spread", {})
    ok = bool(s) and s["ok"] == s["clients"] and s["later_ttfb_max_s"] is not None and \
        s["later_ttfb_max_s"] <= 0.005 and s["upstream"]["GET blob"] == 1
    row(f"mirror: the same, {n} clients arriving spread over the fetch",
        cell(rp, "spread", spread), cell(di, "spread", spread),
        "—", "first byte ≤ 5 ms after the request; none waits for the end", ok)

    w = rp.get("warm_blob", {})
    plain = ref.get("plain_bytes_per_s")
    ratio_w = w.get("bytes_per_s", 0) / plain if plain else None

    def warm(w):
        return f"{w['bytes_per_s'] / 1e6:,.0f} MB/s"

    row(f"mirror: warm {mib} MiB blob pull (plain ringport: "
        f"{(plain or 0) / 1e6:,.0f} MB/s)",
        cell(rp, "warm_blob", warm), cell(di, "warm_blob", warm),
        f"{ratio_w:.0%} of plain" if ratio_w else "—", "≥ 90% of plain ringport",
        None if ratio_w is None else ratio_w >= 0.9)

    def man(wm):
        return (f"{wm['ops_per_s']:,.0f}/s, p99 {wm['p99_us'] / 1000:.2f} ms, "
                f"{wm['upstream_requests']} upstream requests, {wm['errors']} errors")

    a, b = rp.get("warm_manifest", {}), di.get("warm_manifest", {})
    r = a.get("ops_per_s", 0) / b["ops_per_s"] if b.get("ops_per_s") else None
    row("mirror: warm manifest GET by tag within tag_ttl (16 connections)",
        cell(rp, "warm_manifest", man), cell(di, "warm_manifest", man),
        f"{r:.1f}×" if r else "—", "≥ 40× Distribution; 0 upstream requests",
        None if r is None else r >= 40 and a.get("upstream_requests") == 0)

    def down(d):
        if "error" in d:
            return f"failed: {d['error'][:120]}"
        return (f"first {d['first_status']} in {d['first_s']:.2f} s; then {d['ops']:,} GETs, "
                f"p99 {d['p99_us'] / 1000:.2f} ms, {d['errors']} failed")

    d = rp.get("down", {})
    ok = bool(d) and "error" not in d and d["first_status"] == 200 and d["first_s"] <= 1.1 and \
        d["p99_us"] <= 5000 and d["errors"] == 0
    row("mirror: upstream down (stalled), cached tag",
        cell(rp, "down", down), cell(di, "down", down), "—",
        "first answer ≤ 1.1 s, then p99 ≤ 5 ms; 0 failed pulls", ok)

    def multi(mm):
        u = mm["upstream"]
        return (f"{u['HEAD manifest']} HEAD, {u['GET manifest'] + u['GET blob']} GETs "
                f"(statuses {sorted(set(mm['statuses']))})")

    mm = rp.get("multiarch", {})
    ok = bool(mm) and mm["upstream"]["HEAD manifest"] == 1 and \
        mm["upstream"]["GET manifest"] + mm["upstream"]["GET blob"] == 0 and \
        set(mm["statuses"]) == {200}
    row("mirror: warm multi-arch pull of one platform after tag_ttl",
        cell(rp, "multiarch", multi), cell(di, "multiarch", multi), "—",
        "1 upstream HEAD, 0 GETs", ok)
