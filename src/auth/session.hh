// SPDX-License-Identifier: Apache-2.0
#pragma once

// The web UI's sign-in sessions. Signing in (POST /ringport/v1/session)
// checks a password as Basic auth does and gives the browser a session: a
// random token in an HttpOnly, SameSite=Strict cookie, short-lived (the
// [ui] session_ttl_s), kept in memory only (a restart signs everyone out),
// and a CSRF token that every change must carry in a header. A caller
// signed in by a client certificate has no session; its CSRF token is a
// keyed hash of its name.

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "auth/secret.hh"

namespace rp::auth {

// The cookie's name: over TLS with the __Host- prefix, which a browser
// accepts only from a secure page, for Path=/ and no Domain (a sibling
// host or a plain-HTTP page cannot plant one).
inline constexpr std::string_view session_cookie = "ringport_session";
inline constexpr std::string_view session_cookie_secure = "__Host-ringport_session";
inline std::string_view session_cookie_name(bool secure) noexcept {
    return secure ? session_cookie_secure : session_cookie;
}
inline constexpr std::string_view csrf_header = "X-Ringport-CSRF";

struct Session {
    std::string user;
    std::string csrf;
    std::string stamp; // what signed in (the password's hash): the caller checks it still holds
    std::int64_t expires_s = 0;
};

class Sessions {
  public:
    // At most `max` sessions, and `per_user` of one user (its oldest goes
    // first: one account cannot push everyone else's sessions out).
    Sessions(std::int64_t ttl_s, std::size_t max, std::size_t per_user = 16);
    Sessions(const Sessions&) = delete;
    Sessions& operator=(const Sessions&) = delete;

    // A new session for `user`; the oldest one goes when `max` are open.
    struct Created {
        std::string token; // the cookie's value
        Session session;
    };
    Created create(std::string user, std::string stamp, std::int64_t now_s);
    // The session a cookie's token names, unless unknown or expired.
    std::optional<Session> find(std::string_view token, std::int64_t now_s) const;
    void remove(std::string_view token);
    std::size_t size() const;
    std::int64_t ttl_s() const noexcept { return ttl_s_; }

    // The CSRF token of a caller without a session (a certificate's name).
    std::string csrf_for(std::string_view who) const;

  private:
    const std::int64_t ttl_s_;
    const std::size_t max_;
    const std::size_t per_user_;
    KeyedHash keyed_;
    mutable std::mutex mu_;
    std::unordered_map<std::string, Session> by_token_; // mu_
};

// A cookie's value in a Cookie header ("a=1; b=2"), or empty.
std::string_view cookie_value(std::string_view cookie_header, std::string_view name) noexcept;

// Whether a peer address ("127.0.0.1:5000", "[::1]:5000") is this machine.
bool loopback_peer(std::string_view peer) noexcept;

} // namespace rp::auth
