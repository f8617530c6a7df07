# SPDX-License-Identifier: Apache-2.0
"""A throwaway certificate authority for TLS tests, made with the openssl CLI
(Debian's `openssl` package): a CA and a server certificate for loopback
names and addresses, ECDSA P-256, valid for a day."""
import os
import subprocess


def _run(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_ca(directory, names=("localhost",), ips=("127.0.0.1",)):
    """Returns (ca.pem, server.pem, server.key) under `directory`."""
    ca_key = os.path.join(directory, "ca.key")
    ca = os.path.join(directory, "ca.pem")
    key = os.path.join(directory, "server.key")
    csr = os.path.join(directory, "server.csr")
    cert = os.path.join(directory, "server.pem")
    ext = os.path.join(directory, "server.ext")
    _run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", ca_key)
    _run("req", "-x509", "-new", "-key", ca_key, "-sha256", "-days", "1",
         "-subj", "/CN=ringport test CA", "-out", ca)
    _run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key)
    _run("req", "-new", "-key", key, "-subj", "/CN=ringport test upstream", "-out", csr)
    san = ",".join([f"DNS:{n}" for n in names] + [f"IP:{i}" for i in ips])
    with open(ext, "w") as f:
        f.write(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
    _run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-days", "1", "-sha256", "-extfile", ext, "-out", cert)
    return ca, cert, key
