// SPDX-License-Identifier: Apache-2.0
#include "storage/snapshot.hh"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>

using namespace rp::storage;

namespace {

// The sample's content, into `w`.
void fill(SnapshotWriter& w) {
    w.walk_dir(DirStamp{"repositories", 11, 100, 200});
    w.walk_dir(DirStamp{"repositories/a", 12, 101, 201});
    w.uploads_repo("a");
    SnapshotRepo r;
    r.name = "a";
    r.dirs = {DirStamp{"_layers", 13, 1, 2}, DirStamp{"_manifests/tags", 0, 0, 0}};
    r.layers = {w.digest("sha256:aa"), w.digest("sha256:bb")};
    r.manifests = {w.digest("sha256:cc")};
    r.tags = {{"latest", w.digest("sha256:cc")}, {"v1", w.digest("sha256:cc")}};
    w.repo(r);
    SnapshotRepo e;
    e.name = "empty/one";
    w.repo(e);
}

std::string sample() {
    SnapshotWriter w;
    fill(w);
    return w.finish();
}

} // namespace

TEST_CASE("a snapshot reads back what was written") {
    auto rd = SnapshotReader::open(sample());
    REQUIRE(rd);
    CHECK(rd->digests() == std::vector<std::string>{"sha256:aa", "sha256:bb", "sha256:cc"});
    REQUIRE(rd->walk().size() == 2);
    CHECK(rd->walk()[1].path == "repositories/a");
    CHECK(rd->uploads() == std::vector<std::string>{"a"});
    CHECK(rd->walk()[1].same_state(DirStamp{"x", 12, 101, 201}));
    CHECK_FALSE(rd->walk()[1].same_state(DirStamp{"x", 12, 102, 201}));
    auto& repos = rd->repos();
    REQUIRE(repos.size() == 2);
    CHECK(repos[0].name == "a");
    REQUIRE(repos[0].dirs.size() == 2);
    CHECK(repos[0].dirs[1].path == "_manifests/tags");
    CHECK(repos[0].dirs[1].ino == 0);
    CHECK(repos[0].layers == std::vector<std::uint32_t>{0, 1});
    CHECK(repos[0].manifests == std::vector<std::uint32_t>{2});
    auto tags = rd->tags(repos[0]);
    REQUIRE(tags);
    REQUIRE(tags->size() == 2);
    CHECK((*tags)[0] == std::pair<std::string, std::uint32_t>{"latest", 2});
    CHECK((*tags)[1].first == "v1");
    CHECK(repos[1].name == "empty/one");
    auto none = rd->tags(repos[1]);
    REQUIRE(none);
    CHECK(none->empty());
}

TEST_CASE("a writer with a sink hands over the same file in pieces, the header last") {
    std::string streamed;
    std::size_t pieces = 0;
    SnapshotWriter w([&](std::string_view piece) {
        streamed.append(piece);
        ++pieces;
        return true;
    });
    fill(w);
    std::string header = w.finish();
    REQUIRE(header.size() == 24);
    REQUIRE(streamed.size() > header.size());
    CHECK(streamed.substr(0, 24) == std::string(24, '\0')); // the placeholder
    streamed.replace(0, header.size(), header);
    CHECK(streamed == sample());
    CHECK(pieces >= 1);
    CHECK(SnapshotReader::open(streamed));
}

