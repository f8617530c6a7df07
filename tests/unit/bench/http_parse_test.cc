// SPDX-License-Identifier: Apache-2.0
#include "http_parse.hh"

#include <doctest/doctest.h>

#include "histogram.hh"

using namespace rp::bench;

TEST_CASE("sizes take binary and decimal suffixes and refuse the rest") {
    CHECK(parse_size("123").value() == 123);
    CHECK(parse_size("4KiB").value() == 4096);
    CHECK(parse_size("64MiB").value() == 64ull << 20);
    CHECK(parse_size("64mib").value() == 64ull << 20);
    CHECK(parse_size("8M").value() == 8ull << 20);
    CHECK(parse_size("1GB").value() == 1000000000);
    CHECK(parse_size("1.5KiB").value() == 1536);
    CHECK(parse_size("2TiB").value() == 2ull << 40);
    CHECK_FALSE(parse_size(""));
    CHECK_FALSE(parse_size("MiB"));
    CHECK_FALSE(parse_size("-1"));
    CHECK_FALSE(parse_size("1.5.2"));
    CHECK_FALSE(parse_size("1XB"));
    CHECK_FALSE(parse_size("99999999999999999999"));
    CHECK_FALSE(parse_size("20000000TiB"));
    CHECK(format_size(64ull << 20) == "64 MiB");
    CHECK(format_size(1536) == "1.50 KiB");
}

TEST_CASE("URLs need http or https, a host and a port") {
    auto u = parse_url("http://127.0.0.1:5000/");
    REQUIRE(u);
    CHECK(u->host == "127.0.0.1");
    CHECK(u->port == "5000");
    CHECK(u->authority == "127.0.0.1:5000");
    auto v6 = parse_url("http://[::1]:8080");
    REQUIRE(v6);
    CHECK(v6->host == "::1");
    CHECK(v6->port == "8080");
    CHECK(parse_url("http://registry.local").value().port == "80");
    CHECK_FALSE(parse_url("http://registry.local").value().tls);
    auto s = parse_url("https://registry.local");
    REQUIRE(s);
    CHECK(s->tls);
    CHECK(s->port == "443");
    CHECK(parse_url("https://h:1").value().port == "1");
    CHECK_FALSE(parse_url("ftp://h:1"));
    CHECK_FALSE(parse_url("http://h:1/v2/"));
    CHECK_FALSE(parse_url("http://h:99999"));
}

TEST_CASE("Link headers give the rel=next target, absolute or relative") {
    CHECK(link_next(R"(</v2/_catalog?last=a%2Fb&n=100>; rel="next")") ==
          "/v2/_catalog?last=a%2Fb&n=100");
    CHECK(link_next(R"(<http://h:1/v2/x/tags/list?n=2&last=b>; rel="next")") ==
          "http://h:1/v2/x/tags/list?n=2&last=b");
    CHECK(link_next(R"(</a>; rel="prev", </b>; rel="next")") == "/b");
    CHECK(link_next(R"(</a>; rel="prev")").empty());
    CHECK(link_next("garbage").empty());
    CHECK(url_path("http://127.0.0.1:5000/v2/a/blobs/uploads/u?_state=x") ==
          "/v2/a/blobs/uploads/u?_state=x");
    CHECK(url_path("/v2/a?x=http://y") == "/v2/a?x=http://y");
    std::string t = "/v2/a/blobs/uploads/u";
    append_query(t, "digest", "sha256:00");
    CHECK(t == "/v2/a/blobs/uploads/u?digest=sha256:00");
    append_query(t, "n", "1");
    CHECK(t == "/v2/a/blobs/uploads/u?digest=sha256:00&n=1");
}

