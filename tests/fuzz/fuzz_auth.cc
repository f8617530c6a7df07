// SPDX-License-Identifier: Apache-2.0
// Fuzzes what an attacker controls in authentication: the Authorization
// header (Basic credentials, the Bearer token), JWTs, scopes, htpasswd
// files and access patterns. Properties:
// - Basic credentials that parse re-encode to the same user and password,
//   with a non-empty user and no control characters;
// - no input is ever accepted as a token (the verifier trusts only a key
//   made at startup, which the fuzzer cannot sign with), and a token made
//   by that key is refused once any byte of it changes;
// - a split JWS borrows the input: its signed part is a prefix;
// - a parsed scope names a type and a resource;
// - htpasswd entries that load are bcrypt, and pattern matching terminates.
#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>

#include "auth/access.hh"
#include "auth/basic.hh"
#include "auth/bcrypt.hh"
#include "auth/htpasswd.hh"
#include "auth/jwt.hh"
#include "auth/token.hh"
#include "fuzz_check.hh"
#include "util/strings.hh"

namespace {

namespace auth = rp::auth;

struct Keys {
    std::unique_ptr<auth::TokenIssuer> issuer;
    std::unique_ptr<auth::TokenVerifier> verifier;
    std::string good; // a valid token, for the one-byte-changed property
};

Keys& keys() {
    static Keys k = [] {
        Keys out;
        auth::TokenConfig cfg;
        cfg.issue = true;
        out.issuer = std::move(auth::TokenIssuer::create(cfg).value());
        out.verifier = std::move(auth::TokenVerifier::create(cfg, out.issuer->key()).value());
        out.good =
            out.issuer->access_token("fuzzer", {auth::Grant{"repository", "a/b", auth::pull}},
                                     static_cast<std::int64_t>(std::time(nullptr)));
        return out;
    }();
    return k;
}

std::string b64(std::string_view s) {
    std::string out(4 * ((s.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(s.data()),
                            static_cast<int>(s.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    Keys& k = keys();

    (void)auth::authorization_kind(in);
    if (auto c = auth::parse_basic(in)) {
        RP_FUZZ_CHECK(!c->user.empty(), "a parsed user is not empty");
        for (char ch : c->user + c->password) {
            RP_FUZZ_CHECK(static_cast<unsigned char>(ch) >= 0x20 && ch != 0x7f,
                          "no control characters in credentials");
        }
        auto again = auth::parse_basic("Basic " + b64(c->user + ":" + c->password));
        RP_FUZZ_CHECK(again && again->user == c->user && again->password == c->password,
                      "credentials re-encode to themselves");
    }

    if (auto j = auth::split_jws(in)) {
        RP_FUZZ_CHECK(in.substr(0, j->signed_part.size()) == j->signed_part,
                      "the signed part is a prefix of the token");
    }
    RP_FUZZ_CHECK(!k.verifier->verify(in), "no fuzzed input verifies as a token");
    RP_FUZZ_CHECK(!k.verifier->verify_refresh(in), "no fuzzed input is a refresh token");
    if (size > 0 && !k.good.empty()) {
        std::string changed = k.good;
        std::size_t at = data[0] % changed.size();
        char was = changed[at];
        changed[at] = static_cast<char>(size > 1 ? data[1] : 'x');
        if (changed[at] != was) {
            // A changed base64url character may leave the decoded bytes as they
            // were (its low bits unused at the end of a part): only a changed
            // decoding must be refused.
            auto a = auth::split_jws(changed);
            auto b = auth::split_jws(k.good);
            bool same = a && b && a->header_json == b->header_json &&
                        a->payload_json == b->payload_json && a->signature == b->signature;
            RP_FUZZ_CHECK(same || !k.verifier->verify(changed),
                          "a token with any byte changed is refused");
        }
    }

    if (auto s = auth::parse_scope(in)) {
        RP_FUZZ_CHECK(!s->type.empty() && !s->name.empty(), "a scope names type and resource");
    }

    auto users = auth::parse_htpasswd(in, "fuzz");
    if (users) {
        for (const auto& [user, hash] : users->hashes) {
            RP_FUZZ_CHECK(!user.empty() && auth::is_bcrypt(hash), "only bcrypt entries load");
        }
    }
    std::size_t nl = in.find('\n');
    if (nl != std::string_view::npos) {
        (void)rp::util::name_match(in.substr(0, nl), in.substr(nl + 1));
    }
    return 0;
}
