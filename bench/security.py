# SPDX-License-Identifier: Apache-2.0
"""bench/compare's `security` step (issue 11): ringport over TLS against
plain-HTTP ringport and against Distribution 2.8.2 over TLS, in one run,
with the same certificate (ECDSA P-256, from a CA made for the run; every
client verifies it against that CA).

Rows (issue 11's targets):
- TLS pull of a 64 MiB blob, 1 and 4 streams: ringport over TLS against
  plain-HTTP ringport in the same run (≥ 70%), and the ratio to Distribution
  over TLS. This machine has no kernel TLS module: user-space encryption.
- TLS push of a 64 MiB blob, 1 stream: against plain-HTTP ringport (≥ 70%),
  and the ratio to Distribution over TLS.
- New TLS connections per second (ringport-bench's `connect`: TCP connect,
  full handshake with X25519, certificate verified, no resumption, GET /v2/,
  close): against Distribution (≥ 1×); and the server's CPU per handshake
  (its CPU per TLS connection less its CPU per plain connection, both
  measured here) against the bound `openssl speed ecdsap256 ecdhx25519`
  gives on one core: one ECDSA P-256 signature and one X25519 derivation
  per handshake (≥ 80%). For scale, the same clients against `openssl
  s_server -www` (the same libssl, on the same certificate) give OpenSSL's
  own server's CPU per connection.
- Manifest GET with a bearer token (an ES256 token from a test key, the
  key's certificate as the root bundle, the same for both): requests per
  second against Distribution with token auth (≥ 30×), and ringport's
  server CPU per request against anonymous manifest GETs (≤ 2×).
- A 50-layer pull with htpasswd Basic credentials (a client that has not
  logged in before: /v2/, the manifest, the config and 50 layers, each
  request with the credentials): bcrypt verifications counted by /metrics
  (exactly 1).
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "lib"))
from ringtest.authtest import htpasswd_file  # noqa: E402
from ringtest.client import Client  # noqa: E402
from ringtest.jwtmint import Minter  # noqa: E402
from ringtest.testca import make_ca  # noqa: E402

KINDS = ("ringport-tls", "ringport-plain", "distribution-tls")
TOKEN_KINDS = ("ringport-token", "distribution-token", "ringport-anonymous")
SERVICE = "registry.bench"


def specs(args):
    q = args.quick
    size = args.size
    return [
        ("pull1", "pull", ["--size", size, "--count", "8" if q else "32"]),
        ("pull4", "pull", ["--size", size, "--count", "16" if q else "64", "--concurrency", "4"]),
        ("push1", "push", ["--size", size, "--count", "2" if q else "8"]),
        ("connect", "connect", ["--duration", "2" if q else "5", "--concurrency", "4"]),
    ]


def openssl_bound(args, logdir):
    """Full handshakes per second one core allows by `openssl speed`: one
    ECDSA P-256 sign and one X25519 derivation each."""
    cmd = ["openssl", "speed", "-seconds", "1" if args.quick else "3", "ecdsap256", "ecdhx25519"]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    cp = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    with open(os.path.join(logdir, "openssl-speed-handshake.txt"), "w") as f:
        f.write(cp.stdout + cp.stderr)
    sign = re.search(r"256 bits ecdsa \(nistp256\)\s+\S+\s+\S+\s+([\d.]+)\s+([\d.]+)", cp.stdout)
    ecdh = re.search(r"253 bits ecdh \(X25519\)\s+\S+\s+([\d.]+)", cp.stdout)
    if not sign or not ecdh:
        return None
    sign_s, ecdh_s = float(sign.group(1)), float(ecdh.group(1))
    per_us = 1e6 / sign_s + 1e6 / ecdh_s
    return {"sign_per_s": sign_s, "x25519_per_s": ecdh_s, "handshake_us": per_us,
            "handshakes_per_s_per_core": 1e6 / per_us}


def s_server_reference(args, R, cert, key, ca, logdir):
    """ringport-bench `connect` against `openssl s_server -www` (no tickets,
    as ringport): OpenSSL's own server's CPU per connection."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = open(os.path.join(logdir, "openssl-s_server.log"), "w")
    p = subprocess.Popen(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", cert,
                          "-key", key, "-www", "-quiet", "-num_tickets", "0"],
                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.02)
        doc = R.bench("security-connect-s_server", "openssl-s_server", f"https://127.0.0.1:{port}",
                      "connect", ["--duration", "2" if args.quick else "5", "--concurrency", "1",
                                  "--cacert", ca], p.pid)
        return ((doc or {}).get("server") or {}).get("cpu_us_per_op")
    finally:
        p.terminate()
        p.wait(timeout=10)
        log.close()


