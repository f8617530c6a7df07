// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace rp::auth {

// bcrypt (Provos and Mazières, 1999) as htpasswd files hold it:
// "$2y$" / "$2b$" / "$2a$", a two-digit cost, 22 characters of salt and 31
// of hash. Only these prefixes exist here; $2x$ (the old sign bug) does not.

// True when `hash` is a well-formed bcrypt hash this code checks.
bool is_bcrypt(std::string_view hash) noexcept;
// Checks `password` against `hash` (slow on purpose: 2^cost rounds). False
// for a malformed hash. The comparison is constant-time.
bool bcrypt_verify(std::string_view password, std::string_view hash);
// A new "$2y$" hash of `password` with a random salt; nullopt if the cost is
// outside 4..31 or the system has no randomness.
std::optional<std::string> bcrypt_hash(std::string_view password, int cost);
// The hash of `password` with an explicit 16-byte salt (for tests).
std::string bcrypt_with_salt(std::string_view password, int cost, std::string_view prefix,
                             const unsigned char salt[16]);

} // namespace rp::auth
