# SPDX-License-Identifier: Apache-2.0
"""OCI helpers for the API and conformance tests.

- media types and the spec's error codes;
- content builders (blobs, configs, tar.gz layers, manifests, indexes) that give
  byte-exact documents and their descriptors;
- `request()`: one HTTP exchange on a fresh connection that never raises on a
  short body (Distribution 2.8.2 sends broken 416 responses), with optional
  chunked transfer encoding;
- `Connection`: one keep-alive connection, to prove an upload continues on
  another TCP connection;
- `RawConnection`: a plain socket for what http.client cannot do
  (Expect: 100-continue);
- `start_registry(env)`: a ringport started with RINGPORT_* environment
  variables, or under RINGTEST_TARGET=distribution a Distribution 2.8.2 with the
  same settings written into its config file.

Every loop here is bounded by a count and every wait by a deadline.
"""
import gzip
import hashlib
import http.client
import io
import json
import os
import random
import socket
import subprocess
import tarfile
import time
import urllib.parse
import uuid

from . import harness
from .client import Resp, path_of

TIMEOUT_S = 30
API_VERSION = "registry/2.0"

OCTET = "application/octet-stream"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

EMPTY_JSON = b"{}"
EMPTY_JSON_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

# The spec's error table, plus the codes Distribution documents as legacy
# (TAG_INVALID, MANIFEST_UNVERIFIED) that clients MAY meet.
OCI_ERROR_CODES = frozenset({
    "BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN", "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "MANIFEST_UNVERIFIED",
    "NAME_INVALID", "NAME_UNKNOWN", "SIZE_INVALID", "TAG_INVALID", "UNAUTHORIZED", "DENIED",
    "UNSUPPORTED", "TOOMANYREQUESTS",
})


def target():
    """"ringport" (default) or "distribution" (RINGTEST_TARGET)."""
    return os.environ.get("RINGTEST_TARGET", "ringport")


# --- digests and content ---------------------------------------------------

def digest(data, algorithm="sha256"):
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def dumps(obj, indent=None):
    """JSON bytes; the bytes are the document, so callers keep them."""
    return json.dumps(obj, indent=indent).encode()


def descriptor(media_type, data, algorithm="sha256", **extra):
    d = {"mediaType": media_type, "digest": digest(data, algorithm), "size": len(data)}
    d.update(extra)
    return d


def random_bytes(size, seed):
    """Reproducible pseudo-random bytes (one seed, one blob)."""
    return random.Random(seed).randbytes(size)


