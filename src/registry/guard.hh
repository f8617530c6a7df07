// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <memory>
#include <string>

#include "auth/access.hh"
#include "auth/basic.hh"
#include "auth/session.hh"
#include "auth/token.hh"
#include "http/request.hh"
#include "registry/routes.hh"

namespace rp::registry {

// Who may do what: the authentication scheme and the access rules, shared
// by every shard. Absent (a null guard), anyone may do anything.
struct Guard {
    std::string scheme = "htpasswd"; // htpasswd, certificate or token
    std::string realm = "ringport";
    bool certificate_users = true;                   // a verified client certificate names the user
    std::unique_ptr<auth::BasicAuthenticator> basic; // scheme htpasswd
    std::unique_ptr<auth::Access> access;
    // scheme token: what is trusted, and the built-in issuer when it is on
    // (it signs in with `basic` and the client certificate).
    auth::TokenConfig token;
    std::unique_ptr<auth::TokenVerifier> tokens;
    std::unique_ptr<auth::TokenIssuer> issuer;
};

// The scope a token needs for the request, as Distribution asks for it in
// its challenge ("repository:NAME:pull,push"); empty for /v2/.
std::string scope_of(const Route& route, std::string_view method);
// The actions that scope names (what a token must grant).
auth::Actions token_need(const Route& route, std::string_view method) noexcept;

// What a request needs, from its route and method: an action on its
// repository, a server-wide action, or (for /v2/) only a signed-in caller.
struct Need {
    enum class Kind { nothing, login, repository, server } kind = Kind::nothing;
    auth::Actions actions = 0;
};
Need need_of(const Route& route, std::string_view method) noexcept;
// Whether a request changes something at the asking of another site's page:
// an unsafe method with Sec-Fetch-Site cross-site or same-site, or an Origin
// other than the Host it was sent to. Clients other than browsers send
// neither header.
// `secure`: the request came over TLS (an http:// Origin is then another site).
bool cross_site_change(const http::Request& req, bool secure) noexcept;
// Whether the request writes (refused in read-only mode).
bool writes(const Route& route, std::string_view method) noexcept;

} // namespace rp::registry
