// SPDX-License-Identifier: Apache-2.0
#include "auth/jwt.hh"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <simdjson.h>

#include <cstring>

namespace rp::auth {

using util::Errc;
using util::Error;
using util::Result;

void PkeyFree::operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }

Pkey adopt(EVP_PKEY* k) { return Pkey(k, PkeyFree{}); }

namespace {

struct MdCtxFree {
    void operator()(EVP_MD_CTX* c) const noexcept { EVP_MD_CTX_free(c); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

const EVP_MD* digest_of(Alg a) noexcept {
    switch (a) {
    case Alg::rs256:
    case Alg::ps256:
    case Alg::es256: return EVP_sha256();
    case Alg::rs384:
    case Alg::ps384:
    case Alg::es384: return EVP_sha384();
    case Alg::rs512:
    case Alg::ps512: return EVP_sha512();
    case Alg::eddsa: return nullptr; // Ed25519 hashes internally
    }
    return nullptr;
}

bool is_rsa(Alg a) noexcept { return a <= Alg::ps512; }
bool is_pss(Alg a) noexcept { return a == Alg::ps256 || a == Alg::ps384 || a == Alg::ps512; }
bool is_ec(Alg a) noexcept { return a == Alg::es256 || a == Alg::es384; }
std::size_t ec_size(Alg a) noexcept { return a == Alg::es256 ? 32 : 48; }

std::string group_of(EVP_PKEY* key) {
    char name[64] = {};
    std::size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof name, &len) !=
        1) {
        return {};
    }
    return std::string(name, len);
}

std::string openssl_error() {
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0) {
        return "no detail from OpenSSL";
    }
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

} // namespace

std::optional<Alg> alg_from_name(std::string_view n) noexcept {
    static constexpr std::pair<std::string_view, Alg> table[] = {
        {"RS256", Alg::rs256}, {"RS384", Alg::rs384}, {"RS512", Alg::rs512},
        {"PS256", Alg::ps256}, {"PS384", Alg::ps384}, {"PS512", Alg::ps512},
        {"ES256", Alg::es256}, {"ES384", Alg::es384}, {"EdDSA", Alg::eddsa}};
    for (const auto& [name, alg] : table) {
        if (n == name) {
            return alg;
        }
    }
    return std::nullopt;
}

const char* alg_name(Alg a) noexcept {
    static constexpr const char* names[] = {"RS256", "RS384", "RS512", "PS256", "PS384",
                                            "PS512", "ES256", "ES384", "EdDSA"};
    return names[static_cast<int>(a)];
}

bool key_fits(Alg alg, EVP_PKEY* key) noexcept {
    if (key == nullptr) {
        return false;
    }
    const int id = EVP_PKEY_get_base_id(key);
    if (is_rsa(alg)) {
        return (id == EVP_PKEY_RSA || id == EVP_PKEY_RSA_PSS) && EVP_PKEY_get_bits(key) >= 2048;
    }
    if (is_ec(alg)) {
        if (id != EVP_PKEY_EC) {
            return false;
        }
        std::string g = group_of(key);
        return alg == Alg::es256 ? g == "prime256v1" || g == "P-256"
                                 : g == "secp384r1" || g == "P-384";
    }
    return id == EVP_PKEY_ED25519;
}

std::optional<Alg> alg_for_key(EVP_PKEY* key) noexcept {
    for (Alg a : {Alg::es256, Alg::es384, Alg::eddsa, Alg::rs256}) {
        if (key_fits(a, key)) {
            return a;
        }
    }
    return std::nullopt;
}

std::string base64url_encode(std::string_view in) {
    std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(in.data()),
                            static_cast<int>(in.size()));
    out.resize(static_cast<std::size_t>(n));
    while (!out.empty() && out.back() == '=') {
        out.pop_back();
    }
    for (char& c : out) {
        c = c == '+' ? '-' : (c == '/' ? '_' : c);
    }
    return out;
}

