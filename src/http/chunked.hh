// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace rp::http {

// A strict decoder for a chunked request body (RFC 9112 §7.1). llhttp 8.1 is
// lenient about chunk framing (it accepts junk between chunk data and CRLF),
// which would let a client smuggle bytes past a stricter proxy, so ringport
// decodes chunked bodies itself. Pure: bytes in, data spans out, no I/O.
class ChunkedDecoder {
  public:
    enum class Status { need_more, done, error };
    struct Step {
        Status status;
        std::size_t consumed;
    };
    static constexpr std::size_t ext_bytes_max = 4096;      // per chunk line
    static constexpr std::size_t trailer_bytes_max = 16384; // whole trailer section

    void reset() noexcept;
    // Decodes from `data`; chunk payload is appended to `spans` as views into
    // `data`. Stops right after the final CRLF (done) so pipelined bytes stay.
    Step feed(const char* data, std::size_t len,
              std::vector<std::span<const char>>& spans) noexcept;
    const char* error() const noexcept { return error_; }

  private:
    enum class State {
        size,
        ext_bws,
        ext,
        size_lf,
        data,
        data_cr,
        data_lf,
        trailer_start,
        trailer_line,
        trailer_lf,
        final_lf,
        done,
        failed,
    };
    bool frame_byte(char c) noexcept;
    bool frame_tail_byte(char c) noexcept;
    bool set_error(const char* why) noexcept;
    bool size_char(char c) noexcept;

    State state_ = State::size;
    std::uint64_t size_ = 0;
    unsigned digits_ = 0;
    std::size_t ext_bytes_ = 0;
    std::size_t trailer_bytes_ = 0;
    const char* error_ = "";
};

} // namespace rp::http
