// SPDX-License-Identifier: Apache-2.0
#include "reactor/sync.hh"

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include "util/assert.hh"

namespace rp::reactor {

bool AsyncMutex::try_lock() noexcept {
    std::lock_guard lk(mu_);
    if (locked_) {
        return false;
    }
    locked_ = true;
    return true;
}

bool AsyncMutex::held() const noexcept {
    std::lock_guard lk(mu_);
    return locked_;
}

bool AsyncMutex::enqueue(LockAwaiter& w) noexcept {
    std::lock_guard lk(mu_);
    if (!locked_) {
        locked_ = true;
        return false; // got it after all: do not suspend
    }
    w.shard = Shard::current();
    RP_ASSERT(w.shard != nullptr);
    w.next = nullptr;
    if (tail_ != nullptr) {
        tail_->next = &w;
    } else {
        head_ = &w;
    }
    tail_ = &w;
    return true;
}

void AsyncMutex::unlock() noexcept {
    Shard* shard = nullptr;
    std::coroutine_handle<> h;
    {
        std::lock_guard lk(mu_);
        RP_ASSERT(locked_);
        if (head_ == nullptr) {
            locked_ = false;
            return;
        }
        LockAwaiter* w = head_;
        head_ = w->next;
        if (head_ == nullptr) {
            tail_ = nullptr;
        }
        // Read before the resume is posted: once it runs, `w` (in the
        // waiter's frame) may be gone. Ownership passes to it directly;
        // locked_ stays true.
        shard = w->shard;
        h = w->h;
    }
    shard->post_resume(h);
}

namespace {

// Resumes `h` on shard `s` and ends the in-flight count its wait started
// there (Shard::run returns only when nothing is in flight).
void resume_counted(Shard* s, std::coroutine_handle<> h) noexcept {
    s->post(Message{[](void* arg, std::uint64_t) noexcept {
                        Shard::current()->op_finished();
                        std::coroutine_handle<>::from_address(arg).resume();
                    },
                    h.address(), 0});
}

} // namespace

bool Latch::is_set() const noexcept {
    std::lock_guard lk(mu_);
    return set_;
}

bool Latch::enqueue(std::coroutine_handle<> h) noexcept {
    std::lock_guard lk(mu_);
    if (set_ || abandoned_) {
        return false;
    }
    Shard* s = Shard::current();
    RP_ASSERT(s != nullptr);
    waiters_.emplace_back(s, h);
    s->op_started(); // a shard stops only once its latch waiters have resumed
    return true;
}

bool Latch::abandoned() const noexcept {
    std::lock_guard lk(mu_);
    return abandoned_;
}

void Latch::set() noexcept {
    {
        std::lock_guard lk(mu_);
        set_ = true;
    }
    release();
}

void Latch::abandon() noexcept {
    {
        std::lock_guard lk(mu_);
        abandoned_ = true;
    }
    release();
}

void Latch::release() noexcept {
    std::vector<std::pair<Shard*, std::coroutine_handle<>>> w;
    {
        std::lock_guard lk(mu_);
        w.swap(waiters_);
    }
    for (auto& [shard, h] : w) {
        resume_counted(shard, h);
    }
}

Progress::Seen Progress::seen() const noexcept {
    std::lock_guard lk(mu_);
    return Seen{value_, closed_};
}

bool Progress::passed(std::uint64_t past) const noexcept {
    std::lock_guard lk(mu_);
    return closed_ || value_ > past;
}

bool Progress::enqueue(std::coroutine_handle<> h, std::uint64_t past) noexcept {
    std::lock_guard lk(mu_);
    if (closed_ || value_ > past) {
        return false;
    }
    Shard* s = Shard::current();
    RP_ASSERT(s != nullptr);
    waiters_.push_back(Waiter{s, h, past});
    s->op_started();
    return true;
}

void Progress::publish(std::uint64_t value) noexcept {
    std::vector<Waiter> woken;
    {
        std::lock_guard lk(mu_);
        if (value <= value_) {
            return;
        }
        value_ = value;
        for (std::size_t i = 0; i < waiters_.size();) {
            if (waiters_[i].past < value) {
                woken.push_back(waiters_[i]);
                waiters_[i] = waiters_.back();
                waiters_.pop_back();
            } else {
                ++i;
            }
        }
    }
    for (const Waiter& w : woken) {
        resume_counted(w.shard, w.h);
    }
}

void Progress::close() noexcept {
    std::vector<Waiter> woken;
    {
        std::lock_guard lk(mu_);
        closed_ = true;
        woken.swap(waiters_);
    }
    for (const Waiter& w : woken) {
        resume_counted(w.shard, w.h);
    }
}

namespace {
struct PaceState {
    bool on = false;
    std::chrono::steady_clock::time_point since{};
    unsigned calls = 0;
};
thread_local PaceState pace_state;
} // namespace

void become_background() noexcept {
    (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 19);
    set_paced(true);
}

bool paced() noexcept { return pace_state.on; }

void set_paced(bool on) noexcept {
    pace_state.on = on;
    pace_state.since = std::chrono::steady_clock::now();
}

void pace() noexcept {
    PaceState& p = pace_state;
    if (!p.on || (++p.calls & 7U) != 0) { // the clock every 8th call: units are µs-sized
        return;
    }
    auto now = std::chrono::steady_clock::now();
    if (now - p.since >= kPaceWork) {
        std::this_thread::sleep_for(kPaceRest);
        p.since = std::chrono::steady_clock::now();
    }
}

ThreadPool::ThreadPool(std::string name, unsigned threads, Priority priority)
    : name_(std::move(name)), priority_(priority) {
    for (unsigned i = 0; i < threads; ++i) {
        threads_.emplace_back([this] { worker(); });
    }
}

ThreadPool::~ThreadPool() { stop(); }

void ThreadPool::stop() noexcept {
    {
        std::lock_guard lk(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) {
        if (t.joinable()) {
            t.join();
        }
    }
}

void ThreadPool::submit(std::function<void()> fn) {
    {
        std::lock_guard lk(mu_);
        RP_ASSERT(!stop_); // nothing would run it
        jobs_.push_back(std::move(fn));
    }
    cv_.notify_one();
}

void ThreadPool::run_and_wait(const std::function<void()>& fn) {
    // The flag is set and the waiter notified under the mutex, so the waiter
    // cannot return (and destroy them) while the pool thread still uses them.
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    submit([&] {
        fn();
        std::lock_guard lk(m);
        done = true;
        cv.notify_one();
    });
    std::unique_lock lk(m);
    cv.wait(lk, [&] { return done; });
}

void ThreadPool::RunAwaiter::await_suspend(std::coroutine_handle<> h) noexcept {
    Shard* s = Shard::current();
    RP_ASSERT(s != nullptr);
    s->op_started(); // shutdown waits for the job like for any ring operation
    pool.submit([s, h, f = std::move(fn)] {
        f();
        resume_counted(s, h);
    });
}

void ThreadPool::worker() noexcept {
    (void)pthread_setname_np(pthread_self(), name_.substr(0, 15).c_str());
    if (priority_ == Priority::background) {
        become_background();
    }
    std::unique_lock lk(mu_);
    for (;;) {
        cv_.wait(lk, [&] { return stop_ || !jobs_.empty(); });
        if (jobs_.empty()) {
            return; // stop_ and nothing left
        }
        auto job = std::move(jobs_.front());
        jobs_.pop_front();
        lk.unlock();
        set_paced(paced()); // a job's first stretch counts from its start, not the last job's
        job();
        lk.lock();
    }
}

} // namespace rp::reactor
