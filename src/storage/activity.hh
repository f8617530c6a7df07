// SPDX-License-Identifier: Apache-2.0
#pragma once

// When each tag was pushed and pulled, and when each manifest was pulled by
// digest, per repository: what retention policies decide by ("not pulled for
// 30 days") and what a mirror's cache evicts by (least recently pulled).
// Held in memory and saved as a whole, in batches, outside Distribution's
// tree: never a write per pull. A pull costs one hash lookup under one of
// several striped locks.

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace rp::storage {

class Activity {
  public:
    // Seconds since the epoch; 0 means never seen.
    struct Times {
        std::int64_t pushed = 0;
        std::int64_t pulled = 0;
    };

    void tag_pushed(std::string_view repo, std::string_view tag, std::int64_t now);
    void tag_pulled(std::string_view repo, std::string_view tag, std::int64_t now);
    void digest_pulled(std::string_view repo, std::string_view digest, std::int64_t now);
    // A put of the manifest, or of an index naming it (its last use).
    void digest_pushed(std::string_view repo, std::string_view digest, std::int64_t now);
    // A push time learned elsewhere (the tag link's mtime, for a tag pushed
    // before tracking began), kept only when none is known.
    void tag_pushed_if_unknown(std::string_view repo, std::string_view tag, std::int64_t at);
    Times tag(std::string_view repo, std::string_view tag) const;
    Times digest(std::string_view repo, std::string_view digest) const;
    std::int64_t digest_pulled_at(std::string_view repo, std::string_view d) const {
        return digest(repo, d).pulled;
    }
    void forget_tag(std::string_view repo, std::string_view tag);
    void forget_digest(std::string_view repo, std::string_view digest);
    // Drops every entry `keep` says no to; `tag` or `digest` is empty. Returns
    // how many went.
    std::size_t prune(const std::function<bool(std::string_view repo, std::string_view tag,
                                               std::string_view digest)>& keep);

    // When pull tracking began (0: not yet). A tag never pulled counts as
    // pulled at the latest of this and its push, never at the epoch.
    std::int64_t tracking_since() const;
    // Starts tracking now unless it began already (a first start, or a root
    // whose saved form was lost).
    void begin_tracking(std::int64_t now);

    // The saved form: a header line, then "<pulled> <pushed> <repo>:<tag>"
    // or "<pulled> <pushed> <repo>@<digest>" lines. Pure of I/O.
    std::string serialize() const;
    // Merges a saved form (later times win; the earliest tracking start
    // wins). Bad lines are skipped. Also reads the two-field lines of the
    // mirror's earlier access file ("<pulled> <repo>@<digest>").
    void load(std::string_view text);
    // Whether anything changed since the last take_dirty().
    bool take_dirty();
    void mark_dirty(); // a save failed: the next one tries again
    std::size_t size() const;

  private:
    struct Stripe {
        mutable std::mutex mu;
        std::unordered_map<std::string, Times> at;
    };
    static constexpr std::size_t stripes = 16;
    Stripe& stripe(const std::string& key);
    const Stripe& stripe(const std::string& key) const;
    // Applies `f` to the entry at `key` (made if absent) under its lock;
    // marks dirty when `f` returns true.
    template <typename F> void update(const std::string& key, F f);
    Times get(const std::string& key) const;
    void erase(const std::string& key);

    std::array<Stripe, stripes> s_;
    mutable std::mutex meta_mu_;
    std::int64_t since_ = 0; // meta_mu_
    bool dirty_ = false;     // meta_mu_
};

} // namespace rp::storage
