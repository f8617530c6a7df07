// SPDX-License-Identifier: Apache-2.0
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "mirror/router.hh"

using namespace rp::mirror;

namespace {

std::vector<Upstream> fleet() {
    Upstream hub{"docker.io",
                 "https://registry-1.docker.io",
                 {"docker.io", "index.docker.io", "registry-1.docker.io"},
                 true,
                 {}};
    Upstream ghcr{"ghcr.io", "https://ghcr.io", {}, false, {}};
    Upstream k8s{"registry.k8s.io", "https://registry.k8s.io", {}, false, {}};
    return {hub, ghcr, k8s};
}

const auto none = [](std::string_view) { return false; };

} // namespace

TEST_CASE("a path prefix routes to its mirror, with Docker Hub's library/ applied") {
    Router r(fleet());
    Route a = r.route("docker.io/alpine", std::nullopt, none);
    CHECK(a.kind == Route::Kind::mirrored);
    CHECK(a.upstream->prefix == "docker.io");
    CHECK(a.upstream_name == "library/alpine");
    CHECK(a.local_name == "docker.io/library/alpine");
    Route b = r.route("docker.io/library/alpine", std::nullopt, none);
    CHECK(b.local_name == "docker.io/library/alpine");
    Route g = r.route("ghcr.io/org/tool", std::nullopt, none);
    CHECK(g.upstream->prefix == "ghcr.io");
    CHECK(g.upstream_name == "org/tool");
    Route solo = r.route("ghcr.io/tool", std::nullopt, none); // no library/ off Docker Hub
    CHECK(solo.upstream_name == "tool");
    // A prefix wins over ns (containerd with override_path sends both).
    Route both = r.route("ghcr.io/org/tool", std::string_view("docker.io"), none);
    CHECK(both.upstream->prefix == "ghcr.io");
}

TEST_CASE("ns is looked up among prefixes and hosts, never trusted; unknown ns is refused") {
    Router r(fleet());
    for (const char* ns : {"docker.io", "index.docker.io", "registry-1.docker.io"}) {
        Route a = r.route("alpine", std::string_view(ns), none);
        CHECK(a.kind == Route::Kind::mirrored);
        CHECK(a.local_name == "docker.io/library/alpine"); // one cache entry for all three
    }
    Route k = r.route("pause", std::string_view("registry.k8s.io"), none);
    CHECK(k.local_name == "registry.k8s.io/pause");
    CHECK(r.route("alpine", std::string_view("evil.example:80"), none).kind ==
          Route::Kind::unknown_ns);
    CHECK(r.route("alpine", std::string_view("127.0.0.1"), none).kind == Route::Kind::unknown_ns);
}

TEST_CASE("with neither, the default mirror takes names not hosted here") {
    Router r(fleet());
    Route a = r.route("alpine", std::nullopt, none);
    CHECK(a.kind == Route::Kind::mirrored);
    CHECK(a.local_name == "docker.io/library/alpine");
    auto hosted = [](std::string_view n) { return n == "team/app"; };
    CHECK(r.route("team/app", std::nullopt, hosted).kind == Route::Kind::hosted);
    CHECK(r.route("team/other", std::nullopt, hosted).kind == Route::Kind::mirrored);
    // No default: everything outside the prefixes is hosted.
    auto ups = fleet();
    ups[0].is_default = false;
    Router nd(ups);
    CHECK(nd.route("alpine", std::nullopt, none).kind == Route::Kind::hosted);
    CHECK(nd.route("docker.io", std::nullopt, none).kind == Route::Kind::hosted);
    CHECK(Router().route("docker.io/alpine", std::nullopt, none).kind == Route::Kind::hosted);
}

TEST_CASE("owner tells which names are under a mirrored prefix") {
    Router r(fleet());
    CHECK(r.owner("docker.io/library/alpine")->prefix == "docker.io");
    CHECK(r.owner("docker.iox/alpine") == nullptr);
    CHECK(r.owner("docker.io") == nullptr);
    CHECK(r.owner("team/app") == nullptr);
}

TEST_CASE("validation rejects overlapping prefixes, shared hosts, two defaults and bad values") {
    CHECK(validate(fleet()));
    CHECK(validate({}));
    auto with = [](auto change) {
        auto u = fleet();
        change(u);
        auto v = validate(u);
        REQUIRE(!v);
        return v.error().detail;
    };
    CHECK(with([](auto& u) { u[1].prefix = "docker.io/sub"; }).find("overlaps") !=
          std::string::npos);
    CHECK(with([](auto& u) { u[1].prefix = "docker.io"; }).find("overlaps") != std::string::npos);
    CHECK(with([](auto& u) { u[1].hosts = {"index.docker.io"}; }).find("another mirror") !=
          std::string::npos);
    CHECK(with([](auto& u) { u[2].is_default = true; }).find("default already") !=
          std::string::npos);
    CHECK(with([](auto& u) { u[1].url = "ftp://ghcr.io"; }).find("http://") != std::string::npos);
    CHECK(with([](auto& u) { u[1].url = "https://"; }).find("no host") != std::string::npos);
    CHECK(with([](auto& u) { u[1].prefix = "GHCR.io"; }).find("valid repository name") !=
          std::string::npos);
    CHECK(with([](auto& u) { u[1].hosts = {"Evil Host"}; }).find("host name") != std::string::npos);
}
