// SPDX-License-Identifier: Apache-2.0
#include "http/request_parser.hh"

#include <doctest/doctest.h>

#include <string>

using rp::http::RequestParser;
using Status = RequestParser::Status;

namespace {

// Feeds `in` in pieces of `step` bytes the way a connection would, collecting
// body bytes, until one message is done. Returns the body.
std::string parse_one(RequestParser& p, const std::string& in, std::size_t step, Status* last) {
    std::string body;
    std::size_t off = 0;
    for (int guard = 0; guard < 100000; ++guard) {
        std::size_t n = std::min(step, in.size() - off);
        auto st = p.feed(in.data() + off, n);
        for (auto s : p.body_spans()) {
            body.append(s.data(), s.size());
        }
        off += st.consumed;
        *last = st.status;
        if (st.status == Status::message_done || st.status == Status::error) {
            return body;
        }
        if (st.status == Status::need_more && off == in.size()) {
            return body;
        }
    }
    return body;
}

} // namespace

TEST_CASE("a request head is parsed into method, path, query and headers") {
    RequestParser p({});
    std::string in = "GET /v2/a%2Fb/tags/list?n=2&last=x HTTP/1.1\r\nHost: h\r\nAccept: a, b\r\n"
                     "Accept: c\r\n\r\n";
    auto st = p.feed(in.data(), in.size());
    CHECK(st.status == Status::head_done);
    CHECK(st.consumed == in.size());
    const auto& r = p.request();
    CHECK(r.method == "GET");
    CHECK(r.path == "/v2/a/b/tags/list");
    CHECK(r.query == "n=2&last=x");
    CHECK(r.query_param("n").value() == "2");
    CHECK(r.header("host") == "h");
    CHECK(r.header_list("Accept").size() == 3);
    CHECK(r.keep_alive);
    CHECK_FALSE(r.has_body());
}

TEST_CASE("a body split over many reads arrives whole, for every split size") {
    std::string body(5000, 'x');
    body[17] = 'y';
    std::string in = "PUT /x HTTP/1.1\r\nContent-Length: 5000\r\n\r\n" + body;
    for (std::size_t step : {1u, 7u, 100u, 4096u, 100000u}) {
        RequestParser p({});
        Status last{};
        CHECK(parse_one(p, in, step, &last) == body);
        CHECK(last == Status::message_done);
    }
}

TEST_CASE("chunked bodies are decoded") {
    RequestParser p({});
    std::string in = "PATCH /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n";
    Status last{};
    CHECK(parse_one(p, in, 3, &last) == "abcdefgh");
    CHECK(last == Status::message_done);
    CHECK(p.request().chunked);
}

TEST_CASE("pipelined requests are handed out one at a time") {
    RequestParser p({});
    std::string in = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
    auto st = p.feed(in.data(), in.size());
    REQUIRE(st.status == Status::head_done);
    CHECK(p.request().path == "/a");
    std::size_t off = st.consumed;
    st = p.feed(in.data() + off, in.size() - off);
    CHECK(st.status == Status::message_done);
    off += st.consumed;
    st = p.feed(in.data() + off, in.size() - off);
    REQUIRE(st.status == Status::head_done);
    CHECK(p.request().path == "/b");
}

TEST_CASE("a head over the limit is refused as too large") {
    RequestParser::Limits lim;
    lim.header_bytes_max = 1024;
    RequestParser p(lim);
    std::string in = "GET / HTTP/1.1\r\nX: " + std::string(2000, 'a') + "\r\n\r\n";
    Status last{};
    (void)parse_one(p, in, 100, &last);
    CHECK(last == Status::error);
    CHECK(p.failure() == RequestParser::Failure::header_too_large);
}

TEST_CASE("a target over the limit is refused as too long") {
    RequestParser::Limits lim;
    lim.url_bytes_max = 256;
    RequestParser p(lim);
    std::string in = "GET /" + std::string(300, 'a') + " HTTP/1.1\r\n\r\n";
    auto st = p.feed(in.data(), in.size());
    CHECK(st.status == Status::error);
    CHECK(p.failure() == RequestParser::Failure::url_too_long);
}

TEST_CASE("malformed heads are errors, never crashes") {
    for (std::string in :
         {std::string("GARBAGE\r\n\r\n"), std::string("GET / HTTP/9.9\r\n\r\n"),
          std::string("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
          std::string("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: "
                      "chunked\r\n\r\n"),
          std::string("GET /%zz HTTP/1.1\r\n\r\n"), std::string("\0\0\0", 3)}) {
        RequestParser p({});
        Status last{};
        (void)parse_one(p, in, in.size(), &last);
        CHECK(last == Status::error);
    }
}

TEST_CASE("Expect: 100-continue and HTTP/1.0 keep-alive are recognised") {
    RequestParser p({});
    std::string in = "PUT /x HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n";
    auto st = p.feed(in.data(), in.size());
    REQUIRE(st.status == Status::head_done);
    CHECK(p.request().expect_continue);
    CHECK_FALSE(p.request().keep_alive);
    CHECK(p.request().http_minor == 0);
}

TEST_CASE("the request line is checked strictly: single spaces, HTTP/1.0 or 1.1") {
    struct Case {
        const char* line;
        RequestParser::Failure want;
    };
    for (Case c : {Case{"GET  /v2/ HTTP/1.1\r\n\r\n", RequestParser::Failure::bad_request},
                   Case{"GET /v2/\r\n\r\n", RequestParser::Failure::bad_request},
                   Case{"GET /v2/ HTTP/2.0\r\n\r\n", RequestParser::Failure::bad_version},
                   Case{"GET /v2/ http/1.1\r\n\r\n", RequestParser::Failure::bad_request},
                   Case{"GET /v2/ HTTP/1.1\n\n", RequestParser::Failure::bad_request},
                   Case{"GET / HTTP/1.1\r\n: x\r\n\r\n", RequestParser::Failure::bad_request},
                   Case{"GET / HTTP/1.1\r\nHo st: x\r\n\r\n", RequestParser::Failure::bad_request},
                   Case{"GET / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                        RequestParser::Failure::bad_request}}) {
        RequestParser p({});
        std::string in = c.line;
        Status last{};
        (void)parse_one(p, in, 2, &last);
        CHECK_MESSAGE(last == Status::error, c.line);
        CHECK_MESSAGE(p.failure() == c.want, c.line);
    }
}

TEST_CASE("an empty line before a request is tolerated") {
    RequestParser p({});
    std::string in = "\r\nGET /v2/ HTTP/1.1\r\n\r\n";
    auto st = p.feed(in.data(), in.size());
    CHECK(st.status == Status::head_done);
    CHECK(p.request().path == "/v2/");
}
