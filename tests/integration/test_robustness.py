# SPDX-License-Identifier: Apache-2.0
"""Robustness: malformed, hostile, slow, broken and interrupted clients.

Every test checks three things:
  (a) the precise answer (status, OCI error code where there is a body, or how
      the connection ends);
  (b) that stored data did not change: a known image is pushed first, and after
      the bad request its manifests and blobs pull back byte-identical, tags
      lists and the catalog are the same, no file under the root changed or
      appeared (entries under `_uploads/` are judged per test), and nothing
      appeared beside the root;
  (c) that the server still serves: a fresh connection gets 200 on /v2/.

Limits and timeouts are set small through the environment (RINGPORT_<SECTION>_<KEY>,
docs/test-contract.md). With RINGTEST_TARGET=distribution the file runs against
Distribution 2.8.2 to check the tests' shape: tests that need a ringport setting
are skipped there, and where 2.8.2 is known to answer differently (documented per
test with `DEVIATES`) only "not a success, nothing stored, still serving" is checked.
"""
import hashlib
import json
import os
import random
import re
import shutil
import signal
import tempfile
import time

import pytest

from ringtest.client import Client, path_of, sha256
from ringtest.harness import Distribution, Ringport, wait_until
from ringtest.rawhttp import Closed, RawConn, build_request, chunked, connect, one_shot

TARGET = os.environ.get("RINGTEST_TARGET", "ringport")
IS_RINGPORT = TARGET != "distribution"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCTET = "application/octet-stream"
NAME = "lib/app"        # the known image's repository
OTHER = "other"         # a second repository, so the catalog has two entries
ESCAPE = "rtescape"     # every hostile path names this, so an escape is easy to find

MIB = 1 << 20
# What the default config allows before 431, per target (Go: MaxHeaderBytes + 4096).
HEADER_BYTES_MAX = 65536 if IS_RINGPORT else (1 << 20) + 4096
URL_BYTES_MAX = 8192
MANIFEST_BYTES_MAX = 4 * MIB

ENV_HEADER_TIMEOUT = "RINGPORT_HTTP_HEADER_TIMEOUT_MS"
ENV_BODY_TIMEOUT = "RINGPORT_HTTP_BODY_TIMEOUT_MS"
ENV_IDLE_TIMEOUT = "RINGPORT_HTTP_IDLE_TIMEOUT_MS"
ENV_DRAIN_TIMEOUT = "RINGPORT_HTTP_DRAIN_TIMEOUT_MS"
ENV_SHARDS = "RINGPORT_HTTP_SHARDS"
ENV_CONNS_MAX = "RINGPORT_HTTP_CONNECTIONS_PER_SHARD_MAX"
ENV_BLOB_MAX = "RINGPORT_STORAGE_BLOB_BYTES_MAX"
ENV_UPLOADS_MAX = "RINGPORT_STORAGE_UPLOADS_MAX"

# Marks a test (or a case) where Distribution 2.8.2 is known to answer differently
# from what ringport must do; under RINGTEST_TARGET=distribution such a case only
# checks "not a success, nothing stored, still serving".
DEVIATES = not IS_RINGPORT


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------



def expect_error(r, status, codes=(), lenient=False):
    """r (client.Resp or RawResponse) is `status` with first OCI code in `codes`.

    lenient (a known Distribution 2.8.2 deviation) only requires "not a success".
    """
    if lenient:
        assert r.status >= 300, r
        return
    assert r.status == status, r
    if codes:
        got = r.error_codes()
        assert got and got[0] in codes, f"want code in {codes}: {r}"
        assert (r.header("Content-Type") or "").startswith("application/json"), r


def expect_rejected_and_closed(shot, statuses, lenient=False):
    """A framing error: one response with a status in `statuses`, then the server closes.

    lenient (a known Distribution 2.8.2 deviation) only requires "not a success".
    """
    if lenient and shot.response is not None and shot.response.status < 300:
        pytest.skip(f"Distribution 2.8.2 accepts this: {shot.response.status}")
    assert shot.response is not None, f"no response before the close: {shot}"
    assert shot.response.status in statuses or (lenient and shot.response.status >= 400), shot
    assert shot.close is not None and shot.close.closed, \
        f"server kept the connection open after a framing error: {shot}"


def assert_serving(host):
    """(c): a fresh connection gets 200 on /v2/."""
    with RawConn(host, 5.0) as c:
        r = c.request("GET", "/v2/")
        assert r.status == 200, r
        assert r.header("Docker-Distribution-API-Version") == "registry/2.0", r


def blob_absent(c, name, digest):
    r = c.request("HEAD", f"/v2/{name}/blobs/{digest}")
    assert r.status == 404, f"blob {digest} is visible in {name}: {r}"


def raw_request(host, method, path, headers=None, body=b"", timeout_s=5.0):
    """A request sent byte for byte as given (no client-side path normalisation)."""
    with RawConn(host, timeout_s) as c:
        c.send(build_request(method, path, headers, body))
        return c.read_response(method, timeout_s)


def upload_range_end(r):
    """The last offset in an upload's Range header ("0-<last>"), or None."""
    rng = r.header("Range")
    if rng is None:
        return None
    m = re.fullmatch(r"(?:bytes=)?0-(\d+)", rng.strip())
    assert m, f"bad upload Range header {rng!r}"
    return int(m.group(1))


def settle_upload(c, loc, timeout_s=2.0):
    """GET an upload's status until two answers 100 ms apart agree (a cut request
    may still be unwinding on the server); returns the last answer."""
    prev = c.request("GET", loc)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.1)
        cur = c.request("GET", loc)
        if cur.status == prev.status and cur.header("Range") == prev.header("Range"):
            return cur
        prev = cur
    return prev


UNKNOWN_UPLOAD_CODES = ("BLOB_UPLOAD_UNKNOWN",) if IS_RINGPORT else \
    ("BLOB_UPLOAD_UNKNOWN", "BLOB_UPLOAD_INVALID")  # 2.8.2 cancels on an offset mismatch


def finish_or_unknown(c, loc, data, name=NAME, min_off=0, max_off=None):
    """An interrupted upload is either cleanly unknown, or resumable at an offset
    between min_off (bytes the server acknowledged) and max_off (bytes it could
    have received) whose stored prefix is exactly data[:offset]: the rest is
    PATCHed, the final PUT must verify, and the blob must pull back as `data`.
    Returns "unknown" or "resumed"."""
    max_off = len(data) if max_off is None else max_off
    r = settle_upload(c, loc)
    if r.status in (400, 404) and r.error_codes()[:1] and \
            r.error_codes()[0] in UNKNOWN_UPLOAD_CODES:
        assert r.status == 404 or not IS_RINGPORT, r
        return "unknown"
    assert r.status == 204, f"upload status is neither 204 nor BLOB_UPLOAD_UNKNOWN: {r}"
    loc = path_of(r.header("Location") or loc)
    end = upload_range_end(r)
    # "0-0" is ambiguous (Distribution says it for 0 and for 1 byte): try both.
    cands = [0] if end is None else ([1, 0] if end == 0 else [end + 1])
    cands = [o for o in cands if min_off <= o <= max_off]
    assert cands, f"upload offset {r.header('Range')} outside [{min_off}, {max_off}]"
    d = sha256(data)
    for i, off in enumerate(cands):
        if off < len(data):
            p = c.request("PATCH", loc, body=data[off:], headers={
                "Content-Type": OCTET, "Content-Range": f"{off}-{len(data) - 1}"})
            if p.status == 416 and i + 1 < len(cands):
                continue
            assert p.status == 202, p
            loc = path_of(p.header("Location"))
        sep = "&" if "?" in loc else "?"
        f = c.request("PUT", f"{loc}{sep}digest={d}")
        assert f.status == 201, f"resumed upload did not verify (stored prefix wrong?): {f}"
        g = c.get_blob(name, d)
        assert g.status == 200 and g.body == data
        return "resumed"
    raise AssertionError("unreachable")


def monolithic(c, name, data, digest):
    """A monolithic upload; returns the final response. ringport takes the body on
    the POST (contract); Distribution 2.8.2 ignores a POST body and closes while a
    large one is still being sent, so there it is POST, then PUT with the body."""
    if IS_RINGPORT:
        return c.request("POST", f"/v2/{name}/blobs/uploads/?digest={digest}", body=data,
                         headers={"Content-Type": OCTET})
    loc = c.start_upload(name)
    sep = "&" if "?" in loc else "?"
    return c.request("PUT", f"{loc}{sep}digest={digest}", body=data,
                     headers={"Content-Type": OCTET})


def rand_bytes(n, seed):
    return random.Random(seed).randbytes(n)


# ---------------------------------------------------------------------------
# The registry under test, in a sandbox, with a known image and a snapshot
# ---------------------------------------------------------------------------

class Known:
    """What was pushed: (name, tags, manifest bytes, manifest digest, {digest: bytes})."""

    def __init__(self):
        self.images = []
        self.manifest = None  # the lib/app manifest as a dict (to build variants)

    def blobs(self, name):
        for n, _, _, _, blobs in self.images:
            if n == name:
                return blobs
        return {}


def push_known(c):
    k = Known()
    layers = (rand_bytes(300_000, 1), b"small layer\n", rand_bytes(MIB, 2))
    cfg = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    body, dg = c.push_image(NAME, "v1", layers=layers, config=cfg)
    r = c.put_manifest(NAME, "v2", body, OCI_MANIFEST)
    assert r.status == 201, r
    k.images.append((NAME, ["v1", "v2"], body, dg,
                     {sha256(b): b for b in (cfg,) + layers}))
    k.manifest = json.loads(body)
    ob, od = c.push_image(OTHER, "latest", layers=(b"other layer",), config=b"{}")
    k.images.append((OTHER, ["latest"], ob, od, {sha256(b"{}"): b"{}",
                                                 sha256(b"other layer"): b"other layer"}))
    return k


