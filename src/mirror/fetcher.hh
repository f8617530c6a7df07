// SPDX-License-Identifier: Apache-2.0
#pragma once

// Requests to upstream registries, for the pull-through mirror: the Docker
// token dance (a 401 with a Bearer challenge, a token, a retry), tokens
// cached per upstream and scope, credentials, the upstream's limits; one
// net::Client per shard. What the requests share is flights.hh's.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "mirror/lists.hh"
#include "mirror/realm.hh"
#include "mirror/router.hh"
#include "net/client.hh"
#include "reactor/sync.hh"
#include "reactor/task.hh"
#include "util/result.hh"

namespace rp::mirror {

// A WWW-Authenticate challenge: `Bearer realm="…",service="…",scope="…"`.
struct Challenge {
    std::string scheme; // lowercased: "bearer", "basic"
    std::string realm;
    std::string service;
    std::string scope;
    std::string error; // "insufficient_scope": the token does not reach the repository
};
// Parses the first challenge of the header. Pure.
std::optional<Challenge> parse_challenge(std::string_view header);

// A token endpoint's answer: {"token": …} or {"access_token": …}, with
// "expires_in" in seconds (absent: 60). Pure.
struct TokenAnswer {
    std::string token;
    std::uint64_t expires_in_s = 60;
};
util::Result<TokenAnswer> parse_token_answer(std::string_view json);

struct Fetched {
    std::string body;
    std::string media_type;    // Content-Type, without parameters
    std::string digest_header; // Docker-Content-Digest, if sent
};

class Fetcher {
  public:
    explicit Fetcher(unsigned shards);
    ~Fetcher();
    Fetcher(const Fetcher&) = delete;
    Fetcher& operator=(const Fetcher&) = delete;

    // GET <url>/v2/<name>/manifests/<ref>. Errc::not_found for a 404,
    // Errc::unsupported when the upstream refuses us (401/403 after the
    // token), Errc::closed or Errc::timeout when it cannot be reached or
    // answers 5xx/429 (Errc::busy).
    reactor::Task<util::Result<Fetched>> manifest(const Upstream& u, std::string name,
                                                  std::string ref, std::string accept,
                                                  std::size_t body_max);

    // HEAD <url>/v2/<name>/manifests/<ref>: the Docker-Content-Digest the
    // upstream would serve (empty when it sends none). Errors as manifest().
    reactor::Task<util::Result<std::string>> manifest_digest(const Upstream& u, std::string name,
                                                             std::string ref, std::string accept,
                                                             std::uint32_t deadline_ms = 0);

    // GET <url>/v2/<name>/blobs/<digest>, redirects followed (a CDN gets no
    // Authorization): the download once its status is 200. From a byte
    // offset (`from` > 0, a resumed transfer) it asks for `Range: bytes=from-`
    // and takes a 206 that starts there, or a 200 (the whole blob: the caller
    // skips what it has). Errors as manifest().
    reactor::Task<util::Result<std::unique_ptr<net::Download>>>
    blob(const Upstream& u, std::string name, std::string digest, std::uint64_t body_max,
         std::uint64_t from = 0);

    // GET <url>/v2/<name>/<what>: a tag list or referrers query (`what`
    // carries its query string). Errors as manifest().
    reactor::Task<util::Result<Listed>> listing(const Upstream& u, std::string name,
                                                std::string what, std::string accept,
                                                std::size_t body_max);

    // GET <url>/v2/, bounded by `deadline_ms`: whether the upstream answers
    // (any status but 5xx and 429; a 401 is an answer).
    reactor::Task<bool> ping(const Upstream& u, std::uint32_t deadline_ms);

    // What the upstream said of its limits in its last answers: a
    // Retry-After (on a 429 or 503), and Docker Hub's ratelimit-remaining.
    struct Limits {
        std::uint64_t retry_after_s = 0; // of the last 429/503 that sent one
        std::int64_t remaining = -1;     // -1: never sent
        std::uint64_t remaining_at_us = 0;
    };
    Limits limits(const Upstream& u) const;
    // Whether the upstream's remaining pulls fell below the mirror's
    // ratelimit_min within its retry_after_s: cached tags are then served
    // without revalidation.
    bool rate_limited(const Upstream& u) const;

