// SPDX-License-Identifier: Apache-2.0
// GET /metrics: Prometheus text format (version 0.0.4).
#include "registry/metrics.hh"

#include <string>

#include "registry/registry.hh"

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
    case RouteKind::metrics: return "metrics";
    case RouteKind::not_found: return "not_found";
    }
    return "not_found";
}

RequestCounters::RequestCounters(unsigned shards)
    : blocks_(std::make_unique<Block[]>(shards)), shards_(shards) {}

void RequestCounters::count(unsigned shard, RouteKind k, int status) noexcept {
    if (shard >= shards_) {
        return;
    }
    std::size_t slot = statuses.size();
    for (std::size_t i = 0; i < statuses.size(); ++i) {
        if (statuses[i] == status) {
            slot = i;
            break;
        }
    }
    std::atomic<std::uint64_t>& c = blocks_[shard].n[static_cast<std::size_t>(k) * slots + slot];
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); // one writer
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
