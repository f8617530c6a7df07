# SPDX-License-Identifier: Apache-2.0
"""Tokens for the token-auth tests, signed with the openssl CLI (Debian's
`openssl`): keys of every kind the registry accepts (ECDSA P-256 and
P-384, RSA, Ed25519), self-signed certificates for a root bundle, an x5c
chain from a test CA, a JWKS file, and tokens with any header, claims and
algorithm, including the forged ones the tests throw at the registry."""
import base64
import hashlib
import hmac
import json
import os
import subprocess
import time


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _run(*args, input=None):
    return subprocess.run(["openssl", *args], input=input, capture_output=True, check=True,
                          timeout=60).stdout


def der_to_raw(sig, size):
    """An ECDSA DER signature as JOSE's r || s."""
    assert sig[0] == 0x30
    i = 2 if sig[1] < 0x80 else 2 + (sig[1] & 0x7F)
    out = b""
    for _ in range(2):
        assert sig[i] == 0x02
        n = sig[i + 1]
        out += sig[i + 2:i + 2 + n].lstrip(b"\0").rjust(size, b"\0")
        i += 2 + n
    return out


def libtrust_kid(pub_der):
    """The Docker token protocol's key id of a DER SubjectPublicKeyInfo."""
    s = base64.b32encode(hashlib.sha256(pub_der).digest()[:30]).decode()
    return ":".join(s[i:i + 4] for i in range(0, len(s), 4))


