// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace rp::auth {

// Compares two secrets (or values derived from them) in time that depends
// only on their lengths, with OpenSSL's CRYPTO_memcmp. Every comparison of
// a password hash, token signature or key in this module goes through it.
bool secret_equal(std::string_view a, std::string_view b) noexcept;

// A keyed hash (HMAC-SHA256 under a key drawn at startup and never stored):
// lets a cache remember that credentials were good without keeping them.
class KeyedHash {
  public:
    KeyedHash();
    ~KeyedHash();
    KeyedHash(const KeyedHash&) = delete;
    KeyedHash& operator=(const KeyedHash&) = delete;
    std::array<unsigned char, 32> operator()(std::string_view a, std::string_view b) const;

  private:
    unsigned char key_[32];
};

} // namespace rp::auth
