// SPDX-License-Identifier: Apache-2.0
#include "http/range.hh"

#include <doctest/doctest.h>

using namespace rp::http;

TEST_CASE("single byte ranges resolve against the size") {
    ByteRange r;
    CHECK(parse_range("bytes=0-9", 100, r) == RangeResult::ok);
    CHECK((r.first == 0 && r.last == 9));
    CHECK(parse_range("bytes=90-", 100, r) == RangeResult::ok);
    CHECK((r.first == 90 && r.last == 99));
    CHECK(parse_range("bytes=-10", 100, r) == RangeResult::ok);
    CHECK((r.first == 90 && r.last == 99));
    CHECK(parse_range("bytes=50-1000", 100, r) == RangeResult::ok);
    CHECK(r.last == 99);
    CHECK(parse_range("bytes=0-0", 100, r) == RangeResult::ok);
    CHECK(r.length() == 1);
}

TEST_CASE("unsatisfiable and ignorable ranges are told apart") {
    ByteRange r;
    CHECK(parse_range("", 100, r) == RangeResult::none);
    CHECK(parse_range("bytes=100-", 100, r) == RangeResult::unsatisfiable);
    CHECK(parse_range("bytes=500-0", 1000, r) == RangeResult::unsatisfiable);
    CHECK(parse_range("bytes=-0", 100, r) == RangeResult::unsatisfiable);
    CHECK(parse_range("bytes=0-1,5-6", 100, r) == RangeResult::ignore);
    CHECK(parse_range("items=0-1", 100, r) == RangeResult::ignore);
    CHECK(parse_range("bytes=a-b", 100, r) == RangeResult::ignore);
}

TEST_CASE("upload Content-Range accepts the OCI and the RFC forms") {
    auto a = parse_content_range("0-99");
    REQUIRE(a);
    CHECK(a->length() == 100);
    auto b = parse_content_range("bytes 100-199/*");
    REQUIRE(b);
    CHECK(b->first == 100);
    CHECK_FALSE(parse_content_range("10-5"));
    CHECK_FALSE(parse_content_range("0-18446744073709551615")); // length would wrap to 0
    CHECK_FALSE(parse_content_range("x-5"));
    CHECK_FALSE(parse_content_range(""));
}
