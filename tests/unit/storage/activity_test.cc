// SPDX-License-Identifier: Apache-2.0
#include "storage/activity.hh"

#include <doctest/doctest.h>

#include <string>

using rp::storage::Activity;

TEST_CASE("activity keeps push and pull times per tag and pulls per digest") {
    Activity a;
    CHECK(a.tag("r", "v1").pushed == 0);
    CHECK_FALSE(a.take_dirty());
    a.tag_pushed("team/app", "v1", 100);
    a.tag_pulled("team/app", "v1", 150);
    a.digest_pulled("team/app", "sha256:aa", 160);
    CHECK(a.take_dirty());
    CHECK_FALSE(a.take_dirty());
    a.tag_pulled("team/app", "v1", 150); // the same second: nothing to save
    CHECK_FALSE(a.take_dirty());
    CHECK(a.tag("team/app", "v1").pushed == 100);
    CHECK(a.tag("team/app", "v1").pulled == 150);
    CHECK(a.digest_pulled_at("team/app", "sha256:aa") == 160);
    CHECK(a.digest_pulled_at("team/app", "sha256:bb") == 0);
    a.digest_pushed("team/app", "sha256:aa", 170);
    CHECK(a.digest("team/app", "sha256:aa").pushed == 170);
    CHECK(a.digest("team/app", "sha256:aa").pulled == 160);
    // A tag and a digest of the same repository never share an entry.
    CHECK(a.tag("team/app", "sha256:aa").pulled == 0);
    a.tag_pushed_if_unknown("team/app", "v1", 5); // known: unchanged
    a.tag_pushed_if_unknown("team/app", "old", 5);
    CHECK(a.tag("team/app", "v1").pushed == 100);
    CHECK(a.tag("team/app", "old").pushed == 5);
    CHECK(a.size() == 3);
}

TEST_CASE("activity saves as lines, merges on load, and starts tracking once") {
    Activity a;
    a.begin_tracking(1000);
    a.begin_tracking(2000); // began already
    CHECK(a.tracking_since() == 1000);
    a.tag_pushed("r", "v1", 1100);
    a.tag_pulled("r", "v1", 1200);
    a.digest_pulled("r", "sha256:aa", 1300);
    const std::string saved = a.serialize();
    CHECK(saved.starts_with("ringport-activity 1 since=1000\n"));

    Activity b;
    b.tag_pulled("r", "v1", 1500); // newer than the saved pull: kept
    b.load(saved + "junk\nx 1 r:v2\n5 -1 r:v3\n7 8 nocolon\n0 0 r:v4\n");
    CHECK(b.tracking_since() == 1000);
    CHECK(b.tag("r", "v1").pushed == 1100);
    CHECK(b.tag("r", "v1").pulled == 1500);
    CHECK(b.digest_pulled_at("r", "sha256:aa") == 1300);
    CHECK(b.size() == 2); // the bad lines were skipped
    // The mirror's earlier access file: "<pulled> <repo>@<digest>".
    b.load("1700 docker.io/library/alpine@sha256:cc\n");
    CHECK(b.digest_pulled_at("docker.io/library/alpine", "sha256:cc") == 1700);
    // The earliest tracking start wins.
    b.load("ringport-activity 1 since=900\n");
    CHECK(b.tracking_since() == 900);
}

TEST_CASE("activity forgets and prunes entries") {
    Activity a;
    a.tag_pushed("r", "keep", 1);
    a.tag_pushed("r", "gone", 1);
    a.digest_pulled("r", "sha256:aa", 1);
    a.digest_pulled("s", "sha256:bb", 1);
    (void)a.take_dirty();
    a.forget_tag("r", "gone");
    CHECK(a.take_dirty());
    CHECK(a.tag("r", "gone").pushed == 0);
    std::size_t n = a.prune([](std::string_view repo, std::string_view tag, std::string_view d) {
        return repo == "r" && (tag == "keep" || d == "sha256:aa");
    });
    CHECK(n == 1);
    CHECK(a.size() == 2);
    CHECK(a.digest_pulled_at("s", "sha256:bb") == 0);
    CHECK(a.take_dirty());
}
