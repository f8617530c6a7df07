// SPDX-License-Identifier: Apache-2.0
// Store::use_blob and remove_unreferenced_blob on a real shard and a
// temporary tree: a blob's data goes only when nothing links it and no
// writer holds a use, and a writer reviving it during a removal waits.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <limits>
#include <filesystem>
#include <string>
#include <vector>

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

// Runs `body(store, v2fd, shard)` on a real shard over a temporary tree.
template <class Body> void on_shard(Body body) {
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
    reactor::spawn(body(store, v2fd, &shard));
    shard.run();
    blocking.stop();
    companion.stop();
    ::close(v2fd);
    std::filesystem::remove_all(dir);
}

} // namespace

TEST_CASE("a blob's data goes only when nothing links it and no writer holds a use") {
    Outcome out;
    on_shard([&out](Store& store, int v2fd, reactor::Shard* shard) {
        return scenario(store, v2fd, &out, shard);
    });
    CHECK(out.pushed);
    CHECK(out.kept_while_linked);
    CHECK(out.kept_while_used);
    CHECK(out.removed);
    CHECK(out.gone);
    CHECK(out.pushed_again);
    CHECK(out.back);
}

namespace {

struct Collection {
    bool pushed = false;
    Store::Collected first, second;
    bool used_kept = false, recent_kept = false, referenced_kept = false;
    bool orphan_gone = false, orphan_unlinked = false, again_gone = false;
};

Task<void> collection(Store& store, int v2fd, Collection* out, reactor::Shard* shard) {
    const std::string used = "held by a writer", recent = "linked just now";
    const std::string named = "named by a manifest", orphan = "nothing needs me";
    auto d = [](const std::string& s) { return digest_of(Algorithm::sha256, s); };
    out->pushed = true;
    for (const std::string* s : {&used, &recent, &named, &orphan}) {
        out->pushed = out->pushed && static_cast<bool>(co_await push(store, "team/a", *s, d(*s)));
    }
    auto m = std::make_shared<ManifestInfo>();
    m->digest = d("{}");
    m->blobs = {d(named)};
    store.index().put_manifest("team/a", m);
    std::vector<Store::Collectable> batch;
    for (const std::string* s : {&used, &recent, &named, &orphan}) {
        batch.push_back(Store::Collectable{d(*s), {"team/a"}});
    }
    {
        Store::BlobUse use = co_await store.use_blob(d(used));
        // A grace period of an hour: every link just made is recent.
        const auto now = static_cast<std::int64_t>(std::time(nullptr));
        out->first = co_await store.collect_blobs(batch, now - 3600);
        out->recent_kept = exists(v2fd, d(recent)) && store.index().has_layer("team/a", d(recent));
        // Without a grace period: all but the used and the named one go.
        out->second = co_await store.collect_blobs(batch, std::numeric_limits<std::int64_t>::max());
        out->used_kept = exists(v2fd, d(used)) && store.index().has_layer("team/a", d(used));
    }
    out->referenced_kept = exists(v2fd, d(named)) && store.index().has_layer("team/a", d(named));
    out->orphan_gone = !exists(v2fd, d(orphan)) && !exists(v2fd, d(recent));
    out->orphan_unlinked = !store.index().has_layer("team/a", d(orphan));
    struct stat st {};
    out->orphan_unlinked =
        out->orphan_unlinked &&
        ::fstatat(v2fd, layout::layer_link("team/a", d(orphan)).c_str(), &st, 0) != 0;
    // Its use over, the used one goes too.
    std::vector<Store::Collectable> last{Store::Collectable{d(used), {"team/a"}}};
    auto third = co_await store.collect_blobs(last, std::numeric_limits<std::int64_t>::max());
    out->again_gone = third.blobs == 1 && third.links == 1 && !exists(v2fd, d(used));
    shard->request_stop();
}

} // namespace

TEST_CASE("collect_blobs removes links then data, keeping what is used, recent or referenced") {
    Collection out;
    on_shard([&out](Store& store, int v2fd, reactor::Shard* shard) {
        return collection(store, v2fd, &out, shard);
    });
    CHECK(out.pushed);
    CHECK(out.first.blobs == 0); // everything was linked within the cut
    CHECK(out.first.kept == 4);
    CHECK(out.recent_kept);
    CHECK(out.second.blobs == 2); // the recent one and the orphan
    CHECK(out.second.links == 2);
    CHECK(out.second.kept == 2); // the used one and the named one
    CHECK(out.second.errors == 0);
    CHECK(out.used_kept);
    CHECK(out.referenced_kept);
    CHECK(out.orphan_gone);
    CHECK(out.orphan_unlinked);
    CHECK(out.again_gone);
}

namespace {

struct TagMove {
    bool put = false, moved_kept = false, deleted = false, child_refused = false,
         child_lazily = false;
};

Task<void> tag_move(Store& store, TagMove* out, reactor::Shard* shard) {
    // Two manifests (no blobs), the tag on the second: a delete that expects
    // the first (planned before a push moved the tag) leaves the tag alone.
    auto make = [](const std::string& body) {
        auto m = std::make_shared<ManifestInfo>();
        m->digest = digest_of(Algorithm::sha256, body);
        m->media_type = "application/vnd.oci.image.manifest.v1+json";
        m->size = body.size();
        m->body = std::make_shared<const std::string>(body);
        return m;
    };
    auto first = make(R"({"schemaVersion":2,"layers":[]})");
    auto second = make(R"({"schemaVersion":2,"layers":[] })");
    out->put = co_await store.put_manifest("team/a", first, std::string("v1")) &&
               co_await store.put_manifest("team/a", second, std::string("v1"));
    // A batch as retention plans it: v1 expected at the first (it moved
    // since), v2 unknown; nothing goes.
    auto moved =
        co_await store.delete_tags("team/a", {{"v1", first->digest}, {"v2", second->digest}});
    out->moved_kept =
        moved == std::vector<Store::Outcome>{Store::Outcome::kept, Store::Outcome::kept} &&
        store.index().resolve_tag("team/a", "v1") == second->digest;
    auto del = co_await store.delete_tags("team/a", {{"v1", second->digest}});
    out->deleted = del == std::vector<Store::Outcome>{Store::Outcome::deleted} &&
                   !store.index().resolve_tag("team/a", "v1");
    // An index naming a child the repository does not hold: refused under
    // the lock when the caller asks (the API), stored when not (a mirror).
    auto index = make(R"({"schemaVersion":2,"manifests":[]})");
    auto with_child = std::make_shared<ManifestInfo>(*index);
    with_child->children = {digest_of(Algorithm::sha256, "no such child")};
    auto refused = co_await store.put_manifest("team/a", with_child, std::string("i"), true);
    out->child_refused = !refused && refused.error().kind == util::Errc::not_found &&
                         !store.index().resolve_tag("team/a", "i");
    out->child_lazily = static_cast<bool>(
        co_await store.put_manifest("team/a", with_child, std::string("i"), false));
    shard->request_stop();
}

} // namespace

TEST_CASE("a batch of tag deletes leaves a tag that moved since it was planned") {
    TagMove out;
    on_shard(
        [&out](Store& store, int, reactor::Shard* shard) { return tag_move(store, &out, shard); });
    CHECK(out.put);
    CHECK(out.moved_kept);
    CHECK(out.deleted);
    CHECK(out.child_refused);
    CHECK(out.child_lazily);
}
