// SPDX-License-Identifier: Apache-2.0
#include "auth/jwt.hh"

#include <openssl/evp.h>

#include <doctest/doctest.h>

#include <ctime>
#include <string>

#include "auth/token.hh"

using namespace rp::auth;

namespace {

Pkey make(const char* kind) {
    EVP_PKEY* k = nullptr;
    if (std::string(kind) == "ed25519") {
        k = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
    } else if (std::string(kind) == "rsa") {
        k = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048));
    } else {
        k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", kind);
    }
    return adopt(k);
}

} // namespace

TEST_CASE("every accepted algorithm signs and verifies, and only with its own kind of key") {
    Pkey p256 = make("P-256");
    Pkey p384 = make("P-384");
    Pkey rsa = make("rsa");
    Pkey ed = make("ed25519");
    REQUIRE((p256 && p384 && rsa && ed));
    struct Case {
        Alg alg;
        EVP_PKEY* key;
    };
    const Case cases[] = {{Alg::es256, p256.get()}, {Alg::es384, p384.get()},
                          {Alg::rs256, rsa.get()},  {Alg::rs384, rsa.get()},
                          {Alg::rs512, rsa.get()},  {Alg::ps256, rsa.get()},
                          {Alg::eddsa, ed.get()}};
    for (const Case& c : cases) {
        CAPTURE(alg_name(c.alg));
        std::string sig = sign(c.alg, c.key, "header.payload");
        REQUIRE_FALSE(sig.empty());
        CHECK(verify_signature(c.alg, c.key, "header.payload", sig));
        CHECK_FALSE(verify_signature(c.alg, c.key, "header.payloaD", sig));
        std::string bad = sig;
        bad[bad.size() / 2] = static_cast<char>(bad[bad.size() / 2] ^ 1);
        CHECK_FALSE(verify_signature(c.alg, c.key, "header.payload", bad));
    }
    CHECK(sign(Alg::es256, p256.get(), "x").size() == 64); // JOSE r || s
    CHECK(sign(Alg::es384, p384.get(), "x").size() == 96);
    // No key serves another algorithm's kind.
    CHECK_FALSE(key_fits(Alg::es256, rsa.get()));
    CHECK_FALSE(key_fits(Alg::es256, p384.get()));
    CHECK_FALSE(key_fits(Alg::rs256, p256.get()));
    CHECK_FALSE(key_fits(Alg::eddsa, p256.get()));
    CHECK_FALSE(verify_signature(Alg::rs256, p256.get(), "x", sign(Alg::es256, p256.get(), "x")));
}

TEST_CASE("none and the HMAC family are not algorithms here") {
    for (const char* name : {"none", "None", "HS256", "HS384", "HS512", "", "es256", "RS1"}) {
        CAPTURE(name);
        CHECK_FALSE(alg_from_name(name));
    }
    CHECK(alg_from_name("EdDSA") == Alg::eddsa);
    CHECK(alg_from_name("PS256") == Alg::ps256);
}

TEST_CASE("base64url is strict and round-trips") {
    const std::string samples[] = {"",    "a",    "ab",
                                   "abc", "abcd", std::string("\xff\xfe\x00\x01", 4)};
    for (const std::string& s : samples) {
        CHECK(base64url_decode(base64url_encode(s)) == s);
    }
    CHECK_FALSE(base64url_decode("ab==")); // padding is not base64url
    CHECK_FALSE(base64url_decode("ab+/")); // nor is the standard alphabet
    CHECK_FALSE(base64url_decode("a"));    // an impossible length
    CHECK_FALSE(split_jws("a.b"));
    CHECK_FALSE(split_jws("a.b.c.d"));
    CHECK_FALSE(split_jws("..."));
}

TEST_CASE("the key id is libtrust's: 12 groups of 4 base32 characters") {
    std::string kid = libtrust_key_id(make("P-256").get());
    CHECK(kid.size() == 59);
    for (std::size_t i = 4; i < kid.size(); i += 5) {
        CHECK(kid[i] == ':');
    }
}

TEST_CASE("issued tokens verify; their claims are checked") {
    TokenConfig cfg;
    cfg.issue = true;
    auto issuer = TokenIssuer::create(cfg);
    REQUIRE(issuer);
    auto verifier = TokenVerifier::create(cfg, (*issuer)->key());
    REQUIRE(verifier);
    const auto now = static_cast<std::int64_t>(std::time(nullptr));
    std::string t = (*issuer)->access_token(
        "alice", {Grant{"repository", "a/b", pull | push}, Grant{"registry", "catalog", catalog}},
        now);
    auto v = (*verifier)->verify(t);
    REQUIRE(v);
    CHECK((*v)->subject == "alice");
    CHECK((*v)->on_repository("a/b") == (pull | push));
    CHECK((*v)->on_repository("a/c") == 0);
    CHECK((*v)->on_server() == catalog);
    CHECK((*verifier)->signature_checks() == 1);
    CHECK((*verifier)->verify(t)); // cached: no second check
    CHECK((*verifier)->signature_checks() == 1);
    // An old token, and a refresh token where an access token is expected.
    CHECK_FALSE((*verifier)->verify((*issuer)->access_token("alice", {}, now - 3600)));
    std::string refresh = (*issuer)->refresh_token("alice", "password", now);
    CHECK_FALSE((*verifier)->verify(refresh));
    auto sub = (*verifier)->verify_refresh(refresh);
    REQUIRE(sub);
    CHECK(sub->subject == "alice");
    CHECK(sub->via == "password");
    CHECK_FALSE((*verifier)->verify_refresh(t));
    // Another issuer's key is not trusted.
    auto other = TokenIssuer::create(cfg);
    REQUIRE(other);
    CHECK_FALSE((*verifier)->verify((*other)->access_token("alice", {}, now)));
}

TEST_CASE("scopes: the name may hold colons; actions become sets") {
    auto s = parse_scope("repository:localhost:5000/a/b:pull,push");
    REQUIRE(s);
    CHECK(s->type == "repository");
    CHECK(s->name == "localhost:5000/a/b");
    CHECK(token_actions(s->type, s->name, s->actions) == (pull | push));
    CHECK(token_actions("repository", "x", {"*"}) == (pull | push | del));
    CHECK(token_actions("registry", "catalog", {"*"}) == catalog);
    CHECK(token_actions("registry", "admin", {"*"}) == admin);
    CHECK(token_actions("registry", "catalog", {"pull"}) == 0);
    CHECK_FALSE(parse_scope("repository"));
    CHECK_FALSE(parse_scope("repository:pull"));
    CHECK_FALSE(parse_scope("repository::pull"));
}
