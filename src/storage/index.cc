// SPDX-License-Identifier: Apache-2.0
#include "storage/index.hh"

#include <algorithm>
#include <mutex>

#include "util/assert.hh"

namespace rp::storage {

const RepoState* Index::find(std::string_view repo) const {
    auto it = repos_.find(repo);
    return it == repos_.end() ? nullptr : it->second.get();
}

RepoState* Index::find(std::string_view repo) {
    auto it = repos_.find(repo);
    return it == repos_.end() ? nullptr : it->second.get();
}

std::optional<DigestId> Index::id_of(const Digest& d) const {
    auto it = ids_.find(std::string_view(d.str()));
    if (it == ids_.end()) {
        return std::nullopt;
    }
    return it->second;
}

DigestId Index::ref(const Digest& d) {
    RP_ASSERT(!d.empty());
    if (auto id = id_of(d)) {
        ++refs_[*id];
        return *id;
    }
    DigestId id = 0;
    if (!free_ids_.empty()) {
        id = free_ids_.back();
        free_ids_.pop_back();
        RP_ASSERT(refs_[id] == 0 && digests_[id].empty());
        digests_[id] = d;
    } else {
        RP_ASSERT(digests_.size() < UINT32_MAX);
        id = static_cast<DigestId>(digests_.size());
        digests_.push_back(d);
        refs_.push_back(0);
        sizes_.push_back(unknown_size);
        holders_.push_back(0);
        holder_xor_.push_back(0);
    }
    ids_.emplace(std::string_view(digests_[id].str()), id);
    refs_[id] = 1;
    return id;
}

void Index::unref(DigestId id) {
    RP_ASSERT(id < refs_.size() && refs_[id] > 0);
    if (--refs_[id] != 0) {
        return;
    }
    RP_ASSERT(holders_[id] == 0);
    ids_.erase(std::string_view(digests_[id].str()));
    digests_[id] = Digest{}; // frees the string; the slot waits for reuse
    sizes_[id] = unknown_size;
    free_ids_.push_back(id);
}

RepoState& Index::slot(std::string_view name) {
    auto it = repos_.find(name);
    if (it == repos_.end()) {
        it = repos_.emplace(std::string(name), std::make_shared<RepoState>()).first;
        it->second->gen = ++next_gen_;
    }
    return *it->second;
}

void Index::prune(std::string_view name) {
    auto it = repos_.find(name);
    // use_count is exact here: copies of the map's pointer are made only
    // under the lock (lease), and a lease is never copied.
    if (it != repos_.end() && it->second.use_count() == 1 && !it->second->listed()) {
        RP_ASSERT(it->second->referrers.empty());
        repos_.erase(it);
    }
}

RepoLease::~RepoLease() {
    if (state_) {
        index_->release(name_, std::move(state_));
    }
}

void Index::release(const std::string& name, std::shared_ptr<RepoState> state) noexcept {
    state.reset();
    std::unique_lock lk(mu_);
    prune(name);
}

bool Index::repo_exists(std::string_view repo) const {
    std::shared_lock lk(mu_);
    const RepoState* r = find(repo);
    return r != nullptr && r->listed();
}

std::optional<Digest> Index::resolve_tag(std::string_view repo, std::string_view tag) const {
    std::shared_lock lk(mu_);
    const RepoState* r = find(repo);
    if (r == nullptr) {
        return std::nullopt;
    }
    auto it = r->tags.find(std::string(tag));
    if (it == r->tags.end()) {
        return std::nullopt;
    }
    return digest_of_id(it->second);
}

ManifestPtr Index::manifest(std::string_view repo, const Digest& d) const {
    std::shared_lock lk(mu_);
    const RepoState* r = find(repo);
    auto id = id_of(d);
    if (r == nullptr || !id) {
        return nullptr;
    }
    auto it = r->manifests.find(*id);
    return it == r->manifests.end() ? nullptr : it->second;
}

bool Index::has_layer(std::string_view repo, const Digest& d) const {
    std::shared_lock lk(mu_);
    const RepoState* r = find(repo);
    auto id = id_of(d);
    return r != nullptr && id && r->layers.count(*id) != 0;
}

bool Index::any_repo_has_layer(const Digest& d) const {
    std::shared_lock lk(mu_);
    auto id = id_of(d);
    return id && layer_refs_.count(*id) != 0;
}

bool Index::any_repo_has_layer_where(const Digest& d,
                                     const std::function<bool(std::string_view)>& accept) const {
    std::shared_lock lk(mu_);
    auto id = id_of(d);
    if (!id || layer_refs_.count(*id) == 0) {
        return false;
    }
    for (const auto& [name, r] : repos_) {
        if (r->layers.count(*id) != 0 && accept(name)) {
            return true;
        }
    }
    return false;
}

bool Index::blob_referenced(const Digest& d) const {
    std::shared_lock lk(mu_);
    auto id = id_of(d);
    return id && (blob_refs_.count(*id) != 0 || manifest_refs_.count(*id) != 0);
}

std::vector<std::pair<std::string, Digest>> Index::unreferenced_layer_links() const {
    std::vector<std::pair<std::string, Digest>> out;
    std::shared_lock lk(mu_);
    for (const auto& [name, r] : repos_) {
        for (DigestId id : r->layers) {
            if (blob_refs_.count(id) == 0 && manifest_refs_.count(id) == 0) {
                out.emplace_back(name, digest_of_id(id));
            }
        }
    }
    return out;
}

std::optional<std::vector<std::string>> Index::tags(std::string_view repo, std::string_view last,
                                                    std::size_t n, bool* more) const {
    std::shared_lock lk(mu_);
    const RepoState* r = find(repo);
    *more = false;
    if (r == nullptr || !r->listed()) {
        return std::nullopt;
    }
    std::vector<std::string> out;
    out.reserve(n != 0 && n < r->tags.size() ? n : r->tags.size());
    auto it = last.empty() ? r->tags.begin() : r->tags.upper_bound(std::string(last));
    for (; it != r->tags.end(); ++it) {
        if (n != 0 && out.size() == n) {
            *more = true;
            break;
        }
        out.push_back(it->first);
    }
    return out;
}

std::vector<std::string> Index::tags_pointing_to(std::string_view repo, const Digest& d) const {
    std::shared_lock lk(mu_);
    std::vector<std::string> out;
    const RepoState* r = find(repo);
    auto id = id_of(d);
    if (r == nullptr || !id) {
        return out;
    }
    for (const auto& [tag, tid] : r->tags) {
        if (tid == *id) {
            out.push_back(tag);
        }
    }
    return out;
}

std::vector<std::string> Index::catalog(std::string_view last, std::size_t n, bool* more) const {
    std::shared_lock lk(mu_);
    std::vector<std::string> out;
    *more = false;
    auto it = last.empty() ? repos_.begin() : repos_.upper_bound(last);
    for (; it != repos_.end(); ++it) {
        if (!it->second->listed()) {
            continue;
        }
        if (out.size() == n) {
            *more = true;
            break;
        }
        out.push_back(it->first);
    }
    return out;
}

std::vector<ManifestPtr> Index::referrers(std::string_view repo, const Digest& subject) const {
    std::shared_lock lk(mu_);
    std::vector<ManifestPtr> out;
    const RepoState* r = find(repo);
    auto sid = id_of(subject);
    if (r == nullptr || !sid) {
        return out;
    }
    auto it = r->referrers.find(*sid);
    if (it == r->referrers.end()) {
        return out;
    }
    for (DigestId id : it->second) {
        auto m = r->manifests.find(id);
        if (m != r->manifests.end() && m->second) {
            out.push_back(m->second);
        }
    }
    return out;
}

RepoLease Index::lease(std::string_view name) {
    {
        std::shared_lock lk(mu_);
        auto it = repos_.find(name);
        if (it != repos_.end()) {
            return RepoLease(*this, it->first, it->second);
        }
    }
    std::unique_lock lk(mu_);
    slot(name);
    auto it = repos_.find(name);
    return RepoLease(*this, it->first, it->second);
}

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

void Index::set_layer(RepoState& r, DigestId id) {
    if (r.layers.insert(id).second) {
        ++layer_refs_[id];
        ref(id);
        if (!r.manifests.contains(id)) {
            hold(r, id);
        }
    }
}

void Index::add_layer(std::string_view repo_name, const Digest& d, std::uint64_t size) {
    std::unique_lock lk(mu_);
    RepoState& r = slot(repo_name);
    DigestId id = ref(d);
    set_size(id, size);
    set_layer(r, id);
    unref(id);
    r.gen = ++next_gen_;
}

void Index::remove_layer(std::string_view repo_name, const Digest& d) {
    std::unique_lock lk(mu_);
    RepoState* r = find(repo_name);
    auto id = id_of(d);
    if (r == nullptr || !id || r->layers.erase(*id) == 0) {
        return;
    }
    r->gen = ++next_gen_;
    if (!r->manifests.contains(*id)) {
        unhold(*r, *id);
    }
    unref_layer(*id);
    unref(*id);
    prune(repo_name);
}

void Index::unref_layer(DigestId id) {
    auto ref = layer_refs_.find(id);
    if (ref != layer_refs_.end() && --ref->second == 0) {
        layer_refs_.erase(ref);
    }
}

void Index::unref_manifest(DigestId id) {
    auto s = manifest_refs_.find(id);
    if (s != manifest_refs_.end() && --s->second.repos == 0) {
        for (const Digest& b : s->second.m->blobs) {
            auto bid = id_of(b);
            auto ref = bid ? blob_refs_.find(*bid) : blob_refs_.end();
            if (ref != blob_refs_.end()) {
                if (--ref->second == 0) {
                    blob_refs_.erase(ref);
                }
                unref(*bid);
            }
        }
        manifest_refs_.erase(s);
    }
}

ManifestPtr Index::share(RepoState& r, DigestId id, ManifestPtr m) {
    SharedManifest& s = manifest_refs_[id];
    if (!s.m) { // the first repository to hold it: its blobs are referenced now
        for (const Digest& b : m->blobs) {
            ++blob_refs_[ref(b)];
        }
    }
    if (!s.m || (m->body && !s.m->body)) {
        s.m = std::move(m);
    }
    if (!r.manifests.contains(id)) {
        ++s.repos;
    }
    return s.m;
}

ManifestPtr Index::shared_manifest(const Digest& d) const {
    std::shared_lock lk(mu_);
    auto id = id_of(d);
    auto it = id ? manifest_refs_.find(*id) : manifest_refs_.end();
    return it == manifest_refs_.end() ? nullptr : it->second.m;
}

void Index::set_referrer(RepoState& r, const Digest& subject, DigestId id) {
    DigestId sid = ref(subject);
    auto [it, created] = r.referrers.try_emplace(sid);
    if (!created) {
        unref(sid); // the key holds its reference already
    }
    if (it->second.insert(id).second) {
        ref(id);
    }
}

void Index::set_manifest(RepoState& r, DigestId id, ManifestPtr m) {
    if (m->subject) {
        set_referrer(r, *m->subject, id);
    }
    ManifestPtr shared = share(r, id, std::move(m)); // before the slot exists: it counts r
    // Before the insert: a size learned now recounts the repositories that
    // hold it, which must not count this one yet (hold adds it).
    set_size(id, shared->size);
    auto [it, inserted] = r.manifests.try_emplace(id, shared);
    if (inserted) {
        ref(id);
        if (!r.layers.contains(id)) {
            hold(r, id);
        }
    } else {
        it->second = std::move(shared);
    }
}

void Index::put_manifest(std::string_view repo_name, ManifestPtr m) {
    std::unique_lock lk(mu_);
    RepoState& r = slot(repo_name);
    DigestId id = ref(m->digest);
    set_manifest(r, id, std::move(m));
    unref(id);
    r.gen = ++next_gen_;
}

void Index::set_tag(std::string_view repo_name, std::string_view tag, const Digest& d) {
    std::unique_lock lk(mu_);
    RepoState& r = slot(repo_name);
    DigestId id = ref(d);
    auto [it, inserted] = r.tags.try_emplace(std::string(tag), id);
    if (!inserted) {
        unref(it->second);
        it->second = id;
    }
    r.gen = ++next_gen_;
}

void Index::remove_tag(std::string_view repo_name, std::string_view tag) {
    std::unique_lock lk(mu_);
    RepoState* r = find(repo_name);
    if (r == nullptr) {
        return;
    }
    auto it = r->tags.find(std::string(tag));
    if (it == r->tags.end()) {
        return;
    }
    unref(it->second);
    r->tags.erase(it);
    r->gen = ++next_gen_;
    prune(repo_name);
}

void Index::remove_manifest(std::string_view repo_name, const Digest& d) {
    std::unique_lock lk(mu_);
    RepoState* r = find(repo_name);
    auto id = id_of(d);
    if (r == nullptr || !id) {
        return;
    }
    r->gen = ++next_gen_;
    for (auto t = r->tags.begin(); t != r->tags.end();) {
        if (t->second == *id) {
            unref(t->second);
            t = r->tags.erase(t);
        } else {
            ++t;
        }
    }
    auto it = r->manifests.find(*id);
    if (it != r->manifests.end()) {
        if (it->second && it->second->subject) {
            auto sid = id_of(*it->second->subject);
            auto refs = sid ? r->referrers.find(*sid) : r->referrers.end();
            if (refs != r->referrers.end() && refs->second.erase(*id) != 0) {
                unref(*id);
                if (refs->second.empty()) {
                    r->referrers.erase(refs);
                    unref(*sid);
                }
            }
        }
        r->manifests.erase(it);
        if (!r->layers.contains(*id)) {
            unhold(*r, *id);
        }
        unref_manifest(*id);
        unref(*id);
    }
    prune(repo_name);
}

void Index::fill(RepoState& r, RepoLoad load) {
    for (const Digest& d : load.layers) {
        DigestId id = ref(d);
        set_layer(r, id);
        unref(id);
    }
    for (ManifestPtr& m : load.manifests) {
        DigestId id = ref(m->digest);
        set_manifest(r, id, std::move(m));
        unref(id);
    }
    for (auto& [tag, d] : load.tags) {
        DigestId id = ref(d);
        std::size_t before = r.tags.size();
        r.tags.emplace_hint(r.tags.end(), std::move(tag), id);
        if (r.tags.size() == before) {
            unref(id); // a tag listed twice: the first stands
        }
    }
    r.gen = ++next_gen_;
}

void Index::clear(RepoState& r) {
    for (DigestId id : r.layers) {
        if (!r.manifests.contains(id)) {
            unhold(r, id);
        }
        unref_layer(id);
        unref(id);
    }
    r.layers.clear(); // before the manifests: each of them is held now
    for (const auto& [id, m] : r.manifests) {
        unhold(r, id);
        unref_manifest(id);
        unref(id);
    }
    for (const auto& [sid, ids] : r.referrers) {
        for (DigestId id : ids) {
            unref(id);
        }
        unref(sid);
    }
    for (const auto& [tag, id] : r.tags) {
        unref(id);
    }
    r.manifests.clear();
    r.referrers.clear();
    r.tags.clear();
    r.gen = ++next_gen_;
}

void Index::load_repo(std::string_view repo_name, RepoLoad load) {
    std::unique_lock lk(mu_);
    fill(slot(repo_name), std::move(load));
    prune(repo_name);
}

std::vector<std::string> Index::repo_names(bool all) const {
    std::shared_lock lk(mu_);
    std::vector<std::string> out;
    out.reserve(repos_.size());
    for (const auto& [name, r] : repos_) {
        if (all || r->listed()) {
            out.push_back(name);
        }
    }
    return out;
}

std::optional<std::uint64_t> Index::generation(std::string_view repo) const {
    std::shared_lock lk(mu_);
    const RepoState* r = find(repo);
    return r == nullptr ? std::nullopt : std::optional<std::uint64_t>(r->gen);
}

std::optional<Index::RepoContent> Index::content(std::string_view repo, bool* writing) const {
    std::shared_lock lk(mu_);
    const RepoState* r = find(repo);
    if (writing != nullptr) {
        *writing = r != nullptr && r->write_mu.held();
    }
    if (r == nullptr) {
        return std::nullopt;
    }
    RepoContent c;
    c.gen = r->gen;
    c.layers.reserve(r->layers.size());
    for (DigestId id : r->layers) {
        c.layers.push_back(digest_of_id(id));
    }
    c.manifests.reserve(r->manifests.size());
    for (const auto& [id, m] : r->manifests) {
        c.manifests.push_back(digest_of_id(id));
    }
    c.tags.reserve(r->tags.size());
    for (const auto& [tag, id] : r->tags) {
        c.tags.emplace_back(tag, digest_of_id(id));
    }
    return c;
}

bool Index::same_content(std::string_view repo, const RepoLoad& load) const {
    std::shared_lock lk(mu_);
    const RepoState* r = find(repo);
    if (r == nullptr) {
        return load.layers.empty() && load.manifests.empty() && load.tags.empty();
    }
    if (r->layers.size() != load.layers.size() || r->manifests.size() != load.manifests.size() ||
        r->tags.size() != load.tags.size()) {
        return false;
    }
    for (const Digest& d : load.layers) {
        auto id = id_of(d);
        if (!id || !r->layers.contains(*id)) {
            return false;
        }
    }
    for (const ManifestPtr& m : load.manifests) {
        auto id = id_of(m->digest);
        if (!id || !r->manifests.contains(*id)) {
            return false;
        }
    }
    for (const auto& [tag, d] : load.tags) {
        auto it = r->tags.find(tag);
        auto id = id_of(d);
        if (it == r->tags.end() || !id || it->second != *id) {
            return false;
        }
    }
    return true;
}

bool Index::replace_repo(std::string_view repo_name, std::uint64_t gen, RepoLoad load) {
    std::unique_lock lk(mu_);
    RepoState* found = find(repo_name);
    // gen 0 was read from an absent repository: it may be made now.
    if (found == nullptr ? gen != 0 : found->gen != gen) {
        return false;
    }
    RepoState& r = slot(repo_name);
    // What it held keeps its id (and the size learned for it) across the
    // change: most of it comes straight back.
    std::vector<DigestId> kept(r.layers.begin(), r.layers.end());
    for (const auto& [id, m] : r.manifests) {
        kept.push_back(id);
    }
    for (DigestId id : kept) {
        ref(id);
    }
    clear(r);
    std::sort(load.tags.begin(), load.tags.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    fill(r, std::move(load));
    for (DigestId id : kept) {
        unref(id);
    }
    prune(repo_name);
    return true;
}

Index::Counts Index::counts() const {
    std::shared_lock lk(mu_);
    Counts c;
    for (const auto& [name, r] : repos_) {
        if (!r->listed()) {
            continue;
        }
        ++c.repos;
        c.tags += r->tags.size();
        c.manifests += r->manifests.size();
        c.layers += r->layers.size();
    }
    return c;
}

} // namespace rp::storage

namespace rp::storage {

Index::Footprint Index::footprint() const {
    std::shared_lock lk(mu_);
    return Footprint{repos_.size(), ids_.size(), digests_.size()};
}

} // namespace rp::storage

namespace rp::storage {

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
