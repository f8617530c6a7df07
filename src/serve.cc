// SPDX-License-Identifier: Apache-2.0
// `ringport serve`: wires the modules together and owns the process lifecycle.
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "serve.hh"
#include "http/server.hh"
#include "reactor/sync.hh"
#include "registry/manifest.hh"
#include "registry/registry.hh"
#include "ringport_build_config.hh"
#include "storage/layout.hh"
#include "storage/rebuild.hh"
#include "storage/snapshot.hh"
#include "storage/store.hh"
#include "util/log.hh"
#include "util/unique_fd.hh"

namespace rp {

namespace {

util::Result<int> open_v2(const std::string& root) {
    std::string full = root + "/" + std::string(storage::layout::v2_dir);
    for (std::size_t i = 1; i <= full.size(); ++i) {
        if (i == full.size() || full[i] == '/') {
            std::string path = full.substr(0, i);
            if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
                return util::Error::sys(errno, "mkdir " + path);
            }
        }
    }
    int fd = ::open(full.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return util::Error::sys(errno, "open " + full);
    }
    return fd;
}

util::Result<util::UniqueFd> lock_root(const std::string& root) {
    std::string p = root + "/" + std::string(storage::layout::lock_file);
    util::UniqueFd fd(::open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (!fd.valid()) {
        return util::Error::sys(errno, "open " + p);
    }
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK) {
            return util::Error::of(util::Errc::busy, "another ringport is already serving " + root);
        }
        return util::Error::sys(errno, "flock " + p);
    }
    return fd;
}

void raise_fd_limit() {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)::setrlimit(RLIMIT_NOFILE, &rl);
    }
}

util::LogLevel level_of(const std::string& s) {
    if (s == "debug") {
        return util::LogLevel::debug;
    }
    if (s == "warn") {
        return util::LogLevel::warn;
    }
    if (s == "error") {
        return util::LogLevel::error;
    }
    return util::LogLevel::info;
}

http::ServerConfig server_config(const Config& c) {
    http::ServerConfig s;
    s.listen = c.http_listen;
    unsigned cores = std::thread::hardware_concurrency();
    s.shards = c.http_shards != 0 ? static_cast<unsigned>(c.http_shards) : (cores == 0 ? 1 : cores);
    s.connections_per_shard_max = static_cast<unsigned>(c.http_connections_per_shard_max);
    s.limits.header_bytes_max = c.http_header_bytes_max;
    s.limits.url_bytes_max = c.http_url_bytes_max;
    s.idle_timeout_ms = static_cast<int>(c.http_idle_timeout_ms);
    s.header_timeout_ms = static_cast<int>(c.http_header_timeout_ms);
    s.body_timeout_ms = static_cast<int>(c.http_body_timeout_ms);
    s.drain_timeout_ms = static_cast<int>(c.http_drain_timeout_ms);
    s.default_headers.push_back(http::Header{"Docker-Distribution-API-Version", "registry/2.0"});
    return s;
}

storage::StoreConfig store_config(const Config& c) {
    storage::StoreConfig s;
    s.blob_bytes_max = c.storage_blob_bytes_max;
    s.manifest_bytes_max = c.storage_manifest_bytes_max;
    s.uploads_max = c.storage_uploads_max;
    s.manifest_cache_bytes_max = c.storage_manifest_cache_bytes_max;
    return s;
}

