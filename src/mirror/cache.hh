// SPDX-License-Identifier: Apache-2.0
#pragma once

// What a mirror's cache keeps: when each cached manifest was last pulled
// (for eviction, least recently pulled first), and which references are
// pinned. Access times live in memory and are saved in batches, never a
// write per pull.

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace rp::mirror {

// `*` matches any run of characters (`/` and `:` included), `?` one. Pure.
bool glob_match(std::string_view pattern, std::string_view s) noexcept;

// Whether any pin matches `ref` ("<upstream repository>:<tag>" or
// "<upstream repository>@<digest>"). Pure.
bool pinned(const std::vector<std::string>& pins, std::string_view ref) noexcept;

// Last pull of each cached manifest, "<cache repository>@<digest>" -> Unix
// seconds. Any shard.
class AccessTimes {
  public:
    void pulled(std::string_view repo, std::string_view digest, std::int64_t now_s);
    // 0 when never seen (then the manifest counts as the oldest).
    std::int64_t last(std::string_view repo, std::string_view digest) const;
    void forget(std::string_view repo, std::string_view digest);
    // The saved form: one "<seconds> <repo>@<digest>" per line. Pure of I/O.
    std::string serialize() const;
    // Merges a saved form (a newer time in memory wins); bad lines are skipped.
    void load(std::string_view text);
    // Whether anything changed since the last take_dirty().
    bool take_dirty();
    std::size_t size() const;

  private:
    mutable std::mutex mu_;
    std::unordered_map<std::string, std::int64_t> at_;
    bool dirty_ = false;
};

} // namespace rp::mirror
