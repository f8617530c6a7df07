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

DigestId Index::intern(const Digest& d) {
    if (auto id = id_of(d)) {
        return *id;
    }
    RP_ASSERT(digests_.size() < UINT32_MAX);
    auto id = static_cast<DigestId>(digests_.size());
    digests_.push_back(d);
    ids_.emplace(std::string_view(digests_.back().str()), id);
    return id;
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

RepoState& Index::repo(std::string_view name) {
    {
        std::shared_lock lk(mu_);
        if (RepoState* r = find(name)) {
            return *r;
        }
    }
    std::unique_lock lk(mu_);
    auto& slot = repos_[std::string(name)];
    if (!slot) {
        slot = std::make_unique<RepoState>();
    }
    return *slot;
}

void Index::add_layer(std::string_view repo_name, const Digest& d) {
    RepoState& r = repo(repo_name);
    std::unique_lock lk(mu_);
    DigestId id = intern(d);
    if (r.layers.insert(id).second) {
        ++layer_refs_[id];
        ++r.gen;
    }
}

void Index::remove_layer(std::string_view repo_name, const Digest& d) {
    std::unique_lock lk(mu_);
    RepoState* r = find(repo_name);
    auto id = id_of(d);
    if (r == nullptr || !id || r->layers.erase(*id) == 0) {
        return;
    }
    ++r->gen;
    unref_layer(*id);
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
        manifest_refs_.erase(s);
    }
}

ManifestPtr Index::share(RepoState& r, DigestId id, ManifestPtr m) {
    SharedManifest& s = manifest_refs_[id];
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

void Index::put_manifest(std::string_view repo_name, ManifestPtr m) {
    RepoState& r = repo(repo_name);
    std::unique_lock lk(mu_);
    DigestId id = intern(m->digest);
    if (m->subject) {
        r.referrers[intern(*m->subject)].insert(id);
    }
    ManifestPtr shared = share(r, id, std::move(m)); // before the slot exists: it counts r
    r.manifests[id] = std::move(shared);
    ++r.gen;
}

void Index::set_tag(std::string_view repo_name, std::string_view tag, const Digest& d) {
    RepoState& r = repo(repo_name);
    std::unique_lock lk(mu_);
    r.tags[std::string(tag)] = intern(d);
    ++r.gen;
}

void Index::remove_tag(std::string_view repo_name, std::string_view tag) {
    std::unique_lock lk(mu_);
    if (RepoState* r = find(repo_name)) {
        r->tags.erase(std::string(tag));
        ++r->gen;
    }
}

void Index::remove_manifest(std::string_view repo_name, const Digest& d) {
    std::unique_lock lk(mu_);
    RepoState* r = find(repo_name);
    auto id = id_of(d);
    if (r == nullptr || !id) {
        return;
    }
    ++r->gen;
    auto it = r->manifests.find(*id);
    if (it != r->manifests.end()) {
        if (it->second && it->second->subject) {
            auto sid = id_of(*it->second->subject);
            auto ref = sid ? r->referrers.find(*sid) : r->referrers.end();
            if (ref != r->referrers.end()) {
                ref->second.erase(*id);
                if (ref->second.empty()) {
                    r->referrers.erase(ref);
                }
            }
        }
        r->manifests.erase(it);
        unref_manifest(*id);
    }
    for (auto t = r->tags.begin(); t != r->tags.end();) {
        t = t->second == *id ? r->tags.erase(t) : std::next(t);
    }
}

void Index::fill(RepoState& r, RepoLoad load) {
    for (const Digest& d : load.layers) {
        DigestId id = intern(d);
        if (r.layers.insert(id).second) {
            ++layer_refs_[id];
        }
    }
    for (ManifestPtr& m : load.manifests) {
        DigestId id = intern(m->digest);
        if (m->subject) {
            r.referrers[intern(*m->subject)].insert(id);
        }
        ManifestPtr shared = share(r, id, std::move(m)); // before the slot exists
        r.manifests[id] = std::move(shared);
    }
    for (auto& [tag, d] : load.tags) {
        r.tags.emplace_hint(r.tags.end(), std::move(tag), intern(d));
    }
    ++r.gen;
}

void Index::clear(RepoState& r) {
    for (DigestId id : r.layers) {
        unref_layer(id);
    }
    for (const auto& [id, m] : r.manifests) {
        unref_manifest(id);
    }
    r.layers.clear();
    r.manifests.clear();
    r.referrers.clear();
    r.tags.clear();
    ++r.gen;
}

void Index::load_repo(std::string_view repo_name, RepoLoad load) {
    RepoState& r = repo(repo_name);
    std::unique_lock lk(mu_);
    fill(r, std::move(load));
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

std::optional<Index::RepoContent> Index::content(std::string_view repo) const {
    std::shared_lock lk(mu_);
    const RepoState* r = find(repo);
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
    RepoState& r = repo(repo_name);
    std::unique_lock lk(mu_);
    if (r.gen != gen) {
        return false;
    }
    clear(r);
    std::sort(load.tags.begin(), load.tags.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    fill(r, std::move(load));
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
