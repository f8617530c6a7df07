// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "http/chunked.hh"
#include "http/request.hh"

namespace rp::http {

// An incremental HTTP/1.1 request parser over llhttp. Pure: it takes bytes and
// produces a Request plus body spans; it does no I/O and can be fuzzed.
//
// feed() stops (llhttp HPE_PAUSED) after the head and after the end of each
// message, so pipelined requests are handed out one at a time; `consumed`
// says where to resume. Body spans borrow the bytes passed to feed(): they
// are valid until the caller reuses that memory.
class RequestParser {
  public:
    struct Limits {
        std::size_t header_bytes_max = 65536;
        std::size_t url_bytes_max = 8192;
        std::size_t header_count_max = 128;
    };
    enum class Status { need_more, head_done, message_done, error };
    enum class Failure { none, bad_request, header_too_large, url_too_long, bad_body, bad_version };
    struct Step {
        Status status;
        std::size_t consumed;
    };

    explicit RequestParser(Limits limits) noexcept;
    RequestParser(const RequestParser&) = delete;
    RequestParser& operator=(const RequestParser&) = delete;

    Step feed(const char* data, std::size_t len) noexcept;
    // Tells the parser the peer closed: completes a body that runs to EOF.
    Failure finish() noexcept;

    Request& request() noexcept { return req_; }
    const Request& request() const noexcept { return req_; }
    std::vector<std::span<const char>>& body_spans() noexcept { return spans_; }
    Failure failure() const noexcept { return failure_; }
    const char* failure_reason() const noexcept { return reason_; }
    bool in_head() const noexcept { return in_head_; }
    bool message_started() const noexcept { return started_; }
    bool message_complete() const noexcept { return complete_; }
    // A Content-Length body still to come (0 when chunked or none).
    std::uint64_t length_left() const noexcept {
        return body_ == BodyMode::length ? length_left_ : 0;
    }
    bool body_is_length() const noexcept { return body_ == BodyMode::length; }
    // Counts `n` body bytes the connection received itself (Content-Length
    // bodies only), bypassing feed().
    void consume_raw(std::size_t n) noexcept;

  private:
    static int on_message_begin(llhttp_t* p) noexcept;
    static int on_url(llhttp_t* p, const char* at, std::size_t len) noexcept;
    static int on_header_field(llhttp_t* p, const char* at, std::size_t len) noexcept;
    static int on_header_value(llhttp_t* p, const char* at, std::size_t len) noexcept;
    static int on_header_value_complete(llhttp_t* p) noexcept;
    static int on_headers_complete(llhttp_t* p) noexcept;
    static int on_body(llhttp_t* p, const char* at, std::size_t len) noexcept;
    static int on_message_complete(llhttp_t* p) noexcept;
    static RequestParser& self(llhttp_t* p) noexcept;
    int fail(Failure f, const char* reason) noexcept;
    int finish_head() noexcept;
    void start_next() noexcept;
    Step feed_chunked(const char* data, std::size_t len) noexcept;
    Step feed_length(const char* data, std::size_t len) noexcept;
    // Checks the request line ourselves before llhttp sees it: llhttp 8.1
    // accepts doubled spaces, a missing version (HTTP/0.9) and HTTP/2.0.
    bool check_request_line(const char* data, std::size_t len) noexcept;
    bool validate_line() noexcept;

    Limits limits_;
    llhttp_t parser_{};
    llhttp_settings_t settings_{};
    Request req_;
    std::string field_;
    std::string value_;
    bool value_started_ = false;
    std::vector<std::span<const char>> spans_;
    enum class BodyMode { none, length, chunked };
    BodyMode body_ = BodyMode::none; // framing the body ourselves (llhttp skips it)
    ChunkedDecoder chunked_;
    std::uint64_t length_left_ = 0;
    std::string line_; // the request line, until its LF
    bool line_done_ = false;
    std::size_t head_bytes_ = 0;
    bool in_head_ = true;
    bool started_ = false;
    bool complete_ = false;
    Failure failure_ = Failure::none;
    const char* reason_ = "";
};

} // namespace rp::http
