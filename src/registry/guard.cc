// SPDX-License-Identifier: Apache-2.0
// Authentication and authorisation of each request, before anything is
// read or changed: a refused request changes nothing stored.
#include "registry/guard.hh"

#include "registry/registry.hh"
#include "storage/names.hh"
#include "util/log.hh"
#include "util/strings.hh"

namespace rp::registry {

using reactor::Task;

Need need_of(const Route& route, std::string_view method) noexcept {
    const bool read = method == "GET" || method == "HEAD";
    switch (route.kind) {
    case RouteKind::base: return {Need::Kind::login, 0};
    case RouteKind::catalog: return {Need::Kind::server, auth::catalog};
    case RouteKind::status:
    case RouteKind::gc:
    case RouteKind::retention:
    case RouteKind::scrub:
    case RouteKind::mirrors:
    case RouteKind::insights:
    case RouteKind::timeseries: return {Need::Kind::server, auth::admin};
    case RouteKind::repository:
    case RouteKind::repository_tag:
    case RouteKind::repository_manifest:
        // Reading what a repository holds is a pull; deleting is an admin's.
        if (read) {
            return {Need::Kind::repository, auth::pull};
        }
        return {Need::Kind::server, auth::admin};
    case RouteKind::repository_tags:
        if (read) {
            return {Need::Kind::repository, auth::pull};
        }
        return {Need::Kind::server, auth::admin};
    case RouteKind::repositories: return {Need::Kind::server, auth::catalog};
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

std::string scope_of(const Route& route, std::string_view method) {
    const Need n = need_of(route, method);
    switch (n.kind) {
    case Need::Kind::server:
        return n.actions == auth::catalog ? "registry:catalog:*"
               : n.actions == auth::admin ? "registry:admin:*"
                                          : "registry:metrics:*";
    case Need::Kind::repository: {
        if (!storage::valid_repo_name(route.name)) {
            return {}; // not a name: no scope to ask for (and nothing to echo)
        }
        const auth::Actions a = token_need(route, method);
        return "repository:" + route.name + ":" + auth::action_names(a);
    }
    default: return {};
    }
}

auth::Actions token_need(const Route& route, std::string_view method) noexcept {
    const Need n = need_of(route, method);
    // As Distribution: writing needs pull and push (a client that pushes
    // also reads: blob checks, mounts).
    return n.actions == auth::push ? (auth::pull | auth::push) : n.actions;
}

Task<void> Registry::challenge(http::Exchange& ex, std::string_view detail) noexcept {
    co_await challenge(ex, detail, {}, {});
}

std::string Registry::token_realm(const http::Exchange& ex) const {
    if (!guard_->token.realm.empty()) {
        return guard_->token.realm;
    }
    // The built-in issuer, on this listener: where the client reached us.
    std::string_view host = ex.request().header("Host");
    bool sane = !host.empty() && host.size() < 256 &&
                host.find_first_of("\"\\ /\t\r\n") == std::string_view::npos;
    return std::string(ex.secure() ? "https://" : "http://") +
           (sane ? std::string(host) : std::string("localhost")) + guard_->token.path;
}

namespace {

void quoted(std::string& out, std::string_view v) {
    out += '"';
    for (char c : v) {
        if (c == '"' || c == '\\') {
            out += '\\';
        }
        out += c;
    }
    out += '"';
}

} // namespace

Task<void> Registry::challenge(http::Exchange& ex, std::string_view detail, std::string_view scope,
                               std::string_view error) noexcept {
    if (guard_->scheme == "certificate") {
        // No WWW-Authenticate scheme asks for a certificate: refuse plainly.
        co_await fail(ex, Code::denied, "a client certificate is required");
        co_return;
    }
    http::Response r = error_response(Code::unauthorized, detail);
    std::string v;
    if (guard_->scheme == "token") {
        // Exactly as Distribution: realm, service, then scope and error when set.
        v = "Bearer realm=";
        quoted(v, token_realm(ex));
        v += ",service=";
        quoted(v, guard_->token.service);
        if (!scope.empty()) {
            v += ",scope=";
            quoted(v, scope);
        }
        if (!error.empty()) {
            v += ",error=";
            quoted(v, error);
        }
    } else {
        v = "Basic realm=";
        quoted(v, guard_->realm);
    }
    // The UI's own requests (X-Ringport-UI) get no challenge: a browser
    // would answer one with its own password dialog, not the UI's sign-in.
    if (!ex.request().has_header("X-Ringport-UI")) {
        r.add("WWW-Authenticate", v);
    }
    co_await reply(ex, std::move(r));
}

namespace {

// The token of an `Authorization: Bearer ...` value.
std::string_view bearer_token(std::string_view header) noexcept {
    return util::trim(header.substr(header.find(' ') + 1));
}

} // namespace

Task<bool> Registry::authorize_token(http::Exchange& ex, const Route& route) noexcept {
    const http::Request& req = ex.request();
    const Need need = need_of(route, req.method);
    const std::string scope = scope_of(route, req.method);
    std::string_view header = req.header("Authorization");
    if (auth::authorization_kind(header) != auth::HeaderKind::bearer) {
        co_await challenge(ex, "authentication required", scope, {});
        co_return false;
    }
    auto t = guard_->tokens->verify(bearer_token(header));
    if (!t) {
        co_await challenge(ex, t.error().detail, scope, "invalid_token");
        co_return false;
    }
    ex.set_user((*t)->subject);
    bool ok = false;
    switch (need.kind) {
    case Need::Kind::login: ok = true; break;
    case Need::Kind::server: ok = ((*t)->on_server() & need.actions) == need.actions; break;
    case Need::Kind::repository: {
        const auth::Actions want = token_need(route, req.method);
        ok = ((*t)->on_repository(route.name) & want) == want;
        break;
    }
    case Need::Kind::nothing: ok = true; break;
    }
    if (!ok) {
        co_await challenge(ex, "the token does not grant this", scope, "insufficient_scope");
    }
    co_return ok;
}

Task<bool> Registry::authorize(http::Exchange& ex, const Route& route) noexcept {
    const http::Request& req = ex.request();
    const Need need = need_of(route, req.method);
    if (need.kind == Need::Kind::nothing) {
        co_return true;
    }
    // The web UI's session (its cookie), when no credentials are sent: the
    // rules decide for its user, under every scheme.
    if (!req.has_header("Authorization")) {
        if (std::optional<auth::Session> s = session_of(ex)) {
            co_return co_await admit(ex, route, need, auth::Identity{s->user}, s->csrf);
        }
    }
    if (guard_->scheme == "token") {
        co_return co_await authorize_token(ex, route);
    }
    // Who is asking.
    auth::Identity who;
    std::string csrf;
    std::string_view header = req.header("Authorization");
    switch (auth::authorization_kind(header)) {
    case auth::HeaderKind::none:
        if (std::string_view user = certificate_user(ex); !user.empty()) {
            who.user = user;
            // A browser sends the certificate with any page's request: its
            // changes carry the CSRF token the UI was given.
            if (sessions_ && req.has_header("Sec-Fetch-Site")) {
                csrf = sessions_->csrf_for(who.user);
            }
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
    co_return co_await admit(ex, route, need, who, csrf);
}

std::string_view Registry::certificate_user(const http::Exchange& ex) const noexcept {
    const bool admits = guard_ != nullptr && guard_->scheme != "token" && guard_->certificate_users;
    return admits ? std::string_view(ex.peer_subject()) : std::string_view();
}

Task<bool> Registry::admit(http::Exchange& ex, const Route& route, const Need& need,
                           const auth::Identity& who, std::string_view csrf) noexcept {
    const http::Request& req = ex.request();
    ex.set_user(who.user);
    const bool safe = req.method == "GET" || req.method == "HEAD";
    if (!safe && !csrf.empty() && !auth::secret_equal(req.header(auth::csrf_header), csrf)) {
        co_await fail(ex, Code::denied,
                      "a change from the web UI needs its CSRF token (X-Ringport-CSRF)");
        co_return false;
    }
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

bool cross_site_change(const http::Request& req, bool secure) noexcept {
    if (req.method == "GET" || req.method == "HEAD" || req.method == "OPTIONS") {
        return false;
    }
    const std::string_view site = req.header("Sec-Fetch-Site");
    if (site == "cross-site" || site == "same-site") {
        return true;
    }
    if (!req.has_header("Origin")) {
        return false;
    }
    // "null" (a sandboxed or opaque origin) and any host but the one asked
    // are another site's page.
    std::string_view origin = req.header("Origin");
    const std::string_view scheme = secure ? "https://" : "http://";
    if (!origin.starts_with(scheme)) {
        return true;
    }
    origin.remove_prefix(scheme.size());
    return origin.empty() || !util::iequals(origin, req.header("Host"));
}

std::function<bool(std::string_view)> Registry::pull_filter(const http::Exchange& ex) const {
    if (!guard_) {
        return [](std::string_view) { return true; };
    }
    if (guard_->scheme == "token" && ex.request().has_header("Authorization")) {
        // The token decides, as for the request itself: looked up once (in
        // the verifier's cache, it was verified already), not per repository.
        std::string_view header = ex.request().header("Authorization");
        std::shared_ptr<const auth::VerifiedToken> token;
        if (auth::authorization_kind(header) == auth::HeaderKind::bearer) {
            auto t = guard_->tokens->verify(bearer_token(header));
            if (t) {
                token = std::move(*t);
            }
        }
        return [token](std::string_view repo) {
            return token && (token->on_repository(repo) & auth::pull) != 0;
        };
    }
    return [this, &ex](std::string_view repo) { return listed_for(ex, repo); };
}

bool Registry::listed_for(const http::Exchange& ex, std::string_view repo) const noexcept {
    return guard_ == nullptr ||
           (guard_->access->granted(auth::Identity{ex.user()}, repo) & auth::pull) != 0;
}

bool Registry::pulls_everything(const http::Exchange& ex) const noexcept {
    if (guard_ == nullptr) {
        return true;
    }
    // A token names its repositories one by one: never everything. A UI
    // session (no Authorization header) follows the rules, as it was admitted.
    const bool token = guard_->scheme == "token" && ex.request().has_header("Authorization");
    return !token && guard_->access->pulls_everything(auth::Identity{ex.user()});
}

} // namespace rp::registry