TEST_CASE("a response head yields status, framing and the headers a client follows") {
    ResponseHead h;
    REQUIRE(parse_response_head("HTTP/1.1 202 Accepted\r\nLocation: /v2/u\r\n"
                                "content-length: 0\r\nDocker-Content-Digest: sha256:ab\r\n"
                                "Link: </n>; rel=\"next\"\r\n\r\n",
                                h));
    CHECK(h.status == 202);
    CHECK(h.has_length);
    CHECK(h.content_length == 0);
    CHECK(h.location == "/v2/u");
    CHECK(h.digest == "sha256:ab");
    CHECK(link_next(h.link) == "/n");
    CHECK_FALSE(h.close);
    REQUIRE(parse_response_head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                                "Connection: close\r\n\r\n",
                                h));
    CHECK(h.chunked);
    CHECK(h.close);
    CHECK_FALSE(parse_response_head("HTTP/1.1 20 OK\r\n\r\n", h));
    CHECK_FALSE(parse_response_head("HTTP/1.1 200 OK\r\nno colon\r\n\r\n", h));
    CHECK_FALSE(parse_response_head("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", h));
}

namespace {

// Feeds `text` to a reader `step` bytes at a time; returns the body.
std::string read_all(ResponseReader& r, std::string_view text, std::size_t step) {
    std::string body;
    while (!text.empty() && !r.finished()) {
        std::string_view in = text.substr(0, step);
        text.remove_prefix(in.size());
        while (!in.empty() && !r.finished()) {
            body.append(r.feed(in));
        }
    }
    return body;
}

} // namespace

TEST_CASE("the reader handles split heads, chunked bodies and trailers in any slicing") {
    std::string chunked = "HTTP/1.1 100 Continue\r\n\r\n"
                          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "5;ext=1\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nX-T: y\r\n\r\n";
    for (std::size_t step : {1, 2, 3, 7, 1000}) {
        ResponseReader r;
        r.reset(false);
        CHECK(read_all(r, chunked, step) == "hello 0123456789");
        CHECK(r.state() == ResponseReader::State::done);
        CHECK(r.head().status == 200);
    }
    ResponseReader r;
    r.reset(false);
    CHECK(read_all(r, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcEXTRA", 4) == "abc");
    CHECK(r.state() == ResponseReader::State::done);
    r.reset(true); // HEAD: a Content-Length but no body
    CHECK(read_all(r, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", 5).empty());
    CHECK(r.state() == ResponseReader::State::done);
    r.reset(false);
    CHECK(read_all(r, "HTTP/1.1 200 OK\r\n\r\nuntil close", 3) == "until close");
    r.on_eof();
    CHECK(r.state() == ResponseReader::State::done);
    r.reset(false);
    (void)read_all(r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n", 100);
    CHECK(r.state() == ResponseReader::State::failed);
}

TEST_CASE("the latency histogram stays within its relative error") {
    Histogram h;
    for (std::uint64_t v = 1; v <= 100000; ++v) {
        h.record(v * 1000);
    }
    CHECK(h.count() == 100000);
    CHECK(h.max() == 100000000);
    auto near = [](std::uint64_t got, double want) {
        return std::abs(static_cast<double>(got) - want) <= want * 0.016;
    };
    CHECK(near(h.quantile(0.5), 50e6));
    CHECK(near(h.quantile(0.99), 99e6));
    CHECK(h.quantile(1.0) == 100000000);
    // 1 µs .. 100 ms in 1 µs steps: 5,001 values from 95 ms, within a bucket's width.
    CHECK(std::abs(static_cast<double>(h.count_from(95000000)) - 5001.0) <= 95000 * 0.016);
    CHECK(h.count_from(0) == 100000);
    CHECK(h.count_from(200000000) == 0);
    for (std::uint64_t v :
         {std::uint64_t{0}, std::uint64_t{63}, std::uint64_t{64}, std::uint64_t{1000},
          std::uint64_t{1} << 40, std::uint64_t{UINT64_MAX}}) {
        int i = Histogram::index_of(v);
        CHECK(i < Histogram::bucket_count);
        CHECK(Histogram::lowest_in(i) <= v);
        CHECK(v - Histogram::lowest_in(i) < Histogram::width_of(i));
    }
}
