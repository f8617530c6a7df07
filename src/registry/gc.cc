// SPDX-License-Identifier: Apache-2.0
// Garbage collection while serving: on a schedule ([gc] interval_s) and on
// demand (POST /ringport/v1/gc), one run at a time; GET reports the running
// or last run. storage/gc.cc does the work.
#include <charconv>
#include <ctime>

#include "reactor/ops.hh"
#include "reactor/shard.hh"
#include "registry/json.hh"
#include "registry/registry.hh"
#include "storage/names.hh"
#include "util/log.hh"

namespace rp::registry {

using reactor::Task;

namespace {

std::string report_json(const storage::GcProgress* p, const storage::GcOptions& opt,
                        std::uint64_t run) {
    Json j;
    if (p == nullptr) {
        return j.num("run", std::uint64_t{0}).str("phase", "idle").done();
    }
    return j.num("run", run)
        .str("phase", storage::GcProgress::phase_name(p->phase.load()))
        .boolean("dry_run", opt.dry_run)
        .boolean("delete_untagged", opt.delete_untagged)
        .num("grace_s", opt.grace_s)
        .num("started_at", p->started_at.load())
        .num("ended_at", p->ended_at.load())
        .num("repositories", p->repositories.load())
        .num("marked", p->marked.load())
        .num("manifests_eligible", p->manifests_eligible.load())
        .num("manifests_deleted", p->manifests_deleted.load())
        .num("blobs_scanned", p->blobs_scanned.load())
        .num("blobs_eligible", p->blobs_eligible.load())
        .num("blobs_deleted", p->blobs_deleted.load())
        .num("links_deleted", p->links_deleted.load())
        .num("bytes_freed", p->bytes_freed.load())
        .num("kept_in_grace", p->kept_in_grace.load())
        .num("errors", p->errors.load())
        .done();
}

// "true"/"1" or "false"/"0"; nullopt for anything else.
std::optional<bool> flag(const std::optional<std::string>& v, bool dflt) {
    if (!v) {
        return dflt;
    }
    if (*v == "true" || *v == "1") {
        return true;
    }
    if (*v == "false" || *v == "0") {
        return false;
    }
    return std::nullopt;
}

// Whole seconds, up to a century; nullopt for anything else.
std::optional<std::int64_t> seconds(const std::optional<std::string>& v, std::int64_t dflt) {
    if (!v) {
        return dflt;
    }
    std::int64_t n = -1;
    const char* end = v->data() + v->size();
    auto [at, ec] = std::from_chars(v->data(), end, n);
    if (ec != std::errc() || at != end || n < 0 || n > 100LL * 365 * 86400) {
        return std::nullopt;
    }
    return n;
}

} // namespace

std::shared_ptr<storage::GcProgress> Registry::gc_claim() noexcept {
    std::lock_guard lk(gc_mu_);
    if (gc_last_) {
        int ph = gc_last_->phase.load();
        if (ph != storage::GcProgress::done && ph != storage::GcProgress::failed) {
            return nullptr;
        }
    }
    gc_last_ = std::make_shared<storage::GcProgress>();
    gc_last_->phase.store(storage::GcProgress::marking);
    ++gc_runs_;
    return gc_last_;
}

Task<void> Registry::gc_run(storage::GcOptions opt,
                            std::shared_ptr<storage::GcProgress> p) noexcept {
    if (!co_await ready_.wait()) {
        p->phase.store(storage::GcProgress::failed);
        co_return;
    }
    const auto t0 = std::time(nullptr);
    if (audit_ != nullptr && !opt.dry_run) {
        // Each deletion is an audit record of its own.
        opt.on_manifest_deleted = [this](const std::string& repo, const storage::Digest& d) {
            const std::string& digest = d.str();
            observe::AuditRecord a;
            a.action = "gc-delete";
            a.outcome = "ok";
            a.repository = repo;
            a.digest = digest;
            a.detail = "untagged manifest";
            audit(Origin{nullptr, "gc"}, a);
        };
        opt.on_blob_deleted = [this](const storage::Digest& d, std::uint64_t size) {
            const std::string& digest = d.str();
            observe::AuditRecord a;
            a.action = "gc-delete";
            a.outcome = "ok";
            a.digest = digest;
            a.size = size;
            a.detail = "blob";
            audit(Origin{nullptr, "gc"}, a);
        };
    }
    co_await storage::collect_garbage(store_, opt, *p, {});
    if (!opt.dry_run) {
        totals_.gc_blobs.fetch_add(p->blobs_deleted.load(), std::memory_order_relaxed);
        totals_.gc_bytes.fetch_add(p->bytes_freed.load(), std::memory_order_relaxed);
        totals_.gc_manifests.fetch_add(p->manifests_deleted.load(), std::memory_order_relaxed);
    }
    RP_LOG_INFO("garbage collection%s%s (grace %llds): freed %llu bytes: %llu blob(s), %llu "
                "layer link(s), %llu untagged manifest(s); %llu eligible blob(s) of %llu, %llu "
                "kept within the grace period, %llu error(s), in %llds",
                opt.dry_run ? " (dry run)" : "", opt.delete_untagged ? " --delete-untagged" : "",
                static_cast<long long>(opt.grace_s),
                static_cast<unsigned long long>(p->bytes_freed.load()),
                static_cast<unsigned long long>(p->blobs_deleted.load()),
                static_cast<unsigned long long>(p->links_deleted.load()),
                static_cast<unsigned long long>(p->manifests_deleted.load()),
                static_cast<unsigned long long>(p->blobs_eligible.load()),
                static_cast<unsigned long long>(p->blobs_scanned.load()),
                static_cast<unsigned long long>(p->kept_in_grace.load()),
                static_cast<unsigned long long>(p->errors.load()),
                static_cast<long long>(std::time(nullptr) - t0));
}

Task<void> Registry::gc_endpoint(http::Exchange& ex) noexcept {
    const http::Request& req = ex.request();
    if (req.method == "GET" || req.method == "HEAD") {
        std::string body;
        {
            std::lock_guard lk(gc_mu_);
            body = report_json(gc_last_.get(), gc_last_opt_, gc_runs_);
        }
        http::Response r = empty_response(200);
        r.add("Content-Type", "application/json");
        r.add("Cache-Control", "no-store");
        r.body = std::move(body);
        co_await reply(ex, std::move(r));
        co_return;
    }
    if (req.method != "POST") {
        co_await fail(ex, Code::unsupported, "GET or POST");
        co_return;
    }
    storage::GcOptions opt;
    auto dry = flag(req.query_param("dry_run"), false);
    auto untagged = flag(req.query_param("delete_untagged"), cfg_.gc_delete_untagged);
    if (!dry || !untagged) {
        co_await fail(ex, Code::unsupported, "dry_run and delete_untagged take true or false");
        co_return;
    }
    opt.dry_run = *dry;
    opt.delete_untagged = *untagged;
    auto grace = seconds(req.query_param("grace_s"), cfg_.gc_grace_s);
    if (!grace) {
        co_await fail(ex, Code::unsupported, "grace_s takes a number of seconds");
        co_return;
    }
    opt.grace_s = *grace;
    if (cfg_.read_only && !opt.dry_run) {
        co_await fail(ex, Code::unsupported, "the registry is read-only: only a dry run");
        co_return;
    }
    auto p = gc_claim();
    std::string body;
    {
        std::lock_guard lk(gc_mu_);
        if (p) {
            gc_last_opt_ = opt;
        }
        body = report_json(gc_last_.get(), gc_last_opt_, gc_runs_);
    }
    http::Response r = empty_response(p ? 202 : 409);
    r.add("Content-Type", "application/json");
    r.add("Cache-Control", "no-store");
    r.add("Location", "/ringport/v1/gc");
    r.body = std::move(body);
    if (p) {
        reactor::spawn(gc_run(opt, std::move(p)));
    }
    co_await reply(ex, std::move(r));
}

} // namespace rp::registry

