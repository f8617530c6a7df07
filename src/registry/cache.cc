// SPDX-License-Identifier: Apache-2.0
// The mirrors' housekeeping: a cache that fits its disk (cache_bytes_max,
// least recently pulled first, pins) and pre-warming. The pull times it
// evicts by are storage::Activity's, saved by the lifecycle (lifecycle.cc).
#include <algorithm>
#include <ctime>
#include <set>
#include <tuple>

#include "reactor/ops.hh"
#include "reactor/shard.hh"
#include "registry/registry.hh"
#include "util/log.hh"

namespace rp::registry {

using reactor::Task;
using storage::Digest;

std::vector<std::string> Registry::cache_repos(const mirror::Upstream& u) const {
    std::vector<std::string> out;
    const std::string prefix = u.prefix + "/";
    for (std::string& name : store_.index().repo_names()) {
        if (name.starts_with(prefix)) {
            out.push_back(std::move(name));
        }
    }
    return out;
}

Task<void> Registry::housekeeping() noexcept {
    if (!co_await ready_.wait()) {
        co_return;
    }
    reactor::Shard* shard = reactor::Shard::current();
    std::vector<std::int64_t> prewarm_at(router_.upstreams().size(), 0);
    // Bounded: one turn a second; a stop ends the sleep and the loop.
    for (std::uint64_t turn = 0; turn < (1ULL << 40); ++turn) {
        for (const mirror::Upstream& u : router_.upstreams()) {
            if (shard->stopping()) {
                co_return;
            }
            if (!u.prewarm.empty() && prewarm_at[u.id] >= 0 && now_s() >= prewarm_at[u.id]) {
                co_await prewarm(u);
                prewarm_at[u.id] = u.prewarm_interval_s == 0
                                       ? -1
                                       : now_s() + static_cast<std::int64_t>(u.prewarm_interval_s);
            }
            if (u.cache_bytes_max > 0) {
                co_await evict_if_over(u);
            }
        }
        if (shard->stopping()) {
            co_return;
        }
        (void)co_await reactor::sleep_ms(1000);
    }
}

Task<std::uint64_t> Registry::cache_usage(const std::vector<std::string>& repos) noexcept {
    std::set<std::string> seen;
    std::uint64_t total = 0;
    for (const std::string& repo : repos) {
        auto c = store_.index().content(repo);
        if (!c) {
            continue;
        }
        for (const Digest& m : c->manifests) {
            if (seen.insert(m.str()).second) {
                storage::ManifestPtr info = store_.index().manifest(repo, m);
                total += info ? info->size : 0;
            }
        }
        for (const Digest& b : c->layers) {
            if (!seen.insert(b.str()).second) {
                continue;
            }
            auto it = sizes_.find(b.str());
            if (it == sizes_.end()) {
                auto sz = co_await store_.blob_size(b);
                it = sizes_.emplace(b.str(), sz ? *sz : 0).first;
            }
            total += it->second;
        }
    }
    co_return total;
}

Task<void> Registry::evict_if_over(const mirror::Upstream& u) noexcept {
    std::vector<std::string> repos = cache_repos(u);
    std::uint64_t usage = co_await cache_usage(repos);
    stats(u).cache_bytes.store(static_cast<std::int64_t>(usage), std::memory_order_relaxed);
    // pct % of the limit, without overflow for any byte count.
    auto percent = [&u](std::uint64_t pct) {
        return u.cache_bytes_max / 100 * pct + u.cache_bytes_max % 100 * pct / 100;
    };
    const std::uint64_t high = percent(u.evict_high_percent);
    const std::uint64_t low = percent(u.evict_low_percent);
    if (usage <= high) {
        co_return;
    }
    // Candidates: every cached manifest not pinned (an index's pin covers
    // its platforms) and not being fetched or revalidated, oldest pull first.
    const std::size_t cut = u.prefix.size() + 1;
    std::vector<std::tuple<std::int64_t, std::string, Digest>> order;
    for (const std::string& repo : repos) {
        auto c = store_.index().content(repo);
        if (!c) {
            continue;
        }
        const std::string up_name = repo.substr(cut);
        std::set<std::string> keep;
        auto kept = [&](char sep, const std::string& ref) {
            std::string pin = up_name;
            pin.push_back(sep);
            pin.append(ref);
            std::string flight = repo;
            flight.push_back(':');
            flight.append(ref);
            return mirror::pinned(u.pins, pin) || flights_.in_flight(flight);
        };
        for (const auto& [tag, d] : c->tags) {
            if (kept(':', tag)) {
                keep.insert(d.str());
            }
        }
        for (const Digest& m : c->manifests) {
            if (kept('@', m.str())) {
                keep.insert(m.str());
            }
        }
        for (const Digest& m : c->manifests) { // a kept index keeps its platforms
            if (!keep.contains(m.str())) {
                continue;
            }
            if (storage::ManifestPtr info = store_.index().manifest(repo, m)) {
                for (const Digest& child : info->children) {
                    keep.insert(child.str());
                }
            }
        }
        for (const Digest& m : c->manifests) {
            if (!keep.contains(m.str())) {
                order.emplace_back(activity_.digest_pulled_at(repo, m.str()), repo, m);
            }
        }
    }
    std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
        return std::tie(std::get<0>(a), std::get<1>(a)) < std::tie(std::get<0>(b), std::get<1>(b));
    });
    std::uint64_t evicted = 0;
    std::uint64_t freed = 0;
    for (const auto& [at, repo, d] : order) {
        if (usage <= low || reactor::Shard::current()->stopping()) {
            break;
        }
        std::uint64_t f = co_await evict_manifest(repos, repo, d);
        freed += f;
        usage = usage > f ? usage - f : 0;
        ++evicted;
    }
    stats(u).evictions.fetch_add(evicted, std::memory_order_relaxed);
    stats(u).evicted_bytes.fetch_add(freed, std::memory_order_relaxed);
    stats(u).cache_bytes.store(static_cast<std::int64_t>(usage), std::memory_order_relaxed);
    RP_LOG_INFO("mirror %s: evicted %llu manifest(s), %llu bytes; the cache holds %llu of %llu",
                u.prefix.c_str(), static_cast<unsigned long long>(evicted),
                static_cast<unsigned long long>(freed), static_cast<unsigned long long>(usage),
                static_cast<unsigned long long>(u.cache_bytes_max));
}

