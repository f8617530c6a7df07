// SPDX-License-Identifier: Apache-2.0
#include "util/strings.hh"

#include <sys/random.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <random>
#include <vector>

namespace rp::util {

std::optional<std::uint64_t> parse_u64(std::string_view s) noexcept {
    if (s.empty() || s.size() > 20) {
        return std::nullopt;
    }
    std::uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        std::uint64_t d = static_cast<std::uint64_t>(c - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return std::nullopt;
        }
        v = v * 10 + d;
    }
    return v;
}

static char lower(char c) noexcept {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) {
        return false;
    }
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (lower(a[i]) != lower(b[i])) {
            return false;
        }
    }
    return true;
}

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

std::string to_lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        c = lower(c);
    }
    return out;
}

bool is_lower_hex(std::string_view s) noexcept {
    for (char c : s) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return true;
}

static int hexval(char c) noexcept {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = lower(c);
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

std::optional<std::string> percent_decode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out.push_back(s[i]);
            continue;
        }
        if (i + 2 >= s.size()) {
            return std::nullopt;
        }
        int hi = hexval(s[i + 1]);
        int lo = hexval(s[i + 2]);
        if (hi < 0 || lo < 0) {
            return std::nullopt;
        }
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
    }
    return out;
}

std::string percent_encode(std::string_view s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        unsigned char u = static_cast<unsigned char>(c);
        bool plain = (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') ||
                     u == '-' || u == '_' || u == '.' || u == '~';
        if (plain) {
            out.push_back(c);
        } else {
            out.push_back('%');
            out.push_back(hex[u >> 4]);
            out.push_back(hex[u & 15]);
        }
    }
    return out;
}

namespace {

// The length of the valid UTF-8 sequence at s[i], or 0.
std::size_t utf8_len(std::string_view s, std::size_t i) noexcept {
    const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned c = b(i);
    std::size_t n = 0;
    unsigned min = 0;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (i + n > s.size()) {
        return 0;
    }
    unsigned cp = c & (0x7FU >> n);
    for (std::size_t k = 1; k < n; ++k) {
        if ((b(i + k) & 0xC0U) != 0x80U) {
            return 0;
        }
        cp = (cp << 6U) | (b(i + k) & 0x3FU);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return n;
}

} // namespace

namespace {

// Bytes a JSON string takes as they are: printable ASCII but '"' and '\\'.
constexpr std::array<bool, 256> plain_bytes = [] {
    std::array<bool, 256> t{};
    for (int c = 0x20; c < 0x7F; ++c) {
        t[static_cast<std::size_t>(c)] = c != '"' && c != '\\';
    }
    return t;
}();

// Whether all 8 bytes of `w` are plain: none below 0x20, at or above 0x7F,
// '"' or '\\'. Each test is exact as a whole: (x - 0x01..) & ~x & 0x80..
// is non-zero exactly when a byte of x is 0, and with 0x20.. when a byte
// is below 0x20.
constexpr bool word_plain(std::uint64_t w) noexcept {
    constexpr std::uint64_t ones = 0x0101010101010101ULL;
    constexpr std::uint64_t high = 0x8080808080808080ULL;
    const auto zero_byte = [](std::uint64_t x) { return (x - ones) & ~x & high; };
    const std::uint64_t below = (w - ones * 0x20U) & ~w & high;
    return ((w & high) | below | zero_byte(w ^ (ones * '"')) | zero_byte(w ^ (ones * '\\')) |
            zero_byte(w ^ (ones * 0x7FU))) == 0;
}

} // namespace

void json_escape(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    for (std::size_t i = 0; i < s.size();) {
        // The usual case: a run of printable ASCII, appended at once. Eight
        // bytes a step, then one by one (this runs for every field of every
        // event and audit record).
        std::size_t run = i;
        for (std::uint64_t w = 0; run + 8 <= s.size(); run += 8) {
            std::memcpy(&w, s.data() + run, 8);
            if (!word_plain(w)) {
                break;
            }
        }
        while (run < s.size() && plain_bytes[static_cast<unsigned char>(s[run])]) {
            ++run;
        }
        if (run != i) {
            out.append(s.data() + i, run - i);
            i = run;
            continue;
        }
        const auto u = static_cast<unsigned char>(s[i]);
        if (u == '"' || u == '\\') {
            out.push_back('\\');
            out.push_back(static_cast<char>(u));
        } else if (u < 0x20 || u == 0x7F) {
            out += "\\u00";
            out.push_back(hex[u >> 4U]);
            out.push_back(hex[u & 15U]);
        } else if (u >= 0x80) {
            const std::size_t n = utf8_len(s, i);
            if (n == 0) {
                out += "\\ufffd";
                ++i;
            } else {
                out.append(s.substr(i, n));
                i += n;
            }
            continue;
        } else {
            out.push_back(static_cast<char>(u));
        }
        ++i;
    }
}

void random_uuid(char (&out)[36]) {
    thread_local std::mt19937_64 gen = [] {
        std::uint64_t seed[2] = {0, 0};
        if (::getrandom(seed, sizeof seed, 0) != static_cast<ssize_t>(sizeof seed)) {
            seed[0] = static_cast<std::uint64_t>(
                std::chrono::steady_clock::now().time_since_epoch().count());
            seed[1] = reinterpret_cast<std::uintptr_t>(&seed);
        }
        std::seed_seq seq{seed[0], seed[0] >> 32U, seed[1], seed[1] >> 32U};
        return std::mt19937_64(seq);
    }();
    std::uint64_t hi = gen();
    std::uint64_t lo = gen();
    hi = (hi & ~0xF000ULL) | 0x4000ULL;         // version 4
    lo = (lo & ~(3ULL << 62U)) | (2ULL << 62U); // variant 10
    static constexpr char hex[] = "0123456789abcdef";
    std::size_t at = 0;
    for (int i = 0; i < 32; ++i) {
        if (i == 8 || i == 12 || i == 16 || i == 20) {
            out[at++] = '-';
        }
        const std::uint64_t word = i < 16 ? hi : lo;
        const unsigned shift = static_cast<unsigned>(60 - (i % 16) * 4);
        out[at++] = hex[(word >> shift) & 15U];
    }
}

std::string random_uuid() {
    char b[36];
    random_uuid(b);
    return std::string(b, sizeof b);
}

std::string rfc3339(std::int64_t epoch_s) {
    std::time_t t = static_cast<std::time_t>(epoch_s);
    std::tm tm{};
    (void)gmtime_r(&t, &tm);
    char buf[32];
    std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return std::string(buf, n);
}

static bool digits(std::string_view s, std::size_t at, std::size_t n, int& out) noexcept {
    if (at + n > s.size()) {
        return false;
    }
    int v = 0;
    for (std::size_t i = at; i < at + n; ++i) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (s[i] - '0');
    }
    out = v;
    return true;
}

