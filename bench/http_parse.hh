// SPDX-License-Identifier: Apache-2.0
#pragma once

// Pure parsing for ringport-bench: sizes, URLs, HTTP/1.1 response heads,
// chunked bodies and Link headers. No I/O, no allocation beyond the strings
// a caller hands in, so the engine's hot loop can use them per response.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace rp::bench {

// "64MiB", "4KiB", "1G", "1.5GiB", "123" → bytes. K/M/G/T and KiB/MiB/GiB/TiB
// are powers of 1024, KB/MB/GB/TB powers of 1000. nullopt on anything else.
std::optional<std::uint64_t> parse_size(std::string_view s) noexcept;
// "64 MiB", "1.5 GiB", "512 B".
std::string format_size(std::uint64_t bytes);

// "http://HOST:PORT[/]" (HOST may be [v6]); https is not supported.
struct Url {
    std::string host;
    std::string port;
    std::string authority; // HOST:PORT as given, for the Host header
    bool tls = false;      // https://
};
std::optional<Url> parse_url(std::string_view url);

struct ResponseHead {
    int status = 0;
    bool has_length = false;
    bool chunked = false;
    bool close = false;
    std::uint64_t content_length = 0;
    // Borrow from the text given to parse_response_head.
    std::string_view location;
    std::string_view link; // the Link value that carries rel="next", if any
    std::string_view digest;
    std::string_view content_type;
};

// Parses a response head: status line and header lines, through the blank
// line. False on anything malformed.
bool parse_response_head(std::string_view head, ResponseHead& out) noexcept;

// The URL inside <...> of a Link value whose rel is "next"; empty if none.
std::string_view link_next(std::string_view link) noexcept;
// The path and query of a URL: "http://h:p/x?y" → "/x?y"; "/x" stays "/x".
std::string_view url_path(std::string_view url) noexcept;
// Appends "key=value" to target with '?' or '&' as needed.
void append_query(std::string& target, std::string_view key, std::string_view value);

// Decodes a chunked body incrementally. Feed it input slices; each call to
// next() consumes a prefix of `in` and returns the data bytes found in it
// (a view into `in`, possibly empty). Trailers are skipped.
class ChunkedDecoder {
  public:
    void reset() noexcept { *this = ChunkedDecoder{}; }
    std::string_view next(std::string_view& in) noexcept;
    bool done() const noexcept { return state_ == State::done; }
    bool failed() const noexcept { return state_ == State::failed; }

  private:
    enum class State : std::uint8_t {
        size,
        size_ext,
        size_lf,
        data,
        data_cr,
        data_lf,
        trailer_start,
        trailer_line,
        trailer_lf,
        done,
        failed,
    };
    void size_char(char ch) noexcept;
    void after_char(char ch) noexcept;

    State state_ = State::size;
    std::uint64_t remaining_ = 0;
    int digits_ = 0;
};

// Reads one response: collects the head (copied, so its views stay valid
// until reset), then hands out body bytes by Content-Length, chunked
// framing, or until the peer closes.
class ResponseReader {
  public:
    enum class State : std::uint8_t { head, body_length, body_chunked, body_eof, done, failed };
    static constexpr std::size_t head_bytes_max = 64 * 1024;

    // `no_body`: the request was HEAD, so no body follows whatever the head says.
    void reset(bool no_body);
    // Consumes a prefix of `in`; returns body bytes found in it (a view
    // into `in`, possibly empty). Call until `in` is empty or finished().
    std::string_view feed(std::string_view& in);
    // The peer closed the connection.
    void on_eof() noexcept;

    State state() const noexcept { return state_; }
    bool finished() const noexcept { return state_ == State::done || state_ == State::failed; }
    bool head_complete() const noexcept { return head_done_; }
    const ResponseHead& head() const noexcept { return head_; }

  private:
    void feed_head(std::string_view& in);
    void start_body();

    std::string head_text_;
    ResponseHead head_;
    ChunkedDecoder chunked_;
    std::uint64_t remaining_ = 0;
    State state_ = State::head;
    bool no_body_ = false;
    bool head_done_ = false;
};

} // namespace rp::bench
