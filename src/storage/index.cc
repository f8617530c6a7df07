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
