// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace rp::http {

// A single byte range resolved against a resource size.
struct ByteRange {
    std::uint64_t first = 0;
    std::uint64_t last = 0; // inclusive
    std::uint64_t length() const noexcept { return last - first + 1; }
};

enum class RangeResult { none, ok, unsatisfiable, ignore };

// Parses a `Range: bytes=...` header for a resource of `size` bytes.
// Single ranges only ("a-b", "a-", "-n"). A header that is not a bytes range
// or lists several ranges is ignored (the whole resource is served, as RFC
// 9110 allows); a syntactically valid range outside the resource is
// unsatisfiable (416).
RangeResult parse_range(std::string_view header, std::uint64_t size, ByteRange& out) noexcept;

// Parses an upload's `Content-Range: <first>-<last>` (the OCI form, with an
// optional "bytes " prefix). Returns nullopt when malformed or last < first.
std::optional<ByteRange> parse_content_range(std::string_view header) noexcept;

} // namespace rp::http
