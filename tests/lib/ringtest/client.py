# SPDX-License-Identifier: Apache-2.0
"""A small OCI distribution client over http.client, for tests.

Every call returns a `Resp` with status, headers (case-insensitive lookups via
`header()`), and body bytes. Nothing here follows redirects or retries.
"""
import base64
import hashlib
import http.client
import json
import urllib.parse

TIMEOUT_S = 30


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # list of (name, value)
        self.body = body

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def json(self):
        return json.loads(self.body)

    def error_codes(self):
        try:
            return [e["code"] for e in self.json()["errors"]]
        except Exception:
            return []

    def __repr__(self):
        return f"Resp({self.status}, {self.headers}, {self.body[:200]!r})"


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Client:
    def __init__(self, host, ssl_context=None, auth=None):
        self.host = host  # "127.0.0.1:port"
        self.ssl_context = ssl_context  # set: HTTPS with this context
        # (user, password) for Basic auth, or a whole Authorization value.
        if isinstance(auth, tuple):
            auth = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        self.authorization = auth

    def request(self, method, path, body=None, headers=None):
        headers = dict(headers or {})
        if self.authorization and "Authorization" not in headers:
            headers["Authorization"] = self.authorization
        if self.ssl_context is not None:
            conn = http.client.HTTPSConnection(self.host, timeout=TIMEOUT_S,
                                               context=self.ssl_context)
        else:
            conn = http.client.HTTPConnection(self.host, timeout=TIMEOUT_S)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            return Resp(r.status, r.getheaders(), data)
        finally:
            conn.close()

    # --- blobs -----------------------------------------------------------
    def push_blob(self, name, data):
        """Monolithic POST ?digest=. Returns the digest."""
        d = sha256(data)
        r = self.request("POST", f"/v2/{name}/blobs/uploads/?digest={d}", body=data,
                         headers={"Content-Type": "application/octet-stream"})
        if r.status == 202:  # Distribution 2.8.2 ignores the monolithic POST body
            loc = path_of(r.header("Location"))
            sep = "&" if "?" in loc else "?"
            r = self.request("PUT", f"{loc}{sep}digest={d}", body=data,
                             headers={"Content-Type": "application/octet-stream"})
        assert r.status == 201, r
        return d

    def start_upload(self, name):
        r = self.request("POST", f"/v2/{name}/blobs/uploads/")
        assert r.status == 202, r
        return path_of(r.header("Location"))

    def push_blob_chunked(self, name, data, chunk):
        loc = self.start_upload(name)
        off = 0
        while off < len(data):
            part = data[off:off + chunk]
            r = self.request("PATCH", loc, body=part, headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{off}-{off + len(part) - 1}",
            })
            assert r.status == 202, r
            loc = path_of(r.header("Location"))
            off += len(part)
        d = sha256(data)
        sep = "&" if "?" in loc else "?"
        r = self.request("PUT", f"{loc}{sep}digest={d}")
        assert r.status == 201, r
        return d

    def get_blob(self, name, digest, headers=None):
        return self.request("GET", f"/v2/{name}/blobs/{digest}", headers=headers)

    # --- manifests -------------------------------------------------------
    def put_manifest(self, name, ref, body, media_type):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        return self.request("PUT", f"/v2/{name}/manifests/{ref}", body=body,
                            headers={"Content-Type": media_type})

    def get_manifest(self, name, ref, accept=None):
        h = {}
        if accept:
            h["Accept"] = accept
        return self.request("GET", f"/v2/{name}/manifests/{ref}", headers=h)

    def push_image(self, name, tag, layers=(b"layer-one",), config=b"{}"):
        """Push config + layers + an OCI image manifest; returns (manifest bytes, digest)."""
        cfg_d = self.push_blob(name, config)
        descs = []
        for layer in layers:
            d = self.push_blob(name, layer)
            descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                          "digest": d, "size": len(layer)})
        m = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": cfg_d, "size": len(config)},
            "layers": descs,
        }
        body = json.dumps(m).encode()
        r = self.put_manifest(name, tag, body, m["mediaType"])
        assert r.status == 201, r
        return body, sha256(body)


def quote(s):
    return urllib.parse.quote(s, safe="")


def path_of(location):
    """A Location header as a request path: registries may answer absolute URLs."""
    u = urllib.parse.urlsplit(location)
    return u.path + ("?" + u.query if u.query else "")
