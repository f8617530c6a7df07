// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rp::http {

struct Header {
    std::string name;
    std::string value;
};

// One parsed request head. Owns its strings, so it stays valid while the
// connection's receive buffer is reused for the body.
struct Request {
    std::string method;
    std::string target; // as received: path plus optional "?query"
    std::string path;   // percent-decoded path
    std::string query;  // raw query, without '?'
    std::vector<Header> headers;
    unsigned http_major = 1;
    unsigned http_minor = 1;
    bool keep_alive = true;
    bool chunked = false;
    std::optional<std::uint64_t> content_length;
    bool expect_continue = false;

    bool has_body() const noexcept { return chunked || (content_length && *content_length > 0); }
    // First header with this name (case-insensitive), or empty.
    std::string_view header(std::string_view name) const noexcept;
    bool has_header(std::string_view name) const noexcept;
    // All values of a header, split on commas (e.g. several Accept lines).
    std::vector<std::string_view> header_list(std::string_view name) const;
    // First query parameter with this key, percent-decoded ('+' kept as is).
    std::optional<std::string> query_param(std::string_view key) const;
    void clear();
};

// Splits `target` into the decoded path and the raw query. False when the
// path has a bad percent escape.
bool split_target(std::string_view target, std::string& path, std::string& query);

} // namespace rp::http
