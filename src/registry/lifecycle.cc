// SPDX-License-Identifier: Apache-2.0
// The registry's background duties on shard 0: loading and saving the tag and
// pull activity (in batches, never a write per pull), and the schedules of
// garbage collection and retention. The mirrors' housekeeping starts once
// the activity it evicts by is loaded.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "reactor/ops.hh"
#include "reactor/shard.hh"
#include "registry/registry.hh"
#include "storage/layout.hh"
#include "util/log.hh"

namespace rp::registry {

using reactor::Task;

namespace {

constexpr const char* activity_file = ".ringport.activity";
constexpr const char* insights_file = ".ringport.insights";
// The mirror's access times before they became part of the activity: read
// once, removed after the first save.
constexpr const char* old_access_file = ".ringport.mirror-access";

// Blocking file I/O for the background pool and the stop.
std::string read_small(int dirfd, const char* name) {
    std::string out;
    int fd = ::openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return out;
    }
    char buf[65536];
    for (int i = 0; i < 1'000'000; ++i) { // bounded: 64 GiB at most
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) {
            break;
        }
        out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return out;
}

bool write_replace(int dirfd, const char* name, const std::string& bytes) {
    std::string tmp = std::string(name) + ".tmp";
    int fd = ::openat(dirfd, tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return false;
    }
    std::size_t off = 0;
    bool ok = true;
    while (ok && off < bytes.size()) {
        ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
        ok = n > 0;
        off += ok ? static_cast<std::size_t>(n) : 0;
    }
    ok = ok && ::fsync(fd) == 0;
    ::close(fd);
    return ok && ::renameat(dirfd, tmp.c_str(), dirfd, name) == 0;
}

bool save_activity_file(int dirfd, const std::string& bytes) {
    if (!write_replace(dirfd, activity_file, bytes)) {
        return false;
    }
    (void)::unlinkat(dirfd, old_access_file, 0); // its times are in the activity now
    return true;
}

bool save_insights_file(int dirfd, const std::string& bytes) {
    return write_replace(dirfd, insights_file, bytes);
}

// Saves `state` (the activity or the insights) if it changed since the
// last save; a failed save leaves it changed, for the next turn. Blocking.
template <typename State>
bool save_changed(State& state, int rootfd, bool (*write)(int, const std::string&)) {
    if (!state.take_dirty() || write(rootfd, state.serialize())) {
        return true;
    }
    state.mark_dirty();
    return false;
}

// The size of each blob's data file, or 0 when it is missing (a link to a
// blob that is gone stores nothing). Blocking: the background pool.
std::vector<std::pair<storage::Digest, std::uint64_t>>
stat_blobs(int rootfd, const std::vector<storage::Digest>& digests) {
    std::vector<std::pair<storage::Digest, std::uint64_t>> out;
    out.reserve(digests.size());
    const std::string v2 = std::string(storage::layout::v2_dir) + "/";
    for (const storage::Digest& d : digests) {
        struct stat st {};
        const std::string path = v2 + storage::layout::blob_data(d);
        if (::fstatat(rootfd, path.c_str(), &st, 0) == 0) {
            out.emplace_back(d, static_cast<std::uint64_t>(st.st_size));
        } else if (errno == ENOENT || errno == ENOTDIR) {
            out.emplace_back(d, 0);
        }
    }
    return out;
}

} // namespace

void Registry::start_housekeeping(int rootfd) noexcept {
    rootfd_ = rootfd;
    reactor::spawn(lifecycle());
    if (notifier_ != nullptr) {
        notifier_->start(reactor::Shard::current()->blocking()); // webhook delivery
    }
}

void Registry::save_activity() noexcept {
    // Never before the saved times were read: that would overwrite them.
    if (rootfd_ < 0 || !activity_loaded_.is_set()) {
        return;
    }
    if (!save_changed(activity_, rootfd_, save_activity_file)) {
        RP_LOG_WARN("tag and pull activity not saved: %s", std::strerror(errno));
    }
    if (!save_changed(insights_, rootfd_, save_insights_file)) {
        RP_LOG_WARN("insights not saved: %s", std::strerror(errno));
    }
}

void Registry::sample_rates(std::int64_t now) noexcept {
    if (!requests_) {
        return;
    }
    std::uint64_t total = 0;
    for (std::size_t k = 0; k < RequestCounters::kinds; ++k) {
        for (std::size_t s = 0; s < RequestCounters::slots; ++s) {
            total += requests_->total(k, s);
        }
    }
    const std::int64_t minute = now / 60;
    std::lock_guard lk(rates_.mu);
    if (rates_.minute == 0) {
        rates_.minute = minute;
        rates_.at_start = total;
        return;
    }
    if (minute != rates_.minute) { // the minute counting ended: keep it
        rates_.minutes.emplace_back(rates_.minute, total - rates_.at_start);
        rates_.minute = minute;
        rates_.at_start = total;
        while (rates_.minutes.size() > 60) {
            rates_.minutes.pop_front();
        }
    }
}

