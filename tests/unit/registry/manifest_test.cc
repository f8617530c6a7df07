// SPDX-License-Identifier: Apache-2.0
#include "registry/manifest.hh"

#include <doctest/doctest.h>

#include <string>

using namespace rp::registry;
using rp::util::Errc;

namespace {
const std::string d1 = "sha256:" + std::string(64, '1');
const std::string d2 = "sha256:" + std::string(64, '2');

std::string image(const std::string& extra = "") {
    return R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
           R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
           d1 + R"(","size":2},"layers":[{"mediaType":"x","digest":")" + d2 +
           R"(","size":3,"urls":["http://example/x"]}])" + extra + "}";
}
} // namespace

TEST_CASE("an OCI image manifest yields its blobs, media type and artifact type") {
    auto p = parse_manifest(image(), "application/vnd.oci.image.manifest.v1+json");
    REQUIRE(p);
    CHECK(p->info.media_type == media::oci_manifest);
    CHECK(p->blobs.size() == 2);
    CHECK(p->blobs[1].has_urls);
    CHECK(p->info.artifact_type == "application/vnd.oci.image.config.v1+json");
    CHECK_FALSE(p->info.subject);
}

TEST_CASE("subject, artifactType and annotations are kept for referrers") {
    auto p = parse_manifest(image(R"(,"subject":{"mediaType":"m","digest":")" + d1 +
                                  R"(","size":1},"artifactType":"t","annotations":{"k":"v"})"),
                            "");
    REQUIRE(p);
    REQUIRE(p->info.subject);
    CHECK(p->info.subject->str() == d1);
    CHECK(p->info.artifact_type == "t");
    CHECK(p->info.annotations_json == R"({"k":"v"})");
}

TEST_CASE("the media type is inferred when the body does not name it") {
    auto idx = parse_manifest(R"({"schemaVersion":2,"manifests":[]})", "");
    REQUIRE(idx);
    CHECK(idx->is_index);
    CHECK(idx->info.media_type == media::oci_index);
}

TEST_CASE("bad manifests are invalid with a reason, schema 1 is flagged") {
    for (std::string bad :
         {std::string("{"), std::string("[]"), std::string("{}"),
          std::string(R"({"schemaVersion":3})"),
          std::string(
              R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"})"),
          std::string(R"({"schemaVersion":2,"manifests":{}})"), image() + "x",
          std::string(100000, '[')}) {
        auto p = parse_manifest(bad, "");
        CHECK_MESSAGE(!p, bad.substr(0, 60));
        if (!p) {
            CHECK(p.error().kind == Errc::invalid);
        }
    }
    auto s1 = parse_manifest(R"({"schemaVersion":1,"name":"x","signatures":[]})", "");
    REQUIRE(s1);
    CHECK(s1->schema1);
    CHECK(s1->info.media_type == media::docker_v1_signed);
}

TEST_CASE("a mediaType that contradicts the Content-Type is refused") {
    auto p = parse_manifest(image(), "application/vnd.docker.distribution.manifest.v2+json");
    CHECK_FALSE(p);
}

TEST_CASE("a descriptor's urls, annotations and platform are kept as Distribution marshals them") {
    const std::string d = "sha256:" + std::string(64, 'a');
    const std::string body =
        R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[)"
        R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
        d +
        R"(","size":10,"annotations":{"b":"2","a":"\"1\"","n":3},)"
        R"("platform":{"os":"linux","variant":"v7","architecture":"arm","x":1}},)"
        R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
        d + R"(","size":10}]})";
    auto p = parse_manifest(body, "");
    REQUIRE(p);
    REQUIRE(p->children.size() == 2);
    CHECK(p->children[0].extra_json ==
          R"(,"annotations":{"a":"\"1\"","b":"2"},"platform":{"architecture":"arm","os":"linux",)"
          R"("variant":"v7"})");
    CHECK(p->children[1].extra_json.empty());
}
