// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "http/connection.hh"
#include "http/handler.hh"
#include "mirror/cache.hh"
#include "mirror/fetcher.hh"
#include "mirror/flights.hh"
#include "mirror/router.hh"
#include "observe/audit.hh"
#include "observe/notify.hh"
#include "reactor/runtime.hh"
#include "reactor/sync.hh"
#include "registry/errors.hh"
#include "registry/guard.hh"
#include "registry/json.hh"
#include "registry/metrics.hh"
#include "registry/routes.hh"
#include "storage/activity.hh"
#include "storage/check.hh"
#include "storage/insights.hh"
#include "storage/gc.hh"
#include "storage/retention.hh"
#include "storage/store.hh"

namespace rp::registry {

struct RegistryConfig {
    std::size_t catalog_max_entries = 1000;
    std::size_t catalog_default_entries = 100;
    std::vector<mirror::Upstream> mirrors; // validated (mirror::validate)
    std::shared_ptr<Guard> guard;          // null: no authentication
    // Garbage collection while serving ([gc]): every interval_s (0: only on
    // demand, POST /ringport/v1/gc), keeping what was used within grace_s.
    std::int64_t gc_interval_s = 0;
    std::int64_t gc_grace_s = 3600;
    // Retention ([retention], [[retention.policy]]): every interval_s (0:
    // only on demand, POST /ringport/v1/retention); scheduled runs only
    // report when retention_dry_run. Tag push and pull times are saved
    // every activity_save_s while something changed.
    std::vector<storage::RetentionPolicy> retention_policies;
    std::int64_t retention_interval_s = 0;
    std::int64_t activity_save_s = 60;
    std::int32_t insights_days = 30; // daily pull counts kept
    bool insights = true;            // pulls and pushes counted (insights_)
    // The online scrub ([scrub]): blob bytes verified per second (0: off),
    // and the pause between the end of a pass and the next.
    std::uint64_t scrub_bytes_per_s = 0;
    std::int64_t scrub_interval_s = 86400;
    std::int64_t upload_purge_age_s = 7 * 86400;
    std::string version; // for the status endpoint
    // Flags, kept together (fewer padding bytes).
    bool delete_enabled = true;
    bool access_log = true;
    bool read_only = false;          // writes get 405 UNSUPPORTED
    bool mount_without_from = true;  // cross-repository mounts without `from`
    bool gc_delete_untagged = false; // scheduled GC runs delete untagged manifests
    bool retention_dry_run = false;
    bool ui = true; // the web UI at /ui/, and its sign-in
    // The UI on a listener of its own (ui_listener): /ui/ and the sign-in
    // are served there only, and that listener serves of /v2/ only blob
    // reads (served_to_ui).
    bool ui_own_listener = false;
    std::int64_t ui_session_ttl_s = 3600; // a UI session's life
};

// http::ServerConfig::listener of the UI's own listener ([ui] listen); the
// registry's is 0.
inline constexpr unsigned ui_listener = 1;

struct ParsedManifest;

// Seconds since the epoch (the registry's clock for activity, sessions and
// runs).
std::int64_t now_s() noexcept;

// A request's whole body, up to `max` bytes (grown as it arrives); a body
// past `max` (announced or sent) is an Errc::too_large error saying
// `too_large`, one that cannot be read the transport's error.
reactor::Task<util::Result<std::string>> read_whole_body(http::Exchange& ex, std::size_t max,
                                                         std::string_view too_large) noexcept;

// Who caused a change: a request, or one of the registry's own duties
// ("retention", "gc") when `ex` is null.
struct Origin {
    const http::Exchange* ex = nullptr;
    std::string_view duty;
};

// The OCI Distribution API over the store. One instance serves all shards;
// per-request state lives in the handler coroutines.
class Registry final : public http::Handler {
  public:
    Registry(RegistryConfig cfg, storage::Store& store, reactor::Latch& ready) noexcept;
    reactor::Task<void> handle(http::Exchange& ex) noexcept override;
    // The runtime whose shards the status endpoint reports on (optional).
    void set_runtime(const reactor::Runtime* rt) noexcept {
        runtime_ = rt;
        requests_ = std::make_unique<RequestCounters>(rt->shard_count());
    }
    // Webhooks and the audit log (each optional; they outlive the registry's use).
    void set_observers(observe::Notifier* notifier, observe::AuditLog* audit) noexcept {
        notifier_ = notifier;
        audit_ = audit;
    }
    // Connections open now, across the shards (the status endpoint).
    void set_connection_count(std::function<std::uint64_t()> fn) { connections_ = std::move(fn); }
    // The registry listener's address, for the pull commands the UI shows
    // when it is served on an address of its own: its port, and its host when
    // it listens on one address ("" for all of them, written [v6] for IPv6).
    void set_registry_address(std::string host, std::uint16_t port) {
        registry_host_ = std::move(host);
        registry_port_ = port;
    }
    void log_access(const http::AccessRecord& rec) noexcept override;
    void cutting() noexcept override { flights_.cut_readers(); }
    void handshake_failed(std::string_view peer, const util::Error& why) noexcept override;
    // The background duties, as flows on the calling shard until it stops:
    // the mirrors' housekeeping (cache_bytes_max, pre-warm), and the
    // lifecycle (saving tag and pull activity in `rootfd`, scheduled
    // garbage collection and retention).
    void start_housekeeping(int rootfd) noexcept;
    // The activity, written now (at a clean stop, after the runtime).
    void save_activity() noexcept;
    // The online scrub ([scrub] bytes_per_s): passes of storage::check_tree
    // at nice 19 on the calling thread (the runtime's spawn_thread), reading
    // at that rate, reporting only (GET /ringport/v1/scrub), until `stop`.
    void scrub(const std::atomic<bool>& stop) noexcept;

