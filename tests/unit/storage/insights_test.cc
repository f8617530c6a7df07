// SPDX-License-Identifier: Apache-2.0
#include "storage/insights.hh"

#include <doctest/doctest.h>

using namespace rp::storage;

namespace {
constexpr std::int64_t day = 86400;
constexpr std::int64_t t0 = 20000 * day + 3600; // some morning
} // namespace

TEST_CASE("pulls are counted per day, per repository and per tag") {
    Insights in;
    in.pulled("app", "v1", t0);
    in.pulled("app", "v1", t0 + 60);
    in.pulled("app", "", t0 + 120); // by digest: the repository only
    in.pulled("app", "v2", t0 + day);
    in.pulled("lib/base", "latest", t0 + day);
    in.pushed("app", t0 - 10);
    CHECK(in.repo("app").pulls == 4);
    CHECK(in.repo("app").last_pull == t0 + day);
    CHECK(in.repo("app").last_push == t0 - 10);
    CHECK(in.repo("none").last_pull == 0);
    CHECK(in.tag_pulls("app", "v1") == Insights::Days{{20000, 2}});
    CHECK(in.tag_pull_total("app", "v2") == 1);
    CHECK(in.repo_pulls("app") == Insights::Days{{20000, 3}, {20001, 1}});
    CHECK(in.pulls() == Insights::Days{{20000, 3}, {20001, 2}});
    CHECK(in.repos().size() == 2);
}

TEST_CASE("the saved form loads back, adding to what was counted before it was read") {
    Insights a;
    a.pulled("app", "v1", t0);
    a.pulled("app", "v1", t0 + day);
    a.pushed("app", t0);
    a.stored(t0, 1000);
    a.stored(t0 + day, 1500);
    const std::string saved = a.serialize();
    Insights b;
    b.pulled("app", "v1", t0 + day); // served before the saved form was read
    b.load(saved);
    CHECK(b.repo("app").pulls == 3);
    CHECK(b.tag_pulls("app", "v1") == Insights::Days{{20000, 1}, {20001, 2}});
    CHECK(b.pulls() == Insights::Days{{20000, 1}, {20001, 2}});
    Insights b2;
    b2.load(saved);
    CHECK(b2.serialize().size() == saved.size());
    CHECK(b2.repo("app").pulls == 2);
    CHECK(b.repo("app").last_push == t0);
    CHECK(b2.tag_pulls("app", "v1") == a.tag_pulls("app", "v1"));
    CHECK(b.stored_bytes() == Insights::Days{{20000, 1000}, {20001, 1500}});
    Insights c;
    c.load("ringport-insights 1\nr x y - bad\nt 5:1,4:1 app:v1\ns junk\nr 1 2 - ok\n");
    CHECK(c.repo("ok").last_pull == 2);
    CHECK(c.tag_pulls("app", "v1").empty()); // days out of order: skipped
    c.load("something else\nr 1 2 - other\n");
    CHECK(c.repo("other").last_pull == 0);
}

TEST_CASE("prune keeps the configured days and what still exists") {
    Insights in;
    in.set_keep_days(2);
    in.pulled("app", "old", t0);
    in.pulled("app", "v1", t0 + 2 * day);
    in.pulled("gone", "v1", t0 + 2 * day);
    in.stored(t0, 1);
    in.stored(t0 + 2 * day, 2);
    (void)in.take_dirty();
    in.prune(t0 + 2 * day, [](std::string_view repo, std::string_view) { return repo != "gone"; });
    CHECK(in.take_dirty());
    CHECK(in.repo("app").pulls == 1);
    CHECK(in.tag_pulls("app", "old").empty());
    CHECK(in.repo("gone").last_pull == 0);
    CHECK(in.stored_bytes() == Insights::Days{{20002, 2}});
    in.forget_tag("app", "v1");
    CHECK(in.tag_pulls("app", "v1").empty());
    in.forget_repo("app");
    CHECK(in.repos().empty());
}

TEST_CASE("the registry's pulls per day outlive a deleted repository and a reload") {
    Insights in;
    in.pulled("a", "v1", t0);
    in.pulled("b", "", t0);
    in.forget_repo("a");
    CHECK(in.pulls() == Insights::Days{{20000, 2}});
    Insights back;
    back.pulled("c", "v1", t0); // counted before the saved form was read
    back.load(in.serialize());
    CHECK(back.pulls() == Insights::Days{{20000, 3}});
    back.stored(t0, 7);
    back.load("ringport-insights 1\ns 20000:5\n");
    CHECK(back.stored_bytes() == Insights::Days{{20000, 7}}); // today's current value stands
}
