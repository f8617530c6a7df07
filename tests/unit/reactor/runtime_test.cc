// SPDX-License-Identifier: Apache-2.0
#include <sched.h>
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

TEST_CASE("a shard counts its long loop turns: a message that holds it 6 ms is one") {
    Shard shard(0, 8);
    REQUIRE(shard.init());
    // From another thread while the shard waits on its ring: the message
    // gets a turn of its own, and the stop comes in a later one.
    std::thread poster([&shard] {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        shard.post(Message{[](void*, std::uint64_t) noexcept {
                               std::this_thread::sleep_for(std::chrono::milliseconds(6));
                           },
                           nullptr, 0});
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        shard.request_stop();
    });
    Shard::Turns before = shard.turns();
    shard.run();
    poster.join();
    Shard::Turns t = shard.turns();
    CHECK(before.from[0] == 0);
    CHECK(t.from[0] >= 1);         // ≥ 1 ms
    CHECK(t.from[2] >= 1);         // ≥ 5 ms
    CHECK(t.from[3] <= t.from[2]); // cumulative
    CHECK(t.longest_us >= 6000);
    Shard::Turns sum;
    sum.add(t);
    sum.add(t);
    CHECK(sum.from[2] == 2 * t.from[2]);
    CHECK(sum.longest_us == t.longest_us);
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

TEST_CASE("a background thread pool names its threads, runs them at nice 19, paced, and finishes "
          "queued jobs") {
    ThreadPool pool("rp-test-bg", 2, ThreadPool::Priority::background);
    std::mutex mu;
    int done = 0;
    int nice_seen = -100;
    int child_nice = -100; // a thread started from a job inherits the nice value
    int policy_seen = -1;
    bool paced_seen = false;
    std::string name_seen;
    for (int i = 0; i < 50; ++i) {
        pool.submit([&, i] {
            char name[16] = {};
            (void)pthread_getname_np(pthread_self(), name, sizeof name);
            errno = 0;
            int n = getpriority(PRIO_PROCESS, static_cast<id_t>(gettid()));
            int c = -100;
            if (i == 0) {
                std::thread([&c] {
                    errno = 0;
                    c = getpriority(PRIO_PROCESS, static_cast<id_t>(gettid()));
                }).join();
            }
            std::lock_guard lk(mu);
            nice_seen = n;
            policy_seen = sched_getscheduler(0);
            paced_seen = paced();
            if (i == 0) {
                child_nice = c;
            }
            name_seen = name;
            ++done;
        });
    }
    pool.stop(); // lets the queue drain before joining
    CHECK(done == 50);
    CHECK(nice_seen == 19);
    CHECK(child_nice == 19);
    CHECK(policy_seen == SCHED_OTHER); // not SCHED_IDLE (sync.hh says why)
    CHECK(paced_seen);
    CHECK(name_seen == "rp-test-bg");
    CHECK(pool.threads() == 2);
}

TEST_CASE("run_and_wait runs the job on a pool thread and returns once it has run") {
    ThreadPool pool("rp-test", 1);
    std::thread::id ran_on;
    bool done = false;
    pool.run_and_wait([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(5)); // a waiter must not return early
        ran_on = std::this_thread::get_id();
        done = true;
    });
    CHECK(done);
    CHECK(ran_on != std::this_thread::get_id());
    pool.stop();
}

TEST_CASE("a normal thread pool is neither reniced nor paced") {
    ThreadPool pool("rp-test", 1);
    int nice_seen = -100;
    bool paced_seen = true;
    pool.submit([&] {
        errno = 0;
        nice_seen = getpriority(PRIO_PROCESS, static_cast<id_t>(gettid()));
        paced_seen = paced();
    });
    pool.stop();
    CHECK(nice_seen == getpriority(PRIO_PROCESS, 0));
    CHECK_FALSE(paced_seen);
}

namespace {

// Voluntary context switches of the calling thread: each rest is one.
long voluntary_switches() {
    rusage ru{};
    (void)getrusage(RUSAGE_THREAD, &ru);
    return ru.ru_nvcsw;
}

// Calls pace() in a busy loop for `wall` and counts the rests it took.
long rests_in(std::chrono::milliseconds wall) {
    long before = voluntary_switches();
    auto end = std::chrono::steady_clock::now() + wall;
    while (std::chrono::steady_clock::now() < end) {
        pace();
    }
    return voluntary_switches() - before;
}

} // namespace

TEST_CASE("a paced thread rests after each stretch of work; an unpaced one never does") {
    long paced_rests = 0;
    long unpaced_rests = -1;
    std::thread([&] {
        set_paced(true);
        paced_rests = rests_in(std::chrono::milliseconds(40));
    }).join();
    std::thread([&] { unpaced_rests = rests_in(std::chrono::milliseconds(40)); }).join();
    // 40 ms is 20 stretches of kPaceWork: at least a few rests, however
    // slowly the machine runs the loop; a busy loop alone never sleeps.
    CHECK(paced_rests >= 5);
    CHECK(paced_rests <= 40 / 2 + 1);
    CHECK(unpaced_rests == 0);
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
