// SPDX-License-Identifier: Apache-2.0
#include "http/server.hh"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <ctime>

#include "http/connection.hh"
#include "http/tls.hh"
#include "reactor/ops.hh"
#include "util/assert.hh"
#include "util/strings.hh"

namespace rp::http {

using reactor::Task;

namespace {

std::string peer_name(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
        return "-";
    }
    char buf[INET6_ADDRSTRLEN] = {};
    if (ss.ss_family == AF_INET) {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        (void)inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
        return std::string(buf) + ":" + std::to_string(ntohs(a->sin_port));
    }
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    (void)inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
    return "[" + std::string(buf) + "]:" + std::to_string(ntohs(a->sin6_port));
}

// Owns one connection for its whole life: the Connection lives in this frame.
Task<void> serve_connection(ShardServer* srv, int fd) {
    std::unique_ptr<Transport> io;
    if (const auto& tls = srv->config().tls) {
        SSL* ssl = tls->new_session();
        if (ssl == nullptr) {
            (void)co_await reactor::close(fd); // out of memory: refuse this one
            co_return;
        }
        io = std::make_unique<TlsTransport>(*srv, fd, ssl);
    } else {
        io = std::make_unique<PlainTransport>(*srv, fd);
    }
    Connection conn(*srv, std::move(io), peer_name(fd));
    co_await conn.run();
}

// Refuses a connection over the per-shard limit with a 503 and closes it.
Task<void> refuse_connection(int fd, int timeout_ms) {
    static const std::string msg = [] {
        std::string body =
            R"({"errors":[{"code":"TOOMANYREQUESTS","message":"too many connections on this shard"}]})";
        return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
               "Docker-Distribution-API-Version: registry/2.0\r\nConnection: close\r\n"
               "Content-Length: " +
               std::to_string(body.size()) + "\r\n\r\n" + body;
    }();
    (void)co_await reactor::send(fd, msg.data(), msg.size(), timeout_ms);
    (void)co_await reactor::close(fd);
}

Task<void> close_connection(int fd) { (void)co_await reactor::close(fd); }

Task<void> accept_loop(Server* server) {
    for (std::uint64_t i = 0;; ++i) {
        int fd = co_await reactor::accept(server->listen_fd());
        if (reactor::Shard::current()->stopping()) {
            if (fd >= 0) {
                (void)::close(fd);
            }
            break;
        }
        if (fd < 0) {
            if (fd == -EINTR || fd == -EAGAIN || fd == -ECONNABORTED) {
                continue;
            }
            if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
                (void)co_await reactor::sleep_ms(50); // out of fds: back off, keep serving
                continue;
            }
            break; // listener shut down (EINVAL) or cancelled
        }
        int one = 1;
        (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        unsigned target = server->pick_shard();
        if (target == 0) {
            server->shard_server(0).adopt(fd);
        } else {
            server->shard_server(target).shard().post(
                reactor::Message{[](void* arg, std::uint64_t v) noexcept {
                                     static_cast<ShardServer*>(arg)->adopt(static_cast<int>(v));
                                 },
                                 &server->shard_server(target), static_cast<std::uint64_t>(fd)});
        }
    }
    server->acceptor_exited();
}

} // namespace

// ---- ShardServer ------------------------------------------------------

ShardServer::ShardServer(Server& server, reactor::Shard& shard) noexcept
    : server_(server), shard_(shard) {}

const ServerConfig& ShardServer::config() const noexcept { return server_.config(); }
Handler& ShardServer::handler() noexcept { return server_.handler(); }

void ShardServer::adopt(int fd) noexcept {
    // active() already counts this connection: pick_shard reserved it.
    if (draining_ || active() > config().connections_per_shard_max) {
        active_.fetch_sub(1, std::memory_order_relaxed);
        if (draining_) {
            server_.connection_ended();
        }
        if (config().tls) {
            reactor::spawn(close_connection(fd)); // a plain-text 503 means nothing to a TLS client
        } else {
            reactor::spawn(refuse_connection(fd, config().body_timeout_ms));
        }
        return;
    }
    reactor::spawn(serve_connection(this, fd));
}

void ShardServer::link(Connection* c) noexcept {
    c->next_ = head_;
    c->prev_ = nullptr;
    if (head_ != nullptr) {
        head_->prev_ = c;
    }
    head_ = c;
}

