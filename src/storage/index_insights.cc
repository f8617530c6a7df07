// SPDX-License-Identifier: Apache-2.0
// The index's insights accounting: which repositories hold each digest and
// the bytes each repository stores, unique to it or shared, kept current
// under the index's lock by every link, unlink and manifest change (hold,
// unhold, set_size, recount); sizes learned late; and the reads the admin
// API makes of it (select, summary, totals, frees). The rest of the index
// is index.cc.
#include <algorithm>
#include <mutex>

#include "storage/index.hh"
#include "util/assert.hh"

namespace rp::storage {

namespace {

std::uintptr_t address(const RepoState& r) noexcept { return reinterpret_cast<std::uintptr_t>(&r); }

// The one holder an xor of holders' addresses names when only one is left.
// The cast is the point: it finds that holder in O(1), without a list of
// holders per blob (a base layer in 10,000 repositories would need one).
RepoState* holder_at(std::uintptr_t a) noexcept {
    return reinterpret_cast<RepoState*>(a); // NOLINT(performance-no-int-to-ptr)
}

} // namespace

void Index::hold(RepoState& r, DigestId id) {
    const std::uint32_t n = ++holders_[id];
    holder_xor_[id] ^= address(r);
    const std::uint64_t s = sizes_[id];
    if (n == 1) {
        ++held_;
        unsized_ += s == unknown_size ? 1 : 0;
    }
    if (s == unknown_size) {
        ++r.unsized;
        return;
    }
    r.bytes += s;
    logical_bytes_ += s;
    if (n == 1) {
        r.unique_bytes += s;
        total_bytes_ += s;
    } else if (n == 2) { // the one that held it alone shares it now
        holder_at(holder_xor_[id] ^ address(r))->unique_bytes -= s;
    }
}

void Index::unhold(RepoState& r, DigestId id) {
    RP_ASSERT(holders_[id] > 0);
    const std::uint32_t n = --holders_[id];
    holder_xor_[id] ^= address(r);
    const std::uint64_t s = sizes_[id];
    if (n == 0) {
        --held_;
        unsized_ -= s == unknown_size ? 1 : 0;
    }
    if (s == unknown_size) {
        --r.unsized;
        return;
    }
    r.bytes -= s;
    logical_bytes_ -= s;
    if (n == 0) {
        r.unique_bytes -= s;
        total_bytes_ -= s;
    } else if (n == 1) { // the one left holds it alone now
        holder_at(holder_xor_[id])->unique_bytes += s;
    }
}

bool Index::set_size(DigestId id, std::uint64_t size, bool defer_recount) {
    const std::uint64_t old = sizes_[id];
    // The first size wins, but a 0 (its data file was missing when looked
    // at) gives way to a real one. Either counted 0 bytes so far.
    if (size == unknown_size || old == size || (old != unknown_size && old != 0)) {
        return false;
    }
    sizes_[id] = size;
    const std::uint32_t n = holders_[id];
    if (n == 0) {
        return false;
    }
    const bool was_unknown = old == unknown_size;
    unsized_ -= was_unknown ? 1 : 0;
    total_bytes_ += size;
    logical_bytes_ += size * n;
    if (n == 1) {
        RepoState* r = holder_at(holder_xor_[id]);
        r->unsized -= was_unknown ? 1 : 0;
        r->bytes += size;
        r->unique_bytes += size;
        return false;
    }
    if (defer_recount) {
        return true;
    }
    for (auto& [name, r] : repos_) { // shared before its size was known: rare (startup)
        if (r->layers.contains(id) || r->manifests.contains(id)) {
            recount(*r);
        }
    }
    return false;
}

void Index::recount(RepoState& r) const {
    r.bytes = r.unique_bytes = 0;
    r.unsized = 0;
    auto add = [&](DigestId id) {
        const std::uint64_t s = sizes_[id];
        if (s == unknown_size) {
            ++r.unsized;
            return;
        }
        r.bytes += s;
        r.unique_bytes += holders_[id] == 1 ? s : 0;
    };
    for (DigestId id : r.layers) {
        add(id);
    }
    for (const auto& [id, m] : r.manifests) {
        if (!r.layers.contains(id)) {
            add(id);
        }
    }
}

std::vector<Digest> Index::unsized(std::size_t n) const {
    std::shared_lock lk(mu_);
    std::vector<Digest> out;
    if (unsized_ == 0) {
        return out;
    }
    for (std::size_t id = 0; id < sizes_.size() && out.size() < n; ++id) {
        if (holders_[id] != 0 && sizes_[id] == unknown_size) {
            out.push_back(digests_[id]);
        }
    }
    return out;
}

void Index::learn_sizes(const std::vector<std::pair<Digest, std::uint64_t>>& sizes) {
    std::unique_lock lk(mu_);
    bool shared = false; // some blob more than one repository holds: recounted once, below
    for (const auto& [d, size] : sizes) {
        if (auto id = id_of(d)) {
            shared = set_size(*id, size, true) || shared;
        }
    }
    if (shared) {
        for (auto& [name, r] : repos_) {
            recount(*r);
        }
    }
}

namespace {

Index::RepoSummary summary_of(std::string_view name, const RepoState& r) {
    Index::RepoSummary s;
    s.name = std::string(name);
    s.bytes = r.bytes;
    s.unique_bytes = r.unique_bytes;
    s.unsized = r.unsized;
    s.tags = static_cast<std::uint32_t>(r.tags.size());
    s.manifests = static_cast<std::uint32_t>(r.manifests.size());
    s.layers = static_cast<std::uint32_t>(r.layers.size());
    return s;
}

} // namespace

std::vector<Index::RepoSummary>
Index::select(const std::function<bool(std::string_view)>& accept,
              const std::function<std::uint64_t(const RepoSummary&)>& key, bool desc,
              std::size_t offset, std::size_t limit, std::size_t* total) const {
    struct Pick {
        std::uint64_t key;
        std::uint32_t ord; // the position in name order
        const RepoMap::value_type* at;
    };
    // Reused by each thread: a big list faults in no new pages per call.
    thread_local std::vector<Pick> picks;
    picks.clear();
    std::vector<RepoSummary> out;
    std::shared_lock lk(mu_);
    RepoSummary probe; // the key's view of a row (its name is not needed to sort)
    for (const auto& entry : repos_) {
        const RepoState& r = *entry.second;
        if (!r.listed() || (accept && !accept(entry.first))) {
            continue;
        }
        std::uint64_t k = 0;
        if (key) {
            probe.bytes = r.bytes;
            probe.unique_bytes = r.unique_bytes;
            probe.tags = static_cast<std::uint32_t>(r.tags.size());
            probe.manifests = static_cast<std::uint32_t>(r.manifests.size());
            probe.layers = static_cast<std::uint32_t>(r.layers.size());
            probe.unsized = r.unsized;
            probe.name.assign(entry.first); // a key may need it (activity is by name)
            k = key(probe);
        }
        picks.push_back(Pick{k, static_cast<std::uint32_t>(picks.size()), &entry});
    }
    *total = picks.size();
    if (offset >= picks.size()) {
        return out;
    }
    const std::size_t end = std::min(picks.size(), offset + std::min(limit, picks.size()));
    const auto before = [desc](const Pick& a, const Pick& b) {
        if (a.key != b.key) {
            return desc ? a.key > b.key : a.key < b.key;
        }
        return a.ord < b.ord; // ties by name: a page boundary is stable
    };
    if (!key && desc) {
        std::reverse(picks.begin(), picks.end());
    } else if (key) {
        std::partial_sort(picks.begin(), picks.begin() + static_cast<std::ptrdiff_t>(end),
                          picks.end(), before);
    }
    out.reserve(end - offset);
    for (std::size_t i = offset; i < end; ++i) {
        out.push_back(summary_of(picks[i].at->first, *picks[i].at->second));
    }
    return out;
}

std::optional<Index::RepoSummary> Index::summary(std::string_view repo) const {
    std::shared_lock lk(mu_);
    const RepoState* r = find(repo);
    if (r == nullptr || !r->listed()) {
        return std::nullopt;
    }
    return summary_of(repo, *r);
}

Index::Totals Index::totals() const {
    std::shared_lock lk(mu_);
    return Totals{total_bytes_, logical_bytes_, held_, unsized_};
}

std::optional<std::uint64_t> Index::size_of(const Digest& d) const {
    std::shared_lock lk(mu_);
    auto id = id_of(d);
    if (!id || sizes_[*id] == unknown_size) {
        return std::nullopt;
    }
    return sizes_[*id];
}

Index::Frees Index::frees(std::string_view repo, const std::vector<Digest>& manifests,
                          bool whole) const {
    std::shared_lock lk(mu_);
    Frees f;
    const RepoState* r = find(repo);
    if (r == nullptr) {
        return f;
    }
    // The manifests that leave the repository: those asked for, then the
    // children and referrers only they kept (untagged, named by no manifest
    // that stays).
    std::unordered_set<DigestId> going;
    std::vector<DigestId> todo;
    for (const Digest& d : manifests) {
        auto id = id_of(d);
        if (id && r->manifests.contains(*id) && going.insert(*id).second) {
            todo.push_back(*id);
        }
    }
    auto tagged = [&](DigestId id) {
        return std::any_of(r->tags.begin(), r->tags.end(),
                           [&](const auto& t) { return t.second == id; });
    };
    auto needed_by_staying = [&](DigestId child) {
        for (const auto& [id, m] : r->manifests) {
            if (going.contains(id) || !m) {
                continue;
            }
            for (const Digest& c : m->children) {
                if (auto cid = id_of(c); cid && *cid == child) {
                    return true;
                }
            }
        }
        return false;
    };
    for (std::size_t i = 0; i < todo.size() && !whole; ++i) {
        auto it = r->manifests.find(todo[i]);
        std::vector<DigestId> next;
        if (it != r->manifests.end() && it->second) {
            for (const Digest& c : it->second->children) {
                if (auto cid = id_of(c); cid && r->manifests.contains(*cid)) {
                    next.push_back(*cid);
                }
            }
        }
        if (auto refs = r->referrers.find(todo[i]); refs != r->referrers.end()) {
            next.insert(next.end(), refs->second.begin(), refs->second.end());
        }
        for (DigestId c : next) {
            if (!going.contains(c) && !tagged(c) && !needed_by_staying(c)) {
                going.insert(c);
                todo.push_back(c);
            }
        }
    }
    if (whole) {
        for (const auto& [id, m] : r->manifests) {
            going.insert(id);
        }
    }
    // Of those, the ones no other repository holds go from the store; the
    // blobs they alone referenced go with them.
    std::unordered_map<DigestId, std::uint32_t> dropped; // blob -> references lost
    auto add = [&](DigestId id) {
        if (sizes_[id] == unknown_size) {
            f.exact = false;
        } else {
            f.bytes += sizes_[id];
        }
    };
    for (DigestId id : going) {
        auto s = manifest_refs_.find(id);
        if (s == manifest_refs_.end() || s->second.repos != 1) {
            continue; // another repository keeps it
        }
        ++f.manifests;
        if (holders_[id] == 1 && (whole || !r->layers.contains(id)) && !blob_refs_.contains(id)) {
            add(id);
        }
        for (const Digest& b : s->second.m->blobs) {
            auto bid = id_of(b);
            if (!bid) {
                continue;
            }
            auto ref = blob_refs_.find(*bid);
            const std::uint32_t lost = ++dropped[*bid];
            if (ref != blob_refs_.end() && ref->second == lost && !manifest_refs_.contains(*bid)) {
                ++f.blobs;
                add(*bid);
            }
        }
    }
    return f;
}

} // namespace rp::storage