TEST_CASE("a big snapshot leaves a streaming writer a piece at a time and reads back") {
    constexpr int repos = 5000, tags = 40; // ~3 MiB: several pieces
    std::string streamed;
    std::size_t largest = 0;
    std::size_t pieces = 0;
    SnapshotWriter w([&](std::string_view piece) {
        streamed.append(piece);
        largest = std::max(largest, piece.size());
        ++pieces;
        return true;
    });
    SnapshotRepo r;
    for (int i = 0; i < repos; ++i) {
        r.name = "repo-" + std::to_string(i);
        r.tags.clear();
        for (int t = 0; t < tags; ++t) {
            r.tags.emplace_back("tag-" + std::to_string(t),
                                w.digest("sha256:" + std::to_string(i % 7)));
        }
        w.repo(r);
    }
    std::string header = w.finish();
    REQUIRE_FALSE(header.empty());
    streamed.replace(0, header.size(), header);
    CHECK(streamed.size() > 2 * SnapshotWriter::piece_bytes);
    CHECK(pieces >= 3);
    CHECK(largest < SnapshotWriter::piece_bytes + (64u << 10)); // never the whole file
    auto rd = SnapshotReader::open(streamed);
    REQUIRE(rd);
    CHECK(rd->digests().size() == 7);
    REQUIRE(rd->repos().size() == static_cast<std::size_t>(repos));
    auto last = rd->tags(rd->repos().back());
    REQUIRE(last);
    CHECK(last->size() == static_cast<std::size_t>(tags));
    CHECK(rd->digests()[last->front().second] == "sha256:" + std::to_string((repos - 1) % 7));
}

TEST_CASE("a sink that refuses a piece makes the writer return no header") {
    int calls = 0;
    SnapshotWriter w([&](std::string_view) { return ++calls > 1; }); // the first one fails
    fill(w);
    CHECK(w.finish().empty());
}

TEST_CASE("every truncation and every flipped byte of a snapshot is refused") {
    const std::string good = sample();
    for (std::size_t n = 0; n < good.size(); ++n) {
        CHECK_MESSAGE(!SnapshotReader::open(good.substr(0, n)), n);
        std::string bad = good;
        bad[n] = static_cast<char>(bad[n] ^ 0x01);
        CHECK_MESSAGE(!SnapshotReader::open(bad), n);
    }
    CHECK_FALSE(SnapshotReader::open(good + "x"));
}

TEST_CASE("a snapshot with a well-formed checksum but bad contents is refused") {
    // A digest number past the table, written by a broken writer.
    SnapshotWriter w;
    SnapshotRepo r;
    r.name = "a";
    r.tags = {{"t", 7}};
    w.repo(r);
    CHECK_FALSE(SnapshotReader::open(w.finish()));
    SnapshotWriter w2;
    SnapshotRepo r2;
    r2.name = "b";
    r2.layers = {3};
    w2.repo(r2);
    CHECK_FALSE(SnapshotReader::open(w2.finish()));
}

TEST_CASE("names and paths in a snapshot are checked like a request's, checksum or not") {
    auto with_repo = [](const char* name, const char* dir, const char* tag) {
        SnapshotWriter w;
        w.walk_dir(DirStamp{"repositories", 1, 2, 3});
        SnapshotRepo r;
        r.name = name;
        r.dirs = {DirStamp{dir, 4, 5, 6}};
        r.tags = {{tag, w.digest("sha256:aa")}};
        w.repo(r);
        return w.finish();
    };
    CHECK(SnapshotReader::open(with_repo("ok/name", "_layers", "v1")));
    CHECK_FALSE(SnapshotReader::open(with_repo("../escape", "_layers", "v1")));
    CHECK_FALSE(SnapshotReader::open(with_repo("UPPER", "_layers", "v1")));
    CHECK_FALSE(SnapshotReader::open(with_repo("ok", "_layers/../../x", "v1")));
    CHECK_FALSE(SnapshotReader::open(with_repo("ok", "/etc", "v1")));
    CHECK_FALSE(SnapshotReader::open(with_repo("ok", "_layers", "a/b")));
    CHECK_FALSE(SnapshotReader::open(with_repo("ok", "_layers", ".hidden")));

    SnapshotWriter walk;
    walk.walk_dir(DirStamp{"repositories/../../etc", 1, 2, 3});
    CHECK_FALSE(SnapshotReader::open(walk.finish()));
    SnapshotWriter uploads;
    uploads.uploads_repo("bad//name");
    CHECK_FALSE(SnapshotReader::open(uploads.finish()));
    SnapshotWriter twice;
    SnapshotRepo r;
    r.name = "same";
    twice.repo(r);
    twice.repo(r);
    CHECK_FALSE(SnapshotReader::open(twice.finish()));
}
