// SPDX-License-Identifier: Apache-2.0
#include "storage/gc.hh"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <deque>
#include <limits>
#include <map>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "reactor/shard.hh"
#include "storage/layout.hh"
#include "storage/tree_scan.hh"

namespace rp::storage {

using reactor::Task;

const char* GcProgress::phase_name(int p) noexcept {
    switch (p) {
    case marking: return "marking";
    case deleting_manifests: return "deleting manifests";
    case sweeping: return "sweeping";
    case done: return "done";
    case failed: return "failed";
    default: return "idle";
    }
}

std::unordered_set<std::string>
reached_by_tags(const Index& index, const std::string& repo,
                const std::vector<std::pair<std::string, Digest>>& tags) {
    std::unordered_set<std::string> reached;
    std::deque<Digest> todo;
    for (const auto& [tag, d] : tags) {
        if (reached.insert(d.str()).second) {
            todo.push_back(d);
        }
    }
    // Bounded: each manifest enters `todo` once.
    while (!todo.empty()) {
        Digest d = std::move(todo.front());
        todo.pop_front();
        if (ManifestPtr m = index.manifest(repo, d)) {
            for (const Digest& child : m->children) {
                if (reached.insert(child.str()).second) {
                    todo.push_back(child);
                }
            }
        }
        for (const ManifestPtr& r : index.referrers(repo, d)) {
            if (reached.insert(r->digest.str()).second) {
                todo.push_back(r->digest);
            }
        }
    }
    return reached;
}

namespace {

// Whether a file under v2 was modified at or after `since`.
Task<bool> modified_since(Store& store, std::string path, std::int64_t since) noexcept {
    auto st = co_await store.fs().stat(std::move(path));
    co_return st&& static_cast<std::int64_t>(st->stx_mtime.tv_sec) >= since;
}

// The same, blocking (a helper thread).
bool modified_since(int v2fd, const std::string& path, std::int64_t since) {
    struct stat st {};
    return ::fstatat(v2fd, path.c_str(), &st, 0) == 0 && st.st_mtime >= since;
}

} // namespace

Task<void> collect_garbage(Store& store, GcOptions opt, GcProgress& progress,
                           GcOutput out) noexcept {
    auto emit = [&out](const std::string& line) {
        if (out) {
            out(line);
        }
    };
    Index& index = store.index();
    const std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
    // With no grace period, no use keeps anything (Distribution's offline run).
    const std::int64_t used_before =
        opt.grace_s > 0 ? now - opt.grace_s : std::numeric_limits<std::int64_t>::max();
    progress.started_at.store(now);
    progress.phase.store(GcProgress::marking);

    // Mark, from the index: every manifest kept, and what it references.
    std::unordered_set<std::string> marked;
    struct Doomed {
        std::string repo;
        Digest d;
    };
    std::vector<Doomed> doomed;
    for (const std::string& repo : index.repo_names(true)) {
        auto c = index.content(repo);
        if (!c) {
            continue;
        }
        progress.repositories.fetch_add(1, std::memory_order_relaxed);
        emit(repo);
        std::unordered_set<std::string> reached;
        if (opt.delete_untagged) {
            reached = reached_by_tags(index, repo, c->tags);
        }
        for (const Digest& d : c->manifests) {
            if (opt.delete_untagged && !reached.contains(d.str())) {
                bool recent = false;
                if (opt.grace_s > 0) {
                    auto used = store.last_use(d);
                    recent =
                        (used && *used >= used_before) ||
                        co_await modified_since(store, layout::revision_link(repo, d), used_before);
                }
                if (!recent) {
                    emit("manifest eligible for deletion: " + d.str());
                    doomed.push_back(Doomed{repo, d});
                    continue;
                }
                progress.kept_in_grace.fetch_add(1, std::memory_order_relaxed);
            }
            emit(repo + ": marking manifest " + d.str() + " ");
            marked.insert(d.str());
            if (ManifestPtr m = index.manifest(repo, d)) {
                for (const Digest& b : m->blobs) {
                    marked.insert(b.str());
                    emit(repo + ": marking blob " + b.str());
                }
                for (const Digest& child : m->children) {
                    marked.insert(child.str());
                    emit(repo + ": marking blob " + child.str());
                }
            }
        }
    }
    progress.marked.store(marked.size());
    progress.manifests_eligible.store(doomed.size());

    if (!opt.dry_run && !doomed.empty()) {
        progress.phase.store(GcProgress::deleting_manifests);
        for (const Doomed& m : doomed) {
            auto del = co_await store.collect_manifest(m.repo, m.d, used_before);
            if (!del) {
                progress.errors.fetch_add(1, std::memory_order_relaxed);
            } else if (*del) {
                progress.manifests_deleted.fetch_add(1, std::memory_order_relaxed);
                if (opt.on_manifest_deleted) {
                    opt.on_manifest_deleted(m.repo, m.d);
                }
            } else {
                marked.insert(m.d.str()); // kept after all: so is what it references
                if (ManifestPtr kept = index.manifest(m.repo, m.d)) {
                    for (const Digest& b : kept->blobs) {
                        marked.insert(b.str());
                    }
                }
            }
        }
    }

    // Sweep: what blobs/ holds and the mark did not reach.
    progress.phase.store(GcProgress::sweeping);
    const int v2fd = store.fs().dirfd();
    std::vector<Digest> blobs;
    co_await reactor::Shard::current()->blocking().run(
        [&blobs, v2fd] { blobs = tree::list_blobs(v2fd); });
    progress.blobs_scanned.store(blobs.size());
    std::vector<Digest> eligible;
    for (Digest& d : blobs) {
        if (!marked.contains(d.str())) {
            eligible.push_back(std::move(d));
        }
    }
    blobs = {};
    progress.blobs_eligible.store(eligible.size());
    emit("");
    emit(std::to_string(marked.size()) + " blobs marked, " + std::to_string(eligible.size()) +
         " blobs and " + std::to_string(doomed.size()) + " manifests eligible for deletion");
    std::unordered_map<std::string, std::vector<std::string>> links;
    if (!opt.dry_run) {
        for (auto& [repo, d] : index.unreferenced_layer_links()) {
            links[d.str()].push_back(std::move(repo));
        }
    }
    for (const Digest& d : eligible) {
        emit("blob eligible for deletion: " + d.str());
    }
    // Removal in batches: one blocking call removes a batch's links per
    // repository (one directory fsync each), another its data.
    reactor::ThreadPool& pool = reactor::Shard::current()->blocking();
    const std::size_t batch_size = std::max<std::size_t>(1, opt.batch);
    for (std::size_t at = 0; !opt.dry_run && at < eligible.size(); at += batch_size) {
        if (reactor::Shard::current()->stopping()) {
            break;
        }
        std::vector<Store::Collectable> batch;
        for (std::size_t i = at; i < std::min(eligible.size(), at + batch_size); ++i) {
            auto l = links.find(eligible[i].str());
            batch.push_back(Store::Collectable{
                eligible[i], l != links.end() ? l->second : std::vector<std::string>{}});
        }
        if (opt.grace_s > 0) { // uses from before a restart: the files' mtimes
            std::vector<char> recent(batch.size(), 0);
            co_await pool.run([v2fd, &batch, &recent, used_before] {
                for (std::size_t i = 0; i < batch.size(); ++i) {
                    bool r = modified_since(v2fd, layout::blob_data(batch[i].d), used_before);
                    for (std::size_t k = 0; !r && k < batch[i].linked_in.size(); ++k) {
                        r = modified_since(v2fd,
                                           layout::layer_link(batch[i].linked_in[k], batch[i].d),
                                           used_before);
                    }
                    recent[i] = static_cast<char>(r);
                }
            });
            std::vector<Store::Collectable> old;
            for (std::size_t i = 0; i < batch.size(); ++i) {
                if (recent[i] != 0) {
                    progress.kept_in_grace.fetch_add(1, std::memory_order_relaxed);
                } else {
                    old.push_back(std::move(batch[i]));
                }
            }
            batch = std::move(old);
        }
        Store::Collected c = co_await store.collect_blobs(std::move(batch), used_before);
        if (opt.on_blob_deleted) {
            for (const auto& [d, size] : c.freed) {
                opt.on_blob_deleted(d, size);
            }
        }
        progress.blobs_deleted.fetch_add(c.blobs, std::memory_order_relaxed);
        progress.links_deleted.fetch_add(c.links, std::memory_order_relaxed);
        progress.bytes_freed.fetch_add(c.bytes, std::memory_order_relaxed);
        progress.kept_in_grace.fetch_add(c.kept, std::memory_order_relaxed);
        progress.errors.fetch_add(c.errors, std::memory_order_relaxed);
    }
    if (opt.grace_s > 0) {
        store.forget_uses_before(used_before);
    }
    progress.ended_at.store(static_cast<std::int64_t>(std::time(nullptr)));
    progress.phase.store(progress.errors.load() == 0 ? GcProgress::done : GcProgress::failed);
}

} // namespace rp::storage
