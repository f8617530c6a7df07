// SPDX-License-Identifier: Apache-2.0
#include <doctest/doctest.h>

#include <string>

#include "mirror/blob_fetch.hh"
#include "mirror/fetcher.hh"
#include "mirror/flights.hh"

using namespace rp::mirror;

TEST_CASE("a Docker Hub bearer challenge parses into realm, service and scope") {
    auto c = parse_challenge(R"(Bearer realm="https://auth.docker.io/token",)"
                             R"(service="registry.docker.io",)"
                             R"(scope="repository:library/alpine:pull")");
    REQUIRE(c);
    CHECK(c->scheme == "bearer");
    CHECK(c->realm == "https://auth.docker.io/token");
    CHECK(c->service == "registry.docker.io");
    CHECK(c->scope == "repository:library/alpine:pull");
}

TEST_CASE("challenges: case, spacing, unquoted values, escapes, Basic and junk") {
    auto a = parse_challenge(R"(  BEARER Realm = "https://r/t" , Service=svc,scope="a:b\"c" )");
    REQUIRE(a);
    CHECK(a->scheme == "bearer");
    CHECK(a->realm == "https://r/t");
    CHECK(a->service == "svc");
    CHECK(a->scope == "a:b\"c");
    auto b = parse_challenge(R"(Basic realm="Registry Realm")");
    REQUIRE(b);
    CHECK(b->scheme == "basic");
    CHECK(b->realm == "Registry Realm");
    CHECK_FALSE(parse_challenge(R"(Bearer realm="unterminated)"));
    CHECK_FALSE(parse_challenge(""));
    auto only = parse_challenge("Bearer");
    REQUIRE(only);
    CHECK(only->realm.empty());
    // Docker Hub's answer to a token that does not reach the repository.
    auto denied = parse_challenge(R"(Bearer realm="https://auth.docker.io/token",)"
                                  R"(service="registry.docker.io",scope="repository:x/y:pull",)"
                                  R"(error="insufficient_scope")");
    REQUIRE(denied);
    CHECK(denied->error == "insufficient_scope");
    CHECK(denied->scope == "repository:x/y:pull");
}

TEST_CASE("token answers: token or access_token, expires_in defaulting to 60 s") {
    auto t = parse_token_answer(R"({"token":"abc","expires_in":300,"issued_at":"x"})");
    REQUIRE(t);
    CHECK(t->token == "abc");
    CHECK(t->expires_in_s == 300);
    auto a = parse_token_answer(R"({"access_token":"xyz"})");
    REQUIRE(a);
    CHECK(a->token == "xyz");
    CHECK(a->expires_in_s == 60);
    CHECK_FALSE(parse_token_answer(R"({"token":""})"));
    CHECK_FALSE(parse_token_answer("<html>"));
    CHECK_FALSE(parse_token_answer(R"(["token"])"));
}

TEST_CASE("the not-found memory is bounded: the oldest entries go first") {
    NotFound nf(3);
    for (const char* k : {"a", "b", "c", "d"}) {
        nf.remember(k);
    }
    CHECK(nf.size() == 3);
    CHECK_FALSE(nf.remembered("a", 60));
    CHECK(nf.remembered("d", 60));
    CHECK(nf.remembered("b", 60));
    CHECK_FALSE(nf.remembered("d", 0)); // a TTL of 0 remembers nothing
    nf.remember("b");                   // renewed, not added twice
    CHECK(nf.size() == 3);
    CHECK(nf.hits() == 2);
}

TEST_CASE("a response's Content-Length is taken only when it is a plain number") {
    rp::net::Response r;
    CHECK(!rp::mirror::content_length(r));
    r.headers.push_back({"content-length", "1048576"});
    CHECK(rp::mirror::content_length(r) == 1048576u);
    for (const char* bad : {"", "12x", "-1", " 5", "99999999999999999999999"}) {
        r.headers.back().value = bad;
        CHECK_MESSAGE(!rp::mirror::content_length(r), bad);
    }
}

TEST_CASE("only a broken, stalled or throttled transfer is resumed") {
    using rp::util::Errc;
    using rp::util::Error;
    CHECK(rp::mirror::resumable(Error::of(Errc::closed)));
    CHECK(rp::mirror::resumable(Error::of(Errc::timeout)));
    CHECK(rp::mirror::resumable(Error::of(Errc::busy)));
    CHECK(!rp::mirror::resumable(Error::of(Errc::not_found)));
    CHECK(!rp::mirror::resumable(Error::of(Errc::too_large)));
    CHECK(!rp::mirror::resumable(Error::of(Errc::stopped)));
    CHECK(!rp::mirror::resumable(Error::of(Errc::unsupported)));
}

TEST_CASE("an upstream tag page: its tags in order, null tags, and the next page's query") {
    auto p = parse_tag_page(R"({"name":"library/alpine","tags":["3.19","3.20"]})",
                            R"(</v2/library/alpine/tags/list?n=2&last=3.20>; rel="next")");
    REQUIRE(p);
    CHECK(p->tags == std::vector<std::string>{"3.19", "3.20"});
    CHECK(p->next_query == "n=2&last=3.20");
    auto empty = parse_tag_page(R"({"name":"x","tags":null})", "");
    REQUIRE(empty);
    CHECK(empty->tags.empty());
    CHECK(empty->next_query.empty());
    CHECK_FALSE(parse_tag_page("<html>", ""));
    CHECK_FALSE(parse_tag_page(R"({"tags":"latest"})", ""));
    CHECK_FALSE(parse_tag_page(R"({"tags":[1]})", ""));
    CHECK(parse_tag_page(R"({"tags":[]})", "<x>; rel=\"prev\"")->next_query.empty());
}

TEST_CASE("the list cache keeps a query for its TTL and holds at most its bound") {
    ListCache c(3);
    c.put("a", Listed{"A", "t", "", false});
    CHECK(c.get("a", 60)->body == "A");
    CHECK_FALSE(c.get("a", 0)); // a TTL of 0 keeps nothing
    CHECK_FALSE(c.get("missing", 60));
    for (const char* k : {"b", "c", "d", "e"}) {
        c.put(k, Listed{k, "", "", false});
    }
    CHECK(c.size() == 3);
    CHECK_FALSE(c.get("a", 60)); // the oldest went first
    CHECK(c.get("e", 60)->body == "e");
}

TEST_CASE("a breaker opens on a failure, starts one probe, and closes when told") {
    Upstream u;
    u.prefix = "docker.io";
    Breaker b;
    CHECK_FALSE(b.open(u));
    CHECK(b.wait_us(u) == 0);
    CHECK(b.failed(u, 5));       // no probe runs: the caller starts one
    CHECK_FALSE(b.failed(u, 1)); // one runs already
    CHECK(b.open(u));
    CHECK(b.wait_us(u) > 4'000'000); // the longer wait stands
    CHECK_FALSE(b.probe_done(u));    // still down: the probe goes on
    b.succeeded(u);
    CHECK_FALSE(b.open(u));
    CHECK(b.probe_done(u));
    CHECK(b.failed(u, 1)); // the next failure starts a new probe
    CHECK(b.short_circuits() == 1);
}
