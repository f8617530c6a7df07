// SPDX-License-Identifier: Apache-2.0
#pragma once

// The load generator's HTTP/1.1 client: one thread, one io_uring, many
// keep-alive connections. Each connection runs one Flow (a workload's state
// machine) at a time; the engine formats requests, sends them with sendmsg
// (head and body in one call, the body straight from the workload's
// pre-generated buffer), receives into a per-connection buffer, and feeds
// body bytes to SHA-256, a collection string, or nowhere. Nothing in the
// per-request path allocates once the connection's strings have grown.

#include <liburing.h>
#include <openssl/evp.h>
#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "histogram.hh"
#include "http_client.hh"
#include "http_parse.hh"
#include "util/result.hh"

namespace rp::bench {

// Collected bodies are followed by at least this many readable bytes, so
// simdjson can parse them in place (SIMDJSON_PADDING is 64 in 3.0).
inline constexpr std::size_t body_padding_bytes = 64;
inline constexpr std::size_t collect_bytes_max = 256u << 20;

enum class Sink : std::uint8_t { discard, hash, collect };

struct Request {
    const char* method = "GET";
    std::string target;  // path and query
    std::string headers; // extra header lines, each ending in "\r\n"
    // Borrowed from the workload's pre-generated data, which outlives the run.
    std::string_view body;
    Sink sink = Sink::discard;

    void clear() {
        method = "GET";
        target.clear();
        headers.clear();
        body = {};
        sink = Sink::discard;
    }
};

struct Response {
    const ResponseHead* head = nullptr; // valid until the connection's next request
    std::uint64_t body_bytes = 0;
    std::string_view body;                 // Sink::collect, or the start of an error body
    const unsigned char* sha256 = nullptr; // Sink::hash: 32 bytes
};

enum class Step : std::uint8_t { next, done, failed };

// One operation's requests, as a state machine. A connection owns one Flow
// for the whole run and calls begin() for each operation it takes.
class Flow {
  public:
    virtual ~Flow() = default;
    virtual void begin(std::uint64_t op, Request& req) = 0;
    // Reads the response to the last request. Step::next: `req` holds the
    // next request. Step::failed: `why` says what went wrong.
    virtual Step on_response(const Response& resp, Request& req, std::string& why) = 0;
};

// Hands out operation numbers: `count` of them, or as many as start before
// `duration_s` has passed (when it is > 0). Shared by every engine thread.
class Plan {
  public:
    Plan(std::uint64_t count, double duration_s) : count_(count), duration_s_(duration_s) {}
    void start(std::int64_t now_ns) noexcept;
    bool take(std::uint64_t& op, std::int64_t now_ns) noexcept;
    void stop() noexcept { stopped_.store(true, std::memory_order_relaxed); }
    bool stopped() const noexcept { return stopped_.load(std::memory_order_relaxed); }
    std::uint64_t count() const noexcept { return count_; }
    double duration_s() const noexcept { return duration_s_; }

  private:
    std::uint64_t count_;
    double duration_s_;
    std::int64_t deadline_ns_ = 0;
    std::atomic<std::uint64_t> next_{0};
    std::atomic<bool> stopped_{false};
};

// What the progress display reads while engines run (relaxed atomics).
struct LiveCounters {
    std::atomic<std::uint64_t> ops{0};
    std::atomic<std::uint64_t> errors{0};
    std::atomic<std::uint64_t> bytes{0};
};

struct Stats {
    std::uint64_t ops = 0;
    std::uint64_t errors = 0;
    std::uint64_t requests = 0;
    std::uint64_t bytes = 0; // request and response body bytes
    std::uint64_t reconnects = 0;
    std::uint64_t verify_ns = 0; // time spent hashing response bodies
    std::uint64_t verify_bytes = 0;
    Histogram latency_ns;
    // CLOCK_MONOTONIC start of the slowest op, to find it in a trace.
    std::int64_t slowest_start_ns = 0;
    std::vector<std::string> error_samples; // the first few, for the banner

    void record_latency(std::int64_t start_ns, std::int64_t end_ns) noexcept;

    void merge(const Stats& o);
    void add_error(std::string why);
};

struct EngineConfig {
    std::size_t recv_buffer_bytes = 64 * 1024;
    // Count an op and a latency sample per request (catalog pages) rather
    // than per flow.
    bool per_request_ops = false;
    double stall_timeout_s = 60;
};

std::int64_t now_ns() noexcept;
std::int64_t thread_cpu_ns() noexcept;

class Engine {
  public:
    Engine(const Endpoint& ep, EngineConfig cfg, std::size_t connections);
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    // Creates the ring and connects every connection. Call on the thread
    // that will call run() (the ring is single-issuer).
    util::Result<void> open();
    // Runs flows[i] on connection i until `plan` runs out and every
    // operation in flight has finished. `tick`, if set, is called from the
    // loop about every 100 ms.
    void run(std::span<Flow* const> flows, Plan& plan, Stats& stats, LiveCounters* live,
             void (*tick)(void*), void* tick_arg);

  private:
    struct Conn;

    void start_op(Conn& c);
    void start_request(Conn& c);
    void submit_request(Conn& c);
    void submit_recv(Conn& c);
    io_uring_sqe* get_sqe();
    void on_cqe(void* data, int res);
    void on_send(Conn& c, int res);
    void on_recv(Conn& c, int res);
    // Feeds received plaintext to the response reader; false once the
    // response is complete (or failed) and the rest must not be fed.
    bool feed(Conn& c, std::string_view in);
    // TLS: encrypts the next piece of the request and sends it; after the
    // last piece, receives. One piece at a time keeps a large push streaming
    // as a real client does, instead of encrypting it all first.
    void tls_send_next(Conn& c);
    void on_tls_send(Conn& c, int res);
    void deliver(Conn& c, std::string_view piece);
    void finish_response(Conn& c);
    void after_step(Conn& c, Step step, bool close, std::int64_t now);
    void fail_io(Conn& c, int err, const char* what);
    void op_failed(Conn& c, const std::string& why);
    util::Result<void> reconnect(Conn& c);
    void check_stall(std::int64_t now);
    void arm_tick();
    void disarm_tick();
    void reap();

    const Endpoint& ep_; // borrowed: the run's endpoint outlives the engine
    EngineConfig cfg_;
    io_uring ring_{};
    bool ring_open_ = false;
    std::vector<std::unique_ptr<Conn>> conns_;
    EVP_MD* sha256_ = nullptr;
    Plan* plan_ = nullptr;
    Stats* stats_ = nullptr;
    LiveCounters* live_ = nullptr;
    std::size_t active_ = 0;
    std::int64_t last_progress_ns_ = 0;
    bool stalled_ = false;
    __kernel_timespec tick_ts_{}; // the armed tick timeout reads it
    bool tick_armed_ = false;
    bool tick_fired_ = false;
    std::string why_;
};

} // namespace rp::bench
