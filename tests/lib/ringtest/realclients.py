# SPDX-License-Identifier: Apache-2.0
"""Run real registry clients (skopeo, podman, containerd's ctr, docker) in tests.

Every command runs with a timeout; every wait is bounded in count and time. Each
daemon gets a private temporary directory (short, under /tmp, so unix socket
paths stay below 108 bytes) holding its root, state, sockets, config and log,
and everything in it is torn down on `stop()`: the daemon is sent SIGTERM, then
SIGKILL to its process group, then SIGKILL to any process whose command line
names the directory (containerd shims detach into their own sessions), then
mounts below the directory are unmounted and the directory removed.

Nothing here skips: a missing tool raises `ToolMissing`, which the tests turn
into a failure.
"""
import hashlib
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time

CMD_TIMEOUT_S = 120.0
DAEMON_START_TIMEOUT_S = 60.0
DAEMON_STOP_TIMEOUT_S = 20.0

# Debian package that provides each tool (for error messages and the README).
PACKAGES = {
    "skopeo": "skopeo",
    "podman": "podman",
    "conmon": "conmon",
    "runc": "runc",
    "containerd": "containerd",
    "containerd-shim-runc-v2": "containerd",
    "ctr": "containerd",
    "dockerd": "docker.io",
    "docker": "docker.io",
    "docker-registry": "docker-registry",
    "busybox": "busybox-static",
}
APT_LINE = ("apt-get install -y --no-install-recommends skopeo podman runc containerd "
            "docker.io busybox-static docker-registry")

# Absolute paths: /usr/local/bin may hold a different docker CLI; use Debian's.
TOOL_PATHS = {
    "docker": "/usr/bin/docker",
    "dockerd": "/usr/sbin/dockerd",
    "busybox": "/bin/busybox",
}


class ToolMissing(RuntimeError):
    pass


class CommandFailed(AssertionError):
    pass


def tool(name):
    """Absolute path of a tool, or ToolMissing naming the Debian package."""
    p = TOOL_PATHS.get(name)
    if p and os.access(p, os.X_OK):
        return p
    found = None if p else shutil.which(name)
    if not found:
        pkg = PACKAGES.get(name, name)
        raise ToolMissing(f"{name} not found: install Debian package '{pkg}' ({APT_LINE})")
    return found


def run(args, timeout=CMD_TIMEOUT_S, env=None, check=True, input=None):
    """Run a command to completion (bounded by `timeout`); returns CompletedProcess."""
    args = [str(a) for a in args]
    try:
        cp = subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                            env=env, input=input, stdin=None if input is not None
                            else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise CommandFailed(f"timed out after {timeout}s: {' '.join(args)}\n"
                            f"stdout: {e.stdout!r}\nstderr: {e.stderr!r}") from None
    if check and cp.returncode != 0:
        raise CommandFailed(f"exit {cp.returncode}: {' '.join(args)}\n"
                            f"stdout: {cp.stdout[-4000:]}\nstderr: {cp.stderr[-4000:]}")
    return cp


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


# --- OCI layouts / dir: transport -----------------------------------------------
def layout_blobs(layout):
    """{digest: bytes} of every blob in an OCI image layout."""
    d = os.path.join(layout, "blobs", "sha256")
    out = {}
    for name in sorted(os.listdir(d)):
        with open(os.path.join(d, name), "rb") as f:
            out["sha256:" + name] = f.read()
    return out


def layout_top(layout, tag):
    """(descriptor, bytes) of the manifest/index named `tag` in index.json."""
    with open(os.path.join(layout, "index.json"), "rb") as f:
        idx = json.load(f)
    for m in idx["manifests"]:
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            return m, layout_blobs(layout)[m["digest"]]
    raise KeyError(f"{tag} not in {layout}/index.json")


def dir_transport_blobs(path):
    """skopeo's dir: transport: (manifest bytes, {digest: bytes} of the other files)."""
    with open(os.path.join(path, "manifest.json"), "rb") as f:
        manifest = f.read()
    blobs = {}
    for name in os.listdir(path):
        if name in ("manifest.json", "version") or name.startswith("signature"):
            continue
        with open(os.path.join(path, name), "rb") as f:
            blobs["sha256:" + name] = f.read()
    return manifest, blobs


# --- process and mount clean-up -------------------------------------------------
def _pids_mentioning(text):
    me = os.getpid()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            pids.append(int(entry))
    return pids


def kill_pids_mentioning(text):
    """SIGKILL the processes whose command line names `text` (our private dir)."""
    for pid in _pids_mentioning(text):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def mounts_under(path):
    path = os.path.realpath(path).rstrip("/") + "/"
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if (mp + "/").startswith(path):
                out.append(mp)
    return sorted(set(out), key=lambda p: -p.count("/"))


