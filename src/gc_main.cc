// SPDX-License-Identifier: Apache-2.0
// `ringport garbage-collect [--dry-run] [--delete-untagged] [--grace DURATION] [CONFIG]`:
// Distribution's offline command, with its flags and its output on stdout,
// run by the same collector as the online one (storage/gc.cc) over an index
// read from the tree.
#include <fcntl.h>
#include <unistd.h>

#include <condition_variable>
#include <functional>
#include <cstdio>
#include <mutex>
#include <string>

#include "registry/manifest.hh"
#include "serve.hh"
#include "reactor/runtime.hh"
#include "storage/gc.hh"
#include "storage/names.hh"
#include "storage/rebuild.hh"
#include "storage/store.hh"
#include "util/log.hh"

namespace rp {

namespace {

constexpr const char* gc_usage =
    "usage: ringport garbage-collect [--dry-run|-d] [--delete-untagged|-m] [--grace DURATION]\n"
    "                                [--root DIR] [[--config] CONFIG]\n"
    "  Removes the blobs no manifest references, with the registry stopped (a\n"
    "  running ringport collects online: POST /ringport/v1/gc). --delete-untagged\n"
    "  also removes manifests no tag reaches, keeping the platforms of tagged\n"
    "  indexes and the referrers of kept manifests. --grace keeps what was\n"
    "  written this recently (\"1h\", \"30m\", \"90s\"; default 0, as Distribution).\n";

constexpr const char* delete_usage =
    "usage: ringport delete-repository NAME [--root DIR] [[--config] CONFIG]\n"
    "  Deletes a whole repository (its tags, manifests and layer links) with the\n"
    "  registry stopped; its blobs go with the next garbage-collect. A running\n"
    "  ringport: DELETE /ringport/v1/repositories/NAME.\n";

// A command's usage error: the message, then the command's usage; exit 2.
int usage_error(const char* cmd, const char* usage, const std::string& msg) {
    std::fprintf(stderr, "ringport %s: %s\n\n%s", cmd, msg.c_str(), usage);
    return 2;
}

// Go's duration syntax for whole seconds: "0", "90s", "30m", "1h30m"; a bare
// number is seconds. nullopt when malformed or over a century.
std::optional<std::int64_t> parse_duration(std::string_view s) {
    if (s.empty()) {
        return std::nullopt;
    }
    std::int64_t total = 0;
    std::size_t i = 0;
    while (i < s.size()) {
        std::int64_t n = 0;
        std::size_t start = i;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9' && n < 100LL * 365 * 86400) {
            n = n * 10 + (s[i] - '0');
            ++i;
        }
        if (i == start) {
            return std::nullopt;
        }
        std::int64_t unit = 1;
        if (i < s.size()) {
            switch (s[i]) {
            case 'h': unit = 3600; break;
            case 'm': unit = 60; break;
            case 's': unit = 1; break;
            default: return std::nullopt;
            }
            ++i;
        } else if (start != 0) {
            return std::nullopt; // "1h30" has no unit for its 30
        }
        total += n * unit;
        if (total > 100LL * 365 * 86400) {
            return std::nullopt;
        }
    }
    return total;
}

// The store of an offline command: the root locked (a server holding it is
// told about in `busy`), the index read from the tree, one shard running.
// `job` runs there; its result is the exit code. With `writes`, the index
// snapshot goes first (it would not know what the job changes).
int run_offline(const Config& cfg, const char* cmd, const char* busy, bool writes,
                const std::function<reactor::Task<int>(storage::Store&)>& job) {
    util::log_start(util::LogLevel::warn);
    auto fail = [cmd](const util::Error& e) {
        std::fprintf(stderr, "ringport %s: %s\n", cmd, e.describe().c_str());
        util::log_stop();
        return 1;
    };
    auto lock = lock_root(cfg.storage_root);
    if (!lock) {
        if (lock.error().kind == util::Errc::busy) {
            std::fprintf(stderr, "ringport %s: a ringport server holds %s; %s\n", cmd,
                         cfg.storage_root.c_str(), busy);
            util::log_stop();
            return 1;
        }
        return fail(lock.error());
    }
    auto v2 = open_v2(cfg.storage_root);
    if (!v2) {
        return fail(v2.error());
    }
    util::UniqueFd v2fd(*v2);
    util::UniqueFd rootfd(::open(cfg.storage_root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!rootfd.valid()) {
        return fail(util::Error::sys(errno, "open " + cfg.storage_root));
    }
    if (writes) { // the next start reads the tree; nothing journals
        if (auto r = storage::read_snapshot(rootfd.get(), false); !r) {
            return fail(r.error());
        }
    }
    reactor::RuntimeConfig rc;
    rc.shards = 1;
    reactor::Runtime rt(rc);
    storage::Index index;
    storage::StoreConfig sc;
    sc.manifest_bytes_max = cfg.storage_manifest_bytes_max;
    storage::Store store(v2fd.get(), sc, index);
    auto loaded =
        storage::rebuild(v2fd.get(), index, store, registry::parse_stored_manifest,
                         static_cast<std::int64_t>(cfg.storage_upload_purge_age_hours) * 3600, 2);
    if (!loaded) {
        return fail(loaded.error());
    }
    if (auto started = rt.start(); !started) {
        return fail(started.error());
    }
    struct Job {
        const std::function<reactor::Task<int>(storage::Store&)>* job;
        storage::Store* store;
        std::mutex mu;
        std::condition_variable cv;
        bool done = false;
        int rc = 1;
        static reactor::Task<void> run(Job* j) noexcept {
            int rc = co_await (*j->job)(*j->store);
            std::lock_guard lk(j->mu);
            j->rc = rc;
            j->done = true;
            j->cv.notify_all();
        }
    } j;
    j.job = &job;
    j.store = &store;
    rt.shard(0).post(reactor::Message{
        [](void* arg, std::uint64_t) noexcept { reactor::spawn(Job::run(static_cast<Job*>(arg))); },
        &j, 0});
    {
        std::unique_lock lk(j.mu);
        j.cv.wait(lk, [&j] { return j.done; });
    }
    rt.stop();
    std::fflush(stdout);
    util::log_stop();
    return j.rc;
}

} // namespace

int gc_main(int argc, char** argv, const std::map<std::string, std::string>& env) {
    storage::GcOptions opt;
    CliOverrides cli;
    for (int i = 2; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--dry-run" || a == "-d") {
            opt.dry_run = true;
        } else if (a == "--delete-untagged" || a == "-m") {
            opt.delete_untagged = true;
        } else if (a == "--grace" || a == "--root" || a == "--config") {
            if (i + 1 >= argc) {
                return usage_error("garbage-collect", gc_usage, a + " needs a value");
            }
            std::string v = argv[++i];
            if (a == "--grace") {
                auto g = parse_duration(v);
                if (!g) {
                    return usage_error("garbage-collect", gc_usage,
                                       "--grace takes a duration such as 1h, 30m or 90s");
                }
                opt.grace_s = *g;
            } else if (a == "--root") {
                cli.root = v;
            } else {
                cli.config_file = v;
            }
        } else if (a == "--help" || a == "-h") {
            std::fputs(gc_usage, stdout);
            return 0;
        } else if (!a.empty() && a[0] != '-' && !cli.config_file) {
            cli.config_file = a;
        } else {
            return usage_error("garbage-collect", gc_usage, "unknown argument " + a);
        }
    }
    auto cfg = load_config(cli, env);
    if (!cfg) {
        std::fprintf(stderr, "ringport: %s\n", cfg.error().detail.c_str());
        return 2;
    }
    opt.batch = 8192; // nothing waits on the repositories' locks
    return run_offline(
        *cfg, "garbage-collect",
        "it collects while it serves: ask it with POST /ringport/v1/gc (query: dry_run, "
        "delete_untagged, grace_s), then follow GET /ringport/v1/gc",
        !opt.dry_run, [opt](storage::Store& store) -> reactor::Task<int> {
            storage::GcProgress progress;
            co_await storage::collect_garbage(store, opt, progress, [](std::string_view line) {
                std::fwrite(line.data(), 1, line.size(), stdout);
                std::fputc('\n', stdout);
            });
            std::fflush(stdout);
            std::fprintf(stderr,
                         "ringport garbage-collect%s: %llu blob(s) and %llu manifest(s) removed, "
                         "%llu layer link(s), %llu bytes freed; %llu kept within the grace "
                         "period; %llu error(s)\n",
                         opt.dry_run ? " (dry run)" : "",
                         static_cast<unsigned long long>(progress.blobs_deleted.load()),
                         static_cast<unsigned long long>(progress.manifests_deleted.load()),
                         static_cast<unsigned long long>(progress.links_deleted.load()),
                         static_cast<unsigned long long>(progress.bytes_freed.load()),
                         static_cast<unsigned long long>(progress.kept_in_grace.load()),
                         static_cast<unsigned long long>(progress.errors.load()));
            co_return progress.errors.load() == 0 ? 0 : 1;
        });
}

