// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "http/request_parser.hh"
#include "http/response.hh"
#include "http/transport.hh"
#include "reactor/task.hh"
#include "util/result.hh"

namespace rp::http {

class ShardServer;
class Connection;

// One request/response on a connection, handed to the Handler. It borrows the
// connection, which outlives the handler (the connection awaits it).
class Exchange {
  public:
    explicit Exchange(Connection& c) noexcept : conn_(c) {}
    const Request& request() const noexcept;
    // The next piece of the request body; an empty span at its end. The span
    // borrows the connection's receive buffer until the next call.
    reactor::Task<util::Result<std::span<const char>>> read_body() noexcept;
    // Reads body bytes into `dst` (up to `cap`); 0 at the end of the body. A
    // Content-Length body is received straight into `dst` (no copy through
    // the connection's buffer); other bytes are copied.
    reactor::Task<util::Result<std::size_t>> read_body_into(char* dst, std::size_t cap) noexcept;
    bool body_done() const noexcept;
    std::uint64_t body_bytes() const noexcept;
    // Bytes sent for this request so far (head and body).
    std::uint64_t bytes_sent() const noexcept;
    reactor::Task<util::Result<void>> respond(Response r) noexcept;
    bool responded() const noexcept;
    int status() const noexcept; // of the response, once responded (0 before)
    unsigned shard_id() const noexcept;
    // ServerConfig::listener of the listener that accepted the connection.
    unsigned listener() const noexcept;
    // Over TLS, and the verified client certificate's common name (mTLS).
    bool secure() const noexcept;
    const std::string& peer_subject() const noexcept;
    const std::string& peer() const noexcept;
    // Who the handler found the request came from (for the access log).
    void set_user(std::string user);
    const std::string& user() const noexcept;
    // This request's id (a random UUID): in the access log, the audit log
    // and the events it causes.
    const std::string& request_id() const noexcept;

  private:
    Connection& conn_;
};

// Connection state, asserted at each transition.
enum class ConnState { reading_head, handling, writing, closing };

// One accepted connection on one shard; every byte goes through its transport. Lives in the frame
// of `serve_connection` and is linked into the shard's table while it runs.
class Connection {
  public:
    Connection(ShardServer& srv, std::unique_ptr<Transport> io, std::string peer) noexcept;
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    reactor::Task<void> run() noexcept;
    // Drain: close now if idle between requests, else after this response.
    void drain() noexcept;
    // Force: cut the socket; in-flight operations fail and the flow unwinds.
    void force_close() noexcept;

    Connection* prev_ = nullptr; // shard table links
    Connection* next_ = nullptr;

  private:
    friend class Exchange;
    struct Buffer {
        std::unique_ptr<char[]> data;
        std::size_t cap = 0;
        std::size_t begin = 0;
        std::size_t end = 0;
    };
    enum class HeadResult { ok, closed, timeout, error };

    reactor::Task<HeadResult> read_head() noexcept;
    reactor::Task<bool> wait_idle(int timeout_ms) noexcept;
    static constexpr int park_after_ms = 50;
    reactor::Task<void> serve_one() noexcept;
    reactor::Task<util::Result<std::span<const char>>> read_body() noexcept;
    reactor::Task<util::Result<std::size_t>> read_body_into(char* dst, std::size_t cap) noexcept;
    reactor::Task<util::Result<std::size_t>> recv_body_direct(char* dst, std::size_t cap) noexcept;
    std::size_t copy_pending_spans(char* dst, std::size_t cap) noexcept;
    reactor::Task<util::Result<void>> send_continue() noexcept;
    reactor::Task<util::Result<void>> fill_for_body() noexcept;
    reactor::Task<util::Result<void>> respond(Response r) noexcept;
    reactor::Task<util::Result<void>> send_all(const char* data, std::size_t len) noexcept;
    reactor::Task<util::Result<void>> send_file(int fd, std::uint64_t off,
                                                std::uint64_t len) noexcept;
    reactor::Task<void> send_error(int status, const char* reason) noexcept;
    reactor::Task<bool> finish_body() noexcept;
    bool decide_keep_alive() const noexcept;
    void use_big_buffer() noexcept;
    void release_big_buffer() noexcept;

    ShardServer& srv_;
    std::unique_ptr<Transport> io_;
    std::string peer_;
    ConnState state_ = ConnState::reading_head;
    RequestParser parser_;
    Buffer buf_;
    std::unique_ptr<char[]> big_;   // lent by the shard while a large body streams
    std::unique_ptr<char[]> small_; // the head buffer, parked while big_ is in use
    std::size_t small_cap_ = 0;
    std::size_t span_idx_ = 0;
    bool body_done_ = false;
    std::uint64_t body_bytes_ = 0;
    bool continue_sent_ = false;
    bool responded_ = false;
    bool keep_alive_ = true;
    bool drain_requested_ = false;
    bool cut_ = false;
    int status_ = 0;
    std::string user_;                // set by the handler for this request
    std::string request_id_;          // this request's
    std::uint64_t sent_at_start_ = 0; // io_->bytes_sent() when the request began
};

} // namespace rp::http
