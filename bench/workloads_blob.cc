// SPDX-License-Identifier: Apache-2.0
// push, push-chunked, pull, pull-cold.
#include <fcntl.h>
#include <ftw.h>
#include <unistd.h>

#include "workloads.hh"

namespace rp::bench {

using util::Errc;
using util::Error;
using util::Result;

namespace {

void add_blob_checks(RunContext& ctx, const Stats& check) {
    // A pushed blob the server cannot show makes the run invalid.
    for (const std::string& s : check.error_samples) {
        ctx.stats.add_error(s);
    }
    ctx.stats.errors += check.errors - check.error_samples.size();
}

} // namespace

Result<void> run_push(RunContext& ctx) {
    const Options& o = ctx.opt;
    bool chunked = o.workload == "push-chunked";
    UploadMode mode = UploadMode::chunked;
    if (!chunked) {
        auto m = probe_upload_mode(ctx, o.repo);
        if (!m) {
            return std::move(m).error();
        }
        mode = *m;
    }
    BlobSet set(static_cast<std::size_t>(o.count), o.size, run_seed());
    std::vector<Blob> blobs = blobs_of(set);
    std::size_t conns = static_cast<std::size_t>(std::min(o.concurrency, o.count));
    auto flows = FlowSet::of<PushFlow>(conns, blobs, o.repo, mode, o.chunk);
    Plan plan(o.count, 0);
    auto stats = measured_phase(ctx, "measure", flows, plan, engine_config(ctx, false));
    if (!stats) {
        return std::move(stats).error();
    }
    add_extra(ctx, "upload_mode", std::string(upload_mode_name(mode)));
    if (!chunked) {
        add_extra(ctx, "monolithic_post_accepted", mode == UploadMode::monolithic);
    } else {
        add_extra(ctx, "chunks_per_blob",
                  static_cast<std::int64_t>((o.size + o.chunk - 1) / o.chunk));
    }
    // Afterwards, untimed: every pushed blob must be there with its size.
    auto heads = FlowSet::of<BlobHeadFlow>(setup_connections(ctx, blobs.size()), blobs, o.repo);
    Plan check_plan(blobs.size(), 0);
    PhaseConfig cfg{"check", engine_config(ctx, false), 1};
    auto check = run_phase(ctx.ep, cfg, heads.flows(), check_plan, nullptr, &ctx.progress);
    if (!check) {
        return std::move(check).error();
    }
    add_blob_checks(ctx, *check);
    add_extra(ctx, "verified_blobs", static_cast<std::int64_t>(check->ops));
    return util::Ok{};
}

namespace {

struct EvictTally {
    std::uint64_t files = 0;
    std::uint64_t bytes = 0;
    std::uint64_t failures = 0;
};
EvictTally* evict_tally = nullptr; // nftw has no user argument; set only inside evict_tree

int evict_one(const char* path, const struct stat* st, int type, FTW*) {
    if (type != FTW_F || !S_ISREG(st->st_mode)) {
        return 0;
    }
    int fd = ::open(path, O_RDONLY | O_CLOEXEC | O_NOATIME);
    if (fd < 0) {
        fd = ::open(path, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0) {
        ++evict_tally->failures;
        return 0;
    }
    // Dirty pages cannot be dropped: write them back first.
    (void)::fdatasync(fd);
    if (::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) != 0) {
        ++evict_tally->failures;
    }
    (void)::close(fd);
    ++evict_tally->files;
    evict_tally->bytes += static_cast<std::uint64_t>(st->st_size);
    return 0;
}

Result<EvictTally> evict_tree(const std::string& dir) {
    EvictTally tally;
    evict_tally = &tally;
    int rc = ::nftw(dir.c_str(), evict_one, 64, FTW_PHYS);
    evict_tally = nullptr;
    if (rc != 0) {
        return Error::sys(errno, "cannot walk --evict-root " + dir);
    }
    return tally;
}

std::vector<BlobGetFlow::Target> pull_targets(const Options& o, const std::vector<Blob>& blobs) {
    std::vector<BlobGetFlow::Target> targets;
    targets.reserve(blobs.size());
    for (const Blob& b : blobs) {
        targets.push_back(BlobGetFlow::Target{"/v2/" + o.repo + "/blobs/" + b.digest, b.raw});
    }
    return targets;
}

Result<void> pull_cold_rounds(RunContext& ctx, const FlowSet& flows) {
    const Options& o = ctx.opt;
    std::uint64_t per_round = flows.size();
    std::uint64_t rounds = (o.count + per_round - 1) / per_round;
    EvictTally last;
    for (std::uint64_t r = 0; r < rounds; ++r) {
        auto t = evict_tree(o.evict_root);
        if (!t) {
            return std::move(t).error();
        }
        last = *t;
        Plan plan(std::min(per_round, o.count - r * per_round), 0);
        auto stats = measured_phase(ctx, "measure: round " + std::to_string(r + 1), flows, plan,
                                    engine_config(ctx, true));
        if (!stats) {
            return std::move(stats).error();
        }
    }
    add_extra(ctx, "rounds", static_cast<std::int64_t>(rounds));
    add_extra(ctx, "evicted_files", static_cast<std::int64_t>(last.files));
    add_extra(ctx, "evicted_bytes", static_cast<std::int64_t>(last.bytes));
    add_extra(ctx, "evict_failures", static_cast<std::int64_t>(last.failures));
    return util::Ok{};
}

} // namespace

Result<void> run_pull(RunContext& ctx) {
    const Options& o = ctx.opt;
    bool cold = o.workload == "pull-cold";
    std::vector<BlobGetFlow::Target> targets;
    BlobSet set;
    std::vector<Blob> blobs;
    if (!o.raw_path.empty()) {
        // The manifest Accept header too: a raw path may name a manifest
        // (Distribution refuses an OCI manifest to a client that does not
        // accept it).
        BlobGetFlow::Target t{o.raw_path, {}, manifest_accept};
        if (!parse_sha256(o.expect_digest, t.digest)) {
            return Error::of(Errc::invalid, "--expect-digest must be sha256:<64 hex>");
        }
        targets.push_back(std::move(t));
    } else {
        // One blob per connection, so parallel pulls read different files.
        set = BlobSet(static_cast<std::size_t>(o.concurrency), o.size, run_seed());
        blobs = blobs_of(set);
        if (auto r = push_blobs(ctx, o.repo, blobs); !r) {
            return r;
        }
        targets = pull_targets(o, blobs);
    }
    auto flows = FlowSet::of<BlobGetFlow>(static_cast<std::size_t>(o.concurrency), targets);
    if (cold) {
        return pull_cold_rounds(ctx, flows);
    }
    // Untimed warm-up: every target once, verified, so the page cache is warm.
    if (auto r = o.warmup ? setup_phase(ctx, "warm-up", flows, targets.size(), true)
                          : Result<void>(util::Ok{});
        !r) {
        return r;
    }
    Plan plan(o.count, o.duration_s);
    auto stats = measured_phase(ctx, "measure", flows, plan, engine_config(ctx, true));
    if (!stats) {
        return std::move(stats).error();
    }
    add_extra(ctx, "distinct_blobs", static_cast<std::int64_t>(targets.size()));
    return util::Ok{};
}

} // namespace rp::bench
