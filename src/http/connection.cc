// SPDX-License-Identifier: Apache-2.0
#include "http/connection.hh"

#include <cstring>

#include "http/server.hh"
#include "reactor/ops.hh"
#include "util/assert.hh"
#include "util/strings.hh"

namespace rp::http {

using reactor::Task;
using util::Errc;
using util::Error;
using util::Result;

// ---- Exchange ---------------------------------------------------------

const Request& Exchange::request() const noexcept { return conn_.parser_.request(); }
Task<Result<std::span<const char>>> Exchange::read_body() noexcept { return conn_.read_body(); }
Task<Result<std::size_t>> Exchange::read_body_into(char* dst, std::size_t cap) noexcept {
    return conn_.read_body_into(dst, cap);
}
bool Exchange::body_done() const noexcept { return conn_.body_done_; }
std::uint64_t Exchange::body_bytes() const noexcept { return conn_.body_bytes_; }
std::uint64_t Exchange::bytes_sent() const noexcept {
    return conn_.io_->bytes_sent() - conn_.sent_at_start_;
}
Task<Result<void>> Exchange::respond(Response r) noexcept { return conn_.respond(std::move(r)); }
int Exchange::status() const noexcept { return conn_.status_; }

bool Exchange::responded() const noexcept { return conn_.responded_; }
unsigned Exchange::shard_id() const noexcept { return conn_.srv_.shard().id(); }
unsigned Exchange::listener() const noexcept { return conn_.srv_.config().listener; }
bool Exchange::secure() const noexcept { return conn_.io_->secure(); }
const std::string& Exchange::peer_subject() const noexcept { return conn_.io_->peer_subject(); }
const std::string& Exchange::peer() const noexcept { return conn_.peer_; }
void Exchange::set_user(std::string user) { conn_.user_ = std::move(user); }
const std::string& Exchange::user() const noexcept { return conn_.user_; }
const std::string& Exchange::request_id() const noexcept { return conn_.request_id_; }

// ---- Connection -------------------------------------------------------

Connection::Connection(ShardServer& srv, std::unique_ptr<Transport> io, std::string peer) noexcept
    : srv_(srv), io_(std::move(io)), peer_(std::move(peer)), parser_(srv.config().limits) {
    buf_.cap = srv.config().head_buffer_bytes;
    buf_.data = srv.take_head_buffer();
    srv_.link(this);
}

Connection::~Connection() {
    if (small_) {
        srv_.give_big_buffer(std::move(buf_.data)); // return the loan whatever it holds
        buf_.data = std::move(small_);
    }
    if (buf_.data) {
        srv_.give_head_buffer(std::move(buf_.data));
    }
    srv_.unlink(this);
}

void Connection::drain() noexcept {
    drain_requested_ = true;
    if (state_ == ConnState::reading_head && !parser_.message_started() && buf_.begin == buf_.end) {
        force_close();
    }
}

void Connection::force_close() noexcept {
    if (!cut_) {
        cut_ = true;
        io_->cut();
    }
}

void Connection::use_big_buffer() noexcept {
    if (big_ || buf_.cap >= srv_.config().body_buffer_bytes) {
        return;
    }
    big_ = srv_.take_big_buffer();
    if (!big_) {
        return; // the shard's large buffers are all lent: go on with the small one
    }
    std::size_t n = buf_.end - buf_.begin;
    std::memcpy(big_.get(), buf_.data.get() + buf_.begin, n);
    small_ = std::move(buf_.data);
    small_cap_ = buf_.cap;
    buf_.data.reset(big_.release());
    buf_.cap = srv_.config().body_buffer_bytes;
    buf_.begin = 0;
    buf_.end = n;
}

void Connection::release_big_buffer() noexcept {
    if (!small_) {
        return;
    }
    std::size_t n = buf_.end - buf_.begin;
    if (n > small_cap_) {
        return; // pipelined bytes still need the big buffer; try again later
    }
    std::memcpy(small_.get(), buf_.data.get() + buf_.begin, n);
    srv_.give_big_buffer(std::move(buf_.data));
    buf_.data = std::move(small_);
    buf_.cap = small_cap_;
    buf_.begin = 0;
    buf_.end = n;
}

Task<Connection::HeadResult> Connection::read_head() noexcept {
    const ServerConfig& cfg = srv_.config();
    std::uint64_t first_byte_us = 0;
    for (;;) {
        if (buf_.begin < buf_.end) {
            if (first_byte_us == 0) {
                first_byte_us = reactor::monotonic_us();
            }
            auto step = parser_.feed(buf_.data.get() + buf_.begin, buf_.end - buf_.begin);
            if (step.status == RequestParser::Status::error) {
                co_return HeadResult::error;
            }
            buf_.begin += step.consumed;
            if (step.status == RequestParser::Status::head_done) {
                co_return HeadResult::ok;
            }
            RP_ASSERT(buf_.begin == buf_.end); // llhttp consumes all head bytes
        }
        buf_.begin = buf_.end = 0;
        int timeout = cfg.idle_timeout_ms;
        if (first_byte_us != 0) {
            std::uint64_t spent_ms = (reactor::monotonic_us() - first_byte_us) / 1000;
            if (spent_ms >= static_cast<std::uint64_t>(cfg.header_timeout_ms)) {
                co_return HeadResult::timeout;
            }
            timeout = cfg.header_timeout_ms - static_cast<int>(spent_ms);
        } else if (drain_requested_) {
            co_return HeadResult::closed;
        }
        if (first_byte_us == 0 && !small_ && timeout > park_after_ms) {
            if (!(co_await wait_idle(timeout))) {
                co_return HeadResult::closed;
            }
            continue;
        }
        int n = co_await io_->recv(buf_.data.get(), buf_.cap, timeout);
        if (n <= 0) {
            bool partial = first_byte_us != 0;
            if ((n == -ECANCELED || n == -ETIME) && partial) {
                co_return HeadResult::timeout;
            }
            co_return HeadResult::closed;
        }
        buf_.end = static_cast<std::size_t>(n);
    }
}

// Waits for the next request. A busy connection keeps its head buffer for a
// moment; one idle longer than park_after_ms gives the buffer back to the
// shard and waits with a poll, so idle keep-alive connections cost no
// buffer memory. True when bytes arrived (they are in the buffer).
Task<bool> Connection::wait_idle(int timeout_ms) noexcept {
    int n = co_await io_->recv(buf_.data.get(), buf_.cap, park_after_ms);
    if (n > 0) {
        buf_.end = static_cast<std::size_t>(n);
        co_return true;
    }
    if (n != -ECANCELED && n != -ETIME) {
        co_return false;
    }
    srv_.give_head_buffer(std::move(buf_.data));
    bool readable = co_await io_->wait_readable(timeout_ms - park_after_ms);
    buf_.data = srv_.take_head_buffer();
    buf_.begin = buf_.end = 0;
    if (!readable) {
        co_return false; // idle timeout, or the socket failed
    }
    n = co_await io_->recv(buf_.data.get(), buf_.cap, timeout_ms);
    if (n <= 0) {
        co_return false;
    }
    buf_.end = static_cast<std::size_t>(n);
    co_return true;
}

Task<Result<void>> Connection::send_continue() noexcept {
    const Request& req = parser_.request();
    if (req.expect_continue && !continue_sent_ && !responded_) {
        continue_sent_ = true;
        static constexpr char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        co_return co_await send_all(cont, sizeof cont - 1);
    }
    co_return util::Ok{};
}

Task<Result<void>> Connection::fill_for_body() noexcept {
    const Request& req = parser_.request();
    bool large =
        req.chunked || (req.content_length && *req.content_length - body_bytes_ > buf_.cap);
    if (large) {
        use_big_buffer();
    }
    auto c = co_await send_continue();
    if (!c) {
        co_return std::move(c).error();
    }
    buf_.begin = buf_.end = 0;
    int n = co_await io_->recv(buf_.data.get(), buf_.cap, srv_.config().body_timeout_ms);
    if (n <= 0) {
        cut_ = true;
        co_return io_error(n, "recv");
    }
    buf_.end = static_cast<std::size_t>(n);
    co_return util::Ok{};
}

Task<Result<std::span<const char>>> Connection::read_body() noexcept {
    for (;;) {
        auto& spans = parser_.body_spans();
        while (span_idx_ < spans.size()) {
            auto s = spans[span_idx_++];
            if (!s.empty()) {
                body_bytes_ += s.size();
                co_return s;
            }
        }
        if (parser_.message_complete() || body_done_) {
            body_done_ = true;
            co_return std::span<const char>{};
        }
        if (cut_) {
            co_return Error::of(Errc::closed, "connection closed");
        }
        // Every span handed out was consumed: forget them before the buffer
        // is parsed again or refilled.
        spans.clear();
        span_idx_ = 0;
        if (buf_.begin < buf_.end || !parser_.request().has_body()) {
            auto step = parser_.feed(buf_.data.get() + buf_.begin, buf_.end - buf_.begin);
            if (step.status == RequestParser::Status::error) {
                cut_ = true;
                co_return Error::of(Errc::invalid, parser_.failure_reason());
            }
            buf_.begin += step.consumed;
            continue;
        }
        auto r = co_await fill_for_body();
        if (!r) {
            co_return std::move(r).error();
        }
    }
}

// Copies decoded body spans not yet handed out into `dst`; a span that does
// not fit is shortened in place so the rest is handed out next time.
std::size_t Connection::copy_pending_spans(char* dst, std::size_t cap) noexcept {
    auto& spans = parser_.body_spans();
    std::size_t n = 0;
    while (span_idx_ < spans.size() && n < cap) {
        auto& s = spans[span_idx_];
        std::size_t take = s.size() < cap - n ? s.size() : cap - n;
        std::memcpy(dst + n, s.data(), take);
        n += take;
        s = s.subspan(take);
        if (s.empty()) {
            ++span_idx_;
        }
    }
    body_bytes_ += n;
    return n;
}

// Receives Content-Length body bytes straight into the caller's buffer.
Task<Result<std::size_t>> Connection::recv_body_direct(char* dst, std::size_t cap) noexcept {
    auto c = co_await send_continue();
    if (!c) {
        co_return std::move(c).error();
    }
    std::uint64_t left = parser_.length_left();
    std::size_t want = left < cap ? static_cast<std::size_t>(left) : cap;
    int n = co_await io_->recv(dst, want, srv_.config().body_timeout_ms);
    if (n <= 0) {
        cut_ = true;
        co_return io_error(n, "recv");
    }
    parser_.consume_raw(static_cast<std::size_t>(n));
    body_bytes_ += static_cast<std::uint64_t>(n);
    co_return static_cast<std::size_t>(n);
}

Task<Result<std::size_t>> Connection::read_body_into(char* dst, std::size_t cap) noexcept {
    for (;;) {
        std::size_t n = copy_pending_spans(dst, cap);
        if (n > 0) {
            co_return n;
        }
        if (parser_.message_complete() || body_done_) {
            body_done_ = true;
            co_return std::size_t{0};
        }
        if (cut_) {
            co_return Error::of(Errc::closed, "connection closed");
        }
        parser_.body_spans().clear();
        span_idx_ = 0;
        if (buf_.begin < buf_.end || !parser_.request().has_body()) {
            auto step = parser_.feed(buf_.data.get() + buf_.begin, buf_.end - buf_.begin);
            if (step.status == RequestParser::Status::error) {
                cut_ = true;
                co_return Error::of(Errc::invalid, parser_.failure_reason());
            }
            buf_.begin += step.consumed;
            continue;
        }
        if (parser_.body_is_length()) {
            co_return co_await recv_body_direct(dst, cap);
        }
        auto r = co_await fill_for_body();
        if (!r) {
            co_return std::move(r).error();
        }
    }
}

} // namespace rp::http