def unique_name(prefix="t"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def image_config(author=None, architecture="amd64", os_name="linux", indent=None):
    """An OCI/Docker image config; `author` makes its digest unique."""
    cfg = {
        "architecture": architecture,
        "os": os_name,
        "rootfs": {"type": "layers", "diff_ids": []},
        "author": author if author is not None else uuid.uuid4().hex,
    }
    return dumps(cfg, indent=indent)


def tar_gz_layer(file_name, content):
    """A deterministic gzip'd tarball holding one file."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        info = tarfile.TarInfo(file_name)
        info.size = len(content)
        info.mtime = 0
        info.mode = 0o644
        tf.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


def image_manifest(config, layers, media_type=OCI_MANIFEST, with_media_type=True,
                   subject=None, artifact_type=None, annotations=None, extra=None,
                   indent=None):
    """Bytes of an image manifest. `config`/`layers` are descriptors."""
    m = {"schemaVersion": 2}
    if with_media_type:
        m["mediaType"] = media_type
    if artifact_type is not None:
        m["artifactType"] = artifact_type
    m["config"] = config
    m["layers"] = list(layers)
    if subject is not None:
        m["subject"] = subject
    if annotations is not None:
        m["annotations"] = annotations
    if extra:
        m.update(extra)
    return dumps(m, indent=indent)


def image_index(manifests, media_type=OCI_INDEX, with_media_type=True, subject=None,
                artifact_type=None, annotations=None, indent=None):
    """Bytes of an OCI index or Docker manifest list."""
    m = {"schemaVersion": 2}
    if with_media_type:
        m["mediaType"] = media_type
    if artifact_type is not None:
        m["artifactType"] = artifact_type
    m["manifests"] = list(manifests)
    if subject is not None:
        m["subject"] = subject
    if annotations is not None:
        m["annotations"] = annotations
    return dumps(m, indent=indent)


# --- HTTP --------------------------------------------------------------------

def _split_host(host):
    h, p = host.rsplit(":", 1)
    return h, int(p)


def _read_resp(r, method):
    try:
        data = r.read()
    except http.client.IncompleteRead as e:  # a registry lied about Content-Length
        data = e.partial
    return Resp(r.status, r.getheaders(), b"" if method == "HEAD" else data)


def request(host, method, path, body=None, headers=None, chunks=None, timeout=TIMEOUT_S):
    """One request on a fresh connection. `chunks` (a list of bytes) sends the body
    with Transfer-Encoding: chunked instead of `body`."""
    conn = http.client.HTTPConnection(host, timeout=timeout)
    try:
        if chunks is not None:
            conn.request(method, path, body=iter(list(chunks)), headers=headers or {},
                         encode_chunked=True)
        else:
            conn.request(method, path, body=body, headers=headers or {})
        return _read_resp(conn.getresponse(), method)
    finally:
        conn.close()


class Connection:
    """One keep-alive HTTP/1.1 connection; `local_port` identifies the socket."""

    def __init__(self, host, timeout=TIMEOUT_S):
        self.conn = http.client.HTTPConnection(host, timeout=timeout)
        self.conn.connect()
        self.local_port = self.conn.sock.getsockname()[1]

    def request(self, method, path, body=None, headers=None):
        self.conn.request(method, path, body=body, headers=headers or {})
        r = self.conn.getresponse()
        resp = _read_resp(r, method)
        assert self.conn.sock is not None and self.conn.sock.getsockname()[1] == self.local_port, \
            "the connection was not kept alive"
        return resp

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class RawConnection:
    """A plain TCP socket speaking hand-written HTTP/1.1."""

    HEAD_MAX = 65536

    def __init__(self, host, timeout=TIMEOUT_S):
        self.sock = socket.create_connection(_split_host(host), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def read_head(self, timeout_s=10.0):
        """Reads one response head: (status, [(name, value)]). Bytes after it stay buffered."""
        deadline = time.monotonic() + timeout_s
        while b"\r\n\r\n" not in self.buf:
            left = deadline - time.monotonic()
            assert left > 0, f"no complete response head within {timeout_s}s: {self.buf[:200]!r}"
            assert len(self.buf) < self.HEAD_MAX, "response head too large"
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            assert chunk, f"connection closed before a response head: {self.buf[:200]!r}"
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = []
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers.append((k.strip(), v.strip()))
        return status, headers

    def read_body(self, length, timeout_s=10.0):
        deadline = time.monotonic() + timeout_s
        while len(self.buf) < length:
            left = deadline - time.monotonic()
            assert left > 0, f"body incomplete within {timeout_s}s"
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed inside a body"
            self.buf += chunk
        body, self.buf = self.buf[:length], self.buf[length:]
        return body

    def read_response(self, timeout_s=10.0):
        """A final (non-1xx) response with a Content-Length body, as a Resp."""
        status, headers = self.read_head(timeout_s)
        r = Resp(status, headers, b"")
        n = int(r.header("Content-Length", "0"))
        r.body = self.read_body(n, timeout_s)
        return r

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def with_query(location, **params):
    """Appends query parameters (percent-encoded, as Go clients send them)."""
    loc = path_of(location)
    sep = "&" if "?" in loc else "?"
    return loc + sep + urllib.parse.urlencode(params)


def link_next(resp):
    """The target of a `Link: <url>; rel="next"` header as a request path, or None."""
    link = resp.header("Link")
    if not link:
        return None
    url, _, params = link.partition(";")
    url = url.strip()
    assert url.startswith("<") and url.endswith(">"), link
    assert 'rel="next"' in params.replace(" ", ""), link
    return path_of(url[1:-1])


def error_codes(resp):
    try:
        return [e["code"] for e in json.loads(resp.body)["errors"]]
    except Exception:
        return []


def assert_error(resp, status, code):
    """`resp` is `status` with an OCI JSON error body whose first code is `code`."""
    assert resp.status == status, resp
    ct = resp.header("Content-Type", "")
    assert ct.split(";")[0].strip() == "application/json", resp
    doc = json.loads(resp.body)
    assert isinstance(doc.get("errors"), list) and doc["errors"], resp
    for e in doc["errors"]:
        assert "code" in e and "message" in e, resp
    assert doc["errors"][0]["code"] == code, resp


# --- pushing -------------------------------------------------------------------

def push_blob(host, name, data, algorithm="sha256"):
    """POST then PUT (works on every registry). Returns the digest."""
    d = digest(data, algorithm)
    r = request(host, "POST", f"/v2/{name}/blobs/uploads/")
    assert r.status == 202, r
    r = request(host, "PUT", with_query(r.header("Location"), digest=d), body=data,
                headers={"Content-Type": OCTET})
    assert r.status == 201, r
    return d


def put_manifest(host, name, ref, body, media_type):
    return request(host, "PUT", f"/v2/{name}/manifests/{ref}", body=body,
                   headers={"Content-Type": media_type})


def get_manifest(host, name, ref, accept=None, method="GET", headers=None):
    h = dict(headers or {})
    if accept is not None:
        h["Accept"] = accept
    return request(host, method, f"/v2/{name}/manifests/{ref}", headers=h)


class Image:
    """A pushed image: its blobs, manifest bytes, digest and descriptor."""

    def __init__(self, manifest, media_type, config, layers):
        self.manifest = manifest
        self.media_type = media_type
        self.digest = digest(manifest)
        self.config = config
        self.layers = layers
        self.descriptor = {"mediaType": media_type, "digest": self.digest, "size": len(manifest)}


def push_image(host, name, ref=None, layer_count=1, docker=False, with_media_type=True,
               subject=None, artifact_type=None, annotations=None, config=None,
               config_media_type=None, layer_media_type=None):
    """Pushes config + layers + manifest (by `ref`, or by digest when ref is None)."""
    config = config if config is not None else image_config()
    cfg_mt = config_media_type or (DOCKER_CONFIG if docker else OCI_CONFIG)
    layer_mt = layer_media_type or (DOCKER_LAYER if docker else OCI_LAYER_GZIP)
    push_blob(host, name, config)
    layers = []
    for i in range(layer_count):
        data = tar_gz_layer(f"file{i}.txt", uuid.uuid4().bytes)
        push_blob(host, name, data)
        layers.append(descriptor(layer_mt, data))
    mt = DOCKER_MANIFEST if docker else OCI_MANIFEST
    body = image_manifest(descriptor(cfg_mt, config), layers, media_type=mt,
                          with_media_type=with_media_type, subject=subject,
                          artifact_type=artifact_type, annotations=annotations)
    img = Image(body, mt, config, layers)
    r = put_manifest(host, name, ref or img.digest, body, mt)
    assert r.status == 201, r
    return img


# --- registries with settings --------------------------------------------------

# RINGPORT_* variables the Distribution stand-in understands, as config YAML.
_DISTRIBUTION_SETTINGS = {
    "RINGPORT_STORAGE_DELETE_ENABLED": lambda v: ("delete_enabled", v.lower() in ("1", "true", "yes")),
    "RINGPORT_CATALOG_MAX_ENTRIES": lambda v: ("catalog_max", int(v)),
}


class ConfiguredDistribution(harness.Distribution):
    """Distribution 2.8.2 with delete switch and catalog maximum from RINGPORT_* names."""

    def __init__(self, env=None, root=None):
        super().__init__(root=root)
        self.settings = {"delete_enabled": True, "catalog_max": None}
        for k, v in (env or {}).items():
            assert k in _DISTRIBUTION_SETTINGS, f"no Distribution equivalent for {k}"
            key, val = _DISTRIBUTION_SETTINGS[k](v)
            self.settings[key] = val

    def start(self):
        self.port = harness.free_port()
        cfg = harness.DISTRIBUTION_CONFIG.format(root=self.root, port=self.port)
        if not self.settings["delete_enabled"]:
            cfg = cfg.replace("  delete:\n    enabled: true", "  delete:\n    enabled: false")
        if self.settings["catalog_max"] is not None:
            cfg += f"catalog:\n  maxentries: {self.settings['catalog_max']}\n"
        path = os.path.join(self._cfgdir, "config.yml")
        with open(path, "w") as f:
            f.write(cfg)
        self.proc = subprocess.Popen([self.BIN, "serve", path], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        harness._Drain(self.proc.stdout, self.out).start()
        harness._Drain(self.proc.stderr, self.err).start()
        harness.wait_http(self.url + "/v2/")
        return self


def start_registry(env=None):
    """A started registry of the selected target; call .cleanup() when done."""
    if target() == "distribution":
        return ConfiguredDistribution(env).start()
    return harness.Ringport(env=env).start()
