// SPDX-License-Identifier: Apache-2.0
#pragma once

// What /metrics reports: requests by route and status, counted per shard,
// and per mirror its cache's hits and misses, what it served and fetched.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string_view>

#include "registry/routes.hh"

namespace rp::registry {

std::string_view route_name(RouteKind k) noexcept;

// Requests answered, by route and status. Each shard writes only its own
// block (a relaxed load and store, no locked instruction on the request
// path); /metrics sums the blocks.
class RequestCounters {
  public:
    // Statuses counted apart; any other counts as "other".
    static constexpr std::array<int, 21> statuses{200, 201, 202, 204, 206, 304, 307,
                                                  400, 401, 403, 404, 405, 408, 413,
                                                  414, 416, 429, 431, 500, 502, 503};
    static constexpr std::size_t kinds = static_cast<std::size_t>(RouteKind::not_found) + 1;
    static constexpr std::size_t slots = statuses.size() + 1;

    // Upper bounds of the latency histogram's buckets, in microseconds
    // (the last, +Inf, is the count).
    static constexpr std::array<std::uint64_t, 16> bounds_us{
        100,   250,    500,    1000,   2500,    5000,    10000,    25000,
        50000, 100000, 250000, 500000, 1000000, 2500000, 10000000, 30000000};

    explicit RequestCounters(unsigned shards);
    // One request answered: its status, its time in the handler (the
    // response sent), and its body bytes in and bytes sent.
    void count(unsigned shard, RouteKind k, int status, std::uint64_t us, std::uint64_t in,
               std::uint64_t out) noexcept;
    std::uint64_t total(std::size_t kind, std::size_t status_slot) const noexcept;
    // Sums over the shards, for one route.
    struct Route {
        std::array<std::uint64_t, bounds_us.size()> buckets{}; // not cumulative
        std::uint64_t count = 0, sum_us = 0, bytes_in = 0, bytes_out = 0;
    };
    Route route(std::size_t kind) const noexcept;

  private:
    static constexpr std::size_t per_kind = bounds_us.size() + 4; // buckets, count, sum, in, out
    struct alignas(64) Block {
        std::array<std::atomic<std::uint64_t>, kinds * slots> n{};
        std::array<std::atomic<std::uint64_t>, kinds * per_kind> t{};
    };
    std::unique_ptr<Block[]> blocks_;
    unsigned shards_;
};

// One mirror's cache, from any shard. [0] manifests, [1] blobs.
struct MirrorStats {
    static constexpr int manifest = 0;
    static constexpr int blob = 1;
    std::array<std::atomic<std::uint64_t>, 2> hits{};      // answered from the cache
    std::array<std::atomic<std::uint64_t>, 2> misses{};    // fetched upstream (or re-fetched)
    std::array<std::atomic<std::uint64_t>, 2> coalesced{}; // waited on another's fetch
    std::array<std::atomic<std::uint64_t>, 2> not_found_hits{};
    std::atomic<std::uint64_t> revalidations{0}; // cached tags confirmed or re-fetched upstream
    std::atomic<std::uint64_t> stale{0};
    std::atomic<std::uint64_t> upstream_bytes{0}; // manifest and blob bodies received
    std::atomic<std::uint64_t> served_bytes{0};   // manifest and blob bodies answered
    std::atomic<std::int64_t> in_flight{0};       // fetches (leaders) under way
    std::atomic<std::uint64_t> evictions{0};      // cached manifests evicted
    std::atomic<std::uint64_t> evicted_bytes{0};  // what they stopped counting
    std::atomic<std::int64_t> cache_bytes{-1};    // at the last check (-1: no limit set)

    std::uint64_t all_hits() const noexcept { return hits[0].load() + hits[1].load(); }
    std::uint64_t all_misses() const noexcept { return misses[0].load() + misses[1].load(); }
    // Hits in percent of hits and misses (0 before any request).
    std::uint64_t hit_ratio_percent() const noexcept {
        const std::uint64_t h = all_hits(), n = h + all_misses();
        return n == 0 ? 0 : h * 100 / n;
    }
};

} // namespace rp::registry
