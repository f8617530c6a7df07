// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace rp::util {

// Parses a whole decimal string into a uint64; no sign, no spaces, no overflow.
std::optional<std::uint64_t> parse_u64(std::string_view s) noexcept;
bool iequals(std::string_view a, std::string_view b) noexcept;
std::string_view trim(std::string_view s) noexcept;
std::string to_lower(std::string_view s);
bool is_lower_hex(std::string_view s) noexcept;
// Glob match of a repository name or a tag: `*` matches within one path
// component, `**` across components ("**" alone: everything). O(|p|·|s|)
// whatever the input. Access rules and retention policies use it.
bool name_match(std::string_view pattern, std::string_view name) noexcept;
// Percent-decodes a URL query component ('+' stays '+'); nullopt on a bad escape.
std::optional<std::string> percent_decode(std::string_view s);
std::string percent_encode(std::string_view s);
// Standard base64 with padding (RFC 4648 §4), as HTTP Basic credentials use.
std::string base64(std::string_view s);
// Escapes a string for a JSON string literal (without the quotes): quotes,
// backslashes and control characters; bytes that are not valid UTF-8 (a
// header's arbitrary bytes) become U+FFFD, so the document stays valid JSON.
void json_escape(std::string& out, std::string_view s);

// Seconds since the epoch as RFC 3339 UTC ("2026-01-02T03:04:05Z") and as an
// HTTP date ("Mon, 02 Jan 2026 03:04:05 GMT").
std::string rfc3339(std::int64_t epoch_s);
// A random (version 4) UUID: request, event and instance ids. A generator
// per thread, seeded from getrandom(2).
std::string random_uuid();
void random_uuid(char (&out)[36]);
std::optional<std::int64_t> parse_rfc3339(std::string_view s) noexcept;
std::string http_date(std::int64_t epoch_s);

} // namespace rp::util
