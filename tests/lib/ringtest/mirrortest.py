# SPDX-License-Identifier: Apache-2.0
"""Helpers of the mirror tests (issue 10): a scripted upstream with a ringport
mirroring it as `up.test`, and the requests the tests make through it."""
import concurrent.futures
import contextlib
import hashlib
import http.client
import json
import os
import time

from ringtest.client import Client
from ringtest.fakeupstream import FakeUpstream
from ringtest.harness import ringport_with_config

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
TTL_PAST_S = 2.3  # past the tests' tag_ttl_s (2 s; 1 s in the removal test)


def get(srv, path):
    return Client(srv.host).request("GET", path, headers={"Accept": OCI_MANIFEST})


def image_manifest(seed):
    cfg = {"mediaType": "application/vnd.oci.image.config.v1+json",
           "digest": "sha256:" + hashlib.sha256(seed + b"c").hexdigest(), "size": 2}
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar",
             "digest": "sha256:" + hashlib.sha256(seed + b"l").hexdigest(), "size": 10}
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": cfg,
                       "layers": [layer]}).encode()


@contextlib.contextmanager
def fake_and_mirror(extra="", bearer=False):
    """A scripted upstream and a ringport mirroring it as up.test."""
    up = FakeUpstream(bearer=bearer)
    srv, cfg = mirror_of(up, extra)
    try:
        yield up, srv
    finally:
        srv.cleanup()
        up.close()
        os.unlink(cfg)


def mirror_of(up, extra=""):
    return ringport_with_config(f'[[mirror]]\nprefix = "up.test"\nurl = "{up.url}"\n{extra}')


def blob_get(srv, path, headers=None):
    return Client(srv.host).request("GET", path, headers=headers)


def get_or_cut(srv, path):
    """The response, or "cut" when the server closed it short of its length."""
    try:
        return blob_get(srv, path)
    except (http.client.IncompleteRead, ConnectionError):
        return "cut"


def open_blob(srv, path, method="GET", headers=None):
    """A response whose body the test reads piece by piece."""
    conn = http.client.HTTPConnection(srv.host, timeout=10)
    conn.request(method, path, headers=headers or {})
    return conn, conn.getresponse()


def wait_for(cond, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def blob_file(srv, d):
    return os.path.join(srv.root, "docker/registry/v2/blobs/sha256", d[7:9], d[7:], "data")


def at_once(n, fn):
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: fn(), range(n)))


def pull_until(srv, cond, timeout_s=8.0):
    """Pulls team/app:v1 every 50 ms until `cond(response)`; the last response."""
    deadline = time.monotonic() + timeout_s
    r = None
    while time.monotonic() < deadline:
        r = get(srv, "/v2/up.test/team/app/manifests/v1")
        if cond(r):
            return r
        time.sleep(0.05)
    raise AssertionError(f"no pull met the condition in {timeout_s} s: {r}")
