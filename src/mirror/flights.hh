// SPDX-License-Identifier: Apache-2.0
#pragma once

// What the mirror's requests share while they go upstream: single flights
// (and the bytes of a blob flight as they land), remembered "not found"
// answers, when each cached tag was last confirmed, and each upstream's
// circuit. State and coordination only: the requests themselves are
// fetcher.hh's.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "mirror/router.hh"
#include "mirror/ttl_map.hh"
#include "reactor/sync.hh"
#include "reactor/task.hh"
#include "util/result.hh"
#include "util/unique_fd.hh"

namespace rp::mirror {

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
    explicit NotFound(std::size_t max_entries = 10000) : seen_(max_entries) {}
    bool remembered(const std::string& key, std::uint64_t ttl_s) const;
    void remember(const std::string& key) { seen_.put(key, true); }
    std::uint64_t hits() const noexcept { return hits_.load(std::memory_order_relaxed); }
    std::size_t size() const { return seen_.size(); }

  private:
    TtlMap<bool> seen_;
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

} // namespace rp::mirror
