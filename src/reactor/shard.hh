// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <liburing.h>

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

    // The shard whose thread is running, or nullptr on other threads.
    static Shard* current() noexcept;

  private:
    class WakeOp;
    void arm_wake() noexcept;
    void drain_inbox() noexcept;
    void reap() noexcept;

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

    std::mutex inbox_mu_;
    std::vector<Message> inbox_;
    std::vector<Message> inbox_local_;
};

} // namespace rp::reactor
