// SPDX-License-Identifier: Apache-2.0
#include "http_parse.hh"

#include <algorithm>
#include <cstdio>

#include "util/strings.hh"

namespace rp::bench {

namespace {

std::optional<std::uint64_t> size_multiplier(std::string_view suffix) {
    std::string s = util::to_lower(suffix);
    if (s.empty() || s == "b") {
        return 1;
    }
    static constexpr std::string_view letters = "kmgt";
    std::size_t power = letters.find(s[0]);
    if (power == std::string_view::npos) {
        return std::nullopt;
    }
    std::string_view rest = std::string_view(s).substr(1);
    std::uint64_t base = 1024;
    if (rest == "b") {
        base = 1000;
    } else if (!rest.empty() && rest != "ib") {
        return std::nullopt;
    }
    std::uint64_t m = 1;
    for (std::size_t i = 0; i <= power; ++i) {
        m *= base;
    }
    return m;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

} // namespace

std::optional<std::uint64_t> parse_size(std::string_view s) noexcept {
    std::size_t i = 0;
    while (i < s.size() && (is_digit(s[i]) || s[i] == '.')) {
        ++i;
    }
    std::string_view num = s.substr(0, i);
    std::size_t dot = num.find('.');
    std::string_view whole = num.substr(0, dot);
    std::string_view frac =
        dot == std::string_view::npos ? std::string_view{} : num.substr(dot + 1);
    if (whole.empty() || frac.find('.') != std::string_view::npos ||
        (dot != std::string_view::npos && frac.empty()) || frac.size() > 6) {
        return std::nullopt;
    }
    auto w = util::parse_u64(whole);
    auto mult = size_multiplier(util::trim(s.substr(i)));
    if (!w || !mult || *w > UINT64_MAX / *mult) {
        return std::nullopt;
    }
    std::uint64_t value = *w * *mult;
    if (!frac.empty()) {
        std::uint64_t f = *util::parse_u64(frac);
        std::uint64_t scale = 1;
        for (std::size_t k = 0; k < frac.size(); ++k) {
            scale *= 10;
        }
        // f/scale < 1 and mult ≤ 2^40, so f * mult fits for 6 fraction digits.
        value += static_cast<std::uint64_t>(static_cast<long double>(f) * *mult / scale + 0.5L);
    }
    return value;
}

std::string format_size(std::uint64_t bytes) {
    static constexpr const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    double v = static_cast<double>(bytes);
    while (v >= 1024 && u < 4) {
        v /= 1024;
        ++u;
    }
    char buf[32];
    if (v == static_cast<double>(static_cast<std::uint64_t>(v))) {
        (void)std::snprintf(buf, sizeof buf, "%llu %s", static_cast<unsigned long long>(v),
                            units[u]);
    } else {
        (void)std::snprintf(buf, sizeof buf, "%.2f %s", v, units[u]);
    }
    return buf;
}

std::optional<Url> parse_url(std::string_view url) {
    static constexpr std::string_view http = "http://";
    static constexpr std::string_view https = "https://";
    bool tls = url.substr(0, https.size()) == https;
    if (!tls && url.substr(0, http.size()) != http) {
        return std::nullopt;
    }
    url.remove_prefix(tls ? https.size() : http.size());
    while (!url.empty() && url.back() == '/') {
        url.remove_suffix(1);
    }
    if (url.empty() || url.find('/') != std::string_view::npos) {
        return std::nullopt;
    }
    Url out;
    out.tls = tls;
    out.authority = std::string(url);
    std::size_t colon = url.rfind(':');
    std::size_t bracket = url.rfind(']');
    if (colon == std::string_view::npos || (bracket != std::string_view::npos && colon < bracket)) {
        out.port = tls ? "443" : "80";
        colon = url.size();
    } else {
        out.port = std::string(url.substr(colon + 1));
    }
    std::string_view host = url.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    out.host = std::string(host);
    if (out.host.empty() || !util::parse_u64(out.port) || *util::parse_u64(out.port) > 65535) {
        return std::nullopt;
    }
    return out;
}

namespace {

bool parse_status_line(std::string_view line, ResponseHead& out) {
    if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || line[8] != ' ') {
        return false;
    }
    auto code = util::parse_u64(line.substr(9, 3));
    if (!code || *code < 100 || *code > 999 || (line.size() > 12 && line[12] != ' ')) {
        return false;
    }
    out.status = static_cast<int>(*code);
    // HTTP/1.0 closes after the response unless told otherwise; we never ask.
    out.close = line[7] == '0';
    return true;
}

bool header_line(std::string_view line, ResponseHead& out) {
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
        return false;
    }
    std::string_view name = line.substr(0, colon);
    std::string_view value = util::trim(line.substr(colon + 1));
    if (util::iequals(name, "content-length")) {
        auto n = util::parse_u64(value);
        if (!n || (out.has_length && out.content_length != *n)) {
            return false;
        }
        out.has_length = true;
        out.content_length = *n;
    } else if (util::iequals(name, "transfer-encoding")) {
        out.chunked = util::to_lower(value).find("chunked") != std::string::npos;
    } else if (util::iequals(name, "connection")) {
        out.close = util::iequals(value, "close");
    } else if (util::iequals(name, "location")) {
        out.location = value;
    } else if (util::iequals(name, "link")) {
        if (!link_next(value).empty()) {
            out.link = value;
        }
    } else if (util::iequals(name, "docker-content-digest")) {
        out.digest = value;
    } else if (util::iequals(name, "content-type")) {
        out.content_type = value;
    }
    return true;
}

} // namespace

