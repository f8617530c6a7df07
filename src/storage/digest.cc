// SPDX-License-Identifier: Apache-2.0
#include "storage/digest.hh"

#include <xxhash.h>

#include <utility>

#include "util/assert.hh"
#include "util/strings.hh"

namespace rp::storage {

using util::Errc;
using util::Error;

std::size_t digest_hex_len(Algorithm a) noexcept { return a == Algorithm::sha256 ? 64 : 128; }

std::string_view algorithm_name(Algorithm a) noexcept {
    return a == Algorithm::sha256 ? "sha256" : "sha512";
}

std::string_view Digest::algorithm_name() const noexcept { return storage::algorithm_name(alg_); }

std::string_view Digest::hex() const noexcept {
    std::string_view v = s_;
    auto c = v.find(':');
    return c == std::string_view::npos ? std::string_view{} : v.substr(c + 1);
}

static bool alg_component_char(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool alg_separator(char c) noexcept { return c == '+' || c == '.' || c == '_' || c == '-'; }

// OCI: algorithm ::= component (separator component)*, component ::= [a-z0-9]+
static bool valid_algorithm(std::string_view a) noexcept {
    if (a.empty() || !alg_component_char(a.front()) || !alg_component_char(a.back())) {
        return false;
    }
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (alg_component_char(a[i])) {
            continue;
        }
        if (!alg_separator(a[i]) || !alg_component_char(a[i + 1])) {
            return false;
        }
    }
    return true;
}

// OCI: encoded ::= [a-zA-Z0-9=_-]+
static bool valid_encoded(std::string_view e) noexcept {
    if (e.empty()) {
        return false;
    }
    for (char c : e) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '=' || c == '_' || c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

util::Result<Digest> Digest::parse(std::string_view s) {
    if (s.size() > 256) {
        return Error::of(Errc::invalid, "digest too long");
    }
    auto colon = s.find(':');
    if (colon == std::string_view::npos) {
        return Error::of(Errc::invalid, "digest has no algorithm");
    }
    std::string_view alg = s.substr(0, colon);
    std::string_view enc = s.substr(colon + 1);
    if (!valid_algorithm(alg) || !valid_encoded(enc)) {
        return Error::of(Errc::invalid, "malformed digest");
    }
    Digest d;
    if (alg == "sha256") {
        d.alg_ = Algorithm::sha256;
    } else if (alg == "sha512") {
        d.alg_ = Algorithm::sha512;
    } else {
        return Error::of(Errc::unsupported, "unsupported digest algorithm");
    }
    if (enc.size() != digest_hex_len(d.alg_) || !util::is_lower_hex(enc)) {
        return Error::of(Errc::invalid, "digest hex has the wrong length or case");
    }
    d.s_ = std::string(s);
    return d;
}

Digest Digest::from_raw(Algorithm alg, const unsigned char* bytes) {
    static constexpr char hexchars[] = "0123456789abcdef";
    Digest d;
    d.alg_ = alg;
    std::size_t n = digest_hex_len(alg) / 2;
    d.s_.reserve(7 + 2 * n);
    d.s_ = storage::algorithm_name(alg);
    d.s_.push_back(':');
    for (std::size_t i = 0; i < n; ++i) {
        d.s_.push_back(hexchars[bytes[i] >> 4]);
        d.s_.push_back(hexchars[bytes[i] & 15]);
    }
    return d;
}

std::size_t DigestHash::operator()(const Digest& d) const noexcept {
    return static_cast<std::size_t>(XXH3_64bits(d.str().data(), d.str().size()));
}

std::size_t DigestHash::operator()(std::string_view s) const noexcept {
    return static_cast<std::size_t>(XXH3_64bits(s.data(), s.size()));
}

static const EVP_MD* md_of(Algorithm a) {
    return a == Algorithm::sha256 ? EVP_sha256() : EVP_sha512();
}

Hasher::Hasher(Algorithm a) : alg_(a), ctx_(EVP_MD_CTX_new()) {
    RP_ASSERT(ctx_ != nullptr);
    RP_ASSERT(EVP_DigestInit_ex(ctx_, md_of(a), nullptr) == 1);
}

Hasher::~Hasher() {
    if (ctx_ != nullptr) {
        EVP_MD_CTX_free(ctx_);
    }
}

Hasher::Hasher(Hasher&& o) noexcept : alg_(o.alg_), ctx_(std::exchange(o.ctx_, nullptr)) {}

Hasher& Hasher::operator=(Hasher&& o) noexcept {
    if (this != &o) {
        if (ctx_ != nullptr) {
            EVP_MD_CTX_free(ctx_);
        }
        alg_ = o.alg_;
        ctx_ = std::exchange(o.ctx_, nullptr);
    }
    return *this;
}

void Hasher::update(const void* data, std::size_t len) noexcept {
    RP_ASSERT(EVP_DigestUpdate(ctx_, data, len) == 1);
}

Digest Hasher::peek() const {
    EVP_MD_CTX* copy = EVP_MD_CTX_new();
    RP_ASSERT(copy != nullptr);
    RP_ASSERT(EVP_MD_CTX_copy_ex(copy, ctx_) == 1);
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    RP_ASSERT(EVP_DigestFinal_ex(copy, out, &n) == 1);
    EVP_MD_CTX_free(copy);
    RP_ASSERT(n * 2 == digest_hex_len(alg_));
    return Digest::from_raw(alg_, out);
}

void Hasher::reset() { RP_ASSERT(EVP_DigestInit_ex(ctx_, md_of(alg_), nullptr) == 1); }

Digest digest_of(Algorithm a, std::string_view bytes) {
    Hasher h(a);
    h.update(bytes.data(), bytes.size());
    return h.peek();
}

} // namespace rp::storage
