// SPDX-License-Identifier: Apache-2.0
// The web UI's sign-in: GET /ringport/v1/session says who the browser is
// signed in as (and gives the UI its CSRF token), POST signs in with a user
// name and password (as Basic auth checks them, with its rate limit), and
// DELETE signs out. See auth/session.hh.
#include <simdjson.h>

#include <ctime>

#include "registry/json.hh"
#include "registry/registry.hh"

namespace rp::registry {

using reactor::Task;

namespace {

constexpr std::size_t sign_in_body_max = 16384;

std::string cookie(std::string_view value, std::int64_t max_age_s, bool secure) {
    std::string c = std::string(auth::session_cookie_name(secure)) + "=" + std::string(value) +
                    "; Path=/; Max-Age=" + std::to_string(max_age_s) +
                    "; HttpOnly; SameSite=Strict";
    if (secure) {
        c += "; Secure";
    }
    return c;
}

http::Response bad_request(std::string_view detail) {
    http::Response r = error_response(Code::unsupported, detail);
    r.status = 400;
    return r;
}

} // namespace

bool Registry::passwords_sign_in() const noexcept {
    // Where the registry itself takes passwords: Basic auth, or the built-in
    // token issuer (never under certificates only, or an outside issuer).
    return guard_ != nullptr && guard_->basic &&
           (guard_->scheme == "htpasswd" || (guard_->scheme == "token" && guard_->issuer));
}

std::string_view Registry::session_token(const http::Exchange& ex) const {
    const http::Request& req = ex.request();
    if (!req.has_header("Cookie")) {
        return {};
    }
    return auth::cookie_value(req.header("Cookie"), auth::session_cookie_name(ex.secure()));
}

std::optional<auth::Session> Registry::session_of(const http::Exchange& ex) const {
    if (!sessions_ || !passwords_sign_in()) {
        return std::nullopt;
    }
    const std::string_view token = session_token(ex);
    if (token.empty()) {
        return std::nullopt;
    }
    std::optional<auth::Session> s = sessions_->find(token, now_s());
    // A user removed from the file, or a changed password, ends the session.
    if (s && guard_->basic->hash_of(s->user) != s->stamp) {
        sessions_->remove(token);
        return std::nullopt;
    }
    return s;
}

std::string Registry::sign_in_refusal(const http::Exchange& ex) const {
    if (guard_ == nullptr) {
        return "the registry has no authentication: everyone may do everything";
    }
    if (!passwords_sign_in()) {
        return guard_->scheme == "token"
                   ? "tokens come from the registry's token service, not from a password here"
                   : "this registry signs in by client certificate: the browser's certificate "
                     "signs you in by itself";
    }
    if (!ex.secure() && !auth::loopback_peer(ex.peer())) {
        return "this connection is plain HTTP from another machine: a password would cross the "
               "network in clear text. Sign in over HTTPS ([tls] certificate), or on this "
               "machine";
    }
    return {};
}

Task<void> Registry::session_endpoint(http::Exchange& ex) noexcept {
    const http::Request& req = ex.request();
    if (!sessions_) {
        co_await fail(ex, Code::not_found, "the web UI is off");
        co_return;
    }
    if (req.method == "POST") {
        co_await sign_in(ex);
        co_return;
    }
    const std::optional<auth::Session> s = session_of(ex);
    if (req.method == "DELETE") {
        // Signing out is a change: the session's own CSRF token.
        if (s && !auth::secret_equal(req.header(auth::csrf_header), s->csrf)) {
            co_await fail(ex, Code::denied, "signing out needs the session's CSRF token");
            co_return;
        }
        if (s) {
            sessions_->remove(session_token(ex));
            ex.set_user(s->user);
        }
        http::Response r = empty_response(204);
        r.add("Set-Cookie", cookie("", 0, ex.secure()));
        r.add("Cache-Control", "no-store");
        co_await reply(ex, std::move(r));
        co_return;
    }
    if (req.method != "GET" && req.method != "HEAD") {
        co_await fail(ex, Code::unsupported, "GET, POST or DELETE");
        co_return;
    }
    Json j;
    const std::string_view certificate = certificate_user(ex);
    if (s) {
        j.str("user", s->user)
            .str("via", "session")
            .str("csrf", s->csrf)
            .time("expires_at", s->expires_s);
    } else if (!certificate.empty()) {
        j.str("user", certificate)
            .str("via", "certificate")
            .str("csrf", sessions_->csrf_for(certificate))
            .null("expires_at");
    } else {
        j.null("user").null("via").null("csrf").null("expires_at");
    }
    j.str("auth", guard_ == nullptr ? std::string("none") : guard_->scheme);
    const std::string refusal = sign_in_refusal(ex);
    j.open("sign_in").boolean("available", refusal.empty());
    if (refusal.empty()) {
        j.null("reason");
    } else {
        j.str("reason", refusal);
    }
    j.close();
    // Where `docker pull` goes when the UI has an address of its own.
    if (ex.listener() == ui_listener && registry_port_ != 0) {
        j.open("registry");
        if (registry_host_.empty()) {
            j.null("host");
        } else {
            j.str("host", registry_host_);
        }
        j.num("port", std::uint64_t{registry_port_}).close();
    } else {
        j.null("registry");
    }
    co_await reply(ex, json_report(j.done()));
}

Task<void> Registry::sign_in(http::Exchange& ex) noexcept {
    const http::Request& req = ex.request();
    if (std::string why = sign_in_refusal(ex); !why.empty()) {
        // No password sign-in here at all (405), or not on this connection (403).
        co_await fail(ex, passwords_sign_in() ? Code::denied : Code::unsupported, why);
        co_return;
    }
    // JSON only: a form of another site cannot send it without a CORS
    // preflight, which this server never grants.
    if (!req.header("Content-Type").starts_with("application/json")) {
        co_await reply(ex, bad_request("sign in with a JSON body: {\"username\", \"password\"}"));
        co_return;
    }
    auto read = co_await read_whole_body(ex, sign_in_body_max, "the sign-in body is too large");
    if (!read) {
        if (read.error().kind == util::Errc::too_large) {
            co_await fail(ex, Code::too_large, read.error().detail);
        } else {
            co_await reply(ex, bad_request("unreadable body"));
        }
        co_return;
    }
    const std::string& body = *read;
    auth::BasicCredentials cred;
    {
        simdjson::dom::parser parser;
        simdjson::dom::element doc;
        std::string_view user;
        std::string_view password;
        if (parser.parse(body).get(doc) != simdjson::SUCCESS ||
            doc["username"].get_string().get(user) != simdjson::SUCCESS ||
            doc["password"].get_string().get(password) != simdjson::SUCCESS || user.empty()) {
            co_await reply(ex,
                           bad_request("sign in with a JSON body: {\"username\", \"password\"}"));
            co_return;
        }
        cred.user = std::string(user);
        cred.password = std::string(password);
    }
    ex.set_user(cred.user); // the access log and the audit record name who tried
    auto r = co_await guard_->basic->check(std::move(cred), ex.peer());
    if (r.outcome == auth::BasicAuthenticator::Outcome::rate_limited) {
        http::Response resp =
            error_response(Code::too_many_requests, "too many failed logins from this address");
        resp.add("Retry-After", std::to_string(r.retry_after_s));
        co_await reply(ex, std::move(resp));
        co_return;
    }
    if (r.outcome != auth::BasicAuthenticator::Outcome::ok) {
        // No WWW-Authenticate: a browser would answer it with its own dialog.
        co_await fail(ex, Code::unauthorized, "invalid user name or password");
        co_return;
    }
    // A new session each time (never the one a cookie brought: no fixation);
    // the browser's previous one ends.
    if (std::string_view old = session_token(ex); !old.empty()) {
        sessions_->remove(old);
    }
    const auth::Sessions::Created c =
        sessions_->create(r.user, guard_->basic->hash_of(r.user).value_or(""), now_s());
    Json j;
    j.str("user", c.session.user)
        .str("via", "session")
        .str("csrf", c.session.csrf)
        .time("expires_at", c.session.expires_s);
    http::Response resp = json_report(j.done());
    resp.add("Set-Cookie", cookie(c.token, sessions_->ttl_s(), ex.secure()));
    co_await reply(ex, std::move(resp));
}

} // namespace rp::registry
