// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "util/result.hh"

namespace rp::storage {

enum class Algorithm : std::uint8_t { sha256, sha512 };

// A validated content digest "<alg>:<lowercase hex>". Only sha256 and sha512
// are accepted; the OCI grammar allows others, which we refuse as unsupported.
class Digest {
  public:
    Digest() = default;
    // Parses and validates. Errc::invalid for a malformed string,
    // Errc::unsupported for a well-formed digest with an unknown algorithm.
    static util::Result<Digest> parse(std::string_view s);
    static Digest from_raw(Algorithm alg, const unsigned char* bytes);

    Algorithm algorithm() const noexcept { return alg_; }
    std::string_view algorithm_name() const noexcept;
    std::string_view hex() const noexcept;
    const std::string& str() const noexcept { return s_; }
    bool empty() const noexcept { return s_.empty(); }
    bool operator==(const Digest& o) const noexcept { return s_ == o.s_; }
    bool operator<(const Digest& o) const noexcept { return s_ < o.s_; }

  private:
    Algorithm alg_ = Algorithm::sha256;
    std::string s_;
};

struct DigestHash {
    std::size_t operator()(const Digest& d) const noexcept;
    std::size_t operator()(std::string_view s) const noexcept;
};

std::size_t digest_hex_len(Algorithm a) noexcept;
std::string_view algorithm_name(Algorithm a) noexcept;

// Incremental hashing with OpenSSL EVP. Copyable state (EVP_MD_CTX_copy_ex)
// so a digest can be peeked without ending the stream.
class Hasher {
  public:
    explicit Hasher(Algorithm a = Algorithm::sha256);
    ~Hasher();
    Hasher(const Hasher&) = delete;
    Hasher& operator=(const Hasher&) = delete;
    Hasher(Hasher&& o) noexcept;
    Hasher& operator=(Hasher&& o) noexcept;

    void update(const void* data, std::size_t len) noexcept;
    // The digest of everything so far; the hasher can keep going.
    Digest peek() const;
    Algorithm algorithm() const noexcept { return alg_; }
    void reset();

  private:
    Algorithm alg_;
    EVP_MD_CTX* ctx_ = nullptr;
};

Digest digest_of(Algorithm a, std::string_view bytes);

} // namespace rp::storage
