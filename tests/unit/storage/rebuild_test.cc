// SPDX-License-Identifier: Apache-2.0
#include "storage/rebuild.hh"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <thread>

#include "storage/digest.hh"
#include "storage/index.hh"
#include "storage/snapshot.hh"
#include "util/unique_fd.hh"

using namespace rp::storage;

namespace {

struct TempRoot {
    std::string path;
    rp::util::UniqueFd root;
    rp::util::UniqueFd v2;
    TempRoot() {
        char tmpl[] = "/tmp/rp-rebuild-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        path = tmpl;
        std::filesystem::create_directories(path + "/docker/registry/v2/repositories");
        root = rp::util::UniqueFd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        v2 = rp::util::UniqueFd(
            ::open((path + "/docker/registry/v2").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        REQUIRE(root.valid());
        REQUIRE(v2.valid());
    }
    ~TempRoot() { std::filesystem::remove_all(path); }
    std::string snapshot() const {
        std::ifstream in(path + "/" + std::string(snapshot_file), std::ios::binary);
        return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    }
};

} // namespace

// The server runs a save's index reads on a normal-priority thread (a
// nice-19 save preempted under the index lock stalled a shard 19 ms): every
// read goes through the runner, in batches, and the snapshot is the same.
TEST_CASE("a save reads the index only through its runner, in batches, and writes the same") {
    TempRoot t;
    Index index;
    constexpr int repos = 70; // two batches of at most 64
    for (int i = 0; i < repos; ++i) {
        Index::RepoLoad load;
        load.layers.push_back(digest_of(Algorithm::sha256, "layer " + std::to_string(i)));
        index.load_repo("batch/r" + std::to_string(100 + i), std::move(load));
    }
    REQUIRE(write_snapshot(t.root.get(), t.v2.get(), index, nullptr, 2));
    std::string inline_bytes = t.snapshot();

    int calls = 0;
    bool elsewhere = true;
    IndexReads reads = [&](const std::function<void()>& fn) {
        ++calls;
        auto me = std::this_thread::get_id();
        std::thread([&] {
            elsewhere = elsewhere && std::this_thread::get_id() != me;
            fn();
        }).join();
    };
    auto n = write_snapshot(t.root.get(), t.v2.get(), index, nullptr, 2, reads);
    REQUIRE(n);
    CHECK(calls == 1 + 2); // the repository names, then two batches
    CHECK(elsewhere);
    std::string bytes = t.snapshot();
    CHECK(bytes.size() == *n);
    CHECK(bytes == inline_bytes);
    auto rd = SnapshotReader::open(bytes);
    REQUIRE(rd);
    CHECK(rd->repos().size() == repos);
    CHECK(rd->digests().size() == repos);
}
