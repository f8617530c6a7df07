# SPDX-License-Identifier: Apache-2.0
"""A mirror's cache that fits its disk (issue 10): cache_bytes_max with
watermarks, least recently pulled first, blobs shared with hosted content
kept, pins, pre-warm, and access times saved across a restart."""
import json
import os
import time

from ringtest.client import Client
from ringtest.fakeupstream import FakeUpstream, digest_of
from ringtest.harness import Ringport, ringport_with_config
from ringtest.mirrortest import wait_for

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
LAYER = 200_000
ACCEPT = {"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"}


def add_image(up, name, tag, seed):
    """An image upstream: a config, one layer of LAYER bytes; returns (manifest, layer)."""
    layer = (seed * (LAYER // len(seed) + 1))[:LAYER]
    config = b'{"architecture":"amd64","os":"linux","seed":"' + seed + b'"}'
    return up.add_image(name, tag, config, [layer]), layer


def pull(srv, name, tag="v1"):
    """A whole pull through the mirror: the manifest, then its blobs."""
    c = Client(srv.host)
    r = c.request("GET", f"/v2/up.test/{name}/manifests/{tag}", headers=ACCEPT)
    assert r.status == 200, r
    m = json.loads(r.body)
    for d in [m["config"]["digest"]] + [x["digest"] for x in m["layers"]]:
        b = c.request("GET", f"/v2/up.test/{name}/blobs/{d}")
        assert b.status == 200 and digest_of(b.body) == d, b
    return r.body


def blob_stored(srv, d):
    return os.path.exists(os.path.join(srv.root, "docker/registry/v2/blobs/sha256", d[7:9],
                                       d[7:], "data"))


def tag_stored(srv, name, tag="v1"):
    return os.path.exists(os.path.join(srv.root, "docker/registry/v2/repositories/up.test",
                                       name, "_manifests/tags", tag))


def metric(srv, name):
    for line in Client(srv.host).request("GET", "/metrics").body.decode().splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def fill_cache(up, srv, order):
    """Pulls team/img<i> for each i of `order`, a second apart (access times
    are kept in seconds)."""
    for i in order:
        pull(srv, f"team/img{i}")
        time.sleep(1.05)


def test_past_the_high_watermark_the_least_recently_pulled_go_down_to_the_low_one():
    up = FakeUpstream(bearer=False)
    layers = {i: add_image(up, f"team/img{i}", "v1", b"image %d " % i)[1] for i in range(1, 6)}
    srv, cfg = ringport_with_config(
        f'[[mirror]]\nprefix = "up.test"\nurl = "{up.url}"\n'
        "cache_bytes_max = 1000000\nevict_high_percent = 90\nevict_low_percent = 50\n")
    try:
        # img3's layer is also pushed as hosted content: it must survive.
        Client(srv.host).push_blob("hosted/app", layers[3])
        fill_cache(up, srv, [1, 2, 3, 4])
        assert metric(srv, "ringport_mirror_evictions_total") == 0  # 4 x 200 kB: under 900 kB
        pull(srv, "team/img1")  # img1 is recent again: img2 is now the oldest
        time.sleep(1.05)
        pull(srv, "team/img5")  # 5 x 200 kB: past 900 kB
        assert wait_for(lambda: metric(srv, "ringport_mirror_evictions_total") == 3, 15.0)
        for i in (2, 3, 4):
            assert not tag_stored(srv, f"team/img{i}"), i
        for i in (2, 4):
            assert not blob_stored(srv, digest_of(layers[i])), i
        assert blob_stored(srv, digest_of(layers[3]))  # hosted/app links it
        assert Client(srv.host).request(
            "GET", f"/v2/hosted/app/blobs/{digest_of(layers[3])}").body == layers[3]
        for i in (1, 5):
            assert tag_stored(srv, f"team/img{i}") and blob_stored(srv, digest_of(layers[i]))
        assert metric(srv, "ringport_mirror_cache_bytes") <= 500_000
        # What stayed is served from the cache; what went comes back from upstream.
        before = up.count("GET")
        pull(srv, "team/img5")
        assert up.count("GET") == before
        pull(srv, "team/img2")
        assert up.count("GET", "blob") > 0 and up.count("GET") > before
    finally:
        srv.cleanup()
        up.close()
        os.unlink(cfg)


def test_pinned_images_are_never_evicted():
    up = FakeUpstream(bearer=False)
    layers = {i: add_image(up, f"team/img{i}", "v1", b"pinned %d " % i)[1] for i in range(1, 6)}
    srv, cfg = ringport_with_config(
        f'[[mirror]]\nprefix = "up.test"\nurl = "{up.url}"\n'
        "cache_bytes_max = 1000000\nevict_high_percent = 90\nevict_low_percent = 50\n"
        'pins = ["team/img2:*"]\n')
    try:
        fill_cache(up, srv, [1, 2, 3, 4, 1])
        pull(srv, "team/img5")
        assert wait_for(lambda: metric(srv, "ringport_mirror_evictions_total") == 3, 15.0)
        assert tag_stored(srv, "team/img2") and blob_stored(srv, digest_of(layers[2]))
        for i in (1, 3, 4):  # the oldest unpinned ones
            assert not tag_stored(srv, f"team/img{i}"), i
        assert tag_stored(srv, "team/img5")
    finally:
        srv.cleanup()
        up.close()
        os.unlink(cfg)


def test_prewarm_fetches_every_platform_of_an_index_and_its_blobs_at_start():
    up = FakeUpstream(bearer=False)
    amd, amd_layer = add_image(up, "team/multi", "amd64-only", b"amd64 ")
    arm, arm_layer = add_image(up, "team/multi", "arm64-only", b"arm64 ")
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": digest_of(amd), "size": len(amd),
         "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": OCI_MANIFEST, "digest": digest_of(arm), "size": len(arm),
         "platform": {"architecture": "arm64", "os": "linux"}}]}).encode()
    up.add_manifest("team/multi", "v1", index, media_type=OCI_INDEX)
    srv, cfg = ringport_with_config(
        f'[[mirror]]\nprefix = "up.test"\nurl = "{up.url}"\n'
        'prewarm = ["team/multi:v1"]\nprewarm_interval_s = 0\n')
    try:
        assert wait_for(lambda: blob_stored(srv, digest_of(amd_layer)) and
                        blob_stored(srv, digest_of(arm_layer)), 15.0)
        assert tag_stored(srv, "team/multi")
        # Everything is in the cache: a pull asks the upstream nothing.
        before = up.count()
        for tag in ("v1",):
            r = Client(srv.host).request("GET", f"/v2/up.test/team/multi/manifests/{tag}",
                                         headers=ACCEPT)
            assert r.status == 200 and r.body == index, r
        for m in (amd, arm):
            pull_digest = Client(srv.host).request(
                "GET", f"/v2/up.test/team/multi/manifests/{digest_of(m)}", headers=ACCEPT)
            assert pull_digest.body == m
        assert up.count() == before
    finally:
        srv.cleanup()
        up.close()
        os.unlink(cfg)


