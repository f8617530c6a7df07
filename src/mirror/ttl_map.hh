// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

#include "reactor/shard.hh"

namespace rp::mirror {

// Answers kept for as long as the reader's TTL allows, shared by the
// shards. Keys come from what clients ask for (names, tags, queries), so
// the map is bounded: at most `max_entries`, the first written going first.
// A TTL of 0 keeps nothing.
template <class V> class TtlMap {
  public:
    explicit TtlMap(std::size_t max_entries) : max_(max_entries) {}

    std::optional<V> get(const std::string& key, std::uint64_t ttl_s) const {
        if (ttl_s == 0) {
            return std::nullopt;
        }
        std::lock_guard lk(mu_);
        auto it = entries_.find(key);
        if (it == entries_.end() ||
            reactor::monotonic_us() - it->second.at_us >= ttl_s * 1'000'000) {
            return std::nullopt;
        }
        return it->second.value;
    }

    void put(const std::string& key, V value) {
        std::lock_guard lk(mu_);
        auto [it, fresh] =
            entries_.insert_or_assign(key, Entry{std::move(value), reactor::monotonic_us()});
        (void)it;
        if (fresh) {
            order_.push_back(key);
        }
        // Bounded: each turn drops one entry.
        while (entries_.size() > max_ && !order_.empty()) {
            entries_.erase(order_.front());
            order_.pop_front();
        }
    }

    std::size_t size() const {
        std::lock_guard lk(mu_);
        return entries_.size();
    }

  private:
    struct Entry {
        V value;
        std::uint64_t at_us = 0;
    };
    std::size_t max_;
    mutable std::mutex mu_;
    std::unordered_map<std::string, Entry> entries_;
    std::deque<std::string> order_; // first written first; may name entries renewed since
};

} // namespace rp::mirror