// Removes one cached manifest: its tags and revision link, the layer links
// no other manifest of the repository needs, and the data of what nothing
// references any more (hosted content keeps its blobs). Returns the bytes
// the mirror's cache no longer holds.
Task<std::uint64_t> Registry::evict_manifest(const std::vector<std::string>& repos,
                                             const std::string& repo, Digest d) noexcept {
    storage::ManifestPtr m = store_.index().manifest(repo, d);
    if (!m) {
        co_return 0;
    }
    if (auto del = co_await store_.delete_manifest(repo, d); !del) {
        co_return 0;
    }
    activity_.forget_digest(repo, d.str());
    // Layer links only this manifest needed in this repository.
    std::set<std::string> still;
    if (auto c = store_.index().content(repo)) {
        for (const Digest& other : c->manifests) {
            if (storage::ManifestPtr info = store_.index().manifest(repo, other)) {
                for (const Digest& b : info->blobs) {
                    still.insert(b.str());
                }
            }
        }
    }
    for (const Digest& b : m->blobs) {
        if (!still.contains(b.str())) {
            (void)co_await store_.delete_blob(repo, b);
        }
    }
    auto in_cache = [&](const Digest& x) {
        for (const std::string& r : repos) {
            if (store_.index().has_layer(r, x) || store_.index().manifest(r, x)) {
                return true;
            }
        }
        return false;
    };
    std::uint64_t freed = in_cache(d) ? 0 : m->size;
    (void)co_await store_.remove_unreferenced_blob(d);
    for (const Digest& b : m->blobs) {
        if (in_cache(b)) {
            continue;
        }
        auto it = sizes_.find(b.str());
        freed += it != sizes_.end() ? it->second : 0;
        sizes_.erase(b.str());
        (void)co_await store_.remove_unreferenced_blob(b);
    }
    co_return freed;
}

// A blob into the cache repository, through the same single flight as pulls.
Task<util::Result<void>> Registry::cache_blob(const mirror::Upstream& u, const std::string& repo,
                                              const Digest& d) noexcept {
    if (co_await store_.stat_blob(repo, d)) {
        co_return util::Ok{};
    }
    co_return co_await flights_.follow(join_blob_fetch(u, repo, d, repo + "@" + d.str()));
}

// Each pre-warm reference: its manifest (revalidated when cached by tag),
// every platform of an index, and their blobs. Failures are logged; the
// next round tries again.
Task<void> Registry::prewarm(const mirror::Upstream& u) noexcept {
    for (const std::string& ref : u.prewarm) {
        const auto at = ref.find('@');
        const auto colon = at == std::string::npos ? ref.rfind(':') : at;
        Route r;
        r.kind = RouteKind::manifest;
        r.name = u.prefix + "/" + ref.substr(0, colon);
        r.ref = ref.substr(colon + 1);
        if (!storage::valid_repo_name(r.name)) {
            RP_LOG_WARN("mirror %s: pre-warm %s: not a repository name", u.prefix.c_str(),
                        ref.c_str());
            continue;
        }
        std::vector<Route> todo{r};
        std::size_t fetched_blobs = 0;
        util::Result<void> failed = util::Ok{};
        for (std::size_t i = 0; i < todo.size() && i < 1024 && failed; ++i) {
            const Route cur = todo[i]; // a copy: todo grows below
            storage::ManifestPtr cached = indexed_manifest(store_.index(), cur.name, cur.ref);
            const bool by_tag = cur.ref.find(':') == std::string::npos;
            storage::ManifestPtr m = cached;
            if (!m || by_tag) {
                auto got = co_await mirror_lookup(cur, u, cached);
                if (!got) {
                    failed = got.error();
                    break;
                }
                m = *got;
            }
            activity_.digest_pulled(cur.name, m->digest.str(), now_s());
            for (const Digest& child : m->children) {
                Route c = cur;
                c.ref = child.str();
                todo.push_back(std::move(c));
            }
            for (const Digest& b : m->blobs) {
                if (auto got = co_await cache_blob(u, cur.name, b); !got) {
                    failed = got;
                    break;
                }
                ++fetched_blobs;
            }
        }
        if (!failed) {
            RP_LOG_WARN("mirror %s: pre-warm %s failed: %s", u.prefix.c_str(), ref.c_str(),
                        failed.error().detail.c_str());
        } else {
            RP_LOG_INFO("mirror %s: pre-warmed %s (%zu manifest(s), %zu blob(s))", u.prefix.c_str(),
                        ref.c_str(), todo.size(), fetched_blobs);
        }
    }
}

} // namespace rp::registry