// Background upkeep on one helper thread: releases idle upload sessions
// (every quarter of the idle timeout, at least every minute) and removes
// stale upload directories (once an hour, or sooner for short purge ages).
// It waits on a condition variable, so a stop wakes it at once.
class Housekeeper {
  public:
    Housekeeper(int v2fd, storage::Store& store, std::int64_t purge_age_s, std::int64_t idle_s)
        : thread_([this, v2fd, &store, purge_age_s, idle_s] {
              run(v2fd, store, purge_age_s, idle_s);
          }) {}
    ~Housekeeper() {
        {
            std::lock_guard lk(mu_);
            stop_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }
    Housekeeper(const Housekeeper&) = delete;
    Housekeeper& operator=(const Housekeeper&) = delete;

  private:
    void run(int v2fd, storage::Store& store, std::int64_t purge_age_s, std::int64_t idle_s) {
        (void)pthread_setname_np(pthread_self(), "rp-upkeep");
        using std::chrono::seconds;
        auto purge_every = seconds(std::clamp<std::int64_t>(purge_age_s / 4, 60, 3600));
        auto sweep_every =
            std::chrono::milliseconds(std::clamp<std::int64_t>(idle_s * 250, 250, 60000));
        auto next_purge = std::chrono::steady_clock::now() + purge_every;
        std::unique_lock lk(mu_);
        while (!cv_.wait_for(lk, sweep_every, [this] { return stop_; })) {
            lk.unlock();
            std::size_t idle = store.release_idle_uploads(idle_s * 1000);
            if (idle != 0) {
                RP_LOG_INFO("released %zu idle upload session(s); their data stays resumable",
                            idle);
            }
            if (std::chrono::steady_clock::now() >= next_purge) {
                std::size_t n = storage::purge_stale_uploads(v2fd, store, purge_age_s);
                if (n != 0) {
                    RP_LOG_INFO("purged %zu stale upload(s)", n);
                }
                next_purge = std::chrono::steady_clock::now() + purge_every;
            }
            lk.lock();
        }
    }
    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::thread thread_;
};

unsigned helper_threads() {
    unsigned threads = std::thread::hardware_concurrency();
    return threads == 0 ? 2 : threads;
}

// Loads the index (from the snapshot when there is a usable one, else from
// the tree), then opens /readyz; after a snapshot load, verifies it against
// the tree.
void load_index(const Config& cfg, std::optional<std::string>& snapshot, int v2fd,
                storage::Index& index, storage::Store& store, reactor::Latch& ready,
                const std::atomic<bool>& stop) {
    std::int64_t purge_age_s = static_cast<std::int64_t>(cfg.storage_upload_purge_age_hours) * 3600;
    if (cfg.storage_index_snapshot && snapshot) {
        auto snap =
            storage::load_snapshot(std::move(*snapshot), v2fd, index, store,
                                   registry::parse_stored_manifest, purge_age_s, helper_threads());
        snapshot.reset();
        if (snap) {
            RP_LOG_INFO("index ready in %.3f s from the snapshot: %zu repositories (%zu read "
                        "again: their directories changed), %zu tags, %zu manifests, %zu blob "
                        "links, %zu unfinished uploads (%zu stale purged), %zu entries skipped",
                        snap->seconds, snap->repos, snap->rescanned, snap->tags, snap->manifests,
                        snap->layers, snap->uploads, snap->uploads_purged, snap->skipped);
            (void)malloc_trim(0);
            ready.set();
            auto v = storage::verify_index(v2fd, index, store, registry::parse_stored_manifest,
                                           purge_age_s, helper_threads(), stop);
            RP_LOG_INFO("index %s against the tree in %.1f s: %zu repositories read, %zu "
                        "corrected, %zu still changing under writes, %zu stale uploads purged",
                        v.stopped ? "verification stopped" : "verified", v.seconds, v.repos,
                        v.corrected, v.kept_live, v.uploads_purged);
            (void)malloc_trim(0);
            return;
        }
        RP_LOG_WARN("index snapshot not used (%s): reading the tree",
                    snap.error().describe().c_str()); // the index is untouched
    } else if (cfg.storage_index_snapshot) {
        RP_LOG_INFO("no index snapshot: reading the tree");
    }
    auto stats = storage::rebuild(v2fd, index, store, registry::parse_stored_manifest, purge_age_s,
                                  helper_threads());
    if (stats) {
        RP_LOG_INFO("index ready in %.3f s: %zu repositories, %zu tags, %zu manifests, %zu blob "
                    "links, %zu unfinished uploads (%zu stale purged), %zu entries skipped "
                    "(walk %.3f s, links read by %.3f s)",
                    stats->seconds, stats->repos, stats->tags, stats->manifests, stats->layers,
                    stats->uploads, stats->uploads_purged, stats->skipped, stats->walk_seconds,
                    stats->scan_seconds);
    } else {
        RP_LOG_ERROR("index rebuild failed: %s", stats.error().describe().c_str());
    }
    // The scan's temporary vectors were freed on several threads' arenas;
    // hand those pages back so RSS reflects the index, not the scan.
    (void)malloc_trim(0);
    ready.set();
}

} // namespace

namespace {

// Signals are taken by sigwait on the main thread: block them in every thread.
sigset_t block_signals() {
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr); // threads started later inherit it
    (void)::signal(SIGPIPE, SIG_IGN);
    return sigs;
}

