# SPDX-License-Identifier: Apache-2.0
"""A throwaway certificate authority for TLS tests, made with the openssl CLI
(Debian's `openssl` package): a CA and certificates it issues for loopback
names and addresses (servers) or for a common name (clients), ECDSA P-256
unless RSA is asked for, valid for a day."""
import os
import subprocess


def _run(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def _key(path, key_type):
    if key_type == "rsa":
        _run("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path)
    else:
        _run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", path)


def make_ca(directory, names=("localhost",), ips=("127.0.0.1",), key_type="ec",
            cn="ringport test upstream"):
    """Returns (ca.pem, server.pem, server.key) under `directory`."""
    ca_key = os.path.join(directory, "ca.key")
    ca = os.path.join(directory, "ca.pem")
    _run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", ca_key)
    _run("req", "-x509", "-new", "-key", ca_key, "-sha256", "-days", "1",
         "-subj", f"/CN=ringport test CA {os.path.basename(directory)}", "-out", ca)
    cert, key = issue(directory, "server", cn, names=names, ips=ips, key_type=key_type)
    return ca, cert, key


def issue(directory, stem, cn, names=(), ips=(), key_type="ec", client=False):
    """Another certificate from the CA in `directory`: (STEM.pem, STEM.key).
    A server certificate names `names` and `ips`; a client one is for TLS
    client authentication with subject CN=`cn`."""
    ca_key = os.path.join(directory, "ca.key")
    ca = os.path.join(directory, "ca.pem")
    key = os.path.join(directory, f"{stem}.key")
    csr = os.path.join(directory, f"{stem}.csr")
    cert = os.path.join(directory, f"{stem}.pem")
    ext = os.path.join(directory, f"{stem}.ext")
    _key(key, key_type)
    _run("req", "-new", "-key", key, "-subj", f"/CN={cn}", "-out", csr)
    with open(ext, "w") as f:
        if client:
            f.write("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
                    "extendedKeyUsage=clientAuth\n")
        else:
            san = ",".join([f"DNS:{n}" for n in names] + [f"IP:{i}" for i in ips])
            f.write(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n"
                    "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    _run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-days", "1", "-sha256", "-extfile", ext, "-out", cert)
    return cert, key
