// SPDX-License-Identifier: Apache-2.0
// manifest-get, manifest-head, tags-list, catalog.
#include <algorithm>

#include "list_flows.hh"
#include "workloads.hh"

namespace rp::bench {

using util::Errc;
using util::Error;
using util::Result;

namespace {

constexpr std::uint64_t small_layer_bytes = 1024;

// A small image (small layers, a realistic manifest of ~1 KiB), pushed as
// "latest" to repo.
Result<std::unique_ptr<Image>> small_image(RunContext& ctx, const std::string& repo,
                                           BlobSet& layers, std::size_t n) {
    layers = BlobSet(n, small_layer_bytes, run_seed());
    auto image = make_image(layers, 0, n, repo);
    if (auto r = push_image(ctx, repo, *image, "latest"); !r) {
        return std::move(r).error();
    }
    return image;
}

} // namespace

Result<void> run_manifest(RunContext& ctx) {
    const Options& o = ctx.opt;
    BlobSet layers;
    auto image = small_image(ctx, o.repo, layers, static_cast<std::size_t>(o.layers));
    if (!image) {
        return std::move(image).error();
    }
    bool head = o.workload == "manifest-head";
    std::string ref = o.by == "digest" ? (*image)->digest : std::string("latest");
    std::string target = "/v2/" + o.repo + "/manifests/" + ref;
    auto flows = FlowSet::of<ManifestFetchFlow>(static_cast<std::size_t>(o.concurrency), **image,
                                                target, head);
    Plan plan(o.count, o.duration_s);
    auto stats = measured_phase(ctx, "measure", flows, plan, engine_config(ctx, false));
    if (!stats) {
        return std::move(stats).error();
    }
    add_extra(ctx, "manifest_bytes", static_cast<std::int64_t>((*image)->manifest.size()));
    return util::Ok{};
}

namespace {

// The repository must hold no tags besides ours, or the full-list check
// cannot hold.
Result<void> check_no_foreign_tags(RunContext& ctx, const std::vector<std::string>& sorted) {
    BlockingClient client(ctx.ep);
    auto r = client.request("GET", "/v2/" + ctx.opt.repo + "/tags/list");
    if (!r || r->status != 200) {
        return util::Ok{}; // no repository yet
    }
    auto json = make_json_lists();
    std::vector<std::string_view> got;
    r->body.reserve(r->body.size() + body_padding_bytes);
    if (auto p = parse_name_list(*json, r->body, "tags", got); !p) {
        return p;
    }
    for (std::string_view t : got) {
        if (!std::binary_search(sorted.begin(), sorted.end(), t)) {
            return Error::of(Errc::invalid, "repository " + ctx.opt.repo +
                                                " already has tags this run does not "
                                                "create (e.g. '" +
                                                std::string(t) + "'); use --repo or a fresh root");
        }
    }
    return util::Ok{};
}

struct PageCheck {
    bool honours_n = false;
    bool honours_last = false;
    bool paged_walk_complete = false;
    std::uint64_t pages = 0;
};

Result<std::vector<std::string>> get_tags(BlockingClient& c, const std::string& target,
                                          std::string& next) {
    auto r = c.request("GET", target);
    if (!r || r->status != 200) {
        return Error::of(Errc::invalid, "GET " + target + " failed");
    }
    auto json = make_json_lists();
    std::vector<std::string_view> got;
    r->body.reserve(r->body.size() + body_padding_bytes);
    if (auto p = parse_name_list(*json, r->body, "tags", got); !p) {
        return std::move(p).error();
    }
    next = std::string(url_path(r->link));
    return std::vector<std::string>(got.begin(), got.end());
}

// Untimed: does the server honour n and last, and does a paged walk give the
// full list?
PageCheck check_tag_pages(RunContext& ctx, const std::vector<std::string>& sorted) {
    PageCheck pc;
    BlockingClient c(ctx.ep);
    std::uint64_t n = ctx.opt.page;
    std::string base = "/v2/" + ctx.opt.repo + "/tags/list";
    std::string next;
    auto first = get_tags(c, base + "?n=" + std::to_string(n), next);
    if (!first) {
        return pc;
    }
    pc.honours_n = first->size() == std::min<std::uint64_t>(n, sorted.size());
    if (sorted.size() > n) {
        std::string ignored;
        auto after =
            get_tags(c, base + "?n=" + std::to_string(n) + "&last=" + sorted[n - 1], ignored);
        pc.honours_last = after && !after->empty() && after->front() == sorted[n];
    }
    std::vector<std::string> all = std::move(*first);
    pc.pages = 1;
    while (!next.empty() && pc.pages < sorted.size() + 10) {
        std::string target = next;
        auto page = get_tags(c, target, next);
        if (!page) {
            return pc;
        }
        all.insert(all.end(), page->begin(), page->end());
        ++pc.pages;
    }
    std::sort(all.begin(), all.end());
    pc.paged_walk_complete = all == sorted;
    return pc;
}

} // namespace

Result<void> run_tags_list(RunContext& ctx) {
    const Options& o = ctx.opt;
    std::vector<std::string> tags;
    for (std::uint64_t i = 0; i < o.tags; ++i) {
        tags.push_back("t" + std::to_string(i)); // unpadded: creation order is not sorted order
    }
    std::vector<std::string> sorted = tags;
    sorted.push_back("latest"); // the tag setup pushes the image under first
    std::sort(sorted.begin(), sorted.end());
    if (auto r = check_no_foreign_tags(ctx, sorted); !r) {
        return r;
    }
    BlobSet layers;
    auto image = small_image(ctx, o.repo, layers, 1);
    if (!image) {
        return std::move(image).error();
    }
    std::vector<std::string> repos{o.repo};
    auto put =
        FlowSet::of<ManifestPutFlow>(setup_connections(ctx, tags.size()), **image, repos, tags);
    if (auto r = setup_phase(ctx, "create tags", put, tags.size()); !r) {
        return r;
    }
    auto flows = FlowSet::of<TagsListFlow>(static_cast<std::size_t>(o.concurrency), o.repo,
                                           static_cast<std::size_t>(o.tags));
    Plan plan(o.count, o.duration_s);
    auto stats = measured_phase(ctx, "measure", flows, plan, engine_config(ctx, false));
    if (!stats) {
        return std::move(stats).error();
    }
    bool unsorted = false;
    for (std::size_t i = 0; i < flows.size(); ++i) {
        unsorted = unsorted || flows.at<TagsListFlow>(i).saw_unsorted();
    }
    PageCheck pc = check_tag_pages(ctx, sorted);
    add_extra(ctx, "tags", static_cast<std::int64_t>(sorted.size()));
    add_extra(ctx, "sorted", !unsorted);
    add_extra(ctx, "honours_n", pc.honours_n);
    add_extra(ctx, "honours_last", pc.honours_last);
    add_extra(ctx, "paged_walk_complete", pc.paged_walk_complete);
    add_extra(ctx, "paged_walk_pages", static_cast<std::int64_t>(pc.pages));
    return util::Ok{};
}

namespace {

// Creates <repo>/r0 .. r<n-1> unless a walk already finds them all.
Result<void> create_repos(RunContext& ctx, const std::string& prefix, std::size_t n,
                          std::unique_ptr<Image>& image, BlobSet& layers) {
    const Options& o = ctx.opt;
    auto probe = FlowSet::of<CatalogFlow>(1, o.page, prefix, n);
    Plan probe_plan(1, 0);
    PhaseConfig pc{"setup: look for repositories", engine_config(ctx, false), 1};
    pc.engine.per_request_ops = true;
    auto found = run_phase(ctx.ep, pc, probe.flows(), probe_plan, nullptr, &ctx.progress);
    if (found && found->errors == 0) {
        add_extra(ctx, "repos_created", std::int64_t{0});
        return util::Ok{};
    }
    std::string first = prefix + "0";
    auto img = small_image(ctx, first, layers, 0);
    if (!img) {
        return std::move(img).error();
    }
    image = std::move(*img);
    std::vector<std::string> names;
    for (std::size_t i = 1; i < n; ++i) {
        names.push_back(prefix + std::to_string(i));
    }
    if (!names.empty()) {
        auto make =
            FlowSet::of<RepoCreateFlow>(setup_connections(ctx, names.size()), *image, first, names);
        if (auto r = setup_phase(ctx, "create repositories", make, names.size()); !r) {
            return r;
        }
    }
    add_extra(ctx, "repos_created", static_cast<std::int64_t>(n));
    return util::Ok{};
}

} // namespace

Result<void> run_catalog(RunContext& ctx) {
    const Options& o = ctx.opt;
    std::string prefix = o.repo + "/r";
    std::unique_ptr<Image> image;
    BlobSet layers;
    if (auto r = create_repos(ctx, prefix, static_cast<std::size_t>(o.repos), image, layers); !r) {
        return r;
    }
    auto flows = FlowSet::of<CatalogFlow>(static_cast<std::size_t>(o.concurrency), o.page, prefix,
                                          static_cast<std::size_t>(o.repos));
    Plan plan(o.count, o.duration_s);
    EngineConfig cfg = engine_config(ctx, false);
    cfg.per_request_ops = true; // an op is a page; a walk is many
    auto stats = measured_phase(ctx, "measure", flows, plan, cfg);
    if (!stats) {
        return std::move(stats).error();
    }
    std::uint64_t walks = 0;
    bool unsorted = false;
    bool honours_n = true;
    std::uint64_t names = 0;
    std::uint64_t others = 0;
    for (std::size_t i = 0; i < flows.size(); ++i) {
        const auto& f = flows.at<CatalogFlow>(i);
        walks += f.walks();
        unsorted = unsorted || f.saw_unsorted();
        honours_n = honours_n && f.honours_n();
        names = std::max(names, f.last_walk_names());
        others = std::max(others, f.others());
    }
    add_extra(ctx, "repos", static_cast<std::int64_t>(o.repos));
    add_extra(ctx, "walks", static_cast<std::int64_t>(walks));
    add_extra(ctx, "pages_per_walk",
              walks ? static_cast<double>(stats->ops) / static_cast<double>(walks) : 0.0);
    add_extra(ctx, "repos_per_walk", static_cast<std::int64_t>(names));
    add_extra(ctx, "other_repos", static_cast<std::int64_t>(others));
    add_extra(ctx, "walk_ms",
              walks ? ctx.meter.seconds() * 1e3 * static_cast<double>(flows.size()) /
                          static_cast<double>(walks)
                    : not_measured);
    add_extra(ctx, "sorted", !unsorted);
    add_extra(ctx, "honours_n", honours_n);
    return util::Ok{};
}

} // namespace rp::bench
