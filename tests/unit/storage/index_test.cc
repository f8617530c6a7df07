// SPDX-License-Identifier: Apache-2.0
#include "storage/index.hh"

#include <doctest/doctest.h>

#include <memory>
#include <string>

using namespace rp::storage;

namespace {

Digest sha(std::string_view bytes) { return digest_of(Algorithm::sha256, bytes); }

ManifestPtr manifest(std::string_view bytes, bool with_body = true) {
    auto m = std::make_shared<ManifestInfo>();
    m->digest = sha(bytes);
    m->media_type = "application/vnd.oci.image.manifest.v1+json";
    m->size = bytes.size();
    if (with_body) {
        m->body = std::make_shared<const std::string>(bytes);
    }
    return m;
}

} // namespace

TEST_CASE("repositories holding the same manifest share one ManifestInfo") {
    Index ix;
    ManifestPtr a = manifest("{\"one\":1}");
    ManifestPtr b = manifest("{\"one\":1}"); // equal digest, another object
    REQUIRE(a != b);
    ix.put_manifest("r1", a);
    CHECK(ix.shared_manifest(a->digest) == a);
    ix.put_manifest("r2", b);
    CHECK(ix.manifest("r2", a->digest) == a);
    ix.put_manifest("r2", b); // again in the same repository: still one holder there
    ix.remove_manifest("r1", a->digest);
    CHECK(ix.manifest("r1", a->digest) == nullptr);
    CHECK(ix.manifest("r2", a->digest) == a);
    CHECK(ix.shared_manifest(a->digest) == a);
    ix.remove_manifest("r2", a->digest);
    CHECK(ix.shared_manifest(a->digest) == nullptr);
    CHECK(ix.manifest("r2", a->digest) == nullptr);
}

TEST_CASE("a shared manifest without a body is replaced by one with a body") {
    Index ix;
    ManifestPtr bare = manifest("{\"two\":2}", false);
    ManifestPtr full = manifest("{\"two\":2}", true);
    ix.put_manifest("r1", bare);
    ix.put_manifest("r2", full);
    CHECK(ix.shared_manifest(bare->digest) == full);
    CHECK(ix.manifest("r2", bare->digest) == full);
    ManifestPtr later = manifest("{\"two\":2}", false);
    ix.put_manifest("r3", later);
    CHECK(ix.manifest("r3", bare->digest) == full);
}

TEST_CASE("startup loads share manifests across repositories too") {
    Index ix;
    ManifestPtr a = manifest("{\"three\":3}");
    ManifestPtr b = manifest("{\"three\":3}");
    Index::RepoLoad l1;
    l1.manifests.push_back(a);
    l1.tags.emplace_back("v1", a->digest);
    ix.load_repo("x/one", std::move(l1));
    Index::RepoLoad l2;
    l2.manifests.push_back(b);
    ix.load_repo("x/two", std::move(l2));
    CHECK(ix.manifest("x/two", a->digest) == a);
    CHECK(ix.resolve_tag("x/one", "v1") == a->digest);
    CHECK_FALSE(ix.resolve_tag("x/two", "v1"));
    bool more = true;
    auto names = ix.catalog("", 100, &more);
    REQUIRE(names.size() == 2);
    CHECK(names[0] == "x/one");
    CHECK(names[1] == "x/two");
    CHECK_FALSE(more);
    auto c = ix.counts();
    CHECK(c.repos == 2);
    CHECK(c.manifests == 2);
    CHECK(c.tags == 1);
}

TEST_CASE("removing a manifest removes the tags that point at it") {
    Index ix;
    ManifestPtr a = manifest("{\"four\":4}");
    ManifestPtr b = manifest("{\"five\":5}");
    ix.put_manifest("r", a);
    ix.put_manifest("r", b);
    ix.set_tag("r", "t0", b->digest);
    ix.set_tag("r", "t1", a->digest);
    ix.set_tag("r", "t2", a->digest);
    CHECK(ix.tags_pointing_to("r", a->digest).size() == 2);
    ix.remove_manifest("r", a->digest);
    bool more = false;
    auto tags = ix.tags("r", "", 0, &more);
    REQUIRE(tags);
    REQUIRE(tags->size() == 1);
    CHECK(tags->front() == "t0");
    ix.remove_manifest("r", b->digest);
    CHECK_FALSE(ix.tags("r", "", 0, &more)); // nothing left: the repository is unknown
}
