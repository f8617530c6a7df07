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

ChunkedDecoder::Step ChunkedDecoder::fail(const char* why, std::size_t at) noexcept {
    state_ = State::failed;
    error_ = why;
    return Step{Status::error, at};
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

ChunkedDecoder::Step ChunkedDecoder::feed(const char* data, std::size_t len,
                                          std::vector<std::span<const char>>& spans) noexcept {
    std::size_t i = 0;
    while (i < len) {
        char c = data[i];
        switch (state_) {
        case State::size:
            if (size_char(c)) {
                ++i;
                break;
            }
            if (digits_ == 0) {
                return fail("bad chunk size", i);
            }
            if (c == '\r') {
                state_ = State::size_lf;
            } else if (c == ';') {
                state_ = State::ext;
                ext_bytes_ = 0;
            } else if (c == ' ' || c == '\t') {
                state_ = State::ext_bws; // only whitespace then ';' may follow
            } else {
                return fail(digits_ >= 16 ? "chunk size too large" : "bad chunk size", i);
            }
            ++i;
            break;
        case State::ext_bws:
            if (c == ';') {
                state_ = State::ext;
                ext_bytes_ = 0;
            } else if (c != ' ' && c != '\t') {
                return fail("bad chunk size", i);
            }
            ++i;
            break;
        case State::ext:
            if (c == '\r') {
                state_ = State::size_lf;
            } else if (!line_char(c) || ++ext_bytes_ > ext_bytes_max) {
                return fail("bad chunk extension", i);
            }
            ++i;
            break;
        case State::size_lf:
            if (c != '\n') {
                return fail("chunk size line must end in CRLF", i);
            }
            ++i;
            state_ = size_ == 0 ? State::trailer_start : State::data;
            break;
        case State::data: {
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
            break;
        }
        case State::data_cr:
            if (c != '\r') {
                return fail("chunk data must be followed by CRLF", i);
            }
            ++i;
            state_ = State::data_lf;
            break;
        case State::data_lf:
            if (c != '\n') {
                return fail("chunk data must be followed by CRLF", i);
            }
            ++i;
            state_ = State::size;
            size_ = 0;
            digits_ = 0;
            break;
        case State::trailer_start:
            ++i;
            if (c == '\r') {
                state_ = State::final_lf;
            } else if (line_char(c) && ++trailer_bytes_ <= trailer_bytes_max) {
                state_ = State::trailer_line;
            } else {
                return fail("bad trailer", i - 1);
            }
            break;
        case State::trailer_line:
            if (c == '\r') {
                state_ = State::trailer_lf;
            } else if (!line_char(c) || ++trailer_bytes_ > trailer_bytes_max) {
                return fail("bad trailer", i);
            }
            ++i;
            break;
        case State::trailer_lf:
            if (c != '\n') {
                return fail("trailer line must end in CRLF", i);
            }
            ++i;
            state_ = State::trailer_start;
            break;
        case State::final_lf:
            if (c != '\n') {
                return fail("chunked body must end in CRLF", i);
            }
            ++i;
            state_ = State::done;
            return Step{Status::done, i};
        case State::done:
            return Step{Status::done, i};
        case State::failed:
            return Step{Status::error, i};
        }
    }
    if (state_ == State::failed) {
        return Step{Status::error, i};
    }
    return Step{state_ == State::done ? Status::done : Status::need_more, i};
}

} // namespace rp::http
