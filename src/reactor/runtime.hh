// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "reactor/ops.hh"
#include "reactor/shard.hh"
#include "reactor/sync.hh"
#include "reactor/task.hh"
#include "util/result.hh"

namespace rp::reactor {

// How many threads of each kind the process runs (config [runtime]).
struct RuntimeConfig {
    unsigned shards = 1;
    unsigned ring_entries = 1024;
    unsigned blocking_threads = 2;   // blocking calls on behalf of requests (`rp-pool`)
    unsigned background_threads = 2; // periodic duties and background work, nice 19 (`rp-bg`)
};

// The one owner of the process's threads: the shards (one io_uring each),
// each shard's companion thread (hashing, `rp-hash`), the blocking pool, the
// background pool, the long jobs started through spawn_thread (the index
// load), and the periodic duties. A duty sleeps on a cancellable timer in
// its shard's ring and runs its work on the background pool, so a stop
// cancels every timer in the reactor and waits for at most the duty runs
// already under way; nothing polls or sleeps in a loop.
//
// Lifecycle: construct (shards and pools exist, no shard thread yet),
// start(), then every() and spawn_thread() as needed; at the end
// stop_duties() (duties over, shards still serving, e.g. for a drain) and
// stop() (shards cancel what is in flight and exit; threads joined).
class Runtime {
  public:
    explicit Runtime(RuntimeConfig cfg);
    ~Runtime();
    Runtime(const Runtime&) = delete;
    Runtime& operator=(const Runtime&) = delete;

    // Starts the shard threads; returns once every ring is up and `on_shard`
    // ran on each shard's thread (before its loop), or with the first
    // ring's error.
    util::Result<void> start(const std::function<void(Shard&)>& on_shard = {});

    // Runs `work` on the background pool every `period` (first run one
    // period after this call), from a timer on one of the shards (duties
    // are spread over the shards in turn). Call after start().
    void every(std::string name, std::chrono::milliseconds period, std::function<void()> work);

    // Runs `fn` on a thread of its own (named `name`) that stop() joins;
    // `fn` should watch stopping() and return soon after it turns true.
    void spawn_thread(std::string name, std::function<void()> fn);

    // Cancels every duty's timer and returns once no duty is running.
    void stop_duties() noexcept;
    // stop_duties(), then stops the shards (each cancels what it still has
    // in flight), joins them and the spawned threads, then stops the pools.
    // Idempotent; the destructor calls it.
    void stop() noexcept;
    bool stopping() const noexcept { return stopping_.load(std::memory_order_acquire); }
    const std::atomic<bool>& stop_flag() const noexcept { return stopping_; }

    const RuntimeConfig& config() const noexcept { return cfg_; }
    unsigned shard_count() const noexcept { return static_cast<unsigned>(shards_.size()); }
    Shard& shard(unsigned i) noexcept { return *shards_[i]; }
    const Shard& shard(unsigned i) const noexcept { return *shards_[i]; }
    ThreadPool& blocking() noexcept { return blocking_; }
    ThreadPool& background() noexcept { return background_; }
    // Threads this runtime runs now (shards, companions, pools, spawned).
    unsigned thread_count() const noexcept;
    // Every shard's loop turns (Shard::turns), added up; any thread.
    Shard::Turns turns() const noexcept;

    struct Duty;

  private:
    static Task<void> duty_loop(Runtime* rt, Duty* d);
    void shard_main(unsigned i, const std::function<void(Shard&)>& on_shard) noexcept;
    void duty_ended() noexcept;

    RuntimeConfig cfg_;
    ThreadPool blocking_;
    ThreadPool background_;
    std::vector<std::unique_ptr<ThreadPool>> companions_;
    std::vector<std::unique_ptr<Shard>> shards_;
    std::vector<std::thread> shard_threads_;
    std::vector<std::thread> spawned_;
    std::vector<std::unique_ptr<Duty>> duties_;
    unsigned next_duty_shard_ = 0;
    std::atomic<bool> stopping_{false};
    bool stopped_ = false;

    mutable std::mutex mu_;
    std::condition_variable cv_;
    unsigned started_ = 0;
    int start_error_ = 0;
    unsigned duties_running_ = 0;
};

} // namespace rp::reactor
