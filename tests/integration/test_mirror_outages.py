# SPDX-License-Identifier: Apache-2.0
"""A mirror when its upstream is down, throttled or near its rate limit
(issue 10): the deadline, serve-stale within max_stale_s, the circuit and
its background probe, Retry-After, ratelimit-remaining; and the upstream's
tag lists and referrers, kept for list_ttl_s."""
import time


from ringtest.client import Client
from ringtest.mirrortest import (OCI_MANIFEST, fake_and_mirror, get, image_manifest, pull_until)


def test_a_stalled_upstream_costs_one_deadline_then_the_cache_answers_at_once():
    with fake_and_mirror("tag_ttl_s = 1\ndeadline_ms = 500\nretry_after_s = 2\n") as (up, srv):
        body = image_manifest(b"cached before the outage")
        up.add_manifest("team/app", "v1", body)
        assert get(srv, "/v2/up.test/team/app/manifests/v1").body == body
        up.delay_s = 30  # it accepts, and answers nothing for 30 s
        time.sleep(1.3)  # past the tag's TTL
        r = get(srv, "/v2/up.test/team/app/manifests/v1")
        assert r.status == 200 and r.body == body, r
        assert r.header("Warning", "").startswith('110 ringport "stale: '), r
        heads = up.count("HEAD", "manifest")
        assert heads == 1
        # The circuit is open: ten more pulls are answered from the cache
        # without a request upstream.
        for _ in range(10):
            r = get(srv, "/v2/up.test/team/app/manifests/v1")
            assert r.status == 200 and r.body == body and r.header("Warning"), r
        assert up.count("HEAD", "manifest") == heads
        # retry_after_s later the next pull asks again, and the upstream is back.
        up.delay_s = 0
        time.sleep(2.3)
        r = get(srv, "/v2/up.test/team/app/manifests/v1")
        assert r.status == 200 and r.body == body and r.header("Warning") is None, r
        assert up.count("HEAD", "manifest") == heads + 1


def test_the_circuit_stays_open_until_a_background_probe_sees_the_upstream_back():
    with fake_and_mirror("tag_ttl_s = 1\nretry_after_s = 1\n") as (up, srv):
        body = image_manifest(b"probe")
        up.add_manifest("team/app", "v1", body)
        assert get(srv, "/v2/up.test/team/app/manifests/v1").body == body
        up.down = (503, {})
        time.sleep(1.2)
        r = get(srv, "/v2/up.test/team/app/manifests/v1")
        assert r.status == 200 and r.body == body and r.header("Warning"), r
        assert up.count("HEAD", "down") == 1
        # Down for 2.5 s more: the probe asks about once a second, the pulls never do.
        for _ in range(25):
            r = get(srv, "/v2/up.test/team/app/manifests/v1")
            assert r.status == 200 and r.header("Warning"), r
            time.sleep(0.1)
        assert up.count("HEAD", "down") == 1
        assert 1 <= up.count("GET", "ping") <= 4, up.counts
        # Back: the probe sees it, and the next pull revalidates as usual.
        up.down = None
        r = pull_until(srv, lambda r: r.header("Warning") is None)
        assert r.body == body
        assert up.count("HEAD", "manifest") == 1
        assert up.count("GET", "ping") >= 1


def test_an_upstream_retry_after_holds_the_probe_back():
    with fake_and_mirror("tag_ttl_s = 1\nretry_after_s = 1\n") as (up, srv):
        body = image_manifest(b"retry after")
        up.add_manifest("team/app", "v1", body)
        assert get(srv, "/v2/up.test/team/app/manifests/v1").body == body
        up.down = (429, {"Retry-After": "4"})
        time.sleep(1.2)
        t0 = time.monotonic()
        r = get(srv, "/v2/up.test/team/app/manifests/v1")
        assert r.status == 200 and r.header("Warning"), r
        up.down = None  # back at once, but it asked for 4 s
        time.sleep(2.5)
        assert up.count("GET", "ping") == 0, up.counts
        assert get(srv, "/v2/up.test/team/app/manifests/v1").header("Warning")
        r = pull_until(srv, lambda r: r.header("Warning") is None)
        assert time.monotonic() - t0 >= 3.5
        assert up.count("GET", "ping") >= 1


def test_below_ratelimit_min_cached_tags_are_not_revalidated_for_retry_after_s():
    with fake_and_mirror("tag_ttl_s = 1\nretry_after_s = 2\nratelimit_min = 10\n") as (up, srv):
        body = image_manifest(b"rate limited")
        up.add_manifest("team/app", "v1", body)
        up.extra_headers = {"ratelimit-remaining": "5;w=21600"}
        assert get(srv, "/v2/up.test/team/app/manifests/v1").body == body
        time.sleep(1.2)  # past the TTL, but 5 pulls left is below 10
        r = get(srv, "/v2/up.test/team/app/manifests/v1")
        assert r.status == 200 and r.body == body, r
        assert "pulls left" in r.header("Warning", ""), r
        assert up.count("HEAD", "manifest") == 0
        # A miss still goes upstream: nothing else could answer it.
        other = image_manifest(b"a miss")
        up.add_manifest("team/app", "v2", other)
        assert get(srv, "/v2/up.test/team/app/manifests/v2").body == other
        # retry_after_s after the low reading, the tag is revalidated again.
        up.extra_headers = {"ratelimit-remaining": "90;w=21600"}
        time.sleep(2.1)
        r = get(srv, "/v2/up.test/team/app/manifests/v1")
        assert r.status == 200 and r.header("Warning") is None, r
        assert up.count("HEAD", "manifest") == 1