def saved_pulls(root):
    """{key: pulled} from the saved activity (.ringport.activity)."""
    out = {}
    with open(os.path.join(root, ".ringport.activity")) as f:
        for line in f.read().splitlines()[1:]:
            pulled, _pushed, key = line.split(" ", 2)
            out[key] = int(pulled)
    return out


def test_access_times_are_saved_at_a_stop_and_read_at_the_next_start():
    up = FakeUpstream(bearer=False)
    m, _ = add_image(up, "team/app", "v1", b"kept ")
    srv, cfg = ringport_with_config(f'[[mirror]]\nprefix = "up.test"\nurl = "{up.url}"\n')
    root = srv.root
    try:
        t0 = int(time.time())
        pull(srv, "team/app")
        assert srv.stop() == 0
        key = f"up.test/team/app@{digest_of(m)}"
        saved = saved_pulls(root)
        assert t0 <= saved[key] <= int(time.time()), saved
        assert saved["up.test/team/app:v1"] >= t0, saved
        # An upgrade from a version that kept only the mirror's access file:
        # it is read at the start and removed by the first save.
        os.unlink(os.path.join(root, ".ringport.activity"))
        with open(os.path.join(root, ".ringport.mirror-access"), "w") as f:
            f.write(f"{t0 - 5000} {key}\n")
        again = Ringport(root=root, config=cfg).start()
        again.wait_ready()
        assert again.stop() == 0
        assert saved_pulls(root)[key] == t0 - 5000
        assert not os.path.exists(os.path.join(root, ".ringport.mirror-access"))
    finally:
        srv.cleanup()
        up.close()
        os.unlink(cfg)
