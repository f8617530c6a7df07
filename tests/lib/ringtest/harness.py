# SPDX-License-Identifier: Apache-2.0
"""Start and stop real registry processes for tests.

ringport: `ringport serve --listen 127.0.0.1:0 --root DIR` prints one line
`ringport: listening on 127.0.0.1:PORT` on stdout once it accepts connections.
The binary is taken from $RINGPORT_BIN (set by meson / .ci/run), falling back to
build/release/src/ringport and build/debug/src/ringport.

distribution: Debian's `docker-registry` (CNCF Distribution 2.8.2), started on a
free loopback port with a generated config (filesystem storage, deletes on, no
auth). It does not print its port, so we pick one and poll until it answers.
"""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
START_TIMEOUT_S = 20.0


def ringport_bin():
    env = os.environ.get("RINGPORT_BIN")
    if env:
        return env
    for cand in ("build/release/src/ringport", "build/debug/src/ringport"):
        p = os.path.join(REPO_ROOT, cand)
        if os.path.exists(p):
            return p
    raise RuntimeError("ringport binary not found: set RINGPORT_BIN")


def wait_until(pred, timeout_s, interval_s=0.02):
    """Polls pred() until truthy or timeout_s passes; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval_s)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout_s=START_TIMEOUT_S):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except Exception as e:  # connection refused while starting
            last = e
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout_s}s: {last}")


class OpenConnections:
    """The keep-alive connections a test HTTP server has open. A
    ThreadingHTTPServer's handler threads outlive its shutdown and go on
    answering on them; cut() ends them, so a stopped server is really down."""

    def __init__(self):
        self.lock = threading.Lock()
        self.socks = set()

    def handler(self):
        """A quiet HTTP/1.1 BaseHTTPRequestHandler that registers its
        connection here for its lifetime; subclass it."""
        conns = self

        class Tracked(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                with conns.lock:
                    conns.socks.add(self.connection)

            def finish(self):
                with conns.lock:
                    conns.socks.discard(self.connection)
                super().finish()

            def log_message(self, *args):
                pass

        return Tracked

    def cut(self):
        with self.lock:
            socks = list(self.socks)
        for c in socks:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Drain(threading.Thread):
    """Collects a pipe's lines so the child never blocks on a full pipe."""

    def __init__(self, pipe, sink):
        super().__init__(daemon=True)
        self.pipe, self.sink = pipe, sink

    def run(self):
        for line in iter(self.pipe.readline, ""):
            self.sink.append(line)
        self.pipe.close()


class Ringport:
    """A running ringport. `root` survives restarts; `stop()` is SIGTERM."""

    def __init__(self, root=None, extra_args=(), env=None, config=None, tls_ca=None,
                 tls_client=None):
        self._own_root = root is None
        self.root = root or tempfile.mkdtemp(prefix="ringport-test-")
        self.extra_args = list(extra_args)
        # RINGPORT_BIN tells the tests where the binary is; ringport itself
        # rejects RINGPORT_* variables it does not know.
        self.env = {k: v for k, v in os.environ.items() if k != "RINGPORT_BIN"}
        self.env.update(env or {})
        self.config = config
        # Set when the server speaks TLS: the CA its certificate chains to.
        self.tls_ca = tls_ca
        self.tls_client = tls_client  # (cert, key) when the server asks for one
        self.proc = None
        self.out, self.err = [], []
        self.port = None

    @property
    def url(self):
        return f"{'https' if self.tls_ca else 'http'}://127.0.0.1:{self.port}"

    def ssl_context(self):
        """A client context that trusts the server's CA (None for plain HTTP)."""
        if not self.tls_ca:
            return None
        ctx = ssl.create_default_context(cafile=self.tls_ca)
        if self.tls_client:
            ctx.load_cert_chain(*self.tls_client)
        return ctx

    @property
    def host(self):
        return f"127.0.0.1:{self.port}"

    def start(self, listen="127.0.0.1:0"):
        args = [ringport_bin(), "serve", "--listen", listen, "--root", self.root]
        if self.config:
            args += ["--config", self.config]
        args += self.extra_args
        self.out, self.err = [], []
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=self.env)
        first = self._read_listen_line()
        self.port = int(first.rsplit(":", 1)[1])
        _Drain(self.proc.stdout, self.out).start()
        _Drain(self.proc.stderr, self.err).start()
        return self

    def _read_listen_line(self):
        deadline = time.monotonic() + START_TIMEOUT_S
        result = []

        def reader():
            result.append(self.proc.stdout.readline())

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        t.join(max(0.0, deadline - time.monotonic()))
        line = result[0].strip() if result else ""
        if not line.startswith("ringport: listening on "):
            # stdout ended (or timed out) before the listen line: the process
            # is exiting, or stuck. Give an exit a moment to finish so its
            # stderr (the reason) is read whole; kill a stuck one.
            try:
                self.proc.wait(timeout=5 if result else 0.1)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            err = self.proc.stderr.read()
            raise RuntimeError(f"ringport did not start: stdout={line!r} stderr={err!r}")
        return line

    def wait_ready(self, timeout_s=START_TIMEOUT_S):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=2,
                                            context=self.ssl_context()) as r:
                    if r.status == 200:
                        return
            except Exception:
                pass
            time.sleep(0.02)
        raise RuntimeError("ringport never became ready")

    def stop(self, timeout_s=15.0):
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("ringport did not stop on SIGTERM")

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def restart(self):
        self.stop()
        return self.start()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def sanitizer_reports(self):
        """Lines where ASan, LSan or UBSan reported a problem."""
        return [l for l in self.err if any(m in l for m in SANITIZER_MARKS)]

    def cleanup(self):
        """Stops gracefully (SIGTERM) and fails loudly if the process did not
        exit cleanly or a sanitizer reported anything."""
        code = None
        if self.alive():
            code = self.stop()
        time.sleep(0.05)  # let the drain threads collect the last stderr lines
        reports = self.sanitizer_reports()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)
        if reports:
            raise AssertionError("sanitizer report from ringport:\n" + "".join(self.err[-200:]))
        if code not in (None, 0):
            raise AssertionError(f"ringport exited with {code} on SIGTERM:\n" + "".join(self.err[-50:]))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "ThreadSanitizer")

DISTRIBUTION_CONFIG = """version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


def ringport_with_config(text):
    """A started, ready Ringport reading `text` as its config file; returns
    (ringport, config path). The caller cleans up both."""
    fd, cfg = tempfile.mkstemp(suffix=".toml")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    srv = Ringport(config=cfg).start()
    srv.wait_ready()
    return srv, cfg


class Distribution:
    """Debian's docker-registry (Distribution 2.8.2) on a loopback port."""

    BIN = "/usr/bin/docker-registry"

    def __init__(self, root=None):
        self._own_root = root is None
        self.root = root or tempfile.mkdtemp(prefix="distribution-test-")
        self.proc = None
        self.port = None
        self._cfgdir = tempfile.mkdtemp(prefix="distribution-cfg-")
        self.out, self.err = [], []

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        self.port = free_port()
        cfg = os.path.join(self._cfgdir, "config.yml")
        with open(cfg, "w") as f:
            f.write(DISTRIBUTION_CONFIG.format(root=self.root, port=self.port))
        self.proc = subprocess.Popen([self.BIN, "serve", cfg], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        _Drain(self.proc.stdout, self.out).start()
        _Drain(self.proc.stderr, self.err).start()
        wait_http(self.url + "/v2/")
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self._cfgdir, ignore_errors=True)
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()
