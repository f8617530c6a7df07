# SPDX-License-Identifier: Apache-2.0
"""Helpers for the authentication tests: htpasswd files made with the real
binary, a registry with auth settings, and the stored tree's exact state
(to show a refused request changed nothing)."""
import hashlib
import os
import subprocess
import tempfile

from .harness import Ringport, ringport_bin

V2 = "docker/registry/v2"


def set_password(path, user, password, cost=4):
    """`ringport htpasswd --cost N FILE USER` with the password on stdin."""
    subprocess.run([ringport_bin(), "htpasswd", "--cost", str(cost), path, user],
                   input=password + "\n", text=True, check=True, capture_output=True, timeout=60)


def htpasswd_file(directory, users, cost=4):
    path = os.path.join(directory, "htpasswd")
    for user, password in users.items():
        set_password(path, user, password, cost)
    return path


def tree_state(root):
    """Every directory and file under the v2 tree (uploads included), with
    each file's size and SHA-256: equal states mean byte-identical trees."""
    out = {}
    base = os.path.join(root, V2)
    for dp, dns, fns in os.walk(base):
        rel = os.path.relpath(dp, base)
        out[rel + "/"] = None
        for fn in fns:
            p = os.path.join(dp, fn)
            with open(p, "rb") as f:
                data = f.read()
            out[os.path.join(rel, fn)] = (len(data), hashlib.sha256(data).hexdigest())
    return out


def start_with_config(text, env=None, **kw):
    """A started, ready Ringport reading `text` (TOML) as its config."""
    fd, cfg = tempfile.mkstemp(suffix=".toml", prefix="ringport-auth-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    r = Ringport(config=cfg, env=env, **kw)
    r.config_path = cfg
    r.start()
    r.wait_ready()
    return r


def startup_refusal(config_text=None, env=None):
    """The reason ringport gives for refusing to start with this config
    (TOML text) and environment; fails the test if it starts."""
    cfg = None
    if config_text is not None:
        fd, cfg = tempfile.mkstemp(suffix=".toml", prefix="ringport-refused-")
        with os.fdopen(fd, "w") as f:
            f.write(config_text)
    r = Ringport(config=cfg, env=env)
    try:
        try:
            r.start()
        except RuntimeError as e:
            return str(e)
        raise AssertionError("ringport started with settings it should refuse")
    finally:
        r.cleanup()
        if cfg:
            os.unlink(cfg)
