# SPDX-License-Identifier: Apache-2.0
"""A mirror's blobs (issue 10): fetched verified through the upload pipeline,
streamed to every client as they land (late joiners, HEAD and Range during
the fetch, slow clients, clients gone), cut short on wrong bytes, resumed
with Range after a broken transfer, and linked from another repository
instead of fetched again."""
import http.client
import os
import threading
import time

import pytest

from ringtest.client import Client
from ringtest.fakeupstream import FakeUpstream
from ringtest.mirrortest import (blob_file, blob_get, fake_and_mirror, get_or_cut, open_blob, wait_for)


def test_a_blob_missing_from_the_cache_is_fetched_verified_and_kept(upstream_and_mirror):
    up, srv = upstream_and_mirror
    data = os.urandom(3 * 1024 * 1024 + 17)  # several of the pipeline's buffers
    d = up.add_blob("team/app", data)
    r = blob_get(srv, f"/v2/team/app/blobs/{d}?ns=up.test")
    assert r.status == 200, r
    assert r.body == data
    assert r.header("Docker-Content-Digest") == d
    assert (up.count("GET", "blob"), up.count("GET", "token")) == (2, 1)  # 401, token, retry
    before = up.count()
    # From the cache now: whole, by range, by HEAD, by the prefix route.
    assert blob_get(srv, f"/v2/up.test/team/app/blobs/{d}").body == data
    part = blob_get(srv, f"/v2/up.test/team/app/blobs/{d}", {"Range": "bytes=10-19"})
    assert part.status == 206 and part.body == data[10:20]
    assert Client(srv.host).request("HEAD", f"/v2/up.test/team/app/blobs/{d}").status == 200
    assert up.count() == before
    # In the tree as Distribution keeps it: the data once, a layer link.
    v2 = os.path.join(srv.root, "docker/registry/v2")
    with open(os.path.join(v2, "blobs/sha256", d[7:9], d[7:], "data"), "rb") as f:
        assert f.read() == data
    with open(os.path.join(v2, "repositories/up.test/team/app/_layers/sha256", d[7:],
                           "link")) as f:
        assert f.read() == d


def test_a_blob_redirected_to_a_cdn_is_fetched_without_the_token(upstream_and_mirror):
    up, srv = upstream_and_mirror
    cdn = FakeUpstream(bearer=False)
    try:
        up.redirect_blobs_to = cdn
        data = b"from the cdn" * 1000
        d = up.add_blob("team/app", data)
        r = blob_get(srv, f"/v2/up.test/team/app/blobs/{d}")
        assert r.status == 200 and r.body == data, r
        assert cdn.count("GET", "cdn") == 1  # and it saw no Authorization, or it says 403
    finally:
        cdn.close()


@pytest.mark.parametrize("size", [1300, 600 * 1024])  # within and past the held-back tail
def test_wrong_blob_bytes_are_cut_short_then_502_and_nothing_is_kept(size):
    with fake_and_mirror("not_found_ttl_s = 1\n", bearer=True) as (up, srv):
        data = os.urandom(size)
        wrong = bytearray(data)
        wrong[-1] ^= 1  # the same length: only the digest can tell
        d = up.add_blob("team/app", data, served=bytes(wrong))
        path = f"/v2/up.test/team/app/blobs/{d}"
        first = get_or_cut(srv, path)
        # Streamed from the first byte, so the answer may already be under way:
        # then it ends short, never with the wrong blob whole.
        assert first == "cut" or first.status == 502, first
        gets = up.count("GET", "blob")
        r = blob_get(srv, path)  # remembered: no second stream cut short
        assert r.status == 502 and "UNKNOWN" in r.error_codes(), r
        assert up.count("GET", "blob") == gets
        assert not os.path.exists(os.path.join(srv.root, "docker/registry/v2/blobs/sha256",
                                               d[7:9], d[7:]))
        # The upstream repairs itself: after the TTL the next pull gets the right bytes.
        up.blobs[("team/app", d)] = data
        time.sleep(1.1)
        r = blob_get(srv, path)
        assert r.status == 200 and r.body == data, r


def test_a_blob_the_upstream_lacks_is_blob_unknown(upstream_and_mirror):
    up, srv = upstream_and_mirror
    r = blob_get(srv, "/v2/up.test/team/app/blobs/sha256:" + "ab" * 32)
    assert r.status == 404 and "BLOB_UNKNOWN" in r.error_codes(), r


