// SPDX-License-Identifier: Apache-2.0
// The store's side of garbage collection: the uses it remembers for the
// grace period, taking a digest as being removed, and removing batches of
// blobs (links, then data) and untagged manifests. storage/gc.cc drives it.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "reactor/shard.hh"
#include "storage/layout.hh"
#include "storage/store.hh"
#include "storage/tree_scan.hh"

namespace rp::storage {

using reactor::Task;
using util::Errc;
using util::Result;

bool Store::take_for_removal_locked(const std::string& key, std::int64_t used_before) {
    auto used = last_use_.find(key);
    if (blob_uses_.contains(key) || blob_removing_.contains(key) ||
        (used != last_use_.end() && used->second >= used_before)) {
        return false;
    }
    blob_removing_.insert(key);
    return true;
}

void Store::forget_uses_before_locked(std::int64_t before) {
    std::erase_if(last_use_, [before](const auto& kv) { return kv.second < before; });
}

void Store::record_use(const Digest& d) noexcept {
    const auto now = static_cast<std::int64_t>(std::time(nullptr));
    std::lock_guard lk(blob_use_mu_);
    last_use_[d.str()] = now;
    // Bounded by what was used within the remembered span: every so many
    // records, what is older than it goes.
    if (++uses_recorded_ % 4096 == 0) {
        forget_uses_before_locked(now - cfg_.use_memory_s);
    }
}

Task<void> Store::note_use(std::string repo, Digest d) noexcept {
    BlobUse use = co_await use_blob(d);
    if (index_.has_layer(repo, d)) {
        record_use(d);
    }
}

std::optional<std::int64_t> Store::last_use(const Digest& d) noexcept {
    std::lock_guard lk(blob_use_mu_);
    auto it = last_use_.find(d.str());
    return it == last_use_.end() ? std::nullopt : std::optional(it->second);
}

void Store::forget_uses_before(std::int64_t before) noexcept {
    std::lock_guard lk(blob_use_mu_);
    forget_uses_before_locked(before);
}

namespace {

// Blocking (a helper thread): removes `links` (paths under v2fd) and their
// directories (ok[i] when links[i] is gone), then makes that durable with
// one syncfs for links in many directories; false when that failed.
bool unlink_links(int v2fd, const std::vector<std::string>& links, std::vector<char>& ok) {
    for (std::size_t i = 0; i < links.size(); ++i) {
        ok[i] = static_cast<char>(::unlinkat(v2fd, links[i].c_str(), 0) == 0 || errno == ENOENT);
        if (ok[i] != 0) {
            (void)::unlinkat(v2fd, std::string(layout::parent(links[i])).c_str(), AT_REMOVEDIR);
        }
    }
    return links.empty() || ::syncfs(v2fd) == 0;
}

// Blocking: removes each blob's data and directory; the bytes freed, 0 when
// it was gone already, -1 on an error.
void unlink_data(int v2fd, const std::vector<std::string>& data, std::vector<std::int64_t>& freed) {
    for (std::size_t i = 0; i < data.size(); ++i) {
        struct stat st {};
        const bool had = ::fstatat(v2fd, data[i].c_str(), &st, 0) == 0;
        if (::unlinkat(v2fd, data[i].c_str(), 0) == 0) {
            (void)::unlinkat(v2fd, std::string(layout::parent(data[i])).c_str(), AT_REMOVEDIR);
            freed[i] = had ? static_cast<std::int64_t>(st.st_size) : 0;
        } else {
            freed[i] = errno == ENOENT ? 0 : -1;
        }
    }
}

} // namespace

Task<Store::Collected> Store::collect_blobs(std::vector<Collectable> batch,
                                            std::int64_t used_before) noexcept {
    Collected out;
    std::vector<Collectable*> taken;
    {
        std::lock_guard lk(blob_use_mu_);
        for (Collectable& c : batch) {
            // Once taken, until the end, a use (commit, mount, manifest put,
            // HEAD) waits: nothing links the blob again while it goes.
            if (index_.blob_referenced(c.d) || !take_for_removal_locked(c.d.str(), used_before)) {
                ++out.kept;
                continue;
            }
            taken.push_back(&c);
        }
    }
    // Links first, then the data: a crash between leaves an unlinked blob
    // (the next run takes it), never a link to nothing.
    std::map<std::string, std::vector<Collectable*>> by_repo;
    for (Collectable* c : taken) {
        for (const std::string& repo : c->linked_in) {
            by_repo[repo].push_back(c);
        }
    }
    std::unordered_set<Collectable*> kept_data; // a link stayed: so does the data
    reactor::ThreadPool& pool = reactor::Shard::current()->blocking();
    const int v2fd = fs_.dirfd();
    if (!by_repo.empty()) {
        // Every repository's write lock, in name order (other writers take
        // one at a time, so this cannot deadlock), then one journal record
        // and one blocking call for all the links, made durable by one
        // syncfs before any data goes.
        std::vector<RepoLease> leases;
        std::vector<std::string> names;
        for (auto& [repo, cs] : by_repo) {
            leases.push_back(index_.lease(repo));
            co_await leases.back()->write_mu.lock();
            names.push_back(repo);
        }
        Result<void> j = util::Ok{};
        if (journal_ != nullptr) {
            j = co_await journal_->record_all(names);
        }
        std::vector<std::string> links;
        std::vector<std::pair<const std::string*, Collectable*>> linked;
        for (auto& [repo, cs] : by_repo) {
            for (Collectable* c : cs) {
                if (!j) {
                    kept_data.insert(c);
                } else if (index_.has_layer(repo, c->d)) {
                    links.push_back(layout::layer_link(repo, c->d));
                    linked.emplace_back(&repo, c);
                }
            }
        }
        std::vector<char> ok(links.size(), 0);
        bool durable = false;
        co_await pool.run(
            [v2fd, &links, &ok, &durable] { durable = unlink_links(v2fd, links, ok); });
        for (std::size_t i = 0; i < links.size(); ++i) {
            if (ok[i] != 0) {
                index_.remove_layer(*linked[i].first, linked[i].second->d);
                ++out.links;
            }
            if (ok[i] == 0 || !durable) { // the data stays until its link is surely gone
                kept_data.insert(linked[i].second);
            }
        }
        for (RepoLease& l : leases) {
            l->write_mu.unlock();
        }
    }
    std::vector<std::string> data;
    std::vector<const Digest*> data_of;
    data.reserve(taken.size());
    data_of.reserve(taken.size());
    for (Collectable* c : taken) {
        if (!kept_data.contains(c)) {
            data.push_back(layout::blob_data(c->d));
            data_of.push_back(&c->d);
        }
    }
    std::vector<std::int64_t> freed(data.size(), -1);
    co_await pool.run([v2fd, &data, &freed] { unlink_data(v2fd, data, freed); });
    out.freed.reserve(freed.size());
    for (std::size_t i = 0; i < freed.size(); ++i) {
        if (freed[i] < 0) {
            ++out.errors;
        } else {
            ++out.blobs;
            out.bytes += static_cast<std::uint64_t>(freed[i]);
            out.freed.emplace_back(*data_of[i], static_cast<std::uint64_t>(freed[i]));
        }
    }
    out.errors += kept_data.size();
    {
        std::lock_guard lk(blob_use_mu_);
        for (Collectable* c : taken) {
            blob_removing_.erase(c->d.str());
            last_use_.erase(c->d.str());
        }
    }
    co_return out;
}

Task<Result<bool>> Store::collect_manifest(std::string repo, Digest d,
                                           std::int64_t used_before) noexcept {
    auto out = co_await collect_manifests(std::move(repo), {d}, {used_before});
    if (out.front() == Outcome::failed) {
        co_return util::Error::of(Errc::system, "deleting manifest " + d.str() + " failed");
    }
    co_return out.front() == Outcome::deleted;
}

Task<std::vector<Store::Outcome>> Store::collect_manifests(std::string repo, std::vector<Digest> ds,
                                                           std::vector<std::int64_t> cut) noexcept {
    std::vector<Outcome> out(ds.size(), Outcome::kept);
    std::vector<std::size_t> taken;
    {
        // Once taken, a put of one of them waits: it is stored again after
        // the deletion, never lost to it.
        std::lock_guard lk(blob_use_mu_);
        for (std::size_t i = 0; i < ds.size(); ++i) {
            if (take_for_removal_locked(ds[i].str(), cut[i])) {
                taken.push_back(i);
            }
        }
    }
    if (!taken.empty() && index_.repo_exists(repo)) {
        RepoLease rs = index_.lease(repo);
        co_await rs->write_mu.lock();
        reactor::AsyncLockGuard guard(rs->write_mu);
        if (auto j = co_await note_write(repo); !j) {
            for (std::size_t i : taken) {
                out[i] = Outcome::failed;
            }
        } else {
            // Still held and untagged: its entries in the tags' histories
            // (each tag's index/ listed once), then its revision, all in one
            // trip to the blocking pool.
            bool more = false;
            auto tags = index_.tags(repo, "", 0, &more);
            // "<alg>/<hex>" of each doomed digest -> its place in `doomed`
            std::unordered_map<std::string, std::size_t> names;
            std::vector<std::pair<std::size_t, std::string>> doomed; // (item, revision dir)
            std::set<std::string> parents;
            for (std::size_t i : taken) {
                if (!index_.manifest(repo, ds[i]) ||
                    !index_.tags_pointing_to(repo, ds[i]).empty()) {
                    continue;
                }
                names.emplace(std::string(ds[i].algorithm_name()) + "/" + std::string(ds[i].hex()),
                              doomed.size());
                std::string rev(layout::parent(layout::revision_link(repo, ds[i])));
                parents.emplace(layout::parent(rev));
                doomed.emplace_back(i, std::move(rev));
            }
            std::vector<char> ok(doomed.size(), 1);
            const int dirfd = fs_.dirfd();
            const std::vector<std::string> tag_names =
                tags ? std::move(*tags) : std::vector<std::string>{};
            co_await reactor::Shard::current()->blocking().run([&doomed, &ok, &names, &tag_names,
                                                                &repo, dirfd] {
                for (const std::string& tag : tag_names) {
                    const std::string index = layout::tag_dir(repo, tag) + "/index";
                    for (const tree::Entry& alg : tree::list_dir(dirfd, index)) {
                        for (const tree::Entry& hex :
                             tree::list_dir(dirfd, index + "/" + alg.name)) {
                            auto hit = names.find(alg.name + "/" + hex.name);
                            if (hit == names.end()) {
                                continue;
                            }
                            auto r = blocking::remove_tree(dirfd,
                                                           index + "/" + alg.name + "/" + hex.name);
                            if (!r && r.error().kind != Errc::not_found) {
                                ok[hit->second] = 0; // its history stays: so does it
                            }
                        }
                    }
                }
                for (std::size_t k = 0; k < doomed.size(); ++k) {
                    if (ok[k] != 0) {
                        auto r = blocking::remove_tree(dirfd, doomed[k].second);
                        ok[k] = static_cast<char>(r || r.error().kind == Errc::not_found);
                    }
                }
            });
            for (const std::string& dir : parents) {
                (void)co_await fs_.fsync_dir(dir);
            }
            for (std::size_t k = 0; k < doomed.size(); ++k) {
                const std::size_t i = doomed[k].first;
                if (ok[k] != 0) {
                    index_.remove_manifest(repo, ds[i]);
                }
                out[i] = ok[k] != 0 ? Outcome::deleted : Outcome::failed;
            }
        }
    }
    {
        std::lock_guard lk(blob_use_mu_);
        for (std::size_t i : taken) {
            blob_removing_.erase(ds[i].str());
        }
    }
    co_return out;
}

} // namespace rp::storage
