// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "reactor/task.hh"
#include "storage/store.hh"

namespace rp::storage {

struct GcOptions {
    bool dry_run = false;
    // Also remove manifest revisions no tag reaches (through an index's
    // children or a live subject's referrers), as Distribution's
    // --delete-untagged, but keeping the platforms of tagged multi-arch
    // images and the referrers of live manifests (distribution#3178).
    bool delete_untagged = false;
    // Blobs, links and manifests used (uploaded, linked, mounted, pushed,
    // HEADed) this many seconds ago or later are kept.
    std::int64_t grace_s = 0;
    // Blobs removed per batch: each batch takes the write locks of the
    // repositories linking its blobs and pays one journal record and one
    // syncfs. Offline, nothing waits on those locks: larger batches.
    std::size_t batch = 1024;
    // Told of each deletion as it is done (the audit log): a manifest
    // revision no tag reached, a blob with its size.
    std::function<void(const std::string& repo, const Digest& d)> on_manifest_deleted;
    std::function<void(const Digest& d, std::uint64_t size)> on_blob_deleted;
};

// A run's progress and outcome. The counters are readable from any thread
// while the run goes on (the admin endpoint reports them).
struct GcProgress {
    enum Phase : int { idle = 0, marking, deleting_manifests, sweeping, done, failed };
    std::atomic<int> phase{idle};
    std::atomic<std::uint64_t> repositories{0};
    std::atomic<std::uint64_t> marked{0}; // manifests and blobs something keeps
    std::atomic<std::uint64_t> manifests_eligible{0};
    std::atomic<std::uint64_t> manifests_deleted{0};
    std::atomic<std::uint64_t> blobs_scanned{0};
    std::atomic<std::uint64_t> blobs_eligible{0};
    std::atomic<std::uint64_t> blobs_deleted{0};
    std::atomic<std::uint64_t> links_deleted{0};
    std::atomic<std::uint64_t> bytes_freed{0};
    std::atomic<std::uint64_t> kept_in_grace{0}; // eligible, but used within the grace period
    std::atomic<std::uint64_t> errors{0};
    std::atomic<std::int64_t> started_at{0}; // seconds since the epoch
    std::atomic<std::int64_t> ended_at{0};

    static const char* phase_name(int p) noexcept;
};

// The manifests of one repository that its tags reach: the tagged ones, the
// children of reached indexes, and the referrers of reached manifests (a
// signature of a referrer too), transitively.
std::unordered_set<std::string>
reached_by_tags(const Index& index, const std::string& repo,
                const std::vector<std::pair<std::string, Digest>>& tags);

// One line of Distribution's `registry garbage-collect` output at a time
// ("<repo>: marking manifest <digest>", "blob eligible for deletion: ...").
using GcOutput = std::function<void(std::string_view)>;

// Garbage collection over the index and the blob store, while they serve.
// Marks from the index (no tree walk), deletes untagged manifests through the
// same path as an API DELETE, then lists blobs/ and removes every blob the
// mark did not reach, its layer links first. A blob in use, referenced again
// or used within the grace period at the moment of its removal is kept
// (Store::collect_blobs); docs/behaviour.md states the invariant.
reactor::Task<void> collect_garbage(Store& store, GcOptions opt, GcProgress& progress,
                                    GcOutput out) noexcept;

} // namespace rp::storage
