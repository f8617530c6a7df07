// SPDX-License-Identifier: Apache-2.0
#include "storage/retention.hh"

#include <algorithm>
#include <ctime>
#include <unordered_set>
#include <utility>

#include "reactor/ops.hh"
#include "storage/gc.hh"
#include "storage/layout.hh"
#include "util/strings.hh"

namespace rp::storage {

using reactor::Task;

namespace {

constexpr std::int64_t day_s = 86400;
constexpr std::size_t batch_max = 256;

std::int64_t days_ago(std::int64_t now, std::uint32_t days) {
    return now - static_cast<std::int64_t>(days) * day_s;
}

void keep_item(RetentionProgress& p, const RetentionItem& it, std::size_t max) {
    std::lock_guard lk(p.items_mu);
    if (p.items.size() < max) {
        p.items.push_back(it);
    } else {
        p.items_truncated = true;
    }
}

// The latest of a file's mtime under v2 and `t` (0 when it is gone).
Task<std::int64_t> later_mtime(Store& store, std::string path, std::int64_t t) noexcept {
    auto st = co_await store.fs().stat(std::move(path));
    co_return st ? std::max(t, static_cast<std::int64_t>(st->stx_mtime.tv_sec)) : t;
}

RetentionItem manifest_item(const Digest& d, RetentionItem::Reason why, std::int64_t used_before) {
    RetentionItem it;
    it.kind = RetentionItem::manifest;
    it.reason = why;
    it.digest = d;
    it.used_before = used_before;
    return it;
}

// Deletes a batch through `del`, counting the outcomes.
Task<void> carry_out(const RetentionDelete& del, const std::string& repo,
                     const std::vector<RetentionItem>& items, RetentionProgress& p) noexcept {
    // Batches of at most batch_max: each holds its repository's write lock
    // (and its manifests' removal holds) only that long.
    for (std::size_t at = 0; at < items.size(); at += batch_max) {
        const std::vector<RetentionItem> batch(
            items.begin() + static_cast<std::ptrdiff_t>(at),
            items.begin() + static_cast<std::ptrdiff_t>(std::min(items.size(), at + batch_max)));
        const std::vector<Store::Outcome> got = co_await del(repo, batch);
        for (std::size_t i = 0; i < batch.size(); ++i) {
            const Store::Outcome o = i < got.size() ? got[i] : Store::Outcome::failed;
            if (o == Store::Outcome::failed) {
                p.errors.fetch_add(1, std::memory_order_relaxed);
            } else if (o == Store::Outcome::kept) {
                p.skipped.fetch_add(1, std::memory_order_relaxed);
            } else {
                (batch[i].kind == RetentionItem::tag ? p.tags_deleted : p.manifests_deleted)
                    .fetch_add(1, std::memory_order_relaxed);
            }
        }
    }
}

} // namespace

const char* RetentionItem::reason_name(Reason r) noexcept {
    switch (r) {
    case older_than: return "older_than";
    case not_pulled: return "not_pulled";
    case beyond_keep_last: return "beyond_keep_last";
    case untagged: return "untagged";
    case freed: return "freed";
    }
    return "unknown";
}

const char* RetentionProgress::phase_name(int p) noexcept {
    switch (p) {
    case planning: return "planning";
    case deleting: return "deleting";
    case done: return "done";
    case failed: return "failed";
    default: return "idle";
    }
}

const RetentionPolicy* policy_for(const std::vector<RetentionPolicy>& policies,
                                  std::string_view repo) noexcept {
    for (const RetentionPolicy& p : policies) {
        for (const std::string& pattern : p.repositories) {
            if (util::name_match(pattern, repo)) {
                return &p;
            }
        }
    }
    return nullptr;
}

std::vector<RetentionItem> plan_tags(const RetentionPolicy& p, std::vector<TagFacts> tags,
                                     std::int64_t now) {
    std::vector<RetentionItem> out;
    if (!p.deletes_tags()) {
        return out;
    }
    // A tag whose push time is unknown counts as pushed now: kept.
    for (TagFacts& t : tags) {
        t.pushed = t.pushed > 0 ? t.pushed : now;
    }
    // Newest push first; equal times by name, so a plan never depends on
    // the order tags were listed in.
    std::sort(tags.begin(), tags.end(), [](const TagFacts& a, const TagFacts& b) {
        return a.pushed != b.pushed ? a.pushed > b.pushed : a.tag < b.tag;
    });
    const bool only_keep_last = p.older_than_days == 0 && p.not_pulled_days == 0;
    for (std::size_t i = 0; i < tags.size(); ++i) {
        const TagFacts& t = tags[i];
        const bool kept = i < p.keep_last || std::any_of(p.keep_tags.begin(), p.keep_tags.end(),
                                                         [&](const std::string& k) {
                                                             return util::name_match(k, t.tag);
                                                         });
        if (kept) {
            continue;
        }
        RetentionItem it;
        it.kind = RetentionItem::tag;
        it.tag_name = t.tag;
        it.digest = t.target;
        const std::int64_t pushed = t.pushed;
        const std::int64_t pulled = std::max(t.pulled, pushed);
        if (p.older_than_days != 0 && pushed < days_ago(now, p.older_than_days)) {
            it.reason = RetentionItem::older_than;
        } else if (p.not_pulled_days != 0 && pulled < days_ago(now, p.not_pulled_days)) {
            it.reason = RetentionItem::not_pulled;
        } else if (only_keep_last) {
            it.reason = RetentionItem::beyond_keep_last;
        } else {
            continue;
        }
        out.push_back(std::move(it));
    }
    return out;
}

Task<void> apply_retention(Store& store, Activity& activity,
                           const std::vector<RetentionPolicy>& policies, RetentionOptions opt,
                           RetentionProgress& progress, RetentionDelete del) noexcept {
    Index& index = store.index();
    const std::int64_t now = opt.now;
    const std::int64_t since = activity.tracking_since();
    progress.started_at.store(now);
    progress.phase.store(RetentionProgress::planning);
    std::size_t turn = 0;
    for (const std::string& repo : index.repo_names()) {
        if (++turn % 64 == 0) { // the shard serves requests between batches of repositories
            (void)co_await reactor::sleep_ms(0);
        }
        if (opt.skip && opt.skip(repo)) {
            continue;
        }
        const RetentionPolicy* p = policy_for(policies, repo);
        auto c = p == nullptr ? std::nullopt : index.content(repo);
        if (!c) {
            continue;
        }
        progress.repositories.fetch_add(1, std::memory_order_relaxed);
        std::vector<RetentionItem> plan;
        if (p->deletes_tags()) {
            std::vector<TagFacts> facts;
            facts.reserve(c->tags.size());
            for (const auto& [tag, d] : c->tags) {
                Activity::Times t = activity.tag(repo, tag);
                if (t.pushed == 0) { // pushed before tracking began: its link says when
                    t.pushed = co_await later_mtime(store, layout::tag_current_link(repo, tag), 0);
                    if (t.pushed > 0) {
                        activity.tag_pushed_if_unknown(repo, tag, t.pushed);
                    }
                }
                const std::int64_t pulled =
                    std::max({t.pulled, activity.digest_pulled_at(repo, d.str()), since});
                facts.push_back(TagFacts{tag, d, t.pushed, pulled});
            }
            progress.tags_examined.fetch_add(facts.size(), std::memory_order_relaxed);
            plan = plan_tags(*p, std::move(facts), now);
        }
        const auto reached = reached_by_tags(index, repo, c->tags);
        const std::size_t tag_items = plan.size();
        if (tag_items != 0) {
            // What the planned deletions leave unreached goes with them.
            std::unordered_set<std::string> going;
            for (const RetentionItem& it : plan) {
                going.insert(it.tag_name);
            }
            std::vector<std::pair<std::string, Digest>> left;
            for (const auto& td : c->tags) {
                if (!going.contains(td.first)) {
                    left.push_back(td);
                }
            }
            const auto still = reached_by_tags(index, repo, left);
            for (const Digest& m : c->manifests) {
                if (reached.contains(m.str()) && !still.contains(m.str())) {
                    plan.push_back(manifest_item(m, RetentionItem::freed, now));
                }
            }
        }
        if (p->untagged_days != 0) {
            const std::int64_t cutoff = days_ago(now, p->untagged_days);
            for (const Digest& m : c->manifests) {
                if (reached.contains(m.str())) {
                    continue;
                }
                const Activity::Times t = activity.digest(repo, m.str());
                std::int64_t used = std::max({store.last_use(m).value_or(0), t.pulled, t.pushed});
                if (used < cutoff) {
                    used = co_await later_mtime(store, layout::revision_link(repo, m), used);
                }
                if (used < cutoff) {
                    plan.push_back(manifest_item(m, RetentionItem::untagged, cutoff));
                }
            }
        }
        for (RetentionItem& it : plan) {
            it.repo = repo;
            keep_item(progress, it, opt.items_kept_max);
        }
        if (opt.dry_run) {
            progress.tags_deleted.fetch_add(tag_items, std::memory_order_relaxed);
            progress.manifests_deleted.fetch_add(plan.size() - tag_items,
                                                 std::memory_order_relaxed);
            continue;
        }
        if (plan.empty()) {
            continue;
        }
        progress.phase.store(RetentionProgress::deleting);
        std::vector<RetentionItem> tags(plan.begin(),
                                        plan.begin() + static_cast<std::ptrdiff_t>(tag_items));
        co_await carry_out(del, repo, tags, progress);
        // Reachability again, from what the tags are now: a tag pushed since
        // the plan keeps what it reaches.
        auto now_c = index.content(repo);
        const auto now_reached =
            reached_by_tags(index, repo, now_c ? now_c->tags : decltype(now_c->tags){});
        std::vector<RetentionItem> manifests;
        for (std::size_t i = tag_items; i < plan.size(); ++i) {
            if (now_reached.contains(plan[i].digest.str())) {
                progress.skipped.fetch_add(1, std::memory_order_relaxed);
            } else {
                manifests.push_back(std::move(plan[i]));
            }
        }
        co_await carry_out(del, repo, manifests, progress);
        progress.phase.store(RetentionProgress::planning);
    }
    progress.ended_at.store(static_cast<std::int64_t>(std::time(nullptr)));
    progress.phase.store(RetentionProgress::done);
}

} // namespace rp::storage
