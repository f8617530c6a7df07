// SPDX-License-Identifier: Apache-2.0
#include "auth/token.hh"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <simdjson.h>

#include <ctime>

#include "util/files.hh"
#include "util/strings.hh"

namespace rp::auth {

using util::Errc;
using util::Error;
using util::Result;
namespace dom = simdjson::dom;

namespace {

std::int64_t now_s() { return static_cast<std::int64_t>(std::time(nullptr)); }

dom::parser& parser() {
    thread_local dom::parser p;
    return p;
}

Error refused(std::string why) { return Error::of(Errc::invalid, std::move(why)); }

// A JSON number claim as whole seconds; nullopt when absent, error when not a number.
Result<std::optional<std::int64_t>> seconds_claim(dom::object o, const char* name) {
    dom::element e;
    if (o[name].get(e) != simdjson::SUCCESS) {
        return std::optional<std::int64_t>{};
    }
    std::int64_t i = 0;
    double d = 0;
    if (e.get_int64().get(i) == simdjson::SUCCESS) {
        return std::optional<std::int64_t>{i};
    }
    if (e.get_double().get(d) == simdjson::SUCCESS && d > -1e15 && d < 1e15) {
        return std::optional<std::int64_t>{static_cast<std::int64_t>(d)};
    }
    return refused(std::string(name) + " is not a number");
}

std::string json_string(std::string_view s) {
    std::string out = "\"";
    util::json_escape(out, s);
    out += '"';
    return out;
}

} // namespace

// ---- scopes and grants ------------------------------------------------------

std::optional<Scope> parse_scope(std::string_view s) {
    std::size_t first = s.find(':');
    std::size_t last = s.rfind(':');
    if (first == std::string_view::npos || first == last || first == 0 || last + 1 > s.size()) {
        return std::nullopt;
    }
    Scope sc;
    sc.type = std::string(s.substr(0, first));
    sc.name = std::string(s.substr(first + 1, last - first - 1));
    if (sc.name.empty()) {
        return std::nullopt;
    }
    std::string_view acts = s.substr(last + 1);
    while (!acts.empty()) {
        std::size_t comma = acts.find(',');
        std::string_view a = acts.substr(0, comma);
        if (!a.empty()) {
            sc.actions.emplace_back(a);
        }
        acts = comma == std::string_view::npos ? std::string_view{} : acts.substr(comma + 1);
    }
    return sc;
}

Actions token_actions(std::string_view type, std::string_view name,
                      const std::vector<std::string>& words) noexcept {
    Actions out = 0;
    if (type == "repository") {
        for (const std::string& w : words) {
            out |= w == "pull"     ? pull
                   : w == "push"   ? push
                   : w == "delete" ? del
                   : w == "*"      ? (pull | push | del)
                                   : 0;
        }
        return out;
    }
    if (type == "registry") {
        Actions which = name == "catalog"   ? catalog
                        : name == "admin"   ? admin
                        : name == "metrics" ? metrics
                                            : 0;
        for (const std::string& w : words) {
            if (w == "*") {
                out |= which;
            }
        }
    }
    return out;
}

Actions VerifiedToken::on_repository(std::string_view name) const noexcept {
    Actions out = 0;
    for (const Grant& g : access) {
        if (g.type == "repository" && g.name == name) {
            out |= g.actions;
        }
    }
    return out;
}

Actions VerifiedToken::on_server() const noexcept {
    Actions out = 0;
    for (const Grant& g : access) {
        if (g.type == "registry") {
            out |= g.actions;
        }
    }
    return out;
}

// ---- verification -----------------------------------------------------------

Result<std::unique_ptr<TokenVerifier>> TokenVerifier::create(const TokenConfig& cfg,
                                                             const Pkey& own_key) {
    std::unique_ptr<TokenVerifier> v(new TokenVerifier(cfg));
    if (own_key) {
        v->keys_.push_back(NamedKey{libtrust_key_id(own_key.get()), own_key});
        v->own_ = own_key;
    }
    if (!cfg.rootcertbundle.empty()) {
        auto keys = load_cert_keys(cfg.rootcertbundle);
        if (!keys) {
            return Error::of(Errc::invalid,
                             "auth.token_rootcertbundle: " + keys.error().describe());
        }
        for (Pkey& k : *keys) {
            v->keys_.push_back(NamedKey{libtrust_key_id(k.get()), std::move(k)});
        }
        v->roots_ = X509_STORE_new();
        // A leaf that is itself in the bundle is trusted, as Go (and so
        // Distribution) trusts it.
        if (v->roots_ == nullptr ||
            X509_STORE_set_flags(v->roots_, X509_V_FLAG_PARTIAL_CHAIN) != 1 ||
            X509_STORE_load_file(v->roots_, cfg.rootcertbundle.c_str()) != 1) {
            ERR_clear_error();
            return Error::of(Errc::invalid,
                             "auth.token_rootcertbundle: cannot load " + cfg.rootcertbundle);
        }
    }
    if (!cfg.jwks.empty()) {
        auto text = util::read_whole_file(cfg.jwks);
        if (!text) {
            return Error::of(Errc::invalid, "auth.token_jwks: " + text.error().describe());
        }
        auto keys = parse_jwks(*text);
        if (!keys) {
            return Error::of(Errc::invalid,
                             "auth.token_jwks " + cfg.jwks + ": " + keys.error().detail);
        }
        for (NamedKey& k : *keys) {
            v->keys_.push_back(std::move(k));
        }
    }
    if (v->keys_.empty()) {
        return Error::of(Errc::invalid, "auth.scheme token needs keys to trust: "
                                        "auth.token_rootcertbundle, auth.token_jwks or the "
                                        "built-in issuer (auth.token_issue)");
    }
    return v;
}

TokenVerifier::~TokenVerifier() { X509_STORE_free(roots_); }

Result<EVP_PKEY*> TokenVerifier::key_for(Alg alg, std::string_view header_json,
                                         std::vector<Pkey>& hold) {
    dom::element h;
    if (parser().parse(header_json.data(), header_json.size()).get(h) != simdjson::SUCCESS) {
        return refused("malformed header");
    }
    dom::array x5c;
    if (h["x5c"].get_array().get(x5c) == simdjson::SUCCESS) {
        // A chain: the leaf's key, trusted when the chain ends at a root.
        if (roots_ == nullptr) {
            return refused("x5c without a root certificate bundle");
        }
        STACK_OF(X509)* chain = sk_X509_new_null();
        X509* leaf = nullptr;
        bool ok = chain != nullptr;
        for (dom::element c : x5c) {
            std::string_view b64;
            if (!ok || c.get_string().get(b64) != simdjson::SUCCESS || b64.size() > 65536) {
                ok = false;
                break;
            }
            std::string der((b64.size() / 4 + 1) * 3, '\0');
            int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(der.data()),
                                    reinterpret_cast<const unsigned char*>(b64.data()),
                                    static_cast<int>(b64.size()));
            const auto* p = reinterpret_cast<const unsigned char*>(der.data());
            X509* cert = n > 0 ? d2i_X509(nullptr, &p, n) : nullptr;
            if (cert == nullptr) {
                ok = false;
                break;
            }
            if (leaf == nullptr) {
                leaf = cert;
            } else {
                (void)sk_X509_push(chain, cert);
            }
        }
        ok = ok && leaf != nullptr;
        if (ok) {
            X509_STORE_CTX* ctx = X509_STORE_CTX_new();
            ok = ctx != nullptr && X509_STORE_CTX_init(ctx, roots_, leaf, chain) == 1 &&
                 X509_verify_cert(ctx) == 1;
            X509_STORE_CTX_free(ctx);
        }
        if (ok) {
            hold.push_back(adopt(X509_get_pubkey(leaf)));
        }
        X509_free(leaf);
        sk_X509_pop_free(chain, X509_free);
        ERR_clear_error();
        if (!ok || !hold.back() || !key_fits(alg, hold.back().get())) {
            return refused("x5c chain not trusted");
        }
        return hold.back().get();
    }
    std::string_view kid;
    if (h["kid"].get_string().get(kid) == simdjson::SUCCESS) {
        for (const NamedKey& k : keys_) {
            if (k.kid == kid && key_fits(alg, k.key.get())) {
                return k.key.get();
            }
        }
        return refused("unknown key id");
    }
    return nullptr; // no hint: any trusted key of the right kind
}

