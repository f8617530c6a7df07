// SPDX-License-Identifier: Apache-2.0
#include "registry/registry.hh"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <utility>

#include "storage/names.hh"
#include "ui/ui.hh"
#include "util/log.hh"
#include "util/strings.hh"

namespace rp::registry {

using reactor::Task;

namespace {
constexpr std::size_t session_max = 10000; // open UI sessions; the oldest goes first
} // namespace

Registry::Registry(RegistryConfig cfg, storage::Store& store, reactor::Latch& ready) noexcept
    : cfg_(std::move(cfg)), store_(store), ready_(ready), router_(cfg_.mirrors) {
    guard_ = cfg_.guard.get();
    if (cfg_.ui) {
        sessions_ = std::make_unique<auth::Sessions>(cfg_.ui_session_ttl_s, session_max);
    }
    started_at_ = static_cast<std::int64_t>(std::time(nullptr));
    for (std::size_t i = 0; i < router_.upstreams().size(); ++i) {
        mirror_stats_.push_back(std::make_unique<MirrorStats>());
    }
    const bool credentials = std::any_of(cfg_.mirrors.begin(), cfg_.mirrors.end(),
                                         [](const auto& u) { return u.has_credentials(); });
    if (credentials) {
        auto psl = mirror::PublicSuffixes::load(mirror::public_suffix_list_path);
        if (psl) {
            fetcher_.set_public_suffixes(
                std::make_shared<const mirror::PublicSuffixes>(std::move(*psl)));
        } else {
            RP_LOG_WARN("%s: mirror credentials go only to each upstream's own host and its "
                        "auth_hosts",
                        psl.error().detail.c_str());
        }
    }
}

std::int64_t now_s() noexcept { return static_cast<std::int64_t>(std::time(nullptr)); }

std::string upload_location(std::string_view name, std::string_view uuid) {
    return "/v2/" + std::string(name) + "/blobs/uploads/" + std::string(uuid);
}

std::string upload_range(std::uint64_t offset) {
    // Distribution's form: "0-<last byte>", and "0-0" for an empty upload.
    return "0-" + std::to_string(offset == 0 ? 0 : offset - 1);
}

void add_stale_warning(http::Response& resp, std::string_view why) {
    std::string w = "110 ringport \"stale: ";
    util::json_escape(w, why); // keeps the quoted string's quotes escaped
    resp.add("Warning", w + "\"");
}

http::Response empty_response(int status) {
    http::Response r;
    r.status = status;
    return r;
}

http::Response json_report(std::string body) {
    http::Response r = empty_response(200);
    r.add("Content-Type", "application/json");
    r.add("Cache-Control", "no-store");
    r.body = std::move(body);
    return r;
}

Task<void> Registry::reply(http::Exchange& ex, http::Response r) noexcept {
    (void)co_await ex.respond(std::move(r));
}

Task<void> Registry::fail(http::Exchange& ex, Code c, std::string_view detail) noexcept {
    co_await reply(ex, error_response(c, detail));
}

void Registry::handshake_failed(std::string_view peer, const util::Error& why) noexcept {
    RP_LOG_INFO("tls handshake from %.*s: %s", static_cast<int>(peer.size()), peer.data(),
                why.detail.c_str());
}

void Registry::log_access(const http::AccessRecord& rec) noexcept {
    if (!cfg_.access_log) {
        return;
    }
    if (util::log_is_json()) {
        std::string f;
        f.reserve(256 + rec.target.size());
        auto str = [&f](std::string_view k, std::string_view v) {
            f.append(f.empty() ? "\"" : ",\"").append(k).append("\":\"");
            util::json_escape(f, v);
            f.push_back('"');
        };
        auto num = [&f](std::string_view k, std::uint64_t v) {
            f.append(",\"").append(k).append("\":").append(std::to_string(v));
        };
        str("msg", "access");
        str("request_id", rec.request_id);
        str("peer", rec.peer);
        str("method", rec.method);
        str("target", rec.target.substr(0, 2048));
        num("status", static_cast<std::uint64_t>(rec.status));
        num("bytes_in", rec.body_bytes_in);
        num("bytes_out", rec.bytes_out);
        num("duration_us", rec.duration_us);
        num("shard", rec.shard);
        if (!rec.user.empty()) {
            str("user", rec.user);
        }
        util::log_object(util::LogLevel::info, f, {});
        return;
    }
    char line[2048];
    int n = std::snprintf(
        line, sizeof line,
        "access %.*s \"%.*s %.*s\" %d in=%llu out=%llu %lluus shard=%u id=%.*s%s%.*s",
        static_cast<int>(rec.peer.size()), rec.peer.data(), static_cast<int>(rec.method.size()),
        rec.method.data(), static_cast<int>(rec.target.size() > 512 ? 512 : rec.target.size()),
        rec.target.data(), rec.status, static_cast<unsigned long long>(rec.body_bytes_in),
        static_cast<unsigned long long>(rec.bytes_out),
        static_cast<unsigned long long>(rec.duration_us), rec.shard,
        static_cast<int>(rec.request_id.size() > 64 ? 64 : rec.request_id.size()),
        rec.request_id.data(), rec.user.empty() ? "" : " user=",
        static_cast<int>(rec.user.size() > 256 ? 256 : rec.user.size()), rec.user.data());
    if (n > 0) {
        util::log_line(util::LogLevel::info,
                       std::string_view(line, static_cast<std::size_t>(n) < sizeof line
                                                  ? static_cast<std::size_t>(n)
                                                  : sizeof line - 1));
    }
}

Task<void> Registry::handle(http::Exchange& ex) noexcept {
    // The built-in issuer answers on every listener: a 401 names it on the
    // listener the client reached (the admin API on the UI's own address).
    if (guard_ != nullptr && guard_->issuer && ex.request().path == guard_->token.path) {
        co_await issue_token(ex);
        co_return;
    }
    Route route = match_route(ex.request().path);
    const RouteKind kind = route.kind;
    const std::uint64_t t0 = reactor::monotonic_us();
    if (audit_ != nullptr) {
        const std::string name = route.name;
        const std::string ref = route.ref;
        co_await handle_route(ex, std::move(route));
        audit_request(ex, kind, name, ref);
    } else {
        co_await handle_route(ex, std::move(route));
    }
    if (requests_) {
        requests_->count(ex.shard_id(), kind, ex.status(), reactor::monotonic_us() - t0,
                         ex.body_bytes(), ex.bytes_sent());
    }
}

Task<void> Registry::handle_route(http::Exchange& ex, Route route) noexcept {
    const http::Request& req = ex.request();
    // With [ui] listen, each listener serves its own part.
    if (ex.listener() == ui_listener && !served_to_ui(route.kind, req.method)) {
        if (req.path == "/" && (req.method == "GET" || req.method == "HEAD")) {
            http::Response r = empty_response(308);
            r.add("Location", "/ui/");
            co_await reply(ex, std::move(r));
        } else {
            co_await fail(ex, Code::not_found,
                          "this address serves the web UI and the admin API; the registry's "
                          "API is on port " +
                              std::to_string(registry_port_));
        }
        co_return;
    }
    if (ex.listener() != ui_listener && cfg_.ui_own_listener &&
        (route.kind == RouteKind::ui || route.kind == RouteKind::session)) {
        co_await fail(ex, Code::not_found, "the web UI is served on an address of its own");
        co_return;
    }
    // A change a page of another site asks a browser to make (with the
    // browser's cookies or client certificate) is refused, signed in or not.
    if (cross_site_change(req, ex.secure())) {
        co_await fail(ex, Code::denied, "a change asked by a page of another site");
        co_return;
    }
    // Before anything is read or changed: who asks, and may they.
    if (guard_ != nullptr && !co_await authorize(ex, route)) {
        co_return;
    }
    if (cfg_.read_only && writes(route, req.method)) {
        co_await fail(ex, Code::unsupported, "the registry is read-only for maintenance");
        co_return;
    }
    switch (route.kind) {
    case RouteKind::healthz:
        co_await reply(ex, [] {
            http::Response r = empty_response(200);
            r.add("Content-Type", "text/plain");
            r.body = "ok\n";
            return r;
        }());
        co_return;
    case RouteKind::readyz: {
        http::Response r = empty_response(ready_.is_set() ? 200 : 503);
        r.add("Content-Type", "text/plain");
        r.body = ready_.is_set() ? "ready\n" : "loading index\n";
        co_await reply(ex, std::move(r));
        co_return;
    }
    case RouteKind::gc: co_await gc_endpoint(ex); co_return;
    case RouteKind::retention: co_await retention_endpoint(ex); co_return;
    case RouteKind::scrub: co_await scrub_endpoint(ex); co_return;
    case RouteKind::repository:
    case RouteKind::repository_tags:
    case RouteKind::repository_tag:
    case RouteKind::repository_manifest: co_await repository_endpoint(ex, route); co_return;
    case RouteKind::repositories: co_await repositories_endpoint(ex); co_return;
    case RouteKind::insights: co_await insights_endpoint(ex); co_return;
    case RouteKind::timeseries: co_await timeseries_endpoint(ex); co_return;
    case RouteKind::status:
    case RouteKind::mirrors:
    case RouteKind::metrics:
    case RouteKind::base:
        if (req.method != "GET" && req.method != "HEAD") {
            co_await fail(ex, Code::unsupported);
        } else if (route.kind == RouteKind::status) {
            co_await status(ex);
        } else if (route.kind == RouteKind::mirrors) {
            co_await mirrors_endpoint(ex);
        } else if (route.kind == RouteKind::metrics) {
            co_await metrics(ex);
        } else {
            http::Response r = empty_response(200);
            r.add("Content-Type", "application/json; charset=utf-8");
            r.body = "{}";
            co_await reply(ex, std::move(r));
        }
        co_return;
    case RouteKind::session: co_await session_endpoint(ex); co_return;
    case RouteKind::ui:
        if (!cfg_.ui) {
            co_await fail(ex, Code::not_found, req.path);
        } else {
            // The list is preloaded only when the caller may read it as is.
            const bool preload =
                guard_ == nullptr || session_of(ex).has_value() || !certificate_user(ex).empty();
            co_await reply(ex, ui::serve(req, preload));
        }
        co_return;
    case RouteKind::not_found: co_await fail(ex, Code::not_found, req.path); co_return;
    default: break;
    }
    if (!router_.empty() && route.kind != RouteKind::catalog && !co_await route_mirror(ex, route)) {
        co_return;
    }
    if (route.kind != RouteKind::catalog && !storage::valid_repo_name(route.name)) {
        co_await fail(ex, Code::name_invalid, "invalid repository name");
        co_return;
    }
    // No request gets an answer from a half-loaded index. Manifest and blob
    // reads are answered from the tree meanwhile (no write has run yet, so it
    // is the truth); everything else waits for the index.
    bool read = req.method == "GET" || req.method == "HEAD";
    if (!(read && (route.kind == RouteKind::manifest || route.kind == RouteKind::blob))) {
        if (!co_await ready_.wait()) {
            // Stopping before the index finished loading: it never will in
            // this process. A retry reaches the next one.
            co_await fail(ex, Code::unavailable, "stopping before the index finished loading");
            co_return;
        }
    }
    co_await dispatch(ex, std::move(route));
}

reactor::Task<bool> Registry::route_mirror(http::Exchange& ex, Route& route) noexcept {
    const http::Request& req = ex.request();
    const bool read = req.method == "GET" || req.method == "HEAD";
    std::optional<std::string> ns = req.query_param("ns");
    const mirror::Upstream* owner = router_.owner(route.name);
    const bool upload = route.kind == RouteKind::upload || route.kind == RouteKind::upload_start;
    if (upload && read) {
        co_return true; // an upload's status is hosted state, under whatever name
    }
    if (!read && !ns && owner == nullptr) {
        co_return true; // a write outside every prefix: hosted, even with a default mirror
    }
    if (read && !ns && owner == nullptr) {
        // The default upstream takes only names not hosted here: that needs
        // the whole index.
        if (router_.default_upstream() == nullptr) {
            co_return true;
        }
        if (!co_await ready_.wait()) {
            co_await fail(ex, Code::unavailable, "stopping before the index finished loading");
            co_return false;
        }
    }
    const storage::Index& idx = store_.index();
    mirror::Route m =
        router_.route(route.name, ns ? std::optional<std::string_view>(*ns) : std::nullopt,
                      [&idx](std::string_view n) { return idx.repo_exists(n); });
    switch (m.kind) {
    case mirror::Route::Kind::hosted: co_return true;
    case mirror::Route::Kind::unknown_ns:
        co_await fail(ex, Code::name_unknown, "ns '" + *ns + "' is not a mirrored registry here");
        co_return false;
    case mirror::Route::Kind::mirrored: break;
    }
    // With neither prefix nor ns, a blob read goes to the default upstream
    // only for an image pulled through it already (a pull asks for the
    // manifest first): a client pushing a new hosted repository checks its
    // blobs with HEAD first, and those must not be fetched from upstream.
    if (read && !ns && owner == nullptr && route.kind == RouteKind::blob &&
        !idx.repo_exists(m.local_name)) {
        co_return true;
    }
    if (!read) {
        co_await fail(ex, Code::unsupported,
                      "'" + m.local_name + "' is a pull-through mirror of " + m.upstream->url +
                          ": pushes and deletes are refused");
        co_return false;
    }
    route.name = std::move(m.local_name);
    co_return true;
}

Task<void> Registry::dispatch(http::Exchange& ex, Route route) noexcept {
    const std::string& m = ex.request().method;
    if (m == "GET" || m == "HEAD") {
        co_await dispatch_read(ex, route);
        co_return;
    }
    switch (route.kind) {
    case RouteKind::manifest:
        if (m == "PUT") {
            co_await put_manifest(ex, route);
            co_return;
        }
        if (m == "DELETE") {
            co_await delete_manifest(ex, route);
            co_return;
        }
        break;
    case RouteKind::blob:
        if (m == "DELETE") {
            co_await delete_blob(ex, route);
            co_return;
        }
        break;
    case RouteKind::upload_start:
        if (m == "POST") {
            co_await start_upload(ex, route);
            co_return;
        }
        break;
    case RouteKind::upload: co_await dispatch_upload(ex, route); co_return;
    default: break;
    }
    co_await fail(ex, Code::unsupported, "method not allowed on this endpoint");
}

Task<void> Registry::dispatch_read(http::Exchange& ex, const Route& route) noexcept {
    switch (route.kind) {
    case RouteKind::catalog: co_await catalog(ex); co_return;
    case RouteKind::tags_list: co_await tags_list(ex, route); co_return;
    case RouteKind::referrers: co_await referrers(ex, route); co_return;
    case RouteKind::manifest: co_await get_manifest(ex, route); co_return;
    case RouteKind::blob: co_await get_blob(ex, route); co_return;
    case RouteKind::upload: co_await upload_status(ex, route); co_return;
    default: break;
    }
    co_await fail(ex, Code::unsupported, "method not allowed on this endpoint");
}

Task<void> Registry::dispatch_upload(http::Exchange& ex, const Route& route) noexcept {
    const std::string& m = ex.request().method;
    if (m == "PATCH") {
        co_await patch_upload(ex, route);
    } else if (m == "PUT") {
        co_await put_upload(ex, route);
    } else if (m == "DELETE") {
        co_await cancel_upload(ex, route);
    } else {
        co_await fail(ex, Code::unsupported, "method not allowed on this endpoint");
    }
}

} // namespace rp::registry
