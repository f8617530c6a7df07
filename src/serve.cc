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
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "serve.hh"
#include "http/server.hh"
#include "http/tls.hh"
#include "reactor/runtime.hh"
#include "reactor/socket.hh"
#include "reactor/sync.hh"
#include "registry/manifest.hh"
#include "registry/registry.hh"
#include "ringport_build_config.hh"
#include "storage/journal.hh"
#include "storage/layout.hh"
#include "storage/rebuild.hh"
#include "storage/snapshot.hh"
#include "storage/store.hh"
#include "util/log.hh"
#include "util/strings.hh"
#include "util/unique_fd.hh"

namespace rp {

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

namespace {

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
    s.connections_per_shard_max = static_cast<unsigned>(c.http_connections_per_shard_max);
    s.limits.header_bytes_max = c.http_header_bytes_max;
    s.limits.url_bytes_max = c.http_url_bytes_max;
    s.idle_timeout_ms = static_cast<int>(c.http_idle_timeout_ms);
    s.header_timeout_ms = static_cast<int>(c.http_header_timeout_ms);
    s.body_timeout_ms = static_cast<int>(c.http_body_timeout_ms);
    s.drain_timeout_ms = static_cast<int>(c.http_drain_timeout_ms);
    s.default_headers.push_back(http::Header{"Docker-Distribution-API-Version", "registry/2.0"});
    s.handshake_timeout_ms = static_cast<int>(c.tls_handshake_timeout_ms);
    return s;
}

http::TlsConfig tls_config(const Config& c) {
    http::TlsConfig t;
    t.certificate = c.tls_certificate;
    t.key = c.tls_key;
    t.client_cas = client_ca_files(c);
    std::string mode = client_auth_mode(c);
    t.client_auth = mode == "required"   ? http::ClientAuth::required
                    : mode == "optional" ? http::ClientAuth::optional
                                         : http::ClientAuth::none;
    t.minimum_version = c.tls_minimum_version;
    t.handshake_timeout_ms = static_cast<int>(c.tls_handshake_timeout_ms);
    return t;
}

// Kernel TLS needs the kernel's tls module; without it OpenSSL encrypts in
// user space and downloads are read into memory (bounded) instead of spliced.
bool kernel_tls_available() { return ::access("/sys/module/tls", F_OK) == 0; }

unsigned cores() {
    unsigned n = std::thread::hardware_concurrency();
    return n == 0 ? 1 : n;
}

reactor::RuntimeConfig runtime_config(const Config& c) {
    reactor::RuntimeConfig r;
    r.shards = c.http_shards != 0 ? static_cast<unsigned>(c.http_shards) : cores();
    r.ring_entries = static_cast<unsigned>(c.runtime_ring_entries);
    r.blocking_threads = static_cast<unsigned>(c.runtime_blocking_threads);
    r.background_threads = c.runtime_background_threads != 0
                               ? static_cast<unsigned>(c.runtime_background_threads)
                               : std::max(2u, cores());
    return r;
}

storage::StoreConfig store_config(const Config& c) {
    storage::StoreConfig s;
    s.blob_bytes_max = c.storage_blob_bytes_max;
    s.manifest_bytes_max = c.storage_manifest_bytes_max;
    s.uploads_max = c.storage_uploads_max;
    s.manifest_cache_bytes_max = c.storage_manifest_cache_bytes_max;
    s.use_memory_s = std::max<std::int64_t>(3600, static_cast<std::int64_t>(c.gc_grace_s));
    return s;
}

// Keeps the index snapshot current while serving: a save after the index
// is loaded, then whenever something was written since the last one (every
// storage.index_snapshot_interval_s), and one at a clean stop. Saves run on
// helper threads, one at a time; journal.hh has the crash-safe protocol.
class SnapshotKeeper {
  public:
    // `reads`: the normal-priority pool the save's index reads run on while
    // the runtime serves (rebuild.hh says why); the save at shutdown, after
    // the pools stopped, reads on its own thread.
    SnapshotKeeper(int rootfd, int v2fd, const storage::Index& index,
                   storage::WriteJournal& journal, unsigned threads,
                   reactor::ThreadPool& reads) noexcept
        : rootfd_(rootfd), v2fd_(v2fd), index_(index), journal_(journal), threads_(threads),
          reads_(reads) {}

