// SPDX-License-Identifier: Apache-2.0
#include "ui/ui.hh"

#include <algorithm>
#include <vector>

#include "ui/assets.hh"
#include "util/strings.hh"

namespace rp::ui {

namespace {

constexpr std::string_view assets_prefix = "/ui/assets/";
constexpr std::string_view app_page = "index.html";
constexpr std::string_view list_preload =
    "</ringport/v1/repositories?sort=name&offset=0&limit=50>; rel=preload; as=fetch; crossorigin";

void common_headers(http::Response& r) {
    r.add("Content-Security-Policy", std::string(content_security_policy));
    r.add("X-Content-Type-Options", "nosniff");
    r.add("X-Frame-Options", "DENY");
    r.add("Referrer-Policy", "no-referrer");
    r.add("Cross-Origin-Opener-Policy", "same-origin");
    r.add("Cross-Origin-Resource-Policy", "same-origin");
}

http::Response plain(int status, std::string_view text) {
    http::Response r;
    r.status = status;
    common_headers(r);
    r.add("Content-Type", "text/plain; charset=utf-8");
    r.add("Cache-Control", "no-store");
    r.body = text;
    return r;
}

} // namespace

const Asset* find_asset(std::string_view name) noexcept {
    const std::span<const Asset> all = assets();
    const auto it = std::lower_bound(all.begin(), all.end(), name,
                                     [](const Asset& a, std::string_view n) { return a.name < n; });
    return it != all.end() && it->name == name ? &*it : nullptr;
}

bool is_ui_path(std::string_view path) noexcept {
    return path == "/ui" || path.starts_with("/ui/");
}

bool accepts_gzip(const http::Request& req) {
    const std::vector<std::string_view> items = req.header_list("Accept-Encoding");
    return std::any_of(items.begin(), items.end(), [](std::string_view item) {
        const auto semi = item.find(';');
        const std::string_view coding = util::trim(item.substr(0, semi));
        if (!util::iequals(coding, "gzip") && coding != "*") {
            return false;
        }
        if (semi == std::string_view::npos) {
            return true;
        }
        // "q=0", "q=0.0", "q=0.000" refuse it; any other weight accepts.
        std::string_view q = util::trim(item.substr(semi + 1));
        if (!(q.starts_with("q=") || q.starts_with("Q="))) {
            return true;
        }
        q.remove_prefix(2);
        return q.find_first_not_of("0.") != std::string_view::npos;
    });
}

bool etag_listed(const http::Request& req, std::string_view etag) {
    const std::vector<std::string_view> items = req.header_list("If-None-Match");
    return std::any_of(items.begin(), items.end(), [etag](std::string_view item) {
        if (item == "*") {
            return true;
        }
        if (item.starts_with("W/")) {
            item.remove_prefix(2); // If-None-Match compares weakly (RFC 9110 13.1.2)
        }
        return item == etag;
    });
}

http::Response serve(const http::Request& req, bool preload_list) {
    if (req.method != "GET" && req.method != "HEAD") {
        http::Response r = plain(405, "method not allowed\n");
        r.add("Allow", "GET, HEAD");
        return r;
    }
    if (req.path == "/ui") {
        http::Response r = plain(308, "");
        r.add("Location", req.query.empty() ? "/ui/" : "/ui/?" + req.query);
        return r;
    }
    std::string_view name = app_page;
    if (req.path.starts_with(assets_prefix)) {
        name = std::string_view(req.path).substr(assets_prefix.size());
    }
    const Asset* a = find_asset(name);
    if (a == nullptr) {
        return plain(404, "not found\n");
    }
    http::Response r;
    common_headers(r);
    r.add("ETag", std::string(a->etag));
    // The page names its files with their version (?v=, the first 64 bits of
    // the ETag's digest): such a URL never changes, and is cached for good.
    // The page itself, and any other URL, is revalidated each time.
    const bool versioned = name != app_page && req.query.size() == 18 &&
                           req.query.starts_with("v=") &&
                           a->etag.substr(1, 16) == std::string_view(req.query).substr(2);
    r.add("Cache-Control", versioned ? "public, max-age=31536000, immutable" : "no-cache");
    r.add("Vary", "Accept-Encoding");
    if (etag_listed(req, a->etag)) {
        r.status = 304;
        r.omit_body = true;
        return r;
    }
    if (preload_list && name == app_page && req.query.empty() &&
        (req.path == "/ui/" || req.path == "/ui/repositories" || req.path == "/ui/repositories/")) {
        // The landing page's data: fetched while the app's files load, not
        // after (repositories.js asks for exactly this URL first).
        r.add("Link", std::string(list_preload));
    }
    r.add("Content-Type", std::string(a->type));
    if (accepts_gzip(req)) {
        r.add("Content-Encoding", "gzip");
        r.body = a->gzip;
    } else {
        r.body = a->body;
    }
    return r;
}

} // namespace rp::ui
