# SPDX-License-Identifier: Apache-2.0
"""Requests answered while the index is still loading (issue 9).

With no usable snapshot the whole tree is read before the index is complete.
Manifest and blob reads do not wait for that: they are answered straight from
the tree, as Distribution would, and never wrongly (no write has run yet, so
the tree is the truth). Listings and writes wait for the index; /readyz keeps
meaning "index complete".

To hold the load in place deterministically, one repository's layer link is a
FIFO: reading it blocks the rebuild until the test writes the digest into it.
"""
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
import urllib.request

import pytest

from ringtest import rootgen
from ringtest.client import Client, sha256
from ringtest.harness import Ringport, wait_until

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
LAYER = b"a layer read while the index loads\n"


def status_of(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.fixture
def loading():
    """A ringport whose index load is held by a FIFO link; yields (server,
    digests, release()) and always releases and stops it."""
    root = tempfile.mkdtemp(prefix="ringtest-loading-")
    digests = {}
    written = set()
    for i in range(3):
        name = f"held/r{i}"
        for tag in ("a", "b"):
            _, md = rootgen.write_image(root, name, [tag], CONFIG, [LAYER],
                                        annotations={"repo": name, "tag": tag},
                                        blobs_written=written)
            digests[(name, tag)] = md
    blocker = sha256(b"the blocker's layer")
    rootgen.write_blob(root, b"the blocker's layer")
    link = os.path.join(rootgen.repo_dir(root, "zz/blocker"), "_layers", "sha256",
                        blocker.split(":", 1)[1], "link")
    release = rootgen.fifo_link(link, blocker)
    srv = Ringport(root=root, env={"RINGPORT_STORAGE_INDEX_SNAPSHOT": "false"})
    srv.start()
    try:
        yield srv, digests, release
    finally:
        try:
            release()
        finally:
            srv.cleanup()
            shutil.rmtree(root, ignore_errors=True)


def test_manifest_and_blob_reads_are_answered_from_the_tree_while_the_index_loads(loading):
    srv, digests, release = loading
    c = Client(srv.host)
    time.sleep(0.3)
    assert status_of(srv.url + "/readyz") == 503, "the load was not held"
    for (name, tag), md in digests.items():
        r = c.get_manifest(name, tag, accept=OCI_MANIFEST)
        assert r.status == 200 and sha256(r.body) == md, (name, tag, r)
        assert r.header("Docker-Content-Digest") == md
        assert r.header("Content-Type") == OCI_MANIFEST
        h = c.request("HEAD", f"/v2/{name}/manifests/{md}", headers={"Accept": OCI_MANIFEST})
        assert h.status == 200 and h.header("Content-Length") == str(len(r.body)), h
    name = "held/r1"
    assert c.get_blob(name, sha256(LAYER)).body == LAYER
    assert c.request("HEAD", f"/v2/{name}/blobs/{sha256(CONFIG)}").status == 200
    # Never wrongly: what the tree does not hold is unknown, now as later.
    assert c.get_manifest(name, "nope", accept=OCI_MANIFEST).status == 404
    assert c.get_manifest("held/absent", "a").status == 404
    assert c.request("HEAD", f"/v2/{name}/blobs/{sha256(b'not here')}").status == 404
    assert c.request("HEAD", f"/v2/zz/blocker/blobs/{sha256(b'not here')}").status == 404
    assert status_of(srv.url + "/readyz") == 503, "readyz must still say: not complete"
    release()
    srv.wait_ready(timeout_s=30)
    for (name, tag), md in digests.items():  # the same answers from the index
        r = c.get_manifest(name, tag, accept=OCI_MANIFEST)
        assert r.status == 200 and sha256(r.body) == md, (name, tag, r)


def test_listings_and_writes_wait_for_the_index(loading):
    srv, digests, release = loading
    time.sleep(0.3)
    assert status_of(srv.url + "/readyz") == 503, "the load was not held"
    results = {}

    def ask(key, method, path):
        results[key] = Client(srv.host).request(method, path).status

    waiting = [threading.Thread(target=ask, args=("catalog", "GET", "/v2/_catalog")),
               threading.Thread(target=ask, args=("tags", "GET", "/v2/held/r0/tags/list")),
               threading.Thread(target=ask, args=("upload", "POST", "/v2/held/r0/blobs/uploads/"))]
    for t in waiting:
        t.start()
    time.sleep(1.0)
    assert results == {}, f"answered from a half-loaded index: {results}"
    release()
    for t in waiting:
        t.join(timeout=30)
    assert results == {"catalog": 200, "tags": 200, "upload": 202}, results


def test_a_stop_while_the_index_loads_answers_the_waiting_requests_503_at_once(loading):
    """SIGTERM while the load is held: the requests waiting for the index get
    503 UNAVAILABLE at once (the index never completes in this process), the
    load stops at the next repository once released, no snapshot of the half
    index is written, and the next start serves everything."""
    srv, digests, release = loading
    time.sleep(0.3)
    assert status_of(srv.url + "/readyz") == 503, "the load was not held"
    results = {}

    def ask(key, method, path):
        r = Client(srv.host).request(method, path)
        results[key] = (r.status, r.body)

    waiting = [threading.Thread(target=ask, args=("catalog", "GET", "/v2/_catalog")),
               threading.Thread(target=ask, args=("upload", "POST", "/v2/held/r0/blobs/uploads/"))]
    for t in waiting:
        t.start()
    time.sleep(0.5)
    assert results == {}, f"answered from a half-loaded index: {results}"
    srv.proc.send_signal(signal.SIGTERM)
    for t in waiting:
        t.join(timeout=5)
    assert sorted(results) == ["catalog", "upload"], f"waiters not answered: {results}"
    for key, (status, body) in results.items():
        assert status == 503 and b"UNAVAILABLE" in body, (key, status, body)
    release()
    assert srv.proc.wait(timeout=15) == 0
    assert not os.path.exists(os.path.join(srv.root, ".ringport.index")), \
        "a snapshot of a half-loaded index was written"
    assert any("index load stopped" in line for line in srv.err), srv.err[-20:]
    blocker = sha256(b"the blocker's layer")
    link = os.path.join(rootgen.repo_dir(srv.root, "zz/blocker"), "_layers", "sha256",
                        blocker.split(":", 1)[1], "link")
    os.unlink(link)  # the FIFO would hold the next load too
    with open(link, "w") as f:
        f.write(blocker)
    srv.start()
    srv.wait_ready(timeout_s=30)
    c = Client(srv.host)
    for (name, tag), md in digests.items():
        r = c.get_manifest(name, tag, accept=OCI_MANIFEST)
        assert r.status == 200 and sha256(r.body) == md, (name, tag, r)