    void save(const char* why, bool serving = true) {
        std::lock_guard lk(mu_);
        auto t0 = std::chrono::steady_clock::now();
        storage::IndexReads reads;
        if (serving) {
            reads = [this](const std::function<void()>& fn) { reads_.run_and_wait(fn); };
        }
        auto n = storage::write_snapshot(rootfd_, v2fd_, index_, &journal_, threads_, reads);
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        // No malloc_trim here: it locks every malloc arena in turn, the
        // shards' too, and measured with a save every second it added GETs
        // over 5 ms (11 in 7 runs, against 1 without). What the save frees
        // is reused by the next one; the RSS stays flat between saves.
        if (n) {
            RP_LOG_INFO("index snapshot saved (%s): %zu bytes in %.3f s", why, *n, s);
        } else {
            RP_LOG_WARN("index snapshot not saved (%s): %s; the next start reads the tree", why,
                        n.error().describe().c_str());
        }
    }
    void save_if_written() {
        if (journal_.recorded() != 0) {
            save("periodic");
        }
    }

  private:
    int rootfd_;
    int v2fd_;
    const storage::Index& index_;
    storage::WriteJournal& journal_;
    unsigned threads_;
    reactor::ThreadPool& reads_;
    std::mutex mu_;
};

// Where the index comes from at startup.
struct IndexSource {
    std::optional<std::string> snapshot;
    std::vector<std::string> dirty; // repositories the journal says were written since
};

// Loads the index (from the snapshot when there is a usable one, else from
// the tree), then opens /readyz and saves a fresh snapshot; after a snapshot
// load, verifies it against the tree.
void load_index(const Config& cfg, IndexSource& src, int v2fd, storage::Index& index,
                storage::Store& store, reactor::Latch& ready, SnapshotKeeper* keeper,
                const std::atomic<bool>& stop, unsigned threads) {
    std::int64_t purge_age_s = static_cast<std::int64_t>(cfg.storage_upload_purge_age_hours) * 3600;
    if (cfg.storage_index_snapshot && src.snapshot) {
        auto snap = storage::load_snapshot(std::move(*src.snapshot), src.dirty, v2fd, index, store,
                                           registry::parse_stored_manifest, purge_age_s, threads);
        src = IndexSource{};
        if (snap) {
            RP_LOG_INFO("index ready in %.3f s from the snapshot: %zu repositories (%zu read "
                        "again: written since the save, or their directories changed), %zu "
                        "tags, %zu manifests, %zu blob links, %zu unfinished uploads (%zu stale "
                        "purged), %zu entries skipped",
                        snap->seconds, snap->repos, snap->rescanned, snap->tags, snap->manifests,
                        snap->layers, snap->uploads, snap->uploads_purged, snap->skipped);
            (void)malloc_trim(0);
            index.set_tags_verified(false); // tags resolve from their links until verified
            ready.set();
            reactor::become_background(); // from here on this thread is background work
            if (keeper != nullptr) {
                keeper->save("after start");
            }
            auto v = storage::verify_index(v2fd, index, store, registry::parse_stored_manifest,
                                           purge_age_s, threads, stop);
            if (!v.stopped) {
                index.set_tags_verified(true);
            }
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
                                  threads, &stop);
    if (!stats && stats.error().kind == util::Errc::stopped) {
        RP_LOG_INFO("index load stopped: the server is stopping");
        return; // not ready; the waiting requests were answered 503
    }
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
    reactor::become_background();
    if (keeper != nullptr && stats) {
        keeper->save("after start");
    }
}

} // namespace

namespace {

// Signals are taken by sigwait on the main thread: block them in every thread.
sigset_t block_signals() {
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
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
    r.mirrors = cfg.mirrors;
    r.read_only = cfg.storage_read_only;
    r.mount_without_from = cfg.auth_mount_without_from;
    r.gc_interval_s = static_cast<std::int64_t>(cfg.gc_interval_s);
    r.gc_grace_s = static_cast<std::int64_t>(cfg.gc_grace_s);
    r.gc_delete_untagged = cfg.gc_delete_untagged;
    r.retention_policies = cfg.retention_policies;
    r.retention_interval_s = static_cast<std::int64_t>(cfg.retention_interval_s);
    r.retention_dry_run = cfg.retention_dry_run;
    r.ui = cfg.ui_enabled;
    r.ui_own_listener = cfg.ui_enabled && !cfg.ui_listen.empty();
    r.ui_session_ttl_s = static_cast<std::int64_t>(cfg.ui_session_ttl_s);
    r.activity_save_s = static_cast<std::int64_t>(cfg.retention_activity_save_s);
    r.insights_days = static_cast<std::int32_t>(cfg.insights_days);
    r.insights = cfg.insights_enabled;
    r.scrub_bytes_per_s = cfg.scrub_bytes_per_s;
    r.scrub_interval_s = static_cast<std::int64_t>(cfg.scrub_interval_s);
    r.upload_purge_age_s = static_cast<std::int64_t>(cfg.storage_upload_purge_age_hours) * 3600;
    r.version = RINGPORT_VERSION;
    return r;
}

// The authentication scheme and access rules (null: auth.scheme none).
util::Result<std::shared_ptr<registry::Guard>> make_guard(const Config& cfg, reactor::Runtime& rt) {
    if (cfg.auth_scheme == "none") {
        return std::shared_ptr<registry::Guard>();
    }
    auto g = std::make_shared<registry::Guard>();
    g->scheme = cfg.auth_scheme;
    g->realm = cfg.auth_realm;
    g->certificate_users = cfg.auth_certificate_users;
    g->access = std::make_unique<auth::Access>(cfg.access);
    if (!cfg.auth_htpasswd_path.empty()) {
        auto file = auth::HtpasswdFile::open(cfg.auth_htpasswd_path);
        if (!file) {
            return std::move(file).error();
        }
        auth::BasicConfig b;
        b.cache_ttl_s = static_cast<int>(cfg.auth_cache_ttl_s);
        b.failures_per_minute = static_cast<unsigned>(cfg.auth_failures_per_minute);
        g->basic = std::make_unique<auth::BasicAuthenticator>(std::move(*file), b, rt.blocking());
    }
    if (cfg.auth_scheme == "token") {
        auth::TokenConfig& t = g->token;
        t.realm = cfg.auth_token_realm;
        t.service = cfg.auth_token_service;
        t.issuer = cfg.auth_token_issuer;
        t.rootcertbundle = cfg.auth_token_rootcertbundle;
        t.jwks = cfg.auth_token_jwks;
        t.leeway_s = static_cast<int>(cfg.auth_token_leeway_s);
        t.max_lifetime_s = static_cast<int>(cfg.auth_token_max_lifetime_s);
        t.issue = cfg.auth_token_issue;
        t.path = cfg.auth_token_path;
        t.signing_key = cfg.auth_token_signing_key;
        t.ttl_s = static_cast<int>(cfg.auth_token_ttl_s);
        t.refresh_ttl_s = static_cast<int>(cfg.auth_token_refresh_ttl_s);
        auth::Pkey own;
        if (t.issue) {
            auto issuer = auth::TokenIssuer::create(t);
            if (!issuer) {
                return std::move(issuer).error();
            }
            own = (*issuer)->key();
            g->issuer = std::move(*issuer);
        }
        auto verifier = auth::TokenVerifier::create(t, own);
        if (!verifier) {
            return std::move(verifier).error();
        }
        g->tokens = std::move(*verifier);
    }
    return g;
}

// Credentials over plain HTTP travel in clear text: say so loudly unless
// the listener is on loopback only.
void warn_plain_auth(const Config& cfg) {
    if (std::string w = plain_auth_warning(cfg); !w.empty()) {
        RP_LOG_WARN("%s", w.c_str());
    }
}

// The periodic duties: each runs on the background pool from a timer in a
// shard's ring, so a stop cancels them at once.
void start_duties(reactor::Runtime& rt, const Config& cfg, int v2fd, storage::Store& store,
                  SnapshotKeeper* keeper, reactor::Latch& ready) {
    using std::chrono::milliseconds;
    using std::chrono::seconds;
    std::int64_t purge_age_s = static_cast<std::int64_t>(cfg.storage_upload_purge_age_hours) * 3600;
    auto idle_s = static_cast<std::int64_t>(cfg.storage_upload_idle_timeout_s);
    rt.every("upload sweep", milliseconds(std::clamp<std::int64_t>(idle_s * 250, 250, 60000)),
             [&store, idle_s] {
                 std::size_t n = store.release_idle_uploads(idle_s * 1000);
                 if (n != 0) {
                     RP_LOG_INFO("released %zu idle upload session(s); their data stays "
                                 "resumable",
                                 n);
                 }
             });
    rt.every("upload purge", seconds(std::clamp<std::int64_t>(purge_age_s / 4, 60, 3600)),
             [v2fd, &store, purge_age_s] {
                 std::size_t n = storage::purge_stale_uploads(v2fd, store, purge_age_s);
                 if (n != 0) {
                     RP_LOG_INFO("purged %zu stale upload(s)", n);
                 }
             });
    if (keeper != nullptr) {
        rt.every("snapshot save", seconds(cfg.storage_index_snapshot_interval_s), [keeper, &ready] {
            if (ready.is_set()) {
                keeper->save_if_written();
            }
        });
    }
}

// SIGHUP: the certificate and key are read again. New connections use the
// new ones; established connections keep theirs. A bad file keeps the old.
void reload(http::TlsContext* tls) {
    if (tls == nullptr) {
        RP_LOG_INFO("SIGHUP: nothing to reload (no tls)");
        return;
    }
    if (auto r = tls->reload(); !r) {
        RP_LOG_ERROR("SIGHUP: tls reload failed, still serving the previous certificate: %s",
                     r.error().detail.c_str());
        return;
    }
    RP_LOG_INFO("SIGHUP: tls certificate reloaded: %s", tls->describe().c_str());
}

// The webhooks' notifier (null without endpoints) and the audit log (null
// without a path), opened before anything is served.
util::Result<std::unique_ptr<observe::Notifier>> open_notifier(const Config& cfg, int rootfd,
                                                               const std::string& bound) {
    if (cfg.notification_endpoints.empty()) {
        return std::unique_ptr<observe::Notifier>();
    }
    observe::NotifyConfig n;
    n.endpoints = cfg.notification_endpoints;
    n.include_references = cfg.notifications_include_references;
    n.spool.bytes_max = cfg.notifications_spool_bytes_max;
    n.spool.segment_bytes =
        std::clamp<std::uint64_t>(n.spool.bytes_max / 16, 64U << 10U, 64U << 20U);
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) != 0) {
        std::snprintf(host, sizeof host, "localhost");
    }
    observe::Source src;
    const auto colon = bound.rfind(':');
    src.addr = std::string(host) + (colon == std::string::npos ? "" : bound.substr(colon));
    src.instance_id = util::random_uuid();
    return observe::Notifier::open(std::move(n), rootfd, std::move(src));
}

