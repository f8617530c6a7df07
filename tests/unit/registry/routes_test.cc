// SPDX-License-Identifier: Apache-2.0
#include "registry/routes.hh"

#include <doctest/doctest.h>

using namespace rp::registry;

TEST_CASE("routes are found from the end, so names may contain slashes") {
    auto r = match_route("/v2/a/b/manifests/latest");
    CHECK(r.kind == RouteKind::manifest);
    CHECK(r.name == "a/b");
    CHECK(r.ref == "latest");
    r = match_route("/v2/a/blobs/b/blobs/sha256:x");
    CHECK(r.kind == RouteKind::blob);
    CHECK(r.name == "a/blobs/b");
    r = match_route("/v2/a/blobs/uploads/");
    CHECK(r.kind == RouteKind::upload_start);
    CHECK(r.name == "a");
    r = match_route("/v2/a/blobs/uploads/0a1b");
    CHECK(r.kind == RouteKind::upload);
    CHECK(r.ref == "0a1b");
    CHECK(match_route("/v2/a/tags/list").kind == RouteKind::tags_list);
    CHECK(match_route("/v2/a/referrers/sha256:x").kind == RouteKind::referrers);
    CHECK(match_route("/v2/_catalog").kind == RouteKind::catalog);
    CHECK(match_route("/v2/").kind == RouteKind::base);
    CHECK(match_route("/v2").kind == RouteKind::base);
    CHECK(match_route("/ringport/v1/status").kind == RouteKind::status);
    CHECK(match_route("/ringport/v1/gc").kind == RouteKind::gc);
    CHECK(match_route("/ringport/v1/retention").kind == RouteKind::retention);
    CHECK(match_route("/ringport/v1/scrub").kind == RouteKind::scrub);
    CHECK(match_route("/ringport/v1/mirrors").kind == RouteKind::mirrors);
    CHECK(match_route("/ringport/v1/mirrors/x").kind == RouteKind::not_found);
    auto repo = match_route("/ringport/v1/repositories/team/app");
    CHECK(repo.kind == RouteKind::repository);
    CHECK(repo.name == "team/app");
    CHECK(match_route("/metrics").kind == RouteKind::metrics);
}

TEST_CASE("paths that name no endpoint are not found") {
    for (const char* p : {"/", "/v1/", "/v2/a/manifests/", "/v2/manifests/x", "/v2/a/blobs/x/y",
                          "/v2/tags/list", "/healthz/x", "/ringport/v1/status/x", "/ringport/v1/",
                          "/metrics/x", "/ringport/v1/gc/x", "/ringport/v1/repositories/"}) {
        CHECK_MESSAGE(match_route(p).kind == RouteKind::not_found, p);
    }
}
