// SPDX-License-Identifier: Apache-2.0
// Fuzzes http::RequestParser the way a connection drives it. Input: one control
// byte, then the bytes a client sends. Control bits 0-5: the largest read size
// minus one (reads are 1..64 bytes, chosen by a PRNG seeded with the byte);
// bits 6-7: a limits profile. The bytes are parsed twice, in one piece and in
// reads, and both runs must see the same heads, bodies and failure.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/request_parser.hh"
#include "fuzz_check.hh"

namespace {

using rp::http::RequestParser;
using Status = RequestParser::Status;

constexpr RequestParser::Limits profiles[4] = {
    {65536, 8192, 128}, // the defaults
    {1024, 256, 16},
    {128, 32, 4},
    {4096, 64, 8},
};

constexpr const char* token_chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                    "0123456789!#$%&'*+-.^_`|~";

// What a handler sees of one head; compared between the two runs.
struct Head {
    std::string method, target, path, query;
    std::vector<std::pair<std::string, std::string>> headers;
    unsigned major = 0, minor = 0;
    bool keep_alive = false, chunked = false, expect_continue = false;
    std::optional<std::uint64_t> content_length;
    bool operator==(const Head&) const = default;
};

struct Trace {
    std::vector<Head> heads;
    std::vector<std::string> bodies; // one per head
    std::size_t messages_done = 0;
    bool failed = false;
    RequestParser::Failure at_eof = RequestParser::Failure::none;
    bool operator==(const Trace&) const = default;
};

Head check_head(const rp::http::Request& r, const RequestParser::Limits& lim,
                std::size_t head_bytes) {
    RP_FUZZ_CHECK(head_bytes <= lim.header_bytes_max, "head_done after more than the head limit");
    RP_FUZZ_CHECK(!r.method.empty(), "a head has a method");
    RP_FUZZ_CHECK(!r.path.empty() && r.path.front() == '/', "the path starts with '/'");
    // A NUL reaches the path only percent-encoded (the validators refuse it there).
    RP_FUZZ_CHECK(r.path.find('\0') == std::string::npos ||
                      r.target.substr(0, r.target.find('?')).find("%00") != std::string::npos,
                  "a NUL in the path comes only from %00");
    for (char c : r.target) {
        auto u = static_cast<unsigned char>(c);
        RP_FUZZ_CHECK(u > 0x20 && u != 0x7f, "the raw target holds no NUL, space or control");
    }
    RP_FUZZ_CHECK(r.target.size() <= lim.url_bytes_max, "the target is within url_bytes_max");
    RP_FUZZ_CHECK(r.headers.size() <= lim.header_count_max, "header count within the limit");
    RP_FUZZ_CHECK(r.http_major == 1 && r.http_minor <= 1, "only HTTP/1.0 and HTTP/1.1");
    RP_FUZZ_CHECK(!(r.chunked && r.content_length), "never both chunked and Content-Length");
    RP_FUZZ_CHECK(!r.has_header("Transfer-Encoding") || r.chunked,
                  "a Transfer-Encoding other than chunked is refused");
    Head h{r.method,  r.target,          r.path,          r.query,
           {},        r.http_major,      r.http_minor,    r.keep_alive,
           r.chunked, r.expect_continue, r.content_length};
    for (const auto& f : r.headers) {
        RP_FUZZ_CHECK(f.name.size() <= lim.header_bytes_max, "header name within the limit");
        RP_FUZZ_CHECK(!f.name.empty() && f.name.find_first_not_of(token_chars) == std::string::npos,
                      "a header name is an RFC 9110 token");
        RP_FUZZ_CHECK(f.value.size() <= lim.header_bytes_max, "header value within the limit");
        h.headers.emplace_back(f.name, f.value);
    }
    return h;
}

void check_message(const Trace& t) {
    RP_FUZZ_CHECK(t.messages_done == t.heads.size(), "message_done follows its own head");
    const Head& h = t.heads.back();
    const std::string& body = t.bodies.back();
    if (h.content_length) {
        RP_FUZZ_CHECK(body.size() == *h.content_length, "a body is Content-Length bytes");
    } else if (!h.chunked) {
        RP_FUZZ_CHECK(body.empty(), "a request without length or chunking has no body");
    }
}

// Feeds in[pos, end) until the parser wants more; false once it has failed.
bool feed_read(RequestParser& p, const RequestParser::Limits& lim, std::string_view in,
               std::size_t& pos, std::size_t end, std::size_t& msg_start, Trace& t) {
    std::size_t steps_max = 2 * (end - pos) + 4; // a pause per head and per message
    for (std::size_t step = 0;; ++step) {
        RP_FUZZ_CHECK(step <= steps_max, "the parser makes progress");
        std::size_t len = end - pos;
        const char* at = in.data() + pos;
        auto st = p.feed(at, len);
        RP_FUZZ_CHECK(st.consumed <= len, "consumed never exceeds the bytes fed");
        // On error nothing counts as consumed, but spans decoded before it may remain.
        std::size_t lent = st.status == Status::error ? len : st.consumed;
        for (auto s : p.body_spans()) {
            RP_FUZZ_CHECK(s.data() >= at && s.data() + s.size() <= at + lent,
                          "body spans borrow the consumed bytes");
            RP_FUZZ_CHECK(!t.bodies.empty(), "no body before a head");
            t.bodies.back().append(s.data(), s.size());
        }
        pos += st.consumed;
        if (st.status == Status::error) {
            RP_FUZZ_CHECK(p.failure() != RequestParser::Failure::none, "an error has a failure");
            t.failed = true;
            return false;
        }
        if (st.status == Status::head_done) {
            RP_FUZZ_CHECK(t.heads.size() == t.messages_done, "one head per message");
            t.heads.push_back(check_head(p.request(), lim, pos - msg_start));
            t.bodies.emplace_back();
        } else if (st.status == Status::message_done) {
            ++t.messages_done;
            check_message(t);
            msg_start = pos;
        } else {
            RP_FUZZ_CHECK(pos == end, "need_more only after every byte fed was consumed");
            return true;
        }
    }
}

Trace run(const RequestParser::Limits& lim, std::string_view in, unsigned ctl) {
    RequestParser p(lim);
    Trace t;
    std::size_t max_read = (ctl & 0x3fu) + 1;
    std::uint32_t rng = 0x9e3779b9u ^ ctl;
    std::size_t pos = 0;
    std::size_t msg_start = 0;
    do {
        std::size_t n = in.size();
        if (ctl != 0x100) { // 0x100: the whole input as one read
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            n = 1 + rng % max_read;
        }
        std::size_t end = pos + n < in.size() ? pos + n : in.size();
        if (!feed_read(p, lim, in, pos, end, msg_start, t)) {
            return t;
        }
    } while (pos < in.size());
    t.at_eof = p.finish();
    if (t.heads.size() > t.messages_done) {
        const Head& h = t.heads.back();
        bool body_left = h.chunked || (h.content_length && *h.content_length > 0);
        RP_FUZZ_CHECK(!body_left || t.at_eof != RequestParser::Failure::none,
                      "finish() in the middle of a body is a failure");
    }
    return t;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) {
        return 0;
    }
    unsigned ctl = data[0];
    const RequestParser::Limits& lim = profiles[ctl >> 6];
    std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
    Trace whole = run(lim, in, 0x100);
    Trace pieces = run(lim, in, ctl);
    RP_FUZZ_CHECK(whole.heads == pieces.heads, "the same heads in one piece and in reads");
    RP_FUZZ_CHECK(whole.bodies == pieces.bodies, "the same body bytes in one piece and in reads");
    RP_FUZZ_CHECK(whole.messages_done == pieces.messages_done, "the same number of messages");
    RP_FUZZ_CHECK(whole.failed == pieces.failed, "a failure does not depend on the reads");
    RP_FUZZ_CHECK(whole.at_eof == pieces.at_eof, "the same state at end of input");
    return 0;
}
