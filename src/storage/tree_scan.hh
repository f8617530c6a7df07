// SPDX-License-Identifier: Apache-2.0
#pragma once

// Reading Distribution's tree for the index: the repositories walk, link
// files through io_uring (LinkReader), manifests, stale uploads, and the
// directory stamps of the snapshot. Blocking; for the helper threads of
// rebuild.cc only (startup, verification, shutdown), never for a shard.

#include <pthread.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "reactor/sync.hh"
#include "storage/digest.hh"
#include "storage/index.hh"
#include "storage/rebuild.hh"
#include "storage/snapshot.hh"

namespace rp::storage {

class Store;

namespace tree {

struct Entry {
    std::string name;
    bool is_dir;
    ino_t ino;
};

// Every blob in blobs/<alg>/<xx>/<hex>/data, sorted, as Distribution
// enumerates them (a directory without its data file is not a blob; with
// `without_data`, such directories go there, as paths under v2).
std::vector<Digest> list_blobs(int v2fd, std::vector<std::string>* without_data = nullptr);

// Whether the upload in `dir` started longer than `age_s` ago (its startedat
// file, else the directory's mtime).
bool upload_is_stale(int v2fd, const std::string& dir, std::int64_t now, std::int64_t age_s);

// Lists a directory relative to dirfd; empty when it does not exist.
std::vector<Entry> list_dir(int dirfd, const std::string& path);

// What the walk of repositories/ found: repositories (a _layers or
// _manifests child) and, separately, every directory with an _uploads child
// (a push abandoned before its first blob leaves only that).
struct Found {
    std::vector<std::string> repos;
    std::vector<std::string> with_uploads;
    std::size_t skipped = 0;
    std::vector<std::string>* visited = nullptr; // every directory walked, if wanted
    const std::atomic<bool>* stop = nullptr;     // once true, no further directory is read
};

// Walks repositories/ with its top-level entries spread over threads (a
// cold walk of 10,000 repositories is 10,000 directory reads); `visited`,
// if given, gets every directory walked. Once `*stop` is true no further
// directory is read (the result is then partial).
Found find_all(int v2fd, unsigned threads, std::vector<std::string>* visited = nullptr,
               const std::atomic<bool>* stop = nullptr);

// Links under <dir>/<alg>/<hex>/link whose content names the same digest.
struct RepoScan {
    std::string name;
    std::vector<std::optional<Digest>> layers; // filled as link reads complete
    std::vector<std::optional<Digest>> revisions;
    std::vector<std::pair<std::string, std::optional<Digest>>> tags;
    std::size_t skipped = 0;
};

// Scans every repository on `threads` threads, each with its own LinkReader;
// once `*stop` is true no further repository is started.
void scan_all(int v2fd, std::vector<RepoScan>& scans, unsigned threads,
              const std::atomic<bool>* stop = nullptr);

// Removes a repository's stale upload directories (unless a session holds
// one); counts what it kept and what it removed.
void scan_uploads(int v2fd, const std::string& name, std::int64_t purge_age_s, const Store* store,
                  std::size_t& kept, std::size_t& purged);

// Reads, verifies and parses each manifest in `todo` (distinct digests).
std::unordered_map<Digest, ManifestPtr, DigestHash>
parse_manifest_set(int v2fd, std::vector<Digest> todo, Store& store, const ManifestParser& parse,
                   unsigned threads, std::size_t& skipped);

// Reads, verifies and parses every distinct manifest the repositories link.
std::unordered_map<Digest, ManifestPtr, DigestHash>
parse_manifests(int v2fd, const std::vector<RepoScan>& scans, Store& store,
                const ManifestParser& parse, unsigned threads, std::size_t& skipped);

// Runs `worker` on `threads` threads (this one among them) and joins them.
// Only the threads started here are named `rp-rebuild`: the caller keeps its
// own name (`rp-loader`, `rp-bg`). They are paced when the caller is
// (reactor::pace; their scheduling policy the kernel passes on itself).
template <typename W> void on_threads(unsigned threads, W&& worker) {
    std::vector<std::thread> pool;
    const bool paced = reactor::paced();
    for (unsigned t = 1; t < threads; ++t) {
        pool.emplace_back([&worker, paced] {
            (void)pthread_setname_np(pthread_self(), "rp-rebuild");
            reactor::set_paced(paced);
            worker();
        });
    }
    worker();
    for (auto& t : pool) {
        t.join();
    }
}

// Calls fn(0) .. fn(n - 1) spread over `threads` threads.
template <typename F> void parallel_for(std::size_t n, unsigned threads, F&& fn) {
    std::atomic<std::size_t> next{0};
    on_threads(threads, [&] {
        for (std::size_t i = next++; i < n; i = next++) {
            fn(i);
            reactor::pace();
        }
    });
}

// One repository's scan as an index load; `find` gives a revision's
// ManifestInfo (null: unreadable or invalid, skipped).
template <typename Find> Index::RepoLoad make_load(RepoScan& r, Find&& find, std::size_t& skipped) {
    Index::RepoLoad load;
    skipped += r.skipped;
    for (auto& d : r.layers) {
        if (d) {
            load.layers.push_back(std::move(*d));
        } else {
            ++skipped; // a broken or mismatched link
        }
    }
    for (auto& d : r.revisions) {
        ManifestPtr m = d ? find(*d) : nullptr;
        if (m) {
            load.manifests.push_back(std::move(m));
        } else {
            ++skipped;
        }
    }
    for (auto& [tag, d] : r.tags) {
        if (d) {
            load.tags.emplace_back(std::move(tag), std::move(*d));
        } else {
            ++skipped;
        }
    }
    return load;
}

// Moves one repository's scan into the index; returns the entries skipped.
std::size_t load_repo(Index& index, RepoScan& r,
                      std::unordered_map<Digest, ManifestPtr, DigestHash>& manifests);

// The directories whose state vouches for a repository's links: a link
// added or removed changes its parent's mtime (`_layers/<alg>`,
// `_manifests/revisions/<alg>`, `_manifests/tags`). Paths relative to the
// repository.
std::vector<DirStamp> repo_dirs(int v2fd, const std::string& name);

} // namespace tree
} // namespace rp::storage