// Serves until SIGTERM/SIGINT while the index loads in the background; then
// ends the duties, drains the connections, stops the runtime and saves the
// index snapshot.
void run_until_signal(const Config& cfg, sigset_t sigs, IndexSource src, int v2fd,
                      reactor::Runtime& rt, http::Server& server, http::Server* ui_server,
                      storage::Index& index, storage::Store& store, reactor::Latch& ready,
                      SnapshotKeeper* keeper, http::TlsContext* tls, observe::AuditLog* audit) {
    unsigned threads = rt.config().background_threads;
    // Set at the signal, before the drain: a load still under way is of no
    // use then (the waiting requests get 503), so it stops at once rather
    // than when the runtime stops after the drain.
    std::atomic<bool> shutting_down{false};
    rt.spawn_thread(
        "rp-loader", [&cfg, &src, v2fd, &index, &store, &ready, keeper, &shutting_down, threads] {
            load_index(cfg, src, v2fd, index, store, ready, keeper, shutting_down, threads);
        });
    start_duties(rt, cfg, v2fd, store, keeper, ready);
    int sig = 0;
    for (;;) {
        if (sigwait(&sigs, &sig) != 0) {
            continue;
        }
        if (sig != SIGHUP) {
            break;
        }
        reload(tls);
        if (audit != nullptr) {
            audit->reopen(); // logrotate moved it away
            RP_LOG_INFO("SIGHUP: the audit log %s is opened again", audit->path().c_str());
        }
    }
    shutting_down.store(true);
    RP_LOG_INFO("signal %d: draining (up to %llu ms)", sig,
                static_cast<unsigned long long>(cfg.http_drain_timeout_ms));
    if (!ready.is_set()) {
        ready.abandon(); // requests waiting for the index get 503 now, not after the walk
    }
    rt.stop_duties();
    // Both listeners drain at once, under one deadline.
    http::Server* servers[] = {&server, ui_server};
    http::Server::stop_together(servers);
    rt.stop();
    if (keeper != nullptr && ready.is_set()) {
        keeper->save("at shutdown", false); // the pools have stopped
    }
}

