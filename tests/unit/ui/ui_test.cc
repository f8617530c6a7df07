// SPDX-License-Identifier: Apache-2.0
#include "ui/ui.hh"

#include <doctest/doctest.h>

#include <set>
#include <string>

#include "ui/assets.hh"

using namespace rp;

namespace {

http::Request get(std::string path, std::vector<http::Header> headers = {}) {
    http::Request r;
    r.method = "GET";
    r.path = std::move(path);
    r.target = r.path;
    r.headers = std::move(headers);
    return r;
}

std::string header(const http::Response& r, std::string_view name) {
    return std::string(r.header(name));
}

} // namespace

TEST_CASE("every asset is compiled in, sorted, with a gzip, a type and a strong ETag") {
    const auto all = ui::assets();
    REQUIRE(all.size() >= 4); // the page, the style, the bundled script, the icon
    std::set<std::string_view> etags;
    for (std::size_t i = 0; i < all.size(); ++i) {
        const ui::Asset& a = all[i];
        CAPTURE(a.name);
        if (i > 0) {
            CHECK(all[i - 1].name < a.name);
        }
        CHECK(!a.body.empty());
        // gzip's magic and method (deflate), and a gzip of text is smaller.
        REQUIRE(a.gzip.size() > 10);
        CHECK(static_cast<unsigned char>(a.gzip[0]) == 0x1f);
        CHECK(static_cast<unsigned char>(a.gzip[1]) == 0x8b);
        CHECK(a.gzip[2] == 8);
        CHECK(a.etag.size() == 34);
        CHECK(a.etag.front() == '"');
        CHECK(a.etag.back() == '"');
        CHECK(!a.etag.starts_with("W/"));
        CHECK(etags.insert(a.etag).second);
        CHECK(ui::find_asset(a.name) == &a);
    }
    CHECK(ui::find_asset("index.html") != nullptr);
    CHECK(ui::find_asset("app.js")->type == "text/javascript; charset=utf-8");
    CHECK(ui::find_asset("app.css")->type == "text/css; charset=utf-8");
    CHECK(ui::find_asset("nope.js") == nullptr);
    CHECK(ui::find_asset("") == nullptr);
}

TEST_CASE("the app page has no inline script or style: the CSP allows none") {
    const std::string_view page = ui::find_asset("index.html")->body;
    CHECK(page.find("<script type=\"module\" async src=\"/ui/assets/app.js?v=") !=
          std::string_view::npos);
    // Every <script has a src; no style element or attribute.
    for (std::size_t at = page.find("<script"); at != std::string_view::npos;
         at = page.find("<script", at + 1)) {
        const std::string_view tag = page.substr(at, page.find('>', at) - at);
        CHECK(tag.find(" src=") != std::string_view::npos);
    }
    CHECK(page.find("<style") == std::string_view::npos);
    CHECK(page.find("style=") == std::string_view::npos);
    CHECK(page.find(" on") == std::string_view::npos); // no onload= etc.
}

TEST_CASE("any path under /ui/ is the app; assets by name; /ui redirects") {
    for (const char* p :
         {"/ui/", "/ui/repositories", "/ui/repositories/a/b/-/tags/v1", "/ui/no/such/page"}) {
        CAPTURE(p);
        const http::Response r = ui::serve(get(p));
        CHECK(r.status == 200);
        CHECK(header(r, "Content-Type") == "text/html; charset=utf-8");
        CHECK(r.body == ui::find_asset("index.html")->body);
    }
    http::Response js = ui::serve(get("/ui/assets/app.js"));
    CHECK(js.status == 200);
    CHECK(header(js, "Content-Type") == "text/javascript; charset=utf-8");
    CHECK(js.body == ui::find_asset("app.js")->body);
    CHECK(ui::serve(get("/ui/assets/nope.js")).status == 404);
    CHECK(ui::serve(get("/ui/assets/../index.html")).status == 404);
    CHECK(ui::serve(get("/ui/assets/")).status == 404);
    http::Response redirect = ui::serve(get("/ui"));
    CHECK(redirect.status == 308);
    CHECK(header(redirect, "Location") == "/ui/");
}

TEST_CASE("every answer carries the security headers") {
    for (const char* p : {"/ui/", "/ui/assets/app.css", "/ui/assets/nope", "/ui"}) {
        CAPTURE(p);
        const http::Response r = ui::serve(get(p));
        CHECK(header(r, "Content-Security-Policy") == ui::content_security_policy);
        CHECK(header(r, "X-Content-Type-Options") == "nosniff");
        CHECK(header(r, "X-Frame-Options") == "DENY");
        CHECK(header(r, "Referrer-Policy") == "no-referrer");
    }
    CHECK(ui::content_security_policy.find("frame-ancestors 'none'") != std::string_view::npos);
    CHECK(ui::content_security_policy.find("unsafe") == std::string_view::npos);
}

TEST_CASE("methods other than GET and HEAD are refused") {
    http::Request r = get("/ui/");
    r.method = "POST";
    const http::Response resp = ui::serve(r);
    CHECK(resp.status == 405);
    CHECK(header(resp, "Allow") == "GET, HEAD");
    r.method = "HEAD";
    CHECK(ui::serve(r).status == 200);
}