std::optional<std::int64_t> parse_rfc3339(std::string_view s) noexcept {
    // YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM); Distribution writes RFC3339Nano.
    std::tm tm{};
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, se = 0;
    if (!digits(s, 0, 4, y) || s.size() < 20 || s[4] != '-' || !digits(s, 5, 2, mo) ||
        s[7] != '-' || !digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't') ||
        !digits(s, 11, 2, h) || s[13] != ':' || !digits(s, 14, 2, mi) || s[16] != ':' ||
        !digits(s, 17, 2, se)) {
        return std::nullopt;
    }
    std::size_t i = 19;
    if (i < s.size() && s[i] == '.') {
        ++i;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
            ++i;
        }
    }
    int offset_s = 0;
    if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
        ++i;
    } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
        int oh = 0, om = 0;
        if (!digits(s, i + 1, 2, oh) || i + 3 >= s.size() || s[i + 3] != ':' ||
            !digits(s, i + 4, 2, om)) {
            return std::nullopt;
        }
        offset_s = (oh * 3600 + om * 60) * (s[i] == '+' ? 1 : -1);
        i += 6;
    } else {
        return std::nullopt;
    }
    if (i != s.size()) {
        return std::nullopt;
    }
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    return static_cast<std::int64_t>(timegm(&tm)) - offset_s;
}

std::string http_date(std::int64_t epoch_s) {
    std::time_t t = static_cast<std::time_t>(epoch_s);
    std::tm tm{};
    (void)gmtime_r(&t, &tm);
    static constexpr const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    char buf[40];
    int n = std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT",
                          days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
                          tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
}

std::string base64(std::string_view s) {
    static constexpr char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((s.size() + 2) / 3 * 4);
    for (std::size_t i = 0; i < s.size(); i += 3) {
        const auto byte = [&](std::size_t k) {
            return k < s.size() ? static_cast<unsigned>(static_cast<unsigned char>(s[k])) : 0U;
        };
        const unsigned n = (byte(i) << 16U) | (byte(i + 1) << 8U) | byte(i + 2);
        out.push_back(alphabet[(n >> 18U) & 63U]);
        out.push_back(alphabet[(n >> 12U) & 63U]);
        out.push_back(i + 1 < s.size() ? alphabet[(n >> 6U) & 63U] : '=');
        out.push_back(i + 2 < s.size() ? alphabet[n & 63U] : '=');
    }
    return out;
}

bool name_match(std::string_view p, std::string_view s) noexcept {
    // Dynamic programming over (pattern element, name prefix): O(|p| * |s|)
    // whatever the input, no backtracking blow-up. `at[j]`: the pattern so
    // far matches the first j characters of the name.
    std::vector<char> at(s.size() + 1, 0);
    std::vector<char> next(s.size() + 1, 0);
    at[0] = 1;
    for (std::size_t i = 0; i < p.size();) {
        const bool star = p[i] == '*';
        const bool any = star && i + 1 < p.size() && p[i + 1] == '*';
        for (std::size_t j = 0; j <= s.size(); ++j) {
            if (star) {
                next[j] = static_cast<char>(
                    at[j] != 0 || (j > 0 && next[j - 1] != 0 && (any || s[j - 1] != '/')));
            } else {
                next[j] = static_cast<char>(j > 0 && s[j - 1] == p[i] && at[j - 1] != 0);
            }
        }
        at.swap(next);
        i += any ? 2 : 1;
    }
    return at[s.size()] != 0;
}

} // namespace rp::util