  private:
    using Task = reactor::Task<void>;
    Task handle_route(http::Exchange& ex, Route route) noexcept;
    Task dispatch(http::Exchange& ex, Route route) noexcept;
    Task dispatch_read(http::Exchange& ex, const Route& route) noexcept;
    Task dispatch_upload(http::Exchange& ex, const Route& route) noexcept;
    Task reply(http::Exchange& ex, http::Response r) noexcept;
    Task fail(http::Exchange& ex, Code c, std::string_view detail = {}) noexcept;
    // guard.cc: false when the request was refused (and answered).
    reactor::Task<bool> authorize(http::Exchange& ex, const Route& route) noexcept;
    reactor::Task<bool> authorize_token(http::Exchange& ex, const Route& route) noexcept;
    Task challenge(http::Exchange& ex, std::string_view detail) noexcept;
    Task challenge(http::Exchange& ex, std::string_view detail, std::string_view scope,
                   std::string_view error) noexcept;
    std::string token_realm(const http::Exchange& ex) const;
    // Admits `who` by the access rules (answering a refusal); a change made
    // in a browser session must carry `csrf` (empty: no CSRF token applies).
    reactor::Task<bool> admit(http::Exchange& ex, const Route& route, const Need& need,
                              const auth::Identity& who, std::string_view csrf) noexcept;
    // token_endpoint.cc: the built-in token issuer (GET and OAuth2 POST).
    Task issue_token(http::Exchange& ex) noexcept;
    // session.cc: the web UI's sign-in (GET, POST, DELETE /ringport/v1/session).
    Task session_endpoint(http::Exchange& ex) noexcept;
    Task sign_in(http::Exchange& ex) noexcept;
    // The UI session the request's cookie names, if any (and the UI is on),
    // while its user's password is unchanged.
    std::optional<auth::Session> session_of(const http::Exchange& ex) const;
    std::string_view session_token(const http::Exchange& ex) const;
    bool passwords_sign_in() const noexcept;
    // The client certificate's user, where a certificate admits requests by
    // itself (certificate_users, not under the token scheme); else empty.
    std::string_view certificate_user(const http::Exchange& ex) const noexcept;
    // Why this connection may not sign in ("" when it may).
    std::string sign_in_refusal(const http::Exchange& ex) const;
    // Whether the caller may pull a repository (mount sources): the token's
    // grants under token auth, else the rules. Valid while `ex` is.
    std::function<bool(std::string_view)> pull_filter(const http::Exchange& ex) const;
    // The rules for the caller (the catalog's filter, also under tokens:
    // the rules for the token's subject).
    bool listed_for(const http::Exchange& ex, std::string_view repo) const noexcept;
    bool pulls_everything(const http::Exchange& ex) const noexcept;
    // Rewrites a mirrored repository's name to its cache's; false when the
    // request was answered (an unknown ns, a write into a mirror).
    reactor::Task<bool> route_mirror(http::Exchange& ex, Route& route) noexcept;