    // Requests sent upstream so far (token requests included).
    std::uint64_t requests() const noexcept { return requests_.load(std::memory_order_relaxed); }

    // The list that tells a token realm on the upstream's registrable domain
    // (realm.hh); without one, credentials go only to the upstream's own
    // host and its auth_hosts. Set before serving.
    void set_public_suffixes(std::shared_ptr<const PublicSuffixes> psl) { psl_ = std::move(psl); }
    // The upstream's credentials as "user:password", or empty: inline, or
    // its credentials_file as last read. The file is looked at (a stat) at
    // most once a second per upstream and re-read when it changed.
    std::string credentials(const Upstream& u);
    // Token requests that went without the credentials because the realm
    // did not qualify.
    std::uint64_t withheld() const noexcept { return withheld_.load(std::memory_order_relaxed); }

  private:
    struct Token {
        std::string value;
        std::uint64_t expires_us = 0;
        std::uint64_t generation = 0; // which fetch got it (never 0)
    };
    struct TokenFetch {
        reactor::Latch done;
        util::Result<void> result = util::Ok{}; // written before `done` is set
    };
    struct PerShard {
        std::unique_ptr<net::Client> client;
    };
    struct FileCredentials {
        std::string value;
        std::uint64_t checked_us = 0;
        std::int64_t mtime_ns = -1;
        std::uint64_t size = 0;
        std::uint64_t ino = 0;
    };
    PerShard& here();
    // A request with the upstream's timeouts and TLS settings.
    static net::Request request_for(const Upstream& u);
    net::Request manifest_request(const Upstream& u, const std::string& name,
                                  const std::string& ref, const std::string& accept) const;
    // After a 401 to a request that carried token generation `sent` (0:
    // none): a new token for its Bearer challenge (scope defaulting to
    // `scope`), unless another request renewed it meanwhile; one token
    // request at a time per key, process-wide. False when the challenge is
    // not one it can answer.
    reactor::Task<util::Result<bool>> answer_challenge(PerShard& s, const Upstream& u,
                                                       const net::Response& r,
                                                       const std::string& scope,
                                                       const std::string& key, std::uint64_t sent);
    // A copy of `req` carrying the cached token for `key` (its generation in
    // `*sent`, else 0), or Basic credentials for an upstream that asked for
    // them; counted.
    net::Request authorized(const Upstream& u, const std::string& key, const net::Request& req,
                            std::uint64_t* sent);
    reactor::Task<util::Result<net::Response>> send(PerShard& s, const Upstream& u,
                                                    net::Request req, const std::string& scope);
    reactor::Task<util::Result<Token>> fetch_token(PerShard& s, const Upstream& u,
                                                   const Challenge& c);

    std::vector<PerShard> shards_;
    std::atomic<std::uint64_t> requests_{0};
    std::atomic<std::uint64_t> withheld_{0};
    std::shared_ptr<const PublicSuffixes> psl_;
    std::mutex tokens_mu_;
    std::unordered_map<std::string, Token> tokens_; // "<prefix> <scope>", bounded
    std::unordered_map<std::string, std::shared_ptr<TokenFetch>> token_fetches_;
    std::uint64_t token_generation_ = 0;
    std::mutex cred_mu_;
    std::unordered_map<std::string, FileCredentials> file_creds_; // by prefix
    std::unordered_set<std::string> basic_; // prefixes that asked for Basic auth (cred_mu_)
    mutable std::mutex limits_mu_;
    std::unordered_map<std::string, Limits> limits_; // by prefix
    void observe(const Upstream& u, const net::Response& r);
    bool wants_basic(const Upstream& u);
};

// Whether an upstream error means it is down or throttled (as opposed to
// an answer about the thing asked for).
bool upstream_down(const util::Error& e) noexcept;

} // namespace rp::mirror
