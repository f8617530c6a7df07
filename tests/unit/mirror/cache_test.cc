// SPDX-License-Identifier: Apache-2.0
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "mirror/cache.hh"

using namespace rp::mirror;

TEST_CASE("pins are globs over repository:tag and repository@digest") {
    CHECK(glob_match("library/alpine:*", "library/alpine:3.20"));
    CHECK(glob_match("library/*", "library/alpine:3.20")); // * crosses / and :
    CHECK(glob_match("*", ""));
    CHECK(glob_match("team/app:v?", "team/app:v1"));
    CHECK_FALSE(glob_match("team/app:v?", "team/app:v10"));
    CHECK_FALSE(glob_match("library/alpine:*", "library/alpine"));
    CHECK_FALSE(glob_match("library/alpine", "library/alpinex"));
    CHECK(glob_match("*a*b*c*", "xxaxxbxxcxx"));
    CHECK_FALSE(glob_match("*a*b*c*", "xxaxxcxxbxx"));
    // Linear, not exponential, on a hostile pattern.
    CHECK_FALSE(glob_match("*a*a*a*a*a*a*a*a*b", std::string(5000, 'a')));
    const std::vector<std::string> pins{"library/busybox:1.36", "team/*@sha256:*"};
    CHECK(pinned(pins, "library/busybox:1.36"));
    CHECK(pinned(pins, "team/x@sha256:abc"));
    CHECK_FALSE(pinned(pins, "library/busybox:latest"));
    CHECK_FALSE(pinned({}, "anything"));
}
