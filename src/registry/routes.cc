// SPDX-License-Identifier: Apache-2.0
#include "registry/routes.hh"

namespace rp::registry {

namespace {

bool ends_with(std::string_view s, std::string_view suffix) noexcept {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// "<name>/<keyword>/<last>" where <last> has no '/': fills name and ref.
bool split_keyword(std::string_view rest, std::string_view keyword, Route& r) {
    std::string needle = "/" + std::string(keyword) + "/";
    auto at = rest.rfind(needle);
    if (at == std::string_view::npos || at == 0) {
        return false;
    }
    std::string_view last = rest.substr(at + needle.size());
    if (last.empty() || last.find('/') != std::string_view::npos) {
        return false;
    }
    r.name = std::string(rest.substr(0, at));
    r.ref = std::string(last);
    return true;
}

} // namespace

Route match_route(std::string_view path) {
    Route r;
    if (path == "/healthz") {
        r.kind = RouteKind::healthz;
        return r;
    }
    if (path == "/readyz") {
        r.kind = RouteKind::readyz;
        return r;
    }
    if (path == "/ringport/v1/status") {
        r.kind = RouteKind::status;
        return r;
    }
    if (path == "/ringport/v1/gc") {
        r.kind = RouteKind::gc;
        return r;
    }
    if (path == "/ringport/v1/retention") {
        r.kind = RouteKind::retention;
        return r;
    }
    if (path == "/ringport/v1/scrub") {
        r.kind = RouteKind::scrub;
        return r;
    }
    if (path == "/ringport/v1/mirrors") {
        r.kind = RouteKind::mirrors;
        return r;
    }
    if (path == "/ringport/v1/insights") {
        r.kind = RouteKind::insights;
        return r;
    }
    if (path == "/ringport/v1/session") {
        r.kind = RouteKind::session;
        return r;
    }
    if (path == "/ringport/v1/timeseries") {
        r.kind = RouteKind::timeseries;
        return r;
    }
    if (path == "/ringport/v1/repositories") {
        r.kind = RouteKind::repositories;
        return r;
    }
    constexpr std::string_view repositories = "/ringport/v1/repositories/";
    if (path.starts_with(repositories) && path.size() > repositories.size()) {
        // "<name>/-/<what>": a name's components start with a letter or
        // digit, so "-" is never one of them.
        std::string_view rest = path.substr(repositories.size());
        auto sep = rest.find("/-/");
        r.kind = RouteKind::repository;
        r.name = std::string(rest.substr(0, sep));
        if (sep == std::string_view::npos) {
            return r;
        }
        std::string_view what = rest.substr(sep + 3);
        if (what == "tags") {
            r.kind = RouteKind::repository_tags;
        } else if (what.starts_with("tags/") && what.size() > 5 &&
                   what.find('/', 5) == std::string_view::npos) {
            r.kind = RouteKind::repository_tag;
            r.ref = std::string(what.substr(5));
        } else if (what.starts_with("manifests/") && what.size() > 10 &&
                   what.find('/', 10) == std::string_view::npos) {
            r.kind = RouteKind::repository_manifest;
            r.ref = std::string(what.substr(10));
        } else {
            r = Route{}; // not_found
        }
        return r;
    }
    if (path == "/ui" || path.starts_with("/ui/")) {
        r.kind = RouteKind::ui;
        return r;
    }
    if (path == "/metrics") {
        r.kind = RouteKind::metrics;
        return r;
    }
    if (path == "/v2" || path == "/v2/") {
        r.kind = RouteKind::base;
        return r;
    }
    constexpr std::string_view prefix = "/v2/";
    if (path.substr(0, prefix.size()) != prefix) {
        return r;
    }
    std::string_view rest = path.substr(prefix.size());
    if (rest == "_catalog") {
        r.kind = RouteKind::catalog;
        return r;
    }
    if (ends_with(rest, "/tags/list") && rest.size() > 10) {
        r.kind = RouteKind::tags_list;
        r.name = std::string(rest.substr(0, rest.size() - 10));
        return r;
    }
    for (std::string_view s :
         {std::string_view("/blobs/uploads/"), std::string_view("/blobs/uploads")}) {
        if (ends_with(rest, s) && rest.size() > s.size()) {
            r.kind = RouteKind::upload_start;
            r.name = std::string(rest.substr(0, rest.size() - s.size()));
            return r;
        }
    }
    if (split_keyword(rest, "manifests", r)) {
        r.kind = RouteKind::manifest;
    } else if (split_keyword(rest, "referrers", r)) {
        r.kind = RouteKind::referrers;
    } else if (split_keyword(rest, "blobs/uploads", r)) {
        r.kind = RouteKind::upload;
    } else if (split_keyword(rest, "blobs", r)) {
        r.kind = RouteKind::blob;
    }
    return r;
}

bool served_to_ui(RouteKind kind, std::string_view method) noexcept {
    switch (kind) {
    case RouteKind::blob: return method == "GET" || method == "HEAD";
    case RouteKind::healthz:
    case RouteKind::readyz:
    case RouteKind::status:
    case RouteKind::gc:
    case RouteKind::retention:
    case RouteKind::scrub:
    case RouteKind::repository:
    case RouteKind::repositories:
    case RouteKind::repository_tags:
    case RouteKind::repository_tag:
    case RouteKind::repository_manifest:
    case RouteKind::insights:
    case RouteKind::timeseries:
    case RouteKind::mirrors:
    case RouteKind::ui:
    case RouteKind::session: return true;
    default: return false;
    }
}

} // namespace rp::registry
