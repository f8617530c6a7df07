// SPDX-License-Identifier: Apache-2.0
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "reactor/ops.hh"
#include "reactor/shard.hh"
#include "reactor/sync.hh"
#include "reactor/task.hh"

using namespace rp::reactor;

namespace {

Task<int> add_later(int a, int b) {
    (void)co_await sleep_ms(1);
    co_return a + b;
}

Task<int> add_now(int a, int b) { co_return a + b; }

// Awaits a long chain of tasks that finish at once: must not grow the stack.
Task<long> many_sync(int n) {
    long sum = 0;
    for (int i = 0; i < n; ++i) {
        sum += co_await add_now(i, 1);
    }
    co_return sum;
}

Task<void> file_roundtrip(std::string dir, std::string* out, int* err) {
    std::string path = dir + "/f";
    int fd = co_await rp::reactor::openat(AT_FDCWD, path.c_str(), O_RDWR | O_CREAT, 0644);
    if (fd < 0) {
        *err = fd;
        co_return;
    }
    const char msg[] = "hello ring";
    int w = co_await rp::reactor::write(fd, msg, sizeof msg - 1, 0);
    int s = co_await rp::reactor::fsync(fd);
    char buf[32] = {};
    int r = co_await rp::reactor::read(fd, buf, sizeof buf, 0);
    (void)co_await rp::reactor::close(fd);
    *err = (w < 0) ? w : (s < 0 ? s : (r < 0 ? r : 0));
    *out = std::string(buf, r > 0 ? static_cast<std::size_t>(r) : 0);
}

Task<void> recv_times_out(int fd, int* res) {
    char b[8];
    *res = co_await rp::reactor::recv(fd, b, sizeof b, 20);
}

Task<void> run_all(Shard* shard, int* sum, long* chain, std::string dir, std::string* file,
                   int* ferr, int sock, int* timeout_res) {
    *sum = co_await add_later(2, 3);
    *chain = co_await many_sync(200000);
    co_await file_roundtrip(dir, file, ferr);
    co_await recv_times_out(sock, timeout_res);
    shard->request_stop();
}

} // namespace

TEST_CASE("tasks, file operations and timeouts run on a shard with a tiny ring") {
    Shard shard(0, 2); // a full SQ is the common case here
    REQUIRE(shard.init());
    char tmpl[] = "/tmp/rp-shard-test-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    int sum = 0, ferr = 1, timeout_res = 0;
    long chain = 0;
    std::string file;
    spawn(run_all(&shard, &sum, &chain, tmpl, &file, &ferr, sv[0], &timeout_res));
    shard.run();
    CHECK(sum == 5);
    CHECK(chain == 200000L * 199999L / 2 + 200000L);
    CHECK(ferr == 0);
    CHECK(file == "hello ring");
    CHECK(timeout_res == -ECANCELED);
    CHECK(shard.inflight() == 0);
    ::close(sv[0]);
    ::close(sv[1]);
    std::string cleanup = std::string("rm -rf ") + tmpl;
    CHECK(std::system(cleanup.c_str()) == 0);
}

namespace {

Task<void> locker(AsyncMutex* m, int* counter, int* max_inside, int* inside, Latch* done,
                  int* left) {
    for (int i = 0; i < 100; ++i) {
        co_await m->lock();
        AsyncLockGuard g(*m);
        ++*inside;
        *max_inside = std::max(*max_inside, *inside);
        (void)co_await sleep_ms(0);
        ++*counter;
        --*inside;
    }
    if (--*left == 0) {
        done->set();
    }
}

Task<void> stop_when(Latch* l, Shard* s) {
    co_await l->wait();
    s->request_stop();
}

} // namespace

TEST_CASE("an async mutex keeps one holder at a time across suspensions") {
    Shard shard(0, 8);
    REQUIRE(shard.init());
    AsyncMutex m;
    Latch done;
    int counter = 0, max_inside = 0, inside = 0, left = 3;
    for (int i = 0; i < 3; ++i) {
        spawn(locker(&m, &counter, &max_inside, &inside, &done, &left));
    }
    spawn(stop_when(&done, &shard));
    shard.run();
    CHECK(counter == 300);
    CHECK(max_inside == 1);
}

namespace {

Task<void> wait_then_mark(Latch* l, bool* resumed) {
    co_await l->wait();
    *resumed = true;
}

Task<void> stop_now(Shard* s) {
    s->request_stop();
    co_return;
}

} // namespace

TEST_CASE("a stopping shard keeps running until its latch waiters have resumed") {
    Shard shard(0, 8);
    REQUIRE(shard.init());
    Latch l;
    bool resumed = false;
    spawn(wait_then_mark(&l, &resumed));
    spawn(stop_now(&shard)); // asked to stop while the waiter is suspended
    CHECK(shard.inflight() == 1);
    std::thread setter([&l] {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        l.set();
    });
    shard.run(); // returns only after the waiter ran to its end
    setter.join();
    CHECK(resumed);
    CHECK(shard.inflight() == 0);
}

namespace {

// Follows a Progress to its close, recording each value it saw.
Task<void> follow_progress(Progress* p, std::vector<std::uint64_t>* seen, bool* closed) {
    std::uint64_t past = 0;
    for (int i = 0; i < 10000; ++i) { // bounded: each turn sees a larger value, or the close
        Progress::Seen s = co_await p->wait_past(past);
        if (s.closed) {
            *closed = true;
            past = s.value;
            break;
        }
        seen->push_back(s.value);
        past = s.value;
    }
    // Once closed, a wait answers at once whatever it asks.
    Progress::Seen again = co_await p->wait_past(past + 1000);
    *closed = *closed && again.closed && again.value == past;
}

} // namespace

TEST_CASE("a progress wakes a waiter on its own shard as the value grows, and at its close") {
    Shard shard(0, 8);
    REQUIRE(shard.init());
    Progress p;
    std::vector<std::uint64_t> seen;
    bool closed = false;
    spawn(follow_progress(&p, &seen, &closed));
    spawn(stop_now(&shard));
    CHECK(shard.inflight() == 1); // the waiter counts until it resumes
    std::thread publisher([&p] {
        for (std::uint64_t v = 1; v <= 50; ++v) {
            p.publish(v);
            p.publish(v - 1); // a lower value changes nothing
            if (v % 10 == 0) {
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
            }
        }
        p.close();
    });
    shard.run();
    publisher.join();
    CHECK(closed);
    REQUIRE(!seen.empty());
    for (std::size_t i = 1; i < seen.size(); ++i) {
        CHECK(seen[i] > seen[i - 1]);
    }
    CHECK(seen.back() <= 50);
    CHECK(p.seen().value == 50);
    CHECK(shard.inflight() == 0);
}