def unmount_under(path):
    for _ in range(5):  # bounded: nested / stacked mounts need a few passes
        mps = mounts_under(path)
        if not mps:
            return
        for mp in mps:
            subprocess.run(["umount", "-l", mp], capture_output=True, timeout=30)


def remove_tree(path):
    unmount_under(path)
    shutil.rmtree(path, ignore_errors=True)


def remove_cgroup(name):
    """rmdir an (empty) cgroup `name` (and its empty children) in every hierarchy."""
    base = "/sys/fs/cgroup"
    if not os.path.isdir(base):
        return
    for hier in os.listdir(base):
        top = os.path.join(base, hier, name)
        if not os.path.isdir(top):
            continue
        for dirpath, dirnames, _ in sorted(os.walk(top), key=lambda t: -t[0].count("/")):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


# --- daemons --------------------------------------------------------------------
class Daemon:
    """A background daemon in its own session, logging to DIR/daemon.log."""

    name = "daemon"

    def __init__(self, prefix):
        self.dir = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
        self.proc = None
        self.log_path = os.path.join(self.dir, "daemon.log")
        self._log = None

    def _spawn(self, args, env=None):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(a) for a in args], stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True, env=env)

    def log_tail(self, n=40):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def _wait(self, ready, what, timeout_s=DAEMON_START_TIMEOUT_S):
        deadline = time.monotonic() + timeout_s
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} "
                                   f"before {what}:\n{self.log_tail()}")
            try:
                if ready():
                    return
            except Exception as e:  # not up yet
                last = e
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name}: no {what} within {timeout_s}s ({last}):\n"
                           f"{self.log_tail()}")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=DAEMON_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pass
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        kill_pids_mentioning(self.dir)
        if self._log:
            self._log.close()
            self._log = None

    def cleanup(self):
        self.stop()
        remove_tree(self.dir)


def _unix_http_get(sock_path, path, timeout=2.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock_path)
    conn = http.client.HTTPConnection("localhost", timeout=timeout)
    conn.sock = s
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


CONTAINERD_CONFIG = """version = 2
root = "{dir}/root"
state = "{dir}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{dir}/containerd.sock"
[ttrpc]
  address = "{dir}/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
"""


class Containerd(Daemon):
    """A private containerd; `ctr(...)` talks to it in namespace `ns`."""

    name = "containerd"
    SNAPSHOTTER = "native"

    def __init__(self):
        super().__init__("rt-ctd-")
        self.sock = os.path.join(self.dir, "containerd.sock")
        self.ns = f"ringtest{os.getpid()}"
        self.config = os.path.join(self.dir, "config.toml")

    def start(self):
        for t in ("containerd", "ctr", "runc", "containerd-shim-runc-v2"):
            tool(t)
        with open(self.config, "w") as f:
            f.write(CONTAINERD_CONFIG.format(dir=self.dir))
        self._spawn([tool("containerd"), "--config", self.config])
        self._wait(lambda: run([tool("ctr"), "-a", self.sock, "version"], timeout=5)
                   .returncode == 0, "answer on " + self.sock)
        return self

    def ctr(self, *args, timeout=CMD_TIMEOUT_S, check=True):
        return run([tool("ctr"), "-a", self.sock, "-n", self.ns, *args], timeout=timeout,
                   check=check)

    def cleanup(self):
        try:
            if self.proc is not None and self.proc.poll() is None:
                for task in self.ctr("tasks", "ls", "-q", check=False, timeout=20).stdout.split():
                    self.ctr("tasks", "kill", "-s", "SIGKILL", task, check=False, timeout=20)
        finally:
            super().cleanup()
            remove_cgroup(self.ns)


class Dockerd(Daemon):
    """A private dockerd (vfs, no bridge, no iptables) with its own managed containerd."""

    name = "dockerd"

    def __init__(self, daemon_config=None):
        super().__init__("rt-dkd-")
        self.daemon_config = daemon_config or {}
        self.sock = os.path.join(self.dir, "docker.sock")
        self.cgroup_parent = f"ringtest-docker{os.getpid()}"
        self.env = dict(os.environ)
        self.env.pop("DOCKER_HOST", None)
        self.cli_env = dict(self.env)
        self.cli_env["DOCKER_HOST"] = "unix://" + self.sock
        self.cli_env["DOCKER_CONFIG"] = os.path.join(self.dir, "cli")

    def start(self):
        for t in ("dockerd", "docker", "containerd", "runc"):
            tool(t)
        cfg = os.path.join(self.dir, "daemon.json")
        with open(cfg, "w") as f:
            json.dump(self.daemon_config, f)
        os.makedirs(self.cli_env["DOCKER_CONFIG"], exist_ok=True)
        self._spawn([
            tool("dockerd"),
            "--config-file", cfg,
            "--data-root", os.path.join(self.dir, "data"),
            "--exec-root", os.path.join(self.dir, "exec"),
            "--pidfile", os.path.join(self.dir, "docker.pid"),
            "-H", "unix://" + self.sock,
            "--storage-driver=vfs",
            "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
            "--userland-proxy=false",
            "--exec-opt", "native.cgroupdriver=cgroupfs",
            "--cgroup-parent", "/" + self.cgroup_parent,
            "--log-level", "warn",
        ], env=self.env)
        self._wait(lambda: _unix_http_get(self.sock, "/_ping")[0] == 200,
                   "answer on " + self.sock)
        return self

    def docker(self, *args, timeout=CMD_TIMEOUT_S, check=True):
        return run([tool("docker"), *args], timeout=timeout, env=self.cli_env, check=check)

    def cleanup(self):
        try:
            if self.proc is not None and self.proc.poll() is None:
                ids = self.docker("ps", "-aq", check=False, timeout=30).stdout.split()
                if ids:
                    self.docker("rm", "-f", *ids, check=False, timeout=60)
        finally:
            super().cleanup()
            remove_cgroup(self.cgroup_parent)