def test_clients_are_streamed_the_bytes_as_they_land_and_late_ones_join():
    with fake_and_mirror() as (up, srv):
        data = os.urandom(4 * 1024 * 1024 + 5)
        d = up.add_blob("team/app", data)
        up.hold_at = 1024 * 1024  # the upstream sends 1 MiB, then waits for the test
        path = f"/v2/up.test/team/app/blobs/{d}"
        conns = []
        try:
            c1, first = open_blob(srv, path)
            conns.append(c1)
            assert first.status == 200 and first.getheader("Content-Length") == str(len(data))
            # The first MiB reaches the client while the fetch is held mid-body.
            assert first.read(1024 * 1024) == data[:1024 * 1024]
            # A late client reads what is on disk, from the first byte.
            c2, late = open_blob(srv, path)
            conns.append(c2)
            assert late.status == 200 and late.read(512 * 1024) == data[:512 * 1024]
            # HEAD and a Range inside what landed answer now, fetch still running.
            c3, head = open_blob(srv, path, "HEAD")
            conns.append(c3)
            assert head.status == 200 and head.getheader("Content-Length") == str(len(data))
            head.read()
            c4, part = open_blob(srv, path, headers={"Range": "bytes=1000-199999"})
            conns.append(c4)
            assert part.status == 206, part.status
            assert part.getheader("Content-Range") == f"bytes 1000-199999/{len(data)}"
            assert part.read() == data[1000:200000]
            assert not os.path.exists(blob_file(srv, d))  # nothing committed yet
            up.release.set()
            assert first.read() == data[1024 * 1024:]
            assert late.read() == data[512 * 1024:]
        finally:
            up.release.set()
            for c in conns:
                c.close()
        assert up.count("GET", "blob") == 1
        assert open(blob_file(srv, d), "rb").read() == data


def test_a_range_past_what_landed_waits_for_its_bytes():
    with fake_and_mirror() as (up, srv):
        data = os.urandom(2 * 1024 * 1024)
        d = up.add_blob("team/app", data)
        up.hold_at = 256 * 1024
        path = f"/v2/up.test/team/app/blobs/{d}"
        c1, first = open_blob(srv, path)
        try:
            assert first.read(128 * 1024) == data[:128 * 1024]
            result = {}

            def tail():
                r = blob_get(srv, path, headers={"Range": "bytes=1048576-1048675"})
                result["r"] = r
            t = threading.Thread(target=tail)
            t.start()
            time.sleep(0.3)
            assert "r" not in result  # its bytes have not come yet
            up.release.set()
            t.join(10)
            r = result["r"]
            assert r.status == 206 and r.body == data[1048576:1048676], r
            assert first.read() == data[128 * 1024:]
        finally:
            up.release.set()
            c1.close()
        assert up.count("GET", "blob") == 1


def test_the_fetch_finishes_and_is_kept_when_every_client_has_gone():
    with fake_and_mirror() as (up, srv):
        data = os.urandom(3 * 1024 * 1024)
        d = up.add_blob("team/app", data)
        up.hold_at = 512 * 1024
        c1, first = open_blob(srv, f"/v2/up.test/team/app/blobs/{d}")
        assert first.read(100) == data[:100]
        c1.close()  # the only client leaves mid-fetch
        up.release.set()
        assert wait_for(lambda: os.path.exists(blob_file(srv, d)))
        assert open(blob_file(srv, d), "rb").read() == data
        r = blob_get(srv, f"/v2/up.test/team/app/blobs/{d}")
        assert r.status == 200 and r.body == data
        assert up.count("GET", "blob") == 1


def test_a_slow_client_does_not_slow_the_fetch_or_the_others():
    with fake_and_mirror() as (up, srv):
        data = os.urandom(24 * 1024 * 1024)  # more than the socket buffers hold
        d = up.add_blob("team/app", data)
        path = f"/v2/up.test/team/app/blobs/{d}"
        up.hold_at = 64 * 1024
        slow_conn, slow = open_blob(srv, path)  # reads nothing until the end
        try:
            up.release.set()
            fast = blob_get(srv, path)
            assert fast.status == 200 and fast.body == data
            # Committed while the slow client has read almost nothing.
            assert wait_for(lambda: os.path.exists(blob_file(srv, d)))
            assert slow.read() == data
        finally:
            slow_conn.close()
        assert up.count("GET", "blob") == 1