TEST_CASE("a strong ETag answers 304; gzip when the client takes it") {
    const ui::Asset& a = *ui::find_asset("app.js");
    http::Response first = ui::serve(get("/ui/assets/app.js"));
    CHECK(header(first, "ETag") == a.etag);
    CHECK(header(first, "Cache-Control") == "no-cache");
    CHECK(header(first, "Vary") == "Accept-Encoding");
    CHECK(header(first, "Content-Encoding").empty());
    http::Response again =
        ui::serve(get("/ui/assets/app.js", {{"If-None-Match", std::string(a.etag)}}));
    CHECK(again.status == 304);
    CHECK(again.omit_body);
    CHECK(header(again, "ETag") == a.etag);
    CHECK(ui::serve(get("/ui/assets/app.js", {{"If-None-Match", "\"other\""}})).status == 200);
    // The page's ETag is not a module's.
    CHECK(ui::serve(get("/ui/", {{"If-None-Match", std::string(a.etag)}})).status == 200);
    http::Response packed =
        ui::serve(get("/ui/assets/app.js", {{"Accept-Encoding", "gzip, deflate, br"}}));
    CHECK(header(packed, "Content-Encoding") == "gzip");
    CHECK(packed.body == a.gzip);
    CHECK(ui::serve(get("/ui/assets/app.js", {{"Accept-Encoding", "gzip;q=0"}})).body == a.body);
}

TEST_CASE("Accept-Encoding and If-None-Match parsing") {
    CHECK(ui::accepts_gzip(get("/ui/", {{"Accept-Encoding", "gzip"}})));
    CHECK(ui::accepts_gzip(get("/ui/", {{"Accept-Encoding", "deflate, GZIP"}})));
    CHECK(ui::accepts_gzip(get("/ui/", {{"Accept-Encoding", "br;q=1.0, gzip;q=0.8"}})));
    CHECK(ui::accepts_gzip(get("/ui/", {{"Accept-Encoding", "*"}})));
    CHECK(ui::accepts_gzip(get("/ui/", {{"Accept-Encoding", "gzip; q=0.001"}})));
    CHECK_FALSE(ui::accepts_gzip(get("/ui/", {{"Accept-Encoding", ""}})));
    CHECK_FALSE(ui::accepts_gzip(get("/ui/", {{"Accept-Encoding", "identity"}})));
    CHECK_FALSE(ui::accepts_gzip(get("/ui/", {{"Accept-Encoding", "br, deflate"}})));
    CHECK_FALSE(ui::accepts_gzip(get("/ui/", {{"Accept-Encoding", "gzip;q=0"}})));
    CHECK_FALSE(ui::accepts_gzip(get("/ui/", {{"Accept-Encoding", "gzip;q=0.000"}})));
    CHECK_FALSE(ui::accepts_gzip(get("/ui/", {{"Accept-Encoding", "x-gzip2"}})));
    CHECK(ui::etag_listed(get("/ui/", {{"If-None-Match", "\"a\""}}), "\"a\""));
    CHECK(ui::etag_listed(get("/ui/", {{"If-None-Match", "\"b\", \"a\""}}), "\"a\""));
    CHECK(ui::etag_listed(get("/ui/", {{"If-None-Match", "W/\"a\""}}), "\"a\""));
    CHECK(ui::etag_listed(get("/ui/", {{"If-None-Match", "*"}}), "\"a\""));
    CHECK_FALSE(ui::etag_listed(get("/ui/", {{"If-None-Match", ""}}), "\"a\""));
    CHECK_FALSE(ui::etag_listed(get("/ui/", {{"If-None-Match", "\"ab\""}}), "\"a\""));
    CHECK_FALSE(ui::etag_listed(get("/ui/", {{"If-None-Match", "a"}}), "\"a\""));
    // Two header lines are one list.
    CHECK(ui::etag_listed(get("/ui/", {{"If-None-Match", "\"b\""}, {"If-None-Match", "\"a\""}}),
                          "\"a\""));
    CHECK(ui::accepts_gzip(get("/ui/", {{"Accept-Encoding", "br"}, {"Accept-Encoding", "gzip"}})));
}

TEST_CASE("the page names each file by its version, and that URL is cached for good") {
    const std::string_view page = ui::find_asset("index.html")->body;
    for (const char* name : {"app.js", "app.css", "favicon.svg"}) {
        CAPTURE(name);
        const ui::Asset& a = *ui::find_asset(name);
        const std::string version = "v=" + std::string(a.etag.substr(1, 16));
        const std::string url = "/ui/assets/" + std::string(name) + "?" + version;
        CHECK(page.find("\"" + url + "\"") != std::string_view::npos);
        http::Request req = get("/ui/assets/" + std::string(name));
        req.query = version;
        CHECK(header(ui::serve(req), "Cache-Control") == "public, max-age=31536000, immutable");
        // An old page's version, or none: revalidated.
        req.query = "v=0000000000000000";
        CHECK(header(ui::serve(req), "Cache-Control") == "no-cache");
        req.query.clear();
        CHECK(header(ui::serve(req), "Cache-Control") == "no-cache");
    }
    http::Request shell = get("/ui/repositories");
    shell.query = "v=" + std::string(ui::find_asset("index.html")->etag.substr(1, 16));
    CHECK(header(ui::serve(shell), "Cache-Control") == "no-cache");
}

TEST_CASE("the landing page preloads the list's first page") {
    for (const char* p : {"/ui/", "/ui/repositories"}) {
        CAPTURE(p);
        CHECK(header(ui::serve(get(p)), "Link") ==
              "</ringport/v1/repositories?sort=name&offset=0&limit=50>; rel=preload; as=fetch; "
              "crossorigin");
    }
    CHECK(header(ui::serve(get("/ui/storage")), "Link").empty());
    http::Request searched = get("/ui/repositories");
    searched.query = "q=web";
    CHECK(header(ui::serve(searched), "Link").empty());
}

TEST_CASE("no preload when the caller may not read the list") {
    CHECK(header(ui::serve(get("/ui/repositories"), false), "Link").empty());
}