void ShardServer::unlink(Connection* c) noexcept {
    if (c->prev_ != nullptr) {
        c->prev_->next_ = c->next_;
    } else {
        RP_ASSERT(head_ == c);
        head_ = c->next_;
    }
    if (c->next_ != nullptr) {
        c->next_->prev_ = c->prev_;
    }
    c->prev_ = c->next_ = nullptr;
    active_.fetch_sub(1, std::memory_order_relaxed);
    if (draining_) {
        server_.connection_ended();
    }
}

void ShardServer::drain_all() noexcept {
    draining_ = true;
    for (Connection* c = head_; c != nullptr;) {
        Connection* next = c->next_; // drain() never unlinks synchronously
        c->drain();
        c = next;
    }
}

void ShardServer::force_all() noexcept {
    draining_ = true;
    for (Connection* c = head_; c != nullptr; c = c->next_) {
        c->force_close();
    }
}

util::Result<Pipe> ShardServer::take_pipe() noexcept {
    if (!pipes_free_.empty()) {
        Pipe p = std::move(pipes_free_.back());
        pipes_free_.pop_back();
        return p;
    }
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
        return util::Error::sys(errno, "pipe2");
    }
    Pipe p;
    p.r.reset(fds[0]);
    p.w.reset(fds[1]);
    int sz = ::fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);
    if (sz < 0) {
        sz = ::fcntl(fds[1], F_GETPIPE_SZ);
    }
    p.size = sz > 0 ? static_cast<std::size_t>(sz) : 65536;
    return p;
}

void ShardServer::give_pipe(Pipe p) noexcept {
    if (pipes_free_.size() < 16) {
        pipes_free_.push_back(std::move(p));
    }
}

std::unique_ptr<char[]> ShardServer::take_head_buffer() {
    if (!head_free_.empty()) {
        auto b = std::move(head_free_.back());
        head_free_.pop_back();
        return b;
    }
    return std::make_unique<char[]>(config().head_buffer_bytes);
}

void ShardServer::give_head_buffer(std::unique_ptr<char[]> b) noexcept {
    if (head_free_.size() < config().head_buffers_cached_max) {
        head_free_.push_back(std::move(b));
    }
}

std::unique_ptr<char[]> ShardServer::take_big_buffer() {
    if (big_lent_ >= config().big_buffers_max) {
        return nullptr; // bounded: slow uploaders cannot pin more than this
    }
    ++big_lent_;
    if (!big_free_.empty()) {
        auto b = std::move(big_free_.back());
        big_free_.pop_back();
        return b;
    }
    return std::make_unique<char[]>(config().body_buffer_bytes);
}

void ShardServer::give_big_buffer(std::unique_ptr<char[]> b) noexcept {
    RP_ASSERT(big_lent_ > 0);
    --big_lent_;
    if (big_free_.size() < config().big_buffers_cached_max) {
        big_free_.push_back(std::move(b));
    }
}

const std::string& ShardServer::date() noexcept {
    std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
    if (now != date_sec_) {
        date_sec_ = now;
        date_ = util::http_date(now);
    }
    return date_;
}

// ---- Server -----------------------------------------------------------

Server::Server(ServerConfig cfg, Handler& handler, reactor::Runtime& runtime)
    : cfg_(std::move(cfg)), handler_(handler), runtime_(runtime) {
    for (unsigned i = 0; i < runtime_.shard_count(); ++i) {
        servers_.push_back(std::make_unique<ShardServer>(*this, runtime_.shard(i)));
    }
}

Server::~Server() = default;

util::Result<std::string> Server::listen() {
    auto addr = reactor::parse_listen_addr(cfg_.listen);
    if (!addr) {
        return std::move(addr).error();
    }
    std::string bound;
    auto fd = reactor::listen_tcp(*addr, 4096, &bound);
    if (!fd) {
        return std::move(fd).error();
    }
    listen_fd_ = std::move(*fd);
    return bound;
}

unsigned Server::pick_shard() noexcept {
    unsigned n = shard_count();
    unsigned best = rr_ % n;
    unsigned best_active = servers_[best]->active();
    for (unsigned k = 1; k < n; ++k) {
        unsigned i = (rr_ + k) % n;
        unsigned a = servers_[i]->active();
        if (a < best_active) {
            best = i;
            best_active = a;
        }
    }
    rr_ = best + 1;
    // Count the connection now, not when the shard gets to adopt it: a burst
    // of accepts would otherwise all see the other shards as empty.
    servers_[best]->reserve();
    return best;
}

