// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "auth/access.hh"
#include "auth/jwt.hh"
#include "util/result.hh"

using X509_STORE = struct x509_store_st;

namespace rp::auth {

// Docker registry token authentication (the protocol Distribution's
// `auth.token` speaks): what the registry trusts and, when it issues
// tokens itself, how.
struct TokenConfig {
    std::string realm; // the token endpoint's URL ("": the built-in issuer's, from Host)
    std::string service = "ringport";
    std::string issuer = "ringport";
    std::string rootcertbundle; // PEM certificates: their keys, and roots for x5c chains
    std::string jwks;           // a JWKS file of keys
    int leeway_s = 60;          // clock skew allowed on exp, nbf and iat
    int max_lifetime_s = 86400; // a token whose exp is further away is refused
    // The built-in issuer.
    bool issue = false;
    std::string path = "/auth/token";
    std::string signing_key; // PEM private key ("": a fresh P-256 key at each start)
    int ttl_s = 300;
    int refresh_ttl_s = 7 * 86400;
};

// One entry of a token's `access` claim, with its actions as a set.
struct Grant {
    std::string type; // repository or registry
    std::string name;
    Actions actions = 0;
};

struct VerifiedToken {
    std::string subject;
    std::vector<Grant> access;
    std::int64_t exp = 0;
    // What the token allows on a repository, and server-wide.
    Actions on_repository(std::string_view name) const noexcept;
    Actions on_server() const noexcept;
};

// A scope as clients ask for it ("repository:library/alpine:pull,push",
// "registry:catalog:*"); the name may hold ':' (a port).
struct Scope {
    std::string type;
    std::string name;
    std::vector<std::string> actions;
};
std::optional<Scope> parse_scope(std::string_view s);
// Token action words to the set ("*" is all of that resource's).
Actions token_actions(std::string_view type, std::string_view name,
                      const std::vector<std::string>& words) noexcept;

// Verifies bearer tokens: signature with an allowed algorithm and a
// trusted key of the right kind (by x5c chain to the root bundle, by kid,
// or any trusted key that fits), then iss, aud, exp, nbf, iat, lifetime.
// A verified token is cached by its whole text until it expires.
class TokenVerifier {
  public:
    static util::Result<std::unique_ptr<TokenVerifier>> create(const TokenConfig& cfg,
                                                               const Pkey& own_key);
    ~TokenVerifier();
    TokenVerifier(const TokenVerifier&) = delete;
    TokenVerifier& operator=(const TokenVerifier&) = delete;

    // The token's grants, or why it is refused (for error_description).
    util::Result<std::shared_ptr<const VerifiedToken>> verify(std::string_view token);
    // A refresh token of this issuer (its own key only): its subject and
    // how they signed in, or why not.
    struct Refresh {
        std::string subject;
        std::string via;
    };
    util::Result<Refresh> verify_refresh(std::string_view token);
    std::uint64_t signature_checks() const noexcept {
        return checks_.load(std::memory_order_relaxed);
    }

  private:
    explicit TokenVerifier(const TokenConfig& cfg) : cfg_(cfg) {}
    util::Result<std::shared_ptr<VerifiedToken>> check(std::string_view token, bool refresh,
                                                       std::string* via = nullptr);
    util::Result<EVP_PKEY*> key_for(Alg alg, std::string_view header_json, std::vector<Pkey>& hold);

    TokenConfig cfg_;
    std::vector<NamedKey> keys_;
    Pkey own_; // the built-in issuer's key: the only one refresh tokens may use
    X509_STORE* roots_ = nullptr;
    std::mutex mu_;
    // Keyed by the SHA-256 of the whole token: bounded memory per entry.
    std::unordered_map<std::string, std::shared_ptr<const VerifiedToken>> cache_;
    std::atomic<std::uint64_t> checks_{0};
};

// Signs tokens for the built-in issuer.
class TokenIssuer {
  public:
    static util::Result<std::unique_ptr<TokenIssuer>> create(const TokenConfig& cfg);
    Pkey key() const { return key_; }
    // An access token for `subject` with `grants`; "" on failure.
    std::string access_token(const std::string& subject, const std::vector<Grant>& grants,
                             std::int64_t now_s) const;
    // `via` is how the subject signed in ("password" or "certificate").
    std::string refresh_token(const std::string& subject, std::string_view via,
                              std::int64_t now_s) const;

  private:
    std::string signed_token(const std::string& payload_json) const;
    TokenConfig cfg_;
    Pkey key_;
    Alg alg_ = Alg::es256;
    std::string kid_;
};

} // namespace rp::auth