Result<std::shared_ptr<VerifiedToken>> TokenVerifier::check(std::string_view token, bool refresh,
                                                            std::string* via) {
    if (token.size() > 16384) {
        return refused("token too large");
    }
    auto jws = split_jws(token);
    if (!jws) {
        return refused("malformed token");
    }
    std::string alg_text;
    {
        dom::element h;
        std::string_view a;
        if (parser().parse(jws->header_json).get(h) != simdjson::SUCCESS ||
            h["alg"].get_string().get(a) != simdjson::SUCCESS) {
            return refused("malformed header");
        }
        alg_text = std::string(a);
    }
    auto alg = alg_from_name(alg_text);
    if (!alg) {
        return refused("algorithm '" + alg_text + "' is not accepted");
    }
    std::vector<Pkey> hold;
    auto key = refresh ? Result<EVP_PKEY*>(own_.get()) : key_for(*alg, jws->header_json, hold);
    if (!key) {
        return std::move(key).error();
    }
    if (refresh && *key == nullptr) {
        return refused("no issuer here: no refresh tokens");
    }
    checks_.fetch_add(1, std::memory_order_relaxed);
    bool good = false;
    if (*key != nullptr) {
        good = verify_signature(*alg, *key, jws->signed_part, jws->signature);
    } else {
        for (const NamedKey& k : keys_) {
            if (key_fits(*alg, k.key.get()) &&
                verify_signature(*alg, k.key.get(), jws->signed_part, jws->signature)) {
                good = true;
                break;
            }
        }
    }
    if (!good) {
        return refused("bad signature");
    }
    // The claims.
    dom::object c;
    if (parser().parse(jws->payload_json).get_object().get(c) != simdjson::SUCCESS) {
        return refused("malformed claims");
    }
    std::string_view iss;
    if (c["iss"].get_string().get(iss) != simdjson::SUCCESS || iss != cfg_.issuer) {
        return refused("wrong issuer");
    }
    bool aud_ok = false;
    std::string_view aud;
    dom::array auds;
    if (c["aud"].get_string().get(aud) == simdjson::SUCCESS) {
        aud_ok = aud == cfg_.service;
    } else if (c["aud"].get_array().get(auds) == simdjson::SUCCESS) {
        for (dom::element a : auds) {
            std::string_view s;
            if (a.get_string().get(s) == simdjson::SUCCESS && s == cfg_.service) {
                aud_ok = true;
            }
        }
    }
    if (!aud_ok) {
        return refused("wrong audience");
    }
    auto exp = seconds_claim(c, "exp");
    auto nbf = seconds_claim(c, "nbf");
    auto iat = seconds_claim(c, "iat");
    if (!exp || !nbf || !iat) {
        return refused("malformed time claims");
    }
    const std::int64_t now = now_s();
    const std::int64_t leeway = cfg_.leeway_s;
    if (!*exp) {
        return refused("no expiry");
    }
    if (now > **exp + leeway) {
        return refused("expired");
    }
    if (*nbf && **nbf > now + leeway) {
        return refused("not valid yet");
    }
    if (*iat && **iat > now + leeway) {
        return refused("issued in the future");
    }
    const std::int64_t longest = refresh ? cfg_.refresh_ttl_s + leeway : cfg_.max_lifetime_s;
    if (**exp - now > longest) {
        return refused("expires too far in the future");
    }
    bool is_refresh = false;
    (void)c["ringport_refresh"].get_bool().get(is_refresh);
    if (is_refresh != refresh) {
        return refused(refresh ? "not a refresh token" : "a refresh token is not an access token");
    }
    if (via != nullptr) {
        std::string_view v;
        (void)c["ringport_via"].get_string().get(v);
        *via = std::string(v);
    }
    auto t = std::make_shared<VerifiedToken>();
    t->exp = **exp;
    std::string_view sub;
    if (c["sub"].get_string().get(sub) == simdjson::SUCCESS) {
        t->subject = std::string(sub);
    }
    dom::array access;
    if (c["access"].get_array().get(access) == simdjson::SUCCESS) {
        for (dom::element e : access) {
            std::string_view type;
            std::string_view name;
            dom::array acts;
            if (e["type"].get_string().get(type) != simdjson::SUCCESS ||
                e["name"].get_string().get(name) != simdjson::SUCCESS ||
                e["actions"].get_array().get(acts) != simdjson::SUCCESS) {
                return refused("malformed access claim");
            }
            std::vector<std::string> words;
            for (dom::element a : acts) {
                std::string_view w;
                if (a.get_string().get(w) == simdjson::SUCCESS) {
                    words.emplace_back(w);
                }
            }
            t->access.push_back(
                Grant{std::string(type), std::string(name), token_actions(type, name, words)});
        }
    }
    return t;
}

