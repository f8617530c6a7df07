// SPDX-License-Identifier: Apache-2.0
#include "http/range.hh"

#include <cstdint>

#include "util/strings.hh"

namespace rp::http {

RangeResult parse_range(std::string_view h, std::uint64_t size, ByteRange& out) noexcept {
    h = util::trim(h);
    if (h.empty()) {
        return RangeResult::none;
    }
    constexpr std::string_view prefix = "bytes=";
    if (h.size() < prefix.size() || !util::iequals(h.substr(0, prefix.size()), prefix)) {
        return RangeResult::ignore;
    }
    std::string_view spec = util::trim(h.substr(prefix.size()));
    if (spec.find(',') != std::string_view::npos) {
        return RangeResult::ignore;
    }
    auto dash = spec.find('-');
    if (dash == std::string_view::npos) {
        return RangeResult::ignore;
    }
    std::string_view a = util::trim(spec.substr(0, dash));
    std::string_view b = util::trim(spec.substr(dash + 1));
    if (a.empty()) {
        auto n = util::parse_u64(b); // suffix range: the last n bytes
        if (!n) {
            return RangeResult::ignore;
        }
        if (*n == 0 || size == 0) {
            return RangeResult::unsatisfiable;
        }
        std::uint64_t take = *n > size ? size : *n;
        out = ByteRange{size - take, size - 1};
        return RangeResult::ok;
    }
    auto first = util::parse_u64(a);
    if (!first) {
        return RangeResult::ignore;
    }
    std::uint64_t last = size == 0 ? 0 : size - 1;
    if (!b.empty()) {
        auto l = util::parse_u64(b);
        if (!l) {
            return RangeResult::ignore;
        }
        if (*l < *first) {
            return RangeResult::unsatisfiable; // "500-0": answered 416, as clients expect
        }
        last = *l < last ? *l : last;
    }
    if (*first >= size) {
        return RangeResult::unsatisfiable;
    }
    out = ByteRange{*first, last};
    return RangeResult::ok;
}

std::optional<ByteRange> parse_content_range(std::string_view h) noexcept {
    h = util::trim(h);
    if (h.size() >= 6 && util::iequals(h.substr(0, 6), "bytes ")) {
        h = util::trim(h.substr(6));
    } else if (h.size() >= 6 && util::iequals(h.substr(0, 6), "bytes=")) {
        h = util::trim(h.substr(6));
    }
    auto slash = h.find('/');
    if (slash != std::string_view::npos) {
        h = h.substr(0, slash); // "a-b/total": the total is not needed
    }
    auto dash = h.find('-');
    if (dash == std::string_view::npos) {
        return std::nullopt;
    }
    auto first = util::parse_u64(h.substr(0, dash));
    auto last = util::parse_u64(h.substr(dash + 1));
    // last - first + 1 must fit: 0-18446744073709551615 would wrap to 0 bytes.
    if (!first || !last || *last < *first || *last - *first == UINT64_MAX) {
        return std::nullopt;
    }
    return ByteRange{*first, *last};
}

} // namespace rp::http
