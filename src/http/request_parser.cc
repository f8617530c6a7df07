// SPDX-License-Identifier: Apache-2.0
#include "http/request_parser.hh"

#include "util/assert.hh"
#include "util/strings.hh"

namespace rp::http {

RequestParser::RequestParser(Limits limits) noexcept : limits_(limits) {
    llhttp_settings_init(&settings_);
    settings_.on_message_begin = on_message_begin;
    settings_.on_url = on_url;
    settings_.on_header_field = on_header_field;
    settings_.on_header_value = on_header_value;
    settings_.on_header_value_complete = on_header_value_complete;
    settings_.on_headers_complete = on_headers_complete;
    settings_.on_body = on_body;
    settings_.on_message_complete = on_message_complete;
    llhttp_init(&parser_, HTTP_REQUEST, &settings_);
    parser_.data = this;
}

RequestParser& RequestParser::self(llhttp_t* p) noexcept {
    return *static_cast<RequestParser*>(p->data);
}

int RequestParser::fail(Failure f, const char* reason) noexcept {
    failure_ = f;
    reason_ = reason;
    return HPE_USER;
}

int RequestParser::on_message_begin(llhttp_t* p) noexcept {
    RequestParser& s = self(p);
    s.started_ = true;
    return 0;
}

int RequestParser::on_url(llhttp_t* p, const char* at, std::size_t len) noexcept {
    RequestParser& s = self(p);
    if (s.req_.target.size() + len > s.limits_.url_bytes_max) {
        return s.fail(Failure::url_too_long, "request target too long");
    }
    s.req_.target.append(at, len);
    return 0;
}

int RequestParser::on_header_field(llhttp_t* p, const char* at, std::size_t len) noexcept {
    RequestParser& s = self(p);
    if (s.value_started_) {
        s.field_.clear();
        s.value_.clear();
        s.value_started_ = false;
    }
    if (s.field_.size() + len > s.limits_.header_bytes_max) {
        return s.fail(Failure::header_too_large, "header field too large");
    }
    s.field_.append(at, len);
    return 0;
}

int RequestParser::on_header_value(llhttp_t* p, const char* at, std::size_t len) noexcept {
    RequestParser& s = self(p);
    s.value_started_ = true;
    if (s.value_.size() + len > s.limits_.header_bytes_max) {
        return s.fail(Failure::header_too_large, "header value too large");
    }
    s.value_.append(at, len);
    return 0;
}

namespace {

// RFC 9110 token characters: what a header name may consist of.
bool token_char(char c) noexcept {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
        return true;
    }
    switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~': return true;
    default: return false;
    }
}

bool is_token(std::string_view s) noexcept {
    if (s.empty()) {
        return false;
    }
    for (char c : s) {
        if (!token_char(c)) {
            return false;
        }
    }
    return true;
}

} // namespace

int RequestParser::on_header_value_complete(llhttp_t* p) noexcept {
    RequestParser& s = self(p);
    if (!is_token(s.field_)) {
        return s.fail(Failure::bad_request, "invalid header name");
    }
    if (s.req_.headers.size() >= s.limits_.header_count_max) {
        return s.fail(Failure::header_too_large, "too many header fields");
    }
    s.req_.headers.push_back(Header{std::move(s.field_), std::move(s.value_)});
    s.field_.clear();
    s.value_.clear();
    s.value_started_ = true; // a field that follows starts a new header
    return 0;
}

int RequestParser::finish_head() noexcept {
    Request& r = req_;
    r.method = llhttp_method_name(static_cast<llhttp_method_t>(parser_.method));
    r.http_major = parser_.http_major;
    r.http_minor = parser_.http_minor;
    r.keep_alive = llhttp_should_keep_alive(&parser_) != 0;
    r.chunked = (parser_.flags & F_CHUNKED) != 0;
    if ((parser_.flags & F_CONTENT_LENGTH) != 0) {
        r.content_length = parser_.content_length;
    }
    std::string_view expect = r.header("Expect");
    r.expect_continue = util::iequals(util::trim(expect), "100-continue");
    if (r.has_header("Transfer-Encoding")) {
        // Only plain "chunked": other codings would hand us bytes we cannot store.
        if (!r.chunked || !util::iequals(util::trim(r.header("Transfer-Encoding")), "chunked") ||
            r.header_list("Transfer-Encoding").size() != 1) {
            return fail(Failure::bad_request, "unsupported Transfer-Encoding");
        }
    }
    if (!split_target(r.target, r.path, r.query) || r.path.empty() || r.path.front() != '/') {
        return fail(Failure::bad_request, "bad request target");
    }
    // Bodies are framed here, not by llhttp: it skips them (1), which completes
    // its message at once and pauses there. Chunked bodies go through
    // ChunkedDecoder (strict); Content-Length bodies are counted, so the
    // connection may receive them straight into a caller's buffer.
    return r.has_body() ? 1 : HPE_PAUSED;
}

int RequestParser::on_headers_complete(llhttp_t* p) noexcept {
    RequestParser& s = self(p);
    s.in_head_ = false;
    return s.finish_head();
}

int RequestParser::on_body(llhttp_t* p, const char* at, std::size_t len) noexcept {
    self(p).spans_.emplace_back(at, len);
    return 0;
}

int RequestParser::on_message_complete(llhttp_t* p) noexcept {
    self(p).complete_ = true;
    return HPE_PAUSED;
}

void RequestParser::start_next() noexcept {
    req_.clear();
    in_head_ = true;
    started_ = false;
    complete_ = false;
    head_bytes_ = 0;
    field_.clear();
    value_.clear();
    value_started_ = false;
    line_.clear();
    line_done_ = false;
}

