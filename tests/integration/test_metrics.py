# SPDX-License-Identifier: Apache-2.0
"""GET /metrics (issue 10): Prometheus text format that promtool accepts,
requests by route and status, and per mirror its hits, misses, coalesced
waiters, remembered 404s, stale serves, bytes fetched against bytes served,
the circuit and the upstream's rate limit. Every figure is checked against
what the test did."""
import concurrent.futures
import os
import re
import subprocess
import time

from ringtest.client import Client
from ringtest.fakeupstream import FakeUpstream
from ringtest.harness import Ringport, ringport_with_config, wait_until

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def scrape(srv):
    r = Client(srv.host).request("GET", "/metrics")
    assert r.status == 200, r
    assert r.header("Content-Type").startswith("text/plain; version=0.0.4"), r
    text = r.body.decode()
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr + text
    values = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        m = LINE.match(line)
        assert m, line
        values[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return values


def image_manifest(seed):
    return (b'{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":'
            b'"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":2},'
            b'"layers":[]}' % (OCI_MANIFEST.encode(), seed.hex().encode().ljust(64, b"0")[:64]))


def test_requests_are_counted_by_route_and_status():
    srv = Ringport().start()
    try:
        srv.wait_ready()
        c = Client(srv.host)
        for _ in range(3):
            assert c.request("GET", "/v2/").status == 200
        for _ in range(2):
            assert c.request("GET", "/v2/team/app/manifests/nope").status == 404
        c.push_image("team/app", "v1", layers=(b"layer",))
        # A request is counted when its handler returns, just after the
        # client has its answer (maybe on another shard): wait for the last.
        key = 'ringport_http_requests_total{route="manifest",status="201"}'
        assert wait_until(lambda: scrape(srv).get(key) == 1, 5)
        v = scrape(srv)
        assert v['ringport_http_requests_total{route="base",status="200"}'] == 3
        assert v['ringport_http_requests_total{route="manifest",status="404"}'] == 2
        assert v[key] == 1
        # Scrapes are counted too, once they answered.
        scrapes = 'ringport_http_requests_total{route="metrics",status="200"}'
        assert wait_until(lambda: scrape(srv).get(scrapes, 0) >= 2, 5)
        assert not any(k.startswith("ringport_mirror_") for k in v)  # no mirrors configured
    finally:
        srv.cleanup()


def test_a_mirror_reports_what_its_cache_did():
    up = FakeUpstream(bearer=False)
    srv, cfg = ringport_with_config(
        f'[[mirror]]\nprefix = "up.test"\nurl = "{up.url}"\ntag_ttl_s = 1\nretry_after_s = 30\n')
    try:
        c = Client(srv.host)
        get = lambda p: c.request("GET", p, headers={"Accept": OCI_MANIFEST})  # noqa: E731
        body = image_manifest(b"metrics")
        up.add_manifest("team/app", "v1", body)
        up.extra_headers = {"ratelimit-remaining": "77;w=21600"}
        data = os.urandom(512 * 1024)
        d = up.add_blob("team/app", data)
        up.delay_s = 0.5
        with concurrent.futures.ThreadPoolExecutor(4) as pool:  # 1 miss, 3 coalesced
            got = list(pool.map(lambda _: get(f"/v2/up.test/team/app/blobs/{d}"), range(4)))
        assert all(r.status == 200 and r.body == data for r in got)
        up.delay_s = 0
        assert get("/v2/up.test/team/app/blobs/" + d).body == data  # a hit
        assert get("/v2/up.test/team/app/manifests/v1").body == body  # a miss
        assert get("/v2/up.test/team/app/manifests/v1").body == body  # a hit (within the TTL)
        for _ in range(2):  # the first asks upstream, the second is remembered
            assert get("/v2/up.test/team/app/manifests/nope").status == 404
        up.down = (503, {})
        time.sleep(1.1)
        r = get("/v2/up.test/team/app/manifests/v1")  # revalidation fails: stale
        assert r.status == 200 and r.header("Warning"), r
        r = get("/v2/up.test/team/app/manifests/v1")  # the circuit is open: stale
        assert r.status == 200 and r.header("Warning"), r
        v = scrape(srv)
        lbl = 'upstream="up.test"'
        assert v[f'ringport_mirror_misses_total{{{lbl},kind="blob"}}'] == 1
        assert v[f'ringport_mirror_coalesced_total{{{lbl},kind="blob"}}'] == 3
        assert v[f'ringport_mirror_hits_total{{{lbl},kind="blob"}}'] == 1
        assert v[f'ringport_mirror_misses_total{{{lbl},kind="manifest"}}'] == 1
        assert v[f'ringport_mirror_hits_total{{{lbl},kind="manifest"}}'] == 1
        assert v[f'ringport_mirror_not_found_hits_total{{{lbl},kind="manifest"}}'] == 1
        assert v[f'ringport_mirror_stale_serves_total{{{lbl}}}'] == 2
        assert v[f'ringport_mirror_revalidations_total{{{lbl}}}'] == 1
        assert v[f'ringport_mirror_circuit_open{{{lbl}}}'] == 1
        assert v[f'ringport_mirror_ratelimit_remaining{{{lbl}}}'] == 77
        assert v[f'ringport_mirror_fetches_in_flight{{{lbl}}}'] == 0
        # One blob fetch for five pulls; the manifest once for its three answers.
        assert v[f'ringport_mirror_upstream_bytes_total{{{lbl}}}'] == len(data) + len(body)
        assert v[f'ringport_mirror_served_bytes_total{{{lbl}}}'] == 5 * len(data) + 4 * len(body)
        assert v['ringport_http_requests_total{route="blob",status="200"}'] == 5
    finally:
        srv.cleanup()
        up.close()
        os.unlink(cfg)


def test_latency_bytes_index_lifecycle_webhooks_audit_scrub_and_shards():
    from ringtest.hooks import Receiver, endpoint_config
    import tempfile
    rx = Receiver()  # down at first
    audit = tempfile.mktemp(suffix=".jsonl")
    srv, cfg = ringport_with_config(
        endpoint_config("ci", rx.url) + f'[audit]\npath = "{audit}"\n'
        "[scrub]\nbytes_per_s = 100000000\ninterval_s = 1\n[http]\nshards = 2\n")
    try:
        c = Client(srv.host)
        layer = os.urandom(100_000)
        _, md = c.push_image("m/app", "v1", layers=(layer,))
        for _ in range(5):
            assert c.get_manifest("m/app", "v1", accept=OCI_MANIFEST).status == 200
        key = 'ringport_http_request_duration_seconds_count{route="manifest"}'
        assert wait_until(lambda: scrape(srv).get(key) == 6, 5)
        v = scrape(srv)
        # The histogram agrees with the request counts; buckets are cumulative.
        assert v['ringport_http_request_duration_seconds_bucket{route="manifest",le="+Inf"}'] == 6
        les = [float(k.split('le="')[1].rstrip('"}')) for k in v
               if k.startswith('ringport_http_request_duration_seconds_bucket{route="manifest"')
               and "+Inf" not in k]
        counts = [v[f'ringport_http_request_duration_seconds_bucket{{route="manifest",le="{le:g}"}}']
                  for le in sorted(les)]
        assert counts == sorted(counts) and counts[-1] <= 6
        assert v['ringport_http_request_duration_seconds_sum{route="manifest"}'] > 0
        assert v['ringport_http_request_body_bytes_total{route="upload_start"}'] >= len(layer)
        assert v['ringport_http_response_bytes_total{route="manifest"}'] > 5 * 200
        assert v["ringport_index_repositories"] == 1 and v["ringport_index_tags"] == 1
        assert v["ringport_index_manifests"] == 1 and v["ringport_index_blob_links"] == 2
        assert v["ringport_index_ready"] == 1 and v["ringport_upload_sessions"] == 0
        assert v["ringport_storage_filesystem_avail_bytes"] > 0
        assert v["ringport_storage_filesystem_size_bytes"] >= v[
            "ringport_storage_filesystem_avail_bytes"]
        assert {f'ringport_shard_busy_seconds_total{{shard="{i}"}}' for i in (0, 1)} <= set(v)
        # The endpoint is down: the events wait (2 blobs and a manifest pushed, 5 pulls).
        assert v['ringport_webhook_backlog_events{endpoint="ci"}'] == 8
        assert wait_until(
            lambda: scrape(srv)['ringport_webhook_failures_total{endpoint="ci"}'] >= 1, 10)
        assert scrape(srv)['ringport_webhook_endpoint_failing{endpoint="ci"}'] == 1
        rx.start()
        assert wait_until(
            lambda: scrape(srv)['ringport_webhook_backlog_events{endpoint="ci"}'] == 0, 15)
        v = scrape(srv)
        assert v['ringport_webhook_delivered_events_total{endpoint="ci"}'] == 8
        assert v['ringport_webhook_endpoint_failing{endpoint="ci"}'] == 0
        assert v['ringport_webhook_dropped_events_total{endpoint="ci",reason="expired"}'] == 0
        assert v['ringport_webhook_dropped_events_total{endpoint="ci",reason="spool_full"}'] == 0
        assert v["ringport_webhook_spool_bytes"] > 0
        assert v["ringport_audit_records_total"] == 3  # two blob pushes and the manifest
        # A GC run after a delete frees the image.
        assert c.request("DELETE", f"/v2/m/app/manifests/{md}").status == 202
        r = c.request("POST", "/ringport/v1/gc?grace_s=0")
        assert r.status == 202, r
        assert wait_until(lambda: scrape(srv)["ringport_gc_deleted_blobs_total"] == 3, 10)
        v = scrape(srv)
        assert v["ringport_gc_runs_total"] == 1 and v["ringport_gc_running"] == 0
        assert v["ringport_gc_freed_bytes_total"] >= len(layer)
        assert v["ringport_retention_runs_total"] == 0
        assert wait_until(lambda: scrape(srv).get("ringport_scrub_passes_total", 0) >= 1, 10)
        v = scrape(srv)
        assert v["ringport_scrub_findings"] == 0 and v["ringport_scrub_io_errors"] == 0
    finally:
        srv.cleanup()
        os.unlink(cfg)
        rx.stop()
        if os.path.exists(audit):
            os.unlink(audit)