Result<std::shared_ptr<const VerifiedToken>> TokenVerifier::verify(std::string_view token) {
    const std::int64_t now = now_s();
    unsigned char digest[32];
    unsigned int dlen = 0;
    if (EVP_Digest(token.data(), token.size(), digest, &dlen, EVP_sha256(), nullptr) != 1) {
        return refused("cannot hash the token");
    }
    const std::string key(reinterpret_cast<char*>(digest), dlen);
    {
        std::lock_guard lk(mu_);
        auto it = cache_.find(key);
        if (it != cache_.end()) {
            if (now <= it->second->exp + cfg_.leeway_s) {
                return it->second;
            }
            cache_.erase(it);
        }
    }
    auto t = check(token, false);
    if (!t) {
        return std::move(t).error();
    }
    std::shared_ptr<const VerifiedToken> v = std::move(*t);
    std::lock_guard lk(mu_);
    if (cache_.size() >= 10000) {
        // Full: drop what expired; if that freed little, start afresh (the
        // tokens still in use are verified again), so a scan is rare.
        for (auto it = cache_.begin(); it != cache_.end();) {
            it = now > it->second->exp + cfg_.leeway_s ? cache_.erase(it) : std::next(it);
        }
        if (cache_.size() >= 9000) {
            cache_.clear();
        }
    }
    cache_.emplace(key, v);
    return v;
}

