// SPDX-License-Identifier: Apache-2.0
#include "storage/names.hh"

#include <doctest/doctest.h>

#include <string>

using namespace rp::storage;

TEST_CASE("repository names follow the distribution-spec grammar") {
    for (const char* ok : {"a", "library/ubuntu", "a.b/c_d/e__f/g-h/i--j", "a0/b1", "x/y/z/w"}) {
        CHECK_MESSAGE(valid_repo_name(ok), ok);
    }
    for (const char* bad : {"", "A", "a/", "/a", "a//b", "..", "a/../b", "a/.b", "-a", "a-",
                            "a___b", "a/b/", "a..b", "a b", "a%2fb", "_a", "a/_layers"}) {
        CHECK_MESSAGE(!valid_repo_name(bad), bad);
    }
    CHECK(valid_repo_name(std::string(255, 'a')));
    CHECK_FALSE(valid_repo_name(std::string(256, 'a')));
}

TEST_CASE("tags follow the distribution-spec grammar") {
    CHECK(valid_tag("latest"));
    CHECK(valid_tag("_x.Y-1"));
    CHECK(valid_tag(std::string(128, 'a')));
    CHECK_FALSE(valid_tag(std::string(129, 'a')));
    CHECK_FALSE(valid_tag(".x"));
    CHECK_FALSE(valid_tag("-x"));
    CHECK_FALSE(valid_tag("a/b"));
    CHECK_FALSE(valid_tag("a+b"));
    CHECK_FALSE(valid_tag(""));
}

TEST_CASE("catalog order is lexical by path component") {
    CHECK(repo_name_less("a/b", "a-b"));
    CHECK(repo_name_less("a/b/c", "a-b"));
    CHECK(repo_name_less("a", "a/b"));
    CHECK(repo_name_less("a-b", "a.b"));
    CHECK_FALSE(repo_name_less("b", "a/z"));
}
