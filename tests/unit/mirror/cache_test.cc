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

TEST_CASE("access times keep the last pull, save as lines and merge on load") {
    AccessTimes a;
    CHECK(a.last("r", "sha256:1") == 0);
    CHECK_FALSE(a.take_dirty());
    a.pulled("up/r", "sha256:1", 100);
    a.pulled("up/r", "sha256:2", 200);
    CHECK(a.take_dirty());
    CHECK_FALSE(a.take_dirty());
    a.pulled("up/r", "sha256:2", 200); // the same second: nothing to save
    CHECK_FALSE(a.take_dirty());
    CHECK(a.last("up/r", "sha256:2") == 200);
    const std::string saved = a.serialize();
    AccessTimes b;
    b.pulled("up/r", "sha256:1", 150); // newer than the saved 100: kept
    b.load(saved + "junk line\nx up/r@sha256:3\n-\n");
    CHECK(b.last("up/r", "sha256:1") == 150);
    CHECK(b.last("up/r", "sha256:2") == 200);
    CHECK(b.size() == 2);
    b.forget("up/r", "sha256:1");
    CHECK(b.last("up/r", "sha256:1") == 0);
    CHECK(b.take_dirty());
}