Result<TokenVerifier::Refresh> TokenVerifier::verify_refresh(std::string_view token) {
    Refresh r;
    auto t = check(token, true, &r.via);
    if (!t) {
        return std::move(t).error();
    }
    r.subject = (*t)->subject;
    return r;
}

// ---- issuing ------------------------------------------------------------------

Result<std::unique_ptr<TokenIssuer>> TokenIssuer::create(const TokenConfig& cfg) {
    auto t = std::make_unique<TokenIssuer>();
    t->cfg_ = cfg;
    if (!cfg.signing_key.empty()) {
        auto k = load_private_key(cfg.signing_key);
        if (!k) {
            return Error::of(Errc::invalid, "auth.token_signing_key: " + k.error().detail);
        }
        t->key_ = std::move(*k);
    } else {
        char curve[] = "P-256"; // the macro casts away const
        EVP_PKEY* k = EVP_EC_gen(curve);
        if (k == nullptr) {
            ERR_clear_error();
            return Error::of(Errc::invalid, "cannot make a signing key");
        }
        t->key_ = adopt(k);
    }
    t->alg_ = *alg_for_key(t->key_.get());
    t->kid_ = libtrust_key_id(t->key_.get());
    return t;
}

std::string TokenIssuer::signed_token(const std::string& payload_json) const {
    std::string header = "{\"alg\":\"" + std::string(alg_name(alg_)) +
                         "\",\"typ\":\"JWT\",\"kid\":" + json_string(kid_) + "}";
    std::string data = base64url_encode(header);
    data.push_back('.');
    data.append(base64url_encode(payload_json));
    std::string sig = sign(alg_, key_.get(), data);
    if (sig.empty()) {
        return {};
    }
    data.push_back('.');
    data.append(base64url_encode(sig));
    return data;
}

namespace {

std::string jti() {
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1) {
        return {};
    }
    return base64url_encode(std::string_view(reinterpret_cast<char*>(b), sizeof b));
}

std::string common_claims(const TokenConfig& cfg, const std::string& subject, std::int64_t now,
                          std::int64_t ttl) {
    std::string p = "{\"iss\":" + json_string(cfg.issuer) + ",\"sub\":" + json_string(subject) +
                    ",\"aud\":" + json_string(cfg.service);
    p.append(",\"exp\":").append(std::to_string(now + ttl));
    p.append(",\"nbf\":").append(std::to_string(now - 1));
    p.append(",\"iat\":").append(std::to_string(now));
    p.append(",\"jti\":").append(json_string(jti()));
    return p;
}

} // namespace

std::string TokenIssuer::access_token(const std::string& subject, const std::vector<Grant>& grants,
                                      std::int64_t now) const {
    std::string p = common_claims(cfg_, subject, now, cfg_.ttl_s);
    p += ",\"access\":[";
    for (std::size_t i = 0; i < grants.size(); ++i) {
        const Grant& g = grants[i];
        p.append(i == 0 ? "" : ",");
        p.append("{\"type\":").append(json_string(g.type));
        p.append(",\"name\":").append(json_string(g.name)).append(",\"actions\":[");
        std::string names =
            g.type == "registry" ? (g.actions != 0 ? "*" : "") : action_names(g.actions);
        bool first = true;
        while (!names.empty()) {
            std::size_t comma = names.find(',');
            p.append(first ? "" : ",").append(json_string(names.substr(0, comma)));
            first = false;
            names = comma == std::string::npos ? std::string() : names.substr(comma + 1);
        }
        p += "]}";
    }
    p += "]}";
    return signed_token(p);
}

std::string TokenIssuer::refresh_token(const std::string& subject, std::string_view via,
                                       std::int64_t now) const {
    std::string p = common_claims(cfg_, subject, now, cfg_.refresh_ttl_s);
    p += ",\"ringport_refresh\":true,\"ringport_via\":" + json_string(via) + "}";
    return signed_token(p);
}

} // namespace rp::auth
