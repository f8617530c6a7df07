# SPDX-License-Identifier: Apache-2.0
"""Write CNCF Distribution's filesystem layout directly, without a registry.

For tests that need a root no client could push quickly (thousands of
repositories) or one that only a crashed or old registry leaves behind
(unfinished uploads with a chosen `startedat`). The layout, under
`<root>/docker/registry/v2/`:

    blobs/<alg>/<hex[:2]>/<hex>/data                                 the bytes
    repositories/<name>/_layers/<alg>/<hex>/link                     "<alg>:<hex>"
    repositories/<name>/_manifests/revisions/<alg>/<hex>/link
    repositories/<name>/_manifests/tags/<tag>/current/link
    repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link
    repositories/<name>/_uploads/<uuid>/{data,startedat,hashstates/...}

Nothing here is clever: every function writes plain files, so a test reads as
the tree it builds.
"""
import datetime
import hashlib
import json
import os
import time

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def v2(root):
    return os.path.join(root, "docker", "registry", "v2")


def repo_dir(root, name):
    return os.path.join(v2(root), "repositories", *name.split("/"))


def uploads_dir(root, name):
    return os.path.join(repo_dir(root, name), "_uploads")


def blobs_dir(root):
    return os.path.join(v2(root), "blobs")


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def _split(digest):
    alg, hex_ = digest.split(":", 1)
    return alg, hex_


def blob_path(root, digest):
    alg, hex_ = _split(digest)
    return os.path.join(blobs_dir(root), alg, hex_[:2], hex_, "data")


def write_blob(root, data):
    """Stores `data` under its sha256 digest (once); returns the digest."""
    d = digest_of(data)
    p = blob_path(root, d)
    if not os.path.exists(p):
        _write(p, data)
    return d


def blobs_on_disk(root):
    """The sha256 digests whose data file is in the tree."""
    base = os.path.join(blobs_dir(root), "sha256")
    out = set()
    for prefix in os.listdir(base) if os.path.isdir(base) else []:
        for h in os.listdir(os.path.join(base, prefix)):
            if os.path.exists(os.path.join(base, prefix, h, "data")):
                out.add("sha256:" + h)
    return out


def _link(path, digest):
    _write(path, digest.encode())


def link_layer(root, name, digest):
    alg, hex_ = _split(digest)
    _link(os.path.join(repo_dir(root, name), "_layers", alg, hex_, "link"), digest)


def link_revision(root, name, digest):
    alg, hex_ = _split(digest)
    _link(os.path.join(repo_dir(root, name), "_manifests", "revisions", alg, hex_, "link"), digest)


def link_tag(root, name, tag, digest):
    """The tag's index entry, then its current link (Distribution's order)."""
    alg, hex_ = _split(digest)
    tag_dir = os.path.join(repo_dir(root, name), "_manifests", "tags", tag)
    _link(os.path.join(tag_dir, "index", alg, hex_, "link"), digest)
    _link(os.path.join(tag_dir, "current", "link"), digest)


def fifo_link(path, digest):
    """A link that is a FIFO: whoever reads it (an index load, a
    verification) blocks until release() writes `digest` into it, so a test
    can hold that reader in place. `path` must not exist yet. release() is
    idempotent and fails if no reader opened the FIFO within 10 s."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.mkfifo(path)
    released = []

    def release():
        if released:
            return
        released.append(True)
        for _ in range(200):  # O_NONBLOCK: ENXIO until the reader has it open
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise AssertionError(f"nothing opened the FIFO link {path}")
        os.write(fd, digest.encode())
        os.close(fd)
    return release


def image_manifest(config, layers, annotations=None):
    """Bytes of an OCI image manifest for config/layer bytes already chosen."""
    m = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": digest_of(l), "size": len(l)}
                   for l in layers],
    }
    if annotations:
        m["annotations"] = annotations
    return json.dumps(m, sort_keys=True).encode()


def write_image(root, name, tags, config, layers, annotations=None, blobs_written=None):
    """An image in repository `name` under every tag in `tags`, as Distribution
    stores it after a push. `blobs_written` (a set of digests) lets callers that
    write thousands of repositories share config and layer blobs without
    re-checking the disk. Returns (manifest bytes, manifest digest)."""
    for b in [config] + list(layers):
        d = digest_of(b)
        if blobs_written is None or d not in blobs_written:
            write_blob(root, b)
            if blobs_written is not None:
                blobs_written.add(d)
        link_layer(root, name, d)
    body = image_manifest(config, layers, annotations)
    md = write_blob(root, body)
    link_revision(root, name, md)
    for t in tags:
        link_tag(root, name, t, md)
    return body, md


def rfc3339(t, nanos=False):
    """`t` (a UTC datetime) as Distribution writes `startedat`: RFC 3339, with
    nine fractional digits when `nanos` (Go's RFC3339Nano)."""
    base = t.strftime("%Y-%m-%dT%H:%M:%S")
    if nanos:
        return f"{base}.{t.microsecond:06d}789Z"
    return base + "Z"


def utc_hours_ago(hours):
    return datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=hours)


def write_upload(root, name, upload_id, data, startedat, hashstate=True):
    """An unfinished upload as Distribution leaves it: `data`, `startedat` and
    (with `hashstate`) a `hashstates/sha256/<offset>` file. Returns its directory."""
    d = os.path.join(uploads_dir(root, name), upload_id)
    _write(os.path.join(d, "data"), data)
    _write(os.path.join(d, "startedat"), startedat.encode())
    if hashstate:
        # Distribution's saved hash state; its content is opaque to other readers.
        _write(os.path.join(d, "hashstates", "sha256", str(len(data))), b"\x00" * 16)
    return d


def files_under(path):
    """Relative paths of every regular file under `path` (empty if it is missing)."""
    out = []
    for dp, _, fns in os.walk(path):
        for fn in fns:
            out.append(os.path.relpath(os.path.join(dp, fn), path))
    return sorted(out)
