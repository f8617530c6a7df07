// SPDX-License-Identifier: Apache-2.0
#include "reactor/runtime.hh"

#include <pthread.h>

#include <cerrno>

#include "util/assert.hh"

namespace rp::reactor {

struct Runtime::Duty {
    Runtime* runtime = nullptr;
    std::string name;
    std::chrono::milliseconds period;
    std::function<void()> work;
    Shard* shard = nullptr;
    Timer timer; // touched only on `shard`'s thread
};

Runtime::Runtime(RuntimeConfig cfg)
    : cfg_(cfg), blocking_("rp-pool", cfg.blocking_threads == 0 ? 1 : cfg.blocking_threads),
      background_("rp-bg", cfg.background_threads == 0 ? 1 : cfg.background_threads,
                  ThreadPool::Priority::background) {
    RP_ASSERT(cfg_.shards >= 1);
    for (unsigned i = 0; i < cfg_.shards; ++i) {
        shards_.push_back(std::make_unique<Shard>(i, cfg_.ring_entries));
        companions_.push_back(std::make_unique<ThreadPool>("rp-hash", 1));
        shards_.back()->set_pools(&blocking_, companions_.back().get());
    }
}

Runtime::~Runtime() { stop(); }

void Runtime::shard_main(unsigned i, const std::function<void(Shard&)>& on_shard) noexcept {
    Shard& shard = *shards_[i];
    std::string name = "rp-shard-" + std::to_string(i); // seen in top, perf and the bench
    (void)pthread_setname_np(pthread_self(), name.c_str());
    auto r = shard.init();
    if (r && on_shard) {
        on_shard(shard);
    }
    {
        std::lock_guard lk(mu_);
        if (!r && start_error_ == 0) {
            start_error_ = r.error().sys_errno == 0 ? EIO : r.error().sys_errno;
        }
        ++started_;
    }
    cv_.notify_all();
    if (r) {
        shard.run();
    }
}

util::Result<void> Runtime::start(const std::function<void(Shard&)>& on_shard) {
    RP_ASSERT(shard_threads_.empty());
    for (unsigned i = 0; i < shard_count(); ++i) {
        shard_threads_.emplace_back([this, i, on_shard] { shard_main(i, on_shard); });
    }
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return started_ == shard_count(); });
    if (start_error_ != 0) {
        return util::Error::sys(start_error_, "io_uring setup");
    }
    return util::Ok{};
}

Task<void> Runtime::duty_loop(Runtime* rt, Duty* d) {
    while (co_await d->timer.sleep(static_cast<std::uint64_t>(d->period.count())) != -ECANCELED) {
        co_await rt->background().run([d] { d->work(); });
    }
    rt->duty_ended();
}

void Runtime::every(std::string name, std::chrono::milliseconds period,
                    std::function<void()> work) {
    RP_ASSERT(!shard_threads_.empty());
    auto d = std::make_unique<Duty>();
    d->name = std::move(name);
    d->period = period.count() < 1 ? std::chrono::milliseconds(1) : period;
    d->work = std::move(work);
    d->runtime = this;
    d->shard = shards_[next_duty_shard_++ % shard_count()].get();
    {
        std::lock_guard lk(mu_);
        if (stopping_.load()) {
            return;
        }
        ++duties_running_;
    }
    Duty* raw = d.get();
    duties_.push_back(std::move(d));
    raw->shard->post(Message{[](void* arg, std::uint64_t) noexcept {
                                 auto* duty = static_cast<Duty*>(arg);
                                 spawn(duty_loop(duty->runtime, duty));
                             },
                             raw, 0});
}

void Runtime::duty_ended() noexcept {
    {
        std::lock_guard lk(mu_);
        --duties_running_;
    }
    cv_.notify_all();
}

void Runtime::spawn_thread(std::string name, std::function<void()> fn) {
    spawned_.emplace_back([n = std::move(name), f = std::move(fn)] {
        (void)pthread_setname_np(pthread_self(), n.substr(0, 15).c_str());
        f();
    });
}

void Runtime::stop_duties() noexcept {
    stopping_.store(true, std::memory_order_release);
    for (auto& d : duties_) {
        d->shard->post(Message{
            [](void* arg, std::uint64_t) noexcept { static_cast<Duty*>(arg)->timer.cancel(); },
            d.get(), 0});
    }
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return duties_running_ == 0; });
}

void Runtime::stop() noexcept {
    if (stopped_) {
        return;
    }
    stopped_ = true;
    if (!shard_threads_.empty()) {
        stop_duties();
    }
    stopping_.store(true, std::memory_order_release);
    for (auto& s : shards_) {
        s->request_stop();
    }
    for (auto& t : shard_threads_) {
        t.join();
    }
    for (auto& t : spawned_) {
        t.join();
    }
    for (auto& c : companions_) {
        c->stop();
    }
    background_.stop();
    blocking_.stop();
}

Shard::Turns Runtime::turns() const noexcept {
    Shard::Turns t;
    for (const auto& s : shards_) {
        t.add(s->turns());
    }
    return t;
}

unsigned Runtime::thread_count() const noexcept {
    return static_cast<unsigned>(shard_threads_.size() + companions_.size() + spawned_.size()) +
           blocking_.threads() + background_.threads();
}

} // namespace rp::reactor
