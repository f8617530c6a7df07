// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "auth/access.hh"
#include "auth/htpasswd.hh"
#include "auth/secret.hh"
#include "reactor/sync.hh"
#include "reactor/task.hh"

namespace rp::auth {

struct BasicConfig {
    int cache_ttl_s = 60;              // a good check is remembered this long
    std::size_t cache_max = 10000;     // checks remembered at once
    unsigned failures_per_minute = 10; // per client address, then 429
};

// The user and password of an `Authorization: Basic ...` value, or why it
// is not one ("" and nullopt user: no Basic credentials at all).
struct BasicCredentials {
    std::string user;
    std::string password;
};
enum class HeaderKind { none, basic, bearer, malformed };
HeaderKind authorization_kind(std::string_view header) noexcept;
std::optional<BasicCredentials> parse_basic(std::string_view header);
// The address part of "host:port" / "[v6]:port" (what failures count against).
std::string_view client_address(std::string_view peer) noexcept;

// Checks Basic credentials against an htpasswd file. bcrypt is slow on
// purpose, so it runs on the runtime's worker pool, never on a shard; a
// good check is cached (keyed by a keyed hash of user and password, never
// the password) with one verification in flight per key, so a 50-layer pull
// pays one bcrypt. Failures are rate-limited per client address.
// Process-wide and thread-safe: every shard uses the one instance.
class BasicAuthenticator {
  public:
    enum class Outcome { ok, bad_credentials, rate_limited };
    struct Result {
        Outcome outcome = Outcome::bad_credentials;
        std::string user;
        int retry_after_s = 0;
    };

    BasicAuthenticator(std::unique_ptr<HtpasswdFile> file, BasicConfig cfg,
                       reactor::ThreadPool& pool);
    reactor::Task<Result> check(BasicCredentials cred, std::string peer);
    // Whether the file still names this user (a refresh token's subject).
    bool knows(std::string_view user) { return file_->hash_of(user).has_value(); }
    // The user's password hash as the file has it now (a UI session keeps
    // it: a changed password or a removed user ends the session).
    std::optional<std::string> hash_of(std::string_view user) { return file_->hash_of(user); }
    std::uint64_t verifications() const noexcept {
        return verifications_.load(std::memory_order_relaxed);
    }
    std::uint64_t failures() const noexcept { return failures_.load(std::memory_order_relaxed); }
    std::uint64_t rate_limited() const noexcept {
        return rate_limited_.load(std::memory_order_relaxed);
    }

  private:
    static constexpr int kVerifyingMax = 64;
    using Key = std::array<unsigned char, 32>;
    struct KeyHash {
        std::size_t operator()(const Key& k) const noexcept;
    };
    struct Good {
        std::string hash; // what the password was checked against (a changed file misses)
        std::int64_t expires_s = 0;
    };
    struct Flight {
        reactor::Latch done;
        bool ok = false;
    };
    struct Bucket {
        double tokens = 0;
        std::int64_t at_ms = 0;
    };

    // Takes one attempt from `addr`'s bucket; false (and how long to wait)
    // when it is empty. A good check gives the attempt back.
    bool take_attempt(std::string_view addr, int& retry_after_s);
    void give_back(std::string_view addr);
    const std::string& dummy_hash(int cost);
    void remember(const Key& k, const std::string& hash);

    std::unique_ptr<HtpasswdFile> file_;
    BasicConfig cfg_;
    reactor::ThreadPool& pool_;
    KeyedHash keyed_;
    std::map<int, std::string> dummy_hashes_; // by cost: unknown users cost as much as known ones
    std::atomic<int> verifying_{0};           // bcrypts running or queued

    std::mutex mu_;
    std::unordered_map<Key, Good, KeyHash> good_;
    std::unordered_map<Key, std::shared_ptr<Flight>, KeyHash> flights_;
    std::unordered_map<std::string, Bucket> buckets_;

    std::atomic<std::uint64_t> verifications_{0};
    std::atomic<std::uint64_t> failures_{0};
    std::atomic<std::uint64_t> rate_limited_{0};
};

} // namespace rp::auth