std::optional<std::string> base64url_decode(std::string_view in) {
    if (in.size() % 4 == 1 || in.size() > (1u << 20)) {
        return std::nullopt;
    }
    std::string s(in);
    for (char& c : s) {
        if (c == '-') {
            c = '+';
        } else if (c == '_') {
            c = '/';
        } else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
            return std::nullopt; // padding, '+' or '/' are not base64url
        }
    }
    std::size_t pad = (4 - s.size() % 4) % 4;
    s.append(pad, '=');
    std::string out(s.size() / 4 * 3, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(s.data()),
                            static_cast<int>(s.size()));
    if (n < 0) {
        return std::nullopt;
    }
    out.resize(static_cast<std::size_t>(n) - pad);
    return out;
}

std::optional<Jws> split_jws(std::string_view token) {
    std::size_t a = token.find('.');
    std::size_t b = a == std::string_view::npos ? a : token.find('.', a + 1);
    if (b == std::string_view::npos || token.find('.', b + 1) != std::string_view::npos) {
        return std::nullopt;
    }
    auto h = base64url_decode(token.substr(0, a));
    auto p = base64url_decode(token.substr(a + 1, b - a - 1));
    auto s = base64url_decode(token.substr(b + 1));
    if (!h || !p || !s || h->empty() || p->empty() || s->empty()) {
        return std::nullopt;
    }
    Jws j;
    j.header_json = std::move(*h);
    j.payload_json = std::move(*p);
    j.signature = std::move(*s);
    j.signed_part = token.substr(0, b);
    j.signature_b64 = token.substr(b + 1);
    return j;
}

bool verify_signature(Alg alg, EVP_PKEY* key, std::string_view data, std::string_view sig) {
    if (!key_fits(alg, key)) {
        return false;
    }
    std::string der;
    if (is_ec(alg)) {
        // JOSE's r || s, each the curve's size: to the DER OpenSSL checks.
        const std::size_t n = ec_size(alg);
        if (sig.size() != 2 * n) {
            return false;
        }
        ECDSA_SIG* es = ECDSA_SIG_new();
        BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()),
                              static_cast<int>(n), nullptr);
        BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()) + n,
                              static_cast<int>(n), nullptr);
        if (es == nullptr || r == nullptr || s == nullptr || ECDSA_SIG_set0(es, r, s) != 1) {
            BN_free(r);
            BN_free(s);
            ECDSA_SIG_free(es);
            return false;
        }
        unsigned char* out = nullptr;
        int len = i2d_ECDSA_SIG(es, &out);
        ECDSA_SIG_free(es);
        if (len <= 0) {
            return false;
        }
        der.assign(reinterpret_cast<char*>(out), static_cast<std::size_t>(len));
        OPENSSL_free(out);
        sig = der;
    }
    MdCtx ctx(EVP_MD_CTX_new());
    EVP_PKEY_CTX* pctx = nullptr;
    if (!ctx || EVP_DigestVerifyInit(ctx.get(), &pctx, digest_of(alg), nullptr, key) != 1) {
        ERR_clear_error();
        return false;
    }
    if (is_rsa(alg)) {
        int pad = is_pss(alg) ? RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING;
        if (EVP_PKEY_CTX_set_rsa_padding(pctx, pad) != 1 ||
            (is_pss(alg) && EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1)) {
            ERR_clear_error();
            return false;
        }
    }
    int rc =
        EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                         reinterpret_cast<const unsigned char*>(data.data()), data.size());
    ERR_clear_error();
    return rc == 1;
}

