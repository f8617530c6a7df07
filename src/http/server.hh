// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "http/handler.hh"
#include "http/request.hh"
#include "http/request_parser.hh"
#include "reactor/runtime.hh"
#include "reactor/shard.hh"
#include "reactor/socket.hh"
#include "util/result.hh"
#include "util/unique_fd.hh"

namespace rp::http {

class Connection;
class TlsContext;

struct ServerConfig {
    std::string listen = "127.0.0.1:5000";
    unsigned connections_per_shard_max = 16384;
    RequestParser::Limits limits;
    int idle_timeout_ms = 60000;
    int header_timeout_ms = 10000;
    int body_timeout_ms = 30000;
    int drain_timeout_ms = 10000;
    std::size_t head_buffer_bytes =
        4096; // heads are parsed as they arrive: no need to hold one whole
    std::size_t body_buffer_bytes = 262144;
    std::size_t big_buffers_cached_max = 4;
    std::size_t big_buffers_max = 64; // lent at once per shard (memory bound)
    std::size_t head_buffers_cached_max = 256;
    std::size_t drain_body_bytes_max = 1u << 20;
    std::vector<Header> default_headers; // added to every response
    // TLS on this listener when set (never both plain and TLS on one listener).
    std::shared_ptr<TlsContext> tls;
    int handshake_timeout_ms = 10000; // a TLS handshake must complete in this time
    // Which of the application's listeners this is, told to the handler with
    // each exchange (Exchange::listener): one handler may serve several.
    unsigned listener = 0;
};

class Server;

// A pipe for splice (file -> pipe -> socket), lent by the shard for one
// response and returned empty; kept in a small per-shard pool so idle
// connections hold no pipes (each 1 MiB pipe costs kernel memory).
struct Pipe {
    util::UniqueFd r;
    util::UniqueFd w;
    std::size_t size = 0;
    bool valid() const noexcept { return r.valid(); }
};

// The per-shard half of the server: the connection table and buffers.
// Touched only by its shard's thread, except `active_` (read by the acceptor).
class ShardServer {
  public:
    ShardServer(Server& server, reactor::Shard& shard) noexcept;
    Server& server() noexcept { return server_; }
    const ServerConfig& config() const noexcept;
    Handler& handler() noexcept;
    reactor::Shard& shard() noexcept { return shard_; }

    void adopt(int fd) noexcept; // takes ownership of an accepted socket
    void link(Connection* c) noexcept;
    void unlink(Connection* c) noexcept;
    void drain_all() noexcept;
    void force_all() noexcept;
    bool draining() const noexcept { return draining_; }
    // Connections assigned to this shard: reserved by the acceptor when it
    // picks the shard, released when the connection ends or is refused.
    unsigned active() const noexcept { return active_.load(std::memory_order_relaxed); }
    void reserve() noexcept { active_.fetch_add(1, std::memory_order_relaxed); }

    util::Result<Pipe> take_pipe() noexcept;
    void give_pipe(Pipe p) noexcept; // only empty pipes come back
    std::unique_ptr<char[]> take_head_buffer();
    void give_head_buffer(std::unique_ptr<char[]> b) noexcept;
    std::unique_ptr<char[]> take_big_buffer();
    void give_big_buffer(std::unique_ptr<char[]> b) noexcept;
    const std::string& date() noexcept; // HTTP Date, refreshed once a second

  private:
    Server& server_;
    reactor::Shard& shard_;
    Connection* head_ = nullptr;
    std::atomic<unsigned> active_{0};
    bool draining_ = false;
    std::vector<std::unique_ptr<char[]>> big_free_;
    std::vector<std::unique_ptr<char[]>> head_free_;
    std::vector<Pipe> pipes_free_;
    std::size_t big_lent_ = 0;
    std::string date_;
    std::int64_t date_sec_ = 0;
};

// HTTP on every shard of a runtime, one acceptor (on shard 0) that hands
// each new connection to the shard with the fewest, so load spreads evenly.
// The runtime owns the threads; the server owns the connections.
class Server {
  public:
    Server(ServerConfig cfg, Handler& handler, reactor::Runtime& runtime);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Binds and listens; returns the bound "host:port".
    util::Result<std::string> listen();
    // Starts accepting (the runtime is started).
    void start() noexcept;
    // Graceful stop: stop accepting, drain for drain_timeout_ms, then cut
    // what is left (shutdown and cancel in the ring) and return once every
    // connection has ended. Waits on a condition, never in a sleep loop.
    void stop() noexcept;
    // stop() for several servers at once: all stop accepting and drain
    // together, under one deadline (the longest drain_timeout_ms); only when
    // one did not drain are all cut, each handler told once.
    static void stop_together(std::span<Server* const> servers) noexcept;

    const ServerConfig& config() const noexcept { return cfg_; }
    Handler& handler() noexcept { return handler_; }
    unsigned shard_count() const noexcept { return static_cast<unsigned>(servers_.size()); }
    ShardServer& shard_server(unsigned i) noexcept { return *servers_[i]; }
    // Connections open now, on every shard (any thread).
    std::uint64_t active_connections() const noexcept { return total_active(); }
    // Chooses a shard for a new connection (fewest active, round robin on ties).
    unsigned pick_shard() noexcept;
    int listen_fd() const noexcept { return listen_fd_.get(); }
    void acceptor_exited() noexcept;
    // A connection ended while stopping: wakes stop() when it was the last.
    void connection_ended() noexcept;

  private:
    std::uint64_t total_active() const noexcept;
    // Waits until every connection ended and the acceptor exited, or until
    // `deadline`; true when all ended.
    bool wait_quiet(std::chrono::steady_clock::time_point deadline) noexcept;
    void post_all(void (*fn)(void*, std::uint64_t) noexcept) noexcept;
    bool begin_stop() noexcept; // false when not started or already stopping
    void force() noexcept;

    ServerConfig cfg_;
    Handler& handler_;
    reactor::Runtime& runtime_;
    util::UniqueFd listen_fd_;
    std::vector<std::unique_ptr<ShardServer>> servers_;
    bool started_ = false;
    unsigned rr_ = 0;
    std::atomic<bool> stopping_{false};
    std::mutex quiet_mu_;
    std::condition_variable quiet_cv_;
    bool acceptor_done_ = false;
};

} // namespace rp::http