def test_an_interrupted_transfer_resumes_with_range_and_clients_see_no_error():
    with fake_and_mirror() as (up, srv):
        data = os.urandom(3 * 1024 * 1024 + 11)
        d = up.add_blob("team/app", data)
        up.resets, up.reset_at = 2, 1024 * 1024 + 123
        r = blob_get(srv, f"/v2/up.test/team/app/blobs/{d}")
        assert r.status == 200 and r.body == data, r
        assert up.count("GET", "blob") == 3
        assert up.ranges[0] is None
        assert up.ranges[1:] == [f"bytes={1024 * 1024 + 123}-"] * 2, up.ranges
        assert open(blob_file(srv, d), "rb").read() == data


def test_resuming_gives_up_after_its_bounded_retries():
    with fake_and_mirror("not_found_ttl_s = 0\n") as (up, srv):
        data = os.urandom(2 * 1024 * 1024)
        d = up.add_blob("team/app", data)
        up.resets, up.reset_at = 100, 300 * 1024
        first = get_or_cut(srv, f"/v2/up.test/team/app/blobs/{d}")
        assert first == "cut" or first.status == 502, first
        assert up.count("GET", "blob") == 4  # the transfer and 3 resumes
        assert not os.path.exists(blob_file(srv, d))
        # Nothing half-stored: once the upstream behaves, a pull is whole.
        up.resets = 0
        r = blob_get(srv, f"/v2/up.test/team/app/blobs/{d}")
        assert r.status == 200 and r.body == data


def test_a_head_of_an_uncached_blob_answers_once_the_upstream_does():
    with fake_and_mirror() as (up, srv):
        data = os.urandom(2 * 1024 * 1024)
        d = up.add_blob("team/app", data)
        up.hold_at = 64 * 1024  # the body would never finish before the test releases it
        try:
            r = Client(srv.host).request("HEAD", f"/v2/up.test/team/app/blobs/{d}")
            assert r.status == 200 and r.header("Content-Length") == str(len(data)), r
            assert r.header("Docker-Content-Digest") == d
        finally:
            up.release.set()
        # The HEAD started the fetch; it lands for the next pull.
        assert wait_for(lambda: os.path.exists(blob_file(srv, d)))
        assert blob_get(srv, f"/v2/up.test/team/app/blobs/{d}").body == data
        assert up.count("GET", "blob") == 1


def test_a_stop_cuts_a_stream_waiting_on_a_stalled_fetch_after_the_drain():
    """A stream follows the fetch, not a socket: the stop must still end it."""
    with fake_and_mirror("\n[http]\ndrain_timeout_ms = 200\n") as (up, srv):
        data = os.urandom(1024 * 1024)
        d = up.add_blob("team/app", data)
        up.hold_at = 256 * 1024  # never released before the stop
        c1, first = open_blob(srv, f"/v2/up.test/team/app/blobs/{d}")
        try:
            assert first.read(64 * 1024) == data[:64 * 1024]
            t0 = time.monotonic()
            assert srv.stop(timeout_s=8) == 0
            assert time.monotonic() - t0 < 5
            with pytest.raises((http.client.IncompleteRead, ConnectionError)):
                first.read()
        finally:
            up.release.set()
            c1.close()


def test_a_blob_stored_for_another_repository_is_linked_not_fetched_again():
    with fake_and_mirror() as (up, srv):
        data = os.urandom(256 * 1024)  # a base layer two images share
        d = up.add_blob("team/one", data)
        up.add_blob("team/two", data)
        assert blob_get(srv, f"/v2/up.test/team/one/blobs/{d}").body == data
        assert blob_get(srv, f"/v2/up.test/team/two/blobs/{d}").body == data
        assert up.count("GET", "blob") == 1
        assert os.path.exists(os.path.join(srv.root, "docker/registry/v2/repositories/up.test/"
                                           "team/two/_layers/sha256", d[7:], "link"))


def test_with_credentials_a_blob_is_fetched_for_each_repository_asked():
    """A private repository's blob must pass the upstream's own check."""
    with fake_and_mirror('username = "u"\npassword = "p"\n') as (up, srv):
        data = os.urandom(64 * 1024)
        d = up.add_blob("team/one", data)
        assert blob_get(srv, f"/v2/up.test/team/one/blobs/{d}").body == data
        r = blob_get(srv, f"/v2/up.test/team/two/blobs/{d}")  # team/two upstream lacks it
        assert r.status == 404, r
        assert up.count("GET", "blob") == 2
