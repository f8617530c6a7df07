// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.hh"

using EVP_PKEY = struct evp_pkey_st;

namespace rp::auth {

// JSON Web Tokens as the Docker registry token protocol uses them (JWS
// compact serialisation), verified and signed with OpenSSL.

struct PkeyFree {
    void operator()(EVP_PKEY* k) const noexcept;
};
using Pkey = std::shared_ptr<EVP_PKEY>;
Pkey adopt(EVP_PKEY* k); // takes ownership (null stays null)

// The algorithms accepted: an explicit list. `none` and the HMAC family
// are never accepted, so a public key can never serve as an HMAC secret.
enum class Alg { rs256, rs384, rs512, ps256, ps384, ps512, es256, es384, eddsa };
std::optional<Alg> alg_from_name(std::string_view name) noexcept;
const char* alg_name(Alg a) noexcept;
// Whether `key` is the kind `alg` needs (RSA for RS/PS, P-256 for ES256,
// P-384 for ES384, Ed25519 for EdDSA): a key is used only for its own kind.
bool key_fits(Alg alg, EVP_PKEY* key) noexcept;

std::string base64url_encode(std::string_view in);
std::optional<std::string> base64url_decode(std::string_view in);

// A token split into its parts, the header and payload decoded.
struct Jws {
    std::string header_json;
    std::string payload_json;
    std::string signature;          // raw bytes
    std::string_view signed_part;   // "header.payload" of the input (borrows it)
    std::string_view signature_b64; // the third part as sent (borrows it)
};
// Splits and decodes; nullopt when it is not three base64url parts.
std::optional<Jws> split_jws(std::string_view token);

// Verifies `sig` over `data` with `key` for `alg` (ECDSA signatures are the
// JOSE form, r || s). False on any mismatch or wrong key kind.
bool verify_signature(Alg alg, EVP_PKEY* key, std::string_view data, std::string_view sig);
// Signs `data` (ECDSA results in the JOSE form); empty on failure.
std::string sign(Alg alg, EVP_PKEY* key, std::string_view data);
// The algorithm a key signs with here: ES256/ES384 by curve, RS256, EdDSA.
std::optional<Alg> alg_for_key(EVP_PKEY* key) noexcept;

// The key ID the Docker token protocol uses (libtrust's): the SHA-256 of
// the DER public key, first 240 bits, base32, in groups of four.
std::string libtrust_key_id(EVP_PKEY* key);

// Keys from PEM files: certificates (a bundle), a private key.
util::Result<std::vector<Pkey>> load_cert_keys(const std::string& pem_path);
util::Result<Pkey> load_private_key(const std::string& pem_path);
// A JWKS document's keys, with their kid ("" when absent).
struct NamedKey {
    std::string kid;
    Pkey key;
};
util::Result<std::vector<NamedKey>> parse_jwks(std::string_view json);

} // namespace rp::auth