bool parse_response_head(std::string_view head, ResponseHead& out) noexcept {
    out = ResponseHead{};
    std::size_t eol = head.find("\r\n");
    if (eol == std::string_view::npos || !parse_status_line(head.substr(0, eol), out)) {
        return false;
    }
    head.remove_prefix(eol + 2);
    while (!head.empty()) {
        eol = head.find("\r\n");
        if (eol == std::string_view::npos) {
            return false;
        }
        if (eol == 0) {
            return true; // the blank line
        }
        if (!header_line(head.substr(0, eol), out)) {
            return false;
        }
        head.remove_prefix(eol + 2);
    }
    return false;
}

std::string_view link_next(std::string_view link) noexcept {
    // Link: <url>; rel="next", <url2>; rel="prev"
    while (!link.empty()) {
        std::size_t lt = link.find('<');
        std::size_t gt = link.find('>', lt);
        if (lt == std::string_view::npos || gt == std::string_view::npos) {
            return {};
        }
        std::string_view target = link.substr(lt + 1, gt - lt - 1);
        std::string_view params = link.substr(gt + 1);
        std::size_t next_lt = params.find('<');
        params = params.substr(0, next_lt);
        std::string lower = util::to_lower(params);
        if (lower.find("rel=\"next\"") != std::string::npos ||
            lower.find("rel=next") != std::string::npos) {
            return target;
        }
        if (next_lt == std::string_view::npos) {
            return {};
        }
        link = link.substr(gt + 1 + next_lt);
    }
    return {};
}

std::string_view url_path(std::string_view url) noexcept {
    std::size_t scheme = url.find("://");
    if (scheme == std::string_view::npos || url.find('/') < scheme) {
        return url;
    }
    std::size_t slash = url.find('/', scheme + 3);
    if (slash == std::string_view::npos) {
        return "/";
    }
    return url.substr(slash);
}

void append_query(std::string& target, std::string_view key, std::string_view value) {
    target += target.find('?') == std::string::npos ? '?' : '&';
    target += key;
    target += '=';
    target += value;
}

} // namespace rp::bench