int startup_error(const util::Error& e) {
    std::fprintf(stderr, "ringport: %s\n",
                 e.detail.empty() || e.kind == util::Errc::system ? e.describe().c_str()
                                                                  : e.detail.c_str());
    util::log_stop();
    return 1;
}

registry::RegistryConfig registry_config(const Config& cfg) {
    registry::RegistryConfig r;
    r.delete_enabled = cfg.storage_delete_enabled;
    r.catalog_max_entries = cfg.catalog_max_entries;
    r.access_log = cfg.http_access_log;
    return r;
}

// Serves until SIGTERM/SIGINT while the index loads in the background; after
// the drain, saves the index snapshot.
void run_until_signal(const Config& cfg, sigset_t sigs, std::optional<std::string> snapshot,
                      int rootfd, int v2fd, http::Server& server, storage::Index& index,
                      storage::Store& store, reactor::Latch& ready) {
    std::int64_t purge_age_s = static_cast<std::int64_t>(cfg.storage_upload_purge_age_hours) * 3600;
    std::atomic<bool> stop{false};
    std::thread loader(load_index, std::cref(cfg), std::ref(snapshot), v2fd, std::ref(index),
                       std::ref(store), std::ref(ready), std::cref(stop));
    {
        Housekeeper upkeep(v2fd, store, purge_age_s,
                           static_cast<std::int64_t>(cfg.storage_upload_idle_timeout_s));
        int sig = 0;
        while (sigwait(&sigs, &sig) != 0) {
        }
        RP_LOG_INFO("signal %d: draining (up to %llu ms)", sig,
                    static_cast<unsigned long long>(cfg.http_drain_timeout_ms));
        stop = true;
        server.stop();
    }
    loader.join();
    if (cfg.storage_index_snapshot && ready.is_set()) {
        auto t0 = std::chrono::steady_clock::now();
        auto n = storage::write_snapshot(rootfd, v2fd, index, helper_threads());
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (n) {
            RP_LOG_INFO("index snapshot saved: %zu bytes in %.3f s", *n, s);
        } else {
            RP_LOG_WARN("index snapshot not saved: %s", n.error().describe().c_str());
        }
    }
}

} // namespace

int serve_main(const Config& cfg) {
    sigset_t sigs = block_signals();
    raise_fd_limit();
    util::log_start(level_of(cfg.log_level));
    auto v2 = open_v2(cfg.storage_root);
    if (!v2) {
        return startup_error(v2.error());
    }
    util::UniqueFd v2fd(*v2);
    auto lock = lock_root(cfg.storage_root);
    if (!lock) {
        return startup_error(lock.error());
    }
    util::UniqueFd rootfd(::open(cfg.storage_root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!rootfd.valid()) {
        return startup_error(util::Error::sys(errno, "open " + cfg.storage_root));
    }
    // Taken (read and removed) before anything is served; with snapshots
    // off an old one is removed too: either way it would miss this run's writes.
    auto snapshot = storage::take_snapshot(rootfd.get(), cfg.storage_index_snapshot);
    if (!snapshot) {
        return startup_error(snapshot.error());
    }
    reactor::BlockingPool pool(2);
    reactor::BlockingPool::set_global(&pool);
    storage::Index index;
    storage::Store store(v2fd.get(), store_config(cfg), index);
    reactor::Latch ready;
    registry::Registry reg(registry_config(cfg), store, ready);
    http::Server server(server_config(cfg), reg);
    auto bound = server.listen();
    if (!bound) {
        return startup_error(bound.error());
    }
    if (auto started = server.start(); !started) {
        server.stop();
        return startup_error(started.error());
    }
    std::printf("ringport: listening on %s\n", bound->c_str());
    std::fflush(stdout);
    RP_LOG_INFO("ringport %s serving %s on %s with %u shard(s)", RINGPORT_VERSION,
                cfg.storage_root.c_str(), bound->c_str(), server.shard_count());
    run_until_signal(cfg, sigs, std::move(*snapshot), rootfd.get(), v2fd.get(), server, index,
                     store, ready);
    RP_LOG_INFO("stopped");
    util::log_stop();
    reactor::BlockingPool::set_global(nullptr);
    return 0;
}

} // namespace rp
