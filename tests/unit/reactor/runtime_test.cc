// SPDX-License-Identifier: Apache-2.0
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "reactor/ops.hh"
#include "reactor/runtime.hh"
#include "reactor/shard.hh"
#include "reactor/sync.hh"
#include "reactor/task.hh"

using namespace rp::reactor;
using clk = std::chrono::steady_clock;

namespace {

// An hour: a stop that waited for this timer instead of cancelling it would
// never finish inside the test's time limit.
constexpr std::uint64_t hour_ms = 3600 * 1000;

Task<void> sleep_on(Timer* t, std::uint64_t ms, int* res) { *res = co_await t->sleep(ms); }

Task<void> cancel_later(Timer* t, Shard* s) {
    (void)co_await sleep_ms(5);
    t->cancel();
    s->request_stop();
}

Task<void> sleep_twice(Timer* t, int* first, int* second) {
    *first = co_await t->sleep(1);
    *second = co_await t->sleep(hour_ms);
}

Task<void> recv_forever(int fd, int* res) {
    char b[8];
    *res = co_await rp::reactor::recv(fd, b, sizeof b, -1); // no timeout at all
}

} // namespace

TEST_CASE("a timer cancelled by another flow ends its sleep at once, and every later one") {
    Shard shard(0, 8);
    REQUIRE(shard.init());
    Timer t;
    int res = 0;
    auto t0 = clk::now();
    spawn(sleep_on(&t, hour_ms, &res));
    CHECK(t.sleeping());
    spawn(cancel_later(&t, &shard));
    shard.run();
    CHECK(res == -ECANCELED);
    CHECK(clk::now() - t0 < std::chrono::seconds(30));
    CHECK(!t.sleeping());
    int again = 0;
    Shard shard2(1, 8);
    REQUIRE(shard2.init());
    spawn(sleep_on(&t, hour_ms, &again)); // cancelled before it slept: ends at once
    CHECK(again == -ECANCELED);
    CHECK(shard2.inflight() == 0);
}

TEST_CASE("an uncancelled timer fires with -ETIME and can sleep again") {
    Shard shard(0, 8);
    REQUIRE(shard.init());
    Timer t;
    int first = 0, second = 0;
    spawn(sleep_twice(&t, &first, &second));
    std::thread stopper([&] {
        // The second sleep is an hour long: the shard's stop cancels it.
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        shard.request_stop();
    });
    auto t0 = clk::now();
    shard.run();
    stopper.join();
    CHECK(first == -ETIME);
    CHECK(second == -ECANCELED);
    CHECK(clk::now() - t0 < std::chrono::seconds(30));
}

TEST_CASE("a stopping shard cancels an operation with no timeout and returns") {
    Shard shard(0, 8);
    REQUIRE(shard.init());
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    int res = 1;
    spawn(recv_forever(sv[0], &res));
    CHECK(shard.inflight() == 1);
    std::thread stopper([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        shard.request_stop();
    });
    shard.run();
    stopper.join();
    CHECK(res == -ECANCELED);
    CHECK(shard.inflight() == 0);
    ::close(sv[0]);
    ::close(sv[1]);
}

TEST_CASE("a thread pool names its threads, sets their nice value and finishes queued jobs") {
    ThreadPool pool("rp-test-bg", 2, 19);
    std::mutex mu;
    std::condition_variable cv;
    int done = 0;
    int nice_seen = -100;
    std::string name_seen;
    for (int i = 0; i < 50; ++i) {
        pool.submit([&] {
            char name[16] = {};
            (void)pthread_getname_np(pthread_self(), name, sizeof name);
            errno = 0;
            int n = getpriority(PRIO_PROCESS, static_cast<id_t>(gettid()));
            std::lock_guard lk(mu);
            nice_seen = n;
            name_seen = name;
            ++done;
            cv.notify_all();
        });
    }
    pool.stop(); // lets the queue drain before joining
    CHECK(done == 50);
    CHECK(nice_seen == 19);
    CHECK(name_seen == "rp-test-bg");
    CHECK(pool.threads() == 2);
}

TEST_CASE("the runtime runs its duties on time and stops promptly with an hour-long one pending") {
    RuntimeConfig cfg;
    cfg.shards = 2;
    cfg.ring_entries = 16;
    cfg.blocking_threads = 3;
    cfg.background_threads = 2;
    Runtime rt(cfg);
    CHECK(rt.thread_count() == 3 + 2 + 2); // pools and companions; shards not started
    std::atomic<int> up{0};
    REQUIRE(rt.start([&](Shard& s) {
        if (&s.blocking() == &rt.blocking() && Shard::current() == &s) {
            ++up;
        }
    }));
    CHECK(up.load() == 2);
    CHECK(rt.thread_count() == 3 + 2 + 2 + 2);
    std::mutex mu;
    std::condition_variable cv;
    int fast_runs = 0;
    int slow_runs = 0;
    rt.every("fast", std::chrono::milliseconds(5), [&] {
        std::lock_guard lk(mu);
        ++fast_runs;
        cv.notify_all();
    });
    rt.every("slow", std::chrono::hours(1), [&] {
        std::lock_guard lk(mu);
        ++slow_runs;
    });
    {
        std::unique_lock lk(mu);
        CHECK(cv.wait_for(lk, std::chrono::seconds(20), [&] { return fast_runs >= 5; }));
    }
    std::atomic<bool> spawned_saw_stop{false};
    rt.spawn_thread("rp-test-job", [&] {
        for (int i = 0; i < 30000 && !rt.stopping(); ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        spawned_saw_stop = rt.stopping();
    });
    auto t0 = clk::now();
    rt.stop();
    CHECK(clk::now() - t0 < std::chrono::seconds(20));
    CHECK(spawned_saw_stop.load());
    CHECK(slow_runs == 0);
    int after = fast_runs;
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    CHECK(fast_runs == after); // no duty runs after stop
    rt.stop();                 // idempotent
}
