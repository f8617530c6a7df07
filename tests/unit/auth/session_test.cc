// SPDX-License-Identifier: Apache-2.0
#include "auth/session.hh"

#include <doctest/doctest.h>

#include <set>

using namespace rp::auth;

TEST_CASE("a session is found by its token until it expires, and not after a removal") {
    Sessions s(3600, 100);
    const auto a = s.create("alice", "h", 1000);
    CHECK(a.token.size() == 43); // 32 random bytes, base64url
    CHECK(a.session.csrf.size() == 43);
    CHECK(a.session.csrf != a.token);
    CHECK(a.session.expires_s == 4600);
    auto found = s.find(a.token, 1000);
    REQUIRE(found);
    CHECK(found->user == "alice");
    CHECK(found->csrf == a.session.csrf);
    CHECK(found->stamp == "h");
    CHECK(s.find(a.token, 4599));
    CHECK_FALSE(s.find(a.token, 4600)); // expired
    CHECK_FALSE(s.find("", 1000));
    CHECK_FALSE(s.find(a.token.substr(1), 1000));
    CHECK_FALSE(s.find(std::string(200, 'A'), 1000));
    const auto b = s.create("alice", "h", 1000);
    CHECK(b.token != a.token); // each sign-in its own
    s.remove(a.token);
    CHECK_FALSE(s.find(a.token, 1000));
    CHECK(s.find(b.token, 1000));
}

TEST_CASE("sessions are bounded: the expired, then the oldest, go first") {
    Sessions s(100, 3);
    const auto old = s.create("a", "h", 0);   // expires 100
    const auto mid = s.create("b", "h", 50);  // 150
    const auto late = s.create("c", "h", 60); // 160
    CHECK(s.size() == 3);
    const auto d = s.create("d", "h", 70); // full: the oldest (a) goes
    CHECK(s.size() == 3);
    CHECK_FALSE(s.find(old.token, 70));
    CHECK(s.find(mid.token, 70));
    CHECK(s.find(late.token, 70));
    CHECK(s.find(d.token, 70));
    // At 155 b has expired: it goes, and c stays.
    const auto e = s.create("e", "h", 155);
    CHECK(s.size() == 3);
    CHECK(s.find(late.token, 155));
    CHECK(s.find(e.token, 155));
}

TEST_CASE("a certificate user's CSRF token is stable and names one user") {
    Sessions s(100, 3);
    CHECK(s.csrf_for("alice") == s.csrf_for("alice"));
    CHECK(s.csrf_for("alice") != s.csrf_for("bob"));
    CHECK(s.csrf_for("alice").size() == 43);
    Sessions other(100, 3); // another process: another key
    CHECK(other.csrf_for("alice") != s.csrf_for("alice"));
}

TEST_CASE("cookie values") {
    CHECK(cookie_value("ringport_session=abc", "ringport_session") == "abc");
    CHECK(cookie_value("a=1; ringport_session=abc; b=2", "ringport_session") == "abc");
    CHECK(cookie_value("a=1;ringport_session = \"abc\"", "ringport_session") == "abc");
    CHECK(cookie_value("xringport_session=abc", "ringport_session").empty());
    CHECK(cookie_value("ringport_sessionx=abc", "ringport_session").empty());
    CHECK(cookie_value("", "ringport_session").empty());
    CHECK(cookie_value("ringport_session", "ringport_session").empty());
    CHECK(cookie_value("a=1; ringport_session=", "ringport_session").empty());
}

TEST_CASE("loopback peers") {
    CHECK(loopback_peer("127.0.0.1:5000"));
    CHECK(loopback_peer("127.3.4.5:1"));
    CHECK(loopback_peer("[::1]:5000"));
    CHECK(loopback_peer("[::ffff:127.0.0.1]:5000"));
    CHECK_FALSE(loopback_peer("10.0.0.1:5000"));
    CHECK_FALSE(loopback_peer("192.168.1.127:5000"));
    CHECK_FALSE(loopback_peer("[fe80::1]:5000"));
    CHECK_FALSE(loopback_peer("[::ffff:10.0.0.1]:5000"));
    CHECK_FALSE(loopback_peer(""));
}

TEST_CASE("one user's sign-ins push out only that user's oldest") {
    Sessions s(1000, 100, 2);
    const auto other = s.create("bob", "h", 0);
    const auto a1 = s.create("alice", "h", 10);
    const auto a2 = s.create("alice", "h", 20);
    const auto a3 = s.create("alice", "h", 30); // alice's third: her oldest goes
    CHECK_FALSE(s.find(a1.token, 30));
    CHECK(s.find(a2.token, 30));
    CHECK(s.find(a3.token, 30));
    CHECK(s.find(other.token, 30));
    for (int i = 0; i < 50; ++i) {
        (void)s.create("alice", "h", 40 + i);
    }
    CHECK(s.size() == 3);
    CHECK(s.find(other.token, 100));
}
