// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <chrono>
#include <condition_variable>
#include <coroutine>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "reactor/shard.hh"

namespace rp::reactor {

// A mutex for coroutines on any shard. A waiter is resumed on its own shard
// (through that shard's inbox), never on the unlocking thread. It is never
// held across an I/O wait by index readers; it serialises writers of one
// repository, whose critical sections do await I/O (the disk writes that must
// stay ordered with the index update).
class AsyncMutex {
  public:
    // A waiter is its own queue node: it lives in the suspended coroutine's
    // frame, so waiting allocates nothing and an idle mutex holds no memory
    // (one per repository: 10,000 repositories).
    struct [[nodiscard]] LockAwaiter {
        AsyncMutex& m;
        Shard* shard = nullptr;
        std::coroutine_handle<> h;
        LockAwaiter* next = nullptr;
        bool await_ready() noexcept { return m.try_lock(); }
        bool await_suspend(std::coroutine_handle<> handle) noexcept {
            h = handle;
            return m.enqueue(*this);
        }
        void await_resume() const noexcept {}
    };
    AsyncMutex() = default;
    AsyncMutex(const AsyncMutex&) = delete;
    AsyncMutex& operator=(const AsyncMutex&) = delete;
    LockAwaiter lock() noexcept { return LockAwaiter{*this}; }
    bool try_lock() noexcept;
    void unlock() noexcept;
    // Whether someone holds it at this instant (for a snapshot save, which
    // must know whether a writer may be mid-change).
    bool held() const noexcept;

  private:
    bool enqueue(LockAwaiter& w) noexcept;
    mutable std::mutex mu_;
    bool locked_ = false;
    LockAwaiter* head_ = nullptr; // FIFO of waiters
    LockAwaiter* tail_ = nullptr;
};

// RAII unlock for AsyncMutex (after `co_await m.lock()`).
class AsyncLockGuard {
  public:
    explicit AsyncLockGuard(AsyncMutex& m) noexcept : m_(&m) {}
    AsyncLockGuard(const AsyncLockGuard&) = delete;
    AsyncLockGuard& operator=(const AsyncLockGuard&) = delete;
    ~AsyncLockGuard() { m_->unlock(); }

  private:
    AsyncMutex* m_;
};

// A one-shot latch: coroutines on any shard wait until some thread sets it,
// or abandons it (the event will not come: a stop before the index loaded).
// A waiter counts as in-flight work on its shard, so a stopping shard keeps
// running until the latch is set or abandoned and the waiter has resumed.
class Latch {
  public:
    struct [[nodiscard]] WaitAwaiter {
        Latch& l;
        bool await_ready() const noexcept { return l.is_set() || l.abandoned(); }
        bool await_suspend(std::coroutine_handle<> h) noexcept { return l.enqueue(h); }
        // True when set; false when abandoned (and not set).
        bool await_resume() const noexcept { return l.is_set(); }
    };
    WaitAwaiter wait() noexcept { return WaitAwaiter{*this}; }
    bool is_set() const noexcept;
    bool abandoned() const noexcept;
    void set() noexcept;
    // Resumes every waiter with false, and answers later waits at once.
    void abandon() noexcept;

  private:
    bool enqueue(std::coroutine_handle<> h) noexcept;
    void release() noexcept;
    mutable std::mutex mu_;
    bool set_ = false;
    bool abandoned_ = false;
    std::vector<std::pair<Shard*, std::coroutine_handle<>>> waiters_;
};

// A value that only grows (bytes landed in a file being written), watched
// by coroutines on any shard: a waiter resumes on its own shard once the
// value passes what it last saw, or once the progress is closed (no more
// growth will come). Like a Latch, a waiter counts as in-flight work on its
// shard. Each publish wakes only the waiters it passes, so a watcher costs
// one wake per piece written, however many watch.
class Progress {
  public:
    struct Seen {
        std::uint64_t value = 0;
        bool closed = false;
    };
    struct [[nodiscard]] WaitAwaiter {
        Progress& p;
        std::uint64_t past;
        bool await_ready() const noexcept { return p.passed(past); }
        bool await_suspend(std::coroutine_handle<> h) noexcept { return p.enqueue(h, past); }
        Seen await_resume() const noexcept { return p.seen(); }
    };
    // Resumes at once when the value is above `past` or the progress closed.
    WaitAwaiter wait_past(std::uint64_t past) noexcept { return WaitAwaiter{*this, past}; }
    Seen seen() const noexcept;
    // Raises the value (a lower one is ignored) and wakes whom it passes.
    void publish(std::uint64_t value) noexcept;
    // Ends the growth: every waiter resumes, and later waits answer at once.
    void close() noexcept;

