// SPDX-License-Identifier: Apache-2.0
// The index's byte counts (insights) against a recount from its content,
// after random changes of every kind.
#include <doctest/doctest.h>

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>

#include "storage/index.hh"

using namespace rp::storage;

namespace {

Digest sha_of(std::string_view bytes) { return digest_of(Algorithm::sha256, bytes); }

ManifestPtr image(int n, const std::vector<Digest>& blobs, std::vector<Digest> children = {}) {
    auto m = std::make_shared<ManifestInfo>();
    std::string body = "{\"n\":" + std::to_string(n) + "}";
    m->digest = sha_of(body);
    m->size = body.size();
    m->blobs = blobs;
    m->children = std::move(children);
    m->body = std::make_shared<const std::string>(body);
    return m;
}

// The counts recomputed from scratch from what the index lists, with the
// sizes `known` (a digest missing from it has no size yet).
struct Recount {
    std::map<std::string, Index::RepoSummary> repos;
    Index::Totals totals;
};

Recount recount(const Index& ix, const std::map<std::string, std::uint64_t>& known) {
    Recount out;
    std::map<std::string, std::set<std::string>> held;
    std::map<std::string, int> holders;
    for (const std::string& name : ix.repo_names()) {
        auto c = ix.content(name);
        REQUIRE(c);
        std::set<std::string>& h = held[name];
        for (const Digest& d : c->layers) {
            h.insert(d.str());
        }
        for (const Digest& d : c->manifests) {
            h.insert(d.str());
        }
        for (const std::string& d : h) {
            ++holders[d];
        }
    }
    for (const auto& [name, h] : held) {
        Index::RepoSummary& s = out.repos[name];
        for (const std::string& d : h) {
            auto k = known.find(d);
            if (k == known.end()) {
                ++s.unsized;
                continue;
            }
            s.bytes += k->second;
            s.unique_bytes += holders[d] == 1 ? k->second : 0;
        }
        out.totals.logical_bytes += s.bytes;
    }
    for (const auto& [d, n] : holders) {
        ++out.totals.blobs;
        auto k = known.find(d);
        if (k == known.end()) {
            ++out.totals.unsized;
        } else {
            out.totals.bytes += k->second;
        }
    }
    return out;
}

// A digest nothing refers to any more is freed with its size: the model
// forgets it too.
void forget_freed(const Index& ix, std::map<std::string, std::uint64_t>& known) {
    std::set<std::string> live;
    for (const std::string& name : ix.repo_names(true)) {
        auto c = ix.content(name);
        for (const Digest& d : c->layers) {
            live.insert(d.str());
        }
        for (const Digest& d : c->manifests) {
            live.insert(d.str());
            for (const Digest& b : ix.manifest(name, d)->blobs) {
                live.insert(b.str());
            }
        }
    }
    std::erase_if(known, [&](const auto& k) { return !live.contains(k.first); });
}

void check_against_recount(const Index& ix, const std::map<std::string, std::uint64_t>& known) {
    Recount want = recount(ix, known);
    std::size_t total = 0;
    auto got = ix.select({}, {}, false, 0, SIZE_MAX, &total);
    CHECK(total == got.size());
    REQUIRE(got.size() == want.repos.size());
    for (const Index::RepoSummary& s : got) {
        const Index::RepoSummary& w = want.repos.at(s.name);
        CHECK_MESSAGE(s.bytes == w.bytes, s.name);
        CHECK_MESSAGE(s.unique_bytes == w.unique_bytes, s.name);
        CHECK_MESSAGE(s.unsized == w.unsized, s.name);
    }
    Index::Totals t = ix.totals();
    CHECK(t.bytes == want.totals.bytes);
    CHECK(t.logical_bytes == want.totals.logical_bytes);
    CHECK(t.blobs == want.totals.blobs);
    CHECK(t.unsized == want.totals.unsized);
}

} // namespace

TEST_CASE("a blob's bytes move from unique to shared and back as repositories link it") {
    Index ix;
    Digest a = sha_of("a");
    ix.add_layer("one", a, 100);
    CHECK(ix.summary("one")->bytes == 100);
    CHECK(ix.summary("one")->unique_bytes == 100);
    ix.add_layer("two", a); // size already known from the first link
    CHECK(ix.summary("one")->unique_bytes == 0);
    CHECK(ix.summary("two")->bytes == 100);
    CHECK(ix.summary("two")->unique_bytes == 0);
    CHECK(ix.totals().bytes == 100);
    CHECK(ix.totals().logical_bytes == 200);
    ix.remove_layer("one", a);
    CHECK(!ix.summary("one"));
    CHECK(ix.summary("two")->unique_bytes == 100);
    ix.remove_layer("two", a);
    CHECK(ix.totals().bytes == 0);
    CHECK(ix.totals().blobs == 0);
}

TEST_CASE("sizes learned later count in every repository that holds the blob") {
    Index ix;
    Digest a = sha_of("a");
    Digest b = sha_of("b");
    Index::RepoLoad load;
    load.layers = {a, b};
    ix.load_repo("one", load);
    load.layers = {a};
    ix.load_repo("two", load);
    CHECK(ix.summary("one")->unsized == 2);
    CHECK(ix.totals().unsized == 2);
    CHECK(ix.unsized(10).size() == 2);
    ix.learn_sizes({{a, 7}, {b, 5}});
    CHECK(ix.unsized(10).empty());
    CHECK(ix.summary("one")->bytes == 12);
    CHECK(ix.summary("one")->unique_bytes == 5);
    CHECK(ix.summary("two")->bytes == 7);
    CHECK(ix.summary("two")->unique_bytes == 0);
    CHECK(ix.totals().bytes == 12);
    CHECK(ix.totals().logical_bytes == 19);
}

