// SPDX-License-Identifier: Apache-2.0
#include "http/request_parser.hh"

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

int RequestParser::on_header_value_complete(llhttp_t* p) noexcept {
    RequestParser& s = self(p);
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
    if (!split_target(r.target, r.path, r.query) || r.path.empty() || r.path.front() != '/') {
        return fail(Failure::bad_request, "bad request target");
    }
    return HPE_PAUSED;
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

RequestParser::Step RequestParser::feed(const char* data, std::size_t len) noexcept {
    spans_.clear();
    if (failure_ != Failure::none) {
        return Step{Status::error, 0};
    }
    if (complete_) {
        // The previous message was handed out: start the next one.
        req_.clear();
        in_head_ = true;
        started_ = false;
        complete_ = false;
        head_bytes_ = 0;
        field_.clear();
        value_.clear();
        value_started_ = false;
    }
    bool was_in_head = in_head_;
    llhttp_errno_t err = llhttp_execute(&parser_, data, len);
    std::size_t consumed = len;
    if (err == HPE_PAUSED) {
        consumed = static_cast<std::size_t>(llhttp_get_error_pos(&parser_) - data);
        llhttp_resume(&parser_);
    } else if (err != HPE_OK) {
        if (failure_ == Failure::none) {
            bool body_err = !in_head_ && (err == HPE_INVALID_CHUNK_SIZE || err == HPE_STRICT);
            failure_ = body_err ? Failure::bad_body : Failure::bad_request;
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
