// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "storage/index.hh"
#include "util/result.hh"

namespace rp::storage {

class Store;
class WriteJournal;

struct RebuildStats {
    std::size_t repos = 0;
    std::size_t tags = 0;
    std::size_t manifests = 0;
    std::size_t layers = 0;
    std::size_t uploads = 0;
    std::size_t uploads_purged = 0;
    std::size_t skipped = 0; // broken links, unreadable or invalid manifests, bad names
    double seconds = 0;
    double walk_seconds = 0; // finding the repositories (directory walk)
    double scan_seconds = 0; // ... plus reading every link (the bulk on a cold cache)
    bool from_snapshot = false;
    std::size_t rescanned = 0; // repositories the snapshot could not vouch for, read from disk
};

// Parses a manifest's bytes into what the index keeps (supplied by the
// registry, which owns manifest parsing).
using ManifestParser = std::function<util::Result<ManifestInfo>(const Digest&, std::string body)>;

// Rebuilds the index from the tree under the v2 dir with blocking calls on
// `threads` helper threads: run at startup, never on a serving shard. Every
// link is checked against the digest its path names (the pair of the check
// at commit). Upload directories older than `purge_age_s` are removed.
// Once `*stop` turns true (a shutdown) no further repository is read and
// the result is Errc::stopped, the index partial.
util::Result<RebuildStats> rebuild(int v2fd, Index& index, Store& store,
                                   const ManifestParser& parse, std::int64_t purge_age_s,
                                   unsigned threads, const std::atomic<bool>* stop = nullptr);

// The snapshot in <root> (rootfd), if any. It stays in place: the write
// journal covers what this run writes until the next save replaces it.
// With `use` false (snapshots off) it and the journal are removed instead,
// before anything is served (they would miss this run's writes); an error
// (startup must fail) when they exist but cannot be removed.
util::Result<std::optional<std::string>> read_snapshot(int rootfd, bool use);

// Loads the index from snapshot bytes (read_snapshot), reading from disk
// instead every repository the journal names (`dirty`: written since the
// save), every one whose _layers or _manifests directories changed, and,
// when the repositories walk changed, every one that appeared (the walk, a
// directory read each, says which; those gone are dropped). Manifests are
// always read and verified from their blobs; stale uploads are purged, as a
// full rebuild would. On an error the index is untouched.
util::Result<RebuildStats> load_snapshot(std::string bytes, const std::vector<std::string>& dirty,
                                         int v2fd, Index& index, Store& store,
                                         const ManifestParser& parse, std::int64_t purge_age_s,
                                         unsigned threads);

// After a snapshot load: reads every repository's links again and corrects
// what a directory's state cannot reveal (a tag rewritten in place by another
// tool while ringport was stopped). A repository changed by a live write
// since its scan keeps the live state. Then purges stale uploads. Stops
// early when `stop` becomes true.
struct VerifyStats {
    std::size_t repos = 0;
    std::size_t corrected = 0;
    std::size_t kept_live = 0;
    std::size_t uploads_purged = 0;
    bool stopped = false;
    double seconds = 0;
};
VerifyStats verify_index(int v2fd, Index& index, Store& store, const ManifestParser& parse,
                         std::int64_t purge_age_s, unsigned threads, const std::atomic<bool>& stop);

// Saves the snapshot (temp file, fsync, rename, fsync of <root>) while
// clients write, with the journal's save protocol (journal.hh); blocking,
// for a helper thread. Each repository's directories are stamped before its
// part of the index is read. On a failure the snapshot on disk is removed
// (the next start reads the tree). The file is written as it is encoded, so
// a save holds the digest table and a piece of it. Returns the bytes written.
//
// `reads` runs a closure that reads the index and returns once it has run.
// The save reads each repository's part under the index's shared lock; from
// a nice-19 thread, a save preempted while holding it kept a shard that
// wanted the unique lock (a push) waiting, and every connection of that
// shard with it: 19 ms, traced. The server passes a runner that executes the
// reads on a normal-priority helper thread, a batch of repositories at a
// time; empty runs them on the calling thread.
using IndexReads = std::function<void(const std::function<void()>&)>;
util::Result<std::size_t> write_snapshot(int rootfd, int v2fd, const Index& index,
                                         WriteJournal* journal, unsigned threads,
                                         const IndexReads& reads = {});

// Removes upload directories older than `purge_age_s` that no session holds.
// Blocking; for a helper thread. Returns how many were removed.
std::size_t purge_stale_uploads(int v2fd, Store& store, std::int64_t purge_age_s);

} // namespace rp::storage
