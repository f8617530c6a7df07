// SPDX-License-Identifier: Apache-2.0
#include "http/chunked.hh"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using rp::http::ChunkedDecoder;
using ChunkStatus = ChunkedDecoder::Status;

namespace {

// Decodes `in` fed `step` bytes at a time; returns the data and the last status.
std::string decode(const std::string& in, std::size_t step, ChunkStatus* last, std::size_t* used) {
    ChunkedDecoder d;
    std::string out;
    std::size_t off = 0;
    *last = ChunkStatus::need_more;
    while (off < in.size() && *last == ChunkStatus::need_more) {
        std::vector<std::span<const char>> spans;
        std::size_t n = std::min(step, in.size() - off);
        auto st = d.feed(in.data() + off, n, spans);
        for (auto s : spans) {
            out.append(s.data(), s.size());
        }
        off += st.consumed;
        *last = st.status;
        if (st.status == ChunkStatus::need_more && st.consumed < n) {
            break;
        }
    }
    *used = off;
    return out;
}

} // namespace

TEST_CASE("chunked bodies decode the same for every split, and stop at their end") {
    std::string in = "3\r\nabc\r\nA;ext=1\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nNEXT";
    for (std::size_t step : {1u, 2u, 5u, 1000u}) {
        ChunkStatus last{};
        std::size_t used = 0;
        CHECK(decode(in, step, &last, &used) == "abc0123456789");
        CHECK(last == ChunkStatus::done);
        CHECK(used == in.size() - 4); // "NEXT" is the next request
    }
}

TEST_CASE("broken chunk framing is an error, not junk accepted") {
    for (std::string bad :
         {"zz\r\nhello\r\n0\r\n\r\n", "5\r\nhelloXX0\r\n\r\n", "5 5\r\nhello\r\n0\r\n\r\n",
          "-5\r\nhello\r\n0\r\n\r\n", "fffffffffffffffffffff\r\n", "5\nhello\r\n0\r\n\r\n",
          "0\r\n\r\x01", "\r\n"}) {
        ChunkStatus last{};
        std::size_t used = 0;
        (void)decode(bad, 3, &last, &used);
        CHECK_MESSAGE(last == ChunkStatus::error, bad);
    }
}

TEST_CASE("whitespace before an extension is allowed") {
    ChunkStatus last{};
    std::size_t used = 0;
    CHECK(decode("2 ;a\r\nhi\r\n0\r\n\r\n", 4, &last, &used) == "hi");
    CHECK(last == ChunkStatus::done);
}
