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
    CHECK(match_route("/ringport/v1/session").kind == RouteKind::session);
    CHECK(match_route("/ui").kind == RouteKind::ui);
    CHECK(match_route("/ui/").kind == RouteKind::ui);
    CHECK(match_route("/ui/repositories/a/b").kind == RouteKind::ui);
    CHECK(match_route("/uix").kind == RouteKind::not_found);
    CHECK(match_route("/v2/ui/manifests/latest").kind == RouteKind::manifest);
    CHECK(match_route("/ringport/v1/gc").kind == RouteKind::gc);
    CHECK(match_route("/ringport/v1/retention").kind == RouteKind::retention);
    CHECK(match_route("/ringport/v1/scrub").kind == RouteKind::scrub);
    CHECK(match_route("/ringport/v1/mirrors").kind == RouteKind::mirrors);
    CHECK(match_route("/ringport/v1/mirrors/x").kind == RouteKind::not_found);
    auto repo = match_route("/ringport/v1/repositories/team/app");
    CHECK(repo.kind == RouteKind::repository);
    CHECK(repo.name == "team/app");
    CHECK(match_route("/ringport/v1/repositories").kind == RouteKind::repositories);
    CHECK(match_route("/ringport/v1/insights").kind == RouteKind::insights);
    CHECK(match_route("/ringport/v1/timeseries").kind == RouteKind::timeseries);
    auto tags = match_route("/ringport/v1/repositories/team/app/-/tags");
    CHECK(tags.kind == RouteKind::repository_tags);
    CHECK(tags.name == "team/app");
    auto tag = match_route("/ringport/v1/repositories/a/b/c/-/tags/v1.0");
    CHECK(tag.kind == RouteKind::repository_tag);
    CHECK(tag.name == "a/b/c");
    CHECK(tag.ref == "v1.0");
    auto m = match_route("/ringport/v1/repositories/app/-/manifests/sha256:ab");
    CHECK(m.kind == RouteKind::repository_manifest);
    CHECK(m.name == "app");
    CHECK(m.ref == "sha256:ab");
    CHECK(match_route("/metrics").kind == RouteKind::metrics);
}

TEST_CASE("paths that name no endpoint are not found") {
    for (const char* p :
         {"/", "/v1/", "/v2/a/manifests/", "/v2/manifests/x", "/v2/a/blobs/x/y", "/v2/tags/list",
          "/healthz/x", "/ringport/v1/status/x", "/ringport/v1/", "/metrics/x", "/ringport/v1/gc/x",
          "/ringport/v1/repositories/", "/ringport/v1/repositories/app/-/",
          "/ringport/v1/repositories/app/-/x", "/ringport/v1/repositories/app/-/tags/",
          "/ringport/v1/insights/x", "/ringport/v1/repositories/app/-/tags/a/b",
          "/ringport/v1/repositories/app/-/manifests/"}) {
        CHECK_MESSAGE(match_route(p).kind == RouteKind::not_found, p);
    }
}

TEST_CASE("the UI's own listener serves the UI, the admin API and blob reads only") {
    auto on_ui = [](const char* path, const char* method = "GET") {
        return served_to_ui(match_route(path).kind, method);
    };
    for (const char* p : {"/ui/", "/ui/repositories/a/b", "/ringport/v1/session",
                          "/ringport/v1/repositories", "/ringport/v1/repositories/a/-/tags/v1",
                          "/ringport/v1/status", "/ringport/v1/gc", "/healthz", "/readyz"}) {
        CHECK_MESSAGE(on_ui(p), p);
    }
    CHECK(on_ui("/ringport/v1/gc", "POST")); // the admin API's changes: the guard decides
    CHECK(on_ui("/v2/a/blobs/sha256:ab"));
    CHECK(on_ui("/v2/a/blobs/sha256:ab", "HEAD"));
    CHECK_FALSE(on_ui("/v2/a/blobs/sha256:ab", "DELETE"));
    for (const char* p : {"/v2/", "/v2/_catalog", "/v2/a/tags/list", "/v2/a/manifests/v1",
                          "/v2/a/blobs/uploads/", "/v2/a/referrers/sha256:ab", "/metrics", "/"}) {
        CHECK_MESSAGE(!on_ui(p), p);
    }
    CHECK_FALSE(on_ui("/v2/a/blobs/uploads/", "POST"));
}
