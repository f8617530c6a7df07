// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "storage/index.hh"
#include "util/result.hh"

namespace rp::storage {

class Store;

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
};

// Parses a manifest's bytes into what the index keeps (supplied by the
// registry, which owns manifest parsing).
using ManifestParser = std::function<util::Result<ManifestInfo>(const Digest&, std::string body)>;

// Rebuilds the index from the tree under the v2 dir with blocking calls on
// `threads` helper threads: run at startup, never on a serving shard. Every
// link is checked against the digest its path names (the pair of the check
// at commit). Upload directories older than `purge_age_s` are removed.
util::Result<RebuildStats> rebuild(int v2fd, Index& index, Store& store,
                                   const ManifestParser& parse, std::int64_t purge_age_s,
                                   unsigned threads);

// Removes upload directories older than `purge_age_s` that no session holds.
// Blocking; for a helper thread. Returns how many were removed.
std::size_t purge_stale_uploads(int v2fd, Store& store, std::int64_t purge_age_s);

} // namespace rp::storage
