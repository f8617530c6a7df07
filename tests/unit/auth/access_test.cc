// SPDX-License-Identifier: Apache-2.0
#include "auth/access.hh"

#include <doctest/doctest.h>

#include "auth/basic.hh"
#include "auth/htpasswd.hh"

using namespace rp::auth;

TEST_CASE("with no rules, signed-in users may do everything but admin; anonymous nothing") {
    Access a{AccessConfig{}};
    Identity alice{"alice"};
    Identity anon{};
    CHECK(a.granted(alice, "x/y") == (pull | push | del));
    CHECK(a.granted_server(alice) == catalog);
    CHECK(a.pulls_everything(alice));
    CHECK(a.granted(anon, "x/y") == 0);
    CHECK(a.granted_server(anon) == 0);
    CHECK_FALSE(a.any_anonymous());
}

TEST_CASE("rules grant the union of what names the caller: users, groups, *, anonymous") {
    AccessConfig cfg;
    cfg.groups["ci"] = {"bot1", "bot2"};
    cfg.rules.push_back(Rule{{"anonymous"}, {"public/**"}, pull});
    cfg.rules.push_back(Rule{{"*"}, {"public/**"}, pull | catalog});
    cfg.rules.push_back(Rule{{"group:ci"}, {"ci/**"}, pull | push});
    cfg.rules.push_back(Rule{{"alice"}, {"**"}, pull | push | del | admin | metrics});
    Access a(cfg);
    CHECK(a.any_anonymous());
    CHECK(a.granted(Identity{}, "public/x") == pull);
    CHECK(a.granted(Identity{}, "ci/x") == 0);
    CHECK(a.granted_server(Identity{}) == 0);
    CHECK(a.granted(Identity{"bot1"}, "ci/build") == (pull | push));
    CHECK(a.granted(Identity{"bot1"}, "public/x") == pull);
    CHECK(a.granted(Identity{"bot1"}, "team/x") == 0);
    CHECK(a.granted_server(Identity{"bot1"}) == catalog);
    CHECK_FALSE(a.pulls_everything(Identity{"bot1"}));
    CHECK(a.granted(Identity{"alice"}, "team/x") == (pull | push | del));
    CHECK(a.granted_server(Identity{"alice"}) == (catalog | admin | metrics));
    CHECK(a.pulls_everything(Identity{"alice"}));
    CHECK(a.granted(Identity{"mallory"}, "ci/build") == 0);
}

TEST_CASE("actions parse by name; an unknown one is an error naming it") {
    auto a = parse_actions({"pull", "delete", "catalog"});
    REQUIRE(a);
    CHECK(*a == (pull | del | catalog));
    CHECK(action_names(*a) == "pull,delete,catalog");
    auto bad = parse_actions({"pull", "write"});
    REQUIRE_FALSE(bad);
    CHECK(bad.error().detail.find("'write'") != std::string::npos);
}

TEST_CASE("htpasswd: bcrypt lines only, comments and blanks skipped, others name the line") {
    auto ok = parse_htpasswd(
        "# c\n\nalice:$2y$04$abcdefghijklmnopqrstuu5Nj4kkbMz2zmfKrtmCgUR4bHQjGUfKa\r\n", "f");
    REQUIRE(ok);
    CHECK(ok->hashes.size() == 1);
    CHECK(ok->hashes.count("alice") == 1);
    auto md5 = parse_htpasswd("alice:$2y$04$abcdefghijklmnopqrstuu5Nj4kkbMz2zmfKrtmCgUR4bHQjGUfKa\n"
                              "bob:$apr1$x$y\n",
                              "f");
    REQUIRE_FALSE(md5);
    CHECK(md5.error().detail.find("line 2") != std::string::npos);
    CHECK(md5.error().detail.find("bob") != std::string::npos);
    auto twice = parse_htpasswd("a:$2y$04$abcdefghijklmnopqrstuu5Nj4kkbMz2zmfKrtmCgUR4bHQjGUfKa\n"
                                "a:$2y$04$abcdefghijklmnopqrstuu5Nj4kkbMz2zmfKrtmCgUR4bHQjGUfKa\n",
                                "f");
    REQUIRE_FALSE(twice);
}

TEST_CASE("Authorization headers: Basic parsed strictly, anything else told apart") {
    CHECK(authorization_kind("") == HeaderKind::none);
    CHECK(authorization_kind("Basic YTpi") == HeaderKind::basic);
    CHECK(authorization_kind("basic YTpi") == HeaderKind::basic);
    CHECK(authorization_kind("Bearer x.y.z") == HeaderKind::bearer);
    CHECK(authorization_kind("Basic") == HeaderKind::malformed);
    CHECK(authorization_kind("Digest x") == HeaderKind::malformed);
    auto c = parse_basic("Basic YWxpY2U6cHc6d2l0aDpjb2xvbnM="); // alice:pw:with:colons
    REQUIRE(c);
    CHECK(c->user == "alice");
    CHECK(c->password == "pw:with:colons");
    CHECK_FALSE(parse_basic("Basic YWxpY2U"));   // no padding
    CHECK_FALSE(parse_basic("Basic YWxpY2U="));  // "alice": no colon
    CHECK_FALSE(parse_basic("Basic OnB3"));      // ":pw": no user
    CHECK_FALSE(parse_basic("Basic YT1i=YTpi")); // padding in the middle
    CHECK_FALSE(parse_basic("Basic YQBiOmM="));  // a NUL in the user
    CHECK(client_address("127.0.0.1:5000") == "127.0.0.1");
    CHECK(client_address("[::1]:5000") == "::1");
}

TEST_CASE("a user named like a group is not that group") {
    AccessConfig cfg;
    cfg.groups["admins"] = {"root"};
    cfg.rules.push_back(Rule{{"group:admins"}, {"**"}, pull | push});
    Access a(cfg);
    CHECK(a.granted(Identity{"root"}, "x") == (pull | push));
    CHECK(a.granted(Identity{"group:admins"}, "x") == 0); // a certificate CN, say
}
