// SPDX-License-Identifier: Apache-2.0
#include "auth/secret.hh"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "util/assert.hh"

namespace rp::auth {

bool secret_equal(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) {
        return false; // lengths are not secret: hashes and signatures have fixed sizes
    }
    return a.empty() || CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

KeyedHash::KeyedHash() { RP_ASSERT(RAND_bytes(key_, sizeof key_) == 1); }

KeyedHash::~KeyedHash() { OPENSSL_cleanse(key_, sizeof key_); }

std::array<unsigned char, 32> KeyedHash::operator()(std::string_view a, std::string_view b) const {
    // HMAC(key, len(a) || a || b): unambiguous whatever the bytes.
    std::array<unsigned char, 32> out{};
    unsigned int n = 0;
    std::string msg = std::to_string(a.size());
    msg.push_back(':');
    msg.append(a);
    msg.append(b);
    RP_ASSERT(HMAC(EVP_sha256(), key_, sizeof key_,
                   reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out.data(),
                   &n) != nullptr &&
              n == out.size());
    OPENSSL_cleanse(msg.data(), msg.size());
    return out;
}

} // namespace rp::auth