void Server::start() noexcept {
    started_ = true;
    runtime_.shard(0).post(reactor::Message{[](void* arg, std::uint64_t) noexcept {
                                                reactor::spawn(
                                                    accept_loop(static_cast<Server*>(arg)));
                                            },
                                            this, 0});
}

void Server::acceptor_exited() noexcept {
    {
        std::lock_guard lk(quiet_mu_);
        acceptor_done_ = true;
    }
    quiet_cv_.notify_all();
}

void Server::connection_ended() noexcept {
    if (total_active() == 0) {
        std::lock_guard lk(quiet_mu_); // orders the notify after stop()'s check
        quiet_cv_.notify_all();
    }
}

std::uint64_t Server::total_active() const noexcept {
    std::uint64_t n = 0;
    for (const auto& s : servers_) {
        n += s->active();
    }
    return n;
}

bool Server::wait_quiet(std::chrono::steady_clock::time_point deadline) noexcept {
    std::unique_lock lk(quiet_mu_);
    return quiet_cv_.wait_until(lk, deadline,
                                [&] { return acceptor_done_ && total_active() == 0; });
}

void Server::post_all(void (*fn)(void*, std::uint64_t) noexcept) noexcept {
    for (auto& s : servers_) {
        s->shard().post(reactor::Message{fn, s.get(), 0});
    }
}

void Server::stop() noexcept {
    Server* self = this;
    stop_together(std::span<Server* const>(&self, 1));
}

bool Server::begin_stop() noexcept {
    if (!started_ || stopping_.exchange(true)) {
        return false;
    }
    // 1. Stop accepting: the pending accept is cancelled in the ring (and
    //    the listener shut down, for kernels without fd cancellation).
    runtime_.shard(0).post(reactor::Message{[](void* arg, std::uint64_t) noexcept {
                                                int fd = static_cast<Server*>(arg)->listen_fd();
                                                (void)::shutdown(fd, SHUT_RDWR);
                                                reactor::Shard::current()->cancel_fd(fd);
                                            },
                                            this, 0});
    // 2. Drain: idle connections close now, busy ones after their response.
    post_all(
        [](void* arg, std::uint64_t) noexcept { static_cast<ShardServer*>(arg)->drain_all(); });
    return true;
}

void Server::force() noexcept {
    post_all(
        [](void* arg, std::uint64_t) noexcept { static_cast<ShardServer*>(arg)->force_all(); });
}

void Server::stop_together(std::span<Server* const> servers) noexcept {
    using namespace std::chrono;
    std::vector<Server*> stopping;
    int drain_ms = 0;
    for (Server* s : servers) {
        if (s != nullptr && s->begin_stop()) {
            stopping.push_back(s);
            drain_ms = std::max(drain_ms, s->cfg_.drain_timeout_ms);
        }
    }
    if (stopping.empty()) {
        return;
    }
    const auto deadline = steady_clock::now() + milliseconds(drain_ms);
    bool quiet = true;
    for (Server* s : stopping) {
        quiet = s->wait_quiet(deadline) && quiet;
    }
    if (!quiet) {
        // 3. Cut whatever is left: each socket is shut down and its operations
        //    cancelled, so its flow unwinds through failed operations. A
        //    flow busy on the disk ends when that operation does; the bound
        //    here only keeps a wedged device from holding the stop forever
        //    (the shards then cancel everything in flight as they stop).
        //    Each handler hears of it once: what it wakes may serve any of
        //    its servers.
        std::vector<Handler*> told;
        for (Server* s : stopping) {
            if (std::find(told.begin(), told.end(), &s->handler_) == told.end()) {
                told.push_back(&s->handler_);
                s->handler_.cutting();
            }
        }
        for (Server* s : stopping) {
            s->force();
        }
        const auto cut_deadline = steady_clock::now() + seconds(10);
        for (Server* s : stopping) {
            (void)s->wait_quiet(cut_deadline);
        }
    }
    for (Server* s : stopping) {
        s->listen_fd_.reset();
    }
}

} // namespace rp::http