    // blobs.cc
    Task get_blob(http::Exchange& ex, const Route& r) noexcept;
    mirror::Flights::Ticket join_blob_fetch(const mirror::Upstream& u, const std::string& repo,
                                            const storage::Digest& d, std::string key) noexcept;
    reactor::Task<bool> mount_stored(const mirror::Upstream& u, const std::string& repo,
                                     const storage::Digest& d) noexcept;
    Task fetch_into_cache(std::string repo, const mirror::Upstream* u, storage::Digest d,
                          std::string key, std::shared_ptr<mirror::Flights::Flight> fl) noexcept;
    Task delete_blob(http::Exchange& ex, const Route& r) noexcept;
    // uploads.cc
    Task start_upload(http::Exchange& ex, const Route& r) noexcept;
    Task monolithic_upload(http::Exchange& ex, const Route& r, storage::Digest d) noexcept;
    Task mount_or_start(http::Exchange& ex, const Route& r) noexcept;
    Task patch_upload(http::Exchange& ex, const Route& r) noexcept;
    Task put_upload(http::Exchange& ex, const Route& r) noexcept;
    Task upload_status(http::Exchange& ex, const Route& r) noexcept;
    Task cancel_upload(http::Exchange& ex, const Route& r) noexcept;
    reactor::Task<util::Result<void>> stream_body(http::Exchange& ex, storage::Upload& u) noexcept;
    Task upload_failed(http::Exchange& ex, storage::UploadPtr u, util::Error e) noexcept;
    // manifests.cc
    Task get_manifest(http::Exchange& ex, const Route& r) noexcept;
    reactor::Task<util::Result<storage::ManifestPtr>>
    mirror_manifest(const Route& r, const mirror::Upstream& u) noexcept;
    reactor::Task<util::Result<storage::ManifestPtr>>
    mirror_lookup(const Route& r, const mirror::Upstream& u, storage::ManifestPtr cached) noexcept;
    reactor::Task<util::Result<storage::ManifestPtr>>
    revalidate_or_fetch(const Route& r, const mirror::Upstream& u,
                        storage::ManifestPtr cached) noexcept;
    void upstream_down(const mirror::Upstream& u) noexcept;
    Task probe(const mirror::Upstream* u) noexcept;
    Task put_manifest(http::Exchange& ex, const Route& r) noexcept;
    // cache.cc
    Task housekeeping() noexcept;
    reactor::Task<std::uint64_t> cache_usage(const std::vector<std::string>& repos) noexcept;
    Task evict_if_over(const mirror::Upstream& u) noexcept;
    reactor::Task<std::uint64_t> evict_manifest(const std::vector<std::string>& repos,
                                                const std::string& repo,
                                                storage::Digest d) noexcept;
    Task prewarm(const mirror::Upstream& u) noexcept;
    reactor::Task<util::Result<void>> cache_blob(const mirror::Upstream& u, const std::string& repo,
                                                 const storage::Digest& d) noexcept;
    std::vector<std::string> cache_repos(const mirror::Upstream& u) const;
    Task delete_manifest(http::Exchange& ex, const Route& r) noexcept;
    reactor::Task<util::Result<std::string>> read_manifest_body(http::Exchange& ex) noexcept;
    // gc.cc: garbage collection while serving, one run at a time.
    Task gc_endpoint(http::Exchange& ex) noexcept;
    Task gc_run(storage::GcOptions opt, std::shared_ptr<storage::GcProgress> p) noexcept;
    // retention.cc: the lifecycle's schedule, retention runs, and the one
    // path deletes take (the API's and retention's).
    Task lifecycle() noexcept;
    Task retention_endpoint(http::Exchange& ex) noexcept;
    Task retention_run(bool dry_run, std::shared_ptr<storage::RetentionProgress> p) noexcept;
    std::shared_ptr<storage::RetentionProgress> retention_claim(bool dry_run) noexcept;
    // Starts a garbage collection with the configured options unless one runs.
    void start_gc() noexcept;
    // The registry's delete path: every deletion of a tag or a manifest, an
    // API DELETE's one at a time, retention's in batches (a tag only while
    // it points where it did when planned; a manifest only if untagged and
    // unused since its item's cut). What a later audit log sees.
    reactor::Task<util::Result<void>> remove_tag(const std::string& repo, const std::string& tag,
                                                 const Origin& o) noexcept;
    reactor::Task<util::Result<void>>
    remove_manifest(const std::string& repo, const storage::Digest& d, const Origin& o) noexcept;
    reactor::Task<std::vector<storage::Store::Outcome>>
    retention_delete(const std::string& repo,
                     const std::vector<storage::RetentionItem>& items) noexcept;
    Task scrub_endpoint(http::Exchange& ex) noexcept; // scrub.cc
    // DELETE /ringport/v1/repositories/<name>: the whole repository.
    Task delete_repository(http::Exchange& ex, const Route& r) noexcept;
    // Whether deletes are on and the name is valid, after the index loaded
    // (else the refusal is sent).
    reactor::Task<bool> may_delete(http::Exchange& ex, const Route& r) noexcept;
    // A new run's progress, or null when one is running.
    std::shared_ptr<storage::GcProgress> gc_claim() noexcept;
    // events.cc: what webhooks and the audit log are told. Writes wait until
    // their event is on disk (before the answer); pulls do not.
    bool observed() const noexcept { return notifier_ != nullptr || audit_ != nullptr; }
    observe::Event event_of(const Origin& o, observe::Action a, const std::string& repo) const;
    // target.url's parts, as Distribution builds it from the request.
    void content_url(const http::Exchange& ex, observe::Event& e, std::string_view kind) const;
    // An event about a manifest or blob (`kind`: "manifests" or "blobs")
    // a request pushed, pulled or mounted: its target and url.
    observe::Event content_event(const http::Exchange& ex, observe::Action a,
                                 const std::string& repo, std::string_view media_type,
                                 const std::string& digest, std::uint64_t size,
                                 std::string_view kind) const;
    void audit(const Origin& o, observe::AuditRecord r) noexcept;
    Task publish(std::uint64_t seq) noexcept; // waits for a spooled write event
    Task on_manifest_push(http::Exchange& ex, const std::string& repo, const std::string& ref,
                          const storage::ManifestInfo& m, const ParsedManifest& p) noexcept;
    Task on_blob_push(http::Exchange& ex, const std::string& repo, const storage::Digest& d,
                      std::uint64_t size) noexcept;
    Task on_blob_mount(http::Exchange& ex, const std::string& repo, const storage::Digest& d,
                       const std::optional<std::string>& from) noexcept;
    void on_manifest_pull(const http::Exchange& ex, const std::string& repo, const std::string& ref,
                          const storage::ManifestInfo& m) noexcept;
    void on_blob_pull(const http::Exchange& ex, const std::string& repo, const storage::Digest& d,
                      std::uint64_t size) noexcept;
    // A tag, manifest, blob or (all empty) repository deleted.
    std::uint64_t on_delete(const Origin& o, const std::string& repo, std::string_view tag,
                            std::string_view digest, std::string_view what) noexcept;
    // At the end of a request: its failure, a refused login or access, an admin action.
    void audit_request(const http::Exchange& ex, RouteKind kind, const std::string& name,
                       const std::string& ref) noexcept;
    // status.cc, metrics.cc
    Task status(http::Exchange& ex) noexcept;
    // admin.cc: insights and the repository API.
    Task repositories_endpoint(http::Exchange& ex) noexcept;
    Task repository_endpoint(http::Exchange& ex, const Route& r) noexcept;
    Task admin_delete(http::Exchange& ex, const Route& r) noexcept;
    Task insights_endpoint(http::Exchange& ex) noexcept;
    Task timeseries_endpoint(http::Exchange& ex) noexcept;
    struct ManifestView;
    reactor::Task<ManifestView> view_manifest(const std::string& repo,
                                              storage::ManifestPtr m) noexcept;
    // Without `sharing`, what a delete frees is null (see repository_endpoint).
    void manifest_json(Json& j, const ManifestView& v, const storage::Index::Frees& f,
                       const std::string& repo, bool sharing) const;
    void tag_json(Json& j, const std::string& repo, const std::string& tag, const ManifestView& v,
                  bool days, bool sharing) const;
    Task learn_sizes() noexcept; // lifecycle: sizes the index lacks, from the tree
    void sample_rates(std::int64_t now) noexcept;
    Task mirrors_endpoint(http::Exchange& ex) noexcept;
    Task metrics(http::Exchange& ex) noexcept;
    MirrorStats& stats(const mirror::Upstream& u) noexcept { return *mirror_stats_[u.id]; }
    // listings.cc
    Task tags_list(http::Exchange& ex, const Route& r) noexcept;
    Task catalog(http::Exchange& ex) noexcept;
    Task referrers(http::Exchange& ex, const Route& r) noexcept;
    reactor::Task<util::Result<mirror::Listed>> mirror_list(const mirror::Upstream& u,
                                                            const std::string& repo,
                                                            std::string what,
                                                            std::string accept) noexcept;

