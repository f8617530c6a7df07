// SPDX-License-Identifier: Apache-2.0
// GET /metrics: Prometheus text format (version 0.0.4).
#include "registry/metrics.hh"

#include <sys/statvfs.h>

#include <array>
#include <cstdio>
#include <string>

#include "registry/registry.hh"
#include "util/log.hh"

namespace rp::registry {

std::string_view route_name(RouteKind k) noexcept {
    switch (k) {
    case RouteKind::base: return "base";
    case RouteKind::catalog: return "catalog";
    case RouteKind::tags_list: return "tags_list";
    case RouteKind::manifest: return "manifest";
    case RouteKind::blob: return "blob";
    case RouteKind::upload_start: return "upload_start";
    case RouteKind::upload: return "upload";
    case RouteKind::referrers: return "referrers";
    case RouteKind::healthz: return "healthz";
    case RouteKind::readyz: return "readyz";
    case RouteKind::status: return "status";
    case RouteKind::gc: return "gc";
    case RouteKind::retention: return "retention";
    case RouteKind::scrub: return "scrub";
    case RouteKind::repository: return "repository";
    case RouteKind::repositories: return "repositories";
    case RouteKind::repository_tags: return "repository_tags";
    case RouteKind::repository_tag: return "repository_tag";
    case RouteKind::repository_manifest: return "repository_manifest";
    case RouteKind::insights: return "insights";
    case RouteKind::timeseries: return "timeseries";
    case RouteKind::mirrors: return "mirrors";
    case RouteKind::metrics: return "metrics";
    case RouteKind::ui: return "ui";
    case RouteKind::session: return "session";
    case RouteKind::not_found: return "not_found";
    }
    return "not_found";
}

RequestCounters::RequestCounters(unsigned shards)
    : blocks_(std::make_unique<Block[]>(shards)), shards_(shards) {}

namespace {

// One writer per block: a relaxed load and store, no locked instruction.
void bump(std::atomic<std::uint64_t>& c, std::uint64_t by) noexcept {
    c.store(c.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}

} // namespace

void RequestCounters::count(unsigned shard, RouteKind k, int status, std::uint64_t us,
                            std::uint64_t in, std::uint64_t out) noexcept {
    if (shard >= shards_) {
        return;
    }
    auto* t = &blocks_[shard].t[static_cast<std::size_t>(k) * per_kind];
    std::size_t b = 0;
    while (b < bounds_us.size() && us > bounds_us[b]) {
        ++b;
    }
    if (b < bounds_us.size()) {
        bump(t[b], 1);
    }
    bump(t[bounds_us.size()], 1);
    bump(t[bounds_us.size() + 1], us);
    bump(t[bounds_us.size() + 2], in);
    bump(t[bounds_us.size() + 3], out);
    std::size_t slot = statuses.size();
    for (std::size_t i = 0; i < statuses.size(); ++i) {
        if (statuses[i] == status) {
            slot = i;
            break;
        }
    }
    bump(blocks_[shard].n[static_cast<std::size_t>(k) * slots + slot], 1);
}

RequestCounters::Route RequestCounters::route(std::size_t kind) const noexcept {
    Route r;
    for (unsigned s = 0; s < shards_; ++s) {
        const auto* t = &blocks_[s].t[kind * per_kind];
        for (std::size_t b = 0; b < bounds_us.size(); ++b) {
            r.buckets[b] += t[b].load(std::memory_order_relaxed);
        }
        r.count += t[bounds_us.size()].load(std::memory_order_relaxed);
        r.sum_us += t[bounds_us.size() + 1].load(std::memory_order_relaxed);
        r.bytes_in += t[bounds_us.size() + 2].load(std::memory_order_relaxed);
        r.bytes_out += t[bounds_us.size() + 3].load(std::memory_order_relaxed);
    }
    return r;
}

std::uint64_t RequestCounters::total(std::size_t kind, std::size_t status_slot) const noexcept {
    std::uint64_t sum = 0;
    for (unsigned s = 0; s < shards_; ++s) {
        sum += blocks_[s].n[kind * slots + status_slot].load(std::memory_order_relaxed);
    }
    return sum;
}

namespace {

void family(std::string& out, const char* name, const char* type, const char* help) {
    out.append("# HELP ").append(name).append(" ").append(help).append("\n");
    out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

// A label value as the text format wants it: backslash, quote and newline escaped.
void label_value(std::string& out, std::string_view v) {
    for (char c : v) {
        if (c == '\\' || c == '"') {
            out.push_back('\\');
            out.push_back(c);
        } else if (c == '\n') {
            out.append("\\n");
        } else {
            out.push_back(c);
        }
    }
}

// Microseconds as seconds, in the text format's float notation.
std::string seconds(std::uint64_t us) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%llu.%06llu", static_cast<unsigned long long>(us / 1000000),
                  static_cast<unsigned long long>(us % 1000000));
    std::string s(buf);
    while (s.back() == '0') {
        s.pop_back();
    }
    if (s.back() == '.') {
        s.pop_back();
    }
    return s;
}

void sample_text(std::string& out, const char* name, std::string_view labels, std::string_view v) {
    out.append(name);
    if (!labels.empty()) {
        out.append("{").append(labels).append("}");
    }
    out.append(" ").append(v).append("\n");
}

void sample(std::string& out, const char* name, std::string_view labels, std::uint64_t v) {
    out.append(name);
    if (!labels.empty()) {
        out.append("{").append(labels).append("}");
    }
    out.append(" ").append(std::to_string(v)).append("\n");
}

} // namespace

reactor::Task<void> Registry::metrics(http::Exchange& ex) noexcept {
    std::string b;
    if (requests_) {
        family(b, "ringport_http_requests_total", "counter",
               "Requests answered, by route and status (other: a status not listed apart).");
        for (std::size_t k = 0; k < RequestCounters::kinds; ++k) {
            for (std::size_t s = 0; s < RequestCounters::slots; ++s) {
                const std::uint64_t n = requests_->total(k, s);
                if (n == 0) {
                    continue;
                }
                std::string labels = "route=\"";
                labels.append(route_name(static_cast<RouteKind>(k))).append("\",status=\"");
                labels.append(s < RequestCounters::statuses.size()
                                  ? std::to_string(RequestCounters::statuses[s])
                                  : std::string("other"));
                labels.append("\"");
                sample(b, "ringport_http_requests_total", labels, n);
            }
        }
    }
    if (requests_) {
        family(b, "ringport_http_request_duration_seconds", "histogram",
               "Time from a request's head to its response sent, by route.");
        std::array<RequestCounters::Route, RequestCounters::kinds> routes{};
        for (std::size_t k = 0; k < RequestCounters::kinds; ++k) {
            routes[k] = requests_->route(k);
            const RequestCounters::Route& r = routes[k];
            if (r.count == 0) {
                continue;
            }
            const std::string route =
                "route=\"" + std::string(route_name(static_cast<RouteKind>(k))) + "\"";
            std::uint64_t cum = 0;
            for (std::size_t i = 0; i < RequestCounters::bounds_us.size(); ++i) {
                cum += r.buckets[i];
                sample(b, "ringport_http_request_duration_seconds_bucket",
                       route + ",le=\"" + seconds(RequestCounters::bounds_us[i]) + "\"", cum);
            }
            sample(b, "ringport_http_request_duration_seconds_bucket", route + ",le=\"+Inf\"",
                   r.count);
            sample_text(b, "ringport_http_request_duration_seconds_sum", route, seconds(r.sum_us));
            sample(b, "ringport_http_request_duration_seconds_count", route, r.count);
        }
        auto bytes = [&](const char* name, const char* help,
                         std::uint64_t RequestCounters::Route::*m) {
            family(b, name, "counter", help);
            for (std::size_t k = 0; k < RequestCounters::kinds; ++k) {
                if (routes[k].count != 0) {
                    sample(b, name,
                           "route=\"" + std::string(route_name(static_cast<RouteKind>(k))) + "\"",
                           routes[k].*m);
                }
            }
        };
        bytes("ringport_http_request_body_bytes_total", "Request body bytes received, by route.",
              &RequestCounters::Route::bytes_in);
        bytes("ringport_http_response_bytes_total",
              "Response bytes sent (heads and bodies), by route.",
              &RequestCounters::Route::bytes_out);
    }
    {
        const storage::Index::Counts c = store_.index().counts();
        auto gauge = [&](const char* name, const char* help, std::uint64_t v) {
            family(b, name, "gauge", help);
            sample(b, name, {}, v);
        };
        auto counter = [&](const char* name, const char* help, std::uint64_t v) {
            family(b, name, "counter", help);
            sample(b, name, {}, v);
        };
        gauge("ringport_index_ready", "1 once the index of the tree is loaded.",
              ready_.is_set() ? 1 : 0);
        gauge("ringport_index_repositories", "Repositories in the index.", c.repos);
        gauge("ringport_index_tags", "Tags in the index.", c.tags);
        gauge("ringport_index_manifests", "Manifest revisions in the index.", c.manifests);
        gauge("ringport_index_blob_links", "Layer links (a blob in a repository) in the index.",
              c.layers);
        gauge("ringport_upload_sessions", "Upload sessions holding memory now.",
              store_.upload_count());
        gauge("ringport_upload_sessions_max", "The bound on upload sessions (uploads_max).",
              store_.config().uploads_max);
        struct statvfs fs {};
        if (rootfd_ >= 0 && ::fstatvfs(rootfd_, &fs) == 0) {
            gauge("ringport_storage_filesystem_size_bytes",
                  "Size of the file system holding the root.",
                  static_cast<std::uint64_t>(fs.f_blocks) * fs.f_frsize);
            gauge("ringport_storage_filesystem_avail_bytes",
                  "Bytes of that file system ringport may still write.",
                  static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize);
        }
        std::uint64_t gc_runs = 0;
        std::uint64_t retention_runs = 0;
        bool gc_running = false;
        {
            std::lock_guard lk(gc_mu_);
            gc_runs = gc_runs_;
            retention_runs = retention_runs_;
            if (gc_last_) {
                const int ph = gc_last_->phase.load();
                gc_running = ph != storage::GcProgress::done && ph != storage::GcProgress::failed;
            }
        }
        counter("ringport_gc_runs_total", "Garbage collections started (dry runs too).", gc_runs);
        gauge("ringport_gc_running", "1 while a garbage collection runs.", gc_running ? 1 : 0);
        counter("ringport_gc_freed_bytes_total", "Bytes garbage collection freed.",
                totals_.gc_bytes.load());
        counter("ringport_gc_deleted_blobs_total", "Blobs garbage collection removed.",
                totals_.gc_blobs.load());
        counter("ringport_gc_deleted_manifests_total",
                "Untagged manifests garbage collection removed (delete_untagged).",
                totals_.gc_manifests.load());
        counter("ringport_retention_runs_total", "Retention runs started (dry runs too).",
                retention_runs);
        counter("ringport_retention_deleted_tags_total", "Tags retention deleted.",
                totals_.retention_tags.load());
        counter("ringport_retention_deleted_manifests_total", "Manifests retention deleted.",
                totals_.retention_manifests.load());
        if (cfg_.scrub_bytes_per_s > 0) {
            std::uint64_t passes = 0;
            std::uint64_t bytes_done = 0;
            std::uint64_t findings = 0;
            std::uint64_t errors = 0;
            {
                std::lock_guard lk(scrub_.mu);
                passes = scrub_.passes;
                bytes_done = scrub_.bytes_before;
                findings = scrub_.findings.size();
                if (scrub_.progress) {
                    bytes_done += scrub_.progress->bytes.load();
                    errors = scrub_.progress->errors.load();
                }
            }
            counter("ringport_scrub_passes_total", "Scrub passes started.", passes);
            counter("ringport_scrub_verified_bytes_total", "Blob bytes the scrub read and hashed.",
                    bytes_done);
            gauge("ringport_scrub_findings", "Problems the current or last scrub pass found.",
                  findings);
            gauge("ringport_scrub_io_errors", "I/O errors of the current or last scrub pass.",
                  errors);
        }
        counter("ringport_log_dropped_lines_total",
                "Log lines dropped because stderr could not keep up.", util::log_dropped_total());
    }
    if (runtime_ != nullptr) {
        family(b, "ringport_shard_busy_seconds_total", "counter",
               "Time each shard's loop ran (not waiting for the kernel): its rate is the "
               "loop's utilisation.");
        for (unsigned i = 0; i < runtime_->shard_count(); ++i) {
            sample_text(b, "ringport_shard_busy_seconds_total",
                        "shard=\"" + std::to_string(i) + "\"",
                        seconds(runtime_->shard(i).busy_us()));
        }
    }
    if (notifier_ != nullptr) {
        const std::vector<observe::Endpoint>& eps = notifier_->endpoints();
        auto per_endpoint = [&](const char* name, const char* type, const char* help, auto get) {
            family(b, name, type, help);
            for (std::size_t i = 0; i < eps.size(); ++i) {
                if (eps[i].disabled) {
                    continue;
                }
                std::string labels = "endpoint=\"";
                label_value(labels, eps[i].name);
                labels.append("\"");
                get(i, [&](std::string_view extra, std::uint64_t v) {
                    sample(b, name, extra.empty() ? labels : labels + "," + std::string(extra), v);
                });
            }
        };
        per_endpoint("ringport_webhook_backlog_events", "gauge",
                     "Events spooled that the endpoint has not accepted yet.",
                     [&](std::size_t i, auto emit) { emit({}, notifier_->backlog(i)); });
        per_endpoint(
            "ringport_webhook_delivered_events_total", "counter", "Events the endpoint accepted.",
            [&](std::size_t i, auto emit) { emit({}, notifier_->stats(i).delivered.load()); });
        per_endpoint(
            "ringport_webhook_failures_total", "counter",
            "POSTs to the endpoint that failed (an error status, or no answer).",
            [&](std::size_t i, auto emit) { emit({}, notifier_->stats(i).failures.load()); });
        per_endpoint("ringport_webhook_dropped_events_total", "counter",
                     "Events the endpoint will never get: past max_age_s, or removed from a "
                     "full spool.",
                     [&](std::size_t i, auto emit) {
                         emit("reason=\"expired\"", notifier_->stats(i).expired.load());
                         emit("reason=\"spool_full\"", notifier_->stats(i).lost.load());
                     });
        per_endpoint("ringport_webhook_endpoint_failing", "gauge",
                     "1 while the endpoint's last POST failed.", [&](std::size_t i, auto emit) {
                         emit({}, notifier_->stats(i).failing.load() ? 1 : 0);
                     });
        const observe::Spool& sp = notifier_->spool();
        family(b, "ringport_webhook_spool_bytes", "gauge", "Bytes of events in the spool.");
        sample(b, "ringport_webhook_spool_bytes", {}, sp.bytes());
        family(b, "ringport_webhook_spool_write_errors_total", "counter",
               "Writes and syncs of the spool the disk refused (retried for 5 s).");
        sample(b, "ringport_webhook_spool_write_errors_total", {}, sp.write_errors());
        family(b, "ringport_webhook_spool_dropped_events_total", "counter",
               "Events lost before any endpoint got them: the disk refused them for 5 s.");
        sample(b, "ringport_webhook_spool_dropped_events_total", {}, sp.dropped());
    }
    if (audit_ != nullptr) {
        family(b, "ringport_audit_records_total", "counter", "Audit records written.");
        sample(b, "ringport_audit_records_total", {}, audit_->records());
        family(b, "ringport_audit_write_errors_total", "counter",
               "Writes of the audit log that failed.");
        sample(b, "ringport_audit_write_errors_total", {}, audit_->errors());
        family(b, "ringport_audit_dropped_records_total", "counter",
               "Audit records dropped because the disk could not keep up.");
        sample(b, "ringport_audit_dropped_records_total", {}, audit_->dropped());
    }
    if (guard_ != nullptr && guard_->basic) {
        const auth::BasicAuthenticator& a = *guard_->basic;
        family(b, "ringport_auth_bcrypt_verifications_total", "counter",
               "Password checks that ran bcrypt (the rest were answered from the cache).");
        sample(b, "ringport_auth_bcrypt_verifications_total", "", a.verifications());
        family(b, "ringport_auth_failures_total", "counter",
               "Basic credentials refused (wrong password or unknown user).");
        sample(b, "ringport_auth_failures_total", "", a.failures());
        family(b, "ringport_auth_rate_limited_total", "counter",
               "Logins refused with 429 because their address failed too often.");
        sample(b, "ringport_auth_rate_limited_total", "", a.rate_limited());
    }
    if (guard_ != nullptr && guard_->tokens) {
        family(b, "ringport_auth_token_signature_checks_total", "counter",
               "Bearer token signatures checked (the rest were answered from the cache).");
        sample(b, "ringport_auth_token_signature_checks_total", "",
               guard_->tokens->signature_checks());
    }
    if (!router_.empty()) {
        auto per_upstream = [&](const char* name, const char* type, const char* help, auto value) {
            family(b, name, type, help);
            for (const mirror::Upstream& u : router_.upstreams()) {
                value(u, [&](std::string_view extra, std::uint64_t v) {
                    std::string labels = "upstream=\"";
                    label_value(labels, u.prefix);
                    labels.append("\"");
                    if (!extra.empty()) {
                        labels.append(",").append(extra);
                    }
                    sample(b, name, labels, v);
                });
            }
        };
        auto by_kind = [&](const char* name, const char* help, auto member) {
            per_upstream(name, "counter", help, [&](const mirror::Upstream& u, auto emit) {
                const MirrorStats& st = stats(u);
                emit("kind=\"manifest\"", (st.*member)[MirrorStats::manifest].load());
                emit("kind=\"blob\"", (st.*member)[MirrorStats::blob].load());
            });
        };
        by_kind("ringport_mirror_hits_total",
                "Mirrored requests answered from the cache (a tag within tag_ttl_s, or "
                "confirmed unchanged upstream).",
                &MirrorStats::hits);
        by_kind("ringport_mirror_misses_total",
                "Mirrored requests that fetched from the upstream (missing, or a tag that moved).",
                &MirrorStats::misses);
        by_kind("ringport_mirror_coalesced_total",
                "Mirrored requests that waited on a fetch another request started.",
                &MirrorStats::coalesced);
        by_kind("ringport_mirror_not_found_hits_total",
                "Mirrored requests answered 404 from the remembered upstream 404s.",
                &MirrorStats::not_found_hits);
        auto scalar = [&](const char* name, const char* type, const char* help, auto get) {
            per_upstream(name, type, help, [&](const mirror::Upstream& u, auto emit) {
                if (auto v = get(u); v >= 0) {
                    emit({}, static_cast<std::uint64_t>(v));
                }
            });
        };
        auto counter = [&](const char* name, const char* help, auto member) {
            scalar(name, "counter", help, [&](const mirror::Upstream& u) {
                return static_cast<std::int64_t>((stats(u).*member).load());
            });
        };
        counter("ringport_mirror_revalidations_total",
                "Cached tags past tag_ttl_s asked upstream (a HEAD).", &MirrorStats::revalidations);
        counter("ringport_mirror_stale_serves_total",
                "Cached tags served without the upstream's confirmation (it was down, "
                "throttled or near its rate limit).",
                &MirrorStats::stale);
        counter("ringport_mirror_upstream_bytes_total",
                "Manifest and blob bytes received from the upstream.",
                &MirrorStats::upstream_bytes);
        counter("ringport_mirror_served_bytes_total",
                "Manifest and blob bytes answered for mirrored repositories.",
                &MirrorStats::served_bytes);
        scalar("ringport_mirror_fetches_in_flight", "gauge",
               "Upstream fetches under way (each shared by any number of requests).",
               [&](const mirror::Upstream& u) { return stats(u).in_flight.load(); });
        counter("ringport_mirror_evictions_total",
                "Cached manifests evicted (least recently pulled first, past cache_bytes_max).",
                &MirrorStats::evictions);
        counter("ringport_mirror_evicted_bytes_total",
                "Bytes the evictions took out of the cache's size.", &MirrorStats::evicted_bytes);
        scalar("ringport_mirror_cache_bytes", "gauge",
               "The cache's size at its last check (mirrors with cache_bytes_max).",
               [&](const mirror::Upstream& u) { return stats(u).cache_bytes.load(); });
        scalar("ringport_mirror_circuit_open", "gauge",
               "1 while the upstream is taken as down and cached tags are served without asking.",
               [&](const mirror::Upstream& u) {
                   return static_cast<std::int64_t>(breaker_.is_open(u) ? 1 : 0);
               });
        scalar("ringport_mirror_ratelimit_remaining", "gauge",
               "The upstream's last ratelimit-remaining (absent until it sent one).",
               [&](const mirror::Upstream& u) { return fetcher_.limits(u).remaining; });
        family(b, "ringport_mirror_probes_total", "counter",
               "Background probes of upstreams whose circuit was open.");
        sample(b, "ringport_mirror_probes_total", {}, breaker_.probes());
        family(b, "ringport_mirror_upstream_requests_total", "counter",
               "Requests sent to upstreams, token requests and probes included.");
        sample(b, "ringport_mirror_upstream_requests_total", {}, fetcher_.requests());
        family(b, "ringport_mirror_credentials_withheld_total", "counter",
               "Token requests sent without credentials: the realm was not the upstream's.");
        sample(b, "ringport_mirror_credentials_withheld_total", {}, fetcher_.withheld());
    }
    http::Response resp = empty_response(200);
    resp.add("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    resp.body = std::move(b);
    co_await reply(ex, std::move(resp));
}

} // namespace rp::registry
