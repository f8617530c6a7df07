# SPDX-License-Identifier: Apache-2.0
"""A scripted upstream registry on loopback for the mirror tests.

It serves manifests from a dict, counts every request by (method, kind),
and can demand a Docker bearer token (a 401 challenge pointing at its own
/token endpoint), serve bytes that do not match their digest, or answer junk.
"""
import hashlib
import http.server
import json
import socket
import threading
import time
import urllib.parse

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
TOKEN = "good-token"


def digest_of(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


class FakeUpstream:
    def __init__(self, bearer=True):
        self.bearer = bearer
        self.manifests = {}   # (name, ref) -> (body, media type, digest header or None)
        self.blobs = {}       # (name, digest) -> bytes served for it (right or wrong)
        self.redirect_blobs_to = None  # another FakeUpstream: blobs answer 307 to its /cdn/
        self.cdn = {}         # digest -> bytes, served at /cdn/<digest> without Authorization
        self.delay_s = 0.0    # each manifest and blob answer waits this long (a slow upstream)
        self.accepts = []     # the Accept header of each manifest request
        self.counts = {}      # (method, kind) -> n
        self.lock = threading.Lock()
        self.conns = set()    # open client sockets, cut by close()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                with owner.lock:
                    owner.conns.add(self.connection)

            def finish(self):
                with owner.lock:
                    owner.conns.discard(self.connection)
                super().finish()

            def do_GET(self):
                owner._serve(self, "GET")

            def do_HEAD(self):
                owner._serve(self, "HEAD")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def close(self):
        """Stops answering (connections are refused from now on). Idempotent."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
            with self.lock:
                for c in list(self.conns):
                    try:
                        c.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

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
        if self.bearer and h.headers.get("Authorization") != f"Bearer {TOKEN}":
            realm = f"{self.url}/token"
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
            self._send(h, 200, data, {"Content-Type": "application/octet-stream",
                                      "Docker-Content-Digest": digest}, method=method)

    def _serve(self, h, method):
        u = urllib.parse.urlsplit(h.path)
        if u.path == "/token":
            self._bump(method, "token")
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
        self._send(h, 200, body, {"Content-Type": mt, "Docker-Content-Digest": dg},
                   method=method)
