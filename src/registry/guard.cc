// SPDX-License-Identifier: Apache-2.0
// Authentication and authorisation of each request, before anything is
// read or changed: a refused request changes nothing stored.
#include "registry/guard.hh"

#include "registry/registry.hh"
#include "util/log.hh"

namespace rp::registry {

using reactor::Task;

Need need_of(const Route& route, std::string_view method) noexcept {
    const bool read = method == "GET" || method == "HEAD";
    switch (route.kind) {
    case RouteKind::base: return {Need::Kind::login, 0};
    case RouteKind::catalog: return {Need::Kind::server, auth::catalog};
    case RouteKind::status: return {Need::Kind::server, auth::admin};
    case RouteKind::metrics: return {Need::Kind::server, auth::metrics};
    case RouteKind::tags_list:
    case RouteKind::referrers: return {Need::Kind::repository, auth::pull};
    case RouteKind::manifest:
    case RouteKind::blob:
        if (read) {
            return {Need::Kind::repository, auth::pull};
        }
        return {Need::Kind::repository, method == "DELETE" ? auth::del : auth::push};
    case RouteKind::upload_start:
    case RouteKind::upload: return {Need::Kind::repository, auth::push};
    default: return {};
    }
}

bool writes(const Route& route, std::string_view method) noexcept {
    if (method == "GET" || method == "HEAD") {
        return false;
    }
    switch (route.kind) {
    case RouteKind::manifest:
    case RouteKind::blob:
    case RouteKind::upload_start:
    case RouteKind::upload: return true;
    default: return false;
    }
}

Task<void> Registry::challenge(http::Exchange& ex, std::string_view detail) noexcept {
    if (guard_->scheme == "certificate") {
        // No WWW-Authenticate scheme asks for a certificate: refuse plainly.
        co_await fail(ex, Code::denied, "a client certificate is required");
        co_return;
    }
    http::Response r = error_response(Code::unauthorized, detail);
    if (guard_->scheme == "htpasswd") {
        std::string v = "Basic realm=\"";
        for (char c : guard_->realm) {
            if (c == '"' || c == '\\') {
                v += '\\';
            }
            v += c;
        }
        v += '"';
        r.add("WWW-Authenticate", v);
    }
    co_await reply(ex, std::move(r));
}

Task<bool> Registry::authorize(http::Exchange& ex, const Route& route) noexcept {
    const http::Request& req = ex.request();
    const Need need = need_of(route, req.method);
    if (need.kind == Need::Kind::nothing) {
        co_return true;
    }
    // Who is asking.
    auth::Identity who;
    std::string_view header = req.header("Authorization");
    switch (auth::authorization_kind(header)) {
    case auth::HeaderKind::none:
        if (guard_->certificate_users && !ex.peer_subject().empty()) {
            who.user = ex.peer_subject();
        }
        break;
    case auth::HeaderKind::basic: {
        auto cred = guard_->scheme == "htpasswd" ? auth::parse_basic(header) : std::nullopt;
        if (!cred) {
            co_await challenge(ex, "malformed or unsupported credentials");
            co_return false;
        }
        auto r = co_await guard_->basic->check(std::move(*cred), ex.peer());
        if (r.outcome == auth::BasicAuthenticator::Outcome::rate_limited) {
            http::Response resp =
                error_response(Code::too_many_requests, "too many failed logins from this address");
            resp.add("Retry-After", std::to_string(r.retry_after_s));
            co_await reply(ex, std::move(resp));
            co_return false;
        }
        if (r.outcome != auth::BasicAuthenticator::Outcome::ok) {
            co_await challenge(ex, "invalid user name or password");
            co_return false;
        }
        who.user = std::move(r.user);
        break;
    }
    case auth::HeaderKind::bearer:
    case auth::HeaderKind::malformed:
        co_await challenge(ex, "malformed or unsupported credentials");
        co_return false;
    }
    ex.set_user(who.user);
    // What they may do.
    bool ok = false;
    switch (need.kind) {
    case Need::Kind::login: ok = !who.anonymous(); break;
    case Need::Kind::server:
        ok = (guard_->access->granted_server(who) & need.actions) == need.actions;
        break;
    case Need::Kind::repository:
        ok = (guard_->access->granted(who, route.name) & need.actions) == need.actions;
        break;
    case Need::Kind::nothing: ok = true; break;
    }
    if (ok) {
        co_return true;
    }
    if (who.anonymous()) {
        co_await challenge(ex, "authentication required");
    } else {
        co_await fail(ex, Code::denied);
    }
    co_return false;
}

bool Registry::may_pull(const http::Exchange& ex, std::string_view repo) const noexcept {
    if (!guard_) {
        return true;
    }
    auth::Identity who{ex.user()};
    return (guard_->access->granted(who, repo) & auth::pull) != 0;
}

} // namespace rp::registry