bool RequestParser::validate_line() noexcept {
    // method SP request-target SP HTTP-version CRLF, single spaces.
    std::string_view l = line_;
    if (l.size() < 2 || l[l.size() - 2] != '\r') {
        failure_ = Failure::bad_request;
        reason_ = "request line must end in CRLF";
        return false;
    }
    l.remove_suffix(2);
    auto sp1 = l.find(' ');
    auto sp2 = sp1 == std::string_view::npos ? sp1 : l.find(' ', sp1 + 1);
    if (sp1 == 0 || sp2 == std::string_view::npos || sp2 == sp1 + 1 ||
        l.find(' ', sp2 + 1) != std::string_view::npos || !is_token(l.substr(0, sp1))) {
        failure_ = Failure::bad_request;
        reason_ = "malformed request line";
        return false;
    }
    for (char c : l.substr(sp1 + 1, sp2 - sp1 - 1)) {
        auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u == 0x7f) {
            failure_ = Failure::bad_request;
            reason_ = "malformed request target";
            return false;
        }
    }
    std::string_view v = l.substr(sp2 + 1);
    if (v == "HTTP/1.1" || v == "HTTP/1.0") {
        return true;
    }
    bool shaped = v.size() == 8 && v.substr(0, 5) == "HTTP/" && v[5] >= '0' && v[5] <= '9' &&
                  v[6] == '.' && v[7] >= '0' && v[7] <= '9';
    failure_ = shaped ? Failure::bad_version : Failure::bad_request;
    reason_ = shaped ? "HTTP version not supported" : "malformed HTTP version";
    return false;
}

bool RequestParser::check_request_line(const char* data, std::size_t len) noexcept {
    for (std::size_t i = 0; i < len && !line_done_; ++i) {
        line_.push_back(data[i]);
        if (data[i] != '\n') {
            if (line_.size() > limits_.url_bytes_max + 32) {
                failure_ = Failure::url_too_long;
                reason_ = "request target too long";
                return false;
            }
            continue;
        }
        if (line_ == "\r\n") {
            line_.clear(); // an empty line before a request is tolerated (RFC 9112 §2.2)
            continue;
        }
        line_done_ = true;
        return validate_line();
    }
    return true;
}

void RequestParser::consume_raw(std::size_t n) noexcept {
    RP_ASSERT(body_ == BodyMode::length && n <= length_left_);
    length_left_ -= n;
    if (length_left_ == 0) {
        body_ = BodyMode::none;
        complete_ = true;
    }
}

RequestParser::Step RequestParser::feed_length(const char* data, std::size_t len) noexcept {
    std::size_t n = len < length_left_ ? len : static_cast<std::size_t>(length_left_);
    if (n > 0) {
        spans_.emplace_back(data, n);
    }
    consume_raw(n);
    return Step{complete_ ? Status::message_done : Status::need_more, n};
}

RequestParser::Step RequestParser::feed_chunked(const char* data, std::size_t len) noexcept {
    auto st = chunked_.feed(data, len, spans_);
    if (st.status == ChunkedDecoder::Status::error) {
        failure_ = Failure::bad_body;
        reason_ = chunked_.error();
        return Step{Status::error, 0};
    }
    if (st.status == ChunkedDecoder::Status::done) {
        body_ = BodyMode::none;
        complete_ = true;
        return Step{Status::message_done, st.consumed};
    }
    return Step{Status::need_more, st.consumed};
}

RequestParser::Step RequestParser::feed(const char* data, std::size_t len) noexcept {
    spans_.clear();
    if (failure_ != Failure::none) {
        return Step{Status::error, 0};
    }
    if (body_ == BodyMode::chunked) {
        return feed_chunked(data, len);
    }
    if (body_ == BodyMode::length) {
        return feed_length(data, len);
    }
    if (complete_) {
        start_next(); // the previous message was handed out
    }
    bool was_in_head = in_head_;
    if (was_in_head && !line_done_ && !check_request_line(data, len)) {
        return Step{Status::error, 0};
    }
    llhttp_errno_t err = llhttp_execute(&parser_, data, len);
    std::size_t consumed = len;
    if (err == HPE_PAUSED) {
        consumed = static_cast<std::size_t>(llhttp_get_error_pos(&parser_) - data);
        llhttp_resume(&parser_);
    } else if (err != HPE_OK) {
        if (failure_ == Failure::none) {
            failure_ = in_head_ ? Failure::bad_request : Failure::bad_body;
            reason_ = llhttp_get_error_reason(&parser_);
        }
        return Step{Status::error, 0};
    }
    if (was_in_head) {
        head_bytes_ += consumed;
        if (head_bytes_ > limits_.header_bytes_max) {
            failure_ = Failure::header_too_large;
            reason_ = "request head too large";
            return Step{Status::error, 0};
        }
        if (!in_head_) {
            if (req_.has_body()) {
                // llhttp completed its message when it skipped the body.
                complete_ = false;
                if (req_.chunked) {
                    body_ = BodyMode::chunked;
                    chunked_.reset();
                } else {
                    body_ = BodyMode::length;
                    length_left_ = *req_.content_length;
                }
            }
            return Step{Status::head_done, consumed};
        }
    }
    return Step{complete_ ? Status::message_done : Status::need_more, consumed};
}

RequestParser::Failure RequestParser::finish() noexcept {
    if (failure_ != Failure::none) {
        return failure_;
    }
    llhttp_errno_t err = llhttp_finish(&parser_);
    if (err != HPE_OK && err != HPE_PAUSED) {
        failure_ = in_head_ ? Failure::bad_request : Failure::bad_body;
        reason_ = llhttp_get_error_reason(&parser_);
    }
    return failure_;
}

} // namespace rp::http