namespace rp::bench {

namespace {

int hex_value(char c) {
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

} // namespace

void ChunkedDecoder::size_char(char ch) noexcept {
    if (state_ == State::size) {
        int v = hex_value(ch);
        if (v >= 0 && digits_ < 15) {
            remaining_ = remaining_ * 16 + static_cast<std::uint64_t>(v);
            ++digits_;
        } else if (digits_ > 0 && (ch == ';' || ch == ' ' || ch == '\t')) {
            state_ = State::size_ext;
        } else if (digits_ > 0 && ch == '\r') {
            state_ = State::size_lf;
        } else {
            state_ = State::failed;
        }
    } else if (state_ == State::size_ext) {
        if (ch == '\r') {
            state_ = State::size_lf;
        }
    } else if (ch == '\n') {
        state_ = remaining_ == 0 ? State::trailer_start : State::data;
    } else {
        state_ = State::failed;
    }
}

void ChunkedDecoder::after_char(char ch) noexcept {
    switch (state_) {
    case State::data_cr: state_ = ch == '\r' ? State::data_lf : State::failed; break;
    case State::data_lf:
        state_ = ch == '\n' ? State::size : State::failed;
        digits_ = 0;
        remaining_ = 0;
        break;
    case State::trailer_start: state_ = ch == '\r' ? State::trailer_lf : State::trailer_line; break;
    case State::trailer_line:
        if (ch == '\n') {
            state_ = State::trailer_start;
        }
        break;
    case State::trailer_lf: state_ = ch == '\n' ? State::done : State::failed; break;
    default: state_ = State::failed; break;
    }
}

std::string_view ChunkedDecoder::next(std::string_view& in) noexcept {
    while (!in.empty()) {
        if (state_ == State::data) {
            std::size_t n =
                static_cast<std::size_t>(std::min<std::uint64_t>(in.size(), remaining_));
            std::string_view out = in.substr(0, n);
            in.remove_prefix(n);
            remaining_ -= n;
            if (remaining_ == 0) {
                state_ = State::data_cr;
            }
            return out;
        }
        if (state_ == State::done || state_ == State::failed) {
            return {};
        }
        char ch = in.front();
        in.remove_prefix(1);
        if (state_ == State::size || state_ == State::size_ext || state_ == State::size_lf) {
            size_char(ch);
        } else {
            after_char(ch);
        }
    }
    return {};
}

void ResponseReader::reset(bool no_body) {
    head_text_.clear();
    head_ = ResponseHead{};
    chunked_.reset();
    remaining_ = 0;
    state_ = State::head;
    no_body_ = no_body;
    head_done_ = false;
}

std::string_view ResponseReader::feed(std::string_view& in) {
    switch (state_) {
    case State::head: feed_head(in); return {};
    case State::body_length: {
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(in.size(), remaining_));
        std::string_view out = in.substr(0, n);
        in.remove_prefix(n);
        remaining_ -= n;
        if (remaining_ == 0) {
            state_ = State::done;
        }
        return out;
    }
    case State::body_chunked: {
        std::string_view out = chunked_.next(in);
        if (chunked_.failed()) {
            state_ = State::failed;
        } else if (chunked_.done()) {
            state_ = State::done;
        }
        return out;
    }
    case State::body_eof: {
        std::string_view out = in;
        in = {};
        return out;
    }
    default: return {};
    }
}

void ResponseReader::feed_head(std::string_view& in) {
    // The blank line may straddle the previous input and this one.
    std::size_t old = head_text_.size();
    std::size_t end = std::string_view::npos; // offset in `in` just past the blank line
    if (old > 0) {
        char win[6];
        std::size_t back = std::min<std::size_t>(3, old);
        std::size_t fwd = std::min<std::size_t>(3, in.size());
        std::copy_n(head_text_.data() + old - back, back, win);
        std::copy_n(in.data(), fwd, win + back);
        std::size_t p = std::string_view(win, back + fwd).find("\r\n\r\n");
        if (p != std::string_view::npos) {
            end = p + 4 - back;
        }
    }
    if (end == std::string_view::npos) {
        std::size_t p = in.find("\r\n\r\n");
        end = p == std::string_view::npos ? p : p + 4;
    }
    std::size_t take = std::min(end == std::string_view::npos ? in.size() : end,
                                head_bytes_max - std::min(old, head_bytes_max));
    head_text_.append(in.data(), take);
    in.remove_prefix(take);
    if (end == std::string_view::npos || take < end) {
        if (head_text_.size() >= head_bytes_max) {
            state_ = State::failed;
        }
        return;
    }
    if (!parse_response_head(head_text_, head_)) {
        state_ = State::failed;
        return;
    }
    if (head_.status < 200) {
        head_text_.clear(); // an interim response: the real one follows
        return;
    }
    head_done_ = true;
    start_body();
}

void ResponseReader::start_body() {
    int s = head_.status;
    if (no_body_ || s == 204 || s == 304) {
        state_ = State::done;
    } else if (head_.chunked) {
        state_ = State::body_chunked;
    } else if (head_.has_length) {
        remaining_ = head_.content_length;
        state_ = remaining_ > 0 ? State::body_length : State::done;
    } else {
        head_.close = true;
        state_ = State::body_eof;
    }
}

void ResponseReader::on_eof() noexcept {
    if (state_ == State::body_eof) {
        state_ = State::done;
    } else if (!finished()) {
        state_ = State::failed;
    }
}

} // namespace rp::bench
