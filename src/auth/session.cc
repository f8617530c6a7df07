// SPDX-License-Identifier: Apache-2.0
#include "auth/session.hh"

#include <openssl/rand.h>

#include <algorithm>

#include "auth/jwt.hh"
#include "util/assert.hh"
#include "util/strings.hh"

namespace rp::auth {

namespace {

std::string random_token() {
    unsigned char b[32];
    RP_ASSERT(RAND_bytes(b, sizeof b) == 1);
    return base64url_encode(std::string_view(reinterpret_cast<const char*>(b), sizeof b));
}

} // namespace

Sessions::Sessions(std::int64_t ttl_s, std::size_t max, std::size_t per_user)
    : ttl_s_(ttl_s), max_(std::max<std::size_t>(max, 1)),
      per_user_(std::max<std::size_t>(per_user, 1)) {}

Sessions::Created Sessions::create(std::string user, std::string stamp, std::int64_t now_s) {
    Created c{random_token(),
              Session{std::move(user), random_token(), std::move(stamp), now_s + ttl_s_}};
    std::lock_guard lk(mu_);
    // The user's own oldest goes first when it has per_user_ open.
    std::size_t mine = 0;
    auto oldest_mine = by_token_.end();
    for (auto it = by_token_.begin(); it != by_token_.end(); ++it) {
        if (it->second.user == c.session.user) {
            ++mine;
            if (oldest_mine == by_token_.end() ||
                it->second.expires_s < oldest_mine->second.expires_s) {
                oldest_mine = it;
            }
        }
    }
    if (mine >= per_user_) {
        by_token_.erase(oldest_mine);
    }
    if (by_token_.size() >= max_) {
        // The expired go first; then, if still full, the one nearest its end.
        std::erase_if(by_token_, [now_s](const auto& kv) { return kv.second.expires_s <= now_s; });
        if (by_token_.size() >= max_) {
            auto oldest = std::min_element(by_token_.begin(), by_token_.end(),
                                           [](const auto& a, const auto& b) {
                                               return a.second.expires_s < b.second.expires_s;
                                           });
            by_token_.erase(oldest);
        }
    }
    by_token_.emplace(c.token, c.session);
    return c;
}

std::optional<Session> Sessions::find(std::string_view token, std::int64_t now_s) const {
    if (token.empty() || token.size() > 128) {
        return std::nullopt;
    }
    std::lock_guard lk(mu_);
    auto it = by_token_.find(std::string(token));
    if (it == by_token_.end() || it->second.expires_s <= now_s) {
        return std::nullopt;
    }
    return it->second;
}

void Sessions::remove(std::string_view token) {
    std::lock_guard lk(mu_);
    by_token_.erase(std::string(token));
}

std::size_t Sessions::size() const {
    std::lock_guard lk(mu_);
    return by_token_.size();
}

std::string Sessions::csrf_for(std::string_view who) const {
    const auto h = keyed_("csrf", who);
    return base64url_encode(std::string_view(reinterpret_cast<const char*>(h.data()), h.size()));
}

std::string_view cookie_value(std::string_view header, std::string_view name) noexcept {
    for (int i = 0; i < 256 && !header.empty(); ++i) {
        const auto semi = header.find(';');
        const std::string_view pair = util::trim(header.substr(0, semi));
        const auto eq = pair.find('=');
        if (eq != std::string_view::npos && util::trim(pair.substr(0, eq)) == name) {
            std::string_view v = util::trim(pair.substr(eq + 1));
            if (v.size() >= 2 && v.front() == '"' && v.back() == '"') {
                v = v.substr(1, v.size() - 2);
            }
            return v;
        }
        if (semi == std::string_view::npos) {
            break;
        }
        header.remove_prefix(semi + 1);
    }
    return {};
}

bool loopback_peer(std::string_view peer) noexcept {
    if (peer.starts_with("[")) {
        const std::string_view host = peer.substr(1, peer.find(']') - 1);
        return host == "::1" || host.starts_with("::ffff:127.");
    }
    return peer.starts_with("127.");
}

} // namespace rp::auth
