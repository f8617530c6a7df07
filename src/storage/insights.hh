// SPDX-License-Identifier: Apache-2.0
#pragma once

// Per repository: when it was last pushed and pulled, and its pulls per day
// (also per tag); for the whole registry: stored bytes per day. What the
// admin API's insights and time series draw from, beside the index's byte
// counts. Held in memory and saved as a whole, in batches, outside
// Distribution's tree (never a write per pull). A pull costs one hash
// lookup of the repository and one of the tag under one of several striped
// locks, and a counter increment.

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace rp::storage {

class Insights {
  public:
    // Days since the epoch (UTC) and a count, oldest first.
    using Days = std::vector<std::pair<std::int32_t, std::uint64_t>>;
    static std::int32_t day_of(std::int64_t unix_s) noexcept {
        return static_cast<std::int32_t>(unix_s / 86400);
    }

    // How many days of daily counts are kept (today included).
    void set_keep_days(std::int32_t days);
    std::int32_t keep_days() const;

    // A manifest request: `tag` is empty for one by digest.
    void pulled(std::string_view repo, std::string_view tag, std::int64_t now);
    void pushed(std::string_view repo, std::int64_t now);
    // The registry's stored bytes today (the last value of a day stands).
    void stored(std::int64_t now, std::uint64_t bytes);

    struct Repo {
        std::int64_t last_push = 0, last_pull = 0; // seconds since the epoch; 0: never
        std::uint64_t pulls = 0;                   // within the kept days
    };
    Repo repo(std::string_view name) const;
    // Every repository with something known, by name.
    std::unordered_map<std::string, Repo> repos() const;
    Days repo_pulls(std::string_view name) const;
    Days tag_pulls(std::string_view repo, std::string_view tag) const;
    std::uint64_t tag_pull_total(std::string_view repo, std::string_view tag) const;
    Days pulls() const; // the registry's, per day (deleted repositories' included)
    Days stored_bytes() const;

    void forget_repo(std::string_view name);
    void forget_tag(std::string_view repo, std::string_view tag);
    // Drops days older than the kept ones, and repositories and tags `keep`
    // says no to (`tag` empty: the repository itself).
    void prune(std::int64_t now,
               const std::function<bool(std::string_view repo, std::string_view tag)>& keep);

    // The saved form: a header line, then one line per series. Pure of I/O.
    std::string serialize() const;
    // Adds a saved form to what is held (read once, at startup: pulls
    // counted before it was read add to the saved ones; later times win).
    // Bad lines are skipped.
    void load(std::string_view text);
    bool take_dirty();
    void mark_dirty();

  private:
    // Names looked up as views: a pull allocates no key.
    struct NameHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept {
            return std::hash<std::string_view>{}(s);
        }
    };
    template <typename T>
    using NameMap = std::unordered_map<std::string, T, NameHash, std::equal_to<>>;
    struct RepoEntry {
        Repo at;
        Days days;
        NameMap<Days> tags;
    };
    struct Stripe {
        mutable std::mutex mu;
        NameMap<RepoEntry> repos;
        Days total; // the registry's pulls counted here (a deleted repository's stay)
    };
    static constexpr std::size_t stripes = 16;
    Stripe& stripe(std::string_view repo);
    const Stripe& stripe(std::string_view repo) const;
    void dirty();

    std::array<Stripe, stripes> s_;
    mutable std::mutex meta_mu_;
    std::int32_t keep_days_ = 30;    // meta_mu_
    Days stored_;                    // meta_mu_
    std::atomic<bool> dirty_{false}; // a flag, not a lock: every pull sets it
};

} // namespace rp::storage