TEST_CASE("what a delete frees: what only the deleted manifests referenced") {
    Index ix;
    Digest base = sha_of("base"), own = sha_of("own"), cfg = sha_of("cfg");
    for (const Digest& d : {base, own, cfg}) {
        ix.add_layer("app", d, 1000);
    }
    ix.add_layer("other", base, 1000);
    ManifestPtr m = image(1, {cfg, base, own});
    ManifestPtr o = image(2, {base});
    ix.put_manifest("app", m);
    ix.set_tag("app", "v1", m->digest);
    ix.put_manifest("other", o);
    Index::Frees f = ix.frees("app", {m->digest}, false);
    CHECK(f.manifests == 1);
    CHECK(f.blobs == 2); // cfg and own; base is still referenced by other's manifest
    CHECK(f.bytes == 2000 + m->size);
    CHECK(f.exact);
    // The same manifest held by another repository too: nothing goes.
    ix.put_manifest("other", m);
    CHECK(ix.frees("app", {m->digest}, false).bytes == 0);
    // An index: its untagged children go with it, a tagged one stays.
    ManifestPtr c1 = image(3, {own}), c2 = image(4, {cfg});
    ManifestPtr idx = image(5, {}, {c1->digest, c2->digest});
    ix.put_manifest("multi", c1);
    ix.put_manifest("multi", c2);
    ix.put_manifest("multi", idx);
    ix.set_tag("multi", "c2", c2->digest);
    Index::Frees fi = ix.frees("multi", {idx->digest}, false);
    CHECK(fi.manifests == 2);
    CHECK(fi.bytes == idx->size + c1->size);
    // The whole repository: every manifest in it.
    CHECK(ix.frees("multi", {}, true).manifests == 3);
}

TEST_CASE("byte counts match a recount after random changes of every kind") {
    std::mt19937 rng(20261205);
    Index ix;
    std::vector<Digest> blobs;
    std::map<std::string, std::uint64_t> known;
    blobs.reserve(40);
    for (int i = 0; i < 40; ++i) {
        blobs.push_back(sha_of("blob" + std::to_string(i)));
    }
    const std::vector<std::string> repos = {"a", "b", "c/d", "e"};
    auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
    std::vector<std::pair<std::string, ManifestPtr>> put;
    for (int step = 0; step < 3000; ++step) {
        const std::string& repo = repos[pick(repos.size())];
        const Digest& d = blobs[pick(blobs.size())];
        switch (pick(7)) {
        case 0:
        case 1: { // a commit or mount knows the size; a load does not
            if (pick(3) != 0) {
                const std::uint64_t size = 10 + d.str()[8] % 50;
                ix.add_layer(repo, d, size);
                known.try_emplace(d.str(), size);
            } else {
                ix.add_layer(repo, d);
            }
            break;
        }
        case 2: ix.remove_layer(repo, d); break;
        case 3: {
            ManifestPtr m = image(step, {d, blobs[pick(blobs.size())]});
            ix.put_manifest(repo, m);
            known.try_emplace(m->digest.str(), m->size);
            put.emplace_back(repo, m);
            break;
        }
        case 4:
            if (!put.empty()) {
                const auto& [r, m] = put[pick(put.size())];
                ix.remove_manifest(pick(2) == 0 ? r : repo, m->digest);
            }
            break;
        case 5: { // the tree's truth replaces a repository (verification)
            auto c = ix.content(repo);
            Index::RepoLoad load;
            load.layers = {d};
            for (std::size_t i = 0; c && i < c->layers.size(); i += 2) {
                if (!(c->layers[i] == d)) {
                    load.layers.push_back(c->layers[i]);
                }
            }
            ix.replace_repo(repo, ix.generation(repo).value_or(0), load);
            break;
        }
        default: { // the startup pass learns some sizes
            std::vector<std::pair<Digest, std::uint64_t>> learned;
            for (const Digest& u : ix.unsized(1 + pick(5))) {
                const std::uint64_t size = 10 + u.str()[8] % 50;
                learned.emplace_back(u, size);
                known.try_emplace(u.str(), size);
            }
            ix.learn_sizes(learned);
            break;
        }
        }
        forget_freed(ix, known);
        if (step % 100 == 99) {
            check_against_recount(ix, known);
        }
    }
    check_against_recount(ix, known);
}

TEST_CASE("a manifest put where two repositories link its digest unsized counts once") {
    Index ix;
    ManifestPtr m = image(9, {});
    Index::RepoLoad load;
    load.layers = {m->digest};
    ix.load_repo("a", load);
    ix.load_repo("b", load);
    ix.put_manifest("c", m); // brings the size: a and b are recounted, c holds it once
    CHECK(ix.summary("c")->bytes == m->size);
    CHECK(ix.summary("a")->bytes == m->size);
    CHECK(ix.summary("c")->unique_bytes == 0);
    CHECK(ix.totals().bytes == m->size);
    CHECK(ix.totals().logical_bytes == 3 * m->size);
}

TEST_CASE("a size of 0 (its data was missing) gives way to the real one") {
    Index ix;
    Digest d = sha_of("late");
    Index::RepoLoad load;
    load.layers = {d};
    ix.load_repo("a", load);
    ix.learn_sizes({{d, 0}});
    CHECK(ix.summary("a")->unsized == 0);
    CHECK(ix.summary("a")->bytes == 0);
    ix.learn_sizes({{d, 40}}); // uploaded again
    CHECK(ix.summary("a")->bytes == 40);
    CHECK(ix.totals().bytes == 40);
    ix.learn_sizes({{d, 7}}); // a real size stands
    CHECK(ix.summary("a")->bytes == 40);
}
