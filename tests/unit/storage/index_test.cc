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

TEST_CASE("lookups of absent repositories, tags and digests leave no state") {
    Index ix;
    ManifestPtr a = manifest("{\"six\":6}");
    ix.put_manifest("held", a);
    auto before = ix.footprint();
    for (int i = 0; i < 100; ++i) {
        std::string name = "absent/" + std::to_string(i);
        Digest d = sha("absent " + std::to_string(i));
        bool more = false;
        CHECK_FALSE(ix.repo_exists(name));
        CHECK_FALSE(ix.resolve_tag(name, "latest"));
        CHECK_FALSE(ix.resolve_tag("held", "t" + std::to_string(i)));
        CHECK(ix.manifest(name, d) == nullptr);
        CHECK(ix.manifest("held", d) == nullptr);
        CHECK_FALSE(ix.has_layer("held", d));
        CHECK_FALSE(ix.any_repo_has_layer(d));
        CHECK(ix.shared_manifest(d) == nullptr);
        CHECK_FALSE(ix.tags(name, "", 0, &more));
        CHECK(ix.referrers("held", d).empty());
        CHECK(ix.tags_pointing_to(name, d).empty());
        ix.remove_tag(name, "latest");
        ix.remove_manifest(name, d);
        ix.remove_layer("held", d);
    }
    auto after = ix.footprint();
    CHECK(after.repo_states == before.repo_states);
    CHECK(after.digests == before.digests);
    CHECK(after.digest_slots == before.digest_slots);
}

TEST_CASE("a repository emptied by deletes is freed with the digests it held") {
    Index ix;
    ManifestPtr img = manifest("{\"seven\":7}");
    auto referrer = std::make_shared<ManifestInfo>(*manifest("{\"sig\":1}"));
    referrer->subject = img->digest;
    ix.add_layer("gone/repo", sha("layer"));
    ix.put_manifest("gone/repo", img);
    ix.put_manifest("gone/repo", referrer);
    ix.set_tag("gone/repo", "v1", img->digest);
    ix.set_tag("gone/repo", "v1", referrer->digest); // re-pointed: the old one's reference goes
    ix.set_tag("gone/repo", "v2", img->digest);
    CHECK(ix.footprint().repo_states == 1);
    CHECK(ix.footprint().digests == 3);
    REQUIRE(ix.referrers("gone/repo", img->digest).size() == 1);
    ix.remove_manifest("gone/repo", referrer->digest);
    CHECK(ix.referrers("gone/repo", img->digest).empty());
    ix.remove_manifest("gone/repo", img->digest);
    CHECK(ix.footprint().digests == 1); // the layer
    CHECK(ix.repo_exists("gone/repo"));
    ix.remove_layer("gone/repo", sha("layer"));
    CHECK_FALSE(ix.repo_exists("gone/repo"));
    auto f = ix.footprint();
    CHECK(f.repo_states == 0);
    CHECK(f.digests == 0);
    // Freed ids are reused: storing again does not grow the table.
    ix.add_layer("again", sha("other layer"));
    ix.add_layer("again", sha("layer"));
    ix.add_layer("again", sha("third"));
    CHECK(ix.footprint().digest_slots == f.digest_slots);
    CHECK(ix.has_layer("again", sha("layer")));
    CHECK(ix.has_layer("again", sha("other layer")));
}

TEST_CASE("a lease keeps an empty repository's state until it is released") {
    Index ix;
    {
        RepoLease l = ix.lease("leased");
        RepoState* st = &*l;
        CHECK(ix.footprint().repo_states == 1);
        CHECK_FALSE(ix.repo_exists("leased")); // not listed while it holds nothing
        RepoLease again = ix.lease("leased");
        CHECK(&*again == st); // one state per name: one write_mu
    }
    CHECK(ix.footprint().repo_states == 0);
    {
        RepoLease l = ix.lease("kept");
        ix.add_layer("kept", sha("x"));
    }
    CHECK(ix.footprint().repo_states == 1); // it holds something: it stays
    CHECK(ix.repo_exists("kept"));
}

TEST_CASE("generations never repeat across a freed and remade repository") {
    Index ix;
    ix.add_layer("g", sha("a"));
    auto g1 = ix.generation("g");
    REQUIRE(g1);
    ix.remove_layer("g", sha("a"));
    CHECK_FALSE(ix.generation("g"));
    ix.add_layer("g", sha("a"));
    auto g2 = ix.generation("g");
    REQUIRE(g2);
    CHECK(*g2 != *g1);
    // A verification that read the old generation must not overwrite.
    CHECK_FALSE(ix.replace_repo("g", *g1, Index::RepoLoad{}));
    CHECK(ix.has_layer("g", sha("a")));
    // One that saw the repository absent (generation 0) may only fill an absent one.
    CHECK_FALSE(ix.replace_repo("g", 0, Index::RepoLoad{}));
    Index::RepoLoad l;
    l.layers.push_back(sha("b"));
    CHECK(ix.replace_repo("new", 0, std::move(l)));
    CHECK(ix.has_layer("new", sha("b")));
}

TEST_CASE("a blob is referenced while some held manifest names it, counted once per manifest") {
    Index ix;
    Digest layer = sha("layer");
    Digest orphan = sha("orphan");
    auto m = std::make_shared<ManifestInfo>(*manifest("{\"image\":1}"));
    m->blobs = {sha("config"), layer};
    ix.add_layer("a", layer);
    ix.add_layer("a", orphan);
    ix.add_layer("b", orphan);
    CHECK_FALSE(ix.blob_referenced(layer)); // a link is not a reference
    ix.put_manifest("a", m);
    ix.put_manifest("b", m); // the same manifest in two repositories
    CHECK(ix.blob_referenced(layer));
    CHECK(ix.blob_referenced(sha("config"))); // named, even with no link anywhere
    CHECK(ix.blob_referenced(m->digest));     // a held manifest keeps its own bytes
    CHECK_FALSE(ix.blob_referenced(orphan));
    auto links = ix.unreferenced_layer_links();
    REQUIRE(links.size() == 2);
    CHECK(links[0] == std::pair<std::string, Digest>("a", orphan));
    CHECK(links[1] == std::pair<std::string, Digest>("b", orphan));
    ix.remove_manifest("a", m->digest);
    CHECK(ix.blob_referenced(layer)); // b still holds it
    ix.remove_manifest("b", m->digest);
    CHECK_FALSE(ix.blob_referenced(layer));
    CHECK_FALSE(ix.blob_referenced(sha("config")));
    CHECK(ix.unreferenced_layer_links().size() == 3);
    ix.remove_layer("a", layer);
    ix.remove_layer("a", orphan);
    ix.remove_layer("b", orphan);
    CHECK(ix.footprint().digests == 0); // every reference to an interned digest went
}
