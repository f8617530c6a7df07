// SPDX-License-Identifier: Apache-2.0
// Fuzzes http::parse_range and http::parse_content_range. Input: "<size>\n<header>"
// (a resource size in decimal, then a Range or Content-Range value); without a
// numeric first line, the whole input is the header and its length the size.
// Each verdict is checked against a small independent reading of the header.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz_check.hh"
#include "http/range.hh"

namespace {

using rp::http::ByteRange;
using rp::http::RangeResult;

std::string_view ows_trim(std::string_view s) {
    auto b = s.find_first_not_of(" \t");
    if (b == std::string_view::npos) {
        return {};
    }
    return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

// At most 20 decimal digits and no overflow (what util::parse_u64 promises).
std::optional<std::uint64_t> number(std::string_view s) {
    if (s.empty() || s.size() > 20) {
        return std::nullopt;
    }
    std::uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9' || v > (UINT64_MAX - static_cast<unsigned>(c - '0')) / 10) {
            return std::nullopt;
        }
        v = v * 10 + static_cast<unsigned>(c - '0');
    }
    return v;
}

// The spec of a single "bytes=a-b" range: a missing first number is a suffix.
struct Spec {
    std::optional<std::uint64_t> first, last;
};

std::optional<Spec> read_spec(std::string_view h) {
    h = ows_trim(h);
    if (h.size() < 6) {
        return std::nullopt;
    }
    std::string unit(h.substr(0, 6));
    for (char& c : unit) {
        c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    std::string_view spec = ows_trim(h.substr(6));
    auto dash = spec.find('-');
    if (unit != "bytes=" || spec.find(',') != std::string_view::npos ||
        dash == std::string_view::npos) {
        return std::nullopt;
    }
    std::string_view a = ows_trim(spec.substr(0, dash));
    std::string_view b = ows_trim(spec.substr(dash + 1));
    Spec s{number(a), number(b)};
    bool ok = a.empty() ? s.last.has_value() : s.first && (b.empty() || s.last);
    return ok ? std::optional<Spec>(s) : std::nullopt;
}

void check_ok(const ByteRange& r, const Spec& s, std::uint64_t size) {
    RP_FUZZ_CHECK(r.first <= r.last && r.last < size, "first <= last < size");
    RP_FUZZ_CHECK(r.length() >= 1 && r.length() <= size, "1 <= length() <= size");
    if (!s.first) {
        std::uint64_t n = *s.last < size ? *s.last : size;
        RP_FUZZ_CHECK(r.first == size - n && r.last == size - 1, "a suffix is the last n bytes");
    } else {
        std::uint64_t last = s.last && *s.last < size - 1 ? *s.last : size - 1;
        RP_FUZZ_CHECK(r.first == *s.first && r.last == last, "the range asked for, clamped");
    }
    std::string canon = "bytes=" + std::to_string(r.first) + "-" + std::to_string(r.last);
    ByteRange again;
    RP_FUZZ_CHECK(rp::http::parse_range(canon, size, again) == RangeResult::ok &&
                      again.first == r.first && again.last == r.last,
                  "the canonical form of a range parses to itself");
}

void check_range(std::string_view h, std::uint64_t size) {
    ByteRange r;
    RangeResult res = rp::http::parse_range(h, size, r);
    if (ows_trim(h).empty()) {
        RP_FUZZ_CHECK(res == RangeResult::none, "an empty header is no range");
        return;
    }
    RP_FUZZ_CHECK(res != RangeResult::none, "none only for an empty header");
    auto s = read_spec(h);
    if (!s) {
        RP_FUZZ_CHECK(res == RangeResult::ignore, "what is not one bytes range is ignored");
        return;
    }
    if (res == RangeResult::ok) {
        check_ok(r, *s, size);
        return;
    }
    RP_FUZZ_CHECK(res == RangeResult::unsatisfiable, "a well-formed range is never ignored");
    bool beyond = s->first && *s->first >= size;
    bool reversed = s->first && s->last && *s->last < *s->first;
    bool empty_suffix = !s->first && *s->last == 0;
    RP_FUZZ_CHECK(size == 0 || beyond || reversed || empty_suffix,
                  "unsatisfiable only when empty, beyond the end, reversed or a zero suffix");
}

void check_content_range(std::string_view h) {
    auto r = rp::http::parse_content_range(h);
    if (!r) {
        return;
    }
    RP_FUZZ_CHECK(r->first <= r->last, "a content range is not reversed");
    RP_FUZZ_CHECK(r->length() >= 1, "a content range's length() does not wrap");
    std::string canon = std::to_string(r->first) + "-" + std::to_string(r->last);
    auto again = rp::http::parse_content_range(canon);
    RP_FUZZ_CHECK(again && again->first == r->first && again->last == r->last,
                  "the canonical form of a content range parses to itself");
    auto prefixed = rp::http::parse_content_range("bytes " + canon + "/*");
    RP_FUZZ_CHECK(prefixed && prefixed->first == r->first && prefixed->last == r->last,
                  "the 'bytes a-b/*' form parses to the same range");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    std::string_view header = in;
    std::uint64_t resource = size;
    auto nl = in.find('\n');
    if (nl != std::string_view::npos) {
        if (auto n = number(in.substr(0, nl))) {
            resource = *n;
            header = in.substr(nl + 1);
        }
    }
    check_range(header, resource);
    check_content_range(header);
    check_content_range(in);
    return 0;
}
