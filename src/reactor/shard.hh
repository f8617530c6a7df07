// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <liburing.h>

#include <array>
#include <atomic>
#include <coroutine>
#include <cstdint>
#include <mutex>
#include <vector>

#include "util/result.hh"
#include "util/unique_fd.hh"

namespace rp::reactor {

class ThreadPool;

// Something waiting for one CQE. The object must not move or die until its
// CQE is reaped (STYLE §4.1); `complete` is called once, outside the ring walk.
class Operation {
  public:
    virtual void complete(int res, std::uint32_t flags) noexcept = 0;

  protected:
    ~Operation() = default;
};

// A message for a shard, runnable on that shard's thread. Plain function
// pointer plus two words so posting never allocates.
struct Message {
    void (*fn)(void* arg, std::uint64_t value) noexcept;
    void* arg;
    std::uint64_t value;
};

// CLOCK_MONOTONIC in microseconds: the shards' loop turns, request timing.
std::uint64_t monotonic_us() noexcept;

// One thread, one io_uring. All flows of a shard run on its thread; other
// threads talk to it only through `post`.
class Shard {
  public:
    Shard(unsigned id, unsigned ring_entries) noexcept;
    ~Shard();
    Shard(const Shard&) = delete;
    Shard& operator=(const Shard&) = delete;

    // Creates the ring; must run on the thread that will call run().
    util::Result<void> init();
    // Runs the loop until stop was requested and nothing is in flight.
    void run() noexcept;
    // Thread-safe: after this, run() returns once in-flight work drains.
    // The shard then cancels everything still in flight in the ring
    // (IORING_OP_ASYNC_CANCEL, any request), so flows waiting on sockets or
    // timers unwind at once instead of at their timeouts.
    void request_stop() noexcept;
    bool stopping() const noexcept { return stop_.load(std::memory_order_acquire); }

    // Thread-safe. The message runs on this shard's thread, in order.
    void post(Message m) noexcept;
    void post_resume(std::coroutine_handle<> h) noexcept;

    // Returns a free SQE, submitting first when the SQ is full (a full SQ is
    // not an error). `sqe_pair` guarantees two consecutive SQEs for a link.
    io_uring_sqe* sqe() noexcept;
    io_uring_sqe* sqe_pair() noexcept;
    // Cancels one operation in flight on this shard (its CQE then carries
    // -ECANCELED, or its result if it completed first); every operation on
    // `fd`. Shard thread only; the cancel's own CQE is ignored.
    void cancel(const Operation* op) noexcept;
    void cancel_fd(int fd) noexcept;

    // The helper threads this shard hands blocking calls to, and its own
    // companion thread (hashing); set by the Runtime before run().
    void set_pools(ThreadPool* blocking, ThreadPool* companion) noexcept {
        blocking_ = blocking;
        companion_ = companion;
    }
    ThreadPool& blocking() noexcept;
    ThreadPool& companion() noexcept;

    void op_started() noexcept { ++inflight_; }
    void op_finished() noexcept { --inflight_; }
    std::uint64_t inflight() const noexcept { return inflight_; }

    unsigned id() const noexcept { return id_; }
    io_uring* ring() noexcept { return &ring_; }

    // The loop's turns: from its wait on the ring returning to its next
    // wait, the time every connection of the shard waits for whatever the
    // shard is doing (or is blocked on). A long one is a stall of the whole
    // shard; counting them shows whether background work ever causes one.
    // Cumulative: turns[i] counts turns of turn_bounds_us[i] or longer.
    static constexpr std::array<std::uint64_t, 6> turn_bounds_us{1000,  2000,  5000,
                                                                 10000, 20000, 50000};
    struct Turns {
        std::array<std::uint64_t, turn_bounds_us.size()> from{};
        std::uint64_t longest_us = 0;
        void add(const Turns& o) noexcept;
    };
    Turns turns() const noexcept; // any thread
    // Microseconds the loop spent running (not waiting in the kernel) since
    // the start: its utilisation is the rate of this. Any thread.
    std::uint64_t busy_us() const noexcept { return busy_us_.load(std::memory_order_relaxed); }

    // The shard whose thread is running, or nullptr on other threads.
    static Shard* current() noexcept;

  private:
    class WakeOp;
    void arm_wake() noexcept;
    void drain_inbox() noexcept;
    void reap() noexcept;
    void count_turn(std::uint64_t us) noexcept;

    unsigned id_;
    unsigned ring_entries_;
    io_uring ring_{};
    bool ring_ready_ = false;
    std::uint64_t inflight_ = 0;
    std::atomic<bool> stop_{false};
    util::UniqueFd wake_fd_;
    std::uint64_t wake_buf_ = 0;
    WakeOp* wake_op_ = nullptr;
    bool wake_armed_ = false;
    bool cancelled_all_ = false;
    ThreadPool* blocking_ = nullptr;
    ThreadPool* companion_ = nullptr;

    // Written by the shard's thread only; read by any (relaxed).
    std::array<std::atomic<std::uint64_t>, turn_bounds_us.size()> turns_from_{};
    std::atomic<std::uint64_t> longest_turn_us_{0};
    std::atomic<std::uint64_t> busy_us_{0}; // written by the shard's thread only

    std::mutex inbox_mu_;
    std::vector<Message> inbox_;
    std::vector<Message> inbox_local_;
};

} // namespace rp::reactor
