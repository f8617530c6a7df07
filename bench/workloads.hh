// SPDX-License-Identifier: Apache-2.0
#pragma once

// The workloads of `ringport-bench run`. Each prepares what it needs (not
// timed, every step verified; a setup failure ends the run), then runs its
// measured phase(s) through ctx.meter, adding to ctx.stats and ctx.extra.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "blobs.hh"
#include "engine.hh"
#include "flows.hh"
#include "options.hh"
#include "report.hh"
#include "runner.hh"

namespace rp::bench {

struct RunContext {
    const Options& opt;
    const Endpoint& ep;
    Progress& progress;
    Meter& meter;
    Stats stats; // the measured phases, merged
    std::vector<Field> extra;
    std::optional<ProcMemory> memory; // the server's, when a workload sampled it itself
};

util::Result<void> run_push(RunContext& ctx);
util::Result<void> run_pull(RunContext& ctx);
util::Result<void> run_manifest(RunContext& ctx);
util::Result<void> run_tags_list(RunContext& ctx);
util::Result<void> run_catalog(RunContext& ctx);
util::Result<void> run_ci_fleet(RunContext& ctx);
util::Result<void> run_ready(RunContext& ctx);
util::Result<void> run_connect(RunContext& ctx);

// ---- shared by the workloads (workload_common.cc) ----

// Owns one flow per connection and lists them for run_phase.
class FlowSet {
  public:
    template <typename F, typename... A> static FlowSet of(std::size_t n, const A&... args) {
        FlowSet s;
        for (std::size_t i = 0; i < n; ++i) {
            s.owned_.push_back(std::make_unique<F>(args...));
            s.ptrs_.push_back(s.owned_.back().get());
        }
        return s;
    }
    std::span<Flow* const> flows() const { return ptrs_; }
    template <typename F> F& at(std::size_t i) const { return static_cast<F&>(*owned_[i]); }
    std::size_t size() const { return owned_.size(); }

  private:
    std::vector<std::unique_ptr<Flow>> owned_;
    std::vector<Flow*> ptrs_;
};

void add_extra(RunContext& ctx, std::string key, Scalar value);

EngineConfig engine_config(const RunContext& ctx, bool large_bodies);
// An untimed phase of `count` operations; any error fails the run.
util::Result<void> setup_phase(RunContext& ctx, const std::string& name, const FlowSet& flows,
                               std::uint64_t count, bool large_bodies = false);
// A measured phase: timed by ctx.meter, merged into ctx.stats; returns its own stats.
util::Result<Stats> measured_phase(RunContext& ctx, const std::string& name, const FlowSet& flows,
                                   Plan& plan, EngineConfig cfg);

std::vector<Blob> blobs_of(const BlobSet& set);
std::size_t setup_connections(const RunContext& ctx, std::uint64_t ops);
// Uploads blobs (POST then PUT) to repo, then HEADs each to check.
util::Result<void> push_blobs(RunContext& ctx, const std::string& repo,
                              const std::vector<Blob>& blobs);
// Pushes an image's config and layers, then its manifest under `tag`.
util::Result<void> push_image(RunContext& ctx, const std::string& repo, const Image& image,
                              const std::string& tag);
// Does the server take a monolithic POST ?digest= (201)? Distribution 2.8.2
// answers 202 and ignores the body; then uploads are POST + PUT.
util::Result<UploadMode> probe_upload_mode(RunContext& ctx, const std::string& repo);

} // namespace rp::bench