def token_runs(args, R, start_ringport, start_distribution, scratch, say, pick, out):
    """Manifest GET with a bearer token: ringport and Distribution trusting
    the same key, and anonymous ringport for the CPU ratio."""
    d = tempfile.mkdtemp(prefix="security-jwt-", dir=scratch)
    servers = {}
    try:
        m = Minter(d, service=SERVICE)
        token = m.token(m.claims(access=[("repository", "bench/manifest-get", ["*"])],
                                 ttl=6 * 3600))
        realm = "https://auth.bench/token"
        servers["ringport-token"] = start_ringport("security-ringport-token", {
            "RINGPORT_AUTH_SCHEME": "token", "RINGPORT_AUTH_TOKEN_REALM": realm,
            "RINGPORT_AUTH_TOKEN_SERVICE": SERVICE, "RINGPORT_AUTH_TOKEN_ISSUER": m.issuer,
            "RINGPORT_AUTH_TOKEN_ROOTCERTBUNDLE": m.bundle}, None)
        servers["distribution-token"] = start_distribution(
            "security-distribution-token",
            f"auth:\n  token:\n    realm: {realm}\n    service: {SERVICE}\n"
            f"    issuer: {m.issuer}\n    rootcertbundle: {m.certs['ec256']}\n", None, 401)
        servers["ringport-anonymous"] = start_ringport("security-ringport-anonymous", {}, None)
        extra = ["--duration", "2" if args.quick else "5", "--concurrency", "8"]
        say(f"security mget-token: manifest-get {' '.join(extra)} with a bearer token")
        docs = {k: [] for k in TOKEN_KINDS}
        for r in range(args.rounds):
            for kind in TOKEN_KINDS:
                header = [] if kind == "ringport-anonymous" else [
                    "--header", f"Authorization: Bearer {token}"]
                docs[kind].append(R.bench(f"security-mget-token.r{r + 1}", kind,
                                          servers[kind].url, "manifest-get",
                                          [*extra, *header], servers[kind].pid))
        out["runs"]["mget-token"] = {k: pick(v, args.pick) for k, v in docs.items()}
    finally:
        for s in servers.values():
            s.stop()
        shutil.rmtree(d, ignore_errors=True)


def bcrypt_run(start_ringport, scratch, say, out):
    """A 50-layer pull with Basic credentials: bcrypt verifications."""
    d = tempfile.mkdtemp(prefix="security-htpasswd-", dir=scratch)
    cfg = os.path.join(d, "ringport.toml")
    path = htpasswd_file(d, {"pusher": "push-pw", "puller": "pull-pw", "scraper": "m"}, cost=10)
    with open(cfg, "w") as f:
        f.write(f'[auth]\nscheme = "htpasswd"\nhtpasswd_path = "{path}"\n'
                '[[access]]\nwho = ["*"]\nrepositories = ["**"]\n'
                'actions = ["pull", "push", "metrics"]\n')
    s = start_ringport("security-ringport-htpasswd", {}, None, config=cfg)
    try:
        host = s.url.split("//", 1)[1]
        scraper = Client(host, auth=("scraper", "m"))

        def verifications():
            body = scraper.request("GET", "/metrics").body.decode()
            m = re.search(r"^ringport_auth_bcrypt_verifications_total (\d+)$", body, re.M)
            return int(m.group(1)) if m else None

        say("security bcrypt: a 50-layer pull with htpasswd credentials")
        Client(host, auth=("pusher", "push-pw")).push_image(
            "bench/fifty", "v1", layers=tuple(b"layer %d " % i * 1024 for i in range(50)))
        before = verifications()
        puller = Client(host, auth=("puller", "pull-pw"))
        requests = 0
        statuses = set()
        for path in ["/v2/", "/v2/bench/fifty/manifests/v1"]:
            resp = puller.request("GET", path)
            statuses.add(resp.status)
            requests += 1
        manifest = puller.get_manifest("bench/fifty", "v1").json()
        for desc in [manifest["config"], *manifest["layers"]]:
            statuses.add(puller.get_blob("bench/fifty", desc["digest"]).status)
            requests += 1
        out["bcrypt"] = {"verifications": verifications() - before, "requests": requests,
                         "statuses": sorted(statuses)}
    finally:
        s.stop()
        shutil.rmtree(d, ignore_errors=True)