Task<void> Registry::learn_sizes() noexcept {
    // Sizes the index has no size for (a tree or snapshot loaded at
    // startup): from each blob's data file, in batches, off the shards.
    reactor::Shard* shard = reactor::Shard::current();
    storage::Index& idx = store_.index();
    for (int turn = 0; turn < 100000 && !shard->stopping(); ++turn) {
        // Large batches: a blob several repositories hold makes the index
        // recount every repository once per batch, under its lock.
        std::vector<storage::Digest> batch = idx.unsized(65536);
        if (batch.empty()) {
            break;
        }
        std::vector<std::pair<storage::Digest, std::uint64_t>> sizes;
        co_await shard->blocking().run([&] { sizes = stat_blobs(rootfd_, batch); });
        if (sizes.empty()) {
            break; // nothing could be read: the next turn of the lifecycle retries
        }
        idx.learn_sizes(sizes);
    }
}

Task<void> Registry::lifecycle() noexcept {
    if (!co_await ready_.wait()) {
        activity_loaded_.abandon(); // stopping before the index loaded: nothing waits
        co_return;
    }
    reactor::Shard* shard = reactor::Shard::current();
    std::string saved;
    std::string old;
    std::string insights;
    co_await shard->blocking().run([this, &saved, &old, &insights] {
        saved = read_small(rootfd_, activity_file);
        old = read_small(rootfd_, old_access_file);
        insights = read_small(rootfd_, insights_file);
    });
    activity_.load(old);
    activity_.load(saved);
    activity_.begin_tracking(now_s());
    insights_.set_keep_days(cfg_.insights_days);
    insights_.load(insights);
    activity_loaded_.set(); // retention and the stop's save wait for this
    if (!router_.empty()) {
        reactor::spawn(housekeeping());
    }
    co_await learn_sizes();
    insights_.stored(now_s(), store_.index().totals().bytes);
    sample_rates(now_s());
    std::int64_t saved_at = now_s();
    std::int64_t sized_at = now_s();
    std::int64_t gc_at = cfg_.gc_interval_s > 0 ? now_s() + cfg_.gc_interval_s : -1;
    std::int64_t retention_at =
        cfg_.retention_interval_s > 0 ? now_s() + cfg_.retention_interval_s : -1;
    // Bounded: one turn a second; a stop ends the sleep and the loop.
    for (std::uint64_t turn = 0; turn < (1ULL << 40) && !shard->stopping(); ++turn) {
        (void)co_await reactor::sleep_ms(1000);
        if (shard->stopping()) {
            break;
        }
        const std::int64_t now = now_s();
        sample_rates(now);
        insights_.stored(now, store_.index().totals().bytes); // marks a change only
        if (now - sized_at >= 10 && store_.index().totals().unsized != 0) {
            sized_at = now; // a repository replaced by the verification, say
            co_await learn_sizes();
        }
        if (gc_at >= 0 && now >= gc_at) {
            gc_at = now + cfg_.gc_interval_s;
            start_gc();
        }
        if (retention_at >= 0 && now >= retention_at) {
            retention_at = now + cfg_.retention_interval_s;
            // A registry that may not delete only reports, as its endpoint.
            const bool dry = cfg_.retention_dry_run || cfg_.read_only || !cfg_.delete_enabled;
            if (auto p = retention_claim(dry)) {
                reactor::spawn(retention_run(dry, std::move(p)));
            }
        }
        if (now - saved_at >= cfg_.activity_save_s) {
            saved_at = now;
            // Entries of tags and manifests that are gone go first.
            const storage::Index& idx = store_.index();
            activity_.prune(
                [&idx](std::string_view repo, std::string_view tag, std::string_view digest) {
                    if (!tag.empty()) {
                        return idx.resolve_tag(repo, tag).has_value();
                    }
                    auto d = storage::Digest::parse(digest);
                    return d && idx.manifest(repo, *d) != nullptr;
                });
            insights_.prune(now, [&idx](std::string_view repo, std::string_view tag) {
                return tag.empty() ? idx.repo_exists(repo) : idx.resolve_tag(repo, tag).has_value();
            });
            // Both saved off the shard (serialized there too); a failure
            // is retried the next turn.
            bool activity_ok = true;
            bool insights_ok = true;
            co_await shard->blocking().run([&] {
                activity_ok = save_changed(activity_, rootfd_, save_activity_file);
                insights_ok = save_changed(insights_, rootfd_, save_insights_file);
            });
            if (!activity_ok) {
                RP_LOG_WARN("tag and pull activity not saved; retrying later");
            }
            if (!insights_ok) {
                RP_LOG_WARN("insights not saved; retrying later");
            }
        }
    }
}

void Registry::start_gc() noexcept {
    storage::GcOptions opt;
    opt.delete_untagged = cfg_.gc_delete_untagged;
    opt.grace_s = cfg_.gc_grace_s;
    if (auto p = gc_claim()) {
        {
            std::lock_guard lk(gc_mu_);
            gc_last_opt_ = opt;
        }
        reactor::spawn(gc_run(opt, std::move(p)));
    }
}

} // namespace rp::registry