namespace rp::registry {

reactor::Task<bool> Registry::may_delete(http::Exchange& ex, const Route& r) noexcept {
    if (!cfg_.delete_enabled || cfg_.read_only) {
        co_await fail(ex, Code::unsupported,
                      cfg_.read_only ? "the registry is read-only" : "deletes are disabled");
        co_return false;
    }
    if (!storage::valid_repo_name(r.name)) {
        co_await fail(ex, Code::name_invalid, "invalid repository name");
        co_return false;
    }
    if (!co_await ready_.wait()) {
        co_await fail(ex, Code::unavailable, "stopping before the index finished loading");
        co_return false;
    }
    co_return true;
}

Task<void> Registry::delete_repository(http::Exchange& ex, const Route& r) noexcept {
    if (ex.request().method != "DELETE") {
        co_await fail(ex, Code::unsupported, "DELETE");
        co_return;
    }
    if (!co_await may_delete(ex, r)) {
        co_return;
    }
    auto del = co_await store_.delete_repository(r.name);
    if (!del) {
        co_await fail(ex, code_for(del.error(), Code::name_unknown), r.name);
        co_return;
    }
    RP_LOG_INFO("repository %s deleted: %zu tag(s), %zu manifest(s), %zu layer link(s); its "
                "blobs are left to garbage collection",
                r.name.c_str(), del->tags, del->manifests, del->links);
    if (observed()) {
        co_await publish(on_delete(Origin{&ex, {}}, r.name, {}, {}, "repository"));
    }
    http::Response resp = empty_response(202);
    resp.add("Content-Type", "application/json");
    resp.body = "{\"repository\":\"" + r.name + "\",\"tags\":" + std::to_string(del->tags) +
                ",\"manifests\":" + std::to_string(del->manifests) +
                ",\"blob_links\":" + std::to_string(del->links) + "}\n";
    co_await reply(ex, std::move(resp));
}

} // namespace rp::registry
