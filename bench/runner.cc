// SPDX-License-Identifier: Apache-2.0
#include "runner.hh"

#include <unistd.h>

#include <barrier>
#include <cstdio>
#include <thread>

namespace rp::bench {

Progress::Progress(bool enabled, std::string workload)
    : enabled_(enabled && ::isatty(STDERR_FILENO) == 1), workload_(std::move(workload)) {}

void Progress::begin(std::string phase, const Plan& plan) {
    phase_ = std::move(phase);
    total_ = plan.count();
    duration_s_ = plan.duration_s();
    start_ns_ = now_ns();
    last_ns_ = 0;
    live_.ops.store(0);
    live_.errors.store(0);
    live_.bytes.store(0);
}

void Progress::tick() {
    std::int64_t now = now_ns();
    if (!enabled_ || now - last_ns_ < 200'000'000) {
        return;
    }
    last_ns_ = now;
    double t = static_cast<double>(now - start_ns_) / 1e9;
    auto ops = live_.ops.load(std::memory_order_relaxed);
    auto errors = live_.errors.load(std::memory_order_relaxed);
    double bytes = static_cast<double>(live_.bytes.load(std::memory_order_relaxed));
    double rate = t > 0 ? static_cast<double>(ops) / t : 0;
    char goal[64];
    if (duration_s_ > 0) {
        (void)std::snprintf(goal, sizeof goal, "%llu ops  %.1f/%.0f s",
                            static_cast<unsigned long long>(ops), t, duration_s_);
    } else {
        (void)std::snprintf(goal, sizeof goal, "%llu/%llu ops  %.1f s",
                            static_cast<unsigned long long>(ops),
                            static_cast<unsigned long long>(total_), t);
    }
    (void)std::fprintf(stderr, "\r\033[K[%s %s] %s  %.0f ops/s  %.1f MB/s  errors %llu",
                       workload_.c_str(), phase_.c_str(), goal, rate, t > 0 ? bytes / t / 1e6 : 0.0,
                       static_cast<unsigned long long>(errors));
    (void)std::fflush(stderr);
}

void Progress::end() {
    if (enabled_) {
        (void)std::fputs("\r\033[K", stderr);
        (void)std::fflush(stderr);
    }
}

namespace {

double cpu_s(const rusage& r) {
    auto tv = [](const timeval& t) {
        return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
    };
    return tv(r.ru_utime) + tv(r.ru_stime);
}

} // namespace

void Meter::start() noexcept {
    if (server_pid_ > 0) {
        s0_ = sample_proc(server_pid_);
    }
    (void)::getrusage(RUSAGE_SELF, &ru0_);
    t0_ns_ = now_ns();
}

void Meter::stop() noexcept {
    std::int64_t t1 = now_ns();
    rusage ru1{};
    (void)::getrusage(RUSAGE_SELF, &ru1);
    seconds_ += static_cast<double>(t1 - t0_ns_) / 1e9;
    client_cpu_s_ += cpu_s(ru1) - cpu_s(ru0_);
    if (server_pid_ > 0 && s0_) {
        if (auto s1 = sample_proc(server_pid_)) {
            server_.add(*s0_, *s1);
            server_ok_ = true;
        }
    }
}

namespace {

struct TickTarget {
    Progress* progress;
    static void call(void* self) { static_cast<TickTarget*>(self)->progress->tick(); }
};

} // namespace

util::Result<Stats> run_phase(const Endpoint& ep, const PhaseConfig& cfg,
                              std::span<Flow* const> flows, Plan& plan, Meter* meter,
                              Progress* progress) {
    std::size_t n = std::max<std::size_t>(1, std::min(cfg.threads, flows.size()));
    std::vector<Stats> stats(n);
    std::vector<std::string> open_errors(n);
    if (progress != nullptr) {
        progress->begin(cfg.name, plan);
    }
    auto go = [&]() noexcept {
        plan.start(now_ns());
        if (meter != nullptr) {
            meter->start();
        }
    };
    std::barrier sync(static_cast<std::ptrdiff_t>(n), go);
    TickTarget ticker{progress};
    auto body = [&](std::size_t t) {
        std::size_t lo = flows.size() * t / n;
        std::size_t hi = flows.size() * (t + 1) / n;
        Engine engine(ep, cfg.engine, hi - lo);
        auto opened = engine.open();
        if (!opened) {
            open_errors[t] = opened.error().detail;
            plan.stop();
        }
        sync.arrive_and_wait();
        if (opened) {
            bool ticks = t == 0 && progress != nullptr;
            engine.run(flows.subspan(lo, hi - lo), plan, stats[t],
                       progress != nullptr ? &progress->live() : nullptr,
                       ticks ? &TickTarget::call : nullptr, &ticker);
        }
    };
    std::vector<std::thread> threads;
    for (std::size_t t = 1; t < n; ++t) {
        threads.emplace_back(body, t);
    }
    body(0);
    for (std::thread& th : threads) {
        th.join();
    }
    if (meter != nullptr) {
        meter->stop();
    }
    if (progress != nullptr) {
        progress->end();
    }
    for (const std::string& e : open_errors) {
        if (!e.empty()) {
            return util::Error::of(util::Errc::system, e);
        }
    }
    for (std::size_t t = 1; t < n; ++t) {
        stats[0].merge(stats[t]);
    }
    return std::move(stats[0]);
}

} // namespace rp::bench