def test_a_cached_tag_is_served_stale_only_within_max_stale_s_of_its_last_confirmation():
    with fake_and_mirror("tag_ttl_s = 1\nretry_after_s = 30\nmax_stale_s = 4\n") as (up, srv):
        body = image_manifest(b"max stale")
        up.add_manifest("team/app", "v1", body)
        assert get(srv, "/v2/up.test/team/app/manifests/v1").body == body
        time.sleep(3)
        # Revalidated: confirmed now, so the 4 s count again from here.
        r = get(srv, "/v2/up.test/team/app/manifests/v1")
        assert r.status == 200 and r.header("Warning") is None, r
        assert up.count("HEAD", "manifest") == 1
        up.down = (503, {})
        time.sleep(2)
        r = get(srv, "/v2/up.test/team/app/manifests/v1")
        assert r.status == 200 and r.body == body and r.header("Warning"), r
        time.sleep(3.2)
        r = get(srv, "/v2/up.test/team/app/manifests/v1")
        assert r.status == 502 and "max_stale_s" in r.body.decode(), r


def test_a_mirrored_tag_list_is_the_upstreams_kept_for_list_ttl_s_and_paged_here():
    with fake_and_mirror("list_ttl_s = 1\n", bearer=True) as (up, srv):
        for t in ("a", "b", "c"):
            up.add_manifest("team/app", t, image_manifest(t.encode()))
        c = Client(srv.host)
        r = c.request("GET", "/v2/up.test/team/app/tags/list")
        assert r.status == 200, r
        assert r.json() == {"name": "up.test/team/app", "tags": ["a", "b", "c"]}
        assert c.request("GET", "/v2/team/app/tags/list?ns=up.test").json()["tags"] == \
            ["a", "b", "c"]
        assert up.count("GET", "tags") == 2  # the 401, then the token's retry; then cached
        # Pages: the upstream's Link comes back pointing here.
        r = c.request("GET", "/v2/up.test/team/app/tags/list?n=2")
        assert r.json()["tags"] == ["a", "b"]
        link = r.header("Link")
        assert link == '</v2/up.test/team/app/tags/list?n=2&last=b>; rel="next"', link
        r = c.request("GET", link[1:link.index(">")])
        assert r.json()["tags"] == ["c"] and r.header("Link") is None
        # A new tag upstream shows once the kept list is older than list_ttl_s.
        up.add_manifest("team/app", "d", image_manifest(b"d"))
        assert c.request("GET", "/v2/up.test/team/app/tags/list").json()["tags"] == \
            ["a", "b", "c"]
        time.sleep(1.1)
        assert c.request("GET", "/v2/up.test/team/app/tags/list").json()["tags"] == \
            ["a", "b", "c", "d"]
        # Unknown upstream and here: NAME_UNKNOWN.
        r = c.request("GET", "/v2/up.test/team/nope/tags/list")
        assert r.status == 404 and "NAME_UNKNOWN" in r.error_codes(), r


def test_with_the_upstream_down_a_tag_list_is_the_caches_said_stale():
    with fake_and_mirror("list_ttl_s = 0\n") as (up, srv):
        body = image_manifest(b"cached")
        up.add_manifest("team/app", "v1", body)
        up.add_manifest("team/app", "v2", image_manifest(b"not cached"))
        assert get(srv, "/v2/up.test/team/app/manifests/v1").body == body
        up.down = (503, {})
        c = Client(srv.host)
        r = c.request("GET", "/v2/up.test/team/app/tags/list")
        assert r.status == 200 and r.json()["tags"] == ["v1"], r
        assert r.header("Warning", "").startswith('110 ringport "stale: '), r
        r = c.request("GET", "/v2/up.test/team/never/tags/list")
        assert r.status == 502, r


def test_mirrored_referrers_are_the_upstreams_with_its_filter():
    with fake_and_mirror("list_ttl_s = 30\n", bearer=True) as (up, srv):
        body = image_manifest(b"signed image")
        subject = up.add_manifest("team/app", "v1", body)
        sig = {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "5" * 64, "size": 321,
               "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json"}
        sbom = {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "6" * 64, "size": 123,
                "artifactType": "application/spdx+json"}
        up.referrers[("team/app", subject)] = [sig, sbom]
        c = Client(srv.host)
        r = c.request("GET", f"/v2/up.test/team/app/referrers/{subject}")
        assert r.status == 200, r
        assert r.header("Content-Type") == "application/vnd.oci.image.index.v1+json"
        assert r.json()["manifests"] == [sig, sbom]
        r = c.request("GET", f"/v2/up.test/team/app/referrers/{subject}"
                             "?artifactType=application/spdx%2Bjson")
        assert r.json()["manifests"] == [sbom], r
        assert r.header("OCI-Filters-Applied") == "artifactType"
        before = up.count("GET", "referrers")
        c.request("GET", f"/v2/up.test/team/app/referrers/{subject}")
        assert up.count("GET", "referrers") == before  # kept for list_ttl_s


def test_an_upstream_without_the_referrers_api_leaves_the_caches_answer():
    with fake_and_mirror() as (up, srv):
        up.referrers_api = False
        subject = "sha256:" + "7" * 64
        r = Client(srv.host).request("GET", f"/v2/up.test/team/app/referrers/{subject}")
        assert r.status == 200 and r.json()["manifests"] == [], r
        assert r.header("Warning") is None