std::string sign(Alg alg, EVP_PKEY* key, std::string_view data) {
    if (!key_fits(alg, key)) {
        return {};
    }
    MdCtx ctx(EVP_MD_CTX_new());
    EVP_PKEY_CTX* pctx = nullptr;
    if (!ctx || EVP_DigestSignInit(ctx.get(), &pctx, digest_of(alg), nullptr, key) != 1) {
        ERR_clear_error();
        return {};
    }
    if (is_pss(alg) && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
                        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1)) {
        ERR_clear_error();
        return {};
    }
    std::size_t len = 0;
    const auto* in = reinterpret_cast<const unsigned char*>(data.data());
    if (EVP_DigestSign(ctx.get(), nullptr, &len, in, data.size()) != 1) {
        ERR_clear_error();
        return {};
    }
    std::string out(len, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len, in,
                       data.size()) != 1) {
        ERR_clear_error();
        return {};
    }
    out.resize(len);
    if (!is_ec(alg)) {
        return out;
    }
    // DER to JOSE's fixed-size r || s.
    const auto* p = reinterpret_cast<const unsigned char*>(out.data());
    ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(out.size()));
    if (es == nullptr) {
        return {};
    }
    const std::size_t n = ec_size(alg);
    std::string jose(2 * n, '\0');
    const BIGNUM* r = ECDSA_SIG_get0_r(es);
    const BIGNUM* s = ECDSA_SIG_get0_s(es);
    bool ok = BN_bn2binpad(r, reinterpret_cast<unsigned char*>(jose.data()), static_cast<int>(n)) ==
                  static_cast<int>(n) &&
              BN_bn2binpad(s, reinterpret_cast<unsigned char*>(jose.data()) + n,
                           static_cast<int>(n)) == static_cast<int>(n);
    ECDSA_SIG_free(es);
    return ok ? jose : std::string();
}

std::string libtrust_key_id(EVP_PKEY* key) {
    unsigned char* der = nullptr;
    int len = i2d_PUBKEY(key, &der);
    if (len <= 0) {
        return {};
    }
    unsigned char hash[32];
    unsigned int hlen = 0;
    bool ok =
        EVP_Digest(der, static_cast<std::size_t>(len), hash, &hlen, EVP_sha256(), nullptr) == 1;
    OPENSSL_free(der);
    if (!ok) {
        return {};
    }
    // base32 (RFC 4648) of the first 30 bytes: 48 characters, 12 groups.
    static constexpr char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    std::string s;
    for (int i = 0; i < 30; i += 5) {
        std::uint64_t v = 0;
        for (int k = 0; k < 5; ++k) {
            v = (v << 8) | hash[i + k];
        }
        for (int k = 7; k >= 0; --k) {
            s += b32[(v >> (5 * k)) & 31];
        }
    }
    std::string out;
    for (std::size_t i = 0; i < s.size(); i += 4) {
        out.append(out.empty() ? "" : ":").append(s, i, 4);
    }
    return out;
}

Result<std::vector<Pkey>> load_cert_keys(const std::string& pem_path) {
    BIO* b = BIO_new_file(pem_path.c_str(), "r");
    if (b == nullptr) {
        ERR_clear_error();
        return Error::sys(errno, pem_path);
    }
    std::vector<Pkey> keys;
    for (int i = 0; i < 10000; ++i) {
        X509* cert = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
        if (cert == nullptr) {
            break;
        }
        keys.push_back(adopt(X509_get_pubkey(cert)));
        X509_free(cert);
    }
    ERR_clear_error();
    BIO_free(b);
    if (keys.empty()) {
        return Error::of(Errc::invalid, pem_path + ": no PEM certificate in it");
    }
    return keys;
}

Result<Pkey> load_private_key(const std::string& pem_path) {
    BIO* b = BIO_new_file(pem_path.c_str(), "r");
    if (b == nullptr) {
        ERR_clear_error();
        return Error::sys(errno, pem_path);
    }
    EVP_PKEY* k = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    if (k == nullptr) {
        return Error::of(Errc::invalid, pem_path + ": not a PEM private key: " + openssl_error());
    }
    Pkey key = adopt(k);
    if (!alg_for_key(key.get())) {
        return Error::of(Errc::invalid,
                         pem_path + ": the key must be ECDSA P-256 or P-384, Ed25519, or RSA "
                                    "of 2048 bits or more");
    }
    return key;
}

namespace {

// A public key from OpenSSL parameters built by `push` (which must keep
// what it pushes alive until this returns).
template <typename Push> Pkey key_from_params(const char* type, Push push) {
    OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
    EVP_PKEY* key = nullptr;
    if (bld != nullptr && push(bld)) {
        OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
        EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr);
        if (params == nullptr || ctx == nullptr || EVP_PKEY_fromdata_init(ctx) != 1 ||
            EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1) {
            key = nullptr;
        }
        EVP_PKEY_CTX_free(ctx);
        OSSL_PARAM_free(params);
    }
    OSSL_PARAM_BLD_free(bld);
    ERR_clear_error();
    return adopt(key);
}