class Minter:
    KINDS = {"ec256": ("ES256", "sha256"), "ec384": ("ES384", "sha384"),
             "rsa": ("RS256", "sha256"), "ed25519": ("EdDSA", None)}

    def __init__(self, directory, issuer="test-issuer", service="registry.test"):
        self.dir, self.issuer, self.service = directory, issuer, service
        self.keys, self.certs, self.kids = {}, {}, {}
        for kind in self.KINDS:
            key = os.path.join(directory, f"{kind}.key")
            if kind == "ec256":
                _run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key)
            elif kind == "ec384":
                _run("ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out", key)
            elif kind == "rsa":
                _run("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                     "-out", key)
            else:
                _run("genpkey", "-algorithm", "ed25519", "-out", key)
            cert = os.path.join(directory, f"{kind}.pem")
            _run("req", "-x509", "-new", "-key", key, "-days", "1", "-subj",
                 f"/CN=token signer {kind}", "-out", cert)
            self.keys[kind], self.certs[kind] = key, cert
            self.kids[kind] = libtrust_kid(_run("pkey", "-in", key, "-pubout", "-outform", "DER"))
        # The root bundle: every signer's certificate, and a CA for x5c chains.
        self.ca_key = os.path.join(directory, "x5c-ca.key")
        self.ca = os.path.join(directory, "x5c-ca.pem")
        _run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", self.ca_key)
        _run("req", "-x509", "-new", "-key", self.ca_key, "-days", "1", "-subj",
             "/CN=token CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign", "-out", self.ca)
        self.bundle = os.path.join(directory, "bundle.pem")
        with open(self.bundle, "w") as out:
            for kind in ("ec256", "ec384", "rsa", "ed25519"):
                out.write(open(self.certs[kind]).read())
            out.write(open(self.ca).read())
        self.leaf_key = os.path.join(directory, "leaf.key")
        self.leaf = os.path.join(directory, "leaf.pem")
        _run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", self.leaf_key)
        csr = os.path.join(directory, "leaf.csr")
        _run("req", "-new", "-key", self.leaf_key, "-subj", "/CN=token leaf", "-out", csr)
        _run("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key,
             "-CAcreateserial", "-days", "1", "-out", self.leaf)

    def der(self, pem):
        return _run("x509", "-in", pem, "-outform", "DER")

    def claims(self, access=(), sub="tester", ttl=300, **over):
        now = int(time.time())
        c = {"iss": self.issuer, "sub": sub, "aud": self.service, "exp": now + ttl,
             "nbf": now - 5, "iat": now, "jti": b64url(os.urandom(8)),
             "access": [{"type": t, "name": n, "actions": list(a)} for t, n, a in access]}
        c.update(over)
        return {k: v for k, v in c.items() if v is not None}

    def sign_raw(self, kind, data, alg=None):
        alg = alg or self.KINDS[kind][0]
        key = self.keys[kind] if kind in self.keys else kind
        if alg.startswith("ES"):
            digest = "sha256" if alg == "ES256" else "sha384"
            der = _run("dgst", f"-{digest}", "-sign", key, input=data)
            return der_to_raw(der, 32 if alg == "ES256" else 48)
        if alg.startswith("RS"):
            return _run("dgst", "-sha" + alg[2:], "-sign", key, input=data)
        if alg.startswith("PS"):
            return _run("dgst", "-sha" + alg[2:], "-sign", key, "-sigopt",
                        "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest", input=data)
        if alg == "EdDSA":
            path = os.path.join(self.dir, "to-sign")
            with open(path, "wb") as f:
                f.write(data)
            return _run("pkeyutl", "-sign", "-rawin", "-inkey", key, "-in", path)
        raise ValueError(alg)

    def token(self, claims, kind="ec256", alg=None, header=None, kid=True, x5c=False):
        alg = alg or self.KINDS[kind][0]
        h = {"alg": alg, "typ": "JWT"}
        if x5c:
            h["x5c"] = [base64.b64encode(self.der(self.leaf)).decode(),
                        base64.b64encode(self.der(self.ca)).decode()]
        elif kid:
            h["kid"] = self.kids[kind]
        h.update(header or {})
        data = (b64url(json.dumps(h).encode()) + "." +
                b64url(json.dumps(claims).encode())).encode()
        key = self.leaf_key if x5c else kind
        return data.decode() + "." + b64url(self.sign_raw(key, data, alg))

    def hs256_with_public_key(self, claims, kind="rsa"):
        """The RSA/HMAC confusion: HS256 keyed with the public key's PEM."""
        pub = _run("pkey", "-in", self.keys[kind], "-pubout")
        h = {"alg": "HS256", "typ": "JWT", "kid": self.kids[kind]}
        data = (b64url(json.dumps(h).encode()) + "." + b64url(json.dumps(claims).encode()))
        sig = hmac.new(pub, data.encode(), hashlib.sha256).digest()
        return data + "." + b64url(sig)

    def unsigned(self, claims):
        h = {"alg": "none", "typ": "JWT"}
        return b64url(json.dumps(h).encode()) + "." + b64url(json.dumps(claims).encode()) + "."

    def jwks(self, path, kinds=("ec256",), kid_prefix="jwks-"):
        """A JWKS file of these keys' public halves; kids are kid_prefix + kind."""
        keys = []
        for kind in kinds:
            text = _run("pkey", "-in", self.keys[kind], "-text_pub", "-noout").decode()
            if kind.startswith("ec"):
                pub = _run("pkey", "-in", self.keys[kind], "-pubout", "-outform", "DER")
                size = 32 if kind == "ec256" else 48
                point = pub[-(2 * size + 1):]
                assert point[0] == 4
                keys.append({"kty": "EC", "crv": "P-256" if kind == "ec256" else "P-384",
                             "x": b64url(point[1:1 + size]), "y": b64url(point[1 + size:]),
                             "kid": kid_prefix + kind})
            elif kind == "ed25519":
                pub = _run("pkey", "-in", self.keys[kind], "-pubout", "-outform", "DER")
                keys.append({"kty": "OKP", "crv": "Ed25519", "x": b64url(pub[-32:]),
                             "kid": kid_prefix + kind})
            else:
                mod = "".join(l.strip() for l in text.split("Modulus:")[1]
                              .split("Exponent:")[0].splitlines()).replace(":", "")
                n = bytes.fromhex(mod).lstrip(b"\0")
                e = int(text.split("Exponent:")[1].split()[0])
                keys.append({"kty": "RSA", "n": b64url(n),
                             "e": b64url(e.to_bytes((e.bit_length() + 7) // 8, "big")),
                             "kid": kid_prefix + kind})
        with open(path, "w") as f:
            json.dump({"keys": keys}, f)
        return path
