// SPDX-License-Identifier: Apache-2.0
#include "http/chunked.hh"

namespace rp::http {

namespace {

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

// Visible characters, SP and HTAB: what an extension or a trailer line may hold.
bool line_char(char c) noexcept {
    auto u = static_cast<unsigned char>(c);
    return u == '\t' || (u >= 0x20 && u != 0x7f);
}

} // namespace

void ChunkedDecoder::reset() noexcept {
    state_ = State::size;
    size_ = 0;
    digits_ = 0;
    ext_bytes_ = 0;
    trailer_bytes_ = 0;
    error_ = "";
}

bool ChunkedDecoder::size_char(char c) noexcept {
    int v = hex_value(c);
    if (v < 0 || digits_ >= 16) {
        return false;
    }
    size_ = size_ * 16 + static_cast<std::uint64_t>(v);
    ++digits_;
    return true;
}

// One framing byte (any state but `data`). Returns false on a framing error.
bool ChunkedDecoder::frame_byte(char c) noexcept {
    switch (state_) {
    case State::size:
        if (size_char(c)) {
            return true;
        }
        if (digits_ == 0 || digits_ >= 16) {
            return set_error(digits_ >= 16 ? "chunk size too large" : "bad chunk size");
        }
        if (c == '\r') {
            state_ = State::size_lf;
        } else if (c == ';') {
            state_ = State::ext;
            ext_bytes_ = 0;
        } else if (c == ' ' || c == '\t') {
            state_ = State::ext_bws; // only whitespace then ';' may follow
        } else {
            return set_error("bad chunk size");
        }
        return true;
    case State::ext_bws:
        if (c == ';') {
            state_ = State::ext;
            ext_bytes_ = 0;
            return true;
        }
        return c == ' ' || c == '\t' || set_error("bad chunk size");
    case State::ext:
        if (c == '\r') {
            state_ = State::size_lf;
            return true;
        }
        return (line_char(c) && ++ext_bytes_ <= ext_bytes_max) || set_error("bad chunk extension");
    case State::size_lf:
        state_ = size_ == 0 ? State::trailer_start : State::data;
        return c == '\n' || set_error("chunk size line must end in CRLF");
    default: return frame_tail_byte(c);
    }
}

// Framing after chunk data and in the trailer section.
bool ChunkedDecoder::frame_tail_byte(char c) noexcept {
    switch (state_) {
    case State::data_cr:
        state_ = State::data_lf;
        return c == '\r' || set_error("chunk data must be followed by CRLF");
    case State::data_lf:
        state_ = State::size;
        size_ = 0;
        digits_ = 0;
        return c == '\n' || set_error("chunk data must be followed by CRLF");
    case State::trailer_start:
        if (c == '\r') {
            state_ = State::final_lf;
            return true;
        }
        state_ = State::trailer_line;
        return (line_char(c) && ++trailer_bytes_ <= trailer_bytes_max) || set_error("bad trailer");
    case State::trailer_line:
        if (c == '\r') {
            state_ = State::trailer_lf;
            return true;
        }
        return (line_char(c) && ++trailer_bytes_ <= trailer_bytes_max) || set_error("bad trailer");
    case State::trailer_lf:
        state_ = State::trailer_start;
        return c == '\n' || set_error("trailer line must end in CRLF");
    case State::final_lf:
        state_ = State::done;
        return c == '\n' || set_error("chunked body must end in CRLF");
    default: return set_error("decoder misused");
    }
}

bool ChunkedDecoder::set_error(const char* why) noexcept {
    state_ = State::failed;
    error_ = why;
    return false;
}

ChunkedDecoder::Step ChunkedDecoder::feed(const char* data, std::size_t len,
                                          std::vector<std::span<const char>>& spans) noexcept {
    std::size_t i = 0;
    while (i < len && state_ != State::done && state_ != State::failed) {
        if (state_ == State::data) {
            std::size_t n = len - i;
            if (n > size_) {
                n = static_cast<std::size_t>(size_);
            }
            spans.emplace_back(data + i, n);
            i += n;
            size_ -= n;
            if (size_ == 0) {
                state_ = State::data_cr;
            }
            continue;
        }
        if (!frame_byte(data[i])) {
            return Step{Status::error, i};
        }
        ++i;
    }
    if (state_ == State::failed) {
        return Step{Status::error, i};
    }
    return Step{state_ == State::done ? Status::done : Status::need_more, i};
}

} // namespace rp::http
