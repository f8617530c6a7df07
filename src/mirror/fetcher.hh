// SPDX-License-Identifier: Apache-2.0
#pragma once

// Requests to upstream registries, for the pull-through mirror: the Docker
// token dance (a 401 with a Bearer challenge, an anonymous token, a retry),
// tokens cached per upstream and scope, one net::Client per shard.

#include <atomic>
#include <cstdint>
#include <deque>
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
#include "storage/receive.hh"
#include "util/result.hh"
#include "util/unique_fd.hh"

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

// When each cached tag of a mirror was last confirmed upstream. Shared by
// the shards (a mutex: one lookup per mirrored tag pull); an entry per tag
// pulled through the mirror, so it grows with the cache, not with requests.
class Freshness {
  public:
    bool fresh(const std::string& repo, const std::string& tag, std::uint64_t ttl_s) const;
    void confirmed(const std::string& repo, const std::string& tag);

  private:
    mutable std::mutex mu_;
    std::unordered_map<std::string, std::uint64_t> at_us_; // "<repo>:<tag>"
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

// Single flight: concurrent requests for the same missing thing (a blob or
// a manifest of one cached repository) make one upstream fetch. The first
// caller leads and fetches; the others, on any shard, wait for it to land
// and then read what it stored (or get its error).
class Flights {
  public:
    struct Flight {
        reactor::Latch landed;
        util::Result<void> result = util::Ok{}; // written before `landed` is set
        // A blob flight is read while it lands. `headed` is set once the
        // upstream answered, when `size` and `data` are final (`data` is
        // invalid when the blob cannot be streamed: no Content-Length), or
        // once the flight landed, whichever comes first.
        reactor::Latch headed;
        std::uint64_t size = 0;
        util::UniqueFd data;     // the file the blob is being written to, read-only use
        reactor::Progress bytes; // how much of `data` is written; closed when landed
    };
    struct Ticket {
        std::shared_ptr<Flight> flight;
        bool leader = false;
    };
    Ticket join(const std::string& key);
    // A follower's wait: the leader's result, or Errc::stopped.
    reactor::Task<util::Result<void>> follow(const Ticket& t);
    void land(const std::string& key, const std::shared_ptr<Flight>& f, util::Result<void> r);
    // Wakes every reader following a flight's bytes, for good: the server is
    // cutting its connections. The fetches go on until the runtime stops.
    void cut_readers();
    std::uint64_t coalesced() const noexcept { return coalesced_.load(std::memory_order_relaxed); }
    bool in_flight(const std::string& key) const;

  private:
    mutable std::mutex mu_;
    std::unordered_map<std::string, std::shared_ptr<Flight>> in_flight_;
    std::atomic<std::uint64_t> coalesced_{0};
};

// Upstream "not found" answers, remembered for a mirror's not_found_ttl_s so
// a fleet asking for a missing tag does not ask upstream each time. What
// clients ask for must not grow memory without bound: at most `max_entries`,
// the oldest forgotten first.
class NotFound {
  public:
    explicit NotFound(std::size_t max_entries = 10000) : max_(max_entries) {}
    bool remembered(const std::string& key, std::uint64_t ttl_s) const;
    void remember(const std::string& key);
    std::uint64_t hits() const noexcept { return hits_.load(std::memory_order_relaxed); }
    std::size_t size() const;

  private:
    std::size_t max_;
    mutable std::mutex mu_;
    std::unordered_map<std::string, std::uint64_t> at_us_;
    std::deque<std::string> order_; // oldest first; may name entries renewed since
    mutable std::atomic<std::uint64_t> hits_{0};
};

// Per upstream: after a failure that says it is down or throttled, the
// circuit opens and cached tags are served without asking it, until a probe
// (one per upstream, in the background) sees it answer again. The probe's
// first try waits `wait_s` (the mirror's retry_after_s, or the upstream's
// own Retry-After when longer).
class Breaker {
  public:
    // Whether the circuit is open; counted as a short circuit when it is.
    bool open(const Upstream& u) const;
    bool is_open(const Upstream& u) const; // the same, not counted (metrics)
    // Opens the circuit, or keeps it open; the next probe waits at least
    // `wait_s`. True when no probe runs: the caller starts one.
    bool failed(const Upstream& u, std::uint64_t wait_s);
    void succeeded(const Upstream& u);
    // The probe's wait until it may ask (0: now).
    std::uint64_t wait_us(const Upstream& u) const;
    // The probe ends when the circuit is closed; false: it is open (again),
    // and the probe goes on.
    bool probe_done(const Upstream& u);
    std::uint64_t short_circuits() const noexcept {
        return short_circuits_.load(std::memory_order_relaxed);
    }
    std::uint64_t probes() const noexcept { return probes_.load(std::memory_order_relaxed); }
    void probed() noexcept { probes_.fetch_add(1, std::memory_order_relaxed); }

  private:
    struct State {
        bool down = false;
        bool probing = false;
        std::uint64_t retry_at_us = 0;
    };
    mutable std::mutex mu_;
    std::unordered_map<std::string, State> by_prefix_;
    mutable std::atomic<std::uint64_t> short_circuits_{0};
    std::atomic<std::uint64_t> probes_{0};
};

// Whether an upstream error means it is down or throttled (as opposed to
// an answer about the thing asked for).
bool upstream_down(const util::Error& e) noexcept;

// A download as the source of an upload: the blob goes through the store's
// own pipeline (incremental hash, durable commit).
class DownloadSource final : public storage::ByteSource {
  public:
    explicit DownloadSource(net::Download& d) : d_(d) {}
    reactor::Task<util::Result<std::size_t>> read(char* dst, std::size_t cap) noexcept override;

  private:
    net::Download& d_;
};

} // namespace rp::mirror