def http_state(c, known):
    """Everything a client can read about the known images, as comparable values."""
    out = {}
    for name, tags, _, dg, blobs in known.images:
        for ref in tags + [dg]:
            r = c.get_manifest(name, ref, accept=OCI_MANIFEST)
            out[("manifest", name, ref)] = (r.status, r.body)
        for d in blobs:
            r = c.get_blob(name, d)
            out[("blob", name, d)] = (r.status, sha256(r.body))
        r = c.request("GET", f"/v2/{name}/tags/list")
        out[("tags", name)] = (r.status, r.body)
    r = c.request("GET", "/v2/_catalog")
    out[("catalog",)] = (r.status, r.body)
    return out


def expected_http_state(known):
    out = {}
    for name, tags, body, dg, blobs in known.images:
        for ref in tags + [dg]:
            out[("manifest", name, ref)] = (200, body)
        for d, b in blobs.items():
            out[("blob", name, d)] = (200, sha256(b))
    return out


class Tree:
    """Files (with content hashes) and directories under a root; `_uploads` apart.
    ringport's own bookkeeping beside the tree (`.ringport.lock`, the index
    snapshot and its journal, saved in the background) is not stored data."""

    def __init__(self, root):
        self.files, self.dirs, self.uploads = {}, set(), set()
        self.sessions = set()  # <repo>/_uploads/<id> directories
        for dp, dns, fns in os.walk(root):
            rel = os.path.relpath(dp, root)
            in_uploads = "_uploads" in rel.split(os.sep)
            for dn in dns:
                p = os.path.normpath(os.path.join(rel, dn))
                if in_uploads:
                    self.uploads.add(p + "/")
                    if os.path.basename(dp) == "_uploads":
                        self.sessions.add(p)
                elif dn != "_uploads":
                    self.dirs.add(p)
            for fn in fns:
                p = os.path.normpath(os.path.join(rel, fn))
                if rel == "." and fn.startswith(".ringport."):
                    continue
                if in_uploads:
                    self.uploads.add(p)
                    continue
                full = os.path.join(dp, fn)
                if os.path.islink(full):
                    self.files[p] = "symlink:" + os.readlink(full)
                else:
                    with open(full, "rb") as f:
                        self.files[p] = hashlib.sha256(f.read()).hexdigest()


def find_escapes(sandbox):
    """Paths named after ESCAPE in the sandbox, /tmp or / (a name escaped the root)."""
    hits = []
    for dp, dns, fns in os.walk(sandbox):
        hits += [os.path.join(dp, n) for n in dns + fns if ESCAPE in n]
    for top in (tempfile.gettempdir(), "/"):
        hits += [os.path.join(top, n) for n in os.listdir(top) if n.startswith(ESCAPE)]
    return hits


class Box:
    """A registry serving <sandbox>/root, so anything written beside the root shows."""

    def __init__(self, env=None):
        self.env = dict(env or {})
        self.sandbox = tempfile.mkdtemp(prefix="ringtest-robust-")
        self.root = os.path.join(self.sandbox, "root")
        os.mkdir(self.root)
        self.server = None
        self.known = None
        self.base_http = None
        self.base_tree = None

    def _new_server(self):
        if IS_RINGPORT:
            return Ringport(root=self.root, env=self.env)
        return Distribution(root=self.root)

    def start(self):
        self.server = self._new_server()
        self.server.start()
        if IS_RINGPORT:
            self.server.wait_ready()
        return self

    @property
    def host(self):
        return self.server.host

    @property
    def client(self):
        return Client(self.server.host)

    def alive(self):
        return self.server.proc is not None and self.server.proc.poll() is None

    def kill(self):
        """SIGKILL and reap."""
        if self.alive():
            self.server.proc.send_signal(signal.SIGKILL)
            self.server.proc.wait(timeout=10)

    def sigterm(self):
        self.server.proc.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout_s):
        return self.server.proc.wait(timeout=timeout_s)

    def restart(self):
        """A new process on the same root (after kill/stop)."""
        assert not self.alive()
        self.server.cleanup()
        return self.start()

    def push_baseline(self):
        self.known = push_known(self.client)
        self.rebase()
        assert self.base_http == {**self.base_http, **expected_http_state(self.known)}
        tags = json.loads(self.base_http[("tags", NAME)][1])
        assert tags == {"name": NAME, "tags": ["v1", "v2"]}, tags
        cat = json.loads(self.base_http[("catalog",)][1])
        assert cat == {"repositories": [NAME, OTHER]}, cat
        return self

    def rebase(self):
        """Take the current state as the one later checks compare against."""
        self.base_http = http_state(self.client, self.known)
        self.base_tree = Tree(self.root)

    def uploads(self):
        return Tree(self.root).uploads

    def upload_data(self):
        """What is under `_uploads/`: everything for ringport; for Distribution 2.8.2
        the `data` files only (its DELETE leaves `hashstates/` behind)."""
        up = self.uploads()
        if IS_RINGPORT:
            return up
        return {u for u in up if u.endswith("/data")}

    def check(self, uploads="none", wait_s=3.0):
        """(c) still serving, then (b) nothing stored changed.

        uploads: "none" = no upload session data may remain (polled up to wait_s,
        a server may remove upload directories in the background); "any" = the
        test judges `_uploads/` itself.
        """
        assert self.alive(), "the server process died"
        assert_serving(self.host)
        assert http_state(self.client, self.known) == self.base_http
        tree = Tree(self.root)
        new_files = set(tree.files) - set(self.base_tree.files)
        assert not new_files, f"stray files appeared: {sorted(new_files)[:20]}"
        assert tree.files == self.base_tree.files, "stored files changed"
        assert tree.dirs == self.base_tree.dirs, \
            f"directories changed: +{sorted(tree.dirs - self.base_tree.dirs)[:20]} " \
            f"-{sorted(self.base_tree.dirs - tree.dirs)[:20]}"
        assert sorted(os.listdir(self.sandbox)) == ["root"], os.listdir(self.sandbox)
        assert not find_escapes(self.sandbox), find_escapes(self.sandbox)
        if uploads == "none":
            left = wait_until(lambda: not self.upload_data(), wait_s)
            assert left, f"upload data left behind: {sorted(self.upload_data())[:20]}"

    def pristine(self):
        """True when the registry is alive and nothing stored changed (no raising)."""
        try:
            self.check(uploads="none", wait_s=1.0)
            return True
        except Exception:
            return False

    def cleanup(self):
        if self.server is not None:
            self.kill()
            self.server.cleanup()
        shutil.rmtree(self.sandbox, ignore_errors=True)


@pytest.fixture
def make_box():
    """make_box(env=None) → a started Box with the known image pushed."""
    boxes = []

    def make(env=None):
        if env and not IS_RINGPORT:
            pytest.skip("needs a ringport setting")
        b = Box(env)
        boxes.append(b)
        return b.start().push_baseline()

    yield make
    for b in boxes:
        b.cleanup()


@pytest.fixture(scope="module")
def shared_box():
    """One registry for the read-only cases (each case checks it left no trace),
    held in a list so a case that spoiled it can have it replaced."""
    holder = [Box().start().push_baseline()]
    yield holder
    holder[0].cleanup()


@pytest.fixture
def box(request):
    """The shared registry for ringport; replaced after a case that killed or changed
    it, so one failure does not cascade. Under Distribution 2.8.2 a fresh one per
    test, since 2.8.2 stores some of the bad input."""
    if not IS_RINGPORT:
        yield request.getfixturevalue("make_box")()
        return
    holder = request.getfixturevalue("shared_box")
    yield holder[0]
    if not holder[0].pristine():
        holder[0].cleanup()
        holder[0] = Box().start().push_baseline()


# ---------------------------------------------------------------------------
# Malformed HTTP
# ---------------------------------------------------------------------------

GARBAGE = {
    "tls_client_hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)) * 4,
    "binary": b"\xff\xfe\x00\x01" + rand_bytes(4096, 3) + b"\r\n\r\n",
    "nul_then_crlf": b"\x00\r\n\r\n",
    "ssh_banner": b"SSH-2.0-OpenSSH_9.2p1\r\n\r\n",
}


@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_garbage_bytes_get_400_and_the_connection_is_closed(box, kind):
    shot = one_shot(box.host, GARBAGE[kind])
    expect_rejected_and_closed(shot, (400,))
    box.check()


