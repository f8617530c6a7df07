// SPDX-License-Identifier: Apache-2.0
#include <doctest/doctest.h>

#include <memory>
#include <string>

#include "storage/index.hh"
#include "storage/store.hh"

using namespace rp::storage;

namespace {

std::shared_ptr<const std::string> body_of(std::size_t n) {
    return std::make_shared<const std::string>(n, 'x');
}

} // namespace

TEST_CASE("manifest cache budget: bodies are charged and the charge returns with them") {
    Index index;
    StoreConfig cfg;
    cfg.manifest_cache_bytes_max = 100;
    Store store(-1, cfg, index); // no file is touched here

    auto a = store.cache_body(body_of(60));
    REQUIRE(a);
    CHECK(a->size() == 60);
    CHECK(store.cache_bytes_used() == 60);
    CHECK_FALSE(store.cache_body(body_of(41))); // over the budget: not cached
    CHECK(store.cache_bytes_used() == 60);
    CHECK_FALSE(store.cache_body(nullptr));

    auto b = store.cache_body(body_of(40)); // fills it exactly
    REQUIRE(b);
    CHECK(store.cache_bytes_used() == 100);

    // A copy shares the charge; only the last copy gives it back (a
    // manifest deleted from one repository while another still holds it).
    auto a2 = a;
    a.reset();
    CHECK(store.cache_bytes_used() == 100);
    a2.reset();
    CHECK(store.cache_bytes_used() == 40);

    auto c = store.cache_body(body_of(60)); // room again after the delete
    REQUIRE(c);
    CHECK(store.cache_bytes_used() == 100);
    b.reset();
    c.reset();
    CHECK(store.cache_bytes_used() == 0);
}

TEST_CASE("manifest cache budget: a charged body may outlive the store") {
    Index index;
    StoreConfig cfg;
    cfg.manifest_cache_bytes_max = 10;
    std::shared_ptr<const std::string> kept;
    {
        Store store(-1, cfg, index);
        kept = store.cache_body(body_of(10));
        REQUIRE(kept);
    }
    CHECK(*kept == std::string(10, 'x'));
    kept.reset(); // returns its charge to a counter the store no longer owns alone
}