// The snapshot and the journal's names, read before anything is served; the
// journal is opened for this run's writers. With snapshots off both are
// removed (they would miss this run's writes).
util::Result<IndexSource> index_source(const Config& cfg, int rootfd,
                                       std::unique_ptr<storage::WriteJournal>& journal) {
    IndexSource src;
    auto snapshot = storage::read_snapshot(rootfd, cfg.storage_index_snapshot);
    if (!snapshot) {
        return std::move(snapshot).error();
    }
    src.snapshot = std::move(*snapshot);
    if (!cfg.storage_index_snapshot) {
        return src;
    }
    auto j = storage::WriteJournal::open(rootfd);
    if (!j) {
        return std::move(j).error();
    }
    journal = std::move(*j);
    src.dirty = journal->recorded_names();
    return src;
}

} // namespace

int serve_main(const Config& cfg) {
    sigset_t sigs = block_signals();
    raise_fd_limit();
    util::log_start(level_of(cfg.log_level),
                    cfg.log_format == "text" ? util::LogFormat::text : util::LogFormat::json);
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
    std::unique_ptr<storage::WriteJournal> journal;
    auto src = index_source(cfg, rootfd.get(), journal);
    if (!src) {
        return startup_error(src.error());
    }
    reactor::Runtime runtime(runtime_config(cfg));
    storage::Index index;
    storage::Store store(v2fd.get(), store_config(cfg), index);
    std::optional<SnapshotKeeper> keeper;
    if (journal) {
        store.set_journal(journal.get());
        keeper.emplace(rootfd.get(), v2fd.get(), index, *journal,
                       runtime.config().background_threads, runtime.blocking());
    }
    reactor::Latch ready;
    registry::RegistryConfig rcfg = registry_config(cfg);
    auto guard = make_guard(cfg, runtime);
    if (!guard) {
        return startup_error(guard.error());
    }
    rcfg.guard = std::move(*guard);
    warn_plain_auth(cfg);
    registry::Registry reg(std::move(rcfg), store, ready);
    reg.set_runtime(&runtime);
    http::ServerConfig scfg = server_config(cfg);
    if (!cfg.tls_certificate.empty()) {
        auto tls = http::TlsContext::create(tls_config(cfg));
        if (!tls) {
            return startup_error(tls.error());
        }
        scfg.tls = std::move(*tls);
        RP_LOG_INFO("tls: %s; client certificates %s; minimum %s; kernel TLS %s",
                    scfg.tls->describe().c_str(), client_auth_mode(cfg).c_str(),
                    cfg.tls_minimum_version.c_str(),
                    kernel_tls_available()
                        ? "available (downloads spliced, encrypted by the kernel)"
                        : "not available: no tls module (downloads encrypted in user space)");
    }
    std::shared_ptr<http::TlsContext> tls = scfg.tls;
    // [ui] listen: the UI on a listener of its own, with the same TLS.
    std::optional<http::Server> ui_server;
    if (cfg.ui_enabled && !cfg.ui_listen.empty()) {
        http::ServerConfig ucfg = scfg;
        ucfg.listen = cfg.ui_listen;
        ucfg.listener = registry::ui_listener;
        ui_server.emplace(std::move(ucfg), reg, runtime);
    }
    http::Server server(std::move(scfg), reg, runtime);
    reg.set_connection_count([&server, &ui_server] {
        return server.active_connections() + (ui_server ? ui_server->active_connections() : 0);
    });
    auto bound = server.listen();
    if (!bound) {
        return startup_error(bound.error());
    }
    if (auto a = reactor::parse_listen_addr(*bound)) {
        // A wildcard address names no host: the UI uses its own page's.
        const bool any = a->host == "0.0.0.0" || a->host == "::";
        const bool v6 = a->host.find(':') != std::string::npos;
        reg.set_registry_address(any ? std::string() : v6 ? "[" + a->host + "]" : a->host, a->port);
    }
    std::string ui_bound;
    if (ui_server) {
        auto b = ui_server->listen();
        if (!b) {
            return startup_error(b.error());
        }
        ui_bound = std::move(*b);
    }
    auto opened = open_notifier(cfg, rootfd.get(), *bound);
    if (!opened) {
        return startup_error(opened.error());
    }
    std::unique_ptr<observe::Notifier> notifier = std::move(*opened);
    std::unique_ptr<observe::AuditLog> audit;
    if (!cfg.audit_path.empty()) {
        auto a = observe::AuditLog::open(cfg.audit_path);
        if (!a) {
            return startup_error(a.error());
        }
        audit = std::move(*a);
    }
    reg.set_observers(notifier.get(), audit.get());
    if (auto started = runtime.start(); !started) {
        runtime.stop();
        return startup_error(started.error());
    }
    // Their writer threads: long jobs of the runtime's, joined by its stop.
    if (notifier) {
        runtime.spawn_thread(
            "rp-spool", [n = notifier.get(), &runtime] { n->run_writer(runtime.stop_flag()); });
    }
    if (audit) {
        runtime.spawn_thread("rp-audit",
                             [a = audit.get(), &runtime] { a->run(runtime.stop_flag()); });
    }
    server.start();
    if (ui_server) {
        ui_server->start();
    }
    std::printf("ringport: listening on %s\n", bound->c_str());
    if (ui_server) {
        std::printf("ringport: web UI on %s\n", ui_bound.c_str());
    }
    std::fflush(stdout);
    RP_LOG_INFO("ringport %s serving %s on %s with %u shard(s)", RINGPORT_VERSION,
                cfg.storage_root.c_str(), bound->c_str(), server.shard_count());
    if (ui_server) {
        RP_LOG_INFO("the web UI and the admin API it reads on %s (not on %s)", ui_bound.c_str(),
                    bound->c_str());
    }
    struct Housekeeping {
        registry::Registry* reg;
        int rootfd;
    } hk{&reg, rootfd.get()};
    runtime.shard(0).post(reactor::Message{[](void* arg, std::uint64_t) noexcept {
                                               auto* h = static_cast<Housekeeping*>(arg);
                                               h->reg->start_housekeeping(h->rootfd);
                                           },
                                           &hk, 0});
    if (cfg.scrub_bytes_per_s > 0) { // a long job of the runtime's, joined by its stop
        runtime.spawn_thread("rp-scrub", [&reg, &runtime] { reg.scrub(runtime.stop_flag()); });
    }
    run_until_signal(cfg, sigs, std::move(*src), v2fd.get(), runtime, server,
                     ui_server ? &*ui_server : nullptr, index, store, ready,
                     keeper ? &*keeper : nullptr, tls.get(), audit.get());
    reg.save_activity(); // the runtime has stopped: nothing touches it now
    if (notifier) {
        notifier->save_cursors();
    }
    RP_LOG_INFO("stopped");
    util::log_stop();
    return 0;
}

} // namespace rp
