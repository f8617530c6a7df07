// SPDX-License-Identifier: Apache-2.0
#include "engine.hh"

#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <charconv>
#include <cstring>
#include <ctime>

#include "tls.hh"
#include "util/assert.hh"
#include "util/unique_fd.hh"

namespace rp::bench {

using util::Error;
using util::Result;

namespace {

constexpr std::size_t error_samples_max = 8;
constexpr std::size_t error_body_bytes_max = 512;
constexpr std::int64_t tick_ns = 100'000'000;
constexpr std::size_t tls_send_piece_bytes = 256 * 1024;

} // namespace

std::int64_t now_ns() noexcept {
    timespec ts{};
    (void)::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::int64_t thread_cpu_ns() noexcept {
    timespec ts{};
    (void)::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void Plan::start(std::int64_t now) noexcept {
    deadline_ns_ = now + static_cast<std::int64_t>(duration_s_ * 1e9);
}

bool Plan::take(std::uint64_t& op, std::int64_t now) noexcept {
    if (stopped()) {
        return false;
    }
    if (duration_s_ > 0) {
        if (now >= deadline_ns_) {
            stop();
            return false;
        }
        op = next_.fetch_add(1, std::memory_order_relaxed);
        return true;
    }
    op = next_.fetch_add(1, std::memory_order_relaxed);
    return op < count_;
}

void Stats::record_latency(std::int64_t start_ns, std::int64_t end_ns) noexcept {
    auto v = static_cast<std::uint64_t>(end_ns - start_ns);
    if (v > latency_ns.max()) {
        slowest_start_ns = start_ns;
    }
    latency_ns.record(v);
}

void Stats::merge(const Stats& o) {
    ops += o.ops;
    errors += o.errors;
    requests += o.requests;
    bytes += o.bytes;
    reconnects += o.reconnects;
    verify_ns += o.verify_ns;
    verify_bytes += o.verify_bytes;
    if (o.latency_ns.max() > latency_ns.max()) {
        slowest_start_ns = o.slowest_start_ns;
    }
    latency_ns.merge(o.latency_ns);
    for (const std::string& s : o.error_samples) {
        if (error_samples.size() < error_samples_max) {
            error_samples.push_back(s);
        }
    }
}

void Stats::add_error(std::string why) {
    ++errors;
    if (error_samples.size() < error_samples_max) {
        error_samples.push_back(std::move(why));
    }
}

struct Engine::Conn {
    // What user_data points at: which connection, and which of its two
    // operations completed. Conns live on the heap and never move.
    struct Op {
        Conn* conn;
        bool is_send;
    };
    Op send_op{this, true};
    Op recv_op{this, false};
    util::UniqueFd fd;
    SslPtr ssl;                   // https: the session, on memory BIOs
    std::unique_ptr<char[]> pbuf; // https: decrypted bytes (rcap of them)
    CipherIo tls_io;              // https: ciphertext in and out
    std::size_t tls_next = 0;     // https: request bytes encrypted so far
    Flow* flow = nullptr;
    Request req;
    std::string head_out;
    iovec iov[2]{};
    msghdr msg{};
    std::unique_ptr<char[]> rbuf;
    std::size_t rcap = 0;
    ResponseReader reader;
    std::string body;
    EVP_MD_CTX* md = nullptr;
    unsigned char digest[32]{};
    std::uint64_t body_bytes = 0;
    std::int64_t op_start_ns = 0;
    std::int64_t req_start_ns = 0;
    std::uint32_t served = 0; // responses read on this socket
    enum class Phase : std::uint8_t { idle, busy } phase = Phase::idle;
    std::size_t send_bytes = 0; // head and body of the request in flight
    int send_error = 0;         // errno of a failed send, until its recv is reaped
    bool send_pending = false;  // its CQE is still to come
    bool recv_pending = false;
    bool got_bytes = false; // of the response in progress
    bool retried = false;
    bool dead = false;

    ~Conn() { EVP_MD_CTX_free(md); }
};

Engine::Engine(const Endpoint& ep, EngineConfig cfg, std::size_t connections) : ep_(ep), cfg_(cfg) {
    RP_ASSERT(connections > 0);
    sha256_ = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    RP_ASSERT(sha256_ != nullptr);
    for (std::size_t i = 0; i < connections; ++i) {
        auto c = std::make_unique<Conn>();
        c->rcap = cfg_.recv_buffer_bytes;
        c->rbuf = std::make_unique<char[]>(c->rcap);
        if (ep_.tls) {
            c->pbuf = std::make_unique<char[]>(c->rcap);
        }
        c->md = EVP_MD_CTX_new();
        RP_ASSERT(c->md != nullptr);
        c->head_out.reserve(1024);
        c->req.target.reserve(512);
        conns_.push_back(std::move(c));
    }
}

Engine::~Engine() {
    conns_.clear(); // nothing is in flight once run() returned
    if (ring_open_) {
        io_uring_queue_exit(&ring_);
    }
    EVP_MD_free(sha256_);
}

Result<void> Engine::open() {
    unsigned entries = 64;
    while (entries < conns_.size() * 2 && entries < 32768) {
        entries <<= 1;
    }
    // Newest flags first; older kernels refuse them with -EINVAL.
    const unsigned flag_sets[] = {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
                                  IORING_SETUP_COOP_TASKRUN, 0};
    int rc = -EINVAL;
    for (unsigned flags : flag_sets) {
        io_uring_params p{};
        p.flags = flags;
        rc = io_uring_queue_init_params(entries, &ring_, &p);
        if (rc != -EINVAL) {
            break;
        }
    }
    if (rc < 0) {
        return Error::sys(-rc, std::string("io_uring_queue_init: ") + std::strerror(-rc));
    }
    ring_open_ = true;
    for (auto& c : conns_) {
        if (auto r = reconnect(*c); !r) {
            return r;
        }
    }
    return util::Ok{};
}

Result<void> Engine::reconnect(Conn& c) {
    c.ssl.reset();
    c.fd.reset();
    c.served = 0;
    auto conn = open_connection(ep_, static_cast<int>(cfg_.stall_timeout_s * 1000));
    if (!conn) {
        return std::move(conn).error();
    }
    c.tls_io = CipherIo{};
    if (conn->ssl && !use_cipher_io(conn->ssl.get(), &c.tls_io)) {
        return Error::of(util::Errc::no_space, "tls: out of memory");
    }
    c.fd = std::move(conn->fd);
    c.ssl = std::move(conn->ssl);
    return util::Ok{};
}

void Engine::run(std::span<Flow* const> flows, Plan& plan, Stats& stats, LiveCounters* live,
                 void (*tick)(void*), void* tick_arg) {
    RP_ASSERT(flows.size() == conns_.size());
    plan_ = &plan;
    stats_ = &stats;
    live_ = live;
    stalled_ = false;
    last_progress_ns_ = now_ns();
    active_ = conns_.size();
    for (std::size_t i = 0; i < conns_.size(); ++i) {
        Conn& c = *conns_[i];
        c.flow = flows[i];
        if (!c.fd.valid() && !c.dead) {
            if (auto r = reconnect(c); !r) {
                stats_->add_error(r.error().detail);
                c.dead = true;
            }
        }
        start_op(c);
    }
    // A timeout in the ring wakes the loop every tick (cheaper than a
    // timeout on every wait); it is always re-armed, so it is the one
    // operation left in flight when the loop ends, and is cancelled then.
    arm_tick();
    while (active_ > 0) {
        int rc = io_uring_submit_and_wait(&ring_, 1);
        RP_ASSERT(rc >= 0 || rc == -ETIME || rc == -EINTR || rc == -EAGAIN || rc == -EBUSY);
        reap();
        if (tick_fired_) {
            tick_fired_ = false;
            if (tick != nullptr) {
                tick(tick_arg);
            }
            check_stall(now_ns());
            arm_tick();
        }
    }
    disarm_tick();
}

void Engine::arm_tick() {
    tick_ts_ = __kernel_timespec{0, tick_ns};
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_timeout(sqe, &tick_ts_, 0, 0);
    io_uring_sqe_set_data(sqe, &tick_ts_);
    tick_armed_ = true;
}

void Engine::disarm_tick() {
    tick_fired_ = false;
    if (!tick_armed_) {
        return; // it fired in the last batch and was not re-armed
    }
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_timeout_remove(sqe, reinterpret_cast<std::uint64_t>(&tick_ts_), 0);
    io_uring_sqe_set_data(sqe, nullptr);
    // Wait for the timeout's own CQE: &tick_ts_ must outlive it. The
    // removal's CQE carries no connection and is dropped by reap().
    while (tick_armed_) {
        (void)io_uring_submit_and_wait(&ring_, 1);
        reap();
    }
}

void Engine::reap() {
    struct Done {
        void* data;
        int res;
    };
    constexpr unsigned batch = 256;
    io_uring_cqe* cqes[batch];
    Done done[batch];
    for (;;) {
        // Copy the batch out and advance the CQ before acting on any of it.
        unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, batch);
        if (n == 0) {
            return;
        }
        for (unsigned i = 0; i < n; ++i) {
            done[i] = Done{io_uring_cqe_get_data(cqes[i]), cqes[i]->res};
        }
        io_uring_cq_advance(&ring_, n);
        for (unsigned i = 0; i < n; ++i) {
            if (done[i].data == &tick_ts_) {
                tick_armed_ = false;
                tick_fired_ = true;
            } else if (done[i].data != nullptr) {
                last_progress_ns_ = now_ns();
                on_cqe(done[i].data, done[i].res);
            }
        }
    }
}

io_uring_sqe* Engine::get_sqe() {
    for (;;) {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
        if (sqe != nullptr) {
            return sqe;
        }
        // A full SQ is not an error: submit what is queued and try again.
        (void)io_uring_submit(&ring_);
    }
}

void Engine::start_op(Conn& c) {
    std::uint64_t op = 0;
    std::int64_t now = now_ns();
    if (c.dead || !c.fd.valid() || !plan_->take(op, now)) {
        c.phase = Conn::Phase::idle;
        RP_ASSERT(active_ > 0);
        --active_;
        return;
    }
    c.op_start_ns = now;
    c.req_start_ns = now;
    c.req.clear();
    c.flow->begin(op, c.req);
    start_request(c);
}

void Engine::start_request(Conn& c) {
    const Request& r = c.req;
    bool head_only = std::strcmp(r.method, "HEAD") == 0;
    bool may_have_body =
        !head_only && std::strcmp(r.method, "GET") != 0 && std::strcmp(r.method, "DELETE") != 0;
    std::string& h = c.head_out;
    h.clear();
    h.append(r.method).append(" ").append(r.target).append(" HTTP/1.1\r\nHost: ");
    h.append(ep_.authority).append("\r\n");
    if (may_have_body || !r.body.empty()) {
        char num[24];
        auto res = std::to_chars(num, num + sizeof num, r.body.size());
        h.append("Content-Length: ").append(num, res.ptr).append("\r\n");
    }
    h.append(ep_.extra_headers).append(r.headers).append("\r\n");
    c.iov[0] = iovec{h.data(), h.size()};
    c.iov[1] = iovec{const_cast<char*>(r.body.data()), r.body.size()};
    c.msg = msghdr{};
    c.msg.msg_iov = c.iov;
    c.msg.msg_iovlen = r.body.empty() ? 1 : 2;
    c.send_bytes = h.size() + r.body.size();
    c.got_bytes = false;
    c.body_bytes = 0;
    c.body.clear();
    c.reader.reset(head_only);
    if (r.sink == Sink::hash) {
        RP_ASSERT(EVP_DigestInit_ex(c.md, sha256_, nullptr) == 1);
    }
    c.phase = Conn::Phase::busy;
    submit_request(c);
}

// The request and the receive of its response go in as one linked pair:
// one submission, and the receive skips its first (certainly empty) try.
// MSG_WAITALL makes the kernel send the whole request or fail, and a failed
// send cancels the receive.
void Engine::submit_request(Conn& c) {
    if (c.ssl) {
        c.tls_next = 0;
        c.send_error = 0;
        tls_send_next(c);
        return;
    }
    io_uring_sqe* send = get_sqe();
    if (c.msg.msg_iovlen == 1) {
        io_uring_prep_send(send, c.fd.get(), c.iov[0].iov_base, c.iov[0].iov_len,
                           MSG_NOSIGNAL | MSG_WAITALL);
    } else {
        io_uring_prep_sendmsg(send, c.fd.get(), &c.msg, MSG_NOSIGNAL | MSG_WAITALL);
    }
    send->flags |= IOSQE_IO_LINK;
    io_uring_sqe_set_data(send, &c.send_op);
    io_uring_sqe* recv = get_sqe();
    io_uring_prep_recv(recv, c.fd.get(), c.rbuf.get(), c.rcap, 0);
    recv->ioprio |= IORING_RECVSEND_POLL_FIRST;
    io_uring_sqe_set_data(recv, &c.recv_op);
    c.send_pending = true;
    c.recv_pending = true;
    c.send_error = 0;
}

void Engine::submit_recv(Conn& c) {
    io_uring_sqe* sqe = get_sqe();
    // No MSG_WAITALL: hashing what has arrived while more arrives measured
    // better than waiting for a full buffer.
    io_uring_prep_recv(sqe, c.fd.get(), c.rbuf.get(), c.rcap, 0);
    io_uring_sqe_set_data(sqe, &c.recv_op);
    c.recv_pending = true;
}

void Engine::tls_send_next(Conn& c) {
    const std::string& head = c.head_out;
    std::string_view body = c.req.body;
    std::size_t budget = tls_send_piece_bytes;
    while (budget > 0 && c.tls_next < c.send_bytes) {
        std::string_view piece = c.tls_next < head.size()
                                     ? std::string_view(head).substr(c.tls_next)
                                     : body.substr(c.tls_next - head.size());
        std::size_t take = std::min(piece.size(), budget);
        std::size_t n = 0;
        // The BIO takes everything: this never waits.
        RP_ASSERT(SSL_write_ex(c.ssl.get(), piece.data(), take, &n) == 1 && n == take);
        c.tls_next += take;
        budget -= take;
    }
    const std::string& out = c.tls_io.out;
    RP_ASSERT(!out.empty());
    io_uring_sqe* send = get_sqe();
    io_uring_prep_send(send, c.fd.get(), out.data(), out.size(), MSG_NOSIGNAL | MSG_WAITALL);
    io_uring_sqe_set_data(send, &c.send_op);
    c.send_pending = true;
}

void Engine::on_tls_send(Conn& c, int res) {
    c.send_pending = false;
    std::size_t sent = c.tls_io.out.size();
    c.tls_io.out.clear();
    if (res < 0 || static_cast<std::size_t>(res) < sent) {
        fail_io(c, res < 0 ? -res : EPIPE, "send");
        return;
    }
    if (c.tls_next < c.send_bytes) {
        tls_send_next(c);
        return;
    }
    stats_->bytes += c.req.body.size();
    if (live_ != nullptr) {
        live_->bytes.fetch_add(c.req.body.size(), std::memory_order_relaxed);
    }
    submit_recv(c);
}

void Engine::on_cqe(void* data, int res) {
    const auto* op = static_cast<const Conn::Op*>(data);
    Conn& c = *op->conn;
    if (op->is_send && c.ssl) {
        on_tls_send(c, res);
        return;
    }
    if (op->is_send) {
        on_send(c, res);
        return;
    }
    RP_ASSERT(c.recv_pending && !c.send_pending); // a link completes in order
    c.recv_pending = false;
    if (c.send_error != 0) {
        fail_io(c, c.send_error, "send"); // the receive was cancelled
        return;
    }
    on_recv(c, res);
}

void Engine::on_send(Conn& c, int res) {
    RP_ASSERT(c.send_pending);
    c.send_pending = false;
    if (res < 0 || static_cast<std::size_t>(res) < c.send_bytes) {
        c.send_error = res < 0 ? -res : EPIPE;
        return;
    }
    stats_->bytes += c.req.body.size();
    if (live_ != nullptr) {
        live_->bytes.fetch_add(c.req.body.size(), std::memory_order_relaxed);
    }
}

void Engine::on_recv(Conn& c, int res) {
    if (res < 0) {
        fail_io(c, -res, "recv");
        return;
    }
    if (res == 0) {
        c.reader.on_eof();
        if (c.reader.state() == ResponseReader::State::done) {
            finish_response(c);
        } else {
            fail_io(c, ECONNRESET, "connection closed by the server");
        }
        return;
    }
    c.got_bytes = true;
    if (!c.ssl) {
        (void)feed(c, std::string_view(c.rbuf.get(), static_cast<std::size_t>(res)));
    } else {
        c.tls_io.in = c.rbuf.get();
        c.tls_io.in_len = static_cast<std::size_t>(res);
        // Bounded: each turn decrypts a record; the last finds none left.
        for (int i = 0; i < 1000000; ++i) {
            std::size_t n = 0;
            if (SSL_read_ex(c.ssl.get(), c.pbuf.get(), c.rcap, &n) != 1) {
                int e = SSL_get_error(c.ssl.get(), 0);
                if (e == SSL_ERROR_WANT_READ) {
                    break; // the rest of a record is still on its way
                }
                if (e == SSL_ERROR_ZERO_RETURN) {
                    c.reader.on_eof();
                    break;
                }
                fail_io(c, EPROTO, ("tls: " + tls_errors()).c_str());
                return;
            }
            // Every received byte is taken (the next receive reuses the
            // buffer); a server sends nothing after a response unasked.
            if (c.reader.finished()) {
                fail_io(c, EPROTO, "tls: bytes after the response");
                return;
            }
            (void)feed(c, std::string_view(c.pbuf.get(), n));
        }
    }
    if (c.reader.state() == ResponseReader::State::failed) {
        // The stream is out of step: start afresh.
        std::string why = "malformed response";
        if (auto r = reconnect(c); !r) {
            c.dead = true;
            why += " (reconnect: " + r.error().detail + ")";
        }
        op_failed(c, why);
    } else if (c.reader.state() == ResponseReader::State::done) {
        finish_response(c);
    } else {
        submit_recv(c);
    }
}

bool Engine::feed(Conn& c, std::string_view in) {
    while (!in.empty() && !c.reader.finished()) {
        std::string_view piece = c.reader.feed(in);
        if (!piece.empty()) {
            deliver(c, piece);
        }
    }
    return !c.reader.finished();
}

void Engine::deliver(Conn& c, std::string_view piece) {
    c.body_bytes += piece.size();
    if (c.reader.head().status >= 300 && c.req.sink != Sink::collect) {
        // Keep the start of an error body for the report.
        std::size_t room = error_body_bytes_max - std::min(error_body_bytes_max, c.body.size());
        c.body.append(piece.substr(0, room));
        return;
    }
    if (c.req.sink == Sink::hash) {
        // Hashing a large piece is long enough to be preempted on a busy
        // machine, so it is timed in thread CPU time (a system call); a small
        // one by the cheap monotonic clock.
        bool big = piece.size() >= 16384;
        std::int64_t t0 = big ? thread_cpu_ns() : now_ns();
        RP_ASSERT(EVP_DigestUpdate(c.md, piece.data(), piece.size()) == 1);
        stats_->verify_ns += static_cast<std::uint64_t>((big ? thread_cpu_ns() : now_ns()) - t0);
        stats_->verify_bytes += piece.size();
    } else if (c.req.sink == Sink::collect && c.body.size() < collect_bytes_max) {
        c.body.append(piece);
    }
}

void Engine::finish_response(Conn& c) {
    const ResponseHead& h = c.reader.head();
    std::int64_t now = now_ns();
    ++stats_->requests;
    stats_->bytes += c.body_bytes;
    if (live_ != nullptr) {
        live_->bytes.fetch_add(c.body_bytes, std::memory_order_relaxed);
    }
    Response resp;
    resp.head = &h;
    resp.body_bytes = c.body_bytes;
    if (c.req.sink == Sink::hash && h.status < 300) {
        RP_ASSERT(EVP_DigestFinal_ex(c.md, c.digest, nullptr) == 1);
        resp.sha256 = c.digest;
    }
    c.body.reserve(c.body.size() + body_padding_bytes);
    resp.body = c.body;
    ++c.served;
    c.retried = false;
    why_.clear();
    Step step = c.flow->on_response(resp, c.req, why_);
    if (cfg_.per_request_ops && step != Step::failed) {
        stats_->record_latency(c.req_start_ns, now);
        ++stats_->ops;
        if (live_ != nullptr) {
            live_->ops.fetch_add(1, std::memory_order_relaxed);
        }
    }
    after_step(c, step, h.close, now);
}

void Engine::after_step(Conn& c, Step step, bool close, std::int64_t now) {
    if (close) {
        if (auto r = reconnect(c); !r) {
            c.dead = true;
            stats_->add_error("reconnect: " + r.error().detail);
            if (step == Step::next) {
                step = Step::failed;
                why_ = "the server closed the connection";
            }
        }
    }
    switch (step) {
    case Step::next:
        c.req_start_ns = now;
        start_request(c);
        return;
    case Step::done:
        if (!cfg_.per_request_ops) {
            stats_->record_latency(c.op_start_ns, now);
            ++stats_->ops;
            if (live_ != nullptr) {
                live_->ops.fetch_add(1, std::memory_order_relaxed);
            }
        }
        start_op(c);
        return;
    case Step::failed: op_failed(c, why_); return;
    }
}

void Engine::fail_io(Conn& c, int err, const char* what) {
    // A keep-alive connection the server closed while idle fails before any
    // response byte: send the request again once on a new connection.
    bool stale = !c.got_bytes && c.served > 0 && !c.retried && !stalled_ &&
                 (err == ECONNRESET || err == EPIPE);
    std::string why = std::string(what) + ": " + std::strerror(err);
    if (stalled_) {
        why = "cut after the stall";
        c.fd.reset();
    } else if (plan_->stopped()) {
        c.fd.reset();
    } else if (auto r = reconnect(c); !r) {
        c.dead = true;
        why += " (reconnect: " + r.error().detail + ")";
    } else if (stale) {
        c.retried = true;
        ++stats_->reconnects;
        start_request(c);
        return;
    }
    op_failed(c, why);
}

void Engine::op_failed(Conn& c, const std::string& why) {
    stats_->add_error(std::string(c.req.method) + " " + c.req.target + ": " + why);
    if (live_ != nullptr) {
        live_->errors.fetch_add(1, std::memory_order_relaxed);
    }
    start_op(c);
}

void Engine::check_stall(std::int64_t now) {
    if (stalled_ || cfg_.stall_timeout_s <= 0 ||
        now - last_progress_ns_ < static_cast<std::int64_t>(cfg_.stall_timeout_s * 1e9)) {
        return;
    }
    stalled_ = true;
    plan_->stop();
    char why[96];
    (void)std::snprintf(why, sizeof why, "no response for %.1f s: stopping the run",
                        cfg_.stall_timeout_s);
    stats_->add_error(why);
    for (auto& c : conns_) {
        if (c->phase != Conn::Phase::idle && c->fd.valid()) {
            (void)::shutdown(c->fd.get(), SHUT_RDWR); // completes what is in flight
        }
    }
}

} // namespace rp::bench
