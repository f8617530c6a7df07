// SPDX-License-Identifier: Apache-2.0
#pragma once

// Retention policies: which tags and manifests a registry deletes on its own,
// decided from the index and from when tags were pushed and pulled
// (storage::Activity). A run plans per repository, then deletes through the
// caller's delete path (the one API deletes take), tags first; what the
// deleted tags leave unreached goes with them. Blobs are garbage collection's.

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "reactor/task.hh"
#include "storage/activity.hh"
#include "storage/digest.hh"
#include "storage/store.hh"
#include "util/result.hh"

namespace rp::storage {

// One [[retention.policy]] table. A repository takes the first policy whose
// `repositories` patterns (util::name_match) name it. A tag is deleted when a
// delete rule holds for it (or, with only keep_last, when it is not among the
// last N) and no keep rule protects it.
struct RetentionPolicy {
    std::vector<std::string> repositories;
    std::vector<std::string> keep_tags; // patterns of tags always kept
    std::uint32_t keep_last = 0;        // the N most recently pushed tags are kept (0: unset)
    std::uint32_t older_than_days = 0;  // delete tags pushed longer ago (0: unset)
    std::uint32_t not_pulled_days = 0;  // delete tags not pulled for this long (0: unset)
    std::uint32_t untagged_days = 0;    // delete manifests untagged and unused this long
    bool deletes_tags() const noexcept {
        return keep_last != 0 || older_than_days != 0 || not_pulled_days != 0;
    }
};

// What a run deletes (or, dry, would delete), and why.
struct RetentionItem {
    enum Kind : std::uint8_t { tag, manifest };
    enum Reason : std::uint8_t { older_than, not_pulled, beyond_keep_last, untagged, freed };
    Kind kind = tag;
    Reason reason = older_than;
    std::string repo;
    std::string tag_name; // kind tag
    Digest digest;        // the tag's target, or the manifest
    // A manifest is deleted only if unused since then (seconds since the
    // epoch): the run's start for one its tags left, the rule's age else.
    std::int64_t used_before = 0;
    static const char* reason_name(Reason r) noexcept;
};

struct RetentionOptions {
    bool dry_run = false;
    std::int64_t now = 0; // seconds since the epoch
    // Repositories no policy applies to, whatever their names (mirror caches).
    std::function<bool(std::string_view)> skip;
    std::size_t items_kept_max = 10000; // the report lists this many items
};

struct RetentionProgress {
    enum Phase : int { idle = 0, planning, deleting, done, failed };
    std::atomic<int> phase{idle};
    std::atomic<std::uint64_t> repositories{0}; // repositories a policy applies to
    std::atomic<std::uint64_t> tags_examined{0};
    std::atomic<std::uint64_t> tags_deleted{0}; // dry: would be deleted
    std::atomic<std::uint64_t> manifests_deleted{0};
    std::atomic<std::uint64_t> skipped{0}; // changed since planned (a tag moved, a use)
    std::atomic<std::uint64_t> errors{0};
    std::atomic<std::int64_t> started_at{0};
    std::atomic<std::int64_t> ended_at{0};
    mutable std::mutex items_mu;
    std::vector<RetentionItem> items; // the first items_kept_max (items_mu)
    bool items_truncated = false;     // items_mu

    static const char* phase_name(int p) noexcept;
};

// Deletes planned items of one repository, all tags or all manifests,
// through the registry's delete path; says what became of each (kept: it
// changed since planned).
using RetentionDelete = std::function<reactor::Task<std::vector<Store::Outcome>>(
    const std::string& repo, const std::vector<RetentionItem>& items)>;

// The plan for one repository, pure over what it is given: its tags with
// their targets and times, and what the index says about its manifests.
struct TagFacts {
    std::string tag;
    Digest target;
    std::int64_t pushed = 0;
    std::int64_t pulled = 0; // the latest of its pulls, its target's, its push and tracking start
};
std::vector<RetentionItem> plan_tags(const RetentionPolicy& p, std::vector<TagFacts> tags,
                                     std::int64_t now);

// The first policy naming the repository, if any.
const RetentionPolicy* policy_for(const std::vector<RetentionPolicy>& policies,
                                  std::string_view repo) noexcept;

reactor::Task<void> apply_retention(Store& store, Activity& activity,
                                    const std::vector<RetentionPolicy>& policies,
                                    RetentionOptions opt, RetentionProgress& progress,
                                    RetentionDelete del) noexcept;

} // namespace rp::storage