BAD_REQUEST_LINES = {
    "no_version": b"GET /v2/\r\n\r\n",
    "no_target": b"GET HTTP/1.1\r\nHost: x\r\n\r\n",
    "double_space": b"GET  /v2/ HTTP/1.1\r\nHost: x\r\n\r\n",
    "lowercase_protocol": b"GET /v2/ http/1.1\r\nHost: x\r\n\r\n",
    "target_without_slash": b"GET v2 HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad_method_char": b"G@T /v2/ HTTP/1.1\r\nHost: x\r\n\r\n",
    "space_in_target": b"GET /v2/ x HTTP/1.1\r\nHost: x\r\n\r\n",
    "version_garbage": b"GET /v2/ HTTP/1.x\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("kind", sorted(BAD_REQUEST_LINES))
def test_a_malformed_request_line_gets_400_and_the_connection_is_closed(box, kind):
    shot = one_shot(box.host, BAD_REQUEST_LINES[kind])
    # A parser may file a garbled version under "unsupported version".
    expect_rejected_and_closed(shot, (400, 505) if kind == "version_garbage" else (400,))
    box.check()


@pytest.mark.parametrize("line", [b"GET /v2/ HTTP/9.9", b"GET /v2/ HTTP/2.0",
                                  b"GET /v2/ HTTP/0.9"])
def test_an_unsupported_http_version_gets_505_or_400_and_a_close(box, line):
    shot = one_shot(box.host, line + b"\r\nHost: x\r\n\r\n")
    expect_rejected_and_closed(shot, (400, 505))
    box.check()


BAD_HEADERS = {
    "no_colon": b"Foo bar\r\n",
    "space_in_name": b"Fo o: bar\r\n",
    "space_before_colon": b"Foo : bar\r\n",
    "empty_name": b": bar\r\n",
    "non_token_name": b"Fo(o): bar\r\n",
    "non_ascii_name": b"F\xc3\xa9o: bar\r\n",
    "ctl_in_value": b"Foo: a\x01b\r\n",
    "del_in_value": b"Foo: a\x7fb\r\n",
    "bare_cr_in_line": b"Foo: a\rX-Injected: b\r\n",
}


@pytest.mark.parametrize("kind", sorted(BAD_HEADERS))
def test_invalid_header_syntax_gets_400_and_a_close(box, kind):
    """DEVIATES: Go (Distribution 2.8.2) ignores a header with an empty name."""
    data = b"GET /v2/ HTTP/1.1\r\nHost: x\r\n" + BAD_HEADERS[kind] + b"\r\n"
    shot = one_shot(box.host, data)
    expect_rejected_and_closed(shot, (400,), lenient=DEVIATES and kind == "empty_name")
    box.check()


def test_whitespace_before_the_first_header_gets_400(box):
    shot = one_shot(box.host, b"GET /v2/ HTTP/1.1\r\n Host: x\r\n\r\n")
    expect_rejected_and_closed(shot, (400,))
    box.check()


NUL_PLACES = {
    "method": b"G\x00T /v2/ HTTP/1.1\r\nHost: x\r\n\r\n",
    "target": b"GET /v2/\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
    "target_in_name": b"GET /v2/lib/a\x00pp/manifests/v1 HTTP/1.1\r\nHost: x\r\n\r\n",
    "version": b"GET /v2/ HTTP/1.\x001\r\nHost: x\r\n\r\n",
    "header_name": b"GET /v2/ HTTP/1.1\r\nHost: x\r\nF\x00o: a\r\n\r\n",
    "header_value": b"GET /v2/ HTTP/1.1\r\nHost: x\r\nFoo: a\x00b\r\n\r\n",
}


@pytest.mark.parametrize("where", sorted(NUL_PLACES))
def test_a_nul_byte_anywhere_in_the_head_gets_400_and_a_close(box, where):
    shot = one_shot(box.host, NUL_PLACES[where])
    expect_rejected_and_closed(shot, (400, 505) if where == "version" else (400,))
    box.check()


LF_MIXUPS = {
    "all_bare_lf": b"GET /v2/ HTTP/1.1\nHost: x\n\n",
    "bare_lf_after_request_line": b"GET /v2/ HTTP/1.1\nHost: x\r\n\r\n",
    "bare_lf_between_headers": b"GET /v2/ HTTP/1.1\r\nHost: x\nAccept: */*\r\n\r\n",
    "bare_lf_final": b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\n",
    "obs_fold": b"GET /v2/ HTTP/1.1\r\nHost: x\r\nFoo: a\r\n  b\r\n\r\n",
}


@pytest.mark.parametrize("kind", sorted(LF_MIXUPS))
def test_bare_lf_line_ends_are_served_or_rejected_but_never_desynchronise(box, kind):
    """RFC 9112 lets a server accept a bare LF (and unfold obs-fold) or reject
    with 400. Either way the next request on the connection must be answered
    as itself: a well-formed GET for the tags list follows in the same write."""
    follow = build_request("GET", f"/v2/{NAME}/tags/list")
    with RawConn(box.host) as c:
        c.send(LF_MIXUPS[kind] + follow)
        try:
            r = c.read_response()
        except Closed as e:
            pytest.fail(f"closed without a response: {e.partial!r}")
        assert r.status in (200, 400), r
        if r.status == 400:
            assert c.wait_closed(3.0).closed, "400 for a framing error must close"
        else:
            assert r.json() == {}, r
            r2 = c.read_response()
            assert r2.status == 200 and r2.json()["tags"] == ["v1", "v2"], r2
    box.check()


def test_a_head_split_into_one_byte_writes_is_served(box):
    data = build_request("GET", f"/v2/{NAME}/manifests/v1", {"Accept": OCI_MANIFEST})
    with RawConn(box.host) as c:
        for i in range(len(data)):
            c.send_all(data[i:i + 1])
            time.sleep(0.001)
        r = c.read_response()
    assert r.status == 200 and r.body == box.known.images[0][2], r
    box.check()


def test_a_head_larger_than_header_bytes_max_gets_431_and_a_close(box):
    pad = b"a" * (HEADER_BYTES_MAX + 1000)
    shot = one_shot(box.host, b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: " + pad + b"\r\n\r\n",
                    timeout_s=10.0)
    expect_rejected_and_closed(shot, (431,))
    box.check()


def test_a_head_just_under_header_bytes_max_is_served(box):
    pad = b"a" * (60000 - 100)
    r = raw_request(box.host, "GET", "/v2/", {"X-Big": pad.decode()})
    assert r.status == 200, r
    box.check()


def test_many_headers_adding_up_past_header_bytes_max_get_431(box):
    n = HEADER_BYTES_MAX // 20 + 100
    hs = b"".join(b"X-H%07d: vvvvvvv\r\n" % i for i in range(n))
    shot = one_shot(box.host, b"GET /v2/ HTTP/1.1\r\nHost: x\r\n" + hs + b"\r\n", timeout_s=10.0)
    expect_rejected_and_closed(shot, (431,))
    box.check()


def test_a_hundred_small_headers_are_served_and_a_thousand_are_served_or_431(box):
    """The contract limits header bytes, not their number: 100 headers must work;
    1000 (about 17 KiB) may meet a header-count limit, which must then be 431."""
    for n, ok in ((100, (200,)), (1000, (200, 431))):
        hs = b"".join(b"X-H%d: v\r\n" % i for i in range(n))
        shot = one_shot(box.host, b"GET /v2/ HTTP/1.1\r\nHost: x\r\n" + hs + b"\r\n",
                        close_wait_s=0.2)
        assert shot.response is not None and shot.response.status in ok, (n, shot)
    box.check()


@pytest.mark.skipif(not IS_RINGPORT, reason="Go has no URL limit apart from header bytes")
def test_a_url_longer_than_url_bytes_max_gets_414_and_a_close(box):
    for target in (b"/v2/?x=" + b"a" * (URL_BYTES_MAX + 100),
                   b"/v2/" + b"a" * (URL_BYTES_MAX + 100) + b"/manifests/v1"):
        shot = one_shot(box.host, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        expect_rejected_and_closed(shot, (414,))
    # Just under the limit, an unknown query parameter is ignored.
    r = raw_request(box.host, "GET", "/v2/?x=" + "a" * (URL_BYTES_MAX - 200))
    assert r.status == 200, r
    box.check()


BAD_CONTENT_LENGTHS = {
    "two_different": [("Content-Length", "3"), ("Content-Length", "4")],
    "list_of_two": [("Content-Length", "3, 4")],
    "negative": [("Content-Length", "-1")],
    "plus_sign": [("Content-Length", "+4")],
    "hex": [("Content-Length", "0x4")],
    "not_a_number": [("Content-Length", "four")],
    "overflows_64_bits": [("Content-Length", "99999999999999999999999")],
    "empty": [("Content-Length", "")],
}


@pytest.mark.parametrize("kind", sorted(BAD_CONTENT_LENGTHS))
def test_an_invalid_or_conflicting_content_length_gets_400_and_a_close(box, kind):
    d = sha256(b"abcd")
    data = build_request("POST", f"/v2/{NAME}/blobs/uploads/?digest={d}",
                         BAD_CONTENT_LENGTHS[kind] + [("Content-Type", OCTET)]) + b"abcd"
    shot = one_shot(box.host, data, "POST")
    # DEVIATES: Go (Distribution 2.8.2) reads an empty Content-Length as no body.
    expect_rejected_and_closed(shot, (400,), lenient=DEVIATES and kind == "empty")
    blob_absent(box.client, NAME, d)
    box.check()


@pytest.mark.parametrize("te", ["chunked", "gzip, chunked", "chunked, identity"])
def test_content_length_together_with_transfer_encoding_gets_400_and_a_close(box, te):
    """Request smuggling guard (RFC 9112 6.1): ringport rejects instead of picking one.
    DEVIATES: Distribution 2.8.2 accepts CL+TE and uses the chunked framing."""
    if DEVIATES:
        pytest.skip("Distribution 2.8.2 accepts Content-Length with Transfer-Encoding")
    smuggled = build_request("DELETE", f"/v2/{NAME}/manifests/v1")
    body = b"0\r\n\r\n" + smuggled
    data = build_request("POST", f"/v2/{NAME}/blobs/uploads/",
                         [("Content-Length", str(len(body))), ("Transfer-Encoding", te)]) + body
    shot = one_shot(box.host, data, "POST")
    expect_rejected_and_closed(shot, (400,))
    box.check()


BAD_CHUNKS = {
    # Each starts with a valid chunk carrying the next 10 bytes of the upload, so a
    # server that keeps the bytes it got before the error stays consistent.
    "non_hex_size": b"zz\r\nhello\r\n0\r\n\r\n",
    "no_crlf_after_data": b"5\r\nhelloXX0\r\n\r\n",
    "size_overflows": b"fffffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
    "negative_size": b"-5\r\nhello\r\n0\r\n\r\n",
    "size_with_space": b"5 5\r\nhello\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("kind", sorted(BAD_CHUNKS))
def test_invalid_chunked_encoding_gets_400_and_keeps_the_upload_consistent(make_box, kind):
    b = make_box()
    c = b.client
    full = rand_bytes(300, 4)
    loc = c.start_upload(NAME)
    # A valid chunked PATCH first: chunked bodies (docker push sends them) work.
    with RawConn(b.host) as rc:
        r = rc.request("PATCH", loc, [("Content-Type", OCTET), ("Transfer-Encoding", "chunked")],
                       chunked(full[:100], [7, 50]))
    assert r.status == 202, r
    loc = path_of(r.header("Location"))
    body = b"a\r\n" + full[100:110] + b"\r\n" + BAD_CHUNKS[kind]
    data = build_request("PATCH", loc, [("Content-Type", OCTET),
                                        ("Transfer-Encoding", "chunked")]) + body
    shot = one_shot(b.host, data, "PATCH")
    # DEVIATES: Distribution 2.8.2 answers 500 UNKNOWN (and closes).
    expect_rejected_and_closed(shot, (400,), lenient=DEVIATES)
    b.check(uploads="any")
    finish_or_unknown(c, loc, full, min_off=100, max_off=110)


def test_an_http_1_0_request_is_served_and_then_the_connection_is_closed(box):
    small = sha256(b"small layer\n")
    for path, want in (("/v2/", b"{}"), (f"/v2/{NAME}/blobs/{small}", b"small layer\n")):
        shot = one_shot(box.host, f"GET {path} HTTP/1.0\r\n\r\n".encode())
        assert shot.response is not None and shot.response.status == 200, shot
        assert shot.response.body == want
        assert shot.close.closed, "HTTP/1.0 without keep-alive must be closed after"
    box.check()


def test_pipelined_requests_in_one_write_are_answered_in_order(box):
    name, tags, body, dg, blobs = box.known.images[0]
    small, big = sha256(b"small layer\n"), sha256(rand_bytes(MIB, 2))
    reqs = [
        ("GET", "/v2/", {}),
        ("HEAD", f"/v2/{NAME}/manifests/v1", {"Accept": OCI_MANIFEST}),
        ("GET", f"/v2/{NAME}/blobs/{small}", {}),
        ("GET", f"/v2/{NAME}/manifests/nope", {"Accept": OCI_MANIFEST}),
        ("GET", f"/v2/{NAME}/tags/list", {}),
        ("GET", f"/v2/{NAME}/blobs/{big}", {}),
        ("HEAD", f"/v2/{NAME}/blobs/{small}", {}),
        ("GET", f"/v2/{NAME}/manifests/{dg}", {"Accept": OCI_MANIFEST}),
        ("GET", "/v2/", {"Connection": "close"}),
    ]
    data = b"".join(build_request(m, p, h) for m, p, h in reqs)
    with RawConn(box.host, 10.0) as c:
        c.send_all(data)
        rs = [c.read_response(m, 10.0) for m, _, _ in reqs]
        end = c.wait_closed(3.0)
    assert [r.status for r in rs] == [200, 200, 200, 404, 200, 200, 200, 200, 200], rs
    assert rs[0].json() == {}
    assert rs[1].header("Docker-Content-Digest") == dg and rs[1].body == b""
    assert rs[1].header("Content-Length") == str(len(body))
    assert rs[2].body == b"small layer\n"
    assert rs[3].error_codes()[:1] == ["MANIFEST_UNKNOWN"]
    assert rs[4].json() == {"name": NAME, "tags": ["v1", "v2"]}
    assert sha256(rs[5].body) == big
    assert rs[6].header("Content-Length") == str(len(b"small layer\n")) and rs[6].body == b""
    assert rs[7].body == body
    assert end.closed and end.data == b"", "Connection: close must end the connection"
    box.check()


def test_one_keep_alive_connection_serves_100_requests(box):
    name, tags, body, dg, blobs = box.known.images[0]
    small = sha256(b"small layer\n")
    cycle = [
        ("GET", "/v2/", {}, 200, b"{}"),
        ("GET", f"/v2/{NAME}/manifests/v1", {"Accept": OCI_MANIFEST}, 200, body),
        ("HEAD", f"/v2/{NAME}/blobs/{small}", {}, 200, b""),
        ("GET", f"/v2/{NAME}/blobs/{small}", {}, 200, b"small layer\n"),
        ("GET", f"/v2/{NAME}/manifests/absent", {"Accept": OCI_MANIFEST}, 404, None),
    ]
    with RawConn(box.host) as c:
        port = c.local_port
        for i in range(100):
            m, p, h, st, want = cycle[i % len(cycle)]
            r = c.request(m, p, h)
            assert r.status == st, (i, r)
            if want is not None:
                assert r.body == want, (i, r)
            assert not r.says_close(), (i, r)
        assert c.local_port == port and c.is_open(0.05)
    box.check()


# ---------------------------------------------------------------------------
# Slow and broken connections
# ---------------------------------------------------------------------------

def test_a_slow_loris_head_is_cut_at_header_timeout_with_408(make_box):
    b = make_box({ENV_HEADER_TIMEOUT: "500", ENV_IDLE_TIMEOUT: "10000",
                  ENV_BODY_TIMEOUT: "10000"})
    head = b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 500
    with RawConn(b.host) as c:
        t0 = time.monotonic()
        c.trickle(head, interval_s=0.05, max_s=4.0)
        end = c.wait_closed(4.0)
        elapsed = time.monotonic() - t0
        assert end.closed, f"slow head not cut after {elapsed:.2f}s"
        assert 0.3 <= elapsed <= 3.0, elapsed
        r = c.read_response() if c.buf else None
    assert r is not None and r.status == 408, \
        f"a cut head that sent bytes must get 408: {end!r}"
    b.check()


def test_a_head_arriving_in_pieces_within_header_timeout_is_served(make_box):
    b = make_box({ENV_HEADER_TIMEOUT: "1500"})
    data = build_request("GET", f"/v2/{NAME}/tags/list")
    with RawConn(b.host) as c:
        step = max(1, len(data) // 6)
        for i in range(0, len(data), step):
            c.send_all(data[i:i + step])
            time.sleep(0.08)
        r = c.read_response()
    assert r.status == 200 and r.json()["tags"] == ["v1", "v2"], r
    b.check()


def test_a_connection_that_never_sends_a_byte_is_closed_silently(make_box):
    b = make_box({ENV_HEADER_TIMEOUT: "500", ENV_IDLE_TIMEOUT: "500"})
    with RawConn(b.host) as c:
        end = c.wait_closed(4.0)
    assert end.closed and end.elapsed_s <= 3.0, end
    assert end.data == b"", f"nothing was received, so nothing must be answered: {end!r}"
    b.check()


def test_an_idle_keep_alive_connection_is_closed_at_idle_timeout(make_box):
    b = make_box({ENV_IDLE_TIMEOUT: "500", ENV_HEADER_TIMEOUT: "10000"})
    with RawConn(b.host) as c:
        assert c.request("GET", "/v2/").status == 200
        time.sleep(0.15)
        assert c.request("GET", "/v2/").status == 200, "keep-alive must survive 150 ms"
        end = c.wait_closed(4.0)
    assert end.closed, "idle connection never closed"
    assert 0.3 <= end.elapsed_s <= 3.0, end
    assert end.data == b"", end
    b.check()


def _stall(host, head, body_part, wait_s=4.0):
    """Send a head and part of its body, then go silent; returns (CloseResult, response)."""
    with RawConn(host) as c:
        c.send_all(head + body_part)
        end = c.wait_closed(wait_s)
        resp = c.read_response() if c.buf else None
    return end, resp


def test_a_stalled_patch_body_is_cut_at_body_timeout_and_the_upload_stays_consistent(make_box):
    b = make_box({ENV_BODY_TIMEOUT: "500", ENV_HEADER_TIMEOUT: "10000",
                  ENV_IDLE_TIMEOUT: "10000"})
    c = b.client
    full = rand_bytes(MIB, 5)
    loc = c.start_upload(NAME)
    head = build_request("PATCH", loc, [("Content-Type", OCTET),
                                        ("Content-Range", f"0-{MIB - 1}"),
                                        ("Content-Length", str(MIB))])
    end, resp = _stall(b.host, head, full[:256 << 10])
    assert end.closed and 0.3 <= end.elapsed_s <= 3.0, end
    assert resp is None or resp.status == 408, resp
    blob_absent(c, NAME, sha256(full))
    b.check(uploads="any")
    finish_or_unknown(c, loc, full, max_off=256 << 10)


def test_a_stalled_monolithic_upload_is_cut_at_body_timeout_and_stores_nothing(make_box):
    b = make_box({ENV_BODY_TIMEOUT: "500", ENV_HEADER_TIMEOUT: "10000",
                  ENV_IDLE_TIMEOUT: "10000"})
    full = rand_bytes(MIB, 6)
    head = build_request("POST", f"/v2/{NAME}/blobs/uploads/?digest={sha256(full)}",
                         [("Content-Type", OCTET), ("Content-Length", str(MIB))])
    end, resp = _stall(b.host, head, full[:256 << 10])
    assert end.closed and 0.3 <= end.elapsed_s <= 3.0, end
    assert resp is None or resp.status == 408, resp
    blob_absent(b.client, NAME, sha256(full))
    b.check(uploads="none")


@pytest.mark.parametrize("how", ["close", "reset"])
def test_a_client_vanishing_mid_patch_leaves_the_upload_resumable_or_unknown(make_box, how):
    b = make_box()
    c = b.client
    full = rand_bytes(2 * MIB, 7)
    loc = c.start_upload(NAME)
    r = c.request("PATCH", loc, body=full[:MIB // 2],
                  headers={"Content-Type": OCTET, "Content-Range": f"0-{MIB // 2 - 1}"})
    assert r.status == 202, r
    loc = path_of(r.header("Location"))
    rest = len(full) - MIB // 2
    head = build_request("PATCH", loc, [("Content-Type", OCTET),
                                        ("Content-Range", f"{MIB // 2}-{len(full) - 1}"),
                                        ("Content-Length", str(rest))])
    rc = RawConn(b.host)
    rc.send_all(head + full[MIB // 2:MIB])
    time.sleep(0.1)
    if how == "reset":
        rc.abort()
    else:
        rc.close()
    blob_absent(c, NAME, sha256(full))
    b.check(uploads="any")
    finish_or_unknown(c, loc, full, min_off=MIB // 2, max_off=MIB)


def test_a_client_vanishing_mid_download_does_not_hurt_the_server(make_box):
    b = make_box()
    c = b.client
    big = rand_bytes(16 * MIB, 8)
    d = sha256(big)
    assert monolithic(c, NAME, big, d).status == 201
    b.rebase()
    for i in range(12):
        rc = RawConn(b.host)
        hs = {"Range": "bytes=1000000-"} if i % 3 == 2 else {}
        rc.send_all(build_request("GET", f"/v2/{NAME}/blobs/{d}", hs))
        got = 0
        deadline = time.monotonic() + 5.0
        while got < 64 << 10 and time.monotonic() < deadline:
            chunk = rc.sock.recv(64 << 10)
            if not chunk:
                break
            got += len(chunk)
        assert got > 0, "no bytes of the download arrived"
        if i % 2:
            rc.abort()  # RST
        else:
            rc.close()  # FIN
    r = c.get_blob(NAME, d)
    assert r.status == 200 and r.body == big
    b.check()


def test_five_hundred_abandoned_connections_do_not_stop_the_server(make_box):
    b = make_box()
    big = sha256(rand_bytes(MIB, 2))
    d = sha256(b"never finished")
    partial = [
        b"",                                                       # silent
        b"GET /v2/ HTTP/1.1\r\nHost: x\r\n",                         # half a head
        build_request("GET", f"/v2/{NAME}/blobs/{big}"),             # response never read
        build_request("POST", f"/v2/{NAME}/blobs/uploads/?digest={d}",
                      [("Content-Type", OCTET), ("Content-Length", "100000")]) + b"x" * 100,
    ]
    conns = []
    try:
        for i in range(500):
            rc = RawConn(b.host)
            conns.append(rc)
            if partial[i % 4]:
                rc.send(partial[i % 4], timeout_s=1.0)
        assert_serving(b.host)  # while all 500 are open
    finally:
        for i, rc in enumerate(conns):
            if i % 2:
                rc.abort()  # RST
            else:
                rc.close()  # FIN
    blob_absent(b.client, NAME, d)
    # Distribution 2.8.2 opens a session for a POST before reading its body.
    b.check(uploads="none" if IS_RINGPORT else "any", wait_s=5.0)


def test_connections_beyond_the_per_shard_maximum_are_closed_and_service_resumes(make_box):
    b = make_box({ENV_SHARDS: "1", ENV_CONNS_MAX: "8"})
    held = []
    try:
        for _ in range(8):
            # The baseline's connections may still be closing on the server: retry.
            def one_more():
                try:
                    rc = RawConn(b.host, 2.0)
                    if rc.request("GET", "/v2/", timeout_s=2.0).status == 200:
                        return rc
                    rc.close()
                except (OSError, Closed):
                    pass
                return None
            rc = wait_until(one_more, 2.0, 0.1)
            assert rc is not None, "could not open the connections the limit allows"
            held.append(rc)
        for _ in range(3):
            try:
                extra = RawConn(b.host, 3.0)
            except ConnectionRefusedError:
                continue  # refused outright: clean too
            with extra:
                extra.send(build_request("GET", "/v2/"), timeout_s=1.0)
                end = extra.wait_closed(3.0)
            assert end.closed, "a connection over the limit was left hanging"
            if end.data:
                r = extra.read_response() if extra.buf else None
                assert r is not None and r.status == 503, f"over the limit: {end!r}"
        assert held[0].request("GET", "/v2/").status == 200, "held connections must still work"
    finally:
        for rc in held:
            rc.close()

    def served():
        try:
            with RawConn(b.host, 2.0) as rc:
                return rc.request("GET", "/v2/", timeout_s=2.0).status == 200
        except (OSError, Closed):
            return False
    assert wait_until(served, 3.0, 0.1), "service did not resume after connections went"
    b.check()


# ---------------------------------------------------------------------------
# Bodies
# ---------------------------------------------------------------------------

def test_a_truncated_monolithic_post_stores_nothing(make_box):
    b = make_box()
    full = rand_bytes(2 * MIB, 9)
    head = build_request("POST", f"/v2/{NAME}/blobs/uploads/?digest={sha256(full)}",
                         [("Content-Type", OCTET), ("Content-Length", str(len(full)))])
    with RawConn(b.host) as rc:
        rc.send_all(head + full[:MIB // 2])
    time.sleep(0.1)
    blob_absent(b.client, NAME, sha256(full))
    # Distribution 2.8.2 opens a session for a POST before reading its body.
    b.check(uploads="none" if IS_RINGPORT else "any")


def test_a_truncated_final_put_with_a_body_commits_nothing(make_box):
    b = make_box()
    c = b.client
    full = rand_bytes(2 * MIB, 10)
    loc = c.start_upload(NAME)
    sep = "&" if "?" in loc else "?"
    head = build_request("PUT", f"{loc}{sep}digest={sha256(full)}",
                         [("Content-Type", OCTET), ("Content-Length", str(len(full)))])
    with RawConn(b.host) as rc:
        rc.send_all(head + full[:MIB])
    time.sleep(0.1)
    blob_absent(c, NAME, sha256(full))
    b.check(uploads="any")
    finish_or_unknown(c, loc, full, max_off=MIB)


def _manifest_of_size(known, size):
    """The known manifest, padded with an annotation to exactly `size` bytes."""
    m = dict(known.manifest, annotations={"pad": ""})
    base = len(json.dumps(m, separators=(",", ":")).encode())
    m["annotations"]["pad"] = "x" * (size - base)
    body = json.dumps(m, separators=(",", ":")).encode()
    assert len(body) == size
    return body


@pytest.mark.parametrize("framing", ["content_length", "chunked"])
def test_a_manifest_over_4_mib_gets_413_size_invalid(box, framing):
    """DEVIATES: Distribution 2.8.2 answers 400 MANIFEST_INVALID."""
    body = _manifest_of_size(box.known, MANIFEST_BYTES_MAX + 1)
    hs = [("Content-Type", OCI_MANIFEST)]
    if framing == "chunked":
        hs.append(("Transfer-Encoding", "chunked"))
        body = chunked(body, [65536])
    data = build_request("PUT", f"/v2/{NAME}/manifests/big", hs, body)
    shot = one_shot(box.host, data, "PUT", timeout_s=10.0, close_wait_s=0.5)
    assert shot.response is not None, shot
    expect_error(shot.response, 413, ("SIZE_INVALID",), lenient=DEVIATES)
    r = box.client.get_manifest(NAME, "big", accept=OCI_MANIFEST)
    expect_error(r, 404, ("MANIFEST_UNKNOWN",))
    box.check()


def test_a_manifest_of_exactly_4_mib_is_accepted(make_box):
    b = make_box()
    body = _manifest_of_size(b.known, MANIFEST_BYTES_MAX)
    r = b.client.put_manifest(NAME, "edge", body, OCI_MANIFEST)
    assert r.status == 201, r
    g = b.client.get_manifest(NAME, "edge", accept=OCI_MANIFEST)
    assert g.status == 200 and g.body == body


BLOB_MAX = MIB


def test_a_blob_over_blob_bytes_max_gets_413_and_leaves_no_upload_data(make_box):
    b = make_box({ENV_BLOB_MAX: str(BLOB_MAX)})
    c = b.client
    big = rand_bytes(BLOB_MAX + 1, 11)
    d = sha256(big)

    # Monolithic POST whose Content-Length says too much: refused up front.
    data = build_request("POST", f"/v2/{NAME}/blobs/uploads/?digest={d}",
                         [("Content-Type", OCTET)], big)
    shot = one_shot(b.host, data, "POST", close_wait_s=0.5)
    assert shot.response is not None, shot
    expect_error(shot.response, 413, ("SIZE_INVALID",))

    # Chunks that cross the limit on the second PATCH.
    loc = c.start_upload(NAME)
    first = BLOB_MAX - 100
    r = c.request("PATCH", loc, body=big[:first],
                  headers={"Content-Type": OCTET, "Content-Range": f"0-{first - 1}"})
    assert r.status == 202, r
    loc = path_of(r.header("Location"))
    rest = big[first:]  # 101 bytes: one more than the limit allows
    r = raw_request(b.host, "PATCH", loc, [("Content-Type", OCTET),
                                           ("Content-Range", f"{first}-{first + len(rest) - 1}")],
                    rest)
    expect_error(r, 413, ("SIZE_INVALID",))
    expect_error(c.request("GET", loc), 404, ("BLOB_UPLOAD_UNKNOWN",))

    # A chunked stream (no Content-Length) that crosses the limit mid-way.
    loc = c.start_upload(NAME)
    data = build_request("PATCH", loc, [("Content-Type", OCTET),
                                        ("Transfer-Encoding", "chunked")],
                         chunked(big + b"y" * 9, [65536]))
    shot = one_shot(b.host, data, "PATCH", close_wait_s=0.5)
    assert shot.response is not None, shot
    expect_error(shot.response, 413, ("SIZE_INVALID",))
    expect_error(c.request("GET", loc), 404, ("BLOB_UPLOAD_UNKNOWN",))

    # A final PUT carrying a body that is too large.
    loc = c.start_upload(NAME)
    sep = "&" if "?" in loc else "?"
    shot = one_shot(b.host, build_request("PUT", f"{loc}{sep}digest={d}",
                                          [("Content-Type", OCTET)], big),
                    "PUT", close_wait_s=0.5)
    assert shot.response is not None, shot
    expect_error(shot.response, 413, ("SIZE_INVALID",))
    expect_error(c.request("GET", loc), 404, ("BLOB_UPLOAD_UNKNOWN",))

    blob_absent(c, NAME, d)
    b.check(uploads="none")
    # Exactly the maximum is fine.
    edge = big[:BLOB_MAX]
    assert monolithic(c, NAME, edge, sha256(edge)).status == 201
    assert c.get_blob(NAME, sha256(edge)).body == edge


def test_a_wrong_digest_gets_400_digest_invalid_and_the_blob_stays_invisible(make_box):
    b = make_box()
    c = b.client
    data = rand_bytes(200_000, 12)
    wrong = sha256(b"something else")
    wrong512 = "sha512:" + hashlib.sha512(b"something else").hexdigest()

    # Monolithic.
    expect_error(monolithic(c, NAME, data, wrong), 400, ("DIGEST_INVALID",))
    # PATCH then a final PUT with the wrong digest: the session is gone after.
    for claimed in (wrong, wrong512):
        loc = c.start_upload(NAME)
        r = c.request("PATCH", loc, body=data,
                      headers={"Content-Type": OCTET, "Content-Range": f"0-{len(data) - 1}"})
        assert r.status == 202, r
        loc = path_of(r.header("Location"))
        sep = "&" if "?" in loc else "?"
        expect_error(c.request("PUT", f"{loc}{sep}digest={claimed}"), 400, ("DIGEST_INVALID",))
        if IS_RINGPORT:  # DEVIATES: 2.8.2 cancels, yet its GET still answers 204
            expect_error(c.request("GET", loc), 404, ("BLOB_UPLOAD_UNKNOWN",))
        else:
            c.request("DELETE", loc)
    # Final PUT carrying the body.
    loc = c.start_upload(NAME)
    sep = "&" if "?" in loc else "?"
    r = c.request("PUT", f"{loc}{sep}digest={wrong}", body=data, headers={"Content-Type": OCTET})
    expect_error(r, 400, ("DIGEST_INVALID",))

    for d in (sha256(data), wrong, wrong512):
        blob_absent(c, NAME, d)
    # DEVIATES: Distribution 2.8.2 keeps the session's data after a mismatch.
    b.check(uploads="none" if IS_RINGPORT else "any")


def test_content_range_gaps_overlaps_and_repeats_get_416_and_the_upload_stays_intact(make_box):
    """DEVIATES: Distribution 2.8.2 accepts a gap and then loses track of the session."""
    b = make_box()
    c = b.client
    full = rand_bytes(300, 13)
    loc = c.start_upload(NAME)
    r = c.request("PATCH", loc, body=full[:100],
                  headers={"Content-Type": OCTET, "Content-Range": "0-99"})
    assert r.status == 202 and upload_range_end(r) == 99, r
    loc = path_of(r.header("Location"))
    for rng, part in (("200-299", full[200:300]),    # gap
                      ("50-149", full[50:150]),      # overlap
                      ("0-99", full[:100]),          # repeat
                      ("99-198", full[99:199]),      # overlap by one
                      ("101-200", full[101:201]),    # gap by one
                      ("150-100", full[100:151])):   # end before start
        r = c.request("PATCH", loc, body=part,
                      headers={"Content-Type": OCTET, "Content-Range": rng})
        if DEVIATES:
            break
        expect_error(r, 416, ("RANGE_INVALID", "BLOB_UPLOAD_INVALID"))
        s = c.request("GET", loc)
        assert s.status == 204 and upload_range_end(s) == 99, (rng, s)
    if DEVIATES:
        return
    b.check(uploads="any")
    r = c.request("PATCH", loc, body=full[100:],
                  headers={"Content-Type": OCTET, "Content-Range": "100-299"})
    assert r.status == 202 and upload_range_end(r) == 299, r
    loc = path_of(r.header("Location"))
    sep = "&" if "?" in loc else "?"
    assert c.request("PUT", f"{loc}{sep}digest={sha256(full)}").status == 201
    assert c.get_blob(NAME, sha256(full)).body == full


def test_a_completed_upload_is_unknown_to_patch_put_get_and_delete(make_box):
    b = make_box()
    c = b.client
    data = rand_bytes(1000, 14)
    loc = c.start_upload(NAME)
    r = c.request("PATCH", loc, body=data,
                  headers={"Content-Type": OCTET, "Content-Range": f"0-{len(data) - 1}"})
    assert r.status == 202, r
    loc = path_of(r.header("Location"))
    sep = "&" if "?" in loc else "?"
    assert c.request("PUT", f"{loc}{sep}digest={sha256(data)}").status == 201
    b.rebase()
    more = b"more bytes"
    r = c.request("PATCH", loc, body=more,
                  headers={"Content-Type": OCTET, "Content-Range": f"{len(data)}-{len(data) + 9}"})
    expect_error(r, 404, ("BLOB_UPLOAD_UNKNOWN",))
    r = c.request("PATCH", loc, body=more, headers={"Content-Type": OCTET})
    expect_error(r, 404, ("BLOB_UPLOAD_UNKNOWN",))
    expect_error(c.request("PUT", f"{loc}{sep}digest={sha256(data)}"), 404,
                 ("BLOB_UPLOAD_UNKNOWN",))
    expect_error(c.request("GET", loc), 404, ("BLOB_UPLOAD_UNKNOWN",))
    expect_error(c.request("DELETE", loc), 404, ("BLOB_UPLOAD_UNKNOWN",))
    assert c.get_blob(NAME, sha256(data)).body == data
    b.check(uploads="none")


# ---------------------------------------------------------------------------
# Manifest JSON
# ---------------------------------------------------------------------------

def _m(known, **changes):
    """The known manifest with top-level changes (a value of None deletes the key)."""
    m = dict(known.manifest)
    for k, v in changes.items():
        if v is None:
            m.pop(k, None)
        else:
            m[k] = v
    return json.dumps(m).encode()


def _layer(known, **changes):
    return [dict(known.manifest["layers"][0], **changes)] + known.manifest["layers"][1:]


def _deep(known, opener, leaf, closer, depth):
    """The known manifest plus an unknown key holding `depth` nested values."""
    return json.dumps(known.manifest).encode()[:-1] + b',"x":' + opener * depth + leaf + \
        closer * depth + b"}"


BAD_MANIFESTS = {
    # name: (builder(known) -> body, accepted codes, DEVIATES in 2.8.2)
    "empty": (lambda k: b"", ("MANIFEST_INVALID",), False),
    "truncated": (lambda k: _m(k)[:-10], ("MANIFEST_INVALID",), False),
    "trailing_garbage": (lambda k: _m(k) + b"xyz", ("MANIFEST_INVALID",), False),
    "trailing_second_object": (lambda k: _m(k) + b"{}", ("MANIFEST_INVALID",), False),
    "array": (lambda k: b"[]", ("MANIFEST_INVALID",), False),
    "string": (lambda k: b'"manifest"', ("MANIFEST_INVALID",), False),
    "number": (lambda k: b"42", ("MANIFEST_INVALID",), False),
    "null": (lambda k: b"null", ("MANIFEST_INVALID",), True),
    "schema_version_1": (lambda k: _m(k, schemaVersion=1), ("MANIFEST_INVALID",), True),
    "schema_version_3": (lambda k: _m(k, schemaVersion=3), ("MANIFEST_INVALID",), True),
    "schema_version_string": (lambda k: _m(k, schemaVersion="2"), ("MANIFEST_INVALID",), False),
    "media_type_mismatch": (lambda k: _m(k, mediaType="application/vnd.oci.image.index.v1+json"),
                            ("MANIFEST_INVALID",), False),
    "missing_config": (lambda k: _m(k, config=None), ("MANIFEST_INVALID",), True),
    "config_not_object": (lambda k: _m(k, config=k.manifest["config"]["digest"]),
                          ("MANIFEST_INVALID",), False),
    "layers_not_array": (lambda k: _m(k, layers={}), ("MANIFEST_INVALID",), False),
    "layer_not_object": (lambda k: _m(k, layers=[1]), ("MANIFEST_INVALID",), False),
    "layer_digest_not_hex": (lambda k: _m(k, layers=_layer(k, digest="sha256:zz")),
                             ("MANIFEST_INVALID", "DIGEST_INVALID"), True),
    "layer_digest_63_hex": (lambda k: _m(k, layers=_layer(k, digest="sha256:" + "a" * 63)),
                            ("MANIFEST_INVALID", "DIGEST_INVALID"), True),
    "layer_digest_uppercase": (lambda k: _m(k, layers=_layer(
        k, digest=k.manifest["layers"][0]["digest"].upper().replace("SHA256", "sha256"))),
        ("MANIFEST_INVALID", "DIGEST_INVALID"), True),
    "layer_digest_traversal": (lambda k: _m(k, layers=_layer(
        k, digest="sha256:../../../../" + ESCAPE)), ("MANIFEST_INVALID", "DIGEST_INVALID"), True),
    "config_digest_unknown_algorithm": (lambda k: _m(k, config=dict(
        k.manifest["config"], digest="md5:" + "a" * 32)),
        ("MANIFEST_INVALID", "DIGEST_INVALID"), True),
    "layer_size_negative": (lambda k: _m(k, layers=_layer(k, size=-1)),
                            ("MANIFEST_INVALID",), True),
    "layer_size_string": (lambda k: _m(k, layers=_layer(k, size="12")),
                          ("MANIFEST_INVALID",), False),
    "layer_size_overflows": (lambda k: _m(k).replace(
        b'"size": %d' % k.manifest["layers"][0]["size"], b'"size": 99999999999999999999999', 1),
        ("MANIFEST_INVALID",), False),
    "nan": (lambda k: _m(k).replace(
        b'"size": %d' % k.manifest["layers"][0]["size"], b'"size": NaN', 1),
        ("MANIFEST_INVALID",), False),
    "raw_control_char_in_string": (lambda k: _m(k, annotations={"a": "x"}).replace(
        b'"x"', b'"\x01"'), ("MANIFEST_INVALID",), False),
    "invalid_utf8": (lambda k: _m(k, annotations={"a": "x"}).replace(b'"x"', b'"\xff\xfe"'),
                     ("MANIFEST_INVALID",), True),
    "overlong_utf8": (lambda k: _m(k, annotations={"a": "x"}).replace(b'"x"', b'"\xc0\xaf"'),
                      ("MANIFEST_INVALID",), True),
    "duplicate_config": (lambda k: _m(k)[:-1] + b', "config": ' +
                         json.dumps(dict(k.manifest["config"], digest=sha256(b"x"))).encode() +
                         b"}", ("MANIFEST_INVALID",), True),
    "duplicate_layers": (lambda k: _m(k)[:-1] + b', "layers": []}', ("MANIFEST_INVALID",), True),
    "nested_arrays_100k_deep": (lambda k: _deep(k, b"[", b"", b"]", 100_000),
                                ("MANIFEST_INVALID",), False),
    "nested_objects_100k_deep": (lambda k: _deep(k, b'{"a":', b"1", b"}", 100_000),
                                 ("MANIFEST_INVALID",), False),
}


@pytest.mark.parametrize("kind", sorted(BAD_MANIFESTS))
def test_a_malformed_manifest_gets_400_manifest_invalid_and_stores_nothing(box, kind):
    build, codes, deviates = BAD_MANIFESTS[kind]
    body = build(box.known)
    r = box.client.put_manifest(NAME, "bad", body, OCI_MANIFEST)
    if DEVIATES and deviates and r.status == 201:
        pytest.skip(f"Distribution 2.8.2 stores this manifest ({kind})")
    expect_error(r, 400, codes, lenient=DEVIATES and deviates)
    g = box.client.get_manifest(NAME, "bad", accept=OCI_MANIFEST)
    expect_error(g, 404, ("MANIFEST_UNKNOWN",))
    blob_absent(box.client, NAME, sha256(body))
    box.check()


def test_a_manifest_put_by_a_digest_that_does_not_match_its_body_gets_digest_invalid(box):
    body = box.known.images[0][2]
    wrong = sha256(body + b" ")
    r = box.client.put_manifest(NAME, wrong, body, OCI_MANIFEST)
    expect_error(r, 400, ("DIGEST_INVALID",))
    expect_error(box.client.get_manifest(NAME, wrong), 404, ("MANIFEST_UNKNOWN",))
    box.check()


# ---------------------------------------------------------------------------
# Hostile names and references
# ---------------------------------------------------------------------------

HOSTILE_NAMES = {
    "dotdot": f"../{ESCAPE}",
    "dotdot_deep": "../" * 12 + ESCAPE,
    "dotdot_inside": f"lib/../../{ESCAPE}",
    "dotdot_encoded": f"%2e%2e/{ESCAPE}",
    "dotdot_encoded_upper": f"lib/%2E%2E/%2E%2E/{ESCAPE}",
    "dot_component": f"lib/./{ESCAPE}",
    "absolute": f"/tmp/{ESCAPE}",
    "absolute_encoded": f"%2Ftmp%2F{ESCAPE}",
    "empty_component": f"lib//{ESCAPE}",
    "trailing_slash": f"{ESCAPE}/",
    "nul_encoded": f"{ESCAPE}%00x",
    "backslash_encoded": f"lib%5c..%5c{ESCAPE}",
    "uppercase": f"Lib/{ESCAPE}",
    "leading_dash": f"-{ESCAPE}",
    "trailing_dot": f"{ESCAPE}.",
    "triple_underscore": f"lib___{ESCAPE}",
    "tilde": f"~{ESCAPE}",
    "too_long_256": "a" * 248 + "/" + ESCAPE[:7],
    "very_long_4096": "a/" * 2047 + "a",
    "long_component_300": "a" * 300,
}


def _hostile_requests(known, name):
    """Every route that takes a name, with otherwise valid arguments."""
    layer = known.manifest["layers"][1]["digest"]
    dg = known.images[0][3]
    body = known.images[0][2]
    return [
        ("GET", f"/v2/{name}/manifests/v1", {"Accept": OCI_MANIFEST}, b""),
        ("HEAD", f"/v2/{name}/manifests/v1", {}, b""),
        ("PUT", f"/v2/{name}/manifests/v1", {"Content-Type": OCI_MANIFEST}, body),
        ("DELETE", f"/v2/{name}/manifests/{dg}", {}, b""),
        ("GET", f"/v2/{name}/blobs/{layer}", {}, b""),
        ("HEAD", f"/v2/{name}/blobs/{layer}", {}, b""),
        ("DELETE", f"/v2/{name}/blobs/{layer}", {}, b""),
        ("POST", f"/v2/{name}/blobs/uploads/", {"Content-Length": "0"}, b""),
        ("POST", f"/v2/{name}/blobs/uploads/?digest={sha256(b'hostile')}",
         {"Content-Type": OCTET}, b"hostile"),
        ("POST", f"/v2/{name}/blobs/uploads/?mount={layer}&from={NAME}",
         {"Content-Length": "0"}, b""),
        ("GET", f"/v2/{name}/tags/list", {}, b""),
        ("GET", f"/v2/{name}/referrers/{dg}", {}, b""),
    ]


@pytest.mark.parametrize("kind", sorted(HOSTILE_NAMES))
def test_a_hostile_repository_name_gets_400_name_invalid_and_touches_nothing(box, kind):
    """DEVIATES: Distribution 2.8.2 answers 301 (path cleaning), 404 page not found,
    or 500 for names over 255 characters."""
    name = HOSTILE_NAMES[kind]
    if DEVIATES and kind == "uppercase":
        pytest.skip("Distribution 2.8.2 routes /v2/Lib/x/... to a repository 'ib/x'")
    for m, p, h, body in _hostile_requests(box.known, name):
        r = raw_request(box.host, m, p, h, body)
        expect_error(r, 400, () if m == "HEAD" else ("NAME_INVALID",), lenient=DEVIATES)
    box.check()


def test_an_encoded_slash_in_a_name_is_rejected_or_means_a_slash(box):
    """`lib%2Fapp`: either 400 NAME_INVALID, or decoded to `lib/app` (as Go does):
    never a repository directory with a literal `%` or a different repository."""
    r = raw_request(box.host, "GET", "/v2/lib%2Fapp/manifests/v1", {"Accept": OCI_MANIFEST})
    if r.status == 400:
        expect_error(r, 400, ("NAME_INVALID",))
    else:
        assert r.status == 200 and r.body == box.known.images[0][2], r
    box.check()


def test_a_name_of_255_characters_is_accepted(make_box):
    b = make_box()
    name = "/".join(["a" * 63] * 4)
    assert len(name) == 255
    data = b"long name"
    assert monolithic(b.client, name, data, sha256(data)).status == 201
    assert b.client.get_blob(name, sha256(data)).body == data


HOSTILE_TAGS = {
    "dotdot": ("..", False),
    "dot_start": (".hidden", False),
    "dash_start": ("-x", False),
    "too_long_129": ("a" * 129, False),
    "encoded_dotdot": ("%2e%2e", False),
    "encoded_nul": ("a%00b", False),
    "encoded_slash": ("a%2Fb", True),
    "bang": ("tag!", False),
    "plus": ("a+b", False),
    "slash": ("a/b", True),
    "traversal": (f"../../../{ESCAPE}", True),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE_TAGS))
def test_a_hostile_tag_gets_400_tag_invalid_and_creates_no_tag(box, kind):
    """A tag containing '/' may also find no route (404). DEVIATES: Distribution
    2.8.2 answers 301 or 404 page not found."""
    tag, may_404 = HOSTILE_TAGS[kind]
    body = box.known.images[0][2]
    for m, h, b in (("PUT", {"Content-Type": OCI_MANIFEST}, body),
                    ("GET", {"Accept": OCI_MANIFEST}, b""),
                    ("DELETE", {}, b"")):
        r = raw_request(box.host, m, f"/v2/{NAME}/manifests/{tag}", h, b)
        if may_404 and r.status == 404:
            continue
        if m == "PUT":
            expect_error(r, 400, ("TAG_INVALID", "MANIFEST_INVALID"), lenient=DEVIATES)
        else:
            # The OCI conformance suite requires 404 for GET of an invalid tag
            # (".INVALID_MANIFEST_NAME"); ringport answers DELETE the same way.
            expect_error(r, 404, ("MANIFEST_UNKNOWN",), lenient=DEVIATES)
    box.check()


BAD_DIGESTS = {
    "hex_63": ("sha256:" + "a" * 63, False),
    "hex_65": ("sha256:" + "a" * 65, False),
    "uppercase_hex": ("sha256:" + "A" * 64, False),
    "not_hex": ("sha256:" + "g" * 64, False),
    "empty_hex": ("sha256:", False),
    "uppercase_algorithm": ("SHA256:" + "a" * 64, False),
    "unknown_algorithm": ("md5:" + "a" * 32, False),
    "unknown_algorithm_grammatical": ("foo+bar:" + "a" * 64, False),
    "sha512_wrong_length": ("sha512:" + "a" * 64, False),
    "encoded_traversal": (f"sha256:%2e%2e%2f%2e%2e%2f{ESCAPE}", True),
    "encoded_nul": ("sha256:" + "a" * 63 + "%00", False),
    "traversal": (f"sha256:../../../{ESCAPE}", True),
}


@pytest.mark.parametrize("kind", sorted(BAD_DIGESTS))
def test_a_malformed_digest_gets_400_digest_invalid_and_touches_nothing(box, kind):
    """A digest containing '/' may also find no route (404). DEVIATES: Distribution
    2.8.2 answers 500 UNKNOWN for a malformed manifest digest, 301 for traversal."""
    d, may_404 = BAD_DIGESTS[kind]
    c = box.client
    reqs = [("GET", f"/v2/{NAME}/blobs/{d}", {}, b""),
            ("HEAD", f"/v2/{NAME}/blobs/{d}", {}, b""),
            ("DELETE", f"/v2/{NAME}/blobs/{d}", {}, b""),
            ("GET", f"/v2/{NAME}/manifests/{d}", {"Accept": OCI_MANIFEST}, b""),
            ("DELETE", f"/v2/{NAME}/manifests/{d}", {}, b""),
            ("GET", f"/v2/{NAME}/referrers/{d}", {}, b""),
            ("POST", f"/v2/{NAME}/blobs/uploads/?digest={d}", {"Content-Type": OCTET}, b"abc")]
    for m, p, h, body in reqs:
        r = raw_request(box.host, m, p, h, body)
        if may_404 and r.status == 404:
            continue
        if DEVIATES and m == "POST" and r.status == 202:  # 2.8.2 ignores ?digest= on POST
            assert c.request("DELETE", path_of(r.header("Location"))).status == 204
            continue
        expect_error(r, 400, () if m == "HEAD" else ("DIGEST_INVALID",), lenient=DEVIATES)
    # The final PUT of a session: refused, and the session can still be cancelled.
    loc = c.start_upload(NAME)
    sep = "&" if "?" in loc else "?"
    r = raw_request(box.host, "PUT", f"{loc}{sep}digest={d}", {"Content-Type": OCTET}, b"abc")
    if not (may_404 and r.status == 404):
        expect_error(r, 400, ("DIGEST_INVALID",), lenient=DEVIATES)
    assert c.request("DELETE", loc).status in (204, 404)
    box.check()


def test_well_formed_but_absent_digests_get_404_unknown(box):
    c = box.client
    for d in ("sha256:" + "0" * 64, "sha512:" + "0" * 128):
        expect_error(c.get_blob(NAME, d), 404, ("BLOB_UNKNOWN",))
        expect_error(c.request("HEAD", f"/v2/{NAME}/blobs/{d}"), 404)
        expect_error(c.get_manifest(NAME, d), 404, ("MANIFEST_UNKNOWN",))
    # A blob that exists, asked for in a repository that never linked it.
    layer = box.known.manifest["layers"][1]["digest"]
    expect_error(c.get_blob(OTHER, layer), 404, ("BLOB_UNKNOWN",))
    box.check()


HOSTILE_UPLOAD_IDS = {
    # id: an encoded '/' may, once decoded, leave the path without a route (bare 404)
    "dotdot": ("..", False),
    "dotdot_encoded": ("%2e%2e", False),
    "long_300": ("a" * 300, False),
    "nul_encoded": ("x%00y", False),
    "unknown_uuid": ("00000000-0000-0000-0000-000000000000", False),
    "traversal_encoded": (f"..%2f..%2f{ESCAPE}", True),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE_UPLOAD_IDS))
def test_a_hostile_or_unknown_upload_id_gets_404_blob_upload_unknown(box, kind):
    """DEVIATES: Distribution 2.8.2 answers 301 for `..` or 400 for ids it cannot parse."""
    uid, bare_404 = HOSTILE_UPLOAD_IDS[kind]
    base = f"/v2/{NAME}/blobs/uploads/{uid}"
    d = sha256(b"abc")
    for m, p, h, body in (("GET", base, {}, b""),
                          ("PATCH", base, {"Content-Type": OCTET}, b"abc"),
                          ("PUT", f"{base}?digest={d}", {"Content-Type": OCTET}, b"abc"),
                          ("DELETE", base, {}, b"")):
        r = raw_request(box.host, m, p, h, body)
        # A path that names no endpoint: Distribution answers a bare 404,
        # ringport a 404 whose code is NOT_FOUND.
        if bare_404 and r.status == 404 and r.error_codes() in ([], ["NOT_FOUND"]):
            continue
        expect_error(r, 404, ("BLOB_UPLOAD_UNKNOWN",), lenient=DEVIATES)
    blob_absent(box.client, NAME, d)
    box.check()


@pytest.mark.parametrize("src", [f"{NAME}/../{OTHER}", f"../{NAME}", f"{NAME}/", "%2e%2e"])
def test_a_mount_from_a_hostile_repository_never_mounts(box, src):
    """ringport may refuse (400 NAME_INVALID) or ignore the mount and open a plain
    session (202, as Distribution does); it must never answer 201."""
    layer = box.known.manifest["layers"][1]["digest"]
    r = raw_request(box.host, "POST",
                    f"/v2/{OTHER}/blobs/uploads/?mount={layer}&from={src}", {"Content-Length": "0"})
    assert r.status in (202, 400), r
    if r.status == 400:
        expect_error(r, 400, ("NAME_INVALID",))
    else:
        assert box.client.request("DELETE", path_of(r.header("Location"))).status == 204
    blob_absent(box.client, OTHER, layer)
    box.check()


# ---------------------------------------------------------------------------
# Crash safety and graceful shutdown
# ---------------------------------------------------------------------------

def _begin_patch(host, loc, data, start, sent):
    """Open a PATCH for data[start:], send `sent` bytes of it, and keep it open."""
    head = build_request("PATCH", loc, [("Content-Type", OCTET),
                                        ("Content-Range", f"{start}-{len(data) - 1}"),
                                        ("Content-Length", str(len(data) - start))])
    rc = RawConn(host, 10.0)
    rc.send_all(head + data[start:start + sent], timeout_s=10.0)
    return rc


def test_sigkill_mid_upload_keeps_committed_data_and_the_upload_resumable_or_unknown(make_box):
    b = make_box()
    c = b.client
    big = rand_bytes(24 * MIB, 15)
    acked = 4 * MIB
    loc = c.start_upload(NAME)
    r = c.request("PATCH", loc, body=big[:acked],
                  headers={"Content-Type": OCTET, "Content-Range": f"0-{acked - 1}"})
    assert r.status == 202, r
    loc = path_of(r.header("Location"))
    rc = _begin_patch(b.host, loc, big, acked, 8 * MIB)
    # A monolithic upload in flight at the same moment.
    mono = rand_bytes(8 * MIB, 16)
    rm = RawConn(b.host, 10.0)
    rm.send(build_request("POST", f"/v2/{NAME}/blobs/uploads/?digest={sha256(mono)}",
                          [("Content-Type", OCTET), ("Content-Length", str(len(mono)))])
            + mono[:4 * MIB], timeout_s=3.0)
    time.sleep(0.3)
    b.kill()
    rc.close()
    rm.close()
    b.restart()
    c = b.client
    blob_absent(c, NAME, sha256(big))
    blob_absent(c, NAME, sha256(mono))
    b.check(uploads="any")
    finish_or_unknown(c, loc, big, min_off=0, max_off=acked + 8 * MIB)


@pytest.mark.skipif(not IS_RINGPORT, reason="Distribution 2.8.2 dies by SIGTERM (no drain set)")
def test_sigterm_exits_0_and_a_restart_serves_everything(make_box):
    b = make_box()
    t0 = time.monotonic()
    assert b.server.stop() == 0
    assert time.monotonic() - t0 < 5.0, "an idle server must stop promptly"
    b.restart()
    b.check()


def _refused_while_alive(b, timeout_s=2.0):
    """After SIGTERM: does a new connection get ECONNREFUSED while the process drains?"""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and b.alive():
        try:
            s = connect(b.host, 0.5)
        except ConnectionRefusedError:
            return b.alive()
        except OSError:
            pass
        else:
            s.close()
        time.sleep(0.02)
    return False


def test_sigterm_lets_an_in_flight_upload_finish_and_refuses_new_connections(make_box):
    b = make_box({ENV_DRAIN_TIMEOUT: "5000"})
    c = b.client
    data = rand_bytes(2 * MIB, 17)
    loc = c.start_upload(NAME)
    rc = _begin_patch(b.host, loc, data, 0, MIB)
    time.sleep(0.2)
    b.sigterm()
    assert _refused_while_alive(b), "new connections must be refused during the drain"
    rc.send_all(data[MIB:])
    r = rc.read_response("PATCH", 5.0)
    assert r.status == 202 and upload_range_end(r) == len(data) - 1, r
    done = time.monotonic()
    end = rc.wait_closed(3.0)
    assert end.closed, "the connection must be closed once its request finished"
    rc.close()
    assert b.wait_exit(5.0) == 0
    assert time.monotonic() - done < 2.0, "the drain must end when the last request did"
    b.restart()
    c = b.client
    blob_absent(c, NAME, sha256(data))
    b.check(uploads="any")
    finish_or_unknown(c, loc, data, min_off=len(data), max_off=len(data))


def test_sigterm_cuts_a_stalled_upload_at_the_drain_timeout(make_box):
    b = make_box({ENV_DRAIN_TIMEOUT: "800", ENV_BODY_TIMEOUT: "30000"})
    c = b.client
    data = rand_bytes(2 * MIB, 18)
    loc = c.start_upload(NAME)
    rc = _begin_patch(b.host, loc, data, 0, MIB)
    time.sleep(0.2)
    b.sigterm()
    t0 = time.monotonic()
    assert _refused_while_alive(b, 0.7), "new connections must be refused during the drain"
    end = rc.wait_closed(5.0)
    cut = time.monotonic() - t0
    rc.close()
    assert end.closed, "the stalled request was not cut at the drain timeout"
    assert 0.5 <= cut <= 4.0, cut
    if end.data:
        assert not end.data.startswith(b"HTTP/1.1 2"), end
    assert b.wait_exit(5.0) == 0
    b.restart()
    c = b.client
    blob_absent(c, NAME, sha256(data))
    b.check(uploads="any")
    finish_or_unknown(c, loc, data, max_off=MIB)
