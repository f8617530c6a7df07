// SPDX-License-Identifier: Apache-2.0
#include "auth/bcrypt.hh"

#include <doctest/doctest.h>

#include <string>

#include "auth/secret.hh"

using namespace rp::auth;

// Known answers from libxcrypt (Python's crypt module on Debian 12), and
// OpenBSD's published "U*U" vector.
TEST_CASE("bcrypt agrees with libxcrypt for $2a$, $2b$ and $2y$") {
    struct V {
        const char* password;
        const char* hash;
    };
    const V vectors[] = {
        {"password", "$2b$05$abcdefghijklmnopqrstuuWG29KuyeAicPCJODk1zjyGvyQUU2awu"},
        {"", "$2y$04$......................w74bL5gU7LSJClZClCa.Pkz14aTv/XO"},
        {"U*U", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"},
        // Longer than 72 bytes: only the first 72 count.
        {"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
         "$2b$04$abcdefghijklmnopqrstuubzadhGtS2zEF.gu0yd0opP6cVzb.e0i"},
        {"\xc3\xbc"
         "n"
         "\xc3\xaf"
         "c"
         "\xc3\xb8"
         "d"
         "\xc3\xa9"
         " pass:word",
         "$2y$06$0123456789abcdefghijkeetPvQyEBRrxmfosu3nOWhQCn0ZFPHc6"},
    };
    for (const V& v : vectors) {
        CAPTURE(v.hash);
        CHECK(is_bcrypt(v.hash));
        CHECK(bcrypt_verify(v.password, v.hash));
        CHECK_FALSE(bcrypt_verify("!" + std::string(v.password), v.hash));
    }
    CHECK(bcrypt_verify(std::string(72, 'x') + "anything after 72 bytes",
                        "$2b$04$abcdefghijklmnopqrstuubzadhGtS2zEF.gu0yd0opP6cVzb.e0i"));
}

TEST_CASE("hashes made here verify, with a fresh salt each time") {
    auto a = bcrypt_hash("s3cret", 4);
    auto b = bcrypt_hash("s3cret", 4);
    REQUIRE(a);
    REQUIRE(b);
    CHECK(a->rfind("$2y$04$", 0) == 0);
    CHECK(a->size() == 60);
    CHECK(*a != *b);
    CHECK(bcrypt_verify("s3cret", *a));
    CHECK_FALSE(bcrypt_verify("s3cre", *a));
    CHECK_FALSE(bcrypt_hash("x", 3));
    CHECK_FALSE(bcrypt_hash("x", 32));
}

TEST_CASE("malformed hashes and other schemes are not bcrypt and never verify") {
    const char* bad[] = {
        "",
        "$2x$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", // the sign bug variant
        "$2a$03$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", // cost below 4
        "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOe",  // short
        "$2a$05$CCCCCCCCCCCCCCCCCCCC!.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", // bad salt char
        "$apr1$abcdefgh$0123456789abcdefghijkl",                        // Apache MD5
        "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=",
        "plaintext",
    };
    for (const char* h : bad) {
        CAPTURE(h);
        CHECK_FALSE(is_bcrypt(h));
        CHECK_FALSE(bcrypt_verify("U*U", h));
    }
}

TEST_CASE("secrets compare equal only when every byte is") {
    std::string a = "0123456789abcdef0123456789abcdef";
    CHECK(secret_equal(a, a));
    CHECK(secret_equal("", ""));
    for (std::size_t i = 0; i < a.size(); ++i) {
        std::string b = a;
        b[i] = static_cast<char>(b[i] ^ 1);
        CAPTURE(i);
        CHECK_FALSE(secret_equal(a, b)); // a difference at any position is seen
    }
    CHECK_FALSE(secret_equal(a, a.substr(1)));
    CHECK_FALSE(secret_equal(a, a + "x"));
}

TEST_CASE("the keyed hash depends on both parts and on where they split") {
    KeyedHash h;
    CHECK(h("alice", "pw") == h("alice", "pw"));
    CHECK(h("alice", "pw") != h("alice", "pW"));
    CHECK(h("alice", "pw") != h("alic", "epw"));
    KeyedHash other;
    CHECK(h("alice", "pw") != other("alice", "pw")); // a fresh key per process
}
