// SPDX-License-Identifier: Apache-2.0
#include "util/strings.hh"

#include <doctest/doctest.h>

#include <cctype>
#include <string>

using namespace rp::util;

TEST_CASE("decimal parsing refuses signs, spaces and overflow") {
    CHECK(parse_u64("0").value() == 0);
    CHECK(parse_u64("18446744073709551615").value() == UINT64_MAX);
    CHECK_FALSE(parse_u64("18446744073709551616"));
    CHECK_FALSE(parse_u64("-1"));
    CHECK_FALSE(parse_u64(" 1"));
    CHECK_FALSE(parse_u64(""));
}

TEST_CASE("percent decoding refuses broken escapes") {
    CHECK(percent_decode("sha256%3Aab").value() == "sha256:ab");
    CHECK_FALSE(percent_decode("%"));
    CHECK_FALSE(percent_decode("%4"));
    CHECK_FALSE(percent_decode("%zz"));
    CHECK(percent_encode("a/b c") == "a%2Fb%20c");
}

TEST_CASE("RFC 3339 times round-trip, including Distribution's nanoseconds") {
    CHECK(rfc3339(0) == "1970-01-01T00:00:00Z");
    CHECK(parse_rfc3339("2026-01-02T03:04:05Z").value() == 1767323045);
    CHECK(parse_rfc3339("2026-01-02T03:04:05.123456789Z").value() == 1767323045);
    CHECK(parse_rfc3339("2026-01-02T04:04:05+01:00").value() == 1767323045);
    CHECK_FALSE(parse_rfc3339("2026-01-02 03:04:05"));
    CHECK(http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT");
}

TEST_CASE("JSON escaping covers quotes, backslashes and control bytes") {
    std::string out;
    json_escape(out, "a\"b\\c\n");
    CHECK(out == "a\\\"b\\\\c\\u000a");
}

TEST_CASE("JSON escaping finds a special byte at every place of an 8-byte step") {
    // The plain runs are scanned eight bytes at a time: every byte value, at
    // every offset of a 20-byte plain string, against a byte-by-byte escape.
    static constexpr char hex[] = "0123456789abcdef";
    const std::string plain = "abcdefghijklmnopqrst";
    for (int b = 0; b < 256; ++b) {
        const auto c = static_cast<unsigned char>(b);
        std::string special;
        if (c == '"' || c == '\\') {
            special = std::string("\\") + static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7F) {
            special = std::string("\\u00") + hex[c >> 4U] + hex[c & 15U];
        } else if (c >= 0x80) {
            special = "\\ufffd"; // a lone byte above 0x7F is not UTF-8
        } else {
            special = std::string(1, static_cast<char>(c));
        }
        for (std::size_t at = 0; at < plain.size(); ++at) {
            std::string in = plain;
            in[at] = static_cast<char>(c);
            std::string out;
            json_escape(out, in);
            CHECK(out == plain.substr(0, at) + special + plain.substr(at + 1));
        }
    }
    for (std::size_t at = 0; at < 17; ++at) { // a two-byte character across a step
        std::string in = std::string(at, 'x') + "\xc3\xa9" + "yyyyyyyyyy";
        std::string out;
        json_escape(out, in);
        CHECK(out == in);
    }
}

TEST_CASE("base64 matches RFC 4648's test vectors") {
    CHECK(rp::util::base64("") == "");
    CHECK(rp::util::base64("f") == "Zg==");
    CHECK(rp::util::base64("fo") == "Zm8=");
    CHECK(rp::util::base64("foo") == "Zm9v");
    CHECK(rp::util::base64("foob") == "Zm9vYg==");
    CHECK(rp::util::base64("fooba") == "Zm9vYmE=");
    CHECK(rp::util::base64("foobar") == "Zm9vYmFy");
    CHECK(rp::util::base64(std::string("\xff\xfe\x00", 3)) == "//4A");
}

TEST_CASE("patterns: * stays within a component, ** crosses them") {
    CHECK(name_match("library/alpine", "library/alpine"));
    CHECK_FALSE(name_match("library/alpine", "library/alpine2"));
    CHECK(name_match("library/*", "library/alpine"));
    CHECK_FALSE(name_match("library/*", "library/a/b"));
    CHECK(name_match("library/**", "library/a/b"));
    CHECK(name_match("**", "anything/at/all"));
    CHECK(name_match("*/app", "team/app"));
    CHECK_FALSE(name_match("*/app", "org/team/app"));
    CHECK(name_match("**/app", "org/team/app"));
    CHECK(name_match("ci-*/**", "ci-42/build/cache"));
    // A later single star after a double one: the double one takes the slashes.
    CHECK(name_match("**/x*", "a/xb/xc"));
    CHECK_FALSE(name_match("", "a"));
    CHECK(name_match("", ""));
    // Bounded whatever the input (no exponential backtracking).
    std::string name(255, 'a');
    CHECK_FALSE(name_match("*a*a*a*a*a*a*a*a*a*a*a*a*b", name));
}

TEST_CASE("random_uuid gives version 4 UUIDs, each different") {
    const std::string a = rp::util::random_uuid();
    const std::string b = rp::util::random_uuid();
    CHECK(a != b);
    for (const std::string& u : {a, b}) {
        REQUIRE(u.size() == 36);
        for (std::size_t i = 0; i < u.size(); ++i) {
            const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
            CHECK((dash ? u[i] == '-' : std::isxdigit(static_cast<unsigned char>(u[i])) != 0));
        }
        CHECK(u[14] == '4');                                         // version
        CHECK(std::string("89ab").find(u[19]) != std::string::npos); // variant
    }
}
