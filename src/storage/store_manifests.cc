// SPDX-License-Identifier: Apache-2.0
// Manifest and tag operations of Store (blobs and uploads are in store.cc).
#include <fcntl.h>

#include <algorithm>

#include "reactor/shard.hh"
#include "storage/layout.hh"
#include "storage/store.hh"
#include "util/assert.hh"

namespace rp::storage {

using reactor::Task;
using util::Errc;
using util::Error;
using util::Result;

Task<Result<void>> Store::write_blob_bytes(const Digest& d, std::string bytes) noexcept {
    std::string data = layout::blob_data(d);
    auto exists = co_await fs_.stat(data);
    if (exists) {
        co_return util::Ok{};
    }
    co_return co_await fs_.write_atomic(std::move(data), std::move(bytes));
}

Task<Result<void>> Store::put_manifest(std::string repo, ManifestPtr m,
                                       std::optional<std::string> tag,
                                       bool children_here) noexcept {
    RP_ASSERT(m && m->body);
    // The use before the repository's lock: a collection holding the digest
    // as removing may wait for that lock, never the other way round.
    BlobUse use = co_await use_blob(m->digest);
    RepoLease rs = index_.lease(repo);
    co_await rs->write_mu.lock();
    reactor::AsyncLockGuard guard(rs->write_mu);
    for (const Digest& child : m->children) {
        if (children_here && !index_.manifest(repo, child)) {
            co_return Error::of(Errc::not_found, child.str());
        }
    }
    if (auto j = co_await note_write(repo); !j) {
        co_return std::move(j).error();
    }
    auto w = co_await write_blob_bytes(m->digest, *m->body);
    if (!w) {
        co_return w;
    }
    if (!index_.manifest(repo, m->digest)) {
        w = co_await fs_.write_atomic(layout::revision_link(repo, m->digest), m->digest.str());
        if (!w) {
            co_return w;
        }
    }
    // A tag's index entry first, then current/link (Distribution's order).
    if (tag) {
        w = co_await fs_.write_atomic(layout::tag_index_link(repo, *tag, m->digest),
                                      m->digest.str());
        if (w) {
            w = co_await fs_.write_atomic(layout::tag_current_link(repo, *tag), m->digest.str());
        }
        if (!w) {
            co_return w;
        }
    }
    ManifestPtr stored = m;
    ManifestPtr shared = index_.shared_manifest(m->digest);
    if (shared && (shared->body || !m->body)) {
        stored = std::move(shared); // held by another repository: one copy, cached once
    } else if (m->body) {
        auto copy = std::make_shared<ManifestInfo>(*m);
        copy->body = cache_body(std::move(copy->body)); // null over budget: read from disk
        stored = std::move(copy);
    }
    index_.put_manifest(repo, stored);
    if (tag) {
        index_.set_tag(repo, *tag, m->digest);
    }
    // A tag or index may now reach manifests a collection found untagged.
    record_use(m->digest);
    for (const Digest& child : m->children) {
        record_use(child);
    }
    co_return util::Ok{};
}

Task<Result<std::shared_ptr<const std::string>>> Store::manifest_body(ManifestPtr m) noexcept {
    if (m->body) {
        co_return m->body;
    }
    auto b = co_await fs_.read_file(layout::blob_data(m->digest), cfg_.manifest_bytes_max * 4);
    if (!b) {
        co_return std::move(b).error();
    }
    co_return std::make_shared<const std::string>(std::move(*b));
}

Task<Result<void>> Store::delete_manifest(std::string repo, Digest d) noexcept {
    if (!index_.manifest(repo, d)) { // a miss takes no lease: it leaves no state
        co_return Error::of(Errc::not_found, "manifest unknown");
    }
    RepoLease rs = index_.lease(repo);
    co_await rs->write_mu.lock();
    reactor::AsyncLockGuard guard(rs->write_mu);
    if (auto j = co_await note_write(repo); !j) {
        co_return std::move(j).error();
    }
    if (!index_.manifest(repo, d)) {
        co_return Error::of(Errc::not_found, "manifest unknown");
    }
    // Tags that point at it go with it (Distribution v3 does the same).
    for (const std::string& tag : index_.tags_pointing_to(repo, d)) {
        auto r = co_await fs_.remove_tree(layout::tag_dir(repo, tag));
        if (!r) {
            co_return r;
        }
        index_.remove_tag(repo, tag);
    }
    std::string link = layout::revision_link(repo, d);
    auto r = co_await fs_.remove_tree(std::string(layout::parent(link)));
    if (!r) {
        co_return r;
    }
    (void)co_await fs_.fsync_dir(std::string(layout::parent(layout::parent(link))));
    index_.remove_manifest(repo, d);
    co_return util::Ok{};
}

Task<Result<Store::RepoDeleted>> Store::delete_repository(std::string repo) noexcept {
    if (!index_.repo_exists(repo)) { // a miss takes no lease: it leaves no state
        co_return Error::of(Errc::not_found, "repository unknown");
    }
    RepoLease rs = index_.lease(repo);
    co_await rs->write_mu.lock();
    reactor::AsyncLockGuard guard(rs->write_mu);
    auto c = index_.content(repo);
    if (!c || (c->tags.empty() && c->manifests.empty() && c->layers.empty())) {
        co_return Error::of(Errc::not_found, "repository unknown");
    }
    if (auto j = co_await note_write(repo); !j) {
        co_return std::move(j).error();
    }
    // Tags and revisions first, then the layer links: a crash between leaves
    // links without manifests, which a pull never reaches.
    for (std::string dir :
         {std::string(layout::parent(layout::tags_dir(repo))), layout::layers_dir(repo)}) {
        if (auto r = co_await fs_.remove_tree(std::move(dir)); !r) {
            co_return std::move(r).error();
        }
    }
    (void)co_await fs_.fsync_dir(layout::repo_dir(repo));
    (void)index_.replace_repo(repo, c->gen, Index::RepoLoad{}); // under write_mu: gen holds
    co_return RepoDeleted{c->tags.size(), c->manifests.size(), c->layers.size()};
}

Task<Result<void>> Store::delete_tag(std::string repo, std::string tag) noexcept {
    if (!index_.resolve_tag(repo, tag)) { // a miss takes no lease: it leaves no state
        co_return Error::of(Errc::not_found, "tag unknown");
    }
    RepoLease rs = index_.lease(repo);
    co_await rs->write_mu.lock();
    reactor::AsyncLockGuard guard(rs->write_mu);
    if (auto j = co_await note_write(repo); !j) {
        co_return std::move(j).error();
    }
    if (!index_.resolve_tag(repo, tag)) {
        co_return Error::of(Errc::not_found, "tag unknown");
    }
    auto r = co_await fs_.remove_tree(layout::tag_dir(repo, tag));
    if (!r) {
        co_return r;
    }
    (void)co_await fs_.fsync_dir(layout::tags_dir(repo));
    index_.remove_tag(repo, tag);
    co_return util::Ok{};
}

Task<std::vector<Store::Outcome>>
Store::delete_tags(std::string repo, std::vector<std::pair<std::string, Digest>> tags) noexcept {
    std::vector<Outcome> out(tags.size(), Outcome::kept);
    if (!index_.repo_exists(repo)) { // a miss takes no lease: it leaves no state
        co_return out;
    }
    RepoLease rs = index_.lease(repo);
    co_await rs->write_mu.lock();
    reactor::AsyncLockGuard guard(rs->write_mu);
    if (auto j = co_await note_write(repo); !j) {
        std::fill(out.begin(), out.end(), Outcome::failed);
        co_return out;
    }
    std::vector<std::string> dirs;
    std::vector<std::size_t> which;
    for (std::size_t i = 0; i < tags.size(); ++i) {
        auto now = index_.resolve_tag(repo, tags[i].first);
        if (now && *now == tags[i].second) { // else gone or moved since planned: kept
            dirs.push_back(layout::tag_dir(repo, tags[i].first));
            which.push_back(i);
        }
    }
    std::vector<char> removed(dirs.size(), 0);
    const int dirfd = fs_.dirfd();
    co_await reactor::Shard::current()->blocking().run([&dirs, &removed, dirfd] {
        for (std::size_t k = 0; k < dirs.size(); ++k) {
            auto r = blocking::remove_tree(dirfd, dirs[k]);
            removed[k] = static_cast<char>(r || r.error().kind == Errc::not_found);
        }
    });
    (void)co_await fs_.fsync_dir(layout::tags_dir(repo));
    for (std::size_t k = 0; k < which.size(); ++k) {
        if (removed[k] != 0) {
            index_.remove_tag(repo, tags[which[k]].first);
        }
        out[which[k]] = removed[k] != 0 ? Outcome::deleted : Outcome::failed;
    }
    co_return out;
}

} // namespace rp::storage