  private:
    struct Waiter {
        Shard* shard;
        std::coroutine_handle<> h;
        std::uint64_t past;
    };
    bool passed(std::uint64_t past) const noexcept;
    bool enqueue(std::coroutine_handle<> h, std::uint64_t past) noexcept;
    mutable std::mutex mu_;
    std::uint64_t value_ = 0;
    bool closed_ = false;
    std::vector<Waiter> waiters_;
};

// Makes the calling thread background work, and every thread it starts
// after: nice 19 (Linux nice values are per thread and inherited), and
// paced. Not SCHED_IDLE: measured, it made stalls worse (29 ms longest GET
// against 7 ms at nice 19), because a SCHED_IDLE thread preempted while it
// holds something a shard needs (the index lock, its malloc arena, the
// kernel's locks) waits behind every other thread before it lets go.
void become_background() noexcept;

// Pacing: pace(), called by background loops between small units of work,
// sleeps kPaceRest after each kPaceWork of running, so a long background
// stretch (a save, the verification) holds a CPU for at most about kPaceWork
// at a time. Nice 19 alone does not give that on a small machine: traced on
// 2 cores, a client woken onto the save's CPU waited 16 ms there while the
// other CPU idled in gaps too short for the kernel to pull it over (the
// kernel also weighs sessions, not threads, against each other). Measured
// with a save every second: 5 GETs over 5 ms in 6 runs paced, 22 in 8 not.
// No-op on a thread that is not paced; tree_scan's helper threads take the
// setting of the thread that starts them.
inline constexpr auto kPaceWork = std::chrono::microseconds(2000);
inline constexpr auto kPaceRest = std::chrono::microseconds(200);
bool paced() noexcept;
void set_paced(bool on) noexcept;
void pace() noexcept;

// Helper threads with a FIFO of jobs: for the blocking calls io_uring cannot
// do (directory walks, recursive removal), for background work, and as a
// shard's companion (hashing). A job runs there; an awaiting coroutine
// resumes on its own shard. Owned by the Runtime (runtime.hh), which sizes
// each pool from the config; a pool's threads exit once its queue is empty
// after stop().
class ThreadPool {
  public:
    // `name` is the threads' name (seen in top and /proc); a background
    // pool's threads call become_background() first.
    enum class Priority { normal, background };
    ThreadPool(std::string name, unsigned threads, Priority priority = Priority::normal);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    // Runs `fn` on a helper thread; resolves when it returned. The wait
    // counts as in-flight work on the awaiting shard.
    struct [[nodiscard]] RunAwaiter {
        ThreadPool& pool;
        std::function<void()> fn;
        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<> h) noexcept;
        void await_resume() const noexcept {}
    };
    RunAwaiter run(std::function<void()> fn) noexcept { return RunAwaiter{*this, std::move(fn)}; }
    // Runs `fn` on a helper thread with no one waiting.
    void submit(std::function<void()> fn);
    // Runs `fn` on a helper thread and blocks the calling thread (not a
    // shard's) until it has run.
    void run_and_wait(const std::function<void()>& fn);
    // Lets the queued jobs finish, then joins the threads. Idempotent.
    void stop() noexcept;

    unsigned threads() const noexcept { return static_cast<unsigned>(threads_.size()); }
    const std::string& name() const noexcept { return name_; }

  private:
    void worker() noexcept;
    std::string name_;
    Priority priority_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> jobs_;
    bool stop_ = false;
    std::vector<std::thread> threads_;
};

} // namespace rp::reactor
