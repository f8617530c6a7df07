// SPDX-License-Identifier: Apache-2.0
// The built-in token issuer: Docker's token endpoint (GET with Basic
// credentials, `scope` repeated, `offline_token=true` for a refresh
// token) and the OAuth2 form (POST, grant_type password or refresh_token).
// It signs in with htpasswd or the client certificate and grants what the
// access rules allow, never more than was asked.
#include <ctime>

#include "registry/registry.hh"
#include "util/strings.hh"

namespace rp::registry {

using reactor::Task;

namespace {

using Form = std::vector<std::pair<std::string, std::string>>;

// application/x-www-form-urlencoded (also a query string): '+' is a space.
Form parse_form(std::string_view s) {
    Form out;
    for (int i = 0; i < 1000 && !s.empty(); ++i) {
        std::size_t amp = s.find('&');
        std::string_view kv = s.substr(0, amp);
        s = amp == std::string_view::npos ? std::string_view{} : s.substr(amp + 1);
        std::size_t eq = kv.find('=');
        std::string k(kv.substr(0, eq));
        std::string v(eq == std::string_view::npos ? std::string_view{} : kv.substr(eq + 1));
        for (char& c : k) {
            c = c == '+' ? ' ' : c;
        }
        for (char& c : v) {
            c = c == '+' ? ' ' : c;
        }
        auto dk = util::percent_decode(k);
        auto dv = util::percent_decode(v);
        if (dk && dv) {
            out.emplace_back(std::move(*dk), std::move(*dv));
        }
    }
    return out;
}

std::string first(const Form& f, std::string_view key) {
    for (const auto& [k, v] : f) {
        if (k == key) {
            return v;
        }
    }
    return {};
}

std::string quoted(std::string_view s) {
    std::string out = "\"";
    util::json_escape(out, s);
    out += '"';
    return out;
}

http::Response json(int status, std::string body) {
    http::Response r;
    r.status = status;
    r.add("Content-Type", "application/json");
    r.add("Cache-Control", "no-store");
    r.add("Pragma", "no-cache");
    r.body = std::move(body);
    return r;
}

http::Response oauth_error(int status, std::string_view error, std::string_view why) {
    return json(status,
                "{\"error\":" + quoted(error) + ",\"error_description\":" + quoted(why) + "}\n");
}

} // namespace

Task<void> Registry::issue_token(http::Exchange& ex) noexcept {
    const http::Request& req = ex.request();
    const bool post = req.method == "POST";
    if (!post && req.method != "GET") {
        co_await fail(ex, Code::unsupported, "the token endpoint takes GET and POST");
        co_return;
    }
    Form form;
    if (post) {
        auto body = co_await read_whole_body(ex, 65536, "body too large");
        if (!body) {
            const bool big = body.error().kind == util::Errc::too_large;
            co_await reply(ex, oauth_error(big ? 413 : 400, "invalid_request",
                                           big ? "body too large" : "unreadable body"));
            co_return;
        }
        form = parse_form(*body);
    } else {
        form = parse_form(req.query);
    }
    const auth::TokenConfig& tc = guard_->token;
    std::string service = first(form, "service");
    if (!service.empty() && service != tc.service) {
        co_await reply(ex, oauth_error(400, "invalid_request", "unknown service"));
        co_return;
    }
    std::vector<std::string> scopes;
    for (const auto& [k, v] : form) {
        if (k != "scope") {
            continue;
        }
        std::string_view rest = v; // POST: space-separated; GET: one per parameter
        for (int i = 0; i < 100 && !rest.empty(); ++i) {
            std::size_t sp = rest.find(' ');
            if (sp != 0 && scopes.size() < 32) {
                scopes.emplace_back(rest.substr(0, sp)); // bounded: a token stays small
            }
            rest = sp == std::string_view::npos ? std::string_view{} : rest.substr(sp + 1);
        }
    }
    // Who.
    auth::Identity who;
    std::string via = "password";
    bool offline = false;
    auto check_password = [&](auth::BasicCredentials cred) -> reactor::Task<int> {
        if (!guard_->basic) {
            co_return 401;
        }
        auto r = co_await guard_->basic->check(std::move(cred), ex.peer());
        if (r.outcome == auth::BasicAuthenticator::Outcome::rate_limited) {
            co_return 429;
        }
        if (r.outcome != auth::BasicAuthenticator::Outcome::ok) {
            co_return 401;
        }
        who.user = std::move(r.user);
        co_return 200;
    };
    if (post) {
        const std::string grant = first(form, "grant_type");
        offline = first(form, "access_type") == "offline";
        if (grant == "password") {
            int s = co_await check_password(
                auth::BasicCredentials{first(form, "username"), first(form, "password")});
            if (s != 200) {
                co_await reply(ex, oauth_error(s, s == 429 ? "slow_down" : "invalid_grant",
                                               s == 429 ? "too many failed logins"
                                                        : "invalid user name or password"));
                co_return;
            }
        } else if (grant == "refresh_token") {
            auto r = guard_->tokens->verify_refresh(first(form, "refresh_token"));
            if (!r || r->subject.empty()) {
                co_await reply(
                    ex, oauth_error(400, "invalid_grant", r ? "no subject" : r.error().detail));
                co_return;
            }
            // A password user must still be in the file; a certificate user
            // signs in with the certificate, checked on every connection.
            if (r->via == "password" && guard_->basic && !guard_->basic->knows(r->subject)) {
                co_await reply(ex, oauth_error(400, "invalid_grant", "no such user any more"));
                co_return;
            }
            who.user = std::move(r->subject);
            via = std::move(r->via);
            offline = true; // the refresh token is handed back
        } else {
            co_await reply(ex, oauth_error(400, "unsupported_grant_type",
                                           "grant_type must be password or refresh_token"));
            co_return;
        }
    } else {
        std::string_view header = req.header("Authorization");
        switch (auth::authorization_kind(header)) {
        case auth::HeaderKind::none:
            if (guard_->certificate_users && !ex.peer_subject().empty()) {
                who.user = ex.peer_subject();
                via = "certificate";
            }
            break;
        case auth::HeaderKind::basic: {
            auto cred = auth::parse_basic(header);
            int s = cred ? co_await check_password(std::move(*cred)) : 401;
            if (s != 200) {
                http::Response r = error_response(
                    s == 429 ? Code::too_many_requests : Code::unauthorized,
                    s == 429 ? "too many failed logins" : "invalid user name or password");
                if (s == 401) {
                    r.add("WWW-Authenticate", "Basic realm=" + quoted(guard_->realm));
                }
                co_await reply(ex, std::move(r));
                co_return;
            }
            break;
        }
        default: {
            http::Response r = error_response(Code::unauthorized, "Basic credentials expected");
            r.add("WWW-Authenticate", "Basic realm=" + quoted(guard_->realm));
            co_await reply(ex, std::move(r));
            co_return;
        }
        }
        offline = first(form, "offline_token") == "true";
    }
    ex.set_user(who.user);
    // What: each scope asked for, narrowed to what the rules grant.
    std::vector<auth::Grant> grants;
    std::string granted_scopes;
    for (const std::string& s : scopes) {
        auto sc = auth::parse_scope(s);
        if (!sc || (sc->type != "repository" && sc->type != "registry")) {
            continue;
        }
        auth::Actions asked = auth::token_actions(sc->type, sc->name, sc->actions);
        auth::Actions allowed = sc->type == "repository" ? guard_->access->granted(who, sc->name)
                                                         : guard_->access->granted_server(who);
        auth::Grant g{sc->type, sc->name, asked & allowed};
        if (g.actions == 0) {
            continue; // nothing granted: left out of the token
        }
        granted_scopes.append(granted_scopes.empty() ? "" : " ")
            .append(g.type)
            .append(":")
            .append(g.name)
            .append(":")
            .append(g.type == "registry" ? "*" : auth::action_names(g.actions));
        grants.push_back(std::move(g));
    }
    const std::int64_t now = now_s();
    std::string token = guard_->issuer->access_token(who.user, grants, now);
    if (token.empty()) {
        co_await fail(ex, Code::unknown, "could not sign a token");
        co_return;
    }
    std::string body = "{";
    if (!post) {
        body += "\"token\":" + quoted(token) + ",";
    }
    body += "\"access_token\":" + quoted(token);
    body += ",\"token_type\":\"Bearer\",\"expires_in\":" + std::to_string(tc.ttl_s);
    body += ",\"issued_at\":" + quoted(util::rfc3339(now));
    if (post) {
        body += ",\"scope\":" + quoted(granted_scopes);
    }
    if (offline && !who.anonymous()) {
        body += ",\"refresh_token\":" + quoted(guard_->issuer->refresh_token(who.user, via, now));
    }
    body += "}\n";
    co_await reply(ex, json(200, std::move(body)));
}

} // namespace rp::registry
