// SPDX-License-Identifier: Apache-2.0
#include "storage/retention.hh"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

using namespace rp::storage;

namespace {

constexpr std::int64_t now = 100 * 86400;
constexpr std::int64_t day = 86400;

Digest dg(char c) { return *Digest::parse("sha256:" + std::string(64, c)); }

// Tags pushed `age` days ago, pulled `pulled` days ago.
TagFacts tag(std::string name, int age, int pulled) {
    return TagFacts{std::move(name), dg('a'), now - age * day, now - pulled * day};
}

std::vector<std::string> planned(const std::vector<RetentionItem>& items) {
    std::vector<std::string> out;
    for (const RetentionItem& it : items) {
        out.push_back(it.tag_name + "/" + RetentionItem::reason_name(it.reason));
    }
    std::sort(out.begin(), out.end());
    return out;
}

} // namespace

TEST_CASE("keep_last alone deletes every tag but the last N pushed") {
    RetentionPolicy p;
    p.keep_last = 2;
    auto items =
        plan_tags(p, {tag("a", 5, 0), tag("b", 1, 0), tag("c", 3, 0), tag("d", 2, 0)}, now);
    CHECK(planned(items) == std::vector<std::string>{"a/beyond_keep_last", "c/beyond_keep_last"});
    CHECK(items[0].digest == dg('a'));
}

TEST_CASE("delete rules take what they name, keep rules protect") {
    RetentionPolicy p;
    p.older_than_days = 30;
    p.keep_tags = {"latest", "v*"};
    p.keep_last = 1;
    auto items = plan_tags(p,
                           {tag("old", 40, 0), tag("latest", 90, 90), tag("v1.0", 90, 90),
                            tag("ci-1", 31, 0), tag("ci-2", 32, 29)},
                           now);
    // ci-1 is the last pushed: keep_last keeps it though it is 31 days old;
    // latest and v1.0 are kept by pattern; old and ci-2 are past 30 days.
    CHECK(planned(items) == std::vector<std::string>{"ci-2/older_than", "old/older_than"});
}

TEST_CASE("not pulled counts from the latest of pull and push") {
    RetentionPolicy p;
    p.not_pulled_days = 10;
    auto items = plan_tags(
        p, {tag("stale", 50, 11), tag("fresh-pull", 50, 2), tag("fresh-push", 3, 50)}, now);
    CHECK(planned(items) == std::vector<std::string>{"stale/not_pulled"});
}

TEST_CASE("a tag with no known push time is kept, ties order by name") {
    RetentionPolicy p;
    p.older_than_days = 1;
    TagFacts unknown{"unknown", dg('b'), 0, 0};
    CHECK(plan_tags(p, {unknown}, now).empty());
    RetentionPolicy k;
    k.keep_last = 1;
    auto items = plan_tags(k, {tag("b", 1, 0), tag("a", 1, 0)}, now);
    CHECK(planned(items) == std::vector<std::string>{"b/beyond_keep_last"});
    // Unknown counts as pushed now under keep_last too: the newest, kept.
    auto newest = plan_tags(k, {tag("known", 1, 0), TagFacts{"unknown", dg('b'), 0, 0}}, now);
    CHECK(planned(newest) == std::vector<std::string>{"known/beyond_keep_last"});
}

TEST_CASE("a policy with only untagged_days or keep_tags deletes no tag") {
    RetentionPolicy p;
    p.untagged_days = 1;
    p.keep_tags = {"*"};
    CHECK(plan_tags(p, {tag("a", 50, 50)}, now).empty());
}

TEST_CASE("the first policy naming a repository applies") {
    std::vector<RetentionPolicy> ps(2);
    ps[0].repositories = {"ci/**"};
    ps[0].keep_last = 1;
    ps[1].repositories = {"**"};
    ps[1].keep_last = 5;
    CHECK(policy_for(ps, "ci/a/b")->keep_last == 1);
    CHECK(policy_for(ps, "team/app")->keep_last == 5);
    ps.pop_back();
    CHECK(policy_for(ps, "team/app") == nullptr);
}
