// SPDX-License-Identifier: Apache-2.0
// Retention while serving: on a schedule ([retention] interval_s) and on
// demand (POST /ringport/v1/retention), one run at a time; GET reports the
// running or last run with what it deleted (or, dry, would delete).
// storage/retention.cc plans; deletions take the API's delete path here.
#include <ctime>

#include "reactor/ops.hh"
#include "registry/json.hh"
#include "registry/registry.hh"
#include "util/log.hh"

namespace rp::registry {

using reactor::Task;
using storage::Digest;
using storage::RetentionItem;
using storage::RetentionProgress;
using util::Result;

namespace {

std::string report_json(const RetentionProgress* p, bool dry, std::uint64_t run) {
    Json j;
    j.num("run", run);
    if (p == nullptr) {
        j.str("phase", "idle");
        return j.done();
    }
    j.str("phase", RetentionProgress::phase_name(p->phase.load()))
        .boolean("dry_run", dry)
        .num("started_at", p->started_at.load())
        .num("ended_at", p->ended_at.load())
        .num("repositories", p->repositories.load())
        .num("tags_examined", p->tags_examined.load())
        .num("tags_deleted", p->tags_deleted.load())
        .num("manifests_deleted", p->manifests_deleted.load())
        .num("skipped", p->skipped.load())
        .num("errors", p->errors.load());
    std::lock_guard lk(p->items_mu);
    j.boolean("items_truncated", p->items_truncated).open_array("items");
    for (const RetentionItem& it : p->items) {
        j.open().str("repository", it.repo);
        if (it.kind == RetentionItem::tag) {
            j.str("tag", it.tag_name);
        }
        j.str("digest", it.digest.str()).str("reason", RetentionItem::reason_name(it.reason));
        j.close();
    }
    j.close_array();
    return j.done();
}

} // namespace

std::shared_ptr<RetentionProgress> Registry::retention_claim(bool dry_run) noexcept {
    std::lock_guard lk(gc_mu_);
    if (retention_last_) {
        int ph = retention_last_->phase.load();
        if (ph != RetentionProgress::done && ph != RetentionProgress::failed) {
            return nullptr;
        }
    }
    retention_last_ = std::make_shared<RetentionProgress>();
    retention_last_->phase.store(RetentionProgress::planning);
    retention_last_dry_ = dry_run;
    ++retention_runs_;
    return retention_last_;
}

Task<void> Registry::retention_run(bool dry_run, std::shared_ptr<RetentionProgress> p) noexcept {
    // The index, then the saved push and pull times: a policy never
    // decides on times it has not read.
    if (!co_await ready_.wait() || !co_await activity_loaded_.wait()) {
        p->phase.store(RetentionProgress::failed);
        co_return;
    }
    storage::RetentionOptions opt;
    opt.dry_run = dry_run;
    opt.now = now_s();
    // A mirror's cache has its own eviction; a policy never deletes from it.
    opt.skip = [this](std::string_view repo) { return router_.owner(repo) != nullptr; };
    co_await storage::apply_retention(
        store_, activity_, cfg_.retention_policies, std::move(opt), *p,
        [this](const std::string& repo, const std::vector<RetentionItem>& items) {
            return retention_delete(repo, items);
        });
    RP_LOG_INFO("retention%s: %llu tag(s) and %llu manifest(s) %s in %llu repositories (%llu "
                "tags examined), %llu changed since planned and kept, %llu error(s)",
                dry_run ? " (dry run)" : "",
                static_cast<unsigned long long>(p->tags_deleted.load()),
                static_cast<unsigned long long>(p->manifests_deleted.load()),
                dry_run ? "would be deleted" : "deleted",
                static_cast<unsigned long long>(p->repositories.load()),
                static_cast<unsigned long long>(p->tags_examined.load()),
                static_cast<unsigned long long>(p->skipped.load()),
                static_cast<unsigned long long>(p->errors.load()));
    // What the deletions freed is garbage collection's: a run now, with the
    // configured options, unless one is under way (it reaches it next time).
    if (!dry_run) {
        totals_.retention_tags.fetch_add(p->tags_deleted.load(), std::memory_order_relaxed);
        totals_.retention_manifests.fetch_add(p->manifests_deleted.load(),
                                              std::memory_order_relaxed);
    }
    if (!dry_run && p->tags_deleted.load() + p->manifests_deleted.load() > 0) {
        start_gc();
    }
}

Task<std::vector<storage::Store::Outcome>>
Registry::retention_delete(const std::string& repo,
                           const std::vector<RetentionItem>& items) noexcept {
    using Outcome = storage::Store::Outcome;
    std::vector<Outcome> out;
    const bool tags = !items.empty() && items.front().kind == RetentionItem::tag;
    if (tags) {
        std::vector<std::pair<std::string, Digest>> batch;
        batch.reserve(items.size());
        for (const RetentionItem& it : items) {
            batch.emplace_back(it.tag_name, it.digest);
        }
        out = co_await store_.delete_tags(repo, std::move(batch));
    } else {
        std::vector<Digest> ds;
        std::vector<std::int64_t> cut;
        ds.reserve(items.size());
        cut.reserve(items.size());
        for (const RetentionItem& it : items) {
            ds.push_back(it.digest);
            cut.push_back(it.used_before);
        }
        out = co_await store_.collect_manifests(repo, std::move(ds), std::move(cut));
    }
    std::uint64_t last_event = 0;
    const Origin retention{nullptr, "retention"};
    for (std::size_t i = 0; i < items.size() && i < out.size(); ++i) {
        const RetentionItem& it = items[i];
        const char* why = RetentionItem::reason_name(it.reason);
        if (out[i] == Outcome::deleted && observed()) {
            const std::uint64_t seq = tags ? on_delete(retention, repo, it.tag_name, {}, why)
                                           : on_delete(retention, repo, {}, it.digest.str(), why);
            last_event = seq != 0 ? seq : last_event;
        }
        if (out[i] == Outcome::deleted && tags) {
            activity_.forget_tag(repo, it.tag_name);
            RP_LOG_INFO("retention: deleted tag %s:%s (%s, was %s)", repo.c_str(),
                        it.tag_name.c_str(), why, it.digest.str().c_str());
        } else if (out[i] == Outcome::deleted) {
            activity_.forget_digest(repo, it.digest.str());
            RP_LOG_INFO("retention: deleted manifest %s@%s (%s)", repo.c_str(),
                        it.digest.str().c_str(), why);
        } else if (out[i] == Outcome::failed) {
            RP_LOG_WARN("retention: deleting %s %s%s%s failed", tags ? "tag" : "manifest",
                        repo.c_str(), tags ? ":" : "@",
                        tags ? it.tag_name.c_str() : it.digest.str().c_str());
        }
    }
    co_await publish(last_event); // the batch's events are on disk
    co_return out;
}

Task<Result<void>> Registry::remove_tag(const std::string& repo, const std::string& tag,
                                        const Origin& o) noexcept {
    auto r = co_await store_.delete_tag(repo, tag);
    if (r) {
        activity_.forget_tag(repo, tag);
        insights_.forget_tag(repo, tag);
        if (observed()) {
            co_await publish(on_delete(o, repo, tag, {}, "tag"));
        }
    }
    co_return r;
}

Task<Result<void>> Registry::remove_manifest(const std::string& repo, const Digest& d,
                                             const Origin& o) noexcept {
    auto r = co_await store_.delete_manifest(repo, d);
    if (r) {
        activity_.forget_digest(repo, d.str());
        if (observed()) {
            co_await publish(on_delete(o, repo, {}, d.str(), "manifest"));
        }
    }
    co_return r;
}

Task<void> Registry::retention_endpoint(http::Exchange& ex) noexcept {
    const http::Request& req = ex.request();
    auto answer = [this](int status) {
        http::Response r = empty_response(status);
        r.add("Content-Type", "application/json");
        r.add("Cache-Control", "no-store");
        r.add("Location", "/ringport/v1/retention");
        std::lock_guard lk(gc_mu_);
        r.body = report_json(retention_last_.get(), retention_last_dry_, retention_runs_);
        return r;
    };
    if (req.method == "GET" || req.method == "HEAD") {
        co_await reply(ex, answer(200));
        co_return;
    }
    if (req.method != "POST") {
        co_await fail(ex, Code::unsupported, "GET or POST");
        co_return;
    }
    auto dry = req.query_param("dry_run");
    if (dry && *dry != "true" && *dry != "1" && *dry != "false" && *dry != "0") {
        co_await fail(ex, Code::unsupported, "dry_run takes true or false");
        co_return;
    }
    const bool dry_run = dry && (*dry == "true" || *dry == "1");
    if ((cfg_.read_only || !cfg_.delete_enabled) && !dry_run) {
        co_await fail(ex, Code::unsupported,
                      cfg_.read_only ? "the registry is read-only: only a dry run"
                                     : "deletes are disabled: only a dry run");
        co_return;
    }
    auto p = retention_claim(dry_run);
    http::Response r = answer(p ? 202 : 409);
    if (p) {
        reactor::spawn(retention_run(dry_run, std::move(p)));
    }
    co_await reply(ex, std::move(r));
}

} // namespace rp::registry