def compare_step(args, R, start_ringport, start_distribution, scratch, logdir, say, pick):
    """`start_ringport(name, env, tls_ca, config=None)` and
    `start_distribution(name, extra_yaml, tls_ca, ready_status=200)` return
    started servers; `R.bench` runs one ringport-bench; `pick` keeps one
    run of several."""
    d = tempfile.mkdtemp(prefix="security-pki-", dir=scratch)
    ca, cert, key = make_ca(d)
    out = {"bound": openssl_bound(args, logdir), "runs": {}}
    tls_env = {"REGISTRY_HTTP_TLS_CERTIFICATE": cert, "REGISTRY_HTTP_TLS_KEY": key}
    servers = {}
    try:
        servers["ringport-tls"] = start_ringport("security-ringport-tls", tls_env, ca)
        servers["ringport-plain"] = start_ringport("security-ringport-plain", {}, None)
        servers["distribution-tls"] = start_distribution(
            "security-distribution-tls", f"  tls:\n    certificate: {cert}\n    key: {key}\n", ca)
        for key_, workload, extra in specs(args):
            say(f"security {key_}: {workload} {' '.join(extra)}")
            docs = {k: [] for k in KINDS}
            for r in range(args.rounds):
                for kind in KINDS:
                    s = servers[kind]
                    if not s.alive():
                        raise RuntimeError(f"{kind} died (exit {s.proc.returncode})")
                    more = ["--cacert", ca] if s.ca else []
                    docs[kind].append(R.bench(f"security-{key_}.r{r + 1}", kind, s.url, workload,
                                              [*extra, *more], s.pid))
            out["runs"][key_] = {k: pick(v, args.pick) for k, v in docs.items()}
        out["s_server_cpu_us"] = s_server_reference(args, R, cert, key, ca, logdir)
        for s in servers.values():
            s.stop()
        servers = {}
        token_runs(args, R, start_ringport, start_distribution, scratch, say, pick, out)
        bcrypt_run(start_ringport, scratch, say, out)
    except Exception as e:  # noqa: BLE001 - the table says what failed
        out["error"] = repr(e)
        say(f"  security FAILED: {e!r}")
    finally:
        for s in servers.values():
            s.stop()
        shutil.rmtree(d, ignore_errors=True)
    return out