namespace rp::http {

bool Connection::decide_keep_alive() const noexcept {
    const Request& req = parser_.request();
    if (!req.keep_alive || drain_requested_ || cut_ || srv_.draining()) {
        return false;
    }
    if (body_done_ || parser_.message_complete() || !req.has_body()) {
        return true;
    }
    if (req.expect_continue && !continue_sent_) {
        return false; // the client holds the body back: we cannot find the next request
    }
    if (req.content_length) {
        return *req.content_length - body_bytes_ <= srv_.config().drain_body_bytes_max;
    }
    return req.chunked; // drained with a cap, closed if it runs over
}

Task<Result<void>> Connection::send_all(const char* data, std::size_t len) noexcept {
    int n = co_await io_->send(data, len, srv_.config().body_timeout_ms);
    if (n < 0) {
        cut_ = true;
        co_return io_error(n, "send");
    }
    co_return util::Ok{};
}

Task<Result<void>> Connection::send_file(int fd, std::uint64_t off, std::uint64_t len) noexcept {
    auto r = co_await io_->send_file(fd, off, len, srv_.config().body_timeout_ms);
    if (!r) {
        cut_ = true; // what reached the client is unknown: only closing is safe
    }
    co_return r;
}

Task<Result<void>> Connection::respond(Response r) noexcept {
    RP_ASSERT(!responded_);
    RP_ASSERT(state_ == ConnState::handling);
    responded_ = true;
    state_ = ConnState::writing;
    status_ = r.status;
    const Request& req = parser_.request();
    if (req.method == "HEAD") {
        r.omit_body = true;
    }
    for (const Header& h : srv_.config().default_headers) {
        r.headers.push_back(h);
    }
    keep_alive_ = decide_keep_alive();
    bool http10 = req.http_major == 1 && req.http_minor == 0;
    std::string head = render_head(r, keep_alive_, http10, srv_.date());
    bool file = r.file_fd >= 0 && !r.omit_body && r.file_length > 0;
    if (!r.omit_body && !file) {
        head += r.body;
    }
    auto s = co_await send_all(head.data(), head.size());
    if (!s || !file) {
        co_return s;
    }
    if (r.growing == nullptr) {
        co_return co_await send_file(r.file_fd, r.file_offset, r.file_length);
    }
    // Bounded: each turn sends at least one byte, or ends.
    const std::uint64_t end = r.file_offset + r.file_length;
    for (std::uint64_t at = r.file_offset; at < end;) {
        auto ready = co_await r.growing->ready_past(at);
        if (!ready) {
            // The length was promised: only closing tells the client the
            // body is incomplete.
            cut_ = true;
            keep_alive_ = false;
            co_return std::move(ready).error();
        }
        const std::uint64_t upto = *ready < end ? *ready : end;
        RP_ASSERT(upto > at);
        if (auto sent = co_await send_file(r.file_fd, at, upto - at); !sent) {
            co_return sent;
        }
        at = upto;
    }
    co_return util::Ok{};
}

Task<void> Connection::send_error(int status, const char* reason) noexcept {
    state_ = ConnState::writing;
    Response r;
    r.status = status;
    r.add("Content-Type", "text/plain; charset=utf-8");
    r.body = std::string(status_reason(status)) + ": " + reason + "\n";
    for (const Header& h : srv_.config().default_headers) {
        r.headers.push_back(h);
    }
    std::string out = render_head(r, false, false, srv_.date());
    out += r.body;
    (void)co_await send_all(out.data(), out.size());
}

// After the response: consume what is left of the request body so the next
// request can be parsed, within a byte cap. False means close the connection.
Task<bool> Connection::finish_body() noexcept {
    if (!keep_alive_ || cut_) {
        co_return false;
    }
    std::uint64_t drained = 0;
    for (int i = 0; i < 1000000; ++i) {
        if (body_done_ || parser_.message_complete()) {
            co_return true;
        }
        auto r = co_await read_body();
        if (!r) {
            co_return false;
        }
        if (r->empty()) {
            co_return true;
        }
        drained += r->size();
        if (drained > srv_.config().drain_body_bytes_max) {
            co_return false;
        }
    }
    co_return false;
}

Task<void> Connection::serve_one() noexcept {
    std::uint64_t start = reactor::monotonic_us();
    state_ = ConnState::handling;
    responded_ = false;
    continue_sent_ = false;
    body_done_ = false;
    body_bytes_ = 0;
    span_idx_ = 0;
    sent_at_start_ = io_->bytes_sent();
    status_ = 0;
    user_.clear();
    char id[36];
    util::random_uuid(id);
    request_id_.assign(id, sizeof id); // the string's capacity is reused: no allocation
    Exchange ex(*this);
    co_await srv_.handler().handle(ex);
    if (!responded_ && !cut_) {
        Response r;
        r.status = 500;
        r.add("Content-Type", "application/json");
        r.body = R"({"errors":[{"code":"UNKNOWN","message":"handler gave no response"}]})";
        (void)co_await respond(std::move(r));
    }
    bool again = co_await finish_body();
    const Request& req = parser_.request();
    AccessRecord rec{peer_,
                     user_.empty() ? std::string_view(io_->peer_subject()) : user_,
                     req.method,
                     req.target,
                     status_,
                     body_bytes_,
                     io_->bytes_sent() - sent_at_start_,
                     reactor::monotonic_us() - start,
                     srv_.shard().id(),
                     request_id_};
    srv_.handler().log_access(rec);
    keep_alive_ = again;
    state_ = again ? ConnState::reading_head : ConnState::closing;
    release_big_buffer();
}

Task<void> Connection::run() noexcept {
    if (auto opened = co_await io_->open(srv_.config().handshake_timeout_ms); !opened) {
        srv_.handler().handshake_failed(peer_, opened.error());
        cut_ = true;
    }
    for (std::uint64_t n = 0; !cut_; ++n) {
        state_ = ConnState::reading_head;
        HeadResult h = co_await read_head();
        if (h == HeadResult::closed) {
            break;
        }
        if (h == HeadResult::timeout) {
            co_await send_error(408, "request head not received in time");
            break;
        }
        if (h == HeadResult::error) {
            auto f = parser_.failure();
            int status = f == RequestParser::Failure::header_too_large ? 431
                         : f == RequestParser::Failure::url_too_long   ? 414
                         : f == RequestParser::Failure::bad_version    ? 505
                                                                       : 400;
            co_await send_error(status, parser_.failure_reason());
            break;
        }
        co_await serve_one();
        if (!keep_alive_) {
            break;
        }
    }
    state_ = ConnState::closing;
    co_await io_->close();
}

} // namespace rp::http