def safe_ulimits():
    """nofile/nproc limits a container may get without CAP_SYS_RESOURCE.

    podman asks for nofile=1048576 and nproc=4194304 by default; where the hard
    limits are lower and CAP_SYS_RESOURCE is missing (this sandbox), runc fails
    with "error setting rlimit type 7: operation not permitted". Small fixed
    values are always below the inherited hard limits.
    """
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = 4096 if nofile == resource.RLIM_INFINITY else min(nofile, 4096)
    return [f"nofile={min(1024, nofile)}:{nofile}", "nproc=4096:4096"]


PODMAN_CONF = """[containers]
default_ulimits = [{ulimits}]
netns = "none"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
lock_type = "file"
"""


class Podman:
    """podman as root with vfs + runc in a private --root/--runroot/--tmpdir.

    Not a daemon: `podman(...)` runs one command. CONTAINERS_CONF points at a
    private containers.conf (cgroupfs, file events and locks, safe ulimits).
    """

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="rt-pod-", dir="/tmp")
        self.conf = os.path.join(self.dir, "containers.conf")
        self.env = dict(os.environ)
        self.env["CONTAINERS_CONF"] = self.conf
        self.env["TMPDIR"] = os.path.join(self.dir, "bigtmp")

    def start(self):
        for t in ("podman", "conmon", "runc"):
            tool(t)
        os.makedirs(self.env["TMPDIR"], exist_ok=True)
        with open(self.conf, "w") as f:
            f.write(PODMAN_CONF.format(ulimits=", ".join(f'"{u}"' for u in safe_ulimits())))
        self.podman("info", "--format", "{{.Store.GraphDriverName}}")
        return self

    def podman(self, *args, timeout=CMD_TIMEOUT_S, check=True):
        return run([tool("podman"),
                    "--root", os.path.join(self.dir, "root"),
                    "--runroot", os.path.join(self.dir, "runroot"),
                    "--tmpdir", os.path.join(self.dir, "tmp"),
                    "--storage-driver", "vfs",
                    "--runtime", "runc",
                    "--cgroup-manager", "cgroupfs",
                    "--events-backend", "file",
                    *args], timeout=timeout, env=self.env, check=check)

    def cleanup(self):
        try:
            self.podman("rm", "-af", "-t", "0", check=False, timeout=60)
        except Exception:
            pass
        kill_pids_mentioning(self.dir)
        remove_tree(self.dir)


class Skopeo:
    """skopeo against a plain-http registry on loopback."""

    def __init__(self):
        self.bin = tool("skopeo")

    def __call__(self, *args, timeout=CMD_TIMEOUT_S, check=True):
        return run([self.bin, *args], timeout=timeout, check=check)

    def copy(self, src, dst, *extra, all_images=False):
        args = ["copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false"]
        if all_images:
            args.append("--all")
        return self(*args, *extra, src, dst)

    def inspect(self, ref, *extra):
        return self("inspect", "--tls-verify=false", *extra, ref)

    def inspect_json(self, ref, *extra):
        return json.loads(self.inspect(ref, *extra).stdout)

    def raw(self, ref, *extra):
        """`skopeo inspect --raw` output as bytes (exactly the registry's manifest)."""
        args = [self.bin, "inspect", "--tls-verify=false", "--raw", *extra, ref]
        try:
            cp = subprocess.run(args, capture_output=True, timeout=CMD_TIMEOUT_S,
                                stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise CommandFailed(f"timed out: {' '.join(args)}") from None
        if cp.returncode != 0:
            raise CommandFailed(f"exit {cp.returncode}: {' '.join(args)}\n{cp.stderr!r}")
        return cp.stdout

    def list_tags(self, repo_ref):
        return json.loads(self("list-tags", "--tls-verify=false", repo_ref).stdout)["Tags"]

    def delete(self, ref):
        return self("delete", "--tls-verify=false", ref)
