# SPDX-License-Identifier: Apache-2.0
"""A scripted upstream registry on loopback for the mirror tests.

It serves manifests from a dict, counts every request by (method, kind),
and can demand a Docker bearer token (a 401 challenge pointing at its own
/token endpoint), serve bytes that do not match their digest, or answer junk.
Blob bodies can be throttled, held at a byte until released, or cut by a
connection shut mid-body; a `Range: bytes=N-` request gets a 206 from N.
"""
import base64
import hashlib
import http.server
import json
import socket
import ssl
import threading
import time
import urllib.parse

from ringtest.harness import OpenConnections

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
TOKEN = "good-token"


def digest_of(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


class FakeUpstream:
    def __init__(self, bearer=True, host="127.0.0.1", tls=None, users=None, basic=False,
                 realm=None):
        """`tls`: (certfile, keyfile) to serve https. `users`: {user: password}
        the token endpoint (or, with `basic`, every registry request) demands
        as Basic auth. `realm`: the token endpoint named in challenges
        (default: this server's /token)."""
        self.bearer = bearer
        self.host = host
        self.tls = tls
        self.users = users
        self.basic = basic
        self.realm = realm
        self.auths = []       # (kind, Authorization header or None) of token and Basic checks
        self.manifests = {}   # (name, ref) -> (body, media type, digest header or None)
        self.blobs = {}       # (name, digest) -> bytes served for it (right or wrong)
        self.redirect_blobs_to = None  # another FakeUpstream: blobs answer 307 to its /cdn/
        self.cdn = {}         # digest -> bytes, served at /cdn/<digest> without Authorization
        self.delay_s = 0.0    # each manifest and blob answer waits this long (a slow upstream)
        self.accepts = []     # the Accept header of each manifest request
        self.rate = None      # blob bodies are sent at about this many bytes/s
        self.hold_at = None   # blob bodies pause at this byte until `release` is set
        self.release = threading.Event()
        self.resets = 0       # this many blob bodies are cut (the connection shut) at `reset_at`
        self.reset_at = 0
        self.ranges = []      # the Range header of each blob GET (None when absent)
        self.down = None      # (status, headers): every request is answered so (an outage)
        self.extra_headers = {}  # sent with every manifest answer (ratelimit-remaining)
        self.referrers = {}   # (name, subject digest) -> [descriptor dicts]
        self.referrers_api = True  # False: the referrers endpoint is 404 (an older registry)
        self.denied = set()   # repositories answered as Docker Hub answers a missing one:
                              # 401 insufficient_scope, even with a token
        self.counts = {}      # (method, kind) -> n
        self.lock = threading.Lock()
        self.conns = OpenConnections()  # cut by close()
        owner = self

        class Handler(self.conns.handler()):

            def do_GET(self):
                owner._serve(self, "GET")

            def do_HEAD(self):
                owner._serve(self, "HEAD")

        self.server = http.server.ThreadingHTTPServer((host, 0), Handler)
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.server.daemon_threads = True
        self.server.handle_error = lambda *a: None  # a reset or a client gone is scripted
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def _basic_ok(self, h):
        got = h.headers.get("Authorization")
        ok = got is not None and got.startswith("Basic ") and any(
            got == "Basic " + base64.b64encode(f"{u}:{p}".encode()).decode()
            for u, p in (self.users or {}).items())
        return got, ok

    def close(self):
        """Stops answering (connections are refused from now on). Idempotent."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
            self.conns.cut()

    def add_manifest(self, name, tag, body, media_type=OCI_MANIFEST, digest_header=None):
        """Serves `body` as name:tag and name@digest; returns the digest."""
        d = digest_of(body)
        entry = (body, media_type, digest_header or d)
        self.manifests[(name, tag)] = entry
        self.manifests[(name, d)] = entry
        return d

    def add_blob(self, name, data, served=None):
        """Serves `served` (default: `data`) as name's blob of data's digest."""
        d = digest_of(data)
        self.blobs[(name, d)] = data if served is None else served
        return d

    def add_image(self, name, tag, config, layers):
        """An OCI image: `config` and `layers` (bytes) as name's blobs and a
        manifest for them under `tag`; returns the manifest's bytes."""
        self.add_blob(name, config)
        for layer in layers:
            self.add_blob(name, layer)
        m = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                   "digest": digest_of(config), "size": len(config)},
                        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                    "digest": digest_of(x), "size": len(x)} for x in layers]})
        self.add_manifest(name, tag, m.encode())
        return m.encode()

    def count(self, method=None, kind=None):
        with self.lock:
            return sum(n for (m, k), n in self.counts.items()
                       if (method is None or m == method) and (kind is None or k == kind))

    def _bump(self, method, kind):
        with self.lock:
            self.counts[(method, kind)] = self.counts.get((method, kind), 0) + 1

    def _send(self, h, status, body=b"", headers=None, method="GET"):
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if method != "HEAD":
            h.wfile.write(body)

    def _authorized(self, h, method, name):
        if name in self.denied:
            realm = self.realm or f"{self.url}/token"
            self._send(h, 401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {
                "WWW-Authenticate": f'Bearer realm="{realm}",service="fake",'
                                    f'scope="repository:{name}:pull",error="insufficient_scope"'},
                method=method)
            return False
        if self.basic:
            got, ok = self._basic_ok(h)
            with self.lock:
                self.auths.append(("basic", got))
            if not ok:
                self._send(h, 401, b'{"errors":[{"code":"UNAUTHORIZED"}]}',
                           {"WWW-Authenticate": 'Basic realm="fake"'}, method=method)
            return ok
        if self.bearer and h.headers.get("Authorization") != f"Bearer {TOKEN}":
            realm = self.realm or f"{self.url}/token"
            self._send(h, 401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {
                "WWW-Authenticate":
                    f'Bearer realm="{realm}",service="fake",scope="repository:{name}:pull"'},
                method=method)
            return False
        return True

    def _serve_blob(self, h, method, name, digest):
        self._bump(method, "blob")
        time.sleep(self.delay_s)
        if not self._authorized(h, method, name):
            return
        data = self.blobs.get((name, digest))
        if data is None:
            self._send(h, 404, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}', method=method)
        elif self.redirect_blobs_to is not None:
            self.redirect_blobs_to.cdn[digest] = data
            self._send(h, 307, b"", {"Location": f"{self.redirect_blobs_to.url}/cdn/{digest}"},
                       method=method)
        else:
            self._send_blob(h, method, digest, data)

    def _send_blob(self, h, method, digest, data):
        rng = h.headers.get("Range")
        if method == "GET":
            with self.lock:
                self.ranges.append(rng)
        start = 0
        headers = {"Content-Type": "application/octet-stream", "Docker-Content-Digest": digest}
        status = 200
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data) - start))
        h.end_headers()
        if method == "HEAD":
            return
        with self.lock:
            reset = self.resets > 0
            if reset:
                self.resets -= 1
        pos = start
        t0 = time.monotonic()
        chunk = 256 * 1024 if self.rate else 64 * 1024
        for _ in range(1_000_000):  # bounded: every turn sends at least one byte
            if pos >= len(data):
                break
            end = min(len(data), pos + chunk)
            if self.hold_at is not None and pos < self.hold_at:
                end = min(end, self.hold_at)
            if reset and pos < self.reset_at:
                end = min(end, self.reset_at)
            if reset and pos >= self.reset_at:
                h.wfile.flush()
                h.connection.shutdown(socket.SHUT_RDWR)  # the transfer breaks mid-body
                h.close_connection = True
                return
            if self.hold_at is not None and pos >= self.hold_at:
                self.release.wait(30)
            h.wfile.write(data[pos:end])
            h.wfile.flush()
            pos = end
            if self.rate:  # paced against the clock: the rate holds whatever a write costs
                ahead = t0 + (pos - start) / self.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)

    def _serve_tags(self, h, method, name, q):
        self._bump(method, "tags")
        if not self._authorized(h, method, name):
            return
        tags = sorted({ref for (n, ref) in self.manifests if n == name and ":" not in ref})
        if not tags:
            self._send(h, 404, b'{"errors":[{"code":"NAME_UNKNOWN"}]}', method=method)
            return
        last = q.get("last", [""])[0]
        tags = [t for t in tags if t > last]
        headers = {"Content-Type": "application/json"}
        if "n" in q:
            n = int(q["n"][0])
            if len(tags) > n:
                tags = tags[:n]
                headers["Link"] = f'</v2/{name}/tags/list?n={n}&last={tags[-1]}>; rel="next"'
        self._send(h, 200, json.dumps({"name": name, "tags": tags}).encode(), headers,
                   method=method)

    def _serve_referrers(self, h, method, name, subject, q):
        self._bump(method, "referrers")
        if not self._authorized(h, method, name):
            return
        if not self.referrers_api:
            self._send(h, 404, b"404 page not found", method=method)
            return
        found = self.referrers.get((name, subject), [])
        headers = {"Content-Type": "application/vnd.oci.image.index.v1+json"}
        if "artifactType" in q:
            found = [d for d in found if d.get("artifactType") == q["artifactType"][0]]
            headers["OCI-Filters-Applied"] = "artifactType"
        body = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": found}
        self._send(h, 200, json.dumps(body).encode(), headers, method=method)

    def _serve(self, h, method):
        u = urllib.parse.urlsplit(h.path)
        if self.down is not None:
            kind = "ping" if u.path == "/v2/" else "down"
            self._bump(method, kind)
            status, headers = self.down
            self._send(h, status, b'{"errors":[{"code":"UNAVAILABLE"}]}', headers, method=method)
            return
        if u.path == "/v2/":
            self._bump(method, "ping")
            self._send(h, 200, b"{}", method=method)
            return
        if u.path == "/token":
            self._bump(method, "token")
            got, cred_ok = self._basic_ok(h)
            with self.lock:
                self.auths.append(("token", got))
            if self.users is not None and not cred_ok:
                self._send(h, 401, b'{"errors":[{"code":"UNAUTHORIZED"}]}')
                return
            q = urllib.parse.parse_qs(u.query)
            ok = q.get("service") == ["fake"] and q.get("scope", [""])[0].startswith("repository:")
            self._send(h, 200 if ok else 400,
                       json.dumps({"token": TOKEN, "expires_in": 300}).encode() if ok else b"")
            return
        parts = u.path.split("/")
        if len(parts) == 3 and parts[1] == "cdn":
            self._bump(method, "cdn")
            if h.headers.get("Authorization") is not None:  # a CDN must never see a token
                self._send(h, 403, b"authorization sent to the CDN", method=method)
            elif parts[2] in self.cdn:
                self._send(h, 200, self.cdn[parts[2]], method=method)
            else:
                self._send(h, 404, b"", method=method)
            return
        if len(parts) >= 5 and parts[1] == "v2" and parts[-2:] == ["tags", "list"]:
            self._serve_tags(h, method, "/".join(parts[2:-2]), urllib.parse.parse_qs(u.query))
            return
        if len(parts) >= 5 and parts[1] == "v2" and parts[-2] == "referrers":
            self._serve_referrers(h, method, "/".join(parts[2:-2]), parts[-1],
                                  urllib.parse.parse_qs(u.query))
            return
        if len(parts) >= 5 and parts[1] == "v2" and parts[-2] == "blobs":
            self._serve_blob(h, method, "/".join(parts[2:-2]), parts[-1])
            return
        if len(parts) < 5 or parts[1] != "v2" or parts[-2] != "manifests":
            self._bump(method, "other")
            self._send(h, 404, b"{}", method=method)
            return
        name, ref = "/".join(parts[2:-2]), parts[-1]
        self._bump(method, "manifest")
        with self.lock:
            self.accepts.append(h.headers.get("Accept", ""))
        time.sleep(self.delay_s)
        if not self._authorized(h, method, name):
            return
        entry = self.manifests.get((name, ref))
        if entry is None:
            self._send(h, 404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}', method=method)
            return
        body, mt, dg = entry
        self._send(h, 200, body, {"Content-Type": mt, "Docker-Content-Digest": dg,
                                  **self.extra_headers}, method=method)