Pkey rsa_key(const std::string& n_bytes, const std::string& e_bytes) {
    BIGNUM* n = BN_bin2bn(reinterpret_cast<const unsigned char*>(n_bytes.data()),
                          static_cast<int>(n_bytes.size()), nullptr);
    BIGNUM* e = BN_bin2bn(reinterpret_cast<const unsigned char*>(e_bytes.data()),
                          static_cast<int>(e_bytes.size()), nullptr);
    Pkey key = key_from_params("RSA", [&](OSSL_PARAM_BLD* bld) {
        return n != nullptr && e != nullptr &&
               OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) == 1 &&
               OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) == 1;
    });
    BN_free(n);
    BN_free(e);
    return key;
}

Pkey ec_key(const char* group, const std::string& point) {
    return key_from_params("EC", [&](OSSL_PARAM_BLD* bld) {
        return OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) == 1 &&
               OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                                point.size()) == 1;
    });
}

std::optional<std::string> b64_field(simdjson::dom::object o, const char* name) {
    std::string_view v;
    if (o[name].get_string().get(v) != simdjson::SUCCESS) {
        return std::nullopt;
    }
    return base64url_decode(v);
}

Pkey jwk_key(simdjson::dom::object o) {
    std::string_view kty;
    std::string_view crv;
    if (o["kty"].get_string().get(kty) != simdjson::SUCCESS) {
        return nullptr;
    }
    (void)o["crv"].get_string().get(crv);
    if (kty == "OKP") {
        auto x = b64_field(o, "x");
        if (crv != "Ed25519" || !x || x->size() != 32) {
            return nullptr;
        }
        return adopt(EVP_PKEY_new_raw_public_key(
            EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(x->data()), 32));
    }
    if (kty == "RSA") {
        auto n = b64_field(o, "n");
        auto e = b64_field(o, "e");
        return n && e && !n->empty() && !e->empty() ? rsa_key(*n, *e) : nullptr;
    }
    if (kty == "EC") {
        auto x = b64_field(o, "x");
        auto y = b64_field(o, "y");
        const char* group = crv == "P-256" ? "prime256v1" : crv == "P-384" ? "secp384r1" : nullptr;
        const std::size_t size = crv == "P-256" ? 32 : 48;
        if (group == nullptr || !x || !y || x->size() != size || y->size() != size) {
            return nullptr;
        }
        return ec_key(group, std::string(1, '\x04') + *x + *y);
    }
    return nullptr;
}

} // namespace

Result<std::vector<NamedKey>> parse_jwks(std::string_view json) {
    simdjson::dom::parser parser;
    simdjson::padded_string padded(json);
    simdjson::dom::element doc;
    simdjson::dom::array keys;
    if (parser.parse(padded).get(doc) != simdjson::SUCCESS ||
        doc["keys"].get_array().get(keys) != simdjson::SUCCESS) {
        return Error::of(Errc::invalid, "not a JWKS document ({\"keys\": [...]})");
    }
    std::vector<NamedKey> out;
    std::size_t i = 0;
    for (simdjson::dom::element k : keys) {
        simdjson::dom::object o;
        if (k.get_object().get(o) != simdjson::SUCCESS) {
            return Error::of(Errc::invalid, "keys[" + std::to_string(i) + "] is not an object");
        }
        Pkey key = jwk_key(o);
        if (!key || !alg_for_key(key.get())) {
            return Error::of(Errc::invalid,
                             "keys[" + std::to_string(i) +
                                 "]: not an RSA (2048 bits or more), EC P-256/P-384 or Ed25519 "
                                 "public key");
        }
        std::string_view kid;
        (void)o["kid"].get_string().get(kid);
        out.push_back(NamedKey{std::string(kid), std::move(key)});
        ++i;
    }
    return out;
}

} // namespace rp::auth
