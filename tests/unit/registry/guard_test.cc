// SPDX-License-Identifier: Apache-2.0
#include "registry/guard.hh"

#include <doctest/doctest.h>

using namespace rp;

namespace {

http::Request req(std::string method, std::vector<http::Header> headers) {
    http::Request r;
    r.method = std::move(method);
    r.path = "/ringport/v1/gc";
    r.headers = std::move(headers);
    r.headers.push_back({"Host", "127.0.0.1:5000"});
    return r;
}

} // namespace

TEST_CASE("a change asked by another site's page is told apart") {
    auto cross_site_change = [](bool secure, const http::Request& r) {
        return registry::cross_site_change(r, secure);
    };
    CHECK(cross_site_change(false, req("POST", {{"Sec-Fetch-Site", "cross-site"}})));
    CHECK(cross_site_change(false, req("DELETE", {{"Sec-Fetch-Site", "same-site"}})));
    CHECK(cross_site_change(false, req("POST", {{"Origin", "http://evil.example"}})));
    CHECK(cross_site_change(false, req("POST", {{"Origin", "null"}})));
    CHECK(cross_site_change(false, req("PUT", {{"Origin", "http://127.0.0.1:5001"}})));
    CHECK(cross_site_change(false, req("POST", {{"Origin", "http://"}})));
    // The UI's own origin, clients that send neither header, and reads.
    CHECK_FALSE(cross_site_change(false, req("POST", {{"Origin", "http://127.0.0.1:5000"}})));
    CHECK(cross_site_change(false, req("POST", {{"Origin", "https://127.0.0.1:5000"}})));
    CHECK(cross_site_change(true, req("POST", {{"Origin", "http://127.0.0.1:5000"}})));
    CHECK_FALSE(cross_site_change(true, req("POST", {{"Origin", "https://127.0.0.1:5000"}})));
    CHECK_FALSE(cross_site_change(false, req("DELETE", {{"Sec-Fetch-Site", "same-origin"}})));
    CHECK_FALSE(cross_site_change(false, req("POST", {{"Sec-Fetch-Site", "none"}})));
    CHECK_FALSE(cross_site_change(false, req("PATCH", {})));
    CHECK_FALSE(cross_site_change(false, req("GET", {{"Sec-Fetch-Site", "cross-site"}})));
    CHECK_FALSE(cross_site_change(false, req("HEAD", {{"Origin", "http://evil.example"}})));
}