def rows(res, row, fmt):
    """The `security` rows of bench/compare's table."""
    sec = res.get("security")
    if not sec:
        return
    runs = sec.get("runs", {})

    def res_of(key, kind, field):
        doc = runs.get(key, {}).get(kind)
        return (doc or {}).get("results", {}).get(field)

    def server_cpu_us(key, kind):
        doc = runs.get(key, {}).get(kind)
        return ((doc or {}).get("server") or {}).get("cpu_us_per_op")

    def errors(key):
        n = sum(res_of(key, k, "errors") or 0 for k in KINDS)
        return f"errors: {n}" if n else ""

    def errors_of(key):
        n = sum(res_of(key, k, "errors") or 0 for k in TOKEN_KINDS)
        return f"errors: {n}" if n else ""

    for key, what in (("pull1", "TLS pull 64 MiB, 1 stream"), ("pull4", "TLS pull 64 MiB, 4 streams"),
                      ("push1", "TLS push 64 MiB, 1 stream")):
        tls, plain, dist = (res_of(key, k, "bytes_per_s") for k in KINDS)
        if tls is None:
            row(f"security: {what}", "failed", fmt(dist and dist / 1e6, " MB/s"), "—",
                "≥ 70% of plain-HTTP ringport", False, sec.get("error", errors(key))[:160])
            continue
        to_plain = tls / plain if plain else None
        to_dist = f"; {tls / dist:.2f}× Distribution over TLS" if dist else ""
        row(f"security: {what} (no kTLS here)", fmt(tls / 1e6, " MB/s"),
            fmt(dist and dist / 1e6, " MB/s (TLS)"),
            f"{to_plain:.0%} of plain ringport ({plain / 1e6:,.0f} MB/s){to_dist}"
            if to_plain else "—",
            "≥ 70% of plain-HTTP ringport in the same run", bool(to_plain and to_plain >= 0.7),
            errors(key))

    tls, plain, dist = (res_of("connect", k, "ops_per_s") for k in KINDS)
    bound = sec.get("bound") or {}
    cpu_tls, cpu_plain = server_cpu_us("connect", "ringport-tls"), server_cpu_us("connect",
                                                                                   "ringport-plain")
    hs_us = cpu_tls - cpu_plain if cpu_tls is not None and cpu_plain is not None else None
    eff = bound.get("handshake_us") / hs_us if hs_us and bound.get("handshake_us") else None
    dist_cpu = server_cpu_us("connect", "distribution-tls")
    ref = sec.get("s_server_cpu_us")
    note = f"openssl s_server (same libssl): {ref:.0f} µs server CPU per connection" if ref else ""
    row("security: new TLS connections/s (ECDSA P-256, X25519, full handshake, 4 clients)",
        f"{fmt(tls, '/s', 0)}; server {fmt(cpu_tls, ' µs', 0)} CPU each",
        f"{fmt(dist, '/s', 0)}; server {fmt(dist_cpu, ' µs', 0)} CPU each",
        (f"{tls / dist:.2f}× Distribution; handshake {fmt(hs_us, ' µs', 0)} server CPU = "
         f"{eff:.0%} of openssl speed's {bound['handshake_us']:.0f} µs")
        if tls and dist and eff else "—",
        "≥ Distribution, and ≥ 80% of `openssl speed ecdsap256 ecdhx25519` on the same cores",
        bool(tls and dist and tls >= dist and eff and eff >= 0.8),
        "; ".join(x for x in (errors("connect"), note) if x))

    tok, dist, anon = (res_of("mget-token", k, "ops_per_s") for k in TOKEN_KINDS)
    cpu_tok = server_cpu_us("mget-token", "ringport-token")
    cpu_anon = server_cpu_us("mget-token", "ringport-anonymous")
    cpu_ratio = cpu_tok / cpu_anon if cpu_tok and cpu_anon else None
    row("security: manifest GET with a bearer token (8 clients)",
        f"{fmt(tok, '/s', 0)}; server {fmt(cpu_tok, ' µs', 1)} CPU each",
        fmt(dist, "/s (token auth)", 0),
        (f"{tok / dist:.1f}× Distribution; server CPU {cpu_ratio:.2f}× anonymous "
         f"({fmt(anon, '/s', 0)}, {fmt(cpu_anon, ' µs', 1)} each)")
        if tok and dist and cpu_ratio else "—",
        "≥ 30× Distribution with token auth; server CPU ≤ 2× anonymous",
        bool(tok and dist and tok >= 30 * dist and cpu_ratio and cpu_ratio <= 2),
        "; ".join(x for x in (errors_of("mget-token"), sec.get("error", "")) if x))

    b = sec.get("bcrypt") or {}
    row("security: a 50-layer pull with htpasswd credentials",
        f"{b['verifications']} bcrypt verification(s) for {b['requests']} requests "
        f"(statuses {b['statuses']})" if b else "failed",
        "— (no counter)", "—", "exactly 1 bcrypt verification",
        bool(b) and b["verifications"] == 1 and b["statuses"] == [200])
