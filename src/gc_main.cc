// SPDX-License-Identifier: Apache-2.0
// `ringport garbage-collect [--dry-run] [--delete-untagged] [--grace DURATION] [CONFIG]`:
// Distribution's offline command, with its flags and its output on stdout,
// run by the same collector as the online one (storage/gc.cc) over an index
// read from the tree.
#include <fcntl.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>

#include "registry/manifest.hh"
#include "serve.hh"
#include "reactor/runtime.hh"
#include "storage/gc.hh"
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

int gc_usage_error(const std::string& msg) {
    std::fprintf(stderr, "ringport garbage-collect: %s\n\n%s", msg.c_str(), gc_usage);
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

struct Done {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
};

reactor::Task<void> run(storage::Store& store, storage::GcOptions opt,
                        storage::GcProgress& progress, Done& done) noexcept {
    co_await storage::collect_garbage(store, opt, progress, [](std::string_view line) {
        std::fwrite(line.data(), 1, line.size(), stdout);
        std::fputc('\n', stdout);
    });
    std::lock_guard lk(done.mu);
    done.done = true;
    done.cv.notify_all();
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
                return gc_usage_error(a + " needs a value");
            }
            std::string v = argv[++i];
            if (a == "--grace") {
                auto g = parse_duration(v);
                if (!g) {
                    return gc_usage_error("--grace takes a duration such as 1h, 30m or 90s");
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
            return gc_usage_error("unknown argument " + a);
        }
    }
    auto cfg = load_config(cli, env);
    if (!cfg) {
        std::fprintf(stderr, "ringport: %s\n", cfg.error().detail.c_str());
        return 2;
    }
    util::log_start(util::LogLevel::warn);
    auto fail = [](const util::Error& e) {
        std::fprintf(stderr, "ringport garbage-collect: %s\n", e.describe().c_str());
        util::log_stop();
        return 1;
    };
    auto lock = lock_root(cfg->storage_root);
    if (!lock) {
        if (lock.error().kind == util::Errc::busy) {
            std::fprintf(stderr,
                         "ringport garbage-collect: a ringport server holds %s; it collects "
                         "while it serves: ask it with POST /ringport/v1/gc (query: dry_run, "
                         "delete_untagged, grace_s), then follow GET /ringport/v1/gc\n",
                         cfg->storage_root.c_str());
            util::log_stop();
            return 1;
        }
        return fail(lock.error());
    }
    auto v2 = open_v2(cfg->storage_root);
    if (!v2) {
        return fail(v2.error());
    }
    util::UniqueFd v2fd(*v2);
    util::UniqueFd rootfd(::open(cfg->storage_root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!rootfd.valid()) {
        return fail(util::Error::sys(errno, "open " + cfg->storage_root));
    }
    // The index snapshot would not know what this run deletes: it goes (the
    // next start reads the tree), and the run writes no journal.
    if (!opt.dry_run) {
        if (auto r = storage::read_snapshot(rootfd.get(), false); !r) {
            return fail(r.error());
        }
    }
    opt.batch = 8192; // nothing waits on the repositories' locks
    reactor::RuntimeConfig rc;
    rc.shards = 1;
    reactor::Runtime rt(rc);
    storage::Index index;
    storage::StoreConfig sc;
    sc.manifest_bytes_max = cfg->storage_manifest_bytes_max;
    storage::Store store(v2fd.get(), sc, index);
    auto loaded =
        storage::rebuild(v2fd.get(), index, store, registry::parse_stored_manifest,
                         static_cast<std::int64_t>(cfg->storage_upload_purge_age_hours) * 3600, 2);
    if (!loaded) {
        return fail(loaded.error());
    }
    if (auto started = rt.start(); !started) {
        return fail(started.error());
    }
    storage::GcProgress progress;
    Done done;
    struct Job {
        storage::Store* store;
        storage::GcOptions opt;
        storage::GcProgress* progress;
        Done* done;
    } job{&store, opt, &progress, &done};
    rt.shard(0).post(reactor::Message{[](void* arg, std::uint64_t) noexcept {
                                          auto* j = static_cast<Job*>(arg);
                                          reactor::spawn(
                                              run(*j->store, j->opt, *j->progress, *j->done));
                                      },
                                      &job, 0});
    {
        std::unique_lock lk(done.mu);
        done.cv.wait(lk, [&done] { return done.done; });
    }
    rt.stop();
    std::fflush(stdout);
    std::fprintf(stderr,
                 "ringport garbage-collect%s: %llu blob(s) and %llu manifest(s) removed, %llu "
                 "layer link(s), %llu bytes freed; %llu kept within the grace period; %llu "
                 "error(s)\n",
                 opt.dry_run ? " (dry run)" : "",
                 static_cast<unsigned long long>(progress.blobs_deleted.load()),
                 static_cast<unsigned long long>(progress.manifests_deleted.load()),
                 static_cast<unsigned long long>(progress.links_deleted.load()),
                 static_cast<unsigned long long>(progress.bytes_freed.load()),
                 static_cast<unsigned long long>(progress.kept_in_grace.load()),
                 static_cast<unsigned long long>(progress.errors.load()));
    util::log_stop();
    return progress.errors.load() == 0 ? 0 : 1;
}

} // namespace rp