    RegistryConfig cfg_;
    observe::Notifier* notifier_ = nullptr;
    std::function<std::uint64_t()> connections_;
    std::uint16_t registry_port_ = 0;
    std::string registry_host_;
    std::int64_t started_at_ = 0; // the registry's construction (uptime)
    observe::AuditLog* audit_ = nullptr;
    Guard* guard_ = nullptr;                   // cfg_.guard, when authentication is on
    std::unique_ptr<auth::Sessions> sessions_; // the UI's sign-in sessions (cfg_.ui)
    storage::Store& store_;
    reactor::Latch& ready_;
    const reactor::Runtime* runtime_ = nullptr;
    mirror::Router router_;
    mirror::Fetcher fetcher_{256}; // a slot per shard (http.shards ≤ 256)
    mirror::Freshness freshness_;
    mirror::Flights flights_;
    mirror::NotFound not_found_;
    // Blobs an upstream sent wrong bytes for: a later request is answered
    // 502 at once, for the mirror's not_found_ttl_s, instead of a stream cut
    // short again.
    mirror::NotFound wrong_bytes_;
    mirror::Breaker breaker_;
    mirror::ListCache lists_;
    std::unique_ptr<RequestCounters> requests_; // set with the runtime
    storage::Activity activity_;
    storage::Insights insights_;
    struct Rates {
        std::mutex mu;
        std::deque<std::pair<std::int64_t, std::uint64_t>> minutes; // minute -> requests (mu)
        std::int64_t minute = 0;                                    // the one counting (mu)
        std::uint64_t at_start = 0;                                 // requests before it began (mu)
    };
    Rates rates_;
    reactor::Latch activity_loaded_; // the saved activity was read (lifecycle)
    int rootfd_ = -1;
    std::mutex gc_mu_;
    std::shared_ptr<storage::GcProgress> gc_last_;               // the running or last run (gc_mu_)
    storage::GcOptions gc_last_opt_;                             // its options (gc_mu_)
    std::uint64_t gc_runs_ = 0;                                  // runs started (gc_mu_)
    std::shared_ptr<storage::RetentionProgress> retention_last_; // gc_mu_
    bool retention_last_dry_ = false;                            // gc_mu_
    std::uint64_t retention_runs_ = 0;                           // gc_mu_
    struct Scrub {
        std::mutex mu;
        std::shared_ptr<storage::CheckProgress> progress; // the running or last pass (mu)
        std::vector<std::string> findings;                // that pass's, "kind: what" (mu)
        bool findings_truncated = false;                  // mu
        std::uint64_t passes = 0;                         // mu
        std::uint64_t bytes_before = 0;                   // read by the passes before (mu)
        std::int64_t started_at = 0, ended_at = 0;        // mu
    };
    Scrub scrub_;
    // What the lifecycle's real runs removed since the start (/metrics).
    struct Totals {
        std::atomic<std::uint64_t> gc_blobs{0}, gc_bytes{0}, gc_manifests{0};
        std::atomic<std::uint64_t> retention_tags{0}, retention_manifests{0};
    };
    Totals totals_;
    std::unordered_map<std::string, std::uint64_t> sizes_;   // blob sizes (housekeeping only)
    std::vector<std::unique_ptr<MirrorStats>> mirror_stats_; // by Upstream::id
};

// Helpers shared by the handler files.
storage::ManifestPtr indexed_manifest(const storage::Index& idx, const std::string& name,
                                      const std::string& ref);
std::string upload_location(std::string_view name, std::string_view uuid);
std::string upload_range(std::uint64_t offset);
http::Response empty_response(int status);
// 200 with a JSON document that is never cached (the /ringport/v1/ reports).
http::Response json_report(std::string body);
// `Warning: 110 ringport "stale: <why>"`: served from the mirror's cache
// without the upstream's confirmation.
void add_stale_warning(http::Response& resp, std::string_view why);

} // namespace rp::registry
