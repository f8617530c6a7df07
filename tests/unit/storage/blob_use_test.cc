// SPDX-License-Identifier: Apache-2.0
// Store::use_blob and remove_unreferenced_blob on a real shard and a
// temporary tree: a blob's data goes only when nothing links it and no
// writer holds a use, and a writer reviving it during a removal waits.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "reactor/shard.hh"
#include "reactor/sync.hh"
#include "reactor/task.hh"
#include "storage/index.hh"
#include "storage/layout.hh"
#include "storage/store.hh"

using namespace rp;
using namespace rp::storage;
using reactor::Task;

namespace {

struct Outcome {
    bool pushed = false;
    bool kept_while_linked = false;
    bool kept_while_used = false;
    bool removed = false;
    bool gone = false;
    bool pushed_again = false;
    bool back = false;
};

Task<util::Result<void>> push(Store& store, const std::string& repo, const std::string& bytes,
                              const Digest& d) {
    auto up = co_await store.start_upload(repo);
    if (!up) {
        co_return std::move(up).error();
    }
    if (auto a = co_await store.append(**up, bytes); !a) {
        co_await store.cancel_upload(*up);
        co_return a;
    }
    co_return co_await store.commit_upload(*up, d, bytes.size());
}

bool exists(int v2fd, const Digest& d) {
    struct stat st {};
    return ::fstatat(v2fd, layout::blob_data(d).c_str(), &st, 0) == 0;
}

Task<void> scenario(Store& store, int v2fd, Outcome* out, reactor::Shard* shard) {
    const std::string bytes = "a layer that two writers race for";
    const Digest d = digest_of(Algorithm::sha256, bytes);
    out->pushed = static_cast<bool>(co_await push(store, "team/a", bytes, d));
    auto linked = co_await store.remove_unreferenced_blob(d);
    out->kept_while_linked = linked && !*linked && exists(v2fd, d);
    (void)co_await store.delete_blob("team/a", d); // the link goes; the data stays
    {
        Store::BlobUse use = co_await store.use_blob(d); // a writer between check and link
        auto used = co_await store.remove_unreferenced_blob(d);
        out->kept_while_used = used && !*used && exists(v2fd, d);
    }
    auto removed = co_await store.remove_unreferenced_blob(d);
    out->removed = removed && *removed;
    out->gone = !exists(v2fd, d);
    // Revived after its removal: written again, linked, readable.
    out->pushed_again = static_cast<bool>(co_await push(store, "team/b", bytes, d));
    out->back = exists(v2fd, d) && store.index().has_layer("team/b", d);
    shard->request_stop();
}

} // namespace

TEST_CASE("a blob's data goes only when nothing links it and no writer holds a use") {
    char tmpl[] = "/tmp/rp-blob-use-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    const std::string dir = tmpl;
    int v2fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(v2fd >= 0);
    Index index;
    Store store(v2fd, StoreConfig{}, index);
    reactor::ThreadPool blocking("t-blocking", 1);
    reactor::ThreadPool companion("t-hash", 1);
    reactor::Shard shard(0, 64);
    REQUIRE(shard.init());
    shard.set_pools(&blocking, &companion);
    Outcome out;
    reactor::spawn(scenario(store, v2fd, &out, &shard));
    shard.run();
    blocking.stop();
    companion.stop();
    ::close(v2fd);
    std::filesystem::remove_all(dir);
    CHECK(out.pushed);
    CHECK(out.kept_while_linked);
    CHECK(out.kept_while_used);
    CHECK(out.removed);
    CHECK(out.gone);
    CHECK(out.pushed_again);
    CHECK(out.back);
}
