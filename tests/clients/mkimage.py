#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Write small, deterministic OCI image layouts for the real-client tests.

No network: the only input is Debian's static busybox (package busybox-static,
/bin/busybox by default). Two layouts are written:

  mkimage.py single DIR [--tag TAG] [--busybox PATH]
      one linux/amd64 image, three gzip layers:
        1. /bin/busybox and the base directories
        2. symlinks /bin/sh, /bin/echo, /bin/cat, ... -> busybox
        3. /etc/passwd, /etc/group and /etc/ringtest/message
      config: Entrypoint ["/bin/busybox"], Cmd ["cat", "/etc/ringtest/message"],
      so running the image with no arguments prints MESSAGE, and
      `run IMAGE echo hi` prints "hi".

  mkimage.py multi DIR [--tag TAG] [--busybox PATH]
      an OCI image index with two platform manifests, linux/amd64 and
      linux/arm64. Both use the same layers (the arm64 one is never run); their
      configs differ in "architecture" and one extra layer per platform
      (/etc/ringtest/platform) so each manifest has a blob of its own.

index.json of each layout names the top-level manifest with the annotation
org.opencontainers.image.ref.name = TAG (skopeo's `oci:DIR:TAG`).

Output is byte-for-byte reproducible for the same busybox and Python zlib: fixed
mtimes, uid/gid 0, sorted entries, gzip header without name or time, sorted JSON.
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile

MESSAGE = "ringtest: hello from busybox"
DEFAULT_TAG = "v1"
EPOCH = 1704067200  # 2024-01-01T00:00:00Z
CREATED = "2024-01-01T00:00:00Z"

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"

APPLETS = ("sh", "echo", "cat", "ls", "true", "false", "sleep", "uname", "id", "env")


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def jbytes(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


class _Tar:
    """Deterministic tar builder: entries are sorted by path before writing."""

    def __init__(self):
        self.entries = []  # (path, TarInfo, data or None)

    def _info(self, path, kind, mode):
        ti = tarfile.TarInfo(path)
        ti.type = kind
        ti.mode = mode
        ti.mtime = EPOCH
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = "root"
        return ti

    def dir(self, path, mode=0o755):
        self.entries.append((path, self._info(path, tarfile.DIRTYPE, mode), None))

    def file(self, path, data, mode=0o644):
        ti = self._info(path, tarfile.REGTYPE, mode)
        ti.size = len(data)
        self.entries.append((path, ti, data))

    def symlink(self, path, target):
        ti = self._info(path, tarfile.SYMTYPE, 0o777)
        ti.linkname = target
        self.entries.append((path, ti, None))

    def build(self):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
            for _, ti, data in sorted(self.entries, key=lambda e: e[0]):
                tf.addfile(ti, io.BytesIO(data) if data is not None else None)
        return buf.getvalue()


def gzip_bytes(raw):
    buf = io.BytesIO()
    # filename="" and mtime=0 keep the gzip header free of varying fields.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(raw)
    return buf.getvalue()


class Layout:
    """An OCI image layout directory being written."""

    def __init__(self, path):
        self.path = path
        if os.path.exists(path):
            shutil.rmtree(path)
        os.makedirs(os.path.join(path, "blobs", "sha256"))
        with open(os.path.join(path, "oci-layout"), "wb") as f:
            f.write(jbytes({"imageLayoutVersion": "1.0.0"}))

    def blob(self, data, media_type, **extra):
        d = sha256(data)
        p = os.path.join(self.path, "blobs", "sha256", d.split(":", 1)[1])
        if not os.path.exists(p):
            with open(p, "wb") as f:
                f.write(data)
        desc = {"mediaType": media_type, "digest": d, "size": len(data)}
        desc.update(extra)
        return desc

    def finish(self, top_desc, tag):
        top = dict(top_desc)
        top["annotations"] = {"org.opencontainers.image.ref.name": tag}
        index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [top]}
        with open(os.path.join(self.path, "index.json"), "wb") as f:
            f.write(jbytes(index))


def is_static_elf(data):
    """True for an ELF executable without a PT_INTERP (dynamic loader) header."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:  # 64-bit little-endian
        return False
    phoff = int.from_bytes(data[0x20:0x28], "little")
    phentsize = int.from_bytes(data[0x36:0x38], "little")
    phnum = int.from_bytes(data[0x38:0x3A], "little")
    for i in range(phnum):
        off = phoff + i * phentsize
        if int.from_bytes(data[off:off + 4], "little") == 3:  # PT_INTERP
            return False
    return True


def base_layers(busybox):
    with open(busybox, "rb") as f:
        bb = f.read()
    if not is_static_elf(bb):
        raise RuntimeError(f"{busybox} is not a static 64-bit ELF: install busybox-static")
    t1 = _Tar()
    for d in ("bin", "etc", "tmp", "root", "dev", "proc", "sys"):
        t1.dir(d, 0o1777 if d == "tmp" else 0o755)
    t1.file("bin/busybox", bb, 0o755)

    t2 = _Tar()
    t2.dir("bin")
    for a in APPLETS:
        t2.symlink("bin/" + a, "busybox")

    t3 = _Tar()
    t3.dir("etc")
    t3.dir("etc/ringtest")
    t3.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
    t3.file("etc/group", b"root:x:0:\n")
    t3.file("etc/ringtest/message", (MESSAGE + "\n").encode())
    return [t.build() for t in (t1, t2, t3)]


def image(layout, raws, arch, comment):
    """Write layers + config + manifest for one platform; returns the manifest desc."""
    layer_descs = [layout.blob(gzip_bytes(r), MT_LAYER_GZ) for r in raws]
    config = {
        "created": CREATED,
        "architecture": arch,
        "os": "linux",
        "config": {
            "Env": ["PATH=/bin"],
            "Entrypoint": ["/bin/busybox"],
            "Cmd": ["cat", "/etc/ringtest/message"],
            "WorkingDir": "/",
            "Labels": {"org.ringport.test": comment},
        },
        "rootfs": {"type": "layers", "diff_ids": [sha256(r) for r in raws]},
        "history": [{"created": CREATED, "created_by": f"mkimage.py layer {i + 1}"}
                    for i in range(len(raws))],
    }
    cfg_desc = layout.blob(jbytes(config), MT_CONFIG)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": cfg_desc,
        "layers": layer_descs,
        "annotations": {"org.opencontainers.image.created": CREATED},
    }
    return layout.blob(jbytes(manifest), MT_MANIFEST)


def write_single(path, tag=DEFAULT_TAG, busybox="/bin/busybox"):
    lay = Layout(path)
    desc = image(lay, base_layers(busybox), "amd64", "single")
    lay.finish(desc, tag)
    return desc["digest"]


def write_multi(path, tag=DEFAULT_TAG, busybox="/bin/busybox", salt=""):
    """`salt` makes each platform's config and own layer unique (a test that
    must see them fetched, whatever a client's store already holds)."""
    lay = Layout(path)
    raws = base_layers(busybox)
    manifests = []
    for arch in ("amd64", "arm64"):
        t = _Tar()
        t.dir("etc")
        t.dir("etc/ringtest")
        t.file("etc/ringtest/platform", f"linux/{arch}\n".encode())
        if salt:
            t.file("etc/ringtest/salt", salt.encode())
        d = image(lay, raws + [t.build()], arch, "multi-" + arch + salt)
        d["platform"] = {"architecture": arch, "os": "linux"}
        if arch == "arm64":
            d["platform"]["variant"] = "v8"
        manifests.append(d)
    index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": manifests}
    desc = lay.blob(jbytes(index), MT_INDEX)
    lay.finish(desc, tag)
    return desc["digest"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("kind", choices=("single", "multi"))
    ap.add_argument("dir")
    ap.add_argument("--tag", default=DEFAULT_TAG)
    ap.add_argument("--busybox", default="/bin/busybox")
    a = ap.parse_args(argv)
    fn = write_single if a.kind == "single" else write_multi
    print(fn(a.dir, a.tag, a.busybox))
    return 0


if __name__ == "__main__":
    sys.exit(main())
