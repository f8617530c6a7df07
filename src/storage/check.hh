// SPDX-License-Identifier: Apache-2.0
#pragma once

// Checking the tree: every blob's bytes against its digest, every link
// against what it points to, every manifest against what it names, and the
// leftovers of interrupted uploads. `ringport check` runs it offline (with
// --repair: corrupt blobs moved to a quarantine outside the tree, dangling
// links dropped); the online scrub runs it while serving at a byte rate,
// reporting only. Blocking: helper threads, never a shard.

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/digest.hh"
#include "util/result.hh"

namespace rp::storage {

using References =
    std::function<util::Result<std::vector<Digest>>(const Digest&, const std::string& body)>;

// Where `ringport check --repair` moves corrupt blobs, in the root (beside
// docker/, outside Distribution's tree).
constexpr const char* quarantine_dir = "ringport-quarantine";

struct CheckOptions {
    bool repair = false;
    unsigned threads = 2;          // blobs hashed at once
    std::uint64_t bytes_per_s = 0; // blob bytes read per second at most (0: no limit)
    // Uploads untouched this long are leftovers that --repair removes (the
    // server's own purge age); younger ones are reported only.
    std::int64_t upload_purge_age_s = 7 * 86400;
    // Where --repair moves corrupt blobs (<dir>/<alg>/<hex>): outside the
    // tree, on its file system, so a move is a rename.
    int quarantine_dirfd = -1;
    // While serving: a finding is reported only if a second look a moment
    // later still sees it (a delete or a garbage collection under way is not
    // a finding).
    bool online = false;
    // What a manifest's bytes need stored beside it (config, layers but
    // foreign ones, children); an error when they do not parse. Null: the
    // manifests are not read.
    const References* references = nullptr;
    const std::atomic<bool>* stop = nullptr; // once true, the check ends early
};

// Counts, readable from any thread while the check runs.
struct CheckProgress {
    std::atomic<std::uint64_t> blobs{0}; // verified
    std::atomic<std::uint64_t> bytes{0}; // read and hashed
    std::atomic<std::uint64_t> blobs_total{0};
    std::atomic<std::uint64_t> repositories{0};
    std::atomic<std::uint64_t> problems{0}; // findings
    std::atomic<std::uint64_t> repaired{0};
    std::atomic<std::uint64_t> errors{0}; // I/O errors of the check itself
    std::atomic<bool> done{false};
};

// One finding: a kind ("corrupt blob", "dangling layer link", ...), what it
// is about, and whether --repair fixed it.
struct Finding {
    std::string_view kind;
    std::string what;
    bool repaired = false;
};
using CheckOutput = std::function<void(const Finding&)>;

// Checks the tree under `v2fd`; calls `out` once per finding (from any of
// the check's threads, one call at a time).
void check_tree(int v2fd, const CheckOptions& opt, CheckProgress& progress, const CheckOutput& out);

} // namespace rp::storage
