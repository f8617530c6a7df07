// SPDX-License-Identifier: Apache-2.0
#include "workloads.hh"

namespace rp::bench {

using util::Errc;
using util::Error;
using util::Result;

void add_extra(RunContext& ctx, std::string key, Scalar value) {
    ctx.extra.push_back(Field{std::move(key), std::move(value)});
}

EngineConfig engine_config(const RunContext& ctx, bool large_bodies) {
    EngineConfig cfg;
    cfg.recv_buffer_bytes = large_bodies ? 1u << 20 : 64u << 10;
    if (ctx.opt.recv_buffer > 0) {
        cfg.recv_buffer_bytes = static_cast<std::size_t>(ctx.opt.recv_buffer);
    }
    cfg.stall_timeout_s = ctx.opt.timeout_s;
    return cfg;
}

std::size_t setup_connections(const RunContext& ctx, std::uint64_t ops) {
    return static_cast<std::size_t>(
        std::max<std::uint64_t>(1, std::min<std::uint64_t>(ctx.opt.setup_concurrency, ops)));
}

Result<void> setup_phase(RunContext& ctx, const std::string& name, const FlowSet& flows,
                         std::uint64_t count, bool large_bodies) {
    Plan plan(count, 0);
    PhaseConfig cfg{"setup: " + name, engine_config(ctx, large_bodies), 1};
    auto stats = run_phase(ctx.ep, cfg, flows.flows(), plan, nullptr, &ctx.progress);
    if (!stats) {
        return Error::of(Errc::system, "setup (" + name + "): " + stats.error().detail);
    }
    if (stats->errors > 0 || stats->ops != count) {
        std::string why = "setup (" + name + ") failed: " + std::to_string(stats->errors) +
                          " errors in " + std::to_string(count) + " operations";
        for (const std::string& s : stats->error_samples) {
            why += "\n    " + s;
        }
        return Error::of(Errc::invalid, why);
    }
    return util::Ok{};
}

Result<Stats> measured_phase(RunContext& ctx, const std::string& name, const FlowSet& flows,
                             Plan& plan, EngineConfig cfg) {
    PhaseConfig pc{name, cfg, static_cast<std::size_t>(ctx.opt.threads)};
    auto stats = run_phase(ctx.ep, pc, flows.flows(), plan, &ctx.meter, &ctx.progress);
    if (!stats) {
        return std::move(stats).error();
    }
    ctx.stats.merge(*stats);
    return stats;
}

std::vector<Blob> blobs_of(const BlobSet& set) {
    std::vector<Blob> out;
    out.reserve(set.count());
    for (std::size_t i = 0; i < set.count(); ++i) {
        out.push_back(Blob{set.data(i), set.digest(i), set.raw_digest(i)});
    }
    return out;
}

Result<void> push_blobs(RunContext& ctx, const std::string& repo, const std::vector<Blob>& blobs) {
    std::size_t n = setup_connections(ctx, blobs.size());
    auto push = FlowSet::of<PushFlow>(n, blobs, repo, UploadMode::post_put, std::uint64_t{0});
    if (auto r = setup_phase(ctx, "push blobs", push, blobs.size(), false); !r) {
        return r;
    }
    auto head = FlowSet::of<BlobHeadFlow>(n, blobs, repo);
    return setup_phase(ctx, "check blobs", head, blobs.size(), false);
}

Result<void> push_image(RunContext& ctx, const std::string& repo, const Image& image,
                        const std::string& tag) {
    std::vector<Blob> blobs = image.layers;
    blobs.push_back(image.config_blob);
    if (auto r = push_blobs(ctx, repo, blobs); !r) {
        return r;
    }
    std::vector<std::string> repos{repo};
    std::vector<std::string> tags{tag};
    auto put = FlowSet::of<ManifestPutFlow>(1, image, repos, tags);
    return setup_phase(ctx, "push manifest", put, 1, false);
}

Result<UploadMode> probe_upload_mode(RunContext& ctx, const std::string& repo) {
    BlobSet probe(1, 1024, run_seed() ^ 0x5eed);
    BlockingClient client(ctx.ep);
    std::string target = "/v2/" + repo + "/blobs/uploads/";
    append_query(target, "digest", probe.digest(0));
    auto r =
        client.request("POST", target, "Content-Type: application/octet-stream\r\n", probe.data(0));
    if (!r) {
        return Error::of(Errc::system, "probe: " + r.error().detail);
    }
    if (r->status == 201) {
        return UploadMode::monolithic;
    }
    if (r->status != 202 || r->location.empty()) {
        return Error::of(Errc::invalid, "probe: POST " + target + " answered " +
                                            std::to_string(r->status) + ": " + r->body);
    }
    // The server opened a session and ignored the body: finish it the long way.
    std::string put(url_path(r->location));
    append_query(put, "digest", probe.digest(0));
    auto p =
        client.request("PUT", put, "Content-Type: application/octet-stream\r\n", probe.data(0));
    if (!p || p->status != 201) {
        return Error::of(Errc::invalid,
                         "probe: PUT " + put + " failed: " +
                             (p ? std::to_string(p->status) + " " + p->body : p.error().detail));
    }
    return UploadMode::post_put;
}

} // namespace rp::bench