int delete_repository_main(int argc, char** argv, const std::map<std::string, std::string>& env) {
    CliOverrides cli;
    std::string name;
    for (int i = 2; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--root" || a == "--config") {
            if (i + 1 >= argc) {
                return usage_error("delete-repository", delete_usage, a + " needs a value");
            }
            (a == "--root" ? cli.root : cli.config_file) = argv[++i];
        } else if (a == "--help" || a == "-h") {
            std::fputs(delete_usage, stdout);
            return 0;
        } else if (!a.empty() && a[0] != '-' && name.empty()) {
            name = a;
        } else if (!a.empty() && a[0] != '-' && !cli.config_file) {
            cli.config_file = a;
        } else {
            return usage_error("delete-repository", delete_usage, "unknown argument " + a);
        }
    }
    if (!storage::valid_repo_name(name)) {
        return usage_error("delete-repository", delete_usage,
                           name.empty() ? "NAME is missing" : "invalid repository name");
    }
    auto cfg = load_config(cli, env);
    if (!cfg) {
        std::fprintf(stderr, "ringport: %s\n", cfg.error().detail.c_str());
        return 2;
    }
    return run_offline(
        *cfg, "delete-repository", "ask it with DELETE /ringport/v1/repositories/<name>", true,
        [name](storage::Store& store) -> reactor::Task<int> {
            auto del = co_await store.delete_repository(name);
            if (!del) {
                std::fprintf(stderr, "ringport delete-repository: %s: %s\n", name.c_str(),
                             del.error().describe().c_str());
                co_return 1;
            }
            std::printf("%s: deleted %zu tag(s), %zu manifest(s), %zu layer link(s); its blobs "
                        "go with the next garbage-collect\n",
                        name.c_str(), del->tags, del->manifests, del->links);
            co_return 0;
        });
}

} // namespace rp
